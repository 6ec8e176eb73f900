#!/usr/bin/env bash
# Real MPI: N ranks exchange protobuf Hellos with rank 0. Also the single-process path.
set -u
mpirun=$1 gs=$2 n=$3
fail() { echo "mpi_ping: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# under ASan: exact stacks, so that leaks inside MPI match tests/lsan.supp
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0"
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
out=$("$mpirun" -n "$n" "$gs" ping --format json) || fail "mpirun -n $n failed: $out"
echo "$out"
echo "$out" | grep -q "\"ranks\":$n," || fail "expected $n ranks"
for r in $(seq 0 $((n - 1))); do
  echo "$out" | grep -q "{\"rank\":$r," || fail "rank $r missing from the roll call"
done
single=$("$gs" ping --format json) || fail "singleton run failed"
echo "$single" | grep -q '"ranks":1,' || fail "singleton: $single"
echo "mpi_ping: ok"
