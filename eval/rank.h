// Ranking metrics over similarity scores: the stable rank of an item among scores, image-text
// retrieval recall@K both ways (the protocol of the remote-sensing retrieval papers: i2t hits
// when any of the image's captions is in the top K, t2i when the caption's image is) and
// top-K classification hits. Ties are broken by index (the lower index ranks first), as a
// stable descending sort would: results are deterministic. Pure functions over caller memory;
// thread-safe. Not here: computing the similarities (model/clip.h).
#pragma once

#include "common/err.h"

// Recall at K = 1, 5, 10 in percent both ways, and their mean (mR).
typedef struct {
    int n_images, n_texts;
    double i2t[3]; // image -> text R@1, R@5, R@10 (percent)
    double t2i[3]; // text -> image R@1, R@5, R@10 (percent)
    double mr;     // mean of the six
} gs_rank_recall_t;

// gs_rank_of: the 0-based rank of scores[target] among scores[0, n): the number of scores
// greater than it plus the number of equal scores at a lower index. NaN scores rank last
// (they are never greater; a NaN target ranks after every non-NaN score). -1 for a bad
// target or n.
int gs_rank_of(const float *scores, int n, int target);

// gs_rank_recall: sim is (n_images, n_texts) row-major, sim[i * n_texts + t] the similarity of
// image i and text t; text_image[t] is the image text t describes (0..n_images-1). Images
// without a text take part as distractors for t2i and are left out of the i2t average.
// GS_EINVAL (NULL pointers, n_images or n_texts < 1, a text_image out of range, no image with
// a text). scratch: n_images + n_texts floats. Thread-safe.
gs_err gs_rank_recall(const float *sim, int n_images, int n_texts, const int *text_image,
                      float *scratch, gs_rank_recall_t *out);
