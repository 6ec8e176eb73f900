// Test data for query/: a small real output folder (RocksDB store + FAISS index, written through
// index/), with deterministic scenes, tiles, captions and vectors, and the truth the tests
// check searches against. Vectors: tiles 0..3 are the CLIP embeddings of the openclip_tiny
// fixture images image_0..3.png (so query-by-image finds them); the rest are seeded random unit
// vectors. Test code only.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QMK_N_SCENES 6

typedef struct {
    const char *out;    // the output folder (created)
    size_t n_tiles;     // e.g. 3000
    const char *index;  // "Flat" or a FAISS factory string ("IVF16,PQ8np")
    bool refine;        // with an exact refine stage
    const char *shared; // ../shared (fixture model and rasters)
    bool truth_only;    // compute the truth, write nothing (no FAISS/OpenMP in this process:
                        // Check forks its tests, and libgomp does not survive a fork)
} qmk_opts_t;

// What was written, for checks (owned; qmk_free).
typedef struct {
    size_t n;
    int dim;
    uint64_t *ids;      // (n)
    float *vecs;        // (n, dim)
    uint64_t *scene_of; // (n) scene id
    double *bounds;     // (n, 4)
    int64_t *time;      // (n)
    bool *has_time;     // (n)
    char **caption;     // (n) NULL = none
    uint64_t scene_ids[QMK_N_SCENES];
    char *scene_uris[QMK_N_SCENES];
    char model_id[17];
    char model_dir[512], vocab[512];
} qmk_truth_t;

// qmk_make: writes the output; 0 on success (prints why on stderr otherwise). truth may be NULL.
int qmk_make(const qmk_opts_t *o, qmk_truth_t *truth);
void qmk_free(qmk_truth_t *t);
// qmk_tile_id: the id of tile i (deterministic, never 0).
uint64_t qmk_tile_id(size_t i);
