/*
 * sinkhorn.h - log-domain Sinkhorn-Knopp with dual vectors (SwAV, MSN).
 *
 * The plan is never exponentiated as a matrix: with A_rk the log-kernel
 * (rows r = samples, columns k = prototypes) the iterate is kept as
 *     log Q_rk = A_rk + u_k + v_r
 * and each normalisation is a log-sum-exp over a row or a column of
 * A + u + v. This is lightly's / SwAV's algorithm exactly (same iterates),
 * but finite for any epsilon: A = x / epsilon stays a finite double.
 *
 * lightly's variant, R rows, K columns, `iters` rounds:
 *     Q = exp(A) / sum(exp(A))
 *     repeat: Q[:, k] /= sum_r Q[r, k] K;  Q[r, :] /= sum_k Q[r, k] R
 *     Q *= R                                   (rows then sum to 1)
 * In duals: u_k = -log K - LSE_r(A_rk + v_r); v_r = -log R - LSE_k(A_rk +
 * u_k); finally v += log R. With iters = 0 only the global normalisation
 * and the final scaling remain.
 */
#ifndef SS_KERNELS_SINKHORN_H
#define SS_KERNELS_SINKHORN_H

#include <stdint.h>

/* Below this much work (elements) the kernel runs on one thread. */
#ifndef SS__PAR_MIN
#define SS__PAR_MIN 16384
#endif

/* The log-kernel A_rk = scale * x_rk + off_r over R = rows[0] + rows[1]
 * rows: block 0 then block 1 (each row-major with K columns; block 1 may
 * have 0 rows and x[1] NULL). off: (R) per-row offsets or NULL (zeros). */
typedef struct {
    const float *x[2];
    int64_t rows[2];
    const double *off;
    double scale;
    int64_t K;
} ss__sk_kernel;

/* Runs iters >= 0 rounds; writes u: (K) and v: (R) so that the final plan
 * is exp(A_rk + u_k + v_r). ws: 2 * K doubles. Threads: ss__threads();
 * the result does not depend on the thread count (fixed reduction order). */
void ss__sinkhorn_log(const ss__sk_kernel *kern, int64_t iters, double *u,
                      double *v, double *ws);

/* Rows split over ranks (the distributed SwAV / MSN): each rank holds some
 * rows of the kernel, and every reduction over rows (the global LSE, the
 * column LSEs) is completed across the ranks by these callbacks, each
 * reducing n doubles in place and returning 0 on success (nonzero: the
 * callback has set the error message). agree (may be NULL) agrees on a
 * local status (0 ok) before the first collective of a loss; it returns
 * the agreed status. rows_total: the number of rows on all ranks. */
typedef struct {
    void *ctx;
    int (*sum)(void *ctx, double *buf, int64_t n);
    int (*max)(void *ctx, double *buf, int64_t n);
    int (*agree)(void *ctx, int status);
    int64_t rows_total;
} ss__sk_reduce;

/* ss__sinkhorn_log on this rank's rows, with the row reductions completed
 * through red (NULL: one process, then equal to ss__sinkhorn_log). u: (K),
 * equal on every rank; v: this rank's rows. Returns 0, or nonzero when a
 * callback failed. */
int ss__sinkhorn_log_red(const ss__sk_kernel *kern, int64_t iters, double *u,
                         double *v, double *ws, const ss__sk_reduce *red);

/* A_rk for row r (0 <= r < R), column k. */
static inline double ss__sk_logit(const ss__sk_kernel *kern, int64_t r,
                                  int64_t k) {
    const float *x = r < kern->rows[0] ? kern->x[0] + r * kern->K
                                       : kern->x[1] + (r - kern->rows[0]) * kern->K;
    return kern->scale * (double)x[k] + (kern->off ? kern->off[r] : 0.0);
}

#endif
