// Raw vector files (index/vecfile.h): a 32-byte header, the ids, the vectors, all little-endian.
//   0  magic "GSVEC\0\0\0"    8  u32 version (1)    12 u32 dim
//   16 u64 n                  24 u64 FNV-1a 64 of everything after the header
//   32 n x u64 ids, then n x dim x f32 vectors
// The checksum catches a torn or truncated shard before its vectors reach the index.
#define GS_LOG_MODULE "index"

#include "index/vecfile.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"

#define HEADER 32
#define VERSION 1
static const char magic[8] = {'G', 'S', 'V', 'E', 'C', 0, 0, 0};

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
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

// The payload is written and read as host memory: geoscribe runs on little-endian machines
// (x86-64, arm64); a big-endian host is refused rather than silently misread.
static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

gs_err gs_vecfile_write(const char *path, int dim, size_t n, const uint64_t *ids,
                        const float *vecs, char out_hash[17])
{
    if (dim <= 0 || (n > 0 && (!ids || !vecs)) || !little_endian())
        return GS_EINVAL;
    size_t row = 8 + (size_t)dim * 4;
    if (n > (GS_VECFILE_MAX_NBYTES - HEADER) / row)
        return GS_ETOOBIG;
    size_t total = HEADER + n * row;
    uint8_t *buf = gs_trymalloc(total);
    if (!buf)
        return GS_ENOMEM;
    if (n > 0) {
        memcpy(buf + HEADER, ids, n * 8);
        memcpy(buf + HEADER + n * 8, vecs, n * (size_t)dim * 4);
    }
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, buf + HEADER, total - HEADER);
    memcpy(buf, magic, 8);
    put_u32(buf + 8, VERSION);
    put_u32(buf + 12, (uint32_t)dim);
    put_u64(buf + 16, n);
    put_u64(buf + 24, h);
    gs_err e = gs_write_file_atomic(path, buf, total);
    gs_free(buf);
    if (e == GS_OK && out_hash)
        snprintf(out_hash, 17, "%016llx", (unsigned long long)h);
    return e;
}

gs_err gs_vecfile_read(const char *path, int *out_dim, size_t *out_n, uint64_t **out_ids,
                       float **out_vecs)
{
    *out_dim = 0;
    *out_n = 0;
    *out_ids = NULL;
    *out_vecs = NULL;
    char *data = NULL;
    size_t nbytes = 0;
    GS_TRY(gs_read_file(path, GS_VECFILE_MAX_NBYTES, &data, &nbytes));
    const uint8_t *p = (const uint8_t *)data;
    gs_err e = GS_OK;
    uint32_t dim = 0;
    uint64_t n = 0;
    if (nbytes < HEADER || memcmp(p, magic, 8) != 0 || get_u32(p + 8) != VERSION) {
        GS_LOG_ERROR("\"%s\" is not a vector file (bad magic or version)", path);
        e = GS_EFORMAT;
    } else {
        dim = get_u32(p + 12);
        n = get_u64(p + 16);
        uint64_t row = 8 + (uint64_t)dim * 4;
        if (dim == 0 || dim > 65536 || n > (nbytes - HEADER) / row ||
            HEADER + n * row != nbytes) {
            GS_LOG_ERROR("vector file \"%s\" is truncated or has bad sizes (dim %u, n %llu, "
                         "%zu bytes)", path, dim, (unsigned long long)n, nbytes);
            e = GS_EFORMAT;
        } else if (fnv1a(0xcbf29ce484222325ULL, p + HEADER, nbytes - HEADER) != get_u64(p + 24)) {
            GS_LOG_ERROR("vector file \"%s\" fails its checksum", path);
            e = GS_EFORMAT;
        } else if (!little_endian()) {
            e = GS_EFORMAT;
        }
    }
    if (e == GS_OK && n > 0) {
        *out_ids = gs_trymalloc(n * 8);
        *out_vecs = gs_trymalloc(n * dim * 4);
        if (!*out_ids || !*out_vecs) {
            GS_FREE(*out_ids);
            GS_FREE(*out_vecs);
            e = GS_ENOMEM;
        } else {
            memcpy(*out_ids, p + HEADER, n * 8);
            memcpy(*out_vecs, p + HEADER + n * 8, n * dim * 4);
        }
    }
    if (e == GS_OK) {
        *out_dim = (int)dim;
        *out_n = (size_t)n;
    }
    gs_free(data);
    return e;
}
