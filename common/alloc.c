// Allocators and arenas. The only file that calls malloc/realloc/free directly.
#include "common/alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t n)
{
    fprintf(stderr, "geoscribe: out of memory allocating %zu bytes\n", n);
    abort();
}

void *gs_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *gs_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *gs_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *gs_xstrdup(const char *s) { return gs_xstrndup(s, strlen(s)); }

char *gs_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = gs_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *gs_xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = gs_xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void *gs_trymalloc(size_t n) { return malloc(n ? n : 1); }

void *gs_trycalloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *gs_tryrealloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

void *gs_tryalloc_aligned(size_t align, size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : 1) != 0)
        return NULL;
    return p;
}

void gs_free(void *p) { free(p); }

// ---- arena --------------------------------------------------------------------------------

#define ARENA_ALIGN 64

typedef struct block {
    struct block *next;
    size_t size; // usable bytes after the header
    size_t used;
} block_t;

struct gs_arena {
    block_t *head; // current block (most recent first)
    size_t block_nbytes;
    size_t cap_nbytes;
    size_t total_nbytes; // sum of block sizes
    size_t used_nbytes;
};

static size_t hdr_size(void) { return (sizeof(block_t) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static block_t *block_new(size_t size)
{
    block_t *b = gs_tryalloc_aligned(ARENA_ALIGN, hdr_size() + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

gs_arena_t *gs_arena_new(size_t block_nbytes, size_t cap_nbytes)
{
    gs_arena_t *a = gs_xcalloc(1, sizeof *a);
    a->block_nbytes = block_nbytes ? block_nbytes : 64 * 1024;
    a->cap_nbytes = cap_nbytes;
    a->head = block_new(a->block_nbytes);
    if (!a->head)
        oom(a->block_nbytes);
    a->total_nbytes = a->block_nbytes;
    return a;
}

void gs_arena_destroy(gs_arena_t **p)
{
    if (!p || !*p)
        return;
    block_t *b = (*p)->head;
    while (b) {
        block_t *n = b->next;
        free(b);
        b = n;
    }
    free(*p);
    *p = NULL;
}

void *gs_arena_alloc(gs_arena_t *self, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n)
        return NULL;
    if (self->cap_nbytes && self->used_nbytes + need > self->cap_nbytes)
        return NULL;
    block_t *b = self->head;
    if (b->size - b->used < need) {
        size_t size = need > self->block_nbytes ? need : self->block_nbytes;
        block_t *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->next = b;
        self->head = nb;
        self->total_nbytes += size;
        b = nb;
    }
    void *p = (char *)b + hdr_size() + b->used;
    b->used += need;
    self->used_nbytes += need;
    return p;
}

void *gs_arena_calloc(gs_arena_t *self, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = gs_arena_alloc(self, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *gs_arena_strndup(gs_arena_t *self, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = gs_arena_alloc(self, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *gs_arena_strdup(gs_arena_t *self, const char *s) { return gs_arena_strndup(self, s, SIZE_MAX); }

void gs_arena_reset(gs_arena_t *self)
{
    // keep the oldest (first) block, which has the configured size
    block_t *b = self->head;
    while (b->next) {
        block_t *n = b->next;
        self->total_nbytes -= b->size;
        free(b);
        b = n;
    }
    b->used = 0;
    self->head = b;
    self->used_nbytes = 0;
}

size_t gs_arena_used(const gs_arena_t *self) { return self->used_nbytes; }
