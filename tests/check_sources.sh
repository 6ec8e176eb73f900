#!/usr/bin/env bash
# Source checks run by CTest (curl checksrc style): module-private headers (*_int.h) are not
# included from another module; banned functions are not used; libraries do not write stdout;
# raw malloc/free only in common/alloc.c.
set -u
root=${1:-.}
cd "$root" || exit 2
modules="common proto model jobs index query coordinator worker eval"
fail=0
report() { echo "check_sources: $*" >&2; fail=1; }

for m in $modules cli; do
  [ -d "$m" ] || continue
  while IFS= read -r hit; do
    report "private header of another module: $hit"
  done < <(grep -rnE '#include "[a-z_]+/[a-z0-9_]+_int\.h"' "$m" --include='*.c' --include='*.h' \
             | grep -vE "#include \"$m/")
done

banned='\b(atoi|atof|atol|sprintf|strcpy|strcat|strtok|gets|vsprintf)\s*\('
while IFS= read -r hit; do report "banned function: $hit"; done < <(
  grep -rnE "$banned" $modules cli tests --include='*.c' --include='*.h' 2>/dev/null |
  grep -vE '(snprintf|vsnprintf|strtok_r)\s*\(' )

while IFS= read -r hit; do report "raw allocation outside common/alloc.c: $hit"; done < <(
  grep -rnE '\b(malloc|calloc|realloc|free)\s*\(' $modules cli --include='*.c' 2>/dev/null |
  grep -v '^common/alloc.c:' | grep -vE '(gs_|rocksdb_|CPL|zmq_|MHD_|_)(malloc|calloc|realloc|free)\s*\(' )

while IFS= read -r hit; do report "library writes to stdout: $hit"; done < <(
  grep -rnE '\b(printf|puts|putchar)\s*\(|\bstdout\b' $modules --include='*.c' 2>/dev/null |
  grep -vE '(snprintf|vsnprintf|fprintf\s*\(\s*stderr)' )

if [ $fail -eq 0 ]; then echo "check_sources: ok"; fi
exit $fail
