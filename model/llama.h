// The LLaMA decoder (transformers' LlamaForCausalLM, v4.40 semantics): RMSNorm, rotary position
// embeddings in the Hugging Face rotate-half layout (rope_theta; linear and dynamic-NTK scaling),
// grouped-query attention, SwiGLU MLP, tied or untied lm_head, and a KV cache.
//
// Weights stay mmap'd: F32 is used in place; F16 and BF16 are never converted wholesale (a 7B
// model in 16 bits must run in 24 GiB) but read in half precision by the kernels, which convert
// small blocks on the fly. The KV cache and every activation live in one arena sized at open,
// so evaluation allocates nothing. This header is the text-only decoder (benchmarks, tests);
// the LLaVA captioner (model/llava.h) drives the same decoder with image features.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct gs_llama gs_llama_t;

typedef struct {
    int n_threads; // threads of the decoder's kernels and of BLAS (process-wide); <= 0: 1
    int n_ctx;     // KV cache rows: tokens held at once, over all sequences (beams). <= 0:
                   // min(max_position_embeddings, 4096)
    int n_batch;   // tokens per internal forward chunk (sizes the activations); <= 0: 512
    int n_seq_max; // sequences decoded side by side (beam search); <= 0: 1
} gs_llama_opts_t;

// Model dimensions, for descriptions and benchmarks (example values: LLaMA-2-7B).
typedef struct {
    int vocab_size;                  // 32000
    int dim;                         // 4096 (hidden_size)
    int n_layers;                    // 32
    int n_heads;                     // 32
    int n_kv_heads;                  // 32 (fewer with grouped-query attention)
    int head_dim;                    // 128
    int hidden_dim;                  // 11008 (intermediate_size)
    int n_ctx;                       // the KV cache size chosen at open
    const char *dtype;               // storage type of the linear weights: "F32", "F16", "BF16"
    int64_t weight_nbytes_per_token; // bytes of weights read per decoded token (all linears
                                     // and lm_head; not the embedding row)
} gs_llama_info_t;

// gs_llama_open: a LlamaForCausalLM folder (config.json + model.safetensors or a sharded
// model.safetensors.index.json, tensor names "model.*" and "lm_head.weight"). Every tensor
// shape is checked. Sets the BLAS thread count. opts may be NULL. Returns GS_ENOTFOUND (missing
// file or tensor), GS_EFORMAT (malformed or mismatched files), GS_EUNSUPPORTED (an unknown
// rope_scaling type, an activation other than silu, ...), GS_EIO, GS_ENOMEM (the arena), logged
// once. The caller owns *out (gs_llama_close).
gs_err gs_llama_open(const char *dir, const gs_llama_opts_t *opts, gs_llama_t **out);
// gs_llama_close: frees the arena, unmaps the weights; NULLs *p; accepts NULL.
void gs_llama_close(gs_llama_t **p);

// gs_llama_describe: dimensions of the open model. Thread-safe.
void gs_llama_describe(const gs_llama_t *self, gs_llama_info_t *out);

// gs_llama_eval: appends n tokens to the model's sequence (positions continue from the last
// call) and writes the logits of the last one (vocab_size floats) to out_logits (may be NULL).
// Prompts longer than n_batch are run in chunks. Allocates nothing. GS_EINVAL (ids outside the
// vocabulary, n < 1), GS_ETOOBIG (the KV cache is full; nothing was appended). Not thread-safe.
gs_err gs_llama_eval(gs_llama_t *self, const int32_t *ids, int n, float *out_logits);
// gs_llama_reset: forget the sequence (empty KV cache).
void gs_llama_reset(gs_llama_t *self);
