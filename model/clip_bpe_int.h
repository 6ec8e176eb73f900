// Internals of the CLIP tokenizer shared by clip_bpe.c (encoding), clip_bpe_vocab.c (the handle:
// vocabulary files, merges table), clip_bpe_ftfy.c and the tests (model-private).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/clip_bpe.h"
#include "model/unicode_int.h"

// open_clip keeps merges[1 : 49152 - 256 - 2 + 1] of the file: 48894 merges after a header line.
#define GS__CLIP_N_MERGES 48894

typedef struct {
    int32_t a, b;   // symbol ids of the pair; a == -1: empty slot
    uint32_t rank;  // merge rank (line order)
    int32_t merged; // id of the joined symbol
} gs__clip_pair_t;

// The handle: read-only once gs_clip_bpe_open returns.
struct gs_clip_bpe {
    int32_t n_vocab;          // 49408 for CLIP
    char *strings;            // every token string, NUL-terminated, one after another
    uint32_t *str_off;        // (n_vocab) offset of each id's string; UINT32_MAX: no string
    int32_t byte_id[256];     // byte -> id of its bytes_to_unicode symbol
    int32_t byte_end_id[256]; // byte -> id of the symbol + "</w>"
    gs__clip_pair_t *pairs;   // merges by (a, b): open addressing, (pair_mask + 1) slots
    size_t pair_mask;
    int pair_shift;   // 64 - log2(slots)
    int32_t sot, eot; // 49406, 49407
};

static inline size_t gs__clip_pair_hash(const gs_clip_bpe_t *self, int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return (size_t)(k >> self->pair_shift);
}

// gs__clip_pair_find: the merge of symbols (a, b), NULL if they do not merge.
static inline const gs__clip_pair_t *gs__clip_pair_find(const gs_clip_bpe_t *self, int32_t a,
                                                        int32_t b)
{
    size_t h = gs__clip_pair_hash(self, a, b);
    for (;;) {
        const gs__clip_pair_t *e = &self->pairs[h];
        if (e->a == a && e->b == b)
            return e;
        if (e->a < 0)
            return NULL;
        h = (h + 1) & self->pair_mask;
    }
}

// gs__clip_ftfy: the ftfy.fix_text subset of clip_bpe.h step 1 over in[0..n) into out, using
// tmp[0..3) as scratch (all grown as needed, owned by the caller). false when out of memory.
bool gs__clip_ftfy(const uint32_t *in, size_t n, gs__cpbuf_t *out, gs__cpbuf_t tmp[3]);

// gs__clip_clean: steps 1-3 of clip_bpe.h (step 1 only when use_ftfy) on UTF-8 text[0..nbytes):
// the string the regex sees, as code points in *out. GS_ENOMEM or GS_OK.
gs_err gs__clip_clean(const char *text, size_t nbytes, bool use_ftfy, gs__cpbuf_t *out);

// gs__clip_bpe_encode_ex: gs_clip_bpe_encode with ftfy switchable (tests compare the no-ftfy
// path with the fixture's ids_without_ftfy).
gs_err gs__clip_bpe_encode_ex(const gs_clip_bpe_t *self, const char *text, size_t nbytes,
                              bool use_ftfy, int32_t *out_ids, int ctx_len, int *out_n_tokens,
                              int *out_n_untruncated);

// gs__clip_bpe_word: BPE of one pre-tokenized piece (its UTF-8 bytes, n >= 1) into out (room for
// n ids); returns the number of ids. mode 0 picks the algorithm by length, 1 forces the simple
// quadratic one, 2 the heap one (tests check that they agree). -1 when out of memory.
long gs__clip_bpe_word(const gs_clip_bpe_t *self, const uint8_t *bytes, size_t n, int mode,
                       int32_t *out);
