"""
Golden Seed1.5-VL sampling plans (test/fixtures/sampling/seed-plans.json) for test/sampling-seed.test.ts, computed by the reference code itself.

Reference: ByteDance-Seed/Seed1.5-VL @ f952f84bcd8f720f7e75559b4262578217c48489, GradioDemo/infer.py:
`round_by_factor`, `ceil_by_factor`, `floor_by_factor`, `get_resized_hw_for_Navit` (copied verbatim below) and
`SeedVLInfer.preprocess_video` (copied below with the decord reader replaced by its two facts: `length = len(vr)`
and `fps = vr.get_avg_fps()`; the decoded frame size by (height, width)), plus `construct_messages`' timestamp text
f'[{timestamp} second]'.

Run: python3 tools/oracle/record_seed_sampling.py > test/fixtures/sampling/seed-plans.json   (numpy; tested with numpy 2.4.6, CPython 3)
"""
import json
import math

import numpy as np


def round_by_factor(number: int, factor: int) -> int:
    """Returns the closest integer to 'number' that is divisible by 'factor'."""
    return round(number / factor) * factor


def ceil_by_factor(number: int, factor: int) -> int:
    """Returns the smallest integer greater than or equal to 'number' that is divisible by 'factor'."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: int, factor: int) -> int:
    """Returns the largest integer less than or equal to 'number' that is divisible by 'factor'."""
    return math.floor(number / factor) * factor


def get_resized_hw_for_Navit(
    height: int,
    width: int,
    min_pixels: int,
    max_pixels: int,
    max_ratio: int = 200,
    factor: int = 28,
):
    if max(height, width) / min(height, width) > max_ratio:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {max_ratio}, got {max(height, width) / min(height, width)}"
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
    return int(h_bar), int(w_bar)


# SeedVLInfer.__init__ defaults
MIN_PIXELS = 4 * 28 * 28
MIN_N_FRAMES = 16
MAX_VIDEO_LENGTH = 81920
MAX_PIXELS_CHOICES = [640 * 28 * 28, 512 * 28 * 28, 384 * 28 * 28, 256 * 28 * 28, 160 * 28 * 28, 128 * 28 * 28]


def preprocess_video(length, fps, height, width, sampling_fps, max_video_length=MAX_VIDEO_LENGTH):
    n_frames = min(max(math.ceil(length / fps * sampling_fps), MIN_N_FRAMES), length)
    frame_indices = np.linspace(0, length - 1, n_frames).round().astype(int).tolist()
    max_pixels = 5120 * 28 * 28  # self.max_pixels
    for round_idx, max_pixels in enumerate(MAX_PIXELS_CHOICES):
        is_last_round = round_idx == len(MAX_PIXELS_CHOICES) - 1
        if len(frame_indices) * max_pixels / 28 / 28 > max_video_length:
            if is_last_round:
                max_frame_num = int(max_video_length / max_pixels * 28 * 28)
                select_ids = np.linspace(0, len(frame_indices) - 1, max_frame_num).round().astype(int).tolist()
                frame_indices = [frame_indices[select_id] for select_id in select_ids]
            else:
                continue
        else:
            break
    resized_height, resized_width = get_resized_hw_for_Navit(height, width, min_pixels=MIN_PIXELS, max_pixels=max_pixels)
    timestamps = [round(i / fps, 1) for i in frame_indices]
    return {
        "nFrames": n_frames,
        "frameIndices": frame_indices,
        "levelTokens": max_pixels // (28 * 28),
        "maxPixels": max_pixels,
        "size": [resized_height, resized_width],
        "texts": [f"[{t} second]" for t in timestamps],
    }


CASES = [
    # (name, length, fps, height, width, sampling_fps[, max_video_length])
    ("short clip under 16 frames", 10, 30.0, 240, 320, 1),
    ("one frame", 1, 25.0, 480, 640, 1),
    ("min_n_frames 16 raises a 5 s clip at 1 fps", 150, 30.0, 240, 320, 1),
    ("5 s at 5 fps (counting/motion)", 150, 30.0, 1080, 1920, 5),
    ("10 s at 2 fps (detail)", 300, 30.0, 720, 1280, 2),
    ("NTSC 29.97 fps timestamps", 900, 29.97, 720, 1280, 1),
    ("quarter-second frame times (ties at one decimal)", 40, 4.0, 360, 640, 1),
    ("exactly 128 frames at 640 tokens = 81,920", 128 * 30, 30.0, 1080, 1920, 1),
    ("129 frames: 82,560 > 81,920 at 640, level 512", 129 * 30, 30.0, 1080, 1920, 1),
    ("exactly 160 frames at 512", 160 * 30, 30.0, 1080, 1920, 1),
    ("161 frames: level 384", 161 * 30, 30.0, 1080, 1920, 1),
    ("213 frames at 384 (81,792)", 213 * 30, 30.0, 1080, 1920, 1),
    ("214 frames: level 256", 214 * 30, 30.0, 1080, 1920, 1),
    ("exactly 320 frames at 256", 320 * 30, 30.0, 1080, 1920, 1),
    ("321 frames: level 160", 321 * 30, 30.0, 1080, 1920, 1),
    ("exactly 512 frames at 160", 512 * 30, 30.0, 1080, 1920, 1),
    ("513 frames: level 128", 513 * 30, 30.0, 1080, 1920, 1),
    ("exactly 640 frames at 128", 640 * 30, 30.0, 1080, 1920, 1),
    ("641 frames: subsampled to 640 at 128", 641 * 30, 30.0, 1080, 1920, 1),
    ("one hour at 1 fps: 3600 frames subsampled to 640", 3600 * 30, 30.0, 720, 1280, 1),
    ("one hour at 5 fps: 18000 frames subsampled to 640", 3600 * 25, 25.0, 720, 1280, 5),
    ("portrait phone video", 600, 30.0, 1920, 1080, 1),
    ("tiny frames below min_pixels", 60, 30.0, 30, 40, 1),
    ("odd sizes", 250, 24.0, 333, 517, 1),
    ("fractional length / fps product", 1001, 23.976, 480, 854, 2),
    ("budget 81,921 keeps 128 frames at 640", 128 * 30, 30.0, 1080, 1920, 1, 81921),
    ("budget 81,919 moves 128 frames to 512", 128 * 30, 30.0, 1080, 1920, 1, 81919),
    ("budget below 128 tokens per frame for 16 frames", 16, 1.0, 480, 640, 1, 1000),
]


def main():
    out = []
    for case in CASES:
        name, length, fps, h, w, sfps = case[:6]
        budget = case[6] if len(case) > 6 else MAX_VIDEO_LENGTH
        plan = preprocess_video(length, fps, h, w, sfps, budget)
        out.append({"name": name, "frameCount": length, "fps": fps, "height": h, "width": w, "samplingFps": sfps, "maxVideoTokens": budget, **plan})
    # Every level's frame size for a few probe sizes: get_resized_hw_for_Navit(h, w, 4·28², level·28²).
    sizes = []
    for h, w in [(1080, 1920), (1920, 1080), (720, 1280), (480, 640), (240, 320), (30, 40), (333, 517), (100, 19000), (2160, 3840)]:
        for level in [640, 512, 384, 256, 160, 128]:
            sizes.append({"height": h, "width": w, "levelTokens": level, "size": list(get_resized_hw_for_Navit(h, w, MIN_PIXELS, level * 28 * 28))})
    print(json.dumps({"source": "ByteDance-Seed/Seed1.5-VL@f952f84bcd8f720f7e75559b4262578217c48489 GradioDemo/infer.py", "plans": out, "sizes": sizes}, separators=(",", ":")))


if __name__ == "__main__":
    main()
