#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to models/videolm-demo + the evaluation table (docs/demo-model.md).
# Deterministic from the seeds below. Intermediate data goes to .cache/demo (git-ignored, ~4 GB for 6000 videos).
# Usage: tools/demo/train-all.sh [steps=3600] [batch=16] [steps2=900]   (the defaults reproduce the committed
# checkpoint)
# Stage 1 from the seeded initialisation, on the nine original question types: lr 1e-3 with the vision tower +
# merger at 4x, every question of a video in one sequence, auxiliary direction and shape probes on the visual tokens
# (docs/demo-model.md, "Training"; 52 min on the 2-core machine). Stage 2 fine-tunes that on fresh videos with every
# question type, the original ones and the event questions (grounding, dense captions) mixed in each sequence.
# The tokenizer is trained on the original questions only (corpus.mts): stage 1 must see the same vocabulary it was
# trained with, and the byte-level BPE spells the event answers too.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-3600}
BATCH=${2:-16}
STEPS2=${3:-900}
ORIGINAL_TYPES=color,shape,direction,count,order,appear,disappear,span,change
PY=.venv-oracle/bin/python
D=.cache/demo
mkdir -p $D
npx tsx tools/demo/corpus.mts $D/corpus.txt
$PY tools/demo/init_checkpoint.py $D/corpus.txt models/videolm-demo 1234
# held-out evaluation set: seeds 1 000 001.. (training uses 1..6000 and 6001..; tests 3 000 001..; the example 4 000 001)
npx tsx tools/demo/export-shards.mts $D/eval 1000001 200 100
# two exports in parallel (one per core), then training on all 60 shards
npx tsx tools/demo/export-shards.mts $D/train 1 3000 100 models/videolm-demo 0 > $D/export-a.log 2>&1 &
A=$!
npx tsx tools/demo/export-shards.mts $D/train 3001 3000 100 models/videolm-demo 30 > $D/export-b.log 2>&1 &
B=$!
wait $A $B
(cd tools/demo && ../../$PY train.py --data ../../$D/train --init ../../models/videolm-demo --out ../../$D/run \
  --steps "$STEPS" --batch "$BATCH" --lr 1e-3 --vision-lr-mult 4 --warmup 200 --steps-per-shard 1 --shards 60 --seed 1234 \
  --all-questions --aux-direction 1.0 --aux-shape 1.0 --types $ORIGINAL_TYPES --eval ../../$D/eval --eval-every 700 | tee ../../$D/train.log)
# stage 2: 12 shards of fresh videos (seeds 6001..7200), two exports filling alternate shards in parallel
N2=12
npx tsx tools/demo/export-shards.mts $D/train2 6001 $((N2 * 50)) 100 models/videolm-demo 0 2 > $D/export2-a.log 2>&1 &
A=$!
npx tsx tools/demo/export-shards.mts $D/train2 6101 $((N2 * 50)) 100 models/videolm-demo 1 2 > $D/export2-b.log 2>&1 &
B=$!
wait $A $B
(cd tools/demo && OMP_WAIT_POLICY=PASSIVE ../../$PY train.py --data ../../$D/train2 --init ../../$D/run --out ../../$D/run2 \
  --steps "$STEPS2" --batch "$BATCH" --lr 5e-4 --vision-lr-mult 2 --warmup 100 --steps-per-shard 30 --shards $N2 --seed 1235 --threads 1 \
  --all-questions --aux-direction 1.0 --aux-shape 1.0 --eval ../../$D/eval --eval-every 300 | tee ../../$D/train2.log)
cp $D/run2/model.safetensors models/videolm-demo/model.safetensors
npx tsx tools/demo/make-example.mts
$PY tools/demo/eval_reference.py $D/eval $D/ref-preds.json models/videolm-demo
npx tsx tools/demo/evaluate.mts $D/eval --reference $D/ref-preds.json --out $D/engine-preds.json
