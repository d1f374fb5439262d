"""Trains the demo model (transformers 4.57.6 Qwen2VLForConditionalGeneration, CPU) on shards exported by
tools/demo/export-shards.mts, starting from the seeded initialisation written by tools/demo/init_checkpoint.py.

Reproducible from --seed: the batch order is a function of the seed and the step only. Shards may still be
being exported while training runs: step s draws from shards 0 .. s // steps_per_shard (waiting for a shard that
is not written yet), so the data seen at each step does not depend on timing.

Usage: .venv-oracle/bin/python tools/demo/train.py --data .cache/demo/train --init models/videolm-demo \
         --out .cache/demo/run --steps 2400 [--eval .cache/demo/eval] [--vision-lr-mult 4] [--stop-after N]
"""
import argparse
import math
import os
import random
import shutil
import time

import torch
from transformers import Qwen2VLForConditionalGeneration

from shards import Shard, make_batch, shard_paths

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--init", required=True)
p.add_argument("--out", required=True)
p.add_argument("--steps", type=int, default=2400)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--seed", type=int, default=1234)
p.add_argument("--steps-per-shard", type=int, default=40)
p.add_argument("--shards", type=int, default=30)
p.add_argument("--eval", default=None)
p.add_argument("--eval-every", type=int, default=200)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--vision-lr-mult", type=float, default=1.0, help="lr multiplier for the vision tower and merger")
p.add_argument("--final-lr-frac", type=float, default=0.05, help="cosine decays to this fraction of the lr")
p.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (the lr schedule still spans --steps)")
p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much wall time")
p.add_argument("--all-questions", action="store_true", help="train every question of a video in one sequence (later ones as further turns)")
p.add_argument("--aux-direction", type=float, default=0.0,
               help="weight of an auxiliary loss: a linear probe on each motion video's mean visual token predicts its direction "
                    "(trains the vision tower to expose motion; the probe is not part of the checkpoint)")
p.add_argument("--aux-shape", type=float, default=0.0,
               help="the same for shape: a linear probe on the mean visual token of each video with a shape question predicts it")
p.add_argument("--types", default=None,
               help="comma-separated question types to train (default: all in the shards); the others are dropped when a "
                    "shard is read, so the batch draws equal those of shards that never held them")
args = p.parse_args()
types = set(args.types.split(",")) if args.types else None

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
model = Qwen2VLForConditionalGeneration.from_pretrained(args.init, torch_dtype=torch.float32)
model.train()


def linear_patch_embed(self, hidden_states):
    # PatchEmbed.forward (modeling_qwen2_vl.py) is a Conv3d whose kernel covers the whole (3, 2, 14, 14) input patch,
    # i.e. a matmul with the flattened kernel. Same weights, same result up to float rounding; torch's CPU Conv3d
    # backward is ~10x slower than the whole rest of a training step, so training uses the matmul form. The
    # checkpoint keeps the Conv3d weight layout.
    weight = self.proj.weight
    return torch.nn.functional.linear(hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype), weight.reshape(weight.shape[0], -1))


type(model.model.visual.patch_embed).forward = linear_patch_embed
pad_id = model.config.text_config.pad_token_id or 0
# Two parameter groups: the vision tower (incl. the merger) learns slower than the LLM at the same lr in this
# setup (its gradients pass through the whole LLM), so it gets --vision-lr-mult × the lr.
vision_params = [p for n, p in model.named_parameters() if ".visual." in n or n.startswith("visual.")]
vision_ids = {id(p) for p in vision_params}
text_params = [p for p in model.parameters() if id(p) not in vision_ids]
assert vision_params and text_params
# Auxiliary probes (--aux-direction, --aux-shape): a linear layer on the mean merged visual token of a video predicts
# the answer of one of its questions. Their gradient reaches only the vision tower and merger (through the pooled
# tokens), which must learn to expose what the probe needs. The probes are dropped after training; the checkpoint
# is a plain Qwen2-VL.
# The classes are the generator's answers (src/synth/scene.ts DIRECTIONS and SHAPES); an answer outside them fails
# loudly in list.index. Their order fixes the probes' output rows, so it stays as trained.
PROBE_CLASSES = {"direction": ["left", "right", "up", "down"], "shape": ["circle", "square", "triangle"]}
probe_weights = {t: w for t, w in (("direction", args.aux_direction), ("shape", args.aux_shape)) if w > 0}
probes = {t: torch.nn.Linear(model.config.vision_config.hidden_size, len(PROBE_CLASSES[t])) for t in probe_weights}
visual_tokens = {}
groups = [{"params": text_params, "mult": 1.0}, {"params": vision_params, "mult": args.vision_lr_mult}]
if probes:
    # the merged visual tokens of the batch (all videos, concatenated in batch order), as the LLM receives them
    model.model.visual.register_forward_hook(lambda _m, _i, out: visual_tokens.update(out=out))
    groups.append({"params": [p for probe in probes.values() for p in probe.parameters()], "mult": args.vision_lr_mult})
opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)


def probe_losses(items):
    """Per probe: cross-entropy on the mean visual token of each video in the batch that has a question of its type."""
    merge = model.config.vision_config.spatial_merge_size ** 2
    means, answers, start = [], [], 0
    for sh, v, _ in items:
        video = sh.videos[v]
        t, h, w = video["grid"]
        n = t * h * w // merge
        means.append(visual_tokens["out"][start:start + n].mean(0))
        answers.append({q["type"]: q["answer"] for q in video["questions"]})
        start += n
    losses = {}
    for kind, probe in probes.items():
        rows = [(m, PROBE_CLASSES[kind].index(a[kind])) for m, a in zip(means, answers) if kind in a]
        losses[kind] = (torch.nn.functional.cross_entropy(probe(torch.stack([m for m, _ in rows])), torch.tensor([c for _, c in rows]))
                        if rows else torch.zeros(()))
    return losses


def lr_at(step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    f = args.final_lr_frac
    return args.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))


shards = []


def shard(k):
    base = os.path.join(args.data, f"shard-{k:04d}")
    while len(shards) <= k:
        path = os.path.join(args.data, f"shard-{len(shards):04d}")
        while not os.path.exists(path + ".json"):
            time.sleep(5)
        shards.append(Shard(path, types))
    assert shards[k] is not None and base
    return shards[k]


def teacher_forced_accuracy(items):
    """Exact-match of greedy answers, computed teacher-forced (all answer tokens argmax-correct ⇔ greedy output equal)."""
    model.eval()
    per_type = {}
    with torch.no_grad():
        for i in range(0, len(items), 16):
            chunk = items[i:i + 16]
            batch = make_batch(chunk, pad_id)
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            pred = logits[:, :-1].argmax(-1)
            target = batch["labels"][:, 1:]
            mask = target != -100
            ok = ((pred == target) | ~mask).all(-1)
            for (sh, v, q), good in zip(chunk, ok.tolist()):
                t = sh.videos[v]["questions"][q]["type"]
                a, n = per_type.get(t, (0, 0))
                per_type[t] = (a + good, n + 1)
    model.train()
    total = sum(a for a, _ in per_type.values()) / max(1, sum(n for _, n in per_type.values()))
    return total, {t: round(a / n, 2) for t, (a, n) in sorted(per_type.items())}


eval_items = []
if args.eval:
    for path in shard_paths(args.eval)[:2]:
        sh = Shard(path, types)
        eval_items += [(sh, v, q) for v, video in enumerate(sh.videos) for q in range(len(video["questions"]))]
    eval_items = eval_items[:240]

t0 = time.time()
ema = None
best = -1.0
for step in range(args.steps):
    rng = random.Random(args.seed * 1_000_003 + step)
    available = min(args.shards, 1 + step // args.steps_per_shard)
    items = []
    for _ in range(args.batch):
        sh = shard(rng.randrange(available))
        v = rng.randrange(len(sh.videos))
        items.append((sh, v, rng.randrange(len(sh.videos[v]["questions"]))))
    batch = make_batch(items, pad_id, all_questions=args.all_questions)
    for g in opt.param_groups:
        g["lr"] = lr_at(step) * g["mult"]
    loss = model(**batch).loss
    aux = probe_losses(items) if probes else {}
    for kind, value in aux.items():
        loss = loss + probe_weights[kind] * value
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
    aux_ema = {k: v.item() if step == 0 else 0.95 * aux_ema[k] + 0.05 * v.item() for k, v in aux.items()}
    if step % 20 == 0:
        aux_note = "".join(f" {k}-probe {v:.3f}" for k, v in aux_ema.items())
        print(f"step {step} loss {ema:.4f}{aux_note} lr {lr_at(step):.2e} shards {available} {time.time() - t0:.0f}s", flush=True)
    if eval_items and (step + 1) % args.eval_every == 0:
        acc, per = teacher_forced_accuracy(eval_items)
        print(f"eval step {step + 1}: {acc:.3f} {per}", flush=True)
        if acc > best:
            # the best teacher-forced held-out exact match so far is kept in <out>/best
            best = acc
            model.save_pretrained(os.path.join(args.out, "best"), safe_serialization=True)
            print(f"  best so far → {args.out}/best", flush=True)
    out_of_time = (args.max_minutes is not None and time.time() - t0 > args.max_minutes * 60) or step + 1 == args.stop_after
    if (step + 1) % 200 == 0 or step + 1 == args.steps or out_of_time:
        model.save_pretrained(args.out, safe_serialization=True)
    if out_of_time:
        print(f"stopping at step {step + 1} (--stop-after {args.stop_after} / --max-minutes {args.max_minutes})", flush=True)
        break
print(f"done {args.steps} steps in {time.time() - t0:.0f}s", flush=True)
