#!/usr/bin/python3
"""Summary of bench/encoder results (results.jsonl written by run.sh): best of the rounds per
(implementation, threads, batch), ratios to PyTorch, GEMM share of the SGEMM peak, parity.

  summarize.py WORK_DIR/results.jsonl
"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    if "images_per_s" in r:
        k = (r["impl"] + ("-bf16" if r.get("precision") == "bf16" else
                          "-onednn" if r.get("gemm") == "onednn" else ""), r["threads"], r["batch"])
        if k not in best or r["images_per_s"] > best[k]["images_per_s"]:
            cpu = max(r.get("images_per_cpu_s", 0), best.get(k, {}).get("images_per_cpu_s", 0))
            best[k] = dict(r, images_per_cpu_s=cpu)
        else:
            best[k]["images_per_cpu_s"] = max(best[k].get("images_per_cpu_s", 0),
                                              r.get("images_per_cpu_s", 0))
peak, peak_cpu = {}, 0
for r in rows:
    if r["impl"] == "openblas" and "sgemm_2048_gflops" in r:
        peak[r["threads"]] = max(peak.get(r["threads"], 0), r["sgemm_2048_gflops"])
    if r["impl"] == "openblas" and "sgemm_2048_gflops_per_cpu_s" in r:
        peak_cpu = max(peak_cpu, r["sgemm_2048_gflops_per_cpu_s"])
par = [r for r in rows if "parity_vs_pytorch" in r and r.get("precision", "f32") == "f32"
       and r.get("gemm", "openblas") == "openblas"]
par_dnnl = [r for r in rows if "parity_vs_pytorch" in r and r.get("precision", "f32") == "f32"
            and r.get("gemm") == "onednn"]
par16 = [r for r in rows if "parity_vs_pytorch" in r and r.get("precision") == "bf16"]
print("CLIP ViT-B/32 image encoder, float32, 224 px (img/s, best of the rounds; GEMM columns: the")
print("OpenBLAS run)")
print("| threads | batch | geoscribe oneDNN | geoscribe OpenBLAS | PyTorch | oneDNN ratio | OpenBLAS ratio "
      "| GEMM GFLOP/s | GEMM share of SGEMM peak | time in GEMM |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    for b in (1, 16):
        g, p = best.get(("geoscribe", t, b)), best.get(("pytorch", t, b))
        d = best.get(("geoscribe-onednn", t, b))
        if not g or not p:
            continue
        print("| %d | %d | %s | %.2f | %.2f | %s | %.2fx | %.1f | %.0f%% | %.0f%% |" % (
            t, b, "%.2f" % d["images_per_s"] if d else "-", g["images_per_s"], p["images_per_s"],
            "**%.2fx**" % (d["images_per_s"] / p["images_per_s"]) if d else "-",
            g["images_per_s"] / p["images_per_s"],
            g["gemm_gflops"], 100 * g["gemm_share_of_peak"], 100 * g["time_in_gemm"]))
# On a shared machine wall time is unreliable: images per CPU-second of the single-threaded
# runs estimate the idle-machine throughput of one core (both sides measured the same way).
print()
print("single thread, images per CPU-second (robust to other load on the machine)")
print("| batch | geoscribe f32 oneDNN | geoscribe f32 OpenBLAS | geoscribe bf16 | PyTorch f32 | f32 oneDNN ratio "
      "| f32 OpenBLAS ratio | bf16 ratio | f32 OpenBLAS GEMM share of peak (CPU time) |")
print("|---|---|---|---|---|---|---|---|---|")
for b in (1, 16):
    g, gd, g16, p = (best.get((k, 1, b)) for k in ("geoscribe", "geoscribe-onednn", "geoscribe-bf16",
                                                   "pytorch"))
    if g and p and g.get("images_per_cpu_s") and p.get("images_per_cpu_s"):
        pc = p["images_per_cpu_s"]
        cd = gd.get("images_per_cpu_s") if gd else None
        c16 = g16.get("images_per_cpu_s") if g16 else None
        share = max([r.get("gemm_share_of_peak_cpu", 0) for r in rows if r.get("impl") == "geoscribe"
                     and r.get("precision") == "f32" and r.get("gemm", "openblas") == "openblas"
                     and r.get("threads") == 1 and r.get("batch") == b] or [0])
        print("| %d | %s | %.2f | %s | %.2f | %s | %.2fx | %s | %.0f%% |" % (
            b, "%.2f" % cd if cd else "-", g["images_per_cpu_s"], "%.2f" % c16 if c16 else "-", pc,
            "%.2fx" % (cd / pc) if cd else "-", g["images_per_cpu_s"] / pc,
            "%.2fx" % (c16 / pc) if c16 else "-", 100 * share))
if peak_cpu:
    print("SGEMM peak per CPU-second, 1 thread (n=2048): %.1f GFLOP/s" % peak_cpu)
print("SGEMM peak (n=2048, wall clock): " + ", ".join("%d thread%s %.1f GFLOP/s" % (t, "s" if t > 1 else "", v)
                                          for t, v in sorted(peak.items())))
if any(k[0] == "geoscribe-bf16" for k in best):
    print()
    print("bf16 path (oneDNN, AVX-512 BF16) against PyTorch float32")
    print("| threads | batch | geoscribe bf16 | PyTorch f32 | ratio |")
    print("|---|---|---|---|---|")
    for t in (1, 2):
        for b in (1, 16):
            g, p = best.get(("geoscribe-bf16", t, b)), best.get(("pytorch", t, b))
            if g and p:
                print("| %d | %d | %.2f | %.2f | %.2fx |" % (t, b, g["images_per_s"], p["images_per_s"],
                                                        g["images_per_s"] / p["images_per_s"]))
    cos = [r["bf16_vs_f32_on_fixture_images"]["min_cosine"] for r in rows if "bf16_vs_f32_on_fixture_images" in r]
    if cos:
        print("bf16 vs f32 embeddings of the 4 fixture images (resized to 224): min cosine %.6f" % min(cos))
    if par16:
        print("bf16 vs PyTorch f32 on 16 random-pixel images: min cosine %.6f" % par16[-1]["parity_vs_pytorch"]["min_cosine"])
if par:
    p = par[-1]["parity_vs_pytorch"]
    print("parity with PyTorch on 16 images: min cosine %.9f, max |diff| %.3g" % (p["min_cosine"], p["max_abs_diff"]))
if par_dnnl:
    p = par_dnnl[-1]["parity_vs_pytorch"]
    print("parity with PyTorch on 16 images, float32 on oneDNN: min cosine %.9f, max |diff| %.3g"
          % (p["min_cosine"], p["max_abs_diff"]))
