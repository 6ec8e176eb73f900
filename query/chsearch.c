// Change search (chsearch.h). At open the change records are read into a table (the key's
// place, times and bounds, the score, the caption), so filters are one pass over memory; a text
// query then searches the caption embeddings with the allowed pair ids as an allow-list
// (exact scores), and hits are joined with the scene records for their URIs.
// The record key layout (72 bytes, big-endian) is decoded here as docs/CHANGES.md gives it
// (jobs/warp.h writes it; query/ does not link jobs/).
#define GS_LOG_MODULE "query"
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "index/capstore.h"
#include "index/records.h"
#include "index/vindex.h"
#include "model/clip.h"
#include "query/chsearch.h"
#include "query/format.h"

#define KEY_NBYTES 72u

typedef struct {
    uint64_t pair_id;
    uint64_t location; // the key's place (thumbnails find the cell by it)
    int64_t before_time, after_time;
    uint64_t before_scene, after_scene, before_tile, after_tile;
    double bbox[4];
    float score;
    const char *caption;  // in the table arena; "" when none
    const char *model_id; // in the table arena
} row_t;

struct gs_chsearch {
    char *dir;
    gs_capstore_t *store;
    gs_vindex_t *index; // NULL when the output has no caption vectors
    gs_clip_t *model;
    char *model_id, *model_path, *model_arch, *model_vocab;
    int n_threads;
    row_t *rows;
    size_t n_rows, cap_rows;
    gs_arena_t *strings;
    pthread_mutex_t lock; // one search at a time (the encoder and FAISS filter state)
};

// ---- open -----------------------------------------------------------------------------------

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int load_row(const void *key, size_t key_nbytes, const void *val, size_t val_nbytes,
                    void *ud)
{
    gs_chsearch_t *s = ud;
    if (key_nbytes != KEY_NBYTES)
        return 0; // not a change record of this layout
    gs_change_rec_t r;
    if (gs_rec_decode_change(val, val_nbytes, s->strings, &r) != GS_OK)
        return 0;
    if (s->n_rows == s->cap_rows) {
        s->cap_rows = s->cap_rows ? s->cap_rows * 2 : 1024;
        s->rows = gs_xrealloc(s->rows, s->cap_rows * sizeof *s->rows);
    }
    const uint8_t *k = key;
    row_t *w = &s->rows[s->n_rows++];
    *w = (row_t){.pair_id = r.pair_id,
                 .location = be64(k),
                 .before_time = r.before_time,
                 .after_time = r.after_time,
                 .before_scene = r.before_scene,
                 .after_scene = r.after_scene,
                 .before_tile = r.before_tile,
                 .after_tile = r.after_tile,
                 .score = r.score,
                 .caption = r.caption,
                 .model_id = r.model_id};
    for (int i = 0; i < 4; i++) {
        uint64_t u = be64(k + 40 + 8 * i);
        memcpy(&w->bbox[i], &u, sizeof u);
    }
    return 0;
}

static char *meta_dup(gs_capstore_t *st, gs_arena_t *a, const char *key)
{
    const char *v = NULL;
    return gs_capstore_meta_get(st, key, a, &v) == GS_OK ? gs_xstrdup(v) : gs_xstrdup("");
}

gs_err gs_chsearch_open(const char *out_dir, const gs_chsearch_opts_t *opts, gs_chsearch_t **out,
                        char *err, size_t err_nbytes)
{
    *out = NULL;
    gs_chsearch_t *s = gs_xcalloc(1, sizeof *s);
    s->dir = gs_xstrdup(out_dir);
    s->strings = gs_arena_new(1 << 20, 0);
    pthread_mutex_init(&s->lock, NULL);
    s->n_threads = opts && opts->n_threads > 0 ? opts->n_threads : 1;
    char *db = gs_path_join(out_dir, "db");
    char *ix = gs_path_join(out_dir, "index/changes.faiss");
    gs_err e = GS_OK;
    if (!gs_is_dir(db)) {
        snprintf(err, err_nbytes, "no output at \"%s\" (no db folder)", out_dir);
        e = GS_ENOTFOUND;
        goto out;
    }
    gs_capstore_opts_t co = {.read_only = true};
    if ((e = gs_capstore_open(db, &co, &s->store)) != GS_OK) {
        snprintf(err, err_nbytes, "could not open the store \"%s\": %s", db, gs_strerror(e));
        goto out;
    }
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    s->model_id = meta_dup(s->store, a, "changes.encoder.model_id");
    s->model_path = gs_xstrdup(opts && opts->model ? opts->model : "");
    s->model_arch = gs_xstrdup(opts && opts->arch ? opts->arch : "");
    s->model_vocab = gs_xstrdup(opts && opts->vocab ? opts->vocab : "");
    const char *keys[] = {"changes.encoder.model", "changes.encoder.arch", "changes.encoder.vocab"};
    char **dst[] = {&s->model_path, &s->model_arch, &s->model_vocab};
    for (int i = 0; i < 3; i++)
        if (!**dst[i]) {
            gs_free(*dst[i]);
            *dst[i] = meta_dup(s->store, a, keys[i]);
        }
    gs_arena_destroy(&a);
    if (!*s->model_id) {
        snprintf(err, err_nbytes,
                 "output \"%s\" has no change records: run `geoscribe changes` "
                 "on it first",
                 out_dir);
        e = GS_ENOTFOUND;
        goto out;
    }
    if ((e = gs_capstore_scan(s->store, GS_CF_CHANGES, NULL, 0, load_row, s)) != GS_OK) {
        snprintf(err, err_nbytes, "could not read the change records of \"%s\"", db);
        goto out;
    }
    if (gs_path_exists(ix) && (e = gs_vindex_read(ix, NULL, &s->index)) != GS_OK) {
        snprintf(err, err_nbytes, "could not read the change index \"%s\": %s", ix, gs_strerror(e));
        goto out;
    }
out:
    gs_free(db);
    gs_free(ix);
    if (e != GS_OK) {
        gs_chsearch_close(&s);
        return e;
    }
    *out = s;
    return GS_OK;
}

size_t gs_chsearch_n_records(const gs_chsearch_t *self)
{
    return self->n_rows;
}

void gs_chsearch_close(gs_chsearch_t **p)
{
    if (!p || !*p)
        return;
    gs_chsearch_t *s = *p;
    gs_clip_close(&s->model);
    gs_vindex_destroy(&s->index);
    gs_capstore_close(&s->store);
    gs_free(s->rows);
    gs_arena_destroy(&s->strings);
    gs_free(s->model_id);
    gs_free(s->model_path);
    gs_free(s->model_arch);
    gs_free(s->model_vocab);
    gs_free(s->dir);
    pthread_mutex_destroy(&s->lock);
    gs_free(s);
    *p = NULL;
}

// ---- search ---------------------------------------------------------------------------------

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

static bool meets(const double a[4], const double b[4])
{
    if (b[0] > b[2]) // the query box crosses the antimeridian
        return a[1] <= b[3] && a[3] >= b[1] && (a[2] >= b[0] || a[0] <= b[2]);
    return a[0] <= b[2] && a[2] >= b[0] && a[1] <= b[3] && a[3] >= b[1];
}

static bool passes(const row_t *r, const gs_chsearch_req_t *q, bool need_caption)
{
    if (need_caption && !*r->caption)
        return false;
    if (q->has_bbox && !meets(r->bbox, q->bbox))
        return false;
    if (q->has_from && !(r->before_time >= q->from && r->after_time >= q->from))
        return false;
    if (q->has_to && !(r->before_time <= q->to && r->after_time <= q->to))
        return false;
    if (q->caption_contains && *q->caption_contains &&
        !contains_ci(r->caption, q->caption_contains))
        return false;
    return r->score >= q->min_score;
}

// open_model: the encoder the captions were embedded with (lazily, at the first text query).
static gs_err open_model(gs_chsearch_t *s, char *err, size_t err_nbytes)
{
    if (s->model)
        return GS_OK;
    bool auto_arch = !*s->model_arch || strcmp(s->model_arch, "auto") == 0;
    gs_clip_opts_t o = {.arch = auto_arch ? NULL : s->model_arch,
                        .vocab_path = *s->model_vocab ? s->model_vocab : NULL,
                        .n_threads = s->n_threads,
                        .max_batch = 1};
    gs_err e = gs_clip_open(s->model_path, &o, &s->model);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not open the encoder \"%s\": %s", s->model_path,
                 gs_strerror(e));
        return e;
    }
    if (strcmp(gs_clip_model_id(s->model), s->model_id) != 0) {
        snprintf(err, err_nbytes,
                 "the encoder \"%s\" (id %s) is not the one the change captions "
                 "were embedded with (id %s)",
                 s->model_path, gs_clip_model_id(s->model), s->model_id);
        gs_clip_close(&s->model);
        return GS_EMISMATCH;
    }
    if (!gs_clip_has_text(s->model)) {
        snprintf(err, err_nbytes, "the encoder \"%s\" has no text vocabulary (give --vocab)",
                 s->model_path);
        gs_clip_close(&s->model);
        return GS_EUNSUPPORTED;
    }
    return GS_OK;
}

// A row index with its sort key, for ranking by change score without text.
typedef struct {
    float score;
    uint32_t row;
} ranked_t;

static int ranked_desc(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

typedef struct {
    uint64_t id;
    uint32_t row;
} idrow_t;

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const idrow_t *)a)->id, y = ((const idrow_t *)b)->id;
    return x < y ? -1 : x > y;
}

// text_search: the k best captioned rows among `allowed` by caption similarity.
static gs_err text_search(gs_chsearch_t *s, const gs_chsearch_req_t *q, const uint32_t *allowed,
                          size_t n_allowed, gs_arena_t *arena, ranked_t *out, size_t *out_n,
                          char *err, size_t err_nbytes)
{
    *out_n = 0;
    if (!s->index || n_allowed == 0)
        return GS_OK;
    GS_TRY(open_model(s, err, err_nbytes));
    int dim = gs_clip_dim(s->model);
    float *qv = gs_arena_alloc(arena, (size_t)dim * sizeof *qv);
    uint64_t *ids = gs_arena_alloc(arena, n_allowed * sizeof *ids);
    size_t k = q->k < n_allowed ? q->k : n_allowed;
    float *scores = gs_arena_alloc(arena, k * sizeof *scores);
    uint64_t *hit_ids = gs_arena_alloc(arena, k * sizeof *hit_ids);
    if (!qv || !ids || !scores || !hit_ids)
        return GS_ENOMEM;
    gs_err e = gs_clip_encode_texts(s->model, &q->text, 1, true, qv);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not embed the query text: %s", gs_strerror(e));
        return e;
    }
    for (size_t i = 0; i < n_allowed; i++)
        ids[i] = s->rows[allowed[i]].pair_id;
    gs_vindex_filter_t f = {.ids = ids, .n_ids = n_allowed};
    gs_vindex_search_opts_t so = {.filter = &f};
    if ((e = gs_vindex_search(s->index, 1, qv, k, &so, scores, hit_ids)) != GS_OK) {
        snprintf(err, err_nbytes, "the change index search failed: %s", gs_strerror(e));
        return e;
    }
    // hits back to rows: the allow-list sorted by pair id, searched per hit
    idrow_t *byid = gs_arena_alloc(arena, n_allowed * sizeof *byid);
    if (!byid)
        return GS_ENOMEM;
    for (size_t i = 0; i < n_allowed; i++)
        byid[i] = (idrow_t){.id = ids[i], .row = allowed[i]};
    qsort(byid, n_allowed, sizeof *byid, by_id);
    for (size_t i = 0; i < k && hit_ids[i] != GS_VINDEX_NONE; i++) {
        idrow_t key = {.id = hit_ids[i]};
        const idrow_t *hit = bsearch(&key, byid, n_allowed, sizeof *byid, by_id);
        if (hit)
            out[(*out_n)++] = (ranked_t){.score = scores[i], .row = hit->row};
    }
    return GS_OK;
}

static const char *scene_uri(gs_chsearch_t *s, uint64_t id, gs_arena_t *arena)
{
    gs_scene_rec_t r;
    return gs_capstore_get_scene(s->store, id, arena, &r) == GS_OK ? r.uri : "";
}

static gs_err run_locked(gs_chsearch_t *self, const gs_chsearch_req_t *req, gs_arena_t *arena,
                         gs_chsearch_hit_t **out_hits, size_t *out_n, uint64_t *out_n_candidates,
                         char *err, size_t err_nbytes);

gs_err gs_chsearch_pair(gs_chsearch_t *self, uint64_t pair_id, gs_arena_t *arena,
                        gs_chsearch_pair_t *out)
{
    // The rows do not change after open and the store reads are thread-safe: no lock.
    for (size_t i = 0; i < self->n_rows; i++) {
        const row_t *r = &self->rows[i];
        if (r->pair_id != pair_id)
            continue;
        *out = (gs_chsearch_pair_t){.location = r->location,
                                    .before_uri = scene_uri(self, r->before_scene, arena),
                                    .after_uri = scene_uri(self, r->after_scene, arena)};
        return *out->before_uri && *out->after_uri ? GS_OK : GS_ENOTFOUND;
    }
    return GS_ENOTFOUND;
}

gs_err gs_chsearch_run(gs_chsearch_t *self, const gs_chsearch_req_t *req, gs_arena_t *arena,
                       gs_chsearch_hit_t **out_hits, size_t *out_n, uint64_t *out_n_candidates,
                       char *err, size_t err_nbytes)
{
    pthread_mutex_lock(&self->lock);
    gs_err e = run_locked(self, req, arena, out_hits, out_n, out_n_candidates, err, err_nbytes);
    pthread_mutex_unlock(&self->lock);
    return e;
}

static gs_err run_locked(gs_chsearch_t *self, const gs_chsearch_req_t *req, gs_arena_t *arena,
                         gs_chsearch_hit_t **out_hits, size_t *out_n, uint64_t *out_n_candidates,
                         char *err, size_t err_nbytes)
{
    gs_chsearch_t *s = self;
    *out_hits = NULL;
    *out_n = 0;
    *out_n_candidates = 0;
    // The same codes as gs_search_run: a k over the cap is a request too big, k = 0 invalid.
    if (req->k > GS_CHSEARCH_K_MAX) {
        snprintf(err, err_nbytes, "k = %zu is over the limit of %u", req->k, GS_CHSEARCH_K_MAX);
        return GS_ETOOBIG;
    }
    if (req->k < 1) {
        snprintf(err, err_nbytes, "k must be at least 1");
        return GS_EINVAL;
    }
    if (req->has_from && req->has_to && req->from > req->to) {
        snprintf(err, err_nbytes, "the time window ends before it starts");
        return GS_EINVAL;
    }
    bool text = req->text && *req->text;
    uint32_t *allowed = gs_arena_alloc(arena, (s->n_rows ? s->n_rows : 1) * sizeof *allowed);
    ranked_t *ranked = gs_arena_alloc(arena, (s->n_rows ? s->n_rows : 1) * sizeof *ranked);
    if (!allowed || !ranked)
        return GS_ENOMEM;
    size_t n_allowed = 0, n_ranked = 0;
    for (size_t i = 0; i < s->n_rows; i++)
        if (passes(&s->rows[i], req, text))
            allowed[n_allowed++] = (uint32_t)i;
    *out_n_candidates = n_allowed;
    if (text) {
        GS_TRY(text_search(s, req, allowed, n_allowed, arena, ranked, &n_ranked, err, err_nbytes));
    } else {
        for (size_t i = 0; i < n_allowed; i++)
            ranked[i] = (ranked_t){.score = s->rows[allowed[i]].score, .row = allowed[i]};
        qsort(ranked, n_allowed, sizeof *ranked, ranked_desc);
        n_ranked = n_allowed < req->k ? n_allowed : req->k;
    }
    gs_chsearch_hit_t *hits = gs_arena_calloc(arena, n_ranked ? n_ranked : 1, sizeof *hits);
    if (!hits)
        return GS_ENOMEM;
    for (size_t i = 0; i < n_ranked; i++) {
        const row_t *r = &s->rows[ranked[i].row];
        gs_chsearch_hit_t *h = &hits[i];
        *h = (gs_chsearch_hit_t){.rank = (uint32_t)i + 1,
                                 .pair_id = r->pair_id,
                                 .has_similarity = text,
                                 .similarity = text ? ranked[i].score : 0,
                                 .score = r->score,
                                 .before_tile = r->before_tile,
                                 .after_tile = r->after_tile,
                                 .before_scene = r->before_scene,
                                 .after_scene = r->after_scene,
                                 .before_time = r->before_time,
                                 .after_time = r->after_time,
                                 .caption = *r->caption ? r->caption : NULL,
                                 .model_id = r->model_id};
        memcpy(h->bbox, r->bbox, sizeof h->bbox);
        h->before_uri = scene_uri(s, r->before_scene, arena);
        h->after_uri = scene_uri(s, r->after_scene, arena);
    }
    *out_hits = hits;
    *out_n = n_ranked;
    return GS_OK;
}

// ---- output ---------------------------------------------------------------------------------

static gs_err coord(gs_buf_t *b, double v)
{
    char t[40];
    for (int p = 15; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, v);
        if (strtod(t, NULL) == v)
            break;
    }
    return gs_buf_puts(b, t);
}

static gs_err side(gs_buf_t *b, const char *name, uint64_t scene, const char *uri, int64_t time,
                   uint64_t tile, bool flat)
{
    char t[40];
    gs_qtime_format(time, t, sizeof t);
    if (flat) {
        GS_TRY(gs_buf_printf(b, "\"%s_scene_id\":\"%llu\",\"%s_scene\":", name,
                             (unsigned long long)scene, name));
        GS_TRY(gs_buf_json_str(b, uri ? uri : ""));
        return gs_buf_printf(b, ",\"%s_time\":\"%s\",\"%s_tile_id\":\"%llu\"", name, t, name,
                             (unsigned long long)tile);
    }
    GS_TRY(gs_buf_printf(b, "\"%s\":{\"scene_id\":\"%llu\",\"scene\":", name,
                         (unsigned long long)scene));
    GS_TRY(gs_buf_json_str(b, uri ? uri : ""));
    return gs_buf_printf(b, ",\"time\":\"%s\",\"tile_id\":\"%llu\"}", t, (unsigned long long)tile);
}

static gs_err fields(gs_buf_t *b, const gs_chsearch_hit_t *h, bool flat)
{
    GS_TRY(gs_buf_printf(b, "\"rank\":%u,\"pair_id\":\"%llu\",\"similarity\":", h->rank,
                         (unsigned long long)h->pair_id));
    GS_TRY(h->has_similarity ? gs_buf_printf(b, "%.6f", (double)h->similarity)
                             : gs_buf_puts(b, "null"));
    GS_TRY(gs_buf_printf(b, ",\"score\":%.6f,\"caption\":", (double)h->score));
    GS_TRY(h->caption ? gs_buf_json_str(b, h->caption) : gs_buf_puts(b, "null"));
    GS_TRY(gs_buf_puts(b, ","));
    GS_TRY(side(b, "before", h->before_scene, h->before_uri, h->before_time, h->before_tile, flat));
    GS_TRY(gs_buf_puts(b, ","));
    GS_TRY(side(b, "after", h->after_scene, h->after_uri, h->after_time, h->after_tile, flat));
    GS_TRY(gs_buf_puts(b, ",\"bbox\":["));
    for (int i = 0; i < 4; i++) {
        GS_TRY(gs_buf_puts(b, i ? "," : ""));
        GS_TRY(coord(b, h->bbox[i]));
    }
    GS_TRY(gs_buf_puts(b, "],\"model_id\":"));
    return gs_buf_json_str(b, h->model_id ? h->model_id : "");
}

gs_err gs_chsearch_format(gs_buf_t *out, const gs_chsearch_hit_t *hits, size_t n, bool geojson)
{
    if (!geojson) {
        for (size_t i = 0; i < n; i++) {
            GS_TRY(gs_buf_puts(out, "{"));
            GS_TRY(fields(out, &hits[i], false));
            GS_TRY(gs_buf_puts(out, "}\n"));
        }
        return GS_OK;
    }
    GS_TRY(gs_buf_puts(out, "{\"type\":\"FeatureCollection\",\"features\":["));
    for (size_t i = 0; i < n; i++) {
        const double *bb = hits[i].bbox;
        const double pts[5][2] = {
            {bb[0], bb[1]}, {bb[2], bb[1]}, {bb[2], bb[3]}, {bb[0], bb[3]}, {bb[0], bb[1]}};
        GS_TRY(gs_buf_puts(out, i ? ",{" : "{"));
        GS_TRY(gs_buf_puts(out, "\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\","
                                "\"coordinates\":[["));
        for (int p = 0; p < 5; p++) {
            GS_TRY(gs_buf_puts(out, p ? ",[" : "["));
            GS_TRY(coord(out, pts[p][0]));
            GS_TRY(gs_buf_puts(out, ","));
            GS_TRY(coord(out, pts[p][1]));
            GS_TRY(gs_buf_puts(out, "]"));
        }
        GS_TRY(gs_buf_puts(out, "]]},\"properties\":{"));
        GS_TRY(fields(out, &hits[i], true));
        GS_TRY(gs_buf_puts(out, "}}"));
    }
    return gs_buf_puts(out, "]}\n");
}
