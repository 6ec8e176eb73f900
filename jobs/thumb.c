// Thumbnails composed like tiles (thumb.h).
#define GS_LOG_MODULE "jobs"
#include "jobs/thumb.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "jobs/raster.h"
#include "jobs/tiles.h"
#include "jobs/warp.h"

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

// render_window: the window (x, y, w, h) of an open scene (clipped to it) shrunk into a PNG.
static gs_err render_window(gs_scene_t *sc, int x, int y, int w, int h, int max_side,
                            const char *png_path, char *reason, size_t reason_nbytes)
{
    const gs_scene_info_t *in = gs_scene_info(sc);
    // clip the window to the scene (pad tiles run past the edge: their outside is invalid)
    int x1 = x + w < in->width ? x + w : in->width, y1 = y + h < in->height ? y + h : in->height;
    x = x > 0 ? x : 0, y = y > 0 ? y : 0, w = x1 - x, h = y1 - y;
    if (w < 1 || h < 1) {
        snprintf(reason, reason_nbytes, "the window is outside scene \"%s\"", in->uri);
        return GS_EINVAL;
    }
    int ow, oh;
    gs_raster_fit(w, h, max_side, &ow, &oh);
    uint8_t *full = gs_trymalloc((size_t)w * h * 3), *small = gs_trymalloc((size_t)ow * oh * 3);
    double valid = 0;
    gs_scene_problem_t pr;
    gs_tile_t t = {.x = x, .y = y, .w = w, .h = h};
    gs_err e = full && small ? GS_OK : GS_ENOMEM;
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
    return e;
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
    if (e == GS_OK)
        e = render_window(sc, x, y, w, h, max_side, png_path, reason, reason_nbytes);
    gs_scene_close(&sc);
    return e;
}

// find_cell: the cell of the tile grid over `grid` whose location id is `location`.
static bool find_cell(const gs_warp_grid_t *grid, const gs_tile_grid_t *tg, uint64_t location,
                      gs_tile_t *out)
{
    for (int row = 0; row < tg->n_rows; row++)
        for (int col = 0; col < tg->n_cols; col++)
            if (gs_warp_location(grid, tg, col, row) == location)
                return gs_tile_grid_cell(tg, 0, col, row, out) == GS_OK;
    return false;
}

gs_err gs_thumb_render_change(const gs_job_t *job, const char *before_uri, const char *after_uri,
                              bool after_side, uint64_t location, int max_side,
                              const char *png_path, char *reason, size_t reason_nbytes)
{
    if (!job || !before_uri || !after_uri || !png_path || max_side < 1) {
        snprintf(reason, reason_nbytes, "bad change thumbnail request");
        return GS_EINVAL;
    }
    gs_scene_t *sb = NULL, *sa = NULL;
    gs_warp_t *warp = NULL;
    gs_warp_grid_t grid = {0};
    gs_scene_problem_t pr;
    gs_err e = gs_scene_open(job, before_uri, &sb, &pr, reason, reason_nbytes);
    if (e == GS_OK)
        e = gs_scene_open(job, after_uri, &sa, &pr, reason, reason_nbytes);
    if (e == GS_OK)
        e = gs_warp_pair_grid(job, sb, sa, &grid, reason, reason_nbytes);
    gs_tile_grid_t tg;
    gs_tile_t cell;
    if (e == GS_OK && (e = gs_tile_grid_init(&tg, grid.width, grid.height, job->tiling.size,
                                             job->tiling.overlap, job->tiling.edge)) != GS_OK)
        snprintf(reason, reason_nbytes, "the job's tiling does not fit the pair grid");
    if (e == GS_OK && !find_cell(&grid, &tg, location, &cell)) {
        snprintf(reason, reason_nbytes,
                 "no cell of the pair grid of \"%s\" and \"%s\" has location %016llx (was the "
                 "pair made with other changes.* settings?)",
                 before_uri, after_uri, (unsigned long long)location);
        e = GS_ENOTFOUND;
    }
    gs_scene_t *side = NULL;
    if (e == GS_OK) // as the worker reads it: as it is when on the pair grid, else warped
        e = gs_warp_onto(job, after_side ? sa : sb, &grid, &warp, &side, &pr, reason,
                         reason_nbytes);
    if (e == GS_OK && (int64_t)cell.w * cell.h > GS_THUMB_MAX_PIXELS) {
        snprintf(reason, reason_nbytes, "the tile is too big for a thumbnail (%dx%d)", cell.w,
                 cell.h);
        e = GS_EINVAL;
    }
    if (e == GS_OK)
        e = render_window(side, cell.x, cell.y, cell.w, cell.h, max_side, png_path, reason,
                          reason_nbytes);
    gs_warp_close(&warp);
    gs_warp_grid_cleanup(&grid);
    gs_scene_close(&sb);
    gs_scene_close(&sa);
    return e;
}
