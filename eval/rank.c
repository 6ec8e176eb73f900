// Ranks and recall@K (see rank.h): plain loops, O(n_texts^2) for i2t and O(n_texts * n_images)
// for t2i, a few milliseconds for the UCM val split (210 images, 1050 texts).
#include "eval/rank.h"

#include <math.h>
#include <stddef.h>

int gs_rank_of(const float *scores, int n, int target)
{
    if (!scores || n < 1 || target < 0 || target >= n)
        return -1;
    float s = scores[target];
    int r = 0;
    if (isnan(s)) {
        for (int k = 0; k < n; k++)
            r += !isnan(scores[k]) || k < target;
        return r;
    }
    for (int k = 0; k < n; k++)
        r += scores[k] > s || (scores[k] == s && k < target);
    return r;
}

static const int recall_k[3] = {1, 5, 10};

gs_err gs_rank_recall(const float *sim, int n_images, int n_texts, const int *text_image,
                      float *scratch, gs_rank_recall_t *out)
{
    if (!sim || !text_image || !scratch || !out || n_images < 1 || n_texts < 1)
        return GS_EINVAL;
    for (int t = 0; t < n_texts; t++)
        if (text_image[t] < 0 || text_image[t] >= n_images)
            return GS_EINVAL;
    long hit_i2t[3] = {0}, hit_t2i[3] = {0};
    int n_queries = 0; // images with at least one text
    for (int i = 0; i < n_images; i++) {
        const float *row = sim + (size_t)i * n_texts;
        int best = -1;
        for (int t = 0; t < n_texts; t++) {
            if (text_image[t] != i)
                continue;
            int r = gs_rank_of(row, n_texts, t);
            best = best < 0 || r < best ? r : best;
        }
        if (best < 0)
            continue;
        n_queries++;
        for (int k = 0; k < 3; k++)
            hit_i2t[k] += best < recall_k[k];
    }
    if (n_queries == 0)
        return GS_EINVAL;
    for (int t = 0; t < n_texts; t++) {
        for (int i = 0; i < n_images; i++)
            scratch[i] = sim[(size_t)i * n_texts + t];
        int r = gs_rank_of(scratch, n_images, text_image[t]);
        for (int k = 0; k < 3; k++)
            hit_t2i[k] += r < recall_k[k];
    }
    out->n_images = n_images;
    out->n_texts = n_texts;
    out->mr = 0;
    for (int k = 0; k < 3; k++) {
        out->i2t[k] = 100.0 * (double)hit_i2t[k] / n_queries;
        out->t2i[k] = 100.0 * (double)hit_t2i[k] / n_texts;
        out->mr += (out->i2t[k] + out->t2i[k]) / 6.0;
    }
    return GS_OK;
}
