// HTML character references for the CLIP tokenizer (model-private): Python's html.unescape and
// ftfy's narrower unescape_html, over code-point arrays. The tables (HTML5 named references,
// numeric replacements, ftfy's upper-case names) are generated at build time from Python's html
// module by tools/gen_html_entities.py (see model/CMakeLists.txt). No state: thread-safe.
#pragma once

#include <stddef.h>
#include <stdint.h>

// ---- generated tables (tools/gen_html_entities.py) -------------------------------------------

typedef struct {
    const char *name; // without '&'; HTML5 names may end with ';' or not ("amp;", "amp")
    uint8_t len;
    uint32_t cp[3]; // the value, 0-terminated when shorter than 3
} gs__html_entity_t;
typedef struct {
    uint32_t num, cp;
} gs__html_charref_t;

extern const gs__html_entity_t gs__html5[]; // html.entities.html5, sorted by name
extern const size_t gs__n_html5;
extern const gs__html_entity_t gs__html_ftfy_upper[]; // ftfy's "NTILDE;" names, sorted
extern const size_t gs__n_html_ftfy_upper;
extern const gs__html_charref_t gs__html_invalid_charrefs[]; // html._invalid_charrefs, sorted
extern const size_t gs__n_html_invalid_charrefs;
extern const uint32_t gs__html_invalid_codepoints[]; // html._invalid_codepoints, sorted
extern const size_t gs__n_html_invalid_codepoints;

// ---- unescaping -------------------------------------------------------------------------------

// gs__html_unescape: Python 3.11's html.unescape(in[0..n)) into out (room for n code points; the
// result is never longer). Numeric references with or without ';' (huge numbers give U+FFFD,
// the HTML5 replacements such as &#x80; -> U+20AC, forbidden code points vanish), named references
// of up to 32 characters, legacy names without ';' and their longest-prefix rule ("&ampx" ->
// "&x"). Returns the number of code points written.
size_t gs__html_unescape(const uint32_t *in, size_t n, uint32_t *out);

// gs__html_unescape_ftfy: ftfy 6.3.1's unescape_html (one pass): only "&name;" / "&#num;" of at
// most 24 ASCII alphanumerics with the ';', plus upper-cased names such as "&NTILDE;". Output
// fits in n code points. Returns the number written.
size_t gs__html_unescape_ftfy(const uint32_t *in, size_t n, uint32_t *out);
