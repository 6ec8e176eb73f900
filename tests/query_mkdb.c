// Builds a small real output for the query tests (tests/query_mkdb.h) through index/ and model/.
#include "query_mkdb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/layout.h"
#include "index/records.h"
#include "index/vindex.h"
#include "jobs/raster.h"
#include "model/clip.h"
#include "model/preprocess.h"

uint64_t qmk_tile_id(size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 32;
    return (x & 0x7FFFFFFFFFFFFFFFULL) | 1;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_normal(uint64_t *s)
{
    double u = ((rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

// The scenes: real rasters (thumbnails read them), times 45 days apart; the last has no time.
static const struct {
    const char *rel;
    int w, h;
} SCENES[QMK_N_SCENES] = {{"data/scenes/rasterio/RGB.byte.tif", 791, 718},
                          {"data/scenes/rasterio/cogeo.tif", 1024, 1024},
                          {"data/scenes/rasterio/goes.tif", 542, 542},
                          {"fixtures/openclip_tiny/image_0.png", 64, 48},
                          {"fixtures/openclip_tiny/image_1.png", 41, 27},
                          {"fixtures/openclip_tiny/image_3.png", 96, 96}};
#define T0 1577836800 // 2020-01-01T00:00:00Z

static const char *ADJ[] = {"green", "dry", "dense", "flooded", "bare"};
static const char *THING[] = {"river", "airport", "farmland", "forest", "town", "harbor"};
static const char *PLACE[] = {"hills", "coast", "road", "lake"};

static int encode_fixture_images(gs_clip_t *m, const char *shared, float *out)
{
    int S = gs_clip_image_size(m);
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    float *chw = gs_xmalloc((size_t)3 * S * S * sizeof *chw);
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fixtures/openclip_tiny/image_%d.png", shared, i);
        uint8_t *rgb = NULL;
        int w, h;
        if (gs_raster_read_rgb8(path, &rgb, &w, &h) != GS_OK) {
            rc = 1;
            break;
        }
        void *scratch = gs_xmalloc(gs_preprocess_scratch_nbytes(w, h, S) + 1);
        if (gs_preprocess_image(rgb, w, h, &pc, scratch, chw) != GS_OK ||
            gs_clip_encode_images(m, chw, 1, true, out + (size_t)i * gs_clip_dim(m)) != GS_OK)
            rc = 1;
        gs_free(scratch);
        gs_free(rgb);
    }
    gs_free(chw);
    return rc;
}

static void fill_truth(const qmk_opts_t *o, qmk_truth_t *t, int dim)
{
    size_t n = o->n_tiles;
    t->n = n;
    t->dim = dim;
    t->ids = gs_xcalloc(n, sizeof *t->ids);
    t->vecs = gs_xcalloc(n * dim, sizeof *t->vecs);
    t->scene_of = gs_xcalloc(n, sizeof *t->scene_of);
    t->bounds = gs_xcalloc(n * 4, sizeof *t->bounds);
    t->time = gs_xcalloc(n, sizeof *t->time);
    t->has_time = gs_xcalloc(n, sizeof *t->has_time);
    t->caption = gs_xcalloc(n, sizeof *t->caption);
    for (int s = 0; s < QMK_N_SCENES; s++) {
        t->scene_ids[s] = 1000 + (uint64_t)s * 7919;
        t->scene_uris[s] = gs_xasprintf("%s/%s", o->shared, SCENES[s].rel);
    }
    uint64_t rng = 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) {
        int s = (int)(i % QMK_N_SCENES);
        t->ids[i] = qmk_tile_id(i);
        t->scene_of[i] = t->scene_ids[s];
        double *b = t->bounds + 4 * i;
        b[0] = 10.0 + (double)(i % 50) * 0.04 + 0.001 * s;
        b[1] = 45.0 + (double)(i / 50 % 40) * 0.025;
        b[2] = b[0] + 0.04;
        b[3] = b[1] + 0.025;
        t->has_time[i] = s != QMK_N_SCENES - 1;
        t->time[i] = t->has_time[i] ? T0 + (int64_t)s * 45 * 86400 + s * 3600 : 0;
        if (i % 3 != 2)
            t->caption[i] =
                gs_xasprintf("a %s %s near the %s", ADJ[i % 5], THING[i / 3 % 6], PLACE[i / 7 % 4]);
        float *v = t->vecs + i * dim;
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            v[j] = rng_normal(&rng);
            norm += (double)v[j] * v[j];
        }
        for (int j = 0; j < dim; j++)
            v[j] = (float)(v[j] / sqrt(norm));
    }
}

static gs_err write_store(const qmk_opts_t *o, const qmk_truth_t *t, const char *store_path)
{
    gs_capstore_opts_t so = {.create_if_missing = true};
    gs_capstore_t *st = NULL;
    GS_TRY(gs_capstore_open(store_path, &so, &st));
    gs_capstore_batch_t *b = gs_capstore_batch_new(st);
    gs_err e = GS_OK;
    for (int s = 0; s < QMK_N_SCENES && e == GS_OK; s++) {
        char iso[32] = "";
        int64_t tt = T0 + (int64_t)s * 45 * 86400 + s * 3600;
        if (s != QMK_N_SCENES - 1) {
            time_t tx = (time_t)tt;
            struct tm tm;
            gmtime_r(&tx, &tm);
            strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        gs_scene_rec_t r = {.scene_id = t->scene_ids[s],
                            .uri = t->scene_uris[s],
                            .sensor = "unknown",
                            .time_unix = s != QMK_N_SCENES - 1 ? tt : 0,
                            .time_iso = iso,
                            .crs = "EPSG:4326",
                            .width = SCENES[s].w,
                            .height = SCENES[s].h,
                            .bbox = {10, 45, 12.1, 46},
                            .bands = "1,2,3",
                            .checksum = "test"};
        e = gs_capstore_batch_put_scene(b, &r);
    }
    for (size_t i = 0; i < t->n && e == GS_OK; i++) {
        int s = (int)(i % QMK_N_SCENES), W = SCENES[s].w, H = SCENES[s].h;
        int tw = W < 64 ? W : 64, th = H < 64 ? H : 64;
        gs_tile_rec_t r = {.tile_id = t->ids[i],
                           .scene_id = t->scene_of[i],
                           .x = (int32_t)(i * 37 % (size_t)(W - tw + 1)),
                           .y = (int32_t)(i * 53 % (size_t)(H - th + 1)),
                           .w = tw,
                           .h = th,
                           .time_unix = t->time[i],
                           .valid_frac = 1.0f};
        memcpy(r.bounds, t->bounds + 4 * i, sizeof r.bounds);
        e = gs_capstore_batch_put_tile(b, &r);
        if (e == GS_OK && t->caption[i]) {
            gs_caption_rec_t c = {.tile_id = t->ids[i],
                                  .text = t->caption[i],
                                  .model_id = "test-captioner",
                                  .prompt = "describe"};
            e = gs_capstore_batch_put_caption(b, &c);
        }
    }
    char dim[16];
    snprintf(dim, sizeof dim, "%d", t->dim);
    const char *kv[][2] = {{"encoder.model_id", t->model_id},
                           {"encoder.model", t->model_dir},
                           {"encoder.vocab", t->vocab},
                           {"encoder.dim", dim},
                           {"index.type", o->index}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && e == GS_OK; i++)
        e = gs_capstore_batch_meta_set(b, kv[i][0], kv[i][1]);
    if (e == GS_OK)
        e = gs_capstore_write(st, b, true);
    gs_capstore_batch_destroy(&b);
    gs_capstore_close(&st);
    return e;
}

static gs_err write_index(const qmk_opts_t *o, const qmk_truth_t *t, const char *path)
{
    gs_vindex_opts_t vo = {.dim = t->dim, .type = o->index, .refine = o->refine, .nprobe = 4};
    gs_vindex_t *vi = NULL;
    GS_TRY(gs_vindex_new(&vo, &vi));
    gs_err e = gs_vindex_is_trained(vi) ? GS_OK : gs_vindex_train(vi, t->n, t->vecs);
    if (e == GS_OK)
        e = gs_vindex_add(vi, t->n, t->vecs, t->ids);
    if (e == GS_OK)
        e = gs_vindex_write(vi, path);
    gs_vindex_destroy(&vi);
    return e;
}

int qmk_make(const qmk_opts_t *o, qmk_truth_t *truth)
{
    qmk_truth_t local;
    qmk_truth_t *t = truth ? truth : &local;
    memset(t, 0, sizeof *t);
    snprintf(t->model_dir, sizeof t->model_dir, "%s/fixtures/openclip_tiny", o->shared);
    snprintf(t->vocab, sizeof t->vocab, "%s/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz",
             o->shared);
    gs_clip_opts_t co = {.vocab_path = t->vocab, .n_threads = 1, .max_batch = 1};
    gs_clip_t *m = NULL;
    if (gs_clip_open(t->model_dir, &co, &m) != GS_OK) {
        fprintf(stderr, "qmk: could not open the fixture model %s\n", t->model_dir);
        return 1;
    }
    snprintf(t->model_id, sizeof t->model_id, "%s", gs_clip_model_id(m));
    fill_truth(o, t, gs_clip_dim(m));
    int rc = o->n_tiles >= 4 ? encode_fixture_images(m, o->shared, t->vecs) : 0;
    gs_clip_close(&m);
    if (o->truth_only) {
        if (!truth)
            qmk_free(t);
        return rc;
    }
    char *store = gs_path_join(o->out, GS_LAYOUT_STORE);
    char *index = gs_path_join(o->out, GS_LAYOUT_INDEX);
    char *idir = gs_xstrdup(index);
    *strrchr(idir, '/') = '\0';
    gs_err e = rc ? GS_EIO : gs_mkdir_p(idir);
    if (e == GS_OK)
        e = write_store(o, t, store);
    if (e == GS_OK)
        e = write_index(o, t, index);
    if (e != GS_OK) {
        fprintf(stderr, "qmk: could not write %s: %s\n", o->out, gs_strerror(e));
        rc = 1;
    }
    gs_free(store);
    gs_free(idir);
    gs_free(index);
    if (!truth)
        qmk_free(t);
    return rc;
}

void qmk_free(qmk_truth_t *t)
{
    for (size_t i = 0; t->caption && i < t->n; i++)
        gs_free(t->caption[i]);
    for (int s = 0; s < QMK_N_SCENES; s++)
        gs_free(t->scene_uris[s]);
    gs_free(t->ids);
    gs_free(t->vecs);
    gs_free(t->scene_of);
    gs_free(t->bounds);
    gs_free(t->time);
    gs_free(t->has_time);
    gs_free(t->caption);
    memset(t, 0, sizeof *t);
}
