// The change worker (changes.h): models, the pair task and the message loop. A pair task opens
// both scenes, puts them on the pair's grid (warping a scene whose grid differs), embeds the
// two tiles of every cell (stored embeddings of unwarped tiles come from the coordinator's
// reuse file, staging/<task>.reuse.vec), scores, gates, captions the gated cells with both
// tiles (earlier first), embeds the captions with the text tower and writes the change shard.
// The frame (open, identity, handle, MPI loop) follows worker/ingest.c; the tile pipeline
// (windowed read -> preprocess -> batched encode) is the same as the ingest tile task's.
#define GS_LOG_MODULE "worker"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/records.h"
#include "index/vecfile.h"
#include "jobs/tiles.h"
#include "jobs/warp.h"
#include "jobs/warp_shard.h"
#include "model/clip.h"
#include "model/llava.h"
#include "model/preprocess.h"
#include "proto/geoscribe.pb-c.h"
#include "worker/changes.h"
#include "worker/ingest.h"
#include "worker/serve_int.h"

struct gs_chworker {
    const gs_job_t *job;
    char *staging;     // OUT/staging
    gs_clip_t *clip;   // image and text towers
    gs_llava_t *llava; // the two-image captioner, NULL without one
    int dim, image_size, batch, threads;
    gs_preprocess_cfg_t pcfg;
    char encoder_id[17];
    char captioner_id[17];
    char preprocess[256];
    char model_id[64]; // "clip:<id>" or "clip:<id>,llava:<id>" in the records
    uint64_t settings_hash;
    bool started;
    uint8_t *rgb[2]; // (size, size, 3) the two tiles of a cell
    void *scratch;   // preprocessing scratch (grown for odd tile shapes)
    size_t scratch_nbytes;
    float *pixels;     // (batch, 3, S, S) tiles waiting for the encoder
    int32_t *cap_ids;  // (captioner.max_tokens) generated ids
    gs_arena_t *arena; // per task: vectors, scores, records
    int test_delay_ms; // GS_INGEST_TASK_DELAY_MS, as the ingest worker
};

static int auto_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = gs_getenv_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1, 1, 1 << 20);
    long t = (cores > 0 ? cores : 1) / local;
    return t < 1 ? 1 : t > 64 ? 64 : (int)t;
}

// captioner_path: changes.caption_model, else captioner.model; NULL for none.
static const char *captioner_path(const gs_job_t *job)
{
    const char *p = job->changes.caption_model;
    if (strcmp(p, "none") == 0)
        return NULL;
    if (!*p)
        p = job->captioner.model;
    return *p ? p : NULL;
}

// ingest_identity: the preprocessing identity exactly as the ingest worker states it (opened
// small, without a captioner), so that the coordinator can compare it with an ingest's.
static gs_err ingest_identity(gs_chworker_t *w, char *err, size_t err_nbytes)
{
    char *canon = NULL;
    size_t n = 0;
    GS_TRY(gs_job_canonical(w->job, &canon, &n));
    const char *sets[] = {"captioner.model="};
    gs_job_t *j = NULL;
    gs_err e = gs_job_parse(canon, n, "<changes>", sets, 1, &j, err, err_nbytes);
    gs_free(canon);
    gs_worker_t *iw = NULL;
    if (e == GS_OK)
        e = gs_worker_open(j, 0, true, &iw, err, err_nbytes);
    if (e == GS_OK) {
        const char *enc, *pre, *cap;
        int dim;
        gs_worker_identity(iw, &enc, &dim, &pre, &cap);
        snprintf(w->preprocess, sizeof w->preprocess, "%s", pre);
    }
    gs_worker_close(&iw);
    gs_job_destroy(&j);
    return e;
}

static gs_err open_models(gs_chworker_t *w, int rank, bool identity_only, char *err,
                          size_t err_nbytes)
{
    const gs_job_t *job = w->job;
    bool auto_arch = strcmp(job->encoder.arch, "auto") == 0 || !*job->encoder.arch;
    gs_clip_opts_t o = {.arch = auto_arch ? NULL : job->encoder.arch,
                        .n_threads = w->threads,
                        .max_batch = w->batch,
                        .vocab_path = *job->encoder.vocab ? job->encoder.vocab : NULL};
    gs_err e = gs_clip_open(job->encoder.model, &o, &w->clip);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not open the encoder \"%s\" (encoder.model): %s",
                 job->encoder.model, gs_strerror(e));
        return e;
    }
    w->dim = gs_clip_dim(w->clip);
    w->image_size = gs_clip_image_size(w->clip);
    w->pcfg = gs_clip_preprocess_cfg(w->clip);
    snprintf(w->encoder_id, sizeof w->encoder_id, "%s", gs_clip_model_id(w->clip));
    const char *cap = captioner_path(job);
    if (cap && !gs_clip_has_text(w->clip)) {
        snprintf(err, err_nbytes,
                 "change captions are searched by their text embedding, but "
                 "the encoder \"%s\" has no text vocabulary: set encoder.vocab (e.g. "
                 "bpe_simple_vocab_16e6.txt.gz)",
                 job->encoder.model);
        return GS_EUNSUPPORTED;
    }
    if (cap) {
        // two images per call: LLaVA-1.5 puts 576 features per image before the prompt
        int n_ctx = 2 * 768 + job->captioner.max_tokens;
        gs_llava_opts_t lo = {.n_threads = w->threads,
                              .n_ctx = n_ctx < 4096 ? n_ctx : 4096,
                              .max_images = 2,
                              .max_beams = 1};
        e = gs_llava_open(cap, &lo, &w->llava);
        if (e != GS_OK) {
            snprintf(err, err_nbytes,
                     "could not open the change captioner \"%s\" "
                     "(changes.caption_model): %s",
                     cap, gs_strerror(e));
            return e;
        }
        snprintf(w->captioner_id, sizeof w->captioner_id, "%s", gs_llava_model_id(w->llava));
    }
    snprintf(w->model_id, sizeof w->model_id, w->llava ? "clip:%s,llava:%s" : "clip:%s",
             w->encoder_id, w->captioner_id);
    GS_TRY(ingest_identity(w, err, err_nbytes));
    if (identity_only)
        return GS_OK;
    size_t side = (size_t)job->tiling.size, S = (size_t)w->image_size;
    w->rgb[0] = gs_trymalloc(side * side * 3);
    w->rgb[1] = gs_trymalloc(side * side * 3);
    w->scratch_nbytes = gs_preprocess_scratch_nbytes((int)side, (int)side, (int)S) + 64;
    w->scratch = gs_trymalloc(w->scratch_nbytes);
    w->pixels = gs_trymalloc((size_t)w->batch * 3 * S * S * sizeof(float));
    w->cap_ids = gs_trycalloc((size_t)job->captioner.max_tokens + 1, sizeof *w->cap_ids);
    if (!w->rgb[0] || !w->rgb[1] || !w->scratch || !w->pixels || !w->cap_ids) {
        snprintf(err, err_nbytes, "could not allocate the tile buffers of rank %d", rank);
        return GS_ENOMEM;
    }
    return GS_OK;
}

gs_err gs_chworker_open(const gs_job_t *job, int rank, bool identity_only, gs_chworker_t **out,
                        char *err, size_t err_nbytes)
{
    *out = NULL;
    gs_chworker_t *w = gs_xcalloc(1, sizeof *w);
    w->job = job;
    w->staging = gs_path_join(job->output, "staging");
    w->arena = gs_arena_new(1 << 20, 0);
    w->threads = identity_only              ? 1
                 : job->encoder.threads > 0 ? job->encoder.threads
                                            : auto_threads();
    w->batch = identity_only ? 1 : job->encoder.batch;
    w->test_delay_ms = gs_getenv_int("GS_INGEST_TASK_DELAY_MS", 0, 0, 60000);
    gs_err e = open_models(w, rank, identity_only, err, err_nbytes);
    if (e != GS_OK) {
        gs_chworker_close(&w);
        return e;
    }
    GS_LOG_DEBUG("rank %d: change worker, encoder %s dim=%d captioner %s threads=%d", rank,
                 w->encoder_id, w->dim, *w->captioner_id ? w->captioner_id : "none", w->threads);
    *out = w;
    return GS_OK;
}

void gs_chworker_identity(gs_chworker_t *self, const char **out_encoder_id, int *out_dim,
                          const char **out_preprocess, const char **out_captioner_id)
{
    *out_encoder_id = self->encoder_id;
    *out_dim = self->dim;
    *out_preprocess = self->preprocess;
    *out_captioner_id = self->captioner_id;
}

gs_err gs_chworker_start(gs_chworker_t *self, uint64_t settings_hash, const char *encoder_id,
                         const char *captioner_id, char *err, size_t err_nbytes)
{
    if (strcmp(encoder_id ? encoder_id : "", self->encoder_id) != 0 ||
        strcmp(captioner_id ? captioner_id : "", self->captioner_id) != 0) {
        snprintf(err, err_nbytes,
                 "this rank loaded encoder %s and captioner %s, rank 0 %s and "
                 "%s: the model files differ between nodes",
                 self->encoder_id, *self->captioner_id ? self->captioner_id : "none", encoder_id,
                 captioner_id && *captioner_id ? captioner_id : "none");
        return GS_EMISMATCH;
    }
    self->settings_hash = settings_hash;
    self->started = true;
    return GS_OK;
}

// ---- one side of a pair ---------------------------------------------------------------------

typedef struct {
    gs_scene_t *own;            // the scene as the job opens it
    gs_warp_t *warp;            // or warped onto the pair grid (then own is NULL)
    gs_scene_t *scene;          // the scene on the pair grid (own or the warp's)
    const gs_scene_info_t *src; // the source's facts (id, uri, time)
    float *vecs;                // (n_cells, dim) embeddings
    uint8_t *ok;                // (n_cells) 1 = embedded (valid enough)
    uint32_t n_reused, n_encoded;
} side_t;

static void side_close(side_t *s)
{
    gs_warp_close(&s->warp);
    gs_scene_close(&s->own);
    s->scene = NULL;
}

static gs_err open_scene(const gs_job_t *job, const char *uri, gs_scene_t **out,
                         gs_scene_problem_t *pr, char *why, size_t why_nbytes)
{
    gs_err e = gs_scene_open(job, uri, out, pr, why, why_nbytes);
    if (e == GS_OK)
        e = gs_scene_check(*out, pr, why, why_nbytes);
    if (e != GS_OK)
        gs_scene_close(out);
    return e;
}

// side_place: puts an opened side on the pair grid: kept as it is when its grid is the pair
// grid, else replaced by the warp of its source onto it.
static gs_err side_place(const gs_job_t *job, side_t *s, const gs_warp_grid_t *grid,
                         gs_scene_problem_t *pr, char *why, size_t why_nbytes)
{
    GS_TRY(gs_warp_onto(job, s->own, grid, &s->warp, &s->scene, pr, why, why_nbytes));
    if (!s->warp) {
        s->src = gs_scene_info(s->own);
        return GS_OK;
    }
    gs_scene_close(&s->own); // the warp has its own datasets
    s->src = gs_warp_source(s->warp);
    return gs_scene_check(s->scene, pr, why, why_nbytes);
}

// ---- stored embeddings ----------------------------------------------------------------------

typedef struct {
    uint64_t id;
    uint32_t row;
} idrow_t;

typedef struct {
    idrow_t *ix; // (n) sorted by id
    float *vecs; // (n, dim) in file order
    int dim;
    size_t n;
} reuse_t;

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const idrow_t *)a)->id, y = ((const idrow_t *)b)->id;
    return x < y ? -1 : x > y;
}

// reuse_load: the stored embeddings the coordinator left for a task (none when absent).
static void reuse_load(gs_chworker_t *w, uint64_t task_id, reuse_t *r)
{
    memset(r, 0, sizeof *r);
    char name[48];
    snprintf(name, sizeof name, "%016llx.reuse.vec", (unsigned long long)task_id);
    char *path = gs_path_join(w->staging, name);
    uint64_t *ids = NULL;
    float *vecs = NULL;
    int dim = 0;
    size_t n = 0;
    if (gs_path_exists(path) && gs_vecfile_read(path, &dim, &n, &ids, &vecs) == GS_OK &&
        dim == w->dim && n > 0) {
        r->ix = gs_xcalloc(n, sizeof *r->ix);
        for (size_t i = 0; i < n; i++)
            r->ix[i] = (idrow_t){.id = ids[i], .row = (uint32_t)i};
        qsort(r->ix, n, sizeof *r->ix, by_id);
        r->vecs = vecs;
        r->dim = dim;
        r->n = n;
        vecs = NULL;
    }
    gs_free(ids);
    gs_free(vecs);
    gs_free(path);
}

static const float *reuse_get(const reuse_t *r, uint64_t id)
{
    idrow_t key = {.id = id};
    const idrow_t *hit = r->n ? bsearch(&key, r->ix, r->n, sizeof *r->ix, by_id) : NULL;
    return hit ? r->vecs + (size_t)hit->row * (size_t)r->dim : NULL;
}

static void reuse_free(reuse_t *r)
{
    gs_free(r->ix);
    gs_free(r->vecs);
    memset(r, 0, sizeof *r);
}

// ---- embedding a side -----------------------------------------------------------------------

static gs_err preprocess(gs_chworker_t *w, const uint8_t *rgb, const gs_tile_t *tile, float *out)
{
    size_t need = gs_preprocess_scratch_nbytes(tile->w, tile->h, w->image_size);
    if (need == 0)
        return GS_EINVAL;
    if (need > w->scratch_nbytes) {
        void *s = gs_trymalloc(need);
        if (!s)
            return GS_ENOMEM;
        gs_free(w->scratch);
        w->scratch = s;
        w->scratch_nbytes = need;
    }
    return gs_preprocess_image(rgb, tile->w, tile->h, &w->pcfg, w->scratch, out);
}

// flush: encodes the n tiles waiting in w->pixels into the rows of their cells.
static gs_err flush(gs_chworker_t *w, side_t *s, const uint32_t *cells, int n, float *tmp)
{
    if (n == 0)
        return GS_OK;
    GS_TRY(gs_clip_encode_images(w->clip, w->pixels, n, true, tmp));
    for (int i = 0; i < n; i++)
        memcpy(s->vecs + (size_t)cells[i] * (size_t)w->dim, tmp + (size_t)i * (size_t)w->dim,
               (size_t)w->dim * sizeof(float));
    s->n_encoded += (uint32_t)n;
    return GS_OK;
}

// embed_side: the embedding of every cell of the side that `want` asks for (want NULL: all):
// the stored one for an unwarped tile when there is one, else read + preprocess + encode.
static gs_err embed_side(gs_chworker_t *w, side_t *s, const gs_tile_grid_t *tg,
                         const reuse_t *reuse, const uint8_t *want, gs_scene_problem_t *pr,
                         char *why, size_t why_nbytes)
{
    int64_t n_cells = gs_tile_grid_count(tg);
    size_t plane = (size_t)3 * (size_t)w->image_size * (size_t)w->image_size;
    uint32_t *cells = gs_arena_alloc(w->arena, (size_t)w->batch * sizeof *cells);
    float *tmp = gs_arena_alloc(w->arena, (size_t)w->batch * (size_t)w->dim * sizeof *tmp);
    if (!cells || !tmp)
        return GS_ENOMEM;
    int n_batch = 0;
    gs_err e = GS_OK;
    for (int64_t cell = 0; cell < n_cells && e == GS_OK; cell++) {
        s->ok[cell] = 0;
        if (want && !want[cell])
            continue;
        gs_tile_t tile;
        e = gs_tile_grid_cell(tg, s->src->id, (int)(cell % tg->n_cols), (int)(cell / tg->n_cols),
                              &tile);
        if (e != GS_OK)
            break;
        const float *v = s->warp ? NULL : reuse_get(reuse, tile.id);
        if (v) {
            memcpy(s->vecs + (size_t)cell * (size_t)w->dim, v, (size_t)w->dim * sizeof *v);
            s->ok[cell] = 1;
            s->n_reused++;
            continue;
        }
        double vf = 0;
        e = gs_tile_read_rgb8(s->scene, &tile, w->rgb[0], &vf, pr, why, why_nbytes);
        if (e != GS_OK || vf < w->job->tiling.min_valid_fraction)
            continue;
        e = preprocess(w, w->rgb[0], &tile, w->pixels + (size_t)n_batch * plane);
        s->ok[cell] = 1;
        cells[n_batch++] = (uint32_t)cell;
        if (e == GS_OK && n_batch == w->batch) {
            e = flush(w, s, cells, n_batch, tmp);
            n_batch = 0;
        }
    }
    if (e == GS_OK)
        e = flush(w, s, cells, n_batch, tmp);
    return e;
}

// ---- gating and captions --------------------------------------------------------------------

typedef struct {
    float score;
    uint32_t cell;
} scored_t;

static int by_score_desc(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->cell < y->cell ? -1 : x->cell > y->cell;
}

// n_gated: how many of the n scored cells (sorted by score, best first) get a caption: those
// among the top changes.top_fraction (at least one when the fraction is above 0) with a score
// of at least changes.threshold.
static size_t n_gated(const gs_job_t *job, const scored_t *sc, size_t n)
{
    double f = job->changes.top_fraction;
    if (n == 0 || !(f > 0))
        return 0;
    size_t top = (size_t)ceil(f * (double)n - 1e-9);
    if (top < 1)
        top = 1;
    if (top > n)
        top = n;
    size_t k = 0;
    while (k < top && sc[k].score >= job->changes.threshold)
        k++;
    return k;
}

// caption_cell: the change caption of a cell (both tiles read from the pair grid, the earlier
// one first) into the arena, and its text embedding into vec.
static gs_err caption_cell(gs_chworker_t *w, side_t *sb, side_t *sa, const gs_tile_grid_t *tg,
                           uint32_t cell, const char **out_text, float *vec, gs_scene_problem_t *pr,
                           char *why, size_t why_nbytes)
{
    side_t *sides[2] = {sb, sa};
    gs_tile_t tile;
    for (int k = 0; k < 2; k++) {
        double vf;
        GS_TRY(gs_tile_grid_cell(tg, sides[k]->src->id, (int)(cell % (uint32_t)tg->n_cols),
                                 (int)(cell / (uint32_t)tg->n_cols), &tile));
        GS_TRY(gs_tile_read_rgb8(sides[k]->scene, &tile, w->rgb[k], &vf, pr, why, why_nbytes));
    }
    gs_llava_gen_t gen = gs_llava_gen_defaults();
    gen.max_new_tokens = w->job->captioner.max_tokens;
    gs_llava_image_t imgs[2] = {{.rgb = w->rgb[0], .w = tile.w, .h = tile.h},
                                {.rgb = w->rgb[1], .w = tile.w, .h = tile.h}};
    gs_buf_t text;
    gs_buf_init(&text, GS_REC_STR_MAX);
    int n = 0;
    gs_err e = gs_llava_caption(w->llava, imgs, 2, w->job->changes.prompt, false, &gen, w->cap_ids,
                                w->job->captioner.max_tokens, &n, &text);
    const char *s = NULL;
    if (e == GS_OK) {
        s = gs_arena_strdup(w->arena, text.len ? text.data : "");
        while (s && (*s == ' ' || *s == '\n'))
            s++;
        e = s ? GS_OK : GS_ENOMEM;
    }
    gs_buf_cleanup(&text);
    if (e == GS_OK)
        e = gs_clip_encode_texts(w->clip, &s, 1, true, vec);
    if (e != GS_OK && !*why)
        snprintf(why, why_nbytes, "could not caption cell %u: %s", cell, gs_strerror(e));
    *out_text = s;
    return e;
}

// ---- the pair task --------------------------------------------------------------------------

// The outputs of a pair task, built in the task arena (values in one buffer).
typedef struct {
    size_t n_records, n_vectors;
    uint8_t *keys;     // (n_records, GS_WARP_KEY_NBYTES)
    size_t *val_off;   // (n_records + 1) offsets into vals
    gs_buf_t vals;     // encoded gs_change_rec_t values
    uint64_t *vec_ids; // (n_vectors)
    float *vecs;       // (n_vectors, dim)
} out_t;

// records: one change record per scored cell (in cell order); captions for the gated ones.
static gs_err records(gs_chworker_t *w, side_t *sb, side_t *sa, const gs_warp_grid_t *grid,
                      const gs_tile_grid_t *tg, const scored_t *sc, size_t n_scored, size_t n_cap,
                      out_t *o, gs_scene_problem_t *pr, char *why, size_t why_nbytes)
{
    int64_t n_cells = gs_tile_grid_count(tg);
    const char **caption = gs_arena_calloc(w->arena, (size_t)n_cells, sizeof *caption);
    float *score = gs_arena_calloc(w->arena, (size_t)n_cells, sizeof *score);
    uint8_t *scored = gs_arena_calloc(w->arena, (size_t)n_cells, 1);
    o->keys = gs_arena_alloc(w->arena, (n_scored ? n_scored : 1) * GS_WARP_KEY_NBYTES);
    o->val_off = gs_arena_alloc(w->arena, (n_scored + 1) * sizeof *o->val_off);
    o->vec_ids = gs_arena_alloc(w->arena, (n_cap ? n_cap : 1) * sizeof *o->vec_ids);
    o->vecs = gs_arena_alloc(w->arena, (n_cap ? n_cap : 1) * (size_t)w->dim * sizeof *o->vecs);
    uint32_t *cap_cell = gs_arena_alloc(w->arena, (n_cap ? n_cap : 1) * sizeof *cap_cell);
    if (!caption || !score || !scored || !o->keys || !o->val_off || !o->vec_ids || !o->vecs ||
        !cap_cell)
        return GS_ENOMEM;
    for (size_t i = 0; i < n_scored; i++) {
        score[sc[i].cell] = sc[i].score;
        scored[sc[i].cell] = 1;
    }
    for (size_t i = 0; i < n_cap; i++) {
        GS_TRY(caption_cell(w, sb, sa, tg, sc[i].cell, &caption[sc[i].cell],
                            o->vecs + i * (size_t)w->dim, pr, why, why_nbytes));
        cap_cell[i] = sc[i].cell;
    }
    const gs_scene_info_t *B = sb->src, *A = sa->src;
    for (int64_t cell = 0; cell < n_cells; cell++) {
        if (!scored[cell])
            continue;
        int col = (int)(cell % tg->n_cols), row = (int)(cell / tg->n_cols);
        gs_tile_t tb, ta;
        GS_TRY(gs_tile_grid_cell(tg, B->id, col, row, &tb));
        GS_TRY(gs_tile_grid_cell(tg, A->id, col, row, &ta));
        gs_warp_key_t k = {.location = gs_warp_location(grid, tg, col, row),
                           .before_time = B->has_time ? B->time : INT64_MIN,
                           .after_time = A->has_time ? A->time : INT64_MIN,
                           .before_scene = B->id,
                           .after_scene = A->id};
        if (gs_tile_bounds(sa->scene, &ta, k.bounds) != GS_OK)
            memcpy(k.bounds, gs_scene_info(sa->scene)->bbox, sizeof k.bounds);
        uint8_t *key = o->keys + o->n_records * GS_WARP_KEY_NBYTES;
        gs_warp_key_encode(&k, key);
        uint64_t pair_id = gs_warp_pair_id(key);
        gs_change_rec_t rec = {.pair_id = pair_id,
                               .before_tile = tb.id,
                               .after_tile = ta.id,
                               .before_scene = B->id,
                               .after_scene = A->id,
                               .before_time = k.before_time,
                               .after_time = k.after_time,
                               .score = score[cell],
                               .caption = caption[cell] ? caption[cell] : "",
                               .model_id = w->model_id};
        o->val_off[o->n_records] = o->vals.len;
        GS_TRY(gs_rec_encode_change(&rec, &o->vals));
        o->n_records++;
        for (size_t i = 0; i < n_cap; i++)
            if (cap_cell[i] == (uint32_t)cell)
                o->vec_ids[i] = pair_id;
    }
    o->val_off[o->n_records] = o->vals.len;
    o->n_vectors = n_cap;
    return GS_OK;
}

// write_shard: the task's change shard into staging; fills the result.
static gs_err write_shard(gs_chworker_t *w, const Geoscribe__Task *t, const out_t *o,
                          uint32_t n_cells, Geoscribe__TaskResult *r, gs_arena_t *msg, char *why,
                          size_t why_nbytes)
{
    size_t n = o->n_records ? o->n_records : 1;
    const uint8_t **keys = gs_arena_alloc(w->arena, n * sizeof *keys);
    const uint8_t **vals = gs_arena_alloc(w->arena, n * sizeof *vals);
    uint32_t *kn = gs_arena_alloc(w->arena, n * sizeof *kn);
    uint32_t *vn = gs_arena_alloc(w->arena, n * sizeof *vn);
    if (!keys || !vals || !kn || !vn)
        return GS_ENOMEM;
    for (size_t i = 0; i < o->n_records; i++) {
        keys[i] = o->keys + i * GS_WARP_KEY_NBYTES;
        kn[i] = GS_WARP_KEY_NBYTES;
        vals[i] = (const uint8_t *)o->vals.data + o->val_off[i];
        vn[i] = (uint32_t)(o->val_off[i + 1] - o->val_off[i]);
    }
    gs_warp_shard_data_t d = {.h = {.task_id = t->task_id,
                                    .settings_hash = w->settings_hash,
                                    .dim = o->n_vectors ? w->dim : 0,
                                    .n_records = (uint32_t)o->n_records,
                                    .n_vectors = (uint32_t)o->n_vectors,
                                    .n_cells = n_cells,
                                    .n_skipped = n_cells - (uint32_t)o->n_records},
                              .keys = keys,
                              .key_nbytes = kn,
                              .vals = vals,
                              .val_nbytes = vn,
                              .vec_ids = o->vec_ids,
                              .vecs = o->vecs};
    char name[48], hash[17] = "";
    snprintf(name, sizeof name, "%016llx.chshard", (unsigned long long)t->task_id);
    char *path = gs_path_join(w->staging, name);
    gs_err e = gs_warp_shard_write(path, &d, hash);
    gs_free(path);
    if (e != GS_OK) {
        snprintf(why, why_nbytes, "could not write the change shard \"%s/%s\": %s", w->staging,
                 name, gs_strerror(e));
        return e;
    }
    char rel[64];
    snprintf(rel, sizeof rel, "staging/%s", name);
    r->shard_path = gs_arena_strdup(msg, rel);
    r->shard_hash = gs_arena_strdup(msg, hash);
    r->n_tiles = (uint32_t)o->n_records;
    r->n_skipped = n_cells - (uint32_t)o->n_records;
    return r->shard_path && r->shard_hash ? GS_OK : GS_ENOMEM;
}

// score: cosine distances of the cells embedded on both sides, best first.
static size_t score(const gs_chworker_t *w, const side_t *sb, const side_t *sa, int64_t n_cells,
                    scored_t *out)
{
    size_t n = 0;
    for (int64_t c = 0; c < n_cells; c++) {
        if (!sb->ok[c] || !sa->ok[c])
            continue;
        const float *x = sb->vecs + (size_t)c * (size_t)w->dim;
        const float *y = sa->vecs + (size_t)c * (size_t)w->dim;
        double dot = 0;
        for (int i = 0; i < w->dim; i++)
            dot += (double)x[i] * y[i];
        double d = 1.0 - dot;
        out[n++] = (scored_t){.score = (float)(d < 0 ? 0 : d > 2 ? 2 : d), .cell = (uint32_t)c};
    }
    qsort(out, n, sizeof *out, by_score_desc);
    return n;
}

static void pair_task(gs_chworker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg)
{
    const gs_job_t *job = w->job;
    char why[1024] = "";
    gs_scene_problem_t pr = GS_SCENE_OK;
    side_t sb = {0}, sa = {0};
    gs_warp_grid_t grid = {0};
    reuse_t reuse = {0};
    out_t o = {0};
    gs_buf_init(&o.vals, (size_t)1 << 30);
    gs_arena_reset(w->arena);
    gs_err e = t->n_uris == 2 ? GS_OK : GS_EFORMAT;
    if (e != GS_OK)
        snprintf(why, sizeof why, "a pair task must name two scenes");
    if (e == GS_OK)
        e = open_scene(job, t->uris[0], &sb.own, &pr, why, sizeof why);
    if (e == GS_OK)
        e = open_scene(job, t->uris[1], &sa.own, &pr, why, sizeof why);
    if (e == GS_OK)
        e = gs_warp_pair_grid(job, sb.own, sa.own, &grid, why, sizeof why);
    if (e == GS_OK)
        e = side_place(job, &sa, &grid, &pr, why, sizeof why);
    if (e == GS_OK)
        e = side_place(job, &sb, &grid, &pr, why, sizeof why);
    gs_tile_grid_t tg;
    if (e == GS_OK)
        e = gs_tile_grid_init(&tg, grid.width, grid.height, job->tiling.size, job->tiling.overlap,
                              job->tiling.edge);
    int64_t n_cells = e == GS_OK ? gs_tile_grid_count(&tg) : 0;
    size_t vec_nbytes = (size_t)n_cells * (size_t)w->dim * sizeof(float);
    scored_t *sc = NULL;
    if (e == GS_OK) {
        sb.vecs = gs_trymalloc(vec_nbytes);
        sa.vecs = gs_trymalloc(vec_nbytes);
        sb.ok = gs_arena_calloc(w->arena, (size_t)n_cells, 1);
        sa.ok = gs_arena_calloc(w->arena, (size_t)n_cells, 1);
        sc = gs_arena_alloc(w->arena, (size_t)n_cells * sizeof *sc);
        if (!sb.vecs || !sa.vecs || !sb.ok || !sa.ok || !sc)
            e = GS_ENOMEM;
    }
    if (e == GS_OK) {
        reuse_load(w, t->task_id, &reuse);
        e = embed_side(w, &sb, &tg, &reuse, NULL, &pr, why, sizeof why);
    }
    if (e == GS_OK)
        e = embed_side(w, &sa, &tg, &reuse, sb.ok, &pr, why, sizeof why);
    size_t n_scored = 0, n_cap = 0;
    if (e == GS_OK) {
        n_scored = score(w, &sb, &sa, n_cells, sc);
        n_cap = w->llava ? n_gated(job, sc, n_scored) : 0;
        e = records(w, &sb, &sa, &grid, &tg, sc, n_scored, n_cap, &o, &pr, why, sizeof why);
    }
    if (e == GS_OK)
        e = write_shard(w, t, &o, (uint32_t)n_cells, r, msg, why, sizeof why);
    if (e == GS_OK) {
        GS_LOG_DEBUG("task=%016llx pair %s -> %s: %lld cells, %zu scored, %zu captioned, "
                     "embeddings reused %u+%u encoded %u+%u%s%s",
                     (unsigned long long)t->task_id, sb.src->uri, sa.src->uri, (long long)n_cells,
                     n_scored, n_cap, sb.n_reused, sa.n_reused, sb.n_encoded, sa.n_encoded,
                     sb.warp ? " (earlier warped)" : "", sa.warp ? " (later warped)" : "");
    } else {
        if (!*why)
            snprintf(why, sizeof why, "pair task %016llx (\"%s\", \"%s\"): %s",
                     (unsigned long long)t->task_id, t->n_uris > 0 ? t->uris[0] : "",
                     t->n_uris > 1 ? t->uris[1] : "", gs_strerror(e));
        GS_LOG_WARN("task=%016llx failed: %s", (unsigned long long)t->task_id, why);
        gs__serve_fail(r, msg, e, pr, why);
    }
    if (w->test_delay_ms > 0) {
        struct timespec ts = {w->test_delay_ms / 1000, (long)(w->test_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    gs_buf_cleanup(&o.vals);
    reuse_free(&reuse);
    gs_free(sb.vecs);
    gs_free(sa.vecs);
    side_close(&sb);
    side_close(&sa);
    gs_warp_grid_cleanup(&grid);
}

// ---- messages -------------------------------------------------------------------------------

void gs_chworker_request(gs_chworker_t *self, int rank, gs_err status, const char *message,
                         void **out, size_t *out_nbytes)
{
    (void)self;
    gs__serve_request(rank, status, message, out, out_nbytes);
}

// run_task: one task of a batch: pair tasks only.
static void run_task(void *ud, const Geoscribe__Task *t, Geoscribe__TaskResult *res,
                     gs_arena_t *msg)
{
    if (t->kind == GS_WARP_TASK_KIND) {
        pair_task(ud, t, res, msg);
    } else {
        res->status = GS_EUNSUPPORTED;
        res->message = (char *)"not a pair task";
    }
}

gs_err gs_chworker_handle(gs_chworker_t *self, int rank, const void *batch, size_t nbytes,
                          void **out_req, size_t *out_nbytes, bool *out_done, unsigned *out_wait_ms)
{
    return gs__serve_handle(self, self->started, run_task, rank, batch, nbytes, out_req, out_nbytes,
                            out_done, out_wait_ms);
}

static gs_err handle(void *self, int rank, const void *batch, size_t nbytes, void **out_req,
                     size_t *out_nbytes, bool *out_done, unsigned *out_wait_ms)
{
    return gs_chworker_handle(self, rank, batch, nbytes, out_req, out_nbytes, out_done,
                              out_wait_ms);
}

gs_err gs_chworker_serve_mpi(gs_chworker_t *self, int rank, gs_err start_status,
                             const char *message)
{
    return gs__serve_mpi(self, handle, rank, start_status, message);
}

void gs_chworker_close(gs_chworker_t **p)
{
    if (!p || !*p)
        return;
    gs_chworker_t *w = *p;
    gs_clip_close(&w->clip);
    gs_llava_close(&w->llava);
    gs_free(w->staging);
    gs_free(w->rgb[0]);
    gs_free(w->rgb[1]);
    gs_free(w->scratch);
    gs_free(w->pixels);
    gs_free(w->cap_ids);
    gs_arena_destroy(&w->arena);
    gs_free(w);
    *p = NULL;
}
