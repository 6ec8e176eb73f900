// bench_encoder: images/s of geoscribe's CLIP vision tower on a model folder (run.sh writes a
// random ViT-B/32 one), for each batch size and BLAS thread count, plus the SGEMM peak of this
// machine measured in the same run and the share of it reached inside the encoder's GEMMs.
// Run by hand (bench/encoder/run.sh), never by the test suite. One JSON object per line.
//
//   bench_encoder MODEL_DIR [--batch 1,16] [--threads 1,2] [--seconds 2] [--reps 3]
//                 [--mode shards|blas] [--precision f32|bf16] [--gemm openblas|onednn]
//                 [--fixtures DIR]
// --gemm: the library of float32 GEMMs (default openblas here, so that the rows stay comparable
// with earlier runs; `geoscribe` itself picks oneDNN where it can, see model/clip.h). The GEMM
// counters (GFLOP/s, share of the SGEMM peak, time in GEMM) see OpenBLAS calls only: with
// oneDNN or bf16 they cover attention's small GEMMs alone.
// --mode blas runs every batch on one thread with multi-threaded OpenBLAS (the default splits a
// batch into one shard per thread, each with single-threaded OpenBLAS).
//
// With pixels.bin / torch_features.bin in MODEL_DIR (written by torch_clip.py), it also reports
// the cosine between its features and PyTorch's for the same pixels. With --precision bf16 and
// --fixtures (../shared/fixtures), it reports the cosine between the bf16 and float32 embeddings
// of the fixtures' images (openclip_tiny/image_*.png pixels, preprocessed to the model's size).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "model/clip.h"
#include "model/ops.h"
#include "model/preprocess.h"
#include "model/weights.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// cpu_s: CPU time of the whole process (all threads). On a shared machine, images per CPU
// second of a single-threaded run estimates what an idle machine would do.
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

static float *read_floats(const char *dir, const char *name, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = gs_xmalloc(n * sizeof(float));
    size_t got = fread(v, sizeof(float), n, f);
    fclose(f);
    if (got != n) {
        gs_free(v);
        return NULL;
    }
    return v;
}

// sgemm_peak: GFLOP/s of a square n x n SGEMM on the current thread count, best of `reps`;
// *out_cpu (may be NULL): the same per CPU-second of the calling thread (meaningful with one
// BLAS thread).
static double sgemm_peak(int n, int reps, double *out_cpu)
{
    float *a = gs_xmalloc((size_t)n * n * sizeof(float));
    float *b = gs_xmalloc((size_t)n * n * sizeof(float));
    float *c = gs_xmalloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    gs_ops_sgemm(false, true, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); // warm-up
    double best = 0, best_cpu = 0;
    for (int r = 0; r < reps; r++) {
        struct timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        double t0 = now_s();
        gs_ops_sgemm(false, true, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (now_s() - t0) / 1e9;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        double gc =
            2.0 * n * n * n / ((c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9) / 1e9;
        best = g > best ? g : best;
        best_cpu = gc > best_cpu ? gc : best_cpu;
    }
    if (out_cpu)
        *out_cpu = best_cpu;
    gs_free(a);
    gs_free(b);
    gs_free(c);
    return best;
}

// fixture_cosine: bf16 vs float32 embeddings of the 4 openclip_tiny images, preprocessed to
// the model's input size; prints the smallest cosine.
static void fixture_cosine(gs_clip_t *m, const char *dir, const char *fixtures, gs_clip_opts_t o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/openclip_tiny/expected.safetensors", fixtures);
    gs_weights_t *w = NULL;
    if (gs_weights_open(path, &w) != GS_OK)
        return;
    gs_clip_t *f32 = NULL;
    o.precision = GS_CLIP_PRECISION_F32;
    if (gs_clip_open(dir, &o, &f32) != GS_OK) {
        gs_weights_close(&w);
        return;
    }
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    int E = gs_clip_dim(m), S = pc.size;
    float *pix = gs_xmalloc((size_t)4 * 3 * S * S * sizeof(float));
    float *a = gs_xmalloc((size_t)4 * E * sizeof(float)),
          *b = gs_xmalloc((size_t)4 * E * sizeof(float));
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "image%d.raw_uint8_hwc", i);
        const gs_tensor_t *t = gs_weights_get(w, name);
        int h = (int)t->shape[0], wd = (int)t->shape[1];
        void *scratch = gs_xmalloc(gs_preprocess_scratch_nbytes(wd, h, S));
        gs_preprocess_image(t->data, wd, h, &pc, scratch, pix + (size_t)i * 3 * S * S);
        gs_free(scratch);
    }
    gs_clip_encode_images(m, pix, 4, true, a);
    gs_clip_encode_images(f32, pix, 4, true, b);
    double min_cos = 1;
    for (int i = 0; i < 4; i++) {
        double d = 0;
        for (int k = 0; k < E; k++)
            d += (double)a[i * E + k] * b[i * E + k];
        min_cos = d < min_cos ? d : min_cos;
    }
    printf("{\"impl\":\"geoscribe\",\"bf16_vs_f32_on_fixture_images\":{\"images\":4,"
           "\"min_cosine\":%.6f}}\n",
           min_cos);
    gs_free(pix);
    gs_free(a);
    gs_free(b);
    gs_clip_close(&f32);
    gs_weights_close(&w);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_encoder MODEL_DIR [--batch 1,16] [--threads 1,2] "
                        "[--seconds S] [--reps R]\n");
        return 2;
    }
    const char *dir = argv[1];
    int batches[16] = {1, 16}, n_batches = 2, threads[16] = {1, 2}, n_threads = 2, reps = 3;
    double seconds = 2.0;
    bool blas_mode = false, bf16 = false, onednn = false;
    const char *fixtures = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            n_batches = parse_list(argv[i + 1], batches, 16);
        else if (strcmp(argv[i], "--threads") == 0)
            n_threads = parse_list(argv[i + 1], threads, 16);
        else if (strcmp(argv[i], "--seconds") == 0)
            gs_parse_f64(argv[i + 1], &seconds);
        else if (strcmp(argv[i], "--reps") == 0)
            gs_parse_int(argv[i + 1], 1, 100, &reps);
        else if (strcmp(argv[i], "--mode") == 0)
            blas_mode = strcmp(argv[i + 1], "blas") == 0;
        else if (strcmp(argv[i], "--precision") == 0)
            bf16 = strcmp(argv[i + 1], "bf16") == 0;
        else if (strcmp(argv[i], "--gemm") == 0)
            onednn = strcmp(argv[i + 1], "onednn") == 0;
        else if (strcmp(argv[i], "--fixtures") == 0)
            fixtures = argv[i + 1];
    }
    int max_batch = 1;
    for (int i = 0; i < n_batches; i++)
        max_batch = batches[i] > max_batch ? batches[i] : max_batch;
    gs_clip_opts_t o = {.n_threads = threads[0],
                        .max_batch = max_batch,
                        .no_shards = blas_mode,
                        .precision = bf16 ? GS_CLIP_PRECISION_BF16 : GS_CLIP_PRECISION_F32,
                        .gemm = onednn ? GS_CLIP_GEMM_ONEDNN : GS_CLIP_GEMM_OPENBLAS};
    const char *gemm = bf16 || onednn ? "onednn" : "openblas";
    gs_clip_t *m = NULL;
    if (gs_clip_open(dir, &o, &m) != GS_OK)
        return 1;
    int S = gs_clip_image_size(m), E = gs_clip_dim(m);
    size_t img = 3 * (size_t)S * S;
    float *pix = read_floats(dir, "pixels.bin", (size_t)max_batch * img);
    if (!pix) {
        pix = gs_xmalloc((size_t)max_batch * img * sizeof(float));
        for (size_t i = 0; i < (size_t)max_batch * img; i++)
            pix[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    }
    float *out = gs_xmalloc((size_t)max_batch * E * sizeof(float));

    // parity with PyTorch on the same pixels (first 16 images)
    float *ref = read_floats(dir, "torch_features.bin", (size_t)16 * E);
    if (ref && max_batch >= 16) {
        gs_clip_encode_images(m, pix, 16, false, out);
        double min_cos = 1, max_abs = 0;
        for (int i = 0; i < 16; i++) {
            double ab = 0, aa = 0, bb = 0;
            for (int k = 0; k < E; k++) {
                double x = out[i * E + k], y = ref[i * E + k];
                ab += x * y;
                aa += x * x;
                bb += y * y;
                max_abs = fabs(x - y) > max_abs ? fabs(x - y) : max_abs;
            }
            double c = ab / sqrt(aa * bb);
            min_cos = c < min_cos ? c : min_cos;
        }
        printf("{\"impl\":\"geoscribe\",\"precision\":\"%s\",\"gemm\":\"%s\","
               "\"parity_vs_pytorch\":{\"images\":16,\"min_cosine\":%.9f,\"max_abs_diff\":%.3g}}\n",
               bf16 ? "bf16" : "f32", gemm, min_cos, max_abs);
    }

    if (bf16 && fixtures)
        fixture_cosine(m, dir, fixtures, o);

    char blas[256];
    gs_ops_blas_info(blas, sizeof blas);
    gs_ops_set_threads(1);
    double peak1_cpu = 0;
    double peak1 = sgemm_peak(2048, reps, &peak1_cpu);
    printf("{\"impl\":\"openblas\",\"threads\":1,\"sgemm_2048_gflops_per_cpu_s\":%.1f}\n",
           peak1_cpu);
    for (int ti = 0; ti < n_threads; ti++) {
        // the encoder runs on its own: reopen it with this thread count
        gs_clip_close(&m);
        o.n_threads = threads[ti];
        if (gs_clip_open(dir, &o, &m) != GS_OK)
            return 1;
        gs_ops_set_threads(threads[ti]);
        double peak = threads[ti] == 1 ? peak1 : sgemm_peak(2048, reps, NULL);
        printf(
            "{\"impl\":\"openblas\",\"threads\":%d,\"sgemm_2048_gflops\":%.1f,\"blas\":\"%s\"}\n",
            threads[ti], peak, blas);
        fflush(stdout);
        for (int bi = 0; bi < n_batches; bi++) {
            int b = batches[bi];
            gs_clip_encode_images(m, pix, b, true, out); // warm-up
            double best = 0, best_share = 0, best_gemm_frac = 0, best_gemm_gflops = 0;
            double best_cpu = 0, best_share_cpu = 0;
            for (int r = 0; r < reps; r++) {
                gs_ops_counters_reset();
                gs_ops_counters_enable(true);
                int n = 0;
                double c0 = cpu_s(), t0 = now_s(), dt;
                do {
                    gs_clip_encode_images(m, pix, b, true, out);
                    n += b;
                    dt = now_s() - t0;
                } while (dt < seconds);
                gs_ops_counters_enable(false);
                gs_ops_counters_t k;
                gs_ops_counters_get(&k);
                double ips = n / dt, ipc = n / (cpu_s() - c0);
                if (ipc > best_cpu) {
                    // CPU-time based share: with one thread, robust to other load
                    best_cpu = ipc;
                    best_share_cpu = k.gemm_flops / k.gemm_cpu_seconds / 1e9 / peak1_cpu;
                }
                if (ips > best) {
                    // a batch of at least `threads` images runs one shard per thread, each with
                    // single-threaded BLAS (compare with the 1-thread peak per thread); a
                    // smaller one runs on one thread with all BLAS threads
                    bool sharded = !blas_mode && b >= threads[ti];
                    int callers = sharded ? threads[ti] : 1;
                    double ref = sharded ? peak1 : peak;
                    best = ips;
                    best_gemm_gflops = k.gemm_flops / (k.gemm_seconds / callers) / 1e9;
                    best_share = k.gemm_flops / k.gemm_seconds / 1e9 / ref;
                    best_gemm_frac = k.gemm_seconds / callers / dt;
                }
            }
            printf("{\"impl\":\"geoscribe\",\"precision\":\"%s\",\"gemm\":\"%s\",\"mode\":\"%s\","
                   "\"threads\":%d,\"batch\":%d,"
                   "\"images_per_s\":%.3f,\"gemm_gflops\":%.1f,\"gemm_share_of_peak\":%.3f,"
                   "\"time_in_gemm\":%.3f,\"images_per_cpu_s\":%.3f,"
                   "\"gemm_share_of_peak_cpu\":%.3f}\n",
                   bf16 ? "bf16" : "f32", gemm, blas_mode ? "blas" : "shards", threads[ti], b, best,
                   best_gemm_gflops, best_share, best_gemm_frac, best_cpu, best_share_cpu);
            fflush(stdout);
        }
    }
    gs_free(pix);
    gs_free(ref);
    gs_free(out);
    gs_clip_close(&m);
    return 0;
}
