// gs_capstore: the record store of an output, one RocksDB database with one column family per
// kind of record (DESIGN.md section 3): scenes, tiles, captions, changes, jobs (the ledger),
// meta, quarantine. Keys and values are described in docs/STORE.md; the value encoding is in
// index/records.h. This header exposes no RocksDB type. It is not the vector index
// (index/vindex.h); a tile's id is the same number in both.
//
// Memory: values never leave as RocksDB memory. Getters decode (or copy) into the caller's
// arena, valid until that arena is reset; scan callbacks get borrowed pointers valid during
// the callback only.
// Threads: a store handle is safe to use from many threads at once (RocksDB is); a batch is
// not (one thread at a time), and must not outlive its store.
// Errors: RocksDB failures are GS_EIO with RocksDB's message in the log line; a malformed value
// is GS_EFORMAT, logged with its family and key. "Not found" is GS_ENOTFOUND and is not
// logged (a result, not an error). Writes on a read-only store are GS_ESTATE.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"
#include "index/records.h"

// GS_CAPSTORE_SCHEMA_VERSION: the layout version written in meta["schema_version"] at
// creation. A store with a newer (or an unreadable) version is refused at open.
#define GS_CAPSTORE_SCHEMA_VERSION 1
// Reserved meta keys (others are free for the callers, e.g. "encoder.model_id").
#define GS_META_SCHEMA_VERSION "schema_version" // "1"
#define GS_META_CREATED "created"               // "2026-01-02T03:04:05Z geoscribe 0.1.0"

typedef struct gs_capstore gs_capstore_t;
typedef struct gs_capstore_batch gs_capstore_batch_t;

// The column families (values are stable: they index gs_capstore_cf_name).
typedef enum {
    GS_CF_SCENES = 0,     // scene id (8 B BE) -> gs_scene_rec_t
    GS_CF_TILES = 1,      // tile id (8 B BE) -> gs_tile_rec_t
    GS_CF_CAPTIONS = 2,   // tile id (8 B BE) -> gs_caption_rec_t
    GS_CF_CHANGES = 3,    // pair id (8 B BE) -> gs_change_rec_t
    GS_CF_JOBS = 4,       // task key (text) -> gs_job_rec_t
    GS_CF_META = 5,       // key (text) -> value (text)
    GS_CF_QUARANTINE = 6, // scene uri (text) -> gs_quarantine_rec_t
    GS_CF_COUNT = 7
} gs_cf_t;

typedef struct {
    bool create_if_missing; // create the folder and the families when absent (writers only)
    bool read_only;         // open as a RocksDB secondary instance (see gs_capstore_open)
    size_t cache_nbytes;    // block cache (0 = 64 MiB)
} gs_capstore_opts_t;

// ---- lifecycle ------------------------------------------------------------------------------

// gs_capstore_open: opens (or creates) the store in folder `path`. opts may be NULL (open an
// existing store for writing). Only one writer may hold a store (RocksDB's LOCK file); a second
// writer gets GS_EIO. With read_only the store is opened as a RocksDB *secondary* instance,
// which works while a writer is running (e.g. `geoscribe status` during a job): it sees the
// store as of the open (memtable contents included, through the WAL) and later writes after
// gs_capstore_refresh. Its private log files live in a temporary folder removed at close.
// The caller owns *out (gs_capstore_close). GS_ENOTFOUND (no store at path and not
// create_if_missing), GS_EIO (RocksDB), GS_EFORMAT (no or unreadable schema version: not a
// geoscribe store), GS_EUNSUPPORTED (schema version newer than GS_CAPSTORE_SCHEMA_VERSION).
// All of them are logged with the path.
gs_err gs_capstore_open(const char *path, const gs_capstore_opts_t *opts, gs_capstore_t **out);
// gs_capstore_close: flushes nothing beyond RocksDB's own close (writes are already in the WAL),
// frees everything, NULLs *p; accepts NULL. Not concurrent with other calls on the store.
void gs_capstore_close(gs_capstore_t **p);
// gs_capstore_refresh: a read-only store catches up with the writer's latest state; a no-op
// for a writable store. GS_EIO.
gs_err gs_capstore_refresh(gs_capstore_t *self);
// gs_capstore_cf_name: "scenes", "tiles", ...; static string. NULL for an invalid cf.
const char *gs_capstore_cf_name(gs_cf_t cf);

// ---- raw values -----------------------------------------------------------------------------
// Keys and values are byte strings; gets copy the value into `arena` (NUL-terminated for
// convenience, the NUL not counted). GS_EINVAL for an invalid cf or a NULL key.

gs_err gs_capstore_put(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                       const void *val, size_t val_nbytes);
gs_err gs_capstore_get(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes,
                       gs_arena_t *arena, const void **out_val, size_t *out_nbytes);
// gs_capstore_delete: GS_OK also when the key is absent.
gs_err gs_capstore_delete(gs_capstore_t *self, gs_cf_t cf, const void *key, size_t key_nbytes);

// ---- records, one at a time -----------------------------------------------------------------
// put_* encode and write one record (its key comes from the record); get_* read and decode one
// into `out`, its strings in `arena`. GS_ENOTFOUND, GS_EFORMAT (logged), GS_EIO, GS_ENOMEM
// (arena full), GS_ETOOBIG (a field over its cap, records.h).

gs_err gs_capstore_put_scene(gs_capstore_t *self, const gs_scene_rec_t *rec);
gs_err gs_capstore_get_scene(gs_capstore_t *self, uint64_t scene_id, gs_arena_t *arena,
                             gs_scene_rec_t *out);
gs_err gs_capstore_put_tile(gs_capstore_t *self, const gs_tile_rec_t *rec);
gs_err gs_capstore_get_tile(gs_capstore_t *self, uint64_t tile_id, gs_tile_rec_t *out);
gs_err gs_capstore_put_caption(gs_capstore_t *self, const gs_caption_rec_t *rec);
gs_err gs_capstore_get_caption(gs_capstore_t *self, uint64_t tile_id, gs_arena_t *arena,
                               gs_caption_rec_t *out);
gs_err gs_capstore_put_change(gs_capstore_t *self, const gs_change_rec_t *rec);
gs_err gs_capstore_get_change(gs_capstore_t *self, uint64_t pair_id, gs_arena_t *arena,
                              gs_change_rec_t *out);
gs_err gs_capstore_put_job(gs_capstore_t *self, const gs_job_rec_t *rec);
gs_err gs_capstore_get_job(gs_capstore_t *self, const char *task_key, gs_arena_t *arena,
                           gs_job_rec_t *out);
gs_err gs_capstore_put_quarantine(gs_capstore_t *self, const gs_quarantine_rec_t *rec);
gs_err gs_capstore_get_quarantine(gs_capstore_t *self, const char *uri, gs_arena_t *arena,
                                  gs_quarantine_rec_t *out);
// gs_capstore_meta_set / _get: text values. _get gives a NUL-terminated copy in `arena`.
gs_err gs_capstore_meta_set(gs_capstore_t *self, const char *key, const char *value);
gs_err gs_capstore_meta_get(gs_capstore_t *self, const char *key, gs_arena_t *arena,
                            const char **out_value);

// ---- many at once (query: 10,000 hits with their records) -----------------------------------
// Batched RocksDB MultiGet in the caller's order; out_found[i] is 1 when ids[i] has a record
// (out_recs[i] is zeroed otherwise). Duplicated ids are fine. GS_EIO, GS_EFORMAT (a malformed
// value, logged), GS_ENOMEM.

gs_err gs_capstore_get_tiles(gs_capstore_t *self, size_t n, const uint64_t *ids,
                             gs_tile_rec_t *out_recs, uint8_t *out_found);
gs_err gs_capstore_get_captions(gs_capstore_t *self, size_t n, const uint64_t *ids,
                                gs_arena_t *arena, gs_caption_rec_t *out_recs,
                                uint8_t *out_found);
// gs_capstore_multi_get: raw values of n 8-byte-keyed records of any family, copied into
// arena; out_vals[i] is NULL (and out_nbytes[i] 0) when absent.
gs_err gs_capstore_multi_get(gs_capstore_t *self, gs_cf_t cf, size_t n, const uint64_t *ids,
                             gs_arena_t *arena, const void **out_vals, size_t *out_nbytes);

// ---- batches: atomic writes across families (shard commit) ----------------------------------
// A batch collects puts and deletes of any families and gs_capstore_write applies them all or
// none (one RocksDB WriteBatch). Ingest commits a shard as one batch: its scene, tile and
// caption records plus the ledger entry that marks the task done, so a kill at any moment
// leaves the shard either wholly committed or not at all.

// gs_capstore_batch_new: an empty batch for `store` (aborts on OOM). Not thread-safe.
gs_capstore_batch_t *gs_capstore_batch_new(gs_capstore_t *store);
// gs_capstore_batch_destroy: frees it (unwritten contents are dropped); NULLs *p; accepts NULL.
void gs_capstore_batch_destroy(gs_capstore_batch_t **p);
// gs_capstore_batch_clear: empties it for reuse.
void gs_capstore_batch_clear(gs_capstore_batch_t *b);
// gs_capstore_batch_count: operations in it.
size_t gs_capstore_batch_count(const gs_capstore_batch_t *b);
// Appends: GS_EINVAL (cf), GS_ETOOBIG (a record field over its cap), GS_ENOMEM.
gs_err gs_capstore_batch_put(gs_capstore_batch_t *b, gs_cf_t cf, const void *key,
                             size_t key_nbytes, const void *val, size_t val_nbytes);
gs_err gs_capstore_batch_delete(gs_capstore_batch_t *b, gs_cf_t cf, const void *key,
                                size_t key_nbytes);
gs_err gs_capstore_batch_put_scene(gs_capstore_batch_t *b, const gs_scene_rec_t *rec);
gs_err gs_capstore_batch_put_tile(gs_capstore_batch_t *b, const gs_tile_rec_t *rec);
gs_err gs_capstore_batch_put_caption(gs_capstore_batch_t *b, const gs_caption_rec_t *rec);
gs_err gs_capstore_batch_put_change(gs_capstore_batch_t *b, const gs_change_rec_t *rec);
gs_err gs_capstore_batch_put_job(gs_capstore_batch_t *b, const gs_job_rec_t *rec);
gs_err gs_capstore_batch_put_quarantine(gs_capstore_batch_t *b, const gs_quarantine_rec_t *rec);
gs_err gs_capstore_batch_meta_set(gs_capstore_batch_t *b, const char *key, const char *value);
// gs_capstore_write: applies the batch atomically; with `sync` it is fsynced before returning
// (survives power loss; without, it survives a kill -9 of the process but maybe not a crash of
// the machine). The batch keeps its contents (clear it to reuse). GS_EIO, GS_ESTATE.
gs_err gs_capstore_write(gs_capstore_t *self, gs_capstore_batch_t *b, bool sync);

// ---- scans ----------------------------------------------------------------------------------
// Scans walk a family in key order (tiles by id). A callback returns 0 to go on, nonzero to
// stop (the scan then returns GS_OK). Pointers given to it are valid during the call only.
// Scans see one consistent snapshot and do not fill the block cache.

typedef int (*gs_capstore_scan_fn)(const void *key, size_t key_nbytes, const void *val,
                                   size_t val_nbytes, void *ud);
// gs_capstore_scan: every key starting with prefix (prefix_nbytes 0 = all). GS_EIO.
gs_err gs_capstore_scan(gs_capstore_t *self, gs_cf_t cf, const void *prefix, size_t prefix_nbytes,
                        gs_capstore_scan_fn fn, void *ud);
// Typed scans: GS_EIO, GS_EFORMAT (a malformed value: logged, the scan stops).
gs_err gs_capstore_scan_tiles(gs_capstore_t *self, int (*fn)(const gs_tile_rec_t *rec, void *ud),
                              void *ud);
gs_err gs_capstore_scan_jobs(gs_capstore_t *self, int (*fn)(const gs_job_rec_t *rec, void *ud),
                             void *ud);
gs_err gs_capstore_scan_quarantine(gs_capstore_t *self,
                                   int (*fn)(const gs_quarantine_rec_t *rec, void *ud), void *ud);
// gs_capstore_find_captions: calls fn with the tile id of every caption whose text contains
// `needle` (ASCII case-insensitive; "" matches all). A full scan of the captions family,
// without decoding into memory: the --caption-contains filter builds its id allow-list here.
gs_err gs_capstore_find_captions(gs_capstore_t *self, const char *needle,
                                 int (*fn)(uint64_t tile_id, void *ud), void *ud);

// ---- counts ---------------------------------------------------------------------------------

// gs_capstore_count: records in a family. exact = false gives RocksDB's estimate
// ("rocksdb.estimate-num-keys": instant, may be off after deletes or overwrites); exact = true
// counts keys with an iterator (about a second per few million keys). GS_EIO, GS_EINVAL.
gs_err gs_capstore_count(gs_capstore_t *self, gs_cf_t cf, bool exact, uint64_t *out_n);
