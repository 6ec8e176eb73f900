// `geoscribe caption`: a caption, an answer (VQA) or a change caption from a LLaVA-1.5
// model (Hugging Face llava layout) for one or more images. Greedy decoding by default
// (token-for-token equal to transformers); beam search and sampling as options.
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "jobs/raster.h"
#include "model/llava.h"

#define MAX_IMAGES 4
#define MAX_TOKENS 4096

typedef struct {
    const char *model;
    const char *images[MAX_IMAGES];
    int n_images;
    const char *prompt;
    bool raw;
    int threads, n_ctx;
    gs_llava_gen_t gen;
    bool sampling_opt; // --temperature / --top-p / --top-k given
    gs_format_t fmt;
} args_t;

static int parse_float(const char *opt, const char *arg, double lo, double hi, float *out)
{
    double v;
    if (gs_parse_f64(arg, &v) != GS_OK || v < lo || v > hi)
        return gs_cli_usage_error("caption", "%s wants a number from %g to %g, not \"%s\"", opt, lo,
                                  hi, arg);
    *out = (float)v;
    return 0;
}

static int parse_int(const char *opt, const char *arg, int lo, int hi, int *out)
{
    if (gs_parse_int(arg, lo, hi, out) != GS_OK)
        return gs_cli_usage_error("caption", "%s wants a number from %d to %d, not \"%s\"", opt, lo,
                                  hi, arg);
    return 0;
}

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"prompt", required_argument, NULL, 'p'},
                                         {"raw-prompt", required_argument, NULL, 'r'},
                                         {"max-tokens", required_argument, NULL, 'n'},
                                         {"beams", required_argument, NULL, 'b'},
                                         {"length-penalty", required_argument, NULL, 'L'},
                                         {"temperature", required_argument, NULL, 't'},
                                         {"top-p", required_argument, NULL, 'P'},
                                         {"top-k", required_argument, NULL, 'k'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0}};
    int c, rc = 0;
    uint64_t seed;
    bool have_prompt = false;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'i':
            if (a->n_images == MAX_IMAGES)
                return gs_cli_usage_error("caption", "at most %d images", MAX_IMAGES);
            a->images[a->n_images++] = optarg;
            break;
        case 'p':
        case 'r':
            if (have_prompt)
                return gs_cli_usage_error("caption", "give one of --prompt and --raw-prompt");
            have_prompt = true;
            a->prompt = optarg;
            a->raw = c == 'r';
            break;
        case 'n':
            rc = parse_int("--max-tokens", optarg, 1, MAX_TOKENS, &a->gen.max_new_tokens);
            break;
        case 'b': rc = parse_int("--beams", optarg, 1, 16, &a->gen.num_beams); break;
        case 'L':
            rc = parse_float("--length-penalty", optarg, -10, 10, &a->gen.length_penalty);
            break;
        case 't':
            rc = parse_float("--temperature", optarg, 1e-6, 100, &a->gen.temperature);
            a->sampling_opt = true;
            break;
        case 'P':
            rc = parse_float("--top-p", optarg, 1e-6, 1, &a->gen.top_p);
            a->sampling_opt = true;
            break;
        case 'k':
            rc = parse_int("--top-k", optarg, 0, 1 << 24, &a->gen.top_k);
            a->sampling_opt = true;
            break;
        case 's':
            if (gs_parse_u64(optarg, &seed) != GS_OK)
                return gs_cli_usage_error("caption", "--seed wants a non-negative integer");
            a->gen.seed = seed;
            break;
        case 'T': rc = parse_int("--threads", optarg, 1, 256, &a->threads); break;
        case 'c': rc = parse_int("--ctx", optarg, 16, 1 << 20, &a->n_ctx); break;
        case 'f':
            if (gs_cli_parse_format("caption", optarg, false, &a->fmt) != 0)
                return 2;
            break;
        default: return gs_cli_usage_error("caption", "unknown option");
        }
    }
    if (rc != 0)
        return rc;
    if (optind < argc)
        return gs_cli_usage_error("caption", "unexpected argument \"%s\"", argv[optind]);
    if (!a->model)
        return gs_cli_usage_error("caption", "--model is required");
    if (a->n_images == 0)
        return gs_cli_usage_error("caption", "--image is required (once or twice)");
    a->gen.do_sample = a->sampling_opt;
    if (a->gen.do_sample && a->gen.num_beams > 1)
        return gs_cli_usage_error("caption", "--beams cannot be combined with sampling options");
    return 0;
}

static void print_result(const args_t *a, const char *prompt, const int32_t *ids, int n,
                         const char *text)
{
    gs_buf_t b;
    gs_buf_init(&b, 1 << 24);
    if (a->fmt == GS_FORMAT_JSON) {
        gs_buf_puts(&b, "{\"images\":[");
        for (int i = 0; i < a->n_images; i++) {
            if (i)
                gs_buf_puts(&b, ",");
            gs_buf_json_str(&b, a->images[i]);
        }
        gs_buf_puts(&b, "],\"prompt\":");
        gs_buf_json_str(&b, prompt);
        gs_buf_puts(&b, ",\"ids\":[");
        for (int i = 0; i < n; i++)
            gs_buf_printf(&b, "%s%d", i ? "," : "", ids[i]);
        gs_buf_puts(&b, "],\"text\":");
        gs_buf_json_str(&b, text);
        gs_buf_puts(&b, "}");
    } else {
        gs_buf_puts(&b, text);
    }
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
}

static int run(int argc, char **argv)
{
    args_t a = {.gen = gs_llava_gen_defaults(), .threads = 0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.threads <= 0) { // default: every online core
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a.threads = n > 0 ? (int)(n < 16 ? n : 16) : 1;
    }
    gs_llava_image_t img[MAX_IMAGES] = {{0}};
    uint8_t *rgb[MAX_IMAGES] = {0};
    gs_llava_t *m = NULL;
    int32_t *ids = gs_xmalloc(MAX_TOKENS * sizeof *ids);
    gs_buf_t prompt, text;
    gs_buf_init(&prompt, 1 << 20);
    gs_buf_init(&text, 1 << 22);
    rc = 1;
    for (int i = 0; i < a.n_images; i++) {
        gs_err e = gs_raster_read_rgb8(a.images[i], &rgb[i], &img[i].w, &img[i].h);
        if (e != GS_OK) {
            fprintf(stderr, "geoscribe caption: could not read image \"%s\": %s\n", a.images[i],
                    gs_strerror(e));
            goto out;
        }
        img[i].rgb = rgb[i];
    }
    gs_llava_opts_t o = {.n_threads = a.threads,
                         .n_ctx = a.n_ctx,
                         .max_images = a.n_images,
                         .max_beams = a.gen.num_beams};
    gs_err e = gs_llava_open(a.model, &o, &m);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe caption: could not open model \"%s\": %s\n", a.model,
                gs_strerror(e));
        goto out;
    }
    e = a.raw ? gs_buf_puts(&prompt, a.prompt) : gs_llava_prompt(a.prompt, a.n_images, &prompt);
    int n = 0;
    if (e == GS_OK)
        e = gs_llava_caption(m, img, a.n_images, prompt.data, true, &a.gen, ids, MAX_TOKENS, &n,
                             &text);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe caption: captioning failed: %s\n", gs_strerror(e));
        goto out;
    }
    print_result(&a, prompt.data, ids, n, text.data ? text.data : "");
    rc = 0;
out:
    gs_llava_close(&m);
    for (int i = 0; i < a.n_images; i++)
        gs_free(rgb[i]);
    gs_free(ids);
    gs_buf_cleanup(&prompt);
    gs_buf_cleanup(&text);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_caption = {
    .name = "caption",
    .summary = "caption an image, answer a question about it, or describe a change (LLaVA)",
    .usage =
        "usage: geoscribe caption --model M --image FILE [--image FILE2]\n"
        "                         [--prompt P | --raw-prompt P] [--max-tokens N]\n"
        "                         [--beams N [--length-penalty L]]\n"
        "                         [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
        "                         [--threads N] [--ctx N] [--format text|json]\n\n"
        "Runs a LLaVA-1.5 model (Hugging Face llava layout: config.json, model.safetensors or\n"
        "shards, tokenizer.model, preprocessor_config.json) on one or more images.\n\n"
        "  --prompt P        a question, wrapped in the LLaVA-1.5 template\n"
        "                    \"USER: <image>\\n{P} ASSISTANT:\" with one <image> per image.\n"
        "                    Default: \"Describe this image.\" for one image, \"Describe what\n"
        "                    changed from the first image to the second image.\" for two\n"
        "  --raw-prompt P    the prompt verbatim; it must hold one <image> per image\n"
        "  --max-tokens N    tokens generated at most (64); generation stops at EOS\n"
        "  --beams N         beam search with N beams (transformers semantics); default greedy\n"
        "  --length-penalty  beam scores are logprob / length^L (1)\n"
        "  --temperature T, --top-p P, --top-k K (50), --seed S (0)\n"
        "                    sample instead of taking the most likely token; the stream is\n"
        "                    geoscribe's own, so samples differ from PyTorch's\n"
        "  --threads N       threads (default: all cores, at most 16)\n"
        "  --ctx N           KV cache rows: prompt + image features + generated tokens x beams\n"
        "                    (default min(max_position_embeddings, 2048); 1 MiB a row for 7B)\n\n"
        "--format json prints {\"images\":[...],\"prompt\":...,\"ids\":[generated "
        "ids],\"text\":...}.\n"
        "Example: geoscribe caption --model llava-1.5-7b-hf --image before.png --image after.png\n"
        "         --format json",
    .order = 28,
    .run = run,
};
