#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to models/videolm-demo + the evaluation table (docs/demo-model.md).
# Deterministic from the seeds below. Intermediate data goes to .cache/demo (git-ignored, ~4 GB for 6000 videos).
# Usage: tools/demo/train-all.sh [steps=3600] [batch=16]   (the defaults reproduce the committed checkpoint: 3600 steps,
# a full cosine schedule, 52 min of training on the 2-core machine)
# One stage from the seeded initialisation: lr 1e-3 with the vision tower + merger at 4x, every question of a video
# in one sequence, auxiliary direction and shape probes on the visual tokens (docs/demo-model.md, "Training").
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-3600}
BATCH=${2:-16}
PY=.venv-oracle/bin/python
D=.cache/demo
mkdir -p $D
npx tsx tools/demo/corpus.mts $D/corpus.txt
$PY tools/demo/init_checkpoint.py $D/corpus.txt models/videolm-demo 1234
# held-out evaluation set: seeds 1 000 001.. (training uses 1..6000; tests 3 000 001..; the example 4 000 001)
npx tsx tools/demo/export-shards.mts $D/eval 1000001 200 100
# two exports in parallel (one per core), then training on all 60 shards
npx tsx tools/demo/export-shards.mts $D/train 1 3000 100 models/videolm-demo 0 > $D/export-a.log 2>&1 &
A=$!
npx tsx tools/demo/export-shards.mts $D/train 3001 3000 100 models/videolm-demo 30 > $D/export-b.log 2>&1 &
B=$!
wait $A $B
(cd tools/demo && ../../$PY train.py --data ../../$D/train --init ../../models/videolm-demo --out ../../$D/run \
  --steps "$STEPS" --batch "$BATCH" --lr 1e-3 --vision-lr-mult 4 --warmup 200 --steps-per-shard 1 --shards 60 --seed 1234 \
  --all-questions --aux-direction 1.0 --aux-shape 1.0 --eval ../../$D/eval --eval-every 700 | tee ../../$D/train.log)
cp $D/run/model.safetensors models/videolm-demo/model.safetensors
npx tsx tools/demo/make-example.mts
$PY tools/demo/eval_reference.py $D/eval $D/ref-preds.json models/videolm-demo
npx tsx tools/demo/evaluate.mts $D/eval --reference $D/ref-preds.json --out $D/engine-preds.json
