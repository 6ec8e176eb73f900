// Thumbnails composed like tiles (thumb.h).
#define GS_LOG_MODULE "jobs"
#include "jobs/thumb.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "jobs/raster.h"
#include "jobs/tiles.h"

// shrink: box average of an HWC RGB8 image (w x h) into ow x oh (ow <= w, oh <= h).
static void shrink(const uint8_t *in, int w, int h, uint8_t *out, int ow, int oh)
{
    for (int oy = 0; oy < oh; oy++) {
        int y0 = (int)((int64_t)oy * h / oh), y1 = (int)((int64_t)(oy + 1) * h / oh);
        for (int ox = 0; ox < ow; ox++) {
            int x0 = (int)((int64_t)ox * w / ow), x1 = (int)((int64_t)(ox + 1) * w / ow);
            uint32_t sum[3] = {0, 0, 0}, n = (uint32_t)((y1 - y0) * (x1 - x0));
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    for (int c = 0; c < 3; c++)
                        sum[c] += in[((size_t)y * w + x) * 3 + c];
            for (int c = 0; c < 3; c++)
                out[((size_t)oy * ow + ox) * 3 + c] = (uint8_t)((sum[c] + n / 2) / n);
        }
    }
}

gs_err gs_thumb_render(const gs_job_t *job, const char *uri, int x, int y, int w, int h,
                       int max_side, const char *png_path, char *reason, size_t reason_nbytes)
{
    if (!job || !uri || !png_path || w < 1 || h < 1 || max_side < 1 ||
        (int64_t)w * h > GS_THUMB_MAX_PIXELS) {
        snprintf(reason, reason_nbytes, "bad thumbnail request (%dx%d)", w, h);
        return GS_EINVAL;
    }
    gs_scene_t *sc = NULL;
    gs_scene_problem_t pr;
    gs_err e = gs_scene_open(job, uri, &sc, &pr, reason, reason_nbytes);
    if (e != GS_OK)
        return e;
    const gs_scene_info_t *in = gs_scene_info(sc);
    // clip the window to the scene (pad tiles run past the edge: their outside is invalid)
    int x1 = x + w < in->width ? x + w : in->width, y1 = y + h < in->height ? y + h : in->height;
    x = x > 0 ? x : 0, y = y > 0 ? y : 0, w = x1 - x, h = y1 - y;
    if (w < 1 || h < 1) {
        snprintf(reason, reason_nbytes, "the window is outside scene \"%s\"", uri);
        gs_scene_close(&sc);
        return GS_EINVAL;
    }
    int ow, oh;
    gs_raster_fit(w, h, max_side, &ow, &oh);
    uint8_t *full = gs_trymalloc((size_t)w * h * 3), *small = gs_trymalloc((size_t)ow * oh * 3);
    double valid = 0;
    gs_tile_t t = {.x = x, .y = y, .w = w, .h = h};
    if (!full || !small)
        e = GS_ENOMEM;
    if (e == GS_OK)
        e = gs_tile_read_rgb8(sc, &t, full, &valid, &pr, reason, reason_nbytes);
    if (e == GS_OK) {
        shrink(full, w, h, small, ow, oh);
        e = gs_raster_write_png_rgb8(small, ow, oh, png_path);
        if (e != GS_OK)
            snprintf(reason, reason_nbytes, "could not write \"%s\"", png_path);
    }
    gs_free(full);
    gs_free(small);
    gs_scene_close(&sc);
    return e;
}
