"""Opens an ingest output's index with stock FAISS (faiss.read_index) and checks it against
`geoscribe status --format json`: ntotal = vectors = records = planned - skipped, ids unique
and valid (0 < id < 2^63), vectors L2-normalised, and every vector finds itself first.
Usage: ingest_faiss_check.py INDEX.faiss STATUS.json"""
import json
import sys

import faiss
import numpy as np


def main(index_path, status_path):
    st = json.load(open(status_path))
    index = faiss.read_index(index_path)
    bad = []
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    n = index.ntotal
    if not (n == st["vectors"] == st["records"] == st["planned"] - st["skipped"] and n > 0):
        bad.append(f"ntotal {n}, status {st}")
    if len(set(ids.tolist())) != n or (ids <= 0).any():
        bad.append("ids repeated or out of range")
    inner = faiss.downcast_index(faiss.downcast_index(index).index)
    vecs = inner.reconstruct_n(0, n)
    norms = np.linalg.norm(vecs, axis=1)
    if np.abs(norms - 1).max() > 1e-4:
        bad.append(f"norms off by {np.abs(norms - 1).max():.3g}")
    if index.d != st["models"]["dim"]:
        bad.append(f"dim {index.d} vs {st['models']['dim']}")
    scores, found = index.search(vecs, 1)
    # ties (identical tiles) may return a twin with the same score
    self_hits = (found[:, 0] == ids) | (np.abs(scores[:, 0] - 1) < 1e-5)
    if not self_hits.all():
        bad.append(f"{int((~self_hits).sum())} vectors do not find themselves")
    print(f"{type(index).__name__} over {type(inner).__name__}: ntotal={n} d={index.d}; "
          + ("ok" if not bad else "; ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
