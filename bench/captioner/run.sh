#!/usr/bin/env bash
# bench/captioner: geoscribe's LLaMA decoder next to PyTorch on the same random LLaMA-7B-shaped
# weights (hidden 4096, intermediate 11008, 32 heads, vocab 32000; LAYERS layers, default 4),
# same cores, same run. Run by hand (never in the test suite):
#
#   deploy/setup.sh --bench            # once: Debian's python3-torch
#   make build                         # or any build folder with -DGS_WERROR=ON
#   bench/captioner/run.sh [BUILD_DIR] [WORK_DIR]
#
# Writes the weights once into WORK_DIR (default /tmp/geoscribe-bench-captioner; about 0.4 GB
# per layer + 0.5 GB in DTYPE, bf16 by default), builds bench_captioner.c against BUILD_DIR's
# libraries, then runs ROUNDS (default 2) rounds of geoscribe {1, 2 threads} and PyTorch
# {bf16 compute, f32 compute} at 2 threads, and prints the best of each. PROMPT (128) and DECODE
# (16) set the prefill length and the decoded tokens.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=${2:-/tmp/geoscribe-bench-captioner}
rounds=${ROUNDS:-2}
layers=${LAYERS:-4}
dtype=${DTYPE:-bf16}
prompt=${PROMPT:-128}
decode=${DECODE:-16}
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "run.sh: needs python3-torch: deploy/setup.sh --bench" >&2; exit 2; }
[ -f "$build/model/libgs_model.a" ] || { echo "run.sh: no $build/model/libgs_model.a: build first" >&2; exit 2; }

mkdir -p "$work"
if [ ! -f "$work/model.safetensors" ] || ! grep -q "\"num_hidden_layers\": $layers," "$work/config.json"; then
  echo "run.sh: writing random weights ($layers layers, $dtype) into $work" >&2
  "$py" "$here/torch_llama.py" write "$work" --layers "$layers" --dtype "$dtype"
fi
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -I "$build/inc/model" -I "$build/inc/common" \
  "$here/bench_captioner.c" "$build/model/libgs_model.a" "$build/common/libgs_common.a" \
  $(pkg-config --libs openblas jansson zlib libprotobuf-c) -lm -lpthread -o "$work/bench_captioner"

out="$work/results.jsonl"
: > "$out"
for r in $(seq 1 "$rounds"); do
  echo "run.sh: round $r of $rounds" >&2
  # PyTorch first: it writes the logits the C side compares with
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_llama.py" time "$work" --compute bf16 \
    --threads 2 --prompt "$prompt" --decode "$decode" | tee -a "$out" >&2
  # float32 compute as STACK.md runs PyTorch's OpenBLAS matmuls: torch threads 1, OpenBLAS 2
  OPENBLAS_NUM_THREADS=2 "$py" "$here/torch_llama.py" time "$work" --compute f32 \
    --threads 1 --prompt "$prompt" --decode "$decode" | sed 's/"threads": 1,/"threads": 2,/' |
    tee -a "$out" >&2
  "$work/bench_captioner" "$work" --threads 1,2 --prompt "$prompt" --decode "$decode" --reps 2 \
    2>/dev/null | tee -a "$out" >&2
done

"$py" - "$out" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    if "decode_tok_s" in r:
        k = (r["impl"], r["threads"])
        b = best.setdefault(k, dict(r))
        b["prefill_tok_s"] = max(b["prefill_tok_s"], r["prefill_tok_s"])
        b["decode_tok_s"] = max(b["decode_tok_s"], r["decode_tok_s"])
        for key in ("copy_gb_s", "read_gb_s"):
            if key in r:
                b[key] = max(b[key], r[key])
g = [v for k, v in best.items() if k[0] == "geoscribe"]
if not g:
    sys.exit("run.sh: no geoscribe results")
g0 = g[0]
print("LLaMA-7B-shaped decoder, %d layers, %s weights, prompt %d, %d decoded tokens (best of the rounds)"
      % (g0["layers"], g0["dtype"], g0["prompt"], g0["decode"]))
print("| impl | threads | prefill tok/s | decode tok/s | decode vs copy-bandwidth bound | vs read-bandwidth bound |")
print("|---|---|---|---|---|---|")
for (impl, t), v in sorted(best.items()):
    if impl == "geoscribe":
        gb = v["weight_gb_per_token"]
        print("| geoscribe | %d | %.2f | %.3f | %.0f%% (copy %.1f GB/s, bound %.3f tok/s) | %.0f%% (read %.1f GB/s) |" % (
            t, v["prefill_tok_s"], v["decode_tok_s"], 100 * v["decode_tok_s"] * gb / v["copy_gb_s"],
            v["copy_gb_s"], v["copy_gb_s"] / gb, 100 * v["decode_tok_s"] * gb / v["read_gb_s"], v["read_gb_s"]))
    else:
        print("| %s | %d | %.2f | %.3f | | |" % (impl, t, v["prefill_tok_s"], v["decode_tok_s"]))
print("weights read per decoded token: %.3f GB" % g0["weight_gb_per_token"])
for r in rows:
    if "parity_vs_pytorch" in r:
        print("parity vs PyTorch %s (%s): max |diff| %.3g of max |logit| %.3g, same argmax: %s" % (
            r["parity_vs_pytorch"], r["step"], r["max_abs_diff"], r["max_abs_logit"], r["same_argmax"]))
PYEOF
