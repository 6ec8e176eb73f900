// The ingest coordinator's set-up: the output folders, the settings identity of the output
// (recorded by the first run, checked by every later one), the ledger scan, the scene
// catalogue and the plan (probe tasks for new scenes, tile tasks for probed ones). Commit,
// the index and dispatch live in commit.c, vidx.c and dispatch.c.
#define GS_LOG_MODULE "coordinator"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "coordinator/ingest_int.h"
#include "index/layout.h"
#include "jobs/catalog.h"
#include "jobs/hash.h"
#include "jobs/scene.h"

// ---- ids and keys ---------------------------------------------------------------------------

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t gs__task_id(const gs_job_t *job, int kind, uint64_t scene_id, uint32_t first, uint32_t n)
{
    // LE64 scene | LE32 first | LE32 n | LE32 size | LE32 overlap | LE32 edge | LE32 kind
    uint8_t rec[32];
    for (int i = 0; i < 8; i++)
        rec[i] = (uint8_t)(scene_id >> (8 * i));
    le32(rec + 8, first);
    le32(rec + 12, n);
    le32(rec + 16, (uint32_t)job->tiling.size);
    le32(rec + 20, (uint32_t)job->tiling.overlap);
    le32(rec + 24, (uint32_t)job->tiling.edge);
    le32(rec + 28, (uint32_t)kind);
    uint64_t id = gs_hash_bytes(rec, sizeof rec, 0x67737461736B31ULL) & 0x7FFFFFFFFFFFFFFFULL;
    return id ? id : 1; // "gstask1"
}

void gs__task_key(uint64_t scene_id, uint32_t first, uint32_t n, char out[40])
{
    snprintf(out, 40, "t/%016llx/%08x/%08x", (unsigned long long)scene_id, first, n);
}

static int hexval(const char *s, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

int gs__task_key_parse(const char *key, uint64_t *scene_id, uint32_t *first, uint32_t *n)
{
    uint64_t a, b;
    if (strlen(key) != 36 || strncmp(key, "t/", 2) != 0 || key[18] != '/' || key[27] != '/')
        return 0;
    if (!hexval(key + 2, 16, scene_id) || !hexval(key + 19, 8, &a) || !hexval(key + 28, 8, &b))
        return 0;
    *first = (uint32_t)a;
    *n = (uint32_t)b;
    return 1;
}

char *gs__shard_path(const gs_coord_t *c, uint64_t task_id)
{
    return gs_xasprintf("%s/%016llx.shard", c->staging, (unsigned long long)task_id);
}

// ---- settings -------------------------------------------------------------------------------

// settings_text: the settings that decide what an output's records and vectors mean, one
// "key=value" line each. Everything else (inputs, batch, threads, time settings, nprobe) may
// change between runs of one output.
static char *settings_text(const gs_job_t *j, const gs_ingest_models_t *m)
{
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    gs__settings_encoder(&b, m);
    gs_buf_printf(&b, "captioner.model_id=%s\n", m->captioner_id ? m->captioner_id : "");
    if (m->captioner_id && *m->captioner_id) {
        gs_buf_printf(&b, "captioner.prompt=%s\ncaptioner.max_tokens=%d\n", j->captioner.prompt,
                      j->captioner.max_tokens);
        if (j->captioner.select == GS_JOB_SELECT_SAMPLE)
            gs_buf_printf(&b, "captioner.select=sample:%.17g\n", j->captioner.sample_fraction);
        else if (j->captioner.select == GS_JOB_SELECT_PER_SCENE)
            gs_buf_printf(&b, "captioner.select=per_scene:%d\n", j->captioner.per_scene);
        else
            gs_buf_printf(&b, "captioner.select=%s\n",
                          j->captioner.select == GS_JOB_SELECT_NONE ? "none" : "all");
    }
    gs__settings_image(&b, j);
    gs_buf_printf(&b, "scenes.checksum=%s\n",
                  j->scenes.checksum == GS_JOB_CHECKSUM_FULL ? "full" : "quick");
    gs_buf_printf(&b, "tasks.max_tiles=%d\nindex.type=%s\nindex.flat_max=%lld\n",
                  j->tasks.max_tiles, j->index.type, (long long)j->index.flat_max);
    return gs_buf_steal(&b);
}

// is_empty: no scene, tile or ledger record yet.
static bool is_empty(gs_coord_t *c)
{
    static const gs_cf_t cfs[] = {GS_CF_SCENES, GS_CF_TILES, GS_CF_JOBS, GS_CF_QUARANTINE};
    for (size_t i = 0; i < sizeof cfs / sizeof cfs[0]; i++) {
        uint64_t n = 1;
        if (gs_capstore_count(c->store, cfs[i], true, &n) != GS_OK || n > 0)
            return false;
    }
    return true;
}

// check_settings: records the settings on the first run, compares them on later ones.
static gs_err check_settings(gs_coord_t *c, char *err, size_t err_nbytes)
{
    const char *old = NULL;
    gs_err e = gs_capstore_meta_get(c->store, "ingest.settings", c->arena, &old);
    if (e == GS_OK && strcmp(old, c->settings) != 0 && is_empty(c)) {
        // nothing was made with the recorded settings yet (the first run stopped before any
        // scene was probed, e.g. on a typo in the inputs): the new ones replace them
        GS_LOG_INFO("output \"%s\" holds no records yet: recording this job's settings", c->out);
        e = GS_ENOTFOUND;
    }
    if (e == GS_OK) {
        if (strcmp(old, c->settings) == 0)
            return GS_OK;
        char diff[1024];
        gs__settings_difference(old, c->settings, diff, sizeof diff);
        const char *model = NULL;
        if (strstr(diff, "encoder.model_id") &&
            gs_capstore_meta_get(c->store, "encoder.model", c->arena, &model) == GS_OK)
            gs__errf(err, err_nbytes,
                 "output \"%s\" was made with another encoder model (\"%s\"): %s; use another "
                 "output directory or the model of the first run",
                 c->out, model, diff);
        else
            gs__errf(err, err_nbytes,
                 "output \"%s\" was made with other settings: %s; use another output "
                 "directory or the settings of the first run",
                 c->out, diff);
        return GS_EMISMATCH;
    }
    if (e != GS_ENOTFOUND) {
        gs__errf(err, err_nbytes, "could not read the settings of output \"%s\": %s", c->out,
             gs_strerror(e));
        return e;
    }
    uint64_t n_tiles = 0;
    if (gs_capstore_count(c->store, GS_CF_TILES, false, &n_tiles) == GS_OK && n_tiles > 0) {
        gs__errf(err, err_nbytes,
             "store \"%s\" holds tile records but no ingest settings: not an "
             "ingest output",
             c->db_path);
        return GS_EMISMATCH;
    }
    char hash[17], dim[16];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->settings_hash);
    snprintf(dim, sizeof dim, "%d", c->models.dim);
    gs_capstore_batch_t *b = gs_capstore_batch_new(c->store);
    gs_capstore_batch_meta_set(b, "ingest.settings", c->settings);
    gs_capstore_batch_meta_set(b, "ingest.settings_hash", hash);
    gs_capstore_batch_meta_set(b, "encoder.model_id", c->models.encoder_id);
    // absolute paths, so that a search started in another directory finds the models
    char *enc_abs = gs_path_absolute(c->job->encoder.model);
    char *voc_abs = gs_path_absolute(c->job->encoder.vocab);
    char *cap_abs = gs_path_absolute(c->job->captioner.model);
    gs_capstore_batch_meta_set(b, "encoder.model", enc_abs);
    gs_capstore_batch_meta_set(b, "encoder.arch", c->job->encoder.arch);
    gs_capstore_batch_meta_set(b, "encoder.dim", dim);
    gs_capstore_batch_meta_set(b, "encoder.preprocess", c->models.preprocess);
    if (*c->job->encoder.vocab) // where search finds the text tower's vocabulary
        gs_capstore_batch_meta_set(b, "encoder.vocab", voc_abs);
    gs_capstore_batch_meta_set(b, "captioner.model_id", c->models.captioner_id);
    gs_capstore_batch_meta_set(b, "captioner.model", cap_abs);
    gs_free(enc_abs);
    gs_free(voc_abs);
    gs_free(cap_abs);
    gs_capstore_batch_meta_set(b, "job.name", c->job->name);
    e = gs_capstore_write(c->store, b, true);
    gs_capstore_batch_destroy(&b);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not write the settings of output \"%s\"", c->out);
    return e;
}

// ---- the ledger -----------------------------------------------------------------------------

static int ledger_entry(const gs_job_rec_t *r, void *ud)
{
    gs_coord_t *c = ud;
    uint64_t scene;
    uint32_t first, n;
    if (!gs__task_key_parse(r->task_key, &scene, &first, &n))
        return 0; // not one of ours
    if (c->n_ledger == c->cap_ledger) {
        c->cap_ledger = c->cap_ledger ? c->cap_ledger * 2 : 1024;
        c->ledger = gs_xrealloc(c->ledger, c->cap_ledger * sizeof *c->ledger);
    }
    gs__ledger_t *l = &c->ledger[c->n_ledger];
    l->task_id = gs__task_id(c->job, n ? GS__TASK_TILES : GS__TASK_PROBE, scene, first, n);
    l->state = r->state;
    l->n_tiles = r->n_tiles;
    l->n_skipped = r->n_skipped;
    l->attempts = r->attempts;
    gs__map_put(&c->ledger_map, l->task_id, (uint32_t)c->n_ledger);
    c->n_ledger++;
    return 0;
}

// ---- planning -------------------------------------------------------------------------------

uint32_t gs__task_add(gs_coord_t *c, const gs__task_t *t)
{
    if (c->n_tasks == c->cap_tasks) {
        c->cap_tasks = c->cap_tasks ? c->cap_tasks * 2 : 1024;
        c->tasks = gs_xrealloc(c->tasks, c->cap_tasks * sizeof *c->tasks);
    }
    uint32_t i = (uint32_t)c->n_tasks++;
    c->tasks[i] = *t;
    gs__map_put(&c->task_map, t->id, i);
    return i;
}

void gs__plan_scene(gs_coord_t *c, uint32_t si, gs_capstore_batch_t *b)
{
    gs__scene_t *s = &c->scenes[si];
    int64_t n_cells = gs_tile_grid_count(&s->grid);
    uint32_t step = (uint32_t)c->job->tasks.max_tiles;
    for (int64_t first = 0; first < n_cells; first += step) {
        uint32_t n = (uint32_t)(n_cells - first < step ? n_cells - first : step);
        gs__task_t t = {.id = gs__task_id(c->job, GS__TASK_TILES, s->id, (uint32_t)first, n),
                        .scene = si,
                        .first = (uint32_t)first,
                        .n = n,
                        .kind = GS__TASK_TILES,
                        .state = GS__T_QUEUED,
                        .rank = -1};
        uint32_t li;
        int known = gs__map_get(&c->ledger_map, t.id, &li);
        if (known && c->ledger[li].state == GS_JOB_DONE) {
            t.state = GS__T_DONE;
            t.n_tiles = c->ledger[li].n_tiles;
            t.n_skipped = c->ledger[li].n_skipped;
            c->sum.n_tasks_done++;
            c->sum.n_tiles += t.n_tiles;
            c->sum.n_skipped += t.n_skipped;
        } else if (!known && b) {
            char key[40];
            gs__task_key(s->id, t.first, t.n, key);
            gs_job_rec_t r = {
                .task_key = key, .state = GS_JOB_PLANNED, .time_unix = (int64_t)time(NULL)};
            gs_capstore_batch_put_job(b, &r);
        }
        uint32_t ti = gs__task_add(c, &t);
        if (t.state == GS__T_QUEUED)
            gs__u32s_push(&c->q_tiles, ti);
        c->sum.n_tasks++;
        c->sum.n_cells += n;
    }
}

void gs__caption_cells_key(uint64_t scene_id, char out[64])
{
    snprintf(out, 64, "ingest.caption_cells/%016llx", (unsigned long long)scene_id);
}

void gs__caption_cells_set(gs__scene_t *s, const char *text)
{
    gs_free(s->caption_cells);
    s->caption_cells = NULL;
    s->n_caption_cells = 0;
    size_t n = *text ? 1 : 0;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    if (!n)
        return;
    s->caption_cells = gs_xcalloc(n, sizeof *s->caption_cells);
    for (const char *p = text; *p && s->n_caption_cells < n;) {
        char *end = NULL;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p)
            break;
        s->caption_cells[s->n_caption_cells++] = (uint32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
}

void gs__quarantine(gs_coord_t *c, uint32_t si, const char *reason, gs_capstore_batch_t *b)
{
    gs__scene_t *s = &c->scenes[si];
    if (s->quarantined)
        return;
    s->quarantined = 1;
    gs_quarantine_rec_t q = {.uri = s->uri, .reason = reason, .time_unix = (int64_t)time(NULL)};
    gs_capstore_batch_put_quarantine(b, &q);
    if (c->n_quar == c->cap_quar) {
        c->cap_quar = c->cap_quar ? c->cap_quar * 2 : 16;
        c->q_uris = gs_xrealloc(c->q_uris, c->cap_quar * sizeof *c->q_uris);
        c->q_reasons = gs_xrealloc(c->q_reasons, c->cap_quar * sizeof *c->q_reasons);
    }
    c->q_uris[c->n_quar] = gs_xstrdup(s->uri);
    c->q_reasons[c->n_quar] = gs_xstrdup(reason);
    c->n_quar++;
    c->sum.n_quarantined++;
    GS_LOG_WARN("scene \"%s\" quarantined: %s", s->uri, reason);
}

// plan: catalogue -> scenes; probed scenes (a scene record exists) get their tile tasks, the
// others a probe task.
static gs_err plan(gs_coord_t *c, char *err, size_t err_nbytes)
{
    gs_catalog_t cat = {0};
    gs_err e = gs_catalog_build(c->job, &cat, err, err_nbytes);
    if (e != GS_OK)
        return e;
    c->n_scenes = cat.n_scenes;
    c->scenes = gs_xcalloc(cat.n_scenes ? cat.n_scenes : 1, sizeof *c->scenes);
    for (size_t i = 0; i < cat.n_scenes; i++) {
        c->scenes[i].uri = cat.uris[i];
        cat.uris[i] = NULL;
        c->scenes[i].id = gs_scene_id_of(c->scenes[i].uri);
        c->scenes[i].checksum = gs_xstrdup("");
        gs__map_put(&c->scene_map, c->scenes[i].id, (uint32_t)i);
    }
    gs_catalog_cleanup(&cat);
    c->sum.n_scenes = c->n_scenes;
    gs_capstore_batch_t *b = gs_capstore_batch_new(c->store);
    bool per_scene = *c->models.captioner_id && c->job->captioner.select == GS_JOB_SELECT_PER_SCENE;
    enum { CHUNK = 1024 };
    uint64_t ids[CHUNK];
    const void *vals[CHUNK];
    size_t lens[CHUNK];
    for (size_t s0 = 0; s0 < c->n_scenes && e == GS_OK; s0 += CHUNK) {
        size_t n = c->n_scenes - s0 < CHUNK ? c->n_scenes - s0 : CHUNK;
        for (size_t i = 0; i < n; i++)
            ids[i] = c->scenes[s0 + i].id;
        gs_arena_reset(c->arena);
        e = gs_capstore_multi_get(c->store, GS_CF_SCENES, n, ids, c->arena, vals, lens);
        for (size_t i = 0; i < n && e == GS_OK; i++) {
            gs__scene_t *s = &c->scenes[s0 + i];
            gs_scene_rec_t r;
            if (vals[i] && gs_rec_decode_scene(vals[i], lens[i], c->arena, &r) == GS_OK &&
                gs_tile_grid_init(&s->grid, r.width, r.height, c->job->tiling.size,
                                  c->job->tiling.overlap, c->job->tiling.edge) == GS_OK) {
                s->probed = 1;
                s->width = r.width;
                s->height = r.height;
                gs_free(s->checksum);
                s->checksum = gs_xstrdup(r.checksum);
                const char *cells = NULL;
                char key[64];
                gs__caption_cells_key(s->id, key);
                if (per_scene && gs_capstore_meta_get(c->store, key, c->arena, &cells) == GS_OK)
                    gs__caption_cells_set(s, cells);
                gs__plan_scene(c, (uint32_t)(s0 + i), b);
            } else {
                gs__task_t t = {.id = gs__task_id(c->job, GS__TASK_PROBE, s->id, 0, 0),
                                .scene = (uint32_t)(s0 + i),
                                .kind = GS__TASK_PROBE,
                                .state = GS__T_QUEUED,
                                .rank = -1};
                gs__u32s_push(&c->q_probes, gs__task_add(c, &t));
                c->n_probes_total++;
            }
        }
        if (e == GS_OK && gs_capstore_batch_count(b) > 10000) {
            e = gs_capstore_write(c->store, b, false);
            gs_capstore_batch_clear(b);
        }
    }
    if (e == GS_OK && gs_capstore_batch_count(b))
        e = gs_capstore_write(c->store, b, false);
    gs_capstore_batch_destroy(&b);
    if (e != GS_OK)
        gs__errf(err, err_nbytes, "could not plan the job in \"%s\": %s", c->db_path, gs_strerror(e));
    return e;
}

// ---- open / close ---------------------------------------------------------------------------

static gs_err prepare_output(gs_coord_t *c, char *err, size_t err_nbytes)
{
    GS_TRY(gs__job_output_dirs(c->out, c->staging, err, err_nbytes));
    gs_err e;
    gs_capstore_opts_t o = {.create_if_missing = true};
    e = gs_capstore_open(c->db_path, &o, &c->store);
    if (e != GS_OK) {
        gs__errf(err, err_nbytes,
             "could not open the store \"%s\" (%s); is another ingest running "
             "on this output?",
             c->db_path, gs_strerror(e));
        return e;
    }
    return gs__job_write_spec(c->job, c->out, "job.yaml", err, err_nbytes);
}

static void copy_models(gs_coord_t *c, const gs_ingest_models_t *m)
{
    c->models.encoder_id = gs_xstrdup(m->encoder_id ? m->encoder_id : "");
    c->models.dim = m->dim;
    c->models.preprocess = gs_xstrdup(m->preprocess ? m->preprocess : "");
    c->models.captioner_id = gs_xstrdup(m->captioner_id ? m->captioner_id : "");
}

gs_err gs_coord_open(const gs_job_t *job, const char *job_path, const gs_ingest_models_t *models,
                     int n_workers, gs_coord_t **out, char *err, size_t err_nbytes)
{
    *out = NULL;
    gs_coord_t *c = gs_xcalloc(1, sizeof *c);
    c->t0 = gs_clock_s();
    c->job = job;
    c->job_path = gs_xstrdup(job_path ? job_path : "");
    c->n_workers = n_workers > 0 ? n_workers : 1;
    c->out = gs_xstrdup(job->output);
    c->db_path = gs_path_join(job->output, GS_LAYOUT_STORE);
    c->index_path = gs_path_join(job->output, GS_LAYOUT_INDEX);
    c->staging = gs_path_join(job->output, GS_LAYOUT_STAGING);
    c->arena = gs_arena_new(1 << 20, 0);
    c->tty = isatty(2) == 1;
    // tests make the index persist often, to kill a run between commits and index writes
    c->persist_s =
        gs_getenv_int("GS_INGEST_PERSIST_MS", (int)(GS_COORD_PERSIST_S * 1000), 0, 86400000) /
        1000.0;
    copy_models(c, models);
    c->settings = settings_text(job, &c->models);
    c->settings_hash = gs_hash_str(c->settings, 0x677373657431ULL); // "gsset1"
    gs__map_init(&c->scene_map);
    gs__map_init(&c->task_map);
    gs__map_init(&c->ledger_map);
    gs_err e = prepare_output(c, err, err_nbytes);
    if (e == GS_OK)
        e = check_settings(c, err, err_nbytes);
    if (e == GS_OK) // `status` must not call an output complete while a run goes on
        e = gs_capstore_meta_set(c->store, "ingest.complete", "0");
    if (e == GS_OK) {
        c->batch = gs_capstore_batch_new(c->store);
        e = gs_capstore_scan_jobs(c->store, ledger_entry, c);
        if (e != GS_OK)
            gs__errf(err, err_nbytes, "could not read the ledger of \"%s\"", c->db_path);
    }
    if (e == GS_OK)
        e = gs__vidx_open(c, err, err_nbytes);
    if (e == GS_OK)
        e = plan(c, err, err_nbytes);
    if (e == GS_OK) {
        e = gs__recover(c);
        if (e != GS_OK)
            gs__errf(err, err_nbytes, "could not recover the staged shards of \"%s\": %s", c->out,
                 gs_strerror(e));
    }
    if (e != GS_OK) {
        gs_coord_close(&c);
        return e;
    }
    GS_LOG_INFO("job \"%s\": %zu scenes (%llu to probe), %llu tile tasks (%llu done), %llu "
                "cells, output \"%s\"",
                job->name, c->n_scenes, (unsigned long long)c->n_probes_total,
                (unsigned long long)c->sum.n_tasks, (unsigned long long)c->sum.n_tasks_done,
                (unsigned long long)c->sum.n_cells, c->out);
    c->last_progress = 0;
    if (c->last_persist == 0)
        c->last_persist = gs_clock_s();
    *out = c;
    return GS_OK;
}

uint64_t gs_coord_settings_hash(const gs_coord_t *self)
{
    return self->settings_hash;
}

bool gs_coord_quarantined(const gs_coord_t *self, size_t i, const char **out_uri,
                          const char **out_reason)
{
    if (i >= self->n_quar)
        return false;
    *out_uri = self->q_uris[i];
    *out_reason = self->q_reasons[i];
    return true;
}

void gs_coord_close(gs_coord_t **p)
{
    if (!p || !*p)
        return;
    gs_coord_t *c = *p;
    gs__reqs_cleanup(&c->pending);
    gs_vindex_destroy(&c->index);
    gs_capstore_batch_destroy(&c->batch);
    gs_capstore_close(&c->store);
    for (size_t i = 0; i < c->n_scenes; i++) {
        gs_free(c->scenes[i].uri);
        gs_free(c->scenes[i].checksum);
        gs_free(c->scenes[i].caption_cells);
    }
    gs_free(c->scenes);
    gs_free(c->tasks);
    gs_free(c->ledger);
    gs_free(c->staged);
    gs__map_cleanup(&c->scene_map);
    gs__map_cleanup(&c->task_map);
    gs__map_cleanup(&c->ledger_map);
    gs_free(c->q_tiles.v);
    gs_free(c->q_probes.v);
    for (size_t i = 0; i < c->n_quar; i++) {
        gs_free(c->q_uris[i]);
        gs_free(c->q_reasons[i]);
    }
    gs_free(c->q_uris);
    gs_free(c->q_reasons);
    gs_free((char *)c->models.encoder_id);
    gs_free((char *)c->models.preprocess);
    gs_free((char *)c->models.captioner_id);
    gs_free(c->settings);
    gs_arena_destroy(&c->arena);
    gs_free(c->job_path);
    gs_free(c->out);
    gs_free(c->db_path);
    gs_free(c->index_path);
    gs_free(c->staging);
    gs_free(c);
    *p = NULL;
}
