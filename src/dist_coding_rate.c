/*
 * dist_coding_rate.c - MMCR and EMP-SSL (total coding rate) over ranks.
 * Contract: selfsup_comm.h; semantics: docs/DISTRIBUTED.md
 * (dist-geometry). Both are spectral functions of a global matrix whose
 * rows are spread over the ranks; both work through D x D Gram matrices,
 * all-reduced in double, so that memory stays O(local rows D + D^2):
 *
 *   EMP-SSL: R(Z) = 1/2 logdet(I + a Z^T Z) needs only Z^T Z = sum_r
 *     Z_r^T Z_r; every rank factors M = I + a Z^T Z (M >= I: always well
 *     conditioned) and its gradient rows are a Z_r M^{-1}, local.
 *   MMCR: ||C||_* of the centroids C (Btot, D). With Btot >= D, from the
 *     eigendecomposition C^T C = V diag(s^2) V^T: ||C||_* = sum s_i and
 *     the gradient U V^T has rows C_r V diag(1/s) V^T (local). Eigenvalues
 *     below max(Btot, D) eps s_max^2 count as zero (the Gram resolves
 *     singular values only down to sqrt(max(Btot, D) eps) s_max). With
 *     Btot < D the Gram is singular by construction: the centroid rows are
 *     gathered instead (Btot D < D^2 doubles) and every rank runs the
 *     single-process SVD on them. The per-sample nuclear norms are local.
 */
#include "dist_geometry.h"
#include "kernels/lapack.h"

#include <float.h>
#include <string.h>

/* ---- MMCR ------------------------------------------------------------------------ */

#define DMC_MAGIC 0x3130434d4d445353ull /* "SSDMMC01" */

static const char *const dmc_names[] = {"K", "D", "lambda", "momentum given",
                                        "dloss"};

/* Cache after the header: Gc (B, D) and Gz (B, Kt, D) floats. */
size_t ss_dist_mmcr_cache_size(int64_t B, int64_t K, int64_t D) {
    if (!ss_mmcr_cache_size(B, K, D)) return 0; /* the size checks */
    return DG_HEADER_BYTES + sizeof(float) * (size_t)(B * D + B * 2 * K * D);
}

/* Btot < D: gather the centroid rows and run the single-process SVD. */
static ss_status dmc_nuclear_gather(const ss_comm *comm, const char *fn,
                                    double *nuc, double *G, const double *c,
                                    const int64_t *counts, int64_t off,
                                    int64_t B, int64_t Btot, int64_t D) {
    size_t gd = (size_t)(Btot * D);
    double *C = ss__malloc(sizeof(double) * (2 * gd + ss__nuclear_work(Btot, D)) +
                           sizeof(int64_t) * (size_t)comm->size);
    SS_TRY(ss__dist_status(comm, fn, ss__dg_nomem(SS_OK, fn, C, "2 Btot D "
                                                  "doubles")));
    double *GC = C + gd, *work = GC + gd;
    int64_t *bytes = (int64_t *)(work + ss__nuclear_work(Btot, D));
    ss_status st = ss__dist_allgather_rows(comm, fn, c, C, counts, D,
                                           sizeof(double), bytes);
    if (st == SS_OK && ss__nuclear(nuc, GC, C, Btot, D, work) != 0)
        st = ss__fail(SS_ERR_PARAM, fn, "the SVD of the centroid matrix "
                      "(%lld x %lld) did not converge", (long long)Btot,
                      (long long)D);
    if (st == SS_OK) memcpy(G, GC + off * D, sizeof(double) * (size_t)(B * D));
    ss__free(C);
    return st;
}

/* Btot >= D: ||C||_* and this rank's rows of U V^T from the all-reduced
 * C^T C = V diag(s^2) V^T (an SVD of a symmetric PSD matrix is its
 * eigendecomposition): G = c V_r diag(1/s) V_r^T. */
static ss_status dmc_nuclear_gram(const ss_comm *comm, const char *fn,
                                  double *nuc, double *G, const double *c,
                                  int64_t B, int64_t Btot, int64_t D) {
    size_t dd = (size_t)(D * D);
    double *K = ss__malloc(sizeof(double) * (4 * dd + (size_t)D));
    SS_TRY(ss__dist_status(comm, fn, ss__dg_nomem(SS_OK, fn, K, "4 D^2 "
                                                  "doubles")));
    double *U = K + dd, *Vt = U + dd, *Q = Vt + dd, *S = Q + dd;
    ss__dgemm(1, 0, D, D, B, 1.0, c, D, c, D, 0.0, K, D);
    ss_status st = ss__dg_sum(comm, fn, K, (int64_t)dd);
    if (st == SS_OK && ss__dsvd(K, D, D, S, U, Vt) != 0)
        st = ss__fail(SS_ERR_PARAM, fn, "the eigendecomposition of the "
                      "centroids' Gram matrix (%lld x %lld) did not converge",
                      (long long)D, (long long)D);
    if (st == SS_OK) {
        double tol = S[0] * (double)(Btot > D ? Btot : D) * DBL_EPSILON;
        int64_t rank = 0;
        *nuc = 0.0;
        for (int64_t i = 0; i < D && S[i] > tol; i++) /* descending */
            *nuc += sqrt(S[i]), rank = i + 1;
        for (int64_t i = 0; i < rank; i++) { /* U <- diag(1/s) V_r^T */
            double is = 1.0 / sqrt(S[i]);
            for (int64_t d = 0; d < D; d++) U[i * D + d] = Vt[i * D + d] * is;
        }
        memset(Q, 0, sizeof(double) * dd);
        if (rank > 0) { /* Q = V_r diag(1/s) V_r^T, then G = c Q */
            ss__dgemm(1, 0, D, D, rank, 1.0, Vt, D, U, D, 0.0, Q, D);
            ss__dgemm(0, 0, B, D, D, 1.0, c, D, Q, D, 0.0, G, D);
        } else {
            memset(G, 0, sizeof(double) * (size_t)(B * D));
        }
    }
    ss__free(K);
    return st;
}

ss_status ss_dist_mmcr_forward(float *loss, void *cache, const float *online,
                               const float *momentum, int64_t B, int64_t K,
                               int64_t D, const ss_mmcr_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_mmcr_forward";
    SS_TRY(ss_comm_check(comm));
    ss_mmcr_opts o = opts ? *opts : ss_mmcr_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__mmcr_check(fn, online, momentum, B, K, D, &o);
    double vals[4] = {(double)K, (double)D, o.lambda, momentum != NULL};
    int64_t off, Btot, *counts = NULL;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dmc_names, 4, B, 1, "samples",
                        &counts, &off, &Btot));
    int64_t Kt = momentum ? 2 * K : K;
    size_t nc = (size_t)(B * D);
    double *c = ss__malloc(sizeof(double) * 2 * nc), *G = c ? c + nc : NULL;
    st = ss__dist_status(comm, fn, ss__dg_nomem(SS_OK, fn, c, "2 B D doubles"));
    double nuc_c = 0.0, nuc_z = 0.0;
    float *Gc = ss__dg_payload(cache), *Gz = Gc + nc;
    if (st == SS_OK) {
        ss__mmcr_centroids(c, online, momentum, B, K, Kt, D);
        st = Btot < D ? dmc_nuclear_gather(comm, fn, &nuc_c, G, c, counts, off,
                                           B, Btot, D)
                      : dmc_nuclear_gram(comm, fn, &nuc_c, G, c, B, Btot, D);
        st = ss__dist_status(comm, fn, st);
    }
    if (st == SS_OK) {
        st = ss__mmcr_views(fn, &nuc_z, Gz, online, momentum, B, K, Kt, D);
        st = ss__dist_status(comm, fn, st);
    }
    if (st == SS_OK) st = ss__dg_sum(comm, fn, &nuc_z, 1);
    if (st == SS_OK) {
        for (size_t i = 0; i < nc; i++) Gc[i] = (float)G[i];
        float p[4] = {o.lambda, (float)K, 0.0f, 0.0f};
        ss__dg_header_set(cache, DMC_MAGIC, Kt, B, D, Btot, p);
        *loss = (float)(-nuc_c + (double)o.lambda * nuc_z / (double)Btot);
    }
    ss__free(c), ss__free(counts);
    return st;
}

ss_status ss_dist_mmcr_backward(float *donline, float *dmomentum, float dloss,
                                const void *cache, const float *online,
                                const float *momentum, int64_t B, int64_t K,
                                int64_t D, const ss_mmcr_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_mmcr_backward";
    SS_TRY(ss_comm_check(comm));
    ss_mmcr_opts o = opts ? *opts : ss_mmcr_defaults();
    ss_status st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = ss__mmcr_check(fn, online, momentum, B, K, D, &o);
    if (st == SS_OK && dmomentum && !momentum)
        st = ss__fail(SS_ERR_NULL, fn, "dmomentum is given but momentum is "
                      "NULL");
    int64_t Kt = momentum ? 2 * K : K;
    float p[4] = {o.lambda, (float)K, 0.0f, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DMC_MAGIC, Kt, B, D, p);
    double vals[5] = {(double)K, (double)D, o.lambda, momentum != NULL,
                      ss__dg_dloss_val(dloss)};
    int64_t off, Btot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dmc_names, 5, B, 1, "samples",
                        NULL, &off, &Btot));
    SS_TRY(ss__dist_status(comm, fn, ss__dg_ntot_check(fn, cache, Btot)));
    const float *Gc = ss__dg_payload(cache), *Gz = Gc + B * D;
    double dl = (double)dloss * comm->size; /* coding_rate.c's, B -> Btot */
    ss__mmcr_apply(donline, dmomentum, Gc, Gz, B, K, Kt, D, -dl / (double)Kt,
                   dl * o.lambda / (double)Btot);
    return SS_OK;
}

/* ---- EMP-SSL: total coding rate + invariance ------------------------------------ */

#define DTR_MAGIC 0x3130525444445353ull /* "SSDDTR01" */

static const char *const dtr_names[] = {"V", "D", "tcr_eps", "inv_coef",
                                        "dloss"};

/* Cache after the header: the coding-rate gradient rows (V, N, D). */
size_t ss_dist_empssl_cache_size(int64_t V, int64_t N, int64_t D) {
    if (!ss_empssl_cache_size(V, N, D)) return 0; /* the size checks */
    return DG_HEADER_BYTES + sizeof(float) * (size_t)(V * N * D);
}

/* ss_empssl's checks plus the V D^2 doubles of the reduced Grams. */
static ss_status dtr_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_empssl_opts *o) {
    SS_TRY(ss__empssl_check(fn, z, V, N, D, o));
    return ss__check_product(fn, V, D, D);
}

/* Per view: R_v from the reduced Gram K (D, D, destroyed) and
 * Gout = -(1/V) a Z_r (I + a K)^{-1}. Zd: (N, D) scratch. Returns 0 or
 * the failing pivot. */
static int64_t dtr_view(double *R, float *Gout, double *K, double *Zd,
                        const float *z, int64_t V, int64_t N, int64_t D,
                        double a) {
    for (int64_t k = 0; k < D * D; k++) K[k] *= a;
    for (int64_t i = 0; i < N * D; i++) Zd[i] = a * z[i];
    int64_t info = ss__tcr_solve(R, Zd, K, N, D, 0);
    if (info) return info;
    for (int64_t i = 0; i < N * D; i++) Gout[i] = (float)(-Zd[i] / (double)V);
    return 0;
}

ss_status ss_dist_empssl_forward(float *loss, float *rates, void *cache,
                                 const float *z, int64_t V, int64_t N,
                                 int64_t D, const ss_empssl_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_empssl_forward";
    SS_TRY(ss_comm_check(comm));
    ss_empssl_opts o = opts ? *opts : ss_empssl_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dtr_check(fn, z, V, N, D, &o);
    double vals[4] = {(double)V, (double)D, o.tcr_eps, o.inv_coef};
    int64_t off, Ntot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dtr_names, 4, N, 1, NULL, NULL,
                        &off, &Ntot));
    size_t dd = (size_t)(D * D), nd = (size_t)(N * D);
    double *K = ss__malloc(sizeof(double) * ((size_t)V * dd + nd + 2 * (size_t)D +
                                             (size_t)V + 1));
    SS_TRY(ss__dist_status(comm, fn, ss__dg_nomem(SS_OK, fn, K, "V D^2 + N D "
                                                  "doubles")));
    double *Zd = K + V * dd, *w = Zd + nd, *red = w + 2 * D; /* red: V + 1 */
    for (int64_t v = 0; v < V; v++) { /* local Z_v^T Z_v, in double */
        for (size_t i = 0; i < nd; i++) Zd[i] = z[v * nd + i];
        ss__dgemm(1, 0, D, D, N, 1.0, Zd, D, Zd, D, 0.0, K + v * dd, D);
    }
    st = ss__dg_sum(comm, fn, K, V * (int64_t)dd);
    double a = (double)D / ((double)Ntot * o.tcr_eps), rsum = 0.0;
    float *Gout = ss__dg_payload(cache);
    if (st == SS_OK) {
        ss_status fs = SS_OK;
        for (int64_t v = 0; fs == SS_OK && v < V; v++) { /* every rank alike */
            int64_t info = dtr_view(red + v, Gout + v * nd, K + v * dd, Zd,
                                    z + v * nd, V, N, D, a);
            if (info) /* I + a Z^T Z >= I is SPD: only overflow gets here */
                fs = ss__fail(SS_ERR_PARAM, fn, "the coding-rate matrix of "
                              "view %lld is not positive definite at pivot "
                              "%lld (overflow?)", (long long)v,
                              (long long)info);
            else rsum += red[v];
        }
        st = ss__dist_status(comm, fn, fs);
    }
    double inv = 0.0; /* the local sum of -cos, reduced */
    if (st == SS_OK && o.inv_coef != 0.0f)
        inv = ss__empssl_invariance(z, V, N, D, NULL, 0.0, w) * (double)(V * N);
    if (st == SS_OK) st = ss__dg_sum(comm, fn, &inv, 1);
    if (st == SS_OK) {
        float p[4] = {o.tcr_eps, o.inv_coef, 0.0f, 0.0f};
        ss__dg_header_set(cache, DTR_MAGIC, V, N, D, Ntot, p);
        if (rates)
            for (int64_t v = 0; v < V; v++) rates[v] = (float)red[v];
        *loss = (float)(-rsum / (double)V +
                        (double)o.inv_coef * inv / ((double)V * Ntot));
    }
    ss__free(K);
    return st;
}

ss_status ss_dist_empssl_backward(float *dz, float dloss, const void *cache,
                                  const float *z, int64_t V, int64_t N,
                                  int64_t D, const ss_empssl_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_empssl_backward";
    SS_TRY(ss_comm_check(comm));
    ss_empssl_opts o = opts ? *opts : ss_empssl_defaults();
    ss_status st = ss__check_ptr(fn, "dz", dz);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = dtr_check(fn, z, V, N, D, &o);
    float p[4] = {o.tcr_eps, o.inv_coef, 0.0f, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DTR_MAGIC, V, N, D, p);
    double vals[5] = {(double)V, (double)D, o.tcr_eps, o.inv_coef,
                      ss__dg_dloss_val(dloss)};
    int64_t off, Ntot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dtr_names, 5, N, 1, NULL, NULL,
                        &off, &Ntot));
    st = ss__dg_ntot_check(fn, cache, Ntot);
    double *w = ss__malloc(sizeof(double) * 2 * (size_t)D);
    st = ss__dist_status(comm, fn, ss__dg_nomem(st, fn, w, "2 D doubles"));
    if (st != SS_OK) {
        ss__free(w);
        return st;
    }
    const float *G = ss__dg_payload(cache);
    double dl = (double)dloss * comm->size;
    for (int64_t i = 0; i < V * N * D; i++) dz[i] += (float)(dl * G[i]);
    if (o.inv_coef != 0.0f)
        ss__empssl_invariance(z, V, N, D, dz, dl * o.inv_coef / ((double)V * Ntot),
                              w);
    ss__free(w);
    return SS_OK;
}
