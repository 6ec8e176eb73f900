// model/llava: the LLaVA captioner against transformers v4.40.2 on ../shared/fixtures/
// llava_tiny (single and pair cases): every golden activation (vision tower, selected
// features, projector, merged embeddings, decoder layers, final norm, first-step logits)
// within atol 1e-4 + rtol 1e-4, the 16 greedy ids exact, the top-5 logits of every step;
// from the stored pixel_values and from the PNGs through preprocessing; the expanded-ids form;
// the decoding options (beams, sampling) and refused inputs.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "jobs/raster.h"
#include "model/clip_int.h"
#include "model/llava.h"
#include "model/llava_int.h"
#include "model/weights.h"
#include "testutil.h"

#define ATOL 1e-4
#define RTOL 1e-4
#define N_GEN 16

static const char *fx(const char *rel)
{
    static char path[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/fixtures/llava_tiny/%s", GS_SHARED_DIR, rel);
    return path[k];
}

// ---- golden tensors -----------------------------------------------------------------------

static gs_weights_t *expected;
static gs_llava_t *model;

static void setup(void)
{
    if (!gs_test_shared())
        return;
    ck_assert_int_eq(gs_weights_open(fx("expected.safetensors"), &expected), GS_OK);
    gs_llava_opts_t o = {.n_threads = 2, .n_ctx = 512, .max_images = 2, .max_beams = 4};
    ck_assert_int_eq(gs_llava_open(fx(""), &o, &model), GS_OK);
}

static void teardown(void)
{
    gs_llava_close(&model);
    gs_weights_close(&expected);
}

static const gs_tensor_t *golden(const char *cas, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", cas, name);
    const gs_tensor_t *t = gs_weights_get(expected, full);
    ck_assert_msg(t != NULL, "golden tensor %s is missing", full);
    return t;
}

static const float *golden_f32(const char *cas, const char *name, int64_t *n)
{
    const gs_tensor_t *t = golden(cas, name);
    ck_assert_int_eq(t->dtype, GS_DTYPE_F32);
    *n = t->n_elems;
    return t->data;
}

// golden_ids: an I64 tensor as int32.
static int32_t *golden_ids(const char *cas, const char *name, size_t *n)
{
    const gs_tensor_t *t = golden(cas, name);
    ck_assert_int_eq(t->dtype, GS_DTYPE_I64);
    int32_t *ids = gs_xmalloc((size_t)t->n_elems * sizeof *ids);
    for (int64_t i = 0; i < t->n_elems; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    *n = (size_t)t->n_elems;
    return ids;
}

// ---- the probe: first occurrence of each (name, layer), and every step's logits ----------

#define MAX_CAPS 64

typedef struct {
    char name[64];
    int layer;
    float *data;
    int rows, cols;
} cap_t;

typedef struct {
    cap_t caps[MAX_CAPS];
    int n;
    float *step_logits; // (N_GEN, vocab)
    int n_steps, vocab;
} captured_t;

static void capture(void *ud, const char *name, int layer, const float *data, int rows, int cols)
{
    captured_t *c = ud;
    if (strcmp(name, "logits") == 0) {
        if (layer < N_GEN && rows >= 1) {
            memcpy(c->step_logits + (size_t)layer * c->vocab, data, (size_t)cols * sizeof(float));
            c->n_steps = layer + 1;
        }
        return;
    }
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->caps[i].name, name) == 0 && c->caps[i].layer == layer)
            return;
    ck_assert_int_lt(c->n, MAX_CAPS);
    cap_t *k = &c->caps[c->n++];
    snprintf(k->name, sizeof k->name, "%s", name);
    k->layer = layer;
    k->rows = rows;
    k->cols = cols;
    k->data = gs_xmalloc((size_t)rows * cols * sizeof(float));
    memcpy(k->data, data, (size_t)rows * cols * sizeof(float));
}

static const cap_t *find_cap(const captured_t *c, const char *name, int layer)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->caps[i].name, name) == 0 && c->caps[i].layer == layer)
            return &c->caps[i];
    ck_assert_msg(0, "activation %s (layer %d) was not produced", name, layer);
    return NULL;
}

static void captured_free(captured_t *c)
{
    for (int i = 0; i < c->n; i++)
        gs_free(c->caps[i].data);
    gs_free(c->step_logits);
    memset(c, 0, sizeof *c);
}

// compare: the first `n` values of an activation against a golden tensor.
static size_t compare(const char *cas, const char *golden_name, const float *got, int64_t n_got)
{
    int64_t n;
    const float *want = golden_f32(cas, golden_name, &n);
    ck_assert_msg(n_got >= n, "%s.%s: %lld values produced, %lld expected", cas, golden_name,
                  (long long)n_got, (long long)n);
    char what[160];
    snprintf(what, sizeof what, "%s.%s", cas, golden_name);
    return gs_test_check_close(what, got, want, (size_t)n, ATOL, RTOL);
}

static size_t compare_cap(const captured_t *c, const char *cas, const char *name, int layer,
                          const char *golden_name)
{
    const cap_t *k = find_cap(c, name, layer);
    return compare(cas, golden_name, k->data, (int64_t)k->rows * k->cols);
}

// check_case: greedy generation from the stored ids and pixel values, every activation.
static void check_case(const char *cas, const char *ids_name)
{
    size_t n_ids, n_want;
    int32_t *ids = golden_ids(cas, ids_name, &n_ids);
    int32_t *want = golden_ids(cas, "generated_ids", &n_want);
    ck_assert_uint_eq(n_want, N_GEN);
    const gs_tensor_t *pv = golden(cas, "pixel_values");
    int n_images = (int)pv->shape[0];
    captured_t c = {.vocab = gs_llava_n_vocab(model)};
    c.step_logits = gs_xcalloc((size_t)N_GEN * c.vocab, sizeof(float));
    gs__llava_set_probe(model, capture, &c);
    gs_llava_gen_t g = gs_llava_gen_defaults();
    g.max_new_tokens = N_GEN;
    int32_t got[N_GEN];
    int n_got = 0;
    ck_assert_int_eq(
        gs_llava_generate(model, ids, n_ids, pv->data, n_images, &g, got, N_GEN, &n_got), GS_OK);
    gs__llava_set_probe(model, NULL, NULL);
    size_t bad = 0;
    // vision tower of the first image (17 tokens)
    bad += compare_cap(&c, cas, "vision.embed", -1, "image0.vision.embeddings_out");
    bad += compare_cap(&c, cas, "vision.ln_pre_out", -1, "image0.vision.pre_layrnorm_out");
    bad += compare_cap(&c, cas, "vision.block0_out", -1, "image0.vision.layer0_out");
    bad += compare_cap(&c, cas, "vision.block1_out", -1, "image0.vision.layer1_out");
    bad += compare_cap(&c, cas, "vision_selected_features", -1, "vision_selected_features");
    bad += compare_cap(&c, cas, "image_features", -1, "image_features");
    bad += compare_cap(&c, cas, "inputs_embeds_merged", -1, "inputs_embeds_merged");
    bad += compare_cap(&c, cas, "lm.self_attn_out", 0, "lm.layer0_self_attn_out");
    bad += compare_cap(&c, cas, "lm.mlp_out", 0, "lm.layer0_mlp_out");
    bad += compare_cap(&c, cas, "lm.layer_out", 0, "lm.layer0_out");
    bad += compare_cap(&c, cas, "lm.layer_out", 1, "lm.layer1_out");
    bad += compare_cap(&c, cas, "lm.final_norm_out", -1, "lm.final_norm_out");
    bad += compare(cas, "logits_last_step0", c.step_logits, c.vocab);
    // the last vision layer is not on the feature path: run the tower to its end
    int64_t n_l2;
    golden_f32(cas, "image0.vision.layer2_out", &n_l2);
    float *l2 = gs_xmalloc((size_t)n_images * n_l2 * sizeof(float));
    ck_assert_int_eq(gs__clip_vision_hidden(gs__llava_vision(model), pv->data, n_images, 3, l2),
                     GS_OK);
    bad += compare(cas, "image0.vision.layer2_out", l2, n_l2);
    gs_free(l2);
    // top-5 logits of every step
    ck_assert_int_eq(c.n_steps, N_GEN);
    size_t n5;
    int32_t *top_ids = golden_ids(cas, "step_logits_top5_ids", &n5);
    int64_t nv;
    const float *top_vals = golden_f32(cas, "step_logits_top5_values", &nv);
    for (int s = 0; s < N_GEN; s++) {
        float vals[5];
        for (int j = 0; j < 5; j++)
            vals[j] = c.step_logits[(size_t)s * c.vocab + top_ids[s * 5 + j]];
        char what[64];
        snprintf(what, sizeof what, "%s step %d top-5 logits", cas, s);
        bad += gs_test_check_close(what, vals, top_vals + s * 5, 5, ATOL, RTOL);
        int am = 0;
        for (int v = 1; v < c.vocab; v++)
            if (c.step_logits[(size_t)s * c.vocab + v] > c.step_logits[(size_t)s * c.vocab + am])
                am = v;
        ck_assert_int_eq(am, top_ids[s * 5]);
    }
    // the generated ids, exactly
    ck_assert_int_eq(n_got, N_GEN);
    for (int i = 0; i < N_GEN; i++)
        ck_assert_msg(got[i] == want[i], "%s: generated id %d is %d, want %d", cas, i, got[i],
                      want[i]);
    ck_assert_msg(bad == 0, "%s: %zu activation values out of tolerance", cas, bad);
    gs_free(top_ids);
    gs_free(ids);
    gs_free(want);
    captured_free(&c);
}

START_TEST(test_llava_single_matches_transformers)
{
    GS_NEED_SHARED();
    check_case("single", "input_ids");
}
END_TEST

START_TEST(test_llava_pair_matches_transformers)
{
    GS_NEED_SHARED();
    check_case("pair", "input_ids");
}
END_TEST

// the ids of processors >= 4.44 (each <image> repeated per patch) give the same generation
START_TEST(test_llava_expanded_ids_same_generation)
{
    GS_NEED_SHARED();
    check_case("single", "input_ids_expanded");
    check_case("pair", "input_ids_expanded");
}
END_TEST

// ---- from the PNG files -----------------------------------------------------------------

static void caption_pngs(const char *cas, const char *const *files, int n, const char *prompt)
{
    gs_llava_image_t img[2];
    uint8_t *rgb[2];
    size_t S = (size_t)gs_llava_image_size(model);
    int64_t n_pv;
    const float *want_pv = golden_f32(cas, "pixel_values", &n_pv);
    float *pv = gs_xmalloc((size_t)n * 3 * S * S * sizeof(float));
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(gs_raster_read_rgb8(fx(files[i]), &rgb[i], &img[i].w, &img[i].h), GS_OK);
        img[i].rgb = rgb[i];
        ck_assert_int_eq(gs_llava_preprocess(model, &img[i], pv + (size_t)i * 3 * S * S), GS_OK);
    }
    ck_assert_int_eq((int64_t)n * 3 * S * S, n_pv);
    ck_assert_uint_eq(
        gs_test_check_close("pixel_values from png", pv, want_pv, (size_t)n_pv, 1e-6, 0), 0);
    size_t n_want;
    int32_t *want = golden_ids(cas, "generated_ids", &n_want);
    gs_llava_gen_t g = gs_llava_gen_defaults();
    g.max_new_tokens = N_GEN;
    int32_t got[N_GEN];
    int n_got = 0;
    gs_buf_t text;
    gs_buf_init(&text, 1 << 16);
    ck_assert_int_eq(gs_llava_caption(model, img, n, prompt, false, &g, got, N_GEN, &n_got, &text),
                     GS_OK);
    ck_assert_int_eq(n_got, N_GEN);
    for (int i = 0; i < N_GEN; i++)
        ck_assert_msg(got[i] == want[i], "%s from png: id %d is %d, want %d", cas, i, got[i],
                      want[i]);
    gs_buf_t want_text;
    gs_buf_init(&want_text, 1 << 16);
    ck_assert_int_eq(gs_llava_decode(model, want, n_want, &want_text), GS_OK);
    ck_assert_str_eq(text.data, want_text.data);
    gs_buf_cleanup(&text);
    gs_buf_cleanup(&want_text);
    for (int i = 0; i < n; i++)
        gs_free(rgb[i]);
    gs_free(pv);
    gs_free(want);
}

START_TEST(test_llava_single_from_png)
{
    GS_NEED_SHARED();
    const char *files[] = {"single_image_0.png"};
    caption_pngs("single", files, 1, NULL); // the default one-image question is the fixture's
}
END_TEST

START_TEST(test_llava_pair_from_png)
{
    GS_NEED_SHARED();
    const char *files[] = {"pair_image_0_before.png", "pair_image_1_after.png"};
    caption_pngs("pair", files, 2, "What changed between the two images?");
}
END_TEST

START_TEST(test_llava_prompt_template_and_ids)
{
    GS_NEED_SHARED();
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    ck_assert_int_eq(gs_llava_prompt(NULL, 1, &b), GS_OK);
    ck_assert_str_eq(b.data, "USER: <image>\nDescribe this image. ASSISTANT:");
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_llava_prompt("What changed between the two images?", 2, &b), GS_OK);
    ck_assert_str_eq(b.data,
                     "USER: <image>\n<image>\nWhat changed between the two images? ASSISTANT:");
    size_t n_want, n;
    int32_t *want = golden_ids("pair", "input_ids", &n_want);
    int32_t ids[64];
    ck_assert_int_eq(gs_llava_tokenize(model, b.data, ids, 64, &n), GS_OK);
    ck_assert_uint_eq(n, n_want);
    ck_assert(memcmp(ids, want, n * sizeof *ids) == 0);
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_llava_prompt(NULL, 2, &b), GS_OK);
    ck_assert_str_eq(b.data, "USER: <image>\n<image>\nDescribe what changed from the first image "
                             "to the second image. ASSISTANT:");
    gs_free(want);
    gs_buf_cleanup(&b);
}
END_TEST

START_TEST(test_llava_model_id_stable)
{
    GS_NEED_SHARED();
    const char *id = gs_llava_model_id(model);
    ck_assert_uint_eq(strlen(id), 16);
    ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 16);
    ck_assert_str_eq(gs_llava_model_id(model), id);
    gs_llava_t *again = NULL;
    ck_assert_int_eq(gs_llava_open(fx(""), NULL, &again), GS_OK);
    ck_assert_str_eq(gs_llava_model_id(again), id);
    gs_llava_close(&again);
}
END_TEST

// ---- decoding options ---------------------------------------------------------------------

static void run_gen(const char *cas, const gs_llava_gen_t *g, int32_t *out, int *n_out)
{
    size_t n_ids;
    int32_t *ids = golden_ids(cas, "input_ids", &n_ids);
    const gs_tensor_t *pv = golden(cas, "pixel_values");
    ck_assert_int_eq(
        gs_llava_generate(model, ids, n_ids, pv->data, (int)pv->shape[0], g, out, N_GEN, n_out),
        GS_OK);
    gs_free(ids);
}

// sum of log-probabilities of `gen` after the case's prompt, by teacher forcing
static double seq_logprob(const char *cas, const int32_t *gen, int n)
{
    size_t n_ids;
    int32_t *ids = golden_ids(cas, "input_ids", &n_ids);
    int32_t *all = gs_xmalloc((n_ids + (size_t)n) * sizeof *all);
    memcpy(all, ids, n_ids * sizeof *ids);
    const gs_tensor_t *pv = golden(cas, "pixel_values");
    double lp = 0;
    for (int k = 0; k < n; k++) {
        // generate one token after prompt + gen[0..k) and read the step-0 logits
        memcpy(all + n_ids, gen, (size_t)k * sizeof *gen);
        captured_t cc = {.vocab = gs_llava_n_vocab(model)};
        cc.step_logits = gs_xcalloc((size_t)N_GEN * cc.vocab, sizeof(float));
        gs__llava_set_probe(model, capture, &cc);
        gs_llava_gen_t g = gs_llava_gen_defaults();
        g.max_new_tokens = 1;
        int32_t t;
        int nt;
        ck_assert_int_eq(
            gs_llava_generate(model, all, n_ids + k, pv->data, (int)pv->shape[0], &g, &t, 1, &nt),
            GS_OK);
        gs__llava_set_probe(model, NULL, NULL);
        const float *lg = cc.step_logits;
        double mx = lg[0], s = 0;
        for (int v = 1; v < cc.vocab; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < cc.vocab; v++)
            s += exp(lg[v] - mx);
        lp += lg[gen[k]] - mx - log(s);
        captured_free(&cc);
    }
    gs_free(all);
    gs_free(ids);
    return lp;
}

START_TEST(test_llava_beam_search)
{
    GS_NEED_SHARED();
    gs_llava_gen_t g = gs_llava_gen_defaults();
    g.max_new_tokens = N_GEN;
    int32_t greedy[N_GEN], beam[N_GEN], beam2[N_GEN];
    int n_greedy, n_beam, n_beam2;
    run_gen("single", &g, greedy, &n_greedy);
    g.num_beams = 1; // one beam is greedy search
    run_gen("single", &g, beam, &n_beam);
    ck_assert_int_eq(n_beam, n_greedy);
    ck_assert(memcmp(beam, greedy, sizeof greedy) == 0);
    g.num_beams = 3;
    run_gen("single", &g, beam, &n_beam);
    run_gen("single", &g, beam2, &n_beam2);
    ck_assert_int_eq(n_beam, N_GEN); // EOS never wins with this random model
    ck_assert_int_eq(n_beam2, n_beam);
    ck_assert(memcmp(beam, beam2, sizeof beam) == 0); // deterministic
    // beam search found a sequence at least as likely as greedy's (same length here)
    double lp_greedy = seq_logprob("single", greedy, N_GEN);
    double lp_beam = seq_logprob("single", beam, N_GEN);
    ck_assert_msg(lp_beam >= lp_greedy - 1e-4, "beam %.6f < greedy %.6f", lp_beam, lp_greedy);
    // more beams than the handle allows, or beams with sampling: refused
    g.num_beams = 5;
    int32_t out[N_GEN];
    int n_out;
    size_t n_ids;
    int32_t *ids = golden_ids("single", "input_ids", &n_ids);
    const gs_tensor_t *pv = golden("single", "pixel_values");
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 1, &g, out, N_GEN, &n_out),
                     GS_EINVAL);
    g.num_beams = 2;
    g.do_sample = true;
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 1, &g, out, N_GEN, &n_out),
                     GS_EINVAL);
    gs_free(ids);
}
END_TEST

START_TEST(test_llava_sampling)
{
    GS_NEED_SHARED();
    gs_llava_gen_t g = gs_llava_gen_defaults();
    g.max_new_tokens = N_GEN;
    int32_t greedy[N_GEN], a[N_GEN], b[N_GEN];
    int n_greedy, na, nb;
    run_gen("pair", &g, greedy, &n_greedy);
    // top_k = 1 and a vanishing temperature both reduce to argmax
    g.do_sample = true;
    g.top_k = 1;
    g.seed = 7;
    run_gen("pair", &g, a, &na);
    ck_assert(na == n_greedy && memcmp(a, greedy, sizeof a) == 0);
    g.top_k = 0;
    g.temperature = 1e-5f;
    run_gen("pair", &g, a, &na);
    ck_assert(na == n_greedy && memcmp(a, greedy, sizeof a) == 0);
    // the same seed gives the same sample; another seed, another one
    g.temperature = 1.0f;
    g.top_k = 0;
    g.top_p = 0.9f;
    run_gen("pair", &g, a, &na);
    run_gen("pair", &g, b, &nb);
    ck_assert(na == nb && memcmp(a, b, sizeof a) == 0);
    g.seed = 8;
    run_gen("pair", &g, b, &nb);
    ck_assert_msg(memcmp(a, b, sizeof a) != 0, "two seeds gave the same 16 samples");
    // with this flat random model top-p 0.9 keeps thousands of tokens: samples are not greedy
    ck_assert(memcmp(a, greedy, sizeof a) != 0);
}
END_TEST

// ---- refusals -----------------------------------------------------------------------------

static void quiet(gs_log_level_t level, const char *line, void *ud)
{
    (void)level, (void)line, (void)ud;
}

// make_copy: a copy of llava_tiny in a temp folder (symlinks) with model.safetensors replaced
// by its first `keep` bytes (keep < 0: linked whole) and config.json optionally replaced.
static const char *make_copy(const char *name, long keep, const char *config_text)
{
    const char *dir = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(dir);
    static const char *files[] = {"config.json",
                                  "generation_config.json",
                                  "tokenizer.model",
                                  "tokenizer_config.json",
                                  "added_tokens.json",
                                  "special_tokens_map.json",
                                  "preprocessor_config.json"};
    char cmd[9000];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (config_text && i == 0)
            continue;
        snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/%s'", fx(files[i]), dir, files[i]);
        ck_assert_int_eq(system(cmd), 0);
    }
    if (config_text) {
        snprintf(cmd, sizeof cmd, "%s/config.json", dir);
        FILE *f = fopen(cmd, "w");
        ck_assert_ptr_nonnull(f);
        fputs(config_text, f);
        fclose(f);
    }
    if (keep < 0)
        snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/model.safetensors'", fx("model.safetensors"),
                 dir);
    else
        snprintf(cmd, sizeof cmd, "head -c %ld '%s' > '%s/model.safetensors'", keep,
                 fx("model.safetensors"), dir);
    ck_assert_int_eq(system(cmd), 0);
    return dir;
}

START_TEST(test_llava_refuses_bad_models)
{
    GS_NEED_SHARED();
    gs_log_set(quiet, NULL);
    gs_llava_t *m = (gs_llava_t *)1;
    // truncated weights
    ck_assert_int_ne(gs_llava_open(make_copy("llava_trunc", 17410872 / 2, NULL), NULL, &m), GS_OK);
    ck_assert_ptr_null(m);
    ck_assert_int_ne(gs_llava_open(make_copy("llava_trunc2", 17410872 - 4, NULL), NULL, &m), GS_OK);
    // a config that disagrees with the weights (one more decoder layer): a missing tensor
    char *cfg = NULL;
    size_t n;
    FILE *f = fopen(fx("config.json"), "r");
    ck_assert_ptr_nonnull(f);
    cfg = gs_xcalloc(1, 65536);
    n = fread(cfg, 1, 65535, f);
    fclose(f);
    ck_assert_uint_gt(n, 0);
    char *p = strstr(cfg, "\"num_hidden_layers\": 2");
    ck_assert_ptr_nonnull(p);
    p[strlen("\"num_hidden_layers\": ")] = '3';
    ck_assert_int_eq(gs_llava_open(make_copy("llava_layers", -1, cfg), NULL, &m), GS_ENOTFOUND);
    // an unknown rope scaling type is refused by name
    p = strstr(cfg, "\"rms_norm_eps\"");
    ck_assert_ptr_nonnull(p);
    char *cfg2 = gs_xasprintf("%.*s\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2.0}, %s",
                              (int)(p - cfg), cfg, p);
    p = strstr(cfg2, "\"num_hidden_layers\": 3");
    p[strlen("\"num_hidden_layers\": ")] = '2';
    ck_assert_int_eq(gs_llava_open(make_copy("llava_rope", -1, cfg2), NULL, &m), GS_EUNSUPPORTED);
    gs_free(cfg2);
    // the intact copy opens
    p = strstr(cfg, "\"num_hidden_layers\": 3");
    p[strlen("\"num_hidden_layers\": ")] = '2';
    ck_assert_int_eq(gs_llava_open(make_copy("llava_ok", -1, cfg), NULL, &m), GS_OK);
    gs_llava_close(&m);
    gs_free(cfg);
    gs_log_set(NULL, NULL);
}
END_TEST

START_TEST(test_llava_refuses_bad_calls)
{
    GS_NEED_SHARED();
    gs_log_set(quiet, NULL);
    size_t n_ids;
    int32_t *ids = golden_ids("pair", "input_ids", &n_ids);
    const gs_tensor_t *pv = golden("pair", "pixel_values");
    gs_llava_gen_t g = gs_llava_gen_defaults();
    int32_t out[N_GEN];
    int n;
    // two image tokens, one image
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 1, &g, out, N_GEN, &n),
                     GS_EINVAL);
    // more images than the handle holds
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 3, &g, out, N_GEN, &n),
                     GS_EINVAL);
    // prompt + generation beyond the KV cache (512 rows)
    g.max_new_tokens = 600;
    int32_t *big = gs_xmalloc(600 * sizeof *big);
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 2, &g, big, 600, &n),
                     GS_ETOOBIG);
    gs_free(big);
    // an id outside the vocabulary
    ids[3] = 40000;
    g.max_new_tokens = 4;
    ck_assert_int_eq(gs_llava_generate(model, ids, n_ids, pv->data, 2, &g, out, N_GEN, &n),
                     GS_EINVAL);
    gs_free(ids);
    gs_log_set(NULL, NULL);
}
END_TEST

// ---- configuration ------------------------------------------------------------------------

static void parse_file(const char *name, gs__llava_config_t *out)
{
    FILE *f = fopen(fx(name), "r");
    ck_assert_ptr_nonnull(f);
    char *text = gs_xcalloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    ck_assert_int_eq(gs__llava_config_parse(text, n, name, out), GS_OK);
    gs_free(text);
}

// the defaults filled in for config.json equal the fully written config_full.json
START_TEST(test_llava_config_defaults_match_full_config)
{
    GS_NEED_SHARED();
    gs__llava_config_t a, b;
    parse_file("config.json", &a);
    parse_file("config_full.json", &b);
    ck_assert(memcmp(&a.text, &b.text, sizeof a.text) == 0);
    ck_assert_int_eq(a.text.n_kv_heads, 2);
    ck_assert_int_eq(a.text.head_dim, 16);
    ck_assert_int_eq(a.text.max_pos, 4096);
    ck_assert(fabsf(a.text.norm_eps - 1e-5f) < 1e-12f);
    ck_assert_int_eq(a.image_token_index, b.image_token_index);
    ck_assert_int_eq(a.vision_feature_layer, -2);
    ck_assert_int_eq(a.pad_token_id, 32001);
    ck_assert(!a.select_full && !b.select_full);
    gs__clip_hparams_t va, vb;
    ck_assert_int_eq(gs__clip_hparams_hf_vision(a.vision_json, "config.json", &va), GS_OK);
    ck_assert_int_eq(gs__clip_hparams_hf_vision(b.vision_json, "config_full.json", &vb), GS_OK);
    ck_assert_int_eq(va.v_layers, vb.v_layers);
    ck_assert_int_eq(va.v_width, vb.v_width);
    ck_assert_int_eq(va.v_act, vb.v_act);
    ck_assert_int_eq(va.image_size, 32);
    gs__llava_config_cleanup(&a);
    gs__llava_config_cleanup(&b);
    // an empty config is LlavaConfig(): ViT-L/14-336 and LLaMA-7B sizes
    gs__llava_config_t d;
    ck_assert_int_eq(gs__llava_config_parse("{}", 2, "empty", &d), GS_OK);
    ck_assert_int_eq(d.text.dim, 4096);
    ck_assert_int_eq(d.text.n_layers, 32);
    ck_assert_int_eq(d.text.hidden_dim, 11008);
    ck_assert_int_eq(d.text.vocab_size, 32000);
    ck_assert_int_eq(gs__clip_hparams_hf_vision(d.vision_json, "empty", &va), GS_OK);
    ck_assert_int_eq(va.image_size, 336);
    ck_assert_int_eq(va.v_layers, 24);
    gs__llava_config_cleanup(&d);
}
END_TEST

Suite *model_llava_suite(void)
{
    Suite *s = suite_create("model_llava");
    TCase *tc = tcase_create("parity");
    tcase_add_checked_fixture(tc, setup,
                              teardown); // in the forked child: the pool threads must live there
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_llava_single_matches_transformers);
    tcase_add_test(tc, test_llava_pair_matches_transformers);
    tcase_add_test(tc, test_llava_expanded_ids_same_generation);
    tcase_add_test(tc, test_llava_single_from_png);
    tcase_add_test(tc, test_llava_pair_from_png);
    tcase_add_test(tc, test_llava_prompt_template_and_ids);
    tcase_add_test(tc, test_llava_model_id_stable);
    tcase_add_test(tc, test_llava_beam_search);
    tcase_add_test(tc, test_llava_sampling);
    tcase_add_test(tc, test_llava_refuses_bad_calls);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("files");
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, test_llava_refuses_bad_models);
    tcase_add_test(tr, test_llava_config_defaults_match_full_config);
    suite_add_tcase(s, tr);
    return s;
}
