// Module-private GDAL layer of jobs/ (implemented in jobs/raster.c, the only GDAL includer):
// datasets, windowed reads, masks, the transform to lon/lat and VSI file access, with no GDAL
// type in sight. None of these functions log: they return a code and, where a scene may be bad,
// a human reason (GDAL's message included) that the caller logs or records for quarantine.
// Handles are not thread-safe: one thread uses a handle at a time (a dataset is never shared).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// ---- datasets -----------------------------------------------------------------------------

typedef struct gs__rds gs__rds_t;

// One band as GDAL describes it. Strings are borrowed from the dataset (valid until close).
typedef struct {
    const char *dtype;  // "Byte", "UInt16", "Float32", ...
    int bits;           // 8, 16, 32, 64
    int is_float;       // 1 for Float32/Float64
    int is_complex;     // 1 for CInt16, CFloat32, ...
    int has_nodata;     // 1 if a nodata value is set
    double nodata;      // the nodata value when has_nodata
    const char *desc;   // band description, "" if none
    const char *colour; // colour interpretation name ("Red", "Gray", "Alpha", "Undefined")
    int all_valid;      // 1 when GDAL's mask flags say every pixel is valid (no nodata/alpha)
    int block_w;        // natural block size
    int block_h;
} gs__band_t;

// gs__rds_open: opens a raster read-only (local path or /vsi... path). GS_EIO when GDAL cannot
// open it (reason = GDAL's message). Ownership: close with gs__rds_close.
gs_err gs__rds_open(const char *path, gs__rds_t **out, char *reason, size_t reason_nbytes);
// gs__rds_close: closes; NULLs *p; accepts NULL.
void gs__rds_close(gs__rds_t **p);
int gs__rds_width(const gs__rds_t *self);
int gs__rds_height(const gs__rds_t *self);
int gs__rds_count(const gs__rds_t *self);
// gs__rds_crs_wkt: the CRS as WKT, "" when there is none. Borrowed, valid until close.
const char *gs__rds_crs_wkt(gs__rds_t *self);
// gs__rds_geotransform: 1 and gt filled when the raster has a geotransform, 0 otherwise.
int gs__rds_geotransform(gs__rds_t *self, double gt[6]);
// gs__rds_band: facts of band b (1-based). GS_EINVAL when b is out of range.
gs_err gs__rds_band(gs__rds_t *self, int b, gs__band_t *out);
// gs__rds_metadata: a metadata item of the dataset ("" domain or e.g. "IMAGERY"), NULL when
// absent. Borrowed, valid until the next metadata call or close.
const char *gs__rds_metadata(gs__rds_t *self, const char *key, const char *domain);
// gs__rds_sibling: the first file of the dataset's file list (GDAL's GetFileList: side-car
// files it found) whose name ends with `suffix` (case-insensitive), e.g. "_MTL.txt". A new string
// (gs_free) or NULL.
char *gs__rds_sibling(gs__rds_t *self, const char *suffix);

// A window in the pixel grid of a band; fractional for resampled reads.
typedef struct {
    double x, y, w, h;
} gs__win_t;

// gs__rds_read: reads window `win` of band b into buf_w x buf_h float32 values (row-major,
// row stride buf_w). When the window equals the buffer size and is integral this is a plain
// read; otherwise GDAL resamples (bilinear when enlarging or shrinking a little, nearest with
// overviews when shrinking a lot, see `decimate`). decimate=1 asks for a nearest read that may
// use overviews (statistics samples). The window must lie inside the band.
// GS_EIO on a GDAL read error (reason = GDAL's message, e.g. a truncated file), GS_EINVAL.
gs_err gs__rds_read(gs__rds_t *self, int b, const gs__win_t *win, int buf_w, int buf_h,
                    int decimate, float *out, char *reason, size_t reason_nbytes);
// gs__rds_read_mask: the same window of GDAL's mask band (nodata, alpha or per-dataset mask):
// out[i] = 0 where the pixel is invalid, nonzero where valid (nearest resampling).
gs_err gs__rds_read_mask(gs__rds_t *self, int b, const gs__win_t *win, int buf_w, int buf_h,
                         uint8_t *out, char *reason, size_t reason_nbytes);
// gs__rds_check_blocks: decodes the first and the last block of band b: cheap evidence that the
// file is whole (a truncated TIFF opens but fails here). GS_EIO with GDAL's reason.
gs_err gs__rds_check_blocks(gs__rds_t *self, int b, char *reason, size_t reason_nbytes);

// ---- coordinates --------------------------------------------------------------------------

typedef struct gs__xform gs__xform_t;

// gs__xform_new: a transform from the CRS given as WKT to lon/lat on WGS 84 (EPSG:4326) in
// traditional GIS order (x = longitude, y = latitude). GS_EFORMAT when the WKT is not a CRS
// PROJ can use (reason given). Destroy with gs__xform_destroy.
gs_err gs__xform_new(const char *wkt, gs__xform_t **out, char *reason, size_t reason_nbytes);
void gs__xform_destroy(gs__xform_t **p);
// gs__xform_apply: transforms n points in place; ok[i] = 1 where it succeeded (points off the
// Earth in a geostationary view fail). Returns the number of successes.
int gs__xform_apply(gs__xform_t *self, int n, double *x, double *y, int *ok);

// ---- files (VSI: local paths and /vsis3/, /vsicurl/, /vsizip/ ... alike) -------------------

typedef struct {
    int exists;
    int is_dir;
    int64_t size;  // bytes
    int64_t mtime; // seconds since the epoch (0 when the file system has none)
} gs__stat_t;

// gs__vsi_stat: facts of a path. Always GS_OK; exists = 0 when there is nothing there.
gs_err gs__vsi_stat(const char *path, gs__stat_t *out);
// gs__vsi_list: the entry names of a directory (no "." or ".."), sorted bytewise. *out_names is a
// NULL-terminated vector owned by the caller (gs__strv_free). GS_EIO when it is not listable.
gs_err gs__vsi_list(const char *dir, char ***out_names, size_t *out_n);
void gs__strv_free(char ***p);
// gs__vsi_read_text: reads a whole (small) file, NUL-terminated; GS_EIO, GS_ETOOBIG past cap.
gs_err gs__vsi_read_text(const char *path, size_t cap_nbytes, char **out, size_t *out_n);
// gs__vsi_checksum: a 64-bit checksum of a file. full = 0: size, mtime and the first and last
// 64 KiB (two reads at most, cheap on object stores); full = 1: every byte. GS_EIO with reason.
gs_err gs__vsi_checksum(const char *path, int full, uint64_t *out, char *reason,
                        size_t reason_nbytes);
