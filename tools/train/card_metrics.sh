#!/usr/bin/env bash
# Writes MODEL/metrics.json: the C engine's `geoscribe eval classify` and `eval retrieve` on
# the UCM-captions val split for a CLIP folder, the numbers its MODEL_CARD.md quotes and that
# tests/models_default.sh checks the shipped weights against.
#   tools/train/card_metrics.sh models/default/clip [GEOSCRIBE]
set -euo pipefail
model=$1
gs=${2:-build/bin/geoscribe}
d=${GS_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/../shared}/data/ucm-captions
cls=$(GS_LOG_LEVEL=warn "$gs" eval classify --model "$model" --images "$d/imgs" \
  --labels "$d/labels.csv" --split val)
ret=$(GS_LOG_LEVEL=warn "$gs" eval retrieve --model "$model" --images "$d/imgs" \
  --dataset "$d/dataset.json" --split val)
printf '{"split":"val","data":"ucm-captions","classify":%s,"retrieve":%s}\n' "$cls" "$ret" \
  > "$model/metrics.json"
cat "$model/metrics.json"
