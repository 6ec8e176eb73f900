// jobs/warp.h: pairing scenes (the latest earlier scene of the same place within a gap, or all
// consecutive pairs), the grid of a pair, and scenes warped onto a grid (GDAL warped VRT):
// a scene warped onto its own grid reads back pixel for pixel; onto a UTM grid it reads, with
// pixels outside the source invalid. Real GDAL on ../shared/data/scenes/landsat-pucallpa.
#include <math.h>
#include <stdint.h>

#include "common/alloc.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"
#include "jobs/warp.h"
#include "testutil.h"

#define PUC GS_SHARED_DIR "/data/scenes/landsat-pucallpa"
#define DAY 86400LL

static gs_job_t *job_of(const char *extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "inputs: [x.tif]\noutput: o\nencoder: {model: m}\ncomposite: {bands: [3, 2, 1]}\n"
             "tiling: {size: 128}\n%s",
             extra ? extra : "");
    gs_job_t *j = NULL;
    char err[512] = "";
    gs_err e = gs_job_parse(yaml, strlen(yaml), "t.yaml", NULL, 0, &j, err, sizeof err);
    ck_assert_msg(e == GS_OK, "%s", err);
    return j;
}

// ---- pairing --------------------------------------------------------------------------------

static void item(gs_warp_item_t *it, uint64_t id, int64_t days, double w, double s)
{
    *it =
        (gs_warp_item_t){.id = id, .has_time = 1, .time = days * DAY, .bbox = {w, s, w + 1, s + 1}};
}

START_TEST(test_changes_overlap)
{
    double a[4] = {0, 0, 2, 2}, b[4] = {1, 1, 3, 3}, c[4] = {0.5, 0.5, 1.5, 1.5},
           d[4] = {5, 5, 6, 6};
    ck_assert_double_eq_tol(gs_warp_overlap(a, b), 0.25, 1e-12);
    ck_assert_double_eq_tol(gs_warp_overlap(a, c), 1.0, 1e-12); // c inside a
    ck_assert_double_eq_tol(gs_warp_overlap(a, d), 0.0, 1e-12);
}
END_TEST

// diamond: a square turned by 45 degrees around (cx, cy), "radius" 1, as a ring of 4 * per
// points (per points on each edge) closed by repeating the first point; box into bb.
static void diamond(double cx, double cy, int per, double *ring, double bb[4])
{
    const double v[5][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}, {1, 0}};
    int n = 0;
    for (int e = 0; e < 4; e++)
        for (int k = 0; k < per; k++) {
            double t = (double)k / per;
            ring[2 * n] = cx + v[e][0] + t * (v[e + 1][0] - v[e][0]);
            ring[2 * n + 1] = cy + v[e][1] + t * (v[e + 1][1] - v[e][1]);
            n++;
        }
    ring[2 * n] = ring[0], ring[2 * n + 1] = ring[1];
    bb[0] = cx - 1, bb[1] = cy - 1, bb[2] = cx + 1, bb[3] = cy + 1;
}

START_TEST(test_changes_footprint_overlap)
{
    // two turned squares one unit apart: their boxes overlap by half, the squares by a quarter
    // (the intersection is a square of area 0.5; each diamond has area 2)
    double a[2 * 65], b[2 * 65], c[2 * 65], ba[4], bb[4], bc[4];
    diamond(0, 0, 16, a, ba);
    diamond(1, 0, 1, b, bb); // 4 corners + the closing point: the hull is the same shape
    diamond(1, 1, 16, c, bc);
    ck_assert_double_eq_tol(gs_warp_overlap(ba, bb), 0.5, 1e-12);
    ck_assert_double_eq_tol(gs_warp_footprint_overlap(a, 65, b, 5), 0.25, 1e-9);
    ck_assert_double_eq_tol(gs_warp_footprint_overlap(b, 5, a, 65), 0.25, 1e-9);
    ck_assert_double_eq_tol(gs_warp_footprint_overlap(a, 65, a, 65), 1.0, 1e-9);
    // diagonal neighbours only touch along an edge: boxes say 0.25, footprints 0
    ck_assert_double_eq_tol(gs_warp_overlap(ba, bc), 0.25, 1e-12);
    ck_assert_double_eq_tol(gs_warp_footprint_overlap(a, 65, c, 65), 0.0, 1e-9);
    // far apart, and degenerate or missing footprints
    diamond(10, 10, 4, c, bc);
    ck_assert_double_eq_tol(gs_warp_footprint_overlap(a, 65, c, 17), 0.0, 1e-12);
    ck_assert_double_eq(gs_warp_footprint_overlap(a, 2, c, 17), -1);
    ck_assert_double_eq(gs_warp_footprint_overlap(NULL, 0, c, 17), -1);
    // across the antimeridian: the boxes decide (-1)
    double am[8] = {179.5, 0, -179.5, 0, -179.5, 1, 179.5, 1};
    ck_assert_double_eq(gs_warp_footprint_overlap(am, 4, am, 4), -1);
}
END_TEST

// Pairing uses the footprints when both scenes have one: turned squares whose boxes overlap by
// half pair at min_overlap 0.4 without footprints and not with them.
START_TEST(test_changes_pairs_use_footprints)
{
    gs_job_t *j = job_of("changes: {min_overlap: 0.4}\n");
    double a[2 * 65], b[2 * 65];
    gs_warp_item_t it[2] = {{.id = 1, .has_time = 1, .time = 0},
                            {.id = 2, .has_time = 1, .time = 10 * DAY}};
    diamond(0, 0, 16, a, it[0].bbox);
    diamond(1, 0, 16, b, it[1].bbox);
    gs_warp_pair_t *p = NULL;
    size_t n = 0;
    gs_warp_pairs(j, it, 2, &p, &n);
    ck_assert_uint_eq(n, 1); // boxes only
    ck_assert_double_eq_tol(p[0].overlap, 0.5, 1e-12);
    gs_free(p);
    it[0].footprint = a, it[0].n_footprint = 65;
    it[1].footprint = b, it[1].n_footprint = 65;
    gs_warp_pairs(j, it, 2, &p, &n);
    ck_assert_uint_eq(n, 0);
    gs_free(p);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_changes_pairs_latest_within_gap)
{
    gs_job_t *j = job_of("changes: {max_gap_days: 100, min_overlap: 0.5}\n");
    gs_warp_item_t it[6];
    item(&it[0], 10, 0, 0, 0);    // place A, day 0
    item(&it[1], 11, 30, 0, 0);   // place A, day 30
    item(&it[2], 12, 60, 0.1, 0); // place A (overlap 0.9), day 60
    item(&it[3], 13, 200, 0, 0);  // place A, day 200: 140 days after day 60 -> no partner
    item(&it[4], 20, 40, 5, 5);   // place B alone
    item(&it[5], 14, 45, 0.7, 0); // overlaps A by 0.3 only: under min_overlap
    gs_warp_pair_t *p = NULL;
    size_t n = 0;
    gs_warp_pairs(j, it, 6, &p, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p[0].before, 0); // day 0 -> day 30
    ck_assert_uint_eq(p[0].after, 1);
    ck_assert_uint_eq(p[1].before, 1); // day 30 -> day 60 (not day 45: too little overlap)
    ck_assert_uint_eq(p[1].after, 2);
    ck_assert_double_eq_tol(p[1].overlap, 0.9, 1e-9);
    gs_free(p);
    // latest: scenes already paired as the later scene are not paired again
    it[1].paired = 1;
    gs_warp_pairs(j, it, 6, &p, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(p[0].after, 2);
    gs_free(p);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_changes_pairs_consecutive_backfill)
{
    gs_job_t *j = job_of("changes: {pairing: consecutive, max_gap_days: 0}\n");
    gs_warp_item_t it[3];
    item(&it[0], 1, 0, 0, 0);
    item(&it[1], 2, 1000, 0, 0);
    item(&it[2], 3, 500, 0, 0); // added later, between the two
    for (int i = 0; i < 3; i++)
        it[i].paired = 1; // consecutive ignores it
    gs_warp_pair_t *p = NULL;
    size_t n = 0;
    gs_warp_pairs(j, it, 3, &p, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p[0].before, 0); // 0 -> 500
    ck_assert_uint_eq(p[0].after, 2);
    ck_assert_uint_eq(p[1].before, 2); // 500 -> 1000
    ck_assert_uint_eq(p[1].after, 1);
    gs_free(p);
    // no time: never paired
    it[2].has_time = 0;
    gs_warp_pairs(j, it, 3, &p, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(p[0].before, 0);
    ck_assert_uint_eq(p[0].after, 1);
    gs_free(p);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_changes_spec_grid_crs_needs_crs)
{
    const char *yaml = "inputs: [x.tif]\noutput: o\nencoder: {model: m}\nchanges: {grid: crs}\n";
    gs_job_t *j = NULL;
    char err[512] = "";
    ck_assert_int_eq(gs_job_parse(yaml, strlen(yaml), "t.yaml", NULL, 0, &j, err, sizeof err),
                     GS_EINVAL);
    ck_assert_msg(strstr(err, "changes.crs") != NULL, "%s", err);
    const char *sets[] = {"changes.crs=EPSG:32718", "changes.resolution=30"};
    ck_assert_int_eq(gs_job_parse(yaml, strlen(yaml), "t.yaml", sets, 2, &j, err, sizeof err),
                     GS_OK);
    ck_assert_int_eq(j->changes.grid, GS_JOB_GRID_CRS);
    ck_assert_double_eq(j->changes.resolution, 30);
    gs_job_destroy(&j);
}
END_TEST

// ---- grids and warps ------------------------------------------------------------------------

static gs_scene_t *open_scene(const gs_job_t *j, const char *path)
{
    gs_scene_t *s = NULL;
    gs_scene_problem_t pr;
    char why[512] = "";
    gs_err e = gs_scene_open(j, path, &s, &pr, why, sizeof why);
    ck_assert_msg(e == GS_OK, "%s", why);
    return s;
}

START_TEST(test_changes_warp_onto_own_grid_is_identity)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("changes: {resampling: nearest}\n");
    gs_scene_t *a = open_scene(j, PUC "/1985.tif"), *b = open_scene(j, PUC "/1990.tif");
    gs_warp_grid_t ga, gb;
    gs_warp_grid_of(a, &ga);
    gs_warp_grid_of(b, &gb);
    ck_assert_int_eq(gs_warp_grid_equal(&ga, &gb), 1); // co-registered dates
    gs_warp_t *w = NULL;
    gs_scene_problem_t pr;
    char why[512] = "";
    gs_err e = gs_warp_open(j, PUC "/1985.tif", &gb, &w, &pr, why, sizeof why);
    ck_assert_msg(e == GS_OK, "%s", why);
    ck_assert_uint_eq(gs_warp_source(w)->id, gs_scene_info(a)->id);
    gs_warp_grid_t gw;
    gs_warp_grid_of(gs_warp_scene(w), &gw);
    ck_assert_int_eq(gs_warp_grid_equal(&gw, &ga), 1);
    gs_tile_grid_t tg;
    ck_assert_int_eq(gs_tile_grid_init(&tg, ga.width, ga.height, 128, 0, GS_JOB_EDGE_SHIFT), GS_OK);
    uint8_t *p = gs_xmalloc(128 * 128 * 3), *q = gs_xmalloc(128 * 128 * 3);
    size_t n_diff = 0;
    for (int r = 0; r < tg.n_rows; r++)
        for (int c = 0; c < tg.n_cols; c++) {
            gs_tile_t t;
            double va, vb;
            ck_assert_int_eq(gs_tile_grid_cell(&tg, 1, c, r, &t), GS_OK);
            ck_assert_int_eq(gs_tile_read_rgb8(a, &t, p, &va, &pr, why, sizeof why), GS_OK);
            ck_assert_int_eq(gs_tile_read_rgb8(gs_warp_scene(w), &t, q, &vb, &pr, why, sizeof why),
                             GS_OK);
            ck_assert_double_eq_tol(va, vb, 1e-12);
            for (size_t i = 0; i < 128 * 128 * 3; i++)
                n_diff += p[i] != q[i];
        }
    ck_assert_msg(n_diff == 0, "%zu bytes differ between the scene and its identity warp", n_diff);
    gs_free(p);
    gs_free(q);
    gs_warp_grid_cleanup(&ga);
    gs_warp_grid_cleanup(&gb);
    gs_warp_grid_cleanup(&gw);
    gs_warp_close(&w);
    ck_assert_ptr_null(w);
    gs_scene_close(&a);
    gs_scene_close(&b);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_changes_warp_onto_utm_grid)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("changes: {grid: crs, crs: \"EPSG:32718\", resolution: 120}\n");
    gs_scene_t *a = open_scene(j, PUC "/1985.tif"), *b = open_scene(j, PUC "/2020.tif");
    gs_warp_grid_t g;
    char why[512] = "";
    gs_err e = gs_warp_grid_crs(j->changes.crs, j->changes.resolution, a, b, &g, why, sizeof why);
    ck_assert_msg(e == GS_OK, "%s", why);
    // the scene is about 0.5636 x 0.3048 degrees at 8.4 S: about 62 x 34 km, so ~520 x 280 px
    ck_assert_msg(g.width > 480 && g.width < 560 && g.height > 260 && g.height < 310,
                  "grid %d x %d", g.width, g.height);
    ck_assert_double_eq(g.gt[1], 120);
    ck_assert_double_eq(fmod(g.gt[0], 120), 0);
    gs_warp_t *w = NULL;
    gs_scene_problem_t pr;
    e = gs_warp_open(j, PUC "/2020.tif", &g, &w, &pr, why, sizeof why);
    ck_assert_msg(e == GS_OK, "%s", why);
    const gs_scene_info_t *in = gs_scene_info(gs_warp_scene(w));
    ck_assert_int_eq(in->width, g.width);
    ck_assert_int_eq(in->height, g.height);
    ck_assert_ptr_nonnull(strstr(in->crs_wkt, "32718"));
    // the scene's box in lon/lat is where the source is
    ck_assert_double_eq_tol(in->bbox[0], -74.72, 0.02);
    ck_assert_double_eq_tol(in->bbox[3], -8.28, 0.02);
    // a tile in the middle is valid, every pixel of it
    gs_tile_grid_t tg;
    ck_assert_int_eq(gs_tile_grid_init(&tg, g.width, g.height, 128, 0, GS_JOB_EDGE_SHIFT), GS_OK);
    gs_tile_t t;
    ck_assert_int_eq(gs_tile_grid_cell(&tg, 1, tg.n_cols / 2, tg.n_rows / 2, &t), GS_OK);
    uint8_t *p = gs_xmalloc(128 * 128 * 3);
    double vf = 0;
    e = gs_tile_read_rgb8(gs_warp_scene(w), &t, p, &vf, &pr, why, sizeof why);
    ck_assert_msg(e == GS_OK, "%s", why);
    ck_assert_double_eq_tol(vf, 1.0, 1e-9);
    size_t nonzero = 0;
    for (size_t i = 0; i < 128 * 128 * 3; i++)
        nonzero += p[i] != 0;
    ck_assert_uint_gt(nonzero, 128 * 128);
    gs_free(p);
    gs_warp_close(&w);
    gs_warp_grid_cleanup(&g);
    // a CRS GDAL does not know
    e = gs_warp_grid_crs("EPSG:999999", 30, a, b, &g, why, sizeof why);
    ck_assert_int_eq(e, GS_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "EPSG:999999"));
    gs_scene_close(&a);
    gs_scene_close(&b);
    gs_job_destroy(&j);
}
END_TEST

Suite *changes_warp_suite(void)
{
    Suite *s = suite_create("changes_warp");
    TCase *tc = tcase_create("pairs");
    tcase_add_test(tc, test_changes_overlap);
    tcase_add_test(tc, test_changes_footprint_overlap);
    tcase_add_test(tc, test_changes_pairs_use_footprints);
    tcase_add_test(tc, test_changes_pairs_latest_within_gap);
    tcase_add_test(tc, test_changes_pairs_consecutive_backfill);
    tcase_add_test(tc, test_changes_spec_grid_crs_needs_crs);
    suite_add_tcase(s, tc);
    tc = tcase_create("warp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_changes_warp_onto_own_grid_is_identity);
    tcase_add_test(tc, test_changes_warp_onto_utm_grid);
    suite_add_tcase(s, tc);
    return s;
}
