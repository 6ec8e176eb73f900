// `geoscribe classify`: zero-shot labels for images with a CLIP model: each label is put into
// one or more prompt templates, the normalised text embeddings of a label's prompts are
// averaged (and renormalised, open_clip's zero-shot recipe), and each image's label
// probabilities are softmax(logit_scale * cosine).
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clip_cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "model/clip.h"

enum { MAX_LABELS = 4096, MAX_TEMPLATES = 64, BATCH = 16 };

// split_labels: "a, b ,c" -> ["a", "b", "c"] (trimmed; an empty one gives -1 and frees the
// rest); new strings.
static int split_labels(const char *s, char **out, int max)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || n == max) {
            while (n > 0)
                gs_free(out[--n]);
            return -1;
        }
        out[n++] = gs_xstrndup(p, len);
        if (!end)
            return n;
        p = end + 1;
    }
}

static char *fill_template(const char *tpl, const char *label)
{
    const char *at = strstr(tpl, "{}");
    return gs_xasprintf("%.*s%s%s", (int)(at - tpl), tpl, label, at + 2);
}

// label_embeddings: (n_labels, dim) normalised class embeddings.
static gs_err label_embeddings(gs_clip_t *m, char **labels, int n_labels, const char **tpls,
                               int n_tpls, float *out)
{
    int dim = gs_clip_dim(m);
    float *tmp = gs_xmalloc((size_t)n_tpls * dim * sizeof(float));
    char **prompts = gs_xcalloc((size_t)n_tpls, sizeof *prompts);
    gs_err e = GS_OK;
    for (int l = 0; l < n_labels && e == GS_OK; l++) {
        for (int t = 0; t < n_tpls; t++)
            prompts[t] = fill_template(tpls[t], labels[l]);
        e = gs_clip_encode_texts(m, (const char *const *)prompts, n_tpls, true, tmp);
        for (int t = 0; t < n_tpls; t++)
            GS_FREE(prompts[t]);
        double ss = 0;
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int t = 0; t < n_tpls; t++)
                s += tmp[(size_t)t * dim + k];
            out[(size_t)l * dim + k] = (float)s;
            ss += s * s;
        }
        for (int k = 0; k < dim && ss > 0; k++)
            out[(size_t)l * dim + k] = (float)(out[(size_t)l * dim + k] / sqrt(ss));
    }
    gs_free(prompts);
    gs_free(tmp);
    return e;
}

typedef struct {
    float p;
    int i;
} ranked_t;

static int by_prob_desc(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : x->i - y->i;
}

static void print_one(gs_format_t fmt, const char *input, char **labels, ranked_t *r, int n)
{
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 24);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_puts(&b, "{\"input\":");
        gs_buf_json_str(&b, input);
        gs_buf_puts(&b, ",\"labels\":[");
        for (int i = 0; i < n; i++) {
            gs_buf_puts(&b, i ? "," : "");
            gs_buf_json_str(&b, labels[r[i].i]);
        }
        gs_buf_puts(&b, "],\"probs\":[");
        for (int i = 0; i < n; i++)
            gs_buf_printf(&b, "%s%.6g", i ? "," : "", r[i].p);
        gs_buf_puts(&b, "]}");
    } else {
        gs_buf_printf(&b, "%s:", input);
        for (int i = 0; i < n && i < 5; i++)
            gs_buf_printf(&b, "%s %s %.3f", i ? "," : "", labels[r[i].i], r[i].p);
        if (n > 5)
            gs_buf_puts(&b, ", ...");
    }
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
}

// classify_images: reads, encodes and ranks images [0, n) against the label embeddings.
static int classify_images(gs_clip_t *m, gs_format_t fmt, char **images, int n, char **labels,
                           int n_labels, const float *lab)
{
    int dim = gs_clip_dim(m), S = gs_clip_image_size(m);
    float *pix = gs_trymalloc((size_t)BATCH * 3 * S * S * sizeof(float));
    float *emb = gs_xmalloc((size_t)BATCH * dim * sizeof(float));
    ranked_t *r = gs_xmalloc((size_t)n_labels * sizeof *r);
    int rc = pix ? 0 : 1;
    for (int i = 0; rc == 0 && i < n; i += BATCH) {
        int nb = n - i < BATCH ? n - i : BATCH;
        for (int k = 0; k < nb && rc == 0; k++) {
            gs_err e = gs_cli_clip_read_image(m, images[i + k], pix + (size_t)k * 3 * S * S);
            if (e != GS_OK) {
                fprintf(stderr, "geoscribe classify: could not read image \"%s\": %s\n",
                        images[i + k], gs_strerror(e));
                rc = 1;
            }
        }
        if (rc == 0 && gs_clip_encode_images(m, pix, nb, true, emb) != GS_OK)
            rc = 1;
        for (int k = 0; k < nb && rc == 0; k++) {
            // softmax over logit_scale * cosine
            double mx = -1e30, sum = 0;
            for (int l = 0; l < n_labels; l++) {
                double d = 0;
                for (int j = 0; j < dim; j++)
                    d += (double)emb[(size_t)k * dim + j] * lab[(size_t)l * dim + j];
                r[l] = (ranked_t){(float)(gs_clip_logit_scale(m) * d), l};
                mx = r[l].p > mx ? r[l].p : mx;
            }
            for (int l = 0; l < n_labels; l++)
                sum += exp(r[l].p - mx);
            for (int l = 0; l < n_labels; l++)
                r[l].p = (float)(exp(r[l].p - mx) / sum);
            qsort(r, (size_t)n_labels, sizeof *r, by_prob_desc);
            print_one(fmt, images[i + k], labels, r, n_labels);
        }
        fflush(stdout);
    }
    gs_free(pix);
    gs_free(emb);
    gs_free(r);
    return rc;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"arch", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'C'},
                                         {"precision", required_argument, NULL, 'P'},
                                         {"vocab", required_argument, NULL, 'V'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"template", required_argument, NULL, 'p'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0}};
    gs_cli_clip_args_t a = {0};
    gs_format_t fmt = GS_FORMAT_TEXT;
    const char *labels_arg = NULL, *tpls[MAX_TEMPLATES];
    char **images = gs_xcalloc((size_t)argc, sizeof *images);
    char *labels[MAX_LABELS];
    int n_tpls = 0, n_images = 0, n_labels = 0, c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = gs_cli_clip_option("classify", c, optarg, &a);
        if (r == 0)
            continue;
        if (r == 2 || c == '?')
            rc = 2;
        else if (c == 'l')
            labels_arg = optarg;
        else if (c == 'i')
            images[n_images++] = optarg;
        else if (c == 'p') {
            const char *at = strstr(optarg, "{}");
            if (!at || strstr(at + 2, "{}") || n_tpls == MAX_TEMPLATES)
                rc = gs_cli_usage_error("classify",
                                        "a --template holds \"{}\" exactly once "
                                        "(where the label goes), not \"%s\"",
                                        optarg);
            else
                tpls[n_tpls++] = optarg;
        } else if (c == 'f' && gs_cli_parse_format("classify", optarg, false, &fmt) != 0)
            rc = 2;
    }
    if (rc == 0 && (!a.model || !labels_arg || n_images == 0 || optind < argc))
        rc = gs_cli_usage_error("classify", "%s",
                                optind < argc ? "unexpected argument (images go after --image)"
                                : !a.model    ? "--model is required"
                                : !labels_arg ? "--labels a,b,c is required"
                                              : "give at least one --image");
    if (rc == 0 && (n_labels = split_labels(labels_arg, labels, MAX_LABELS)) < 1) {
        n_labels = 0;
        rc = gs_cli_usage_error("classify",
                                "--labels wants comma-separated non-empty labels "
                                "(at most %d)",
                                MAX_LABELS);
    }
    if (rc == 0 && n_tpls == 0)
        tpls[n_tpls++] = "a satellite image of {}.";
    gs_clip_t *m = NULL;
    if (rc == 0 && gs_cli_clip_open("classify", &a, BATCH, &m) != GS_OK)
        rc = 1;
    float *lab = NULL;
    if (rc == 0) {
        lab = gs_xmalloc((size_t)n_labels * gs_clip_dim(m) * sizeof(float));
        if (label_embeddings(m, labels, n_labels, tpls, n_tpls, lab) != GS_OK) {
            fprintf(stderr, "geoscribe classify: could not encode the labels\n");
            rc = 1;
        }
    }
    if (rc == 0)
        rc = classify_images(m, fmt, images, n_images, labels, n_labels, lab);
    gs_free(lab);
    gs_clip_close(&m);
    for (int i = 0; i < n_labels; i++)
        gs_free(labels[i]);
    gs_free(images);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_classify = {
    .name = "classify",
    .summary = "zero-shot labels for images with a CLIP model",
    .usage =
        "usage: geoscribe classify --model M [--arch NAME | --config FILE] [--vocab FILE]\n"
        "                          [--threads N] [--precision f32|bf16]\n"
        "                          --labels a,b,c [--template T]...\n"
        "                          [--format text|json] --image FILE...\n\n"
        "Ranks the labels for each image. Each label is put into the templates (\"{}\" marks\n"
        "where it goes; default \"a satellite image of {}.\"; several --template are averaged\n"
        "as open_clip's zero-shot classifiers do) and the probabilities are the softmax of the\n"
        "model's logit scale times the cosine similarities. With --format json, one object per\n"
        "image: {\"input\":...,\"labels\":[...],\"probs\":[...]}, best first.\n"
        "Model options as for `geoscribe embed --help`. Example:\n"
        "  geoscribe classify --model GeoRSCLIP/RS5M_ViT-B-32.pt --arch ViT-B-32 \\\n"
        "      --vocab bpe_simple_vocab_16e6.txt.gz --labels \"airport,harbor,forest\" \\\n"
        "      --image tile.png",
    .order = 24,
    .run = run,
};
