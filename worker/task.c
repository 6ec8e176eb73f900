// The two kinds of ingest task a worker runs. A probe opens a scene (and checks it) and sends
// back its scene record, or the reason to quarantine it. A tile task reads the windows of its
// cells one at a time (never the whole scene), skips cells under the minimum valid fraction,
// preprocesses the kept tiles into a batch, encodes each full batch, and writes the shard.
#define GS_LOG_MODULE "worker"
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "index/shard.h"
#include "jobs/tiles.h"
#include "worker/ingest_int.h"
#include "worker/serve_int.h"

// ---- scenes ---------------------------------------------------------------------------------

// scene_get: the open scene of `uri` (w->scene), from the cache or opened and checked now,
// replacing the least recently used one.
static gs_err scene_get(gs_worker_t *w, const char *uri, gs_scene_problem_t *problem, char *why,
                        size_t why_nbytes)
{
    *problem = GS_SCENE_OK;
    int lru = 0;
    for (int i = 0; i < GS__SCENE_CACHE; i++) {
        if (w->scenes[i].scene && strcmp(w->scenes[i].uri, uri) == 0) {
            w->scenes[i].used = ++w->n_scene_uses;
            w->scene = w->scenes[i].scene;
            return GS_OK;
        }
        if (w->scenes[i].used < w->scenes[lru].used)
            lru = i;
    }
    w->scene = NULL;
    gs_scene_close(&w->scenes[lru].scene);
    GS_FREE(w->scenes[lru].uri);
    w->scenes[lru].used = 0;
    gs_scene_t *s = NULL;
    gs_err e = gs_scene_open(w->job, uri, &s, problem, why, why_nbytes);
    if (e == GS_OK)
        e = gs_scene_check(s, problem, why, why_nbytes);
    if (e != GS_OK) {
        gs_scene_close(&s);
        if (*problem == GS_SCENE_OK)
            snprintf(why, why_nbytes, "could not open scene \"%s\": %s", uri, gs_strerror(e));
        return e;
    }
    w->scenes[lru].scene = s;
    w->scenes[lru].uri = gs_xstrdup(uri);
    w->scenes[lru].used = ++w->n_scene_uses;
    w->scene = s;
    return GS_OK;
}

// scene_drop: closes the current scene (found bad: a later task must reopen it).
static void scene_drop(gs_worker_t *w)
{
    for (int i = 0; i < GS__SCENE_CACHE; i++)
        if (w->scenes[i].scene && w->scenes[i].scene == w->scene) {
            gs_scene_close(&w->scenes[i].scene);
            GS_FREE(w->scenes[i].uri);
            w->scenes[i].used = 0;
        }
    w->scene = NULL;
}

static void checksum_text(const gs_worker_t *w, const gs_scene_info_t *in, char out[40])
{
    snprintf(out, 40, "%s:%016llx",
             w->job->scenes.checksum == GS_JOB_CHECKSUM_FULL ? "full" : "quick",
             (unsigned long long)in->checksum);
}

// crs_text: "EPSG:<code>" from the WKT's last (outermost) authority, else the WKT itself.
static const char *crs_text(const char *wkt, char *buf, size_t n)
{
    const char *p = NULL, *q = wkt;
    while ((q = strstr(q, "AUTHORITY[\"EPSG\",\"")) != NULL)
        p = q++;
    if (p) {
        p += strlen("AUTHORITY[\"EPSG\",\"");
        size_t len = strspn(p, "0123456789");
        if (len > 0 && len < 12 && p[len] == '"') {
            snprintf(buf, n, "EPSG:%.*s", (int)len, p);
            return buf;
        }
    }
    return wkt;
}

// sensor_of: a guess from the file name for display and filters; "unknown" otherwise.
static const char *sensor_of(const char *uri)
{
    const char *base = strrchr(uri, '/');
    base = base ? base + 1 : uri;
    if (strncasecmp(base, "LC08", 4) == 0 || strncasecmp(base, "LC8", 3) == 0)
        return "landsat-8";
    if (strncasecmp(base, "LC09", 4) == 0)
        return "landsat-9";
    if (strncasecmp(base, "LE07", 4) == 0 || strncasecmp(base, "LE7", 3) == 0)
        return "landsat-7";
    if (strncasecmp(base, "S2A", 3) == 0 || strncasecmp(base, "S2B", 3) == 0)
        return "sentinel-2";
    if (strncasecmp(base, "S1A", 3) == 0 || strncasecmp(base, "S1B", 3) == 0)
        return "sentinel-1";
    return "unknown";
}

static void bands_text(const gs_scene_info_t *in, bool sar, char *out, size_t n)
{
    const char *b[3] = {"", "", ""};
    for (int i = 0; i < in->n_composite_bands && i < 3; i++)
        b[i] = in->band_names[in->composite_bands[i]];
    if (sar)
        snprintf(out, n, "%s,%s,%s/%s", b[0], b[1], b[0], b[1]);
    else if (in->n_composite_bands == 1)
        snprintf(out, n, "%s", b[0]);
    else
        snprintf(out, n, "%s,%s,%s", b[0], b[1], b[2]);
}

// caption_cells: for captioner.select per_scene:N, the first N kept cells of the open scene in
// grid order (reading windows until N are found), reported with the probe so that the plan
// can tell each tile task which of its cells to caption.
static gs_err caption_cells(gs_worker_t *w, Geoscribe__TaskResult *r, gs_arena_t *msg, char *why,
                            size_t why_nbytes, gs_scene_problem_t *problem)
{
    const gs_job_t *job = w->job;
    const gs_scene_info_t *in = gs_scene_info(w->scene);
    gs_tile_grid_t grid;
    GS_TRY(gs_tile_grid_init(&grid, in->width, in->height, job->tiling.size, job->tiling.overlap,
                             job->tiling.edge));
    int64_t n_cells = gs_tile_grid_count(&grid);
    uint32_t want = (uint32_t)job->captioner.per_scene;
    r->caption_cells = gs_arena_alloc(msg, (size_t)want * sizeof *r->caption_cells);
    if (!r->caption_cells)
        return GS_ENOMEM;
    for (int64_t cell = 0; cell < n_cells && r->n_caption_cells < want; cell++) {
        gs_tile_t tile;
        double vf = 0;
        GS_TRY(gs_tile_grid_cell(&grid, in->id, (int)(cell % grid.n_cols),
                                 (int)(cell / grid.n_cols), &tile));
        GS_TRY(gs_tile_read_rgb8(w->scene, &tile, w->rgb, &vf, problem, why, why_nbytes));
        if (vf >= job->tiling.min_valid_fraction)
            r->caption_cells[r->n_caption_cells++] = (uint32_t)cell;
    }
    return GS_OK;
}

void gs__worker_probe(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg)
{
    char why[1024] = "";
    gs_scene_problem_t problem;
    if (t->n_uris != 1) {
        gs__serve_fail(r, msg, GS_EFORMAT, 0, "a probe task names no scene");
        return;
    }
    gs_err e = scene_get(w, t->uris[0], &problem, why, sizeof why);
    if (e != GS_OK) {
        gs__serve_fail(r, msg, e, problem, why);
        return;
    }
    const gs_scene_info_t *in = gs_scene_info(w->scene);
    char crs[32], bands[256], sum[40], iso[32] = "";
    if (in->has_time) {
        time_t tt = (time_t)in->time;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    checksum_text(w, in, sum);
    bands_text(in, w->job->composite.mode == GS_JOB_COMPOSITE_SAR, bands, sizeof bands);
    gs_scene_rec_t rec = {.scene_id = in->id,
                          .uri = in->uri,
                          .sensor = sensor_of(in->uri),
                          .time_unix = in->has_time ? in->time : 0,
                          .time_iso = iso,
                          .crs = crs_text(in->crs_wkt, crs, sizeof crs),
                          .width = in->width,
                          .height = in->height,
                          .n_footprint = (uint32_t)in->n_footprint,
                          .footprint = in->footprint,
                          .bands = bands,
                          .checksum = sum};
    memcpy(rec.bbox, in->bbox, sizeof rec.bbox);
    if (w->llava && w->job->captioner.select == GS_JOB_SELECT_PER_SCENE &&
        (e = caption_cells(w, r, msg, why, sizeof why, &problem)) != GS_OK) {
        gs__serve_fail(r, msg, e, problem, why);
        return;
    }
    gs_buf_t b;
    gs_buf_init(&b, (size_t)16 << 20);
    e = gs_rec_encode_scene(&rec, &b);
    if (e == GS_OK && (r->scene_record.data = gs_arena_alloc(msg, b.len ? b.len : 1)) != NULL) {
        memcpy(r->scene_record.data, b.data, b.len);
        r->scene_record.len = b.len;
    } else {
        gs__serve_fail(r, msg, e != GS_OK ? e : GS_ENOMEM, 0, "could not encode the scene record");
    }
    gs_buf_cleanup(&b);
}

// ---- tiles ----------------------------------------------------------------------------------

// caption_selected: whether kept tile `id` at `cell` gets a caption: per_scene from the cells
// its probe chose (the task carries them), all and sample:F from the tile alone.
bool gs__worker_caption_selected(const gs_worker_t *w, const Geoscribe__Task *t, uint32_t cell,
                                 uint64_t id)
{
    if (w->job->captioner.select != GS_JOB_SELECT_PER_SCENE)
        return gs_job_caption_selects(w->job, id, 0) != 0;
    for (size_t i = 0; i < t->n_caption_cells; i++)
        if (t->caption_cells[i] == cell)
            return true;
    return false;
}

// gs__worker_caption: the captioner's text for a tile (greedy, captioner.max_tokens at most).
gs_err gs__worker_caption(gs_worker_t *w, const uint8_t *rgb, int tw, int th, uint64_t id,
                          gs_caption_rec_t *out, char *why, size_t why_nbytes)
{
    gs_llava_gen_t gen = gs_llava_gen_defaults();
    gen.max_new_tokens = w->job->captioner.max_tokens;
    gs_llava_image_t img = {.rgb = rgb, .w = tw, .h = th};
    gs_buf_t text;
    gs_buf_init(&text, GS_REC_STR_MAX);
    int n = 0;
    gs_err e = gs_llava_caption(w->llava, &img, 1, w->job->captioner.prompt, false, &gen,
                                w->cap_ids, w->job->captioner.max_tokens, &n, &text);
    if (e == GS_OK) {
        char *s = gs_arena_strdup(w->arena, text.len ? text.data : "");
        // captions are trimmed of the blanks decoders leave around them
        while (s && (*s == ' ' || *s == '\n'))
            s++;
        *out = (gs_caption_rec_t){.tile_id = id,
                                  .text = s,
                                  .model_id = w->captioner_id,
                                  .prompt = w->job->captioner.prompt};
        e = s ? GS_OK : GS_ENOMEM;
    } else {
        snprintf(why, why_nbytes, "could not caption tile %016llx: %s", (unsigned long long)id,
                 gs_strerror(e));
    }
    gs_buf_cleanup(&text);
    return e;
}

// check_scene: the scene a tile task runs on is the one its probe recorded.
static gs_err check_scene(gs_worker_t *w, const Geoscribe__Task *t, char *why, size_t n)
{
    const gs_scene_info_t *in = gs_scene_info(w->scene);
    char sum[40];
    checksum_text(w, in, sum);
    if (strcmp(sum, t->checksum) != 0 || in->width != t->width || in->height != t->height) {
        snprintf(why, n,
                 "scene \"%s\" changed since it was probed (checksum %s, %dx%d; "
                 "recorded %s, %dx%d)",
                 in->uri, sum, in->width, in->height, t->checksum, t->width, t->height);
        return GS_EMISMATCH;
    }
    return GS_OK;
}

void gs__worker_tiles(gs_worker_t *w, const Geoscribe__Task *t, Geoscribe__TaskResult *r,
                      gs_arena_t *msg)
{
    const gs_job_t *job = w->job;
    char why[1024] = "";
    gs_scene_problem_t problem = GS_SCENE_OK;
    if (t->n_uris != 1 || t->n_cells == 0 || t->n_cells > (uint32_t)job->tasks.max_tiles) {
        gs__serve_fail(r, msg, GS_EFORMAT, 0, "a tile task with no scene or a bad cell count");
        return;
    }
    gs_err e = scene_get(w, t->uris[0], &problem, why, sizeof why);
    if (e == GS_OK)
        e = check_scene(w, t, why, sizeof why);
    if (e != GS_OK) {
        gs__serve_fail(r, msg, e, problem, why);
        return;
    }
    const gs_scene_info_t *in = gs_scene_info(w->scene);
    gs_tile_grid_t grid;
    e = gs_tile_grid_init(&grid, in->width, in->height, job->tiling.size, job->tiling.overlap,
                          job->tiling.edge);
    if (e != GS_OK || (uint64_t)t->first_cell + t->n_cells > (uint64_t)gs_tile_grid_count(&grid)) {
        gs__serve_fail(r, msg, GS_EINVAL, 0, "the task's cells are outside the scene grid");
        return;
    }
    uint32_t n_kept = 0, n_skipped = 0, n_caps = 0;
    gs_arena_reset(w->arena);
    e = gs__worker_cells(w, t, &grid, &n_kept, &n_skipped, &n_caps, &problem, why, sizeof why);
    if (e != GS_OK) {
        if (!*why)
            snprintf(why, sizeof why, "task %016llx on \"%s\": %s", (unsigned long long)t->task_id,
                     in->uri, gs_strerror(e));
        GS_LOG_WARN("task=%016llx failed: %s", (unsigned long long)t->task_id, why);
        if (e == GS_EFORMAT) // the scene is bad (truncated block, ...): drop it from the cache
            scene_drop(w);
        gs__serve_fail(r, msg, e, problem, why);
        return;
    }
    gs_shard_data_t d = {.h = {.task_id = t->task_id,
                               .settings_hash = w->settings_hash,
                               .scene_id = in->id,
                               .dim = w->dim,
                               .n_cells = t->n_cells,
                               .n_tiles = n_kept,
                               .n_skipped = n_skipped,
                               .n_captions = n_caps},
                         .ids = w->ids,
                         .vecs = w->vecs,
                         .skipped_ids = w->skipped,
                         .tiles = w->tiles,
                         .captions = w->captions};
    char name[32], hash[17] = "";
    snprintf(name, sizeof name, "%016llx.shard", (unsigned long long)t->task_id);
    char *path = gs_path_join(w->staging, name);
    e = gs_shard_write(path, &d, hash);
    gs_free(path);
    if (e != GS_OK) {
        snprintf(why, sizeof why, "could not write shard \"%s/%s\": %s", w->staging, name,
                 gs_strerror(e));
        gs__serve_fail(r, msg, e, 0, why);
        return;
    }
    if (w->test_delay_ms > 0) {
        struct timespec ts = {w->test_delay_ms / 1000, (long)(w->test_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    r->n_tiles = n_kept;
    r->n_skipped = n_skipped;
    char rel[48];
    snprintf(rel, sizeof rel, "staging/%s", name);
    r->shard_path = gs_arena_strdup(msg, rel);
    r->shard_hash = gs_arena_strdup(msg, hash);
    if (!r->shard_path || !r->shard_hash)
        gs__serve_fail(r, msg, GS_ENOMEM, 0, "out of memory");
}
