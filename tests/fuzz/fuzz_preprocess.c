// libFuzzer target for model/preprocess: arbitrary image sizes, channel counts, output sizes,
// crop modes, normalisation constants and pixels. Scratch buffers are allocated at exactly the
// announced size, so ASan reports any write past it. Beyond "no crash", it checks that the
// windowed crop equals the full resize then cropped, and that the normalised floats are the
// documented function of the cropped pixels.
//
// Input: 8 header bytes, then pixels (repeated cyclically; zeros when absent):
//   [0] w  [1] h  [2] size  [3] flags: bit0 crop mode, bits1-2 channels-1, bit3 long side
//   (w or h gets up to 1500), bit4 random mean/std from [8..31]  [4] out_w  [5] out_h
//   [6] long side high byte  [7] spare
// Seeds (tests/fuzz/corpus/preprocess/) are such headers with a few pixels, written by printf.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "model/preprocess.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_preprocess: check failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

// Pixels of a w x h x ch image from the input tail, repeated.
static uint8_t *make_image(const uint8_t *px, size_t n_px, int w, int h, int ch)
{
    size_t n = (size_t)w * h * ch;
    uint8_t *img = gs_trymalloc(n);
    CHECK(img != NULL);
    for (size_t i = 0; i < n; i++)
        img[i] = n_px ? px[i % n_px] : 0;
    return img;
}

static void fuzz_resize(const uint8_t *img, int w, int h, int ch, int ow, int oh)
{
    size_t sn = gs_preprocess_resize_scratch_nbytes(w, h, ch, ow, oh);
    CHECK(sn > 0);
    void *scratch = gs_trymalloc(sn);
    uint8_t *out = gs_trymalloc((size_t)ow * oh * ch);
    CHECK(scratch && out);
    CHECK(gs_preprocess_resize_bicubic(img, w, h, ch, ow, oh, scratch, out) == GS_OK);
    if (ow == w && oh == h)
        CHECK(memcmp(img, out, (size_t)w * h * ch) == 0);
    gs_free(out);
    gs_free(scratch);
}

// The crop + normalisation, checked against a full resize and the documented arithmetic.
static void fuzz_preprocess(const uint8_t *img, int w, int h, int size,
                            const gs_preprocess_cfg_t *cfg)
{
    int rw, rh, left, top;
    if (gs_preprocess_geometry(w, h, size, cfg->crop, &rw, &rh, &left, &top) != GS_OK)
        return;
    CHECK((rw < rh ? rw : rh) == size && left >= 0 && top >= 0);
    CHECK(left + size <= rw && top + size <= rh);
    size_t sn = gs_preprocess_scratch_nbytes(w, h, size);
    CHECK(sn > 0);
    size_t n = (size_t)size * size;
    void *scratch = gs_trymalloc(sn);
    uint8_t *crop = gs_trymalloc(n * 3);
    float *out = gs_trymalloc(n * 3 * sizeof(float));
    CHECK(scratch && crop && out);
    CHECK(gs_preprocess_resize_crop(img, w, h, size, cfg->crop, scratch, crop) == GS_OK);

    if ((int64_t)rw * rh <= (1 << 16)) { // keeps an input under a few ms with ASan
        size_t sf = gs_preprocess_resize_scratch_nbytes(w, h, 3, rw, rh);
        void *scratch_full = gs_trymalloc(sf);
        uint8_t *full = gs_trymalloc((size_t)rw * rh * 3);
        CHECK(scratch_full && full);
        CHECK(gs_preprocess_resize_bicubic(img, w, h, 3, rw, rh, scratch_full, full) == GS_OK);
        for (int y = 0; y < size; y++)
            CHECK(memcmp(crop + (size_t)y * size * 3, full + ((size_t)(top + y) * rw + left) * 3,
                         (size_t)size * 3) == 0);
        gs_free(full);
        gs_free(scratch_full);
    }

    gs_err e = gs_preprocess_image(img, w, h, cfg, scratch, out);
    int cfg_ok = 1;
    for (int c = 0; c < 3; c++)
        cfg_ok &= cfg->std[c] != 0.0f && isfinite(cfg->std[c]) && isfinite(cfg->mean[c]);
    CHECK(e == (cfg_ok ? GS_OK : GS_EINVAL));
    if (e == GS_OK) {
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) {
                uint8_t v = crop[3 * i + c];
                float x = cfg->crop == GS_CROP_HF ? (float)(v * (1.0 / 255.0)) : (float)v / 255.0f;
                float want = (x - cfg->mean[c]) / cfg->std[c];
                float got = out[(size_t)c * n + i];
                CHECK(memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want)));
            }
        }
    }
    gs_free(out);
    gs_free(crop);
    gs_free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[32] = {0};
    memcpy(hdr, data, size < sizeof hdr ? size : sizeof hdr);
    const uint8_t *px = size > 8 ? data + 8 : NULL;
    size_t n_px = size > 8 ? size - 8 : 0;

    int w = 1 + hdr[0] % 96, h = 1 + hdr[1] % 96;
    int out_size = 1 + hdr[2] % 64;
    int flags = hdr[3];
    int ch = 1 + ((flags >> 1) & 3);
    int ow = 1 + hdr[4] % 128, oh = 1 + hdr[5] % 128;
    if (flags & 8) { // one long side: 1xN-like images, strong reductions and enlargements
        int lng = 1 + ((hdr[6] << 8 | hdr[0]) % 1500);
        if (hdr[1] & 1)
            w = lng;
        else
            h = lng;
        if (w * h > 1500 * 4)
            return 0;
    }

    uint8_t *img = make_image(px, n_px, w, h, ch);
    fuzz_resize(img, w, h, ch, ow, oh);
    gs_free(img);

    gs_preprocess_cfg_t cfg =
        gs_preprocess_cfg_openai(out_size, (flags & 1) ? GS_CROP_HF : GS_CROP_OPENCLIP);
    if (flags & 16) { // arbitrary mean/std bits, including 0, inf and NaN
        memcpy(cfg.mean, hdr + 8, sizeof cfg.mean);
        memcpy(cfg.std, hdr + 20, sizeof cfg.std);
    }
    img = make_image(px, n_px, w, h, 3);
    fuzz_preprocess(img, w, h, out_size, &cfg);
    gs_free(img);
    return 0;
}
