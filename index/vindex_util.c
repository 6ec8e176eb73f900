// The id hash set and top-k heaps behind index/vindex.c (no FAISS here).
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "index/vindex_int.h"

#define EMPTY UINT64_MAX

// splitmix64 finaliser: tile ids are already hashes, but sequential ids (tests, shards) must not
// cluster in the table.
static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

void gs__idset_init(gs__idset_t *self)
{
    self->slots = NULL;
    self->cap = 0;
    self->n = 0;
}

void gs__idset_cleanup(gs__idset_t *self)
{
    gs_free(self->slots);
    gs__idset_init(self);
}

void gs__idset_clear(gs__idset_t *self)
{
    if (self->slots)
        memset(self->slots, 0xff, self->cap * sizeof *self->slots);
    self->n = 0;
}

static void insert_raw(uint64_t *slots, size_t cap, uint64_t id)
{
    size_t m = cap - 1, i = (size_t)mix(id) & m;
    while (slots[i] != EMPTY)
        i = (i + 1) & m;
    slots[i] = id;
}

gs_err gs__idset_reserve(gs__idset_t *self, size_t n_more)
{
    size_t need = self->n + n_more;
    if (need < self->n)
        return GS_ENOMEM;
    if (self->cap && need <= self->cap / 2)
        return GS_OK;
    size_t cap = self->cap ? self->cap : 64;
    while (cap / 2 < need) {
        if (cap > SIZE_MAX / 4)
            return GS_ENOMEM;
        cap *= 2;
    }
    uint64_t *slots = gs_trymalloc(cap * sizeof *slots);
    if (!slots)
        return GS_ENOMEM;
    memset(slots, 0xff, cap * sizeof *slots);
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i] != EMPTY)
            insert_raw(slots, cap, self->slots[i]);
    gs_free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return GS_OK;
}

int gs__idset_add(gs__idset_t *self, uint64_t id)
{
    GS_ASSERT(self->cap && self->n + 1 <= self->cap / 2 && id != EMPTY);
    size_t m = self->cap - 1, i = (size_t)mix(id) & m;
    while (self->slots[i] != EMPTY) {
        if (self->slots[i] == id)
            return 0;
        i = (i + 1) & m;
    }
    self->slots[i] = id;
    self->n++;
    return 1;
}

int gs__idset_has(const gs__idset_t *self, uint64_t id)
{
    if (!self->cap || id == EMPTY)
        return 0;
    size_t m = self->cap - 1, i = (size_t)mix(id) & m;
    while (self->slots[i] != EMPTY) {
        if (self->slots[i] == id)
            return 1;
        i = (i + 1) & m;
    }
    return 0;
}

// ---- top-k ----------------------------------------------------------------------------------

// worse(a, b): a ranks below b (lower score, or equal score and larger id).
static inline int worse(float sa, uint64_t ia, float sb, uint64_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

void gs__topk_init(gs__topk_t *self, float *scores, uint64_t *ids, size_t k)
{
    self->scores = scores;
    self->ids = ids;
    self->k = k;
    self->n = 0;
}

static void sift_down(float *s, uint64_t *d, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(s[l], d[l], s[w], d[w]))
            w = l;
        if (r < n && worse(s[r], d[r], s[w], d[w]))
            w = r;
        if (w == i)
            return;
        float ts = s[i];
        s[i] = s[w];
        s[w] = ts;
        uint64_t td = d[i];
        d[i] = d[w];
        d[w] = td;
        i = w;
    }
}

void gs__topk_push(gs__topk_t *self, float score, uint64_t id)
{
    float *s = self->scores;
    uint64_t *d = self->ids;
    if (self->n < self->k) {
        size_t i = self->n++;
        s[i] = score;
        d[i] = id;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(s[i], d[i], s[p], d[p]))
                break;
            float ts = s[i];
            s[i] = s[p];
            s[p] = ts;
            uint64_t td = d[i];
            d[i] = d[p];
            d[p] = td;
            i = p;
        }
    } else if (self->k > 0 && worse(s[0], d[0], score, id)) {
        s[0] = score;
        d[0] = id;
        sift_down(s, d, self->n, 0);
    }
}

void gs__topk_finish(gs__topk_t *self)
{
    float *s = self->scores;
    uint64_t *d = self->ids;
    // Heap sort on a min-heap: moving the worst to the end leaves the best first.
    for (size_t n = self->n; n > 1; n--) {
        float ts = s[0];
        s[0] = s[n - 1];
        s[n - 1] = ts;
        uint64_t td = d[0];
        d[0] = d[n - 1];
        d[n - 1] = td;
        sift_down(s, d, n - 1, 0);
    }
    for (size_t i = self->n; i < self->k; i++) {
        s[i] = -INFINITY;
        d[i] = EMPTY;
    }
}
