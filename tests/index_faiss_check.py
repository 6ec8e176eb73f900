"""Opens the index files test_index wrote with stock FAISS (faiss.read_index) and checks that
ntotal and the search results equal geoscribe's. Usage: index_faiss_check.py DIR"""
import json
import os
import sys

import faiss
import numpy as np


def main(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    dim, nq, k = meta["dim"], meta["nq"], meta["k"]
    q = np.fromfile(os.path.join(d, "queries.f32"), dtype=np.float32).reshape(nq, dim)
    bad = 0
    for name in ("flat", "ivfpq_rflat"):
        index = faiss.read_index(os.path.join(d, name + ".faiss"))
        want_ids = np.fromfile(os.path.join(d, name + ".ids.i64"), dtype=np.int64).reshape(nq, k)
        want_s = np.fromfile(os.path.join(d, name + ".scores.f32"), dtype=np.float32).reshape(nq, k)
        if index.ntotal != meta["ntotal"] or index.d != dim:
            print(f"{name}: ntotal {index.ntotal} d {index.d}, want {meta['ntotal']} {dim}")
            bad += 1
        if name != "flat":
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", meta["nprobe"])
        s, ids = index.search(q, k)
        same = (ids == want_ids)
        # neighbours with equal scores may swap places
        diff = np.abs(s - want_s).max()
        n_mismatch = int((~same).sum())
        ties = 0
        for i, j in zip(*np.nonzero(~same)):
            if set(ids[i]) == set(want_ids[i]) and diff < 1e-5:
                ties += 1
        print(f"{name}: {type(index).__name__} ntotal={index.ntotal} "
              f"ids differing {n_mismatch} (ties {ties}) max score diff {diff:.3g}")
        if n_mismatch != ties or diff > 1e-4:
            print(f"{name}: first ids  {ids[0][:5]} want {want_ids[0][:5]}")
            bad += 1
    print("ok" if bad == 0 else f"{bad} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
