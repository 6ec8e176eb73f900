// Labels CSV and readable class names (see labels.h). The CSV reader is a small RFC 4180
// subset; every string lands in the table's arena.
#define GS_LOG_MODULE "eval"
#include "eval/labels.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/log.h"

enum { MAX_COLS = 256 };

// ---- CSV -----------------------------------------------------------------------------------

typedef struct {
    const char *path;
    const char *p, *end;
    int line; // of the row being read, 1-based
    gs_arena_t *arena;
    gs_buf_t field;
} csv_t;

static bool csv_blank_line(const csv_t *c)
{
    const char *q = c->p;
    while (q < c->end && (*q == ' ' || *q == '\t' || *q == '\r'))
        q++;
    return q == c->end || *q == '\n';
}

// csv_field: reads one field at c->p into c->field; *out_last tells whether it ended its row.
static gs_err csv_field(csv_t *c, bool *out_last)
{
    gs_buf_reset(&c->field);
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    bool quoted = c->p < c->end && *c->p == '"';
    if (quoted) {
        int line0 = c->line;
        for (c->p++;; c->p++) {
            if (c->p >= c->end) {
                GS_LOG_ERROR("csv \"%s\": the quote opened on line %d is never closed", c->path,
                             line0);
                return GS_EFORMAT;
            }
            if (*c->p == '"' && c->p + 1 < c->end && c->p[1] == '"')
                c->p++;
            else if (*c->p == '"')
                break;
            c->line += *c->p == '\n';
            GS_TRY(gs_buf_append(&c->field, c->p, 1));
        }
        c->p++;
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '\n')
        c->p++;
    size_t n = (size_t)(c->p - start);
    while (n && (start[n - 1] == ' ' || start[n - 1] == '\t' || start[n - 1] == '\r'))
        n--;
    if ((quoted && n) || memchr(start, '"', n)) {
        GS_LOG_ERROR("csv \"%s\" line %d: a quote inside a field (quote the whole field and "
                     "double the quotes in it)",
                     c->path, c->line);
        return GS_EFORMAT;
    }
    if (!quoted)
        GS_TRY(gs_buf_append(&c->field, start, n));
    *out_last = c->p >= c->end || *c->p == '\n';
    if (c->p < c->end)
        c->line += *c->p++ == '\n';
    return GS_OK;
}

// csv_row: the next non-blank row's fields (arena copies) into out and the line it starts
// on into *out_line; 0 fields at the end.
static gs_err csv_row(csv_t *c, const char **out, int *out_n, int *out_line)
{
    *out_n = 0;
    while (c->p < c->end && csv_blank_line(c)) {
        while (c->p < c->end && *c->p != '\n')
            c->p++;
        c->p += c->p < c->end;
        c->line++;
    }
    if (c->p >= c->end)
        return GS_OK;
    int line0 = c->line;
    *out_line = line0;
    for (bool last = false; !last;) {
        GS_TRY(csv_field(c, &last));
        if (*out_n == MAX_COLS) {
            GS_LOG_ERROR("csv \"%s\" line %d: more than %d fields", c->path, line0, MAX_COLS);
            return GS_ETOOBIG;
        }
        out[*out_n] = gs_arena_strndup(c->arena, c->field.len ? c->field.data : "", c->field.len);
        if (!out[(*out_n)++])
            return GS_ENOMEM;
    }
    return GS_OK;
}

// csv_open: reads the file and its header; *out_ncols columns into hdr.
static gs_err csv_open(csv_t *c, const char *path, gs_arena_t *arena, char **out_text,
                       const char **hdr, int *out_ncols)
{
    size_t n = 0;
    GS_TRY(gs_read_file(path, GS_LABELS_MAX_NBYTES, out_text, &n));
    *c = (csv_t){.path = path, .p = *out_text, .end = *out_text + n, .line = 1, .arena = arena};
    gs_buf_init(&c->field, GS_LABELS_MAX_NBYTES);
    if (n >= 3 && memcmp(c->p, "\xEF\xBB\xBF", 3) == 0)
        c->p += 3;
    int line;
    gs_err e = csv_row(c, hdr, out_ncols, &line);
    if (e == GS_OK && *out_ncols == 0) {
        GS_LOG_ERROR("csv \"%s\": empty file (a header row is expected)", path);
        e = GS_EFORMAT;
    }
    return e;
}

static int column(const char *const *hdr, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hdr[i], name) == 0)
            return i;
    return -1;
}

// ---- labels --------------------------------------------------------------------------------

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int find_class(const gs_labels_t *l, const char *name)
{
    const char **hit =
        bsearch(&name, l->classes, (size_t)l->n_classes, sizeof *l->classes, cmp_str);
    return hit ? (int)(hit - l->classes) : -1;
}

typedef struct {
    const char *file, *cls, *split;
    int line;
} row_t;

// read_rows: every data row of the labels CSV into *out_rows (gs_free).
static gs_err read_rows(csv_t *c, const char *const *hdr, int ncols, bool want_split,
                        row_t **out_rows, int *out_n)
{
    int cf = column(hdr, ncols, "filename"), cc = column(hdr, ncols, "class");
    int cs = column(hdr, ncols, "split");
    if (cf < 0 || cc < 0 || (want_split && cs < 0)) {
        GS_LOG_ERROR("csv \"%s\": the header has no \"%s\" column (it needs \"filename\" and "
                     "\"class\"%s)",
                     c->path,
                     cf < 0   ? "filename"
                     : cc < 0 ? "class"
                              : "split",
                     want_split ? ", and \"split\" to select a split" : "");
        return GS_EFORMAT;
    }
    const char *f[MAX_COLS];
    row_t *rows = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        int nf = 0, line = 0;
        gs_err e = csv_row(c, f, &nf, &line);
        if (e == GS_OK && nf == 0)
            break;
        if (e == GS_OK && nf != ncols) {
            GS_LOG_ERROR("csv \"%s\" line %d: %d fields, the header has %d", c->path, line, nf,
                         ncols);
            e = GS_EFORMAT;
        } else if (e == GS_OK && (!*f[cf] || !*f[cc])) {
            GS_LOG_ERROR("csv \"%s\" line %d: empty %s", c->path, line,
                         !*f[cf] ? "filename" : "class");
            e = GS_EFORMAT;
        }
        if (e == GS_OK && n == cap) {
            cap = cap ? 2 * cap : 256;
            row_t *r = gs_tryrealloc(rows, cap * sizeof *rows);
            e = r ? GS_OK : GS_ENOMEM;
            rows = r ? r : rows;
        }
        if (e != GS_OK) {
            gs_free(rows);
            return e;
        }
        rows[n++] = (row_t){f[cf], f[cc], cs >= 0 ? f[cs] : "", line};
    }
    *out_rows = rows;
    *out_n = (int)n;
    return GS_OK;
}

static int cmp_row_file(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    int d = strcmp(x->file, y->file);
    return d ? d : x->line - y->line;
}

// build: classes from all rows, the selected rows; duplicates refused.
static gs_err build(gs_labels_t *l, const char *path, row_t *rows, int n, const char *split)
{
    l->classes = gs_arena_calloc(l->arena_, (size_t)n + 1, sizeof *l->classes);
    l->filenames = gs_arena_calloc(l->arena_, (size_t)n + 1, sizeof *l->filenames);
    l->cls = gs_arena_calloc(l->arena_, (size_t)n + 1, sizeof *l->cls);
    if (!l->classes || !l->filenames || !l->cls)
        return GS_ENOMEM;
    for (int i = 0; i < n; i++)
        l->classes[i] = rows[i].cls;
    qsort(l->classes, (size_t)n, sizeof *l->classes, cmp_str);
    for (int i = 0; i < n; i++)
        if (l->n_classes == 0 || strcmp(l->classes[l->n_classes - 1], l->classes[i]) != 0)
            l->classes[l->n_classes++] = l->classes[i];
    l->names = gs_arena_calloc(l->arena_, (size_t)l->n_classes + 1, sizeof *l->names);
    if (!l->names)
        return GS_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (split && strcmp(rows[i].split, split) != 0)
            continue;
        l->filenames[l->n] = rows[i].file;
        l->cls[l->n++] = find_class(l, rows[i].cls);
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_row_file);
    for (int i = 1; i < n; i++) {
        if (strcmp(rows[i].file, rows[i - 1].file) == 0) {
            GS_LOG_ERROR("csv \"%s\" line %d: \"%s\" is listed again (first on line %d)", path,
                         rows[i].line, rows[i].file, rows[i - 1].line);
            return GS_EFORMAT;
        }
    }
    return GS_OK;
}

gs_err gs_labels_read(const char *path, const char *split, gs_labels_t **out)
{
    if (!path || !out)
        return GS_EINVAL;
    gs_labels_t *l = gs_xcalloc(1, sizeof *l);
    l->arena_ = gs_arena_new((size_t)1 << 20, 0);
    csv_t c = {0};
    char *text = NULL;
    const char *hdr[MAX_COLS];
    row_t *rows = NULL;
    int ncols = 0, n = 0;
    gs_err e = csv_open(&c, path, l->arena_, &text, hdr, &ncols);
    if (e == GS_OK)
        e = read_rows(&c, hdr, ncols, split != NULL, &rows, &n);
    if (e == GS_OK)
        e = build(l, path, rows, n, split);
    gs_free(rows);
    gs_free(text);
    gs_buf_cleanup(&c.field);
    if (e != GS_OK) {
        gs_labels_destroy(&l);
        return e;
    }
    *out = l;
    return GS_OK;
}

void gs_labels_destroy(gs_labels_t **p)
{
    if (!p || !*p)
        return;
    gs_arena_destroy(&(*p)->arena_);
    gs_free(*p);
    *p = NULL;
}

// ---- class names ---------------------------------------------------------------------------

// Compound folder names of UC Merced (21 classes), AID (30) and RSICD (30) that need a space.
static const char *const compounds[][2] = {
    {"bareland", "bare land"},
    {"baseballdiamond", "baseball diamond"},
    {"baseballfield", "baseball field"},
    {"denseresidential", "dense residential"},
    {"golfcourse", "golf course"},
    {"mediumresidential", "medium residential"},
    {"mobilehomepark", "mobile home park"},
    {"parkinglot", "parking lot"},
    {"railwaystation", "railway station"},
    {"sparseresidential", "sparse residential"},
    {"storagetanks", "storage tanks"},
    {"tenniscourt", "tennis court"},
};

static bool is_upper(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}
static bool is_lower_or_digit(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

gs_err gs_labels_readable(const char *cls, gs_buf_t *out)
{
    if (!cls || !out)
        return GS_EINVAL;
    for (size_t k = 0; k < sizeof compounds / sizeof *compounds; k++)
        if (strcmp(cls, compounds[k][0]) == 0)
            return gs_buf_puts(out, compounds[k][1]);
    size_t start = out->len;
    bool space = false; // a space is pending
    for (const char *p = cls; *p; p++) {
        char ch = *p;
        if (ch == '_' || ch == '-' || ch == ' ' || ch == '\t') {
            space = true;
            continue;
        }
        if (p > cls && is_upper(ch) && is_lower_or_digit(p[-1]))
            space = true;
        if (space && out->len > start)
            GS_TRY(gs_buf_append(out, " ", 1));
        space = false;
        ch = is_upper(ch) ? (char)(ch + 32) : ch;
        GS_TRY(gs_buf_append(out, &ch, 1));
    }
    return GS_OK;
}

// set_names: the class,name rows of the names CSV into names (n_classes, zeroed).
static gs_err set_names(gs_labels_t *self, csv_t *c, const char *const *hdr, int ncols,
                        const char **names)
{
    int cc = column(hdr, ncols, "class"), cn = column(hdr, ncols, "name");
    if (cc < 0 || cn < 0) {
        GS_LOG_ERROR("csv \"%s\": the header has no \"%s\" column (class names want \"class\" "
                     "and \"name\")",
                     c->path, cc < 0 ? "class" : "name");
        return GS_EFORMAT;
    }
    const char *f[MAX_COLS], *unknown = NULL;
    for (;;) {
        int nf = 0, line = 0;
        GS_TRY(csv_row(c, f, &nf, &line));
        if (nf == 0)
            break;
        int k = nf == ncols ? find_class(self, f[cc]) : -1;
        if (nf != ncols || !*f[cn] || (k >= 0 && names[k])) {
            GS_LOG_ERROR("csv \"%s\" line %d: %s", c->path, line,
                         nf != ncols ? "not as many fields as the header"
                         : !*f[cn]   ? "empty name"
                                     : "class listed again");
            return GS_EFORMAT;
        }
        if (k >= 0)
            names[k] = f[cn];
        else if (!unknown)
            unknown = f[cc];
    }
    if (unknown)
        GS_LOG_WARN("csv \"%s\": class \"%s\" is not among the labels; ignored", c->path, unknown);
    return GS_OK;
}

gs_err gs_labels_read_names(gs_labels_t *self, const char *path)
{
    if (!self || !path)
        return GS_EINVAL;
    csv_t c = {0};
    char *text = NULL;
    const char *hdr[MAX_COLS];
    const char **names = gs_arena_calloc(self->arena_, (size_t)self->n_classes + 1, sizeof *names);
    int ncols = 0;
    gs_err e = names ? csv_open(&c, path, self->arena_, &text, hdr, &ncols) : GS_ENOMEM;
    if (e == GS_OK)
        e = set_names(self, &c, hdr, ncols, names);
    if (e == GS_OK)
        self->names = names;
    gs_free(text);
    gs_buf_cleanup(&c.field);
    return e;
}
