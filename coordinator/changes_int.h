// Private state of the change coordinator, shared by changes.c (output, settings, scenes,
// plan, dispatch, MPI loop, finish) and changes_commit.c (shard checks, commit, start-up
// recovery, the caption index and the reuse files).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "coordinator/changes.h"
#include "coordinator/job_int.h"
#include "index/capstore.h"
#include "index/vindex.h"
#include "proto/geoscribe.pb-c.h"

typedef struct {
    uint64_t id;
    char *uri;
    int has_time;
    int64_t time;
    double bbox[4];
    int width, height; // the scene's own grid (0 when it has no ingest record)
    double *footprint; // (lon, lat) pairs (owned; NULL when unknown: pairing uses the box)
    int n_footprint;
} gs__chscene_t;

typedef struct {
    uint64_t id;             // task id (gs__chtask_id)
    uint32_t before, after;  // indexes into scenes
    uint8_t state;           // GS__T_* of coordinator/job_int.h
    uint8_t attempts;        // tries in this run
    uint32_t prior_attempts; // tries in earlier runs (ledger)
    int rank;
} gs__chtask_t;

struct gs_chcoord {
    const gs_job_t *job;
    char *out, *db_path, *staging, *tiles_index_path, *changes_index_path;
    gs_ingest_models_t models; // owned copies
    char *settings;
    uint64_t settings_hash;
    int n_workers;
    gs_capstore_t *store;
    gs_capstore_batch_t *batch;
    gs_arena_t *arena; // per commit / per step

    gs__chscene_t *scenes;
    size_t n_scenes;
    gs__chtask_t *tasks;
    size_t n_tasks;
    gs__map_t task_map;   // task id -> index
    gs__map_t done_map;   // task ids done in the ledger (value 1)
    gs__map_t paired_map; // after-scene ids of done pairs (value 1)
    gs__u32s_t queue;
    size_t n_running;

    gs__reqs_t pending; // results waiting for the commit
    bool fatal;

    gs_vindex_t *tiles; // the ingest's tile index (read-only), NULL when not reusable
    gs_vindex_t *index; // caption vectors (OUT/index/changes.faiss)
    bool index_dirty;
    char **committed; // shard paths committed, deleted once the index is persisted
    size_t n_committed, cap_committed;

    gs_changes_summary_t sum;
    double t0, last_progress, last_persist;
    gs_progress_sink_fn sink; // progress reports (gs_chcoord_set_progress_sink), or NULL
    void *sink_ud;
    bool finishing; // gs_chcoord_finish runs: the next report is the last
};

// ---- changes.c ------------------------------------------------------------------------------
// gs__chtask_id: the id of the pair task (before, after).
uint64_t gs__chtask_id(uint64_t before_id, uint64_t after_id);
// gs__chtask_key: the ledger key "c/<before 16 hex>/<after 16 hex>" into out (40 bytes).
void gs__chtask_key(uint64_t before_id, uint64_t after_id, char out[40]);
int gs__chtask_key_parse(const char *key, uint64_t *before_id, uint64_t *after_id);
// gs__chshard_path / gs__chreuse_path: staging/<task id>.chshard / .reuse.vec (new strings).
char *gs__chshard_path(const gs_chcoord_t *c, uint64_t task_id);
char *gs__chreuse_path(const gs_chcoord_t *c, uint64_t task_id);

// ---- changes_commit.c -----------------------------------------------------------------------
// gs__ch_index_open: the caption index (read or created) and, when the ingest's settings allow
// it, the tile index for reuse. Errors in err.
gs_err gs__ch_index_open(gs_chcoord_t *c, char *err, size_t err_nbytes);
// gs__ch_commit_result: a worker's result: commit its shard or fail (and maybe retry) the task.
gs_err gs__ch_commit_result(gs_chcoord_t *c, const Geoscribe__TaskResult *r);
// gs__ch_recover: shards left in staging by an interrupted run: re-add the vectors of done tasks,
// commit finished planned ones, delete the rest.
gs_err gs__ch_recover(gs_chcoord_t *c);
// gs__ch_write_reuse: the stored embeddings of both scenes of task ti, for its worker (nothing
// when the tile index is not reusable).
void gs__ch_write_reuse(gs_chcoord_t *c, uint32_t ti);
// gs__ch_persist: writes the caption index when it changed, then deletes the committed shards.
gs_err gs__ch_persist(gs_chcoord_t *c);
