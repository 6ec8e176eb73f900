// index/vindex: the FAISS vector index against a brute-force reference written here: exact
// flat search, ids, remove, reconstruct, files, IVF-PQ recall with and without refine,
// filters, k = 10,000. Also writes the files that tests/index_faiss_py.sh checks with stock
// python3-faiss (GS_TEST_TMP/index_py/).
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/vecfile.h"
#include "index/vindex.h"
#include "testutil.h"

// ---- data -----------------------------------------------------------------------------------

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static float rng_unit(void) { return (float)((rng_next() >> 11) * (1.0 / 9007199254740992.0)); }

static float rng_normal(void)
{
    double u = ((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0); // (0, 1]
    float v = rng_unit();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void normalize(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s > 0 ? s : 1));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

// random_vecs: n unit vectors; clustered around n_centers centres when n_centers > 0 (the shape
// of real embeddings, which is what IVF-PQ is tuned for).
static float *random_vecs(size_t n, int dim, int n_centers, uint64_t seed)
{
    rng_state = seed * 2654435761u + 88172645463325252ULL;
    float *c = NULL;
    if (n_centers > 0) {
        c = gs_xmalloc((size_t)n_centers * dim * sizeof *c);
        for (size_t i = 0; i < (size_t)n_centers * dim; i++)
            c[i] = rng_normal();
    }
    float *v = gs_xmalloc(n * dim * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const float *ctr = c ? c + (rng_next() % n_centers) * dim : NULL;
        for (int j = 0; j < dim; j++)
            v[i * dim + j] = (ctr ? ctr[j] : 0) + (ctr ? 0.35f : 1.0f) * rng_normal();
        normalize(v + i * dim, dim);
    }
    gs_free(c);
    return v;
}

// random_ids: n distinct ids below 2^63 (hash-like, as tile ids are).
static uint64_t *random_ids(size_t n, uint64_t seed)
{
    rng_state = seed ^ 0x9e3779b97f4a7c15ULL;
    uint64_t *ids = gs_xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (rng_next() & 0x7fffffffffff0000ULL) | (uint64_t)(i & 0xffff);
    // distinct: the low 16 bits carry i, so a clash needs 47 equal random bits too
    return ids;
}

// ---- brute force reference ------------------------------------------------------------------

typedef struct {
    float s;
    uint64_t id;
} hit_t;

static int hit_cmp(const void *a, const void *b)
{
    const hit_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// brute: the top k of each query over the vectors passing keep (NULL = all).
static void brute(const float *db, const uint64_t *ids, size_t n, int dim, const float *q,
                  size_t nq, size_t k, int (*keep)(uint64_t, void *), float *out_s,
                  uint64_t *out_id)
{
    hit_t *h = gs_xmalloc(n * sizeof *h);
    for (size_t qi = 0; qi < nq; qi++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (keep && !keep(ids[i], NULL))
                continue;
            double s = 0;
            for (int j = 0; j < dim; j++)
                s += (double)q[qi * dim + j] * db[i * dim + j];
            h[m].s = (float)s;
            h[m++].id = ids[i];
        }
        qsort(h, m, sizeof *h, hit_cmp);
        for (size_t r = 0; r < k; r++) {
            out_s[qi * k + r] = r < m ? h[r].s : -INFINITY;
            out_id[qi * k + r] = r < m ? h[r].id : GS_VINDEX_NONE;
        }
    }
    gs_free(h);
}

// same_hits: ids equal in order except where neighbouring scores tie within 1e-5, and scores
// close; prints the first mismatch.
static size_t same_hits(const char *what, const float *s, const uint64_t *id, const float *ws,
                        const uint64_t *wid, size_t nq, size_t k)
{
    size_t bad = 0;
    for (size_t i = 0; i < nq * k; i++) {
        int ok = id[i] == wid[i] ||
                 (i % k + 1 < k && fabsf(ws[i] - ws[i + 1]) < 1e-5f) ||
                 (i % k > 0 && fabsf(ws[i] - ws[i - 1]) < 1e-5f);
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s: query %zu rank %zu: id %llu score %g, want id %llu score %g\n",
                    what, i / k, i % k, (unsigned long long)id[i], s[i],
                    (unsigned long long)wid[i], ws[i]);
    }
    float *a = gs_xmalloc(nq * k * sizeof *a), *b = gs_xmalloc(nq * k * sizeof *b);
    size_t m = 0;
    for (size_t i = 0; i < nq * k; i++)
        if (isfinite(ws[i]) || isfinite(s[i])) {
            a[m] = s[i];
            b[m++] = ws[i];
        }
    bad += gs_test_check_close(what, a, b, m, 1e-5, 1e-4);
    gs_free(a);
    gs_free(b);
    return bad;
}

static double recall_at(const uint64_t *got, const uint64_t *want, size_t nq, size_t k)
{
    size_t hit = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                if (got[i * k + a] == want[i * k + b] && want[i * k + b] != GS_VINDEX_NONE) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(nq * k);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static gs_vindex_t *new_index(int dim, const char *type, bool refine)
{
    gs_vindex_opts_t o = {.dim = dim, .type = type, .refine = refine, .n_threads = 2};
    gs_vindex_t *v = NULL;
    ck_assert_int_eq(gs_vindex_new(&o, &v), GS_OK);
    return v;
}

// ---- flat -----------------------------------------------------------------------------------

START_TEST(test_vindex_flat_matches_brute_force)
{
    const int dim = 48;
    const size_t n = 3000, nq = 25, k = 10;
    float *db = random_vecs(n, dim, 0, 1), *q = random_vecs(nq, dim, 0, 2);
    uint64_t *ids = random_ids(n, 3);
    gs_vindex_t *v = new_index(dim, NULL, false);
    ck_assert_int_eq(gs_vindex_is_trained(v), 1);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    ck_assert_uint_eq(gs_vindex_ntotal(v), n);
    float s[250], ws[250];
    uint64_t id[250], wid[250];
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, NULL, s, id), GS_OK);
    brute(db, ids, n, dim, q, nq, k, NULL, ws, wid);
    ck_assert_uint_eq(same_hits("flat", s, id, ws, wid, nq, k), 0);
    char desc[128];
    gs_vindex_describe(v, desc, sizeof desc);
    ck_assert_str_eq(desc, "IDMap2,Flat ntotal=3000");
    gs_vindex_destroy(&v);
    ck_assert_ptr_null(v);
    gs_vindex_destroy(&v); // NULL is fine
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_ids_round_trip_and_add_is_idempotent)
{
    const int dim = 16;
    const size_t n = 500;
    float *db = random_vecs(n, dim, 0, 4);
    uint64_t *ids = random_ids(n, 5);
    ids[7] = GS_VINDEX_ID_MAX; // the largest valid id
    ids[8] = 0;                // and the smallest
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    // recommitting the same shard, plus a batch with repeats, adds nothing twice
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    uint64_t rep[3] = {ids[1], ids[1], 12345};
    float rv[3 * 16];
    memcpy(rv, db, sizeof rv);
    ck_assert_int_eq(gs_vindex_add(v, 3, rv, rep), GS_OK);
    ck_assert_uint_eq(gs_vindex_ntotal(v), n + 1);
    uint64_t *got = gs_xmalloc((n + 1) * sizeof *got);
    ck_assert_uint_eq(gs_vindex_ids(v, got, n + 1), n + 1);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(got[i], ids[i]); // internal order = add order
    ck_assert_uint_eq(got[n], 12345);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(gs_vindex_contains(v, ids[i]), 1);
    ck_assert_int_eq(gs_vindex_contains(v, 777), 0);
    // ids above 2^63-1 are refused (FAISS ids are signed)
    uint64_t bad = (uint64_t)1 << 63;
    ck_assert_int_eq(gs_vindex_add(v, 1, db, &bad), GS_EINVAL);
    ck_assert_uint_eq(gs_vindex_ntotal(v), n + 1);
    gs_vindex_destroy(&v);
    gs_free(got);
    gs_free(db);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_remove_flat_and_ivf)
{
    const int dim = 32;
    const size_t n = 4000, nq = 10, k = 20;
    float *db = random_vecs(n, dim, 40, 6), *q = random_vecs(nq, dim, 40, 7);
    uint64_t *ids = random_ids(n, 8);
    const char *types[2] = {"Flat", "IVF32,PQ8np"};
    for (int t = 0; t < 2; t++) {
        gs_vindex_t *v = new_index(dim, types[t], t == 1);
        ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
        ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
        // remove every third id, plus an id that is not there
        size_t nr = 0;
        uint64_t *rm = gs_xmalloc((n / 3 + 2) * sizeof *rm);
        for (size_t i = 0; i < n; i += 3)
            rm[nr++] = ids[i];
        rm[nr++] = 424242;
        size_t removed = 0;
        ck_assert_int_eq(gs_vindex_remove(v, nr, rm, &removed), GS_OK);
        ck_assert_uint_eq(removed, nr - 1);
        ck_assert_uint_eq(gs_vindex_ntotal(v), n - (nr - 1));
        ck_assert_int_eq(gs_vindex_contains(v, ids[0]), 0);
        ck_assert_int_eq(gs_vindex_contains(v, ids[1]), 1);
        float *vec = gs_xmalloc(dim * sizeof *vec);
        ck_assert_int_eq(gs_vindex_reconstruct(v, ids[3], vec), GS_ENOTFOUND);
        // the kept vectors survive the rebuild exactly (flat storage / refine stage)
        ck_assert_int_eq(gs_vindex_reconstruct(v, ids[4], vec), GS_OK);
        ck_assert_uint_eq(gs_test_check_close("kept", vec, db + 4 * dim, dim, 0, 0), 0);
        // no removed id comes back from a search, and hits equal brute force on the rest
        float s[200], ws[200];
        uint64_t id[200], wid[200];
        gs_vindex_search_opts_t so = {.nprobe = 32};
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
        for (size_t i = 0; i < nq * k; i++)
            for (size_t j = 0; j < nr; j++)
                ck_assert_uint_ne(id[i], rm[j]);
        float *kv = gs_xmalloc(n * dim * sizeof *kv);
        uint64_t *ki = gs_xmalloc(n * sizeof *ki);
        size_t nk = 0;
        for (size_t i = 0; i < n; i++)
            if (i % 3) {
                memcpy(kv + nk * dim, db + i * dim, dim * sizeof *kv);
                ki[nk++] = ids[i];
            }
        brute(kv, ki, nk, dim, q, nq, k, NULL, ws, wid);
        double r = recall_at(id, wid, nq, k);
        fprintf(stderr, "remove %s: recall@%zu after removal %.3f\n", types[t], k, r);
        ck_assert(t == 0 ? same_hits("after remove", s, id, ws, wid, nq, k) == 0 : r >= 0.9);
        gs_free(kv);
        gs_free(ki);
        gs_free(vec);
        gs_free(rm);
        gs_vindex_destroy(&v);
    }
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_reconstruct_by_id)
{
    const int dim = 32;
    const size_t n = 3000;
    float *db = random_vecs(n, dim, 30, 9);
    uint64_t *ids = random_ids(n, 10);
    float vec[32];
    // flat: exact
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    for (size_t i = 0; i < n; i += 397) {
        ck_assert_int_eq(gs_vindex_reconstruct(v, ids[i], vec), GS_OK);
        ck_assert_uint_eq(gs_test_check_close("flat", vec, db + i * dim, dim, 0, 0), 0);
    }
    ck_assert_int_eq(gs_vindex_reconstruct(v, 1, vec), GS_ENOTFOUND);
    gs_vindex_destroy(&v);
    // IVF-PQ without refine: the decoded code, close to the vector but not equal
    v = new_index(dim, "IVF16,PQ16np", false);
    ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    ck_assert_int_eq(gs_vindex_reconstruct(v, ids[5], vec), GS_OK);
    double d = 0;
    for (int j = 0; j < dim; j++)
        d += (vec[j] - db[5 * dim + j]) * (vec[j] - db[5 * dim + j]);
    ck_assert_msg(d < 0.2, "PQ reconstruction error %g", d);
    gs_vindex_destroy(&v);
    gs_free(db);
    gs_free(ids);
}
END_TEST

// ---- files ----------------------------------------------------------------------------------

START_TEST(test_vindex_write_read_round_trip)
{
    const char *dir = gs_test_tmpdir("vindex_file");
    ck_assert_ptr_nonnull(dir);
    const int dim = 32;
    const size_t n = 3000, nq = 8, k = 15;
    float *db = random_vecs(n, dim, 30, 11), *q = random_vecs(nq, dim, 30, 12);
    uint64_t *ids = random_ids(n, 13);
    const char *types[3] = {"Flat", "IVF32,PQ8np,RFlat", "IVF32,PQ8np"};
    for (int t = 0; t < 3; t++) {
        gs_vindex_t *v = new_index(dim, types[t], false);
        ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
        ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
        char *path = gs_path_join(dir, "index.faiss");
        ck_assert_int_eq(gs_vindex_write(v, path), GS_OK);
        ck_assert_int_eq(gs_vindex_write(v, path), GS_OK); // replaces atomically
        gs_vindex_t *r = NULL;
        gs_vindex_opts_t ro = {.dim = dim, .nprobe = 8};
        ck_assert_int_eq(gs_vindex_read(path, &ro, &r), GS_OK);
        ck_assert_uint_eq(gs_vindex_ntotal(r), n);
        ck_assert_int_eq(gs_vindex_contains(r, ids[17]), 1);
        float s1[120], s2[120];
        uint64_t i1[120], i2[120];
        gs_vindex_search_opts_t so = {.nprobe = 8};
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s1, i1), GS_OK);
        ck_assert_int_eq(gs_vindex_search(r, nq, q, k, &so, s2, i2), GS_OK);
        ck_assert_uint_eq(same_hits(types[t], s2, i2, s1, i1, nq, k), 0);
        // the read index keeps working: add, reconstruct
        float vec[32];
        uint64_t extra = 99;
        ck_assert_int_eq(gs_vindex_add(r, 1, q, &extra), GS_OK);
        ck_assert_int_eq(gs_vindex_reconstruct(r, 99, vec), GS_OK);
        if (t < 2)
            ck_assert_uint_eq(gs_test_check_close("reread", vec, q, dim, 0, 0), 0);
        char desc[128];
        gs_vindex_describe(r, desc, sizeof desc);
        fprintf(stderr, "read back %s: %s\n", types[t], desc);
        const char *want_desc[3] = {"IDMap2,Flat ", "IDMap2,Refine(IVF) nprobe=8 ",
                                    "IDMap2,IVF32,? nprobe=8 "};
        ck_assert_msg(strncmp(desc, want_desc[t], strlen(want_desc[t])) == 0, "%s", desc);
        ck_assert_int_eq(gs_vindex_nprobe(r), t == 0 ? 0 : 8);
        // the dimension is checked
        gs_vindex_t *w = NULL;
        gs_vindex_opts_t wo = {.dim = dim + 1};
        ck_assert_int_eq(gs_vindex_read(path, &wo, &w), GS_EMISMATCH);
        ck_assert_ptr_null(w);
        gs_vindex_destroy(&r);
        gs_vindex_destroy(&v);
        gs_free(path);
    }
    // no temporary is left behind; missing and garbage files are errors, not crashes
    char *cmd = gs_xasprintf("test $(ls '%s' | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    gs_free(cmd);
    gs_vindex_t *r = NULL;
    char *missing = gs_path_join(dir, "missing.faiss");
    ck_assert_int_eq(gs_vindex_read(missing, NULL, &r), GS_ENOTFOUND);
    char *junk = gs_path_join(dir, "junk.faiss");
    ck_assert_int_eq(gs_write_file_atomic(junk, "IxM2 not an index at all", 24), GS_OK);
    ck_assert_int_eq(gs_vindex_read(junk, NULL, &r), GS_EBACKEND);
    ck_assert_ptr_null(r);
    gs_free(missing);
    gs_free(junk);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_bad_types_are_refused)
{
    gs_vindex_t *v = NULL;
    gs_vindex_opts_t o = {.dim = 32, .type = "IVF12,Garbage"};
    ck_assert_int_eq(gs_vindex_new(&o, &v), GS_EINVAL);
    ck_assert_ptr_null(v);
    o.type = "IDMap,Flat";
    ck_assert_int_eq(gs_vindex_new(&o, &v), GS_EINVAL);
    o.type = "Flat";
    o.dim = 0;
    ck_assert_int_eq(gs_vindex_new(&o, &v), GS_EINVAL);
    // an untrained IVF refuses vectors
    o.dim = 8;
    o.type = "IDMap2,IVF4,Flat";
    ck_assert_int_eq(gs_vindex_new(&o, &v), GS_OK);
    ck_assert_int_eq(gs_vindex_is_trained(v), 0);
    float x[8] = {1};
    uint64_t id = 1;
    ck_assert_int_eq(gs_vindex_add(v, 1, x, &id), GS_ESTATE);
    float s[4];
    uint64_t ids[4];
    ck_assert_int_eq(gs_vindex_search(v, 1, x, 0, NULL, s, ids), GS_EINVAL);
    ck_assert_int_eq(gs_vindex_search(v, 1, x, 4, NULL, s, ids), GS_OK); // empty: no hits
    ck_assert_uint_eq(ids[0], GS_VINDEX_NONE);
    ck_assert(isinf(s[3]) && s[3] < 0);
    gs_vindex_destroy(&v);
}
END_TEST

// ---- IVF-PQ ---------------------------------------------------------------------------------

START_TEST(test_vindex_ivfpq_recall_with_and_without_refine)
{
    const int dim = 64;
    const size_t n = 20000, nq = 200, k = 10, n_train = 10000;
    float *db = random_vecs(n, dim, 100, 14), *q = random_vecs(nq, dim, 100, 15);
    uint64_t *ids = random_ids(n, 16);
    float *ws = gs_xmalloc(nq * k * sizeof *ws), *s = gs_xmalloc(nq * k * sizeof *s);
    uint64_t *wid = gs_xmalloc(nq * k * sizeof *wid), *id = gs_xmalloc(nq * k * sizeof *id);
    gs_vindex_t *flat = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(flat, n, db, ids), GS_OK);
    ck_assert_int_eq(gs_vindex_search(flat, nq, q, k, NULL, ws, wid), GS_OK);
    double rec[2] = {0, 0};
    for (int refine = 0; refine < 2; refine++) {
        gs_vindex_t *v = new_index(dim, "IVF64,PQ16np", refine);
        double t0 = now_s();
        ck_assert_int_eq(gs_vindex_train(v, n_train, db), GS_OK);
        double t1 = now_s();
        ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
        double t2 = now_s();
        fprintf(stderr, "IVF64,PQ16np%s (k_factor 16), %zu x %d, clustered: train %zu %.2f s, "
                "add %.2f s\n", refine ? ",RFlat" : "", n, dim, n_train, t1 - t0, t2 - t1);
        for (int np = 8; np <= 64; np *= 2) {
            gs_vindex_search_opts_t so = {.nprobe = np};
            double t3 = now_s();
            ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
            double r = recall_at(id, wid, nq, k);
            fprintf(stderr, "  nprobe %2d: recall@10 vs flat %.3f, %zu queries %.1f ms\n", np, r,
                    nq, (now_s() - t3) * 1e3);
            if (np == 32)
                rec[refine] = r;
        }
        gs_vindex_destroy(&v);
    }
    ck_assert_msg(rec[1] >= 0.95, "recall@10 with refine at nprobe 32 %.3f < 0.95", rec[1]);
    ck_assert_msg(rec[1] > rec[0] + 0.2, "refine did not improve recall (%.3f vs %.3f)", rec[1],
                  rec[0]);
    gs_vindex_destroy(&flat);
    gs_free(ws);
    gs_free(s);
    gs_free(wid);
    gs_free(id);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_shards_merge_with_the_trained_quantizer)
{
    const int dim = 32;
    const size_t n = 6000, nq = 20, k = 10;
    float *db = random_vecs(n, dim, 40, 17), *q = random_vecs(nq, dim, 40, 18);
    uint64_t *ids = random_ids(n, 19);
    gs_vindex_t *main_ix = new_index(dim, "IVF32,PQ8np,RFlat", false);
    ck_assert_int_eq(gs_vindex_train(main_ix, 3000, db), GS_OK);
    // three shards share the trained state, each holds a third
    gs_vindex_t *sh[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gs_vindex_new_like(main_ix, &sh[i]), GS_OK);
        ck_assert_int_eq(gs_vindex_is_trained(sh[i]), 1);
        ck_assert_int_eq(gs_vindex_add(sh[i], n / 3, db + i * (n / 3) * dim, ids + i * (n / 3)),
                         GS_OK);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gs_vindex_merge_from(main_ix, sh[i]), GS_OK);
    ck_assert_int_eq(gs_vindex_merge_from(main_ix, sh[1]), GS_OK); // a rerun adds nothing
    ck_assert_uint_eq(gs_vindex_ntotal(main_ix), n);
    // same results as adding everything at once
    gs_vindex_t *once = NULL;
    ck_assert_int_eq(gs_vindex_new_like(main_ix, &once), GS_OK);
    ck_assert_uint_eq(gs_vindex_ntotal(once), 0);
    ck_assert_int_eq(gs_vindex_add(once, n, db, ids), GS_OK);
    float s1[200], s2[200];
    uint64_t i1[200], i2[200];
    ck_assert_int_eq(gs_vindex_search(main_ix, nq, q, k, NULL, s1, i1), GS_OK);
    ck_assert_int_eq(gs_vindex_search(once, nq, q, k, NULL, s2, i2), GS_OK);
    ck_assert_uint_eq(same_hits("merged", s1, i1, s2, i2, nq, k), 0);
    // flat shards merge too
    gs_vindex_t *f1 = new_index(dim, "Flat", false), *f2 = NULL;
    ck_assert_int_eq(gs_vindex_new_like(f1, &f2), GS_OK);
    ck_assert_int_eq(gs_vindex_add(f2, 100, db, ids), GS_OK);
    ck_assert_int_eq(gs_vindex_merge_from(f1, f2), GS_OK);
    ck_assert_uint_eq(gs_vindex_ntotal(f1), 100);
    for (int i = 0; i < 3; i++)
        gs_vindex_destroy(&sh[i]);
    gs_vindex_destroy(&once);
    gs_vindex_destroy(&main_ix);
    gs_vindex_destroy(&f1);
    gs_vindex_destroy(&f2);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

// ---- filters and large k ----------------------------------------------------------------------

static int keep_odd_bit(uint64_t id, void *ud)
{
    (void)ud;
    return (id >> 20) % 3 == 0; // about a third of the ids
}


// in_list: the brute-force side of an allow-list filter (the list is small: linear scan).
static const uint64_t *g_allow;
static size_t g_n_allow;
static int keep_listed(uint64_t id, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < g_n_allow; i++)
        if (g_allow[i] == id)
            return 1;
    return 0;
}

START_TEST(test_vindex_filter_allow_list_is_exact)
{
    const int dim = 32;
    const size_t n = 5000, nq = 6, k = 40, n_allow = 300;
    float *db = random_vecs(n, dim, 30, 20), *q = random_vecs(nq, dim, 30, 21);
    uint64_t *ids = random_ids(n, 22);
    uint64_t allow[300];
    for (size_t i = 0; i < n_allow; i++)
        allow[i] = ids[(i * 7919) % n];
    allow[0] = 5;         // not in the index
    allow[1] = allow[2];  // a repeat
    g_allow = allow;
    g_n_allow = n_allow;
    float s[240], ws[240];
    uint64_t id[240], wid[240];
    brute(db, ids, n, dim, q, nq, k, keep_listed, ws, wid);
    const char *types[2] = {"Flat", "IVF32,PQ8np,RFlat"};
    for (int t = 0; t < 2; t++) {
        gs_vindex_t *v = new_index(dim, types[t], false);
        ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
        ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
        gs_vindex_filter_t f = {.ids = allow, .n_ids = n_allow};
        gs_vindex_search_opts_t so = {.filter = &f};
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
        // every hit is allowed, and (exact scoring of the list) equal to brute force, also for
        // IVF-PQ whose lists would miss some of them
        ck_assert_uint_eq(same_hits(types[t], s, id, ws, wid, nq, k), 0);
        // allow-list and predicate together
        f.keep = keep_odd_bit;
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
        for (size_t i = 0; i < nq * k; i++)
            ck_assert(id[i] == GS_VINDEX_NONE || (keep_listed(id[i], NULL) && keep_odd_bit(id[i], NULL)));
        gs_vindex_destroy(&v);
    }
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_filter_predicate_overfetch)
{
    const int dim = 24;
    const size_t n = 8000, nq = 5, k = 50;
    float *db = random_vecs(n, dim, 0, 23), *q = random_vecs(nq, dim, 0, 24);
    uint64_t *ids = random_ids(n, 25);
    float s[250], ws[250];
    uint64_t id[250], wid[250];
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    gs_vindex_filter_t f = {.keep = keep_odd_bit};
    gs_vindex_search_opts_t so = {.filter = &f};
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
    brute(db, ids, n, dim, q, nq, k, keep_odd_bit, ws, wid);
    ck_assert_uint_eq(same_hits("predicate", s, id, ws, wid, nq, k), 0);
    // a filter only 3 ids pass: the search widens to the whole index and returns those 3
    uint64_t three[3] = {ids[10], ids[2000], ids[7999]};
    g_allow = three;
    g_n_allow = 3;
    f.keep = keep_listed;
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
    for (size_t i = 0; i < nq; i++) {
        for (size_t r = 0; r < 3; r++)
            ck_assert(keep_listed(id[i * k + r], NULL));
        ck_assert_uint_eq(id[i * k + 3], GS_VINDEX_NONE);
    }
    gs_vindex_destroy(&v);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

static int keep_big_list(uint64_t id, void *ud)
{
    (void)ud;
    return (id & 0xffff) % 10 < 7; // random_ids puts the index in the low 16 bits
}

START_TEST(test_vindex_filter_large_allow_list_overfetch)
{
    const int dim = 8;
    const size_t n = 100000, nq = 4, k = 100;
    float *db = random_vecs(n, dim, 0, 26), *q = random_vecs(nq, dim, 0, 27);
    uint64_t *ids = random_ids(n, 28);
    uint64_t *allow = gs_xmalloc(n * sizeof *allow);
    size_t n_allow = 0;
    for (size_t i = 0; i < n; i++)
        if (keep_big_list(ids[i], NULL))
            allow[n_allow++] = ids[i];
    ck_assert_uint_gt(n_allow, GS_VINDEX_EXACT_MAX); // takes the over-fetch path
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    gs_vindex_filter_t f = {.ids = allow, .n_ids = n_allow};
    gs_vindex_search_opts_t so = {.filter = &f};
    float s[400], ws[400];
    uint64_t id[400], wid[400];
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
    brute(db, ids, n, dim, q, nq, k, keep_big_list, ws, wid);
    ck_assert_uint_eq(same_hits("large allow-list", s, id, ws, wid, nq, k), 0);
    gs_vindex_destroy(&v);
    gs_free(allow);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

// On an IVF index a filter can leave the probed lists short of k passing vectors: the search
// widens nprobe until k hits pass (predicate, and an allow-list too large to score exactly).
START_TEST(test_vindex_filter_on_ivf_widens_nprobe)
{
    const int dim = 8;
    const size_t n = 100000, nq = 2, k = 2000;
    float *db = random_vecs(n, dim, 50, 45), *q = random_vecs(nq, dim, 50, 46);
    uint64_t *ids = random_ids(n, 47);
    gs_vindex_t *v = new_index(dim, "IVF256,Flat", false);
    ck_assert_int_eq(gs_vindex_train(v, 20000, db), GS_OK);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    ck_assert_int_eq(gs_vindex_set_nprobe(v, 1), GS_OK);
    float *s = gs_xmalloc(nq * k * sizeof *s), *ws = gs_xmalloc(nq * k * sizeof *ws);
    uint64_t *id = gs_xmalloc(nq * k * sizeof *id), *wid = gs_xmalloc(nq * k * sizeof *wid);
    uint64_t *allow = gs_xmalloc(n * sizeof *allow);
    size_t n_allow = 0;
    for (size_t i = 0; i < n; i++)
        if (keep_big_list(ids[i], NULL))
            allow[n_allow++] = ids[i];
    for (int mode = 0; mode < 2; mode++) {
        gs_vindex_filter_t f = {.keep = mode ? NULL : keep_odd_bit,
                                .ids = mode ? allow : NULL, .n_ids = mode ? n_allow : 0};
        gs_vindex_search_opts_t so = {.filter = &f};
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
        brute(db, ids, n, dim, q, nq, k, mode ? keep_big_list : keep_odd_bit, ws, wid);
        for (size_t i = 0; i < nq * k; i++) {
            ck_assert_uint_ne(id[i], GS_VINDEX_NONE);
            ck_assert(mode ? keep_big_list(id[i], NULL) : keep_odd_bit(id[i], NULL));
        }
        double r = recall_at(id, wid, nq, k);
        fprintf(stderr, "IVF256,Flat at nprobe 1, filter %s: %zu hits per query, recall@%zu %.3f\n",
                mode ? "allow-list of 70%" : "predicate 1/3", k, k, r);
        ck_assert(r >= 0.8); // the recall of an IVF at the nprobe that holds k hits
    }
    char desc[128];
    gs_vindex_describe(v, desc, sizeof desc);
    ck_assert_ptr_nonnull(strstr(desc, "nprobe=1 ")); // restored
    gs_vindex_destroy(&v);
    gs_free(allow);
    gs_free(s);
    gs_free(ws);
    gs_free(id);
    gs_free(wid);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_k_10000)
{
    const int dim = 16;
    const size_t n = 30000, nq = 3, k = 10000;
    float *db = random_vecs(n, dim, 50, 29), *q = random_vecs(nq, dim, 50, 30);
    uint64_t *ids = random_ids(n, 31);
    float *s = gs_xmalloc(nq * k * sizeof *s), *ws = gs_xmalloc(nq * k * sizeof *ws);
    uint64_t *id = gs_xmalloc(nq * k * sizeof *id), *wid = gs_xmalloc(nq * k * sizeof *wid);
    brute(db, ids, n, dim, q, nq, k, NULL, ws, wid);
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    double t0 = now_s();
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, NULL, s, id), GS_OK);
    fprintf(stderr, "flat k=10000 over %zu: %.1f ms for %zu queries\n", n, (now_s() - t0) * 1e3, nq);
    ck_assert_uint_eq(same_hits("k=10000 flat", s, id, ws, wid, nq, k), 0);
    gs_vindex_destroy(&v);
    // IVF-PQ + refine, all lists probed: 10,000 real hits in order, nearly all the exact ones
    v = new_index(dim, "IVF64,PQ4np,RFlat", false);
    ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
    ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
    gs_vindex_search_opts_t so = {.nprobe = 64};
    t0 = now_s();
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, &so, s, id), GS_OK);
    double ms = (now_s() - t0) * 1e3;
    size_t hit = 0;
    for (size_t i = 0; i < nq * k; i++) {
        ck_assert_uint_ne(id[i], GS_VINDEX_NONE);
        if (i % k)
            ck_assert(s[i] <= s[i - 1]);
    }
    hit = (size_t)(recall_at(id, wid, nq, 100) * 1000 + 0.5);
    fprintf(stderr, "IVF64,PQ4np,RFlat k=10000: %.1f ms for %zu queries, recall@100 %.3f\n", ms, nq, hit / 1000.0);
    ck_assert_uint_ge(hit, 950);
    // at nprobe 2 the probed lists hold about 1,000 vectors: the search widens nprobe by itself
    // to return 10,000 hits, then restores it
    ck_assert_int_eq(gs_vindex_set_nprobe(v, 2), GS_OK);
    ck_assert_int_eq(gs_vindex_search(v, nq, q, k, NULL, s, id), GS_OK);
    for (size_t i = 0; i < nq * k; i++)
        ck_assert_uint_ne(id[i], GS_VINDEX_NONE);
    char desc[128];
    gs_vindex_describe(v, desc, sizeof desc);
    ck_assert_ptr_nonnull(strstr(desc, "nprobe=2 "));
    gs_vindex_destroy(&v);
    gs_free(s);
    gs_free(ws);
    gs_free(id);
    gs_free(wid);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

START_TEST(test_vindex_auto_policy)
{
    gs_vindex_auto_t a;
    gs_vindex_auto(1000, 512, 0, &a);
    ck_assert_str_eq(a.type, "Flat");
    ck_assert_uint_eq(a.n_train, 0);
    gs_vindex_auto(1000000, 512, 0, &a);
    ck_assert_str_eq(a.type, "IVF4096,PQ64np");
    ck_assert(a.refine);
    ck_assert_uint_eq(a.n_train, 204800);
    gs_vindex_auto(300000, 768, 100000, &a);
    ck_assert_str_eq(a.type, "IVF2048,PQ96np");
}
END_TEST

// ---- shards as raw vector files ---------------------------------------------------------------

START_TEST(test_vecfile_round_trip_and_commit)
{
    const char *dir = gs_test_tmpdir("vecfile");
    const int dim = 24;
    const size_t n = 700;
    float *db = random_vecs(n, dim, 0, 40);
    uint64_t *ids = random_ids(n, 41);
    char *path = gs_path_join(dir, "shard-0001.vec");
    char hash[17], hash2[17];
    ck_assert_int_eq(gs_vecfile_write(path, dim, n, ids, db, hash), GS_OK);
    ck_assert_uint_eq(strlen(hash), 16);
    ck_assert_int_eq(gs_vecfile_write(path, dim, n, ids, db, hash2), GS_OK);
    ck_assert_str_eq(hash, hash2); // deterministic: the manifest can carry it
    int rdim = 0;
    size_t rn = 0;
    uint64_t *rids = NULL;
    float *rv = NULL;
    ck_assert_int_eq(gs_vecfile_read(path, &rdim, &rn, &rids, &rv), GS_OK);
    ck_assert_int_eq(rdim, dim);
    ck_assert_uint_eq(rn, n);
    ck_assert(memcmp(rids, ids, n * 8) == 0);
    ck_assert_uint_eq(gs_test_check_close("vecfile", rv, db, n * dim, 0, 0), 0);
    // commit: add to the index; a second commit of the same shard adds nothing
    gs_vindex_t *v = new_index(dim, "Flat", false);
    ck_assert_int_eq(gs_vindex_add(v, rn, rv, rids), GS_OK);
    ck_assert_int_eq(gs_vindex_add(v, rn, rv, rids), GS_OK);
    ck_assert_uint_eq(gs_vindex_ntotal(v), n);
    gs_vindex_destroy(&v);
    gs_free(rids);
    gs_free(rv);
    // a flipped byte, a truncation and a foreign file are format errors
    char *data = NULL;
    size_t nbytes = 0;
    ck_assert_int_eq(gs_read_file(path, 1 << 24, &data, &nbytes), GS_OK);
    data[nbytes / 2] ^= 0x10;
    ck_assert_int_eq(gs_write_file_atomic(path, data, nbytes), GS_OK);
    ck_assert_int_eq(gs_vecfile_read(path, &rdim, &rn, &rids, &rv), GS_EFORMAT);
    data[nbytes / 2] ^= 0x10;
    ck_assert_int_eq(gs_write_file_atomic(path, data, nbytes - 4), GS_OK);
    ck_assert_int_eq(gs_vecfile_read(path, &rdim, &rn, &rids, &rv), GS_EFORMAT);
    ck_assert_int_eq(gs_write_file_atomic(path, "hello", 5), GS_OK);
    ck_assert_int_eq(gs_vecfile_read(path, &rdim, &rn, &rids, &rv), GS_EFORMAT);
    ck_assert_ptr_null(rids);
    // an empty shard is fine
    ck_assert_int_eq(gs_vecfile_write(path, dim, 0, NULL, NULL, NULL), GS_OK);
    ck_assert_int_eq(gs_vecfile_read(path, &rdim, &rn, &rids, &rv), GS_OK);
    ck_assert_uint_eq(rn, 0);
    gs_free(data);
    gs_free(path);
    gs_free(db);
    gs_free(ids);
}
END_TEST

// ---- threads --------------------------------------------------------------------------------

typedef struct {
    gs_vindex_t *v;
    const float *q;
    int dim;
    int n_bad;
} searcher_t;

static void *search_loop(void *arg)
{
    searcher_t *s = arg;
    float sc[20];
    uint64_t id[20];
    for (int i = 0; i < 200; i++) {
        gs_vindex_search_opts_t so = {.nprobe = 4 + (i % 3) * 4};
        if (gs_vindex_search(s->v, 2, s->q, 10, &so, sc, id) != GS_OK || id[0] == GS_VINDEX_NONE)
            s->n_bad++;
    }
    return NULL;
}

START_TEST(test_vindex_concurrent_search_and_add)
{
    const int dim = 32;
    const size_t n = 6000;
    float *db = random_vecs(n, dim, 30, 42), *q = random_vecs(2, dim, 30, 43);
    uint64_t *ids = random_ids(n, 44);
    gs_vindex_t *v = new_index(dim, "IVF16,PQ8np,RFlat", false);
    ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
    ck_assert_int_eq(gs_vindex_add(v, 1000, db, ids), GS_OK);
    searcher_t s[2] = {{v, q, dim, 0}, {v, q, dim, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, search_loop, &s[i]), 0);
    for (size_t i0 = 1000; i0 < n; i0 += 500) // adds and a removal while searches run
        ck_assert_int_eq(gs_vindex_add(v, 500, db + i0 * dim, ids + i0), GS_OK);
    ck_assert_int_eq(gs_vindex_remove(v, 10, ids, NULL), GS_OK);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(s[i].n_bad, 0);
    }
    ck_assert_uint_eq(gs_vindex_ntotal(v), n - 10);
    gs_vindex_destroy(&v);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

// ---- files for stock FAISS (tests/index_faiss_py.sh) ----------------------------------------

static void write_raw(const char *dir, const char *name, const void *p, size_t nbytes)
{
    char *path = gs_path_join(dir, name);
    ck_assert_int_eq(gs_write_file_atomic(path, p, nbytes), GS_OK);
    gs_free(path);
}

START_TEST(test_vindex_files_for_python_faiss)
{
    char *dir = gs_path_join(GS_TEST_TMP, "index_py");
    ck_assert_int_eq(gs_mkdir_p(dir), GS_OK);
    const int dim = 32;
    const size_t n = 5000, nq = 16, k = 10;
    float *db = random_vecs(n, dim, 30, 32), *q = random_vecs(nq, dim, 30, 33);
    uint64_t *ids = random_ids(n, 34);
    write_raw(dir, "queries.f32", q, nq * dim * sizeof *q);
    const char *types[2] = {"Flat", "IVF32,PQ8np,RFlat"};
    const char *names[2] = {"flat", "ivfpq_rflat"};
    for (int t = 0; t < 2; t++) {
        gs_vindex_t *v = new_index(dim, types[t], false);
        ck_assert_int_eq(gs_vindex_train(v, n, db), GS_OK);
        ck_assert_int_eq(gs_vindex_add(v, n, db, ids), GS_OK);
        ck_assert_int_eq(gs_vindex_set_nprobe(v, 8), GS_OK);
        float s[160];
        uint64_t id[160];
        ck_assert_int_eq(gs_vindex_search(v, nq, q, k, NULL, s, id), GS_OK);
        char name[64];
        snprintf(name, sizeof name, "%s.faiss", names[t]);
        char *path = gs_path_join(dir, name);
        ck_assert_int_eq(gs_vindex_write(v, path), GS_OK);
        snprintf(name, sizeof name, "%s.ids.i64", names[t]);
        write_raw(dir, name, id, sizeof id);
        snprintf(name, sizeof name, "%s.scores.f32", names[t]);
        write_raw(dir, name, s, sizeof s);
        gs_free(path);
        gs_vindex_destroy(&v);
    }
    char meta[128];
    int len = snprintf(meta, sizeof meta, "{\"dim\": %d, \"nq\": %zu, \"k\": %zu, \"ntotal\": %zu, \"nprobe\": 8}\n",
                       dim, nq, k, n);
    write_raw(dir, "meta.json", meta, (size_t)len);
    gs_free(dir);
    gs_free(db);
    gs_free(q);
    gs_free(ids);
}
END_TEST

Suite *index_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("vindex");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_vindex_flat_matches_brute_force);
    tcase_add_test(tc, test_vindex_ids_round_trip_and_add_is_idempotent);
    tcase_add_test(tc, test_vindex_remove_flat_and_ivf);
    tcase_add_test(tc, test_vindex_reconstruct_by_id);
    tcase_add_test(tc, test_vindex_write_read_round_trip);
    tcase_add_test(tc, test_vindex_bad_types_are_refused);
    tcase_add_test(tc, test_vindex_ivfpq_recall_with_and_without_refine);
    tcase_add_test(tc, test_vindex_shards_merge_with_the_trained_quantizer);
    tcase_add_test(tc, test_vindex_filter_allow_list_is_exact);
    tcase_add_test(tc, test_vindex_filter_predicate_overfetch);
    tcase_add_test(tc, test_vindex_filter_large_allow_list_overfetch);
    tcase_add_test(tc, test_vindex_filter_on_ivf_widens_nprobe);
    tcase_add_test(tc, test_vindex_k_10000);
    tcase_add_test(tc, test_vindex_auto_policy);
    tcase_add_test(tc, test_vindex_files_for_python_faiss);
    tcase_add_test(tc, test_vecfile_round_trip_and_commit);
    tcase_add_test(tc, test_vindex_concurrent_search_and_add);
    suite_add_tcase(s, tc);
    return s;
}
