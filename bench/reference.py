"""The reference side of bench/compare.ts: transformers 4.57.6 + torch (CPU, float32) answering the same request
on the same checkpoint, with the inputs videolm prepared (identical ids, pixel values and grid).

Prints one JSON object: loadMs, visionMs (the vision tower, via forward hooks), ttftMs (generate() start to the
first new token), decodeTokensPerSecond (tokens after the first), generatedTokens, peakRssBytes.

Usage: .venv-oracle/bin/python bench/reference.py <checkpointDir> <inputDir> [--tokens 32] [--threads 2]
  inputDir holds input_ids.bin (int64), pixel_values.bin (float32 [rows, patchDim]) and meta.json {grid, patchDim}.
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from transformers import Qwen2VLForConditionalGeneration
from transformers.generation.streamers import BaseStreamer

p = argparse.ArgumentParser()
p.add_argument("checkpoint")
p.add_argument("inputs")
p.add_argument("--tokens", type=int, default=32)
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

meta = json.load(open(os.path.join(args.inputs, "meta.json")))
input_ids = torch.from_numpy(np.fromfile(os.path.join(args.inputs, "input_ids.bin"), dtype=np.int64)).unsqueeze(0)
pixels = torch.from_numpy(np.fromfile(os.path.join(args.inputs, "pixel_values.bin"), dtype=np.float32).reshape(-1, meta["patchDim"]))
grid = torch.tensor([meta["grid"]], dtype=torch.long)

t0 = time.perf_counter()
model = Qwen2VLForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32)
model.eval()
load_ms = (time.perf_counter() - t0) * 1000

vision = {"start": 0.0, "ms": 0.0}
model.model.visual.register_forward_pre_hook(lambda *_: vision.update(start=time.perf_counter()))
model.model.visual.register_forward_hook(lambda *_: vision.update(ms=vision["ms"] + (time.perf_counter() - vision["start"]) * 1000))


class TokenTimes(BaseStreamer):
    """generate() calls put() once with the prompt, then once per new token."""

    def __init__(self):
        self.calls = 0
        self.times = []

    def put(self, value):
        self.calls += 1
        if self.calls > 1:
            self.times.append(time.perf_counter())

    def end(self):
        pass


timer = TokenTimes()
with torch.inference_mode():
    start = time.perf_counter()
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values_videos=pixels, video_grid_thw=grid,
                         max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False, streamer=timer)
n = len(timer.times)
print(json.dumps({
    "loadMs": load_ms,
    "visionMs": vision["ms"],
    "ttftMs": (timer.times[0] - start) * 1000,
    "decodeTokensPerSecond": (n - 1) / (timer.times[-1] - timer.times[0]) if n > 1 else 0,
    "generatedTokens": out.shape[1] - input_ids.shape[1],
    "promptTokens": input_ids.shape[1],
    "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
