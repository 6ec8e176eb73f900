#!/usr/bin/env bash
# The nightly chain on a Slurm cluster: submits the ingest (deploy/slurm/ingest.sbatch) and the
# change run (deploy/slurm/nightly-changes.sbatch) with a dependency, so the changes start only
# once the ingest finished successfully (--dependency=afterok; an ingest that fails or leaves
# failed tasks, exit 3, cancels them: --kill-on-invalid-dep=yes). Run it from cron on a login
# node (docs/CHANGES.md, "Scheduling"):
#
#   deploy/slurm/nightly.sh /shared/jobs/archive.yaml [--set key=value]...
#   30 2 * * *  /opt/geoscribe/deploy/slurm/nightly.sh /shared/jobs/archive.yaml >>$HOME/nightly.log 2>&1
#
# Environment: SBATCH (default sbatch), GS_INGEST_SBATCH_ARGS and GS_CHANGES_SBATCH_ARGS
# (extra sbatch options each, e.g. "--nodes=4 --partition=batch"), GEOSCRIBE (the binary,
# passed to the jobs). Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
job=${1:?usage: deploy/slurm/nightly.sh JOB.yaml [--set key=value]...}
shift
SBATCH=${SBATCH:-sbatch}
export GEOSCRIBE=${GEOSCRIBE:-geoscribe}
# shellcheck disable=SC2086 # the extra options are a word list on purpose
ingest=$($SBATCH --parsable --export=ALL ${GS_INGEST_SBATCH_ARGS:-} \
  "$here/ingest.sbatch" "$job" "$@")
ingest=${ingest%%;*} # "<id>;<cluster>" on federated clusters
# shellcheck disable=SC2086
changes=$($SBATCH --parsable --export=ALL --dependency="afterok:$ingest" \
  --kill-on-invalid-dep=yes ${GS_CHANGES_SBATCH_ARGS:-} \
  "$here/nightly-changes.sbatch" "$job" "$@")
changes=${changes%%;*}
echo "geoscribe nightly: ingest job $ingest, changes job $changes (runs after the ingest succeeds)"
