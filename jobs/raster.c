// The GDAL layer of geoscribe: the only file that includes GDAL headers. It offers the public
// whole-picture read (raster.h) and, through jobs/raster_int.h, datasets, windowed reads,
// coordinate transforms and VSI file access to the rest of jobs/. GDAL errors become GS_EIO with
// CPLGetLastErrorMsg() in the message; GDAL's own output goes to our log at DEBUG.
#define GS_LOG_MODULE "jobs"
// cpl_vsi.h stats files with struct stat64 (large files): declare it under strict POSIX
#define _LARGEFILE64_SOURCE 1
#include "jobs/raster.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "jobs/hash.h"
#include "jobs/raster_int.h"

// ---- set-up and error routing -------------------------------------------------------------

// GDAL messages are logged at DEBUG: the caller that fails logs the one line that matters
// (with CPLGetLastErrorMsg), so a normal run stays quiet.
static void CPL_STDCALL cpl_to_log(CPLErr cls, CPLErrorNum num, const char *msg)
{
    static const char *names[] = {"none", "debug", "warning", "failure", "fatal"};
    const char *name = (cls >= CE_None && cls <= CE_Fatal) ? names[cls] : "?";
    if (gs__log_level >= GS_LOG_LEVEL_DEBUG)
        gs__log(GS_LOG_LEVEL_DEBUG, "gdal", "%s %d: %s", name, (int)num, msg ? msg : "");
}

static pthread_once_t raster_once = PTHREAD_ONCE_INIT;

static void raster_init_once(void)
{
    GDALAllRegister();
    CPLSetErrorHandler(cpl_to_log);
}

void gs_raster_init(void)
{
    pthread_once(&raster_once, raster_init_once);
}

void gs_raster_lib_version(char *out, size_t out_nbytes)
{
    snprintf(out, out_nbytes, "%s", GDALVersionInfo("RELEASE_NAME"));
}

// The message of GDAL's last error on this thread, or a fallback when GDAL set none.
static const char *cpl_msg(const char *fallback)
{
    const char *m = CPLGetLastErrorMsg();
    return (m && *m) ? m : fallback;
}

// ---- whole-picture read -------------------------------------------------------------------

// Grey (1 band) with an RGB colour table: indices mapped through the table.
static gs_err read_paletted(GDALRasterBandH band, GDALColorTableH ct, int w, int h, uint8_t *rgb,
                            const char *path)
{
    size_t n = (size_t)w * (size_t)h;
    int32_t *idx = gs_trymalloc(n * sizeof *idx);
    if (!idx)
        return GS_ENOMEM;
    CPLErrorReset();
    if (GDALRasterIO(band, GF_Read, 0, 0, w, h, idx, w, h, GDT_Int32, 0, 0) != CE_None) {
        GS_LOG_ERROR("could not read raster \"%s\": %s", path, cpl_msg("read failed"));
        gs_free(idx);
        return GS_EIO;
    }
    int n_entries = GDALGetColorEntryCount(ct);
    for (size_t i = 0; i < n; i++) {
        GDALColorEntry e = {0, 0, 0, 0};
        if (idx[i] >= 0 && idx[i] < n_entries)
            GDALGetColorEntryAsRGB(ct, idx[i], &e);
        rgb[3 * i + 0] = (uint8_t)e.c1;
        rgb[3 * i + 1] = (uint8_t)e.c2;
        rgb[3 * i + 2] = (uint8_t)e.c3;
    }
    gs_free(idx);
    return GS_OK;
}

// Any non-Byte type: read as float, one min-max stretch over the valid values of all channels.
static gs_err read_stretched(GDALDatasetH ds, int n_ch, int w, int h, uint8_t *rgb,
                             const char *path)
{
    size_t n = (size_t)w * (size_t)h;
    float *v = gs_trymalloc(n * (size_t)n_ch * sizeof *v);
    if (!v)
        return GS_ENOMEM;
    int map[3] = {1, 2, 3};
    CPLErrorReset();
    if (GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, v, w, h, GDT_Float32, n_ch, map, 0, 0, 0) !=
        CE_None) {
        GS_LOG_ERROR("could not read raster \"%s\": %s", path, cpl_msg("read failed"));
        gs_free(v);
        return GS_EIO;
    }
    // Invalid values (nodata, NaN, inf) are replaced by NaN so one test skips them below.
    double lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < n_ch; c++) {
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(ds, c + 1), &has_nd);
        float *p = v + (size_t)c * n;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(p[i]) || (has_nd && (double)p[i] == (double)(float)nd)) {
                p[i] = NAN;
                continue;
            }
            lo = p[i] < lo ? p[i] : lo;
            hi = p[i] > hi ? p[i] : hi;
        }
    }
    double scale = (hi > lo) ? 255.0 / (hi - lo) : 0.0;
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            float x = v[(size_t)(c < n_ch ? c : 0) * n + i];
            double s = isnan(x) ? 0.0 : ((double)x - lo) * scale + 0.5;
            rgb[3 * i + (size_t)c] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
        }
    }
    gs_free(v);
    return GS_OK;
}

static gs_err read_rgb8_ds(GDALDatasetH ds, const char *path, int w, int h, uint8_t *rgb)
{
    int n_bands = GDALGetRasterCount(ds);
    int n_ch = n_bands >= 3 ? 3 : 1; // 2 bands = grey + alpha: the grey band alone
    GDALRasterBandH b1 = GDALGetRasterBand(ds, 1);
    GDALDataType dt = GDALGetRasterDataType(b1);
    if (GDALDataTypeIsComplex(dt)) {
        GS_LOG_ERROR("could not read raster \"%s\": complex data type %s is not supported", path,
                     GDALGetDataTypeName(dt));
        return GS_EUNSUPPORTED;
    }
    GDALColorTableH ct = GDALGetRasterColorTable(b1);
    if (n_ch == 1 && ct && GDALGetRasterColorInterpretation(b1) == GCI_PaletteIndex &&
        GDALGetPaletteInterpretation(ct) == GPI_RGB)
        return read_paletted(b1, ct, w, h, rgb, path);
    for (int c = 1; c < n_ch; c++) {
        if (GDALGetRasterDataType(GDALGetRasterBand(ds, c + 1)) != dt) {
            dt = GDT_Float32; // mixed types: take the general path
            break;
        }
    }
    if (dt != GDT_Byte)
        return read_stretched(ds, n_ch, w, h, rgb, path);
    int map[3] = {1, 2, 3};
    CPLErrorReset();
    // Pixel-interleaved straight into the output: pixel space 3, line space 3w, band space 1.
    if (GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, rgb, w, h, GDT_Byte, n_ch, map, 3,
                            (GSpacing)3 * w, 1) != CE_None) {
        GS_LOG_ERROR("could not read raster \"%s\": %s", path, cpl_msg("read failed"));
        return GS_EIO;
    }
    if (n_ch == 1) {
        size_t n = (size_t)w * (size_t)h;
        for (size_t i = 0; i < n; i++)
            rgb[3 * i + 1] = rgb[3 * i + 2] = rgb[3 * i];
    }
    return GS_OK;
}

gs_err gs_raster_read_rgb8(const char *path, uint8_t **out_rgb, int *out_w, int *out_h)
{
    if (!path || !out_rgb || !out_w || !out_h)
        return GS_EINVAL;
    gs_raster_init();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                                 NULL, NULL, NULL);
    if (!ds) {
        GS_LOG_ERROR("could not open raster \"%s\": %s", path, cpl_msg("not a readable raster"));
        return GS_EIO;
    }
    gs_err err = GS_OK;
    uint8_t *rgb = NULL;
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    if (GDALGetRasterCount(ds) < 1) {
        GS_LOG_ERROR("could not read raster \"%s\": it has no raster bands", path);
        err = GS_EUNSUPPORTED;
        goto out;
    }
    if ((int64_t)w * h > GS_RASTER_RGB8_MAX_PIXELS) {
        GS_LOG_ERROR("could not read raster \"%s\": %dx%d pixels is more than the %lld allowed",
                     path, w, h, (long long)GS_RASTER_RGB8_MAX_PIXELS);
        err = GS_ETOOBIG;
        goto out;
    }
    rgb = gs_trymalloc((size_t)w * (size_t)h * 3);
    if (!rgb) {
        err = GS_ENOMEM;
        goto out;
    }
    err = read_rgb8_ds(ds, path, w, h, rgb);
out:
    GDALClose(ds);
    if (err != GS_OK) {
        gs_free(rgb);
        return err;
    }
    *out_rgb = rgb;
    *out_w = w;
    *out_h = h;
    return GS_OK;
}

// ---- PNG chips (thumbnails) ---------------------------------------------------------------

// chip_to_rgb8: float samples (n_ch planes of n) to RGB8: Byte data copied, other types
// stretched min-max over the valid values; nodata and non-finite values become 0.
static void chip_to_rgb8(GDALDatasetH ds, float *v, int n_ch, size_t n, int is_byte, uint8_t *rgb)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < n_ch; c++) {
        int has_nd = 0;
        double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(ds, c + 1), &has_nd);
        for (float *p = v + (size_t)c * n; p < v + (size_t)(c + 1) * n; p++) {
            if (!isfinite(*p) || (has_nd && (double)*p == (double)(float)nd)) {
                *p = NAN;
                continue;
            }
            lo = *p < lo ? *p : lo;
            hi = *p > hi ? *p : hi;
        }
    }
    double scale = is_byte ? 1.0 : hi > lo ? 255.0 / (hi - lo) : 0.0, off = is_byte ? 0.0 : lo;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float x = v[(size_t)(c < n_ch ? c : 0) * n + i];
            double s = isnan(x) ? 0.0 : ((double)x - off) * scale + 0.5;
            rgb[(size_t)c * n + i] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
        }
}

void gs_raster_fit(int w, int h, int max_side, int *out_w, int *out_h)
{
    int ow = w >= h ? (w < max_side ? w : max_side) : (int)((int64_t)w * max_side / h);
    int oh = h >= w ? (h < max_side ? h : max_side) : (int)((int64_t)h * max_side / w);
    *out_w = ow < 1 ? 1 : ow > w ? w : ow;
    *out_h = oh < 1 ? 1 : oh > h ? h : oh;
}

gs_err gs_raster_write_png_chip(const char *path, int x, int y, int w, int h, int max_side,
                                const char *png_path)
{
    if (!path || !png_path || w < 1 || h < 1 || max_side < 1)
        return GS_EINVAL;
    gs_raster_init();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        GS_LOG_ERROR("could not open raster \"%s\": %s", path, cpl_msg("not a readable raster"));
        return GS_EIO;
    }
    gs_err err = GS_OK;
    float *v = NULL;
    uint8_t *rgb = NULL;
    GDALDatasetH mem = NULL, png = NULL;
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds), nb = GDALGetRasterCount(ds);
    int x1 = x + w < W ? x + w : W, y1 = y + h < H ? y + h : H;
    x = x > 0 ? x : 0, y = y > 0 ? y : 0, w = x1 - x, h = y1 - y;
    if (nb < 1 || w < 1 || h < 1 || GDALDataTypeIsComplex(GDALGetRasterDataType(
                                         GDALGetRasterBand(ds, 1)))) {
        GS_LOG_ERROR("could not render raster \"%s\": %s", path,
                     nb < 1 ? "no raster bands" : w < 1 || h < 1 ? "the window is outside it"
                                                                 : "complex data");
        err = nb < 1 || w >= 1 ? GS_EUNSUPPORTED : GS_EINVAL;
        goto out;
    }
    int n_ch = nb >= 3 ? 3 : 1, map[3] = {1, 2, 3};
    int ow, oh;
    gs_raster_fit(w, h, max_side, &ow, &oh);
    size_t n = (size_t)ow * (size_t)oh;
    v = gs_trymalloc(n * 3 * sizeof *v);
    rgb = gs_trymalloc(n * 3);
    if (!v || !rgb) {
        err = GS_ENOMEM;
        goto out;
    }
    GDALRasterIOExtraArg ea;
    INIT_RASTERIO_EXTRA_ARG(ea);
    ea.eResampleAlg = GRIORA_Average;
    if (GDALDatasetRasterIOEx(ds, GF_Read, x, y, w, h, v, ow, oh, GDT_Float32, n_ch, map, 0, 0, 0,
                              &ea) != CE_None) {
        GS_LOG_ERROR("could not read raster \"%s\": %s", path, cpl_msg("read failed"));
        err = GS_EIO;
        goto out;
    }
    int is_byte = GDALGetRasterDataType(GDALGetRasterBand(ds, 1)) == GDT_Byte;
    chip_to_rgb8(ds, v, n_ch, n, is_byte, rgb);
    mem = GDALCreate(GDALGetDriverByName("MEM"), "", ow, oh, 3, GDT_Byte, NULL);
    if (!mem || GDALDatasetRasterIO(mem, GF_Write, 0, 0, ow, oh, rgb, ow, oh, GDT_Byte, 3, map, 0,
                                    0, 0) != CE_None ||
        !(png = GDALCreateCopy(GDALGetDriverByName("PNG"), png_path, mem, FALSE, NULL, NULL,
                               NULL))) {
        GS_LOG_ERROR("could not write PNG \"%s\": %s", png_path, cpl_msg("write failed"));
        err = GS_EIO;
    }
out:
    if (png)
        GDALClose(png);
    if (mem)
        GDALClose(mem);
    GDALClose(ds);
    gs_free(v);
    gs_free(rgb);
    return err;
}

gs_err gs_raster_write_png_rgb8(const uint8_t *rgb_hwc, int w, int h, const char *png_path)
{
    if (!rgb_hwc || !png_path || w < 1 || h < 1)
        return GS_EINVAL;
    gs_raster_init();
    CPLErrorReset();
    int map[3] = {1, 2, 3};
    gs_err err = GS_OK;
    GDALDatasetH png = NULL, mem = GDALCreate(GDALGetDriverByName("MEM"), "", w, h, 3, GDT_Byte,
                                              NULL);
    if (!mem ||
        GDALDatasetRasterIO(mem, GF_Write, 0, 0, w, h, (void *)rgb_hwc, w, h, GDT_Byte, 3, map, 3,
                            3 * w, 1) != CE_None ||
        !(png = GDALCreateCopy(GDALGetDriverByName("PNG"), png_path, mem, FALSE, NULL, NULL,
                               NULL))) {
        GS_LOG_ERROR("could not write PNG \"%s\": %s", png_path, cpl_msg("write failed"));
        err = GS_EIO;
    }
    if (png)
        GDALClose(png);
    if (mem)
        GDALClose(mem);
    return err;
}

// ---- datasets (raster_int.h) --------------------------------------------------------------

struct gs__rds {
    GDALDatasetH ds;
    char *path; // owned
};

static void set_reason(char *reason, size_t n, const char *fmt, const char *a, const char *b)
{
    if (reason && n)
        snprintf(reason, n, fmt, a, b);
}

gs_err gs__rds_open(const char *path, gs__rds_t **out, char *reason, size_t reason_nbytes)
{
    gs_raster_init();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                                 NULL, NULL, NULL);
    if (!ds) {
        set_reason(reason, reason_nbytes, "could not open \"%s\": %s", path,
                   cpl_msg("not a readable raster"));
        return GS_EIO;
    }
    gs__rds_t *self = gs_xcalloc(1, sizeof *self);
    self->ds = ds;
    self->path = gs_xstrdup(path);
    *out = self;
    return GS_OK;
}

void gs__rds_close(gs__rds_t **p)
{
    if (!p || !*p)
        return;
    GDALClose((*p)->ds);
    gs_free((*p)->path);
    GS_FREE(*p);
}

int gs__rds_width(const gs__rds_t *self)
{
    return GDALGetRasterXSize(self->ds);
}
int gs__rds_height(const gs__rds_t *self)
{
    return GDALGetRasterYSize(self->ds);
}
int gs__rds_count(const gs__rds_t *self)
{
    return GDALGetRasterCount(self->ds);
}

const char *gs__rds_crs_wkt(gs__rds_t *self)
{
    const char *w = GDALGetProjectionRef(self->ds);
    return w ? w : "";
}

int gs__rds_geotransform(gs__rds_t *self, double gt[6])
{
    // GDAL returns CE_Failure (and the default 0,1,0,0,0,1) when the raster has none
    CPLErrorReset();
    return GDALGetGeoTransform(self->ds, gt) == CE_None;
}

gs_err gs__rds_band(gs__rds_t *self, int b, gs__band_t *out)
{
    if (b < 1 || b > GDALGetRasterCount(self->ds))
        return GS_EINVAL;
    GDALRasterBandH band = GDALGetRasterBand(self->ds, b);
    GDALDataType dt = GDALGetRasterDataType(band);
    memset(out, 0, sizeof *out);
    out->dtype = GDALGetDataTypeName(dt);
    out->bits = GDALGetDataTypeSizeBits(dt);
    out->is_float = GDALDataTypeIsFloating(dt) && !GDALDataTypeIsComplex(dt);
    out->is_complex = GDALDataTypeIsComplex(dt);
    out->nodata = GDALGetRasterNoDataValue(band, &out->has_nodata);
    const char *d = GDALGetDescription(band);
    out->desc = d ? d : "";
    out->colour = GDALGetColorInterpretationName(GDALGetRasterColorInterpretation(band));
    out->all_valid = GDALGetMaskFlags(band) == GMF_ALL_VALID;
    GDALGetBlockSize(band, &out->block_w, &out->block_h);
    return GS_OK;
}

const char *gs__rds_metadata(gs__rds_t *self, const char *key, const char *domain)
{
    return GDALGetMetadataItem(self->ds, key, domain);
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && EQUAL(s + n - m, suffix);
}

char *gs__rds_sibling(gs__rds_t *self, const char *suffix)
{
    char **files = GDALGetFileList(self->ds);
    char *found = NULL;
    for (int i = 0; files && files[i] && !found; i++)
        if (ends_with_ci(files[i], suffix))
            found = gs_xstrdup(files[i]);
    CSLDestroy(files);
    return found;
}

// The integer window enclosing a fractional one, clamped to the band.
static void int_window(GDALRasterBandH band, const gs__win_t *w, int *x, int *y, int *xs, int *ys)
{
    int bw = GDALGetRasterBandXSize(band), bh = GDALGetRasterBandYSize(band);
    int x0 = (int)floor(w->x + 1e-9), y0 = (int)floor(w->y + 1e-9);
    int x1 = (int)ceil(w->x + w->w - 1e-9), y1 = (int)ceil(w->y + w->h - 1e-9);
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > bw ? bw : x1;
    y1 = y1 > bh ? bh : y1;
    *x = x0;
    *y = y0;
    *xs = x1 - x0;
    *ys = y1 - y0;
}

static gs_err band_io(gs__rds_t *self, GDALRasterBandH band, const gs__win_t *win, int buf_w,
                      int buf_h, GDALDataType buf_type, void *out, GDALRIOResampleAlg alg,
                      char *reason, size_t reason_nbytes)
{
    if (buf_w < 1 || buf_h < 1 || win->w <= 0 || win->h <= 0 || win->x < -1e-6 || win->y < -1e-6 ||
        win->x + win->w > GDALGetRasterBandXSize(band) + 1e-6 ||
        win->y + win->h > GDALGetRasterBandYSize(band) + 1e-6)
        return GS_EINVAL;
    int x, y, xs, ys;
    int_window(band, win, &x, &y, &xs, &ys);
    GDALRasterIOExtraArg a;
    INIT_RASTERIO_EXTRA_ARG(a);
    a.eResampleAlg = alg;
    int exact = x == win->x && y == win->y && xs == win->w && ys == win->h;
    if (!exact) {
        a.bFloatingPointWindowValidity = TRUE;
        a.dfXOff = win->x;
        a.dfYOff = win->y;
        a.dfXSize = win->w;
        a.dfYSize = win->h;
    }
    CPLErrorReset();
    if (GDALRasterIOEx(band, GF_Read, x, y, xs, ys, out, buf_w, buf_h, buf_type, 0, 0, &a) !=
        CE_None) {
        set_reason(reason, reason_nbytes, "could not read \"%s\": %s", self->path,
                   cpl_msg("read failed"));
        return GS_EIO;
    }
    return GS_OK;
}

gs_err gs__rds_read(gs__rds_t *self, int b, const gs__win_t *win, int buf_w, int buf_h,
                    int decimate, float *out, char *reason, size_t reason_nbytes)
{
    if (b < 1 || b > GDALGetRasterCount(self->ds))
        return GS_EINVAL;
    GDALRasterBandH band = GDALGetRasterBand(self->ds, b);
    // nearest lets GDAL pick an overview for samples; bilinear for resampled band grids
    GDALRIOResampleAlg alg = decimate ? GRIORA_NearestNeighbour : GRIORA_Bilinear;
    return band_io(self, band, win, buf_w, buf_h, GDT_Float32, out, alg, reason, reason_nbytes);
}

gs_err gs__rds_read_mask(gs__rds_t *self, int b, const gs__win_t *win, int buf_w, int buf_h,
                         uint8_t *out, char *reason, size_t reason_nbytes)
{
    if (b < 1 || b > GDALGetRasterCount(self->ds))
        return GS_EINVAL;
    GDALRasterBandH mask = GDALGetMaskBand(GDALGetRasterBand(self->ds, b));
    return band_io(self, mask, win, buf_w, buf_h, GDT_Byte, out, GRIORA_NearestNeighbour, reason,
                   reason_nbytes);
}

gs_err gs__rds_check_blocks(gs__rds_t *self, int b, char *reason, size_t reason_nbytes)
{
    if (b < 1 || b > GDALGetRasterCount(self->ds))
        return GS_EINVAL;
    GDALRasterBandH band = GDALGetRasterBand(self->ds, b);
    int bw, bh;
    GDALGetBlockSize(band, &bw, &bh);
    int nbx = (GDALGetRasterBandXSize(band) + bw - 1) / bw;
    int nby = (GDALGetRasterBandYSize(band) + bh - 1) / bh;
    size_t nbytes =
        (size_t)bw * (size_t)bh * (size_t)GDALGetDataTypeSizeBytes(GDALGetRasterDataType(band));
    void *buf = gs_trymalloc(nbytes);
    if (!buf)
        return GS_ENOMEM;
    gs_err err = GS_OK;
    CPLErrorReset();
    // GDALReadBlock bypasses the block cache's dirty logic and reads exactly one block
    if (GDALReadBlock(band, 0, 0, buf) != CE_None ||
        GDALReadBlock(band, nbx - 1, nby - 1, buf) != CE_None) {
        set_reason(reason, reason_nbytes, "could not read \"%s\": %s", self->path,
                   cpl_msg("read failed"));
        err = GS_EIO;
    }
    gs_free(buf);
    return err;
}

// ---- coordinates --------------------------------------------------------------------------

struct gs__xform {
    OGRSpatialReferenceH src, dst;
    OGRCoordinateTransformationH ct;
};

void gs__xform_destroy(gs__xform_t **p)
{
    if (!p || !*p)
        return;
    if ((*p)->ct)
        OCTDestroyCoordinateTransformation((*p)->ct);
    if ((*p)->src)
        OSRDestroySpatialReference((*p)->src);
    if ((*p)->dst)
        OSRDestroySpatialReference((*p)->dst);
    GS_FREE(*p);
}

gs_err gs__xform_new(const char *wkt, gs__xform_t **out, char *reason, size_t reason_nbytes)
{
    gs_raster_init();
    gs__xform_t *self = gs_xcalloc(1, sizeof *self);
    self->src = OSRNewSpatialReference(NULL);
    self->dst = OSRNewSpatialReference(NULL);
    CPLErrorReset();
    if (!wkt || !*wkt || OSRSetFromUserInput(self->src, wkt) != OGRERR_NONE) {
        set_reason(reason, reason_nbytes, "%s%s",
                   "the coordinate reference system is unusable: ", cpl_msg("no CRS"));
        gs__xform_destroy(&self);
        return GS_EFORMAT;
    }
    OSRImportFromEPSG(self->dst, 4326);
    // GDAL 3 otherwise gives EPSG:4326 as (lat, lon): force x = lon, y = lat on both sides
    OSRSetAxisMappingStrategy(self->src, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(self->dst, OAMS_TRADITIONAL_GIS_ORDER);
    self->ct = OCTNewCoordinateTransformation(self->src, self->dst);
    if (!self->ct) {
        set_reason(reason, reason_nbytes, "%s%s",
                   "no transformation to lon/lat: ", cpl_msg("PROJ refused"));
        gs__xform_destroy(&self);
        return GS_EFORMAT;
    }
    *out = self;
    return GS_OK;
}

int gs__xform_apply(gs__xform_t *self, int n, double *x, double *y, int *ok)
{
    for (int i = 0; i < n; i++)
        ok[i] = 0;
    OCTTransformEx(self->ct, n, x, y, NULL, ok);
    int n_ok = 0;
    for (int i = 0; i < n; i++) {
        if (ok[i] && (!isfinite(x[i]) || !isfinite(y[i])))
            ok[i] = 0;
        n_ok += ok[i] != 0;
    }
    return n_ok;
}

// ---- files --------------------------------------------------------------------------------

gs_err gs__vsi_stat(const char *path, gs__stat_t *out)
{
    gs_raster_init();
    memset(out, 0, sizeof *out);
    VSIStatBufL st;
    if (VSIStatExL(path, &st, VSI_STAT_EXISTS_FLAG | VSI_STAT_NATURE_FLAG | VSI_STAT_SIZE_FLAG) !=
        0)
        return GS_OK;
    out->exists = 1;
    out->is_dir = VSI_ISDIR(st.st_mode) ? 1 : 0;
    out->size = (int64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtime;
    return GS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

gs_err gs__vsi_list(const char *dir, char ***out_names, size_t *out_n)
{
    gs_raster_init();
    CPLErrorReset();
    char **names = VSIReadDirEx(dir, 0);
    if (!names) {
        // an empty directory also gives NULL: tell it apart from an unreadable one
        VSIStatBufL st;
        if (VSIStatL(dir, &st) != 0 || !VSI_ISDIR(st.st_mode))
            return GS_EIO;
    }
    size_t n = 0;
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], ".") != 0 && strcmp(names[i], "..") != 0)
            n++;
    char **v = gs_xcalloc(n + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], ".") != 0 && strcmp(names[i], "..") != 0)
            v[k++] = gs_xstrdup(names[i]);
    CSLDestroy(names);
    qsort(v, n, sizeof *v, cmp_str);
    *out_names = v;
    *out_n = n;
    return GS_OK;
}

void gs__strv_free(char ***p)
{
    if (!p || !*p)
        return;
    for (size_t i = 0; (*p)[i]; i++)
        gs_free((*p)[i]);
    GS_FREE(*p);
}

gs_err gs__vsi_read_text(const char *path, size_t cap_nbytes, char **out, size_t *out_n)
{
    gs_raster_init();
    VSILFILE *f = VSIFOpenExL(path, "rb", FALSE);
    if (!f)
        return GS_EIO;
    gs_err err = GS_OK;
    size_t alloc = 4096, n = 0;
    char *buf = gs_xmalloc(alloc);
    for (;;) {
        if (n + 1 >= alloc) {
            if (alloc > cap_nbytes) {
                err = GS_ETOOBIG;
                break;
            }
            alloc *= 2;
            buf = gs_xrealloc(buf, alloc);
        }
        size_t got = VSIFReadL(buf + n, 1, alloc - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    VSIFCloseL(f);
    if (err == GS_OK && n > cap_nbytes)
        err = GS_ETOOBIG;
    if (err != GS_OK) {
        gs_free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    if (out_n)
        *out_n = n;
    return GS_OK;
}

enum { CHECKSUM_EDGE_NBYTES = 64 * 1024 };
static const uint64_t CHECKSUM_SEED = 0x67736373756D3176ULL; // "gscsum1v"

gs_err gs__vsi_checksum(const char *path, int full, uint64_t *out, char *reason,
                        size_t reason_nbytes)
{
    gs__stat_t st;
    gs__vsi_stat(path, &st);
    VSILFILE *f = st.exists ? VSIFOpenExL(path, "rb", TRUE) : NULL;
    if (!f) {
        set_reason(reason, reason_nbytes, "could not open \"%s\": %s", path,
                   st.exists ? cpl_msg("open failed") : "no such file");
        return GS_EIO;
    }
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = gs_xmalloc(CHUNK);
    uint64_t h = gs_hash_mix64(CHECKSUM_SEED ^ (uint64_t)st.size);
    gs_err err = GS_OK;
    if (!full) {
        // size, mtime and both ends: a rewrite or truncation changes at least one of them
        h = gs_hash_mix64(h ^ (uint64_t)st.mtime);
        uint64_t starts[2] = {
            0, st.size > CHECKSUM_EDGE_NBYTES ? (uint64_t)st.size - CHECKSUM_EDGE_NBYTES : 0};
        for (int i = 0; i < 2 && err == GS_OK; i++) {
            size_t want = (size_t)(st.size < CHECKSUM_EDGE_NBYTES ? st.size : CHECKSUM_EDGE_NBYTES);
            if (VSIFSeekL(f, starts[i], SEEK_SET) != 0 || VSIFReadL(buf, 1, want, f) != want)
                err = GS_EIO;
            else
                h = gs_hash_bytes(buf, want, h);
        }
    } else {
        size_t got, total = 0;
        while ((got = VSIFReadL(buf, 1, CHUNK, f)) > 0) {
            h = gs_hash_bytes(buf, got, h);
            total += got;
        }
        if ((int64_t)total != st.size)
            err = GS_EIO;
    }
    VSIFCloseL(f);
    gs_free(buf);
    if (err != GS_OK) {
        set_reason(reason, reason_nbytes, "could not read \"%s\": %s", path, "short read");
        return err;
    }
    *out = h;
    return GS_OK;
}
