// bench_query: search latency and recall of query/ at a realistic size, run by hand
// (bench/query/run.sh), never by the test suite. One JSON object per line on stdout.
//
//   bench_query build WORK N MODEL_DIR VOCAB   writes WORK/out_ivf and WORK/out_flat: N
//       synthetic clustered unit vectors (512-d) with tile, scene and caption records, indexed
//       as the "auto" type (IVF-PQ + refine at 1M) and as Flat (exact); WORK/queries.f32 (held-out
//       queries from the same distribution) and WORK/gt.i64 (their exact top-10 ids).
//   bench_query measure WORK [NQ] [NQ_BIG]     per output: open time, text encoding (the real
//       size model recorded in meta), k=10 latency with records (p50/p99) and recall@10 against
//       exact search, k=10000 with records, JSON and GeoJSON output time, a filtered search.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "index/capstore.h"
#include "index/layout.h"
#include "index/records.h"
#include "index/vindex.h"
#include "model/clip.h"
#include "query/format.h"
#include "query/search.h"

#define DIM 512
#define N_CENTERS 2000
#define N_QUERIES 1000
#define TILES_PER_SCENE 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// cpu_s: CPU seconds of the whole process (every thread): the figure that survives a shared,
// loaded machine, where wall-clock latency also counts the time other jobs hold the cores.
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, gs_err e)
{
    fprintf(stderr, "bench_query: %s: %s\n", what, gs_strerror(e));
    exit(1);
}

// ---- data -----------------------------------------------------------------------------------

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float gauss(uint64_t *s)
{
    double u = ((rng(s) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((rng(s) >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static float *g_centers; // (N_CENTERS, DIM) unit vectors

static void make_centers(void)
{
    uint64_t s = 0x5eed5eedULL;
    g_centers = gs_xmalloc((size_t)N_CENTERS * DIM * sizeof *g_centers);
    for (int c = 0; c < N_CENTERS; c++) {
        float *v = g_centers + (size_t)c * DIM;
        double n = 0;
        for (int j = 0; j < DIM; j++) {
            v[j] = gauss(&s);
            n += (double)v[j] * v[j];
        }
        for (int j = 0; j < DIM; j++)
            v[j] = (float)(v[j] / sqrt(n));
    }
}

// vector i of a stream (seed picks the stream): a cluster centre plus noise, normalised. The
// noise (norm about 0.8 of the centre's) leaves neighbours inside a cluster close in score,
// the hard case for PQ codes.
static void make_vector(uint64_t seed, size_t i, float *v)
{
    uint64_t s = seed ^ (0x9E3779B97F4A7C15ULL * (i + 1));
    for (int k = 0; k < 4; k++)
        rng(&s);
    const float *c = g_centers + (size_t)(rng(&s) % N_CENTERS) * DIM;
    double n = 0;
    for (int j = 0; j < DIM; j++) {
        v[j] = c[j] + 0.8f * gauss(&s) / sqrtf((float)DIM);
        n += (double)v[j] * v[j];
    }
    for (int j = 0; j < DIM; j++)
        v[j] = (float)(v[j] / sqrt(n));
}

static uint64_t tile_id(size_t i)
{
    return ((uint64_t)i * 0x9E3779B97F4A7C15ULL >> 1) | 1;
}

static const char *WORDS[] = {"river", "airport", "farmland", "forest", "town",   "harbor",
                              "road",  "lake",    "desert",   "beach",  "bridge", "stadium"};

// ---- build ----------------------------------------------------------------------------------

static void write_records(const char *db, size_t n, const char *model_dir, const char *vocab,
                          const char *model_id)
{
    gs_capstore_opts_t so = {.create_if_missing = true};
    gs_capstore_t *st = NULL;
    gs_err e = gs_capstore_open(db, &so, &st);
    if (e != GS_OK)
        die("open store", e);
    gs_capstore_batch_t *b = gs_capstore_batch_new(st);
    char text[128], uri[64];
    size_t n_scenes = (n + TILES_PER_SCENE - 1) / TILES_PER_SCENE;
    for (size_t s = 0; s < n_scenes; s++) {
        snprintf(uri, sizeof uri, "/archive/scene_%05zu.tif", s);
        gs_scene_rec_t r = {.scene_id = 1000 + s,
                            .uri = uri,
                            .sensor = "synthetic",
                            .time_unix = 1609459200 + (int64_t)s * 86400 / 3,
                            .time_iso = "2021-01-01T00:00:00Z",
                            .crs = "EPSG:4326",
                            .width = 10240,
                            .height = 6400,
                            .bands = "1,2,3",
                            .checksum = "synthetic"};
        if ((e = gs_capstore_batch_put_scene(b, &r)) != GS_OK)
            die("put scene", e);
    }
    for (size_t i = 0; i < n; i++) {
        size_t s = i / TILES_PER_SCENE, t = i % TILES_PER_SCENE;
        double w = -100.0 + (double)(s % 100) + (double)(t % 40) * 0.025;
        double so_ = -30.0 + (double)(s / 100) * 5.0 + (double)(t / 40) * 0.04;
        gs_tile_rec_t r = {.tile_id = tile_id(i),
                           .scene_id = 1000 + s,
                           .x = (int32_t)(t % 40) * 256,
                           .y = (int32_t)(t / 40) * 256,
                           .w = 256,
                           .h = 256,
                           .bounds = {w, so_, w + 0.025, so_ + 0.04},
                           .time_unix = 1609459200 + (int64_t)s * 86400 / 3,
                           .valid_frac = 1};
        if ((e = gs_capstore_batch_put_tile(b, &r)) != GS_OK)
            die("put tile", e);
        if (i % 3 == 0) {
            snprintf(text, sizeof text, "a %s next to a %s with a %s", WORDS[i % 12],
                     WORDS[i / 12 % 12], WORDS[i / 144 % 12]);
            gs_caption_rec_t c = {
                .tile_id = r.tile_id, .text = text, .model_id = "synthetic", .prompt = ""};
            if ((e = gs_capstore_batch_put_caption(b, &c)) != GS_OK)
                die("put caption", e);
        }
        if (gs_capstore_batch_count(b) >= 30000 || i + 1 == n) {
            if ((e = gs_capstore_write(st, b, false)) != GS_OK)
                die("write records", e);
            gs_capstore_batch_clear(b);
        }
    }
    char dim[16];
    snprintf(dim, sizeof dim, "%d", DIM);
    gs_capstore_meta_set(st, "encoder.model_id", model_id);
    gs_capstore_meta_set(st, "encoder.model", model_dir);
    gs_capstore_meta_set(st, "encoder.vocab", vocab);
    gs_capstore_meta_set(st, "encoder.dim", dim);
    gs_capstore_batch_destroy(&b);
    gs_capstore_close(&st);
}

// build_index: the index of the N vectors (type "auto" or "Flat") into path.
static void build_index(const char *path, size_t n, bool flat)
{
    gs_vindex_auto_t au;
    // BENCH_FLAT_MAX (a small value) gives a small run an IVF index too, to try the script.
    const char *fm = getenv("BENCH_FLAT_MAX");
    uint64_t flat_max = 0;
    if (fm && gs_parse_u64(fm, &flat_max) != GS_OK)
        flat_max = 0;
    gs_vindex_auto(n, DIM, (size_t)flat_max, &au);
    flat = flat || au.n_train == 0;
    gs_vindex_opts_t vo = {.dim = DIM,
                           .type = flat ? "Flat" : au.type,
                           .refine = flat ? false : au.refine,
                           .nprobe = au.nprobe};
    gs_vindex_t *vi = NULL;
    gs_err e = gs_vindex_new(&vo, &vi);
    if (e != GS_OK)
        die("new index", e);
    double t0 = now_s();
    size_t chunk = 65536;
    float *buf =
        gs_xmalloc((flat ? chunk : (au.n_train > chunk ? au.n_train : chunk)) * DIM * sizeof *buf);
    uint64_t *ids = gs_xmalloc(chunk * sizeof *ids);
    if (!flat) {
        for (size_t i = 0; i < au.n_train; i++) // a sample spread over the whole stream
            make_vector(1, (i * (n / au.n_train)) % n, buf + i * DIM);
        if ((e = gs_vindex_train(vi, au.n_train, buf)) != GS_OK)
            die("train", e);
    }
    double t1 = now_s();
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t j = 0; j < m; j++) {
            make_vector(1, i0 + j, buf + j * DIM);
            ids[j] = tile_id(i0 + j);
        }
        if ((e = gs_vindex_add(vi, m, buf, ids)) != GS_OK)
            die("add", e);
    }
    double t2 = now_s();
    if ((e = gs_vindex_write(vi, path)) != GS_OK)
        die("write index", e);
    char desc[256];
    gs_vindex_describe(vi, desc, sizeof desc);
    printf("{\"phase\":\"build\",\"index\":\"%s\",\"n\":%zu,\"n_train\":%zu,\"train_s\":%.1f,"
           "\"add_s\":%.1f,\"write_s\":%.1f}\n",
           desc, n, flat ? 0 : au.n_train, t1 - t0, t2 - t1, now_s() - t2);
    fflush(stdout);
    gs_free(buf);
    gs_free(ids);
    gs_vindex_destroy(&vi);
}

static int cmd_build(const char *work, size_t n, const char *model_dir, const char *vocab)
{
    gs_clip_opts_t co = {.vocab_path = vocab, .n_threads = 1, .max_batch = 1};
    gs_clip_t *m = NULL;
    gs_err e = gs_clip_open(model_dir, &co, &m);
    if (e != GS_OK)
        die("open model", e);
    if (gs_clip_dim(m) != DIM) {
        fprintf(stderr, "bench_query: the model embeds in %d dimensions, not %d\n", gs_clip_dim(m),
                DIM);
        return 1;
    }
    char model_id[17];
    snprintf(model_id, sizeof model_id, "%s", gs_clip_model_id(m));
    gs_clip_close(&m);
    make_centers();
    char *ivf = gs_path_join(work, "out_ivf"), *flat = gs_path_join(work, "out_flat");
    char *db = gs_path_join(ivf, GS_LAYOUT_STORE), *db2 = gs_path_join(flat, GS_LAYOUT_STORE);
    char *ip = gs_path_join(ivf, GS_LAYOUT_INDEX), *fp = gs_path_join(flat, GS_LAYOUT_INDEX);
    char *idir = gs_path_join(ivf, "index"), *fdir = gs_path_join(flat, "index");
    gs_mkdir_p(idir);
    gs_mkdir_p(fdir);
    double t0 = now_s();
    write_records(db, n, model_dir, vocab, model_id);
    printf("{\"phase\":\"build\",\"records\":%zu,\"seconds\":%.1f}\n", n, now_s() - t0);
    fflush(stdout);
    if (symlink(db, db2) != 0 && !gs_path_exists(db2)) // one record store for both outputs
        return 1;
    build_index(ip, n, false);
    build_index(fp, n, true);
    // Held-out queries and their exact top-10 (from the flat index).
    float *q = gs_xmalloc((size_t)N_QUERIES * DIM * sizeof *q);
    for (size_t i = 0; i < N_QUERIES; i++)
        make_vector(2, i, q + i * DIM);
    gs_vindex_t *vf = NULL;
    if ((e = gs_vindex_read(fp, NULL, &vf)) != GS_OK)
        die("read flat", e);
    float *sc = gs_xmalloc((size_t)N_QUERIES * 10 * sizeof *sc);
    uint64_t *gt = gs_xmalloc((size_t)N_QUERIES * 10 * sizeof *gt);
    if ((e = gs_vindex_search(vf, N_QUERIES, q, 10, NULL, sc, gt)) != GS_OK)
        die("exact search", e);
    gs_vindex_destroy(&vf);
    char *qp = gs_path_join(work, "queries.f32"), *gp = gs_path_join(work, "gt.i64");
    gs_write_file_atomic(qp, q, (size_t)N_QUERIES * DIM * sizeof *q);
    gs_write_file_atomic(gp, gt, (size_t)N_QUERIES * 10 * sizeof *gt);
    char *strs[] = {ivf, flat, db, db2, ip, fp, idir, fdir, qp, gp};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        gs_free(strs[i]);
    gs_free(q);
    gs_free(sc);
    gs_free(gt);
    gs_free(g_centers);
    return 0;
}

// ---- measure --------------------------------------------------------------------------------

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

// report: ,"<what>_p50_ms":..,"<what>_p99_ms":..,"<what>_cpu_p50_ms":..,"<what>_cpu_p99_ms":..
static void report(const char *what, double *wall, double *cpu, size_t n)
{
    printf(",\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f", what, pct(wall, n, 50) * 1e3, what,
           pct(wall, n, 99) * 1e3);
    printf(",\"%s_cpu_p50_ms\":%.3f,\"%s_cpu_p99_ms\":%.3f", what, pct(cpu, n, 50) * 1e3, what,
           pct(cpu, n, 99) * 1e3);
}

static void run(gs_search_t *s, gs_search_req_t *r, gs_arena_t *a, gs_search_result_t *res)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_arena_reset(a);
    gs_err e = gs_search_run(s, r, a, res, err, sizeof err);
    if (e != GS_OK) {
        fprintf(stderr, "bench_query: search: %s\n", err);
        exit(1);
    }
}

static void measure_one(const char *work, const char *name, size_t nq, size_t nq_big)
{
    char *dir = gs_path_join(work, name), err[GS_SEARCH_ERR_NBYTES];
    char *qp = gs_path_join(work, "queries.f32"), *gp = gs_path_join(work, "gt.i64");
    char *qd = NULL, *gd = NULL;
    size_t qn = 0, gn = 0;
    if (gs_read_file(qp, (size_t)1 << 30, &qd, &qn) != GS_OK ||
        gs_read_file(gp, (size_t)1 << 30, &gd, &gn) != GS_OK)
        die("read queries (run build first)", GS_EIO);
    const float *q = (const float *)qd;
    const uint64_t *gt = (const uint64_t *)gd;
    if (nq > qn / (DIM * sizeof(float)))
        nq = qn / (DIM * sizeof(float));
    double t0 = now_s();
    gs_search_opts_t so = {.n_threads = 1, .faiss_threads = 1, .preload = true}; // as serve
    const char *et = getenv("ENC_THREADS"); // text encoder threads (serve --threads), 1
    if (et && gs_parse_int(et, 1, 64, &so.n_threads) != GS_OK)
        so.n_threads = 1;
    const char *kf = getenv("K_FACTOR"); // the refine k_factor (default GS_SEARCH_K_FACTOR)
    double kfv = 0;
    if (kf && gs_parse_f64(kf, &kfv) == GS_OK && kfv > 0)
        so.k_factor = (float)kfv;
    gs_search_t *s = NULL;
    if (gs_search_open(dir, &so, &s, err, sizeof err) != GS_OK) {
        fprintf(stderr, "bench_query: %s\n", err);
        exit(1);
    }
    double open_s = now_s() - t0;
    char desc[256];
    gs_search_describe(s, desc, sizeof desc);
    gs_arena_t *a = gs_arena_new(1 << 22, 0);
    gs_search_result_t res;
    size_t cap = nq > 200 ? nq : 200;
    double *lat = gs_xmalloc(cap * sizeof *lat), *cpu = gs_xmalloc(cap * sizeof *cpu);
    double *enc = gs_xmalloc(200 * sizeof *enc), *fmt = gs_xmalloc(cap * sizeof *fmt);
    double *gfmt = gs_xmalloc(cap * sizeof *gfmt), *jn = gs_xmalloc(cap * sizeof *jn);
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 31);
    printf("{\"phase\":\"measure\",\"output\":\"%s\",\"index\":\"%s\",\"open_s\":%.2f", name, desc,
           open_s);
    // Text queries end to end (real-size text tower + search + records), k = 10.
    char text[128];
    for (size_t i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "a %s near a %s, seen from above %zu", WORDS[i % 12],
                 WORDS[i / 12 % 12], i);
        gs_search_req_t r = {.text = text, .k = 10};
        double t = now_s(), c = cpu_s();
        run(s, &r, a, &res);
        lat[i] = now_s() - t, cpu[i] = cpu_s() - c;
        enc[i] = res.encode_s;
    }
    report("text_k10", lat, cpu, 200);
    printf(",\"text_encode_p50_ms\":%.2f", pct(enc, 200, 50) * 1e3);
    // Vector queries k = 10 with records; recall@10 against exact search.
    size_t n_found = 0;
    for (size_t i = 0; i < nq; i++) {
        gs_search_req_t r = {.vector = q + i * DIM, .n_vector = DIM, .k = 10};
        double t = now_s(), c = cpu_s();
        run(s, &r, a, &res);
        lat[i] = now_s() - t, cpu[i] = cpu_s() - c;
        for (size_t h = 0; h < res.n_hits; h++)
            for (int g = 0; g < 10; g++)
                n_found += res.hits[h].tile_id == gt[i * 10 + g];
    }
    report("k10", lat, cpu, nq);
    printf(",\"recall_at_10\":%.4f,\"nq\":%zu", (double)n_found / (double)(nq * 10), nq);
    // A filtered search: a box of a few % of the tiles, k = 10.
    for (size_t i = 0; i < nq; i++) {
        gs_search_req_t r = {.vector = q + i * DIM,
                             .n_vector = DIM,
                             .k = 10,
                             .has_bbox = true,
                             .bbox = {-60, -30, -50, -20}};
        double t = now_s(), c = cpu_s();
        run(s, &r, a, &res);
        lat[i] = now_s() - t, cpu[i] = cpu_s() - c;
    }
    report("bbox_k10", lat, cpu, nq);
    printf(",\"bbox_candidates\":%llu", (unsigned long long)res.n_candidates);
    // k = 10,000 with records, then as JSON lines and GeoJSON.
    size_t n_big = 0;
    for (size_t i = 0; i < nq_big; i++) {
        gs_search_req_t r = {.vector = q + i * DIM, .n_vector = DIM, .k = 10000};
        double t = now_s(), c = cpu_s();
        run(s, &r, a, &res);
        lat[i] = now_s() - t, cpu[i] = cpu_s() - c;
        jn[i] = res.join_s;
        n_big = res.n_hits;
        gs_buf_reset(&b);
        t = now_s();
        gs_qfmt_results(&b, res.hits, res.n_hits, false);
        fmt[i] = now_s() - t;
        gs_buf_reset(&b);
        t = now_s();
        gs_qfmt_results(&b, res.hits, res.n_hits, true);
        gfmt[i] = now_s() - t;
    }
    report("k10000", lat, cpu, nq_big);
    printf(",\"k10000_hits\":%zu,\"k10000_records_p50_ms\":%.1f,\"k10000_json_p50_ms\":%.1f,"
           "\"k10000_geojson_p50_ms\":%.1f,\"nq_big\":%zu}\n",
           n_big, pct(jn, nq_big, 50) * 1e3, pct(fmt, nq_big, 50) * 1e3,
           pct(gfmt, nq_big, 50) * 1e3, nq_big);
    fflush(stdout);
    gs_buf_cleanup(&b);
    gs_free(fmt);
    gs_free(gfmt);
    gs_free(jn);
    gs_free(lat);
    gs_free(cpu);
    gs_free(enc);
    gs_arena_destroy(&a);
    gs_search_close(&s);
    gs_free(qd);
    gs_free(gd);
    gs_free(qp);
    gs_free(gp);
    gs_free(dir);
}

int main(int argc, char **argv)
{
    uint64_t n = 0, nq = N_QUERIES, nq_big = 50;
    if (argc >= 6 && strcmp(argv[1], "build") == 0 && gs_parse_u64(argv[3], &n) == GS_OK &&
        n >= 1000)
        return cmd_build(argv[2], (size_t)n, argv[4], argv[5]);
    if (argc >= 3 && strcmp(argv[1], "measure") == 0) {
        if (argc > 3 && gs_parse_u64(argv[3], &nq) != GS_OK)
            return 2;
        if (argc > 4 && gs_parse_u64(argv[4], &nq_big) != GS_OK)
            return 2;
        measure_one(argv[2], "out_ivf", (size_t)nq, (size_t)nq_big);
        // A flat search reads every vector (2 GB at 1M x 512) per query: fewer queries.
        const char *only = getenv("ONLY_IVF");
        if (!only || !only[0])
            measure_one(argv[2], "out_flat", nq < 100 ? (size_t)nq : 100,
                        nq_big < 10 ? nq_big : 10);
        return 0;
    }
    fprintf(stderr, "usage: bench_query build WORK N MODEL_DIR VOCAB\n"
                    "       bench_query measure WORK [NQ] [NQ_BIG]\n");
    return 2;
}
