// A growable byte buffer with a hard cap (curl dynbuf): appends past the cap fail with
// GS_ETOOBIG and leave the buffer as it was. Used for JSON output, messages, captions.
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "common/err.h"

typedef struct {
    char *data;   // NUL-terminated when len > 0 or after any append; owned
    size_t len;   // bytes used, excluding the terminator
    size_t alloc; // bytes allocated
    size_t cap;   // maximum len
} gs_buf_t;

// gs_buf_init: an empty buffer that may hold up to `cap` bytes. No allocation yet.
void gs_buf_init(gs_buf_t *self, size_t cap);
// gs_buf_cleanup: frees the data; the buffer may be re-initialised.
void gs_buf_cleanup(gs_buf_t *self);
// gs_buf_reset: length 0, keeps the memory.
void gs_buf_reset(gs_buf_t *self);
// Appends: GS_OK, GS_ETOOBIG (cap reached), GS_ENOMEM.
gs_err gs_buf_append(gs_buf_t *self, const void *p, size_t n);
gs_err gs_buf_puts(gs_buf_t *self, const char *s);
gs_err gs_buf_printf(gs_buf_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
gs_err gs_buf_vprintf(gs_buf_t *self, const char *fmt, va_list ap);
// gs_buf_json_str: append s as a JSON string literal (quotes included), escaping control
// characters, quotes and backslashes; invalid UTF-8 bytes become U+FFFD.
gs_err gs_buf_json_str(gs_buf_t *self, const char *s);
// gs_buf_json_strn: the same for the first n bytes of s (s may hold NULs).
gs_err gs_buf_json_strn(gs_buf_t *self, const char *s, size_t n);
// gs_buf_steal: hands the data to the caller (free with gs_free) and re-initialises the buffer.
char *gs_buf_steal(gs_buf_t *self);
