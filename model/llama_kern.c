// Decoder kernels: a small thread pool and the linear layer over weights kept in their stored
// precision (F32, F16, BF16). Few rows (decoding): a fused kernel converts each weight block in
// registers and multiplies it with every row, so the weights are read once from memory per
// step. Many rows (prefill): tiles of weight rows are converted to float32 into scratch and
// multiplied with SGEMM. AVX-512 and AVX2/F16C code paths are picked at run time; the scalar
// path is the portable fallback. Kernels never log and never allocate.
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "model/llama_int.h"
#include "model/ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define GS_KERN_X86 1
#endif

// ---- thread pool --------------------------------------------------------------------------

struct gs__pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    uint64_t gen; // job generation; workers run once per increment
    int pending;  // workers still running the current job
    bool stop;
    gs__pool_fn fn;
    void *ctx;
};

typedef struct {
    gs__pool_t *pool;
    int ith;
} worker_arg_t;

static void *worker_main(void *arg)
{
    worker_arg_t *wa = arg;
    gs__pool_t *p = wa->pool;
    int ith = wa->ith;
    gs_free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        gs__pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, ith, p->n_threads);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

gs__pool_t *gs__pool_new(int n_threads)
{
    gs__pool_t *p = gs_xcalloc(1, sizeof *p);
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = gs_xcalloc((size_t)p->n_threads, sizeof *p->threads);
    for (int i = 1; i < p->n_threads; i++) {
        worker_arg_t *wa = gs_xmalloc(sizeof *wa);
        wa->pool = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            gs_free(wa);
            p->n_threads = i; // run with the threads we got
            break;
        }
    }
    (void)gs__kern_isa(); // pick the code path before any concurrent use
    return p;
}

void gs__pool_destroy(gs__pool_t **pp)
{
    if (!pp || !*pp)
        return;
    gs__pool_t *p = *pp;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    gs_free(p->threads);
    gs_free(p);
    *pp = NULL;
}

int gs__pool_n_threads(const gs__pool_t *self)
{
    return self->n_threads;
}

void gs__pool_run(gs__pool_t *self, gs__pool_fn fn, void *ctx)
{
    if (self->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&self->mu);
    self->fn = fn;
    self->ctx = ctx;
    self->pending = self->n_threads - 1;
    self->gen++;
    pthread_cond_broadcast(&self->cv_work);
    pthread_mutex_unlock(&self->mu);
    fn(ctx, 0, self->n_threads);
    pthread_mutex_lock(&self->mu);
    while (self->pending > 0)
        pthread_cond_wait(&self->cv_done, &self->mu);
    pthread_mutex_unlock(&self->mu);
}

// ---- fused row kernels --------------------------------------------------------------------
// rows_fn: out[t * ld_out + r] = dot(W[r, :], x[t, :]) for r in [r0, r1), t < n_tok. Four
// weight rows at a time with two accumulators each (eight independent FMA chains); the four
// rows stay in L1 while every token row is multiplied with them.

typedef void (*rows_fn)(const void *w, int n_in, int r0, int r1, const float *x, int n_tok,
                        float *out, int ld_out);

static inline float cvt1_f32(float v)
{
    return v;
}
static inline float cvt1_bf16(uint16_t v)
{
    return gs_ops_bf16_to_f32_1(v);
}
static inline float cvt1_f16(uint16_t v)
{
    return gs_ops_f16_to_f32_1(v);
}

// The generic kernel body. VEC: vector type; W: its width; LOADW(p): W weights from p as
// floats; LOADX, FMA, ZERO, REDUCE: the vector operations; CVT1: one weight to float.
#define ROWS_BODY(WT, VEC, W, LOADW, LOADX, FMA, ZERO, ADD, REDUCE, CVT1)                          \
    const WT *w = wv;                                                                              \
    int r = r0;                                                                                    \
    for (; r + 4 <= r1; r += 4) {                                                                  \
        const WT *w0 = w + (size_t)r * n_in, *w1 = w0 + n_in, *w2 = w1 + n_in, *w3 = w2 + n_in;    \
        for (int t = 0; t < n_tok; t++) {                                                          \
            const float *xt = x + (size_t)t * n_in;                                                \
            VEC a0 = ZERO, a1 = ZERO, a2 = ZERO, a3 = ZERO;                                        \
            VEC b0 = ZERO, b1 = ZERO, b2 = ZERO, b3 = ZERO;                                        \
            int i = 0;                                                                             \
            for (; i + 2 * W <= n_in; i += 2 * W) {                                                \
                VEC x0 = LOADX(xt + i), x1 = LOADX(xt + i + W);                                    \
                a0 = FMA(LOADW(w0 + i), x0, a0);                                                   \
                a1 = FMA(LOADW(w1 + i), x0, a1);                                                   \
                a2 = FMA(LOADW(w2 + i), x0, a2);                                                   \
                a3 = FMA(LOADW(w3 + i), x0, a3);                                                   \
                b0 = FMA(LOADW(w0 + i + W), x1, b0);                                               \
                b1 = FMA(LOADW(w1 + i + W), x1, b1);                                               \
                b2 = FMA(LOADW(w2 + i + W), x1, b2);                                               \
                b3 = FMA(LOADW(w3 + i + W), x1, b3);                                               \
            }                                                                                      \
            for (; i + W <= n_in; i += W) {                                                        \
                VEC x0 = LOADX(xt + i);                                                            \
                a0 = FMA(LOADW(w0 + i), x0, a0);                                                   \
                a1 = FMA(LOADW(w1 + i), x0, a1);                                                   \
                a2 = FMA(LOADW(w2 + i), x0, a2);                                                   \
                a3 = FMA(LOADW(w3 + i), x0, a3);                                                   \
            }                                                                                      \
            float s0 = REDUCE(ADD(a0, b0)), s1 = REDUCE(ADD(a1, b1));                              \
            float s2 = REDUCE(ADD(a2, b2)), s3 = REDUCE(ADD(a3, b3));                              \
            for (; i < n_in; i++) {                                                                \
                s0 += CVT1(w0[i]) * xt[i];                                                         \
                s1 += CVT1(w1[i]) * xt[i];                                                         \
                s2 += CVT1(w2[i]) * xt[i];                                                         \
                s3 += CVT1(w3[i]) * xt[i];                                                         \
            }                                                                                      \
            float *o = out + (size_t)t * ld_out + r;                                               \
            o[0] = s0;                                                                             \
            o[1] = s1;                                                                             \
            o[2] = s2;                                                                             \
            o[3] = s3;                                                                             \
        }                                                                                          \
    }                                                                                              \
    for (; r < r1; r++) {                                                                          \
        const WT *w0 = w + (size_t)r * n_in;                                                       \
        for (int t = 0; t < n_tok; t++) {                                                          \
            const float *xt = x + (size_t)t * n_in;                                                \
            VEC a0 = ZERO;                                                                         \
            int i = 0;                                                                             \
            for (; i + W <= n_in; i += W)                                                          \
                a0 = FMA(LOADW(w0 + i), LOADX(xt + i), a0);                                        \
            float s0 = REDUCE(a0);                                                                 \
            for (; i < n_in; i++)                                                                  \
                s0 += CVT1(w0[i]) * xt[i];                                                         \
            out[(size_t)t * ld_out + r] = s0;                                                      \
        }                                                                                          \
    }

// Scalar "vectors" of width 1 (the portable path).
#define S_LOADX(p) (*(p))
#define S_FMA(a, b, c) ((a) * (b) + (c))
#define S_ADD(a, b) ((a) + (b))
#define S_RED(a) (a)
#define S_LOAD_F32(p) (*(p))
#define S_LOAD_BF16(p) cvt1_bf16(*(p))
#define S_LOAD_F16(p) cvt1_f16(*(p))

static void rows_f32_scalar(const void *wv, int n_in, int r0, int r1, const float *x, int n_tok,
                            float *out, int ld_out)
{
    ROWS_BODY(float, float, 1, S_LOAD_F32, S_LOADX, S_FMA, 0.0f, S_ADD, S_RED, cvt1_f32)
}
static void rows_bf16_scalar(const void *wv, int n_in, int r0, int r1, const float *x, int n_tok,
                             float *out, int ld_out)
{
    ROWS_BODY(uint16_t, float, 1, S_LOAD_BF16, S_LOADX, S_FMA, 0.0f, S_ADD, S_RED, cvt1_bf16)
}
static void rows_f16_scalar(const void *wv, int n_in, int r0, int r1, const float *x, int n_tok,
                            float *out, int ld_out)
{
    ROWS_BODY(uint16_t, float, 1, S_LOAD_F16, S_LOADX, S_FMA, 0.0f, S_ADD, S_RED, cvt1_f16)
}

#ifdef GS_KERN_X86
// AVX-512 (F only): 16 floats.
#define Z_T "avx512f"
#define Z_LOADX(p) _mm512_loadu_ps(p)
#define Z_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define Z_ADD(a, b) _mm512_add_ps((a), (b))
#define Z_RED(a) _mm512_reduce_add_ps(a)
#define Z_LOAD_F32(p) _mm512_loadu_ps(p)
#define Z_LOAD_BF16(p)                                                                             \
    _mm512_castsi512_ps(                                                                           \
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define Z_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

__attribute__((target(Z_T))) static void rows_f32_avx512(const void *wv, int n_in, int r0, int r1,
                                                         const float *x, int n_tok, float *out,
                                                         int ld_out)
{
    ROWS_BODY(float, __m512, 16, Z_LOAD_F32, Z_LOADX, Z_FMA, _mm512_setzero_ps(), Z_ADD, Z_RED,
              cvt1_f32)
}
__attribute__((target(Z_T))) static void rows_bf16_avx512(const void *wv, int n_in, int r0, int r1,
                                                          const float *x, int n_tok, float *out,
                                                          int ld_out)
{
    ROWS_BODY(uint16_t, __m512, 16, Z_LOAD_BF16, Z_LOADX, Z_FMA, _mm512_setzero_ps(), Z_ADD, Z_RED,
              cvt1_bf16)
}
__attribute__((target(Z_T))) static void rows_f16_avx512(const void *wv, int n_in, int r0, int r1,
                                                         const float *x, int n_tok, float *out,
                                                         int ld_out)
{
    ROWS_BODY(uint16_t, __m512, 16, Z_LOAD_F16, Z_LOADX, Z_FMA, _mm512_setzero_ps(), Z_ADD, Z_RED,
              cvt1_f16)
}

// AVX2 + FMA + F16C: 8 floats.
#define Y_T "avx2,fma,f16c"
#define Y_LOADX(p) _mm256_loadu_ps(p)
#define Y_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define Y_ADD(a, b) _mm256_add_ps((a), (b))
#define Y_LOAD_F32(p) _mm256_loadu_ps(p)
#define Y_LOAD_BF16(p)                                                                             \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define Y_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

__attribute__((target(Y_T))) static inline float y_reduce(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define Y_RED(a) y_reduce(a)

__attribute__((target(Y_T))) static void rows_f32_avx2(const void *wv, int n_in, int r0, int r1,
                                                       const float *x, int n_tok, float *out,
                                                       int ld_out)
{
    ROWS_BODY(float, __m256, 8, Y_LOAD_F32, Y_LOADX, Y_FMA, _mm256_setzero_ps(), Y_ADD, Y_RED,
              cvt1_f32)
}
__attribute__((target(Y_T))) static void rows_bf16_avx2(const void *wv, int n_in, int r0, int r1,
                                                        const float *x, int n_tok, float *out,
                                                        int ld_out)
{
    ROWS_BODY(uint16_t, __m256, 8, Y_LOAD_BF16, Y_LOADX, Y_FMA, _mm256_setzero_ps(), Y_ADD, Y_RED,
              cvt1_bf16)
}
__attribute__((target(Y_T))) static void rows_f16_avx2(const void *wv, int n_in, int r0, int r1,
                                                       const float *x, int n_tok, float *out,
                                                       int ld_out)
{
    ROWS_BODY(uint16_t, __m256, 8, Y_LOAD_F16, Y_LOADX, Y_FMA, _mm256_setzero_ps(), Y_ADD, Y_RED,
              cvt1_f16)
}
#endif

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static int kern_isa = -1;

static int detect_isa(void)
{
#ifdef GS_KERN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return ISA_AVX512;
    // F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports lacks "f16c"
    unsigned a, b, c, d;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
        return ISA_AVX2;
#endif
    return ISA_SCALAR;
}

const char *gs__kern_isa(void)
{
    int isa = __atomic_load_n(&kern_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = detect_isa();
        __atomic_store_n(&kern_isa, isa, __ATOMIC_RELAXED);
    }
    static const char *names[3] = {"scalar", "avx2", "avx512"};
    return names[isa];
}

static rows_fn pick_rows(gs_dtype_t dt)
{
    (void)gs__kern_isa();
    int isa = __atomic_load_n(&kern_isa, __ATOMIC_RELAXED);
#ifdef GS_KERN_X86
    if (isa == ISA_AVX512)
        return dt == GS_DTYPE_F32    ? rows_f32_avx512
               : dt == GS_DTYPE_BF16 ? rows_bf16_avx512
                                     : rows_f16_avx512;
    if (isa == ISA_AVX2)
        return dt == GS_DTYPE_F32    ? rows_f32_avx2
               : dt == GS_DTYPE_BF16 ? rows_bf16_avx2
                                     : rows_f16_avx2;
#endif
    (void)isa;
    return dt == GS_DTYPE_F32    ? rows_f32_scalar
           : dt == GS_DTYPE_BF16 ? rows_bf16_scalar
                                 : rows_f16_scalar;
}

// ---- the linear layer ---------------------------------------------------------------------

typedef struct {
    rows_fn fn;
    const gs__lin_t *w;
    const float *x;
    int n;
    float *out;
    int next; // the next block of rows to take (atomic)
} small_job_t;

// Rows are handed out in blocks of BLOCK_ROWS from an atomic counter, so a thread that the OS
// delays (other processes, hyperthreads) does not hold the others up.
enum { BLOCK_ROWS = 32 };

static void small_task(void *ctx, int ith, int nth)
{
    small_job_t *j = ctx;
    (void)ith, (void)nth;
    for (;;) {
        int lo = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED) * BLOCK_ROWS;
        if (lo >= j->w->n_out)
            return;
        int hi = lo + BLOCK_ROWS < j->w->n_out ? lo + BLOCK_ROWS : j->w->n_out;
        j->fn(j->w->data, j->w->n_in, lo, hi, j->x, j->n, j->out, j->w->n_out);
    }
}

// split: this thread's share of [0, n) in blocks of 4 rows.
static void split(int n, int ith, int nth, int *lo, int *hi)
{
    int blocks = (n + 3) / 4;
    int per = (blocks + nth - 1) / nth;
    *lo = ith * per * 4;
    *hi = (ith + 1) * per * 4;
    if (*lo > n)
        *lo = n;
    if (*hi > n)
        *hi = n;
}

typedef struct {
    const gs__lin_t *w;
    int r0, n_rows;
    float *scratch;
} convert_job_t;

static void convert_task(void *ctx, int ith, int nth)
{
    convert_job_t *j = ctx;
    int lo, hi;
    split(j->n_rows, ith, nth, &lo, &hi);
    size_t n_in = (size_t)j->w->n_in;
    const uint16_t *src = (const uint16_t *)j->w->data + (size_t)(j->r0 + lo) * n_in;
    float *dst = j->scratch + (size_t)lo * n_in;
    size_t n = (size_t)(hi - lo) * n_in;
    if (hi <= lo)
        return;
    if (j->w->dtype == GS_DTYPE_BF16)
        gs_ops_bf16_to_f32(src, n, dst);
    else
        gs_ops_f16_to_f32(src, n, dst);
}

void gs__lin_forward(gs__pool_t *pool, const gs__lin_t *w, const float *x, int n, float *out,
                     float *scratch)
{
    if (n <= 0)
        return;
    if (n <= GS__LIN_SMALL_N) {
        small_job_t j = {pick_rows(w->dtype), w, x, n, out, 0};
        gs__pool_run(pool, small_task, &j);
        return;
    }
    if (w->dtype == GS_DTYPE_F32) {
        gs_ops_sgemm(false, true, n, w->n_out, w->n_in, 1.0f, x, w->n_in, w->data, w->n_in, 0.0f,
                     out, w->n_out);
        return;
    }
    for (int r0 = 0; r0 < w->n_out; r0 += GS__LIN_TILE_ROWS) {
        int rows = w->n_out - r0 < GS__LIN_TILE_ROWS ? w->n_out - r0 : GS__LIN_TILE_ROWS;
        convert_job_t cj = {w, r0, rows, scratch};
        gs__pool_run(pool, convert_task, &cj);
        gs_ops_sgemm(false, true, n, rows, w->n_in, 1.0f, x, w->n_in, scratch, w->n_in, 0.0f,
                     out + r0, w->n_out);
    }
}

void gs__lin_forward_ref(const gs__lin_t *w, const float *x, int n, float *out)
{
    for (int t = 0; t < n; t++) {
        for (int r = 0; r < w->n_out; r++) {
            double s = 0;
            for (int i = 0; i < w->n_in; i++) {
                size_t k = (size_t)r * w->n_in + i;
                float wv = w->dtype == GS_DTYPE_F32    ? ((const float *)w->data)[k]
                           : w->dtype == GS_DTYPE_BF16 ? cvt1_bf16(((const uint16_t *)w->data)[k])
                                                       : cvt1_f16(((const uint16_t *)w->data)[k]);
                s += (double)wv * x[(size_t)t * w->n_in + i];
            }
            out[(size_t)t * w->n_out + r] = (float)s;
        }
    }
}
