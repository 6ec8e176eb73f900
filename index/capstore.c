// The RocksDB side of index/capstore.h: the only includer of rocksdb/c.h. Opening (families,
// schema version, secondary instances for read-only use), raw get/put/delete, MultiGet,
// WriteBatches, scans and counts. Typed record access is in capstore_rec.c on top of these.
// RocksDB errors (errptr) become GS_EIO with the message logged, then rocksdb_free'd; values are
// copied into the caller's arena before their RocksDB memory is released.
#define GS_LOG_MODULE "index"

#include "index/capstore.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/capstore_int.h"

// Keys per MultiGet call: bounds the temporary arrays (and RocksDB's batch) per step.
#define MULTIGET_CHUNK 4096

static const char *const cf_names[GS_CF_COUNT] = {
    "scenes", "tiles", "captions", "changes", "jobs", "meta", "quarantine",
};

struct gs_capstore {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ropts;      // point reads
    rocksdb_readoptions_t *scan_ropts; // scans: no block cache fill
    rocksdb_writeoptions_t *wopts, *wopts_sync;
    rocksdb_column_family_handle_t *cf[GS_CF_COUNT];
    rocksdb_column_family_handle_t **all_cf; // every family opened (ours, default, unknown)
    int n_all_cf;
    bool read_only;
    char *path;
    char *secondary_dir; // read-only: the secondary instance's private folder (removed at close)
};

struct gs_capstore_batch {
    gs_capstore_t *store;
    rocksdb_writebatch_t *wb;
    gs_buf_t scratch; // encoding buffer of the typed puts
};

// ---- helpers --------------------------------------------------------------------------------

// rerr: an errptr from RocksDB to GS_EIO (logged, then freed); GS_OK when NULL.
static gs_err rerr(char *err, const char *what, const char *path)
{
    if (!err)
        return GS_OK;
    GS_LOG_ERROR("rocksdb could not %s in \"%s\": %s", what, path, err);
    rocksdb_free(err);
    return GS_EIO;
}

const char *gs_capstore_cf_name(gs_cf_t cf)
{
    return (unsigned)cf < GS_CF_COUNT ? cf_names[cf] : NULL;
}

const char *gs__capstore_path(const gs_capstore_t *self) { return self->path; }

static int valid_cf(gs_cf_t cf) { return (unsigned)cf < GS_CF_COUNT; }

// rm_flat_dir: removes a folder and the plain files in it (a secondary's log folder).
static void rm_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = gs_path_join(dir, e->d_name);
            unlink(p);
            gs_free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

// ---- open / close ---------------------------------------------------------------------------

static void make_options(gs_capstore_t *self, const gs_capstore_opts_t *o)
{
    self->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(self->opts, o && o->create_if_missing);
    rocksdb_options_set_create_missing_column_families(self->opts, 1);
    rocksdb_options_increase_parallelism(self->opts, 2);
    rocksdb_options_set_compression(self->opts, rocksdb_lz4_compression);
    rocksdb_options_set_keep_log_file_num(self->opts, 4);
    rocksdb_options_set_info_log_level(self->opts, 2); // WARN: no chatter in the LOG file
    // Secondary instances need every file open; harmless for the writer at our sizes.
    rocksdb_options_set_max_open_files(self->opts, -1);
    self->table = rocksdb_block_based_options_create();
    size_t cache = o && o->cache_nbytes ? o->cache_nbytes : (size_t)64 << 20;
    self->cache = rocksdb_cache_create_lru(cache);
    rocksdb_block_based_options_set_block_cache(self->table, self->cache);
    // Bloom filters make MultiGet of random tile ids skip files that cannot hold them.
    rocksdb_block_based_options_set_filter_policy(self->table,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(self->opts, self->table);
    self->ropts = rocksdb_readoptions_create();
    self->scan_ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(self->scan_ropts, 0);
    self->wopts = rocksdb_writeoptions_create();
    self->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(self->wopts_sync, 1);
}

// family_list: the families to open: the existing ones (all must be opened) plus ours.
static gs_err family_list(gs_capstore_t *self, int exists, char ***out_names, int *out_n)
{
    size_t n_have = 0;
    char **have = NULL;
    if (exists) {
        char *err = NULL;
        have = rocksdb_list_column_families(self->opts, self->path, &n_have, &err);
        GS_TRY(rerr(err, "list column families", self->path));
    }
    char **names = gs_xcalloc(n_have + GS_CF_COUNT + 1, sizeof *names);
    int n = 0;
    names[n++] = gs_xstrdup("default");
    for (int i = 0; i < GS_CF_COUNT; i++)
        names[n++] = gs_xstrdup(cf_names[i]);
    for (size_t i = 0; i < n_have; i++) {
        int known = 0;
        for (int j = 0; j < n; j++)
            known |= strcmp(names[j], have[i]) == 0;
        if (!known)
            names[n++] = gs_xstrdup(have[i]);
    }
    if (have)
        rocksdb_list_column_families_destroy(have, n_have);
    *out_names = names;
    *out_n = n;
    return GS_OK;
}

static gs_err open_db(gs_capstore_t *self, char **names, int n)
{
    const rocksdb_options_t **cfo = gs_xcalloc((size_t)n, sizeof *cfo);
    for (int i = 0; i < n; i++)
        cfo[i] = self->opts;
    self->all_cf = gs_xcalloc((size_t)n, sizeof *self->all_cf);
    char *err = NULL;
    if (self->read_only) {
        self->db = rocksdb_open_as_secondary_column_families(
            self->opts, self->path, self->secondary_dir, n, (const char *const *)names, cfo,
            self->all_cf, &err);
    } else {
        self->db = rocksdb_open_column_families(self->opts, self->path, n,
                                                (const char *const *)names, cfo, self->all_cf,
                                                &err);
    }
    gs_free(cfo);
    if (err) {
        memset(self->all_cf, 0, (size_t)n * sizeof *self->all_cf);
        return rerr(err, "open the store", self->path);
    }
    self->n_all_cf = n;
    for (int i = 0; i < GS_CF_COUNT; i++)
        self->cf[i] = self->all_cf[1 + i]; // names[0] is "default", then ours in order
    return GS_OK;
}

static char *utc_now_text(void)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return gs_xasprintf("%s geoscribe %s", buf, GS_VERSION);
}

// check_schema: a new store gets the version; an existing one must carry one we can read.
static gs_err check_schema(gs_capstore_t *self, int is_new)
{
    gs_arena_t *a = gs_arena_new(4096, 1 << 20);
    const char *v = NULL;
    gs_err e = gs_capstore_meta_get(self, GS_META_SCHEMA_VERSION, a, &v);
    if (e == GS_ENOTFOUND && is_new && !self->read_only) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", GS_CAPSTORE_SCHEMA_VERSION);
        char *created = utc_now_text();
        gs_capstore_batch_t *b = gs_capstore_batch_new(self);
        e = gs_capstore_batch_meta_set(b, GS_META_SCHEMA_VERSION, ver);
        if (e == GS_OK)
            e = gs_capstore_batch_meta_set(b, GS_META_CREATED, created);
        if (e == GS_OK)
            e = gs_capstore_write(self, b, true);
        gs_capstore_batch_destroy(&b);
        gs_free(created);
    } else if (e == GS_ENOTFOUND) {
        GS_LOG_ERROR("\"%s\" is not a geoscribe store: it has no schema version", self->path);
        e = GS_EFORMAT;
    } else if (e == GS_OK) {
        int ver = 0;
        if (gs_parse_int(v, 1, 1000000, &ver) != GS_OK) {
            GS_LOG_ERROR("store \"%s\" has an unreadable schema version \"%s\"", self->path, v);
            e = GS_EFORMAT;
        } else if (ver != GS_CAPSTORE_SCHEMA_VERSION) {
            GS_LOG_ERROR("store \"%s\" has schema version %d but this geoscribe reads version "
                         "%d: use a geoscribe release that knows version %d",
                         self->path, ver, GS_CAPSTORE_SCHEMA_VERSION, ver);
            e = GS_EUNSUPPORTED;
        }
    }
    gs_arena_destroy(&a);
    return e;
}

// make_secondary_dir: a private folder for a secondary instance's own files.
static gs_err make_secondary_dir(gs_capstore_t *self)
{
    const char *tmp = gs_getenv("TMPDIR");
    char *tmpl = gs_xasprintf("%s/gs-capstore-ro-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl)) {
        GS_LOG_ERROR("could not create a folder for a read-only store in \"%s\": %s",
                     tmp && *tmp ? tmp : "/tmp", strerror(errno));
        gs_free(tmpl);
        return GS_EIO;
    }
    self->secondary_dir = tmpl;
    return GS_OK;
}

gs_err gs_capstore_open(const char *path, const gs_capstore_opts_t *o, gs_capstore_t **out)
{
    *out = NULL;
    bool create = o && o->create_if_missing && !(o && o->read_only);
    char *current = gs_path_join(path, "CURRENT");
    int exists = gs_path_exists(current);
    gs_free(current);
    if (!exists && !create) {
        GS_LOG_ERROR("no store at \"%s\"", path);
        return GS_ENOTFOUND;
    }
    if (!exists && gs_mkdir_p(path) != GS_OK)
        return GS_EIO;
    gs_capstore_t *self = gs_xcalloc(1, sizeof *self);
    self->path = gs_xstrdup(path);
    self->read_only = o && o->read_only;
    make_options(self, o);
    char **names = NULL;
    int n = 0;
    gs_err e = self->read_only ? make_secondary_dir(self) : GS_OK;
    if (e == GS_OK)
        e = family_list(self, exists, &names, &n);
    int is_new = !exists;
    if (e == GS_OK)
        e = open_db(self, names, n);
    if (e == GS_OK)
        e = check_schema(self, is_new);
    for (int i = 0; i < n; i++)
        gs_free(names[i]);
    gs_free(names);
    if (e != GS_OK) {
        gs_capstore_close(&self);
        return e;
    }
    *out = self;
    return GS_OK;
}

void gs_capstore_close(gs_capstore_t **p)
{
    if (!p || !*p)
        return;
    gs_capstore_t *self = *p;
    for (int i = 0; i < self->n_all_cf; i++)
        if (self->all_cf[i])
            rocksdb_column_family_handle_destroy(self->all_cf[i]);
    gs_free(self->all_cf);
    if (self->db)
        rocksdb_close(self->db);
    if (self->opts)
        rocksdb_options_destroy(self->opts);
    if (self->table)
        rocksdb_block_based_options_destroy(self->table);
    if (self->cache)
        rocksdb_cache_destroy(self->cache);
    if (self->ropts)
        rocksdb_readoptions_destroy(self->ropts);
    if (self->scan_ropts)
        rocksdb_readoptions_destroy(self->scan_ropts);
    if (self->wopts)
        rocksdb_writeoptions_destroy(self->wopts);
    if (self->wopts_sync)
        rocksdb_writeoptions_destroy(self->wopts_sync);
    if (self->secondary_dir) {
        rm_flat_dir(self->secondary_dir);
        gs_free(self->secondary_dir);
    }
    gs_free(self->path);
    gs_free(self);
    *p = NULL;
}

gs_err gs_capstore_refresh(gs_capstore_t *self)
{
    if (!self->read_only)
        return GS_OK;
    char *err = NULL;
    rocksdb_try_catch_up_with_primary(self->db, &err);
    return rerr(err, "catch up with the writer", self->path);
}

// ---- raw values -----------------------------------------------------------------------------

gs_err gs_capstore_put(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                       const void *val, size_t val_nbytes)
{
    if (!valid_cf(cf) || !key || (!val && val_nbytes))
        return GS_EINVAL;
    if (self->read_only)
        return GS_ESTATE;
    char *err = NULL;
    rocksdb_put_cf(self->db, self->wopts, self->cf[cf], key, key_nbytes, val ? val : "",
                   val_nbytes, &err);
    return rerr(err, "write a value", self->path);
}

// copy_value: the value into the arena, NUL-terminated.
static gs_err copy_value(gs_arena_t *arena, const char *v, size_t n, const void **out)
{
    char *c = gs_arena_alloc(arena, n + 1);
    if (!c)
        return GS_ENOMEM;
    memcpy(c, v, n);
    c[n] = '\0';
    *out = c;
    return GS_OK;
}

gs_err gs_capstore_get(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                       gs_arena_t *arena, const void **out_val, size_t *out_nbytes)
{
    *out_val = NULL;
    *out_nbytes = 0;
    if (!valid_cf(cf) || !key)
        return GS_EINVAL;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(self->db, self->ropts, self->cf[cf], key, key_nbytes, &err);
    GS_TRY(rerr(err, "read a value", self->path));
    if (!ps)
        return GS_ENOTFOUND;
    size_t n = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &n);
    gs_err e = copy_value(arena, v, n, out_val);
    if (e == GS_OK)
        *out_nbytes = n;
    rocksdb_pinnableslice_destroy(ps);
    return e;
}

gs_err gs_capstore_delete(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes)
{
    if (!valid_cf(cf) || !key)
        return GS_EINVAL;
    if (self->read_only)
        return GS_ESTATE;
    char *err = NULL;
    rocksdb_delete_cf(self->db, self->wopts, self->cf[cf], key, key_nbytes, &err);
    return rerr(err, "delete a value", self->path);
}

// ---- many at once ---------------------------------------------------------------------------

// An id with its position in the caller's array: MultiGet runs in key order (RocksDB then walks
// each SST block once per run of neighbouring keys), results go back to the caller's order.
typedef struct {
    uint64_t id;
    size_t pos;
} keyed_t;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

gs_err gs__capstore_multi_get_each(gs_capstore_t *self, gs_cf_t cf, size_t n,
                                   const uint64_t *ids, gs__capstore_value_fn fn, void *ud)
{
    if (!valid_cf(cf) || (n && !ids))
        return GS_EINVAL;
    if (n == 0)
        return GS_OK;
    size_t chunk = n < MULTIGET_CHUNK ? n : MULTIGET_CHUNK;
    keyed_t *order = gs_trymalloc(n * sizeof *order);
    uint8_t *keys = gs_trymalloc(chunk * 8);
    const char **kp = gs_trymalloc(chunk * sizeof *kp);
    size_t *ks = gs_trymalloc(chunk * sizeof *ks);
    rocksdb_pinnableslice_t **vals = gs_trymalloc(chunk * sizeof *vals);
    char **errs = gs_trymalloc(chunk * sizeof *errs);
    gs_err e = order && keys && kp && ks && vals && errs ? GS_OK : GS_ENOMEM;
    if (e == GS_OK) {
        for (size_t i = 0; i < n; i++)
            order[i] = (keyed_t){ids[i], i};
        qsort(order, n, sizeof *order, keyed_cmp); // big-endian keys sort as the ids do
    }
    for (size_t i0 = 0; e == GS_OK && i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t j = 0; j < m; j++) {
            gs_rec_key_u64(order[i0 + j].id, keys + 8 * j);
            kp[j] = (const char *)keys + 8 * j;
            ks[j] = 8;
        }
        rocksdb_batched_multi_get_cf(self->db, self->ropts, self->cf[cf], m, kp, ks, vals, errs,
                                     true);
        for (size_t j = 0; j < m; j++) {
            if (errs[j]) {
                if (e == GS_OK)
                    e = rerr(errs[j], "read values", self->path);
                else
                    rocksdb_free(errs[j]);
            } else if (e == GS_OK) {
                size_t vn = 0;
                const char *v = vals[j] ? rocksdb_pinnableslice_value(vals[j], &vn) : NULL;
                e = fn(order[i0 + j].pos, v, vn, ud);
            }
            if (vals[j])
                rocksdb_pinnableslice_destroy(vals[j]);
        }
    }
    gs_free(order);
    gs_free(keys);
    gs_free(kp);
    gs_free(ks);
    gs_free(vals);
    gs_free(errs);
    return e;
}

typedef struct {
    gs_arena_t *arena;
    const void **vals;
    size_t *lens;
} raw_ctx_t;

static gs_err raw_copy(size_t i, const char *v, size_t n, void *ud)
{
    raw_ctx_t *c = ud;
    c->vals[i] = NULL;
    c->lens[i] = 0;
    if (!v)
        return GS_OK;
    GS_TRY(copy_value(c->arena, v, n, &c->vals[i]));
    c->lens[i] = n;
    return GS_OK;
}

gs_err gs_capstore_multi_get(gs_capstore_t *self, gs_cf_t cf, size_t n, const uint64_t *ids,
                             gs_arena_t *arena, const void **out_vals, size_t *out_nbytes)
{
    raw_ctx_t c = {arena, out_vals, out_nbytes};
    return gs__capstore_multi_get_each(self, cf, n, ids, raw_copy, &c);
}

// ---- batches --------------------------------------------------------------------------------

gs_capstore_batch_t *gs_capstore_batch_new(gs_capstore_t *store)
{
    gs_capstore_batch_t *b = gs_xcalloc(1, sizeof *b);
    b->store = store;
    b->wb = rocksdb_writebatch_create();
    gs_buf_init(&b->scratch, (size_t)64 << 20);
    return b;
}

void gs_capstore_batch_destroy(gs_capstore_batch_t **p)
{
    if (!p || !*p)
        return;
    rocksdb_writebatch_destroy((*p)->wb);
    gs_buf_cleanup(&(*p)->scratch);
    gs_free(*p);
    *p = NULL;
}

void gs_capstore_batch_clear(gs_capstore_batch_t *b) { rocksdb_writebatch_clear(b->wb); }

size_t gs_capstore_batch_count(const gs_capstore_batch_t *b)
{
    return (size_t)rocksdb_writebatch_count(b->wb);
}

gs_buf_t *gs__capstore_batch_scratch(gs_capstore_batch_t *b) { return &b->scratch; }

gs_err gs_capstore_batch_put(gs_capstore_batch_t *b, gs_cf_t cf, const void *key,
                             size_t key_nbytes, const void *val, size_t val_nbytes)
{
    if (!valid_cf(cf) || !key || (!val && val_nbytes))
        return GS_EINVAL;
    rocksdb_writebatch_put_cf(b->wb, b->store->cf[cf], key, key_nbytes, val ? val : "",
                              val_nbytes);
    return GS_OK;
}

gs_err gs_capstore_batch_delete(gs_capstore_batch_t *b, gs_cf_t cf, const void *key,
                                size_t key_nbytes)
{
    if (!valid_cf(cf) || !key)
        return GS_EINVAL;
    rocksdb_writebatch_delete_cf(b->wb, b->store->cf[cf], key, key_nbytes);
    return GS_OK;
}

gs_err gs_capstore_write(gs_capstore_t *self, gs_capstore_batch_t *b, bool sync)
{
    if (self->read_only)
        return GS_ESTATE;
    if (b->store != self)
        return GS_EINVAL;
    char *err = NULL;
    rocksdb_write(self->db, sync ? self->wopts_sync : self->wopts, b->wb, &err);
    return rerr(err, "write a batch", self->path);
}

// ---- scans ----------------------------------------------------------------------------------

gs_err gs_capstore_scan(gs_capstore_t *self, gs_cf_t cf, const void *prefix, size_t prefix_nbytes,
                        gs_capstore_scan_fn fn, void *ud)
{
    if (!valid_cf(cf) || (prefix_nbytes && !prefix))
        return GS_EINVAL;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(self->db, self->scan_ropts, self->cf[cf]);
    if (prefix_nbytes)
        rocksdb_iter_seek(it, prefix, prefix_nbytes);
    else
        rocksdb_iter_seek_to_first(it);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kn = 0, vn = 0;
        const char *k = rocksdb_iter_key(it, &kn);
        if (prefix_nbytes && (kn < prefix_nbytes || memcmp(k, prefix, prefix_nbytes) != 0))
            break;
        const char *v = rocksdb_iter_value(it, &vn);
        if (fn(k, kn, v, vn, ud))
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return rerr(err, "scan", self->path);
}

// ---- counts ---------------------------------------------------------------------------------

static int count_one(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    (void)k, (void)kn, (void)v, (void)vn;
    ++*(uint64_t *)ud;
    return 0;
}

gs_err gs_capstore_count(gs_capstore_t *self, gs_cf_t cf, bool exact, uint64_t *out_n)
{
    *out_n = 0;
    if (!valid_cf(cf))
        return GS_EINVAL;
    if (exact)
        return gs_capstore_scan(self, cf, NULL, 0, count_one, out_n);
    char *v = rocksdb_property_value_cf(self->db, self->cf[cf], "rocksdb.estimate-num-keys");
    if (!v) {
        GS_LOG_ERROR("rocksdb has no key estimate for \"%s\" in \"%s\"", cf_names[cf],
                     self->path);
        return GS_EIO;
    }
    gs_err e = gs_parse_u64(v, out_n);
    rocksdb_free(v);
    return e == GS_OK ? GS_OK : GS_EIO;
}
