// Image preprocessing for the CLIP encoders and the LLaVA captioner, byte-exact with the reference
// pipelines: Pillow's BICUBIC resize (Image.resize, Pillow 9.4), a center crop, then rescale and
// mean/std normalisation to float32 CHW. Two families differ only in details:
//   GS_CROP_OPENCLIP  open_clip / torchvision: top = int(round((h-size)/2.0)) (round-half-even),
//                     ToTensor = float32(uint8) / 255.0f;
//   GS_CROP_HF        transformers CLIPImageProcessor (also LLaVA): top = (h-size)//2 (floor),
//                     rescale = float32(uint8 * (1/255) in float64).
// Both normalise in float32: (x - mean[c]) / std[c].
// Pure functions over caller memory: nothing is allocated, nothing is logged (callers know which
// image failed and log it), and all functions are thread-safe given distinct scratch buffers.
// Not here: decoding files, colour conversion (input is already RGB), padding to a square.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// The largest input or output side accepted (pixels). Larger values give GS_EINVAL. The
// resized long side of gs_preprocess_image (size*long/short) may exceed it: that image is never
// materialised, only its size x size window (see below).
#define GS_PREPROCESS_MAX_DIM (1 << 20)

typedef enum { GS_CROP_OPENCLIP = 0, GS_CROP_HF = 1 } gs_crop_mode_t;

// A transparent value struct; see gs_preprocess_cfg_openclip for the usual values.
typedef struct {
    int size;            // output side, e.g. 224 (ViT-B/32), 336 (LLaVA-1.5), 32 (tiny fixtures)
    gs_crop_mode_t crop; // crop offset and rescale rule (the processor family)
    float mean[3];       // per RGB channel, e.g. 0.48145466, 0.4578275, 0.40821073
    float std[3];        // per RGB channel, e.g. 0.26862954, 0.26130258, 0.27577711
} gs_preprocess_cfg_t;

// gs_preprocess_cfg_openai: the OpenAI CLIP mean/std (used by open_clip, RemoteCLIP, GeoRSCLIP and
// LLaVA's CLIPImageProcessor) with the given size and crop mode.
gs_preprocess_cfg_t gs_preprocess_cfg_openai(int size, gs_crop_mode_t crop);

// gs_preprocess_scratch_nbytes: the scratch size that gs_preprocess_image and
// gs_preprocess_resize_crop need for a w x h image and a size x size output (either crop mode).
// Small: it grows with size and the rows/columns the window reads, not with the resized image
// (256x256 -> 224: 341440 bytes). Returns 0 when the arguments are invalid (the functions then
// return GS_EINVAL).
size_t gs_preprocess_scratch_nbytes(int w, int h, int size);

// gs_preprocess_image: resizes the short side of `rgb` to cfg->size (long side
// int(size*long/short), truncated), crops the centre size x size, rescales and normalises.
// rgb: HWC uint8, w x h x 3, row-major, no padding between rows. out_chw: 3*size*size floats
// (channel-major). scratch: at least gs_preprocess_scratch_nbytes(w, h, cfg->size) bytes, any
// alignment, caller-owned and only used during the call. Only the cropped window of the resized
// image is computed; its pixels equal Pillow's full resize followed by the crop.
// Returns GS_EINVAL for NULL pointers, sizes outside 1..GS_PREPROCESS_MAX_DIM, an unknown crop
// mode or a zero std. Thread-safe with distinct scratch.
// Speed: 256x256 -> 224 takes 0.89-0.94 ms of CPU, about 1100 images/s per core (gcc 12 -O2,
// RelWithDebInfo, on the shared 2-core development machine under load; measured with
// `CK_RUN_CASE=speed build/tests/test_model_preprocess`, which prints it).
gs_err gs_preprocess_image(const uint8_t *rgb, int w, int h, const gs_preprocess_cfg_t *cfg,
                           void *scratch, float *out_chw);

// gs_preprocess_resize_crop: the resized + cropped uint8 image only (for tests and thumbnails):
// out_hwc is size*size*3 bytes, HWC. Scratch and errors as gs_preprocess_image.
gs_err gs_preprocess_resize_crop(const uint8_t *rgb, int w, int h, int size, gs_crop_mode_t crop,
                                 void *scratch, uint8_t *out_hwc);

// gs_preprocess_geometry: the resized size (out_rw x out_rh) and the crop offsets that
// gs_preprocess_image uses for a w x h image. Any out pointer may be NULL. GS_EINVAL for bad
// sizes or a resized side beyond INT32_MAX/4.
gs_err gs_preprocess_geometry(int w, int h, int size, gs_crop_mode_t crop, int *out_rw, int *out_rh,
                              int *out_left, int *out_top);

// gs_preprocess_resize_scratch_nbytes: the scratch gs_preprocess_resize_bicubic needs; 0 when the
// arguments are invalid.
size_t gs_preprocess_resize_scratch_nbytes(int w, int h, int channels, int out_w, int out_h);

// gs_preprocess_resize_bicubic: Pillow-exact Image.resize((out_w, out_h), BICUBIC) of an HWC
// uint8 image with 1..4 independent channels: separable, horizontal pass first, a pass is skipped
// when its size does not change (a plain copy if neither does), antialiased when reducing,
// 22-bit fixed-point weights, uint8 rounding after each pass. out: out_w*out_h*channels bytes;
// must not overlap `in`. scratch: gs_preprocess_resize_scratch_nbytes(...) bytes.
// Returns GS_EINVAL for NULL pointers or sizes outside 1..GS_PREPROCESS_MAX_DIM. Thread-safe
// with distinct scratch.
gs_err gs_preprocess_resize_bicubic(const uint8_t *in, int w, int h, int channels, int out_w,
                                    int out_h, void *scratch, uint8_t *out);
