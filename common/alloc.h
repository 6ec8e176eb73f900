// Allocators. gs_x* abort on out-of-memory (small, program-sized allocations); gs_try* return
// NULL so input-sized buffers (pixels, weights, batches) can fail with GS_ENOMEM. Raw malloc is
// used nowhere else in geoscribe. All memory is released with gs_free.
#pragma once

#include <stddef.h>

void *gs_xmalloc(size_t n);
void *gs_xcalloc(size_t n, size_t size);
void *gs_xrealloc(void *p, size_t n);
char *gs_xstrdup(const char *s);
char *gs_xstrndup(const char *s, size_t n);
// gs_xasprintf: a newly allocated formatted string; caller frees with gs_free.
char *gs_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Fallible variants: NULL on failure (or on n*size overflow).
void *gs_trymalloc(size_t n);
void *gs_trycalloc(size_t n, size_t size);
void *gs_tryrealloc(void *p, size_t n);
// gs_tryalloc_aligned: `align` is a power of two >= sizeof(void *); free with gs_free.
void *gs_tryalloc_aligned(size_t align, size_t n);

void gs_free(void *p);

// GS_FREE: free and NULL a pointer variable.
#define GS_FREE(p)       \
    do {                 \
        gs_free(p);      \
        (p) = NULL;      \
    } while (0)

// ---- arena --------------------------------------------------------------------------------
// A bump allocator for one unit of work (a task, a request, a forward pass): allocate freely,
// release everything at once with gs_arena_reset. Blocks are 64-byte aligned. Not thread-safe.
typedef struct gs_arena gs_arena_t;

// gs_arena_new: an arena whose total size may grow up to `cap_nbytes` (0 = unlimited), starting
// with one block of `block_nbytes`. Aborts on OOM.
gs_arena_t *gs_arena_new(size_t block_nbytes, size_t cap_nbytes);
// gs_arena_destroy: frees all blocks; NULLs *p; accepts NULL.
void gs_arena_destroy(gs_arena_t **p);
// gs_arena_alloc: n bytes aligned to 64 (uninitialised), valid until reset/destroy; NULL when the
// cap would be exceeded or memory is exhausted.
void *gs_arena_alloc(gs_arena_t *self, size_t n);
// gs_arena_calloc: zeroed; NULL on overflow, cap or OOM.
void *gs_arena_calloc(gs_arena_t *self, size_t n, size_t size);
// gs_arena_strdup: copy of s (or of its first n bytes with _strndup); NULL on cap/OOM.
char *gs_arena_strdup(gs_arena_t *self, const char *s);
char *gs_arena_strndup(gs_arena_t *self, const char *s, size_t n);
// gs_arena_reset: forget all allocations; keeps the first block for reuse, frees the rest.
void gs_arena_reset(gs_arena_t *self);
// gs_arena_used: bytes handed out since the last reset.
size_t gs_arena_used(const gs_arena_t *self);
