// libFuzzer target for the Hugging Face configuration readers of the captioner: the input is
// a config.json (or generation_config.json) and goes through the LlavaConfig, LlamaConfig and
// generation-config readers (model/llava_config.c), and a parsed vision_config through the
// CLIP vision reader. Whatever is accepted must be usable: positive sizes, heads dividing,
// an even head size, a known RoPE type. Seeds: tests/fuzz/corpus/hf_config/ (real-shaped
// configs of llava-hf, LLaMA-2 and the llava_tiny fixture, and broken variants).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "model/clip_int.h"
#include "model/llava_int.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hf_config: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void quiet(gs_log_level_t level, const char *line, void *ud)
{
    (void)level, (void)line, (void)ud;
}

static void check_llama(const gs__llama_hparams_t *hp)
{
    CHECK(hp->vocab_size > 0 && hp->dim > 0 && hp->hidden_dim > 0 && hp->n_layers > 0);
    CHECK(hp->n_heads > 0 && hp->n_kv_heads > 0 && hp->n_heads % hp->n_kv_heads == 0);
    CHECK(hp->head_dim > 0 && hp->head_dim % 2 == 0);
    CHECK(hp->max_pos > 0 && hp->norm_eps >= 0 && hp->rope_theta >= 1);
    CHECK(hp->rope_type >= GS__ROPE_NONE && hp->rope_type <= GS__ROPE_DYNAMIC);
    CHECK(hp->rope_factor >= 1.0f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gs_log_set(quiet, NULL);
    const char *text = (const char *)data;
    gs__llama_hparams_t hp;
    if (gs__llama_config_parse(text, size, "fuzz", &hp) == GS_OK)
        check_llama(&hp);
    gs__llava_config_t cfg;
    if (gs__llava_config_parse(text, size, "fuzz", &cfg) == GS_OK) {
        check_llama(&cfg.text);
        CHECK(cfg.vision_json != NULL);
        CHECK(cfg.n_eos >= 0 && cfg.n_eos <= GS__LLAVA_MAX_EOS);
        gs__clip_hparams_t v;
        if (gs__clip_hparams_hf_vision(cfg.vision_json, "fuzz", &v) == GS_OK)
            CHECK(v.image_size > 0 && v.patch_size > 0 && v.v_width > 0 && v.v_layers > 0);
        gs_err e = gs__llava_genconfig_parse(text, size, "fuzz", &cfg);
        CHECK(e == GS_OK || e == GS_EFORMAT);
        CHECK(cfg.n_eos >= 0 && cfg.n_eos <= GS__LLAVA_MAX_EOS);
        gs__llava_config_cleanup(&cfg);
        CHECK(cfg.vision_json == NULL);
    } else {
        CHECK(cfg.vision_json == NULL);
    }
    return 0;
}
