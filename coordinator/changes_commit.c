// The change coordinator's commits (changes_int.h): a pair task's shard is checked (header,
// every key and record decoded, both scene ids those of the task, pair ids from the keys,
// caption vectors exactly for the captioned records) and committed as one RocksDB batch
// (records + the ledger entry "done"), then its caption vectors go into the change index.
// Shards stay in staging until an index file holding their vectors is on disk, so a crash at
// any point loses nothing: the next run re-adds the vectors of done shards (adds are
// idempotent) and commits finished ones. Also: the reuse files of stored tile embeddings.
#define GS_LOG_MODULE "coordinator"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "coordinator/changes_int.h"
#include "index/vecfile.h"
#include "jobs/tiles.h"
#include "jobs/warp.h"
#include "jobs/warp_shard.h"

// ---- indexes --------------------------------------------------------------------------------

// reusable: the ingest of this output cut and embedded tiles exactly as this job does (every
// encoder, tiling and composite line of our settings is in the ingest's settings).
static bool reusable(gs_chcoord_t *c)
{
    const char *ing = NULL;
    gs_arena_reset(c->arena);
    if (gs_capstore_meta_get(c->store, "ingest.settings", c->arena, &ing) != GS_OK)
        return false;
    char *hay = gs_xasprintf("\n%s", ing);
    bool ok = true;
    for (const char *p = c->settings; *p && ok;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, "encoder.", 8) == 0 || strncmp(p, "tiling.", 7) == 0 ||
            strncmp(p, "composite.", 10) == 0) {
            char *line = gs_xasprintf("\n%.*s\n", (int)len, p);
            ok = strstr(hay, line) != NULL;
            gs_free(line);
        }
        p = nl ? nl + 1 : p + len;
    }
    gs_free(hay);
    return ok;
}

gs_err gs__ch_index_open(gs_chcoord_t *c, char *err, size_t err_nbytes)
{
    gs_vindex_opts_t o = {.dim = c->models.dim, .n_threads = 1};
    gs_err e;
    if (gs_path_exists(c->changes_index_path)) {
        e = gs_vindex_read(c->changes_index_path, &o, &c->index);
        if (e != GS_OK) {
            snprintf(err, err_nbytes, "could not read the change index \"%s\": %s",
                     c->changes_index_path, gs_strerror(e));
            return e;
        }
    } else {
        o.type = "Flat";
        if ((e = gs_vindex_new(&o, &c->index)) != GS_OK) {
            snprintf(err, err_nbytes, "could not create the change index: %s", gs_strerror(e));
            return e;
        }
    }
    if (reusable(c) && gs_path_exists(c->tiles_index_path)) {
        gs_vindex_opts_t to = {.dim = c->models.dim, .n_threads = 1};
        if (gs_vindex_read(c->tiles_index_path, &to, &c->tiles) != GS_OK)
            GS_LOG_WARN("could not read the tile index \"%s\": every tile will be embedded",
                        c->tiles_index_path);
    }
    return GS_OK;
}

void gs__ch_write_reuse(gs_chcoord_t *c, uint32_t ti)
{
    const gs__chtask_t *t = &c->tasks[ti];
    char *path = gs__chreuse_path(c, t->id);
    unlink(path);
    if (!c->tiles) {
        gs_free(path);
        return;
    }
    const gs__chscene_t *sides[2] = {&c->scenes[t->before], &c->scenes[t->after]};
    size_t cap = 0;
    gs_tile_grid_t grids[2];
    bool have[2] = {false, false};
    for (int k = 0; k < 2; k++) {
        have[k] =
            sides[k]->width > 0 &&
            gs_tile_grid_init(&grids[k], sides[k]->width, sides[k]->height, c->job->tiling.size,
                              c->job->tiling.overlap, c->job->tiling.edge) == GS_OK;
        if (have[k])
            cap += (size_t)gs_tile_grid_count(&grids[k]);
    }
    size_t dim = (size_t)c->models.dim, n = 0;
    uint64_t *ids = gs_trymalloc((cap ? cap : 1) * sizeof *ids);
    float *vecs = gs_trymalloc((cap ? cap : 1) * dim * sizeof *vecs);
    for (int k = 0; k < 2 && ids && vecs; k++) {
        if (!have[k])
            continue;
        for (int r = 0; r < grids[k].n_rows; r++)
            for (int col = 0; col < grids[k].n_cols; col++) {
                uint64_t id = gs_tile_id(sides[k]->id, col, r, &grids[k]);
                if (gs_vindex_contains(c->tiles, id) &&
                    gs_vindex_reconstruct(c->tiles, id, vecs + n * dim) == GS_OK)
                    ids[n++] = id;
            }
    }
    // a missing file only means the worker embeds every tile itself
    if (ids && vecs && n > 0 && gs_vecfile_write(path, (int)dim, n, ids, vecs, NULL) != GS_OK)
        unlink(path);
    gs_free(ids);
    gs_free(vecs);
    gs_free(path);
}

gs_err gs__ch_persist(gs_chcoord_t *c)
{
    if (c->index_dirty) {
        GS_TRY(gs_vindex_write(c->index, c->changes_index_path));
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)gs_vindex_ntotal(c->index));
        gs_capstore_batch_clear(c->batch);
        gs_capstore_batch_meta_set(c->batch, "changes.index.ntotal", buf);
        GS_TRY(gs_capstore_write(c->store, c->batch, true)); // records durable before shards go
        c->index_dirty = false;
    }
    for (size_t i = 0; i < c->n_committed; i++) {
        unlink(c->committed[i]);
        gs_free(c->committed[i]);
    }
    c->n_committed = 0;
    c->last_persist = gs_clock_s();
    return GS_OK;
}

static void keep_for_deletion(gs_chcoord_t *c, const char *path)
{
    if (c->n_committed == c->cap_committed) {
        c->cap_committed = c->cap_committed ? c->cap_committed * 2 : 64;
        c->committed = gs_xrealloc(c->committed, c->cap_committed * sizeof *c->committed);
    }
    c->committed[c->n_committed++] = gs_xstrdup(path);
}

static gs_err add_vectors(gs_chcoord_t *c, const gs_warp_shard_data_t *d)
{
    if (d->h.n_vectors == 0)
        return GS_OK;
    GS_TRY(gs_vindex_add(c->index, d->h.n_vectors, d->vecs, d->vec_ids));
    c->index_dirty = true;
    return GS_OK;
}

// ---- commit ---------------------------------------------------------------------------------

static gs_err ledger(gs_chcoord_t *c, const gs__chtask_t *t, uint8_t state, uint32_t n_tiles,
                     uint32_t n_skipped, const char *shard, const char *hash, const char *error)
{
    char key[40];
    gs__chtask_key(c->scenes[t->before].id, c->scenes[t->after].id, key);
    gs_job_rec_t r = {.task_key = key,
                      .state = state,
                      .attempts = t->prior_attempts + t->attempts,
                      .n_tiles = n_tiles,
                      .n_skipped = n_skipped,
                      .time_unix = (int64_t)time(NULL),
                      .shard_path = shard ? shard : "",
                      .shard_hash = hash ? hash : "",
                      .error = error ? error : ""};
    return gs_capstore_batch_put_job(c->batch, &r);
}

// check: the shard is the task's: header, keys, records, vectors. *why says what is wrong.
static gs_err check(gs_chcoord_t *c, const gs__chtask_t *t, const gs_warp_shard_data_t *d,
                    uint32_t *out_n_captions, char *why, size_t why_nbytes)
{
    const gs__chscene_t *B = &c->scenes[t->before], *A = &c->scenes[t->after];
    if (d->h.task_id != t->id || d->h.settings_hash != c->settings_hash) {
        snprintf(why, why_nbytes, "the shard is of task %016llx with settings %016llx",
                 (unsigned long long)d->h.task_id, (unsigned long long)d->h.settings_hash);
        return GS_EMISMATCH;
    }
    if (d->h.n_records + d->h.n_skipped != d->h.n_cells ||
        (d->h.n_vectors && d->h.dim != c->models.dim) || d->h.n_vectors > d->h.n_records) {
        snprintf(why, why_nbytes, "inconsistent counts in the shard header");
        return GS_EFORMAT;
    }
    uint32_t n_cap = 0;
    for (uint32_t i = 0; i < d->h.n_records; i++) {
        gs_warp_key_t k;
        gs_change_rec_t r;
        gs_arena_reset(c->arena);
        if (gs_warp_key_decode(d->keys[i], d->key_nbytes[i], &k) != GS_OK ||
            gs_rec_decode_change(d->vals[i], d->val_nbytes[i], c->arena, &r) != GS_OK) {
            snprintf(why, why_nbytes, "record %u does not decode", i);
            return GS_EFORMAT;
        }
        if (k.before_scene != B->id || k.after_scene != A->id || r.before_scene != B->id ||
            r.after_scene != A->id || r.pair_id != gs_warp_pair_id(d->keys[i]) ||
            k.before_time != r.before_time || k.after_time != r.after_time ||
            !(r.score >= 0 && r.score <= 2)) {
            snprintf(why, why_nbytes, "record %u is not of the pair (%016llx, %016llx)", i,
                     (unsigned long long)B->id, (unsigned long long)A->id);
            return GS_EFORMAT;
        }
        if (*r.caption) {
            // every captioned record has its vector (vectors come in captioning order)
            bool found = false;
            for (uint32_t v = 0; v < d->h.n_vectors && !found; v++)
                found = d->vec_ids[v] == r.pair_id;
            if (!found) {
                snprintf(why, why_nbytes, "record %u has a caption but no caption vector", i);
                return GS_EFORMAT;
            }
            n_cap++;
        }
    }
    if (n_cap != d->h.n_vectors) {
        snprintf(why, why_nbytes, "%u caption vectors for %u captions", d->h.n_vectors, n_cap);
        return GS_EFORMAT;
    }
    *out_n_captions = n_cap;
    return GS_OK;
}

// commit_shard: checks the shard of task ti and commits it. GS_OK, a task-level failure (*why),
// or a fatal GS_EIO / GS_EBACKEND.
static gs_err commit_shard(gs_chcoord_t *c, uint32_t ti, const char *path,
                           const gs_warp_shard_data_t *d, const char *hash, char *why,
                           size_t why_nbytes)
{
    gs__chtask_t *t = &c->tasks[ti];
    uint32_t n_cap = 0;
    GS_TRY(check(c, t, d, &n_cap, why, why_nbytes));
    gs_capstore_batch_clear(c->batch);
    gs_err e = GS_OK;
    for (uint32_t i = 0; i < d->h.n_records && e == GS_OK; i++)
        e = gs_capstore_batch_put(c->batch, GS_CF_CHANGES, d->keys[i], d->key_nbytes[i], d->vals[i],
                                  d->val_nbytes[i]);
    char rel[64];
    snprintf(rel, sizeof rel, "staging/%016llx.chshard", (unsigned long long)t->id);
    if (e == GS_OK)
        e = ledger(c, t, GS_JOB_DONE, d->h.n_records, d->h.n_skipped, rel, hash, NULL);
    if (e == GS_OK)
        e = gs_capstore_write(c->store, c->batch, false);
    gs_capstore_batch_clear(c->batch);
    if (e != GS_OK)
        return e == GS_ETOOBIG ? GS_EFORMAT : GS_EIO;
    if ((e = add_vectors(c, d)) != GS_OK)
        return GS_EBACKEND;
    t->state = GS__T_DONE;
    keep_for_deletion(c, path);
    c->sum.n_pairs_done++;
    c->sum.n_pairs_run++;
    c->sum.n_cells_run += d->h.n_cells;
    c->sum.n_scored_run += d->h.n_records;
    c->sum.n_captioned_run += n_cap;
    return GS_OK;
}

static gs_err fail_task(gs_chcoord_t *c, uint32_t ti, const char *why)
{
    gs__chtask_t *t = &c->tasks[ti];
    if (t->attempts < GS_COORD_MAX_ATTEMPTS) {
        GS_LOG_WARN("task=%016llx failed (try %u), again: %s", (unsigned long long)t->id,
                    t->attempts, why);
        t->state = GS__T_QUEUED;
        gs__u32s_push(&c->queue, ti);
        return GS_OK;
    }
    GS_LOG_WARN("task=%016llx failed %u times, left for a rerun: %s", (unsigned long long)t->id,
                t->attempts, why);
    t->state = GS__T_FAILED;
    c->sum.n_pairs_failed++;
    gs_capstore_batch_clear(c->batch);
    gs_err e = ledger(c, t, GS_JOB_FAILED, 0, 0, NULL, NULL, why);
    if (e == GS_OK)
        e = gs_capstore_write(c->store, c->batch, false);
    gs_capstore_batch_clear(c->batch);
    return e == GS_OK ? GS_OK : GS_EIO;
}

gs_err gs__ch_commit_result(gs_chcoord_t *c, const Geoscribe__TaskResult *r)
{
    uint32_t ti;
    if (!gs__map_get(&c->task_map, r->task_id, &ti) || c->tasks[ti].state != GS__T_RUNNING) {
        GS_LOG_WARN("a result for task %016llx, which is not running: ignored",
                    (unsigned long long)r->task_id);
        return GS_OK;
    }
    gs__chtask_t *t = &c->tasks[ti];
    c->n_running--;
    char *reuse = gs__chreuse_path(c, t->id);
    unlink(reuse);
    gs_free(reuse);
    if (r->status != 0)
        return fail_task(c, ti, r->message && *r->message ? r->message : gs_strerror(r->status));
    char *path = gs__chshard_path(c, t->id);
    char hash[17] = "", why[512] = "";
    gs_warp_shard_t *sh = NULL;
    gs_err e = gs_warp_shard_read(path, &sh, hash);
    if (e == GS_OK && strcmp(hash, r->shard_hash ? r->shard_hash : "") != 0) {
        snprintf(why, sizeof why, "the shard's checksum is not the one reported");
        e = GS_EMISMATCH;
    } else if (e == GS_OK) {
        e = commit_shard(c, ti, path, gs_warp_shard_data(sh), hash, why, sizeof why);
    } else {
        snprintf(why, sizeof why, "could not read the shard \"%s\": %s", path, gs_strerror(e));
    }
    gs_warp_shard_destroy(&sh);
    if (e == GS_EIO || e == GS_EBACKEND) {
        GS_LOG_ERROR("could not commit task %016llx: %s", (unsigned long long)t->id,
                     gs_strerror(e));
        gs_free(path);
        return e;
    }
    if (e != GS_OK) {
        unlink(path);
        e = fail_task(c, ti, why);
    }
    gs_free(path);
    return e;
}

// ---- start-up recovery ----------------------------------------------------------------------

static gs_err recover_one(gs_chcoord_t *c, const char *path, uint64_t task_id)
{
    gs_warp_shard_t *sh = NULL;
    char hash[17] = "", why[512] = "";
    if (gs_warp_shard_read(path, &sh, hash) != GS_OK) {
        unlink(path);
        return GS_OK;
    }
    const gs_warp_shard_data_t *d = gs_warp_shard_data(sh);
    uint32_t v = 0, ti = 0;
    gs_err e = GS_OK;
    if (d->h.task_id != task_id || d->h.settings_hash != c->settings_hash) {
        unlink(path);
    } else if (gs__map_get(&c->done_map, task_id, &v) && v == 1) {
        // committed; its vectors may not have reached the persisted index
        e = add_vectors(c, d) == GS_OK ? GS_OK : GS_EBACKEND;
        keep_for_deletion(c, path);
    } else if (gs__map_get(&c->task_map, task_id, &ti) && c->tasks[ti].state == GS__T_QUEUED) {
        e = commit_shard(c, ti, path, d, hash, why, sizeof why);
        if (e == GS_OK) {
            c->sum.n_recovered++;
        } else if (e != GS_EIO && e != GS_EBACKEND) {
            GS_LOG_WARN("staged change shard \"%s\" dropped: %s", path, why);
            unlink(path);
            e = GS_OK;
        }
    } else {
        unlink(path); // a pair no longer planned
    }
    gs_warp_shard_destroy(&sh);
    return e;
}

gs_err gs__ch_recover(gs_chcoord_t *c)
{
    DIR *dir = opendir(c->staging);
    if (!dir)
        return GS_OK;
    gs_err e = GS_OK;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    while ((de = readdir(dir)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        bool shard = len == 16 + 8 && strcmp(nm + 16, ".chshard") == 0;
        bool tmp = strstr(nm, ".chshard.tmp") != NULL || strstr(nm, ".reuse.vec") != NULL;
        if (!shard && !tmp)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = gs_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = gs_xstrdup(nm);
    }
    closedir(dir);
    for (size_t i = 0; i < n; i++) {
        char *path = gs_path_join(c->staging, names[i]);
        if (strstr(names[i], ".chshard") && strlen(names[i]) == 24 && e == GS_OK) {
            char hex[17];
            memcpy(hex, names[i], 16);
            hex[16] = '\0';
            e = recover_one(c, path, strtoull(hex, NULL, 16));
        } else if (!strstr(names[i], ".chshard") || strlen(names[i]) != 24) {
            unlink(path); // an unfinished write or a stale reuse file
        }
        gs_free(path);
        gs_free(names[i]);
    }
    gs_free(names);
    return e;
}
