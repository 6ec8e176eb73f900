#!/usr/bin/python3
"""The peer of bench_query: the same index files searched by Debian's python3-faiss (1.7.3), one
query at a time and one thread as a server would, with the settings geoscribe uses (nprobe 16,
refine k_factor 32 or $K_FACTOR, nprobe widened as index/vindex.c does while short of k). Wall and process CPU time per
query. Prints one JSON object per index.

usage: faiss_peer.py WORK [NQ] [NQ_BIG]
"""
import json
import os
import sys
import time

import faiss
import numpy as np

DIM = 512
K_FACTOR = float(os.environ.get("K_FACTOR", "32"))  # as GS_SEARCH_K_FACTOR (query/search.h)


def pct(v, p):
    v = sorted(v)
    i = max(0, int(np.ceil(p / 100.0 * len(v))) - 1)
    return v[i]


def layers(index):
    """the refine stage and the IVF of an IDMap2 index (None where absent)"""
    sub = faiss.downcast_index(faiss.downcast_index(index).index)
    if isinstance(sub, faiss.IndexRefine):
        return sub, faiss.downcast_index(sub.base_index)
    return None, sub if isinstance(sub, faiss.IndexIVF) else None


def search_widening(index, ivf, q, k, nprobe):
    """geoscribe's search (index/vindex.c widen_search): an IVF search short of k hits is
    repeated with nprobe scaled by the shortfall (1.5 x nprobe x k / hits, at least 2x)"""
    want = min(k, index.ntotal)
    while True:
        if ivf is not None:
            ivf.nprobe = nprobe
        d, ids = index.search(q, k)
        hits = int((ids[0] >= 0).sum())
        if ivf is None or hits >= want or nprobe >= 65536:
            return d, ids
        nxt = 1.5 * nprobe * want / hits if hits else 4.0 * nprobe
        nprobe = min(65536, int(max(nxt, 2.0 * nprobe)))


def timed(fn):
    """wall and process CPU seconds of fn()"""
    t, c = time.perf_counter(), time.process_time()
    r = fn()
    return r, time.perf_counter() - t, time.process_time() - c


def stats(res, what, wall, cpu):
    res[what + "_p50_ms"] = round(pct(wall, 50) * 1e3, 3)
    res[what + "_p99_ms"] = round(pct(wall, 99) * 1e3, 3)
    res[what + "_cpu_p50_ms"] = round(pct(cpu, 50) * 1e3, 3)
    res[what + "_cpu_p99_ms"] = round(pct(cpu, 99) * 1e3, 3)


def measure(work, name, nq, nq_big):
    path = os.path.join(work, name, "index", "tiles.faiss")
    t0 = time.perf_counter()
    index = faiss.read_index(path)
    open_s = time.perf_counter() - t0
    q = np.fromfile(os.path.join(work, "queries.f32"), dtype=np.float32).reshape(-1, DIM)
    gt = np.fromfile(os.path.join(work, "gt.i64"), dtype=np.int64).reshape(-1, 10)
    nq = min(nq, len(q))
    refine, ivf = layers(index)
    if refine is not None:
        refine.k_factor = K_FACTOR
    inner = refine if refine is not None else faiss.downcast_index(faiss.downcast_index(index).index)
    wall, cpu, found = [], [], 0
    for i in range(nq):
        (_, ids), w, c = timed(lambda: search_widening(index, ivf, q[i:i + 1], 10, 16))
        wall.append(w)
        cpu.append(c)
        found += len(set(ids[0].tolist()) & set(gt[i].tolist()))
    res = {"peer": "python3-faiss " + faiss.__version__, "output": name,
           "index": type(inner).__name__, "open_s": round(open_s, 2),
           "recall_at_10": round(found / (nq * 10), 4), "nq": nq}
    stats(res, "k10", wall, cpu)
    # k = 10,000: both widen nprobe until the probed lists hold 10,000 hits.
    wall, cpu = [], []
    for i in range(nq_big):
        (_, ids), w, c = timed(lambda: search_widening(index, ivf, q[i:i + 1], 10000, 16))
        wall.append(w)
        cpu.append(c)
    stats(res, "k10000", wall, cpu)
    res.update({"k10000_hits": int((ids[0] >= 0).sum()), "nq_big": nq_big})
    print(json.dumps(res), flush=True)


def main():
    faiss.omp_set_num_threads(1)  # one thread per request, as `geoscribe serve` runs them
    work = sys.argv[1]
    nq = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    nq_big = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    measure(work, "out_ivf", nq, nq_big)
    measure(work, "out_flat", min(nq, 100), min(nq_big, 10))


if __name__ == "__main__":
    main()
