// torch.save checkpoints (zip format, torch >= 1.6): "<prefix>/data.pkl" is a pickle of a state
// dict whose tensors are torch._utils._rebuild_tensor_v2(persistent_load(('storage', <type>,
// key, location, numel)), offset, size, stride, requires_grad, hooks); the storages are the
// stored entries "<prefix>/data/<key>", referenced in place. The dict may sit under
// "state_dict" and carry "module." prefixes (DataParallel), both removed as open_clip does.
// Only the allow-list below is honoured; any other global refuses the file.
#define GS_LOG_MODULE "model"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/weights_int.h"

enum {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_STORAGE, // + dtype: a storage class, only valid inside a persistent id
};

enum { OBJ_STORAGE = 1, OBJ_TENSOR = 2 };

static const struct {
    const char *name;
    gs_dtype_t dtype;
} storage_types[] = {
    {"FloatStorage", GS_DTYPE_F32},     {"HalfStorage", GS_DTYPE_F16},
    {"BFloat16Storage", GS_DTYPE_BF16}, {"DoubleStorage", GS_DTYPE_F64},
    {"LongStorage", GS_DTYPE_I64},      {"IntStorage", GS_DTYPE_I32},
    {"ByteStorage", GS_DTYPE_U8},       {"CharStorage", GS_DTYPE_I8},
    {"BoolStorage", GS_DTYPE_BOOL},
};
#define N_STORAGE_TYPES (sizeof storage_types / sizeof storage_types[0])

typedef struct {
    gs_dtype_t dtype;
    const uint8_t *data;
    int64_t numel;
    const char *key;
} storage_t;

typedef struct {
    const storage_t *storage;
    const gs__pk_t *offset, *size, *stride; // checked when the tensor's name is known
} tensor_t;

typedef struct {
    const char *file;
    const gs__zip_t *zip;
    const char *prefix;
    size_t prefix_len;
} pt_t;

static gs_err mem_bound(const pt_t *pt)
{
    GS_LOG_ERROR("torch checkpoint \"%s\": the pickle exceeds its memory bound", pt->file);
    return GS_ETOOBIG;
}

// ---- hooks --------------------------------------------------------------------------------

static int find_class(void *ud, const char *module, const char *name)
{
    (void)ud;
    if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
        return G_ORDERED_DICT;
    if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
        return G_REBUILD_TENSOR_V2;
    if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0)
        return G_REBUILD_PARAMETER;
    if (strcmp(module, "torch") == 0)
        for (size_t i = 0; i < N_STORAGE_TYPES; i++)
            if (strcmp(name, storage_types[i].name) == 0)
                return G_STORAGE + (int)i;
    return -1;
}

static int64_t int_at(const gs__pk_t *t, size_t i, int *ok)
{
    if (t->kind != GS_PK_TUPLE || i >= t->u.seq.n || t->u.seq.items[i]->kind != GS_PK_INT) {
        *ok = 0;
        return 0;
    }
    return t->u.seq.items[i]->u.i;
}

static gs_err persistent_load(void *ud, gs__pk_vm_t *vm, const gs__pk_t *pid, gs__pk_t **out)
{
    const pt_t *pt = ud;
    int ok = pid->kind == GS_PK_TUPLE && pid->u.seq.n == 5;
    gs__pk_t *const *it = ok ? pid->u.seq.items : NULL;
    ok = ok && it[0]->kind == GS_PK_STR && strcmp(it[0]->u.str.s, "storage") == 0 &&
         it[1]->kind == GS_PK_GLOBAL && it[1]->u.global.id >= G_STORAGE &&
         it[2]->kind == GS_PK_STR && it[2]->u.str.len > 0 && it[2]->u.str.len <= 256 &&
         strlen(it[2]->u.str.s) == it[2]->u.str.len;
    int64_t numel = ok ? int_at(pid, 4, &ok) : 0;
    if (!ok || numel < 0) {
        GS_LOG_ERROR("torch checkpoint \"%s\": a persistent id is not ('storage', <type>, key, "
                     "location, numel)",
                     pt->file);
        return GS_EFORMAT;
    }
    storage_t *s = gs__pk_alloc(vm, sizeof *s);
    gs__pk_t *o = gs__pk_new(vm, GS_PK_OBJ);
    if (!s || !o)
        return mem_bound(pt);
    s->dtype = storage_types[it[1]->u.global.id - G_STORAGE].dtype;
    s->numel = numel;
    s->key = it[2]->u.str.s;
    char entry[512];
    snprintf(entry, sizeof entry, "%.*s/data/%s", (int)pt->prefix_len, pt->prefix, s->key);
    uint64_t nbytes = 0;
    gs_err e = gs__zip_find(pt->zip, entry, &s->data, &nbytes);
    if (e == GS_ENOTFOUND)
        GS_LOG_ERROR("torch checkpoint \"%s\": storage \"%s\" has no entry \"%s\"", pt->file,
                     s->key, entry);
    if (e != GS_OK)
        return e == GS_ENOTFOUND ? GS_EFORMAT : e;
    size_t es = gs_dtype_size(s->dtype);
    if ((uint64_t)numel > nbytes / es) {
        GS_LOG_ERROR("torch checkpoint \"%s\": storage \"%s\" holds %" PRIu64 " bytes, but "
                     "%" PRId64 " %s elements need more",
                     pt->file, s->key, nbytes, numel, gs_dtype_name(s->dtype));
        return GS_EFORMAT;
    }
    o->u.obj.type = OBJ_STORAGE;
    o->u.obj.ptr = s;
    *out = o;
    return GS_OK;
}

static gs_err reduce_ordered_dict(const pt_t *pt, gs__pk_vm_t *vm, const gs__pk_t *args,
                                  gs__pk_t **out)
{
    gs__pk_t *d = gs__pk_new(vm, GS_PK_DICT);
    if (!d)
        return mem_bound(pt);
    *out = d;
    if (args->u.seq.n == 0)
        return GS_OK;
    const gs__pk_t *items = args->u.seq.items[0];
    if (args->u.seq.n != 1 || (items->kind != GS_PK_LIST && items->kind != GS_PK_TUPLE)) {
        GS_LOG_ERROR("torch checkpoint \"%s\": OrderedDict() takes a list of pairs", pt->file);
        return GS_EFORMAT;
    }
    for (size_t i = 0; i < items->u.seq.n; i++) {
        const gs__pk_t *kv = items->u.seq.items[i];
        if ((kv->kind != GS_PK_TUPLE && kv->kind != GS_PK_LIST) || kv->u.seq.n != 2) {
            GS_LOG_ERROR("torch checkpoint \"%s\": OrderedDict() item is not a pair", pt->file);
            return GS_EFORMAT;
        }
        if (gs__pk_append(vm, d, kv->u.seq.items[0]) != GS_OK ||
            gs__pk_append(vm, d, kv->u.seq.items[1]) != GS_OK)
            return mem_bound(pt);
    }
    return GS_OK;
}

static gs_err reduce(void *ud, gs__pk_vm_t *vm, int id, const gs__pk_t *args, gs__pk_t **out)
{
    const pt_t *pt = ud;
    gs__pk_t *const *a = args->u.seq.items;
    size_t n = args->u.seq.n;
    if (id == G_ORDERED_DICT)
        return reduce_ordered_dict(pt, vm, args, out);
    if (id == G_REBUILD_PARAMETER) { // (tensor, requires_grad, backward_hooks)
        if (n != 3 || a[0]->kind != GS_PK_OBJ || a[0]->u.obj.type != OBJ_TENSOR) {
            GS_LOG_ERROR("torch checkpoint \"%s\": malformed _rebuild_parameter call", pt->file);
            return GS_EFORMAT;
        }
        *out = a[0];
        return GS_OK;
    }
    if (id == G_REBUILD_TENSOR_V2) { // (storage, offset, size, stride, grad, hooks[, metadata])
        if ((n != 6 && n != 7) || a[0]->kind != GS_PK_OBJ || a[0]->u.obj.type != OBJ_STORAGE ||
            a[1]->kind != GS_PK_INT || a[2]->kind != GS_PK_TUPLE || a[3]->kind != GS_PK_TUPLE) {
            GS_LOG_ERROR("torch checkpoint \"%s\": malformed _rebuild_tensor_v2 call", pt->file);
            return GS_EFORMAT;
        }
        tensor_t *t = gs__pk_alloc(vm, sizeof *t);
        gs__pk_t *o = gs__pk_new(vm, GS_PK_OBJ);
        if (!t || !o)
            return mem_bound(pt);
        t->storage = a[0]->u.obj.ptr;
        t->offset = a[1];
        t->size = a[2];
        t->stride = a[3];
        o->u.obj.type = OBJ_TENSOR;
        o->u.obj.ptr = t;
        *out = o;
        return GS_OK;
    }
    GS_LOG_ERROR("torch checkpoint \"%s\": a storage class is called, which state dicts never "
                 "do",
                 pt->file);
    return GS_EUNSUPPORTED;
}

// ---- from pickle objects to tensors -------------------------------------------------------

// contiguous: torch's definition (dimensions of size 1 may have any stride)
static int contiguous(const int64_t *size, const int64_t *stride, int n_dims)
{
    int64_t expected = 1;
    for (int d = n_dims - 1; d >= 0; d--) {
        if (size[d] == 1)
            continue;
        if (stride[d] != expected)
            return 0;
        expected *= size[d];
    }
    return 1;
}

static gs_err make_tensor(const pt_t *pt, const char *name, const tensor_t *src, gs_tensor_t *t)
{
    const storage_t *s = src->storage;
    size_t n_dims = src->size->u.seq.n;
    if (n_dims > GS_TENSOR_MAX_DIMS) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\" has %zu dimensions, at most %d are supported",
                     name, pt->file, n_dims, GS_TENSOR_MAX_DIMS);
        return GS_EUNSUPPORTED;
    }
    int ok = src->stride->u.seq.n == n_dims;
    int64_t stride[GS_TENSOR_MAX_DIMS], prod = 1, lim = INT64_MAX / 8;
    for (size_t d = 0; ok && d < n_dims; d++) {
        t->shape[d] = int_at(src->size, d, &ok);
        stride[d] = int_at(src->stride, d, &ok);
        ok = ok && t->shape[d] >= 0 && (prod == 0 || t->shape[d] <= lim / prod);
        prod *= ok ? t->shape[d] : 1;
    }
    int64_t offset = src->offset->u.i;
    if (!ok || offset < 0 || offset > s->numel || prod > s->numel - offset) {
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\": size, stride or offset do not fit storage "
                     "\"%s\" of %" PRId64 " elements",
                     name, pt->file, s->key, s->numel);
        return GS_EFORMAT;
    }
    if (prod > 0 && !contiguous(t->shape, stride, (int)n_dims)) { // empty: any strides
        char sh[160], st[160];
        GS_LOG_ERROR("tensor \"%.200s\" in \"%s\" is not contiguous (size %s, stride %s); save "
                     "it after .contiguous()",
                     name, pt->file, gs__shape_str(t->shape, (int)n_dims, sh, sizeof sh),
                     gs__shape_str(stride, (int)n_dims, st, sizeof st));
        return GS_EUNSUPPORTED;
    }
    size_t es = gs_dtype_size(s->dtype);
    t->name = name;
    t->dtype = s->dtype;
    t->n_dims = (int)n_dims;
    t->n_elems = prod;
    t->data = s->data + (size_t)offset * es;
    t->nbytes = (size_t)prod * es;
    t->file = pt->file;
    return GS_OK;
}

// collect: adds the tensors of the state dict (under "state_dict" when wrapped); other values
// (epoch numbers, optimizer state outside the wrapper) are skipped
static gs_err collect(gs_weights_t *self, const pt_t *pt, const gs__pk_t *root)
{
    if (root->kind != GS_PK_DICT) {
        GS_LOG_ERROR("torch checkpoint \"%s\" holds a %s, not a state dict", pt->file,
                     gs__pk_kind_name(root->kind));
        return GS_EFORMAT;
    }
    const gs__pk_t *inner = gs__pk_dict_get(root, "state_dict");
    if (inner && inner->kind == GS_PK_DICT)
        root = inner;
    size_t n_skipped = 0;
    for (size_t i = 0; i + 1 < root->u.seq.n; i += 2) {
        const gs__pk_t *k = root->u.seq.items[i], *v = root->u.seq.items[i + 1];
        if (v->kind != GS_PK_OBJ || v->u.obj.type != OBJ_TENSOR) {
            n_skipped++;
            continue;
        }
        if (k->kind != GS_PK_STR || strlen(k->u.str.s) != k->u.str.len ||
            k->u.str.len > GS_WEIGHTS_MAX_NAME) {
            GS_LOG_ERROR("torch checkpoint \"%s\": a tensor's key is not a name (%s)", pt->file,
                         gs__pk_kind_name(k->kind));
            return GS_EFORMAT;
        }
        const char *name = k->u.str.s;
        if (strncmp(name, "module.", 7) == 0)
            name += 7;
        gs_tensor_t t = {0};
        GS_TRY(make_tensor(pt, name, v->u.obj.ptr, &t));
        GS_TRY(gs__weights_add(self, &t));
    }
    if (n_skipped)
        GS_LOG_DEBUG("torch checkpoint \"%s\": skipped %zu entries that are not tensors", pt->file,
                     n_skipped);
    return GS_OK;
}

// find_prefix: the archive folder, i.e. the first entry's leading folder (as torch does)
static gs_err find_prefix(pt_t *pt)
{
    size_t len;
    const char *name = gs__zip_count(pt->zip) ? gs__zip_name(pt->zip, 0, &len) : NULL;
    const char *slash = name ? memchr(name, '/', len) : NULL;
    if (!slash || slash == name || slash - name > 200 ||
        memchr(name, '\0', (size_t)(slash - name))) {
        GS_LOG_ERROR("zip archive \"%s\" is not a torch checkpoint: its entries are not under "
                     "one folder",
                     pt->file);
        return GS_EFORMAT;
    }
    pt->prefix = name;
    pt->prefix_len = (size_t)(slash - name);
    return GS_OK;
}

static gs_err check_byteorder(const pt_t *pt)
{
    char entry[256];
    const uint8_t *p;
    uint64_t n;
    snprintf(entry, sizeof entry, "%.*s/byteorder", (int)pt->prefix_len, pt->prefix);
    gs_err e = gs__zip_find(pt->zip, entry, &p, &n);
    if (e == GS_ENOTFOUND)
        return GS_OK; // before torch 1.13: always little-endian
    if (e != GS_OK)
        return e;
    if (n == 6 && memcmp(p, "little", 6) == 0)
        return GS_OK;
    GS_LOG_ERROR("torch checkpoint \"%s\" is not little-endian (\"%s\" says \"%.*s\")", pt->file,
                 entry, (int)(n < 16 ? n : 16), (const char *)p);
    return GS_EUNSUPPORTED;
}

gs_err gs__pt_parse(gs_weights_t *self, const char *file, const uint8_t *buf, size_t n)
{
    pt_t pt = {.file = file};
    gs__zip_t *zip = NULL;
    gs__pk_vm_t *vm = NULL;
    gs__pk_t *root = NULL;
    GS_TRY(gs__zip_open(buf, n, file, &zip));
    pt.zip = zip;
    gs_err e = find_prefix(&pt);
    if (e == GS_OK)
        e = check_byteorder(&pt);
    char entry[256], what[600];
    const uint8_t *pkl = NULL;
    uint64_t pkl_nbytes = 0;
    if (e == GS_OK) {
        snprintf(entry, sizeof entry, "%.*s/data.pkl", (int)pt.prefix_len, pt.prefix);
        e = gs__zip_find(zip, entry, &pkl, &pkl_nbytes);
        if (e == GS_ENOTFOUND) {
            GS_LOG_ERROR("torch checkpoint \"%s\" has no \"%s\"", file, entry);
            e = GS_EFORMAT;
        }
    }
    if (e == GS_OK) {
        snprintf(what, sizeof what, "\"%s\" entry \"%s\"", file, entry);
        gs__pk_hooks_t hooks = {.find_class = find_class,
                                .persistent_load = persistent_load,
                                .reduce = reduce,
                                .ud = &pt,
                                .what = what};
        e = gs__pk_run(pkl, (size_t)pkl_nbytes, &hooks, &vm, &root);
    }
    if (e == GS_OK)
        e = collect(self, &pt, root);
    gs__pk_vm_destroy(&vm);
    gs__zip_close(&zip);
    return e;
}
