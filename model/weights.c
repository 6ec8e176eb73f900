// The weight set: opens a checkpoint (file, folder or sharded index), keeps the read-only
// mappings alive, and serves tensors by name in sorted order. Format parsing lives in
// safetensors.c and pt.c; this file owns the mappings, the tensor table and the dtype helpers.
#define GS_LOG_MODULE "model"
#include "model/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/weights_int.h"

// Tensors are served in place, in the files' little-endian byte order.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model/weights serves little-endian checkpoint data in place: little-endian hosts only"
#endif

typedef struct {
    char *path;
    void *map; // NULL when nothing was mapped
    size_t map_nbytes;
} wfile_t;

struct gs_weights {
    char *path;     // what the caller opened
    wfile_t *files; // every mapped file (shards included)
    size_t n_files, cap_files;
    gs_tensor_t *tensors; // sorted by name after gs__weights_sort
    size_t n_tensors, cap_tensors;
    char **names; // owned strings: tensor names and metadata (freed at close)
    size_t n_names, cap_names;
    void **copies; // aligned copies of misaligned tensors
    size_t n_copies, cap_copies;
    char **meta; // key0, value0, key1, value1, ...
    size_t n_meta, cap_meta;
};

// ---- dtypes -------------------------------------------------------------------------------

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [GS_DTYPE_F32] = {"F32", 4}, [GS_DTYPE_F16] = {"F16", 2}, [GS_DTYPE_BF16] = {"BF16", 2},
    [GS_DTYPE_F64] = {"F64", 8}, [GS_DTYPE_I64] = {"I64", 8}, [GS_DTYPE_I32] = {"I32", 4},
    [GS_DTYPE_U8] = {"U8", 1},   [GS_DTYPE_I8] = {"I8", 1},   [GS_DTYPE_BOOL] = {"BOOL", 1},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *gs_dtype_name(gs_dtype_t t)
{
    return (unsigned)t < N_DTYPES ? dtypes[t].name : "?";
}

size_t gs_dtype_size(gs_dtype_t t)
{
    return (unsigned)t < N_DTYPES ? dtypes[t].size : 0;
}

int gs__dtype_parse(const char *s, gs_dtype_t *out)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (gs_dtype_t)i;
            return 0;
        }
    }
    return -1;
}

const char *gs__shape_str(const int64_t *shape, int n_dims, char *buf, size_t buf_nbytes)
{
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, buf_nbytes, "[");
    for (int d = 0; d < n_dims && len < buf_nbytes; d++)
        len += (size_t)snprintf(buf + len, buf_nbytes - len, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (len < buf_nbytes)
        snprintf(buf + len, buf_nbytes - len, "]");
    return buf;
}

// ---- growable owned arrays ----------------------------------------------------------------

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = gs_tryrealloc(*arr, ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

static char *keep_str(gs_weights_t *self, const char *s)
{
    if (grow((void **)&self->names, &self->cap_names, self->n_names, sizeof(char *)) != 0)
        return NULL;
    char *copy = gs_trymalloc(strlen(s) + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, strlen(s) + 1);
    self->names[self->n_names++] = copy;
    return copy;
}

gs_err gs__weights_add(gs_weights_t *self, const gs_tensor_t *t)
{
    if (grow((void **)&self->tensors, &self->cap_tensors, self->n_tensors, sizeof *t) != 0)
        return GS_ENOMEM;
    gs_tensor_t c = *t;
    c.name = keep_str(self, t->name);
    if (!c.name)
        return GS_ENOMEM;
    size_t es = gs_dtype_size(t->dtype);
    if (t->nbytes > 0 && ((uintptr_t)t->data % es) != 0) {
        // safetensors offsets need not be multiples of the element size; readers cast `data`
        if (grow((void **)&self->copies, &self->cap_copies, self->n_copies, sizeof(void *)) != 0)
            return GS_ENOMEM;
        void *p = gs_tryalloc_aligned(64, t->nbytes);
        if (!p)
            return GS_ENOMEM;
        memcpy(p, t->data, t->nbytes);
        self->copies[self->n_copies++] = p;
        c.data = p;
    }
    self->tensors[self->n_tensors++] = c;
    return GS_OK;
}

void gs__weights_add_meta(gs_weights_t *self, const char *key, const char *value)
{
    if (gs_weights_metadata(self, key))
        return;
    if (grow((void **)&self->meta, &self->cap_meta, self->n_meta + 1, sizeof(char *)) != 0)
        return; // metadata is informative: dropping it under memory pressure is harmless
    char *k = keep_str(self, key), *v = keep_str(self, value);
    if (!k || !v)
        return;
    self->meta[self->n_meta++] = k;
    self->meta[self->n_meta++] = v;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const gs_tensor_t *)a)->name, ((const gs_tensor_t *)b)->name);
}

gs_err gs__weights_sort(gs_weights_t *self)
{
    if (self->n_tensors > 1)
        qsort(self->tensors, self->n_tensors, sizeof *self->tensors, cmp_tensor);
    for (size_t i = 1; i < self->n_tensors; i++) {
        const gs_tensor_t *a = &self->tensors[i - 1], *b = &self->tensors[i];
        if (strcmp(a->name, b->name) == 0) {
            GS_LOG_ERROR("tensor \"%.200s\" appears twice, in \"%s\" and in \"%s\"", a->name,
                         a->file, b->file);
            return GS_EFORMAT;
        }
    }
    return GS_OK;
}

// ---- open / close -------------------------------------------------------------------------

// map_file: maps path read-only and records it; *out_file is the stable copy of the path.
static gs_err map_file(gs_weights_t *self, const char *path, const uint8_t **out_buf, size_t *out_n,
                       const char **out_file)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); // a FIFO must not block us
    if (fd < 0) {
        GS_LOG_ERROR("could not open weights \"%s\": %s", path, strerror(errno));
        return GS_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        GS_LOG_ERROR("could not read weights \"%s\": not a regular file", path);
        close(fd);
        return GS_EIO;
    }
    if (grow((void **)&self->files, &self->cap_files, self->n_files, sizeof(wfile_t)) != 0) {
        close(fd);
        return GS_ENOMEM;
    }
    wfile_t f = {.path = gs_xstrdup(path), .map = NULL, .map_nbytes = (size_t)st.st_size};
    if (f.map_nbytes > 0) {
        f.map = mmap(NULL, f.map_nbytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f.map == MAP_FAILED) {
            GS_LOG_ERROR("could not map weights \"%s\": %s", path, strerror(errno));
            close(fd);
            gs_free(f.path);
            return GS_EIO;
        }
    }
    close(fd);
    self->files[self->n_files++] = f;
    *out_buf = f.map;
    *out_n = f.map_nbytes;
    *out_file = f.path;
    return GS_OK;
}

gs_err gs__weights_load(gs_weights_t *self, const char *path, int allow_index)
{
    const uint8_t *buf;
    size_t n;
    const char *file;
    GS_TRY(map_file(self, path, &buf, &n, &file));
    if (n == 0) {
        GS_LOG_ERROR("weights file \"%s\" is empty", file);
        return GS_EFORMAT;
    }
    if (n >= 4 && memcmp(buf, "PK", 2) == 0 &&
        ((buf[2] == 3 && buf[3] == 4) || (buf[2] == 5 && buf[3] == 6)))
        return gs__pt_parse(self, file, buf, n);
    // a safetensors length prefix can itself look like JSON ("{" is a length byte of 123)
    uint64_t hlen = 0;
    for (int k = 7; n >= 8 && k >= 0; k--)
        hlen = hlen << 8 | buf[k];
    if (n >= 9 && hlen >= 2 && hlen <= n - 8 && buf[8] == '{')
        return gs__safetensors_parse(self, file, buf, n);
    size_t i = 0;
    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
        i++;
    if (i < n && buf[i] == '{') {
        if (!allow_index) {
            GS_LOG_ERROR("shard \"%s\" is itself an index (json), not a weights file", file);
            return GS_EFORMAT;
        }
        return gs__safetensors_parse_index(self, file, buf, n);
    }
    if (n >= 2 && buf[0] == 0x80 && buf[1] >= 2) {
        GS_LOG_ERROR("weights \"%s\" use the legacy (pre-1.6, non-zip) torch format; re-save "
                     "them with a recent torch or convert them to safetensors",
                     file);
        return GS_EUNSUPPORTED;
    }
    return gs__safetensors_parse(self, file, buf, n);
}

static gs_err resolve_dir(const char *dir, char **out_path)
{
    // Hugging Face names first, then open_clip hub names; safetensors before torch pickles
    static const char *candidates[] = {
        "model.safetensors.index.json", "model.safetensors", "open_clip_model.safetensors",
        "pytorch_model.bin.index.json", "pytorch_model.bin", "open_clip_pytorch_model.bin"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char *p = gs_path_join(dir, candidates[i]);
        if (gs_path_exists(p)) {
            *out_path = p;
            return GS_OK;
        }
        gs_free(p);
    }
    GS_LOG_ERROR("could not open weights in folder \"%s\": it holds none of "
                 "model.safetensors(.index.json), open_clip_model.safetensors, "
                 "pytorch_model.bin(.index.json), open_clip_pytorch_model.bin",
                 dir);
    return GS_EIO;
}

gs_err gs_weights_open(const char *path, gs_weights_t **out)
{
    *out = NULL;
    gs_weights_t *self = gs_xcalloc(1, sizeof *self);
    self->path = gs_xstrdup(path);
    char *file = NULL;
    gs_err e = GS_OK;
    if (gs_is_dir(path))
        e = resolve_dir(path, &file);
    if (e == GS_OK)
        e = gs__weights_load(self, file ? file : path, 1);
    if (e == GS_OK)
        e = gs__weights_sort(self);
    gs_free(file);
    if (e != GS_OK) {
        gs_weights_close(&self);
        return e;
    }
    GS_LOG_DEBUG("opened weights \"%s\": %zu tensors in %zu files", path, self->n_tensors,
                 self->n_files);
    *out = self;
    return GS_OK;
}

void gs_weights_close(gs_weights_t **p)
{
    if (!p || !*p)
        return;
    gs_weights_t *self = *p;
    for (size_t i = 0; i < self->n_files; i++) {
        if (self->files[i].map)
            munmap(self->files[i].map, self->files[i].map_nbytes);
        gs_free(self->files[i].path);
    }
    for (size_t i = 0; i < self->n_names; i++)
        gs_free(self->names[i]);
    for (size_t i = 0; i < self->n_copies; i++)
        gs_free(self->copies[i]);
    gs_free(self->files);
    gs_free(self->names);
    gs_free(self->copies);
    gs_free(self->tensors);
    gs_free(self->meta);
    gs_free(self->path);
    gs_free(self);
    *p = NULL;
}

// ---- lookup -------------------------------------------------------------------------------

const gs_tensor_t *gs_weights_get(const gs_weights_t *self, const char *name)
{
    gs_tensor_t key = {.name = name};
    return bsearch(&key, self->tensors, self->n_tensors, sizeof key, cmp_tensor);
}

size_t gs_weights_count(const gs_weights_t *self)
{
    return self->n_tensors;
}

const gs_tensor_t *gs_weights_at(const gs_weights_t *self, size_t i)
{
    return i < self->n_tensors ? &self->tensors[i] : NULL;
}

const char *gs_weights_metadata(const gs_weights_t *self, const char *key)
{
    for (size_t i = 0; i + 1 < self->n_meta; i += 2)
        if (strcmp(self->meta[i], key) == 0)
            return self->meta[i + 1];
    return NULL;
}

gs_err gs_weights_expect(const gs_weights_t *self, const char *name, int n_dims,
                         const int64_t *shape, unsigned dtypes_mask, const gs_tensor_t **out)
{
    if (out)
        *out = NULL;
    const gs_tensor_t *t = gs_weights_get(self, name);
    if (!t) {
        GS_LOG_ERROR("tensor \"%s\" is missing from \"%s\"", name, self->path);
        return GS_ENOTFOUND;
    }
    if (dtypes_mask == 0)
        dtypes_mask = 1u << GS_DTYPE_F32 | 1u << GS_DTYPE_F16 | 1u << GS_DTYPE_BF16;
    if (!(dtypes_mask & (1u << t->dtype))) {
        GS_LOG_ERROR("tensor \"%s\" in \"%s\": dtype %s is not accepted here", name, t->file,
                     gs_dtype_name(t->dtype));
        return GS_EFORMAT;
    }
    int ok = t->n_dims == n_dims;
    for (int d = 0; ok && d < n_dims; d++)
        ok = !shape || shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char want[160], got[160];
        GS_LOG_ERROR("tensor \"%s\" in \"%s\": expected shape %s, found %s", name, t->file,
                     shape ? gs__shape_str(shape, n_dims, want, sizeof want) : "of that rank",
                     gs__shape_str(t->shape, t->n_dims, got, sizeof got));
        return GS_EFORMAT;
    }
    if (out)
        *out = t;
    return GS_OK;
}

// ---- conversion ---------------------------------------------------------------------------

// f16_bits_to_f32: IEEE binary16 -> binary32, exact for every input (subnormals normalised,
// infinities kept, NaN payloads shifted into the top of the float mantissa).
static float f16_bits_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            uint32_t e = 113; // a subnormal is man * 2^-24: shift until the implicit bit shows
            while (!(man & 0x400u)) {
                man <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

gs_err gs_tensor_to_f32(const gs_tensor_t *t, int64_t first, int64_t n, float *out)
{
    if (first < 0 || n < 0 || first > t->n_elems || n > t->n_elems - first)
        return GS_EINVAL;
    const uint8_t *src = (const uint8_t *)t->data + (size_t)first * gs_dtype_size(t->dtype);
    switch (t->dtype) {
    case GS_DTYPE_F32:
        if (n)
            memcpy(out, src, (size_t)n * 4);
        return GS_OK;
    case GS_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = f16_bits_to_f32(h);
        }
        return GS_OK;
    case GS_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16; // bf16 is the top half of a float: exact
            memcpy(&out[i], &bits, 4);
        }
        return GS_OK;
    case GS_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        return GS_OK;
    default: return GS_EINVAL;
    }
}
