#!/usr/bin/python3
"""Zero-shot top-1 of a saved CLIP folder with test-time augmentation over the dihedral views
(4 rotations x horizontal flip) of each image: each view alone, the mean embedding of the 4
rotations and of all 8 views, and the mean of the 8 views' logits. PyTorch on the saved weights
(F16 read back to float32), images through the engine's preprocessing, template
"a satellite image of {}." (train_clip.evaluate's prompt).

    /usr/bin/python3 tools/train/views_eval.py [--clip models/default/clip] [--split val]
"""
import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import evaluate  # noqa: E402
import gslib  # noqa: E402
import train_clip  # noqa: E402
from models import ClipModel  # noqa: E402


def dihedral(x):
    """The 8 views of a (n, 3, S, S) batch: rotations by 0/90/180/270 degrees, then the same
    of the horizontally flipped batch."""
    return [torch.rot90(x.flip(-1) if f else x, k, (-2, -1)) for f in (False, True)
            for k in range(4)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clip", default="models/default/clip")
    ap.add_argument("--split", default="val")
    a = ap.parse_args()
    m, cfg = evaluate.load_model(ClipModel, a.clip)
    tok = bpe.Tokenizer(a.clip)
    items = gslib.load_ucm()
    classes = gslib.class_names(items)
    split = [it for it in items if it["split"] == a.split]
    px = torch.from_numpy(gslib.load_eval_images(split, cfg["vision_config"]["image_size"]))
    prompts = [tok(gslib.TEMPLATE.format(c)) for c in classes]
    with torch.no_grad():
        embs = [F.normalize(m.encode_image(v), dim=-1) for v in dihedral(px)]
        txt = F.normalize(m.encode_text(train_clip.pad_batch(prompts, tok.eot)), dim=-1)
    lab = torch.tensor([classes.index(it["cls"]) for it in split])

    def top1(logits):
        return round(float((logits.argmax(-1) == lab).float().mean()), 4)

    print("each view:", [top1(e @ txt.T) for e in embs])
    print("4 rotations, mean embedding:", top1(F.normalize(sum(embs[:4]), dim=-1) @ txt.T))
    print("8 views, mean embedding:", top1(F.normalize(sum(embs), dim=-1) @ txt.T))
    print("8 views, mean logits:", top1(sum(e @ txt.T for e in embs)))


if __name__ == "__main__":
    main()
