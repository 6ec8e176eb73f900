// libFuzzer target for model/spm: SentencePiece model files and text.
//
// The first input byte picks the mode:
//   even: the rest is a tokenizer.model (protobuf). Whatever loads must then encode and
//         decode a few fixed texts and the input itself without fault, with ids in range.
//   odd:  the rest is text for the real LLaMA-2 model (GS_FUZZ_SPM_MODEL, loaded once; the
//         target falls back to the first mode when it is absent). Valid UTF-8 without U+2581
//         must round-trip exactly through encode and decode; the transformers layer must
//         encode it too.
// Seeds (tests/fuzz/corpus/spm_model/) are tiny hand-built models and texts made by
// gen_seeds.py in that folder.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "model/spm.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_spm_model: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_IDS 8192

static gs_spm_t *llama;
static int llama_tried;

static void quiet(gs_log_level_t level, const char *line, void *ud)
{
    (void)level, (void)line, (void)ud;
}

// exercise: encode/decode `text` with `spm`; every id must name a piece of the model.
static void exercise(const gs_spm_t *spm, const char *text, size_t n)
{
    int32_t *ids = gs_xmalloc(MAX_IDS * sizeof *ids);
    size_t n_ids = 0;
    gs_err err = gs_spm_encode(spm, text, n, 0, ids, MAX_IDS, &n_ids);
    CHECK(err == GS_OK || err == GS_ETOOBIG);
    CHECK(n_ids <= MAX_IDS);
    for (size_t i = 0; i < n_ids; i++)
        CHECK(ids[i] >= 0 && ids[i] < gs_spm_n_pieces(spm));
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    err = gs_spm_decode(spm, ids, n_ids, 0, &b);
    CHECK(err == GS_OK || err == GS_ETOOBIG);
    gs_buf_reset(&b);
    err = gs_spm_encode_hf(spm, text, n, ids, MAX_IDS, &n_ids);
    CHECK(err == GS_OK || err == GS_ETOOBIG);
    for (size_t i = 0; i < n_ids; i++)
        CHECK(ids[i] >= 0 && ids[i] < gs_spm_n_vocab(spm));
    err = gs_spm_decode_hf(spm, ids, n_ids, GS_SPM_SKIP_SPECIAL, &b);
    CHECK(err == GS_OK || err == GS_ETOOBIG);
    gs_buf_cleanup(&b);
    gs_free(ids);
}

static int valid_utf8_without_space_symbol(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (len == 0 || i + len > n)
            return 0;
        unsigned cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000) || cp == 0x2581)
            return 0;
        i += len;
    }
    return 1;
}

static void roundtrip_llama(const char *text, size_t n)
{
    if (!valid_utf8_without_space_symbol((const unsigned char *)text, n))
        return;
    int32_t *ids = gs_xmalloc(MAX_IDS * sizeof *ids);
    size_t n_ids = 0;
    if (gs_spm_encode(llama, text, n, 0, ids, MAX_IDS, &n_ids) == GS_OK) {
        gs_buf_t b;
        gs_buf_init(&b, 1 << 20);
        CHECK(gs_spm_decode(llama, ids, n_ids, 0, &b) == GS_OK);
        CHECK(b.len == n && memcmp(b.data, text, n) == 0);
        gs_buf_cleanup(&b);
    }
    gs_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gs_log_set(quiet, NULL);
    if (size == 0)
        return 0;
    if (!llama_tried) {
        llama_tried = 1;
        const char *path = gs_getenv("GS_FUZZ_SPM_MODEL");
        if (path && gs_spm_open(path, &llama) != GS_OK)
            llama = NULL;
    }
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) && llama) {
        exercise(llama, rest, n);
        roundtrip_llama(rest, n);
        return 0;
    }
    gs_spm_t *spm = NULL;
    if (gs_spm_load(rest, n, &spm) != GS_OK) {
        CHECK(spm == NULL);
        return 0;
    }
    static const char *texts[] = {"",
                                  " ",
                                  "hello world",
                                  "  two  spaces ",
                                  "\xC3\xA9t\xC3\xA9",
                                  "\xff\xfe",
                                  "<unk><s></s><image>",
                                  "\xE2\x96\x81x"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        exercise(spm, texts[i], strlen(texts[i]));
    exercise(spm, rest, n < 512 ? n : 512);
    gs_spm_close(&spm);
    return 0;
}
