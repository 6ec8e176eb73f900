// The change shard: the output of one pair task of `geoscribe changes`, written by a worker into
// OUT/staging and checked and committed by the coordinator, as ingest shards are
// (index/shard.h), but holding change records: for every scored cell its record key
// (jobs/warp.h) and encoded value (index/records.h gs_change_rec_t, encoded by the worker), and
// for every captioned cell the caption's text embedding keyed by its pair id. This file knows
// only the framing (bytes in, bytes out): it lives in jobs/ because jobs/ is the module both the
// coordinator and the worker see that owns change pairs. Written to a temporary name, fsync'd
// and renamed; a checksum covers the rest. Layout (little-endian) in docs/CHANGES.md:
//   0 magic "GSCHANG\0"  8 u32 version (1)  12 i32 dim  16 u64 task id  24 u64 settings hash
//   32 u32 records  36 u32 vectors  40 u32 cells  44 u32 skipped  48 u64 payload bytes
//   56 u64 checksum (gs_hash_bytes of bytes 0..55 then of the payload, chained)
//   64 records x (u32 key bytes, key, u32 value bytes, value), vectors x u64 id,
//      vectors x dim f32
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define GS_WARP_SHARD_VERSION 1u
// GS_WARP_SHARD_MAX_NBYTES: the largest shard gs_warp_shard_read accepts (1 GiB).
#define GS_WARP_SHARD_MAX_NBYTES ((size_t)1 << 30)
// The task kind of a pair task in geoscribe.Task.kind (ingest: 0 tiles, 1 probe).
#define GS_WARP_TASK_KIND 2

typedef struct {
    uint64_t task_id;       // the pair task that made it
    uint64_t settings_hash; // the settings identity the worker ran with
    int32_t dim;            // caption vector dimension (0 when there are no vectors)
    uint32_t n_records;     // scored cells = change records
    uint32_t n_vectors;     // captioned cells = caption vectors
    uint32_t n_cells;       // cells of the pair grid
    uint32_t n_skipped;     // cells not scored (a tile under the valid fraction)
} gs_warp_shard_header_t;

// Contents: for write, borrowed from the caller; after read, owned by the handle.
typedef struct {
    gs_warp_shard_header_t h;
    const uint8_t *const *keys; // (n_records) record keys
    const uint32_t *key_nbytes; // (n_records)
    const uint8_t *const *vals; // (n_records) encoded values
    const uint32_t *val_nbytes; // (n_records)
    const uint64_t *vec_ids;    // (n_vectors) pair ids of the captioned records
    const float *vecs;          // (n_vectors, dim) L2-normalised caption embeddings
} gs_warp_shard_data_t;

typedef struct gs_warp_shard gs_warp_shard_t;

// gs_warp_shard_write: writes d to path atomically (path.tmp, fsync, rename, fsync of the
// folder). *out_hash (may be NULL): the checksum as 16 hex digits + NUL. GS_EINVAL (NULL arrays
// with counts, dim < 0), GS_ETOOBIG, GS_EIO (reason logged with the path), GS_ENOMEM.
// Thread-safe.
gs_err gs_warp_shard_write(const char *path, const gs_warp_shard_data_t *d, char out_hash[17]);

// gs_warp_shard_read: reads and checks a shard (magic, version, sizes, checksum). *out owns the
// data (gs_warp_shard_destroy). GS_ENOTFOUND (no such file: not logged), GS_EIO (logged),
// GS_EFORMAT (malformed: logged with the path and what), GS_ETOOBIG, GS_ENOMEM. Thread-safe.
gs_err gs_warp_shard_read(const char *path, gs_warp_shard_t **out, char out_hash[17]);

// gs_warp_shard_data: the contents; borrowed, valid until destroy.
const gs_warp_shard_data_t *gs_warp_shard_data(const gs_warp_shard_t *self);

// gs_warp_shard_destroy: frees it; NULLs *p; accepts NULL.
void gs_warp_shard_destroy(gs_warp_shard_t **p);
