// Helpers shared by the ingest and change coordinators (coordinator/job_int.h).
#define GS_LOG_MODULE "coordinator"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "coordinator/job_int.h"
#include "jobs/hash.h"
#include "proto/mpi_frame.h"

// ---- small containers -----------------------------------------------------------------------

void gs__map_init(gs__map_t *m)
{
    memset(m, 0, sizeof *m);
}

void gs__map_cleanup(gs__map_t *m)
{
    gs_free(m->keys);
    gs_free(m->vals);
    memset(m, 0, sizeof *m);
}

// Keys are ids below 2^63 (scene, task ids); they are stored with the top bit set, so that 0
// can mark an empty slot whatever the id.
#define KEY(k) ((k) | 0x8000000000000000ULL)

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)(gs_hash_mix64(key) & (cap - 1));
}

static void map_grow(gs__map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = gs_xcalloc(cap, sizeof *keys);
    uint32_t *vals = gs_xcalloc(cap, sizeof *vals);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t s = slot_of(m->keys[i], cap);
        while (keys[s])
            s = (s + 1) & (cap - 1);
        keys[s] = m->keys[i];
        vals[s] = m->vals[i];
    }
    gs_free(m->keys);
    gs_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
}

void gs__map_put(gs__map_t *m, uint64_t key, uint32_t val)
{
    key = KEY(key);
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    size_t s = slot_of(key, m->cap);
    while (m->keys[s] && m->keys[s] != key)
        s = (s + 1) & (m->cap - 1);
    if (!m->keys[s])
        m->n++;
    m->keys[s] = key;
    m->vals[s] = val;
}

int gs__map_get(const gs__map_t *m, uint64_t key, uint32_t *out)
{
    if (!m->cap)
        return 0;
    key = KEY(key);
    size_t s = slot_of(key, m->cap);
    while (m->keys[s]) {
        if (m->keys[s] == key) {
            *out = m->vals[s];
            return 1;
        }
        s = (s + 1) & (m->cap - 1);
    }
    return 0;
}

void gs__u32s_push(gs__u32s_t *a, uint32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = gs_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

void gs__reqs_push(gs__reqs_t *q, Geoscribe__WorkRequest *r)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = gs_xrealloc(q->v, q->cap * sizeof *q->v);
    }
    q->v[q->n++] = r;
}

void gs__reqs_cleanup(gs__reqs_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        geoscribe__work_request__free_unpacked(q->v[i], NULL);
    gs_free(q->v);
    memset(q, 0, sizeof *q);
}

// ---- output and settings --------------------------------------------------------------------

void gs__errf(char *err, size_t err_nbytes, const char *fmt, ...)
{
    if (!err || !err_nbytes)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_nbytes, fmt, ap);
    va_end(ap);
}

gs_err gs__job_write_spec(const gs_job_t *job, const char *out, const char *name, char *err,
                          size_t err_nbytes)
{
    char *canon = NULL;
    size_t n = 0;
    gs_err e = gs_job_canonical(job, &canon, &n);
    if (e == GS_OK) {
        char *p = gs_path_join(out, name);
        e = gs_write_file_atomic(p, canon, n);
        gs_free(p);
    }
    gs_free(canon);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not write \"%s/%s\"", out, name);
    return e;
}

gs_err gs__job_output_dirs(const char *out, const char *staging, char *err, size_t err_nbytes)
{
    char *index_dir = gs_path_join(out, "index");
    const char *dirs[] = {out, staging, index_dir};
    gs_err e = GS_OK;
    for (int i = 0; i < 3 && e == GS_OK; i++)
        if (gs_mkdir_p(dirs[i]) != GS_OK || access(dirs[i], W_OK) != 0) {
            gs__errf(err, err_nbytes, "output directory \"%s\" is not writable", dirs[i]);
            e = GS_EIO;
        }
    gs_free(index_dir);
    return e;
}

static const char *edge_name(gs_job_edge_t e)
{
    return e == GS_JOB_EDGE_PAD ? "pad" : e == GS_JOB_EDGE_CLIP ? "clip" : "shift";
}

static const char *scaling_name(gs_job_scaling_t s)
{
    static const char *const names[] = {"auto", "none", "minmax", "percentile", "range"};
    return (unsigned)s < 5 ? names[s] : "?";
}

void gs__settings_encoder(gs_buf_t *b, const gs_ingest_models_t *m)
{
    gs_buf_printf(b, "encoder.model_id=%s\nencoder.dim=%d\nencoder.preprocess=%s\n", m->encoder_id,
                  m->dim, m->preprocess);
}

void gs__settings_image(gs_buf_t *b, const gs_job_t *j)
{
    gs_buf_printf(b, "tiling.size=%d\ntiling.overlap=%d\ntiling.edge=%s\n", j->tiling.size,
                  j->tiling.overlap, edge_name(j->tiling.edge));
    gs_buf_printf(b, "tiling.min_valid_fraction=%.17g\n", j->tiling.min_valid_fraction);
    gs_buf_printf(b, "composite.mode=%s\ncomposite.bands=",
                  j->composite.mode == GS_JOB_COMPOSITE_SAR ? "sar" : "rgb");
    for (int i = 0; i < j->composite.n_bands; i++)
        gs_buf_printf(b, "%s%s", i ? "," : "", j->composite.bands[i]);
    gs_buf_printf(b, "\ncomposite.scaling=%s\n", scaling_name(j->composite.scaling));
    gs_buf_printf(b, "composite.percentile=%.17g,%.17g\n", j->composite.percentile[0],
                  j->composite.percentile[1]);
    gs_buf_puts(b, "composite.range=");
    for (int i = 0; i < 6; i++)
        gs_buf_printf(b, "%s%.17g", i ? "," : "", j->composite.range[i]);
    gs_buf_printf(b, "\ncomposite.sar_units=%s\n",
                  j->composite.sar_units == GS_JOB_SAR_LINEAR ? "linear" : "db");
}

void gs__settings_difference(const char *got, const char *want, char *out, size_t out_nbytes)
{
    const char *p = want;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        // the same key in `got`
        const char *q = got, *found = NULL;
        size_t flen = 0;
        while (*q) {
            const char *qn = strchr(q, '\n');
            size_t ql = qn ? (size_t)(qn - q) : strlen(q);
            if (ql > klen && strncmp(q, p, klen) == 0 && q[klen] == '=') {
                found = q;
                flen = ql;
                break;
            }
            q = qn ? qn + 1 : q + ql;
        }
        if (!found || flen != len || strncmp(found, p, len) != 0) {
            snprintf(out, out_nbytes, "%.*s is \"%.*s\" in the output, \"%.*s\" in this job",
                     (int)klen, p, found ? (int)(flen - klen - 1) : 0,
                     found ? found + klen + 1 : "", (int)(len - klen - (eq ? 1 : 0)),
                     eq ? eq + 1 : "");
            return;
        }
        p = nl ? nl + 1 : p + len;
    }
    snprintf(out, out_nbytes, "the settings differ");
}

// ---- dispatch -------------------------------------------------------------------------------

gs_err gs__job_request_unpack(const void *req, size_t req_nbytes, bool *fatal, gs_err *out_status,
                              Geoscribe__WorkRequest **out)
{
    *out_status = GS_OK;
    Geoscribe__WorkRequest *r = geoscribe__work_request__unpack(NULL, req_nbytes, req);
    *out = r;
    if (!r) {
        GS_LOG_ERROR("malformed work request (%zu bytes)", req_nbytes);
        return GS_EFORMAT;
    }
    if (r->status != 0) {
        GS_LOG_ERROR("worker %d cannot work: %s", r->rank,
                     r->message && *r->message ? r->message : gs_strerror(r->status));
        *fatal = true;
        *out_status = GS_EUNSUPPORTED;
    }
    return GS_OK;
}

void gs__job_batch_pack(const Geoscribe__TaskBatch *b, void **out, size_t *out_nbytes)
{
    size_t len = geoscribe__task_batch__get_packed_size(b);
    uint8_t *buf = gs_xmalloc(len ? len : 1);
    geoscribe__task_batch__pack(b, buf);
    *out = buf;
    *out_nbytes = len;
}

gs_err gs__job_serve_mpi(const gs__job_ops_t *ops, int size)
{
    int active = size - 1;
    gs_err status = GS_OK;
    while (active > 0) {
        int ready = 0;
        GS_TRY(gs_mpi_poll(GS_MPI_ANY, GS_TAG_WORK_REQ, 1000, &ready));
        if (!ready) {
            GS_TRY(ops->idle(ops->self));
            continue;
        }
        void *req = NULL, *reply = NULL;
        size_t n = 0, rn = 0;
        int src = -1;
        GS_TRY(gs_mpi_recv(GS_MPI_ANY, GS_TAG_WORK_REQ, &req, &n, &src, NULL));
        gs_err e = ops->handle(ops->self, req, n, &reply, &rn);
        gs_free(req);
        if (e == GS_EUNSUPPORTED)
            status = e;
        else if (e != GS_OK && e != GS_EFORMAT)
            return e;
        if (reply) {
            Geoscribe__TaskBatch *b = geoscribe__task_batch__unpack(NULL, rn, reply);
            if (b && b->done)
                active--;
            if (b)
                geoscribe__task_batch__free_unpacked(b, NULL);
            e = gs_mpi_send(src, GS_TAG_WORK, reply, rn);
            gs_free(reply);
            GS_TRY(e);
        }
        e = ops->commit(ops->self);
        if (e != GS_OK) {
            // a store or index failure: stop handing out work, tell everyone
            *ops->fatal = true;
            status = e;
        }
    }
    return status;
}

// ---- progress reports -----------------------------------------------------------------------

void gs__progress_emit(gs_progress_sink_fn fn, void *ud, const char *topic,
                       const Geoscribe__Progress *m)
{
    if (!fn)
        return;
    uint8_t buf[512];
    size_t n = geoscribe__progress__get_packed_size(m);
    uint8_t *p = n <= sizeof buf ? buf : gs_xmalloc(n);
    geoscribe__progress__pack(m, p);
    fn(ud, topic, p, n);
    if (p != buf)
        gs_free(p);
}
