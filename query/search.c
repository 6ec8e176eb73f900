// gs_search: open an output for reading, embed a query with the output's encoder, search the
// index (filters as an allow-list, search_filter.c), join the hits with their records.
// Everything a search allocates comes from the caller's per-request arena.
#define GS_LOG_MODULE "query"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/layout.h"
#include "index/records.h"
#include "model/preprocess.h"
#include "query/search_int.h"

// ---- open -----------------------------------------------------------------------------------

// existing: dir/name as a new string when it exists, else NULL.
static char *existing(const char *dir, const char *name)
{
    char *p = gs_path_join(dir, name);
    if (gs_path_exists(p))
        return p;
    gs_free(p);
    return NULL;
}

// meta_dup: a meta value as a new string ("" when absent).
static char *meta_dup(gs_capstore_t *store, gs_arena_t *a, const char *key)
{
    const char *v = NULL;
    if (gs_capstore_meta_get(store, key, a, &v) != GS_OK || !v)
        v = "";
    return gs_xstrdup(v);
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? gs_xstrdup(s) : NULL;
}

// model_open_locked: opens the encoder and checks it against the output (model_lock held).
static gs_err model_open_locked(gs_search_t *self)
{
    if (self->model)
        return GS_OK;
    if (self->model_err != GS_OK)
        return self->model_err;
    char *msg = self->model_errmsg;
    size_t cap = sizeof self->model_errmsg;
    const char *path = self->opt_model ? self->opt_model : self->model_path;
    gs_err e = GS_OK;
    if (!path[0]) {
        snprintf(msg, cap, "output \"%s\" records no encoder model: pass --model", self->dir);
        e = GS_EUNSUPPORTED;
    } else if (!self->model_id[0]) {
        snprintf(msg, cap,
                 "output \"%s\" records no encoder model id, so the model cannot be "
                 "checked against its embeddings",
                 self->dir);
        e = GS_EUNSUPPORTED;
    }
    if (e == GS_OK && !self->opt_model && !gs_path_exists(path)) {
        snprintf(msg, cap,
                 "output \"%s\" records its encoder as \"%s\"%s, which is not there: "
                 "pass --model with that model",
                 self->dir, path, path[0] == '/' ? "" : " (relative to where ingest ran)");
        e = GS_ENOTFOUND;
    }
    if (e != GS_OK)
        return self->model_err = e;
    const char *arch = self->opt_arch;
    if (!arch && self->model_arch[0] && strcmp(self->model_arch, "auto") != 0)
        arch = self->model_arch;
    gs_clip_opts_t o = {.arch = arch,
                        .config_path = self->opt_config,
                        .vocab_path = self->opt_vocab        ? self->opt_vocab
                                      : self->model_vocab[0] ? self->model_vocab
                                                             : NULL,
                        .n_threads = self->opts.n_threads > 0 ? self->opts.n_threads : 1,
                        .max_batch = 1};
    gs_clip_t *m = NULL;
    e = gs_clip_open(path, &o, &m);
    if (e != GS_OK) {
        snprintf(msg, cap, "could not open the encoder model \"%s\": %s", path, gs_strerror(e));
        return self->model_err = e;
    }
    const char *id = gs_clip_model_id(m);
    if (strcmp(id, self->model_id) != 0) {
        snprintf(msg, cap,
                 "model \"%s\" has id %s but output \"%s\" was embedded with model id "
                 "%s (\"%s\"): embeddings of different models are not comparable; use that model",
                 path, id, self->dir, self->model_id, self->model_path);
        e = GS_EMISMATCH;
    } else if (gs_clip_dim(m) != self->dim) {
        snprintf(msg, cap, "model \"%s\" embeds in %d dimensions but the index of \"%s\" has %d",
                 path, gs_clip_dim(m), self->dir, self->dim);
        e = GS_EMISMATCH;
    }
    if (e != GS_OK) {
        gs_clip_close(&m);
        return self->model_err = e;
    }
    self->model = m;
    return GS_OK;
}

static gs_err open_files(gs_search_t *self, char *err, size_t err_nbytes)
{
    self->store_path = existing(self->dir, GS_LAYOUT_STORE);
    self->index_path = existing(self->dir, GS_LAYOUT_INDEX);
    if (!self->store_path || !self->index_path) {
        snprintf(err, err_nbytes, "no geoscribe output at \"%s\": no \"%s\" in it", self->dir,
                 !self->store_path ? GS_LAYOUT_STORE : GS_LAYOUT_INDEX);
        return GS_ENOTFOUND;
    }
    gs_capstore_opts_t so = {.read_only = true};
    gs_err e = gs_capstore_open(self->store_path, &so, &self->store);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not open the record store \"%s\": %s", self->store_path,
                 gs_strerror(e));
        return e;
    }
    gs_arena_t *a = gs_arena_new(4096, 0);
    self->model_id = meta_dup(self->store, a, "encoder.model_id");
    self->model_path = meta_dup(self->store, a, "encoder.model");
    self->model_arch = meta_dup(self->store, a, "encoder.arch");
    self->model_vocab = meta_dup(self->store, a, "encoder.vocab");
    char *np = meta_dup(self->store, a, "index.nprobe");
    int nprobe = self->opts.nprobe;
    if (nprobe <= 0 && np[0] && gs_parse_int(np, 1, 1 << 20, &nprobe) != GS_OK)
        nprobe = 0;
    gs_free(np);
    gs_arena_destroy(&a);
    float kf = self->opts.k_factor > 0 ? self->opts.k_factor : GS_SEARCH_K_FACTOR;
    gs_vindex_opts_t vo = {
        .nprobe = nprobe > 0 ? nprobe : 0, .k_factor = kf, .n_threads = self->opts.faiss_threads};
    e = gs_vindex_read(self->index_path, &vo, &self->index);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not read the index \"%s\": %s", self->index_path,
                 gs_strerror(e));
        return e;
    }
    self->nprobe = nprobe;
    self->dim = gs_vindex_dim(self->index);
    self->cache_vecs = gs_xcalloc((size_t)GS__QCACHE_N * self->dim, sizeof *self->cache_vecs);
    self->is_ivf = gs_vindex_nprobe(self->index) > 0;
    return GS_OK;
}

gs_err gs_search_open(const char *out_dir, const gs_search_opts_t *opts, gs_search_t **out,
                      char *err, size_t err_nbytes)
{
    *out = NULL;
    if (!out_dir || !out_dir[0]) {
        snprintf(err, err_nbytes, "no output folder given");
        return GS_EINVAL;
    }
    gs_search_t *s = gs_xcalloc(1, sizeof *s);
    if (opts)
        s->opts = *opts;
    s->dir = gs_xstrdup(out_dir);
    s->opt_model = dup_or_null(s->opts.model);
    s->opt_arch = dup_or_null(s->opts.arch);
    s->opt_config = dup_or_null(s->opts.config);
    s->opt_vocab = dup_or_null(s->opts.vocab);
    s->opts.model = s->opts.arch = s->opts.config = s->opts.vocab = NULL;
    pthread_mutex_init(&s->model_lock, NULL);
    pthread_mutex_init(&s->table_lock, NULL);
    gs_err e = open_files(s, err, err_nbytes);
    if (e == GS_OK && !s->opts.lazy_model) {
        pthread_mutex_lock(&s->model_lock);
        e = model_open_locked(s);
        pthread_mutex_unlock(&s->model_lock);
        if (e != GS_OK)
            snprintf(err, err_nbytes, "%s", s->model_errmsg);
    }
    if (e == GS_OK && s->opts.preload && (e = gs__qtable_ensure(s)) != GS_OK)
        snprintf(err, err_nbytes, "could not read the tile records of \"%s\": %s", s->dir,
                 gs_strerror(e));
    if (e != GS_OK) {
        gs_search_close(&s);
        return e;
    }
    GS_LOG_DEBUG("opened output \"%s\" store=%s index=%s vectors=%zu", s->dir, s->store_path,
                 s->index_path, gs_vindex_ntotal(s->index));
    *out = s;
    return GS_OK;
}

void gs_search_close(gs_search_t **p)
{
    if (!p || !*p)
        return;
    gs_search_t *s = *p;
    gs_clip_close(&s->model);
    gs_vindex_destroy(&s->index);
    gs_capstore_close(&s->store);
    gs__qtable_cleanup(&s->table);
    for (int i = 0; i < GS__QCACHE_N; i++)
        gs_free(s->cache[i].text);
    gs_free(s->cache_vecs);
    pthread_mutex_destroy(&s->model_lock);
    pthread_mutex_destroy(&s->table_lock);
    char *strs[] = {s->dir,        s->store_path, s->index_path, s->opt_model,
                    s->opt_arch,   s->opt_config, s->opt_vocab,  s->model_id,
                    s->model_path, s->model_arch, s->model_vocab};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        gs_free(strs[i]);
    gs_free(s);
    *p = NULL;
}

// ---- facts ----------------------------------------------------------------------------------

const char *gs_search_model_id(const gs_search_t *self)
{
    return self->model_id;
}
size_t gs_search_ntotal(gs_search_t *self)
{
    return gs_vindex_ntotal(self->index);
}
int gs_search_dim(const gs_search_t *self)
{
    return self->dim;
}
const char *gs_search_dir(const gs_search_t *self)
{
    return self->dir;
}

void gs_search_describe(gs_search_t *self, char *out, size_t out_nbytes)
{
    gs_vindex_describe(self->index, out, out_nbytes);
}

// ---- the query vector -----------------------------------------------------------------------

static gs_err normalize(float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s))
        return GS_EINVAL;
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
    return GS_OK;
}

// cache_find / cache_put: the text cache (model_lock held). find returns the slot or -1.
static int cache_find(gs_search_t *self, const char *text)
{
    for (int i = 0; i < GS__QCACHE_N; i++)
        if (self->cache[i].text && strcmp(self->cache[i].text, text) == 0) {
            self->cache[i].used = ++self->cache_clock;
            return i;
        }
    return -1;
}

static void cache_put(gs_search_t *self, const char *text, const float *q)
{
    int lru = 0;
    for (int i = 1; i < GS__QCACHE_N; i++)
        if (self->cache[i].used < self->cache[lru].used)
            lru = i;
    gs_free(self->cache[lru].text);
    self->cache[lru].text = gs_xstrdup(text);
    self->cache[lru].used = ++self->cache_clock;
    memcpy(self->cache_vecs + (size_t)lru * self->dim, q, (size_t)self->dim * sizeof *q);
}

// encode_locked: text or image -> q (model_lock held).
static gs_err encode_locked(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                            float *q, char *err, size_t err_nbytes)
{
    gs_err e = model_open_locked(self);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "%s", self->model_errmsg);
        return e;
    }
    if (req->text) {
        if (!gs_clip_has_text(self->model)) {
            snprintf(err, err_nbytes, "the encoder has no tokenizer vocabulary: pass --vocab");
            return GS_EUNSUPPORTED;
        }
        int slot = cache_find(self, req->text);
        if (slot >= 0) {
            memcpy(q, self->cache_vecs + (size_t)slot * self->dim, (size_t)self->dim * sizeof *q);
            return GS_OK;
        }
        e = gs_clip_encode_texts(self->model, &req->text, 1, true, q);
        if (e == GS_OK)
            cache_put(self, req->text, q);
    } else {
        gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(self->model);
        size_t scratch_nbytes = gs_preprocess_scratch_nbytes(req->image_w, req->image_h, pc.size);
        void *scratch = scratch_nbytes ? gs_arena_alloc(arena, scratch_nbytes) : NULL;
        float *chw = gs_arena_alloc(arena, (size_t)3 * pc.size * pc.size * sizeof *chw);
        if (!scratch_nbytes) {
            snprintf(err, err_nbytes, "the example image (%d x %d) cannot be preprocessed",
                     req->image_w, req->image_h);
            return GS_EINVAL;
        }
        if (!scratch || !chw) {
            snprintf(err, err_nbytes, "the example image is over the request's memory cap");
            return GS_ENOMEM;
        }
        e = gs_preprocess_image(req->image_rgb, req->image_w, req->image_h, &pc, scratch, chw);
        if (e == GS_OK)
            e = gs_clip_encode_images(self->model, chw, 1, true, q);
    }
    if (e != GS_OK)
        snprintf(err, err_nbytes, "could not encode the query: %s", gs_strerror(e));
    return e;
}

static gs_err query_vector(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                           float *q, char *err, size_t err_nbytes)
{
    if (req->like_tile) {
        gs_err e = gs_vindex_reconstruct(self->index, req->like_tile, q);
        if (e == GS_ENOTFOUND)
            snprintf(err, err_nbytes, "tile %llu is not in the index",
                     (unsigned long long)req->like_tile);
        else if (e != GS_OK)
            snprintf(err, err_nbytes, "could not read the vector of tile %llu: %s",
                     (unsigned long long)req->like_tile, gs_strerror(e));
        if (e == GS_OK && normalize(q, self->dim) != GS_OK) {
            snprintf(err, err_nbytes, "tile %llu has a zero vector",
                     (unsigned long long)req->like_tile);
            e = GS_EINVAL;
        }
        return e;
    }
    if (req->vector) {
        memcpy(q, req->vector, (size_t)self->dim * sizeof *q);
        if (normalize(q, self->dim) != GS_OK) {
            snprintf(err, err_nbytes, "the query vector is zero or not finite");
            return GS_EINVAL;
        }
        return GS_OK;
    }
    pthread_mutex_lock(&self->model_lock);
    gs_err e = encode_locked(self, req, arena, q, err, err_nbytes);
    pthread_mutex_unlock(&self->model_lock);
    return e;
}

// ---- checks ---------------------------------------------------------------------------------

static gs_err check_request(const gs_search_t *self, const gs_search_req_t *r, char *err,
                            size_t err_nbytes)
{
    int n_kinds =
        (r->text != NULL) + (r->like_tile != 0) + (r->image_rgb != NULL) + (r->vector != NULL);
    if (n_kinds != 1) {
        snprintf(err, err_nbytes,
                 n_kinds ? "give one query (text, like-tile, like-image or "
                           "vector), not %d"
                         : "no query given",
                 n_kinds);
        return GS_EINVAL;
    }
    if (r->k > GS_SEARCH_K_MAX) {
        snprintf(err, err_nbytes, "k = %zu is over the limit of %u", r->k, GS_SEARCH_K_MAX);
        return GS_ETOOBIG;
    }
    if (r->k == 0) {
        snprintf(err, err_nbytes, "k must be at least 1");
        return GS_EINVAL;
    }
    if (r->text && strlen(r->text) > GS_SEARCH_TEXT_MAX) {
        snprintf(err, err_nbytes, "query text longer than %u bytes", GS_SEARCH_TEXT_MAX);
        return GS_ETOOBIG;
    }
    if (r->text && !r->text[0]) {
        snprintf(err, err_nbytes, "empty query text");
        return GS_EINVAL;
    }
    if (r->image_rgb && (r->image_w < 1 || r->image_h < 1)) {
        snprintf(err, err_nbytes, "bad example image size %d x %d", r->image_w, r->image_h);
        return GS_EINVAL;
    }
    if (r->image_rgb && (uint64_t)r->image_w * (uint64_t)r->image_h > GS_SEARCH_IMAGE_MAX_PIXELS) {
        snprintf(err, err_nbytes, "example image of %d x %d pixels is over the limit of %u",
                 r->image_w, r->image_h, GS_SEARCH_IMAGE_MAX_PIXELS);
        return GS_ETOOBIG;
    }
    if (r->vector && r->n_vector != self->dim) {
        snprintf(err, err_nbytes, "the query vector has %d values, the index %d dimensions",
                 r->n_vector, self->dim);
        return GS_EINVAL;
    }
    if (r->nprobe < 0 || r->nprobe > GS_VINDEX_NPROBE_WIDEN_MAX) {
        snprintf(err, err_nbytes, "nprobe must be between 1 and %d", GS_VINDEX_NPROBE_WIDEN_MAX);
        return GS_EINVAL;
    }
    if (r->has_bbox) {
        const double *b = r->bbox;
        for (int i = 0; i < 4; i++)
            if (!isfinite(b[i]) || fabs(b[i]) > (i % 2 ? 90.0 : 180.0)) {
                snprintf(err, err_nbytes,
                         "bbox values must be W,S,E,N within -180..180 and "
                         "-90..90 degrees");
                return GS_EINVAL;
            }
        if (b[1] > b[3]) {
            snprintf(err, err_nbytes, "bbox south %g is north of its north %g", b[1], b[3]);
            return GS_EINVAL;
        }
    }
    if (r->has_from && r->has_to && r->from > r->to) {
        snprintf(err, err_nbytes, "the time range ends before it starts");
        return GS_EINVAL;
    }
    return GS_OK;
}

// ---- join -----------------------------------------------------------------------------------

// join: fills hits[0..n) from the ids and scores, with their tile, scene and caption records.
static gs_err join(gs_search_t *self, size_t n, const uint64_t *ids, const float *scores,
                   gs_arena_t *a, gs_search_hit_t *hits)
{
    gs_tile_rec_t *tiles = gs_arena_alloc(a, n * sizeof *tiles);
    gs_caption_rec_t *caps = gs_arena_alloc(a, n * sizeof *caps);
    uint8_t *t_found = gs_arena_alloc(a, n), *c_found = gs_arena_alloc(a, n);
    // Distinct scenes: an open-addressing set in the arena.
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint64_t *slots = gs_arena_calloc(a, cap, sizeof *slots);
    uint32_t *slot_row = gs_arena_alloc(a, cap * sizeof *slot_row);
    uint64_t *sids = gs_arena_alloc(a, n * sizeof *sids);
    if (!tiles || !caps || !t_found || !c_found || !slots || !slot_row || !sids)
        return GS_ENOMEM;
    GS_TRY(gs_capstore_get_tiles(self->store, n, ids, tiles, t_found));
    GS_TRY(gs_capstore_get_captions(self->store, n, ids, a, caps, c_found));
    size_t n_s = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t sid = t_found[i] ? tiles[i].scene_id : 0;
        if (sid == 0)
            continue;
        size_t j = (size_t)(sid * 0x9E3779B97F4A7C15ULL >> 20) & (cap - 1);
        while (slots[j] && slots[j] != sid)
            j = (j + 1) & (cap - 1);
        if (!slots[j]) {
            slots[j] = sid;
            slot_row[j] = (uint32_t)n_s;
            sids[n_s++] = sid;
        }
    }
    const void **vals = gs_arena_alloc(a, (n_s + 1) * sizeof *vals);
    size_t *lens = gs_arena_alloc(a, (n_s + 1) * sizeof *lens);
    gs_scene_rec_t *scenes = gs_arena_alloc(a, (n_s + 1) * sizeof *scenes);
    uint8_t *s_found = gs_arena_calloc(a, n_s + 1, 1);
    if (!vals || !lens || !scenes || !s_found)
        return GS_ENOMEM;
    if (n_s)
        GS_TRY(gs_capstore_multi_get(self->store, GS_CF_SCENES, n_s, sids, a, vals, lens));
    for (size_t i = 0; i < n_s; i++) {
        if (!vals[i])
            continue;
        gs_err e = gs_rec_decode_scene(vals[i], lens[i], a, &scenes[i]);
        if (e == GS_ENOMEM)
            return e;
        s_found[i] = e == GS_OK;
    }
    for (size_t i = 0; i < n; i++) {
        gs_search_hit_t *h = &hits[i];
        memset(h, 0, sizeof *h);
        h->rank = (uint32_t)(i + 1);
        h->tile_id = ids[i];
        h->score = scores[i];
        h->scene_uri = "";
        h->caption = c_found[i] ? caps[i].text : NULL;
        if (!t_found[i])
            continue;
        const gs_tile_rec_t *t = &tiles[i];
        h->scene_id = t->scene_id;
        h->time_unix = t->time_unix;
        h->has_time = t->time_unix != 0;
        memcpy(h->bbox, t->bounds, sizeof h->bbox);
        h->x = t->x, h->y = t->y, h->w = t->w, h->h = t->h;
        if (t->scene_id == 0)
            continue;
        size_t j = (size_t)(t->scene_id * 0x9E3779B97F4A7C15ULL >> 20) & (cap - 1);
        while (slots[j] != t->scene_id)
            j = (j + 1) & (cap - 1);
        uint32_t r = slot_row[j];
        if (s_found[r]) {
            h->scene_uri = scenes[r].uri;
            h->has_time = scenes[r].time_iso[0] != '\0'; // the rule of the filter table too
        }
    }
    return GS_OK;
}

gs_err gs_search_tile(gs_search_t *self, uint64_t tile_id, gs_arena_t *arena, gs_search_hit_t *out)
{
    float score = 0;
    gs_search_hit_t *h = gs_arena_alloc(arena, sizeof *h);
    if (!h)
        return GS_ENOMEM;
    gs_tile_rec_t t;
    GS_TRY(gs_capstore_get_tile(self->store, tile_id, &t)); // GS_ENOTFOUND first, cheaply
    GS_TRY(join(self, 1, &tile_id, &score, arena, h));
    *out = *h;
    out->rank = 0;
    return GS_OK;
}

// ---- search ---------------------------------------------------------------------------------

static gs_err index_search(gs_search_t *self, const float *q, size_t k, int nprobe,
                           const gs_vindex_filter_t *f, float *scores, uint64_t *ids, size_t *out_n)
{
    gs_vindex_search_opts_t so = {.nprobe = nprobe > 0 ? nprobe : self->nprobe, .filter = f};
    GS_TRY(gs_vindex_search(self->index, 1, q, k, &so, scores, ids));
    size_t n = 0;
    while (n < k && ids[n] != GS_VINDEX_NONE)
        n++;
    *out_n = n;
    return GS_OK;
}

gs_err gs_search_run(gs_search_t *self, const gs_search_req_t *req, gs_arena_t *arena,
                     gs_search_result_t *out, char *err, size_t err_nbytes)
{
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    GS_TRY(check_request(self, req, err, err_nbytes));
    double t0 = gs_clock_s();
    float *q = gs_arena_alloc(arena, (size_t)self->dim * sizeof *q);
    if (!q)
        return GS_ENOMEM;
    GS_TRY(query_vector(self, req, arena, q, err, err_nbytes));
    double t1 = gs_clock_s();
    out->encode_s = t1 - t0;

    gs_vindex_filter_t filter = {0};
    uint64_t n_cand = gs_vindex_ntotal(self->index);
    bool filtered = gs__qfilter_any(req);
    if (filtered) {
        uint64_t *allow = NULL;
        size_t n_allow = 0;
        GS_TRY(gs__qfilter_allow(self, req, arena, &allow, &n_allow, err, err_nbytes));
        filter.ids = allow;
        filter.n_ids = n_allow;
        n_cand = n_allow;
    }
    out->n_candidates = n_cand;
    size_t k = req->k < n_cand ? req->k : (size_t)n_cand, n = 0;
    float *scores = k ? gs_arena_alloc(arena, k * sizeof *scores) : NULL;
    uint64_t *ids = k ? gs_arena_alloc(arena, k * sizeof *ids) : NULL;
    out->hits = gs_arena_alloc(arena, (k ? k : 1) * sizeof *out->hits);
    if ((k && (!scores || !ids)) || !out->hits) {
        snprintf(err, err_nbytes, "k = %zu is over the request's memory cap", req->k);
        return GS_ENOMEM;
    }
    gs_err e = k ? index_search(self, q, k, req->nprobe, filtered ? &filter : NULL, scores, ids, &n)
                 : GS_OK;
    // A filtered IVF search returns what its probed lists hold: widen until k hits (or every
    // list is probed), so that min(k, matches) hits come back.
    int np = req->nprobe > 0 ? req->nprobe : gs_vindex_nprobe(self->index);
    while (e == GS_OK && filtered && self->is_ivf && n < k && np < GS_VINDEX_NPROBE_WIDEN_MAX) {
        np = np > GS_VINDEX_NPROBE_WIDEN_MAX / 4 ? GS_VINDEX_NPROBE_WIDEN_MAX : np * 4;
        e = index_search(self, q, k, np, &filter, scores, ids, &n);
    }
    double t2 = gs_clock_s();
    out->search_s = t2 - t1;
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "index search failed: %s", gs_strerror(e));
        return e;
    }
    e = join(self, n, ids, scores, arena, out->hits);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not read the records of the hits: %s", gs_strerror(e));
        return e;
    }
    out->n_hits = n;
    out->join_s = gs_clock_s() - t2;
    return GS_OK;
}
