#!/usr/bin/env bash
# `geoscribe query` and `geoscribe serve` end to end on a small real output (tests/query_mkdb):
# the command line (--db), the ZeroMQ service (--server) and the HTTP API print the same bytes
# (JSON lines and GeoJSON, with filters and query by example); the GeoJSON opens in ogrinfo with
# one polygon per hit; a different encoder model is refused naming both ids; usage errors.
# usage: query_cli.sh GEOSCRIBE QUERY_MKDB TMPDIR SHARED
set -u
gs=$1 mkdb=$2 tmp=$3/query_cli.$$ shared=$4
[ -d "$shared/fixtures/openclip_tiny" ] || { echo "SKIP: ../shared is absent"; exit 77; }
export OMP_WAIT_POLICY=PASSIVE
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
fail() { echo "query_cli: FAIL: $*" >&2; exit 1; }
out=$tmp/out
"$mkdb" "$out" 1500 Flat 2>"$tmp/mkdb.log" || fail "query_mkdb: $(cat "$tmp/mkdb.log")"

"$gs" serve --db "$out" --bind 'tcp://127.0.0.1:*' --http 127.0.0.1:0 --format json \
  >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q '"zmq"' "$tmp/serve.out" 2>/dev/null && break; sleep 0.2; done
ep=$(sed -n 's/.*"zmq":"\([^"]*\)".*/\1/p' "$tmp/serve.out")
url=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/serve.out")
[ -n "$ep" ] && [ -n "$url" ] || fail "serve did not start: $(cat "$tmp/serve.log")"

py=/usr/bin/python3
urlenc() { $py -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
http_get() { $py -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' "$1"; }

# The same searches three ways.
tile=$("$gs" query --db "$out" "a river" -k 1 2>/dev/null | sed -n 's/.*"tile_id":"\([0-9]*\)".*/\1/p')
[ -n "$tile" ] || fail "no tile id from a local query"
n=0
while IFS='|' read -r text args; do
  n=$((n + 1))
  for fmt in json geojson text; do
    # shellcheck disable=SC2086
    "$gs" query --db "$out" $args --format $fmt ${text:+"$text"} >"$tmp/local.$n.$fmt" 2>"$tmp/local.err" ||
      fail "local query $n ($text $args): $(cat "$tmp/local.err")"
    # shellcheck disable=SC2086
    "$gs" query --server "$ep" $args --format $fmt ${text:+"$text"} >"$tmp/remote.$n.$fmt" 2>"$tmp/remote.err" ||
      fail "remote query $n ($text $args): $(cat "$tmp/remote.err")"
    cmp -s "$tmp/local.$n.$fmt" "$tmp/remote.$n.$fmt" ||
      fail "query $n ($text $args --format $fmt): --db and --server differ"
  done
  [ -s "$tmp/local.$n.json" ] || fail "query $n ($text $args) found nothing"
done <<EOF
a river near the hills|-k 25
airport|-k 10000
forest|-k 40 --bbox 10.2,45.1,10.9,45.6 --from 2020-02 --to 2020-05-15
harbor|-k 15 --scene RGB.byte.tif --caption-contains near
|--like-tile $tile -k 7
|--like-image $shared/fixtures/openclip_tiny/image_3.png -k 5
EOF
[ "$(wc -l <"$tmp/local.2.json")" -eq 1500 ] || fail "k=10000 over 1500 tiles gave $(wc -l <"$tmp/local.2.json") lines"
grep -q '"rank":1,"tile_id":"'"$tile"'","score":1.000000' "$tmp/local.5.json" || fail "--like-tile: the tile is not first"

# HTTP: the same bytes.
http_get "${url}api/search?q=$(urlenc 'a river near the hills')&k=25&format=json" >"$tmp/http.1.json" ||
  fail "HTTP search failed"
cmp -s "$tmp/local.1.json" "$tmp/http.1.json" || fail "HTTP json differs from the CLI"
http_get "${url}api/search?q=forest&k=40&bbox=10.2,45.1,10.9,45.6&from=2020-02&to=2020-05-15&format=geojson" \
  >"$tmp/http.3.geojson" || fail "HTTP geojson search failed"
cmp -s "$tmp/local.3.geojson" "$tmp/http.3.geojson" || fail "HTTP geojson differs from the CLI"
code=$($py -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1]); print(200)
except urllib.error.HTTPError as e: print(e.code)' "${url}api/search?q=x&k=100001")
[ "$code" = 413 ] || fail "k over the HTTP limit: status $code, want 413"
# HTTP errors: status and a JSON error body; the server goes on.
while read -r want method path; do
  got=$($py -c 'import json, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[2])
try: urllib.request.urlopen(req); print(200)
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    assert body["error"]["message"] and body["error"]["name"].startswith("GS_E"), body
    print(e.code)' "${url}$path" "$method") || fail "HTTP $method $path: no JSON error"
  [ "$got" = "$want" ] || fail "HTTP $method $path: status $got, want $want"
done <<EOF
400 GET api/search?q=x&bbox=1,2,3
400 GET api/search?q=x&from=yesterday
400 GET api/search?k=5
400 GET api/search?q=x&format=xml
404 GET api/tile/12345.png
400 GET api/tile/x.png
404 GET nothing/here
404 GET ../etc/passwd
400 POST api/search?q=x
EOF
http_get "${url}api/health" | grep -q '"status":"ok"' || fail "HTTP health after errors"

# GeoJSON opens in ogrinfo: one polygon feature per hit, the properties as fields.
ogrinfo -ro -al -so "$tmp/local.3.geojson" >"$tmp/ogr.txt" 2>&1 || fail "ogrinfo: $(cat "$tmp/ogr.txt")"
hits=$(grep -c '"rank"' <(tr '{' '\n' <"$tmp/local.3.geojson"))
grep -q "Feature Count: $hits" "$tmp/ogr.txt" || fail "ogrinfo feature count, want $hits: $(cat "$tmp/ogr.txt")"
grep -q 'Geometry: Polygon' "$tmp/ogr.txt" || fail "ogrinfo geometry: $(cat "$tmp/ogr.txt")"
for f in rank tile_id score scene time caption; do
  grep -q "^$f:" "$tmp/ogr.txt" || fail "ogrinfo has no field $f"
done
grep -q 'WGS 84\|4326' "$tmp/ogr.txt" || fail "ogrinfo: not EPSG:4326"

# Another encoder is refused, naming both model ids.
"$gs" query --db "$out" --model "$shared/fixtures/hfclip_tiny" river >"$tmp/mm.out" 2>"$tmp/mm.err" &&
  fail "a query with another model was accepted"
want_id=$(grep -o 'model id [0-9a-f]\{16\}' "$tmp/mm.err" | head -1)
grep -q 'has id [0-9a-f]\{16\}' "$tmp/mm.err" && [ -n "$want_id" ] ||
  fail "mismatch message lacks the ids: $(cat "$tmp/mm.err")"

# Usage errors exit 2.
for bad in "--db $out" "--db $out --bbox 1,2,3 river" "--db $out --from yesterday river" \
           "--db $out -k 0 river" "--server $ep --db $out river" "--db $out --like-tile x"; do
  # shellcheck disable=SC2086
  "$gs" query $bad >/dev/null 2>&1
  [ $? -eq 2 ] || fail "\"geoscribe query $bad\" did not exit 2"
done

# Clean shutdown on SIGTERM.
kill -TERM $pid
wait $pid
st=$?
trap - EXIT
[ $st -eq 0 ] || fail "serve exited $st after SIGTERM"
echo "query_cli: ok ($n searches identical through --db, --server and HTTP; GeoJSON opens in ogrinfo)"
rm -rf "$tmp"
