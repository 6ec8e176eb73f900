// eval/: caption metrics (coco-caption BLEU-1..4, ROUGE-L, CIDEr-D) on small sets worked out by
// hand in the comments, the tokenizer, recall@K on constructed similarity matrices, and the
// readers of labels CSVs and Karpathy-style dataset.json (valid files, every refusal, and the
// real UCM-captions files when ../shared is present).
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "eval/capscore.h"
#include "eval/evalset.h"
#include "eval/labels.h"
#include "eval/rank.h"
#include "testutil.h"

// CLOSE: |got - want| <= 1e-9 + 1e-8 * |want| (the hand values are exact or given to 10+
// digits; the coco smoothing terms move them by about 1e-9 relative).
#define CLOSE(got, want)                                                                           \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        ck_assert_msg(fabs(g_ - w_) <= 1e-9 + 1e-8 * fabs(w_), "%s = %.12g, want %.12g", #got, g_, \
                      w_);                                                                         \
    } while (0)

static void silence(gs_log_level_t l, const char *line, void *ud)
{
    (void)l;
    (void)ud;
    (void)line;
}

// score: one set of items (candidate, refs... NULL-terminated), scored.
typedef struct {
    const char *cand;
    const char *refs[6];
} item_t;

static gs_capscore_result_t score(const item_t *items, int n, double *cider_items,
                                  double *rouge_items)
{
    gs_capscore_t *s = gs_capscore_new();
    for (int i = 0; i < n; i++) {
        int nr = 0;
        while (items[i].refs[nr])
            nr++;
        ck_assert_int_eq(gs_capscore_add(s, items[i].cand, items[i].refs, nr), GS_OK);
    }
    gs_capscore_result_t r;
    ck_assert_int_eq(gs_capscore_compute(s, &r, cider_items, rouge_items), GS_OK);
    ck_assert_int_eq(r.n, n);
    gs_capscore_destroy(&s);
    ck_assert_ptr_null(s);
    return r;
}

// ---- tokenizer -----------------------------------------------------------------------------

static void tok_is(const char *in, const char *want)
{
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    ck_assert_int_eq(gs_capscore_tokenize(in, &b), GS_OK);
    ck_assert_msg(strcmp(b.len ? b.data : "", want) == 0, "tokenize(\"%s\") = \"%s\", want \"%s\"",
                  in, b.len ? b.data : "", want);
    gs_buf_cleanup(&b);
}

START_TEST(test_tokenize_ptb_equivalent)
{
    tok_is("There is a piece of farmland .", "there is a piece of farmland");
    tok_is("A beach with greenish-blue sea, and white sands.",
           "a beach with greenish-blue sea and white sands");
    tok_is("It's 3.5 km; the dogs' houses (new) -- don't!",
           "it 's 3.5 km the dogs houses new do n't");
    tok_is("\"Quoted\" `words` [x] {y} a:b ?!...", "quoted words x y a b");
    tok_is("1,000 cars, 2 planes", "1,000 cars 2 planes");
    tok_is("We'll see; they're here, I'm sure, you'd go, we've won", //
           "we 'll see they 're here i 'm sure you 'd go we 've won");
    tok_is("A$ 5% R&D #1", "a $ 5 % r & d # 1");
    tok_is("trailing- -leading rock'n'roll o'clock", "trailing leading rock'n'roll o'clock");
    tok_is("  \t\n ", "");
    tok_is("", "");
    tok_is("CAFÉ Zürich", "cafÉ zürich"); // only ASCII letters are lowercased
}
END_TEST

// ---- BLEU ----------------------------------------------------------------------------------

START_TEST(test_bleu_clipping)
{
    // Papineni's example. Candidate: 7 x "the"; refs "the cat is on the mat" (6 words, "the"
    // twice) and "there is a cat on the mat" (7, once). Clipped unigram matches: min(7, max(2,
    // 1)) = 2 of 7 -> p1 = 2/7. Closest ref length to 7 is 7 -> ratio (7+1e-15)/(7+1e-9) is a
    // hair under 1: BP = exp(1 - 1/ratio) = 1 - 1.4e-10 (coco's smoothing; kept).
    // BLEU-1 = (2 + 1e-15) / (7 + 1e-9) * BP = 0.2857142856...
    // Bigrams: "the the" x 6, in no reference -> p2 = (0 + 1e-15) / (6 + 1e-9):
    // BLEU-2 = sqrt(2/7 * 1e-15/6) = 6.9006555934e-9 (coco's tiny keeps it non-zero).
    item_t it[] = {{"the the the the the the the",
                    {"the cat is on the mat", "there is a cat on the mat", NULL}}};
    gs_capscore_result_t r = score(it, 1, NULL, NULL);
    CLOSE(r.bleu[0], 2.0 / 7.0);
    CLOSE(r.bleu[1], sqrt(2.0 / 7.0 * 1e-15 / 6.0));
    // p3 = 1e-15/5, p4 = 1e-15/4: BLEU-4 = (2/7 * 1e-15/6 * 1e-15/5 * 1e-15/4)^(1/4)
    CLOSE(r.bleu[3], pow(2.0 / 7.0 * 1e-15 / 6 * 1e-15 / 5 * 1e-15 / 4, 0.25));
}
END_TEST

START_TEST(test_bleu_brevity_penalty_and_empty_orders)
{
    // Candidate "the cat" (2 words); refs of 6 and 7 words: the closest is 6.
    // BP = exp(1 - 6/2) = exp(-2) = 0.1353352832.
    // p1 = 2/2, p2 = 1/1 ("the cat" is in ref 1), p3 = p4 = (0 + 1e-15) / (0 + 1e-9) = 1e-6
    // (no trigram to guess: coco's smoothing gives 1e-6, not 0 or 1).
    // BLEU-1 = BLEU-2 = exp(-2); BLEU-3 = (1e-6)^(1/3) exp(-2) = 0.01 exp(-2);
    // BLEU-4 = (1e-12)^(1/4) exp(-2) = 0.001 exp(-2).
    item_t it[] = {{"The cat.", {"the cat sat on the mat", "there is a cat on the mat", NULL}}};
    gs_capscore_result_t r = score(it, 1, NULL, NULL);
    CLOSE(r.bleu[0], exp(-2.0));
    CLOSE(r.bleu[1], exp(-2.0));
    CLOSE(r.bleu[2], 0.01 * exp(-2.0));
    CLOSE(r.bleu[3], 0.001 * exp(-2.0));
}
END_TEST

START_TEST(test_bleu_closest_length_ties_to_shorter)
{
    // Candidate "a b c d" (4); refs of 5 and 3 words are both 1 away: coco takes min over
    // (|len - 4|, len) pairs, so 3 wins and there is no penalty (4 > 3). Taking 5 would give
    // BP = exp(1 - 5/4) = 0.7788. All n-grams of the candidate are in ref 1: p1..p4 = 1, so
    // BLEU-1..4 = 1 (to 1e-9).
    item_t it[] = {{"a b c d", {"a b c d e", "x y z", NULL}}};
    gs_capscore_result_t r = score(it, 1, NULL, NULL);
    for (int n = 0; n < 4; n++)
        CLOSE(r.bleu[n], 1.0);
}
END_TEST

START_TEST(test_bleu_is_a_corpus_statistic)
{
    // The two items above together: matches and guesses add up before the ratios, and so do
    // the lengths. Unigrams 4+2 of 4+2, bigrams 3+1 of 3+1, trigrams 2+0 of 2+0, 4-grams 1 of
    // 1: p1..p4 = 1. Lengths: candidate 4 + 2 = 6, closest refs 3 + 6 = 9:
    // BP = exp(1 - 9/6) = exp(-0.5) = 0.6065306597 for every order (the mean of the two items'
    // BLEU-4 would be (1 + 0.001 exp(-2)) / 2 instead).
    item_t it[] = {{"a b c d", {"a b c d e", "x y z", NULL}},
                   {"the cat", {"the cat sat on the mat", "there is a cat on the mat", NULL}}};
    gs_capscore_result_t r = score(it, 2, NULL, NULL);
    for (int n = 0; n < 4; n++)
        CLOSE(r.bleu[n], exp(-0.5));
}
END_TEST

// ---- ROUGE-L -------------------------------------------------------------------------------

START_TEST(test_rouge_l_beta_and_max_over_refs)
{
    // Candidate "a b c" vs "a x b y c z": LCS = 3 (a, b, c): P = 3/3 = 1, R = 3/6 = 0.5.
    // F = (1 + 1.2^2) P R / (R + 1.2^2 P) = 2.44 * 0.5 / (0.5 + 1.44) = 1.22 / 1.94
    //   = 0.6288659794 (beta > 1 weighs recall).
    item_t one[] = {{"a b c", {"a x b y c z", NULL}}};
    double rouge_items[2];
    gs_capscore_result_t r = score(one, 1, NULL, rouge_items);
    CLOSE(r.rouge_l, 1.22 / 1.94);
    CLOSE(rouge_items[0], 1.22 / 1.94);
    // Adding the reference "a b": LCS 2, P = 2/3, R = 2/2 = 1. coco takes the largest P (1,
    // from ref 1) and the largest R (1, from ref 2) separately: F = 2.44 / 2.44 = 1.
    item_t two[] = {{"a b c", {"a x b y c z", "a b", NULL}}};
    r = score(two, 1, NULL, NULL);
    CLOSE(r.rouge_l, 1.0);
    // The set score is the mean of the items: (1.22/1.94 + 1) / 2.
    item_t both[] = {{"a b c", {"a x b y c z", NULL}}, {"a b c", {"a x b y c z", "a b", NULL}}};
    r = score(both, 2, NULL, rouge_items);
    CLOSE(r.rouge_l, (1.22 / 1.94 + 1.0) / 2);
    CLOSE(rouge_items[1], 1.0);
    // No common word, or an empty candidate: 0.
    item_t none[] = {{"p q", {"a b", NULL}}, {"...", {"a b", NULL}}};
    r = score(none, 2, NULL, NULL);
    CLOSE(r.rouge_l, 0.0);
}
END_TEST

// ---- CIDEr-D -------------------------------------------------------------------------------

START_TEST(test_cider_d_two_images)
{
    // N = 2 images, one reference each: "a b" and "c d". Every reference n-gram has df = 1,
    // so idf = ln(2) - ln(1) = ln 2; "e" (in no reference) gets df 0 -> max(1, 0) = 1: ln 2 too.
    // Image 1, "a b" vs "a b": unigram vectors equal -> cosine 1; bigram "a b" -> 1; no
    // trigrams or 4-grams (zero norms: 0). Lengths equal: no penalty.
    //   score = mean(1, 1, 0, 0) / 1 ref * 10 = 5.
    // Image 2, "c e" vs "c d": unigrams (c, e) vs (c, d), all weights ln 2: cosine = 1/2;
    // bigrams "c e" vs "c d": 0. score = mean(0.5, 0, 0, 0) * 10 = 1.25.
    // CIDEr-D = (5 + 1.25) / 2 = 3.125.
    item_t it[] = {{"a b", {"a b", NULL}}, {"c e", {"c d", NULL}}};
    double ci[2];
    gs_capscore_result_t r = score(it, 2, ci, NULL);
    CLOSE(ci[0], 5.0);
    CLOSE(ci[1], 1.25);
    CLOSE(r.cider, 3.125);
}
END_TEST

START_TEST(test_cider_d_idf_clipping_and_length_penalty)
{
    // N = 3 images: refs "x y", "x z", "w v"; candidates "x x x", "x z", "w v".
    // df: x = 2 (images 1 and 2), every other reference n-gram 1. ln N = ln 3.
    //   idf(x) = ln 3 - ln 2 = ln 1.5 = 0.4054651081; idf(df 1 or 0) = ln 3 = 1.0986122887.
    // Image 1: candidate unigram x has tf 3: h = 3 ln 1.5 = 1.2163953243, |h| = 1.2163953243.
    //   Reference: x = ln 1.5, y = ln 3: |r| = sqrt(0.1644019 + 1.2069490) = 1.1710469.
    //   Clipped dot: min(3 ln 1.5, ln 1.5) * ln 1.5 = (ln 1.5)^2 = 0.1644019 (without the
    //   clipping it would be 3 times that).
    //   cos1 = 0.1644019 / (1.2163953 * 1.1710469) = 0.1154136.
    //   Bigrams "x x" (x2) vs "x y": no overlap -> 0; no 3/4-grams in the reference -> 0.
    //   Length penalty on bigram counts (coco's "length"): 2 vs 1 -> delta 1:
    //   exp(-1 / (2 * 6^2)) = exp(-1/72) = 0.9862071.
    //   score = (0.1154136 * 0.9862071) / 4 * 10 = 0.2845549031.
    // Images 2 and 3 match their reference exactly: (1 + 1 + 0 + 0) / 4 * 10 = 5 each.
    // CIDEr-D = (0.2845549031 + 5 + 5) / 3 = 3.4281849677.
    item_t it[] = {{"x x x", {"x y", NULL}}, {"x z", {"x z", NULL}}, {"w v", {"w v", NULL}}};
    double ci[3];
    gs_capscore_result_t r = score(it, 3, ci, NULL);
    double l15 = log(1.5), l3 = log(3.0);
    double cos1 = l15 * l15 / (3 * l15 * sqrt(l15 * l15 + l3 * l3));
    CLOSE(ci[0], cos1 * exp(-1.0 / 72) / 4 * 10);
    CLOSE(ci[0], 0.28455490311519);
    CLOSE(ci[1], 5.0);
    CLOSE(r.cider, 3.428184967705063);
}
END_TEST

START_TEST(test_cider_d_mean_over_references)
{
    // One image alone: ln N = ln 1 = 0 and every n-gram has df 1 (or 0 -> max(1, 0) = 1), so
    // every idf is 0 - ln 1 = 0: all weights vanish and CIDEr-D is 0 whatever the candidate
    // (coco's behaviour for a one-image set).
    item_t solo[] = {{"a b", {"a b", NULL}}};
    CLOSE(score(solo, 1, NULL, NULL).cider, 0.0);
    // Two references: the per-reference similarities are averaged. Image 1: candidate "a b",
    // refs "a b" (score 1, 1, 0, 0) and "q r" (0): (2 + 0) / 4 / 2 refs * 10 = 2.5. Image 2
    // "c d" vs "c d": 5. Mean 3.75. (All idfs are ln 2 here: df is 1 for every n-gram.)
    item_t it[] = {{"a b", {"a b", "q r", NULL}}, {"c d", {"c d", NULL}}};
    double ci[2];
    gs_capscore_result_t r = score(it, 2, ci, NULL);
    CLOSE(ci[0], 2.5);
    CLOSE(r.cider, 3.75);
}
END_TEST

START_TEST(test_capscore_refusals_leave_the_set_unchanged)
{
    gs_capscore_t *s = gs_capscore_new();
    const char *refs[] = {"a b", NULL};
    ck_assert_int_eq(gs_capscore_add(s, "a b", refs, 0), GS_EINVAL);
    ck_assert_int_eq(gs_capscore_add(s, NULL, refs, 1), GS_EINVAL);
    ck_assert_int_eq(gs_capscore_add(s, "a b", refs, 2), GS_EINVAL); // refs[1] is NULL
    ck_assert_int_eq(gs_capscore_add(s, "a b", refs, 1), GS_OK);
    // a caption over the token cap, in a reference: refused, nothing added
    gs_buf_t big;
    gs_buf_init(&big, 1 << 20);
    for (int i = 0; i <= GS_CAPSCORE_MAX_TOKENS; i++)
        gs_buf_puts(&big, "w ");
    const char *bad[] = {"a b", big.data};
    ck_assert_int_eq(gs_capscore_add(s, "c d", bad, 2), GS_ETOOBIG);
    ck_assert_int_eq(gs_capscore_count(s), 1);
    gs_buf_cleanup(&big);
    const char *refs2[] = {"c e"};
    ck_assert_int_eq(gs_capscore_add(s, "c d", refs2, 1), GS_OK);
    // the set is exactly the two-image CIDEr-D case (candidates and references swapped)
    gs_capscore_result_t r;
    ck_assert_int_eq(gs_capscore_compute(s, &r, NULL, NULL), GS_OK);
    ck_assert_int_eq(r.n, 2);
    CLOSE(r.cider, 3.125);
    gs_capscore_destroy(&s);
    // an empty set scores n = 0
    s = gs_capscore_new();
    ck_assert_int_eq(gs_capscore_compute(s, &r, NULL, NULL), GS_OK);
    ck_assert_int_eq(r.n, 0);
    gs_capscore_destroy(&s);
    gs_capscore_destroy(&s); // NULL is fine
}
END_TEST

// ---- recall@K ------------------------------------------------------------------------------

START_TEST(test_rank_of_ties_and_nan)
{
    float s[] = {0.5f, 0.9f, 0.5f, NAN, 0.5f};
    ck_assert_int_eq(gs_rank_of(s, 5, 1), 0);
    ck_assert_int_eq(gs_rank_of(s, 5, 0), 1); // after 0.9; first of the ties
    ck_assert_int_eq(gs_rank_of(s, 5, 2), 2);
    ck_assert_int_eq(gs_rank_of(s, 5, 4), 3);
    ck_assert_int_eq(gs_rank_of(s, 5, 3), 4); // NaN last
    ck_assert_int_eq(gs_rank_of(s, 5, 5), -1);
    ck_assert_int_eq(gs_rank_of(s, 0, 0), -1);
}
END_TEST

START_TEST(test_recall_small_matrix)
{
    // 3 images x 5 texts; texts 0, 1 describe image 0, text 2 image 1, texts 3, 4 image 2.
    //           t0   t1   t2   t3   t4
    // image 0  0.9  0.1  0.8  0.3  0.2   best own text t0 at rank 0         -> R@1 hit
    // image 1  0.7  0.6  0.5  0.9  0.8   t2 has 4 higher scores: rank 4     -> R@5 hit
    // image 2  0.5  0.5  0.5  0.5  0.5   all tied: t3 after t0..t2: rank 3  -> R@5 hit
    // i2t: R@1 = 1/3, R@5 = R@10 = 3/3.
    // t2i (columns): t0 -> image 0 at rank 0 (hit); t1 [0.1 0.6 0.5] -> rank 2;
    // t2 [0.8 0.5 0.5] -> image 1 has 0.8 above it, image 2 ties later: rank 1;
    // t3 [0.3 0.9 0.5] -> rank 1; t4 [0.2 0.8 0.5] -> rank 1. R@1 = 1/5, R@5 = R@10 = 5/5
    // (only 3 images). mR = (33.33 + 100 + 100 + 20 + 100 + 100) / 6 = 75.5556.
    const float sim[] = {0.9f, 0.1f, 0.8f, 0.3f, 0.2f, 0.7f, 0.6f, 0.5f,
                         0.9f, 0.8f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const int ti[] = {0, 0, 1, 2, 2};
    float scratch[3];
    gs_rank_recall_t r;
    ck_assert_int_eq(gs_rank_recall(sim, 3, 5, ti, scratch, &r), GS_OK);
    ck_assert_int_eq(r.n_images, 3);
    ck_assert_int_eq(r.n_texts, 5);
    CLOSE(r.i2t[0], 100.0 / 3);
    CLOSE(r.i2t[1], 100.0);
    CLOSE(r.i2t[2], 100.0);
    CLOSE(r.t2i[0], 20.0);
    CLOSE(r.t2i[1], 100.0);
    CLOSE(r.t2i[2], 100.0);
    CLOSE(r.mr, (100.0 / 3 + 100 + 100 + 20 + 100 + 100) / 6);
}
END_TEST

START_TEST(test_recall_at_5_and_10)
{
    // 12 images, text t describes image t; sim[i][t] = 0 on the diagonal, 1 above it (i < t),
    // -1 below. Column t: the t images above score 1 -> image t ranks t: t2i R@1 = 1/12
    // (t = 0), R@5 = 5/12 (t < 5), R@10 = 10/12. Row i: the 11 - i texts right of it score
    // 1 -> rank 11 - i: i2t R@1 = 1/12 (i = 11), R@5 = 5/12 (i >= 7), R@10 = 10/12 (i >= 2).
    // mR = (8.333 + 41.667 + 83.333) * 2 / 6 = 44.444.
    enum { N = 12 };
    float sim[N * N], scratch[N];
    int ti[N];
    for (int i = 0; i < N; i++) {
        ti[i] = i;
        for (int t = 0; t < N; t++)
            sim[i * N + t] = i == t ? 0.0f : i < t ? 1.0f : -1.0f;
    }
    gs_rank_recall_t r;
    ck_assert_int_eq(gs_rank_recall(sim, N, N, ti, scratch, &r), GS_OK);
    double want[3] = {100.0 / 12, 500.0 / 12, 1000.0 / 12};
    for (int k = 0; k < 3; k++) {
        CLOSE(r.i2t[k], want[k]);
        CLOSE(r.t2i[k], want[k]);
    }
    CLOSE(r.mr, (want[0] + want[1] + want[2]) / 3);
    // refusals
    ti[3] = N;
    ck_assert_int_eq(gs_rank_recall(sim, N, N, ti, scratch, &r), GS_EINVAL);
    ti[3] = -1;
    ck_assert_int_eq(gs_rank_recall(sim, N, N, ti, scratch, &r), GS_EINVAL);
    ck_assert_int_eq(gs_rank_recall(sim, 0, N, ti, scratch, &r), GS_EINVAL);
}
END_TEST

// ---- labels CSV ----------------------------------------------------------------------------

static const char *write_tmp(const char *name, const char *text)
{
    static char path[4200];
    const char *dir = gs_test_tmpdir(name);
    ck_assert_ptr_nonnull(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(test_labels_csv_dialect_and_split)
{
    const char *csv = "\xEF\xBB\xBF"
                      "filename,class,note,split\r\n"
                      "1.jpg,forest,plain,train\r\n"
                      "\r\n"
                      "\"2, quoted.jpg\" , beach ,\"say \"\"hi\"\"\",val\r\n"
                      "3.jpg,airplane,\"multi\nline\",val\n"
                      "4.jpg,forest,,val";
    const char *p = write_tmp("labels_ok.csv", csv);
    gs_labels_t *l = NULL;
    ck_assert_int_eq(gs_labels_read(p, NULL, &l), GS_OK);
    ck_assert_int_eq(l->n, 4);
    ck_assert_int_eq(l->n_classes, 3);
    ck_assert_str_eq(l->classes[0], "airplane");
    ck_assert_str_eq(l->classes[1], "beach");
    ck_assert_str_eq(l->classes[2], "forest");
    ck_assert_str_eq(l->filenames[1], "2, quoted.jpg");
    ck_assert_int_eq(l->cls[1], 1);
    ck_assert_int_eq(l->cls[3], 2);
    gs_labels_destroy(&l);
    ck_assert_ptr_null(l);
    // a split selects rows, classes still come from all of them
    ck_assert_int_eq(gs_labels_read(p, "train", &l), GS_OK);
    ck_assert_int_eq(l->n, 1);
    ck_assert_int_eq(l->n_classes, 3);
    ck_assert_str_eq(l->filenames[0], "1.jpg");
    ck_assert_int_eq(l->cls[0], 2);
    gs_labels_destroy(&l);
}
END_TEST

static void labels_refused(const char *text, const char *split, gs_err want)
{
    const char *p = write_tmp("labels_bad.csv", text);
    gs_labels_t *l = NULL;
    gs_err e = gs_labels_read(p, split, &l);
    ck_assert_msg(e == want, "got %s, want %s for:\n%s", gs_err_name(e), gs_err_name(want), text);
    ck_assert_ptr_null(l);
}

START_TEST(test_labels_csv_refusals)
{
    gs_log_set(silence, NULL);
    labels_refused("", NULL, GS_EFORMAT);                                   // no header
    labels_refused("file,class\na.jpg,x\n", NULL, GS_EFORMAT);              // no filename column
    labels_refused("filename,label\na.jpg,x\n", NULL, GS_EFORMAT);          // no class column
    labels_refused("filename,class\na.jpg,x\n", "val", GS_EFORMAT);         // no split column
    labels_refused("filename,class\na.jpg,x,extra\n", NULL, GS_EFORMAT);    // too many fields
    labels_refused("filename,class\na.jpg\n", NULL, GS_EFORMAT);            // too few
    labels_refused("filename,class\na.jpg,\n", NULL, GS_EFORMAT);           // empty class
    labels_refused("filename,class\n,x\n", NULL, GS_EFORMAT);               // empty filename
    labels_refused("filename,class\na.jpg,x\na.jpg,y\n", NULL, GS_EFORMAT); // listed twice
    labels_refused("filename,class\n\"a.jpg,x\n", NULL, GS_EFORMAT);        // unclosed quote
    labels_refused("filename,class\na\"b.jpg,x\n", NULL, GS_EFORMAT);       // stray quote
    labels_refused("filename,class\n\"a\"b.jpg,x\n", NULL, GS_EFORMAT);     // text after quote
    gs_labels_t *l = NULL;
    ck_assert_int_eq(gs_labels_read("/nonexistent/labels.csv", NULL, &l), GS_EIO);
    ck_assert_int_eq(gs_labels_read(NULL, NULL, &l), GS_EINVAL);
    gs_log_set(NULL, NULL);
}
END_TEST

static void readable_is(const char *cls, const char *want)
{
    gs_buf_t b;
    gs_buf_init(&b, 256);
    ck_assert_int_eq(gs_labels_readable(cls, &b), GS_OK);
    ck_assert_str_eq(b.len ? b.data : "", want);
    gs_buf_cleanup(&b);
}

START_TEST(test_labels_readable_names)
{
    readable_is("denseresidential", "dense residential");
    readable_is("mobilehomepark", "mobile home park");
    readable_is("tenniscourt", "tennis court");
    readable_is("agricultural", "agricultural");
    readable_is("baseball_diamond", "baseball diamond"); // NWPU-RESISC45 style
    readable_is("BareLand", "bare land");                // AID style
    readable_is("storage-tanks  x", "storage tanks x");
    readable_is("Airport", "airport");
    readable_is("USGS", "usgs");
}
END_TEST

START_TEST(test_labels_names_file)
{
    gs_log_set(silence, NULL);
    const char *p = write_tmp("labels_n.csv", "filename,class\n1.jpg,forest\n2.jpg,beach\n");
    gs_labels_t *l = NULL;
    ck_assert_int_eq(gs_labels_read(p, NULL, &l), GS_OK);
    const char *n = write_tmp("names.csv", "class,name\nforest,\"woods, dense\"\nriver,a river\n");
    ck_assert_int_eq(gs_labels_read_names(l, n), GS_OK);
    ck_assert_ptr_null(l->names[0]); // beach: not listed
    ck_assert_str_eq(l->names[1], "woods, dense");
    n = write_tmp("names2.csv", "class,name\nforest,a\nforest,b\n");
    ck_assert_int_eq(gs_labels_read_names(l, n), GS_EFORMAT);
    ck_assert_str_eq(l->names[1], "woods, dense"); // unchanged
    n = write_tmp("names3.csv", "class,title\nforest,a\n");
    ck_assert_int_eq(gs_labels_read_names(l, n), GS_EFORMAT);
    gs_labels_destroy(&l);
    gs_log_set(NULL, NULL);
}
END_TEST

START_TEST(test_labels_real_ucm)
{
    GS_NEED_SHARED();
    char p[4200];
    snprintf(p, sizeof p, "%s/data/ucm-captions/labels.csv", gs_test_shared());
    gs_labels_t *l = NULL;
    ck_assert_int_eq(gs_labels_read(p, "val", &l), GS_OK);
    ck_assert_int_eq(l->n, 210);
    ck_assert_int_eq(l->n_classes, 21);
    ck_assert_str_eq(l->classes[0], "agricultural");
    ck_assert_str_eq(l->classes[20], "tenniscourt");
    gs_labels_destroy(&l);
}
END_TEST

// ---- dataset.json --------------------------------------------------------------------------

START_TEST(test_evalset_karpathy_json)
{
    const char *js =
        "{\"dataset\": \"x\", \"images\": ["
        " {\"filename\": \"1.jpg\", \"split\": \"train\", \"sentences\": [{\"raw\": \"A b .\"}]},"
        " {\"filename\": \"2.jpg\", \"split\": \"val\", \"filepath\": \"sub\", \"sentences\": ["
        "   {\"raw\": \"first one .\", \"tokens\": [\"x\"]}, {\"tokens\": [\"from\", "
        "\"tokens\"]}]},"
        " {\"filename\": \"3.jpg\", \"split\": \"val\"},"
        " {\"filename\": \"4.jpg\", \"sentences\": [{\"raw\": \"no split\"}]}]}";
    const char *p = write_tmp("ds.json", js);
    gs_evalset_t *s = NULL;
    ck_assert_int_eq(gs_evalset_read(p, "val", &s), GS_OK);
    ck_assert_int_eq(s->n_images, 2);
    ck_assert_int_eq(s->n_texts, 2);
    ck_assert_str_eq(s->images[0].path, "sub/2.jpg");
    ck_assert_str_eq(s->images[0].split, "val");
    ck_assert_int_eq(s->images[0].first_text, 0);
    ck_assert_int_eq(s->images[0].n_texts, 2);
    ck_assert_str_eq(s->texts[0], "first one .");
    ck_assert_str_eq(s->texts[1], "from tokens");
    ck_assert_int_eq(s->text_image[1], 0);
    ck_assert_str_eq(s->images[1].path, "3.jpg");
    ck_assert_int_eq(s->images[1].n_texts, 0);
    gs_evalset_destroy(&s);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(gs_evalset_read(p, NULL, &s), GS_OK);
    ck_assert_int_eq(s->n_images, 4);
    ck_assert_int_eq(s->n_texts, 4);
    ck_assert_str_eq(s->images[3].split, "");
    ck_assert_int_eq(s->text_image[3], 3);
    gs_evalset_destroy(&s);
    ck_assert_int_eq(gs_evalset_read(p, "test", &s), GS_OK); // no match: empty, not an error
    ck_assert_int_eq(s->n_images, 0);
    gs_evalset_destroy(&s);
}
END_TEST

static void evalset_refused(const char *js, gs_err want)
{
    const char *p = write_tmp("ds_bad.json", js);
    gs_evalset_t *s = NULL;
    gs_err e = gs_evalset_read(p, NULL, &s);
    ck_assert_msg(e == want, "got %s, want %s for: %s", gs_err_name(e), gs_err_name(want), js);
    ck_assert_ptr_null(s);
}

START_TEST(test_evalset_refusals)
{
    gs_log_set(silence, NULL);
    evalset_refused("{\"images\": [", GS_EFORMAT);                       // not JSON
    evalset_refused("[]", GS_EFORMAT);                                   // no images
    evalset_refused("{\"images\": {}}", GS_EFORMAT);                     // not an array
    evalset_refused("{\"images\": [{\"split\": \"val\"}]}", GS_EFORMAT); // no filename
    evalset_refused("{\"images\": [{\"filename\": 3}]}", GS_EFORMAT);
    evalset_refused("{\"images\": [{\"filename\": \"a\", \"split\": 1}]}", GS_EFORMAT);
    evalset_refused("{\"images\": [{\"filename\": \"a\", \"sentences\": {}}]}", GS_EFORMAT);
    evalset_refused("{\"images\": [{\"filename\": \"a\", \"sentences\": [{\"x\": 1}]}]}",
                    GS_EFORMAT);
    evalset_refused("{\"images\": [{\"filename\": \"a\", \"sentences\": [\"raw\"]}]}", GS_EFORMAT);
    evalset_refused("{\"images\": [{\"filename\": \"a\", \"sentences\": [{\"tokens\": [1]}]}]}",
                    GS_EFORMAT);
    gs_evalset_t *s = NULL;
    ck_assert_int_eq(gs_evalset_read("/nonexistent/dataset.json", NULL, &s), GS_EIO);
    ck_assert_int_eq(gs_evalset_read(NULL, NULL, &s), GS_EINVAL);
    gs_log_set(NULL, NULL);
}
END_TEST

START_TEST(test_evalset_real_ucm)
{
    GS_NEED_SHARED();
    char p[4200];
    snprintf(p, sizeof p, "%s/data/ucm-captions/dataset.json", gs_test_shared());
    gs_evalset_t *s = NULL;
    ck_assert_int_eq(gs_evalset_read(p, "val", &s), GS_OK);
    ck_assert_int_eq(s->n_images, 210);
    ck_assert_int_eq(s->n_texts, 1050);
    for (int i = 0; i < s->n_images; i++)
        ck_assert_int_eq(s->images[i].n_texts, 5);
    gs_evalset_destroy(&s);
    ck_assert_int_eq(gs_evalset_read(p, NULL, &s), GS_OK);
    ck_assert_int_eq(s->n_images, 1890);
    ck_assert_str_eq(s->images[0].path, "1.jpg");
    ck_assert_str_eq(s->texts[0], "There is a piece of farmland .");
    // the references of the val split scored against themselves (first caption as the
    // candidate): every metric is finite and in range, BLEU-1 close to 1
    gs_evalset_destroy(&s);
    ck_assert_int_eq(gs_evalset_read(p, "val", &s), GS_OK);
    gs_capscore_t *cs = gs_capscore_new();
    for (int i = 0; i < s->n_images; i++)
        ck_assert_int_eq(gs_capscore_add(cs, s->texts[s->images[i].first_text],
                                         s->texts + s->images[i].first_text, 5),
                         GS_OK);
    gs_capscore_result_t r;
    ck_assert_int_eq(gs_capscore_compute(cs, &r, NULL, NULL), GS_OK);
    ck_assert_int_eq(r.n, 210);
    for (int n = 0; n < 4; n++)
        ck_assert(r.bleu[n] > 0.99 && r.bleu[n] <= 1.0);
    ck_assert(r.rouge_l > 0.99 && r.rouge_l <= 1.0);
    ck_assert(r.cider > 1.0 && r.cider < 10.0);
    gs_capscore_destroy(&cs);
    gs_evalset_destroy(&s);
}
END_TEST

Suite *eval_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("capscore");
    tcase_add_test(tc, test_tokenize_ptb_equivalent);
    tcase_add_test(tc, test_bleu_clipping);
    tcase_add_test(tc, test_bleu_brevity_penalty_and_empty_orders);
    tcase_add_test(tc, test_bleu_closest_length_ties_to_shorter);
    tcase_add_test(tc, test_bleu_is_a_corpus_statistic);
    tcase_add_test(tc, test_rouge_l_beta_and_max_over_refs);
    tcase_add_test(tc, test_cider_d_two_images);
    tcase_add_test(tc, test_cider_d_idf_clipping_and_length_penalty);
    tcase_add_test(tc, test_cider_d_mean_over_references);
    tcase_add_test(tc, test_capscore_refusals_leave_the_set_unchanged);
    suite_add_tcase(s, tc);
    tc = tcase_create("rank");
    tcase_add_test(tc, test_rank_of_ties_and_nan);
    tcase_add_test(tc, test_recall_small_matrix);
    tcase_add_test(tc, test_recall_at_5_and_10);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_test(tc, test_labels_csv_dialect_and_split);
    tcase_add_test(tc, test_labels_csv_refusals);
    tcase_add_test(tc, test_labels_readable_names);
    tcase_add_test(tc, test_labels_names_file);
    tcase_add_test(tc, test_labels_real_ucm);
    tcase_add_test(tc, test_evalset_karpathy_json);
    tcase_add_test(tc, test_evalset_refusals);
    tcase_add_test(tc, test_evalset_real_ucm);
    suite_add_tcase(s, tc);
    return s;
}
