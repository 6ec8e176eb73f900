// Search results as JSON lines and GeoJSON; parsers of times, boxes and ids (query/format.h).
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "query/format.h"

// ---- numbers --------------------------------------------------------------------------------

// coord: the shortest of %.15g / %.16g / %.17g that reads back as the same double, so that a
// printed box compares exactly like the stored one (filters are tested on the printed output).
static gs_err coord(gs_buf_t *b, double v)
{
    char s[40];
    for (int p = 15; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, v);
        if (strtod(s, NULL) == v)
            break;
    }
    return gs_buf_puts(b, s);
}

static gs_err str_or_null(gs_buf_t *b, const char *s, bool present)
{
    return present ? gs_buf_json_str(b, s) : gs_buf_puts(b, "null");
}

// fields: the properties shared by JSON lines and GeoJSON (no braces).
static gs_err fields(gs_buf_t *b, const gs_search_hit_t *h)
{
    char t[40];
    gs_qtime_format(h->time_unix, t, sizeof t);
    GS_TRY(gs_buf_printf(b, "\"rank\":%u,\"tile_id\":\"%llu\",\"score\":%.6f,\"scene\":", h->rank,
                         (unsigned long long)h->tile_id, (double)h->score));
    GS_TRY(gs_buf_json_str(b, h->scene_uri ? h->scene_uri : ""));
    GS_TRY(gs_buf_printf(b, ",\"scene_id\":\"%llu\",\"time\":", (unsigned long long)h->scene_id));
    GS_TRY(str_or_null(b, t, h->has_time));
    GS_TRY(gs_buf_puts(b, ",\"bbox\":["));
    for (int i = 0; i < 4; i++) {
        if (i)
            GS_TRY(gs_buf_puts(b, ","));
        GS_TRY(coord(b, h->bbox[i]));
    }
    GS_TRY(gs_buf_puts(b, "],\"caption\":"));
    return str_or_null(b, h->caption, h->caption != NULL);
}

gs_err gs_qfmt_hit_json(gs_buf_t *out, const gs_search_hit_t *h)
{
    GS_TRY(gs_buf_puts(out, "{"));
    GS_TRY(fields(out, h));
    return gs_buf_puts(out, "}");
}

// ring: one closed ring [[w,s],[e,s],[e,n],[w,n],[w,s]].
static gs_err ring(gs_buf_t *b, double w, double s, double e, double n)
{
    const double pts[5][2] = {{w, s}, {e, s}, {e, n}, {w, n}, {w, s}};
    GS_TRY(gs_buf_puts(b, "[["));
    for (int i = 0; i < 5; i++) {
        GS_TRY(gs_buf_puts(b, i ? ",[" : "["));
        GS_TRY(coord(b, pts[i][0]));
        GS_TRY(gs_buf_puts(b, ","));
        GS_TRY(coord(b, pts[i][1]));
        GS_TRY(gs_buf_puts(b, "]"));
    }
    return gs_buf_puts(b, "]]");
}

static gs_err feature(gs_buf_t *b, const gs_search_hit_t *h)
{
    const double *x = h->bbox;
    GS_TRY(gs_buf_printf(b, "{\"type\":\"Feature\",\"id\":%u,\"geometry\":", h->rank));
    if (x[0] <= x[2]) {
        GS_TRY(gs_buf_puts(b, "{\"type\":\"Polygon\",\"coordinates\":"));
        GS_TRY(ring(b, x[0], x[1], x[2], x[3]));
    } else { // across the antimeridian: two parts (RFC 7946 section 3.1.9)
        GS_TRY(gs_buf_puts(b, "{\"type\":\"MultiPolygon\",\"coordinates\":["));
        GS_TRY(ring(b, x[0], x[1], 180.0, x[3]));
        GS_TRY(gs_buf_puts(b, ","));
        GS_TRY(ring(b, -180.0, x[1], x[2], x[3]));
        GS_TRY(gs_buf_puts(b, "]"));
    }
    GS_TRY(gs_buf_puts(b, "},\"properties\":{"));
    GS_TRY(fields(b, h));
    return gs_buf_puts(b, "}}");
}

gs_err gs_qfmt_results(gs_buf_t *out, const gs_search_hit_t *hits, size_t n, bool geojson)
{
    if (!geojson) {
        for (size_t i = 0; i < n; i++) {
            GS_TRY(gs_qfmt_hit_json(out, &hits[i]));
            GS_TRY(gs_buf_puts(out, "\n"));
        }
        return GS_OK;
    }
    GS_TRY(gs_buf_puts(out, "{\"type\":\"FeatureCollection\",\"features\":["));
    for (size_t i = 0; i < n; i++) {
        if (i)
            GS_TRY(gs_buf_puts(out, ","));
        GS_TRY(feature(out, &hits[i]));
    }
    return gs_buf_puts(out, "]}\n");
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
    snprintf(out, out_nbytes, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
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
