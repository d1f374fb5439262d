"""Records the golden fixtures for the tiny random Qwen2.5-VL checkpoint (reference: transformers 4.57.6).

Run from the repository root (about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_qwen2_5_vl.py

Same layout and golden.json format as tools/oracle/record_qwen2_vl.py (whose helpers it reuses), with these
Qwen2.5-VL additions:
  - the vision tower is windowed: the frames are sized so that windows (8x8 patches at window_size 112) really split
    the grid, with padded edge windows, and blocks in fullatt_block_indexes attend per frame; each visual's
    reference `window_index` / `cu_window_seqlens` are recorded (key `windows`);
  - videos carry an `fps` (the qwen-vl-utils sample_fps); the processor gets it as `fps=[...]`, as the 4.57.6 call
    path does, and returns second_per_grid_ts = temporal_patch_size / fps (recorded); the rope index uses it;
  - the merged vision embeddings are recorded per kind (`image_embeds`, `video_embeds`).
Cases use fps values with an integer second_per_grid_ts, where transformers 4.57.6 (which casts it to int64) and
Qwen's training code (float) agree, except `video-frac` (fps 3 → 0.667 s per grid, cast to 0 by 4.57.6): the test
replays that one with the "hf-4.57" rule and shows that the engine's default ("qwen-float") differs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_qwen2_vl as q2  # noqa: E402  (helpers: media drawing, summaries, tokenizer config, chat template)
import tiny_weights  # noqa: E402

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen2_5-vl"
MEDIA = FIXTURES / "media"

ENDOFTEXT, IM_END, IMAGE_PAD, VIDEO_PAD = q2.ENDOFTEXT, q2.IM_END, q2.IMAGE_PAD, q2.VIDEO_PAD

# Hub Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json.
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": q2.CLIP_MEAN,
    "image_std": q2.CLIP_STD,
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}

GENERATION_CONFIG = {
    "bos_token_id": ENDOFTEXT,
    "eos_token_id": [IM_END, ENDOFTEXT],
    "pad_token_id": ENDOFTEXT,
    "transformers_version": "4.49.0",
}


def model_config(tie: bool) -> dict:
    """Hub-style flat Qwen2.5-VL config.json (cf. Qwen/Qwen2.5-VL-3B-Instruct), shrunk."""
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": ENDOFTEXT,
        "eos_token_id": IM_END,
        "vision_start_token_id": q2.VISION_START,
        "vision_end_token_id": q2.VISION_END,
        "vision_token_id": q2.VISION_PAD,
        "image_token_id": IMAGE_PAD,
        "video_token_id": VIDEO_PAD,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.49.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 3,
            "hidden_act": "silu",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_chans": 3,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": 151936,
    }


CASES = ["image", "video-fps2", "video-fps0.5", "video-odd", "mixed", "video-frac"]
CHECKPOINTS = [
    {"name": "qwen2_5-vl-tiny", "tie": False, "seed": 20250204, "cases": CASES},
]


# ---------------------------------------------------------------------------------------------------------------
# Weight spec. Ported to TypeScript as qwen2_5VlWeightSpec() in src/testing/tiny-checkpoint.ts. The decoder part is
# record_qwen2_vl.qwen2_vl_weight_spec's; the vision tower: RMSNorm weights (no bias), SwiGLU MLP with biases.
# ---------------------------------------------------------------------------------------------------------------
def qwen2_5_vl_weight_spec(cfg: dict, seed: int) -> dict:
    vc = cfg["vision_config"]
    stub = dict(cfg, vision_config={"depth": 0, "embed_dim": 1, "mlp_ratio": 1, "spatial_merge_size": 1,
                                    "patch_size": 1, "temporal_patch_size": 1, "in_chans": 1})
    out = [t for t in q2.qwen2_vl_weight_spec(stub, seed)["tensors"] if not t["name"].startswith("visual.")]
    e, f = vc["hidden_size"], vc["intermediate_size"]
    merged = e * vc["spatial_merge_size"] ** 2
    p, tp, cin = vc["patch_size"], vc["temporal_patch_size"], vc["in_chans"]

    def lin(name, gain, bias, shape):
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0, "scale": q2.linear_scale(gain, shape[1])})
        out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0, "scale": q2.BIAS_SCALE[bias]})

    def norm(name, n):
        out.append({"name": name + ".weight", "shape": [n], "offset": 1.0, "scale": q2.NORM_SCALE})

    out.append({"name": "visual.patch_embed.proj.weight", "shape": [e, cin, tp, p, p], "offset": 0.0,
                "scale": q2.linear_scale("patch_embed", cin * tp * p * p)})
    for i in range(vc["depth"]):
        pre = f"visual.blocks.{i}"
        norm(f"{pre}.norm1", e)
        norm(f"{pre}.norm2", e)
        lin(f"{pre}.attn.qkv", "qkv", "qkv", [3 * e, e])
        lin(f"{pre}.attn.proj", "proj", "proj", [e, e])
        lin(f"{pre}.mlp.gate_proj", "gate_proj", "fc1", [f, e])
        lin(f"{pre}.mlp.up_proj", "up_proj", "fc1", [f, e])
        lin(f"{pre}.mlp.down_proj", "fc2", "fc2", [e, f])
    norm("visual.merger.ln_q", e)
    lin("visual.merger.mlp.0", "mlp.0", "mlp.0", [merged, merged])
    lin("visual.merger.mlp.2", "mlp.2", "mlp.2", [vc["out_hidden_size"], merged])
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


# ---------------------------------------------------------------------------------------------------------------
# Media: sizes are multiples of 28 (no resampling) chosen so that 4x4-merged-token windows split the grid:
#   image a 224x280 -> merged 8x10 -> 2x3 windows, the last column 2 tokens wide (padded);
#   image b 112x224 -> merged 4x8  -> 1x2 full windows (the reference's extra all-padding window is dropped);
#   video frames 168x224 -> merged 6x8 -> 2x2 windows, the bottom row 2 tokens high (padded).
# ---------------------------------------------------------------------------------------------------------------
def write_media() -> dict:
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key: str, arrs: list[np.ndarray], stem: str):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image_a", [q2.make_image(224, 280, 21)], "image-a-h224-w280")
    save("image_b", [q2.make_image(112, 224, 22)], "image-b-h112-w224")
    save("video6", q2.make_frames(6, 168, 224, 23), "video6-h168-w224")
    save("video5", q2.make_frames(5, 168, 224, 24), "video5-h168-w224")
    return files


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    vid = lambda key, fps: {"type": "video", "video": media[key], "fps": fps}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731
    ask = "Where does the yellow disc go?"
    return {
        "image": [{"role": "user", "content": [img("image_a"), txt("What is in this picture?")]}],
        "video-fps2": [{"role": "user", "content": [vid("video6", 2.0), txt(ask)]}],
        "video-fps0.5": [{"role": "user", "content": [vid("video6", 0.5), txt(ask)]}],
        "video-odd": [{"role": "user", "content": [vid("video5", 1.0), txt("Describe the motion.")]}],
        "mixed": [{"role": "user", "content": [
            img("image_a"), txt("Compare this picture"), img("image_b"), txt(" with that one, then watch:"),
            vid("video6", 2.0), txt("Which moves faster?")]}],
        "video-frac": [{"role": "user", "content": [vid("video6", 3.0), txt(ask)]}],
    }


def media_inputs(messages: list) -> tuple[list, list, list]:
    images, videos, fps = [], [], []
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                images.append(load_png(part["image"]))
            elif part["type"] == "video":
                videos.append(np.stack([load_png(f) for f in part["video"]]))  # (T, H, W, C) uint8
                fps.append(part["fps"])
    return images, videos, fps


def record_case(model, processor, name: str, messages: list) -> dict:
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos, fps = media_inputs(messages)
    kwargs = {}
    if videos:
        # qwen-vl-utils path: frames already sampled; fps = sample_fps per video (process_vision_info's video_kwargs).
        kwargs["do_sample_frames"] = False
        kwargs["fps"] = fps
    inputs = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0].tolist()
    s = len(ids)
    rec: dict = {"messages": messages, "prompt": prompt, "input_ids": ids, "num_tokens": s}
    rec["image_grid_thw"] = inputs["image_grid_thw"].tolist() if images else None
    rec["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else None
    spg = inputs.get("second_per_grid_ts")
    rec["second_per_grid_ts"] = [float(x) for x in spg] if spg is not None else None
    if videos:
        assert rec["second_per_grid_ts"] == [float(np.float32(2.0 / f)) for f in fps], rec["second_per_grid_ts"]
    if images:
        exp = np.concatenate([q2.expected_patches(np.stack([im, im])) for im in images])
        diff = np.abs(inputs["pixel_values"].numpy() - exp).max()
        assert diff < 1e-5, f"{name}: pixel_values differ from the no-resize patchify by {diff}"
        rec["pixel_values"] = q2.tensor_summary(inputs["pixel_values"])
    else:
        rec["pixel_values"] = None
    if videos:
        exp = np.concatenate([q2.expected_patches(v) for v in videos])
        diff = np.abs(inputs["pixel_values_videos"].numpy() - exp).max()
        assert diff < 1e-5, f"{name}: pixel_values_videos differ from the no-resize patchify by {diff}"
        rec["pixel_values_videos"] = q2.tensor_summary(inputs["pixel_values_videos"])
    else:
        rec["pixel_values_videos"] = None
    n_img = sum(int(np.prod(g)) // 4 for g in (rec["image_grid_thw"] or []))
    n_vid = sum(int(np.prod(g)) // 4 for g in (rec["video_grid_thw"] or []))
    assert ids.count(IMAGE_PAD) == n_img and ids.count(VIDEO_PAD) == n_vid

    grids = [("image", g) for g in (rec["image_grid_thw"] or [])] + [("video", g) for g in (rec["video_grid_thw"] or [])]
    rec["windows"] = []
    for kind, g in grids:
        wi, cu = model.model.visual.get_window_index(torch.tensor([g]))
        cu = torch.unique_consecutive(torch.tensor(cu)).tolist()
        assert len(cu) > 2, f"{name}: {kind} grid {g} fits in one window; windows must split it"
        rec["windows"].append({"kind": kind, "grid": g, "window_index": wi.tolist(), "cu_window_seqlens": cu})

    with torch.no_grad():
        pos, deltas = model.model.get_rope_index(
            inputs["input_ids"], inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
            inputs.get("second_per_grid_ts"), inputs["attention_mask"])
        rec["position_ids"] = pos[:, 0, :].tolist()
        rec["rope_deltas"] = int(deltas.reshape(-1)[0])

        if images:
            emb = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            rec["image_embeds"] = q2.tensor_summary(torch.cat(emb, 0))
        if videos:
            emb = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
            rec["video_embeds"] = q2.tensor_summary(torch.cat(emb, 0))

        out = model(**inputs)
        logits = out.logits[0]
        vis = [i for i, t in enumerate(ids) if t in (IMAGE_PAD, VIDEO_PAD)]
        mid = vis[0] if vis else s // 2
        positions = sorted(set([0, mid, (mid + s) // 2, s - 1]))

        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=12, min_new_tokens=0, eos_token_id=None,
                                   pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
        g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
        gen = g.sequences[0, s:].tolist()
        assert len(gen) == 12, f"{name}: generated {len(gen)} tokens"
        raw = [x[0] for x in g.logits]
        for k, r in enumerate(raw):
            assert int(r.argmax()) == gen[k], f"{name}: step {k} is not the argmax of the raw logits"
            q2.check_logits(f"{name} step {k}", r)
        assert len(set(gen)) >= 6, f"{name}: greedy continuation too repetitive: {gen}"
        margins = [float(torch.topk(r, 2).values[0] - torch.topk(r, 2).values[1]) for r in raw]
        assert min(margins) >= 5e-3, f"{name}: greedy step {int(np.argmin(margins))} has a near tie ({min(margins)})"
        assert ENDOFTEXT not in gen and IM_END not in gen, f"{name}: greedy continuation contains EOS: {gen}"
        assert torch.allclose(raw[0], logits[-1], atol=1e-4), f"{name}: generate step 0 != forward last row"

        full_ids = torch.tensor([ids + gen[:-1]])
        full_inputs = dict(inputs)
        full_inputs["input_ids"] = full_ids
        full_inputs["attention_mask"] = torch.ones_like(full_ids)
        full_last = model(**full_inputs).logits[0, -1]
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached differ {full_diff}"
        full_pos, _ = model.model.get_rope_index(full_ids, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                                                 inputs.get("second_per_grid_ts"), full_inputs["attention_mask"])

    rows = [logits[p] for p in positions]
    logit_ids = q2.logit_ids_for(rows + [raw[0], raw[-1]])
    rec["logit_ids"] = logit_ids
    rec["logits"] = []
    for p in positions:
        row = logits[p]
        rec["logits"].append({
            "position": p,
            "token_id": ids[p],
            "max_abs": q2.check_logits(f"{name} pos {p}", row),
            "top20": q2.top_k(row),
            "at_ids": [float(row[i]) for i in logit_ids],
        })
    rec["greedy"] = {
        "new_tokens": gen,
        "text": processor.tokenizer.decode(gen, skip_special_tokens=False),
        "distinct": len(set(gen)),
        "min_top1_margin": min(margins),
        "steps": [
            {"step": k, "max_abs": float(raw[k].abs().max()), "top20": q2.top_k(raw[k]),
             "at_ids": [float(raw[k][i]) for i in logit_ids]}
            for k in (0, len(raw) - 1)
        ],
        "full_forward_last": {
            "input_ids_length": len(ids) + len(gen) - 1,
            "position_ids_tail": full_pos[:, 0, s - 1:].tolist(),
            "max_abs": float(full_last.abs().max()),
            "top20": q2.top_k(full_last),
            "max_abs_diff_vs_cached": full_diff,
        },
    }
    return rec


def write_fixture(ck: dict) -> tuple[Path, dict, dict]:
    d = FIXTURES / ck["name"]
    d.mkdir(parents=True, exist_ok=True)
    cfg = model_config(ck["tie"])
    q2.write_json(d / "config.json", cfg)
    q2.write_json(d / "generation_config.json", GENERATION_CONFIG)
    q2.write_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    q2.write_json(d / "tokenizer_config.json", q2.tokenizer_config())  # Qwen2.5-VL's chat template = Qwen2-VL's (facts §7.1)
    q2.write_json(d / "chat_template.json", {"chat_template": q2.CHAT_TEMPLATE})
    spec = qwen2_5_vl_weight_spec(cfg, ck["seed"])
    q2.write_json(d / "weights.json", spec, indent=1)
    return d, cfg, spec


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    for ck in CHECKPOINTS:
        ck = dict(ck, seed=int(os.environ.get("SEED", ck["seed"])))  # SEED=... to try another seed
        fixture_dir, cfg, spec = write_fixture(ck)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / ck["name"]
            sha = q2.materialize(fixture_dir, spec, ckpt)
            model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
            model.eval()
            for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
                assert not info[k], f"{ck['name']}: {k}: {info[k]}"
            vc = model.config.vision_config
            assert vc.fullatt_block_indexes == [1] and vc.window_size == 112 and vc.tokens_per_second == 2
            processor = AutoProcessor.from_pretrained(ckpt)
            assert type(processor).__name__ == "Qwen2_5_VLProcessor", type(processor).__name__
            golden = {
                "format": "videolm-golden-qwen2-vl/1",
                "checkpoint": {
                    "name": ck["name"],
                    "model_safetensors_sha256": sha,
                    "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
                    "weights_json_sha256": q2.sha256_file(fixture_dir / "weights.json"),
                    "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
                },
                "reference": {
                    "transformers": transformers.__version__,
                    "torch": torch.__version__,
                    "numpy": np.__version__,
                    "model_class": type(model).__name__,
                    "dtype": "float32",
                    "attn_implementation": "eager",
                    "processor": type(processor).__name__,
                    "image_processor": type(processor.image_processor).__name__,
                    "video_processor": type(processor.video_processor).__name__,
                    "processor_call": "processor(text=[apply_chat_template(messages, tokenize=False, "
                                      "add_generation_prompt=True)], images=[HWC uint8 arrays from the PNGs], "
                                      "videos=[(T,H,W,C) uint8 arrays], do_sample_frames=False, fps=[part fps per "
                                      "video], return_tensors='pt')",
                    "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                    "no_resize": "all media sizes are multiples of 28 within [min_pixels, max_pixels]; "
                                 "pixel_values were checked equal (<1e-5) to a plain normalize+patchify",
                },
                "cases": {},
            }
            for case in ck["cases"]:
                rec = record_case(model, processor, case, cases[case])
                golden["cases"][case] = rec
                g = rec["greedy"]
                print(f"  {case}: {rec['num_tokens']} tokens, spg {rec['second_per_grid_ts']}, max|logit| "
                      f"{rec['logits'][-1]['max_abs']:.2f}, greedy {g['new_tokens']} ({g['distinct']} distinct), "
                      f"margin {g['min_top1_margin']:.3g}, full-vs-cached {g['full_forward_last']['max_abs_diff_vs_cached']:.2e}")
            path = fixture_dir / "golden.json"
            q2.write_json(path, golden, indent=1)
            size = path.stat().st_size
            assert size < 1_000_000, f"{path} is {size} bytes"
            print(f"  wrote {path.relative_to(REPO)} ({size} bytes), safetensors sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
