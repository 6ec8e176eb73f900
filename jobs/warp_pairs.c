// Pairing scenes for change captioning (warp.h): the same place (lon/lat footprints, or boxes,
// overlapping by at least changes.min_overlap of the smaller one) at two times (the latest earlier scene
// within changes.max_gap_days); and the keys of change records. Pure code: no GDAL, no store.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "jobs/hash.h"
#include "jobs/warp.h"

// Seeds of gs_hash_bytes ("gsloc1", "gschg1").
#define GS_WARP_LOC_SEED 0x67736C6F6331ULL
#define GS_WARP_PAIR_SEED 0x677363686731ULL

double gs_warp_overlap(const double a[4], const double b[4])
{
    if (!(a[0] <= a[2] && a[1] <= a[3] && b[0] <= b[2] && b[1] <= b[3]))
        return 0; // antimeridian boxes (W > E) or empty ones
    double w = fmin(a[2], b[2]) - fmax(a[0], b[0]);
    double h = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    if (!(w > 0 && h > 0))
        return 0;
    double area_a = (a[2] - a[0]) * (a[3] - a[1]);
    double area_b = (b[2] - b[0]) * (b[3] - b[1]);
    double smaller = fmin(area_a, area_b);
    if (!(smaller > 0))
        return 0;
    double f = w * h / smaller;
    return f > 1 ? 1 : f;
}

// ---- footprint polygons --------------------------------------------------------------------

#define HULL_MAX 256 // footprints hold at most 65 points (16 per edge); more are subsampled

static double cross(const double *o, const double *a, const double *b)
{
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

static int by_xy(const void *pa, const void *pb)
{
    const double *a = pa, *b = pb;
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return (a[1] > b[1]) - (a[1] < b[1]);
}

// hull: the convex hull of n points (monotone chain), counter-clockwise, into out (room for
// HULL_MAX + 1 points); returns its point count (< 3 when degenerate).
static int hull(const double *pts, int n, double out[][2])
{
    double p[HULL_MAX][2];
    int step = n > HULL_MAX ? (n + HULL_MAX - 1) / HULL_MAX : 1, m = 0;
    for (int i = 0; i < n && m < HULL_MAX; i += step)
        if (isfinite(pts[2 * i]) && isfinite(pts[2 * i + 1]))
            p[m][0] = pts[2 * i], p[m][1] = pts[2 * i + 1], m++;
    if (m < 3)
        return 0;
    qsort(p, (size_t)m, sizeof p[0], by_xy);
    int k = 0;
    for (int i = 0; i < m; i++) { // lower chain
        while (k >= 2 && cross(out[k - 2], out[k - 1], p[i]) <= 0)
            k--;
        out[k][0] = p[i][0], out[k][1] = p[i][1], k++;
    }
    for (int i = m - 2, lo = k + 1; i >= 0; i--) { // upper chain
        while (k >= lo && cross(out[k - 2], out[k - 1], p[i]) <= 0)
            k--;
        out[k][0] = p[i][0], out[k][1] = p[i][1], k++;
    }
    return k - 1; // the last point repeats the first
}

static double area(double p[][2], int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        s += p[i][0] * p[j][1] - p[j][0] * p[i][1];
    }
    return 0.5 * fabs(s);
}

// clip: subject polygon (n points) clipped by one directed edge (a -> b) of a convex
// counter-clockwise polygon, keeping the left side (Sutherland-Hodgman). Returns the count.
static int clip(double in[][2], int n, const double *a, const double *b, double out[][2], int cap)
{
    int m = 0;
    for (int i = 0; i < n && m + 2 <= cap; i++) {
        const double *p = in[i], *q = in[(i + 1) % n];
        double sp = cross(a, b, p), sq = cross(a, b, q);
        if (sp >= 0)
            out[m][0] = p[0], out[m][1] = p[1], m++;
        if ((sp >= 0) != (sq >= 0)) {
            double t = sp / (sp - sq);
            out[m][0] = p[0] + t * (q[0] - p[0]);
            out[m][1] = p[1] + t * (q[1] - p[1]);
            m++;
        }
    }
    return m;
}

double gs_warp_footprint_overlap(const double *a, int n_a, const double *b, int n_b)
{
    static _Thread_local double ha[HULL_MAX + 1][2], hb[HULL_MAX + 1][2];
    static _Thread_local double w1[2 * HULL_MAX + 4][2], w2[2 * HULL_MAX + 4][2];
    if (!a || !b)
        return -1;
    int na = hull(a, n_a, ha), nb = hull(b, n_b, hb);
    if (na < 3 || nb < 3)
        return -1;
    for (int i = 0; i < na; i++) // across the antimeridian: the boxes decide
        if (fabs(ha[i][0] - ha[0][0]) > 180)
            return -1;
    for (int i = 0; i < nb; i++)
        if (fabs(hb[i][0] - hb[0][0]) > 180)
            return -1;
    double area_a = area(ha, na), area_b = area(hb, nb), smaller = fmin(area_a, area_b);
    if (!(smaller > 0))
        return 0;
    int n = na, cap = 2 * HULL_MAX + 4;
    memcpy(w1, ha, (size_t)na * sizeof w1[0]);
    for (int j = 0; j < nb && n > 0; j++) {
        n = clip(w1, n, hb[j], hb[(j + 1) % nb], w2, cap);
        memcpy(w1, w2, (size_t)n * sizeof w1[0]);
    }
    double f = n >= 3 ? area(w1, n) / smaller : 0;
    return f > 1 ? 1 : f;
}

// item_overlap: footprints when both have one, else boxes.
static double item_overlap(const gs_warp_item_t *o, const gs_warp_item_t *s)
{
    double box = gs_warp_overlap(o->bbox, s->bbox);
    if (box <= 0 || !o->footprint || !s->footprint)
        return box;
    double f = gs_warp_footprint_overlap(o->footprint, o->n_footprint, s->footprint,
                                         s->n_footprint);
    return f < 0 ? box : f;
}

// The item array, for the sort comparator (qsort has no user data).
typedef struct {
    const gs_warp_item_t *item;
    uint32_t index;
} entry_t;

static int by_time(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    if (a->item->time != b->item->time)
        return a->item->time < b->item->time ? -1 : 1;
    return a->item->id < b->item->id ? -1 : a->item->id > b->item->id;
}

// partner: the pair partner of sorted entry i (the latest earlier overlapping scene), or -1.
static long partner(const gs_job_t *job, const entry_t *e, size_t i, double *out_overlap)
{
    const gs_warp_item_t *s = e[i].item;
    double max_gap_s = job->changes.max_gap_days * 86400.0;
    long best = -1;
    double best_ov = 0;
    int64_t best_time = 0;
    for (size_t k = i; k-- > 0;) {
        const gs_warp_item_t *o = e[k].item;
        if (o->time >= s->time)
            continue; // same time: not a pair
        if (best >= 0 && o->time < best_time)
            break; // every later candidate of the best time was seen
        if (max_gap_s > 0 && (double)(s->time - o->time) > max_gap_s)
            break;
        double ov = item_overlap(o, s);
        if (ov <= 0 || ov < job->changes.min_overlap)
            continue;
        // the same time as the best so far: the larger overlap, then the smaller id
        if (best < 0 || ov > best_ov || (ov == best_ov && o->id < e[best].item->id)) {
            best = (long)k;
            best_ov = ov;
            best_time = o->time;
        }
    }
    *out_overlap = best_ov;
    return best;
}

void gs_warp_pairs(const gs_job_t *job, const gs_warp_item_t *items, size_t n, gs_warp_pair_t **out,
                   size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    entry_t *e = gs_xcalloc(n ? n : 1, sizeof *e);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].has_time)
            e[m++] = (entry_t){.item = &items[i], .index = (uint32_t)i};
    qsort(e, m, sizeof *e, by_time);
    gs_warp_pair_t *pairs = NULL;
    size_t n_pairs = 0, cap = 0;
    for (size_t i = 0; i < m; i++) {
        if (job->changes.pairing == GS_JOB_PAIRING_LATEST && e[i].item->paired)
            continue;
        double ov = 0;
        long k = partner(job, e, i, &ov);
        if (k < 0)
            continue;
        if (n_pairs == cap) {
            cap = cap ? cap * 2 : 64;
            pairs = gs_xrealloc(pairs, cap * sizeof *pairs);
        }
        pairs[n_pairs++] =
            (gs_warp_pair_t){.before = e[k].index, .after = e[i].index, .overlap = ov};
    }
    gs_free(e);
    *out = pairs;
    *out_n = n_pairs;
}

// ---- change record keys ---------------------------------------------------------------------

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t rd_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

#define SIGN ((uint64_t)1 << 63)

uint64_t gs_warp_location(const gs_warp_grid_t *grid, const gs_tile_grid_t *tiles, int col, int row)
{
    // the grid's identity: CRS text, geotransform, size, tiling; then the cell
    uint64_t h = gs_hash_str(grid->crs_wkt ? grid->crs_wkt : "", GS_WARP_LOC_SEED);
    uint8_t rec[6 * 8 + 7 * 8];
    size_t n = 0;
    for (int i = 0; i < 6; i++, n += 8)
        be64(rec + n, f64_bits(grid->gt[i]));
    int64_t v[7] = {grid->width, grid->height, tiles->size, tiles->overlap, tiles->edge, col, row};
    for (int i = 0; i < 7; i++, n += 8)
        be64(rec + n, (uint64_t)v[i]);
    return gs_hash_bytes(rec, n, h);
}

void gs_warp_key_encode(const gs_warp_key_t *k, uint8_t out[GS_WARP_KEY_NBYTES])
{
    be64(out, k->location);
    be64(out + 8, (uint64_t)k->before_time ^ SIGN);
    be64(out + 16, (uint64_t)k->after_time ^ SIGN);
    be64(out + 24, k->before_scene);
    be64(out + 32, k->after_scene);
    for (int i = 0; i < 4; i++)
        be64(out + 40 + 8 * i, f64_bits(k->bounds[i]));
}

gs_err gs_warp_key_decode(const void *p, size_t nbytes, gs_warp_key_t *out)
{
    if (nbytes != GS_WARP_KEY_NBYTES)
        return GS_EFORMAT;
    const uint8_t *b = p;
    out->location = rd_be64(b);
    out->before_time = (int64_t)(rd_be64(b + 8) ^ SIGN);
    out->after_time = (int64_t)(rd_be64(b + 16) ^ SIGN);
    out->before_scene = rd_be64(b + 24);
    out->after_scene = rd_be64(b + 32);
    for (int i = 0; i < 4; i++)
        out->bounds[i] = bits_f64(rd_be64(b + 40 + 8 * i));
    return GS_OK;
}

uint64_t gs_warp_pair_id(const uint8_t key[GS_WARP_KEY_NBYTES])
{
    uint64_t id = gs_hash_bytes(key, 40, GS_WARP_PAIR_SEED) & 0x7FFFFFFFFFFFFFFFULL;
    return id ? id : 1;
}
