// The FAISS vector index behind index/vindex.h: the only includer of faiss/c_api. Every index is
// an IndexIDMap2 (ids -> internal positions, reconstruct by id) over IndexFlatIP, a factory
// index, or IndexRefineFlat over a factory index. FAISS exceptions come back as nonzero
// returns; fx() turns them into GS_EBACKEND with faiss_get_last_error() in the log line.
// Filtered search (exact over an allow-list, or over-fetching) lives here too, because the
// 1.7.3 C API cannot pass an IDSelector to search.
#define GS_LOG_MODULE "index"

#include "index/vindex.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/clone_index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

#include "common/alloc.h"
#include "common/log.h"
#include "index/vindex_int.h"

enum { KIND_FLAT, KIND_IVF, KIND_REFINE, KIND_OTHER };

// Vectors reconstructed per step when rebuilding, merging or exact-scoring (1024 x 512 floats
// = 2 MiB).
#define CHUNK 1024
// Over-fetched result entries held at once (x 12 bytes).
#define OVERFETCH_ENTRIES (4u << 20)

struct gs_vindex {
    FaissIndex *root; // IndexIDMap2, owns the tree below
    int dim;
    int kind;
    int nprobe;      // current nprobe (0: not an IVF, or unknown for a refine read from disk)
    int n_threads;   // OpenMP threads per FAISS call, 0 = default
    char desc[96];   // "IVF4096,PQ64np,RFlat" when built here, else derived from the structure
    gs__idset_t ids; // every id in the index
    pthread_rwlock_t lock;
};

// ---- helpers --------------------------------------------------------------------------------

static gs_err fx(int rc, const char *what)
{
    if (rc == 0)
        return GS_OK;
    const char *m = faiss_get_last_error();
    GS_LOG_ERROR("faiss could not %s: %s", what, m ? m : "unknown error");
    return GS_EBACKEND;
}

static void omp_threads(const gs_vindex_t *self)
{
    if (self->n_threads > 0)
        omp_set_num_threads(self->n_threads);
}

static void rdlock(gs_vindex_t *self) { GS_ASSERT(pthread_rwlock_rdlock(&self->lock) == 0); }
static void wrlock(gs_vindex_t *self) { GS_ASSERT(pthread_rwlock_wrlock(&self->lock) == 0); }
static void unlock(gs_vindex_t *self) { GS_ASSERT(pthread_rwlock_unlock(&self->lock) == 0); }

static FaissIndex *sub_index(const gs_vindex_t *self)
{
    return faiss_IndexIDMap2_sub_index(self->root);
}

static size_t ntotal_of(const gs_vindex_t *self)
{
    return (size_t)faiss_Index_ntotal(self->root);
}

// rebuild_ids: the id set from the IDMap2's id_map (after remove, read, or a failed add).
static gs_err rebuild_ids(gs_vindex_t *self)
{
    idx_t *map = NULL;
    size_t n = 0;
    faiss_IndexIDMap2_id_map(self->root, &map, &n);
    gs__idset_clear(&self->ids);
    GS_TRY(gs__idset_reserve(&self->ids, n));
    for (size_t i = 0; i < n; i++)
        gs__idset_add(&self->ids, (uint64_t)map[i]);
    return GS_OK;
}

static gs_err set_nprobe_locked(gs_vindex_t *self, int nprobe)
{
    if (self->kind == KIND_FLAT)
        return GS_OK;
    FaissParameterSpace *ps = NULL;
    gs_err e = fx(faiss_ParameterSpace_new(&ps), "create a parameter space");
    if (e == GS_OK)
        e = fx(faiss_ParameterSpace_set_index_parameter(ps, self->root, "nprobe", nprobe),
               "set nprobe");
    faiss_ParameterSpace_free(ps);
    if (e == GS_OK)
        self->nprobe = nprobe;
    return e;
}

// try_nprobe: whether the tree holds an IVF (setting nprobe succeeds).
static int try_nprobe(gs_vindex_t *self, int nprobe)
{
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0)
        return 0;
    int ok = faiss_ParameterSpace_set_index_parameter(ps, self->root, "nprobe", nprobe) == 0;
    faiss_ParameterSpace_free(ps);
    return ok;
}

static gs_vindex_t *alloc_handle(int dim, const gs_vindex_opts_t *o)
{
    gs_vindex_t *self = gs_xcalloc(1, sizeof *self);
    self->dim = dim;
    self->n_threads = o && o->n_threads > 0 ? o->n_threads : 0;
    gs__idset_init(&self->ids);
    GS_ASSERT(pthread_rwlock_init(&self->lock, NULL) == 0);
    return self;
}

// ---- lifecycle ------------------------------------------------------------------------------

// parse_type: strips "IDMap2," and ",RFlat" from a factory string into base (caller buffer).
static gs_err parse_type(const char *type, char *base, size_t base_nbytes, bool *refine)
{
    const char *s = type && *type ? type : "Flat";
    if (strncmp(s, "IDMap2,", 7) == 0)
        s += 7;
    size_t n = strlen(s);
    if (n >= 6 && strcmp(s + n - 6, ",RFlat") == 0) {
        *refine = true;
        n -= 6;
    }
    if (n == 0 || n >= base_nbytes || strstr(s, "IDMap")) {
        GS_LOG_ERROR("invalid index type \"%s\": want Flat or a FAISS factory string such as "
                     "\"IVF4096,PQ64np\"", type);
        return GS_EINVAL;
    }
    memcpy(base, s, n);
    base[n] = '\0';
    return GS_OK;
}

// build_sub: the index under the IDMap2 for a parsed type; sets kind.
static gs_err build_sub(gs_vindex_t *self, const char *base, bool refine, float k_factor,
                        FaissIndex **out_sub)
{
    FaissIndex *idx = NULL;
    if (strcmp(base, "Flat") == 0) {
        self->kind = KIND_FLAT;
        return fx(faiss_IndexFlatIP_new_with(out_sub, self->dim), "create a flat index");
    }
    if (faiss_index_factory(&idx, self->dim, base, METRIC_INNER_PRODUCT) != 0) {
        const char *m = faiss_get_last_error();
        GS_LOG_ERROR("invalid index type \"%s\": %s", base, m ? m : "refused by faiss");
        return GS_EINVAL;
    }
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(idx);
    if (!refine) {
        self->kind = ivf ? KIND_IVF : KIND_OTHER;
        // Reconstruct under an IDMap2 needs the IVF's direct map (internal ids are 0..n-1).
        if (ivf && fx(faiss_IndexIVF_make_direct_map(ivf, 1), "make a direct map") != GS_OK) {
            faiss_Index_free(idx);
            return GS_EBACKEND;
        }
        *out_sub = idx;
        return GS_OK;
    }
    FaissIndexRefineFlat *rf = NULL;
    if (fx(faiss_IndexRefineFlat_new(&rf, idx), "create a refine stage") != GS_OK) {
        faiss_Index_free(idx);
        return GS_EBACKEND;
    }
    faiss_IndexRefineFlat_set_own_fields(rf, 1);
    faiss_IndexRefineFlat_set_k_factor(rf, k_factor > 0 ? k_factor : 16.0f);
    self->kind = KIND_REFINE;
    *out_sub = rf;
    return GS_OK;
}

gs_err gs_vindex_new(const gs_vindex_opts_t *o, gs_vindex_t **out)
{
    *out = NULL;
    if (!o || o->dim <= 0 || o->nprobe < 0)
        return GS_EINVAL;
    char base[80];
    bool refine = o->refine;
    GS_TRY(parse_type(o->type, base, sizeof base, &refine));
    gs_vindex_t *self = alloc_handle(o->dim, o);
    FaissIndex *sub = NULL;
    gs_err e = build_sub(self, base, refine, o->k_factor, &sub);
    if (e == GS_OK && (e = fx(faiss_IndexIDMap2_new(&self->root, sub), "create an id map")))
        faiss_Index_free(sub);
    if (e == GS_OK) {
        faiss_IndexIDMap2_set_own_fields(self->root, 1);
        snprintf(self->desc, sizeof self->desc, "%s%s", base,
                 self->kind == KIND_REFINE ? ",RFlat" : "");
        if (self->kind != KIND_FLAT && try_nprobe(self, 1))
            e = set_nprobe_locked(self, o->nprobe > 0 ? o->nprobe : 16);
    }
    if (e != GS_OK) {
        gs_vindex_destroy(&self);
        return e;
    }
    *out = self;
    return GS_OK;
}

// describe_structure: a description of an index read from a file.
static void describe_structure(gs_vindex_t *self)
{
    FaissIndex *sub = sub_index(self);
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(sub);
    if (faiss_IndexFlat_cast(sub)) {
        self->kind = KIND_FLAT;
        snprintf(self->desc, sizeof self->desc, "Flat");
    } else if (ivf) {
        self->kind = KIND_IVF;
        self->nprobe = (int)faiss_IndexIVF_nprobe(ivf);
        snprintf(self->desc, sizeof self->desc, "IVF%zu,?", faiss_IndexIVF_nlist(ivf));
    } else if (faiss_IndexRefineFlat_cast(sub)) {
        // the C API cannot reach the base index; whether it is an IVF shows by setting nprobe
        self->kind = KIND_REFINE;
        snprintf(self->desc, sizeof self->desc, "%s", try_nprobe(self, 16) ? "Refine(IVF)"
                                                                          : "Refine(?)");
    } else {
        self->kind = KIND_OTHER;
        snprintf(self->desc, sizeof self->desc, "?");
    }
}

gs_err gs_vindex_read(const char *path, const gs_vindex_opts_t *o, gs_vindex_t **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        GS_LOG_ERROR("could not open index \"%s\": %s", path, strerror(errno));
        return errno == ENOENT ? GS_ENOTFOUND : GS_EIO;
    }
    FaissIndex *idx = NULL;
    if (faiss_read_index_fname(path, 0, &idx) != 0) {
        const char *m = faiss_get_last_error();
        GS_LOG_ERROR("could not read index \"%s\": %s", path, m ? m : "faiss error");
        return GS_EBACKEND;
    }
    gs_err e = GS_OK;
    int dim = faiss_Index_d(idx);
    if (!faiss_IndexIDMap2_cast(idx) || faiss_Index_metric_type(idx) != METRIC_INNER_PRODUCT) {
        GS_LOG_ERROR("index \"%s\" is not an inner-product IndexIDMap2 (not made by geoscribe)",
                     path);
        e = GS_EFORMAT;
    } else if (o && o->dim > 0 && o->dim != dim) {
        GS_LOG_ERROR("index \"%s\" has dimension %d, expected %d", path, dim, o->dim);
        e = GS_EMISMATCH;
    }
    if (e != GS_OK) {
        faiss_Index_free(idx);
        return e;
    }
    gs_vindex_t *self = alloc_handle(dim, o);
    self->root = idx;
    describe_structure(self);
    e = rebuild_ids(self);
    // A plain IVF keeps the file's nprobe; below a refine stage it cannot be read through the
    // C API, so it is set (to opts->nprobe or 16) to be known.
    if (e == GS_OK && o && o->nprobe > 0)
        e = set_nprobe_locked(self, o->nprobe);
    else if (e == GS_OK && self->kind != KIND_FLAT && self->nprobe == 0 && try_nprobe(self, 16))
        e = set_nprobe_locked(self, 16);
    // opts->k_factor > 0 replaces the refine stage's stored one (its recall knob at query time).
    if (e == GS_OK && o && o->k_factor > 0 && self->kind == KIND_REFINE)
        faiss_IndexRefineFlat_set_k_factor(faiss_IndexRefineFlat_cast(sub_index(self)),
                                           o->k_factor);
    if (e != GS_OK) {
        gs_vindex_destroy(&self);
        return e;
    }
    *out = self;
    return GS_OK;
}

void gs_vindex_destroy(gs_vindex_t **p)
{
    if (!p || !*p)
        return;
    gs_vindex_t *self = *p;
    if (self->root)
        faiss_Index_free(self->root);
    gs__idset_cleanup(&self->ids);
    pthread_rwlock_destroy(&self->lock);
    gs_free(self);
    *p = NULL;
}

static gs_err fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? gs_xstrndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : gs_xstrdup(".");
    int fd = open(dir, O_RDONLY);
    gs_err e = GS_OK;
    if (fd < 0 || fsync(fd) != 0) {
        GS_LOG_ERROR("could not sync folder \"%s\": %s", dir, strerror(errno));
        e = GS_EIO;
    }
    if (fd >= 0)
        close(fd);
    gs_free(dir);
    return e;
}

gs_err gs_vindex_write(gs_vindex_t *self, const char *path)
{
    char *tmp = gs_xasprintf("%s.tmp.%ld", path, (long)getpid());
    gs_err e = GS_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        GS_LOG_ERROR("could not create \"%s\": %s", tmp, strerror(errno));
        gs_free(tmp);
        return GS_EIO;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    rdlock(self);
    int rc = faiss_write_index(self->root, f);
    unlock(self);
    if (rc != 0)
        e = fx(rc, "write the index");
    if (e == GS_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        GS_LOG_ERROR("could not write \"%s\": %s", tmp, strerror(errno));
        e = GS_EIO;
    }
    if (fclose(f) != 0 && e == GS_OK) {
        GS_LOG_ERROR("could not write \"%s\": %s", tmp, strerror(errno));
        e = GS_EIO;
    }
    if (e == GS_OK && rename(tmp, path) != 0) {
        GS_LOG_ERROR("could not rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
        e = GS_EIO;
    }
    if (e != GS_OK)
        unlink(tmp);
    else
        e = fsync_parent(path);
    gs_free(tmp);
    return e;
}

gs_err gs_vindex_new_like(gs_vindex_t *self, gs_vindex_t **out)
{
    *out = NULL;
    gs_vindex_t *like = alloc_handle(self->dim, NULL);
    like->n_threads = self->n_threads;
    rdlock(self);
    like->kind = self->kind;
    like->nprobe = self->nprobe;
    memcpy(like->desc, self->desc, sizeof like->desc);
    // clone_index knows IDMap2, flat and IVF but not IndexRefine (1.7.3): a refine index goes
    // through a temporary file instead.
    gs_err e = GS_OK;
    if (self->kind != KIND_REFINE) {
        e = fx(faiss_clone_index(self->root, &like->root), "clone the index");
    } else {
        char tmpl[] = "/tmp/gs-vindex-XXXXXX";
        int fd = mkstemp(tmpl);
        FILE *f = fd >= 0 ? fdopen(fd, "w+b") : NULL;
        if (!f) {
            GS_LOG_ERROR("could not create a temporary file: %s", strerror(errno));
            e = GS_EIO;
        } else {
            unlink(tmpl);
            e = fx(faiss_write_index(self->root, f), "write the index");
            if (e == GS_OK) {
                rewind(f);
                e = fx(faiss_read_index(f, 0, &like->root), "read the index back");
            }
            fclose(f);
        }
    }
    unlock(self);
    if (e == GS_OK)
        e = fx(faiss_Index_reset(like->root), "reset the index");
    if (e != GS_OK) {
        gs_vindex_destroy(&like);
        return e;
    }
    *out = like;
    return GS_OK;
}

// ---- facts ----------------------------------------------------------------------------------

int gs_vindex_dim(const gs_vindex_t *self) { return self->dim; }

size_t gs_vindex_ntotal(gs_vindex_t *self)
{
    rdlock(self);
    size_t n = ntotal_of(self);
    unlock(self);
    return n;
}

int gs_vindex_is_trained(gs_vindex_t *self)
{
    rdlock(self);
    int t = faiss_Index_is_trained(self->root) ? 1 : 0;
    unlock(self);
    return t;
}

void gs_vindex_describe(gs_vindex_t *self, char *out, size_t out_nbytes)
{
    rdlock(self);
    if (self->nprobe > 0)
        snprintf(out, out_nbytes, "IDMap2,%s nprobe=%d ntotal=%zu", self->desc, self->nprobe,
                 ntotal_of(self));
    else
        snprintf(out, out_nbytes, "IDMap2,%s ntotal=%zu", self->desc, ntotal_of(self));
    unlock(self);
}

int gs_vindex_nprobe(gs_vindex_t *self)
{
    rdlock(self);
    int np = self->nprobe;
    unlock(self);
    return np;
}

int gs_vindex_contains(gs_vindex_t *self, uint64_t id)
{
    rdlock(self);
    int has = gs__idset_has(&self->ids, id);
    unlock(self);
    return has;
}

size_t gs_vindex_ids(gs_vindex_t *self, uint64_t *out_ids, size_t cap)
{
    rdlock(self);
    idx_t *map = NULL;
    size_t n = 0;
    faiss_IndexIDMap2_id_map(self->root, &map, &n);
    for (size_t i = 0; i < n && i < cap; i++)
        out_ids[i] = (uint64_t)map[i];
    unlock(self);
    return n;
}

// ---- building -------------------------------------------------------------------------------

gs_err gs_vindex_train(gs_vindex_t *self, size_t n, const float *vecs)
{
    if (n == 0 || !vecs)
        return GS_EINVAL;
    if (self->kind == KIND_FLAT)
        return GS_OK;
    wrlock(self);
    gs_err e = GS_OK;
    if (ntotal_of(self) > 0) {
        e = GS_ESTATE;
    } else {
        omp_threads(self);
        e = fx(faiss_Index_train(self->root, (idx_t)n, vecs), "train the index");
    }
    unlock(self);
    return e;
}

// add_locked: the add of gs_vindex_add under the write lock.
static gs_err add_locked(gs_vindex_t *self, size_t n, const float *vecs, const uint64_t *ids)
{
    if (!faiss_Index_is_trained(self->root))
        return GS_ESTATE;
    GS_TRY(gs__idset_reserve(&self->ids, n));
    // Mark the fresh ids; compact only when some are skipped (a recommitted shard).
    size_t n_new = 0;
    unsigned char *fresh = gs_trymalloc(n ? n : 1);
    if (!fresh)
        return GS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        fresh[i] = (unsigned char)gs__idset_add(&self->ids, ids[i]);
        n_new += fresh[i];
    }
    const float *v = vecs;
    const uint64_t *d = ids;
    float *cv = NULL;
    uint64_t *cd = NULL;
    gs_err e = GS_OK;
    if (n_new > 0 && n_new < n) {
        cv = gs_trymalloc(n_new * (size_t)self->dim * sizeof *cv);
        cd = gs_trymalloc(n_new * sizeof *cd);
        if (!cv || !cd) {
            e = GS_ENOMEM;
        } else {
            for (size_t i = 0, j = 0; i < n; i++) {
                if (!fresh[i])
                    continue;
                memcpy(cv + j * self->dim, vecs + i * self->dim, self->dim * sizeof *cv);
                cd[j++] = ids[i];
            }
            v = cv;
            d = cd;
        }
    }
    if (e == GS_OK && n_new > 0) {
        omp_threads(self);
        e = fx(faiss_Index_add_with_ids(self->root, (idx_t)n_new, v, (const idx_t *)d),
               "add vectors");
    }
    if (e != GS_OK && rebuild_ids(self) != GS_OK)
        GS_LOG_ERROR("could not rebuild the id set of the index after a failed add");
    if (n_new < n)
        GS_LOG_DEBUG("add skipped %zu ids already in the index", n - n_new);
    gs_free(cv);
    gs_free(cd);
    gs_free(fresh);
    return e;
}

gs_err gs_vindex_add(gs_vindex_t *self, size_t n, const float *vecs, const uint64_t *ids)
{
    if (n == 0)
        return GS_OK;
    if (!vecs || !ids)
        return GS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > GS_VINDEX_ID_MAX)
            return GS_EINVAL;
    wrlock(self);
    gs_err e = add_locked(self, n, vecs, ids);
    unlock(self);
    return e;
}

// copy_out: reconstructs the vectors at internal positions [i0, i0+n) of src (exact for flat
// and refine) with their ids.
static gs_err copy_out(gs_vindex_t *src, size_t i0, size_t n, float *out_vecs,
                       uint64_t *out_ids)
{
    idx_t *map = NULL;
    size_t nmap = 0;
    faiss_IndexIDMap2_id_map(src->root, &map, &nmap);
    GS_ASSERT(i0 + n <= nmap);
    for (size_t i = 0; i < n; i++)
        out_ids[i] = (uint64_t)map[i0 + i];
    return fx(faiss_Index_reconstruct_n(sub_index(src), (idx_t)i0, (idx_t)n, out_vecs),
              "reconstruct vectors");
}

// rebuild_without: removal for indexes FAISS cannot remove from under an id map: copy the kept
// vectors out, reset (training survives a reset) and add them back.
static gs_err rebuild_without(gs_vindex_t *self, const gs__idset_t *gone, size_t *out_removed)
{
    size_t n = ntotal_of(self), n_keep = 0;
    float *vecs = gs_trymalloc((n ? n : 1) * (size_t)self->dim * sizeof *vecs);
    uint64_t *ids = gs_trymalloc((n ? n : 1) * sizeof *ids);
    gs_err e = vecs && ids ? GS_OK : GS_ENOMEM;
    for (size_t i0 = 0; e == GS_OK && i0 < n; i0 += CHUNK) {
        size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float *v = vecs + n_keep * self->dim;
        uint64_t *d = ids + n_keep;
        e = copy_out(self, i0, m, v, d);
        for (size_t j = 0; e == GS_OK && j < m; j++) {
            if (gs__idset_has(gone, d[j]))
                continue;
            if (&v[j * self->dim] != &vecs[n_keep * self->dim])
                memcpy(vecs + n_keep * self->dim, v + j * self->dim, self->dim * sizeof *v);
            ids[n_keep++] = d[j];
        }
    }
    if (e == GS_OK && n_keep < n) {
        e = fx(faiss_Index_reset(self->root), "reset the index");
        if (e == GS_OK && n_keep > 0)
            e = fx(faiss_Index_add_with_ids(self->root, (idx_t)n_keep, vecs,
                                            (const idx_t *)ids),
                   "add vectors back");
        if (rebuild_ids(self) != GS_OK && e == GS_OK)
            e = GS_ENOMEM;
    }
    *out_removed = e == GS_OK ? n - n_keep : 0;
    gs_free(vecs);
    gs_free(ids);
    return e;
}

gs_err gs_vindex_remove(gs_vindex_t *self, size_t n, const uint64_t *ids, size_t *out_n_removed)
{
    size_t removed = 0;
    if (out_n_removed)
        *out_n_removed = 0;
    if (n == 0)
        return GS_OK;
    if (!ids)
        return GS_EINVAL;
    gs__idset_t gone;
    gs__idset_init(&gone);
    GS_TRY(gs__idset_reserve(&gone, n));
    for (size_t i = 0; i < n; i++)
        if (ids[i] != GS_VINDEX_NONE)
            gs__idset_add(&gone, ids[i]);
    wrlock(self);
    omp_threads(self);
    gs_err e = GS_OK;
    if (self->kind == KIND_FLAT) {
        FaissIDSelectorBatch *sel = NULL;
        e = fx(faiss_IDSelectorBatch_new(&sel, n, (const idx_t *)ids), "make an id selector");
        if (e == GS_OK)
            e = fx(faiss_Index_remove_ids(self->root, (const FaissIDSelector *)sel, &removed),
                   "remove ids");
        faiss_IDSelector_free((FaissIDSelector *)sel);
        if (e == GS_OK && removed > 0)
            e = rebuild_ids(self);
    } else {
        e = rebuild_without(self, &gone, &removed);
    }
    unlock(self);
    gs__idset_cleanup(&gone);
    if (out_n_removed)
        *out_n_removed = removed;
    return e;
}

gs_err gs_vindex_merge_from(gs_vindex_t *self, gs_vindex_t *other)
{
    GS_ASSERT(self != other);
    if (other->dim != self->dim) {
        GS_LOG_ERROR("cannot merge an index of dimension %d into one of dimension %d",
                     other->dim, self->dim);
        return GS_EMISMATCH;
    }
    float *vecs = gs_trymalloc((size_t)CHUNK * self->dim * sizeof *vecs);
    uint64_t *ids = gs_trymalloc(CHUNK * sizeof *ids);
    gs_err e = vecs && ids ? GS_OK : GS_ENOMEM;
    rdlock(other);
    wrlock(self);
    omp_threads(self);
    size_t n = ntotal_of(other);
    for (size_t i0 = 0; e == GS_OK && i0 < n; i0 += CHUNK) {
        size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        e = copy_out(other, i0, m, vecs, ids);
        if (e == GS_OK)
            e = add_locked(self, m, vecs, ids);
    }
    unlock(self);
    unlock(other);
    gs_free(vecs);
    gs_free(ids);
    return e;
}

gs_err gs_vindex_set_nprobe(gs_vindex_t *self, int nprobe)
{
    if (nprobe < 1)
        return GS_EINVAL;
    wrlock(self);
    gs_err e = set_nprobe_locked(self, nprobe);
    unlock(self);
    return e;
}

// ---- reading --------------------------------------------------------------------------------

gs_err gs_vindex_reconstruct(gs_vindex_t *self, uint64_t id, float *out_vec)
{
    rdlock(self);
    gs_err e = GS_ENOTFOUND;
    if (gs__idset_has(&self->ids, id))
        e = fx(faiss_Index_reconstruct(self->root, (idx_t)id, out_vec), "reconstruct a vector");
    unlock(self);
    return e;
}

// plain_search: FAISS search into caller arrays; missing slots get -INFINITY.
static gs_err plain_search(gs_vindex_t *self, size_t nq, const float *q, size_t k, float *scores,
                           uint64_t *ids)
{
    omp_threads(self);
    GS_TRY(fx(faiss_Index_search(self->root, (idx_t)nq, q, (idx_t)k, scores, (idx_t *)ids),
              "search"));
    for (size_t i = 0; i < nq * k; i++)
        if (ids[i] == GS_VINDEX_NONE)
            scores[i] = -INFINITY;
    return GS_OK;
}

static int passes(const gs_vindex_filter_t *f, const gs__idset_t *allow, uint64_t id)
{
    if (id == GS_VINDEX_NONE)
        return 0;
    if (allow && !gs__idset_has(allow, id))
        return 0;
    return !f->keep || f->keep(id, f->ud);
}

// exact_search: scores every candidate against every query (an allow-list small enough).
static gs_err exact_search(gs_vindex_t *self, size_t nq, const float *q, size_t k,
                           const uint64_t *cand, size_t n_cand, float *out_scores,
                           uint64_t *out_ids)
{
    float *buf = gs_trymalloc((size_t)CHUNK * self->dim * sizeof *buf);
    float *sc = gs_trymalloc(CHUNK * sizeof *sc);
    gs__topk_t *heaps = gs_trymalloc((nq ? nq : 1) * sizeof *heaps);
    gs_err e = buf && sc && heaps ? GS_OK : GS_ENOMEM;
    for (size_t i = 0; e == GS_OK && i < nq; i++)
        gs__topk_init(&heaps[i], out_scores + i * k, out_ids + i * k, k);
    for (size_t c0 = 0; e == GS_OK && c0 < n_cand; c0 += CHUNK) {
        size_t m = n_cand - c0 < CHUNK ? n_cand - c0 : CHUNK;
        for (size_t j = 0; e == GS_OK && j < m; j++)
            e = fx(faiss_Index_reconstruct(self->root, (idx_t)cand[c0 + j], buf + j * self->dim),
                   "reconstruct a vector");
        for (size_t i = 0; e == GS_OK && i < nq; i++) {
            faiss_fvec_inner_products_ny(sc, q + i * self->dim, buf, (size_t)self->dim, m);
            for (size_t j = 0; j < m; j++)
                gs__topk_push(&heaps[i], sc[j], cand[c0 + j]);
        }
    }
    for (size_t i = 0; e == GS_OK && i < nq; i++)
        gs__topk_finish(&heaps[i]);
    gs_free(buf);
    gs_free(sc);
    gs_free(heaps);
    return e;
}

// overfetch_search: searches k' >= k and keeps the first k that pass; queries short of k are
// searched again with 4 k' until k' covers the index.
static gs_err overfetch_search(gs_vindex_t *self, size_t nq, const float *q, size_t k,
                               size_t factor, const gs_vindex_filter_t *f,
                               const gs__idset_t *allow, float *out_scores, uint64_t *out_ids)
{
    size_t ntotal = ntotal_of(self);
    size_t kp = k > SIZE_MAX / factor ? ntotal : k * factor;
    if (kp > ntotal)
        kp = ntotal;
    unsigned char *todo = gs_trymalloc(nq);
    size_t *kept = gs_trycalloc(nq, sizeof *kept);
    float *qbuf = gs_trymalloc((nq ? nq : 1) * (size_t)self->dim * sizeof *qbuf);
    size_t *qmap = gs_trymalloc((nq ? nq : 1) * sizeof *qmap);
    gs_err e = todo && kept && qbuf && qmap ? GS_OK : GS_ENOMEM;
    if (e == GS_OK)
        memset(todo, 1, nq);
    float *ts = NULL;
    uint64_t *tl = NULL;
    for (int round = 0; e == GS_OK && kp > 0; round++) {
        size_t group = OVERFETCH_ENTRIES / kp ? OVERFETCH_ENTRIES / kp : 1;
        gs_free(ts);
        gs_free(tl);
        ts = gs_trymalloc(group * kp * sizeof *ts);
        tl = gs_trymalloc(group * kp * sizeof *tl);
        if (!ts || !tl) {
            e = GS_ENOMEM;
            break;
        }
        size_t n_left = 0;
        for (size_t i0 = 0; e == GS_OK && i0 < nq;) {
            size_t g = 0; // gather up to `group` pending queries
            for (; i0 < nq && g < group; i0++) {
                if (!todo[i0])
                    continue;
                memcpy(qbuf + g * self->dim, q + i0 * self->dim, self->dim * sizeof *qbuf);
                qmap[g++] = i0;
            }
            if (g == 0)
                break;
            e = plain_search(self, g, qbuf, kp, ts, tl);
            for (size_t j = 0; e == GS_OK && j < g; j++) {
                size_t qi = qmap[j], n = 0;
                for (size_t r = 0; r < kp && n < k; r++) {
                    if (!passes(f, allow, tl[j * kp + r]))
                        continue;
                    out_scores[qi * k + n] = ts[j * kp + r];
                    out_ids[qi * k + n++] = tl[j * kp + r];
                }
                kept[qi] = n;
                todo[qi] = n < k && kp < ntotal;
                n_left += todo[qi];
            }
        }
        if (n_left == 0 || kp >= ntotal)
            break;
        kp = kp > ntotal / 4 ? ntotal : kp * 4;
        GS_LOG_DEBUG("filtered search: %zu queries short of k=%zu, round %d with k'=%zu", n_left,
                     k, round + 1, kp);
    }
    for (size_t i = 0; e == GS_OK && i < nq; i++)
        for (size_t r = kept[i]; r < k; r++) {
            out_scores[i * k + r] = -INFINITY;
            out_ids[i * k + r] = GS_VINDEX_NONE;
        }
    gs_free(ts);
    gs_free(tl);
    gs_free(todo);
    gs_free(kept);
    gs_free(qbuf);
    gs_free(qmap);
    return e;
}

// filtered_search: chooses between exact scoring of an allow-list and over-fetching.
// *out_want: how many hits per query a complete answer would have at most (min(k, candidates)),
// or 0 when this answer is complete (exact scoring, or a flat index).
static gs_err filtered_search(gs_vindex_t *self, size_t nq, const float *q, size_t k,
                              const gs_vindex_filter_t *f, float *out_scores, uint64_t *out_ids,
                              size_t *out_want)
{
    size_t ntotal = ntotal_of(self);
    *out_want = 0;
    if (!f->ids) {
        if (self->kind != KIND_FLAT)
            *out_want = k < ntotal ? k : ntotal;
        return overfetch_search(self, nq, q, k, 4, f, NULL, out_scores, out_ids);
    }
    // The allow-list, deduplicated and cut to ids in the index.
    gs__idset_t allow;
    gs__idset_init(&allow);
    uint64_t *cand = gs_trymalloc((f->n_ids ? f->n_ids : 1) * sizeof *cand);
    gs_err e = cand ? gs__idset_reserve(&allow, f->n_ids) : GS_ENOMEM;
    size_t n_cand = 0;
    for (size_t i = 0; e == GS_OK && i < f->n_ids; i++) {
        uint64_t id = f->ids[i];
        if (gs__idset_has(&self->ids, id) && gs__idset_add(&allow, id))
            cand[n_cand++] = id;
    }
    if (e == GS_OK && n_cand <= GS_VINDEX_EXACT_MAX) {
        size_t n_pass = 0;
        for (size_t i = 0; i < n_cand; i++)
            if (!f->keep || f->keep(cand[i], f->ud))
                cand[n_pass++] = cand[i];
        e = exact_search(self, nq, q, k, cand, n_pass, out_scores, out_ids);
    } else if (e == GS_OK) {
        size_t factor = 2 * (ntotal / n_cand + 1);
        e = overfetch_search(self, nq, q, k, factor < 4 ? 4 : factor, f, &allow, out_scores,
                             out_ids);
        if (self->kind != KIND_FLAT)
            *out_want = k < n_cand ? k : n_cand;
    }
    gs_free(cand);
    gs__idset_cleanup(&allow);
    return e;
}

// min_hits: the fewest hits any query got (results are packed: hits first, then NONE).
static size_t min_hits(size_t nq, size_t k, const uint64_t *ids)
{
    size_t least = k;
    for (size_t i = 0; i < nq; i++) {
        size_t h = 0;
        while (h < k && ids[i * k + h] != GS_VINDEX_NONE)
            h++;
        least = h < least ? h : least;
    }
    return least;
}

// run_search: one unfiltered or filtered search; *out_want as for filtered_search.
static gs_err run_search(gs_vindex_t *self, size_t nq, const float *q, size_t k,
                         const gs_vindex_filter_t *f, float *out_scores, uint64_t *out_ids,
                         size_t *out_want)
{
    if (f)
        return filtered_search(self, nq, q, k, f, out_scores, out_ids, out_want);
    size_t ntotal = ntotal_of(self);
    *out_want = self->kind == KIND_FLAT ? 0 : k < ntotal ? k : ntotal;
    return plain_search(self, nq, q, k, out_scores, out_ids);
}

// widen_search: an IVF search short of the hits it could have (the probed lists hold too few
// vectors, or too few that pass the filter: k = 10,000 at nprobe 16) is repeated with nprobe
// scaled by the shortfall (lists hold about hits / nprobe wanted vectors each, so
// nprobe * want / hits * 1.5, at least twice the last), up to GS_VINDEX_NPROBE_WIDEN_MAX; the
// previous nprobe is restored. Under the write lock.
static gs_err widen_search(gs_vindex_t *self, size_t nq, const float *q, size_t k,
                           const gs_vindex_filter_t *f, size_t want, float *out_scores,
                           uint64_t *out_ids)
{
    int saved = self->nprobe, np = saved;
    gs_err e = GS_OK;
    size_t h;
    while (e == GS_OK && np < GS_VINDEX_NPROBE_WIDEN_MAX && want > 0 &&
           (h = min_hits(nq, k, out_ids)) < want) {
        double next = h > 0 ? 1.5 * np * ((double)want / (double)h) : 4.0 * np;
        if (next < 2.0 * np)
            next = 2.0 * np;
        np = next >= GS_VINDEX_NPROBE_WIDEN_MAX ? GS_VINDEX_NPROBE_WIDEN_MAX : (int)next;
        e = set_nprobe_locked(self, np);
        if (e == GS_OK)
            e = run_search(self, nq, q, k, f, out_scores, out_ids, &want);
    }
    if (np != saved) {
        GS_LOG_DEBUG("search for k=%zu widened nprobe from %d to %d", k, saved, np);
        gs_err e2 = set_nprobe_locked(self, saved);
        e = e != GS_OK ? e : e2;
    }
    return e;
}

gs_err gs_vindex_search(gs_vindex_t *self, size_t nq, const float *queries, size_t k,
                        const gs_vindex_search_opts_t *opts, float *out_scores,
                        uint64_t *out_ids)
{
    if (k == 0 || k > GS_VINDEX_K_MAX || (nq > 0 && (!queries || !out_scores || !out_ids)))
        return GS_EINVAL;
    if (nq == 0)
        return GS_OK;
    const gs_vindex_filter_t *f = opts ? opts->filter : NULL;
    // Searches share the lock; one asking for another nprobe takes it exclusively to set it.
    int np = opts && opts->nprobe > 0 && self->kind != KIND_FLAT ? opts->nprobe : 0;
    rdlock(self);
    gs_err e = GS_OK;
    if (np && np != self->nprobe) {
        unlock(self);
        wrlock(self);
        if (np != self->nprobe)
            e = set_nprobe_locked(self, np);
    }
    size_t want = 0;
    if (e == GS_OK && ntotal_of(self) == 0) {
        for (size_t i = 0; i < nq * k; i++) {
            out_scores[i] = -INFINITY;
            out_ids[i] = GS_VINDEX_NONE;
        }
    } else if (e == GS_OK) {
        e = run_search(self, nq, queries, k, f, out_scores, out_ids, &want);
    }
    int widen = e == GS_OK && want > 0 && self->nprobe > 0 && min_hits(nq, k, out_ids) < want;
    unlock(self);
    if (widen) {
        wrlock(self);
        e = widen_search(self, nq, queries, k, f, want, out_scores, out_ids);
        unlock(self);
    }
    return e;
}

// ---- policy ---------------------------------------------------------------------------------

void gs_vindex_auto(size_t n_vectors, int dim, size_t flat_max, gs_vindex_auto_t *out)
{
    memset(out, 0, sizeof *out);
    if (flat_max == 0)
        flat_max = GS_VINDEX_FLAT_MAX;
    if (n_vectors <= flat_max || dim % 4 != 0) {
        snprintf(out->type, sizeof out->type, "Flat");
        return;
    }
    double target = 4.0 * sqrt((double)n_vectors);
    size_t nlist = 256;
    while (nlist < 65536 && (double)nlist * 1.5 < target)
        nlist *= 2;
    int m = dim % 8 == 0 ? dim / 8 : dim / 4;
    snprintf(out->type, sizeof out->type, "IVF%zu,PQ%dnp", nlist, m);
    out->refine = true;
    out->n_train = n_vectors < 50 * nlist ? n_vectors : 50 * nlist;
    out->nprobe = 16;
}
