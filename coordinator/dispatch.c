// Handing out work: a worker's WorkRequest (with its finished results) is answered with a
// TaskBatch (probe tasks while tile work runs short, else tile tasks), "wait", or done; the
// results are committed after the answer went out. The MPI loop, the end of the job and the
// progress line live here too.
#define GS_LOG_MODULE "coordinator"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/ingest_int.h"

enum { PROBES_PER_BATCH = 4, WAIT_MS = 100 };

// next_task: the next queued task of a queue, skipping tasks that are no longer queued (done
// by recovery, quarantined scenes). UINT32_MAX when empty.
static uint32_t next_task(gs_coord_t *c, gs__u32s_t *q)
{
    while (q->head < q->n) {
        uint32_t ti = q->v[q->head++];
        gs__task_t *t = &c->tasks[ti];
        if (t->state == GS__T_QUEUED && c->scenes[t->scene].quarantined)
            t->state = GS__T_QUARANTINED;
        if (t->state == GS__T_QUEUED)
            return ti;
    }
    q->n = q->head = 0; // drained: reuse the memory
    return UINT32_MAX;
}

static size_t queued(const gs__u32s_t *q)
{
    return q->n - q->head;
}

static void fill_task(gs_coord_t *c, uint32_t ti, int rank, Geoscribe__Task *m, char *hex)
{
    gs__task_t *t = &c->tasks[ti];
    gs__scene_t *s = &c->scenes[t->scene];
    t->state = GS__T_RUNNING;
    t->rank = rank;
    t->attempts++;
    c->n_running++;
    geoscribe__task__init(m);
    snprintf(hex, 17, "%016llx", (unsigned long long)s->id);
    m->task_id = t->id;
    m->scene_id = hex;
    m->n_uris = 1;
    m->uris = &s->uri;
    m->first_cell = t->first;
    m->n_cells = t->n;
    m->kind = t->kind;
    m->checksum = s->checksum;
    m->width = s->width;
    m->height = s->height;
    // per_scene captions: the scene's chosen cells inside this task (a contiguous run)
    size_t lo = 0;
    while (lo < s->n_caption_cells && s->caption_cells[lo] < t->first)
        lo++;
    size_t hi = lo;
    while (hi < s->n_caption_cells && s->caption_cells[hi] < t->first + t->n)
        hi++;
    m->n_caption_cells = hi - lo;
    m->caption_cells = hi > lo ? s->caption_cells + lo : NULL;
}

gs_err gs_coord_handle(gs_coord_t *self, const void *req, size_t req_nbytes, void **out_reply,
                       size_t *out_nbytes)
{
    gs_coord_t *c = self;
    *out_reply = NULL;
    *out_nbytes = 0;
    Geoscribe__WorkRequest *r = NULL;
    gs_err e = GS_OK;
    GS_TRY(gs__job_request_unpack(req, req_nbytes, &c->fatal, &e, &r));
    bool has_results = r->n_results > 0;
    if (has_results) {
        gs__reqs_push(&c->pending, r);
    }
    // choose: probes first while tile work runs short, so that workers do not idle
    Geoscribe__Task tasks[PROBES_PER_BATCH];
    Geoscribe__Task *ptrs[PROBES_PER_BATCH];
    char hex[PROBES_PER_BATCH][17];
    size_t n = 0;
    if (!c->fatal && queued(&c->q_tiles) < 2 * (size_t)c->n_workers) {
        uint32_t ti;
        while (n < PROBES_PER_BATCH && (ti = next_task(c, &c->q_probes)) != UINT32_MAX) {
            fill_task(c, ti, r->rank, &tasks[n], hex[n]);
            ptrs[n] = &tasks[n];
            n++;
        }
    }
    if (!c->fatal && n == 0) {
        uint32_t ti = next_task(c, &c->q_tiles);
        if (ti != UINT32_MAX) {
            fill_task(c, ti, r->rank, &tasks[n], hex[n]);
            ptrs[n] = &tasks[n];
            n++;
        }
    }
    Geoscribe__TaskBatch b = GEOSCRIBE__TASK_BATCH__INIT;
    b.n_tasks = n;
    b.tasks = ptrs;
    if (n == 0) {
        // running tasks (or results not yet committed) may still fail and be retried, or be
        // probes that plan more tasks: the job is over only when nothing is left in flight
        if (!c->fatal && (c->n_running > 0 || c->pending.n > 0))
            b.wait_ms = WAIT_MS;
        else
            b.done = 1;
    }
    gs__job_batch_pack(&b, out_reply, out_nbytes);
    if (!has_results)
        geoscribe__work_request__free_unpacked(r, NULL);
    return e;
}

gs_err gs_coord_commit(gs_coord_t *self)
{
    gs_coord_t *c = self;
    gs_err e = GS_OK;
    for (size_t i = 0; i < c->pending.n; i++) {
        Geoscribe__WorkRequest *r = c->pending.v[i];
        for (size_t j = 0; j < r->n_results && e == GS_OK; j++)
            e = gs__commit_result(c, r->results[j]);
        geoscribe__work_request__free_unpacked(r, NULL);
    }
    c->pending.n = 0;
    if (e == GS_OK)
        e = gs__vidx_maybe_persist(c, false);
    gs__progress(c, false);
    return e;
}

bool gs_coord_finished(const gs_coord_t *self)
{
    return self->n_running == 0 && self->pending.n == 0 &&
           (self->fatal || (queued(&self->q_tiles) == 0 && queued(&self->q_probes) == 0));
}

static gs_err idle(void *self)
{
    gs__progress(self, false);
    return gs__vidx_maybe_persist(self, false);
}

static gs_err handle(void *self, const void *req, size_t req_nbytes, void **out_reply,
                     size_t *out_nbytes)
{
    return gs_coord_handle(self, req, req_nbytes, out_reply, out_nbytes);
}

static gs_err commit(void *self)
{
    return gs_coord_commit(self);
}

gs_err gs_coord_serve_mpi(gs_coord_t *self, int size)
{
    gs__job_ops_t ops = {
        .self = self, .handle = handle, .commit = commit, .idle = idle, .fatal = &self->fatal};
    return gs__job_serve_mpi(&ops, size);
}

// ---- progress -------------------------------------------------------------------------------

static void fmt_eta(double s, char *out, size_t n)
{
    if (s < 0 || s != s || s > 1e8)
        snprintf(out, n, "?");
    else if (s < 90)
        snprintf(out, n, "%.0fs", s);
    else if (s < 5400)
        snprintf(out, n, "%.0fm", s / 60);
    else
        snprintf(out, n, "%.1fh", s / 3600);
}

void gs__progress(gs_coord_t *c, bool force)
{
    double now = gs_clock_s();
    if (!force && now - c->last_progress < (c->tty ? 0.5 : 5.0))
        return;
    c->last_progress = now;
    uint64_t cells_done = c->sum.n_tiles + c->sum.n_skipped;
    double el = now - c->t0;
    double rate = el > 0 ? (double)c->sum.n_tiles_run / el : 0;
    double cells_rate = rate; // tiles/s of this run; cells include skipped ones
    uint64_t left = c->sum.n_cells > cells_done ? c->sum.n_cells - cells_done : 0;
    char eta[32];
    fmt_eta(cells_rate > 0 ? (double)left / cells_rate : -1, eta, sizeof eta);
    bool probing = c->n_probes_done < c->n_probes_total;
    char probes[64] = "";
    if (probing)
        snprintf(probes, sizeof probes, " scenes %llu/%llu", (unsigned long long)c->n_probes_done,
                 (unsigned long long)c->n_probes_total);
    if (c->tty) {
        fprintf(stderr,
                "\r\033[Kingest %s: tasks %llu/%llu tiles %llu/%llu (%llu skipped) "
                "%.1f tiles/s ETA %s%s%s",
                c->job->name, (unsigned long long)c->sum.n_tasks_done,
                (unsigned long long)c->sum.n_tasks, (unsigned long long)cells_done,
                (unsigned long long)c->sum.n_cells, (unsigned long long)c->sum.n_skipped, rate,
                probing ? "~" : "", eta, probes);
        if (force)
            fputc('\n', stderr);
        fflush(stderr);
    } else {
        GS_LOG_INFO("progress tasks=%llu/%llu tiles=%llu/%llu skipped=%llu tiles_per_s=%.1f "
                    "eta=%s%s%s failed=%llu quarantined=%llu",
                    (unsigned long long)c->sum.n_tasks_done, (unsigned long long)c->sum.n_tasks,
                    (unsigned long long)cells_done, (unsigned long long)c->sum.n_cells,
                    (unsigned long long)c->sum.n_skipped, rate, probing ? "~" : "", eta, probes,
                    (unsigned long long)c->sum.n_tasks_failed,
                    (unsigned long long)c->sum.n_quarantined);
    }
    Geoscribe__Progress m = GEOSCRIBE__PROGRESS__INIT;
    m.n_tasks_total = c->sum.n_tasks;
    m.n_tasks_done = c->sum.n_tasks_done;
    m.n_tiles_done = cells_done;
    m.tiles_per_s = rate;
    m.eta_s = cells_rate > 0 ? (double)left / cells_rate : -1;
    m.n_failed = c->sum.n_tasks_failed;
    m.n_quarantined = c->sum.n_quarantined;
    m.job = c->job->name;
    m.kind = "ingest";
    m.n_tiles_total = c->sum.n_cells;
    m.n_skipped = c->sum.n_skipped;
    m.elapsed_s = el;
    m.done = c->finishing;
    m.complete = c->finishing && c->sum.complete;
    gs__progress_emit(c->sink, c->sink_ud, "ingest", &m);
}

void gs_coord_set_progress_sink(gs_coord_t *self, gs_progress_sink_fn fn, void *ud)
{
    self->sink = fn;
    self->sink_ud = ud;
}

// ---- the end --------------------------------------------------------------------------------

gs_err gs_coord_finish(gs_coord_t *self, gs_coord_summary_t *out)
{
    gs_coord_t *c = self;
    gs_err e = gs__vidx_finish(c);
    c->sum.seconds = gs_clock_s() - c->t0;
    c->sum.n_vectors = c->index ? gs_vindex_ntotal(c->index) : 0;
    uint64_t n_rec = 0;
    if (e == GS_OK)
        e = gs_capstore_count(c->store, GS_CF_TILES, true, &n_rec);
    c->sum.n_records = n_rec;
    bool all_done = c->sum.n_tasks_done == c->sum.n_tasks &&
                    c->n_probes_done >= c->n_probes_total && c->sum.n_tasks_failed == 0;
    c->sum.complete = e == GS_OK && all_done && c->n_staged == 0;
    if (e == GS_OK && c->sum.n_vectors != n_rec) {
        GS_LOG_ERROR("the index holds %llu vectors but the store %llu tile records",
                     (unsigned long long)c->sum.n_vectors, (unsigned long long)n_rec);
        e = GS_ESTATE;
    }
    if (e == GS_OK) {
        char buf[24];
        gs_capstore_batch_clear(c->batch);
        gs_capstore_batch_meta_set(c->batch, "ingest.complete", c->sum.complete ? "1" : "0");
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->sum.n_tasks);
        gs_capstore_batch_meta_set(c->batch, "plan.tasks", buf);
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->sum.n_cells);
        gs_capstore_batch_meta_set(c->batch, "plan.cells", buf);
        e = gs_capstore_write(c->store, c->batch, true);
    }
    c->finishing = true;
    gs__progress(c, true);
    if (out)
        *out = c->sum;
    return e;
}
