/*
 * supcon.c - supervised contrastive loss (Khosla et al. 2020, the L_out
 * form), as pytorch-metric-learning's SupConLoss, on the group engine.
 *
 * Rows (v, n) are grouped by class: labelled samples by label, each
 * unlabeled sample alone (its positives are its own other views). Labels are
 * arbitrary int64 >= 0, so groups come from sorting, not from indexing by
 * label. The denominators run over every k != i (engine, exclude_group = 0);
 * the positive term is O(M D) through the per-group row sums G_g:
 *
 *     sum_{p in P(i)} <x_i, x_p> = <x_i, G_g - x_i>,  |P(i)| = c_g - 1
 *
 * with c_g the rows of group g. Anchors with c_g = 1 have no positive: loss
 * 0, left out of the mean, no gradient.
 */
#include "internal.h"
#include "kernels/contrast.h"
#include "kernels/norm.h"

#include <stdlib.h>
#include <string.h>

/* Cache: a header naming the call that wrote it, padded to 64 bytes, then
 * the per-row log-sum-exps (M) floats. */
#define SUPCON_MAGIC 0x314e4f4350555353ull /* "SSUPCON1" */
#define HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t V, N, D;
    uint64_t labels_hash;
    float temperature;
    int32_t cosine;
} supcon_header;

ss_supcon_opts ss_supcon_defaults(void) {
    ss_supcon_opts o = {0.1f, 1};
    return o;
}

static ss_status check_sizes(const char *fn, int64_t V, int64_t N, int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 1));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

static ss_status check_call(const char *fn, const float *z,
                            const int64_t *labels, int64_t V, int64_t N,
                            int64_t D, const ss_supcon_opts *o) {
    SS_TRY(check_sizes(fn, V, N, D));
    SS_TRY(ss__gc_check_temperature(fn, o->temperature));
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < -1)
            return ss__fail(SS_ERR_LABEL, fn,
                            "labels[%lld] must be >= 0 (a class) or -1 "
                            "(unlabeled), got %lld",
                            (long long)n, (long long)labels[n]);
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    return ss__gc_check_logit_bound(fn, z, V * N, D, o->temperature, o->cosine);
}

/* FNV-1a over the labels: backward checks it was given forward's labels. */
static uint64_t labels_hash(const int64_t *labels, int64_t N) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t n = 0; n < N; n++) {
        uint64_t x = (uint64_t)labels[n];
        for (int b = 0; b < 8; b++, x >>= 8)
            h = (h ^ (x & 0xff)) * 0x100000001b3ull;
    }
    return h;
}

static supcon_header make_header(const int64_t *labels, int64_t V, int64_t N,
                                 int64_t D, const ss_supcon_opts *o) {
    supcon_header h;
    memset(&h, 0, sizeof h);
    h.magic = SUPCON_MAGIC, h.V = V, h.N = N, h.D = D;
    h.labels_hash = labels_hash(labels, N);
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    return h;
}

static ss_status check_cache(const char *fn, const void *cache,
                             const int64_t *labels, int64_t V, int64_t N,
                             int64_t D, const ss_supcon_opts *o) {
    supcon_header h, want = make_header(labels, V, N, D, o);
    memcpy(&h, cache, sizeof h);
    if (memcmp(&h, &want, sizeof h) == 0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn,
                    "cache was not written by ss_supcon_forward with these "
                    "labels, sizes and options (V = %lld, N = %lld, D = %lld)",
                    (long long)V, (long long)N, (long long)D);
}

size_t ss_supcon_cache_size(int64_t V, int64_t N, int64_t D) {
    if (check_sizes("ss_supcon_cache_size", V, N, D) != SS_OK) return 0;
    return HEADER_BYTES + (size_t)(V * N) * sizeof(float);
}

/* ---- groups -------------------------------------------------------------- */

typedef struct {
    int64_t label, n;
} label_at;

static int cmp_label_at(const void *a, const void *b) {
    const label_at *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

/* gid: (N) dense group of each sample; rows: (N) rows per group (first
 * ngroups used). order: (N) scratch. Returns ngroups. */
static int64_t make_groups(int64_t *gid, int64_t *rows, label_at *order,
                           const int64_t *labels, int64_t V, int64_t N) {
    int64_t nl = 0, ng = 0;
    for (int64_t n = 0; n < N; n++)
        if (labels[n] >= 0) order[nl++] = (label_at){labels[n], n};
    qsort(order, (size_t)nl, sizeof *order, cmp_label_at);
    for (int64_t k = 0; k < nl; k++) {
        if (k == 0 || order[k].label != order[k - 1].label) rows[ng++] = 0;
        gid[order[k].n] = ng - 1;
        rows[ng - 1] += V;
    }
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < 0) gid[n] = ng, rows[ng++] = V;
    return ng;
}

/* Everything forward and backward share, allocated at once. */
typedef struct {
    int64_t V, N, D, M, ngroups;
    const float *x; /* rows in the dot products: xn, or z when !cosine */
    float *xn, *scale;
    int64_t *gid, *rows;
    label_at *order;
    double *G;      /* (ngroups, D) row sums per group */
    int64_t active; /* anchors with a positive */
} supcon_setup;

static void setup_free(supcon_setup *s) {
    ss__free(s->xn), ss__free(s->scale), ss__free(s->gid);
    ss__free(s->rows), ss__free(s->order), ss__free(s->G);
}

static ss_status setup_init(supcon_setup *s, const char *fn, const float *z,
                            const int64_t *labels, int64_t V, int64_t N,
                            int64_t D, int cosine) {
    memset(s, 0, sizeof *s);
    s->V = V, s->N = N, s->D = D, s->M = V * N, s->x = z;
    s->gid = ss__malloc((size_t)N * sizeof(int64_t));
    s->rows = ss__malloc((size_t)N * sizeof(int64_t));
    s->order = ss__malloc((size_t)N * sizeof(label_at));
    s->G = ss__calloc((size_t)(N * D) * sizeof(double));
    if (cosine) {
        s->xn = ss__malloc((size_t)(s->M * D) * sizeof(float));
        s->scale = ss__malloc((size_t)s->M * sizeof(float));
    }
    if (!s->gid || !s->rows || !s->order || !s->G ||
        (cosine && (!s->xn || !s->scale))) {
        setup_free(s);
        return ss__fail(SS_ERR_NOMEM, fn, "workspace for V=%lld N=%lld D=%lld",
                        (long long)V, (long long)N, (long long)D);
    }
    if (cosine) {
        ss__normalize_rows(s->xn, s->scale, z, s->M, D);
        s->x = s->xn;
    }
    s->ngroups = make_groups(s->gid, s->rows, s->order, labels, V, N);
    for (int64_t i = 0; i < s->M; i++) {
        double *g = s->G + s->gid[i % N] * D;
        const float *xi = s->x + i * D;
        for (int64_t d = 0; d < D; d++) g[d] += xi[d];
    }
    for (int64_t n = 0; n < N; n++)
        if (s->rows[s->gid[n]] >= 2) s->active += V;
    return SS_OK;
}

static ss__gc engine_problem(const supcon_setup *s, const ss_supcon_opts *o) {
    ss__gc p;
    memset(&p, 0, sizeof p);
    p.x = s->x, p.M = s->M, p.D = s->D;
    p.group = NULL, p.exclude_group = 0; /* denominators: every k != i */
    p.nscales = 1, p.scale[0] = 1.0f / o->temperature;
    return p;
}

/* ---- loss terms ---------------------------------------------------------- */

/* losses: (M) or NULL. Returns the sum of the per-anchor losses
 *     loss_i = lse_i - <x_i, G_g - x_i> / (temperature (c_g - 1))
 * over the anchors with a positive (0 for the others). */
static double anchor_losses(float *losses, const float *lse,
                            const supcon_setup *s, float scale) {
    const int64_t D = s->D;
    double total = 0.0;
    for (int64_t i = 0; i < s->M; i++) {
        int64_t g = s->gid[i % s->N], c = s->rows[g];
        double li = 0.0;
        if (c >= 2) {
            const float *xi = s->x + i * D;
            const double *G = s->G + g * D;
            double pos = 0.0;
            for (int64_t d = 0; d < D; d++)
                pos += (double)xi[d] * (G[d] - xi[d]);
            li = (double)lse[i] - pos * scale / (double)(c - 1);
        }
        if (losses) losses[i] = (float)li;
        total += li;
    }
    return total;
}

/* dx += gw * d/dx of the positive terms: over a group's anchors,
 * -sum_i <x_i, G - x_i> / (T (c - 1)) has gradient -2 (G - x_k) / (T (c - 1))
 * at x_k. */
static void positives_backward(float *dx, double gw, const supcon_setup *s,
                               float scale) {
    const int64_t M = s->M, N = s->N, D = s->D;
#ifdef _OPENMP
#pragma omp parallel for num_threads(ss__threads()) if (M * D > (1 << 16))
#endif
    for (int64_t i = 0; i < M; i++) {
        int64_t gi = s->gid[i % N], c = s->rows[gi];
        if (c < 2) continue;
        double coef = -2.0 * gw * scale / (double)(c - 1);
        const double *G = s->G + gi * D;
        const float *xi = s->x + i * D;
        for (int64_t d = 0; d < D; d++)
            dx[i * D + d] += (float)(coef * (G[d] - xi[d]));
    }
}

/* ---- public API ---------------------------------------------------------- */

ss_status ss_supcon_forward(float *loss, float *losses, void *cache,
                            const float *z, const int64_t *labels, int64_t V,
                            int64_t N, int64_t D, const ss_supcon_opts *opts) {
    static const char fn[] = "ss_supcon_forward";
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_ptr(fn, "labels", labels));
    SS_TRY(check_call(fn, z, labels, V, N, D, &o));
    supcon_setup s;
    SS_TRY(setup_init(&s, fn, z, labels, V, N, D, o.cosine));
    /* lse into a temporary: the cache stays untouched if the engine fails. */
    float *lse = ss__malloc((size_t)s.M * sizeof(float));
    ss__gc p = engine_problem(&s, &o);
    ss_status st =
        lse ? ss__gc_forward(lse, &p)
            : ss__fail(SS_ERR_NOMEM, fn, "lse of %lld rows", (long long)s.M);
    if (st == SS_OK) {
        double total = anchor_losses(losses, lse, &s, p.scale[0]);
        *loss = s.active ? (float)(total / (double)s.active) : 0.0f;
        supcon_header h = make_header(labels, V, N, D, &o);
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + HEADER_BYTES, lse, (size_t)s.M * sizeof(float));
    }
    ss__free(lse);
    setup_free(&s);
    return st;
}

ss_status ss_supcon_backward(float *dz, float dloss, const void *cache,
                             const float *z, const int64_t *labels, int64_t V,
                             int64_t N, int64_t D, const ss_supcon_opts *opts) {
    static const char fn[] = "ss_supcon_backward";
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_ptr(fn, "labels", labels));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(check_call(fn, z, labels, V, N, D, &o));
    SS_TRY(check_cache(fn, cache, labels, V, N, D, &o));
    const float *lse = (const float *)((const char *)cache + HEADER_BYTES);
    supcon_setup s;
    SS_TRY(setup_init(&s, fn, z, labels, V, N, D, o.cosine));
    const int64_t M = s.M;
    if (s.active == 0) { /* no anchor has a positive: zero gradient */
        setup_free(&s);
        return SS_OK;
    }
    /* dz is touched only at the end, after everything that can fail. */
    float *dx = ss__calloc((size_t)(M * D) * sizeof(float));
    float *w = ss__malloc((size_t)M * sizeof(float));
    ss__gc p = engine_problem(&s, &o);
    const double gw = (double)dloss / (double)s.active;
    ss_status st = SS_OK;
    if (!dx || !w) {
        st = ss__fail(SS_ERR_NOMEM, fn, "gradient buffer of %lld x %lld",
                      (long long)M, (long long)D);
    } else {
        /* Anchors without a positive have no lse term (w = 0). */
        for (int64_t i = 0; i < M; i++)
            w[i] = s.rows[s.gid[i % N]] >= 2 ? (float)gw : 0.0f;
        st = ss__gc_backward(dx, w, lse, &p);
    }
    if (st == SS_OK) {
        positives_backward(dx, gw, &s, p.scale[0]);
        if (o.cosine) {
            ss__normalize_backward(dz, dx, s.xn, s.scale, z, M, D);
        } else {
            for (int64_t i = 0; i < M * D; i++) dz[i] += dx[i];
        }
    }
    ss__free(dx), ss__free(w);
    setup_free(&s);
    return st;
}
