// Caption metrics with the coco-caption definitions (pycocoevalcap): corpus BLEU-1..4 with the
// closest-reference brevity penalty, ROUGE-L (LCS F-measure, beta 1.2) and CIDEr-D (TF-IDF
// n-grams 1..4, document frequency over the references of the scored set, clipping, gaussian
// length penalty sigma 6, x10), over a simple equivalent of coco's PTB tokenisation. The exact
// definitions, quirks included, are in docs/EVAL.md. An accumulator collects (candidate,
// references) items; gs_capscore_compute scores the whole set, since BLEU is a corpus statistic
// and CIDEr's document frequencies span the set. Not here: METEOR and SPICE (they need Java
// and WordNet), generating the candidates (model/llava.h).
#pragma once

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

// Size caps: a caption longer than GS_CAPSCORE_MAX_TOKENS tokens or an item with more than
// GS_CAPSCORE_MAX_REFS references is refused with GS_ETOOBIG.
#define GS_CAPSCORE_MAX_TOKENS 1024
#define GS_CAPSCORE_MAX_REFS 1024

typedef struct gs_capscore gs_capscore_t;

// Scores of a set (transparent value struct). All metrics are fractions (BLEU 0..1, ROUGE-L
// 0..1, CIDEr-D 0..10), as pycocoevalcap returns them.
typedef struct {
    int n;          // items scored
    double bleu[4]; // corpus BLEU-1..4
    double rouge_l; // mean over items of the ROUGE-L F-measure
    double cider;   // mean over items of CIDEr-D
} gs_capscore_result_t;

// gs_capscore_tokenize: appends the tokens of `text`, separated by single spaces, to out
// (nothing for a text without tokens). The rules (docs/EVAL.md): ASCII letters are lowercased;
// whitespace separates; the punctuation coco's PTBTokenizer wrapper drops (. , ? ! : ; quotes,
// brackets, lone hyphens) separates and is dropped, except '.' and ',' between digits (3.5,
// 1,000) and '-' between letters or digits (greenish-blue), which stay inside the token; the
// clitics 's 're 've 'll 'm 'd n't become tokens of their own (PTB: "it's" -> "it 's");
// $ % & # are tokens of their own; other bytes (UTF-8 included) are word characters.
// Returns GS_ETOOBIG / GS_ENOMEM from the buffer. Thread-safe.
gs_err gs_capscore_tokenize(const char *text, gs_buf_t *out);

// gs_capscore_new: an empty accumulator; aborts on OOM (it grows with gs_capscore_add, which
// can fail). The caller owns it (gs_capscore_destroy).
gs_capscore_t *gs_capscore_new(void);
// gs_capscore_destroy: frees it; NULLs *p; accepts NULL.
void gs_capscore_destroy(gs_capscore_t **p);

// gs_capscore_add: adds one item: a candidate caption and its n_refs >= 1 reference captions
// (raw text, tokenised here). GS_EINVAL (NULL text, n_refs < 1), GS_ETOOBIG (a caption over
// GS_CAPSCORE_MAX_TOKENS tokens, more than GS_CAPSCORE_MAX_REFS references), GS_ENOMEM.
// Nothing is added on error. Not thread-safe (one accumulator per thread).
gs_err gs_capscore_add(gs_capscore_t *self, const char *candidate, const char *const *refs,
                       int n_refs);

// gs_capscore_count: items added so far.
int gs_capscore_count(const gs_capscore_t *self);

// gs_capscore_compute: the scores of all items added. An empty set gives n = 0 and zeros.
// out_cider_items / out_rouge_items (may be NULL): per-item CIDEr-D and ROUGE-L, in the order
// added (gs_capscore_count doubles each). GS_ENOMEM. Does not modify the accumulator (more
// items may be added and the set scored again). Not thread-safe.
gs_err gs_capscore_compute(const gs_capscore_t *self, gs_capscore_result_t *out,
                           double *out_cider_items, double *out_rouge_items);
