// model/preprocess: the resize, crop and normalisation against the golden fixtures (open_clip,
// CLIPImageProcessor, LLaVA's processor), against Pillow 9.4 hashes of synthetic images
// (upscaling, odd sizes, 1xN, 1..4 channels), and on its own invariants and argument checks.
#include <check.h>
#include <png.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "model/preprocess.h"
#include "model/weights.h"
#include "testutil.h"

// ---- helpers ------------------------------------------------------------------------------

// Scratch of exactly `n` bytes followed by a canary, to catch writes past the announced size
// (ASan catches them too in the sanitizer build).
#define CANARY_NBYTES 64

static void *scratch_new(size_t n)
{
    ck_assert_uint_gt(n, 0);
    uint8_t *s = gs_xmalloc(n + CANARY_NBYTES);
    memset(s + n, 0xA5, CANARY_NBYTES);
    return s;
}

static void scratch_check_free(void *scratch, size_t n)
{
    uint8_t *s = scratch;
    for (size_t i = 0; i < CANARY_NBYTES; i++)
        ck_assert_msg(s[n + i] == 0xA5, "scratch overrun at +%zu", i);
    gs_free(s);
}

// FNV-1a 64 of a buffer (the Pillow hashes below).
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// Synthetic test images, the same bytes as gen() in the Pillow script below: kind 0 is LCG noise
// (exercises the negative lobes and clamping), kind 1 a wrapping gradient.
static uint8_t *synth(int w, int h, int ch, unsigned seed, int kind)
{
    size_t n = (size_t)w * h * ch;
    uint8_t *p = gs_xmalloc(n);
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        if (kind == 0) {
            s = (s * 1103515245u + 12345u) & 0x7fffffffu;
            p[i] = (uint8_t)(s >> 16);
        } else {
            size_t c = i % ch, x = (i / ch) % w, y = i / ch / w;
            p[i] = (uint8_t)(x * 7 + y * 13 + c * 85 + seed);
        }
    }
    return p;
}

// Reports the first differing bytes of two uint8 buffers; returns the number of differences.
static size_t diff_u8(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            if (bad < 5)
                fprintf(stderr, "%s[%zu]: got %d want %d\n", what, i, got[i], want[i]);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "%s: %zu of %zu bytes differ\n", what, bad, n);
    return bad;
}

static gs_weights_t *open_expected(const char *fixture)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/%s/expected.safetensors", gs_test_shared(), fixture);
    gs_weights_t *w = NULL;
    gs_err e = gs_weights_open(path, &w);
    ck_assert_msg(e == GS_OK, "open %s: %s", path, gs_strerror(e));
    return w;
}

static const gs_tensor_t *get_tensor(const gs_weights_t *w, const char *name, gs_dtype_t dtype)
{
    const gs_tensor_t *t = gs_weights_get(w, name);
    ck_assert_msg(t != NULL, "tensor \"%s\" missing", name);
    ck_assert_msg(t->dtype == dtype, "tensor \"%s\": dtype %s", name, gs_dtype_name(t->dtype));
    return t;
}

// Preprocesses `rgb` and compares with pixel_values[index] (atol 1e-6, the fixtures' tolerance);
// also returns the resized+cropped pixels in out_rc (32*32*3) when not NULL.
static void check_pixel_values(const char *what, const uint8_t *rgb, int w, int h,
                               gs_crop_mode_t crop, const gs_tensor_t *pv, int index,
                               uint8_t *out_rc)
{
    const int size = 32;
    size_t n = (size_t)3 * size * size;
    ck_assert_int_eq(pv->n_dims, 4);
    ck_assert_int_gt(pv->shape[0], index);
    ck_assert_int_eq(pv->shape[1] * pv->shape[2] * pv->shape[3], (int64_t)n);
    size_t sn = gs_preprocess_scratch_nbytes(w, h, size);
    void *scratch = scratch_new(sn);
    float *out = gs_xmalloc(n * sizeof(float));
    gs_preprocess_cfg_t cfg = gs_preprocess_cfg_openai(size, crop);
    ck_assert_int_eq(gs_preprocess_image(rgb, w, h, &cfg, scratch, out), GS_OK);
    const float *want = (const float *)pv->data + (size_t)index * n;
    ck_assert_uint_eq(gs_test_check_close(what, out, want, n, 1e-6, 0), 0);
    if (out_rc)
        ck_assert_int_eq(gs_preprocess_resize_crop(rgb, w, h, size, crop, scratch, out_rc), GS_OK);
    scratch_check_free(scratch, sn);
    gs_free(out);
}

// ---- golden fixtures ----------------------------------------------------------------------

// open_clip: the crop rounds half to even; image 2 (70x64 -> 32x35) is cropped at top=2.
START_TEST(test_preprocess_openclip_fixture)
{
    GS_NEED_SHARED();
    gs_weights_t *w = open_expected("openclip_tiny");
    const gs_tensor_t *pv = get_tensor(w, "pixel_values", GS_DTYPE_F32);
    static const int want_hw[4][2] = {{48, 64}, {27, 41}, {70, 64}, {96, 96}}; // manifest.json
    static const int want_top_left[4][2] = {{0, 5}, {0, 8}, {2, 0}, {0, 0}};
    for (int i = 0; i < 4; i++) {
        char name[64], what[64];
        snprintf(name, sizeof name, "image%d.raw_uint8_hwc", i);
        const gs_tensor_t *raw = get_tensor(w, name, GS_DTYPE_U8);
        ck_assert_int_eq(raw->n_dims, 3);
        ck_assert_int_eq(raw->shape[0], want_hw[i][0]);
        ck_assert_int_eq(raw->shape[1], want_hw[i][1]);
        ck_assert_int_eq(raw->shape[2], 3);
        int ih = (int)raw->shape[0], iw = (int)raw->shape[1];
        int left, top;
        ck_assert_int_eq(
            gs_preprocess_geometry(iw, ih, 32, GS_CROP_OPENCLIP, NULL, NULL, &left, &top), GS_OK);
        ck_assert_int_eq(top, want_top_left[i][0]);
        ck_assert_int_eq(left, want_top_left[i][1]);

        snprintf(name, sizeof name, "image%d.resized_cropped_uint8_hwc", i);
        const gs_tensor_t *rc = get_tensor(w, name, GS_DTYPE_U8);
        ck_assert_int_eq(rc->nbytes, 32 * 32 * 3);
        uint8_t got[32 * 32 * 3];
        snprintf(what, sizeof what, "openclip pixel_values[%d]", i);
        check_pixel_values(what, raw->data, iw, ih, GS_CROP_OPENCLIP, pv, i, got);
        snprintf(what, sizeof what, "openclip image%d resized_cropped", i);
        ck_assert_uint_eq(diff_u8(what, got, rc->data, sizeof got), 0);
    }
    gs_weights_close(&w);
}
END_TEST

// CLIPImageProcessor: floor crop (image 2 at top=1) and the float64 rescale. open_clip's crop of
// the same resized image starts one row lower, so HF's rows 1..31 are open_clip's rows 0..30.
START_TEST(test_preprocess_hfclip_fixture)
{
    GS_NEED_SHARED();
    gs_weights_t *w = open_expected("hfclip_tiny");
    gs_weights_t *oc = open_expected("openclip_tiny");
    const gs_tensor_t *pv = get_tensor(w, "pixel_values", GS_DTYPE_F32);
    for (int i = 0; i < 4; i++) {
        char name[64], what[64];
        snprintf(name, sizeof name, "image%d.raw_uint8_hwc", i);
        const gs_tensor_t *raw = get_tensor(w, name, GS_DTYPE_U8);
        ck_assert_int_eq(raw->n_dims, 3);
        ck_assert_int_eq(raw->shape[2], 3);
        int ih = (int)raw->shape[0], iw = (int)raw->shape[1];
        uint8_t got[32 * 32 * 3];
        snprintf(what, sizeof what, "hfclip pixel_values[%d]", i);
        check_pixel_values(what, raw->data, iw, ih, GS_CROP_HF, pv, i, got);
        if (i != 2)
            continue;
        int top;
        ck_assert_int_eq(gs_preprocess_geometry(iw, ih, 32, GS_CROP_HF, NULL, NULL, NULL, &top),
                         GS_OK);
        ck_assert_int_eq(top, 1);
        const gs_tensor_t *rc = get_tensor(oc, "image2.resized_cropped_uint8_hwc", GS_DTYPE_U8);
        const uint8_t *want = rc->data;
        ck_assert_uint_eq(diff_u8("hf crop vs open_clip crop", got + 32 * 3, want, 31 * 32 * 3), 0);
        ck_assert_msg(memcmp(got, want, sizeof got) != 0, "the two crops should differ");
    }
    gs_weights_close(&oc);
    gs_weights_close(&w);
}
END_TEST

// Decodes an 8-bit RGB PNG (the LLaVA fixtures hold only PNGs). Caller frees *out.
static void read_png_rgb(const char *path, uint8_t **out, int *out_w, int *out_h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&img, path), "png %s: %s", path, img.message);
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = gs_xmalloc(PNG_IMAGE_SIZE(img));
    ck_assert_msg(png_image_finish_read(&img, NULL, buf, 0, NULL), "png %s: %s", path, img.message);
    *out = buf;
    *out_w = (int)img.width;
    *out_h = (int)img.height;
}

// LLaVA (llava-hf CLIPImageProcessor, no square padding): the single and the pair case.
START_TEST(test_preprocess_llava_fixture)
{
    GS_NEED_SHARED();
    gs_weights_t *w = open_expected("llava_tiny");
    static const struct {
        const char *tensor, *png;
        int index, w, h;
    } cases[] = {
        {"single.pixel_values", "single_image_0.png", 0, 56, 40},
        {"pair.pixel_values", "pair_image_0_before.png", 0, 44, 44},
        {"pair.pixel_values", "pair_image_1_after.png", 1, 44, 44},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/fixtures/llava_tiny/%s", gs_test_shared(), cases[c].png);
        uint8_t *rgb;
        int iw, ih;
        read_png_rgb(path, &rgb, &iw, &ih);
        ck_assert_int_eq(iw, cases[c].w);
        ck_assert_int_eq(ih, cases[c].h);
        const gs_tensor_t *pv = get_tensor(w, cases[c].tensor, GS_DTYPE_F32);
        check_pixel_values(cases[c].png, rgb, iw, ih, GS_CROP_HF, pv, cases[c].index, NULL);
        gs_free(rgb);
    }
    gs_weights_close(&w);
}
END_TEST

// ---- Pillow hashes ------------------------------------------------------------------------
// clang-format off
// Pillow 9.4.0 (Debian 12 python3-pil, the fixtures' version) on synth() images. Regenerate with
// /usr/bin/python3 on this script (numpy + PIL):
//   import numpy as np; from PIL import Image
//   def gen(w,h,ch,seed,kind):
//       if kind==0:
//           s=seed; out=bytearray(w*h*ch)
//           for i in range(w*h*ch): s=(s*1103515245+12345)&0x7fffffff; out[i]=(s>>16)&255
//           return bytes(out)
//       return bytes(((x*7+y*13+c*85+seed)&255) for y in range(h) for x in range(w) for c in range(ch))
//   def fnv(b):
//       h=0xcbf29ce484222325
//       for x in b: h=((h^x)*0x100000001b3)&0xffffffffffffffff
//       return h
//   MODE={1:'L',3:'RGB',4:'RGBX'}
//   for w,h,ch,ow,oh,kind in RESIZE:   # the table below; seed = w*31+h
//       im=Image.frombytes(MODE[ch],(w,h),gen(w,h,ch,w*31+h,kind))
//       print(hex(fnv(im.resize((ow,oh),Image.BICUBIC).tobytes())))
//   for w,h,size,crop in CROP:         # kind 0, 3 channels
//       im=Image.frombytes('RGB',(w,h),gen(w,h,3,w*31+h,0))
//       sh,lg=(w,h) if w<=h else (h,w); nl=int(size*lg/sh); rw,rh=(size,nl) if w<=h else (nl,size)
//       res=np.asarray(im.resize((rw,rh),Image.BICUBIC))
//       top,left=((int(round((rh-size)/2.0)),int(round((rw-size)/2.0))) if crop==0
//                 else ((rh-size)//2,(rw-size)//2))
//       print(hex(fnv(np.ascontiguousarray(res[top:top+size,left:left+size]).tobytes())))
// (RGBX: 4 independent channels; Pillow premultiplies RGBA, which geoscribe never resizes.)

static const struct {
    int w, h, ch, out_w, out_h, kind;
    uint64_t fnv;
} pillow_resize[] = {
    {7, 5, 3, 19, 11, 0, 0x7a808681a5c78bbaull},   // upscale both
    {5, 7, 3, 3, 2, 0, 0x8d499746d6ae562dull},     // downscale both, odd sizes
    {1, 9, 3, 13, 40, 0, 0xb547f7b02689bb4full},   // 1xN up
    {9, 1, 3, 40, 13, 1, 0xe84cabe8a529b479ull},   // Nx1 up
    {1, 1, 3, 17, 23, 0, 0x8f9eaf81bc41c7f8ull},   // one pixel
    {1, 1, 1, 1, 5, 0, 0xc443826d9b1616a0ull},     // horizontal pass skipped
    {33, 17, 1, 33, 40, 0, 0x5b73b442ae68a972ull}, // horizontal pass skipped, grey
    {33, 17, 4, 50, 17, 0, 0x75685bc0a2800b86ull}, // vertical pass skipped, 4 channels
    {64, 48, 3, 42, 32, 1, 0xcd339e5587d190a0ull}, // open_clip image 0's resize
    {31, 29, 3, 31, 29, 0, 0x7b3783623f366bf6ull}, // same size: a copy
    {100, 3, 3, 7, 1, 0, 0xf77971484a7d6fc1ull},   // strong reduction to one row
    {2, 300, 1, 1, 9, 0, 0x22120bce8511486cull},
    {45, 45, 4, 17, 67, 1, 0xc9bbba7e5231dcefull},
    {16, 16, 3, 255, 3, 0, 0xdd126f6c1d92d6daull},
};

static const struct {
    int w, h, size;
    gs_crop_mode_t crop;
    uint64_t fnv;
} pillow_crop[] = {
    {13, 9, 8, GS_CROP_OPENCLIP, 0x1a7827ba7e749a87ull}, // 11x8: left 2 (1.5 -> 2)
    {13, 9, 8, GS_CROP_HF, 0x95d747ae5d3bdcccull},       // left 1
    {1, 40, 16, GS_CROP_OPENCLIP, 0x6d115fb5846763c5ull}, // 1xN: 16x640
    {40, 1, 16, GS_CROP_HF, 0xd258a36d0bdefc25ull},
    {1, 1, 12, GS_CROP_OPENCLIP, 0x54600aa962642215ull},
    {2, 3, 11, GS_CROP_HF, 0x4c5a5e41a53be4d2ull},
    {37, 42, 24, GS_CROP_OPENCLIP, 0xd6ed1523485ef9b1ull}, // 24x27: top 2
    {37, 42, 24, GS_CROP_HF, 0xe10cc501ac244479ull},       // top 1
    {202, 7, 5, GS_CROP_OPENCLIP, 0x987b8a34404e99aaull},  // 144x5: left 70 (69.5 -> 70)
    {202, 7, 5, GS_CROP_HF, 0x975a78bfe4902dd6ull},        // left 69
    {37, 59, 24, GS_CROP_OPENCLIP, 0xa23b7bdd42b986c4ull},
};
// clang-format on

START_TEST(test_preprocess_resize_matches_pillow)
{
    for (size_t i = 0; i < sizeof pillow_resize / sizeof pillow_resize[0]; i++) {
        int w = pillow_resize[i].w, h = pillow_resize[i].h, ch = pillow_resize[i].ch;
        int ow = pillow_resize[i].out_w, oh = pillow_resize[i].out_h;
        uint8_t *in = synth(w, h, ch, (unsigned)(w * 31 + h), pillow_resize[i].kind);
        size_t sn = gs_preprocess_resize_scratch_nbytes(w, h, ch, ow, oh);
        void *scratch = scratch_new(sn);
        size_t n = (size_t)ow * oh * ch;
        uint8_t *out = gs_xmalloc(n);
        ck_assert_int_eq(gs_preprocess_resize_bicubic(in, w, h, ch, ow, oh, scratch, out), GS_OK);
        uint64_t got = fnv1a(out, n);
        ck_assert_msg(got == pillow_resize[i].fnv, "%dx%dx%d -> %dx%d: hash %016llx want %016llx",
                      w, h, ch, ow, oh, (unsigned long long)got,
                      (unsigned long long)pillow_resize[i].fnv);
        scratch_check_free(scratch, sn);
        gs_free(out);
        gs_free(in);
    }
}
END_TEST

START_TEST(test_preprocess_crop_matches_pillow)
{
    for (size_t i = 0; i < sizeof pillow_crop / sizeof pillow_crop[0]; i++) {
        int w = pillow_crop[i].w, h = pillow_crop[i].h, size = pillow_crop[i].size;
        uint8_t *in = synth(w, h, 3, (unsigned)(w * 31 + h), 0);
        size_t sn = gs_preprocess_scratch_nbytes(w, h, size);
        void *scratch = scratch_new(sn);
        size_t n = (size_t)size * size * 3;
        uint8_t *out = gs_xmalloc(n);
        ck_assert_int_eq(
            gs_preprocess_resize_crop(in, w, h, size, pillow_crop[i].crop, scratch, out), GS_OK);
        uint64_t got = fnv1a(out, n);
        ck_assert_msg(got == pillow_crop[i].fnv, "%dx%d -> %d crop %d: hash %016llx want %016llx",
                      w, h, size, pillow_crop[i].crop, (unsigned long long)got,
                      (unsigned long long)pillow_crop[i].fnv);
        scratch_check_free(scratch, sn);
        gs_free(out);
        gs_free(in);
    }
}
END_TEST

// ---- invariants ---------------------------------------------------------------------------

// The crop computes only its window of the resize; it must equal the full resize, then cropped.
START_TEST(test_preprocess_window_equals_full_resize)
{
    uint32_t s = 12345;
    for (int iter = 0; iter < 300; iter++) {
        s = s * 1664525u + 1013904223u;
        int w = 1 + (int)(s >> 8) % 90;
        s = s * 1664525u + 1013904223u;
        int h = 1 + (int)(s >> 8) % 90;
        s = s * 1664525u + 1013904223u;
        int size = 1 + (int)(s >> 8) % 40;
        gs_crop_mode_t crop = (s >> 4) & 1 ? GS_CROP_HF : GS_CROP_OPENCLIP;
        int rw, rh, left, top;
        ck_assert_int_eq(gs_preprocess_geometry(w, h, size, crop, &rw, &rh, &left, &top), GS_OK);
        ck_assert_int_eq(rw < rh ? rw : rh, size);
        ck_assert(left >= 0 && top >= 0 && left + size <= rw && top + size <= rh);
        if ((int64_t)rw * rh > 400000)
            continue;
        uint8_t *in = synth(w, h, 3, s, (int)(s >> 7) & 1);
        size_t sn_full = gs_preprocess_resize_scratch_nbytes(w, h, 3, rw, rh);
        size_t sn = gs_preprocess_scratch_nbytes(w, h, size);
        void *sf = scratch_new(sn_full), *sc = scratch_new(sn);
        uint8_t *full = gs_xmalloc((size_t)rw * rh * 3),
                *want = gs_xmalloc((size_t)size * size * 3);
        uint8_t *got = gs_xmalloc((size_t)size * size * 3);
        ck_assert_int_eq(gs_preprocess_resize_bicubic(in, w, h, 3, rw, rh, sf, full), GS_OK);
        for (int y = 0; y < size; y++)
            memcpy(want + (size_t)y * size * 3, full + ((size_t)(top + y) * rw + left) * 3,
                   (size_t)size * 3);
        ck_assert_int_eq(gs_preprocess_resize_crop(in, w, h, size, crop, sc, got), GS_OK);
        ck_assert_msg(diff_u8("window", got, want, (size_t)size * size * 3) == 0,
                      "%dx%d -> %d crop %d", w, h, size, crop);
        scratch_check_free(sf, sn_full);
        scratch_check_free(sc, sn);
        gs_free(full);
        gs_free(want);
        gs_free(got);
        gs_free(in);
    }
}
END_TEST

// Weights sum to one in fixed point: a constant image stays constant at any size, channel count
// and ratio (1xN and Nx1 included), and resizing to the same size is a copy.
START_TEST(test_preprocess_constant_and_identity)
{
    static const int sizes[][4] = {{1, 1, 7, 300}, {1, 300, 1, 1},  {300, 1, 5, 5},
                                   {7, 3, 2, 9},   {17, 13, 40, 2}, {64, 64, 224, 224}};
    for (int ch = 1; ch <= 4; ch++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            int w = sizes[i][0], h = sizes[i][1], ow = sizes[i][2], oh = sizes[i][3];
            uint8_t value = (uint8_t)(37 * ch + 11 * i);
            uint8_t *in = gs_xmalloc((size_t)w * h * ch);
            memset(in, value, (size_t)w * h * ch);
            size_t sn = gs_preprocess_resize_scratch_nbytes(w, h, ch, ow, oh);
            void *scratch = scratch_new(sn);
            uint8_t *out = gs_xmalloc((size_t)ow * oh * ch);
            ck_assert_int_eq(gs_preprocess_resize_bicubic(in, w, h, ch, ow, oh, scratch, out),
                             GS_OK);
            for (size_t j = 0; j < (size_t)ow * oh * ch; j++)
                ck_assert_msg(out[j] == value, "%dx%dx%d -> %dx%d [%zu]: %d != %d", w, h, ch, ow,
                              oh, j, out[j], value);
            scratch_check_free(scratch, sn);
            gs_free(out);
            gs_free(in);
        }
    }
    uint8_t *in = synth(23, 19, 3, 5, 0);
    uint8_t out[23 * 19 * 3];
    size_t sn = gs_preprocess_resize_scratch_nbytes(23, 19, 3, 23, 19);
    void *scratch = scratch_new(sn);
    ck_assert_int_eq(gs_preprocess_resize_bicubic(in, 23, 19, 3, 23, 19, scratch, out), GS_OK);
    ck_assert_int_eq(memcmp(in, out, sizeof out), 0);
    scratch_check_free(scratch, sn);
    gs_free(in);
}
END_TEST

// A 1xN image (one column) preprocessed to 224: every output row is the same colour across, and
// the huge resized long side (224 x N) is never materialised (small scratch).
START_TEST(test_preprocess_one_pixel_wide)
{
    const int h = 20000, size = 224;
    uint8_t *in = synth(1, h, 3, 99, 1);
    int rw, rh;
    ck_assert_int_eq(gs_preprocess_geometry(1, h, size, GS_CROP_OPENCLIP, &rw, &rh, NULL, NULL),
                     GS_OK);
    ck_assert_int_eq(rw, size);
    ck_assert_int_eq(rh, size * h);
    size_t sn = gs_preprocess_scratch_nbytes(1, h, size);
    ck_assert_uint_lt(sn, 1u << 20);
    void *scratch = scratch_new(sn);
    uint8_t *out = gs_xmalloc((size_t)size * size * 3);
    ck_assert_int_eq(gs_preprocess_resize_crop(in, 1, h, size, GS_CROP_OPENCLIP, scratch, out),
                     GS_OK);
    for (int y = 0; y < size; y++)
        for (int x = 1; x < size; x++)
            for (int c = 0; c < 3; c++)
                ck_assert_int_eq(out[((size_t)y * size + x) * 3 + c],
                                 out[(size_t)y * size * 3 + c]);
    scratch_check_free(scratch, sn);
    gs_free(out);
    gs_free(in);
}
END_TEST

// Geometry of the two crop rules: half-to-even rounding against floor, and the long side
// truncated (Python's int(size*long/short)).
START_TEST(test_preprocess_geometry)
{
    static const struct {
        int w, h, size, rw, rh, oc_top, hf_top;
    } g[] = {
        {64, 70, 32, 32, 35, 2, 1},               // d=3: 1.5 -> 2, floor 1
        {32, 37, 32, 32, 37, 2, 2},               // d=5: 2.5 -> 2
        {32, 33, 32, 32, 33, 0, 0},               // d=1: 0.5 -> 0
        {32, 39, 32, 32, 39, 4, 3},               // d=7: 3.5 -> 4
        {48, 64, 32, 32, 42, 5, 5},               // open_clip image 0 (transposed)
        {3, 1000, 224, 224, 74666, 37221, 37221}, // 224*1000/3 = 74666.67 -> 74666
        {96, 96, 32, 32, 32, 0, 0},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        int rw, rh, left, top;
        ck_assert_int_eq(gs_preprocess_geometry(g[i].w, g[i].h, g[i].size, GS_CROP_OPENCLIP, &rw,
                                                &rh, &left, &top),
                         GS_OK);
        ck_assert_int_eq(rw, g[i].rw);
        ck_assert_int_eq(rh, g[i].rh);
        ck_assert_int_eq(left, 0);
        ck_assert_int_eq(top, g[i].oc_top);
        // transposed image: the same offsets on the other axis
        ck_assert_int_eq(
            gs_preprocess_geometry(g[i].h, g[i].w, g[i].size, GS_CROP_HF, &rw, &rh, &left, &top),
            GS_OK);
        ck_assert_int_eq(rw, g[i].rh);
        ck_assert_int_eq(rh, g[i].rw);
        ck_assert_int_eq(left, g[i].hf_top);
        ck_assert_int_eq(top, 0);
    }
}
END_TEST

START_TEST(test_preprocess_invalid_arguments)
{
    uint8_t px[4 * 4 * 3] = {0}, out[4 * 4 * 3];
    float f[3 * 4 * 4];
    uint8_t scratch[8192];
    gs_preprocess_cfg_t cfg = gs_preprocess_cfg_openai(4, GS_CROP_OPENCLIP);
    ck_assert_uint_le(gs_preprocess_scratch_nbytes(4, 4, 4), sizeof scratch);
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, f), GS_OK);

    // sizes
    ck_assert_uint_eq(gs_preprocess_scratch_nbytes(0, 4, 4), 0);
    ck_assert_uint_eq(gs_preprocess_scratch_nbytes(4, -1, 4), 0);
    ck_assert_uint_eq(gs_preprocess_scratch_nbytes(4, 4, 0), 0);
    ck_assert_uint_eq(gs_preprocess_scratch_nbytes(GS_PREPROCESS_MAX_DIM + 1, 4, 4), 0);
    ck_assert_uint_eq(gs_preprocess_scratch_nbytes(1, GS_PREPROCESS_MAX_DIM, 4096), 0); // long side
    ck_assert_int_eq(gs_preprocess_image(px, 0, 4, &cfg, scratch, f), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_image(px, 4, INT32_MIN, &cfg, scratch, f), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_crop(px, 4, 4, -3, GS_CROP_HF, scratch, out), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_crop(px, 4, 4, 4, (gs_crop_mode_t)7, scratch, out),
                     GS_EINVAL);
    cfg.size = 0;
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, f), GS_EINVAL);
    cfg = gs_preprocess_cfg_openai(4, (gs_crop_mode_t)-1);
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, f), GS_EINVAL);
    cfg = gs_preprocess_cfg_openai(4, GS_CROP_HF);
    cfg.std[1] = 0.0f;
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, f), GS_EINVAL);
    cfg.std[1] = 1.0f;
    cfg.mean[2] = (float)NAN;
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, f), GS_EINVAL);

    // NULL pointers
    cfg = gs_preprocess_cfg_openai(4, GS_CROP_HF);
    ck_assert_int_eq(gs_preprocess_image(NULL, 4, 4, &cfg, scratch, f), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, NULL, scratch, f), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, NULL, f), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_image(px, 4, 4, &cfg, scratch, NULL), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_crop(px, 4, 4, 4, GS_CROP_HF, scratch, NULL), GS_EINVAL);

    // resize: channels, sizes, pointers
    ck_assert_uint_eq(gs_preprocess_resize_scratch_nbytes(4, 4, 0, 2, 2), 0);
    ck_assert_uint_eq(gs_preprocess_resize_scratch_nbytes(4, 4, 5, 2, 2), 0);
    ck_assert_uint_eq(gs_preprocess_resize_scratch_nbytes(4, 4, 3, 0, 2), 0);
    ck_assert_int_eq(gs_preprocess_resize_bicubic(px, 4, 4, 3, 2, -2, scratch, out), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_bicubic(px, 4, 4, 5, 2, 2, scratch, out), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_bicubic(px, 4, 4, 3, 2, 2, NULL, out), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_resize_bicubic(NULL, 4, 4, 3, 2, 2, scratch, out), GS_EINVAL);
    ck_assert_int_eq(gs_preprocess_geometry(4, 4, 4, (gs_crop_mode_t)2, NULL, NULL, NULL, NULL),
                     GS_EINVAL);
}
END_TEST

// ---- speed --------------------------------------------------------------------------------

// 256x256 -> 224 (the ViT-B/32 input), reported on stderr; the figure quoted in preprocess.h is
// from `CK_RUN_CASE=speed build/tests/test_model_preprocess`. Checks that repeated calls on the
// same scratch agree.
START_TEST(test_preprocess_speed_256_to_224)
{
    const int w = 256, h = 256, size = 224, n_iter = 200;
    uint8_t *in = synth(w, h, 3, 42, 0);
    size_t sn = gs_preprocess_scratch_nbytes(w, h, size);
    void *scratch = scratch_new(sn);
    size_t n = (size_t)3 * size * size;
    float *first = gs_xmalloc(n * sizeof(float)), *out = gs_xmalloc(n * sizeof(float));
    gs_preprocess_cfg_t cfg = gs_preprocess_cfg_openai(size, GS_CROP_OPENCLIP);
    ck_assert_int_eq(gs_preprocess_image(in, w, h, &cfg, scratch, first), GS_OK);
    // CPU time of this process (one thread) as well as wall time: the machine is often shared
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int i = 0; i < n_iter; i++)
        ck_assert_int_eq(gs_preprocess_image(in, w, h, &cfg, scratch, out), GS_OK);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    fprintf(stderr,
            "preprocess 256x256 -> 224: %.0f images/s per core (%.3f ms CPU each), %.0f images/s "
            "wall, scratch %zu bytes\n",
            n_iter / cpu, 1e3 * cpu / n_iter, n_iter / s, sn);
    ck_assert_int_eq(memcmp(first, out, n * sizeof(float)), 0);
    scratch_check_free(scratch, sn);
    gs_free(first);
    gs_free(out);
    gs_free(in);
}
END_TEST

Suite *model_preprocess_suite(void)
{
    Suite *s = suite_create("model_preprocess");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_preprocess_openclip_fixture);
    tcase_add_test(tc, test_preprocess_hfclip_fixture);
    tcase_add_test(tc, test_preprocess_llava_fixture);
    suite_add_tcase(s, tc);

    tc = tcase_create("pillow");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_preprocess_resize_matches_pillow);
    tcase_add_test(tc, test_preprocess_crop_matches_pillow);
    suite_add_tcase(s, tc);

    tc = tcase_create("invariants");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_preprocess_window_equals_full_resize);
    tcase_add_test(tc, test_preprocess_constant_and_identity);
    tcase_add_test(tc, test_preprocess_one_pixel_wide);
    tcase_add_test(tc, test_preprocess_geometry);
    tcase_add_test(tc, test_preprocess_invalid_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("speed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_preprocess_speed_256_to_224);
    suite_add_tcase(s, tc);
    return s;
}
