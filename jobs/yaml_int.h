// Module-private: a small YAML document tree (libyaml events -> nodes with line numbers) for the
// job spec. Only block/flow mappings, sequences and scalars; anchors, aliases and several
// documents are refused (a job file needs none of them, and they hide what a key is set to).
#pragma once

#include <stddef.h>

#include "common/err.h"

typedef enum { GS__Y_SCALAR, GS__Y_SEQ, GS__Y_MAP } gs__ykind_t;

typedef struct gs__ynode gs__ynode_t;
struct gs__ynode {
    gs__ykind_t kind;
    char *key;          // the key when this node is a mapping value, else NULL; owned
    char *value;        // scalar text; "" for a null (~, null, nothing); owned
    int line;           // 1-based line in the file; 0 when set with --set
    gs__ynode_t **kids; // sequence items or mapping values in document order; owned
    size_t n_kids;
};

// The deepest nesting accepted (the job spec needs 3) and the largest document.
#define GS__YAML_MAX_DEPTH 16
#define GS__YAML_MAX_NBYTES (4u << 20)

// gs__yaml_parse: parses one YAML document into a tree (an empty document gives an empty map).
// On GS_EFORMAT, err holds "what (line N)" from libyaml or from the refusals above (duplicate
// keys included). Ownership: free the tree with gs__ynode_free.
gs_err gs__yaml_parse(const char *text, size_t nbytes, gs__ynode_t **out, char *err,
                      size_t err_nbytes);
// gs__ynode_new: an empty node of a kind (aborts on OOM).
gs__ynode_t *gs__ynode_new(gs__ykind_t kind, const char *key, const char *value, int line);
// gs__ynode_add: appends kid to a sequence or mapping (takes ownership).
void gs__ynode_add(gs__ynode_t *self, gs__ynode_t *kid);
// gs__ynode_get: the value of `key` in a mapping, NULL if absent. Borrowed.
gs__ynode_t *gs__ynode_get(const gs__ynode_t *self, const char *key);
// gs__ynode_replace: sets `key` of a mapping to `kid` (replacing and freeing an old value).
void gs__ynode_replace(gs__ynode_t *self, const char *key, gs__ynode_t *kid);
// gs__ynode_free: frees a node and its subtree; NULLs *p; accepts NULL.
void gs__ynode_free(gs__ynode_t **p);
