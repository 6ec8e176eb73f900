// The CLIP BPE tokenizer (see clip_bpe.h for the pipeline): vocabulary loading from open_clip's
// gzip merges file or a Hugging Face vocab.json + merges.txt, text cleaning, the pre-tokenizer
// regex written out by hand, and byte-level BPE by merge rank. The handle is read-only after
// open; every encode owns its scratch, so concurrent encodes need no lock. There is no per-word
// cache: BPE of a word costs a few hash probes, cheaper than a locked cache would be.
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define GS_LOG_MODULE "model"
#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/clip_bpe.h"
#include "model/clip_bpe_int.h"
#include "model/html_int.h"

// open_clip keeps merges[1 : 49152 - 256 - 2 + 1] of the file: 48894 merges after a header line.
#define N_MERGES 48894
#define MAX_VOCAB_FILE_NBYTES (64u << 20)
#define MAX_VOCAB_IDS (1 << 20)
// Words up to this many bytes use the simple quadratic BPE, longer ones the heap.
#define SMALL_WORD 32

typedef struct {
    int32_t a, b;   // symbol ids of the pair; a == -1: empty slot
    uint32_t rank;  // merge rank (line order)
    int32_t merged; // id of the joined symbol
} pair_entry_t;

struct gs_clip_bpe {
    int32_t n_vocab;
    char *strings;      // every token string, NUL-terminated, one after another
    uint32_t *str_off;  // (n_vocab) offset of each id's string; UINT32_MAX: no string
    int32_t byte_id[256];     // byte -> id of its bytes_to_unicode symbol
    int32_t byte_end_id[256]; // byte -> id of the symbol + "</w>"
    pair_entry_t *pairs;      // open addressing, (pair_mask + 1) slots
    size_t pair_mask;
    int pair_shift;
    int32_t sot, eot;
};

// ---- bytes_to_unicode -------------------------------------------------------------------------

static bool byte_is_printable(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// byte_symbols: the code point of each byte in the bytes_to_unicode alphabet and each byte's
// position in open_clip's vocabulary order (printable bytes first, then the others shifted to
// U+0100 and up).
static void byte_symbols(uint32_t cp[256], int32_t order[256])
{
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if (byte_is_printable(b))
            cp[b] = (uint32_t)b, order[b] = n++;
    for (int b = 0; b < 256; b++)
        if (!byte_is_printable(b))
            cp[b] = 256u + (uint32_t)extra++, order[b] = n++;
}

// ---- string -> id hash (open time only) -------------------------------------------------------

typedef struct {
    const char *base;      // the strings blob
    const uint32_t *off;   // per id
    int32_t *slots;        // id or -1
    size_t mask;
} str_index_t;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void str_index_put(str_index_t *x, int32_t id)
{
    const char *s = x->base + x->off[id];
    size_t n = strlen(s);
    size_t h = (size_t)hash_bytes(s, n) & x->mask;
    while (x->slots[h] >= 0) {
        if (strcmp(x->base + x->off[x->slots[h]], s) == 0)
            break; // a later id with the same string wins, as in a Python dict
        h = (h + 1) & x->mask;
    }
    x->slots[h] = id;
}

static int32_t str_index_get(const str_index_t *x, const char *s, size_t n)
{
    size_t h = (size_t)hash_bytes(s, n) & x->mask;
    while (x->slots[h] >= 0) {
        const char *t = x->base + x->off[x->slots[h]];
        if (strncmp(t, s, n) == 0 && t[n] == '\0')
            return x->slots[h];
        h = (h + 1) & x->mask;
    }
    return -1;
}

// ---- merges table -----------------------------------------------------------------------------

static size_t pair_hash(const gs_clip_bpe_t *self, int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return (size_t)(k >> self->pair_shift);
}

static const pair_entry_t *pair_find(const gs_clip_bpe_t *self, int32_t a, int32_t b)
{
    size_t h = pair_hash(self, a, b);
    for (;;) {
        const pair_entry_t *e = &self->pairs[h];
        if (e->a == a && e->b == b)
            return e;
        if (e->a < 0)
            return NULL;
        h = (h + 1) & self->pair_mask;
    }
}

static void pair_put(gs_clip_bpe_t *self, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    size_t h = pair_hash(self, a, b);
    while (self->pairs[h].a >= 0 && !(self->pairs[h].a == a && self->pairs[h].b == b))
        h = (h + 1) & self->pair_mask;
    // a repeated pair keeps its last rank, like open_clip's dict(zip(merges, range(...)))
    self->pairs[h] = (pair_entry_t){a, b, rank, merged};
}

// ---- vocabulary files -------------------------------------------------------------------------

// read_all: a whole file through zlib (gzip or plain), NUL-terminated.
static gs_err read_all(const char *path, char **out_data, size_t *out_n)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        GS_LOG_ERROR("could not open vocabulary \"%s\": %s", path, strerror(errno));
        return errno == ENOENT ? GS_ENOTFOUND : GS_EIO;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        GS_LOG_ERROR("could not open vocabulary \"%s\": %s", path, strerror(errno));
        return GS_EIO;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = gs_trymalloc(cap + 1);
    gs_err err = buf ? GS_OK : GS_ENOMEM;
    while (err == GS_OK) {
        if (n == cap) {
            if (cap >= MAX_VOCAB_FILE_NBYTES) {
                GS_LOG_ERROR("vocabulary \"%s\" is larger than %u bytes", path,
                             MAX_VOCAB_FILE_NBYTES);
                err = GS_EFORMAT;
                break;
            }
            char *p = gs_tryrealloc(buf, 2 * cap + 1);
            if (!p) {
                err = GS_ENOMEM;
                break;
            }
            buf = p;
            cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            int zerr;
            GS_LOG_ERROR("could not read vocabulary \"%s\": %s", path, gzerror(f, &zerr));
            err = GS_EIO;
        } else if (got == 0) {
            break;
        }
        n += got > 0 ? (size_t)got : 0;
    }
    gzclose(f);
    if (err != GS_OK) {
        gs_free(buf);
        return err;
    }
    buf[n] = '\0';
    *out_data = buf;
    *out_n = n;
    return GS_OK;
}

// split_merge: a merges line "A B" (ASCII whitespace around, as Python's str.split()) into its
// two fields; false if it has not exactly two.
static bool split_merge(char *line, char **a, size_t *na, char **b, size_t *nb)
{
    char *f[3];
    size_t len[3];
    int k = 0;
    for (char *p = line; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
            p++;
        if (!*p)
            break;
        if (k == 2)
            return false;
        f[k] = p;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f'))
            p++;
        len[k] = (size_t)(p - f[k]);
        k++;
    }
    if (k != 2)
        return false;
    *a = f[0], *na = len[0], *b = f[1], *nb = len[1];
    return true;
}

// next_line: NUL-terminate the line at *pos and advance past it; NULL at the end of the text.
static char *next_line(char **pos, char *end)
{
    if (*pos >= end)
        return NULL;
    char *line = *pos;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    if (nl) {
        *nl = '\0';
        *pos = nl + 1;
    } else {
        *pos = end;
    }
    return line;
}

// build_merges: fill the pair table from lines 1..N_MERGES of `text`, resolving the strings
// with `idx`. GS_EFORMAT (logged with file and line) on a malformed or missing line.
static gs_err build_merges(gs_clip_bpe_t *self, const str_index_t *idx, char *text, size_t n,
                           const char *path)
{
    size_t slots = 1;
    while (slots < 2 * N_MERGES)
        slots <<= 1;
    slots <<= 1; // load factor about 0.37
    self->pairs = gs_trymalloc(slots * sizeof *self->pairs);
    if (!self->pairs)
        return GS_ENOMEM;
    for (size_t i = 0; i < slots; i++)
        self->pairs[i].a = -1;
    self->pair_mask = slots - 1;
    self->pair_shift = 64;
    for (size_t s = slots; s > 1; s >>= 1)
        self->pair_shift--;
    char *pos = text, *end = text + n;
    if (!next_line(&pos, end)) { // header
        GS_LOG_ERROR("vocabulary \"%s\" is empty", path);
        return GS_EFORMAT;
    }
    char joined[1024];
    for (uint32_t r = 0; r < N_MERGES; r++) {
        char *line = next_line(&pos, end);
        char *a, *b;
        size_t na, nb;
        if (!line) {
            GS_LOG_ERROR("vocabulary \"%s\" has no line %u: expected %d merges after the header",
                         path, r + 2, N_MERGES);
            return GS_EFORMAT;
        }
        if (!split_merge(line, &a, &na, &b, &nb) || na + nb >= sizeof joined) {
            GS_LOG_ERROR("vocabulary \"%s\" line %u: expected a merge \"A B\"", path, r + 2);
            return GS_EFORMAT;
        }
        memcpy(joined, a, na);
        memcpy(joined + na, b, nb);
        int32_t ia = str_index_get(idx, a, na), ib = str_index_get(idx, b, nb);
        int32_t im = str_index_get(idx, joined, na + nb);
        if (ia < 0 || ib < 0 || im < 0) {
            GS_LOG_ERROR("vocabulary \"%s\" line %u: merge \"%.*s %.*s\" uses a token missing "
                         "from the vocabulary", path, r + 2, (int)na, a, (int)nb, b);
            return GS_EFORMAT;
        }
        pair_put(self, ia, ib, r, im);
    }
    return GS_OK;
}

// index_strings: a string -> id index over self's strings (caller frees idx->slots).
static gs_err index_strings(const gs_clip_bpe_t *self, str_index_t *idx)
{
    size_t slots = 1;
    while (slots < 2 * (size_t)self->n_vocab)
        slots <<= 1;
    idx->slots = gs_trymalloc(slots * sizeof *idx->slots);
    if (!idx->slots)
        return GS_ENOMEM;
    memset(idx->slots, 0xff, slots * sizeof *idx->slots);
    idx->mask = slots - 1;
    idx->base = self->strings;
    idx->off = self->str_off;
    for (int32_t id = 0; id < self->n_vocab; id++)
        if (self->str_off[id] != UINT32_MAX)
            str_index_put(idx, id);
    return GS_OK;
}

// open_clip's vocabulary: byte symbols, byte symbols + "</w>", merges joined, the specials.
static gs_err open_gz(gs_clip_bpe_t *self, const char *path)
{
    char *text = NULL;
    size_t n = 0;
    str_index_t idx = {0};
    GS_TRY(read_all(path, &text, &n));
    uint32_t cps[256];
    int32_t order[256];
    byte_symbols(cps, order);
    self->n_vocab = 512 + N_MERGES + 2;
    // strings: bytes (2 x <= 7 bytes each), merges (<= their line + NUL), specials
    size_t cap = 256 * 16 + n + N_MERGES + 64, used = 0;
    self->strings = gs_trymalloc(cap);
    self->str_off = gs_trymalloc((size_t)self->n_vocab * sizeof *self->str_off);
    gs_err err = GS_OK;
    if (!self->strings || !self->str_off) {
        err = GS_ENOMEM;
        goto out;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int k = gs__utf8_encode(cps[b], u);
        for (int end = 0; end < 2; end++) {
            int32_t id = order[b] + 256 * end;
            self->str_off[id] = (uint32_t)used;
            memcpy(self->strings + used, u, (size_t)k);
            used += (size_t)k;
            if (end) {
                memcpy(self->strings + used, "</w>", 4);
                used += 4;
            }
            self->strings[used++] = '\0';
            (end ? self->byte_end_id : self->byte_id)[b] = id;
        }
    }
    // the merge lines, joined, in order (a copy: build_merges cuts `text` into lines later)
    const char *p = text, *end = text + n;
    const char *nl = memchr(p, '\n', n);
    p = nl ? nl + 1 : end;
    for (int r = 0; r < N_MERGES; r++) {
        self->str_off[512 + r] = (uint32_t)used;
        const char *e = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!e)
            e = end;
        for (const char *q = p; q < e; q++)
            if (!(*q == ' ' || *q == '\t' || *q == '\r' || *q == '\v' || *q == '\f'))
                self->strings[used++] = *q;
        self->strings[used++] = '\0';
        p = e < end ? e + 1 : end;
    }
    self->sot = 512 + N_MERGES;
    self->eot = self->sot + 1;
    self->str_off[self->sot] = (uint32_t)used;
    memcpy(self->strings + used, "<start_of_text>", 16);
    used += 16;
    self->str_off[self->eot] = (uint32_t)used;
    memcpy(self->strings + used, "<end_of_text>", 14);
    used += 14;
    GS_ASSERT(used <= cap);
    err = index_strings(self, &idx);
    if (err == GS_OK)
        err = build_merges(self, &idx, text, n, path);
out:
    gs_free(idx.slots);
    gs_free(text);
    return err;
}

// Hugging Face layout: vocab.json (token -> id) and merges.txt beside it.
static gs_err open_hf(gs_clip_bpe_t *self, const char *vocab_path, const char *merges_path)
{
    if (!gs_path_exists(vocab_path)) {
        GS_LOG_ERROR("could not open vocabulary \"%s\": %s", vocab_path, strerror(ENOENT));
        return GS_ENOTFOUND;
    }
    json_error_t jerr;
    json_t *root = json_load_file(vocab_path, 0, &jerr);
    char *text = NULL;
    size_t n = 0, used = 0;
    str_index_t idx = {0};
    gs_err err = GS_OK;
    if (!root || !json_is_object(root)) {
        GS_LOG_ERROR("vocabulary \"%s\" line %d: %s", vocab_path, root ? 1 : jerr.line,
                     root ? "expected a JSON object" : jerr.text);
        err = GS_EFORMAT;
        goto out;
    }
    const char *key;
    json_t *val;
    size_t total = 0;
    json_int_t max_id = -1;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_VOCAB_IDS) {
            GS_LOG_ERROR("vocabulary \"%s\": token \"%s\" has no valid id", vocab_path, key);
            err = GS_EFORMAT;
            goto out;
        }
        max_id = id > max_id ? id : max_id;
        total += strlen(key) + 1;
    }
    self->n_vocab = (int32_t)(max_id + 1);
    self->strings = gs_trymalloc(total + 1);
    self->str_off = gs_trymalloc(((size_t)self->n_vocab + 1) * sizeof *self->str_off);
    if (!self->strings || !self->str_off) {
        err = GS_ENOMEM;
        goto out;
    }
    memset(self->str_off, 0xff, ((size_t)self->n_vocab + 1) * sizeof *self->str_off);
    json_object_foreach(root, key, val) {
        size_t k = strlen(key) + 1;
        self->str_off[json_integer_value(val)] = (uint32_t)used;
        memcpy(self->strings + used, key, k);
        used += k;
    }
    err = index_strings(self, &idx);
    if (err != GS_OK)
        goto out;
    uint32_t cps[256];
    int32_t order[256];
    byte_symbols(cps, order);
    for (int b = 0; b < 256; b++) {
        char s[8];
        uint8_t u[4];
        int k = gs__utf8_encode(cps[b], u);
        memcpy(s, u, (size_t)k);
        memcpy(s + k, "</w>", 4);
        self->byte_id[b] = str_index_get(&idx, s, (size_t)k);
        self->byte_end_id[b] = str_index_get(&idx, s, (size_t)k + 4);
        if (self->byte_id[b] < 0 || self->byte_end_id[b] < 0) {
            GS_LOG_ERROR("vocabulary \"%s\": no token for byte 0x%02x", vocab_path, b);
            err = GS_EFORMAT;
            goto out;
        }
    }
    self->sot = str_index_get(&idx, "<start_of_text>", 15);
    if (self->sot < 0)
        self->sot = str_index_get(&idx, "<|startoftext|>", 15);
    self->eot = str_index_get(&idx, "<end_of_text>", 13);
    if (self->eot < 0)
        self->eot = str_index_get(&idx, "<|endoftext|>", 13);
    if (self->sot < 0 || self->eot < 0) {
        GS_LOG_ERROR("vocabulary \"%s\": no start/end of text token", vocab_path);
        err = GS_EFORMAT;
        goto out;
    }
    err = read_all(merges_path, &text, &n);
    if (err != GS_OK)
        goto out;
    // Hugging Face strips the text before splitting it into lines
    size_t skip = 0;
    while (skip < n && (text[skip] == ' ' || text[skip] == '\n' || text[skip] == '\t' ||
                        text[skip] == '\r'))
        skip++;
    err = build_merges(self, &idx, text + skip, n - skip, merges_path);
out:
    gs_free(text);
    gs_free(idx.slots);
    json_decref(root);
    return err;
}

// ---- open / close -----------------------------------------------------------------------------

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

gs_err gs_clip_bpe_open(const char *path, gs_clip_bpe_t **out)
{
    if (!path || !out)
        return GS_EINVAL;
    *out = NULL;
    gs_clip_bpe_t *self = gs_xcalloc(1, sizeof *self);
    gs_err err;
    if (gs_is_dir(path)) {
        char *vocab = gs_path_join(path, "vocab.json");
        char *merges = gs_path_join(path, "merges.txt");
        err = open_hf(self, vocab, merges);
        gs_free(vocab);
        gs_free(merges);
    } else if (ends_with(path, ".json")) {
        const char *slash = strrchr(path, '/');
        char *dir = slash ? gs_xstrndup(path, (size_t)(slash - path)) : gs_xstrdup(".");
        char *merges = gs_path_join(dir, "merges.txt");
        err = open_hf(self, path, merges);
        gs_free(dir);
        gs_free(merges);
    } else {
        err = open_gz(self, path);
    }
    if (err != GS_OK) {
        gs_clip_bpe_close(&self);
        return err;
    }
    *out = self;
    return GS_OK;
}

void gs_clip_bpe_close(gs_clip_bpe_t **p)
{
    if (!p || !*p)
        return;
    gs_clip_bpe_t *self = *p;
    gs_free(self->strings);
    gs_free(self->str_off);
    gs_free(self->pairs);
    gs_free(self);
    *p = NULL;
}

int32_t gs_clip_bpe_sot(const gs_clip_bpe_t *self) { return self->sot; }
int32_t gs_clip_bpe_eot(const gs_clip_bpe_t *self) { return self->eot; }
int32_t gs_clip_bpe_vocab_size(const gs_clip_bpe_t *self) { return self->n_vocab; }

const char *gs_clip_bpe_token_str(const gs_clip_bpe_t *self, int32_t id)
{
    if (!self || id < 0 || id >= self->n_vocab || self->str_off[id] == UINT32_MAX)
        return NULL;
    return self->strings + self->str_off[id];
}

// ---- BPE of one word --------------------------------------------------------------------------

static uint32_t pair_rank(const gs_clip_bpe_t *self, int32_t a, int32_t b, int32_t *merged)
{
    const pair_entry_t *e = pair_find(self, a, b);
    if (!e)
        return UINT32_MAX;
    *merged = e->merged;
    return e->rank;
}

// bpe_small: open_clip's loop as written: merge every occurrence of the lowest-ranked pair, left
// to right, until no pair has a rank. Quadratic, fastest for short words. rank[i] / merged[i]
// describe the pair (sym[i], sym[i + 1]); after a pass only pairs touching a new symbol are
// looked up again (two untouched neighbours were neighbours before, with the same rank).
static size_t bpe_small(const gs_clip_bpe_t *self, int32_t *sym, size_t m, uint32_t *rank,
                        int32_t *merged)
{
    for (size_t i = 0; i + 1 < m; i++)
        rank[i] = pair_rank(self, sym[i], sym[i + 1], &merged[i]);
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[best])
                best = i;
        uint32_t r = rank[best];
        if (r == UINT32_MAX)
            break;
        int32_t joined = merged[best];
        size_t w = 0, prev_old = 0;
        bool prev_fresh = false;
        for (size_t i = 0; i < m;) {
            size_t old = i;
            bool fresh = i + 1 < m && rank[i] == r; // ranks are unique: this is the same pair
            int32_t s = fresh ? joined : sym[i];
            i += fresh ? 2 : 1;
            if (w > 0) { // the pair (sym[w - 1], s); rank[w - 1] is below every index still read
                if (fresh || prev_fresh) {
                    rank[w - 1] = pair_rank(self, sym[w - 1], s, &merged[w - 1]);
                } else {
                    rank[w - 1] = rank[prev_old];
                    merged[w - 1] = merged[prev_old];
                }
            }
            sym[w++] = s;
            prev_fresh = fresh;
            prev_old = old;
        }
        m = w;
    }
    return m;
}

typedef struct {
    uint32_t rank;
    uint32_t pos; // node of the left symbol
    int32_t a, b; // the pair when pushed (stale entries are skipped)
} heap_entry_t;

static bool heap_less(const heap_entry_t *x, const heap_entry_t *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(heap_entry_t *h, size_t *n, heap_entry_t e)
{
    size_t i = (*n)++;
    while (i > 0 && heap_less(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static heap_entry_t heap_pop(heap_entry_t *h, size_t *n)
{
    heap_entry_t top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

// bpe_heap: the same result in O(m log m) for long words. All pairs of the lowest rank are taken
// from the heap at once and merged left to right, and the pairs they create are pushed only
// afterwards, which is exactly one pass of open_clip's loop. Returns 0 when out of memory.
static size_t bpe_heap(const gs_clip_bpe_t *self, int32_t *sym, size_t m)
{
    size_t cap = 3 * m;
    int32_t *next = gs_trymalloc(m * 2 * sizeof *next);
    heap_entry_t *heap = gs_trymalloc(cap * sizeof *heap);
    uint32_t *batch = gs_trymalloc(m * sizeof *batch);
    if (!next || !heap || !batch) {
        gs_free(next);
        gs_free(heap);
        gs_free(batch);
        return 0;
    }
    int32_t *prev = next + m;
    size_t nh = 0;
    for (size_t i = 0; i < m; i++) {
        next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        int32_t mg;
        if (i + 1 < m && pair_rank(self, sym[i], sym[i + 1], &mg) != UINT32_MAX)
            heap_push(heap, &nh, (heap_entry_t){pair_rank(self, sym[i], sym[i + 1], &mg),
                                                (uint32_t)i, sym[i], sym[i + 1]});
    }
    while (nh > 0) {
        uint32_t r = heap[0].rank;
        size_t nb = 0;
        while (nh > 0 && heap[0].rank == r) {
            heap_entry_t e = heap_pop(heap, &nh);
            int32_t nx = next[e.pos];
            if (sym[e.pos] != e.a || nx < 0 || sym[nx] != e.b)
                continue; // stale
            int32_t mg;
            pair_rank(self, e.a, e.b, &mg);
            sym[e.pos] = mg;
            sym[nx] = -1;
            next[e.pos] = next[nx];
            if (next[nx] >= 0)
                prev[next[nx]] = (int32_t)e.pos;
            batch[nb++] = e.pos;
        }
        for (size_t k = 0; k < nb; k++) {
            int32_t p = (int32_t)batch[k], mg;
            if (sym[p] < 0)
                continue;
            int32_t l = prev[p], nx = next[p];
            uint32_t rr;
            if (l >= 0 && (rr = pair_rank(self, sym[l], sym[p], &mg)) != UINT32_MAX)
                heap_push(heap, &nh, (heap_entry_t){rr, (uint32_t)l, sym[l], sym[p]});
            if (nx >= 0 && (rr = pair_rank(self, sym[p], sym[nx], &mg)) != UINT32_MAX)
                heap_push(heap, &nh, (heap_entry_t){rr, (uint32_t)p, sym[p], sym[nx]});
            GS_ASSERT(nh <= cap);
        }
    }
    size_t w = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        sym[w++] = sym[i];
    gs_free(next);
    gs_free(heap);
    gs_free(batch);
    return w;
}

long gs__clip_bpe_word(const gs_clip_bpe_t *self, const uint8_t *bytes, size_t n, int mode,
                       int32_t *out)
{
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = self->byte_id[bytes[i]];
    out[n - 1] = self->byte_end_id[bytes[n - 1]];
    if (mode == 0 && n <= SMALL_WORD) {
        uint32_t rank[SMALL_WORD];
        int32_t merged[SMALL_WORD];
        return (long)bpe_small(self, out, n, rank, merged);
    }
    if (mode == 1) { // the quadratic loop on any length (tests)
        uint32_t *rank = gs_trymalloc(n * sizeof *rank);
        int32_t *merged = gs_trymalloc(n * sizeof *merged);
        long m = rank && merged ? (long)bpe_small(self, out, n, rank, merged) : -1;
        gs_free(rank);
        gs_free(merged);
        return m;
    }
    size_t m = bpe_heap(self, out, n);
    return m == 0 ? -1 : (long)m;
}

// ---- cleaning ---------------------------------------------------------------------------------

// split_join: Python's " ".join(t.split()) (which also strips): runs of str.isspace() characters
// become one space, none at either end. In place; returns the new length.
static size_t split_join(uint32_t *t, size_t n)
{
    size_t o = 0;
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        if (gs__uc_is_space(t[i])) {
            pending = o > 0;
            continue;
        }
        if (pending)
            t[o++] = ' ';
        pending = false;
        t[o++] = t[i];
    }
    return o;
}

gs_err gs__clip_clean(const char *text, size_t nbytes, bool use_ftfy, gs__cpbuf_t *out)
{
    gs__cpbuf_t a = {0}, tmp[3] = {{0}};
    gs_err err = GS_ENOMEM;
    if (!gs__cpbuf_reserve(&a, nbytes + 1))
        goto out;
    a.n = gs__utf8_decode((const uint8_t *)text, nbytes, a.p, NULL);
    if (use_ftfy) {
        if (!gs__clip_ftfy(a.p, a.n, out, tmp))
            goto out;
        gs__cpbuf_t t = a;
        a = *out;
        *out = t;
    }
    // html.unescape twice (never lengthens), strip + split + join, lower (at most doubles)
    if (!gs__cpbuf_reserve(out, 2 * a.n + 1) || !gs__cpbuf_reserve(&a, a.n + 1))
        goto out;
    out->n = gs__html_unescape(a.p, a.n, out->p);
    a.n = gs__html_unescape(out->p, out->n, a.p);
    a.n = split_join(a.p, a.n);
    out->n = gs__uc_lower(a.p, a.n, out->p);
    err = GS_OK;
out:
    gs__cpbuf_cleanup(&a);
    for (int i = 0; i < 3; i++)
        gs__cpbuf_cleanup(&tmp[i]);
    return err;
}

// ---- pre-tokenizer ----------------------------------------------------------------------------

// matches_literal: does t[i..n) start with the ASCII `lit`, compared as the IGNORECASE regex
// does on lower-case text (where only U+017F LONG S also folds to an ASCII letter, 's')?
// *exact tells whether every character matched as itself.
static bool matches_literal(const uint32_t *t, size_t n, size_t i, const char *lit, bool *exact)
{
    *exact = true;
    for (size_t k = 0; lit[k]; k++, i++) {
        if (i >= n)
            return false;
        if (t[i] == (unsigned char)lit[k])
            continue;
        if (lit[k] == 's' && t[i] == 0x17F) {
            *exact = false;
            continue;
        }
        return false;
    }
    return true;
}

// piece_len: length of the regex match starting at t[i], 0 if none matches there (a space or
// U+0345). *special: 1 / 2 for an exact <start_of_text> / <end_of_text>, else 0.
static size_t piece_len(const uint32_t *t, size_t n, size_t i, int *special)
{
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    bool exact;
    *special = 0;
    if (t[i] == '<') {
        if (matches_literal(t, n, i, "<start_of_text>", &exact)) {
            *special = exact ? 1 : 0;
            return 15;
        }
        if (matches_literal(t, n, i, "<end_of_text>", &exact)) {
            *special = exact ? 2 : 0;
            return 13;
        }
    } else if (t[i] == '\'') {
        for (size_t k = 0; k < sizeof contractions / sizeof contractions[0]; k++)
            if (matches_literal(t, n, i, contractions[k], &exact))
                return strlen(contractions[k]);
    }
    unsigned f = gs__uc_flags(t[i]);
    if (f & GS__UC_LETTER) {
        size_t k = i + 1;
        while (k < n && (gs__uc_flags(t[k]) & GS__UC_LETTER))
            k++;
        return k - i;
    }
    if (f & GS__UC_NUMBER)
        return 1;
    const unsigned stop = GS__UC_LETTER | GS__UC_NUMBER | GS__UC_SPACE | GS__UC_REGEX_NONE;
    if (f & stop)
        return 0;
    size_t k = i + 1;
    while (k < n && !(gs__uc_flags(t[k]) & stop))
        k++;
    return k - i;
}

// ---- encode -----------------------------------------------------------------------------------

typedef struct {
    int32_t *ids; // (ctx) the output row
    int ctx;
    size_t n_bpe; // BPE ids produced so far (ids[1 + k] holds the k-th while it fits)
} sink_t;

static void sink_put(sink_t *s, int32_t id)
{
    if (1 + s->n_bpe < (size_t)s->ctx)
        s->ids[1 + s->n_bpe] = id;
    s->n_bpe++;
}

gs_err gs__clip_bpe_encode_ex(const gs_clip_bpe_t *self, const char *text, size_t nbytes,
                              bool use_ftfy, int32_t *out_ids, int ctx_len, int *out_n_tokens,
                              int *out_n_untruncated)
{
    if (!self || !text || !out_ids || ctx_len < 1)
        return GS_EINVAL;
    if (nbytes > GS_CLIP_BPE_MAX_TEXT_NBYTES)
        return GS_ETOOBIG;
    gs__cpbuf_t t = {0};
    uint8_t *bytes = NULL;
    int32_t *word = NULL;
    gs_err err = gs__clip_clean(text, nbytes, use_ftfy, &t);
    if (err != GS_OK)
        goto out;
    // a piece of k code points has at most 4k UTF-8 bytes and as many BPE ids
    bytes = gs_trymalloc(4 * t.n + 4);
    word = gs_trymalloc((4 * t.n + 4) * sizeof *word);
    if (!bytes || !word) {
        err = GS_ENOMEM;
        goto out;
    }
    sink_t s = {out_ids, ctx_len, 0};
    bool need_all = out_n_untruncated != NULL;
    for (size_t i = 0; i < t.n;) {
        if (!need_all && 1 + s.n_bpe >= (size_t)ctx_len)
            break; // the context is full: everything after this is truncated away
        int special;
        size_t len = piece_len(t.p, t.n, i, &special);
        if (len == 0) {
            i++;
            continue;
        }
        if (special) {
            sink_put(&s, special == 1 ? self->sot : self->eot);
        } else {
            size_t nb = 0;
            for (size_t k = i; k < i + len; k++)
                nb += (size_t)gs__utf8_encode(t.p[k], bytes + nb);
            long m = gs__clip_bpe_word(self, bytes, nb, 0, word);
            if (m < 0) {
                err = GS_ENOMEM;
                goto out;
            }
            for (long k = 0; k < m; k++)
                sink_put(&s, word[k]);
        }
        i += len;
    }
    size_t total = s.n_bpe + 2;
    out_ids[0] = self->sot;
    if (total <= (size_t)ctx_len) {
        out_ids[total - 1] = self->eot;
        for (size_t k = total; k < (size_t)ctx_len; k++)
            out_ids[k] = 0;
    } else {
        out_ids[ctx_len - 1] = self->eot;
    }
    if (out_n_tokens)
        *out_n_tokens = total <= (size_t)ctx_len ? (int)total : ctx_len;
    if (out_n_untruncated)
        *out_n_untruncated = total > INT32_MAX ? INT32_MAX : (int)total;
out:
    gs__cpbuf_cleanup(&t);
    gs_free(bytes);
    gs_free(word);
    return err;
}

gs_err gs_clip_bpe_encode(const gs_clip_bpe_t *self, const char *text, int32_t *out_ids,
                          int ctx_len, int *out_n_tokens, int *out_n_untruncated)
{
    if (!text)
        return GS_EINVAL;
    return gs__clip_bpe_encode_ex(self, text, strlen(text), true, out_ids, ctx_len, out_n_tokens,
                                  out_n_untruncated);
}

gs_err gs_clip_bpe_encode_n(const gs_clip_bpe_t *self, const char *text, size_t nbytes,
                            int32_t *out_ids, int ctx_len, int *out_n_tokens,
                            int *out_n_untruncated)
{
    return gs__clip_bpe_encode_ex(self, text, nbytes, true, out_ids, ctx_len, out_n_tokens,
                                  out_n_untruncated);
}
