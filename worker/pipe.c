// The cell loop of a tile task as a two-stage pipeline, so that reading overlaps encoding: a
// reader thread reads each cell's window (GDAL, composite, valid fraction), fills in the tile
// record and preprocesses the kept tiles into one of two batch slots; the calling thread
// captions the selected tiles of a full slot (from copies the reader made) and encodes it,
// while the reader fills the other slot. The reader alone touches the scene (GDAL handles are
// not shared between threads) and the preprocessing scratch; the caller alone touches the
// models. Tiles, ids, records and captions come out in grid order, exactly as a serial loop
// writes them.
#define GS_LOG_MODULE "worker"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "jobs/tiles.h"
#include "worker/ingest_int.h"

typedef struct {
    gs_worker_t *w;
    const Geoscribe__Task *t;
    const gs_tile_grid_t *grid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool full[2]; // slot s holds a batch ready to encode
    bool reader_done, stop;
    gs_err e; // the reader's error
    gs_scene_problem_t problem;
    char why[1024];
    uint32_t n_kept, n_skipped; // the reader's counts
} pipe_t;

static gs_err preprocess(gs_worker_t *w, const gs_tile_t *tile, float *out)
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
    return gs_preprocess_image(w->rgb, tile->w, tile->h, &w->pcfg, w->scratch, out);
}

// publish: hands slot s (n tiles) to the encoder and waits until slot s^1 is free.
static bool publish(pipe_t *p, int s, int n)
{
    pthread_mutex_lock(&p->mu);
    p->w->slots[s].n = n;
    p->full[s] = n > 0;
    pthread_cond_broadcast(&p->cv);
    while (p->full[s ^ 1] && !p->stop)
        pthread_cond_wait(&p->cv, &p->mu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return !stop;
}

// read_cell: one cell into slot s at position n (kept) or the skipped list.
static gs_err read_cell(pipe_t *p, uint32_t cell, gs__slot_t *slot, int *n)
{
    gs_worker_t *w = p->w;
    const gs_job_t *job = w->job;
    const gs_scene_info_t *in = gs_scene_info(w->scene);
    gs_tile_t tile;
    double vf = 0;
    GS_TRY(gs_tile_grid_cell(p->grid, in->id, (int)(cell % (uint32_t)p->grid->n_cols),
                             (int)(cell / (uint32_t)p->grid->n_cols), &tile));
    GS_TRY(gs_tile_read_rgb8(w->scene, &tile, w->rgb, &vf, &p->problem, p->why, sizeof p->why));
    if (vf < job->tiling.min_valid_fraction) {
        w->skipped[p->n_skipped++] = tile.id;
        return GS_OK;
    }
    gs_tile_rec_t *rec = &w->tiles[p->n_kept];
    *rec = (gs_tile_rec_t){.tile_id = tile.id,
                           .scene_id = in->id,
                           .x = tile.x,
                           .y = tile.y,
                           .w = tile.w,
                           .h = tile.h,
                           .time_unix = in->has_time ? in->time : 0,
                           .valid_frac = (float)vf};
    if (gs_tile_bounds(w->scene, &tile, rec->bounds) != GS_OK)
        memcpy(rec->bounds, in->bbox, sizeof rec->bounds); // no pixel maps to lon/lat
    w->ids[p->n_kept++] = tile.id;
    if (w->llava && gs__worker_caption_selected(w, p->t, cell, tile.id)) {
        int k = slot->n_cap++;
        size_t nb = (size_t)tile.w * (size_t)tile.h * 3;
        memcpy(slot->cap_rgb + (size_t)k * w->tile_nbytes, w->rgb, nb);
        slot->cap_w[k] = tile.w;
        slot->cap_h[k] = tile.h;
        slot->cap_id[k] = tile.id;
    }
    size_t plane = (size_t)3 * (size_t)w->image_size * (size_t)w->image_size;
    GS_TRY(preprocess(w, &tile, slot->pixels + (size_t)*n * plane));
    (*n)++;
    return GS_OK;
}

static void *reader(void *arg)
{
    pipe_t *p = arg;
    gs_worker_t *w = p->w;
    int s = 0, n = 0;
    gs_err e = GS_OK;
    w->slots[0].base = 0;
    w->slots[0].n_cap = 0;
    for (uint32_t i = 0; i < p->t->n_cells && e == GS_OK; i++) {
        e = read_cell(p, p->t->first_cell + i, &w->slots[s], &n);
        if (e == GS_OK && n == w->batch) {
            if (!publish(p, s, n))
                break;
            s ^= 1;
            n = 0;
            w->slots[s].base = p->n_kept;
            w->slots[s].n_cap = 0;
        }
    }
    if (e == GS_OK && n > 0)
        publish(p, s, n);
    pthread_mutex_lock(&p->mu);
    p->e = e;
    p->reader_done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

// encode_slot: captions then embeddings of one full slot.
static gs_err encode_slot(gs_worker_t *w, gs__slot_t *slot, uint32_t *n_caps, char *why,
                          size_t why_nbytes)
{
    for (int k = 0; k < slot->n_cap; k++)
        GS_TRY(gs__worker_caption(w, slot->cap_rgb + (size_t)k * w->tile_nbytes, slot->cap_w[k],
                                  slot->cap_h[k], slot->cap_id[k], &w->captions[(*n_caps)++], why,
                                  why_nbytes));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gs_err e = gs_clip_encode_images(w->clip, slot->pixels, slot->n, true,
                                     w->vecs + (size_t)slot->base * (size_t)w->dim);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->seconds_encode += (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    w->n_encoded += (uint64_t)slot->n;
    return e;
}

gs_err gs__worker_cells(gs_worker_t *w, const Geoscribe__Task *t, const gs_tile_grid_t *grid,
                        uint32_t *out_kept, uint32_t *out_skipped, uint32_t *out_caps,
                        gs_scene_problem_t *out_problem, char *why, size_t why_nbytes)
{
    pipe_t p = {.w = w, .t = t, .grid = grid, .problem = GS_SCENE_OK};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, reader, &p) != 0) {
        snprintf(why, why_nbytes, "could not start the reader thread");
        return GS_ENOMEM;
    }
    gs_err e = GS_OK;
    uint32_t n_caps = 0;
    for (int s = 0;; s ^= 1) {
        pthread_mutex_lock(&p.mu);
        while (!p.full[s] && !p.reader_done)
            pthread_cond_wait(&p.cv, &p.mu);
        bool have = p.full[s];
        pthread_mutex_unlock(&p.mu);
        if (!have)
            break;
        e = encode_slot(w, &w->slots[s], &n_caps, why, why_nbytes);
        pthread_mutex_lock(&p.mu);
        p.full[s] = false;
        p.stop = e != GS_OK;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (e != GS_OK)
            break;
    }
    pthread_join(th, NULL);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    if (e == GS_OK && p.e != GS_OK) {
        e = p.e;
        snprintf(why, why_nbytes, "%s", p.why);
    }
    *out_kept = p.n_kept;
    *out_skipped = p.n_skipped;
    *out_caps = n_caps;
    *out_problem = p.problem;
    return e;
}
