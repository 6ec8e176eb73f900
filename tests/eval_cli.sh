#!/usr/bin/env bash
# `geoscribe eval classify|retrieve|caption` on a few real UCM images (../shared/data) with the
# tiny random fixture models: the numbers mean nothing, but the commands must run, print one
# valid JSON object with the right counts and ranges, agree with `geoscribe classify` on the
# ranking of an image, and refuse bad input with a message. Usage: eval_cli.sh GEOSCRIBE SHARED
set -u
gs=$1
shared=$2
ucm=$shared/data/ucm-captions
fix=$shared/fixtures
py=/usr/bin/python3
if [ ! -f "$ucm/dataset.json" ] || [ ! -d "$fix/hfclip_tiny" ]; then
  echo "SKIP eval_cli: $shared is absent"; exit 0
fi
fail() { echo "eval_cli: $*" >&2; exit 1; }
export GS_LOG_LEVEL=warn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hf=$fix/hfclip_tiny

# A small set: 2 val images of 4 classes (8 images, 40 captions), linked into one folder, with
# its labels CSV and its dataset.json cut from the real files.
mkdir "$tmp/imgs"
$py - "$ucm" "$tmp" <<'EOF' || fail "could not build the small set"
import csv, json, os, sys
ucm, tmp = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(os.path.join(ucm, "labels.csv"))) if r["split"] == "val"]
pick = []
for cls in ["agricultural", "beach", "harbor", "tenniscourt"]:
    pick += [r for r in rows if r["class"] == cls][:2]
names = {r["filename"] for r in pick}
for r in pick:
    os.symlink(os.path.join(ucm, "imgs", r["filename"]), os.path.join(tmp, "imgs", r["filename"]))
with open(os.path.join(tmp, "labels.csv"), "w") as f:
    f.write("filename,class\n" + "".join("%s,%s\n" % (r["filename"], r["class"]) for r in pick))
ds = json.load(open(os.path.join(ucm, "dataset.json")))
ds["images"] = [im for im in ds["images"] if im["filename"] in names]
json.dump(ds, open(os.path.join(tmp, "dataset.json"), "w"))
EOF

# check_json OUT KIND N: the line is one JSON object with the keys and ranges of KIND
check_json() {
  $py - "$1" "$2" "$3" <<'EOF'
import json, sys
line, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert line.count("\n") == 0, "more than one line"
d = json.loads(line)
def frac(v): return isinstance(v, (int, float)) and 0 <= v <= 1
if kind == "classify":
    assert set(d) == {"n", "top1", "top5", "per_class"}, d
    assert d["n"] == n and frac(d["top1"]) and frac(d["top5"]) and d["top1"] <= d["top5"], d
    assert all(frac(v) for v in d["per_class"].values()), d
elif kind == "retrieve":
    keys = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]
    assert set(d) == {"n_images", "n_texts", "mR", *keys}, d
    assert d["n_images"] == n and d["n_texts"] == 5 * n, d
    assert all(0 <= d[k] <= 100 for k in keys), d
    assert d["i2t_r1"] <= d["i2t_r5"] <= d["i2t_r10"] and d["t2i_r1"] <= d["t2i_r5"] <= d["t2i_r10"], d
    assert abs(d["mR"] - sum(d[k] for k in keys) / 6) < 1e-3, d
elif kind == "caption":
    assert set(d) == {"n", "bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider"}, d
    assert d["n"] == n, d
    assert all(frac(d[k]) for k in ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"]), d
    assert 0 <= d["cider"] <= 10, d
EOF
}

# ---- classify
out=$("$gs" eval classify --model "$hf" --images "$tmp/imgs" --labels "$tmp/labels.csv") \
  || fail "classify failed"
check_json "$out" classify 8 || fail "classify JSON: $out"
echo "$out" | grep -q '"per_class":{"agricultural":[0-9.e-]*,"beach":[0-9.e-]*,"harbor":[0-9.e-]*,"tenniscourt":[0-9.e-]*}}' \
  || fail "classify per_class keys: $out"
# the real labels.csv: its val split, first 6 rows, several templates, raw names
out=$("$gs" eval classify --model "$hf" --images "$ucm/imgs" --labels "$ucm/labels.csv" \
        --split val --limit 6 --classnames raw --template "{}" --template "an aerial photo of {}.") \
  || fail "classify --split val failed"
check_json "$out" classify 6 || fail "classify --split JSON: $out"

# Agreement with `geoscribe classify`: its best and worst label for one image, among the 21
# UCM classes (raw names). A CSV whose val row gives the image the best class scores top-1 = 1;
# with the worst class, top-5 = 0. The other classes come from train rows (not evaluated).
img=$(ls "$tmp/imgs" | head -1)
classes=$(cut -d, -f2 "$ucm/labels.csv" | tail -n +2 | sort -u | paste -sd, -)
ranked=$("$gs" classify --model "$hf" --labels "$classes" --image "$tmp/imgs/$img" --format json) \
  || fail "geoscribe classify failed"
best=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["labels"][0])' "$ranked")
worst=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["labels"][-1])' "$ranked")
for want in best worst; do
  cls=${!want}
  { echo "filename,class,split"; echo "$img,$cls,val"
    for c in ${classes//,/ }; do echo "other_$c.jpg,$c,train"; done; } > "$tmp/one.csv"
  out=$("$gs" eval classify --model "$hf" --images "$tmp/imgs" --labels "$tmp/one.csv" \
          --split val --classnames raw) || fail "classify one ($want) failed"
  if [ $want = best ]; then
    echo "$out" | grep -q '"n":1,"top1":1,"top5":1,' || fail "best class is not top-1: $out"
  else
    echo "$out" | grep -q '"n":1,"top1":0,"top5":0,' || fail "worst class is in the top 5: $out"
  fi
done

# ---- retrieve
out=$("$gs" eval retrieve --model "$hf" --images "$tmp/imgs" --dataset "$tmp/dataset.json" --batch 3) \
  || fail "retrieve failed"
check_json "$out" retrieve 8 || fail "retrieve JSON: $out"
out2=$("$gs" eval retrieve --model "$hf" --images "$tmp/imgs" --dataset "$tmp/dataset.json" \
  --split val --batch 3) || fail "retrieve --split failed"
[ "$out" = "$out2" ] || fail "the split filter changed the result: $out / $out2"
# The batch size must not change an embedding beyond float32 rounding: the GEMM libraries sum in
# an order that may depend on the row count (OpenBLAS's Haswell kernel, oneDNN's brgemm), and the
# tiny random model's recalls sit on near ties, so the check is on the embeddings (all 8 images
# in one call: one batch over the threads; then each alone), not on the recalls.
imgs=(); for f in "$tmp"/imgs/*; do imgs+=(--image "$f"); done
"$gs" embed --model "$hf" "${imgs[@]}" --format json > "$tmp/all.jsonl" || fail "embed all failed"
: > "$tmp/one.jsonl"
for f in "$tmp"/imgs/*; do
  "$gs" embed --model "$hf" --image "$f" --format json >> "$tmp/one.jsonl" || fail "embed $f failed"
done
$py - "$tmp/all.jsonl" "$tmp/one.jsonl" <<'EOF' || fail "an embedding depends on its batch"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) == 8, (len(a), len(b))
for x, y in zip(a, b):
    assert x["input"] == y["input"], (x["input"], y["input"])
    d = max(abs(u - v) for u, v in zip(x["embedding"], y["embedding"]))
    assert d <= 1e-5, "%s: max |diff| %g" % (x["input"], d)
EOF
out=$("$gs" eval retrieve --model "$hf" --images "$ucm/imgs" --dataset "$ucm/dataset.json" \
        --split val --limit 12) || fail "retrieve real --limit failed"
check_json "$out" retrieve 12 || fail "retrieve real JSON: $out"

# ---- caption (llava_tiny: random words, scores near 0)
if [ -d "$fix/llava_tiny" ]; then
  out=$("$gs" eval caption --model "$fix/llava_tiny" --images "$tmp/imgs" --dataset "$tmp/dataset.json" \
          --limit 3 --max-tokens 6 --captions-out "$tmp/caps.jsonl") || fail "caption failed"
  check_json "$out" caption 3 || fail "caption JSON: $out"
  [ "$(wc -l < "$tmp/caps.jsonl")" -eq 3 ] || fail "captions-out: $(cat "$tmp/caps.jsonl")"
  $py -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l); assert set(d) == {"image", "caption", "refs"} and len(d["refs"]) == 5, d' \
    "$tmp/caps.jsonl" || fail "captions-out lines: $(head -1 "$tmp/caps.jsonl")"
fi

# ---- refusals
expect() { # expect STATUS MESSAGE-PART ARGS...
  local want=$1 msg=$2; shift 2
  local err; err=$("$gs" eval "$@" 2>&1 >/dev/null); local rc=$?
  [ $rc -eq "$want" ] || fail "eval $*: exit $rc, want $want ($err)"
  echo "$err" | grep -q -- "$msg" || fail "eval $*: message lacks \"$msg\": $err"
}
expect 2 "classify, retrieve or caption"
expect 2 "unknown subcommand" rank --model "$hf"
expect 2 "needs --labels" classify --model "$hf" --images "$tmp/imgs"
expect 2 "needs --dataset" retrieve --model "$hf" --images "$tmp/imgs"
expect 2 "not a folder" retrieve --model "$hf" --images "$tmp/none" --dataset "$tmp/dataset.json"
expect 2 "does not take --labels" retrieve --model "$hf" --images "$tmp/imgs" --labels x.csv
expect 2 "does not take --vocab" caption --model m --images "$tmp/imgs" --dataset d --vocab v
expect 2 "exactly once" classify --model "$hf" --images "$tmp/imgs" --labels "$tmp/labels.csv" --template "x"
printf 'filename,label\na.jpg,x\n' > "$tmp/bad.csv"
expect 1 'no "class" column' classify --model "$hf" --images "$tmp/imgs" --labels "$tmp/bad.csv"
printf 'filename,class\nmissing.jpg,x\n' > "$tmp/missing.csv"
expect 1 "could not read image" classify --model "$hf" --images "$tmp/imgs" --labels "$tmp/missing.csv"
expect 1 'no images of split "test"' retrieve --model "$hf" --images "$tmp/imgs" --dataset "$tmp/dataset.json" --split test
printf '{"images": [' > "$tmp/bad.json"
expect 1 "not valid JSON" retrieve --model "$hf" --images "$tmp/imgs" --dataset "$tmp/bad.json"
echo "eval_cli: ok"
