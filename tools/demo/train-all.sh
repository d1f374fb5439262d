#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to models/videolm-demo + the evaluation table (docs/demo-model.md).
# Deterministic from the seeds below. Intermediate data goes to .cache/demo (git-ignored, ~2 GB for 3000 videos).
# Usage: tools/demo/train-all.sh [steps=2000] [batch=16] [stage2_steps=3800]   (the defaults reproduce the committed checkpoint)
# Two stages: stage 1 trains from the seeded initialisation (lr 5e-4); stage 2 continues from stage 1's weights with
# lr 1e-3 and the vision tower + merger at 4x that lr (docs/demo-model.md, "Training").
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-2000}
BATCH=${2:-16}
STAGE2_STEPS=${3:-3800}
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
# stage 2 (all shards exist now): continue from stage 1 with a higher lr, the vision tower at 4x
(cd tools/demo && ../../$PY train.py --data ../../$D/train --init ../../models/videolm-demo --out ../../$D/run4 \
  --steps "$STAGE2_STEPS" --batch "$BATCH" --lr 1e-3 --vision-lr-mult 4 --warmup 100 --steps-per-shard 1 --shards 30 --seed 4321 \
  --stop-after 3614 --eval ../../$D/eval --eval-every 250 | tee ../../$D/train4.log)
cp $D/run4/model.safetensors models/videolm-demo/model.safetensors
npx tsx tools/demo/make-example.mts
$PY tools/demo/eval_reference.py $D/eval $D/ref-preds.json models/videolm-demo
npx tsx tools/demo/evaluate.mts $D/eval --reference $D/ref-preds.json --out $D/engine-preds.json
