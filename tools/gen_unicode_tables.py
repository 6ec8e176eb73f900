#!/usr/bin/python3
"""Generate the Unicode tables of the CLIP tokenizer (model/unicode.c) at build time.

Usage: gen_unicode_tables.py OUT.c [UnicodeData.txt [CaseFolding.txt]]

Run by model/CMakeLists.txt with Debian's /usr/bin/python3; the output lands in the build tree and
is never committed. Two sources, on purpose, because open_clip's pipeline mixes two databases:
- the regex classes \\p{L} / \\p{N} of the `regex` module (Unicode 15.0 in Debian 12's
  python3-regex 2022.10.31) come from UnicodeData.txt + CaseFolding.txt of the Debian package
  unicode-data (15.0.0); without those files they fall back to this Python's unicodedata, with a
  warning (Python 3.11 has Unicode 14.0);
- str.lower(), str.isspace(), the final-sigma rule, NFC and ftfy's width map are CPython's own
  (unicodedata 14.0 in Python 3.11), so they come from this interpreter.
"""
import os
import sys
import unicodedata

MAX_CP = 0x110000

# flag bits (model/unicode_int.h)
F_LETTER = 1        # regex [\p{L}]
F_NUMBER = 2        # regex [\p{N}]
F_SPACE = 4         # Python str.isspace()
F_DECIMAL = 8       # Python str.isdecimal() (re's \d)
F_CASED = 16        # cased and not case-ignorable (CPython's final-sigma test)
F_CASE_IGN = 32     # case-ignorable
F_NFC_UNSAFE = 64   # may change under NFC (ccc != 0, NFC_QC != Yes)
F_REGEX_NONE = 128  # matched by no alternative of the CLIP regex (only U+0345 in 15.0)


def read_unicode_data(path):
    """code point -> general category, expanding <..., First>/<..., Last> ranges."""
    cats = {}
    first = None
    with open(path, encoding="ascii") as f:
        for line in f:
            fields = line.split(";")
            cp = int(fields[0], 16)
            name, cat = fields[1], fields[2]
            if name.endswith(", First>"):
                first = cp
            elif name.endswith(", Last>"):
                for c in range(first, cp + 1):
                    cats[c] = cat
            else:
                cats[cp] = cat
    return cats


def read_simple_case_classes(path):
    """code point -> set of code points sharing its simple case folding (status C and S)."""
    fold = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            code, status, mapping = [x.strip() for x in line.split(";")[:3]]
            if status in ("C", "S"):
                fold[int(code, 16)] = int(mapping, 16)
    classes = {}
    for cp, target in fold.items():
        classes.setdefault(target, {target}).add(cp)
    out = {}
    for members in classes.values():
        for cp in members:
            out[cp] = members
    return out


def regex_classes(ud_path, cf_path):
    """Per code point: F_LETTER, F_NUMBER, F_REGEX_NONE or 0 (the punctuation alternative)."""
    if ud_path and os.path.exists(ud_path):
        cats = read_unicode_data(ud_path)
        cat = lambda cp: cats.get(cp, "Cn")
        source = ud_path
    else:
        print("gen_unicode_tables: WARNING: no UnicodeData.txt (install unicode-data with "
              "deploy/setup.sh); \\p{L}/\\p{N} fall back to Python's Unicode %s"
              % unicodedata.unidata_version, file=sys.stderr)
        cat = lambda cp: unicodedata.category(chr(cp))
        source = "python unicodedata " + unicodedata.unidata_version
    if cf_path and os.path.exists(cf_path):
        case_classes = read_simple_case_classes(cf_path)
    else:  # approximation of the simple case classes from Python's 1:1 case mappings
        case_classes = {}
        for cp in range(MAX_CP):
            ch = chr(cp)
            alts = {ord(x) for x in (ch.lower(), ch.upper()) if len(x) == 1} - {cp}
            if alts:
                case_classes[cp] = alts | {cp}
    out = [0] * MAX_CP
    for cp in range(MAX_CP):
        c = cat(cp)[0]
        out[cp] = F_LETTER if c == "L" else F_NUMBER if c == "N" else 0
    # The pattern is compiled IGNORECASE: a negated set [^\s\p{L}\p{N}] rejects a character when
    # any member of its case class is a letter or number, while [\p{L}] tests the character
    # itself. Such a character (U+0345) matches no alternative and is skipped like a space.
    for cp in range(MAX_CP):
        if out[cp] == 0 and cp in case_classes:
            if any(out[o] & (F_LETTER | F_NUMBER) for o in case_classes[cp] if o != cp):
                out[cp] = F_REGEX_NONE
    return out, source


def python_props():
    """Flags from this Python: isspace, isdecimal, final-sigma classes, NFC safety; ccc."""
    flags = [0] * MAX_CP
    ccc = [0] * MAX_CP
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        f = 0
        if ch.isspace():
            f |= F_SPACE
        if ch.isdecimal():
            f |= F_DECIMAL
        # CPython's final sigma: a capital sigma ends a word when preceded by a cased letter
        # (skipping case-ignorables). 'x'+ch+SIGMA tells ignorable-or-cased; ch+SIGMA tells
        # cased-and-not-ignorable. An ignorable character is always skipped, cased or not.
        cased_not_ign = (ch + "\u03a3").lower()[-1] == "\u03c2"
        ign_or_cased = ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
        if cased_not_ign:
            f |= F_CASED
        elif ign_or_cased:
            f |= F_CASE_IGN
        ccc[cp] = unicodedata.combining(ch)
        flags[cp] = f
    return flags, ccc


def nfc_data():
    """Full canonical decompositions (non-Hangul), primary composites, NFC-unsafe set."""
    decomp = {}
    comp = {}
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
            continue
        ch = chr(cp)
        d = unicodedata.normalize("NFD", ch)
        if d != ch:
            decomp[cp] = [ord(x) for x in d]
        raw = unicodedata.decomposition(ch)
        if raw and not raw.startswith("<"):
            parts = [int(x, 16) for x in raw.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) == ch:
                comp[(parts[0], parts[1])] = cp
    seconds = {b for (_, b) in comp}
    unsafe = set()
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if unicodedata.combining(ch) or cp in seconds or unicodedata.normalize("NFC", ch) != ch:
            unsafe.add(cp)
    # Hangul: L+V and LV+T compose algorithmically; V and T jamo are "seconds".
    unsafe.update(range(0x1161, 0x1176))
    unsafe.update(range(0x11A8, 0x11C3))
    return decomp, comp, unsafe


def lower_data():
    single = []
    multi = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lo = chr(cp).lower()
        if lo != chr(cp):
            if len(lo) == 1:
                single.append((cp, ord(lo)))
            else:
                multi.append((cp, [ord(x) for x in lo]))
    return single, multi


def width_map():
    """ftfy's fix_character_width: U+3000 -> space, U+FF01..U+FFEF -> NFKC when different."""
    m = {0x3000: [0x20]}
    for cp in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(cp))
        if alt != chr(cp):
            m[cp] = [ord(x) for x in alt]
    return m


def c_array(name, ctype, values, per_line=12, fmt="0x%x"):
    lines = ["const %s %s[%d] = {" % (ctype, name, len(values))]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(fmt % v for v in values[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def main():
    out_path = sys.argv[1]
    ud_path = sys.argv[2] if len(sys.argv) > 2 else None
    cf_path = sys.argv[3] if len(sys.argv) > 3 else None

    rx, rx_source = regex_classes(ud_path, cf_path)
    py_flags, ccc = python_props()
    decomp, comp, unsafe = nfc_data()
    single, multi = lower_data()
    wmap = width_map()
    if max(len(d) for d in decomp.values()) > 4:
        sys.exit("gen_unicode_tables: a canonical decomposition is longer than 4")
    if [m[0] for m in multi] != [0x130] or len(multi[0][1]) != 2:
        sys.exit("gen_unicode_tables: unexpected multi-character lowercase mappings %r" % multi)

    # two-stage table: stage1[cp >> 8] -> block, stage2[block * 256 + (cp & 255)] = flags | ccc<<8
    blocks = {}
    stage1 = []
    stage2 = []
    for hi in range(MAX_CP >> 8):
        vals = []
        for cp in range(hi << 8, (hi + 1) << 8):
            f = rx[cp] | py_flags[cp] | (F_NFC_UNSAFE if cp in unsafe else 0)
            vals.append(f | (ccc[cp] << 8))
        key = tuple(vals)
        if key not in blocks:
            blocks[key] = len(blocks)
            stage2.extend(vals)
        stage1.append(blocks[key])

    pool = []
    drows = []
    for cp in sorted(decomp):
        d = decomp[cp]
        drows.append("    {0x%x, %d, %d}," % (cp, len(pool), len(d)))
        pool.extend(d)
    crows = ["    {0x%x, 0x%x, 0x%x}," % (a, b, c) for (a, b), c in sorted(comp.items())]
    lrows = ["    {0x%x, 0x%x}," % (a, b) for a, b in single]
    wrows = []
    for cp in sorted(wmap):
        v = wmap[cp] + [0] * (2 - len(wmap[cp]))
        if len(wmap[cp]) > 2:
            sys.exit("gen_unicode_tables: width map entry longer than 2 at U+%04X" % cp)
        wrows.append("    {0x%x, {0x%x, 0x%x}}," % (cp, v[0], v[1]))

    src = []
    src.append("// GENERATED by tools/gen_unicode_tables.py at build time; do not edit, "
               "never commit.")
    src.append("// regex classes: %s; Python-side data: unicodedata %s"
               % (rx_source, unicodedata.unidata_version))
    src.append('#include "model/unicode_int.h"\n')
    src.append('const char gs__uc_regex_source[] = "%s";' % rx_source)
    src.append('const char gs__uc_python_version[] = "%s";\n' % unicodedata.unidata_version)
    src.append(c_array("gs__uc_stage1", "uint16_t", stage1, 16, "%d"))
    src.append(c_array("gs__uc_stage2", "uint16_t", stage2, 16))
    src.append("const gs__uc_pair_t gs__uc_lower_map[%d] = {" % len(lrows))
    src.extend(lrows)
    src.append("};")
    src.append("const size_t gs__uc_n_lower_map = %d;\n" % len(lrows))
    src.append(c_array("gs__uc_decomp_pool", "uint32_t", pool, 12))
    src.append("const gs__uc_decomp_t gs__uc_decomp[%d] = {" % len(drows))
    src.extend(drows)
    src.append("};")
    src.append("const size_t gs__uc_n_decomp = %d;\n" % len(drows))
    src.append("const gs__uc_comp_t gs__uc_comp[%d] = {" % len(crows))
    src.extend(crows)
    src.append("};")
    src.append("const size_t gs__uc_n_comp = %d;\n" % len(crows))
    src.append("const gs__uc_width_t gs__uc_width[%d] = {" % len(wrows))
    src.extend(wrows)
    src.append("};")
    src.append("const size_t gs__uc_n_width = %d;" % len(wrows))
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write("\n".join(src) + "\n")
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main()
