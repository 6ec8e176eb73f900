// The change worker: MPI ranks 1..N-1 of `geoscribe changes`, or the worker half of a
// one-process run. It runs pair tasks: open the two scenes of a pair, bring both onto the
// pair's grid (jobs/warp.h: the later scene's grid, or changes.crs at changes.resolution),
// tile it, embed both tiles of every cell with the CLIP encoder (or take the stored embedding
// of an unwarped tile from the file the coordinator left in staging), score each cell by the
// cosine distance of its two embeddings, caption the cells that pass the gate (score >=
// changes.threshold and among the top changes.top_fraction of the pair) with the two-image
// LLaVA captioner, embed each caption with the encoder's text tower (for change search), and
// write one change shard into OUT/staging before reporting. Messages are the ingest engine's
// (geoscribe.proto: TaskBatch in, WorkRequest out; task kind 2), over MPI or by function call.
// The shard format (jobs/warp_shard.h) and the record keys (jobs/warp.h) are in docs/CHANGES.md.
// Not here: pairing, the ledger, the store and the indexes (coordinator/changes.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/spec.h"

typedef struct gs_chworker gs_chworker_t;

// gs_chworker_open: opens the job's encoder (with encoder.vocab for the text tower) and the
// change captioner (changes.caption_model; "" = captioner.model; "none" = none) for rank
// `rank`. With identity_only the models are opened small (rank 0 under MPI). Threads as the
// ingest worker (encoder.threads, or the cores divided by the ranks on the node).
// Errors (message in err): GS_ENOTFOUND, GS_EFORMAT, GS_EUNSUPPORTED (a captioner without the
// encoder's text tower: change search needs caption embeddings), GS_EIO, GS_ENOMEM.
// The job is borrowed for the worker's life.
gs_err gs_chworker_open(const gs_job_t *job, int rank, bool identity_only, gs_chworker_t **out,
                        char *err, size_t err_nbytes);

// gs_chworker_identity: encoder id (16 hex), dim, the preprocessing identity (the same text as
// the ingest worker's, so stored tile embeddings can be reused) and the change captioner id
// ("" without one). Borrowed, valid until close.
void gs_chworker_identity(gs_chworker_t *self, const char **out_encoder_id, int *out_dim,
                          const char **out_preprocess, const char **out_captioner_id);

// gs_chworker_start: rank 0's go: the settings hash to write into shards and its model ids.
// GS_EMISMATCH (err) when this rank loaded other models.
gs_err gs_chworker_start(gs_chworker_t *self, uint64_t settings_hash, const char *encoder_id,
                         const char *captioner_id, char *err, size_t err_nbytes);

// gs_chworker_request: the first packed WorkRequest (no results), or one carrying a fatal
// status and message. *out is new (gs_free). self may be NULL.
void gs_chworker_request(gs_chworker_t *self, int rank, gs_err status, const char *message,
                         void **out, size_t *out_nbytes);

// gs_chworker_handle: runs the pair tasks of a packed TaskBatch; *out_req gets the next packed
// WorkRequest with their results (new, gs_free); *out_done when the job is over; *out_wait_ms
// to ask again later. A failed task is reported in its result. GS_EFORMAT (malformed batch,
// logged), GS_ENOMEM.
gs_err gs_chworker_handle(gs_chworker_t *self, int rank, const void *batch, size_t nbytes,
                          void **out_req, size_t *out_nbytes, bool *out_done,
                          unsigned *out_wait_ms);

// gs_chworker_serve_mpi: the loop of a rank > 0 (first request, then batches until done).
// self may be NULL when open or start failed (start_status, message): it then only waits to
// be told the job is over. GS_EMPI, GS_ENOMEM.
gs_err gs_chworker_serve_mpi(gs_chworker_t *self, int rank, gs_err start_status,
                             const char *message);

// gs_chworker_close: frees models and buffers; NULLs *p; accepts NULL.
void gs_chworker_close(gs_chworker_t **p);
