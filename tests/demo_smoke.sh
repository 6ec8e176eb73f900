#!/usr/bin/env bash
# The README demo (deploy/demo.sh) on a small input: the two dates of one place of the
# r-cran-satellite sample (18 tiles), with the default models, under mpirun -n 2 (DEMO_NP).
# Checks the steps' summaries, `geoscribe status`, the JSON lines and GeoJSON results (tiles
# and changes), the web server check, that a rerun redoes nothing (unless DEMO_SMOKE_RERUN=0),
# and that a failing step stops the demo with a message naming the step and its log.
#   demo_smoke.sh BUILD_DIR WORK_DIR SOURCE_DIR
# Skips (77) when models/default is missing or the sample cannot be obtained (apt-get
# download needs Debian's archive; the sample already laid out in SOURCE_DIR/demo/data is
# used without a download).
set -u
build=$1 work=$2 src=$3
fail() { echo "demo_smoke: FAIL: $*" >&2; exit 1; }
for m in clip captioner; do
  [ -f "$src/models/default/$m/config.json" ] ||
    { echo "SKIP: models/default/$m is not in this checkout"; exit 77; }
done
if command -v shellcheck >/dev/null; then
  shellcheck "$src/deploy/demo.sh" "$0" || fail "shellcheck deploy/demo.sh"
fi
mkdir -p "$work" || exit 1
export DEMO_DIR=$work
archive=$work/data/archive
if [ -z "${DEMO_DATA:-}" ] && [ -f "$src/demo/data/archive/SOURCE.txt" ]; then
  export DEMO_DATA=$src/demo/data/archive
  archive=$DEMO_DATA
fi
small="inputs=$archive/p195r025 captioner.max_tokens=16"

run() { # run LOG [VAR=value...]: deploy/demo.sh with the small input, output in WORK/LOG.*
  local log=$1; shift
  env "$@" "$src/deploy/demo.sh" "$build" >"$work/$log.out" 2>"$work/$log.err"
}
show() { sed 's/^/  | /' "$work/$1.out" "$work/$1.err" | tail -n 40 >&2; }

# ---- a first run from a clean output
t0=$(date +%s)
run first DEMO_CLEAN=1 DEMO_SET="$small"
rc=$?
if [ "$rc" -eq 69 ]; then
  echo "SKIP: the r-cran-satellite sample could not be obtained:"
  tail -n 5 "$work/first.err"
  exit 77
fi
[ "$rc" -eq 0 ] || { show first; fail "deploy/demo.sh exited $rc"; }
echo "demo_smoke: first run $(($(date +%s) - t0)) s"
out=$work/first.out
grep -q 'ingest "demo-landsat" complete: 2 scenes, 2/2 tasks, 18 tiles (18 this run' "$out" ||
  { show first; fail "ingest summary"; }
grep -q 'changes "demo-landsat" complete: 2 scenes, 1/1 pairs (1 this run), 9 tiles scored and 3 captioned' "$out" ||
  { show first; fail "changes summary"; }
if ! grep -q '^output .*complete$' "$out" || ! grep -q '^records *18 tiles, 18 captions' "$out"; then
  show first; fail "geoscribe status"
fi
grep -q 'checked: geoscribe serve answered' "$out" || { show first; fail "web server check"; }
grep -q 'serve --db .* --http 127.0.0.1:8080' "$out" || fail "no web page instructions"

# ---- the results: JSON lines and GeoJSON for each search
python3 - "$work/results" <<'EOF' || fail "results"
import glob, json, os, sys
res = sys.argv[1]
names = sorted(os.path.basename(p)[:-8] for p in glob.glob(res + "/*.geojson"))
want = ["changes-by-score", "changes-new-buildings", "tiles-a-forest", "tiles-a-river",
        "tiles-buildings", "tiles-farmland"]
missing = [w for w in want if w not in names]
assert not missing, "missing results: %s (have %s)" % (missing, names)
for n in names:
    lines = [json.loads(l) for l in open("%s/%s.jsonl" % (res, n)) if l.strip()]
    fc = json.load(open("%s/%s.geojson" % (res, n)))
    assert fc["type"] == "FeatureCollection", n
    feats = fc["features"]
    assert len(feats) == len(lines) > 0, "%s: %d features, %d lines" % (n, len(feats), len(lines))
    for f, l in zip(feats, lines):
        ring = f["geometry"]["coordinates"][0]
        # p195r025 is near Marburg, Germany
        assert all(8.7 < x < 8.9 and 50.7 < y < 50.9 for x, y in ring), (n, ring)
        assert f["geometry"]["type"] == "Polygon" and ring[0] == ring[-1], n
        if n.startswith("tiles-"):
            assert l["caption"] and l["time"][:4] in ("2001", "2013"), (n, l)
        else:
            assert l["before"]["time"].startswith("2001-07-30"), (n, l)
            assert l["after"]["time"].startswith("2013-07-07"), (n, l)
        if n != "changes-by-score":
            assert l["caption"], (n, l)
print("demo_smoke: %d result files checked" % (2 * len(names)))
EOF

# ---- a rerun reuses the data and the output (DEMO_SMOKE_RERUN=0 skips it: sanitizer builds)
if [ "${DEMO_SMOKE_RERUN:-1}" = 1 ]; then
  run second DEMO_SET="$small" || { show second; fail "the rerun exited $?"; }
  grep -q 'ingest "demo-landsat" complete: .*18 tiles (0 this run' "$work/second.out" ||
    { show second; fail "the rerun ingested again"; }
  grep -q 'changes "demo-landsat" complete: .*(0 this run)' "$work/second.out" ||
    { show second; fail "the rerun paired again"; }
  grep -q 'apt-get download' "$work/second.out" && fail "the rerun downloaded the sample again"
fi

# ---- a failing step names itself, its log and the cause
run bad DEMO_SET="$small tiling.sise=32"
rc=$?
[ "$rc" -eq 1 ] || { show bad; fail "a bad job key: exit $rc, wanted 1"; }
if ! grep -q 'step "ingest" failed' "$work/bad.err" ||
  ! grep -q 'unknown key "tiling.sise"' "$work/bad.err"; then
  show bad; fail "a bad job key: no clear message"
fi
echo "demo_smoke: ok"
