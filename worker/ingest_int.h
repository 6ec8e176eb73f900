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
#include "model/clip.h"
#include "model/llava.h"
#include "model/preprocess.h"
#include "proto/geoscribe.pb-c.h"
#include "worker/ingest.h"

struct gs_worker {
    const gs_job_t *job;
    char *staging;           // OUT/staging
    gs_clip_t *clip;
    gs_llava_t *llava;       // NULL without a captioner
    int32_t *cap_ids;        // (captioner.max_tokens) generated ids
    int dim, image_size, batch, threads;
    gs_preprocess_cfg_t pcfg;
    char encoder_id[17];
    char captioner_id[17];
    char preprocess[256];
    uint64_t settings_hash;
    bool started;

    // the last scene opened (tasks of one scene tend to come to the same worker in a row)
    gs_scene_t *scene;
    char *scene_uri;

    // buffers sized at open (tiles of at most tiling.size, tasks of at most tasks.max_tiles)
    uint8_t *rgb;            // (size, size, 3) one tile
    void *scratch;           // preprocessing scratch (grown for odd tile shapes)
    size_t scratch_nbytes;
    float *pixels;           // (batch, 3, S, S) preprocessed tiles waiting for the encoder
    float *vecs;             // (max_tiles, dim) the task's embeddings
    uint64_t *ids;           // (max_tiles) kept
    uint64_t *skipped;       // (max_tiles) skipped
    gs_tile_rec_t *tiles;    // (max_tiles)
    gs_caption_rec_t *captions; // (max_tiles), texts in arena
    gs_arena_t *arena;       // per task
    int test_delay_ms;       // GS_INGEST_TASK_DELAY_MS: tests slow tasks down to kill mid-run
    double seconds_encode;   // time inside the encoder (for bench)
    uint64_t n_encoded;
};

// task.c
void gs__worker_probe(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg);
void gs__worker_tiles(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg);
