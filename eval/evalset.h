// Evaluation sets in the Karpathy-style JSON that UCM-captions, Sydney-captions, RSICD and COCO
// ship (dataset.json): {"images": [{"filename", "split", "filepath"?, "sentences": [{"raw",
// "tokens"}, ...]}, ...]}. Reads the images of one split (or all) with their reference
// captions. Not here: reading the images themselves (jobs/raster.h) or scoring (eval/rank.h,
// eval/capscore.h).
#pragma once

#include "common/alloc.h"
#include "common/err.h"

// GS_EVALSET_MAX_NBYTES: the largest dataset.json accepted (1 GiB; RSICD's is 20 MB).
#define GS_EVALSET_MAX_NBYTES ((size_t)1 << 30)

typedef struct {
    const char *path;  // "1.jpg", or "<filepath>/<filename>" when the entry has a filepath
    const char *split; // "val"; "" when the entry has none
    int first_text;    // its captions are texts[first_text, first_text + n_texts)
    int n_texts;
} gs_evalset_image_t;

// A read-only set; every string and array is owned by it (freed by gs_evalset_destroy).
typedef struct {
    int n_images;
    gs_evalset_image_t *images; // (n_images) in file order
    int n_texts;
    const char **texts; // (n_texts) captions: "raw", or the "tokens" joined with spaces
    int *text_image;    // (n_texts) the image each caption belongs to
    gs_arena_t *arena_; // private: the storage
} gs_evalset_t;

// gs_evalset_read: reads the images of `split` ("train", "val", "test", ...; NULL: all images)
// from a Karpathy-style JSON file. An image keeps its sentences in file order; a sentence
// without "raw" uses its "tokens" joined with spaces. Images without sentences are kept (with
// n_texts 0). The caller owns *out (gs_evalset_destroy). Returns GS_EIO (cannot read),
// GS_ETOOBIG (over GS_EVALSET_MAX_NBYTES), GS_EFORMAT (not JSON, or not the layout above:
// logged with the path and, for JSON errors, the line and column; for layout errors the image
// index), GS_ENOMEM, GS_EINVAL (NULL arguments). A split that matches no image is not an
// error (n_images 0). Thread-safe.
gs_err gs_evalset_read(const char *path, const char *split, gs_evalset_t **out);

// gs_evalset_destroy: frees the set; NULLs *p; accepts NULL.
void gs_evalset_destroy(gs_evalset_t **p);
