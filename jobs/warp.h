// Change pairs in space and time: which scenes of an archive form a pair (the same place at two
// times, jobs/warp_pairs.c), the pixel grid the two scenes of a pair are compared on, and a
// scene resampled onto such a grid (a GDAL warped VRT: nothing is written to disk, pixels are
// warped window by window as tiles are read through jobs/tiles.h). `geoscribe changes`
// (docs/CHANGES.md) uses it; the grid of a pair is the later scene's (changes.grid = later) or
// one in changes.crs at changes.resolution (changes.grid = crs).
// Not here: scoring and captioning (worker/changes.h), the ledger (coordinator/changes.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/scene.h"
#include "jobs/spec.h"
#include "jobs/tiles.h"

// ---- pairing --------------------------------------------------------------------------------

// What pairing needs to know of a scene (from its store record or an opened scene).
typedef struct {
    uint64_t id;             // scene id
    int has_time;            // scenes without a time are never paired
    int64_t time;            // seconds since the epoch, UTC
    double bbox[4];          // W, S, E, N in degrees
    const double *footprint; // (lon, lat) pairs of the outline ring, or NULL: the box only
    int n_footprint;         // points in footprint
    int paired; // 1 when this scene was already the later scene of a finished pair (the
                // ledger says so): with changes.pairing = latest it is not paired again
} gs_warp_item_t;

// A pair: indexes into the item array, earlier scene first.
typedef struct {
    uint32_t before, after;
    double overlap; // footprint (or box) overlap / the smaller one, 0..1
} gs_warp_pair_t;

// gs_warp_overlap: the area of the intersection of two lon/lat boxes over the area of the
// smaller one (0 when they do not meet; 1 when one holds the other). Boxes spanning the
// antimeridian (W > E) are not split: they count as not overlapping. Pure.
double gs_warp_overlap(const double a[4], const double b[4]);

// gs_warp_footprint_overlap: the same ratio for two footprints ((lon, lat) pairs, rings open or
// closed): the area of the intersection of their convex hulls over the smaller hull's area,
// in the lon/lat plane. A scene footprint is a projected rectangle, so its hull is the
// footprint itself up to the slight bend of its edges; unlike the boxes, two rotated
// footprints (a UTM scene in lon/lat) that only share box corners do not count as overlapping.
// Footprints wider than 180 degrees (across the antimeridian) give -1: use the boxes. Pure.
double gs_warp_footprint_overlap(const double *a, int n_a, const double *b, int n_b);

// gs_warp_pairs: the pairs of `items` under the job's changes.* keys. A scene S pairs with the
// latest scene O taken before it (time strictly earlier) whose footprint (box when either has
// none) overlaps S's by at least
// changes.min_overlap, within changes.max_gap_days (0 = any gap); ties in time go to the
// larger overlap, then the smaller id. pairing = latest does this for each scene not yet
// `paired` (the nightly case: each new scene with the latest earlier one); consecutive does it
// for every scene, so that a scene added between two others (a backfill) also pairs with the
// later one. Pairs come out sorted by (after time, after id). *out is new (gs_free; NULL when
// none). Pure apart from allocation; thread-safe. O(n^2) comparisons per call, sorted by time
// (fine for a few hundred thousand scenes per place-free archive; TODO(changes): a grid of
// boxes for millions).
void gs_warp_pairs(const gs_job_t *job, const gs_warp_item_t *items, size_t n, gs_warp_pair_t **out,
                   size_t *out_n);

// ---- grids ----------------------------------------------------------------------------------

// A pixel grid: CRS, affine geotransform (GDAL's: x = gt0 + col*gt1 + row*gt2, y = gt3 +
// col*gt4 + row*gt5) and size. crs_wkt is owned (gs_warp_grid_cleanup).
typedef struct {
    char *crs_wkt;
    double gt[6];
    int width, height;
} gs_warp_grid_t;

// The largest grid side gs_warp_grid_crs makes (pixels).
#define GS_WARP_MAX_SIDE 200000

// gs_warp_grid_of: the grid of an open scene (a copy). Aborts on OOM only.
void gs_warp_grid_of(const gs_scene_t *scene, gs_warp_grid_t *out);

// gs_warp_grid_cleanup: frees the CRS text; the struct may be filled again.
void gs_warp_grid_cleanup(gs_warp_grid_t *self);

// gs_warp_grid_equal: 1 when two grids are the same: same size, geotransforms equal within a
// millionth of a pixel, and the same CRS (equal text, or GDAL's OSRIsSame). Then the scenes'
// pixels coincide and nothing needs warping. Thread-safe.
int gs_warp_grid_equal(const gs_warp_grid_t *a, const gs_warp_grid_t *b);

// gs_warp_grid_crs: the grid in CRS `crs` (any text GDAL's OSRSetFromUserInput takes:
// "EPSG:32718", WKT, PROJ) with square pixels of `resolution` CRS units over the intersection
// of the two scenes' footprints (each footprint transformed to the CRS; bounds snapped outwards
// to multiples of the resolution, north up). Errors with a reason (nothing logged): GS_EINVAL
// (a CRS GDAL does not know, resolution <= 0), GS_ENOTFOUND (the footprints do not meet in that
// CRS), GS_ETOOBIG (a side over GS_WARP_MAX_SIDE pixels). Thread-safe.
gs_err gs_warp_grid_crs(const char *crs, double resolution, const gs_scene_t *a,
                        const gs_scene_t *b, gs_warp_grid_t *out, char *reason,
                        size_t reason_nbytes);

// gs_warp_pair_grid: the grid the two scenes of a pair are compared on, as the job's changes.grid
// says: the later scene's (later), or gs_warp_grid_crs in changes.crs at changes.resolution
// (crs; its errors). Thread-safe.
gs_err gs_warp_pair_grid(const gs_job_t *job, const gs_scene_t *before, const gs_scene_t *after,
                         gs_warp_grid_t *out, char *reason, size_t reason_nbytes);

// ---- change record keys ---------------------------------------------------------------------

// The key of a change record in the store's `changes` family (docs/CHANGES.md): the tile
// location and both times. Big-endian fields, so that keys sort by place, then time:
//   0  location id (u64): gs_hash_bytes over the pair grid (CRS text, geotransform, size) and
//      the tiling parameters, the cell's column and row (seed "gsloc1"); a place keeps its id
//      across the pairs of a co-registered series
//   8  before time, 16 after time (i64 with the sign bit flipped: seconds since the epoch)
//   24 before scene id, 32 after scene id (u64)
//   40 the tile's lon/lat bounds W, S, E, N (IEEE 754 doubles)
#define GS_WARP_KEY_NBYTES 72u

typedef struct {
    uint64_t location;
    int64_t before_time, after_time;
    uint64_t before_scene, after_scene;
    double bounds[4];
} gs_warp_key_t;

// gs_warp_location: the location id of cell (col, row) of the tile grid `tiles` laid over the
// pixel grid `grid` (tiles->width/height are grid's size). Pure.
uint64_t gs_warp_location(const gs_warp_grid_t *grid, const gs_tile_grid_t *tiles, int col,
                          int row);
// gs_warp_key_encode / _decode: the 72-byte key. Decode: GS_EFORMAT when nbytes is not 72.
void gs_warp_key_encode(const gs_warp_key_t *k, uint8_t out[GS_WARP_KEY_NBYTES]);
gs_err gs_warp_key_decode(const void *p, size_t nbytes, gs_warp_key_t *out);
// gs_warp_pair_id: the 64-bit id of a change record (its caption vector's FAISS id): a hash of
// the key's first 40 bytes (seed "gschg1"), in [1, 2^63). Pure.
uint64_t gs_warp_pair_id(const uint8_t key[GS_WARP_KEY_NBYTES]);

// ---- warped scenes --------------------------------------------------------------------------

typedef struct gs_warp gs_warp_t;

// gs_warp_open: the scene at `uri` (as the job opens it: gs_scene_open) resampled onto `grid`
// with changes.resampling, as a scene of its own whose grid is `grid`: read its tiles with
// jobs/tiles.h like any scene (tile windows are warped on demand; the scene is never warped
// whole). Only the composite bands are carried (in composite order); nodata, alpha and mask
// bands are honoured and pixels the source does not cover are invalid. The per-scene scaling
// (percentile, minmax) is computed on the warped pixels. The warped scene has no time, and its
// id is not the source's (use the source's id, gs_warp_source, for records).
// Errors: as gs_scene_open for the source (GS_EFORMAT with *out_problem and reason), GS_EIO
// (GDAL could not build the warp: reason says why), GS_ENOMEM. Nothing is logged.
// Ownership: *out is new (gs_warp_close). Thread-safety: one thread at a time per handle;
// handles are independent (each has its own GDAL datasets and in-memory VRT files).
gs_err gs_warp_open(const gs_job_t *job, const char *uri, const gs_warp_grid_t *grid,
                    gs_warp_t **out, gs_scene_problem_t *out_problem, char *reason,
                    size_t reason_nbytes);

// gs_warp_onto: `scene` put on `grid`: when its own grid is `grid` (gs_warp_grid_equal), *out is
// `scene` itself and *warp NULL; else its source is warped onto the grid (gs_warp_open: *warp
// new, *out its scene, borrowed from *warp). `scene` stays open either way and must outlive
// the call only. Errors as gs_warp_open. Thread-safety: as gs_warp_open.
gs_err gs_warp_onto(const gs_job_t *job, gs_scene_t *scene, const gs_warp_grid_t *grid,
                    gs_warp_t **warp, gs_scene_t **out, gs_scene_problem_t *out_problem,
                    char *reason, size_t reason_nbytes);

// gs_warp_scene: the warped scene; borrowed, valid until gs_warp_close.
gs_scene_t *gs_warp_scene(gs_warp_t *self);

// gs_warp_source: facts of the source scene (its id, uri, time, footprint); borrowed, valid
// until gs_warp_close.
const gs_scene_info_t *gs_warp_source(const gs_warp_t *self);

// gs_warp_close: closes both scenes and removes the in-memory VRT files; NULLs *p; accepts
// NULL.
void gs_warp_close(gs_warp_t **p);
