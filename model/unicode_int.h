// Unicode text primitives of the CLIP tokenizer (model-private): UTF-8 decoding with Python's
// "replace" rules, code-point buffers, the character classes of open_clip's regex, Python's
// str.isspace()/str.lower(), and NFC. Not a general Unicode library: each function reproduces one
// CPython / regex-module behaviour that the tokenizer depends on, nothing more.
// Tables are generated at build time by tools/gen_unicode_tables.py (see model/CMakeLists.txt):
// the regex classes from UnicodeData.txt 15.0 (the `regex` module's version), everything else from
// Python 3.11's unicodedata 14.0 (CPython's own str methods and unicodedata.normalize).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- generated tables (tools/gen_unicode_tables.py) -----------------------------------------

enum {
    GS__UC_LETTER = 1,       // regex [\p{L}]
    GS__UC_NUMBER = 2,       // regex [\p{N}]
    GS__UC_SPACE = 4,        // Python str.isspace()
    GS__UC_DECIMAL = 8,      // Python str.isdecimal() (what `re`'s \d matches)
    GS__UC_CASED = 16,       // cased and not case-ignorable (CPython's final-sigma context)
    GS__UC_CASE_IGN = 32,    // case-ignorable
    GS__UC_NFC_UNSAFE = 64,  // may change under NFC (ccc != 0 or NFC_QC != Yes)
    GS__UC_REGEX_NONE = 128, // matched by no alternative of the CLIP regex (U+0345)
};

typedef struct {
    uint32_t cp, to;
} gs__uc_pair_t;
typedef struct {
    uint32_t cp;
    uint16_t off; // into gs__uc_decomp_pool
    uint8_t len;  // 1..4
} gs__uc_decomp_t;
typedef struct {
    uint32_t first, second, composite;
} gs__uc_comp_t;
typedef struct {
    uint32_t cp;
    uint32_t to[2]; // to[1] == 0: one code point
} gs__uc_width_t;

extern const char gs__uc_regex_source[];   // "…/UnicodeData.txt" or "python unicodedata 14.0.0"
extern const char gs__uc_python_version[]; // "14.0.0"
extern const uint16_t gs__uc_stage1[0x110000 >> 8];
extern const uint16_t gs__uc_stage2[];         // flags | ccc << 8
extern const gs__uc_pair_t gs__uc_lower_map[]; // 1:1 str.lower() mappings, sorted by cp
extern const size_t gs__uc_n_lower_map;
extern const uint32_t gs__uc_decomp_pool[];
extern const gs__uc_decomp_t gs__uc_decomp[]; // full canonical decompositions, sorted
extern const size_t gs__uc_n_decomp;
extern const gs__uc_comp_t gs__uc_comp[]; // primary composites, sorted by (first, second)
extern const size_t gs__uc_n_comp;
extern const gs__uc_width_t gs__uc_width[]; // ftfy's width map, sorted by cp
extern const size_t gs__uc_n_width;

// gs__uc_flags: GS__UC_* bits of a code point (0 beyond U+10FFFF).
static inline unsigned gs__uc_flags(uint32_t cp)
{
    if (cp >= 0x110000)
        return 0;
    return gs__uc_stage2[gs__uc_stage1[cp >> 8] * 256u + (cp & 255u)] & 0xffu;
}

// gs__uc_ccc: canonical combining class (Python unicodedata.combining).
static inline unsigned gs__uc_ccc(uint32_t cp)
{
    if (cp >= 0x110000)
        return 0;
    return (unsigned)gs__uc_stage2[gs__uc_stage1[cp >> 8] * 256u + (cp & 255u)] >> 8;
}

// ---- code-point buffers -----------------------------------------------------------------------

// A growable array of code points owned by one encode call (never shared between threads).
typedef struct {
    uint32_t *p;
    size_t n;   // used
    size_t cap; // allocated
} gs__cpbuf_t;

// gs__cpbuf_reserve: make room for at least `cap` code points in total (keeps the contents).
// false on overflow or out of memory (the buffer is left as it was).
bool gs__cpbuf_reserve(gs__cpbuf_t *self, size_t cap);
// gs__cpbuf_cleanup: free the storage; the buffer is empty and reusable afterwards.
void gs__cpbuf_cleanup(gs__cpbuf_t *self);

// ---- UTF-8 ------------------------------------------------------------------------------------

// gs__utf8_decode: decode n bytes into out (which must have room for n code points), as Python's
// bytes.decode("utf-8", "replace") does: each maximal ill-formed subpart (W3C / Unicode
// "substitution of maximal subparts") becomes one U+FFFD. Surrogates, overlongs and values above
// U+10FFFF are ill-formed. Returns the number of code points written.
// When out_n_bad is not NULL it receives the number of U+FFFD substitutions made.
size_t gs__utf8_decode(const uint8_t *s, size_t n, uint32_t *out, size_t *out_n_bad);
// gs__utf8_encode: writes the UTF-8 form of cp (< 0x110000, not a surrogate) to out; returns
// its length (1..4).
int gs__utf8_encode(uint32_t cp, uint8_t out[4]);

// ---- Python str methods -----------------------------------------------------------------------

// gs__uc_is_space: Python str.isspace() of one code point.
static inline bool gs__uc_is_space(uint32_t cp)
{
    return (gs__uc_flags(cp) & GS__UC_SPACE) != 0;
}

// gs__uc_lower: Python str.lower() of in[0..n) into out (room for 2n): full lowercase mapping
// (U+0130 -> "i\u0307") and the final-sigma rule, which looks at the whole string. Returns the
// number of code points written.
size_t gs__uc_lower(const uint32_t *in, size_t n, uint32_t *out);

// gs__uc_width_lookup: ftfy's width map of cp: writes 1 or 2 code points to out, or returns 0 if
// cp has no entry.
int gs__uc_width_lookup(uint32_t cp, uint32_t out[2]);

// ---- normalisation ----------------------------------------------------------------------------

// gs__uc_nfc: Python unicodedata.normalize("NFC", ·) of in[0..n): canonical decomposition
// (Hangul algorithmically), canonical ordering, canonical composition. `tmp` and `out` are
// caller buffers, grown as needed; out receives the result. Returns false when out of memory.
// Text without an NFC-unsafe code point is copied unchanged (the quick check).
bool gs__uc_nfc(const uint32_t *in, size_t n, gs__cpbuf_t *tmp, gs__cpbuf_t *out);
