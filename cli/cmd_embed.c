// `geoscribe embed`: L2-normalised CLIP embeddings of images and texts, in command-line order.
// Also home of the helpers the other CLIP commands share (classify, tokenize, inspect-model):
// model options, opening the model, reading and preprocessing one image.
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clip_cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "jobs/raster.h"
#include "model/clip.h"
#include "model/preprocess.h"

// ---- shared by the CLIP commands ----------------------------------------------------------

// gs_cli_clip_option: handles the model options (m: --model, A: --arch, C: --config,
// V: --vocab, T: --threads, P: --precision). Returns 0 when handled, 2 on a usage error (printed),
// -1 when `c` is not a model option.
int gs_cli_clip_option(const char *cmd, int c, const char *arg, gs_cli_clip_args_t *a)
{
    switch (c) {
    case 'm': a->model = arg; return 0;
    case 'A': a->arch = arg; return 0;
    case 'C': a->config = arg; return 0;
    case 'V': a->vocab = arg; return 0;
    case 'P':
        if (strcmp(arg, "f32") == 0)
            a->precision = GS_CLIP_PRECISION_F32;
        else if (strcmp(arg, "bf16") == 0)
            a->precision = GS_CLIP_PRECISION_BF16;
        else
            return gs_cli_usage_error(cmd, "--precision is f32 or bf16, not \"%s\"", arg);
        return 0;
    case 'T':
        if (gs_parse_int(arg, 1, 256, &a->threads) != GS_OK)
            return gs_cli_usage_error(cmd, "--threads wants a number from 1 to 256, not \"%s\"",
                                      arg);
        return 0;
    default: return -1;
    }
}

// gs_cli_clip_open: opens a->model with the options; errors are logged by the model.
gs_err gs_cli_clip_open(const char *cmd, const gs_cli_clip_args_t *a, int max_batch,
                        gs_clip_t **out)
{
    int threads = a->threads;
    if (threads <= 0) { // default: every online core
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)(n < 16 ? n : 16) : 1;
    }
    gs_clip_opts_t o = {.arch = a->arch,
                        .config_path = a->config,
                        .vocab_path = a->vocab,
                        .n_threads = threads,
                        .max_batch = max_batch,
                        .precision = a->precision};
    gs_err e = gs_clip_open(a->model, &o, out);
    if (e != GS_OK)
        fprintf(stderr, "geoscribe %s: could not open model \"%s\": %s\n", cmd, a->model,
                gs_strerror(e));
    return e;
}

// gs_cli_clip_read_image: decodes `path` (PNG, JPEG, TIFF, anything GDAL reads) and
// preprocesses it for the model into out_chw (3 x S x S floats).
gs_err gs_cli_clip_read_image(gs_clip_t *m, const char *path, float *out_chw)
{
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    GS_TRY(gs_raster_read_rgb8(path, &rgb, &w, &h));
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    void *scratch = gs_trymalloc(gs_preprocess_scratch_nbytes(w, h, pc.size) + 1);
    gs_err e = scratch ? gs_preprocess_image(rgb, w, h, &pc, scratch, out_chw) : GS_ENOMEM;
    gs_free(scratch);
    gs_free(rgb);
    return e;
}

// gs_cli_json_floats: "[v0,v1,...]" with float round-trip precision.
void gs_cli_json_floats(gs_buf_t *b, const float *v, int n)
{
    gs_buf_puts(b, "[");
    for (int i = 0; i < n; i++)
        gs_buf_printf(b, "%s%.9g", i ? "," : "", v[i]);
    gs_buf_puts(b, "]");
}

// ---- embed --------------------------------------------------------------------------------

typedef struct {
    bool is_image;
    const char *value;
} input_t;

static void print_one(gs_format_t fmt, const input_t *in, const float *v, int dim)
{
    gs_buf_t b;
    gs_buf_init(&b, (size_t)dim * 20 + 65536);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_printf(&b, "{\"kind\":\"%s\",\"input\":", in->is_image ? "image" : "text");
        gs_buf_json_str(&b, in->value);
        gs_buf_printf(&b, ",\"dim\":%d,\"embedding\":", dim);
        gs_cli_json_floats(&b, v, dim);
        gs_buf_puts(&b, "}");
    } else {
        gs_buf_printf(&b, "%s %s dim=%d [", in->is_image ? "image" : "text ", in->value, dim);
        for (int i = 0; i < dim && i < 6; i++)
            gs_buf_printf(&b, "%s%.5f", i ? " " : "", v[i]);
        gs_buf_puts(&b, dim > 6 ? " ...]" : "]");
    }
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
}

// embed_run: encodes the inputs [first, first + n), all of one kind, and prints them.
static int embed_run(gs_clip_t *m, gs_format_t fmt, const input_t *in, int n, float *pixels,
                     float *out)
{
    int dim = gs_clip_dim(m), S = gs_clip_image_size(m);
    gs_err e;
    if (in[0].is_image) {
        for (int i = 0; i < n; i++) {
            e = gs_cli_clip_read_image(m, in[i].value, pixels + (size_t)i * 3 * S * S);
            if (e != GS_OK) {
                fprintf(stderr, "geoscribe embed: could not read image \"%s\": %s\n", in[i].value,
                        gs_strerror(e));
                return 1;
            }
        }
        e = gs_clip_encode_images(m, pixels, n, true, out);
    } else {
        const char *texts[64];
        for (int i = 0; i < n; i++)
            texts[i] = in[i].value;
        e = gs_clip_encode_texts(m, texts, n, true, out);
    }
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe embed: could not encode: %s\n", gs_strerror(e));
        return 1;
    }
    for (int i = 0; i < n; i++)
        print_one(fmt, &in[i], out + (size_t)i * dim, dim);
    fflush(stdout);
    return 0;
}

enum { BATCH = 16 };

static int run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"arch", required_argument, NULL, 'A'},
        {"config", required_argument, NULL, 'C'}, {"precision", required_argument, NULL, 'P'},
        {"vocab", required_argument, NULL, 'V'},  {"threads", required_argument, NULL, 'T'},
        {"image", required_argument, NULL, 'i'},  {"text", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'}, {0}};
    gs_cli_clip_args_t a = {0};
    gs_format_t fmt = GS_FORMAT_TEXT;
    input_t *inputs = gs_xcalloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0, c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = gs_cli_clip_option("embed", c, optarg, &a);
        if (r == 0)
            continue;
        if (r == 2 || c == '?') {
            rc = 2;
            goto out;
        }
        if (c == 'i' || c == 't')
            inputs[n_inputs++] = (input_t){c == 'i', optarg};
        else if (c == 'f' && gs_cli_parse_format("embed", optarg, false, &fmt) != 0) {
            rc = 2;
            goto out;
        }
    }
    if (optind < argc) {
        rc = gs_cli_usage_error("embed",
                                "unexpected argument \"%s\" (inputs go after --image "
                                "or --text)",
                                argv[optind]);
        goto out;
    }
    if (!a.model || n_inputs == 0) {
        rc = gs_cli_usage_error("embed", "%s",
                                !a.model ? "--model is required"
                                         : "give at least one --image or --text");
        goto out;
    }
    gs_clip_t *m = NULL;
    if (gs_cli_clip_open("embed", &a, BATCH, &m) != GS_OK) {
        rc = 1;
        goto out;
    }
    int S = gs_clip_image_size(m);
    float *pixels = gs_trymalloc((size_t)BATCH * 3 * S * S * sizeof(float));
    float *emb = gs_xmalloc((size_t)BATCH * gs_clip_dim(m) * sizeof(float));
    if (!pixels) {
        fprintf(stderr, "geoscribe embed: out of memory\n");
        rc = 1;
    }
    // runs of the same kind, in command-line order, at most BATCH at a time
    for (int i = 0; rc == 0 && i < n_inputs;) {
        int n = 1;
        while (i + n < n_inputs && n < BATCH && inputs[i + n].is_image == inputs[i].is_image)
            n++;
        rc = embed_run(m, fmt, inputs + i, n, pixels, emb);
        i += n;
    }
    gs_free(pixels);
    gs_free(emb);
    gs_clip_close(&m);
out:
    gs_free(inputs);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_embed = {
    .name = "embed",
    .summary = "CLIP embeddings (L2-normalised) of images and texts",
    .usage =
        "usage: geoscribe embed --model M [--arch NAME | --config FILE] [--vocab FILE]\n"
        "                       [--threads N] [--precision f32|bf16] [--format text|json]\n"
        "                       [--image FILE]... [--text TEXT]...\n\n"
        "Prints one L2-normalised embedding per input, in the order given; with --format json\n"
        "one object per line: {\"kind\":\"image\"|\"text\",\"input\":...,\"dim\":N,"
        "\"embedding\":[...]}.\n\n"
        "Model options (shared by embed, classify, tokenize, inspect-model):\n"
        "  --model M       a folder in the open_clip hub layout (open_clip_config.json +\n"
        "                  open_clip_model.safetensors) or the Hugging Face layout (config.json +\n"
        "                  model.safetensors), detected from its files; or a weights file\n"
        "                  (.pt/.bin/.safetensors state dict, e.g. RemoteCLIP-ViT-B-32.pt) with\n"
        "                  --arch or --config\n"
        "  --arch NAME     open_clip architecture of a weights file: ViT-B-32, ViT-B-16,\n"
        "                  ViT-L-14, ViT-L-14-336, ViT-H-14 (GELU), or the same with\n"
        "                  -quickgelu (OpenAI-style QuickGELU); see docs/MODELS.md\n"
        "  --config FILE   an open_clip config (open_clip_config.json or a model config) or an\n"
        "                  HF config.json instead of --arch\n"
        "  --vocab FILE    the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, or vocab.json with\n"
        "                  merges.txt beside it); default: found next to the weights\n"
        "  --threads N     threads (default: every core, at most 16)\n"
        "  --precision P   f32 (default) or bf16: bfloat16 GEMMs on AVX-512 BF16 (needs a\n"
        "                  build with oneDNN; cosine >= 0.999 to f32)\n\n"
        "Images are read with GDAL (PNG, JPEG, TIFF, ...) and preprocessed as the model's\n"
        "library does (open_clip or CLIPImageProcessor). Example:\n"
        "  geoscribe embed --model RemoteCLIP-ViT-B-32.pt --arch ViT-B-32 \\\n"
        "      --vocab bpe_simple_vocab_16e6.txt.gz --image tile.png --text \"a harbor\"",
    .order = 20,
    .run = run,
};
