// Typed record access of index/capstore.h: encode with index/records.h and put, get and decode,
// MultiGet into record arrays, typed scans and the caption substring scan. No RocksDB here;
// everything goes through the raw calls of capstore.c.
#define GS_LOG_MODULE "index"

#include <string.h>

#include "common/log.h"
#include "index/capstore.h"
#include "index/capstore_int.h"

// Encoded records are far smaller; the cap only bounds a runaway caller.
#define VALUE_CAP ((size_t)64 << 20)

static void bad_record(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes)
{
    uint64_t id = 0;
    if (gs_rec_key_to_u64(key, key_nbytes, &id) == GS_OK)
        GS_LOG_ERROR("malformed record in \"%s\" of store \"%s\" key=%016llx",
                     gs_capstore_cf_name(cf), gs__capstore_path(self), (unsigned long long)id);
    else
        GS_LOG_ERROR("malformed record in \"%s\" of store \"%s\" key=\"%.*s\"",
                     gs_capstore_cf_name(cf), gs__capstore_path(self),
                     (int)(key_nbytes > 200 ? 200 : key_nbytes), (const char *)key);
}

// ---- put ------------------------------------------------------------------------------------

typedef gs_err (*encode_fn)(const void *rec, gs_buf_t *out);

static gs_err put_encoded(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                          const void *rec, encode_fn enc)
{
    gs_buf_t b;
    gs_buf_init(&b, VALUE_CAP);
    gs_err e = enc(rec, &b);
    if (e == GS_OK)
        e = gs_capstore_put(self, cf, key, key_nbytes, b.data, b.len);
    gs_buf_cleanup(&b);
    return e;
}

static gs_err batch_encoded(gs_capstore_batch_t *bt, gs_cf_t cf, const void *key,
                            size_t key_nbytes, const void *rec, encode_fn enc)
{
    gs_buf_t *b = gs__capstore_batch_scratch(bt);
    gs_buf_reset(b);
    GS_TRY(enc(rec, b));
    return gs_capstore_batch_put(bt, cf, key, key_nbytes, b->data, b->len);
}

// Adapters from the typed encoders to encode_fn.
static gs_err enc_scene(const void *r, gs_buf_t *o) { return gs_rec_encode_scene(r, o); }
static gs_err enc_tile(const void *r, gs_buf_t *o) { return gs_rec_encode_tile(r, o); }
static gs_err enc_caption(const void *r, gs_buf_t *o) { return gs_rec_encode_caption(r, o); }
static gs_err enc_change(const void *r, gs_buf_t *o) { return gs_rec_encode_change(r, o); }
static gs_err enc_job(const void *r, gs_buf_t *o) { return gs_rec_encode_job(r, o); }
static gs_err enc_quar(const void *r, gs_buf_t *o) { return gs_rec_encode_quarantine(r, o); }

static size_t text_key_nbytes(const char *s) { return s ? strlen(s) : 0; }

#define U64KEY(name, id) \
    uint8_t name[8];     \
    gs_rec_key_u64((id), name)

gs_err gs_capstore_put_scene(gs_capstore_t *self, const gs_scene_rec_t *r)
{
    U64KEY(k, r->scene_id);
    return put_encoded(self, GS_CF_SCENES, k, 8, r, enc_scene);
}

gs_err gs_capstore_put_tile(gs_capstore_t *self, const gs_tile_rec_t *r)
{
    U64KEY(k, r->tile_id);
    return put_encoded(self, GS_CF_TILES, k, 8, r, enc_tile);
}

gs_err gs_capstore_put_caption(gs_capstore_t *self, const gs_caption_rec_t *r)
{
    U64KEY(k, r->tile_id);
    return put_encoded(self, GS_CF_CAPTIONS, k, 8, r, enc_caption);
}

gs_err gs_capstore_put_change(gs_capstore_t *self, const gs_change_rec_t *r)
{
    U64KEY(k, r->pair_id);
    return put_encoded(self, GS_CF_CHANGES, k, 8, r, enc_change);
}

gs_err gs_capstore_put_job(gs_capstore_t *self, const gs_job_rec_t *r)
{
    if (!r->task_key || !*r->task_key)
        return GS_EINVAL;
    return put_encoded(self, GS_CF_JOBS, r->task_key, strlen(r->task_key), r, enc_job);
}

gs_err gs_capstore_put_quarantine(gs_capstore_t *self, const gs_quarantine_rec_t *r)
{
    if (!r->uri || !*r->uri)
        return GS_EINVAL;
    return put_encoded(self, GS_CF_QUARANTINE, r->uri, strlen(r->uri), r, enc_quar);
}

gs_err gs_capstore_meta_set(gs_capstore_t *self, const char *key, const char *value)
{
    if (!key || !*key || !value)
        return GS_EINVAL;
    return gs_capstore_put(self, GS_CF_META, key, strlen(key), value, strlen(value));
}

gs_err gs_capstore_batch_put_scene(gs_capstore_batch_t *b, const gs_scene_rec_t *r)
{
    U64KEY(k, r->scene_id);
    return batch_encoded(b, GS_CF_SCENES, k, 8, r, enc_scene);
}

gs_err gs_capstore_batch_put_tile(gs_capstore_batch_t *b, const gs_tile_rec_t *r)
{
    U64KEY(k, r->tile_id);
    return batch_encoded(b, GS_CF_TILES, k, 8, r, enc_tile);
}

gs_err gs_capstore_batch_put_caption(gs_capstore_batch_t *b, const gs_caption_rec_t *r)
{
    U64KEY(k, r->tile_id);
    return batch_encoded(b, GS_CF_CAPTIONS, k, 8, r, enc_caption);
}

gs_err gs_capstore_batch_put_change(gs_capstore_batch_t *b, const gs_change_rec_t *r)
{
    U64KEY(k, r->pair_id);
    return batch_encoded(b, GS_CF_CHANGES, k, 8, r, enc_change);
}

gs_err gs_capstore_batch_put_job(gs_capstore_batch_t *b, const gs_job_rec_t *r)
{
    if (!r->task_key || !*r->task_key)
        return GS_EINVAL;
    return batch_encoded(b, GS_CF_JOBS, r->task_key, strlen(r->task_key), r, enc_job);
}

gs_err gs_capstore_batch_put_quarantine(gs_capstore_batch_t *b, const gs_quarantine_rec_t *r)
{
    if (!r->uri || !*r->uri)
        return GS_EINVAL;
    return batch_encoded(b, GS_CF_QUARANTINE, r->uri, strlen(r->uri), r, enc_quar);
}

gs_err gs_capstore_batch_meta_set(gs_capstore_batch_t *b, const char *key, const char *value)
{
    if (!key || !*key || !value)
        return GS_EINVAL;
    return gs_capstore_batch_put(b, GS_CF_META, key, strlen(key), value, strlen(value));
}

// ---- get ------------------------------------------------------------------------------------

// get_raw: the value of a key, with GS_ENOTFOUND passed up unlogged.
static gs_err get_raw(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                      gs_arena_t *arena, const void **v, size_t *n)
{
    return gs_capstore_get(self, cf, key, key_nbytes, arena, v, n);
}

#define CHECK_DECODE(expr, cf, key, key_nbytes)        \
    do {                                               \
        gs_err e__ = (expr);                           \
        if (e__ == GS_EFORMAT)                         \
            bad_record(self, (cf), (key), (key_nbytes)); \
        return e__;                                    \
    } while (0)

gs_err gs_capstore_get_scene(gs_capstore_t *self, uint64_t id, gs_arena_t *arena,
                             gs_scene_rec_t *out)
{
    U64KEY(k, id);
    const void *v;
    size_t n;
    GS_TRY(get_raw(self, GS_CF_SCENES, k, 8, arena, &v, &n));
    CHECK_DECODE(gs_rec_decode_scene(v, n, arena, out), GS_CF_SCENES, k, 8);
}

gs_err gs_capstore_get_caption(gs_capstore_t *self, uint64_t id, gs_arena_t *arena,
                               gs_caption_rec_t *out)
{
    U64KEY(k, id);
    const void *v;
    size_t n;
    GS_TRY(get_raw(self, GS_CF_CAPTIONS, k, 8, arena, &v, &n));
    CHECK_DECODE(gs_rec_decode_caption(v, n, arena, out), GS_CF_CAPTIONS, k, 8);
}

gs_err gs_capstore_get_change(gs_capstore_t *self, uint64_t id, gs_arena_t *arena,
                              gs_change_rec_t *out)
{
    U64KEY(k, id);
    const void *v;
    size_t n;
    GS_TRY(get_raw(self, GS_CF_CHANGES, k, 8, arena, &v, &n));
    CHECK_DECODE(gs_rec_decode_change(v, n, arena, out), GS_CF_CHANGES, k, 8);
}

gs_err gs_capstore_get_job(gs_capstore_t *self, const char *task_key, gs_arena_t *arena,
                           gs_job_rec_t *out)
{
    size_t kn = text_key_nbytes(task_key);
    if (kn == 0)
        return GS_EINVAL;
    const void *v;
    size_t n;
    GS_TRY(get_raw(self, GS_CF_JOBS, task_key, kn, arena, &v, &n));
    CHECK_DECODE(gs_rec_decode_job(v, n, arena, out), GS_CF_JOBS, task_key, kn);
}

gs_err gs_capstore_get_quarantine(gs_capstore_t *self, const char *uri, gs_arena_t *arena,
                                  gs_quarantine_rec_t *out)
{
    size_t kn = text_key_nbytes(uri);
    if (kn == 0)
        return GS_EINVAL;
    const void *v;
    size_t n;
    GS_TRY(get_raw(self, GS_CF_QUARANTINE, uri, kn, arena, &v, &n));
    CHECK_DECODE(gs_rec_decode_quarantine(v, n, arena, out), GS_CF_QUARANTINE, uri, kn);
}

gs_err gs_capstore_meta_get(gs_capstore_t *self, const char *key, gs_arena_t *arena,
                            const char **out_value)
{
    size_t kn = text_key_nbytes(key), n;
    if (kn == 0)
        return GS_EINVAL;
    const void *v;
    GS_TRY(get_raw(self, GS_CF_META, key, kn, arena, &v, &n));
    *out_value = v; // copy_value NUL-terminates
    return GS_OK;
}

// ---- many at once ---------------------------------------------------------------------------

typedef struct {
    gs_capstore_t *self;
    const uint64_t *ids;
    gs_arena_t *arena;
    void *recs;
    uint8_t *found;
} many_ctx_t;

static gs_err bad_id(many_ctx_t *c, gs_cf_t cf, size_t i)
{
    U64KEY(k, c->ids[i]);
    bad_record(c->self, cf, k, 8);
    return GS_EFORMAT;
}

static gs_err one_tile(size_t i, const char *v, size_t n, void *ud)
{
    many_ctx_t *c = ud;
    gs_tile_rec_t *r = (gs_tile_rec_t *)c->recs + i;
    c->found[i] = v != NULL;
    if (!v) {
        memset(r, 0, sizeof *r);
        return GS_OK;
    }
    gs_err e = gs_rec_decode_tile(v, n, r);
    return e == GS_EFORMAT ? bad_id(c, GS_CF_TILES, i) : e;
}

static gs_err one_caption(size_t i, const char *v, size_t n, void *ud)
{
    many_ctx_t *c = ud;
    gs_caption_rec_t *r = (gs_caption_rec_t *)c->recs + i;
    c->found[i] = v != NULL;
    if (!v) {
        memset(r, 0, sizeof *r);
        return GS_OK;
    }
    gs_err e = gs_rec_decode_caption(v, n, c->arena, r);
    return e == GS_EFORMAT ? bad_id(c, GS_CF_CAPTIONS, i) : e;
}

gs_err gs_capstore_get_tile(gs_capstore_t *self, uint64_t tile_id, gs_tile_rec_t *out)
{
    uint8_t found = 0;
    many_ctx_t c = {self, &tile_id, NULL, out, &found};
    GS_TRY(gs__capstore_multi_get_each(self, GS_CF_TILES, 1, &tile_id, one_tile, &c));
    return found ? GS_OK : GS_ENOTFOUND;
}

gs_err gs_capstore_get_tiles(gs_capstore_t *self, size_t n, const uint64_t *ids,
                             gs_tile_rec_t *out_recs, uint8_t *out_found)
{
    many_ctx_t c = {self, ids, NULL, out_recs, out_found};
    return gs__capstore_multi_get_each(self, GS_CF_TILES, n, ids, one_tile, &c);
}

gs_err gs_capstore_get_captions(gs_capstore_t *self, size_t n, const uint64_t *ids,
                                gs_arena_t *arena, gs_caption_rec_t *out_recs,
                                uint8_t *out_found)
{
    many_ctx_t c = {self, ids, arena, out_recs, out_found};
    return gs__capstore_multi_get_each(self, GS_CF_CAPTIONS, n, ids, one_caption, &c);
}

// ---- typed scans ----------------------------------------------------------------------------

typedef struct {
    gs_capstore_t *self;
    gs_cf_t cf;
    gs_arena_t *arena; // reset per record
    union {
        int (*tile)(const gs_tile_rec_t *, void *);
        int (*job)(const gs_job_rec_t *, void *);
        int (*quar)(const gs_quarantine_rec_t *, void *);
        int (*caption)(uint64_t, void *);
    } fn;
    void *ud;
    const char *needle;
    gs_err err;
} scan_ctx_t;

static int scan_fail(scan_ctx_t *c, gs_err e, const void *k, size_t kn)
{
    if (e == GS_EFORMAT)
        bad_record(c->self, c->cf, k, kn);
    c->err = e;
    return 1;
}

static int scan_tile(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    scan_ctx_t *c = ud;
    gs_tile_rec_t r;
    gs_err e = gs_rec_decode_tile(v, vn, &r);
    return e != GS_OK ? scan_fail(c, e, k, kn) : c->fn.tile(&r, c->ud);
}

static int scan_job(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    scan_ctx_t *c = ud;
    gs_job_rec_t r;
    gs_arena_reset(c->arena);
    gs_err e = gs_rec_decode_job(v, vn, c->arena, &r);
    return e != GS_OK ? scan_fail(c, e, k, kn) : c->fn.job(&r, c->ud);
}

static int scan_quar(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    scan_ctx_t *c = ud;
    gs_quarantine_rec_t r;
    gs_arena_reset(c->arena);
    gs_err e = gs_rec_decode_quarantine(v, vn, c->arena, &r);
    return e != GS_OK ? scan_fail(c, e, k, kn) : c->fn.quar(&r, c->ud);
}

static int scan_caption(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    scan_ctx_t *c = ud;
    int yes = 0;
    uint64_t id = 0;
    gs_err e = gs_rec_key_to_u64(k, kn, &id);
    if (e == GS_OK)
        e = gs_rec_caption_contains(v, vn, c->needle, &yes);
    if (e != GS_OK)
        return scan_fail(c, GS_EFORMAT, k, kn);
    return yes ? c->fn.caption(id, c->ud) : 0;
}

static gs_err typed_scan(scan_ctx_t *c, gs_capstore_scan_fn each)
{
    c->err = GS_OK;
    if (c->cf == GS_CF_JOBS || c->cf == GS_CF_QUARANTINE)
        c->arena = gs_arena_new(64 << 10, (size_t)16 << 20);
    gs_err e = gs_capstore_scan(c->self, c->cf, NULL, 0, each, c);
    gs_arena_destroy(&c->arena);
    return e != GS_OK ? e : c->err;
}

gs_err gs_capstore_scan_tiles(gs_capstore_t *self, int (*fn)(const gs_tile_rec_t *, void *),
                              void *ud)
{
    scan_ctx_t c = {.self = self, .cf = GS_CF_TILES, .fn.tile = fn, .ud = ud};
    return typed_scan(&c, scan_tile);
}

gs_err gs_capstore_scan_jobs(gs_capstore_t *self, int (*fn)(const gs_job_rec_t *, void *),
                             void *ud)
{
    scan_ctx_t c = {.self = self, .cf = GS_CF_JOBS, .fn.job = fn, .ud = ud};
    return typed_scan(&c, scan_job);
}

gs_err gs_capstore_scan_quarantine(gs_capstore_t *self,
                                   int (*fn)(const gs_quarantine_rec_t *, void *), void *ud)
{
    scan_ctx_t c = {.self = self, .cf = GS_CF_QUARANTINE, .fn.quar = fn, .ud = ud};
    return typed_scan(&c, scan_quar);
}

gs_err gs_capstore_find_captions(gs_capstore_t *self, const char *needle,
                                 int (*fn)(uint64_t, void *), void *ud)
{
    if (!needle)
        return GS_EINVAL;
    scan_ctx_t c = {.self = self, .cf = GS_CF_CAPTIONS, .fn.caption = fn, .ud = ud,
                    .needle = needle};
    return typed_scan(&c, scan_caption);
}
