// The CLIP BPE tokenizer's encoder (see clip_bpe.h for the pipeline): text cleaning, the
// pre-tokenizer regex written out by hand, and byte-level BPE by merge rank. The handle is
// read-only (clip_bpe_vocab.c builds it); every encode owns its scratch, so concurrent encodes
// need no lock. There is no per-word cache: BPE of a word costs a few hash probes, cheaper than
// a locked cache would be.
#include <string.h>

#include "common/alloc.h"
#include "model/clip_bpe.h"
#include "model/clip_bpe_int.h"
#include "model/html_int.h"

// Words up to this many bytes use the simple quadratic BPE, longer ones the heap.
#define SMALL_WORD 32

// ---- BPE of one word --------------------------------------------------------------------------

static uint32_t pair_rank(const gs_clip_bpe_t *self, int32_t a, int32_t b, int32_t *merged)
{
    const gs__clip_pair_t *e = gs__clip_pair_find(self, a, b);
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
            heap_push(heap, &nh,
                      (heap_entry_t){pair_rank(self, sym[i], sym[i + 1], &mg), (uint32_t)i, sym[i],
                                     sym[i + 1]});
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
