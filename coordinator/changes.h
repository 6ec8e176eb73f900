// The change coordinator: MPI rank 0 of `geoscribe changes`, or the coordinator half of a
// one-process run. It owns the output's store (the `changes` family, the ledger entries of
// pair tasks "c/<before>/<after>", meta "changes.*") and the change-caption index
// OUT/index/changes.faiss; it reads (never writes) the ingest's tile index to hand workers the
// stored embeddings of their tiles. It lists the job's scenes (their store records, or the
// scenes opened when an ingest has not recorded them), pairs them (jobs/warp.h), plans one pair
// task per pair not yet done, dispatches them with the ingest engine's messages (WorkRequest
// in, TaskBatch out, task kind 2; a loopback call in one process), checks and commits each
// change shard exactly once (records + ledger entry in one RocksDB batch, then caption vectors
// into the index), persists the index and removes the shards it holds. docs/CHANGES.md.
// Not here: scoring and captioning (worker/changes.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "coordinator/ingest.h"
#include "jobs/spec.h"

typedef struct gs_chcoord gs_chcoord_t;

// Figures of a run. "run" counts are this run's; the others describe the output.
typedef struct {
    uint64_t n_scenes;        // scenes in the inputs
    uint64_t n_unrecorded;    // scenes without an ingest record (opened by rank 0 for facts)
    uint64_t n_timeless;      // scenes without an acquisition time (never paired)
    uint64_t n_unreadable;    // scenes that could not be opened (left out)
    uint64_t n_pairs;         // pairs of the plan
    uint64_t n_pairs_done;    // pairs of the plan committed (this run or before)
    uint64_t n_pairs_run;     // pairs committed in this run
    uint64_t n_pairs_failed;  // pairs left failed in this run (a rerun retries them)
    uint64_t n_recovered;     // shards committed from staging at start-up
    uint64_t n_cells_run;     // grid cells of the pairs committed in this run
    uint64_t n_scored_run;    // tiles scored in this run (= change records written)
    uint64_t n_captioned_run; // tiles captioned in this run
    uint64_t n_records;       // change records in the store
    uint64_t n_captions;      // change records with a caption
    uint64_t n_vectors;       // caption vectors in OUT/index/changes.faiss
    bool reuse;               // stored tile embeddings were offered to the workers
    double seconds;
    bool complete; // every pair of the plan is done and the index holds its captions
} gs_changes_summary_t;

// gs_chcoord_open: prepares the output of `job` (OUT, OUT/db, OUT/index, OUT/staging),
// checks or records the change settings (meta "changes.settings": models, tiling, composite,
// grid; a rerun with others is refused), recovers finished shards left in staging, lists and
// pairs the scenes and plans the pair tasks. The job and models (models->captioner_id: the
// change captioner) are borrowed for the coordinator's life.
// Errors (message in err, nothing logged): GS_EIO (output not writable, store locked by
// another run), GS_EMISMATCH (other settings), GS_ENOTFOUND (an input names nothing),
// GS_EFORMAT, GS_ENOMEM. The caller owns *out (gs_chcoord_close).
gs_err gs_chcoord_open(const gs_job_t *job, const char *job_path, const gs_ingest_models_t *models,
                       int n_workers, gs_chcoord_t **out, char *err, size_t err_nbytes);

// gs_chcoord_settings_hash: the identity the workers write into their shards.
uint64_t gs_chcoord_settings_hash(const gs_chcoord_t *self);

// gs_chcoord_handle: one exchange with a worker (packed WorkRequest in, packed TaskBatch out
// in *out_reply, new, gs_free); results are queued for gs_chcoord_commit. GS_EFORMAT,
// GS_EUNSUPPORTED (the worker failed fatally; logged), GS_ENOMEM.
gs_err gs_chcoord_handle(gs_chcoord_t *self, const void *req, size_t req_nbytes, void **out_reply,
                         size_t *out_nbytes);

// gs_chcoord_commit: commits the queued results; a bad shard fails its task (retried), never
// the job. GS_EIO / GS_EBACKEND are fatal (logged).
gs_err gs_chcoord_commit(gs_chcoord_t *self);

// gs_chcoord_serve_mpi: the rank-0 loop over ranks 1..size-1 until each was told the job is
// done. GS_EMPI, GS_EUNSUPPORTED, and gs_chcoord_commit's.
gs_err gs_chcoord_serve_mpi(gs_chcoord_t *self, int size);

// gs_chcoord_set_progress_sink: where progress reports go besides the log (NULL = nowhere);
// topic "changes", tasks = scene pairs (coordinator/ingest.h).
void gs_chcoord_set_progress_sink(gs_chcoord_t *self, gs_progress_sink_fn fn, void *ud);

// gs_chcoord_finish: persists the change index, removes the shards it holds, records the run
// in meta and fills *out. GS_EIO, GS_EBACKEND.
gs_err gs_chcoord_finish(gs_chcoord_t *self, gs_changes_summary_t *out);

// gs_chcoord_pair: the i-th pair of the plan (0-based, by the later scene's time): both URIs
// (borrowed until close) and whether it is done. false past the end.
bool gs_chcoord_pair(const gs_chcoord_t *self, size_t i, const char **out_before,
                     const char **out_after, bool *out_done);

// gs_chcoord_close: closes the store and frees everything; NULLs *p; accepts NULL.
void gs_chcoord_close(gs_chcoord_t **p);
