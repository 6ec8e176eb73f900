// The worker side of the task messages (worker/serve_int.h).
#define GS_LOG_MODULE "worker"
#include <time.h>

#include "common/log.h"
#include "proto/mpi_frame.h"
#include "worker/serve_int.h"

static void pack_request(Geoscribe__WorkRequest *r, void **out, size_t *out_nbytes)
{
    size_t n = geoscribe__work_request__get_packed_size(r);
    uint8_t *buf = gs_xmalloc(n ? n : 1);
    geoscribe__work_request__pack(r, buf);
    *out = buf;
    *out_nbytes = n;
}

void gs__serve_fail(Geoscribe__TaskResult *r, gs_arena_t *msg, gs_err e, int problem,
                    const char *why)
{
    r->status = e;
    r->problem = problem;
    r->message = gs_arena_strdup(msg, why);
    if (!r->message)
        r->message = (char *)"";
}

void gs__serve_request(int rank, gs_err status, const char *message, void **out,
                       size_t *out_nbytes)
{
    Geoscribe__WorkRequest r = GEOSCRIBE__WORK_REQUEST__INIT;
    r.rank = rank;
    r.status = status;
    r.message = (char *)(message ? message : "");
    pack_request(&r, out, out_nbytes);
}

gs_err gs__serve_handle(void *self, bool started, gs__serve_task_fn run, int rank,
                        const void *batch, size_t nbytes, void **out_req, size_t *out_nbytes,
                        bool *out_done, unsigned *out_wait_ms)
{
    *out_req = NULL;
    *out_nbytes = 0;
    *out_done = false;
    *out_wait_ms = 0;
    Geoscribe__TaskBatch *b = geoscribe__task_batch__unpack(NULL, nbytes, batch);
    if (!b) {
        GS_LOG_ERROR("malformed task batch from rank 0 (%zu bytes)", nbytes);
        return GS_EFORMAT;
    }
    if (b->done) {
        *out_done = true;
        geoscribe__task_batch__free_unpacked(b, NULL);
        return GS_OK;
    }
    *out_wait_ms = b->wait_ms;
    size_t n = b->n_tasks;
    Geoscribe__TaskResult *res = gs_xcalloc(n ? n : 1, sizeof *res);
    Geoscribe__TaskResult **ptrs = gs_xcalloc(n ? n : 1, sizeof *ptrs);
    gs_arena_t *msg = gs_arena_new(1 << 14, 0); // result strings and records
    for (size_t i = 0; i < n; i++) {
        const Geoscribe__Task *t = b->tasks[i];
        geoscribe__task_result__init(&res[i]);
        res[i].task_id = t->task_id;
        res[i].kind = t->kind;
        res[i].message = (char *)"";
        res[i].shard_path = (char *)"";
        res[i].shard_hash = (char *)"";
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (!started)
            res[i].status = GS_ESTATE;
        else
            run(self, t, &res[i], msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        res[i].seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        ptrs[i] = &res[i];
    }
    Geoscribe__WorkRequest r = GEOSCRIBE__WORK_REQUEST__INIT;
    r.rank = rank;
    r.message = (char *)"";
    r.n_results = n;
    r.results = ptrs;
    pack_request(&r, out_req, out_nbytes);
    gs_arena_destroy(&msg);
    gs_free(ptrs);
    gs_free(res);
    geoscribe__task_batch__free_unpacked(b, NULL);
    return GS_OK;
}

gs_err gs__serve_mpi(void *self, gs__serve_handle_fn handle, int rank, gs_err start_status,
                     const char *message)
{
    void *req = NULL;
    size_t n = 0;
    gs__serve_request(rank, start_status, message, &req, &n);
    gs_err e = GS_OK;
    for (;;) {
        e = gs_mpi_send(0, GS_TAG_WORK_REQ, req, n);
        GS_FREE(req);
        if (e != GS_OK)
            break;
        void *batch = NULL;
        size_t bn = 0;
        if ((e = gs_mpi_recv(0, GS_TAG_WORK, &batch, &bn, NULL, NULL)) != GS_OK)
            break;
        bool done = false;
        unsigned wait_ms = 0;
        if (self) {
            e = handle(self, rank, batch, bn, &req, &n, &done, &wait_ms);
        } else {
            // a worker that could not start only waits to be told the job is over
            Geoscribe__TaskBatch *b = geoscribe__task_batch__unpack(NULL, bn, batch);
            done = !b || b->done;
            if (b)
                geoscribe__task_batch__free_unpacked(b, NULL);
            if (!done)
                gs__serve_request(rank, start_status, message, &req, &n);
            wait_ms = 100;
        }
        gs_free(batch);
        if (e != GS_OK || done)
            break;
        if (wait_ms) {
            struct timespec d = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
            nanosleep(&d, NULL);
        }
    }
    gs_free(req);
    return e;
}
