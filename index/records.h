// Record types of the capstore (RocksDB) and their binary value encoding. Transparent value
// structs: what ingest writes and what query reads. The encoding (docs/STORE.md, "Values") is a
// small versioned little-endian format written here, not protobuf (index/ never includes pb-c)
// and not JSON (decoding 10,000 tile records must stay far under 100 ms).
// This header knows nothing of RocksDB; index/capstore.h stores and fetches these records.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

// GS_REC_VERSION: the first byte of every encoded value. A decoder refuses other versions with
// GS_EFORMAT; a schema change bumps both this and GS_CAPSTORE_SCHEMA_VERSION.
#define GS_REC_VERSION 1
// GS_REC_STR_MAX: the longest string field (uri, caption, prompt, ...) in bytes: 1 MiB.
#define GS_REC_STR_MAX (1u << 20)
// GS_REC_FOOTPRINT_MAX: the most vertices in a scene footprint polygon.
#define GS_REC_FOOTPRINT_MAX 65536u

// Ids. Tile, scene and change-pair ids are 64-bit numbers below 2^63 (so that they are also valid
// FAISS ids, which are signed); the capstore key of such a record is the id in 8 bytes,
// big-endian, so keys sort by id.

// Strings in records: on encode, NULL is stored as "" (empty). On decode, every string is a
// NUL-terminated copy in the caller's arena (never NULL), valid until that arena is reset.

// ---- records --------------------------------------------------------------------------------

// A scene: one acquisition (one raster or a group of per-band files).
typedef struct {
    uint64_t scene_id;      // deterministic id of the scene identity (jobs/ computes it)
    const char *uri;        // "/data/S2A_...tif" or "/vsis3/bucket/x.tif"; the first file
    const char *sensor;     // "sentinel-2", "landsat-8", "sentinel-1", "unknown"
    int64_t time_unix;      // acquisition time, seconds since 1970-01-01 UTC
    const char *time_iso;   // the same time as ISO 8601 text, "2021-06-01T10:30:21Z"
    const char *crs;        // "EPSG:32633" (or WKT when there is no EPSG code)
    int32_t width, height;  // raster size in pixels, e.g. 10980 x 10980
    double bbox[4];         // lon/lat bounds W, S, E, N (EPSG:4326, degrees)
    uint32_t n_footprint;   // vertices in footprint (0 = only the bbox is known)
    const double *footprint; // (n_footprint, 2) lon, lat pairs of the outer ring
    const char *bands;      // composite bands in order, "B04,B03,B02" or "VV,VH,VV/VH"
    const char *checksum;   // content checksum of the input, e.g. "xxh64:..." or "size+mtime:..."
} gs_scene_rec_t;

// A tile: one grid cell of a scene that was embedded (its id is the FAISS id).
typedef struct {
    uint64_t tile_id;      // deterministic id of (scene, grid cell)
    uint64_t scene_id;     // the scene it was cut from
    int32_t x, y, w, h;    // pixel window in the scene, e.g. (2048, 512, 256, 256)
    double bounds[4];      // lon/lat bounds W, S, E, N of the window
    int64_t time_unix;     // acquisition time (the scene's), seconds since 1970 UTC
    float valid_frac;      // fraction of valid (not nodata) pixels, 0..1
} gs_tile_rec_t;

// A caption of a tile.
typedef struct {
    uint64_t tile_id;
    const char *text;     // "a river crossing farmland with a town on its east bank"
    const char *model_id; // captioner identity, e.g. "llava-tiny@sha256:ab12..."
    const char *prompt;   // the prompt the captioner was given
} gs_caption_rec_t;

// A change between two tiles of the same place at two times.
typedef struct {
    uint64_t pair_id;               // key: deterministic id of the (before, after) pair
    uint64_t before_tile, after_tile;
    uint64_t before_scene, after_scene;
    int64_t before_time, after_time; // seconds since 1970 UTC
    float score;                    // change score (higher = more change)
    const char *caption;            // change description, may be ""
    const char *model_id;           // model that scored / described the change
} gs_change_rec_t;

// The state of a job task (the ledger); values are stored, so append-only.
typedef enum {
    GS_JOB_PLANNED = 0,     // known to the plan, not yet handed out
    GS_JOB_RUNNING = 1,     // handed to a worker
    GS_JOB_DONE = 2,        // its shard is committed to the store and the index
    GS_JOB_FAILED = 3,      // failed (attempts counts tries); may be retried
    GS_JOB_SKIPPED = 4,     // nothing to do (e.g. every tile under the valid fraction)
    GS_JOB_QUARANTINED = 5, // bad input; see the quarantine family
} gs_job_state_t;

// A ledger entry: task key -> state. The key is a string chosen by the coordinator (for
// example the scene uri, or "scene:<hex id>").
typedef struct {
    const char *task_key;    // the key, repeated in the value for scans
    uint8_t state;           // gs_job_state_t
    uint32_t attempts;       // tries so far
    uint32_t n_tiles;        // tiles written by the task
    uint32_t n_skipped;      // tiles skipped (under the minimum valid fraction)
    int64_t time_unix;       // last state change
    const char *shard_path;  // shard manifest path, relative to the output dir, may be ""
    const char *shard_hash;  // manifest checksum, may be ""
    const char *error;       // last error message, may be ""
} gs_job_rec_t;

// A quarantined input: scene uri -> reason.
typedef struct {
    const char *uri;    // the key
    const char *reason; // "could not open raster: not a TIFF file"
    int64_t time_unix;  // when it was quarantined
} gs_quarantine_rec_t;

// ---- keys -----------------------------------------------------------------------------------

// gs_rec_key_u64: writes id as 8 bytes big-endian into out (the key of tiles, captions,
// scenes and changes). Pure; thread-safe.
void gs_rec_key_u64(uint64_t id, uint8_t out[8]);
// gs_rec_key_to_u64: the id of an 8-byte big-endian key. GS_EFORMAT when nbytes != 8.
gs_err gs_rec_key_to_u64(const void *key, size_t nbytes, uint64_t *out_id);

// ---- encoding -------------------------------------------------------------------------------
// Encoders append the value to `out` (a capped buffer; reset it first to encode one value).
// They return GS_OK, GS_ETOOBIG (a string over GS_REC_STR_MAX, a footprint over
// GS_REC_FOOTPRINT_MAX, or the buffer's cap) or GS_ENOMEM. Pure; thread-safe on distinct
// buffers. They do not log.
gs_err gs_rec_encode_scene(const gs_scene_rec_t *r, gs_buf_t *out);
gs_err gs_rec_encode_tile(const gs_tile_rec_t *r, gs_buf_t *out);
gs_err gs_rec_encode_caption(const gs_caption_rec_t *r, gs_buf_t *out);
gs_err gs_rec_encode_change(const gs_change_rec_t *r, gs_buf_t *out);
gs_err gs_rec_encode_job(const gs_job_rec_t *r, gs_buf_t *out);
gs_err gs_rec_encode_quarantine(const gs_quarantine_rec_t *r, gs_buf_t *out);

// ---- decoding -------------------------------------------------------------------------------
// Decoders parse one value. Strings (and the footprint) are copied into `arena` and stay valid
// until it is reset; the tile decoder needs no arena (pass NULL). They return GS_OK,
// GS_EFORMAT (wrong version or record type, truncated, trailing bytes, a length out of
// bounds: corrupt bytes never crash) or GS_ENOMEM (the arena is full). *out is unspecified
// on error. They do not log (the caller knows which key was bad). Thread-safe on distinct
// arenas.
gs_err gs_rec_decode_scene(const void *p, size_t nbytes, gs_arena_t *arena, gs_scene_rec_t *out);
gs_err gs_rec_decode_tile(const void *p, size_t nbytes, gs_tile_rec_t *out);
gs_err gs_rec_decode_caption(const void *p, size_t nbytes, gs_arena_t *arena,
                             gs_caption_rec_t *out);
gs_err gs_rec_decode_change(const void *p, size_t nbytes, gs_arena_t *arena,
                            gs_change_rec_t *out);
gs_err gs_rec_decode_job(const void *p, size_t nbytes, gs_arena_t *arena, gs_job_rec_t *out);
gs_err gs_rec_decode_quarantine(const void *p, size_t nbytes, gs_arena_t *arena,
                                gs_quarantine_rec_t *out);

// gs_rec_caption_contains: whether the caption value `p` has `needle` in its text, compared
// ASCII-case-insensitively, without decoding into an arena (the caption filter scans every
// caption with it). GS_EFORMAT when the value is malformed; *out_yes is 0 or 1 otherwise.
gs_err gs_rec_caption_contains(const void *p, size_t nbytes, const char *needle, int *out_yes);
