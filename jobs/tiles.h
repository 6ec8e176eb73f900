// The tile grid of a scene, tile ids, tile bounds in lon/lat, and the windowed read of one
// tile into an 8-bit RGB composite. Tiles are read one window at a time: a scene is never
// loaded whole.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/scene.h"
#include "jobs/spec.h"

// The grid over a width x height scene: tiles of size x size pixels every `stride` = size -
// overlap pixels, from the top-left corner. Along each axis of length L:
//   L <= size: one tile at 0, L wide (pad: size wide, the outside being nodata);
//   otherwise n = ceil((L - size) / stride) + 1 tiles at i * stride, and the last one
//     shift: moved back to L - size, so every tile is whole and inside the scene (it overlaps
//            its neighbour more than `overlap`);
//     pad:   left at (n-1) * stride, size wide, running past the edge (nodata outside);
//     clip:  left at (n-1) * stride, cut at the edge (narrower).
// Columns and rows are numbered from 0 at the top left.
typedef struct {
    int width, height; // the scene grid
    int size, overlap, stride;
    gs_job_edge_t edge;
    int n_cols, n_rows;
} gs_tile_grid_t;

// One tile: its id and pixel window in the scene grid (x, y may be past the edge with pad).
typedef struct {
    uint64_t id;
    int col, row;
    int x, y, w, h;
} gs_tile_t;

// gs_tile_grid_init: the grid of a scene. GS_EINVAL when width/height < 1, size < 1 or
// overlap is not in [0, size). Pure; thread-safe.
gs_err gs_tile_grid_init(gs_tile_grid_t *self, int width, int height, int size, int overlap,
                         gs_job_edge_t edge);

// gs_tile_grid_count: n_cols * n_rows.
int64_t gs_tile_grid_count(const gs_tile_grid_t *self);

// gs_tile_id: the id of cell (col, row) of a scene under a grid's tiling parameters, defined
// forever as
//   rec = LE64 scene_id | LE32 col | LE32 row | LE32 size | LE32 overlap | LE32 edge | LE32 0
//   id  = gs_hash_bytes(rec, 32, seed 0x6773_74696C6531 "gstile1") & 0x7FFF_FFFF_FFFF_FFFF
//   (and 1 if that is 0)
// so ids are in [1, 2^63): they fit FAISS's int64 ids and are never -1 (FAISS's "none") or 0.
// Only the scene id, the cell and the tiling parameters enter: the same tile gets the same id
// on every run and rank; the scene size does not, so growing a grid keeps old ids. Ids are
// hashes: two tiles collide with probability about n^2 / 2^64 (1e-6 for 4 million tiles), so
// a store should check that a new id is not already taken by another (scene, cell). Pure.
uint64_t gs_tile_id(uint64_t scene_id, int col, int row, const gs_tile_grid_t *grid);

// gs_tile_grid_cell: the tile at (col, row): window and id. GS_EINVAL for a cell outside the
// grid. Pure.
gs_err gs_tile_grid_cell(const gs_tile_grid_t *self, uint64_t scene_id, int col, int row,
                         gs_tile_t *out);

// gs_tile_bounds: the lon/lat bounding box (west, south, east, north) of a tile's window: its
// outline with 4 points per edge transformed to EPSG:4326 (a 9x9 grid of points when the
// outline leaves the Earth). GS_ENOTFOUND when no point of the tile maps to lon/lat.
// Thread-safety: uses the scene (one thread at a time).
gs_err gs_tile_bounds(gs_scene_t *scene, const gs_tile_t *tile, double out_bbox[4]);

// gs_tile_read_rgb8: reads a tile's window from the scene's composite bands (each band a
// windowed read; bands on a coarser grid than the scene's are resampled bilinearly onto it)
// and writes tile->w x tile->h pixels of 8-bit RGB, pixel-interleaved (HWC, 3 * w * h bytes)
// into out_rgb:
//   rgb: R, G, B = composite bands 1, 2, 3 (one band: grey in all three);
//   sar: R = VV dB, G = VH dB, B = VV dB - VH dB (10*log10 first when sar_units is linear);
//   each channel scaled with the scene's scaling (gs_scene_scaling): round(255 * (v - lo) /
//   (hi - lo)) clamped to 0..255, with lo, hi from composite.scaling: none 0, 255; range the
//   job's values; minmax / percentile computed once per scene from the sample of
//   gs_scene_check (not per tile, so that tiles of one scene agree).
// A pixel is invalid (written as 0, 0, 0) when a composite band masks it (nodata, alpha or a
// mask band), its value is not finite, it lies outside the scene (pad), or — when no
// composite band has nodata, alpha or a mask — every composite band is exactly 0 (fill around
// Landsat scenes). *out_valid_fraction = valid pixels / (w * h).
// Calls gs_scene_check first if it was not done. Returns GS_OK; GS_EFORMAT for a bad scene
// (problem and reason set, as for gs_scene_check; a read error of this window is
// GS_SCENE_TRUNCATED); GS_ENOMEM; GS_EINVAL for a tile outside the scene. Nothing is logged.
// Thread-safety: uses the scene (one thread at a time).
gs_err gs_tile_read_rgb8(gs_scene_t *scene, const gs_tile_t *tile, uint8_t *out_rgb,
                         double *out_valid_fraction, gs_scene_problem_t *out_problem,
                         char *reason, size_t reason_nbytes);
