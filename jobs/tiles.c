// Tile grid, ids, bounds and windowed composite reads (tiles.h).
#include "jobs/tiles.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "jobs/hash.h"
#include "jobs/scene_int.h"

static const uint64_t TILE_SEED = 0x677374696C6531ULL; // "gstile1"

// ---- grid
// ---------------------------------------------------------------------------------

static int axis_count(int len, int size, int stride)
{
    if (len <= size)
        return 1;
    return (len - size + stride - 1) / stride + 1;
}

gs_err gs_tile_grid_init(gs_tile_grid_t *self, int width, int height, int size, int overlap,
                         gs_job_edge_t edge)
{
    if (width < 1 || height < 1 || size < 1 || overlap < 0 || overlap >= size ||
        (unsigned)edge > GS_JOB_EDGE_CLIP)
        return GS_EINVAL;
    self->width = width;
    self->height = height;
    self->size = size;
    self->overlap = overlap;
    self->stride = size - overlap;
    self->edge = edge;
    self->n_cols = axis_count(width, size, self->stride);
    self->n_rows = axis_count(height, size, self->stride);
    return GS_OK;
}

int64_t gs_tile_grid_count(const gs_tile_grid_t *self)
{
    return (int64_t)self->n_cols * self->n_rows;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t gs_tile_id(uint64_t scene_id, int col, int row, const gs_tile_grid_t *grid)
{
    unsigned char rec[32];
    put_le(rec, scene_id, 8);
    put_le(rec + 8, (uint32_t)col, 4);
    put_le(rec + 12, (uint32_t)row, 4);
    put_le(rec + 16, (uint32_t)grid->size, 4);
    put_le(rec + 20, (uint32_t)grid->overlap, 4);
    put_le(rec + 24, (uint32_t)grid->edge, 4);
    put_le(rec + 28, 0, 4);
    uint64_t id = gs_hash_bytes(rec, sizeof rec, TILE_SEED) & (uint64_t)INT64_MAX;
    return id ? id : 1;
}

// The window of cell i along an axis of length len.
static void axis_window(const gs_tile_grid_t *g, int len, int n, int i, int *pos, int *extent)
{
    int p = i * g->stride, e = g->size;
    if (len <= g->size) {
        p = 0;
        e = g->edge == GS_JOB_EDGE_PAD ? g->size : len;
    } else if (i == n - 1 && p + g->size > len) {
        if (g->edge == GS_JOB_EDGE_SHIFT)
            p = len - g->size;
        else if (g->edge == GS_JOB_EDGE_CLIP)
            e = len - p;
    }
    *pos = p;
    *extent = e;
}

gs_err gs_tile_grid_cell(const gs_tile_grid_t *self, uint64_t scene_id, int col, int row,
                         gs_tile_t *out)
{
    if (col < 0 || row < 0 || col >= self->n_cols || row >= self->n_rows)
        return GS_EINVAL;
    out->col = col;
    out->row = row;
    axis_window(self, self->width, self->n_cols, col, &out->x, &out->w);
    axis_window(self, self->height, self->n_rows, row, &out->y, &out->h);
    out->id = gs_tile_id(scene_id, col, row, self);
    return GS_OK;
}

// ---- bounds
// -------------------------------------------------------------------------------

gs_err gs_tile_bounds(gs_scene_t *scene, const gs_tile_t *t, double out_bbox[4])
{
    enum { PER_EDGE = 4, N = 4 * PER_EDGE, G = 9 };
    double x[G * G], y[G * G];
    int ok[G * G];
    const double *gt = scene->info.geotransform;
    double x0 = t->x, y0 = t->y, x1 = t->x + t->w, y1 = t->y + t->h;
    const double edge[4][4] = {
        {x0, y0, x1, y0}, {x1, y0, x1, y1}, {x1, y1, x0, y1}, {x0, y1, x0, y0}};
    int n = N;
    for (int e = 0; e < 4; e++)
        for (int k = 0; k < PER_EDGE; k++) {
            double f = (double)k / PER_EDGE, c = edge[e][0] + f * (edge[e][2] - edge[e][0]),
                   r = edge[e][1] + f * (edge[e][3] - edge[e][1]);
            int i = e * PER_EDGE + k;
            x[i] = gt[0] + c * gt[1] + r * gt[2];
            y[i] = gt[3] + c * gt[4] + r * gt[5];
        }
    if (gs__xform_apply(scene->xform, N, x, y, ok) < N) {
        n = G * G;
        for (int r = 0; r < G; r++)
            for (int c = 0; c < G; c++) {
                double cc = x0 + (x1 - x0) * c / (G - 1), rr = y0 + (y1 - y0) * r / (G - 1);
                x[r * G + c] = gt[0] + cc * gt[1] + rr * gt[2];
                y[r * G + c] = gt[3] + cc * gt[4] + rr * gt[5];
            }
        if (gs__xform_apply(scene->xform, n, x, y, ok) == 0)
            return GS_ENOTFOUND;
    }
    out_bbox[0] = out_bbox[1] = INFINITY;
    out_bbox[2] = out_bbox[3] = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        out_bbox[0] = fmin(out_bbox[0], x[i]);
        out_bbox[1] = fmin(out_bbox[1], y[i]);
        out_bbox[2] = fmax(out_bbox[2], x[i]);
        out_bbox[3] = fmax(out_bbox[3], y[i]);
    }
    return GS_OK;
}

// ---- composite read
// -----------------------------------------------------------------------

// read_sources: the clipped window (cx, cy, cw, ch) of every source into v[k] / m[k].
static gs_err read_sources(gs_scene_t *s, int cx, int cy, int cw, int chh, float **v, uint8_t **m,
                           const uint8_t **mask, char *why, size_t why_nbytes)
{
    for (int k = 0; k < s->n_src; k++) {
        gs__src_t *sr = &s->src[k];
        gs__win_t win = {cx * sr->sx, cy * sr->sy, cw * sr->sx, chh * sr->sy};
        gs_err e = gs__rds_read(sr->rds, sr->band, &win, cw, chh, 0, v[k], why, why_nbytes);
        if (e == GS_OK && !sr->facts.all_valid)
            e = gs__rds_read_mask(sr->rds, sr->band, &win, cw, chh, m[k], why, why_nbytes);
        if (e != GS_OK)
            return e;
        mask[k] = sr->facts.all_valid ? NULL : m[k];
    }
    return GS_OK;
}

gs_err gs_tile_read_rgb8(gs_scene_t *scene, const gs_tile_t *t, uint8_t *out_rgb,
                         double *out_valid_fraction, gs_scene_problem_t *out_problem, char *reason,
                         size_t reason_nbytes)
{
    if (out_problem)
        *out_problem = GS_SCENE_OK;
    if (!scene || !t || !out_rgb || t->w < 1 || t->h < 1)
        return GS_EINVAL;
    GS_TRY(gs_scene_check(scene, out_problem, reason, reason_nbytes));
    int W = scene->info.width, H = scene->info.height;
    int cx = t->x > 0 ? t->x : 0, cy = t->y > 0 ? t->y : 0;
    int cx1 = t->x + t->w < W ? t->x + t->w : W, cy1 = t->y + t->h < H ? t->y + t->h : H;
    if (cx1 <= cx || cy1 <= cy)
        return GS_EINVAL;
    int cw = cx1 - cx, chh = cy1 - cy;
    size_t n = (size_t)cw * (size_t)chh;
    memset(out_rgb, 0, (size_t)t->w * (size_t)t->h * 3);
    float *fbuf = gs_trymalloc(n * sizeof(float) * (size_t)(scene->n_src + 3));
    uint8_t *bbuf = gs_trymalloc(n * ((size_t)scene->n_src + 1));
    gs_err e = fbuf && bbuf ? GS_OK : GS_ENOMEM;
    float *v[3] = {0}, *ch[3] = {0};
    uint8_t *m[3] = {0};
    const uint8_t *mask[3] = {0};
    for (int k = 0; k < scene->n_src && e == GS_OK; k++) {
        v[k] = fbuf + (size_t)k * n;
        m[k] = bbuf + (size_t)k * n;
    }
    char why[600] = "";
    if (e == GS_OK && read_sources(scene, cx, cy, cw, chh, v, m, mask, why, sizeof why) != GS_OK) {
        if (out_problem)
            *out_problem = GS_SCENE_TRUNCATED;
        if (reason)
            snprintf(reason, reason_nbytes, "scene \"%s\" is truncated or corrupt: %s", scene->uri,
                     why);
        e = GS_EFORMAT;
    }
    size_t n_valid = 0;
    if (e == GS_OK) {
        for (int c = 0; c < 3; c++)
            ch[c] = fbuf + (size_t)(scene->n_src + c) * n;
        uint8_t *valid = bbuf + (size_t)scene->n_src * n;
        gs__scene_channels(scene, (const float *const *)v, mask, n, ch, valid);
        // the clipped window is converted row by row into its place in the tile
        for (int r = 0; r < chh; r++) {
            size_t off = (size_t)r * (size_t)cw;
            uint8_t *dst =
                out_rgb + 3 * ((size_t)(cy - t->y + r) * (size_t)t->w + (size_t)(cx - t->x));
            const float *row_ch[3] = {ch[0] + off, ch[1] + off, ch[2] + off};
            gs__scene_to_u8(scene, row_ch, valid + off, (size_t)cw, dst);
        }
        for (size_t i = 0; i < n; i++)
            n_valid += valid[i];
    }
    gs_free(fbuf);
    gs_free(bbuf);
    if (e == GS_OK && out_valid_fraction)
        *out_valid_fraction = (double)n_valid / ((double)t->w * t->h);
    return e;
}
