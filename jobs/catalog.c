// The scene catalogue (catalog.h): inputs -> files -> scenes, through VSI so that local paths and
// /vsis3/, /vsicurl/, /vsizip/ paths are walked alike.
#define GS_LOG_MODULE "jobs"
#define _XOPEN_SOURCE 700 // realpath
#include "jobs/catalog.h"

#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "jobs/raster_int.h"

// ---- string vectors
// -----------------------------------------------------------------------

typedef struct {
    char **v;
    size_t n, alloc;
} strv_t;

static void strv_push(strv_t *s, char *owned)
{
    if (s->n == s->alloc) {
        s->alloc = s->alloc ? 2 * s->alloc : 64;
        s->v = gs_xrealloc(s->v, s->alloc * sizeof *s->v);
    }
    s->v[s->n++] = owned;
}

static void strv_free(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        gs_free(s->v[i]);
    gs_free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_bytes(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// ---- context
// ------------------------------------------------------------------------------

typedef struct {
    const gs_job_t *job;
    strv_t files;
    char *err;
    size_t err_nbytes;
} ctx_t;

static gs_err fail(ctx_t *c, gs_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static gs_err fail(ctx_t *c, gs_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_nbytes, fmt, ap);
    va_end(ap);
    return code;
}

static int has_wildcard(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static char *join(const char *dir, const char *name)
{
    if (!*dir || !strcmp(dir, "."))
        return gs_xstrdup(name);
    size_t n = strlen(dir);
    return gs_xasprintf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", name);
}

static int ext_ok(const gs_job_t *job, const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (int i = 0; i < job->scenes.n_extensions; i++) {
        const char *e = job->scenes.extensions[i];
        if (*e == '.')
            e++;
        if (strcasecmp(dot + 1, e) == 0)
            return 1;
    }
    return 0;
}

// ---- walking
// ------------------------------------------------------------------------------

static gs_err walk_dir(ctx_t *c, const char *dir, int depth)
{
    if (depth > GS_CATALOG_MAX_DEPTH)
        return fail(c, GS_ETOOBIG, "directory \"%s\" is nested more than %d levels deep", dir,
                    GS_CATALOG_MAX_DEPTH);
    char **names = NULL;
    size_t n = 0;
    if (gs__vsi_list(dir, &names, &n) != GS_OK)
        return fail(c, GS_EIO, "could not list directory \"%s\"", dir);
    gs_err e = GS_OK;
    for (size_t i = 0; i < n && e == GS_OK; i++) {
        if (names[i][0] == '.')
            continue;
        char *p = join(dir, names[i]);
        gs__stat_t st;
        gs__vsi_stat(p, &st);
        if (st.exists && st.is_dir) {
            e = walk_dir(c, p, depth + 1);
            gs_free(p);
        } else if (st.exists && ext_ok(c->job, names[i])) {
            strv_push(&c->files, p);
        } else {
            gs_free(p);
        }
    }
    gs__strv_free(&names);
    return e;
}

// take: a path that exists: a directory is walked, a file is taken.
static gs_err take(ctx_t *c, const char *path, const gs__stat_t *st)
{
    if (st->is_dir)
        return walk_dir(c, path, 0);
    strv_push(&c->files, gs_xstrdup(path));
    return GS_OK;
}

// glob_from: expands the components comps[i..n) below `base`.
static gs_err glob_from(ctx_t *c, const char *base, char **comps, size_t i, size_t n, int depth)
{
    if (depth > GS_CATALOG_MAX_DEPTH)
        return GS_OK;
    if (i == n) {
        gs__stat_t st;
        gs__vsi_stat(*base ? base : ".", &st);
        return st.exists ? take(c, base, &st) : GS_OK;
    }
    const char *comp = comps[i];
    if (!has_wildcard(comp)) {
        char *p = *base || i > 0 ? join(base, comp) : gs_xstrdup(comp);
        gs_err e = glob_from(c, p, comps, i + 1, n, depth);
        gs_free(p);
        return e;
    }
    char **names = NULL;
    size_t cnt = 0;
    if (gs__vsi_list(*base ? base : ".", &names, &cnt) != GS_OK)
        return GS_OK; // a branch that is not a directory matches nothing
    int recurse = strcmp(comp, "**") == 0;
    gs_err e = GS_OK;
    if (recurse) // ** matches zero directories too
        e = glob_from(c, base, comps, i + 1, n, depth);
    for (size_t k = 0; k < cnt && e == GS_OK; k++) {
        char *p = join(base, names[k]);
        if (recurse) {
            gs__stat_t st;
            gs__vsi_stat(p, &st);
            if (names[k][0] != '.' && st.is_dir)
                e = glob_from(c, p, comps, i, n, depth + 1);
        } else if (fnmatch(comp, names[k], FNM_PERIOD) == 0) {
            e = glob_from(c, p, comps, i + 1, n, depth);
        }
        gs_free(p);
    }
    gs__strv_free(&names);
    return e;
}

static gs_err expand_glob(ctx_t *c, const char *pattern)
{
    // the part before the first wildcard's component is kept verbatim (so "/vsizip//abs/x.zip"
    // keeps its double slash); the rest is matched component by component
    size_t first = strcspn(pattern, "*?[");
    size_t cut = first;
    while (cut > 0 && pattern[cut - 1] != '/')
        cut--;
    char *base = gs_xstrndup(pattern, cut > 1 ? cut - 1 : cut);
    char *rest = gs_xstrdup(pattern + cut);
    strv_t comps = {0};
    char *save = NULL;
    for (char *t = strtok_r(rest, "/", &save); t; t = strtok_r(NULL, "/", &save))
        strv_push(&comps, gs_xstrdup(t));
    gs_err e = glob_from(c, base, comps.v, 0, comps.n, 0);
    strv_free(&comps);
    gs_free(rest);
    gs_free(base);
    return e;
}

static gs_err expand_input(ctx_t *c, const char *in, int list_depth);

static gs_err expand_list(ctx_t *c, const char *path, int list_depth)
{
    if (list_depth >= GS_CATALOG_MAX_LIST_DEPTH)
        return fail(c, GS_ETOOBIG, "list file \"%s\" is nested more than %d deep", path,
                    GS_CATALOG_MAX_LIST_DEPTH);
    char *text = NULL;
    gs_err e = gs__vsi_read_text(path, (size_t)1 << 30, &text, NULL);
    if (e != GS_OK)
        return fail(c, e == GS_ETOOBIG ? e : GS_EIO, "could not read list file \"%s\"", path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line && e == GS_OK;
         line = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*line))
            line++;
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1]))
            line[--l] = '\0';
        if (*line && *line != '#')
            e = expand_input(c, line, list_depth + 1);
    }
    gs_free(text);
    return e;
}

static gs_err expand_input(ctx_t *c, const char *in, int list_depth)
{
    if (in[0] == '@')
        return expand_list(c, in + 1, list_depth);
    size_t before = c->files.n;
    gs_err e;
    if (has_wildcard(in)) {
        e = expand_glob(c, in);
        if (e == GS_OK && c->files.n == before)
            return fail(c, GS_ENOTFOUND, "input \"%s\" matches no file", in);
        return e;
    }
    gs__stat_t st;
    gs__vsi_stat(in, &st);
    if (!st.exists)
        return fail(c, GS_ENOTFOUND, "input \"%s\": no such file or directory", in);
    e = take(c, in, &st);
    if (e == GS_OK && c->files.n == before)
        return fail(c, GS_ENOTFOUND,
                    "input \"%s\" holds no file ending in one of scenes.extensions", in);
    return e;
}

// ---- canonical URIs and groups
// ------------------------------------------------------------

// canonical: an absolute, symlink-free path for local files; /vsi paths as written.
static char *canonical(const char *path)
{
    if (strncmp(path, "/vsi", 4) == 0)
        return gs_xstrdup(path);
    char buf[PATH_MAX];
    return gs_xstrdup(realpath(path, buf) ? buf : path);
}

// Natural order of band names: digit runs compare as numbers ("2" < "10"), then bytewise.
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y)
                return x < y ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++, b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

// Group members are "key\x01band": sort by key bytewise, then band naturally.
static int cmp_member(const void *pa, const void *pb)
{
    const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
    const char *sa = strchr(a, '\x01'), *sb = strchr(b, '\x01');
    size_t na = (size_t)(sa - a), nb = (size_t)(sb - b);
    int k = strncmp(a, b, na < nb ? na : nb);
    if (k == 0 && na != nb)
        k = na < nb ? -1 : 1;
    if (k != 0)
        return k;
    int n = natural_cmp(sa + 1, sb + 1);
    return n ? n : strcmp(sa + 1, sb + 1);
}

// The group pattern as an anchored POSIX ERE: {scene} = (.+), {band} = ([A-Za-z0-9]+), other
// characters literal. *band_group is the capture group of the band (1 or 2).
static gs_err compile_group(const char *g, regex_t *re, int *scene_group, int *band_group)
{
    size_t cap = strlen(g) * 2 + 64, n = 0;
    char *ere = gs_xmalloc(cap);
    int group = 0;
    ere[n++] = '^';
    for (const char *p = g; *p;) {
        if (!strncmp(p, "{scene}", 7)) {
            n += (size_t)snprintf(ere + n, cap - n, "(.+)");
            *scene_group = ++group;
            p += 7;
        } else if (!strncmp(p, "{band}", 6)) {
            n += (size_t)snprintf(ere + n, cap - n, "([A-Za-z0-9]+)");
            *band_group = ++group;
            p += 6;
        } else {
            if (strchr(".[]()*+?{}|^$\\", *p))
                ere[n++] = '\\';
            ere[n++] = *p++;
        }
    }
    ere[n++] = '$';
    ere[n] = '\0';
    int rc = regcomp(re, ere, REG_EXTENDED);
    gs_free(ere);
    return rc == 0 ? GS_OK : GS_EINVAL;
}

// group_files: files -> "key\x01band" members -> one URI per key, into out.
static gs_err group_files(ctx_t *c, strv_t *out, size_t *n_ignored)
{
    const char *g = c->job->scenes.group;
    regex_t re;
    int sg = 0, bg = 0;
    if (compile_group(g, &re, &sg, &bg) != GS_OK)
        return fail(c, GS_EINVAL, "scenes.group \"%s\" could not be compiled", g);
    strv_t members = {0};
    for (size_t i = 0; i < c->files.n; i++) {
        const char *path = c->files.v[i], *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        regmatch_t m[3];
        if (regexec(&re, base, 3, m, 0) != 0) {
            (*n_ignored)++;
            continue;
        }
        char *dir = slash ? gs_xstrndup(path, (size_t)(slash - path + (slash == path))) : NULL;
        char *cdir = canonical(dir ? dir : ".");
        // key = <dir>/<pattern with {scene} filled in>
        const char *at = strstr(g, "{scene}");
        char *key = gs_xasprintf("%s%s%.*s%.*s%s", cdir, cdir[strlen(cdir) - 1] == '/' ? "" : "/",
                                 (int)(at - g), g, (int)(m[sg].rm_eo - m[sg].rm_so),
                                 base + m[sg].rm_so, at + 7);
        strv_push(&members, gs_xasprintf("%s\x01%.*s", key, (int)(m[bg].rm_eo - m[bg].rm_so),
                                         base + m[bg].rm_so));
        gs_free(key);
        gs_free(cdir);
        gs_free(dir);
    }
    regfree(&re);
    if (members.n) // qsort wants a non-NULL array even when empty
        qsort(members.v, members.n, sizeof *members.v, cmp_member);
    for (size_t i = 0; i < members.n;) {
        const char *sep = strchr(members.v[i], '\x01');
        size_t klen = (size_t)(sep - members.v[i]);
        gs_buf_t uri;
        gs_buf_init(&uri, (size_t)1 << 20);
        gs_err e = gs_buf_append(&uri, members.v[i], klen);
        const char *last = NULL;
        size_t j = i;
        for (; j < members.n && !strncmp(members.v[j], members.v[i], klen + 1); j++) {
            const char *band = members.v[j] + klen + 1;
            if (last && !strcmp(last, band))
                continue; // the same file reached twice
            if (e == GS_OK)
                e = gs_buf_printf(&uri, "%c%s", last ? ',' : '#', band);
            last = band;
        }
        if (e != GS_OK) {
            gs_buf_cleanup(&uri);
            strv_free(&members);
            return fail(c, e, "scene \"%.*s\" has too many bands", (int)klen, members.v[i]);
        }
        strv_push(out, gs_buf_steal(&uri));
        i = j;
    }
    strv_free(&members);
    return GS_OK;
}

static void sort_unique(strv_t *s)
{
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_bytes);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k > 0 && !strcmp(s->v[k - 1], s->v[i]))
            gs_free(s->v[i]);
        else
            s->v[k++] = s->v[i];
    }
    s->n = k;
}

// ---- public
// -------------------------------------------------------------------------------

void gs_catalog_cleanup(gs_catalog_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n_scenes; i++)
        gs_free(self->uris[i]);
    gs_free(self->uris);
    memset(self, 0, sizeof *self);
}

gs_err gs_catalog_build(const gs_job_t *job, gs_catalog_t *out, char *err, size_t err_nbytes)
{
    char local[1024];
    ctx_t c = {.job = job, .err = err ? err : local, .err_nbytes = err ? err_nbytes : sizeof local};
    memset(out, 0, sizeof *out);
    gs_err e = GS_OK;
    for (int i = 0; i < job->n_inputs && e == GS_OK; i++)
        e = expand_input(&c, job->inputs[i], 0);
    strv_t scenes = {0};
    size_t n_ignored = 0;
    if (e == GS_OK && *job->scenes.group) {
        e = group_files(&c, &scenes, &n_ignored);
    } else if (e == GS_OK) {
        for (size_t i = 0; i < c.files.n; i++)
            strv_push(&scenes, canonical(c.files.v[i]));
    }
    size_t n_files = c.files.n;
    strv_free(&c.files);
    if (e == GS_OK && scenes.n == 0)
        e = fail(&c, GS_ENOTFOUND,
                 "the inputs hold %zu files but no scene (does scenes.group "
                 "\"%s\" match their names?)",
                 n_files, job->scenes.group);
    if (e != GS_OK) {
        strv_free(&scenes);
        if (!err)
            GS_LOG_ERROR("%s", local);
        return e;
    }
    sort_unique(&scenes);
    out->uris = scenes.v;
    out->n_scenes = scenes.n;
    out->n_files = n_files;
    out->n_ignored = n_ignored;
    return GS_OK;
}
