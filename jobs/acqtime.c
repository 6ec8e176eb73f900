// Acquisition-time text: ISO-like parsing, formatting, and file-name patterns (acqtime.h).
#include "jobs/acqtime.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

// ---- calendar -----------------------------------------------------------------------------

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (era arithmetic: 400-year
// cycles of 146097 days, years starting in March so the leap day comes last).
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                  // [0, 399]
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; // [0, 365]
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          // [0, 146096]
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : n[m - 1];
}

typedef struct {
    int y, mo, d, doy, h, mi, s; // doy > 0 overrides mo/d
} fields_t;

static gs_err fields_to_time(const fields_t *f, int64_t *out)
{
    if (f->y < 1 || f->y > 9999 || f->h < 0 || f->h > 23 || f->mi < 0 || f->mi > 59 || f->s < 0 ||
        f->s > 60)
        return GS_EINVAL;
    int64_t days;
    if (f->doy > 0) {
        if (f->doy > 365 + is_leap(f->y))
            return GS_EINVAL;
        days = days_from_civil(f->y, 1, 1) + f->doy - 1;
    } else {
        if (f->mo < 1 || f->mo > 12 || f->d < 1 || f->d > days_in_month(f->y, f->mo))
            return GS_EINVAL;
        days = days_from_civil(f->y, f->mo, f->d);
    }
    *out = days * 86400 + f->h * 3600 + f->mi * 60 + f->s;
    return GS_OK;
}

void gs_acqtime_format(int64_t t, char *out, size_t out_nbytes)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t sec = t - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, out_nbytes, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(sec / 3600),
             (int)(sec / 60 % 60), (int)(sec % 60));
}

// ---- ISO-like text ------------------------------------------------------------------------

// digits: reads exactly n digits at *p; -1 if they are not there.
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

static gs_err parse_clock(const char **pp, fields_t *f, int *offset_s)
{
    const char *p = *pp;
    if ((f->h = digits(&p, 2)) < 0 || *p++ != ':' || (f->mi = digits(&p, 2)) < 0)
        return GS_EINVAL;
    if (*p == ':') {
        p++;
        if ((f->s = digits(&p, 2)) < 0)
            return GS_EINVAL;
        if (*p == '.' || *p == ',') {
            p++;
            if (!isdigit((unsigned char)*p))
                return GS_EINVAL;
            while (isdigit((unsigned char)*p))
                p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, 2), om = 0;
        if (oh < 0)
            return GS_EINVAL;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && (om = digits(&p, 2)) < 0)
            return GS_EINVAL;
        if (oh > 23 || om > 59)
            return GS_EINVAL;
        *offset_s = sign * (oh * 3600 + om * 60);
    }
    *pp = p;
    return GS_OK;
}

gs_err gs_acqtime_parse(const char *s, int64_t *out)
{
    if (!s)
        return GS_EINVAL;
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    fields_t f = {.mo = 1, .d = 1};
    int offset_s = 0;
    if ((f.y = digits(&p, 4)) < 0)
        return GS_EINVAL;
    if (*p == '-' || *p == ':' || *p == '/') {
        char sep = *p++;
        if ((f.mo = digits(&p, 2)) < 0)
            return GS_EINVAL;
        if (*p == sep) {
            p++;
            if ((f.d = digits(&p, 2)) < 0)
                return GS_EINVAL;
        }
    } else if (isdigit((unsigned char)*p)) {
        if ((f.mo = digits(&p, 2)) < 0 || (f.d = digits(&p, 2)) < 0)
            return GS_EINVAL;
    }
    if ((*p == 'T' || *p == 't' || *p == ' ') && isdigit((unsigned char)p[1])) {
        p++;
        if (parse_clock(&p, &f, &offset_s) != GS_OK)
            return GS_EINVAL;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return GS_EINVAL;
    int64_t t;
    if (fields_to_time(&f, &t) != GS_OK)
        return GS_EINVAL;
    *out = t - offset_s;
    return GS_OK;
}

// ---- strptime-like patterns ---------------------------------------------------------------

// match_at: matches the whole pattern at text; fills f. 1 on a match.
static int match_at(const char *pat, const char *text, fields_t *f)
{
    const char *t = text;
    for (const char *p = pat; *p; p++) {
        if (*p == '?') {
            if (!*t++)
                return 0;
            continue;
        }
        if (*p != '%') {
            if (*t++ != *p)
                return 0;
            continue;
        }
        p++;
        int v;
        switch (*p) {
        case 'Y': v = f->y = digits(&t, 4); break;
        case 'y':
            v = digits(&t, 2);
            f->y = v < 0 ? -1 : v >= 70 ? 1900 + v : 2000 + v;
            break;
        case 'm': v = f->mo = digits(&t, 2); break;
        case 'd': v = f->d = digits(&t, 2); break;
        case 'j': v = f->doy = digits(&t, 3); break;
        case 'H': v = f->h = digits(&t, 2); break;
        case 'M': v = f->mi = digits(&t, 2); break;
        case 'S': v = f->s = digits(&t, 2); break;
        case '%': v = *t++ == '%' ? 0 : -1; break;
        default: return 0;
        }
        if (v < 0)
            return 0;
    }
    return 1;
}

static gs_err check_strptime(const char *pat, char *err, size_t n)
{
    int has_year = 0;
    for (const char *p = pat; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (!*p || !strchr("YymdjHMS%", *p)) {
            snprintf(err, n,
                     "has an unknown field \"%%%c\" (known: %%Y %%y %%m %%d %%j %%H %%M %%S)",
                     *p ? *p : ' ');
            return GS_EINVAL;
        }
        has_year |= *p == 'Y' || *p == 'y';
    }
    if (!has_year) {
        snprintf(err, n, "has no year field (%%Y, %%y or (?<year>...))");
        return GS_EINVAL;
    }
    return GS_OK;
}

static gs_err match_strptime(const char *pat, const char *text, int64_t *out)
{
    for (const char *t = text; *t; t++) {
        fields_t f = {.mo = 1, .d = 1};
        int64_t v;
        if (match_at(pat, t, &f) && fields_to_time(&f, &v) == GS_OK) {
            *out = v;
            return GS_OK;
        }
    }
    return GS_ENOTFOUND;
}

// ---- regex patterns -----------------------------------------------------------------------

enum { F_NONE, F_Y, F_MO, F_D, F_DOY, F_H, F_MI, F_S, MAX_GROUPS = 32 };

static int field_of(const char *name, size_t n)
{
    static const struct {
        const char *a, *b;
        int f;
    } names[] = {{"year", "Y", F_Y},  {"month", "m", F_MO}, {"day", "d", F_D},
                 {"doy", "j", F_DOY}, {"hour", "H", F_H},   {"minute", "M", F_MI},
                 {"second", "S", F_S}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((strlen(names[i].a) == n && !strncmp(names[i].a, name, n)) ||
            (strlen(names[i].b) == n && !strncmp(names[i].b, name, n)))
            return names[i].f;
    return -1;
}

typedef struct {
    regex_t re;
    int field[MAX_GROUPS + 1]; // field of each capture group (1-based)
    int n_groups;
} rx_t;

// Translates (?<name>...) / (?P<name>...), \d, \w, \s into POSIX ERE and compiles it.
static gs_err rx_compile(const char *src, rx_t *rx, char *err, size_t n)
{
    memset(rx, 0, sizeof *rx);
    size_t cap = strlen(src) * 12 + 1;
    char *ere = gs_xmalloc(cap), *o = ere;
    int in_class = 0, has_year = 0;
    for (const char *p = src; *p; p++) {
        if (*p == '\\' && p[1]) {
            const char *rep = p[1] == 'd'   ? "[0-9]"
                              : p[1] == 'w' ? "[A-Za-z0-9_]"
                              : p[1] == 's' ? "[[:space:]]"
                                            : NULL;
            if (rep && !in_class) {
                o += snprintf(o, cap - (size_t)(o - ere), "%s", rep);
            } else {
                *o++ = p[0];
                *o++ = p[1];
            }
            p++;
            continue;
        }
        if (in_class) {
            in_class = *p != ']';
            *o++ = *p;
            continue;
        }
        if (*p == '[') {
            in_class = 1;
            *o++ = *p;
            if (p[1] == '^')
                *o++ = *++p;
            if (p[1] == ']') // a leading ] is a literal member
                *o++ = *++p;
            continue;
        }
        if (*p == '(') {
            if (rx->n_groups >= MAX_GROUPS) {
                snprintf(err, n, "has more than %d groups", MAX_GROUPS);
                gs_free(ere);
                return GS_EINVAL;
            }
            int f = F_NONE;
            if (p[1] == '?') {
                const char *name = p + 2 + (p[2] == 'P');
                if (*name != '<' || !strchr(name, '>')) {
                    snprintf(err, n, "has a \"(?\" group that is not (?<name>...)");
                    gs_free(ere);
                    return GS_EINVAL;
                }
                const char *end = strchr(name, '>');
                f = field_of(name + 1, (size_t)(end - name - 1));
                if (f < 0) {
                    snprintf(err, n,
                             "has an unknown field name \"%.*s\" (known: year month day "
                             "doy hour minute second)",
                             (int)(end - name - 1), name + 1);
                    gs_free(ere);
                    return GS_EINVAL;
                }
                p = end;
            }
            rx->field[++rx->n_groups] = f;
            has_year |= f == F_Y;
            *o++ = '(';
            continue;
        }
        *o++ = *p;
    }
    *o = '\0';
    if (!has_year) {
        snprintf(err, n, "has no year field (%%Y, %%y or (?<year>...))");
        gs_free(ere);
        return GS_EINVAL;
    }
    int rc = regcomp(&rx->re, ere, REG_EXTENDED);
    gs_free(ere);
    if (rc != 0) {
        char msg[200];
        regerror(rc, &rx->re, msg, sizeof msg);
        snprintf(err, n, "is not a valid regular expression: %s", msg);
        return GS_EINVAL;
    }
    return GS_OK;
}

static gs_err match_regex(const rx_t *rx, const char *text, int64_t *out)
{
    regmatch_t m[MAX_GROUPS + 1];
    if (regexec(&rx->re, text, MAX_GROUPS + 1, m, 0) != 0)
        return GS_ENOTFOUND;
    fields_t f = {.mo = 1, .d = 1};
    for (int g = 1; g <= rx->n_groups; g++) {
        if (rx->field[g] == F_NONE || m[g].rm_so < 0)
            continue;
        int v = 0;
        for (regoff_t i = m[g].rm_so; i < m[g].rm_eo; i++) {
            if (!isdigit((unsigned char)text[i]) || v > 99999)
                return GS_ENOTFOUND;
            v = v * 10 + (text[i] - '0');
        }
        int *dst[] = {NULL, &f.y, &f.mo, &f.d, &f.doy, &f.h, &f.mi, &f.s};
        *dst[rx->field[g]] = v;
    }
    return fields_to_time(&f, out) == GS_OK ? GS_OK : GS_ENOTFOUND;
}

// ---- public -------------------------------------------------------------------------------

static const char REGEX_PREFIX[] = "regex:";

gs_err gs_acqtime_check_pattern(const char *pattern, char *err, size_t err_nbytes)
{
    if (!pattern || !*pattern) {
        snprintf(err, err_nbytes, "is empty");
        return GS_EINVAL;
    }
    if (strncmp(pattern, REGEX_PREFIX, sizeof REGEX_PREFIX - 1) != 0)
        return check_strptime(pattern, err, err_nbytes);
    rx_t rx;
    GS_TRY(rx_compile(pattern + sizeof REGEX_PREFIX - 1, &rx, err, err_nbytes));
    regfree(&rx.re);
    return GS_OK;
}

gs_err gs_acqtime_match(const char *pattern, const char *text, int64_t *out)
{
    char err[256];
    if (gs_acqtime_check_pattern(pattern, err, sizeof err) != GS_OK)
        return GS_EINVAL;
    if (strncmp(pattern, REGEX_PREFIX, sizeof REGEX_PREFIX - 1) != 0)
        return match_strptime(pattern, text, out);
    rx_t rx;
    GS_TRY(rx_compile(pattern + sizeof REGEX_PREFIX - 1, &rx, err, sizeof err));
    gs_err e = match_regex(&rx, text, out);
    regfree(&rx.re);
    return e;
}
