// CLIP internals shared inside model/: the hyperparameters (clip_config.c reads them from
// open_clip / HF configs and the built-in arch table), a vision tower opened from any weight set
// under a name prefix (LLaVA's CLIP tower lives inside the LLaVA checkpoint), hidden states
// after a given vision layer (LLaVA's feature layer), and a trace hook the golden tests use to
// read every intermediate activation. Module-private: nothing outside model/ includes this.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model/clip.h"
#include "model/weights.h"

typedef enum { GS__CLIP_LAYOUT_OPENCLIP = 0, GS__CLIP_LAYOUT_HF = 1 } gs__clip_layout_t;
typedef enum { GS__CLIP_ACT_GELU = 0, GS__CLIP_ACT_QUICK_GELU = 1 } gs__clip_act_t;

// The hyperparameters of one CLIP model (example values: ViT-B/32).
typedef struct {
    gs__clip_layout_t layout; // open_clip or HF tensor names
    int embed_dim;            // 512 (open_clip embed_dim, HF projection_dim)
    // vision tower; has_vision false leaves the rest zero
    bool has_vision;
    int image_size, patch_size;            // 224, 32 (grid = image_size / patch_size)
    int v_width, v_layers, v_heads, v_mlp; // 768, 12, 12, 3072
    gs__clip_act_t v_act;                  // GELU (erf) or QuickGELU
    float v_eps;                           // LayerNorm eps, 1e-5
    // text tower; has_text false leaves the rest zero
    bool has_text;
    int context_length, vocab_size;        // 77, 49408
    int t_width, t_layers, t_heads, t_mlp; // 512, 12, 8, 2048
    gs__clip_act_t t_act;
    float t_eps;
    bool pool_argmax; // pool at argmax(ids) (open_clip, HF legacy eos 2) ...
    int eos_token_id; // ... or at the first id == eos_token_id (HF), 49407
    // preprocessing (from preprocess_cfg / preprocessor_config.json)
    gs_preprocess_cfg_t pre;
    char arch[64]; // "ViT-B-32-quickgelu", or a description of the config used
} gs__clip_hparams_t;

// gs__clip_arch_lookup: the hyperparameters of a built-in open_clip arch name (with an optional
// "-quickgelu" suffix). GS_ENOTFOUND (not logged) for an unknown name.
gs_err gs__clip_arch_lookup(const char *name, gs__clip_hparams_t *out);
// gs__clip_config_read: reads an open_clip config (hub open_clip_config.json with model_cfg and
// preprocess_cfg, or a bare model config) or an HF config.json (CLIPModel, or a CLIP vision /
// text config), filling defaults as open_clip v2.32 / transformers v4.40 do. For HF folders the
// preprocessing comes from preprocessor_config.json next to the config when present.
// GS_EIO, GS_EFORMAT, GS_EUNSUPPORTED (options geoscribe does not implement); logged with the
// path and the key.
gs_err gs__clip_config_read(const char *path, gs__clip_hparams_t *out);
// gs__clip_hparams_hf_vision: the hyperparameters of a CLIP vision tower from a JSON object
// text of transformers' CLIPVisionConfig (as nested in LLaVA's config.json "vision_config"),
// with transformers' defaults. GS_EFORMAT / GS_EUNSUPPORTED, logged naming `what`.
gs_err gs__clip_hparams_hf_vision(const char *json_text, const char *what, gs__clip_hparams_t *out);
// gs__clip_hparams_hf_preprocessor: mean/std/size/crop of a preprocessor_config.json into
// out->pre. GS_EIO / GS_EFORMAT / GS_EUNSUPPORTED, logged.
gs_err gs__clip_hparams_hf_preprocessor(const char *path, gs__clip_hparams_t *out);

// gs__clip_open_weights: builds a model over an open weight set. Tensor names are looked up
// under `prefix` ("" for CLIP checkpoints, "vision_tower." for LLaVA). When `own_weights` is
// true the model closes *w (and NULLs it) when it is closed, also on failure; otherwise the
// weight set must outlive the model. hp->has_text / has_vision select the towers to bind.
// Every shape is checked (gs_weights_expect). opts: n_threads and max_batch (may be NULL).
// Errors as gs_clip_open.
gs_err gs__clip_open_weights(gs_weights_t **w, bool own_weights, const char *prefix,
                             const gs__clip_hparams_t *hp, const gs_clip_opts_t *opts,
                             gs_clip_t **out);

// gs__clip_vision_hidden: the vision tower's hidden states for n images (pixels as
// gs_clip_encode_images), in transformers' hidden_states numbering: layer 0 is the output of
// the embeddings + pre-LayerNorm (ln_pre), layer k the output of transformer layer k
// (1..v_layers). No post-LayerNorm, no projection. out: n x n_tokens x v_width floats, n_tokens =
// (image_size / patch_size)^2 + 1 with the class token first. GS_EINVAL for a layer outside
// 0..v_layers or a model without a vision tower. Allocates nothing; not thread-safe.
gs_err gs__clip_vision_hidden(gs_clip_t *self, const float *pixels_chw, int n, int layer,
                              float *out);
// gs__clip_hparams: the model's hyperparameters; borrowed, valid until close.
const gs__clip_hparams_t *gs__clip_hparams(const gs_clip_t *self);

// A trace callback receives each intermediate activation of a forward pass: `name` is one of
// vision: "patch_tokens" (n*g*g x width, conv1 output as tokens), "embed" (ln_pre input),
//         "ln_pre_out", "block<k>_out" (k from 0), "ln_post_out" (all tokens; open_clip layout
//         only), "pooled" (n x width, post-LN class token);
// text:   "embed", "block<k>_out", "ln_final_out" (n*L rows: a batch runs only up to its
//         longest text, L = the last pooling position + 1), "pooled" (n x width, the
//         ln_final row at the pooling position);
// with `tower` "vision" or "text". Rows are `ld` floats apart. Used by the golden tests only:
// tracing computes the extra all-token LayerNorms.
typedef void (*gs__clip_trace_fn)(void *ud, const char *tower, const char *name, const float *data,
                                  int n_rows, int n_cols, int ld);
// gs__clip_set_trace: installs (or, with NULL, removes) the trace callback.
void gs__clip_set_trace(gs_clip_t *self, gs__clip_trace_fn fn, void *ud);
