// Private helpers shared by the coordinators of the ingest (coordinator/ingest_int.h) and of
// the change job (coordinator/changes_int.h): task states, small containers, the clock, and
// the dispatch pieces common to both (WorkRequest intake, TaskBatch packing, the rank-0 MPI
// loop).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "coordinator/ingest.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"

// Task states in memory (the ledger keeps done / failed / quarantined / planned).
enum { GS__T_QUEUED = 0, GS__T_RUNNING, GS__T_DONE, GS__T_FAILED, GS__T_QUARANTINED, GS__T_HELD };

// u64 -> u32 open-addressing map; keys are ids below 2^63.
typedef struct {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap, n;
} gs__map_t;

void gs__map_init(gs__map_t *m);
void gs__map_cleanup(gs__map_t *m);
void gs__map_put(gs__map_t *m, uint64_t key, uint32_t val);
// gs__map_get: 1 and *out when present.
int gs__map_get(const gs__map_t *m, uint64_t key, uint32_t *out);

// A growable array of u32 (queues, lists).
typedef struct {
    uint32_t *v;
    size_t n, cap, head;
} gs__u32s_t;
void gs__u32s_push(gs__u32s_t *a, uint32_t x);

// Requests received whose results wait for the commit (owned, unpacked).
typedef struct {
    Geoscribe__WorkRequest **v;
    size_t n, cap;
} gs__reqs_t;
void gs__reqs_push(gs__reqs_t *q, Geoscribe__WorkRequest *r);
// gs__reqs_cleanup: frees the requests and the array; q is empty after.
void gs__reqs_cleanup(gs__reqs_t *q);

// gs__errf: printf into err (when err and err_nbytes are set).
// gs__progress_emit: packs m and hands it to the sink (nothing when fn is NULL).
void gs__progress_emit(gs_progress_sink_fn fn, void *ud, const char *topic,
                       const Geoscribe__Progress *m);

void gs__errf(char *err, size_t err_nbytes, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// gs__settings_encoder / gs__settings_image: the "key=value" lines of the settings identity
// that both jobs record, written the same way so that the change job can compare them to the
// ingest's (stored tile embeddings are reused only when they match): encoder.* (model id, dim,
// preprocessing), and tiling.* + composite.*.
void gs__settings_encoder(gs_buf_t *b, const gs_ingest_models_t *m);
void gs__settings_image(gs_buf_t *b, const gs_job_t *j);

// gs__settings_difference: the first line of `want` that `got` lacks, as "key is "old" in the
// output, "new" in this job" into out.
void gs__settings_difference(const char *got, const char *want, char *out, size_t out_nbytes);

// gs__job_write_spec: the job's effective spec (gs_job_canonical) into OUT/<name>, atomically:
// ingest writes job.yaml (thumbnails compose tiles as it did), the change job changes.yaml
// (thumbnails of change pairs rebuild its grid). GS_EIO, GS_ENOMEM (message in err).
gs_err gs__job_write_spec(const gs_job_t *job, const char *out, const char *name, char *err,
                          size_t err_nbytes);

// gs__job_output_dirs: creates OUT, OUT/staging and OUT/index and checks they are writable.
// GS_EIO (message in err).
gs_err gs__job_output_dirs(const char *out, const char *staging, char *err, size_t err_nbytes);

// gs__job_request_unpack: a worker's packed WorkRequest into *out (free_unpacked). A worker
// that says it cannot work is logged, sets *fatal and *out_status = GS_EUNSUPPORTED (else
// GS_OK). GS_EFORMAT (logged) when malformed.
gs_err gs__job_request_unpack(const void *req, size_t req_nbytes, bool *fatal,
                              gs_err *out_status, Geoscribe__WorkRequest **out);

// gs__job_batch_pack: the packed TaskBatch (new, gs_free).
void gs__job_batch_pack(const Geoscribe__TaskBatch *b, void **out, size_t *out_nbytes);

// A coordinator as the MPI loop sees it.
typedef struct {
    void *self;
    // handle: one exchange (gs_*coord_handle)
    gs_err (*handle)(void *self, const void *req, size_t req_nbytes, void **out_reply,
                     size_t *out_nbytes);
    gs_err (*commit)(void *self); // gs_*coord_commit
    gs_err (*idle)(void *self);   // no request for a second: progress, persistence
    bool *fatal;                  // set when a commit fails: hand out no more work
} gs__job_ops_t;

// gs__job_serve_mpi: the rank-0 loop over ranks 1..size-1 until each was told the job is done.
// GS_EMPI, GS_EUNSUPPORTED (a worker could not work), and commit's / idle's.
gs_err gs__job_serve_mpi(const gs__job_ops_t *ops, int size);
