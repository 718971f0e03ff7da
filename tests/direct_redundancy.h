/*
 * direct_redundancy.h - direct double-precision references for negative
 * cosine similarity, Barlow Twins and VICReg: they form the full D x D
 * matrices and differentiate them plainly (no Gram identity). For small
 * tests only.
 *
 * Each returns the loss and writes the gradients for dloss = 1 (pointers
 * may be NULL; written, not accumulated).
 */
#ifndef SS_TEST_DIRECT_REDUNDANCY_H
#define SS_TEST_DIRECT_REDUNDANCY_H

#include <stdint.h>

/* -mean_n cos(p_n, z_n), norms clamped at eps; dp, dz: (N, D). */
double dr_negcos(const double *p, const double *z, int64_t N, int64_t D,
                 double eps, double *losses, double *dp, double *dz);

/* lightly BarlowTwinsLoss with batch_norm(eps) per view; terms: (2) or NULL. */
double dr_barlow(const double *a, const double *b, int64_t N, int64_t D,
                 double lambda, double eps, double *terms, double *da,
                 double *db);

/* lightly VICRegLoss; terms: (3) [inv, var, cov] or NULL. */
double dr_vicreg(const double *a, const double *b, int64_t N, int64_t D,
                 double lambda, double mu, double nu, double eps,
                 double *terms, double *da, double *db);

#endif
