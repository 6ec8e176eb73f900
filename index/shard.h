// gs_shard: the output of one ingest task as a worker writes it into OUT/staging and the
// coordinator checks and commits it: one file holding a header (magic, version, task id,
// counts, dimension, checksum), the kept tile ids and their vectors, the ids of the cells that
// were skipped, and the encoded tile and caption records (index/records.h). Written to a
// temporary name, fsync'd and renamed, so a shard that exists is whole; the checksum catches
// anything else. The layout is in docs/INGEST.md ("Shards"). This is only the file format:
// what a task means (which cells, which scene) is the coordinator's business
// (coordinator/ingest.h), and vectors reach the index through index/vindex.h.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "index/records.h"

// GS_SHARD_VERSION: the format version in the header; a reader refuses others.
#define GS_SHARD_VERSION 1
// GS_SHARD_MAX_NBYTES: the largest shard gs_shard_read accepts (2 GiB).
#define GS_SHARD_MAX_NBYTES ((size_t)2 << 30)

// The fixed part of a shard. Counts are per task: n_cells = n_tiles + n_skipped.
typedef struct {
    uint64_t task_id;       // the task that made it (coordinator: deterministic task id)
    uint64_t settings_hash; // identity of the output settings the worker ran with
    uint64_t scene_id;      // the scene the task cut its tiles from
    int32_t dim;            // vector dimension, e.g. 512
    uint32_t n_cells;       // grid cells of the task, e.g. 256
    uint32_t n_tiles;       // kept tiles = vectors = tile records
    uint32_t n_skipped;     // cells under tiling.min_valid_fraction
    uint32_t n_captions;    // caption records (0 without a captioner)
} gs_shard_header_t;

// A shard's contents. For gs_shard_write every array is borrowed from the caller; after
// gs_shard_read they are owned by the gs_shard_t handle.
typedef struct {
    gs_shard_header_t h;
    const uint64_t *ids;              // (n_tiles) kept tile ids, in grid order
    const float *vecs;                // (n_tiles, dim) L2-normalised embeddings
    const uint64_t *skipped_ids;      // (n_skipped) ids of the skipped cells
    const gs_tile_rec_t *tiles;       // (n_tiles) tile records; tiles[i].tile_id == ids[i]
    const gs_caption_rec_t *captions; // (n_captions) caption records
} gs_shard_data_t;

typedef struct gs_shard gs_shard_t;

// gs_shard_write: writes `d` to `path` atomically (temporary "<path>.tmp", fsync, rename,
// fsync of the folder). *out_hash (may be NULL) gets the checksum as 16 hex digits plus NUL.
// GS_EINVAL (inconsistent counts, NULL arrays with counts > 0, dim < 1, tiles[i].tile_id !=
// ids[i]), GS_ETOOBIG (over GS_SHARD_MAX_NBYTES or a record field over its cap), GS_EIO
// (logged with the path), GS_ENOMEM. Thread-safe.
gs_err gs_shard_write(const char *path, const gs_shard_data_t *d, char out_hash[17]);

// gs_shard_read: reads and checks a shard: magic, version, sizes, checksum, and that every
// record decodes and matches its id. *out owns the data (gs_shard_destroy); its view is
// gs_shard_data. *out_hash (may be NULL) gets the checksum as hex. GS_ENOTFOUND (no such
// file: not logged), GS_EIO (unreadable, logged), GS_EFORMAT (anything malformed: logged with
// the path and what is wrong), GS_ETOOBIG, GS_ENOMEM. Thread-safe.
gs_err gs_shard_read(const char *path, gs_shard_t **out, char out_hash[17]);

// gs_shard_read_header: only the header, checked for magic, version and size (not the
// checksum): for sorting a staging folder quickly. Errors as gs_shard_read.
gs_err gs_shard_read_header(const char *path, gs_shard_header_t *out);

// gs_shard_data: the contents of a read shard; borrowed, valid until gs_shard_destroy.
const gs_shard_data_t *gs_shard_data(const gs_shard_t *self);

// gs_shard_destroy: frees it; NULLs *p; accepts NULL.
void gs_shard_destroy(gs_shard_t **p);
