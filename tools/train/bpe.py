"""Byte-level BPE in the CLIP / open_clip form: a learner and the tokenizer.

Files written (Hugging Face CLIP tokenizer layout, as ../shared/fixtures/hfclip_tiny):
- vocab.json: ids 0..255 the byte symbols in bytes_to_unicode() order, 256..511 the same
  symbols + '</w>', then one id per merge in merge order, then <start_of_text>, <end_of_text>.
- merges.txt: '#version: 0.2' and one 'a b' line per merge.

Text cleaning is open_clip's clean='lower' path: ftfy (a no-op on this ASCII data, not
applied here), html.unescape twice, strip, whitespace collapse, lower case. The word regex is
open_clip's, written with the standard re module: [^\\W\\d_]+ stands for \\p{L}+ and \\d for \\p{N},
which is exact for ASCII text (all training captions are ASCII).
"""
import html
import json
import re
from collections import Counter, defaultdict

SOT = "<start_of_text>"
EOT = "<end_of_text>"
PAT = re.compile(r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
                 re.IGNORECASE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {v: k for k, v in BYTE_ENC.items()}


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


def words(text):
    """Pre-tokenised words of a cleaned text, each as its byte-symbol string."""
    return ["".join(BYTE_ENC[b] for b in w.encode("utf-8")) for w in PAT.findall(clean(text))]


def base_vocab():
    v = list(BYTE_ENC.values())
    return v + [x + "</w>" for x in v]


def learn(texts, n_merges, min_freq=2):
    """Classic BPE learning over word frequencies. Ties: the pair first in sorted order.
    A pair whose concatenation is already a token is skipped, so every vocab string is
    unique and the vocab.json <-> merges.txt correspondence holds exactly."""
    freq = Counter()
    for t in texts:
        for w in words(t):
            freq[w] += 1
    seqs = {}
    for w in freq:
        syms = list(w)
        syms[-1] = syms[-1] + "</w>"
        seqs[w] = syms
    vocab = set(base_vocab())
    merges = []
    banned = set()
    while len(merges) < n_merges:
        pairs = defaultdict(int)
        for w, syms in seqs.items():
            f = freq[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += f
        best = None
        for p, c in pairs.items():
            if p in banned or c < min_freq:
                continue
            if (p[0] + p[1]) in vocab:
                banned.add(p)
                continue
            if best is None or c > best[1] or (c == best[1] and p < best[0]):
                best = (p, c)
        if best is None:
            break
        (a, b), _ = best
        merges.append((a, b))
        vocab.add(a + b)
        for w, syms in seqs.items():
            i = 0
            out = []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            seqs[w] = out
    return merges


def save(merges, out_dir):
    vocab = base_vocab() + [a + b for a, b in merges] + [SOT, EOT]
    assert len(set(vocab)) == len(vocab)
    with open(out_dir + "/vocab.json", "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(out_dir + "/merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    return len(vocab)


class Tokenizer:
    """open_clip SimpleTokenizer behaviour on the files above."""

    def __init__(self, model_dir, context_length=77):
        with open(model_dir + "/vocab.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(model_dir + "/merges.txt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0].startswith("#version")
        merges = [tuple(l.split()) for l in lines[1:] if l]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot = self.encoder[SOT]
        self.eot = self.encoder[EOT]
        self.context_length = context_length
        self.cache = {}
        self.decoder = {v: k for k, v in self.encoder.items()}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        syms[-1] = syms[-1] + "</w>"
        while len(syms) > 1:
            pairs = set(zip(syms, syms[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            a, b = best
            out = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self.cache[word] = syms
        return syms

    def encode(self, text):
        ids = []
        for w in words(text):
            if w == SOT:
                ids.append(self.sot)
            elif w == EOT:
                ids.append(self.eot)
            else:
                ids += [self.encoder[s] for s in self.bpe(w)]
        return ids

    def __call__(self, text, truncate=True):
        """[sot] + ids + [eot], truncated to the context length with eot last (no padding)."""
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > self.context_length:
            ids = ids[:self.context_length]
            ids[-1] = self.eot
        return ids

    def decode(self, ids):
        s = "".join(self.decoder[i] for i in ids if i not in (self.sot, self.eot))
        return bytearray(BYTE_DEC[c] for c in s).decode("utf-8", "replace") \
            .replace("</w>", " ").strip()
