// The ingest worker's frame: opening the models with an explicit thread count, the model
// identity, the message exchange (TaskBatch in, WorkRequest out) and the MPI loop. The tasks
// themselves are in task.c.
#define GS_LOG_MODULE "worker"
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/layout.h"
#include "worker/ingest_int.h"
#include "worker/serve_int.h"

static int auto_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = gs_getenv_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1, 1, 1 << 20);
    long t = (cores > 0 ? cores : 1) / local;
    return t < 1 ? 1 : t > 64 ? 64 : (int)t;
}

static gs_err alloc_buffers(gs_worker_t *w)
{
    const gs_job_t *j = w->job;
    size_t side = (size_t)j->tiling.size, max_tiles = (size_t)j->tasks.max_tiles;
    size_t S = (size_t)w->image_size;
    w->rgb = gs_trymalloc(side * side * 3);
    w->scratch_nbytes = gs_preprocess_scratch_nbytes((int)side, (int)side, (int)S) + 64;
    w->scratch = gs_trymalloc(w->scratch_nbytes);
    w->tile_nbytes = side * side * 3;
    for (int k = 0; k < 2; k++) {
        gs__slot_t *sl = &w->slots[k];
        sl->pixels = gs_trymalloc((size_t)w->batch * 3 * S * S * sizeof(float));
        sl->cap_w = gs_trycalloc((size_t)w->batch, sizeof *sl->cap_w);
        sl->cap_h = gs_trycalloc((size_t)w->batch, sizeof *sl->cap_h);
        sl->cap_id = gs_trycalloc((size_t)w->batch, sizeof *sl->cap_id);
        if (w->llava)
            sl->cap_rgb = gs_trymalloc((size_t)w->batch * w->tile_nbytes);
        if (!sl->pixels || !sl->cap_w || !sl->cap_h || !sl->cap_id || (w->llava && !sl->cap_rgb))
            return GS_ENOMEM;
    }
    w->vecs = gs_trymalloc(max_tiles * (size_t)w->dim * sizeof(float));
    w->ids = gs_trymalloc(max_tiles * sizeof *w->ids);
    w->skipped = gs_trymalloc(max_tiles * sizeof *w->skipped);
    w->tiles = gs_trycalloc(max_tiles, sizeof *w->tiles);
    w->captions = gs_trycalloc(max_tiles, sizeof *w->captions);
    w->cap_ids = gs_trycalloc((size_t)j->captioner.max_tokens + 1, sizeof *w->cap_ids);
    if (!w->rgb || !w->scratch || !w->vecs || !w->ids || !w->skipped || !w->tiles || !w->captions ||
        !w->cap_ids)
        return GS_ENOMEM;
    return GS_OK;
}

gs_err gs_worker_open(const gs_job_t *job, int rank, bool identity_only, gs_worker_t **out,
                      char *err, size_t err_nbytes)
{
    *out = NULL;
    gs_worker_t *w = gs_xcalloc(1, sizeof *w);
    w->job = job;
    w->staging = gs_path_join(job->output, GS_LAYOUT_STAGING);
    w->arena = gs_arena_new(1 << 16, 0);
    w->threads = identity_only              ? 1
                 : job->encoder.threads > 0 ? job->encoder.threads
                                            : auto_threads();
    w->batch = identity_only ? 1 : job->encoder.batch;
    w->test_delay_ms = gs_getenv_int("GS_INGEST_TASK_DELAY_MS", 0, 0, 60000);
    bool auto_arch = strcmp(job->encoder.arch, "auto") == 0 || !*job->encoder.arch;
    gs_clip_opts_t o = {.arch = auto_arch ? NULL : job->encoder.arch,
                        .n_threads = w->threads,
                        .max_batch = w->batch};
    gs_err e = gs_clip_open(job->encoder.model, &o, &w->clip);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not open the encoder \"%s\" (encoder.model): %s",
                 job->encoder.model, gs_strerror(e));
        gs_worker_close(&w);
        return e;
    }
    w->dim = gs_clip_dim(w->clip);
    w->image_size = gs_clip_image_size(w->clip);
    w->pcfg = gs_clip_preprocess_cfg(w->clip);
    snprintf(w->encoder_id, sizeof w->encoder_id, "%s", gs_clip_model_id(w->clip));
    snprintf(w->preprocess, sizeof w->preprocess,
             "gs-preprocess-%d %s size=%d mean=%.9g,%.9g,%.9g std=%.9g,%.9g,%.9g",
             GS_WORKER_PREPROCESS_VERSION, w->pcfg.crop == GS_CROP_HF ? "hf" : "openclip",
             w->pcfg.size, w->pcfg.mean[0], w->pcfg.mean[1], w->pcfg.mean[2], w->pcfg.std[0],
             w->pcfg.std[1], w->pcfg.std[2]);
    if (*job->captioner.model) {
        // one image per call: its features, the prompt and the caption fit in far fewer rows
        // than the 4096 default (LLaVA-1.5: 576 image tokens)
        int n_ctx = 768 + job->captioner.max_tokens;
        gs_llava_opts_t lo = {.n_threads = w->threads,
                              .n_ctx = n_ctx < 4096 ? n_ctx : 4096,
                              .max_images = 1,
                              .max_beams = 1};
        e = gs_llava_open(job->captioner.model, &lo, &w->llava);
        if (e != GS_OK) {
            snprintf(err, err_nbytes,
                     "could not open the captioner \"%s\" (captioner.model): "
                     "%s",
                     job->captioner.model, gs_strerror(e));
            gs_worker_close(&w);
            return e;
        }
        snprintf(w->captioner_id, sizeof w->captioner_id, "%s", gs_llava_model_id(w->llava));
    }
    if (!identity_only && (e = alloc_buffers(w)) != GS_OK) {
        snprintf(err, err_nbytes, "could not allocate the tile buffers of rank %d", rank);
        gs_worker_close(&w);
        return e;
    }
    GS_LOG_DEBUG("rank %d: encoder %s dim=%d image=%d batch=%d threads=%d", rank, w->encoder_id,
                 w->dim, w->image_size, w->batch, w->threads);
    *out = w;
    return GS_OK;
}

void gs_worker_identity(gs_worker_t *self, const char **out_encoder_id, int *out_dim,
                        const char **out_preprocess, const char **out_captioner_id)
{
    *out_encoder_id = self->encoder_id;
    *out_dim = self->dim;
    *out_preprocess = self->preprocess;
    *out_captioner_id = self->captioner_id;
}

gs_err gs_worker_start(gs_worker_t *self, uint64_t settings_hash, const char *encoder_id,
                       const char *captioner_id, char *err, size_t err_nbytes)
{
    if (strcmp(encoder_id, self->encoder_id) != 0) {
        snprintf(err, err_nbytes,
                 "this rank loaded encoder %s from \"%s\", rank 0 loaded %s: "
                 "the model files differ between nodes",
                 self->encoder_id, self->job->encoder.model, encoder_id);
        return GS_EMISMATCH;
    }
    if (strcmp(captioner_id ? captioner_id : "", self->captioner_id) != 0) {
        snprintf(err, err_nbytes, "this rank loaded captioner %s, rank 0 loaded %s",
                 self->captioner_id, captioner_id);
        return GS_EMISMATCH;
    }
    self->settings_hash = settings_hash;
    self->started = true;
    return GS_OK;
}

void gs_worker_request(gs_worker_t *self, int rank, gs_err status, const char *message, void **out,
                       size_t *out_nbytes)
{
    (void)self;
    gs__serve_request(rank, status, message, out, out_nbytes);
}

// run_task: one task of a batch, by kind.
static void run_task(void *ud, const Geoscribe__Task *t, Geoscribe__TaskResult *res,
                     gs_arena_t *msg)
{
    gs_worker_t *self = ud;
    if (t->kind == 1) {
        gs__worker_probe(self, t, res, msg);
    } else if (t->kind == 0) {
        gs__worker_tiles(self, t, res, msg);
    } else {
        res->status = GS_EUNSUPPORTED;
        res->message = (char *)"unknown task kind";
    }
}

gs_err gs_worker_handle(gs_worker_t *self, int rank, const void *batch, size_t nbytes,
                        void **out_req, size_t *out_nbytes, bool *out_done, unsigned *out_wait_ms)
{
    return gs__serve_handle(self, self->started, run_task, rank, batch, nbytes, out_req,
                            out_nbytes, out_done, out_wait_ms);
}

static gs_err handle(void *self, int rank, const void *batch, size_t nbytes, void **out_req,
                     size_t *out_nbytes, bool *out_done, unsigned *out_wait_ms)
{
    return gs_worker_handle(self, rank, batch, nbytes, out_req, out_nbytes, out_done,
                            out_wait_ms);
}

gs_err gs_worker_serve_mpi(gs_worker_t *self, int rank, gs_err start_status, const char *message)
{
    return gs__serve_mpi(self, handle, rank, start_status, message);
}

void gs_worker_close(gs_worker_t **p)
{
    if (!p || !*p)
        return;
    gs_worker_t *w = *p;
    if (w->n_encoded > 0)
        GS_LOG_INFO("%llu tiles encoded, %.2f s in the encoder (%.2f tiles/s there)",
                    (unsigned long long)w->n_encoded, w->seconds_encode,
                    w->seconds_encode > 0 ? (double)w->n_encoded / w->seconds_encode : 0.0);
    for (int i = 0; i < GS__SCENE_CACHE; i++) {
        gs_scene_close(&w->scenes[i].scene);
        gs_free(w->scenes[i].uri);
    }
    gs_clip_close(&w->clip);
    gs_llava_close(&w->llava);
    gs_free(w->captions);
    gs_free(w->cap_ids);
    gs_free(w->staging);
    gs_free(w->rgb);
    gs_free(w->scratch);
    for (int k = 0; k < 2; k++) {
        gs_free(w->slots[k].pixels);
        gs_free(w->slots[k].cap_rgb);
        gs_free(w->slots[k].cap_w);
        gs_free(w->slots[k].cap_h);
        gs_free(w->slots[k].cap_id);
    }
    gs_free(w->vecs);
    gs_free(w->ids);
    gs_free(w->skipped);
    gs_free(w->tiles);
    gs_arena_destroy(&w->arena);
    gs_free(w);
    *p = NULL;
}
