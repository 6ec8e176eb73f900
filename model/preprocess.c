// Image preprocessing: Pillow-exact bicubic resize, center crop, rescale and normalisation.
// The resize reproduces Pillow 9.4's Resample.c arithmetic (double-precision filter weights,
// normalised, then 22-bit fixed point; int32 accumulation; uint8 after each pass), so that
// the uint8 pixels match bit for bit. A resize can be restricted to a window of its output: each
// output pixel depends only on its own column and row weights, so a center crop computes only
// the crop. Nothing here allocates or logs.
#include "model/preprocess.h"

#include <limits.h>
#include <math.h>
#include <string.h>

// The filter weights must be computed exactly as Pillow (built with gcc, no FMA) does: no
// contraction of a*b+c into fma. gcc does not contract in ISO C mode; clang must be told.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

// Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
#define PRECISION_BITS 22
#define SCRATCH_ALIGN 64

gs_preprocess_cfg_t gs_preprocess_cfg_openai(int size, gs_crop_mode_t crop)
{
    gs_preprocess_cfg_t c = {
        .size = size,
        .crop = crop,
        .mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .std = {0.26862954f, 0.26130258f, 0.27577711f},
    };
    return c;
}

// ---- filter weights -----------------------------------------------------------------------

// Pillow's bicubic_filter with a = -0.5 (the same operation order).
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// One axis of a resize: `in` source pixels to `out` output pixels, of which the window
// [first, first + count) is computed.
typedef struct {
    int in, out;
    int first, count;
    double scale;   // in / out
    double fs;      // max(scale, 1): the filter is stretched when reducing (antialias)
    double support; // 2 * fs
    int ksize;      // taps per output pixel at most: 2*ceil(support) + 1 (Pillow's ksize)
} axis_t;

// Weights of one window of one axis, in scratch.
typedef struct {
    int32_t *k; // (count, ksize) fixed-point weights
    int *lo;    // (count) first source pixel
    int *n;     // (count) number of taps
} taps_t;

static void axis_init(axis_t *ax, int in, int out, int first, int count)
{
    ax->in = in;
    ax->out = out;
    ax->first = first;
    ax->count = count;
    ax->scale = (double)in / out;
    ax->fs = ax->scale < 1.0 ? 1.0 : ax->scale;
    ax->support = 2.0 * ax->fs;
    ax->ksize = (int)ceil(ax->support) * 2 + 1;
}

// The source range [*lo, *lo + *n) of output pixel xx (Pillow's xmin/xmax rounding).
static void axis_bounds(const axis_t *ax, int xx, double *center, int *lo, int *n)
{
    double c = (xx + 0.5) * ax->scale;
    int xmin = (int)(c - ax->support + 0.5);
    if (xmin < 0)
        xmin = 0;
    int xmax = (int)(c + ax->support + 0.5);
    if (xmax > ax->in)
        xmax = ax->in;
    xmax -= xmin;
    if (xmax > ax->ksize) // cannot happen (2*support+1 <= ksize); keeps the buffer safe anyway
        xmax = ax->ksize;
    *center = c;
    *lo = xmin;
    *n = xmax;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the window of `ax`. The weights are
// computed twice (once for their sum, once to normalise) instead of being stored as doubles:
// the same expression gives the same double both times.
static void axis_taps(const axis_t *ax, taps_t *t)
{
    double ss = 1.0 / ax->fs;
    for (int i = 0; i < ax->count; i++) {
        double center;
        int xmin, n;
        axis_bounds(ax, ax->first + i, &center, &xmin, &n);
        double ww = 0.0;
        for (int x = 0; x < n; x++)
            ww += bicubic((x + xmin - center + 0.5) * ss);
        int32_t *k = t->k + (size_t)i * ax->ksize;
        for (int x = 0; x < n; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            if (ww != 0.0)
                w /= ww;
            k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        t->lo[i] = xmin;
        t->n[i] = n;
    }
}

// ---- passes -------------------------------------------------------------------------------

static inline uint8_t clip8(int32_t v)
{
    if (v >= (1 << PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

// Horizontal pass over `n_rows` rows: src rows have `src_stride` bytes, dst rows are the window
// (ax->count pixels of ch channels).
static void pass_h(const uint8_t *src, size_t src_stride, int ch, int n_rows, const axis_t *ax,
                   const taps_t *t, uint8_t *dst)
{
    const int32_t half = 1 << (PRECISION_BITS - 1);
    size_t dst_stride = (size_t)ax->count * ch;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = src + (size_t)r * src_stride;
        uint8_t *o = dst + (size_t)r * dst_stride;
        for (int i = 0; i < ax->count; i++) {
            const int32_t *k = t->k + (size_t)i * ax->ksize;
            const uint8_t *s = row + (size_t)t->lo[i] * ch;
            int n = t->n[i];
            if (ch == 3) {
                int32_t s0 = half, s1 = half, s2 = half;
                for (int x = 0; x < n; x++) {
                    s0 += s[3 * x + 0] * k[x];
                    s1 += s[3 * x + 1] * k[x];
                    s2 += s[3 * x + 2] * k[x];
                }
                o[3 * i + 0] = clip8(s0);
                o[3 * i + 1] = clip8(s1);
                o[3 * i + 2] = clip8(s2);
            } else {
                for (int c = 0; c < ch; c++) {
                    int32_t acc = half;
                    for (int x = 0; x < n; x++)
                        acc += s[ch * x + c] * k[x];
                    o[ch * i + c] = clip8(acc);
                }
            }
        }
    }
}

// acc[j] += s[j] * k over a row. Separate with restrict parameters so that gcc -O2 (very cheap
// cost model) vectorises it: uint8 may alias anything, so it would not otherwise.
static void mac_row(int32_t *restrict acc, const uint8_t *restrict s, int32_t k, size_t n)
{
    for (size_t j = 0; j < n; j++)
        acc[j] += s[j] * k;
}

static void clip_row(uint8_t *restrict o, const int32_t *restrict acc, size_t n)
{
    for (size_t j = 0; j < n; j++)
        o[j] = clip8(acc[j]);
}

// Vertical pass: output row i of the window reads source rows t->lo[i] - row_base + [0, n);
// every row holds `row_nbytes` bytes (the window's width x channels) at `src_stride`.
// acc: row_nbytes int32 of scratch (a row accumulator keeps the inner loop contiguous).
static void pass_v(const uint8_t *src, size_t src_stride, size_t row_nbytes, int row_base,
                   const axis_t *ax, const taps_t *t, int32_t *acc, uint8_t *dst)
{
    const int32_t half = 1 << (PRECISION_BITS - 1);
    for (int i = 0; i < ax->count; i++) {
        const int32_t *k = t->k + (size_t)i * ax->ksize;
        for (size_t j = 0; j < row_nbytes; j++)
            acc[j] = half;
        for (int y = 0; y < t->n[i]; y++)
            mac_row(acc, src + (size_t)(t->lo[i] - row_base + y) * src_stride, k[y], row_nbytes);
        clip_row(dst + (size_t)i * row_nbytes, acc, row_nbytes);
    }
}

// ---- windowed resize ----------------------------------------------------------------------

// A resize of w x h x ch to out_w x out_h, computing the window (x0, y0, win_w, win_h).
typedef struct {
    axis_t ax_h, ax_v;
    int need_h, need_v; // Pillow skips a pass whose size does not change
    int row_lo, n_rows; // source rows the horizontal pass computes (both passes needed)
    size_t off_kh, off_loh, off_nh, off_kv, off_lov, off_nv, off_tmp, off_acc, nbytes;
} plan_t;

static size_t align_up(size_t n)
{
    return (n + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1);
}

static void plan_init(plan_t *p, int w, int h, int ch, int out_w, int out_h, int x0, int y0,
                      int win_w, int win_h)
{
    memset(p, 0, sizeof *p);
    axis_init(&p->ax_h, w, out_w, x0, win_w);
    axis_init(&p->ax_v, h, out_h, y0, win_h);
    p->need_h = out_w != w;
    p->need_v = out_h != h;
    if (p->need_h && p->need_v) {
        double c;
        int lo_first, n_first, lo_last, n_last;
        axis_bounds(&p->ax_v, y0, &c, &lo_first, &n_first);
        axis_bounds(&p->ax_v, y0 + win_h - 1, &c, &lo_last, &n_last);
        p->row_lo = lo_first;
        p->n_rows = lo_last + n_last - lo_first;
    }
    size_t at = 0;
    if (p->need_h) {
        p->off_kh = at;
        at += align_up((size_t)win_w * p->ax_h.ksize * sizeof(int32_t));
        p->off_loh = at;
        at += align_up((size_t)win_w * sizeof(int));
        p->off_nh = at;
        at += align_up((size_t)win_w * sizeof(int));
    }
    if (p->need_v) {
        p->off_kv = at;
        at += align_up((size_t)win_h * p->ax_v.ksize * sizeof(int32_t));
        p->off_lov = at;
        at += align_up((size_t)win_h * sizeof(int));
        p->off_nv = at;
        at += align_up((size_t)win_h * sizeof(int));
        p->off_acc = at;
        at += align_up((size_t)win_w * ch * sizeof(int32_t));
    }
    if (p->need_h && p->need_v) {
        p->off_tmp = at;
        at += align_up((size_t)win_w * ch * p->n_rows);
    }
    p->nbytes = at + SCRATCH_ALIGN; // room to align the caller's pointer
}

static void plan_run(const plan_t *p, const uint8_t *in, int ch, void *scratch, uint8_t *out)
{
    uint8_t *base =
        (uint8_t *)(((uintptr_t)scratch + SCRATCH_ALIGN - 1) & ~(uintptr_t)(SCRATCH_ALIGN - 1));
    const axis_t *ah = &p->ax_h, *av = &p->ax_v;
    size_t in_stride = (size_t)ah->in * ch;
    size_t win_row = (size_t)ah->count * ch;
    taps_t th = {(int32_t *)(base + p->off_kh), (int *)(base + p->off_loh),
                 (int *)(base + p->off_nh)};
    taps_t tv = {(int32_t *)(base + p->off_kv), (int *)(base + p->off_lov),
                 (int *)(base + p->off_nv)};
    if (p->need_h)
        axis_taps(ah, &th);
    if (p->need_v)
        axis_taps(av, &tv);

    if (p->need_h && p->need_v) {
        uint8_t *tmp = base + p->off_tmp;
        pass_h(in + (size_t)p->row_lo * in_stride, in_stride, ch, p->n_rows, ah, &th, tmp);
        pass_v(tmp, win_row, win_row, p->row_lo, av, &tv, (int32_t *)(base + p->off_acc), out);
    } else if (p->need_h) {
        pass_h(in + (size_t)av->first * in_stride, in_stride, ch, av->count, ah, &th, out);
    } else if (p->need_v) {
        pass_v(in + (size_t)ah->first * ch, in_stride, win_row, 0, av, &tv,
               (int32_t *)(base + p->off_acc), out);
    } else {
        for (int y = 0; y < av->count; y++)
            memcpy(out + (size_t)y * win_row,
                   in + (size_t)(av->first + y) * in_stride + (size_t)ah->first * ch, win_row);
    }
}

static int dim_ok(int d)
{
    return d >= 1 && d <= GS_PREPROCESS_MAX_DIM;
}

// ---- public: resize -----------------------------------------------------------------------

size_t gs_preprocess_resize_scratch_nbytes(int w, int h, int channels, int out_w, int out_h)
{
    if (!dim_ok(w) || !dim_ok(h) || !dim_ok(out_w) || !dim_ok(out_h) || channels < 1 ||
        channels > 4)
        return 0;
    plan_t p;
    plan_init(&p, w, h, channels, out_w, out_h, 0, 0, out_w, out_h);
    return p.nbytes;
}

gs_err gs_preprocess_resize_bicubic(const uint8_t *in, int w, int h, int channels, int out_w,
                                    int out_h, void *scratch, uint8_t *out)
{
    if (!in || !scratch || !out ||
        gs_preprocess_resize_scratch_nbytes(w, h, channels, out_w, out_h) == 0)
        return GS_EINVAL;
    plan_t p;
    plan_init(&p, w, h, channels, out_w, out_h, 0, 0, out_w, out_h);
    plan_run(&p, in, channels, scratch, out);
    return GS_OK;
}

// ---- public: preprocess -------------------------------------------------------------------

gs_err gs_preprocess_geometry(int w, int h, int size, gs_crop_mode_t crop, int *out_rw, int *out_rh,
                              int *out_left, int *out_top)
{
    if (!dim_ok(w) || !dim_ok(h) || !dim_ok(size) ||
        (crop != GS_CROP_OPENCLIP && crop != GS_CROP_HF))
        return GS_EINVAL;
    // Python: int(size * long / short), a correctly rounded double division then truncation;
    // exact here too as both operands are below 2^53.
    int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    double nl = (double)((int64_t)size * lng) / (double)shrt;
    if (nl > INT32_MAX / 4)
        return GS_EINVAL;
    int rl = (int)nl;
    int rw = w <= h ? size : rl, rh = w <= h ? rl : size;
    int dw = rw - size, dh = rh - size; // >= 0: the short side is `size`
    int left, top;
    if (crop == GS_CROP_HF) {
        left = dw / 2;
        top = dh / 2;
    } else {
        // int(round(d / 2.0)) with round-half-to-even: 1.5 -> 2, 2.5 -> 2
        left = dw / 2 + ((dw & 1) && ((dw / 2) & 1));
        top = dh / 2 + ((dh & 1) && ((dh / 2) & 1));
    }
    if (out_rw)
        *out_rw = rw;
    if (out_rh)
        *out_rh = rh;
    if (out_left)
        *out_left = left;
    if (out_top)
        *out_top = top;
    return GS_OK;
}

static gs_err crop_plan(int w, int h, int size, gs_crop_mode_t crop, plan_t *p)
{
    int rw, rh, left, top;
    GS_TRY(gs_preprocess_geometry(w, h, size, crop, &rw, &rh, &left, &top));
    plan_init(p, w, h, 3, rw, rh, left, top, size, size);
    return GS_OK;
}

size_t gs_preprocess_scratch_nbytes(int w, int h, int size)
{
    plan_t a, b;
    if (crop_plan(w, h, size, GS_CROP_OPENCLIP, &a) != GS_OK ||
        crop_plan(w, h, size, GS_CROP_HF, &b) != GS_OK)
        return 0;
    // the resize's scratch, then the size x size x 3 cropped pixels of gs_preprocess_image
    return (a.nbytes > b.nbytes ? a.nbytes : b.nbytes) + (size_t)size * size * 3;
}

gs_err gs_preprocess_resize_crop(const uint8_t *rgb, int w, int h, int size, gs_crop_mode_t crop,
                                 void *scratch, uint8_t *out_hwc)
{
    if (!rgb || !scratch || !out_hwc)
        return GS_EINVAL;
    plan_t p;
    GS_TRY(crop_plan(w, h, size, crop, &p));
    plan_run(&p, rgb, 3, scratch, out_hwc);
    return GS_OK;
}

gs_err gs_preprocess_image(const uint8_t *rgb, int w, int h, const gs_preprocess_cfg_t *cfg,
                           void *scratch, float *out_chw)
{
    if (!rgb || !cfg || !scratch || !out_chw)
        return GS_EINVAL;
    for (int c = 0; c < 3; c++)
        if (!(cfg->std[c] != 0.0f) || !isfinite(cfg->std[c]) || !isfinite(cfg->mean[c]))
            return GS_EINVAL;
    plan_t p;
    GS_TRY(crop_plan(w, h, cfg->size, cfg->crop, &p));

    // The cropped uint8 pixels go after the resize's own scratch (see scratch_nbytes).
    size_t n = (size_t)cfg->size * cfg->size;
    uint8_t *px = (uint8_t *)scratch + p.nbytes;
    plan_run(&p, rgb, 3, scratch, px);

    // Per-channel tables of the 256 possible results, in the reference's float arithmetic.
    float lut[3][256];
    for (int c = 0; c < 3; c++) {
        for (int v = 0; v < 256; v++) {
            float x = cfg->crop == GS_CROP_HF ? (float)(v * (1.0 / 255.0)) : (float)v / 255.0f;
            lut[c][v] = (x - cfg->mean[c]) / cfg->std[c];
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
        out_chw[i] = lut[0][r];
        out_chw[n + i] = lut[1][g];
        out_chw[2 * n + i] = lut[2][b];
    }
    return GS_OK;
}
