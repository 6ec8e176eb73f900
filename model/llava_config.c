// Hugging Face configuration readers of the captioner: LlamaConfig (config.json of a
// LlamaForCausalLM, or the text_config of a LLaVA config), LlavaConfig and
// generation_config.json, with the defaults of transformers v4.40 for every omitted key.
// Anything that would change the computation in a way geoscribe does not implement is refused
// by name. The CLIP vision_config is handed on as JSON text to the CLIP reader (clip_config.c).
#define GS_LOG_MODULE "model"
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/llama_int.h"
#include "model/llava_int.h"

#define MAX_DIM (1 << 20)

void gs__llama_hparams_defaults(gs__llama_hparams_t *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->vocab_size = 32000;
    hp->dim = 4096;
    hp->hidden_dim = 11008;
    hp->n_layers = 32;
    hp->n_heads = 32;
    hp->n_kv_heads = 0; // = n_heads unless given
    hp->head_dim = 0;   // = dim / n_heads unless given
    hp->max_pos = 2048;
    hp->norm_eps = 1e-6f;
    hp->rope_theta = 10000.0f;
    hp->rope_type = GS__ROPE_NONE;
    hp->rope_factor = 1.0f;
    hp->tie_embeddings = false;
    hp->attention_bias = false;
    hp->bos_id = 1;
    hp->eos_id = 2;
    hp->pad_id = -1;
}

// ---- JSON helpers -------------------------------------------------------------------------

static gs_err cfg_int(const json_t *obj, const char *key, const char *what, long lo, long hi,
                      int *inout)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return GS_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || d != floor(d) || d < (double)lo || d > (double)hi) {
        GS_LOG_ERROR("%s: \"%s\" must be an integer in [%ld, %ld]", what, key, lo, hi);
        return GS_EFORMAT;
    }
    *inout = (int)d;
    return GS_OK;
}

static gs_err cfg_float(const json_t *obj, const char *key, const char *what, double lo, double hi,
                        float *inout)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return GS_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= lo && d <= hi)) {
        GS_LOG_ERROR("%s: \"%s\" must be a number in [%g, %g]", what, key, lo, hi);
        return GS_EFORMAT;
    }
    *inout = (float)d;
    return GS_OK;
}

static gs_err cfg_bool(const json_t *obj, const char *key, const char *what, bool *inout)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return GS_OK;
    if (!json_is_boolean(v)) {
        GS_LOG_ERROR("%s: \"%s\" must be true or false", what, key);
        return GS_EFORMAT;
    }
    *inout = json_is_true(v);
    return GS_OK;
}

// cfg_first_int: an integer or the first element of a list of integers ("eos_token_id":
// [2, 32000]); null leaves *inout.
static gs_err cfg_first_int(const json_t *obj, const char *key, const char *what, int *inout)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_array(v))
        v = json_array_size(v) ? json_array_get(v, 0) : NULL;
    if (!v || json_is_null(v))
        return GS_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || d != floor(d) || d < -1 || d >= (double)(1 << 30)) {
        GS_LOG_ERROR("%s: \"%s\" must be a token id", what, key);
        return GS_EFORMAT;
    }
    *inout = (int)d;
    return GS_OK;
}

// ---- rope_scaling -------------------------------------------------------------------------

static gs_err parse_rope_scaling(const json_t *rs, const char *what, gs__llama_hparams_t *hp)
{
    if (!rs || json_is_null(rs))
        return GS_OK;
    if (!json_is_object(rs)) {
        GS_LOG_ERROR("%s: \"rope_scaling\" must be an object or null", what);
        return GS_EFORMAT;
    }
    const char *type = json_string_value(json_object_get(rs, "type"));
    if (!type)
        type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type) {
        GS_LOG_ERROR("%s: \"rope_scaling\" has no \"type\"", what);
        return GS_EFORMAT;
    }
    if (strcmp(type, "default") == 0)
        return GS_OK;
    if (strcmp(type, "linear") == 0) {
        hp->rope_type = GS__ROPE_LINEAR;
    } else if (strcmp(type, "dynamic") == 0) {
        hp->rope_type = GS__ROPE_DYNAMIC;
    } else {
        GS_LOG_ERROR("%s: rope_scaling type \"%s\" is not supported (only \"linear\" and "
                     "\"dynamic\")",
                     what, type);
        return GS_EUNSUPPORTED;
    }
    const json_t *f = json_object_get(rs, "factor");
    double factor = json_number_value(f);
    if (!json_is_number(f) || !(factor >= 1.0 && factor <= 1024.0)) {
        GS_LOG_ERROR("%s: rope_scaling \"factor\" must be a number in [1, 1024]", what);
        return GS_EFORMAT;
    }
    hp->rope_factor = (float)factor;
    return GS_OK;
}

// ---- LlamaConfig --------------------------------------------------------------------------

static gs_err llama_from_json(const json_t *cfg, const char *what, gs__llama_hparams_t *hp)
{
    gs__llama_hparams_defaults(hp);
    if (!json_is_object(cfg)) {
        GS_LOG_ERROR("%s: the configuration is not a JSON object", what);
        return GS_EFORMAT;
    }
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt && strcmp(mt, "llama") != 0) {
        GS_LOG_ERROR("%s: model_type \"%s\" is not supported (only \"llama\")", what, mt);
        return GS_EUNSUPPORTED;
    }
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (act && strcmp(act, "silu") != 0) {
        GS_LOG_ERROR("%s: hidden_act \"%s\" is not supported (only \"silu\")", what, act);
        return GS_EUNSUPPORTED;
    }
    bool mlp_bias = false;
    GS_TRY(cfg_bool(cfg, "mlp_bias", what, &mlp_bias));
    if (mlp_bias) {
        GS_LOG_ERROR("%s: mlp_bias is not supported", what);
        return GS_EUNSUPPORTED;
    }
    GS_TRY(cfg_int(cfg, "vocab_size", what, 1, 1 << 24, &hp->vocab_size));
    GS_TRY(cfg_int(cfg, "hidden_size", what, 1, MAX_DIM, &hp->dim));
    GS_TRY(cfg_int(cfg, "intermediate_size", what, 1, MAX_DIM, &hp->hidden_dim));
    GS_TRY(cfg_int(cfg, "num_hidden_layers", what, 1, 4096, &hp->n_layers));
    GS_TRY(cfg_int(cfg, "num_attention_heads", what, 1, 4096, &hp->n_heads));
    GS_TRY(cfg_int(cfg, "num_key_value_heads", what, 1, 4096, &hp->n_kv_heads));
    GS_TRY(cfg_int(cfg, "head_dim", what, 1, 65536, &hp->head_dim));
    GS_TRY(cfg_int(cfg, "max_position_embeddings", what, 1, 1 << 24, &hp->max_pos));
    GS_TRY(cfg_float(cfg, "rms_norm_eps", what, 0.0, 1.0, &hp->norm_eps));
    GS_TRY(cfg_float(cfg, "rope_theta", what, 1.0, 1e12, &hp->rope_theta));
    GS_TRY(cfg_bool(cfg, "tie_word_embeddings", what, &hp->tie_embeddings));
    GS_TRY(cfg_bool(cfg, "attention_bias", what, &hp->attention_bias));
    GS_TRY(cfg_first_int(cfg, "bos_token_id", what, &hp->bos_id));
    GS_TRY(cfg_first_int(cfg, "eos_token_id", what, &hp->eos_id));
    GS_TRY(cfg_first_int(cfg, "pad_token_id", what, &hp->pad_id));
    GS_TRY(parse_rope_scaling(json_object_get(cfg, "rope_scaling"), what, hp));
    if (hp->n_kv_heads == 0)
        hp->n_kv_heads = hp->n_heads;
    if (hp->head_dim == 0) {
        if (hp->dim % hp->n_heads != 0) {
            GS_LOG_ERROR("%s: hidden_size %d is not a multiple of num_attention_heads %d", what,
                         hp->dim, hp->n_heads);
            return GS_EFORMAT;
        }
        hp->head_dim = hp->dim / hp->n_heads;
    }
    if (hp->n_heads % hp->n_kv_heads != 0) {
        GS_LOG_ERROR("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", what,
                     hp->n_heads, hp->n_kv_heads);
        return GS_EFORMAT;
    }
    if (hp->head_dim % 2 != 0 || (int64_t)hp->head_dim * hp->n_heads > MAX_DIM) {
        GS_LOG_ERROR("%s: head size %d is odd or too large", what, hp->head_dim);
        return GS_EFORMAT;
    }
    return GS_OK;
}

gs_err gs__llama_config_parse(const char *json_text, size_t nbytes, const char *what,
                              gs__llama_hparams_t *out)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(json_text, nbytes, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!cfg) {
        GS_LOG_ERROR("%s: not valid JSON: %s (line %d)", what, jerr.text, jerr.line);
        gs__llama_hparams_defaults(out);
        return GS_EFORMAT;
    }
    gs_err err = llama_from_json(cfg, what, out);
    json_decref(cfg);
    return err;
}

// ---- LlavaConfig --------------------------------------------------------------------------

// The vision tower LlavaConfig builds when config.json has no vision_config (v4.40).
static const char default_vision_json[] =
    "{\"model_type\": \"clip_vision_model\", \"intermediate_size\": 4096, \"hidden_size\": 1024,"
    " \"patch_size\": 14, \"image_size\": 336, \"num_hidden_layers\": 24,"
    " \"num_attention_heads\": 16, \"vocab_size\": 32000, \"projection_dim\": 768}";

void gs__llava_config_cleanup(gs__llava_config_t *c)
{
    GS_FREE(c->vision_json);
}

static gs_err llava_from_json(const json_t *cfg, const char *what, gs__llava_config_t *out)
{
    if (!json_is_object(cfg)) {
        GS_LOG_ERROR("%s: the configuration is not a JSON object", what);
        return GS_EFORMAT;
    }
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt && strcmp(mt, "llava") != 0) {
        GS_LOG_ERROR("%s: model_type \"%s\" is not a LLaVA model (\"llava\")", what, mt);
        return GS_EUNSUPPORTED;
    }
    const json_t *text = json_object_get(cfg, "text_config");
    if (text && !json_is_null(text)) {
        GS_TRY(llama_from_json(text, what, &out->text));
    } else { // LlamaConfig() defaults
        json_t *empty = json_object();
        gs_err err = llama_from_json(empty, what, &out->text);
        json_decref(empty);
        GS_TRY(err);
    }
    const json_t *vis = json_object_get(cfg, "vision_config");
    if (vis && !json_is_null(vis)) {
        if (!json_is_object(vis)) {
            GS_LOG_ERROR("%s: \"vision_config\" must be an object", what);
            return GS_EFORMAT;
        }
        const char *vmt = json_string_value(json_object_get(vis, "model_type"));
        if (vmt && strcmp(vmt, "clip_vision_model") != 0) {
            GS_LOG_ERROR("%s: vision tower \"%s\" is not supported (only clip_vision_model)", what,
                         vmt);
            return GS_EUNSUPPORTED;
        }
        size_t n = json_dumpb(vis, NULL, 0, JSON_COMPACT);
        if (n == 0)
            return GS_EFORMAT;
        out->vision_json = gs_xmalloc(n + 1);
        json_dumpb(vis, out->vision_json, n, JSON_COMPACT);
        out->vision_json[n] = '\0';
    } else {
        out->vision_json = gs_xstrdup(default_vision_json);
    }
    const char *act = json_string_value(json_object_get(cfg, "projector_hidden_act"));
    if (act && strcmp(act, "gelu") != 0) {
        GS_LOG_ERROR("%s: projector_hidden_act \"%s\" is not supported (only \"gelu\")", what, act);
        return GS_EUNSUPPORTED;
    }
    const char *sel = json_string_value(json_object_get(cfg, "vision_feature_select_strategy"));
    if (sel && strcmp(sel, "default") != 0 && strcmp(sel, "full") != 0) {
        GS_LOG_ERROR("%s: vision_feature_select_strategy \"%s\" is not supported", what, sel);
        return GS_EUNSUPPORTED;
    }
    out->select_full = sel && strcmp(sel, "full") == 0;
    if (json_is_array(json_object_get(cfg, "vision_feature_layer"))) {
        GS_LOG_ERROR("%s: a list of vision_feature_layer is not supported", what);
        return GS_EUNSUPPORTED;
    }
    GS_TRY(cfg_int(cfg, "vision_feature_layer", what, -4096, 4096, &out->vision_feature_layer));
    GS_TRY(cfg_int(cfg, "image_token_index", what, 0, (1 << 24) - 1, &out->image_token_index));
    GS_TRY(cfg_first_int(cfg, "pad_token_id", what, &out->pad_token_id));
    return GS_OK;
}

gs_err gs__llava_config_parse(const char *json_text, size_t nbytes, const char *what,
                              gs__llava_config_t *out)
{
    memset(out, 0, sizeof *out);
    out->image_token_index = 32000;
    out->pad_token_id = -1;
    out->vision_feature_layer = -2;
    json_error_t jerr;
    json_t *cfg = json_loadb(json_text, nbytes, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!cfg) {
        GS_LOG_ERROR("%s: not valid JSON: %s (line %d)", what, jerr.text, jerr.line);
        gs__llama_hparams_defaults(&out->text);
        return GS_EFORMAT;
    }
    gs_err err = llava_from_json(cfg, what, out);
    json_decref(cfg);
    out->bos_id = out->text.bos_id;
    out->eos_ids[0] = out->text.eos_id;
    out->n_eos = out->text.eos_id >= 0 ? 1 : 0;
    if (err != GS_OK)
        gs__llava_config_cleanup(out);
    return err;
}

gs_err gs__llava_genconfig_parse(const char *json_text, size_t nbytes, const char *what,
                                 gs__llava_config_t *inout)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(json_text, nbytes, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!cfg || !json_is_object(cfg)) {
        GS_LOG_ERROR("%s: not a JSON object: %s (line %d)", what, cfg ? "" : jerr.text, jerr.line);
        json_decref(cfg);
        return GS_EFORMAT;
    }
    gs_err err = cfg_first_int(cfg, "bos_token_id", what, &inout->bos_id);
    const json_t *eos = json_object_get(cfg, "eos_token_id");
    if (err == GS_OK && eos && !json_is_null(eos)) {
        json_t *one = json_is_array(eos) ? NULL : json_array();
        if (one)
            json_array_append((json_t *)one, (json_t *)eos);
        const json_t *list = one ? one : eos;
        size_t n = json_array_size(list);
        inout->n_eos = 0;
        for (size_t i = 0; i < n && err == GS_OK; i++) {
            double d = json_number_value(json_array_get(list, i));
            if (!json_is_number(json_array_get(list, i)) || d != floor(d) || d < 0 ||
                d >= (double)(1 << 30)) {
                GS_LOG_ERROR("%s: \"eos_token_id\" must be token ids", what);
                err = GS_EFORMAT;
            } else if (inout->n_eos < GS__LLAVA_MAX_EOS) {
                inout->eos_ids[inout->n_eos++] = (int)d;
            }
        }
        json_decref(one);
    }
    json_decref(cfg);
    return err;
}
