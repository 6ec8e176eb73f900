// model/llama: the decoder against a naive double-precision reference written here from the
// transformers v4.40 definitions (RMSNorm, rotate-half RoPE with linear and dynamic-NTK
// scaling, grouped-query attention, attention biases, SwiGLU, tied embeddings), on tiny random
// models the test writes in F32, F16 and BF16; the linear kernels against plain loops; chunked
// prefill, beams over shared cache rows, limits, and the config reader.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "model/llama.h"
#include "model/llama_int.h"
#include "model/ops.h"
#include "model/weights.h"
#include "testutil.h"

// ---- random numbers -----------------------------------------------------------------------

static uint64_t rng_state;
static float frand(void) // uniform in [-1, 1)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

// round_to: the value as the dtype stores it.
static float round_to(float v, gs_dtype_t dt)
{
    if (dt == GS_DTYPE_BF16)
        return gs_ops_bf16_to_f32_1(gs_ops_f32_to_bf16_1(v));
    if (dt == GS_DTYPE_F16)
        return gs_ops_f16_to_f32_1(gs_ops_f32_to_f16_1(v));
    return v;
}

// ---- a tiny model: hyperparameters, weights (as stored), and its files --------------------

typedef struct {
    gs__llama_hparams_t hp;
    gs_dtype_t dtype;
    int n_t; // tensors
    char name[64][96];
    int64_t shape[64][2];
    int n_dims[64];
    float *val[64]; // values as stored (rounded to dtype)
} tiny_t;

static float *add_tensor(tiny_t *m, const char *name, int64_t a, int64_t b, float scale,
                         float offset)
{
    int i = m->n_t++;
    snprintf(m->name[i], sizeof m->name[i], "%s", name);
    m->shape[i][0] = a;
    m->shape[i][1] = b;
    m->n_dims[i] = b > 0 ? 2 : 1;
    int64_t n = a * (b > 0 ? b : 1);
    m->val[i] = gs_xmalloc((size_t)n * sizeof(float));
    for (int64_t k = 0; k < n; k++)
        m->val[i][k] = round_to(offset + scale * frand(), m->dtype);
    return m->val[i];
}

static const float *get(const tiny_t *m, const char *name)
{
    for (int i = 0; i < m->n_t; i++)
        if (strcmp(m->name[i], name) == 0)
            return m->val[i];
    ck_assert_msg(0, "no tensor %s", name);
    return NULL;
}

static void tiny_make(tiny_t *m, const gs__llama_hparams_t *hp, gs_dtype_t dt, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->hp = *hp;
    m->dtype = dt;
    rng_state = seed;
    int D = hp->dim, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    int H = hp->hidden_dim;
    float s = 0.3f;
    add_tensor(m, "model.embed_tokens.weight", hp->vocab_size, D, 1.0f, 0);
    for (int l = 0; l < hp->n_layers; l++) {
        char n[96];
#define T(suffix, a, b, sc, off)                                                                   \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                        \
    add_tensor(m, n, a, b, sc, off)
        T("self_attn.q_proj.weight", qd, D, s, 0);
        T("self_attn.k_proj.weight", kvd, D, s, 0);
        T("self_attn.v_proj.weight", kvd, D, s, 0);
        T("self_attn.o_proj.weight", D, qd, s, 0);
        T("mlp.gate_proj.weight", H, D, s, 0);
        T("mlp.up_proj.weight", H, D, s, 0);
        T("mlp.down_proj.weight", D, H, s, 0);
        T("input_layernorm.weight", D, 0, 0.2f, 1.0f);
        T("post_attention_layernorm.weight", D, 0, 0.2f, 1.0f);
        if (hp->attention_bias) {
            T("self_attn.q_proj.bias", qd, 0, 0.1f, 0);
            T("self_attn.k_proj.bias", kvd, 0, 0.1f, 0);
            T("self_attn.v_proj.bias", kvd, 0, 0.1f, 0);
            T("self_attn.o_proj.bias", D, 0, 0.1f, 0);
        }
#undef T
    }
    add_tensor(m, "model.norm.weight", D, 0, 0.2f, 1.0f);
    if (!hp->tie_embeddings)
        add_tensor(m, "lm_head.weight", hp->vocab_size, D, s, 0);
}

static void tiny_free(tiny_t *m)
{
    for (int i = 0; i < m->n_t; i++)
        gs_free(m->val[i]);
}

// tiny_write: config.json + model.safetensors in a fresh folder; returns the folder.
static const char *tiny_write(const tiny_t *m, const char *name, const char *extra_config)
{
    const char *dir = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(dir);
    const gs__llama_hparams_t *hp = &m->hp;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"model_type\": \"llama\", \"vocab_size\": %d, \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": %g, "
            "\"rope_theta\": %g, \"tie_word_embeddings\": %s, \"attention_bias\": %s%s%s}",
            hp->vocab_size, hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads, hp->n_kv_heads,
            hp->max_pos, hp->norm_eps, hp->rope_theta, hp->tie_embeddings ? "true" : "false",
            hp->attention_bias ? "true" : "false", extra_config ? ", " : "",
            extra_config ? extra_config : "");
    fclose(f);
    size_t esz = gs_dtype_size(m->dtype);
    gs_buf_t h;
    gs_buf_init(&h, 1 << 20);
    gs_buf_puts(&h, "{");
    size_t off = 0;
    for (int i = 0; i < m->n_t; i++) {
        size_t n = (size_t)m->shape[i][0] * (m->n_dims[i] == 2 ? m->shape[i][1] : 1);
        gs_buf_printf(&h, "%s\"%s\": {\"dtype\": \"%s\", \"shape\": [%lld", i ? ", " : "",
                      m->name[i], gs_dtype_name(m->dtype), (long long)m->shape[i][0]);
        if (m->n_dims[i] == 2)
            gs_buf_printf(&h, ", %lld", (long long)m->shape[i][1]);
        gs_buf_printf(&h, "], \"data_offsets\": [%zu, %zu]}", off, off + n * esz);
        off += n * esz;
    }
    gs_buf_puts(&h, "}");
    while (h.len % 8)
        gs_buf_puts(&h, " ");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint64_t hl = h.len;
    fwrite(&hl, 8, 1, f);
    fwrite(h.data, 1, h.len, f);
    for (int i = 0; i < m->n_t; i++) {
        size_t n = (size_t)m->shape[i][0] * (m->n_dims[i] == 2 ? m->shape[i][1] : 1);
        if (m->dtype == GS_DTYPE_F32) {
            fwrite(m->val[i], 4, n, f);
            continue;
        }
        uint16_t *b = gs_xmalloc(n * 2);
        if (m->dtype == GS_DTYPE_BF16)
            gs_ops_f32_to_bf16(m->val[i], n, b);
        else
            gs_ops_f32_to_f16(m->val[i], n, b);
        fwrite(b, 2, n, f);
        gs_free(b);
    }
    fclose(f);
    gs_buf_cleanup(&h);
    return dir;
}

// ---- the reference: transformers' LlamaForCausalLM in double, with its own KV cache -------

typedef struct {
    const tiny_t *m;
    double *K, *V; // (n_layers, n_ctx, kv_dim)
    int n_ctx, len;
} ref_t;

static void ref_init(ref_t *r, const tiny_t *m, int n_ctx)
{
    int kvd = m->hp.n_kv_heads * m->hp.head_dim;
    r->m = m;
    r->n_ctx = n_ctx;
    r->len = 0;
    r->K = gs_xcalloc((size_t)m->hp.n_layers * n_ctx * kvd, sizeof(double));
    r->V = gs_xcalloc((size_t)m->hp.n_layers * n_ctx * kvd, sizeof(double));
}

static void ref_free(ref_t *r)
{
    gs_free(r->K);
    gs_free(r->V);
}

static void matvec(const float *W, const double *x, int n_out, int n_in, const float *b, double *y)
{
    for (int o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < n_in; i++)
            s += (double)W[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rmsnorm(const double *x, const float *w, int n, double eps, double *y)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * s * w[i];
}

static void rope(double *v, int n_heads, int hd, double pos, const double *inv)
{
    for (int h = 0; h < n_heads; h++) {
        double *x = v + (size_t)h * hd;
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * inv[i], c = cos(a), s = sin(a), x0 = x[i], x1 = x[i + hd / 2];
            x[i] = x0 * c - x1 * s;
            x[i + hd / 2] = x1 * c + x0 * s;
        }
    }
}

// ref_forward: one call of the model (a chunk of n tokens); logits of the last one.
static void ref_forward(ref_t *r, const int32_t *tok, int n, double *logits)
{
    const tiny_t *m = r->m;
    const gs__llama_hparams_t *hp = &m->hp;
    int D = hp->dim, hd = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads;
    int qd = nh * hd, kvd = nkv * hd, H = hp->hidden_dim, p0 = r->len;
    double base = hp->rope_theta, inv[256];
    int seq_len = p0 + n;
    if (hp->rope_type == GS__ROPE_DYNAMIC && seq_len > hp->max_pos)
        base *= pow(hp->rope_factor * seq_len / (double)hp->max_pos - (hp->rope_factor - 1),
                    hd / (hd - 2.0));
    for (int i = 0; i < hd / 2; i++)
        inv[i] = 1.0 / pow(base, 2.0 * i / hd);
    double *x = gs_xcalloc((size_t)n * D, sizeof(double));
    double *xn = gs_xmalloc(D * sizeof(double)), *q = gs_xmalloc((size_t)n * qd * sizeof(double));
    double *att = gs_xmalloc(qd * sizeof(double)), *o = gs_xmalloc(D * sizeof(double));
    double *g = gs_xmalloc(H * sizeof(double)), *u = gs_xmalloc(H * sizeof(double));
    double *sc = gs_xmalloc((size_t)r->n_ctx * sizeof(double));
    const float *emb = get(m, "model.embed_tokens.weight");
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++)
            x[(size_t)t * D + i] = emb[(size_t)tok[t] * D + i];
    for (int l = 0; l < hp->n_layers; l++) {
        char nm[128];
#define W(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), get(m, nm))
#define B(s) (hp->attention_bias ? W(s) : NULL)
        double *Kl = r->K + (size_t)l * r->n_ctx * kvd, *Vl = r->V + (size_t)l * r->n_ctx * kvd;
        for (int t = 0; t < n; t++) {
            double pos = p0 + t;
            if (hp->rope_type == GS__ROPE_LINEAR)
                pos /= hp->rope_factor;
            rmsnorm(x + (size_t)t * D, W("input_layernorm.weight"), D, hp->norm_eps, xn);
            matvec(W("self_attn.q_proj.weight"), xn, qd, D, B("self_attn.q_proj.bias"),
                   q + (size_t)t * qd);
            matvec(W("self_attn.k_proj.weight"), xn, kvd, D, B("self_attn.k_proj.bias"),
                   Kl + (size_t)(p0 + t) * kvd);
            matvec(W("self_attn.v_proj.weight"), xn, kvd, D, B("self_attn.v_proj.bias"),
                   Vl + (size_t)(p0 + t) * kvd);
            rope(q + (size_t)t * qd, nh, hd, pos, inv);
            rope(Kl + (size_t)(p0 + t) * kvd, nkv, hd, pos, inv);
        }
        for (int t = 0; t < n; t++) {
            int len = p0 + t + 1;
            for (int h = 0; h < nh; h++) {
                int kv = h / (nh / nkv);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < len; j++) {
                    double s = 0;
                    for (int i = 0; i < hd; i++)
                        s += q[(size_t)t * qd + h * hd + i] * Kl[(size_t)j * kvd + kv * hd + i];
                    sc[j] = s / sqrt((double)hd);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < len; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = 0; j < len; j++)
                        a += sc[j] / sum * Vl[(size_t)j * kvd + kv * hd + i];
                    att[h * hd + i] = a;
                }
            }
            double *xt = x + (size_t)t * D;
            matvec(W("self_attn.o_proj.weight"), att, D, qd, B("self_attn.o_proj.bias"), o);
            for (int i = 0; i < D; i++)
                xt[i] += o[i];
            rmsnorm(xt, W("post_attention_layernorm.weight"), D, hp->norm_eps, xn);
            matvec(W("mlp.gate_proj.weight"), xn, H, D, NULL, g);
            matvec(W("mlp.up_proj.weight"), xn, H, D, NULL, u);
            for (int i = 0; i < H; i++)
                g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            matvec(W("mlp.down_proj.weight"), g, D, H, NULL, o);
            for (int i = 0; i < D; i++)
                xt[i] += o[i];
        }
#undef W
#undef B
    }
    rmsnorm(x + (size_t)(n - 1) * D, get(m, "model.norm.weight"), D, hp->norm_eps, xn);
    const float *lm = hp->tie_embeddings ? emb : get(m, "lm_head.weight");
    matvec(lm, xn, hp->vocab_size, D, NULL, logits);
    r->len += n;
    gs_free(x), gs_free(xn), gs_free(q), gs_free(att), gs_free(o), gs_free(g), gs_free(u);
    gs_free(sc);
}

// ---- decoder vs reference -----------------------------------------------------------------

static gs__llama_hparams_t small_hp(void)
{
    gs__llama_hparams_t hp;
    gs__llama_hparams_defaults(&hp);
    hp.vocab_size = 97;
    hp.dim = 48;
    hp.hidden_dim = 72;
    hp.n_layers = 2;
    hp.n_heads = 6;
    hp.n_kv_heads = 2;
    hp.head_dim = 8;
    hp.max_pos = 64;
    hp.norm_eps = 1e-5f;
    return hp;
}

// run_and_compare: prefill `n_prompt` tokens then decode `n_step` more one at a time, through
// gs_llama_eval and through the reference, comparing the logits after each call.
static void run_and_compare(const gs__llama_hparams_t *hp, gs_dtype_t dt, const char *extra,
                            int n_prompt, int n_step, int n_batch, double atol)
{
    tiny_t m;
    tiny_make(&m, hp, dt, 1234 + (uint64_t)dt);
    const char *dir = tiny_write(&m, "llama_model", extra);
    gs_llama_opts_t o = {.n_threads = 2, .n_ctx = 64, .n_batch = n_batch};
    gs_llama_t *lm = NULL;
    ck_assert_int_eq(gs_llama_open(dir, &o, &lm), GS_OK);
    ref_t r;
    ref_init(&r, &m, 64);
    int32_t tok[64];
    for (int i = 0; i < n_prompt + n_step; i++)
        tok[i] = (i * 37 + 11) % hp->vocab_size;
    float *got = gs_xmalloc(hp->vocab_size * sizeof(float));
    double *want = gs_xmalloc(hp->vocab_size * sizeof(double));
    float *wantf = gs_xmalloc(hp->vocab_size * sizeof(float));
    for (int s = 0; s <= n_step; s++) {
        int at = s == 0 ? 0 : n_prompt + s - 1, n = s == 0 ? n_prompt : 1;
        ck_assert_int_eq(gs_llama_eval(lm, tok + at, n, got), GS_OK);
        ref_forward(&r, tok + at, n, want);
        for (int v = 0; v < hp->vocab_size; v++)
            wantf[v] = (float)want[v];
        char what[96];
        snprintf(what, sizeof what, "%s %s step %d logits", gs_dtype_name(dt), extra ? extra : "",
                 s);
        ck_assert_uint_eq(gs_test_check_close(what, got, wantf, hp->vocab_size, atol, 1e-4), 0);
    }
    gs_free(got), gs_free(want), gs_free(wantf);
    ref_free(&r);
    gs_llama_close(&lm);
    tiny_free(&m);
}

START_TEST(test_llama_matches_reference_f32_gqa)
{
    gs__llama_hparams_t hp = small_hp();
    run_and_compare(&hp, GS_DTYPE_F32, NULL, 9, 4, 512, 1e-4);
}
END_TEST

START_TEST(test_llama_matches_reference_half_precision)
{
    // the same values stored in 16 bits: the decoder computes from them directly
    gs__llama_hparams_t hp = small_hp();
    run_and_compare(&hp, GS_DTYPE_BF16, NULL, 9, 4, 512, 1e-4);
    run_and_compare(&hp, GS_DTYPE_F16, NULL, 9, 4, 512, 1e-4);
}
END_TEST

START_TEST(test_llama_matches_reference_bias_tied_mha)
{
    gs__llama_hparams_t hp = small_hp();
    hp.attention_bias = true;
    hp.tie_embeddings = true;
    hp.n_kv_heads = 6; // plain multi-head attention
    run_and_compare(&hp, GS_DTYPE_F32, NULL, 5, 3, 512, 1e-4);
}
END_TEST

START_TEST(test_llama_matches_reference_rope_scaling)
{
    gs__llama_hparams_t hp = small_hp();
    hp.rope_type = GS__ROPE_LINEAR;
    hp.rope_factor = 2.5f;
    run_and_compare(&hp, GS_DTYPE_F32, "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.5}",
                    7, 3, 512, 1e-4);
    // dynamic NTK: max_pos 8, so the base grows once the sequence passes 8 tokens; cached keys
    // keep the base they were rotated with (as transformers' cache does)
    hp.rope_type = GS__ROPE_DYNAMIC;
    hp.rope_factor = 2.0f;
    hp.max_pos = 8;
    run_and_compare(&hp, GS_DTYPE_F32,
                    "\"rope_scaling\": {\"rope_type\": \"dynamic\", "
                    "\"factor\": 2.0}",
                    6, 6, 512, 1e-4);
    run_and_compare(&hp, GS_DTYPE_F32, "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}",
                    12, 2, 512, 1e-4);
}
END_TEST

START_TEST(test_llama_chunked_prefill_equals_one_pass)
{
    // 23 prompt tokens in chunks of 4: same logits as the reference's single pass
    gs__llama_hparams_t hp = small_hp();
    run_and_compare(&hp, GS_DTYPE_BF16, NULL, 23, 2, 4, 1e-4);
}
END_TEST

// ---- beams: sequences sharing prompt rows ------------------------------------------------

START_TEST(test_llama_forward_multi_equals_separate_runs)
{
    gs__llama_hparams_t hp = small_hp();
    tiny_t m;
    tiny_make(&m, &hp, GS_DTYPE_F16, 99);
    const char *dir = tiny_write(&m, "llama_multi", NULL);
    gs_llama_opts_t o = {.n_threads = 2, .n_ctx = 64, .n_seq_max = 3};
    gs_llama_t *lm = NULL;
    ck_assert_int_eq(gs_llama_open(dir, &o, &lm), GS_OK);
    int V = hp.vocab_size, D = hp.dim;
    int32_t prompt[6] = {5, 17, 3, 44, 90, 2};
    float *emb = gs_xmalloc((size_t)8 * D * sizeof(float));
    ck_assert_int_eq(gs__llama_embed(lm, prompt, 6, emb), GS_OK);
    int32_t rows[3][64];
    gs__llama_seq_t s[3] = {{rows[0], 0, 64}, {rows[1], 0, 64}, {rows[2], 0, 64}};
    float *lg = gs_xmalloc((size_t)3 * V * sizeof(float));
    ck_assert_int_eq(gs__llama_forward(lm, &s[0], emb, 6, lg), GS_OK);
    for (int b = 1; b < 3; b++) {
        memcpy(rows[b], rows[0], 6 * sizeof(int32_t));
        s[b].len = 6;
    }
    // three continuations of the shared prompt in one step, then a second step
    int32_t next[3] = {7, 8, 9}, next2[3] = {1, 1, 60};
    ck_assert_int_eq(gs__llama_embed(lm, next, 3, emb), GS_OK);
    gs__llama_seq_t *ps[3] = {&s[0], &s[1], &s[2]};
    ck_assert_int_eq(gs__llama_forward_multi(lm, ps, 3, emb, lg), GS_OK);
    ck_assert_int_eq(gs__llama_embed(lm, next2, 3, emb), GS_OK);
    ck_assert_int_eq(gs__llama_forward_multi(lm, ps, 3, emb, lg), GS_OK);
    // each against a fresh single-sequence run
    float *one = gs_xmalloc(V * sizeof(float));
    for (int b = 0; b < 3; b++) {
        gs_llama_reset(lm);
        int32_t all[8];
        memcpy(all, prompt, sizeof prompt);
        all[6] = next[b];
        all[7] = next2[b];
        ck_assert_int_eq(gs_llama_eval(lm, all, 6, NULL), GS_OK);
        ck_assert_int_eq(gs_llama_eval(lm, all + 6, 1, NULL), GS_OK);
        ck_assert_int_eq(gs_llama_eval(lm, all + 7, 1, one), GS_OK);
        ck_assert_uint_eq(
            gs_test_check_close("beam logits", lg + (size_t)b * V, one, V, 1e-5, 1e-5), 0);
    }
    // a sequence twice in one step, or more sequences than n_seq_max: refused
    gs__llama_seq_t *dup[2] = {&s[0], &s[0]};
    ck_assert_int_eq(gs__llama_forward_multi(lm, dup, 2, emb, lg), GS_EINVAL);
    gs__llama_seq_t *four[4] = {&s[0], &s[1], &s[2], &s[0]};
    ck_assert_int_eq(gs__llama_forward_multi(lm, four, 4, emb, lg), GS_EINVAL);
    gs_free(one), gs_free(lg), gs_free(emb);
    gs_llama_close(&lm);
    tiny_free(&m);
}
END_TEST

START_TEST(test_llama_limits_and_describe)
{
    gs__llama_hparams_t hp = small_hp();
    tiny_t m;
    tiny_make(&m, &hp, GS_DTYPE_BF16, 5);
    const char *dir = tiny_write(&m, "llama_limits", NULL);
    gs_llama_opts_t o = {.n_threads = 1, .n_ctx = 10};
    gs_llama_t *lm = NULL;
    ck_assert_int_eq(gs_llama_open(dir, &o, &lm), GS_OK);
    gs_llama_info_t info;
    gs_llama_describe(lm, &info);
    ck_assert_int_eq(info.n_ctx, 10);
    ck_assert_str_eq(info.dtype, "BF16");
    int64_t per_layer = (int64_t)2 * (48 * 48 + 2 * 16 * 48 + 48 * 48 + 3 * 72 * 48);
    ck_assert_int_eq(info.weight_nbytes_per_token, 2 * per_layer + 2 * 97 * 48);
    int32_t ids[11] = {0};
    ck_assert_int_eq(gs_llama_eval(lm, ids, 11, NULL), GS_ETOOBIG);
    ck_assert_int_eq(gs_llama_eval(lm, ids, 10, NULL), GS_OK);
    ck_assert_int_eq(gs_llama_eval(lm, ids, 1, NULL), GS_ETOOBIG);
    gs_llama_reset(lm);
    ids[0] = 97;
    ck_assert_int_eq(gs_llama_eval(lm, ids, 1, NULL), GS_EINVAL);
    ck_assert_int_eq(gs_llama_eval(lm, ids, 0, NULL), GS_EINVAL);
    gs_llama_close(&lm);
    tiny_free(&m);
}
END_TEST

// ---- the linear kernels ---------------------------------------------------------------------

START_TEST(test_llama_linear_kernels_match_loops)
{
    static const int shapes[][2] = {{13, 37}, {4, 16}, {260, 300}, {129, 64}, {7, 1}};
    static const int ns[] = {1, 2, 3, 8, 9, 33};
    static const gs_dtype_t dts[] = {GS_DTYPE_F32, GS_DTYPE_F16, GS_DTYPE_BF16};
    gs__pool_t *pool = gs__pool_new(2);
    float *scratch = gs_xmalloc((size_t)GS__LIN_TILE_ROWS * 300 * sizeof(float));
    rng_state = 42;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int n_out = shapes[si][0], n_in = shapes[si][1];
        float *wf = gs_xmalloc((size_t)n_out * n_in * sizeof(float));
        uint16_t *wh = gs_xmalloc((size_t)n_out * n_in * 2);
        float *x = gs_xmalloc((size_t)33 * n_in * sizeof(float));
        float *y = gs_xmalloc((size_t)33 * n_out * sizeof(float));
        float *yr = gs_xmalloc((size_t)33 * n_out * sizeof(float));
        for (int i = 0; i < n_out * n_in; i++)
            wf[i] = frand();
        for (int i = 0; i < 33 * n_in; i++)
            x[i] = frand();
        for (size_t di = 0; di < 3; di++) {
            gs__lin_t w = {wf, dts[di], n_out, n_in};
            if (dts[di] == GS_DTYPE_F16)
                gs_ops_f32_to_f16(wf, (size_t)n_out * n_in, wh), w.data = wh;
            if (dts[di] == GS_DTYPE_BF16)
                gs_ops_f32_to_bf16(wf, (size_t)n_out * n_in, wh), w.data = wh;
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                memset(y, 0xFF, (size_t)33 * n_out * sizeof(float)); // NaN: every value written
                gs__lin_forward(pool, &w, x, ns[ni], y, scratch);
                gs__lin_forward_ref(&w, x, ns[ni], yr);
                char what[96];
                snprintf(what, sizeof what, "linear %s %dx%d n=%d (%s)", gs_dtype_name(dts[di]),
                         n_out, n_in, ns[ni], gs__kern_isa());
                ck_assert_uint_eq(
                    gs_test_check_close(what, y, yr, (size_t)ns[ni] * n_out, 1e-5, 1e-5), 0);
            }
        }
        gs_free(wf), gs_free(wh), gs_free(x), gs_free(y), gs_free(yr);
    }
    gs_free(scratch);
    gs__pool_destroy(&pool);
    ck_assert_ptr_null(pool);
}
END_TEST

// ---- configuration ------------------------------------------------------------------------

static void quiet(gs_log_level_t level, const char *line, void *ud)
{
    (void)level, (void)line, (void)ud;
}

START_TEST(test_llama_config_reader)
{
    gs__llama_hparams_t hp;
    ck_assert_int_eq(gs__llama_config_parse("{}", 2, "t", &hp), GS_OK);
    ck_assert_int_eq(hp.dim, 4096);
    ck_assert_int_eq(hp.n_kv_heads, 32);
    ck_assert_int_eq(hp.head_dim, 128);
    ck_assert_int_eq(hp.max_pos, 2048);
    ck_assert(fabsf(hp.norm_eps - 1e-6f) < 1e-12f);
    ck_assert_int_eq(hp.pad_id, -1);
    const char *ok = "{\"hidden_size\": 64, \"num_attention_heads\": 4, \"head_dim\": 32, "
                     "\"num_key_value_heads\": 1, \"eos_token_id\": [128001, 128009], "
                     "\"pad_token_id\": null, \"model_max_length\": 1e30, "
                     "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 4}}";
    ck_assert_int_eq(gs__llama_config_parse(ok, strlen(ok), "t", &hp), GS_OK);
    ck_assert_int_eq(hp.head_dim, 32);
    ck_assert_int_eq(hp.n_kv_heads, 1);
    ck_assert_int_eq(hp.eos_id, 128001);
    ck_assert_int_eq(hp.rope_type, GS__ROPE_LINEAR);
    ck_assert(hp.rope_factor == 4.0f);
    gs_log_set(quiet, NULL);
    static const struct {
        const char *json;
        gs_err want;
    } bad[] = {
        {"{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4}}", GS_EUNSUPPORTED},
        {"{\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8}}", GS_EUNSUPPORTED},
        {"{\"rope_scaling\": {\"type\": \"linear\"}}", GS_EFORMAT},
        {"{\"hidden_act\": \"gelu\"}", GS_EUNSUPPORTED},
        {"{\"model_type\": \"mistral\"}", GS_EUNSUPPORTED},
        {"{\"mlp_bias\": true}", GS_EUNSUPPORTED},
        {"{\"num_attention_heads\": 5}", GS_EFORMAT},
        {"{\"num_key_value_heads\": 3}", GS_EFORMAT},
        {"{\"hidden_size\": -4}", GS_EFORMAT},
        {"{\"hidden_size\": 64.5}", GS_EFORMAT},
        {"{\"rms_norm_eps\": \"small\"}", GS_EFORMAT},
        {"[1, 2]", GS_EFORMAT},
        {"{\"hidden_size\": ", GS_EFORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gs__llama_config_parse(bad[i].json, strlen(bad[i].json), "t", &hp) ==
                          bad[i].want,
                      "%s", bad[i].json);
    gs_log_set(NULL, NULL);
}
END_TEST

Suite *model_llama_suite(void)
{
    Suite *s = suite_create("model_llama");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_llama_matches_reference_f32_gqa);
    tcase_add_test(tc, test_llama_matches_reference_half_precision);
    tcase_add_test(tc, test_llama_matches_reference_bias_tied_mha);
    tcase_add_test(tc, test_llama_matches_reference_rope_scaling);
    tcase_add_test(tc, test_llama_chunked_prefill_equals_one_pass);
    tcase_add_test(tc, test_llama_forward_multi_equals_separate_runs);
    tcase_add_test(tc, test_llama_limits_and_describe);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 120);
    tcase_add_test(tk, test_llama_linear_kernels_match_loops);
    tcase_add_test(tk, test_llama_config_reader);
    suite_add_tcase(s, tk);
    return s;
}
