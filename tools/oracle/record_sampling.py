"""Record golden fixtures for videolm's video sampling (src/sampling/qwen-vl-utils.ts) and frame pipeline
(src/media/video.ts).

Reference: qwen-vl-utils 0.0.14 — QwenLM/Qwen3-VL `qwen-vl-utils/src/qwen_vl_utils/vision_process.py` at commit
fe120581464a989a8d0dcc3c0fc925e65f8b3ba1 (pyproject version 0.0.14; identical at the repo's current HEAD). The package
is not installable here, so the functions below marked VERBATIM are copied unchanged from that file; `qvu_plan`
strings together the lines of `_read_video_torchcodec` and `fetch_video` that decide indices, sample_fps and the size.
torch 2.13 CPU (float32 linspace) and torchvision 0.28 (v1 functional.resize) from the oracle venv.

    /work/main/.venv-oracle/bin/python tools/oracle/record_sampling.py

Writes test/fixtures/sampling/{plans,linspace,parity}.json and parity-*.rgb.gz. The parity videos are generated
with the same ffmpeg binary and filter chain as test/media-helpers.ts (`codedSource`), decoded with PyAV, sampled with
the QVU plan and resized with torchvision exactly as fetch_video does.
"""

import gzip
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
from typing import Any, Dict, Optional, Tuple

import av
import numpy as np
import torch
import torchvision
from torchvision import transforms
from torchvision.transforms import InterpolationMode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "sampling")
FFMPEG = os.environ.get("FFMPEG_PATH") or os.path.join(ROOT, "node_modules", "@ffmpeg-installer", "linux-x64", "ffmpeg")
logger = logging.getLogger(__name__)

# ---- VERBATIM from vision_process.py @ fe120581 (module constants and helpers) ------------------------------------
MAX_RATIO = 200
SPATIAL_MERGE_SIZE = 2
IMAGE_MIN_TOKEN_NUM = 4
IMAGE_MAX_TOKEN_NUM = 16384
VIDEO_MIN_TOKEN_NUM = 128
VIDEO_MAX_TOKEN_NUM = 768

FPS = 2.0
FRAME_FACTOR = 2
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MAX_NUM_WORKERS_FETCH_VIDEO = 8

MODEL_SEQ_LEN = int(float(os.environ.get('MODEL_SEQ_LEN', 128000)))


def round_by_factor(number: int, factor: int) -> int:
    """Returns the closest integer to 'number' that is divisible by 'factor'."""
    return round(number / factor) * factor


def ceil_by_factor(number: int, factor: int) -> int:
    """Returns the smallest integer greater than or equal to 'number' that is divisible by 'factor'."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: int, factor: int) -> int:
    """Returns the largest integer less than or equal to 'number' that is divisible by 'factor'."""
    return math.floor(number / factor) * factor


def smart_resize(height: int, width: int, factor: int, min_pixels: Optional[int] = None, max_pixels: Optional[int] = None) -> Tuple[int, int]:
    """
    Rescales the image so that the following conditions are met:

    1. Both dimensions (height and width) are divisible by 'factor'.
    2. The total number of pixels is within the range ['min_pixels', 'max_pixels'].
    3. The aspect ratio of the image is maintained as closely as possible.
    """
    max_pixels = max_pixels if max_pixels is not None else (IMAGE_MAX_TOKEN_NUM * factor ** 2)
    min_pixels = min_pixels if min_pixels is not None else (IMAGE_MIN_TOKEN_NUM * factor ** 2)
    assert max_pixels >= min_pixels, "The max_pixels of image must be greater than or equal to min_pixels."
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def smart_nframes(
    ele: Dict[str, Any],
    total_frames: int,
    video_fps: "int | float",
) -> int:
    assert not ("fps" in ele and "nframes" in ele), "Only accept either `fps` or `nframes`"
    if "nframes" in ele:
        nframes = round_by_factor(ele["nframes"], FRAME_FACTOR)
    else:
        fps = ele.get("fps", FPS)
        min_frames = ceil_by_factor(ele.get("min_frames", FPS_MIN_FRAMES), FRAME_FACTOR)
        max_frames = floor_by_factor(ele.get("max_frames", min(FPS_MAX_FRAMES, total_frames)), FRAME_FACTOR)
        nframes = total_frames / video_fps * fps
        if nframes > total_frames:
            logger.warning(f"smart_nframes: nframes[{nframes}] > total_frames[{total_frames}]")
        nframes = min(min(max(nframes, min_frames), max_frames), total_frames)
        nframes = floor_by_factor(nframes, FRAME_FACTOR)
    if not (FRAME_FACTOR <= nframes and nframes <= total_frames):
        raise ValueError(f"nframes should in interval [{FRAME_FACTOR}, {total_frames}], but got {nframes}.")
    return nframes


def calculate_video_frame_range(
    ele: Dict[str, Any],
    total_frames: int,
    video_fps: float,
) -> Tuple[int, int, int]:
    # Validate essential parameters
    if video_fps <= 0:
        raise ValueError("video_fps must be a positive number")
    if total_frames <= 0:
        raise ValueError("total_frames must be a positive integer")

    # Get start and end time in seconds
    video_start = ele.get("video_start", None)
    video_end = ele.get("video_end", None)
    if video_start is None and video_end is None:
        return 0, total_frames - 1, total_frames

    max_duration = total_frames / video_fps
    # Process start frame
    if video_start is not None:
        video_start_clamped = max(0.0, min(video_start, max_duration))
        start_frame = math.ceil(video_start_clamped * video_fps)
    else:
        start_frame = 0
    # Process end frame
    if video_end is not None:
        video_end_clamped = max(0.0, min(video_end, max_duration))
        end_frame = math.floor(video_end_clamped * video_fps)
        end_frame = min(end_frame, total_frames - 1)
    else:
        end_frame = total_frames - 1

    # Validate frame order
    if start_frame >= end_frame:
        raise ValueError(
            f"Invalid time range: Start frame {start_frame} (at {video_start_clamped if video_start is not None else 0}s) "
            f"exceeds end frame {end_frame} (at {video_end_clamped if video_end is not None else max_duration}s). "
            f"Video duration: {max_duration:.2f}s ({total_frames} frames @ {video_fps}fps)"
        )

    logger.info(f"calculate video frame range: {start_frame=}, {end_frame=}, {total_frames=} from {video_start=}, {video_end=}, {video_fps=:.3f}")
    return start_frame, end_frame, end_frame - start_frame + 1
# ---- end VERBATIM ---------------------------------------------------------------------------------------------------


def qvu_plan(ele: Dict[str, Any], total_frames: int, video_fps: float, height: int, width: int, image_patch_size: int = 14):
    """The decisions of `_read_video_torchcodec` + `fetch_video` (0.0.14) without pixels; lines copied from them."""
    # _read_video_torchcodec
    start_frame, end_frame, total_frames = calculate_video_frame_range(ele, total_frames, video_fps)
    nframes = smart_nframes(ele, total_frames=total_frames, video_fps=video_fps)
    idx = torch.linspace(start_frame, end_frame, nframes).round().long().tolist()
    sample_fps = nframes / max(total_frames, 1e-6) * video_fps
    # fetch_video
    image_factor = image_patch_size * SPATIAL_MERGE_SIZE
    VIDEO_FRAME_MIN_PIXELS = VIDEO_MIN_TOKEN_NUM * image_factor * image_factor
    VIDEO_FRAME_MAX_PIXELS = VIDEO_MAX_TOKEN_NUM * image_factor * image_factor
    min_pixels = ele.get("min_pixels", VIDEO_FRAME_MIN_PIXELS)
    total_pixels = ele.get("total_pixels", MODEL_SEQ_LEN * image_factor * image_factor * 0.9)
    max_pixels = max(min(VIDEO_FRAME_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    max_pixels_supposed = ele.get("max_pixels", max_pixels)
    max_pixels = min(max_pixels_supposed, max_pixels)
    if "resized_height" in ele and "resized_width" in ele:
        resized_height, resized_width = smart_resize(ele["resized_height"], ele["resized_width"], factor=image_factor)
    else:
        resized_height, resized_width = smart_resize(height, width, factor=image_factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return dict(
        frameIndices=idx, nframes=nframes, sampleFps=sample_fps, rangeStart=start_frame, rangeEnd=end_frame,
        rangeCount=total_frames, minPixels=min_pixels, maxPixels=max_pixels,
        resizedHeight=resized_height, resizedWidth=resized_width,
    )


# (total_frames, video_fps, height, width, patch, ele). Keys in `ele` are the reference's snake_case names.
PLAN_CASES = [
    (300, 30.0, 1080, 1920, 14, {}),
    (75, 30.0, 1080, 1920, 14, {}),
    (7200, 30.0, 1080, 1920, 14, {}),
    (1000, 30000 / 1001, 480, 640, 14, {}),
    (18000, 30.0, 360, 640, 14, {}),             # 10 min: capped at 768 frames, budget shrinks
    (23976, 24000 / 1001, 720, 1280, 14, {}),
    (3, 30.0, 64, 96, 14, {}),                   # 3-frame clip: min_frames 4 clamps to total then floor to 2
    (2, 25.0, 64, 96, 14, {}),
    (90, 30000 / 1001, 64, 96, 14, {}),
    (90, 30000 / 1001, 64, 96, 14, {"fps": 4.0}),
    (90, 30000 / 1001, 64, 96, 14, {"fps": 0.5}),
    (90, 30000 / 1001, 64, 96, 14, {"nframes": 7}),   # round(3.5)*2 = 8 (half to even)
    (90, 30000 / 1001, 64, 96, 14, {"nframes": 10}),
    (90, 30000 / 1001, 64, 96, 14, {"nframes": 5}),   # round(2.5)*2 = 4
    (600, 30.0, 720, 1280, 14, {"min_frames": 9, "max_frames": 31}),
    (600, 30.0, 720, 1280, 14, {"fps": 0.1, "min_frames": 5}),
    (600, 30.0, 720, 1280, 14, {"video_start": 3.3, "video_end": 12.7}),
    (600, 30.0, 720, 1280, 14, {"video_start": 5.0}),
    (600, 30.0, 720, 1280, 14, {"video_end": 7.51}),
    (600, 29.97, 720, 1280, 14, {"video_start": 1.0, "video_end": 100.0}),
    (600, 30.0, 720, 1280, 14, {"total_pixels": 20480 * 28 * 28}),
    (600, 30.0, 720, 1280, 14, {"max_pixels": 200000}),
    (600, 30.0, 720, 1280, 14, {"max_pixels": 10**7}),              # can only lower the budget
    (600, 30.0, 720, 1280, 14, {"min_pixels": 50000, "total_pixels": 1000000}),
    (600, 30.0, 720, 1280, 14, {"resized_height": 300, "resized_width": 500}),
    (600, 30.0, 151, 201, 14, {}),                                  # odd size, upscaled by min_pixels
    (600, 30.0, 1080, 1920, 16, {}),                                 # Qwen3-VL factor 32
    (9000, 30.0, 1080, 1920, 16, {}),
    (12345, 29.97, 1080, 1920, 14, {"fps": 1.0, "max_frames": 100}),
    (1501, 59.94, 1080, 1920, 14, {}),
    (100, 1.0, 240, 320, 14, {"fps": 2.0}),                          # fps above the video's: capped by total_frames
    # errors
    (90, 30.0, 64, 96, 14, {"fps": 2.0, "nframes": 4}),
    (1, 30.0, 64, 96, 14, {}),
    (90, 30.0, 64, 96, 14, {"nframes": 200}),
    (600, 30.0, 720, 1280, 14, {"video_start": 10.0, "video_end": 5.0}),
    (600, 30.0, 720, 1280, 14, {"nframes": 1}),
]


def record_plans():
    out = []
    for total, fps, h, w, patch, ele in PLAN_CASES:
        case = dict(totalFrames=total, videoFps=fps, height=h, width=w, imagePatchSize=patch, options=ele)
        try:
            case["expected"] = qvu_plan(ele, total, fps, h, w, patch)
        except (ValueError, AssertionError) as e:
            case["error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    return out


def record_linspace():
    """torch.linspace(start, end, n).round().long() for a spread of cases, favouring those where float32 and float64
    linspace round differently (so a float64 implementation would fail)."""
    cases = []
    f64_differs = []
    rng = np.random.default_rng(0)
    for total in range(2, 3000, 7):
        for n in range(2, min(total, 800) + 1, 3):
            t = torch.linspace(0, total - 1, n).round().long().numpy()
            d = np.round(np.linspace(0, total - 1, n)).astype(int)
            if (t != d).any():
                f64_differs.append((0, total - 1, n))
    small = [c for c in f64_differs if c[2] <= 200]
    pick = [small[i] for i in sorted(rng.choice(len(small), size=40, replace=False))]
    for _ in range(40):
        start = int(rng.integers(0, 500))
        total = int(rng.integers(2, 20000))
        n = int(rng.integers(2, min(total, 200) + 1))
        pick.append((start, start + total - 1, n))
    pick += [(0, 299, 20), (0, 74, 4), (0, 17999, 768), (99, 380, 10), (0, 1, 2), (5, 6, 2), (0, 2, 2)]
    for start, end, n in pick:
        vals = torch.linspace(start, end, n)
        cases.append(dict(start=start, end=end, steps=n,
                          indices=vals.round().long().tolist(),
                          # float32 bit patterns of the linspace values themselves (exactness of the emulation)
                          bits=vals.view(torch.int32).tolist()))
    return cases, len(f64_differs)


# ---- pixel parity ---------------------------------------------------------------------------------------------------

def coded_source(width, height, rate):
    """Twin of test/media-helpers.ts codedSource()."""
    def expr(plane):
        return f"if(lt(Y\\,8)\\,255*mod(floor(N/pow(2\\,floor(X/8)))\\,2)\\,{plane}(X\\,Y))"
    return f"testsrc2=size={width}x{height}:rate={rate},format=gbrp,geq=r={expr('r')}:g={expr('g')}:b={expr('b')}"


def make_video(path, width, height, rate, frames, codec):
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    coded_source(width, height, rate), "-frames:v", str(frames), *codec, path], check=True)


def pyav_frames(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames), fps


PARITY_VIDEOS = [
    # name, width, height, rate, frames, codec args (must match the TS test), ele
    ("rgb-down", 201, 151, "24", 24, ["-c:v", "ffv1", "-pix_fmt", "bgr0"], {"min_pixels": 3136, "max_pixels": 12000}),
    ("rgb-up", 201, 151, "24", 24, ["-c:v", "ffv1", "-pix_fmt", "bgr0"], {"nframes": 2, "min_pixels": 37632}),
    ("yuv-down", 200, 150, "30000/1001", 30, ["-c:v", "ffv1", "-pix_fmt", "yuv420p"], {"min_pixels": 3136, "max_pixels": 12000}),
]


def record_parity(tmpdir):
    out = []
    for name, w, h, rate, frames, codec, ele in PARITY_VIDEOS:
        path = os.path.join(tmpdir, f"{name}.mkv")
        make_video(path, w, h, rate, frames, codec)
        video, fps = pyav_frames(path)                        # (T, H, W, 3) uint8, all frames in presentation order
        plan = qvu_plan(ele, len(video), fps, video.shape[1], video.shape[2])
        sel = torch.from_numpy(video[plan["frameIndices"]]).permute(0, 3, 1, 2)   # TCHW, as the readers return
        native_md5 = hashlib.md5(np.ascontiguousarray(video[plan["frameIndices"]]).tobytes()).hexdigest()
        # fetch_video's resize, verbatim
        resized = transforms.functional.resize(
            sel,
            [plan["resizedHeight"], plan["resizedWidth"]],
            interpolation=InterpolationMode.BICUBIC,
            antialias=True,
        ).float()
        assert torch.equal(resized, resized.round()) and resized.min() >= 0 and resized.max() <= 255
        hwc = resized.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()   # (T, H', W', 3)
        with open(os.path.join(OUT_DIR, f"parity-{name}.rgb.gz"), "wb") as f:
            f.write(gzip.compress(hwc.tobytes(), mtime=0))
        out.append(dict(name=name, width=w, height=h, rate=rate, frames=frames, codec=codec, options=ele,
                        videoFps=fps, totalFrames=len(video), expected=plan, nativeMd5=native_md5,
                        file=f"parity-{name}.rgb.gz"))
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    import tempfile
    meta = dict(reference="qwen-vl-utils 0.0.14 (QwenLM/Qwen3-VL fe120581464a989a8d0dcc3c0fc925e65f8b3ba1)",
                torch=torch.__version__, torchvision=torchvision.__version__, av=av.__version__,
                torchCpuCapability=torch.backends.cpu.get_cpu_capability())
    with open(os.path.join(OUT_DIR, "plans.json"), "w") as f:
        json.dump(dict(meta=meta, cases=record_plans()), f, indent=1)
    lin, n_differs = record_linspace()
    with open(os.path.join(OUT_DIR, "linspace.json"), "w") as f:
        json.dump(dict(meta=dict(meta, float64RoundsDifferentlyIn=n_differs), cases=lin), f)
    with tempfile.TemporaryDirectory() as tmp:
        parity = record_parity(tmp)
    with open(os.path.join(OUT_DIR, "parity.json"), "w") as f:
        json.dump(dict(meta=dict(meta, ffmpeg=FFMPEG), videos=parity), f, indent=1)
    print("wrote", OUT_DIR, file=sys.stderr)


if __name__ == "__main__":
    main()
