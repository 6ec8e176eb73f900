// LLaMA decoder internals shared inside model/ (llama*.c, llava*.c): hyperparameters and their
// config reader, a decoder opened over any weight set under a name prefix (LLaVA keeps its
// language model under "language_model."), sequences over a shared KV cache (beam search),
// the forward pass on embeddings, a probe hook for the golden tests, and the half-precision
// kernels with their thread pool. Module-private.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model/llama.h"
#include "model/weights.h"

// ---- hyperparameters (transformers LlamaConfig v4.40; example values: LLaMA-2-7B) ---------

typedef enum {
    GS__ROPE_NONE = 0,    // plain rotary embeddings
    GS__ROPE_LINEAR = 1,  // positions divided by factor
    GS__ROPE_DYNAMIC = 2, // dynamic NTK: base grows once the sequence exceeds max_pos
} gs__rope_type_t;

typedef struct {
    int vocab_size;   // 32000
    int dim;          // 4096 hidden_size
    int n_layers;     // 32 num_hidden_layers
    int n_heads;      // 32 num_attention_heads
    int n_kv_heads;   // 32 num_key_value_heads (defaults to n_heads)
    int head_dim;     // 128 (dim / n_heads unless "head_dim" says otherwise)
    int hidden_dim;   // 11008 intermediate_size
    int max_pos;      // 2048 max_position_embeddings (4096 for LLaMA-2)
    float norm_eps;   // 1e-6 rms_norm_eps (1e-5 for LLaMA-2)
    float rope_theta; // 10000
    gs__rope_type_t rope_type;
    float rope_factor;          // rope_scaling.factor (1 when none)
    bool tie_embeddings;        // tie_word_embeddings: lm_head = embed_tokens
    bool attention_bias;        // q/k/v/o projections have biases
    int bos_id, eos_id, pad_id; // 1, 2, -1 (none)
} gs__llama_hparams_t;

// gs__llama_hparams_defaults: LlamaConfig() of transformers v4.40.
void gs__llama_hparams_defaults(gs__llama_hparams_t *out);
// gs__llama_config_parse: a LlamaConfig as JSON text (config.json of LlamaForCausalLM, or the
// "text_config" object of a LLaVA config), defaults filled as transformers v4.40 does.
// Refuses (GS_EUNSUPPORTED) model types other than llama, activations other than silu,
// rope_scaling types other than linear and dynamic, mlp_bias; GS_EFORMAT for malformed JSON or
// out-of-range values (dims <= 0, heads not dividing, ...). Logged once naming `what`.
gs_err gs__llama_config_parse(const char *json_text, size_t nbytes, const char *what,
                              gs__llama_hparams_t *out);

// ---- sequences ----------------------------------------------------------------------------

// A token sequence over the decoder's KV cache: position p of the sequence is held in cache row
// rows[p]. Sequences may share rows (the prompt of all beams) and reordering beams copies only
// these indices. Caller-owned storage of `cap` ints.
typedef struct {
    int32_t *rows; // (cap) cache row of each position
    int len;       // positions filled
    int cap;       // capacity of rows (>= the decoder's n_ctx is always enough)
} gs__llama_seq_t;

// ---- the decoder --------------------------------------------------------------------------

// gs__llama_open_weights: builds a decoder over an open weight set (borrowed: it must outlive
// the decoder). Tensors are looked up as prefix + "model.layers.0.self_attn.q_proj.weight",
// prefix + "lm_head.weight" ("" for LlamaForCausalLM, "language_model." for LLaVA). Every
// shape is checked against hp. Errors as gs_llama_open.
gs_err gs__llama_open_weights(const gs_weights_t *w, const char *prefix,
                              const gs__llama_hparams_t *hp, const gs_llama_opts_t *opts,
                              gs_llama_t **out);
// gs__llama_hparams: borrowed, valid until close.
const gs__llama_hparams_t *gs__llama_hparams(const gs_llama_t *self);
// gs__llama_n_ctx / gs__llama_n_seq_max: the sizes chosen at open.
int gs__llama_n_ctx(const gs_llama_t *self);
int gs__llama_n_seq_max(const gs_llama_t *self);

// gs__llama_embed: the embedding rows of n ids (n x dim floats). GS_EINVAL for ids outside
// the embedding table. Allocates nothing.
gs_err gs__llama_embed(const gs_llama_t *self, const int32_t *ids, int n, float *out);

// gs__llama_reset_cache: every cache row is free again (all sequences become invalid).
void gs__llama_reset_cache(gs_llama_t *self);
// gs__llama_rows_free: cache rows not yet handed out.
int gs__llama_rows_free(const gs_llama_t *self);

// gs__llama_forward: appends n tokens (their embeddings, n x dim) to `seq`, taking n fresh
// cache rows, and writes the logits of its last token (vocab floats) to out_logits (may be
// NULL). Chunks of n_batch. GS_ETOOBIG when the cache lacks n free rows or seq->cap is too
// small (nothing appended), GS_EINVAL for n < 1. Allocates nothing. Not thread-safe.
gs_err gs__llama_forward(gs_llama_t *self, gs__llama_seq_t *seq, const float *embeds, int n,
                         float *out_logits);
// gs__llama_forward_multi: one new token for each of n_seq sequences (a beam-search step;
// n_seq <= n_seq_max), embeddings n_seq x dim, logits n_seq x vocab. The weights are read once
// for all of them. Errors as gs__llama_forward.
gs_err gs__llama_forward_multi(gs_llama_t *self, gs__llama_seq_t *const *seqs, int n_seq,
                               const float *embeds, float *out_logits);

// A probe receives intermediate activations of the forward pass (golden tests): per layer l,
// "self_attn_out" (o_proj output, before the residual), "mlp_out" (down_proj output),
// "layer_out" (after both residuals); then "final_norm_out" (layer -1). Rows are the chunk's
// tokens, dim floats each.
typedef void (*gs__llama_probe_fn)(void *ud, const char *name, int layer, const float *data,
                                   int n_rows, int dim);
void gs__llama_set_probe(gs_llama_t *self, gs__llama_probe_fn fn, void *ud);

// ---- kernels (llama_kern.c) ---------------------------------------------------------------

// A fixed set of worker threads (the caller is thread 0). Work is split ggml-style: fn runs
// once on every thread with (ith, nth). Threads sleep on a condition variable between jobs.
typedef struct gs__pool gs__pool_t;
typedef void (*gs__pool_fn)(void *ctx, int ith, int nth);
gs__pool_t *gs__pool_new(int n_threads);
void gs__pool_destroy(gs__pool_t **p);
int gs__pool_n_threads(const gs__pool_t *self);
// gs__pool_run: runs fn on all threads and returns when all are done. Not reentrant.
void gs__pool_run(gs__pool_t *self, gs__pool_fn fn, void *ctx);

// A linear layer's weight as stored: [n_out, n_in] (nn.Linear), F32, F16 or BF16, mmap'd.
typedef struct {
    const void *data;
    gs_dtype_t dtype;
    int n_out, n_in;
} gs__lin_t;

// gs__lin_tile_rows: rows per conversion tile of the batched path (scratch is
// gs__lin_tile_rows * max n_in floats).
enum { GS__LIN_TILE_ROWS = 128, GS__LIN_SMALL_N = 8 };

// gs__lin_forward: out[i, :] = x[i, :] @ W^T for n rows (out row stride n_out). Up to
// GS__LIN_SMALL_N rows: a fused kernel reads the weights once in their own precision; more:
// tiles of rows are converted to float32 into `scratch` and multiplied with SGEMM (F32 weights
// go to SGEMM directly). Allocates nothing.
void gs__lin_forward(gs__pool_t *pool, const gs__lin_t *w, const float *x, int n, float *out,
                     float *scratch);
// gs__lin_forward_ref: plain loops in double (tests).
void gs__lin_forward_ref(const gs__lin_t *w, const float *x, int n, float *out);
// gs__kern_isa: the instruction set the kernels picked ("avx512", "avx2", "scalar").
const char *gs__kern_isa(void);
