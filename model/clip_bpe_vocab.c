// The CLIP tokenizer's handle: open_clip's gzip merges file or a Hugging Face vocab.json +
// merges.txt into the id strings and the merges table (see clip_bpe_int.h), with every
// refusal logged once naming the file and line. Encoding is in clip_bpe.c.
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

#define MAX_VOCAB_FILE_NBYTES (64u << 20)
#define MAX_VOCAB_IDS (1 << 20)

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
    const char *base;    // the strings blob
    const uint32_t *off; // per id
    int32_t *slots;      // id or -1
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

static void pair_put(gs_clip_bpe_t *self, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    size_t h = gs__clip_pair_hash(self, a, b);
    while (self->pairs[h].a >= 0 && !(self->pairs[h].a == a && self->pairs[h].b == b))
        h = (h + 1) & self->pair_mask;
    // a repeated pair keeps its last rank, like open_clip's dict(zip(merges, range(...)))
    self->pairs[h] = (gs__clip_pair_t){a, b, rank, merged};
}

// ---- vocabulary files -------------------------------------------------------------------------

// read_all: a file through zlib (gzip or plain), NUL-terminated: all of it, or (max_lines > 0)
// at least its first max_lines lines (open_clip's file holds 262,145 lines and uses 48,895).
static gs_err read_all(const char *path, size_t max_lines, char **out_data, size_t *out_n)
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
    size_t cap = 1 << 20, n = 0, n_lines = 0;
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
        size_t want = cap - n < (64u << 10) ? cap - n : (64u << 10);
        int got = gzread(f, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr;
            GS_LOG_ERROR("could not read vocabulary \"%s\": %s", path, gzerror(f, &zerr));
            err = GS_EIO;
        } else if (got == 0) {
            break;
        }
        for (int i = 0; i < got; i++)
            n_lines += buf[n + (size_t)i] == '\n';
        n += got > 0 ? (size_t)got : 0;
        if (max_lines > 0 && n_lines >= max_lines)
            break;
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

// count_merges: the number of merge lines after the header line, at most GS__CLIP_N_MERGES
// (open_clip and transformers both slice lines 1..48894): a vocabulary learned on another
// corpus (geoscribe's own default model) has fewer. Trailing blank lines do not count.
static uint32_t count_merges(const char *text, size_t n)
{
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' ||
                 text[n - 1] == '\t'))
        n--;
    uint32_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    return lines < GS__CLIP_N_MERGES ? lines : GS__CLIP_N_MERGES;
}

// build_merges: fill the pair table from lines 1..n_merges of `text`, resolving the strings with
// `idx`. GS_EFORMAT (logged with file and line) on a malformed or missing line.
static gs_err build_merges(gs_clip_bpe_t *self, const str_index_t *idx, char *text, size_t n,
                           uint32_t n_merges, const char *path)
{
    size_t slots = 1;
    while (slots < 2 * (size_t)n_merges + 2)
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
    for (uint32_t r = 0; r < n_merges; r++) {
        char *line = next_line(&pos, end);
        char *a, *b;
        size_t na, nb;
        if (!line) {
            GS_LOG_ERROR("vocabulary \"%s\" has no line %u: expected %u merges after the header",
                         path, r + 2, n_merges);
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
                         "from the vocabulary",
                         path, r + 2, (int)na, a, (int)nb, b);
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
    GS_TRY(read_all(path, GS__CLIP_N_MERGES + 1, &text, &n));
    uint32_t n_merges = count_merges(text, n);
    uint32_t cps[256];
    int32_t order[256];
    byte_symbols(cps, order);
    self->n_vocab = 512 + (int32_t)n_merges + 2;
    // strings: bytes (2 x <= 7 bytes each), merges (<= their line + NUL), specials
    size_t cap = 256 * 16 + n + n_merges + 64, used = 0;
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
    for (uint32_t r = 0; r < n_merges; r++) {
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
    self->sot = 512 + (int32_t)n_merges;
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
        err = build_merges(self, &idx, text, n, n_merges, path);
out:
    gs_free(idx.slots);
    gs_free(text);
    return err;
}

// hf_read_vocab: vocab.json (a JSON object token -> id) into self's id strings.
static gs_err hf_read_vocab(gs_clip_bpe_t *self, const char *path)
{
    if (!gs_path_exists(path)) {
        GS_LOG_ERROR("could not open vocabulary \"%s\": %s", path, strerror(ENOENT));
        return GS_ENOTFOUND;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root || !json_is_object(root)) {
        GS_LOG_ERROR("vocabulary \"%s\" line %d: %s", path, root ? 1 : jerr.line,
                     root ? "expected a JSON object" : jerr.text);
        json_decref(root);
        return GS_EFORMAT;
    }
    const char *key;
    json_t *val;
    size_t total = 0, used = 0;
    json_int_t max_id = -1;
    gs_err err = GS_OK;
    json_object_foreach(root, key, val)
    {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_VOCAB_IDS) {
            GS_LOG_ERROR("vocabulary \"%s\": token \"%s\" has no valid id", path, key);
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
    json_object_foreach(root, key, val)
    {
        size_t k = strlen(key) + 1;
        self->str_off[json_integer_value(val)] = (uint32_t)used;
        memcpy(self->strings + used, key, k);
        used += k;
    }
out:
    json_decref(root);
    return err;
}

// hf_find_ids: the byte symbols and the start/end tokens among vocab.json's strings.
static gs_err hf_find_ids(gs_clip_bpe_t *self, const str_index_t *idx, const char *path)
{
    uint32_t cps[256];
    int32_t order[256];
    byte_symbols(cps, order);
    for (int b = 0; b < 256; b++) {
        char s[8];
        uint8_t u[4];
        int k = gs__utf8_encode(cps[b], u);
        memcpy(s, u, (size_t)k);
        memcpy(s + k, "</w>", 4);
        self->byte_id[b] = str_index_get(idx, s, (size_t)k);
        self->byte_end_id[b] = str_index_get(idx, s, (size_t)k + 4);
        if (self->byte_id[b] < 0 || self->byte_end_id[b] < 0) {
            GS_LOG_ERROR("vocabulary \"%s\": no token for byte 0x%02x", path, b);
            return GS_EFORMAT;
        }
    }
    self->sot = str_index_get(idx, "<start_of_text>", 15);
    if (self->sot < 0)
        self->sot = str_index_get(idx, "<|startoftext|>", 15);
    self->eot = str_index_get(idx, "<end_of_text>", 13);
    if (self->eot < 0)
        self->eot = str_index_get(idx, "<|endoftext|>", 13);
    if (self->sot < 0 || self->eot < 0) {
        GS_LOG_ERROR("vocabulary \"%s\": no start/end of text token", path);
        return GS_EFORMAT;
    }
    return GS_OK;
}

// Hugging Face layout: vocab.json (token -> id) and merges.txt beside it.
static gs_err open_hf(gs_clip_bpe_t *self, const char *vocab_path, const char *merges_path)
{
    char *text = NULL;
    size_t n = 0;
    str_index_t idx = {0};
    gs_err err = hf_read_vocab(self, vocab_path);
    if (err == GS_OK)
        err = index_strings(self, &idx);
    if (err == GS_OK)
        err = hf_find_ids(self, &idx, vocab_path);
    if (err == GS_OK)
        err = read_all(merges_path, 0, &text, &n);
    if (err == GS_OK) {
        // Hugging Face strips the text before splitting it into lines
        size_t skip = 0;
        while (skip < n && (text[skip] == ' ' || text[skip] == '\n' || text[skip] == '\t' ||
                            text[skip] == '\r'))
            skip++;
        err = build_merges(self, &idx, text + skip, n - skip, count_merges(text + skip, n - skip),
                           merges_path);
    }
    gs_free(text);
    gs_free(idx.slots);
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

int32_t gs_clip_bpe_sot(const gs_clip_bpe_t *self)
{
    return self->sot;
}
int32_t gs_clip_bpe_eot(const gs_clip_bpe_t *self)
{
    return self->eot;
}
int32_t gs_clip_bpe_vocab_size(const gs_clip_bpe_t *self)
{
    return self->n_vocab;
}

const char *gs_clip_bpe_token_str(const gs_clip_bpe_t *self, int32_t id)
{
    if (!self || id < 0 || id >= self->n_vocab || self->str_off[id] == UINT32_MAX)
        return NULL;
    return self->strings + self->str_off[id];
}
