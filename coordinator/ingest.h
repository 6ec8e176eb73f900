// The ingest coordinator: MPI rank 0 of `geoscribe ingest`, or the coordinator half of a
// one-process run. It owns the output (OUT/db record store, OUT/index vector index,
// OUT/staging shards, OUT/job.yaml), checks that a rerun uses the settings of the output's
// first run, plans the job (scenes -> probe tasks -> tile tasks of at most tasks.max_tiles
// cells), hands tasks out on request, checks and commits each finished shard exactly once
// (one RocksDB batch with the ledger entry, then the index), persists the index, and reports
// progress. docs/INGEST.md describes the protocol, the output and the crash-safety argument.
// Workers are reached through packed protobuf messages (geoscribe.proto: WorkRequest in,
// TaskBatch out), over MPI (gs_coord_serve_mpi) or through a plain function call in a
// one-process run (gs_coord_handle), so both paths run the same code.
// Not here: reading tiles and encoding them (worker/ingest.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/spec.h"

typedef struct gs_coord gs_coord_t;

// gs_progress_sink_fn: gets every progress report of a run (the cadence of the progress log
// lines, and a last one with done set), packed as geoscribe.Progress (proto/geoscribe.proto),
// with its topic ("ingest" or "changes"). Called on rank 0's thread; must not block (cli/ hands
// it to a ZeroMQ PUB socket, query/pubsub.h).
typedef void (*gs_progress_sink_fn)(void *ud, const char *topic, const void *packed,
                                    size_t nbytes);

// The identity of the models of a run, as the worker side reports it (worker/ingest.h). The
// first run of an output records it; a later run with another identity is refused.
typedef struct {
    const char *encoder_id;   // gs_clip_model_id, 16 hex digits
    int dim;                  // embedding size, e.g. 512
    const char *preprocess;   // preprocessing identity: "gs-preprocess-1 openclip size=224 ..."
    const char *captioner_id; // "" without a captioner
} gs_ingest_models_t;

// How many times a task is tried in one run before it is left failed (a rerun tries again).
#define GS_COORD_MAX_ATTEMPTS 2
// Index persistence: at most every this many seconds while vectors arrive (and whenever the
// previous write took more than a tenth of the time since, so writing stays under ~10%).
#define GS_COORD_PERSIST_S 30.0

// Figures of a run (this run's work plus the state of the output).
typedef struct {
    uint64_t n_scenes;       // scenes in the inputs
    uint64_t n_tasks;        // tile tasks planned (all runs)
    uint64_t n_tasks_done;   // committed (all runs)
    uint64_t n_tasks_failed; // left failed in this run
    uint64_t n_cells;        // grid cells of the planned tasks
    uint64_t n_tiles;        // tiles committed (all runs) = tile records of the plan
    uint64_t n_skipped;      // cells skipped under tiling.min_valid_fraction (all runs)
    uint64_t n_tiles_run;    // tiles committed in this run
    uint64_t n_recovered;    // shards committed from staging at start-up (no recompute)
    uint64_t n_quarantined;  // scenes quarantined in this run
    uint64_t n_vectors;      // vectors in the persisted index
    uint64_t n_records;      // tile records in the store
    double seconds;          // wall time of this run
    bool complete;           // every planned task is done and the index holds them
} gs_coord_summary_t;

// gs_coord_open: prepares the output of `job` (creating OUT, OUT/db, OUT/index,
// OUT/staging), checks or records its settings, recovers from an interrupted run (re-adds
// the vectors of committed shards not yet in the persisted index, commits finished shards
// left in staging), and plans. job_path is recorded for messages (may be NULL). The job and
// the models are borrowed for the coordinator's life. n_workers is the number of worker
// ranks (1 in a one-process run), used to pace probing.
// Errors (the message, naming the output and the field, goes to err; nothing logged):
// GS_EIO (output not writable, store locked by another run), GS_EMISMATCH (the output was made
// with other models or settings), GS_ENOTFOUND (an input names nothing), GS_EFORMAT (a
// damaged output), GS_ENOMEM. The caller owns *out (gs_coord_close).
gs_err gs_coord_open(const gs_job_t *job, const char *job_path, const gs_ingest_models_t *models,
                     int n_workers, gs_coord_t **out, char *err, size_t err_nbytes);

// gs_coord_settings_hash: the identity of the output's settings; workers write it into every
// shard and the coordinator refuses shards with another.
uint64_t gs_coord_settings_hash(const gs_coord_t *self);

// gs_coord_handle: one exchange with a worker: `req` is a packed WorkRequest (its finished
// results are checked and queued for commit), *out_reply a packed TaskBatch (new buffer, free
// with gs_free): tasks, "wait and ask again", or done. Commits happen in gs_coord_commit, so
// that under MPI the reply goes out first. GS_EFORMAT (malformed request, logged),
// GS_EUNSUPPORTED (the worker reported a fatal error: logged; the job should stop), GS_ENOMEM.
gs_err gs_coord_handle(gs_coord_t *self, const void *req, size_t req_nbytes, void **out_reply,
                       size_t *out_nbytes);

// gs_coord_commit: commits the queued results, updates progress and persists the index when
// due. A bad shard fails its task (retried), never the job; GS_EIO / GS_EBACKEND (store or
// index failures) are fatal and logged.
gs_err gs_coord_commit(gs_coord_t *self);

// gs_coord_set_progress_sink: where progress reports go besides the log (NULL = nowhere).
void gs_coord_set_progress_sink(gs_coord_t *self, gs_progress_sink_fn fn, void *ud);

// gs_coord_finished: true when no task is queued or running.
bool gs_coord_finished(const gs_coord_t *self);

// gs_coord_serve_mpi: the rank-0 loop over MPI ranks 1..size-1: answers WorkRequests until
// every worker was told the job is done. Call after the start handshake. Errors: GS_EMPI,
// GS_EUNSUPPORTED (a worker failed fatally), and gs_coord_commit's.
gs_err gs_coord_serve_mpi(gs_coord_t *self, int size);

// gs_coord_finish: builds the index if it was still waiting for enough vectors, persists it,
// removes committed shards, checks that the index and the store agree, and fills *out.
// GS_EIO, GS_EBACKEND, GS_ESTATE (index and store disagree: logged).
gs_err gs_coord_finish(gs_coord_t *self, gs_coord_summary_t *out);

// gs_coord_quarantined: the i-th scene quarantined in this run (0-based): its URI and reason,
// borrowed until close; false past the end.
bool gs_coord_quarantined(const gs_coord_t *self, size_t i, const char **out_uri,
                          const char **out_reason);

// gs_coord_close: closes the store and frees everything; NULLs *p; accepts NULL.
void gs_coord_close(gs_coord_t **p);
