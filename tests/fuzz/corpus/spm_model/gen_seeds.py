#!/usr/bin/env python3
# Writes the seed inputs of tests/fuzz/fuzz_spm_model.c into this folder (run it here).
# Byte 0 picks the mode (even: a tokenizer.model follows; odd: text for the LLaMA model).
# The models are tiny hand-built ModelProto messages (protobuf written by hand, no library).
import struct


def varint(v):
    out = b""
    while True:
        c = v & 0x7F
        v >>= 7
        out += bytes([c | (0x80 if v else 0)])
        if not v:
            return out


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def piece(text, score, typ):
    return field(1, 2, field(1, 2, text.encode()) + field(2, 5, struct.pack("<f", score))
                 + field(3, 0, varint(typ)))


def specs(model_type, byte_fallback, dummy=1, extra_ws=0):
    ts = field(3, 0, varint(model_type)) + field(35, 0, varint(byte_fallback))
    ns = field(1, 2, b"identity") + field(3, 0, varint(dummy)) + field(4, 0, varint(extra_ws))
    return field(2, 2, ts) + field(3, 2, ns)


def model(pieces, model_type=2, byte_fallback=0, **kw):
    return b"".join(piece(*p) for p in pieces) + specs(model_type, byte_fallback, **kw)


base = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("\u2581", -1, 1), ("a", -2, 1),
        ("b", -2, 1), ("ab", -1, 1), ("\u2581a", -0.5, 1), ("<x>", 0, 4), ("bb", -1, 5)]
with_bytes = base + [("<0x%02X>" % b, 0, 6) for b in range(256)]
seeds = {
    "model_small": b"\x00" + model(base),
    "model_bytes": b"\x00" + model(with_bytes, byte_fallback=1),
    "model_extra_ws": b"\x02" + model(base, dummy=0, extra_ws=1),
    "model_unigram": b"\x04" + model(base, model_type=1),
    "text_prompt": b"\x01USER: <image>\nDescribe this image. ASSISTANT:",
    "text_mixed": "\x01caf\u00e9 \u6771\u4eac 12 km\u00b2 \U0001F30D  tabs\tand\nlines".encode(),
    "text_invalid": b"\x01\xff\xc3(\xe2\x82",
}
for name, data in seeds.items():
    with open(name, "wb") as f:
        f.write(data)
