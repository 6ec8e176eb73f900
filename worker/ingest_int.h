// Private state of the ingest worker, shared by ingest.c (models, messages, the MPI loop) and
// task.c (probe and tile tasks).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "index/records.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"
#include "model/clip.h"
#include "model/llava.h"
#include "model/preprocess.h"
#include "proto/geoscribe.pb-c.h"
#include "worker/ingest.h"

// Scenes kept open per worker (GDAL handles and the per-scene scaling statistics).
#define GS__SCENE_CACHE 4

// A batch slot of the reader/encoder pipeline (pipe.c).
typedef struct {
    float *pixels;    // (batch, 3, S, S) preprocessed tiles
    int n;            // tiles in it
    uint32_t base;    // index of its first tile among the task's kept tiles
    uint8_t *cap_rgb; // (batch, tile_nbytes) copies of the tiles to caption, or NULL
    int *cap_w, *cap_h;
    uint64_t *cap_id;
    int n_cap;
} gs__slot_t;

struct gs_worker {
    const gs_job_t *job;
    char *staging; // OUT/staging
    gs_clip_t *clip;
    gs_llava_t *llava; // NULL without a captioner
    int32_t *cap_ids;  // (captioner.max_tokens) generated ids
    int dim, image_size, batch, threads;
    gs_preprocess_cfg_t pcfg;
    char encoder_id[17];
    char captioner_id[17];
    char preprocess[256];
    uint64_t settings_hash;
    bool started;

    // recently opened scenes (a probe's scene is reused by the tile tasks that follow it on
    // this worker; tasks of one scene tend to come in a row); `scene` is the current one
    struct {
        gs_scene_t *scene;
        char *uri;
        uint64_t used;
    } scenes[GS__SCENE_CACHE];
    uint64_t n_scene_uses;
    gs_scene_t *scene; // borrowed from scenes[]

    // buffers sized at open (tiles of at most tiling.size, tasks of at most tasks.max_tiles)
    uint8_t *rgb;  // (size, size, 3) one tile
    void *scratch; // preprocessing scratch (grown for odd tile shapes)
    size_t scratch_nbytes;
    gs__slot_t slots[2];        // reader/encoder pipeline
    size_t tile_nbytes;         // size * size * 3
    float *vecs;                // (max_tiles, dim) the task's embeddings
    uint64_t *ids;              // (max_tiles) kept
    uint64_t *skipped;          // (max_tiles) skipped
    gs_tile_rec_t *tiles;       // (max_tiles)
    gs_caption_rec_t *captions; // (max_tiles), texts in arena
    gs_arena_t *arena;          // per task
    int test_delay_ms;          // GS_INGEST_TASK_DELAY_MS: tests slow tasks down to kill mid-run
    double seconds_encode;      // time inside the encoder (for bench)
    uint64_t n_encoded;
};

// pipe.c: the cells of a tile task, read by a reader thread while this thread encodes; the
// kept tiles land in ids/tiles/vecs, skipped ones in skipped, captions in captions.
gs_err gs__worker_cells(gs_worker_t *w, const Geoscribe__Task *t, const gs_tile_grid_t *grid,
                        uint32_t *out_kept, uint32_t *out_skipped, uint32_t *out_caps,
                        gs_scene_problem_t *out_problem, char *why, size_t why_nbytes);

// task.c
bool gs__worker_caption_selected(const gs_worker_t *w, const Geoscribe__Task *t, uint32_t cell,
                                 uint64_t id);
gs_err gs__worker_caption(gs_worker_t *w, const uint8_t *rgb, int tw, int th, uint64_t id,
                          gs_caption_rec_t *out, char *why, size_t why_nbytes);
void gs__worker_probe(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg);
void gs__worker_tiles(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg);
