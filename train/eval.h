/*
 * eval.h - what an encoder learned, measured on frozen features
 * (internal to `selfsup train` / `selfsup eval`).
 *
 *  - linear probe: multinomial logistic regression (softmax + bias) on
 *    standardised features, fitted by L-BFGS on the training set with an L2
 *    penalty; reports test accuracy. Full-batch, so deterministic.
 *  - kNN: k nearest training features by cosine similarity, votes weighted
 *    exp(sim / T) (InstDisc / solo-learn, k = 200, T = 0.07). Tiled: memory
 *    O(tile * (chunk + k)) per thread, never Ntrain x Ntest.
 *  - embedding health: per-dimension std of the L2-normalised embeddings and
 *    the effective rank (Roy & Vetterli 2007), plus a collapse detector.
 *
 * Features: (N, D) float32 row-major. Labels: (N) uint8 in [0, C).
 * Results do not depend on the thread count (fixed blocks, fixed reduction
 * order).
 */
#ifndef SST_EVAL_H
#define SST_EVAL_H

#include "selfsup.h"

#include <stdint.h>

typedef struct {
    float l2;      /* penalty (l2 / 2) ||W||^2 on the mean loss; bias free */
    int max_iter;  /* L-BFGS iterations */
    int history;   /* L-BFGS memory m */
    double tol;    /* stop when ||grad||_inf < tol */
} sst_probe_opts;

/* l2 1e-4, 200 iterations, history 10, tol 1e-5. 200 iterations fit the
 * probe to convergence on 128-d features: on the 6-epoch SimCLR encoder,
 * 60 iterations gave 86.75 %, 200 gave 87.20 %, 500 gave 87.17 % (l2 1e-5:
 * 87.23 %, l2 1e-3: 86.66 %); raw pixels 84.26 / 83.94 / 84.02 %. */
sst_probe_opts sst_probe_defaults(void);

/* Fits the probe on (xtr, ytr), writes the test accuracy (fraction in
 * [0, 1]) to *test_acc and, when not NULL, the training accuracy and the
 * final training objective (mean cross-entropy + L2 term). xtr: (ntr, D),
 * xte: (nte, D); C classes. Standardisation uses the training mean and
 * std only. Workspace: a standardised copy of both sets plus
 * O(ntr / 512 * C * D) floats of per-block gradients.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (opts), SS_ERR_LABEL
 * (a label >= C, naming its index), SS_ERR_NONFINITE, SS_ERR_NOMEM. */
ss_status sst_linear_probe(double *test_acc, double *train_acc,
                           double *train_loss, const float *xtr,
                           const uint8_t *ytr, int64_t ntr, const float *xte,
                           const uint8_t *yte, int64_t nte, int64_t D, int C,
                           const sst_probe_opts *opts);

#define SST_KNN_K 200
#define SST_KNN_T 0.07f
/* kNN accuracy (fraction) of the test set against the training set.
 * k is clipped to ntr. Ties in the vote go to the smaller class.
 * Errors: as the probe, SS_ERR_PARAM for k < 1 or T not > 0. */
ss_status sst_knn_accuracy(double *acc, const float *xtr, const uint8_t *ytr,
                           int64_t ntr, const float *xte, const uint8_t *yte,
                           int64_t nte, int64_t D, int C, int64_t k, float T);

typedef struct {
    double mean_std;  /* mean over dims of the std of normalised embeddings */
    double ref_std;   /* 1 / sqrt(D): the std of isotropic unit vectors */
    double std_ratio; /* mean_std / ref_std: ~1 healthy, -> 0 collapsed */
    double eff_rank;  /* exp(entropy of normalised singular values), 1..D */
} sst_health;

/* Health of z: (N, D), N >= 2. The effective rank uses the singular values
 * of the centred embeddings, sqrt of the eigenvalues of their covariance
 * (LAPACK dsyevd when built with OpenBLAS, else Jacobi in double);
 * eigenvalues below 1e-6 of the largest count as zero (float32 round-off).
 * eff_rank is 0 when the centred embeddings are all zero.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NONFINITE, SS_ERR_NOMEM. */
ss_status sst_embedding_health(sst_health *out, const float *z, int64_t N,
                               int64_t D);

#define SST_COLLAPSE_STD_RATIO 0.1
#define SST_COLLAPSE_RANK 2.0
/* *collapsed = 1 when std_ratio < SST_COLLAPSE_STD_RATIO, or when D >= 4 and
 * eff_rank < SST_COLLAPSE_RANK; else 0. health (may be NULL) receives the
 * measures. Meant to be called on a batch of embeddings during training.
 * Errors: as sst_embedding_health. */
ss_status sst_collapse_check(int *collapsed, sst_health *health,
                             const float *z, int64_t N, int64_t D);

/* Eigenvalues (ascending) and, when vecs != NULL, eigenvectors (rows of
 * vecs, (D, D), vecs[i * D + j] = component j of vector i) of the symmetric
 * (D, D) matrix a (destroyed). Errors: SS_ERR_NOMEM, SS_ERR_PARAM when
 * LAPACK fails. */
ss_status sst_sym_eig(double *vals, double *vecs, double *a, int64_t D);

/* The portable path of sst_sym_eig (cyclic Jacobi, O(D^3) per sweep), used
 * without LAPACK; exposed so that tests cover it in every build. */
void sst_sym_eig_jacobi(double *vals, double *vecs, double *a, int64_t D);

/* The top-2 principal components of z: (N, D), N >= 2: out (N, 2) written
 * with the projections of the centred rows. Errors: as health. */
ss_status sst_pca2(float *out, const float *z, int64_t N, int64_t D);

#endif
