// HTML character references as Python 3.11's html.unescape and ftfy 6.3.1's unescape_html handle
// them, over code points. Written from the documented behaviour of those functions (the regex
// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` and its replacement rules); the
// tables come from Python's html module at build time (tools/gen_html_entities.py).
#include <stdbool.h>

#include "model/html_int.h"

// ---- table lookups ----------------------------------------------------------------------------

// cmp_name: compare code points s[0..n) with an ASCII name, as strcmp orders them.
static int cmp_name(const uint32_t *s, size_t n, const char *name, size_t len)
{
    size_t m = n < len ? n : len;
    for (size_t i = 0; i < m; i++) {
        uint32_t a = s[i], b = (unsigned char)name[i];
        if (a != b)
            return a < b ? -1 : 1;
    }
    return n == len ? 0 : (n < len ? -1 : 1);
}

static const gs__html_entity_t *find_entity(const gs__html_entity_t *tab, size_t n_tab,
                                            const uint32_t *s, size_t n)
{
    size_t lo = 0, hi = n_tab;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_name(s, n, tab[mid].name, tab[mid].len);
        if (c == 0)
            return &tab[mid];
        if (c > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static size_t put_value(const gs__html_entity_t *e, uint32_t *out)
{
    size_t k = 0;
    while (k < 3 && e->cp[k])
        out[k] = e->cp[k], k++;
    return k;
}

// put_charref: Python's _replace_charref for a number (num > 0x10FFFF stands for any bigger one).
static size_t put_charref(uint32_t num, uint32_t *out)
{
    size_t lo = 0, hi = gs__n_html_invalid_charrefs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gs__html_invalid_charrefs[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < gs__n_html_invalid_charrefs && gs__html_invalid_charrefs[lo].num == num) {
        out[0] = gs__html_invalid_charrefs[lo].cp;
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        out[0] = 0xFFFD;
        return 1;
    }
    lo = 0;
    hi = gs__n_html_invalid_codepoints;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (gs__html_invalid_codepoints[mid] < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < gs__n_html_invalid_codepoints && gs__html_invalid_codepoints[lo] == num)
        return 0;
    out[0] = num;
    return 1;
}

static int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

// parse_number: digits of in[i..n) in `base` (10 or 16), saturating above U+10FFFF. Returns
// the end of the digit run (== i when there is none).
static size_t parse_number(const uint32_t *in, size_t n, size_t i, int base, uint32_t *out_num)
{
    uint32_t num = 0;
    size_t k = i;
    for (; k < n; k++) {
        int v = hex_value(in[k]);
        if (v < 0 || v >= base)
            break;
        num = num > 0x10FFFF ? 0x110000 : num * (uint32_t)base + (uint32_t)v;
    }
    *out_num = num > 0x10FFFF ? 0x110000 : num;
    return k;
}

// ---- html.unescape ----------------------------------------------------------------------------

static bool is_name_char(uint32_t c)
{
    return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
             c == ';');
}

// named: Python's rule for s = name[;]: the whole name, else its longest prefix (of length >= 2)
// that is a legacy name without ';', else unchanged.
static size_t put_named(const uint32_t *s, size_t n, uint32_t *out)
{
    const gs__html_entity_t *e = find_entity(gs__html5, gs__n_html5, s, n);
    if (e)
        return put_value(e, out);
    for (size_t x = n - 1; x >= 2; x--) {
        e = find_entity(gs__html5, gs__n_html5, s, x);
        if (e) {
            size_t k = put_value(e, out);
            for (size_t i = x; i < n; i++)
                out[k++] = s[i];
            return k;
        }
    }
    out[0] = '&';
    for (size_t i = 0; i < n; i++)
        out[1 + i] = s[i];
    return n + 1;
}

size_t gs__html_unescape(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (in[i] != '&') {
            out[o++] = in[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            uint32_t num;
            size_t k = parse_number(in, n, j + 1, 10, &num);
            if (k == j + 1 && j + 1 < n && (in[j + 1] == 'x' || in[j + 1] == 'X')) {
                k = parse_number(in, n, j + 2, 16, &num);
                if (k == j + 2)
                    k = j + 1; // "&#x" without digits: no match
            }
            if (k == j + 1) { // no reference: '&' stays, scanning goes on after it
                out[o++] = in[i++];
                continue;
            }
            if (k < n && in[k] == ';')
                k++;
            o += put_charref(num, out + o);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && is_name_char(in[k]))
            k++;
        if (k == j) {
            out[o++] = in[i++];
            continue;
        }
        if (k < n && in[k] == ';')
            k++;
        o += put_named(in + j, k - j, out + o);
        i = k;
    }
    return o;
}

// ---- ftfy's unescape_html ---------------------------------------------------------------------

static bool is_ascii_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ftfy_numeric: for body = the characters between "&#" and ";", html.unescape("&#body;") when it
// consumes the ';' (the body is all decimal digits, or x/X and hex digits); else -1.
static long ftfy_numeric(const uint32_t *body, size_t n, uint32_t *out)
{
    uint32_t num;
    size_t k = parse_number(body, n, 0, 10, &num);
    if (k == 0 && n > 1 && (body[0] == 'x' || body[0] == 'X'))
        k = parse_number(body, n, 1, 16, &num);
    if (k == 0 || k != n)
        return -1;
    return (long)put_charref(num, out);
}

size_t gs__html_unescape_ftfy(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (in[i] != '&') {
            out[o++] = in[i++];
            continue;
        }
        // &#?[0-9A-Za-z]{1,24};
        size_t j = i + 1;
        bool hash = j < n && in[j] == '#';
        if (hash)
            j++;
        size_t k = j;
        while (k < n && k - j < 25 && is_ascii_alnum(in[k]))
            k++;
        if (k == j || k - j > 24 || k >= n || in[k] != ';') {
            out[o++] = in[i++];
            continue;
        }
        size_t end = k + 1; // after ';'
        if (hash) {
            long m = ftfy_numeric(in + j, k - j, out + o);
            if (m >= 0) {
                o += (size_t)m;
                i = end;
                continue;
            }
        } else {
            const gs__html_entity_t *e = find_entity(gs__html5, gs__n_html5, in + j, end - j);
            if (!e)
                e = find_entity(gs__html_ftfy_upper, gs__n_html_ftfy_upper, in + j, end - j);
            if (e) {
                o += put_value(e, out + o);
                i = end;
                continue;
            }
        }
        for (; i < end; i++) // no replacement: the matched text stays, scanning resumes after it
            out[o++] = in[i];
    }
    return o;
}
