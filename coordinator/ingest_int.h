// Private state of the ingest coordinator, shared by its files: ingest.c (output, settings,
// plan), commit.c (shard checks, ledger, commit, start-up recovery), vidx.c (the vector index
// and its persistence), dispatch.c (requests, MPI loop, progress). What the change
// coordinator shares with it is in coordinator/job_int.h.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"
#include "coordinator/ingest.h"
#include "coordinator/job_int.h"
#include "index/capstore.h"
#include "index/shard.h"
#include "index/vindex.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"
#include "proto/geoscribe.pb-c.h"

// Task kinds (geoscribe.Task.kind).
enum { GS__TASK_TILES = 0, GS__TASK_PROBE = 1 };

typedef struct {
    uint64_t id;                 // deterministic task id (gs__task_id)
    uint32_t scene;              // index into gs_coord.scenes
    uint32_t first, n;           // cells first .. first+n-1 (row-major); n = 0 for a probe
    uint8_t kind;                // GS__TASK_*
    uint8_t state;               // GS__T_*
    uint8_t attempts;            // tries in this run
    int rank;                    // worker running it (GS__T_RUNNING)
    uint32_t n_tiles, n_skipped; // when done
} gs__task_t;

typedef struct {
    uint64_t id;
    char *uri;
    char *checksum;          // recorded by the probe ("" until then)
    int width, height;       // 0 until probed
    gs_tile_grid_t grid;     // valid once probed
    uint32_t *caption_cells; // captioner.select per_scene: the cells to caption, ascending
    uint32_t n_caption_cells;
    uint8_t probed, quarantined;
} gs__scene_t;

// A ledger entry seen at start-up (all runs, all scenes).
typedef struct {
    uint64_t task_id;
    uint8_t state;
    uint32_t n_tiles, n_skipped, attempts;
} gs__ledger_t;

// A shard known to the index bookkeeping: committed, vectors maybe not yet in the persisted
// index.
typedef struct {
    uint64_t task_id;
    uint32_t n_tiles;
} gs__staged_t;

struct gs_coord {
    const gs_job_t *job;
    char *job_path;
    char *out, *db_path, *index_path, *staging;
    gs_ingest_models_t models; // strings owned (copies)
    char *settings;            // identity text (key=value lines)
    uint64_t settings_hash;
    int n_workers;

    gs_capstore_t *store;
    gs_capstore_batch_t *batch;
    gs_arena_t *arena; // per commit

    gs__scene_t *scenes;
    size_t n_scenes;
    gs__map_t scene_map; // scene id -> index
    gs__task_t *tasks;
    size_t n_tasks, cap_tasks;
    gs__map_t task_map;   // task id -> index
    gs__ledger_t *ledger; // start-up scan
    size_t n_ledger, cap_ledger;
    gs__map_t ledger_map;         // task id -> index into ledger
    gs__u32s_t q_tiles, q_probes; // queued task indexes
    size_t n_running;

    // requests received, their results waiting for gs_coord_commit (owned, unpacked)
    gs__reqs_t pending; // results waiting for the commit
    bool fatal; // a worker failed fatally: hand out no more work

    // vector index
    gs_vindex_t *index;   // NULL while waiting for enough vectors to choose or train
    char index_type[128]; // resolved type ("Flat", "IVF1024,PQ8np" + refine)
    bool index_refine;
    uint64_t generation;  // persisted generation (meta index.generation)
    gs__staged_t *staged; // committed shards, vectors not yet in the persisted file
    size_t n_staged, cap_staged;
    size_t n_staged_added;     // staged[0..n_staged_added) are in the in-memory index
    uint64_t n_staged_vectors; // vectors of staged shards not in the in-memory index
    double last_persist, last_persist_cost;
    double persist_s; // GS_COORD_PERSIST_S, or GS_INGEST_PERSIST_MS (tests)

    // figures
    gs_coord_summary_t sum;
    uint64_t n_probes_total, n_probes_done;
    double t0, last_progress;
    gs_progress_sink_fn sink; // progress reports (gs_coord_set_progress_sink), or NULL
    void *sink_ud;
    bool finishing; // gs_coord_finish runs: the next report is the last
    bool tty;
    char **q_uris, **q_reasons; // quarantined in this run
    size_t n_quar, cap_quar;
};

// ---- ingest.c -------------------------------------------------------------------------------
// gs__task_id: the deterministic id of a task (kind, scene, cells, tiling parameters).
uint64_t gs__task_id(const gs_job_t *job, int kind, uint64_t scene_id, uint32_t first, uint32_t n);
// gs__task_key: the ledger key "t/<scene 16 hex>/<first 8 hex>/<n 8 hex>" into out (40 B).
void gs__task_key(uint64_t scene_id, uint32_t first, uint32_t n, char out[40]);
int gs__task_key_parse(const char *key, uint64_t *scene_id, uint32_t *first, uint32_t *n);
// gs__shard_path: OUT/staging/<task id 16 hex>.shard, new string.
char *gs__shard_path(const gs_coord_t *c, uint64_t task_id);
// gs__plan_scene: adds the tile tasks of a probed scene (state from the ledger).
void gs__plan_scene(gs_coord_t *c, uint32_t si, gs_capstore_batch_t *b);
void gs__quarantine(gs_coord_t *c, uint32_t si, const char *reason, gs_capstore_batch_t *b);
// gs__caption_cells_key: the meta key of a scene's per_scene caption cells.
void gs__caption_cells_key(uint64_t scene_id, char out[64]);
// gs__caption_cells_set: parses "3,17,40" into the scene's list.
void gs__caption_cells_set(gs__scene_t *s, const char *text);
uint32_t gs__task_add(gs_coord_t *c, const gs__task_t *t);

// ---- commit.c -------------------------------------------------------------------------------
// gs__commit_shard: checks and commits the shard of tile task ti (already read). Returns GS_OK,
// a task-level failure (GS_EFORMAT, GS_EMISMATCH, GS_EEXIST: *why says why; the caller fails
// the task), or a fatal GS_EIO / GS_EBACKEND.
gs_err gs__commit_shard(gs_coord_t *c, uint32_t ti, gs_shard_t *sh, const char *hash, char *why,
                        size_t why_nbytes);
gs_err gs__commit_result(gs_coord_t *c, const Geoscribe__TaskResult *r);
gs_err gs__recover(gs_coord_t *c);

// ---- vidx.c ---------------------------------------------------------------------------------
gs_err gs__vidx_open(gs_coord_t *c, char *err, size_t err_nbytes);
// gs__vidx_add: the vectors of a committed shard (d may be NULL: the shard is read when its
// vectors are needed now).
gs_err gs__vidx_add(gs_coord_t *c, uint64_t task_id, uint32_t n_tiles, const gs_shard_data_t *d);
gs_err gs__vidx_maybe_persist(gs_coord_t *c, bool force);
gs_err gs__vidx_finish(gs_coord_t *c);

// ---- dispatch.c -----------------------------------------------------------------------------
void gs__progress(gs_coord_t *c, bool force);
