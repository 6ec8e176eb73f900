#!/usr/bin/env bash
# bench/query: search latency and recall at 1,000,000 vectors, geoscribe next to Debian's
# python3-faiss on the same index files in the same run. Run by hand (never in the tests):
#
#   make build                              # or any -DGS_WERROR=ON build folder
#   bench/query/run.sh [BUILD_DIR] [WORK_DIR]   # N=1000000 NQ=1000 NQ_BIG=50 by default
#
# Builds WORK_DIR once (N synthetic clustered 512-d vectors with records, the "auto" index
# IVF-PQ + refine and a Flat index, held-out queries and their exact top-10): about 3 GB of disk
# and under 5 GB of memory at 1M. The text encoder is a random-weight ViT-B/32 (real size: the
# weights of bench/encoder, written by its torch_clip.py when missing; needs python3-torch).
# Then measures both outputs with bench_query and with faiss_peer.py, and prints the table.
# K_FACTOR (default 32, GS_SEARCH_K_FACTOR) sets the refine stage of both sides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/geoscribe-bench-query}
n=${N:-1000000} nq=${NQ:-1000} nq_big=${NQ_BIG:-50}
py=/usr/bin/python3
shared=$(cd "$root/../shared" && pwd)
vocab=$shared/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz
model=${MODEL:-/tmp/geoscribe-bench-encoder}
export OMP_WAIT_POLICY=PASSIVE
[ -f "$build/query/libgs_query.a" ] || { echo "run.sh: build $build first" >&2; exit 2; }
mkdir -p "$work"
if [ ! -f "$model/open_clip_model.safetensors" ]; then
  echo "run.sh: writing random ViT-B/32 weights into $model" >&2
  "$py" "$root/bench/encoder/torch_clip.py" write "$model"
fi
dnnl=""
if [ "$(nm "$build/model/libgs_model.a" 2>/dev/null | grep -c ' U dnnl_')" -gt 0 ]; then dnnl="-ldnnl"; fi
exe="$work/bench_query"
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra \
  -I "$build/inc/query" -I "$build/inc/index" -I "$build/inc/model" -I "$build/inc/common" \
  -c "$here/bench_query.c" -o "$work/bench_query.o"
g++ "$work/bench_query.o" "$build/query/libgs_query.a" "$build/index/libgs_index.a" \
  "$build/model/libgs_model.a" "$build/common/libgs_common.a" \
  "${GS_DEPS_PREFIX:-/opt/geoscribe}/faiss-c/lib/libfaiss_c.a" /usr/lib/x86_64-linux-gnu/libfaiss.a \
  -lrocksdb -lzmq -lmicrohttpd $(pkg-config --libs openblas jansson zlib) $dnnl -llapack -lblas \
  -fopenmp -lm -lpthread -o "$exe"
if [ ! -f "$work/gt.i64" ]; then
  echo "run.sh: building $work ($n vectors; IVF-PQ training takes minutes)" >&2
  rm -rf "$work/out_ivf" "$work/out_flat"
  "$exe" build "$work" "$n" "$model" "$vocab" | tee "$work/build.jsonl"
fi
out="$work/results.jsonl"
"$exe" measure "$work" "$nq" "$nq_big" | tee "$out"
"$py" "$here/faiss_peer.py" "$work" "$nq" "$nq_big" | tee -a "$out"
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for name in ("out_ivf", "out_flat"):
    g = next(r for r in rows if r.get("output") == name and "peer" not in r)
    p = next(r for r in rows if r.get("output") == name and "peer" in r)
    print(f"\n{name}: {g['index']}")
    print(f"  {'':24s} {'geoscribe':>10s} {'py-faiss':>10s} {'ratio':>6s}   "
          f"{'CPU: geoscribe':>14s} {'py-faiss':>10s} {'ratio':>6s}")
    for key, label in (("k10_p50", "k=10 p50 (ms)"), ("k10_p99", "k=10 p99 (ms)"),
                       ("k10000_p50", "k=10000 p50 (ms)"), ("k10000_p99", "k=10000 p99 (ms)")):
        a, b = g[key + "_ms"], p[key + "_ms"]
        ca, cb = g[key.replace("_p", "_cpu_p") + "_ms"], p[key.replace("_p", "_cpu_p") + "_ms"]
        print(f"  {label:24s} {a:10.3f} {b:10.3f} {a / b:6.2f}   {ca:14.3f} {cb:10.3f} {ca / cb:6.2f}")
    print(f"  {'recall@10 vs exact':24s} {g['recall_at_10']:10.4f} {p['recall_at_10']:10.4f}")
    print(f"  geoscribe includes the records (tile, scene, caption); python3-faiss is the index alone")
    print(f"  open: geoscribe {g['open_s']} s (store, index, encoder and its id, filter table), "
          f"python3-faiss {p['open_s']} s (index file)")
    print(f"  k=10000: {g['k10000_hits']} hits, records {g['k10000_records_p50_ms']} ms, JSON "
          f"{g['k10000_json_p50_ms']} ms, GeoJSON {g['k10000_geojson_p50_ms']} ms (p50)")
    print(f"  text query end to end (ViT-B/32 text tower + search + records), k=10: p50 "
          f"{g['text_k10_p50_ms']} ms, p99 {g['text_k10_p99_ms']} ms; CPU p50 "
          f"{g['text_k10_cpu_p50_ms']} ms (encode p50 {g['text_encode_p50_ms']} ms wall)")
    print(f"  bbox filter ({g['bbox_candidates']} candidates), k=10: p50 {g['bbox_k10_p50_ms']} ms, "
          f"p99 {g['bbox_k10_p99_ms']} ms; CPU p50 {g['bbox_k10_cpu_p50_ms']} ms")
PY
