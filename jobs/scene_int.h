// Module-private: the inside of a scene (scene.c) that tiles.c reads from: the composite's
// source bands, the scene's transform to lon/lat and its per-channel scaling.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "jobs/raster_int.h"
#include "jobs/scene.h"

// One source band of the composite.
typedef struct {
    gs__rds_t *rds;   // borrowed from the scene's files
    int band;         // 1-based band in rds
    gs__band_t facts; // its type, nodata, mask flags (strings borrowed from rds)
    double sx, sy;    // band pixels per scene pixel (1, 1 when the band is on the scene grid)
} gs__src_t;

#define GS__SCENE_MAX_FILES 3

struct gs_scene {
    gs_scene_info_t info;
    const gs_job_t *job; // borrowed
    char *uri;
    char *crs_wkt;
    char **band_names; // info.n_bands, owned
    double *footprint; // 2 * info.n_footprint
    char time_source[48];
    gs__rds_t *files[GS__SCENE_MAX_FILES];
    int n_files;
    gs__src_t src[3]; // composite sources: rgb 1 or 3, sar 2 (VV, VH)
    int n_src;
    int zero_is_nodata; // no source has nodata/alpha/mask: pixels 0 in every source are invalid
    gs__xform_t *xform; // scene CRS -> lon/lat
    // per-channel scaling, set by gs_scene_check
    int checked;
    gs_job_scaling_t scaling; // resolved (never auto)
    double lo[3], hi[3];
};

// gs__scene_channels: the three output channels of n pixels from the sources' values
// (src[k][i]) and masks (mask[k] NULL = all valid): rgb copies (one source -> grey), sar gives
// VV dB, VH dB and VV/VH = VV dB - VH dB (10*log10 first for linear units). valid[i] = 0 where
// a source is masked, not finite, not positive (sar linear), or every source is 0 when
// zero_is_nodata. ch[c][i] is left unspecified where invalid. Pure.
void gs__scene_channels(const gs_scene_t *self, const float *const *src,
                        const uint8_t *const *mask, size_t n, float *const *ch, uint8_t *valid);

// gs__scene_to_u8: channel values -> 8-bit with the scene's scaling, written as HWC RGB for n
// pixels; invalid pixels are 0, 0, 0. Requires a successful check.
void gs__scene_to_u8(const gs_scene_t *self, const float *const *ch, const uint8_t *valid,
                     size_t n, uint8_t *rgb);
