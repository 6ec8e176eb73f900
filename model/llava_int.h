// LLaVA internals shared inside model/ (llava*.c) and with the golden tests and fuzz targets:
// the LlavaConfig and generation_config.json readers, and a probe hook that sees every
// intermediate tensor of a caption call. Module-private.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/llama_int.h"
#include "model/llava.h"

#define GS__LLAVA_MAX_EOS 8

// transformers LlavaConfig v4.40 (example values: llava-hf/llava-1.5-7b-hf).
typedef struct {
    gs__llama_hparams_t text; // text_config (LlamaConfig defaults for omitted keys)
    char *vision_json;        // vision_config as JSON text (owned, gs_free), for the CLIP reader
    int image_token_index;    // 32000
    int pad_token_id;         // 32001, -1 when none
    int vision_feature_layer; // -2 (hidden_states index; negative counts from the end)
    bool select_full;         // vision_feature_select_strategy "full" (true) or "default"
    // generation_config.json (falls back to text_config's ids)
    int bos_id;                     // 1
    int eos_ids[GS__LLAVA_MAX_EOS]; // 2
    int n_eos;
} gs__llava_config_t;

// gs__llava_config_parse: a LlavaConfig as JSON text (config.json), with v4.40 defaults (the
// default vision tower is CLIP ViT-L/14 at 336 px). GS_EFORMAT (malformed JSON or values),
// GS_EUNSUPPORTED (a non-CLIP vision tower, a non-LLaMA text model, a projector activation
// other than gelu, several feature layers, a select strategy other than default/full), logged
// naming `what`. On success the caller owns out->vision_json (gs__llava_config_cleanup).
gs_err gs__llava_config_parse(const char *json_text, size_t nbytes, const char *what,
                              gs__llava_config_t *out);
// gs__llava_genconfig_parse: generation_config.json: bos_token_id, eos_token_id (an id or a
// list) into *inout. GS_EFORMAT, logged.
gs_err gs__llava_genconfig_parse(const char *json_text, size_t nbytes, const char *what,
                                 gs__llava_config_t *inout);
// gs__llava_config_cleanup: frees vision_json; the struct may be parsed into again.
void gs__llava_config_cleanup(gs__llava_config_t *c);

// A probe sees, for each caption or generate call, named float tensors (rows x cols):
//   "vision.<name>"             CLIP trace of the first image ("embed", "ln_pre_out",
//                               "block<k>_out", ...; see clip_int.h), rows = tokens
//   "vision_selected_features"  n_images * n_patches rows of vision width
//   "image_features"            projector output, n_images * n_patches rows of text width
//   "inputs_embeds_merged"      the decoder input of step 0
//   "lm.<name>"                 decoder activations of step 0 (see gs__llama_probe_fn), with
//                               the layer number in `layer`
//   "logits"                    each generation step's logits (rows = sequences; step in
//                               `layer`), before any processing
typedef void (*gs__llava_probe_fn)(void *ud, const char *name, int layer, const float *data,
                                   int n_rows, int n_cols);
// gs__llava_set_probe: installs (or with NULL removes) the probe. Not thread-safe.
void gs__llava_set_probe(gs_llava_t *self, gs__llava_probe_fn fn, void *ud);
// gs__llava_decoder / gs__llava_vision: the language model and the CLIP tower (borrowed, valid
// until close).
gs_llama_t *gs__llava_decoder(gs_llava_t *self);
struct gs_clip *gs__llava_vision(gs_llava_t *self);

// ---- decoding (llava_gen.c) ---------------------------------------------------------------

// The decoding workspace: buffers sized at open for max_beams sequences (llava.c fills it).
typedef struct {
    gs_llama_t *lm;
    int vocab, dim, n_ctx, max_beams;
    int eos_ids[GS__LLAVA_MAX_EOS];
    int n_eos;
    float *logits;             // (max_beams, vocab)
    float *embeds;             // (max_beams, dim) embeddings of the newest tokens
    gs__llama_seq_t *seq[2];   // (max_beams) each: this step's beams and the next step's
    int32_t *hist[2];          // (max_beams, n_ctx) generated tokens of each beam
    float *beam_scores;        // (max_beams)
    int32_t *hyp_tokens;       // (max_beams, n_ctx) finished hypotheses
    int *hyp_len;              // (max_beams)
    float *hyp_score;          // (max_beams)
    int64_t *hyp_order;        // (max_beams) insertion order (ties: the latest wins)
    float *cand_score;         // (max_beams * (1 + GS__LLAVA_MAX_EOS)) top candidates
    int *cand_beam, *cand_tok; // (same)
    float *work;               // (vocab) sampling
    int32_t *work_idx;         // (vocab)
    gs__llava_probe_fn probe;
    void *probe_ud;
} gs__llava_dec_t;

// gs__llava_dec_run: generation after a prompt of L embeddings (n_prompt_ids: the length of
// the prompt in ids, which transformers' beam scorer counts lengths from). The decoder's cache
// is reset first. Writes the generated ids (EOS included) to out (cap) and their count.
// GS_EINVAL (bad parameters), GS_ETOOBIG (the cache cannot hold it). Allocates nothing.
gs_err gs__llava_dec_run(gs__llava_dec_t *d, const float *embeds, int L, int n_prompt_ids,
                         const gs_llava_gen_t *g, int32_t *out, int cap, int *out_n);
