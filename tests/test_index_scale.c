// index/ at a realistic shape: 512-d clustered unit vectors, the index type that "auto" picks,
// and the store holding one tile + caption record per vector. Prints the figures quoted in
// docs/STORE.md (build, search latency p50/p99 at k=10 and k=10,000, recall@10 against exact
// search, file sizes, record writes and MultiGet of 10,000). The default size is small enough
// for every test run; GS_INDEX_SCALE_N=1000000 (and patience) gives the full-size figures.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/vindex.h"
#include "testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x2545f4914f6cdd1dULL;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float rnormal(void)
{
    double u = ((rnd() >> 11) + 1) * (1.0 / 9007199254740992.0); // (0, 1]
    float v = (float)((rnd() >> 11) * (1.0 / 9007199254740992.0));
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

// Embedding-like data (cosine of two tiles of one topic about 0.8, of two topics about 0.3, as
// with CLIP image embeddings): a shared direction (0.6) + one of n_centers unit topic vectors
// (0.8) + isotropic noise of norm 0.5, normalised. centers holds the shared direction first.
static void make_vecs(float *out, size_t n, int dim, const float *centers, int n_centers)
{
    float sigma = 0.5f / sqrtf((float)dim);
    for (size_t i = 0; i < n; i++) {
        const float *c = centers + (1 + rnd() % (uint64_t)n_centers) * dim;
        double s = 0;
        float *v = out + i * dim;
        for (int j = 0; j < dim; j++) {
            v[j] = 0.6f * centers[j] + 0.8f * c[j] + sigma * rnormal();
            s += (double)v[j] * v[j];
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int j = 0; j < dim; j++)
            v[j] *= inv;
    }
}

static void unit_rows(float *m, size_t rows, int dim)
{
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        for (int j = 0; j < dim; j++) {
            m[r * dim + j] = rnormal();
            s += (double)m[r * dim + j] * m[r * dim + j];
        }
        for (int j = 0; j < dim; j++)
            m[r * dim + j] = (float)(m[r * dim + j] / sqrt(s));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// latency: p50 and p99 of one-query searches (ms).
static void latency(gs_vindex_t *v, const float *q, size_t nq, int dim, size_t k, double *p50,
                    double *p99)
{
    float *s = gs_xmalloc(k * sizeof *s);
    uint64_t *id = gs_xmalloc(k * sizeof *id);
    double *t = gs_xmalloc(nq * sizeof *t);
    for (size_t i = 0; i < nq; i++) {
        double t0 = now_s();
        ck_assert_int_eq(gs_vindex_search(v, 1, q + i * dim, k, NULL, s, id), GS_OK);
        t[i] = (now_s() - t0) * 1e3;
    }
    qsort(t, nq, sizeof *t, cmp_double);
    *p50 = t[nq / 2];
    *p99 = t[(nq * 99) / 100 < nq ? (nq * 99) / 100 : nq - 1];
    gs_free(s);
    gs_free(id);
    gs_free(t);
}

static double recall10(const uint64_t *got, const uint64_t *want, size_t nq)
{
    size_t hit = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t a = 0; a < 10; a++)
            for (size_t b = 0; b < 10; b++)
                if (got[i * 10 + a] == want[i * 10 + b]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(nq * 10);
}

static size_t file_nbytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

START_TEST(test_index_at_scale)
{
    int64_t n_env = 0;
    const char *e = gs_getenv("GS_INDEX_SCALE_N");
    size_t n = e && gs_parse_i64(e, &n_env) == GS_OK && n_env >= 1000 ? (size_t)n_env : 20000;
    const int dim = 512, n_centers = 1000;
    const size_t nq = 200;
    const char *dir = gs_test_tmpdir("index_scale");
    fprintf(stderr, "index scale: n=%zu dim=%d (GS_INDEX_SCALE_N to change)\n", n, dim);
    float *centers = gs_xmalloc((size_t)(n_centers + 1) * dim * sizeof *centers);
    unit_rows(centers, (size_t)n_centers + 1, dim);
    float *db = gs_trymalloc(n * dim * sizeof *db), *q = gs_xmalloc(nq * dim * sizeof *q);
    ck_assert_ptr_nonnull(db);
    make_vecs(db, n, dim, centers, n_centers);
    make_vecs(q, nq, dim, centers, n_centers);
    uint64_t *ids = gs_xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (rnd() & 0x7fffffffff000000ULL) | i;

    // exact reference
    gs_vindex_opts_t fo = {.dim = dim, .type = "Flat"};
    gs_vindex_t *flat = NULL;
    ck_assert_int_eq(gs_vindex_new(&fo, &flat), GS_OK);
    double t0 = now_s();
    ck_assert_int_eq(gs_vindex_add(flat, n, db, ids), GS_OK);
    double t_flat_add = now_s() - t0;
    float *ws = gs_xmalloc(nq * 10 * sizeof *ws), *s = gs_xmalloc(nq * 10 * sizeof *s);
    uint64_t *wid = gs_xmalloc(nq * 10 * sizeof *wid), *id = gs_xmalloc(nq * 10 * sizeof *id);
    ck_assert_int_eq(gs_vindex_search(flat, nq, q, 10, NULL, ws, wid), GS_OK);
    double f50, f99, fk50, fk99;
    latency(flat, q, 50, dim, 10, &f50, &f99);
    latency(flat, q, 20, dim, 10000 < n ? 10000 : n, &fk50, &fk99);
    char *fpath = gs_path_join(dir, "flat.faiss"), *ipath = gs_path_join(dir, "ivf.faiss");
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_write(flat, fpath), GS_OK);
    double t_wf = now_s() - t0;
    fprintf(stderr, "  Flat: add %.2f s; one query k=10 p50 %.2f ms p99 %.2f ms; k=10000 p50 "
            "%.1f ms; file %.1f MB written in %.2f s\n", t_flat_add, f50, f99, fk50,
            file_nbytes(fpath) / 1e6, t_wf);
    gs_vindex_destroy(&flat); // memory: at 1M x 512 each copy is 2 GB

    // what auto picks at this size when the flat limit is below it
    gs_vindex_auto_t a;
    gs_vindex_auto(n, dim, n / 2, &a); // IVF-PQ whatever the size
    if (n < GS_VINDEX_FLAT_MAX) {
        // the routine run: a small IVF (auto would pick Flat here; its nlist would make lists of
        // a few vectors and training would dominate the whole test suite)
        snprintf(a.type, sizeof a.type, "IVF128,PQ32np");
        a.n_train = n < 10000 ? n : 10000;
    }
    gs_vindex_opts_t io = {.dim = dim, .type = a.type, .refine = a.refine, .nprobe = a.nprobe};
    gs_vindex_t *ivf = NULL;
    ck_assert_int_eq(gs_vindex_new(&io, &ivf), GS_OK);
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_train(ivf, a.n_train, db), GS_OK);
    double t_train = now_s() - t0;
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_add(ivf, n, db, ids), GS_OK);
    double t_add = now_s() - t0;
    GS_FREE(db);
    char desc[128];
    gs_vindex_describe(ivf, desc, sizeof desc);
    fprintf(stderr, "  %s: train on %zu %.1f s, add %.1f s\n", desc, a.n_train, t_train, t_add);
    double rec_default = 0;
    for (int np = 8; np <= 64; np *= 2) {
        ck_assert_int_eq(gs_vindex_set_nprobe(ivf, np), GS_OK);
        ck_assert_int_eq(gs_vindex_search(ivf, nq, q, 10, NULL, s, id), GS_OK);
        double r = recall10(id, wid, nq), p50, p99, k50, k99;
        latency(ivf, q, 100, dim, 10, &p50, &p99);
        latency(ivf, q, 10, dim, 10000 < n ? 10000 : n, &k50, &k99);
        fprintf(stderr, "    nprobe %2d: recall@10 %.3f; k=10 p50 %.2f ms p99 %.2f ms; k=10000 "
                "p50 %.1f ms p99 %.1f ms\n", np, r, p50, p99, k50, k99);
        if (np == a.nprobe)
            rec_default = r;
    }
    ck_assert_int_eq(gs_vindex_set_nprobe(ivf, a.nprobe), GS_OK);
    ck_assert_msg(rec_default >= 0.95, "recall@10 at the default nprobe %d: %.3f", a.nprobe,
                  rec_default);

    // files
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_write(ivf, ipath), GS_OK);
    double t_wi = now_s() - t0;
    gs_vindex_t *r = NULL;
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_read(ipath, NULL, &r), GS_OK);
    double t_ri = now_s() - t0;
    fprintf(stderr, "  file: %s %.1f MB written in %.2f s, read in %.2f s\n", a.type,
            file_nbytes(ipath) / 1e6, t_wi, t_ri);
    gs_vindex_destroy(&r);
    gs_free(fpath);
    gs_free(ipath);

    // records for every vector, then 10,000 of them back
    char *spath = gs_path_join(dir, "store");
    gs_capstore_opts_t so = {.create_if_missing = true};
    gs_capstore_t *st = NULL;
    ck_assert_int_eq(gs_capstore_open(spath, &so, &st), GS_OK);
    gs_capstore_batch_t *b = gs_capstore_batch_new(st);
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        gs_tile_rec_t t = {.tile_id = ids[i], .scene_id = i / 1600, .x = 256 * (int)(i % 40),
                           .y = 256 * (int)((i / 40) % 40), .w = 256, .h = 256,
                           .bounds = {10, 45, 10.01, 45.01}, .time_unix = 1622540000,
                           .valid_frac = 1};
        char text[128];
        snprintf(text, sizeof text, "tile %zu: farmland with a river and a small town", i);
        gs_caption_rec_t c = {.tile_id = ids[i], .text = text, .model_id = "llava-tiny"};
        ck_assert_int_eq(gs_capstore_batch_put_tile(b, &t), GS_OK);
        ck_assert_int_eq(gs_capstore_batch_put_caption(b, &c), GS_OK);
        if (gs_capstore_batch_count(b) >= 20000 || i + 1 == n) {
            ck_assert_int_eq(gs_capstore_write(st, b, false), GS_OK);
            gs_capstore_batch_clear(b);
        }
    }
    double t_rec = now_s() - t0;
    gs_capstore_batch_destroy(&b);
    gs_capstore_close(&st);
    ck_assert_int_eq(gs_capstore_open(spath, NULL, &st), GS_OK);
    size_t k = 10000 < n ? 10000 : n;
    float *ks = gs_xmalloc(k * sizeof *ks);
    uint64_t *kid = gs_xmalloc(k * sizeof *kid);
    gs_tile_rec_t *recs = gs_xmalloc(k * sizeof *recs);
    gs_caption_rec_t *caps = gs_xmalloc(k * sizeof *caps);
    uint8_t *found = gs_xmalloc(k), *cfound = gs_xmalloc(k);
    gs_arena_t *arena = gs_arena_new(1 << 20, 0);
    double best = 1e9, best_all = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        gs_arena_reset(arena);
        double t1 = now_s();
        ck_assert_int_eq(gs_vindex_search(ivf, 1, q + rep * dim, k, NULL, ks, kid), GS_OK);
        double t2 = now_s();
        ck_assert_int_eq(gs_capstore_get_tiles(st, k, kid, recs, found), GS_OK);
        ck_assert_int_eq(gs_capstore_get_captions(st, k, kid, arena, caps, cfound), GS_OK);
        double t3 = now_s();
        best = t3 - t2 < best ? t3 - t2 : best;
        best_all = t3 - t1 < best_all ? t3 - t1 : best_all;
        for (size_t i = 0; i < k; i++)
            ck_assert(found[i] && cfound[i] && recs[i].tile_id == kid[i]);
    }
    fprintf(stderr, "  store: %zu tile + caption records in batches of 10,000: %.1f s (%.0f "
            "records/s); %zu hits: search + records %.0f ms, of which records %.0f ms (best of "
            "3)\n", n, t_rec, 2 * n / t_rec, k, best_all * 1e3, best * 1e3);
    gs_arena_destroy(&arena);
    gs_free(ks);
    gs_free(kid);
    gs_free(recs);
    gs_free(caps);
    gs_free(found);
    gs_free(cfound);
    gs_capstore_close(&st);
    gs_free(spath);
    char *cmd = gs_xasprintf("rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    gs_free(cmd);

    gs_vindex_destroy(&ivf);
    gs_free(ws);
    gs_free(s);
    gs_free(wid);
    gs_free(id);
    gs_free(centers);
    gs_free(q);
    gs_free(ids);
}
END_TEST

Suite *index_scale_suite(void)
{
    Suite *s = suite_create("index_scale");
    TCase *tc = tcase_create("scale");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, test_index_at_scale);
    suite_add_tcase(s, tc);
    return s;
}
