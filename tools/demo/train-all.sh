#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to models/videolm-demo + the evaluation table (docs/demo-model.md).
# Deterministic from the seeds below. Intermediate data goes to .cache/demo (git-ignored, ~2 GB for 3000 videos).
# Usage: tools/demo/train-all.sh [steps=2000] [batch=16]   (the defaults reproduce the committed checkpoint)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-2000}
BATCH=${2:-16}
PY=.venv-oracle/bin/python
D=.cache/demo
mkdir -p $D
npx tsx tools/demo/corpus.mts $D/corpus.txt
$PY tools/demo/init_checkpoint.py $D/corpus.txt models/videolm-demo 1234
# held-out evaluation set: seeds 1 000 001.. (training uses 1..3000; tests 3 000 001..; the example 4 000 001)
npx tsx tools/demo/export-shards.mts $D/eval 1000001 500 100
# the training export runs alongside training; train.py waits for shard k before step k*steps_per_shard
npx tsx tools/demo/export-shards.mts $D/train 1 3000 100 > $D/export-train.log 2>&1 &
EXPORT=$!
(cd tools/demo && ../../$PY train.py --data ../../$D/train --init ../../models/videolm-demo --out ../../$D/run \
  --steps "$STEPS" --batch "$BATCH" --lr 5e-4 --warmup 100 --steps-per-shard 1 --shards 30 --seed 1234 --eval ../../$D/eval --eval-every 400 | tee ../../$D/train.log)
wait $EXPORT
cp $D/run/model.safetensors models/videolm-demo/model.safetensors
npx tsx tools/demo/make-example.mts
$PY tools/demo/eval_reference.py $D/eval $D/ref-preds.json models/videolm-demo
npx tsx tools/demo/evaluate.mts $D/eval --reference $D/ref-preds.json --out $D/engine-preds.json
