// model/spm: the SentencePiece tokenizer against python sentencepiece 0.1.97 (all cases of
// ../shared/fixtures/llama_tokenizer, encode and decode, exact), the transformers layer against
// the LLaVA prompts of llava_tiny, and hand-built models for the corners LLaMA's model does not
// reach (ties, user-defined and unused pieces, no byte fallback, refused model types).
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "model/spm.h"
#include "testutil.h"

#define MAX_IDS 4096

static char *fixture_path(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/%s", GS_SHARED_DIR, rel);
    return path;
}

// hex_decode: "4869" -> "Hi"; returns a gs_xmalloc'd buffer and its length.
static char *hex_decode(const char *hex, size_t *out_n)
{
    size_t n = strlen(hex) / 2;
    char *out = gs_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        ck_assert(sscanf(hex + 2 * i, "%2x", &v) == 1);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *out_n = n;
    return out;
}

static json_t *load_cases(void)
{
    json_error_t jerr;
    json_t *root =
        json_load_file(fixture_path("llama_tokenizer/tokenizer_cases.json"), JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(root != NULL, "tokenizer_cases.json: %s", jerr.text);
    return root;
}

static gs_spm_t *open_llama(void)
{
    gs_spm_t *spm = NULL;
    ck_assert_int_eq(gs_spm_open(fixture_path("llama_tokenizer/tokenizer.model"), &spm), GS_OK);
    return spm;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

// ---- the LLaMA-2 model and the 111 cases ---------------------------------------------------

START_TEST(test_spm_llama_model_spec)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llama();
    ck_assert_int_eq(gs_spm_n_pieces(spm), 32000);
    ck_assert_int_eq(gs_spm_unk_id(spm), 0);
    ck_assert_int_eq(gs_spm_bos_id(spm), 1);
    ck_assert_int_eq(gs_spm_eos_id(spm), 2);
    ck_assert_int_eq(gs_spm_pad_id(spm), -1);
    ck_assert_int_eq(gs_spm_type(spm, 0), GS_SPM_UNKNOWN);
    ck_assert_int_eq(gs_spm_type(spm, 1), GS_SPM_CONTROL);
    for (int b = 0; b < 256; b++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        ck_assert_int_eq(gs_spm_piece_id(spm, piece), b + 3);
        ck_assert_int_eq(gs_spm_type(spm, b + 3), GS_SPM_BYTE);
    }
    ck_assert_str_eq(gs_spm_piece(spm, 29871), "\xE2\x96\x81");
    ck_assert_ptr_null(gs_spm_piece(spm, 32000));
    gs_spm_close(&spm);
    ck_assert_ptr_null(spm);
    gs_spm_close(&spm); // accepts NULL
}
END_TEST

START_TEST(test_spm_llama_cases_encode_exact)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llama();
    json_t *root = load_cases();
    json_t *cases = json_object_get(root, "cases");
    ck_assert_int_eq(json_array_size(cases), 111);
    int32_t *ids = gs_xmalloc(MAX_IDS * sizeof *ids);
    size_t i, n_bad = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        size_t tn;
        char *text = hex_decode(json_string_value(json_object_get(c, "text_utf8_hex")), &tn);
        size_t n = 0;
        ck_assert_int_eq(gs_spm_encode(spm, text, tn, 0, ids, MAX_IDS, &n), GS_OK);
        json_t *want = json_object_get(c, "ids");
        json_t *pieces = json_object_get(c, "pieces");
        bool ok = n == json_array_size(want);
        for (size_t k = 0; ok && k < n; k++) {
            ok = ids[k] == json_integer_value(json_array_get(want, k)) &&
                 strcmp(gs_spm_piece(spm, ids[k]), json_string_value(json_array_get(pieces, k))) ==
                     0;
        }
        if (!ok) {
            fprintf(stderr, "case %zu %s: encode mismatch\n", i,
                    json_string_value(json_object_get(c, "text_utf8_hex")));
            print_ids("got", ids, n);
            int32_t w[MAX_IDS];
            for (size_t k = 0; k < json_array_size(want) && k < MAX_IDS; k++)
                w[k] = (int32_t)json_integer_value(json_array_get(want, k));
            print_ids("want", w, json_array_size(want));
            n_bad++;
        }
        gs_free(text);
    }
    ck_assert_msg(n_bad == 0, "%zu of 111 cases differ", n_bad);
    gs_free(ids);
    json_decref(root);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_llama_cases_decode_exact)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llama();
    json_t *root = load_cases();
    json_t *cases = json_object_get(root, "cases");
    int32_t *ids = gs_xmalloc(MAX_IDS * sizeof *ids);
    size_t i, n_bad = 0;
    json_t *c;
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    json_array_foreach(cases, i, c)
    {
        json_t *want_ids = json_object_get(c, "ids");
        size_t n = json_array_size(want_ids);
        for (size_t k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(want_ids, k));
        size_t wn;
        char *want = hex_decode(json_string_value(json_object_get(c, "decoded_utf8_hex")), &wn);
        gs_buf_reset(&b);
        ck_assert_int_eq(gs_spm_decode(spm, ids, n, 0, &b), GS_OK);
        if (b.len != wn || memcmp(b.data, want, wn) != 0) {
            fprintf(stderr, "case %zu: decode got \"%s\" want \"%s\"\n", i, b.data, want);
            n_bad++;
        }
        // with BOS in front the text is the same (control pieces are invisible)
        json_t *wb = json_object_get(c, "ids_with_bos");
        ck_assert_int_eq(json_integer_value(json_array_get(wb, 0)), 1);
        gs_free(want);
    }
    ck_assert_msg(n_bad == 0, "%zu of 111 decodes differ", n_bad);
    gs_buf_cleanup(&b);
    gs_free(ids);
    json_decref(root);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_llama_decode_bytes_and_edges)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llama();
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    // "é" as byte pieces 0xC3 0xA9, then a lone continuation byte -> U+FFFD
    int32_t ids[] = {1, 0xC3 + 3, 0xA9 + 3, 0x80 + 3, 2, 0};
    ck_assert_int_eq(gs_spm_decode(spm, ids, 6, 0, &b), GS_OK);
    ck_assert_str_eq(b.data, "\xC3\xA9\xEF\xBF\xBD \xE2\x81\x87 ");
    // ids beyond the model are skipped; an empty decode is an empty string
    gs_buf_reset(&b);
    int32_t beyond[] = {32000, 40000, -5};
    ck_assert_int_eq(gs_spm_decode(spm, beyond, 3, 0, &b), GS_OK);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    // a lone leading "▁" eats the dummy-prefix space; the next one is kept
    gs_buf_reset(&b);
    int32_t sp[] = {29871, 29871};
    ck_assert_int_eq(gs_spm_decode(spm, sp, 2, 0, &b), GS_OK);
    ck_assert_str_eq(b.data, " ");
    // a capped buffer reports GS_ETOOBIG
    gs_buf_t small;
    gs_buf_init(&small, 3);
    int32_t words[] = {1967, 1967};
    ck_assert_int_eq(gs_spm_decode(spm, words, 2, 0, &small), GS_ETOOBIG);
    gs_buf_cleanup(&small);
    gs_buf_cleanup(&b);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_llama_encode_limits_and_long_text)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llama();
    int32_t ids[4];
    size_t n = 99;
    ck_assert_int_eq(gs_spm_encode(spm, "", 0, 0, ids, 4, &n), GS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(gs_spm_encode(spm, "a long sentence of words", 24, 0, ids, 4, &n), GS_ETOOBIG);
    // invalid UTF-8 becomes U+FFFD (a piece of LLaMA's vocabulary)
    ck_assert_int_eq(gs_spm_encode(spm, "\xff", 1, GS_SPM_NO_DUMMY_PREFIX, ids, 4, &n), GS_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(gs_spm_piece(spm, ids[0]), "\xEF\xBF\xBD");
    // 200 kB of text encodes (heap-based merging, not quadratic) and round-trips
    size_t tn = 200000;
    char *text = gs_xmalloc(tn + 1);
    const char *words = "airport runway with parked planes near a river, 12 km\xC2\xB2 ";
    for (size_t i = 0; i < tn; i++)
        text[i] = words[i % strlen(words)];
    tn -= tn % strlen(words);
    text[tn] = '\0';
    int32_t *big = gs_xmalloc(tn * sizeof *big);
    ck_assert_int_eq(gs_spm_encode(spm, text, tn, 0, big, tn, &n), GS_OK);
    ck_assert_uint_gt(n, tn / 8);
    gs_buf_t b;
    gs_buf_init(&b, 1 << 22);
    ck_assert_int_eq(gs_spm_decode(spm, big, n, 0, &b), GS_OK);
    ck_assert_uint_eq(b.len, tn);
    ck_assert(memcmp(b.data, text, tn) == 0);
    gs_buf_cleanup(&b);
    gs_free(big);
    gs_free(text);
    gs_spm_close(&spm);
}
END_TEST

// ---- the transformers layer (llava-hf settings) ------------------------------------------

static const int32_t single_ids[] = {1,   3148, 1001,  29901, 29871, 32000, 13,    4002, 29581,
                                     445, 1967, 29889, 319,   1799,  9047,  13566, 29901};
static const int32_t pair_ids[] = {1,     3148,  1001, 29901, 29871, 32000, 13,
                                   32000, 13,    5618, 3939,  1546,  278,   1023,
                                   4558,  29973, 319,  1799,  9047,  13566, 29901};

static gs_spm_t *open_llava_dir(void)
{
    gs_spm_t *spm = NULL;
    ck_assert_int_eq(gs_spm_open_dir(fixture_path("llava_tiny"), &spm), GS_OK);
    return spm;
}

static void check_hf(gs_spm_t *spm, const char *text, const int32_t *want, size_t n_want)
{
    int32_t ids[256];
    size_t n = 0;
    ck_assert_int_eq(gs_spm_encode_hf(spm, text, strlen(text), ids, 256, &n), GS_OK);
    bool ok = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!ok) {
        print_ids("got", ids, n);
        print_ids("want", want, n_want);
    }
    ck_assert_msg(ok, "ids of \"%s\" differ", text);
}

START_TEST(test_spm_hf_llava_prompts_exact)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llava_dir();
    ck_assert_int_eq(gs_spm_n_vocab(spm), 32002);
    ck_assert_int_eq(gs_spm_piece_id(spm, "<image>"), 32000);
    ck_assert_int_eq(gs_spm_piece_id(spm, "<pad>"), 32001);
    ck_assert_int_eq(gs_spm_pad_id(spm), 32001);
    ck_assert_str_eq(gs_spm_piece(spm, 32000), "<image>");
    check_hf(spm, "USER: <image>\nDescribe this image. ASSISTANT:", single_ids,
             sizeof single_ids / sizeof single_ids[0]);
    check_hf(spm,
             "USER: <image>\n<image>\nWhat changed between the two images? ASSISTANT:", pair_ids,
             sizeof pair_ids / sizeof pair_ids[0]);
    // the same ids as the fixture manifest lists
    json_error_t jerr;
    json_t *m = json_load_file(fixture_path("llava_tiny/manifest.json"), 0, &jerr);
    ck_assert_ptr_nonnull(m);
    const char *cases[2] = {"single", "pair"};
    for (int k = 0; k < 2; k++) {
        json_t *c = json_object_get(json_object_get(m, "cases"), cases[k]);
        json_t *want = json_object_get(c, "input_ids");
        int32_t w[64];
        size_t n = json_array_size(want);
        for (size_t i = 0; i < n; i++)
            w[i] = (int32_t)json_integer_value(json_array_get(want, i));
        check_hf(spm, json_string_value(json_object_get(c, "prompt")), w, n);
    }
    json_decref(m);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_hf_legacy_false_segments)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llava_dir();
    int32_t hi[8], hi_space[8];
    size_t n_hi, n_sp;
    ck_assert_int_eq(gs_spm_encode(spm, "Hi", 2, GS_SPM_NO_DUMMY_PREFIX, hi, 8, &n_hi), GS_OK);
    ck_assert_int_eq(gs_spm_encode(spm, "Hi", 2, 0, hi_space, 8, &n_sp), GS_OK);
    ck_assert_uint_eq(n_hi, 1);
    ck_assert_uint_eq(n_sp, 1);
    ck_assert_int_ne(hi[0], hi_space[0]); // "Hi" vs "▁Hi"
    // a prompt that starts with <image>: the lone '▁' in front is dropped
    int32_t want1[] = {1, 32000, 13, hi[0]};
    check_hf(spm, "<image>\nHi", want1, 4);
    // a space after a special token stays a '▁' of the next word
    int32_t want2[] = {1, 32000, hi_space[0]};
    check_hf(spm, "<image> Hi", want2, 3);
    // special tokens spelled in the text are split out (transformers does this; the bare
    // sentencepiece of the 111 cases does not)
    int32_t want3[] = {1, hi_space[0], 2};
    check_hf(spm, "Hi</s>", want3, 3);
    // empty text: BOS only
    int32_t want4[] = {1};
    check_hf(spm, "", want4, 1);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_hf_decode_generated)
{
    GS_NEED_SHARED();
    gs_spm_t *spm = open_llava_dir();
    int32_t ids[64];
    size_t n;
    const char *text = "Describe this image. A road was built.";
    ck_assert_int_eq(gs_spm_encode_hf(spm, text, strlen(text), ids, 64, &n), GS_OK);
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    ck_assert_int_eq(gs_spm_decode_hf(spm, ids, n, GS_SPM_SKIP_SPECIAL, &b), GS_OK);
    ck_assert_str_eq(b.data, text);
    // without skipping, BOS is written out (and the next piece keeps its space, as in
    // transformers: only the very first token loses its prefix space)
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_spm_decode_hf(spm, ids, n, 0, &b), GS_OK);
    ck_assert_str_eq(b.data, "<s> Describe this image. A road was built.");
    // padded-vocabulary ids (no piece) produce nothing; EOS is skipped
    ck_assert_int_eq(gs_spm_encode_hf(spm, "A road", 6, ids, 64, &n), GS_OK);
    ck_assert_uint_eq(n, 3);
    int32_t gen[] = {ids[1], 32005, ids[2], 32063, 2};
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_spm_decode_hf(spm, gen, 5, GS_SPM_SKIP_SPECIAL, &b), GS_OK);
    ck_assert_str_eq(b.data, "A road");
    // <image> inside generated ids: kept as text unless skipped (it is special)
    int32_t img[] = {ids[1], 32000, ids[2]};
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_spm_decode_hf(spm, img, 3, 0, &b), GS_OK);
    ck_assert_msg(strstr(b.data, "<image>") != NULL, "%s", b.data);
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_spm_decode_hf(spm, img, 3, GS_SPM_SKIP_SPECIAL, &b), GS_OK);
    ck_assert_str_eq(b.data, "A road");
    gs_buf_cleanup(&b);
    gs_spm_close(&spm);
}
END_TEST

// ---- hand-built models ---------------------------------------------------------------------
// A tiny protobuf writer: just enough to build ModelProto messages.

typedef struct {
    unsigned char d[4096];
    size_t n;
} pb_t;

static void pb_varint(pb_t *p, uint64_t v)
{
    do {
        unsigned char c = v & 0x7F;
        v >>= 7;
        p->d[p->n++] = c | (v ? 0x80 : 0);
    } while (v);
}

static void pb_bytes(pb_t *p, int field, const void *data, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    memcpy(p->d + p->n, data, n);
    p->n += n;
}

static void pb_piece(pb_t *p, const char *piece, float score, int type)
{
    pb_t sp = {.n = 0};
    pb_bytes(&sp, 1, piece, strlen(piece));
    pb_varint(&sp, 2 << 3 | 5);
    memcpy(sp.d + sp.n, &score, 4);
    sp.n += 4;
    pb_varint(&sp, 3 << 3 | 0);
    pb_varint(&sp, (uint64_t)type);
    pb_bytes(p, 1, sp.d, sp.n);
}

// trainer spec: model_type, byte_fallback; normalizer: add_dummy_prefix=false,
// remove_extra_whitespaces=false
static void pb_specs(pb_t *p, int model_type, int byte_fallback)
{
    pb_t ts = {.n = 0}, ns = {.n = 0};
    pb_varint(&ts, 3 << 3);
    pb_varint(&ts, (uint64_t)model_type);
    pb_varint(&ts, 35 << 3);
    pb_varint(&ts, (uint64_t)byte_fallback);
    pb_bytes(p, 2, ts.d, ts.n);
    pb_bytes(&ns, 1, "identity", 8);
    pb_varint(&ns, 3 << 3);
    pb_varint(&ns, 0);
    pb_varint(&ns, 4 << 3);
    pb_varint(&ns, 0);
    pb_bytes(p, 3, ns.d, ns.n);
}

static void encode_str(gs_spm_t *spm, const char *text, int32_t *ids, size_t *n)
{
    ck_assert_int_eq(gs_spm_encode(spm, text, strlen(text), 0, ids, 64, n), GS_OK);
}

START_TEST(test_spm_handmade_ties_user_defined_unused)
{
    pb_t p = {.n = 0};
    pb_piece(&p, "<unk>", 0, GS_SPM_UNKNOWN);    // 0
    pb_piece(&p, "<s>", 0, GS_SPM_CONTROL);      // 1
    pb_piece(&p, "</s>", 0, GS_SPM_CONTROL);     // 2
    pb_piece(&p, "a", -5, GS_SPM_NORMAL);        // 3
    pb_piece(&p, "b", -5, GS_SPM_NORMAL);        // 4
    pb_piece(&p, "c", -5, GS_SPM_NORMAL);        // 5
    pb_piece(&p, "ab", -1, GS_SPM_NORMAL);       // 6
    pb_piece(&p, "bc", -1, GS_SPM_NORMAL);       // 7
    pb_piece(&p, "<x>", 0, GS_SPM_USER_DEFINED); // 8
    pb_piece(&p, "cc", -2, GS_SPM_UNUSED);       // 9
    pb_piece(&p, "ccc", -3, GS_SPM_NORMAL);      // 10
    pb_specs(&p, 2, 0);
    gs_spm_t *spm = NULL;
    ck_assert_int_eq(gs_spm_load(p.d, p.n, &spm), GS_OK);
    int32_t ids[64];
    size_t n;
    // equal scores: the leftmost pair wins
    encode_str(spm, "abc", ids, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 6);
    ck_assert_int_eq(ids[1], 5);
    // user-defined pieces are matched whole and never merged with neighbours
    encode_str(spm, "a<x>b", ids, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 8);
    ck_assert_int_eq(ids[2], 4);
    // an UNUSED piece may be an intermediate merge but is split back in the output
    encode_str(spm, "cc", ids, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 5);
    ck_assert_int_eq(ids[1], 5);
    encode_str(spm, "ccc", ids, &n); // cc (unused) + c -> ccc (normal)
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 10);
    // no byte fallback: a run of unknown characters is one <unk>
    encode_str(spm,
               "a\xC3\xA9\xC3\xA9z"
               "b",
               ids, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 0);
    ck_assert_int_eq(ids[2], 4);
    gs_buf_t b;
    gs_buf_init(&b, 256);
    ck_assert_int_eq(gs_spm_decode(spm, ids, n, 0, &b), GS_OK);
    ck_assert_str_eq(b.data, "a \xE2\x81\x87 b");
    gs_buf_cleanup(&b);
    gs_spm_close(&spm);
}
END_TEST

START_TEST(test_spm_refuses_bad_models)
{
    gs_spm_t *spm = (gs_spm_t *)1;
    // not a protobuf
    ck_assert_int_eq(gs_spm_load("\xff\xff\xff\xff", 4, &spm), GS_EFORMAT);
    ck_assert_ptr_null(spm);
    // a unigram model
    pb_t p = {.n = 0};
    pb_piece(&p, "<unk>", 0, GS_SPM_UNKNOWN);
    pb_piece(&p, "a", -1, GS_SPM_NORMAL);
    pb_specs(&p, 1, 0);
    ck_assert_int_eq(gs_spm_load(p.d, p.n, &spm), GS_EUNSUPPORTED);
    // a duplicate piece
    p.n = 0;
    pb_piece(&p, "<unk>", 0, GS_SPM_UNKNOWN);
    pb_piece(&p, "a", -1, GS_SPM_NORMAL);
    pb_piece(&p, "a", -2, GS_SPM_NORMAL);
    pb_specs(&p, 2, 0);
    ck_assert_int_eq(gs_spm_load(p.d, p.n, &spm), GS_EFORMAT);
    // byte_fallback without byte pieces
    p.n = 0;
    pb_piece(&p, "<unk>", 0, GS_SPM_UNKNOWN);
    pb_specs(&p, 2, 1);
    ck_assert_int_eq(gs_spm_load(p.d, p.n, &spm), GS_EFORMAT);
    // no unknown piece
    p.n = 0;
    pb_piece(&p, "a", -1, GS_SPM_NORMAL);
    pb_specs(&p, 2, 0);
    ck_assert_int_eq(gs_spm_load(p.d, p.n, &spm), GS_EFORMAT);
    // the real model, truncated
    if (gs_test_shared()) {
        FILE *f = fopen(fixture_path("llama_tokenizer/tokenizer.model"), "rb");
        ck_assert_ptr_nonnull(f);
        char *buf = gs_xmalloc(600000);
        size_t n = fread(buf, 1, 600000, f);
        fclose(f);
        ck_assert_int_eq(gs_spm_load(buf, n / 2, &spm), GS_EFORMAT);
        ck_assert_int_eq(gs_spm_load(buf, n, &spm), GS_OK);
        gs_spm_close(&spm);
        gs_free(buf);
    }
    ck_assert_int_eq(gs_spm_open("/nonexistent/tokenizer.model", &spm), GS_EIO);
}
END_TEST

Suite *model_spm_suite(void)
{
    Suite *s = suite_create("model_spm");
    TCase *tc = tcase_create("llama");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_spm_llama_model_spec);
    tcase_add_test(tc, test_spm_llama_cases_encode_exact);
    tcase_add_test(tc, test_spm_llama_cases_decode_exact);
    tcase_add_test(tc, test_spm_llama_decode_bytes_and_edges);
    tcase_add_test(tc, test_spm_llama_encode_limits_and_long_text);
    suite_add_tcase(s, tc);
    TCase *hf = tcase_create("hf");
    tcase_set_timeout(hf, 120);
    tcase_add_test(hf, test_spm_hf_llava_prompts_exact);
    tcase_add_test(hf, test_spm_hf_legacy_false_segments);
    tcase_add_test(hf, test_spm_hf_decode_generated);
    suite_add_tcase(s, hf);
    TCase *hm = tcase_create("handmade");
    tcase_add_test(hm, test_spm_handmade_ties_user_defined_unused);
    tcase_add_test(hm, test_spm_refuses_bad_models);
    suite_add_tcase(s, hm);
    return s;
}
