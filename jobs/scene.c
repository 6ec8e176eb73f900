// Scenes (scene.h): one file or one file per band, opened through the private GDAL layer
// (raster_int.h). Open reads headers and two blocks per composite band; check reads one decimated
// sample per band for the scaling statistics; tiles.c reads windows.
#define GS_LOG_MODULE "jobs"
#define _XOPEN_SOURCE 700 // realpath
#include "jobs/scene.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "jobs/acqtime.h"
#include "jobs/hash.h"
#include "jobs/scene_int.h"

static const uint64_t SCENE_SEED = 0x67737363656E6531ULL; // "gsscene1"
enum { FOOT_PER_EDGE = 16, FOOT_GRID = 33 };

const char *gs_scene_problem_name(gs_scene_problem_t p)
{
    static const char *names[] = {"ok",     "unreadable", "truncated",
                                  "layout", "no_georef",  "all_nodata"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "unknown";
}

// The '#' that ends the file pattern of a group URI, or NULL for a one-file scene.
static const char *group_hash(const char *uri)
{
    const char *b = strstr(uri, "{band}");
    return b ? strchr(b, '#') : NULL;
}

uint64_t gs_scene_id_of(const char *uri)
{
    const char *h = group_hash(uri);
    size_t n = h ? (size_t)(h - uri) : strlen(uri);
    return gs_hash_bytes(uri, n, SCENE_SEED) & (uint64_t)INT64_MAX;
}

// ---- open: helpers
// ------------------------------------------------------------------------

typedef struct {
    gs_scene_problem_t *problem;
    char *reason;
    size_t reason_nbytes;
} why_t;

static gs_err bad(why_t *w, gs_scene_problem_t p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static gs_err bad(why_t *w, gs_scene_problem_t p, const char *fmt, ...)
{
    *w->problem = p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->reason, w->reason_nbytes, fmt, ap);
    va_end(ap);
    return GS_EFORMAT;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

// Same band name: case-insensitive, or equal numbers ("4" = "04"), or with a "B" prefix on the
// reference ("B04" names band "04" or "4").
static int same_band(const char *ref, const char *name)
{
    if (!strcasecmp(ref, name))
        return 1;
    if (all_digits(ref) && all_digits(name))
        return strtoul(ref, NULL, 10) == strtoul(name, NULL, 10);
    if ((ref[0] == 'B' || ref[0] == 'b') && ref[1])
        return same_band(ref + 1, name);
    return 0;
}

static void list_names(const gs_scene_t *s, char *out, size_t n)
{
    out[0] = '\0';
    for (int i = 0; i < s->info.n_bands && strlen(out) + 2 < n; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? ", " : "", s->band_names[i]);
}

// resolve: composite.bands -> 0-based positions in band_names.
static gs_err resolve(gs_scene_t *s, int is_group, why_t *w)
{
    const gs_job_t *j = s->job;
    int n = s->info.n_bands, *pos = s->info.composite_bands;
    char names[512];
    if (j->composite.n_bands == 0) {
        if (is_group) {
            list_names(s, names, sizeof names);
            return bad(w, GS_SCENE_LAYOUT,
                       "scene \"%s\": composite.bands must be given for a multi-file scene "
                       "(its bands: %s)",
                       s->uri, names);
        }
        s->info.n_composite_bands = n >= 3 ? 3 : 1;
        for (int c = 0; c < s->info.n_composite_bands; c++)
            pos[c] = c;
        // three bands that say they are red, green and blue are taken in that order
        static const char *rgb[3] = {"Red", "Green", "Blue"};
        int found[3] = {-1, -1, -1};
        for (int b = 0; b < n && n >= 3; b++) {
            gs__band_t f;
            gs__rds_band(s->files[0], b + 1, &f);
            for (int c = 0; c < 3; c++)
                if (!strcmp(f.colour, rgb[c]) && found[c] < 0)
                    found[c] = b;
        }
        if (found[0] >= 0 && found[1] >= 0 && found[2] >= 0)
            memcpy(pos, found, sizeof found);
        return GS_OK;
    }
    s->info.n_composite_bands = j->composite.n_bands;
    for (int c = 0; c < j->composite.n_bands; c++) {
        const char *ref = j->composite.bands[c];
        pos[c] = -1;
        if (!is_group && all_digits(ref)) {
            unsigned long v = strtoul(ref, NULL, 10);
            pos[c] = v >= 1 && v <= (unsigned long)n ? (int)v - 1 : -1;
        }
        for (int b = 0; b < n && pos[c] < 0; b++)
            if (is_group ? same_band(ref, s->band_names[b]) : !strcasecmp(ref, s->band_names[b]))
                pos[c] = b;
        for (int b = 0; b < n && pos[c] < 0 && !is_group; b++) {
            gs__band_t f;
            gs__rds_band(s->files[0], b + 1, &f);
            if (!strcasecmp(ref, f.colour))
                pos[c] = b;
        }
        if (pos[c] < 0) {
            list_names(s, names, sizeof names);
            return bad(w, GS_SCENE_LAYOUT, "scene \"%s\" has no band \"%s\" (its bands: %s)",
                       s->uri, ref, names);
        }
    }
    return GS_OK;
}

static gs_err add_source(gs_scene_t *s, gs__rds_t *rds, int band, why_t *w)
{
    gs__src_t *src = &s->src[s->n_src++];
    src->rds = rds;
    src->band = band;
    src->sx = src->sy = 1;
    gs__rds_band(rds, band, &src->facts);
    if (src->facts.is_complex)
        return bad(w, GS_SCENE_LAYOUT, "scene \"%s\": complex data (%s) is not supported", s->uri,
                   src->facts.dtype);
    return GS_OK;
}

// ---- open: one file
// -----------------------------------------------------------------------

static gs_err open_single(gs_scene_t *s, why_t *w)
{
    gs__rds_t *rds = NULL;
    if (gs__rds_open(s->uri, &rds, w->reason, w->reason_nbytes) != GS_OK) {
        *w->problem = GS_SCENE_UNREADABLE;
        return GS_EFORMAT;
    }
    s->files[s->n_files++] = rds;
    int n = gs__rds_count(rds);
    if (n < 1)
        return bad(w, GS_SCENE_LAYOUT, "scene \"%s\" has no raster bands", s->uri);
    s->info.n_bands = n;
    s->band_names = gs_xcalloc((size_t)n + 1, sizeof *s->band_names);
    for (int b = 0; b < n; b++) {
        gs__band_t f;
        gs__rds_band(rds, b + 1, &f);
        s->band_names[b] = *f.desc ? gs_xstrdup(f.desc) : gs_xasprintf("%d", b + 1);
    }
    GS_TRY(resolve(s, 0, w));
    for (int c = 0; c < s->info.n_composite_bands; c++)
        GS_TRY(add_source(s, rds, s->info.composite_bands[c] + 1, w));
    s->info.width = gs__rds_width(rds);
    s->info.height = gs__rds_height(rds);
    if (!gs__rds_geotransform(rds, s->info.geotransform))
        return bad(w, GS_SCENE_NO_GEOREF, "scene \"%s\" has no geotransform", s->uri);
    s->crs_wkt = gs_xstrdup(gs__rds_crs_wkt(rds));
    return GS_OK;
}

// ---- open: one file per band
// --------------------------------------------------------------

static char *band_path(const char *uri, const char *band)
{
    const char *at = strstr(uri, "{band}"), *end = group_hash(uri);
    return gs_xasprintf("%.*s%s%.*s", (int)(at - uri), uri, band, (int)(end - at - 6), at + 6);
}

static gs_err parse_group(gs_scene_t *s, why_t *w)
{
    const char *list = group_hash(s->uri) + 1;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    if (!*list)
        return bad(w, GS_SCENE_LAYOUT, "scene \"%s\" names no band", s->uri);
    s->band_names = gs_xcalloc((size_t)n + 1, sizeof *s->band_names);
    const char *p = list;
    for (int b = 0; b < n; b++) {
        size_t l = strcspn(p, ",");
        s->band_names[b] = gs_xstrndup(p, l);
        p += l + (p[l] == ',');
    }
    s->info.n_bands = n;
    return GS_OK;
}

// The band file sharing the scene's area: extents equal within half a scene pixel.
static gs_err fit_source(gs_scene_t *s, gs__src_t *src, const char *path, why_t *w)
{
    double gt[6];
    int bw = gs__rds_width(src->rds), bh = gs__rds_height(src->rds);
    const double *rg = s->info.geotransform;
    if (!gs__rds_geotransform(src->rds, gt))
        return bad(w, GS_SCENE_NO_GEOREF, "band file \"%s\" has no geotransform", path);
    if (strcmp(gs__rds_crs_wkt(src->rds), s->crs_wkt) != 0)
        return bad(w, GS_SCENE_LAYOUT,
                   "band file \"%s\" is not in the CRS of the scene's other "
                   "bands",
                   path);
    double ex[4] = {gt[0], gt[3], gt[0] + bw * gt[1], gt[3] + bh * gt[5]};
    double rx[4] = {rg[0], rg[3], rg[0] + s->info.width * rg[1], rg[3] + s->info.height * rg[5]};
    double tol_x = fabs(rg[1]) / 2, tol_y = fabs(rg[5]) / 2;
    if (gt[2] != 0 || gt[4] != 0 || rg[2] != 0 || rg[4] != 0 || fabs(ex[0] - rx[0]) > tol_x ||
        fabs(ex[2] - rx[2]) > tol_x || fabs(ex[1] - rx[1]) > tol_y || fabs(ex[3] - rx[3]) > tol_y)
        return bad(w, GS_SCENE_LAYOUT,
                   "band file \"%s\" does not cover the area of the scene's "
                   "other bands",
                   path);
    src->sx = (double)bw / s->info.width;
    src->sy = (double)bh / s->info.height;
    return GS_OK;
}

static gs_err open_group(gs_scene_t *s, why_t *w)
{
    GS_TRY(parse_group(s, w));
    GS_TRY(resolve(s, 1, w));
    int file_of[3], ref = 0;
    for (int c = 0; c < s->info.n_composite_bands; c++) {
        int b = s->info.composite_bands[c];
        file_of[c] = -1;
        for (int k = 0; k < c; k++)
            if (s->info.composite_bands[k] == b)
                file_of[c] = file_of[k];
        if (file_of[c] < 0) {
            char *path = band_path(s->uri, s->band_names[b]);
            gs__rds_t *rds = NULL;
            gs_err e = gs__rds_open(path, &rds, w->reason, w->reason_nbytes);
            if (e == GS_OK && gs__rds_count(rds) != 1)
                e = bad(w, GS_SCENE_LAYOUT,
                        "band file \"%s\" holds %d bands; a multi-file scene needs one "
                        "band a "
                        "file",
                        path, gs__rds_count(rds));
            else if (e != GS_OK)
                *w->problem = GS_SCENE_UNREADABLE, e = GS_EFORMAT;
            gs_free(path);
            if (rds)
                s->files[s->n_files++] = rds;
            if (e != GS_OK)
                return e;
            file_of[c] = s->n_files - 1;
        }
        GS_TRY(add_source(s, s->files[file_of[c]], 1, w));
        gs__rds_t *r = s->files[file_of[c]], *best = s->files[file_of[ref]];
        if ((int64_t)gs__rds_width(r) * gs__rds_height(r) >
            (int64_t)gs__rds_width(best) * gs__rds_height(best))
            ref = c;
    }
    // the finest band is the scene grid; the others are resampled onto it
    gs__rds_t *r = s->files[file_of[ref]];
    s->info.width = gs__rds_width(r);
    s->info.height = gs__rds_height(r);
    char *ref_path = band_path(s->uri, s->band_names[s->info.composite_bands[ref]]);
    gs_err e = GS_OK;
    if (!gs__rds_geotransform(r, s->info.geotransform))
        e = bad(w, GS_SCENE_NO_GEOREF, "band file \"%s\" has no geotransform", ref_path);
    gs_free(ref_path);
    if (e != GS_OK)
        return e;
    s->crs_wkt = gs_xstrdup(gs__rds_crs_wkt(r));
    for (int c = 0; c < s->n_src && e == GS_OK; c++) {
        char *path = band_path(s->uri, s->band_names[s->info.composite_bands[c]]);
        e = fit_source(s, &s->src[c], path, w);
        gs_free(path);
    }
    return e;
}

// ---- open: georeference, blocks, checksum, time
// -------------------------------------------

static void pixel_to_geo(const double *gt, double col, double row, double *x, double *y)
{
    *x = gt[0] + col * gt[1] + row * gt[2];
    *y = gt[3] + col * gt[4] + row * gt[5];
}

static void set_bbox_ring(gs_scene_t *s, const double *bb)
{
    static const int corner[5][2] = {{0, 3}, {2, 3}, {2, 1}, {0, 1}, {0, 3}};
    s->info.n_footprint = 5;
    s->footprint = gs_xmalloc(10 * sizeof *s->footprint);
    for (int i = 0; i < 5; i++) {
        s->footprint[2 * i] = bb[corner[i][0]];
        s->footprint[2 * i + 1] = bb[corner[i][1]];
    }
}

static void bbox_of(const double *x, const double *y, const int *ok, int n, double *bb)
{
    bb[0] = bb[1] = INFINITY;
    bb[2] = bb[3] = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        bb[0] = fmin(bb[0], x[i]);
        bb[1] = fmin(bb[1], y[i]);
        bb[2] = fmax(bb[2], x[i]);
        bb[3] = fmax(bb[3], y[i]);
    }
}

static gs_err footprint(gs_scene_t *s, why_t *w)
{
    char why[512];
    if (!*s->crs_wkt)
        return bad(w, GS_SCENE_NO_GEOREF, "scene \"%s\" has no coordinate reference system",
                   s->uri);
    if (gs__xform_new(s->crs_wkt, &s->xform, why, sizeof why) != GS_OK)
        return bad(w, GS_SCENE_NO_GEOREF, "scene \"%s\": %s", s->uri, why);
    enum { N = 4 * FOOT_PER_EDGE, G = FOOT_GRID * FOOT_GRID };
    double x[G], y[G];
    int ok[G];
    double W = s->info.width, H = s->info.height;
    const double edge[4][4] = {{0, 0, W, 0}, {W, 0, W, H}, {W, H, 0, H}, {0, H, 0, 0}};
    for (int e = 0; e < 4; e++)
        for (int k = 0; k < FOOT_PER_EDGE; k++) {
            double t = (double)k / FOOT_PER_EDGE;
            int i = e * FOOT_PER_EDGE + k;
            pixel_to_geo(s->info.geotransform, edge[e][0] + t * (edge[e][2] - edge[e][0]),
                         edge[e][1] + t * (edge[e][3] - edge[e][1]), &x[i], &y[i]);
        }
    if (gs__xform_apply(s->xform, N, x, y, ok) == N) {
        bbox_of(x, y, ok, N, s->info.bbox);
        s->info.n_footprint = N + 1;
        s->footprint = gs_xmalloc(2 * (N + 1) * sizeof *s->footprint);
        for (int i = 0; i <= N; i++) {
            s->footprint[2 * i] = x[i % N];
            s->footprint[2 * i + 1] = y[i % N];
        }
        return GS_OK;
    }
    // part of the outline is off the Earth: the bbox of a grid of points that transform
    for (int r = 0; r < FOOT_GRID; r++)
        for (int c = 0; c < FOOT_GRID; c++)
            pixel_to_geo(s->info.geotransform, W * c / (FOOT_GRID - 1), H * r / (FOOT_GRID - 1),
                         &x[r * FOOT_GRID + c], &y[r * FOOT_GRID + c]);
    if (gs__xform_apply(s->xform, G, x, y, ok) == 0)
        return bad(w, GS_SCENE_NO_GEOREF, "scene \"%s\": no pixel maps to lon/lat", s->uri);
    bbox_of(x, y, ok, G, s->info.bbox);
    set_bbox_ring(s, s->info.bbox);
    return GS_OK;
}

static gs_err checksum(gs_scene_t *s, why_t *w)
{
    int full = s->job->scenes.checksum == GS_JOB_CHECKSUM_FULL;
    if (!group_hash(s->uri)) {
        if (gs__vsi_checksum(s->uri, full, &s->info.checksum, w->reason, w->reason_nbytes) != GS_OK)
            return *w->problem = GS_SCENE_UNREADABLE, GS_EFORMAT;
        return GS_OK;
    }
    uint64_t h = SCENE_SEED;
    for (int b = 0; b < s->info.n_bands; b++) {
        char *path = band_path(s->uri, s->band_names[b]);
        uint64_t c = 0;
        gs_err e = gs__vsi_checksum(path, full, &c, w->reason, w->reason_nbytes);
        gs_free(path);
        if (e != GS_OK)
            return *w->problem = GS_SCENE_UNREADABLE, GS_EFORMAT;
        h = gs_hash_mix64(h ^ c);
    }
    s->info.checksum = h;
    return GS_OK;
}

// mtl_value: the value of `key = value` in an MTL text, unquoted, into out; 0 if absent.
static int mtl_value(const char *text, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strstr(p, key)); p += kl) {
        const char *q = p + kl;
        if ((p > text && !isspace((unsigned char)p[-1])) || (*q != ' ' && *q != '='))
            continue;
        while (*q == ' ')
            q++;
        if (*q++ != '=')
            continue;
        while (*q == ' ' || *q == '"')
            q++;
        size_t l = strcspn(q, "\"\r\n");
        snprintf(out, n, "%.*s", (int)l, q);
        return 1;
    }
    return 0;
}

static int time_from_mtl(gs_scene_t *s)
{
    char *path = gs__rds_sibling(s->src[0].rds, "_MTL.txt");
    char *text = NULL;
    int found = 0;
    if (path && gs__vsi_read_text(path, (size_t)4 << 20, &text, NULL) == GS_OK) {
        char date[64], clock[64] = "00:00:00", both[140];
        if (mtl_value(text, "DATE_ACQUIRED", date, sizeof date) ||
            mtl_value(text, "ACQUISITION_DATE", date, sizeof date)) {
            if (!mtl_value(text, "SCENE_CENTER_TIME", clock, sizeof clock))
                mtl_value(text, "SCENE_CENTER_SCAN_TIME", clock, sizeof clock);
            snprintf(both, sizeof both, "%sT%s", date, clock);
            found = gs_acqtime_parse(both, &s->info.time) == GS_OK ||
                    gs_acqtime_parse(date, &s->info.time) == GS_OK;
        }
    }
    gs_free(text);
    gs_free(path);
    return found;
}

static int time_from_metadata(gs_scene_t *s)
{
    static const struct {
        const char *key, *domain, *source;
    } items[] = {{"ACQUISITIONDATETIME", "IMAGERY", "metadata:ACQUISITIONDATETIME"},
                 {"ACQUISITIONDATETIME", "", "metadata:ACQUISITIONDATETIME"},
                 {"TIFFTAG_DATETIME", "", "metadata:TIFFTAG_DATETIME"}};
    if (time_from_mtl(s)) {
        snprintf(s->time_source, sizeof s->time_source, "mtl");
        return 1;
    }
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        const char *v = gs__rds_metadata(s->src[0].rds, items[i].key, items[i].domain);
        // GDAL's Landsat reader reports 1970-01-01 00:00:00 when it cannot read the MTL date
        if (v && strncmp(v, "1970-01-01", 10) != 0 && gs_acqtime_parse(v, &s->info.time) == GS_OK) {
            snprintf(s->time_source, sizeof s->time_source, "%s", items[i].source);
            return 1;
        }
    }
    return 0;
}

static int time_from_name(gs_scene_t *s)
{
    const char *pat = s->job->time.pattern;
    if (!*pat)
        return 0;
    char *path = group_hash(s->uri) ? band_path(s->uri, s->band_names[s->info.composite_bands[0]])
                                    : gs_xstrdup(s->uri);
    const char *slash = strrchr(path, '/');
    const char *target = strchr(pat, '/') || !slash ? path : slash + 1;
    int ok = gs_acqtime_match(pat, target, &s->info.time) == GS_OK;
    gs_free(path);
    if (ok)
        snprintf(s->time_source, sizeof s->time_source, "filename");
    return ok;
}

static void find_time(gs_scene_t *s)
{
    const gs_job_t *j = s->job;
    int ok = 0;
    switch (j->time.from) {
    case GS_JOB_TIME_METADATA: ok = time_from_metadata(s) || time_from_name(s); break;
    case GS_JOB_TIME_FILENAME: ok = time_from_name(s); break;
    case GS_JOB_TIME_GIVEN:
        s->info.time = j->time.given;
        snprintf(s->time_source, sizeof s->time_source, "given");
        ok = 1;
        break;
    case GS_JOB_TIME_NONE: break;
    }
    s->info.has_time = ok;
    if (!ok)
        s->info.time = 0;
}

// ---- open
// ---------------------------------------------------------------------------------

static void publish(gs_scene_t *s)
{
    s->info.uri = s->uri;
    s->info.crs_wkt = s->crs_wkt ? s->crs_wkt : "";
    s->info.band_names = (const char *const *)s->band_names;
    s->info.footprint = s->footprint;
    s->info.time_source = s->time_source;
    s->info.id = gs_scene_id_of(s->uri);
    if (s->n_src > 0) {
        s->info.dtype = s->src[0].facts.dtype;
        s->info.has_nodata = s->src[0].facts.has_nodata;
        s->info.nodata = s->src[0].facts.nodata;
    }
    s->zero_is_nodata = 1;
    for (int k = 0; k < s->n_src; k++)
        s->zero_is_nodata &= s->src[k].facts.all_valid;
}

gs_err gs_scene_open(const gs_job_t *job, const char *uri, gs_scene_t **out,
                     gs_scene_problem_t *out_problem, char *reason, size_t reason_nbytes)
{
    if (!job || !uri || !out)
        return GS_EINVAL;
    gs_scene_problem_t problem = GS_SCENE_OK;
    char local[16];
    why_t w = {&problem, reason ? reason : local, reason ? reason_nbytes : sizeof local};
    w.reason[0] = '\0';
    gs_scene_t *s = gs_xcalloc(1, sizeof *s);
    s->job = job;
    char buf[PATH_MAX];
    int local_file = !group_hash(uri) && strncmp(uri, "/vsi", 4) != 0;
    s->uri = gs_xstrdup(local_file && realpath(uri, buf) ? buf : uri);
    gs_err e = group_hash(s->uri) ? open_group(s, &w) : open_single(s, &w);
    for (int k = 0; k < s->n_src && e == GS_OK; k++) {
        char why[600];
        if (gs__rds_check_blocks(s->src[k].rds, s->src[k].band, why, sizeof why) != GS_OK)
            e = bad(&w, GS_SCENE_TRUNCATED, "scene \"%s\" is truncated or corrupt: %s", s->uri,
                    why);
    }
    if (e == GS_OK)
        e = footprint(s, &w);
    if (e == GS_OK)
        e = checksum(s, &w);
    publish(s);
    if (e == GS_OK)
        find_time(s);
    if (out_problem)
        *out_problem = problem;
    if (e != GS_OK) {
        gs_scene_close(&s);
        return e;
    }
    *out = s;
    return GS_OK;
}

const gs_scene_info_t *gs_scene_info(const gs_scene_t *self)
{
    return &self->info;
}

void gs_scene_close(gs_scene_t **p)
{
    if (!p || !*p)
        return;
    gs_scene_t *s = *p;
    for (int k = 0; k < s->n_files; k++)
        gs__rds_close(&s->files[k]);
    gs__xform_destroy(&s->xform);
    for (int b = 0; s->band_names && b < s->info.n_bands; b++)
        gs_free(s->band_names[b]);
    gs_free(s->band_names);
    gs_free(s->footprint);
    gs_free(s->crs_wkt);
    gs_free(s->uri);
    GS_FREE(*p);
}

// ---- composite math
// -----------------------------------------------------------------------

void gs__scene_channels(const gs_scene_t *self, const float *const *src, const uint8_t *const *mask,
                        size_t n, float *const *ch, uint8_t *valid)
{
    // validity first, one simple loop per condition (they vectorise), then the channels
    memset(valid, 1, n);
    for (int k = 0; k < self->n_src; k++) {
        const float *v = src[k];
        if (mask[k])
            for (size_t i = 0; i < n; i++)
                valid[i] &= mask[k][i] != 0;
        for (size_t i = 0; i < n; i++)
            valid[i] &= isfinite(v[i]) ? 1 : 0;
    }
    if (self->zero_is_nodata) {
        for (size_t i = 0; i < n; i++) {
            int any = 0;
            for (int k = 0; k < self->n_src; k++)
                any |= src[k][i] != 0;
            valid[i] &= (uint8_t)any;
        }
    }
    if (self->job->composite.mode != GS_JOB_COMPOSITE_SAR) {
        for (int c = 0; c < 3; c++)
            memcpy(ch[c], src[self->n_src == 3 ? c : 0], n * sizeof(float));
        return;
    }
    int linear = self->job->composite.sar_units == GS_JOB_SAR_LINEAR;
    for (size_t i = 0; i < n; i++) {
        float vv = src[0][i], vh = src[1][i];
        if (linear) {
            valid[i] &= vv > 0 && vh > 0;
            vv = valid[i] ? 10.0f * log10f(vv) : 0;
            vh = valid[i] ? 10.0f * log10f(vh) : 0;
        }
        ch[0][i] = vv;
        ch[1][i] = vh;
        ch[2][i] = vv - vh;
    }
}

void gs__scene_to_u8(const gs_scene_t *self, const float *const *ch, const uint8_t *valid, size_t n,
                     uint8_t *rgb)
{
    for (int c = 0; c < 3; c++) {
        double lo = self->lo[c], scale = 255.0 / (self->hi[c] - self->lo[c]);
        const float *v = ch[c];
        for (size_t i = 0; i < n; i++) {
            // floor(q + 0.5) clamped to 0..255: after the clamp q >= 0, so truncation = floor
            double q = ((double)v[i] - lo) * scale + 0.5;
            q = q < 0 ? 0 : q > 255 ? 255 : q;
            rgb[3 * i + (size_t)c] = valid[i] ? (uint8_t)q : 0;
        }
    }
}

// ---- check: sample statistics
// -------------------------------------------------------------

// select_kth: reorders v[0..n) so that v[k] is the k-th smallest, smaller-or-equal values before it
// and greater-or-equal after (Hoare's selection: linear on average, and fine with many equal
// values, which 8-bit and 12-bit data have).
static void select_kth(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        for (;;) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i >= j)
                break;
            float t = v[i];
            v[i++] = v[j];
            v[j--] = t;
        }
        // v[lo..j] <= pivot <= v[j+1..hi]
        if (k <= j)
            hi = j;
        else
            lo = j + 1;
    }
}

// Percentile p of v[0..n) (reordered): linear between the closest ranks, numpy's default.
static double percentile(float *v, size_t n, double p)
{
    double pos = p / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    select_kth(v, n, i);
    if (i + 1 >= n)
        return v[i];
    float next = v[i + 1]; // the smallest value after the i-th
    for (size_t k = i + 2; k < n; k++)
        next = v[k] < next ? v[k] : next;
    return v[i] + (pos - (double)i) * ((double)next - v[i]);
}

static gs_job_scaling_t resolve_scaling(const gs_scene_t *s)
{
    gs_job_scaling_t sc = s->job->composite.scaling;
    if (sc != GS_JOB_SCALING_AUTO)
        return sc;
    if (s->job->composite.mode == GS_JOB_COMPOSITE_SAR)
        return GS_JOB_SCALING_PERCENTILE;
    for (int k = 0; k < s->n_src; k++)
        if (strcmp(s->src[k].facts.dtype, "Byte") != 0)
            return GS_JOB_SCALING_PERCENTILE;
    return GS_JOB_SCALING_NONE;
}

static void channel_stats(gs_scene_t *s, float *const *ch, const uint8_t *valid, size_t n,
                          float *tmp)
{
    const gs_job_t *j = s->job;
    for (int c = 0; c < 3; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (valid[i])
                tmp[m++] = ch[c][i];
        switch (s->scaling) {
        case GS_JOB_SCALING_RANGE:
            s->lo[c] = j->composite.range[2 * c];
            s->hi[c] = j->composite.range[2 * c + 1];
            break;
        case GS_JOB_SCALING_MINMAX:
        case GS_JOB_SCALING_PERCENTILE:
            if (s->scaling == GS_JOB_SCALING_MINMAX) {
                float mn = tmp[0], mx = tmp[0];
                for (size_t i = 1; i < m; i++) {
                    mn = tmp[i] < mn ? tmp[i] : mn;
                    mx = tmp[i] > mx ? tmp[i] : mx;
                }
                s->lo[c] = mn;
                s->hi[c] = mx;
            } else {
                s->lo[c] = percentile(tmp, m, j->composite.percentile[0]);
                s->hi[c] = percentile(tmp, m, j->composite.percentile[1]);
            }
            break;
        default: s->lo[c] = 0; s->hi[c] = 255;
        }
        if (!(s->hi[c] > s->lo[c])) // a constant channel: avoid dividing by zero
            s->hi[c] = s->lo[c] + 1;
    }
}

gs_err gs_scene_check(gs_scene_t *self, gs_scene_problem_t *out_problem, char *reason,
                      size_t reason_nbytes)
{
    gs_scene_problem_t problem = GS_SCENE_OK;
    char local[16];
    why_t w = {&problem, reason ? reason : local, reason ? reason_nbytes : sizeof local};
    if (out_problem)
        *out_problem = GS_SCENE_OK;
    if (self->checked)
        return GS_OK;
    int W = self->info.width, H = self->info.height, big = W > H ? W : H;
    double f = big > GS_SCENE_SAMPLE_MAX ? (double)GS_SCENE_SAMPLE_MAX / big : 1.0;
    int sw = (int)fmax(1, floor(W * f + 0.5)), sh = (int)fmax(1, floor(H * f + 0.5));
    size_t n = (size_t)sw * (size_t)sh;
    float *fbuf = gs_trymalloc(n * sizeof(float) * (size_t)(self->n_src + 4));
    uint8_t *bbuf = gs_trymalloc(n * (size_t)(self->n_src + 1));
    gs_err e = fbuf && bbuf ? GS_OK : GS_ENOMEM;
    const float *src[3] = {0};
    const uint8_t *mask[3] = {0};
    float *ch[3] = {0};
    for (int k = 0; k < self->n_src && e == GS_OK; k++) {
        gs__src_t *sr = &self->src[k];
        float *v = fbuf + (size_t)k * n;
        uint8_t *m = bbuf + (size_t)k * n;
        gs__win_t win = {0, 0, W * sr->sx, H * sr->sy};
        char why[600] = "";
        e = gs__rds_read(sr->rds, sr->band, &win, sw, sh, 1, v, why, sizeof why);
        if (e == GS_OK && !sr->facts.all_valid)
            e = gs__rds_read_mask(sr->rds, sr->band, &win, sw, sh, m, why, sizeof why);
        if (e == GS_EIO)
            e = bad(&w, GS_SCENE_TRUNCATED, "scene \"%s\" is truncated or corrupt: %s", self->uri,
                    why);
        src[k] = v;
        mask[k] = sr->facts.all_valid ? NULL : m;
    }
    if (e == GS_OK) {
        for (int c = 0; c < 3; c++)
            ch[c] = fbuf + (size_t)(self->n_src + c) * n;
        uint8_t *valid = bbuf + (size_t)self->n_src * n;
        gs__scene_channels(self, src, mask, n, ch, valid);
        size_t n_valid = 0;
        for (size_t i = 0; i < n; i++)
            n_valid += valid[i];
        if (n_valid == 0) {
            e = bad(&w, GS_SCENE_ALL_NODATA,
                    "scene \"%s\" has no valid pixel in its composite bands (sampled "
                    "at %dx%d)",
                    self->uri, sw, sh);
        } else {
            self->scaling = resolve_scaling(self);
            channel_stats(self, ch, valid, n, fbuf + (size_t)(self->n_src + 3) * n);
            self->checked = 1;
        }
    }
    gs_free(fbuf);
    gs_free(bbuf);
    if (out_problem)
        *out_problem = problem;
    return e;
}

gs_err gs_scene_scaling(const gs_scene_t *self, int c, double *out_lo, double *out_hi)
{
    if (c < 0 || c > 2)
        return GS_EINVAL;
    if (!self->checked)
        return GS_ESTATE;
    *out_lo = self->lo[c];
    *out_hi = self->hi[c];
    return GS_OK;
}
