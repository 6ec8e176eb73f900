// gs_search: text-to-image retrieval over one ingested output (an OUT folder written by
// `geoscribe ingest`): a query (text, an example tile, an example image or a raw vector) is
// embedded with the output's own encoder, searched in the FAISS index, filtered (bounding box,
// time range, scene, caption text) and joined with the tile, scene and caption records.
// The ZeroMQ service (query/server.h), the HTTP server (query/http.h) and `geoscribe query`
// all run searches through this one function, so they return the same hits.
// Not here: output formatting (query/format.h), image decoding (the program reads files and
// passes RGB pixels), protobuf (the programs pack and unpack messages).
//
// Threads: one handle serves many threads at once. Index searches and record reads run
// concurrently; the encoder runs one query at a time (a mutex), and the embeddings of the last
// 64 distinct query texts are kept, so a repeated text is not encoded again; the filter table is
// built once (on first use, or at open with opts.preload) under a mutex.
// Memory: every search allocates from the caller's arena (a per-request arena: no malloc per
// hit); results are valid until that arena is reset.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

typedef struct gs_search gs_search_t;

// GS_SEARCH_K_MAX: the most hits of one search.
#define GS_SEARCH_K_MAX 100000u
// GS_SEARCH_TEXT_MAX: the longest query text in bytes (longer texts are GS_ETOOBIG; the
// encoder truncates at its context length long before).
#define GS_SEARCH_TEXT_MAX 4096u
// GS_SEARCH_IMAGE_MAX_PIXELS: the largest example image (width * height), 16 Mpixel.
#define GS_SEARCH_IMAGE_MAX_PIXELS (1u << 24)
// GS_SEARCH_K_FACTOR: the refine stage of an IVF-PQ index re-ranks k * 32 candidates (the
// index files say 16): recall@10 0.935 at 16, 0.994 at 32, 1.000 at 64 on 1M clustered 512-d
// vectors, for about 0.15 ms more per query (bench/query/README.md).
#define GS_SEARCH_K_FACTOR 32.0f
// GS_SEARCH_ERR_NBYTES: a buffer that holds any error message of this module.
#define GS_SEARCH_ERR_NBYTES 512

typedef struct {
    // model: the encoder to embed text and images with. NULL: the path recorded in the output
    // (meta "encoder.model"). Either way its gs_clip_model_id must equal the recorded
    // "encoder.model_id", or the open (or, with lazy_model, the first text query) fails.
    const char *model;
    const char *arch, *config, *vocab; // passed to gs_clip_open (NULL: meta "encoder.arch",
                                       // "encoder.vocab" when recorded)
    int n_threads;                     // BLAS threads of the encoder (<= 0: 1)
    int nprobe;        // default IVF lists probed (0: meta "index.nprobe", else the file's)
    float k_factor;    // refine indexes: candidates per hit re-ranked exactly (0:
                       // GS_SEARCH_K_FACTOR)
    int faiss_threads; // OpenMP threads per FAISS call (0: OpenMP's default)
    bool lazy_model;   // open the encoder at the first text or image query (CLI runs that
                       // only need --like-tile never load it); false: at open (services)
    bool preload;      // build the filter table at open (services), not at the first filter
} gs_search_opts_t;

// The query. Exactly one of text, like_tile, image_rgb or vector is set.
typedef struct {
    const char *text;         // "airplanes parked near a terminal"
    uint64_t like_tile;       // a tile id in the index (0 = none; tile ids are never 0)
    const uint8_t *image_rgb; // HWC uint8 RGB, image_w * image_h * 3 bytes
    int image_w, image_h;
    const float *vector; // (n_vector) a raw embedding, normalised here
    int n_vector;
    size_t k;   // 1..GS_SEARCH_K_MAX
    int nprobe; // 0 = the handle's default
    // Filters (all that are set must hold):
    bool has_bbox;
    double bbox[4]; // W, S, E, N degrees; a tile passes when its bounds intersect
    bool has_from, has_to;
    int64_t from, to;  // inclusive, seconds since 1970 UTC (tiles of an unknown time fail)
    const char *scene; // a scene id (decimal, or 0x hex) or URI (whole, or its file name)
    const char *caption_contains; // ASCII case-insensitive substring; NULL or "" = no filter
} gs_search_req_t;

// One hit; strings live in the search's arena.
typedef struct {
    uint32_t rank; // 1-based
    uint64_t tile_id;
    float score; // inner product of unit vectors (cosine similarity)
    uint64_t scene_id;
    const char *scene_uri; // "" when the scene record is missing
    int64_t time_unix;
    bool has_time;       // false when the scene's acquisition time is unknown
    double bbox[4];      // W, S, E, N of the tile
    int32_t x, y, w, h;  // pixel window in the scene
    const char *caption; // NULL when the tile has no caption
} gs_search_hit_t;

typedef struct {
    gs_search_hit_t *hits; // (n_hits) best first, in the arena
    size_t n_hits;         // min(k, n_candidates)
    uint64_t n_candidates; // tiles in the index that pass the filters (ntotal without filters)
    double encode_s, search_s, join_s; // time spent in each stage
} gs_search_result_t;

// gs_search_open: opens the output folder `out_dir` for reading: its record store (read-only
// secondary instance, so a running ingest is no obstacle), its index (loaded in memory) and,
// unless opts->lazy_model, the encoder. The store is OUT/db and the index OUT/index/tiles.faiss
// (index/layout.h). opts may be NULL.
// Errors, with the reason in err (nothing logged; the caller reports it): GS_ENOTFOUND (no
// store or index there), GS_EMISMATCH (the encoder is not the output's: both model ids named;
// or its dimension differs), GS_EFORMAT, GS_EIO, GS_EBACKEND, and gs_clip_open's. The caller
// owns *out (gs_search_close).
gs_err gs_search_open(const char *out_dir, const gs_search_opts_t *opts, gs_search_t **out,
                      char *err, size_t err_nbytes);
// gs_search_close: frees everything; NULLs *p; accepts NULL. No search may be running.
void gs_search_close(gs_search_t **p);

// gs_search_run: one search. Allocates only from `arena` (per request; reset by the caller).
// Errors, with a human reason in err (not logged: the caller decides; backend failures below
// are logged by index/): GS_EINVAL (no query or more than one, k out of range, a bad bbox or
// time range, a vector of the wrong size), GS_ETOOBIG (text or image over its cap, k over
// GS_SEARCH_K_MAX), GS_ENOTFOUND (like_tile is not in the index), GS_EMISMATCH (lazy model
// refused), GS_EUNSUPPORTED (text query but the output records no encoder), GS_ENOMEM (the
// arena's cap), GS_EIO, GS_EBACKEND. Thread-safe.
gs_err gs_search_run(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                     gs_search_result_t *out, char *err, size_t err_nbytes);

// Facts for health and stats replies. Strings borrowed until close. Thread-safe.
// gs_search_model_id: the output's recorded encoder id ("" when none).
const char *gs_search_model_id(const gs_search_t *self);
// gs_search_ntotal: vectors in the index.
size_t gs_search_ntotal(gs_search_t *self);
int gs_search_dim(const gs_search_t *self);
// gs_search_describe: the index description (gs_vindex_describe) into out.
void gs_search_describe(gs_search_t *self, char *out, size_t out_nbytes);
// gs_search_dir: the output folder as given to open.
const char *gs_search_dir(const gs_search_t *self);

// gs_search_tile: the tile record of one id and its scene's URI (into arena): for thumbnails.
// GS_ENOTFOUND, GS_EIO, GS_EFORMAT. Thread-safe.
gs_err gs_search_tile(gs_search_t *self, uint64_t tile_id, gs_arena_t *arena, gs_search_hit_t *out);
