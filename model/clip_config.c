// CLIP hyperparameters: the built-in open_clip architectures (values of open_clip v2.32's
// model_configs/*.json), and the readers of open_clip configs (hub open_clip_config.json or a
// bare model config) and Hugging Face CLIP configs (config.json, preprocessor_config.json) with
// the defaults those libraries apply. Options that change the architecture in ways geoscribe
// does not implement (timm or HF text backbones, layer scale, attentional pooling, ResNets)
// are refused by name rather than silently ignored.
#define GS_LOG_MODULE "model"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/clip_int.h"

#define CONFIG_MAX_NBYTES (4u << 20)

// ---- built-in architectures ---------------------------------------------------------------

typedef struct {
    const char *name;
    int embed_dim, image_size, patch_size, v_width, v_layers, v_head_width;
    int t_width, t_heads, t_layers;
} arch_t;

// open_clip model_configs (v2.32): vision mlp_ratio 4, head_width 64 unless given; text
// context 77, vocab 49408, mlp_ratio 4. Activation: nn.GELU unless the "-quickgelu" variant.
static const arch_t archs[] = {
    {"ViT-B-32", 512, 224, 32, 768, 12, 64, 512, 8, 12},
    {"ViT-B-16", 512, 224, 16, 768, 12, 64, 512, 8, 12},
    {"ViT-L-14", 768, 224, 14, 1024, 24, 64, 768, 12, 12},
    {"ViT-L-14-336", 768, 336, 14, 1024, 24, 64, 768, 12, 12},
    {"ViT-H-14", 1024, 224, 14, 1280, 32, 80, 1024, 16, 24},
};
enum { N_ARCHS = sizeof archs / sizeof archs[0] };

static const char *const arch_names[] = {
    "ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16",     "ViT-B-16-quickgelu",
    "ViT-L-14", "ViT-L-14-quickgelu", "ViT-L-14-336", "ViT-L-14-336-quickgelu",
    "ViT-H-14", "ViT-H-14-quickgelu", NULL,
};

const char *const *gs_clip_arch_names(void)
{
    return arch_names;
}

static void defaults_openclip(gs__clip_hparams_t *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->layout = GS__CLIP_LAYOUT_OPENCLIP;
    hp->v_eps = hp->t_eps = 1e-5f;
    hp->pool_argmax = true;
    hp->eos_token_id = 49407;
    hp->pre = gs_preprocess_cfg_openai(224, GS_CROP_OPENCLIP);
}

gs_err gs__clip_arch_lookup(const char *name, gs__clip_hparams_t *out)
{
    size_t n = strlen(name);
    static const char suffix[] = "-quickgelu";
    bool quick = n > sizeof suffix - 1 && strcmp(name + n - (sizeof suffix - 1), suffix) == 0;
    size_t base_n = quick ? n - (sizeof suffix - 1) : n;
    for (int i = 0; i < N_ARCHS; i++) {
        const arch_t *a = &archs[i];
        if (strlen(a->name) != base_n || strncmp(a->name, name, base_n) != 0)
            continue;
        defaults_openclip(out);
        out->embed_dim = a->embed_dim;
        out->has_vision = out->has_text = true;
        out->image_size = a->image_size;
        out->patch_size = a->patch_size;
        out->v_width = a->v_width;
        out->v_layers = a->v_layers;
        out->v_heads = a->v_width / a->v_head_width;
        out->v_mlp = 4 * a->v_width;
        out->context_length = 77;
        out->vocab_size = 49408;
        out->t_width = a->t_width;
        out->t_heads = a->t_heads;
        out->t_layers = a->t_layers;
        out->t_mlp = 4 * a->t_width;
        out->v_act = out->t_act = quick ? GS__CLIP_ACT_QUICK_GELU : GS__CLIP_ACT_GELU;
        out->pre = gs_preprocess_cfg_openai(a->image_size, GS_CROP_OPENCLIP);
        snprintf(out->arch, sizeof out->arch, "%s", name);
        return GS_OK;
    }
    return GS_ENOTFOUND;
}

// ---- JSON helpers -------------------------------------------------------------------------

// get_int: an integer (or integral real) member, `dflt` when absent or null.
static gs_err get_int(const char *path, const json_t *obj, const char *key, int dflt, int lo,
                      int hi, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return GS_OK;
    }
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
        d = json_real_value(v);
    else {
        GS_LOG_ERROR("config \"%s\": \"%s\" is not an integer", path, key);
        return GS_EFORMAT;
    }
    if (d < lo || d > hi) {
        GS_LOG_ERROR("config \"%s\": \"%s\" = %.0f is outside %d..%d", path, key, d, lo, hi);
        return GS_EFORMAT;
    }
    *out = (int)d;
    return GS_OK;
}

static gs_err get_num(const char *path, const json_t *obj, const char *key, double dflt,
                      double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return GS_OK;
    }
    if (!json_is_number(v)) {
        GS_LOG_ERROR("config \"%s\": \"%s\" is not a number", path, key);
        return GS_EFORMAT;
    }
    *out = json_number_value(v);
    return GS_OK;
}

// get_size: an int, or a square [h, w] list (open_clip image_size, HF crop_size dicts are
// handled by the callers).
static gs_err get_square(const char *path, const json_t *obj, const char *key, int dflt, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_array(v)) {
        if (json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
            json_integer_value(json_array_get(v, 0)) != json_integer_value(json_array_get(v, 1))) {
            GS_LOG_ERROR("config \"%s\": \"%s\" must be one size or a square [h, w] (only "
                         "square inputs are supported)",
                         path, key);
            return GS_EUNSUPPORTED;
        }
        v = json_array_get(v, 0);
        json_int_t s = json_integer_value(v);
        if (s < 1 || s > 8192) {
            GS_LOG_ERROR("config \"%s\": \"%s\" is out of range", path, key);
            return GS_EFORMAT;
        }
        *out = (int)s;
        return GS_OK;
    }
    return get_int(path, obj, key, dflt, 1, 8192, out);
}

// truthy: a member present with a value other than null / false / 0 / "".
static bool truthy(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v) || json_is_false(v))
        return false;
    if (json_is_number(v))
        return json_number_value(v) != 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return true;
}

static gs_err refuse_if(const char *path, const json_t *obj, const char *section,
                        const char *const *keys)
{
    for (int i = 0; keys[i]; i++)
        if (truthy(obj, keys[i])) {
            GS_LOG_ERROR("config \"%s\": %s.%s is set: this architecture option is not "
                         "supported by geoscribe's CLIP engine",
                         path, section, keys[i]);
            return GS_EUNSUPPORTED;
        }
    return GS_OK;
}

static gs_err get_rgb(const char *path, const json_t *obj, const char *key, float *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return GS_OK; // keep the default
    if (!json_is_array(v) || (json_array_size(v) != 3 && json_array_size(v) != 1)) {
        GS_LOG_ERROR("config \"%s\": \"%s\" must be a list of 3 numbers", path, key);
        return GS_EFORMAT;
    }
    for (int c = 0; c < 3; c++) {
        const json_t *x = json_array_get(v, json_array_size(v) == 1 ? 0 : (size_t)c);
        if (!json_is_number(x)) {
            GS_LOG_ERROR("config \"%s\": \"%s\" must be a list of 3 numbers", path, key);
            return GS_EFORMAT;
        }
        out[c] = (float)json_number_value(x);
    }
    return GS_OK;
}

static json_t *load_json(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    if (gs_read_file(path, CONFIG_MAX_NBYTES, &text, &n) != GS_OK)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, n, 0, &jerr);
    gs_free(text);
    if (!root)
        GS_LOG_ERROR("could not parse config \"%s\": %s (line %d)", path, jerr.text, jerr.line);
    else if (!json_is_object(root)) {
        GS_LOG_ERROR("config \"%s\" is not a JSON object", path);
        json_decref(root);
        root = NULL;
    }
    return root;
}

// ---- open_clip ----------------------------------------------------------------------------

static gs_err read_openclip_vision(const char *path, const json_t *v, gs__clip_hparams_t *hp)
{
    static const char *const refused[] = {"timm_model_name",
                                          "ls_init_value",
                                          "attentional_pool",
                                          "no_ln_pre",
                                          "final_ln_after_pool",
                                          "act_kwargs",
                                          NULL};
    if (!json_is_object(v)) {
        GS_LOG_ERROR("config \"%s\": model_cfg.vision_cfg is missing", path);
        return GS_EFORMAT;
    }
    if (json_is_array(json_object_get(v, "layers"))) {
        GS_LOG_ERROR("config \"%s\": vision_cfg.layers is a list (a ResNet image tower): only "
                     "ViT image towers are supported",
                     path);
        return GS_EUNSUPPORTED;
    }
    GS_TRY(refuse_if(path, v, "vision_cfg", refused));
    const json_t *pool = json_object_get(v, "pool_type");
    if (pool && !json_is_null(pool) &&
        !(json_is_string(pool) && strcmp(json_string_value(pool), "tok") == 0)) {
        GS_LOG_ERROR("config \"%s\": vision_cfg.pool_type is not \"tok\": not supported", path);
        return GS_EUNSUPPORTED;
    }
    int head_width;
    double mlp_ratio, eps = hp->v_eps;
    GS_TRY(get_square(path, v, "image_size", 224, &hp->image_size));
    GS_TRY(get_int(path, v, "patch_size", 16, 1, 1024, &hp->patch_size));
    GS_TRY(get_int(path, v, "width", 768, 1, 65536, &hp->v_width));
    GS_TRY(get_int(path, v, "layers", 12, 1, 1024, &hp->v_layers));
    GS_TRY(get_int(path, v, "head_width", 64, 1, 65536, &head_width));
    GS_TRY(get_num(path, v, "mlp_ratio", 4.0, &mlp_ratio));
    const json_t *norm = json_object_get(v, "norm_kwargs");
    if (json_is_object(norm))
        GS_TRY(get_num(path, norm, "eps", eps, &eps));
    hp->v_eps = (float)eps;
    if (hp->v_width % head_width != 0) {
        GS_LOG_ERROR("config \"%s\": vision width %d is not a multiple of head_width %d", path,
                     hp->v_width, head_width);
        return GS_EFORMAT;
    }
    hp->v_heads = hp->v_width / head_width;
    hp->v_mlp = (int)(hp->v_width * mlp_ratio);
    if (hp->image_size < hp->patch_size) {
        GS_LOG_ERROR("config \"%s\": image_size %d is smaller than patch_size %d", path,
                     hp->image_size, hp->patch_size);
        return GS_EFORMAT;
    }
    hp->has_vision = true;
    return GS_OK;
}

static gs_err read_openclip_text(const char *path, const json_t *t, gs__clip_hparams_t *hp)
{
    static const char *const refused[] = {
        "hf_model_name", "ls_init_value", "embed_cls", "no_causal_mask",
        "proj_bias",     "act_kwargs",    NULL};
    if (!json_is_object(t)) {
        GS_LOG_ERROR("config \"%s\": model_cfg.text_cfg is missing", path);
        return GS_EFORMAT;
    }
    GS_TRY(refuse_if(path, t, "text_cfg", refused));
    const json_t *pool = json_object_get(t, "pool_type");
    if (pool && !json_is_null(pool) &&
        !(json_is_string(pool) && strcmp(json_string_value(pool), "argmax") == 0)) {
        GS_LOG_ERROR("config \"%s\": text_cfg.pool_type is not \"argmax\": not supported", path);
        return GS_EUNSUPPORTED;
    }
    const json_t *proj = json_object_get(t, "proj_type");
    if (proj && !json_is_null(proj) &&
        !(json_is_string(proj) && strcmp(json_string_value(proj), "linear") == 0)) {
        GS_LOG_ERROR("config \"%s\": text_cfg.proj_type is not \"linear\": not supported", path);
        return GS_EUNSUPPORTED;
    }
    double mlp_ratio, eps = hp->t_eps;
    GS_TRY(get_int(path, t, "context_length", 77, 2, 65536, &hp->context_length));
    GS_TRY(get_int(path, t, "vocab_size", 49408, 1, 1 << 24, &hp->vocab_size));
    GS_TRY(get_int(path, t, "width", 512, 1, 65536, &hp->t_width));
    GS_TRY(get_int(path, t, "heads", 8, 1, 4096, &hp->t_heads));
    GS_TRY(get_int(path, t, "layers", 12, 1, 1024, &hp->t_layers));
    GS_TRY(get_num(path, t, "mlp_ratio", 4.0, &mlp_ratio));
    const json_t *norm = json_object_get(t, "norm_kwargs");
    if (json_is_object(norm))
        GS_TRY(get_num(path, norm, "eps", eps, &eps));
    hp->t_eps = (float)eps;
    hp->t_mlp = (int)(hp->t_width * mlp_ratio);
    if (hp->t_width % hp->t_heads != 0) {
        GS_LOG_ERROR("config \"%s\": text width %d is not a multiple of heads %d", path,
                     hp->t_width, hp->t_heads);
        return GS_EFORMAT;
    }
    hp->has_text = true;
    return GS_OK;
}

static gs_err read_openclip_preprocess(const char *path, const json_t *p, gs__clip_hparams_t *hp)
{
    hp->pre = gs_preprocess_cfg_openai(hp->image_size, GS_CROP_OPENCLIP);
    if (!json_is_object(p))
        return GS_OK;
    GS_TRY(get_rgb(path, p, "mean", hp->pre.mean));
    GS_TRY(get_rgb(path, p, "std", hp->pre.std));
    const json_t *mode = json_object_get(p, "resize_mode");
    if (json_is_string(mode) && strcmp(json_string_value(mode), "shortest") != 0) {
        GS_LOG_ERROR("config \"%s\": preprocess_cfg.resize_mode \"%s\" is not supported (only "
                     "\"shortest\")",
                     path, json_string_value(mode));
        return GS_EUNSUPPORTED;
    }
    const json_t *interp = json_object_get(p, "interpolation");
    if (json_is_string(interp) && strcmp(json_string_value(interp), "bicubic") != 0) {
        GS_LOG_ERROR("config \"%s\": preprocess_cfg.interpolation \"%s\" is not supported "
                     "(only \"bicubic\")",
                     path, json_string_value(interp));
        return GS_EUNSUPPORTED;
    }
    return GS_OK;
}

static gs_err read_openclip(const char *path, const json_t *root, gs__clip_hparams_t *hp)
{
    const json_t *m = json_object_get(root, "model_cfg");
    if (!m)
        m = root; // a bare model config (open_clip's model_configs/<name>.json)
    defaults_openclip(hp);
    // custom_text: open_clip's CustomTextCLIP keeps the text tower under "text." (and is used
    // for non-CLIP text towers); not implemented
    static const char *const refused[] = {"init_logit_bias", "timm_model_name", "custom_text",
                                          NULL};
    GS_TRY(refuse_if(path, m, "model_cfg", refused));
    GS_TRY(get_int(path, m, "embed_dim", 512, 1, 65536, &hp->embed_dim));
    const json_t *q = json_object_get(m, "quick_gelu");
    if (q && !json_is_boolean(q) && !json_is_null(q)) {
        GS_LOG_ERROR("config \"%s\": \"quick_gelu\" is not a boolean", path);
        return GS_EFORMAT;
    }
    hp->v_act = hp->t_act = json_is_true(q) ? GS__CLIP_ACT_QUICK_GELU : GS__CLIP_ACT_GELU;
    GS_TRY(read_openclip_vision(path, json_object_get(m, "vision_cfg"), hp));
    GS_TRY(read_openclip_text(path, json_object_get(m, "text_cfg"), hp));
    GS_TRY(read_openclip_preprocess(path, json_object_get(root, "preprocess_cfg"), hp));
    return GS_OK;
}

// ---- Hugging Face -------------------------------------------------------------------------

static gs_err read_hf_act(const char *path, const json_t *c, const char *section,
                          gs__clip_act_t *out)
{
    const json_t *v = json_object_get(c, "hidden_act");
    const char *s = json_is_string(v) ? json_string_value(v) : "quick_gelu";
    if (strcmp(s, "quick_gelu") == 0)
        *out = GS__CLIP_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *out = GS__CLIP_ACT_GELU;
    else {
        GS_LOG_ERROR("config \"%s\": %s.hidden_act \"%s\" is not supported (quick_gelu or gelu)",
                     path, section, s);
        return GS_EUNSUPPORTED;
    }
    return GS_OK;
}

// transformers v4.40 CLIPVisionConfig defaults.
static gs_err read_hf_vision(const char *path, const json_t *v, gs__clip_hparams_t *hp)
{
    double eps;
    int channels;
    GS_TRY(get_int(path, v, "hidden_size", 768, 1, 65536, &hp->v_width));
    GS_TRY(get_int(path, v, "intermediate_size", 3072, 1, 1 << 20, &hp->v_mlp));
    GS_TRY(get_int(path, v, "num_hidden_layers", 12, 1, 1024, &hp->v_layers));
    GS_TRY(get_int(path, v, "num_attention_heads", 12, 1, 4096, &hp->v_heads));
    GS_TRY(get_int(path, v, "image_size", 224, 1, 8192, &hp->image_size));
    GS_TRY(get_int(path, v, "patch_size", 32, 1, 1024, &hp->patch_size));
    GS_TRY(get_int(path, v, "num_channels", 3, 1, 64, &channels));
    GS_TRY(get_num(path, v, "layer_norm_eps", 1e-5, &eps));
    GS_TRY(read_hf_act(path, v, "vision_config", &hp->v_act));
    hp->v_eps = (float)eps;
    if (channels != 3) {
        GS_LOG_ERROR("config \"%s\": vision_config.num_channels is %d: only RGB (3) is "
                     "supported",
                     path, channels);
        return GS_EUNSUPPORTED;
    }
    if (hp->v_width % hp->v_heads != 0 || hp->image_size < hp->patch_size) {
        GS_LOG_ERROR("config \"%s\": inconsistent vision_config (hidden_size %d, heads %d, "
                     "image_size %d, patch_size %d)",
                     path, hp->v_width, hp->v_heads, hp->image_size, hp->patch_size);
        return GS_EFORMAT;
    }
    hp->has_vision = true;
    hp->pre = gs_preprocess_cfg_openai(hp->image_size, GS_CROP_HF);
    return GS_OK;
}

// transformers v4.40 CLIPTextConfig defaults (eos_token_id 49407; configs written by older
// versions store 2, which makes transformers pool at argmax(ids)).
static gs_err read_hf_text(const char *path, const json_t *t, gs__clip_hparams_t *hp)
{
    double eps;
    GS_TRY(get_int(path, t, "vocab_size", 49408, 1, 1 << 24, &hp->vocab_size));
    GS_TRY(get_int(path, t, "hidden_size", 512, 1, 65536, &hp->t_width));
    GS_TRY(get_int(path, t, "intermediate_size", 2048, 1, 1 << 20, &hp->t_mlp));
    GS_TRY(get_int(path, t, "num_hidden_layers", 12, 1, 1024, &hp->t_layers));
    GS_TRY(get_int(path, t, "num_attention_heads", 8, 1, 4096, &hp->t_heads));
    GS_TRY(get_int(path, t, "max_position_embeddings", 77, 2, 65536, &hp->context_length));
    GS_TRY(get_int(path, t, "eos_token_id", 49407, 0, 1 << 24, &hp->eos_token_id));
    GS_TRY(get_num(path, t, "layer_norm_eps", 1e-5, &eps));
    GS_TRY(read_hf_act(path, t, "text_config", &hp->t_act));
    hp->t_eps = (float)eps;
    hp->pool_argmax = hp->eos_token_id == 2;
    if (hp->t_width % hp->t_heads != 0) {
        GS_LOG_ERROR("config \"%s\": text hidden_size %d is not a multiple of heads %d", path,
                     hp->t_width, hp->t_heads);
        return GS_EFORMAT;
    }
    hp->has_text = true;
    return GS_OK;
}

static gs_err read_hf(const char *path, const json_t *root, gs__clip_hparams_t *hp)
{
    defaults_openclip(hp);
    hp->layout = GS__CLIP_LAYOUT_HF;
    const json_t *mt = json_object_get(root, "model_type");
    const char *type = json_is_string(mt) ? json_string_value(mt) : "";
    if (strcmp(type, "clip") == 0) {
        const json_t *v = json_object_get(root, "vision_config");
        const json_t *t = json_object_get(root, "text_config");
        json_t *empty = json_object();
        gs_err e = read_hf_vision(path, json_is_object(v) ? v : empty, hp);
        if (e == GS_OK)
            e = read_hf_text(path, json_is_object(t) ? t : empty, hp);
        json_decref(empty);
        GS_TRY(e);
        GS_TRY(get_int(path, root, "projection_dim", 512, 1, 65536, &hp->embed_dim));
        snprintf(hp->arch, sizeof hp->arch, "hf CLIPModel");
        return GS_OK;
    }
    if (strcmp(type, "clip_vision_model") == 0) {
        GS_TRY(read_hf_vision(path, root, hp));
        GS_TRY(get_int(path, root, "projection_dim", 512, 1, 65536, &hp->embed_dim));
        snprintf(hp->arch, sizeof hp->arch, "hf CLIPVisionModel");
        return GS_OK;
    }
    GS_LOG_ERROR("config \"%s\": model_type \"%s\" is not a CLIP model (expected \"clip\")", path,
                 type);
    return GS_EUNSUPPORTED;
}

gs_err gs__clip_hparams_hf_vision(const char *json_text, const char *what, gs__clip_hparams_t *out)
{
    json_error_t jerr;
    json_t *v = json_loads(json_text, 0, &jerr);
    if (!json_is_object(v)) {
        GS_LOG_ERROR("could not parse the vision config of \"%s\": %s", what, jerr.text);
        json_decref(v);
        return GS_EFORMAT;
    }
    defaults_openclip(out);
    out->layout = GS__CLIP_LAYOUT_HF;
    gs_err e = read_hf_vision(what, v, out);
    if (e == GS_OK)
        e = get_int(what, v, "projection_dim", 512, 1, 65536, &out->embed_dim);
    snprintf(out->arch, sizeof out->arch, "hf CLIPVisionModel");
    json_decref(v);
    return e;
}

// The side of a HF size field: an int, {"shortest_edge": n}, or {"height": h, "width": w}.
static gs_err hf_side(const char *path, const json_t *p, const char *key, int *out)
{
    const json_t *v = json_object_get(p, key);
    if (!v || json_is_null(v))
        return GS_OK;
    if (json_is_integer(v)) {
        *out = (int)json_integer_value(v);
        return GS_OK;
    }
    const json_t *se = json_object_get(v, "shortest_edge");
    const json_t *h = json_object_get(v, "height"), *w = json_object_get(v, "width");
    if (json_is_integer(se)) {
        *out = (int)json_integer_value(se);
        return GS_OK;
    }
    if (json_is_integer(h) && json_is_integer(w) &&
        json_integer_value(h) == json_integer_value(w)) {
        *out = (int)json_integer_value(h);
        return GS_OK;
    }
    GS_LOG_ERROR("preprocessor config \"%s\": \"%s\" is not a square size", path, key);
    return GS_EUNSUPPORTED;
}

gs_err gs__clip_hparams_hf_preprocessor(const char *path, gs__clip_hparams_t *out)
{
    json_t *p = load_json(path);
    if (!p)
        return GS_EFORMAT;
    int resize = out->image_size, crop = out->image_size, resample = 3;
    gs_err e = hf_side(path, p, "size", &resize);
    if (e == GS_OK)
        e = hf_side(path, p, "crop_size", &crop);
    if (e == GS_OK)
        e = get_int(path, p, "resample", 3, 0, 5, &resample);
    if (e == GS_OK)
        e = get_rgb(path, p, "image_mean", out->pre.mean);
    if (e == GS_OK)
        e = get_rgb(path, p, "image_std", out->pre.std);
    if (e == GS_OK && (resize != crop || crop != out->image_size || resample != 3)) {
        GS_LOG_ERROR("preprocessor config \"%s\": resize %d, crop %d, resample %d: only a "
                     "bicubic (3) resize of the short side to the crop size (%d) is supported",
                     path, resize, crop, resample, out->image_size);
        e = GS_EUNSUPPORTED;
    }
    out->pre.size = out->image_size;
    out->pre.crop = GS_CROP_HF;
    json_decref(p);
    return e;
}

gs_err gs__clip_config_read(const char *path, gs__clip_hparams_t *out)
{
    json_t *root = load_json(path);
    if (!root)
        return gs_path_exists(path) ? GS_EFORMAT : GS_EIO;
    gs_err e;
    if (json_object_get(root, "model_cfg") || json_object_get(root, "vision_cfg")) {
        e = read_openclip(path, root, out);
        if (e == GS_OK)
            snprintf(out->arch, sizeof out->arch, "open_clip config");
    } else if (json_object_get(root, "model_type") || json_object_get(root, "vision_config")) {
        e = read_hf(path, root, out);
        if (e == GS_OK) {
            // preprocessor_config.json next to config.json, when present
            char *dir = gs_xstrdup(path);
            char *slash = strrchr(dir, '/');
            char *pp = NULL;
            if (slash) {
                *slash = '\0';
                pp = gs_path_join(dir, "preprocessor_config.json");
            } else {
                pp = gs_xstrdup("preprocessor_config.json");
            }
            if (gs_path_exists(pp))
                e = gs__clip_hparams_hf_preprocessor(pp, out);
            gs_free(pp);
            gs_free(dir);
        }
    } else {
        GS_LOG_ERROR("config \"%s\" is neither an open_clip config (model_cfg / vision_cfg) nor "
                     "a Hugging Face CLIP config (model_type)",
                     path);
        e = GS_EFORMAT;
    }
    json_decref(root);
    return e;
}
