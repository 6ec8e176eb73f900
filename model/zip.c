// A read-only zip directory over a mapped archive: end of central directory (zip64 records and
// extra fields included, since large torch checkpoints pass 4 GB), the central directory, and
// local headers resolved on lookup. Only stored entries are read: torch.save writes nothing
// else, so there is no inflate here. Everything is bounds-checked against the mapping.
#define GS_LOG_MODULE "model"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/weights_int.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_NBYTES 22
#define CENTRAL_NBYTES 46
#define LOCAL_NBYTES 30

typedef struct {
    const char *name; // in the mapping, not NUL-terminated
    size_t name_len;
    uint16_t flags, method;
    uint64_t csize, usize, local_off;
} zentry_t;

struct gs__zip {
    const uint8_t *buf;
    size_t n;
    const char *file;
    zentry_t *entries; // central-directory order
    size_t n_entries;
    zentry_t **sorted; // by name, for lookup
};

static uint64_t rd(const uint8_t *p, int k)
{
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static gs_err bad(const char *file, const char *why)
{
    GS_LOG_ERROR("zip archive \"%s\" is malformed: %s", file, why);
    return GS_EFORMAT;
}

typedef struct {
    uint64_t n_entries, cd_size, cd_off;
} eocd_t;

// find_eocd: the end-of-central-directory record (the last one within the final 64 KiB + 22
// bytes), then its zip64 form when a locator precedes it.
static gs_err find_eocd(const uint8_t *buf, size_t n, const char *file, eocd_t *out)
{
    if (n < EOCD_NBYTES)
        return bad(file, "too short for an end of central directory record");
    size_t lo = n > EOCD_NBYTES + 0xffffu ? n - EOCD_NBYTES - 0xffffu : 0;
    size_t at = n - EOCD_NBYTES + 1;
    int found = 0;
    while (!found && at > lo) {
        at--;
        found = rd(buf + at, 4) == SIG_EOCD && at + EOCD_NBYTES + rd(buf + at + 20, 2) <= n;
    }
    if (!found)
        return bad(file, "no end of central directory record");
    const uint8_t *e = buf + at;
    out->n_entries = rd(e + 10, 2);
    out->cd_size = rd(e + 12, 4);
    out->cd_off = rd(e + 16, 4);
    if (at >= 20 && rd(buf + at - 20, 4) == SIG_LOC64) {
        uint64_t off64 = rd(buf + at - 20 + 8, 8);
        if (off64 > n || n - off64 < 56 || rd(buf + off64, 4) != SIG_EOCD64)
            return bad(file, "zip64 end of central directory record outside the file");
        const uint8_t *z = buf + off64;
        out->n_entries = rd(z + 32, 8);
        out->cd_size = rd(z + 40, 8);
        out->cd_off = rd(z + 48, 8);
    } else if (out->n_entries == 0xffffu || out->cd_size == 0xffffffffu ||
               out->cd_off == 0xffffffffu) {
        return bad(file, "zip64 values without a zip64 locator");
    }
    if (out->cd_off > n || out->cd_size > n - out->cd_off)
        return bad(file, "central directory outside the file");
    if (out->n_entries > out->cd_size / CENTRAL_NBYTES)
        return bad(file, "more entries than the central directory can hold");
    return GS_OK;
}

// zip64_extra: replaces the saturated 32-bit fields of *z from a zip64 extra field (0x0001),
// whose 8-byte values appear in the order usize, csize, local offset, each only if saturated.
static gs_err zip64_extra(const char *file, const uint8_t *x, size_t len, zentry_t *z)
{
    while (len >= 4) {
        uint64_t id = rd(x, 2), sz = rd(x + 2, 2);
        if (sz > len - 4)
            return bad(file, "extra field runs past its entry");
        if (id == 1) {
            const uint8_t *p = x + 4, *end = x + 4 + sz;
            uint64_t *fields[3] = {&z->usize, &z->csize, &z->local_off};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu)
                    continue;
                if (end - p < 8)
                    return bad(file, "zip64 extra field is too short");
                *fields[i] = rd(p, 8);
                p += 8;
            }
            return GS_OK;
        }
        x += 4 + sz;
        len -= 4 + sz;
    }
    if (z->usize == 0xffffffffu || z->csize == 0xffffffffu || z->local_off == 0xffffffffu)
        return bad(file, "saturated sizes without a zip64 extra field");
    return GS_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    const zentry_t *x = *(zentry_t *const *)a, *y = *(zentry_t *const *)b;
    size_t k = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, k);
    if (c)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static gs_err read_central(gs__zip_t *self, const eocd_t *eo)
{
    const uint8_t *p = self->buf + eo->cd_off, *end = p + eo->cd_size;
    for (uint64_t i = 0; i < eo->n_entries; i++) {
        if (end - p < CENTRAL_NBYTES || rd(p, 4) != SIG_CENTRAL)
            return bad(self->file, "bad central directory entry");
        zentry_t *z = &self->entries[i];
        z->flags = (uint16_t)rd(p + 8, 2);
        z->method = (uint16_t)rd(p + 10, 2);
        z->csize = rd(p + 20, 4);
        z->usize = rd(p + 24, 4);
        z->local_off = rd(p + 42, 4);
        size_t nl = (size_t)rd(p + 28, 2), xl = (size_t)rd(p + 30, 2), cl = (size_t)rd(p + 32, 2);
        if ((size_t)(end - p) - CENTRAL_NBYTES < nl + xl + cl)
            return bad(self->file, "central directory entry runs past the directory");
        z->name = (const char *)p + CENTRAL_NBYTES;
        z->name_len = nl;
        GS_TRY(zip64_extra(self->file, p + CENTRAL_NBYTES + nl, xl, z));
        p += CENTRAL_NBYTES + nl + xl + cl;
        self->sorted[i] = z;
    }
    self->n_entries = (size_t)eo->n_entries;
    qsort(self->sorted, self->n_entries, sizeof *self->sorted, cmp_entry);
    return GS_OK;
}

gs_err gs__zip_open(const uint8_t *buf, size_t n, const char *file, gs__zip_t **out)
{
    *out = NULL;
    eocd_t eo = {0};
    GS_TRY(find_eocd(buf, n, file, &eo));
    gs__zip_t *self = gs_trycalloc(1, sizeof *self);
    if (!self)
        return GS_ENOMEM;
    self->buf = buf;
    self->n = n;
    self->file = file;
    self->entries = gs_trycalloc((size_t)eo.n_entries + 1, sizeof *self->entries);
    self->sorted = gs_trycalloc((size_t)eo.n_entries + 1, sizeof *self->sorted);
    gs_err e = self->entries && self->sorted ? read_central(self, &eo) : GS_ENOMEM;
    if (e != GS_OK) {
        gs__zip_close(&self);
        return e;
    }
    *out = self;
    return GS_OK;
}

void gs__zip_close(gs__zip_t **p)
{
    if (!p || !*p)
        return;
    gs_free((*p)->entries);
    gs_free((*p)->sorted);
    gs_free(*p);
    *p = NULL;
}

size_t gs__zip_count(const gs__zip_t *self)
{
    return self->n_entries;
}

const char *gs__zip_name(const gs__zip_t *self, size_t i, size_t *out_len)
{
    *out_len = self->entries[i].name_len;
    return self->entries[i].name;
}

gs_err gs__zip_find(const gs__zip_t *self, const char *name, const uint8_t **out_data,
                    uint64_t *out_nbytes)
{
    zentry_t key = {.name = name, .name_len = strlen(name)}, *kp = &key;
    zentry_t **hit = bsearch(&kp, self->sorted, self->n_entries, sizeof kp, cmp_entry);
    if (!hit)
        return GS_ENOTFOUND;
    const zentry_t *z = *hit;
    if (z->method != 0 || (z->flags & 1)) {
        GS_LOG_ERROR("entry \"%s\" in \"%s\" is %s (method %u); only stored entries are read, "
                     "as torch.save writes them",
                     name, self->file, (z->flags & 1) ? "encrypted" : "compressed", z->method);
        return GS_EUNSUPPORTED;
    }
    if (z->csize != z->usize || z->local_off > self->n || self->n - z->local_off < LOCAL_NBYTES ||
        rd(self->buf + z->local_off, 4) != SIG_LOCAL) {
        GS_LOG_ERROR("entry \"%s\" in \"%s\" has no valid local header", name, self->file);
        return GS_EFORMAT;
    }
    const uint8_t *lh = self->buf + z->local_off;
    uint64_t data_off = z->local_off + LOCAL_NBYTES + rd(lh + 26, 2) + rd(lh + 28, 2);
    if (data_off > self->n || z->csize > self->n - data_off) {
        GS_LOG_ERROR("entry \"%s\" in \"%s\" lies past the end of the file (bytes [%" PRIu64
                     ", %" PRIu64 ") of %zu): the file is truncated",
                     name, self->file, data_off, data_off + z->csize, self->n);
        return GS_EFORMAT;
    }
    *out_data = self->buf + data_off;
    *out_nbytes = z->csize;
    return GS_OK;
}
