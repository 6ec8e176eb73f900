// index/capstore and index/records: every family round trip, atomic batches (also against a
// kill -9 in the middle of a write), MultiGet of 10,000 tiles with captions, scans and counts,
// schema version refusal, read-only (secondary) open beside a writer, corrupt values.
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/records.h"
#include "testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static gs_capstore_t *open_new(const char *name, char *out_path, size_t n)
{
    const char *dir = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(dir);
    snprintf(out_path, n, "%s/store", dir);
    gs_capstore_opts_t o = {.create_if_missing = true};
    gs_capstore_t *s = NULL;
    ck_assert_int_eq(gs_capstore_open(out_path, &o, &s), GS_OK);
    return s;
}

static gs_tile_rec_t make_tile(uint64_t id)
{
    gs_tile_rec_t t = {.tile_id = id,
                       .scene_id = id / 100,
                       .x = (int32_t)(id % 40) * 256,
                       .y = (int32_t)(id % 7) * 256,
                       .w = 256,
                       .h = 256,
                       .bounds = {10.0 + id * 1e-6, 45.0, 10.01 + id * 1e-6, 45.01},
                       .time_unix = 1622540000 + (int64_t)id,
                       .valid_frac = (float)(id % 100) / 100.0f};
    return t;
}

static void check_tile(const gs_tile_rec_t *t, uint64_t id)
{
    gs_tile_rec_t w = make_tile(id);
    ck_assert_uint_eq(t->tile_id, w.tile_id);
    ck_assert_uint_eq(t->scene_id, w.scene_id);
    ck_assert_int_eq(t->x, w.x);
    ck_assert_int_eq(t->y, w.y);
    ck_assert_int_eq(t->w, w.w);
    ck_assert_int_eq(t->h, w.h);
    ck_assert(memcmp(t->bounds, w.bounds, sizeof w.bounds) == 0);
    ck_assert_int_eq(t->time_unix, w.time_unix);
    ck_assert(t->valid_frac == w.valid_frac);
}

// ---- round trips ----------------------------------------------------------------------------

START_TEST(test_capstore_every_family_round_trips)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_rt", path, sizeof path);
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    double fp[8] = {10, 45, 11, 45, 11, 46, 10, 45};
    gs_scene_rec_t sc = {.scene_id = 77,
                         .uri = "/vsis3/bucket/S2A_MSIL2A_20210601.tif",
                         .sensor = "sentinel-2",
                         .time_unix = 1622540421,
                         .time_iso = "2021-06-01T09:40:21Z",
                         .crs = "EPSG:32632",
                         .width = 10980,
                         .height = 10980,
                         .bbox = {10, 45, 11, 46},
                         .n_footprint = 4,
                         .footprint = fp,
                         .bands = "B04,B03,B02",
                         .checksum = "xxh64:0123456789abcdef"};
    ck_assert_int_eq(gs_capstore_put_scene(s, &sc), GS_OK);
    gs_scene_rec_t sg;
    ck_assert_int_eq(gs_capstore_get_scene(s, 77, a, &sg), GS_OK);
    ck_assert_uint_eq(sg.scene_id, 77);
    ck_assert_str_eq(sg.uri, sc.uri);
    ck_assert_str_eq(sg.sensor, sc.sensor);
    ck_assert_int_eq(sg.time_unix, sc.time_unix);
    ck_assert_str_eq(sg.time_iso, sc.time_iso);
    ck_assert_str_eq(sg.crs, sc.crs);
    ck_assert_int_eq(sg.width, 10980);
    ck_assert(memcmp(sg.bbox, sc.bbox, sizeof sc.bbox) == 0);
    ck_assert_uint_eq(sg.n_footprint, 4);
    ck_assert(memcmp(sg.footprint, fp, sizeof fp) == 0);
    ck_assert_str_eq(sg.bands, sc.bands);
    ck_assert_str_eq(sg.checksum, sc.checksum);

    gs_tile_rec_t t = make_tile(123456789), tg;
    ck_assert_int_eq(gs_capstore_put_tile(s, &t), GS_OK);
    ck_assert_int_eq(gs_capstore_get_tile(s, 123456789, &tg), GS_OK);
    check_tile(&tg, 123456789);
    ck_assert_int_eq(gs_capstore_get_tile(s, 5, &tg), GS_ENOTFOUND);

    gs_caption_rec_t c = {.tile_id = 123456789, .text = "a river crossing farmland",
                          .model_id = "llava-tiny@sha256:ab12", .prompt = NULL};
    ck_assert_int_eq(gs_capstore_put_caption(s, &c), GS_OK);
    gs_caption_rec_t cg;
    ck_assert_int_eq(gs_capstore_get_caption(s, 123456789, a, &cg), GS_OK);
    ck_assert_str_eq(cg.text, c.text);
    ck_assert_str_eq(cg.model_id, c.model_id);
    ck_assert_str_eq(cg.prompt, ""); // NULL is stored as ""

    gs_change_rec_t ch = {.pair_id = 9, .before_tile = 1, .after_tile = 2, .before_scene = 3,
                          .after_scene = 4, .before_time = 100, .after_time = 200,
                          .score = 0.75f, .caption = "new buildings", .model_id = "m"};
    ck_assert_int_eq(gs_capstore_put_change(s, &ch), GS_OK);
    gs_change_rec_t chg;
    ck_assert_int_eq(gs_capstore_get_change(s, 9, a, &chg), GS_OK);
    ck_assert_uint_eq(chg.after_tile, 2);
    ck_assert_uint_eq(chg.after_scene, 4);
    ck_assert_int_eq(chg.after_time, 200);
    ck_assert(chg.score == 0.75f);
    ck_assert_str_eq(chg.caption, "new buildings");

    gs_job_rec_t j = {.task_key = "scene:00000000000000aa", .state = GS_JOB_DONE, .attempts = 2,
                      .n_tiles = 1600, .n_skipped = 12, .time_unix = 1700000000,
                      .shard_path = "shards/aa.shard", .shard_hash = "sha256:ff",
                      .error = ""};
    ck_assert_int_eq(gs_capstore_put_job(s, &j), GS_OK);
    gs_job_rec_t jg;
    ck_assert_int_eq(gs_capstore_get_job(s, "scene:00000000000000aa", a, &jg), GS_OK);
    ck_assert_str_eq(jg.task_key, j.task_key);
    ck_assert_int_eq(jg.state, GS_JOB_DONE);
    ck_assert_uint_eq(jg.attempts, 2);
    ck_assert_uint_eq(jg.n_tiles, 1600);
    ck_assert_uint_eq(jg.n_skipped, 12);
    ck_assert_str_eq(jg.shard_path, j.shard_path);
    ck_assert_str_eq(jg.shard_hash, j.shard_hash);

    gs_quarantine_rec_t q = {.uri = "/data/broken.tif", .reason = "not a TIFF file",
                             .time_unix = 5};
    ck_assert_int_eq(gs_capstore_put_quarantine(s, &q), GS_OK);
    gs_quarantine_rec_t qg;
    ck_assert_int_eq(gs_capstore_get_quarantine(s, "/data/broken.tif", a, &qg), GS_OK);
    ck_assert_str_eq(qg.reason, "not a TIFF file");
    ck_assert_str_eq(qg.uri, q.uri);

    const char *v = NULL;
    ck_assert_int_eq(gs_capstore_meta_set(s, "encoder.model_id", "clip-b32@sha256:cd"), GS_OK);
    ck_assert_int_eq(gs_capstore_meta_get(s, "encoder.model_id", a, &v), GS_OK);
    ck_assert_str_eq(v, "clip-b32@sha256:cd");
    ck_assert_int_eq(gs_capstore_meta_get(s, GS_META_SCHEMA_VERSION, a, &v), GS_OK);
    ck_assert_str_eq(v, "1");
    ck_assert_int_eq(gs_capstore_meta_get(s, "nope", a, &v), GS_ENOTFOUND);

    // raw values and delete
    const void *rv;
    size_t rn;
    ck_assert_int_eq(gs_capstore_put(s, GS_CF_META, "k", 1, "\0x\0", 3), GS_OK);
    ck_assert_int_eq(gs_capstore_get(s, GS_CF_META, "k", 1, a, &rv, &rn), GS_OK);
    ck_assert_uint_eq(rn, 3);
    ck_assert(memcmp(rv, "\0x\0", 3) == 0);
    ck_assert_int_eq(gs_capstore_delete(s, GS_CF_META, "k", 1), GS_OK);
    ck_assert_int_eq(gs_capstore_get(s, GS_CF_META, "k", 1, a, &rv, &rn), GS_ENOTFOUND);
    ck_assert_int_eq(gs_capstore_put(s, (gs_cf_t)42, "k", 1, "v", 1), GS_EINVAL);

    // everything survives a reopen
    gs_capstore_close(&s);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(gs_capstore_open(path, NULL, &s), GS_OK);
    ck_assert_int_eq(gs_capstore_get_tile(s, 123456789, &tg), GS_OK);
    ck_assert_int_eq(gs_capstore_get_scene(s, 77, a, &sg), GS_OK);
    ck_assert_str_eq(sg.uri, sc.uri);
    gs_capstore_close(&s);
    gs_capstore_close(&s); // NULL is fine
    gs_arena_destroy(&a);
}
END_TEST

// ---- records: corrupt bytes -----------------------------------------------------------------

START_TEST(test_records_corrupt_bytes_are_format_errors)
{
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    gs_caption_rec_t c = {.tile_id = 1, .text = "some text", .model_id = "m", .prompt = "p"};
    ck_assert_int_eq(gs_rec_encode_caption(&c, &b), GS_OK);
    gs_caption_rec_t cg;
    // every truncation and one extra byte fail cleanly
    for (size_t n = 0; n < b.len; n++)
        ck_assert_int_eq(gs_rec_decode_caption(b.data, n, a, &cg), GS_EFORMAT);
    char *longer = gs_xmalloc(b.len + 1);
    memcpy(longer, b.data, b.len);
    longer[b.len] = 0;
    ck_assert_int_eq(gs_rec_decode_caption(longer, b.len + 1, a, &cg), GS_EFORMAT);
    gs_free(longer);
    // a tile value is not a caption (type tag), a future version is refused
    gs_buf_reset(&b);
    gs_tile_rec_t t = make_tile(3), tg;
    ck_assert_int_eq(gs_rec_encode_tile(&t, &b), GS_OK);
    ck_assert_int_eq(gs_rec_decode_caption(b.data, b.len, a, &cg), GS_EFORMAT);
    b.data[0] = GS_REC_VERSION + 1;
    ck_assert_int_eq(gs_rec_decode_tile(b.data, b.len, &tg), GS_EFORMAT);
    // a huge string length does not allocate or read past the end
    uint8_t evil[16] = {GS_REC_VERSION, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 'x'};
    ck_assert_int_eq(gs_rec_decode_caption(evil, sizeof evil, a, &cg), GS_EFORMAT);
    // random bytes never crash any decoder
    uint64_t x = 88172645463325252ULL;
    uint8_t junk[96];
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)(x % sizeof junk);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        if (n > 1) {
            junk[0] = GS_REC_VERSION; // get past the header most of the time
            junk[1] = (uint8_t)(1 + it % 6);
        }
        gs_scene_rec_t s;
        gs_job_rec_t j;
        gs_change_rec_t ch;
        gs_quarantine_rec_t q;
        int yes;
        (void)gs_rec_decode_scene(junk, n, a, &s);
        (void)gs_rec_decode_tile(junk, n, &tg);
        (void)gs_rec_decode_caption(junk, n, a, &cg);
        (void)gs_rec_decode_change(junk, n, a, &ch);
        (void)gs_rec_decode_job(junk, n, a, &j);
        (void)gs_rec_decode_quarantine(junk, n, a, &q);
        (void)gs_rec_caption_contains(junk, n, "x", &yes);
        gs_arena_reset(a);
    }
    // oversized fields are refused at encode
    char *big = gs_xmalloc(GS_REC_STR_MAX + 2);
    memset(big, 'a', GS_REC_STR_MAX + 1);
    big[GS_REC_STR_MAX + 1] = 0;
    c.text = big;
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_rec_encode_caption(&c, &b), GS_ETOOBIG);
    gs_free(big);
    gs_buf_cleanup(&b);
    gs_arena_destroy(&a);
}
END_TEST

START_TEST(test_capstore_corrupt_values_are_format_errors)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_corrupt", path, sizeof path);
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    uint8_t k[8];
    gs_rec_key_u64(42, k);
    const char junk[] = "\x01\x02garbage that is not a tile";
    for (int cf = GS_CF_SCENES; cf <= GS_CF_CHANGES; cf++)
        ck_assert_int_eq(gs_capstore_put(s, (gs_cf_t)cf, k, 8, junk, sizeof junk), GS_OK);
    ck_assert_int_eq(gs_capstore_put(s, GS_CF_JOBS, "t1", 2, junk, 3), GS_OK);
    gs_tile_rec_t t = make_tile(41);
    ck_assert_int_eq(gs_capstore_put_tile(s, &t), GS_OK);
    gs_tile_rec_t tg, many[2];
    gs_scene_rec_t sg;
    gs_caption_rec_t cg;
    gs_change_rec_t chg;
    gs_job_rec_t jg;
    ck_assert_int_eq(gs_capstore_get_tile(s, 42, &tg), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_get_scene(s, 42, a, &sg), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_get_caption(s, 42, a, &cg), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_get_change(s, 42, a, &chg), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_get_job(s, "t1", a, &jg), GS_EFORMAT);
    uint64_t ids[2] = {41, 42};
    uint8_t found[2];
    ck_assert_int_eq(gs_capstore_get_tiles(s, 2, ids, many, found), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_scan_jobs(s, NULL, NULL), GS_EFORMAT); // stops before fn
    // a bad schema version byte in a value of another family does not matter
    ck_assert_int_eq(gs_capstore_get_tile(s, 41, &tg), GS_OK);
    gs_capstore_close(&s);
    gs_arena_destroy(&a);
}
END_TEST

// ---- batches --------------------------------------------------------------------------------

START_TEST(test_capstore_batch_is_atomic_across_families)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_batch", path, sizeof path);
    gs_capstore_batch_t *b = gs_capstore_batch_new(s);
    for (uint64_t id = 1000; id < 1100; id++) {
        gs_tile_rec_t t = make_tile(id);
        gs_caption_rec_t c = {.tile_id = id, .text = "fields", .model_id = "m"};
        ck_assert_int_eq(gs_capstore_batch_put_tile(b, &t), GS_OK);
        ck_assert_int_eq(gs_capstore_batch_put_caption(b, &c), GS_OK);
    }
    gs_job_rec_t j = {.task_key = "task-1", .state = GS_JOB_DONE, .n_tiles = 100};
    ck_assert_int_eq(gs_capstore_batch_put_job(b, &j), GS_OK);
    ck_assert_int_eq(gs_capstore_batch_meta_set(b, "last_task", "task-1"), GS_OK);
    ck_assert_uint_eq(gs_capstore_batch_count(b), 202);
    // nothing is visible before the write
    gs_tile_rec_t tg;
    ck_assert_int_eq(gs_capstore_get_tile(s, 1000, &tg), GS_ENOTFOUND);
    uint64_t n = 0;
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(gs_capstore_write(s, b, true), GS_OK);
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 100);
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_CAPTIONS, true, &n), GS_OK);
    ck_assert_uint_eq(n, 100);
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_JOBS, true, &n), GS_OK);
    ck_assert_uint_eq(n, 1);
    // deletes in a batch
    gs_capstore_batch_clear(b);
    ck_assert_uint_eq(gs_capstore_batch_count(b), 0);
    uint8_t k[8];
    gs_rec_key_u64(1000, k);
    ck_assert_int_eq(gs_capstore_batch_delete(b, GS_CF_TILES, k, 8), GS_OK);
    ck_assert_int_eq(gs_capstore_batch_delete(b, GS_CF_CAPTIONS, k, 8), GS_OK);
    ck_assert_int_eq(gs_capstore_write(s, b, false), GS_OK);
    ck_assert_int_eq(gs_capstore_get_tile(s, 1000, &tg), GS_ENOTFOUND);
    gs_capstore_batch_destroy(&b);
    ck_assert_ptr_null(b);
    gs_capstore_close(&s);
}
END_TEST

// A child writes batches of 20,000 tiles + captions + a ledger entry and is killed with
// SIGKILL at some moment; each batch must then be wholly present or wholly absent.
START_TEST(test_capstore_batch_survives_kill_9_all_or_nothing)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_kill", path, sizeof path);
    gs_capstore_close(&s);
    const uint64_t per = 20000;
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            gs_capstore_t *w = NULL;
            if (gs_capstore_open(path, NULL, &w) != GS_OK)
                _exit(3);
            gs_capstore_batch_t *b = gs_capstore_batch_new(w);
            for (uint64_t batch = 0;; batch++) {
                gs_capstore_batch_clear(b);
                uint64_t base = ((uint64_t)round << 40) + batch * per;
                for (uint64_t i = 0; i < per; i++) {
                    gs_tile_rec_t t = make_tile(base + i);
                    gs_caption_rec_t c = {.tile_id = base + i, .text = "t", .model_id = "m"};
                    gs_capstore_batch_put_tile(b, &t);
                    gs_capstore_batch_put_caption(b, &c);
                }
                char key[64];
                snprintf(key, sizeof key, "r%d-b%llu", round, (unsigned long long)batch);
                gs_job_rec_t j = {.task_key = key, .state = GS_JOB_DONE, .n_tiles = (uint32_t)per};
                gs_capstore_batch_put_job(b, &j);
                if (gs_capstore_write(w, b, false) != GS_OK)
                    _exit(4);
            }
        }
        struct timespec nap = {0, (150 + round * 110) * 1000000L};
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ck_assert(WIFSIGNALED(st));
        // every batch: ledger entry <=> all its tiles and captions
        ck_assert_int_eq(gs_capstore_open(path, NULL, &s), GS_OK);
        gs_arena_t *a = gs_arena_new(1 << 16, 0);
        uint64_t n_done = 0;
        for (uint64_t batch = 0; batch < 1000; batch++) {
            char key[64];
            snprintf(key, sizeof key, "r%d-b%llu", round, (unsigned long long)batch);
            gs_job_rec_t j;
            int done = gs_capstore_get_job(s, key, a, &j) == GS_OK;
            uint64_t *ids = gs_xmalloc(per * sizeof *ids);
            for (uint64_t i = 0; i < per; i++)
                ids[i] = ((uint64_t)round << 40) + batch * per + i;
            gs_tile_rec_t *recs = gs_xmalloc(per * sizeof *recs);
            uint8_t *found = gs_xmalloc(per);
            ck_assert_int_eq(gs_capstore_get_tiles(s, per, ids, recs, found), GS_OK);
            uint64_t nf = 0;
            for (uint64_t i = 0; i < per; i++)
                nf += found[i];
            gs_free(ids);
            gs_free(recs);
            gs_free(found);
            ck_assert_msg(nf == (done ? per : 0), "round %d batch %llu: ledger %d, %llu tiles",
                          round, (unsigned long long)batch, done, (unsigned long long)nf);
            if (!done)
                break;
            n_done++;
        }
        fprintf(stderr, "kill -9 round %d: %llu whole batches, the next absent\n", round,
                (unsigned long long)n_done);
        gs_arena_destroy(&a);
        gs_capstore_close(&s);
    }
}
END_TEST

// ---- many at once ---------------------------------------------------------------------------

START_TEST(test_capstore_multi_get_10000_tiles_with_captions)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_multi", path, sizeof path);
    const size_t n_all = 100000, n = 10000;
    gs_capstore_batch_t *b = gs_capstore_batch_new(s);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    uint64_t *all = gs_xmalloc(n_all * sizeof *all);
    double t0 = now_s();
    for (size_t i = 0; i < n_all; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        all[i] = x >> 1; // hash-like ids below 2^63
        gs_tile_rec_t t = make_tile(all[i]);
        char text[96];
        snprintf(text, sizeof text, "tile %zu: fields and a river near a town", i);
        gs_caption_rec_t c = {.tile_id = all[i], .text = text, .model_id = "llava-tiny"};
        ck_assert_int_eq(gs_capstore_batch_put_tile(b, &t), GS_OK);
        ck_assert_int_eq(gs_capstore_batch_put_caption(b, &c), GS_OK);
        if (gs_capstore_batch_count(b) >= 20000 || i + 1 == n_all) {
            ck_assert_int_eq(gs_capstore_write(s, b, false), GS_OK);
            gs_capstore_batch_clear(b);
        }
    }
    double t1 = now_s();
    fprintf(stderr, "capstore: %zu tiles + captions in batches of 10,000: %.0f ms (%.0f rec/s)\n",
            n_all, (t1 - t0) * 1e3, 2 * n_all / (t1 - t0));
    gs_capstore_batch_destroy(&b);
    // reopen so that reads come from SST files, not the memtable
    gs_capstore_close(&s);
    ck_assert_int_eq(gs_capstore_open(path, NULL, &s), GS_OK);
    uint64_t *ids = gs_xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = all[(i * 7) % n_all];
    ids[5] = 12345; // absent
    gs_tile_rec_t *recs = gs_xmalloc(n * sizeof *recs);
    gs_caption_rec_t *caps = gs_xmalloc(n * sizeof *caps);
    uint8_t *found = gs_xmalloc(n), *cfound = gs_xmalloc(n);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        gs_arena_reset(a);
        double t2 = now_s();
        ck_assert_int_eq(gs_capstore_get_tiles(s, n, ids, recs, found), GS_OK);
        double tm = now_s();
        ck_assert_int_eq(gs_capstore_get_captions(s, n, ids, a, caps, cfound), GS_OK);
        double dt = now_s() - t2;
        fprintf(stderr, "capstore: MultiGet of %zu tiles %.1f ms, captions %.1f ms\n", n,
                (tm - t2) * 1e3, (now_s() - tm) * 1e3);
        best = dt < best ? dt : best;
        fprintf(stderr, "capstore: MultiGet of %zu tiles + captions (%s cache): %.1f ms\n", n,
                rep ? "warm" : "cold", dt * 1e3);
        (void)tm;
    }
    ck_assert_msg(best < 1.0, "10,000 records took %.3f s", best);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(found[i], i != 5);
        ck_assert_int_eq(cfound[i], i != 5);
        if (i == 5)
            continue;
        check_tile(&recs[i], ids[i]);
        ck_assert_uint_eq(caps[i].tile_id, ids[i]);
        char want[96];
        snprintf(want, sizeof want, "tile %zu: fields", (i * 7) % n_all);
        ck_assert(strncmp(caps[i].text, want, strlen(want)) == 0);
    }
    // raw multi-get
    const void **vals = gs_xmalloc(3 * sizeof *vals);
    size_t lens[3];
    uint64_t three[3] = {all[0], 1, all[1]};
    ck_assert_int_eq(gs_capstore_multi_get(s, GS_CF_TILES, 3, three, a, vals, lens), GS_OK);
    ck_assert_ptr_nonnull(vals[0]);
    ck_assert_ptr_null(vals[1]);
    ck_assert_uint_eq(lens[1], 0);
    gs_tile_rec_t t;
    ck_assert_int_eq(gs_rec_decode_tile(vals[2], lens[2], &t), GS_OK);
    ck_assert_uint_eq(t.tile_id, all[1]);
    // counts: exact and estimate
    uint64_t cnt = 0;
    double t3 = now_s();
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_TILES, true, &cnt), GS_OK);
    double t4 = now_s();
    ck_assert_uint_eq(cnt, n_all);
    ck_assert_int_eq(gs_capstore_count(s, GS_CF_TILES, false, &cnt), GS_OK);
    fprintf(stderr, "capstore: exact count of %zu tiles %.1f ms, estimate %llu\n", n_all,
            (t4 - t3) * 1e3, (unsigned long long)cnt);
    ck_assert(cnt > n_all / 2 && cnt < n_all * 2);
    gs_free(vals);
    gs_arena_destroy(&a);
    gs_free(ids);
    gs_free(all);
    gs_free(recs);
    gs_free(caps);
    gs_free(found);
    gs_free(cfound);
    gs_capstore_close(&s);
    char *cmd = gs_xasprintf("rm -rf '%s'", path); // 10 MB of SST files
    ck_assert_int_eq(system(cmd), 0);
    gs_free(cmd);
}
END_TEST

// ---- scans ----------------------------------------------------------------------------------

static int collect_id(uint64_t id, void *ud)
{
    uint64_t *v = ud;
    v[++v[0]] = id;
    return 0;
}

static int count_tiles(const gs_tile_rec_t *t, void *ud)
{
    uint64_t *v = ud;
    ck_assert_uint_gt(t->tile_id, v[1]); // key order = id order
    v[1] = t->tile_id;
    return ++v[0] == 3; // stop after 3
}

static int count_failed(const gs_job_rec_t *j, void *ud)
{
    *(int *)ud += j->state == GS_JOB_FAILED;
    return 0;
}

static int count_raw(const void *k, size_t kn, const void *v, size_t vn, void *ud)
{
    (void)v, (void)vn;
    ck_assert(kn >= 6 && memcmp(k, "scene:", 6) == 0);
    ++*(int *)ud;
    return 0;
}

static int see_quarantine(const gs_quarantine_rec_t *q, void *ud)
{
    ck_assert_str_eq(q->reason, "truncated");
    ++*(int *)ud;
    return 0;
}

START_TEST(test_capstore_scans_and_caption_filter)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_scan", path, sizeof path);
    const char *texts[5] = {"A River and Fields", "a town", "RIVER delta", "forest", "rivers"};
    for (uint64_t i = 0; i < 5; i++) {
        gs_tile_rec_t t = make_tile(100 - i);
        gs_caption_rec_t c = {.tile_id = 100 - i, .text = texts[i], .model_id = "m"};
        ck_assert_int_eq(gs_capstore_put_tile(s, &t), GS_OK);
        ck_assert_int_eq(gs_capstore_put_caption(s, &c), GS_OK);
    }
    uint64_t got[8] = {0};
    ck_assert_int_eq(gs_capstore_find_captions(s, "river", collect_id, got), GS_OK);
    ck_assert_uint_eq(got[0], 3);
    ck_assert_uint_eq(got[1], 96); // key order: 96 ("rivers"), 98, 100
    ck_assert_uint_eq(got[2], 98);
    ck_assert_uint_eq(got[3], 100);
    memset(got, 0, sizeof got);
    ck_assert_int_eq(gs_capstore_find_captions(s, "glacier", collect_id, got), GS_OK);
    ck_assert_uint_eq(got[0], 0);
    uint64_t st[2] = {0, 0};
    ck_assert_int_eq(gs_capstore_scan_tiles(s, count_tiles, st), GS_OK);
    ck_assert_uint_eq(st[0], 3);
    // jobs: by prefix and typed
    const char *keys[4] = {"scene:a", "scene:b", "plan", "scene:c"};
    for (int i = 0; i < 4; i++) {
        gs_job_rec_t j = {.task_key = keys[i], .state = i % 2 ? GS_JOB_FAILED : GS_JOB_DONE};
        ck_assert_int_eq(gs_capstore_put_job(s, &j), GS_OK);
    }
    int n = 0;
    ck_assert_int_eq(gs_capstore_scan(s, GS_CF_JOBS, "scene:", 6, count_raw, &n), GS_OK);
    ck_assert_int_eq(n, 3);
    n = 0;
    ck_assert_int_eq(gs_capstore_scan_jobs(s, count_failed, &n), GS_OK);
    ck_assert_int_eq(n, 2);
    gs_quarantine_rec_t q = {.uri = "/x.tif", .reason = "truncated", .time_unix = 1};
    ck_assert_int_eq(gs_capstore_put_quarantine(s, &q), GS_OK);
    n = 0;
    ck_assert_int_eq(gs_capstore_scan_quarantine(s, see_quarantine, &n), GS_OK);
    ck_assert_int_eq(n, 1);
    gs_capstore_close(&s);
}
END_TEST

// ---- opening --------------------------------------------------------------------------------

START_TEST(test_capstore_schema_version_is_checked)
{
    char path[4200];
    gs_capstore_t *s = open_new("capstore_schema", path, sizeof path);
    ck_assert_int_eq(gs_capstore_meta_set(s, GS_META_SCHEMA_VERSION, "2"), GS_OK);
    gs_capstore_close(&s);
    gs_capstore_opts_t o = {.create_if_missing = true};
    ck_assert_int_eq(gs_capstore_open(path, &o, &s), GS_EUNSUPPORTED);
    ck_assert_ptr_null(s);
    gs_capstore_opts_t ro = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(path, &ro, &s), GS_EUNSUPPORTED);
    // unreadable version, and none at all (a RocksDB that is not ours)
    const char *dir = gs_test_tmpdir("capstore_schema2");
    char p2[4200];
    snprintf(p2, sizeof p2, "%s/store", dir);
    ck_assert_int_eq(gs_capstore_open(p2, &o, &s), GS_OK);
    ck_assert_int_eq(gs_capstore_meta_set(s, GS_META_SCHEMA_VERSION, "one"), GS_OK);
    gs_capstore_close(&s);
    ck_assert_int_eq(gs_capstore_open(p2, NULL, &s), GS_EFORMAT);
    ck_assert_int_eq(gs_capstore_open(p2, &o, &s), GS_EFORMAT);
    snprintf(p2, sizeof p2, "%s/store2", dir);
    ck_assert_int_eq(gs_capstore_open(p2, &o, &s), GS_OK);
    ck_assert_int_eq(gs_capstore_delete(s, GS_CF_META, GS_META_SCHEMA_VERSION, 14), GS_OK);
    gs_capstore_close(&s);
    ck_assert_int_eq(gs_capstore_open(p2, NULL, &s), GS_EFORMAT);
    // no store, no creation
    snprintf(p2, sizeof p2, "%s/absent", dir);
    ck_assert_int_eq(gs_capstore_open(p2, NULL, &s), GS_ENOTFOUND);
    ck_assert_int_eq(gs_capstore_open(p2, &ro, &s), GS_ENOTFOUND);
    ck_assert_int_eq(gs_path_exists(p2), 0);
}
END_TEST

START_TEST(test_capstore_read_only_beside_a_writer)
{
    char path[4200];
    gs_capstore_t *w = open_new("capstore_ro", path, sizeof path);
    for (uint64_t id = 1; id <= 500; id++) {
        gs_tile_rec_t t = make_tile(id);
        ck_assert_int_eq(gs_capstore_put_tile(w, &t), GS_OK);
    }
    // a second writer is refused (RocksDB's lock), a reader is not
    gs_capstore_t *w2 = NULL, *r = NULL;
    ck_assert_int_eq(gs_capstore_open(path, NULL, &w2), GS_EIO);
    gs_capstore_opts_t ro = {.read_only = true};
    ck_assert_int_eq(gs_capstore_open(path, &ro, &r), GS_OK);
    uint64_t n = 0;
    ck_assert_int_eq(gs_capstore_count(r, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 500); // unflushed writes are seen (through the WAL)
    gs_tile_rec_t t = make_tile(9999), tg;
    ck_assert_int_eq(gs_capstore_put_tile(r, &t), GS_ESTATE);
    gs_capstore_batch_t *b = gs_capstore_batch_new(r);
    ck_assert_int_eq(gs_capstore_batch_put_tile(b, &t), GS_OK);
    ck_assert_int_eq(gs_capstore_write(r, b, false), GS_ESTATE);
    gs_capstore_batch_destroy(&b);
    // the writer goes on; the reader sees it after a refresh
    for (uint64_t id = 501; id <= 800; id++) {
        gs_tile_rec_t t2 = make_tile(id);
        ck_assert_int_eq(gs_capstore_put_tile(w, &t2), GS_OK);
    }
    ck_assert_int_eq(gs_capstore_refresh(r), GS_OK);
    ck_assert_int_eq(gs_capstore_get_tile(r, 800, &tg), GS_OK);
    check_tile(&tg, 800);
    ck_assert_int_eq(gs_capstore_count(r, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 800);
    gs_capstore_close(&r);
    // a reader of a store whose writer is gone
    gs_capstore_close(&w);
    ck_assert_int_eq(gs_capstore_open(path, &ro, &r), GS_OK);
    ck_assert_int_eq(gs_capstore_get_tile(r, 1, &tg), GS_OK);
    gs_capstore_close(&r);

    // a writer in another process (an ingest job) and a reader here (`status`)
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c = 0;
        if (gs_capstore_open(path, NULL, &w) != GS_OK)
            _exit(3);
        for (uint64_t id = 801; id <= 1000; id++) {
            gs_tile_rec_t t2 = make_tile(id);
            if (gs_capstore_put_tile(w, &t2) != GS_OK)
                _exit(4);
        }
        if (write(up[1], "1", 1) != 1 || read(down[0], &c, 1) != 1) // reader is open
            _exit(5);
        for (uint64_t id = 1001; id <= 1200; id++) {
            gs_tile_rec_t t2 = make_tile(id);
            if (gs_capstore_put_tile(w, &t2) != GS_OK)
                _exit(4);
        }
        if (write(up[1], "2", 1) != 1 || read(down[0], &c, 1) != 1) // reader has refreshed
            _exit(5);
        gs_capstore_close(&w);
        _exit(0);
    }
    char c = 0;
    ck_assert_int_eq(read(up[0], &c, 1), 1);
    ck_assert_int_eq(gs_capstore_open(path, &ro, &r), GS_OK);
    ck_assert_int_eq(gs_capstore_count(r, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 1000);
    ck_assert_int_eq(write(down[1], "a", 1), 1);
    ck_assert_int_eq(read(up[0], &c, 1), 1);
    ck_assert_int_eq(gs_capstore_refresh(r), GS_OK);
    ck_assert_int_eq(gs_capstore_count(r, GS_CF_TILES, true, &n), GS_OK);
    ck_assert_uint_eq(n, 1200);
    ck_assert_int_eq(write(down[1], "b", 1), 1);
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    gs_capstore_close(&r);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
}
END_TEST

Suite *index_store_suite(void)
{
    Suite *s = suite_create("index_store");
    TCase *tc = tcase_create("capstore");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_capstore_every_family_round_trips);
    tcase_add_test(tc, test_records_corrupt_bytes_are_format_errors);
    tcase_add_test(tc, test_capstore_corrupt_values_are_format_errors);
    tcase_add_test(tc, test_capstore_batch_is_atomic_across_families);
    tcase_add_test(tc, test_capstore_batch_survives_kill_9_all_or_nothing);
    tcase_add_test(tc, test_capstore_multi_get_10000_tiles_with_captions);
    tcase_add_test(tc, test_capstore_scans_and_caption_filter);
    tcase_add_test(tc, test_capstore_schema_version_is_checked);
    tcase_add_test(tc, test_capstore_read_only_beside_a_writer);
    suite_add_tcase(s, tc);
    return s;
}
