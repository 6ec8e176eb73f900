// Capped growable buffer and JSON string escaping.
#include "common/buf.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

void gs_buf_init(gs_buf_t *self, size_t cap)
{
    self->data = NULL;
    self->len = 0;
    self->alloc = 0;
    self->cap = cap;
}

void gs_buf_cleanup(gs_buf_t *self)
{
    gs_free(self->data);
    gs_buf_init(self, self->cap);
}

void gs_buf_reset(gs_buf_t *self)
{
    self->len = 0;
    if (self->data)
        self->data[0] = '\0';
}

static gs_err reserve(gs_buf_t *self, size_t n)
{
    if (n > self->cap || self->len + n > self->cap)
        return GS_ETOOBIG;
    size_t need = self->len + n + 1;
    if (need <= self->alloc)
        return GS_OK;
    size_t a = self->alloc ? self->alloc : 64;
    while (a < need)
        a *= 2;
    if (a > self->cap + 1)
        a = self->cap + 1;
    char *p = gs_tryrealloc(self->data, a);
    if (!p)
        return GS_ENOMEM;
    self->data = p;
    self->alloc = a;
    return GS_OK;
}

gs_err gs_buf_append(gs_buf_t *self, const void *p, size_t n)
{
    GS_TRY(reserve(self, n));
    if (n)
        memcpy(self->data + self->len, p, n);
    self->len += n;
    self->data[self->len] = '\0';
    return GS_OK;
}

gs_err gs_buf_puts(gs_buf_t *self, const char *s) { return gs_buf_append(self, s, strlen(s)); }

gs_err gs_buf_vprintf(gs_buf_t *self, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return GS_EINVAL;
    gs_err e = reserve(self, (size_t)n);
    if (e != GS_OK)
        return e;
    vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
    self->len += (size_t)n;
    return GS_OK;
}

gs_err gs_buf_printf(gs_buf_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gs_err e = gs_buf_vprintf(self, fmt, ap);
    va_end(ap);
    return e;
}

// Length of a valid UTF-8 sequence starting at s (max n bytes), or 0 if invalid.
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
        c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
        c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return len;
}

gs_err gs_buf_json_strn(gs_buf_t *self, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    GS_TRY(gs_buf_append(self, "\"", 1));
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            GS_TRY(gs_buf_append(self, esc, 2));
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            const char *e = NULL;
            switch (c) {
            case '\n': e = "\\n"; break;
            case '\t': e = "\\t"; break;
            case '\r': e = "\\r"; break;
            case '\b': e = "\\b"; break;
            case '\f': e = "\\f"; break;
            default: break;
            }
            if (e)
                GS_TRY(gs_buf_puts(self, e));
            else
                GS_TRY(gs_buf_printf(self, "\\u%04x", c));
            i++;
        } else {
            size_t l = utf8_len(u + i, n - i);
            if (l == 0) {
                GS_TRY(gs_buf_puts(self, "\xEF\xBF\xBD"));
                i++;
            } else {
                GS_TRY(gs_buf_append(self, u + i, l));
                i += l;
            }
        }
    }
    return gs_buf_append(self, "\"", 1);
}

gs_err gs_buf_json_str(gs_buf_t *self, const char *s) { return gs_buf_json_strn(self, s, strlen(s)); }

char *gs_buf_steal(gs_buf_t *self)
{
    char *p = self->data;
    if (!p)
        p = gs_xstrdup("");
    gs_buf_init(self, self->cap);
    return p;
}
