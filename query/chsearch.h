// gs_chsearch: search over the change records of an output (written by `geoscribe changes`,
// docs/CHANGES.md): a text query is embedded with the encoder's text tower and matched against
// the caption embeddings in OUT/index/changes.faiss; filters keep pairs whose tile meets a
// lon/lat box, whose two times lie in a time window, whose caption contains a substring or
// whose change score is high enough. Without text, pairs come ranked by change score. Hits
// carry both times, scenes and tiles, the tile footprint, the score and the caption.
// `geoscribe query --changes` runs it; the output formats are JSON lines and GeoJSON.
// Not here: tile search (query/search.h).
//
// Threads: a handle serves many threads; searches run one at a time (a mutex: the encoder).
// Memory: hits live in the caller's arena.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

typedef struct gs_chsearch gs_chsearch_t;

#define GS_CHSEARCH_K_MAX 100000u

typedef struct {
    const char *model; // the encoder; NULL = meta "changes.encoder.model" (its id must match)
    const char *arch;  // NULL = meta "changes.encoder.arch"
    const char *vocab; // NULL = meta "changes.encoder.vocab"
    int n_threads;     // encoder threads (<= 0: 1)
} gs_chsearch_opts_t;

typedef struct {
    const char *text; // NULL or "": rank by change score
    size_t k;         // 1..GS_CHSEARCH_K_MAX
    bool has_bbox;
    double bbox[4]; // W, S, E, N: the pair's tile bounds must meet it
    bool has_from, has_to;
    int64_t from, to;             // both times of a pair within [from, to] (seconds since 1970 UTC)
    const char *caption_contains; // ASCII case-insensitive substring; NULL = none
    double min_score;             // change score at least this (0 = any)
} gs_chsearch_req_t;

typedef struct {
    uint32_t rank; // 1-based
    uint64_t pair_id;
    bool has_similarity;
    float similarity; // text query vs caption (cosine); only with text
    float score;      // change score (cosine distance of the two tiles' embeddings)
    uint64_t before_tile, after_tile, before_scene, after_scene;
    const char *before_uri, *after_uri; // "" when the output has no record of the scene
    int64_t before_time, after_time;
    double bbox[4];      // W, S, E, N of the tile
    const char *caption; // NULL when the pair was not captioned
    const char *model_id;
} gs_chsearch_hit_t;

// gs_chsearch_open: opens the output folder read-only (store as a secondary instance, the
// change index, the change records into memory). The encoder is opened at the first text
// query. Errors with the reason in err (nothing logged): GS_ENOTFOUND (no store, or no change
// records: run `geoscribe changes` first), GS_EIO, GS_EFORMAT, GS_EBACKEND. Caller owns *out.
gs_err gs_chsearch_open(const char *out_dir, const gs_chsearch_opts_t *opts, gs_chsearch_t **out,
                        char *err, size_t err_nbytes);

// gs_chsearch_run: one search. *out_hits (in arena) best first; *out_n_candidates: pairs that
// pass the filters (those with a caption, for text). Errors with a reason in err: GS_EINVAL
// (k = 0, bbox or window), GS_ETOOBIG (k over GS_CHSEARCH_K_MAX), GS_EMISMATCH (the encoder is not
// the one the captions were embedded with), GS_EUNSUPPORTED (text query, but the encoder has no
// text tower), GS_ENOMEM (arena), GS_EIO, GS_EBACKEND, and gs_clip_open's.
gs_err gs_chsearch_run(gs_chsearch_t *self, const gs_chsearch_req_t *req, gs_arena_t *arena,
                       gs_chsearch_hit_t **out_hits, size_t *out_n, uint64_t *out_n_candidates,
                       char *err, size_t err_nbytes);

// What a change thumbnail needs of a pair: its place (the record key's location id) and the
// URIs of both scenes.
typedef struct {
    uint64_t location;
    const char *before_uri, *after_uri;
} gs_chsearch_pair_t;

// gs_chsearch_pair: the pair `pair_id` (strings in arena). GS_ENOTFOUND when no record has
// that id or the output holds no record of one of its scenes. Thread-safe (also beside
// gs_chsearch_run); a linear pass over the records in memory.
gs_err gs_chsearch_pair(gs_chsearch_t *self, uint64_t pair_id, gs_arena_t *arena,
                        gs_chsearch_pair_t *out);

// gs_chsearch_n_records: change records loaded.
size_t gs_chsearch_n_records(const gs_chsearch_t *self);

// gs_chsearch_close: frees everything; NULLs *p; accepts NULL.
void gs_chsearch_close(gs_chsearch_t **p);

// gs_chsearch_format: hits as JSON lines (one object a line:
//   {"rank":1,"pair_id":"..","similarity":0.31|null,"score":0.12,"caption":"..."|null,
//    "before":{"scene_id":"..","scene":"..","time":"..","tile_id":".."},"after":{...},
//    "bbox":[W,S,E,N],"model_id":".."})
// or one GeoJSON FeatureCollection (tile footprints as polygons, the same fields as
// properties, before_/after_ flattened). GS_ETOOBIG, GS_ENOMEM. Pure.
gs_err gs_chsearch_format(gs_buf_t *out, const gs_chsearch_hit_t *hits, size_t n, bool geojson);
