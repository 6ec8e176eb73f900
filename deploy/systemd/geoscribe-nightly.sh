#!/usr/bin/env bash
# The nightly run of geoscribe: ingest the scenes added to the archive since the last run, then
# pair, score and caption the changes they bring (docs/CHANGES.md). Both commands resume and
# skip finished work, so a night that fails half way is finished by the next one.
#
#   geoscribe-nightly.sh JOB.yaml [--set key=value]...        (or GS_NIGHTLY_JOB=JOB.yaml)
#
# Environment (systemd: /etc/geoscribe/nightly.env, see geoscribe-nightly.service):
#   GS_NIGHTLY_JOB     the job file (absolute path), when not given as the first argument
#   GEOSCRIBE          the geoscribe binary (default: geoscribe on PATH)
#   GS_NIGHTLY_RANKS   MPI ranks (default 1: one process); > 1 runs both under mpirun
#   GS_NIGHTLY_MPIRUN  the mpirun command with its options (default "mpirun")
#   GS_NIGHTLY_LOCK    lock file that keeps two nights from overlapping
#                      (default /run/lock/geoscribe-nightly.lock, or $TMPDIR's without /run/lock)
# Exit status: ingest's when it failed (1 fatal, 2 bad job: no change run), else changes'
# (0 done, 1 fatal, 3 some pairs failed); 3 from ingest (some tasks failed, the rest is
# ingested) still runs the changes and is returned; 75 when another night still runs.
set -uo pipefail

job=${GS_NIGHTLY_JOB:-}
if [ -z "$job" ]; then
  job=${1:-}
  [ $# -gt 0 ] && shift
fi
if [ -z "$job" ]; then
  echo "usage: geoscribe-nightly.sh JOB.yaml [--set key=value]... (or GS_NIGHTLY_JOB=JOB.yaml)" >&2
  exit 2
fi
GEOSCRIBE=${GEOSCRIBE:-geoscribe}
ranks=${GS_NIGHTLY_RANKS:-1}
mpirun_cmd=${GS_NIGHTLY_MPIRUN:-mpirun}
lockdir=/run/lock
[ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=${TMPDIR:-/tmp}
lock=${GS_NIGHTLY_LOCK:-$lockdir/geoscribe-nightly.lock}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} # FAISS's OpenMP threads must not spin

exec 9>"$lock" || { echo "geoscribe-nightly: cannot open the lock \"$lock\"" >&2; exit 1; }
if ! flock -n 9; then
  echo "geoscribe-nightly: another run holds \"$lock\"; not starting" >&2
  exit 75
fi

# step ingest|changes: one command, under mpirun when ranks > 1. The lock's descriptor is not
# handed down: MPI helper daemons may outlive the command and would hold the lock.
step() {
  local cmd=$1
  shift
  echo "geoscribe-nightly: $(date -u +%FT%TZ) $cmd \"$job\" ($ranks rank(s))" >&2
  if [ "$ranks" -gt 1 ]; then
    # shellcheck disable=SC2086 # the mpirun command is a word list on purpose
    $mpirun_cmd -n "$ranks" "$GEOSCRIBE" "$cmd" "$job" "$@" 9>&-
  else
    "$GEOSCRIBE" "$cmd" "$job" "$@" 9>&-
  fi
}

step ingest "$@"
rc=$?
case $rc in
  0|3) ;;
  *) echo "geoscribe-nightly: ingest failed (exit $rc): no change run tonight" >&2; exit $rc ;;
esac
step changes "$@"
crc=$?
echo "geoscribe-nightly: $(date -u +%FT%TZ) done: ingest exit $rc, changes exit $crc" >&2
[ $rc -ne 0 ] && exit $rc
exit $crc
