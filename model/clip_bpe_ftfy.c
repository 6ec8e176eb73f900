// The part of ftfy.fix_text (ftfy 6.3.1, default configuration) that the CLIP tokenizer
// reproduces, written from ftfy's documented behaviour. Like fix_text it works line by line
// (each segment ends after a '\n'), disables HTML unescaping from the first segment holding a '<'
// on, and repeats its fixers on a segment until the text stops changing. Per pass:
//   unescape_html -> fix_encoding (simplified) -> fix_c1_controls -> fix_latin_ligatures ->
//   fix_character_width -> uncurl_quotes -> remove_terminal_escapes -> remove_control_chars -> NFC
// fix_line_breaks and fix_surrogates are left out: the first only turns whitespace into '\n',
// which the tokenizer's whitespace split makes invisible, and valid UTF-8 has no surrogates.
// fix_encoding is simplified: ftfy scores "badness" with a large table of character classes and
// also repairs mixed and lossy text; here a segment is re-decoded only when all of it encodes
// as latin-1 or sloppy windows-1252 and those bytes are valid multi-byte UTF-8 (cafÃ© -> café,
// itâ€™s -> it’s). Text that ftfy would leave alone but that passes this test is rare.
#include <string.h>

#include "model/clip_bpe_int.h"
#include "model/html_int.h"

// Passes per segment before giving up (ftfy loops until stable; nested "&amp;amp;..." chains
// peel one level per pass, so this bounds the work on hostile input).
#define FTFY_MAX_PASSES 64

// windows-1252 bytes 0x80..0x9F; the five undefined ones map to the C1 control of the same
// value, as ftfy's "sloppy" codec does.
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

// ftfy's LIGATURES: Latin typographic ligatures and legacy digraphs, split into letters.
static const struct {
    uint32_t cp;
    uint32_t to[3];
} ligatures[] = {
    {0x0132, {'I', 'J', 0}},    {0x0133, {'i', 'j', 0}},    {0x0149, {0x02BC, 'n', 0}},
    {0x01C4, {'D', 0x017D, 0}}, {0x01C5, {'D', 0x017E, 0}}, {0x01C6, {'d', 0x017E, 0}},
    {0x01C7, {'L', 'J', 0}},    {0x01C8, {'L', 'j', 0}},    {0x01C9, {'l', 'j', 0}},
    {0x01CA, {'N', 'J', 0}},    {0x01CB, {'N', 'j', 0}},    {0x01CC, {'n', 'j', 0}},
    {0x01F1, {'D', 'Z', 0}},    {0x01F2, {'D', 'z', 0}},    {0x01F3, {'d', 'z', 0}},
    {0xFB00, {'f', 'f', 0}},    {0xFB01, {'f', 'i', 0}},    {0xFB02, {'f', 'l', 0}},
    {0xFB03, {'f', 'f', 'i'}},  {0xFB04, {'f', 'f', 'l'}},  {0xFB05, {0x017F, 't', 0}},
    {0xFB06, {'s', 't', 0}},
};

// ---- single fixers: in[0..n) -> out (sized by the caller), return the output length ----------

static size_t fix_c1_controls(const uint32_t *in, size_t n, uint32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (in[i] >= 0x80 && in[i] <= 0x9F) ? cp1252_c1[in[i] - 0x80] : in[i];
    return n;
}

static size_t fix_ligatures(const uint32_t *in, size_t n, uint32_t *out) // out: 3n
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        size_t k = 0;
        if ((cp >= 0x0132 && cp <= 0x01F3) || (cp >= 0xFB00 && cp <= 0xFB06)) {
            for (k = 0; k < sizeof ligatures / sizeof ligatures[0]; k++)
                if (ligatures[k].cp == cp)
                    break;
        }
        if (cp >= 0x0132 && k < sizeof ligatures / sizeof ligatures[0] && ligatures[k].cp == cp) {
            for (int j = 0; j < 3 && ligatures[k].to[j]; j++)
                out[o++] = ligatures[k].to[j];
        } else {
            out[o++] = cp;
        }
    }
    return o;
}

static size_t fix_width(const uint32_t *in, size_t n, uint32_t *out) // out: 2n
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t w[2];
        int k = gs__uc_width_lookup(in[i], w);
        if (k == 0)
            out[o++] = in[i];
        for (int j = 0; j < k; j++)
            out[o++] = w[j];
    }
    return o;
}

static size_t uncurl_quotes(const uint32_t *in, size_t n, uint32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp == 0x02BC || (cp >= 0x2018 && cp <= 0x201B))
            cp = '\'';
        else if (cp >= 0x201C && cp <= 0x201F)
            cp = '"';
        out[i] = cp;
    }
    return n;
}

static bool is_ascii_letter(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ESC '[' (decimal digit | ';')* ASCII letter is removed (ftfy's ANSI_RE; \d is Unicode Nd).
static size_t remove_terminal_escapes(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (in[i] == 0x1B && i + 1 < n && in[i + 1] == '[') {
            size_t k = i + 2;
            while (k < n && (in[k] == ';' || (gs__uc_flags(in[k]) & GS__UC_DECIMAL)))
                k++;
            if (k < n && is_ascii_letter(in[k])) {
                i = k + 1;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    return o;
}

static bool is_removed_control(uint32_t c)
{
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static size_t remove_control_chars(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_removed_control(in[i]))
            out[o++] = in[i];
    return o;
}

// ---- fix_encoding (simplified) ----------------------------------------------------------------

// encode_single_byte: the byte of cp in latin-1 (sloppy == false) or sloppy windows-1252; -1 if
// it has none.
static int encode_single_byte(uint32_t cp, bool sloppy)
{
    if (cp < 0x80)
        return cp == 0x1A ? -1 : (int)cp; // ftfy's encodable set leaves out 0x1A
    if (cp >= 0xA0 && cp <= 0xFF)
        return (int)cp;
    if (!sloppy)
        return cp <= 0x9F ? (int)cp : -1;
    for (int b = 0; b < 32; b++)
        if (cp1252_c1[b] == cp)
            return 0x80 + b;
    return -1;
}

// One step of the simplified fix_encoding: re-decode the segment when it is UTF-8 read as
// latin-1 or windows-1252. `bytes` has room for n bytes. Returns the new length written to out
// (room for n), or 0 when nothing applies.
static size_t fix_encoding_step(const uint32_t *in, size_t n, uint8_t *bytes, uint32_t *out)
{
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = in[i] < 0x80;
    if (ascii)
        return 0;
    for (int sloppy = 0; sloppy <= 1; sloppy++) {
        size_t i = 0;
        for (; i < n; i++) {
            int b = encode_single_byte(in[i], sloppy);
            if (b < 0)
                break;
            bytes[i] = (uint8_t)b;
        }
        if (i < n)
            continue;
        size_t n_bad;
        size_t m = gs__utf8_decode(bytes, n, out, &n_bad);
        if (n_bad == 0 && m < n) // valid, and at least one multi-byte sequence
            return m;
    }
    return 0;
}

// ---- the segment loop -------------------------------------------------------------------------

// is_inert: no fixer can change this segment (the common case, checked in one pass): no '&',
// no control character but \t \n \f \r, nothing the single-character fixers map, nothing
// NFC-unsafe, and no possible mojibake (some character encodes in neither latin-1 nor
// windows-1252, or all are ASCII).
static bool is_inert(const uint32_t *in, size_t n)
{
    bool non_ascii = false, single_byte = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            if (c == '&' || c == 0x7F ||
                (c < 0x20 && c != '\t' && c != '\n' && c != '\f' && c != '\r'))
                return false;
            continue;
        }
        non_ascii = true;
        if (c <= 0x9F || c == 0x02BC || (c >= 0x2018 && c <= 0x201F) || c == 0x3000 ||
            (c >= 0xFF01 && c <= 0xFFEF) || (c >= 0x0132 && c <= 0x01F3) ||
            (c >= 0xFB00 && c <= 0xFB06) || is_removed_control(c) ||
            (gs__uc_flags(c) & GS__UC_NFC_UNSAFE))
            return false;
        if (single_byte && c > 0xFF && encode_single_byte(c, true) < 0)
            single_byte = false;
    }
    return !(non_ascii && single_byte);
}

typedef size_t (*fixer_fn)(const uint32_t *in, size_t n, uint32_t *out);

// run: apply fn from cur into nxt (reserving factor * n), then swap. false on OOM.
static bool run(fixer_fn fn, size_t factor, gs__cpbuf_t **cur, gs__cpbuf_t **nxt)
{
    size_t n = (*cur)->n;
    if (!gs__cpbuf_reserve(*nxt, factor * n + 1))
        return false;
    (*nxt)->n = fn((*cur)->p, n, (*nxt)->p);
    gs__cpbuf_t *t = *cur;
    *cur = *nxt;
    *nxt = t;
    return true;
}

// fix_segment: ftfy's fix_and_explain loop on in[0..n), appending the result to out.
static bool fix_segment(const uint32_t *in, size_t n, bool unescape, gs__cpbuf_t *out,
                        gs__cpbuf_t tmp[3])
{
    if (is_inert(in, n)) {
        if (!gs__cpbuf_reserve(out, out->n + n + 1))
            return false;
        memcpy(out->p + out->n, in, n * sizeof *in);
        out->n += n;
        return true;
    }
    gs__cpbuf_t *cur = &tmp[0], *nxt = &tmp[1], *orig = &tmp[2];
    if (!gs__cpbuf_reserve(cur, n + 1))
        return false;
    memcpy(cur->p, in, n * sizeof *in);
    cur->n = n;
    gs__cpbuf_t nfc_tmp = {0};
    bool ok = false;
    for (int pass = 0; pass < FTFY_MAX_PASSES; pass++) {
        if (!gs__cpbuf_reserve(orig, cur->n + 1))
            goto out;
        memcpy(orig->p, cur->p, cur->n * sizeof *cur->p);
        orig->n = cur->n;
        if (unescape && !run(gs__html_unescape_ftfy, 1, &cur, &nxt))
            goto out;
        for (int step = 0; step < FTFY_MAX_PASSES; step++) { // fix_encoding repeats too
            // the byte form borrows nfc_tmp, which is free until the NFC step
            if (!gs__cpbuf_reserve(nxt, cur->n + 1) || !gs__cpbuf_reserve(&nfc_tmp, cur->n / 4 + 1))
                goto out;
            size_t m = fix_encoding_step(cur->p, cur->n, (uint8_t *)nfc_tmp.p, nxt->p);
            if (m == 0)
                break;
            nxt->n = m;
            gs__cpbuf_t *t = cur;
            cur = nxt;
            nxt = t;
        }
        if (!run(fix_c1_controls, 1, &cur, &nxt) || !run(fix_ligatures, 3, &cur, &nxt) ||
            !run(fix_width, 2, &cur, &nxt) || !run(uncurl_quotes, 1, &cur, &nxt) ||
            !run(remove_terminal_escapes, 1, &cur, &nxt) ||
            !run(remove_control_chars, 1, &cur, &nxt))
            goto out;
        if (!gs__uc_nfc(cur->p, cur->n, &nfc_tmp, nxt))
            goto out;
        gs__cpbuf_t *t = cur;
        cur = nxt;
        nxt = t;
        if (cur->n == orig->n && memcmp(cur->p, orig->p, cur->n * sizeof *cur->p) == 0)
            break;
    }
    if (!gs__cpbuf_reserve(out, out->n + cur->n + 1))
        goto out;
    memcpy(out->p + out->n, cur->p, cur->n * sizeof *cur->p);
    out->n += cur->n;
    ok = true;
out:
    gs__cpbuf_cleanup(&nfc_tmp);
    return ok;
}

bool gs__clip_ftfy(const uint32_t *in, size_t n, gs__cpbuf_t *out, gs__cpbuf_t tmp[3])
{
    out->n = 0;
    bool unescape = true;
    for (size_t pos = 0; pos < n;) {
        size_t end = pos;
        while (end < n && in[end] != '\n')
            end++;
        if (end < n)
            end++; // the segment keeps its '\n'
        for (size_t i = pos; i < end && unescape; i++)
            if (in[i] == '<')
                unescape = false; // for this segment and every later one
        if (!fix_segment(in + pos, end - pos, unescape, out, tmp))
            return false;
        pos = end;
    }
    return true;
}
