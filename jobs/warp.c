// Scenes resampled onto another grid, and the grids of change pairs (warp.h). This file talks
// to GDAL directly (gdalwarper.h, gdal_utils.h, ogr_srs_api.h): the warp API is not part of
// raster.c's small private layer, and keeping it here leaves that layer unchanged. A warped
// scene is a warped VRT (GDALCreateWarpedVRT) serialised to a /vsimem/ file, then opened as an
// ordinary scene by jobs/scene.c, so composites, masks, scaling and tile reads are the same
// code for warped and plain scenes. No GDAL type leaves this file.
#define GS_LOG_MODULE "jobs"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <gdalwarper.h>
#include <ogr_srs_api.h>

#include "common/alloc.h"
#include "jobs/raster.h"
#include "jobs/warp.h"

// ---- grids ----------------------------------------------------------------------------------

void gs_warp_grid_of(const gs_scene_t *scene, gs_warp_grid_t *out)
{
    const gs_scene_info_t *in = gs_scene_info(scene);
    out->crs_wkt = gs_xstrdup(in->crs_wkt);
    memcpy(out->gt, in->geotransform, sizeof out->gt);
    out->width = in->width;
    out->height = in->height;
}

void gs_warp_grid_cleanup(gs_warp_grid_t *self)
{
    GS_FREE(self->crs_wkt);
}

static int same_crs(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return 1;
    gs_raster_init();
    OGRSpatialReferenceH sa = OSRNewSpatialReference(NULL), sb = OSRNewSpatialReference(NULL);
    int same = OSRSetFromUserInput(sa, a) == OGRERR_NONE &&
               OSRSetFromUserInput(sb, b) == OGRERR_NONE && OSRIsSame(sa, sb);
    OSRDestroySpatialReference(sa);
    OSRDestroySpatialReference(sb);
    return same;
}

int gs_warp_grid_equal(const gs_warp_grid_t *a, const gs_warp_grid_t *b)
{
    if (a->width != b->width || a->height != b->height)
        return 0;
    double px = fmax(fabs(a->gt[1]), fabs(a->gt[5]));
    for (int i = 0; i < 6; i++)
        if (!(fabs(a->gt[i] - b->gt[i]) <= 1e-6 * px))
            return 0;
    return same_crs(a->crs_wkt ? a->crs_wkt : "", b->crs_wkt ? b->crs_wkt : "");
}

// footprint_box: the bbox of a scene's lon/lat footprint transformed by ct.
static int footprint_box(const gs_scene_info_t *in, OGRCoordinateTransformationH ct, double box[4])
{
    int n = in->n_footprint;
    if (n < 1)
        return 0;
    double *x = gs_xcalloc((size_t)n, sizeof *x), *y = gs_xcalloc((size_t)n, sizeof *y);
    int *ok = gs_xcalloc((size_t)n, sizeof *ok);
    for (int i = 0; i < n; i++) {
        x[i] = in->footprint[2 * i];
        y[i] = in->footprint[2 * i + 1];
    }
    OCTTransformEx(ct, n, x, y, NULL, ok);
    int got = 0;
    for (int i = 0; i < n; i++) {
        if (!ok[i] || !isfinite(x[i]) || !isfinite(y[i]))
            continue;
        if (!got++) {
            box[0] = box[2] = x[i];
            box[1] = box[3] = y[i];
        }
        box[0] = fmin(box[0], x[i]);
        box[1] = fmin(box[1], y[i]);
        box[2] = fmax(box[2], x[i]);
        box[3] = fmax(box[3], y[i]);
    }
    gs_free(x);
    gs_free(y);
    gs_free(ok);
    return got > 0;
}

gs_err gs_warp_pair_grid(const gs_job_t *job, const gs_scene_t *before, const gs_scene_t *after,
                         gs_warp_grid_t *out, char *reason, size_t reason_nbytes)
{
    if (job->changes.grid == GS_JOB_GRID_LATER) {
        gs_warp_grid_of(after, out);
        return GS_OK;
    }
    return gs_warp_grid_crs(job->changes.crs, job->changes.resolution, before, after, out, reason,
                            reason_nbytes);
}

gs_err gs_warp_grid_crs(const char *crs, double resolution, const gs_scene_t *a,
                        const gs_scene_t *b, gs_warp_grid_t *out, char *reason,
                        size_t reason_nbytes)
{
    memset(out, 0, sizeof *out);
    if (!crs || !(resolution > 0)) {
        snprintf(reason, reason_nbytes, "a grid needs a CRS and a resolution above 0");
        return GS_EINVAL;
    }
    gs_raster_init();
    gs_err e = GS_OK;
    OGRSpatialReferenceH dst = OSRNewSpatialReference(NULL), ll = OSRNewSpatialReference(NULL);
    OGRCoordinateTransformationH ct = NULL;
    char *wkt = NULL;
    CPLErrorReset();
    if (OSRSetFromUserInput(dst, crs) != OGRERR_NONE || OSRExportToWkt(dst, &wkt) != OGRERR_NONE) {
        snprintf(reason, reason_nbytes, "changes.crs \"%s\" is not a CRS GDAL knows: %s", crs,
                 CPLGetLastErrorMsg());
        e = GS_EINVAL;
        goto out;
    }
    OSRImportFromEPSG(ll, 4326);
    OSRSetAxisMappingStrategy(ll, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(dst, OAMS_TRADITIONAL_GIS_ORDER);
    ct = OCTNewCoordinateTransformation(ll, dst);
    double ba[4], bb[4];
    if (!ct || !footprint_box(gs_scene_info(a), ct, ba) ||
        !footprint_box(gs_scene_info(b), ct, bb)) {
        snprintf(reason, reason_nbytes, "the scene footprints cannot be transformed to \"%s\"",
                 crs);
        e = GS_ENOTFOUND;
        goto out;
    }
    double x0 = floor(fmax(ba[0], bb[0]) / resolution) * resolution;
    double y0 = floor(fmax(ba[1], bb[1]) / resolution) * resolution;
    double x1 = ceil(fmin(ba[2], bb[2]) / resolution) * resolution;
    double y1 = ceil(fmin(ba[3], bb[3]) / resolution) * resolution;
    if (!(x1 > x0 && y1 > y0)) {
        snprintf(reason, reason_nbytes, "the scene footprints do not meet in \"%s\"", crs);
        e = GS_ENOTFOUND;
        goto out;
    }
    double w = round((x1 - x0) / resolution), h = round((y1 - y0) / resolution);
    if (w > GS_WARP_MAX_SIDE || h > GS_WARP_MAX_SIDE) {
        snprintf(reason, reason_nbytes,
                 "a grid of %.0f x %.0f pixels at %g is too large (at most "
                 "%d a side)",
                 w, h, resolution, GS_WARP_MAX_SIDE);
        e = GS_ETOOBIG;
        goto out;
    }
    out->crs_wkt = gs_xstrdup(wkt);
    out->gt[0] = x0;
    out->gt[1] = resolution;
    out->gt[3] = y1;
    out->gt[5] = -resolution;
    out->width = (int)w;
    out->height = (int)h;
out:
    CPLFree(wkt);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(dst);
    OSRDestroySpatialReference(ll);
    return e;
}

// ---- warped scenes --------------------------------------------------------------------------

struct gs_warp {
    gs_scene_t *source; // the scene as the job opens it
    gs_scene_t *scene;  // the warped VRT opened as a scene
    gs_job_t *job;      // the job the warped scene is opened under (bands 1..n, no group)
    char vrt[96];       // /vsimem/ path of the warped VRT
    char stack[96];     // /vsimem/ path of the band stack of a multi-file scene, or ""
};

static GDALResampleAlg resample_alg(gs_job_resample_t r)
{
    return r == GS_JOB_RESAMPLE_NEAREST ? GRA_NearestNeighbour
           : r == GS_JOB_RESAMPLE_CUBIC ? GRA_Cubic
                                        : GRA_Bilinear;
}

// unique_names: /vsimem/ paths of this handle (process-wide unique).
static void unique_names(gs_warp_t *w)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static unsigned long counter;
    pthread_mutex_lock(&lock);
    unsigned long k = ++counter;
    pthread_mutex_unlock(&lock);
    snprintf(w->vrt, sizeof w->vrt, "/vsimem/gs-warp-%ld-%lu.vrt", (long)getpid(), k);
    snprintf(w->stack, sizeof w->stack, "/vsimem/gs-warp-%ld-%lu-stack.vrt", (long)getpid(), k);
}

// band_file: the file of composite band k of a multi-file source ({band} filled in).
static char *band_file(const gs_scene_info_t *in, int k)
{
    const char *uri = in->uri, *at = strstr(uri, "{band}");
    const char *hash = at ? strchr(at, '#') : NULL;
    if (!hash)
        return NULL;
    const char *band = in->band_names[in->composite_bands[k]];
    return gs_xasprintf("%.*s%s%.*s", (int)(at - uri), uri, band, (int)(hash - at - 6), at + 6);
}

// open_source_ds: the GDAL dataset to warp, and the 1-based bands of the composite in it: the
// file itself, or for a multi-file scene a band stack (VRT, -separate) of the composite files.
static GDALDatasetH open_source_ds(gs_warp_t *w, const gs_scene_info_t *in, int *bands,
                                   char *reason, size_t reason_nbytes)
{
    int n = in->n_composite_bands;
    if (!strstr(in->uri, "{band}")) {
        w->stack[0] = '\0';
        for (int k = 0; k < n; k++)
            bands[k] = in->composite_bands[k] + 1;
        GDALDatasetH ds = GDALOpen(in->uri, GA_ReadOnly);
        if (!ds)
            snprintf(reason, reason_nbytes, "could not open \"%s\": %s", in->uri,
                     CPLGetLastErrorMsg());
        return ds;
    }
    char *files[3] = {NULL, NULL, NULL};
    char *argv[] = {"-separate", "-resolution", "highest", NULL};
    for (int k = 0; k < n; k++) {
        files[k] = band_file(in, k);
        bands[k] = k + 1;
    }
    GDALBuildVRTOptions *o = GDALBuildVRTOptionsNew(argv, NULL);
    GDALDatasetH ds =
        o ? GDALBuildVRT(w->stack, n, NULL, (const char *const *)files, o, NULL) : NULL;
    GDALBuildVRTOptionsFree(o);
    for (int k = 0; k < n; k++)
        gs_free(files[k]);
    if (!ds)
        snprintf(reason, reason_nbytes, "could not stack the bands of \"%s\": %s", in->uri,
                 CPLGetLastErrorMsg());
    return ds;
}

// build_vrt: the warped VRT of the source onto the grid, written to w->vrt.
static gs_err build_vrt(gs_warp_t *w, const gs_job_t *job, const gs_warp_grid_t *grid, char *reason,
                        size_t reason_nbytes)
{
    const gs_scene_info_t *in = gs_scene_info(w->source);
    int n = in->n_composite_bands, bands[3] = {0, 0, 0};
    CPLErrorReset();
    GDALDatasetH src = open_source_ds(w, in, bands, reason, reason_nbytes);
    if (!src)
        return GS_EIO;
    gs_err e = GS_OK;
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    GDALDatasetH vrt = NULL, copy = NULL;
    wo->hSrcDS = src;
    wo->eResampleAlg = resample_alg(job->changes.resampling);
    wo->nBandCount = n;
    wo->panSrcBands = CPLMalloc(sizeof(int) * (size_t)n);
    wo->panDstBands = CPLMalloc(sizeof(int) * (size_t)n);
    int has_nodata = 0;
    double nodata[3] = {0, 0, 0};
    wo->eWorkingDataType = GDT_Byte;
    for (int k = 0; k < n; k++) {
        wo->panSrcBands[k] = bands[k];
        wo->panDstBands[k] = k + 1;
        int ok = 0;
        GDALRasterBandH hb = GDALGetRasterBand(src, bands[k]);
        if (!hb) {
            snprintf(reason, reason_nbytes, "\"%s\" has no band %d", in->uri, bands[k]);
            e = GS_EIO;
            goto out;
        }
        nodata[k] = GDALGetRasterNoDataValue(hb, &ok);
        has_nodata |= ok;
        wo->eWorkingDataType = GDALDataTypeUnion(wo->eWorkingDataType, GDALGetRasterDataType(hb));
    }
    if (has_nodata) {
        // every band gets one (the first band's where a band has none)
        double first = nodata[0];
        wo->padfSrcNoDataReal = CPLMalloc(sizeof(double) * (size_t)n);
        wo->padfDstNoDataReal = CPLMalloc(sizeof(double) * (size_t)n);
        for (int k = 0; k < n; k++) {
            int ok = 0;
            double v = GDALGetRasterNoDataValue(GDALGetRasterBand(src, bands[k]), &ok);
            wo->padfSrcNoDataReal[k] = wo->padfDstNoDataReal[k] = ok ? v : first;
        }
        wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", "NO_DATA");
    } else {
        // no nodata value: an alpha band marks what the source covers (and its own mask)
        wo->nDstAlphaBand = n + 1;
        wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", "0");
    }
    const char *src_wkt = GDALGetProjectionRef(src);
    double src_gt[6];
    if (GDALGetGeoTransform(src, src_gt) != CE_None || !src_wkt || !*src_wkt) {
        snprintf(reason, reason_nbytes, "\"%s\" has no geotransform or CRS to warp from", in->uri);
        e = GS_EIO;
        goto out;
    }
    wo->pTransformerArg =
        GDALCreateGenImgProjTransformer3(src_wkt, src_gt, grid->crs_wkt, grid->gt);
    wo->pfnTransformer = GDALGenImgProjTransform;
    if (!wo->pTransformerArg) {
        snprintf(reason, reason_nbytes, "no transform from \"%s\" to the pair's grid: %s", in->uri,
                 CPLGetLastErrorMsg());
        e = GS_EIO;
        goto out;
    }
    double gt[6];
    memcpy(gt, grid->gt, sizeof gt);
    vrt = GDALCreateWarpedVRT(src, grid->width, grid->height, gt, wo);
    if (vrt) {
        GDALSetProjection(vrt, grid->crs_wkt);
        copy = GDALCreateCopy(GDALGetDriverByName("VRT"), w->vrt, vrt, FALSE, NULL, NULL, NULL);
    }
    if (!vrt || !copy) {
        snprintf(reason, reason_nbytes, "could not warp \"%s\" onto the pair's grid: %s", in->uri,
                 CPLGetLastErrorMsg());
        e = GS_EIO;
    }
out:
    if (copy)
        GDALClose(copy);
    if (vrt)
        GDALClose(vrt); // it owns the transformer (and a reference to src)
    else if (wo->pTransformerArg)
        GDALDestroyGenImgProjTransformer(wo->pTransformerArg);
    GDALDestroyWarpOptions(wo); // the VRT keeps a copy of its own
    GDALClose(src);
    return e;
}

// derived_job: the job with the warped VRT's layout: bands 1..n in composite order, one file,
// no time (the source's time is what records use).
static gs_err derived_job(const gs_job_t *job, int n, gs_job_t **out, char *reason,
                          size_t reason_nbytes)
{
    char *canon = NULL;
    size_t len = 0;
    GS_TRY(gs_job_canonical(job, &canon, &len));
    const char *bands = n == 1   ? "composite.bands=1"
                        : n == 2 ? "composite.bands=1,2"
                                 : "composite.bands=1,2,3";
    const char *sets[] = {"scenes.group=", bands, "time.from=none"};
    gs_err e = gs_job_parse(canon, len, "<warp>", sets, 3, out, reason, reason_nbytes);
    gs_free(canon);
    return e;
}

gs_err gs_warp_onto(const gs_job_t *job, gs_scene_t *scene, const gs_warp_grid_t *grid,
                    gs_warp_t **warp, gs_scene_t **out, gs_scene_problem_t *out_problem,
                    char *reason, size_t reason_nbytes)
{
    *warp = NULL;
    *out = scene;
    gs_warp_grid_t own;
    gs_warp_grid_of(scene, &own);
    int same = gs_warp_grid_equal(&own, grid);
    gs_warp_grid_cleanup(&own);
    if (same)
        return GS_OK;
    *out = NULL;
    gs_err e = gs_warp_open(job, gs_scene_info(scene)->uri, grid, warp, out_problem, reason,
                            reason_nbytes);
    if (e == GS_OK)
        *out = gs_warp_scene(*warp);
    return e;
}

gs_err gs_warp_open(const gs_job_t *job, const char *uri, const gs_warp_grid_t *grid,
                    gs_warp_t **out, gs_scene_problem_t *out_problem, char *reason,
                    size_t reason_nbytes)
{
    *out = NULL;
    *out_problem = GS_SCENE_OK;
    gs_raster_init();
    gs_warp_t *w = gs_xcalloc(1, sizeof *w);
    unique_names(w);
    gs_err e = gs_scene_open(job, uri, &w->source, out_problem, reason, reason_nbytes);
    if (e == GS_OK)
        e = derived_job(job, gs_scene_info(w->source)->n_composite_bands, &w->job, reason,
                        reason_nbytes);
    if (e == GS_OK)
        e = build_vrt(w, job, grid, reason, reason_nbytes);
    if (e == GS_OK) {
        e = gs_scene_open(w->job, w->vrt, &w->scene, out_problem, reason, reason_nbytes);
        if (e == GS_EFORMAT && *out_problem == GS_SCENE_ALL_NODATA)
            snprintf(reason, reason_nbytes, "scene \"%s\" has no valid pixel on the pair's grid",
                     uri);
    }
    if (e != GS_OK) {
        gs_warp_close(&w);
        return e;
    }
    *out = w;
    return GS_OK;
}

gs_scene_t *gs_warp_scene(gs_warp_t *self)
{
    return self->scene;
}

const gs_scene_info_t *gs_warp_source(const gs_warp_t *self)
{
    return gs_scene_info(self->source);
}

void gs_warp_close(gs_warp_t **p)
{
    if (!p || !*p)
        return;
    gs_warp_t *w = *p;
    gs_scene_close(&w->scene);
    gs_scene_close(&w->source);
    gs_job_destroy(&w->job);
    VSIUnlink(w->vrt);
    if (w->stack[0])
        VSIUnlink(w->stack);
    gs_free(w);
    *p = NULL;
}
