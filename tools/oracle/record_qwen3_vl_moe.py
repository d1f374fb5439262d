"""Records the golden fixtures for a tiny random Qwen3-VL-MoE checkpoint (reference: transformers 4.57.6).

Run from the repository root (about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_qwen3_vl_moe.py

`qwen3_vl_moe` (Qwen3VLMoeForConditionalGeneration; Qwen3-VL-30B-A3B / 235B-A22B) is Qwen3-VL (record_qwen3_vl.py,
same prompt layout, processor, vision tower with DeepStack, QK-norm decoder, interleaved M-RoPE) with a sparse MoE
block instead of the dense MLP in the layers that `decoder_sparse_step` / `mlp_only_layers` select (all of them in
the hub checkpoints and here). Facts with file:line citations: docs/qwen3_5-reference.md, "Qwen3-VL-MoE (4.57.6)".
The tiny checkpoint has the Qwen3-VL tiny shape (hidden 64, 3 layers, 4/2 heads of 16, vision depth 3 with DeepStack
after blocks 0 and 1) and per layer: router `mlp.gate.weight [E, h]`, experts `mlp.experts.gate_up_proj [E, h, 2*Im]`
(x @ W; columns: gate then up) and `mlp.experts.down_proj [E, Im, h]` — transposed relative to transformers 5.x's
Qwen3.5-MoE modules — no shared expert; E 8, top-k 2, Im 32.

Layout as record_qwen3_vl.py under test/fixtures/qwen3_vl_moe/ (media/ holds the same PNGs as the Qwen3-VL fixture),
golden.json format `videolm-golden-qwen3_vl_moe/1` = `videolm-golden-qwen3-vl/1` plus per case `router` (as
record_qwen3_5_moe.py: top-k expert ids/weights per layer for every prompt token, counts, smallest k-th/(k+1)-th logit
gap over every routing decision of the case), `checkpoint.moe_layers`, and top-level `moe_block` (layer 0's MoE
block alone on random inputs: a unit case for an engine's MoE block). Cases: the Instruct checkpoint's `text`, `image`, `video` (6 frames,
even) and `video-odd` (5 frames, padded to 6).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_weights  # noqa: E402
import record_qwen3_vl as rv  # noqa: E402
from moe_common import RouterTap, moe_block_spec, record_moe_block, record_router  # noqa: E402
from record_qwen2_vl import make_frames, make_image, sha256_file, write_json  # noqa: E402

import transformers  # noqa: E402
from transformers import AutoProcessor, Qwen3VLMoeForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen3_vl_moe"
MEDIA = FIXTURES / "media"
NAME = "qwen3_vl_moe-tiny"
SEED = int(os.environ.get("QWEN3_VL_MOE_SEED", "20251201"))
CASES = ["text", "image", "video", "video-odd"]
MIN_ROUTER_GAP = 1e-3
# The Qwen3-VL recorder's case helpers read their fixture root from module globals: point them here.
rv.FIXTURES = FIXTURES
rv.MEDIA = MEDIA


def model_config() -> dict:
    """Hub-style nested Qwen3-VL-MoE config.json (cf. Qwen/Qwen3-VL-30B-A3B-Instruct), shrunk to Qwen3-VL tiny."""
    cfg = rv.model_config()
    tc = dict(cfg["text_config"])
    tc.update({
        "model_type": "qwen3_vl_moe_text",
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "moe_intermediate_size": 32,
        "norm_topk_prob": True,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "router_aux_loss_coef": 0.001,
    })
    vc = dict(cfg["vision_config"], model_type="qwen3_vl_moe")
    return {**cfg, "architectures": ["Qwen3VLMoeForConditionalGeneration"], "model_type": "qwen3_vl_moe",
            "text_config": dict(sorted(tc.items())), "vision_config": vc}


def moe_layers(tc: dict) -> list[int]:
    """Layers with a sparse MoE block (Qwen3VLMoeTextDecoderLayer.__init__, modeling_qwen3_vl_moe.py:327-331)."""
    return [i for i in range(tc["num_hidden_layers"])
            if i not in tc["mlp_only_layers"] and tc["num_experts"] > 0 and (i + 1) % tc["decoder_sparse_step"] == 0]


# Weight spec (ported to TypeScript as qwen3VlMoeWeightSpec() in src/testing/tiny-checkpoint.ts): the Qwen3-VL spec
# (dense MLP of width intermediate_size in every layer) with the MoE layers' dense MLP replaced by the MoE block.
def qwen3_vl_moe_weight_spec(cfg: dict, seed: int) -> dict:
    tc = cfg["text_config"]
    base = rv.qwen3_vl_weight_spec(cfg, seed)["tensors"]
    sparse = moe_layers(tc)
    dense_mlp = tuple(f"model.language_model.layers.{i}.mlp." for i in sparse)
    out = [t for t in base if not t["name"].startswith(dense_mlp)]
    for i in sparse:
        out += moe_block_spec(f"model.language_model.layers.{i}", tc["hidden_size"], tc, transposed=True, shared=False)
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


def write_media() -> dict:
    """The Qwen3-VL fixture's image A and videos (same generator calls, so the same PNG bytes)."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key, arrs, stem):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image_a", [make_image(64, 96, 21)], "image-a-h64-w96")
    files["image_b"] = ["media/(image B: only the unrecorded `mixed` case of rv.build_cases uses it)"]
    save("video6", make_frames(6, 64, 64, 23), "video6-h64-w64")
    save("video5", make_frames(5, 64, 64, 24), "video5-h64-w64")
    return files


def processor_inputs(processor, messages):
    prompt = processor.apply_chat_template(rv.template_messages(messages), tokenize=False, add_generation_prompt=True)
    images, videos, metadata = rv.media_inputs(messages)
    kwargs = {"do_resize": False}
    if videos:
        kwargs.update(do_sample_frames=False, video_metadata=metadata)
    return processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    all_cases = rv.build_cases(media)
    cases = {c: all_cases[c] for c in CASES}
    cfg = model_config()
    spec = qwen3_vl_moe_weight_spec(cfg, SEED)
    d = FIXTURES / NAME
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", rv.GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", rv.PREPROCESSOR_CONFIG)
    write_json(d / "video_preprocessor_config.json", rv.VIDEO_PREPROCESSOR_CONFIG)
    write_json(d / "tokenizer_config.json", rv.tokenizer_config(rv.INSTRUCT_TEMPLATE))
    write_json(d / "chat_template.json", {"chat_template": rv.INSTRUCT_TEMPLATE})
    write_json(d / "weights.json", spec, indent=1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / NAME
        ckpt.mkdir()
        for f in rv.FIXTURE_FILES + ["video_preprocessor_config.json"]:
            shutil.copyfile(d / f, ckpt / f)
        shutil.copyfile(rv.TOKENIZER_DIR / "tokenizer.json", ckpt / "tokenizer.json")
        sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
        model, info = Qwen3VLMoeForConditionalGeneration.from_pretrained(
            ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        model.eval()
        for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
            assert not info[k], f"{NAME}: {k}: {info[k]}"
        tc = model.config.text_config
        layers = model.model.language_model.layers
        assert [i for i, l in enumerate(layers) if hasattr(l.mlp, "experts")] == moe_layers(cfg["text_config"])
        # 4.57 keeps the checkpoint orientation: x @ gate_up_proj[e] ([h, 2*Im]), then @ down_proj[e] ([Im, h]).
        assert tuple(layers[0].mlp.experts.gate_up_proj.shape) == (tc.num_experts, tc.hidden_size,
                                                                   2 * tc.moe_intermediate_size)
        processor = AutoProcessor.from_pretrained(ckpt)
        tap = RouterTap(layers, tc.num_experts_per_tok, lambda out: out)
        golden = {
            "format": "videolm-golden-qwen3_vl_moe/1",
            "checkpoint": {
                "name": NAME,
                "model_safetensors_sha256": sha,
                "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
                "weights_json_sha256": sha256_file(d / "weights.json"),
                "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
                "moe_layers": moe_layers(cfg["text_config"]),
            },
            "reference": {
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "model_class": type(model).__name__,
                "dtype": "float32",
                "attn_implementation": "eager",
                "experts_forward": "eval mode: every expert on every token (torch.bmm), weighted by the scattered "
                                   "renormalised top-k weights (zero elsewhere), summed over experts",
                "processor": type(processor).__name__,
                "image_processor": type(processor.image_processor).__name__,
                "video_processor": type(processor.video_processor).__name__,
                "processor_call": "processor(text=[apply_chat_template(messages, tokenize=False, "
                                  "add_generation_prompt=True)], images=[HWC uint8], videos=[(T,H,W,C) uint8, "
                                  "padded to even T as qwen-vl-utils 0.0.14], video_metadata=[{fps: sample_fps, "
                                  "frames_indices: range(T), total_num_frames: T}], do_resize=False, "
                                  "do_sample_frames=False, return_tensors='pt')",
                "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                "router": "per case, the prompt forward's router (mlp.gate) per MoE layer: softmax(fp32) -> top-k -> "
                          "renormalised; min_topk_gap_all_calls also covers the decode steps and the full forward",
            },
            "moe_block": record_moe_block(layers[0].mlp, 0, tc.hidden_size, tc.num_experts_per_tok),
            "cases": {},
        }
        for case, messages in cases.items():
            tap.clear()
            rec = rv.record_case(model, processor, case, messages, None)
            gap_all = tap.min_gap()
            inputs = processor_inputs(processor, messages)
            assert inputs["input_ids"][0].tolist() == rec["input_ids"]
            router = record_router(lambda: model(**inputs), tap, tc.num_experts, gap_all)
            assert gap_all >= MIN_ROUTER_GAP, f"{case}: router near tie ({gap_all}); pick another seed"
            assert router["distinct_experts"] >= 3, f"{case}: routing is degenerate: {router['distinct_experts']}"
            rec["router"] = router
            golden["cases"][case] = rec
            g = rec["greedy"]
            print(f"  {NAME} {case}: {rec['num_tokens']} tokens, greedy {g['new_tokens']} "
                  f"({g['distinct']} distinct, margin {g['min_top1_margin']:.3g}), experts per layer "
                  f"{[l['distinct'] for l in router['layers']]}, router gap {gap_all:.3g}, "
                  f"timestamps {[v['text'] for v in rec['video_timestamps']]}")
        tap.remove()
        write_json(d / "golden.json", golden, indent=1)
        print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
