/*
 * masking.c - token masking generators: BERT (optionally whole-word) and
 * SpanBERT span masking. Seeded through the caller's ss_rng; rows are
 * processed in order, so results are deterministic and thread-independent.
 */
#include "internal.h"

#include <string.h>

ss_mask_opts ss_mask_defaults(int64_t vocab_size, int64_t mask_id) {
    ss_mask_opts o = {vocab_size, mask_id, SS_IGNORE_INDEX, 0.15, 0.8, 0.1,
                      NULL, 0, 0.2, 10};
    return o;
}

static int in01(double p) { return p >= 0.0 && p <= 1.0; }

static ss_status check_args(const char *fn, int64_t *out_ids,
                            int64_t *targets, const int64_t *ids, int64_t B,
                            int64_t T, const ss_mask_opts *o, ss_rng *rng) {
    SS_TRY(ss__check_ptr(fn, "out_ids", out_ids));
    SS_TRY(ss__check_ptr(fn, "targets", targets));
    SS_TRY(ss__check_ptr(fn, "ids", ids));
    SS_TRY(ss__check_ptr(fn, "opts", o));
    SS_TRY(ss__check_ptr(fn, "rng", rng));
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "T", T, 1));
    SS_TRY(ss__check_product(fn, B, T, 1));
    if (o->vocab_size < 1)
        return ss__fail(SS_ERR_PARAM, fn, "vocab_size must be >= 1, got %lld",
                        (long long)o->vocab_size);
    if (o->mask_id < 0 || o->mask_id >= o->vocab_size)
        return ss__fail(SS_ERR_PARAM, fn,
                        "mask_id must be in [0, %lld), got %lld",
                        (long long)o->vocab_size, (long long)o->mask_id);
    if (!(o->mask_prob > 0.0 && o->mask_prob <= 1.0))
        return ss__fail(SS_ERR_PARAM, fn, "mask_prob must be in (0, 1], got %g",
                        o->mask_prob);
    if (!in01(o->mask_frac) || !in01(o->random_frac) ||
        !(o->mask_frac + o->random_frac <= 1.0 + 1e-12))
        return ss__fail(SS_ERR_PARAM, fn,
                        "mask_frac (%g) and random_frac (%g) must be in "
                        "[0, 1] with sum <= 1",
                        o->mask_frac, o->random_frac);
    if (!(o->span_p > 0.0 && o->span_p <= 1.0))
        return ss__fail(SS_ERR_PARAM, fn, "span_p must be in (0, 1], got %g",
                        o->span_p);
    if (o->span_max < 1)
        return ss__fail(SS_ERR_PARAM, fn, "span_max must be >= 1, got %lld",
                        (long long)o->span_max);
    if (o->n_special < 0 || (o->n_special > 0 && !o->special_ids))
        return ss__fail(SS_ERR_PARAM, fn,
                        "special_ids must be non-NULL when n_special (%lld) "
                        "> 0", (long long)o->n_special);
    for (int64_t i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= o->vocab_size)
            return ss__fail(SS_ERR_LABEL, fn,
                            "ids[%lld] = %lld is outside [0, %lld)",
                            (long long)i, (long long)ids[i],
                            (long long)o->vocab_size);
    return SS_OK;
}

/* Uniform integer in [0, n). The bias of the modulo is below 2^-40 here. */
static int64_t rand_below(ss_rng *rng, int64_t n) {
    return (int64_t)(ss_rng_u64(rng) % (uint64_t)n);
}

static int is_special(const ss_mask_opts *o, const uint8_t *special_mask,
                      int64_t i, int64_t id) {
    if (special_mask && special_mask[i]) return 1;
    for (int64_t k = 0; k < o->n_special; k++)
        if (o->special_ids[k] == id) return 1;
    return 0;
}

/* Row state: candidate flags, unit starts and the selection. */
typedef struct {
    uint8_t *cand;   /* (T) not special */
    int64_t *unit;   /* (T + 1) start positions of units; n_units of them */
    int64_t n_units, n_cand;
    uint8_t *sel;    /* (T) selected */
} mask_row;

/* Units of row b: a unit starts at a candidate whose word_start is set or
 * whose predecessor is special (or at every candidate without words). */
static void build_units(mask_row *r, const int64_t *ids, const uint8_t *sm,
                        const uint8_t *ws, int64_t T, const ss_mask_opts *o) {
    r->n_units = r->n_cand = 0;
    for (int64_t t = 0; t < T; t++) {
        r->cand[t] = !is_special(o, sm, t, ids[t]);
        r->sel[t] = 0;
        if (!r->cand[t]) continue;
        r->n_cand++;
        if (!ws || ws[t] || t == 0 || !r->cand[t - 1])
            r->unit[r->n_units++] = t;
    }
}

/* End (exclusive) of the unit starting at s. */
static int64_t unit_end(const mask_row *r, const uint8_t *ws, int64_t T,
                        int64_t s) {
    int64_t e = s + 1;
    if (ws)
        while (e < T && r->cand[e] && !ws[e]) e++;
    return e;
}

/* Replacement of a selected token (or of a whole span). */
static int64_t replacement(ss_rng *rng, const ss_mask_opts *o, int64_t id) {
    double u = ss_rng_uniform(rng);
    if (u < o->mask_frac) return o->mask_id;
    if (u < o->mask_frac + o->random_frac) return rand_below(rng, o->vocab_size);
    return id;
}

static void select_bert(mask_row *r, const uint8_t *ws, int64_t T,
                        const ss_mask_opts *o, ss_rng *rng) {
    if (r->n_cand == 0) return;
    int64_t budget = (int64_t)llround((double)r->n_cand * o->mask_prob);
    if (budget < 1) budget = 1;
    for (int64_t i = r->n_units - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t k = rand_below(rng, i + 1), tmp = r->unit[i];
        r->unit[i] = r->unit[k], r->unit[k] = tmp;
    }
    int64_t got = 0;
    for (int64_t u = 0; u < r->n_units && got < budget; u++) {
        int64_t s = r->unit[u], e = unit_end(r, ws, T, s);
        if (got + (e - s) > budget) continue; /* BERT skips words that overflow */
        for (int64_t t = s; t < e; t++) r->sel[t] = 1;
        got += e - s;
    }
}

/* Geometric(p) truncated to [1, max], by inversion of the normalised cdf. */
static int64_t span_len(ss_rng *rng, double p, int64_t max) {
    double total = 1.0 - pow(1.0 - p, (double)max);
    double u = ss_rng_uniform(rng) * total, acc = 0.0, pl = p;
    for (int64_t l = 1; l < max; l++) {
        acc += pl;
        if (u < acc) return l;
        pl *= 1.0 - p;
    }
    return max;
}

/* Marks a span; returns how many tokens it added. Each marked token gets
 * span id sid in spans so that the replacement is shared. */
static int64_t select_spans(mask_row *r, int64_t *span_of, const uint8_t *ws,
                            int64_t T, const ss_mask_opts *o, ss_rng *rng) {
    if (r->n_cand == 0) return 0;
    int64_t budget = (int64_t)ceil((double)r->n_cand * o->mask_prob - 1e-9);
    int64_t got = 0, sid = 0, fails = 0;
    while (got < budget && fails < 100 * T + 100) {
        int64_t l = span_len(rng, o->span_p, o->span_max);
        int64_t a = rand_below(rng, T);
        if (!r->cand[a] || r->sel[a]) { fails++; continue; }
        while (ws && a > 0 && !ws[a] && r->cand[a - 1]) a--; /* word start */
        if (r->sel[a]) { fails++; continue; }
        int64_t t = a;
        for (int64_t w = 0; w < l && t < T && got < budget; w++) {
            if (!r->cand[t] || r->sel[t]) break;
            int64_t e = unit_end(r, ws, T, t);
            for (; t < e && got < budget && !r->sel[t]; t++)
                r->sel[t] = 1, span_of[t] = sid, got++;
            if (t < e) break;
        }
        sid++;
    }
    return sid;
}

static ss_status run_mask(const char *fn, int span, int64_t *out_ids,
                          int64_t *targets, const int64_t *ids,
                          const uint8_t *special_mask,
                          const uint8_t *word_start, int64_t B, int64_t T,
                          const ss_mask_opts *o, ss_rng *rng) {
    SS_TRY(check_args(fn, out_ids, targets, ids, B, T, o, rng));
    mask_row r;
    r.cand = ss__malloc((size_t)T);
    r.sel = ss__malloc((size_t)T);
    r.unit = ss__malloc(sizeof(int64_t) * (size_t)(T + 1));
    int64_t *span_of = ss__malloc(sizeof(int64_t) * (size_t)T);
    int64_t *span_rep = ss__malloc(sizeof(int64_t) * (size_t)T);
    if (!r.cand || !r.sel || !r.unit || !span_of || !span_rep) {
        ss__free(r.cand), ss__free(r.sel), ss__free(r.unit);
        ss__free(span_of), ss__free(span_rep);
        return ss__fail(SS_ERR_NOMEM, fn, "row workspace (T = %lld)",
                        (long long)T);
    }
    for (int64_t b = 0; b < B; b++) {
        const int64_t *id = ids + b * T;
        const uint8_t *sm = special_mask ? special_mask + b * T : NULL;
        const uint8_t *ws = word_start ? word_start + b * T : NULL;
        build_units(&r, id, sm, ws, T, o);
        int64_t nspan = 0;
        if (span) nspan = select_spans(&r, span_of, ws, T, o, rng);
        else select_bert(&r, ws, T, o, rng);
        /* Spans share one replacement decision; the random id is per token. */
        for (int64_t s = 0; s < nspan; s++) {
            double u = ss_rng_uniform(rng);
            span_rep[s] = u < o->mask_frac ? 0
                          : u < o->mask_frac + o->random_frac ? 1 : 2;
        }
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            out_ids[i] = id[t], targets[i] = o->ignore_index;
            if (!r.sel[t]) continue;
            targets[i] = id[t];
            if (!span) { out_ids[i] = replacement(rng, o, id[t]); continue; }
            int64_t k = span_rep[span_of[t]];
            out_ids[i] = k == 0 ? o->mask_id
                         : k == 1 ? rand_below(rng, o->vocab_size) : id[t];
        }
    }
    ss__free(r.cand), ss__free(r.sel), ss__free(r.unit);
    ss__free(span_of), ss__free(span_rep);
    return SS_OK;
}

ss_status ss_mask_bert(int64_t *out_ids, int64_t *targets, const int64_t *ids,
                       const uint8_t *special_mask, const uint8_t *word_start,
                       int64_t B, int64_t T, const ss_mask_opts *opts,
                       ss_rng *rng) {
    return run_mask("ss_mask_bert", 0, out_ids, targets, ids, special_mask,
                    word_start, B, T, opts, rng);
}

ss_status ss_mask_span(int64_t *out_ids, int64_t *targets, const int64_t *ids,
                       const uint8_t *special_mask, const uint8_t *word_start,
                       int64_t B, int64_t T, const ss_mask_opts *opts,
                       ss_rng *rng) {
    return run_mask("ss_mask_span", 1, out_ids, targets, ids, special_mask,
                    word_start, B, T, opts, rng);
}
