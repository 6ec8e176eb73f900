#!/usr/bin/env bash
# `geoscribe caption` on ../shared/fixtures/llava_tiny: the single and pair cases give the 16
# greedy ids of transformers v4.40.2 exactly, from the PNG files; JSON shape; text output;
# beams and sampling run; usage errors exit 2, failures exit 1.
# usage: caption_cli.sh GEOSCRIBE SHARED_DIR
set -u
gs=$1
fx=$2/fixtures/llava_tiny
fail() { echo "caption_cli: $*" >&2; exit 1; }
if [ ! -d "$fx" ]; then echo "caption_cli: SKIP, $fx is absent"; exit 0; fi

single_ids='[8200,5966,969,15375,16634,26112,14521,28243,25456,31655,16800,16227,24942,30228,7727,9009]'
pair_ids='[8200,29320,25055,30095,26862,4747,31655,16800,16227,31655,16800,16227,31655,16800,25912,23668]'

out=$("$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 16 --threads 2 \
  --format json) || fail "single case failed"
echo "$out" | grep -qF "\"ids\":$single_ids" || fail "single ids differ: $out"
echo "$out" | grep -qF '"prompt":"USER: <image>\nDescribe this image. ASSISTANT:"' \
  || fail "single prompt: $out"
echo "$out" | grep -qF "\"images\":[\"$fx/single_image_0.png\"]" || fail "images: $out"
echo "$out" | grep -qE '"text":"[^"]+"}$' || fail "no text: $out"

out=$("$gs" caption --model "$fx" --image "$fx/pair_image_0_before.png" \
  --image "$fx/pair_image_1_after.png" --prompt "What changed between the two images?" \
  --max-tokens 16 --format json) || fail "pair case failed"
echo "$out" | grep -qF "\"ids\":$pair_ids" || fail "pair ids differ: $out"

# the same pair through --raw-prompt
out=$("$gs" caption --model "$fx" --image "$fx/pair_image_0_before.png" \
  --image "$fx/pair_image_1_after.png" --max-tokens 16 --format json \
  --raw-prompt "$(printf 'USER: <image>\n<image>\nWhat changed between the two images? ASSISTANT:')") \
  || fail "raw pair failed"
echo "$out" | grep -qF "\"ids\":$pair_ids" || fail "raw pair ids differ: $out"

# default two-image prompt, text output, beams, sampling (seeded: the same twice)
out=$("$gs" caption --model "$fx" --image "$fx/pair_image_0_before.png" \
  --image "$fx/pair_image_1_after.png" --max-tokens 4 --format json) || fail "default pair"
echo "$out" | grep -qF 'Describe what changed from the first image to the second image.' \
  || fail "default change prompt: $out"
txt=$("$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 16) \
  || fail "text format failed"
[ -n "$txt" ] && [ "${txt#\{}" = "$txt" ] || fail "text output: $txt"
"$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 6 --beams 3 \
  --format json | grep -q '"ids":\[' || fail "beams failed"
s1=$("$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 6 \
  --temperature 0.8 --top-p 0.9 --seed 11 --format json) || fail "sampling failed"
s2=$("$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 6 \
  --temperature 0.8 --top-p 0.9 --seed 11 --format json) || fail "sampling failed"
[ "$s1" = "$s2" ] || fail "the same seed gave different samples"

# errors
"$gs" caption --image "$fx/single_image_0.png" 2>/dev/null; [ $? -eq 2 ] || fail "no --model: exit 2"
"$gs" caption --model "$fx" 2>/dev/null; [ $? -eq 2 ] || fail "no --image: exit 2"
"$gs" caption --model "$fx" --image x --prompt a --raw-prompt b 2>/dev/null
[ $? -eq 2 ] || fail "--prompt with --raw-prompt: exit 2"
"$gs" caption --model "$fx" --image x --beams 2 --temperature 0.5 2>/dev/null
[ $? -eq 2 ] || fail "beams with sampling: exit 2"
"$gs" caption --model "$fx" --image "$fx/single_image_0.png" --max-tokens 0 2>/dev/null
[ $? -eq 2 ] || fail "--max-tokens 0: exit 2"
"$gs" caption --model /nonexistent --image "$fx/single_image_0.png" 2>/dev/null
[ $? -eq 1 ] || fail "missing model: exit 1"
"$gs" caption --model "$fx" --image /nonexistent.png 2>/dev/null
[ $? -eq 1 ] || fail "missing image: exit 1"
"$gs" caption --model "$fx" --image "$fx/single_image_0.png" --raw-prompt "no image" 2>/dev/null
[ $? -eq 1 ] || fail "prompt without <image>: exit 1"
"$gs" caption --help | grep -q 'usage: geoscribe caption' || fail "--help"
echo "caption_cli: ok"
