// Filters of a search: the in-memory filter table (tile bounds, times, scenes; built once from
// the store) and the turning of a request's filters into an id allow-list for the index.
// Why an allow-list and not a FAISS predicate: an allow-list of up to GS_VINDEX_EXACT_MAX ids
// is scored exactly (complete whatever the index type), and a larger one is over-fetched with a
// known selectivity (index/vindex.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/records.h"
#include "query/format.h"
#include "query/search_int.h"

// ---- u64 map --------------------------------------------------------------------------------

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

void gs__u64map_init(gs__u64map_t *m, size_t n_expected)
{
    size_t cap = 16;
    while (cap < 2 * n_expected)
        cap *= 2;
    m->keys = gs_xcalloc(cap, sizeof *m->keys);
    m->vals = gs_xcalloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
}

void gs__u64map_cleanup(gs__u64map_t *m)
{
    GS_FREE(m->keys);
    GS_FREE(m->vals);
    m->cap = m->n = 0;
}

static void map_grow(gs__u64map_t *m)
{
    gs__u64map_t g;
    gs__u64map_init(&g, m->cap); // twice the slots
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            gs__u64map_put(&g, m->keys[i], m->vals[i]);
    gs__u64map_cleanup(m);
    *m = g;
}

void gs__u64map_put(gs__u64map_t *m, uint64_t key, uint32_t val)
{
    GS_ASSERT(key != 0);
    if (2 * (m->n + 1) > m->cap)
        map_grow(m);
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
}

int gs__u64map_get(const gs__u64map_t *m, uint64_t key, uint32_t *out)
{
    if (key == 0 || m->cap == 0)
        return 0;
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            *out = m->vals[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

// ---- the table ------------------------------------------------------------------------------

typedef struct {
    gs__qtable_t *t;
    gs__u64map_t scene_rows; // scene id -> row
    uint8_t *scene_has_time; // (cap_scenes)
    gs_arena_t *scratch;     // one scene decode at a time
    gs_err err;
} build_t;

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    *p = gs_xrealloc(*p, c * elem);
    *cap = c;
}

static int on_scene(const void *key, size_t key_nbytes, const void *val, size_t val_nbytes,
                    void *ud)
{
    build_t *b = ud;
    gs__qtable_t *t = b->t;
    uint64_t id;
    gs_scene_rec_t s;
    gs_arena_reset(b->scratch);
    if (gs_rec_key_to_u64(key, key_nbytes, &id) != GS_OK ||
        gs_rec_decode_scene(val, val_nbytes, b->scratch, &s) != GS_OK) {
        b->err = GS_EFORMAT;
        return 1;
    }
    size_t n = t->n_scenes;
    if (n + 1 > t->cap_scenes) {
        size_t c = t->cap_scenes ? t->cap_scenes * 2 : 256;
        t->scene_ids = gs_xrealloc(t->scene_ids, c * sizeof *t->scene_ids);
        t->scene_uris = gs_xrealloc(t->scene_uris, c * sizeof *t->scene_uris);
        b->scene_has_time = gs_xrealloc(b->scene_has_time, c);
        t->cap_scenes = c;
    }
    t->scene_ids[n] = id;
    t->scene_uris[n] = gs_arena_strdup(t->strings, s.uri);
    if (!t->scene_uris[n]) {
        b->err = GS_ENOMEM;
        return 1;
    }
    b->scene_has_time[n] = s.time_iso[0] != '\0';
    if (id != 0)
        gs__u64map_put(&b->scene_rows, id, (uint32_t)n);
    t->n_scenes = n + 1;
    return 0;
}

static int on_tile(const gs_tile_rec_t *r, void *ud)
{
    build_t *b = ud;
    gs__qtable_t *t = b->t;
    size_t n = t->n_tiles;
    if (n + 1 > t->cap_tiles) {
        size_t c = t->cap_tiles ? t->cap_tiles * 2 : 4096;
        t->tile_ids = gs_xrealloc(t->tile_ids, c * sizeof *t->tile_ids);
        t->tile_scene = gs_xrealloc(t->tile_scene, c * sizeof *t->tile_scene);
        t->tile_bounds = gs_xrealloc(t->tile_bounds, c * 4 * sizeof *t->tile_bounds);
        t->tile_time = gs_xrealloc(t->tile_time, c * sizeof *t->tile_time);
        t->tile_has_time = gs_xrealloc(t->tile_has_time, c);
        t->cap_tiles = c;
    }
    t->tile_ids[n] = r->tile_id;
    t->tile_scene[n] = r->scene_id;
    memcpy(t->tile_bounds + 4 * n, r->bounds, sizeof r->bounds);
    t->tile_time[n] = r->time_unix;
    uint32_t row;
    // The same rule as the join (search.c): the scene says whether its time is known.
    t->tile_has_time[n] = gs__u64map_get(&b->scene_rows, r->scene_id, &row) ? b->scene_has_time[row]
                                                                            : r->time_unix != 0;
    t->n_tiles = n + 1;
    return 0;
}

void gs__qtable_cleanup(gs__qtable_t *t)
{
    gs_free(t->tile_ids);
    gs_free(t->tile_scene);
    gs_free(t->tile_bounds);
    gs_free(t->tile_time);
    gs_free(t->tile_has_time);
    gs_free(t->scene_ids);
    gs_free(t->scene_uris);
    gs_arena_destroy(&t->strings);
    memset(t, 0, sizeof *t);
}

static gs_err table_build(gs_search_t *self)
{
    gs__qtable_t *t = &self->table;
    t->strings = gs_arena_new(1 << 16, 0);
    build_t b = {.t = t, .scratch = gs_arena_new(1 << 16, 0)};
    gs__u64map_init(&b.scene_rows, 1024);
    gs_err e = gs_capstore_scan(self->store, GS_CF_SCENES, NULL, 0, on_scene, &b);
    if (e == GS_OK)
        e = b.err;
    if (e == GS_OK)
        e = gs_capstore_scan_tiles(self->store, on_tile, &b);
    if (e == GS_OK)
        e = b.err;
    gs__u64map_cleanup(&b.scene_rows);
    gs_free(b.scene_has_time);
    gs_arena_destroy(&b.scratch);
    return e;
}

gs_err gs__qtable_ensure(gs_search_t *self)
{
    pthread_mutex_lock(&self->table_lock);
    if (!self->table_ready) {
        self->table_err = table_build(self);
        if (self->table_err != GS_OK)
            gs__qtable_cleanup(&self->table);
        self->table_ready = true;
    }
    gs_err e = self->table_err;
    pthread_mutex_unlock(&self->table_lock);
    return e;
}

// ---- filters --------------------------------------------------------------------------------

bool gs__qfilter_any(const gs_search_req_t *r)
{
    return r->has_bbox || r->has_from || r->has_to || (r->scene && r->scene[0]) ||
           (r->caption_contains && r->caption_contains[0]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool has_u64(const uint64_t *v, size_t n, uint64_t x)
{
    return n > 0 && bsearch(&x, v, n, sizeof *v, cmp_u64) != NULL;
}

// scene_ids: the scene ids a --scene value names: a number (decimal or 0x hex) names itself
// (whether or not its record exists); a text names the scenes whose URI, or the file name
// after its last '/', equals it.
static gs_err scene_ids(gs_search_t *self, const char *s, gs_arena_t *arena, uint64_t **out,
                        size_t *out_n)
{
    uint64_t id;
    bool num = gs_qid_parse(s, &id) == GS_OK;
    const gs__qtable_t *t = &self->table;
    *out = gs_arena_alloc(arena, (num ? 1 : t->n_scenes + 1) * sizeof **out);
    if (!*out)
        return GS_ENOMEM;
    *out_n = 0;
    if (num) {
        (*out)[(*out_n)++] = id;
        return GS_OK;
    }
    for (size_t i = 0; i < t->n_scenes; i++) {
        const char *u = t->scene_uris[i], *base = strrchr(u, '/');
        if (strcmp(u, s) == 0 || (base && strcmp(base + 1, s) == 0))
            (*out)[(*out_n)++] = t->scene_ids[i];
    }
    qsort(*out, *out_n, sizeof **out, cmp_u64);
    return GS_OK;
}

// Caption ids collected by a scan (a growable buffer freed by the caller).
typedef struct {
    uint64_t *ids;
    size_t n, cap;
} idvec_t;

static int on_caption(uint64_t tile_id, void *ud)
{
    idvec_t *v = ud;
    grow((void **)&v->ids, &v->cap, v->n + 1, sizeof *v->ids);
    v->ids[v->n++] = tile_id;
    return 0;
}

static bool bbox_hit(const double *q, const double *b)
{
    if (b[1] > q[3] || b[3] < q[1]) // latitudes
        return false;
    if (q[0] <= q[2])
        return b[0] <= q[2] && b[2] >= q[0];
    // A query box across the antimeridian (W > E): [W, 180] or [-180, E].
    return b[2] >= q[0] || b[0] <= q[2];
}

gs_err gs__qfilter_allow(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                         uint64_t **out_ids, size_t *out_n, char *err, size_t err_nbytes)
{
    bool by_scene = req->scene && req->scene[0];
    bool by_caption = req->caption_contains && req->caption_contains[0];
    bool by_table = req->has_bbox || req->has_from || req->has_to || by_scene;
    gs_err e = GS_OK;
    idvec_t caps = {0};
    *out_ids = NULL;
    *out_n = 0;
    if (by_table && (e = gs__qtable_ensure(self)) != GS_OK) {
        snprintf(err, err_nbytes, "could not read the tile records of \"%s\": %s", self->dir,
                 gs_strerror(e));
        return e;
    }
    if (by_caption) {
        e = gs_capstore_find_captions(self->store, req->caption_contains, on_caption, &caps);
        if (e != GS_OK) {
            snprintf(err, err_nbytes, "could not scan the captions: %s", gs_strerror(e));
            goto out;
        }
        if (caps.n > 1)
            qsort(caps.ids, caps.n, sizeof *caps.ids, cmp_u64);
    }
    uint64_t *scenes = NULL;
    size_t n_scenes = 0;
    if (by_scene && (e = scene_ids(self, req->scene, arena, &scenes, &n_scenes)) != GS_OK)
        goto out;
    size_t n_max = by_table ? self->table.n_tiles : caps.n;
    uint64_t *ids = gs_arena_alloc(arena, (n_max + 1) * sizeof *ids);
    if (!ids) {
        e = GS_ENOMEM;
        snprintf(err, err_nbytes, "a filter of %zu ids is over the request's memory cap", n_max);
        goto out;
    }
    size_t n = 0;
    if (!by_table) {
        for (size_t i = 0; i < caps.n; i++)
            if ((i == 0 || caps.ids[i] != caps.ids[i - 1]) &&
                gs_vindex_contains(self->index, caps.ids[i]))
                ids[n++] = caps.ids[i];
    } else {
        const gs__qtable_t *t = &self->table;
        for (size_t i = 0; i < t->n_tiles; i++) {
            if (req->has_bbox && !bbox_hit(req->bbox, t->tile_bounds + 4 * i))
                continue;
            if ((req->has_from || req->has_to) &&
                (!t->tile_has_time[i] || (req->has_from && t->tile_time[i] < req->from) ||
                 (req->has_to && t->tile_time[i] > req->to)))
                continue;
            if (by_scene && !has_u64(scenes, n_scenes, t->tile_scene[i]))
                continue;
            if (by_caption && !has_u64(caps.ids, caps.n, t->tile_ids[i]))
                continue;
            if (gs_vindex_contains(self->index, t->tile_ids[i]))
                ids[n++] = t->tile_ids[i];
        }
    }
    *out_ids = ids;
    *out_n = n;
out:
    gs_free(caps.ids);
    return e;
}
