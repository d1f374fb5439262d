"""Reads the shards written by tools/demo/export-shards.mts (format documented there)."""
import json
import os

import numpy as np
import torch


class Shard:
    def __init__(self, base, types=None):
        """types: keep only the questions of these types (None: all), in their stored order. Dropping them here,
        before any draw, makes a shard with extra question types train exactly like one without them."""
        with open(base + ".json") as f:
            meta = json.load(f)
        self.lut = np.asarray(meta["lut"], dtype=np.float32)  # [3, 256]: videolm's float32 normalisation table
        self.row_length = meta["rowLength"]
        self.videos = meta["videos"]
        if types is not None:
            for video in self.videos:
                video["questions"] = [q for q in video["questions"] if q["type"] in types]
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


VISION_START, VISION_END, IM_END = 9, 10, 2  # models/videolm-demo/tokenizer.json (Qwen-VL special tokens, ids 9, 10, 2)


def later_turns(video, first):
    """The video's other questions as further chat turns after the first answer, in the Qwen2-VL template's layout:
    "\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n" + answer. The turn header and footer
    ids come from the stored single-turn prompt (between the system's <|im_end|> and <|vision_start|>, and after the
    question), so no tokenizer is needed. Returns (ids, labels)."""
    prompt = video["questions"][first]["promptIds"]
    header = prompt[prompt.index(IM_END) + 1:prompt.index(VISION_START)]
    ids, labels = [], []
    for k, q in enumerate(video["questions"]):
        if k == first:
            continue
        p = q["promptIds"]
        footer_start = len(p) - 1 - p[::-1].index(IM_END)  # the last <|im_end|>: after the question
        question = p[p.index(VISION_END) + 1:footer_start]
        turn = header + question + p[footer_start:]
        ids += turn + q["answerIds"]
        labels += [-100] * len(turn) + q["answerIds"]
    return ids, labels


def make_batch(items, pad_id, with_answer=True, all_questions=False):
    """items: (shard, video index, question index). Right-padded input_ids / attention_mask / labels, the videos'
    pixel_values rows concatenated in batch order, and video_grid_thw. With all_questions, the video's other
    questions follow the first answer as further turns (each answer supervised): one pass over the video's tokens
    teaches every question about it."""
    seqs, labels, pixels, grids = [], [], [], []
    for shard, v, q in items:
        video = shard.videos[v]
        question = video["questions"][q]
        prompt = question["promptIds"]
        answer = question["answerIds"] if with_answer else []
        seqs.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
        if all_questions:
            more_ids, more_labels = later_turns(video, q)
            seqs[-1] = seqs[-1] + more_ids
            labels[-1] = labels[-1] + more_labels
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
