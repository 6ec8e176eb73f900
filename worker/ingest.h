// The ingest worker: MPI ranks 1..N-1 of `geoscribe ingest`, or the worker half of a
// one-process run. It owns the models of its rank (the CLIP encoder, the captioner when the job
// has one) and its own GDAL scene handles, and runs tasks: a probe opens a scene and reports
// its record (or why it must be quarantined); a tile task reads each cell's window as an RGB
// composite, skips cells under tiling.min_valid_fraction, preprocesses and encodes the kept
// tiles in batches of encoder.batch, captions the selected ones, and writes one shard
// (index/shard.h) into OUT/staging before reporting. Messages are packed protobuf
// (geoscribe.proto: TaskBatch in, WorkRequest with TaskResults out), carried over MPI by
// gs_worker_serve_mpi or by a function call in a one-process run (gs_worker_handle).
// Not here: planning, the store, the index (coordinator/ingest.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/spec.h"

typedef struct gs_worker gs_worker_t;

// GS_WORKER_PREPROCESS_VERSION: bumped when the tile -> pixels path changes meaning (window
// read, composite, preprocessing), so outputs made before and after are not mixed.
#define GS_WORKER_PREPROCESS_VERSION 1

// gs_worker_open: opens the job's encoder (and captioner) for rank `rank`. With
// identity_only the models are opened small (batch 1, one thread) just to report their
// identity (rank 0 of an MPI run, which encodes nothing). Threads: encoder.threads, or when 0
// the online cores divided by the ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE).
// The job is borrowed for the worker's life. Errors (message in err, the model's own
// reason also logged): GS_ENOTFOUND, GS_EFORMAT, GS_EUNSUPPORTED, GS_EIO, GS_ENOMEM.
gs_err gs_worker_open(const gs_job_t *job, int rank, bool identity_only, gs_worker_t **out,
                      char *err, size_t err_nbytes);

// gs_worker_identity: the model identity (borrowed strings, valid until close): encoder id
// (16 hex), embedding dim, preprocessing identity text, captioner id ("" without one).
void gs_worker_identity(gs_worker_t *self, const char **out_encoder_id, int *out_dim,
                        const char **out_preprocess, const char **out_captioner_id);

// gs_worker_start: takes rank 0's go message: the settings hash to write into shards and the
// model ids of the output. GS_EMISMATCH (with err) when this rank loaded another encoder or
// captioner than rank 0 (different files at the same path on another node).
gs_err gs_worker_start(gs_worker_t *self, uint64_t settings_hash, const char *encoder_id,
                       const char *captioner_id, char *err, size_t err_nbytes);

// gs_worker_request: a packed WorkRequest carrying no results (the first request), or the
// fatal `status` and `message` of a worker that cannot work. *out is new (gs_free).
void gs_worker_request(gs_worker_t *self, int rank, gs_err status, const char *message, void **out,
                       size_t *out_nbytes);

// gs_worker_handle: runs the tasks of a packed TaskBatch and returns the next packed
// WorkRequest with their results in *out_req (new, gs_free). *out_done: the job is over (no
// request to send); *out_wait_ms: no task now, ask again after this long. A task that fails
// is reported in its result (never an error here). GS_EFORMAT (malformed batch, logged),
// GS_ENOMEM.
gs_err gs_worker_handle(gs_worker_t *self, int rank, const void *batch, size_t nbytes,
                        void **out_req, size_t *out_nbytes, bool *out_done, unsigned *out_wait_ms);

// gs_worker_serve_mpi: the loop of rank `rank` > 0: sends its first request (with
// start_status / message when gs_worker_open or gs_worker_start failed: rank 0 then stops the
// job), then runs batches until told the job is done. GS_EMPI, GS_ENOMEM.
gs_err gs_worker_serve_mpi(gs_worker_t *self, int rank, gs_err start_status, const char *message);

// gs_worker_close: frees models, scene handles and buffers; NULLs *p; accepts NULL.
void gs_worker_close(gs_worker_t **p);
