// Tensor ops of the inference engine over BLAS (OpenBLAS). The only includer of cblas.h.
// Each op has a naive C reference (the `_ref` twin, plain loops with double accumulators) used
// by the tests to check the fast path. Kernels never log and never allocate: scratch memory
// comes from the caller (the model's arena). All matrices are row-major and contiguous unless a
// leading dimension (`ld*`, in elements) says otherwise. Functions are thread-safe as long as
// callers do not share output or scratch buffers; the BLAS thread count is process-wide.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// ---- library and threads ------------------------------------------------------------------

// gs_ops_blas_info: "OpenBLAS 0.3.21 ... (core: Cooperlake)", read from the library at run time.
void gs_ops_blas_info(char *out, size_t out_nbytes);
// gs_ops_set_threads: the number of BLAS threads for this process (ranks x threads <= cores).
// Set explicitly at model open; n_threads <= 0 means 1.
void gs_ops_set_threads(int n_threads);
// gs_ops_get_threads: the current BLAS thread count.
int gs_ops_get_threads(void);
// gs_ops_has_bf16: true when this CPU has AVX-512 BF16 instructions.
bool gs_ops_has_bf16(void);

// ---- number formats -----------------------------------------------------------------------
// IEEE half (F16) and bfloat16 (BF16) as raw uint16_t. Conversions to the narrow types round to
// nearest even and keep NaN a NaN; F16 overflow gives infinity. Any n, any alignment.

void gs_ops_f16_to_f32(const uint16_t *in, size_t n, float *out);
void gs_ops_f32_to_f16(const float *in, size_t n, uint16_t *out);
void gs_ops_bf16_to_f32(const uint16_t *in, size_t n, float *out);
void gs_ops_f32_to_bf16(const float *in, size_t n, uint16_t *out);
float gs_ops_f16_to_f32_1(uint16_t h);
uint16_t gs_ops_f32_to_f16_1(float f);
float gs_ops_bf16_to_f32_1(uint16_t h);
uint16_t gs_ops_f32_to_bf16_1(float f);

// ---- matrix products ----------------------------------------------------------------------

// gs_ops_sgemm: C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C, op = transpose when
// trans_* is set (then A is stored [k,m], B is stored [n,k]). Row-major, like cblas_sgemm with
// CblasRowMajor. With beta == 0, C is not read (NaNs in it do not propagate).
void gs_ops_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
void gs_ops_sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc);

// A weight matrix of a linear layer as the model keeps it, in float32. Stored [n_out, n_in]
// (torch nn.Linear: y = x W^T) unless `in_out` is set ([n_in, n_out]: open_clip's `proj`,
// y = x W). Borrowed pointer (the mmap'd file, or the model's own converted copy of F16/BF16
// weights).
typedef struct {
    const float *f32; // (n_out, n_in) or (n_in, n_out)
    int n_in, n_out;  // 768, 3072
    bool in_out;      // stored [n_in, n_out]
} gs_ops_weight_t;

// gs_ops_linear: out[i, :] = beta * out[i, :] + x[i, :] @ W (+ bias), for n_rows rows.
// x has row stride ld_x (>= n_in), out has row stride ld_out (>= n_out); bias may be NULL.
void gs_ops_linear(const gs_ops_weight_t *w, const float *bias, const float *x, int ld_x,
                   int n_rows, float beta, float *out, int ld_out);
void gs_ops_linear_ref(const gs_ops_weight_t *w, const float *bias, const float *x, int ld_x,
                       int n_rows, float beta, float *out, int ld_out);

// ---- linear layers on pre-packed weights (oneDNN) -----------------------------------------
// The big GEMMs with weights packed once into the blocked layout of oneDNN's brgemm matmul and
// one matmul primitive per (rows, in, out) made ahead of use. Two arithmetics:
// - GS_OPS_PACKED_F32: float32 throughout (the same arithmetic as gs_ops_linear, another
//   summation order). OpenBLAS repacks the weight panels on every call and its SGEMM kernel
//   reaches about half of the AVX-512 FMA peak on the Zen 4 cores here; oneDNN's brgemm about
//   twice OpenBLAS's GFLOP/s at the encoder's shapes (bench/encoder/README.md). Offered only
//   where oneDNN picks a brgemm kernel (AVX-512 cores): elsewhere GS_EUNSUPPORTED, and callers
//   keep OpenBLAS.
// - GS_OPS_PACKED_BF16: activations rounded to bf16 per call, bf16 weights, float32
//   accumulation and output (AVX-512 BF16 instructions). Debian's OpenBLAS 0.3.21 is built
//   without cblas_sbgemm, so bf16 exists only through oneDNN.
// Both need geoscribe built with oneDNN (GS_HAVE_DNNL, Debian libdnnl-dev); otherwise
// gs_ops_packed_new returns GS_EUNSUPPORTED. Implemented in ops_dnnl.c (the only includer of
// dnnl.h).

typedef enum { GS_OPS_PACKED_F32 = 0, GS_OPS_PACKED_BF16 = 1 } gs_ops_packed_type_t;
typedef struct gs_ops_packed gs_ops_packed_t;               // engine, streams, primitive cache
typedef struct gs_ops_packed_weight gs_ops_packed_weight_t; // one packed weight matrix

// gs_ops_packed_new: a context of arithmetic `type` for n_slots threads that call
// gs_ops_packed_linear concurrently (one slot each). GS_EUNSUPPORTED (built without oneDNN; no
// AVX-512 BF16 for bf16; no brgemm float32 kernel for f32; logged), GS_EBACKEND. Caller owns
// *out.
gs_err gs_ops_packed_new(gs_ops_packed_type_t type, int n_slots, gs_ops_packed_t **out);
// gs_ops_packed_kernel: oneDNN's name of the kernel the context's matmuls run ("brg:avx512_core"
// etc.), or "none".
const char *gs_ops_packed_kernel(const gs_ops_packed_t *self);
// gs_ops_packed_destroy: frees the context and every packed weight made with it; NULLs *p.
void gs_ops_packed_destroy(gs_ops_packed_t **p);
// gs_ops_packed_prepare: creates the matmul for (n_rows, n_in) x (n_in, n_out) now, so that calls
// with these sizes allocate nothing. GS_EBACKEND.
gs_err gs_ops_packed_prepare(gs_ops_packed_t *self, int n_rows, int n_in, int n_out);
// gs_ops_packed_pack: packs the float32 weight w (any layout of gs_ops_weight_t) into the
// context's type and layout; *out is owned by the context. GS_EBACKEND, GS_ENOMEM.
gs_err gs_ops_packed_pack(gs_ops_packed_t *self, const gs_ops_weight_t *w,
                          gs_ops_packed_weight_t **out);
// gs_ops_packed_linear: gs_ops_linear with a packed weight: out = beta*out + x @ W (+ bias).
// scratch_x: n_rows * n_in values of the context's type (uint16 for bf16, float for f32; unused
// by f32 when ld_x == n_in), scratch_y: n_rows * n_out floats (the slot's own). The
// sizes must have been prepared (else the call is a no-op returning GS_EINVAL). Concurrent
// calls need distinct slots.
gs_err gs_ops_packed_linear(gs_ops_packed_t *self, int slot, const gs_ops_packed_weight_t *w,
                            const float *bias, const float *x, int ld_x, int n_rows, float beta,
                            float *out, int ld_out, void *scratch_x, float *scratch_y);
// gs_ops_packed_thread_init: the calling thread's oneDNN (OpenMP) thread count for the calls it
// makes next; a no-op without oneDNN.
void gs_ops_packed_thread_init(int n_threads);

// ---- normalisations -----------------------------------------------------------------------

// gs_ops_layernorm: out = (x - mean) / sqrt(var + eps) * gamma + beta, per row of `dim` values
// (biased variance, as torch). gamma/beta may be NULL (1 and 0). out may equal x. Row strides
// ld_x / ld_out.
void gs_ops_layernorm(const float *x, int ld_x, int n_rows, int dim, const float *gamma,
                      const float *beta, float eps, float *out, int ld_out);
void gs_ops_layernorm_ref(const float *x, int ld_x, int n_rows, int dim, const float *gamma,
                          const float *beta, float eps, float *out, int ld_out);

// gs_ops_rmsnorm: out = x / sqrt(mean(x^2) + eps) * w (LLaMA). w may be NULL. out may equal x.
void gs_ops_rmsnorm(const float *x, int n_rows, int dim, const float *w, float eps, float *out);
void gs_ops_rmsnorm_ref(const float *x, int n_rows, int dim, const float *w, float eps, float *out);

// gs_ops_l2_normalize: each row scaled to unit L2 norm (a zero row stays zero).
void gs_ops_l2_normalize(float *x, int n_rows, int dim);

// ---- element-wise -------------------------------------------------------------------------
// In place on n values. The fast versions use a vectorised exp (relative error < 2e-7) and,
// for gelu, an erf approximation with absolute error < 2e-7; the references call libm.

// gs_ops_gelu: x * 0.5 * (1 + erf(x / sqrt(2))) (torch nn.GELU(), exact form).
void gs_ops_gelu(float *x, size_t n);
void gs_ops_gelu_ref(float *x, size_t n);
// gs_ops_quick_gelu: x * sigmoid(1.702 x) (OpenAI CLIP).
void gs_ops_quick_gelu(float *x, size_t n);
void gs_ops_quick_gelu_ref(float *x, size_t n);
// gs_ops_silu: x * sigmoid(x) (LLaMA).
void gs_ops_silu(float *x, size_t n);
void gs_ops_silu_ref(float *x, size_t n);

// gs_ops_add_bias: x[i, :] += bias for n_rows rows of dim values (row stride ld).
void gs_ops_add_bias(float *x, int ld, int n_rows, int dim, const float *bias);
// gs_ops_add: y += x (n values).
void gs_ops_add(float *y, const float *x, size_t n);

// gs_ops_softmax: each row of `cols` values replaced by its softmax (max-subtracted, in float
// with a float accumulator). Entries equal to -INFINITY get probability 0; a row that is all
// -INFINITY becomes all zeros. Row stride ld.
void gs_ops_softmax(float *x, int ld, int n_rows, int cols);
void gs_ops_softmax_ref(float *x, int ld, int n_rows, int cols);

// ---- attention ----------------------------------------------------------------------------

// gs_ops_attention: multi-head scaled dot-product attention for n_seq independent sequences of
// n_tok tokens. Row t of sequence s is at qkv + (s*n_tok + t) * ld_qkv and holds q (dim
// values), then k at +dim and v at +2*dim (open_clip's fused in_proj layout; heads split each
// of them contiguously: head h = values h*hd .. h*hd+hd-1, hd = dim / n_heads). Output rows
// (s*n_tok + t) * ld_out get softmax(q k^T * scale [+ causal mask]) v, heads concatenated.
// `scale` is usually 1/sqrt(hd). `scratch` holds n_tok * n_tok floats.
void gs_ops_attention(const float *qkv, int ld_qkv, int n_seq, int n_tok, int dim, int n_heads,
                      float scale, bool causal, float *scratch, float *out, int ld_out);
void gs_ops_attention_ref(const float *qkv, int ld_qkv, int n_seq, int n_tok, int dim, int n_heads,
                          float scale, bool causal, float *out, int ld_out);

// ---- counters -----------------------------------------------------------------------------
// Kernels keep counters instead of logging: GEMM floating-point operations and the time spent
// inside BLAS calls (CLOCK_MONOTONIC), process-wide and summed over the threads that call them
// (two threads each 1 s in GEMMs count 2 s). Used by the benchmark to report the share of SGEMM
// peak reached inside the encoder's GEMMs. Atomic: safe to update from several threads.
typedef struct {
    double gemm_flops;       // 2*m*n*k summed over gs_ops_sgemm calls
    double gemm_seconds;     // thread-seconds inside those calls (wall clock)
    double gemm_cpu_seconds; // CPU time of the calling threads inside those calls (excludes
                             // BLAS worker threads; robust to other load with 1 BLAS thread)
    uint64_t n_gemm;         // number of calls
} gs_ops_counters_t;

// gs_ops_counters_enable: start (or stop) counting; counting costs four clock reads per GEMM.
void gs_ops_counters_enable(bool on);
// gs_ops_counters_get / gs_ops_counters_reset.
void gs_ops_counters_get(gs_ops_counters_t *out);
void gs_ops_counters_reset(void);
