// The change coordinator (changes.h): the output, the settings identity, the scenes (store
// records or opened), pairing and the plan, dispatch, the MPI loop, progress and the end of a
// run. Commits, recovery and the indexes are in changes_commit.c. The containers (id maps,
// queues), the task states, the settings lines and the message flow are shared with the ingest
// coordinator (coordinator/job_int.h).
#define GS_LOG_MODULE "coordinator"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "coordinator/changes_int.h"
#include "jobs/catalog.h"
#include "jobs/hash.h"
#include "jobs/scene.h"
#include "jobs/warp.h"
#include "jobs/warp_shard.h"

enum { WAIT_MS = 100 };

// ---- ids and keys ---------------------------------------------------------------------------

uint64_t gs__chtask_id(uint64_t before_id, uint64_t after_id)
{
    uint8_t rec[16];
    for (int i = 0; i < 8; i++) {
        rec[i] = (uint8_t)(before_id >> (8 * i));
        rec[8 + i] = (uint8_t)(after_id >> (8 * i));
    }
    uint64_t id = gs_hash_bytes(rec, sizeof rec, 0x677370616972ULL) & 0x7FFFFFFFFFFFFFFFULL;
    return id ? id : 1; // "gspair"
}

void gs__chtask_key(uint64_t before_id, uint64_t after_id, char out[40])
{
    snprintf(out, 40, "c/%016llx/%016llx", (unsigned long long)before_id,
             (unsigned long long)after_id);
}

int gs__chtask_key_parse(const char *key, uint64_t *before_id, uint64_t *after_id)
{
    if (strlen(key) != 35 || strncmp(key, "c/", 2) != 0 || key[18] != '/')
        return 0;
    char *end = NULL;
    char hex[17];
    memcpy(hex, key + 2, 16);
    hex[16] = '\0';
    *before_id = strtoull(hex, &end, 16);
    if (*end)
        return 0;
    memcpy(hex, key + 19, 16);
    *after_id = strtoull(hex, &end, 16);
    return *end == '\0';
}

char *gs__chshard_path(const gs_chcoord_t *c, uint64_t task_id)
{
    return gs_xasprintf("%s/%016llx.chshard", c->staging, (unsigned long long)task_id);
}

char *gs__chreuse_path(const gs_chcoord_t *c, uint64_t task_id)
{
    return gs_xasprintf("%s/%016llx.reuse.vec", c->staging, (unsigned long long)task_id);
}

// ---- settings -------------------------------------------------------------------------------

// settings_text: what decides the meaning of change records and caption vectors, one
// "key=value" line each. Lines shared with ingest (encoder.*, tiling.*, composite.*) are
// written by the ingest coordinator's helpers (coordinator/job_int.h), so that they can be
// compared to decide whether stored tile embeddings may be reused. Pairing, gap, overlap and the gate may change
// between runs (earlier records keep their captions).
static char *settings_text(const gs_job_t *j, const gs_ingest_models_t *m)
{
    static const char *const resample[] = {"nearest", "bilinear", "cubic"};
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    gs__settings_encoder(&b, m);
    gs__settings_image(&b, j);
    gs_buf_printf(&b, "changes.captioner_id=%s\n", m->captioner_id);
    if (*m->captioner_id)
        gs_buf_printf(&b, "changes.prompt=%s\ncaptioner.max_tokens=%d\n", j->changes.prompt,
                      j->captioner.max_tokens);
    gs_buf_printf(&b, "changes.grid=%s\n", j->changes.grid == GS_JOB_GRID_CRS ? "crs" : "later");
    if (j->changes.grid == GS_JOB_GRID_CRS)
        gs_buf_printf(&b, "changes.crs=%s\nchanges.resolution=%.17g\n", j->changes.crs,
                      j->changes.resolution);
    gs_buf_printf(&b, "changes.resampling=%s\n", resample[j->changes.resampling]);
    return gs_buf_steal(&b);
}

static gs_err check_settings(gs_chcoord_t *c, char *err, size_t err_nbytes)
{
    const char *old = NULL;
    gs_arena_reset(c->arena);
    gs_err e = gs_capstore_meta_get(c->store, "changes.settings", c->arena, &old);
    if (e == GS_OK) {
        if (strcmp(old, c->settings) == 0)
            return GS_OK;
        char diff[1024];
        gs__settings_difference(old, c->settings, diff, sizeof diff);
        gs__errf(err, err_nbytes,
             "the change records of output \"%s\" were made with other "
             "settings: %s; use another output or the settings of the first run",
             c->out, diff);
        return GS_EMISMATCH;
    }
    if (e != GS_ENOTFOUND) {
        gs__errf(err, err_nbytes, "could not read the settings of output \"%s\": %s", c->out,
             gs_strerror(e));
        return e;
    }
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->settings_hash);
    gs_capstore_batch_t *b = gs_capstore_batch_new(c->store);
    gs_capstore_batch_meta_set(b, "changes.settings", c->settings);
    gs_capstore_batch_meta_set(b, "changes.settings_hash", hash);
    gs_capstore_batch_meta_set(b, "changes.encoder.model_id", c->models.encoder_id);
    gs_capstore_batch_meta_set(b, "changes.captioner.model_id", c->models.captioner_id);
    e = gs_capstore_write(c->store, b, true);
    gs_capstore_batch_destroy(&b);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not write the settings of output \"%s\"", c->out);
    return e;
}

// record_models: where change search finds the encoder (model path, arch, vocabulary), kept
// up to date on every run (paths may move; the model id is what must not change).
static gs_err record_models(gs_chcoord_t *c)
{
    gs_capstore_batch_t *b = gs_capstore_batch_new(c->store);
    char *enc_abs = gs_path_absolute(c->job->encoder.model);
    char *voc_abs = gs_path_absolute(c->job->encoder.vocab);
    gs_capstore_batch_meta_set(b, "changes.encoder.model", enc_abs);
    gs_capstore_batch_meta_set(b, "changes.encoder.arch", c->job->encoder.arch);
    gs_capstore_batch_meta_set(b, "changes.encoder.vocab", voc_abs);
    gs_free(enc_abs);
    gs_free(voc_abs);
    gs_err e = gs_capstore_write(c->store, b, false);
    gs_capstore_batch_destroy(&b);
    return e;
}

// ---- the ledger -----------------------------------------------------------------------------

static int ledger_entry(const gs_job_rec_t *r, void *ud)
{
    gs_chcoord_t *c = ud;
    uint64_t before, after;
    if (!gs__chtask_key_parse(r->task_key, &before, &after))
        return 0; // an ingest entry
    uint64_t id = gs__chtask_id(before, after);
    if (r->state == GS_JOB_DONE) {
        gs__map_put(&c->done_map, id, 1);
        gs__map_put(&c->paired_map, after, 1);
    } else if (r->state == GS_JOB_FAILED) {
        gs__map_put(&c->done_map, id, 0x80000000u | r->attempts);
    }
    return 0;
}

// ---- scenes ---------------------------------------------------------------------------------

static void keep_footprint(gs__chscene_t *s, const double *fp, int n)
{
    if (!fp || n < 3)
        return;
    s->footprint = gs_xmalloc((size_t)n * 2 * sizeof *s->footprint);
    memcpy(s->footprint, fp, (size_t)n * 2 * sizeof *s->footprint);
    s->n_footprint = n;
}

// scene_facts: time, box and footprint of a scene, from its ingest record, else from the scene itself.
static gs_err scene_facts(gs_chcoord_t *c, gs__chscene_t *s, const void *rec, size_t rec_nbytes)
{
    gs_scene_rec_t r;
    if (rec && gs_rec_decode_scene(rec, rec_nbytes, c->arena, &r) == GS_OK) {
        s->has_time = r.time_unix != INT64_MIN;
        s->time = r.time_unix;
        memcpy(s->bbox, r.bbox, sizeof s->bbox);
        s->width = r.width;
        s->height = r.height;
        keep_footprint(s, r.footprint, (int)r.n_footprint);
        return GS_OK;
    }
    c->sum.n_unrecorded++;
    gs_scene_t *sc = NULL;
    gs_scene_problem_t pr;
    char why[1024] = "";
    if (gs_scene_open(c->job, s->uri, &sc, &pr, why, sizeof why) != GS_OK) {
        GS_LOG_WARN("scene \"%s\" left out of the change pairs: %s", s->uri,
                    *why ? why : "could not open it");
        c->sum.n_unreadable++;
        return GS_ENOTFOUND;
    }
    const gs_scene_info_t *in = gs_scene_info(sc);
    s->has_time = in->has_time;
    s->time = in->time;
    memcpy(s->bbox, in->bbox, sizeof s->bbox);
    keep_footprint(s, in->footprint, in->n_footprint);
    gs_scene_close(&sc);
    return GS_OK;
}

static gs_err list_scenes(gs_chcoord_t *c, char *err, size_t err_nbytes)
{
    gs_catalog_t cat = {0};
    GS_TRY(gs_catalog_build(c->job, &cat, err, err_nbytes));
    c->scenes = gs_xcalloc(cat.n_scenes ? cat.n_scenes : 1, sizeof *c->scenes);
    gs_err e = GS_OK;
    for (size_t i = 0; i < cat.n_scenes && e == GS_OK; i++) {
        gs__chscene_t s = {.uri = cat.uris[i], .id = gs_scene_id_of(cat.uris[i])};
        cat.uris[i] = NULL;
        uint8_t key[8];
        const void *val = NULL;
        size_t n = 0;
        gs_rec_key_u64(s.id, key);
        gs_arena_reset(c->arena);
        e = gs_capstore_get(c->store, GS_CF_SCENES, key, 8, c->arena, &val, &n);
        if (e == GS_ENOTFOUND)
            e = GS_OK, val = NULL;
        if (e == GS_OK && scene_facts(c, &s, val, n) == GS_OK) {
            c->scenes[c->n_scenes++] = s;
            if (!s.has_time)
                c->sum.n_timeless++;
        } else {
            gs_free(s.uri);
            gs_free(s.footprint);
        }
    }
    c->sum.n_scenes = cat.n_scenes;
    gs_catalog_cleanup(&cat);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not read the scene records of \"%s\": %s", c->db_path,
             gs_strerror(e));
    return e;
}

// ---- the plan -------------------------------------------------------------------------------

static gs_err plan(gs_chcoord_t *c, char *err, size_t err_nbytes)
{
    gs_warp_item_t *items = gs_xcalloc(c->n_scenes ? c->n_scenes : 1, sizeof *items);
    for (size_t i = 0; i < c->n_scenes; i++) {
        const gs__chscene_t *s = &c->scenes[i];
        uint32_t v;
        items[i] = (gs_warp_item_t){.id = s->id,
                                    .has_time = s->has_time,
                                    .time = s->time,
                                    .footprint = s->footprint,
                                    .n_footprint = s->n_footprint,
                                    .paired = gs__map_get(&c->paired_map, s->id, &v)};
        memcpy(items[i].bbox, s->bbox, sizeof items[i].bbox);
    }
    gs_warp_pair_t *pairs = NULL;
    size_t n = 0;
    gs_warp_pairs(c->job, items, c->n_scenes, &pairs, &n);
    gs_free(items);
    c->tasks = gs_xcalloc(n ? n : 1, sizeof *c->tasks);
    gs_capstore_batch_clear(c->batch);
    for (size_t i = 0; i < n; i++) {
        const gs__chscene_t *b = &c->scenes[pairs[i].before], *a = &c->scenes[pairs[i].after];
        gs__chtask_t t = {.id = gs__chtask_id(b->id, a->id),
                          .before = pairs[i].before,
                          .after = pairs[i].after,
                          .state = GS__T_QUEUED,
                          .rank = -1};
        uint32_t v = 0;
        int known = gs__map_get(&c->done_map, t.id, &v);
        if (known && v == 1) {
            t.state = GS__T_DONE;
            c->sum.n_pairs_done++;
        } else {
            t.prior_attempts = known ? v & 0x7FFFFFFFu : 0;
            if (!known) {
                char key[40];
                gs__chtask_key(b->id, a->id, key);
                gs_job_rec_t r = {
                    .task_key = key, .state = GS_JOB_PLANNED, .time_unix = (int64_t)time(NULL)};
                gs_capstore_batch_put_job(c->batch, &r);
            }
            gs__u32s_push(&c->queue, (uint32_t)c->n_tasks);
        }
        gs__map_put(&c->task_map, t.id, (uint32_t)c->n_tasks);
        c->tasks[c->n_tasks++] = t;
    }
    c->sum.n_pairs = n;
    gs_free(pairs);
    gs_err e =
        gs_capstore_batch_count(c->batch) ? gs_capstore_write(c->store, c->batch, false) : GS_OK;
    gs_capstore_batch_clear(c->batch);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not write the plan into \"%s\"", c->db_path);
    return e;
}

// ---- open / close ---------------------------------------------------------------------------

static gs_err prepare_output(gs_chcoord_t *c, char *err, size_t err_nbytes)
{
    GS_TRY(gs__job_output_dirs(c->out, c->staging, err, err_nbytes));
    gs_err e;
    gs_capstore_opts_t o = {.create_if_missing = true};
    e = gs_capstore_open(c->db_path, &o, &c->store);
    if (e != GS_OK)
        gs__errf(err, err_nbytes,
             "could not open the store \"%s\" (%s); is an ingest or another "
             "change run working on this output?",
             c->db_path, gs_strerror(e));
    return e;
}

gs_err gs_chcoord_open(const gs_job_t *job, const char *job_path, const gs_ingest_models_t *models,
                       int n_workers, gs_chcoord_t **out, char *err, size_t err_nbytes)
{
    (void)job_path;
    *out = NULL;
    gs_chcoord_t *c = gs_xcalloc(1, sizeof *c);
    c->t0 = gs_clock_s();
    c->job = job;
    c->n_workers = n_workers > 0 ? n_workers : 1;
    c->out = gs_xstrdup(job->output);
    c->db_path = gs_path_join(job->output, "db");
    c->staging = gs_path_join(job->output, "staging");
    c->tiles_index_path = gs_path_join(job->output, "index/tiles.faiss");
    c->changes_index_path = gs_path_join(job->output, "index/changes.faiss");
    c->arena = gs_arena_new(1 << 20, 0);
    c->models.encoder_id = gs_xstrdup(models->encoder_id ? models->encoder_id : "");
    c->models.dim = models->dim;
    c->models.preprocess = gs_xstrdup(models->preprocess ? models->preprocess : "");
    c->models.captioner_id = gs_xstrdup(models->captioner_id ? models->captioner_id : "");
    c->settings = settings_text(job, &c->models);
    c->settings_hash = gs_hash_str(c->settings, 0x677363736574ULL); // "gscset"
    gs__map_init(&c->task_map);
    gs__map_init(&c->done_map);
    gs__map_init(&c->paired_map);
    gs_err e = prepare_output(c, err, err_nbytes);
    if (e == GS_OK)
        e = check_settings(c, err, err_nbytes);
    if (e == GS_OK)
        e = gs__job_write_spec(job, c->out, "changes.yaml", err, err_nbytes);
    if (e == GS_OK && (e = record_models(c)) != GS_OK)
        gs__errf(err, err_nbytes, "could not write to the store \"%s\"", c->db_path);
    if (e == GS_OK) {
        c->batch = gs_capstore_batch_new(c->store);
        if ((e = gs_capstore_scan_jobs(c->store, ledger_entry, c)) != GS_OK)
            gs__errf(err, err_nbytes, "could not read the ledger of \"%s\"", c->db_path);
    }
    if (e == GS_OK)
        e = gs__ch_index_open(c, err, err_nbytes);
    if (e == GS_OK)
        e = list_scenes(c, err, err_nbytes);
    if (e == GS_OK)
        e = plan(c, err, err_nbytes);
    if (e == GS_OK && (e = gs__ch_recover(c)) != GS_OK)
        gs__errf(err, err_nbytes, "could not recover the staged change shards of \"%s\": %s", c->out,
             gs_strerror(e));
    if (e != GS_OK) {
        gs_chcoord_close(&c);
        return e;
    }
    GS_LOG_INFO("changes \"%s\": %llu scenes (%llu without a time, %llu left out), %llu pairs "
                "(%llu done), stored embeddings %s, output \"%s\"",
                job->name, (unsigned long long)c->sum.n_scenes,
                (unsigned long long)c->sum.n_timeless, (unsigned long long)c->sum.n_unreadable,
                (unsigned long long)c->sum.n_pairs, (unsigned long long)c->sum.n_pairs_done,
                c->tiles ? "reused" : "not reused", c->out);
    c->last_persist = gs_clock_s();
    *out = c;
    return GS_OK;
}

uint64_t gs_chcoord_settings_hash(const gs_chcoord_t *self)
{
    return self->settings_hash;
}

bool gs_chcoord_pair(const gs_chcoord_t *self, size_t i, const char **out_before,
                     const char **out_after, bool *out_done)
{
    if (i >= self->n_tasks)
        return false;
    const gs__chtask_t *t = &self->tasks[i];
    *out_before = self->scenes[t->before].uri;
    *out_after = self->scenes[t->after].uri;
    *out_done = t->state == GS__T_DONE;
    return true;
}

void gs_chcoord_close(gs_chcoord_t **p)
{
    if (!p || !*p)
        return;
    gs_chcoord_t *c = *p;
    gs__reqs_cleanup(&c->pending);
    gs_vindex_destroy(&c->tiles);
    gs_vindex_destroy(&c->index);
    gs_capstore_batch_destroy(&c->batch);
    gs_capstore_close(&c->store);
    for (size_t i = 0; i < c->n_scenes; i++) {
        gs_free(c->scenes[i].uri);
        gs_free(c->scenes[i].footprint);
    }
    gs_free(c->scenes);
    gs_free(c->tasks);
    for (size_t i = 0; i < c->n_committed; i++)
        gs_free(c->committed[i]);
    gs_free(c->committed);
    gs__map_cleanup(&c->task_map);
    gs__map_cleanup(&c->done_map);
    gs__map_cleanup(&c->paired_map);
    gs_free(c->queue.v);
    gs_free((char *)c->models.encoder_id);
    gs_free((char *)c->models.preprocess);
    gs_free((char *)c->models.captioner_id);
    gs_free(c->settings);
    gs_arena_destroy(&c->arena);
    gs_free(c->out);
    gs_free(c->db_path);
    gs_free(c->staging);
    gs_free(c->tiles_index_path);
    gs_free(c->changes_index_path);
    gs_free(c);
    *p = NULL;
}

// ---- dispatch -------------------------------------------------------------------------------

static uint32_t next_task(gs_chcoord_t *c)
{
    while (c->queue.head < c->queue.n) {
        uint32_t ti = c->queue.v[c->queue.head++];
        if (c->tasks[ti].state == GS__T_QUEUED)
            return ti;
    }
    c->queue.n = c->queue.head = 0;
    return UINT32_MAX;
}

static void fill_task(gs_chcoord_t *c, uint32_t ti, int rank, Geoscribe__Task *m, char **uris,
                      char *hex)
{
    gs__chtask_t *t = &c->tasks[ti];
    t->state = GS__T_RUNNING;
    t->rank = rank;
    t->attempts++;
    c->n_running++;
    gs__ch_write_reuse(c, ti);
    geoscribe__task__init(m);
    snprintf(hex, 17, "%016llx", (unsigned long long)c->scenes[t->after].id);
    uris[0] = c->scenes[t->before].uri;
    uris[1] = c->scenes[t->after].uri;
    m->task_id = t->id;
    m->scene_id = hex;
    m->n_uris = 2;
    m->uris = uris;
    m->kind = GS_WARP_TASK_KIND;
    m->checksum = (char *)"";
}

gs_err gs_chcoord_handle(gs_chcoord_t *self, const void *req, size_t req_nbytes, void **out_reply,
                         size_t *out_nbytes)
{
    gs_chcoord_t *c = self;
    *out_reply = NULL;
    *out_nbytes = 0;
    Geoscribe__WorkRequest *r = NULL;
    gs_err e = GS_OK;
    GS_TRY(gs__job_request_unpack(req, req_nbytes, &c->fatal, &e, &r));
    bool has_results = r->n_results > 0;
    if (has_results) {
        gs__reqs_push(&c->pending, r);
    }
    Geoscribe__Task task, *ptr = &task;
    char *uris[2], hex[17];
    Geoscribe__TaskBatch b = GEOSCRIBE__TASK_BATCH__INIT;
    uint32_t ti = c->fatal ? UINT32_MAX : next_task(c);
    if (ti != UINT32_MAX) {
        fill_task(c, ti, r->rank, &task, uris, hex);
        b.n_tasks = 1;
        b.tasks = &ptr;
    } else if (!c->fatal && (c->n_running > 0 || c->pending.n > 0)) {
        b.wait_ms = WAIT_MS; // a running task may fail and come back
    } else {
        b.done = 1;
    }
    gs__job_batch_pack(&b, out_reply, out_nbytes);
    if (!has_results)
        geoscribe__work_request__free_unpacked(r, NULL);
    return e;
}

static void progress(gs_chcoord_t *c, bool force)
{
    double now = gs_clock_s();
    if (!force && now - c->last_progress < 5.0)
        return;
    c->last_progress = now;
    double el = now - c->t0;
    GS_LOG_INFO("progress pairs=%llu/%llu tiles_scored=%llu captioned=%llu failed=%llu "
                "pairs_per_min=%.1f",
                (unsigned long long)c->sum.n_pairs_done, (unsigned long long)c->sum.n_pairs,
                (unsigned long long)c->sum.n_scored_run, (unsigned long long)c->sum.n_captioned_run,
                (unsigned long long)c->sum.n_pairs_failed,
                el > 0 ? 60.0 * (double)c->sum.n_pairs_run / el : 0.0);
    Geoscribe__Progress m = GEOSCRIBE__PROGRESS__INIT;
    m.n_tasks_total = c->sum.n_pairs;
    m.n_tasks_done = c->sum.n_pairs_done;
    m.n_tiles_done = c->sum.n_scored_run;
    m.tiles_per_s = el > 0 ? (double)c->sum.n_scored_run / el : 0;
    double pair_rate = el > 0 ? (double)c->sum.n_pairs_run / el : 0;
    uint64_t left = c->sum.n_pairs > c->sum.n_pairs_done ? c->sum.n_pairs - c->sum.n_pairs_done : 0;
    m.eta_s = pair_rate > 0 ? (double)left / pair_rate : -1;
    m.n_failed = c->sum.n_pairs_failed;
    m.job = c->job->name;
    m.kind = "changes";
    m.n_captioned = c->sum.n_captioned_run;
    m.elapsed_s = el;
    m.done = force && c->finishing;
    m.complete = m.done && c->sum.complete;
    gs__progress_emit(c->sink, c->sink_ud, "changes", &m);
}

void gs_chcoord_set_progress_sink(gs_chcoord_t *self, gs_progress_sink_fn fn, void *ud)
{
    self->sink = fn;
    self->sink_ud = ud;
}

gs_err gs_chcoord_commit(gs_chcoord_t *self)
{
    gs_chcoord_t *c = self;
    gs_err e = GS_OK;
    for (size_t i = 0; i < c->pending.n; i++) {
        Geoscribe__WorkRequest *r = c->pending.v[i];
        for (size_t j = 0; j < r->n_results && e == GS_OK; j++)
            e = gs__ch_commit_result(c, r->results[j]);
        geoscribe__work_request__free_unpacked(r, NULL);
    }
    c->pending.n = 0;
    if (e == GS_OK && c->index_dirty && gs_clock_s() - c->last_persist > GS_COORD_PERSIST_S)
        e = gs__ch_persist(c);
    progress(c, false);
    return e;
}

static gs_err idle(void *self)
{
    progress(self, false);
    return GS_OK;
}

static gs_err handle(void *self, const void *req, size_t req_nbytes, void **out_reply,
                     size_t *out_nbytes)
{
    return gs_chcoord_handle(self, req, req_nbytes, out_reply, out_nbytes);
}

static gs_err commit(void *self)
{
    return gs_chcoord_commit(self);
}

gs_err gs_chcoord_serve_mpi(gs_chcoord_t *self, int size)
{
    gs__job_ops_t ops = {
        .self = self, .handle = handle, .commit = commit, .idle = idle, .fatal = &self->fatal};
    return gs__job_serve_mpi(&ops, size);
}

// ---- the end --------------------------------------------------------------------------------

// count_changes: records and captioned records in the changes family.
typedef struct {
    uint64_t n, n_captions;
    gs_arena_t *arena;
} count_t;

static int count_one(const void *key, size_t key_nbytes, const void *val, size_t val_nbytes,
                     void *ud)
{
    (void)key;
    (void)key_nbytes;
    count_t *k = ud;
    gs_change_rec_t r;
    gs_arena_reset(k->arena);
    k->n++;
    if (gs_rec_decode_change(val, val_nbytes, k->arena, &r) == GS_OK && *r.caption)
        k->n_captions++;
    return 0;
}

gs_err gs_chcoord_finish(gs_chcoord_t *self, gs_changes_summary_t *out)
{
    gs_chcoord_t *c = self;
    gs_err e = gs__ch_persist(c);
    count_t k = {.arena = c->arena};
    if (e == GS_OK)
        e = gs_capstore_scan(c->store, GS_CF_CHANGES, NULL, 0, count_one, &k);
    c->sum.n_records = k.n;
    c->sum.n_captions = k.n_captions;
    c->sum.n_vectors = c->index ? gs_vindex_ntotal(c->index) : 0;
    c->sum.reuse = c->tiles != NULL;
    c->sum.seconds = gs_clock_s() - c->t0;
    c->sum.complete = e == GS_OK && c->sum.n_pairs_done == c->sum.n_pairs &&
                      c->sum.n_vectors == c->sum.n_captions;
    if (e == GS_OK && c->sum.n_vectors != c->sum.n_captions)
        GS_LOG_WARN("the change index holds %llu caption vectors but the store %llu captions",
                    (unsigned long long)c->sum.n_vectors, (unsigned long long)c->sum.n_captions);
    if (e == GS_OK) {
        char buf[32];
        gs_capstore_batch_clear(c->batch);
        gs_capstore_batch_meta_set(c->batch, "changes.complete", c->sum.complete ? "1" : "0");
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->sum.n_vectors);
        gs_capstore_batch_meta_set(c->batch, "changes.index.ntotal", buf);
        snprintf(buf, sizeof buf, "%lld", (long long)time(NULL));
        gs_capstore_batch_meta_set(c->batch, "changes.last_run", buf);
        e = gs_capstore_write(c->store, c->batch, true);
    }
    c->finishing = true;
    progress(c, true);
    if (out)
        *out = c->sum;
    return e;
}
