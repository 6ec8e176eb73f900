// The LLaMA decoder: open (shapes checked against the hyperparameters, one arena for the KV
// cache and every activation), and the forward pass over a chunk of tokens as transformers
// v4.40 computes it: RMSNorm, q/k/v projections, rotate-half RoPE, grouped-query attention
// with a causal mask over the KV cache, o_proj, residual, RMSNorm, SwiGLU MLP, residual; then
// the final norm and lm_head for the rows whose logits are wanted. Linear layers read the
// weights in their stored precision (llama_kern.c).
#define GS_LOG_MODULE "model"
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/llama_int.h"
#include "model/ops.h"

#define CONFIG_MAX_NBYTES (4u << 20)

typedef struct {
    gs__lin_t wq, wk, wv, wo;    // (q_dim, dim) (kv_dim, dim) (kv_dim, dim) (dim, q_dim)
    gs__lin_t wg, wu, wd;        // (hidden, dim) (hidden, dim) (dim, hidden)
    float *bq, *bk, *bv, *bo;    // attention biases (attention_bias) or NULL
    float *attn_norm, *ffn_norm; // (dim) input_layernorm, post_attention_layernorm
} layer_t;

struct gs_llama {
    gs__llama_hparams_t hp;
    gs_weights_t *own_w; // set when opened from a folder
    const gs_weights_t *w;
    layer_t *layers;          // (n_layers)
    const gs_tensor_t *embed; // (vocab, dim) embed_tokens
    gs__lin_t lm_head;        // (vocab, dim), or embed_tokens when tied
    float *final_norm;        // (dim)
    int q_dim, kv_dim;        // n_heads * head_dim, n_kv_heads * head_dim
    int n_ctx, n_batch, n_seq_max;
    gs__pool_t *pool;
    void *mem; // the arena: one allocation, carved at open
    size_t mem_nbytes;
    float *k_cache, *v_cache; // (n_layers, n_ctx, kv_dim)
    int rows_used;            // cache rows handed out
    // activations of one chunk (n_batch rows)
    float *x, *xb, *xb2;        // (n_batch, dim)
    float *q, *att;             // (n_batch, q_dim)
    float *k, *v;               // (n_batch, kv_dim)
    float *hb, *hb2;            // (n_batch, hidden)
    float *scores;              // (max(n_batch, n_threads), n_ctx)
    float *rope_cos, *rope_sin; // (n_batch, head_dim / 2)
    float *inv_freq;            // (head_dim / 2)
    float *scratch;             // (GS__LIN_TILE_ROWS, max in) weight tiles
    int *tok_pos;               // (n_batch) position of each token of the chunk
    gs__llama_seq_t **tok_seq;  // (n_batch) its sequence
    gs__llama_seq_t seq;        // the sequence of gs_llama_eval (rows: n_ctx)
    int call_seq_len;           // 1 + the largest position of the current call (RoPE)
    gs__llama_probe_fn probe;
    void *probe_ud;
};

// ---- opening ------------------------------------------------------------------------------

// carve: the next 64-byte aligned piece of the arena (NULL-safe sizing pass when mem is NULL).
static void *carve(gs_llama_t *self, size_t *off, size_t nbytes)
{
    size_t at = (*off + 63) & ~(size_t)63;
    *off = at + nbytes;
    return self->mem ? (char *)self->mem + at : NULL;
}

static void carve_all(gs_llama_t *self, size_t *off)
{
    const gs__llama_hparams_t *hp = &self->hp;
    size_t f = sizeof(float), nb = (size_t)self->n_batch, kvn = (size_t)hp->n_layers * self->n_ctx;
    int max_in = hp->dim > self->q_dim ? hp->dim : self->q_dim;
    if (hp->hidden_dim > max_in)
        max_in = hp->hidden_dim;
    int n_threads = gs__pool_n_threads(self->pool);
    size_t score_rows = nb > (size_t)n_threads ? nb : (size_t)n_threads;
    self->layers = carve(self, off, (size_t)hp->n_layers * sizeof(layer_t));
    for (int l = 0; l < hp->n_layers; l++) {
        layer_t *L = self->layers ? &self->layers[l] : NULL;
        float *an = carve(self, off, hp->dim * f), *fn = carve(self, off, hp->dim * f);
        float *bq = NULL, *bk = NULL, *bv = NULL, *bo = NULL;
        if (hp->attention_bias) {
            bq = carve(self, off, self->q_dim * f);
            bk = carve(self, off, self->kv_dim * f);
            bv = carve(self, off, self->kv_dim * f);
            bo = carve(self, off, hp->dim * f);
        }
        if (L) {
            L->attn_norm = an, L->ffn_norm = fn;
            L->bq = bq, L->bk = bk, L->bv = bv, L->bo = bo;
        }
    }
    self->final_norm = carve(self, off, hp->dim * f);
    self->k_cache = carve(self, off, kvn * self->kv_dim * f);
    self->v_cache = carve(self, off, kvn * self->kv_dim * f);
    self->x = carve(self, off, nb * hp->dim * f);
    self->xb = carve(self, off, nb * hp->dim * f);
    self->xb2 = carve(self, off, nb * hp->dim * f);
    self->q = carve(self, off, nb * self->q_dim * f);
    self->att = carve(self, off, nb * self->q_dim * f);
    self->k = carve(self, off, nb * self->kv_dim * f);
    self->v = carve(self, off, nb * self->kv_dim * f);
    self->hb = carve(self, off, nb * hp->hidden_dim * f);
    self->hb2 = carve(self, off, nb * hp->hidden_dim * f);
    self->scores = carve(self, off, score_rows * self->n_ctx * f);
    self->rope_cos = carve(self, off, nb * (hp->head_dim / 2) * f);
    self->rope_sin = carve(self, off, nb * (hp->head_dim / 2) * f);
    self->inv_freq = carve(self, off, (hp->head_dim / 2) * f);
    self->scratch = carve(self, off, (size_t)GS__LIN_TILE_ROWS * max_in * f);
    self->tok_pos = carve(self, off, nb * sizeof(int));
    self->tok_seq = carve(self, off, nb * sizeof(gs__llama_seq_t *));
    self->seq.rows = carve(self, off, (size_t)self->n_ctx * sizeof(int32_t));
}

// bind_lin: a linear weight [n_out, n_in] named prefix + name.
static gs_err bind_lin(const gs_llama_t *self, const char *prefix, const char *name, int n_out,
                       int n_in, gs__lin_t *out)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const gs_tensor_t *t;
    int64_t shape[2] = {n_out, n_in};
    GS_TRY(gs_weights_expect(self->w, full, 2, shape, 0, &t));
    *out = (gs__lin_t){t->data, t->dtype, n_out, n_in};
    return GS_OK;
}

// load_vec: a 1-d float tensor of n values, converted to float32 into dst.
static gs_err load_vec(const gs_llama_t *self, const char *prefix, const char *name, int n,
                       float *dst)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const gs_tensor_t *t;
    int64_t shape[1] = {n};
    GS_TRY(gs_weights_expect(self->w, full, 1, shape, 0, &t));
    return gs_tensor_to_f32(t, 0, n, dst);
}

static gs_err bind_layer(gs_llama_t *self, const char *prefix, int l)
{
    const gs__llama_hparams_t *hp = &self->hp;
    layer_t *L = &self->layers[l];
    char p[400];
    snprintf(p, sizeof p, "%smodel.layers.%d.", prefix, l);
    GS_TRY(bind_lin(self, p, "self_attn.q_proj.weight", self->q_dim, hp->dim, &L->wq));
    GS_TRY(bind_lin(self, p, "self_attn.k_proj.weight", self->kv_dim, hp->dim, &L->wk));
    GS_TRY(bind_lin(self, p, "self_attn.v_proj.weight", self->kv_dim, hp->dim, &L->wv));
    GS_TRY(bind_lin(self, p, "self_attn.o_proj.weight", hp->dim, self->q_dim, &L->wo));
    GS_TRY(bind_lin(self, p, "mlp.gate_proj.weight", hp->hidden_dim, hp->dim, &L->wg));
    GS_TRY(bind_lin(self, p, "mlp.up_proj.weight", hp->hidden_dim, hp->dim, &L->wu));
    GS_TRY(bind_lin(self, p, "mlp.down_proj.weight", hp->dim, hp->hidden_dim, &L->wd));
    GS_TRY(load_vec(self, p, "input_layernorm.weight", hp->dim, L->attn_norm));
    GS_TRY(load_vec(self, p, "post_attention_layernorm.weight", hp->dim, L->ffn_norm));
    if (hp->attention_bias) {
        GS_TRY(load_vec(self, p, "self_attn.q_proj.bias", self->q_dim, L->bq));
        GS_TRY(load_vec(self, p, "self_attn.k_proj.bias", self->kv_dim, L->bk));
        GS_TRY(load_vec(self, p, "self_attn.v_proj.bias", self->kv_dim, L->bv));
        GS_TRY(load_vec(self, p, "self_attn.o_proj.bias", hp->dim, L->bo));
    }
    return GS_OK;
}

static gs_err bind_all(gs_llama_t *self, const char *prefix)
{
    const gs__llama_hparams_t *hp = &self->hp;
    char name[512];
    snprintf(name, sizeof name, "%smodel.embed_tokens.weight", prefix);
    int64_t eshape[2] = {hp->vocab_size, hp->dim};
    GS_TRY(gs_weights_expect(self->w, name, 2, eshape, 0, &self->embed));
    for (int l = 0; l < hp->n_layers; l++)
        GS_TRY(bind_layer(self, prefix, l));
    GS_TRY(load_vec(self, prefix, "model.norm.weight", hp->dim, self->final_norm));
    if (hp->tie_embeddings) {
        self->lm_head = (gs__lin_t){self->embed->data, self->embed->dtype, hp->vocab_size, hp->dim};
        return GS_OK;
    }
    snprintf(name, sizeof name, "%slm_head.weight", prefix);
    if (!gs_weights_get(self->w, name)) {
        GS_LOG_ERROR("tensor \"%s\" is missing and tie_word_embeddings is false (a checkpoint "
                     "with tied embeddings must say so in its config)",
                     name);
        return GS_ENOTFOUND;
    }
    return bind_lin(self, prefix, "lm_head.weight", hp->vocab_size, hp->dim, &self->lm_head);
}

gs_err gs__llama_open_weights(const gs_weights_t *w, const char *prefix,
                              const gs__llama_hparams_t *hp, const gs_llama_opts_t *opts,
                              gs_llama_t **out)
{
    *out = NULL;
    gs_llama_opts_t o = opts ? *opts : (gs_llama_opts_t){0};
    gs_llama_t *self = gs_xcalloc(1, sizeof *self);
    self->hp = *hp;
    self->w = w;
    self->q_dim = hp->n_heads * hp->head_dim;
    self->kv_dim = hp->n_kv_heads * hp->head_dim;
    self->n_ctx = o.n_ctx > 0 ? o.n_ctx : (hp->max_pos < 4096 ? hp->max_pos : 4096);
    self->n_batch = o.n_batch > 0 ? o.n_batch : 512;
    self->n_seq_max = o.n_seq_max > 0 ? o.n_seq_max : 1;
    if (self->n_batch > self->n_ctx)
        self->n_batch = self->n_ctx;
    if (self->n_batch < self->n_seq_max)
        self->n_batch = self->n_seq_max;
    int n_threads = o.n_threads > 0 ? o.n_threads : 1;
    gs_ops_set_threads(n_threads);
    self->pool = gs__pool_new(n_threads);
    size_t nbytes = 0;
    carve_all(self, &nbytes);
    self->mem_nbytes = nbytes + 64;
    self->mem = gs_tryalloc_aligned(64, self->mem_nbytes);
    gs_err err = GS_OK;
    if (!self->mem) {
        GS_LOG_ERROR("decoder: out of memory for %.1f MiB of KV cache and activations "
                     "(n_ctx %d; lower it to use less)",
                     self->mem_nbytes / 1048576.0, self->n_ctx);
        err = GS_ENOMEM;
        goto out;
    }
    nbytes = 0;
    carve_all(self, &nbytes);
    self->seq.cap = self->n_ctx;
    if ((err = bind_all(self, prefix)) != GS_OK)
        goto out;
    GS_LOG_DEBUG("decoder: %d layers, dim %d, %d/%d heads, n_ctx %d, %.1f MiB arena, kernels %s",
                 hp->n_layers, hp->dim, hp->n_heads, hp->n_kv_heads, self->n_ctx,
                 self->mem_nbytes / 1048576.0, gs__kern_isa());
out:
    if (err != GS_OK)
        gs_llama_close(&self);
    *out = self;
    return err;
}

// weights_path: the weights of a folder: model.safetensors, its shard index, or
// pytorch_model.bin. NULL (logged) when none is there.
static char *weights_path(const char *dir)
{
    static const char *names[] = {"model.safetensors", "model.safetensors.index.json",
                                  "pytorch_model.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = gs_path_join(dir, names[i]);
        if (gs_path_exists(p))
            return p;
        gs_free(p);
    }
    GS_LOG_ERROR("no weights in \"%s\" (model.safetensors, model.safetensors.index.json or "
                 "pytorch_model.bin)",
                 dir);
    return NULL;
}

gs_err gs_llama_open(const char *dir, const gs_llama_opts_t *opts, gs_llama_t **out)
{
    *out = NULL;
    char *cfg_path = gs_path_join(dir, "config.json"), *text = NULL, *wpath = NULL;
    size_t n = 0;
    gs__llama_hparams_t hp;
    gs_weights_t *w = NULL;
    gs_err err = gs_read_file(cfg_path, CONFIG_MAX_NBYTES, &text, &n);
    if (err == GS_EIO)
        err = GS_ENOTFOUND;
    if (err == GS_OK)
        err = gs__llama_config_parse(text, n, cfg_path, &hp);
    if (err == GS_OK && !(wpath = weights_path(dir)))
        err = GS_ENOTFOUND;
    if (err == GS_OK)
        err = gs_weights_open(wpath, &w);
    if (err == GS_OK)
        err = gs__llama_open_weights(w, "", &hp, opts, out);
    if (err == GS_OK)
        (*out)->own_w = w;
    else
        gs_weights_close(&w);
    gs_free(cfg_path);
    gs_free(text);
    gs_free(wpath);
    return err;
}

void gs_llama_close(gs_llama_t **p)
{
    if (!p || !*p)
        return;
    gs_llama_t *self = *p;
    gs__pool_destroy(&self->pool);
    gs_free(self->mem);
    gs_weights_close(&self->own_w);
    gs_free(self);
    *p = NULL;
}

// ---- accessors ----------------------------------------------------------------------------

const gs__llama_hparams_t *gs__llama_hparams(const gs_llama_t *self)
{
    return &self->hp;
}
int gs__llama_n_ctx(const gs_llama_t *self)
{
    return self->n_ctx;
}
int gs__llama_n_seq_max(const gs_llama_t *self)
{
    return self->n_seq_max;
}
int gs__llama_rows_free(const gs_llama_t *self)
{
    return self->n_ctx - self->rows_used;
}

void gs__llama_set_probe(gs_llama_t *self, gs__llama_probe_fn fn, void *ud)
{
    self->probe = fn;
    self->probe_ud = ud;
}

void gs__llama_reset_cache(gs_llama_t *self)
{
    self->rows_used = 0;
    self->seq.len = 0;
}

void gs_llama_reset(gs_llama_t *self)
{
    gs__llama_reset_cache(self);
}

static int64_t lin_nbytes(const gs__lin_t *w)
{
    return (int64_t)w->n_out * w->n_in * (int64_t)gs_dtype_size(w->dtype);
}

void gs_llama_describe(const gs_llama_t *self, gs_llama_info_t *out)
{
    const gs__llama_hparams_t *hp = &self->hp;
    *out = (gs_llama_info_t){hp->vocab_size,
                             hp->dim,
                             hp->n_layers,
                             hp->n_heads,
                             hp->n_kv_heads,
                             hp->head_dim,
                             hp->hidden_dim,
                             self->n_ctx,
                             gs_dtype_name(self->layers[0].wq.dtype),
                             0};
    int64_t b = lin_nbytes(&self->lm_head);
    for (int l = 0; l < hp->n_layers; l++) {
        const layer_t *L = &self->layers[l];
        b += lin_nbytes(&L->wq) + lin_nbytes(&L->wk) + lin_nbytes(&L->wv) + lin_nbytes(&L->wo) +
             lin_nbytes(&L->wg) + lin_nbytes(&L->wu) + lin_nbytes(&L->wd);
    }
    out->weight_nbytes_per_token = b;
}

gs_err gs__llama_embed(const gs_llama_t *self, const int32_t *ids, int n, float *out)
{
    int dim = self->hp.dim;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= self->hp.vocab_size)
            return GS_EINVAL;
        GS_TRY(gs_tensor_to_f32(self->embed, (int64_t)ids[i] * dim, dim, out + (size_t)i * dim));
    }
    return GS_OK;
}

// ---- rotary embeddings --------------------------------------------------------------------

// rope_tables: cos/sin of each chunk token's angles, as transformers computes them in float32:
// inv_freq[i] = 1 / base^(2i/hd), angle = position * inv_freq (positions / factor for linear
// scaling; dynamic NTK enlarges the base once the call's seq_len > max_pos, for every token of
// the call, so chunking a prompt does not change it). transformers also keeps an enlarged base
// for later, shorter calls; we recompute it per call.
static void rope_tables(gs_llama_t *self, int n)
{
    const gs__llama_hparams_t *hp = &self->hp;
    int half = hp->head_dim / 2;
    double base = hp->rope_theta;
    int seq_len = self->call_seq_len; // max(position_ids) + 1 over the whole call
    if (hp->rope_type == GS__ROPE_DYNAMIC && seq_len > hp->max_pos) {
        double f = hp->rope_factor;
        base = base * pow(f * seq_len / hp->max_pos - (f - 1.0),
                          (double)hp->head_dim / (hp->head_dim - 2));
    }
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)hp->head_dim;
        self->inv_freq[i] = 1.0f / (float)pow((float)base, e);
    }
    for (int t = 0; t < n; t++) {
        float pos = (float)self->tok_pos[t];
        if (hp->rope_type == GS__ROPE_LINEAR)
            pos = pos / hp->rope_factor;
        float *c = self->rope_cos + (size_t)t * half, *s = self->rope_sin + (size_t)t * half;
        for (int i = 0; i < half; i++) {
            float a = pos * self->inv_freq[i];
            c[i] = cosf(a);
            s[i] = sinf(a);
        }
    }
}

// rope_apply: rotate-half RoPE on n rows of n_heads heads (row stride n_heads * hd).
static void rope_apply(const gs_llama_t *self, float *x, int n, int n_heads)
{
    int hd = self->hp.head_dim, half = hd / 2;
    for (int t = 0; t < n; t++) {
        const float *c = self->rope_cos + (size_t)t * half, *s = self->rope_sin + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c[i] - x1 * s[i];
                v[i + half] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}

// ---- attention ----------------------------------------------------------------------------

typedef struct {
    gs_llama_t *self;
    int layer, n;
} attn_job_t;

// attn_loop_task: softmax(q k^T / sqrt(hd)) v per (token, head) over the token's sequence,
// through its row indices (decoding, beams). Work split over (token, head) pairs.
static void attn_loop_task(void *ctx, int ith, int nth)
{
    attn_job_t *j = ctx;
    gs_llama_t *self = j->self;
    const gs__llama_hparams_t *hp = &self->hp;
    int hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    const float *K = self->k_cache + (size_t)j->layer * self->n_ctx * self->kv_dim;
    const float *V = self->v_cache + (size_t)j->layer * self->n_ctx * self->kv_dim;
    float *sc = self->scores + (size_t)ith * self->n_ctx;
    int n_pairs = j->n * hp->n_heads;
    for (int pi = ith; pi < n_pairs; pi += nth) {
        int t = pi / hp->n_heads, h = pi % hp->n_heads, g = h / group;
        const gs__llama_seq_t *seq = self->tok_seq[t];
        int len = self->tok_pos[t] + 1;
        const float *q = self->q + (size_t)t * self->q_dim + (size_t)h * hd;
        float mx = -INFINITY;
        for (int p = 0; p < len; p++) {
            const float *k = K + (size_t)seq->rows[p] * self->kv_dim + (size_t)g * hd;
            float s = 0;
            for (int i = 0; i < hd; i++)
                s += q[i] * k[i];
            sc[p] = s * scale;
            if (sc[p] > mx)
                mx = sc[p];
        }
        float sum = 0;
        for (int p = 0; p < len; p++) {
            sc[p] = expf(sc[p] - mx);
            sum += sc[p];
        }
        float inv = 1.0f / sum;
        float *o = self->att + (size_t)t * self->q_dim + (size_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int p = 0; p < len; p++) {
            const float *v = V + (size_t)seq->rows[p] * self->kv_dim + (size_t)g * hd;
            float a = sc[p] * inv;
            for (int i = 0; i < hd; i++)
                o[i] += a * v[i];
        }
    }
}

// attn_blas: the same for a chunk of one sequence whose cache rows are contiguous (prefill):
// per head, S = q K^T (SGEMM), causal mask, softmax, out = S V (SGEMM).
static void attn_blas(gs_llama_t *self, int layer, int n)
{
    const gs__llama_hparams_t *hp = &self->hp;
    int hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    const gs__llama_seq_t *seq = self->tok_seq[0];
    int p0 = self->tok_pos[0], T = p0 + n;
    size_t base = (size_t)seq->rows[0] * self->kv_dim;
    const float *K = self->k_cache + (size_t)layer * self->n_ctx * self->kv_dim + base;
    const float *V = self->v_cache + (size_t)layer * self->n_ctx * self->kv_dim + base;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < hp->n_heads; h++) {
        int g = h / group;
        gs_ops_sgemm(false, true, n, T, hd, scale, self->q + (size_t)h * hd, self->q_dim,
                     K + (size_t)g * hd, self->kv_dim, 0.0f, self->scores, T);
        for (int i = 0; i < n; i++)
            for (int p = p0 + i + 1; p < T; p++)
                self->scores[(size_t)i * T + p] = -INFINITY;
        gs_ops_softmax(self->scores, T, n, T);
        gs_ops_sgemm(false, false, n, hd, T, 1.0f, self->scores, T, V + (size_t)g * hd,
                     self->kv_dim, 0.0f, self->att + (size_t)h * hd, self->q_dim);
    }
}

// contiguous: the chunk is one sequence whose rows 0..last are consecutive.
static bool contiguous(const gs_llama_t *self, int n)
{
    const gs__llama_seq_t *seq = self->tok_seq[0];
    for (int t = 1; t < n; t++)
        if (self->tok_seq[t] != seq)
            return false;
    int last = self->tok_pos[n - 1];
    for (int p = 1; p <= last; p++)
        if (seq->rows[p] != seq->rows[0] + p)
            return false;
    return true;
}

// ---- the forward pass ---------------------------------------------------------------------

static void probe(const gs_llama_t *self, const char *name, int layer, const float *x, int n)
{
    if (self->probe)
        self->probe(self->probe_ud, name, layer, x, n, self->hp.dim);
}

static void add_bias(float *x, int n, int dim, const float *b)
{
    if (b)
        gs_ops_add_bias(x, dim, n, dim, b);
}

// forward_chunk: self->x holds the chunk's n input rows; tok_seq/tok_pos say where each goes
// (their cache rows are already assigned). Writes logits of the rows in [first_logit, n) to
// out_logits (row by row), when out_logits is not NULL.
static void forward_chunk(gs_llama_t *self, int n, int first_logit, float *out_logits)
{
    const gs__llama_hparams_t *hp = &self->hp;
    int dim = hp->dim, kvd = self->kv_dim;
    bool blas_attn = n > 1 && contiguous(self, n);
    rope_tables(self, n);
    for (int l = 0; l < hp->n_layers; l++) {
        const layer_t *L = &self->layers[l];
        gs_ops_rmsnorm(self->x, n, dim, L->attn_norm, hp->norm_eps, self->xb);
        gs__lin_forward(self->pool, &L->wq, self->xb, n, self->q, self->scratch);
        gs__lin_forward(self->pool, &L->wk, self->xb, n, self->k, self->scratch);
        gs__lin_forward(self->pool, &L->wv, self->xb, n, self->v, self->scratch);
        add_bias(self->q, n, self->q_dim, L->bq);
        add_bias(self->k, n, kvd, L->bk);
        add_bias(self->v, n, kvd, L->bv);
        rope_apply(self, self->q, n, hp->n_heads);
        rope_apply(self, self->k, n, hp->n_kv_heads);
        float *Kl = self->k_cache + (size_t)l * self->n_ctx * kvd;
        float *Vl = self->v_cache + (size_t)l * self->n_ctx * kvd;
        for (int t = 0; t < n; t++) {
            size_t row = (size_t)self->tok_seq[t]->rows[self->tok_pos[t]];
            memcpy(Kl + row * kvd, self->k + (size_t)t * kvd, kvd * sizeof(float));
            memcpy(Vl + row * kvd, self->v + (size_t)t * kvd, kvd * sizeof(float));
        }
        if (blas_attn) {
            attn_blas(self, l, n);
        } else {
            attn_job_t j = {self, l, n};
            gs__pool_run(self->pool, attn_loop_task, &j);
        }
        gs__lin_forward(self->pool, &L->wo, self->att, n, self->xb2, self->scratch);
        add_bias(self->xb2, n, dim, L->bo);
        probe(self, "self_attn_out", l, self->xb2, n);
        gs_ops_add(self->x, self->xb2, (size_t)n * dim);
        gs_ops_rmsnorm(self->x, n, dim, L->ffn_norm, hp->norm_eps, self->xb);
        gs__lin_forward(self->pool, &L->wg, self->xb, n, self->hb, self->scratch);
        gs__lin_forward(self->pool, &L->wu, self->xb, n, self->hb2, self->scratch);
        size_t nh = (size_t)n * hp->hidden_dim;
        gs_ops_silu(self->hb, nh);
        for (size_t i = 0; i < nh; i++)
            self->hb[i] *= self->hb2[i];
        gs__lin_forward(self->pool, &L->wd, self->hb, n, self->xb2, self->scratch);
        probe(self, "mlp_out", l, self->xb2, n);
        gs_ops_add(self->x, self->xb2, (size_t)n * dim);
        probe(self, "layer_out", l, self->x, n);
    }
    gs_ops_rmsnorm(self->x, n, dim, self->final_norm, hp->norm_eps, self->xb);
    probe(self, "final_norm_out", -1, self->xb, n);
    if (out_logits)
        gs__lin_forward(self->pool, &self->lm_head, self->xb + (size_t)first_logit * dim,
                        n - first_logit, out_logits, self->scratch);
}

// forward_seq: n tokens of one sequence, from embeddings or (embeds NULL) ids.
static gs_err forward_seq(gs_llama_t *self, gs__llama_seq_t *seq, const float *embeds,
                          const int32_t *ids, int n, float *out_logits)
{
    if (n < 1)
        return GS_EINVAL;
    if (n > self->n_ctx - self->rows_used || seq->len + n > seq->cap)
        return GS_ETOOBIG;
    int dim = self->hp.dim;
    self->call_seq_len = seq->len + n;
    for (int done = 0; done < n;) {
        int c = n - done < self->n_batch ? n - done : self->n_batch;
        if (embeds)
            memcpy(self->x, embeds + (size_t)done * dim, (size_t)c * dim * sizeof(float));
        else
            GS_TRY(gs__llama_embed(self, ids + done, c, self->x));
        for (int t = 0; t < c; t++) {
            seq->rows[seq->len + t] = self->rows_used + t;
            self->tok_seq[t] = seq;
            self->tok_pos[t] = seq->len + t;
        }
        bool last = done + c == n;
        forward_chunk(self, c, c - 1, last ? out_logits : NULL);
        self->rows_used += c;
        seq->len += c;
        done += c;
    }
    return GS_OK;
}

gs_err gs__llama_forward(gs_llama_t *self, gs__llama_seq_t *seq, const float *embeds, int n,
                         float *out_logits)
{
    return forward_seq(self, seq, embeds, NULL, n, out_logits);
}

gs_err gs__llama_forward_multi(gs_llama_t *self, gs__llama_seq_t *const *seqs, int n_seq,
                               const float *embeds, float *out_logits)
{
    if (n_seq < 1 || n_seq > self->n_seq_max || n_seq > self->n_batch)
        return GS_EINVAL;
    if (n_seq > self->n_ctx - self->rows_used)
        return GS_ETOOBIG;
    for (int s = 0; s < n_seq; s++) {
        if (seqs[s]->len + 1 > seqs[s]->cap)
            return GS_ETOOBIG;
        for (int r = 0; r < s; r++)
            if (seqs[r] == seqs[s])
                return GS_EINVAL;
    }
    memcpy(self->x, embeds, (size_t)n_seq * self->hp.dim * sizeof(float));
    self->call_seq_len = 0;
    for (int s = 0; s < n_seq; s++) {
        if (seqs[s]->len + 1 > self->call_seq_len)
            self->call_seq_len = seqs[s]->len + 1;
        seqs[s]->rows[seqs[s]->len] = self->rows_used + s;
        self->tok_seq[s] = seqs[s];
        self->tok_pos[s] = seqs[s]->len;
    }
    forward_chunk(self, n_seq, 0, out_logits);
    self->rows_used += n_seq;
    for (int s = 0; s < n_seq; s++)
        seqs[s]->len++;
    return GS_OK;
}

gs_err gs_llama_eval(gs_llama_t *self, const int32_t *ids, int n, float *out_logits)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= self->hp.vocab_size)
            return GS_EINVAL;
    return forward_seq(self, &self->seq, NULL, ids, n, out_logits);
}
