#!/usr/bin/env bash
# Stock FAISS (Debian's python3-faiss) opens the index of an ingest output and agrees with
# geoscribe status: ingests two real scenes with the tiny fixture model into DIR, then runs
# tests/ingest_faiss_check.py. Exit 77 (CTest: skipped) with a message when python3-faiss or
# ../shared is missing. Usage: ingest_faiss_py.sh GEOSCRIBE DIR SHARED
set -u
gs=${1:?} dir=${2:?} shared=${3:?}
py=/usr/bin/python3
if ! "$py" -c 'import faiss, numpy' 2>/dev/null; then
  echo "SKIP: python3-faiss is not installed (apt-get install python3-faiss, or deploy/setup.sh)" >&2
  exit 77
fi
if [ ! -d "$shared/data/scenes" ]; then
  echo "SKIP: ../shared is absent (fixtures and data live there)" >&2
  exit 77
fi
# one process still initialises MPI (a singleton): under ASan, exact stacks so that its leaks
# match tests/lsan.supp (as in tests/mpi_ping.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0"
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
rm -rf "$dir" && mkdir -p "$dir"
cat > "$dir/job.yaml" <<YAML
name: faiss-py
inputs: [$shared/data/scenes/rasterio/RGB.byte.tif, $shared/data/scenes/rasterio/cogeo.tif]
output: $dir/out
tiling: {size: 64}
encoder: {model: $shared/fixtures/openclip_tiny, threads: 1}
YAML
"$gs" ingest "$dir/job.yaml" 2>"$dir/ingest.err" || { cat "$dir/ingest.err" >&2; exit 1; }
"$gs" status --db "$dir/out" --format json > "$dir/status.json" || exit 1
exec "$py" "$(dirname "$0")/ingest_faiss_check.py" "$dir/out/index/tiles.faiss" "$dir/status.json"
