// Strict parsing and environment access.
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_blank(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

static bool only_blank(const char *s) { return *skip_blank(s) == '\0'; }

gs_err gs_parse_i64(const char *s, int64_t *out)
{
    if (!s || only_blank(s))
        return GS_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !only_blank(end))
        return GS_EINVAL;
    *out = v;
    return GS_OK;
}

gs_err gs_parse_u64(const char *s, uint64_t *out)
{
    if (!s)
        return GS_EINVAL;
    s = skip_blank(s);
    if (*s == '-' || *s == '\0')
        return GS_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !only_blank(end))
        return GS_EINVAL;
    *out = v;
    return GS_OK;
}

gs_err gs_parse_int(const char *s, int lo, int hi, int *out)
{
    int64_t v;
    GS_TRY(gs_parse_i64(s, &v));
    if (v < lo || v > hi)
        return GS_EINVAL;
    *out = (int)v;
    return GS_OK;
}

gs_err gs_parse_f64(const char *s, double *out)
{
    if (!s || only_blank(s))
        return GS_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !only_blank(end) || !isfinite(v))
        return GS_EINVAL;
    *out = v;
    return GS_OK;
}

gs_err gs_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    if (!s)
        return GS_EINVAL;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return GS_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return GS_OK;
        }
    }
    return GS_EINVAL;
}

gs_err gs_parse_size(const char *s, uint64_t *out)
{
    if (!s)
        return GS_EINVAL;
    s = skip_blank(s);
    if (!isdigit((unsigned char)*s))
        return GS_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return GS_EINVAL;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && (*end == 'B' || *end == 'b'))
        end++;
    if (!only_blank(end))
        return GS_EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return GS_EINVAL;
    *out = (uint64_t)v << shift;
    return GS_OK;
}

const char *gs_getenv(const char *name) { return getenv(name); }

int gs_getenv_int(const char *name, int dflt, int lo, int hi)
{
    int v;
    const char *s = getenv(name);
    if (!s || gs_parse_int(s, lo, hi, &v) != GS_OK)
        return dflt;
    return v;
}

gs_err gs_split_kv(const char *s, char *out_key, size_t key_nbytes, char *out_val,
                   size_t val_nbytes)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return GS_EINVAL;
    size_t klen = (size_t)(eq - s);
    size_t vlen = strlen(eq + 1);
    if (klen + 1 > key_nbytes || vlen + 1 > val_nbytes)
        return GS_ETOOBIG;
    memcpy(out_key, s, klen);
    out_key[klen] = '\0';
    memcpy(out_val, eq + 1, vlen + 1);
    return GS_OK;
}
