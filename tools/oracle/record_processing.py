"""Record golden fixtures for videolm's pixel preprocessing (src/processing/*).

Reference: torch 2.13 CPU + torchvision 0.28 + transformers 4.57.6 (the oracle venv), and a copy of
qwen-vl-utils `smart_resize` (QVU 0.0.11, whose `>= factor` clamps videolm keeps; see smart-resize.ts).

    /work/main/.venv-oracle/bin/python tools/oracle/record_processing.py            # writes the fixtures
    /work/main/.venv-oracle/bin/python tools/oracle/record_processing.py --sweep D  # + raw outputs of a
        larger resize sweep into D (for measuring, not committed)

Writes test/fixtures/processing/{resize,smart_resize,qwen2_vl_pixels}.json. Inputs are synthetic images
regenerated in TypeScript by test/fixtures/processing/synthetic-image.ts (same integer hash).
"""

import argparse
import base64
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as tv1
from torchvision.transforms.v2 import functional as tv2

import transformers
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "processing")
M32 = 0xFFFFFFFF


# --- synthetic images (twin of test/fixtures/processing/synthetic-image.ts) ----------------------------
def imul(a, b):
    return (a * b) & M32


def hash32(index, seed):
    h = (imul(index, 0x9E3779B1) + imul(seed, 0x85EBCA77) + 0x165667B1) & M32
    h ^= h >> 15
    h = imul(h, 0x2C1B3C6D)
    h ^= h >> 12
    h = imul(h, 0x297A2D39)
    h ^= h >> 15
    return h


def hash32_np(index, seed):
    """Vectorised hash32 over a uint64 index array (same values)."""
    i = index.astype(np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64((seed * 0x85EBCA77) & M32) + np.uint64(0x165667B1)) & np.uint64(M32)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & np.uint64(M32)
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & np.uint64(M32)
    h ^= h >> np.uint64(15)
    return h


def synthetic_image(height, width, pattern, seed):
    """HWC uint8."""
    idx = np.arange(height * width * 3, dtype=np.uint64)
    h = hash32_np(idx, seed).reshape(height, width, 3)
    if pattern == "noise":
        return (h & np.uint64(255)).astype(np.uint8)
    y = np.arange(height, dtype=np.int64)[:, None, None]
    x = np.arange(width, dtype=np.int64)[None, :, None]
    c = np.arange(3, dtype=np.int64)[None, None, :]
    v = (x * 5 + y * 3 + c * 60 + seed) & 511
    v = np.where(v > 255, 511 - v, v)
    return np.minimum(255, v + (h & np.uint64(7)).astype(np.int64)).astype(np.uint8)


assert hash32(12345, 7) == int(hash32_np(np.array([12345]), 7)[0])


# --- resize references ----------------------------------------------------------------------------------
def chw(img_hwc):
    return torch.from_numpy(img_hwc).permute(2, 0, 1).contiguous()


def resize_v2_u8(img_hwc, oh, ow):
    """transformers' path: torchvision v2 on uint8 → torch's native uint8 antialias kernel."""
    out = tv2.resize(chw(img_hwc), [oh, ow], interpolation=InterpolationMode.BICUBIC, antialias=True)
    assert out.dtype == torch.uint8
    return out.permute(1, 2, 0).contiguous().numpy()


def resize_v1_float(img_hwc, oh, ow):
    """qwen-vl-utils' path: torchvision v1 functional.resize casts to float32, clamps, rounds."""
    out = tv1.resize(chw(img_hwc), [oh, ow], interpolation=InterpolationMode.BICUBIC, antialias=True)
    assert out.dtype == torch.uint8
    return out.permute(1, 2, 0).contiguous().numpy()


def resize_pil(img_hwc, oh, ow):
    """qwen-vl-utils fetch_image's path for still images: PIL Image.resize, BICUBIC (Pillow Resample.c)."""
    from PIL import Image

    return np.asarray(Image.fromarray(img_hwc).resize((ow, oh), Image.BICUBIC))


PATHS = (("u8", resize_v2_u8), ("float", resize_v1_float), ("pil", resize_pil))


def check_layout_independence(img_hwc, oh, ow):
    """The references run on TCHW clips that may be channels-last (QVU permutes a THWC decode): same bytes."""
    t = torch.from_numpy(np.stack([img_hwc, img_hwc[::-1].copy()])).permute(0, 3, 1, 2)  # channels-last strides
    for fn, ref in ((tv2.resize, resize_v2_u8), (tv1.resize, resize_v1_float)):
        out = fn(t, [oh, ow], interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert np.array_equal(out[0].permute(1, 2, 0).numpy(), ref(img_hwc, oh, ow)), fn
        assert np.array_equal(out[1].permute(1, 2, 0).numpy(), ref(img_hwc[::-1].copy(), oh, ow)), fn


def sha256(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# (in_h, in_w, out_h, out_w, pattern, seed): upscale, downscale, odd sizes, one side only, aspect extremes,
# and the real workloads (1080p → 560×1008 per QVU video budget, 480p → 476×644).
RESIZE_CASES = [
    (17, 23, 40, 31, "noise", 1),
    (40, 31, 17, 23, "noise", 2),
    (33, 47, 33, 20, "noise", 3),  # width only
    (33, 47, 60, 47, "noise", 4),  # height only
    (64, 64, 28, 56, "smooth", 5),
    (9, 200, 28, 532, "smooth", 6),  # thin strip, upscale
    (300, 3, 196, 28, "noise", 7),  # aspect extreme, width upscales ×9
    (101, 157, 56, 84, "noise", 8),
    (57, 91, 57, 91, "noise", 9),  # unchanged: returned as is
    (75, 100, 28, 28, "smooth", 10),  # strong downscale
    (5, 7, 140, 196, "smooth", 11),  # strong upscale
    (120, 90, 121, 89, "noise", 12),  # near-identity
    (480, 640, 476, 644, "smooth", 13),
    (1080, 1920, 560, 1008, "smooth", 14),
    (720, 1280, 336, 644, "noise", 15),
]
FULL_DATA_LIMIT = 40 * 40 * 3  # store the whole output (base64) below this many bytes


def resize_fixture():
    cases = []
    for ih, iw, oh, ow, pattern, seed in RESIZE_CASES:
        img = synthetic_image(ih, iw, pattern, seed)
        entry = {"in": [ih, iw], "out": [oh, ow], "pattern": pattern, "seed": seed}
        for name, fn in PATHS:
            out = fn(img, oh, ow)
            rec = {"sha256": sha256(out), "sum": int(out.astype(np.int64).sum())}
            if out.size <= FULL_DATA_LIMIT:
                rec["data_b64"] = base64.b64encode(out.tobytes()).decode()
            entry[name] = rec
        a = resize_v2_u8(img, oh, ow).astype(np.int32)
        b = resize_v1_float(img, oh, ow).astype(np.int32)
        entry["u8_vs_float"] = {"differing": int((a != b).sum()), "max_abs_diff": int(np.abs(a - b).max())}
        cases.append(entry)
    check_layout_independence(synthetic_image(37, 53, "noise", 99), 60, 28)
    return {
        "about": "torchvision resize(uint8 CHW, [h,w], BICUBIC, antialias=True) on CPU. 'u8' = v2 functional "
        "(native uint8 kernel; transformers 4.57.6 Qwen2-VL processors), 'float' = v1 functional (float32 "
        "path; qwen-vl-utils fetch_video), 'pil' = PIL Image.resize BICUBIC (qwen-vl-utils fetch_image). Output bytes are HWC RGB. Input = syntheticImage(in_h, in_w, "
        "pattern, seed).",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": __import__("PIL").__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cases": cases,
    }


def sweep(out_dir):
    """Many random sizes, raw outputs for a TypeScript comparison script (measurement only)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(1234)
    index = []
    for k in range(int(os.environ.get("SWEEP_N", "120"))):
        ih, iw = int(rng.integers(2, 400)), int(rng.integers(2, 400))
        if k % 3 == 0:  # downscale
            oh, ow = max(1, ih // int(rng.integers(2, 6))), max(1, iw // int(rng.integers(1, 6)))
        elif k % 3 == 1:  # upscale
            oh, ow = ih * int(rng.integers(1, 4)) + int(rng.integers(0, 9)), iw + int(rng.integers(0, 200))
        else:
            oh, ow = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        pattern = "noise" if k % 2 else "smooth"
        img = synthetic_image(ih, iw, pattern, 1000 + k)
        for name, fn in PATHS:
            fn(img, oh, ow).tofile(os.path.join(out_dir, f"{k}_{name}.bin"))
        index.append({"k": k, "in": [ih, iw], "out": [oh, ow], "pattern": pattern, "seed": 1000 + k})
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f)


# --- smart_resize ----------------------------------------------------------------------------------------
def qvu_smart_resize(height, width, factor, min_pixels, max_pixels):
    """qwen-vl-utils 0.0.11 smart_resize (both `>= factor` clamps; 0.0.14 lost the second one)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_fixture():
    budgets = [
        (28, 3136, 12845056),  # Qwen2-VL hub image limits
        (28, 100352, 602112),  # QVU video per-frame limits
        (28, 100352, 235200),  # QVU 768-frame budget
        (28, 3136, 50176),  # small budget: too-large branch on most sizes
        (32, 131072, 786432),  # patch 16 (QVU 0.0.14 / Qwen3-VL factor)
        (28, 3136, 3136),  # single-token budget
    ]
    sizes = [(1080, 1920), (480, 640), (70, 70), (98, 98), (42, 42), (14, 14), (13, 2000), (10, 2000), (1, 1),
             (5, 1000), (1, 200), (1, 201), (2, 401), (3000, 15), (7, 1400), (12, 30), (4032, 3024),
             (2160, 3840), (720, 1280), (360, 640), (240, 426), (1, 28), (27, 5400), (15, 2999)]
    rng = np.random.default_rng(77)
    for _ in range(80):
        sizes.append((int(rng.integers(1, 5000)), int(rng.integers(1, 5000))))
    for _ in range(30):
        h = int(rng.integers(1, 60))
        sizes.append((h, h * int(rng.integers(50, 220))))  # thin strips around the ratio limit
    rows = []
    for factor, mn, mx in budgets:
        for h, w in sizes:
            row = {"h": h, "w": w, "factor": factor, "min": mn, "max": mx}
            try:
                row["qvu"] = list(qvu_smart_resize(h, w, factor, mn, mx))
            except ValueError:
                row["qvu"] = "error"
            try:
                row["hf"] = list(hf_smart_resize(h, w, factor, mn, mx))
            except ValueError:
                row["hf"] = "error"
            rows.append(row)
    return {
        "about": "smart_resize(h, w, factor, min, max): 'qvu' = qwen-vl-utils with both >= factor clamps, "
        "'hf' = transformers 4.57.6 image_processing_qwen2_vl.smart_resize; 'error' = aspect ratio > 200.",
        "transformers": transformers.__version__,
        "rows": rows,
    }


# --- pixel_values of the Qwen2-VL processors -----------------------------------------------------------
FIXED_INDICES = [0, 1, 2, 195, 196, 197, 391, 392, 587, 588, 783, 784, 1175, 1176, 1177, 2351, 2352, 4703, 4704,
                 9999, 123457, 777777]


def pixel_stats(pv, grid):
    pv = pv.float().contiguous()
    flat = pv.reshape(-1)
    return {
        "shape": list(pv.shape),
        "grid_thw": [int(v) for v in grid],
        "sha256_f32le": hashlib.sha256(flat.numpy().astype("<f4").tobytes()).hexdigest(),
        "sum": float(flat.double().sum()),
        "abs_sum": float(flat.double().abs().sum()),
        "at": {str(i): float(flat[i]) for i in FIXED_INDICES if i < flat.numel()},
    }


def vision_position_ids(grid, merge):
    """modeling_qwen2_vl.py Qwen2VisionTransformerPretrainedModel.rot_pos_emb, the pos_ids part."""
    t, h, w = grid
    hpos = torch.arange(h).unsqueeze(1).expand(-1, w).reshape(h // merge, merge, w // merge, merge)
    hpos = hpos.permute(0, 2, 1, 3).flatten()
    wpos = torch.arange(w).unsqueeze(0).expand(h, -1).reshape(h // merge, merge, w // merge, merge)
    wpos = wpos.permute(0, 2, 1, 3).flatten()
    return torch.stack([hpos, wpos], dim=-1).repeat(t, 1)


def pixels_fixture():
    from PIL import Image
    from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorFast, Qwen2VLVideoProcessor
    from transformers.models.auto.image_processing_auto import FORCE_FAST_IMAGE_PROCESSOR

    # AutoProcessor / AutoImageProcessor in 4.57.6 loads the *fast* (torchvision) Qwen2-VL image processor even
    # when the checkpoint saved the slow one (FORCE_FAST_IMAGE_PROCESSOR), so that is the reference.
    assert "Qwen2VLImageProcessor" in FORCE_FAST_IMAGE_PROCESSOR
    cfg = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2, merge_size=2)
    out = {"about": "transformers 4.57.6 Qwen2VLImageProcessorFast / Qwen2VLVideoProcessor pixel_values "
           "(rescale+normalize fused, CLIP mean/std, do_resize=True). Inputs = syntheticImage.", "cases": []}

    img = synthetic_image(300, 451, "smooth", 21)
    fast = Qwen2VLImageProcessorFast(**cfg)
    res = fast(images=[Image.fromarray(img)], return_tensors="pt")
    case = {"kind": "image", "frames": [[300, 451, "smooth", 21]], "min_pixels": 3136, "max_pixels": 12845056}
    case.update(pixel_stats(res["pixel_values"], res["image_grid_thw"][0]))
    # the slow (PIL) processor, for the record: how far it is from the fast one
    slow = Qwen2VLImageProcessor(**cfg)(images=[Image.fromarray(img)], return_tensors="pt")["pixel_values"]
    case["slow_processor_max_abs_diff"] = float((slow - res["pixel_values"]).abs().max())
    out["cases"].append(case)

    # an image already at a multiple of 28 within the limits: no resize at all
    img2 = synthetic_image(56, 84, "noise", 22)
    res2 = fast(images=[Image.fromarray(img2)], return_tensors="pt")
    case2 = {"kind": "image", "frames": [[56, 84, "noise", 22]], "min_pixels": 3136, "max_pixels": 12845056}
    case2.update(pixel_stats(res2["pixel_values"], res2["image_grid_thw"][0]))
    out["cases"].append(case2)

    # a 5-frame video (odd: the last frame is repeated), frames differ (seed per frame)
    frames = [[240, 320, "noise" if i % 2 else "smooth", 30 + i] for i in range(5)]
    video = np.stack([synthetic_image(*f) for f in frames])  # T H W C
    vproc = Qwen2VLVideoProcessor(min_pixels=100352, max_pixels=602112)
    vres = vproc(videos=[video], return_tensors="pt", do_sample_frames=False)
    case3 = {"kind": "video", "frames": frames, "min_pixels": 100352, "max_pixels": 602112}
    case3.update(pixel_stats(vres["pixel_values_videos"], vres["video_grid_thw"][0]))
    out["cases"].append(case3)

    out["vision_position_ids"] = [
        {"grid_thw": list(g), "merge": 2, "ids": vision_position_ids(g, 2).flatten().tolist()}
        for g in ([1, 4, 4], [1, 4, 6], [3, 2, 4], [2, 6, 2])
    ]
    return out


def write(name, obj):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", help="also write raw outputs of a larger resize sweep into this folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    write("resize.json", resize_fixture())
    write("smart_resize.json", smart_resize_fixture())
    write("qwen2_vl_pixels.json", pixels_fixture())
    if args.sweep:
        sweep(args.sweep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
