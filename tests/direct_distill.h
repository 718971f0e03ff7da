/*
 * direct_distill.h - plain double-precision reference of the distillation
 * losses (DINO, iBOT, SwAV, MSN/PMSN): every matrix materialised, no tiles,
 * no threads. Each returns the loss and, when the gradient pointers are not
 * NULL, writes (=, not +=) the analytic gradient. Finite differences check
 * these gradients; the library is checked against these values.
 */
#ifndef SS_TEST_DIRECT_DISTILL_H
#define SS_TEST_DIRECT_DISTILL_H

#include <stdint.h>

double ss_direct_dino(const double *teacher, const double *student,
                      const double *center, double tt, double ts, int64_t G,
                      int64_t V, int64_t N, int64_t K, double *dstudent);

double ss_direct_ibot(const double *teacher, const double *student,
                      const uint8_t *mask, const double *center, double tt,
                      double ts, int64_t B, int64_t T, int64_t M, int64_t K,
                      double *dstudent);

/* Log-domain Sinkhorn (lightly's variant) of out: (R, K) into q: (R, K). */
void ss_direct_sinkhorn(const double *out, int64_t R, int64_t K,
                        int64_t iters, double eps, double *q);

/* low may be NULL when L = 0, queue when Q = 0; dlow likewise. */
/* codes_from: (H, N, K) scores the codes are computed from (NULL: high);
 * finite differences pass a frozen copy, as the codes are stop-gradient. */
double ss_direct_swav(const double *high, const double *low,
                      const double *queue, const double *codes_from,
                      int64_t H, int64_t L, int64_t N, int64_t Q, int64_t K,
                      double t, int64_t iters, double eps, double *dhigh,
                      double *dlow);

typedef struct {
    double temperature, sharpen, weight, exponent;
    int64_t iters;
    int power_law;
} ss_direct_msn_opts;

double ss_direct_msn(const double *anchors, const double *targets,
                     const double *protos, int64_t V, int64_t N, int64_t K,
                     int64_t D, const ss_direct_msn_opts *o, double *danchors,
                     double *dprotos);



/* ---- small helpers shared by the distill tests ---------------------------- */
#include <stddef.h>
/* Double copy of x: (n) (caller frees). */
double *ss_dd_from_f(const float *x, int64_t n);
/* Normwise max-abs relative error, absolute when want is ~0. */
double ss_dd_err(const float *got, const double *want, int64_t n);
/* Writes a file of n bytes. */
void ss_dd_write_file(const char *path, const void *buf, size_t n);
/* Reads a whole file into a malloc'ed buffer; *n its size. */
void *ss_dd_read_file(const char *path, size_t *n);
#endif
