// jobs/: the GDAL raster layer, scenes, the tile grid and ids, composites. Small GeoTIFFs and
// pictures are written by the fixtures with GDAL (into a temp dir, never committed); real scenes
// come from ../shared/data (GS_NEED_SHARED skips when it is absent).
#include <check.h>
#include <gdal.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "jobs/raster.h"
#include "testutil.h"

// ---- fixtures: pictures written with GDAL -------------------------------------------------

static char tmp[4096];

static void tmp_setup(void)
{
    const char *d = gs_test_tmpdir("jobs");
    ck_assert_ptr_nonnull(d);
    snprintf(tmp, sizeof tmp, "%s", d);
    gs_raster_init();
}

static void tmp_teardown(void) {}

static const char *tmp_path(const char *name)
{
    static char p[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp, name);
    return p[k];
}

// write_raster: a w x h x n_bands raster of type dt from `data` (band-sequential, dt-typed),
// in `driver` format (GTiff directly; PNG/JPEG through a MEM copy). Optional nodata.
static void write_raster(const char *path, const char *driver, int w, int h, int n_bands,
                         GDALDataType dt, const void *data, const double *nodata)
{
    GDALDriverH mem = GDALGetDriverByName("MEM");
    GDALDatasetH ds = GDALCreate(mem, "", w, h, n_bands, dt, NULL);
    ck_assert_ptr_nonnull(ds);
    size_t plane = (size_t)w * h * (size_t)GDALGetDataTypeSizeBytes(dt);
    for (int b = 0; b < n_bands; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, w, h,
                                      (void *)((const char *)data + plane * (size_t)b), w, h, dt, 0,
                                      0),
                         CE_None);
        if (nodata)
            GDALSetRasterNoDataValue(band, *nodata);
    }
    GDALDriverH drv = GDALGetDriverByName(driver);
    ck_assert_ptr_nonnull(drv);
    GDALDatasetH out = GDALCreateCopy(drv, path, ds, FALSE, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(out);
    GDALClose(out);
    GDALClose(ds);
}

// ---- gs_raster_read_rgb8 ------------------------------------------------------------------

START_TEST(test_raster_read_rgb8_byte_rgb_tiff)
{
    enum { W = 7, H = 5 };
    uint8_t src[3 * W * H];
    for (int i = 0; i < 3 * W * H; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    const char *p = tmp_path("rgb.tif");
    write_raster(p, "GTiff", W, H, 3, GDT_Byte, src, NULL);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(p, &rgb, &w, &h), GS_OK);
    ck_assert_int_eq(w, W);
    ck_assert_int_eq(h, H);
    // HWC: pixel (x, y) channel c comes from band c at (x, y)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                ck_assert_int_eq(rgb[(y * W + x) * 3 + c], src[c * W * H + y * W + x]);
    gs_free(rgb);
}
END_TEST

START_TEST(test_raster_read_rgb8_grey_png_and_jpeg)
{
    enum { W = 16, H = 9 };
    uint8_t src[W * H];
    for (int i = 0; i < W * H; i++)
        src[i] = (uint8_t)(i % 251);
    const char *png = tmp_path("grey.png");
    write_raster(png, "PNG", W, H, 1, GDT_Byte, src, NULL);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(png, &rgb, &w, &h), GS_OK);
    ck_assert_int_eq(w * h, W * H);
    for (int i = 0; i < W * H; i++) {
        ck_assert_int_eq(rgb[3 * i], src[i]);
        ck_assert_int_eq(rgb[3 * i + 1], src[i]);
        ck_assert_int_eq(rgb[3 * i + 2], src[i]);
    }
    gs_free(rgb);
    // JPEG is lossy: a flat grey picture stays within a few levels
    memset(src, 120, sizeof src);
    const char *jpg = tmp_path("grey.jpg");
    write_raster(jpg, "JPEG", W, H, 1, GDT_Byte, src, NULL);
    ck_assert_int_eq(gs_raster_read_rgb8(jpg, &rgb, &w, &h), GS_OK);
    for (int i = 0; i < 3 * W * H; i++)
        ck_assert_msg(abs(rgb[i] - 120) <= 2, "jpeg byte %d = %d", i, rgb[i]);
    gs_free(rgb);
}
END_TEST

START_TEST(test_raster_read_rgb8_uint16_is_min_max_stretched)
{
    enum { W = 4, H = 2 };
    // one stretch over all three channels: min 1000 -> 0, max 3000 -> 255, nodata 0 -> 0
    uint16_t src[3 * W * H] = {1000, 1500, 2000, 3000, 0, 1000, 1000, 1000,  // R
                               2000, 2000, 2000, 2000, 0, 2000, 2000, 2000,  // G
                               3000, 1000, 1000, 1000, 0, 1000, 1000, 2500}; // B
    double nd = 0;
    const char *p = tmp_path("u16.tif");
    write_raster(p, "GTiff", W, H, 3, GDT_UInt16, src, &nd);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(p, &rgb, &w, &h), GS_OK);
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < W * H; i++) {
            double v = src[c * W * H + i];
            int want = v == 0 ? 0 : (int)floor(255.0 * (v - 1000) / 2000 + 0.5);
            ck_assert_msg(rgb[3 * i + c] == want, "ch %d px %d: got %d want %d", c, i,
                          rgb[3 * i + c], want);
        }
    }
    gs_free(rgb);
}
END_TEST

START_TEST(test_raster_read_rgb8_palette_png)
{
    enum { W = 3, H = 1 };
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("MEM"), "", W, H, 1, GDT_Byte, NULL);
    uint8_t idx[W] = {0, 1, 2};
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    ck_assert_int_eq(GDALRasterIO(b, GF_Write, 0, 0, W, H, idx, W, H, GDT_Byte, 0, 0), CE_None);
    GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
    GDALColorEntry e0 = {10, 20, 30, 255}, e1 = {200, 0, 100, 255}, e2 = {1, 2, 3, 255};
    GDALSetColorEntry(ct, 0, &e0);
    GDALSetColorEntry(ct, 1, &e1);
    GDALSetColorEntry(ct, 2, &e2);
    GDALSetRasterColorTable(b, ct);
    GDALDestroyColorTable(ct);
    const char *p = tmp_path("pal.png");
    GDALClose(GDALCreateCopy(GDALGetDriverByName("PNG"), p, ds, FALSE, NULL, NULL, NULL));
    GDALClose(ds);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(p, &rgb, &w, &h), GS_OK);
    uint8_t want[9] = {10, 20, 30, 200, 0, 100, 1, 2, 3};
    ck_assert_mem_eq(rgb, want, 9);
    gs_free(rgb);
}
END_TEST

typedef struct {
    int n_error;
    char last[1024];
} captured_t;

static void capture(gs_log_level_t level, const char *line, void *ud)
{
    captured_t *c = ud;
    if (level == GS_LOG_LEVEL_ERROR) {
        c->n_error++;
        snprintf(c->last, sizeof c->last, "%s", line);
    }
}

START_TEST(test_raster_read_rgb8_not_a_raster_is_eio_with_gdal_message)
{
    const char *p = tmp_path("notes.tif");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an image\n", f);
    fclose(f);
    captured_t c = {0};
    gs_log_set(capture, &c);
    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    gs_err e = gs_raster_read_rgb8(p, &rgb, &w, &h);
    gs_err e2 = gs_raster_read_rgb8(tmp_path("missing.png"), &rgb, &w, &h);
    gs_log_set(NULL, NULL);
    ck_assert_int_eq(e, GS_EIO);
    ck_assert_int_eq(e2, GS_EIO);
    ck_assert_ptr_eq(rgb, (uint8_t *)1); // untouched on error
    ck_assert_int_eq(w, -1);
    ck_assert_int_eq(c.n_error, 2); // logged once per failure, at the origin
    ck_assert_ptr_nonnull(strstr(c.last, "could not open raster \""));
    ck_assert_ptr_nonnull(strstr(c.last, "missing.png"));
    // GDAL's own message follows the path
    ck_assert_msg(strstr(c.last, "No such file") || strstr(c.last, "not recognized") ||
                      strstr(c.last, "does not exist"),
                  "%s", c.last);
}
END_TEST

START_TEST(test_raster_read_rgb8_real_geotiff_matches_gdal)
{
    GS_NEED_SHARED();
    char p[4200];
    snprintf(p, sizeof p, "%s/data/scenes/rasterio/RGB.byte.tif", gs_test_shared());
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_int_eq(gs_raster_read_rgb8(p, &rgb, &w, &h), GS_OK);
    ck_assert_int_eq(w, 791);
    ck_assert_int_eq(h, 718);
    GDALDatasetH ds = GDALOpen(p, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    uint8_t *band = gs_xmalloc((size_t)w * h);
    size_t bad = 0;
    for (int c = 0; c < 3; c++) {
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, c + 1), GF_Read, 0, 0, w, h, band, w, h,
                                      GDT_Byte, 0, 0),
                         CE_None);
        for (size_t i = 0; i < (size_t)w * h; i++)
            bad += rgb[3 * i + (size_t)c] != band[i];
    }
    ck_assert_uint_eq(bad, 0);
    gs_free(band);
    GDALClose(ds);
    gs_free(rgb);
}
END_TEST

Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("raster");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_raster_read_rgb8_byte_rgb_tiff);
    tcase_add_test(tc, test_raster_read_rgb8_grey_png_and_jpeg);
    tcase_add_test(tc, test_raster_read_rgb8_uint16_is_min_max_stretched);
    tcase_add_test(tc, test_raster_read_rgb8_palette_png);
    tcase_add_test(tc, test_raster_read_rgb8_not_a_raster_is_eio_with_gdal_message);
    tcase_add_test(tc, test_raster_read_rgb8_real_geotiff_matches_gdal);
    suite_add_tcase(s, tc);
    return s;
}
