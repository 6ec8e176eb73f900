// `geoscribe inspect-model`: what a CLIP model is (architecture, dimensions, dtypes, parameter
// count, preprocessing, identity hash), read from its files. For a bare weights file without
// --arch / --config it lists the tensors' summary and the built-in architectures whose shapes
// match, so a user can tell what a downloaded .pt is before using it.
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clip_cli.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/clip.h"
#include "model/weights.h"

static void json_str_or_null(gs_buf_t *b, const char *s)
{
    if (s)
        gs_buf_json_str(b, s);
    else
        gs_buf_puts(b, "null");
}

// inspect_weights: a bare file: tensor count, parameters, dtypes, matching archs.
static int inspect_weights(const char *path, gs_format_t fmt)
{
    gs_weights_t *w = NULL;
    if (gs_weights_open(path, &w) != GS_OK) {
        fprintf(stderr, "geoscribe inspect-model: could not read \"%s\"\n", path);
        return 1;
    }
    int64_t n_params = 0;
    unsigned mask = 0;
    size_t n = gs_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const gs_tensor_t *t = gs_weights_at(w, i);
        n_params += t->n_elems;
        mask |= 1u << t->dtype;
    }
    char dtypes[128] = "";
    size_t len = 0;
    for (int d = 0; d < 16; d++)
        if (mask & (1u << d))
            len += (size_t)snprintf(dtypes + len, sizeof dtypes - len, "%s%s", len ? "," : "",
                                    gs_dtype_name((gs_dtype_t)d));
    gs_weights_close(&w);
    char guess[512] = "";
    gs_clip_guess_arch(path, guess, sizeof guess);
    gs_buf_t b;
    gs_buf_init(&b, 1 << 16);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_puts(&b, "{\"path\":");
        gs_buf_json_str(&b, path);
        gs_buf_printf(&b,
                      ",\"kind\":\"weights\",\"n_tensors\":%zu,\"n_params\":%lld,\"dtypes\":", n,
                      (long long)n_params);
        gs_buf_json_str(&b, dtypes);
        gs_buf_puts(&b, ",\"matching_archs\":");
        gs_buf_json_str(&b, guess);
        gs_buf_puts(&b, "}");
    } else {
        gs_buf_printf(&b, "%s: weights file, %zu tensors, %lld parameters, dtypes %s\n", path, n,
                      (long long)n_params, dtypes);
        gs_buf_printf(&b, "  %s\n",
                      guess[0] ? "tensor shapes match:"
                               : "no built-in open_clip "
                                 "architecture matches");
        if (guess[0])
            gs_buf_printf(&b, "    %s\n", guess);
        gs_buf_puts(&b, "  give the architecture with --arch NAME or --config FILE");
    }
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
    return 0;
}

static void describe_json(gs_buf_t *b, const char *path, gs_clip_t *m)
{
    gs_clip_info_t i;
    gs_clip_describe(m, &i);
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    gs_buf_puts(b, "{\"path\":");
    gs_buf_json_str(b, path);
    gs_buf_puts(b, ",\"kind\":\"clip\",\"arch\":");
    gs_buf_json_str(b, i.arch);
    gs_buf_printf(b, ",\"layout\":\"%s\",\"weights\":", i.layout);
    gs_buf_json_str(b, i.weights_path);
    gs_buf_puts(b, ",\"config\":");
    json_str_or_null(b, i.config_path);
    gs_buf_puts(b, ",\"vocab\":");
    json_str_or_null(b, i.vocab_path);
    gs_buf_printf(b,
                  ",\"activation\":\"%s\",\"dtypes\":\"%s\",\"precision\":\"%s\",\"gemm\":\"%s\","
                  "\"embed_dim\":%d",
                  i.activation, i.dtypes, i.precision, i.gemm, i.embed_dim);
    gs_buf_printf(b,
                  ",\"vision\":{\"image_size\":%d,\"patch_size\":%d,\"width\":%d,\"layers\":%d,"
                  "\"heads\":%d,\"mlp\":%d,\"n_params\":%lld}",
                  i.image_size, i.patch_size, i.vision_width, i.vision_layers, i.vision_heads,
                  i.vision_mlp, (long long)i.n_params_vision);
    gs_buf_printf(b,
                  ",\"text\":{\"context_length\":%d,\"vocab_size\":%d,\"width\":%d,"
                  "\"layers\":%d,\"heads\":%d,\"mlp\":%d,\"n_params\":%lld}",
                  i.context_length, i.vocab_size, i.text_width, i.text_layers, i.text_heads,
                  i.text_mlp, (long long)i.n_params_text);
    gs_buf_printf(b, ",\"n_params\":%lld,\"logit_scale\":%.9g", (long long)i.n_params,
                  i.logit_scale);
    gs_buf_printf(b,
                  ",\"preprocess\":{\"size\":%d,\"crop\":\"%s\",\"mean\":[%.9g,%.9g,%.9g],"
                  "\"std\":[%.9g,%.9g,%.9g]}",
                  pc.size, pc.crop == GS_CROP_HF ? "hf" : "open_clip", pc.mean[0], pc.mean[1],
                  pc.mean[2], pc.std[0], pc.std[1], pc.std[2]);
    gs_buf_printf(b, ",\"model_id\":\"%s\"}", gs_clip_model_id(m));
}

static void describe_text(gs_buf_t *b, const char *path, gs_clip_t *m)
{
    gs_clip_info_t i;
    gs_clip_describe(m, &i);
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    gs_buf_printf(b, "%s: CLIP %s (%s layout)\n", path, i.arch, i.layout);
    gs_buf_printf(b, "  weights     %s (%s; GEMMs in %s on %s)\n", i.weights_path, i.dtypes,
                  i.precision, i.gemm);
    gs_buf_printf(b, "  config      %s\n", i.config_path ? i.config_path : "(built-in arch)");
    gs_buf_printf(b, "  vocabulary  %s\n", i.vocab_path ? i.vocab_path : "(none found)");
    gs_buf_printf(b, "  embedding   %d, logit scale %.4g\n", i.embed_dim, i.logit_scale);
    gs_buf_printf(b,
                  "  vision      %dx%d px, patch %d, width %d, %d layers, %d heads, mlp %d, "
                  "%lld params\n",
                  i.image_size, i.image_size, i.patch_size, i.vision_width, i.vision_layers,
                  i.vision_heads, i.vision_mlp, (long long)i.n_params_vision);
    gs_buf_printf(b,
                  "  text        context %d, vocab %d, width %d, %d layers, %d heads, mlp %d, "
                  "%lld params\n",
                  i.context_length, i.vocab_size, i.text_width, i.text_layers, i.text_heads,
                  i.text_mlp, (long long)i.n_params_text);
    gs_buf_printf(b, "  activation  %s\n  parameters  %lld\n", i.activation, (long long)i.n_params);
    gs_buf_printf(b, "  preprocess  %s crop, mean %.4g %.4g %.4g, std %.4g %.4g %.4g\n",
                  pc.crop == GS_CROP_HF ? "CLIPImageProcessor" : "open_clip", pc.mean[0],
                  pc.mean[1], pc.mean[2], pc.std[0], pc.std[1], pc.std[2]);
    gs_buf_printf(b, "  model id    %s", gs_clip_model_id(m));
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"arch", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'C'},
                                         {"precision", required_argument, NULL, 'P'},
                                         {"vocab", required_argument, NULL, 'V'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0}};
    gs_cli_clip_args_t a = {.threads = 1};
    gs_format_t fmt = GS_FORMAT_TEXT;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = gs_cli_clip_option("inspect-model", c, optarg, &a);
        if (r == 0)
            continue;
        if (r == 2 || c == '?')
            return 2;
        if (c == 'f' && gs_cli_parse_format("inspect-model", optarg, false, &fmt) != 0)
            return 2;
    }
    if (!a.model && optind < argc)
        a.model = argv[optind++];
    if (!a.model || optind < argc)
        return gs_cli_usage_error("inspect-model", "give one model (a folder or a weights file)");
    if (!gs_is_dir(a.model) && gs_path_exists(a.model) && !a.arch && !a.config)
        return inspect_weights(a.model, fmt);
    gs_clip_t *m = NULL;
    if (gs_cli_clip_open("inspect-model", &a, 1, &m) != GS_OK)
        return 1;
    gs_buf_t b;
    gs_buf_init(&b, 1 << 16);
    if (fmt == GS_FORMAT_JSON)
        describe_json(&b, a.model, m);
    else
        describe_text(&b, a.model, m);
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
    gs_clip_close(&m);
    return 0;
}

const gs_cli_cmd_t gs_cli_cmd_inspect_model = {
    .name = "inspect-model",
    .summary = "architecture, dimensions, dtypes and parameter count of a model",
    .usage = "usage: geoscribe inspect-model M [--arch NAME | --config FILE] [--vocab FILE]\n"
             "                               [--precision f32|bf16] [--format text|json]\n\n"
             "Describes the CLIP model M (a folder in the open_clip hub or Hugging Face layout,\n"
             "or a weights file with --arch / --config): architecture, layout, dimensions of\n"
             "both towers, activation, stored dtypes, parameter count, preprocessing, the\n"
             "vocabulary found and the model id (a hash of the weights recorded with every\n"
             "embedding). A weights file given without --arch / --config is summarised (tensors,\n"
             "parameters, dtypes) with the built-in architectures its tensor shapes match.",
    .order = 26,
    .run = run,
};
