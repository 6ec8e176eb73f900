#!/usr/bin/env bash
# The CLIP commands (embed, tokenize, classify, inspect-model) on the fixtures of ../shared:
# JSON shape, values against the golden tensors (PNG -> GDAL -> preprocess -> encoder), ranking
# and error messages. Usage: clip_cli.sh GEOSCRIBE SHARED_DIR
set -u
gs=$1
fix=$2/fixtures
py=/usr/bin/python3
if [ ! -d "$fix/openclip_tiny" ]; then
  echo "SKIP clip_cli: $fix is absent"; exit 0
fi
fail() { echo "clip_cli: $*" >&2; exit 1; }
oc=$fix/openclip_tiny
hf=$fix/hfclip_tiny
bpe=$fix/clip_bpe/bpe_simple_vocab_16e6.txt.gz
export GS_LOG_LEVEL=warn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# golden tensor reader: python3 - EXPECTED NAME ROW -> JSON list of that row
cat > "$tmp/golden.py" <<'EOF'
import json, struct, sys
import numpy as np
path, name, row = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    e = h[name]
    f.seek(8 + n + e["data_offsets"][0])
    dt = {"F32": np.float32, "I64": np.int64}[e["dtype"]]
    a = np.frombuffer(f.read(e["data_offsets"][1] - e["data_offsets"][0]), dtype=dt).reshape(e["shape"])
print(json.dumps(a[row].tolist()))
EOF
# close A B TOL: the JSON lists A and B agree within TOL
close() {
  $py -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); t=float(sys.argv[3])
d=max(abs(x-y) for x,y in zip(a,b)); sys.exit(0 if len(a)==len(b) and d<=t else print("max diff",d,len(a),len(b)) or 1)' "$1" "$2" "$3"
}
field() { $py -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$1" "$2"; }

# ---- embed: image from its PNG and a caption, both layouts
cap0=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["captions"][0])' "$oc/manifest.json")
out=$("$gs" embed --model "$oc" --vocab "$bpe" --threads 2 --format json \
        --image "$oc/image_0.png" --text "$cap0") || fail "embed failed"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "embed: expected 2 lines: $out"
img=$(echo "$out" | sed -n 1p); txt=$(echo "$out" | sed -n 2p)
[ "$(field "$img" kind)" = '"image"' ] && [ "$(field "$txt" kind)" = '"text"' ] || fail "kinds: $out"
[ "$(field "$img" dim)" = 32 ] || fail "dim: $img"
[ "$(field "$txt" input)" = "\"$cap0\"" ] || fail "text input not echoed: $txt"
close "$(field "$img" embedding)" "$($py "$tmp/golden.py" "$oc/expected.safetensors" image_features_normalized 0)" 1e-5 \
  || fail "open_clip image embedding differs from the fixture"
close "$(field "$txt" embedding)" "$($py "$tmp/golden.py" "$oc/expected.safetensors" text_features_normalized 0)" 1e-5 \
  || fail "open_clip text embedding differs from the fixture"
# the .pt with its config gives the same numbers
out2=$("$gs" embed --model "$oc/open_clip_model.pt" --config "$oc/open_clip_config.json" --vocab "$bpe" \
        --format json --image "$oc/image_0.png" --text "$cap0") || fail "embed .pt failed"
[ "$out" = "$out2" ] || fail ".pt + --config differs from the hub folder"
# HF folder: vocabulary found beside the weights, HF crop rule
hcap=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["text_input"]["captions"][2])' "$hf/manifest.json")
out=$("$gs" embed --model "$hf" --format json --text "$hcap" --image "$hf/image_2.png") || fail "embed hf failed"
close "$(field "$(echo "$out" | sed -n 1p)" embedding)" "$($py "$tmp/golden.py" "$hf/expected.safetensors" text_embeds 2)" 1e-5 \
  || fail "HF text embedding differs from the fixture"
close "$(field "$(echo "$out" | sed -n 2p)" embedding)" "$($py "$tmp/golden.py" "$hf/expected.safetensors" image_embeds 2)" 1e-5 \
  || fail "HF image embedding differs from the fixture"
# text format prints something readable
"$gs" embed --model "$hf" --text "a harbor" | grep -q '^text  a harbor dim=32 \[' || fail "embed text format"

# ---- tokenize: ids of the tokenizer cases, with the model's vocabulary or the file alone
want=$($py -c 'import json,sys; c=json.load(open(sys.argv[1])); print(json.dumps(c[0]["ids"]) if isinstance(c,list) else json.dumps(c["cases"][0]["ids"]))' "$fix/clip_bpe/tokenizer_cases.json")
text0=$($py -c 'import json,sys; c=json.load(open(sys.argv[1])); c=c if isinstance(c,list) else c["cases"]; print(c[0]["text"])' "$fix/clip_bpe/tokenizer_cases.json")
got=$("$gs" tokenize --vocab "$bpe" --format json "$text0") || fail "tokenize failed"
[ "$(field "$got" ids | tr -d ' ')" = "$(echo "$want" | tr -d ' ')" ] || fail "tokenize ids: $got vs $want"
got=$("$gs" tokenize --model "$hf" --format json "$text0" "second text") || fail "tokenize --model failed"
[ "$(echo "$got" | wc -l)" -eq 2 ] || fail "tokenize: one line per text"
[ "$(field "$(echo "$got" | sed -n 1p)" ids | tr -d ' ')" = "$(echo "$want" | tr -d ' ')" ] || fail "tokenize --model ids"
"$gs" tokenize --vocab "$bpe" "many planes" | grep -q 'tokens: <start_of_text> many</w> planes</w> <end_of_text>' \
  || fail "tokenize text format"

# ---- classify: labels sorted by probability, probabilities sum to 1
out=$("$gs" classify --model "$hf" --labels "airport, harbor ,forest,farmland" --format json \
        --image "$hf/image_0.png" --image "$hf/image_3.png") || fail "classify failed"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "classify: one line per image: $out"
echo "$out" | $py -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    p = o["probs"]
    assert sorted(o["labels"]) == ["airport", "farmland", "forest", "harbor"], o
    assert p == sorted(p, reverse=True), o
    assert abs(sum(p) - 1) < 1e-5, o
' || fail "classify output: $out"
"$gs" classify --model "$hf" --labels a,b --template "no placeholder" --image x 2>/dev/null
[ $? -eq 2 ] || fail "a template without {} must be a usage error"
"$gs" classify --model "$hf" --labels "a,,b" --image x 2>/dev/null
[ $? -eq 2 ] || fail "an empty label must be a usage error"

# ---- inspect-model
out=$("$gs" inspect-model "$oc" --vocab "$bpe" --format json) || fail "inspect-model failed"
for kv in '"kind":"clip"' '"n_params":914577' '"embed_dim":32' '"activation":"quick_gelu"' '"dtypes":"F32"' \
          '"layout":"open_clip"' '"heads":2'; do
  echo "$out" | grep -q "$kv" || fail "inspect-model lacks $kv: $out"
done
id_hub=$(field "$out" model_id)
id_pt=$(field "$("$gs" inspect-model "$oc/open_clip_model.pt" --config "$oc/open_clip_config.json" --format json)" model_id)
[ "$id_hub" = "$id_pt" ] || fail "model id differs between .safetensors and .pt: $id_hub $id_pt"
"$gs" inspect-model "$oc/open_clip_model.pt" --format json | grep -q '"kind":"weights","n_tensors":62,"n_params":914577' \
  || fail "inspect-model of a bare .pt"
"$gs" inspect-model "$hf" | grep -q 'CLIP hf CLIPModel (hf layout)' || fail "inspect-model text format"

# ---- errors
err=$("$gs" embed --model "$oc" --text "a harbor" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || fail "missing vocabulary: exit $rc"
echo "$err" | grep -q "no CLIP vocabulary found in \"$oc\": expected bpe_simple_vocab_16e6.txt.gz or vocab.json + merges.txt; give one with --vocab FILE" \
  || fail "missing vocabulary message: $err"
err=$("$gs" embed --model "$oc/open_clip_model.pt" --image "$oc/image_0.png" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q -- '--arch NAME' || fail "bare .pt without --arch: $rc $err"
err=$("$gs" embed --model "$oc/open_clip_model.pt" --arch ViT-B-32 --image "$oc/image_0.png" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q 'tensor "visual.conv1.weight" in ".*open_clip_model.pt": expected shape \[768, 3, 32, 32\], found \[64, 3, 8, 8\]' \
  || fail "wrong --arch: $rc $err"
"$gs" embed --model "$oc" 2>/dev/null; [ $? -eq 2 ] || fail "embed without inputs must exit 2"
"$gs" embed --image x 2>/dev/null; [ $? -eq 2 ] || fail "embed without --model must exit 2"
"$gs" embed --model "$oc" --threads 0 --image x 2>/dev/null; [ $? -eq 2 ] || fail "--threads 0 must exit 2"
"$gs" embed --model "$oc" --image /nonexistent.png 2>/dev/null; [ $? -eq 1 ] || fail "unreadable image must exit 1"
"$gs" embed --help | grep -q 'usage: geoscribe embed' || fail "embed --help"
echo "clip_cli: ok"
