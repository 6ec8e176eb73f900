// `geoscribe eval classify|retrieve|caption`: the field's evaluation protocols over an image
// folder, each printing one JSON object on stdout: zero-shot scene classification (top-1 /
// top-5 accuracy), image-text retrieval (recall@1/5/10 both ways, mR) with a CLIP model, and
// captioning (coco-caption BLEU-1..4, ROUGE-L, CIDEr-D) with a LLaVA model. The metrics live
// in eval/ (docs/EVAL.md has their exact definitions); this file drives the models.
#define GS_LOG_MODULE "eval"
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clip_cli.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "eval/capscore.h"
#include "eval/evalset.h"
#include "eval/labels.h"
#include "eval/rank.h"
#include "jobs/raster.h"
#include "model/clip.h"
#include "model/llava.h"
#include "model/ops.h"

enum { MAX_TEMPLATES = 64, DEFAULT_BATCH = 32, MAX_NEW_TOKENS = 1024 };

// The options of the three subcommands (each uses its own subset).
typedef struct {
    const char *sub; // "classify", "retrieve" or "caption"
    gs_cli_clip_args_t clip;
    const char *images, *labels, *dataset, *split, *classnames, *prompt, *captions_out;
    const char *tpls[MAX_TEMPLATES];
    int n_tpls, batch, limit, max_tokens, beams;
} args_t;

// print_json: the result line on stdout.
static int print_json(gs_buf_t *b)
{
    if (!b->data) {
        fprintf(stderr, "geoscribe eval: the result does not fit in memory\n");
        return 1;
    }
    printf("%s\n", b->data);
    fflush(stdout);
    return 0;
}

// encode_images: reads DIR/paths[i] for i in [0, n) and writes their normalised embeddings
// to out (n, dim), `batch` images per forward pass.
static int encode_images(gs_clip_t *m, const args_t *a, const char *const *paths, int n, float *out)
{
    int S = gs_clip_image_size(m), dim = gs_clip_dim(m);
    float *pix = gs_trymalloc((size_t)a->batch * 3 * S * S * sizeof(float));
    if (!pix) {
        fprintf(stderr, "geoscribe eval: out of memory for a batch of %d images\n", a->batch);
        return 1;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i += a->batch) {
        int nb = n - i < a->batch ? n - i : a->batch;
        for (int k = 0; k < nb && rc == 0; k++) {
            char *path = gs_path_join(a->images, paths[i + k]);
            gs_err e = gs_cli_clip_read_image(m, path, pix + (size_t)k * 3 * S * S);
            if (e != GS_OK) {
                fprintf(stderr, "geoscribe eval: could not read image \"%s\": %s\n", path,
                        gs_strerror(e));
                rc = 1;
            }
            gs_free(path);
        }
        if (rc == 0 && gs_clip_encode_images(m, pix, nb, true, out + (size_t)i * dim) != GS_OK) {
            fprintf(stderr, "geoscribe eval: could not encode images\n");
            rc = 1;
        }
        GS_LOG_DEBUG("encoded images %d..%d of %d", i, i + nb - 1, n);
    }
    gs_free(pix);
    return rc;
}

// ---- classify ------------------------------------------------------------------------------

// class_prompt_name: the text that goes into the templates for class c.
static void class_prompt_name(const gs_labels_t *l, int c, const char *mode, gs_buf_t *out)
{
    gs_buf_reset(out);
    if (l->names[c])
        gs_buf_puts(out, l->names[c]);
    else if (strcmp(mode, "raw") == 0)
        gs_buf_puts(out, l->classes[c]);
    else
        gs_labels_readable(l->classes[c], out);
}

// class_embeddings: (n_classes, dim) normalised means of each class's normalised prompt
// embeddings (open_clip's zero-shot recipe).
static int class_embeddings(gs_clip_t *m, const args_t *a, const gs_labels_t *l, float *out)
{
    int dim = gs_clip_dim(m), nt = a->n_tpls, rc = 0;
    char **prompts = gs_xcalloc((size_t)nt, sizeof *prompts);
    float *tmp = gs_xmalloc((size_t)nt * dim * sizeof(float));
    gs_buf_t name;
    gs_buf_init(&name, 4096);
    for (int c = 0; c < l->n_classes && rc == 0; c++) {
        class_prompt_name(l, c, a->classnames, &name);
        for (int t = 0; t < nt; t++) {
            const char *at = strstr(a->tpls[t], "{}");
            prompts[t] = gs_xasprintf("%.*s%s%s", (int)(at - a->tpls[t]), a->tpls[t],
                                      name.data ? name.data : "", at + 2);
        }
        if (c == 0)
            GS_LOG_INFO("class prompt example: \"%s\"", prompts[0]);
        if (gs_clip_encode_texts(m, (const char *const *)prompts, nt, true, tmp) != GS_OK) {
            fprintf(stderr, "geoscribe eval: could not encode the prompts of class \"%s\"\n",
                    l->classes[c]);
            rc = 1;
        }
        for (int t = 0; t < nt; t++)
            GS_FREE(prompts[t]);
        double ss = 0;
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int t = 0; t < nt; t++)
                s += tmp[(size_t)t * dim + k];
            out[(size_t)c * dim + k] = (float)s;
            ss += s * s;
        }
        for (int k = 0; k < dim && ss > 0; k++)
            out[(size_t)c * dim + k] = (float)(out[(size_t)c * dim + k] / sqrt(ss));
    }
    gs_buf_cleanup(&name);
    gs_free(tmp);
    gs_free(prompts);
    return rc;
}

// classify_report: top-1/top-5 over the images' embeddings; prints the JSON line.
static int classify_report(const gs_labels_t *l, int n, const float *img, const float *cls, int dim)
{
    int *n_cls = gs_xcalloc((size_t)l->n_classes, sizeof(int));
    int *hit_cls = gs_xcalloc((size_t)l->n_classes, sizeof(int));
    float *scores = gs_xmalloc((size_t)l->n_classes * sizeof(float));
    int top1 = 0, top5 = 0;
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < l->n_classes; c++) {
            double d = 0;
            for (int k = 0; k < dim; k++)
                d += (double)img[(size_t)i * dim + k] * cls[(size_t)c * dim + k];
            scores[c] = (float)d;
        }
        int r = gs_rank_of(scores, l->n_classes, l->cls[i]);
        top1 += r < 1;
        top5 += r < 5;
        n_cls[l->cls[i]]++;
        hit_cls[l->cls[i]] += r < 1;
    }
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 26);
    gs_buf_printf(&b, "{\"n\":%d,\"top1\":%.6g,\"top5\":%.6g,\"per_class\":{", n, (double)top1 / n,
                  (double)top5 / n);
    for (int c = 0, first = 1; c < l->n_classes; c++) {
        if (n_cls[c] == 0)
            continue;
        gs_buf_puts(&b, first ? "" : ",");
        gs_buf_json_str(&b, l->classes[c]);
        gs_buf_printf(&b, ":%.6g", (double)hit_cls[c] / n_cls[c]);
        first = 0;
    }
    gs_buf_puts(&b, "}}");
    int rc = print_json(&b);
    gs_buf_cleanup(&b);
    gs_free(n_cls);
    gs_free(hit_cls);
    gs_free(scores);
    return rc;
}

static int run_classify(const args_t *a)
{
    gs_labels_t *l = NULL;
    gs_clip_t *m = NULL;
    float *img = NULL, *cls = NULL;
    int rc = 1;
    if (gs_labels_read(a->labels, a->split, &l) != GS_OK) {
        fprintf(stderr, "geoscribe eval: could not read the labels \"%s\"\n", a->labels);
        goto out;
    }
    bool names_file = strcmp(a->classnames, "raw") != 0 && strcmp(a->classnames, "spaced") != 0;
    if (names_file && gs_labels_read_names(l, a->classnames) != GS_OK) {
        fprintf(stderr, "geoscribe eval: could not read the class names \"%s\"\n", a->classnames);
        goto out;
    }
    int n = a->limit > 0 && a->limit < l->n ? a->limit : l->n;
    if (n == 0) {
        fprintf(stderr, "geoscribe eval: no labelled images%s%s%s in \"%s\"\n",
                a->split ? " of split \"" : "", a->split ? a->split : "", a->split ? "\"" : "",
                a->labels);
        goto out;
    }
    if (gs_cli_clip_open("eval", &a->clip, a->batch, &m) != GS_OK)
        goto out;
    int dim = gs_clip_dim(m);
    img = gs_trymalloc((size_t)n * dim * sizeof(float));
    cls = gs_trymalloc((size_t)l->n_classes * dim * sizeof(float));
    if (!img || !cls) {
        fprintf(stderr, "geoscribe eval: out of memory\n");
        goto out;
    }
    double t0 = gs_clock_s();
    if (class_embeddings(m, a, l, cls) != 0 || encode_images(m, a, l->filenames, n, img) != 0)
        goto out;
    GS_LOG_INFO("classify: %d images, %d classes, %d templates in %.2f s", n, l->n_classes,
                a->n_tpls, gs_clock_s() - t0);
    rc = classify_report(l, n, img, cls, dim);
out:
    gs_free(img);
    gs_free(cls);
    gs_clip_close(&m);
    gs_labels_destroy(&l);
    return rc;
}

// ---- retrieve ------------------------------------------------------------------------------

static gs_evalset_t *read_set(const args_t *a, int *out_n)
{
    gs_evalset_t *s = NULL;
    if (gs_evalset_read(a->dataset, a->split, &s) != GS_OK) {
        fprintf(stderr, "geoscribe eval: could not read the dataset \"%s\"\n", a->dataset);
        return NULL;
    }
    int n = a->limit > 0 && a->limit < s->n_images ? a->limit : s->n_images;
    if (n == 0) {
        fprintf(stderr, "geoscribe eval: no images%s%s%s in \"%s\"\n",
                a->split ? " of split \"" : "", a->split ? a->split : "", a->split ? "\"" : "",
                a->dataset);
        gs_evalset_destroy(&s);
        return NULL;
    }
    *out_n = n;
    return s;
}

static int retrieve_report(const gs_rank_recall_t *r)
{
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    gs_buf_printf(&b,
                  "{\"n_images\":%d,\"n_texts\":%d,\"i2t_r1\":%.4f,\"i2t_r5\":%.4f,"
                  "\"i2t_r10\":%.4f,\"t2i_r1\":%.4f,\"t2i_r5\":%.4f,\"t2i_r10\":%.4f,"
                  "\"mR\":%.4f}",
                  r->n_images, r->n_texts, r->i2t[0], r->i2t[1], r->i2t[2], r->t2i[0], r->t2i[1],
                  r->t2i[2], r->mr);
    int rc = print_json(&b);
    gs_buf_cleanup(&b);
    return rc;
}

static int run_retrieve(const args_t *a)
{
    int n = 0, rc = 1;
    gs_evalset_t *s = read_set(a, &n);
    gs_clip_t *m = NULL;
    float *img = NULL, *txt = NULL, *sim = NULL, *scratch = NULL;
    const char **paths = NULL;
    if (!s || gs_cli_clip_open("eval", &a->clip, a->batch, &m) != GS_OK)
        goto out;
    // the texts of the first n images (all of them without --limit)
    int n_txt = n < s->n_images ? s->images[n].first_text : s->n_texts, dim = gs_clip_dim(m);
    if (n_txt == 0) {
        fprintf(stderr, "geoscribe eval: the images have no captions in \"%s\"\n", a->dataset);
        goto out;
    }
    img = gs_trymalloc((size_t)n * dim * sizeof(float));
    txt = gs_trymalloc((size_t)n_txt * dim * sizeof(float));
    sim = gs_trymalloc((size_t)n * n_txt * sizeof(float));
    scratch = gs_trymalloc((size_t)n * sizeof(float));
    paths = gs_trymalloc((size_t)n * sizeof *paths);
    if (!img || !txt || !sim || !scratch || !paths) {
        fprintf(stderr, "geoscribe eval: out of memory for %d images and %d texts\n", n, n_txt);
        goto out;
    }
    for (int i = 0; i < n; i++)
        paths[i] = s->images[i].path;
    double t0 = gs_clock_s();
    if (gs_clip_encode_texts(m, s->texts, n_txt, true, txt) != GS_OK) {
        fprintf(stderr, "geoscribe eval: could not encode the captions\n");
        goto out;
    }
    double t1 = gs_clock_s();
    if (encode_images(m, a, paths, n, img) != 0)
        goto out;
    double t2 = gs_clock_s();
    // sim[i][t] = cosine of image i and text t (both normalised)
    gs_ops_sgemm(false, true, n, n_txt, dim, 1.0f, img, dim, txt, dim, 0.0f, sim, n_txt);
    gs_rank_recall_t r;
    if (gs_rank_recall(sim, n, n_txt, s->text_image, scratch, &r) != GS_OK) {
        fprintf(stderr, "geoscribe eval: no image has a caption\n");
        goto out;
    }
    GS_LOG_INFO("retrieve: %d texts in %.2f s, %d images in %.2f s, ranking %.2f s", n_txt, t1 - t0,
                n, t2 - t1, gs_clock_s() - t2);
    rc = retrieve_report(&r);
out:
    gs_free(img);
    gs_free(txt);
    gs_free(sim);
    gs_free(scratch);
    gs_free(paths);
    gs_clip_close(&m);
    gs_evalset_destroy(&s);
    return rc;
}

// ---- caption -------------------------------------------------------------------------------

// caption_one: the caption of one image into text (reset first).
static gs_err caption_one(gs_llava_t *m, const args_t *a, const char *rel,
                          const gs_llava_gen_t *gen, int32_t *ids, gs_buf_t *text)
{
    char *path = gs_path_join(a->images, rel);
    uint8_t *rgb = NULL;
    int w = 0, h = 0, n_ids = 0;
    gs_buf_reset(text);
    gs_err e = gs_raster_read_rgb8(path, &rgb, &w, &h);
    if (e == GS_OK) {
        gs_llava_image_t im = {rgb, w, h};
        e = gs_llava_caption(m, &im, 1, a->prompt, false, gen, ids, gen->max_new_tokens + 1, &n_ids,
                             text);
    }
    if (e != GS_OK)
        fprintf(stderr, "geoscribe eval: could not caption image \"%s\": %s\n", path,
                gs_strerror(e));
    gs_free(rgb);
    gs_free(path);
    return e;
}

static int caption_report(const gs_capscore_result_t *r)
{
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    gs_buf_printf(&b,
                  "{\"n\":%d,\"bleu1\":%.6f,\"bleu2\":%.6f,\"bleu3\":%.6f,\"bleu4\":%.6f,"
                  "\"rouge_l\":%.6f,\"cider\":%.6f}",
                  r->n, r->bleu[0], r->bleu[1], r->bleu[2], r->bleu[3], r->rouge_l, r->cider);
    int rc = print_json(&b);
    gs_buf_cleanup(&b);
    return rc;
}

// write_caption_line: {"image":...,"caption":...,"refs":[...]} on f.
static void write_caption_line(FILE *f, const gs_evalset_t *s, int i, const char *caption)
{
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 24);
    gs_buf_puts(&b, "{\"image\":");
    gs_buf_json_str(&b, s->images[i].path);
    gs_buf_puts(&b, ",\"caption\":");
    gs_buf_json_str(&b, caption);
    gs_buf_puts(&b, ",\"refs\":[");
    for (int k = 0; k < s->images[i].n_texts; k++) {
        gs_buf_puts(&b, k ? "," : "");
        gs_buf_json_str(&b, s->texts[s->images[i].first_text + k]);
    }
    gs_buf_puts(&b, "]}\n");
    if (b.data)
        fputs(b.data, f);
    gs_buf_cleanup(&b);
}

static int run_caption(const args_t *a)
{
    int n = 0, rc = 1, n_skipped = 0;
    gs_evalset_t *s = read_set(a, &n);
    gs_llava_t *m = NULL;
    gs_capscore_t *cs = gs_capscore_new();
    FILE *fout = NULL;
    int32_t *ids = gs_xmalloc(((size_t)a->max_tokens + 1) * sizeof *ids);
    gs_buf_t text;
    gs_buf_init(&text, (size_t)1 << 20);
    long n_cores = sysconf(_SC_NPROCESSORS_ONLN); // default threads: every core, at most 16
    int threads = a->clip.threads > 0 ? a->clip.threads : n_cores > 16 ? 16 : (int)n_cores;
    gs_llava_opts_t o = {
        .n_threads = threads, .max_images = 1, .max_beams = a->beams > 4 ? a->beams : 0};
    if (!s)
        goto out;
    if (a->captions_out && !(fout = fopen(a->captions_out, "w"))) {
        fprintf(stderr, "geoscribe eval: could not create \"%s\"\n", a->captions_out);
        goto out;
    }
    if (gs_llava_open(a->clip.model, &o, &m) != GS_OK) {
        fprintf(stderr, "geoscribe eval: could not open model \"%s\"\n", a->clip.model);
        goto out;
    }
    gs_llava_gen_t gen = gs_llava_gen_defaults();
    gen.max_new_tokens = a->max_tokens;
    gen.num_beams = a->beams;
    double t0 = gs_clock_s();
    for (int i = 0; i < n; i++) {
        const gs_evalset_image_t *im = &s->images[i];
        if (im->n_texts == 0) { // nothing to score against
            n_skipped++;
            continue;
        }
        if (caption_one(m, a, im->path, &gen, ids, &text) != GS_OK)
            goto out;
        const char *cap = text.data ? text.data : "";
        gs_err e = gs_capscore_add(cs, cap, s->texts + im->first_text, im->n_texts);
        if (e != GS_OK) {
            fprintf(stderr, "geoscribe eval: could not score image \"%s\": %s\n", im->path,
                    gs_strerror(e));
            goto out;
        }
        if (fout)
            write_caption_line(fout, s, i, cap);
        if ((i + 1) % 50 == 0)
            GS_LOG_INFO("caption: %d of %d images, %.2f s per image", i + 1, n,
                        (gs_clock_s() - t0) / (i + 1));
    }
    if (n_skipped)
        GS_LOG_WARN("caption: %d images without reference captions skipped", n_skipped);
    gs_capscore_result_t r;
    if (gs_capscore_compute(cs, &r, NULL, NULL) != GS_OK) {
        fprintf(stderr, "geoscribe eval: out of memory while scoring\n");
        goto out;
    }
    GS_LOG_INFO("caption: %d images in %.2f s", r.n, gs_clock_s() - t0);
    rc = caption_report(&r);
out:
    if (fout && fclose(fout) != 0 && rc == 0) {
        fprintf(stderr, "geoscribe eval: could not write \"%s\"\n", a->captions_out);
        rc = 1;
    }
    gs_buf_cleanup(&text);
    gs_free(ids);
    gs_capscore_destroy(&cs);
    gs_llava_close(&m);
    gs_evalset_destroy(&s);
    return rc;
}

// ---- arguments -----------------------------------------------------------------------------

static int parse_int_opt(const char *sub, const char *opt, const char *arg, int lo, int hi,
                         int *out)
{
    if (gs_parse_int(arg, lo, hi, out) != GS_OK)
        return gs_cli_usage_error("eval", "%s %s wants a number from %d to %d, not \"%s\"", sub,
                                  opt, lo, hi, arg);
    return 0;
}

// parse_opt: one option of a subcommand; 0 handled, 2 usage error.
static int parse_opt(args_t *a, int c, const char *arg)
{
    int r = gs_cli_clip_option("eval", c, arg, &a->clip);
    if (r >= 0)
        return r;
    switch (c) {
    case 'I': a->images = arg; return 0;
    case 'l': a->labels = arg; return 0;
    case 'd': a->dataset = arg; return 0;
    case 's': a->split = arg; return 0;
    case 'c': a->classnames = arg; return 0;
    case 'q': a->prompt = arg; return 0;
    case 'o': a->captions_out = arg; return 0;
    case 'B': return parse_int_opt(a->sub, "--batch", arg, 1, 1024, &a->batch);
    case 'L': return parse_int_opt(a->sub, "--limit", arg, 1, 1 << 30, &a->limit);
    case 'n': return parse_int_opt(a->sub, "--max-tokens", arg, 1, MAX_NEW_TOKENS, &a->max_tokens);
    case 'b': return parse_int_opt(a->sub, "--beams", arg, 1, 16, &a->beams);
    case 'p': {
        const char *at = strstr(arg, "{}");
        if (!at || strstr(at + 2, "{}") || a->n_tpls == MAX_TEMPLATES)
            return gs_cli_usage_error("eval",
                                      "a --template holds \"{}\" exactly once (where "
                                      "the class name goes), not \"%s\"",
                                      arg);
        a->tpls[a->n_tpls++] = arg;
        return 0;
    }
    default: return 2;
    }
}

// check_args: what each subcommand requires; fills the default template.
static int check_args(args_t *a, int argc, char **argv)
{
    if (optind < argc)
        return gs_cli_usage_error("eval", "%s: unexpected argument \"%s\"", a->sub, argv[optind]);
    bool classify = strcmp(a->sub, "classify") == 0;
    const char *missing = !a->clip.model             ? "--model"
                          : !a->images               ? "--images"
                          : classify && !a->labels   ? "--labels"
                          : !classify && !a->dataset ? "--dataset"
                                                     : NULL;
    if (missing)
        return gs_cli_usage_error("eval", "%s needs %s", a->sub, missing);
    if (!gs_is_dir(a->images))
        return gs_cli_usage_error("eval", "--images \"%s\" is not a folder", a->images);
    if (a->n_tpls == 0)
        a->tpls[a->n_tpls++] = "a satellite image of {}.";
    return 0;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"arch", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'C'},
                                         {"vocab", required_argument, NULL, 'V'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"images", required_argument, NULL, 'I'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"dataset", required_argument, NULL, 'd'},
                                         {"split", required_argument, NULL, 's'},
                                         {"classnames", required_argument, NULL, 'c'},
                                         {"template", required_argument, NULL, 'p'},
                                         {"batch", required_argument, NULL, 'B'},
                                         {"limit", required_argument, NULL, 'L'},
                                         {"prompt", required_argument, NULL, 'q'},
                                         {"max-tokens", required_argument, NULL, 'n'},
                                         {"beams", required_argument, NULL, 'b'},
                                         {"captions-out", required_argument, NULL, 'o'},
                                         {0}};
    // the options each subcommand accepts, as the letters above
    static const char *const subs[][2] = {
        {"classify", "mACVTIlscpBL"}, {"retrieve", "mACVTIdsBL"}, {"caption", "mTIdsqnboL"}};
    if (argc < 2)
        return gs_cli_usage_error("eval", "give a subcommand: classify, retrieve or caption");
    int k = 0;
    while (k < 3 && strcmp(argv[1], subs[k][0]) != 0)
        k++;
    if (k == 3)
        return gs_cli_usage_error("eval",
                                  "unknown subcommand \"%s\" (classify, retrieve or "
                                  "caption)",
                                  argv[1]);
    args_t a = {.sub = subs[k][0],
                .classnames = "spaced",
                .batch = DEFAULT_BATCH,
                .max_tokens = 64,
                .beams = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == '?')
            return 2;
        if (!strchr(subs[k][1], c)) {
            const struct option *o = opts;
            while (o->name && o->val != c)
                o++;
            return gs_cli_usage_error("eval", "%s does not take --%s", a.sub,
                                      o->name ? o->name : "?");
        }
        int r = parse_opt(&a, c, optarg);
        if (r != 0)
            return r;
    }
    int r = check_args(&a, argc - 1, argv + 1);
    if (r != 0)
        return r;
    if (k == 0)
        return run_classify(&a);
    if (k == 1)
        return run_retrieve(&a);
    return run_caption(&a);
}

const gs_cli_cmd_t gs_cli_cmd_eval = {
    .name = "eval",
    .summary = "evaluate models: zero-shot accuracy, retrieval recall, caption metrics",
    .usage =
        "usage: geoscribe eval classify --model M --images DIR --labels FILE.csv [--split S]\n"
        "                               [--template T]... [--classnames spaced|raw|FILE.csv]\n"
        "       geoscribe eval retrieve --model M --images DIR --dataset dataset.json [--split S]\n"
        "       geoscribe eval caption  --model M --images DIR --dataset dataset.json [--split S]\n"
        "                               [--max-tokens N] [--beams N] [--prompt Q]\n"
        "                               [--captions-out FILE.jsonl]\n"
        "   common: [--threads N] [--limit N]; classify/retrieve: [--batch N] [--arch NAME |\n"
        "           --config FILE] [--vocab FILE] (CLIP model options as for `embed --help`)\n\n"
        "Each prints one JSON object (definitions in docs/EVAL.md):\n"
        "  classify  zero-shot scene classification with a CLIP model: {\"n\",\"top1\",\"top5\",\n"
        "            \"per_class\":{class: top-1 accuracy}} (fractions). The labels CSV has a\n"
        "            header with \"filename\" and \"class\" columns (more are allowed; --split\n"
        "            selects rows by a \"split\" column); the class choices are all classes of\n"
        "            the file. Prompts: each --template (default \"a satellite image of {}.\";\n"
        "            several are averaged) with the class name: --classnames spaced (default)\n"
        "            splits compound names (\"denseresidential\" -> \"dense residential\",\n"
        "            \"BareLand\" -> \"bare land\", '_' -> ' '), raw keeps them as written, or a\n"
        "            CSV with columns class,name gives them (unlisted classes: spaced).\n"
        "  retrieve  image-text retrieval with a CLIP model over a Karpathy-style dataset.json\n"
        "            (UCM-captions, RSICD): {\"n_images\",\"n_texts\",\"i2t_r1\",\"i2t_r5\",\n"
        "            \"i2t_r10\",\"t2i_r1\",\"t2i_r5\",\"t2i_r10\",\"mR\"} in percent. i2t: an "
        "image\n"
        "            hits when any of its captions is in the top K; t2i: a caption hits when\n"
        "            its image is in the top K; mR: the mean of the six.\n"
        "  caption   greedy captions (--beams N: beam search) from a LLaVA model, prompt\n"
        "            \"Describe this image.\" unless --prompt, scored against the dataset's\n"
        "            captions with coco-caption's BLEU-1..4, ROUGE-L and CIDEr-D: "
        "{\"n\",\"bleu1\",\n"
        "            \"bleu2\",\"bleu3\",\"bleu4\",\"rouge_l\",\"cider\"} (fractions; CIDEr "
        "0..10).\n"
        "            --captions-out writes one {\"image\",\"caption\",\"refs\"} line per image.\n"
        "--images DIR holds the files the CSV / JSON name; --limit N keeps the first N images\n"
        "(quick checks); --batch N images per CLIP forward pass (default 32). Example:\n"
        "  d=../shared/data/ucm-captions\n"
        "  geoscribe eval classify --model models/default/clip --images $d/imgs \\\n"
        "      --labels $d/labels.csv --split val",
    .order = 80,
    .run = run,
};
