/*
 * direct_contrast.h - plain double-precision reference for the group
 * contrastive losses (NT-Xent, SupCon, DCL/DCLW, HCL / debiased), used by
 * the tests as the ground truth of the tiled float32 code and checked
 * itself with finite differences. O(M^2) memory: keep M small.
 *
 * Rows z: (M, D). Positives of anchor i: P(i) = {k != i : group[k] ==
 * group[i]}; anchors with P(i) empty have loss 0 and are left out of the
 * mean. s_ik = <x_i, x_k> / temperature, x = z normalised when cosine.
 *
 * Plain form (hcl == 0):
 *     den(i)  = {k != i}, minus P(i) when exclude_pos
 *     loss_i  = LSE_{den(i)} s_ik - (w_i / |P(i)|) sum_{p in P(i)} s_ip
 *   with w_i = pos_weight[i] (a constant) or 1. An empty den(i) contributes
 *   0 instead of -inf.
 * HCL form (hcl == 1, selfsup.h NT-Xent options): Q(i) = rows outside
 *   {i} u P(i), Nq = |Q(i)|,
 *     neg     = Nq sum_q e^{(1+beta) s_iq} / sum_q e^{beta s_iq}
 *     Ng      = max((neg - tau_plus Nq e^{s_ip}) / (1 - tau_plus),
 *                   Nq e^{-1/temperature})
 *     loss_i  = mean_p log(1 + Ng e^{-s_ip})   (0 when Nq == 0)
 */
#ifndef SS_TEST_DIRECT_CONTRAST_H
#define SS_TEST_DIRECT_CONTRAST_H

#include <stdint.h>

typedef struct {
    int64_t M, D;
    const int64_t *group;     /* (M) */
    double temperature;
    int cosine;
    int exclude_pos;          /* plain form: den skips the positives (DCL) */
    const double *pos_weight; /* (M) or NULL: constant weights w_i (DCLW) */
    int hcl;                  /* 1: HCL / debiased form */
    double beta, tau_plus;
} ss_direct_gc;

/* Returns the loss: mean of loss_i over anchors with a positive (0 when
 * none). losses: (M) or NULL, written. dz: (M, D) or NULL, written (not
 * accumulated) with d loss / d z. */
double ss_direct_gc_loss(const double *z, const ss_direct_gc *p,
                         double *losses, double *dz);

/* Group ids of stacked views: row v * N + n gets n. g: (V * N). */
void ss_direct_view_groups(int64_t *g, int64_t V, int64_t N);

#endif
