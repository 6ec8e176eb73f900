#!/usr/bin/python3
"""The peer of bench_query: the same index files searched by Debian's python3-faiss (1.7.3), one
query at a time and one thread as a server would, with the settings geoscribe uses (nprobe 16,
refine k_factor 16; k = 10000 at the nprobe geoscribe widens to). Wall and process CPU time per
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


def pct(v, p):
    v = sorted(v)
    i = max(0, int(np.ceil(p / 100.0 * len(v))) - 1)
    return v[i]


def ivf_of(index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_nprobe(index, nprobe):
    ivf = ivf_of(index)
    if ivf is not None:
        ivf.nprobe = nprobe


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
    inner = faiss.downcast_index(faiss.downcast_index(index).index)
    if isinstance(inner, faiss.IndexRefine):
        inner.k_factor = 16
    set_nprobe(index, 16)
    wall, cpu, found = [], [], 0
    for i in range(nq):
        (_, ids), w, c = timed(lambda: index.search(q[i:i + 1], 10))
        wall.append(w)
        cpu.append(c)
        found += len(set(ids[0].tolist()) & set(gt[i].tolist()))
    res = {"peer": "python3-faiss " + faiss.__version__, "output": name,
           "index": type(inner).__name__, "open_s": round(open_s, 2),
           "recall_at_10": round(found / (nq * 10), 4), "nq": nq}
    stats(res, "k10", wall, cpu)
    # k = 10,000: geoscribe widens nprobe (16 -> 64 at 1M) until the lists hold 10,000 vectors.
    set_nprobe(index, 64)
    wall, cpu = [], []
    for i in range(nq_big):
        (_, ids), w, c = timed(lambda: index.search(q[i:i + 1], 10000))
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
