"""Shared helpers of tools/train: data, images, safetensors, metrics, seeding.

Python 3 from Debian (python3-torch, python3-numpy, python3-pil, python3-sentencepiece);
nothing else. Paths are relative to the repository root unless absolute.
"""
import csv
import json
import math
import os
import random
import struct
import time
from collections import Counter, defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UCM_DIR = os.path.join(ROOT, "..", "shared", "data", "ucm-captions")

# CLIP's normalisation (the HF CLIPImageProcessor defaults, also used by LLaVA-1.5).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TEMPLATE = "a satellite image of {}."
# Class names as they appear in labels.csv, with a spaced spelling for prompts.
SPACED = {
    "baseballdiamond": "baseball diamond", "denseresidential": "dense residential",
    "golfcourse": "golf course", "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park", "parkinglot": "parking lot",
    "sparseresidential": "sparse residential", "storagetanks": "storage tanks",
    "tenniscourt": "tennis court",
}


def cosine_frac(elapsed, budget, warm_frac=0.03):
    """Learning-rate factor: linear warm-up over warm_frac of the budget, then cosine to 0."""
    warm = warm_frac * budget
    if elapsed < warm:
        return elapsed / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (elapsed - warm) / (budget - warm))))


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def seed_all(seed):
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n):
    import torch
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


# ---- data ---------------------------------------------------------------------------------

def load_ucm(data_dir=UCM_DIR):
    """Returns a list of dicts {filename, split, captions[5], cls} from dataset.json + labels.csv."""
    with open(os.path.join(data_dir, "dataset.json")) as f:
        ds = json.load(f)
    labels = {}
    with open(os.path.join(data_dir, "labels.csv")) as f:
        for row in csv.DictReader(f):
            labels[row["filename"]] = (row["class"], row["split"])
    items = []
    for im in ds["images"]:
        cls, split = labels[im["filename"]]
        assert split == im["split"], im["filename"]
        items.append({"filename": im["filename"], "split": im["split"], "cls": cls,
                      "captions": [s["raw"] for s in im["sentences"]]})
    return items


def class_names(items):
    return sorted({it["cls"] for it in items if it["split"] == "train"})


def prompt_texts(cls):
    """The class-label captions used as extra supervision (train labels only)."""
    names = [cls] + ([SPACED[cls]] if cls in SPACED else [])
    out = []
    for n in names:
        out += [TEMPLATE.format(n), "an aerial image of {}.".format(n), "{}".format(n)]
    return out


# ---- images -------------------------------------------------------------------------------

def clip_preprocess_uint8(path, size):
    """CLIPImageProcessor: PIL bicubic resize of the short side, centre crop with floor offsets.
    Returns uint8 HWC."""
    from PIL import Image
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)


def normalize_uint8(a):
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] normalised like CLIPImageProcessor."""
    x = a.astype(np.float64) * (1.0 / 255.0)
    x = x.astype(np.float32)
    x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def load_source_images(items, data_dir=UCM_DIR, size=256):
    """All images as uint8 [N, size, size, 3] (PIL bicubic to a square; UCM is ~256x256)."""
    from PIL import Image
    out = np.zeros((len(items), size, size, 3), np.uint8)
    for i, it in enumerate(items):
        im = Image.open(os.path.join(data_dir, "imgs", it["filename"])).convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        out[i] = np.asarray(im)
    return out


def load_eval_images(items, size, data_dir=UCM_DIR):
    """Exactly the engine's preprocessing: float32 [N, 3, size, size]."""
    a = np.stack([clip_preprocess_uint8(os.path.join(data_dir, "imgs", it["filename"]), size)
                  for it in items])
    return normalize_uint8(a)


class Augment:
    """Random resized crop + 90-degree rotations + flips + brightness/contrast jitter, on uint8
    source images held as a torch tensor [N, 3, S0, S0]. Output is normalised float32."""

    def __init__(self, src_uint8_nhwc, out_size, scale=(0.35, 1.0), jitter=0.15):
        import torch
        self.src = torch.from_numpy(src_uint8_nhwc).permute(0, 3, 1, 2).contiguous()
        self.out = out_size
        self.scale = scale
        self.jitter = jitter
        self.mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def at(self, size):
        """The same augmentation with another output size (shares the source images)."""
        import copy
        c = copy.copy(self)
        c.out = size
        return c

    def plain(self, idx):
        """Whole image resized (no randomness), for feature caching."""
        import torch.nn.functional as F
        x = self.src[idx].float() / 255.0
        x = F.interpolate(x, size=(self.out, self.out), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0, 1)
        return (x - self.mean) / self.std

    def __call__(self, idx, rng):
        import torch
        import torch.nn.functional as F
        s0 = self.src.shape[-1]
        outs = []
        for i in idx:
            area = rng.uniform(*self.scale)
            ar = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw = int(round(s0 * math.sqrt(area * ar)))
            ch = int(round(s0 * math.sqrt(area / ar)))
            cw, ch = min(max(cw, 16), s0), min(max(ch, 16), s0)
            x0 = rng.randint(0, s0 - cw)
            y0 = rng.randint(0, s0 - ch)
            crop = self.src[i:i + 1, :, y0:y0 + ch, x0:x0 + cw].float() / 255.0
            crop = F.interpolate(crop, size=(self.out, self.out), mode="bicubic",
                                 align_corners=False, antialias=True)
            k = rng.randint(0, 3)
            if k:
                crop = torch.rot90(crop, k, dims=(2, 3))
            if rng.random() < 0.5:
                crop = torch.flip(crop, dims=(3,))
            if self.jitter:
                b = 1.0 + rng.uniform(-self.jitter, self.jitter)
                c = 1.0 + rng.uniform(-self.jitter, self.jitter)
                m = crop.mean()
                crop = ((crop - m) * c + m) * b
            outs.append(crop.clamp(0, 1))
        x = torch.cat(outs, 0)
        return (x - self.mean) / self.std


def resize_batch(x, size):
    """A normalised batch [B, 3, S, S] resized to size (bicubic, antialiased); x if S == size."""
    import torch.nn.functional as F
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False,
                         antialias=True)


# ---- safetensors --------------------------------------------------------------------------

_DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8,
       "I32": np.int32, "F64": np.float64}
_DT_NAME = {np.dtype(v): k for k, v in _DT.items()}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (F32/F16/I64/...). BF16 is not used. Data in name
    order, header padded with spaces to a multiple of 8."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    order = sorted(tensors)
    blobs = []
    for k in order:
        a = np.asarray(tensors[k])
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
            a = a.copy(order="C")
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        b = a.tobytes()
        header[k] = {"dtype": _DT_NAME[a.dtype], "shape": list(a.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def save_torch(path, obj):
    """torch.save into path + ".tmp", then renamed over path: a checkpoint is whole or absent."""
    import torch
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=_DT[v["dtype"]])
        out[k] = arr.reshape(v["shape"]).copy()
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---- metrics (coco-caption definitions) ---------------------------------------------------

def caption_tokens(s):
    """coco-caption PTB tokenisation, simplified for this ASCII data: lower case, punctuation
    dropped, split on whitespace."""
    out = []
    for ch in s.lower():
        out.append(ch if (ch.isalnum() or ch.isspace() or ch == "'") else " ")
    return "".join(out).split()


def _ngrams(toks, n):
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def bleu(cands, refs, n_max=4):
    """Corpus BLEU 1..4 with the brevity penalty against the closest reference length (as
    coco-caption's bleu_scorer with option 'closest'). cands: list of token lists; refs: list
    of lists of token lists."""
    match = [0] * n_max
    total = [0] * n_max
    c_len = 0
    r_len = 0
    for c, rs in zip(cands, refs):
        c_len += len(c)
        r_len += min((abs(len(r) - len(c)), len(r)) for r in rs)[1]
        for n in range(1, n_max + 1):
            cc = _ngrams(c, n)
            mx = Counter()
            for r in rs:
                for g, k in _ngrams(r, n).items():
                    mx[g] = max(mx[g], k)
            match[n - 1] += sum(min(k, mx[g]) for g, k in cc.items())
            total[n - 1] += max(len(c) - n + 1, 0)
    tiny, small = 1e-15, 1e-9
    out = []
    logsum = 0.0
    for n in range(n_max):
        logsum += math.log((match[n] + tiny) / (total[n] + small))
        b = math.exp(logsum / (n + 1))
        if c_len < r_len:
            b *= math.exp(1 - r_len / (c_len + tiny))
        out.append(b)
    return out


def rouge_l(cands, refs, beta=1.2):
    def lcs(a, b):
        dp = [0] * (len(b) + 1)
        for x in a:
            prev = 0
            for j, y in enumerate(b):
                cur = dp[j + 1]
                dp[j + 1] = prev + 1 if x == y else max(dp[j + 1], dp[j])
                prev = cur
        return dp[-1]
    scores = []
    for c, rs in zip(cands, refs):
        precs, recs = [], []
        for r in rs:
            l = lcs(r, c)
            precs.append(l / len(c) if c else 0.0)
            recs.append(l / len(r) if r else 0.0)
        p, r = max(precs), max(recs)
        scores.append(((1 + beta ** 2) * p * r) / (r + beta ** 2 * p) if p and r else 0.0)
    return sum(scores) / len(scores)


def cider_d(cands, refs, n_max=4, sigma=6.0):
    """CIDEr-D as coco-caption: tf-idf over the references of the evaluated set, clipped
    candidate counts, gaussian length penalty, x10."""
    def counts(toks):
        return [_ngrams(toks, n) for n in range(1, n_max + 1)]
    crefs = [[counts(r) for r in rs] for rs in refs]
    df = defaultdict(float)
    for rs in crefs:
        for g in set(g for r in rs for cn in r for g in cn):
            df[g] += 1
    log_n = math.log(float(len(refs)))

    def vec(cn):
        v = [defaultdict(float) for _ in range(n_max)]
        norm = [0.0] * n_max
        for n in range(n_max):
            for g, tf in cn[n].items():
                v[n][g] = float(tf) * (log_n - math.log(max(1.0, df[g])))
                norm[n] += v[n][g] ** 2
        return v, [math.sqrt(x) for x in norm]

    scores = []
    for c, rs, cr in zip(cands, refs, crefs):
        vc, nc = vec(counts(c))
        sc = np.zeros(n_max)
        for r, rc in zip(rs, cr):
            vr, nr = vec(rc)
            delta = float(len(c) - len(r))
            for n in range(n_max):
                val = 0.0
                for g, x in vc[n].items():
                    val += min(x, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0)
                if nc[n] != 0 and nr[n] != 0:
                    val /= nc[n] * nr[n]
                sc[n] += val * math.exp(-(delta ** 2) / (2 * sigma ** 2))
        scores.append(float(sc.mean()) / len(rs) * 10.0)
    return float(np.mean(scores))


def caption_metrics(cands, refs):
    ct = [caption_tokens(c) for c in cands]
    rt = [[caption_tokens(r) for r in rs] for rs in refs]
    b = bleu(ct, rt)
    return {"n": len(cands), "bleu1": b[0], "bleu2": b[1], "bleu3": b[2], "bleu4": b[3],
            "rouge_l": rouge_l(ct, rt), "cider": cider_d(ct, rt)}


def retrieval_metrics(sim, img_of_text, texts=None):
    """sim: [n_images, n_texts] similarities; img_of_text[j] = image index of text j.
    Text-to-image counts a hit for the text's own image (Karpathy protocol)."""
    n_img, n_txt = sim.shape
    res = {"n_images": n_img, "n_texts": n_txt}
    order_i2t = np.argsort(-sim, axis=1)
    ranks = []
    for i in range(n_img):
        hits = np.where(img_of_text[order_i2t[i]] == i)[0]
        ranks.append(hits.min())
    ranks = np.array(ranks)
    for k in (1, 5, 10):
        res["i2t_r%d" % k] = 100.0 * float(np.mean(ranks < k))
    order_t2i = np.argsort(-sim.T, axis=1)
    ranks = np.array([np.where(order_t2i[j] == img_of_text[j])[0][0] for j in range(n_txt)])
    for k in (1, 5, 10):
        res["t2i_r%d" % k] = 100.0 * float(np.mean(ranks < k))
    res["mR"] = float(np.mean([res[k] for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1",
                                                 "t2i_r5", "t2i_r10")]))
    return res
