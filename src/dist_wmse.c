/*
 * dist_wmse.c - W-MSE over ranks with global whitening. Contract:
 * selfsup_comm.h; semantics: docs/DISTRIBUTED.md (dist-geometry).
 *
 * The global batch (V, Ntot, D) is split exactly as ss_wmse_forward splits
 * it: per iteration, perm (w_iter, Ntot; equal on every rank, or NULL)
 * puts global row perm[s w + r] in sub-batch s. A rank's rows may fall in
 * any sub-batch, so every whitening group (sub-batch s, view v) has its
 * statistics all-reduced, as SyncBatchNorm does for moments:
 *     sums of the rows                (ng V D)      -> the group means
 *     sums of centred outer products  (ng V D^2)    -> S, then L = chol(...)
 * Every rank factors every group (identical inputs, identical L) and
 * whitens its own rows. The view pairs of a sample are on its rank, so
 * the cosines are local; one double is reduced. Backward (wmse.c's
 * formulas, docs/derivations/wmse.md) reduces per group the D x D
 * sum dY^T Y (the Cholesky backward's input) and the D column sums of
 * dXc (the centring backward), then finishes locally.
 * In double throughout, like wmse.c; ng = Ntot / w_size.
 */
#include "dist_geometry.h"
#include "kernels/lapack.h"

#include <string.h>

#define DWM_MAGIC 0x3130454d57445353ull /* "SSDWME01" */

static const char *const dwm_names[] = {"V", "D", "w_size", "w_iter", "eps",
                                        "perm given", "dloss"};

size_t ss_dist_wmse_cache_size(int64_t V, int64_t N, int64_t D) {
    size_t s = ss_wmse_cache_size(V, N, D); /* checks the sizes */
    return s ? DG_HEADER_BYTES : 0;
}

static ss_status dwm_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_wmse_opts *o) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, V, N, D));
    SS_TRY(ss__wmse_check_opts(fn, N, D, o));
    return ss__check_finite(fn, "z", z, V * N * D);
}

/* After the agreement (same verdict everywhere): the global batch is a
 * multiple of w_size; perm rows are permutations of 0..Ntot-1. *sum: a
 * position-weighted checksum of perm, agreed next. */
static ss_status dwm_check_global(const char *fn, const int64_t *perm,
                                  int64_t Ntot, const ss_wmse_opts *o,
                                  double *sum) {
    *sum = 0.0;
    if (Ntot < o->w_size || Ntot % o->w_size != 0)
        return ss__fail(SS_ERR_SIZE, fn, "the global batch Ntot = %lld must "
                        "be a positive multiple of w_size = %lld",
                        (long long)Ntot, (long long)o->w_size);
    if (o->w_iter > SS_MAX_ELEMENTS / Ntot)
        return ss__fail(SS_ERR_PARAM, fn, "w_iter Ntot must be <= 2^40, got "
                        "w_iter %lld", (long long)o->w_iter);
    if (!perm) return SS_OK;
    unsigned char *seen = ss__malloc((size_t)Ntot);
    if (!seen) return ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld bytes",
                               (long long)Ntot);
    ss_status st = SS_OK;
    for (int64_t it = 0; it < o->w_iter && st == SS_OK; it++) {
        memset(seen, 0, (size_t)Ntot);
        for (int64_t i = 0; i < Ntot && st == SS_OK; i++) {
            int64_t k = it * Ntot + i, p = perm[k];
            if (p < 0 || p >= Ntot || seen[p])
                st = ss__fail(SS_ERR_PARAM, fn, "perm[%lld] = %lld: row %lld "
                              "of perm is not a permutation of 0..%lld",
                              (long long)k, (long long)p, (long long)it,
                              (long long)(Ntot - 1));
            else seen[p] = 1, *sum += (double)p * (double)(1 + k % 1021);
        }
    }
    ss__free(seen);
    return st;
}

/* ---- one iteration's groups ------------------------------------------------------ */

typedef struct {
    const ss_comm *comm;
    const char *fn;
    const float *z;            /* (V, N, D) local rows */
    int64_t V, N, D, w, ng, Ntot, off;
    double eps;
    int64_t *order, *start;    /* local rows by sub-batch; start: (ng + 1) */
    int64_t *fill, *sub;       /* (ng) scratch; (N) sub-batch of each row */
    int64_t *inv;              /* (Ntot) position of each global row */
    double *mean, *cs;         /* (ng V D): group means, column sums */
    double *Ls, *red;          /* (ng V D D): factors, reductions */
    double *Y, *G;             /* (V, N, D): whitened rows, their gradient */
    double *X, *X2, *Q;        /* (N, D), (N, D), (D, D) scratch */
} dwm_ctx;

/* Sub-batch s's local rows in order[start[s] .. start[s + 1]), in local
 * order (a counting sort). */
static void dwm_assign(dwm_ctx *c, const int64_t *perm) {
    int64_t ng = c->ng;
    if (perm)
        for (int64_t q = 0; q < c->Ntot; q++) c->inv[perm[q]] = q;
    memset(c->start, 0, sizeof(int64_t) * (size_t)(ng + 1));
    for (int64_t i = 0; i < c->N; i++) {
        int64_t g = c->off + i;
        c->sub[i] = (perm ? c->inv[g] : g) / c->w;
        c->start[c->sub[i] + 1]++;
    }
    for (int64_t s = 0; s < ng; s++) c->start[s + 1] += c->start[s];
    memcpy(c->fill, c->start, sizeof(int64_t) * (size_t)ng);
    for (int64_t i = 0; i < c->N; i++) c->order[c->fill[c->sub[i]]++] = i;
}

/* X (n, D) = view v of sub-batch s's local rows, from z (src NULL) or a
 * (V, N, D) double buffer; centred by mean when mean is non-NULL. */
static int64_t dwm_rows(const dwm_ctx *c, double *X, const double *src,
                        int64_t s, int64_t v, const double *mean) {
    int64_t D = c->D, n = c->start[s + 1] - c->start[s];
    for (int64_t r = 0; r < n; r++) {
        int64_t i = (v * c->N + c->order[c->start[s] + r]) * D;
        for (int64_t d = 0; d < D; d++)
            X[r * D + d] = (src ? src[i + d] : (double)c->z[i + d]) -
                           (mean ? mean[d] : 0.0);
    }
    return n;
}

/* dst rows (view v of sub-batch s) = X (n, D). */
static void dwm_put(const dwm_ctx *c, double *dst, const double *X, int64_t s,
                    int64_t v) {
    int64_t D = c->D, n = c->start[s + 1] - c->start[s];
    for (int64_t r = 0; r < n; r++)
        memcpy(dst + (v * c->N + c->order[c->start[s] + r]) * D, X + r * D,
               sizeof(double) * (size_t)D);
}

/* The global group means (mean) and Cholesky factors (Ls); Y = whitened
 * local rows. Collectives: ng V D and ng V D^2 doubles. */
static ss_status dwm_whiten(dwm_ctx *c, int64_t it) {
    int64_t V = c->V, D = c->D, ngv = c->ng * V, DD = D * D;
    memset(c->mean, 0, sizeof(double) * (size_t)(ngv * D));
    for (int64_t g = 0; g < ngv; g++) {
        int64_t n = dwm_rows(c, c->X, NULL, g / V, g % V, NULL);
        for (int64_t r = 0; r < n; r++)
            for (int64_t d = 0; d < D; d++) c->mean[g * D + d] += c->X[r * D + d];
    }
    SS_TRY(ss__dg_sum(c->comm, c->fn, c->mean, ngv * D));
    for (int64_t k = 0; k < ngv * D; k++) c->mean[k] /= (double)c->w;
    memset(c->Ls, 0, sizeof(double) * (size_t)(ngv * DD));
    for (int64_t g = 0; g < ngv; g++) {
        int64_t n = dwm_rows(c, c->X, NULL, g / V, g % V, c->mean + g * D);
        if (n > 0)
            ss__dgemm(1, 0, D, D, n, 1.0, c->X, D, c->X, D, 0.0, c->Ls + g * DD, D);
    }
    SS_TRY(ss__dg_sum(c->comm, c->fn, c->Ls, ngv * DD));
    int64_t bad = ngv, info = 0;
    double sc = (1.0 - c->eps) / (double)(c->w - 1);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ss__threads())
#endif
    for (int64_t g = 0; g < ngv; g++) { /* identical on every rank */
        double *L = c->Ls + g * DD;
        for (int64_t k = 0; k < DD; k++) L[k] *= sc;
        for (int64_t d = 0; d < D; d++) L[d * D + d] += c->eps;
        int64_t got = ss__dpotrf_lower(L, D);
        if (got) {
#ifdef _OPENMP
#pragma omp critical(ss_dwm_bad)
#endif
            if (g < bad) bad = g, info = got;
        }
    }
    ss_status st = SS_OK;
    if (bad < ngv)
        st = ss__fail(SS_ERR_PARAM, c->fn, "the shrunk covariance of "
                      "sub-batch %lld, view %lld (iteration %lld) is not "
                      "positive definite (leading minor %lld); use eps > 0",
                      (long long)(bad / V), (long long)(bad % V),
                      (long long)it, (long long)info);
    SS_TRY(ss__dist_status(c->comm, c->fn, st)); /* the reductions agree */
    for (int64_t g = 0; g < ngv; g++) { /* Y = Xc L^{-T} */
        int64_t n = dwm_rows(c, c->X, NULL, g / V, g % V, c->mean + g * D);
        if (n == 0) continue;
        ss__dtrsm_lower(0, 1, D, n, c->Ls + g * DD, c->X);
        dwm_put(c, c->Y, c->X, g / V, g % V);
    }
    return SS_OK;
}

/* out (V, N, D) += the gradient through every group's whitening of
 * c->G = dY. Collectives: ng V D^2 and ng V D doubles. */
static ss_status dwm_backprop(dwm_ctx *c, float *out) {
    int64_t V = c->V, D = c->D, ngv = c->ng * V, DD = D * D;
    memset(c->red, 0, sizeof(double) * (size_t)(ngv * DD));
    for (int64_t g = 0; g < ngv; g++) { /* local dY^T Y per group */
        int64_t n = dwm_rows(c, c->X, c->G, g / V, g % V, NULL);
        dwm_rows(c, c->X2, c->Y, g / V, g % V, NULL);
        if (n > 0)
            ss__dgemm(1, 0, D, D, n, 1.0, c->X, D, c->X2, D, 0.0,
                      c->red + g * DD, D);
    }
    SS_TRY(ss__dg_sum(c->comm, c->fn, c->red, ngv * DD));
    for (int64_t g = 0; g < ngv; g++) { /* identical on every rank */
        memcpy(c->Q, c->red + g * DD, sizeof(double) * (size_t)DD);
        ss__wmse_sigma_grad(c->red + g * DD, c->Q, c->Ls + g * DD, D);
    }
    memset(c->cs, 0, sizeof(double) * (size_t)(ngv * D));
    double k2 = 2.0 * (1.0 - c->eps) / (double)(c->w - 1);
    for (int64_t g = 0; g < ngv; g++) { /* dXc = dY L^{-1} + k2 Xc dSig */
        int64_t s = g / V, v = g % V;
        int64_t n = dwm_rows(c, c->X, c->G, s, v, NULL);
        if (n == 0) continue;
        ss__dtrsm_lower(0, 0, D, n, c->Ls + g * DD, c->X);
        dwm_rows(c, c->X2, NULL, s, v, c->mean + g * D);
        ss__dgemm(0, 0, n, D, D, k2, c->X2, D, c->red + g * DD, D, 1.0, c->X, D);
        for (int64_t r = 0; r < n; r++)
            for (int64_t d = 0; d < D; d++) c->cs[g * D + d] += c->X[r * D + d];
        dwm_put(c, c->G, c->X, s, v);
    }
    SS_TRY(ss__dg_sum(c->comm, c->fn, c->cs, ngv * D));
    for (int64_t g = 0; g < ngv; g++) { /* the centring: minus the mean */
        int64_t s = g / V, v = g % V, n = dwm_rows(c, c->X, c->G, s, v, NULL);
        for (int64_t r = 0; r < n; r++) {
            float *dst = out + (v * c->N + c->order[c->start[s] + r]) * D;
            for (int64_t d = 0; d < D; d++)
                dst[d] += (float)(c->X[r * D + d] - c->cs[g * D + d] / (double)c->w);
        }
    }
    return SS_OK;
}

/* ---- entry points ------------------------------------------------------------------ */

/* Carves every buffer of c out of one block (*mem); G only for backward. */
static ss_status dwm_alloc(dwm_ctx *c, void **mem, int backward) {
    size_t ngv = (size_t)(c->ng * c->V), D = (size_t)c->D, N = (size_t)c->N;
    size_t nd = (size_t)c->V * N * D;
    size_t ni = 2 * N + 2 * (size_t)c->ng + 1 + (size_t)c->Ntot;
    size_t nb = backward ? 2 : 1; /* red and G: backward only */
    size_t nf = 2 * ngv * D + nb * ngv * D * D + nb * nd + 2 * N * D + D * D;
    *mem = ss__malloc(sizeof(int64_t) * ni + sizeof(double) * nf);
    if (!*mem)
        return ss__fail(SS_ERR_NOMEM, c->fn, "no memory for the whitening "
                        "workspace (%zu doubles)", nf);
    c->order = *mem, c->sub = c->order + N, c->start = c->sub + N;
    c->fill = c->start + c->ng + 1, c->inv = c->fill + c->ng;
    c->mean = (double *)(c->inv + c->Ntot), c->cs = c->mean + ngv * D;
    c->Ls = c->cs + ngv * D, c->Y = c->Ls + ngv * D * D;
    c->X = c->Y + nd, c->X2 = c->X + N * D, c->Q = c->X2 + N * D;
    c->red = backward ? c->Q + D * D : NULL;
    c->G = backward ? c->red + ngv * D * D : NULL;
    return SS_OK;
}

/* Forward (dz NULL: *loss) or backward (dz += dloss * world_size * grad),
 * after both agreements. */
static ss_status dwm_run(dwm_ctx *c, float *loss, float *dz, float dloss,
                         const int64_t *perm, const ss_wmse_opts *o) {
    void *mem;
    ss_status st = dwm_alloc(c, &mem, dz != NULL);
    float *g = st == SS_OK && dz
                   ? ss__calloc(sizeof(float) * (size_t)(c->V * c->N * c->D))
                   : NULL;
    if (st == SS_OK && dz && !g)
        st = ss__fail(SS_ERR_NOMEM, c->fn, "no memory for V N D floats");
    st = ss__dist_status(c->comm, c->fn, st);
    double npairs = (double)(c->V * (c->V - 1) / 2), total = 0.0;
    double coef = (double)dloss * c->comm->size / ((double)o->w_iter * npairs);
    for (int64_t it = 0; it < o->w_iter && st == SS_OK; it++) {
        dwm_assign(c, perm ? perm + it * c->Ntot : NULL);
        st = dwm_whiten(c, it);
        if (st == SS_OK) /* wmse.c's pair loss: d(-2 sum cos / Ntot) */
            total += ss__wmse_cos_pairs(c->Y, dz ? c->G : NULL, c->V, c->N,
                                        c->D, -2.0 * coef / (double)c->Ntot);
        if (st == SS_OK && dz) st = dwm_backprop(c, g);
    }
    if (st == SS_OK && loss) st = ss__dg_sum(c->comm, c->fn, &total, 1);
    if (st == SS_OK && loss) /* wmse.c: mean over iterations and pairs */
        *loss = (float)(((double)o->w_iter * 2.0 * npairs -
                         2.0 * total / (double)c->Ntot) /
                        ((double)o->w_iter * npairs));
    if (st == SS_OK && dz)
        for (int64_t i = 0; i < c->V * c->N * c->D; i++) dz[i] += g[i];
    ss__free(g), ss__free(mem);
    return st;
}

/* Both agreements: options and counts, then (with the global size known)
 * the global checks, the cache's Ntot (backward) and perm's checksum. */
static ss_status dwm_agree(dwm_ctx *c, ss_status st, const int64_t *perm,
                           const ss_wmse_opts *o, const void *bcache,
                           double dloss) {
    double vals[7] = {(double)c->V, (double)c->D, (double)o->w_size,
                      (double)o->w_iter, o->eps, perm != NULL, dloss};
    int nv = bcache ? 7 : 6;
    SS_TRY(ss__dg_agree(c->comm, c->fn, st, vals, dwm_names, nv, c->N, 1,
                        NULL, NULL, &c->off, &c->Ntot));
    double sum = 0.0;
    st = bcache ? ss__dg_ntot_check(c->fn, bcache, c->Ntot) : SS_OK;
    if (st == SS_OK) st = dwm_check_global(c->fn, perm, c->Ntot, o, &sum);
    static const char *const pn[] = {"perm (checksum)"};
    int64_t off2, Ntot2;
    SS_TRY(ss__dg_agree(c->comm, c->fn, st, &sum, pn, 1, c->N, 1, NULL, NULL,
                        &off2, &Ntot2));
    c->ng = c->Ntot / o->w_size;
    return SS_OK;
}

static void dwm_init(dwm_ctx *c, const char *fn, const ss_comm *comm,
                     const float *z, int64_t V, int64_t N, int64_t D,
                     const ss_wmse_opts *o) {
    memset(c, 0, sizeof *c);
    c->comm = comm, c->fn = fn, c->z = z, c->V = V, c->N = N, c->D = D;
    c->w = o->w_size, c->eps = o->eps;
}

ss_status ss_dist_wmse_forward(float *loss, void *cache, const float *z,
                               const int64_t *perm, int64_t V, int64_t N,
                               int64_t D, const ss_wmse_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_wmse_forward";
    SS_TRY(ss_comm_check(comm));
    ss_wmse_opts o = opts ? *opts : ss_wmse_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dwm_check(fn, z, V, N, D, &o);
    dwm_ctx c;
    dwm_init(&c, fn, comm, z, V, N, D, &o);
    SS_TRY(dwm_agree(&c, st, perm, &o, NULL, 0.0));
    float l = 0.0f;
    SS_TRY(dwm_run(&c, &l, NULL, 0.0f, perm, &o));
    float p[4] = {o.eps, (float)o.w_size, (float)o.w_iter, 0.0f};
    ss__dg_header_set(cache, DWM_MAGIC, V, N, D, c.Ntot, p);
    *loss = l;
    return SS_OK;
}

ss_status ss_dist_wmse_backward(float *dz, float dloss, const void *cache,
                                const float *z, const int64_t *perm,
                                int64_t V, int64_t N, int64_t D,
                                const ss_wmse_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_wmse_backward";
    SS_TRY(ss_comm_check(comm));
    ss_wmse_opts o = opts ? *opts : ss_wmse_defaults();
    ss_status st = ss__check_ptr(fn, "dz", dz);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = dwm_check(fn, z, V, N, D, &o);
    float p[4] = {o.eps, (float)o.w_size, (float)o.w_iter, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DWM_MAGIC, V, N, D, p);
    dwm_ctx c;
    dwm_init(&c, fn, comm, z, V, N, D, &o);
    SS_TRY(dwm_agree(&c, st, perm, &o, cache, ss__dg_dloss_val(dloss)));
    return dwm_run(&c, NULL, dz, dloss, perm, &o);
}
