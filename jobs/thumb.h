// Thumbnails of tiles as the encoder saw them: the job's composite (bands, SAR channels,
// multi-file scene groups, scaling, masks) read through jobs/tiles.h, box-averaged down to a
// small PNG. The query server's /api/tile/<id>.png uses it when the output holds its job
// (OUT/job.yaml, written by ingest); jobs/raster.h's gs_raster_write_png_chip (the raster's
// first three bands, stretched per chip) is the fallback without one.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/spec.h"

// GS_THUMB_VERSION: how thumbnails are drawn; raise it when a change here alters the pixels of
// a thumbnail, so that caches of older ones are emptied (`geoscribe serve` keys its cache with
// it). 2: composed with the job the run recorded (2026-11-28); 1: before, no key.
#define GS_THUMB_VERSION 2

// The largest window gs_thumb_render reads (pixels): a tile is far smaller.
#define GS_THUMB_MAX_PIXELS (16 * 1024 * 1024)

// gs_thumb_render: the window (x, y, w, h) of the scene at uri (clipped to the scene; pixels
// outside it and invalid ones are black) composed as `job` composes tiles, shrunk to at most
// max_side pixels on its long side (never enlarged), written as an RGB PNG to png_path
// (directly: write to a temporary name and rename for atomic caching).
// Returns GS_OK; GS_EINVAL (a bad window), GS_EFORMAT (the scene cannot be read as the job
// says), GS_EIO (the PNG), GS_ENOMEM; reason says why. Thread-safe (its own scene per call).
gs_err gs_thumb_render(const gs_job_t *job, const char *uri, int x, int y, int w, int h,
                       int max_side, const char *png_path, char *reason, size_t reason_nbytes);

// gs_thumb_render_change: one side of a change pair as the change job compared it: the pair
// grid of the scenes at before_uri and after_uri is rebuilt from `job` (changes.grid, .crs,
// .resolution, .resampling, tiling.*: the job the change run recorded, OUT/changes.yaml), the
// cell is the one whose location id (the change record key's first field, jobs/warp.h) is
// `location`, and the side (after_side: the later scene) is read on that grid: warped when its
// own grid is another (so a tile without a tile record still gets its thumbnail). Written as
// gs_thumb_render writes. Errors as gs_thumb_render, and GS_ENOTFOUND (no cell has that
// location: the pair was made with other settings), gs_warp_pair_grid's and gs_warp_open's.
// Thread-safe (its own scenes per call).
gs_err gs_thumb_render_change(const gs_job_t *job, const char *before_uri, const char *after_uri,
                              bool after_side, uint64_t location, int max_side,
                              const char *png_path, char *reason, size_t reason_nbytes);
