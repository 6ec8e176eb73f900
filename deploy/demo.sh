#!/usr/bin/env bash
# The README demo. Until ingest and query exist, it runs the smallest real thing geoscribe
# does: report the linked libraries, then a 3-rank MPI roll call with protobuf messages.
set -euo pipefail
build=${1:-build}
gs="$build/bin/geoscribe"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "== geoscribe version"
"$gs" version
echo "== mpirun -n 3 geoscribe ping"
mpirun -n 3 "$gs" ping
