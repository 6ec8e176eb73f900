// Opening CLIP models from what users have on disk: a folder in the open_clip hub or Hugging
// Face layout (detected from its files), or a bare state dict (.pt / .bin / .safetensors) with an
// open_clip arch name or a config file. Also the model's description, its identity hash for
// provenance, and the tokenizer glue (vocabulary lookup next to the weights).
#define GS_LOG_MODULE "model"
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/clip_bpe.h"
#include "model/clip_model_int.h"

// ---- layout detection ---------------------------------------------------------------------

// first_existing: the first of dir/names[i] that exists (new string), or NULL.
static char *first_existing(const char *dir, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        char *p = gs_path_join(dir, names[i]);
        if (gs_path_exists(p))
            return p;
        gs_free(p);
    }
    return NULL;
}

static char *dirname_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return gs_xstrdup(".");
    if (slash == path)
        return gs_xstrdup("/");
    return gs_xstrndup(path, (size_t)(slash - path));
}

// the open_clip arch names joined for messages
static void arch_list(char *buf, size_t n)
{
    const char *const *names = gs_clip_arch_names();
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", names[i]);
}

// shape_is: the tensor exists with exactly these dims.
static bool shape_is(const gs_weights_t *w, const char *name, int n_dims, const int64_t *dims)
{
    const gs_tensor_t *t = gs_weights_get(w, name);
    if (!t || t->n_dims != n_dims)
        return false;
    for (int i = 0; i < n_dims; i++)
        if (t->shape[i] != dims[i])
            return false;
    return true;
}

// n_blocks: how many "<fmt % i>.ln_1.weight" exist from 0 on.
static int n_blocks(const gs_weights_t *w, const char *fmt)
{
    int n = 0;
    for (;; n++) {
        char name[256];
        snprintf(name, sizeof name, fmt, n);
        if (!gs_weights_get(w, name))
            return n;
    }
}

// matches: the open_clip state dict `w` has the shapes of built-in arch `hp`.
static bool matches(const gs_weights_t *w, const gs__clip_hparams_t *hp)
{
    int64_t W = hp->v_width, P = hp->patch_size, g = hp->image_size / hp->patch_size;
    int64_t conv[4] = {W, 3, P, P}, pos[2] = {g * g + 1, W};
    int64_t tpos[2] = {hp->context_length, hp->t_width}, tproj[2] = {hp->t_width, hp->embed_dim};
    return shape_is(w, "visual.conv1.weight", 4, conv) &&
           shape_is(w, "visual.positional_embedding", 2, pos) &&
           n_blocks(w, "visual.transformer.resblocks.%d.ln_1.weight") == hp->v_layers &&
           shape_is(w, "positional_embedding", 2, tpos) &&
           shape_is(w, "text_projection", 2, tproj) &&
           n_blocks(w, "transformer.resblocks.%d.ln_1.weight") == hp->t_layers;
}

gs_err gs_clip_guess_arch(const char *path, char *out, size_t out_nbytes)
{
    if (!path || !out || out_nbytes == 0)
        return GS_EINVAL;
    out[0] = '\0';
    gs_weights_t *w = NULL;
    GS_TRY(gs_weights_open(path, &w));
    const char *const *names = gs_clip_arch_names();
    size_t len = 0;
    for (int i = 0; names[i]; i++) {
        gs__clip_hparams_t hp;
        if (gs__clip_arch_lookup(names[i], &hp) == GS_OK && matches(w, &hp))
            len += (size_t)snprintf(out + len, len < out_nbytes ? out_nbytes - len : 0, "%s%s",
                                    len ? ", " : "", names[i]);
        if (len >= out_nbytes)
            break;
    }
    gs_weights_close(&w);
    return GS_OK;
}

// resolve: finds the weights file and the hyperparameters for `path` and the options.
static gs_err resolve(const char *path, const gs_clip_opts_t *o, gs__clip_hparams_t *hp,
                      char **out_weights, char **out_config, char **out_dir)
{
    static const char *const oc_weights[] = {"open_clip_model.safetensors",
                                             "open_clip_pytorch_model.bin", NULL};
    static const char *const hf_weights[] = {"model.safetensors", "model.safetensors.index.json",
                                             "pytorch_model.bin", NULL};
    char *config = NULL, *weights = NULL;
    gs_err e = GS_OK;
    if (gs_is_dir(path)) {
        *out_dir = gs_xstrdup(path);
        char *oc = gs_path_join(path, "open_clip_config.json");
        char *hf = gs_path_join(path, "config.json");
        if (gs_path_exists(oc)) {
            config = gs_xstrdup(oc);
            weights = first_existing(path, oc_weights);
        } else if (gs_path_exists(hf)) {
            config = gs_xstrdup(hf);
            weights = first_existing(path, hf_weights);
        } else {
            GS_LOG_ERROR("no CLIP model found in \"%s\": expected open_clip_config.json + "
                         "open_clip_model.safetensors (open_clip hub layout) or config.json + "
                         "model.safetensors (Hugging Face layout)",
                         path);
            e = GS_ENOTFOUND;
        }
        if (e == GS_OK && !weights) {
            GS_LOG_ERROR("no weights found in \"%s\": expected %s", path,
                         gs_path_exists(oc) ? "open_clip_model.safetensors or "
                                              "open_clip_pytorch_model.bin"
                                            : "model.safetensors, model.safetensors.index.json "
                                              "or pytorch_model.bin");
            e = GS_ENOTFOUND;
        }
        gs_free(oc);
        gs_free(hf);
    } else if (gs_path_exists(path)) {
        *out_dir = dirname_of(path);
        weights = gs_xstrdup(path);
        if (!o->arch && !o->config_path) {
            char names[512], guess[256] = "";
            arch_list(names, sizeof names);
            gs_clip_guess_arch(path, guess, sizeof guess);
            GS_LOG_ERROR("\"%s\" is a bare weights file: give its architecture with --arch NAME "
                         "(%s) or --config FILE (an open_clip_config.json)%s%s",
                         path, names, guess[0] ? "; its tensor shapes match " : "", guess);
            e = GS_EINVAL;
        }
    } else {
        GS_LOG_ERROR("model \"%s\" does not exist", path);
        e = GS_ENOTFOUND;
    }
    // explicit options override the folder's config
    if (e == GS_OK && o->arch) {
        gs_free(config);
        config = NULL;
        if (gs__clip_arch_lookup(o->arch, hp) != GS_OK) {
            char names[512];
            arch_list(names, sizeof names);
            GS_LOG_ERROR("unknown architecture \"%s\": known are %s (or give --config FILE)",
                         o->arch, names);
            e = GS_ENOTFOUND;
        }
    } else if (e == GS_OK) {
        if (o->config_path) {
            gs_free(config);
            config = gs_xstrdup(o->config_path);
        }
        e = gs__clip_config_read(config, hp);
    }
    if (e != GS_OK) {
        gs_free(config);
        gs_free(weights);
        return e;
    }
    *out_weights = weights;
    *out_config = config;
    return GS_OK;
}

// ---- tokenizer glue -----------------------------------------------------------------------

// open_vocab: the vocabulary given, else the one next to the weights (open_clip's gzip file, or
// a Hugging Face vocab.json + merges.txt). None found is not an error: image encoding works
// without it, and text encoding explains what is missing.
static gs_err open_vocab(gs_clip_t *self, const char *dir, const char *given)
{
    static const char *const names[] = {"bpe_simple_vocab_16e6.txt.gz", "vocab.json", NULL};
    char *p = given ? gs_xstrdup(given) : first_existing(dir, names);
    if (!p) {
        self->vocab_error = gs_xasprintf(
            "no CLIP vocabulary found in \"%s\": expected bpe_simple_vocab_16e6.txt.gz or "
            "vocab.json + merges.txt; give one with --vocab FILE",
            dir);
        return GS_OK;
    }
    gs_clip_bpe_t *bpe = NULL;
    gs_err e = gs_clip_bpe_open(p, &bpe);
    if (e != GS_OK) {
        gs_free(p);
        return e;
    }
    if (gs_clip_bpe_vocab_size(bpe) > self->hp.vocab_size) {
        GS_LOG_ERROR("vocabulary \"%s\" has %d tokens, more than the model's %d", p,
                     gs_clip_bpe_vocab_size(bpe), self->hp.vocab_size);
        gs_clip_bpe_close(&bpe);
        gs_free(p);
        return GS_EFORMAT;
    }
    self->bpe = bpe;
    self->vocab_path = p;
    self->ids_buf = gs_xmalloc((size_t)self->max_batch * self->hp.context_length * sizeof(int32_t));
    return GS_OK;
}

void gs__clip_tokenizer_close(gs_clip_t *self)
{
    gs_clip_bpe_close(&self->bpe);
    gs_free(self->vocab_path);
    gs_free(self->vocab_error);
    gs_free(self->ids_buf);
    self->vocab_path = self->vocab_error = NULL;
    self->ids_buf = NULL;
}

bool gs_clip_has_text(const gs_clip_t *self)
{
    return self->hp.has_text && self->bpe;
}

static gs_err no_vocab(const gs_clip_t *self)
{
    if (!self->hp.has_text)
        GS_LOG_ERROR("\"%s\": this model has no text tower", self->weights_path);
    else
        GS_LOG_ERROR("%s", self->vocab_error ? self->vocab_error : "no CLIP vocabulary");
    return GS_ENOTFOUND;
}

gs_err gs_clip_tokenize(const gs_clip_t *self, const char *text, int32_t *out_ids,
                        int *out_n_tokens, int *out_n_untruncated)
{
    if (!self || !text || !out_ids)
        return GS_EINVAL;
    if (!gs_clip_has_text(self))
        return no_vocab(self);
    gs_err e = gs_clip_bpe_encode(self->bpe, text, out_ids, self->hp.context_length, out_n_tokens,
                                  out_n_untruncated);
    if (e == GS_ETOOBIG)
        GS_LOG_ERROR("text of %zu bytes is too long to tokenize (at most %u)", strlen(text),
                     GS_CLIP_BPE_MAX_TEXT_NBYTES);
    return e;
}

const char *gs_clip_token_str(const gs_clip_t *self, int32_t id)
{
    return self->bpe ? gs_clip_bpe_token_str(self->bpe, id) : NULL;
}

gs_err gs_clip_encode_texts(gs_clip_t *self, const char *const *texts, int n, bool normalize,
                            float *out)
{
    if (!self || n < 0 || (n > 0 && (!texts || !out)))
        return GS_EINVAL;
    if (!gs_clip_has_text(self))
        return no_vocab(self);
    int C = self->hp.context_length, E = self->hp.embed_dim;
    for (int i = 0; i < n; i += self->max_batch) {
        int nb = n - i < self->max_batch ? n - i : self->max_batch;
        for (int k = 0; k < nb; k++) {
            if (!texts[i + k])
                return GS_EINVAL;
            GS_TRY(gs_clip_tokenize(self, texts[i + k], self->ids_buf + (size_t)k * C, NULL, NULL));
        }
        GS_TRY(gs_clip_encode_tokens(self, self->ids_buf, nb, normalize, out + (size_t)i * E));
    }
    return GS_OK;
}

// ---- open ---------------------------------------------------------------------------------

gs_err gs_clip_open(const char *path, const gs_clip_opts_t *opts, gs_clip_t **out)
{
    static const gs_clip_opts_t dflt = {0};
    const gs_clip_opts_t *o = opts ? opts : &dflt;
    *out = NULL;
    if (!path || (o->arch && o->config_path)) {
        GS_LOG_ERROR("give either an architecture name or a config file, not both");
        return GS_EINVAL;
    }
    gs__clip_hparams_t hp;
    char *weights_path = NULL, *config = NULL, *dir = NULL;
    gs_weights_t *w = NULL;
    gs_clip_t *self = NULL;
    gs_err e = resolve(path, o, &hp, &weights_path, &config, &dir);
    if (e == GS_OK)
        e = gs_weights_open(weights_path, &w);
    if (e == GS_OK)
        e = gs__clip_open_weights(&w, true, "", &hp, o, &self);
    if (e == GS_OK) {
        gs_free(self->weights_path);
        self->weights_path = weights_path;
        weights_path = NULL;
        self->config_path = config;
        config = NULL;
        self->arch = gs_xstrdup(o->arch ? o->arch : hp.arch);
        if (hp.has_text)
            e = open_vocab(self, dir, o->vocab_path);
    }
    if (e == GS_OK) {
        *out = self;
        GS_LOG_INFO("opened CLIP model \"%s\" (%s, %s layout, embed %d, image %d, %s)", path,
                    self->arch, hp.layout == GS__CLIP_LAYOUT_HF ? "hf" : "open_clip", hp.embed_dim,
                    hp.image_size, hp.v_act == GS__CLIP_ACT_QUICK_GELU ? "quick_gelu" : "gelu");
    }
    if (e != GS_OK)
        gs_clip_close(&self);
    gs_weights_close(&w);
    gs_free(weights_path);
    gs_free(config);
    gs_free(dir);
    return e;
}

// ---- description and identity -------------------------------------------------------------

void gs_clip_describe(const gs_clip_t *self, gs_clip_info_t *out)
{
    const gs__clip_hparams_t *hp = &self->hp;
    gs_clip_t *mut = (gs_clip_t *)self; // the dtype string is cached in the handle
    size_t len = 0;
    mut->dtypes[0] = '\0';
    static const gs_dtype_t order[] = {GS_DTYPE_BF16, GS_DTYPE_F16, GS_DTYPE_F32, GS_DTYPE_F64};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (self->dtype_mask & (1u << order[i]))
            len += (size_t)snprintf(mut->dtypes + len, sizeof mut->dtypes - len, "%s%s",
                                    len ? "," : "", gs_dtype_name(order[i]));
    *out = (gs_clip_info_t){
        .arch = self->arch ? self->arch : hp->arch,
        .layout = hp->layout == GS__CLIP_LAYOUT_HF ? "hf" : "open_clip",
        .weights_path = self->weights_path,
        .config_path = self->config_path,
        .vocab_path = self->vocab_path,
        .activation = hp->v_act == GS__CLIP_ACT_QUICK_GELU ? "quick_gelu" : "gelu",
        .dtypes = self->dtypes,
        .precision = self->precision == GS_CLIP_PRECISION_BF16 ? "bf16" : "f32",
        .gemm = self->gemm,
        .embed_dim = hp->embed_dim,
        .image_size = hp->image_size,
        .patch_size = hp->patch_size,
        .vision_width = hp->v_width,
        .vision_layers = hp->v_layers,
        .vision_heads = hp->v_heads,
        .vision_mlp = hp->v_mlp,
        .text_width = hp->t_width,
        .text_layers = hp->t_layers,
        .text_heads = hp->t_heads,
        .text_mlp = hp->t_mlp,
        .context_length = hp->context_length,
        .vocab_size = hp->vocab_size,
        .n_params = self->n_params_vision + self->n_params_text + self->n_params_other,
        .n_params_vision = self->n_params_vision,
        .n_params_text = self->n_params_text,
        .logit_scale = self->logit_scale,
    };
}

// A 64-bit streaming hash: four lanes of multiply-rotate over 8-byte words, then a 64-bit
// finaliser (the mixing steps of well-known non-cryptographic hashes). Fast enough to read a
// checkpoint at memory speed; not meant to resist deliberate collisions.
typedef struct {
    uint64_t lane[4];
    uint8_t buf[32];
    size_t n_buf;
    uint64_t total;
} hash_t;

#define H_P1 0x9e3779b185ebca87ull
#define H_P2 0xc2b2ae3d27d4eb4full

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t round64(uint64_t acc, uint64_t in)
{
    return rotl64(acc + in * H_P2, 31) * H_P1;
}

static void hash_init(hash_t *h)
{
    memset(h, 0, sizeof *h);
    h->lane[0] = H_P1 + H_P2;
    h->lane[1] = H_P2;
    h->lane[2] = 0;
    h->lane[3] = -H_P1;
}

static void hash_block(hash_t *h, const uint8_t *p)
{
    for (int i = 0; i < 4; i++) {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        h->lane[i] = round64(h->lane[i], v);
    }
}

static void hash_update(hash_t *h, const void *data, size_t n)
{
    const uint8_t *p = data;
    h->total += n;
    if (h->n_buf) {
        size_t take = 32 - h->n_buf < n ? 32 - h->n_buf : n;
        memcpy(h->buf + h->n_buf, p, take);
        h->n_buf += take;
        p += take;
        n -= take;
        if (h->n_buf < 32)
            return;
        hash_block(h, h->buf);
        h->n_buf = 0;
    }
    for (; n >= 32; n -= 32, p += 32)
        hash_block(h, p);
    memcpy(h->buf, p, n);
    h->n_buf = n;
}

static uint64_t hash_final(hash_t *h)
{
    uint64_t acc = rotl64(h->lane[0], 1) + rotl64(h->lane[1], 7) + rotl64(h->lane[2], 12) +
                   rotl64(h->lane[3], 18);
    for (int i = 0; i < 4; i++)
        acc = (acc ^ round64(0, h->lane[i])) * H_P1 + 0x85ebca77c2b2ae63ull;
    acc += h->total;
    for (size_t i = 0; i < h->n_buf; i++)
        acc = rotl64(acc ^ (h->buf[i] * 0x27d4eb2f165667c5ull), 11) * H_P1;
    acc ^= acc >> 33;
    acc *= 0xff51afd7ed558ccdull;
    acc ^= acc >> 33;
    acc *= 0xc4ceb9fe1a85ec53ull;
    acc ^= acc >> 33;
    return acc;
}

const char *gs_clip_model_id(gs_clip_t *self)
{
    if (self->have_model_id)
        return self->model_id;
    hash_t h;
    hash_init(&h);
    const gs__clip_hparams_t *hp = &self->hp;
    // the architecture options that are not in the weights
    int32_t opts[8] = {hp->v_act,      hp->t_act,    hp->pool_argmax,          hp->eos_token_id,
                       hp->has_vision, hp->has_text, (int32_t)self->precision, 0};
    float eps[2] = {hp->v_eps, hp->t_eps};
    hash_update(&h, opts, sizeof opts);
    hash_update(&h, eps, sizeof eps);
    size_t n = gs_weights_count(self->w), plen = strlen(self->prefix);
    for (size_t i = 0; i < n; i++) {
        const gs_tensor_t *t = gs_weights_at(self->w, i);
        if (strncmp(t->name, self->prefix, plen) != 0)
            continue;
        int32_t meta[2] = {(int32_t)t->dtype, t->n_dims};
        hash_update(&h, t->name + plen, strlen(t->name + plen) + 1);
        hash_update(&h, meta, sizeof meta);
        hash_update(&h, t->shape, (size_t)t->n_dims * sizeof t->shape[0]);
        hash_update(&h, t->data, t->nbytes);
    }
    snprintf(self->model_id, sizeof self->model_id, "%016llx", (unsigned long long)hash_final(&h));
    self->have_model_id = true;
    return self->model_id;
}
