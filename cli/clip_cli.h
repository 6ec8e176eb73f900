// The helpers the CLIP commands share (embed, classify, tokenize, inspect-model; defined in
// cli/cmd_embed.c): the model options every one of them takes, opening the model with them,
// reading one image for it, and printing a float vector as JSON. Not a library: used by
// program files of cli/ only.
#pragma once

#include "common/buf.h"
#include "common/err.h"
#include "model/clip.h"

// The model options every CLIP command takes (borrowed strings: argv).
typedef struct {
    const char *model, *arch, *config, *vocab; // --model, --arch, --config, --vocab
    int threads;                               // --threads; <= 0: every core, at most 16
    gs_clip_precision_t precision;             // --precision f32|bf16
} gs_cli_clip_args_t;

// gs_cli_clip_option: handles one model option of getopt_long (`c`: m --model, A --arch,
// C --config, V --vocab, T --threads, P --precision) into *a. Returns 0 when handled, 2 on a
// usage error (printed to stderr), -1 when `c` is not a model option.
int gs_cli_clip_option(const char *cmd, int c, const char *arg, gs_cli_clip_args_t *a);

// gs_cli_clip_open: opens a->model with the options and room for max_batch items per forward
// pass. On failure the model has logged why and one line "geoscribe <cmd>: could not open
// model ..." goes to stderr; returns gs_clip_open's error. The caller owns *out
// (gs_clip_close).
gs_err gs_cli_clip_open(const char *cmd, const gs_cli_clip_args_t *a, int max_batch,
                        gs_clip_t **out);

// gs_cli_clip_read_image: decodes `path` (PNG, JPEG, TIFF, anything GDAL reads) and
// preprocesses it for the model into out_chw (3 x S x S floats, S = gs_clip_image_size).
// Returns gs_raster_read_rgb8's errors (GS_EIO, GS_EUNSUPPORTED, GS_ETOOBIG: logged there),
// gs_preprocess_image's, or GS_ENOMEM; prints nothing itself.
gs_err gs_cli_clip_read_image(gs_clip_t *m, const char *path, float *out_chw);

// gs_cli_json_floats: appends "[v0,v1,...]" to b with float round-trip precision (%.9g).
void gs_cli_json_floats(gs_buf_t *b, const float *v, int n);
