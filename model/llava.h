// The LLaVA-1.5 captioner (transformers' LlavaForConditionalGeneration, v4.40 semantics): a CLIP
// vision tower read at vision_feature_layer, a two-layer GELU projector, and a LLaMA decoder
// (model/llama.h). Captions, questions (VQA) and two-image change captions are one call: the
// prompt holds one <image> per image, and each <image> is replaced by that image's projected
// patch features. Decoding is greedy by default (token-for-token equal to transformers),
// with beam search and temperature / top-k / top-p sampling as options.
//
// Loads the Hugging Face layout: config.json (+ generation_config.json), model.safetensors or
// a sharded model.safetensors.index.json (F32, F16, BF16), tokenizer.model with
// tokenizer_config.json / added_tokens.json, preprocessor_config.json. Weights stay mmap'd;
// the decoder computes from 16-bit weights directly (the vision tower's are converted to
// float32 once, being small). Not here: reading image files (jobs/raster.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct gs_llava gs_llava_t;

typedef struct {
    int n_threads;  // decoder kernels and BLAS (process-wide); <= 0: 1
    int n_ctx;      // decoder KV cache rows (prompt + image features + generated tokens, over
                    // all beams); <= 0: min(max_position_embeddings, 2048). float32: a 7B
                    // model's cache takes 1 MiB per row
    int max_images; // images per call; <= 0: 2
    int max_beams;  // the largest num_beams accepted; <= 0: 4
} gs_llava_opts_t;

// Decoding parameters (transparent value struct; gs_llava_gen_defaults gives greedy).
typedef struct {
    int max_new_tokens;   // tokens generated at most (EOS included); 64 by default
    int num_beams;        // > 1: beam search (transformers BeamSearchScorer semantics)
    float length_penalty; // beam scores are sum(logprob) / generated_len^length_penalty; 1
    bool early_stopping;  // beam search stops once num_beams hypotheses are finished; false
    bool do_sample;       // sample instead of argmax (num_beams must be 1)
    float temperature;    // logits / temperature before sampling; 1
    int top_k;            // keep the k most likely tokens (0: all); 50 as in transformers
    float top_p;          // nucleus: the smallest set with probability >= top_p; 1 (off)
    uint64_t seed;        // the sampler's random stream (not torch's: samples differ)
} gs_llava_gen_t;

// gs_llava_gen_defaults: greedy decoding of up to 64 tokens.
gs_llava_gen_t gs_llava_gen_defaults(void);

// An 8-bit RGB image, HWC, row-major, w*h*3 bytes (borrowed for the call).
typedef struct {
    const uint8_t *rgb;
    int w, h;
} gs_llava_image_t;

// gs_llava_open: opens a model folder. Every tensor shape is checked; truncated or mismatched
// files are refused. Sets the BLAS thread count. opts may be NULL. Returns GS_ENOTFOUND
// (missing file or tensor), GS_EFORMAT (malformed files), GS_EUNSUPPORTED (an architecture
// option geoscribe does not implement), GS_EIO, GS_ENOMEM; logged once. The caller owns *out.
gs_err gs_llava_open(const char *dir, const gs_llava_opts_t *opts, gs_llava_t **out);
// gs_llava_close: frees everything; NULLs *p; accepts NULL.
void gs_llava_close(gs_llava_t **p);

// gs_llava_image_size: the side of the model's input images (336 for LLaVA-1.5).
int gs_llava_image_size(const gs_llava_t *self);
// gs_llava_n_vocab: logits per step (32064 for llava-hf).
int gs_llava_n_vocab(const gs_llava_t *self);
// gs_llava_model_id: a 16-hex-digit identity of the model (a hash of config.json and every
// tensor's name, dtype, shape and bytes), for provenance. Computed on the first call (reads
// all weights once); borrowed, valid until close. Not thread-safe on the first call.
const char *gs_llava_model_id(gs_llava_t *self);

// gs_llava_prompt: the LLaVA-1.5 chat template "USER: <image>\n...<image>\n{question}
// ASSISTANT:" with one <image> per image; question NULL: "Describe this image." for one image,
// "Describe what changed from the first image to the second image." for two or more.
// Appends to out; GS_ETOOBIG / GS_ENOMEM from the buffer. Thread-safe.
gs_err gs_llava_prompt(const char *question, int n_images, gs_buf_t *out);

// gs_llava_tokenize: the prompt's ids as transformers' LlamaTokenizer gives them (BOS, one
// 32000 per <image>). GS_ETOOBIG when more than cap ids. Thread-safe.
gs_err gs_llava_tokenize(const gs_llava_t *self, const char *prompt, int32_t *out_ids, size_t cap,
                         size_t *out_n);
// gs_llava_decode: the text of generated ids (special tokens skipped; ids without a piece,
// 32002.. of the padded vocabulary, give nothing). Appends to out. Thread-safe.
gs_err gs_llava_decode(const gs_llava_t *self, const int32_t *ids, size_t n, gs_buf_t *out);

// gs_llava_preprocess: one image to the model's input pixels (3 x S x S floats, S =
// gs_llava_image_size) with its CLIPImageProcessor settings. GS_EINVAL for bad sizes,
// GS_ENOMEM. Thread-safe.
gs_err gs_llava_preprocess(const gs_llava_t *self, const gs_llava_image_t *img, float *out_chw);

// gs_llava_generate: generation from prompt ids and preprocessed pixels (n_images x 3 x S x S).
// `ids` holds one image token per image (transformers <= 4.43) or that token repeated once per
// image patch (the expanded form of later processors); both give the same sequence. Writes
// the generated ids (EOS included when it was produced) to out_ids, at most cap, and their
// count to *out_n. Returns GS_EINVAL (image tokens do not match n_images, bad parameters),
// GS_ETOOBIG (prompt + generation exceed the KV cache), GS_ENOMEM. Allocates nothing for
// greedy decoding. Not thread-safe: one call at a time per handle.
gs_err gs_llava_generate(gs_llava_t *self, const int32_t *ids, size_t n_ids,
                         const float *pixels_chw, int n_images, const gs_llava_gen_t *gen,
                         int32_t *out_ids, int cap, int *out_n);

// gs_llava_caption: preprocess, prompt (raw_prompt verbatim, else prompt wrapped by
// gs_llava_prompt; NULL for the default question), generate and decode. out_text (may be
// NULL) gets the text appended. Errors as above. Not thread-safe.
gs_err gs_llava_caption(gs_llava_t *self, const gs_llava_image_t *images, int n_images,
                        const char *prompt, bool raw_prompt, const gs_llava_gen_t *gen,
                        int32_t *out_ids, int cap, int *out_n, gs_buf_t *out_text);
