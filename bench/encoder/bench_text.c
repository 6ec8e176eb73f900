// bench_text: texts/s of geoscribe's CLIP text tower (gs_clip_encode_texts, tokenizer included)
// on the captions of a Karpathy-style dataset.json split (UCM val: 1050 captions), per batch
// size and thread count, wall clock and per CPU-second (the figure that survives a shared
// machine). Run by hand (bench/encoder/run_text.sh), never by the test suite. One JSON object
// per line.
//
//   bench_text MODEL_DIR VOCAB DATASET_JSON [--split val] [--batch 16,32] [--threads 1,2]
//              [--reps 3] [--dump FILE]
// --dump writes the L2-normalised embeddings of every caption (batch = the first --batch,
// threads = the first --threads) as raw float32, to compare two builds (--compare A B).
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "model/clip.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        if (gs_parse_int(tok, 1, 4096, &out[n]) == GS_OK)
            n++;
    return n;
}

// read_captions: the "raw" sentences of the images of `split`; *out_n captions, caller frees
// each and the array.
static char **read_captions(const char *path, const char *split, int *out_n)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        fprintf(stderr, "bench_text: %s: %s\n", path, err.text);
        return NULL;
    }
    json_t *images = json_object_get(root, "images");
    size_t cap = 4096, n = 0, i, j;
    char **out = gs_xmalloc(cap * sizeof *out);
    json_t *im, *s;
    json_array_foreach(images, i, im)
    {
        const char *sp = json_string_value(json_object_get(im, "split"));
        if (!sp || strcmp(sp, split) != 0)
            continue;
        json_array_foreach(json_object_get(im, "sentences"), j, s)
        {
            const char *raw = json_string_value(json_object_get(s, "raw"));
            if (!raw)
                continue;
            if (n == cap)
                out = gs_xrealloc(out, (cap *= 2) * sizeof *out);
            out[n++] = gs_xstrdup(raw);
        }
    }
    json_decref(root);
    *out_n = (int)n;
    return out;
}

static float *read_dump(const char *path, size_t *out_n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = gs_xmalloc((size_t)len + 4);
    *out_n = fread(v, sizeof(float), (size_t)len / sizeof(float), f);
    fclose(f);
    return v;
}

// compare: max |a - b| and min cosine per row of two dumps of dim `dim`.
static int compare(const char *a_path, const char *b_path, int dim)
{
    size_t na = 0, nb = 0;
    float *a = read_dump(a_path, &na), *b = read_dump(b_path, &nb);
    if (!a || !b || na != nb || na % (size_t)dim) {
        fprintf(stderr, "bench_text: dumps differ in size or are missing\n");
        return 1;
    }
    double max_abs = 0, min_cos = 1;
    size_t n_equal = 0;
    for (size_t r = 0; r < na / (size_t)dim; r++) {
        double ab = 0;
        bool same = true;
        for (int k = 0; k < dim; k++) {
            double x = a[r * dim + k], y = b[r * dim + k];
            ab += x * y;
            max_abs = fabs(x - y) > max_abs ? fabs(x - y) : max_abs;
            same = same && a[r * dim + k] == b[r * dim + k];
        }
        min_cos = ab < min_cos ? ab : min_cos;
        n_equal += same;
    }
    printf("{\"compare\":{\"texts\":%zu,\"bitwise_equal\":%zu,\"max_abs_diff\":%.3g,"
           "\"min_cosine\":%.9f}}\n",
           na / (size_t)dim, n_equal, max_abs, min_cos);
    gs_free(a);
    gs_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--compare") == 0) {
        int dim = 0;
        if (gs_parse_int(argv[4], 1, 65536, &dim) != GS_OK)
            return 2;
        return compare(argv[2], argv[3], dim);
    }
    if (argc < 4) {
        fprintf(stderr, "usage: bench_text MODEL_DIR VOCAB DATASET_JSON [--split val] "
                        "[--batch 16,32] [--threads 1,2] [--reps 3] [--dump FILE]\n"
                        "       bench_text --compare DUMP_A DUMP_B DIM\n");
        return 2;
    }
    const char *dir = argv[1], *vocab = argv[2], *dataset = argv[3], *split = "val";
    const char *dump = NULL;
    int batches[16] = {16, 32}, n_batches = 2, threads[16] = {1, 2}, n_threads = 2, reps = 3;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            n_batches = parse_list(argv[i + 1], batches, 16);
        else if (strcmp(argv[i], "--threads") == 0)
            n_threads = parse_list(argv[i + 1], threads, 16);
        else if (strcmp(argv[i], "--reps") == 0)
            gs_parse_int(argv[i + 1], 1, 100, &reps);
        else if (strcmp(argv[i], "--split") == 0)
            split = argv[i + 1];
        else if (strcmp(argv[i], "--dump") == 0)
            dump = argv[i + 1];
    }
    int n_txt = 0;
    char **texts = read_captions(dataset, split, &n_txt);
    if (!texts || n_txt == 0)
        return 1;
    for (int ti = 0; ti < n_threads; ti++)
        for (int bi = 0; bi < n_batches; bi++) {
            gs_clip_opts_t o = {
                .vocab_path = vocab, .n_threads = threads[ti], .max_batch = batches[bi]};
            gs_clip_t *m = NULL;
            if (gs_clip_open(dir, &o, &m) != GS_OK)
                return 1;
            int E = gs_clip_dim(m);
            float *out = gs_xmalloc((size_t)n_txt * E * sizeof(float));
            gs_clip_encode_texts(m, (const char *const *)texts, batches[bi], true, out); // warm-up
            double best = 0, best_cpu = 0;
            for (int r = 0; r < reps; r++) {
                double c0 = cpu_s(), t0 = now_s();
                if (gs_clip_encode_texts(m, (const char *const *)texts, n_txt, true, out) != GS_OK)
                    return 1;
                double tps = n_txt / (now_s() - t0), tpc = n_txt / (cpu_s() - c0);
                best = tps > best ? tps : best;
                best_cpu = tpc > best_cpu ? tpc : best_cpu;
            }
            printf("{\"impl\":\"geoscribe\",\"tower\":\"text\",\"texts\":%d,\"threads\":%d,"
                   "\"batch\":%d,\"texts_per_s\":%.2f,\"texts_per_cpu_s\":%.2f}\n",
                   n_txt, threads[ti], batches[bi], best, best_cpu);
            fflush(stdout);
            if (dump && ti == 0 && bi == 0) {
                FILE *f = fopen(dump, "wb");
                if (!f || fwrite(out, sizeof(float), (size_t)n_txt * E, f) != (size_t)n_txt * E)
                    fprintf(stderr, "bench_text: could not write %s\n", dump);
                if (f)
                    fclose(f);
            }
            gs_free(out);
            gs_clip_close(&m);
        }
    for (int i = 0; i < n_txt; i++)
        gs_free(texts[i]);
    gs_free(texts);
    return 0;
}
