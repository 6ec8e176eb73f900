// Named tensors of a checkpoint, read without copying where possible: safetensors files are
// mmap'd read-only (F32 used in place; F16/BF16 kept as they are and converted by the ops that
// read them), torch .pt zips are mmap'd and their storages referenced in place. A weight set may
// span several files (sharded checkpoints). Owned by the model handle that opened it.
// Formats, checks and limits: docs/MODELS.md ("Weight formats"). Little-endian hosts only.
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
// row-major, contiguous), or into an owned aligned copy when the file placed the tensor at an
// offset that is not a multiple of its element size: `data` is always aligned to the element
// size, so it may be cast (const float *). Valid until the weight set is closed.
typedef struct {
    const char *name; // "visual.conv1.weight"
    gs_dtype_t dtype;
    int n_dims; // 0 for a scalar
    int64_t shape[GS_TENSOR_MAX_DIMS];
    int64_t n_elems; // product of shape (1 for a scalar)
    const void *data;
    size_t nbytes;
    const char *file; // the file it came from (for messages)
} gs_tensor_t;

typedef struct gs_weights gs_weights_t;

// gs_dtype_name: "F32", "BF16", ... ("?" for a value outside the enum); gs_dtype_size: bytes
// per element (0 outside the enum). Static strings, thread-safe.
const char *gs_dtype_name(gs_dtype_t t);
size_t gs_dtype_size(gs_dtype_t t);

// gs_weights_open: opens a .safetensors file, a torch .pt/.bin zip (state dict, possibly under
// "state_dict" and with "module." prefixes, which are stripped), or a sharded set through its
// "*.index.json" ({"weight_map": {name: shard file}}; shards may be safetensors or .bin). The
// file type is detected from its bytes, not its name. `path` may also be a folder holding
// model.safetensors.index.json, model.safetensors, open_clip_model.safetensors,
// pytorch_model.bin.index.json, pytorch_model.bin or open_clip_pytorch_model.bin (the first
// found, in that order).
// Every header entry is validated (dtype, shape, offsets within the file, no overlap, unique
// names across shards); a truncated or inconsistent file is refused with the file and the
// tensor named in one log line. Pickles run in a restricted VM that only builds tensors,
// storages and containers: no global outside that allow-list is looked up or called.
// Returns GS_EIO (cannot open/map), GS_EFORMAT (malformed), GS_EUNSUPPORTED (a dtype, a rank
// above GS_TENSOR_MAX_DIMS, a compressed zip entry, a non-contiguous tensor or a pickle
// construct we do not read), GS_ETOOBIG (a pickle past its stack/memo/memory bounds),
// GS_ENOMEM. The caller owns *out (gs_weights_close). Thread-safe (no shared state).
gs_err gs_weights_open(const char *path, gs_weights_t **out);
// gs_weights_close: unmaps and frees; NULLs *p; accepts NULL.
void gs_weights_close(gs_weights_t **p);

// gs_weights_get: the tensor called `name`, or NULL (not found is a result, not an error).
// Borrowed, valid until close. Thread-safe (read-only).
const gs_tensor_t *gs_weights_get(const gs_weights_t *self, const char *name);
// gs_weights_count / gs_weights_at: iterate in a stable (sorted by name, strcmp) order;
// gs_weights_at returns NULL past the end. Thread-safe.
size_t gs_weights_count(const gs_weights_t *self);
const gs_tensor_t *gs_weights_at(const gs_weights_t *self, size_t i);
// gs_weights_metadata: the value of a "__metadata__" key of a safetensors header (the first
// shard that has the key wins), or NULL. Borrowed, valid until close. Thread-safe.
const char *gs_weights_metadata(const gs_weights_t *self, const char *key);

// gs_weights_expect: fetches `name` and checks its rank and shape (-1 in `shape` = any size;
// shape NULL = any sizes of rank n_dims);
// dtype must be F32, F16 or BF16 unless `dtypes_mask` (bit per gs_dtype_t) says otherwise
// (0 = float types). Logs "tensor \"name\" in \"file\": expected shape [a, b], found [c, d]"
// or "tensor \"name\" is missing from \"path\"" and returns GS_EFORMAT / GS_ENOTFOUND.
gs_err gs_weights_expect(const gs_weights_t *self, const char *name, int n_dims,
                         const int64_t *shape, unsigned dtypes_mask, const gs_tensor_t **out);

// gs_tensor_to_f32: converts n elements starting at element `first` to float32 in `out`
// (F32 copied, F16/BF16/F64 converted). Exact for F16 and BF16 (subnormals, infinities and
// NaNs included); F64 rounds to nearest. GS_EINVAL for non-float dtypes or out-of-range
// (first < 0, n < 0, first + n > n_elems); nothing is logged. Thread-safe.
gs_err gs_tensor_to_f32(const gs_tensor_t *t, int64_t first, int64_t n, float *out);
