// libFuzzer target for model/clip_bpe: arbitrary bytes as text for the CLIP tokenizer, whose
// vocabulary (GS_FUZZ_CLIP_VOCAB, open_clip's bpe_simple_vocab_16e6.txt.gz) is loaded once; the
// target does nothing when it is unset. Beyond "no crash", every input checks that:
//   - the ids row is [SOT] + ids in range + [EOT] + zeros, and the counts agree with it;
//   - stopping BPE early (no untruncated count) and a shorter context give the same prefix;
//   - the whole input with its NUL bytes (encode_n) and the no-ftfy path encode as well;
//   - the simple and the heap BPE agree on the input taken as one word.
// Seeds: tests/fuzz/corpus/clip_bpe/ (short hand-written texts).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "model/clip_bpe.h"
#include "model/clip_bpe_int.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_clip_bpe: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CTX GS_CLIP_BPE_CONTEXT

static gs_clip_bpe_t *vocab;
static int vocab_tried;

static void check_row(const int32_t *ids, int ctx, int nt, int nu)
{
    int32_t sot = gs_clip_bpe_sot(vocab), eot = gs_clip_bpe_eot(vocab);
    CHECK(nu >= 2 && nt == (nu < ctx ? nu : ctx));
    if (ctx > 1)
        CHECK(ids[0] == sot);
    CHECK(ids[nt - 1] == eot);
    for (int i = 0; i < nt; i++)
        CHECK(ids[i] >= 0 && ids[i] < gs_clip_bpe_vocab_size(vocab));
    for (int i = nt; i < ctx; i++)
        CHECK(ids[i] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!vocab_tried) {
        vocab_tried = 1;
        const char *path = getenv("GS_FUZZ_CLIP_VOCAB");
        if (path && *path && gs_clip_bpe_open(path, &vocab) != GS_OK)
            abort(); // the configured vocabulary must load
    }
    if (!vocab)
        return 0;
    char *text = gs_xmalloc(size + 1); // NUL-terminated copy: the text ends at the first NUL
    memcpy(text, data, size);
    text[size] = '\0';

    int32_t ids[CTX], early[CTX], shorter[8];
    int nt, nu, nt2, nu2;
    CHECK(gs_clip_bpe_encode(vocab, text, ids, CTX, &nt, &nu) == GS_OK);
    check_row(ids, CTX, nt, nu);
    CHECK(gs_clip_bpe_encode(vocab, text, early, CTX, &nt2, NULL) == GS_OK);
    CHECK(nt2 == nt && memcmp(ids, early, sizeof ids) == 0);
    int ctx = 1 + (int)(size % 8);
    CHECK(gs_clip_bpe_encode(vocab, text, shorter, ctx, &nt2, &nu2) == GS_OK);
    check_row(shorter, ctx, nt2, nu2);
    CHECK(nu2 == nu);
    if (nu <= ctx)
        CHECK(memcmp(shorter, ids, (size_t)nu * sizeof *ids) == 0);
    else
        CHECK(memcmp(shorter, ids, (size_t)(ctx - 1) * sizeof *ids) == 0);

    // all bytes, NULs included; and the path without the ftfy subset
    CHECK(gs_clip_bpe_encode_n(vocab, (const char *)data, size, ids, CTX, &nt, &nu) == GS_OK);
    check_row(ids, CTX, nt, nu);
    CHECK(gs__clip_bpe_encode_ex(vocab, (const char *)data, size, false, ids, CTX, &nt, &nu) ==
          GS_OK);
    check_row(ids, CTX, nt, nu);

    // the two BPE algorithms on the raw bytes as one word
    if (size > 0 && size <= 512) {
        int32_t *a = gs_xmalloc(size * sizeof *a), *b = gs_xmalloc(size * sizeof *b);
        long ma = gs__clip_bpe_word(vocab, data, size, 1, a);
        long mb = gs__clip_bpe_word(vocab, data, size, 2, b);
        CHECK(ma > 0 && ma == mb && memcmp(a, b, (size_t)ma * sizeof *a) == 0);
        gs_free(a);
        gs_free(b);
    }
    gs_free(text);
    return 0;
}
