// The output's vector index on rank 0: created (flat at once; auto and trained types once
// enough vectors are committed to choose and train), fed with the vectors of committed
// shards, and persisted atomically. A shard is deleted only after an index file holding its
// vectors is on disk and the store is synced, so a crash at any point leaves every committed
// vector either in the persisted index or in a shard that the next run adds again
// (idempotently). docs/INGEST.md, "Crash safety", walks through the cases.
#define GS_LOG_MODULE "coordinator"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "coordinator/ingest_int.h"
#include "index/layout.h"

static bool is_flat(const char *t)
{
    return strcasecmp(t, "flat") == 0 || strcasecmp(t, "IDMap2,Flat") == 0;
}

// nlist_of: the list count of an "IVF<n>,..." factory string, else 0.
static int nlist_of(const char *t)
{
    const char *p = strstr(t, "IVF");
    if (!p)
        return 0;
    int n = 0;
    for (p += 3; *p >= '0' && *p <= '9' && n < 1 << 24; p++)
        n = n * 10 + (*p - '0');
    return n;
}

static gs_err create(gs_coord_t *c, const char *type, bool refine)
{
    gs_vindex_opts_t o = {.dim = c->models.dim,
                          .type = type,
                          .refine = refine,
                          .nprobe = c->job->index.nprobe,
                          .n_threads = 1};
    GS_TRY(gs_vindex_new(&o, &c->index));
    snprintf(c->index_type, sizeof c->index_type, "%s%s", type, refine ? ",RFlat" : "");
    c->index_refine = refine;
    return GS_OK;
}

gs_err gs__vidx_open(gs_coord_t *c, char *err, size_t err_nbytes)
{
    const char *gen = NULL, *type = NULL;
    gs_arena_reset(c->arena);
    if (gs_capstore_meta_get(c->store, "index.generation", c->arena, &gen) == GS_OK &&
        gs_parse_u64(gen, &c->generation) != GS_OK)
        c->generation = 0;
    if (gs_capstore_meta_get(c->store, GS_META_INDEX_TYPE, c->arena, &type) == GS_OK && *type) {
        snprintf(c->index_type, sizeof c->index_type, "%s", type);
        if (c->generation == 0 && !gs_path_exists(c->index_path)) {
            // created but never persisted: start again empty, shards hold everything
            bool refine = strstr(type, ",RFlat") != NULL;
            char base[128];
            snprintf(base, sizeof base, "%s", type);
            if (refine)
                *strstr(base, ",RFlat") = '\0';
            if (is_flat(base))
                return create(c, base, false);
            c->index_type[0] = '\0';
            return GS_OK;
        }
        gs_vindex_opts_t o = {.dim = c->models.dim, .nprobe = c->job->index.nprobe, .n_threads = 1};
        gs_err e = gs_vindex_read(c->index_path, &o, &c->index);
        if (e != GS_OK) {
            snprintf(err, err_nbytes,
                     "could not read the index \"%s\" (generation %llu in the "
                     "store): %s",
                     c->index_path, (unsigned long long)c->generation, gs_strerror(e));
            return e;
        }
        c->last_persist = gs_clock_s();
        return GS_OK;
    }
    if (is_flat(c->job->index.type))
        return create(c, "Flat", false);
    if (strcasecmp(c->job->index.type, "auto") != 0) {
        // a factory string: created now when it needs no training (HNSW, ...)
        GS_TRY(create(c, c->job->index.type, false));
        if (!gs_vindex_is_trained(c->index))
            gs_vindex_destroy(&c->index);
    }
    return GS_OK;
}

// ---- building an index from the staged shards ----------------------------------------------

// read_vectors: the vectors of staged[i], new buffers (gs_free).
static gs_err read_vectors(gs_coord_t *c, size_t i, gs_shard_t **out)
{
    char *path = gs__shard_path(c, c->staged[i].task_id);
    gs_err e = gs_shard_read(path, out, NULL);
    if (e != GS_OK)
        GS_LOG_ERROR("committed shard \"%s\" cannot be read: its vectors are lost (%s)", path,
                     gs_strerror(e));
    gs_free(path);
    return e;
}

// auto_choice: what index_type auto becomes for the planned output (the planned cells, or the
// vectors at hand when more).
static void auto_choice(const gs_coord_t *c, uint64_t n, gs_vindex_auto_t *a)
{
    uint64_t planned = c->sum.n_cells > n ? c->sum.n_cells : n;
    gs_vindex_auto(planned, c->models.dim, (size_t)c->job->index.flat_max, a);
}

// train_threshold: vectors to collect before the index can be built: auto needs more than
// flat_max (then IVF-PQ) and enough to train it (50 per list); a factory string 50 per list.
static uint64_t train_threshold(const gs_coord_t *c)
{
    if (strcasecmp(c->job->index.type, "auto") == 0) {
        gs_vindex_auto_t a;
        auto_choice(c, c->n_staged_vectors, &a);
        uint64_t t = (uint64_t)c->job->index.flat_max + 1;
        uint64_t need = (uint64_t)nlist_of(a.type) * 50;
        return t > need ? t : need;
    }
    int nlist = nlist_of(c->job->index.type);
    return nlist > 0 ? (uint64_t)nlist * 50 : 100000;
}

static gs_err train(gs_coord_t *c)
{
    uint64_t want = c->n_staged_vectors;
    gs_vindex_auto_t a;
    gs_vindex_auto(want, c->models.dim, (size_t)c->job->index.flat_max, &a);
    if (strcasecmp(c->job->index.type, "auto") != 0)
        a.n_train = (size_t)(train_threshold(c) < want ? train_threshold(c) : want);
    float *buf = gs_trymalloc(a.n_train * (size_t)c->models.dim * sizeof(float) + 1);
    if (!buf)
        return GS_ENOMEM;
    size_t got = 0;
    gs_err e = GS_OK;
    for (size_t i = 0; i < c->n_staged && got < a.n_train && e == GS_OK; i++) {
        gs_shard_t *sh = NULL;
        e = read_vectors(c, i, &sh);
        if (e != GS_OK)
            break;
        const gs_shard_data_t *d = gs_shard_data(sh);
        size_t take = d->h.n_tiles < a.n_train - got ? d->h.n_tiles : a.n_train - got;
        memcpy(buf + got * (size_t)c->models.dim, d->vecs, take * (size_t)c->models.dim * 4);
        got += take;
        gs_shard_destroy(&sh);
    }
    if (e == GS_OK) {
        double t0 = gs_clock_s();
        GS_LOG_INFO("training the %s index on %zu vectors", c->index_type, got);
        e = gs_vindex_train(c->index, got, buf);
        if (e == GS_OK)
            GS_LOG_INFO("trained in %.1f s", gs_clock_s() - t0);
    }
    gs_free(buf);
    return e;
}

// build: chooses the index type (for auto), creates it, trains it on the first staged
// vectors (commit order) and adds every staged shard. `final`: the run is over, so auto with
// at most flat_max vectors becomes flat.
static gs_err build(gs_coord_t *c, bool final)
{
    const char *jt = c->job->index.type;
    gs_err e;
    uint64_t n = c->n_staged_vectors;
    if (strcasecmp(jt, "auto") == 0) {
        // size the lists for what the plan will hold, not only what is here now
        gs_vindex_auto_t a;
        auto_choice(c, n, &a);
        if (final && n <= (uint64_t)c->job->index.flat_max) {
            e = create(c, "Flat", false);
        } else if (final && n < (uint64_t)nlist_of(a.type) * 39) {
            GS_LOG_WARN("%llu vectors are too few to train %s (39 per list): a flat index "
                        "instead",
                        (unsigned long long)n, a.type);
            e = create(c, "Flat", false);
        } else {
            e = create(c, a.type, a.refine);
        }
    } else {
        int nlist = nlist_of(jt);
        if (nlist > 0 && n < (uint64_t)nlist) {
            GS_LOG_ERROR("index.type \"%s\" needs at least %d vectors to train, the output has "
                         "%llu: use index.type auto or flat for a new output",
                         jt, nlist, (unsigned long long)n);
            return GS_EINVAL;
        }
        e = create(c, jt, false);
    }
    if (e == GS_OK && !gs_vindex_is_trained(c->index))
        e = train(c);
    for (size_t i = 0; i < c->n_staged && e == GS_OK; i++) {
        gs_shard_t *sh = NULL;
        e = read_vectors(c, i, &sh);
        if (e == GS_OK) {
            const gs_shard_data_t *d = gs_shard_data(sh);
            e = gs_vindex_add(c->index, d->h.n_tiles, d->vecs, d->ids);
        }
        gs_shard_destroy(&sh);
    }
    if (e != GS_OK) {
        GS_LOG_ERROR("could not build the %s index: %s", *c->index_type ? c->index_type : jt,
                     gs_strerror(e));
        gs_vindex_destroy(&c->index);
        return e == GS_ENOMEM ? e : GS_EBACKEND;
    }
    c->n_staged_added = c->n_staged;
    c->n_staged_vectors = 0;
    GS_LOG_INFO("index %s built with %zu vectors", c->index_type, gs_vindex_ntotal(c->index));
    return GS_OK;
}

gs_err gs__vidx_add(gs_coord_t *c, uint64_t task_id, uint32_t n_tiles, const gs_shard_data_t *d)
{
    if (c->n_staged == c->cap_staged) {
        c->cap_staged = c->cap_staged ? c->cap_staged * 2 : 256;
        c->staged = gs_xrealloc(c->staged, c->cap_staged * sizeof *c->staged);
    }
    c->staged[c->n_staged++] = (gs__staged_t){.task_id = task_id, .n_tiles = n_tiles};
    if (!c->index) {
        c->n_staged_vectors += n_tiles;
        return c->n_staged_vectors >= train_threshold(c) ? build(c, false) : GS_OK;
    }
    gs_shard_t *sh = NULL;
    if (!d) {
        GS_TRY(read_vectors(c, c->n_staged - 1, &sh));
        d = gs_shard_data(sh);
    }
    gs_err e = gs_vindex_add(c->index, d->h.n_tiles, d->vecs, d->ids);
    gs_shard_destroy(&sh);
    if (e != GS_OK) {
        GS_LOG_ERROR("could not add the vectors of task %016llx to the index: %s",
                     (unsigned long long)task_id, gs_strerror(e));
        return GS_EBACKEND;
    }
    c->n_staged_added = c->n_staged;
    return GS_OK;
}

// ---- persistence ----------------------------------------------------------------------------

static gs_err persist(gs_coord_t *c)
{
    double t0 = gs_clock_s();
    GS_TRY(gs_vindex_write(c->index, c->index_path));
    // the store is synced after the index file: every shard deleted below is then both
    // committed durably and inside a durable index file
    char gen[24], ntotal[24];
    snprintf(gen, sizeof gen, "%llu", (unsigned long long)(c->generation + 1));
    snprintf(ntotal, sizeof ntotal, "%zu", gs_vindex_ntotal(c->index));
    gs_capstore_batch_clear(c->batch);
    gs_capstore_batch_meta_set(c->batch, "index.generation", gen);
    gs_capstore_batch_meta_set(c->batch, GS_META_INDEX_NTOTAL, ntotal);
    gs_capstore_batch_meta_set(c->batch, GS_META_INDEX_TYPE, c->index_type);
    gs_err e = gs_capstore_write(c->store, c->batch, true);
    if (e != GS_OK)
        return e;
    c->generation++;
    for (size_t i = 0; i < c->n_staged_added; i++) {
        char *path = gs__shard_path(c, c->staged[i].task_id);
        unlink(path);
        gs_free(path);
    }
    memmove(c->staged, c->staged + c->n_staged_added,
            (c->n_staged - c->n_staged_added) * sizeof *c->staged);
    c->n_staged -= c->n_staged_added;
    c->n_staged_added = 0;
    double now = gs_clock_s();
    c->last_persist_cost = now - t0;
    c->last_persist = now;
    GS_LOG_DEBUG("index generation %llu persisted: %s vectors in %.2f s",
                 (unsigned long long)c->generation, ntotal, c->last_persist_cost);
    return GS_OK;
}

gs_err gs__vidx_maybe_persist(gs_coord_t *c, bool force)
{
    if (!c->index || c->n_staged_added == 0)
        return GS_OK;
    double every = c->persist_s;
    if (c->last_persist_cost * 10 > every)
        every = c->last_persist_cost * 10;
    if (!force && gs_clock_s() - c->last_persist < every)
        return GS_OK;
    return persist(c);
}

gs_err gs__vidx_finish(gs_coord_t *c)
{
    if (!c->index && c->n_staged > 0)
        GS_TRY(build(c, true));
    if (!c->index && c->generation == 0 && strcasecmp(c->job->index.type, "auto") == 0)
        GS_TRY(create(c, "Flat", false)); // nothing to index: an empty flat index
    if (!c->index)
        return GS_OK;
    if (c->generation == 0 || c->n_staged_added > 0)
        return persist(c);
    return GS_OK;
}
