#!/usr/bin/env bash
# bench/encoder/run_text.sh: texts/s of geoscribe's CLIP text tower (ViT-B/32 text transformer:
# width 512, 12 layers, context 77) on the 1050 UCM val captions, through gs_clip_encode_texts
# (tokenizer included), as `geoscribe eval retrieve` and `embed --text` run it. Run by hand:
#
#   bench/encoder/run_text.sh [BUILD_DIR] [WORK_DIR]   # ROUNDS=3 by default
#
# Uses the random weights of run.sh in WORK_DIR (writes them when missing; needs python3-torch
# then), the vocabulary and captions of ../shared. DUMP=FILE also writes the embeddings of the
# first configuration, to compare builds: WORK_DIR/bench_text --compare A B 512.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/geoscribe-bench-encoder}
rounds=${ROUNDS:-3}
shared=$(cd "$root/../shared" && pwd)
vocab=$shared/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz
dataset=$shared/data/ucm-captions/dataset.json
[ -f "$build/model/libgs_model.a" ] || { echo "run_text.sh: no $build/model/libgs_model.a: build first" >&2; exit 2; }
mkdir -p "$work"
if [ ! -f "$work/open_clip_model.safetensors" ]; then
  echo "run_text.sh: writing random ViT-B/32 weights into $work" >&2
  /usr/bin/python3 "$here/torch_clip.py" write "$work"
fi
dnnl_libs=""
if [ "$(nm "$build/model/libgs_model.a" 2>/dev/null | grep -c ' U dnnl_matmul_desc_init')" -gt 0 ]; then
  dnnl_libs="-ldnnl -lgomp"
fi
exe=$(mktemp "$work/bench_text.XXXXXX")
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -I "$build/inc/model" -I "$build/inc/common" \
  "$here/bench_text.c" "$build/model/libgs_model.a" "$build/common/libgs_common.a" \
  $(pkg-config --libs openblas jansson zlib libprotobuf-c) $dnnl_libs -lm -lpthread -o "$exe"
for r in $(seq 1 "$rounds"); do
  "$exe" "$work" "$vocab" "$dataset" --batch 16,32 --threads 1,2 --reps "${REPS:-2}" \
    ${DUMP:+--dump "$DUMP"} 2>/dev/null
done
rm -f "$exe"
