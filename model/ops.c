// BLAS-backed tensor ops of the inference engine, and their naive C references. The only
// includer of cblas.h. Element-wise kernels are written as fixed-width inner loops that the
// compiler vectorises, and are cloned for AVX-512 / AVX2 / baseline x86-64 (picked at load
// time), so the default build stays portable. Kernels never log; they keep counters.
#include "model/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define GS_OPS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GS_OPS_CLONES
#endif

enum { VW = 16 }; // the width of the fixed inner loops (one AVX-512 register of floats)

// ---- library and threads ------------------------------------------------------------------

void gs_ops_blas_info(char *out, size_t out_nbytes)
{
    snprintf(out, out_nbytes, "%s (core: %s)", openblas_get_config(), openblas_get_corename());
}

void gs_ops_set_threads(int n_threads)
{
    openblas_set_num_threads(n_threads > 0 ? n_threads : 1);
}

int gs_ops_get_threads(void)
{
    return openblas_get_num_threads();
}

bool gs_ops_has_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

// ---- counters -----------------------------------------------------------------------------

// Atomic, so that encoder threads running GEMMs side by side can all count.
static _Atomic uint64_t cnt_flops, cnt_ns, cnt_cpu_ns, cnt_calls;
static _Atomic bool counters_on;

void gs_ops_counters_enable(bool on)
{
    atomic_store(&counters_on, on);
}

void gs_ops_counters_get(gs_ops_counters_t *out)
{
    out->gemm_flops = (double)atomic_load(&cnt_flops);
    out->gemm_seconds = (double)atomic_load(&cnt_ns) * 1e-9;
    out->gemm_cpu_seconds = (double)atomic_load(&cnt_cpu_ns) * 1e-9;
    out->n_gemm = atomic_load(&cnt_calls);
}

void gs_ops_counters_reset(void)
{
    atomic_store(&cnt_flops, 0);
    atomic_store(&cnt_ns, 0);
    atomic_store(&cnt_cpu_ns, 0);
    atomic_store(&cnt_calls, 0);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// ---- number formats -----------------------------------------------------------------------

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float gs_ops_bf16_to_f32_1(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

uint16_t gs_ops_f32_to_bf16_1(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); // quiet NaN, sign kept
    u += 0x7fffu + ((u >> 16) & 1);          // round to nearest even
    return (uint16_t)(u >> 16);
}

float gs_ops_f16_to_f32_1(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) // inf / NaN
        return u2f(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { // zero / subnormal: man * 2^-24
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t gs_ops_f32_to_f16_1(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) // NaN
        return sign | 0x7e00;
    if (a >= 0x477ff000u) // rounds to >= 65520: infinity
        return sign | 0x7c00;
    if (a < 0x38800000u) { // below the smallest normal half (2^-14): subnormal or zero
        // value = a_float; subnormal half unit = 2^-24; round to nearest even
        float v = u2f(a) * 16777216.0f; // in units of 2^-24, exact (power-of-two scale)
        uint32_t q = (uint32_t)v;
        float rem = v - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1)))
            q++;
        return sign | (uint16_t)q; // q <= 0x400 (may round up to the smallest normal)
    }
    // normal: re-bias the exponent, round the 13 dropped mantissa bits to nearest even
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

void gs_ops_f16_to_f32(const uint16_t *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = gs_ops_f16_to_f32_1(in[i]);
}

void gs_ops_f32_to_f16(const float *in, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = gs_ops_f32_to_f16_1(in[i]);
}

GS_OPS_CLONES
void gs_ops_bf16_to_f32(const uint16_t *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = u2f((uint32_t)in[i] << 16);
}

GS_OPS_CLONES
void gs_ops_f32_to_bf16(const float *in, size_t n, uint16_t *out)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        uint16_t tmp[VW];
        for (int j = 0; j < VW; j++) {
            uint32_t u = f2u(in[i + j]);
            uint32_t r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
            uint32_t nan = (u >> 16) | 0x40;
            tmp[j] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : r);
        }
        memcpy(out + i, tmp, sizeof tmp);
    }
    for (; i < n; i++)
        out[i] = gs_ops_f32_to_bf16_1(in[i]);
}

// ---- matrix products ----------------------------------------------------------------------

void gs_ops_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    bool count = atomic_load_explicit(&counters_on, memory_order_relaxed);
    uint64_t t0 = count ? clock_ns(CLOCK_MONOTONIC) : 0;
    uint64_t c0 = count ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (count) {
        atomic_fetch_add_explicit(&cnt_cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&cnt_ns, clock_ns(CLOCK_MONOTONIC) - t0, memory_order_relaxed);
        atomic_fetch_add_explicit(&cnt_flops, 2ull * (uint64_t)m * n * k, memory_order_relaxed);
        atomic_fetch_add_explicit(&cnt_calls, 1, memory_order_relaxed);
    }
}

void gs_ops_sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)av * bv;
            }
            float *cv = &c[(size_t)i * ldc + j];
            *cv = (float)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *cv));
        }
}

void gs_ops_linear(const gs_ops_weight_t *w, const float *bias, const float *x, int ld_x,
                   int n_rows, float beta, float *out, int ld_out)
{
    if (n_rows <= 0)
        return;
    // Put the bias into the output first and let the GEMM accumulate onto it (beta = 1):
    // OpenBLAS would otherwise make its own pass over C to apply beta.
    if (bias) {
        if (beta == 0) {
            for (int i = 0; i < n_rows; i++)
                memcpy(out + (size_t)i * ld_out, bias, (size_t)w->n_out * sizeof(float));
        } else {
            if (beta != 1)
                for (int i = 0; i < n_rows; i++)
                    for (int j = 0; j < w->n_out; j++)
                        out[(size_t)i * ld_out + j] *= beta;
            gs_ops_add_bias(out, ld_out, n_rows, w->n_out, bias);
        }
        beta = 1;
    }
    int ldw = w->in_out ? w->n_out : w->n_in;
    gs_ops_sgemm(false, !w->in_out, n_rows, w->n_out, w->n_in, 1.0f, x, ld_x, w->f32, ldw, beta,
                 out, ld_out);
}

void gs_ops_linear_ref(const gs_ops_weight_t *w, const float *bias, const float *x, int ld_x,
                       int n_rows, float beta, float *out, int ld_out)
{
    for (int i = 0; i < n_rows; i++)
        for (int j = 0; j < w->n_out; j++) {
            double acc = bias ? bias[j] : 0.0;
            for (int p = 0; p < w->n_in; p++) {
                size_t wi = w->in_out ? (size_t)p * w->n_out + j : (size_t)j * w->n_in + p;
                acc += (double)x[(size_t)i * ld_x + p] * w->f32[wi];
            }
            float *o = &out[(size_t)i * ld_out + j];
            *o = (float)(acc + (beta == 0 ? 0.0 : (double)beta * *o));
        }
}

// ---- normalisations -----------------------------------------------------------------------

GS_OPS_CLONES
static void layernorm_row(const float *x, int dim, const float *gamma, const float *beta, float eps,
                          float *out)
{
    float part[VW] = {0};
    int i = 0;
    for (; i + VW <= dim; i += VW)
        for (int j = 0; j < VW; j++)
            part[j] += x[i + j];
    float sum = 0;
    for (int j = 0; j < VW; j++)
        sum += part[j];
    for (; i < dim; i++)
        sum += x[i];
    float mean = sum / dim;
    float vpart[VW] = {0};
    for (i = 0; i + VW <= dim; i += VW)
        for (int j = 0; j < VW; j++) {
            float d = x[i + j] - mean;
            vpart[j] += d * d;
        }
    float var = 0;
    for (int j = 0; j < VW; j++)
        var += vpart[j];
    for (; i < dim; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(var / dim + eps);
    i = 0;
    if (gamma && beta) // the models' case: fixed-width blocks through a local copy vectorise
        for (; i + VW <= dim; i += VW) { // (out may be x)
            float v[VW];
            for (int j = 0; j < VW; j++)
                v[j] = (x[i + j] - mean) * rstd * gamma[i + j] + beta[i + j];
            memcpy(out + i, v, sizeof v);
        }
    for (; i < dim; i++) {
        float v = (x[i] - mean) * rstd;
        out[i] = v * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
    }
}

void gs_ops_layernorm(const float *x, int ld_x, int n_rows, int dim, const float *gamma,
                      const float *beta, float eps, float *out, int ld_out)
{
    for (int r = 0; r < n_rows; r++)
        layernorm_row(x + (size_t)r * ld_x, dim, gamma, beta, eps, out + (size_t)r * ld_out);
}

void gs_ops_layernorm_ref(const float *x, int ld_x, int n_rows, int dim, const float *gamma,
                          const float *beta, float eps, float *out, int ld_out)
{
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * ld_x;
        float *o = out + (size_t)r * ld_out;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++)
            mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= dim;
        double rstd = 1.0 / sqrt(var + eps);
        for (int i = 0; i < dim; i++)
            o[i] =
                (float)((xr[i] - mean) * rstd * (gamma ? gamma[i] : 1.0) + (beta ? beta[i] : 0.0));
    }
}

GS_OPS_CLONES
void gs_ops_rmsnorm(const float *x, int n_rows, int dim, const float *w, float eps, float *out)
{
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *o = out + (size_t)r * dim;
        float part[VW] = {0};
        int i = 0;
        for (; i + VW <= dim; i += VW)
            for (int j = 0; j < VW; j++)
                part[j] += xr[i + j] * xr[i + j];
        float ss = 0;
        for (int j = 0; j < VW; j++)
            ss += part[j];
        for (; i < dim; i++)
            ss += xr[i] * xr[i];
        float s = 1.0f / sqrtf(ss / dim + eps);
        if (w) // two loops, so that each vectorises (no per-element branch)
            for (i = 0; i < dim; i++)
                o[i] = xr[i] * s * w[i];
        else
            for (i = 0; i < dim; i++)
                o[i] = xr[i] * s;
    }
}

void gs_ops_rmsnorm_ref(const float *x, int n_rows, int dim, const float *w, float eps, float *out)
{
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++)
            ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++)
            out[(size_t)r * dim + i] = (float)(xr[i] * s * (w ? w[i] : 1.0));
    }
}

void gs_ops_l2_normalize(float *x, int n_rows, int dim)
{
    for (int r = 0; r < n_rows; r++) {
        float *xr = x + (size_t)r * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++)
            ss += (double)xr[i] * xr[i];
        if (ss > 0) {
            float s = (float)(1.0 / sqrt(ss));
            for (int i = 0; i < dim; i++)
                xr[i] *= s;
        }
    }
}

// ---- element-wise -------------------------------------------------------------------------

// The kernels of this section and softmax evaluate polynomials. GCC compiles them with
// floating-point contraction (a * b + c as one fused multiply-add in the clones whose target
// has FMA: x86-64-v3 and v4), which the build's ISO C mode (-std=c11) otherwise turns off:
// about half the instructions, 1.7x on GELU (bench/encoder/README.md). FMA rounds once instead
// of twice, so results move in the last bits only; tests/test_model_ops.c bounds them against
// libm. The references here compute in double and have no a * b + c to contract.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#endif

// exp(x) for float, vectorisable (no calls, no branches): Cody-Waite reduction by ln 2 and a
// degree-7 Taylor polynomial on |r| <= ln2/2 (truncation error < 1e-8 relative). The input is
// clamped to [-87, 88], so exp(-inf) gives about 1.6e-38 rather than 0 (callers that need an
// exact 0 test for it).
static inline float exp_fast(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f + 12582912.0f; // round(x / ln2) in the low bits
    int32_t ki;
    {
        uint32_t u = f2u(t);
        ki = (int32_t)(u - 0x4b400000u);
    }
    float kf = t - 12582912.0f;
    float r = x - kf * 0.693145751953125f;
    r = r - kf * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * u2f((uint32_t)(ki + 127) << 23);
}

// 1 + erf(x / sqrt(2)) = 2 * Phi(x), through erfc with a fractional error below 1.2e-7 everywhere
// (Numerical Recipes' erfcc, a Chebyshev fit), so negative x keep their relative precision.
static inline float one_plus_erf_fast(float x)
{
    float z = x * 0.70710678118654752f;
    float az = z < 0 ? -z : z;
    float t = 1.0f / (1.0f + 0.5f * az);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float erfc_az = t * exp_fast(-az * az + p);
    return z < 0 ? erfc_az : 2.0f - erfc_az;
}

GS_OPS_CLONES
void gs_ops_gelu(float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        for (int j = 0; j < VW; j++)
            x[i + j] = 0.5f * x[i + j] * one_plus_erf_fast(x[i + j]);
    for (; i < n; i++)
        x[i] = 0.5f * x[i] * one_plus_erf_fast(x[i]);
}

void gs_ops_gelu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

// x * sigmoid(a x); exp_fast's clamp keeps 1/(1+e) finite for every input.
GS_OPS_CLONES
static void mul_sigmoid(float *x, size_t n, float a)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        for (int j = 0; j < VW; j++)
            x[i + j] = x[i + j] / (1.0f + exp_fast(-a * x[i + j]));
    for (; i < n; i++)
        x[i] = x[i] / (1.0f + exp_fast(-a * x[i]));
}

void gs_ops_quick_gelu(float *x, size_t n)
{
    mul_sigmoid(x, n, 1.702f);
}

void gs_ops_quick_gelu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(x[i] / (1.0 + exp(-1.702 * x[i])));
}

void gs_ops_silu(float *x, size_t n)
{
    mul_sigmoid(x, n, 1.0f);
}

void gs_ops_silu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
}

GS_OPS_CLONES
void gs_ops_add_bias(float *x, int ld, int n_rows, int dim, const float *bias)
{
    for (int r = 0; r < n_rows; r++) {
        float *xr = x + (size_t)r * ld;
        int i = 0;
        for (; i + VW <= dim; i += VW)
            for (int j = 0; j < VW; j++)
                xr[i + j] += bias[i + j];
        for (; i < dim; i++)
            xr[i] += bias[i];
    }
}

GS_OPS_CLONES
void gs_ops_add(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        for (int j = 0; j < VW; j++)
            y[i + j] += x[i + j];
    for (; i < n; i++)
        y[i] += x[i];
}

GS_OPS_CLONES
static void softmax_row(float *x, int cols)
{
    // the maximum in VW lanes (exact in any order), so that it vectorises
    float pmax[VW];
    for (int j = 0; j < VW; j++)
        pmax[j] = -INFINITY;
    int i = 0;
    for (; i + VW <= cols; i += VW)
        for (int j = 0; j < VW; j++)
            pmax[j] = x[i + j] > pmax[j] ? x[i + j] : pmax[j];
    float mx = -INFINITY;
    for (int j = 0; j < VW; j++)
        mx = pmax[j] > mx ? pmax[j] : mx;
    for (; i < cols; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        memset(x, 0, (size_t)cols * sizeof(float));
        return;
    }
    float part[VW] = {0};
    for (i = 0; i + VW <= cols; i += VW)
        for (int j = 0; j < VW; j++) {
            float e = x[i + j] == -INFINITY ? 0.0f : exp_fast(x[i + j] - mx);
            x[i + j] = e;
            part[j] += e;
        }
    float sum = 0;
    for (int j = 0; j < VW; j++)
        sum += part[j];
    for (; i < cols; i++) {
        float e = x[i] == -INFINITY ? 0.0f : exp_fast(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (i = 0; i < cols; i++)
        x[i] *= inv;
}

void gs_ops_softmax(float *x, int ld, int n_rows, int cols)
{
    for (int r = 0; r < n_rows; r++)
        softmax_row(x + (size_t)r * ld, cols);
}

void gs_ops_softmax_ref(float *x, int ld, int n_rows, int cols)
{
    for (int r = 0; r < n_rows; r++) {
        float *xr = x + (size_t)r * ld;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < cols; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        if (mx == -INFINITY) {
            for (int i = 0; i < cols; i++)
                xr[i] = 0;
            continue;
        }
        for (int i = 0; i < cols; i++)
            sum += exp(xr[i] - mx);
        for (int i = 0; i < cols; i++)
            xr[i] = (float)(exp(xr[i] - mx) / sum);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// ---- attention ----------------------------------------------------------------------------

void gs_ops_attention(const float *qkv, int ld_qkv, int n_seq, int n_tok, int dim, int n_heads,
                      float scale, bool causal, float *scratch, float *out, int ld_out)
{
    int hd = dim / n_heads;
    for (int s = 0; s < n_seq; s++) {
        const float *base = qkv + (size_t)s * n_tok * ld_qkv;
        float *o = out + (size_t)s * n_tok * ld_out;
        for (int h = 0; h < n_heads; h++) {
            const float *q = base + h * hd, *k = base + dim + h * hd, *v = base + 2 * dim + h * hd;
            // scores[i, j] = scale * q_i . k_j
            gs_ops_sgemm(false, true, n_tok, n_tok, hd, scale, q, ld_qkv, k, ld_qkv, 0.0f, scratch,
                         n_tok);
            if (causal) {
                // row i sees keys 0..i: the softmax over those alone, exact zeros after. Row i's
                // values then do not depend on n_tok, so a sequence cut after its last needed
                // token (the CLIP text tower) gives the same rows as the full context.
                for (int i = 0; i < n_tok; i++) {
                    float *row = scratch + (size_t)i * n_tok;
                    softmax_row(row, i + 1);
                    memset(row + i + 1, 0, (size_t)(n_tok - i - 1) * sizeof(float));
                }
            } else {
                gs_ops_softmax(scratch, n_tok, n_tok, n_tok);
            }
            gs_ops_sgemm(false, false, n_tok, hd, n_tok, 1.0f, scratch, n_tok, v, ld_qkv, 0.0f,
                         o + h * hd, ld_out);
        }
    }
}

void gs_ops_attention_ref(const float *qkv, int ld_qkv, int n_seq, int n_tok, int dim, int n_heads,
                          float scale, bool causal, float *out, int ld_out)
{
    int hd = dim / n_heads;
    for (int s = 0; s < n_seq; s++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < n_tok; i++) {
                const float *q = qkv + ((size_t)s * n_tok + i) * ld_qkv + h * hd;
                double mx = -INFINITY, sum = 0;
                int n_keys = causal ? i + 1 : n_tok;
                double sc[n_keys];
                for (int j = 0; j < n_keys; j++) {
                    const float *k = qkv + ((size_t)s * n_tok + j) * ld_qkv + dim + h * hd;
                    double d = 0;
                    for (int p = 0; p < hd; p++)
                        d += (double)q[p] * k[p];
                    sc[j] = d * scale;
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < n_keys; j++) {
                    sc[j] = exp(sc[j] - mx);
                    sum += sc[j];
                }
                float *o = out + ((size_t)s * n_tok + i) * ld_out + h * hd;
                for (int p = 0; p < hd; p++) {
                    double acc = 0;
                    for (int j = 0; j < n_keys; j++)
                        acc += sc[j] * qkv[((size_t)s * n_tok + j) * ld_qkv + 2 * dim + h * hd + p];
                    o[p] = (float)(acc / sum);
                }
            }
}
