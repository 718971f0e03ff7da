/*
 * dist_geometry.h - helpers shared by the distributed geometry-family
 * losses (dist_geometry.c: negcos, TiCo; dist_wmse.c; dist_pairwise.c:
 * hypersphere, KoLeo; dist_coding_rate.c: MMCR, EMP-SSL). Not installed.
 *
 * Every entry point follows the same steps: local checks, ONE agreement
 * (ss__dg_agree: status, options, row counts), allocation and its agreed
 * status, then collectives. Caches start with a dg_header.
 */
#ifndef SS_DIST_GEOMETRY_H
#define SS_DIST_GEOMETRY_H

#include "comm_internal.h"

#define DG_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t V, N, D, Ntot; /* V: views (or K, pairs); N: local rows */
    float p[4];            /* the loss options */
} dg_header;

/* The agreement of one call plus the global-size checks: on success
 * *Ntot = sum of the ranks' n (>= min_total, else SS_ERR_SIZE on every
 * rank naming min_what), *off = the rows below this rank, and, when counts
 * is non-NULL, *counts = a new (size) array of the ranks' n (ss__free). */
ss_status ss__dg_agree(const ss_comm *c, const char *fn, ss_status st,
                       const double *vals, const char *const *names, int nv,
                       int64_t n, int64_t min_total, const char *min_what,
                       int64_t **counts, int64_t *off, int64_t *Ntot);

/* Writes the header (after a successful forward). */
void ss__dg_header_set(void *cache, uint64_t magic, int64_t V, int64_t N,
                       int64_t D, int64_t Ntot, const float *p);

/* Local check of a cache against this backward call (SS_ERR_STATE). */
ss_status ss__dg_header_check(const char *fn, const void *cache,
                              uint64_t magic, int64_t V, int64_t N, int64_t D,
                              const float *p);

/* After agreement: the cache's global batch must be this call's. */
ss_status ss__dg_ntot_check(const char *fn, const void *cache, int64_t Ntot);

/* The payload after the header. */
static inline void *ss__dg_payload(const void *cache) {
    return (char *)(uintptr_t)cache + DG_HEADER_BYTES;
}

/* SS_ERR_NOMEM naming what when p is NULL and st is SS_OK; else st. */
ss_status ss__dg_nomem(ss_status st, const char *fn, const void *p,
                       const char *what);

/* In-place sum over ranks of n doubles. */
static inline ss_status ss__dg_sum(const ss_comm *c, const char *fn,
                                   double *buf, int64_t n) {
    return ss__dist_allreduce(c, fn, buf, n, SS_COMM_DOUBLE, SS_COMM_SUM);
}

/* dloss as an agreement value (a non-finite one is a local error first). */
static inline double ss__dg_dloss_val(float dloss) {
    return isfinite(dloss) ? (double)dloss : 0.0;
}

/* Defined in tico.c: the state update (copies C, counts one step), the
 * normalised rows (*buf: a, b (N, D), their scales (N) each; ss__free),
 * the new C and backward factor G from P = a^T a / N, the sum of the
 * per-row losses, and the gradient with scale s (dloss / N there). */
void ss__tico_state_commit(ss_tico_state *s, const float *C);
ss_status ss__tico_normalize(const char *fn, float **buf, const float *za,
                             const float *zb, int64_t N, int64_t D);
void ss__tico_combine(float *C, float *G, const float *P, const float *C0,
                      int64_t D, double beta);
double ss__tico_losses(float *losses, const float *a, const float *b,
                       const float *aC, int64_t N, int64_t D, double rho);
void ss__tico_grad(float *dza, float *dzb, const float *buf, float *g,
                   const float *G, const float *za, const float *zb, int64_t N,
                   int64_t D, double rho, float s);

/* The single-process argument checks (defined in negcos.c, tico.c,
 * hypersphere.c, koleo.c, coding_rate.c), the pairwise ones with N >= min_n
 * (2 single-process, 1 per rank). */
ss_status ss__negcos_check(const char *fn, const float *const *x,
                           const char *const *names, int nx, int64_t N,
                           int64_t D, const ss_negcos_opts *o);
ss_status ss__tico_check(const char *fn, const float *za, const float *zb,
                         int64_t N, int64_t min_n, int64_t D,
                         const ss_tico_opts *o);
ss_status ss__hs_check(const char *fn, const float *za, const float *zb,
                       int64_t N, int64_t min_n, int64_t D,
                       const ss_hypersphere_opts *o);
ss_status ss__koleo_check(const char *fn, const float *x, int64_t N,
                          int64_t min_n, int64_t D, const ss_koleo_opts *o);
ss_status ss__mmcr_check(const char *fn, const float *online,
                         const float *momentum, int64_t B, int64_t K,
                         int64_t D, const ss_mmcr_opts *o);
ss_status ss__empssl_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_empssl_opts *o);

/* Defined in wmse.c: the view-pair cosines of samples (V, N, D) (sum; with
 * dY, zeroed: dY = k * gradient) and one group's Cholesky backward
 * (T = dSigma from Q = dY^T Y, Q overwritten). */
double ss__wmse_cos_pairs(const double *Y, double *dY, int64_t V, int64_t N,
                          int64_t D, double k);
void ss__wmse_sigma_grad(double *T, double *Q, const double *L, int64_t D);
/* Defined in wmse.c: w_size, w_iter (w_iter N <= 2^40), eps, w_size >= 2 D. */
ss_status ss__wmse_check_opts(const char *fn, int64_t N, int64_t D,
                              const ss_wmse_opts *o);

/* Defined in hypersphere.c: the uniformity term's per-row log-sum-exp
 * (rowm + log rows, (rend - rbeg) each) and gradient rows
 * (g += coef sum_j p_ij (x_i - x_j), g: (rend - rbeg, D)) for rows
 * [rbeg, rend) of x (N, D) against all N rows; n2: squared norms (N).
 * Return nonzero when a tile could not be allocated. */
int ss__hs_rows_lse(double *rowm, double *rows, const float *x,
                    const double *n2, int64_t N, int64_t D, double t,
                    int64_t rbeg, int64_t rend);
int ss__hs_rows_grad(float *g, const float *x, const double *n2, int64_t N,
                     int64_t D, double t, double lse, double coef,
                     int64_t rbeg, int64_t rend);

/* Defined in hypersphere.c: n2 (N) = squared norms of x (N, D). */
void ss__hs_sqnorms(double *n2, const float *x, int64_t N, int64_t D);

/* Defined in hypersphere.c: sum_i ||x_i - y_i||^alpha over N rows; with
 * gx, gy: += coef times its gradient. */
double ss__hs_align(const float *x, const float *y, int64_t N, int64_t D,
                    double alpha, float *gx, float *gy, double coef);

/* Defined in koleo.c: u (N, D) = x / max(||x||, eps) in float, inv (N) the
 * scales; and e (D) = u_i - u_j + eps in double, returning ||e||. */
void ss__koleo_normalize(float *u, double *inv, const float *x, int64_t N,
                         int64_t D, double eps);
double ss__koleo_diff(double *e, const float *x, const double *inv, int64_t i,
                      int64_t j, int64_t D, double eps);
/* dx (N, D) += the normalisation backward of gu = dL/du (N, D). */
void ss__koleo_normalize_backward(float *dx, const double *gu, const float *x,
                                  const double *inv, int64_t N, int64_t D,
                                  double eps);

/* Defined in coding_rate.c (MMCR, EMP-SSL pieces): the centroids c (B, D)
 * of the Kt views; the per-sample nuclear norms' sum and factors Gz
 * (B, Kt, D); the backward's scaled add; ||A||_* of A (m, n) (destroyed)
 * with its factor G = U_r V_r^T (work: ss__nuclear_work doubles; nonzero
 * when the SVD failed); the coding rate and its gradient from the scaled
 * Gram M and G = a Z (ss__tcr_solve); EMP-SSL's invariance term -mean cos (with dz:
 * += coef times its gradient; w: 2 D doubles). */
void ss__mmcr_centroids(double *c, const float *online, const float *momentum,
                        int64_t B, int64_t K, int64_t Kt, int64_t D);
ss_status ss__mmcr_views(const char *fn, double *nuc_z, float *Gz,
                         const float *online, const float *momentum,
                         int64_t B, int64_t K, int64_t Kt, int64_t D);
void ss__mmcr_apply(float *donline, float *dmomentum, const float *Gc,
                    const float *Gz, int64_t B, int64_t K, int64_t Kt,
                    int64_t D, double wc, double wz);
size_t ss__nuclear_work(int64_t m, int64_t n);
int ss__nuclear(double *out, double *G, double *A, int64_t m, int64_t n,
                double *work);
int64_t ss__tcr_solve(double *R, double *G, double *M, int64_t N, int64_t D,
                      int gram_n);
double ss__empssl_invariance(const float *z, int64_t V, int64_t N, int64_t D,
                             float *dz, double coef, double *w);

/* Defined in koleo.c: nn (rend - rbeg) = the nearest other row (global
 * index, cosine, lowest index on ties) of rows [rbeg, rend) of u (N, D).
 * Returns nonzero when a tile could not be allocated. */
int ss__koleo_rows_nn(int64_t *nn, const float *u, int64_t N, int64_t D,
                      int64_t rbeg, int64_t rend);

#endif
