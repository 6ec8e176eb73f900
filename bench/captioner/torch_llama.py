#!/usr/bin/env python3
"""bench/captioner: the PyTorch side of the decoder benchmark (run by run.sh, never by tests).

  torch_llama.py write DIR [--layers N] [--dtype bf16|f16] [--seed S]
      writes a random LLaMA-7B-shaped decoder (vocab 32000, hidden 4096, intermediate 11008,
      32 heads, N layers) as a Hugging Face LlamaForCausalLM folder: config.json and
      model.safetensors (written here, no safetensors package needed).
  torch_llama.py time DIR [--prompt P] [--decode T] [--compute bf16|f32] [--reps R]
      loads the folder and times a prefill of P tokens and T decode steps with a KV cache,
      printing one JSON line; --compute f32 upcasts the weights (twice the memory).
      It also writes DIR/torch_logits_<compute>.bin: the float32 logits after the prefill and
      after the last decode step, for the C side's parity check.

The model is transformers' LlamaForCausalLM (v4.40) written out in plain torch: RMSNorm,
rotate-half RoPE, multi-head attention over a KV cache, SwiGLU, untied lm_head. Token ids are
i * 7919 % 32000 (the C bench uses the same).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

VOCAB, DIM, HIDDEN, HEADS = 32000, 4096, 11008, 32
EPS, THETA = 1e-5, 10000.0


def token_ids(n, offset=0):
    return [((i + offset) * 7919) % VOCAB for i in range(n)]


# ---- writing ----------------------------------------------------------------------------

def tensor_list(layers):
    out = [("model.embed_tokens.weight", (VOCAB, DIM))]
    for l in range(layers):
        p = "model.layers.%d." % l
        out += [(p + "self_attn.q_proj.weight", (DIM, DIM)), (p + "self_attn.k_proj.weight", (DIM, DIM)),
                (p + "self_attn.v_proj.weight", (DIM, DIM)), (p + "self_attn.o_proj.weight", (DIM, DIM)),
                (p + "mlp.gate_proj.weight", (HIDDEN, DIM)), (p + "mlp.up_proj.weight", (HIDDEN, DIM)),
                (p + "mlp.down_proj.weight", (DIM, HIDDEN)),
                (p + "input_layernorm.weight", (DIM,)), (p + "post_attention_layernorm.weight", (DIM,))]
    out += [("model.norm.weight", (DIM,)), ("lm_head.weight", (VOCAB, DIM))]
    return out


def write(args):
    os.makedirs(args.dir, exist_ok=True)
    dt = {"bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    name = {"bf16": "BF16", "f16": "F16"}[args.dtype]
    tensors = tensor_list(args.layers)
    header, off = {}, 0
    for n, shape in tensors:
        nbytes = 2 * int(np.prod(shape))
        header[n] = {"dtype": name, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    g = torch.Generator().manual_seed(args.seed)
    path = os.path.join(args.dir, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n, shape in tensors:
            if len(shape) == 1:
                t = 1.0 + 0.1 * torch.randn(shape, generator=g)
            else:  # transformers' init scale; embeddings a bit larger so activations are O(1)
                std = 0.5 if "embed" in n else 0.02
                t = std * torch.randn(shape, generator=g)
            f.write(t.to(dt).view(torch.int16).numpy().tobytes())
    os.replace(path + ".tmp", path)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
           "hidden_size": DIM, "intermediate_size": HIDDEN, "num_hidden_layers": args.layers,
           "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
           "max_position_embeddings": 4096, "rms_norm_eps": EPS, "rope_theta": THETA,
           "hidden_act": "silu", "tie_word_embeddings": False,
           "torch_dtype": {"bf16": "bfloat16", "f16": "float16"}[args.dtype]}
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(json.dumps({"wrote": path, "nbytes": off + 8 + len(h), "layers": args.layers,
                      "dtype": name}))


# ---- loading (numpy memmap, no copy for 16-bit compute) -----------------------------------

def load(d):
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hl))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for n, v in header.items():
        if n == "__metadata__":
            continue
        a, b = v["data_offsets"]
        raw = mm[8 + hl + a: 8 + hl + b].view(np.int16).reshape(v["shape"])
        t = torch.from_numpy(np.asarray(raw))  # read-only view of the mapping
        out[n] = t.view(torch.bfloat16 if v["dtype"] == "BF16" else torch.float16)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    return cfg, out


class Llama:
    def __init__(self, cfg, w, dtype):
        self.L = cfg["num_hidden_layers"]
        self.hd = DIM // HEADS
        self.w = {n: (t if t.dtype == dtype else t.to(dtype)) for n, t in w.items()}
        self.dtype = dtype
        inv = 1.0 / (THETA ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))
        self.inv_freq = inv
        self.k = [None] * self.L
        self.v = [None] * self.L

    def rms(self, x, wt):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
        return wt * xf.to(x.dtype)

    def rope(self, x, pos):
        freqs = pos.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        rot = torch.cat((-x2, x1), dim=-1)
        return x * cos[None] + rot * sin[None]

    def forward(self, ids, p0):
        w, F = self.w, torch.nn.functional
        n = len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]
        pos = torch.arange(p0, p0 + n)
        for l in range(self.L):
            p = "model.layers.%d." % l
            h = self.rms(x, w[p + "input_layernorm.weight"])
            q = F.linear(h, w[p + "self_attn.q_proj.weight"]).view(n, HEADS, self.hd).transpose(0, 1)
            k = F.linear(h, w[p + "self_attn.k_proj.weight"]).view(n, HEADS, self.hd).transpose(0, 1)
            v = F.linear(h, w[p + "self_attn.v_proj.weight"]).view(n, HEADS, self.hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if p0 > 0:
                k = torch.cat((self.k[l], k), dim=1)
                v = torch.cat((self.v[l], v), dim=1)
            self.k[l], self.v[l] = k, v
            s = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(self.hd)
            if n > 1:
                mask = torch.full((n, p0 + n), float("-inf")).triu(p0 + 1)
                s = s + mask.to(s.dtype)
            a = torch.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
            o = torch.matmul(a, v).transpose(0, 1).reshape(n, DIM)
            x = x + F.linear(o, w[p + "self_attn.o_proj.weight"])
            h = self.rms(x, w[p + "post_attention_layernorm.weight"])
            m = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"])) * F.linear(h, w[p + "mlp.up_proj.weight"])
            x = x + F.linear(m, w[p + "mlp.down_proj.weight"])
        h = self.rms(x[-1:], w["model.norm.weight"])
        return F.linear(h, w["lm_head.weight"]).float()[0]


def time_model(args):
    torch.set_num_threads(args.threads)
    cfg, w = load(args.dir)
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.compute]
    t0 = time.perf_counter()
    m = Llama(cfg, w, dtype)
    t_load = time.perf_counter() - t0
    ids = token_ids(args.prompt + args.decode)
    best_pre, best_dec, logits = None, None, []
    with torch.no_grad():
        for _ in range(args.reps):
            t0 = time.perf_counter()
            lg0 = m.forward(ids[: args.prompt], 0)
            t1 = time.perf_counter()
            lg = lg0
            for i in range(args.decode):
                lg = m.forward([ids[args.prompt + i]], args.prompt + i)
            t2 = time.perf_counter()
            pre, dec = args.prompt / (t1 - t0), args.decode / (t2 - t1)
            best_pre = pre if best_pre is None else max(best_pre, pre)
            best_dec = dec if best_dec is None else max(best_dec, dec)
            logits = [lg0, lg]
    torch.cat(logits).numpy().astype(np.float32).tofile(
        os.path.join(args.dir, "torch_logits_%s.bin" % args.compute))
    print(json.dumps({"impl": "pytorch-" + args.compute, "threads": args.threads,
                      "torch_threads": torch.get_num_threads(), "layers": cfg["num_hidden_layers"],
                      "prompt": args.prompt, "decode": args.decode,
                      "prefill_tok_s": round(best_pre, 3), "decode_tok_s": round(best_dec, 3),
                      "weights_upcast_s": round(t_load, 2), "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("write")
    a.add_argument("dir")
    a.add_argument("--layers", type=int, default=4)
    a.add_argument("--dtype", default="bf16", choices=["bf16", "f16"])
    a.add_argument("--seed", type=int, default=20240605)
    b = sub.add_parser("time")
    b.add_argument("dir")
    b.add_argument("--prompt", type=int, default=128)
    b.add_argument("--decode", type=int, default=16)
    b.add_argument("--compute", default="bf16", choices=["bf16", "f16", "f32"])
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    write(args) if args.cmd == "write" else time_model(args)


if __name__ == "__main__":
    sys.exit(main())
