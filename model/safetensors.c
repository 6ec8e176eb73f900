// safetensors reader: an 8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}} (+ "__metadata__"), then raw little-endian data. Every
// entry is validated before any tensor is handed out. Also reads the sharded form
// ("model.safetensors.index.json": {"weight_map": {name: shard file}}). Does not write.
#define GS_LOG_MODULE "model"
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/weights_int.h"

typedef struct {
    const char *name; // borrowed from the JSON header
    gs_dtype_t dtype;
    int n_dims;
    int64_t shape[GS_TENSOR_MAX_DIMS];
    int64_t n_elems;
    uint64_t begin, end; // byte range within the data region
} entry_t;

// dtypes of the safetensors specification that geoscribe does not read (refused as
// unsupported rather than malformed)
static const char *const known_unread[] = {
    "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

static gs_err parse_dtype(const char *file, const char *name, const json_t *v, gs_dtype_t *out)
{
    const char *s = json_string_value(v);
    if (!s) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": \"dtype\" is missing or not a string", name,
                     file);
        return GS_EFORMAT;
    }
    if (gs__dtype_parse(s, out) == 0)
        return GS_OK;
    for (size_t i = 0; i < sizeof known_unread / sizeof known_unread[0]; i++) {
        if (strcmp(s, known_unread[i]) == 0) {
            GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": dtype %s is not supported", name, file, s);
            return GS_EUNSUPPORTED;
        }
    }
    GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": unknown dtype \"%.40s\"", name, file, s);
    return GS_EFORMAT;
}

static gs_err parse_shape(const char *file, entry_t *e, const json_t *v)
{
    if (!json_is_array(v)) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": \"shape\" is missing or not an array", e->name,
                     file);
        return GS_EFORMAT;
    }
    size_t n = json_array_size(v);
    if (n > GS_TENSOR_MAX_DIMS) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\" has %zu dimensions, at most %d are supported",
                     e->name, file, n, GS_TENSOR_MAX_DIMS);
        return GS_EUNSUPPORTED;
    }
    // the product is kept below INT64_MAX / 8 so that byte counts cannot overflow either
    int64_t prod = 1, lim = INT64_MAX / 8;
    for (size_t d = 0; d < n; d++) {
        const json_t *x = json_array_get(v, d);
        json_int_t s = json_is_integer(x) ? json_integer_value(x) : -1;
        if (s < 0) {
            GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": shape entry %zu is not a non-negative "
                         "integer",
                         e->name, file, d);
            return GS_EFORMAT;
        }
        e->shape[d] = s;
        if (prod != 0 && s > lim / prod) {
            GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": shape is too large", e->name, file);
            return GS_EFORMAT;
        }
        prod *= s;
    }
    e->n_dims = (int)n;
    e->n_elems = prod;
    return GS_OK;
}

static gs_err parse_entry(const char *file, const char *name, const json_t *v, entry_t *e)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    if (!json_is_object(v)) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": header entry is not an object", name, file);
        return GS_EFORMAT;
    }
    if (strlen(name) > GS_WEIGHTS_MAX_NAME) {
        GS_LOG_ERROR("tensor \"%.200s...\" in \"%s\": name is longer than %d bytes", name, file,
                     GS_WEIGHTS_MAX_NAME);
        return GS_EFORMAT;
    }
    GS_TRY(parse_dtype(file, name, json_object_get(v, "dtype"), &e->dtype));
    GS_TRY(parse_shape(file, e, json_object_get(v, "shape")));
    const json_t *off = json_object_get(v, "data_offsets");
    const json_t *b = json_array_get(off, 0), *x = json_array_get(off, 1);
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(b) ||
        !json_is_integer(x) || json_integer_value(b) < 0 ||
        json_integer_value(x) < json_integer_value(b)) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": \"data_offsets\" must be [begin, end] with "
                     "0 <= begin <= end",
                     name, file);
        return GS_EFORMAT;
    }
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(x);
    uint64_t need = (uint64_t)e->n_elems * gs_dtype_size(e->dtype);
    if (e->end - e->begin != need) {
        char sh[160];
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                     "] hold %" PRIu64 " bytes, but %s %s needs %" PRIu64,
                     name, file, e->begin, e->end, e->end - e->begin, gs_dtype_name(e->dtype),
                     gs__shape_str(e->shape, e->n_dims, sh, sizeof sh), need);
        return GS_EFORMAT;
    }
    return GS_OK;
}

static gs_err parse_metadata(gs_weights_t *self, const char *file, const json_t *v)
{
    if (!json_is_object(v)) {
        GS_LOG_ERROR("\"__metadata__\" in \"%s\" is not an object", file);
        return GS_EFORMAT;
    }
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!json_is_string(x)) {
            GS_LOG_ERROR("\"__metadata__\" key \"%.200s\" in \"%s\" is not a string", k, file);
            return GS_EFORMAT;
        }
        gs__weights_add_meta(self, k, json_string_value(x));
    }
    return GS_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

// check_layout: entries sorted by offset; refuses data past the end (the first such tensor is
// the one a truncated file loses first) and overlapping ranges (empty tensors overlap nothing).
static gs_err check_layout(const char *file, const entry_t *ents, size_t n, uint64_t data_nbytes)
{
    const entry_t *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = &ents[i];
        if (e->end > data_nbytes) {
            GS_LOG_ERROR("tensor \"%.200s\" in \"%s\" lies past the end of the file (data bytes "
                         "[%" PRIu64 ", %" PRIu64 ") of %" PRIu64 "): the file is truncated",
                         e->name, file, e->begin, e->end, data_nbytes);
            return GS_EFORMAT;
        }
        if (e->end == e->begin)
            continue;
        if (prev && e->begin < prev->end) {
            GS_LOG_ERROR("tensor \"%.200s\" in \"%s\" overlaps tensor \"%.200s\" (data bytes "
                         "[%" PRIu64 ", %" PRIu64 ") and [%" PRIu64 ", %" PRIu64 "))",
                         e->name, file, prev->name, e->begin, e->end, prev->begin, prev->end);
            return GS_EFORMAT;
        }
        prev = e;
    }
    return GS_OK;
}

gs_err gs__safetensors_parse(gs_weights_t *self, const char *file, const uint8_t *buf, size_t n)
{
    if (n < 8) {
        GS_LOG_ERROR("weights \"%s\" are too short for safetensors (%zu bytes)", file, n);
        return GS_EFORMAT;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > n - 8) {
        GS_LOG_ERROR("safetensors header length %" PRIu64 " of \"%s\" runs past the end of "
                     "the file (%zu bytes)",
                     hlen, file, n);
        return GS_EFORMAT;
    }
    if (hlen > GS_WEIGHTS_MAX_HEADER_NBYTES || hlen < 2 || buf[8] != '{') {
        GS_LOG_ERROR("\"%s\" is not a safetensors file: header length %" PRIu64
                     ", header must be a json object of at most %u bytes",
                     file, hlen, GS_WEIGHTS_MAX_HEADER_NBYTES);
        return GS_EFORMAT;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        GS_LOG_ERROR("safetensors header of \"%s\" is not a json object: %s (column %d)", file,
                     root ? "another json value" : jerr.text, root ? 0 : jerr.column);
        json_decref(root);
        return GS_EFORMAT;
    }
    gs_err e = GS_OK;
    size_t n_ents = 0;
    entry_t *ents = gs_trycalloc(json_object_size(root) + 1, sizeof *ents);
    if (!ents) {
        e = GS_ENOMEM;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            e = parse_metadata(self, file, v);
        else
            e = parse_entry(file, key, v, &ents[n_ents++]);
        if (e != GS_OK)
            goto out;
    }
    qsort(ents, n_ents, sizeof *ents, cmp_begin);
    const uint8_t *data = buf + 8 + hlen;
    e = check_layout(file, ents, n_ents, (uint64_t)(n - 8 - hlen));
    for (size_t i = 0; e == GS_OK && i < n_ents; i++) {
        const entry_t *x = &ents[i];
        gs_tensor_t t = {.name = x->name,
                         .dtype = x->dtype,
                         .n_dims = x->n_dims,
                         .n_elems = x->n_elems,
                         .data = data + x->begin,
                         .nbytes = (size_t)(x->end - x->begin),
                         .file = file};
        memcpy(t.shape, x->shape, sizeof t.shape);
        e = gs__weights_add(self, &t);
    }
out:
    gs_free(ents);
    json_decref(root);
    return e;
}

// ---- sharded checkpoints ------------------------------------------------------------------

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// shard_name_ok: a plain relative path that stays inside the index's folder
static int shard_name_ok(const char *s)
{
    if (!*s || *s == '/' || strlen(s) > 4096)
        return 0;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 0 || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += len + (q ? 1 : 0);
    }
    return 1;
}

// load_shards: loads each distinct shard named in the weight map once.
static gs_err load_shards(gs_weights_t *self, const char *file, const char *dir, json_t *wm)
{
    size_t n = json_object_size(wm), n_shards = 0;
    const char **shards = gs_trycalloc(n + 1, sizeof *shards);
    if (!shards)
        return GS_ENOMEM;
    gs_err e = GS_OK;
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *s = json_string_value(v);
        if (!s || !shard_name_ok(s)) {
            GS_LOG_ERROR("tensor \"%.200s\" in index \"%s\": shard must be a relative file name "
                         "inside the index's folder",
                         key, file);
            e = GS_EFORMAT;
            goto out;
        }
        shards[n_shards++] = s;
    }
    qsort(shards, n_shards, sizeof *shards, cmp_str);
    size_t n_distinct = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (i == 0 || strcmp(shards[i], shards[i - 1]) != 0)
            shards[n_distinct++] = shards[i];
    if (n_distinct > GS_WEIGHTS_MAX_SHARDS) {
        GS_LOG_ERROR("index \"%s\" names %zu shards, at most %d are supported", file, n_distinct,
                     GS_WEIGHTS_MAX_SHARDS);
        e = GS_EFORMAT;
        goto out;
    }
    for (size_t i = 0; e == GS_OK && i < n_distinct; i++) {
        char *p = gs_path_join(dir, shards[i]);
        e = gs__weights_load(self, p, 0);
        gs_free(p);
    }
out:
    gs_free(shards);
    return e;
}

// check_map: every tensor the weight map lists came from the shard it names
static gs_err check_map(gs_weights_t *self, const char *file, const char *dir, json_t *wm)
{
    GS_TRY(gs__weights_sort(self));
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const gs_tensor_t *t = gs_weights_get(self, key);
        char *want = gs_path_join(dir, json_string_value(v));
        int ok = t && strcmp(t->file, want) == 0;
        if (!ok)
            GS_LOG_ERROR("tensor \"%.200s\" is listed in index \"%s\" but %s \"%s\"", key, file,
                         t ? "comes from" : "is missing from shard", t ? t->file : want);
        gs_free(want);
        if (!ok)
            return GS_EFORMAT;
    }
    return GS_OK;
}

gs_err gs__safetensors_parse_index(gs_weights_t *self, const char *file, const uint8_t *buf,
                                   size_t n)
{
    if (n > GS_WEIGHTS_MAX_INDEX_NBYTES) {
        GS_LOG_ERROR("index \"%s\" is too large: %zu bytes, at most %u", file, n,
                     GS_WEIGHTS_MAX_INDEX_NBYTES);
        return GS_EFORMAT;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        GS_LOG_ERROR("index \"%s\" is not valid json: %s (line %d column %d)", file, jerr.text,
                     jerr.line, jerr.column);
        return GS_EFORMAT;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        GS_LOG_ERROR("index \"%s\" has no \"weight_map\" object of tensor -> shard", file);
        json_decref(root);
        return GS_EFORMAT;
    }
    char *dir = gs_xstrdup(file);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    else
        dir[0] = '.', dir[1] = '\0';
    gs_err e = load_shards(self, file, dir, wm);
    if (e == GS_OK)
        e = check_map(self, file, dir, wm);
    gs_free(dir);
    json_decref(root);
    return e;
}
