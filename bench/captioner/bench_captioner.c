// bench_captioner: prefill and decode tokens/s of geoscribe's LLaMA decoder on a model folder
// (run.sh writes a random LLaMA-7B-shaped one with fewer layers), with this machine's memory
// bandwidth measured in the same run: decode reads every weight once per token, so its bound is
// bandwidth / (weight bytes per token). Run by hand (bench/captioner/run.sh), never by tests.
// One JSON object per line.
//
//   bench_captioner MODEL_DIR [--threads 1,2] [--prompt 128] [--decode 16] [--reps 2]
//
// With torch_logits_<compute>.bin in MODEL_DIR (torch_llama.py time), it also reports how far
// its logits are from PyTorch's (after the prefill and after the last decode step).
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "model/llama.h"
#include "model/ops.h"

#define VOCAB 32000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- memory bandwidth ---------------------------------------------------------------------

typedef struct {
    const unsigned char *src;
    unsigned char *dst;
    size_t n;
    uint64_t sum;
} bw_job_t;

static void *copy_part(void *arg)
{
    bw_job_t *j = arg;
    memcpy(j->dst, j->src, j->n);
    return NULL;
}

static void *read_part(void *arg)
{
    bw_job_t *j = arg;
    const uint64_t *p = (const uint64_t *)j->src;
    size_t n = j->n / 8;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        a += p[i];
        b ^= p[i + 1];
        c += p[i + 2];
        d ^= p[i + 3];
    }
    j->sum = a + b + c + d;
    return NULL;
}

// bandwidth: best of `reps` over n_threads threads, in GB/s (1e9 bytes). Copy counts the bytes
// read plus the bytes written (STREAM's convention); read counts the bytes read.
static double bandwidth(bool copy, unsigned char *src, unsigned char *dst, size_t n, int n_threads,
                        int reps)
{
    double best = 0;
    pthread_t th[64];
    bw_job_t jobs[64];
    size_t part = n / n_threads / 64 * 64;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int t = 0; t < n_threads; t++) {
            jobs[t] = (bw_job_t){src + t * part, dst + t * part, part, 0};
            pthread_create(&th[t], NULL, copy ? copy_part : read_part, &jobs[t]);
        }
        for (int t = 0; t < n_threads; t++)
            pthread_join(th[t], NULL);
        double dt = now_s() - t0;
        double gbs = (copy ? 2.0 : 1.0) * part * n_threads / dt / 1e9;
        best = gbs > best ? gbs : best;
    }
    return best;
}

// ---- parity with PyTorch ------------------------------------------------------------------

static void parity(const char *dir, const char *compute, const float *l0, const float *l1)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/torch_logits_%s.bin", dir, compute);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    float *t = gs_xmalloc(2 * VOCAB * sizeof(float));
    size_t n = fread(t, sizeof(float), 2 * VOCAB, f);
    fclose(f);
    if (n != 2 * VOCAB) {
        gs_free(t);
        return;
    }
    const float *ours[2] = {l0, l1};
    for (int k = 0; k < 2; k++) {
        double md = 0, mx = 0;
        int am_a = 0, am_b = 0;
        for (int i = 0; i < VOCAB; i++) {
            double d = fabs((double)ours[k][i] - t[k * VOCAB + i]);
            md = d > md ? d : md;
            mx = fabs(t[k * VOCAB + i]) > mx ? fabs(t[k * VOCAB + i]) : mx;
            if (ours[k][i] > ours[k][am_a])
                am_a = i;
            if (t[k * VOCAB + i] > t[k * VOCAB + am_b])
                am_b = i;
        }
        printf("{\"parity_vs_pytorch\":\"%s\",\"step\":\"%s\",\"max_abs_diff\":%.4g,"
               "\"max_abs_logit\":%.4g,\"same_argmax\":%s}\n",
               compute, k == 0 ? "prefill" : "last_decode", md, mx,
               am_a == am_b ? "true" : "false");
    }
    gs_free(t);
}

// ---- main ---------------------------------------------------------------------------------

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        char tok[32];
        size_t k = strcspn(p, ",");
        snprintf(tok, sizeof tok, "%.*s", (int)(k < 31 ? k : 31), p);
        if (gs_parse_int(tok, 1, 64, &out[n]) == GS_OK)
            n++;
        p += k + (p[k] == ',');
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_captioner MODEL_DIR [--threads 1,2] [--prompt 128] "
                        "[--decode 16] [--reps 2]\n");
        return 2;
    }
    const char *dir = argv[1];
    int threads[8] = {1, 2}, n_threads = 2, prompt = 128, decode = 16, reps = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            n_threads = parse_list(argv[i + 1], threads, 8);
        else if (strcmp(argv[i], "--prompt") == 0)
            gs_parse_int(argv[i + 1], 1, 4000, &prompt);
        else if (strcmp(argv[i], "--decode") == 0)
            gs_parse_int(argv[i + 1], 1, 4000, &decode);
        else if (strcmp(argv[i], "--reps") == 0)
            gs_parse_int(argv[i + 1], 1, 100, &reps);
    }
    size_t bw_n = (size_t)1 << 30;
    unsigned char *src = gs_xmalloc(bw_n), *dst = gs_xmalloc(bw_n);
    memset(src, 1, bw_n);
    memset(dst, 2, bw_n);
    int32_t *ids = gs_xmalloc((size_t)(prompt + decode) * sizeof *ids);
    for (int i = 0; i < prompt + decode; i++)
        ids[i] = (int32_t)(((int64_t)i * 7919) % VOCAB);
    float *l0 = gs_xmalloc(VOCAB * sizeof(float)), *l1 = gs_xmalloc(VOCAB * sizeof(float));
    for (int ti = 0; ti < n_threads; ti++) {
        int T = threads[ti];
        double copy_bw = bandwidth(true, src, dst, bw_n, T, 3);
        double read_bw = bandwidth(false, src, dst, bw_n, T, 3);
        gs_llama_opts_t o = {.n_threads = T, .n_ctx = prompt + decode + 8};
        gs_llama_t *lm = NULL;
        double t_open = now_s();
        if (gs_llama_open(dir, &o, &lm) != GS_OK) {
            fprintf(stderr, "bench_captioner: could not open \"%s\"\n", dir);
            return 1;
        }
        t_open = now_s() - t_open;
        gs_llama_info_t info;
        gs_llama_describe(lm, &info);
        double best_pre = 0, best_dec = 0, gemm_share = 0, gemm_gflops = 0;
        for (int r = 0; r < reps; r++) {
            gs_llama_reset(lm);
            gs_ops_counters_reset();
            gs_ops_counters_enable(true);
            double t0 = now_s();
            if (gs_llama_eval(lm, ids, prompt, l0) != GS_OK)
                return 1;
            double t1 = now_s();
            gs_ops_counters_enable(false);
            gs_ops_counters_t cnt;
            gs_ops_counters_get(&cnt);
            if (prompt / (t1 - t0) > best_pre) {
                gemm_share = cnt.gemm_seconds / (t1 - t0);
                gemm_gflops = cnt.gemm_seconds > 0 ? cnt.gemm_flops / cnt.gemm_seconds / 1e9 : 0;
            }
            for (int i = 0; i < decode; i++)
                if (gs_llama_eval(lm, ids + prompt + i, 1, l1) != GS_OK)
                    return 1;
            double t2 = now_s();
            best_pre = fmax(best_pre, prompt / (t1 - t0));
            best_dec = fmax(best_dec, decode / (t2 - t1));
        }
        double gb = info.weight_nbytes_per_token / 1e9;
        printf("{\"impl\":\"geoscribe\",\"threads\":%d,\"layers\":%d,\"dtype\":\"%s\","
               "\"prompt\":%d,\"decode\":%d,\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f,"
               "\"weight_gb_per_token\":%.4f,\"copy_gb_s\":%.2f,\"read_gb_s\":%.2f,"
               "\"bound_tok_s_copy\":%.3f,\"bound_tok_s_read\":%.3f,"
               "\"decode_share_of_copy_bound\":%.3f,\"decode_share_of_read_bound\":%.3f,"
               "\"prefill_time_in_sgemm\":%.3f,\"prefill_sgemm_gflops\":%.1f,\"open_s\":%.2f}\n",
               T, info.n_layers, info.dtype, prompt, decode, best_pre, best_dec, gb, copy_bw,
               read_bw, copy_bw / gb, read_bw / gb, best_dec / (copy_bw / gb),
               best_dec / (read_bw / gb), gemm_share, gemm_gflops, t_open);
        fflush(stdout);
        if (ti == n_threads - 1) {
            parity(dir, "bf16", l0, l1);
            parity(dir, "f16", l0, l1);
            parity(dir, "f32", l0, l1);
        }
        gs_llama_close(&lm);
    }
    gs_free(src), gs_free(dst), gs_free(ids), gs_free(l0), gs_free(l1);
    return 0;
}
