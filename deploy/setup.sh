#!/usr/bin/env bash
# geoscribe set-up: installs every Debian 12 package the project needs and builds the FAISS C API
# library that Debian's libfaiss-dev lacks. Idempotent: a second run only checks and exits.
# Run as root (or it re-runs itself through sudo). Prints what it does on stderr.
set -euo pipefail

PREFIX=${GS_DEPS_PREFIX:-/opt/geoscribe}
STAMP_PKGS="$PREFIX/.packages.stamp"
FAISS_VER=1.7.3-2

# Every Debian package the build, the tests, the benchmarks and the demo need. Keep it sorted;
# later issues append here.
PKGS=(
  build-essential clang cmake dpkg-dev gdal-bin git libclang-rt-14-dev libdnnl-dev libfaiss-dev
  libgdal-dev libjansson-dev libmicrohttpd-dev libopenblas-dev libopenmpi-dev
  libprotobuf-c-dev libpng-dev librocksdb-dev libsubunit-dev libyaml-dev libzmq3-dev
  openmpi-bin pkg-config check protobuf-c-compiler python3 rocksdb-tools zlib1g-dev
  unicode-data
  python3-faiss
  libomp-dev
  chromium
)

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi

# apt with retries: another apt (unattended-upgrades, a parallel set-up) may hold the lock.
apt_retry() {
  local i
  for i in $(seq 1 30); do
    if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 -y -q "$@"; then
      return 0
    fi
    log "apt-get $1 failed (try $i), retrying in 10 s"
    sleep 10
  done
  log "apt-get $* kept failing"; return 1
}

# --train: also the Python packages of tools/train (training the default models; the CI does not).
TRAIN_PKGS=(python3-numpy python3-pil python3-sentencepiece python3-torch)
# --bench: the PyTorch peer of bench/encoder and oneDNN for its bf16 measurement (run by hand;
# the CI does not).
BENCH_PKGS=(libdnnl-dev python3-numpy python3-torch)
for arg in "$@"; do
  case "$arg" in
    --train) PKGS+=("${TRAIN_PKGS[@]}") ;;
    --bench) PKGS+=("${BENCH_PKGS[@]}") ;;
    *) log "unknown option: $arg (known: --train, --bench)"; exit 2 ;;
  esac
done

pkgs_hash=$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-16)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${#missing[@]} packages: ${missing[*]}"
  apt_retry update
  apt_retry install --no-install-recommends "${missing[@]}"
else
  log "all ${#PKGS[@]} packages present"
fi
mkdir -p "$PREFIX"
echo "$pkgs_hash" > "$STAMP_PKGS"

# ---- FAISS C API ----------------------------------------------------------------------------
# Debian's libfaiss.a has no faiss_* C symbols (upstream 1.7.3 never installs the C API library).
# Compile the c_api sources of Debian's own source package against the installed libfaiss.
FAISS_C="$PREFIX/faiss-c"
if [ -f "$FAISS_C/lib/libfaiss_c.a" ] && [ "$(cat "$FAISS_C/.version" 2>/dev/null)" = "$FAISS_VER" ]; then
  log "faiss C API present in $FAISS_C"
else
  log "building the faiss C API from Debian's faiss $FAISS_VER source package"
  srcfile=/etc/apt/sources.list.d/geoscribe-src.sources
  if [ ! -f "$srcfile" ]; then
    # The Debian mirror this machine already uses (deb822 or one-line style), else the default.
    uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" > "$srcfile"
    apt_retry update
  fi
  work=$(mktemp -d)
  ( cd "$work" && apt-get source -q --download-only "faiss=$FAISS_VER" >/dev/null 2>&1 ||
      apt-get source -q --download-only "faiss=$FAISS_VER" )
  ( cd "$work" && dpkg-source -x --no-check ./*.dsc src >/dev/null )
  mkdir -p "$FAISS_C/lib" "$work/obj"
  find "$work/src/c_api" -name '*.cpp' -not -path '*/gpu/*' > "$work/list"
  # -fPIC so the library also links into shared objects (fuzzers, bench helpers).
  xargs -P "$(nproc)" -I{} sh -c 'o="$1/obj/$(echo "$2" | md5sum | cut -c1-12).o";
      g++ -std=c++17 -O2 -fPIC -fopenmp -I"$1/src" -c "$2" -o "$o"' _ "$work" {} < "$work/list"
  ar rcs "$FAISS_C/lib/libfaiss_c.a" "$work"/obj/*.o
  echo "$FAISS_VER" > "$FAISS_C/.version"
  rm -rf "$work"
  log "faiss C API built: $FAISS_C/lib/libfaiss_c.a"
fi
# ---- web packages (npm) ---------------------------------------------------------------------
# Leaflet for the web map (`geoscribe serve --http` serves it from $PREFIX/web: no CDN) and
# playwright-core for the headless Chromium test, pinned in web/package.json.
WEB="$PREFIX/web"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
web_hash=$(sha256sum "$ROOT/web/package.json" | cut -c1-16)
if [ -f "$WEB/node_modules/leaflet/dist/leaflet.js" ] && [ "$(cat "$WEB/.stamp" 2>/dev/null)" = "$web_hash" ]; then
  log "web packages present in $WEB"
else
  command -v npm >/dev/null || apt_retry install --no-install-recommends npm
  mkdir -p "$WEB"
  cp "$ROOT/web/package.json" "$WEB/package.json"
  for i in 1 2 3; do
    ( cd "$WEB" && npm install --no-audit --no-fund --loglevel=error ) && break
    [ "$i" = 3 ] && { log "npm install kept failing"; exit 1; }
    log "npm install failed (try $i), retrying in 10 s"; sleep 10
  done
  echo "$web_hash" > "$WEB/.stamp"
  log "web packages installed in $WEB"
fi
log "done"
