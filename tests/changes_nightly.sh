#!/usr/bin/env bash
# The nightly deployment of docs/CHANGES.md: the systemd units verify (systemd-analyze), the
# scripts pass shellcheck, two nights of deploy/systemd/geoscribe-nightly.sh over a growing
# Landsat series (../shared/data/scenes/landsat-pucallpa) ingest only the new date and add
# only its change pair, a second run while one holds the lock does not start, and
# deploy/slurm/nightly.sh submits the change run after the ingest with afterok (a stand-in
# sbatch records the calls).
#   changes_nightly.sh GEOSCRIBE_BIN TMPDIR SHARED SOURCE_DIR        (skips with 77 without SHARED)
set -u
bin=$1 tmp=$2 shared=$3 src=$4
fail() { echo "changes_nightly: FAIL: $*" >&2; exit 1; }
[ -d "$shared/data/scenes/landsat-pucallpa" ] || { echo "SKIP: ../shared is absent"; exit 77; }
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
puc=$shared/data/scenes/landsat-pucallpa

# ---- units and scripts
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/units"
  sed "s|/usr/local/lib/geoscribe/nightly.sh|$src/deploy/systemd/geoscribe-nightly.sh|" \
    "$src/deploy/systemd/geoscribe-nightly.service" >"$tmp/units/geoscribe-nightly.service"
  cp "$src/deploy/systemd/geoscribe-nightly.timer" "$tmp/units/"
  out=$(systemd-analyze verify "$tmp/units/geoscribe-nightly.timer" \
        "$tmp/units/geoscribe-nightly.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  cal=$(sed -n 's/^OnCalendar=//p' "$src/deploy/systemd/geoscribe-nightly.timer")
  systemd-analyze calendar "$cal" >/dev/null || fail "OnCalendar \"$cal\" does not parse"
else
  echo "changes_nightly: no systemd-analyze, units not verified" >&2
fi
if command -v shellcheck >/dev/null; then
  shellcheck "$src/deploy/systemd/geoscribe-nightly.sh" "$src/deploy/slurm/nightly.sh" \
    "$src/deploy/slurm/nightly-changes.sbatch" || fail "shellcheck"
fi

# ---- two nights
job=$tmp/job.yaml
write_job() { # the dates of the archive so far
  {
    echo "name: nightly"
    echo "inputs: [$1]"
    echo "output: $tmp/out"
    echo "tiling: {size: 128}"
    echo "composite: {bands: [1, 2, 3], scaling: none}"
    echo "time: {from: filename, pattern: \"%Y.tif\"}"
    echo "encoder: {model: $shared/fixtures/openclip_tiny, vocab: $shared/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz, batch: 8, threads: 1}"
    echo "captioner: {max_tokens: 8}"
    echo "changes: {max_gap_days: 2000, top_fraction: 0.2, caption_model: $shared/fixtures/llava_tiny}"
    [ -z "${2:-}" ] || echo "progress: {publish: \"$2\"}"
  } >"$job"
}
export OMP_WAIT_POLICY=PASSIVE GEOSCRIBE=$bin GS_NIGHTLY_LOCK=$tmp/lock
write_job "$puc/2005.tif, $puc/2010.tif, $puc/2015.tif"
"$src/deploy/systemd/geoscribe-nightly.sh" "$job" --format json >"$tmp/night1.log" \
  2>"$tmp/night1.err" || { cat "$tmp/night1.err" >&2; fail "night 1"; }
grep -q '"pairs_this_run":2,' "$tmp/night1.log" || fail "night 1 made $(cat "$tmp/night1.log")"
grep -q '"reused_embeddings":true' "$tmp/night1.log" || fail "night 1 did not reuse the ingest"
# night 2 publishes its progress to a monitor that binds (progress.publish: >endpoint)
"$bin" status --watch '@tcp://127.0.0.1:*' --timeout 60 --format json >"$tmp/watch.out" \
  2>"$tmp/watch.err" &
watcher=$!
for _ in $(seq 1 50); do grep -q watching "$tmp/watch.err" 2>/dev/null && break; sleep 0.1; done
ep=$(sed -n 's/.*watching //p' "$tmp/watch.err")
[ -n "$ep" ] || fail "status --watch did not start: $(cat "$tmp/watch.err")"
write_job "$puc/2005.tif, $puc/2010.tif, $puc/2015.tif, $puc/2020.tif" ">$ep"
GS_NIGHTLY_JOB=$job "$src/deploy/systemd/geoscribe-nightly.sh" --format json \
  >"$tmp/night2.log" 2>"$tmp/night2.err" || { cat "$tmp/night2.err" >&2; fail "night 2"; }
sleep 0.5
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
/usr/bin/python3 - "$tmp/watch.out" <<'PY' || fail "progress reports: $(cat "$tmp/watch.out")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
last = {m['kind']: m for m in r if m['done']}
assert set(last) == {'ingest', 'changes'}, f'last reports of {sorted(last)}'
i, c = last['ingest'], last['changes']
assert i['job'] == 'nightly' and i['complete'] and i['tasks_done'] == i['tasks_total'] > 0, i
assert i['tiles_total'] == i['tiles_done'] and i['tiles_done'] - i['skipped'] == 72, i
assert c['complete'] and c['tasks_total'] == c['tasks_done'] == 1, c  # the new pair
assert c['tiles_done'] == 18 and c['captioned'] == 4, c
PY
grep -q '"tiles_this_run":18,' "$tmp/night2.log" || fail "night 2 ingested $(head -1 "$tmp/night2.log")"
grep -q '"pairs_this_run":1,' "$tmp/night2.log" || fail "night 2 paired $(tail -1 "$tmp/night2.log")"
grep -q '"records":54,' "$tmp/night2.log" || fail "night 2 holds $(tail -1 "$tmp/night2.log")"
n=$("$bin" query --db "$tmp/out" --changes "new buildings" --from 2015 --to 2020 -k 100 2>/dev/null | wc -l)
[ "$n" -eq 4 ] || fail "query --changes over 2015..2020 found $n captions, not 4 (18 x 0.2)"

# ---- overlapping nights
( flock 8; sleep 5 ) 8>"$tmp/lock" &
holder=$!
sleep 0.5
"$src/deploy/systemd/geoscribe-nightly.sh" "$job" >/dev/null 2>"$tmp/night3.err"
rc=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
[ $rc -eq 75 ] || fail "a run while another holds the lock exited $rc, not 75"

# ---- the Slurm chain
mkdir -p "$tmp/fake"
cat >"$tmp/fake/sbatch" <<'EOS'
#!/usr/bin/env bash
n=1
[ -f "$SBATCH_LOG" ] && n=$(($(wc -l <"$SBATCH_LOG") + 1))
echo "$*" >>"$SBATCH_LOG"
echo "$((1000 + n));cluster"
EOS
chmod +x "$tmp/fake/sbatch"
export SBATCH_LOG=$tmp/sbatch.log
out=$(SBATCH=$tmp/fake/sbatch GS_INGEST_SBATCH_ARGS="--nodes=2" \
      "$src/deploy/slurm/nightly.sh" /shared/job.yaml --set a=b) || fail "slurm/nightly.sh"
[ "$(wc -l <"$SBATCH_LOG")" -eq 2 ] || fail "slurm/nightly.sh made $(wc -l <"$SBATCH_LOG") submissions"
sed -n 1p "$SBATCH_LOG" | grep -q -- "--nodes=2 .*deploy/slurm/ingest.sbatch /shared/job.yaml --set a=b" \
  || fail "ingest submission: $(sed -n 1p "$SBATCH_LOG")"
sed -n 2p "$SBATCH_LOG" | grep -q -- "--dependency=afterok:1001 .*deploy/slurm/nightly-changes.sbatch /shared/job.yaml --set a=b" \
  || fail "changes submission: $(sed -n 2p "$SBATCH_LOG")"
echo "$out" | grep -q "ingest job 1001, changes job 1002" || fail "output: $out"
echo "changes_nightly: ok"
