// bench_ingest: the encoder-only peer of an ingest run. Reads the kept tiles of a job exactly
// as the ingest worker does (catalogue, scenes, windowed composite reads, valid fraction,
// preprocessing), holds their pixels in memory, then times gs_clip_encode_images alone over
// them in batches of encoder.batch with encoder.threads BLAS threads: the tiles/s an ingest
// run could reach if reading, compositing, committing and indexing cost nothing.
// Run by hand through bench/ingest/run.sh (which times the real `geoscribe ingest` of the same
// job next to it), never by the test suite. One JSON object on stdout.
//
//   bench_ingest JOB.yaml [--set key=value]... [--reps N]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "jobs/catalog.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"
#include "model/clip.h"
#include "model/preprocess.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// read_tiles: every kept tile of the job, preprocessed, into *out (n x 3 x S x S).
static size_t read_tiles(const gs_job_t *job, const gs_preprocess_cfg_t *pc, float **out,
                         double *out_seconds)
{
    gs_catalog_t cat = {0};
    char err[1024];
    if (gs_catalog_build(job, &cat, err, sizeof err) != GS_OK) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        exit(1);
    }
    size_t plane = (size_t)3 * pc->size * pc->size, n = 0, cap = 64;
    float *pix = gs_xmalloc(cap * plane * sizeof(float));
    uint8_t *rgb = gs_xmalloc((size_t)job->tiling.size * job->tiling.size * 3);
    double t0 = now_s();
    for (size_t i = 0; i < cat.n_scenes; i++) {
        gs_scene_t *s = NULL;
        gs_scene_problem_t prob;
        if (gs_scene_open(job, cat.uris[i], &s, &prob, err, sizeof err) != GS_OK)
            continue;
        const gs_scene_info_t *in = gs_scene_info(s);
        gs_tile_grid_t g;
        gs_tile_grid_init(&g, in->width, in->height, job->tiling.size, job->tiling.overlap,
                          job->tiling.edge);
        for (int r = 0; r < g.n_rows; r++)
            for (int c = 0; c < g.n_cols; c++) {
                gs_tile_t t;
                double vf = 0;
                if (gs_tile_grid_cell(&g, in->id, c, r, &t) != GS_OK ||
                    gs_tile_read_rgb8(s, &t, rgb, &vf, &prob, err, sizeof err) != GS_OK ||
                    vf < job->tiling.min_valid_fraction)
                    continue;
                if (n == cap) {
                    cap *= 2;
                    pix = gs_xrealloc(pix, cap * plane * sizeof(float));
                }
                void *scratch = gs_xmalloc(gs_preprocess_scratch_nbytes(t.w, t.h, pc->size));
                gs_preprocess_image(rgb, t.w, t.h, pc, scratch, pix + n * plane);
                gs_free(scratch);
                n++;
            }
        gs_scene_close(&s);
    }
    *out_seconds = now_s() - t0;
    gs_free(rgb);
    gs_catalog_cleanup(&cat);
    *out = pix;
    return n;
}

int main(int argc, char **argv)
{
    const char *sets[GS_JOB_MAX_SETS];
    int n_sets = 0, reps = 2;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && n_sets < GS_JOB_MAX_SETS)
            sets[n_sets++] = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            gs_parse_int(argv[++i], 1, 100, &reps);
        else
            path = argv[i];
    }
    gs_job_t *job = NULL;
    char err[2048];
    if (!path || gs_job_load(path, sets, n_sets, &job, err, sizeof err) != GS_OK) {
        fprintf(stderr, "usage: bench_ingest JOB.yaml [--set k=v]... [--reps N]\n%s\n",
                path ? err : "");
        return 2;
    }
    int threads = job->encoder.threads > 0 ? job->encoder.threads : 1;
    gs_clip_opts_t o = {.n_threads = threads, .max_batch = job->encoder.batch};
    gs_clip_t *m = NULL;
    if (gs_clip_open(job->encoder.model, &o, &m) != GS_OK)
        return 1;
    gs_preprocess_cfg_t pc = gs_clip_preprocess_cfg(m);
    float *pix = NULL;
    double read_s = 0;
    size_t n = read_tiles(job, &pc, &pix, &read_s);
    int dim = gs_clip_dim(m);
    float *vecs = gs_xmalloc((n ? n : 1) * (size_t)dim * sizeof(float));
    size_t plane = (size_t)3 * pc.size * pc.size;
    double best = 1e30, best_cpu = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        for (size_t i = 0; i < n; i += (size_t)job->encoder.batch) {
            int b = (int)(n - i < (size_t)job->encoder.batch ? n - i : (size_t)job->encoder.batch);
            gs_clip_encode_images(m, pix + i * plane, b, true, vecs + i * (size_t)dim);
        }
        double dt = now_s() - t0;
        if (dt < best) {
            best = dt;
            best_cpu = cpu_s() - c0;
        }
    }
    printf("{\"tiles\":%zu,\"batch\":%d,\"threads\":%d,\"encoder_s\":%.3f,"
           "\"encoder_tiles_per_s\":%.3f,\"encoder_cpu_s\":%.3f,\"read_preprocess_s\":%.3f}\n",
           n, job->encoder.batch, threads, best, best > 0 ? n / best : 0.0, best_cpu, read_s);
    gs_free(vecs);
    gs_free(pix);
    gs_clip_close(&m);
    gs_job_destroy(&job);
    return 0;
}
