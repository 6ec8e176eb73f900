#!/usr/bin/python3
"""Val-split metrics of saved model folders (weights as saved: F16 read back to float32;
images through the engine's preprocessing: PIL bicubic short side, centre crop, normalise).

    /usr/bin/python3 tools/train/evaluate.py --clip models/default/clip \\
        --captioner models/default/captioner [--split val] [--json out.json]

CLIP: zero-shot top-1/top-5 with the template "a satellite image of {}." and the class names
of labels.csv; retrieval R@1/5/10 both ways and mR (Karpathy protocol, 5 captions/image).
Captioner: greedy captions, BLEU-1..4 (corpus, closest-length brevity penalty), ROUGE-L
(beta 1.2) and CIDEr-D, with coco-caption's definitions and a simplified PTB tokenisation
(lower case, punctuation dropped); plus the synthetic change pairs of the split (exact match).
"""
import argparse
import json
import os
import random
import sys
import time

# One thread each: on a shared, loaded machine two OpenMP/OpenBLAS threads spend most of
# their time waiting for each other (measured: 8x slower per image than one thread).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import gslib  # noqa: E402


def load_model(cls, dirname):
    with open(os.path.join(dirname, "config.json")) as f:
        cfg = json.load(f)
    sd = gslib.load_safetensors(os.path.join(dirname, "model.safetensors"))
    m = cls(cfg)
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in sd.items()})
    m.eval()
    return m, cfg


def eval_clip(dirname, items, classes):
    import train_clip
    from models import ClipModel
    m, cfg = load_model(ClipModel, dirname)
    tok = bpe.Tokenizer(dirname)
    px = gslib.load_eval_images(items, cfg["vision_config"]["image_size"])
    r = train_clip.evaluate(m, tok, items, px, classes)
    return r


def eval_captioner(dirname, items, classes, seed=99):
    import train_captioner as tc
    from models import LlavaModel
    m, cfg = load_model(LlavaModel, dirname)
    tok = tc.SpTok(os.path.join(dirname, "tokenizer.model"))
    px = gslib.load_eval_images(items, cfg["vision_config"]["image_size"])
    with torch.no_grad():
        feats = torch.cat([m.vision_features(torch.from_numpy(px[i:i + 64]))
                           for i in range(0, len(px), 64)])
    r, hyps = tc.evaluate(m, tok, items, feats, tok.prompt(tc.PROMPT_SINGLE))
    # Synthetic change pairs from this split: 1 no-change pair per 4 changed pairs.
    rng = random.Random(seed)
    pairs, want = [], []
    for k in range(100):
        i = rng.randrange(len(items))
        if k % 5 == 0:
            pairs.append([feats[i], feats[i]])
            want.append(tc.NO_CHANGE)
        else:
            j = rng.choice([j for j in range(len(items)) if items[j]["cls"] != items[i]["cls"]])
            pairs.append([feats[i], feats[j]])
            want.append(tc.change_caption(items[i]["cls"], items[j]["cls"]))
    got = []
    for i in range(0, len(pairs), 50):
        got += [tok.decode(x) for x in tc.greedy(m, tok, tok.prompt(tc.PROMPT_PAIR),
                                                  pairs[i:i + 50])]
    r["change_pairs_n"] = len(pairs)
    r["change_pairs_exact"] = float(np.mean([g.strip() == w for g, w in zip(got, want)]))
    return r, hyps, list(zip(want, got))[:10]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clip")
    ap.add_argument("--captioner")
    ap.add_argument("--split", default="val")
    ap.add_argument("--json")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    gslib.set_threads(a.threads)
    items = gslib.load_ucm()
    classes = gslib.class_names(items)
    split = [it for it in items if it["split"] == a.split]
    out = {"split": a.split}
    t = time.time()
    if a.clip:
        out["clip"] = eval_clip(a.clip, split, classes)
        print("clip:", json.dumps(out["clip"]))
    if a.captioner:
        r, hyps, ch = eval_captioner(a.captioner, split, classes)
        out["captioner"] = r
        out["captioner_examples"] = [{"image": split[i]["filename"], "caption": hyps[i],
                                      "refs": split[i]["captions"][:2]}
                                     for i in range(0, len(split), 30)]
        out["change_examples"] = [{"want": w, "got": g} for w, g in ch[:5]]
        print("captioner:", json.dumps(r))
        for e in out["captioner_examples"]:
            print("  %s: %s | ref: %s" % (e["image"], e["caption"], e["refs"][0]))
        for e in out["change_examples"]:
            print("  change want: %s | got: %s" % (e["want"], e["got"]))
    out["eval_wall_s"] = round(time.time() - t, 1)
    if a.json:
        gslib.write_json(a.json, out)


if __name__ == "__main__":
    main()
