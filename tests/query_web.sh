#!/usr/bin/env bash
# The web map in headless Chromium (tests/query_web.js): `geoscribe serve --http` over a small
# real output; type a query, see the hits and their footprints. Also checks that the server
# refuses to start without the Leaflet files. Then the changes tab over a real `geoscribe
# ingest` + `geoscribe changes` output of three Landsat Pucallpa dates (tiny fixture models). Skips (77) without chromium or playwright-core
# (deploy/setup.sh installs both).
# usage: query_web.sh GEOSCRIBE QUERY_MKDB TMPDIR SHARED NODE_MODULES SOURCE_DIR
set -u
gs=$1 mkdb=$2 tmp=$3/query_web.$$ shared=$4 nm=$5 src=$6
[ -d "$shared/fixtures/openclip_tiny" ] || { echo "SKIP: ../shared is absent"; exit 77; }
[ -x /usr/bin/chromium ] || { echo "SKIP: /usr/bin/chromium is absent (deploy/setup.sh)"; exit 77; }
[ -d "$nm/playwright-core" ] || { echo "SKIP: playwright-core is absent in $nm (deploy/setup.sh)"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node is absent"; exit 77; }
export OMP_WAIT_POLICY=PASSIVE
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
fail() { echo "query_web: FAIL: $*" >&2; exit 1; }
"$mkdb" "$tmp/out" 1500 Flat 2>"$tmp/mkdb.log" || fail "query_mkdb: $(cat "$tmp/mkdb.log")"

# Missing assets: a clear refusal, not a page without a map.
"$gs" serve --db "$tmp/out" --bind 'tcp://127.0.0.1:*' --http 127.0.0.1:0 \
  --leaflet "$tmp/nowhere" >/dev/null 2>"$tmp/noassets.err" &&
  fail "serve started without Leaflet"
grep -q 'web assets missing: ".*leaflet.js" not found' "$tmp/noassets.err" ||
  fail "no clear message for missing assets: $(cat "$tmp/noassets.err")"

"$gs" serve --db "$tmp/out" --bind 'tcp://127.0.0.1:*' --http 127.0.0.1:0 --format json \
  --leaflet "$nm/leaflet/dist" --web "$src/web" >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q '"http"' "$tmp/serve.out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/serve.out")
[ -n "$url" ] || fail "serve did not start: $(cat "$tmp/serve.log")"
NODE_PATH="$nm" timeout 120 node "$src/tests/query_web.js" "$url" "$3/query_web.png" ||
  fail "the browser test failed (server log: $tmp/serve.log)"
ls "$tmp/out/cache/thumbs/"*.png >/dev/null 2>&1 || fail "no thumbnail was cached"
kill -TERM $pid
wait $pid || fail "serve exited $? after SIGTERM"
trap - EXIT

# The changes tab: a change store of 2010, 2015 and 2020 (2 pairs of 18 tiles, 5 captions each).
puc="$shared/data/scenes/landsat-pucallpa"
cat >"$tmp/changes.yaml" <<JOB
name: web
inputs: [$puc/2010.tif, $puc/2015.tif, $puc/2020.tif]
output: $tmp/chout
tiling: {size: 128}
composite: {bands: [1, 2, 3], scaling: none}
time: {from: filename, pattern: "%Y.tif"}
encoder: {model: $shared/fixtures/openclip_tiny, vocab: $shared/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz, batch: 8, threads: 1}
captioner: {max_tokens: 12}
changes: {max_gap_days: 2000, top_fraction: 0.25, caption_model: $shared/fixtures/llava_tiny}
JOB
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for step in ingest changes; do
  "$gs" $step "$tmp/changes.yaml" >"$tmp/$step.log" 2>&1 ||
    fail "geoscribe $step: $(tail -5 "$tmp/$step.log")"
done
"$gs" serve --db "$tmp/chout" --bind 'tcp://127.0.0.1:*' --http 127.0.0.1:0 --format json \
  --leaflet "$nm/leaflet/dist" --web "$src/web" >"$tmp/serve2.out" 2>"$tmp/serve2.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q '"http"' "$tmp/serve2.out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/serve2.out")
[ -n "$url" ] || fail "serve did not start: $(cat "$tmp/serve2.log")"
NODE_PATH="$nm" timeout 120 node "$src/tests/query_web.js" "$url" "$3/query_web_changes.png" \
  changes || fail "the browser test of the changes tab failed (server log: $tmp/serve2.log)"
kill -TERM $pid
wait $pid || fail "serve exited $? after SIGTERM"
trap - EXIT
rm -rf "$tmp"
