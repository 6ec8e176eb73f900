#!/usr/bin/env bash
# bench/ingest: `geoscribe ingest` end to end (tiles/s over the whole command: start-up,
# planning and probes, reads, composites, preprocessing, encoding, shards, commits, index
# write) next to the encoder alone on the same tiles with the same model, batch and threads
# (bench_ingest.c), alternating in one run. Goal: end-to-end / encoder-only >= 0.9.
# Run by hand (never in the test suite):
#
#   make build                              # or any build folder with -DGS_WERROR=ON
#   bench/ingest/run.sh [BUILD_DIR] [WORK_DIR]
#
# The model is the random ViT-B/32 of bench/encoder (ENCODER_DIR, default
# /tmp/geoscribe-bench-encoder; written there by `bench/encoder/run.sh` or, if missing, by its
# torch_clip.py, which needs python3-torch: deploy/setup.sh --bench). The job is
# jobs/examples/landsat8-pansharpen.yaml (two Landsat 8 scenes, 3 bands of 1550 x 1578 px,
# 256 px tiles). THREADS (default 2), BATCH (16), ROUNDS (2) and JOB can be set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/geoscribe-bench-ingest}
enc=${ENCODER_DIR:-/tmp/geoscribe-bench-encoder}
threads=${THREADS:-2} batch=${BATCH:-16} rounds=${ROUNDS:-2}
job=${JOB:-$root/jobs/examples/landsat8-pansharpen.yaml}
gs="$build/bin/geoscribe"
[ -x "$gs" ] || { echo "run.sh: no $gs: build first" >&2; exit 2; }
if [ ! -f "$enc/open_clip_model.safetensors" ]; then
  echo "run.sh: writing random ViT-B/32 weights into $enc" >&2
  mkdir -p "$enc" && /usr/bin/python3 "$root/bench/encoder/torch_clip.py" write "$enc"
fi
mkdir -p "$work"
dnnl_libs=""
if [ "$(nm "$build/model/libgs_model.a" 2>/dev/null | grep -c ' U dnnl_matmul_desc_init')" -gt 0 ]; then
  dnnl_libs="-ldnnl -lgomp"
fi
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -I "$build/inc/model" -I "$build/inc/common" \
  -I "$build/inc/jobs" "$here/bench_ingest.c" "$build/jobs/libgs_jobs.a" "$build/model/libgs_model.a" \
  "$build/common/libgs_common.a" $(pkg-config --libs gdal yaml-0.1 openblas jansson zlib libprotobuf-c) \
  $dnnl_libs -lm -lpthread -o "$work/bench_ingest"

sets=(--set "encoder.model=$enc" --set "encoder.threads=$threads" --set "encoder.batch=$batch"
      --set "tasks.max_tiles=64" --set "output=$work/out")
export OMP_WAIT_POLICY=PASSIVE
out="$work/results.jsonl"
: > "$out"
cd "$root"   # the example jobs name their inputs relative to the repository root
for r in $(seq 1 "$rounds"); do
  echo "run.sh: round $r of $rounds" >&2
  rm -rf "$work/out"
  /usr/bin/time -f '%e %U %S' -o "$work/e2e.time" \
    "$gs" ingest "$job" "${sets[@]}" --format json > "$work/e2e.json" 2> "$work/e2e.err"
  read -r wall usr sys < "$work/e2e.time"
  echo "{\"kind\":\"e2e\",\"wall_s\":$wall,\"cpu_s\":$(echo "$usr + $sys" | bc),\"summary\":$(cat "$work/e2e.json")}" | tee -a "$out" >&2
  "$work/bench_ingest" "$job" "${sets[@]}" --reps 1 2>/dev/null | sed 's/^{/{"kind":"encoder",/' | tee -a "$out" >&2
done

/usr/bin/python3 - "$out" "$threads" "$batch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
e2e = [r for r in rows if r["kind"] == "e2e"]
enc = [r for r in rows if r["kind"] == "encoder"]
tiles = e2e[0]["summary"]["tiles"]
w = max(tiles / r["wall_s"] for r in e2e)
inner = max(r["summary"]["tiles_per_s"] for r in e2e)
wc = max(tiles / r["cpu_s"] for r in e2e)
e = max(r["encoder_tiles_per_s"] for r in enc)
ec = max(r["tiles"] / r["encoder_cpu_s"] for r in enc)
print(f"ingest end to end vs encoder alone: {tiles} tiles, batch {sys.argv[3]}, "
      f"{sys.argv[2]} threads, best of {len(e2e)} rounds each")
print("| measure | encoder alone | ingest end to end | ratio |")
print("|---|---|---|---|")
print(f"| tiles per wall-clock second (whole command, start-up included) | {e:.2f} | {w:.2f} | {w / e:.2f} |")
print(f"| tiles per wall-clock second (ingest's own figure: plan to end) | {e:.2f} | {inner:.2f} | {inner / e:.2f} |")
print(f"| tiles per CPU-second (robust on a shared machine) | {ec:.2f} | {wc:.2f} | {wc / ec:.2f} |")
r = max(enc, key=lambda r: r["encoder_tiles_per_s"])
print(f"reading + compositing + preprocessing alone: {r['read_preprocess_s']:.2f} s for "
      f"{r['tiles']} tiles; encoder alone: {r['encoder_s']:.2f} s")
PY
