// The frozen 64-bit hash behind scene ids, tile ids, spec hashes and quick checksums (hash.h).
#include "jobs/hash.h"

#include <string.h>

uint64_t gs_hash_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

static uint64_t load_le64(const unsigned char *b, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)b[i] << (8 * i);
    return w;
}

uint64_t gs_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = gs_hash_mix64(seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL));
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = gs_hash_mix64(h ^ load_le64(b + i, 8));
    if (i < n)
        h = gs_hash_mix64(h ^ load_le64(b + i, n - i));
    return gs_hash_mix64(h ^ 0x2545F4914F6CDD1DULL);
}

uint64_t gs_hash_str(const char *s, uint64_t seed)
{
    return gs_hash_bytes(s, strlen(s), seed);
}
