// CLIP contrastive encoders (ViT image tower + text transformer) as open_clip and Hugging Face
// transformers define them, loaded from the files their authors publish:
//   - an open_clip hub folder: open_clip_config.json + open_clip_model.safetensors
//     (or open_clip_pytorch_model.bin);
//   - a Hugging Face CLIPModel folder: config.json + model.safetensors, or shards through
//     model.safetensors.index.json, or pytorch_model.bin;
//   - a bare open_clip state dict (.pt / .bin torch zip, or .safetensors), as RemoteCLIP and
//     GeoRSCLIP ship them, with an architecture: an open_clip model name (gs_clip_opts_t.arch,
//     see gs_clip_arch_names) or a config file (gs_clip_opts_t.config_path).
// Hyperparameters come from those files, never from geoscribe's configuration, and every tensor
// shape is checked at open. Weights stay mmap'd (F32 used in place, F16/BF16 converted to F32
// once at open); activations live in one arena sized at open for opts.max_batch, so an encode
// call allocates nothing. Not here: image decoding (jobs/raster.h) and preprocessing
// (model/preprocess.h; gs_clip_preprocess_cfg gives the model's settings).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/preprocess.h"

typedef struct gs_clip gs_clip_t;

// The arithmetic of the big GEMMs. BF16 rounds activations and weights to bfloat16 (float32
// accumulation; AVX-512 BF16 through oneDNN; needs a build with oneDNN): about twice the speed,
// cosine >= 0.999 to the float32 embeddings on the fixtures.
typedef enum { GS_CLIP_PRECISION_F32 = 0, GS_CLIP_PRECISION_BF16 = 1 } gs_clip_precision_t;

// The library behind float32 GEMMs. AUTO: oneDNN's brgemm matmul on weights packed once at open
// where this build has oneDNN and the CPU has AVX-512 (about twice OpenBLAS's GFLOP/s at the
// encoders' shapes; same float32 arithmetic, another summation order: embeddings within ~1e-6),
// OpenBLAS otherwise; the environment variable GS_CLIP_GEMM=openblas|onednn overrides AUTO.
// ONEDNN fails with GS_EUNSUPPORTED where unavailable. The packed copy holds the block weights a
// second time (float32). bf16 precision always runs on oneDNN.
typedef enum {
    GS_CLIP_GEMM_AUTO = 0,
    GS_CLIP_GEMM_OPENBLAS = 1,
    GS_CLIP_GEMM_ONEDNN = 2
} gs_clip_gemm_t;

typedef struct {
    // arch: an open_clip model name for a bare weights file ("ViT-B-32", "ViT-B-32-quickgelu",
    // "ViT-L-14", ...; see gs_clip_arch_names). NULL: the folder's own config (or config_path).
    const char *arch;
    // config_path: an open_clip model config (open_clip_config.json of the hub layout, or a
    // bare model config like open_clip's model_configs/ViT-B-32.json) or an HF config.json.
    // Overrides the folder's config; NULL: none.
    const char *config_path;
    // vocab_path: the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, or vocab.json with
    // merges.txt beside it). NULL: looked up next to the weights. Only text encoding needs it.
    const char *vocab_path;
    int n_threads;  // threads: batches are split into one shard per thread, each with
                    // single-threaded BLAS; a smaller batch runs on one thread with n_threads
                    // BLAS threads (process-wide, set at open); <= 0: 1
    int max_batch;  // images or texts per forward pass (sizes the arena); <= 0: 16
    bool no_shards; // run every batch on one thread with n_threads BLAS threads instead
                    // (for comparisons: bench/encoder --mode blas)
    gs_clip_precision_t precision; // GEMM arithmetic (default F32); BF16 fails with
                                   // GS_EUNSUPPORTED where unavailable
    gs_clip_gemm_t gemm;           // float32 GEMM library (default AUTO)
} gs_clip_opts_t;

// A description of an open model for `geoscribe inspect-model` and provenance records. Strings
// are borrowed from the handle, valid until gs_clip_close.
typedef struct {
    const char *arch;           // "ViT-B-32-quickgelu", "open_clip_config.json", "hf CLIPModel"
    const char *layout;         // "open_clip" or "hf"
    const char *weights_path;   // the file (or index) the weights came from
    const char *config_path;    // the config used, or NULL for a built-in arch
    const char *vocab_path;     // the tokenizer vocabulary found, or NULL
    const char *activation;     // "gelu" or "quick_gelu"
    const char *dtypes;         // the dtypes of the stored weights: "F32", "F16", "BF16,F32"
    const char *precision;      // the GEMM arithmetic: "f32" or "bf16"
    const char *gemm;           // the big GEMMs' library: "openblas" or "onednn (brg:avx512_core)"
    int embed_dim;              // 512
    int image_size, patch_size; // 224, 32
    int vision_width, vision_layers, vision_heads;    // 768, 12, 12
    int vision_mlp;                                   // 3072
    int text_width, text_layers, text_heads;          // 512, 12, 8
    int text_mlp, context_length, vocab_size;         // 2048, 77, 49408
    int64_t n_params, n_params_vision, n_params_text; // 151277313, ...
    float logit_scale;                                // exp(logit_scale) as stored, e.g. 100
} gs_clip_info_t;

// gs_clip_open: opens a model from a folder (layout detected from its files) or a weights file
// (needs opts->arch or opts->config_path). Sets the BLAS thread count. opts may be NULL for the
// defaults. Failures are logged once, naming the file and, for shape or dtype errors, the
// tensor ("tensor \"visual.proj\" in \"m.pt\": expected shape [768, 512], found [...]").
// Returns GS_ENOTFOUND (missing file, unknown arch), GS_EFORMAT (malformed or mismatched
// files), GS_EUNSUPPORTED (an architecture option geoscribe does not implement), GS_EIO,
// GS_ENOMEM, GS_EINVAL (bad options). The caller owns *out (gs_clip_close).
gs_err gs_clip_open(const char *path, const gs_clip_opts_t *opts, gs_clip_t **out);
// gs_clip_close: frees the arena, unmaps the weights; NULLs *p; accepts NULL.
void gs_clip_close(gs_clip_t **p);

// gs_clip_arch_names: the built-in open_clip architecture names, NULL-terminated; static.
const char *const *gs_clip_arch_names(void);
// gs_clip_guess_arch: the built-in arch names whose tensor shapes (patch embedding, positions,
// layer counts, text width and projection) match the open_clip state dict at `path`, joined
// with ", " into out ("" when none). Shapes cannot tell GELU from QuickGELU (both variants are
// listed) nor the head count. GS_EINVAL, or the errors of gs_weights_open. Thread-safe.
gs_err gs_clip_guess_arch(const char *path, char *out, size_t out_nbytes);

// Getters; thread-safe.
int gs_clip_dim(const gs_clip_t *self);            // embedding size, e.g. 512
int gs_clip_image_size(const gs_clip_t *self);     // input side in pixels, e.g. 224
int gs_clip_context_length(const gs_clip_t *self); // text tokens, e.g. 77
int gs_clip_max_batch(const gs_clip_t *self);
bool gs_clip_has_text(const gs_clip_t *self); // false when no vocabulary was found
// gs_clip_preprocess_cfg: the image preprocessing this model expects (size, crop rule of its
// family, mean/std from its files).
gs_preprocess_cfg_t gs_clip_preprocess_cfg(const gs_clip_t *self);
// gs_clip_logit_scale: exp(logit_scale), the multiplier of the cosine logits (e.g. 100).
float gs_clip_logit_scale(const gs_clip_t *self);
// gs_clip_describe: fills *out (borrowed strings, valid until close).
void gs_clip_describe(const gs_clip_t *self, gs_clip_info_t *out);
// gs_clip_model_id: a 16-hex-digit identity of the model for provenance: a 64-bit hash over
// every tensor's name, dtype, shape and bytes (sorted by name, so the same state dict gives the
// same id from .pt and .safetensors) and the architecture options not stored in the weights
// (activation, pooling) and the precision. Computed on the first call (reads all weights once:
// about 0.1 s per GB); borrowed string valid until close. Not thread-safe on the first call.
const char *gs_clip_model_id(gs_clip_t *self);

// gs_clip_encode_images: n images of preprocessed pixels (n x 3 x S x S floats, S =
// gs_clip_image_size, channel-major) -> out (n x gs_clip_dim floats), L2-normalised when
// `normalize` is set, else the raw projected features. Any n >= 0: batches of max_batch are run
// in turn. Allocates nothing. GS_EINVAL for n < 0 or NULL pointers. Not thread-safe: one call at
// a time per handle (the arena is shared).
gs_err gs_clip_encode_images(gs_clip_t *self, const float *pixels_chw, int n, bool normalize,
                             float *out);
// gs_clip_encode_tokens: n token sequences (n x gs_clip_context_length ids, as
// gs_clip_tokenize writes them) -> out (n x dim). GS_EINVAL for ids outside the vocabulary.
// Not thread-safe (as above).
gs_err gs_clip_encode_tokens(gs_clip_t *self, const int32_t *ids, int n, bool normalize,
                             float *out);
// gs_clip_encode_texts: tokenizes and encodes n UTF-8 texts (longer ones are truncated to the
// context length, as open_clip does). GS_ENOTFOUND (logged with a hint) when the model has no
// vocabulary. Not thread-safe.
gs_err gs_clip_encode_texts(gs_clip_t *self, const char *const *texts, int n, bool normalize,
                            float *out);
// gs_clip_tokenize: open_clip's tokenization of `text` into out_ids (gs_clip_context_length
// ids: start, tokens, end, zero padding). *out_n_tokens (may be NULL): ids before padding;
// *out_n_untruncated (may be NULL): the count before truncation. GS_ENOTFOUND without a
// vocabulary, GS_EINVAL for invalid arguments. Thread-safe.
gs_err gs_clip_tokenize(const gs_clip_t *self, const char *text, int32_t *out_ids,
                        int *out_n_tokens, int *out_n_untruncated);
// gs_clip_token_str: the BPE string of a token id ("planes</w>", "<start_of_text>") for display,
// or NULL (no vocabulary, id out of range). Borrowed, valid until close. Thread-safe.
const char *gs_clip_token_str(const gs_clip_t *self, int32_t id);
