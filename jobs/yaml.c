// A YAML document tree for the job spec, built from libyaml's event stream (yaml_int.h).
#include "jobs/yaml_int.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common/alloc.h"

gs__ynode_t *gs__ynode_new(gs__ykind_t kind, const char *key, const char *value, int line)
{
    gs__ynode_t *n = gs_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->key = key ? gs_xstrdup(key) : NULL;
    n->value = gs_xstrdup(value ? value : "");
    n->line = line;
    return n;
}

void gs__ynode_add(gs__ynode_t *self, gs__ynode_t *kid)
{
    self->kids = gs_xrealloc(self->kids, (self->n_kids + 1) * sizeof *self->kids);
    self->kids[self->n_kids++] = kid;
}

gs__ynode_t *gs__ynode_get(const gs__ynode_t *self, const char *key)
{
    if (!self || self->kind != GS__Y_MAP)
        return NULL;
    for (size_t i = 0; i < self->n_kids; i++)
        if (strcmp(self->kids[i]->key, key) == 0)
            return self->kids[i];
    return NULL;
}

void gs__ynode_replace(gs__ynode_t *self, const char *key, gs__ynode_t *kid)
{
    gs_free(kid->key);
    kid->key = gs_xstrdup(key);
    for (size_t i = 0; i < self->n_kids; i++) {
        if (strcmp(self->kids[i]->key, key) == 0) {
            gs__ynode_free(&self->kids[i]);
            self->kids[i] = kid;
            return;
        }
    }
    gs__ynode_add(self, kid);
}

void gs__ynode_free(gs__ynode_t **p)
{
    if (!p || !*p)
        return;
    for (size_t i = 0; i < (*p)->n_kids; i++)
        gs__ynode_free(&(*p)->kids[i]);
    gs_free((*p)->kids);
    gs_free((*p)->key);
    gs_free((*p)->value);
    GS_FREE(*p);
}

// ---- parsing ------------------------------------------------------------------------------

typedef struct {
    yaml_parser_t parser;
    char *err;
    size_t err_nbytes;
} ctx_t;

static gs_err fail(ctx_t *c, int line, const char *what)
{
    if (line > 0)
        snprintf(c->err, c->err_nbytes, "%s (line %d)", what, line);
    else
        snprintf(c->err, c->err_nbytes, "%s", what);
    return GS_EFORMAT;
}

static gs_err next(ctx_t *c, yaml_event_t *ev)
{
    if (yaml_parser_parse(&c->parser, ev))
        return GS_OK;
    char what[300];
    snprintf(what, sizeof what, "invalid YAML: %s%s%s",
             c->parser.problem ? c->parser.problem : "syntax error", c->parser.context ? " " : "",
             c->parser.context ? c->parser.context : "");
    return fail(c, (int)c->parser.problem_mark.line + 1, what);
}

static int is_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

// parse_node: builds the node that starts with event *ev (consumed here) into *out.
static gs_err parse_node(ctx_t *c, yaml_event_t *ev, int depth, const char *key, gs__ynode_t **out)
{
    int line = (int)ev->start_mark.line + 1;
    if (depth > GS__YAML_MAX_DEPTH)
        return fail(c, line, "nesting is too deep");
    if (ev->type == YAML_ALIAS_EVENT)
        return fail(c, line, "aliases (*name) are not supported");
    if ((ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor) ||
        (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor) ||
        (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor))
        return fail(c, line, "anchors (&name) are not supported");
    if (ev->type == YAML_SCALAR_EVENT) {
        const char *v = is_null(ev) ? "" : (const char *)ev->data.scalar.value;
        if (strlen(v) != ev->data.scalar.length)
            return fail(c, line, "a value holds a NUL byte");
        *out = gs__ynode_new(GS__Y_SCALAR, key, v, line);
        return GS_OK;
    }
    if (ev->type != YAML_SEQUENCE_START_EVENT && ev->type != YAML_MAPPING_START_EVENT)
        return fail(c, line, "unexpected YAML event");
    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    gs__ynode_t *node = gs__ynode_new(is_map ? GS__Y_MAP : GS__Y_SEQ, key, "", line);
    gs_err err = GS_OK;
    for (;;) {
        yaml_event_t kev;
        if ((err = next(c, &kev)) != GS_OK)
            break;
        if (kev.type == YAML_SEQUENCE_END_EVENT || kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        char *k = NULL;
        if (is_map) {
            int kline = (int)kev.start_mark.line + 1;
            if (kev.type != YAML_SCALAR_EVENT) {
                yaml_event_delete(&kev);
                err = fail(c, kline, "keys must be plain text");
                break;
            }
            k = gs_xstrdup((const char *)kev.data.scalar.value);
            yaml_event_delete(&kev);
            if (gs__ynode_get(node, k)) {
                char what[300];
                snprintf(what, sizeof what, "key \"%.200s\" is given twice", k);
                gs_free(k);
                err = fail(c, kline, what);
                break;
            }
            if ((err = next(c, &kev)) != GS_OK) {
                gs_free(k);
                break;
            }
        }
        gs__ynode_t *kid = NULL;
        err = parse_node(c, &kev, depth + 1, k, &kid);
        yaml_event_delete(&kev);
        gs_free(k);
        if (err != GS_OK)
            break;
        gs__ynode_add(node, kid);
    }
    if (err != GS_OK) {
        gs__ynode_free(&node);
        return err;
    }
    *out = node;
    return GS_OK;
}

static gs_err parse_stream(ctx_t *c, gs__ynode_t **out)
{
    yaml_event_t ev;
    gs__ynode_t *root = NULL;
    gs_err err;
    while ((err = next(c, &ev)) == GS_OK) {
        yaml_event_type_t t = ev.type;
        int line = (int)ev.start_mark.line + 1;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            if (root) {
                err = fail(c, line, "only one YAML document is allowed");
                break;
            }
            continue;
        }
        err = parse_node(c, &ev, 0, NULL, &root);
        yaml_event_delete(&ev);
        if (err != GS_OK)
            break;
        if (root->kind != GS__Y_MAP) {
            err = fail(c, root->line, "the job must be a mapping of keys to values");
            break;
        }
    }
    if (err != GS_OK) {
        gs__ynode_free(&root);
        return err;
    }
    *out = root ? root : gs__ynode_new(GS__Y_MAP, NULL, "", 1);
    return GS_OK;
}

gs_err gs__yaml_parse(const char *text, size_t nbytes, gs__ynode_t **out, char *err,
                      size_t err_nbytes)
{
    ctx_t c = {.err = err, .err_nbytes = err_nbytes};
    if (nbytes > GS__YAML_MAX_NBYTES)
        return fail(&c, 0, "the file is larger than 4 MiB");
    if (memchr(text, '\0', nbytes))
        return fail(&c, 0, "the file holds a NUL byte (not a text file)");
    if (!yaml_parser_initialize(&c.parser))
        return GS_ENOMEM;
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, nbytes);
    gs_err e = parse_stream(&c, out);
    yaml_parser_delete(&c.parser);
    return e;
}
