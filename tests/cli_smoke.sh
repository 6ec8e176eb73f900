#!/usr/bin/env bash
# geoscribe --help, <cmd> --help, version (real library versions), unknown commands.
set -u
gs=$1
fail() { echo "cli_smoke: $*" >&2; exit 1; }
"$gs" --help | grep -q '^commands:' || fail "--help has no command list"
"$gs" version --help | grep -q 'usage: geoscribe version' || fail "version --help"
out=$("$gs" version --format json) || fail "version failed"
for lib in mpi gdal rocksdb faiss zeromq protobuf-c openblas; do
  echo "$out" | grep -q "\"$lib\":\"[^\"]*[0-9]" || fail "version lacks $lib: $out"
done
# the versions are the real ones of the installed libraries
echo "$out" | grep -q "\"gdal\":\"$(gdal-config --version)\"" || fail "gdal version mismatch: $out"
echo "$out" | grep -q '"zeromq":"'"$(pkg-config --modversion libzmq)"'"' || fail "zeromq version: $out"
echo "$out" | grep -q '"protobuf-c":"'"$(pkg-config --modversion libprotobuf-c)"'"' || fail "protobuf-c: $out"
echo "$out" | grep -q '"mpi":"Open MPI v'"$(ompi_info --parsable 2>/dev/null | awk -F: "/^ompi:version:full/{print \$4}")" || fail "mpi version: $out"
"$gs" no-such-command 2>/dev/null; [ $? -eq 2 ] || fail "unknown command must exit 2"
"$gs" version --format yaml 2>/dev/null; [ $? -eq 2 ] || fail "bad --format must exit 2"
"$gs" --log-level shouty version 2>/dev/null; [ $? -eq 2 ] || fail "bad log level must exit 2"
echo "cli_smoke: ok"
