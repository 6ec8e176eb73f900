// The transformers LlamaTokenizer (slow, v4.40) layer over the SentencePiece model: added and
// special tokens from the model folder's JSON files, splitting text on them, the legacy=False
// handling of the dummy prefix, BOS/EOS, and decoding of generated ids to text.
#define GS_LOG_MODULE "model"
#include <jansson.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/spm.h"
#include "model/spm_int.h"

#define SPACE_SYMBOL "\xE2\x96\x81"
#define SPACE_SYMBOL_NBYTES 3
#define JSON_MAX_NBYTES (16u << 20)
#define MAX_ADDED 65536

// ---- added tokens -------------------------------------------------------------------------

static gs__spm_added_t *find_added(const gs_spm_t *self, const char *content)
{
    for (size_t i = 0; i < self->n_added; i++)
        if (strcmp(self->added[i].content, content) == 0)
            return &self->added[i];
    return NULL;
}

static const gs__spm_added_t *find_added_id(const gs_spm_t *self, int32_t id)
{
    for (size_t i = 0; i < self->n_added; i++)
        if (self->added[i].id == id)
            return &self->added[i];
    return NULL;
}

// add_token: registers (content, id). The same content with another id is an error; the same
// pair again only updates the flags.
static gs_err add_token(gs_spm_t *self, const char *content, int32_t id, bool special, bool lstrip,
                        bool rstrip)
{
    if (!content[0] || id < 0 || id >= (1 << 24)) {
        GS_LOG_ERROR("tokenizer: added token \"%s\" with id %d is invalid", content, (int)id);
        return GS_EFORMAT;
    }
    gs__spm_added_t *a = find_added(self, content);
    if (a) {
        if (a->id != id) {
            GS_LOG_ERROR("tokenizer: added token \"%s\" has ids %d and %d", content, (int)a->id,
                         (int)id);
            return GS_EFORMAT;
        }
        a->special |= special;
        a->lstrip |= lstrip;
        a->rstrip |= rstrip;
        return GS_OK;
    }
    if (self->n_added >= MAX_ADDED) {
        GS_LOG_ERROR("tokenizer: more than %d added tokens", MAX_ADDED);
        return GS_ETOOBIG;
    }
    self->added = gs_xrealloc(self->added, (self->n_added + 1) * sizeof *self->added);
    self->added[self->n_added++] =
        (gs__spm_added_t){gs_xstrdup(content), strlen(content), id, special, lstrip, rstrip};
    if (id + 1 > self->n_vocab)
        self->n_vocab = id + 1;
    return GS_OK;
}

void gs__spm_free_hf(gs_spm_t *self)
{
    for (size_t i = 0; i < self->n_added; i++)
        gs_free(self->added[i].content);
    GS_FREE(self->added);
    self->n_added = 0;
    GS_FREE(self->hf_unk_token);
}

// special_from_piece: registers a SentencePiece piece (e.g. "<s>") as a special added token,
// as LlamaTokenizer does for its bos/eos/unk tokens. Returns its id or -1.
static int32_t special_from_piece(gs_spm_t *self, const char *content)
{
    int32_t id = gs__spm_lookup(self, content, strlen(content));
    if (id >= 0 && add_token(self, content, id, true, false, false) != GS_OK)
        return -1;
    return id;
}

void gs__spm_init_hf_defaults(gs_spm_t *self)
{
    gs__spm_free_hf(self);
    self->n_vocab = self->n_pieces;
    self->hf_legacy = true;
    self->hf_add_bos = true;
    self->hf_add_eos = false;
    self->hf_add_prefix_space = true;
    self->hf_spaces_between_special = true;
    self->hf_clean_up_spaces = false;
    self->hf_unk_token = gs_xstrdup("<unk>");
    self->hf_unk_id = special_from_piece(self, "<unk>");
    self->hf_bos_id = special_from_piece(self, "<s>");
    self->hf_eos_id = special_from_piece(self, "</s>");
    self->hf_pad_id = -1;
    if (self->hf_unk_id < 0)
        self->hf_unk_id = self->unk_id;
    if (self->hf_bos_id < 0)
        self->hf_bos_id = self->bos_id;
    if (self->hf_eos_id < 0)
        self->hf_eos_id = self->eos_id;
    size_t n = 0;
    int32_t ids[16];
    self->hf_unk_token_length = 0;
    if (gs_spm_encode(self, "<unk>", 5, GS_SPM_NO_DUMMY_PREFIX, ids, 16, &n) == GS_OK)
        self->hf_unk_token_length = (int32_t)n;
}

// ---- JSON files ---------------------------------------------------------------------------

static gs_err load_json(const char *dir, const char *name, json_t **out)
{
    *out = NULL;
    char *path = gs_path_join(dir, name);
    gs_err err = GS_OK;
    if (!gs_path_exists(path))
        goto out;
    char *data = NULL;
    size_t n = 0;
    if ((err = gs_read_file(path, JSON_MAX_NBYTES, &data, &n)) != GS_OK)
        goto out;
    json_error_t jerr;
    *out = json_loadb(data, n, JSON_DECODE_INT_AS_REAL, &jerr);
    gs_free(data);
    if (!*out || !json_is_object(*out)) {
        GS_LOG_ERROR("could not parse \"%s\": %s (line %d)", path,
                     *out ? "not a JSON object" : jerr.text, jerr.line);
        json_decref(*out);
        *out = NULL;
        err = GS_EFORMAT;
    }
out:
    gs_free(path);
    return err;
}

// token_content: "<s>" or {"content": "<s>", ...} -> "<s>"; NULL otherwise.
static const char *token_content(const json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_object(v))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static bool get_bool(const json_t *obj, const char *key, bool dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

// added_tokens_decoder: {"32000": {"content": "<image>", "special": true, ...}, ...}
static gs_err load_added_decoder(gs_spm_t *self, const json_t *cfg)
{
    const json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (!dec)
        return GS_OK;
    if (!json_is_object(dec))
        return GS_EFORMAT;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)dec, key, v)
    {
        char *end = NULL;
        long id = strtol(key, &end, 10);
        const char *content = token_content(v);
        if (!end || *end || end == key || !content || id < 0 || id >= (1 << 24)) {
            GS_LOG_ERROR("tokenizer_config.json: bad added_tokens_decoder entry \"%s\"", key);
            return GS_EFORMAT;
        }
        GS_TRY(add_token(self, content, (int32_t)id, get_bool(v, "special", false),
                         get_bool(v, "lstrip", false), get_bool(v, "rstrip", false)));
    }
    return GS_OK;
}

// added_tokens.json: {"<image>": 32000, "<pad>": 32001}
static gs_err load_added_json(gs_spm_t *self, const json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        double id = json_number_value(v);
        if (!json_is_number(v) || id != (double)(int32_t)id || id < 0 || id >= (1 << 24)) {
            GS_LOG_ERROR("added_tokens.json: the id of \"%s\" is not a valid id", key);
            return GS_EFORMAT;
        }
        gs__spm_added_t *a = find_added(self, key);
        GS_TRY(add_token(self, key, (int32_t)id, a ? a->special : false, false, false));
    }
    return GS_OK;
}

// special_id_of: the id of a named special token (bos_token, ...): an added token, or a piece
// (registered as a special added token, as transformers does). -1 for null or unknown.
static int32_t special_id_of(gs_spm_t *self, const json_t *v)
{
    const char *content = token_content(v);
    if (!content)
        return -1;
    gs__spm_added_t *a = find_added(self, content);
    if (a) {
        a->special = true;
        return a->id;
    }
    return special_from_piece(self, content);
}

// load_special: bos/eos/unk/pad and additional_special_tokens from one JSON object.
static gs_err load_special(gs_spm_t *self, const json_t *obj)
{
    static const char *names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *ids[4] = {&self->hf_bos_id, &self->hf_eos_id, &self->hf_unk_id, &self->hf_pad_id};
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(obj, names[i]);
        if (!v)
            continue;
        *ids[i] = special_id_of(self, v);
        if (i == 2 && token_content(v)) {
            gs_free(self->hf_unk_token);
            self->hf_unk_token = gs_xstrdup(token_content(v));
        }
    }
    const json_t *extra = json_object_get(obj, "additional_special_tokens");
    size_t k;
    json_t *v;
    json_array_foreach(extra, k, v)
    {
        const char *content = token_content(v);
        gs__spm_added_t *a = content ? find_added(self, content) : NULL;
        if (a)
            a->special = true;
        else if (content)
            special_from_piece(self, content);
    }
    return GS_OK;
}

gs_err gs__spm_load_hf(gs_spm_t *self, const char *dir)
{
    json_t *cfg = NULL, *added = NULL, *smap = NULL;
    gs_err err;
    if ((err = load_json(dir, "tokenizer_config.json", &cfg)) != GS_OK ||
        (err = load_json(dir, "added_tokens.json", &added)) != GS_OK ||
        (err = load_json(dir, "special_tokens_map.json", &smap)) != GS_OK)
        goto out;
    if (cfg) {
        self->hf_legacy = get_bool(cfg, "legacy", true);
        self->hf_add_bos = get_bool(cfg, "add_bos_token", true);
        self->hf_add_eos = get_bool(cfg, "add_eos_token", false);
        self->hf_add_prefix_space = get_bool(cfg, "add_prefix_space", true);
        self->hf_clean_up_spaces = get_bool(cfg, "clean_up_tokenization_spaces", false);
        if ((err = load_added_decoder(self, cfg)) != GS_OK)
            goto out;
    }
    if (added && (err = load_added_json(self, added)) != GS_OK)
        goto out;
    if (smap && (err = load_special(self, smap)) != GS_OK)
        goto out;
    if (cfg && (err = load_special(self, cfg)) != GS_OK)
        goto out;
    size_t n = 0;
    int32_t ids[64];
    if (gs_spm_encode(self, self->hf_unk_token, strlen(self->hf_unk_token), GS_SPM_NO_DUMMY_PREFIX,
                      ids, 64, &n) == GS_OK)
        self->hf_unk_token_length = (int32_t)n;
out:
    if (err == GS_EFORMAT)
        GS_LOG_ERROR("tokenizer files in \"%s\" are malformed", dir);
    json_decref(cfg);
    json_decref(added);
    json_decref(smap);
    return err;
}

gs_err gs_spm_open_dir(const char *dir, gs_spm_t **out)
{
    char *path = gs_path_join(dir, "tokenizer.model");
    gs_err err = gs_spm_open(path, out);
    gs_free(path);
    if (err == GS_OK && (err = gs__spm_load_hf(*out, dir)) != GS_OK)
        gs_spm_close(out);
    return err;
}

// ---- encoding -----------------------------------------------------------------------------

typedef struct {
    int32_t *ids;
    size_t cap, n;
} ids_t;

static gs_err push_id(ids_t *o, int32_t id)
{
    if (o->n >= o->cap)
        return GS_ETOOBIG;
    o->ids[o->n++] = id;
    return GS_OK;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// match_added: the longest added token at text[i..n), or NULL.
static const gs__spm_added_t *match_added(const gs_spm_t *self, const char *text, size_t n)
{
    const gs__spm_added_t *best = NULL;
    for (size_t k = 0; k < self->n_added; k++) {
        const gs__spm_added_t *a = &self->added[k];
        if (a->nbytes <= n && (!best || a->nbytes > best->nbytes) &&
            memcmp(text, a->content, a->nbytes) == 0)
            best = a;
    }
    return best;
}

// encode_segment: LlamaTokenizer._tokenize of one text segment.
static gs_err encode_segment(const gs_spm_t *self, const char *seg, size_t n, ids_t *o)
{
    if (n == 0)
        return GS_OK;
    size_t got = 0;
    if (self->hf_legacy)
        return gs_spm_encode(self, seg, n, 0, o->ids + o->n, o->cap - o->n, &got) == GS_OK
                   ? (o->n += got, GS_OK)
                   : GS_ETOOBIG;
    bool leading_space = seg[0] == ' ' || (n >= SPACE_SYMBOL_NBYTES &&
                                           memcmp(seg, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES) == 0);
    if (!leading_space) {
        GS_TRY(gs_spm_encode(self, seg, n, GS_SPM_NO_DUMMY_PREFIX, o->ids + o->n, o->cap - o->n,
                             &got));
        o->n += got;
        return GS_OK;
    }
    // "<unk>" + segment, then drop the pieces of "<unk>": keeps the leading '▁' attached as
    // SentencePiece would inside a sentence
    size_t unk_n = strlen(self->hf_unk_token), tn = unk_n + n;
    char *tmp = gs_trymalloc(tn);
    size_t cap = o->cap - o->n + (size_t)self->hf_unk_token_length;
    int32_t *ids = gs_trymalloc(cap * sizeof *ids);
    gs_err err = GS_ENOMEM;
    if (tmp && ids) {
        memcpy(tmp, self->hf_unk_token, unk_n);
        memcpy(tmp + unk_n, seg, n);
        err = gs_spm_encode(self, tmp, tn, GS_SPM_NO_DUMMY_PREFIX, ids, cap, &got);
        if (err == GS_OK) {
            size_t skip =
                got >= (size_t)self->hf_unk_token_length ? (size_t)self->hf_unk_token_length : 0;
            for (size_t i = skip; i < got && err == GS_OK; i++)
                err = push_id(o, ids[i]);
        }
    }
    gs_free(tmp);
    gs_free(ids);
    return err;
}

static bool is_special_id(const gs_spm_t *self, int32_t id)
{
    const gs__spm_added_t *a = find_added_id(self, id);
    return (a && a->special) || (id >= 0 && (id == self->hf_bos_id || id == self->hf_eos_id ||
                                             id == self->hf_unk_id || id == self->hf_pad_id));
}

gs_err gs_spm_encode_hf(const gs_spm_t *self, const char *text, size_t text_nbytes,
                        int32_t *out_ids, size_t cap, size_t *out_n)
{
    *out_n = 0;
    if (text_nbytes > GS_SPM_MAX_TEXT_NBYTES)
        return GS_ETOOBIG;
    ids_t o = {out_ids, cap, 0};
    if (self->hf_add_bos && self->hf_bos_id >= 0)
        GS_TRY(push_id(&o, self->hf_bos_id));
    size_t first_id = o.n;
    // non-legacy: every U+2581 becomes ' ', then one '▁' goes in front of the whole text
    char *buf = NULL;
    if (!self->hf_legacy && text_nbytes > 0) {
        buf = gs_trymalloc(text_nbytes + SPACE_SYMBOL_NBYTES);
        if (!buf)
            return GS_ENOMEM;
        size_t k = 0;
        if (self->hf_add_prefix_space) {
            memcpy(buf, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES);
            k = SPACE_SYMBOL_NBYTES;
        }
        for (size_t i = 0; i < text_nbytes;) {
            if (i + SPACE_SYMBOL_NBYTES <= text_nbytes &&
                memcmp(text + i, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES) == 0) {
                buf[k++] = ' ';
                i += SPACE_SYMBOL_NBYTES;
            } else {
                buf[k++] = text[i++];
            }
        }
        text = buf;
        text_nbytes = k;
    }
    gs_err err = GS_OK;
    size_t seg = 0, i = 0;
    bool strip_left = false; // the previous token had rstrip
    while (i <= text_nbytes && err == GS_OK) {
        const gs__spm_added_t *a =
            i < text_nbytes ? match_added(self, text + i, text_nbytes - i) : NULL;
        if (!a && i < text_nbytes) {
            i++;
            continue;
        }
        size_t s = seg, e = i;
        if (strip_left)
            while (s < e && is_ws(text[s]))
                s++;
        if (a && a->lstrip)
            while (e > s && is_ws(text[e - 1]))
                e--;
        err = encode_segment(self, text + s, e - s, &o);
        if (!a || err != GS_OK)
            break;
        err = push_id(&o, a->id);
        strip_left = a->rstrip;
        i += a->nbytes;
        seg = i;
    }
    // "▁" directly followed by a special token: transformers drops the lone '▁'
    if (err == GS_OK && !self->hf_legacy && o.n >= first_id + 2) {
        const char *p0 = gs_spm_piece(self, o.ids[first_id]);
        if (p0 && strcmp(p0, SPACE_SYMBOL) == 0 && !find_added_id(self, o.ids[first_id]) &&
            is_special_id(self, o.ids[first_id + 1])) {
            memmove(o.ids + first_id, o.ids + first_id + 1, (o.n - first_id - 1) * sizeof *o.ids);
            o.n--;
        }
    }
    if (err == GS_OK && self->hf_add_eos && self->hf_eos_id >= 0)
        err = push_id(&o, self->hf_eos_id);
    gs_free(buf);
    *out_n = o.n;
    return err;
}

// ---- decoding -----------------------------------------------------------------------------

// tokens_to_string: LlamaTokenizer.convert_tokens_to_string for ids[0..n) (no added tokens
// beyond the model): the first token's '▁' removed, special pieces written as their text,
// the rest decoded by SentencePiece without the dummy-prefix logic.
static gs_err tokens_to_string(const gs_spm_t *self, const int32_t *ids, size_t n, gs_buf_t *out)
{
    size_t run = 0;
    for (size_t i = 0; i <= n; i++) {
        const gs__spm_added_t *a = i < n ? find_added_id(self, ids[i]) : NULL;
        bool special = a && is_special_id(self, ids[i]);
        if (i < n && !special)
            continue;
        const int32_t *r = ids + run;
        size_t rn = i - run;
        if (rn > 0 && run == 0 && self->hf_add_prefix_space) {
            // strip the '▁' of the very first token
            const char *p = gs__spm_piece_str(self, r[0]);
            if (self->type[r[0]] != GS_SPM_BYTE &&
                strncmp(p, SPACE_SYMBOL, SPACE_SYMBOL_NBYTES) == 0) {
                size_t len0 = out->len;
                GS_TRY(gs_spm_decode(self, r, 1, GS_SPM_NO_DUMMY_PREFIX, out));
                if (out->len > len0 && out->data[len0] == ' ') {
                    memmove(out->data + len0, out->data + len0 + 1, out->len - len0);
                    out->len--;
                }
                r++;
                rn--;
            }
        }
        GS_TRY(gs_spm_decode(self, r, rn, GS_SPM_NO_DUMMY_PREFIX, out));
        if (special)
            GS_TRY(gs_buf_puts(out, a->content));
        run = i + 1;
    }
    return GS_OK;
}

static gs_err clean_up_spaces(gs_buf_t *b, size_t from)
{
    static const char *pat[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},   {" ,", ","},
                                   {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"},
                                   {" 've", "'ve"}, {" 're", "'re"}};
    if (!b->data)
        return GS_OK;
    for (size_t p = 0; p < sizeof pat / sizeof pat[0]; p++) {
        size_t pn = strlen(pat[p][0]), rn = strlen(pat[p][1]), w = from;
        for (size_t r = from; r < b->len;) {
            if (r + pn <= b->len && memcmp(b->data + r, pat[p][0], pn) == 0) {
                memmove(b->data + w, pat[p][1], rn);
                w += rn;
                r += pn;
            } else {
                b->data[w++] = b->data[r++];
            }
        }
        b->len = w;
        b->data[w] = '\0';
    }
    return GS_OK;
}

gs_err gs_spm_decode_hf(const gs_spm_t *self, const int32_t *ids, size_t n, unsigned flags,
                        gs_buf_t *out)
{
    // tokens: drop skipped specials and ids without a piece; added tokens beyond the
    // SentencePiece model (and non-special ones) are their own sub-texts
    int32_t *keep = gs_trymalloc((n ? n : 1) * sizeof *keep);
    if (!keep)
        return GS_ENOMEM;
    size_t k = 0, len0 = out->len, n_sub = 0;
    gs_err err = GS_OK;
    for (size_t i = 0; i <= n && err == GS_OK; i++) {
        int32_t id = i < n ? ids[i] : -1;
        if (i < n && (flags & GS_SPM_SKIP_SPECIAL) && is_special_id(self, id))
            continue;
        const gs__spm_added_t *a = i < n ? find_added_id(self, id) : NULL;
        bool own = a && (!a->special || id >= self->n_pieces);
        if (i < n && !own) {
            if (a || (id >= 0 && id < self->n_pieces))
                keep[k++] = id;
            continue;
        }
        if (k > 0) {
            size_t before = out->len;
            if (n_sub > 0 && self->hf_spaces_between_special)
                err = gs_buf_append(out, " ", 1);
            if (err == GS_OK)
                err = tokens_to_string(self, keep, k, out);
            if (err == GS_OK && out->len == before + (n_sub > 0 && self->hf_spaces_between_special))
                out->len = before; // empty sub-texts are dropped
            else
                n_sub++;
            k = 0;
        }
        if (own && err == GS_OK) {
            if (n_sub > 0 && self->hf_spaces_between_special)
                err = gs_buf_append(out, " ", 1);
            if (err == GS_OK)
                err = gs_buf_puts(out, a->content);
            n_sub++;
        }
    }
    gs_free(keep);
    if (err == GS_OK && out->data)
        out->data[out->len] = '\0';
    if (err == GS_OK && self->hf_clean_up_spaces)
        err = clean_up_spaces(out, len0);
    if (err == GS_OK && !out->data)
        err = gs_buf_append(out, "", 0);
    return err;
}
