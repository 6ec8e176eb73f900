#!/usr/bin/env bash
# Search over a real ingest: `geoscribe ingest` of ../shared/data/scenes/rasterio (two RGB
# GeoTIFFs, openclip_tiny encoder, llava_tiny captioner), then `geoscribe query` locally and
# through `geoscribe serve`: every tile comes back for a large k, the same bytes both ways,
# filters hold on the real footprints, query by example finds the tile itself, GeoJSON opens
# in ogrinfo, and a thumbnail renders from the scene; a stale thumbnail cache is emptied once.
# usage: query_ingest.sh GEOSCRIBE TMPDIR SOURCE_DIR SHARED
set -u
gs=$1 tmp=$2/query_ingest.$$ src=$3 shared=$4
[ -d "$shared/data/scenes/rasterio" ] || { echo "SKIP: ../shared is absent"; exit 77; }
export OMP_WAIT_POLICY=PASSIVE
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
fail() { echo "query_ingest: FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
out=$tmp/out
vocab=$shared/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz
# The example job names its inputs and models relative to the repository root.
(cd "$src" && "$gs" ingest jobs/examples/rasterio-rgb.yaml --set "output=$out" \
   --set captioner.model=../shared/fixtures/llava_tiny --set captioner.max_tokens=8) \
  >"$tmp/ingest.out" 2>"$tmp/ingest.log" || fail "ingest: $(tail -5 "$tmp/ingest.log")"
n=$(sed -n 's/.* \([0-9]*\) vectors.*/\1/p' "$tmp/ingest.out")
[ -n "$n" ] && [ "$n" -gt 10 ] || fail "ingest made no vectors: $(cat "$tmp/ingest.out")"
model="$shared/fixtures/openclip_tiny"

q() { "$gs" query --db "$out" --model "$model" --vocab "$vocab" "$@"; }
q -k 10000 river >"$tmp/all.json" 2>"$tmp/q.err" || fail "query: $(cat "$tmp/q.err")"
[ "$(wc -l <"$tmp/all.json")" -eq "$n" ] || fail "k=10000 gave $(wc -l <"$tmp/all.json") of $n tiles"
# The output records the models by absolute path: a search from any folder finds them.
(cd "$tmp" && "$gs" query --db "$out" --vocab "$vocab" -k 10000 river) >"$tmp/all2.json" \
  2>"$tmp/rel.err" || fail "query with the recorded model from another folder: $(cat "$tmp/rel.err")"
cmp -s "$tmp/all.json" "$tmp/all2.json" || fail "recorded and given model differ"

# A box around the Landsat scene (RGB.byte.tif, in the Bahamas): every hit intersects it.
box=-78.2,23.6,-77.2,24.6
q -k 10000 --bbox $box --format json river >"$tmp/box.json" 2>/dev/null || fail "bbox query"
$py - "$tmp/box.json" "$tmp/all.json" "$box" <<'PY' || fail "bbox filter"
import json, sys
w, s, e, n = map(float, sys.argv[3].split(','))
hits = [json.loads(l) for l in open(sys.argv[1])]
every = [json.loads(l) for l in open(sys.argv[2])]
inter = lambda b: b[0] <= e and b[2] >= w and b[1] <= n and b[3] >= s
want = sum(1 for h in every if inter(h['bbox']))
assert hits and all(inter(h['bbox']) for h in hits), 'a hit outside the box'
assert len(hits) == want, f'{len(hits)} hits, {want} tiles intersect'
assert all(h['caption'] for h in hits), 'a tile without its caption'
PY
# Query by example: a tile finds itself; the same bytes through the service.
tile=$(sed -n '5s/.*"tile_id":"\([0-9]*\)".*/\1/p' "$tmp/all.json")
q -k 5 --like-tile "$tile" >"$tmp/like.json" 2>/dev/null || fail "like-tile query"
head -1 "$tmp/like.json" | grep -q "\"tile_id\":\"$tile\",\"score\":1.000000" || fail "like-tile: not first"
# A thumbnail cache from before the cache had a key (or drawn another way): its thumbnails
# go at start, other files stay.
cache=$out/cache/thumbs
mkdir -p "$cache" && printf stale >"$cache/$tile.png" && printf stale >"$cache/c12-after.png" &&
  printf keep >"$cache/notes.png.txt" || fail "could not seed the thumbnail cache"
"$gs" serve --db "$out" --model "$model" --vocab "$vocab" --bind 'tcp://127.0.0.1:*' \
  --http 127.0.0.1:0 --format json >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q '"zmq"' "$tmp/serve.out" 2>/dev/null && break; sleep 0.2; done
ep=$(sed -n 's/.*"zmq":"\([^"]*\)".*/\1/p' "$tmp/serve.out")
url=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/serve.out")
[ -n "$ep" ] || fail "serve did not start: $(cat "$tmp/serve.log")"
for fmt in json geojson; do
  q -k 20 --bbox $box --format $fmt river >"$tmp/l.$fmt" 2>/dev/null
  "$gs" query --server "$ep" -k 20 --bbox $box --format $fmt river >"$tmp/r.$fmt" 2>"$tmp/r.err" ||
    fail "remote query: $(cat "$tmp/r.err")"
  cmp -s "$tmp/l.$fmt" "$tmp/r.$fmt" || fail "--db and --server differ ($fmt)"
done
k=$(wc -l <"$tmp/l.json")
ogrinfo -ro -al -so "$tmp/l.geojson" 2>&1 | grep -q "Feature Count: $k" || fail "ogrinfo: not $k features"
$py -c 'import sys, urllib.request
d = urllib.request.urlopen(sys.argv[1]).read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"' "${url}api/tile/$tile.png" || fail "thumbnail"
kill -TERM $pid
wait $pid || fail "serve exited $? after SIGTERM"
# thumbnails are composed with the job ingest recorded (OUT/job.yaml), not from raw bands
grep -q "thumbnails from the rasters' first bands" "$tmp/serve.log" &&
  fail "serve did not use the output's job.yaml: $(grep thumbnails "$tmp/serve.log")"
[ ! -e "$cache/c12-after.png" ] && [ "$(cat "$cache/notes.png.txt")" = keep ] &&
  grep -q "composed with OUT/job.yaml" "$cache/cache.key" ||
  fail "stale cache: $(ls "$cache"), key $(cat "$cache/cache.key" 2>&1)"
grep -q "2 thumbnails made with other settings removed" "$tmp/serve.log" ||
  fail "the cleared cache was not logged: $(grep -i cache "$tmp/serve.log")"
# The same key at the next start: the cache is kept.
cmp -s "$cache/$tile.png" <(printf stale) && fail "the stale thumbnail was served"
cp "$cache/$tile.png" "$tmp/thumb.png"
"$gs" serve --db "$out" --model "$model" --vocab "$vocab" --bind 'tcp://127.0.0.1:*' \
  --http 127.0.0.1:0 --format json >"$tmp/serve2.out" 2>"$tmp/serve2.log" &
pid=$!
for _ in $(seq 1 100); do grep -q '"zmq"' "$tmp/serve2.out" 2>/dev/null && break; sleep 0.2; done
grep -q '"zmq"' "$tmp/serve2.out" || fail "serve did not start again: $(cat "$tmp/serve2.log")"
kill -TERM $pid
wait $pid || fail "serve exited $? after SIGTERM (second start)"
cmp -s "$cache/$tile.png" "$tmp/thumb.png" || fail "a second start with the same key lost the cache"
trap - EXIT
echo "query_ingest: ok ($n tiles ingested and searched)"
rm -rf "$tmp"
