// Named tensors of a checkpoint, read without copying where possible: safetensors files are
// mmap'd read-only (F32 used in place; F16/BF16 kept as they are and converted by the ops that
// read them), torch .pt zips are mmap'd and their storages referenced in place. A weight set may
// span several files (sharded checkpoints). Owned by the model handle that opened it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum {
    GS_DTYPE_F32 = 0,
    GS_DTYPE_F16 = 1,
    GS_DTYPE_BF16 = 2,
    GS_DTYPE_F64 = 3,
    GS_DTYPE_I64 = 4,
    GS_DTYPE_I32 = 5,
    GS_DTYPE_U8 = 6,
    GS_DTYPE_I8 = 7,
    GS_DTYPE_BOOL = 8,
} gs_dtype_t;

#define GS_TENSOR_MAX_DIMS 8

// A read-only view of one tensor. `data` points into the mapped file (little-endian,
// row-major, contiguous); valid until the weight set is closed.
typedef struct {
    const char *name;               // "visual.conv1.weight"
    gs_dtype_t dtype;
    int n_dims;                     // 0 for a scalar
    int64_t shape[GS_TENSOR_MAX_DIMS];
    int64_t n_elems;                // product of shape (1 for a scalar)
    const void *data;
    size_t nbytes;
    const char *file;               // the file it came from (for messages)
} gs_tensor_t;

typedef struct gs_weights gs_weights_t;

// gs_dtype_name: "F32", "BF16", ...; gs_dtype_size: bytes per element.
const char *gs_dtype_name(gs_dtype_t t);
size_t gs_dtype_size(gs_dtype_t t);

// gs_weights_open: opens a .safetensors file, a torch .pt/.bin zip (state dict, possibly under
// "state_dict" and with "module." prefixes, which are stripped), or a sharded set through its
// "*.safetensors.index.json". The file type is detected from its bytes, not its name.
// Every header entry is validated (dtype, shape, offsets within the file, no overlap); a
// truncated or inconsistent file is refused with the file and the tensor named in the log.
// Returns GS_EIO (cannot open/map), GS_EFORMAT (malformed), GS_EUNSUPPORTED (a dtype or pickle
// construct we do not read), GS_ENOMEM. The caller owns *out (gs_weights_close).
gs_err gs_weights_open(const char *path, gs_weights_t **out);
// gs_weights_close: unmaps and frees; NULLs *p; accepts NULL.
void gs_weights_close(gs_weights_t **p);

// gs_weights_get: the tensor called `name`, or NULL (not found is a result, not an error).
// Borrowed, valid until close. Thread-safe (read-only).
const gs_tensor_t *gs_weights_get(const gs_weights_t *self, const char *name);
// gs_weights_count / gs_weights_at: iterate in a stable (sorted by name) order.
size_t gs_weights_count(const gs_weights_t *self);
const gs_tensor_t *gs_weights_at(const gs_weights_t *self, size_t i);
// gs_weights_metadata: the value of a "__metadata__" key of a safetensors header, or NULL.
const char *gs_weights_metadata(const gs_weights_t *self, const char *key);

// gs_weights_expect: fetches `name` and checks its rank and shape (-1 in `shape` = any size);
// dtype must be F32, F16 or BF16 unless `dtypes_mask` (bit per gs_dtype_t) says otherwise
// (0 = float types). Logs "tensor \"name\" in \"file\": expected shape [a, b], found [c, d]"
// or "tensor \"name\" is missing from \"path\"" and returns GS_EFORMAT / GS_ENOTFOUND.
gs_err gs_weights_expect(const gs_weights_t *self, const char *name, int n_dims,
                         const int64_t *shape, unsigned dtypes_mask, const gs_tensor_t **out);

// gs_tensor_to_f32: converts n elements starting at element `first` to float32 in `out`
// (F32 copied, F16/BF16/F64 converted). GS_EINVAL for non-float dtypes or out-of-range.
gs_err gs_tensor_to_f32(const gs_tensor_t *t, int64_t first, int64_t n, float *out);
