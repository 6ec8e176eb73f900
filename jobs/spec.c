// The job spec (spec.h): one key table drives defaults, parsing, --set overrides, validation,
// the canonical text and the docs. A job file becomes a YAML tree (yaml.c), --set edits the
// tree, then every known key is converted into gs_job_t and checked; unknown keys are errors.
#define GS_LOG_MODULE "jobs"
#include "jobs/spec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "jobs/acqtime.h"
#include "jobs/hash.h"
#include "jobs/yaml_int.h"

// ---- the key table ------------------------------------------------------------------------

typedef enum {
    K_STR,    // text
    K_NAME,   // job name: [A-Za-z0-9._-]{1,64}
    K_INT,    // int in [lo, hi]
    K_I64,    // int64 in [lo, hi]
    K_F64,    // finite double in [lo, hi]
    K_ENUM,   // one of names[], stored as int
    K_LIST,   // list of text (char **, count at off2)
    K_BANDS,  // up to 3 band references (char *[3], count at off2)
    K_PAIR,   // two numbers in [lo, hi]
    K_RANGE,  // two or six numbers, stored as six
    K_SELECT, // captioner.select
    K_TIME,   // time.value: date-time text, parsed into time.given
} ktype_t;

typedef struct {
    const char *key;
    ktype_t type;
    const char *dflt; // default as --set text
    double lo, hi;
    const char *const *names; // K_ENUM: names in enum order, NULL-terminated
    size_t off, off2;
    const char *help;
} key_t;

static const char *const checksum_names[] = {"quick", "full", NULL};
static const char *const edge_names[] = {"shift", "pad", "clip", NULL};
static const char *const mode_names[] = {"rgb", "sar", NULL};
static const char *const scaling_names[] = {"auto", "none", "minmax", "percentile", "range", NULL};
static const char *const units_names[] = {"db", "linear", NULL};
static const char *const from_names[] = {"metadata", "filename", "given", "none", NULL};
static const char *const pairing_names[] = {"latest", "consecutive", NULL};
static const char *const grid_names[] = {"later", "crs", NULL};
static const char *const resample_names[] = {"nearest", "bilinear", "cubic", NULL};

#define OFF(f) offsetof(gs_job_t, f)
#define NO 0, 0, NULL

// Order = canonical order; keys of a section are contiguous.
static const key_t keys[] = {
    {"name", K_NAME, "", NO, OFF(name), 0, "job name (default: the job file's name)"},
    {"inputs", K_LIST, "", NO, OFF(inputs), OFF(n_inputs),
     "paths, globs, directories, @list files, /vsi... paths (required)"},
    {"output", K_STR, "", NO, OFF(output), 0, "output directory (required)"},
    {"scenes.extensions", K_LIST, "tif,tiff", NO, OFF(scenes.extensions), OFF(scenes.n_extensions),
     "file endings taken when walking directories"},
    {"scenes.group", K_STR, "", NO, OFF(scenes.group), 0,
     "multi-file scene pattern with {scene} and {band}, e.g. {scene}_B{band}.TIF"},
    {"scenes.checksum", K_ENUM, "quick", 0, 0, checksum_names, OFF(scenes.checksum), 0,
     "quick (size, mtime, first/last 64 KiB) or full (every byte)"},
    {"tiling.size", K_INT, "256", 16, 8192, NULL, OFF(tiling.size), 0, "tile side in pixels"},
    {"tiling.overlap", K_INT, "0", 0, 8191, NULL, OFF(tiling.overlap), 0,
     "pixels shared by neighbouring tiles (< size)"},
    {"tiling.min_valid_fraction", K_F64, "0.5", 0, 1, NULL, OFF(tiling.min_valid_fraction), 0,
     "tiles with a smaller fraction of valid pixels are skipped"},
    {"tiling.edge", K_ENUM, "shift", 0, 0, edge_names, OFF(tiling.edge), 0,
     "last column/row: shift (inwards), pad (nodata outside), clip (smaller)"},
    {"composite.mode", K_ENUM, "rgb", 0, 0, mode_names, OFF(composite.mode), 0,
     "rgb (three bands or one grey) or sar (VV, VH -> VV, VH, VV/VH)"},
    {"composite.bands", K_BANDS, "", NO, OFF(composite.bands), OFF(composite.n_bands),
     "band references: 1-based index, description or group band name; [] = automatic"},
    {"composite.scaling", K_ENUM, "auto", 0, 0, scaling_names, OFF(composite.scaling), 0,
     "auto, none, minmax, percentile or range"},
    {"composite.percentile", K_PAIR, "2,98", 0, 100, NULL, OFF(composite.percentile), 0,
     "p_low, p_high for scaling: percentile"},
    {"composite.range", K_RANGE, "0,255", NO, OFF(composite.range), 0,
     "lo, hi (or three pairs) for scaling: range"},
    {"composite.sar_units", K_ENUM, "db", 0, 0, units_names, OFF(composite.sar_units), 0,
     "sar band values: db or linear"},
    {"time.from", K_ENUM, "metadata", 0, 0, from_names, OFF(time.from), 0,
     "metadata, filename, given or none"},
    {"time.pattern", K_STR, "", NO, OFF(time.pattern), 0,
     "file-name pattern (%Y%m%d... or regex:...)"},
    {"time.value", K_TIME, "", NO, OFF(time.value), 0, "the time for time.from: given"},
    {"encoder.model", K_STR, "", NO, OFF(encoder.model), 0,
     "encoder weights (file or directory, required)"},
    {"encoder.arch", K_STR, "auto", NO, OFF(encoder.arch), 0,
     "architecture, auto = from the files"},
    {"encoder.batch", K_INT, "16", 1, 4096, NULL, OFF(encoder.batch), 0, "tiles per forward pass"},
    {"encoder.threads", K_INT, "0", 0, 1024, NULL, OFF(encoder.threads), 0,
     "BLAS threads per rank, 0 = automatic"},
    {"encoder.vocab", K_STR, "", NO, OFF(encoder.vocab), 0,
     "BPE vocabulary of the text tower, empty = next to the weights"},
    {"captioner.model", K_STR, "", NO, OFF(captioner.model), 0, "captioner weights, empty = none"},
    {"captioner.prompt", K_STR, "Describe this satellite image.", NO, OFF(captioner.prompt), 0,
     "the question asked for each tile"},
    {"captioner.select", K_SELECT, "all", NO, OFF(captioner.select), 0,
     "all, none, sample:F or per_scene:N"},
    {"captioner.max_tokens", K_INT, "64", 1, 1024, NULL, OFF(captioner.max_tokens), 0,
     "caption length cap in tokens"},
    {"index.type", K_STR, "auto", NO, OFF(index.type), 0,
     "auto, flat or a FAISS factory string such as IVF4096,PQ64np"},
    {"index.flat_max", K_I64, "200000", 1, 1099511627776.0, NULL, OFF(index.flat_max), 0,
     "auto: a flat index up to this many vectors, IVF-PQ above"},
    {"index.nprobe", K_INT, "16", 1, 65536, NULL, OFF(index.nprobe), 0,
     "IVF lists searched per query"},
    {"tasks.max_tiles", K_INT, "256", 1, 1048576, NULL, OFF(tasks.max_tiles), 0,
     "grid cells per ingest task (the unit of dispatch, commit and resume)"},
    {"changes.pairing", K_ENUM, "latest", 0, 0, pairing_names, OFF(changes.pairing), 0,
     "latest (each scene with the latest earlier one) or consecutive"},
    {"changes.max_gap_days", K_F64, "365", 0, 1e6, NULL, OFF(changes.max_gap_days), 0,
     "the most days between the scenes of a pair, 0 = any"},
    {"changes.min_overlap", K_F64, "0.5", 0, 1, NULL, OFF(changes.min_overlap), 0,
     "footprint overlap over the smaller footprint needed to pair two scenes"},
    {"changes.grid", K_ENUM, "later", 0, 0, grid_names, OFF(changes.grid), 0,
     "later (the later scene's grid) or crs (changes.crs at changes.resolution)"},
    {"changes.crs", K_STR, "", NO, OFF(changes.crs), 0, "grid: crs: the CRS, e.g. EPSG:32718"},
    {"changes.resolution", K_F64, "0", 0, 1e12, NULL, OFF(changes.resolution), 0,
     "grid: crs: pixel size in CRS units"},
    {"changes.resampling", K_ENUM, "bilinear", 0, 0, resample_names, OFF(changes.resampling), 0,
     "warping: nearest, bilinear or cubic"},
    {"changes.threshold", K_F64, "0", 0, 2, NULL, OFF(changes.threshold), 0,
     "caption tiles whose change score (cosine distance) is at least this"},
    {"changes.top_fraction", K_F64, "0.1", 0, 1, NULL, OFF(changes.top_fraction), 0,
     "... and among this fraction of the highest scores of their pair"},
    {"changes.caption_model", K_STR, "", NO, OFF(changes.caption_model), 0,
     "two-image captioner; empty = captioner.model, none = no change captions"},
    {"changes.prompt", K_STR, "What changed between the two images?", NO, OFF(changes.prompt), 0,
     "the question asked about each pair of tiles"},
    {"progress.publish", K_STR, "", NO, OFF(progress.publish), 0,
     "ZeroMQ PUB endpoint for progress: tcp://*:5557 binds, >tcp://host:5557 connects"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

int gs_job_n_keys(void)
{
    return N_KEYS;
}
const char *gs_job_key_name(int i)
{
    return i >= 0 && i < N_KEYS ? keys[i].key : NULL;
}
const char *gs_job_key_default(int i)
{
    return i >= 0 && i < N_KEYS ? keys[i].dflt : NULL;
}
const char *gs_job_key_help(int i)
{
    return i >= 0 && i < N_KEYS ? keys[i].help : NULL;
}

static const key_t *find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, name) == 0)
            return &keys[i];
    return NULL;
}

static int is_section(const char *name, size_t n)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].key, name, n) == 0 && keys[i].key[n] == '.')
            return 1;
    return 0;
}

// Levenshtein distance, capped, for "did you mean" hints.
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = c < del ? (c < ins ? c : ins) : (del < ins ? del : ins);
        }
    return d[n][m];
}

static const char *closest_key(const char *name)
{
    const char *best = NULL;
    int best_d = 4;
    for (int i = 0; i < N_KEYS; i++) {
        int dd = edit_distance(name, keys[i].key);
        if (dd < best_d) {
            best_d = dd;
            best = keys[i].key;
        }
    }
    return best;
}

// ---- errors -------------------------------------------------------------------------------

typedef struct {
    const char *label; // file path or "<packed>"
    char *err;
    size_t err_nbytes;
    int lines[64]; // where each key was set: line, 0 = --set, -1 = default
} ctx_t;

// line_of: where key `name` was set, for messages about checks across keys.
static int line_of(const ctx_t *c, const char *name)
{
    const key_t *k = find_key(name);
    return k ? c->lines[k - keys] : -1;
}

static void origin(int line, char *out, size_t n)
{
    if (line > 0)
        snprintf(out, n, " (line %d)", line);
    else if (line == 0)
        snprintf(out, n, " (from --set)");
    else
        out[0] = '\0';
}

// fail: `job "<label>": <message><origin>` into the context's buffer; returns GS_EINVAL.
static gs_err fail(ctx_t *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static gs_err fail(ctx_t *c, int line, const char *fmt, ...)
{
    char msg[768], where[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    origin(line, where, sizeof where);
    snprintf(c->err, c->err_nbytes, "job \"%s\": %s%s", c->label, msg, where);
    return GS_EINVAL;
}

// ---- value conversion ---------------------------------------------------------------------

// A value to convert: a tree node, or the items of a list given as comma-separated text.
typedef struct {
    const gs__ynode_t *node;
    int line;
} val_t;

static void *field(gs_job_t *j, size_t off)
{
    return (char *)j + off;
}

static void free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++)
        gs_free(v[i]);
    gs_free(v);
}

// items: the text items of a value: a sequence's scalars, or a scalar (split on commas when it
// came from --set or a default, taken whole from a file). Returns a new vector (gs_free each).
static gs_err items(ctx_t *c, const key_t *k, const gs__ynode_t *n, char ***out, int *out_n)
{
    char **v = NULL;
    int cnt = 0;
    if (n->kind == GS__Y_MAP)
        return fail(c, n->line, "%s must be a list, not a mapping", k->key);
    if (n->kind == GS__Y_SEQ) {
        v = gs_xcalloc(n->n_kids + 1, sizeof *v);
        for (size_t i = 0; i < n->n_kids; i++) {
            if (n->kids[i]->kind != GS__Y_SCALAR) {
                free_strv(v, cnt);
                return fail(c, n->kids[i]->line, "%s must be a list of values", k->key);
            }
            v[cnt++] = gs_xstrdup(n->kids[i]->value);
        }
    } else if (n->line > 0) {
        v = gs_xcalloc(2, sizeof *v);
        if (*n->value)
            v[cnt++] = gs_xstrdup(n->value);
    } else {
        size_t len = strlen(n->value);
        v = gs_xcalloc(len + 2, sizeof *v);
        for (const char *p = n->value; *p;) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            while (l && isspace((unsigned char)*p))
                p++, l--;
            while (l && isspace((unsigned char)p[l - 1]))
                l--;
            if (l)
                v[cnt++] = gs_xstrndup(p, l);
            p = e ? e + 1 : p + strlen(p);
        }
    }
    *out = v;
    *out_n = cnt;
    return GS_OK;
}

static gs_err numbers(ctx_t *c, const key_t *k, const gs__ynode_t *n, double *out, int max,
                      int *out_n)
{
    char **v;
    int cnt;
    GS_TRY(items(c, k, n, &v, &cnt));
    gs_err e = GS_OK;
    if (cnt > max)
        e = fail(c, n->line, "%s takes at most %d numbers, got %d", k->key, max, cnt);
    for (int i = 0; i < cnt && e == GS_OK; i++)
        if (gs_parse_f64(v[i], &out[i]) != GS_OK)
            e = fail(c, n->line, "%s must hold numbers, got \"%s\"", k->key, v[i]);
    free_strv(v, cnt);
    *out_n = cnt;
    return e;
}

static gs_err conv_scalar(ctx_t *c, const key_t *k, const gs__ynode_t *n, gs_job_t *j)
{
    const char *s = n->value;
    int line = n->line;
    switch (k->type) {
    case K_STR:
    case K_TIME: {
        char **dst = field(j, k->off);
        gs_free(*dst);
        *dst = gs_xstrdup(s);
        return GS_OK;
    }
    case K_NAME: {
        size_t len = strlen(s);
        if (len > 64 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789._-") != len)
            return fail(c, line, "%s must be 1 to 64 characters from A-Z a-z 0-9 . _ -, got \"%s\"",
                        k->key, s);
        char **dst = field(j, k->off);
        gs_free(*dst);
        *dst = gs_xstrdup(s);
        return GS_OK;
    }
    case K_INT:
    case K_I64: {
        int64_t v;
        if (gs_parse_i64(s, &v) != GS_OK)
            return fail(c, line, "%s must be an integer, got \"%s\"", k->key, s);
        if ((double)v < k->lo || (double)v > k->hi)
            return fail(c, line, "%s must be between %.0f and %.0f, got %s", k->key, k->lo, k->hi,
                        s);
        if (k->type == K_INT)
            *(int *)field(j, k->off) = (int)v;
        else
            *(int64_t *)field(j, k->off) = v;
        return GS_OK;
    }
    case K_F64: {
        double v;
        if (gs_parse_f64(s, &v) != GS_OK)
            return fail(c, line, "%s must be a number, got \"%s\"", k->key, s);
        if (v < k->lo || v > k->hi)
            return fail(c, line, "%s must be between %g and %g, got %s", k->key, k->lo, k->hi, s);
        *(double *)field(j, k->off) = v;
        return GS_OK;
    }
    case K_ENUM: {
        char all[200] = "";
        for (int i = 0; k->names[i]; i++) {
            if (strcasecmp(s, k->names[i]) == 0) {
                *(int *)field(j, k->off) = i;
                return GS_OK;
            }
            snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "",
                     k->names[i]);
        }
        return fail(c, line, "%s must be one of %s, got \"%s\"", k->key, all, s);
    }
    case K_SELECT: {
        double f;
        int64_t nn;
        if (strcasecmp(s, "all") == 0) {
            j->captioner.select = GS_JOB_SELECT_ALL;
        } else if (strcasecmp(s, "none") == 0) {
            j->captioner.select = GS_JOB_SELECT_NONE;
        } else if (strncmp(s, "sample:", 7) == 0 && gs_parse_f64(s + 7, &f) == GS_OK && f > 0 &&
                   f <= 1) {
            j->captioner.select = GS_JOB_SELECT_SAMPLE;
            j->captioner.sample_fraction = f;
        } else if (strncmp(s, "per_scene:", 10) == 0 && gs_parse_i64(s + 10, &nn) == GS_OK &&
                   nn >= 1 && nn <= 1000000) {
            j->captioner.select = GS_JOB_SELECT_PER_SCENE;
            j->captioner.per_scene = (int)nn;
        } else {
            return fail(c, line,
                        "%s must be all, none, sample:F (0 < F <= 1) or per_scene:N (N >= 1), "
                        "got \"%s\"",
                        k->key, s);
        }
        return GS_OK;
    }
    default: return GS_EINVAL;
    }
}

static gs_err conv_list(ctx_t *c, const key_t *k, const gs__ynode_t *n, gs_job_t *j)
{
    if (k->type == K_LIST || k->type == K_BANDS) {
        char **v;
        int cnt;
        GS_TRY(items(c, k, n, &v, &cnt));
        for (int i = 0; i < cnt; i++) {
            if (!*v[i] || strlen(v[i]) > 4096) {
                free_strv(v, cnt);
                return fail(c, n->line, "%s holds an empty or too long item", k->key);
            }
        }
        if (k->type == K_LIST) {
            char ***dst = field(j, k->off);
            free_strv(*dst, *(int *)field(j, k->off2));
            *dst = v;
            *(int *)field(j, k->off2) = cnt;
            return GS_OK;
        }
        if (cnt > 3) {
            free_strv(v, cnt);
            return fail(c, n->line, "%s takes at most 3 bands, got %d", k->key, cnt);
        }
        for (int i = 0; i < 3; i++) {
            gs_free(j->composite.bands[i]);
            j->composite.bands[i] = i < cnt ? v[i] : NULL;
        }
        j->composite.n_bands = cnt;
        gs_free(v);
        return GS_OK;
    }
    double v[6];
    int cnt;
    GS_TRY(numbers(c, k, n, v, 6, &cnt));
    if (k->type == K_PAIR) {
        if (cnt != 2 || v[0] < k->lo || v[1] > k->hi || !(v[0] < v[1]))
            return fail(c, n->line, "%s must be two numbers lo < hi within [%g, %g]", k->key, k->lo,
                        k->hi);
        memcpy(field(j, k->off), v, 2 * sizeof *v);
        return GS_OK;
    }
    if (cnt != 2 && cnt != 6)
        return fail(c, n->line, "%s must be lo, hi or three pairs lo, hi (R, G, B), got %d numbers",
                    k->key, cnt);
    double *r = field(j, k->off);
    for (int i = 0; i < 6; i++)
        r[i] = v[cnt == 2 ? i % 2 : i];
    for (int i = 0; i < 3; i++)
        if (!(r[2 * i] < r[2 * i + 1]))
            return fail(c, n->line, "%s: lo must be below hi in every pair", k->key);
    return GS_OK;
}

static gs_err convert(ctx_t *c, const key_t *k, const gs__ynode_t *n, gs_job_t *j)
{
    c->lines[k - keys] = n->line;
    int is_list =
        k->type == K_LIST || k->type == K_BANDS || k->type == K_PAIR || k->type == K_RANGE;
    if (is_list)
        return conv_list(c, k, n, j);
    if (n->kind != GS__Y_SCALAR)
        return fail(c, n->line, "%s must be a single value, not a %s", k->key,
                    n->kind == GS__Y_SEQ ? "list" : "mapping");
    return conv_scalar(c, k, n, j);
}

// ---- tree walking and --set ---------------------------------------------------------------

static gs_err walk(ctx_t *c, const gs__ynode_t *root, gs_job_t *j)
{
    for (size_t i = 0; i < root->n_kids; i++) {
        const gs__ynode_t *n = root->kids[i];
        const key_t *k = find_key(n->key);
        if (k) {
            GS_TRY(convert(c, k, n, j));
            continue;
        }
        if (!is_section(n->key, strlen(n->key))) {
            const char *hint = closest_key(n->key);
            return hint
                       ? fail(c, n->line, "unknown key \"%s\" (did you mean \"%s\"?)", n->key, hint)
                       : fail(c, n->line, "unknown key \"%s\"", n->key);
        }
        if (n->kind != GS__Y_MAP)
            return fail(c, n->line, "%s must be a mapping of keys (e.g. %s.<key>: value)", n->key,
                        n->key);
        for (size_t m = 0; m < n->n_kids; m++) {
            const gs__ynode_t *kid = n->kids[m];
            char full[300];
            snprintf(full, sizeof full, "%s.%s", n->key, kid->key);
            const key_t *kk = find_key(full);
            if (!kk) {
                const char *hint = closest_key(full);
                return hint ? fail(c, kid->line, "unknown key \"%s\" (did you mean \"%s\"?)", full,
                                   hint)
                            : fail(c, kid->line, "unknown key \"%s\"", full);
            }
            GS_TRY(convert(c, kk, kid, j));
        }
    }
    return GS_OK;
}

static gs_err apply_set(ctx_t *c, gs__ynode_t *root, const char *kv)
{
    char key[256], val[8192];
    if (gs_split_kv(kv, key, sizeof key, val, sizeof val) != GS_OK)
        return fail(c, -1, "--set \"%.200s\" must be key=value (e.g. tiling.size=512)", kv);
    if (!find_key(key)) {
        const char *hint = closest_key(key);
        return hint ? fail(c, 0, "unknown key \"%s\" (did you mean \"%s\"?)", key, hint)
                    : fail(c, 0, "unknown key \"%s\"", key);
    }
    char *dot = strchr(key, '.');
    gs__ynode_t *parent = root;
    const char *leaf = key;
    if (dot) {
        *dot = '\0';
        leaf = dot + 1;
        parent = gs__ynode_get(root, key);
        if (parent && parent->kind != GS__Y_MAP)
            return fail(c, parent->line, "%s must be a mapping of keys", key);
        if (!parent) {
            parent = gs__ynode_new(GS__Y_MAP, key, "", 0);
            gs__ynode_add(root, parent);
        }
    }
    gs__ynode_replace(parent, leaf, gs__ynode_new(GS__Y_SCALAR, leaf, val, 0));
    return GS_OK;
}

// ---- validation across keys ---------------------------------------------------------------

static int count_fields(const char *pat, const char *field_name)
{
    int n = 0;
    for (const char *p = pat; (p = strstr(p, field_name)); p++)
        n++;
    return n;
}

static gs_err check_group(ctx_t *c, const char *g)
{
    if (!*g)
        return GS_OK;
    int line = line_of(c, "scenes.group");
    if (strchr(g, '/'))
        return fail(c, line, "scenes.group matches file names, so it cannot hold '/', got \"%s\"",
                    g);
    if (count_fields(g, "{scene}") != 1 || count_fields(g, "{band}") != 1)
        return fail(c, line, "scenes.group must hold {scene} and {band} once each, got \"%s\"", g);
    for (const char *p = g; *p; p++) {
        if (*p == '{' && strncmp(p, "{scene}", 7) != 0 && strncmp(p, "{band}", 6) != 0)
            return fail(c, line, "scenes.group knows only {scene} and {band}, got \"%s\"", g);
        if (*p == '*' || *p == '?' || *p == '[')
            return fail(c, line,
                        "scenes.group takes no wildcards (only {scene} and {band}), got "
                        "\"%s\"",
                        g);
    }
    return GS_OK;
}

static gs_err validate(ctx_t *c, gs_job_t *j)
{
    if (j->n_inputs < 1)
        return fail(c, line_of(c, "inputs"),
                    "inputs is required (a list of paths, globs, directories, @list "
                    "files or /vsi... paths)");
    if (!*j->output)
        return fail(c, line_of(c, "output"), "output is required (the output directory)");
    if (!*j->encoder.model)
        return fail(c, line_of(c, "encoder.model"),
                    "encoder.model is required (the encoder weights)");
    if (!*j->name)
        return fail(c, -1, "name is required");
    if (j->tiling.overlap >= j->tiling.size)
        return fail(c, line_of(c, "tiling.overlap"),
                    "tiling.overlap must be below tiling.size (%d), got %d", j->tiling.size,
                    j->tiling.overlap);
    for (int i = 0; i < j->scenes.n_extensions; i++)
        if (strchr(j->scenes.extensions[i], '/'))
            return fail(c, line_of(c, "scenes.extensions"), "scenes.extensions holds a '/': \"%s\"",
                        j->scenes.extensions[i]);
    GS_TRY(check_group(c, j->scenes.group));
    int nb = j->composite.n_bands;
    if (j->composite.mode == GS_JOB_COMPOSITE_RGB && nb != 0 && nb != 1 && nb != 3)
        return fail(c, line_of(c, "composite.bands"),
                    "composite.bands must name 1 (grey) or 3 bands (R, G, B), got %d", nb);
    if (j->composite.mode == GS_JOB_COMPOSITE_SAR && nb != 2)
        return fail(c, line_of(c, "composite.bands"),
                    "composite.bands must name 2 bands (VV, VH) when composite.mode is "
                    "sar, got %d",
                    nb);
    char why[256];
    if (*j->time.pattern && gs_acqtime_check_pattern(j->time.pattern, why, sizeof why) != GS_OK)
        return fail(c, line_of(c, "time.pattern"), "time.pattern %s", why);
    if (j->time.from == GS_JOB_TIME_FILENAME && !*j->time.pattern)
        return fail(c, line_of(c, "time.from"),
                    "time.pattern is required when time.from is filename");
    if (j->time.from == GS_JOB_TIME_GIVEN &&
        gs_acqtime_parse(j->time.value, &j->time.given) != GS_OK)
        return fail(c, line_of(c, "time.value"),
                    "time.value must be a date-time such as 2017-08-13 or 2017-08-13T15:54:15Z "
                    "when time.from is given, got \"%s\"",
                    j->time.value);
    if (!*j->encoder.arch)
        return fail(c, line_of(c, "encoder.arch"), "encoder.arch must not be empty (use auto)");
    if (j->changes.grid == GS_JOB_GRID_CRS && (!*j->changes.crs || !(j->changes.resolution > 0)))
        return fail(c, line_of(c, "changes.grid"),
                    "changes.crs and a changes.resolution above 0 are required when "
                    "changes.grid is crs");
    if (*j->progress.publish) {
        const char *ep = j->progress.publish + (*j->progress.publish == '>' ||
                                                *j->progress.publish == '@');
        if (!(strncmp(ep, "tcp://", 6) == 0 || strncmp(ep, "ipc://", 6) == 0) || !ep[6])
            return fail(c, line_of(c, "progress.publish"),
                        "progress.publish must be a ZeroMQ endpoint tcp://... or ipc://... "
                        "(>tcp://... to connect), got \"%s\"",
                        j->progress.publish);
    }
    if (!*j->index.type || strchr(j->index.type, ' '))
        return fail(c, line_of(c, "index.type"),
                    "index.type must be auto, flat or a FAISS factory string without "
                    "spaces, got \"%s\"",
                    j->index.type);
    return GS_OK;
}

// ---- load ---------------------------------------------------------------------------------

void gs_job_destroy(gs_job_t **p)
{
    if (!p || !*p)
        return;
    gs_job_t *j = *p;
    for (int i = 0; i < N_KEYS; i++) {
        const key_t *k = &keys[i];
        if (k->type == K_STR || k->type == K_NAME || k->type == K_TIME)
            gs_free(*(char **)field(j, k->off));
        else if (k->type == K_LIST)
            free_strv(*(char ***)field(j, k->off), *(int *)field(j, k->off2));
    }
    for (int i = 0; i < 3; i++)
        gs_free(j->composite.bands[i]);
    GS_FREE(*p);
}

static gs_job_t *job_with_defaults(void)
{
    gs_job_t *j = gs_xcalloc(1, sizeof *j);
    char buf[64];
    ctx_t c = {.label = "<defaults>", .err = buf, .err_nbytes = sizeof buf};
    for (int i = 0; i < N_KEYS; i++) {
        // defaults go through the --set path (line 0: lists split on commas)
        gs__ynode_t *n = gs__ynode_new(GS__Y_SCALAR, keys[i].key, keys[i].dflt, 0);
        gs_err e = convert(&c, &keys[i], n, j);
        gs__ynode_free(&n);
        GS_ASSERT(e == GS_OK);
    }
    return j;
}

// The default name: the file's base name without its extension, other characters as '-'.
static void default_name(gs_job_t *j, const char *label)
{
    if (*j->name)
        return;
    const char *base = strrchr(label, '/');
    base = base ? base + 1 : label;
    size_t n = strcspn(base, ".");
    if (n == 0 || n > 64)
        return;
    gs_free(j->name);
    j->name = gs_xstrndup(base, n);
    for (char *p = j->name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            *p = '-';
}

gs_err gs_job_parse(const char *yaml, size_t nbytes, const char *label, const char *const *sets,
                    int n_sets, gs_job_t **out, char *err, size_t err_nbytes)
{
    char local[1024];
    ctx_t c = {.label = label ? label : "<memory>",
               .err = err ? err : local,
               .err_nbytes = err ? err_nbytes : sizeof local};
    for (int i = 0; i < N_KEYS; i++)
        c.lines[i] = -1;
    if (!yaml || !out || n_sets < 0 || (n_sets > 0 && !sets))
        return GS_EINVAL;
    gs__ynode_t *root = NULL;
    gs_job_t *j = NULL;
    char why[512];
    gs_err e = gs__yaml_parse(yaml, nbytes, &root, why, sizeof why);
    if (e != GS_OK) {
        if (e == GS_EFORMAT)
            e = fail(&c, -1, "%s", why);
        goto out;
    }
    if (n_sets > GS_JOB_MAX_SETS) {
        e = fail(&c, -1, "more than %d --set overrides", GS_JOB_MAX_SETS);
        goto out;
    }
    for (int i = 0; i < n_sets && e == GS_OK; i++)
        e = apply_set(&c, root, sets[i]);
    if (e != GS_OK)
        goto out;
    j = job_with_defaults();
    if ((e = walk(&c, root, j)) != GS_OK)
        goto out;
    default_name(j, c.label);
    e = validate(&c, j);
out:
    gs__ynode_free(&root);
    if (e != GS_OK) {
        gs_job_destroy(&j);
        if (!err)
            GS_LOG_ERROR("%s", local);
        return e;
    }
    *out = j;
    return GS_OK;
}

gs_err gs_job_load(const char *path, const char *const *sets, int n_sets, gs_job_t **out, char *err,
                   size_t err_nbytes)
{
    if (!path)
        return GS_EINVAL;
    char msg[600] = "";
    char *text = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, sizeof msg, "job \"%s\": could not open it: %s", path, strerror(errno));
    } else {
        text = gs_xmalloc(GS__YAML_MAX_NBYTES + 1);
        n = fread(text, 1, GS__YAML_MAX_NBYTES + 1, f);
        if (ferror(f))
            snprintf(msg, sizeof msg, "job \"%s\": could not read it: %s", path, strerror(errno));
        else if (n > GS__YAML_MAX_NBYTES)
            snprintf(msg, sizeof msg, "job \"%s\": the file is larger than 4 MiB", path);
        fclose(f);
    }
    if (*msg) {
        gs_free(text);
        if (err)
            snprintf(err, err_nbytes, "%s", msg);
        else
            GS_LOG_ERROR("%s", msg);
        return GS_EIO;
    }
    gs_err e = gs_job_parse(text, n, path, sets, n_sets, out, err, err_nbytes);
    gs_free(text);
    return e;
}

// ---- canonical text -----------------------------------------------------------------------

static gs_err put_str(gs_buf_t *b, const char *s)
{
    GS_TRY(gs_buf_puts(b, "\""));
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            GS_TRY(gs_buf_printf(b, "\\%c", *p));
        else if (*p == '\n')
            GS_TRY(gs_buf_puts(b, "\\n"));
        else if (*p == '\t')
            GS_TRY(gs_buf_puts(b, "\\t"));
        else if (*p < 0x20 || *p == 0x7f)
            GS_TRY(gs_buf_printf(b, "\\x%02X", *p));
        else
            GS_TRY(gs_buf_append(b, p, 1));
    }
    return gs_buf_puts(b, "\"");
}

// The shortest %g text that reads back as exactly v.
static void fmt_num(double v, char *out, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        double back;
        if (gs_parse_f64(out, &back) == GS_OK && back == v)
            return;
    }
}

static gs_err put_value(gs_buf_t *b, const key_t *k, const gs_job_t *j, const char *indent)
{
    char num[64];
    switch (k->type) {
    case K_STR:
    case K_NAME:
    case K_TIME: return put_str(b, *(char *const *)field((gs_job_t *)j, k->off));
    case K_INT: return gs_buf_printf(b, "%d", *(const int *)field((gs_job_t *)j, k->off));
    case K_I64:
        return gs_buf_printf(b, "%lld", (long long)*(const int64_t *)field((gs_job_t *)j, k->off));
    case K_F64:
        fmt_num(*(const double *)field((gs_job_t *)j, k->off), num, sizeof num);
        return gs_buf_puts(b, num);
    case K_ENUM: return gs_buf_puts(b, k->names[*(const int *)field((gs_job_t *)j, k->off)]);
    case K_SELECT:
        if (j->captioner.select == GS_JOB_SELECT_SAMPLE) {
            fmt_num(j->captioner.sample_fraction, num, sizeof num);
            return gs_buf_printf(b, "\"sample:%s\"", num);
        }
        if (j->captioner.select == GS_JOB_SELECT_PER_SCENE)
            return gs_buf_printf(b, "\"per_scene:%d\"", j->captioner.per_scene);
        return gs_buf_puts(b, j->captioner.select == GS_JOB_SELECT_NONE ? "none" : "all");
    case K_LIST:
    case K_BANDS: {
        char *const *v =
            k->type == K_LIST ? *(char **const *)field((gs_job_t *)j, k->off) : j->composite.bands;
        int n = *(const int *)field((gs_job_t *)j, k->off2);
        if (n == 0)
            return gs_buf_puts(b, "[]");
        for (int i = 0; i < n; i++) {
            GS_TRY(gs_buf_printf(b, "\n%s  - ", indent));
            GS_TRY(put_str(b, v[i]));
        }
        return GS_OK;
    }
    case K_PAIR:
    case K_RANGE: {
        const double *v = field((gs_job_t *)j, k->off);
        int n = k->type == K_PAIR ? 2 : 6;
        GS_TRY(gs_buf_puts(b, "["));
        for (int i = 0; i < n; i++) {
            fmt_num(v[i], num, sizeof num);
            GS_TRY(gs_buf_printf(b, "%s%s", i ? ", " : "", num));
        }
        return gs_buf_puts(b, "]");
    }
    }
    return GS_EINVAL;
}

gs_err gs_job_canonical(const gs_job_t *self, char **out, size_t *out_nbytes)
{
    gs_buf_t b;
    gs_buf_init(&b, GS__YAML_MAX_NBYTES);
    gs_err e = gs_buf_puts(&b, "# geoscribe job, canonical form 1\n");
    char section[64] = "";
    for (int i = 0; i < N_KEYS && e == GS_OK; i++) {
        const char *key = keys[i].key, *dot = strchr(key, '.');
        const char *indent = "";
        if (dot) {
            size_t n = (size_t)(dot - key);
            if (strlen(section) != n || strncmp(section, key, n) != 0) {
                snprintf(section, sizeof section, "%.*s", (int)n, key);
                e = gs_buf_printf(&b, "%s:\n", section);
            }
            key = dot + 1;
            indent = "  ";
        }
        // "key: value", or "key:" followed by one "  - item" line per item
        const key_t *k = &keys[i];
        int items_follow = (k->type == K_LIST || k->type == K_BANDS) &&
                           *(const int *)field((gs_job_t *)self, k->off2) > 0;
        if (e == GS_OK)
            e = gs_buf_printf(&b, "%s%s:%s", indent, key, items_follow ? "" : " ");
        if (e == GS_OK)
            e = put_value(&b, &keys[i], self, indent);
        if (e == GS_OK)
            e = gs_buf_puts(&b, "\n");
    }
    if (e != GS_OK) {
        gs_buf_cleanup(&b);
        return e;
    }
    if (out_nbytes)
        *out_nbytes = b.len;
    *out = gs_buf_steal(&b);
    return GS_OK;
}

uint64_t gs_job_hash(const gs_job_t *self)
{
    char *text = NULL;
    size_t n = 0;
    if (gs_job_canonical(self, &text, &n) != GS_OK)
        return 0;
    uint64_t h = gs_hash_bytes(text, n, 0x67736A6F6231ULL); // "gsjob1"
    gs_free(text);
    return h;
}

gs_err gs_job_pack(const gs_job_t *self, char **out, size_t *out_nbytes)
{
    return gs_job_canonical(self, out, out_nbytes);
}

gs_err gs_job_unpack(const char *data, size_t nbytes, gs_job_t **out, char *err, size_t err_nbytes)
{
    return gs_job_parse(data, nbytes, "<packed>", NULL, 0, out, err, err_nbytes);
}

int gs_job_caption_selects(const gs_job_t *self, uint64_t tile_id, int index_in_scene)
{
    if (!*self->captioner.model)
        return 0;
    switch (self->captioner.select) {
    case GS_JOB_SELECT_ALL: return 1;
    case GS_JOB_SELECT_NONE: return 0;
    case GS_JOB_SELECT_PER_SCENE: return index_in_scene < self->captioner.per_scene;
    case GS_JOB_SELECT_SAMPLE: {
        // top 53 bits of the mixed id as a uniform fraction in [0, 1)
        double u = (double)(gs_hash_mix64(tile_id) >> 11) * (1.0 / 9007199254740992.0);
        return u < self->captioner.sample_fraction;
    }
    }
    return 0;
}
