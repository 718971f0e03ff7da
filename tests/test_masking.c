/* test_masking.c - BERT / whole-word / SpanBERT masking: budgets,
 * 80/10/10 proportions on large inputs, special tokens never selected,
 * whole words together, span lengths, determinism, errors. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define VOCAB 30000
#define MASK_ID 103
#define CLS 101
#define SEP 102

typedef struct {
    int64_t B, T, *ids, *out, *tgt;
    uint8_t *special, *ws;
} batch;

/* [CLS] tokens [SEP] then padding (special_mask) in some rows; word
 * starts with words of 1..4 tokens. */
static batch batch_new(int64_t B, int64_t T, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    size_t n = (size_t)(B * T);
    batch b = {B, T, malloc(8 * n), malloc(8 * n), malloc(8 * n), calloc(n, 1),
               calloc(n, 1)};
    for (int64_t r = 0; r < B; r++) {
        int64_t len = T - (r % 3 == 0 ? (int64_t)(ss_rng_u64(&rng) % (uint64_t)(T / 4)) : 0);
        int64_t left = 0;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = r * T + t;
            b.ids[i] = 1000 + (int64_t)(ss_rng_u64(&rng) % (VOCAB - 1000));
            if (left == 0) b.ws[i] = 1, left = 1 + (int64_t)(ss_rng_u64(&rng) % 4);
            left--;
            if (t == 0) b.ids[i] = CLS;
            if (t == len - 1) b.ids[i] = SEP;
            if (t >= len) b.ids[i] = 0, b.special[i] = 1; /* padding */
        }
    }
    return b;
}

static void batch_free(batch *b) {
    free(b->ids), free(b->out), free(b->tgt), free(b->special), free(b->ws);
}

static ss_mask_opts opts_std(void) {
    static const int64_t specials[2] = {CLS, SEP};
    ss_mask_opts o = ss_mask_defaults(VOCAB, MASK_ID);
    o.special_ids = specials, o.n_special = 2;
    return o;
}

static int is_spec(const batch *b, int64_t i) {
    return b->special[i] || b->ids[i] == CLS || b->ids[i] == SEP;
}

/* Common invariants; returns counts {selected, [MASK], random, same}. */
static void check_basic(const batch *b, int64_t counts[4]) {
    memset(counts, 0, 4 * sizeof(int64_t));
    for (int64_t i = 0; i < b->B * b->T; i++) {
        if (b->tgt[i] == -100) {
            SS_CHECK(b->out[i] == b->ids[i]);
            continue;
        }
        SS_CHECK(b->tgt[i] == b->ids[i]);
        SS_CHECK(!is_spec(b, i)); /* special tokens never selected */
        counts[0]++;
        counts[b->out[i] == MASK_ID ? 1 : b->out[i] == b->ids[i] ? 3 : 2]++;
        SS_CHECK(b->out[i] >= 0 && b->out[i] < VOCAB);
    }
}

static int64_t n_cand(const batch *b, int64_t r) {
    int64_t k = 0;
    for (int64_t t = 0; t < b->T; t++) k += !is_spec(b, r * b->T + t);
    return k;
}

static int64_t n_sel(const batch *b, int64_t r) {
    int64_t k = 0;
    for (int64_t t = 0; t < b->T; t++) k += b->tgt[r * b->T + t] != -100;
    return k;
}

SS_TEST(bert_statistics) {
    batch b = batch_new(200, 256, 1);
    ss_mask_opts o = opts_std();
    ss_rng rng;
    ss_rng_seed(&rng, 42);
    SS_CHECK_OK(ss_mask_bert(b.out, b.tgt, b.ids, b.special, NULL, b.B, b.T, &o, &rng));
    int64_t c[4];
    check_basic(&b, c);
    for (int64_t r = 0; r < b.B; r++) {
        int64_t want = llround(0.15 * (double)n_cand(&b, r));
        SS_CHECK_INT(n_sel(&b, r), want < 1 ? 1 : want);
    }
    double n = (double)c[0];
    SS_CHECK(fabs(c[1] / n - 0.8) < 0.015);
    SS_CHECK(fabs(c[2] / n - 0.1) < 0.01);
    SS_CHECK(fabs(c[3] / n - 0.1) < 0.01);
    batch_free(&b);
}

SS_TEST(deterministic) {
    batch a = batch_new(8, 64, 2), b = batch_new(8, 64, 2);
    ss_mask_opts o = opts_std();
    for (int span = 0; span < 2; span++) {
        ss_rng r1, r2;
        ss_rng_seed(&r1, 9), ss_rng_seed(&r2, 9);
        ss_status (*f)(int64_t *, int64_t *, const int64_t *, const uint8_t *,
                       const uint8_t *, int64_t, int64_t, const ss_mask_opts *,
                       ss_rng *) = span ? ss_mask_span : ss_mask_bert;
        SS_CHECK_OK(f(a.out, a.tgt, a.ids, a.special, a.ws, 8, 64, &o, &r1));
        SS_CHECK_OK(f(b.out, b.tgt, b.ids, b.special, b.ws, 8, 64, &o, &r2));
        SS_CHECK(memcmp(a.out, b.out, 8 * 8 * 64) == 0);
        SS_CHECK(memcmp(a.tgt, b.tgt, 8 * 8 * 64) == 0);
        /* the rng advanced: a second call differs */
        SS_CHECK_OK(f(b.out, b.tgt, b.ids, b.special, b.ws, 8, 64, &o, &r2));
        SS_CHECK(memcmp(a.tgt, b.tgt, 8 * 8 * 64) != 0);
    }
    batch_free(&a), batch_free(&b);
}

/* Whole words: every word is selected entirely or not at all, except at
 * most `cut` words per row (a span cut by the budget). */
static void check_whole_words(const batch *b, int cut) {
    for (int64_t r = 0; r < b->B; r++) {
        int partial = 0;
        for (int64_t t = 0; t < b->T;) {
            int64_t e = t + 1;
            while (e < b->T && !b->ws[r * b->T + e] && !is_spec(b, r * b->T + e)) e++;
            int64_t k = 0, m = 0;
            for (int64_t u = t; u < e; u++)
                if (!is_spec(b, r * b->T + u)) m++, k += b->tgt[r * b->T + u] != -100;
            partial += k != 0 && k != m;
            t = e;
        }
        SS_CHECK(partial <= cut);
    }
}

SS_TEST(whole_word_masking) {
    batch b = batch_new(100, 128, 3);
    ss_mask_opts o = opts_std();
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    SS_CHECK_OK(ss_mask_bert(b.out, b.tgt, b.ids, b.special, b.ws, b.B, b.T, &o, &rng));
    int64_t c[4];
    check_basic(&b, c);
    check_whole_words(&b, 0);
    double frac = 0;
    for (int64_t r = 0; r < b.B; r++) {
        int64_t want = llround(0.15 * (double)n_cand(&b, r));
        SS_CHECK(n_sel(&b, r) <= want);
        frac += (double)n_sel(&b, r) / (double)want / (double)b.B;
    }
    SS_CHECK(frac > 0.95); /* small words fill the budget */
    batch_free(&b);
}

SS_TEST(span_masking) {
    batch b = batch_new(200, 256, 5);
    ss_mask_opts o = opts_std();
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    SS_CHECK_OK(ss_mask_span(b.out, b.tgt, b.ids, b.special, NULL, b.B, b.T, &o, &rng));
    int64_t c[4];
    check_basic(&b, c);
    int64_t runs = 0;
    for (int64_t r = 0; r < b.B; r++) {
        SS_CHECK_INT(n_sel(&b, r), (int64_t)ceil(0.15 * (double)n_cand(&b, r) - 1e-9));
        for (int64_t t = 0; t < b.T; t++) {
            int64_t i = r * b.T + t;
            runs += b.tgt[i] != -100 && (t == 0 || b.tgt[i - 1] == -100);
        }
    }
    /* geometric(0.2) truncated at 10 has mean 3.8; adjacent spans merge
     * into longer runs and the budget cuts the last one */
    double mean_run = (double)c[0] / (double)runs;
    SS_CHECK(mean_run > 3.0 && mean_run < 6.0);
    double n = (double)c[0];
    SS_CHECK(fabs(c[1] / n - 0.8) < 0.04);
    SS_CHECK(fabs(c[2] / n - 0.1) < 0.03);
    SS_CHECK(fabs(c[3] / n - 0.1) < 0.03);
    batch_free(&b);
}

SS_TEST(span_masking_whole_words) {
    batch b = batch_new(100, 128, 7);
    ss_mask_opts o = opts_std();
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    SS_CHECK_OK(ss_mask_span(b.out, b.tgt, b.ids, b.special, b.ws, b.B, b.T, &o, &rng));
    int64_t c[4];
    check_basic(&b, c);
    check_whole_words(&b, 1); /* only the budget may cut a word */
    batch_free(&b);
}

SS_TEST(edge_rows) {
    /* a row of specials only selects nothing; a single candidate is taken */
    int64_t ids[4] = {CLS, SEP, CLS, 5000}, out[4], tgt[4];
    ss_mask_opts o = opts_std();
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    SS_CHECK_OK(ss_mask_bert(out, tgt, ids, NULL, NULL, 2, 2, &o, &rng));
    SS_CHECK(tgt[0] == -100 && tgt[1] == -100 && tgt[2] == -100 && tgt[3] == 5000);
    SS_CHECK_OK(ss_mask_span(out, tgt, ids, NULL, NULL, 2, 2, &o, &rng));
    SS_CHECK(tgt[0] == -100 && tgt[1] == -100 && tgt[2] == -100 && tgt[3] == 5000);
    /* mask_frac = 1: every selected token is [MASK]; custom ignore_index */
    o.mask_frac = 1.0, o.random_frac = 0.0, o.ignore_index = -1;
    SS_CHECK_OK(ss_mask_bert(out, tgt, ids, NULL, NULL, 2, 2, &o, &rng));
    SS_CHECK(out[3] == MASK_ID && tgt[0] == -1);
}

SS_TEST(errors) {
    int64_t ids[4] = {1, 2, 3, 4}, out[4] = {0}, tgt[4] = {0};
    ss_mask_opts o = ss_mask_defaults(10, 3);
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    SS_CHECK_STATUS(ss_mask_bert(NULL, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mask_bert(out, NULL, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, NULL, NULL, NULL, 1, 4, &o, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, NULL, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mask_span(out, tgt, ids, NULL, NULL, 1, 4, &o, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("rng must not be NULL");
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 0, 4, &o, &rng), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 0, &o, &rng), SS_ERR_SIZE);
    o.vocab_size = 0;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("vocab_size must be >= 1, got 0");
    o = ss_mask_defaults(10, 10);
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("mask_id must be in [0, 10), got 10");
    o = ss_mask_defaults(10, 3);
    o.mask_prob = 0.0;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("mask_prob must be in (0, 1], got 0");
    o = ss_mask_defaults(10, 3);
    o.mask_frac = 0.95;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("mask_frac (0.95) and random_frac (0.1)");
    o = ss_mask_defaults(10, 3);
    o.random_frac = -0.1;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    o = ss_mask_defaults(10, 3);
    o.span_p = 0.0;
    SS_CHECK_STATUS(ss_mask_span(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("span_p must be in (0, 1], got 0");
    o = ss_mask_defaults(10, 3);
    o.span_max = 0;
    SS_CHECK_STATUS(ss_mask_span(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    o = ss_mask_defaults(10, 3);
    o.n_special = 2;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("special_ids must be non-NULL");
    o = ss_mask_defaults(10, 3);
    ids[2] = 10;
    SS_CHECK_STATUS(ss_mask_bert(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("ids[2] = 10 is outside [0, 10)");
    ids[2] = -1;
    SS_CHECK_STATUS(ss_mask_span(out, tgt, ids, NULL, NULL, 1, 4, &o, &rng), SS_ERR_LABEL);
    for (int i = 0; i < 4; i++) SS_CHECK(out[i] == 0 && tgt[i] == 0);
}
