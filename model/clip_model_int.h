// The CLIP model handle, shared by the files that implement it: clip.c (binding tensors, the
// arena, forward passes) and clip_open.c (opening from paths, tokenizer, description, model
// id). Private to those files.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/clip_bpe.h"
#include "model/clip_int.h"
#include "model/ops.h"
#include "model/weights.h"

// One pre-LN residual block. Pointers are float32 views (the mmap'd file or owned copies).
typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b; // (width)
    // open_clip: q is the fused in_proj [3W, W] with q_b [3W], k/v unused;
    // HF: separate q/k/v [W, W] with biases [W]
    gs_ops_weight_t q, k, v;
    const float *q_b, *k_b, *v_b;
    gs_ops_weight_t out; // (W, W)
    const float *out_b;
    gs_ops_weight_t fc; // (mlp, W)
    const float *fc_b;
    gs_ops_weight_t proj; // (W, mlp)
    const float *proj_b;
    // packed copies (oneDNN GEMMs), owned by the model's gs_ops_packed_t; NULL otherwise
    gs_ops_packed_weight_t *q_pk, *k_pk, *v_pk, *out_pk, *fc_pk, *proj_pk;
} gs__clip_block_t;

// The transformer of one tower.
typedef struct {
    int width, layers, heads, mlp; // 768, 12, 12, 3072
    gs__clip_act_t act;
    float eps;
    bool fused_qkv;           // open_clip in_proj
    gs__clip_block_t *blocks; // (layers), owned
} gs__clip_stack_t;

// The activations of one thread's share of a batch (shard_cap images or texts).
typedef struct {
    float *x;      // residual stream (rows, width)
    float *h;      // LayerNorm / attention output (rows, width)
    float *big;    // qkv (rows, 3*width), MLP hidden (rows, mlp), im2col patches
    float *scores; // attention scores of one head (tokens, tokens)
    float *pooled; // pooled rows before projection (batch, width)
    int slot;      // index of this work area (the packed context's slot)
    void *xs;      // packed GEMM input (rows, max in): bf16, or float32 rows made contiguous
    float *ys;     // packed GEMM output before the epilogue (rows, max out)
} gs__clip_work_t;

typedef struct gs__clip_pool gs__clip_pool_t;

struct gs_clip {
    gs__clip_hparams_t hp;
    gs_weights_t *w; // the weight set (mmap'd)
    bool own_weights;
    char *prefix; // tensor name prefix ("" or "vision_tower.")

    // vision tower
    gs_ops_weight_t v_patch;            // conv1 as a matrix (W, 3*P*P)
    gs_ops_packed_weight_t *v_patch_pk; // its packed copy (oneDNN GEMMs)
    const float *v_cls;                 // (W)
    const float *v_pos;                 // (T, W), T = grid^2 + 1
    const float *v_ln_pre_w, *v_ln_pre_b, *v_ln_post_w, *v_ln_post_b; // (W)
    gs_ops_weight_t v_proj; // (W -> E); f32 NULL when the checkpoint has none
    gs__clip_stack_t vis;
    // text tower
    const float *t_tok;           // (vocab, Wt)
    const float *t_pos;           // (context, Wt)
    const float *t_ln_w, *t_ln_b; // (Wt)
    gs_ops_weight_t t_proj;       // (Wt -> E)
    gs__clip_stack_t txt;
    float logit_scale; // exp(logit_scale)

    // weights converted to float32 at open (F16/BF16 checkpoints), owned
    float **owned;
    int n_owned, cap_owned;
    unsigned dtype_mask; // bit per gs_dtype_t of the bound tensors
    size_t n_bound;      // tensors bound
    int64_t n_params_vision, n_params_text, n_params_other;

    // activations: one allocation sized at open, split into one work area per thread
    float *arena;
    size_t arena_nbytes;
    gs__clip_work_t *work; // (n_threads)
    int max_batch, n_threads;
    int n_shards_max; // n_threads, or 1 with opts.no_shards
    int shard_cap;    // items per shard: ceil(max_batch / n_shards_max)
    int blas_threads; // the BLAS thread count last set
    gs_clip_precision_t precision;
    gs_ops_packed_t *packed;     // oneDNN context (bf16, or float32 on oneDNN), owns the packed
                                 // weights; NULL: OpenBLAS
    bool vis_packed, txt_packed; // the tower's weights are packed (on its first use)
    gs__clip_pool_t *pool;       // n_threads - 1 workers; NULL with one thread

    // tokenizer (clip_open.c); NULL when no vocabulary was found
    gs_clip_bpe_t *bpe;
    int32_t *ids_buf; // (max_batch, context) token ids of gs_clip_encode_texts
    char *vocab_path;
    char *vocab_error; // why no vocabulary was found, for the error at text-encoding time

    // description
    char *weights_path, *config_path, *arch;
    char dtypes[32];
    char gemm[80]; // gs_clip_info_t.gemm
    char model_id[17];
    bool have_model_id;

    gs__clip_trace_fn trace;
    void *trace_ud;
};

// gs__clip_tokenizer_close: frees the tokenizer state (clip_open.c); safe without one.
void gs__clip_tokenizer_close(gs_clip_t *self);

// The thread pool (clip_pool.c). gs__clip_pool_new: n_workers threads (the caller is the
// extra one); GS_ENOMEM when a thread cannot start. gs__clip_pool_run: calls fn(arg, i) for
// i in 0..n-1 (n at most n_workers + 1), i = 0 on the calling thread, and returns when all
// are done; a NULL pool runs them in turn. Not reentrant. gs__clip_pool_destroy: joins the
// threads; NULLs *p; accepts NULL.
gs_err gs__clip_pool_new(int n_workers, gs__clip_pool_t **out);
void gs__clip_pool_run(gs__clip_pool_t *self, int n, void (*fn)(void *arg, int i), void *arg);
void gs__clip_pool_destroy(gs__clip_pool_t **p);
