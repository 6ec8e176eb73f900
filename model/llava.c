// The LLaVA captioner: opening a Hugging Face LlavaForConditionalGeneration folder (config,
// tokenizer, weights, preprocessing), the image path (CLIP hidden states at
// vision_feature_layer, CLS dropped or kept, projector linear-GELU-linear), the v4.40 merge of
// image features into the prompt, and the caption API. Decoding strategies are in
// llava_gen.c, the decoder in llama.c, the CLIP tower in clip*.c.
#define GS_LOG_MODULE "model"
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/clip_int.h"
#include "model/llava_int.h"
#include "model/ops.h"
#include "model/preprocess.h"
#include "model/spm.h"

#define CONFIG_MAX_NBYTES (4u << 20)
#define MAX_PROMPT_IDS 8192

struct gs_llava {
    gs__llava_config_t cfg;
    char *config_text; // config.json as read (hashed into the model id)
    gs_weights_t *w;
    gs_spm_t *tok;
    gs_clip_t *clip;
    gs__clip_hparams_t vhp;
    gs_llama_t *lm;
    gs__lin_t proj1, proj2;   // (text_dim, v_width), (text_dim, text_dim)
    float *proj_b1, *proj_b2; // (text_dim) each, NULL without bias
    int image_size;           // 336
    int n_tok_img;            // CLIP tokens per image (patches + CLS), 577
    int n_feat;               // features per image after selection (576 default, 577 full)
    int v_width, text_dim;    // 1024, 4096
    int vision_layer;         // hidden_states index (0..v_layers)
    int max_images, n_ctx;
    gs__pool_t *pool; // for the projector
    void *mem;        // buffers below, one allocation
    float *hidden;    // (max_images, n_tok_img, v_width)
    float *selected;  // (max_images * n_feat, v_width)
    float *feats;     // (max_images * n_feat, text_dim)
    float *embeds;    // (max(n_ctx, max_images * n_feat), text_dim) the merged prompt
    float *pixels;    // (max_images, 3, S, S) for gs_llava_caption
    float *scratch;   // (GS__LIN_TILE_ROWS, max(v_width, text_dim))
    int32_t *ids;     // (MAX_PROMPT_IDS) for gs_llava_caption
    gs__llava_dec_t dec;
    gs__llava_probe_fn probe;
    void *probe_ud;
    char model_id[17];
    bool have_model_id;
};

// ---- opening ------------------------------------------------------------------------------

static void *carve(void *mem, size_t *off, size_t nbytes)
{
    size_t at = (*off + 63) & ~(size_t)63;
    *off = at + nbytes;
    return mem ? (char *)mem + at : NULL;
}

static void carve_all(gs_llava_t *self, size_t *off)
{
    void *m = self->mem;
    size_t f = sizeof(float), mi = (size_t)self->max_images, nb = (size_t)self->dec.max_beams;
    size_t V = (size_t)self->dec.vocab, C = (size_t)self->n_ctx;
    int max_in = self->v_width > self->text_dim ? self->v_width : self->text_dim;
    self->hidden = carve(m, off, mi * self->n_tok_img * self->v_width * f);
    self->selected = carve(m, off, mi * self->n_feat * self->v_width * f);
    self->feats = carve(m, off, mi * self->n_feat * self->text_dim * f);
    size_t emb_rows = C > mi * self->n_feat ? C : mi * self->n_feat; // also the projector's
    self->embeds = carve(m, off, emb_rows * self->text_dim * f);     // hidden layer
    self->pixels = carve(m, off, mi * 3 * self->image_size * self->image_size * f);
    self->scratch = carve(m, off, (size_t)GS__LIN_TILE_ROWS * max_in * f);
    self->ids = carve(m, off, MAX_PROMPT_IDS * sizeof(int32_t));
    gs__llava_dec_t *d = &self->dec;
    d->logits = carve(m, off, nb * V * f);
    d->embeds = carve(m, off, nb * self->text_dim * f);
    for (int k = 0; k < 2; k++) {
        d->seq[k] = carve(m, off, nb * sizeof(gs__llama_seq_t));
        d->hist[k] = carve(m, off, nb * C * sizeof(int32_t));
        for (size_t i = 0; m && i < nb; i++) {
            d->seq[k][i].rows = carve(m, off, C * sizeof(int32_t));
            d->seq[k][i].cap = (int)C;
            d->seq[k][i].len = 0;
        }
        if (!m)
            for (size_t i = 0; i < nb; i++)
                carve(m, off, C * sizeof(int32_t));
    }
    d->beam_scores = carve(m, off, nb * f);
    d->hyp_tokens = carve(m, off, nb * C * sizeof(int32_t));
    d->hyp_len = carve(m, off, nb * sizeof(int));
    d->hyp_score = carve(m, off, nb * f);
    d->hyp_order = carve(m, off, nb * sizeof(int64_t));
    size_t nc = nb * (1 + GS__LLAVA_MAX_EOS);
    d->cand_score = carve(m, off, nc * f);
    d->cand_beam = carve(m, off, nc * sizeof(int));
    d->cand_tok = carve(m, off, nc * sizeof(int));
    d->work = carve(m, off, V * f);
    d->work_idx = carve(m, off, V * sizeof(int32_t));
}

static gs_err read_text(const char *dir, const char *name, bool required, char **out, size_t *out_n)
{
    char *path = gs_path_join(dir, name);
    *out = NULL;
    *out_n = 0;
    gs_err err = GS_OK;
    if (!required && !gs_path_exists(path))
        goto out;
    err = gs_read_file(path, CONFIG_MAX_NBYTES, out, out_n);
    if (err == GS_EIO && !gs_path_exists(path))
        err = GS_ENOTFOUND;
out:
    gs_free(path);
    return err;
}

static gs_err read_configs(gs_llava_t *self, const char *dir)
{
    size_t n;
    GS_TRY(read_text(dir, "config.json", true, &self->config_text, &n));
    char *what = gs_path_join(dir, "config.json");
    gs_err err = gs__llava_config_parse(self->config_text, n, what, &self->cfg);
    gs_free(what);
    GS_TRY(err);
    char *gen = NULL;
    GS_TRY(read_text(dir, "generation_config.json", false, &gen, &n));
    if (gen) {
        what = gs_path_join(dir, "generation_config.json");
        err = gs__llava_genconfig_parse(gen, n, what, &self->cfg);
        gs_free(what);
        gs_free(gen);
    }
    return err;
}

// open_vision: the CLIP tower under "vision_tower." of the LLaVA weights, and the
// preprocessing of preprocessor_config.json.
static gs_err open_vision(gs_llava_t *self, const char *dir, int n_threads)
{
    char *what = gs_path_join(dir, "config.json");
    gs_err err = gs__clip_hparams_hf_vision(self->cfg.vision_json, what, &self->vhp);
    gs_free(what);
    GS_TRY(err);
    self->vhp.has_vision = true;
    self->vhp.has_text = false;
    self->vhp.pre = gs_preprocess_cfg_openai(self->vhp.image_size, GS_CROP_HF);
    char *pp = gs_path_join(dir, "preprocessor_config.json");
    if (gs_path_exists(pp))
        err = gs__clip_hparams_hf_preprocessor(pp, &self->vhp);
    gs_free(pp);
    GS_TRY(err);
    if (self->vhp.pre.size != self->vhp.image_size) {
        GS_LOG_ERROR("\"%s\": preprocessor crop size %d differs from the vision tower's image "
                     "size %d",
                     dir, self->vhp.pre.size, self->vhp.image_size);
        return GS_EFORMAT;
    }
    int L = self->vhp.v_layers, fl = self->cfg.vision_feature_layer;
    self->vision_layer = fl < 0 ? L + 1 + fl : fl;
    if (self->vision_layer < 0 || self->vision_layer > L) {
        GS_LOG_ERROR("\"%s\": vision_feature_layer %d is outside the %d hidden states", dir, fl,
                     L + 1);
        return GS_EFORMAT;
    }
    gs_clip_opts_t co = {.n_threads = n_threads, .max_batch = self->max_images};
    GS_TRY(gs__clip_open_weights(&self->w, false, "vision_tower.", &self->vhp, &co, &self->clip));
    int grid = self->vhp.image_size / self->vhp.patch_size;
    self->image_size = self->vhp.image_size;
    self->n_tok_img = grid * grid + 1;
    self->n_feat = self->cfg.select_full ? self->n_tok_img : self->n_tok_img - 1;
    self->v_width = self->vhp.v_width;
    return GS_OK;
}

static gs_err bind_projector(gs_llava_t *self)
{
    const gs_tensor_t *t;
    int64_t s1[2] = {self->text_dim, self->v_width}, s2[2] = {self->text_dim, self->text_dim};
    GS_TRY(gs_weights_expect(self->w, "multi_modal_projector.linear_1.weight", 2, s1, 0, &t));
    self->proj1 = (gs__lin_t){t->data, t->dtype, self->text_dim, self->v_width};
    GS_TRY(gs_weights_expect(self->w, "multi_modal_projector.linear_2.weight", 2, s2, 0, &t));
    self->proj2 = (gs__lin_t){t->data, t->dtype, self->text_dim, self->text_dim};
    static const char *bias[2] = {"multi_modal_projector.linear_1.bias",
                                  "multi_modal_projector.linear_2.bias"};
    float **dst[2] = {&self->proj_b1, &self->proj_b2};
    int64_t sb[1] = {self->text_dim};
    for (int i = 0; i < 2; i++) {
        if (!gs_weights_get(self->w, bias[i]))
            continue; // multimodal_projector_bias = false
        GS_TRY(gs_weights_expect(self->w, bias[i], 1, sb, 0, &t));
        *dst[i] = gs_xmalloc((size_t)self->text_dim * sizeof(float));
        GS_TRY(gs_tensor_to_f32(t, 0, self->text_dim, *dst[i]));
    }
    return GS_OK;
}

static gs_err open_weights(gs_llava_t *self, const char *dir)
{
    static const char *names[] = {"model.safetensors", "model.safetensors.index.json",
                                  "pytorch_model.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = gs_path_join(dir, names[i]);
        gs_err err = gs_path_exists(p) ? gs_weights_open(p, &self->w) : GS_ENOTFOUND;
        gs_free(p);
        if (err != GS_ENOTFOUND)
            return err;
    }
    GS_LOG_ERROR("no weights in \"%s\" (model.safetensors, model.safetensors.index.json or "
                 "pytorch_model.bin)",
                 dir);
    return GS_ENOTFOUND;
}

static gs_err open_all(gs_llava_t *self, const char *dir, const gs_llava_opts_t *o)
{
    int n_threads = o->n_threads > 0 ? o->n_threads : 1;
    GS_TRY(read_configs(self, dir));
    GS_TRY(gs_spm_open_dir(dir, &self->tok));
    GS_TRY(open_weights(self, dir));
    GS_TRY(open_vision(self, dir, n_threads));
    const gs__llama_hparams_t *hp = &self->cfg.text;
    self->text_dim = hp->dim;
    GS_TRY(bind_projector(self));
    // 2048 rows hold two 336-px images (2 x 576 features), the text and a long answer; a 7B
    // model's float32 cache is 2 GiB at that size
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : (hp->max_pos < 2048 ? hp->max_pos : 2048);
    gs_llama_opts_t lo = {
        .n_threads = n_threads, .n_ctx = n_ctx, .n_seq_max = o->max_beams > 0 ? o->max_beams : 4};
    GS_TRY(gs__llama_open_weights(self->w, "language_model.", hp, &lo, &self->lm));
    self->n_ctx = gs__llama_n_ctx(self->lm);
    self->pool = gs__pool_new(n_threads);
    gs__llava_dec_t *d = &self->dec;
    d->lm = self->lm;
    d->vocab = hp->vocab_size;
    d->dim = hp->dim;
    d->n_ctx = self->n_ctx;
    d->max_beams = lo.n_seq_max;
    d->n_eos = self->cfg.n_eos;
    memcpy(d->eos_ids, self->cfg.eos_ids, sizeof d->eos_ids);
    size_t nbytes = 0;
    carve_all(self, &nbytes);
    self->mem = gs_tryalloc_aligned(64, nbytes + 64);
    if (!self->mem) {
        GS_LOG_ERROR("captioner: out of memory for %.1f MiB of buffers", nbytes / 1048576.0);
        return GS_ENOMEM;
    }
    nbytes = 0;
    carve_all(self, &nbytes);
    return GS_OK;
}

gs_err gs_llava_open(const char *dir, const gs_llava_opts_t *opts, gs_llava_t **out)
{
    *out = NULL;
    gs_llava_opts_t o = opts ? *opts : (gs_llava_opts_t){0};
    gs_llava_t *self = gs_xcalloc(1, sizeof *self);
    self->max_images = o.max_images > 0 ? o.max_images : 2;
    gs_err err = open_all(self, dir, &o); // failures are logged where they happen
    if (err != GS_OK)
        gs_llava_close(&self);
    *out = self;
    return err;
}

void gs_llava_close(gs_llava_t **p)
{
    if (!p || !*p)
        return;
    gs_llava_t *self = *p;
    gs_llama_close(&self->lm);
    gs_clip_close(&self->clip);
    gs_spm_close(&self->tok);
    gs_weights_close(&self->w);
    gs__pool_destroy(&self->pool);
    gs__llava_config_cleanup(&self->cfg);
    gs_free(self->config_text);
    gs_free(self->proj_b1);
    gs_free(self->proj_b2);
    gs_free(self->mem);
    gs_free(self);
    *p = NULL;
}

// ---- accessors ----------------------------------------------------------------------------

int gs_llava_image_size(const gs_llava_t *self)
{
    return self->image_size;
}
int gs_llava_n_vocab(const gs_llava_t *self)
{
    return self->dec.vocab;
}
gs_llama_t *gs__llava_decoder(gs_llava_t *self)
{
    return self->lm;
}
gs_clip_t *gs__llava_vision(gs_llava_t *self)
{
    return self->clip;
}

static void lm_probe(void *ud, const char *name, int layer, const float *data, int n_rows, int dim)
{
    gs_llava_t *self = ud;
    char full[64];
    snprintf(full, sizeof full, "lm.%s", name);
    self->probe(self->probe_ud, full, layer, data, n_rows, dim);
}

static void clip_trace(void *ud, const char *tower, const char *name, const float *data, int n_rows,
                       int n_cols, int ld)
{
    gs_llava_t *self = ud;
    char full[64];
    snprintf(full, sizeof full, "%s.%s", tower, name);
    if (ld == n_cols) // the probe takes packed rows; the tower's traces are packed
        self->probe(self->probe_ud, full, -1, data, n_rows, n_cols);
}

void gs__llava_set_probe(gs_llava_t *self, gs__llava_probe_fn fn, void *ud)
{
    self->probe = fn;
    self->probe_ud = ud;
    self->dec.probe = fn;
    self->dec.probe_ud = ud;
    gs__clip_set_trace(self->clip, fn ? clip_trace : NULL, self);
}

// hash: a fast 64-bit hash of bytes (multiply-rotate over 8-byte words, splitmix finish).
static uint64_t hash_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ (w * 0x9E3779B97F4A7C15ull));
        h = ((h << 31) | (h >> 33)) * 0xBF58476D1CE4E5B9ull;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    h ^= n;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

const char *gs_llava_model_id(gs_llava_t *self)
{
    if (self->have_model_id)
        return self->model_id;
    uint64_t h = hash_mix(0x6C6C617661ull, self->config_text, strlen(self->config_text));
    for (size_t i = 0; i < gs_weights_count(self->w); i++) {
        const gs_tensor_t *t = gs_weights_at(self->w, i);
        h = hash_mix(h, t->name, strlen(t->name));
        h = hash_mix(h, &t->dtype, sizeof t->dtype);
        h = hash_mix(h, t->shape, (size_t)t->n_dims * sizeof t->shape[0]);
        h = hash_mix(h, t->data, t->nbytes);
    }
    snprintf(self->model_id, sizeof self->model_id, "%016llx", (unsigned long long)h);
    self->have_model_id = true;
    return self->model_id;
}

// ---- prompts and text ---------------------------------------------------------------------

gs_err gs_llava_prompt(const char *question, int n_images, gs_buf_t *out)
{
    if (!question)
        question = n_images >= 2 ? "Describe what changed from the first image to the second "
                                   "image."
                                 : "Describe this image.";
    GS_TRY(gs_buf_puts(out, "USER: "));
    for (int i = 0; i < n_images; i++)
        GS_TRY(gs_buf_puts(out, "<image>\n"));
    return gs_buf_printf(out, "%s ASSISTANT:", question);
}

gs_err gs_llava_tokenize(const gs_llava_t *self, const char *prompt, int32_t *out_ids, size_t cap,
                         size_t *out_n)
{
    return gs_spm_encode_hf(self->tok, prompt, strlen(prompt), out_ids, cap, out_n);
}

gs_err gs_llava_decode(const gs_llava_t *self, const int32_t *ids, size_t n, gs_buf_t *out)
{
    return gs_spm_decode_hf(self->tok, ids, n, GS_SPM_SKIP_SPECIAL, out);
}

gs_err gs_llava_preprocess(const gs_llava_t *self, const gs_llava_image_t *img, float *out_chw)
{
    if (!img || !img->rgb || !out_chw)
        return GS_EINVAL;
    size_t n = gs_preprocess_scratch_nbytes(img->w, img->h, self->image_size);
    if (n == 0)
        return GS_EINVAL;
    void *scratch = gs_trymalloc(n);
    if (!scratch)
        return GS_ENOMEM;
    gs_err err = gs_preprocess_image(img->rgb, img->w, img->h, &self->vhp.pre, scratch, out_chw);
    gs_free(scratch);
    return err;
}

// ---- images and the merged prompt -----------------------------------------------------------

static void probe_rows(const gs_llava_t *self, const char *name, const float *x, int rows, int cols)
{
    if (self->probe)
        self->probe(self->probe_ud, name, -1, x, rows, cols);
}

// image_features: pixels -> hidden states at the feature layer -> selection -> projector.
static gs_err image_features(gs_llava_t *self, const float *pixels, int n_images)
{
    GS_TRY(gs__clip_vision_hidden(self->clip, pixels, n_images, self->vision_layer, self->hidden));
    int skip = self->cfg.select_full ? 0 : 1, vw = self->v_width, td = self->text_dim;
    for (int i = 0; i < n_images; i++)
        memcpy(self->selected + (size_t)i * self->n_feat * vw,
               self->hidden + ((size_t)i * self->n_tok_img + skip) * vw,
               (size_t)self->n_feat * vw * sizeof(float));
    int rows = n_images * self->n_feat;
    probe_rows(self, "vision_selected_features", self->selected, rows, vw);
    // linear_1 -> GELU (erf) -> linear_2, written back into `selected`'s room via feats
    float *h = self->embeds; // free until the merge, sized for max_images * n_feat rows
    gs__lin_forward(self->pool, &self->proj1, self->selected, rows, h, self->scratch);
    if (self->proj_b1)
        gs_ops_add_bias(h, td, rows, td, self->proj_b1);
    gs_ops_gelu(h, (size_t)rows * td);
    gs__lin_forward(self->pool, &self->proj2, h, rows, self->feats, self->scratch);
    if (self->proj_b2)
        gs_ops_add_bias(self->feats, td, rows, td, self->proj_b2);
    probe_rows(self, "image_features", self->feats, rows, td);
    return GS_OK;
}

// merge: the decoder input for `ids`. One image token per image (transformers <= 4.43: each
// is replaced by its image's n_feat features) or n_feat copies per image (later processors:
// the features are scattered into them); the sequence is the same.
static gs_err merge(gs_llava_t *self, const int32_t *ids, size_t n_ids, int n_images, int *out_L)
{
    int img_tok = self->cfg.image_token_index, td = self->text_dim;
    size_t n_img_tok = 0;
    for (size_t i = 0; i < n_ids; i++)
        n_img_tok += ids[i] == img_tok;
    bool expanded = n_img_tok == (size_t)n_images * self->n_feat && self->n_feat > 1;
    if (n_img_tok != (size_t)n_images && !expanded) {
        GS_LOG_ERROR("the prompt has %zu image tokens for %d images (one <image> per image)",
                     n_img_tok, n_images);
        return GS_EINVAL;
    }
    size_t L = expanded ? n_ids : n_ids + (size_t)n_images * (self->n_feat - 1);
    if (L > (size_t)self->n_ctx) {
        GS_LOG_ERROR("the prompt needs %zu positions; the KV cache holds %d", L, self->n_ctx);
        return GS_ETOOBIG;
    }
    size_t pos = 0, feat = 0; // feat: the next feature row
    for (size_t i = 0; i < n_ids; i++) {
        float *dst = self->embeds + pos * td;
        if (ids[i] != img_tok) {
            if (gs__llama_embed(self->lm, &ids[i], 1, dst) != GS_OK) {
                GS_LOG_ERROR("token id %d is outside the vocabulary", (int)ids[i]);
                return GS_EINVAL;
            }
            pos++;
            continue;
        }
        size_t k = expanded ? 1 : (size_t)self->n_feat;
        memcpy(dst, self->feats + feat * td, k * td * sizeof(float));
        feat += k;
        pos += k;
    }
    *out_L = (int)L;
    probe_rows(self, "inputs_embeds_merged", self->embeds, (int)L, td);
    return GS_OK;
}

gs_err gs_llava_generate(gs_llava_t *self, const int32_t *ids, size_t n_ids,
                         const float *pixels_chw, int n_images, const gs_llava_gen_t *gen,
                         int32_t *out_ids, int cap, int *out_n)
{
    *out_n = 0;
    if (!ids || n_ids == 0 || n_images < 0 || n_images > self->max_images ||
        (n_images > 0 && !pixels_chw) || !gen || !out_ids || cap < 1) {
        GS_LOG_ERROR("caption: invalid arguments (%d images, at most %d)", n_images,
                     self->max_images);
        return GS_EINVAL;
    }
    if (n_images > 0)
        GS_TRY(image_features(self, pixels_chw, n_images));
    int L = 0;
    GS_TRY(merge(self, ids, n_ids, n_images, &L));
    gs__llama_set_probe(self->lm, self->probe ? lm_probe : NULL, self);
    gs__llava_dec_t *d = &self->dec;
    // the decoder probe sees every forward pass of the call, the prompt (step 0) first
    gs_err err = gs__llava_dec_run(d, self->embeds, L, (int)n_ids, gen, out_ids, cap, out_n);
    gs__llama_set_probe(self->lm, NULL, NULL);
    if (err == GS_ETOOBIG)
        GS_LOG_ERROR("caption: %d prompt positions + %d tokens x %d beams exceed the KV cache "
                     "(%d rows)",
                     L, gen->max_new_tokens, gen->num_beams, self->n_ctx);
    else if (err == GS_EINVAL)
        GS_LOG_ERROR("caption: invalid decoding parameters");
    return err;
}

gs_err gs_llava_caption(gs_llava_t *self, const gs_llava_image_t *images, int n_images,
                        const char *prompt, bool raw_prompt, const gs_llava_gen_t *gen,
                        int32_t *out_ids, int cap, int *out_n, gs_buf_t *out_text)
{
    *out_n = 0;
    if (n_images < 0 || n_images > self->max_images || (n_images > 0 && !images))
        return GS_EINVAL;
    size_t S = (size_t)self->image_size;
    for (int i = 0; i < n_images; i++) {
        gs_err err = gs_llava_preprocess(self, &images[i], self->pixels + (size_t)i * 3 * S * S);
        if (err != GS_OK) {
            GS_LOG_ERROR("caption: could not preprocess image %d (%dx%d): %s", i, images[i].w,
                         images[i].h, gs_strerror(err));
            return err;
        }
    }
    gs_buf_t p;
    gs_buf_init(&p, 1 << 20);
    gs_err err =
        raw_prompt ? gs_buf_puts(&p, prompt ? prompt : "") : gs_llava_prompt(prompt, n_images, &p);
    size_t n_ids = 0;
    if (err == GS_OK)
        err = gs_llava_tokenize(self, p.data, self->ids, MAX_PROMPT_IDS, &n_ids);
    gs_buf_cleanup(&p);
    if (err != GS_OK) {
        GS_LOG_ERROR("caption: could not tokenize the prompt: %s", gs_strerror(err));
        return err;
    }
    GS_TRY(gs_llava_generate(self, self->ids, n_ids, self->pixels, n_images, gen, out_ids, cap,
                             out_n));
    return out_text ? gs_llava_decode(self, out_ids, (size_t)*out_n, out_text) : GS_OK;
}

gs_llava_gen_t gs_llava_gen_defaults(void)
{
    return (gs_llava_gen_t){.max_new_tokens = 64,
                            .num_beams = 1,
                            .length_penalty = 1.0f,
                            .early_stopping = false,
                            .do_sample = false,
                            .temperature = 1.0f,
                            .top_k = 50,
                            .top_p = 1.0f,
                            .seed = 0};
}
