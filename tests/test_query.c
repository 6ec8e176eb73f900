// query/: searches over small real outputs (tests/query_mkdb.h: RocksDB + FAISS written through
// index/, vectors from the openclip_tiny fixture) checked against brute force over the truth:
// text queries equal exact search, filters hold and return min(k, matches) hits on flat and
// IVF indexes (also past the exact allow-list size, through over-fetching and nprobe widening),
// query by example, model mismatch, request errors; the parsers and formatters.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "jobs/raster.h"
#include "model/clip.h"
#include "query/format.h"
#include "query/search.h"
#include "query_mkdb.h"
#include "testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- parsers and formatters -----------------------------------------------------------------

START_TEST(test_qtime_parse_forms)
{
    static const struct {
        const char *s;
        bool end;
        int64_t want;
    } ok[] = {
        {"2021", false, 1609459200},
        {"2021", true, 1640995199},
        {"2021-06", false, 1622505600},
        {"2021-06", true, 1625097599},
        {"2021-12", true, 1640995199},
        {"2020-02", true, 1583020799},
        {"2021-06-01", false, 1622505600},
        {"2021-06-01", true, 1622591999},
        {"2021-06-01T10:30", false, 1622543400},
        {"2021-06-01T10:30", true, 1622543459},
        {"2021-06-01T10:30:21Z", false, 1622543421},
        {"2021-06-01T10:30:21Z", true, 1622543421},
        {"2021-06-01 10:30:21.75", false, 1622543421},
        {"2021-06-01T12:30:21+02:00", false, 1622543421},
        {"2021-06-01T05:30:21-0500", false, 1622543421},
        {"1969-12-31T23:59:59Z", false, -1},
        {" 2000-02-29 ", false, 951782400},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t t = 0;
        ck_assert_msg(gs_qtime_parse(ok[i].s, ok[i].end, &t) == GS_OK, "%s", ok[i].s);
        ck_assert_msg(t == ok[i].want, "%s end=%d: got %lld want %lld", ok[i].s, ok[i].end,
                      (long long)t, (long long)ok[i].want);
    }
    static const char *bad[] = {"",
                                "21",
                                "2021-13",
                                "2021-02-29",
                                "2021-06-01T25:00",
                                "2021-06-01T10",
                                "2021-06-01T10:30:21Zx",
                                "June 2021",
                                "2021/06/01",
                                "2021-06-01T10:30+25:00",
                                "2021-6-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 42;
        ck_assert_msg(gs_qtime_parse(bad[i], false, &t) == GS_EINVAL, "%s", bad[i]);
        ck_assert_int_eq(t, 42);
    }
    char buf[40];
    gs_qtime_format(1622543421, buf, sizeof buf);
    ck_assert_str_eq(buf, "2021-06-01T10:30:21Z");
    gs_qtime_format(-1, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
    gs_qtime_format(951782400, buf, sizeof buf);
    ck_assert_str_eq(buf, "2000-02-29T00:00:00Z");
}
END_TEST

START_TEST(test_qbbox_and_id_parse)
{
    double b[4];
    ck_assert_int_eq(gs_qbbox_parse("10.5, 45,11 ,45.5", b), GS_OK);
    ck_assert(b[0] == 10.5 && b[1] == 45 && b[2] == 11 && b[3] == 45.5);
    ck_assert_int_eq(gs_qbbox_parse("-180,-90,180,90", b), GS_OK);
    const char *bad[] = {"1,2,3", "1,2,3,4,5", "a,b,c,d", "1,,3,4", "1,2,3,nan", "1e999,0,0,0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gs_qbbox_parse(bad[i], b) == GS_EINVAL, "%s", bad[i]);
    uint64_t id;
    ck_assert_int_eq(gs_qid_parse("12345", &id), GS_OK);
    ck_assert_uint_eq(id, 12345);
    ck_assert_int_eq(gs_qid_parse("0x7fffffffffffffff", &id), GS_OK);
    ck_assert_uint_eq(id, (uint64_t)INT64_MAX);
    const char *badid[] = {"0", "-1", "0x", "0x8000000000000000", "12a", "", "0xg1"};
    for (size_t i = 0; i < sizeof badid / sizeof badid[0]; i++)
        ck_assert_msg(gs_qid_parse(badid[i], &id) == GS_EINVAL, "%s", badid[i]);
}
END_TEST

START_TEST(test_format_json_and_geojson)
{
    gs_search_hit_t h[2] = {{.rank = 1,
                             .tile_id = 9007199254740993ULL,
                             .score = 0.5f,
                             .scene_id = 7,
                             .scene_uri = "/d/a \"b\".tif",
                             .time_unix = 1622543421,
                             .has_time = true,
                             .bbox = {10.1, 45, 10.2, 45.25},
                             .caption = "line\nbreak"},
                            {.rank = 2,
                             .tile_id = 3,
                             .score = -0.25f,
                             .scene_id = 8,
                             .scene_uri = "",
                             .bbox = {179.5, -1, -179.5, 1},
                             .caption = NULL}};
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    ck_assert_int_eq(gs_qfmt_results(&b, h, 2, false), GS_OK);
    ck_assert_str_eq(b.data, "{\"rank\":1,\"tile_id\":\"9007199254740993\",\"score\":0.500000,"
                             "\"scene\":\"/d/a \\\"b\\\".tif\",\"scene_id\":\"7\","
                             "\"time\":\"2021-06-01T10:30:21Z\",\"bbox\":[10.1,45,10.2,45.25],"
                             "\"caption\":\"line\\nbreak\"}\n"
                             "{\"rank\":2,\"tile_id\":\"3\",\"score\":-0.250000,\"scene\":\"\","
                             "\"scene_id\":\"8\",\"time\":null,\"bbox\":[179.5,-1,-179.5,1],"
                             "\"caption\":null}\n");
    gs_buf_reset(&b);
    ck_assert_int_eq(gs_qfmt_results(&b, h, 2, true), GS_OK);
    ck_assert_ptr_nonnull(strstr(b.data, "{\"type\":\"FeatureCollection\",\"features\":["
                                         "{\"type\":\"Feature\",\"id\":1,\"geometry\":{\"type\":"
                                         "\"Polygon\",\"coordinates\":[[[10.1,45],[10.2,45],"
                                         "[10.2,45.25],[10.1,45.25],[10.1,45]]]}"));
    // Across the antimeridian: two parts.
    ck_assert_ptr_nonnull(strstr(b.data, "\"MultiPolygon\",\"coordinates\":[[[[179.5,-1],"
                                         "[180,-1],[180,1],[179.5,1],[179.5,-1]]],"
                                         "[[[-180,-1],[-179.5,-1],[-179.5,1],[-180,1],"
                                         "[-180,-1]]]]"));
    ck_assert_int_eq(b.data[b.len - 1], '\n');
    // Coordinates read back exactly.
    gs_buf_reset(&b);
    gs_search_hit_t x = {.rank = 1,
                         .tile_id = 1,
                         .scene_uri = "",
                         .bbox = {0.1 + 0.2, 1.0 / 3, 45.074999999999996, 1e-300}};
    ck_assert_int_eq(gs_qfmt_hit_json(&b, &x), GS_OK);
    const char *p = strstr(b.data, "\"bbox\":[") + 8;
    for (int i = 0; i < 4; i++) {
        char *end;
        ck_assert(strtod(p, &end) == x.bbox[i]);
        p = end + 1;
    }
    // The buffer cap is reported, not overrun.
    gs_buf_t small;
    gs_buf_init(&small, 50);
    ck_assert_int_eq(gs_qfmt_results(&small, h, 2, false), GS_ETOOBIG);
    gs_buf_cleanup(&small);
    gs_buf_cleanup(&b);
}
END_TEST

// ---- outputs --------------------------------------------------------------------------------

typedef struct {
    char dir[4200];
    qmk_truth_t t;
    bool ready;
} db_t;

enum { DB_FLAT, DB_IVFPQ, DB_IVF, DB_BIG, N_DB };
static db_t g_db[N_DB];

static const qmk_opts_t *db_opts(int which, qmk_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->shared = gs_test_shared();
    o->n_tiles = 3000;
    switch (which) {
    case DB_FLAT: o->index = "Flat"; break;
    case DB_IVFPQ:                  // IVF-PQ with an exact refine stage
        o->index = "IVF16,PQ8x4np"; // 4-bit codes: enough training points
        o->refine = true;
        break;
    case DB_IVF: o->index = "IVF16,Flat"; break;
    default: // more tiles than the exact allow-list size: over-fetching + nprobe widening
        o->index = "IVF64,Flat";
        o->n_tiles = 70000;
    }
    return o;
}

static db_t *db_get(int which)
{
    db_t *d = &g_db[which];
    if (d->ready)
        return d;
    char name[32];
    snprintf(name, sizeof name, "query_db%d", which);
    const char *tmp = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(tmp);
    snprintf(d->dir, sizeof d->dir, "%s/out", tmp);
    qmk_opts_t o;
    db_opts(which, &o);
    o.out = d->dir;
    o.truth_only = true;
    ck_assert_int_eq(qmk_make(&o, &d->t), 0);
    // The output is written by the query_mkdb program (same data): FAISS runs OpenMP threads,
    // which a forked test child could not use after the parent had started them.
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %zu '%s' %s", QMK_BIN, d->dir, o.n_tiles, o.index,
             o.refine ? "refine" : "-");
    ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
    d->ready = true;
    return d;
}

static gs_search_t *open_db(db_t *d, bool lazy)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_opts_t so = {.lazy_model = lazy};
    gs_search_t *s = NULL;
    gs_err e = gs_search_open(d->dir, &so, &s, err, sizeof err);
    ck_assert_msg(e == GS_OK, "open: %s", err);
    return s;
}

// setup_dbs: builds every output once, in the parent process (tests run in forked children).
static void setup_dbs(void)
{
    if (!gs_test_shared())
        return;
    for (int i = 0; i < N_DB; i++)
        db_get(i);
}

static void teardown_dbs(void)
{
    for (int i = 0; i < N_DB; i++)
        if (g_db[i].ready) {
            qmk_free(&g_db[i].t);
            g_db[i].ready = false;
        }
}

// ---- brute force ----------------------------------------------------------------------------

static bool icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && (hay[i] | 32) == (needle[i] | 32))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

static bool passes(const qmk_truth_t *t, size_t i, const gs_search_req_t *r)
{
    const double *b = t->bounds + 4 * i;
    if (r->has_bbox &&
        (b[0] > r->bbox[2] || b[2] < r->bbox[0] || b[1] > r->bbox[3] || b[3] < r->bbox[1]))
        return false;
    if ((r->has_from || r->has_to) && !t->has_time[i])
        return false;
    if (r->has_from && t->time[i] < r->from)
        return false;
    if (r->has_to && t->time[i] > r->to)
        return false;
    if (r->scene) {
        bool ok = false;
        for (int s = 0; s < QMK_N_SCENES; s++) {
            const char *u = t->scene_uris[s], *base = strrchr(u, '/');
            char num[32];
            snprintf(num, sizeof num, "%llu", (unsigned long long)t->scene_ids[s]);
            if (t->scene_of[i] == t->scene_ids[s] &&
                (!strcmp(r->scene, u) || !strcmp(r->scene, base + 1) || !strcmp(r->scene, num)))
                ok = true;
        }
        if (!ok)
            return false;
    }
    if (r->caption_contains && (!t->caption[i] || !icontains(t->caption[i], r->caption_contains)))
        return false;
    return true;
}

static bool gs__any_filter(const gs_search_req_t *r)
{
    return r->has_bbox || r->has_from || r->has_to || r->scene || r->caption_contains;
}

typedef struct {
    float score;
    size_t i;
} scored_t;

static int by_score(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score;
}

// brute: the tiles passing r, best first by exact inner product with q; returns the count.
static size_t brute(const qmk_truth_t *t, const float *q, const gs_search_req_t *r, scored_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (!passes(t, i, r))
            continue;
        float s = 0;
        for (int j = 0; j < t->dim; j++)
            s += q[j] * t->vecs[i * t->dim + j];
        out[n++] = (scored_t){s, i};
    }
    qsort(out, n, sizeof *out, by_score);
    return n;
}

static size_t index_of(const qmk_truth_t *t, uint64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] == id)
            return i;
    return (size_t)-1;
}

// ---- searches -------------------------------------------------------------------------------

START_TEST(test_search_text_equals_exact_search)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    gs_search_t *s = open_db(d, false);
    // The query vector as the model gives it.
    gs_clip_opts_t co = {.vocab_path = d->t.vocab, .n_threads = 1, .max_batch = 1};
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(d->t.model_dir, &co, &m), GS_OK);
    const char *text = "a river crossing farmland";
    float q[64];
    ck_assert_int_eq(gs_clip_encode_texts(m, &text, 1, true, q), GS_OK);
    gs_clip_close(&m);
    scored_t *want = gs_xmalloc(d->t.n * sizeof *want);
    gs_search_req_t r = {.text = text, .k = 25};
    brute(&d->t, q, &r, want);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    gs_search_result_t res;
    char err[GS_SEARCH_ERR_NBYTES];
    ck_assert_msg(gs_search_run(s, &r, a, &res, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(res.n_hits, 25);
    ck_assert_uint_eq(res.n_candidates, d->t.n);
    float got[25], exp[25];
    for (size_t i = 0; i < 25; i++) {
        const gs_search_hit_t *h = &res.hits[i];
        size_t ti = want[i].i;
        ck_assert_msg(h->tile_id == d->t.ids[ti], "rank %zu: tile %llu, want %llu", i + 1,
                      (unsigned long long)h->tile_id, (unsigned long long)d->t.ids[ti]);
        ck_assert_uint_eq(h->rank, i + 1);
        got[i] = h->score;
        exp[i] = want[i].score;
        // The records joined to the hit are the tile's.
        ck_assert_uint_eq(h->scene_id, d->t.scene_of[ti]);
        ck_assert(memcmp(h->bbox, d->t.bounds + 4 * ti, sizeof h->bbox) == 0);
        ck_assert_int_eq(h->has_time, d->t.has_time[ti]);
        if (h->has_time)
            ck_assert_int_eq(h->time_unix, d->t.time[ti]);
        ck_assert_int_eq(h->caption != NULL, d->t.caption[ti] != NULL);
        if (h->caption)
            ck_assert_str_eq(h->caption, d->t.caption[ti]);
        ck_assert_str_eq(h->scene_uri, d->t.scene_uris[ti % QMK_N_SCENES]);
    }
    ck_assert_uint_eq(gs_test_check_close("scores", got, exp, 25, 1e-5, 0), 0);
    gs_arena_destroy(&a);
    gs_free(want);
    gs_search_close(&s);
}
END_TEST

// The text cache: a repeated text gives the same hits, also after the cache was cycled.
START_TEST(test_text_cache_same_results)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    gs_search_t *s = open_db(d, false);
    gs_arena_t *a = gs_arena_new(1 << 20, 0), *b = gs_arena_new(1 << 20, 0);
    char err[GS_SEARCH_ERR_NBYTES], text[64];
    gs_search_result_t first, again;
    gs_search_req_t r = {.text = "a harbor with boats", .k = 15};
    ck_assert_int_eq(gs_search_run(s, &r, a, &first, err, sizeof err), GS_OK);
    for (int round = 0; round < 2; round++) {
        gs_arena_reset(b);
        ck_assert_int_eq(gs_search_run(s, &r, b, &again, err, sizeof err), GS_OK);
        ck_assert_uint_eq(again.n_hits, first.n_hits);
        for (size_t i = 0; i < first.n_hits; i++) {
            ck_assert_uint_eq(again.hits[i].tile_id, first.hits[i].tile_id);
            ck_assert(again.hits[i].score == first.hits[i].score);
        }
        for (int i = 0; i < 70; i++) { // more distinct texts than the cache holds
            snprintf(text, sizeof text, "query number %d", i);
            gs_search_req_t o = {.text = text, .k = 1};
            gs_arena_reset(b);
            ck_assert_int_eq(gs_search_run(s, &o, b, &again, err, sizeof err), GS_OK);
        }
    }
    gs_arena_destroy(&a);
    gs_arena_destroy(&b);
    gs_search_close(&s);
}
END_TEST

// A set of filters over the test data (the times of qmk: scene s at 2020-01-01 + 45 s days).
static void filter_case(int c, db_t *d, gs_search_req_t *r)
{
    static const char *words[] = {"river", "AIRPORT", "near the lake", "dense f", "zebra"};
    char *from[] = {"2020-02-15", "2020-01", "2020-03-31T02:00:00Z", "2019"};
    char *to[] = {"2020-05-15", "2020-01-01", "2020-06", "2020-03-31T01:59:59Z"};
    uint64_t rs = (uint64_t)c * 2654435761u + 7;
    r->has_bbox = c % 2 == 0;
    if (r->has_bbox) {
        double w = 10 + (double)(rs % 150) / 100, s = 45 + (double)(rs / 7 % 80) / 100;
        double e = w + 0.05 + (double)(rs / 13 % 60) / 100,
               n = s + 0.02 + (double)(rs / 17 % 40) / 100;
        double box[4] = {w, s, e, n};
        memcpy(r->bbox, box, sizeof box);
    }
    if (c % 3 == 0)
        r->has_from = gs_qtime_parse(from[c / 3 % 4], false, &r->from) == GS_OK;
    if (c % 4 == 1)
        r->has_to = gs_qtime_parse(to[c / 4 % 4], true, &r->to) == GS_OK;
    if (c % 5 == 2) {
        static char num[32];
        int s = c / 5 % QMK_N_SCENES;
        const char *base = strrchr(d->t.scene_uris[s], '/') + 1;
        snprintf(num, sizeof num, "%llu", (unsigned long long)d->t.scene_ids[s]);
        r->scene = c % 3 == 0 ? d->t.scene_uris[s] : c % 3 == 1 ? base : num;
    }
    if (c % 7 == 3 || c % 7 == 5)
        r->caption_contains = words[c / 7 % 5];
}

static void check_filters(int which, int n_cases, const size_t *ks, size_t n_ks, int nprobe)
{
    db_t *d = db_get(which);
    gs_search_t *s = open_db(d, true);
    scored_t *want = gs_xmalloc(d->t.n * sizeof *want);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    char err[GS_SEARCH_ERR_NBYTES];
    size_t n_nonempty = 0;
    for (int c = 0; c < n_cases; c++) {
        gs_search_req_t r = {.vector = d->t.vecs + (size_t)(c * 97 % (int)d->t.n) * d->t.dim,
                             .n_vector = d->t.dim,
                             .nprobe = nprobe};
        filter_case(c, d, &r);
        size_t n_match = brute(&d->t, r.vector, &r, want);
        for (size_t ki = 0; ki < n_ks; ki++) {
            r.k = ks[ki];
            gs_search_result_t res;
            gs_arena_reset(a);
            ck_assert_msg(gs_search_run(s, &r, a, &res, err, sizeof err) == GS_OK, "%s", err);
            size_t expect = r.k < n_match ? r.k : n_match;
            ck_assert_msg(res.n_hits == expect,
                          "db %d case %d k=%zu: %zu hits, want min(k, %zu matches) = %zu", which, c,
                          r.k, res.n_hits, n_match, expect);
            ck_assert_uint_eq(res.n_candidates, n_match);
            n_nonempty += res.n_hits > 0;
            for (size_t i = 0; i < res.n_hits; i++) {
                size_t ti = index_of(&d->t, res.hits[i].tile_id);
                ck_assert_msg(ti != (size_t)-1 && passes(&d->t, ti, &r),
                              "db %d case %d: hit %zu (tile %llu) fails the filter", which, c, i,
                              (unsigned long long)res.hits[i].tile_id);
                if (i)
                    ck_assert(res.hits[i].score <= res.hits[i - 1].score + 1e-6f);
            }
            // Flat, and filtered searches of up to 65,536 candidates (scored exactly), give the
            // exact scores of brute force.
            if (which == DB_FLAT || (gs__any_filter(&r) && n_match <= 65536))
                for (size_t i = 0; i < res.n_hits && i < 20; i++)
                    ck_assert_msg(fabsf(res.hits[i].score - want[i].score) < 1e-5f,
                                  "db %d case %d rank %zu: score %g, exact %g", which, c, i + 1,
                                  res.hits[i].score, want[i].score);
        }
    }
    ck_assert_uint_gt(n_nonempty, (size_t)n_cases / 2); // the cases are not all empty
    gs_arena_destroy(&a);
    gs_free(want);
    gs_search_close(&s);
}

START_TEST(test_filters_hold_flat)
{
    GS_NEED_SHARED();
    const size_t ks[] = {1, 7, 100, 5000};
    check_filters(DB_FLAT, 50, ks, 4, 0);
}
END_TEST

START_TEST(test_filters_hold_ivfpq_refine)
{
    GS_NEED_SHARED();
    const size_t ks[] = {3, 60, 3000};
    check_filters(DB_IVFPQ, 40, ks, 3, 0);
}
END_TEST

START_TEST(test_filters_hold_ivf_nprobe_1)
{
    GS_NEED_SHARED();
    const size_t ks[] = {5, 400};
    check_filters(DB_IVF, 40, ks, 2, 1);
}
END_TEST

// 70,000 tiles: filters matching more than GS_VINDEX_EXACT_MAX ids go through over-fetching,
// and at nprobe 1 the IVF lists hold too few: the search widens nprobe until k hits are found.
START_TEST(test_filters_hold_overfetch_and_widening)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_BIG);
    gs_search_t *s = open_db(d, true);
    scored_t *want = gs_xmalloc(d->t.n * sizeof *want);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_req_t r = {.vector = d->t.vecs + 1234 * d->t.dim,
                         .n_vector = d->t.dim,
                         .nprobe = 1,
                         .has_bbox = true,
                         .bbox = {10.0, 45.0, 11.9, 46.0}};
    size_t n_match = brute(&d->t, r.vector, &r, want);
    ck_assert_uint_gt(n_match, 65536);
    const size_t ks[] = {10, 20000};
    for (int i = 0; i < 2; i++) {
        r.k = ks[i];
        gs_search_result_t res;
        gs_arena_reset(a);
        double t0 = now_s();
        ck_assert_msg(gs_search_run(s, &r, a, &res, err, sizeof err) == GS_OK, "%s", err);
        fprintf(stderr, "overfetch k=%zu of %zu matches: %.3f s\n", r.k, n_match, now_s() - t0);
        ck_assert_uint_eq(res.n_hits, r.k);
        for (size_t j = 0; j < res.n_hits; j++) {
            size_t ti = index_of(&d->t, res.hits[j].tile_id);
            ck_assert(ti != (size_t)-1 && passes(&d->t, ti, &r));
        }
        ck_assert_uint_eq(res.hits[0].tile_id, d->t.ids[1234]);
    }
    gs_arena_destroy(&a);
    gs_free(want);
    gs_search_close(&s);
}
END_TEST

START_TEST(test_query_by_example)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    gs_search_t *s = open_db(d, false);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_result_t res;
    gs_search_req_t r = {.like_tile = d->t.ids[777], .k = 5};
    ck_assert_msg(gs_search_run(s, &r, a, &res, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(res.hits[0].tile_id, d->t.ids[777]);
    ck_assert(res.hits[0].score > 0.9999f);
    // The fixture images were indexed as tiles 0..3: each finds itself.
    for (int i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fixtures/openclip_tiny/image_%d.png", gs_test_shared(), i);
        uint8_t *rgb = NULL;
        int w, h;
        ck_assert_int_eq(gs_raster_read_rgb8(path, &rgb, &w, &h), GS_OK);
        gs_search_req_t ri = {.image_rgb = rgb, .image_w = w, .image_h = h, .k = 3};
        gs_arena_reset(a);
        ck_assert_msg(gs_search_run(s, &ri, a, &res, err, sizeof err) == GS_OK, "%s", err);
        ck_assert_uint_eq(res.hits[0].tile_id, d->t.ids[i]);
        ck_assert(res.hits[0].score > 0.9999f);
        gs_free(rgb);
    }
    gs_search_req_t unknown = {.like_tile = 12345, .k = 5};
    ck_assert_int_eq(gs_search_run(s, &unknown, a, &res, err, sizeof err), GS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "12345"));
    gs_arena_destroy(&a);
    gs_search_close(&s);
}
END_TEST

START_TEST(test_model_mismatch_refused)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    char other[1024], err[GS_SEARCH_ERR_NBYTES];
    snprintf(other, sizeof other, "%s/fixtures/hfclip_tiny", gs_test_shared());
    gs_clip_t *m = NULL;
    ck_assert_int_eq(gs_clip_open(other, NULL, &m), GS_OK);
    char other_id[17];
    snprintf(other_id, sizeof other_id, "%s", gs_clip_model_id(m));
    gs_clip_close(&m);
    ck_assert_str_ne(other_id, d->t.model_id);
    gs_search_opts_t so = {.model = other};
    gs_search_t *s = NULL;
    ck_assert_int_eq(gs_search_open(d->dir, &so, &s, err, sizeof err), GS_EMISMATCH);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, other_id) && strstr(err, d->t.model_id), "%s", err);
    // Lazily: the open works (no model needed for --like-tile), a text query is refused.
    so.lazy_model = true;
    ck_assert_int_eq(gs_search_open(d->dir, &so, &s, err, sizeof err), GS_OK);
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    gs_search_result_t res;
    gs_search_req_t r = {.text = "river", .k = 3};
    ck_assert_int_eq(gs_search_run(s, &r, a, &res, err, sizeof err), GS_EMISMATCH);
    ck_assert_msg(strstr(err, other_id) && strstr(err, d->t.model_id), "%s", err);
    gs_search_req_t rt = {.like_tile = d->t.ids[5], .k = 3};
    ck_assert_int_eq(gs_search_run(s, &rt, a, &res, err, sizeof err), GS_OK);
    gs_arena_destroy(&a);
    gs_search_close(&s);
    // No output there at all.
    ck_assert_int_eq(gs_search_open(gs_test_shared(), NULL, &s, err, sizeof err), GS_ENOTFOUND);
}
END_TEST

START_TEST(test_request_errors)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    gs_search_t *s = open_db(d, false);
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    char err[GS_SEARCH_ERR_NBYTES], *long_text = gs_xmalloc(5000);
    memset(long_text, 'a', 4999);
    long_text[4999] = '\0';
    static const uint8_t px[3] = {1, 2, 3};
    float v[5] = {1, 0, 0, 0, 0}, zero[32] = {0};
    struct {
        gs_search_req_t r;
        gs_err want;
    } cases[] = {
        {{.k = 5}, GS_EINVAL},
        {{.text = "x", .like_tile = 3, .k = 5}, GS_EINVAL},
        {{.text = "x", .k = 0}, GS_EINVAL},
        {{.text = "x", .k = GS_SEARCH_K_MAX + 1}, GS_ETOOBIG},
        {{.text = long_text, .k = 5}, GS_ETOOBIG},
        {{.text = "", .k = 5}, GS_EINVAL},
        {{.text = "x", .k = 5, .has_bbox = true, .bbox = {0, 10, 1, 5}}, GS_EINVAL},
        {{.text = "x", .k = 5, .has_bbox = true, .bbox = {0, 10, 200, 50}}, GS_EINVAL},
        {{.text = "x", .k = 5, .has_from = true, .from = 10, .has_to = true, .to = 5}, GS_EINVAL},
        {{.vector = v, .n_vector = 5, .k = 5}, GS_EINVAL},
        {{.vector = zero, .n_vector = 32, .k = 5}, GS_EINVAL},
        {{.image_rgb = px, .image_w = 5000, .image_h = 5000, .k = 5}, GS_ETOOBIG},
        {{.image_rgb = px, .image_w = 0, .image_h = 1, .k = 5}, GS_EINVAL},
        {{.text = "x", .k = 5, .nprobe = -1}, GS_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gs_search_result_t res;
        err[0] = '\0';
        gs_err e = gs_search_run(s, &cases[i].r, a, &res, err, sizeof err);
        ck_assert_msg(e == cases[i].want, "case %zu: %s (%s), want %s", i, gs_err_name(e), err,
                      gs_err_name(cases[i].want));
        ck_assert_msg(err[0], "case %zu: no message", i);
    }
    // An arena too small for k = 100000 is an error, not a crash.
    gs_arena_t *tiny = gs_arena_new(4096, 8192);
    gs_search_req_t big = {.text = "x", .k = 3000};
    gs_search_result_t res;
    ck_assert_int_eq(gs_search_run(s, &big, tiny, &res, err, sizeof err), GS_ENOMEM);
    gs_arena_destroy(&tiny);
    gs_free(long_text);
    gs_arena_destroy(&a);
    gs_search_close(&s);
}
END_TEST

START_TEST(test_large_k_returns_everything_fast)
{
    GS_NEED_SHARED();
    db_t *d = db_get(DB_FLAT);
    gs_search_t *s = open_db(d, false);
    gs_arena_t *a = gs_arena_new(1 << 20, 0);
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_result_t res;
    gs_search_req_t r = {.text = "harbor", .k = 10000};
    double t0 = now_s();
    ck_assert_msg(gs_search_run(s, &r, a, &res, err, sizeof err) == GS_OK, "%s", err);
    double dt = now_s() - t0;
    ck_assert_uint_eq(res.n_hits, d->t.n);
    size_t n_cap = 0;
    for (size_t i = 0; i < res.n_hits; i++)
        n_cap += res.hits[i].caption != NULL;
    size_t want_cap = 0;
    for (size_t i = 0; i < d->t.n; i++)
        want_cap += d->t.caption[i] != NULL;
    ck_assert_uint_eq(n_cap, want_cap);
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 30);
    double t1 = now_s();
    ck_assert_int_eq(gs_qfmt_results(&b, res.hits, res.n_hits, true), GS_OK);
    fprintf(stderr,
            "k=10000 over %zu tiles: search+join %.1f ms (encode %.1f, index %.1f, "
            "records %.1f), GeoJSON %.1f ms, %zu bytes\n",
            d->t.n, dt * 1e3, res.encode_s * 1e3, res.search_s * 1e3, res.join_s * 1e3,
            (now_s() - t1) * 1e3, b.len);
    ck_assert(dt < 5.0);
    gs_buf_cleanup(&b);
    gs_arena_destroy(&a);
    gs_search_close(&s);
}
END_TEST

Suite *query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_qtime_parse_forms);
    tcase_add_test(tc, test_qbbox_and_id_parse);
    tcase_add_test(tc, test_format_json_and_geojson);
    suite_add_tcase(s, tc);
    tc = tcase_create("search");
    tcase_add_unchecked_fixture(tc, setup_dbs, teardown_dbs);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_search_text_equals_exact_search);
    tcase_add_test(tc, test_text_cache_same_results);
    tcase_add_test(tc, test_filters_hold_flat);
    tcase_add_test(tc, test_filters_hold_ivfpq_refine);
    tcase_add_test(tc, test_filters_hold_ivf_nprobe_1);
    tcase_add_test(tc, test_filters_hold_overfetch_and_widening);
    tcase_add_test(tc, test_query_by_example);
    tcase_add_test(tc, test_model_mismatch_refused);
    tcase_add_test(tc, test_request_errors);
    tcase_add_test(tc, test_large_k_returns_everything_fast);
    suite_add_tcase(s, tc);
    return s;
}
