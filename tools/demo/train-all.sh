#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to models/videolm-demo + the evaluation table (docs/demo-model.md).
# Deterministic from the seeds below. Intermediate data goes to .cache/demo (git-ignored, ~4 GB for 6000 videos).
# Usage: tools/demo/train-all.sh [steps=3600] [batch=16] [steps2a=600] [steps2b=700]   (the defaults reproduce the committed
# checkpoint, which is stage 1; STAGE2=1 also runs stage 2, the event questions, whose result fell short of its targets
# and is not committed: docs/demo-model.md "Stage 2")
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
STEPS2A=${3:-600}
STEPS2B=${4:-700}
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
cp $D/run/model.safetensors models/videolm-demo/model.safetensors
if [[ ${STAGE2:-0} == 1 ]]; then
# stage 2: 16 shards of fresh videos (seeds 6001..7600), two exports filling alternate shards in parallel; two parts:
# 2a 600 steps on the first 10 shards (lr 5e-4, vision 2x, the probes), 2b 700 steps on all 16 (lr 3e-4, no probes)
N2=16
npx tsx tools/demo/export-shards.mts $D/train2 6001 $((N2 * 50)) 100 models/videolm-demo 0 2 > $D/export2-a.log 2>&1 &
A=$!
npx tsx tools/demo/export-shards.mts $D/train2 6101 $((N2 * 50)) 100 models/videolm-demo 1 2 > $D/export2-b.log 2>&1 &
B=$!
wait $A $B
(cd tools/demo && OMP_WAIT_POLICY=PASSIVE ../../$PY train.py --data ../../$D/train2 --init ../../$D/run --out ../../$D/run2 \
  --steps "$STEPS2A" --batch "$BATCH" --lr 5e-4 --vision-lr-mult 2 --warmup 100 --steps-per-shard 30 --shards 10 --seed 1235 --threads 1 \
  --all-questions --aux-direction 1.0 --aux-shape 1.0 --eval ../../$D/eval --eval-every 300 | tee ../../$D/train2.log)
(cd tools/demo && OMP_WAIT_POLICY=PASSIVE ../../$PY train.py --data ../../$D/train2 --init ../../$D/run2 --out ../../$D/run3 \
  --steps "$STEPS2B" --batch "$BATCH" --lr 3e-4 --vision-lr-mult 1 --warmup 50 --steps-per-shard 1 --shards $N2 --seed 1236 --threads 1 \
  --all-questions --eval ../../$D/eval --eval-every 350 | tee ../../$D/train3.log)
cp $D/run3/model.safetensors models/videolm-demo/model.safetensors
fi
npx tsx tools/demo/make-example.mts
$PY tools/demo/eval_reference.py $D/eval $D/ref-preds.json models/videolm-demo
npx tsx tools/demo/evaluate.mts $D/eval --reference $D/ref-preds.json --out $D/engine-preds.json
