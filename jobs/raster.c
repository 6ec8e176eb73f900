// The GDAL layer of geoscribe: the only file that includes GDAL headers. It offers the public
// whole-picture read (raster.h) and, through jobs/raster_int.h, datasets, windowed reads,
// coordinate transforms and VSI file access to the rest of jobs/. GDAL errors become GS_EIO with
// CPLGetLastErrorMsg() in the message; GDAL's own output goes to our log at DEBUG.
#define GS_LOG_MODULE "jobs"
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
