// The CLIP BPE tokenizer: text -> the 77 token ids of open_clip's SimpleTokenizer (open_clip
// v2.32.0, clean='lower'), id for id. The pipeline, in open_clip's order:
//   1. a subset of ftfy.fix_text (6.3.1): its HTML unescape (text without '<'), UTF-8-read-as-
//      latin-1/cp1252 mojibake (a simplified detector), C1 controls read as cp1252, Latin
//      ligatures, fullwidth/halfwidth forms, curly quotes, terminal escapes, control characters,
//      NFC; line by line and repeated until nothing changes, as ftfy does;
//   2. html.unescape twice (Python 3.11 rules: HTML5 names, names without ';', numeric refs);
//   3. strip, split on str.isspace() characters and join with one space, str.lower() (full
//      Unicode, final sigma);
//   4. the regex <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
//      [^\s\p{L}\p{N}]+ (case-insensitive, Unicode 15.0 classes of the `regex` module);
//   5. byte-level BPE by merge rank; the literal "<start_of_text>"/"<end_of_text>" become
//      SOT/EOT; [SOT] + ids + [EOT], truncated to the context (last = EOT) and 0-padded.
// Not here: the rest of ftfy (its full mojibake heuristics), decoding ids back to text.
// See docs/MODELS.md "CLIP tokenizer" for the measured fixture agreement and speed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct gs_clip_bpe gs_clip_bpe_t;

// gs_clip_bpe_open: load a vocabulary. `path` is either
//   - open_clip's bpe_simple_vocab_16e6.txt.gz (gzip or plain text, read with zlib): line 0 is a
//     header, lines 1..48894 the merges "A B"; ids are the 256 byte symbols, the same + "</w>",
//     the merges in file order, then <start_of_text> (49406) and <end_of_text> (49407); or
//   - a Hugging Face CLIP folder, or the path of its vocab.json, with merges.txt beside it
//     (same BPE; ids from vocab.json; SOT/EOT are "<start_of_text>"/"<end_of_text>" or
//     "<|startoftext|>"/"<|endoftext|>").
// On success *out is a new handle (close with gs_clip_bpe_close). Errors (logged once, with the
// file and line): GS_ENOTFOUND (no such file), GS_EIO (read error), GS_EFORMAT (malformed or
// truncated vocabulary), GS_EINVAL (NULL arguments), GS_ENOMEM.
gs_err gs_clip_bpe_open(const char *path, gs_clip_bpe_t **out);

// gs_clip_bpe_close: free the handle; NULLs *p; accepts NULL and *p == NULL.
void gs_clip_bpe_close(gs_clip_bpe_t **p);

// GS_CLIP_BPE_CONTEXT: open_clip's context length.
#define GS_CLIP_BPE_CONTEXT 77
// GS_CLIP_BPE_MAX_TEXT_NBYTES: the longest text gs_clip_bpe_encode accepts (GS_ETOOBIG beyond).
#define GS_CLIP_BPE_MAX_TEXT_NBYTES (1u << 20)

// gs_clip_bpe_encode: encode NUL-terminated UTF-8 `text` into exactly ctx_len ids (open_clip uses
// 77): [SOT] + BPE ids + [EOT]; when longer than ctx_len the first ctx_len are kept and the last
// one set to EOT; the rest is 0. *out_n_tokens (optional) receives the count before padding
// (<= ctx_len), *out_n_untruncated (optional) the count before truncation. When
// out_n_untruncated is NULL, BPE stops once the context is full (same ids, less work).
// Invalid UTF-8 is decoded as Python's bytes.decode("utf-8", "replace") does (each maximal
// ill-formed subsequence becomes U+FFFD), so the ids equal open_clip's on that decoded string.
// Returns GS_EINVAL (NULL self/text/out_ids, ctx_len < 1), GS_ETOOBIG (text longer than
// GS_CLIP_BPE_MAX_TEXT_NBYTES), GS_ENOMEM; nothing is logged. Allocates its scratch per call.
// Thread-safe: any number of concurrent encodes on one handle (the handle is read-only).
gs_err gs_clip_bpe_encode(const gs_clip_bpe_t *self, const char *text, int32_t *out_ids,
                          int ctx_len, int *out_n_tokens, int *out_n_untruncated);

// gs_clip_bpe_encode_n: gs_clip_bpe_encode of text[0..nbytes), which may contain NUL bytes
// (U+0000 is text to open_clip; ftfy deletes it). Same errors and thread-safety.
gs_err gs_clip_bpe_encode_n(const gs_clip_bpe_t *self, const char *text, size_t nbytes,
                            int32_t *out_ids, int ctx_len, int *out_n_tokens,
                            int *out_n_untruncated);

// gs_clip_bpe_token_str: the BPE string of an id (e.g. "planes</w>", "<start_of_text>", bytes
// shown in the bytes_to_unicode alphabet), for display (`geoscribe tokenize`). Borrowed, valid
// until close; NULL for an id outside the vocabulary. Thread-safe.
const char *gs_clip_bpe_token_str(const gs_clip_bpe_t *self, int32_t id);

// gs_clip_bpe_sot / _eot: the start / end of text ids (49406 / 49407 for CLIP).
int32_t gs_clip_bpe_sot(const gs_clip_bpe_t *self);
int32_t gs_clip_bpe_eot(const gs_clip_bpe_t *self);
// gs_clip_bpe_vocab_size: number of ids (49408 for CLIP).
int32_t gs_clip_bpe_vocab_size(const gs_clip_bpe_t *self);
