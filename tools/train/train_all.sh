#!/usr/bin/env bash
# Train both default models from ../shared/data/ucm-captions (train split only), save them in
# models/default/{clip,captioner}, check the saved files against an independent numpy forward
# and write the val metrics. One command, seeded, CPU only (one thread per run, niced):
#   tools/train/train_all.sh            # about 80 min wall (CLIP ~57, captioner ~19)
# Needs: deploy/setup.sh --train (python3-torch, python3-numpy, python3-pil, python3-sentencepiece).
# Extra arguments go to train_clip.py; GS_CAPTIONER_ARGS to train_captioner.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
OUT=${GS_MODELS_OUT:-models/default}
RUNS=tools/train/runs
mkdir -p "$RUNS" "$OUT"
start=$(date +%s)
nice -n 10 $PY tools/train/train_clip.py --out "$OUT/clip" --work "$RUNS/clip" "$@" \
  2>&1 | tee "$RUNS/clip.log"
# shellcheck disable=SC2086
nice -n 10 $PY tools/train/train_captioner.py --clip "$OUT/clip" --out "$OUT/captioner" \
  --work "$RUNS/captioner" ${GS_CAPTIONER_ARGS:-} 2>&1 | tee "$RUNS/captioner.log"
nice -n 10 $PY tools/train/verify.py --clip "$OUT/clip" --captioner "$OUT/captioner" \
  2>&1 | tee "$RUNS/verify.log"
nice -n 10 $PY tools/train/evaluate.py --clip "$OUT/clip" --captioner "$OUT/captioner" \
  --json "$RUNS/metrics.json" 2>&1 | tee "$RUNS/evaluate.log"
echo "train_all: done in $(( ($(date +%s) - start) / 60 )) min; metrics in $RUNS/metrics.json"
