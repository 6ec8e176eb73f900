// jobs/: the GDAL raster layer, scenes, the tile grid and ids, composites. Small GeoTIFFs and
// pictures are written by the fixtures with GDAL (into a temp dir, never committed); real scenes
// come from ../shared/data (GS_NEED_SHARED skips when it is absent).
#include <check.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "jobs/acqtime.h"
#include "jobs/hash.h"
#include "jobs/raster.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"
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

// ---- fixtures: small GeoTIFFs -------------------------------------------------------------

typedef struct {
    int epsg;             // 0: no CRS
    const double *gt;     // NULL: no geotransform
    const double *nodata; // NULL: none (all bands)
    int tiled;            // 64x64 tiles
    const char *datetime; // TIFFTAG_DATETIME or NULL
    int alpha_last;       // the last band is alpha
} tif_opts_t;

static const double UTM_GT[6] = {500000, 30, 0, 4100000, 0, -30};

// write_geotiff: band-sequential data of type dt into a GeoTIFF at path.
static void write_geotiff(const char *path, int w, int h, int nb, GDALDataType dt, const void *data,
                          const tif_opts_t *o)
{
    char **opts = NULL;
    if (o->tiled) {
        opts = CSLSetNameValue(opts, "TILED", "YES");
        opts = CSLSetNameValue(opts, "BLOCKXSIZE", "64");
        opts = CSLSetNameValue(opts, "BLOCKYSIZE", "64");
    }
    if (o->alpha_last)
        opts = CSLSetNameValue(opts, "ALPHA", "YES");
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, nb, dt, opts);
    CSLDestroy(opts);
    ck_assert_ptr_nonnull(ds);
    size_t plane = (size_t)w * h * (size_t)GDALGetDataTypeSizeBytes(dt);
    for (int b = 0; b < nb; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, w, h,
                                      (void *)((const char *)data + plane * (size_t)b), w, h, dt, 0,
                                      0),
                         CE_None);
        if (o->nodata)
            GDALSetRasterNoDataValue(band, *o->nodata);
    }
    if (o->gt)
        GDALSetGeoTransform(ds, (double *)o->gt);
    if (o->epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, o->epsg);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
    }
    if (o->datetime)
        GDALSetMetadataItem(ds, "TIFFTAG_DATETIME", o->datetime, NULL);
    GDALClose(ds);
}

static gs_job_t *job_of(const char *extra_yaml)
{
    char y[2048];
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
    ck_assert_msg(e == GS_OK, "open \"%s\": %s [%s]", uri, why, gs_scene_problem_name(p));
    return sc;
}

// Pinned identities, computed once from the definitions in jobs/hash.h, scene.h and tiles.h
// (and checked against an independent Python implementation of those definitions).
#define HASH_EMPTY 0x952f14f1e8ddc491ULL
#define HASH_ABC 0x1e2665b489b65aabULL
#define SCENE_X 0x1bad862643134bedULL
#define TILE_0_0 0x40fdbda95e920033ULL
#define TILE_3_1 0x5ced2659b62d336dULL
#define TILE_3_1_O32 0x0d7fff7cd67bad85ULL

// ---- tile grid ----------------------------------------------------------------------------

typedef struct {
    int x, w;
} span_t;

static void check_cols(int width, int size, int overlap, gs_job_edge_t edge, int n,
                       const span_t *want)
{
    gs_tile_grid_t g;
    ck_assert_int_eq(gs_tile_grid_init(&g, width, 10, size, overlap, edge), GS_OK);
    ck_assert_int_eq(g.n_cols, n);
    for (int c = 0; c < n; c++) {
        gs_tile_t t;
        ck_assert_int_eq(gs_tile_grid_cell(&g, 1, c, 0, &t), GS_OK);
        ck_assert_msg(t.x == want[c].x && t.w == want[c].w,
                      "width %d size %d overlap %d edge %d col %d: x %d w %d, want x %d w %d",
                      width, size, overlap, edge, c, t.x, t.w, want[c].x, want[c].w);
    }
}

START_TEST(test_tile_grid_edges_shift_pad_clip)
{
    // 600 px, tiles of 256: cells at 0, 256 and a last one that is shifted, padded or clipped
    check_cols(600, 256, 0, GS_JOB_EDGE_SHIFT, 3, (span_t[]){{0, 256}, {256, 256}, {344, 256}});
    check_cols(600, 256, 0, GS_JOB_EDGE_PAD, 3, (span_t[]){{0, 256}, {256, 256}, {512, 256}});
    check_cols(600, 256, 0, GS_JOB_EDGE_CLIP, 3, (span_t[]){{0, 256}, {256, 256}, {512, 88}});
    // overlap 64: stride 192
    check_cols(600, 256, 64, GS_JOB_EDGE_SHIFT, 3, (span_t[]){{0, 256}, {192, 256}, {344, 256}});
    check_cols(640, 256, 64, GS_JOB_EDGE_PAD, 3, (span_t[]){{0, 256}, {192, 256}, {384, 256}});
    // exact fit: no extra cell
    check_cols(512, 256, 0, GS_JOB_EDGE_SHIFT, 2, (span_t[]){{0, 256}, {256, 256}});
    check_cols(448, 256, 64, GS_JOB_EDGE_CLIP, 2, (span_t[]){{0, 256}, {192, 256}});
    // smaller than a tile: one cell, the scene itself (pad: a whole tile)
    check_cols(100, 256, 0, GS_JOB_EDGE_SHIFT, 1, (span_t[]){{0, 100}});
    check_cols(100, 256, 0, GS_JOB_EDGE_CLIP, 1, (span_t[]){{0, 100}});
    check_cols(100, 256, 0, GS_JOB_EDGE_PAD, 1, (span_t[]){{0, 256}});
    gs_tile_grid_t g;
    ck_assert_int_eq(gs_tile_grid_init(&g, 600, 300, 256, 0, GS_JOB_EDGE_SHIFT), GS_OK);
    ck_assert_int_eq(g.n_rows, 2);
    ck_assert_int_eq(gs_tile_grid_count(&g), 6);
    gs_tile_t t;
    ck_assert_int_eq(gs_tile_grid_cell(&g, 1, 2, 1, &t), GS_OK);
    ck_assert_int_eq(t.y, 44);
    ck_assert_int_eq(gs_tile_grid_cell(&g, 1, 3, 0, &t), GS_EINVAL);
    ck_assert_int_eq(gs_tile_grid_cell(&g, 1, 0, -1, &t), GS_EINVAL);
    ck_assert_int_eq(gs_tile_grid_init(&g, 600, 300, 256, 256, GS_JOB_EDGE_SHIFT), GS_EINVAL);
    ck_assert_int_eq(gs_tile_grid_init(&g, 0, 300, 256, 0, GS_JOB_EDGE_SHIFT), GS_EINVAL);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(test_tile_ids_are_pinned_and_well_spread)
{
    // ids are FAISS ids and RocksDB keys: these values were computed once and must never change
    ck_assert_uint_eq(gs_hash_bytes("", 0, 0), HASH_EMPTY);
    ck_assert_uint_eq(gs_hash_str("abc", 1), HASH_ABC);
    ck_assert_uint_eq(gs_scene_id_of("/data/scenes/x.tif"), SCENE_X);
    gs_tile_grid_t g256, g512, g256o, g256p;
    gs_tile_grid_init(&g256, 1000, 1000, 256, 0, GS_JOB_EDGE_SHIFT);
    gs_tile_grid_init(&g512, 1000, 1000, 512, 0, GS_JOB_EDGE_SHIFT);
    gs_tile_grid_init(&g256o, 1000, 1000, 256, 32, GS_JOB_EDGE_SHIFT);
    gs_tile_grid_init(&g256p, 1000, 1000, 256, 0, GS_JOB_EDGE_PAD);
    ck_assert_uint_eq(gs_tile_id(SCENE_X, 0, 0, &g256), TILE_0_0);
    ck_assert_uint_eq(gs_tile_id(SCENE_X, 3, 1, &g256), TILE_3_1);
    ck_assert_uint_eq(gs_tile_id(SCENE_X, 3, 1, &g256o), TILE_3_1_O32);
    // the scene size does not enter; the tiling parameters do
    gs_tile_grid_t big;
    gs_tile_grid_init(&big, 5000, 7000, 256, 0, GS_JOB_EDGE_SHIFT);
    ck_assert_uint_eq(gs_tile_id(SCENE_X, 3, 1, &big), TILE_3_1);
    ck_assert_uint_ne(gs_tile_id(SCENE_X, 3, 1, &g512), TILE_3_1);
    ck_assert_uint_ne(gs_tile_id(SCENE_X, 3, 1, &g256p), TILE_3_1);
    // many cells of many scenes: all distinct, all in [1, 2^63), swapping col/row differs
    enum { NS = 20, NC = 60 };
    size_t n = 0;
    uint64_t *ids = gs_xmalloc(sizeof *ids * NS * NC * NC);
    for (int sc = 0; sc < NS; sc++)
        for (int r = 0; r < NC; r++)
            for (int c = 0; c < NC; c++) {
                uint64_t id = gs_tile_id((uint64_t)sc * 7919u + 1, c, r, &g256);
                ck_assert_uint_eq(id >> 63, 0);
                ck_assert_uint_ne(id, 0);
                ids[n++] = id;
            }
    int bit_counts[63] = {0};
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 63; b++)
            bit_counts[b] += (int)((ids[i] >> b) & 1);
    for (int b = 0; b < 63; b++) // every bit is set in about half of the ids
        ck_assert_msg(bit_counts[b] > (int)n * 45 / 100 && bit_counts[b] < (int)n * 55 / 100,
                      "bit %d set in %d of %zu", b, bit_counts[b], n);
    qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(ids[i - 1] != ids[i], "two cells share id %llu", (unsigned long long)ids[i]);
    ck_assert_uint_ne(gs_tile_id(5, 1, 2, &g256), gs_tile_id(5, 2, 1, &g256));
    ck_assert_uint_eq(gs_tile_id(5, 1, 2, &g256), gs_tile_id(5, 1, 2, &g256));
    gs_free(ids);
}
END_TEST

// ---- windowed reads -----------------------------------------------------------------------

START_TEST(test_tile_windowed_read_equals_full_read)
{
    enum { W = 300, H = 200 };
    uint8_t *src = gs_xmalloc(3 * W * H);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < W * H; i++)
            src[b * W * H + i] = (uint8_t)(1 + (i * (b + 3) + (i / W) * 7) % 250);
    const char *p = tmp_path("win.tif");
    tif_opts_t o = {.epsg = 32633, .gt = UTM_GT, .tiled = 1};
    write_geotiff(p, W, H, 3, GDT_Byte, src, &o);
    uint8_t *full = NULL;
    int fw, fh;
    ck_assert_int_eq(gs_raster_read_rgb8(p, &full, &fw, &fh), GS_OK);
    gs_job_t *j = job_of("tiling: {size: 128, overlap: 32, edge: pad}\n");
    gs_scene_t *sc = open_ok(j, p);
    const gs_scene_info_t *in = gs_scene_info(sc);
    gs_tile_grid_t g;
    gs_tile_grid_init(&g, in->width, in->height, 128, 32, GS_JOB_EDGE_PAD);
    ck_assert_int_eq(g.n_cols, 3);
    ck_assert_int_eq(g.n_rows, 2);
    uint8_t *rgb = gs_xmalloc(128 * 128 * 3);
    size_t bad = 0;
    for (int r = 0; r < g.n_rows; r++)
        for (int c = 0; c < g.n_cols; c++) {
            gs_tile_t t;
            gs_tile_grid_cell(&g, in->id, c, r, &t);
            double vf = -1;
            ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
            int inside = 0;
            for (int y = 0; y < t.h; y++)
                for (int x = 0; x < t.w; x++) {
                    int sx = t.x + x, sy = t.y + y, in_scene = sx < W && sy < H;
                    inside += in_scene;
                    for (int k = 0; k < 3; k++) {
                        int want = in_scene ? full[3 * (sy * W + sx) + k] : 0;
                        if (rgb[3 * (y * t.w + x) + k] != want && bad++ < 5)
                            fprintf(stderr, "tile %d,%d px %d,%d ch %d: %d want %d\n", c, r, x, y,
                                    k, rgb[3 * (y * t.w + x) + k], want);
                    }
                }
            ck_assert_double_eq_tol(vf, (double)inside / (t.w * t.h), 1e-12);
        }
    ck_assert_uint_eq(bad, 0);
    gs_free(rgb);
    gs_free(full);
    gs_free(src);
    gs_scene_close(&sc);
    ck_assert_ptr_null(sc);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_tile_valid_fraction_nodata_alpha_and_zero)
{
    enum { W = 64, H = 64 };
    uint8_t src[4 * W * H];
    for (int b = 0; b < 4; b++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                src[b * W * H + y * W + x] = x < W / 4 ? 0 : (uint8_t)(10 + b);
    gs_job_t *j = job_of("tiling: {size: 64}\n");
    uint8_t rgb[3 * W * H];
    double vf;
    gs_tile_t t = {.id = 1, .x = 0, .y = 0, .w = W, .h = H};
    // nodata 0: the left quarter is invalid
    double nd = 0;
    tif_opts_t o = {.epsg = 32633, .gt = UTM_GT, .nodata = &nd};
    write_geotiff(tmp_path("nd.tif"), W, H, 3, GDT_Byte, src, &o);
    gs_scene_t *sc = open_ok(j, tmp_path("nd.tif"));
    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
    ck_assert_double_eq_tol(vf, 0.75, 1e-12);
    ck_assert_int_eq(rgb[3 * (10 * W + 40)], 10);
    gs_scene_close(&sc);
    // no nodata, no mask: pixels 0 in every band count as fill
    tif_opts_t o2 = {.epsg = 32633, .gt = UTM_GT};
    write_geotiff(tmp_path("zero.tif"), W, H, 3, GDT_Byte, src, &o2);
    sc = open_ok(j, tmp_path("zero.tif"));
    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
    ck_assert_double_eq_tol(vf, 0.75, 1e-12);
    gs_scene_close(&sc);
    // an alpha band: alpha 0 masks the pixel even where the colour bands are not 0
    for (int i = 0; i < W * H; i++) {
        src[i] = 50; // band 1 never 0
        src[3 * W * H + i] = (i % W) < W / 2 ? 0 : 255;
    }
    tif_opts_t o3 = {.epsg = 32633, .gt = UTM_GT, .alpha_last = 1};
    write_geotiff(tmp_path("alpha.tif"), W, H, 4, GDT_Byte, src, &o3);
    sc = open_ok(j, tmp_path("alpha.tif"));
    ck_assert_int_eq(gs_scene_info(sc)->n_composite_bands, 3);
    ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
    ck_assert_double_eq_tol(vf, 0.5, 1e-12);
    gs_scene_close(&sc);
    gs_job_destroy(&j);
}
END_TEST

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int scale_ref(double v, double lo, double hi)
{
    double q = floor((v - lo) * (255.0 / (hi - lo)) + 0.5);
    return q < 0 ? 0 : q > 255 ? 255 : (int)q;
}

START_TEST(test_tile_uint16_percentile_minmax_and_range)
{
    enum { W = 100, H = 80 };
    uint16_t src[W * H], sorted[W * H];
    for (int i = 0; i < W * H; i++)
        src[i] = (uint16_t)(300 + (i * 37) % 4000);
    memcpy(sorted, src, sizeof src);
    qsort(sorted, W * H, sizeof *sorted, cmp_u16);
    tif_opts_t o = {.epsg = 32633, .gt = UTM_GT};
    write_geotiff(tmp_path("u16.tif"), W, H, 1, GDT_UInt16, src, &o);
    // percentile 2, 98 (numpy's linear interpolation between closest ranks)
    double pos_lo = 0.02 * (W * H - 1), pos_hi = 0.98 * (W * H - 1);
    double lo = sorted[(int)pos_lo] +
                (pos_lo - floor(pos_lo)) * (sorted[(int)pos_lo + 1] - sorted[(int)pos_lo]);
    double hi = sorted[(int)pos_hi] +
                (pos_hi - floor(pos_hi)) * (sorted[(int)pos_hi + 1] - sorted[(int)pos_hi]);
    const char *cfg[3] = {
        "tiling: {size: 128}\n", "tiling: {size: 128}\ncomposite: {scaling: minmax}\n",
        "tiling: {size: 128}\ncomposite: {scaling: range, range: [1000, 2000]}\n"};
    double want_lo[3] = {lo, sorted[0], 1000}, want_hi[3] = {hi, sorted[W * H - 1], 2000};
    uint8_t *rgb = gs_xmalloc(3 * W * H);
    for (int k = 0; k < 3; k++) {
        gs_job_t *j = job_of(cfg[k]);
        gs_scene_t *sc = open_ok(j, tmp_path("u16.tif"));
        double glo, ghi;
        ck_assert_int_eq(gs_scene_scaling(sc, 0, &glo, &ghi), GS_ESTATE);
        gs_tile_grid_t g;
        gs_tile_grid_init(&g, W, H, 128, 0, GS_JOB_EDGE_SHIFT);
        gs_tile_t t;
        gs_tile_grid_cell(&g, 1, 0, 0, &t);
        ck_assert_int_eq(t.w, W);
        double vf;
        ck_assert_int_eq(gs_tile_read_rgb8(sc, &t, rgb, &vf, NULL, NULL, 0), GS_OK);
        ck_assert_int_eq(gs_scene_scaling(sc, 0, &glo, &ghi), GS_OK);
        ck_assert_double_eq_tol(glo, want_lo[k], 1e-6);
        ck_assert_double_eq_tol(ghi, want_hi[k], 1e-6);
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++) // one band: grey in all three channels
                ck_assert_int_eq(rgb[3 * i + c], scale_ref(src[i], want_lo[k], want_hi[k]));
        gs_scene_close(&sc);
        gs_job_destroy(&j);
    }
    gs_free(rgb);
}
END_TEST

// ---- bad scenes ---------------------------------------------------------------------------

static gs_scene_problem_t open_bad(const gs_job_t *j, const char *uri, char *why, size_t n)
{
    gs_scene_t *sc = NULL;
    gs_scene_problem_t p = GS_SCENE_OK;
    gs_err e = gs_scene_open(j, uri, &sc, &p, why, n);
    if (e == GS_OK) {
        e = gs_scene_check(sc, &p, why, n);
        gs_scene_close(&sc);
    }
    ck_assert_msg(e == GS_EFORMAT, "\"%s\": %s", uri, gs_err_name(e));
    ck_assert_ptr_null(sc);
    return p;
}

START_TEST(test_scene_bad_inputs_give_quarantine_reasons)
{
    gs_job_t *j = job_of("");
    char why[1024];
    // a text file named .tif
    FILE *f = fopen(tmp_path("notes.tif"), "w");
    fputs("not a raster at all\n", f);
    fclose(f);
    ck_assert_int_eq(open_bad(j, tmp_path("notes.tif"), why, sizeof why), GS_SCENE_UNREADABLE);
    ck_assert_msg(strstr(why, "notes.tif") && strstr(why, "not recognized"), "%s", why);
    ck_assert_int_eq(open_bad(j, tmp_path("gone.tif"), why, sizeof why), GS_SCENE_UNREADABLE);
    // a truncated GeoTIFF: the file is cut at 60 %
    enum { W = 256, H = 256 };
    uint8_t *px = gs_xmalloc(3 * W * H);
    for (int i = 0; i < 3 * W * H; i++)
        px[i] = (uint8_t)(i * 13 + 1);
    tif_opts_t o = {.epsg = 32633, .gt = UTM_GT, .tiled = 1};
    write_geotiff(tmp_path("whole.tif"), W, H, 3, GDT_Byte, px, &o);
    FILE *in = fopen(tmp_path("whole.tif"), "rb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *bytes = gs_xmalloc((size_t)size);
    ck_assert_uint_eq(fread(bytes, 1, (size_t)size, in), (size_t)size);
    fclose(in);
    FILE *out = fopen(tmp_path("cut.tif"), "wb");
    fwrite(bytes, 1, (size_t)(size * 6 / 10), out);
    fclose(out);
    gs_free(bytes);
    ck_assert_int_eq(open_bad(j, tmp_path("cut.tif"), why, sizeof why), GS_SCENE_TRUNCATED);
    ck_assert_msg(strstr(why, "truncated or corrupt") && strstr(why, "cut.tif"), "%s", why);
    // no CRS, no geotransform
    tif_opts_t bare = {0};
    write_geotiff(tmp_path("bare.tif"), W, H, 3, GDT_Byte, px, &bare);
    ck_assert_int_eq(open_bad(j, tmp_path("bare.tif"), why, sizeof why), GS_SCENE_NO_GEOREF);
    ck_assert_msg(strstr(why, "no geotransform"), "%s", why);
    tif_opts_t nocrs = {.gt = UTM_GT};
    write_geotiff(tmp_path("nocrs.tif"), W, H, 3, GDT_Byte, px, &nocrs);
    ck_assert_int_eq(open_bad(j, tmp_path("nocrs.tif"), why, sizeof why), GS_SCENE_NO_GEOREF);
    ck_assert_msg(strstr(why, "no coordinate reference system"), "%s", why);
    // all nodata
    double nd = 7;
    memset(px, 7, 3 * W * H);
    tif_opts_t ndo = {.epsg = 32633, .gt = UTM_GT, .nodata = &nd};
    write_geotiff(tmp_path("empty.tif"), W, H, 3, GDT_Byte, px, &ndo);
    ck_assert_int_eq(open_bad(j, tmp_path("empty.tif"), why, sizeof why), GS_SCENE_ALL_NODATA);
    ck_assert_msg(strstr(why, "no valid pixel"), "%s", why);
    // a band that does not exist
    gs_job_t *j5 = job_of("composite: {bands: [5, 2, 1]}\n");
    ck_assert_int_eq(open_bad(j5, tmp_path("whole.tif"), why, sizeof why), GS_SCENE_LAYOUT);
    ck_assert_msg(strstr(why, "has no band \"5\" (its bands: 1, 2, 3)"), "%s", why);
    ck_assert_str_eq(gs_scene_problem_name(GS_SCENE_LAYOUT), "layout");
    gs_job_destroy(&j5);
    gs_free(px);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_scene_time_from_metadata_filename_and_given)
{
    uint8_t px[3 * 32 * 32];
    memset(px, 9, sizeof px);
    tif_opts_t o = {.epsg = 32633, .gt = UTM_GT, .datetime = "2019:05:04 10:11:12"};
    write_geotiff(tmp_path("S2B_20180204T094121_x.tif"), 32, 32, 3, GDT_Byte, px, &o);
    const char *p = tmp_path("S2B_20180204T094121_x.tif");
    char ts[32];
    gs_job_t *jm = job_of(""); // from: metadata
    gs_scene_t *sc = open_ok(jm, p);
    ck_assert_int_eq(gs_scene_info(sc)->has_time, 1);
    gs_acqtime_format(gs_scene_info(sc)->time, ts, sizeof ts);
    ck_assert_str_eq(ts, "2019-05-04T10:11:12Z");
    ck_assert_str_eq(gs_scene_info(sc)->time_source, "metadata:TIFFTAG_DATETIME");
    gs_scene_close(&sc);
    gs_job_t *jf = job_of("time: {from: filename, pattern: '%Y%m%dT%H%M%S'}\n");
    sc = open_ok(jf, p);
    gs_acqtime_format(gs_scene_info(sc)->time, ts, sizeof ts);
    ck_assert_str_eq(ts, "2018-02-04T09:41:21Z");
    ck_assert_str_eq(gs_scene_info(sc)->time_source, "filename");
    gs_scene_close(&sc);
    gs_job_t *jg = job_of("time: {from: given, value: '2001-02-03'}\n");
    sc = open_ok(jg, p);
    ck_assert_int_eq(gs_scene_info(sc)->time, 981158400);
    ck_assert_str_eq(gs_scene_info(sc)->time_source, "given");
    gs_scene_close(&sc);
    gs_job_t *jn = job_of("time: {from: none}\n");
    sc = open_ok(jn, p);
    ck_assert_int_eq(gs_scene_info(sc)->has_time, 0);
    gs_scene_close(&sc);
    gs_job_destroy(&jm);
    gs_job_destroy(&jf);
    gs_job_destroy(&jg);
    gs_job_destroy(&jn);
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
    TCase *tt = tcase_create("tiles");
    tcase_add_checked_fixture(tt, tmp_setup, tmp_teardown);
    tcase_add_test(tt, test_tile_grid_edges_shift_pad_clip);
    tcase_add_test(tt, test_tile_ids_are_pinned_and_well_spread);
    tcase_add_test(tt, test_tile_windowed_read_equals_full_read);
    tcase_add_test(tt, test_tile_valid_fraction_nodata_alpha_and_zero);
    tcase_add_test(tt, test_tile_uint16_percentile_minmax_and_range);
    suite_add_tcase(s, tt);
    TCase *ts = tcase_create("scenes");
    tcase_add_checked_fixture(ts, tmp_setup, tmp_teardown);
    tcase_add_test(ts, test_scene_bad_inputs_give_quarantine_reasons);
    tcase_add_test(ts, test_scene_time_from_metadata_filename_and_given);
    suite_add_tcase(s, ts);
    return s;
}
