// bench_ops: CPU time per element of the encoder's element-wise kernels of model/ops.h at the
// sizes of a ViT-B/32 shard of 8 images (400 tokens): GELU and QuickGELU over the MLP hidden
// (400 x 3072), LayerNorm over the residual (400 x 768), softmax over one head's attention
// scores (50 x 50). Single-threaded, process CPU time, best of 5: meaningful on a shared
// machine. Run by hand, never by the test suite:
//
//   B=BUILD_DIR; cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I $B/inc/model -I $B/inc/common
//     bench/encoder/bench_ops.c $B/model/libgs_model.a $B/common/libgs_common.a
//     $(pkg-config --libs openblas) -lm -lpthread -o /tmp/bench_ops && /tmp/bench_ops
// (one command line). GELU and QuickGELU include a copy of their input per call: subtract the
// "copy" line.
#include <stdio.h>
#include <time.h>

#include "common/alloc.h"
#include "model/ops.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { ROWS = 400, WIDTH = 768, MLP = 3072, TOK = 50, BEST_OF = 5 };

static float *filled(size_t n, int period, float scale, float offset)
{
    float *x = gs_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(i % (size_t)period) * scale + offset;
    return x;
}

// TIME: the best of BEST_OF timings of `reps` calls of `body`, in ns per element.
#define TIME(name, n_elems, reps, body)                                                            \
    do {                                                                                           \
        double best = 1e30;                                                                        \
        for (int k = 0; k < BEST_OF; k++) {                                                        \
            double t0 = cpu_s();                                                                   \
            for (int r = 0; r < (reps); r++) {                                                     \
                body;                                                                              \
            }                                                                                      \
            double dt = (cpu_s() - t0) / (reps) / (double)(n_elems)*1e9;                           \
            best = dt < best ? dt : best;                                                          \
        }                                                                                          \
        printf("{\"kernel\":\"%s\",\"elements\":%zu,\"ns_per_element_cpu\":%.3f}\n", name,         \
               (size_t)(n_elems), best);                                                           \
    } while (0)

int main(void)
{
    size_t n_mlp = (size_t)ROWS * MLP, n_res = (size_t)ROWS * WIDTH;
    // the activations see the same values each call: a fresh copy of x0 per call
    float *x0 = filled(n_mlp, 1000, 0.008f, -4.0f), *x = gs_xmalloc(n_mlp * sizeof(float));
    TIME("gelu", n_mlp, 20, {
        for (size_t i = 0; i < n_mlp; i++)
            x[i] = x0[i];
        gs_ops_gelu(x, n_mlp);
    });
    TIME("quick_gelu", n_mlp, 20, {
        for (size_t i = 0; i < n_mlp; i++)
            x[i] = x0[i];
        gs_ops_quick_gelu(x, n_mlp);
    });
    TIME("copy (subtract from the two above)", n_mlp, 20, {
        for (size_t i = 0; i < n_mlp; i++)
            x[i] = x0[i];
        __asm__ volatile("" ::"r"(x) : "memory");
    });
    float *a = filled(n_res, 97, 0.01f, 0.0f), *o = gs_xmalloc(n_res * sizeof(float));
    float *g = filled(WIDTH, 7, 0.01f, 1.0f), *b = filled(WIDTH, 5, 0.01f, 0.1f);
    TIME("layernorm", n_res, 200, gs_ops_layernorm(a, WIDTH, ROWS, WIDTH, g, b, 1e-5f, o, WIDTH));
    float *s0 = filled((size_t)TOK * TOK, 13, 0.3f, 0.0f), *s = gs_xmalloc(TOK * TOK * 4);
    TIME("softmax", (size_t)TOK * TOK, 20000, {
        for (int i = 0; i < TOK * TOK; i++)
            s[i] = s0[i];
        gs_ops_softmax(s, TOK, TOK, TOK);
    });
    gs_free(x0);
    gs_free(x);
    gs_free(a);
    gs_free(o);
    gs_free(g);
    gs_free(b);
    gs_free(s0);
    gs_free(s);
    return 0;
}
