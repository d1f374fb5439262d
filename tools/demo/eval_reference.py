"""Reference predictions for the held-out set: transformers 4.57.6 Qwen2VLForConditionalGeneration greedy
generate on exactly the inputs videolm prepared (the evaluation shards of tools/demo/export-shards.mts).
Writes [{seed, q, type, answer, predicted}] for tools/demo/evaluate.mts --reference.

Usage: .venv-oracle/bin/python tools/demo/eval_reference.py <evalShardDir> <out.json> [model=models/videolm-demo] [limit]
"""
import json
import os
import sys

import torch
from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

sys.path.insert(0, os.path.dirname(__file__))
from shards import Shard, make_batch, shard_paths  # noqa: E402

folder, out = sys.argv[1], sys.argv[2]
model_dir = sys.argv[3] if len(sys.argv) > 3 else "models/videolm-demo"
limit = int(sys.argv[4]) if len(sys.argv) > 4 else 10**9
torch.set_num_threads(2)
model = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(model_dir)
eos = model.generation_config.eos_token_id
preds = []
seen = 0
for path in shard_paths(folder):
    shard = Shard(path)
    for v, video in enumerate(shard.videos):
        if seen >= limit:
            break
        seen += 1
        for q, question in enumerate(video["questions"]):
            batch = make_batch([(shard, v, q)], 0, with_answer=False)
            with torch.no_grad():
                ids = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                     pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
                                     do_sample=False, max_new_tokens=128 if question["type"] == "dense" else 16,
                                     eos_token_id=eos, pad_token_id=0)
            text = tok.decode(ids[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            preds.append({"seed": video["seed"], "q": q, "type": question["type"], "answer": question["answer"], "predicted": text, "tokens": ids[0, batch["input_ids"].shape[1]:].tolist()})
with open(out, "w") as f:
    json.dump(preds, f, indent=1)
print(f"{len(preds)} reference answers → {out}")
