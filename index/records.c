// Binary encoding of capstore records: [version u8][type u8] then the fields in a fixed order,
// integers and IEEE floats little-endian, strings as u32 length + bytes. Decoding checks every
// length against the bytes left, so a corrupt value gives GS_EFORMAT, never a crash.
// This file is pure (no RocksDB); docs/STORE.md documents the byte layout.
#include "index/records.h"

#include <string.h>

// Record type tags (the second byte), so that a value of one family never decodes as another.
enum { TAG_SCENE = 1, TAG_TILE = 2, TAG_CAPTION = 3, TAG_CHANGE = 4, TAG_JOB = 5, TAG_QUAR = 6 };

// ---- keys -----------------------------------------------------------------------------------

void gs_rec_key_u64(uint64_t id, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(id >> (56 - 8 * i));
}

gs_err gs_rec_key_to_u64(const void *key, size_t nbytes, uint64_t *out_id)
{
    if (nbytes != 8)
        return GS_EFORMAT;
    const uint8_t *k = key;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | k[i];
    *out_id = v;
    return GS_OK;
}

// ---- writer ---------------------------------------------------------------------------------

// A writer appends fields to the caller's buffer and keeps the first error, so encoders are a
// straight list of fields with one check at the end.
typedef struct {
    gs_buf_t *out;
    gs_err err;
} wr_t;

static void w_bytes(wr_t *w, const void *p, size_t n)
{
    if (w->err == GS_OK)
        w->err = gs_buf_append(w->out, p, n);
}

static void w_u8(wr_t *w, uint8_t v) { w_bytes(w, &v, 1); }

static void w_u32(wr_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}

static void w_u64(wr_t *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

static void w_i32(wr_t *w, int32_t v) { w_u32(w, (uint32_t)v); }
static void w_i64(wr_t *w, int64_t v) { w_u64(w, (uint64_t)v); }

static void w_f32(wr_t *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    w_u32(w, u);
}

static void w_f64(wr_t *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    w_u64(w, u);
}

static void w_str(wr_t *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > GS_REC_STR_MAX) {
        if (w->err == GS_OK)
            w->err = GS_ETOOBIG;
        return;
    }
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n);
}

static void w_head(wr_t *w, gs_buf_t *out, uint8_t tag)
{
    w->out = out;
    w->err = GS_OK;
    w_u8(w, GS_REC_VERSION);
    w_u8(w, tag);
}

// ---- reader ---------------------------------------------------------------------------------

typedef struct {
    const uint8_t *p;
    size_t left;
    gs_arena_t *arena;
    gs_err err; // first error; reads after an error return zeros
} rd_t;

static const uint8_t *r_take(rd_t *r, size_t n)
{
    if (r->err != GS_OK || n > r->left) {
        r->err = r->err != GS_OK ? r->err : GS_EFORMAT;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint8_t r_u8(rd_t *r)
{
    const uint8_t *p = r_take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t r_u32(rd_t *r)
{
    const uint8_t *p = r_take(r, 4);
    if (!p)
        return 0;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t r_u64(rd_t *r)
{
    const uint8_t *p = r_take(r, 8);
    if (!p)
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int32_t r_i32(rd_t *r) { return (int32_t)r_u32(r); }
static int64_t r_i64(rd_t *r) { return (int64_t)r_u64(r); }

static float r_f32(rd_t *r)
{
    uint32_t u = r_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static double r_f64(rd_t *r)
{
    uint64_t u = r_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

// r_str: a NUL-terminated arena copy ("" after an error so callers never see NULL).
static const char *r_str(rd_t *r)
{
    uint32_t n = r_u32(r);
    if (r->err == GS_OK && n > GS_REC_STR_MAX)
        r->err = GS_EFORMAT;
    const uint8_t *p = r_take(r, n);
    if (!p)
        return "";
    char *s = gs_arena_strndup(r->arena, (const char *)p, n);
    if (!s) {
        r->err = GS_ENOMEM;
        return "";
    }
    return s;
}

static void r_head(rd_t *r, const void *p, size_t nbytes, gs_arena_t *arena, uint8_t tag)
{
    r->p = p;
    r->left = nbytes;
    r->arena = arena;
    r->err = GS_OK;
    if (!p) {
        r->err = GS_EFORMAT;
        return;
    }
    uint8_t ver = r_u8(r);
    uint8_t t = r_u8(r);
    if (r->err == GS_OK && (ver != GS_REC_VERSION || t != tag))
        r->err = GS_EFORMAT;
}

// r_end: the value must be consumed exactly (trailing bytes mean corruption or a mismatch).
static gs_err r_end(rd_t *r)
{
    if (r->err == GS_OK && r->left != 0)
        r->err = GS_EFORMAT;
    return r->err;
}

// ---- scenes ---------------------------------------------------------------------------------

gs_err gs_rec_encode_scene(const gs_scene_rec_t *s, gs_buf_t *out)
{
    if (s->n_footprint > GS_REC_FOOTPRINT_MAX)
        return GS_ETOOBIG;
    if (s->n_footprint > 0 && !s->footprint)
        return GS_EINVAL;
    wr_t w;
    w_head(&w, out, TAG_SCENE);
    w_u64(&w, s->scene_id);
    w_str(&w, s->uri);
    w_str(&w, s->sensor);
    w_i64(&w, s->time_unix);
    w_str(&w, s->time_iso);
    w_str(&w, s->crs);
    w_i32(&w, s->width);
    w_i32(&w, s->height);
    for (int i = 0; i < 4; i++)
        w_f64(&w, s->bbox[i]);
    w_u32(&w, s->n_footprint);
    for (uint32_t i = 0; i < 2 * s->n_footprint; i++)
        w_f64(&w, s->footprint[i]);
    w_str(&w, s->bands);
    w_str(&w, s->checksum);
    return w.err;
}

gs_err gs_rec_decode_scene(const void *p, size_t nbytes, gs_arena_t *arena, gs_scene_rec_t *s)
{
    rd_t r;
    r_head(&r, p, nbytes, arena, TAG_SCENE);
    s->scene_id = r_u64(&r);
    s->uri = r_str(&r);
    s->sensor = r_str(&r);
    s->time_unix = r_i64(&r);
    s->time_iso = r_str(&r);
    s->crs = r_str(&r);
    s->width = r_i32(&r);
    s->height = r_i32(&r);
    for (int i = 0; i < 4; i++)
        s->bbox[i] = r_f64(&r);
    s->n_footprint = r_u32(&r);
    s->footprint = NULL;
    if (r.err == GS_OK && s->n_footprint > GS_REC_FOOTPRINT_MAX)
        r.err = GS_EFORMAT;
    if (r.err == GS_OK && s->n_footprint > 0) {
        if ((size_t)s->n_footprint * 16 > r.left) {
            r.err = GS_EFORMAT;
        } else {
            double *fp = gs_arena_alloc(arena, (size_t)s->n_footprint * 16);
            if (!fp)
                r.err = GS_ENOMEM;
            for (uint32_t i = 0; fp && i < 2 * s->n_footprint; i++)
                fp[i] = r_f64(&r);
            s->footprint = fp;
        }
    }
    s->bands = r_str(&r);
    s->checksum = r_str(&r);
    return r_end(&r);
}

// ---- tiles ----------------------------------------------------------------------------------

gs_err gs_rec_encode_tile(const gs_tile_rec_t *t, gs_buf_t *out)
{
    wr_t w;
    w_head(&w, out, TAG_TILE);
    w_u64(&w, t->tile_id);
    w_u64(&w, t->scene_id);
    w_i32(&w, t->x);
    w_i32(&w, t->y);
    w_i32(&w, t->w);
    w_i32(&w, t->h);
    for (int i = 0; i < 4; i++)
        w_f64(&w, t->bounds[i]);
    w_i64(&w, t->time_unix);
    w_f32(&w, t->valid_frac);
    return w.err;
}

gs_err gs_rec_decode_tile(const void *p, size_t nbytes, gs_tile_rec_t *t)
{
    rd_t r;
    r_head(&r, p, nbytes, NULL, TAG_TILE);
    t->tile_id = r_u64(&r);
    t->scene_id = r_u64(&r);
    t->x = r_i32(&r);
    t->y = r_i32(&r);
    t->w = r_i32(&r);
    t->h = r_i32(&r);
    for (int i = 0; i < 4; i++)
        t->bounds[i] = r_f64(&r);
    t->time_unix = r_i64(&r);
    t->valid_frac = r_f32(&r);
    return r_end(&r);
}

// ---- captions -------------------------------------------------------------------------------

gs_err gs_rec_encode_caption(const gs_caption_rec_t *c, gs_buf_t *out)
{
    wr_t w;
    w_head(&w, out, TAG_CAPTION);
    w_u64(&w, c->tile_id);
    w_str(&w, c->text);
    w_str(&w, c->model_id);
    w_str(&w, c->prompt);
    return w.err;
}

gs_err gs_rec_decode_caption(const void *p, size_t nbytes, gs_arena_t *arena,
                             gs_caption_rec_t *c)
{
    rd_t r;
    r_head(&r, p, nbytes, arena, TAG_CAPTION);
    c->tile_id = r_u64(&r);
    c->text = r_str(&r);
    c->model_id = r_str(&r);
    c->prompt = r_str(&r);
    return r_end(&r);
}

// ASCII case-insensitive search of needle in the n bytes at hay.
static int contains_ci(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0)
        return 1;
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m) {
            uint8_t a = hay[i + j], b = (uint8_t)needle[j];
            if (a >= 'A' && a <= 'Z')
                a = (uint8_t)(a + 32);
            if (b >= 'A' && b <= 'Z')
                b = (uint8_t)(b + 32);
            if (a != b)
                break;
            j++;
        }
        if (j == m)
            return 1;
    }
    return 0;
}

gs_err gs_rec_caption_contains(const void *p, size_t nbytes, const char *needle, int *out_yes)
{
    rd_t r;
    r_head(&r, p, nbytes, NULL, TAG_CAPTION);
    (void)r_u64(&r);
    uint32_t n = r_u32(&r);
    const uint8_t *text = r_take(&r, n);
    if (r.err != GS_OK)
        return r.err;
    *out_yes = contains_ci(text, n, needle);
    return GS_OK;
}

// ---- changes --------------------------------------------------------------------------------

gs_err gs_rec_encode_change(const gs_change_rec_t *c, gs_buf_t *out)
{
    wr_t w;
    w_head(&w, out, TAG_CHANGE);
    w_u64(&w, c->pair_id);
    w_u64(&w, c->before_tile);
    w_u64(&w, c->after_tile);
    w_u64(&w, c->before_scene);
    w_u64(&w, c->after_scene);
    w_i64(&w, c->before_time);
    w_i64(&w, c->after_time);
    w_f32(&w, c->score);
    w_str(&w, c->caption);
    w_str(&w, c->model_id);
    return w.err;
}

gs_err gs_rec_decode_change(const void *p, size_t nbytes, gs_arena_t *arena, gs_change_rec_t *c)
{
    rd_t r;
    r_head(&r, p, nbytes, arena, TAG_CHANGE);
    c->pair_id = r_u64(&r);
    c->before_tile = r_u64(&r);
    c->after_tile = r_u64(&r);
    c->before_scene = r_u64(&r);
    c->after_scene = r_u64(&r);
    c->before_time = r_i64(&r);
    c->after_time = r_i64(&r);
    c->score = r_f32(&r);
    c->caption = r_str(&r);
    c->model_id = r_str(&r);
    return r_end(&r);
}

// ---- jobs -----------------------------------------------------------------------------------

gs_err gs_rec_encode_job(const gs_job_rec_t *j, gs_buf_t *out)
{
    wr_t w;
    w_head(&w, out, TAG_JOB);
    w_str(&w, j->task_key);
    w_u8(&w, j->state);
    w_u32(&w, j->attempts);
    w_u32(&w, j->n_tiles);
    w_u32(&w, j->n_skipped);
    w_i64(&w, j->time_unix);
    w_str(&w, j->shard_path);
    w_str(&w, j->shard_hash);
    w_str(&w, j->error);
    return w.err;
}

gs_err gs_rec_decode_job(const void *p, size_t nbytes, gs_arena_t *arena, gs_job_rec_t *j)
{
    rd_t r;
    r_head(&r, p, nbytes, arena, TAG_JOB);
    j->task_key = r_str(&r);
    j->state = r_u8(&r);
    j->attempts = r_u32(&r);
    j->n_tiles = r_u32(&r);
    j->n_skipped = r_u32(&r);
    j->time_unix = r_i64(&r);
    j->shard_path = r_str(&r);
    j->shard_hash = r_str(&r);
    j->error = r_str(&r);
    if (r.err == GS_OK && j->state > GS_JOB_QUARANTINED)
        r.err = GS_EFORMAT;
    return r_end(&r);
}

// ---- quarantine -----------------------------------------------------------------------------

gs_err gs_rec_encode_quarantine(const gs_quarantine_rec_t *q, gs_buf_t *out)
{
    wr_t w;
    w_head(&w, out, TAG_QUAR);
    w_str(&w, q->uri);
    w_str(&w, q->reason);
    w_i64(&w, q->time_unix);
    return w.err;
}

gs_err gs_rec_decode_quarantine(const void *p, size_t nbytes, gs_arena_t *arena,
                                gs_quarantine_rec_t *q)
{
    rd_t r;
    r_head(&r, p, nbytes, arena, TAG_QUAR);
    q->uri = r_str(&r);
    q->reason = r_str(&r);
    q->time_unix = r_i64(&r);
    return r_end(&r);
}
