#!/usr/bin/python3
"""The PyTorch peer of geoscribe's CLIP encoder benchmark (bench/encoder).

  torch_clip.py write DIR      random ViT-B/32 CLIP weights (open_clip key names, float32) as an
                               open_clip hub folder (open_clip_config.json +
                               open_clip_model.safetensors), fixed input pixels (pixels.bin) and
                               this implementation's features for them (torch_features.bin)
  torch_clip.py time DIR B...  images/s of the vision tower at each batch size B, one JSON line
                               each; thread settings come from the caller (see run.sh)

The model is open_clip's ViT ("ViT-B-32": nn.GELU, pre-LN residual blocks with
nn.MultiheadAttention, class-token pooling, ln_post, proj) written here with standard torch
modules. Needs Debian's python3-torch (deploy/setup.sh --bench).
"""
import json
import os
import struct
import sys
import time
from collections import OrderedDict

import torch
from torch import nn

# ViT-B-32 (open_clip model_configs/ViT-B-32.json)
CFG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
}


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))

    def forward(self, x, mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class Visual(nn.Module):
    def __init__(self, image_size, patch_size, width, layers, heads, embed_dim):
        super().__init__()
        g = image_size // patch_size
        self.conv1 = nn.Conv2d(3, width, patch_size, patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(g * g + 1, width) * width ** -0.5)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, embed_dim) * width ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        self.visual = Visual(v["image_size"], v["patch_size"], v["width"], v["layers"],
                             v["width"] // 64, cfg["embed_dim"])
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.randn(t["context_length"], t["width"]) * 0.01)
        self.transformer = Transformer(t["width"], t["layers"], t["heads"])
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.randn(t["width"], cfg["embed_dim"]) * t["width"] ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))


def build(seed=20240611):
    torch.manual_seed(seed)
    m = CLIP(CFG)
    with torch.no_grad():  # non-trivial LayerNorm gains and biases
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.02)
    return m.eval()


def save_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors.items():
        data = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def pixels(n=16, seed=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 224, 224, generator=g)


def write(d):
    os.makedirs(d, exist_ok=True)
    m = build()
    save_safetensors(os.path.join(d, "open_clip_model.safetensors"), m.state_dict())
    with open(os.path.join(d, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": CFG, "preprocess_cfg": {}}, f, indent=1)
    px = pixels()
    px.numpy().tofile(os.path.join(d, "pixels.bin"))
    with torch.inference_mode():
        m.visual(px).numpy().tofile(os.path.join(d, "torch_features.bin"))


def time_vision(d, batches, seconds=2.0, reps=3):
    m = build()  # the same weights as written (same seed), no need to read them back
    px = pixels()
    out = []
    with torch.inference_mode():
        for b in batches:
            x = px[:b].contiguous()
            m.visual(x)  # warm-up
            best, best_cpu = 0.0, 0.0
            for _ in range(reps):
                n, t0, c0 = 0, time.perf_counter(), time.process_time()
                while True:
                    m.visual(x)
                    n += b
                    dt = time.perf_counter() - t0
                    if dt >= seconds:
                        break
                best = max(best, n / dt)
                best_cpu = max(best_cpu, n / (time.process_time() - c0))
            print(json.dumps({"impl": "pytorch", "batch": b, "images_per_s": round(best, 3),
                              "images_per_cpu_s": round(best_cpu, 3),
                              "torch_threads": torch.get_num_threads(),
                              "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}), flush=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "time":
        torch.set_num_threads(1)
        time_vision(sys.argv[2], [int(b) for b in sys.argv[3:]],
                    seconds=float(os.environ.get("BENCH_SECONDS", "2")))
    else:
        sys.exit(__doc__)
