/*
 * direct_geometry.h - plain double-precision references for the geometry
 * losses (TiCo, W-MSE, alignment/uniformity, KoLeo, MMCR, EMP-SSL), used
 * by the tests as ground truth for the library's float32 code and checked
 * themselves with finite differences. Naive loops, explicit matrices
 * (O(N^2) or O(D^2) memory): keep sizes small. Formulas: selfsup.h.
 *
 * Every function returns the loss; gradient outputs (NULL to skip) are
 * written, not accumulated.
 */
#ifndef SS_TEST_DIRECT_GEOMETRY_H
#define SS_TEST_DIRECT_GEOMETRY_H

#include <stdint.h>

/* C0, C_new: (D, D) (C_new may be NULL). losses: (N). */
double ss_direct_tico(const double *za, const double *zb, const double *C0,
                      int64_t N, int64_t D, double beta, double rho,
                      double *losses, double *dza, double *dzb, double *C_new);

/* perm: (iters, N) or NULL. Returns NAN when a covariance is not SPD. */
double ss_direct_wmse(const double *z, const int64_t *perm, int64_t V,
                      int64_t N, int64_t D, int64_t w, int64_t iters,
                      double eps, double *dz);

double ss_direct_hypersphere(const double *za, const double *zb, int64_t N,
                             int64_t D, double t, double lam, double alpha,
                             double *dza, double *dzb);

/* nn: (N) neighbours, losses: (N), either may be NULL. */
double ss_direct_koleo(const double *x, int64_t N, int64_t D, double eps,
                       double *losses, int64_t *nn, double *dx);

/* momentum may be NULL (then dmomentum is ignored). */
double ss_direct_mmcr(const double *online, const double *momentum, int64_t B,
                      int64_t K, int64_t D, double lambda, double *donline,
                      double *dmomentum);

/* rates: (V) or NULL. */
double ss_direct_empssl(const double *z, int64_t V, int64_t N, int64_t D,
                        double eps, double inv_coef, double *rates,
                        double *dz);

#endif
