// The change shard file (warp_shard.h): framing only, built in memory and written with
// gs_write_file_atomic; read back whole and checked before anything is handed out.
#define GS_LOG_MODULE "jobs"
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "jobs/hash.h"
#include "jobs/warp_shard.h"

#define MAGIC "GSCHANG"        // 8 bytes with the NUL
#define SEED 0x677363687364ULL // "gschsd"
#define HEADER_NBYTES 64u

struct gs_warp_shard {
    gs_warp_shard_data_t d;
    char *file; // the whole file; keys and values point into it
    const uint8_t **keys, **vals;
    uint32_t *key_nbytes, *val_nbytes;
    uint64_t *vec_ids;
    float *vecs;
};

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint64_t checksum(const uint8_t *head, const uint8_t *payload, size_t n)
{
    return gs_hash_bytes(payload, n, gs_hash_bytes(head, 56, SEED));
}

gs_err gs_warp_shard_write(const char *path, const gs_warp_shard_data_t *d, char out_hash[17])
{
    const gs_warp_shard_header_t *h = &d->h;
    if (h->dim < 0 ||
        (h->n_records && (!d->keys || !d->vals || !d->key_nbytes || !d->val_nbytes)) ||
        (h->n_vectors && (!d->vec_ids || !d->vecs || h->dim < 1)))
        return GS_EINVAL;
    size_t n = HEADER_NBYTES;
    for (uint32_t i = 0; i < h->n_records; i++)
        n += 8 + (size_t)d->key_nbytes[i] + d->val_nbytes[i];
    n += (size_t)h->n_vectors * (8 + 4 * (size_t)h->dim);
    if (n > GS_WARP_SHARD_MAX_NBYTES)
        return GS_ETOOBIG;
    uint8_t *buf = gs_trymalloc(n);
    if (!buf)
        return GS_ENOMEM;
    memset(buf, 0, HEADER_NBYTES);
    memcpy(buf, MAGIC, 8);
    le32(buf + 8, GS_WARP_SHARD_VERSION);
    le32(buf + 12, (uint32_t)h->dim);
    le64(buf + 16, h->task_id);
    le64(buf + 24, h->settings_hash);
    le32(buf + 32, h->n_records);
    le32(buf + 36, h->n_vectors);
    le32(buf + 40, h->n_cells);
    le32(buf + 44, h->n_skipped);
    le64(buf + 48, n - HEADER_NBYTES);
    uint8_t *p = buf + HEADER_NBYTES;
    for (uint32_t i = 0; i < h->n_records; i++) {
        le32(p, d->key_nbytes[i]);
        memcpy(p + 4, d->keys[i], d->key_nbytes[i]);
        p += 4 + d->key_nbytes[i];
        le32(p, d->val_nbytes[i]);
        memcpy(p + 4, d->vals[i], d->val_nbytes[i]);
        p += 4 + d->val_nbytes[i];
    }
    for (uint32_t i = 0; i < h->n_vectors; i++, p += 8)
        le64(p, d->vec_ids[i]);
    for (size_t i = 0; i < (size_t)h->n_vectors * (size_t)h->dim; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &d->vecs[i], 4);
        le32(p, u);
    }
    uint64_t sum = checksum(buf, buf + HEADER_NBYTES, n - HEADER_NBYTES);
    le64(buf + 56, sum);
    gs_err e = gs_write_file_atomic(path, buf, n);
    gs_free(buf);
    if (e == GS_OK && out_hash)
        snprintf(out_hash, 17, "%016llx", (unsigned long long)sum);
    return e;
}

static gs_err bad(const char *path, const char *what)
{
    GS_LOG_ERROR("change shard \"%s\" is malformed: %s", path, what);
    return GS_EFORMAT;
}

// parse: checks the framing of a whole file and points the handle's arrays into it.
static gs_err parse(gs_warp_shard_t *s, size_t n, const char *path)
{
    const uint8_t *b = (const uint8_t *)s->file;
    if (n < HEADER_NBYTES || memcmp(b, MAGIC, 8) != 0)
        return bad(path, "no change shard magic");
    if (rd32(b + 8) != GS_WARP_SHARD_VERSION)
        return bad(path, "another version");
    gs_warp_shard_header_t *h = &s->d.h;
    h->dim = (int32_t)rd32(b + 12);
    h->task_id = rd64(b + 16);
    h->settings_hash = rd64(b + 24);
    h->n_records = rd32(b + 32);
    h->n_vectors = rd32(b + 36);
    h->n_cells = rd32(b + 40);
    h->n_skipped = rd32(b + 44);
    if (rd64(b + 48) != n - HEADER_NBYTES)
        return bad(path, "its size is not the payload size recorded");
    if (checksum(b, b + HEADER_NBYTES, n - HEADER_NBYTES) != rd64(b + 56))
        return bad(path, "checksum mismatch");
    if (h->dim < 0 || h->dim > 1 << 16 || h->n_records > n || h->n_vectors > n)
        return bad(path, "counts out of range");
    size_t nr = h->n_records ? h->n_records : 1;
    s->keys = gs_xcalloc(nr, sizeof *s->keys);
    s->vals = gs_xcalloc(nr, sizeof *s->vals);
    s->key_nbytes = gs_xcalloc(nr, sizeof *s->key_nbytes);
    s->val_nbytes = gs_xcalloc(nr, sizeof *s->val_nbytes);
    size_t off = HEADER_NBYTES;
    for (uint32_t i = 0; i < h->n_records; i++) {
        for (int kv = 0; kv < 2; kv++) {
            if (n - off < 4)
                return bad(path, "truncated record");
            uint32_t len = rd32(b + off);
            if (n - off - 4 < len)
                return bad(path, "record longer than the file");
            (kv ? s->vals : s->keys)[i] = b + off + 4;
            (kv ? s->val_nbytes : s->key_nbytes)[i] = len;
            off += 4 + (size_t)len;
        }
    }
    size_t nv = h->n_vectors, vec_nbytes = nv * (size_t)h->dim * 4;
    if (n - off != nv * 8 + vec_nbytes)
        return bad(path, "the vectors do not fill the rest of the file");
    s->vec_ids = gs_xcalloc(nv ? nv : 1, sizeof *s->vec_ids);
    s->vecs = gs_trymalloc(vec_nbytes ? vec_nbytes : 4);
    if (!s->vecs)
        return GS_ENOMEM;
    for (size_t i = 0; i < nv; i++, off += 8)
        s->vec_ids[i] = rd64(b + off);
    for (size_t i = 0; i < nv * (size_t)h->dim; i++, off += 4) {
        uint32_t u = rd32(b + off);
        memcpy(&s->vecs[i], &u, 4);
    }
    s->d.keys = s->keys;
    s->d.vals = s->vals;
    s->d.key_nbytes = s->key_nbytes;
    s->d.val_nbytes = s->val_nbytes;
    s->d.vec_ids = s->vec_ids;
    s->d.vecs = s->vecs;
    return GS_OK;
}

gs_err gs_warp_shard_read(const char *path, gs_warp_shard_t **out, char out_hash[17])
{
    *out = NULL;
    if (!gs_path_exists(path))
        return GS_ENOTFOUND;
    gs_warp_shard_t *s = gs_xcalloc(1, sizeof *s);
    size_t n = 0;
    gs_err e = gs_read_file(path, GS_WARP_SHARD_MAX_NBYTES, &s->file, &n);
    if (e == GS_OK)
        e = parse(s, n, path);
    if (e != GS_OK) {
        gs_warp_shard_destroy(&s);
        return e;
    }
    if (out_hash)
        snprintf(out_hash, 17, "%016llx", (unsigned long long)rd64((const uint8_t *)s->file + 56));
    *out = s;
    return GS_OK;
}

const gs_warp_shard_data_t *gs_warp_shard_data(const gs_warp_shard_t *self)
{
    return &self->d;
}

void gs_warp_shard_destroy(gs_warp_shard_t **p)
{
    if (!p || !*p)
        return;
    gs_warp_shard_t *s = *p;
    gs_free(s->file);
    gs_free(s->keys);
    gs_free(s->vals);
    gs_free(s->key_nbytes);
    gs_free(s->val_nbytes);
    gs_free(s->vec_ids);
    gs_free(s->vecs);
    gs_free(s);
    *p = NULL;
}
