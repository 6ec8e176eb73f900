// Raster access through GDAL: jobs/raster.c and jobs/warp.c (the warp API, see there) are the
// only includers of GDAL headers in geoscribe (tests aside). No GDAL type crosses this header. This
// is the small public face (library version, one whole-image read for single pictures); scenes and
// tiles (jobs/scene.h, jobs/tiles.h) use the same GDAL layer through a module-private header.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// gs_raster_lib_version: GDAL's release name read at run time, e.g. "3.6.2".
void gs_raster_lib_version(char *out, size_t out_nbytes);

// gs_raster_init: registers GDAL's drivers and routes GDAL's own messages into geoscribe's log
// (a CPLErrorHandler: GDAL warnings and errors are logged at DEBUG with module "gdal", so GDAL
// is quiet by default; the function that fails logs the reason once, with GDAL's message, at
// its own level). Idempotent and thread-safe; every function of jobs/ that touches GDAL calls
// it, so callers never need to.
void gs_raster_init(void);

// The largest picture gs_raster_read_rgb8 accepts, in pixels (width * height): 2^28
// (e.g. 16384 x 16384, 768 MiB of RGB). Larger inputs fail with GS_ETOOBIG.
#define GS_RASTER_RGB8_MAX_PIXELS ((int64_t)1 << 28)

// gs_raster_read_rgb8: reads a whole picture (PNG, JPEG, TIFF/GeoTIFF, or anything GDAL opens
// as a raster, /vsi paths included) as 8-bit RGB, pixel-interleaved (HWC, row-major, 3 bytes a
// pixel, *out_w * *out_h * 3 bytes). Meant for single images (`geoscribe embed --image`), not
// scenes: it reads everything at once (scenes are read tile by tile through jobs/tiles.h).
//   - bands: 1 band -> grey copied to R, G and B; 1 band with a colour table -> the table's RGB;
//     2 bands (grey + alpha) -> the grey band; 3 or more -> the first three (an alpha 4th band
//     is ignored, so transparent pixels keep their colour).
//   - data types: Byte is copied as is. Any other type (UInt16 from a 12/16-bit sensor, Int16,
//     Float32, ...) is stretched linearly from the minimum to the maximum of the finite,
//     non-nodata values of the three channels together (one stretch for all channels, so the
//     colour balance is kept): v -> round(255 * (v - min) / (max - min)); a constant image gives
//     0; nodata pixels give 0.
// Ownership: *out_rgb is allocated here; free it with gs_free. Nothing is written to the out
// parameters on error.
// Errors: GS_EINVAL (NULL arguments), GS_EIO (GDAL cannot open or read it; the log line at
// ERROR carries the path and GDAL's message), GS_EUNSUPPORTED (no raster bands, or a complex
// data type), GS_ETOOBIG (more than GS_RASTER_RGB8_MAX_PIXELS), GS_ENOMEM.
// Thread-safety: safe to call from several threads at once (each call opens its own dataset).
gs_err gs_raster_read_rgb8(const char *path, uint8_t **out_rgb, int *out_w, int *out_h);

// gs_raster_write_png_chip: renders the pixel window (x, y, w, h) of the raster at `path` as an
// 8-bit RGB PNG of at most max_side pixels on its long side (never enlarged), written to
// png_path: the thumbnails of the query server (query/http.h), which calls it through a
// callback that the CLI installs, so that query/ needs no GDAL. The window is clipped to the
// raster (pad tiles past the edge come out smaller). Bands as gs_raster_read_rgb8 (first three,
// or grey), averaged when shrinking; Byte values are copied, other types stretched min-max
// over the window's valid values; nodata pixels are black. png_path is written directly: write
// to a temporary name and rename for atomic caching.
// Errors (logged with the path): GS_EINVAL (NULL, empty window, max_side < 1), GS_EIO (GDAL
// cannot open, read or write), GS_EUNSUPPORTED (no bands, complex data), GS_ENOMEM.
// Thread-safe (each call opens its own datasets).
gs_err gs_raster_write_png_chip(const char *path, int x, int y, int w, int h, int max_side,
                                const char *png_path);

// gs_raster_fit: the size of a w x h picture shrunk to at most max_side pixels on its long
// side, keeping its aspect (never enlarged, at least 1 x 1): the thumbnails' size rule.
void gs_raster_fit(int w, int h, int max_side, int *out_w, int *out_h);

// gs_raster_write_png_rgb8: writes w x h pixels of 8-bit RGB, pixel-interleaved (HWC), as a PNG
// at png_path (directly: write to a temporary name and rename for atomic caching).
// GS_EINVAL (NULL, w or h < 1), GS_EIO (logged with the path). Thread-safe.
gs_err gs_raster_write_png_rgb8(const uint8_t *rgb_hwc, int w, int h, const char *png_path);
