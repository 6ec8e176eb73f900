// Unicode primitives of the CLIP tokenizer: UTF-8 decoding as Python's "replace" handler does,
// Python's str.lower() (with the final-sigma rule), ftfy's width map lookup, and NFC as
// unicodedata.normalize computes it. The tables are generated at build time (unicode_tables.c in
// the build tree, from tools/gen_unicode_tables.py). No state: every function is thread-safe.
#include <string.h>

#include "common/alloc.h"
#include "model/unicode_int.h"

// ---- code-point buffers -----------------------------------------------------------------------

bool gs__cpbuf_reserve(gs__cpbuf_t *self, size_t cap)
{
    if (cap <= self->cap)
        return true;
    if (cap > SIZE_MAX / sizeof(uint32_t) / 2)
        return false;
    size_t want = self->cap ? self->cap : 64;
    while (want < cap)
        want *= 2;
    uint32_t *p = gs_tryrealloc(self->p, want * sizeof(uint32_t));
    if (!p)
        return false;
    self->p = p;
    self->cap = want;
    return true;
}

void gs__cpbuf_cleanup(gs__cpbuf_t *self)
{
    GS_FREE(self->p);
    self->n = 0;
    self->cap = 0;
}

// ---- UTF-8 ------------------------------------------------------------------------------------

size_t gs__utf8_decode(const uint8_t *s, size_t n, uint32_t *out, size_t *out_n_bad)
{
    size_t i = 0, o = 0, n_bad = 0;
    while (i < n) {
        uint8_t b0 = s[i];
        if (b0 < 0x80) {
            out[o++] = b0;
            i++;
            continue;
        }
        // expected length and the allowed range of the second byte (Unicode table 3-7)
        int len;
        uint8_t lo = 0x80, hi = 0xBF;
        uint32_t cp;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
            cp = b0 & 0x1Fu;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            cp = b0 & 0x0Fu;
            if (b0 == 0xE0)
                lo = 0xA0;
            else if (b0 == 0xED)
                hi = 0x9F; // no surrogates
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            cp = b0 & 0x07u;
            if (b0 == 0xF0)
                lo = 0x90;
            else if (b0 == 0xF4)
                hi = 0x8F; // nothing above U+10FFFF
        } else {           // continuation byte without a lead, C0/C1 overlong leads, F5..FF
            out[o++] = 0xFFFD;
            n_bad++;
            i++;
            continue;
        }
        // consume the longest valid prefix; a break leaves it as one U+FFFD (maximal subpart)
        size_t j = i + 1;
        int k = 1;
        for (; k < len && j < n; k++, j++) {
            uint8_t b = s[j];
            if (b < lo || b > hi)
                break;
            cp = (cp << 6) | (b & 0x3Fu);
            lo = 0x80;
            hi = 0xBF;
        }
        out[o++] = k == len ? cp : 0xFFFD;
        n_bad += k != len;
        i = j;
    }
    if (out_n_bad)
        *out_n_bad = n_bad;
    return o;
}

int gs__utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

// ---- lower ------------------------------------------------------------------------------------

static uint32_t lower_simple(uint32_t cp)
{
    size_t lo = 0, hi = gs__uc_n_lower_map;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gs__uc_lower_map[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < gs__uc_n_lower_map && gs__uc_lower_map[lo].cp == cp ? gs__uc_lower_map[lo].to : cp;
}

// CPython's handle_capital_sigma: U+03A3 lowers to final U+03C2 when a cased letter precedes it
// and none follows, skipping case-ignorable characters on both sides.
static bool is_final_sigma(const uint32_t *in, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && (gs__uc_flags(in[j - 1]) & GS__UC_CASE_IGN))
        j--;
    if (j == 0 || !(gs__uc_flags(in[j - 1]) & GS__UC_CASED))
        return false;
    j = i + 1;
    while (j < n && (gs__uc_flags(in[j]) & GS__UC_CASE_IGN))
        j++;
    return j == n || !(gs__uc_flags(in[j]) & GS__UC_CASED);
}

size_t gs__uc_lower(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp < 0x80) {
            out[o++] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        } else if (cp == 0x3A3) {
            out[o++] = is_final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        } else if (cp == 0x130) { // the one multi-character lowercase (checked by the generator)
            out[o++] = 0x69;
            out[o++] = 0x307;
        } else {
            out[o++] = lower_simple(cp);
        }
    }
    return o;
}

int gs__uc_width_lookup(uint32_t cp, uint32_t out[2])
{
    if (cp != 0x3000 && (cp < 0xFF01 || cp > 0xFFEF))
        return 0;
    size_t lo = 0, hi = gs__uc_n_width;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gs__uc_width[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == gs__uc_n_width || gs__uc_width[lo].cp != cp)
        return 0;
    out[0] = gs__uc_width[lo].to[0];
    out[1] = gs__uc_width[lo].to[1];
    return out[1] ? 2 : 1;
}

// ---- NFC --------------------------------------------------------------------------------------

enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_NL = 19,
    HANGUL_NV = 21,
    HANGUL_NT = 28,
    HANGUL_NS = HANGUL_NL * HANGUL_NV * HANGUL_NT,
};

static const gs__uc_decomp_t *find_decomp(uint32_t cp)
{
    size_t lo = 0, hi = gs__uc_n_decomp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gs__uc_decomp[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < gs__uc_n_decomp && gs__uc_decomp[lo].cp == cp ? &gs__uc_decomp[lo] : NULL;
}

// compose: the primary composite of (a, b), or 0 if there is none.
static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_NL && b >= HANGUL_V && b < HANGUL_V + HANGUL_NV)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_NV + (b - HANGUL_V)) * HANGUL_NT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_NS && (a - HANGUL_S) % HANGUL_NT == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_NT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = gs__uc_n_comp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const gs__uc_comp_t *c = &gs__uc_comp[mid];
        if (c->first < a || (c->first == a && c->second < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < gs__uc_n_comp && gs__uc_comp[lo].first == a && gs__uc_comp[lo].second == b)
        return gs__uc_comp[lo].composite;
    return 0;
}

// Stable sort of a run of non-starters by combining class: insertion sort for short runs, a
// counting sort (through `scratch`, room for len) for long ones so that long runs stay linear.
static void sort_run(uint32_t *x, size_t len, uint32_t *scratch)
{
    if (len <= 16) {
        for (size_t i = 1; i < len; i++) {
            uint32_t c = x[i];
            unsigned cc = gs__uc_ccc(c);
            size_t j = i;
            while (j > 0 && gs__uc_ccc(x[j - 1]) > cc) {
                x[j] = x[j - 1];
                j--;
            }
            x[j] = c;
        }
        return;
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < len; i++)
        start[gs__uc_ccc(x[i]) + 1]++;
    for (int k = 0; k < 256; k++)
        start[k + 1] += start[k];
    for (size_t i = 0; i < len; i++)
        scratch[start[gs__uc_ccc(x[i])]++] = x[i];
    memcpy(x, scratch, len * sizeof *x);
}

bool gs__uc_nfc(const uint32_t *in, size_t n, gs__cpbuf_t *tmp, gs__cpbuf_t *out)
{
    size_t first_unsafe = 0;
    while (first_unsafe < n && !(gs__uc_flags(in[first_unsafe]) & GS__UC_NFC_UNSAFE))
        first_unsafe++;
    if (!gs__cpbuf_reserve(out, n > 0 ? n : 1))
        return false;
    if (first_unsafe == n) {
        memcpy(out->p, in, n * sizeof *in);
        out->n = n;
        return true;
    }
    // 1. canonical decomposition (at most 4 code points each, checked by the generator)
    if (n > SIZE_MAX / 4 || !gs__cpbuf_reserve(tmp, 4 * n) || !gs__cpbuf_reserve(out, 4 * n))
        return false;
    uint32_t *d = tmp->p;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_NS) {
            uint32_t s = cp - HANGUL_S;
            d[nd++] = HANGUL_L + s / (HANGUL_NV * HANGUL_NT);
            d[nd++] = HANGUL_V + (s % (HANGUL_NV * HANGUL_NT)) / HANGUL_NT;
            if (s % HANGUL_NT)
                d[nd++] = HANGUL_T + s % HANGUL_NT;
            continue;
        }
        const gs__uc_decomp_t *e = cp >= 0xC0 ? find_decomp(cp) : NULL;
        if (e) {
            memcpy(d + nd, gs__uc_decomp_pool + e->off, e->len * sizeof *d);
            nd += e->len;
        } else {
            d[nd++] = cp;
        }
    }
    // 2. canonical ordering of each run of non-starters (out->p is scratch here)
    for (size_t i = 0; i < nd;) {
        if (gs__uc_ccc(d[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < nd && gs__uc_ccc(d[j]) != 0)
            j++;
        if (j - i > 1)
            sort_run(d + i, j - i, out->p);
        i = j;
    }
    // 3. canonical composition: a character joins the last starter unless blocked by a character
    // in between with class 0 or >= its own class
    uint32_t *o = out->p;
    size_t no = 0;
    size_t starter = SIZE_MAX;
    int last_cc = -1; // -1: nothing since the starter (adjacent)
    for (size_t i = 0; i < nd; i++) {
        uint32_t cp = d[i];
        int cc = (int)gs__uc_ccc(cp);
        if (starter != SIZE_MAX && (last_cc == -1 || last_cc < cc)) {
            uint32_t c = compose(o[starter], cp);
            if (c) {
                o[starter] = c;
                continue;
            }
        }
        if (cc == 0) {
            starter = no;
            last_cc = -1;
        } else {
            last_cc = cc;
        }
        o[no++] = cp;
    }
    out->n = no;
    return true;
}
