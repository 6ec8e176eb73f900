// model/ops: every fast op against its naive C reference (ggml test-backend-ops style), on
// seeded random inputs with awkward sizes (not multiples of the vector width), strides, and
// both transposes; number-format conversions on exact corner values.
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "model/ops.h"
#include "testutil.h"

// xorshift-based uniform floats in [-a, a]; deterministic.
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(float a)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return a * (2.0f * (float)((rng_state >> 40) & 0xffffff) / 16777216.0f - 1.0f);
}

static float *rand_vec(size_t n, float a)
{
    float *v = gs_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = frand(a);
    return v;
}

static float *dup_vec(const float *v, size_t n)
{
    float *d = gs_xmalloc(n * sizeof(float));
    memcpy(d, v, n * sizeof(float));
    return d;
}

// ---- conversions --------------------------------------------------------------------------

START_TEST(test_ops_f16_bf16_conversions_exact)
{
    // F16 corner values: 1, -2, max, smallest normal, smallest subnormal, inf, 0.5 ulp ties
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(1.0f), 0x3c00);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(-2.0f), 0xc000);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(65504.0f), 0x7bff);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(65520.0f), 0x7c00); // tie rounds to even = inf
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(1e9f), 0x7c00);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(6.103515625e-05f), 0x0400);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(5.9604644775390625e-08f), 0x0001);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(2.98023223876953125e-08f), 0x0000); // tie to even
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(8.94069671630859375e-08f), 0x0002); // 1.5 -> 2
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(1.0f + 1.0f / 2048), 0x3c00);       // tie to even
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(1.0f + 3.0f / 2048), 0x3c02);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(-0.0f), 0x8000);
    ck_assert_uint_eq(gs_ops_f32_to_f16_1(INFINITY), 0x7c00);
    ck_assert(isnan(gs_ops_f16_to_f32_1(gs_ops_f32_to_f16_1(NAN))));
    ck_assert(gs_ops_f16_to_f32_1(0x7bff) == 65504.0f);
    ck_assert(gs_ops_f16_to_f32_1(0x0001) == 5.9604644775390625e-08f);
    ck_assert(gs_ops_f16_to_f32_1(0x83ff) == -6.097555160522461e-05f);
    ck_assert(isinf(gs_ops_f16_to_f32_1(0xfc00)) && gs_ops_f16_to_f32_1(0xfc00) < 0);
    // every half round-trips exactly through float
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t hh = (uint16_t)h;
        float f = gs_ops_f16_to_f32_1(hh);
        if (isnan(f))
            continue;
        ck_assert_msg(gs_ops_f32_to_f16_1(f) == hh, "half 0x%04x", h);
    }
    // BF16: round to nearest even, NaN stays NaN
    ck_assert_uint_eq(gs_ops_f32_to_bf16_1(1.0f), 0x3f80);
    ck_assert_uint_eq(gs_ops_f32_to_bf16_1(1.0f + 1.0f / 256), 0x3f80); // tie to even
    ck_assert_uint_eq(gs_ops_f32_to_bf16_1(1.0f + 3.0f / 256), 0x3f82);
    ck_assert(isnan(gs_ops_bf16_to_f32_1(gs_ops_f32_to_bf16_1(NAN))));
    ck_assert(gs_ops_bf16_to_f32_1(0xc040) == -3.0f);
    // vector and scalar conversions agree (vector path has a 16-wide body and a tail)
    float in[37];
    uint16_t a[37], b[37];
    float back[37];
    for (int i = 0; i < 37; i++)
        in[i] = frand(100.0f);
    in[5] = NAN;
    in[20] = -INFINITY;
    gs_ops_f32_to_bf16(in, 37, a);
    gs_ops_bf16_to_f32(a, 37, back);
    for (int i = 0; i < 37; i++) {
        b[i] = gs_ops_f32_to_bf16_1(in[i]);
        ck_assert_uint_eq(a[i], b[i]);
        if (isfinite(in[i]))
            ck_assert(fabsf(back[i] - in[i]) <= fabsf(in[i]) / 256);
    }
    gs_ops_f32_to_f16(in, 37, a);
    gs_ops_f16_to_f32(a, 37, back);
    for (int i = 0; i < 37; i++)
        if (isfinite(in[i]))
            ck_assert(fabsf(back[i] - in[i]) <= fabsf(in[i]) / 2048);
        else
            ck_assert(isnan(in[i]) ? isnan(back[i]) : back[i] == in[i]);
}
END_TEST

// ---- GEMMs --------------------------------------------------------------------------------

START_TEST(test_ops_sgemm_matches_reference_all_transposes)
{
    const int m = 37, n = 29, k = 53, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 2; bi++) {
                float beta = bi ? 0.5f : 0.0f;
                int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
                float *a = rand_vec((size_t)(ta ? k : m) * lda, 1.0f);
                float *b = rand_vec((size_t)(tb ? n : k) * ldb, 1.0f);
                float *c = rand_vec((size_t)m * ldc, 1.0f);
                float *c_ref = dup_vec(c, (size_t)m * ldc);
                if (!bi) // beta == 0 must not read C: NaNs there must not leak out
                    for (int i = 0; i < m * ldc; i++)
                        c[i] = c_ref[i] = NAN;
                gs_ops_sgemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, c, ldc);
                gs_ops_sgemm_ref(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, c_ref, ldc);
                for (int i = 0; i < m; i++)
                    ck_assert_msg(gs_test_check_close("sgemm", c + i * ldc, c_ref + i * ldc, n,
                                                      1e-5, 1e-5) == 0,
                                  "ta=%d tb=%d beta=%g row %d", ta, tb, beta, i);
                gs_free(a);
                gs_free(b);
                gs_free(c);
                gs_free(c_ref);
            }
}
END_TEST

START_TEST(test_ops_linear_layouts_bias_and_accumulate)
{
    const int rows = 23, n_in = 41, n_out = 35, ld_x = 44, ld_out = 40;
    float *wf = rand_vec((size_t)n_in * n_out, 0.5f), *bias = rand_vec(n_out, 1.0f);
    float *x = rand_vec((size_t)rows * ld_x, 1.0f);
    for (int layout = 0; layout < 2; layout++)
        for (int acc = 0; acc < 3; acc++) {
            gs_ops_weight_t w = {.f32 = wf, .n_in = n_in, .n_out = n_out, .in_out = layout == 1};
            float beta = acc == 0 ? 0.0f : acc == 1 ? 1.0f : -0.5f;
            const float *b = acc == 2 ? NULL : bias;
            float *out = rand_vec((size_t)rows * ld_out, 1.0f);
            float *ref = dup_vec(out, (size_t)rows * ld_out);
            gs_ops_linear(&w, b, x, ld_x, rows, beta, out, ld_out);
            gs_ops_linear_ref(&w, b, x, ld_x, rows, beta, ref, ld_out);
            for (int i = 0; i < rows; i++)
                ck_assert_msg(gs_test_check_close("linear", out + i * ld_out, ref + i * ld_out,
                                                  n_out, 1e-4, 1e-5) == 0,
                              "layout=%d acc=%d row %d", layout, acc, i);
            // the padding between rows is untouched
            for (int i = 0; i < rows; i++)
                for (int j = n_out; j < ld_out; j++)
                    ck_assert(out[i * ld_out + j] == ref[i * ld_out + j]);
            gs_free(out);
            gs_free(ref);
        }
    gs_free(wf);
    gs_free(bias);
    gs_free(x);
}
END_TEST

// ---- normalisations and element-wise ------------------------------------------------------

START_TEST(test_ops_layernorm_rmsnorm_match_reference)
{
    const int rows = 9;
    const int dims[] = {1, 15, 16, 64, 77, 768};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        int dim = dims[d], ld = dim + 5;
        float *x = rand_vec((size_t)rows * ld, 3.0f);
        for (int i = 0; i < rows * ld; i++)
            x[i] += 10.0f; // an offset, so a one-pass variance would lose precision
        float *g = rand_vec(dim, 2.0f), *b = rand_vec(dim, 1.0f);
        float *out = gs_xcalloc((size_t)rows * ld, sizeof(float));
        float *ref = gs_xcalloc((size_t)rows * ld, sizeof(float));
        gs_ops_layernorm(x, ld, rows, dim, g, b, 1e-5f, out, ld);
        gs_ops_layernorm_ref(x, ld, rows, dim, g, b, 1e-5f, ref, ld);
        ck_assert_msg(gs_test_check_close("layernorm", out, ref, (size_t)rows * ld, 2e-5, 2e-5) ==
                          0,
                      "dim %d", dim);
        // in place, without gamma/beta
        gs_ops_layernorm_ref(x, ld, rows, dim, NULL, NULL, 1e-5f, ref, ld);
        gs_ops_layernorm(x, ld, rows, dim, NULL, NULL, 1e-5f, x, ld);
        for (int r = 0; r < rows; r++)
            ck_assert(gs_test_check_close("layernorm_inplace", x + r * ld, ref + r * ld, dim, 2e-5,
                                          2e-5) == 0);
        gs_free(x);
        x = rand_vec((size_t)rows * dim, 3.0f);
        gs_ops_rmsnorm(x, rows, dim, g, 1e-5f, out);
        gs_ops_rmsnorm_ref(x, rows, dim, g, 1e-5f, ref);
        ck_assert_msg(gs_test_check_close("rmsnorm", out, ref, (size_t)rows * dim, 1e-5, 1e-5) == 0,
                      "dim %d", dim);
        gs_free(x);
        gs_free(g);
        gs_free(b);
        gs_free(out);
        gs_free(ref);
    }
}
END_TEST

START_TEST(test_ops_activations_match_libm)
{
    // a dense sweep over [-12, 12] plus extremes, with a length that leaves a tail
    const size_t n = 24007;
    float *x = gs_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    x[0] = -1e30f;
    x[1] = 1e30f;
    x[2] = -100.0f;
    x[3] = 100.0f;
    x[4] = 0.0f;
    void (*fast[3])(float *, size_t) = {gs_ops_gelu, gs_ops_quick_gelu, gs_ops_silu};
    void (*ref[3])(float *, size_t) = {gs_ops_gelu_ref, gs_ops_quick_gelu_ref, gs_ops_silu_ref};
    const char *names[3] = {"gelu", "quick_gelu", "silu"};
    for (int f = 0; f < 3; f++) {
        float *a = dup_vec(x, n), *b = dup_vec(x, n);
        fast[f](a, n);
        ref[f](b, n);
        // relative 1e-6 plus absolute 1e-7 * |x| (the erf/exp approximations)
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            double tol = 1e-6 * fabs(b[i]) + 1e-7 * fmin(fabs(x[i]), 100.0) + 1e-30;
            if (!(fabs(a[i] - b[i]) <= tol) && bad++ < 5)
                fprintf(stderr, "%s(%g): got %.9g want %.9g\n", names[f], x[i], a[i], b[i]);
        }
        ck_assert_msg(bad == 0, "%s: %zu mismatches", names[f], bad);
        gs_free(a);
        gs_free(b);
    }
    gs_free(x);
}
END_TEST

START_TEST(test_ops_softmax_add_bias_l2)
{
    const int rows = 7, cols = 53, ld = 60;
    float *x = rand_vec((size_t)rows * ld, 20.0f);
    x[3] = -INFINITY; // masked entries get exactly 0
    for (int j = 0; j < cols; j++)
        x[2 * ld + j] = -INFINITY; // a fully masked row becomes zeros
    float *r = dup_vec(x, (size_t)rows * ld);
    gs_ops_softmax(x, ld, rows, cols);
    gs_ops_softmax_ref(r, ld, rows, cols);
    for (int i = 0; i < rows; i++)
        ck_assert(gs_test_check_close("softmax", x + i * ld, r + i * ld, cols, 1e-7, 1e-6) == 0);
    ck_assert(x[3] == 0.0f && x[2 * ld + 5] == 0.0f);

    float y[5] = {1, 2, 3, 4, 5}, z[5] = {0.5f, 0.5f, 0.5f, 0.5f, -5};
    gs_ops_add(y, z, 5);
    ck_assert(y[0] == 1.5f && y[4] == 0.0f);
    float m[6] = {1, 2, 9, 3, 4, 9}, bias[2] = {10, 20};
    gs_ops_add_bias(m, 3, 2, 2, bias);
    ck_assert(m[0] == 11 && m[1] == 22 && m[2] == 9 && m[3] == 13 && m[4] == 24 && m[5] == 9);
    float v[6] = {3, 4, 0, 0, 0, 0};
    gs_ops_l2_normalize(v, 2, 3);
    ck_assert(fabsf(v[0] - 0.6f) < 1e-7f && fabsf(v[1] - 0.8f) < 1e-7f && v[3] == 0.0f);
    gs_free(x);
    gs_free(r);
}
END_TEST

START_TEST(test_ops_attention_matches_reference)
{
    // two sequences of 13 tokens, width 24 in 3 heads, qkv rows padded (ld 80 > 72)
    const int n_seq = 2, n_tok = 13, dim = 24, heads = 3, ld = 80, ld_out = 30;
    float *qkv = rand_vec((size_t)n_seq * n_tok * ld, 2.0f);
    float *scratch = gs_xmalloc((size_t)n_tok * n_tok * sizeof(float));
    for (int causal = 0; causal < 2; causal++) {
        float *out = gs_xcalloc((size_t)n_seq * n_tok * ld_out, sizeof(float));
        float *ref = gs_xcalloc((size_t)n_seq * n_tok * ld_out, sizeof(float));
        float scale = 1.0f / sqrtf((float)dim / heads);
        gs_ops_attention(qkv, ld, n_seq, n_tok, dim, heads, scale, causal, scratch, out, ld_out);
        gs_ops_attention_ref(qkv, ld, n_seq, n_tok, dim, heads, scale, causal, ref, ld_out);
        ck_assert_msg(gs_test_check_close("attention", out, ref, (size_t)n_seq * n_tok * ld_out,
                                          1e-5, 1e-5) == 0,
                      "causal=%d", causal);
        if (causal) // the first token attends only to itself: its output is its own v
            for (int p = 0; p < dim; p++)
                ck_assert(fabsf(out[p] - qkv[2 * dim + p]) < 1e-6f);
        gs_free(out);
        gs_free(ref);
    }
    gs_free(qkv);
    gs_free(scratch);
}
END_TEST

START_TEST(test_ops_threads_and_counters)
{
    gs_ops_set_threads(1);
    ck_assert_int_eq(gs_ops_get_threads(), 1);
    gs_ops_set_threads(0);
    ck_assert_int_eq(gs_ops_get_threads(), 1);
    char info[256];
    gs_ops_blas_info(info, sizeof info);
    ck_assert_msg(strstr(info, "OpenBLAS") != NULL, "%s", info);
    float a[4] = {1, 2, 3, 4}, c[4];
    gs_ops_counters_reset();
    gs_ops_counters_enable(true);
    gs_ops_sgemm(false, false, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    gs_ops_counters_enable(false);
    gs_ops_sgemm(false, false, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    gs_ops_counters_t k;
    gs_ops_counters_get(&k);
    ck_assert_uint_eq(k.n_gemm, 1);
    ck_assert(k.gemm_flops == 16.0);
    ck_assert(c[0] == 7 && c[1] == 10 && c[2] == 15 && c[3] == 22);
}
END_TEST

// ---- packed linear layers (oneDNN builds only) --------------------------------------------

// The operands of both packed tests: PK_ROWS input rows of PK_IN values at stride PK_LD_X, a
// PK_IN x PK_OUT weight, a bias, and one slot's scratch (float32-sized: enough for bf16).
enum { PK_ROWS = 37, PK_IN = 96, PK_OUT = 80, PK_LD_X = 100, PK_LD_OUT = 90 };
typedef struct {
    float *w, *bias, *x, *sx, *sy;
} pk_bufs_t;

static pk_bufs_t pk_bufs_new(void)
{
    return (pk_bufs_t){.w = rand_vec((size_t)PK_IN * PK_OUT, 0.5f),
                       .bias = rand_vec(PK_OUT, 1.0f),
                       .x = rand_vec((size_t)PK_ROWS * PK_LD_X, 1.0f),
                       .sx = gs_xmalloc((size_t)PK_ROWS * PK_IN * sizeof(float)),
                       .sy = gs_xmalloc((size_t)PK_ROWS * PK_OUT * sizeof(float))};
}

static void pk_bufs_free(pk_bufs_t *b)
{
    gs_free(b->w);
    gs_free(b->bias);
    gs_free(b->x);
    gs_free(b->sx);
    gs_free(b->sy);
}

// float32 on packed weights: the same arithmetic as gs_ops_linear_ref up to summation order, for
// both weight layouts, with and without bias and accumulation, with strided rows (the input
// copied to the scratch, the output through the epilogue) and contiguous ones (the input read in
// place; without bias and beta the matmul writes straight into out).
START_TEST(test_ops_packed_f32_linear_matches_reference)
{
    gs_ops_packed_t *ctx = NULL;
    gs_err e = gs_ops_packed_new(GS_OPS_PACKED_F32, 2, &ctx);
    if (e == GS_EUNSUPPORTED) { // no oneDNN, or no brgemm float32 kernel on this CPU
        ck_assert_ptr_null(ctx);
        fprintf(stderr, "SKIP %s: no oneDNN float32 brgemm in this build or on this CPU\n",
                __func__);
        return;
    }
    ck_assert_int_eq(e, GS_OK);
    ck_assert_msg(strncmp(gs_ops_packed_kernel(ctx), "brg", 3) == 0, "kernel %s",
                  gs_ops_packed_kernel(ctx));
    const int rows = PK_ROWS, n_in = PK_IN, n_out = PK_OUT;
    pk_bufs_t bufs = pk_bufs_new();
    float *wf = bufs.w, *bias = bufs.bias, *x = bufs.x, *sx = bufs.sx, *sy = bufs.sy;
    ck_assert_int_eq(gs_ops_packed_prepare(ctx, rows, n_in, n_out), GS_OK);
    for (int layout = 0; layout < 2; layout++) {
        gs_ops_weight_t w = {.f32 = wf, .n_in = n_in, .n_out = n_out, .in_out = layout};
        gs_ops_packed_weight_t *pw = NULL;
        ck_assert_int_eq(gs_ops_packed_pack(ctx, &w, &pw), GS_OK);
        for (int c = 0; c < 8; c++) {
            bool strided = c & 1, acc = c & 2, with_bias = c & 4;
            int ld_x = strided ? PK_LD_X : n_in, ld_out = strided ? PK_LD_OUT : n_out;
            float *out = rand_vec((size_t)rows * ld_out, 1.0f);
            float *ref = dup_vec(out, (size_t)rows * ld_out);
            float beta = acc ? 1.0f : 0.0f;
            const float *b = with_bias ? bias : NULL;
            ck_assert_int_eq(
                gs_ops_packed_linear(ctx, 1, pw, b, x, ld_x, rows, beta, out, ld_out, sx, sy),
                GS_OK);
            gs_ops_linear_ref(&w, b, x, ld_x, rows, beta, ref, ld_out);
            for (int i = 0; i < rows; i++) {
                ck_assert_msg(gs_test_check_close("f32 packed linear", out + i * ld_out,
                                                  ref + i * ld_out, n_out, 1e-5, 1e-5) == 0,
                              "layout %d case %d row %d", layout, c, i);
                for (int j = n_out; j < ld_out; j++) // the stride's gap is left alone
                    ck_assert(out[i * ld_out + j] == ref[i * ld_out + j]);
            }
            gs_free(out);
            gs_free(ref);
        }
        float *out = gs_xcalloc((size_t)rows * n_out, sizeof(float));
        ck_assert_int_eq(
            gs_ops_packed_linear(ctx, 0, pw, NULL, x, n_in, rows - 1, 0.0f, out, n_out, sx, sy),
            GS_EINVAL);
        gs_free(out);
    }
    gs_ops_packed_destroy(&ctx);
    ck_assert_ptr_null(ctx);
    pk_bufs_free(&bufs);
}
END_TEST

START_TEST(test_ops_bf16_linear_matches_rounded_reference)
{
    gs_ops_packed_t *ctx = NULL;
    gs_err e = gs_ops_packed_new(GS_OPS_PACKED_BF16, 2, &ctx);
    if (e == GS_EUNSUPPORTED) { // the default build: no oneDNN; said clearly, nothing leaks
        ck_assert_ptr_null(ctx);
        fprintf(stderr, "SKIP %s: built without oneDNN (GS_HAVE_DNNL)\n", __func__);
        return;
    }
    ck_assert_int_eq(e, GS_OK);
    const int rows = PK_ROWS, n_in = PK_IN, n_out = PK_OUT, ld_x = PK_LD_X, ld_out = PK_LD_OUT;
    pk_bufs_t bufs = pk_bufs_new();
    float *wf = bufs.w, *bias = bufs.bias, *x = bufs.x, *sy = bufs.sy;
    void *sx = bufs.sx;
    // the reference: the same products on bf16-rounded values, accumulated in double
    float *wr = gs_xmalloc((size_t)n_in * n_out * sizeof(float));
    float *xr = gs_xmalloc((size_t)rows * ld_x * sizeof(float));
    for (int i = 0; i < n_in * n_out; i++)
        wr[i] = gs_ops_bf16_to_f32_1(gs_ops_f32_to_bf16_1(wf[i]));
    for (int i = 0; i < rows * ld_x; i++)
        xr[i] = gs_ops_bf16_to_f32_1(gs_ops_f32_to_bf16_1(x[i]));
    ck_assert_int_eq(gs_ops_packed_prepare(ctx, rows, n_in, n_out), GS_OK);
    for (int layout = 0; layout < 2; layout++)
        for (int acc = 0; acc < 2; acc++) {
            gs_ops_weight_t w = {.f32 = wf, .n_in = n_in, .n_out = n_out, .in_out = layout};
            gs_ops_weight_t wref = {.f32 = wr, .n_in = n_in, .n_out = n_out, .in_out = layout};
            gs_ops_packed_weight_t *pw = NULL;
            ck_assert_int_eq(gs_ops_packed_pack(ctx, &w, &pw), GS_OK);
            float *out = rand_vec((size_t)rows * ld_out, 1.0f);
            float *ref = dup_vec(out, (size_t)rows * ld_out);
            float beta = acc ? 1.0f : 0.0f;
            ck_assert_int_eq(
                gs_ops_packed_linear(ctx, 1, pw, bias, x, ld_x, rows, beta, out, ld_out, sx, sy),
                GS_OK);
            gs_ops_linear_ref(&wref, bias, xr, ld_x, rows, beta, ref, ld_out);
            for (int i = 0; i < rows; i++)
                ck_assert_msg(gs_test_check_close("bf16 linear", out + i * ld_out, ref + i * ld_out,
                                                  n_out, 1e-4, 1e-4) == 0,
                              "layout %d acc %d row %d", layout, acc, i);
            // a row count that was not prepared is refused, not computed wrongly
            ck_assert_int_eq(gs_ops_packed_linear(ctx, 0, pw, NULL, x, ld_x, rows - 1, 0.0f, out,
                                                  ld_out, sx, sy),
                             GS_EINVAL);
            gs_free(out);
            gs_free(ref);
        }
    gs_ops_packed_destroy(&ctx);
    ck_assert_ptr_null(ctx);
    pk_bufs_free(&bufs);
    gs_free(wr);
    gs_free(xr);
}
END_TEST

Suite *model_ops_suite(void)
{
    Suite *s = suite_create("model_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_ops_f16_bf16_conversions_exact);
    tcase_add_test(tc, test_ops_sgemm_matches_reference_all_transposes);
    tcase_add_test(tc, test_ops_linear_layouts_bias_and_accumulate);
    tcase_add_test(tc, test_ops_layernorm_rmsnorm_match_reference);
    tcase_add_test(tc, test_ops_activations_match_libm);
    tcase_add_test(tc, test_ops_softmax_add_bias_l2);
    tcase_add_test(tc, test_ops_attention_matches_reference);
    tcase_add_test(tc, test_ops_threads_and_counters);
    tcase_add_test(tc, test_ops_packed_f32_linear_matches_reference);
    tcase_add_test(tc, test_ops_bf16_linear_matches_rounded_reference);
    suite_add_tcase(s, tc);
    return s;
}
