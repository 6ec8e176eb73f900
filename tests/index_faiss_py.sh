#!/usr/bin/env bash
# Stock FAISS reads geoscribe's index files: runs tests/index_faiss_check.py with Debian's
# python3 (which has python3-faiss) on the files test_index wrote. Exit 77 (CTest: skipped)
# with a message when python3-faiss is not installed.
set -u
dir=${1:?usage: index_faiss_py.sh DIR}
py=/usr/bin/python3
if ! "$py" -c 'import faiss, numpy' 2>/dev/null; then
  echo "SKIP: python3-faiss is not installed (apt-get install python3-faiss, or deploy/setup.sh)" >&2
  exit 77
fi
exec "$py" "$(dirname "$0")/index_faiss_check.py" "$dir"
