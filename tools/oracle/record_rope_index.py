"""Record golden M-RoPE position ids from transformers 4.57.6 for test/rope-index.test.ts.

Calls the real, unbound `Qwen2VLModel.get_rope_index` (models/qwen2_vl/modeling_qwen2_vl.py) and
`Qwen2_5_VLModel.get_rope_index` (models/qwen2_5_vl/modeling_qwen2_5_vl.py) with a stub `self` that only
carries the config fields the method reads. Batch size 1, no attention mask.

Besides the 4.57.6 behaviour (rule "hf-4.57"), Qwen2.5-VL cases are also recorded under rule "qwen-float":
4.57.6 casts `second_per_grid_t` to int64 before multiplying (`torch.as_tensor(..., dtype=range_tensor.dtype)`),
so 0.5 s per grid becomes 0; Qwen's own training code (qwen-vl-finetune rope2d `get_rope_index_25`) multiplies
in float32 and truncates afterwards. The float variant is produced by running the same 4.57.6 function with
`torch.as_tensor` patched to keep the float dtype, which is exactly the rope2d arithmetic.

Run: .venv-oracle/bin/python tools/oracle/record_rope_index.py
"""

import json
import random
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

# Real Qwen2-VL ids (tokenizer_config.json added tokens).
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = 151652, 151653, 151655, 151656
MERGE = 2
OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "rope-index" / "cases.json"

SPG_CHOICES = [0.5, 1.0, 1.25, 0.0833, 2.0, 1.5, 3.0, 0.6667]


def stub(tokens_per_second=None):
    vision = SimpleNamespace(spatial_merge_size=MERGE, tokens_per_second=tokens_per_second)
    config = SimpleNamespace(
        vision_config=vision,
        image_token_id=IMAGE_PAD,
        video_token_id=VIDEO_PAD,
        vision_start_token_id=VISION_START,
    )
    return SimpleNamespace(config=config)


def random_text(rng, n):
    # Ordinary vocabulary ids, away from the special ids.
    return [rng.randrange(0, 151000) for _ in range(n)]


def random_case(rng, allow_bare_vision_start):
    n_visual = rng.randint(1, 4)
    ids, visuals = [], []
    for _ in range(n_visual):
        ids += random_text(rng, rng.randint(0, 5))
        if allow_bare_vision_start and rng.random() < 0.2:
            # A <|vision_start|> followed by text is not a visual block for get_rope_index.
            ids += [VISION_START] + random_text(rng, 1)
        kind = rng.choice(["image", "video"])
        if kind == "image":
            t = rng.choice([1, 1, 1, 2])
        else:
            t = rng.randint(1, 6)
        h = 2 * rng.randint(1, 7)
        w = 2 * rng.randint(1, 7)
        visual = {"kind": kind, "grid": [t, h, w]}
        if kind == "video" and rng.random() < 0.85:
            visual["secondPerGrid"] = rng.choice(SPG_CHOICES)
        visuals.append(visual)
        ids += [VISION_START] + [IMAGE_PAD if kind == "image" else VIDEO_PAD] * (t * h * w // MERGE**2) + [VISION_END]
    ids += random_text(rng, rng.choice([0, 1, 2, 3, 4, 5]))
    return ids, visuals


def grids(visuals, kind):
    rows = [v["grid"] for v in visuals if v["kind"] == kind]
    return torch.tensor(rows, dtype=torch.long) if rows else None


def run_qwen2(ids, visuals):
    pos, delta = Qwen2VLModel.get_rope_index(
        stub(), torch.tensor([ids], dtype=torch.long), grids(visuals, "image"), grids(visuals, "video"), None
    )
    return pos[:, 0, :].tolist(), int(delta[0, 0])


def run_qwen25(ids, visuals, tps, float_rule):
    videos = [v for v in visuals if v["kind"] == "video"]
    spg = None
    if videos and all("secondPerGrid" in v for v in videos):
        # The processor returns a python list which BatchFeature turns into a float32 tensor.
        spg = torch.tensor([v["secondPerGrid"] for v in videos], dtype=torch.float32)
    args = (stub(tps), torch.tensor([ids], dtype=torch.long), grids(visuals, "image"), grids(visuals, "video"), spg, None)
    if not float_rule:
        pos, delta = Qwen2_5_VLModel.get_rope_index(*args)
    else:
        real_as_tensor = torch.as_tensor

        def keep_float(data, dtype=None, device=None):
            if isinstance(data, (float, torch.Tensor)) and dtype is torch.long:
                return real_as_tensor(data, device=device)
            return real_as_tensor(data, dtype=dtype, device=device)

        with mock.patch.object(torch, "as_tensor", keep_float):
            pos, delta = Qwen2_5_VLModel.get_rope_index(*args)
    return pos[:, 0, :].tolist(), int(delta[0, 0])


def strip_missing_spg(visuals, tps):
    # get_rope_index takes either all second_per_grid_ts or none (then 1.0 for every video).
    videos = [v for v in visuals if v["kind"] == "video"]
    if tps is None or not all("secondPerGrid" in v for v in videos):
        return [{k: x for k, x in v.items() if k != "secondPerGrid"} for v in visuals]
    return visuals


def main():
    rng = random.Random(20240917)
    cases = []
    # Worked example A and B of video-preprocessing-facts.md §3 (x x VS, video (t,4,4), VE x).
    for t in (2, 4):
        ids = [11, 12, VISION_START] + [VIDEO_PAD] * (t * 4) + [VISION_END, 13]
        for model, tps in (("qwen2-vl", None), ("qwen2.5-vl", 2)):
            vis = [{"kind": "video", "grid": [t, 4, 4]} | ({} if tps is None else {"secondPerGrid": 1.0})]
            cases.append({"name": f"facts-example-t{t}-{model}", "model": model, "tokensPerSecond": tps, "rule": "hf-4.57", "ids": ids, "visuals": vis})

    for i in range(40):
        ids, visuals = random_case(rng, allow_bare_vision_start=(i % 3 == 0))
        cases.append({"name": f"random-{i}-qwen2-vl", "model": "qwen2-vl", "tokensPerSecond": None, "rule": "hf-4.57", "ids": ids, "visuals": strip_missing_spg(visuals, None)})
    for i in range(40):
        ids, visuals = random_case(rng, allow_bare_vision_start=(i % 3 == 0))
        tps = rng.choice([2, 4])
        vis = strip_missing_spg(visuals, tps)
        cases.append({"name": f"random-{i}-qwen2.5-vl", "model": "qwen2.5-vl", "tokensPerSecond": tps, "rule": "hf-4.57", "ids": ids, "visuals": vis})
        cases.append({"name": f"random-{i}-qwen2.5-vl-float", "model": "qwen2.5-vl", "tokensPerSecond": tps, "rule": "qwen-float", "ids": ids, "visuals": vis})
    # Only text, and a visual at the very start / very end of the sequence.
    cases.append({"name": "text-only", "model": "qwen2-vl", "tokensPerSecond": None, "rule": "hf-4.57", "ids": random_text(rng, 7), "visuals": []})
    cases.append({"name": "video-first-no-trailing-text", "model": "qwen2-vl", "tokensPerSecond": None, "rule": "hf-4.57",
                  "ids": [VISION_START] + [VIDEO_PAD] * (3 * 2 * 4 // 4), "visuals": [{"kind": "video", "grid": [3, 2, 4]}]})

    for case in cases:
        if case["model"] == "qwen2-vl":
            pos, delta = run_qwen2(case["ids"], case["visuals"])
        else:
            pos, delta = run_qwen25(case["ids"], case["visuals"], case["tokensPerSecond"], case["rule"] == "qwen-float")
        case["positionIds"] = pos
        case["ropeDelta"] = delta

    n_diff = sum(
        1 for a, b in zip(cases, cases[1:]) if a["rule"] == "hf-4.57" and b["rule"] == "qwen-float" and a["positionIds"] != b["positionIds"]
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": "transformers 4.57.6 Qwen2VLModel.get_rope_index / Qwen2_5_VLModel.get_rope_index (unbound, stub config)",
        "script": "tools/oracle/record_rope_index.py",
        "tokens": {"visionStart": VISION_START, "visionEnd": VISION_END, "imagePad": IMAGE_PAD, "videoPad": VIDEO_PAD},
        "spatialMergeSize": MERGE,
    }
    OUT.write_text(json.dumps({"meta": meta, "cases": cases}, separators=(",", ":")) + "\n")
    print(f"wrote {len(cases)} cases to {OUT} ({n_diff} qwen2.5 cases where the float rule differs from 4.57.6)")


if __name__ == "__main__":
    main()
