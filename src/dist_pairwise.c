/*
 * dist_pairwise.c - the pairwise losses of the geometry family over ranks:
 * alignment + uniformity (hypersphere) and KoLeo. Contract:
 * selfsup_comm.h; semantics: docs/DISTRIBUTED.md (dist-geometry).
 *
 * Both gather the rows (Ntot D floats per view, in rank order) and run the
 * single-process tiled kernels (hypersphere.c, koleo.c) on this rank's
 * rows [off, off + N) against all gathered rows: memory O(Ntot D + tile),
 * never an (N, Ntot) matrix.
 *   hypersphere: the uniformity LSE combines per-row LSEs with one max and
 *     one sum all-reduce; p_ij is symmetric, so each rank's gradient rows
 *     need only its own rows of p (no reduce-scatter).
 *   KoLeo: the neighbour of a row may live on another rank; backward
 *     all-gathers the neighbour indices (Ntot int64) so each rank adds the
 *     terms of every anchor whose neighbour is one of its rows.
 */
#include "dist_geometry.h"
#include "kernels/norm.h"

#include <string.h>

/* Gathers rows (N, per) floats of every rank into all (Ntot, per). */
static ss_status dpw_gather(const ss_comm *c, const char *fn, float *all,
                            const float *rows, const int64_t *counts,
                            int64_t per, int64_t *bytes) {
    return ss__dist_allgather_rows(c, fn, rows, all, counts, per,
                                   sizeof(float), bytes);
}

/* ---- hypersphere --------------------------------------------------------------- */

#define DHS_MAGIC 0x3130534844445353ull /* "SSDDHS01" */

static const char *const dhs_names[] = {"D", "t", "lambda", "alpha", "dloss"};

/* Cache after the header: the global LSEs of x and y (2 doubles). */
size_t ss_dist_hypersphere_cache_size(int64_t N, int64_t D) {
    static const char fn[] = "ss_dist_hypersphere_cache_size";
    if (ss__check_size(fn, "N", N, 1) != SS_OK ||
        ss__check_size(fn, "D", D, 1) != SS_OK ||
        ss__check_product(fn, N, D, 1) != SS_OK)
        return 0;
    return DG_HEADER_BYTES + 2 * sizeof(double);
}

/* The normalised rows of both views, gathered, with their squared norms;
 * the local rows are X + off D. */
typedef struct {
    float *X, *Y;     /* (Ntot, D) gathered */
    double *nx, *ny;  /* (Ntot) */
    float *sx, *sy;   /* (N) local scales */
    float *xl, *yl;   /* (N, D) local normalised rows before the gather */
    int64_t *bytes;   /* (size) */
} dhs_rows;

static ss_status dhs_make(const ss_comm *c, const char *fn, dhs_rows *r,
                          void **mem, const float *za, const float *zb,
                          int64_t N, int64_t D, const int64_t *counts,
                          int64_t Ntot) {
    size_t gd = (size_t)(Ntot * D), nd = (size_t)(N * D);
    *mem = ss__malloc(sizeof(double) * 2 * (size_t)Ntot +
                      sizeof(int64_t) * (size_t)c->size +
                      sizeof(float) * (2 * gd + 2 * nd + 2 * (size_t)N));
    SS_TRY(ss__dist_status(c, fn, ss__dg_nomem(SS_OK, fn, *mem,
                                               "the gathered rows")));
    r->nx = *mem, r->ny = r->nx + Ntot;
    r->bytes = (int64_t *)(r->ny + Ntot);
    r->X = (float *)(r->bytes + c->size), r->Y = r->X + gd;
    r->xl = r->Y + gd, r->yl = r->xl + nd;
    r->sx = r->yl + nd, r->sy = r->sx + N;
    ss__normalize_rows(r->xl, r->sx, za, N, D);
    ss__normalize_rows(r->yl, r->sy, zb, N, D);
    SS_TRY(dpw_gather(c, fn, r->X, r->xl, counts, D, r->bytes));
    SS_TRY(dpw_gather(c, fn, r->Y, r->yl, counts, D, r->bytes));
    ss__hs_sqnorms(r->nx, r->X, Ntot, D);
    ss__hs_sqnorms(r->ny, r->Y, Ntot, D);
    return SS_OK;
}

/* Global LSE over ordered pairs of both views: per-row LSEs of the local
 * rows, then one max and one sum all-reduce (with the alignment sum). */
static ss_status dhs_lse(const ss_comm *c, const char *fn, double *lse,
                         double *align, const dhs_rows *r, int64_t off,
                         int64_t N, int64_t D, int64_t Ntot, double t) {
    double *rm = ss__malloc(sizeof(double) * 4 * (size_t)N);
    SS_TRY(ss__dist_status(c, fn, ss__dg_nomem(SS_OK, fn, rm, "4 N doubles")));
    double m[2] = {-INFINITY, -INFINITY}, s[3] = {0.0, 0.0, *align};
    int fail = ss__hs_rows_lse(rm, rm + N, r->X, r->nx, Ntot, D, t, off,
                               off + N) ||
               ss__hs_rows_lse(rm + 2 * N, rm + 3 * N, r->Y, r->ny, Ntot, D,
                               t, off, off + N);
    ss_status st = fail ? ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a tile")
                        : SS_OK;
    st = ss__dist_status(c, fn, st);
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        for (int k = 0; k < 2; k++)
            m[k] = rm[2 * k * N + i] > m[k] ? rm[2 * k * N + i] : m[k];
    if (st == SS_OK)
        st = ss__dist_allreduce(c, fn, m, 2, SS_COMM_DOUBLE, SS_COMM_MAX);
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        for (int k = 0; k < 2; k++) /* exp(-inf - m) = 0: no pair there */
            s[k] += rm[(2 * k + 1) * N + i] * exp(rm[2 * k * N + i] - m[k]);
    if (st == SS_OK) st = ss__dg_sum(c, fn, s, 3);
    if (st == SS_OK)
        lse[0] = m[0] + log(s[0]), lse[1] = m[1] + log(s[1]), *align = s[2];
    ss__free(rm);
    return st;
}

ss_status ss_dist_hypersphere_forward(float *loss, void *cache,
                                      const float *za, const float *zb,
                                      int64_t N, int64_t D,
                                      const ss_hypersphere_opts *opts,
                                      const ss_comm *comm) {
    static const char fn[] = "ss_dist_hypersphere_forward";
    SS_TRY(ss_comm_check(comm));
    ss_hypersphere_opts o = opts ? *opts : ss_hypersphere_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__hs_check(fn, za, zb, N, 1, D, &o);
    double vals[4] = {(double)D, o.t, o.lambda, o.alpha};
    int64_t off, Ntot, *counts = NULL;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dhs_names, 4, N, 2, NULL, &counts,
                        &off, &Ntot));
    dhs_rows r;
    void *mem = NULL;
    double lse[2], align = 0.0;
    st = dhs_make(comm, fn, &r, &mem, za, zb, N, D, counts, Ntot);
    if (st == SS_OK) {
        align = ss__hs_align(r.X + off * D, r.Y + off * D, N, D, o.alpha,
                             NULL, NULL, 0.0);
        st = dhs_lse(comm, fn, lse, &align, &r, off, N, D, Ntot, o.t);
    }
    if (st == SS_OK) {
        double lpairs = log((double)Ntot * (double)(Ntot - 1));
        double unif = (lse[0] - lpairs + lse[1] - lpairs) / 2.0;
        float p[4] = {o.t, o.lambda, o.alpha, 0.0f};
        ss__dg_header_set(cache, DHS_MAGIC, 2, N, D, Ntot, p);
        memcpy(ss__dg_payload(cache), lse, sizeof lse);
        *loss = (float)(align / (double)Ntot + o.lambda * unif);
    }
    ss__free(mem), ss__free(counts);
    return st;
}

ss_status ss_dist_hypersphere_backward(float *dza, float *dzb, float dloss,
                                       const void *cache, const float *za,
                                       const float *zb, int64_t N, int64_t D,
                                       const ss_hypersphere_opts *opts,
                                       const ss_comm *comm) {
    static const char fn[] = "ss_dist_hypersphere_backward";
    SS_TRY(ss_comm_check(comm));
    ss_hypersphere_opts o = opts ? *opts : ss_hypersphere_defaults();
    ss_status st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = ss__hs_check(fn, za, zb, N, 1, D, &o);
    float p[4] = {o.t, o.lambda, o.alpha, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DHS_MAGIC, 2, N, D, p);
    double vals[5] = {(double)D, o.t, o.lambda, o.alpha,
                      ss__dg_dloss_val(dloss)};
    int64_t off, Ntot, *counts = NULL;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dhs_names, 5, N, 2, NULL, &counts,
                        &off, &Ntot));
    st = ss__dg_ntot_check(fn, cache, Ntot);
    float *g = ss__calloc(sizeof(float) * 2 * (size_t)(N * D));
    st = ss__dist_status(comm, fn, ss__dg_nomem(st, fn, g, "2 N D floats"));
    dhs_rows r;
    void *mem = NULL;
    if (st == SS_OK) st = dhs_make(comm, fn, &r, &mem, za, zb, N, D, counts, Ntot);
    if (st == SS_OK) { /* hypersphere.c's gradient, 1/N -> world_size/Ntot */
        double lse[2], dl = (double)dloss * comm->size;
        memcpy(lse, ss__dg_payload(cache), sizeof lse);
        float *gx = g, *gy = g + N * D;
        const float *x = r.X + off * D, *y = r.Y + off * D;
        ss__hs_align(x, y, N, D, o.alpha, gx, gy, dl / (double)Ntot);
        double coef = -2.0 * (double)o.t * o.lambda * dl;
        int fail = (dza && ss__hs_rows_grad(gx, r.X, r.nx, Ntot, D, o.t,
                                            lse[0], coef, off, off + N)) ||
                   (dzb && ss__hs_rows_grad(gy, r.Y, r.ny, Ntot, D, o.t,
                                            lse[1], coef, off, off + N));
        if (fail) st = ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a tile");
        st = ss__dist_status(comm, fn, st);
        if (st == SS_OK && dza) ss__normalize_backward(dza, gx, x, r.sx, za, N, D);
        if (st == SS_OK && dzb) ss__normalize_backward(dzb, gy, y, r.sy, zb, N, D);
    }
    ss__free(g), ss__free(mem), ss__free(counts);
    return st;
}

/* ---- KoLeo ---------------------------------------------------------------------- */

#define DKL_MAGIC 0x31304c4b44445353ull /* "SSDDKL01" */

static const char *const dkl_names[] = {"D", "eps", "dloss"};

/* Cache after the header: the global neighbour index of each local row. */
size_t ss_dist_koleo_cache_size(int64_t N, int64_t D) {
    static const char fn[] = "ss_dist_koleo_cache_size";
    if (ss__check_size(fn, "N", N, 1) != SS_OK ||
        ss__check_size(fn, "D", D, 1) != SS_OK ||
        ss__check_product(fn, N, D, 1) != SS_OK)
        return 0;
    return DG_HEADER_BYTES + sizeof(int64_t) * (size_t)N;
}

/* Gathered raw rows X (Ntot, D), their normalised float rows U and scales
 * inv (Ntot), in one block *mem with ntail extra doubles (tail). */
typedef struct {
    float *X, *U;
    double *inv, *tail;
    int64_t *bytes; /* (size) */
} dkl_rows;

static ss_status dkl_gather(const ss_comm *c, const char *fn, dkl_rows *r,
                            void **mem, const float *x, int64_t D,
                            const int64_t *counts, int64_t Ntot, size_t ntail,
                            double eps) {
    size_t gd = (size_t)(Ntot * D);
    *mem = ss__malloc(sizeof(double) * ((size_t)Ntot + ntail) +
                      sizeof(int64_t) * (size_t)c->size +
                      sizeof(float) * 2 * gd);
    SS_TRY(ss__dist_status(c, fn, ss__dg_nomem(SS_OK, fn, *mem,
                                               "the gathered rows")));
    r->inv = *mem, r->tail = r->inv + Ntot;
    r->bytes = (int64_t *)(r->tail + ntail);
    r->X = (float *)(r->bytes + c->size), r->U = r->X + gd;
    SS_TRY(dpw_gather(c, fn, r->X, x, counts, D, r->bytes));
    ss__koleo_normalize(r->U, r->inv, r->X, Ntot, D, eps);
    return SS_OK;
}

ss_status ss_dist_koleo_forward(float *loss, float *losses, void *cache,
                                const float *x, int64_t N, int64_t D,
                                const ss_koleo_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_koleo_forward";
    SS_TRY(ss_comm_check(comm));
    ss_koleo_opts o = opts ? *opts : ss_koleo_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__koleo_check(fn, x, N, 1, D, &o);
    double vals[2] = {(double)D, o.eps};
    int64_t off, Ntot, *counts = NULL;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dkl_names, 2, N, 2, NULL, &counts,
                        &off, &Ntot));
    void *mem = NULL;
    dkl_rows r;
    st = dkl_gather(comm, fn, &r, &mem, x, D, counts, Ntot, (size_t)D,
                    o.eps);
    int64_t *nn = ss__dg_payload(cache);
    if (st == SS_OK) {
        int fail = ss__koleo_rows_nn(nn, r.U, Ntot, D, off, off + N);
        st = ss__dist_status(comm, fn, fail ? ss__fail(SS_ERR_NOMEM, fn,
                             "cannot allocate a tile") : SS_OK);
    }
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++) {
        double li = -log(ss__koleo_diff(r.tail, r.X, r.inv, off + i, nn[i], D,
                                        o.eps) + o.eps);
        if (losses) losses[i] = (float)li;
        total += li;
    }
    if (st == SS_OK) st = ss__dg_sum(comm, fn, &total, 1);
    if (st == SS_OK) {
        float p[4] = {o.eps, 0.0f, 0.0f, 0.0f};
        ss__dg_header_set(cache, DKL_MAGIC, 1, N, D, Ntot, p);
        *loss = (float)(total / (double)Ntot);
    }
    ss__free(mem), ss__free(counts);
    return st;
}

/* gu (N, D) of the local rows [off, off + N): every anchor i adds w_i e_i
 * to itself and -w_i e_i to its neighbour nn[i] (global indices). */
static void dkl_grad(double *gu, double *e, const float *X, const double *inv,
                     const int64_t *nn, int64_t off, int64_t N, int64_t D,
                     int64_t Ntot, double dl, double eps) {
    for (int64_t i = 0; i < Ntot; i++) {
        int mine = i >= off && i < off + N;
        int64_t j = nn[i] - off;
        if (!mine && (j < 0 || j >= N)) continue;
        double di = ss__koleo_diff(e, X, inv, i, nn[i], D, eps);
        if (di == 0.0) continue; /* torch: norm'(0) = 0 */
        double w = -dl / ((double)Ntot * di * (di + eps));
        for (int64_t d = 0; d < D; d++) {
            if (mine) gu[(i - off) * D + d] += w * e[d];
            if (j >= 0 && j < N) gu[j * D + d] -= w * e[d];
        }
    }
}

ss_status ss_dist_koleo_backward(float *dx, float dloss, const void *cache,
                                 const float *x, int64_t N, int64_t D,
                                 const ss_koleo_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_koleo_backward";
    SS_TRY(ss_comm_check(comm));
    ss_koleo_opts o = opts ? *opts : ss_koleo_defaults();
    ss_status st = ss__check_ptr(fn, "dx", dx);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = ss__koleo_check(fn, x, N, 1, D, &o);
    float p[4] = {o.eps, 0.0f, 0.0f, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DKL_MAGIC, 1, N, D, p);
    double vals[3] = {(double)D, o.eps, ss__dg_dloss_val(dloss)};
    int64_t off, Ntot, *counts = NULL;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dkl_names, 3, N, 2, NULL, &counts,
                        &off, &Ntot));
    st = ss__dg_ntot_check(fn, cache, Ntot);
    const int64_t *nnl = ss__dg_payload(cache);
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        if (nnl[i] < 0 || nnl[i] >= Ntot || nnl[i] == off + i)
            st = ss__fail(SS_ERR_STATE, fn, "cache is corrupt: neighbour of "
                          "row %lld is %lld", (long long)(off + i),
                          (long long)nnl[i]);
    st = ss__dist_status(comm, fn, st);
    void *mem = NULL;
    dkl_rows r;
    /* tail: e (D), gu (N D), the gathered neighbours (Ntot int64) */
    if (st == SS_OK)
        st = dkl_gather(comm, fn, &r, &mem, x, D, counts, Ntot,
                        (size_t)(D + N * D + Ntot), o.eps);
    if (st == SS_OK) {
        double *e = r.tail, *gu = e + D;
        int64_t *nn = (int64_t *)(gu + N * D);
        memset(gu, 0, sizeof(double) * (size_t)(N * D));
        st = ss__dist_allgather_rows(comm, fn, nnl, nn, counts, 1,
                                     sizeof(int64_t), r.bytes);
        if (st == SS_OK) {
            dkl_grad(gu, e, r.X, r.inv, nn, off, N, D, Ntot,
                     (double)dloss * comm->size, o.eps);
            ss__koleo_normalize_backward(dx, gu, x, r.inv + off, N, D, o.eps);
        }
    }
    ss__free(mem), ss__free(counts);
    return st;
}
