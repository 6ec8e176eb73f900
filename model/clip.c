// CLIP encoders: binding the tensors of an open_clip or Hugging Face checkpoint (every shape
// checked), the arena sized at open, and the forward passes of both towers. The math is the
// same for both layouts; they differ in names, in open_clip's fused in_proj versus HF's separate
// q/k/v, in the projection's storage order, in where the post-LayerNorm sits (the same per-row
// math), and in the text pooling position. Model opening from paths (layout detection,
// tokenizer lookup) is in clip_open.c.
#define GS_LOG_MODULE "model"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "model/clip_int.h"
#include "model/clip_model_int.h"
#include "model/ops.h"

// ---- binding tensors ----------------------------------------------------------------------

typedef struct {
    int n;
    int64_t d[4];
} shape_t;

#define SHAPE0() ((shape_t){0, {0}})
#define SHAPE1(a) ((shape_t){1, {(a)}})
#define SHAPE2(a, b) ((shape_t){2, {(a), (b)}})
#define SHAPE4(a, b, c, d) ((shape_t){4, {(a), (b), (c), (d)}})

// f32_of: the tensor's data as float32: in place for F32, else a converted copy owned by the
// model (F16/BF16 checkpoints cost one float32 copy, made once here).
static gs_err f32_of(gs_clip_t *self, const gs_tensor_t *t, const float **out)
{
    self->dtype_mask |= 1u << t->dtype;
    if (t->dtype == GS_DTYPE_F32) {
        *out = t->data;
        return GS_OK;
    }
    if (self->n_owned == self->cap_owned) {
        self->cap_owned = self->cap_owned ? 2 * self->cap_owned : 64;
        self->owned = gs_xrealloc(self->owned, (size_t)self->cap_owned * sizeof *self->owned);
    }
    float *buf = gs_trymalloc((size_t)(t->n_elems ? t->n_elems : 1) * sizeof(float));
    if (!buf) {
        GS_LOG_ERROR("out of memory converting tensor \"%s\" (%lld values) to float32", t->name,
                     (long long)t->n_elems);
        return GS_ENOMEM;
    }
    self->owned[self->n_owned++] = buf;
    gs_err e = gs_tensor_to_f32(t, 0, t->n_elems, buf);
    if (e != GS_OK) {
        GS_LOG_ERROR("tensor \"%s\" in \"%s\": cannot convert %s to float32", t->name, t->file,
                     gs_dtype_name(t->dtype));
        return GS_EFORMAT;
    }
    *out = buf;
    return GS_OK;
}

// bind: looks up prefix + name (printf-style), checks its shape and returns float32 data;
// counts its parameters into *n_params.
static gs_err bind(gs_clip_t *self, int64_t *n_params, const float **out, shape_t shape,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static gs_err bind(gs_clip_t *self, int64_t *n_params, const float **out, shape_t shape,
                   const char *fmt, ...)
{
    char name[512];
    int len = snprintf(name, sizeof name, "%s", self->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + len, sizeof name - (size_t)len, fmt, ap);
    va_end(ap);
    const gs_tensor_t *t;
    GS_TRY(gs_weights_expect(self->w, name, shape.n, shape.d, 0, &t));
    *n_params += t->n_elems;
    self->n_bound++;
    return f32_of(self, t, out);
}

static bool has_tensor(const gs_clip_t *self, const char *name)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", self->prefix, name);
    return gs_weights_get(self->w, full) != NULL;
}

static gs_err bind_linear(gs_clip_t *self, int64_t *n, gs_ops_weight_t *w, const float **bias,
                          int n_in, int n_out, const char *fmt, int layer)
{
    char wname[256], bname[256];
    snprintf(wname, sizeof wname, fmt, layer, "weight");
    w->n_in = n_in;
    w->n_out = n_out;
    w->in_out = false;
    GS_TRY(bind(self, n, &w->f32, SHAPE2(n_out, n_in), "%s", wname));
    if (bias) {
        snprintf(bname, sizeof bname, fmt, layer, "bias");
        GS_TRY(bind(self, n, bias, SHAPE1(n_out), "%s", bname));
    }
    return GS_OK;
}

// bind_stack: the residual blocks of one tower; `base` is "visual.transformer.resblocks.%d",
// "transformer.resblocks.%d", "vision_model.encoder.layers.%d" or "text_model.encoder.layers.%d".
static gs_err bind_stack(gs_clip_t *self, gs__clip_stack_t *st, const char *base, int64_t *n)
{
    int W = st->width, M = st->mlp;
    bool hf = self->hp.layout == GS__CLIP_LAYOUT_HF;
    st->fused_qkv = !hf;
    st->blocks = gs_xcalloc((size_t)st->layers, sizeof *st->blocks);
    char fmt[256];
#define FMT(suffix) (snprintf(fmt, sizeof fmt, "%s.%s", base, suffix), fmt)
    for (int i = 0; i < st->layers; i++) {
        gs__clip_block_t *b = &st->blocks[i];
        if (hf) {
            GS_TRY(bind(self, n, &b->ln1_w, SHAPE1(W), FMT("layer_norm1.weight"), i));
            GS_TRY(bind(self, n, &b->ln1_b, SHAPE1(W), FMT("layer_norm1.bias"), i));
            GS_TRY(bind_linear(self, n, &b->q, &b->q_b, W, W, FMT("self_attn.q_proj.%s"), i));
            GS_TRY(bind_linear(self, n, &b->k, &b->k_b, W, W, FMT("self_attn.k_proj.%s"), i));
            GS_TRY(bind_linear(self, n, &b->v, &b->v_b, W, W, FMT("self_attn.v_proj.%s"), i));
            GS_TRY(bind_linear(self, n, &b->out, &b->out_b, W, W, FMT("self_attn.out_proj.%s"), i));
            GS_TRY(bind(self, n, &b->ln2_w, SHAPE1(W), FMT("layer_norm2.weight"), i));
            GS_TRY(bind(self, n, &b->ln2_b, SHAPE1(W), FMT("layer_norm2.bias"), i));
            GS_TRY(bind_linear(self, n, &b->fc, &b->fc_b, W, M, FMT("mlp.fc1.%s"), i));
            GS_TRY(bind_linear(self, n, &b->proj, &b->proj_b, M, W, FMT("mlp.fc2.%s"), i));
        } else {
            GS_TRY(bind(self, n, &b->ln1_w, SHAPE1(W), FMT("ln_1.weight"), i));
            GS_TRY(bind(self, n, &b->ln1_b, SHAPE1(W), FMT("ln_1.bias"), i));
            b->q = (gs_ops_weight_t){.n_in = W, .n_out = 3 * W};
            GS_TRY(bind(self, n, &b->q.f32, SHAPE2(3 * W, W), FMT("attn.in_proj_weight"), i));
            GS_TRY(bind(self, n, &b->q_b, SHAPE1(3 * W), FMT("attn.in_proj_bias"), i));
            GS_TRY(bind_linear(self, n, &b->out, &b->out_b, W, W, FMT("attn.out_proj.%s"), i));
            GS_TRY(bind(self, n, &b->ln2_w, SHAPE1(W), FMT("ln_2.weight"), i));
            GS_TRY(bind(self, n, &b->ln2_b, SHAPE1(W), FMT("ln_2.bias"), i));
            GS_TRY(bind_linear(self, n, &b->fc, &b->fc_b, W, M, FMT("mlp.c_fc.%s"), i));
            GS_TRY(bind_linear(self, n, &b->proj, &b->proj_b, M, W, FMT("mlp.c_proj.%s"), i));
        }
    }
#undef FMT
    // one block too many in the file means the config is wrong (a silently truncated model)
    char probe[256];
    snprintf(probe, sizeof probe, base, st->layers);
    char probe_name[300];
    snprintf(probe_name, sizeof probe_name, "%s.%s", probe,
             hf ? "layer_norm1.weight" : "ln_1.weight");
    if (has_tensor(self, probe_name)) {
        GS_LOG_ERROR("\"%s\" holds more layers than the architecture's %d (found \"%s%s\"): "
                     "wrong architecture or config",
                     self->weights_path, st->layers, self->prefix, probe_name);
        return GS_EFORMAT;
    }
    return GS_OK;
}

static gs_err bind_vision(gs_clip_t *self)
{
    const gs__clip_hparams_t *hp = &self->hp;
    int W = hp->v_width, P = hp->patch_size, g = hp->image_size / hp->patch_size;
    int T = g * g + 1, E = hp->embed_dim;
    int64_t *n = &self->n_params_vision;
    gs__clip_stack_t *st = &self->vis;
    *st = (gs__clip_stack_t){.width = W,
                             .layers = hp->v_layers,
                             .heads = hp->v_heads,
                             .mlp = hp->v_mlp,
                             .act = hp->v_act,
                             .eps = hp->v_eps};
    self->v_patch = (gs_ops_weight_t){.n_in = 3 * P * P, .n_out = W};
    if (hp->layout == GS__CLIP_LAYOUT_HF) {
        GS_TRY(bind(self, n, &self->v_patch.f32, SHAPE4(W, 3, P, P),
                    "vision_model.embeddings.patch_embedding.weight"));
        GS_TRY(bind(self, n, &self->v_cls, SHAPE1(W), "vision_model.embeddings.class_embedding"));
        GS_TRY(bind(self, n, &self->v_pos, SHAPE2(T, W),
                    "vision_model.embeddings.position_embedding.weight"));
        GS_TRY(bind(self, n, &self->v_ln_pre_w, SHAPE1(W), "vision_model.pre_layrnorm.weight"));
        GS_TRY(bind(self, n, &self->v_ln_pre_b, SHAPE1(W), "vision_model.pre_layrnorm.bias"));
        GS_TRY(bind_stack(self, st, "vision_model.encoder.layers.%d", n));
        GS_TRY(bind(self, n, &self->v_ln_post_w, SHAPE1(W), "vision_model.post_layernorm.weight"));
        GS_TRY(bind(self, n, &self->v_ln_post_b, SHAPE1(W), "vision_model.post_layernorm.bias"));
        // a CLIPVisionModel (LLaVA's tower) has no projection
        if (hp->has_text || has_tensor(self, "visual_projection.weight")) {
            self->v_proj = (gs_ops_weight_t){.n_in = W, .n_out = E};
            GS_TRY(bind(self, n, &self->v_proj.f32, SHAPE2(E, W), "visual_projection.weight"));
        }
    } else {
        GS_TRY(bind(self, n, &self->v_patch.f32, SHAPE4(W, 3, P, P), "visual.conv1.weight"));
        GS_TRY(bind(self, n, &self->v_cls, SHAPE1(W), "visual.class_embedding"));
        GS_TRY(bind(self, n, &self->v_pos, SHAPE2(T, W), "visual.positional_embedding"));
        GS_TRY(bind(self, n, &self->v_ln_pre_w, SHAPE1(W), "visual.ln_pre.weight"));
        GS_TRY(bind(self, n, &self->v_ln_pre_b, SHAPE1(W), "visual.ln_pre.bias"));
        GS_TRY(bind_stack(self, st, "visual.transformer.resblocks.%d", n));
        GS_TRY(bind(self, n, &self->v_ln_post_w, SHAPE1(W), "visual.ln_post.weight"));
        GS_TRY(bind(self, n, &self->v_ln_post_b, SHAPE1(W), "visual.ln_post.bias"));
        self->v_proj = (gs_ops_weight_t){.n_in = W, .n_out = E, .in_out = true};
        GS_TRY(bind(self, n, &self->v_proj.f32, SHAPE2(W, E), "visual.proj"));
    }
    return GS_OK;
}

static gs_err bind_text(gs_clip_t *self)
{
    const gs__clip_hparams_t *hp = &self->hp;
    int W = hp->t_width, C = hp->context_length, V = hp->vocab_size, E = hp->embed_dim;
    int64_t *n = &self->n_params_text;
    gs__clip_stack_t *st = &self->txt;
    *st = (gs__clip_stack_t){.width = W,
                             .layers = hp->t_layers,
                             .heads = hp->t_heads,
                             .mlp = hp->t_mlp,
                             .act = hp->t_act,
                             .eps = hp->t_eps};
    if (hp->layout == GS__CLIP_LAYOUT_HF) {
        GS_TRY(bind(self, n, &self->t_tok, SHAPE2(V, W),
                    "text_model.embeddings.token_embedding.weight"));
        GS_TRY(bind(self, n, &self->t_pos, SHAPE2(C, W),
                    "text_model.embeddings.position_embedding.weight"));
        GS_TRY(bind_stack(self, st, "text_model.encoder.layers.%d", n));
        GS_TRY(bind(self, n, &self->t_ln_w, SHAPE1(W), "text_model.final_layer_norm.weight"));
        GS_TRY(bind(self, n, &self->t_ln_b, SHAPE1(W), "text_model.final_layer_norm.bias"));
        self->t_proj = (gs_ops_weight_t){.n_in = W, .n_out = E};
        GS_TRY(bind(self, n, &self->t_proj.f32, SHAPE2(E, W), "text_projection.weight"));
    } else {
        GS_TRY(bind(self, n, &self->t_tok, SHAPE2(V, W), "token_embedding.weight"));
        GS_TRY(bind(self, n, &self->t_pos, SHAPE2(C, W), "positional_embedding"));
        GS_TRY(bind_stack(self, st, "transformer.resblocks.%d", n));
        GS_TRY(bind(self, n, &self->t_ln_w, SHAPE1(W), "ln_final.weight"));
        GS_TRY(bind(self, n, &self->t_ln_b, SHAPE1(W), "ln_final.bias"));
        self->t_proj = (gs_ops_weight_t){.n_in = W, .n_out = E, .in_out = true};
        GS_TRY(bind(self, n, &self->t_proj.f32, SHAPE2(W, E), "text_projection"));
    }
    // logit_scale is a 0-d parameter in open_clip and transformers; some training scripts
    // store it with shape [1] (torch.ones([1]) * log(1 / 0.07)): both hold the one value
    const float *ls;
    int64_t n_ls = 0;
    char ls_name[512];
    snprintf(ls_name, sizeof ls_name, "%slogit_scale", self->prefix);
    const gs_tensor_t *ls_t = gs_weights_get(self->w, ls_name);
    bool one_d = ls_t && ls_t->n_dims == 1 && ls_t->shape[0] == 1;
    GS_TRY(bind(self, &n_ls, &ls, one_d ? SHAPE1(1) : SHAPE0(), "logit_scale"));
    self->n_params_other += n_ls;
    self->logit_scale = expf(ls[0]);
    return GS_OK;
}

// warn_unused: tensors of the file the architecture did not read are a sign of a wrong arch
// (layer scale, extra heads); buffers and non-float tensors are expected.
static void warn_unused(gs_clip_t *self)
{
    size_t n_float = 0, n_total = gs_weights_count(self->w);
    for (size_t i = 0; i < n_total; i++) {
        const gs_tensor_t *t = gs_weights_at(self->w, i);
        if (t->dtype != GS_DTYPE_F32 && t->dtype != GS_DTYPE_F16 && t->dtype != GS_DTYPE_BF16)
            continue;
        size_t len = strlen(t->name);
        if (len >= 12 && strcmp(t->name + len - 12, "position_ids") == 0)
            continue;
        if (len >= 9 && strcmp(t->name + len - 9, "attn_mask") == 0)
            continue;
        n_float++;
    }
    if (n_float > self->n_bound) {
        GS_LOG_WARN("\"%s\" holds %zu weight tensors, the architecture uses %zu: check the "
                    "architecture (--arch / --config)",
                    self->weights_path, n_float, self->n_bound);
    }
}

// ---- arena --------------------------------------------------------------------------------

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static gs_err alloc_arena(gs_clip_t *self)
{
    const gs__clip_hparams_t *hp = &self->hp;
    size_t B = (size_t)self->shard_cap;
    size_t n_x = 0, n_big = 0, n_scores = 0, n_pooled = 0;
    if (hp->has_vision) {
        size_t g = (size_t)(hp->image_size / hp->patch_size), T = g * g + 1, W = hp->v_width;
        size_t P = hp->patch_size, M = hp->v_mlp;
        n_x = B * T * W;
        n_big = B * T * (M > 3 * W ? M : 3 * W);
        if (B * g * g * 3 * P * P > n_big)
            n_big = B * g * g * 3 * P * P;
        n_scores = T * T;
        n_pooled = B * W;
    }
    if (hp->has_text) {
        size_t C = hp->context_length, W = hp->t_width, M = hp->t_mlp;
        n_x = n_x > B * C * W ? n_x : B * C * W;
        size_t big = B * C * (M > 3 * W ? M : 3 * W);
        n_big = n_big > big ? n_big : big;
        n_scores = n_scores > C * C ? n_scores : C * C;
        n_pooled = n_pooled > B * W ? n_pooled : B * W;
    }
    // packed GEMM scratch: inputs (rows, largest in) as bf16 or float32, outputs (rows, largest
    // out); rows * in <= n_big for every linear layer (the MLP's and the patch embedding's
    // inputs are in n_big, the others have width W)
    size_t n_xs = 0, n_ys = 0;
    if (self->packed) {
        n_xs = self->precision == GS_CLIP_PRECISION_BF16 ? (n_big + 1) / 2 + n_x : n_big;
        n_ys = n_big;
    }
    size_t per = 2 * align16(n_x) + align16(n_big) + align16(n_scores) + align16(n_pooled) +
                 align16(n_xs) + align16(n_ys);
    size_t total = per * (size_t)self->n_shards_max;
    self->arena = gs_tryalloc_aligned(64, total * sizeof(float));
    if (!self->arena) {
        GS_LOG_ERROR("out of memory allocating the activations (%zu MB for batch %d)",
                     total * sizeof(float) >> 20, self->max_batch);
        return GS_ENOMEM;
    }
    self->arena_nbytes = total * sizeof(float);
    self->work = gs_xcalloc((size_t)self->n_shards_max, sizeof *self->work);
    for (int i = 0; i < self->n_shards_max; i++) {
        float *p = self->arena + per * (size_t)i;
        gs__clip_work_t *wk = &self->work[i];
        wk->x = p;
        p += align16(n_x);
        wk->h = p;
        p += align16(n_x);
        wk->big = p;
        p += align16(n_big);
        wk->scores = p;
        p += align16(n_scores);
        wk->pooled = p;
        p += align16(n_pooled);
        wk->xs = n_xs ? p : NULL;
        p += align16(n_xs);
        wk->ys = n_ys ? p : NULL;
        wk->slot = i;
    }
    return GS_OK;
}

// ---- packed weights (oneDNN) -------------------------------------------------------------

// The packed text tower's extra row counts: multiples of TEXT_ROW_STEP up to TEXT_ROW_SMALL.
enum { TEXT_ROW_STEP = 16, TEXT_ROW_SMALL = 128 };

// text_rows: the rows the text tower's row-wise steps run for `rows` = n * L real rows: the same
// on OpenBLAS; on oneDNN, the smallest row count prepare_stack made a matmul for.
static int text_rows(const gs_clip_t *self, int rows)
{
    if (!self->txt_packed)
        return rows;
    int C = self->hp.context_length;
    int best = (rows + C - 1) / C * C; // whole contexts: at most shard_cap of them
    int small = (rows + TEXT_ROW_STEP - 1) / TEXT_ROW_STEP * TEXT_ROW_STEP;
    return small <= TEXT_ROW_SMALL && small < best ? small : best;
}

// prepare_rows: the matmuls of one tower's blocks for `rows` rows.
static gs_err prepare_rows(gs_clip_t *self, const gs__clip_stack_t *st, int rows)
{
    int W = st->width, M = st->mlp;
    if (st->fused_qkv)
        GS_TRY(gs_ops_packed_prepare(self->packed, rows, W, 3 * W));
    GS_TRY(gs_ops_packed_prepare(self->packed, rows, W, W));
    GS_TRY(gs_ops_packed_prepare(self->packed, rows, W, M));
    GS_TRY(gs_ops_packed_prepare(self->packed, rows, M, W));
    return GS_OK;
}

// prepare_stack: packs one tower's block weights and creates the matmuls for every row count a
// shard can run with whole sequences (1..shard_cap sequences of n_tok tokens). The text tower
// runs shorter sequences (up to its longest text): those row counts run on the next larger
// matmul (ops pads with zero rows), so it also gets row counts in steps of 16 up to 128 for
// the common case of a few short texts.
static gs_err prepare_stack(gs_clip_t *self, gs__clip_stack_t *st, int n_tok, bool text)
{
    for (int n = 1; n <= self->shard_cap; n++)
        GS_TRY(prepare_rows(self, st, n * n_tok));
    for (int rows = TEXT_ROW_STEP; text && rows <= TEXT_ROW_SMALL && rows < self->shard_cap * n_tok;
         rows += TEXT_ROW_STEP)
        GS_TRY(prepare_rows(self, st, rows));
    for (int i = 0; i < st->layers; i++) {
        gs__clip_block_t *b = &st->blocks[i];
        GS_TRY(gs_ops_packed_pack(self->packed, &b->q, &b->q_pk));
        if (!st->fused_qkv) {
            GS_TRY(gs_ops_packed_pack(self->packed, &b->k, &b->k_pk));
            GS_TRY(gs_ops_packed_pack(self->packed, &b->v, &b->v_pk));
        }
        GS_TRY(gs_ops_packed_pack(self->packed, &b->out, &b->out_pk));
        GS_TRY(gs_ops_packed_pack(self->packed, &b->fc, &b->fc_pk));
        GS_TRY(gs_ops_packed_pack(self->packed, &b->proj, &b->proj_pk));
    }
    return GS_OK;
}

// new_packed: the oneDNN context the precision and opts->gemm ask for, or none (OpenBLAS).
static gs_err new_packed(gs_clip_t *self, const gs_clip_opts_t *opts)
{
    if (self->precision == GS_CLIP_PRECISION_BF16)
        return gs_ops_packed_new(GS_OPS_PACKED_BF16, self->n_shards_max, &self->packed);
    gs_clip_gemm_t g = opts ? opts->gemm : GS_CLIP_GEMM_AUTO;
    const char *env = getenv("GS_CLIP_GEMM");
    if (g == GS_CLIP_GEMM_AUTO && env && *env) {
        if (strcmp(env, "openblas") == 0)
            g = GS_CLIP_GEMM_OPENBLAS;
        else if (strcmp(env, "onednn") == 0)
            g = GS_CLIP_GEMM_ONEDNN;
        else if (strcmp(env, "auto") != 0) {
            GS_LOG_ERROR("GS_CLIP_GEMM is \"openblas\", \"onednn\" or \"auto\", not \"%s\"", env);
            return GS_EINVAL;
        }
    }
    if (g == GS_CLIP_GEMM_OPENBLAS)
        return GS_OK;
    gs_err e = gs_ops_packed_new(GS_OPS_PACKED_F32, self->n_shards_max, &self->packed);
    if (e == GS_EUNSUPPORTED && g == GS_CLIP_GEMM_ONEDNN)
        GS_LOG_ERROR("float32 GEMMs on oneDNN need a build with oneDNN (Debian libdnnl-dev) and "
                     "a CPU where it has a brgemm kernel (AVX-512)");
    return e == GS_EUNSUPPORTED && g == GS_CLIP_GEMM_AUTO ? GS_OK : e;
}

// unpack_stack: forgets a tower's packed copies after a failed packing (all layers or none, so
// that text_rows and the prepared row counts agree).
static void unpack_stack(gs__clip_stack_t *st)
{
    for (int i = 0; i < st->layers; i++) {
        gs__clip_block_t *b = &st->blocks[i];
        b->q_pk = b->k_pk = b->v_pk = b->out_pk = b->fc_pk = b->proj_pk = NULL;
    }
}

// ensure_packed: packs one tower's weights into self->packed and makes the matmuls of every row
// count a shard runs, on the tower's first use (in the calling thread, before any shard runs):
// a command that embeds only texts or only images pays for that tower alone (packing writes
// fresh memory: ViT-B/32's vision tower takes 0.17 s with 2 MB pages, up to 0.7 s while the
// kernel assembles them). A no-op on OpenBLAS.
static gs_err ensure_packed(gs_clip_t *self, bool text)
{
    const gs__clip_hparams_t *hp = &self->hp;
    if (!self->packed || (text ? self->txt_packed : self->vis_packed))
        return GS_OK;
    double t0 = gs_clock_s();
    gs_err e = GS_OK;
    if (text) {
        e = prepare_stack(self, &self->txt, hp->context_length, true);
        if (e != GS_OK)
            unpack_stack(&self->txt);
        self->txt_packed = e == GS_OK;
    } else {
        int g = hp->image_size / hp->patch_size;
        for (int n = 1; e == GS_OK && n <= self->shard_cap; n++)
            e = gs_ops_packed_prepare(self->packed, n * g * g, self->v_patch.n_in, hp->v_width);
        if (e == GS_OK)
            e = gs_ops_packed_pack(self->packed, &self->v_patch, &self->v_patch_pk);
        if (e == GS_OK)
            e = prepare_stack(self, &self->vis, g * g + 1, false);
        if (e != GS_OK) {
            self->v_patch_pk = NULL;
            unpack_stack(&self->vis);
        }
        self->vis_packed = e == GS_OK;
    }
    if (e != GS_OK)
        GS_LOG_ERROR("\"%s\": could not pack the %s tower's weights for oneDNN", self->weights_path,
                     text ? "text" : "vision");
    else
        GS_LOG_DEBUG("packed the %s tower for oneDNN in %.3f s", text ? "text" : "vision",
                     gs_clock_s() - t0);
    return e;
}

// ---- open / close -------------------------------------------------------------------------

gs_err gs__clip_open_weights(gs_weights_t **w, bool own_weights, const char *prefix,
                             const gs__clip_hparams_t *hp, const gs_clip_opts_t *opts,
                             gs_clip_t **out)
{
    *out = NULL;
    gs_clip_t *self = gs_xcalloc(1, sizeof *self);
    self->hp = *hp;
    self->w = *w;
    self->own_weights = own_weights;
    if (own_weights)
        *w = NULL;
    self->prefix = gs_xstrdup(prefix ? prefix : "");
    self->max_batch = opts && opts->max_batch > 0 ? opts->max_batch : 16;
    self->n_threads = opts && opts->n_threads > 0 ? opts->n_threads : 1;
    if (self->n_threads > 256)
        self->n_threads = 256;
    self->n_shards_max = opts && opts->no_shards ? 1 : self->n_threads;
    self->precision = opts ? opts->precision : GS_CLIP_PRECISION_F32;
    self->shard_cap = (self->max_batch + self->n_shards_max - 1) / self->n_shards_max;
    self->weights_path =
        gs_xstrdup(gs_weights_count(self->w) ? gs_weights_at(self->w, 0)->file : "(empty)");
    gs_err e = GS_OK;
    if (!hp->has_vision && !hp->has_text) {
        GS_LOG_ERROR("\"%s\": the configuration has neither a vision nor a text tower",
                     self->weights_path);
        e = GS_EINVAL;
    }
    if (e == GS_OK && hp->has_vision)
        e = bind_vision(self);
    if (e == GS_OK && hp->has_text)
        e = bind_text(self);
    if (e == GS_OK && own_weights && self->prefix[0] == '\0')
        warn_unused(self);
    if (e == GS_OK)
        e = new_packed(self, opts);
    if (e == GS_OK)
        e = alloc_arena(self);
    if (self->packed)
        snprintf(self->gemm, sizeof self->gemm, "onednn (%s)", gs_ops_packed_kernel(self->packed));
    else
        snprintf(self->gemm, sizeof self->gemm, "openblas");
    if (e == GS_OK && self->n_shards_max > 1 &&
        gs__clip_pool_new(self->n_shards_max - 1, &self->pool) != GS_OK) {
        GS_LOG_ERROR("could not start %d encoder threads", self->n_shards_max - 1);
        e = GS_ENOMEM;
    }
    if (e != GS_OK) {
        gs_clip_close(&self);
        return e;
    }
    gs_ops_set_threads(self->n_threads);
    self->blas_threads = self->n_threads;
    *out = self;
    return GS_OK;
}

void gs_clip_close(gs_clip_t **p)
{
    if (!p || !*p)
        return;
    gs_clip_t *self = *p;
    gs__clip_pool_destroy(&self->pool);
    gs_ops_packed_destroy(&self->packed);
    gs__clip_tokenizer_close(self);
    for (int i = 0; i < self->n_owned; i++)
        gs_free(self->owned[i]);
    gs_free(self->owned);
    gs_free(self->vis.blocks);
    gs_free(self->txt.blocks);
    gs_free(self->arena);
    gs_free(self->work);
    if (self->own_weights)
        gs_weights_close(&self->w);
    gs_free(self->prefix);
    gs_free(self->weights_path);
    gs_free(self->config_path);
    gs_free(self->arch);
    gs_free(self);
    *p = NULL;
}

// ---- forward passes -----------------------------------------------------------------------

#define TRACE(tower, name, data, rows, cols, ld)                                                   \
    do {                                                                                           \
        if (self->trace)                                                                           \
            self->trace(self->trace_ud, tower, name, data, rows, cols, ld);                        \
    } while (0)

static void activation(gs__clip_act_t act, float *x, size_t n)
{
    if (act == GS__CLIP_ACT_QUICK_GELU)
        gs_ops_quick_gelu(x, n);
    else
        gs_ops_gelu(x, n);
}

// linear: gs_ops_linear, or its oneDNN twin when the layer has a packed copy.
static void linear(const gs_clip_t *self, gs__clip_work_t *wk, const gs_ops_weight_t *w,
                   const gs_ops_packed_weight_t *wp, const float *bias, const float *x, int ld_x,
                   int rows, float beta, float *out, int ld_out)
{
    if (wp) {
        // every row count a shard runs has a matmul (ensure_packed): GS_EINVAL would be a bug
        gs_err e = gs_ops_packed_linear(self->packed, wk->slot, wp, bias, x, ld_x, rows, beta, out,
                                        ld_out, wk->xs, wk->ys);
        GS_ASSERT(e != GS_EINVAL);
    } else
        gs_ops_linear(w, bias, x, ld_x, rows, beta, out, ld_out);
}

// block_forward: one pre-LN residual block over n_seq sequences of n_tok tokens in wk->x.
// x += out_proj(MHA(ln_1(x))); x += c_proj(act(c_fc(ln_2(x)))). The row-wise steps run over
// `rows` >= n_seq * n_tok rows: extra rows (padding to a prepared matmul size, see
// text_rows) are computed like the others, and attention never reads them.
static void block_forward(const gs_clip_t *self, gs__clip_work_t *wk, const gs__clip_stack_t *st,
                          const gs__clip_block_t *b, int n_seq, int n_tok, int rows, bool causal)
{
    int W = st->width, M = st->mlp;
    float *x = wk->x, *h = wk->h, *big = wk->big;
    gs_ops_layernorm(x, W, rows, W, b->ln1_w, b->ln1_b, st->eps, h, W);
    // q, k, v side by side in big: (rows, 3W)
    linear(self, wk, &b->q, b->q_pk, b->q_b, h, W, rows, 0.0f, big, 3 * W);
    if (!st->fused_qkv) {
        linear(self, wk, &b->k, b->k_pk, b->k_b, h, W, rows, 0.0f, big + W, 3 * W);
        linear(self, wk, &b->v, b->v_pk, b->v_b, h, W, rows, 0.0f, big + 2 * W, 3 * W);
    }
    float scale = 1.0f / sqrtf((float)(W / st->heads));
    gs_ops_attention(big, 3 * W, n_seq, n_tok, W, st->heads, scale, causal, wk->scores, h, W);
    linear(self, wk, &b->out, b->out_pk, b->out_b, h, W, rows, 1.0f, x, W);
    gs_ops_layernorm(x, W, rows, W, b->ln2_w, b->ln2_b, st->eps, h, W);
    linear(self, wk, &b->fc, b->fc_pk, b->fc_b, h, W, rows, 0.0f, big, M);
    activation(st->act, big, (size_t)rows * M);
    linear(self, wk, &b->proj, b->proj_pk, b->proj_b, big, M, rows, 1.0f, x, W);
}

// vision_embed: n images -> wk->x = ln_pre([cls; patches] + pos), n*T rows.
static void vision_embed(gs_clip_t *self, gs__clip_work_t *wk, const float *pixels, int n)
{
    const gs__clip_hparams_t *hp = &self->hp;
    int S = hp->image_size, P = hp->patch_size, g = S / P, W = hp->v_width;
    int T = g * g + 1, K = 3 * P * P;
    // im2col: one row per patch, columns in conv1's (channel, ky, kx) order
    for (int b = 0; b < n; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *row = wk->big + ((size_t)(b * g + gy) * g + gx) * K;
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < P; ky++)
                        memcpy(row + (c * P + ky) * P,
                               pixels + (((size_t)b * 3 + c) * S + gy * P + ky) * S + gx * P,
                               (size_t)P * sizeof(float));
            }
    linear(self, wk, &self->v_patch, self->v_patch_pk, NULL, wk->big, K, n * g * g, 0.0f, wk->h, W);
    TRACE("vision", "patch_tokens", wk->h, n * g * g, W, W);
    for (int b = 0; b < n; b++) {
        float *xb = wk->x + (size_t)b * T * W;
        for (int j = 0; j < W; j++)
            xb[j] = self->v_cls[j] + self->v_pos[j];
        for (int t = 1; t < T; t++) {
            const float *src = wk->h + ((size_t)b * g * g + t - 1) * W;
            for (int j = 0; j < W; j++)
                xb[(size_t)t * W + j] = src[j] + self->v_pos[(size_t)t * W + j];
        }
    }
    TRACE("vision", "embed", wk->x, n * T, W, W);
    gs_ops_layernorm(wk->x, W, n * T, W, self->v_ln_pre_w, self->v_ln_pre_b, hp->v_eps, wk->x, W);
    TRACE("vision", "ln_pre_out", wk->x, n * T, W, W);
}

static void run_blocks(gs_clip_t *self, gs__clip_work_t *wk, const gs__clip_stack_t *st, int first,
                       int last, int n_seq, int n_tok, int rows, bool causal, const char *tower)
{
    for (int k = first; k < last; k++) {
        block_forward(self, wk, st, &st->blocks[k], n_seq, n_tok, rows, causal);
        if (self->trace) {
            char name[32];
            snprintf(name, sizeof name, "block%d_out", k);
            TRACE(tower, name, wk->x, n_seq * n_tok, st->width, st->width);
        }
    }
}

// vision_batch: n <= max_batch images -> out (n x E).
static void vision_batch(gs_clip_t *self, gs__clip_work_t *wk, const float *pixels, int n,
                         float *out)
{
    const gs__clip_hparams_t *hp = &self->hp;
    int g = hp->image_size / hp->patch_size, T = g * g + 1, W = hp->v_width;
    vision_embed(self, wk, pixels, n);
    run_blocks(self, wk, &self->vis, 0, hp->v_layers, n, T, n * T, false, "vision");
    if (self->trace && hp->layout == GS__CLIP_LAYOUT_OPENCLIP) {
        gs_ops_layernorm(wk->x, W, n * T, W, self->v_ln_post_w, self->v_ln_post_b, hp->v_eps, wk->h,
                         W);
        TRACE("vision", "ln_post_out", wk->h, n * T, W, W);
    }
    // the class token of each image, post-LayerNorm
    gs_ops_layernorm(wk->x, T * W, n, W, self->v_ln_post_w, self->v_ln_post_b, hp->v_eps,
                     wk->pooled, W);
    TRACE("vision", "pooled", wk->pooled, n, W, W);
    gs_ops_linear(&self->v_proj, NULL, wk->pooled, W, n, 0.0f, out, hp->embed_dim);
}

// pool_position: where the text tower reads its output for one id sequence.
static int pool_position(const gs__clip_hparams_t *hp, const int32_t *ids)
{
    int best = 0;
    if (hp->pool_argmax) {
        for (int t = 1; t < hp->context_length; t++)
            if (ids[t] > ids[best])
                best = t;
        return best;
    }
    for (int t = 0; t < hp->context_length; t++)
        if (ids[t] == hp->eos_token_id)
            return t;
    return 0; // transformers' argmax over an all-false mask
}

// text_batch: n <= shard_cap id sequences -> out (n x E). Only the first L positions of every
// sequence are computed, L = the batch's last pooling position + 1 (about 10-20 for captions
// instead of the 77 of the context): the mask is causal, so positions before a sequence's
// pooling position never read the ones after it, and the pooled rows are the same as with the
// whole context (ops' causal attention is independent of the sequence length).
static void text_batch(gs_clip_t *self, gs__clip_work_t *wk, const int32_t *ids, int n, float *out)
{
    const gs__clip_hparams_t *hp = &self->hp;
    int C = hp->context_length, W = hp->t_width;
    int L = 1;
    for (int b = 0; b < n; b++) {
        int t = pool_position(hp, ids + (size_t)b * C);
        L = t + 1 > L ? t + 1 : L;
    }
    for (int b = 0; b < n; b++)
        for (int t = 0; t < L; t++) {
            const float *e = self->t_tok + (size_t)ids[(size_t)b * C + t] * W;
            float *x = wk->x + ((size_t)b * L + t) * W;
            for (int j = 0; j < W; j++)
                x[j] = e[j] + self->t_pos[(size_t)t * W + j];
        }
    // padding rows start as zeros, so that every pass computes the same finite values
    int rows = text_rows(self, n * L);
    memset(wk->x + (size_t)n * L * W, 0, (size_t)(rows - n * L) * W * sizeof(float));
    TRACE("text", "embed", wk->x, n * L, W, W);
    run_blocks(self, wk, &self->txt, 0, hp->t_layers, n, L, rows, true, "text");
    if (self->trace) {
        gs_ops_layernorm(wk->x, W, n * L, W, self->t_ln_w, self->t_ln_b, hp->t_eps, wk->h, W);
        TRACE("text", "ln_final_out", wk->h, n * L, W, W);
    }
    for (int b = 0; b < n; b++) {
        int t = pool_position(hp, ids + (size_t)b * C);
        gs_ops_layernorm(wk->x + ((size_t)b * L + t) * W, W, 1, W, self->t_ln_w, self->t_ln_b,
                         hp->t_eps, wk->pooled + (size_t)b * W, W);
    }
    TRACE("text", "pooled", wk->pooled, n, W, W);
    gs_ops_linear(&self->t_proj, NULL, wk->pooled, W, n, 0.0f, out, hp->embed_dim);
}

// ---- public encode API --------------------------------------------------------------------

// A chunk of at most max_batch items, split into shards of at most shard_cap items, one per
// thread. With one shard, BLAS gets all the threads; with several, each shard runs
// single-threaded BLAS on its own thread and work area.
typedef enum { JOB_IMAGES, JOB_TOKENS, JOB_HIDDEN } job_kind_t;

typedef struct {
    gs_clip_t *self;
    job_kind_t kind;
    const float *pixels; // (n, 3, S, S)
    const int32_t *ids;  // (n, context)
    int n, per_shard, layer;
    int n_shards;
    float *out; // (n, out_stride)
    size_t out_stride;
} job_t;

static void run_shard(void *arg, int s)
{
    const job_t *j = arg;
    gs_clip_t *self = j->self;
    const gs__clip_hparams_t *hp = &self->hp;
    int first = s * j->per_shard;
    int cnt = j->n - first < j->per_shard ? j->n - first : j->per_shard;
    if (cnt <= 0)
        return;
    gs__clip_work_t *wk = &self->work[s];
    if (self->packed) // oneDNN's threads: all of them for one shard, one per shard otherwise
        gs_ops_packed_thread_init(j->n_shards == 1 ? self->n_threads : 1);
    float *out = j->out + (size_t)first * j->out_stride;
    size_t img = 3 * (size_t)hp->image_size * hp->image_size;
    if (j->kind == JOB_IMAGES) {
        vision_batch(self, wk, j->pixels + (size_t)first * img, cnt, out);
    } else if (j->kind == JOB_TOKENS) {
        text_batch(self, wk, j->ids + (size_t)first * hp->context_length, cnt, out);
    } else {
        int g = hp->image_size / hp->patch_size, T = g * g + 1;
        vision_embed(self, wk, j->pixels + (size_t)first * img, cnt);
        run_blocks(self, wk, &self->vis, 0, j->layer, cnt, T, cnt * T, false, "vision");
        memcpy(out, wk->x, (size_t)cnt * T * hp->v_width * sizeof(float));
    }
}

static void set_blas_threads(gs_clip_t *self, int n)
{
    if (self->blas_threads != n) {
        gs_ops_set_threads(n);
        self->blas_threads = n;
    }
}

// run_job: all n items of *proto in chunks; proto's pointers are advanced per chunk.
static void run_job(gs_clip_t *self, job_t proto, int n)
{
    size_t in_img = 3 * (size_t)self->hp.image_size * self->hp.image_size;
    // tracing (tests) runs one shard at a time, so the callback sees sequence 0 first
    int chunk = self->trace ? self->shard_cap : self->shard_cap * self->n_shards_max;
    for (int i = 0; i < n; i += chunk) {
        job_t j = proto;
        j.n = n - i < chunk ? n - i : chunk;
        if (j.pixels)
            j.pixels += (size_t)i * in_img;
        if (j.ids)
            j.ids += (size_t)i * self->hp.context_length;
        j.out += (size_t)i * j.out_stride;
        int n_shards = (j.n + self->shard_cap - 1) / self->shard_cap;
        if (n_shards < self->n_shards_max && j.n >= self->n_shards_max && !self->trace)
            n_shards = self->n_shards_max; // spread a small chunk over every thread
        if (n_shards > j.n)
            n_shards = j.n;
        j.per_shard = (j.n + n_shards - 1) / n_shards;
        n_shards = (j.n + j.per_shard - 1) / j.per_shard;
        j.n_shards = n_shards;
        set_blas_threads(self, n_shards == 1 ? self->n_threads : 1);
        gs__clip_pool_run(self->pool, n_shards, run_shard, &j);
    }
}

gs_err gs_clip_encode_images(gs_clip_t *self, const float *pixels_chw, int n, bool normalize,
                             float *out)
{
    if (!self || n < 0 || (n > 0 && (!pixels_chw || !out)))
        return GS_EINVAL;
    if (!self->hp.has_vision || !self->v_proj.f32) {
        GS_LOG_ERROR("\"%s\": this model has no image embedding (vision tower with projection)",
                     self->weights_path);
        return GS_ESTATE;
    }
    GS_TRY(ensure_packed(self, false));
    job_t j = {.self = self,
               .kind = JOB_IMAGES,
               .pixels = pixels_chw,
               .out = out,
               .out_stride = (size_t)self->hp.embed_dim};
    run_job(self, j, n);
    if (normalize)
        gs_ops_l2_normalize(out, n, self->hp.embed_dim);
    return GS_OK;
}

gs_err gs_clip_encode_tokens(gs_clip_t *self, const int32_t *ids, int n, bool normalize, float *out)
{
    if (!self || n < 0 || (n > 0 && (!ids || !out)))
        return GS_EINVAL;
    if (!self->hp.has_text) {
        GS_LOG_ERROR("\"%s\": this model has no text tower", self->weights_path);
        return GS_ESTATE;
    }
    int C = self->hp.context_length;
    for (size_t i = 0; i < (size_t)n * C; i++)
        if (ids[i] < 0 || ids[i] >= self->hp.vocab_size) {
            GS_LOG_ERROR("token id %d at position %zu of sequence %zu is outside the vocabulary "
                         "(0..%d)",
                         ids[i], i % C, i / C, self->hp.vocab_size - 1);
            return GS_EINVAL;
        }
    GS_TRY(ensure_packed(self, true));
    job_t j = {.self = self,
               .kind = JOB_TOKENS,
               .ids = ids,
               .out = out,
               .out_stride = (size_t)self->hp.embed_dim};
    run_job(self, j, n);
    if (normalize)
        gs_ops_l2_normalize(out, n, self->hp.embed_dim);
    return GS_OK;
}

gs_err gs__clip_vision_hidden(gs_clip_t *self, const float *pixels_chw, int n, int layer,
                              float *out)
{
    if (!self || n < 0 || !self->hp.has_vision || layer < 0 || layer > self->hp.v_layers ||
        (n > 0 && (!pixels_chw || !out)))
        return GS_EINVAL;
    const gs__clip_hparams_t *hp = &self->hp;
    int g = hp->image_size / hp->patch_size, T = g * g + 1;
    GS_TRY(ensure_packed(self, false));
    job_t j = {.self = self,
               .kind = JOB_HIDDEN,
               .pixels = pixels_chw,
               .layer = layer,
               .out = out,
               .out_stride = (size_t)T * hp->v_width};
    run_job(self, j, n);
    return GS_OK;
}

// ---- getters ------------------------------------------------------------------------------

int gs_clip_dim(const gs_clip_t *self)
{
    return self->hp.embed_dim;
}
int gs_clip_image_size(const gs_clip_t *self)
{
    return self->hp.image_size;
}
int gs_clip_context_length(const gs_clip_t *self)
{
    return self->hp.context_length;
}
int gs_clip_max_batch(const gs_clip_t *self)
{
    return self->max_batch;
}
gs_preprocess_cfg_t gs_clip_preprocess_cfg(const gs_clip_t *self)
{
    return self->hp.pre;
}
float gs_clip_logit_scale(const gs_clip_t *self)
{
    return self->logit_scale;
}
const gs__clip_hparams_t *gs__clip_hparams(const gs_clip_t *self)
{
    return &self->hp;
}

void gs__clip_set_trace(gs_clip_t *self, gs__clip_trace_fn fn, void *ud)
{
    self->trace = fn;
    self->trace_ud = ud;
}
