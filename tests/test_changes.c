// `geoscribe changes` end to end with the real binary, real MPI and the Landsat time series of
// Pucallpa (8 co-registered dates, ../shared/data/scenes/landsat-pucallpa) with the tiny
// fixture models: pairs as configured (latest / consecutive, gap), one change record per
// scored tile with both scenes and times, captions exactly for the gated tiles (the top
// fraction of each pair), caption vectors in OUT/index/changes.faiss; stored embeddings of an
// ingest reused with the same scores; a rerun adds nothing; a new date adds only its pair;
// mpirun -n 3 writes the same records as one process; a grid in another CRS (warped);
// `geoscribe query --changes` with its filters. Outputs are read through index/.
#define _XOPEN_SOURCE 700 // realpath
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/vindex.h"
#include "jobs/raster.h"
#include "jobs/thumb.h"
#include "jobs/warp.h"
#include "testutil.h"

#define PUC GS_SHARED_DIR "/data/scenes/landsat-pucallpa"
#define YEAR_S 31557600.0 // a Julian year, for "five years apart" checks

// ---- helpers --------------------------------------------------------------------------------

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

static uint64_t json_u64(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

// write_job: the example job's settings over the dates `years` ("1985,1990"), into `out`;
// `extra` replaces the changes: section.
static void write_job(const char *path, const char *out, const char *years, const char *extra)
{
    char inputs[2048] = "[";
    for (const char *p = years; *p;) {
        size_t n = strcspn(p, ",");
        snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), "%s%s/%.*s.tif",
                 inputs[1] ? ", " : "", PUC, (int)n, p);
        p += n + (p[n] == ',');
    }
    snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), "]");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "name: t\ninputs: %s\noutput: %s\ntiling: {size: 128}\n"
            "composite: {bands: [1, 2, 3], scaling: none}\n"
            "time: {from: filename, pattern: \"%%Y.tif\"}\n"
            "encoder: {model: %s/fixtures/openclip_tiny, vocab: "
            "%s/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz, batch: 8, threads: 1}\n"
            "captioner: {max_tokens: 12}\n",
            inputs, out, GS_SHARED_DIR, GS_SHARED_DIR);
    if (extra)
        fputs(extra, f); // a whole changes: section
    else
        fprintf(f,
                "changes: {max_gap_days: 2000, top_fraction: 0.25, caption_model: "
                "%s/fixtures/llava_tiny}\n",
                GS_SHARED_DIR);
    fclose(f);
}

// run: `geoscribe <cmd> JOB --format json` (ranks > 1: under mpirun); output in prefix.log/.err.
static int run(const char *cmd, int ranks, const char *job, const char *prefix, const char *args)
{
    if (ranks <= 1)
        return sh(GS_TEST_MPI_ENV "%s %s %s %s --format json >%s.log 2>%s.err", GS_BIN, cmd, job,
                  args ? args : "", prefix, prefix);
    return sh(GS_TEST_MPI_ENV "%s -n %d %s %s %s %s --format json >%s.log 2>%s.err", GS_MPIEXEC, ranks,
              GS_BIN, cmd, job, args ? args : "", prefix, prefix);
}

static void expect_ok(int rc, const char *prefix)
{
    if (rc != 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s.err", prefix);
        char *e = slurp(path);
        fprintf(stderr, "--- %s.err ---\n%s\n", prefix, e);
        gs_free(e);
    }
    ck_assert_int_eq(rc, 0);
}

// ---- an output's change records -------------------------------------------------------------

typedef struct {
    uint8_t key[GS_WARP_KEY_NBYTES];
    gs_warp_key_t k;
    gs_change_rec_t r; // strings in the snapshot's arena
    uint8_t *val;
    size_t val_nbytes;
} rec_t;

typedef struct {
    rec_t *recs;
    size_t n, cap;
    gs_arena_t *arena;
    size_t n_ledger_done, n_ledger;
    size_t n_vectors;
    uint64_t *vec_ids;
} snap_t;

static int take(const void *key, size_t kn, const void *val, size_t vn, void *ud)
{
    snap_t *s = ud;
    ck_assert_uint_eq(kn, GS_WARP_KEY_NBYTES);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->recs = gs_xrealloc(s->recs, s->cap * sizeof *s->recs);
    }
    rec_t *r = &s->recs[s->n++];
    memcpy(r->key, key, kn);
    ck_assert_int_eq(gs_warp_key_decode(key, kn, &r->k), GS_OK);
    ck_assert_int_eq(gs_rec_decode_change(val, vn, s->arena, &r->r), GS_OK);
    r->val = gs_xmalloc(vn);
    memcpy(r->val, val, vn);
    r->val_nbytes = vn;
    return 0;
}

static int take_job(const gs_job_rec_t *r, void *ud)
{
    snap_t *s = ud;
    if (strncmp(r->task_key, "c/", 2) == 0) {
        s->n_ledger++;
        s->n_ledger_done += r->state == GS_JOB_DONE;
    }
    return 0;
}

static void snap_load(const char *out, snap_t *s)
{
    memset(s, 0, sizeof *s);
    s->arena = gs_arena_new(1 << 20, 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/db", out);
    gs_capstore_opts_t o = {.read_only = true};
    gs_capstore_t *st = NULL;
    ck_assert_int_eq(gs_capstore_open(path, &o, &st), GS_OK);
    ck_assert_int_eq(gs_capstore_scan(st, GS_CF_CHANGES, NULL, 0, take, s), GS_OK);
    ck_assert_int_eq(gs_capstore_scan_jobs(st, take_job, s), GS_OK);
    gs_capstore_close(&st);
    snprintf(path, sizeof path, "%s/index/changes.faiss", out);
    gs_vindex_t *ix = NULL;
    if (gs_path_exists(path)) {
        ck_assert_int_eq(gs_vindex_read(path, NULL, &ix), GS_OK);
        s->n_vectors = gs_vindex_ntotal(ix);
        s->vec_ids = gs_xcalloc(s->n_vectors + 1, sizeof *s->vec_ids);
        gs_vindex_ids(ix, s->vec_ids, s->n_vectors);
        gs_vindex_destroy(&ix);
    }
}

static void snap_free(snap_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        gs_free(s->recs[i].val);
    gs_free(s->recs);
    gs_free(s->vec_ids);
    gs_arena_destroy(&s->arena);
}

static const rec_t *find_key(const snap_t *s, const uint8_t *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (memcmp(s->recs[i].key, key, GS_WARP_KEY_NBYTES) == 0)
            return &s->recs[i];
    return NULL;
}

// same_records: both outputs hold byte-identical change records (keys and values).
static void same_records(const snap_t *a, const snap_t *b)
{
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const rec_t *o = find_key(b, a->recs[i].key);
        ck_assert_msg(o != NULL, "record %zu missing", i);
        ck_assert_uint_eq(o->val_nbytes, a->recs[i].val_nbytes);
        ck_assert_msg(memcmp(o->val, a->recs[i].val, o->val_nbytes) == 0,
                      "record %zu differs (scores %.9g vs %.9g)", i, (double)a->recs[i].r.score,
                      (double)o->r.score);
    }
}

static uint64_t id_of(const char *year)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.tif", PUC, year);
    char real[4096];
    ck_assert_ptr_nonnull(realpath(path, real));
    return gs_scene_id_of(real);
}

// check_pairs: every record's scenes form one of the expected pairs "1985>1990,..." with times
// five years apart; `per_pair` records a pair; captions exactly for the top `n_cap` scores of
// each pair, each with its caption vector.
static void check_pairs(const snap_t *s, const char *pairs, size_t per_pair, size_t n_cap)
{
    uint64_t ids[16][2];
    int n_pairs = 0;
    for (const char *p = pairs; *p && n_pairs < 16; n_pairs++) {
        char y0[8], y1[8];
        ck_assert_int_eq(sscanf(p, "%4s>%4s", y0, y1), 2);
        ids[n_pairs][0] = id_of(y0);
        ids[n_pairs][1] = id_of(y1);
        p += 9 + (p[9] == ',');
    }
    ck_assert_uint_eq(s->n, (size_t)n_pairs * per_pair);
    size_t n_captions = 0;
    for (int q = 0; q < n_pairs; q++) {
        size_t n = 0;
        float min_cap = 3, max_uncap = -1;
        for (size_t i = 0; i < s->n; i++) {
            const rec_t *r = &s->recs[i];
            if (r->r.before_scene != ids[q][0] || r->r.after_scene != ids[q][1])
                continue;
            n++;
            ck_assert(r->r.score >= 0 && r->r.score <= 2);
            double gap = (double)(r->r.after_time - r->r.before_time);
            ck_assert_msg(gap > 4.9 * YEAR_S && gap < 5.1 * YEAR_S, "gap %.0f s", gap);
            ck_assert_uint_eq(r->r.pair_id, gs_warp_pair_id(r->key));
            ck_assert_ptr_nonnull(strstr(r->r.model_id, "llava:"));
            // the tile is at Pucallpa
            ck_assert(r->k.bounds[0] > -74.73 && r->k.bounds[2] < -74.15);
            ck_assert(r->k.bounds[1] > -8.59 && r->k.bounds[3] < -8.28);
            if (*r->r.caption) {
                n_captions++;
                min_cap = fminf(min_cap, r->r.score);
                bool has_vec = false;
                for (size_t v = 0; v < s->n_vectors; v++)
                    has_vec |= s->vec_ids[v] == r->r.pair_id;
                ck_assert_msg(has_vec, "caption without a vector");
            } else {
                max_uncap = fmaxf(max_uncap, r->r.score);
            }
        }
        ck_assert_uint_eq(n, per_pair);
        // gated: every captioned tile scores at least as high as every uncaptioned one
        ck_assert_msg(min_cap >= max_uncap, "pair %d: captioned min %.6f < uncaptioned max %.6f", q,
                      (double)min_cap, (double)max_uncap);
    }
    ck_assert_uint_eq(n_captions, (size_t)n_pairs * n_cap);
    ck_assert_uint_eq(s->n_vectors, n_captions);
}

static const char *tmpdir(const char *name)
{
    const char *d = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(d);
    static char keep[4][4096];
    static int slot;
    char *k = keep[slot++ % 4];
    snprintf(k, 4096, "%s", d);
    return k;
}

// ---- tests ----------------------------------------------------------------------------------

#define ALL_YEARS "1985,1990,1995,2000,2005,2010,2015,2020"
#define ALL_PAIRS "1985>1990,1990>1995,1995>2000,2000>2005,2005>2010,2010>2015,2015>2020"

// 697 x 377 px in 128 px tiles: 6 x 3 = 18 cells a pair, all valid; top 25%: 5 captions
START_TEST(test_changes_pucallpa_end_to_end)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_e2e");
    char job[4200], out[4200], pre[4200];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(out, sizeof out, "%s/out", d);
    write_job(job, out, ALL_YEARS, NULL);
    // ingest first (the nightly order), so the change run reuses the stored embeddings
    snprintf(pre, sizeof pre, "%s/ingest", d);
    expect_ok(run("ingest", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/changes", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/changes.log", d);
    char *js = slurp(pre);
    fprintf(stderr, "changes summary: %s", js);
    ck_assert_uint_eq(json_u64(js, "pairs"), 7);
    ck_assert_uint_eq(json_u64(js, "pairs_this_run"), 7);
    ck_assert_uint_eq(json_u64(js, "scored_this_run"), 126);
    ck_assert_uint_eq(json_u64(js, "captioned_this_run"), 35);
    ck_assert_uint_eq(json_u64(js, "records"), 126);
    ck_assert_uint_eq(json_u64(js, "vectors"), 35);
    ck_assert_ptr_nonnull(strstr(js, "\"complete\":true"));
    ck_assert_ptr_nonnull(strstr(js, "\"reused_embeddings\":true"));
    ck_assert_int_eq(count_of(js, "\"done\":true"), 7);
    ck_assert_ptr_nonnull(strstr(js, "1985.tif\",\"after\":\"" PUC "/1990.tif"));
    gs_free(js);
    snap_t s;
    snap_load(out, &s);
    check_pairs(&s, ALL_PAIRS, 18, 5);
    ck_assert_uint_eq(s.n_ledger, 7);
    ck_assert_uint_eq(s.n_ledger_done, 7);
    // the staging folder is empty: every shard committed and its vectors persisted
    ck_assert_int_eq(sh("test -z \"$(ls -A %s/out/staging)\"", d), 0);

    // a rerun adds nothing and changes nothing
    snprintf(pre, sizeof pre, "%s/rerun", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/rerun.log", d);
    js = slurp(pre);
    ck_assert_uint_eq(json_u64(js, "pairs_this_run"), 0);
    ck_assert_uint_eq(json_u64(js, "records"), 126);
    gs_free(js);
    snap_t s2;
    snap_load(out, &s2);
    same_records(&s, &s2);
    ck_assert_uint_eq(s2.n_vectors, 35);
    snap_free(&s2);

    // the same job without an ingest embeds every tile itself: the same scores and captions
    char args[4300];
    snprintf(args, sizeof args, "--set output=%s/fresh", d);
    snprintf(pre, sizeof pre, "%s/fresh", d);
    expect_ok(run("changes", 1, job, pre, args), pre);
    snprintf(pre, sizeof pre, "%s/fresh.log", d);
    js = slurp(pre);
    ck_assert_ptr_nonnull(strstr(js, "\"reused_embeddings\":false"));
    gs_free(js);
    snprintf(pre, sizeof pre, "%s/fresh", d);
    snap_t s3;
    snap_load(pre, &s3);
    ck_assert_uint_eq(s3.n, s.n);
    double max_diff = 0;
    for (size_t i = 0; i < s.n; i++) {
        const rec_t *o = find_key(&s3, s.recs[i].key);
        ck_assert_ptr_nonnull(o);
        max_diff = fmax(max_diff, fabs((double)o->r.score - s.recs[i].r.score));
        ck_assert_str_eq(o->r.caption, s.recs[i].r.caption);
    }
    fprintf(stderr, "stored vs fresh embeddings: max score difference %.3g\n", max_diff);
    ck_assert_msg(max_diff <= 1e-5, "scores differ by %.3g", max_diff);
    snap_free(&s3);
    snap_free(&s);
}
END_TEST

// the example change job runs as the README says, from the repository root
START_TEST(test_changes_example_job)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_example");
    const char *ex = "jobs/examples/landsat-pucallpa-changes.yaml";
    ck_assert_int_eq(sh("cd %s && " GS_TEST_MPI_ENV "%s ingest %s --set output=%s/out >%s/i.log "
                        "2>%s/i.err",
                        GS_SOURCE_DIR, GS_BIN, ex, d, d, d),
                     0);
    ck_assert_int_eq(sh("cd %s && " GS_TEST_MPI_ENV "%s changes %s --set output=%s/out --format json "
                        ">%s/c.log 2>%s/c.err",
                        GS_SOURCE_DIR, GS_BIN, ex, d, d, d),
                     0);
    char path[4200];
    snprintf(path, sizeof path, "%s/c.log", d);
    char *js = slurp(path);
    ck_assert_uint_eq(json_u64(js, "pairs_this_run"), 7);
    ck_assert_uint_eq(json_u64(js, "scored_this_run"), 126);
    ck_assert_uint_eq(json_u64(js, "captioned_this_run"), 35); // top 25 %: 5 of 18 a pair
    ck_assert_ptr_nonnull(strstr(js, "\"reused_embeddings\":true"));
    gs_free(js);
    ck_assert_int_eq(sh("cd %s && %s query --db %s/out --changes \"new buildings\" --from 2000 "
                        "--to 2020 >%s/q.log 2>%s/q.err",
                        GS_SOURCE_DIR, GS_BIN, d, d, d),
                     0);
    snprintf(path, sizeof path, "%s/q.log", d);
    js = slurp(path);
    ck_assert_int_eq(count_of(js, "\n"), 10); // -k 10 of 4 pairs x 5 captions
    gs_free(js);
}
END_TEST

// a new date adds exactly its pair; the earlier records stay as they are
START_TEST(test_changes_incremental_new_date)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_incr");
    char job[4200], out[4200], pre[4200];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(out, sizeof out, "%s/out", d);
    write_job(job, out, "1985,1990,1995,2000,2005,2010,2015", NULL);
    snprintf(pre, sizeof pre, "%s/first", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snap_t a;
    snap_load(out, &a);
    check_pairs(&a, "1985>1990,1990>1995,1995>2000,2000>2005,2005>2010,2010>2015", 18, 5);
    write_job(job, out, ALL_YEARS, NULL); // the nightly archive got a new date
    snprintf(pre, sizeof pre, "%s/second", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/second.log", d);
    char *js = slurp(pre);
    ck_assert_uint_eq(json_u64(js, "pairs_this_run"), 1);
    ck_assert_uint_eq(json_u64(js, "scored_this_run"), 18);
    ck_assert_uint_eq(json_u64(js, "captioned_this_run"), 5);
    ck_assert_uint_eq(json_u64(js, "records"), 126);
    ck_assert_ptr_nonnull(strstr(js, "2015.tif\",\"after\":\"" PUC "/2020.tif"));
    gs_free(js);
    snap_t b;
    snap_load(out, &b);
    check_pairs(&b, ALL_PAIRS, 18, 5);
    for (size_t i = 0; i < a.n; i++) // the first run's records are untouched
        ck_assert_ptr_nonnull(find_key(&b, a.recs[i].key));
    snap_free(&a);
    snap_free(&b);
}
END_TEST

// consecutive pairing: a date added between two paired ones pairs with both of them; a gap
// over changes.max_gap_days pairs nothing
START_TEST(test_changes_consecutive_backfill_and_gap)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_consec");
    char job[4200], out[4200], pre[4200];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(out, sizeof out, "%s/out", d);
    const char *extra = "changes: {pairing: consecutive, max_gap_days: 4000, top_fraction: 0.1, "
                        "caption_model: none}\n";
    write_job(job, out, "1985,1995", extra);
    snprintf(pre, sizeof pre, "%s/first", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    write_job(job, out, "1985,1990,1995", extra);
    snprintf(pre, sizeof pre, "%s/second", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/second.log", d);
    char *js = slurp(pre);
    ck_assert_uint_eq(json_u64(js, "pairs"), 2); // 1985>1990, 1990>1995
    ck_assert_uint_eq(json_u64(js, "pairs_this_run"), 2);
    ck_assert_uint_eq(json_u64(js, "records"), 3 * 18); // and 1985>1995 from the first run
    ck_assert_uint_eq(json_u64(js, "captions"), 0);     // caption_model: none
    gs_free(js);
    // a gap of 10 years over max_gap_days 3000: no pair
    const char *gap = "changes: {max_gap_days: 3000, caption_model: none}\n";
    char out2[4200];
    snprintf(out2, sizeof out2, "%s/out2", d);
    write_job(job, out2, "1985,1995", gap);
    snprintf(pre, sizeof pre, "%s/gap", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/gap.log", d);
    js = slurp(pre);
    ck_assert_uint_eq(json_u64(js, "pairs"), 0);
    ck_assert_uint_eq(json_u64(js, "records"), 0);
    gs_free(js);
}
END_TEST

// kill -9 in the middle of a run (shards written, some committed, the caption index not yet
// persisted), then a rerun: the same records and caption vectors as a clean run
START_TEST(test_changes_kill_9_then_rerun)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_kill");
    char job[4200], pre[4200], clean[4200], killed[4200], args[4300];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(clean, sizeof clean, "%s/clean", d);
    snprintf(killed, sizeof killed, "%s/killed", d);
    write_job(job, clean, "1990,1995,2000,2005,2010", NULL);
    snprintf(pre, sizeof pre, "%s/clean", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    // each task sleeps 700 ms after writing its shard, before reporting it
    ck_assert_int_eq(sh(GS_TEST_MPI_ENV "GS_INGEST_TASK_DELAY_MS=700 %s changes %s --set output=%s "
                                ">%s/k.log 2>%s/k.err & echo $! >%s/pid",
                        GS_BIN, job, killed, d, d, d),
                     0);
    int n = 0;
    for (int i = 0; i < 300 && n < 3; i++) {
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "ls %s/staging/*.chshard 2>/dev/null | wc -l", killed);
        FILE *f = popen(cmd, "r");
        if (f) {
            if (fscanf(f, "%d", &n) != 1)
                n = 0;
            pclose(f);
        }
    }
    ck_assert_int_ge(n, 3);
    ck_assert_int_eq(sh("kill -9 $(cat %s/pid); sleep 0.3", d), 0);
    snprintf(args, sizeof args, "--set output=%s", killed);
    snprintf(pre, sizeof pre, "%s/rerun", d);
    expect_ok(run("changes", 1, job, pre, args), pre);
    snprintf(pre, sizeof pre, "%s/rerun.log", d);
    char *js = slurp(pre);
    fprintf(stderr, "after kill -9: %.*s\n", (int)strcspn(js, "["), js);
    ck_assert_ptr_nonnull(strstr(js, "\"complete\":true"));
    ck_assert_uint_ge(json_u64(js, "recovered_shards"), 1); // written, never reported
    ck_assert_uint_lt(json_u64(js, "pairs_this_run"), 4);   // the committed ones are not redone
    gs_free(js);
    snap_t a, b;
    snap_load(clean, &a);
    snap_load(killed, &b);
    same_records(&a, &b);
    ck_assert_uint_eq(b.n_vectors, a.n_vectors); // vectors of committed shards were re-added
    check_pairs(&b, "1990>1995,1995>2000,2000>2005,2005>2010", 18, 5);
    snap_free(&a);
    snap_free(&b);
}
END_TEST

// mpirun -n 3 (two workers) writes the same records as one process
START_TEST(test_changes_mpi_matches_one_process)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_mpi");
    char job[4200], pre[4200], o1[4200], o3[4200], args[4300];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(o1, sizeof o1, "%s/one", d);
    snprintf(o3, sizeof o3, "%s/three", d);
    write_job(job, o1, "1995,2000,2005,2010", NULL);
    snprintf(pre, sizeof pre, "%s/one", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snprintf(args, sizeof args, "--set output=%s", o3);
    snprintf(pre, sizeof pre, "%s/three", d);
    expect_ok(run("changes", 3, job, pre, args), pre);
    snap_t a, b;
    snap_load(o1, &a);
    snap_load(o3, &b);
    check_pairs(&b, "1995>2000,2000>2005,2005>2010", 18, 5);
    same_records(&a, &b);
    snap_free(&a);
    snap_free(&b);
}
END_TEST

// thumb: one side of record `rec` rendered from the job the change run recorded
// (OUT/changes.yaml), read back: 128 x 128 RGB (the tile, never enlarged).
static uint8_t *thumb(const gs_job_t *job, const char *d, const rec_t *rec, bool after)
{
    char path[4300], err[512] = "";
    snprintf(path, sizeof path, "%s/thumb.png", d);
    gs_err e = gs_thumb_render_change(job, PUC "/2015.tif", PUC "/2020.tif", after,
                                      rec->k.location, 256, path, err, sizeof err);
    ck_assert_msg(e == GS_OK, "%s", err);
    uint8_t *px = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(path, &px, &w, &h), GS_OK);
    ck_assert_int_eq(w, 128);
    ck_assert_int_eq(h, 128);
    return px;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b)
{
    double s = 0;
    for (int i = 0; i < 128 * 128 * 3; i++)
        s += abs((int)a[i] - (int)b[i]);
    return s / (128 * 128 * 3);
}

// check_warped_thumbnails: both sides of warped pairs get thumbnails on the pair grid, at the
// right place: the record that changed least looks more alike across its two dates than its
// earlier side looks like the later side of any of 8 other places.
static void check_warped_thumbnails(const char *d, const char *out, const snap_t *s)
{
    char spec[4300], err[512] = "";
    snprintf(spec, sizeof spec, "%s/changes.yaml", out);
    gs_job_t *job = NULL;
    ck_assert_msg(gs_job_load(spec, NULL, 0, &job, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_int_eq(job->changes.grid, GS_JOB_GRID_CRS);
    size_t lo = 0;
    for (size_t i = 1; i < s->n; i++)
        if (s->recs[i].r.score < s->recs[lo].r.score)
            lo = i;
    uint8_t *before = thumb(job, d, &s->recs[lo], false), *after = thumb(job, d, &s->recs[lo], true);
    double same = mean_abs_diff(before, after);
    for (size_t j = 0; j < 8; j++) {
        size_t i = (lo + 1 + j * (s->n - 1) / 8) % s->n;
        uint8_t *other = thumb(job, d, &s->recs[i], true);
        double diff = mean_abs_diff(before, other);
        fprintf(stderr, "thumbnails: same place %.2f, another place %.2f\n", same, diff);
        ck_assert_msg(same < diff, "the two dates of one place differ more (%.2f) than two "
                      "places (%.2f)", same, diff);
        gs_free(other);
    }
    // a location of no cell of this grid
    snprintf(spec, sizeof spec, "%s/none.png", d);
    ck_assert_int_eq(gs_thumb_render_change(job, PUC "/2015.tif", PUC "/2020.tif", true, 12345,
                                            256, spec, err, sizeof err),
                     GS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "other changes.* settings"));
    gs_free(before);
    gs_free(after);
    gs_job_destroy(&job);
}

// a grid in another CRS: both dates warped onto 120 m UTM pixels
START_TEST(test_changes_grid_crs_warps_both)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_crs");
    char job[4200], out[4200], pre[4200];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(out, sizeof out, "%s/out", d);
    write_job(job, out, "2015,2020",
              "changes: {grid: crs, crs: \"EPSG:32718\", resolution: 120, max_gap_days: 2000, "
              "caption_model: none}\n");
    snprintf(pre, sizeof pre, "%s/run", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    snap_t s;
    snap_load(out, &s);
    // one record per cell of the UTM grid over both footprints (every cell is covered)
    gs_job_t *j = NULL;
    char err[512] = "";
    ck_assert_int_eq(gs_job_load(job, NULL, 0, &j, err, sizeof err), GS_OK);
    gs_scene_t *a = NULL, *b = NULL;
    gs_scene_problem_t pr;
    ck_assert_int_eq(gs_scene_open(j, PUC "/2015.tif", &a, &pr, err, sizeof err), GS_OK);
    ck_assert_int_eq(gs_scene_open(j, PUC "/2020.tif", &b, &pr, err, sizeof err), GS_OK);
    gs_warp_grid_t g;
    ck_assert_int_eq(gs_warp_grid_crs("EPSG:32718", 120, a, b, &g, err, sizeof err), GS_OK);
    gs_tile_grid_t tg;
    ck_assert_int_eq(gs_tile_grid_init(&tg, g.width, g.height, 128, 0, GS_JOB_EDGE_SHIFT), GS_OK);
    ck_assert_uint_eq(s.n, (size_t)gs_tile_grid_count(&tg));
    fprintf(stderr, "grid crs: %d x %d px of 120 m, %zu records\n", g.width, g.height, s.n);
    gs_warp_grid_cleanup(&g);
    gs_scene_close(&a);
    gs_scene_close(&b);
    gs_job_destroy(&j);
    for (size_t i = 0; i < s.n; i++) {
        const gs_warp_key_t *k = &s.recs[i].k;
        ck_assert(k->bounds[0] > -74.75 && k->bounds[2] < -74.13);
        ck_assert(k->bounds[1] > -8.61 && k->bounds[3] < -8.26);
        ck_assert_uint_eq(s.recs[i].r.after_scene, id_of("2020"));
    }
    check_warped_thumbnails(d, out, &s);
    snap_free(&s);
}
END_TEST

// `geoscribe query --changes`: text against the captions, time window, box and substring
START_TEST(test_changes_query)
{
    GS_NEED_SHARED();
    const char *d = tmpdir("changes_query");
    char job[4200], out[4200], pre[4200], path[4300];
    snprintf(job, sizeof job, "%s/job.yaml", d);
    snprintf(out, sizeof out, "%s/out", d);
    write_job(job, out, "1995,2000,2005,2010,2015,2020", NULL);
    snprintf(pre, sizeof pre, "%s/ingest", d); // `serve` needs the tile index
    expect_ok(run("ingest", 1, job, pre, NULL), pre);
    snprintf(pre, sizeof pre, "%s/run", d);
    expect_ok(run("changes", 1, job, pre, NULL), pre);
    // text over a window: pairs with both dates in 2005..2020 (3 pairs x 5 captions = 15)
    ck_assert_int_eq(sh("%s query --db %s --changes new buildings --from 2005 --to 2020 -k 100 "
                        ">%s/q1.json 2>%s/q1.err",
                        GS_BIN, out, d, d),
                     0);
    snprintf(path, sizeof path, "%s/q1.json", d);
    char *q = slurp(path);
    ck_assert_int_eq(count_of(q, "\n"), 15);
    ck_assert_int_eq(count_of(q, "\"caption\":null"), 0);
    ck_assert_int_eq(count_of(q, "\"before\":{"), 15);
    ck_assert_int_eq(count_of(q, "\"time\":\"2000"), 0);
    ck_assert_int_eq(count_of(q, "\"time\":\"1995"), 0);
    ck_assert_ptr_nonnull(strstr(q, "\"rank\":1,"));
    ck_assert_ptr_nonnull(strstr(q, "\"similarity\":"));
    ck_assert_ptr_nonnull(strstr(q, "\"bbox\":[-74."));
    // the first hit's caption, searched as a substring, finds it
    const char *c = strstr(q, "\"caption\":\"");
    ck_assert_ptr_nonnull(c);
    c += strlen("\"caption\":\"");
    char word[64];
    size_t n = strcspn(c, " \"\\");
    ck_assert_uint_gt(n, 0);
    snprintf(word, sizeof word, "%.*s", (int)(n < 63 ? n : 63), c);
    gs_free(q);
    ck_assert_int_eq(sh("%s query --db %s --changes --caption-contains '%s' -k 1000 "
                        ">%s/q2.json 2>%s/q2.err",
                        GS_BIN, out, word, d, d),
                     0);
    snprintf(path, sizeof path, "%s/q2.json", d);
    q = slurp(path);
    ck_assert_int_ge(count_of(q, "\n"), 1);
    ck_assert_int_eq(count_of(q, "\n"), count_of(q, word) - count_of(q, "\"caption\":null"));
    gs_free(q);
    // no text: every pair's tiles by change score; a box away from Pucallpa finds nothing
    ck_assert_int_eq(
        sh("%s query --db %s --changes -k 1000 >%s/q3.json 2>%s/q3.err", GS_BIN, out, d, d), 0);
    snprintf(path, sizeof path, "%s/q3.json", d);
    q = slurp(path);
    ck_assert_int_eq(count_of(q, "\n"), 5 * 18);
    ck_assert_ptr_nonnull(strstr(q, "\"similarity\":null"));
    gs_free(q);
    ck_assert_int_eq(sh("%s query --db %s --changes --bbox 10,10,11,11 >%s/q4.json 2>%s/q4.err",
                        GS_BIN, out, d, d),
                     0);
    snprintf(path, sizeof path, "%s/q4.json", d);
    q = slurp(path);
    ck_assert_str_eq(q, "");
    gs_free(q);
    // the HTTP API of `geoscribe serve` answers with the same bytes as the command line
    ck_assert_int_eq(sh("%s serve --db %s --bind 'tcp://127.0.0.1:*' --http 127.0.0.1:0 "
                        "--format json >%s/serve.out 2>%s/serve.err & echo $! >%s/serve.pid",
                        GS_BIN, out, d, d, d),
                     0);
    int up = 0;
    for (int i = 0; i < 200 && !up; i++) {
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
        snprintf(path, sizeof path, "%s/serve.out", d);
        char *o = slurp(path);
        up = strstr(o, "\"http\":\"http://") != NULL;
        gs_free(o);
    }
    ck_assert_msg(up, "geoscribe serve did not start");
    int rc = sh("url=$(grep -o '\"http\":\"[^\"]*\"' %s/serve.out | cut -d'\"' -f4) && "
                "curl -sf \"${url}api/changes?q=new%%20buildings&from=2005&to=2020&k=7\" "
                ">%s/h1.json && curl -s -o /dev/null -w '%%{http_code}' "
                "\"${url}api/changes?from=yesterday\" >%s/h2.txt",
                d, d, d);
    // Change thumbnails: on a co-registered pair the earlier side is the ingest's tile, the same
    // PNG bytes as /api/tile (job.yaml and changes.yaml compose alike); bad paths are refused.
    int rc_thumb = sh(
        "cd %s && url=$(grep -o '\"http\":\"[^\"]*\"' serve.out | cut -d'\"' -f4) && "
        "pair=$(head -n 1 h1.json | grep -o '\"pair_id\":\"[0-9]*\"' | cut -d'\"' -f4) && "
        "tile=$(head -n 1 h1.json | grep -o '\"before\":{[^}]*}' | "
        "grep -o '\"tile_id\":\"[0-9]*\"' | cut -d'\"' -f4) && [ -n \"$pair\" ] && "
        "[ -n \"$tile\" ] && curl -sf \"${url}api/change/$pair/before.png\" >cb.png && "
        "curl -sf \"${url}api/change/$pair/after.png\" >ca.png && "
        "curl -sf \"${url}api/tile/$tile.png\" >tb.png && cmp cb.png tb.png && "
        "! cmp -s cb.png ca.png && for u in abc/before.png 1/before.png $pair/middle.png "
        "$pair/before; do curl -s -o /dev/null -w '%%{http_code} ' \"${url}api/change/$u\"; "
        "done >codes.txt",
        d);
    sh("kill $(cat %s/serve.pid)", d);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(rc_thumb, 0);
    snprintf(path, sizeof path, "%s/codes.txt", d);
    q = slurp(path);
    ck_assert_str_eq(q, "400 404 404 404 ");
    gs_free(q);
    ck_assert_int_eq(sh("%s query --db %s --changes new buildings --from 2005 --to 2020 -k 7 "
                        ">%s/h1.cli 2>/dev/null && cmp %s/h1.json %s/h1.cli",
                        GS_BIN, out, d, d, d),
                     0);
    snprintf(path, sizeof path, "%s/h2.txt", d);
    q = slurp(path);
    ck_assert_str_eq(q, "400");
    gs_free(q);
    // GeoJSON: a FeatureCollection of tile polygons
    ck_assert_int_eq(sh("%s query --db %s --changes --format geojson river -k 3 "
                        ">%s/q5.json 2>%s/q5.err",
                        GS_BIN, out, d, d),
                     0);
    snprintf(path, sizeof path, "%s/q5.json", d);
    q = slurp(path);
    ck_assert_ptr_nonnull(strstr(q, "{\"type\":\"FeatureCollection\""));
    ck_assert_int_eq(count_of(q, "\"type\":\"Polygon\""), 3);
    ck_assert_ptr_nonnull(strstr(q, "\"before_time\":"));
    gs_free(q);
}
END_TEST

Suite *changes_suite(void)
{
    Suite *s = suite_create("changes");
    TCase *tc = tcase_create("pucallpa");
    tcase_set_timeout(tc, 600); // each case; a few seconds each outside ASan
    tcase_add_test(tc, test_changes_pucallpa_end_to_end);
    tcase_add_test(tc, test_changes_example_job);
    tcase_add_test(tc, test_changes_incremental_new_date);
    tcase_add_test(tc, test_changes_consecutive_backfill_and_gap);
    tcase_add_test(tc, test_changes_kill_9_then_rerun);
    tcase_add_test(tc, test_changes_mpi_matches_one_process);
    tcase_add_test(tc, test_changes_grid_crs_warps_both);
    tcase_add_test(tc, test_changes_query);
    suite_add_tcase(s, tc);
    return s;
}
