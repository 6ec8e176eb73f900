// Search results as JSON lines and GeoJSON; parsers of times, boxes and ids (query/format.h).
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "query/format.h"

// ---- numbers ------------------------------------------------------------------------------
// The hot path of k = 10,000 hits: every number is printed once into a local buffer and
// appended (gs_buf_printf would format twice), and a hit's four coordinates are printed once
// for both its bbox and its footprint.

// coord_str: the shortest of %.15g / %.17g that reads back as the same double, so that a printed
// box compares exactly like the stored one (filters are checked on the printed output).
static size_t coord_str(double v, char *out)
{
    int n = snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        n = snprintf(out, 32, "%.17g", v);
    return (size_t)n;
}

static size_t u64_str(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#define PUT(b, lit) gs_buf_append((b), (lit), sizeof(lit) - 1)
// CAT: appends a string literal to the local buffer t at n.
#define CAT(t, n, lit) (memcpy((t) + (n), (lit), sizeof(lit) - 1), (n) += sizeof(lit) - 1)

typedef struct {
    char c[4][32];
    size_t n[4];
} coords_t;

static void hit_coords(const gs_search_hit_t *h, coords_t *c)
{
    for (int i = 0; i < 4; i++)
        c->n[i] = coord_str(h->bbox[i], c->c[i]);
}

static gs_err str_or_null(gs_buf_t *b, const char *s, bool present)
{
    return present ? gs_buf_json_str(b, s) : PUT(b, "null");
}

// fields: the properties shared by JSON lines and GeoJSON (no braces).
static gs_err fields(gs_buf_t *b, const gs_search_hit_t *h, const coords_t *c)
{
    char t[160];
    size_t n = 0;
    n = 0, CAT(t, n, "\"rank\":");
    n += u64_str(h->rank, t + n);
    CAT(t, n, ",\"tile_id\":\"");
    n += u64_str(h->tile_id, t + n);
    n += (size_t)snprintf(t + n, sizeof t - n, "\",\"score\":%.6f,\"scene\":", (double)h->score);
    GS_TRY(gs_buf_append(b, t, n));
    GS_TRY(gs_buf_json_str(b, h->scene_uri ? h->scene_uri : ""));
    n = 0, CAT(t, n, ",\"scene_id\":\"");
    n += u64_str(h->scene_id, t + n);
    CAT(t, n, "\",\"time\":");
    if (h->has_time) {
        t[n++] = '"';
        gs_qtime_format(h->time_unix, t + n, 32);
        n += strlen(t + n);
        t[n++] = '"';
    } else {
        CAT(t, n, "null");
    }
    CAT(t, n, ",\"bbox\":[");
    GS_TRY(gs_buf_append(b, t, n));
    for (int i = 0; i < 4; i++) {
        if (i)
            GS_TRY(PUT(b, ","));
        GS_TRY(gs_buf_append(b, c->c[i], c->n[i]));
    }
    GS_TRY(PUT(b, "],\"caption\":"));
    return str_or_null(b, h->caption, h->caption != NULL);
}

gs_err gs_qfmt_hit_json(gs_buf_t *out, const gs_search_hit_t *h)
{
    coords_t c;
    hit_coords(h, &c);
    GS_TRY(PUT(out, "{"));
    GS_TRY(fields(out, h, &c));
    return PUT(out, "}");
}

// ring: one closed ring [[w,s],[e,s],[e,n],[w,n],[w,s]] of the printed coordinates (x0, x1 the
// west and east ends, as indexes into c, or -1 / -2 for 180 / -180).
static gs_err ring(gs_buf_t *b, const coords_t *c, int xw, int xe)
{
    const char *xs[2] = {xw == -2 ? "-180" : c->c[xw], xe == -1 ? "180" : c->c[xe]};
    size_t xn[2] = {xw == -2 ? 4 : c->n[xw], xe == -1 ? 3 : c->n[xe]};
    static const int order[5][2] = {{0, 1}, {1, 1}, {1, 3}, {0, 3}, {0, 1}}; // (x end, y index)
    GS_TRY(PUT(b, "[["));
    for (int i = 0; i < 5; i++) {
        GS_TRY(i ? PUT(b, ",[") : PUT(b, "["));
        GS_TRY(gs_buf_append(b, xs[order[i][0]], xn[order[i][0]]));
        GS_TRY(PUT(b, ","));
        GS_TRY(gs_buf_append(b, c->c[order[i][1]], c->n[order[i][1]]));
        GS_TRY(PUT(b, "]"));
    }
    return PUT(b, "]]");
}

static gs_err feature(gs_buf_t *b, const gs_search_hit_t *h)
{
    coords_t c;
    hit_coords(h, &c);
    char t[64];
    size_t n = 0;
    n = 0, CAT(t, n, "{\"type\":\"Feature\",\"id\":");
    n += u64_str(h->rank, t + n);
    CAT(t, n, ",\"geometry\":");
    GS_TRY(gs_buf_append(b, t, n));
    if (h->bbox[0] <= h->bbox[2]) {
        GS_TRY(PUT(b, "{\"type\":\"Polygon\",\"coordinates\":"));
        GS_TRY(ring(b, &c, 0, 2));
    } else { // across the antimeridian: two parts (RFC 7946 section 3.1.9)
        GS_TRY(PUT(b, "{\"type\":\"MultiPolygon\",\"coordinates\":["));
        GS_TRY(ring(b, &c, 0, -1));
        GS_TRY(PUT(b, ","));
        GS_TRY(ring(b, &c, -2, 2));
        GS_TRY(PUT(b, "]"));
    }
    GS_TRY(PUT(b, "},\"properties\":{"));
    GS_TRY(fields(b, h, &c));
    return PUT(b, "}}");
}

gs_err gs_qfmt_results(gs_buf_t *out, const gs_search_hit_t *hits, size_t n, bool geojson)
{
    if (!geojson) {
        for (size_t i = 0; i < n; i++) {
            GS_TRY(gs_qfmt_hit_json(out, &hits[i]));
            GS_TRY(PUT(out, "\n"));
        }
        return GS_OK;
    }
    GS_TRY(PUT(out, "{\"type\":\"FeatureCollection\",\"features\":["));
    for (size_t i = 0; i < n; i++) {
        if (i)
            GS_TRY(PUT(out, ","));
        GS_TRY(feature(out, &hits[i]));
    }
    return PUT(out, "]}\n");
}

// ---- time -----------------------------------------------------------------------------------

// days_from_civil: days since 1970-01-01 of a proleptic Gregorian date (m 1..12).
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void gs_qtime_format(int64_t t, char *out, size_t out_nbytes)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t sec = t - days * 86400, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || out_nbytes < 21) { // outside the four-digit years: the slow way
        snprintf(out, out_nbytes, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
                 (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
        return;
    }
    const int f[6] = {(int)y, m, d, (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60)};
    char *p = out;
    for (int i = 0; i < 6; i++) {
        int v = f[i];
        if (i == 0) {
            *p++ = (char)('0' + v / 1000), *p++ = (char)('0' + v / 100 % 10);
        }
        *p++ = (char)('0' + v / 10 % 10), *p++ = (char)('0' + v % 10);
        *p++ = "--T::Z"[i];
    }
    *p = '\0';
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

// digits: exactly n digits at *p into *out; advances *p.
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

gs_err gs_qtime_parse(const char *s, bool end, int64_t *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s)
        return GS_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    const char *p = s;
    int y, mo = 1, d = 1, h = 0, mi = 0, se = 0, level = 0; // level: 0 y, 1 m, 2 d, 3 min, 4 s
    if (!digits(&p, 4, &y))
        return GS_EINVAL;
    if (*p == '-') {
        p++;
        if (!digits(&p, 2, &mo))
            return GS_EINVAL;
        level = 1;
        if (*p == '-') {
            p++;
            if (!digits(&p, 2, &d))
                return GS_EINVAL;
            level = 2;
        }
    }
    if (level == 2 && (*p == 'T' || *p == 't' || *p == ' ') && isdigit((unsigned char)p[1])) {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return GS_EINVAL;
        level = 3;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &se))
                return GS_EINVAL;
            level = 4;
            if (*p == '.' || *p == ',') { // fractions of a second: ignored (whole seconds)
                p++;
                if (!isdigit((unsigned char)*p))
                    return GS_EINVAL;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
    }
    int64_t off = 0;
    if (level >= 3 && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (level >= 3 && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!digits(&p, 2, &oh))
            return GS_EINVAL;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && !digits(&p, 2, &om))
            return GS_EINVAL;
        if (oh > 23 || om > 59)
            return GS_EINVAL;
        off = sign * (oh * 3600 + om * 60);
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return GS_EINVAL;
    int dim = mo >= 1 && mo <= 12 ? mdays[mo - 1] + (mo == 2 && is_leap(y)) : 0;
    if (mo < 1 || mo > 12 || d < 1 || d > dim || h > 23 || mi > 59 || se > 60)
        return GS_EINVAL;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (end) { // the last second of the period named
        static const int64_t span[5] = {0, 0, 86400, 60, 1};
        if (level == 0)
            t = days_from_civil(y + 1, 1, 1) * 86400;
        else if (level == 1)
            t = days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) * 86400;
        else
            t += span[level];
        t -= 1;
    }
    *out = t;
    return GS_OK;
}

// ---- boxes and ids --------------------------------------------------------------------------

gs_err gs_qbbox_parse(const char *s, double out[4])
{
    if (!s)
        return GS_EINVAL;
    double v[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        char *end = NULL;
        errno = 0;
        v[i] = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v[i]))
            return GS_EINVAL;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (i < 3 && *p++ != ',')
            return GS_EINVAL;
    }
    if (*p)
        return GS_EINVAL;
    memcpy(out, v, sizeof v);
    return GS_OK;
}

gs_err gs_qid_parse(const char *s, uint64_t *out)
{
    uint64_t v;
    if (!s)
        return GS_EINVAL;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        char *end = NULL;
        if (!isxdigit((unsigned char)s[2]))
            return GS_EINVAL;
        errno = 0;
        v = strtoull(s + 2, &end, 16);
        if (*end || errno == ERANGE)
            return GS_EINVAL;
    } else if (gs_parse_u64(s, &v) != GS_OK) {
        return GS_EINVAL;
    }
    if (v == 0 || v > (uint64_t)INT64_MAX)
        return GS_EINVAL;
    *out = v;
    return GS_OK;
}
