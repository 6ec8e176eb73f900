#!/usr/bin/python3
"""Train the default CLIP (ViT image tower + text transformer) on the UCM-captions train split
and save it in the Hugging Face CLIPModel layout (config.json, model.safetensors F16,
preprocessor_config.json, vocab.json, merges.txt, tokenizer_config.json).

    nice -n 10 /usr/bin/python3 tools/train/train_clip.py --out models/default/clip

Train split only: captions, plus the train split's class labels as extra captions
("a satellite image of {class}." and two other forms). The val split is only evaluated.
Phases (budgets by wall time): 0. a small CNN teacher (teacher.py) on the class labels, or
--teacher with saved ones (train_all.sh trains two with --teacher-only and passes both);
1. the ViT image tower on the class labels (CutMix/mixup, label smoothing), the teachers'
mean soft predictions, their pooled features (--feat-weight) and their third-stage feature
maps matched by the patch tokens of one layer (--tok-weight), and the caption words; 2. the
tower frozen, the text tower and both projections contrastively. Checkpoints go to --work
(resumable with --resume).
"""
import argparse
import json
import math
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
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import gslib  # noqa: E402
import teacher as teacher_mod  # noqa: E402
from models import ClipModel  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="models/default/clip")
    ap.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "runs", "clip"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--vwidth", type=int, default=128)
    ap.add_argument("--vlayers", type=int, default=4)
    ap.add_argument("--vheads", type=int, default=2)
    ap.add_argument("--twidth", type=int, default=128)
    ap.add_argument("--tlayers", type=int, default=2)
    ap.add_argument("--theads", type=int, default=2)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--merges", type=int, default=1500)
    ap.add_argument("--p-prompt", type=float, default=0.3, help="share of class-label captions")
    ap.add_argument("--cls-weight", type=float, default=1.0, help="zero-shot classifier loss")
    ap.add_argument("--crop-min", type=float, default=0.25)
    ap.add_argument("--eval-every", type=float, default=3.0, help="minutes between val evals")
    ap.add_argument("--vision-minutes", type=float, default=58.0, help="phase 1 wall budget")
    ap.add_argument("--align-minutes", type=float, default=6.0, help="phase 2 wall budget")
    ap.add_argument("--align-steps", type=int, default=0,
                    help="phase 2 budget in steps instead of --align-minutes (repeatable "
                    "whatever the machine's load)")
    ap.add_argument("--align-ema", type=float, default=0.0,
                    help="EMA decay of the phase-2 weights (text tower, projections), 0: off; "
                    "the export uses the average")
    ap.add_argument("--align-lr", type=float, default=0.0,
                    help="phase 2 peak learning rate (0: --lr, as before this option)")
    ap.add_argument("--align-batch", type=int, default=256)
    ap.add_argument("--views", type=int, default=4, help="cached train views for phase 2")
    ap.add_argument("--word-weight", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.99, help="EMA decay of the image tower")
    ap.add_argument("--teacher-minutes", type=float, default=24.0, help="CNN teacher budget")
    ap.add_argument("--distill", type=float, default=0.7, help="weight of the teacher's targets")
    ap.add_argument("--teacher-size", type=int, default=0,
                    help="teacher input size (0: --image-size); the augmented crops are made at "
                    "the larger of the two and resized for the other")
    ap.add_argument("--teacher", default="", help="saved teacher.pt files, comma-separated (their ensemble), instead of "
                    "training one")
    ap.add_argument("--teacher-only", action="store_true", help="stop after the teacher")
    ap.add_argument("--teacher-init", default="",
                    help="train the teacher on from this teacher.pt (a further cosine cycle; "
                    "its input size replaces --teacher-size)")
    ap.add_argument("--teacher-lr", type=float, default=0.1, help="teacher peak learning rate")
    ap.add_argument("--feat-weight", type=float, default=1.0,
                    help="weight of matching the teacher's pooled features (cosine)")
    ap.add_argument("--tok-weight", type=float, default=1.0,
                    help="weight of matching the teacher's third-stage feature map with the "
                    "patch tokens of layer --tok-layer (cosine per token)")
    ap.add_argument("--tok-layer", type=int, default=2)
    ap.add_argument("--mix", type=float, default=0.8, help="probability of CutMix/mixup")
    ap.add_argument("--src-size", type=int, default=128, help="cached source image size")
    ap.add_argument("--patch-init", type=int, default=1, help="PCA start for the patch filters")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-vision", default="",
                    help="start phase 1 from the (EMA) image tower and heads of a saved "
                    "vision.pt, with a fresh schedule (a second cosine cycle); a narrower "
                    "saved tower is widened to --vwidth without changing its function")
    ap.add_argument("--soup", default="",
                    help="instead of training phase 1, average the finished image towers and "
                    "heads of these vision.pt files (comma-separated; runs of the same "
                    "--init-vision, a weight-space 'model soup') and go on to phase 2")
    return ap.parse_args()


def make_config(a, vocab_size, sot, eot):
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "projection_dim": a.embed,
        "torch_dtype": "float16",
        "transformers_version": "4.40.2",
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": vocab_size,
            "hidden_size": a.twidth,
            "intermediate_size": 4 * a.twidth,
            "num_hidden_layers": a.tlayers,
            "num_attention_heads": a.theads,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05,
            "projection_dim": a.embed,
            "bos_token_id": sot,
            "eos_token_id": eot,
            "pad_token_id": eot,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "initializer_factor": 1.0,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": a.vwidth,
            "intermediate_size": 4 * a.vwidth,
            "num_hidden_layers": a.vlayers,
            "num_attention_heads": a.vheads,
            "image_size": a.image_size,
            "patch_size": a.patch,
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05,
            "projection_dim": a.embed,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "initializer_factor": 1.0,
        },
    }


def preprocessor_config(size):
    return {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(gslib.CLIP_MEAN),
        "image_processor_type": "CLIPImageProcessor",
        "image_std": list(gslib.CLIP_STD),
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }


def pad_batch(seqs, pad):
    t = max(len(s) for s in seqs)
    out = torch.full((len(seqs), t), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


@torch.no_grad()
def evaluate(model, tok, val, val_px, classes, bs=105):
    """Zero-shot top-1/top-5 (template raw class names, as labels.csv) and retrieval on val."""
    model.eval()
    img = torch.cat([model.encode_image(torch.from_numpy(val_px[i:i + bs]))
                     for i in range(0, len(val_px), bs)])
    img = F.normalize(img, dim=-1)
    prompts = [gslib.TEMPLATE.format(c) for c in classes]
    eot = tok.eot
    txt = F.normalize(model.encode_text(pad_batch([tok(p) for p in prompts], eot)), dim=-1)
    logits = img @ txt.T
    lab = torch.tensor([classes.index(it["cls"]) for it in val])
    top = logits.topk(5, dim=-1).indices
    top1 = float((top[:, 0] == lab).float().mean())
    top5 = float((top == lab[:, None]).any(-1).float().mean())
    caps, owner = [], []
    for i, it in enumerate(val):
        for c in it["captions"]:
            caps.append(c)
            owner.append(i)
    ct = torch.cat([model.encode_text(pad_batch([tok(c) for c in caps[i:i + 256]], eot))
                    for i in range(0, len(caps), 256)])
    ct = F.normalize(ct, dim=-1)
    r = gslib.retrieval_metrics((img @ ct.T).numpy(), np.array(owner))
    model.train()
    return {"top1": top1, "top5": top5, **r}


def export(model, cfg, a, work_tok_dir, out):
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().float().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    gslib.save_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    gslib.write_json(os.path.join(out, "config.json"), cfg)
    gslib.write_json(os.path.join(out, "preprocessor_config.json"), preprocessor_config(a.image_size))
    for f in ("vocab.json", "merges.txt"):
        with open(os.path.join(work_tok_dir, f), "rb") as src, open(os.path.join(out, f), "wb") as dst:
            dst.write(src.read())
    tc = cfg["text_config"]
    gslib.write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": bpe.SOT, "eos_token": bpe.EOT, "pad_token": bpe.EOT, "unk_token": bpe.EOT,
        "errors": "replace", "clean_up_tokenization_spaces": True})
    gslib.write_json(os.path.join(out, "special_tokens_map.json"), {
        "bos_token": bpe.SOT, "eos_token": bpe.EOT, "pad_token": bpe.EOT, "unk_token": bpe.EOT})
    assert tc["eos_token_id"] == len(json.load(open(os.path.join(out, "vocab.json")))) - 1


def caption_words(train, min_images=5):
    """Words (lower case) that occur in the captions of at least min_images train images."""
    cnt = {}
    for it in train:
        for w in {w for c in it["captions"] for w in gslib.caption_tokens(c)}:
            cnt[w] = cnt.get(w, 0) + 1
    return sorted(w for w, n in cnt.items() if n >= min_images)


def cosine_lr(base, elapsed, budget, warm_frac=0.03):
    warm = warm_frac * budget
    if elapsed < warm:
        return base * elapsed / warm
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (elapsed - warm) / (budget - warm))))


def phase_vision(a, model, train, classes, aug, val, val_px, work, saved_teachers):
    """Phase 1: the image tower alone, supervised by the train split's class labels
    (cross-entropy, label smoothing, CutMix/mixup), by the soft predictions of a small CNN
    teacher trained first on the same data (DeiT-style distillation), and by the words of
    each image's captions (multi-label). saved_teachers: (path, net, input size) of the
    --teacher files, loaded once by main()."""
    vm = model.vision_model
    teacher = None
    tsize = a.teacher_size or a.image_size
    if a.teacher_minutes > 0 or a.teacher:
        tpath = os.path.join(work, "teacher.pt")
        val_lab = torch.tensor([classes.index(it["cls"]) for it in val])
        if not saved_teachers and a.resume and os.path.exists(tpath):
            saved_teachers = [(tpath, *teacher_mod.load_teacher(tpath, len(classes)))]
        if saved_teachers:
            nets, sizes = [], []
            # A soup needs the teachers' shapes only (for the heads), not their accuracy.
            for path, net, size in saved_teachers:
                if a.soup:
                    gslib.log("teacher: loaded %s (%d px)" % (path, size))
                else:
                    acc = teacher_mod.accuracy(net, gslib.load_eval_images(val, size), val_lab)
                    gslib.log("teacher: loaded %s (%d px, val top1 %.3f)" % (path, size, acc))
                nets.append(net)
                sizes.append(size)
            teacher = teacher_mod.Ensemble(nets, sizes)
            if len(nets) > 1 and not a.soup:
                acc = teacher_mod.accuracy(teacher, gslib.load_eval_images(val, max(sizes)),
                                           val_lab)
                gslib.log("teacher ensemble: val top1 %.3f" % acc)
        else:
            init = None
            if a.teacher_init:
                init, tsize = teacher_mod.load_teacher(a.teacher_init, len(classes))
            tval = gslib.load_eval_images(val, tsize)
            if init is not None:
                gslib.log("teacher: from %s (%d px, val top1 %.3f)" % (
                    a.teacher_init, tsize, teacher_mod.accuracy(init, tval, val_lab)))
            teacher, n = teacher_mod.train_teacher(
                a, train, classes, aug.at(tsize), a.teacher_minutes, a.seed + 3,
                stem_convs=teacher_mod.stem_convs_for(tsize), init=init, lr=a.teacher_lr)
            teacher_mod.save_teacher(tpath, teacher, tsize)
            acc = teacher_mod.accuracy(teacher, tval, val_lab)
            gslib.log("teacher: %d steps at %d px, val top1 %.3f" % (n, tsize, acc))
            teacher = teacher_mod.Ensemble([teacher], [tsize])
        for p in teacher.parameters():
            p.requires_grad = False
        if a.teacher_only:
            sys.exit(0)
    words = caption_words(train)
    wt = torch.zeros(len(train), len(words))
    for i, it in enumerate(train):
        for w in {w for c in it["captions"] for w in gslib.caption_tokens(c)}:
            if w in words:
                wt[i, words.index(w)] = 1.0
    d = vm.post_layernorm.normalized_shape[0]
    heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(d, len(classes)),
                                 "words": torch.nn.Linear(d, len(words))})
    if teacher is not None and a.feat_weight > 0:
        heads["feat"] = torch.nn.Linear(d, teacher.fc.in_features)
    if teacher is not None and a.tok_weight > 0:
        heads["tok"] = torch.nn.Linear(d, teacher.map_channels)
    grid = a.image_size // a.patch
    if a.init_vision:
        c0 = torch.load(a.init_vision)
        sd, ema0, h0 = widen_tower(vm, dict(c0["vm"]), list(c0["ema"]), dict(c0["heads"]),
                                   a.init_vision, a.seed)
        sd, ema0 = adapt_tower(vm, sd, ema0, a.init_vision)
        vm.load_state_dict(sd)
        with torch.no_grad():
            for p, e in zip(vm.parameters(), ema0):
                p.copy_(e)
        # Heads whose width follows the teachers (feat, tok) start fresh when those changed.
        own = heads.state_dict()
        keep = {k: v for k, v in h0.items() if k in own and own[k].shape == v.shape}
        heads.load_state_dict(keep, strict=False)
        if len(keep) < len(own):
            gslib.log("vision: heads started fresh: %s" % ", ".join(sorted(set(own) - set(keep))))
        gslib.log("vision: starting from %s (step %d)" % (a.init_vision, c0["state"]["step"]))
    params = list(vm.parameters()) + list(heads.parameters())
    decay = [p for p in params if p.ndim >= 2 and p is not vm.embeddings.position_embedding.weight]
    other = [p for p in params if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": other, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.98))
    cls_idx = torch.tensor([classes.index(it["cls"]) for it in train])
    val_lab = torch.tensor([classes.index(it["cls"]) for it in val])
    ckpt = os.path.join(work, "vision.pt")
    st = {"step": 0, "elapsed": 0.0, "history": []}
    if a.soup:
        return soup_vision(a.soup.split(","), vm, heads, opt, ckpt, val_px, val_lab)
    if a.resume and os.path.exists(ckpt):
        c = torch.load(ckpt)
        vm.load_state_dict(c["vm"])
        heads.load_state_dict(c["heads"])
        opt.load_state_dict(c["opt"])
        st = c["state"]
        gslib.log("vision: resumed at step %d (%.1f min)" % (st["step"], st["elapsed"] / 60))
        if st.get("done"):
            return st
    # An exponential moving average of the tower's weights is what phase 2 and the export use.
    ema = [p.detach().clone() for p in vm.parameters()]
    if a.resume and os.path.exists(ckpt) and "ema" in c:
        ema = c["ema"]
    budget = a.vision_minutes * 60
    rng = random.Random(a.seed * 7 + st["step"])
    t0 = time.time() - st["elapsed"]
    last = time.time()
    perm = []
    vm.train()
    while time.time() - t0 < budget:
        lr = cosine_lr(a.lr, time.time() - t0, budget)
        for g in opt.param_groups:
            g["lr"] = lr
        if len(perm) < a.batch:
            perm = list(range(len(train)))
            rng.shuffle(perm)
        idx, perm = perm[:a.batch], perm[a.batch:]
        x = aug(idx, rng)
        t = F.one_hot(cls_idx[idx], len(classes)).float() * 0.9 + 0.1 / len(classes)
        tw = wt[idx]
        if a.mix > 0:
            x, t, mp, lam = teacher_mod.mix_batch(x, t, rng, a.mix)
            tw = lam * tw + (1 - lam) * tw[mp]
        hs = vm.hidden_states(gslib.resize_batch(x, a.image_size))
        f = vm.post_layernorm(hs[-1][:, 0])
        logp = heads["cls"](f).log_softmax(-1)
        l_cls = -(t * logp).sum(-1).mean()
        l_feat = torch.zeros(())
        l_tok = torch.zeros(())
        if teacher is not None:
            with torch.no_grad():
                pt, ft, mt = teacher.predict_maps(x, grid)
            l_cls = (1 - a.distill) * l_cls - a.distill * (pt * logp).sum(-1).mean()
            if "feat" in heads:
                l_feat = 1 - F.cosine_similarity(heads["feat"](f), ft, dim=-1).mean()
            if "tok" in heads:
                l_tok = 1 - F.cosine_similarity(heads["tok"](hs[a.tok_layer][:, 1:]), mt,
                                                dim=-1).mean()
        l_w = F.binary_cross_entropy_with_logits(heads["words"](f), tw)
        loss = l_cls + a.word_weight * l_w + a.feat_weight * l_feat + a.tok_weight * l_tok
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        st["step"] += 1
        with torch.no_grad():
            d = min(a.ema, (1 + st["step"]) / (10 + st["step"]))
            for e, p in zip(ema, vm.parameters()):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        if st["step"] % 20 == 0:
            gslib.log("vision step %d ep %.1f lr %.2e cls %.3f words %.3f feat %.3f tok %.3f" % (
                st["step"], st["step"] * a.batch / len(train), lr, l_cls.item(), l_w.item(),
                l_feat.item(), l_tok.item()))
        if time.time() - last > a.eval_every * 60:
            last = time.time()
            vm.eval()
            with torch.no_grad(), swapped(vm, ema):
                acc = head_top1(vm, heads, val_px, val_lab)
            vm.train()
            st["elapsed"] = time.time() - t0
            st["history"].append({"step": st["step"], "min": st["elapsed"] / 60, "head_top1": acc})
            gslib.log("VAL vision step %d: linear-head top1 %.3f" % (st["step"], acc))
            save_vision(ckpt, vm, heads, opt, st, ema)
    vm.eval()
    with torch.no_grad():
        for e, p in zip(ema, vm.parameters()):
            p.copy_(e)
        acc = head_top1(vm, heads, val_px, val_lab)
    st["elapsed"] = time.time() - t0
    st["history"].append({"step": st["step"], "min": st["elapsed"] / 60, "head_top1": acc})
    st["done"] = True
    gslib.log("vision done: %d steps, linear-head val top1 %.3f" % (st["step"], acc))
    save_vision(ckpt, vm, heads, opt, st, ema)
    return st


def soup_vision(paths, vm, heads, opt, ckpt, val_px, val_lab):
    """Phase 1 as the mean of finished phase-1 checkpoints (their EMA towers and heads):
    a uniform model soup. The runs must share an architecture and should share a start
    (--init-vision), or the mean lands between basins; the linear-head top-1 of each and of
    the soup is logged to show it did not."""
    cks = [torch.load(p) for p in paths]
    for p, c in zip(paths, cks):
        if not c["state"].get("done"):
            sys.exit("train_clip: --soup %s: phase 1 of that run has not finished" % p)
    accs = []
    with torch.no_grad():
        for c in cks:
            vm.load_state_dict(c["vm"])
            heads.load_state_dict(common(heads, c["heads"]), strict=False)
            vm.eval()
            accs.append(head_top1(vm, heads, val_px, val_lab))
        for name, sd in (("vm", vm), ("heads", heads)):
            mean = {k: sum(c[name][k].float() for c in cks) / len(cks)
                    for k in common(sd, cks[0][name])}
            sd.load_state_dict(mean, strict=name == "vm")
        acc = head_top1(vm, heads, val_px, val_lab)
    gslib.log("vision: soup of %d towers, linear-head val top1 %s -> %.3f" % (
        len(cks), " ".join("%.3f" % x for x in accs), acc))
    st = {"step": sum(c["state"]["step"] for c in cks), "elapsed": 0.0, "done": True,
          "history": [{"step": 0, "min": 0.0, "head_top1": acc, "soup": list(paths),
                       "soup_head_top1": accs}]}
    save_vision(ckpt, vm, heads, opt, st, list(vm.parameters()))
    return st


def head_top1(vm, heads, val_px, val_lab):
    """Val top-1 of the tower's linear class head (vm in eval mode, under no_grad)."""
    return float((heads["cls"](vm(torch.from_numpy(val_px))).argmax(-1) == val_lab)
                 .float().mean())


def save_vision(ckpt, vm, heads, opt, st, ema):
    """The phase-1 checkpoint (resumable; --init-vision and --soup read it)."""
    gslib.save_torch(ckpt, {"vm": vm.state_dict(), "heads": heads.state_dict(),
                            "opt": opt.state_dict(), "state": st,
                            "ema": [e.detach() for e in ema]})


def common(module, sd):
    """The entries of state dict sd that module has, with the same shape (heads that follow
    the teachers exist only when the run had them)."""
    own = module.state_dict()
    return {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}


class swapped:
    """Temporarily load the EMA weights into a module."""

    def __init__(self, module, weights):
        self.m, self.w = module, weights

    def __enter__(self):
        self.saved = [p.detach().clone() for p in self.m.parameters()]
        for p, e in zip(self.m.parameters(), self.w):
            p.data.copy_(e)

    def __exit__(self, *exc):
        for p, s in zip(self.m.parameters(), self.saved):
            p.data.copy_(s)


@torch.no_grad()
def pooled_views(vm, aug, n, n_views, rng, bs=128):
    """[n, n_views, D]: views 0..7 are the dihedral transforms of the whole image (quarter
    turns, then mirrored), further views random augmentations."""
    vm.eval()
    out = torch.zeros(n, n_views, vm.post_layernorm.normalized_shape[0])
    for i in range(0, n, bs):
        idx = list(range(i, min(i + bs, n)))
        plain = aug.plain(idx)
        for v in range(n_views):
            if v < 8:
                x = torch.flip(plain, dims=(-1,)) if v >= 4 else plain
                x = torch.rot90(x, v % 4, dims=(-2, -1))
            else:
                x = aug(idx, rng)
            out[idx, v] = vm(x)
    return out


def phase_align(a, model, tok, train, classes, feats, val, val_px, work):
    """Phase 2: the image tower frozen (its pooled features cached for several views); the
    visual projection, the text tower and the logit scale learn the multi-positive
    contrastive loss on captions + class-label captions, plus the zero-shot classifier loss."""
    cap_ids = [[tuple(tok(c)) for c in it["captions"]] for it in train]
    prm_ids = {c: [tuple(tok(p)) for p in gslib.prompt_texts(c)] for c in classes}
    pos_sets = [set(cap_ids[i]) | set(prm_ids[it["cls"]]) for i, it in enumerate(train)]
    cls_idx = torch.tensor([classes.index(it["cls"]) for it in train])
    zs_ids = pad_batch([tok(gslib.TEMPLATE.format(c)) for c in classes], tok.eot)
    params = list(model.text_model.parameters()) + list(model.text_projection.parameters()) + \
        list(model.visual_projection.parameters()) + [model.logit_scale]
    decay = [p for p in params if p.ndim >= 2 and p is not
             model.text_model.embeddings.position_embedding.weight]
    other = [p for p in params if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": other, "weight_decay": 0.0}], lr=a.align_lr,
                            betas=(0.9, 0.98))
    st = {"step": 0, "history": []}
    budget = a.align_minutes * 60
    rng = random.Random(a.seed * 11)
    t0 = time.time()
    last = time.time()
    perm = []
    model.text_model.train()
    vdrop = torch.nn.Dropout(0.1)
    ema = [p.detach().clone() for p in params] if a.align_ema > 0 else None
    def progress():  # (done, budget) in steps or seconds
        if a.align_steps:
            return st["step"], a.align_steps
        return time.time() - t0, budget
    while True:
        done, total = progress()
        if done >= total:
            break
        lr = cosine_lr(a.align_lr, done, total)
        for g in opt.param_groups:
            g["lr"] = lr
        if len(perm) < a.align_batch:
            perm = list(range(len(train)))
            rng.shuffle(perm)
        idx, perm = perm[:a.align_batch], perm[a.align_batch:]
        texts = []
        for i in idx:
            if rng.random() < a.p_prompt:
                texts.append(rng.choice(prm_ids[train[i]["cls"]]))
            else:
                texts.append(rng.choice(cap_ids[i]))
        uniq = sorted(set(texts))
        pos = torch.tensor([[float(t in pos_sets[i]) for t in uniq] for i in idx])
        f = feats[idx, torch.randint(0, feats.shape[1], (len(idx),))]
        img = F.normalize(model.visual_projection(vdrop(f)), dim=-1)
        txt = F.normalize(model.encode_text(pad_batch(list(uniq), tok.eot)), dim=-1)
        zs = F.normalize(model.encode_text(zs_ids), dim=-1)
        scale = model.logit_scale.exp()
        logits = scale * img @ txt.T
        l_i2t = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        has = pos.sum(0) > 0
        pt = pos.T[has]
        l_t2i = -(pt / pt.sum(1, keepdim=True) * logits.T[has].log_softmax(1)).sum(1).mean()
        l_cls = F.cross_entropy(scale * img @ zs.T, cls_idx[idx])
        loss = 0.5 * (l_i2t + l_t2i) + a.cls_weight * l_cls
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
            if ema is not None:
                d = min(a.align_ema, (1 + st["step"]) / (10 + st["step"]))
                for e, p in zip(ema, params):
                    e.mul_(d).add_(p.detach(), alpha=1 - d)
        st["step"] += 1
        if st["step"] % 50 == 0:
            gslib.log("align step %d lr %.2e loss %.3f (i2t %.3f t2i %.3f cls %.3f) scale %.1f" % (
                st["step"], lr, loss.item(), l_i2t.item(), l_t2i.item(), l_cls.item(), scale.item()))
        if time.time() - last > a.eval_every * 60:
            last = time.time()
            r = evaluate(model, tok, val, val_px, classes)
            model.vision_model.eval()
            st["history"].append({"step": st["step"], "min": (time.time() - t0) / 60, **r})
            gslib.log("VAL align step %d: top1 %.3f top5 %.3f mR %.1f" % (
                st["step"], r["top1"], r["top5"], r["mR"]))
    if ema is not None:
        with torch.no_grad():
            for e, p in zip(ema, params):
                p.copy_(e)
    return st


def main():
    a = parse()
    a.align_lr = a.align_lr or a.lr
    gslib.set_threads(a.threads)
    gslib.seed_all(a.seed)
    t_start = time.time()
    os.makedirs(a.work, exist_ok=True)
    items = gslib.load_ucm()
    train = [it for it in items if it["split"] == "train"]
    val = [it for it in items if it["split"] == "val"]
    classes = gslib.class_names(items)

    # Tokenizer: learned from the train captions + the class-label captions.
    tok_dir = os.path.join(a.work, "tokenizer")
    os.makedirs(tok_dir, exist_ok=True)
    if not (a.resume and os.path.exists(os.path.join(tok_dir, "merges.txt"))):
        texts = [c for it in train for c in it["captions"]]
        texts += [p for it in train for p in gslib.prompt_texts(it["cls"])]
        merges = bpe.learn(texts, a.merges)
        n_vocab = bpe.save(merges, tok_dir)
        gslib.log("BPE: %d merges, vocab %d" % (len(merges), n_vocab))
    tok = bpe.Tokenizer(tok_dir)
    cfg = make_config(a, len(tok.encoder), tok.sot, tok.eot)

    gslib.log("loading images")
    src = gslib.load_source_images(train, size=a.src_size)
    # Crops are made at the larger of the student's and the teacher's size; `saug` gives the
    # student's size.
    saved_teachers = [(p, *teacher_mod.load_teacher(p, len(classes)))
                      for p in a.teacher.split(",")] if a.teacher else []
    sizes = [a.image_size, a.teacher_size] + [size for _, _, size in saved_teachers]
    aug = gslib.Augment(src, max(sizes), scale=(a.crop_min, 1.0))
    saug = aug.at(a.image_size)
    val_px = gslib.load_eval_images(val, a.image_size)

    model = ClipModel(cfg)
    if a.patch_init:
        init_patch_embedding(model.vision_model.embeddings.patch_embedding, saug, a.seed)
    gslib.log("params %.2f M (vision %.2f M)" % (
        sum(p.numel() for p in model.parameters()) / 1e6,
        sum(p.numel() for p in model.vision_model.parameters()) / 1e6))

    hist = {}
    hist["vision"] = phase_vision(a, model, train, classes, aug, val, val_px, a.work,
                                  saved_teachers)["history"]
    for p in model.vision_model.parameters():
        p.requires_grad = False
    gslib.log("caching %d views of the train images" % a.views)
    feats = pooled_views(model.vision_model, saug, len(train), a.views, random.Random(a.seed + 5))
    hist["align"] = phase_align(a, model, tok, train, classes, feats, val, val_px,
                                a.work)["history"]
    r = evaluate(model, tok, val, val_px, classes)
    hist["final"] = r
    gslib.log("FINAL: %s" % json.dumps(r))
    export(model, cfg, a, tok_dir, a.out)
    with open(os.path.join(a.work, "train_log.json"), "w") as f:
        json.dump({"args": vars(a), "history": hist, "wall_s": time.time() - t_start}, f, indent=1)
    gslib.log("saved %s (total wall %.1f min)" % (a.out, (time.time() - t_start) / 60))


def widen_tower(vm, sd, ema, heads, path, seed):
    """A saved tower of width d0 starts one of width k * d0 (k an integer; k times the heads,
    so the head size stays) computing the same function, Net2Net-style: every residual, query /
    key / value and MLP channel becomes k copies. A linear map between copied spaces takes the
    old weight split over the k input copies with random shares that sum to one for every
    output copy (so each copy of an output equals the old output, while the copies' weights,
    and so their gradients, differ: training can pull them apart); LayerNorm sees each value k
    times, so its mean and variance are unchanged. The heads (classes, words, teacher
    features) read the copied features with split weights the same way. vision.pt does not
    record the head count: the saved tower must have had --vheads / k heads (the same head
    size), as every tower of the recipe (2 heads of 64) has. Returns the state dict, the EMA
    list (vm.parameters() order) and the heads' state dict."""
    d = vm.post_layernorm.normalized_shape[0]
    d0 = sd["post_layernorm.weight"].shape[0]
    if d0 == d:
        return sd, ema, heads
    nh = vm.encoder.layers[0].self_attn.heads
    if d % d0 or nh % (d // d0):
        sys.exit("train_clip: %s: width %d cannot grow to %d with %d heads (an integer "
                 "factor, the heads a multiple of it)" % (path, d0, d, nh))
    k = d // d0
    gen = torch.Generator().manual_seed(seed + 17)

    def shares(shape):  # [k, *shape], summing to 1 over the first axis
        s = torch.rand((k, *shape), generator=gen) + 0.5
        return s / s.sum(0)

    def copied_in(w):  # w [out, in] reads copied inputs
        s = shares(w.shape)
        return torch.cat([w * s[i] for i in range(k)], 1)

    def both_copied(w):  # copied inputs, copied outputs
        return torch.cat([copied_in(w) for _ in range(k)], 0)

    def widen(name, w):
        if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight",
                          "out_proj.weight", "fc1.weight", "fc2.weight")):
            return both_copied(w)
        if name == "embeddings.position_embedding.weight":
            return w.repeat(1, k)
        # biases, LayerNorm weights, the class embedding, the patch filters: out copies
        return w.repeat(k, *([1] * (w.ndim - 1)))
    names = [n for n, _ in vm.named_parameters()]
    sd = {n: widen(n, w) for n, w in sd.items()}
    ema = [widen(n, w) for n, w in zip(names, ema)]
    heads = {n: copied_in(w) if n.endswith("weight") else w for n, w in heads.items()}
    gslib.log("vision: widened %d -> %d (%d -> %d heads of %d)" % (
        d0, d, nh // k, nh, d // nh))
    return sd, ema, heads


def adapt_tower(vm, sd, ema, path):
    """A saved tower starts one with another image size, patch or grid. A larger patch by a
    factor f (64 px / patch 8 -> 128 px / patch 16, same grid): each old filter is spread over
    f x f pixels and divided by f^2, which is the old filter applied to the image averaged down
    by f. A smaller patch by f (128 px / patch 16 -> 128 px / patch 8): each new filter sums
    f x f blocks of the old one, which is the old filter applied to the image upsampled f
    times (nearest). A larger grid: the patch-position embeddings are resized bicubically (the
    class token's row kept), as ViTs are fine-tuned at a higher resolution. Returns the state
    dict and the EMA list (in vm.parameters() order) adapted."""
    key = "embeddings.patch_embedding.weight"
    pos = "embeddings.position_embedding.weight"
    own = vm.state_dict()
    names = [n for n, _ in vm.named_parameters()]

    def both(fn, name):
        i = names.index(name)
        sd[name] = fn(sd[name])
        ema[i] = fn(ema[i])
    n0, n = sd[pos].shape[0] - 1, own[pos].shape[0] - 1
    g0, g = math.isqrt(n0), math.isqrt(n)
    if n0 != n:
        if g0 * g0 != n0 or g * g != n:
            sys.exit("train_clip: %s: %d patch positions, this tower %d: not square grids" % (
                path, n0, n))

        def regrid(w):
            grid = w[1:].T.reshape(1, -1, g0, g0)
            grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=False)
            return torch.cat([w[:1], grid.reshape(-1, n).T], 0)
        both(regrid, pos)
        gslib.log("vision: position embeddings resized %dx%d -> %dx%d" % (g0, g0, g, g))
    p0, p = sd[key].shape[-1], own[key].shape[-1]
    if p0 == p:
        return sd, ema
    if max(p, p0) % min(p, p0):
        sys.exit("train_clip: %s: patch %d and patch %d: one must divide the other" % (
            path, p0, p))
    if p > p0:
        f = p // p0
        both(lambda w: w.repeat_interleave(f, 2).repeat_interleave(f, 3) / (f * f), key)
        gslib.log("vision: patch filters widened %d -> %d px" % (p0, p))
    else:
        f = p0 // p
        both(lambda w: F.avg_pool2d(w, f) * (f * f), key)
        gslib.log("vision: patch filters narrowed %d -> %d px (block sums)" % (p0, p))
    return sd, ema


@torch.no_grad()
def init_patch_embedding(conv, aug, seed, n=20000):
    """Data-dependent start: the patch filters are the leading PCA directions of random train
    patches (whitened), the remaining filters stay random."""
    rng = random.Random(seed)
    x = aug(rng.sample(range(aug.src.shape[0]), 256), rng)
    p = conv.kernel_size[0]
    patches = F.unfold(x, p, stride=p).transpose(1, 2).reshape(-1, 3 * p * p)
    patches = patches[torch.randperm(patches.shape[0])[:n]]
    patches = patches - patches.mean(0)
    u, s, v = torch.linalg.svd(patches, full_matrices=False)
    d = conv.out_channels
    k = min(d // 2, v.shape[0])
    w = v[:k] / (s[:k, None] / math.sqrt(patches.shape[0]) + 1e-2)
    conv.weight[:k] = w.view(k, 3, p, p) * 0.5


if __name__ == "__main__":
    main()
