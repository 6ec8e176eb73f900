// Internals shared by the checkpoint readers of model/: the weight set under construction
// (weights.c), the safetensors and sharded-index reader (safetensors.c), the torch zip reader
// (pt.c) and its two helpers, a zip directory reader (zip.c) and a restricted pickle VM
// (pickle.c). Module-private: nothing outside model/ includes this.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "model/weights.h"

// Hard limits against hostile files. Real checkpoints stay far below them.
#define GS_WEIGHTS_MAX_HEADER_NBYTES (32u << 20) // safetensors JSON header (~1 MB for 10k tensors)
#define GS_WEIGHTS_MAX_INDEX_NBYTES (16u << 20)  // *.index.json
#define GS_WEIGHTS_MAX_SHARDS 10000              // distinct shard files of one index
#define GS_WEIGHTS_MAX_NAME 1024                 // bytes of a tensor name

// ---- the weight set under construction (weights.c) -----------------------------------------

// gs__weights_load: maps `path` (a file, never a directory), detects its type from its bytes
// and adds its tensors: a torch zip, a safetensors file, or (when allow_index) a sharded index
// whose shards are loaded in turn. Errors are logged here or below.
gs_err gs__weights_load(gs_weights_t *self, const char *path, int allow_index);
// gs__weights_add: adds a copy of *t (the name is copied; t->file must be a path returned by
// the mapping, i.e. stable until close). Data that is not aligned to its element size is
// copied into an owned aligned buffer so that readers may cast it. GS_ENOMEM.
gs_err gs__weights_add(gs_weights_t *self, const gs_tensor_t *t);
// gs__weights_add_meta: records a metadata pair (copied); the first value of a key wins.
void gs__weights_add_meta(gs_weights_t *self, const char *key, const char *value);
// gs__weights_sort: sorts by name and refuses duplicate names (logged, GS_EFORMAT). Cheap to
// call again after more tensors were added.
gs_err gs__weights_sort(gs_weights_t *self);

// gs__dtype_parse: "F32" -> GS_DTYPE_F32 (safetensors names); 0 on success, -1 if unknown.
int gs__dtype_parse(const char *s, gs_dtype_t *out);
// gs__shape_str: "[2, 3]" into buf (truncated to fit); returns buf.
const char *gs__shape_str(const int64_t *shape, int n_dims, char *buf, size_t buf_nbytes);

// ---- readers (the map stays owned by the weight set) ---------------------------------------

// gs__safetensors_parse: validates the safetensors file `file` mapped at buf[0, n) and adds its
// tensors and metadata. GS_EFORMAT / GS_EUNSUPPORTED / GS_ENOMEM, logged naming the file and
// the tensor.
gs_err gs__safetensors_parse(gs_weights_t *self, const char *file, const uint8_t *buf, size_t n);
// gs__safetensors_parse_index: reads a "*.index.json" weight map mapped at buf[0, n), loads
// every shard it names (relative to the index's folder) and checks that each listed tensor
// came from the shard the index names.
gs_err gs__safetensors_parse_index(gs_weights_t *self, const char *file, const uint8_t *buf,
                                   size_t n);
// gs__pt_parse: reads a torch.save zip (state dict) mapped at buf[0, n).
gs_err gs__pt_parse(gs_weights_t *self, const char *file, const uint8_t *buf, size_t n);

// ---- zip directory (zip.c) -----------------------------------------------------------------

typedef struct gs__zip gs__zip_t;

// gs__zip_open: reads the central directory (zip64 included) of the archive at buf[0, n); the
// buffer must outlive the handle. `file` names the archive in messages. GS_EFORMAT (logged),
// GS_ENOMEM.
gs_err gs__zip_open(const uint8_t *buf, size_t n, const char *file, gs__zip_t **out);
void gs__zip_close(gs__zip_t **p);
// gs__zip_count / gs__zip_name: entries in central-directory order; the name is not
// NUL-terminated (its length is stored in *out_len).
size_t gs__zip_count(const gs__zip_t *self);
const char *gs__zip_name(const gs__zip_t *self, size_t i, size_t *out_len);
// gs__zip_find: the bytes of the entry `name`, which must be stored (not compressed).
// GS_ENOTFOUND (not logged), GS_EUNSUPPORTED (compressed or encrypted, logged naming the
// entry), GS_EFORMAT (local header or data outside the file, logged).
gs_err gs__zip_find(const gs__zip_t *self, const char *name, const uint8_t **out_data,
                    uint64_t *out_nbytes);

// ---- restricted pickle VM (pickle.c) -------------------------------------------------------

typedef enum {
    GS_PK_NONE,
    GS_PK_BOOL,   // u.i (0 or 1)
    GS_PK_INT,    // u.i
    GS_PK_FLOAT,  // u.f
    GS_PK_STR,    // u.str (NUL-terminated copy; may hold NULs, see len)
    GS_PK_BYTES,  // u.str
    GS_PK_TUPLE,  // u.seq
    GS_PK_LIST,   // u.seq (sets and frozensets too)
    GS_PK_DICT,   // u.seq, items = k0, v0, k1, v1, ...; n counts both
    GS_PK_GLOBAL, // u.global: an allowed class or function
    GS_PK_OBJ,    // u.obj: an object built by a hook (torch storage, tensor)
} gs__pk_kind_t;

typedef struct gs__pk gs__pk_t;
struct gs__pk {
    gs__pk_kind_t kind;
    union {
        int64_t i;
        double f;
        struct {
            const char *s;
            size_t len;
        } str;
        struct {
            gs__pk_t **items;
            size_t n, cap;
        } seq;
        struct {
            int id; // from find_class
            const char *module, *name;
        } global;
        struct {
            int type; // hook-defined
            void *ptr;
        } obj;
    } u;
};

typedef struct gs__pk_vm gs__pk_vm_t;

// Hooks give the VM its meaning; they log their own errors and return the code, which the VM
// passes up unchanged. Nothing a pickle names is ever looked up or called outside them.
typedef struct {
    // find_class: an id >= 0 for an allowed "module.name", or -1 to refuse the pickle.
    int (*find_class)(void *ud, const char *module, const char *name);
    // persistent_load: the object for a BINPERSID id.
    gs_err (*persistent_load)(void *ud, gs__pk_vm_t *vm, const gs__pk_t *pid, gs__pk_t **out);
    // reduce: the result of calling the allowed global `id` with the tuple `args` (REDUCE and
    // NEWOBJ).
    gs_err (*reduce)(void *ud, gs__pk_vm_t *vm, int id, const gs__pk_t *args, gs__pk_t **out);
    void *ud;
    const char *what; // names the pickle in messages: "\"x.pt\" entry \"archive/data.pkl\""
} gs__pk_hooks_t;

// gs__pk_run: runs the pickle buf[0, n) and returns the object left by STOP. Every object lives
// in the VM (freed by gs__pk_vm_destroy). Memory, stack, marks and memo are bounded by the
// input size. GS_EFORMAT (malformed, logged), GS_EUNSUPPORTED (an opcode or a global we do not
// allow, logged with its name), GS_ETOOBIG (bounds, logged), GS_ENOMEM, or a hook's code.
gs_err gs__pk_run(const uint8_t *buf, size_t n, const gs__pk_hooks_t *hooks, gs__pk_vm_t **out_vm,
                  gs__pk_t **out_root);
void gs__pk_vm_destroy(gs__pk_vm_t **p);
// gs__pk_new: a new object of `kind` owned by the VM (zeroed); NULL past the memory bound.
gs__pk_t *gs__pk_new(gs__pk_vm_t *vm, gs__pk_kind_t kind);
// gs__pk_alloc: n bytes (8-aligned, zeroed) owned by the VM; NULL past the memory bound.
void *gs__pk_alloc(gs__pk_vm_t *vm, size_t n);
// gs__pk_append: appends to a tuple/list/dict sequence; GS_ETOOBIG past the memory bound.
gs_err gs__pk_append(gs__pk_vm_t *vm, gs__pk_t *seq, gs__pk_t *item);
// gs__pk_dict_get: the value of the string key `key` in a dict, or NULL.
const gs__pk_t *gs__pk_dict_get(const gs__pk_t *dict, const char *key);
// gs__pk_kind_name: "dict", "tuple", ... for messages.
const char *gs__pk_kind_name(gs__pk_kind_t k);
