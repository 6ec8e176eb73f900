// Private helpers of index/vindex.c that need no FAISS: an id hash set and per-query top-k
// heaps. Module-private (index/ only).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// ---- id set ---------------------------------------------------------------------------------
// Open addressing over uint64 ids with UINT64_MAX as the empty slot (never a valid id), kept
// at most half full. Not thread-safe (vindex guards it with its lock).
typedef struct {
    uint64_t *slots; // (cap,) owned
    size_t cap;      // power of two or 0
    size_t n;        // ids stored
} gs__idset_t;

// gs__idset_init: empty set (no allocation).
void gs__idset_init(gs__idset_t *self);
void gs__idset_cleanup(gs__idset_t *self);
// gs__idset_reserve: room for n_more further ids without rehashing. GS_ENOMEM.
gs_err gs__idset_reserve(gs__idset_t *self, size_t n_more);
// gs__idset_add: 1 when inserted, 0 when present. Call gs__idset_reserve first (asserts room).
int gs__idset_add(gs__idset_t *self, uint64_t id);
// gs__idset_has: 1 if present.
int gs__idset_has(const gs__idset_t *self, uint64_t id);
// gs__idset_clear: forget all ids, keep the memory.
void gs__idset_clear(gs__idset_t *self);

// ---- top-k ----------------------------------------------------------------------------------
// A min-heap of (score, id) with capacity k living in caller arrays (the output rows of one
// query), so selecting the best k of a stream needs no extra memory. Ties: the smaller id wins.
typedef struct {
    float *scores;  // (k,)
    uint64_t *ids;  // (k,)
    size_t k, n;
} gs__topk_t;

void gs__topk_init(gs__topk_t *self, float *scores, uint64_t *ids, size_t k);
void gs__topk_push(gs__topk_t *self, float score, uint64_t id);
// gs__topk_finish: sorts best first and pads slots n..k-1 with (-INFINITY, UINT64_MAX).
void gs__topk_finish(gs__topk_t *self);
