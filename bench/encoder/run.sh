#!/usr/bin/env bash
# bench/encoder: geoscribe's CLIP image encoder next to PyTorch on the same random ViT-B/32
# weights, same cores, same run. Run by hand (never in the test suite):
#
#   deploy/setup.sh --bench            # once: Debian's python3-torch
#   make build                         # or any build folder with -DGS_WERROR=ON
#   bench/encoder/run.sh [BUILD_DIR] [WORK_DIR]
#
# Writes the weights once into WORK_DIR (600 MB, default /tmp/geoscribe-bench-encoder), builds
# bench_encoder.c against BUILD_DIR's libraries, then runs ROUNDS (default 2) rounds of
# {geoscribe, PyTorch} x {1, 2 threads} x {batch 1, 16} and prints the best of each with the
# ratios (and, when BUILD_DIR was built with oneDNN, float32 on oneDNN's packed weights and the
# bf16 path the same way). PyTorch runs
# as STACK.md recommends: torch.set_num_threads(1), OpenBLAS threads =
# the thread count (its fastest setting on these machines). BENCH_SECONDS (default 2) sets the
# time per measurement.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/geoscribe-bench-encoder}
rounds=${ROUNDS:-2}
secs=${BENCH_SECONDS:-2}
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "run.sh: needs python3-torch: deploy/setup.sh --bench" >&2; exit 2; }
[ -f "$build/model/libgs_model.a" ] || { echo "run.sh: no $build/model/libgs_model.a: build first" >&2; exit 2; }

mkdir -p "$work"
if [ ! -f "$work/open_clip_model.safetensors" ] || [ ! -f "$work/torch_features.bin" ]; then
  echo "run.sh: writing random ViT-B/32 weights into $work" >&2
  "$py" "$here/torch_clip.py" write "$work"
fi
# a build with oneDNN (GS_HAVE_DNNL) also gets the bf16 rows
dnnl_libs=""
if [ "$(nm "$build/model/libgs_model.a" 2>/dev/null | grep -c ' U dnnl_matmul_desc_init')" -gt 0 ]; then
  dnnl_libs="-ldnnl -lgomp"
fi
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -I "$build/inc/model" -I "$build/inc/common" \
  "$here/bench_encoder.c" "$build/model/libgs_model.a" "$build/common/libgs_common.a" \
  $(pkg-config --libs openblas jansson zlib libprotobuf-c) $dnnl_libs -lm -lpthread -o "$work/bench_encoder"
fixtures=$(cd "$root/../shared/fixtures" 2>/dev/null && pwd || true)

out="$work/results.jsonl"
: > "$out"
for r in $(seq 1 "$rounds"); do
  echo "run.sh: round $r of $rounds" >&2
  "$work/bench_encoder" "$work" --batch 1,16 --threads 1,2 --seconds "$secs" --reps 1 2>/dev/null | tee -a "$out" >&2
  if [ -n "$dnnl_libs" ]; then
    OMP_WAIT_POLICY=PASSIVE "$work/bench_encoder" "$work" --batch 1,16 --threads 1,2 --seconds "$secs" --reps 1 \
      --gemm onednn 2>/dev/null | tee -a "$out" >&2
    OMP_WAIT_POLICY=PASSIVE "$work/bench_encoder" "$work" --batch 1,16 --threads 1,2 --seconds "$secs" --reps 1 \
      --precision bf16 ${fixtures:+--fixtures "$fixtures"} 2>/dev/null | tee -a "$out" >&2
  fi
  for t in 1 2; do
    OPENBLAS_NUM_THREADS=$t BENCH_SECONDS=$secs "$py" "$here/torch_clip.py" time "$work" 1 16 |
      sed "s/^{/{\"threads\":$t,/" | tee -a "$out" >&2
  done
done

"$py" "$here/summarize.py" "$out"
