// model/clip: the CLIP towers against the golden activations of ../shared/fixtures
// (openclip_tiny in the hub layout and as a .pt with its config, hfclip_tiny in the HF layout):
// every intermediate the fixtures hold, features, normalised embeddings, logits, with the
// tolerances of fixtures/README.md; hidden states for LLaVA; refusal of broken or mismatched
// files with the file and tensor named; F16 and BF16 copies of the tiny model written here.
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/clip.h"
#include "model/clip_int.h"
#include "model/ops.h"
#include "model/preprocess.h"
#include "model/weights.h"
#include "testutil.h"

#define FIX GS_SHARED_DIR "/fixtures"
#define OC_DIR FIX "/openclip_tiny"
#define HF_DIR FIX "/hfclip_tiny"
#define BPE_GZ FIX "/clip_bpe/bpe_simple_vocab_16e6.txt.gz"

// fixture tolerances (fixtures/README.md)
#define ACT_ATOL 1e-4
#define ACT_RTOL 1e-4
#define EMB_ATOL 1e-5
#define LOGIT_ATOL 1e-3

// ---- log capture --------------------------------------------------------------------------

static char logbuf[1 << 15];
static size_t loglen;

static void capture(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    int k = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s\n", line);
    if (k > 0 && loglen + (size_t)k < sizeof logbuf)
        loglen += (size_t)k;
}

static void cap_start(void)
{
    loglen = 0;
    logbuf[0] = '\0';
    gs_log_set(capture, NULL);
}

static void cap_stop(void)
{
    gs_log_set(NULL, NULL);
}

#define ASSERT_LOGGED(s)                                                                           \
    ck_assert_msg(strstr(logbuf, (s)) != NULL, "log lacks [%s]: %s", (s), logbuf)

// ---- golden tensors -----------------------------------------------------------------------

static gs_weights_t *expected_open(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    gs_weights_t *w = NULL;
    ck_assert_int_eq(gs_weights_open(path, &w), GS_OK);
    return w;
}

// want: a float tensor of the expected file with n_elems checked.
static const float *want(const gs_weights_t *w, const char *name, int64_t n_elems)
{
    const gs_tensor_t *t = gs_weights_get(w, name);
    ck_assert_msg(t != NULL, "golden tensor %s is missing", name);
    ck_assert_msg(t->dtype == GS_DTYPE_F32, "golden tensor %s is not F32", name);
    ck_assert_msg(t->n_elems == n_elems, "golden tensor %s has %lld values, expected %lld", name,
                  (long long)t->n_elems, (long long)n_elems);
    return t->data;
}

// ids_of: an I64 [n, ctx] tensor as int32.
static int32_t *ids_of(const gs_weights_t *w, const char *name, int *out_n, int *out_ctx)
{
    const gs_tensor_t *t = gs_weights_get(w, name);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, GS_DTYPE_I64);
    ck_assert_int_eq(t->n_dims, 2);
    int32_t *ids = gs_xmalloc((size_t)t->n_elems * sizeof(int32_t));
    const int64_t *src = t->data;
    for (int64_t i = 0; i < t->n_elems; i++)
        ids[i] = (int32_t)src[i];
    *out_n = (int)t->shape[0];
    *out_ctx = (int)t->shape[1];
    return ids;
}

static void check(const char *what, const float *got, const float *exp, size_t n, double atol,
                  double rtol)
{
    ck_assert_msg(gs_test_check_close(what, got, exp, n, atol, rtol) == 0, "%s differs", what);
}

// ---- trace collection ---------------------------------------------------------------------

// Keeps the first sequence's rows of each traced activation (image 0 / caption 0); for the
// text tower, whose sequences are as long as the batch's longest text, every row of the batch
// (the first L rows are caption 0's, L = rows / n_rows of "pooled").
typedef struct {
    char tower[8], name[32];
    int rows, cols;
    int n_rows; // rows the model traced
    float *data;
} traced_t;

typedef struct {
    traced_t t[64];
    int n;
    int rows_per_seq_vision; // rows of image 0 to keep
} trace_t;

static void on_trace(void *ud, const char *tower, const char *name, const float *data, int n_rows,
                     int n_cols, int ld)
{
    trace_t *tr = ud;
    if (tr->n == 64)
        return;
    bool vision = strcmp(tower, "vision") == 0;
    int keep = strcmp(name, "pooled") == 0         ? 1
               : strcmp(name, "patch_tokens") == 0 ? tr->rows_per_seq_vision - 1
               : vision                            ? tr->rows_per_seq_vision
                                                   : n_rows;
    if (keep > n_rows)
        keep = n_rows;
    traced_t *t = &tr->t[tr->n++];
    snprintf(t->tower, sizeof t->tower, "%s", tower);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = keep;
    t->cols = n_cols;
    t->n_rows = n_rows;
    t->data = gs_xmalloc((size_t)keep * n_cols * sizeof(float));
    for (int r = 0; r < keep; r++)
        memcpy(t->data + (size_t)r * n_cols, data + (size_t)r * ld, (size_t)n_cols * sizeof(float));
}

static const traced_t *traced(const trace_t *tr, const char *tower, const char *name)
{
    for (int i = 0; i < tr->n; i++)
        if (strcmp(tr->t[i].tower, tower) == 0 && strcmp(tr->t[i].name, name) == 0)
            return &tr->t[i];
    ck_abort_msg("no trace %s/%s", tower, name);
    return NULL;
}

static void trace_free(trace_t *tr)
{
    for (int i = 0; i < tr->n; i++)
        gs_free(tr->t[i].data);
    tr->n = 0;
}

static void check_traced(const trace_t *tr, const char *tower, const char *name,
                         const gs_weights_t *exp, const char *exp_name)
{
    const traced_t *t = traced(tr, tower, name);
    const float *w = want(exp, exp_name, (int64_t)t->rows * t->cols);
    check(exp_name, t->data, w, (size_t)t->rows * t->cols, ACT_ATOL, ACT_RTOL);
}

// The fixtures' golden text intermediates of caption 0 (open_clip names), 77 rows each.
static const char *const oc_text_trace[4][2] = {{"embed", "text0.embed_pos"},
                                                {"block0_out", "text0.block0_out"},
                                                {"block1_out", "text0.block1_out"},
                                                {"ln_final_out", "text0.ln_final_out"}};

// check_text_trace: the text tower ran the traced batch (the first n_seq sequences of `ids`)
// up to its longest text, L = 1 + the last end-of-text position (the largest id), and caption
// 0's L rows of every traced intermediate match the golden ones. Returns L.
static int check_text_trace(const trace_t *tr, const gs_weights_t *exp, const int32_t *ids, int ctx)
{
    int n_seq = traced(tr, "text", "pooled")->n_rows, want_L = 0;
    for (int s = 0; s < n_seq; s++) {
        int best = 0;
        for (int t = 1; t < ctx; t++)
            if (ids[s * ctx + t] > ids[s * ctx + best])
                best = t;
        want_L = best + 1 > want_L ? best + 1 : want_L;
    }
    for (int i = 0; i < 4; i++) {
        const traced_t *t = traced(tr, "text", oc_text_trace[i][0]);
        ck_assert_msg(t->n_rows == n_seq * want_L, "%s: %d rows traced for %d texts of %d tokens",
                      t->name, t->n_rows, n_seq, want_L);
        const float *w = want(exp, oc_text_trace[i][1], (int64_t)ctx * t->cols);
        check(oc_text_trace[i][1], t->data, w, (size_t)want_L * t->cols, ACT_ATOL, ACT_RTOL);
    }
    check_traced(tr, "text", "pooled", exp, "text0.pooled_before_proj");
    return want_L;
}

// full_context_text: start, ctx - 2 copies of "a", end: a text whose end is the last position.
static void full_context_text(int32_t *ids, int ctx)
{
    ids[0] = 49406;
    for (int t = 1; t < ctx - 1; t++)
        ids[t] = 320;
    ids[ctx - 1] = 49407;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

// logits = scale * img_n @ txt_n^T
static void check_logits(const gs_clip_t *m, const float *img_n, int n_img, const float *txt_n,
                         int n_txt, const gs_weights_t *exp)
{
    int E = gs_clip_dim(m);
    float *lpi = gs_xmalloc((size_t)n_img * n_txt * sizeof(float));
    float *lpt = gs_xmalloc((size_t)n_img * n_txt * sizeof(float));
    for (int i = 0; i < n_img; i++)
        for (int j = 0; j < n_txt; j++) {
            double d = 0;
            for (int k = 0; k < E; k++)
                d += (double)img_n[i * E + k] * txt_n[j * E + k];
            lpi[i * n_txt + j] = lpt[j * n_img + i] = (float)(gs_clip_logit_scale(m) * d);
        }
    check("logits_per_image", lpi, want(exp, "logits_per_image", n_img * n_txt),
          (size_t)n_img * n_txt, LOGIT_ATOL, 0);
    check("logits_per_text", lpt, want(exp, "logits_per_text", n_img * n_txt),
          (size_t)n_img * n_txt, LOGIT_ATOL, 0);
    float scale = gs_clip_logit_scale(m);
    check("logit_scale_exp", &scale, want(exp, "logit_scale_exp", 1), 1, 1e-5, 1e-6);
    gs_free(lpi);
    gs_free(lpt);
}

// ---- open_clip ----------------------------------------------------------------------------

// run_openclip: every golden tensor of openclip_tiny through the model at `path`.
static void run_openclip(const char *path, const gs_clip_opts_t *opts, char *out_id)
{
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(path, opts, &m), GS_OK);
    ck_assert_int_eq(gs_clip_dim(m), 32);
    ck_assert_int_eq(gs_clip_image_size(m), 32);
    ck_assert_int_eq(gs_clip_context_length(m), 77);
    gs_weights_t *exp = expected_open(OC_DIR);
    trace_t tr = {.rows_per_seq_vision = 17};
    gs__clip_set_trace(m, on_trace, &tr);

    const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
    float img[4 * 32], img_n[4 * 32];
    ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, false, img), GS_OK);
    check("image_features", img, want(exp, "image_features", 4 * 32), 4 * 32, ACT_ATOL, ACT_RTOL);
    // without a trace, batches are split over the threads
    gs__clip_set_trace(m, NULL, NULL);
    ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, true, img_n), GS_OK);
    check("image_features_normalized", img_n, want(exp, "image_features_normalized", 4 * 32),
          4 * 32, EMB_ATOL, 0);
    for (int n = 1; n <= 4; n++) { // every split of a small batch
        float part[4 * 32];
        ck_assert_int_eq(gs_clip_encode_images(m, pix + (4 - n) * 3 * 32 * 32, n, true, part),
                         GS_OK);
        check("image_features_normalized (partial batch)", part, img_n + (4 - n) * 32,
              (size_t)n * 32, EMB_ATOL, 0);
    }
    gs__clip_set_trace(m, on_trace, &tr);

    // conv1 output NCHW [1, 64, 4, 4] is the patch tokens [16, 64] transposed
    const traced_t *pt = traced(&tr, "vision", "patch_tokens");
    const float *conv = want(exp, "image0.vision.conv1_out_nchw", 64 * 16);
    float conv_got[64 * 16];
    for (int c = 0; c < 64; c++)
        for (int p = 0; p < 16; p++)
            conv_got[c * 16 + p] = pt->data[p * 64 + c];
    check("conv1_out_nchw", conv_got, conv, 64 * 16, ACT_ATOL, ACT_RTOL);
    check_traced(&tr, "vision", "patch_tokens", exp, "image0.vision.patch_tokens");
    check_traced(&tr, "vision", "embed", exp, "image0.vision.embed_cls_pos");
    check_traced(&tr, "vision", "ln_pre_out", exp, "image0.vision.ln_pre_out");
    check_traced(&tr, "vision", "block0_out", exp, "image0.vision.block0_out");
    check_traced(&tr, "vision", "block1_out", exp, "image0.vision.block1_out");
    check_traced(&tr, "vision", "ln_post_out", exp, "image0.vision.ln_post_out");
    check_traced(&tr, "vision", "pooled", exp, "image0.vision.pooled_before_proj");
    trace_free(&tr);

    int n_txt, ctx;
    int32_t *ids = ids_of(exp, "text_tokens", &n_txt, &ctx);
    ck_assert_int_eq(n_txt, 6);
    ck_assert_int_eq(ctx, 77);
    float txt[6 * 32], txt_n[6 * 32];
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, false, txt), GS_OK);
    check("text_features", txt, want(exp, "text_features", 6 * 32), 6 * 32, ACT_ATOL, ACT_RTOL);
    // the first batch runs up to its longest text (caption 0 has 9 tokens, the longest of the
    // first 2 to 4 captions 13): those rows of caption 0 match
    int L = check_text_trace(&tr, exp, ids, 77);
    ck_assert_int_le(L, 13);
    trace_free(&tr);
    // next to a text that fills the context, all 77 rows of caption 0 are computed: all match,
    // and caption 0's features are the same as in the short batch
    int32_t two[2 * 77];
    memcpy(two, ids, 77 * sizeof(int32_t));
    full_context_text(two + 77, 77);
    float two_f[2 * 32];
    ck_assert_int_eq(gs_clip_encode_tokens(m, two, 2, false, two_f), GS_OK);
    ck_assert_int_eq(check_text_trace(&tr, exp, two, 77), 77);
    check("text_features (caption 0 next to a 77-token text)", two_f, txt, 32, 5e-6, 0);
    trace_free(&tr);
    gs__clip_set_trace(m, NULL, NULL);
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, true, txt_n), GS_OK);
    check("text_features_normalized", txt_n, want(exp, "text_features_normalized", 6 * 32), 6 * 32,
          EMB_ATOL, 0);
    check_logits(m, img_n, 4, txt_n, 6, exp);

    // an id outside the vocabulary is refused
    ids[3] = 49408;
    cap_start();
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, 1, true, txt), GS_EINVAL);
    cap_stop();
    ASSERT_LOGGED("outside the vocabulary");

    if (out_id)
        snprintf(out_id, 17, "%s", gs_clip_model_id(m));
    gs_free(ids);
    gs_weights_close(&exp);
    gs_clip_close(&m);
    ck_assert_ptr_null(m);
}

START_TEST(test_clip_openclip_hub_layout_matches_golden)
{
    GS_NEED_SHARED();
    gs_clip_opts_t o = {.n_threads = 1, .max_batch = 4};
    run_openclip(OC_DIR, &o, NULL);
}
END_TEST

START_TEST(test_clip_openclip_pt_with_config_matches_golden_and_same_id)
{
    GS_NEED_SHARED();
    char id_hub[17], id_pt[17];
    // small batches: 4 images run as 3 + 1, 6 texts as 3 + 3
    gs_clip_opts_t o = {.n_threads = 2, .max_batch = 3};
    run_openclip(OC_DIR, &o, id_hub);
    gs_clip_opts_t p = {.config_path = OC_DIR "/open_clip_config.json", .max_batch = 3};
    run_openclip(OC_DIR "/open_clip_model.pt", &p, id_pt);
    // the same state dict gives the same identity from .pt and .safetensors
    ck_assert_str_eq(id_hub, id_pt);
    ck_assert_int_eq((int)strlen(id_hub), 16);
}
END_TEST

START_TEST(test_clip_describe_and_model_id)
{
    GS_NEED_SHARED();
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(OC_DIR, NULL, &m), GS_OK);
    gs_clip_info_t info;
    gs_clip_describe(m, &info);
    ck_assert_str_eq(info.layout, "open_clip");
    ck_assert_str_eq(info.activation, "quick_gelu");
    ck_assert_str_eq(info.dtypes, "F32");
    ck_assert_int_eq(info.embed_dim, 32);
    ck_assert_int_eq(info.vision_width, 64);
    ck_assert_int_eq(info.vision_heads, 2);
    ck_assert_int_eq(info.vision_mlp, 256);
    ck_assert_int_eq(info.text_width, 16);
    ck_assert_int_eq(info.vocab_size, 49408);
    // the parameter count is the sum of every tensor in the file (the model uses them all)
    gs_weights_t *w = NULL;
    ck_assert_int_eq(gs_weights_open(OC_DIR "/open_clip_model.safetensors", &w), GS_OK);
    int64_t total = 0;
    for (size_t i = 0; i < gs_weights_count(w); i++)
        total += gs_weights_at(w, i)->n_elems;
    ck_assert_int_eq(info.n_params, total);
    ck_assert_int_eq(info.n_params, info.n_params_vision + info.n_params_text + 1);
    ck_assert(fabsf(info.logit_scale - 14.2857f) < 1e-3f);
    gs_weights_close(&w);
    const char *id = gs_clip_model_id(m);
    ck_assert_ptr_eq(id, gs_clip_model_id(m));
    // another model (HF) has another id
    gs_clip_t *h = NULL;
    ck_assert_int_eq(gs_clip_open(HF_DIR, NULL, &h), GS_OK);
    ck_assert_str_ne(id, gs_clip_model_id(h));
    gs_clip_describe(h, &info);
    ck_assert_str_eq(info.layout, "hf");
    ck_assert_str_eq(info.arch, "hf CLIPModel");
    gs_clip_close(&h);
    // the same weights with another activation are another model
    gs_clip_t *g = NULL;
    char cfg[4400];
    const char *tmp = gs_test_tmpdir("clip_id");
    ck_assert_ptr_nonnull(tmp);
    char *text = NULL;
    size_t n = 0;
    ck_assert_int_eq(gs_read_file(OC_DIR "/open_clip_config.json", 1 << 20, &text, &n), GS_OK);
    char *q = strstr(text, "\"quick_gelu\": true");
    ck_assert_ptr_nonnull(q);
    memcpy(q, "\"quick_gelu\": 0   ", 18); // still valid JSON? no: 0 is not a bool
    snprintf(cfg, sizeof cfg, "%s/bad.json", tmp);
    ck_assert_int_eq(gs_write_file_atomic(cfg, text, n), GS_OK);
    gs_clip_opts_t o = {.config_path = cfg};
    cap_start();
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &o, &g), GS_EFORMAT);
    cap_stop();
    ASSERT_LOGGED("\"quick_gelu\" is not a boolean");
    memcpy(q, "\"quick_gelu\":false", 18);
    ck_assert_int_eq(gs_write_file_atomic(cfg, text, n), GS_OK);
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &o, &g), GS_OK);
    gs_clip_describe(g, &info);
    ck_assert_str_eq(info.activation, "gelu");
    ck_assert_str_ne(id, gs_clip_model_id(g));
    gs_clip_close(&g);
    gs_free(text);
    gs_clip_close(&m);
}
END_TEST

// ---- Hugging Face -------------------------------------------------------------------------

START_TEST(test_clip_hf_layout_matches_golden)
{
    GS_NEED_SHARED();
    gs_clip_t *m = NULL;
    gs_clip_opts_t o = {.n_threads = 1, .max_batch = 8};
    ck_assert_int_eq(gs_clip_open(HF_DIR, &o, &m), GS_OK);
    gs_weights_t *exp = expected_open(HF_DIR);
    trace_t tr = {.rows_per_seq_vision = 17};
    gs__clip_set_trace(m, on_trace, &tr);
    const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
    float img[4 * 32], img_n[4 * 32];
    ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, false, img), GS_OK);
    check("image_features", img, want(exp, "image_features", 4 * 32), 4 * 32, ACT_ATOL, ACT_RTOL);
    check_traced(&tr, "vision", "embed", exp, "image0.vision.embeddings_out");
    check_traced(&tr, "vision", "ln_pre_out", exp, "image0.vision.pre_layrnorm_out");
    check_traced(&tr, "vision", "block0_out", exp, "image0.vision.layer0_out");
    check_traced(&tr, "vision", "block1_out", exp, "image0.vision.layer1_out");
    check_traced(&tr, "vision", "pooled", exp, "image0.vision.pooled_post_layernorm");
    trace_free(&tr);
    // HF padding (49407 after the first EOT, attention mask 0): pooled at the first EOT
    int n_txt, ctx;
    int32_t *ids = ids_of(exp, "input_ids", &n_txt, &ctx);
    float txt[6 * 32], txt_n[6 * 32];
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, false, txt), GS_OK);
    check("text_features", txt, want(exp, "text_features", 6 * 32), 6 * 32, ACT_ATOL, ACT_RTOL);
    // transformers also masks the padding keys (attention_mask 0), which changes only the
    // rows after the first EOT: rows that no output reads (the features above match). Compare
    // caption 0's rows up to its EOT.
    int eot = 0;
    while (eot < ctx && ids[eot] != 49407)
        eot++;
    ck_assert_int_lt(eot, ctx);
    // all 6 captions in one batch, run up to the longest one (13 tokens)
    ck_assert_int_eq(traced(&tr, "text", "embed")->n_rows, 6 * 13);
    const char *pairs[4][2] = {{"embed", "text0.embeddings_out"},
                               {"block0_out", "text0.layer0_out"},
                               {"block1_out", "text0.layer1_out"},
                               {"ln_final_out", "text0.final_layer_norm_out"}};
    for (int i = 0; i < 4; i++) {
        const traced_t *t = traced(&tr, "text", pairs[i][0]);
        const float *w = want(exp, pairs[i][1], 77 * 16);
        check(pairs[i][1], t->data, w, (size_t)(eot + 1) * 16, ACT_ATOL, ACT_RTOL);
    }
    trace_free(&tr);
    gs__clip_set_trace(m, NULL, NULL);
    ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, true, img_n), GS_OK);
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, true, txt_n), GS_OK);
    check("image_embeds", img_n, want(exp, "image_embeds", 4 * 32), 4 * 32, EMB_ATOL, 0);
    check("text_embeds", txt_n, want(exp, "text_embeds", 6 * 32), 6 * 32, EMB_ATOL, 0);
    check_logits(m, img_n, 4, txt_n, 6, exp);
    // open_clip-style zero padding gives the same features (causal mask)
    for (int s = 0; s < n_txt; s++) {
        int t = 0;
        while (t < ctx && ids[s * ctx + t] != 49407)
            t++;
        for (t = t + 1; t < ctx; t++)
            ids[s * ctx + t] = 0;
    }
    float txt0[6 * 32];
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, false, txt0), GS_OK);
    check("text_features_zero_padded", txt0, want(exp, "text_features", 6 * 32), 6 * 32, ACT_ATOL,
          ACT_RTOL);
    // the preprocessing settings come from preprocessor_config.json: HF crop rule
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    ck_assert_int_eq(pc.size, 32);
    ck_assert_int_eq(pc.crop, GS_CROP_HF);
    ck_assert(fabsf(pc.std[2] - 0.27577711f) < 1e-7f);
    gs_free(ids);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}
END_TEST

START_TEST(test_clip_hf_config_defaults_match_config_full)
{
    GS_NEED_SHARED();
    // config.json omits every transformers default; config_full.json spells them out
    gs__clip_hparams_t a, b;
    ck_assert_int_eq(gs__clip_config_read(HF_DIR "/config.json", &a), GS_OK);
    ck_assert_int_eq(gs__clip_config_read(HF_DIR "/config_full.json", &b), GS_OK);
    ck_assert_int_eq(a.layout, GS__CLIP_LAYOUT_HF);
    ck_assert_int_eq(a.embed_dim, b.embed_dim);
    ck_assert_int_eq(a.v_width, b.v_width);
    ck_assert_int_eq(a.v_mlp, b.v_mlp);
    ck_assert_int_eq(a.v_heads, b.v_heads);
    ck_assert_int_eq(a.v_layers, b.v_layers);
    ck_assert_int_eq(a.v_act, b.v_act);
    ck_assert_int_eq(a.t_act, GS__CLIP_ACT_QUICK_GELU);
    ck_assert(a.v_eps == b.v_eps && a.t_eps == b.t_eps && a.t_eps == 1e-5f);
    ck_assert_int_eq(a.vocab_size, b.vocab_size);
    ck_assert_int_eq(a.context_length, b.context_length);
    ck_assert_int_eq(a.eos_token_id, 49407);
    ck_assert_int_eq(b.eos_token_id, 49407);
    ck_assert(!a.pool_argmax && !b.pool_argmax);
    ck_assert_int_eq(a.t_mlp, 64);
    ck_assert_int_eq(a.t_heads, 2);
    ck_assert_int_eq(a.embed_dim, 32);
    // the built-in archs carry open_clip's facts
    gs__clip_hparams_t h;
    ck_assert_int_eq(gs__clip_arch_lookup("ViT-H-14", &h), GS_OK);
    ck_assert_int_eq(h.v_heads, 16); // head_width 80
    ck_assert_int_eq(h.v_width, 1280);
    ck_assert_int_eq(h.t_layers, 24);
    ck_assert_int_eq(h.v_act, GS__CLIP_ACT_GELU);
    ck_assert_int_eq(gs__clip_arch_lookup("ViT-B-32-quickgelu", &h), GS_OK);
    ck_assert_int_eq(h.v_act, GS__CLIP_ACT_QUICK_GELU);
    ck_assert_int_eq(h.patch_size, 32);
    ck_assert_int_eq(gs__clip_arch_lookup("ViT-L-14-336", &h), GS_OK);
    ck_assert_int_eq(h.image_size, 336);
    ck_assert_int_eq(h.embed_dim, 768);
    ck_assert_int_eq(gs__clip_arch_lookup("ViT-Q-99", &h), GS_ENOTFOUND);
}
END_TEST

START_TEST(test_clip_vision_hidden_states_hf_numbering)
{
    GS_NEED_SHARED();
    gs_clip_t *m = NULL;
    gs_clip_opts_t o = {.max_batch = 2};
    ck_assert_int_eq(gs_clip_open(HF_DIR, &o, &m), GS_OK);
    gs_weights_t *exp = expected_open(HF_DIR);
    const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
    float *hid = gs_xmalloc((size_t)3 * 17 * 64 * sizeof(float));
    const char *names[3] = {"image0.vision.pre_layrnorm_out", "image0.vision.layer0_out",
                            "image0.vision.layer1_out"};
    for (int layer = 0; layer <= 2; layer++) {
        ck_assert_int_eq(gs__clip_vision_hidden(m, pix, 3, layer, hid), GS_OK); // 2 + 1 batches
        check(names[layer], hid, want(exp, names[layer], 17 * 64), 17 * 64, ACT_ATOL, ACT_RTOL);
    }
    ck_assert_int_eq(gs__clip_vision_hidden(m, pix, 1, 3, hid), GS_EINVAL);
    ck_assert_int_eq(gs__clip_vision_hidden(m, pix, 1, -1, hid), GS_EINVAL);
    gs_free(hid);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}
END_TEST

// ---- refusals -----------------------------------------------------------------------------

static void copy_file(const char *from, const char *to, size_t max_nbytes)
{
    char *data = NULL;
    size_t n = 0;
    ck_assert_int_eq(gs_read_file(from, 64u << 20, &data, &n), GS_OK);
    ck_assert_int_eq(gs_write_file_atomic(to, data, n < max_nbytes ? n : max_nbytes), GS_OK);
    gs_free(data);
}

START_TEST(test_clip_refuses_truncated_and_mismatched_models)
{
    GS_NEED_SHARED();
    const char *tmp = gs_test_tmpdir("clip_refuse");
    ck_assert_ptr_nonnull(tmp);
    char dir[4200], p[4400];
    gs_clip_t *m = NULL;

    // a truncated hub folder: the file and a tensor are named
    snprintf(dir, sizeof dir, "%s/trunc", tmp);
    ck_assert_int_eq(gs_mkdir_p(dir), GS_OK);
    snprintf(p, sizeof p, "%s/open_clip_config.json", dir);
    copy_file(OC_DIR "/open_clip_config.json", p, SIZE_MAX);
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    copy_file(OC_DIR "/open_clip_model.safetensors", p, 3000000);
    cap_start();
    ck_assert_int_ne(gs_clip_open(dir, NULL, &m), GS_OK);
    cap_stop();
    ck_assert_ptr_null(m);
    ASSERT_LOGGED("open_clip_model.safetensors");
    ASSERT_LOGGED("tensor \"");

    // a .pt with the wrong architecture: the tensor, the file and both shapes are named
    gs_clip_opts_t o = {.arch = "ViT-B-32"};
    cap_start();
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &o, &m), GS_EFORMAT);
    cap_stop();
    ASSERT_LOGGED("tensor \"visual.conv1.weight\" in \"" OC_DIR "/open_clip_model.pt\": expected "
                  "shape [768, 3, 32, 32], found [64, 3, 8, 8]");

    // a bare file without an architecture, an unknown arch, both arch and config
    cap_start();
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", NULL, &m), GS_EINVAL);
    ASSERT_LOGGED("--arch NAME");
    ASSERT_LOGGED("ViT-B-32-quickgelu");
    o.arch = "ViT-Z-1";
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &o, &m), GS_ENOTFOUND);
    ASSERT_LOGGED("unknown architecture \"ViT-Z-1\"");
    o.config_path = OC_DIR "/open_clip_config.json";
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &o, &m), GS_EINVAL);
    // a folder with no model, a missing path
    ck_assert_int_eq(gs_clip_open(tmp, NULL, &m), GS_ENOTFOUND);
    ASSERT_LOGGED("no CLIP model found in");
    ck_assert_int_eq(gs_clip_open("/nonexistent/model", NULL, &m), GS_ENOTFOUND);

    // a config with fewer layers than the file: refused, not silently truncated
    snprintf(dir, sizeof dir, "%s/layers", tmp);
    ck_assert_int_eq(gs_mkdir_p(dir), GS_OK);
    char *text = NULL;
    size_t n = 0;
    ck_assert_int_eq(gs_read_file(OC_DIR "/open_clip_config.json", 1 << 20, &text, &n), GS_OK);
    char *l = strstr(text, "\"layers\": 2");
    ck_assert_ptr_nonnull(l);
    l[10] = '1';
    snprintf(p, sizeof p, "%s/c.json", dir);
    ck_assert_int_eq(gs_write_file_atomic(p, text, n), GS_OK);
    gs_clip_opts_t c = {.config_path = p};
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &c, &m), GS_EFORMAT);
    ASSERT_LOGGED("holds more layers than the architecture's 1");
    // an option geoscribe does not implement is refused by name
    char *v = strstr(text, "\"vision_cfg\": {");
    ck_assert_ptr_nonnull(v);
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    gs_buf_append(&b, text, (size_t)(v - text) + 15);
    gs_buf_puts(&b, "\"ls_init_value\": 0.1, ");
    gs_buf_puts(&b, v + 15);
    ck_assert_int_eq(gs_write_file_atomic(p, b.data, b.len), GS_OK);
    ck_assert_int_eq(gs_clip_open(OC_DIR "/open_clip_model.pt", &c, &m), GS_EUNSUPPORTED);
    ASSERT_LOGGED("vision_cfg.ls_init_value is set");
    cap_stop();
    gs_buf_cleanup(&b);
    gs_free(text);
    ck_assert_ptr_null(m);
}
END_TEST

// captions: the fixture's captions (manifest.json, at `key` / `sub`), n <= 8.
static int captions(const char *dir, const char *key, const char *sub, char *out[8])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", path, err.text);
    json_t *arr = json_object_get(root, key);
    if (sub)
        arr = json_object_get(arr, sub);
    ck_assert(json_is_array(arr));
    int n = (int)json_array_size(arr);
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++)
        out[i] = gs_xstrdup(json_string_value(json_array_get(arr, (size_t)i)));
    json_decref(root);
    return n;
}

// ---- F16 / BF16 copies --------------------------------------------------------------------

// write_st_ls: the tensors of `w` whose name starts with one of `prefixes` (NULL: all) as a
// safetensors file in `dtype` ("F32", "F16" or "BF16"); ls_shape (NULL: as stored) replaces
// the shape of "logit_scale" (e.g. "1" for [1]).
static void write_st_ls(const char *path, const gs_weights_t *w, const char *const *prefixes,
                        const char *dtype, const char *ls_shape)
{
    size_t esz = strcmp(dtype, "F32") == 0 ? 4 : 2;
    gs_buf_t hdr;
    gs_buf_init(&hdr, 1 << 20);
    gs_buf_puts(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    bool *take = gs_xcalloc(gs_weights_count(w), sizeof *take);
    for (size_t i = 0; i < gs_weights_count(w); i++) {
        const gs_tensor_t *t = gs_weights_at(w, i);
        for (int p = 0; !take[i] && (!prefixes || prefixes[p]); p++)
            take[i] = !prefixes || strncmp(t->name, prefixes[p], strlen(prefixes[p])) == 0;
        if (!take[i])
            continue;
        gs_buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, dtype);
        if (ls_shape && strcmp(t->name, "logit_scale") == 0)
            gs_buf_puts(&hdr, ls_shape);
        else
            for (int d = 0; d < t->n_dims; d++)
                gs_buf_printf(&hdr, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        gs_buf_printf(&hdr, "],\"data_offsets\":[%zu,%zu]}", off, off + (size_t)t->n_elems * esz);
        off += (size_t)t->n_elems * esz;
    }
    gs_buf_puts(&hdr, "}");
    while (hdr.len % 8)
        gs_buf_puts(&hdr, " ");
    size_t total = 8 + hdr.len + off;
    uint8_t *file = gs_xmalloc(total);
    uint64_t hl = hdr.len;
    for (int k = 0; k < 8; k++)
        file[k] = (uint8_t)(hl >> (8 * k));
    memcpy(file + 8, hdr.data, hdr.len);
    uint8_t *dst = file + 8 + hdr.len;
    for (size_t i = 0; i < gs_weights_count(w); i++) {
        const gs_tensor_t *t = gs_weights_at(w, i);
        if (!take[i])
            continue;
        if (esz == 4)
            memcpy(dst, t->data, (size_t)t->n_elems * 4);
        else if (strcmp(dtype, "F16") == 0)
            gs_ops_f32_to_f16(t->data, (size_t)t->n_elems, (uint16_t *)dst);
        else
            gs_ops_f32_to_bf16(t->data, (size_t)t->n_elems, (uint16_t *)dst);
        dst += (size_t)t->n_elems * esz;
    }
    ck_assert_int_eq(gs_write_file_atomic(path, file, total), GS_OK);
    gs_free(take);
    gs_free(file);
    gs_buf_cleanup(&hdr);
}

static void write_st(const char *path, const gs_weights_t *w, const char *const *prefixes,
                     const char *dtype)
{
    write_st_ls(path, w, prefixes, dtype, NULL);
}

// write_converted: the openclip_tiny state dict with every tensor in `dtype` ("F16"/"BF16"),
// as a hub folder under dir.
static void write_converted(const char *dir, const char *dtype)
{
    gs_weights_t *w = NULL;
    ck_assert_int_eq(gs_weights_open(OC_DIR "/open_clip_model.safetensors", &w), GS_OK);
    char p[4400];
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    write_st(p, w, NULL, dtype);
    snprintf(p, sizeof p, "%s/open_clip_config.json", dir);
    copy_file(OC_DIR "/open_clip_config.json", p, SIZE_MAX);
    gs_weights_close(&w);
}

START_TEST(test_clip_hf_sharded_folder)
{
    GS_NEED_SHARED();
    // hfclip_tiny split into two shards behind model.safetensors.index.json, as large HF
    // checkpoints are published
    const char *tmp = gs_test_tmpdir("clip_shards");
    ck_assert_ptr_nonnull(tmp);
    gs_weights_t *w = NULL;
    ck_assert_int_eq(gs_weights_open(HF_DIR "/model.safetensors", &w), GS_OK);
    static const char *const vision[] = {"vision_model.", "visual_projection.", "logit_scale",
                                         NULL};
    static const char *const text[] = {"text_model.", "text_projection.", NULL};
    char p[4400];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", tmp);
    write_st(p, w, vision, "F32");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", tmp);
    write_st(p, w, text, "F32");
    gs_buf_t idx;
    gs_buf_init(&idx, 1 << 20);
    gs_buf_puts(&idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (size_t i = 0; i < gs_weights_count(w); i++) {
        const char *name = gs_weights_at(w, i)->name;
        bool is_text = strncmp(name, "text_", 5) == 0;
        gs_buf_printf(&idx, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", name,
                      is_text ? 2 : 1);
    }
    gs_buf_puts(&idx, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", tmp);
    ck_assert_int_eq(gs_write_file_atomic(p, idx.data, idx.len), GS_OK);
    gs_buf_cleanup(&idx);
    gs_weights_close(&w);
    const char *files[] = {"config.json", "preprocessor_config.json", "vocab.json", "merges.txt"};
    for (int i = 0; i < 4; i++) {
        char from[1024];
        snprintf(from, sizeof from, "%s/%s", HF_DIR, files[i]);
        snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
        copy_file(from, p, SIZE_MAX);
    }
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(tmp, NULL, &m), GS_OK);
    gs_clip_info_t info;
    gs_clip_describe(m, &info);
    ck_assert_msg(strstr(info.weights_path, "model.safetensors.index.json") != NULL, "%s",
                  info.weights_path);
    gs_weights_t *exp = expected_open(HF_DIR);
    float img[4 * 32];
    ck_assert_int_eq(
        gs_clip_encode_images(m, want(exp, "pixel_values", 4 * 3 * 32 * 32), 4, true, img), GS_OK);
    check("image_embeds (shards)", img, want(exp, "image_embeds", 4 * 32), 4 * 32, EMB_ATOL, 0);
    char *caps[8];
    int n = captions(HF_DIR, "text_input", "captions", caps);
    float txt[6 * 32];
    ck_assert_int_eq(gs_clip_encode_texts(m, (const char *const *)caps, n, true, txt), GS_OK);
    check("text_embeds (shards)", txt, want(exp, "text_embeds", 6 * 32), 6 * 32, EMB_ATOL, 0);
    for (int i = 0; i < n; i++)
        gs_free(caps[i]);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}
END_TEST

START_TEST(test_clip_f16_bf16_weights_match_f32)
{
    GS_NEED_SHARED();
    const char *tmp = gs_test_tmpdir("clip_half");
    ck_assert_ptr_nonnull(tmp);
    gs_weights_t *exp = expected_open(OC_DIR);
    const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
    const float *img_ref = want(exp, "image_features_normalized", 4 * 32);
    const float *txt_ref = want(exp, "text_features_normalized", 6 * 32);
    int n_txt, ctx;
    int32_t *ids = ids_of(exp, "text_tokens", &n_txt, &ctx);
    const char *dtypes[2] = {"F16", "BF16"};
    for (int d = 0; d < 2; d++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", tmp, dtypes[d]);
        ck_assert_int_eq(gs_mkdir_p(dir), GS_OK);
        write_converted(dir, dtypes[d]);
        gs_clip_t *m = NULL;
        ck_assert_int_eq(gs_clip_open(dir, NULL, &m), GS_OK);
        gs_clip_info_t info;
        gs_clip_describe(m, &info);
        ck_assert_str_eq(info.dtypes, dtypes[d]);
        float img[4 * 32], txt[6 * 32];
        ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, true, img), GS_OK);
        ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, true, txt), GS_OK);
        for (int i = 0; i < 4; i++) {
            double c = cosine(img + i * 32, img_ref + i * 32, 32);
            ck_assert_msg(c >= 0.999, "%s image %d: cosine %.6f", dtypes[d], i, c);
        }
        for (int i = 0; i < n_txt; i++) {
            double c = cosine(txt + i * 32, txt_ref + i * 32, 32);
            ck_assert_msg(c >= 0.999, "%s text %d: cosine %.6f", dtypes[d], i, c);
        }
        gs_clip_close(&m);
    }
    gs_free(ids);
    gs_weights_close(&exp);
}
END_TEST

// ---- logit_scale of shape [1] ---------------------------------------------------------------

// ls_folder: a copy of the fixture folder `src` (weights file `st`, other files `files`) under
// dir whose logit_scale has shape [ls_shape].
static void ls_folder(const char *src, const char *st, const char *const *files, const char *dir,
                      const char *ls_shape)
{
    char p[4400], from[1024];
    ck_assert_int_eq(gs_mkdir_p(dir), GS_OK);
    snprintf(from, sizeof from, "%s/%s", src, st);
    gs_weights_t *w = NULL;
    ck_assert_int_eq(gs_weights_open(from, &w), GS_OK);
    snprintf(p, sizeof p, "%s/%s", dir, st);
    write_st_ls(p, w, NULL, "F32", ls_shape);
    gs_weights_close(&w);
    for (int i = 0; files[i]; i++) {
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        copy_file(from, p, SIZE_MAX);
    }
}

START_TEST(test_clip_logit_scale_of_shape_1_is_accepted)
{
    GS_NEED_SHARED();
    // open_clip and transformers store a 0-d logit_scale; training scripts that save it as
    // torch.ones([1]) * log(1 / 0.07) give shape [1]: the same value, the same model
    const char *tmp = gs_test_tmpdir("clip_ls");
    ck_assert_ptr_nonnull(tmp);
    static const char *const oc_files[] = {"open_clip_config.json", NULL};
    static const char *const hf_files[] = {"config.json", "preprocessor_config.json", NULL};
    const char *src[2] = {OC_DIR, HF_DIR};
    const char *st[2] = {"open_clip_model.safetensors", "model.safetensors"};
    const char *const *files[2] = {oc_files, hf_files};
    const char *emb[2] = {"image_features_normalized", "image_embeds"};
    for (int d = 0; d < 2; d++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%d_1", tmp, d);
        ls_folder(src[d], st[d], files[d], dir, "1");
        gs_clip_t *m = NULL, *ref = NULL;
        ck_assert_int_eq(gs_clip_open(dir, NULL, &m), GS_OK);
        ck_assert_int_eq(gs_clip_open(src[d], NULL, &ref), GS_OK);
        gs_weights_t *exp = expected_open(src[d]);
        float scale = gs_clip_logit_scale(m);
        check("logit_scale_exp ([1])", &scale, want(exp, "logit_scale_exp", 1), 1, 1e-5, 1e-6);
        gs_clip_info_t a, b;
        gs_clip_describe(m, &a);
        gs_clip_describe(ref, &b);
        ck_assert_int_eq(a.n_params, b.n_params);
        ck_assert(a.logit_scale == b.logit_scale);
        float img[4 * 32];
        ck_assert_int_eq(
            gs_clip_encode_images(m, want(exp, "pixel_values", 4 * 3 * 32 * 32), 4, true, img),
            GS_OK);
        check(emb[d], img, want(exp, emb[d], 4 * 32), 4 * 32, EMB_ATOL, 0);
        gs_weights_close(&exp);
        gs_clip_close(&ref);
        gs_clip_close(&m);
        // any other shape holding one value is still refused, naming the tensor
        snprintf(dir, sizeof dir, "%s/%d_1x1", tmp, d);
        ls_folder(src[d], st[d], files[d], dir, "1,1");
        cap_start();
        ck_assert_int_eq(gs_clip_open(dir, NULL, &m), GS_EFORMAT);
        cap_stop();
        ck_assert_ptr_null(m);
        ASSERT_LOGGED("tensor \"logit_scale\" in");
        ASSERT_LOGGED("found [1, 1]");
    }
}
END_TEST

// ---- preprocessing into the encoder -------------------------------------------------------

static void check_from_raw_pixels(const char *dir)
{
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(dir, NULL, &m), GS_OK);
    gs_weights_t *exp = expected_open(dir);
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    float *pix = gs_xmalloc(4 * 3 * 32 * 32 * sizeof(float));
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "image%d.raw_uint8_hwc", i);
        const gs_tensor_t *t = gs_weights_get(exp, name);
        ck_assert_ptr_nonnull(t);
        int h = (int)t->shape[0], w = (int)t->shape[1];
        void *scratch = gs_xmalloc(gs_preprocess_scratch_nbytes(w, h, pc.size));
        ck_assert_int_eq(gs_preprocess_image(t->data, w, h, &pc, scratch, pix + i * 3 * 32 * 32),
                         GS_OK);
        gs_free(scratch);
    }
    check("pixel_values", pix, want(exp, "pixel_values", 4 * 3 * 32 * 32), 4 * 3 * 32 * 32, 1e-6,
          0);
    float img[4 * 32];
    ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, false, img), GS_OK);
    check("image_features", img, want(exp, "image_features", 4 * 32), 4 * 32, ACT_ATOL, ACT_RTOL);
    gs_free(pix);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}

START_TEST(test_clip_features_from_raw_pixels_via_preprocess)
{
    GS_NEED_SHARED();
    check_from_raw_pixels(OC_DIR);
    check_from_raw_pixels(HF_DIR);
}
END_TEST

// ---- text through the tokenizer -----------------------------------------------------------

START_TEST(test_clip_text_from_strings_via_tokenizer)
{
    GS_NEED_SHARED();
    // open_clip hub folder + the vocabulary given explicitly
    gs_clip_opts_t o = {.vocab_path = BPE_GZ, .n_threads = 2};
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(OC_DIR, &o, &m), GS_OK);
    ck_assert(gs_clip_has_text(m));
    gs_weights_t *exp = expected_open(OC_DIR);
    char *caps[8];
    int n = captions(OC_DIR, "captions", NULL, caps);
    ck_assert_int_eq(n, 6);
    int n_txt, ctx;
    int32_t *ids = ids_of(exp, "text_tokens", &n_txt, &ctx);
    for (int i = 0; i < n; i++) { // the tokenizer gives the fixture's ids exactly
        int32_t got[77];
        int n_tok = 0, n_untrunc = 0;
        ck_assert_int_eq(gs_clip_tokenize(m, caps[i], got, &n_tok, &n_untrunc), GS_OK);
        ck_assert_msg(memcmp(got, ids + i * 77, sizeof got) == 0, "caption %d ids differ", i);
        ck_assert_int_le(n_tok, 77);
        ck_assert_int_ge(n_untrunc, n_tok);
    }
    ck_assert_str_eq(gs_clip_token_str(m, 49406), "<start_of_text>");
    float txt[6 * 32];
    ck_assert_int_eq(gs_clip_encode_texts(m, (const char *const *)caps, n, true, txt), GS_OK);
    check("text_features_normalized (from strings)", txt,
          want(exp, "text_features_normalized", 6 * 32), 6 * 32, EMB_ATOL, 0);
    gs_clip_info_t info;
    gs_clip_describe(m, &info);
    ck_assert_str_eq(info.vocab_path, BPE_GZ);
    for (int i = 0; i < n; i++)
        gs_free(caps[i]);
    gs_free(ids);
    gs_weights_close(&exp);
    gs_clip_close(&m);

    // HF folder: vocab.json + merges.txt found next to the weights
    ck_assert_int_eq(gs_clip_open(HF_DIR, NULL, &m), GS_OK);
    ck_assert(gs_clip_has_text(m));
    exp = expected_open(HF_DIR);
    n = captions(HF_DIR, "text_input", "captions", caps);
    float txt_hf[6 * 32];
    ck_assert_int_eq(gs_clip_encode_texts(m, (const char *const *)caps, n, false, txt_hf), GS_OK);
    check("text_features (HF, from strings)", txt_hf, want(exp, "text_features", 6 * 32), 6 * 32,
          ACT_ATOL, ACT_RTOL);
    for (int i = 0; i < n; i++)
        gs_free(caps[i]);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}
END_TEST

START_TEST(test_clip_missing_vocabulary_is_explained)
{
    GS_NEED_SHARED();
    // openclip_tiny ships no vocabulary: images work, text says what is missing
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(OC_DIR, NULL, &m), GS_OK);
    ck_assert(!gs_clip_has_text(m));
    const char *t[1] = {"a harbor"};
    float out[32];
    int32_t ids[77];
    cap_start();
    ck_assert_int_eq(gs_clip_encode_texts(m, t, 1, true, out), GS_ENOTFOUND);
    ck_assert_int_eq(gs_clip_tokenize(m, t[0], ids, NULL, NULL), GS_ENOTFOUND);
    cap_stop();
    ASSERT_LOGGED("no CLIP vocabulary found in \"" OC_DIR "\": expected "
                  "bpe_simple_vocab_16e6.txt.gz or vocab.json + merges.txt; give one with "
                  "--vocab FILE");
    gs_clip_close(&m);
    // a vocabulary path that does not exist is an error at open
    gs_clip_opts_t o = {.vocab_path = "/nonexistent/bpe.txt.gz"};
    cap_start();
    ck_assert_int_ne(gs_clip_open(OC_DIR, &o, &m), GS_OK);
    cap_stop();
    ck_assert_ptr_null(m);
}
END_TEST

// open_or_skip: opens dir with o, or, where this build or CPU lacks the path o asks for (bf16,
// float32 on oneDNN), checks that the refusal was said (`refusal` in the log, no handle) and
// returns false so that the test skips with a message.
static bool open_or_skip(const char *dir, const gs_clip_opts_t *o, const char *refusal,
                         const char *test, gs_clip_t **m)
{
    cap_start();
    gs_err e = gs_clip_open(dir, o, m);
    cap_stop();
    if (e == GS_EUNSUPPORTED) {
        ASSERT_LOGGED(refusal);
        ck_assert_ptr_null(*m);
        fprintf(stderr, "SKIP %s: unavailable here (\"%s\")\n", test, refusal);
        return false;
    }
    ck_assert_int_eq(e, GS_OK);
    return true;
}

START_TEST(test_clip_bf16_precision_matches_f32)
{
    GS_NEED_SHARED();
    // both layouts, both towers, batches split over 2 threads and a single-image call
    const char *dirs[2] = {OC_DIR, HF_DIR};
    for (int d = 0; d < 2; d++) {
        gs_clip_opts_t o = {.precision = GS_CLIP_PRECISION_BF16,
                            .n_threads = 2,
                            .max_batch = 4,
                            .vocab_path = d == 0 ? BPE_GZ : NULL};
        gs_clip_t *m = NULL;
        if (!open_or_skip(dirs[d], &o, "bf16 precision needs", __func__, &m))
            return; // a build without oneDNN or a CPU without AVX-512 BF16
        gs_clip_info_t info;
        gs_clip_describe(m, &info);
        ck_assert_str_eq(info.precision, "bf16");
        gs_weights_t *exp = expected_open(dirs[d]);
        const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
        const float *ref = want(exp, d == 0 ? "image_features_normalized" : "image_embeds", 4 * 32);
        float img[4 * 32], one[32];
        ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, true, img), GS_OK);
        ck_assert_int_eq(gs_clip_encode_images(m, pix + 3 * 3 * 32 * 32, 1, true, one), GS_OK);
        for (int i = 0; i < 4; i++) {
            double c = cosine(img + i * 32, ref + i * 32, 32);
            ck_assert_msg(c >= 0.999, "%s image %d: cosine %.6f", dirs[d], i, c);
        }
        ck_assert(cosine(one, ref + 3 * 32, 32) >= 0.999);
        char *caps[8];
        int n = d == 0 ? captions(OC_DIR, "captions", NULL, caps)
                       : captions(HF_DIR, "text_input", "captions", caps);
        const float *tref = want(exp, d == 0 ? "text_features_normalized" : "text_embeds", 6 * 32);
        float txt[6 * 32];
        ck_assert_int_eq(gs_clip_encode_texts(m, (const char *const *)caps, n, true, txt), GS_OK);
        for (int i = 0; i < n; i++) {
            double c = cosine(txt + i * 32, tref + i * 32, 32);
            ck_assert_msg(c >= 0.999, "%s text %d: cosine %.6f", dirs[d], i, c);
            gs_free(caps[i]);
        }
        gs_weights_close(&exp);
        gs_clip_close(&m);
    }
}
END_TEST

// max_abs: the largest |a - b| over n values.
static double max_abs(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fabs((double)a[i] - b[i]) > m ? fabs((double)a[i] - b[i]) : m;
    return m;
}

// float32 GEMMs on oneDNN's packed weights against OpenBLAS: the same arithmetic up to the
// summation order, for both layouts, images and texts, sharded (4 over 2 threads) and alone,
// texts first (each tower is packed on its first use); the library is chosen by opts->gemm or,
// for AUTO, by GS_CLIP_GEMM, and a wrong GS_CLIP_GEMM is refused.
START_TEST(test_clip_onednn_f32_matches_openblas)
{
    GS_NEED_SHARED();
    const char *dirs[2] = {OC_DIR, HF_DIR};
    for (int d = 0; d < 2; d++) {
        float img[2][4 * 32], one[2][32], txt[2][6 * 32];
        int n = 0;
        for (int k = 0; k < 2; k++) {
            gs_clip_opts_t o = {.gemm = k ? GS_CLIP_GEMM_ONEDNN : GS_CLIP_GEMM_OPENBLAS,
                                .n_threads = 2,
                                .max_batch = 4,
                                .vocab_path = d == 0 ? BPE_GZ : NULL};
            gs_clip_t *m = NULL;
            if (!open_or_skip(dirs[d], &o, "float32 GEMMs on oneDNN need", __func__, &m))
                return; // no oneDNN, or no brgemm kernel (AVX-512) on this CPU
            gs_clip_info_t info;
            gs_clip_describe(m, &info);
            ck_assert_str_eq(info.precision, "f32");
            if (k)
                ck_assert_msg(strncmp(info.gemm, "onednn (brg", 11) == 0, "gemm %s", info.gemm);
            else
                ck_assert_str_eq(info.gemm, "openblas");
            char *caps[8];
            n = d == 0 ? captions(OC_DIR, "captions", NULL, caps)
                       : captions(HF_DIR, "text_input", "captions", caps);
            ck_assert_int_eq(gs_clip_encode_texts(m, (const char *const *)caps, n, true, txt[k]),
                             GS_OK);
            for (int i = 0; i < n; i++)
                gs_free(caps[i]);
            gs_weights_t *exp = expected_open(dirs[d]);
            const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
            ck_assert_int_eq(gs_clip_encode_images(m, pix, 4, true, img[k]), GS_OK);
            ck_assert_int_eq(gs_clip_encode_images(m, pix + 3 * 3 * 32 * 32, 1, true, one[k]),
                             GS_OK);
            gs_weights_close(&exp);
            gs_clip_close(&m);
        }
        ck_assert_msg(max_abs(img[0], img[1], 4 * 32) <= 1e-5, "%s images: %g", dirs[d],
                      max_abs(img[0], img[1], 4 * 32));
        ck_assert(max_abs(one[0], one[1], 32) <= 1e-5);
        ck_assert(max_abs(one[1], img[1] + 3 * 32, 32) <= 1e-5);
        ck_assert_msg(max_abs(txt[0], txt[1], n * 32) <= 1e-5, "%s texts: %g", dirs[d],
                      max_abs(txt[0], txt[1], n * 32));
    }
    // AUTO follows GS_CLIP_GEMM; anything but openblas / onednn / auto is refused
    gs_clip_t *m = NULL;
    gs_clip_info_t info;
    setenv("GS_CLIP_GEMM", "openblas", 1);
    ck_assert_int_eq(gs_clip_open(HF_DIR, NULL, &m), GS_OK);
    gs_clip_describe(m, &info);
    ck_assert_str_eq(info.gemm, "openblas");
    gs_clip_close(&m);
    setenv("GS_CLIP_GEMM", "mkl", 1);
    cap_start();
    ck_assert_int_eq(gs_clip_open(HF_DIR, NULL, &m), GS_EINVAL);
    cap_stop();
    ASSERT_LOGGED("GS_CLIP_GEMM is");
    ck_assert_ptr_null(m);
    unsetenv("GS_CLIP_GEMM");
}
END_TEST

START_TEST(test_clip_bf16_shards_run_concurrently_without_interference)
{
    GS_NEED_SHARED();
    // two shards run their oneDNN matmuls at the same time: each slot has its own scratchpad
    // (oneDNN's library scratchpad is shared and gave wrong embeddings about every other run)
    gs_clip_opts_t o = {.precision = GS_CLIP_PRECISION_BF16, .n_threads = 2, .max_batch = 8};
    gs_clip_t *m = NULL;
    cap_start();
    gs_err e = gs_clip_open(OC_DIR, &o, &m);
    cap_stop();
    if (e == GS_EUNSUPPORTED) {
        ASSERT_LOGGED("bf16 precision needs");
        return; // a build without oneDNN: test_clip_bf16_precision_matches_f32 says so
    }
    ck_assert_int_eq(e, GS_OK);
    gs_weights_t *exp = expected_open(OC_DIR);
    const float *pix = want(exp, "pixel_values", 4 * 3 * 32 * 32);
    const float *ref = want(exp, "image_features_normalized", 4 * 32);
    float *pix8 = gs_xmalloc(8 * 3 * 32 * 32 * sizeof(float));
    memcpy(pix8, pix, 4 * 3 * 32 * 32 * sizeof(float));
    memcpy(pix8 + 4 * 3 * 32 * 32, pix, 4 * 3 * 32 * 32 * sizeof(float));
    float first[8 * 32], again[8 * 32];
    ck_assert_int_eq(gs_clip_encode_images(m, pix8, 8, true, first), GS_OK);
    for (int i = 0; i < 8; i++) {
        double c = cosine(first + i * 32, ref + (i % 4) * 32, 32);
        ck_assert_msg(c >= 0.999, "image %d: cosine %.6f", i, c);
    }
    // the same 4 images in both shards give the same bits, every time
    ck_assert(memcmp(first, first + 4 * 32, 4 * 32 * sizeof(float)) == 0);
    for (int r = 0; r < 2000; r++) {
        ck_assert_int_eq(gs_clip_encode_images(m, pix8, 8, true, again), GS_OK);
        ck_assert_msg(memcmp(first, again, sizeof first) == 0, "run %d differs: max |diff| %.3g", r,
                      max_abs(first, again, 8 * 32));
    }
    gs_free(pix8);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}
END_TEST

// ---- text rows cut at the longest text ----------------------------------------------------

// The text tower computes each batch up to its longest text only. Each fixture caption gets
// the same features alone (its own length), in the 6-caption batch (the longest caption's
// length), split over 2 threads, and next to a 77-token text (the whole context, as before the
// cut): float32 within 5e-6 (OpenBLAS rounds differently for other row counts: 1.6e-6 seen;
// a wrong row would be off by O(1)), bf16 within cosine 0.9999.
static void check_text_cut(const char *dir, gs_clip_precision_t precision, int n_threads)
{
    gs_clip_opts_t o = {.n_threads = n_threads, .max_batch = 4, .precision = precision};
    gs_clip_t *m = NULL;
    cap_start();
    gs_err e = gs_clip_open(dir, &o, &m);
    cap_stop();
    if (e == GS_EUNSUPPORTED && precision == GS_CLIP_PRECISION_BF16) {
        ASSERT_LOGGED("bf16 precision needs");
        return; // a build without oneDNN: test_clip_bf16_precision_matches_f32 says so
    }
    ck_assert_int_eq(e, GS_OK);
    gs_weights_t *exp = expected_open(dir);
    int n_txt, ctx;
    int32_t *ids =
        ids_of(exp, strcmp(dir, OC_DIR) == 0 ? "text_tokens" : "input_ids", &n_txt, &ctx);
    ck_assert_int_eq(n_txt, 6);
    float batch[6 * 32];
    ck_assert_int_eq(gs_clip_encode_tokens(m, ids, n_txt, false, batch), GS_OK);
    for (int i = 0; i < n_txt; i++) {
        int32_t two[2 * 77];
        memcpy(two, ids + i * ctx, 77 * sizeof(int32_t));
        full_context_text(two + 77, 77);
        float alone[32], full[2 * 32];
        ck_assert_int_eq(gs_clip_encode_tokens(m, ids + i * ctx, 1, false, alone), GS_OK);
        ck_assert_int_eq(gs_clip_encode_tokens(m, two, 2, false, full), GS_OK);
        if (precision == GS_CLIP_PRECISION_F32) {
            char what[128];
            snprintf(what, sizeof what, "%s caption %d alone vs full context", dir, i);
            check(what, alone, full, 32, 5e-6, 0);
            snprintf(what, sizeof what, "%s caption %d in the batch vs full context", dir, i);
            check(what, batch + i * 32, full, 32, 5e-6, 0);
        } else {
            double c1 = cosine(alone, full, 32), c2 = cosine(batch + i * 32, full, 32);
            ck_assert_msg(c1 >= 0.9999 && c2 >= 0.9999,
                          "%s bf16 caption %d: cosine %.6f alone, %.6f in the batch (max |diff| "
                          "%.3g)",
                          dir, i, c1, c2, max_abs(alone, full, 32));
        }
    }
    gs_free(ids);
    gs_weights_close(&exp);
    gs_clip_close(&m);
}

START_TEST(test_clip_text_cut_at_longest_text_gives_full_context_features)
{
    GS_NEED_SHARED();
    const char *dirs[2] = {OC_DIR, HF_DIR};
    for (int d = 0; d < 2; d++) {
        check_text_cut(dirs[d], GS_CLIP_PRECISION_F32, 1);
        check_text_cut(dirs[d], GS_CLIP_PRECISION_F32, 2);
        check_text_cut(dirs[d], GS_CLIP_PRECISION_BF16, 2);
    }
}
END_TEST

Suite *model_clip_suite(void)
{
    Suite *s = suite_create("model_clip");
    TCase *tc = tcase_create("clip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_clip_openclip_hub_layout_matches_golden);
    tcase_add_test(tc, test_clip_openclip_pt_with_config_matches_golden_and_same_id);
    tcase_add_test(tc, test_clip_describe_and_model_id);
    tcase_add_test(tc, test_clip_hf_layout_matches_golden);
    tcase_add_test(tc, test_clip_hf_config_defaults_match_config_full);
    tcase_add_test(tc, test_clip_vision_hidden_states_hf_numbering);
    tcase_add_test(tc, test_clip_refuses_truncated_and_mismatched_models);
    tcase_add_test(tc, test_clip_f16_bf16_weights_match_f32);
    tcase_add_test(tc, test_clip_hf_sharded_folder);
    tcase_add_test(tc, test_clip_features_from_raw_pixels_via_preprocess);
    tcase_add_test(tc, test_clip_text_from_strings_via_tokenizer);
    tcase_add_test(tc, test_clip_missing_vocabulary_is_explained);
    tcase_add_test(tc, test_clip_bf16_precision_matches_f32);
    tcase_add_test(tc, test_clip_onednn_f32_matches_openblas);
    tcase_add_test(tc, test_clip_bf16_shards_run_concurrently_without_interference);
    tcase_add_test(tc, test_clip_text_cut_at_longest_text_gives_full_context_features);
    tcase_add_test(tc, test_clip_logit_scale_of_shape_1_is_accepted);
    suite_add_tcase(s, tc);
    return s;
}
