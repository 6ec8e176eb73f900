#!/usr/bin/python3
"""Check saved model folders: an independent numpy float64 forward written from the files
alone (config.json, model.safetensors, tokenizer files, preprocessor_config.json) against the
PyTorch modules of tools/train/models.py loaded from the same files.

    /usr/bin/python3 tools/train/verify.py --clip models/default/clip \\
        --captioner models/default/captioner [--golden DIR]

--golden writes expected.safetensors + cases.json per model (inputs, ids, outputs) for the C
engine's checks. Exit status 1 on a mismatch.
"""
import argparse
import json
import math
import os
import sys

# One thread each: on a shared, loaded machine two OpenMP/OpenBLAS threads spend most of
# their time waiting for each other (measured: 8x slower per image than one thread).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import gslib  # noqa: E402

_erf = np.vectorize(math.erf)


def ln(x, w, b, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def act(x, name):
    if name == "quick_gelu":
        return x / (1 + np.exp(-1.702 * x))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def clip_layer(x, W, p, heads, act_name, causal):
    t, d = x.shape
    hd = d // heads
    h = ln(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"])
    lin = lambda y, n: y @ W[p + n + ".weight"].T + W[p + n + ".bias"]  # noqa: E731
    q = lin(h, "self_attn.q_proj") * hd ** -0.5
    k = lin(h, "self_attn.k_proj")
    v = lin(h, "self_attn.v_proj")
    o = np.zeros_like(h)
    for i in range(heads):
        s = slice(i * hd, (i + 1) * hd)
        a = q[:, s] @ k[:, s].T
        if causal:
            a = a + np.triu(np.full((t, t), -np.inf), 1)
        o[:, s] = softmax(a) @ v[:, s]
    x = x + lin(o, "self_attn.out_proj")
    h = ln(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"])
    return x + lin(act(lin(h, "mlp.fc1"), act_name), "mlp.fc2")


def vision_hidden(W, vc, px, prefix):
    """px [3, S, S] float -> list of hidden states (pre_layrnorm out, then each layer)."""
    p = vc["patch_size"]
    s = px.shape[-1] // p
    patches = px.reshape(3, s, p, s, p).transpose(1, 3, 0, 2, 4).reshape(s * s, 3 * p * p)
    cw = W[prefix + "embeddings.patch_embedding.weight"].reshape(vc["hidden_size"], -1)
    x = np.concatenate([W[prefix + "embeddings.class_embedding"][None], patches @ cw.T])
    x = x + W[prefix + "embeddings.position_embedding.weight"]
    x = ln(x, W[prefix + "pre_layrnorm.weight"], W[prefix + "pre_layrnorm.bias"])
    hs = [x]
    for i in range(vc["num_hidden_layers"]):
        x = clip_layer(x, W, prefix + "encoder.layers.%d." % i, vc["num_attention_heads"],
                       vc.get("hidden_act", "quick_gelu"), False)
        hs.append(x)
    return hs


def load(dirname):
    with open(os.path.join(dirname, "config.json")) as f:
        cfg = json.load(f)
    W = {k: v.astype(np.float64) for k, v in
         gslib.load_safetensors(os.path.join(dirname, "model.safetensors")).items()}
    with open(os.path.join(dirname, "preprocessor_config.json")) as f:
        pre = json.load(f)
    return cfg, W, pre


def clip_numpy(dirname, images, texts):
    cfg, W, pre = load(dirname)
    vc, tc = cfg["vision_config"], cfg["text_config"]
    size = pre["crop_size"]["height"]
    u8 = np.stack([gslib.clip_preprocess_uint8(p, size) for p in images])
    px = gslib.normalize_uint8(u8)
    img = []
    for x in px:
        h = vision_hidden(W, vc, x.astype(np.float64), "vision_model.")[-1][0]
        h = ln(h, W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"])
        img.append(h @ W["visual_projection.weight"].T)
    tok = bpe.Tokenizer(dirname, tc["max_position_embeddings"])
    ids = [tok(t) for t in texts]
    txt = []
    for seq in ids:
        x = W["text_model.embeddings.token_embedding.weight"][seq] + \
            W["text_model.embeddings.position_embedding.weight"][:len(seq)]
        for i in range(tc["num_hidden_layers"]):
            x = clip_layer(x, W, "text_model.encoder.layers.%d." % i, tc["num_attention_heads"],
                           tc.get("hidden_act", "quick_gelu"), True)
        x = ln(x, W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"])
        txt.append(x[seq.index(tc["eos_token_id"])] @ W["text_projection.weight"].T)
    img, txt = np.array(img), np.array(txt)
    ni = img / np.linalg.norm(img, axis=1, keepdims=True)
    nt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = np.exp(W["logit_scale"]) * ni @ nt.T
    return {"pixel_values": px, "raw_uint8": u8, "ids": ids, "image_features": img,
            "text_features": txt, "logits_per_image": logits}


def clip_torch(dirname, px, ids):
    import torch
    from models import ClipModel
    cfg, W, _ = load(dirname)
    m = ClipModel(cfg)
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in W.items()})
    m.eval()
    eot = cfg["text_config"]["eos_token_id"]
    t = max(len(s) for s in ids)
    ids_t = torch.tensor([s + [eot] * (t - len(s)) for s in ids])
    with torch.no_grad():
        return m.encode_image(torch.from_numpy(px)).numpy(), m.encode_text(ids_t).numpy()


def rms(x, w, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


class LlamaNumpy:
    """LLaMA with a KV cache, rotate-half RoPE, GQA by repeat_interleave."""

    def __init__(self, W, tc):
        self.W, self.c = W, tc
        self.hd = tc["hidden_size"] // tc["num_attention_heads"]
        inv = tc.get("rope_theta", 10000.0) ** (-np.arange(0, self.hd, 2) / self.hd)
        self.inv = inv
        self.cache = [([], []) for _ in range(tc["num_hidden_layers"])]
        self.pos = 0

    def rope(self, x, pos):
        ang = pos * self.inv
        cos, sin = np.cos(np.concatenate([ang, ang])), np.sin(np.concatenate([ang, ang]))
        h = self.hd // 2
        return x * cos + np.concatenate([-x[..., h:], x[..., :h]], -1) * sin

    def step(self, x):
        """x [D] embedding at position self.pos -> logits [V]."""
        W, c, hd = self.W, self.c, self.hd
        nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
        eps = c["rms_norm_eps"]
        for li in range(c["num_hidden_layers"]):
            p = "language_model.model.layers.%d." % li
            h = rms(x, W[p + "input_layernorm.weight"], eps)
            q = (W[p + "self_attn.q_proj.weight"] @ h).reshape(nh, hd)
            k = (W[p + "self_attn.k_proj.weight"] @ h).reshape(nkv, hd)
            v = (W[p + "self_attn.v_proj.weight"] @ h).reshape(nkv, hd)
            q = np.stack([self.rope(qq, self.pos) for qq in q])
            k = np.stack([self.rope(kk, self.pos) for kk in k])
            self.cache[li][0].append(k)
            self.cache[li][1].append(v)
            K = np.stack(self.cache[li][0])  # [T, nkv, hd]
            V = np.stack(self.cache[li][1])
            o = np.zeros((nh, hd))
            for hh in range(nh):
                kv = hh // (nh // nkv)
                a = softmax(K[:, kv] @ q[hh] / math.sqrt(hd))
                o[hh] = a @ V[:, kv]
            x = x + W[p + "self_attn.o_proj.weight"] @ o.reshape(-1)
            h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
            g = W[p + "mlp.gate_proj.weight"] @ h
            u = W[p + "mlp.up_proj.weight"] @ h
            x = x + W[p + "mlp.down_proj.weight"] @ (g / (1 + np.exp(-g)) * u)
        self.pos += 1
        x = rms(x, W["language_model.model.norm.weight"], eps)
        return W["language_model.lm_head.weight"] @ x


def llava_numpy(dirname, images, prompt, max_new=40):
    """images: list of paths (one per <image> in prompt). Returns ids, step-0 logits, tokens."""
    from train_captioner import SpTok
    cfg, W, pre = load(dirname)
    vc, tc = cfg["vision_config"], cfg["text_config"]
    tok = SpTok(os.path.join(dirname, "tokenizer.model"))
    assert tok.image == cfg["image_token_index"]
    size = pre["crop_size"]["height"]
    px = gslib.normalize_uint8(np.stack([gslib.clip_preprocess_uint8(p, size) for p in images]))
    feats = []
    for x in px:
        hs = vision_hidden(W, vc, x.astype(np.float64), "vision_tower.vision_model.")
        f = hs[cfg["vision_feature_layer"]][1:]
        f = act(f @ W["multi_modal_projector.linear_1.weight"].T +
                W["multi_modal_projector.linear_1.bias"], "gelu")
        feats.append(f @ W["multi_modal_projector.linear_2.weight"].T +
                     W["multi_modal_projector.linear_2.bias"])
    ids = tok.prompt(prompt)
    lm = LlamaNumpy(W, tc)
    emb = W["language_model.model.embed_tokens.weight"]
    k = 0
    logits = None
    for i in ids:
        if i == tok.image:
            for row in feats[k]:
                logits = lm.step(row)
            k += 1
        else:
            logits = lm.step(emb[i])
    first = logits.copy()
    out = []
    for _ in range(max_new):
        t = int(np.argmax(logits))
        if t == tc["eos_token_id"]:
            break
        out.append(t)
        logits = lm.step(emb[t])
    return {"pixel_values": px, "input_ids": ids, "logits_step0": first, "generated": out,
            "text": tok.decode(out)}


def llava_torch(dirname, px, prompt, max_new=40):
    import torch
    from models import LlavaModel
    from train_captioner import SpTok, build_batch, greedy
    cfg, W, _ = load(dirname)
    m = LlavaModel(cfg)
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in W.items()})
    m.eval()
    tok = SpTok(os.path.join(dirname, "tokenizer.model"))
    with torch.no_grad():
        f = m.vision_features(torch.from_numpy(px))
        ids = tok.prompt(prompt)
        emb, kp, _ = build_batch(m, tok, [(ids, list(f), [])])
        logits = m.language_model(emb, kp)[0, -1].numpy()
        gen = greedy(m, tok, ids, [list(f)], max_new)[0]
    return logits, gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip")
    ap.add_argument("--captioner")
    ap.add_argument("--golden", help="write golden tensors for the C engine here")
    a = ap.parse_args()
    items = gslib.load_ucm()
    val = [it for it in items if it["split"] == "val"]
    pick = [val[i] for i in (0, 50, 100, 150)]
    paths = [os.path.join(gslib.UCM_DIR, "imgs", it["filename"]) for it in pick]
    ok = True
    if a.clip:
        texts = [gslib.TEMPLATE.format("agricultural"), pick[1]["captions"][0],
                 "Tennis court &amp; <b>TREES</b>, 2 courts!", ""]
        r = clip_numpy(a.clip, paths, texts)
        ti, tt = clip_torch(a.clip, r["pixel_values"], r["ids"])
        di = np.abs(ti - r["image_features"]).max()
        dt = np.abs(tt - r["text_features"]).max()
        scale = max(np.abs(r["image_features"]).max(), np.abs(r["text_features"]).max())
        print("clip: max |torch - numpy| image %.2e text %.2e (feature scale %.2f)" % (di, dt, scale))
        print("clip: ids", r["ids"][:2])
        ok &= bool(di < 1e-3 * max(1, scale) and dt < 1e-3 * max(1, scale))
        if a.golden:
            d = os.path.join(a.golden, "clip")
            os.makedirs(d, exist_ok=True)
            eot = json.load(open(os.path.join(a.clip, "config.json")))["text_config"]["eos_token_id"]
            ids = np.array([s + [eot] * (77 - len(s)) for s in r["ids"]], np.int64)
            gslib.save_safetensors(os.path.join(d, "expected.safetensors"), {
                "pixel_values": r["pixel_values"], "raw_resized_uint8_hwc": r["raw_uint8"],
                "input_ids": ids, "image_features": r["image_features"].astype(np.float32),
                "text_features": r["text_features"].astype(np.float32),
                "logits_per_image": r["logits_per_image"].astype(np.float32)})
            gslib.write_json(os.path.join(d, "cases.json"), {
                "images": [os.path.relpath(p, gslib.ROOT) for p in paths], "texts": texts,
                "ids": r["ids"]})
    if a.captioner:
        from train_captioner import PROMPT_PAIR, PROMPT_SINGLE
        gold = {}
        for name, prompt, imgs in (("single", PROMPT_SINGLE, paths[:1]),
                                   ("pair", PROMPT_PAIR, paths[1:3])):
            r = llava_numpy(a.captioner, imgs, prompt)
            lt, gt = llava_torch(a.captioner, r["pixel_values"], prompt)
            d = np.abs(lt - r["logits_step0"]).max()
            same = gt == r["generated"]
            print("llava %s: max |torch - numpy| step-0 logits %.2e, greedy ids equal: %s" %
                  (name, d, same))
            print("llava %s: ids %s -> %r" % (name, r["input_ids"], r["text"]))
            ok &= bool(d < 1e-3 and same)
            gold[name] = r
        if a.golden:
            d = os.path.join(a.golden, "captioner")
            os.makedirs(d, exist_ok=True)
            t = {}
            for name, r in gold.items():
                t[name + ".pixel_values"] = r["pixel_values"]
                t[name + ".input_ids"] = np.array(r["input_ids"], np.int64)
                t[name + ".logits_step0"] = r["logits_step0"].astype(np.float32)
                t[name + ".generated_ids"] = np.array(r["generated"], np.int64)
            gslib.save_safetensors(os.path.join(d, "expected.safetensors"), t)
            gslib.write_json(os.path.join(d, "cases.json"), {
                name: {"images": [os.path.relpath(p, gslib.ROOT) for p in imgs],
                       "input_ids": gold[name]["input_ids"],
                       "generated_ids": gold[name]["generated"], "text": gold[name]["text"]}
                for name, imgs in (("single", paths[:1]), ("pair", paths[1:3]))})
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
