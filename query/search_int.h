// Private to query/search*.c: the search handle and the filter table (an in-memory copy of the
// facts the filters test: tile bounds, times and scenes), so that a filter turns into an id
// allow-list with one pass over memory instead of a record read per candidate.
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "index/capstore.h"
#include "index/vindex.h"
#include "model/clip.h"
#include "query/search.h"

// A u64 -> index map (open addressing, linear probing; key 0 is never stored: ids are >= 1).
typedef struct {
    uint64_t *keys; // (cap) 0 = empty slot
    uint32_t *vals; // (cap)
    size_t cap;     // a power of two, >= 2 * n
    size_t n;
} gs__u64map_t;

void gs__u64map_init(gs__u64map_t *m, size_t n_expected);
void gs__u64map_cleanup(gs__u64map_t *m);
// gs__u64map_put: inserts or overwrites (grows as needed). key must be nonzero.
void gs__u64map_put(gs__u64map_t *m, uint64_t key, uint32_t val);
// gs__u64map_get: 1 and *out when present, else 0.
int gs__u64map_get(const gs__u64map_t *m, uint64_t key, uint32_t *out);

// The filter table: one row per tile record, one per scene record.
typedef struct {
    size_t n_tiles;
    uint64_t *tile_ids;     // (n_tiles)
    uint64_t *tile_scene;   // (n_tiles) the tile's scene id
    double *tile_bounds;    // (n_tiles, 4) W, S, E, N
    int64_t *tile_time;     // (n_tiles)
    uint8_t *tile_has_time; // (n_tiles)
    size_t n_scenes;
    uint64_t *scene_ids; // (n_scenes)
    char **scene_uris;   // (n_scenes) in `strings`
    gs_arena_t *strings;
    size_t cap_tiles, cap_scenes;
} gs__qtable_t;

// GS__QCACHE_N: text embeddings kept (least recently used out): a web page that changes only
// its filters, or a popular query, does not run the text tower again.
#define GS__QCACHE_N 64

typedef struct {
    char *text;    // owned; NULL = empty slot
    uint64_t used; // clock of the last use
} gs__qcache_ent_t;

struct gs_search {
    char *dir;
    char *store_path, *index_path;
    gs_capstore_t *store;
    gs_vindex_t *index;
    gs_search_opts_t opts;
    char *opt_model, *opt_arch, *opt_config, *opt_vocab; // owned copies of opts strings
    char *model_id;                                      // recorded encoder.model_id ("" when none)
    char *model_path;                                    // recorded encoder.model ("" when none)
    char *model_arch;                                    // recorded encoder.arch ("" when none)
    char *model_vocab;                                   // recorded encoder.vocab ("" when none)
    int dim;
    int nprobe;  // default nprobe (0: the index's)
    bool is_ivf; // the index has inverted lists (filtered searches may need wider nprobe)
    pthread_mutex_t model_lock; // the encoder: one query at a time; also guards lazy open
    gs_clip_t *model;
    gs_err model_err; // a failed lazy open is remembered (with its message)
    char model_errmsg[GS_SEARCH_ERR_NBYTES];
    gs__qcache_ent_t cache[GS__QCACHE_N]; // under model_lock
    float *cache_vecs;                    // (GS__QCACHE_N, dim)
    uint64_t cache_clock;
    pthread_mutex_t table_lock;
    bool table_ready;
    gs_err table_err;
    gs__qtable_t table;
};

// gs__qtable_ensure: fills self->table from the store (scans of scenes and tiles), once; later
// calls return at once. GS_EIO, GS_EFORMAT (logged by index/). Thread-safe.
gs_err gs__qtable_ensure(gs_search_t *self);
// gs__qtable_cleanup: frees the table.
void gs__qtable_cleanup(gs__qtable_t *t);

// gs__qfilter_allow: the ids of the index that pass the request's filters, into an arena
// array (*out_ids, *out_n). Only called when some filter is set. GS_EINVAL (a bad filter: err
// says why), GS_ENOMEM (arena), GS_EIO, GS_EFORMAT.
gs_err gs__qfilter_allow(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                         uint64_t **out_ids, size_t *out_n, char *err, size_t err_nbytes);
// gs__qfilter_any: whether the request sets any filter.
bool gs__qfilter_any(const gs_search_req_t *req);
