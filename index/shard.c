// Shard files (index/shard.h): a 72-byte little-endian header, then the payload.
//   0  magic "GSSHARD\0"   8  u32 version (1)     12 i32 dim
//   16 u64 task_id         24 u64 settings_hash   32 u64 scene_id
//   40 u32 n_cells         44 u32 n_tiles         48 u32 n_skipped     52 u32 n_captions
//   56 u64 payload bytes   64 u64 checksum of bytes 0..63 and the payload
//   72 ids (n_tiles u64), vectors (n_tiles x dim f32), skipped ids (n_skipped u64),
//      n_tiles x (u32 length + encoded tile record), n_captions x (u32 length + caption record)
// Arrays are host memory written as they are: geoscribe runs on little-endian hosts only
// (index/vecfile.c makes the same choice), a big-endian host is refused.
#define GS_LOG_MODULE "index"

#include "index/shard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

#define HEADER 72
static const char magic[8] = {'G', 'S', 'S', 'H', 'A', 'R', 'D', 0};

struct gs_shard {
    gs_shard_data_t d;
    char *file;                 // the whole file; ids and vecs point into it (8-aligned)
    uint64_t *skipped;          // copied out
    gs_tile_rec_t *tiles;       // decoded
    gs_caption_rec_t *captions; // decoded, strings in arena
    gs_arena_t *arena;
};

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

// A word-wise FNV-1a variant (8-byte little-endian words, the tail zero-padded) with a
// splitmix finish: several GB/s, enough to catch torn or damaged files (not an adversary).
static uint64_t checksum_update(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = (h ^ get_u64(p + i)) * 0x100000001b3ULL;
    if (i < n) {
        uint8_t tail[8] = {0};
        memcpy(tail, p + i, n - i);
        h = (h ^ get_u64(tail)) * 0x100000001b3ULL;
    }
    return h;
}

static uint64_t checksum_finish(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 31);
}

static uint64_t checksum(const uint8_t *header, const uint8_t *payload, size_t n)
{
    uint8_t h0[HEADER];
    memcpy(h0, header, HEADER);
    memset(h0 + 64, 0, 8);
    uint64_t h = checksum_update(0xcbf29ce484222325ULL, h0, HEADER);
    return checksum_finish(checksum_update(h, payload, n));
}

// ---- writing --------------------------------------------------------------------------------

static gs_err check_data(const gs_shard_data_t *d)
{
    const gs_shard_header_t *h = &d->h;
    if (h->dim < 1 || h->dim > 65536 || (uint64_t)h->n_tiles + h->n_skipped != h->n_cells)
        return GS_EINVAL;
    if ((h->n_tiles && (!d->ids || !d->vecs || !d->tiles)) || (h->n_skipped && !d->skipped_ids) ||
        (h->n_captions && !d->captions))
        return GS_EINVAL;
    for (uint32_t i = 0; i < h->n_tiles; i++)
        if (d->tiles[i].tile_id != d->ids[i])
            return GS_EINVAL;
    return GS_OK;
}

static gs_err append_rec(gs_buf_t *b, gs_buf_t *tmp, const gs_tile_rec_t *t,
                         const gs_caption_rec_t *c)
{
    gs_buf_reset(tmp);
    GS_TRY(t ? gs_rec_encode_tile(t, tmp) : gs_rec_encode_caption(c, tmp));
    uint8_t len[4];
    put_u32(len, (uint32_t)tmp->len);
    GS_TRY(gs_buf_append(b, len, 4));
    return gs_buf_append(b, tmp->data, tmp->len);
}

gs_err gs_shard_write(const char *path, const gs_shard_data_t *d, char out_hash[17])
{
    if (!path || !d || !little_endian())
        return GS_EINVAL;
    GS_TRY(check_data(d));
    const gs_shard_header_t *h = &d->h;
    gs_buf_t b, tmp;
    gs_buf_init(&b, GS_SHARD_MAX_NBYTES);
    gs_buf_init(&tmp, (size_t)GS_REC_STR_MAX * 4);
    uint8_t hdr[HEADER] = {0};
    gs_err e = gs_buf_append(&b, hdr, HEADER);
    if (e == GS_OK && h->n_tiles)
        e = gs_buf_append(&b, d->ids, (size_t)h->n_tiles * 8);
    if (e == GS_OK && h->n_tiles)
        e = gs_buf_append(&b, d->vecs, (size_t)h->n_tiles * (size_t)h->dim * 4);
    if (e == GS_OK && h->n_skipped)
        e = gs_buf_append(&b, d->skipped_ids, (size_t)h->n_skipped * 8);
    for (uint32_t i = 0; e == GS_OK && i < h->n_tiles; i++)
        e = append_rec(&b, &tmp, &d->tiles[i], NULL);
    for (uint32_t i = 0; e == GS_OK && i < h->n_captions; i++)
        e = append_rec(&b, &tmp, NULL, &d->captions[i]);
    uint64_t sum = 0;
    if (e == GS_OK) {
        uint8_t *p = (uint8_t *)b.data;
        memcpy(p, magic, 8);
        put_u32(p + 8, GS_SHARD_VERSION);
        put_u32(p + 12, (uint32_t)h->dim);
        put_u64(p + 16, h->task_id);
        put_u64(p + 24, h->settings_hash);
        put_u64(p + 32, h->scene_id);
        put_u32(p + 40, h->n_cells);
        put_u32(p + 44, h->n_tiles);
        put_u32(p + 48, h->n_skipped);
        put_u32(p + 52, h->n_captions);
        put_u64(p + 56, b.len - HEADER);
        sum = checksum(p, p + HEADER, b.len - HEADER);
        put_u64(p + 64, sum);
        e = gs_write_file_atomic(path, b.data, b.len);
    }
    if (e == GS_OK && out_hash)
        snprintf(out_hash, 17, "%016llx", (unsigned long long)sum);
    gs_buf_cleanup(&tmp);
    gs_buf_cleanup(&b);
    return e;
}

// ---- reading --------------------------------------------------------------------------------

static gs_err parse_header(const char *path, const uint8_t *p, size_t nbytes,
                           gs_shard_header_t *out)
{
    if (nbytes < HEADER || memcmp(p, magic, 8) != 0) {
        GS_LOG_ERROR("\"%s\" is not a shard (bad magic or shorter than its header)", path);
        return GS_EFORMAT;
    }
    if (get_u32(p + 8) != GS_SHARD_VERSION) {
        GS_LOG_ERROR("shard \"%s\" has version %u, this build reads %d", path, get_u32(p + 8),
                     GS_SHARD_VERSION);
        return GS_EFORMAT;
    }
    out->dim = (int32_t)get_u32(p + 12);
    out->task_id = get_u64(p + 16);
    out->settings_hash = get_u64(p + 24);
    out->scene_id = get_u64(p + 32);
    out->n_cells = get_u32(p + 40);
    out->n_tiles = get_u32(p + 44);
    out->n_skipped = get_u32(p + 48);
    out->n_captions = get_u32(p + 52);
    if (out->dim < 1 || out->dim > 65536 ||
        (uint64_t)out->n_tiles + out->n_skipped != out->n_cells) {
        GS_LOG_ERROR("shard \"%s\" has inconsistent counts (dim %d, cells %u, tiles %u, "
                     "skipped %u)",
                     path, out->dim, out->n_cells, out->n_tiles, out->n_skipped);
        return GS_EFORMAT;
    }
    return GS_OK;
}

static gs_err missing(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT ? GS_ENOTFOUND : GS_OK;
}

gs_err gs_shard_read_header(const char *path, gs_shard_header_t *out)
{
    GS_TRY(missing(path));
    FILE *f = fopen(path, "rb");
    if (!f) {
        GS_LOG_ERROR("could not open shard \"%s\": %s", path, strerror(errno));
        return GS_EIO;
    }
    uint8_t hdr[HEADER];
    size_t got = fread(hdr, 1, HEADER, f);
    fclose(f);
    if (!little_endian())
        return GS_EFORMAT;
    return parse_header(path, hdr, got, out);
}

// decode_recs: the length-prefixed records after the arrays.
static gs_err decode_recs(const char *path, gs_shard_t *s, const uint8_t *p, size_t n)
{
    const gs_shard_header_t *h = &s->d.h;
    size_t off = 0;
    uint32_t total = h->n_tiles + h->n_captions;
    for (uint32_t i = 0; i < total; i++) {
        if (n - off < 4 || get_u32(p + off) > n - off - 4) {
            GS_LOG_ERROR("shard \"%s\": record %u runs past the end", path, i);
            return GS_EFORMAT;
        }
        uint32_t len = get_u32(p + off);
        const uint8_t *r = p + off + 4;
        off += 4 + (size_t)len;
        gs_err e;
        if (i < h->n_tiles) {
            e = gs_rec_decode_tile(r, len, &s->tiles[i]);
            if (e == GS_OK && s->tiles[i].tile_id != s->d.ids[i]) {
                GS_LOG_ERROR("shard \"%s\": tile record %u is for tile %016llx, the id list "
                             "says %016llx",
                             path, i, (unsigned long long)s->tiles[i].tile_id,
                             (unsigned long long)s->d.ids[i]);
                return GS_EFORMAT;
            }
        } else {
            e = gs_rec_decode_caption(r, len, s->arena, &s->captions[i - h->n_tiles]);
        }
        if (e != GS_OK) {
            if (e == GS_EFORMAT)
                GS_LOG_ERROR("shard \"%s\": record %u is malformed", path, i);
            return e;
        }
    }
    if (off != n) {
        GS_LOG_ERROR("shard \"%s\": %zu bytes after the last record", path, n - off);
        return GS_EFORMAT;
    }
    return GS_OK;
}

static gs_err parse(const char *path, gs_shard_t *s, size_t nbytes)
{
    const uint8_t *p = (const uint8_t *)s->file;
    gs_shard_header_t *h = &s->d.h;
    GS_TRY(parse_header(path, p, nbytes, h));
    uint64_t payload = get_u64(p + 56);
    if (payload != nbytes - HEADER) {
        GS_LOG_ERROR("shard \"%s\" is truncated: %zu payload bytes, the header says %llu", path,
                     nbytes - HEADER, (unsigned long long)payload);
        return GS_EFORMAT;
    }
    if (checksum(p, p + HEADER, payload) != get_u64(p + 64)) {
        GS_LOG_ERROR("shard \"%s\" fails its checksum", path);
        return GS_EFORMAT;
    }
    uint64_t arrays = (uint64_t)h->n_tiles * 8 + (uint64_t)h->n_tiles * (uint64_t)h->dim * 4 +
                      (uint64_t)h->n_skipped * 8;
    if (arrays > payload) {
        GS_LOG_ERROR("shard \"%s\": its counts need more bytes than it holds", path);
        return GS_EFORMAT;
    }
    const uint8_t *q = p + HEADER;
    s->d.ids = (const uint64_t *)(const void *)q;
    s->d.vecs = (const float *)(const void *)(q + (size_t)h->n_tiles * 8);
    // the skipped ids may sit at an odd multiple of 4 (odd dim): copied out, aligned
    s->skipped = gs_trymalloc(h->n_skipped ? (size_t)h->n_skipped * 8 : 8);
    s->tiles = gs_trycalloc(h->n_tiles ? h->n_tiles : 1, sizeof *s->tiles);
    s->captions = gs_trycalloc(h->n_captions ? h->n_captions : 1, sizeof *s->captions);
    if (!s->skipped || !s->tiles || !s->captions)
        return GS_ENOMEM;
    memcpy(s->skipped, q + (size_t)h->n_tiles * (8 + (size_t)h->dim * 4), (size_t)h->n_skipped * 8);
    s->d.skipped_ids = s->skipped;
    s->d.tiles = s->tiles;
    s->d.captions = s->captions;
    if (h->n_captions)
        s->arena = gs_arena_new(64 << 10, 0);
    return decode_recs(path, s, q + arrays, payload - arrays);
}

gs_err gs_shard_read(const char *path, gs_shard_t **out, char out_hash[17])
{
    *out = NULL;
    if (!little_endian())
        return GS_EFORMAT;
    GS_TRY(missing(path));
    gs_shard_t *s = gs_xcalloc(1, sizeof *s);
    size_t nbytes = 0;
    gs_err e = gs_read_file(path, GS_SHARD_MAX_NBYTES, &s->file, &nbytes);
    if (e == GS_OK)
        e = parse(path, s, nbytes);
    if (e != GS_OK) {
        gs_shard_destroy(&s);
        return e;
    }
    if (out_hash)
        snprintf(out_hash, 17, "%016llx", (unsigned long long)get_u64((uint8_t *)s->file + 64));
    *out = s;
    return GS_OK;
}

const gs_shard_data_t *gs_shard_data(const gs_shard_t *self)
{
    return &self->d;
}

void gs_shard_destroy(gs_shard_t **p)
{
    if (!p || !*p)
        return;
    gs_shard_t *s = *p;
    gs_free(s->file);
    gs_free(s->skipped);
    gs_free(s->tiles);
    gs_free(s->captions);
    gs_arena_destroy(&s->arena);
    gs_free(s);
    *p = NULL;
}
