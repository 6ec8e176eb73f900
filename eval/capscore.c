// Caption metrics (coco-caption definitions; docs/EVAL.md): the tokenizer, the accumulator of
// (candidate, references) items as word ids, and the scorers. Words are interned once at add
// time; n-grams (1..4 words) are interned per compute, so a sentence becomes a sorted list of
// (n-gram id, count) pairs and every metric is a merge over such lists. Doubles throughout,
// as pycocoevalcap computes in Python floats.
#include "eval/capscore.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

enum { MAX_N = 4 };

// coco-caption's constants: bleu_scorer.py smooths each precision as (correct + TINY) /
// (guess + SMALL); cider_scorer.py's gaussian length penalty has sigma 6; ROUGE-L's beta 1.2.
#define BLEU_TINY 1e-15
#define BLEU_SMALL 1e-9
#define CIDER_SIGMA 6.0
#define ROUGE_BETA 1.2

struct gs_capscore {
    // words: the pool holds every distinct lowercased token, NUL-separated
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *word_off; // (n_vocab) offset of each word in pool
    int n_vocab, vocab_cap;
    int32_t *word_map; // (map_cap) open addressing: word id or -1
    int map_cap;       // a power of two, at least twice n_vocab
    // sentences: word ids, flat; sentence s is words[sent_off[s], sent_off[s+1])
    int32_t *words;
    size_t n_words, words_cap;
    size_t *sent_off; // (n_sent + 1)
    int n_sent, sent_cap;
    // items: sentence items[i].first is the candidate, the next items[i].n_refs its references
    struct item {
        int first, n_refs;
    } * items;
    int n_items, items_cap;
};

// ---- growth helpers -------------------------------------------------------------------------

// grow: makes *p hold at least `need` elements of `elem` bytes (doubling); GS_ENOMEM.
static gs_err grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return GS_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = gs_tryrealloc(*p, c * elem);
    if (!q)
        return GS_ENOMEM;
    *p = q;
    *cap = c;
    return GS_OK;
}

static gs_err grow_int(void **p, int *cap, size_t need, size_t elem)
{
    size_t c = (size_t)*cap;
    if (need > INT32_MAX / 2)
        return GS_ETOOBIG;
    gs_err e = grow(p, &c, need, elem);
    *cap = (int)c;
    return e;
}

// ---- tokenizer -----------------------------------------------------------------------------

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}
// dropped punctuation (PTB tokens coco removes: . , ? ! : ; -- quotes, brackets)
static bool is_drop(unsigned char c)
{
    return c && strchr(".,?!:;\"`()[]{}-'", c) != NULL;
}
// symbols PTB makes tokens of their own, which coco keeps
static bool is_own(unsigned char c)
{
    return c && strchr("$%&#", c) != NULL;
}
static bool is_word(unsigned char c)
{
    return c && !is_space(c) && !is_drop(c) && !is_own(c);
}

// tok_fn: receives each token as raw bytes (not yet lowercased).
typedef gs_err (*tok_fn)(void *ud, const char *s, size_t n);

// clitic: the length of the clitic starting at the apostrophe t[i] ("'s", "'re", "'ve",
// "'ll", "'m", "'d", "'t" for n't) when it ends a word, else 0.
static size_t clitic(const char *t, size_t i)
{
    static const char *const cl[] = {"s", "re", "ve", "ll", "m", "d", "t"};
    size_t j = i + 1;
    while (is_alpha((unsigned char)t[j]))
        j++;
    if (is_word((unsigned char)t[j]) || t[j] == '\'')
        return 0;
    for (size_t k = 0; k < sizeof cl / sizeof *cl; k++) {
        size_t m = strlen(cl[k]);
        if (j - i - 1 == m) {
            size_t q = 0;
            while (q < m && lower((unsigned char)t[i + 1 + q]) == cl[k][q])
                q++;
            if (q == m)
                return m + 1;
        }
    }
    return 0;
}

// tokenize_each: calls fn on every token of text, in order (rules in capscore.h).
static gs_err tokenize_each(const char *t, tok_fn fn, void *ud)
{
    size_t n = strlen(t), start = SIZE_MAX; // start of the open token, SIZE_MAX: none
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i], next = (unsigned char)t[i + 1];
        bool open = start != SIZE_MAX;
        if (is_word(c)) {
            start = open ? start : i;
            continue;
        }
        unsigned char prev = i ? (unsigned char)t[i - 1] : 0;
        if (open && (c == '.' || c == ',') && is_digit(prev) && is_digit(next))
            continue; // 3.5, 1,000
        if (open && c == '-' && is_word(next))
            continue; // greenish-blue
        if (open && c == '\'') {
            size_t m = clitic(t, i);
            if (m == 2 && lower((unsigned char)t[i + 1]) == 't') {
                // n't: "don't" -> "do" "n't" (only after an n that is not the whole word)
                if (i - start >= 2 && lower(prev) == 'n') {
                    GS_TRY(fn(ud, t + start, i - 1 - start));
                    GS_TRY(fn(ud, t + i - 1, 3));
                    start = SIZE_MAX;
                    i += 1;
                    continue;
                }
            } else if (m > 0) {
                GS_TRY(fn(ud, t + start, i - start));
                GS_TRY(fn(ud, t + i, m));
                start = SIZE_MAX;
                i += m - 1;
                continue;
            }
            if (is_word(next))
                continue; // o'clock
        }
        if (open)
            GS_TRY(fn(ud, t + start, i - start));
        start = SIZE_MAX;
        if (is_own(c))
            GS_TRY(fn(ud, t + i, 1));
    }
    if (start != SIZE_MAX)
        GS_TRY(fn(ud, t + start, n - start));
    return GS_OK;
}

typedef struct {
    gs_buf_t *out;
    size_t start;
} append_ud_t;

static gs_err append_token(void *ud, const char *s, size_t n)
{
    append_ud_t *a = ud;
    if (a->out->len > a->start)
        GS_TRY(gs_buf_append(a->out, " ", 1));
    size_t at = a->out->len;
    GS_TRY(gs_buf_append(a->out, s, n));
    for (size_t k = at; k < a->out->len; k++)
        a->out->data[k] = (char)lower((unsigned char)a->out->data[k]);
    return GS_OK;
}

gs_err gs_capscore_tokenize(const char *text, gs_buf_t *out)
{
    if (!text || !out)
        return GS_EINVAL;
    append_ud_t a = {out, out->len};
    return tokenize_each(text, append_token, &a);
}

// ---- words ---------------------------------------------------------------------------------

static uint64_t hash_lower(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ lower((unsigned char)s[i])) * 1099511628211ull;
    return h;
}

static bool word_eq(const gs_capscore_t *self, int32_t id, const char *s, size_t n)
{
    const char *w = self->pool + self->word_off[id];
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)w[i] != lower((unsigned char)s[i]))
            return false;
    return w[n] == '\0';
}

static gs_err map_rehash(gs_capscore_t *self, int cap)
{
    int32_t *m = gs_trymalloc((size_t)cap * sizeof *m);
    if (!m)
        return GS_ENOMEM;
    memset(m, 0xff, (size_t)cap * sizeof *m);
    for (int32_t id = 0; id < self->n_vocab; id++) {
        const char *w = self->pool + self->word_off[id];
        size_t h = (size_t)hash_lower(w, strlen(w)) & (size_t)(cap - 1);
        while (m[h] >= 0)
            h = (h + 1) & (size_t)(cap - 1);
        m[h] = id;
    }
    gs_free(self->word_map);
    self->word_map = m;
    self->map_cap = cap;
    return GS_OK;
}

// intern: the id of the lowercased token s[0, n), added when new.
static gs_err intern(gs_capscore_t *self, const char *s, size_t n, int32_t *out_id)
{
    if (2 * (self->n_vocab + 1) > self->map_cap)
        GS_TRY(map_rehash(self, self->map_cap ? 2 * self->map_cap : 1024));
    size_t mask = (size_t)self->map_cap - 1, h = (size_t)hash_lower(s, n) & mask;
    for (; self->word_map[h] >= 0; h = (h + 1) & mask) {
        if (word_eq(self, self->word_map[h], s, n)) {
            *out_id = self->word_map[h];
            return GS_OK;
        }
    }
    if (self->pool_len + n + 1 > UINT32_MAX)
        return GS_ETOOBIG;
    GS_TRY(grow((void **)&self->pool, &self->pool_cap, self->pool_len + n + 1, 1));
    GS_TRY(grow_int((void **)&self->word_off, &self->vocab_cap, (size_t)self->n_vocab + 1,
                    sizeof *self->word_off));
    for (size_t i = 0; i < n; i++)
        self->pool[self->pool_len + i] = (char)lower((unsigned char)s[i]);
    self->pool[self->pool_len + n] = '\0';
    self->word_off[self->n_vocab] = (uint32_t)self->pool_len;
    self->pool_len += n + 1;
    self->word_map[h] = self->n_vocab;
    *out_id = self->n_vocab++;
    return GS_OK;
}

// ---- accumulator ---------------------------------------------------------------------------

gs_capscore_t *gs_capscore_new(void)
{
    return gs_xcalloc(1, sizeof(gs_capscore_t));
}

void gs_capscore_destroy(gs_capscore_t **p)
{
    if (!p || !*p)
        return;
    gs_capscore_t *s = *p;
    gs_free(s->pool);
    gs_free(s->word_off);
    gs_free(s->word_map);
    gs_free(s->words);
    gs_free(s->sent_off);
    gs_free(s->items);
    gs_free(s);
    *p = NULL;
}

int gs_capscore_count(const gs_capscore_t *self)
{
    return self ? self->n_items : 0;
}

static gs_err count_token(void *ud, const char *s, size_t n)
{
    (void)s;
    (void)n;
    return ++*(size_t *)ud > GS_CAPSCORE_MAX_TOKENS ? GS_ETOOBIG : GS_OK;
}

static gs_err add_token(void *ud, const char *s, size_t n)
{
    gs_capscore_t *self = ud;
    int32_t id;
    GS_TRY(intern(self, s, n, &id));
    GS_TRY(grow((void **)&self->words, &self->words_cap, self->n_words + 1, sizeof(int32_t)));
    self->words[self->n_words++] = id;
    return GS_OK;
}

// add_sentence: tokenises and appends one sentence.
static gs_err add_sentence(gs_capscore_t *self, const char *text)
{
    GS_TRY(grow_int((void **)&self->sent_off, &self->sent_cap, (size_t)self->n_sent + 2,
                    sizeof *self->sent_off));
    if (self->n_sent == 0)
        self->sent_off[0] = 0;
    GS_TRY(tokenize_each(text, add_token, self));
    self->sent_off[++self->n_sent] = self->n_words;
    return GS_OK;
}

gs_err gs_capscore_add(gs_capscore_t *self, const char *candidate, const char *const *refs,
                       int n_refs)
{
    if (!self || !candidate || !refs || n_refs < 1)
        return GS_EINVAL;
    if (n_refs > GS_CAPSCORE_MAX_REFS)
        return GS_ETOOBIG;
    for (int r = -1; r < n_refs; r++) { // first pass: arguments and caps only
        const char *t = r < 0 ? candidate : refs[r];
        size_t n_tok = 0;
        if (!t)
            return GS_EINVAL;
        GS_TRY(tokenize_each(t, count_token, &n_tok));
    }
    gs_err e = grow_int((void **)&self->items, &self->items_cap, (size_t)self->n_items + 1,
                        sizeof *self->items);
    int first = self->n_sent;
    size_t n_words0 = self->n_words;
    for (int r = -1; r < n_refs && e == GS_OK; r++)
        e = add_sentence(self, r < 0 ? candidate : refs[r]);
    if (e != GS_OK) { // roll back (new words may stay in the vocabulary: they change nothing)
        self->n_sent = first;
        self->n_words = n_words0;
        return e;
    }
    self->items[self->n_items++] = (struct item){first, n_refs};
    return GS_OK;
}

// ---- n-grams -------------------------------------------------------------------------------

// A set of sentences as sorted (n-gram id, count) lists; n-grams are interned per compute.
typedef struct {
    int32_t id, count;
} entry_t;

typedef struct {
    int32_t (*keys)[MAX_N]; // (n) word ids of each n-gram, -1 past its order
    int8_t *order;          // (n) 1..4
    int n, cap;
    int32_t *map; // open addressing: n-gram id or -1
    size_t map_cap;
    entry_t *ent; // sentence s: ent[off[s], off[s+1])
    size_t n_ent, ent_cap;
    size_t *off; // (n_sent + 1)
} ngrams_t;

static void ngrams_cleanup(ngrams_t *g)
{
    gs_free(g->keys);
    gs_free(g->order);
    gs_free(g->map);
    gs_free(g->ent);
    gs_free(g->off);
}

static size_t key_hash(const int32_t *k)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < MAX_N; i++)
        h = (h ^ (uint32_t)k[i]) * 0xff51afd7ed558ccdull, h ^= h >> 29;
    return (size_t)h;
}

static gs_err ngram_rehash(ngrams_t *g, size_t cap)
{
    int32_t *m = gs_trymalloc(cap * sizeof *m);
    if (!m)
        return GS_ENOMEM;
    memset(m, 0xff, cap * sizeof *m);
    for (int32_t id = 0; id < g->n; id++) {
        size_t h = key_hash(g->keys[id]) & (cap - 1);
        while (m[h] >= 0)
            h = (h + 1) & (cap - 1);
        m[h] = id;
    }
    gs_free(g->map);
    g->map = m;
    g->map_cap = cap;
    return GS_OK;
}

static gs_err ngram_intern(ngrams_t *g, const int32_t *w, int order, int32_t *out_id)
{
    int32_t k[MAX_N] = {-1, -1, -1, -1};
    memcpy(k, w, (size_t)order * sizeof *w);
    if (2 * ((size_t)g->n + 1) > g->map_cap)
        GS_TRY(ngram_rehash(g, g->map_cap ? 2 * g->map_cap : 4096));
    size_t mask = g->map_cap - 1, h = key_hash(k) & mask;
    for (; g->map[h] >= 0; h = (h + 1) & mask) {
        if (memcmp(g->keys[g->map[h]], k, sizeof k) == 0) {
            *out_id = g->map[h];
            return GS_OK;
        }
    }
    if (g->n == g->cap) { // keys and order share one capacity
        int cap_keys = g->cap, cap_order = g->cap;
        GS_TRY(grow_int((void **)&g->keys, &cap_keys, (size_t)g->n + 1, sizeof *g->keys));
        GS_TRY(grow_int((void **)&g->order, &cap_order, (size_t)g->n + 1, 1));
        g->cap = cap_keys;
    }
    memcpy(g->keys[g->n], k, sizeof k);
    g->order[g->n] = (int8_t)order;
    g->map[h] = g->n;
    *out_id = g->n++;
    return GS_OK;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// cook: every sentence of self into g as sorted (n-gram id, count) lists.
static gs_err cook(const gs_capscore_t *self, ngrams_t *g)
{
    int32_t *ids = gs_trymalloc((size_t)MAX_N * GS_CAPSCORE_MAX_TOKENS * sizeof *ids);
    g->off = gs_trymalloc(((size_t)self->n_sent + 1) * sizeof *g->off);
    if (!ids || !g->off) {
        gs_free(ids);
        return GS_ENOMEM;
    }
    gs_err e = GS_OK;
    g->off[0] = 0;
    for (int s = 0; s < self->n_sent && e == GS_OK; s++) {
        const int32_t *w = self->words + self->sent_off[s];
        int len = (int)(self->sent_off[s + 1] - self->sent_off[s]), n_ids = 0;
        for (int k = 1; k <= MAX_N && e == GS_OK; k++)
            for (int i = 0; i + k <= len && e == GS_OK; i++)
                e = ngram_intern(g, w + i, k, &ids[n_ids++]);
        qsort(ids, (size_t)n_ids, sizeof *ids, cmp_i32);
        for (int i = 0; i < n_ids && e == GS_OK; i++) {
            if (i > 0 && ids[i] == ids[i - 1]) {
                g->ent[g->n_ent - 1].count++;
                continue;
            }
            e = grow((void **)&g->ent, &g->ent_cap, g->n_ent + 1, sizeof *g->ent);
            if (e == GS_OK)
                g->ent[g->n_ent++] = (entry_t){ids[i], 1};
        }
        g->off[s + 1] = g->n_ent;
    }
    gs_free(ids);
    return e;
}

// ---- scorers -------------------------------------------------------------------------------

static int sent_len(const gs_capscore_t *self, int s)
{
    return (int)(self->sent_off[s + 1] - self->sent_off[s]);
}

// bleu: corpus BLEU-1..4 as bleu_scorer.py with option "closest"; refmax: (g->n) zeros,
// left zeroed.
static void bleu(const gs_capscore_t *self, const ngrams_t *g, int32_t *refmax, double out[4])
{
    double correct[MAX_N] = {0}, guess[MAX_N] = {0}, testlen = 0, reflen = 0;
    for (int i = 0; i < self->n_items; i++) {
        int c = self->items[i].first, nr = self->items[i].n_refs, lc = sent_len(self, c);
        int best = -1; // closest reference length; ties go to the shorter one
        for (int r = c + 1; r <= c + nr; r++) {
            int lr = sent_len(self, r), d = abs(lr - lc), bd = abs(best - lc);
            if (best < 0 || d < bd || (d == bd && lr < best))
                best = lr;
            for (size_t k = g->off[r]; k < g->off[r + 1]; k++)
                if (g->ent[k].count > refmax[g->ent[k].id])
                    refmax[g->ent[k].id] = g->ent[k].count;
        }
        for (size_t k = g->off[c]; k < g->off[c + 1]; k++) {
            int32_t m = refmax[g->ent[k].id];
            correct[g->order[g->ent[k].id] - 1] += g->ent[k].count < m ? g->ent[k].count : m;
        }
        for (int n = 0; n < MAX_N; n++)
            guess[n] += lc - n > 0 ? lc - n : 0;
        testlen += lc;
        reflen += best;
        for (int r = c + 1; r <= c + nr; r++)
            for (size_t k = g->off[r]; k < g->off[r + 1]; k++)
                refmax[g->ent[k].id] = 0;
    }
    double b = 1.0, ratio = (testlen + BLEU_TINY) / (reflen + BLEU_SMALL);
    for (int n = 0; n < MAX_N; n++) {
        b *= (correct[n] + BLEU_TINY) / (guess[n] + BLEU_SMALL);
        out[n] = pow(b, 1.0 / (n + 1));
        if (ratio < 1)
            out[n] *= exp(1 - 1 / ratio);
    }
}

// lcs: the longest common subsequence length of a and b; row: (nb + 1) ints of scratch.
static int lcs(const int32_t *a, int na, const int32_t *b, int nb, int *row)
{
    memset(row, 0, ((size_t)nb + 1) * sizeof *row);
    for (int i = 0; i < na; i++) {
        int diag = 0; // row[j] of the previous i
        for (int j = 1; j <= nb; j++) {
            int up = row[j];
            row[j] = a[i] == b[j - 1] ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    return row[nb];
}

// rouge_l: ROUGE-L of item i as rouge.py: the largest precision and the largest recall over
// the references (possibly from different references), then F with beta 1.2.
static double rouge_l(const gs_capscore_t *self, int i, int *row)
{
    int c = self->items[i].first, lc = sent_len(self, c);
    double pmax = 0, rmax = 0;
    for (int r = c + 1; r <= c + self->items[i].n_refs; r++) {
        int lr = sent_len(self, r);
        int l = lcs(self->words + self->sent_off[r], lr, self->words + self->sent_off[c], lc, row);
        double p = lc ? (double)l / lc : 0, rc = lr ? (double)l / lr : 0;
        pmax = p > pmax ? p : pmax;
        rmax = rc > rmax ? rc : rmax;
    }
    if (pmax == 0 || rmax == 0)
        return 0;
    double b2 = ROUGE_BETA * ROUGE_BETA;
    return (1 + b2) * pmax * rmax / (rmax + b2 * pmax);
}

// norms: the per-order L2 norms of sentence s's TF-IDF vector.
static void norms(const ngrams_t *g, int s, const double *idf, double out[MAX_N])
{
    for (int n = 0; n < MAX_N; n++)
        out[n] = 0;
    for (size_t k = g->off[s]; k < g->off[s + 1]; k++) {
        double v = g->ent[k].count * idf[g->ent[k].id];
        out[g->order[g->ent[k].id] - 1] += v * v;
    }
    for (int n = 0; n < MAX_N; n++)
        out[n] = sqrt(out[n]);
}

// cider_d: CIDEr-D of item i as cider_scorer.py (idf over the references of the set).
static double cider_d(const gs_capscore_t *self, const ngrams_t *g, const double *idf, int i)
{
    int c = self->items[i].first, nr = self->items[i].n_refs;
    double nh[MAX_N], nref[MAX_N], score[MAX_N] = {0};
    // cider_scorer.py's "length" counts the bigrams (its n == 1 is the 0-based order index)
    int lh = sent_len(self, c) > 1 ? sent_len(self, c) - 1 : 0;
    norms(g, c, idf, nh);
    for (int r = c + 1; r <= c + nr; r++) {
        double val[MAX_N] = {0};
        norms(g, r, idf, nref);
        size_t a = g->off[c], b = g->off[r];
        while (a < g->off[c + 1] && b < g->off[r + 1]) { // merge of the two sorted lists
            int32_t ia = g->ent[a].id, ib = g->ent[b].id;
            if (ia == ib) {
                double vh = g->ent[a].count * idf[ia], vr = g->ent[b].count * idf[ib];
                val[g->order[ia] - 1] += (vh < vr ? vh : vr) * vr; // clipped
            }
            a += ia <= ib;
            b += ib <= ia;
        }
        int lr = sent_len(self, r) > 1 ? sent_len(self, r) - 1 : 0;
        double delta = lh - lr, pen = exp(-(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
        for (int n = 0; n < MAX_N; n++) {
            if (nh[n] != 0 && nref[n] != 0)
                val[n] /= nh[n] * nref[n];
            score[n] += val[n] * pen;
        }
    }
    double mean = (score[0] + score[1] + score[2] + score[3]) / MAX_N;
    return mean / nr * 10.0;
}

// idf_all: ln(N items) - ln(max(1, df)) for every n-gram, df counting the items whose
// references hold it.
static gs_err idf_all(const gs_capscore_t *self, const ngrams_t *g, double **out)
{
    int32_t *df = gs_trycalloc((size_t)g->n + 1, sizeof *df);
    int32_t *seen = gs_trycalloc((size_t)g->n + 1, sizeof *seen);
    double *idf = gs_trymalloc(((size_t)g->n + 1) * sizeof *idf);
    if (!df || !seen || !idf) {
        gs_free(df);
        gs_free(seen);
        gs_free(idf);
        return GS_ENOMEM;
    }
    for (int i = 0; i < self->n_items; i++) {
        int c = self->items[i].first;
        for (size_t k = g->off[c + 1]; k < g->off[c + 1 + self->items[i].n_refs]; k++) {
            int32_t id = g->ent[k].id;
            if (seen[id] != i + 1) {
                seen[id] = i + 1;
                df[id]++;
            }
        }
    }
    double ref_len = log((double)self->n_items);
    for (int id = 0; id < g->n; id++)
        idf[id] = ref_len - log(df[id] > 1 ? (double)df[id] : 1.0);
    gs_free(df);
    gs_free(seen);
    *out = idf;
    return GS_OK;
}

gs_err gs_capscore_compute(const gs_capscore_t *self, gs_capscore_result_t *out,
                           double *out_cider_items, double *out_rouge_items)
{
    if (!self || !out)
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    if (self->n_items == 0)
        return GS_OK;
    ngrams_t g = {0};
    double *idf = NULL;
    int32_t *refmax = NULL;
    int *row = gs_trymalloc((GS_CAPSCORE_MAX_TOKENS + 1) * sizeof *row);
    gs_err e = row ? cook(self, &g) : GS_ENOMEM;
    if (e == GS_OK)
        e = idf_all(self, &g, &idf);
    if (e == GS_OK && !(refmax = gs_trycalloc((size_t)g.n + 1, sizeof *refmax)))
        e = GS_ENOMEM;
    if (e != GS_OK)
        goto out;
    bleu(self, &g, refmax, out->bleu);
    double sum_r = 0, sum_c = 0;
    for (int i = 0; i < self->n_items; i++) {
        double r = rouge_l(self, i, row), c = cider_d(self, &g, idf, i);
        sum_r += r;
        sum_c += c;
        if (out_rouge_items)
            out_rouge_items[i] = r;
        if (out_cider_items)
            out_cider_items[i] = c;
    }
    out->n = self->n_items;
    out->rouge_l = sum_r / self->n_items;
    out->cider = sum_c / self->n_items;
out:
    gs_free(row);
    gs_free(idf);
    gs_free(refmax);
    ngrams_cleanup(&g);
    return e;
}
