/*
 * direct_predictive.h - plain double-precision references for the
 * predictive family (masked CE, linear + CE, reconstruction, MAE), the
 * ground truth of the float32 library code, checked themselves with finite
 * differences and against the PyTorch fixtures. Materialises everything:
 * keep sizes small. Gradient outputs are written (not accumulated) and may
 * be NULL.
 */
#ifndef SS_TEST_DIRECT_PREDICTIVE_H
#define SS_TEST_DIRECT_PREDICTIVE_H

#include <stdint.h>

/* Masked CE over logits x (T, V), selfsup.h formula. w: (V) or NULL.
 * Returns the loss (0 when W = 0). losses: (T). dx: (T, V). */
double ss_direct_ce(const double *x, const int64_t *y, int64_t T, int64_t V,
                    double eps, const double *w, int64_t ignore,
                    double *losses, double *dx);
/* CE of logits = h w^T + b (b may be NULL), class weights cw (V) or NULL.
 * dh (T, H), dw (V, H), db (V). */
double ss_direct_linear_ce(const double *h, const double *w, const double *b,
                           const int64_t *y, int64_t T, int64_t H, int64_t V,
                           double eps, const double *cw, int64_t ignore,
                           double *losses,
                           double *dh, double *dw, double *db);
/* Reconstruction: kind / reduction as ss_recon_kind / ss_reduction. Returns
 * the reduced loss, or for NONE sum_i l_i up_i. mask: (n) or NULL. dx, dy:
 * gradients of the returned value. */
double ss_direct_recon(int kind, int reduction, double beta, const double *x,
                       const double *y, const uint8_t *mask, const double *up,
                       int64_t n, double *dx, double *dy);
/* MAE loss on pred (B, L, P) against imgs (B, C, Hi, Wi). losses: (B, L). */
double ss_direct_mae(const double *pred, const double *imgs,
                     const uint8_t *mask, int64_t B, int64_t C, int64_t Hi,
                     int64_t Wi, int64_t p, int norm_pix, double *losses,
                     double *dpred);

#endif
