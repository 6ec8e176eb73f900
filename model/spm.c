// SentencePiece BPE: the model file (protobuf, read with protobuf-c against our own
// model/sentencepiece_model.proto), encoding as sentencepiece's bpe_model does it and decoding
// as SentencePieceProcessor::Decode does it. The transformers layer is in spm_hf.c.
// The generated protobuf header is included here and nowhere else.
#define GS_LOG_MODULE "model"
#include "model/spm.h"

#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/spm_int.h"
#include "sentencepiece_model.pb-c.h"

#define SPACE_SYMBOL "\xE2\x96\x81" // U+2581, what spaces become
#define SPACE_SYMBOL_NBYTES 3
#define REPLACEMENT_CHAR "\xEF\xBF\xBD" // U+FFFD
#define MODEL_MAX_NBYTES (256u << 20)
#define MAX_PIECES (1 << 24)

// ---- UTF-8 (sentencepiece's rules: no overlongs, no surrogates, <= U+10FFFF) --------------

// utf8_char: the length of the valid UTF-8 character at s[0..n), 0 if invalid.
static size_t utf8_char(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
        return 0;
    return len;
}

// ---- piece table --------------------------------------------------------------------------

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t gs__spm_lookup(const gs_spm_t *self, const char *s, size_t n)
{
    uint32_t i = hash_bytes(s, n) & self->table_mask;
    for (;;) {
        int32_t id = self->table[i];
        if (id < 0)
            return -1;
        if (self->piece_nbytes[id] == n && memcmp(gs__spm_piece_str(self, id), s, n) == 0)
            return id;
        i = (i + 1) & self->table_mask;
    }
}

// table_insert: GS_EFORMAT when the piece is already there (sentencepiece refuses that too).
static gs_err table_insert(gs_spm_t *self, int32_t id)
{
    const char *s = gs__spm_piece_str(self, id);
    size_t n = self->piece_nbytes[id];
    uint32_t i = hash_bytes(s, n) & self->table_mask;
    while (self->table[i] >= 0) {
        int32_t other = self->table[i];
        if (self->piece_nbytes[other] == n && memcmp(gs__spm_piece_str(self, other), s, n) == 0)
            return GS_EFORMAT;
        i = (i + 1) & self->table_mask;
    }
    self->table[i] = id;
    return GS_OK;
}

// byte_piece_value: 0..255 for "<0xXX>" (two upper-case hex digits), -1 otherwise.
static int byte_piece_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

// ---- loading ------------------------------------------------------------------------------

// copy_pieces: the pieces of the unpacked message into our own arrays and hash table.
static gs_err copy_pieces(gs_spm_t *self, const GsSpmPb__ModelProto *m)
{
    size_t n = m->n_pieces, blob_nbytes = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = m->pieces[i]->piece;
        blob_nbytes += (p ? strlen(p) : 0) + 1;
    }
    uint32_t tsize = 16;
    while (tsize < 2 * n)
        tsize *= 2;
    self->n_pieces = (int32_t)n;
    self->blob = gs_trymalloc(blob_nbytes);
    self->piece_off = gs_trymalloc(n * sizeof *self->piece_off);
    self->piece_nbytes = gs_trymalloc(n * sizeof *self->piece_nbytes);
    self->score = gs_trymalloc(n * sizeof *self->score);
    self->type = gs_trymalloc(n);
    self->table = gs_trymalloc(tsize * sizeof *self->table);
    self->user_defined = gs_trymalloc((n ? n : 1) * sizeof *self->user_defined);
    if (!self->blob || !self->piece_off || !self->piece_nbytes || !self->score || !self->type ||
        !self->table || !self->user_defined)
        return GS_ENOMEM;
    memset(self->table, 0xFF, tsize * sizeof *self->table);
    self->table_mask = tsize - 1;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const GsSpmPb__ModelProto__SentencePiece *sp = m->pieces[i];
        const char *p = sp->piece ? sp->piece : "";
        size_t len = strlen(p);
        if (len == 0) {
            GS_LOG_ERROR("sentencepiece model: piece %zu is empty", i);
            return GS_EFORMAT;
        }
        int type = sp->has_type ? (int)sp->type : GS_SPM_NORMAL;
        if (type < GS_SPM_NORMAL || type > GS_SPM_BYTE) {
            GS_LOG_ERROR("sentencepiece model: piece %zu has unknown type %d", i, type);
            return GS_EFORMAT;
        }
        memcpy(self->blob + off, p, len + 1);
        self->piece_off[i] = (uint32_t)off;
        self->piece_nbytes[i] = (uint32_t)len;
        self->score[i] = sp->has_score ? sp->score : 0.0f;
        self->type[i] = (uint8_t)type;
        off += len + 1;
        if (table_insert(self, (int32_t)i) != GS_OK) {
            GS_LOG_ERROR("sentencepiece model: piece \"%s\" is defined twice", p);
            return GS_EFORMAT;
        }
        if (type == GS_SPM_USER_DEFINED)
            self->user_defined[self->n_user_defined++] = (int32_t)i;
        if (type == GS_SPM_BYTE) {
            int b = byte_piece_value(p, len);
            if (b < 0) {
                GS_LOG_ERROR("sentencepiece model: byte piece \"%s\" is not <0xXX>", p);
                return GS_EFORMAT;
            }
            self->byte_id[b] = (int32_t)i;
        }
    }
    return GS_OK;
}

// special_id: a trainer_spec id if it names a piece of the expected type, else -1.
static int32_t special_id(const gs_spm_t *self, int32_t id, gs_spm_type_t want)
{
    return id >= 0 && id < self->n_pieces && self->type[id] == want ? id : -1;
}

static gs_err check_spec(gs_spm_t *self, const GsSpmPb__ModelProto *m)
{
    const GsSpmPb__TrainerSpec *ts = m->trainer_spec;
    const GsSpmPb__NormalizerSpec *ns = m->normalizer_spec;
    int model_type = ts && ts->has_model_type ? (int)ts->model_type
                                              : GS_SPM_PB__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;
    if (model_type != GS_SPM_PB__TRAINER_SPEC__MODEL_TYPE__BPE) {
        GS_LOG_ERROR("sentencepiece model: model type %d is not supported (only BPE, type 2)",
                     model_type);
        return GS_EUNSUPPORTED;
    }
    if (ts && ts->has_treat_whitespace_as_suffix && ts->treat_whitespace_as_suffix) {
        GS_LOG_ERROR("sentencepiece model: treat_whitespace_as_suffix is not supported");
        return GS_EUNSUPPORTED;
    }
    if (ns && ns->has_precompiled_charsmap && ns->precompiled_charsmap.len > 0) {
        GS_LOG_ERROR("sentencepiece model: normaliser \"%s\" (precompiled character map) is not "
                     "supported; only \"identity\"",
                     ns->name ? ns->name : "");
        return GS_EUNSUPPORTED;
    }
    self->byte_fallback = ts && ts->has_byte_fallback && ts->byte_fallback;
    self->add_dummy_prefix = !ns || !ns->has_add_dummy_prefix || ns->add_dummy_prefix;
    self->remove_extra_whitespaces =
        !ns || !ns->has_remove_extra_whitespaces || ns->remove_extra_whitespaces;
    self->escape_whitespaces = !ns || !ns->has_escape_whitespaces || ns->escape_whitespaces;
    self->unk_id = special_id(self, ts && ts->has_unk_id ? ts->unk_id : 0, GS_SPM_UNKNOWN);
    self->bos_id = special_id(self, ts && ts->has_bos_id ? ts->bos_id : 1, GS_SPM_CONTROL);
    self->eos_id = special_id(self, ts && ts->has_eos_id ? ts->eos_id : 2, GS_SPM_CONTROL);
    self->pad_id = special_id(self, ts && ts->has_pad_id ? ts->pad_id : -1, GS_SPM_CONTROL);
    if (self->unk_id < 0) {
        for (int32_t i = 0; i < self->n_pieces && self->unk_id < 0; i++)
            if (self->type[i] == GS_SPM_UNKNOWN)
                self->unk_id = i;
    }
    if (self->unk_id < 0) {
        GS_LOG_ERROR("sentencepiece model: no unknown piece (<unk>)");
        return GS_EFORMAT;
    }
    for (int b = 0; self->byte_fallback && b < 256; b++) {
        if (self->byte_id[b] < 0) {
            GS_LOG_ERROR("sentencepiece model: byte_fallback is set but piece <0x%02X> is missing",
                         b);
            return GS_EFORMAT;
        }
    }
    const char *surface = ts && ts->unk_surface ? ts->unk_surface : " \xE2\x81\x87 ";
    self->unk_surface = gs_xstrdup(surface);
    return GS_OK;
}

gs_err gs_spm_load(const void *data, size_t nbytes, gs_spm_t **out)
{
    *out = NULL;
    if (nbytes > MODEL_MAX_NBYTES) {
        GS_LOG_ERROR("sentencepiece model: %zu bytes is too large", nbytes);
        return GS_ETOOBIG;
    }
    GsSpmPb__ModelProto *m = gs_spm_pb__model_proto__unpack(NULL, nbytes, data);
    if (!m) {
        GS_LOG_ERROR("sentencepiece model: not a valid protobuf ModelProto (%zu bytes)", nbytes);
        return GS_EFORMAT;
    }
    gs_err err = GS_OK;
    gs_spm_t *self = gs_xcalloc(1, sizeof *self);
    memset(self->byte_id, 0xFF, sizeof self->byte_id);
    if (m->n_pieces == 0 || m->n_pieces > MAX_PIECES) {
        GS_LOG_ERROR("sentencepiece model: %zu pieces", m->n_pieces);
        err = GS_EFORMAT;
        goto out;
    }
    if ((err = copy_pieces(self, m)) != GS_OK)
        goto out;
    if ((err = check_spec(self, m)) != GS_OK)
        goto out;
    gs__spm_init_hf_defaults(self);
out:
    gs_spm_pb__model_proto__free_unpacked(m, NULL);
    if (err != GS_OK) {
        if (err == GS_ENOMEM)
            GS_LOG_ERROR("sentencepiece model: out of memory");
        gs_spm_close(&self);
    }
    *out = self;
    return err;
}

gs_err gs_spm_open(const char *path, gs_spm_t **out)
{
    *out = NULL;
    char *data = NULL;
    size_t n = 0;
    GS_TRY(gs_read_file(path, MODEL_MAX_NBYTES, &data, &n));
    gs_err err = gs_spm_load(data, n, out);
    if (err != GS_OK)
        GS_LOG_ERROR("could not load tokenizer \"%s\": %s", path, gs_strerror(err));
    gs_free(data);
    return err;
}

void gs_spm_close(gs_spm_t **p)
{
    if (!p || !*p)
        return;
    gs_spm_t *self = *p;
    gs__spm_free_hf(self);
    gs_free(self->blob);
    gs_free(self->piece_off);
    gs_free(self->piece_nbytes);
    gs_free(self->score);
    gs_free(self->type);
    gs_free(self->table);
    gs_free(self->user_defined);
    gs_free(self->unk_surface);
    gs_free(self);
    *p = NULL;
}

// ---- accessors ----------------------------------------------------------------------------

int32_t gs_spm_n_pieces(const gs_spm_t *self)
{
    return self->n_pieces;
}
int32_t gs_spm_n_vocab(const gs_spm_t *self)
{
    return self->n_vocab;
}
int32_t gs_spm_bos_id(const gs_spm_t *self)
{
    return self->hf_bos_id;
}
int32_t gs_spm_eos_id(const gs_spm_t *self)
{
    return self->hf_eos_id;
}
int32_t gs_spm_unk_id(const gs_spm_t *self)
{
    return self->hf_unk_id;
}
int32_t gs_spm_pad_id(const gs_spm_t *self)
{
    return self->hf_pad_id;
}

const char *gs_spm_piece(const gs_spm_t *self, int32_t id)
{
    for (size_t i = 0; i < self->n_added; i++)
        if (self->added[i].id == id)
            return self->added[i].content;
    if (id >= 0 && id < self->n_pieces)
        return gs__spm_piece_str(self, id);
    return NULL;
}

gs_spm_type_t gs_spm_type(const gs_spm_t *self, int32_t id)
{
    return id >= 0 && id < self->n_pieces ? (gs_spm_type_t)self->type[id] : (gs_spm_type_t)0;
}

int32_t gs_spm_piece_id(const gs_spm_t *self, const char *piece)
{
    for (size_t i = 0; i < self->n_added; i++)
        if (strcmp(self->added[i].content, piece) == 0)
            return self->added[i].id;
    return gs__spm_lookup(self, piece, strlen(piece));
}

// ---- encoding -----------------------------------------------------------------------------

// normalize: identity normaliser + whitespace handling into `out` (capacity 3*n + 3). Returns
// the normalised length.
static size_t normalize(const gs_spm_t *self, const unsigned char *in, size_t n, bool dummy,
                        char *out)
{
    size_t o = 0, i = 0, end = n;
    if (self->remove_extra_whitespaces) {
        while (i < end && in[i] == ' ')
            i++;
        while (end > i && in[end - 1] == ' ')
            end--;
    }
    if (i == end)
        return 0;
    const char *space = self->escape_whitespaces ? SPACE_SYMBOL : " ";
    size_t space_nbytes = self->escape_whitespaces ? SPACE_SYMBOL_NBYTES : 1;
    if (dummy) {
        memcpy(out + o, space, space_nbytes);
        o += space_nbytes;
    }
    bool prev_space = false;
    while (i < end) {
        if (in[i] == ' ') {
            if (!(self->remove_extra_whitespaces && prev_space)) {
                memcpy(out + o, space, space_nbytes);
                o += space_nbytes;
            }
            prev_space = true;
            i++;
            continue;
        }
        prev_space = false;
        size_t len = utf8_char(in + i, end - i);
        if (len == 0) { // a malformed byte becomes U+FFFD, one byte consumed
            memcpy(out + o, REPLACEMENT_CHAR, 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, in + i, len);
        o += len;
        i += len;
    }
    return o;
}

typedef struct {
    int32_t prev, next; // symbol indices, -1 at the ends
    uint32_t start;     // byte offset in the normalised text
    uint32_t nbytes;    // 0 once merged into its left neighbour
    bool freeze;        // a user-defined piece: never merged
} symbol_t;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t nbytes; // left + right at push time (stale when it no longer matches)
} pair_t;

typedef struct {
    uint32_t start, nbytes, split; // a merge, kept for the resegmentation of UNUSED pieces
} merge_t;

typedef struct {
    const gs_spm_t *spm;
    const char *text; // normalised
    symbol_t *sym;
    pair_t *heap;
    size_t n_heap;
    merge_t *merges;
    size_t n_merges;
    int32_t *out;
    size_t cap, n_out;
    bool overflow;
} enc_t;

// pair_before: heap order: higher score first, then the leftmost pair.
static bool pair_before(const pair_t *a, const pair_t *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

static void heap_push(enc_t *e, pair_t p)
{
    size_t i = e->n_heap++;
    e->heap[i] = p;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&e->heap[i], &e->heap[parent]))
            break;
        pair_t t = e->heap[i];
        e->heap[i] = e->heap[parent];
        e->heap[parent] = t;
        i = parent;
    }
}

static pair_t heap_pop(enc_t *e)
{
    pair_t top = e->heap[0];
    e->heap[0] = e->heap[--e->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < e->n_heap && pair_before(&e->heap[l], &e->heap[best]))
            best = l;
        if (r < e->n_heap && pair_before(&e->heap[r], &e->heap[best]))
            best = r;
        if (best == i)
            break;
        pair_t t = e->heap[i];
        e->heap[i] = e->heap[best];
        e->heap[best] = t;
        i = best;
    }
    return top;
}

// is_mergeable: a piece a merge may produce (sentencepiece's "pieces_": normal, user-defined,
// unused).
static bool is_mergeable(const gs_spm_t *self, int32_t id)
{
    uint8_t t = self->type[id];
    return t == GS_SPM_NORMAL || t == GS_SPM_USER_DEFINED || t == GS_SPM_UNUSED;
}

static void maybe_add_pair(enc_t *e, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || e->sym[left].freeze || e->sym[right].freeze)
        return;
    uint32_t nbytes = e->sym[left].nbytes + e->sym[right].nbytes;
    int32_t id = gs__spm_lookup(e->spm, e->text + e->sym[left].start, nbytes);
    if (id < 0 || !is_mergeable(e->spm, id))
        return;
    heap_push(e, (pair_t){e->spm->score[id], left, right, nbytes});
}

static void emit(enc_t *e, int32_t id)
{
    if (e->n_out >= e->cap) {
        e->overflow = true;
        return;
    }
    // without byte fallback a run of unknowns becomes one <unk> (sentencepiece does this)
    if (!e->spm->byte_fallback && id == e->spm->unk_id && e->n_out > 0 &&
        e->out[e->n_out - 1] == id)
        return;
    e->out[e->n_out++] = id;
}

// emit_piece: the id of text[start..start+n), split back along its merge when it is UNUSED,
// bytes or <unk> when it is unknown.
static void emit_piece(enc_t *e, uint32_t start, uint32_t n, int depth)
{
    const gs_spm_t *s = e->spm;
    int32_t id = gs__spm_lookup(s, e->text + start, n);
    if (id >= 0 && s->type[id] == GS_SPM_UNUSED && depth < 64) {
        // sentencepiece keys its reverse merges by piece text, the last merge winning
        for (size_t k = e->n_merges; k-- > 0;) {
            const merge_t *m = &e->merges[k];
            if (m->nbytes == n && memcmp(e->text + m->start, e->text + start, n) == 0) {
                emit_piece(e, start, m->split, depth + 1);
                emit_piece(e, start + m->split, n - m->split, depth + 1);
                return;
            }
        }
    }
    if (id < 0)
        id = s->unk_id;
    if (id == s->unk_id && s->byte_fallback) {
        for (uint32_t i = 0; i < n; i++)
            emit(e, s->byte_id[(unsigned char)e->text[start + i]]);
        return;
    }
    emit(e, id);
}

// user_defined_match: length of the longest user-defined piece at text[i..n), 0 if none.
static size_t user_defined_match(const gs_spm_t *self, const char *text, size_t n)
{
    size_t best = 0;
    for (size_t k = 0; k < self->n_user_defined; k++) {
        int32_t id = self->user_defined[k];
        size_t len = self->piece_nbytes[id];
        if (len > best && len <= n && memcmp(text, gs__spm_piece_str(self, id), len) == 0)
            best = len;
    }
    return best;
}

static void bpe(enc_t *e, size_t text_nbytes)
{
    const gs_spm_t *s = e->spm;
    int32_t n_sym = 0;
    for (size_t i = 0; i < text_nbytes;) {
        size_t len = user_defined_match(s, e->text + i, text_nbytes - i);
        bool freeze = len > 0;
        if (!freeze)
            len = utf8_char((const unsigned char *)e->text + i, text_nbytes - i);
        if (len == 0)
            len = 1; // cannot happen after normalize; keeps the loop finite
        e->sym[n_sym] = (symbol_t){n_sym - 1, -1, (uint32_t)i, (uint32_t)len, freeze};
        if (n_sym > 0)
            e->sym[n_sym - 1].next = n_sym;
        n_sym++;
        i += len;
    }
    for (int32_t i = 1; i < n_sym; i++)
        maybe_add_pair(e, i - 1, i);
    while (e->n_heap > 0) {
        pair_t p = heap_pop(e);
        symbol_t *l = &e->sym[p.left], *r = &e->sym[p.right];
        if (l->nbytes == 0 || r->nbytes == 0 || l->nbytes + r->nbytes != p.nbytes)
            continue; // stale: one side was merged since
        e->merges[e->n_merges++] = (merge_t){l->start, p.nbytes, l->nbytes};
        l->nbytes = p.nbytes;
        l->next = r->next;
        if (r->next >= 0)
            e->sym[r->next].prev = p.left;
        r->nbytes = 0;
        maybe_add_pair(e, l->prev, p.left);
        maybe_add_pair(e, p.left, l->next);
    }
    for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = e->sym[i].next)
        emit_piece(e, e->sym[i].start, e->sym[i].nbytes, 0);
}

gs_err gs_spm_encode(const gs_spm_t *self, const char *text, size_t text_nbytes, unsigned flags,
                     int32_t *out_ids, size_t cap, size_t *out_n)
{
    *out_n = 0;
    if (text_nbytes > GS_SPM_MAX_TEXT_NBYTES)
        return GS_ETOOBIG;
    if (text_nbytes == 0)
        return GS_OK;
    size_t norm_cap = 3 * text_nbytes + 3;
    char *norm = gs_trymalloc(norm_cap);
    symbol_t *sym = gs_trymalloc(norm_cap * sizeof *sym);
    pair_t *heap = gs_trymalloc(3 * norm_cap * sizeof *heap);
    merge_t *merges = gs_trymalloc(norm_cap * sizeof *merges);
    gs_err err = GS_OK;
    if (!norm || !sym || !heap || !merges) {
        err = GS_ENOMEM;
        goto out;
    }
    bool dummy = self->add_dummy_prefix && !(flags & GS_SPM_NO_DUMMY_PREFIX);
    size_t n = normalize(self, (const unsigned char *)text, text_nbytes, dummy, norm);
    enc_t e = {.spm = self,
               .text = norm,
               .sym = sym,
               .heap = heap,
               .merges = merges,
               .out = out_ids,
               .cap = cap};
    bpe(&e, n);
    *out_n = e.n_out;
    if (e.overflow)
        err = GS_ETOOBIG;
out:
    gs_free(norm);
    gs_free(sym);
    gs_free(heap);
    gs_free(merges);
    return err;
}

// ---- decoding -----------------------------------------------------------------------------

// flush_bytes: a run of byte pieces as UTF-8, each invalid byte as U+FFFD. When `final` is
// false, up to 3 trailing bytes that may start a character are kept (moved to the front).
static gs_err flush_bytes(unsigned char *bytes, size_t *n, bool final, gs_buf_t *out)
{
    size_t i = 0;
    while (i < *n && (final || *n - i >= 4)) {
        size_t len = utf8_char(bytes + i, *n - i);
        if (len == 0) {
            GS_TRY(gs_buf_append(out, REPLACEMENT_CHAR, 3));
            i++;
        } else {
            GS_TRY(gs_buf_append(out, bytes + i, len));
            i += len;
        }
    }
    memmove(bytes, bytes + i, *n - i);
    *n -= i;
    return GS_OK;
}

// append_piece: a piece with U+2581 -> ' ' (or kept when whitespace is not escaped).
static gs_err append_piece(const char *p, size_t n, gs_buf_t *out)
{
    size_t start = 0;
    for (size_t i = 0; i + SPACE_SYMBOL_NBYTES <= n;) {
        if (memcmp(p + i, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES) == 0) {
            GS_TRY(gs_buf_append(out, p + start, i - start));
            GS_TRY(gs_buf_append(out, " ", 1));
            i += SPACE_SYMBOL_NBYTES;
            start = i;
        } else {
            i++;
        }
    }
    return gs_buf_append(out, p + start, n - start);
}

gs_err gs_spm_decode(const gs_spm_t *self, const int32_t *ids, size_t n, unsigned flags,
                     gs_buf_t *out)
{
    unsigned char bytes[256];
    size_t n_bytes = 0;
    size_t len0 = out->len;
    bool is_bos_ws = true, bos_ws_seen = false;
    bool strip = (self->add_dummy_prefix && !(flags & GS_SPM_NO_DUMMY_PREFIX)) ||
                 self->remove_extra_whitespaces;
    for (size_t k = 0; k < n; k++) {
        int32_t id = ids[k];
        if (id < 0 || id >= self->n_pieces)
            continue;
        uint8_t type = self->type[id];
        if (type == GS_SPM_BYTE) {
            if (n_bytes == sizeof bytes)
                GS_TRY(flush_bytes(bytes, &n_bytes, false, out));
            bytes[n_bytes++] = (unsigned char)byte_piece_value(gs__spm_piece_str(self, id), 6);
            continue;
        }
        GS_TRY(flush_bytes(bytes, &n_bytes, true, out));
        if (bos_ws_seen || out->len > len0)
            is_bos_ws = false;
        bos_ws_seen = false;
        if (type == GS_SPM_CONTROL)
            continue;
        if (type == GS_SPM_UNKNOWN) {
            GS_TRY(gs_buf_puts(out, self->unk_surface));
            continue;
        }
        const char *p = gs__spm_piece_str(self, id);
        size_t pn = self->piece_nbytes[id];
        if (is_bos_ws && strip && pn >= SPACE_SYMBOL_NBYTES &&
            memcmp(p, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES) == 0) {
            p += SPACE_SYMBOL_NBYTES;
            pn -= SPACE_SYMBOL_NBYTES;
            bos_ws_seen = !self->remove_extra_whitespaces;
        }
        GS_TRY(append_piece(p, pn, out));
    }
    GS_TRY(flush_bytes(bytes, &n_bytes, true, out));
    if (out->len == 0)
        GS_TRY(gs_buf_append(out, "", 0)); // NUL-terminated even when empty
    return GS_OK;
}
