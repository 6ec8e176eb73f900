// Decoding strategies of the captioner, as transformers v4.40 `generate` runs them for a batch
// of one: greedy (argmax, first index on ties), beam search (BeamSearchScorer: log-softmax
// scores, top 2*num_beams candidates, finished hypotheses scored sum_logprobs /
// generated_len^length_penalty, the early-stopping heuristic, finalize), and sampling
// (temperature, top-k, top-p warpers in that order, then a draw from our own seeded stream:
// the same distribution as torch.multinomial, not the same samples). All buffers come from
// the workspace sized at open.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/llava_int.h"

static bool is_eos(const gs__llava_dec_t *d, int tok)
{
    for (int i = 0; i < d->n_eos; i++)
        if (d->eos_ids[i] == tok)
            return true;
    return false;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void probe_logits(const gs__llava_dec_t *d, int step, const float *logits, int n_rows)
{
    if (d->probe)
        d->probe(d->probe_ud, "logits", step, logits, n_rows, d->vocab);
}

// embed_next: the embedding of token `tok` into row r of d->embeds.
static gs_err embed_next(gs__llava_dec_t *d, int r, int32_t tok)
{
    return gs__llama_embed(d->lm, &tok, 1, d->embeds + (size_t)r * d->dim);
}

// ---- sampling -----------------------------------------------------------------------------

// splitmix64: the random stream of the sampler.
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const float *sort_keys; // qsort has no context argument; sampling is single-threaded
static int cmp_desc(const void *a, const void *b)
{
    float x = sort_keys[*(const int32_t *)a], y = sort_keys[*(const int32_t *)b];
    if (x != y)
        return x > y ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

// sample: temperature, top-k, top-p on logits (modified in place), then one draw.
static int sample(gs__llava_dec_t *d, float *logits, const gs_llava_gen_t *g, uint64_t *rng)
{
    int V = d->vocab;
    if (g->temperature != 1.0f)
        for (int i = 0; i < V; i++)
            logits[i] /= g->temperature;
    int32_t *idx = d->work_idx;
    for (int i = 0; i < V; i++)
        idx[i] = i;
    sort_keys = logits;
    qsort(idx, (size_t)V, sizeof *idx, cmp_desc);
    int keep = V;
    if (g->top_k > 0 && g->top_k < V) { // ties with the k-th value are kept, as transformers
        float kth = logits[idx[g->top_k - 1]];
        keep = g->top_k;
        while (keep < V && logits[idx[keep]] >= kth)
            keep++;
    }
    float mx = logits[idx[0]];
    double sum = 0;
    for (int i = 0; i < keep; i++) {
        d->work[i] = expf(logits[idx[i]] - mx);
        sum += d->work[i];
    }
    if (g->top_p < 1.0f) {
        // transformers removes, from the least likely up, tokens whose cumulative probability
        // stays <= 1 - top_p (at least one token kept)
        double cum = 0, limit = 1.0 - g->top_p;
        int cut = keep;
        for (int i = keep - 1; i > 0; i--) {
            cum += d->work[i] / sum;
            if (cum > limit)
                break;
            cut = i;
        }
        for (int i = cut; i < keep; i++)
            sum -= d->work[i];
        keep = cut;
    }
    double u = (double)(next_u64(rng) >> 11) * 0x1.0p-53 * sum, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += d->work[i];
        if (u < acc)
            return idx[i];
    }
    return idx[keep - 1];
}

// ---- greedy and sampling ------------------------------------------------------------------

static gs_err run_single(gs__llava_dec_t *d, const float *embeds, int L, const gs_llava_gen_t *g,
                         int32_t *out, int max_new, int *out_n)
{
    gs__llama_seq_t *seq = &d->seq[0][0];
    seq->len = 0;
    uint64_t rng = g->seed;
    GS_TRY(gs__llama_forward(d->lm, seq, embeds, L, d->logits));
    int n = 0;
    for (;;) {
        probe_logits(d, n, d->logits, 1);
        int tok = g->do_sample ? sample(d, d->logits, g, &rng) : argmax(d->logits, d->vocab);
        out[n++] = tok;
        *out_n = n;
        if (is_eos(d, tok) || n >= max_new)
            return GS_OK;
        GS_TRY(embed_next(d, 0, tok));
        GS_TRY(gs__llama_forward(d->lm, seq, d->embeds, 1, d->logits));
    }
}

// ---- beam search --------------------------------------------------------------------------

typedef struct {
    gs__llava_dec_t *d;
    int nb, n_hyp;
    float worst;
    int64_t n_added;
    float length_penalty;
    bool early_stopping;
} beams_t;

// hyp_add: BeamHypotheses.add (tokens: a beam's generated ids, gen_len: the generated length
// the score is divided by).
static void hyp_add(beams_t *b, const int32_t *tokens, int n_tokens, float sum_logprobs,
                    int gen_len)
{
    gs__llava_dec_t *d = b->d;
    float score = sum_logprobs / powf((float)gen_len, b->length_penalty);
    if (b->n_hyp >= b->nb && !(score > b->worst))
        return;
    bool full = b->n_hyp == b->nb;
    int slot = b->n_hyp;
    if (full) { // the new one replaces the lowest (the earliest of equals)
        slot = 0;
        for (int i = 1; i < b->n_hyp; i++)
            if (d->hyp_score[i] < d->hyp_score[slot] ||
                (d->hyp_score[i] == d->hyp_score[slot] && d->hyp_order[i] < d->hyp_order[slot]))
                slot = i;
    } else {
        b->n_hyp++;
    }
    memcpy(d->hyp_tokens + (size_t)slot * d->n_ctx, tokens, (size_t)n_tokens * sizeof *tokens);
    d->hyp_len[slot] = n_tokens;
    d->hyp_score[slot] = score;
    d->hyp_order[slot] = b->n_added++;
    if (full) {
        b->worst = INFINITY;
        for (int i = 0; i < b->n_hyp; i++)
            b->worst = d->hyp_score[i] < b->worst ? d->hyp_score[i] : b->worst;
    } else {
        b->worst = score < b->worst ? score : b->worst;
    }
}

static bool hyp_is_done(const beams_t *b, float best_sum_logprobs, int gen_len)
{
    if (b->n_hyp < b->nb)
        return false;
    if (b->early_stopping)
        return true;
    return b->worst >= best_sum_logprobs / powf((float)gen_len, b->length_penalty);
}

// top_candidates: the k best (score, beam, token) over nb x vocab scores, best first (ties:
// the lower flat index first, as torch.topk on CPU).
static int top_candidates(gs__llava_dec_t *d, const float *scores, int nb, int k)
{
    int n = 0;
    for (int b = 0; b < nb; b++) {
        const float *s = scores + (size_t)b * d->vocab;
        for (int t = 0; t < d->vocab; t++) {
            float v = s[t];
            if (n == k && !(v > d->cand_score[k - 1]))
                continue;
            int i = n < k ? n++ : k - 1;
            while (i > 0 && v > d->cand_score[i - 1]) {
                d->cand_score[i] = d->cand_score[i - 1];
                d->cand_beam[i] = d->cand_beam[i - 1];
                d->cand_tok[i] = d->cand_tok[i - 1];
                i--;
            }
            d->cand_score[i] = v;
            d->cand_beam[i] = b;
            d->cand_tok[i] = t;
        }
    }
    return n;
}

static void log_softmax_rows(float *x, int n_rows, int cols)
{
    for (int r = 0; r < n_rows; r++) {
        float *v = x + (size_t)r * cols;
        float mx = v[0];
        for (int i = 1; i < cols; i++)
            mx = v[i] > mx ? v[i] : mx;
        double sum = 0;
        for (int i = 0; i < cols; i++)
            sum += exp((double)v[i] - mx);
        float lse = mx + (float)log(sum);
        for (int i = 0; i < cols; i++)
            v[i] -= lse;
    }
}

static gs_err run_beams(gs__llava_dec_t *d, const float *embeds, int L, int n_prompt_ids,
                        const gs_llava_gen_t *g, int32_t *out, int max_new, int *out_n)
{
    int nb = g->num_beams, V = d->vocab, cur = 0;
    beams_t b = {d, nb, 0, 1e9f, 0, g->length_penalty, g->early_stopping};
    gs__llama_seq_t *s0 = &d->seq[0][0];
    s0->len = 0;
    GS_TRY(gs__llama_forward(d->lm, s0, embeds, L, d->logits));
    for (int i = 1; i < nb; i++) { // every beam starts from the one prompt
        d->seq[0][i].len = L;
        memcpy(d->seq[0][i].rows, s0->rows, (size_t)L * sizeof *s0->rows);
        memcpy(d->logits + (size_t)i * V, d->logits, (size_t)V * sizeof *d->logits);
    }
    for (int i = 0; i < nb; i++)
        d->beam_scores[i] = i == 0 ? 0.0f : -1e9f;
    int k = (d->n_eos + 1 > 2 ? d->n_eos + 1 : 2) * nb;
    bool done = false;
    for (int gen_len = 0;; gen_len++) {
        probe_logits(d, gen_len, d->logits, nb);
        log_softmax_rows(d->logits, nb, V);
        for (int i = 0; i < nb; i++)
            for (int t = 0; t < V; t++)
                d->logits[(size_t)i * V + t] += d->beam_scores[i];
        int n_cand = top_candidates(d, d->logits, nb, k);
        int next = 0, nxt = 1 - cur;
        for (int r = 0; r < n_cand && next < nb; r++) {
            int src = d->cand_beam[r], tok = d->cand_tok[r];
            if (is_eos(d, tok)) {
                if (r < nb)
                    hyp_add(&b, d->hist[cur] + (size_t)src * d->n_ctx, gen_len, d->cand_score[r],
                            gen_len + 1);
                continue;
            }
            int32_t *h = d->hist[nxt] + (size_t)next * d->n_ctx;
            memcpy(h, d->hist[cur] + (size_t)src * d->n_ctx, (size_t)gen_len * sizeof *h);
            h[gen_len] = tok;
            gs__llama_seq_t *from = &d->seq[cur][src], *to = &d->seq[nxt][next];
            memcpy(to->rows, from->rows, (size_t)from->len * sizeof *to->rows);
            to->len = from->len;
            d->beam_scores[next] = d->cand_score[r];
            GS_TRY(embed_next(d, next, tok));
            next++;
        }
        if (next < nb)
            return GS_EINVAL; // cannot happen with k >= (n_eos + 1) * nb candidates
        done = done || hyp_is_done(&b, d->cand_score[0], gen_len + 1);
        cur = nxt;
        if (done || gen_len + 1 >= max_new)
            break;
        gs__llama_seq_t *seqs[64];
        for (int i = 0; i < nb; i++)
            seqs[i] = &d->seq[cur][i];
        GS_TRY(gs__llama_forward_multi(d->lm, seqs, nb, d->embeds, d->logits));
    }
    if (!done) // finalize: the open beams join the hypotheses
        for (int i = 0; i < nb; i++)
            hyp_add(&b, d->hist[cur] + (size_t)i * d->n_ctx, max_new, d->beam_scores[i], max_new);
    int best = 0;
    for (int i = 1; i < b.n_hyp; i++)
        if (d->hyp_score[i] > d->hyp_score[best] ||
            (d->hyp_score[i] == d->hyp_score[best] && d->hyp_order[i] > d->hyp_order[best]))
            best = i;
    int n = d->hyp_len[best];
    memcpy(out, d->hyp_tokens + (size_t)best * d->n_ctx, (size_t)n * sizeof *out);
    if (n < max_new && d->n_eos > 0) // finalize pads a finished hypothesis with EOS
        out[n++] = d->eos_ids[0];
    *out_n = n;
    (void)n_prompt_ids; // lengths are counted from the prompt, as transformers does
    return GS_OK;
}

// ---- entry --------------------------------------------------------------------------------

gs_err gs__llava_dec_run(gs__llava_dec_t *d, const float *embeds, int L, int n_prompt_ids,
                         const gs_llava_gen_t *g, int32_t *out, int cap, int *out_n)
{
    *out_n = 0;
    int max_new = g->max_new_tokens < cap ? g->max_new_tokens : cap;
    if (L < 1 || max_new < 1 || g->num_beams < 1 || g->num_beams > d->max_beams ||
        g->num_beams > 64 || (g->do_sample && g->num_beams > 1) ||
        (g->do_sample && !(g->temperature > 0.0f)) || !(g->top_p > 0.0f && g->top_p <= 1.0f) ||
        g->top_k < 0 || !isfinite(g->length_penalty))
        return GS_EINVAL;
    // cache rows: the prompt once, then one row per beam and step (the last token is never fed)
    int64_t rows = (int64_t)L + (int64_t)g->num_beams * (max_new - 1);
    if (rows > d->n_ctx)
        return GS_ETOOBIG;
    gs__llama_reset_cache(d->lm);
    if (g->num_beams > 1)
        return run_beams(d, embeds, L, n_prompt_ids, g, out, max_new, out_n);
    return run_single(d, embeds, L, g, out, max_new, out_n);
}
