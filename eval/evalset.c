// Karpathy-style dataset.json reader (see evalset.h), over jansson. Strings are copied into
// the set's arena; jansson's tree is freed before returning.
#define GS_LOG_MODULE "eval"
#include "eval/evalset.h"

#include <jansson.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

// One image entry's reference text; "raw", else the tokens joined with spaces.
static gs_err sentence_text(const json_t *s, gs_buf_t *b)
{
    const json_t *raw = json_object_get(s, "raw"), *tok = json_object_get(s, "tokens");
    gs_buf_reset(b);
    if (json_is_string(raw))
        return gs_buf_puts(b, json_string_value(raw));
    if (!json_is_array(tok))
        return GS_EFORMAT;
    size_t k;
    const json_t *t;
    json_array_foreach(tok, k, t)
    {
        if (!json_is_string(t))
            return GS_EFORMAT;
        GS_TRY(gs_buf_printf(b, "%s%s", k ? " " : "", json_string_value(t)));
    }
    return GS_OK;
}

// count: the images of the split and their sentences (for sizing the arrays).
static gs_err count(const char *path, const json_t *images, const char *split, int *out_ni,
                    int *out_nt)
{
    size_t i;
    const json_t *im;
    long ni = 0, nt = 0;
    json_array_foreach(images, i, im)
    {
        const json_t *fn = json_object_get(im, "filename"), *sp = json_object_get(im, "split");
        const json_t *se = json_object_get(im, "sentences");
        if (!json_is_object(im) || !json_is_string(fn) || (sp && !json_is_string(sp)) ||
            (se && !json_is_array(se))) {
            GS_LOG_ERROR("dataset \"%s\": image %zu lacks a \"filename\" string, or its "
                         "\"split\" is not a string or its \"sentences\" not an array",
                         path, i);
            return GS_EFORMAT;
        }
        if (split && strcmp(sp ? json_string_value(sp) : "", split) != 0)
            continue;
        ni++;
        nt += se ? (long)json_array_size(se) : 0;
        if (ni > (1 << 28) || nt > (1 << 28))
            return GS_ETOOBIG;
    }
    *out_ni = (int)ni;
    *out_nt = (int)nt;
    return GS_OK;
}

// fill: copies the selected images and sentences into s (arrays already sized).
static gs_err fill(const char *path, const json_t *images, const char *split, gs_evalset_t *s)
{
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 24);
    gs_err e = GS_OK;
    size_t i;
    const json_t *im;
    json_array_foreach(images, i, im)
    {
        const json_t *sp = json_object_get(im, "split"), *fp = json_object_get(im, "filepath");
        const char *spl = sp ? json_string_value(sp) : "";
        if (split && strcmp(spl, split) != 0)
            continue;
        gs_evalset_image_t *img = &s->images[s->n_images];
        const char *fn = json_string_value(json_object_get(im, "filename"));
        gs_buf_reset(&b);
        if (json_is_string(fp) && json_string_length(fp) > 0)
            e = gs_buf_printf(&b, "%s/%s", json_string_value(fp), fn);
        else
            e = gs_buf_puts(&b, fn);
        img->path = e == GS_OK ? gs_arena_strdup(s->arena_, b.data) : NULL;
        img->split = gs_arena_strdup(s->arena_, spl);
        img->first_text = s->n_texts;
        img->n_texts = 0;
        if (e != GS_OK || !img->path || !img->split) {
            e = e != GS_OK ? e : GS_ENOMEM;
            break;
        }
        size_t k;
        const json_t *sen;
        json_array_foreach(json_object_get(im, "sentences"), k, sen)
        {
            if (!json_is_object(sen) || (e = sentence_text(sen, &b)) != GS_OK) {
                e = e == GS_OK || e == GS_EFORMAT ? GS_EFORMAT : e;
                if (e == GS_EFORMAT)
                    GS_LOG_ERROR("dataset \"%s\": sentence %zu of image %zu (\"%s\") has no "
                                 "\"raw\" string and no \"tokens\" array of strings",
                                 path, k, i, fn);
                break;
            }
            const char *t = gs_arena_strdup(s->arena_, b.len ? b.data : "");
            if (!t) {
                e = GS_ENOMEM;
                break;
            }
            s->texts[s->n_texts] = t;
            s->text_image[s->n_texts++] = s->n_images;
            img->n_texts++;
        }
        if (e != GS_OK)
            break;
        s->n_images++;
    }
    gs_buf_cleanup(&b);
    return e;
}

gs_err gs_evalset_read(const char *path, const char *split, gs_evalset_t **out)
{
    if (!path || !out)
        return GS_EINVAL;
    char *text = NULL;
    size_t n = 0;
    GS_TRY(gs_read_file(path, GS_EVALSET_MAX_NBYTES, &text, &n));
    json_error_t je;
    json_t *root = json_loadb(text, n, 0, &je);
    gs_free(text);
    if (!root) {
        GS_LOG_ERROR("dataset \"%s\": not valid JSON at line %d, column %d: %s", path, je.line,
                     je.column, je.text);
        return GS_EFORMAT;
    }
    gs_evalset_t *s = gs_xcalloc(1, sizeof *s);
    s->arena_ = gs_arena_new((size_t)1 << 20, 0);
    const json_t *images = json_object_get(root, "images");
    int ni = 0, nt = 0;
    gs_err e = GS_OK;
    if (!json_is_array(images)) {
        GS_LOG_ERROR("dataset \"%s\": no \"images\" array at the top level (a Karpathy-style "
                     "dataset.json is {\"images\": [...]})",
                     path);
        e = GS_EFORMAT;
    }
    if (e == GS_OK)
        e = count(path, images, split, &ni, &nt);
    if (e == GS_OK) {
        s->images = gs_arena_calloc(s->arena_, (size_t)ni + 1, sizeof *s->images);
        s->texts = gs_arena_calloc(s->arena_, (size_t)nt + 1, sizeof *s->texts);
        s->text_image = gs_arena_calloc(s->arena_, (size_t)nt + 1, sizeof *s->text_image);
        e = s->images && s->texts && s->text_image ? fill(path, images, split, s) : GS_ENOMEM;
    }
    json_decref(root);
    if (e != GS_OK) {
        gs_evalset_destroy(&s);
        return e;
    }
    *out = s;
    return GS_OK;
}

void gs_evalset_destroy(gs_evalset_t **p)
{
    if (!p || !*p)
        return;
    gs_arena_destroy(&(*p)->arena_);
    gs_free(*p);
    *p = NULL;
}
