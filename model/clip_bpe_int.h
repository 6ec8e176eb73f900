// Internals of the CLIP tokenizer shared by clip_bpe.c, clip_bpe_ftfy.c and the tests
// (model-private).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/clip_bpe.h"
#include "model/unicode_int.h"

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
