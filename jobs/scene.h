// A scene: one raster file, or several files holding one band each (Landsat, Sentinel-2 and
// Sentinel-1 products as shipped), opened through GDAL from its catalogue URI
// (jobs/catalog.h). It knows its grid, CRS, footprint in lon/lat, acquisition time, checksum
// and stable id, and how its bands make the job's RGB composite. Tiles are cut and read with
// jobs/tiles.h. A bad scene is never fatal: open and check say why, for quarantine.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/spec.h"

typedef struct gs_scene gs_scene_t;

// Why a scene cannot be used (recorded with the reason text in the quarantine).
typedef enum {
    GS_SCENE_OK = 0,
    GS_SCENE_UNREADABLE = 1, // missing, not a raster GDAL can open
    GS_SCENE_TRUNCATED = 2,  // opens, but its pixel blocks cannot be decoded
    GS_SCENE_LAYOUT = 3,     // unsupported band layout: a named band is missing, complex data,
                             // band files that do not share one area or CRS
    GS_SCENE_NO_GEOREF = 4,  // no CRS, no geotransform, or no pixel maps to lon/lat
    GS_SCENE_ALL_NODATA = 5, // no valid pixel in the composite bands
} gs_scene_problem_t;

// gs_scene_problem_name: "ok", "unreadable", "truncated", "layout", "no_georef", "all_nodata".
const char *gs_scene_problem_name(gs_scene_problem_t p);

// Facts of an open scene. Strings and arrays are owned by the scene: valid until
// gs_scene_close.
typedef struct {
    uint64_t id;        // stable scene id (see gs_scene_id_of), < 2^63
    const char *uri;    // canonical URI (jobs/catalog.h)
    uint64_t checksum;  // scenes.checksum over every file of the scene, in band order
    int width, height;  // the scene grid in pixels (for several files: the finest composite band)
    double geotransform[6]; // GDAL affine: x = gt0 + col*gt1 + row*gt2, y = gt3 + col*gt4 + row*gt5
    const char *crs_wkt;    // the CRS as WKT
    int n_bands;            // bands of the file, or band files of the group
    const char *const *band_names; // n_bands: group band names ("4", "8A", "VV"), else the band
                                   // description or "1".."n" when there is none
    int composite_bands[3];  // the composite's bands as 0-based positions in band_names
    int n_composite_bands;   // 1 or 3 (rgb), 2 (sar)
    const char *dtype;       // data type of the first composite band ("Byte", "UInt16", ...)
    int has_nodata;          // the first composite band has a nodata value
    double nodata;
    double bbox[4];           // west, south, east, north (degrees, EPSG:4326)
    const double *footprint;  // (lon, lat) pairs of a closed ring, n_footprint points
    int n_footprint;
    int has_time;             // acquisition time known
    int64_t time;             // seconds since the epoch, UTC
    const char *time_source;  // "mtl", "metadata:ACQUISITIONDATETIME",
                              // "metadata:TIFFTAG_DATETIME", "filename", "given" or ""
} gs_scene_info_t;

// gs_scene_id_of: the scene id of a URI: gs_hash_bytes(uri up to '#', seed "gsscene1") with
// the top bit cleared. It depends on the canonical path only, so the same scene has the same
// id on every run, on every rank, whatever the current directory or the band files present;
// moving an archive to another path gives new ids (re-ingest), and a file rewritten in place
// keeps its id while its checksum changes (which resume logic can compare). Pure.
uint64_t gs_scene_id_of(const char *uri);

// gs_scene_open: opens the scene at `uri` under `job`'s composite, time and checksum settings
// (the job is borrowed and must outlive the scene). Reads headers, decodes the first and last
// block of each composite band (a truncated file fails here), computes the checksum, the
// footprint and the time; no full pixel read. A local path that is not canonical is made so.
// The footprint: the grid's outline with 16 points per edge, transformed to EPSG:4326
// (traditional lon, lat order) so that curved UTM edges are followed; if some outline points
// do not transform (a geostationary view whose corners are in space) the bbox comes from a
// 33x33 grid of points over the scene and the footprint is that bbox. Scenes across the
// antimeridian get a bbox spanning the globe's width (not split).
// Time (time.from): metadata tries, in order, a Landsat MTL file next to the data
// (DATE_ACQUIRED + SCENE_CENTER_TIME), ACQUISITIONDATETIME (IMAGERY domain), TIFFTAG_DATETIME,
// then time.pattern on the file name if set; filename applies time.pattern to the file name
// (or to the whole path when the pattern holds '/'); given takes time.value. No time found is
// not an error (has_time = 0).
// Returns GS_OK; GS_EFORMAT for a bad scene, with *out_problem and `reason` (a sentence naming
// the file and GDAL's message) filled and nothing logged: the caller quarantines it;
// GS_ENOMEM; GS_EINVAL for NULL arguments.
// Ownership: *out is new; close it with gs_scene_close. Thread-safety: a scene is used by one
// thread at a time; different scenes may be used by different threads at once.
gs_err gs_scene_open(const gs_job_t *job, const char *uri, gs_scene_t **out,
                     gs_scene_problem_t *out_problem, char *reason, size_t reason_nbytes);

// gs_scene_info: the scene's facts. Borrowed, valid until gs_scene_close.
const gs_scene_info_t *gs_scene_info(const gs_scene_t *self);

// Statistics of a scene are computed from a sample read of each composite band: the whole band
// decimated to at most GS_SCENE_SAMPLE_MAX pixels on its longer side (nearest; GDAL uses the
// overviews of a COG, so big scenes are not decoded in full when they have overviews).
#define GS_SCENE_SAMPLE_MAX 1024

// gs_scene_check: reads the sample, finds the per-scene scaling of each output channel (minmax
// or percentile; see jobs/tiles.h) and checks that some pixel is valid. Tile reads call it on
// first use; call it right after open to quarantine before planning tiles. Idempotent (cached
// in the scene). Returns GS_OK; GS_EFORMAT with the problem (truncated, all_nodata) and
// reason; GS_ENOMEM.
gs_err gs_scene_check(gs_scene_t *self, gs_scene_problem_t *out_problem, char *reason,
                      size_t reason_nbytes);

// gs_scene_scaling: after a successful check, the linear map of output channel c (0..2):
// value v -> round(255 * (v - lo) / (hi - lo)), clamped to 0..255. For scaling none lo = 0,
// hi = 255. GS_ESTATE before a successful check, GS_EINVAL for c out of range.
gs_err gs_scene_scaling(const gs_scene_t *self, int c, double *out_lo, double *out_hi);

// gs_scene_close: closes the files and frees the scene; NULLs *p; accepts NULL.
void gs_scene_close(gs_scene_t **p);
