#!/usr/bin/env bash
# The README demo (`make demo` runs it after set-up and build):
#   1. obtains a small real archive: four Landsat 5/7/8 scenes (two places, two dates each) from
#      Debian's r-cran-satellite package (apt-get download + dpkg -x, no R), cached in
#      DEMO_DIR/data; or the scenes you give with DEMO_DATA=DIR;
#   2. ingests it with the default models (models/default: CLIP embeddings + captions of every
#      tile) under `mpirun -n 2` (rank 0 coordinates, rank 1 works);
#   3. pairs the two dates of each place and captions what changed (`geoscribe changes`);
#   4. prints `geoscribe status`, runs example searches (tiles and changes) into JSON lines and
#      GeoJSON files in DEMO_DIR/results, checks the web server, and says how to open the map.
# A rerun reuses the data and the output (every step resumes; finished work is not redone).
#
# usage: deploy/demo.sh [BUILD_DIR] [--clean]      (BUILD_DIR: build, holding bin/geoscribe)
# environment:
#   DEMO_DIR=DIR     data, output, results and logs (default: demo/ in the repository, ignored by git)
#   DEMO_DATA=DIR    where the sample comes from instead of the download: an r-cran-satellite .deb
#                    (or a folder holding one), its extracted tree, or a prepared demo archive;
#                    any other folder is ingested as your own archive (one GeoTIFF/COG per scene)
#   DEMO_CLEAN=1     same as --clean: start the output over (the downloaded data is kept)
#   DEMO_MODELS=DIR  the models (clip/ and captioner/; default: models/default)
#   DEMO_NP=N        MPI ranks (2; 1 = one process without mpirun)
#   DEMO_SET="key=value ..."  extra job overrides (--set), e.g. inputs=DIR to ingest less
# Exit status: 0 done, 1 a step failed (its log is named), 2 usage, 4 models missing,
# 69 the sample data could not be obtained (no network to Debian's archive: use DEMO_DATA).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

build=build
clean=${DEMO_CLEAN:-0}
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "demo: unknown option $arg (deploy/demo.sh --help)" >&2; exit 2 ;;
    *) build=$arg ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$root" "$1" ;; esac; }
# A path as the user would type it from the repository root.
rel() { case "$1" in "$root"/*) printf '%s' "${1#"$root"/}" ;; *) printf '%s' "$1" ;; esac; }

gs=$(abs "$build")/bin/geoscribe
demo_dir=$(abs "${DEMO_DIR:-demo}")
models=$(abs "${DEMO_MODELS:-models/default}")
np=${DEMO_NP:-2}
read -r -a extra_set <<<"${DEMO_SET:-}"
data_dir=$demo_dir/data
results=$demo_dir/results
logs=$demo_dir/logs
t_start=$(date +%s)

say() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
die() {
  local code=$1; shift
  printf 'demo: %s\n' "$*" >&2
  exit "$code"
}

# run_step NAME CMD...: runs CMD with its stdout shown and its stderr (logs, progress) in
# logs/NAME.log; on failure shows the end of the log and stops the demo.
run_step() {
  local name=$1; shift
  local log=$logs/$name.log t0 rc=0
  t0=$(date +%s)
  "$@" 2>"$log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\ndemo: step "%s" failed (exit %d). Last lines of %s:\n' "$name" "$rc" "$(rel "$log")" >&2
    tail -n 15 "$log" | sed 's/^/  | /' >&2
    printf 'demo: the command was: %s\n' "$*" >&2
    printf 'demo: fix the cause and rerun (finished work is kept), or start over with DEMO_CLEAN=1\n' >&2
    exit 1
  fi
  info "($name: $(($(date +%s) - t0)) s; log $(rel "$log"))"
}

# ---- checks ------------------------------------------------------------------------------------
[ -x "$gs" ] || die 1 "no geoscribe at $gs: build first (make build, or make demo)"
for m in clip captioner; do
  if [ ! -f "$models/$m/config.json" ] || ! ls "$models/$m"/*.safetensors >/dev/null 2>&1; then
    die 4 "model $(rel "$models/$m") is missing (a config.json and *.safetensors): the default models
come with the repository (models/default, see its model cards); DEMO_MODELS=DIR names a folder
with clip/ and captioner/"
  fi
done
mkdir -p "$demo_dir" "$data_dir" "$logs"
exec 9>"$demo_dir/.lock"
flock -n 9 || die 1 "another demo run is using $(rel "$demo_dir") (DEMO_DIR=... runs one elsewhere)"

# The encoder must open.
clip=$models/clip
if ! "$gs" inspect-model "$clip" >"$logs/models.log" 2>&1; then
  tail -n 3 "$logs/models.log" | sed 's/^/  | /' >&2
  die 4 "the encoder $(rel "$clip") does not open (log $(rel "$logs/models.log"))"
fi

export OMP_WAIT_POLICY=PASSIVE
# Open MPI refuses to run as root and to place more ranks than cores unless told (README).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$np" = 1 ]; then
  launch=() # one process: geoscribe runs rank 0's and a worker's parts in one loop
elif command -v mpirun >/dev/null; then
  launch=(mpirun -n "$np")
else
  echo "demo: mpirun not found (package openmpi-bin): running each step in one process" >&2
  launch=()
fi

say "geoscribe $("$gs" version --format json | sed -n 's/.*"geoscribe":"\([^"]*\)".*/\1/p') ($(rel "$gs")), models $(rel "$models"), $np MPI ranks, $(nproc) cores"

# ---- 1. the sample archive -----------------------------------------------------------------------
# The r-cran-satellite files used, as <place> <date> <product> <folder> <ext> <red> <green> <blue> <nir>
# (band numbers; Landsat 5 and 7: 3 2 1 4, Landsat 8: 4 3 2 5).
SAMPLE=(
  "p195r025 2001-07-30 LE07_L1TP_195025_20010730_20170204_01_T1 extdata TIF 3 2 1 4"
  "p195r025 2013-07-07 LC08_L1TP_195025_20130707_20170503_01_T1 extdata TIF 4 3 2 5"
  "p167r055 2000-03-09 LT05_L1TP_167055_20000309_20161214_01_T1 testdata/LT05 TIF 3 2 1 4"
  "p167r055 2010-12-18 LT51670552010352MLK00 testdata/LT5 tif 3 2 1 4"
)
PKG="r-cran-satellite"

# prepare_archive PKG_TREE DEST: lays out the sample as DEST/<place>/<date>/<product>_<colour>.tif
# (copies: the band files are renamed so that one composite serves Landsat 5, 7 and 8).
prepare_archive() {
  local lib=$1 dest=$2 tmp=$2.tmp line place date product dir ext r g b n c f
  rm -rf "$tmp"
  for line in "${SAMPLE[@]}"; do
    read -r place date product dir ext r g b n <<<"$line"
    mkdir -p "$tmp/$place/$date"
    for c in red:$r green:$g blue:$b nir:$n; do
      f=$lib/$dir/${product}_B${c#*:}.$ext
      [ -f "$f" ] || { echo "demo: $f is missing from the $PKG data" >&2; return 1; }
      cp "$f" "$tmp/$place/$date/${product}_${c%%:*}.tif"
    done
  done
  {
    echo "Real Landsat imagery from Debian's $PKG package ($3): band subsets of"
    echo "p195r025 (Germany, near Marburg) and p167r055 (Ethiopia), laid out by deploy/demo.sh."
    echo "Upstream: https://cran.r-project.org/package=satellite (GPL-3+); Landsat data: USGS."
    for line in "${SAMPLE[@]}"; do echo "  $line"; done
  } >"$tmp/SOURCE.txt"
  rm -rf "$dest" && mv "$tmp" "$dest"
}

# The package tree (the folder holding extdata/ and testdata/) under a folder, if any.
find_pkg_tree() {
  local hit
  hit=$(find "$1" -name 'LC08_L1TP_195025_20130707_20170503_01_T1_B4.TIF' -path '*extdata*' 2>/dev/null | head -n 1)
  [ -n "$hit" ] && dirname "$(dirname "$hit")"
}

extract_deb() { # extract_deb DEB -> the package tree
  rm -rf "$data_dir/pkg"
  dpkg-deb -x "$1" "$data_dir/pkg" || return 1
  find_pkg_tree "$data_dir/pkg"
}

job=jobs/examples/demo-landsat-changes.yaml
out=$demo_dir/out/landsat
archive=$data_dir/archive
say "1. sample archive"
if [ -n "${DEMO_DATA:-}" ]; then
  src=$(abs "$DEMO_DATA")
  [ -e "$src" ] || die 69 "DEMO_DATA=$DEMO_DATA: no such file or folder"
  deb=$(find "$src" -maxdepth 1 -name "${PKG}_*.deb" 2>/dev/null | sort | tail -n 1)
  if [ -f "$src/SOURCE.txt" ] && [ -d "$src/p195r025" ]; then
    archive=$src
    info "the prepared sample in $(rel "$src")"
  elif [ -n "$deb" ]; then
    tree=$(extract_deb "$deb") || die 69 "could not extract $deb (dpkg-deb -x)"
    prepare_archive "$tree" "$archive" "$(basename "$deb")" || die 69 "$deb is not the expected $PKG package"
    rm -rf "$data_dir/pkg"
    info "extracted from $(rel "$deb")"
  elif tree=$(find_pkg_tree "$src") && [ -n "$tree" ]; then
    prepare_archive "$tree" "$archive" "$(rel "$tree")" || die 69 "$tree lacks files of the sample"
    info "copied from $(rel "$tree")"
  else
    # Your own scenes: one GeoTIFF/COG per scene, true colour chosen automatically.
    job=jobs/examples/demo-archive-changes.yaml
    archive=$src
    out=$demo_dir/out/archive
    info "your archive $(rel "$src") (job $job)"
  fi
elif [ -f "$archive/SOURCE.txt" ]; then
  info "cached in $(rel "$archive")"
elif tree=$(find_pkg_tree /usr/lib/R/site-library/satellite) && [ -n "$tree" ]; then
  prepare_archive "$tree" "$archive" "installed $(dpkg-query -W -f='${Version}' $PKG 2>/dev/null)" ||
    die 69 "the installed $PKG lacks files of the sample"
  info "copied from the installed $PKG"
else
  mkdir -p "$data_dir/download"
  info "apt-get download $PKG (2.8 MB from Debian's archive)"
  if ! (cd "$data_dir/download" && rm -f ./*.deb && apt-get download -q "$PKG") >"$logs/download.log" 2>&1; then
    tail -n 5 "$logs/download.log" | sed 's/^/  | /' >&2
    die 69 "could not download $PKG with apt-get download (log $(rel "$logs/download.log")).
It needs Debian 12's package lists (apt-get update) and the network to its archive. Without
them, give the data: DEMO_DATA=DIR with an $PKG .deb or its extracted tree, or your own scenes."
  fi
  deb=$(find "$data_dir/download" -maxdepth 1 -name "${PKG}_*.deb" | sort | tail -n 1)
  tree=$(extract_deb "$deb") || die 69 "could not extract $deb"
  prepare_archive "$tree" "$archive" "$(basename "$deb")" || die 69 "$deb is not the expected $PKG package"
  rm -rf "$data_dir/pkg"
  info "downloaded $(basename "$deb") and laid out in $(rel "$archive")"
fi
if [ -f "$archive/SOURCE.txt" ]; then
  for line in "${SAMPLE[@]}"; do
    read -r place date product _ <<<"$line"
    info "$place $date $product"
  done
fi

sets=(--set "inputs=$archive" --set "output=$out" --set "encoder.model=$clip"
  --set "captioner.model=$models/captioner")
for kv in "${extra_set[@]}"; do sets+=(--set "$kv"); done

# An output made with other models or settings is refused by ingest; the demo starts it over.
stamp=$( (cat "$job"; printf '%s\n' "${sets[@]}"; cat "$clip"/*.safetensors \
  "$models"/captioner/*.safetensors) | sha256sum | cut -c1-16)
if [ "$clean" = 1 ]; then
  info "DEMO_CLEAN: starting the output over"
  rm -rf "$out" "$results"
elif [ -d "$out" ] && [ "$(cat "$out/.demo-stamp" 2>/dev/null)" != "$stamp" ]; then
  info "the models, the job or DEMO_SET changed since the last run: starting the output over"
  rm -rf "$out" "$results"
fi
mkdir -p "$out" "$results"
echo "$stamp" >"$out/.demo-stamp"

# ---- 2. ingest ----------------------------------------------------------------------------------
say "2. ingest: ${launch[*]}${launch[*]:+ }geoscribe ingest $job (tiles embedded and captioned)"
run_step ingest "${launch[@]}" "$gs" ingest "$job" "${sets[@]}"

# ---- 3. changes ---------------------------------------------------------------------------------
say "3. changes: ${launch[*]}${launch[*]:+ }geoscribe changes $job (each place, earlier date -> later date)"
run_step changes "${launch[@]}" "$gs" changes "$job" "${sets[@]}"

# ---- 4. status ----------------------------------------------------------------------------------
say "4. geoscribe status --db $(rel "$out")"
run_step status "$gs" status --db "$out"

# ---- 5. searches --------------------------------------------------------------------------------
slug() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | tr -cs '[:lower:][:digit:]' '-' | sed 's/^-//; s/-$//'; }
# search KIND TEXT [query options]: writes KIND-<text>.jsonl and .geojson, prints the best 3.
search() {
  local kind=$1 text=$2 name; shift 2
  name=$kind-$(slug "${text:-by-score}")
  say "5. geoscribe query --db $(rel "$out")${*:+ $*}${text:+ \"$text\"}"
  run_step "query-$name" "$gs" query --db "$out" "$@" ${text:+"$text"} -k 3 --format text
  if ! "$gs" query --db "$out" "$@" ${text:+"$text"} -k 10 --format json \
    >"$results/$name.jsonl" 2>>"$logs/query-$name.log" ||
    ! "$gs" query --db "$out" "$@" ${text:+"$text"} -k 10 --format geojson \
      >"$results/$name.geojson" 2>>"$logs/query-$name.log"; then
    die 1 "query \"$text\" could not write its results (log $(rel "$logs/query-$name.log"))"
  fi
}
for q in "a river" "farmland" "buildings" "a forest"; do search tiles "$q"; done
for q in "new buildings" "the forest has been replaced by farmland"; do search changes "$q" --changes; done
search changes "" --changes

# ---- 6. the web server --------------------------------------------------------------------------
say "6. the web map"
port=$((18000 + $$ % 2000))
"$gs" serve --db "$out" --bind 'tcp://127.0.0.1:*' --http "127.0.0.1:$port" </dev/null \
  >"$logs/serve-check.out" 2>"$logs/serve-check.log" &
serve_pid=$!
web_ok=0
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request,sys; sys.exit(0 if b'\"status\":\"ok\"' in urllib.request.urlopen('http://127.0.0.1:$port/api/health', timeout=2).read() else 1)" 2>/dev/null; then
    web_ok=1
    break
  fi
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.2
done
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
if [ "$web_ok" = 1 ]; then
  info "checked: geoscribe serve answered /api/health on a spare port"
else
  info "warning: a test start of geoscribe serve did not answer (log $(rel "$logs/serve-check.log"))"
fi

# ---- summary ------------------------------------------------------------------------------------
say "done in $(($(date +%s) - t_start)) s"
echo "Results (GeoJSON: open in QGIS, or drop on geojson.io; JSON lines: one hit per line):"
for f in "$results"/*.geojson; do
  printf '   %-60s %s\n' "$(rel "$f")" "$(grep -o '"type":"Feature"' "$f" | wc -l) features"
done
echo "   $(rel "$results")/*.jsonl (the same hits as JSON lines)"
echo "Search it yourself:"
echo "   $(rel "$gs") query --db $(rel "$out") \"a river\""
echo "   $(rel "$gs") query --db $(rel "$out") --changes \"new buildings\""
echo "The web map (search box, tiles on a map, captions):"
echo "   $(rel "$gs") serve --db $(rel "$out") --http 127.0.0.1:8080"
echo "   then open http://127.0.0.1:8080/ (on a remote machine: ssh -L 8080:127.0.0.1:8080 HOST)"
echo "Rerun: make demo (reuses the data and the output); start over: make demo DEMO_CLEAN=1"
