#!/bin/sh
# Writes the seed corpora of the weight-loader fuzz targets (tests/fuzz/corpus/safetensors/ and
# tests/fuzz/corpus/pt/) from scratch: small, deterministic files made with python3's standard
# library only (struct, json, zipfile, pickle). The pickles come from Python's own pickler
# driven like torch.save (persistent ids for storages, _rebuild_tensor_v2 reductions), through
# stand-in "torch" modules registered for the pickler's name lookups; torch itself is not
# needed. Usage: tests/fuzz/make_seeds.sh (from anywhere). Re-running gives identical bytes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 - "$here/corpus" <<'EOF'
import collections, io, json, os, pickle, struct, sys, types, zipfile

root = sys.argv[1]

def out(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- safetensors ---------------------------------------------------------------------------
def st_raw(hdr, blob, align=8):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % align)
    return struct.pack("<Q", len(h)) + h + blob

def st(tensors, meta=None):
    """tensors: list of (name, dtype, shape, raw bytes); offsets follow list order"""
    hdr, off, blob = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    return st_raw(hdr, blob)

f32 = lambda *v: struct.pack("<%df" % len(v), *v)
basic = [
    ("a.f32", "F32", [2, 3], f32(0, 1, 2, 3, 4, 5)),
    ("b.f16", "F16", [4], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0xFE00)),
    ("c.bf16", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
    ("d.f64", "F64", [1], struct.pack("<d", 0.25)),
    ("e.i64", "I64", [2], struct.pack("<2q", 49406, -1)),
    ("f.i32", "I32", [], struct.pack("<i", 7)),
    ("g.u8", "U8", [1, 2, 3], bytes(range(6))),
    ("h.i8", "I8", [2], b"\x80\x7f"),
    ("i.bool", "BOOL", [3], b"\x00\x01\x01"),
    ("j.empty", "F32", [0, 4], b""),
]
out("safetensors", "all_dtypes.safetensors", st(basic, {"format": "pt"}))
# header order differs from data order; the u8 tensor first leaves the floats misaligned
out("safetensors", "misaligned.safetensors", st_raw(
    {"x.f16": {"dtype": "F16", "shape": [1], "data_offsets": [11, 13]},
     "y.f32": {"dtype": "F32", "shape": [2], "data_offsets": [3, 11]},
     "z.u8": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]}},
    b"\x01\x02\x03" + f32(1.5, -2) + struct.pack("<H", 0x3555), align=1))
full = st([("w", "F32", [4], f32(1, 2, 3, 4)), ("v", "F32", [4], f32(5, 6, 7, 8))])
out("safetensors", "truncated.safetensors", full[:-6])
overlap = json.dumps({"p": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "q": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
out("safetensors", "overlap.safetensors", struct.pack("<Q", len(overlap)) + overlap + b"\0" * 12)
# the fuzz target writes a valid shard "s.safetensors" next to its input
out("safetensors", "index.json",
    json.dumps({"metadata": {"total_size": 8}, "weight_map": {"w": "s.safetensors"}}).encode())

# ---- torch .pt -----------------------------------------------------------------------------
# Stand-ins with the module paths torch uses, so that the pickler writes the same GLOBALs.
torch = types.ModuleType("torch")
tutils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, tutils
for cls in ("FloatStorage", "HalfStorage", "LongStorage", "ByteStorage", "BFloat16Storage"):
    setattr(torch, cls, type(cls, (), {"__module__": "torch"}))
def _rebuild_tensor_v2(*a): pass
def _rebuild_parameter(*a): pass
_rebuild_tensor_v2.__module__ = _rebuild_parameter.__module__ = "torch._utils"
tutils._rebuild_tensor_v2, tutils._rebuild_parameter = _rebuild_tensor_v2, _rebuild_parameter

class Storage:
    def __init__(self, cls, key, numel): self.cls, self.key, self.numel = cls, key, numel

class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
    def __reduce_ex__(self, proto): return (_rebuild_tensor_v2, self.args)

class Parameter:
    def __init__(self, t): self.t = t
    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.t, True, collections.OrderedDict()))

class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None

def dumps(obj, protocol=2):
    b = io.BytesIO()
    TorchPickler(b, protocol=protocol).dump(obj)
    return b.getvalue()

# storages as the fuzz target provides them for raw pickles: "0".."3", 64 bytes each
s0 = Storage(torch.FloatStorage, "0", 16)
s1 = Storage(torch.HalfStorage, "1", 32)
s2 = Storage(torch.LongStorage, "2", 8)
s3 = Storage(torch.ByteStorage, "3", 64)
sd = collections.OrderedDict()
sd["visual.proj"] = Tensor(s0, 0, [2, 3], [3, 1])
sd["visual.ln.bias"] = Tensor(s0, 6, [3], [1])
sd["logit_scale"] = Tensor(s0, 15, [], [])
sd["token_embedding.weight"] = Tensor(s1, 0, [4, 8], [8, 1])
sd["positions"] = Tensor(s2, 0, [8], [1])
sd["mask"] = Tensor(s3, 0, [1, 64], [99, 1])
out("pt", "state_dict.pkl", dumps(sd))
wrapped = {"epoch": 3, "name": "ViT-B-32", "lr": 1e-3,
           "state_dict": collections.OrderedDict(
               ("module." + k, Parameter(v) if k == "visual.proj" else v) for k, v in sd.items()),
           "optimizer": {"state": {0: {"step": 10}},
                         "param_groups": [{"params": [0, 1], "betas": (0.9, 0.98),
                                           "foreach": None, "amsgrad": False}]}}
out("pt", "wrapped_protocol4.pkl", dumps(wrapped, protocol=4))
out("pt", "transposed.pkl", dumps({"t": Tensor(s0, 0, [3, 2], [1, 3])}))

def pt_zip(prefix, pkl, storages):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        for name, data in [("data.pkl", pkl), ("byteorder", b"little")] + \
                [("data/" + k, v) for k, v in storages] + [("version", b"3\n")]:
            info = zipfile.ZipInfo(prefix + "/" + name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return b.getvalue()

raw = bytes((i * 37 + 11) & 255 for i in range(64))
out("pt", "archive.pt", pt_zip("archive", dumps(sd), [(k, raw) for k in "0123"]))
out("pt", "other_prefix.pt", pt_zip("my_model", dumps(wrapped), [(k, raw) for k in "0123"]))
EOF
