// Linear layers on pre-packed weights through oneDNN (the only includer of dnnl.h), in float32
// or bfloat16 (see ops.h): weights packed once into the blocked layout oneDNN's brgemm matmul
// picks for this CPU, one matmul primitive per
// (rows, in, out) created ahead of use, and per-slot memory objects, streams and scratchpads so
// that encoder threads run side by side without sharing mutable state. The scratchpad is
// user-managed: oneDNN's own (library mode) is shared by all primitives and may not be used
// from several threads at once nor from a thread other than the creating one, which corrupted
// results when two shards ran matmuls together. Without GS_HAVE_DNNL every entry point reports
// GS_EUNSUPPORTED.
#define _DEFAULT_SOURCE // madvise, MADV_HUGEPAGE
#define GS_LOG_MODULE "model"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/ops.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define GS_OPS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GS_OPS_CLONES
#endif

#ifdef GS_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

// oneDNN's CPU runtime here is OpenMP (Debian's build): its thread count is the calling
// thread's OpenMP setting.
void omp_set_num_threads(int n);

typedef struct {
    int rows, n_in, n_out;
    dnnl_primitive_t prim;
    dnnl_memory_t *src, *dst; // (n_slots) memory objects whose data handles are set per call
    dnnl_memory_t *scratch;   // (n_slots) over the slot's scratchpad; NULL entries: none needed
} mm_t;

struct gs_ops_packed_weight {
    int n_in, n_out;
    dnnl_memory_t mem; // packed, over data
    void *data;        // owned (gs_free)
    gs_ops_packed_weight_t *next;
};

struct gs_ops_packed {
    gs_ops_packed_type_t type;
    dnnl_data_type_t dt; // of the packed weights and of the matmul's input
    char kernel[64];     // oneDNN's implementation name of the first matmul made
    dnnl_engine_t engine;
    dnnl_stream_t *streams; // (n_slots)
    int n_slots;
    mm_t *mms;
    int n_mms, cap_mms;
    dnnl_memory_desc_t *packed_md;   // weights layout per (n_in, n_out), from the first primitive
    gs_ops_packed_weight_t *weights; // all packed weights (freed with the context)
    void **scratch;                  // (n_slots) scratchpads of scratch_nbytes, grown by prepare
    size_t scratch_nbytes;           // the largest scratchpad of the prepared primitives
};

#define DNNL_OK(call) ((call) == dnnl_success)

static gs_err fail(const char *what, dnnl_status_t st)
{
    GS_LOG_ERROR("oneDNN: %s failed (status %d)", what, (int)st);
    return GS_EBACKEND;
}

gs_err gs_ops_packed_new(gs_ops_packed_type_t type, int n_slots, gs_ops_packed_t **out)
{
    *out = NULL;
    if (type == GS_OPS_PACKED_BF16 && !gs_ops_has_bf16()) {
        GS_LOG_ERROR("bf16 precision needs a CPU with AVX-512 BF16 instructions");
        return GS_EUNSUPPORTED;
    }
    gs_ops_packed_t *self = gs_xcalloc(1, sizeof *self);
    self->type = type;
    self->dt = type == GS_OPS_PACKED_BF16 ? dnnl_bf16 : dnnl_f32;
    snprintf(self->kernel, sizeof self->kernel, "none");
    dnnl_status_t st = dnnl_engine_create(&self->engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        gs_free(self);
        return fail("engine creation", st);
    }
    self->n_slots = n_slots > 0 ? n_slots : 1;
    self->streams = gs_xcalloc((size_t)self->n_slots, sizeof *self->streams);
    self->scratch = gs_xcalloc((size_t)self->n_slots, sizeof *self->scratch);
    for (int i = 0; i < self->n_slots; i++)
        if ((st = dnnl_stream_create(&self->streams[i], self->engine, dnnl_stream_default_flags)) !=
            dnnl_success) {
            gs_ops_packed_destroy(&self);
            return fail("stream creation", st);
        }
    // float32: worth it only with a brgemm kernel (AVX-512); oneDNN's other float32 matmuls
    // are no faster than OpenBLAS, so the caller keeps OpenBLAS there (also when the probe
    // matmul cannot be made at all)
    if (type == GS_OPS_PACKED_F32) {
        gs_err e = gs_ops_packed_prepare(self, 16, 64, 64);
        if (e != GS_OK || strncmp(self->kernel, "brg", 3) != 0) {
            GS_LOG_DEBUG("oneDNN's float32 matmul here is \"%s\" (%s), not brgemm: not used",
                         self->kernel, gs_strerror(e));
            gs_ops_packed_destroy(&self);
            return GS_EUNSUPPORTED;
        }
    }
    *out = self;
    return GS_OK;
}

const char *gs_ops_packed_kernel(const gs_ops_packed_t *self)
{
    return self ? self->kernel : "none";
}

void gs_ops_packed_destroy(gs_ops_packed_t **p)
{
    if (!p || !*p)
        return;
    gs_ops_packed_t *self = *p;
    for (int i = 0; i < self->n_mms; i++) {
        mm_t *m = &self->mms[i];
        for (int s = 0; s < self->n_slots; s++) {
            dnnl_memory_destroy(m->src[s]);
            dnnl_memory_destroy(m->dst[s]);
            if (m->scratch[s])
                dnnl_memory_destroy(m->scratch[s]);
        }
        gs_free(m->src);
        gs_free(m->dst);
        gs_free(m->scratch);
        dnnl_primitive_destroy(m->prim);
    }
    gs_free(self->mms);
    gs_free(self->packed_md);
    for (gs_ops_packed_weight_t *w = self->weights, *next; w; w = next) {
        next = w->next;
        dnnl_memory_destroy(w->mem);
        gs_free(w->data);
        gs_free(w);
    }
    for (int i = 0; i < self->n_slots; i++) {
        if (self->streams[i])
            dnnl_stream_destroy(self->streams[i]);
        gs_free(self->scratch[i]);
    }
    gs_free(self->streams);
    gs_free(self->scratch);
    dnnl_engine_destroy(self->engine);
    gs_free(self);
    *p = NULL;
}

static mm_t *find(const gs_ops_packed_t *self, int rows, int n_in, int n_out)
{
    for (int i = 0; i < self->n_mms; i++) {
        mm_t *m = &self->mms[i];
        if (m->rows == rows && m->n_in == n_in && m->n_out == n_out)
            return m;
    }
    return NULL;
}

// packed_layout: the weights layout of an existing matmul with these sizes, or NULL.
static const dnnl_memory_desc_t *packed_layout(const gs_ops_packed_t *self, int n_in, int n_out)
{
    for (int i = 0; i < self->n_mms; i++)
        if (self->mms[i].n_in == n_in && self->mms[i].n_out == n_out)
            return &self->packed_md[i];
    return NULL;
}

gs_err gs_ops_packed_prepare(gs_ops_packed_t *self, int rows, int n_in, int n_out)
{
    if (find(self, rows, n_in, n_out))
        return GS_OK;
    dnnl_dims_t sd = {rows, n_in}, wd = {n_in, n_out}, dd = {rows, n_out};
    dnnl_memory_desc_t smd, wmd, dmd;
    const dnnl_memory_desc_t *fixed = packed_layout(self, n_in, n_out);
    if (!DNNL_OK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, self->dt, dnnl_ab)) ||
        !DNNL_OK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab)))
        return fail("memory descriptor", dnnl_invalid_arguments);
    if (fixed)
        wmd = *fixed; // every row count shares one packed copy of the weights
    else if (!DNNL_OK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, self->dt, dnnl_format_tag_any)))
        return fail("memory descriptor", dnnl_invalid_arguments);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd);
    if (st != dnnl_success)
        return fail("matmul descriptor", st);
    if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success ||
        (st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) !=
            dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return fail("primitive attributes", st);
    }
    st = dnnl_primitive_desc_create(&pd, &md, attr, self->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return fail("matmul primitive descriptor", st);
    if (self->n_mms == self->cap_mms) {
        self->cap_mms = self->cap_mms ? 2 * self->cap_mms : 32;
        self->mms = gs_xrealloc(self->mms, (size_t)self->cap_mms * sizeof *self->mms);
        self->packed_md =
            gs_xrealloc(self->packed_md, (size_t)self->cap_mms * sizeof *self->packed_md);
    }
    mm_t *m = &self->mms[self->n_mms];
    memset(m, 0, sizeof *m);
    self->packed_md[self->n_mms] = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t scmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sc_nbytes = dnnl_memory_desc_get_size(&scmd);
    const char *impl = NULL;
    if (self->n_mms == 0 &&
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(self->kernel, sizeof self->kernel, "%s", impl);
    st = dnnl_primitive_create(&m->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return fail("matmul primitive", st);
    m->rows = rows;
    m->n_in = n_in;
    m->n_out = n_out;
    m->src = gs_xcalloc((size_t)self->n_slots, sizeof *m->src);
    m->dst = gs_xcalloc((size_t)self->n_slots, sizeof *m->dst);
    m->scratch = gs_xcalloc((size_t)self->n_slots, sizeof *m->scratch);
    self->n_mms++;
    for (int s = 0; s < self->n_slots; s++)
        if (!DNNL_OK(dnnl_memory_create(&m->src[s], &smd, self->engine, DNNL_MEMORY_NONE)) ||
            !DNNL_OK(dnnl_memory_create(&m->dst[s], &dmd, self->engine, DNNL_MEMORY_NONE)) ||
            (sc_nbytes > 0 &&
             !DNNL_OK(dnnl_memory_create(&m->scratch[s], &scmd, self->engine, DNNL_MEMORY_NONE))))
            return fail("memory object", dnnl_out_of_memory);
    // one scratchpad per slot, as large as the largest primitive's (a slot runs one at a time)
    if (sc_nbytes > self->scratch_nbytes) {
        for (int s = 0; s < self->n_slots; s++) {
            gs_free(self->scratch[s]);
            self->scratch[s] = gs_tryalloc_aligned(64, sc_nbytes);
            if (!self->scratch[s]) {
                GS_LOG_ERROR("out of memory for oneDNN scratchpads (%zu bytes)", sc_nbytes);
                self->scratch_nbytes = 0;
                return GS_ENOMEM;
            }
        }
        self->scratch_nbytes = sc_nbytes;
    }
    return GS_OK;
}

gs_err gs_ops_packed_pack(gs_ops_packed_t *self, const gs_ops_weight_t *w,
                          gs_ops_packed_weight_t **out)
{
    // the layout comes from a prepared matmul of these sizes (prepare one if none yet)
    const dnnl_memory_desc_t *packed = packed_layout(self, w->n_in, w->n_out);
    if (!packed) {
        GS_TRY(gs_ops_packed_prepare(self, 1, w->n_in, w->n_out));
        packed = packed_layout(self, w->n_in, w->n_out);
    }
    // the user's float32 matrix as a (n_in, n_out) tensor: [n_out, n_in] storage is "ba"
    dnnl_dims_t wd = {w->n_in, w->n_out};
    dnnl_memory_desc_t umd;
    dnnl_memory_t user = NULL;
    gs_ops_packed_weight_t *pw = gs_xcalloc(1, sizeof *pw);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_status_t st =
        dnnl_memory_desc_init_by_tag(&umd, 2, wd, dnnl_f32, w->in_out ? dnnl_ab : dnnl_ba);
    if (st == dnnl_success)
        st = dnnl_memory_create(&user, &umd, self->engine, (void *)w->f32);
    // 2 MB pages where the kernel offers them (THP "madvise"): writing hundreds of MB of fresh
    // 4 kB pages costs more in page faults than the reorder itself
    size_t nbytes = dnnl_memory_desc_get_size(packed), huge = (size_t)2 << 20;
    size_t alloc = nbytes >= huge ? (nbytes + huge - 1) / huge * huge : nbytes;
    pw->data = gs_tryalloc_aligned(nbytes >= huge ? huge : 64, alloc);
    if (!pw->data) {
        dnnl_memory_destroy(user);
        gs_free(pw);
        GS_LOG_ERROR("out of memory for packed weights (%zu bytes)", nbytes);
        return GS_ENOMEM;
    }
#ifdef MADV_HUGEPAGE
    if (nbytes >= huge)
        (void)madvise(pw->data, alloc, MADV_HUGEPAGE);
#endif
    if (st == dnnl_success)
        st = dnnl_memory_create(&pw->mem, packed, self->engine, pw->data);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&rpd, &umd, self->engine, packed, self->engine,
                                                NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&reorder, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, pw->mem}};
        st = dnnl_primitive_execute(reorder, self->streams[0], 2, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(self->streams[0]);
    }
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(user);
    if (st != dnnl_success) {
        dnnl_memory_destroy(pw->mem);
        gs_free(pw->data);
        gs_free(pw);
        return fail("packing weights", st);
    }
    pw->n_in = w->n_in;
    pw->n_out = w->n_out;
    pw->next = self->weights;
    self->weights = pw;
    *out = pw;
    return GS_OK;
}

// epilogue_row: o = beta * o + y (+ bias), n values; fixed-width body so it vectorises.
GS_OPS_CLONES
static void epilogue_row(float *o, const float *y, const float *bias, float beta, int n)
{
    enum { VW = 16 };
    int j = 0;
    if (beta == 0 && bias) {
        for (; j + VW <= n; j += VW)
            for (int k = 0; k < VW; k++)
                o[j + k] = y[j + k] + bias[j + k];
    } else if (bias) {
        for (; j + VW <= n; j += VW)
            for (int k = 0; k < VW; k++)
                o[j + k] = beta * o[j + k] + y[j + k] + bias[j + k];
    } else if (beta != 0) {
        for (; j + VW <= n; j += VW)
            for (int k = 0; k < VW; k++)
                o[j + k] = beta * o[j + k] + y[j + k];
    }
    for (; j < n; j++)
        o[j] = (beta == 0 ? 0.0f : beta * o[j]) + y[j] + (bias ? bias[j] : 0.0f);
}

gs_err gs_ops_packed_linear(gs_ops_packed_t *self, int slot, const gs_ops_packed_weight_t *w,
                            const float *bias, const float *x, int ld_x, int n_rows, float beta,
                            float *out, int ld_out, void *scratch_x, float *scratch_y)
{
    mm_t *m = find(self, n_rows, w->n_in, w->n_out);
    if (!m || slot < 0 || slot >= self->n_slots)
        return GS_EINVAL;
    size_t n_in = (size_t)w->n_in;
    const void *src = scratch_x;
    if (self->type == GS_OPS_PACKED_BF16)
        for (int i = 0; i < n_rows; i++)
            gs_ops_f32_to_bf16(x + (size_t)i * ld_x, n_in, (uint16_t *)scratch_x + i * n_in);
    else if (ld_x == w->n_in)
        src = x; // float32 rows in place
    else
        for (int i = 0; i < n_rows; i++)
            memcpy((float *)scratch_x + i * n_in, x + (size_t)i * ld_x, n_in * sizeof(float));
    // no epilogue needed: the matmul writes straight into out
    bool direct = beta == 0 && !bias && ld_out == w->n_out;
    dnnl_memory_set_data_handle(m->src[slot], (void *)src);
    dnnl_memory_set_data_handle(m->dst[slot], direct ? out : scratch_y);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m->src[slot]},
                               {DNNL_ARG_WEIGHTS, w->mem},
                               {DNNL_ARG_DST, m->dst[slot]},
                               {DNNL_ARG_SCRATCHPAD, m->scratch[slot]}};
    if (m->scratch[slot])
        dnnl_memory_set_data_handle(m->scratch[slot], self->scratch[slot]);
    dnnl_status_t st =
        dnnl_primitive_execute(m->prim, self->streams[slot], m->scratch[slot] ? 4 : 3, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(self->streams[slot]);
    if (st != dnnl_success)
        return GS_EBACKEND;
    // epilogue: out = beta * out + y + bias, row by row (out may be strided)
    for (int i = 0; !direct && i < n_rows; i++) {
        float *o = out + (size_t)i * ld_out;
        const float *y = scratch_y + (size_t)i * w->n_out;
        if (beta == 0 && !bias)
            memcpy(o, y, (size_t)w->n_out * sizeof(float));
        else
            epilogue_row(o, y, bias, beta, w->n_out);
    }
    return GS_OK;
}

void gs_ops_packed_thread_init(int n_threads)
{
    omp_set_num_threads(n_threads > 0 ? n_threads : 1);
}

#else // no oneDNN: the bf16 path is unavailable

struct gs_ops_packed {
    int unused;
};

gs_err gs_ops_packed_new(gs_ops_packed_type_t type, int n_slots, gs_ops_packed_t **out)
{
    (void)n_slots;
    *out = NULL;
    if (type == GS_OPS_PACKED_BF16)
        GS_LOG_ERROR("bf16 precision needs geoscribe built with oneDNN (Debian libdnnl-dev): "
                     "Debian's OpenBLAS has no cblas_sbgemm");
    return GS_EUNSUPPORTED;
}

const char *gs_ops_packed_kernel(const gs_ops_packed_t *self)
{
    (void)self;
    return "none";
}

void gs_ops_packed_destroy(gs_ops_packed_t **p)
{
    if (p)
        *p = NULL;
}

gs_err gs_ops_packed_prepare(gs_ops_packed_t *self, int n_rows, int n_in, int n_out)
{
    (void)self;
    (void)n_rows;
    (void)n_in;
    (void)n_out;
    return GS_EUNSUPPORTED;
}

gs_err gs_ops_packed_pack(gs_ops_packed_t *self, const gs_ops_weight_t *w,
                          gs_ops_packed_weight_t **out)
{
    (void)self;
    (void)w;
    *out = NULL;
    return GS_EUNSUPPORTED;
}

gs_err gs_ops_packed_linear(gs_ops_packed_t *self, int slot, const gs_ops_packed_weight_t *w,
                            const float *bias, const float *x, int ld_x, int n_rows, float beta,
                            float *out, int ld_out, void *scratch_x, float *scratch_y)
{
    (void)self, (void)slot, (void)w, (void)bias, (void)x, (void)ld_x, (void)n_rows;
    (void)beta, (void)out, (void)ld_out, (void)scratch_x, (void)scratch_y;
    return GS_EUNSUPPORTED;
}

void gs_ops_packed_thread_init(int n_threads)
{
    (void)n_threads;
}

#endif
