"""A small convolutional teacher for the ViT image tower (DeiT-style distillation).

A ViT trained from scratch on 1680 images over-fits (train loss falls, val accuracy stays at
about 40 %); a CNN's locality bias generalises better on so little data. The CNN is trained
on the same train split and augmentation, then its soft predictions on each augmented batch
become an extra target for the ViT. The CNN is a training aid only; it is not saved in the
model folders."""
import math
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import gslib


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class SmallResNet(nn.Module):
    """stem_convs stride-2 convolutions, then four residual stages (strides 1, 2, 2, 2).
    A second stem convolution lets a 128-px input cost about what a 64-px input costs with
    one, while the first convolution still sees the finer pixels."""

    def __init__(self, n_classes, widths=(32, 64, 128, 256), stem_convs=1):
        super().__init__()
        stem = []
        for i in range(stem_convs):
            stem += [nn.Conv2d(3 if i == 0 else widths[0], widths[0], 3, 2, 1, bias=False),
                     nn.BatchNorm2d(widths[0]), nn.ReLU()]
        self.stem = nn.Sequential(*stem)
        blocks = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks.append(Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, n_classes)

    def features(self, x):
        """The pooled penultimate features [B, widths[-1]]."""
        return self.maps(x)[1]

    def maps(self, x):
        """(the third stage's feature map [B, widths[2], H/16, W/16] for one stem convolution,
        the pooled penultimate features [B, widths[-1]])."""
        m = self.blocks[:3](self.stem(x))
        return m, self.blocks[3:](m).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def stem_convs_for(size):
    """One stem convolution at 64 px and below, two above (the stages then see 32x32 maps
    at 64 and at 128 px)."""
    return 1 if size <= 64 else 2


def save_teacher(path, net, size):
    gslib.save_torch(path, {"state": net.state_dict(), "size": size,
                            "stem_convs": len(net.stem) // 3})


def load_teacher(path, n_classes):
    """Returns (net, input size). Files of the first version hold a bare state dict of a 64-px
    teacher with one stem convolution."""
    c = torch.load(path)
    if "state" not in c:
        c = {"state": c, "size": 64, "stem_convs": 1}
    net = SmallResNet(n_classes, stem_convs=c["stem_convs"])
    net.load_state_dict(c["state"])
    net.eval()
    return net, c["size"]


def mix_batch(x, y_soft, rng, p=0.8):
    """CutMix or mixup (half each) with probability p; y_soft [B, K] targets are mixed alike.
    Returns x, y, perm, lam (lam = share of the original image)."""
    b = x.shape[0]
    perm = torch.randperm(b)
    if rng.random() > p:
        return x, y_soft, perm, 1.0
    if rng.random() < 0.5:
        lam = rng.betavariate(0.8, 0.8)
        x = lam * x + (1 - lam) * x[perm]
    else:
        lam = rng.betavariate(1.0, 1.0)
        h, w = x.shape[-2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = rng.randrange(h), rng.randrange(w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / float(h * w)
    return x, lam * y_soft + (1 - lam) * y_soft[perm], perm, lam


class Ensemble(nn.Module):
    """Several teachers, possibly at different input sizes: logits are the log of the mean of
    their softmax outputs, features the concatenation of their pooled features."""

    def __init__(self, nets, sizes):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.sizes = list(sizes)
        self.fc = nn.Identity()
        self.fc.in_features = sum(n.fc.in_features for n in nets)
        self.map_channels = sum(n.blocks[2].c2.out_channels for n in nets)

    def predict(self, x):
        """(mean softmax [B, K], features [B, sum of widths]) for a batch at any size."""
        return self.predict_maps(x, 1)[:2]

    def forward(self, x):
        return self.predict(x)[0].log()

    def predict_maps(self, x, grid):
        """(mean softmax, pooled features, third-stage maps pooled to grid x grid and
        concatenated over the teachers [B, grid*grid, C], row-major like ViT patches)."""
        probs, feats, maps = [], [], []
        for net, size in zip(self.nets, self.sizes):
            m, f = net.maps(gslib.resize_batch(x, size))
            feats.append(f)
            probs.append(net.fc(f).softmax(-1))
            maps.append(F.adaptive_avg_pool2d(m, grid).flatten(2).transpose(1, 2))
        return torch.stack(probs).mean(0), torch.cat(feats, -1), torch.cat(maps, -1)


def train_teacher(a, train, classes, aug, minutes, seed, log_every=50, stem_convs=1, init=None,
                  lr=0.1):
    """A fresh teacher, or with init (a net from load_teacher) a further cosine cycle of that
    one (a warm restart at peak rate lr)."""
    net = init if init is not None else SmallResNet(len(classes), stem_convs=stem_convs)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    y = torch.tensor([classes.index(it["cls"]) for it in train])
    rng = random.Random(seed)
    torch.manual_seed(seed)
    budget = minutes * 60
    t0 = time.time()
    step = 0
    perm = []
    net.train()
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, frac / 0.03) * 0.5 * (1 + math.cos(math.pi * frac))
        if len(perm) < a.batch:
            perm = list(range(len(train)))
            rng.shuffle(perm)
        idx, perm = perm[:a.batch], perm[a.batch:]
        x = aug(idx, rng)
        t = F.one_hot(y[idx], len(classes)).float() * 0.9 + 0.1 / len(classes)
        x, t, _, _ = mix_batch(x, t, rng)
        loss = -(t * net(x).log_softmax(-1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0:
            gslib.log("teacher step %d ep %.1f loss %.3f" % (step, step * a.batch / len(train),
                                                             loss.item()))
    net.eval()
    return net, step


@torch.no_grad()
def accuracy(net, px, labels, bs=256):
    net.eval()
    pred = torch.cat([net(torch.from_numpy(px[i:i + bs])).argmax(-1)
                      for i in range(0, len(px), bs)])
    return float((pred == labels).float().mean())
