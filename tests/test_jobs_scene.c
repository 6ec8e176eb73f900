// jobs/: scenes from real data in ../shared/data (rasterio GeoTIFFs, Landsat 8 band files,
// BigEarthNet Sentinel-2 and Sentinel-1 patches): footprints against gdalinfo, multi-file
// grouping, composites against plain GDAL reads with the documented scaling, and the scene
// catalogue over globs, directories, list files and /vsizip/ paths.
#include <check.h>
#include <cpl_conv.h>
#include <dirent.h>
#include <gdal.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "jobs/acqtime.h"
#include "jobs/catalog.h"
#include "jobs/raster.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/thumb.h"
#include "jobs/tiles.h"
#include "testutil.h"

static const char *data(const char *rel)
{
    static char p[4][4300];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/data/%s", gs_test_shared(), rel);
    return p[k];
}

static gs_job_t *job_of(const char *extra_yaml)
{
    char y[9000];
    snprintf(y, sizeof y, "inputs: [x]\noutput: o\nencoder: {model: m}\n%s", extra_yaml);
    gs_job_t *j = NULL;
    char err[512] = "";
    ck_assert_msg(gs_job_parse(y, strlen(y), "test.yaml", NULL, 0, &j, err, sizeof err) == GS_OK,
                  "%s", err);
    return j;
}

static gs_scene_t *open_ok(const gs_job_t *j, const char *uri)
{
    gs_scene_t *sc = NULL;
    gs_scene_problem_t p = GS_SCENE_OK;
    char why[1024] = "";
    gs_err e = gs_scene_open(j, uri, &sc, &p, why, sizeof why);
    if (e == GS_OK)
        e = gs_scene_check(sc, &p, why, sizeof why);
    ck_assert_msg(e == GS_OK, "open \"%s\": %s [%s]", uri, why, gs_scene_problem_name(p));
    return sc;
}

// ---- footprints ---------------------------------------------------------------------------

START_TEST(test_scene_rgb_byte_footprint_matches_gdalinfo)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("");
    gs_scene_t *sc = open_ok(j, data("scenes/rasterio/RGB.byte.tif"));
    const gs_scene_info_t *in = gs_scene_info(sc);
    ck_assert_int_eq(in->width, 791);
    ck_assert_int_eq(in->height, 718);
    ck_assert_int_eq(in->n_bands, 3);
    ck_assert_str_eq(in->dtype, "Byte");
    ck_assert_int_eq(in->has_nodata, 1);
    ck_assert_double_eq(in->nodata, 0);
    ck_assert_ptr_nonnull(strstr(in->crs_wkt, "UTM zone 18N"));
    ck_assert_double_eq(in->geotransform[0], 101985.0);
    // `gdalinfo -json RGB.byte.tif`, wgs84Extent (GDAL 3.6.2): its corners in lon/lat
    //   UL -78.95865 25.5060874  LL -78.8981334 23.5649912  LR -76.5749237 23.605947
    //   UR -76.5994383 25.5508738
    ck_assert_double_eq_tol(in->bbox[0], -78.95865, 1e-5);
    ck_assert_double_eq_tol(in->bbox[1], 23.5649912, 1e-5);
    ck_assert_double_eq_tol(in->bbox[2], -76.5749237, 1e-5);
    ck_assert_double_eq_tol(in->bbox[3], 25.5508738, 1e-5);
    // the ring starts at the upper-left corner, passes through the others, and is closed
    ck_assert_int_eq(in->n_footprint, 65);
    const double *f = in->footprint;
    ck_assert_double_eq_tol(f[0], -78.95865, 1e-6);
    ck_assert_double_eq_tol(f[1], 25.5060874, 1e-6);
    ck_assert_double_eq_tol(f[2 * 16], -76.5994383, 1e-6);
    ck_assert_double_eq_tol(f[2 * 16 + 1], 25.5508738, 1e-6);
    ck_assert_double_eq_tol(f[2 * 32], -76.5749237, 1e-6);
    ck_assert_double_eq_tol(f[2 * 48 + 1], 23.5649912, 1e-6);
    ck_assert_double_eq(f[2 * 64], f[0]);
    // the densified top edge is not the straight line between its corners in lon/lat
    double mid_lat_straight = (25.5060874 + 25.5508738) / 2;
    ck_assert_double_gt(fabs(f[2 * 8 + 1] - mid_lat_straight), 1e-4);
    // tile bounds of the whole grid = the scene bbox
    gs_tile_t t = {.id = 1, .x = 0, .y = 0, .w = 791, .h = 718};
    double bb[4];
    ck_assert_int_eq(gs_tile_bounds(sc, &t, bb), GS_OK);
    for (int k = 0; k < 4; k++)
        ck_assert_double_eq_tol(bb[k], in->bbox[k], 1e-3);
    // the same file by another path is the same scene
    char rel[4400];
    snprintf(rel, sizeof rel, "%s/data/scenes/rasterio/../rasterio/./RGB.byte.tif",
             gs_test_shared());
    gs_scene_t *sc2 = open_ok(j, rel);
    ck_assert_str_eq(gs_scene_info(sc2)->uri, in->uri);
    ck_assert_uint_eq(gs_scene_info(sc2)->id, in->id);
    ck_assert_uint_eq(gs_scene_info(sc2)->checksum, in->checksum);
    gs_scene_close(&sc2);
    gs_scene_close(&sc);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_scene_geostationary_and_cog)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("");
    // goes.tif: the corners of the full disk are in space; the bbox comes from the points that
    // map, and tiles in space have no bounds
    gs_scene_t *sc = open_ok(j, data("scenes/rasterio/goes.tif"));
    const gs_scene_info_t *in = gs_scene_info(sc);
    ck_assert_int_eq(in->n_footprint, 5);
    ck_assert(in->bbox[0] >= -180 && in->bbox[2] <= 180 && in->bbox[0] < in->bbox[2]);
    ck_assert(in->bbox[1] > -90 && in->bbox[3] < 90 && in->bbox[1] < in->bbox[3]);
    gs_tile_t corner = {.id = 1, .x = 0, .y = 0, .w = 16, .h = 16};
    double bb[4];
    ck_assert_int_eq(gs_tile_bounds(sc, &corner, bb), GS_ENOTFOUND);
    gs_scene_close(&sc);
    // cogeo.tif: a COG in EPSG:3857 with overviews and a mask
    sc = open_ok(j, data("scenes/rasterio/cogeo.tif"));
    in = gs_scene_info(sc);
    ck_assert_int_eq(in->width, 1024);
    ck_assert(in->bbox[0] > 128.6 && in->bbox[2] < 128.7 && in->bbox[1] > 37.6 &&
              in->bbox[3] < 37.7);
    gs_scene_close(&sc);
    gs_job_destroy(&j);
}
END_TEST

// ---- multi-file scenes --------------------------------------------------------------------

START_TEST(test_scene_landsat_band_files_group_into_scenes)
{
    GS_NEED_SHARED();
    char y[4096];
    snprintf(y, sizeof y,
             "scenes: {group: '{scene}_B{band}.TIF'}\n"
             "composite: {bands: [4, 3, 2]}\n");
    gs_job_t *j = job_of(y);
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(data("scenes/landsat8-rio-tiler"));
    gs_catalog_t cat;
    char err[1024] = "";
    ck_assert_msg(gs_catalog_build(j, &cat, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(cat.n_scenes, 1);
    ck_assert_uint_eq(cat.n_files, 12); // B1..B11 + BQA (.txt is not an extension taken)
    const char *u = cat.uris[0];
    ck_assert_ptr_nonnull(strstr(u, "/LC08_L1TP_016037_20170813_20170814_01_RT_B{band}.TIF#"
                                    "1,2,3,4,5,6,7,8,9,10,11,QA"));
    ck_assert_int_eq(u[0], '/');
    gs_scene_t *sc = open_ok(j, u);
    const gs_scene_info_t *in = gs_scene_info(sc);
    ck_assert_int_eq(in->n_bands, 12);
    ck_assert_str_eq(in->band_names[9], "10");
    ck_assert_int_eq(in->width, 255);
    ck_assert_int_eq(in->height, 259);
    ck_assert_int_eq(in->composite_bands[0], 3); // "4"
    ck_assert_str_eq(in->dtype, "UInt16");
    // time from the MTL file next to the bands
    char ts[32];
    ck_assert_int_eq(in->has_time, 1);
    gs_acqtime_format(in->time, ts, sizeof ts);
    ck_assert_str_eq(ts, "2017-08-13T15:54:15Z");
    ck_assert_str_eq(in->time_source, "mtl");
    ck_assert_uint_eq(in->id, gs_scene_id_of(u));
    gs_scene_close(&sc);
    gs_catalog_cleanup(&cat);
    // the other Landsat set: two scenes of three band files each, lower-case .tif
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(data("scenes/landsat8-rio-pansharpen"));
    gs_free(j->scenes.group);
    j->scenes.group = gs_xstrdup("{scene}_B{band}.tif");
    ck_assert_msg(gs_catalog_build(j, &cat, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(cat.n_scenes, 2);
    ck_assert_ptr_nonnull(strstr(cat.uris[0], "LC81070352015122LGN00_B{band}.tif#2,3,4"));
    ck_assert_ptr_nonnull(strstr(cat.uris[1], "LC81210442015044LGN00_B{band}.tif#2,3,4"));
    // a band the group lacks is a layout problem with the bands listed
    gs_job_t *j8 = job_of("composite: {bands: [8, 3, 2]}\n");
    gs_scene_t *bad = NULL;
    gs_scene_problem_t p;
    ck_assert_int_eq(gs_scene_open(j8, cat.uris[0], &bad, &p, err, sizeof err), GS_EFORMAT);
    ck_assert_int_eq(p, GS_SCENE_LAYOUT);
    ck_assert_msg(strstr(err, "has no band \"8\" (its bands: 2, 3, 4)"), "%s", err);
    gs_job_destroy(&j8);
    gs_catalog_cleanup(&cat);
    gs_job_destroy(&j);
}
END_TEST

// ---- composites against GDAL --------------------------------------------------------------

static float *gdal_band(const char *path, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "%s", path);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    float *v = gs_xmalloc(sizeof *v * (size_t)*w * (size_t)*h);
    ck_assert_int_eq(
        GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, *w, *h, v, *w, *h, GDT_Float32, 0, 0),
        CE_None);
    GDALClose(ds);
    return v;
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// numpy.percentile (linear) of the values where valid[i]
static double pct(const float *v, const uint8_t *valid, size_t n, double p)
{
    float *s = gs_xmalloc(n * sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (valid[i])
            s[m++] = v[i];
    qsort(s, m, sizeof *s, cmp_f);
    double pos = p / 100 * (double)(m - 1);
    size_t k = (size_t)floor(pos);
    double r = k + 1 < m ? s[k] + (pos - (double)k) * ((double)s[k + 1] - s[k]) : s[m - 1];
    gs_free(s);
    return r;
}

static int scale8(double v, double lo, double hi)
{
    double q = floor((v - lo) * (255.0 / (hi - lo)) + 0.5);
    return q < 0 ? 0 : q > 255 ? 255 : (int)q;
}

// compare_tile: reads the scene's single whole-scene tile and checks every channel against
// want[c] (n values), printing the first mismatches.
static void compare_tile(gs_scene_t *sc, int *const *want, double want_valid)
{
    const gs_scene_info_t *in = gs_scene_info(sc);
    gs_tile_t t = {.id = 1, .x = 0, .y = 0, .w = in->width, .h = in->height};
    size_t n = (size_t)t.w * (size_t)t.h;
    uint8_t *rgb = gs_xmalloc(3 * n);
    double vf = -1;
    char why[512] = "";
    ck_assert_msg(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, why, sizeof why) == GS_OK, "%s", why);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            if (rgb[3 * i + (size_t)c] != want[c][i] && bad++ < 5)
                fprintf(stderr, "px %zu ch %d: got %d want %d\n", i, c, rgb[3 * i + (size_t)c],
                        want[c][i]);
    ck_assert_msg(bad == 0, "%zu of %zu values differ", bad, 3 * n);
    ck_assert_double_eq_tol(vf, want_valid, 1e-12);
    gs_free(rgb);
}

// rgb_expect: three bands -> expected 8-bit channels with per-channel percentile or fixed
// range scaling; pixels 0 in all three bands are fill (the files have no nodata).
static double rgb_expect(float *const *b, size_t n, const double *range, int **want)
{
    uint8_t *valid = gs_xmalloc(n);
    size_t n_valid = 0;
    for (size_t i = 0; i < n; i++) {
        valid[i] = b[0][i] != 0 || b[1][i] != 0 || b[2][i] != 0;
        n_valid += valid[i];
    }
    for (int c = 0; c < 3; c++) {
        double lo = range ? range[2 * c] : pct(b[c], valid, n, 2);
        double hi = range ? range[2 * c + 1] : pct(b[c], valid, n, 98);
        want[c] = gs_xmalloc(n * sizeof(int));
        for (size_t i = 0; i < n; i++)
            want[c][i] = valid[i] ? scale8(b[c][i], lo, hi) : 0;
    }
    gs_free(valid);
    return (double)n_valid / (double)n;
}

static void check_group_rgb(const char *dir, const char *group, const char *bands_yaml,
                            const char *const *files, const double *range)
{
    char y[1024];
    snprintf(y, sizeof y, "scenes: {group: '%s'}\ncomposite: {bands: %s%s}\n", group, bands_yaml,
             range ? ", scaling: range, range: [0, 3000]" : "");
    gs_job_t *j = job_of(y);
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(dir);
    gs_catalog_t cat;
    char err[1024] = "";
    ck_assert_msg(gs_catalog_build(j, &cat, err, sizeof err) == GS_OK, "%s", err);
    gs_scene_t *sc = open_ok(j, cat.uris[0]);
    int w, h;
    float *b[3];
    for (int c = 0; c < 3; c++)
        b[c] = gdal_band(files[c], &w, &h);
    ck_assert_int_eq(w, gs_scene_info(sc)->width);
    int *want[3];
    double valid = rgb_expect(b, (size_t)w * (size_t)h, range, want);
    compare_tile(sc, want, valid);
    for (int c = 0; c < 3; c++) {
        gs_free(b[c]);
        gs_free(want[c]);
    }
    gs_scene_close(&sc);
    gs_catalog_cleanup(&cat);
    gs_job_destroy(&j);
}

START_TEST(test_composite_landsat_true_colour_percentile)
{
    GS_NEED_SHARED();
    const char *d = "scenes/landsat8-rio-tiler/LC08_L1TP_016037_20170813_20170814_01_RT/"
                    "LC08_L1TP_016037_20170813_20170814_01_RT_B";
    char f[3][4400];
    for (int c = 0; c < 3; c++)
        snprintf(f[c], sizeof f[c], "%s%d.TIF", data(d), 4 - c);
    const char *files[3] = {f[0], f[1], f[2]};
    check_group_rgb(data("scenes/landsat8-rio-tiler"), "{scene}_B{band}.TIF", "[4, 3, 2]", files,
                    NULL);
}
END_TEST

// Thumbnails (jobs/thumb.h) of a multi-file Landsat scene show the job's composite: at full
// size the PNG holds exactly the tile's pixels; shrunk, the box averages of them. The raw
// chip of the group's first file (band 1, grey) differs.
START_TEST(test_thumb_renders_the_job_composite)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("scenes: {group: '{scene}_B{band}.TIF'}\ncomposite: {bands: [4, 3, 2]}\n");
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(data("scenes/landsat8-rio-tiler"));
    gs_catalog_t cat;
    char err[1024] = "";
    ck_assert_msg(gs_catalog_build(j, &cat, err, sizeof err) == GS_OK, "%s", err);
    const char *u = cat.uris[0];
    gs_scene_t *sc = open_ok(j, u);
    gs_tile_t t = {.x = 64, .y = 32, .w = 128, .h = 128};
    uint8_t *want = gs_xmalloc(128 * 128 * 3);
    double valid = 0;
    gs_scene_problem_t pr;
    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, want, &valid, &pr, err, sizeof err), GS_OK);
    char png[4400];
    snprintf(png, sizeof png, "%s/thumb.png", gs_test_tmpdir("thumb"));
    // full size: pixel for pixel
    ck_assert_msg(gs_thumb_render(j, u, 64, 32, 128, 128, 256, png, err, sizeof err) == GS_OK,
                  "%s", err);
    uint8_t *got = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(png, &got, &w, &h), GS_OK);
    ck_assert_int_eq(w, 128);
    ck_assert_int_eq(h, 128);
    ck_assert_int_eq(memcmp(got, want, 128 * 128 * 3), 0);
    gs_free(got);
    // shrunk 4x: each pixel the rounded mean of a 4x4 block
    ck_assert_int_eq(gs_thumb_render(j, u, 64, 32, 128, 128, 32, png, err, sizeof err), GS_OK);
    ck_assert_int_eq(gs_raster_read_rgb8(png, &got, &w, &h), GS_OK);
    ck_assert_int_eq(w, 32);
    ck_assert_int_eq(h, 32);
    int bad = 0;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++) {
                unsigned sum = 0;
                for (int dy = 0; dy < 4; dy++)
                    for (int dx = 0; dx < 4; dx++)
                        sum += want[((size_t)(4 * y + dy) * 128 + 4 * x + dx) * 3 + c];
                bad += got[((size_t)y * 32 + x) * 3 + c] != (sum + 8) / 16;
            }
    ck_assert_int_eq(bad, 0);
    gs_free(got);
    // the old chip of the raw group (its first file) is not the composite
    char raw[4400];
    snprintf(raw, sizeof raw, "%sscenes/landsat8-rio-tiler/LC08_L1TP_016037_20170813_20170814_01_RT/"
             "LC08_L1TP_016037_20170813_20170814_01_RT_B1.TIF", data(""));
    ck_assert_int_eq(gs_raster_write_png_chip(raw, 64, 32, 128, 128, 256, png), GS_OK);
    ck_assert_int_eq(gs_raster_read_rgb8(png, &got, &w, &h), GS_OK);
    ck_assert_int_ne(memcmp(got, want, 128 * 128 * 3), 0);
    gs_free(got);
    // a window past the edge is clipped; one outside the scene is refused with a reason
    ck_assert_int_eq(gs_thumb_render(j, u, 200, 200, 128, 128, 256, png, err, sizeof err), GS_OK);
    ck_assert_int_eq(gs_raster_read_rgb8(png, &got, &w, &h), GS_OK);
    ck_assert_int_eq(w, 55);
    ck_assert_int_eq(h, 59);
    gs_free(got);
    ck_assert_int_eq(gs_thumb_render(j, u, 900, 900, 16, 16, 256, png, err, sizeof err), GS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "outside"));
    unlink(png);
    gs_free(want);
    gs_scene_close(&sc);
    gs_catalog_cleanup(&cat);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_composite_bigearthnet_s2_true_and_false_colour)
{
    GS_NEED_SHARED();
    const char *dir =
        "bigearthnet-examples/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48";
    char f[3][4400];
    const char *tc[3] = {"B04", "B03", "B02"}, *fc[3] = {"B08", "B04", "B03"};
    const char *files[3] = {f[0], f[1], f[2]};
    // true colour, percentile 2-98 per channel over the scene
    for (int c = 0; c < 3; c++)
        snprintf(f[c], sizeof f[c], "%s/S2A_MSIL2A_20170613T101031_87_48_%s.tif", data(dir), tc[c]);
    check_group_rgb(data(dir), "{scene}_B{band}.tif", "[B04, B03, B02]", files, NULL);
    // false colour NIR-R-G, fixed range 0..3000
    for (int c = 0; c < 3; c++)
        snprintf(f[c], sizeof f[c], "%s/S2A_MSIL2A_20170613T101031_87_48_%s.tif", data(dir), fc[c]);
    static const double range[6] = {0, 3000, 0, 3000, 0, 3000};
    check_group_rgb(data(dir), "{scene}_B{band}.tif", "[B08, B04, B03]", files, range);
}
END_TEST

START_TEST(test_composite_bigearthnet_s2_resamples_coarser_bands)
{
    GS_NEED_SHARED();
    // B8A (20 m, 60x60) with B04, B03 (10 m): the scene grid is 120x120 and B8A is resampled
    gs_job_t *j = job_of("scenes: {group: '{scene}_B{band}.tif'}\n"
                         "composite: {bands: [8A, 4, 3], scaling: range, range: [0, 4000]}\n");
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(
        data("bigearthnet-examples/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48"));
    gs_catalog_t cat;
    char err[512];
    ck_assert_int_eq(gs_catalog_build(j, &cat, err, sizeof err), GS_OK);
    gs_scene_t *sc = open_ok(j, cat.uris[0]);
    ck_assert_int_eq(gs_scene_info(sc)->width, 120);
    gs_tile_t t = {.id = 1, .x = 0, .y = 0, .w = 120, .h = 120};
    uint8_t *rgb = gs_xmalloc(3 * 120 * 120);
    double vf;
    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
    // each 20 m pixel covers 2x2 output pixels: their mean stays near the 20 m value
    int w, h;
    char path[4400];
    snprintf(path, sizeof path, "%s/S2A_MSIL2A_20170613T101031_87_48_B8A.tif",
             data("bigearthnet-examples/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48"));
    float *b8a = gdal_band(path, &w, &h);
    ck_assert_int_eq(w, 60);
    double err_sum = 0;
    for (int y = 10; y < 50; y++)
        for (int x = 10; x < 50; x++) {
            double m = 0;
            for (int k = 0; k < 4; k++)
                m += rgb[3 * ((2 * y + k / 2) * 120 + 2 * x + k % 2)];
            err_sum += fabs(m / 4 - scale8(b8a[y * 60 + x], 0, 4000));
        }
    ck_assert_msg(err_sum / 1600 < 3.0, "mean |resampled - 20 m| = %g levels", err_sum / 1600);
    gs_free(b8a);
    gs_free(rgb);
    gs_scene_close(&sc);
    gs_catalog_cleanup(&cat);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_composite_bigearthnet_s1_sar_pseudo_rgb)
{
    GS_NEED_SHARED();
    const char *dir =
        "bigearthnet-examples/BigEarthNet-S1-Example/S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38";
    gs_job_t *j = job_of("scenes: {group: '{scene}_{band}.tif'}\n"
                         "composite: {mode: sar, bands: [VV, VH], scaling: range,\n"
                         "            range: [-25, 0, -32, -5, 0, 15]}\n");
    gs_free(j->inputs[0]);
    j->inputs[0] = gs_xstrdup(data(dir));
    gs_catalog_t cat;
    char err[512];
    ck_assert_int_eq(gs_catalog_build(j, &cat, err, sizeof err), GS_OK);
    ck_assert_ptr_nonnull(strstr(cat.uris[0], "_{band}.tif#VH,VV"));
    gs_scene_t *sc = open_ok(j, cat.uris[0]);
    char vvp[4400], vhp[4400];
    snprintf(vvp, sizeof vvp, "%s/S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38_VV.tif", data(dir));
    snprintf(vhp, sizeof vhp, "%s/S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38_VH.tif", data(dir));
    int w, h;
    float *vv = gdal_band(vvp, &w, &h), *vh = gdal_band(vhp, &w, &h);
    size_t n = (size_t)w * (size_t)h;
    int *want[3];
    for (int c = 0; c < 3; c++)
        want[c] = gs_xmalloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) { // the bands are dB already: R = VV, G = VH, B = VV - VH
        want[0][i] = scale8(vv[i], -25, 0);
        want[1][i] = scale8(vh[i], -32, -5);
        want[2][i] = scale8((double)(vv[i] - vh[i]), 0, 15);
    }
    compare_tile(sc, want, 1.0);
    for (int c = 0; c < 3; c++)
        gs_free(want[c]);
    gs_free(vv);
    gs_free(vh);
    gs_scene_close(&sc);
    gs_catalog_cleanup(&cat);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_scene_time_from_file_name_pattern)
{
    GS_NEED_SHARED();
    gs_job_t *j = job_of("time: {from: filename, pattern: '%Y.tif'}\n");
    gs_scene_t *sc = open_ok(j, data("scenes/landsat-pucallpa/1985.tif"));
    char ts[32];
    gs_acqtime_format(gs_scene_info(sc)->time, ts, sizeof ts);
    ck_assert_str_eq(ts, "1985-01-01T00:00:00Z");
    ck_assert_int_eq(gs_scene_info(sc)->n_bands, 4);
    ck_assert_int_eq(gs_scene_info(sc)->n_composite_bands, 3);
    gs_scene_close(&sc);
    gs_job_destroy(&j);
}
END_TEST

// ---- catalogue ----------------------------------------------------------------------------

static char root[4096];

static void touch(const char *rel)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "%s", p);
    fclose(f);
}

static void tree_setup(void)
{
    const char *d = gs_test_tmpdir("jobs_catalog");
    ck_assert_ptr_nonnull(d);
    snprintf(root, sizeof root, "%s", d);
    char cmd[13000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/a/b/c' '%s/a/.hidden' '%s/z'", root, root, root);
    ck_assert_int_eq(system(cmd), 0);
    touch("a/one.tif");
    touch("a/two.TIFF");
    touch("a/notes.txt");
    touch("a/b/three.tif");
    touch("a/b/c/four.tif");
    touch("a/.hidden/five.tif");
    touch("a/.six.tif");
    touch("z/S_B1.tif");
    touch("z/S_B2.tif");
    touch("z/T_B10.tif");
    touch("z/T_B9.tif");
    touch("z/T_MTL.txt");
    gs_raster_init();
}

static gs_err build_in(const char *inputs_yaml, const char *extra, gs_catalog_t *cat, char *err,
                       size_t n)
{
    char y[8192];
    snprintf(y, sizeof y, "inputs: %s\noutput: o\nencoder: {model: m}\n%s", inputs_yaml, extra);
    gs_job_t *j = NULL;
    ck_assert_msg(gs_job_parse(y, strlen(y), "test.yaml", NULL, 0, &j, err, n) == GS_OK, "%s", err);
    gs_err e = gs_catalog_build(j, cat, err, n);
    gs_job_destroy(&j);
    return e;
}

static int has_suffix(const gs_catalog_t *c, const char *suffix)
{
    for (size_t i = 0; i < c->n_scenes; i++) {
        size_t n = strlen(c->uris[i]), m = strlen(suffix);
        if (n >= m && !strcmp(c->uris[i] + n - m, suffix))
            return 1;
    }
    return 0;
}

START_TEST(test_catalog_dirs_globs_lists_and_dedup)
{
    ck_assert_int_eq(chdir(root), 0); // relative inputs are relative to the current directory
    gs_catalog_t c;
    char err[1024] = "";
    // a directory: recursive, by extension (case-insensitive), hidden entries skipped
    ck_assert_msg(build_in("[a]", "", &c, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(c.n_scenes, 4);
    ck_assert(has_suffix(&c, "/a/one.tif") && has_suffix(&c, "/a/two.TIFF") &&
              has_suffix(&c, "/a/b/c/four.tif"));
    ck_assert(!has_suffix(&c, "five.tif") && !has_suffix(&c, ".six.tif"));
    ck_assert_int_eq(c.uris[0][0], '/'); // canonical: absolute
    for (size_t i = 1; i < c.n_scenes; i++)
        ck_assert_int_lt(strcmp(c.uris[i - 1], c.uris[i]), 0); // sorted, unique
    gs_catalog_cleanup(&c);
    // globs: one level, then ** at any depth; the same file twice is one scene
    ck_assert_int_eq(build_in("['a/*.tif', 'a/**/*.tif', './a/one.tif']", "", &c, err, sizeof err),
                     GS_OK);
    ck_assert_uint_eq(c.n_scenes, 3); // one, three, four
    ck_assert(has_suffix(&c, "/a/b/three.tif"));
    gs_catalog_cleanup(&c);
    // a list file, with comments and blank lines, naming a glob and a file
    FILE *f = fopen("list.txt", "w");
    fputs("# scenes\n\na/b/*.tif\n  z/S_B1.tif  \n", f);
    fclose(f);
    ck_assert_int_eq(build_in("['@list.txt']", "", &c, err, sizeof err), GS_OK);
    ck_assert_uint_eq(c.n_scenes, 2);
    gs_catalog_cleanup(&c);
    // extensions from the spec
    ck_assert_int_eq(build_in("[a]", "scenes: {extensions: [txt]}\n", &c, err, sizeof err), GS_OK);
    ck_assert_uint_eq(c.n_scenes, 1);
    gs_catalog_cleanup(&c);
    // group: band files of one scene, natural band order; non-matching files are ignored
    ck_assert_int_eq(build_in("[z]",
                              "scenes: {group: '{scene}_B{band}.tif', extensions: [tif, txt]}\n",
                              &c, err, sizeof err),
                     GS_OK);
    ck_assert_uint_eq(c.n_scenes, 2);
    ck_assert_uint_eq(c.n_files, 5);
    ck_assert_uint_eq(c.n_ignored, 1);
    ck_assert(has_suffix(&c, "/z/S_B{band}.tif#1,2") && has_suffix(&c, "/z/T_B{band}.tif#9,10"));
    gs_catalog_cleanup(&c);
}
END_TEST

START_TEST(test_catalog_inputs_that_name_nothing_are_errors)
{
    ck_assert_int_eq(chdir(root), 0);
    gs_catalog_t c;
    char err[1024] = "";
    ck_assert_int_eq(build_in("[nope.tif]", "", &c, err, sizeof err), GS_ENOTFOUND);
    ck_assert_str_eq(err, "input \"nope.tif\": no such file or directory");
    ck_assert_int_eq(build_in("['a/*.jp2']", "", &c, err, sizeof err), GS_ENOTFOUND);
    ck_assert_str_eq(err, "input \"a/*.jp2\" matches no file");
    ck_assert_int_eq(build_in("['@missing.txt']", "", &c, err, sizeof err), GS_EIO);
    ck_assert_str_eq(err, "could not read list file \"missing.txt\"");
    ck_assert_int_eq(
        build_in("[z]", "scenes: {group: '{scene}-{band}.tif'}\n", &c, err, sizeof err),
        GS_ENOTFOUND);
    ck_assert_msg(strstr(err, "no scene"), "%s", err);
    ck_assert_uint_eq(c.n_scenes, 0);
    ck_assert_ptr_null(c.uris);
    // list files that include themselves stop at the nesting limit
    FILE *f = fopen("loop.txt", "w");
    fputs("@loop.txt\n", f);
    fclose(f);
    ck_assert_int_eq(build_in("['@loop.txt']", "", &c, err, sizeof err), GS_ETOOBIG);
}
END_TEST

START_TEST(test_catalog_and_scene_through_vsizip)
{
    GS_NEED_SHARED();
    // a zip holding a real GeoTIFF: scenes inside archives are read through GDAL's /vsizip/
    char zip[4400], vsi[4500];
    snprintf(zip, sizeof zip, "%s/scenes.zip", root);
    void *z = CPLCreateZip(zip, NULL);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(CPLCreateFileInZip(z, "in/RGB.byte.tif", NULL), CE_None);
    char *bytes = NULL;
    FILE *f = fopen(data("scenes/rasterio/RGB.byte.tif"), "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    bytes = gs_xmalloc((size_t)n);
    ck_assert_uint_eq(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ck_assert_int_eq(CPLWriteFileInZip(z, bytes, (int)n), CE_None);
    gs_free(bytes);
    CPLCloseFileInZip(z);
    CPLCloseZip(z);
    snprintf(vsi, sizeof vsi, "['/vsizip/%s/in/*.tif']", zip);
    gs_catalog_t c;
    char err[1024] = "";
    ck_assert_msg(build_in(vsi, "", &c, err, sizeof err) == GS_OK, "%s", err);
    ck_assert_uint_eq(c.n_scenes, 1);
    snprintf(vsi, sizeof vsi, "/vsizip/%s/in/RGB.byte.tif", zip);
    ck_assert_str_eq(c.uris[0], vsi); // virtual paths are passed through as written
    gs_job_t *j = job_of("");
    gs_scene_t *sc = open_ok(j, c.uris[0]);
    ck_assert_int_eq(gs_scene_info(sc)->width, 791);
    ck_assert_double_eq_tol(gs_scene_info(sc)->bbox[0], -78.95865, 1e-5);
    gs_scene_close(&sc);
    gs_job_destroy(&j);
    gs_catalog_cleanup(&c);
}
END_TEST

// ---- example jobs -------------------------------------------------------------------------

// Every example job in jobs/examples parses, finds its scenes (paths are relative to the
// repository root), and every scene opens, checks and yields kept tiles. Jobs whose name holds
// "change" belong to the change-captioning run and are tested there.
START_TEST(test_examples_run_on_shared_data)
{
    GS_NEED_SHARED();
    ck_assert_int_eq(chdir(GS_SOURCE_DIR), 0);
    DIR *d = opendir("jobs/examples");
    ck_assert_ptr_nonnull(d);
    int n_jobs = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".yaml") != 0 || strstr(e->d_name, "change"))
            continue;
        char path[600], err[1024] = "";
        snprintf(path, sizeof path, "jobs/examples/%s", e->d_name);
        gs_job_t *j = NULL;
        ck_assert_msg(gs_job_load(path, NULL, 0, &j, err, sizeof err) == GS_OK, "%s", err);
        ck_assert_msg(strncmp(e->d_name, j->name, strlen(j->name)) == 0, "%s: name %s", path,
                      j->name);
        gs_catalog_t cat;
        ck_assert_msg(gs_catalog_build(j, &cat, err, sizeof err) == GS_OK, "%s: %s", path, err);
        ck_assert_uint_gt(cat.n_scenes, 0);
        size_t n_kept = 0;
        uint8_t *rgb = gs_xmalloc((size_t)3 * j->tiling.size * j->tiling.size);
        for (size_t i = 0; i < cat.n_scenes; i++) {
            gs_scene_t *sc = open_ok(j, cat.uris[i]);
            const gs_scene_info_t *in = gs_scene_info(sc);
            gs_tile_grid_t g;
            ck_assert_int_eq(gs_tile_grid_init(&g, in->width, in->height, j->tiling.size,
                                               j->tiling.overlap, j->tiling.edge),
                             GS_OK);
            for (int r = 0; r < g.n_rows; r++)
                for (int c = 0; c < g.n_cols; c++) {
                    gs_tile_t t;
                    double vf;
                    gs_tile_grid_cell(&g, in->id, c, r, &t);
                    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, err, sizeof err),
                                     GS_OK);
                    n_kept += vf >= j->tiling.min_valid_fraction;
                }
            gs_scene_close(&sc);
        }
        ck_assert_msg(n_kept > 0, "%s keeps no tile", path);
        fprintf(stderr, "example %s: %zu scenes, %zu tiles kept\n", path, cat.n_scenes, n_kept);
        gs_free(rgb);
        gs_catalog_cleanup(&cat);
        gs_job_destroy(&j);
        n_jobs++;
    }
    closedir(d);
    ck_assert_int_ge(n_jobs, 5);
}
END_TEST

Suite *jobs_scene_suite(void)
{
    Suite *s = suite_create("jobs_scene");
    TCase *tr = tcase_create("real_scenes");
    tcase_add_test(tr, test_scene_rgb_byte_footprint_matches_gdalinfo);
    tcase_add_test(tr, test_scene_geostationary_and_cog);
    tcase_add_test(tr, test_scene_landsat_band_files_group_into_scenes);
    tcase_add_test(tr, test_composite_landsat_true_colour_percentile);
    tcase_add_test(tr, test_thumb_renders_the_job_composite);
    tcase_add_test(tr, test_composite_bigearthnet_s2_true_and_false_colour);
    tcase_add_test(tr, test_composite_bigearthnet_s2_resamples_coarser_bands);
    tcase_add_test(tr, test_composite_bigearthnet_s1_sar_pseudo_rgb);
    tcase_add_test(tr, test_scene_time_from_file_name_pattern);
    tcase_add_test(tr, test_examples_run_on_shared_data);
    suite_add_tcase(s, tr);
    TCase *tc = tcase_create("catalog");
    tcase_add_checked_fixture(tc, tree_setup, NULL);
    tcase_add_test(tc, test_catalog_dirs_globs_lists_and_dedup);
    tcase_add_test(tc, test_catalog_inputs_that_name_nothing_are_errors);
    tcase_add_test(tc, test_catalog_and_scene_through_vsizip);
    suite_add_tcase(s, tc);
    return s;
}
