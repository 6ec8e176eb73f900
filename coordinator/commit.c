// Committing results: a probe's scene record (then the scene's tile tasks are planned), a
// tile task's shard (checked against the plan, then one RocksDB batch with its records and
// its ledger entry, then its vectors into the index), failures (retried) and quarantines. And
// start-up recovery: shards left in OUT/staging by an interrupted run are either re-added to
// the index (their task is committed) or committed now (their task is not).
#define GS_LOG_MODULE "coordinator"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "coordinator/ingest_int.h"

// ---- ledger entries -------------------------------------------------------------------------

static gs_err put_ledger(gs_coord_t *c, gs_capstore_batch_t *b, const gs__task_t *t, uint8_t state,
                         const char *shard, const char *hash, const char *error)
{
    char key[40];
    gs__task_key(c->scenes[t->scene].id, t->first, t->n, key);
    uint32_t li;
    uint32_t before = gs__map_get(&c->ledger_map, t->id, &li) ? c->ledger[li].attempts : 0;
    gs_job_rec_t r = {.task_key = key,
                      .state = state,
                      .attempts = before + t->attempts,
                      .n_tiles = t->n_tiles,
                      .n_skipped = t->n_skipped,
                      .time_unix = (int64_t)time(NULL),
                      .shard_path = shard ? shard : "",
                      .shard_hash = hash ? hash : "",
                      .error = error ? error : ""};
    return gs_capstore_batch_put_job(b, &r);
}

// fail_task: a task-level failure: retried while attempts remain, else left failed (a rerun
// tries again). The ledger records the error either way.
static gs_err fail_task(gs_coord_t *c, uint32_t ti, const char *why)
{
    gs__task_t *t = &c->tasks[ti];
    gs__scene_t *s = &c->scenes[t->scene];
    GS_LOG_WARN("task %016llx (%s, cells %u+%u) failed (attempt %u): %s", (unsigned long long)t->id,
                s->uri, t->first, t->n, t->attempts, why);
    if (t->attempts < GS_COORD_MAX_ATTEMPTS) {
        t->state = GS__T_QUEUED;
        gs__u32s_push(t->kind == GS__TASK_PROBE ? &c->q_probes : &c->q_tiles, ti);
    } else {
        t->state = GS__T_FAILED;
        if (t->kind == GS__TASK_PROBE)
            c->n_probes_done++; // and counted failed: the run is incomplete, a rerun retries
        c->sum.n_tasks_failed++;
    }
    if (t->kind == GS__TASK_PROBE)
        return GS_OK;
    gs_capstore_batch_clear(c->batch);
    GS_TRY(put_ledger(c, c->batch, t, GS_JOB_FAILED, NULL, NULL, why));
    return gs_capstore_write(c->store, c->batch, false);
}

// quarantine_task: the scene is bad: quarantined with its reason; its queued tasks are dropped
// when dispatch reaches them.
static gs_err quarantine_task(gs_coord_t *c, uint32_t ti, const char *reason)
{
    gs__task_t *t = &c->tasks[ti];
    t->state = GS__T_QUARANTINED;
    gs_capstore_batch_clear(c->batch);
    gs__quarantine(c, t->scene, reason, c->batch);
    if (t->kind == GS__TASK_PROBE)
        c->n_probes_done++;
    else
        GS_TRY(put_ledger(c, c->batch, t, GS_JOB_QUARANTINED, NULL, NULL, reason));
    return gs_capstore_write(c->store, c->batch, false);
}

// ---- probes ---------------------------------------------------------------------------------

static gs_err commit_probe(gs_coord_t *c, uint32_t ti, const Geoscribe__TaskResult *r)
{
    gs__task_t *t = &c->tasks[ti];
    gs__scene_t *s = &c->scenes[t->scene];
    if (r->status != GS_OK && r->problem != 0)
        return quarantine_task(c, ti, r->message && *r->message ? r->message : "bad scene");
    if (r->status != GS_OK)
        return fail_task(c, ti, r->message && *r->message ? r->message : gs_strerror(r->status));
    gs_arena_reset(c->arena);
    gs_scene_rec_t rec;
    if (gs_rec_decode_scene(r->scene_record.data, r->scene_record.len, c->arena, &rec) != GS_OK ||
        rec.scene_id != s->id)
        return fail_task(c, ti, "the probe sent a malformed scene record");
    if (gs_tile_grid_init(&s->grid, rec.width, rec.height, c->job->tiling.size,
                          c->job->tiling.overlap, c->job->tiling.edge) != GS_OK)
        return quarantine_task(c, ti, "the scene has no pixels");
    s->probed = 1;
    s->width = rec.width;
    s->height = rec.height;
    gs_free(s->checksum);
    s->checksum = gs_xstrdup(rec.checksum);
    t->state = GS__T_DONE;
    c->n_probes_done++;
    gs_capstore_batch_clear(c->batch);
    GS_TRY(gs_capstore_batch_put_scene(c->batch, &rec));
    if (*c->models.captioner_id && c->job->captioner.select == GS_JOB_SELECT_PER_SCENE) {
        // the cells to caption, chosen by the probe; kept with the scene for later runs
        gs_buf_t b;
        gs_buf_init(&b, 1 << 24);
        for (size_t i = 0; i < r->n_caption_cells; i++)
            gs_buf_printf(&b, "%s%u", i ? "," : "", r->caption_cells[i]);
        gs__caption_cells_set(s, b.len ? b.data : "");
        char key[64];
        gs__caption_cells_key(s->id, key);
        gs_err e = gs_capstore_batch_meta_set(c->batch, key, b.len ? b.data : "");
        gs_buf_cleanup(&b);
        GS_TRY(e);
    }
    // a scene quarantined by an earlier run that opens now is no longer quarantined
    GS_TRY(gs_capstore_batch_delete(c->batch, GS_CF_QUARANTINE, s->uri, strlen(s->uri)));
    gs__plan_scene(c, t->scene, c->batch);
    return gs_capstore_write(c->store, c->batch, false);
}

// ---- shards ---------------------------------------------------------------------------------

typedef struct {
    uint64_t id;
    uint32_t cell;
    uint8_t seen, kept, captioned;
} planned_t;

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const planned_t *)a)->id, y = ((const planned_t *)b)->id;
    return x < y ? -1 : x > y;
}

static planned_t *find_planned(planned_t *p, size_t n, uint64_t id)
{
    planned_t key = {.id = id};
    return bsearch(&key, p, n, sizeof *p, by_id);
}

// check_cells: the shard's kept and skipped ids are exactly the task's cells, each once, and
// every tile record sits at its cell's window in this scene.
static gs_err check_cells(gs_coord_t *c, const gs__task_t *t, const gs_shard_data_t *d, char *why,
                          size_t why_nbytes)
{
    const gs__scene_t *s = &c->scenes[t->scene];
    planned_t *p = gs_arena_alloc(c->arena, (size_t)t->n * sizeof *p);
    gs_tile_t *cells = gs_arena_alloc(c->arena, (size_t)t->n * sizeof *cells);
    if (!p || !cells)
        return GS_ENOMEM;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t cell = t->first + i;
        if (gs_tile_grid_cell(&s->grid, s->id, (int)(cell % (uint32_t)s->grid.n_cols),
                              (int)(cell / (uint32_t)s->grid.n_cols), &cells[i]) != GS_OK) {
            snprintf(why, why_nbytes, "cell %u is outside the scene grid", cell);
            return GS_EMISMATCH;
        }
        p[i] = (planned_t){.id = cells[i].id, .cell = i};
    }
    qsort(p, t->n, sizeof *p, by_id);
    for (uint32_t i = 0; i < d->h.n_tiles + d->h.n_skipped; i++) {
        int kept = i < d->h.n_tiles;
        uint64_t id = kept ? d->ids[i] : d->skipped_ids[i - d->h.n_tiles];
        planned_t *q = find_planned(p, t->n, id);
        if (!q || q->seen) {
            snprintf(why, why_nbytes, "shard id %016llx is %s", (unsigned long long)id,
                     q ? "repeated" : "not a cell of the task");
            return GS_EMISMATCH;
        }
        q->seen = 1;
        q->kept = (uint8_t)kept;
        if (!kept)
            continue;
        const gs_tile_rec_t *r = &d->tiles[i];
        const gs_tile_t *w = &cells[q->cell];
        if (r->scene_id != s->id || r->x != w->x || r->y != w->y || r->w != w->w || r->h != w->h) {
            snprintf(why, why_nbytes, "tile record %016llx does not match its cell",
                     (unsigned long long)id);
            return GS_EMISMATCH;
        }
    }
    // captions: of kept tiles of the task, at most one each
    for (uint32_t i = 0; i < d->h.n_captions; i++) {
        planned_t *q = find_planned(p, t->n, d->captions[i].tile_id);
        if (!q || !q->kept || q->captioned) {
            snprintf(why, why_nbytes, "caption of %016llx is not for a kept tile of the task",
                     (unsigned long long)d->captions[i].tile_id);
            return GS_EMISMATCH;
        }
        q->captioned = 1;
    }
    return GS_OK;
}

// check_collisions: a kept id already stored for another (scene, window) is a 64-bit hash
// collision (jobs/tiles.h): refused rather than overwritten.
static gs_err check_collisions(gs_coord_t *c, const gs_shard_data_t *d, char *why,
                               size_t why_nbytes)
{
    size_t n = d->h.n_tiles;
    if (!n)
        return GS_OK;
    gs_tile_rec_t *old = gs_arena_alloc(c->arena, n * sizeof *old);
    uint8_t *found = gs_arena_alloc(c->arena, n);
    if (!old || !found)
        return GS_ENOMEM;
    GS_TRY(gs_capstore_get_tiles(c->store, n, d->ids, old, found));
    for (size_t i = 0; i < n; i++) {
        const gs_tile_rec_t *r = &d->tiles[i];
        if (found[i] && (old[i].scene_id != r->scene_id || old[i].x != r->x || old[i].y != r->y ||
                         old[i].w != r->w || old[i].h != r->h)) {
            snprintf(why, why_nbytes,
                     "tile id %016llx is already taken by scene %016llx "
                     "(a 64-bit id collision)",
                     (unsigned long long)r->tile_id, (unsigned long long)old[i].scene_id);
            return GS_EEXIST;
        }
    }
    return GS_OK;
}

gs_err gs__commit_shard(gs_coord_t *c, uint32_t ti, gs_shard_t *sh, const char *hash, char *why,
                        size_t why_nbytes)
{
    gs__task_t *t = &c->tasks[ti];
    const gs__scene_t *s = &c->scenes[t->scene];
    const gs_shard_data_t *d = gs_shard_data(sh);
    if (d->h.task_id != t->id || d->h.scene_id != s->id || d->h.n_cells != t->n) {
        snprintf(why, why_nbytes, "the shard is for another task");
        return GS_EMISMATCH;
    }
    if (d->h.settings_hash != c->settings_hash || d->h.dim != c->models.dim) {
        snprintf(why, why_nbytes,
                 "the shard was made with other settings (settings %016llx, "
                 "dim %d; the output has %016llx, %d)",
                 (unsigned long long)d->h.settings_hash, d->h.dim,
                 (unsigned long long)c->settings_hash, c->models.dim);
        return GS_EMISMATCH;
    }
    gs_arena_reset(c->arena);
    GS_TRY(check_cells(c, t, d, why, why_nbytes));
    GS_TRY(check_collisions(c, d, why, why_nbytes));
    t->n_tiles = d->h.n_tiles;
    t->n_skipped = d->h.n_skipped;
    char shard[64];
    snprintf(shard, sizeof shard, "staging/%016llx.shard", (unsigned long long)t->id);
    gs_capstore_batch_t *b = c->batch;
    gs_capstore_batch_clear(b);
    gs_err e = GS_OK;
    for (uint32_t i = 0; i < d->h.n_tiles && e == GS_OK; i++)
        e = gs_capstore_batch_put_tile(b, &d->tiles[i]);
    for (uint32_t i = 0; i < d->h.n_captions && e == GS_OK; i++)
        e = gs_capstore_batch_put_caption(b, &d->captions[i]);
    if (e == GS_OK)
        e = put_ledger(c, b, t, GS_JOB_DONE, shard, hash, NULL);
    if (e == GS_OK)
        e = gs_capstore_write(c->store, b, false);
    if (e != GS_OK) {
        GS_LOG_ERROR("could not commit task %016llx: %s", (unsigned long long)t->id,
                     gs_strerror(e));
        return GS_EIO;
    }
    t->state = GS__T_DONE;
    c->sum.n_tasks_done++;
    c->sum.n_tiles += t->n_tiles;
    c->sum.n_tiles_run += t->n_tiles;
    c->sum.n_skipped += t->n_skipped;
    return gs__vidx_add(c, t->id, t->n_tiles, d);
}

static int fatal(gs_err e)
{
    return e == GS_EIO || e == GS_EBACKEND || e == GS_ENOMEM;
}

static gs_err commit_tiles(gs_coord_t *c, uint32_t ti, const Geoscribe__TaskResult *r)
{
    gs__task_t *t = &c->tasks[ti];
    const char *msg = r->message && *r->message ? r->message : gs_strerror(r->status);
    if (r->status != GS_OK && r->problem != 0)
        return quarantine_task(c, ti, msg);
    if (r->status != GS_OK)
        return fail_task(c, ti, msg);
    char *path = gs__shard_path(c, t->id);
    gs_shard_t *sh = NULL;
    char hash[17] = "", why[512] = "";
    gs_err e = gs_shard_read(path, &sh, hash);
    if (e == GS_OK) {
        e = gs__commit_shard(c, ti, sh, hash, why, sizeof why);
    } else {
        snprintf(why, sizeof why, "shard \"%s\" is %s", path,
                 e == GS_ENOTFOUND ? "missing" : "unreadable or damaged");
        e = e == GS_ENOMEM ? e : GS_EFORMAT;
    }
    gs_shard_destroy(&sh);
    if (e != GS_OK && !fatal(e)) {
        unlink(path);
        e = fail_task(c, ti, why);
    }
    gs_free(path);
    return e;
}

gs_err gs__commit_result(gs_coord_t *c, const Geoscribe__TaskResult *r)
{
    uint32_t ti;
    if (!gs__map_get(&c->task_map, r->task_id, &ti) || c->tasks[ti].state != GS__T_RUNNING) {
        GS_LOG_WARN("result for task %016llx ignored: not a running task of this job",
                    (unsigned long long)r->task_id);
        return GS_OK;
    }
    c->n_running--;
    return c->tasks[ti].kind == GS__TASK_PROBE ? commit_probe(c, ti, r) : commit_tiles(c, ti, r);
}

// ---- start-up recovery ----------------------------------------------------------------------

static int shard_name_id(const char *name, uint64_t *out)
{
    // "<16 hex>.shard"
    if (strlen(name) != 22 || strcmp(name + 16, ".shard") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = name[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

// revert_done: a committed task whose shard is damaged (its vectors may be missing from the
// persisted index): its tile and caption records go and its ledger entry returns to planned,
// so that it is done again (same ids; gs_vindex_add skips those the index has).
static gs_err revert_done(gs_coord_t *c, const char *path, uint64_t task_id)
{
    uint32_t ti;
    if (!gs__map_get(&c->task_map, task_id, &ti) || c->tasks[ti].kind != GS__TASK_TILES) {
        GS_LOG_ERROR("the shard \"%s\" of a committed task of a scene outside this job's inputs "
                     "is damaged: rerun with that scene among the inputs to redo it",
                     path);
        return GS_OK; // kept for that run
    }
    gs__task_t *t = &c->tasks[ti];
    const gs__scene_t *s = &c->scenes[t->scene];
    GS_LOG_WARN("the shard \"%s\" of committed task %016llx (%s) is damaged: the task is done "
                "again",
                path, (unsigned long long)task_id, s->uri);
    gs_capstore_batch_clear(c->batch);
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t cell = t->first + i;
        gs_tile_t tile;
        if (gs_tile_grid_cell(&s->grid, s->id, (int)(cell % (uint32_t)s->grid.n_cols),
                              (int)(cell / (uint32_t)s->grid.n_cols), &tile) != GS_OK)
            continue;
        uint8_t key[8];
        gs_rec_key_u64(tile.id, key);
        GS_TRY(gs_capstore_batch_delete(c->batch, GS_CF_TILES, key, 8));
        GS_TRY(gs_capstore_batch_delete(c->batch, GS_CF_CAPTIONS, key, 8));
    }
    if (t->state == GS__T_DONE) {
        c->sum.n_tasks_done--;
        c->sum.n_tiles -= t->n_tiles;
        c->sum.n_skipped -= t->n_skipped;
    }
    t->n_tiles = t->n_skipped = 0;
    t->state = GS__T_QUEUED;
    gs__u32s_push(&c->q_tiles, ti);
    GS_TRY(put_ledger(c, c->batch, t, GS_JOB_PLANNED, NULL, NULL, "shard damaged after commit"));
    GS_TRY(gs_capstore_write(c->store, c->batch, true));
    unlink(path);
    return GS_OK;
}

// recover_one: a shard found in staging at start-up.
static gs_err recover_one(gs_coord_t *c, const char *path, uint64_t task_id)
{
    uint32_t li, ti;
    int done = gs__map_get(&c->ledger_map, task_id, &li) && c->ledger[li].state == GS_JOB_DONE;
    if (done) {
        // committed; its vectors may be missing from the persisted index: add them again
        // (gs_vindex_add skips ids already present)
        gs_shard_t *sh = NULL;
        gs_err e = gs_shard_read(path, &sh, NULL);
        if (e == GS_OK)
            e = gs__vidx_add(c, task_id, c->ledger[li].n_tiles, gs_shard_data(sh));
        gs_shard_destroy(&sh);
        if (e == GS_EFORMAT || e == GS_EIO)
            return revert_done(c, path, task_id); // damaged after its commit
        return e;
    }
    if (gs__map_get(&c->task_map, task_id, &ti) && c->tasks[ti].state == GS__T_QUEUED &&
        c->tasks[ti].kind == GS__TASK_TILES) {
        // finished by a worker, not committed before the interruption: commit it now
        gs_shard_t *sh = NULL;
        char hash[17] = "", why[512] = "";
        gs_err e = gs_shard_read(path, &sh, hash);
        if (e == GS_OK)
            e = gs__commit_shard(c, ti, sh, hash, why, sizeof why);
        gs_shard_destroy(&sh);
        if (e == GS_OK) {
            c->sum.n_recovered++;
            return GS_OK;
        }
        if (fatal(e))
            return e;
        GS_LOG_WARN("staged shard \"%s\" dropped: %s", path, *why ? why : gs_strerror(e));
    }
    unlink(path); // a task not in the ledger nor in this plan, or a bad shard: recomputed
    return GS_OK;
}

gs_err gs__recover(gs_coord_t *c)
{
    DIR *dir = opendir(c->staging);
    if (!dir)
        return GS_EIO;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = gs_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = gs_xstrdup(de->d_name);
    }
    closedir(dir);
    gs_err e = GS_OK;
    for (size_t i = 0; i < n; i++) {
        char *path = gs_path_join(c->staging, names[i]);
        uint64_t id;
        if (e == GS_OK && shard_name_id(names[i], &id))
            e = recover_one(c, path, id);
        else if (e == GS_OK)
            unlink(path); // a temporary of an interrupted write, or a stranger
        gs_free(path);
        gs_free(names[i]);
    }
    gs_free(names);
    if (e == GS_OK && (c->n_staged || c->sum.n_recovered))
        GS_LOG_INFO("recovered %zu committed shard%s and committed %llu finished one%s from "
                    "staging",
                    c->n_staged, c->n_staged == 1 ? "" : "s",
                    (unsigned long long)c->sum.n_recovered, c->sum.n_recovered == 1 ? "" : "s");
    if (e == GS_OK)
        e = gs__vidx_maybe_persist(c, true);
    return e;
}
