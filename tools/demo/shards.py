"""Reads the shards written by tools/demo/export-shards.mts (format documented there)."""
import json
import os

import numpy as np
import torch


class Shard:
    def __init__(self, base):
        with open(base + ".json") as f:
            meta = json.load(f)
        self.lut = np.asarray(meta["lut"], dtype=np.float32)  # [3, 256]: videolm's float32 normalisation table
        self.row_length = meta["rowLength"]
        self.videos = meta["videos"]
        self.codes = np.memmap(base + ".u8", dtype=np.uint8, mode="r")
        per_channel = self.row_length // 3
        self.channel = np.repeat(np.arange(3), per_channel)  # channel of each column

    def pixel_values(self, v):
        """float32 [rows, rowLength], value for value what videolm's preprocessing produced."""
        video = self.videos[v]
        start = video["offset"] * self.row_length
        codes = np.asarray(self.codes[start:start + video["rows"] * self.row_length]).reshape(video["rows"], self.row_length)
        return self.lut[self.channel[None, :], codes]


def shard_paths(folder):
    names = sorted(n[:-5] for n in os.listdir(folder) if n.startswith("shard-") and n.endswith(".json"))
    return [os.path.join(folder, n) for n in names]


def make_batch(items, pad_id, with_answer=True):
    """items: (shard, video index, question index). Right-padded input_ids / attention_mask / labels, the videos'
    pixel_values rows concatenated in batch order, and video_grid_thw."""
    seqs, labels, pixels, grids = [], [], [], []
    for shard, v, q in items:
        video = shard.videos[v]
        question = video["questions"][q]
        prompt = question["promptIds"]
        answer = question["answerIds"] if with_answer else []
        seqs.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
        pixels.append(shard.pixel_values(v))
        grids.append(video["grid"])
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    label_t = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention[i, : len(s)] = 1
        label_t[i, : len(l)] = torch.tensor(l)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": label_t,
        "pixel_values_videos": torch.from_numpy(np.concatenate(pixels)),
        "video_grid_thw": torch.tensor(grids, dtype=torch.long),
    }
