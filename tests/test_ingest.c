// Ingest end to end with the real binary (GS_BIN), real MPI (mpirun) and real scenes from
// ../shared/data/scenes with the tiny fixture model: one process and `mpirun -n 3` give the
// same ids, vectors and records; kill -9 of the process, of a worker rank or of rank 0 in the
// middle of a run, then a rerun, leave no tile missing or doubled; a rerun of a finished job
// changes nothing; adding a scene adds only its tiles; corrupt inputs are quarantined and the
// job ends with exit 0; the multispectral and SAR example jobs produce their bands; another
// model is refused. Plus the shard format on its own (no ../shared needed).
// Outputs are inspected through index/ (store and FAISS index) and `geoscribe status`.
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/shard.h"
#include "index/vindex.h"
#include "testutil.h"

#define LOCAL_ENV "OMP_WAIT_POLICY=PASSIVE "

// ---- helpers --------------------------------------------------------------------------------

static char tmp[4096];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t n = 0;
    if (gs_read_file(path, 64 << 20, &data, &n) != GS_OK)
        return gs_xstrdup("");
    return data;
}

// json_u64: the number after "key": in a JSON text (first occurrence), or UINT64_MAX.
static uint64_t json_u64(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

// write_job: a job over `inputs` (a YAML flow list) with output `out`; `extra` adds YAML lines.
static void write_job(const char *path, const char *out, const char *inputs, const char *extra)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "name: t\ninputs: %s\noutput: %s\ntiling: {size: 48}\n"
            "encoder: {model: %s/fixtures/openclip_tiny, batch: 8, threads: 1}\n"
            "tasks: {max_tiles: 16}\n%s",
            inputs, out, GS_SHARED_DIR, extra ? extra : "");
    fclose(f);
}

#define SCENES GS_SHARED_DIR "/data/scenes"
// three scenes: two 4-band Landsat subsets and an RGB with nodata (some cells skipped)
#define INPUTS3                                                                                    \
    "[" SCENES "/landsat-pucallpa/1985.tif, " SCENES "/landsat-pucallpa/1990.tif, " SCENES         \
    "/rasterio/RGB.byte.tif]"
#define INPUTS4                                                                                    \
    "[" SCENES "/landsat-pucallpa/1985.tif, " SCENES "/landsat-pucallpa/1990.tif, " SCENES         \
    "/rasterio/RGB.byte.tif, " SCENES "/landsat-pucallpa/1995.tif]"

// ingest: runs `geoscribe ingest` (ranks 1 = no mpirun); stdout/stderr into out.log/.err.
static int ingest(int ranks, const char *job, const char *out_prefix, const char *extra_args)
{
    if (ranks <= 1)
        return sh(LOCAL_ENV "%s ingest %s %s --format json >%s.log 2>%s.err", GS_BIN, job,
                  extra_args ? extra_args : "", out_prefix, out_prefix);
    return sh(GS_TEST_MPI_ENV "%s -n %d %s ingest %s %s --format json >%s.log 2>%s.err", GS_MPIEXEC, ranks,
              GS_BIN, job, extra_args ? extra_args : "", out_prefix, out_prefix);
}

// An output as seen through index/ and `geoscribe status`.
typedef struct {
    size_t n;
    int dim;
    uint64_t *ids; // sorted
    float *vecs;   // (n, dim) in ids order
    gs_tile_rec_t *recs;
    uint64_t n_records, planned, done, skipped, failed, quarantined, vectors;
    char *status;
} snap_t;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void snap_load(const char *out, snap_t *s)
{
    memset(s, 0, sizeof *s);
    char path[4608];
    snprintf(path, sizeof path, "%s.status.json", out);
    ck_assert_int_eq(sh("%s status --db %s --format json >%s", GS_BIN, out, path), 0);
    s->status = slurp(path);
    s->planned = json_u64(s->status, "planned");
    s->done = json_u64(s->status, "done");
    s->skipped = json_u64(s->status, "skipped");
    s->failed = json_u64(s->status, "failed");
    s->quarantined = json_u64(s->status, "quarantined");
    s->vectors = json_u64(s->status, "vectors");
    s->n_records = json_u64(s->status, "records");
    snprintf(path, sizeof path, "%s/index/tiles.faiss", out);
    gs_vindex_t *v = NULL;
    ck_assert_int_eq(gs_vindex_read(path, NULL, &v), GS_OK);
    s->dim = gs_vindex_dim(v);
    s->n = gs_vindex_ntotal(v);
    s->ids = gs_xcalloc(s->n + 1, sizeof *s->ids);
    ck_assert_uint_eq(gs_vindex_ids(v, s->ids, s->n), s->n);
    qsort(s->ids, s->n, sizeof *s->ids, cmp_u64);
    s->vecs = gs_xcalloc(s->n * (size_t)s->dim + 1, sizeof *s->vecs);
    for (size_t i = 0; i < s->n; i++)
        ck_assert_int_eq(gs_vindex_reconstruct(v, s->ids[i], s->vecs + i * (size_t)s->dim), GS_OK);
    gs_vindex_destroy(&v);
    snprintf(path, sizeof path, "%s/db", out);
    gs_capstore_t *st = NULL;
    gs_capstore_opts_t o = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(path, &o, &st), GS_OK);
    s->recs = gs_xcalloc(s->n + 1, sizeof *s->recs);
    uint8_t *found = gs_xcalloc(s->n + 1, 1);
    ck_assert_int_eq(gs_capstore_get_tiles(st, s->n, s->ids, s->recs, found), GS_OK);
    for (size_t i = 0; i < s->n; i++)
        ck_assert_msg(found[i], "vector %016" PRIx64 " has no tile record", s->ids[i]);
    gs_free(found);
    gs_capstore_close(&st);
}

static void snap_free(snap_t *s)
{
    gs_free(s->ids);
    gs_free(s->vecs);
    gs_free(s->recs);
    gs_free(s->status);
    memset(s, 0, sizeof *s);
}

// snap_check_complete: exactly one vector and one record per planned, kept tile.
static void snap_check_complete(const snap_t *s)
{
    for (size_t i = 1; i < s->n; i++)
        ck_assert_msg(s->ids[i] != s->ids[i - 1], "id %016" PRIx64 " doubled", s->ids[i]);
    ck_assert_msg(s->n == s->n_records && s->n == s->vectors && s->done == s->planned &&
                      s->planned - s->skipped == s->n && s->failed == 0,
                  "ntotal %zu, status: %s", s->n, s->status);
}

// snap_check_same: the same ids, vectors within 1e-6 and records.
static void snap_check_same(const snap_t *a, const snap_t *b)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_int_eq(a->dim, b->dim);
    for (size_t i = 0; i < a->n; i++)
        ck_assert_msg(a->ids[i] == b->ids[i], "ids differ at %zu: %016" PRIx64 " %016" PRIx64, i,
                      a->ids[i], b->ids[i]);
    ck_assert_uint_eq(
        gs_test_check_close("vectors", b->vecs, a->vecs, a->n * (size_t)a->dim, 1e-6, 0), 0);
    for (size_t i = 0; i < a->n; i++) {
        const gs_tile_rec_t *x = &a->recs[i], *y = &b->recs[i];
        ck_assert(x->tile_id == y->tile_id && x->scene_id == y->scene_id && x->x == y->x &&
                  x->y == y->y && x->w == y->w && x->h == y->h && x->time_unix == y->time_unix &&
                  x->valid_frac == y->valid_frac);
        for (int k = 0; k < 4; k++)
            ck_assert(fabs(x->bounds[k] - y->bounds[k]) <= 1e-12);
    }
    ck_assert_uint_eq(a->planned, b->planned);
    ck_assert_uint_eq(a->skipped, b->skipped);
}

static const char *file_md5(const char *path, char *out, size_t n)
{
    char cmd[4608], tmpf[4608];
    snprintf(tmpf, sizeof tmpf, "%s.md5", path);
    snprintf(cmd, sizeof cmd, "md5sum < %s > %s", path, tmpf);
    ck_assert_int_eq(system(cmd), 0);
    char *s = slurp(tmpf);
    snprintf(out, n, "%.32s", s);
    gs_free(s);
    return out;
}

// ---- the shard format -----------------------------------------------------------------------

START_TEST(test_ingest_shard_round_trip_and_damage)
{
    const char *dir = gs_test_tmpdir("shard");
    ck_assert_ptr_nonnull(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/0000000000000001.shard", dir);
    enum { N = 3, DIM = 5 };
    uint64_t ids[N] = {11, 12, 13}, skipped[2] = {21, 22};
    float vecs[N * DIM];
    for (int i = 0; i < N * DIM; i++)
        vecs[i] = (float)i * 0.25f - 1;
    gs_tile_rec_t tiles[N];
    for (int i = 0; i < N; i++)
        tiles[i] = (gs_tile_rec_t){.tile_id = ids[i],
                                   .scene_id = 7,
                                   .x = 16 * i,
                                   .w = 16,
                                   .h = 16,
                                   .bounds = {1, 2, 3, 4},
                                   .valid_frac = 0.5f};
    gs_caption_rec_t cap = {.tile_id = 12, .text = "a field", .model_id = "m", .prompt = "p"};
    gs_shard_data_t d = {.h = {.task_id = 1,
                               .settings_hash = 99,
                               .scene_id = 7,
                               .dim = DIM,
                               .n_cells = 5,
                               .n_tiles = N,
                               .n_skipped = 2,
                               .n_captions = 1},
                         .ids = ids,
                         .vecs = vecs,
                         .skipped_ids = skipped,
                         .tiles = tiles,
                         .captions = &cap};
    char h1[17], h2[17];
    ck_assert_int_eq(gs_shard_write(path, &d, h1), GS_OK);
    gs_shard_t *shd = NULL;
    ck_assert_int_eq(gs_shard_read(path, &shd, h2), GS_OK);
    ck_assert_str_eq(h1, h2);
    const gs_shard_data_t *r = gs_shard_data(shd);
    ck_assert(r->h.task_id == 1 && r->h.settings_hash == 99 && r->h.scene_id == 7 &&
              r->h.dim == DIM && r->h.n_cells == 5 && r->h.n_tiles == N && r->h.n_skipped == 2);
    ck_assert_mem_eq(r->ids, ids, sizeof ids);
    ck_assert_mem_eq(r->vecs, vecs, sizeof vecs);
    ck_assert_mem_eq(r->skipped_ids, skipped, sizeof skipped);
    ck_assert(r->tiles[2].x == 32 && r->tiles[1].bounds[3] == 4);
    ck_assert_str_eq(r->captions[0].text, "a field");
    gs_shard_destroy(&shd);
    gs_shard_header_t hh;
    ck_assert_int_eq(gs_shard_read_header(path, &hh), GS_OK);
    ck_assert_uint_eq(hh.n_tiles, N);
    // a flipped byte anywhere fails the checksum
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    for (long off = 0; off < (long)st.st_size; off += 37) {
        ck_assert_int_eq(sh("cp %s %s.x && printf '\\377' | dd of=%s.x bs=1 seek=%ld conv=notrunc "
                            "status=none",
                            path, path, path, off),
                         0);
        char px[4300];
        snprintf(px, sizeof px, "%s.x", path);
        gs_shard_t *bad = NULL;
        gs_err e = gs_shard_read(px, &bad, NULL);
        ck_assert_msg(e == GS_EFORMAT, "damage at byte %ld: %s", off, gs_strerror(e));
    }
    // truncated
    ck_assert_int_eq(sh("head -c %ld %s > %s.t", (long)st.st_size - 3, path, path), 0);
    char pt[4300];
    snprintf(pt, sizeof pt, "%s.t", path);
    ck_assert_int_eq(gs_shard_read(pt, &shd, NULL), GS_EFORMAT);
    snprintf(pt, sizeof pt, "%s/none.shard", dir);
    ck_assert_int_eq(gs_shard_read(pt, &shd, NULL), GS_ENOTFOUND);
    // inconsistent data is refused at write
    tiles[1].tile_id = 99;
    ck_assert_int_eq(gs_shard_write(path, &d, NULL), GS_EINVAL);
    tiles[1].tile_id = 12;
    d.h.n_cells = 6;
    ck_assert_int_eq(gs_shard_write(path, &d, NULL), GS_EINVAL);
}
END_TEST

// ---- end to end -----------------------------------------------------------------------------

static char ref_out[4608];
static int ref_rc = -1;

// build_reference: one process over three scenes, built once by the unchecked fixture (in
// Check's parent process, so every forked test sees it).
static void build_reference(void)
{
    if (!gs_test_shared())
        return;
    char job[4608];
    snprintf(ref_out, sizeof ref_out, "%s/ref", tmp);
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    write_job(job, ref_out, INPUTS3, NULL);
    ref_rc = ingest(1, job, ref_out, NULL);
}

static void need_reference(void)
{
    ck_assert_msg(ref_rc == 0, "the reference run failed (%d), see %s.err", ref_rc, ref_out);
}

#define VOCAB GS_SHARED_DIR "/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz"

// meta_of: meta[key] of the output `out` ("(none)" when not recorded), in a static buffer.
static const char *meta_of(const char *out, const char *key)
{
    static char val[4096];
    char db[4608];
    snprintf(db, sizeof db, "%s/db", out);
    gs_capstore_t *st = NULL;
    gs_capstore_opts_t o = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(db, &o, &st), GS_OK);
    gs_arena_t *a = gs_arena_new(4096, 0);
    const char *v = NULL;
    gs_err e = gs_capstore_meta_get(st, key, a, &v);
    ck_assert_msg(e == GS_OK || e == GS_ENOTFOUND, "meta %s: %s", key, gs_strerror(e));
    snprintf(val, sizeof val, "%s", e == GS_OK ? v : "(none)");
    gs_arena_destroy(&a);
    gs_capstore_close(&st);
    return val;
}

START_TEST(test_ingest_one_process_equals_mpirun_3)
{
    GS_NEED_SHARED();
    need_reference();
    snap_t a, b;
    snap_load(ref_out, &a);
    snap_check_complete(&a);
    ck_assert_uint_gt(a.n, 100);
    ck_assert_uint_gt(a.skipped, 0); // RGB.byte has nodata around its footprint
    char job[4608], out[4608];
    snprintf(out, sizeof out, "%s/mpi3", tmp);
    snprintf(job, sizeof job, "%s/mpi3.yaml", tmp);
    write_job(job, out, INPUTS3, NULL);
    int rc = ingest(3, job, out, "--set encoder.vocab=" VOCAB);
    ck_assert_msg(rc == 0, "mpirun -n 3 failed (%d), see %s.err", rc, out);
    snap_load(out, &b);
    snap_check_complete(&b);
    snap_check_same(&a, &b);
    // meta "encoder.vocab" (search's text tower) is recorded when the job has one, only then
    ck_assert_str_eq(meta_of(out, "encoder.vocab"), VOCAB);
    ck_assert_str_eq(meta_of(ref_out, "encoder.vocab"), "(none)");
    // the coordinator rank encoded nothing; both workers did
    char *err = slurp((snprintf(job, sizeof job, "%s.err", out), job));
    ck_assert_ptr_nonnull(strstr(err, "\"rank\":2"));
    gs_free(err);
    snap_free(&a);
    snap_free(&b);
}
END_TEST

START_TEST(test_ingest_rerun_of_a_finished_job_changes_nothing)
{
    GS_NEED_SHARED();
    need_reference();
    char job[4608], idx[4608], m1[40], m2[40];
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    snprintf(idx, sizeof idx, "%s/index/tiles.faiss", ref_out);
    snap_t a, b;
    snap_load(ref_out, &a);
    file_md5(idx, m1, sizeof m1);
    char pre[4608];
    snprintf(pre, sizeof pre, "%s/rerun", tmp);
    ck_assert_int_eq(ingest(1, job, pre, NULL), 0);
    char *log = slurp((snprintf(job, sizeof job, "%s.log", pre), job));
    ck_assert_uint_eq(json_u64(log, "tiles_this_run"), 0);
    gs_free(log);
    ck_assert_str_eq(file_md5(idx, m2, sizeof m2), m1);
    snap_load(ref_out, &b);
    snap_check_same(&a, &b);
    snap_free(&a);
    snap_free(&b);
}
END_TEST

START_TEST(test_ingest_adding_a_scene_adds_only_its_tiles)
{
    GS_NEED_SHARED();
    need_reference();
    // a copy of the three-scene output, rerun with a fourth scene
    char job[4608], out[4608], pre[4608];
    snprintf(out, sizeof out, "%s/grow", tmp);
    snprintf(job, sizeof job, "%s/grow.yaml", tmp);
    ck_assert_int_eq(sh("rm -rf %s && cp -a %s %s", out, ref_out, out), 0);
    write_job(job, out, INPUTS4, NULL);
    snprintf(pre, sizeof pre, "%s/grow2", tmp);
    ck_assert_int_eq(ingest(1, job, pre, NULL), 0);
    char *log = slurp((snprintf(job, sizeof job, "%s.log", pre), job));
    uint64_t added = json_u64(log, "tiles_this_run");
    gs_free(log);
    snap_t ref, grown;
    snap_load(ref_out, &ref);
    snap_load(out, &grown);
    snap_check_complete(&grown);
    ck_assert_uint_gt(added, 0);
    ck_assert_uint_eq(grown.n, ref.n + added);
    // every old tile is there unchanged; every new one is of the new scene
    uint64_t new_scene = 0;
    size_t j = 0;
    for (size_t i = 0; i < grown.n; i++) {
        if (j < ref.n && ref.ids[j] == grown.ids[i]) {
            ck_assert_uint_eq(gs_test_check_close("old vector", grown.vecs + i * grown.dim,
                                                  ref.vecs + j * ref.dim, (size_t)ref.dim, 0, 0),
                              0);
            j++;
            continue;
        }
        if (!new_scene)
            new_scene = grown.recs[i].scene_id;
        ck_assert_uint_eq(grown.recs[i].scene_id, new_scene);
        for (size_t k = 0; k < ref.n; k++)
            ck_assert_uint_ne(ref.recs[k].scene_id, new_scene);
    }
    ck_assert_uint_eq(j, ref.n);
    snap_free(&ref);
    snap_free(&grown);
}
END_TEST

static int count_done(const gs_job_rec_t *r, void *ud)
{
    if (r->state == GS_JOB_DONE)
        (*(uint64_t *)ud)++;
    return 0;
}

// run_and_kill: starts a run (ranks 1: no mpirun), waits until `kill_after` tasks are
// committed, then kill -9 the process (who 0), the rank-1 worker (1) or rank 0 (2) of an MPI
// run; waits for the run to end. Returns the tasks done at the kill.
static uint64_t run_and_kill(int ranks, const char *job, const char *out, int who,
                             uint64_t kill_after)
{
    char cmd[16384], errf[4608];
    snprintf(errf, sizeof errf, "%s.kill%d.err", out, who);
    if (ranks <= 1)
        snprintf(cmd, sizeof cmd,
                 LOCAL_ENV "GS_INGEST_TASK_DELAY_MS=40 GS_INGEST_PERSIST_MS=60 "
                           "exec %s ingest %s >/dev/null 2>%s",
                 GS_BIN, job, errf);
    else
        snprintf(cmd, sizeof cmd,
                 GS_TEST_MPI_ENV
                 "GS_INGEST_TASK_DELAY_MS=40 GS_INGEST_PERSIST_MS=60 "
                 "exec %s -x GS_INGEST_TASK_DELAY_MS -x GS_INGEST_PERSIST_MS -n %d %s ingest %s "
                 ">/dev/null 2>%s",
                 GS_MPIEXEC, ranks, GS_BIN, job, errf);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char db[4608];
    snprintf(db, sizeof db, "%s/db", out);
    gs_capstore_t *st = NULL;
    uint64_t done = 0;
    pid_t victim = -1;
    for (int i = 0; i < 6000 && (victim < 0 || done < kill_after); i++) {
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
        if (waitpid(pid, NULL, WNOHANG) == pid)
            ck_abort_msg("the run ended before the kill (see %s)", errf);
        if (victim < 0) {
            if (who == 0) {
                victim = pid;
            } else {
                // the roll call names each rank's pid: {"rank":R,...,"pid":P,...}
                char *log = slurp(errf), pat[32];
                snprintf(pat, sizeof pat, "{\"rank\":%d,", who == 1 ? 1 : 0);
                const char *p = strstr(log, pat);
                if (p && (p = strstr(p, "\"pid\":")))
                    victim = (pid_t)strtol(p + 6, NULL, 10);
                gs_free(log);
            }
        }
        if (!st) {
            // once the coordinator has planned (its store is complete), follow it read-only
            char *log = slurp(errf);
            int planned = strstr(log, "coordinator: job \"") != NULL;
            gs_free(log);
            gs_capstore_opts_t o = {.read_only = true};
            if (planned && gs_capstore_open(db, &o, &st) != GS_OK)
                st = NULL;
        }
        if (st && gs_capstore_refresh(st) == GS_OK) {
            uint64_t n_done = 0;
            ck_assert_int_eq(gs_capstore_scan_jobs(st, count_done, &n_done), GS_OK);
            done = n_done;
        }
    }
    ck_assert_msg(victim > 0 && done >= kill_after, "no kill point reached (done %" PRIu64 ")",
                  done);
    // `geoscribe status` reads the output while the job runs (a RocksDB secondary)
    char stf[4700];
    snprintf(stf, sizeof stf, "%s.live%d.json", out, who);
    ck_assert_int_eq(sh("%s status --db %s --format json >%s", GS_BIN, out, stf), 0);
    char *live = slurp(stf);
    ck_assert_msg(json_u64(live, "planned") > 0 && json_u64(live, "done") > 0 &&
                      json_u64(live, "records") != UINT64_MAX,
                  "status during the run: %s", live);
    gs_free(live);
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    int status = 0;
    for (int i = 0; i < 3000; i++) { // mpirun tears the job down after a rank dies
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
        if (i == 2999) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    gs_capstore_close(&st);
    return done;
}

// kill_and_resume: kill -9 in the middle of a run, rerun, compare with the reference. A flat
// index exists from the start and is persisted every 60 ms, so the kill falls between commits
// and index writes; with index.type auto the index waits for the end and shards hold it all.
static void kill_and_resume(int ranks, int who, int rerun_ranks, const char *index_type)
{
    GS_NEED_SHARED();
    need_reference();
    char job[4608], out[4608], pre[4608], extra[128];
    snprintf(out, sizeof out, "%s/kill_%d_%d_%s", tmp, ranks, who, index_type);
    snprintf(job, sizeof job, "%s.yaml", out);
    snprintf(extra, sizeof extra, "index: {type: %s}\n", index_type);
    write_job(job, out, INPUTS3, extra);
    uint64_t done = run_and_kill(ranks, job, out, who, 4);
    // interrupted: not everything is there
    char path[4608];
    snprintf(path, sizeof path, "%s.status.json", out);
    ck_assert_int_eq(sh("%s status --db %s --format json >%s", GS_BIN, out, path), 0);
    char *st = slurp(path);
    ck_assert_msg(json_u64(st, "done") < json_u64(st, "planned"),
                  "killed after %" PRIu64 " tasks but complete: %s", done, st);
    gs_free(st);
    snprintf(pre, sizeof pre, "%s.rerun", out);
    int rc = ingest(rerun_ranks, job, pre, NULL);
    ck_assert_msg(rc == 0, "rerun failed (%d), see %s.err", rc, pre);
    snap_t a, b;
    snap_load(ref_out, &a);
    snap_load(out, &b);
    snap_check_complete(&b);
    snap_check_same(&a, &b);
    // nothing left in staging once the index holds everything
    ck_assert_uint_eq(json_u64(b.status, "staged_shards"), 0);
    snap_free(&a);
    snap_free(&b);
}

START_TEST(test_ingest_kill_9_one_process_then_rerun)
{
    kill_and_resume(1, 0, 1, "flat");
}
END_TEST

START_TEST(test_ingest_kill_9_mpi_worker_then_rerun)
{
    kill_and_resume(3, 1, 3, "flat");
}
END_TEST

START_TEST(test_ingest_kill_9_mpi_rank0_then_rerun)
{
    kill_and_resume(3, 2, 1, "auto");
}
END_TEST

START_TEST(test_ingest_damaged_staged_shards_are_redone)
{
    GS_NEED_SHARED();
    need_reference();
    // index.type auto keeps every committed shard in staging until the end: kill, damage them
    // all (committed ones included), rerun: their tasks are done again, nothing is lost
    char job[4608], out[4608], pre[4608];
    snprintf(out, sizeof out, "%s/damaged", tmp);
    snprintf(job, sizeof job, "%s.yaml", out);
    write_job(job, out, INPUTS3, NULL);
    run_and_kill(1, job, out, 0, 4);
    int n = sh("n=0; for f in %s/staging/*.shard; do [ -f \"$f\" ] || continue; "
               "printf '\\377\\377' | dd of=\"$f\" bs=1 seek=200 conv=notrunc status=none; "
               "n=$((n+1)); done; exit $n",
               out);
    ck_assert_int_ge(n, 4);
    snprintf(pre, sizeof pre, "%s.rerun", out);
    ck_assert_int_eq(ingest(1, job, pre, NULL), 0);
    char *err = slurp((snprintf(job, sizeof job, "%s.err", pre), job));
    ck_assert_msg(strstr(err, "is damaged: the task is done again"), "%s", err);
    gs_free(err);
    snap_t a, b;
    snap_load(ref_out, &a);
    snap_load(out, &b);
    snap_check_complete(&b);
    snap_check_same(&a, &b);
    snap_free(&a);
    snap_free(&b);
}
END_TEST

START_TEST(test_ingest_corrupt_inputs_are_quarantined)
{
    GS_NEED_SHARED();
    char in[4608], job[4608], out[4608];
    snprintf(in, sizeof in, "%s/bad_inputs", tmp);
    ck_assert_int_eq(sh("mkdir -p %s && cp %s/rasterio/cogeo.tif %s/good.tif && "
                        "head -c 120000 %s/rasterio/cogeo.tif > %s/truncated.tif && "
                        "echo 'not a raster' > %s/text.tif",
                        in, SCENES, in, SCENES, in, in),
                     0);
    snprintf(out, sizeof out, "%s/bad", tmp);
    snprintf(job, sizeof job, "%s/bad.yaml", tmp);
    char inputs[4700];
    snprintf(inputs, sizeof inputs, "[%s]", in);
    write_job(job, out, inputs, NULL);
    int rc = ingest(1, job, out, NULL);
    char *log = slurp((snprintf(job, sizeof job, "%s.log", out), job));
    ck_assert_msg(rc == 0, "exit %d: %s", rc, log);
    ck_assert_ptr_nonnull(strstr(log, "truncated.tif"));
    ck_assert_ptr_nonnull(strstr(log, "text.tif"));
    ck_assert_ptr_null(strstr(log, "good.tif\",\"reason"));
    gs_free(log);
    snap_t s;
    snap_load(out, &s);
    ck_assert_uint_eq(s.quarantined, 2);
    snap_check_complete(&s);
    ck_assert_uint_gt(s.n, 0);
    snap_free(&s);
}
END_TEST

typedef struct {
    const char *want;
    int n, bad;
} bands_ctx_t;

static int each_scene(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    (void)k;
    (void)kn;
    bands_ctx_t *cx = ud;
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    gs_scene_rec_t r;
    if (gs_rec_decode_scene(v, vn, a, &r) != GS_OK || strcmp(r.bands, cx->want) != 0) {
        fprintf(stderr, "scene bands \"%s\", want \"%s\"\n", r.bands, cx->want);
        cx->bad++;
    }
    cx->n++;
    gs_arena_destroy(&a);
    return 0;
}

// check_scene_bands: every scene of an output records the composite bands `want`.
static void check_scene_bands(const char *out, const char *want, uint64_t want_scenes)
{
    char db[4608];
    snprintf(db, sizeof db, "%s/db", out);
    gs_capstore_t *st = NULL;
    gs_capstore_opts_t o = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(db, &o, &st), GS_OK);
    uint64_t n = 0;
    ck_assert_int_eq(gs_capstore_count(st, GS_CF_SCENES, true, &n), GS_OK);
    ck_assert_uint_eq(n, want_scenes);
    bands_ctx_t cx = {want, 0, 0};
    ck_assert_int_eq(gs_capstore_scan(st, GS_CF_SCENES, NULL, 0, each_scene, &cx), GS_OK);
    ck_assert_msg(cx.bad == 0 && cx.n == (int)want_scenes, "bands differ from %s", want);
    gs_capstore_close(&st);
}

START_TEST(test_ingest_multispectral_and_sar_examples)
{
    GS_NEED_SHARED();
    static const struct {
        const char *job, *bands;
        uint64_t scenes, min_tiles;
    } ex[] = {
        {"landsat8-false-colour", "5,4,3", 1, 4},
        {"bigearthnet-s2", "04,03,02", 6, 6}, // group band names of {scene}_B{band}.tif
        {"bigearthnet-s1-sar", "VV,VH,VV/VH", 6, 6},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        char out[4608];
        snprintf(out, sizeof out, "%s/ex-%s", tmp, ex[i].job);
        int rc = sh("cd %s && " LOCAL_ENV "%s ingest jobs/examples/%s.yaml --set "
                    "output=%s --set captioner.model= --format json >%s.log 2>%s.err",
                    GS_SOURCE_DIR, GS_BIN, ex[i].job, out, out, out);
        ck_assert_msg(rc == 0, "%s: exit %d, see %s.err", ex[i].job, rc, out);
        snap_t s;
        snap_load(out, &s);
        snap_check_complete(&s);
        ck_assert_uint_ge(s.n, ex[i].min_tiles);
        check_scene_bands(out, ex[i].bands, ex[i].scenes);
        snap_free(&s);
    }
}
END_TEST

// captions_of: every caption of an output (tile id order) with its tile record.
typedef struct {
    size_t n;
    uint64_t ids[64];
    int32_t x[64], y[64];
    char text[64][256];
} caps_t;

static int each_caption(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    (void)k;
    (void)kn;
    caps_t *cx = ud;
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    gs_caption_rec_t r;
    if (cx->n < 64 && gs_rec_decode_caption(v, vn, a, &r) == GS_OK) {
        cx->ids[cx->n] = r.tile_id;
        snprintf(cx->text[cx->n], sizeof cx->text[0], "%s", r.text);
        cx->n++;
    }
    gs_arena_destroy(&a);
    return 0;
}

static void captions_of(const char *out, caps_t *cx)
{
    char db[4608];
    snprintf(db, sizeof db, "%s/db", out);
    gs_capstore_t *st = NULL;
    gs_capstore_opts_t o = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(db, &o, &st), GS_OK);
    memset(cx, 0, sizeof *cx);
    ck_assert_int_eq(gs_capstore_scan(st, GS_CF_CAPTIONS, NULL, 0, each_caption, cx), GS_OK);
    for (size_t i = 0; i < cx->n; i++) {
        gs_tile_rec_t t;
        ck_assert_int_eq(gs_capstore_get_tile(st, cx->ids[i], &t), GS_OK);
        cx->x[i] = t.x;
        cx->y[i] = t.y;
    }
    gs_capstore_close(&st);
}

START_TEST(test_ingest_captions_per_scene_one_process_and_mpirun)
{
    GS_NEED_SHARED();
    // BigEarthNet S2 patches (120 px) in 40 px tiles: 9 cells each, all valid; per_scene:2
    // captions cells 0 and 1 (top row, x = 0 and 40) of each of the 6 scenes, whatever rank
    // runs which task
    caps_t c1, c3;
    for (int ranks = 1; ranks <= 3; ranks += 2) {
        char out[4608];
        snprintf(out, sizeof out, "%s/caps%d", tmp, ranks);
        char cmd[16384], launch[4608];
        if (ranks > 1)
            snprintf(launch, sizeof launch, GS_TEST_MPI_ENV "%s -n %d %s", GS_MPIEXEC, ranks, GS_BIN);
        else
            snprintf(launch, sizeof launch, LOCAL_ENV "%s", GS_BIN);
        snprintf(cmd, sizeof cmd,
                 "cd %s && %s ingest jobs/examples/bigearthnet-s2.yaml "
                 "--set output=%s --set tiling.size=40 --set tasks.max_tiles=4 "
                 "--set captioner.select=per_scene:2 >%s.log 2>%s.err",
                 GS_SOURCE_DIR, launch, out, out, out);
        ck_assert_msg(system(cmd) == 0, "ranks %d: see %s.err", ranks, out);
        snap_t s;
        snap_load(out, &s);
        snap_check_complete(&s);
        ck_assert_uint_eq(s.n, 54);
        snap_free(&s);
        caps_t *cx = ranks == 1 ? &c1 : &c3;
        captions_of(out, cx);
        ck_assert_uint_eq(cx->n, 12);
        for (size_t i = 0; i < cx->n; i++)
            ck_assert_msg(cx->y[i] == 0 && (cx->x[i] == 0 || cx->x[i] == 40),
                          "caption of the tile at %d,%d", cx->x[i], cx->y[i]);
    }
    for (size_t i = 0; i < c1.n; i++) {
        ck_assert(c1.ids[i] == c3.ids[i]);
        ck_assert_str_eq(c1.text[i], c3.text[i]);
    }
}
END_TEST

START_TEST(test_ingest_refuses_another_model_and_bad_specs)
{
    GS_NEED_SHARED();
    need_reference();
    char job[4608], pre[4608];
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    snprintf(pre, sizeof pre, "%s/other_model", tmp);
    int rc = ingest(1, job, pre, "--set encoder.model=" GS_SHARED_DIR "/fixtures/hfclip_tiny");
    ck_assert_int_eq(rc, 1);
    char *err = slurp((snprintf(job, sizeof job, "%s.err", pre), job));
    ck_assert_msg(strstr(err, "another encoder model"), "%s", err);
    gs_free(err);
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    rc = ingest(1, job, pre, "--set tiling.size=64");
    ck_assert_int_eq(rc, 1);
    err = slurp((snprintf(job, sizeof job, "%s.err", pre), job));
    ck_assert_msg(strstr(err, "tiling.size"), "%s", err);
    gs_free(err);
    // a bad spec is refused before any work, with the field named, under mpirun too
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    rc = ingest(3, job, pre, "--set tiling.size=9");
    ck_assert_int_eq(rc, 2);
    err = slurp((snprintf(job, sizeof job, "%s.err", pre), job));
    ck_assert_msg(strstr(err, "tiling.size"), "%s", err);
    gs_free(err);
    // an unwritable output
    snprintf(job, sizeof job, "%s/ref.yaml", tmp);
    rc = ingest(1, job, pre, "--set output=/proc/geoscribe-no");
    ck_assert_int_eq(rc, 1);
}
END_TEST

static void setup(void)
{
    const char *d = gs_test_tmpdir("ingest");
    snprintf(tmp, sizeof tmp, "%s", d ? d : "/tmp");
    build_reference();
}

Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("shard");
    tcase_add_test(tc, test_ingest_shard_round_trip_and_damage);
    suite_add_tcase(s, tc);
    tc = tcase_create("e2e");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_ingest_one_process_equals_mpirun_3);
    tcase_add_test(tc, test_ingest_rerun_of_a_finished_job_changes_nothing);
    tcase_add_test(tc, test_ingest_adding_a_scene_adds_only_its_tiles);
    tcase_add_test(tc, test_ingest_kill_9_one_process_then_rerun);
    tcase_add_test(tc, test_ingest_kill_9_mpi_worker_then_rerun);
    tcase_add_test(tc, test_ingest_kill_9_mpi_rank0_then_rerun);
    tcase_add_test(tc, test_ingest_damaged_staged_shards_are_redone);
    tcase_add_test(tc, test_ingest_corrupt_inputs_are_quarantined);
    tcase_add_test(tc, test_ingest_multispectral_and_sar_examples);
    tcase_add_test(tc, test_ingest_captions_per_scene_one_process_and_mpirun);
    tcase_add_test(tc, test_ingest_refuses_another_model_and_bad_specs);
    suite_add_tcase(s, tc);
    return s;
}
