/* direct_cross.c - untiled double-precision references (see the header). */
#include "direct_cross.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double *dc_to_double(const float *x, int64_t n) {
    double *y = ss_test_alloc_d(n);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}

/* y = x / max(||x||, eps) per row; inv: (M) the factor. */
static double *norm_rows(const double *x, int64_t M, int64_t D, int cosine,
                         double *inv) {
    double *y = ss_test_alloc_d(M * D);
    for (int64_t i = 0; i < M; i++) {
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++)
            ss += x[i * D + d] * x[i * D + d];
        double nrm = sqrt(ss);
        inv[i] = cosine ? 1.0 / (nrm > 1e-12 ? nrm : 1e-12) : 1.0;
        for (int64_t d = 0; d < D; d++)
            y[i * D + d] = x[i * D + d] * inv[i];
    }
    return y;
}

/* dx = J^T dy for y = normalize(x) (identity when !cosine). */
static void norm_back(double *dx, const double *dy, const double *y,
                      const double *inv, const double *x, int64_t M, int64_t D,
                      int cosine) {
    for (int64_t i = 0; i < M; i++) {
        double ss = 0.0, dot = 0.0;
        for (int64_t d = 0; d < D; d++) {
            ss += x[i * D + d] * x[i * D + d];
            dot += y[i * D + d] * dy[i * D + d];
        }
        int lin = !cosine || sqrt(ss) <= 1e-12;
        for (int64_t d = 0; d < D; d++)
            dx[i * D + d] = lin ? dy[i * D + d] * inv[i]
                                : inv[i] * (dy[i * D + d] - y[i * D + d] * dot);
    }
}

static double dot(const double *x, const double *y, int64_t D) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++)
        s += x[d] * y[d];
    return s;
}

static double lse(const double *x, int64_t n, int64_t stride) {
    double m = -INFINITY, s = 0.0;
    for (int64_t j = 0; j < n; j++)
        m = fmax(m, x[j * stride]);
    for (int64_t j = 0; j < n; j++)
        s += exp(x[j * stride] - m);
    return m + log(s);
}

double dc_moco(const double *q, const double *k, const double *queue, int64_t N,
               int64_t K, int64_t D, double temperature, int cosine,
               double *losses, double *dq, double *dk) {
    double *iq = ss_test_alloc_d(N), *ik = ss_test_alloc_d(N);
    double *iu = ss_test_alloc_d(K);
    double *qn = norm_rows(q, N, D, cosine, iq),
           *kn = norm_rows(k, N, D, cosine, ik);
    double *un = norm_rows(queue, K, D, cosine, iu);
    double *l = ss_test_alloc_d(K + 1), *gq = ss_test_alloc_d(N * D);
    double *gk = ss_test_alloc_d(N * D), total = 0.0;
    for (int64_t i = 0; i < N; i++) {
        l[0] = dot(qn + i * D, kn + i * D, D) / temperature;
        for (int64_t j = 0; j < K; j++)
            l[j + 1] = dot(qn + i * D, un + j * D, D) / temperature;
        double z = lse(l, K + 1, 1), li = z - l[0];
        if (losses) losses[i] = li;
        total += li / (double)N;
        for (int64_t j = 0; j <= K; j++) { /* dl_j = (P_j - [j == 0]) / N */
            double g = (exp(l[j] - z) - (j == 0)) / (double)N / temperature;
            const double *other = j == 0 ? kn + i * D : un + (j - 1) * D;
            for (int64_t d = 0; d < D; d++)
                gq[i * D + d] += g * other[d];
            if (j == 0)
                for (int64_t d = 0; d < D; d++)
                    gk[i * D + d] += g * qn[i * D + d];
        }
    }
    if (dq) norm_back(dq, gq, qn, iq, q, N, D, cosine);
    if (dk) norm_back(dk, gk, kn, ik, k, N, D, cosine);
    free(iq), free(ik), free(iu), free(qn), free(kn), free(un), free(l);
    free(gq), free(gk);
    return total;
}

double dc_clip(const double *a, const double *b, double log_scale, int64_t N,
               int64_t D, int cosine, double *losses, double *da, double *db,
               double *dlog_scale) {
    double *ia = ss_test_alloc_d(N), *ib = ss_test_alloc_d(N);
    double *an = norm_rows(a, N, D, cosine, ia),
           *bn = norm_rows(b, N, D, cosine, ib);
    double s = exp(log_scale), *S = ss_test_alloc_d(N * N);
    double *rl = ss_test_alloc_d(N), *cl = ss_test_alloc_d(N), total = 0.0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            S[i * N + j] = s * dot(an + i * D, bn + j * D, D);
    for (int64_t i = 0; i < N; i++)
        rl[i] = lse(S + i * N, N, 1), cl[i] = lse(S + i, N, N);
    for (int64_t i = 0; i < N; i++) {
        double li = 0.5 * ((rl[i] - S[i * N + i]) + (cl[i] - S[i * N + i]));
        if (losses) losses[i] = li;
        total += li / (double)N;
    }
    double *ga = ss_test_alloc_d(N * D), *gb = ss_test_alloc_d(N * D), gt = 0.0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
            double x = S[i * N + j];
            double g = (exp(x - rl[i]) + exp(x - cl[j])) / (2.0 * N) -
                       (i == j) / (double)N;
            gt += g * x;
            for (int64_t d = 0; d < D; d++) {
                ga[i * D + d] += g * s * bn[j * D + d];
                gb[j * D + d] += g * s * an[i * D + d];
            }
        }
    if (da) norm_back(da, ga, an, ia, a, N, D, cosine);
    if (db) norm_back(db, gb, bn, ib, b, N, D, cosine);
    if (dlog_scale) *dlog_scale = gt;
    free(ia), free(ib), free(an), free(bn), free(S), free(rl), free(cl);
    free(ga), free(gb);
    return total;
}

/* -log sigmoid(z) = softplus(-z), stable. */
static double nls(double z) { return fmax(-z, 0.0) + log1p(exp(-fabs(z))); }

double dc_siglip(const double *a, const double *b, double log_t, double bias,
                 int64_t N, int64_t D, int cosine, double *losses, double *da,
                 double *db, double *dlog_t, double *dbias) {
    double *ia = ss_test_alloc_d(N), *ib = ss_test_alloc_d(N);
    double *an = norm_rows(a, N, D, cosine, ia),
           *bn = norm_rows(b, N, D, cosine, ib);
    double s = exp(log_t), total = 0.0, gt = 0.0, gbias = 0.0;
    double *ga = ss_test_alloc_d(N * D), *gb = ss_test_alloc_d(N * D);
    for (int64_t i = 0; i < N; i++) {
        double row = 0.0;
        for (int64_t j = 0; j < N; j++) {
            double t = s * dot(an + i * D, bn + j * D, D), x = t + bias;
            double y = i == j ? 1.0 : -1.0;
            row += nls(y * x);
            /* d/dx -log sigmoid(y x) = -y sigmoid(-y x) */
            double g = -y / (1.0 + exp(y * x)) / (double)N;
            gt += g * t;
            gbias += g;
            for (int64_t d = 0; d < D; d++) {
                ga[i * D + d] += g * s * bn[j * D + d];
                gb[j * D + d] += g * s * an[i * D + d];
            }
        }
        if (losses) losses[i] = row;
        total += row / (double)N;
    }
    if (da) norm_back(da, ga, an, ia, a, N, D, cosine);
    if (db) norm_back(db, gb, bn, ib, b, N, D, cosine);
    if (dlog_t) *dlog_t = gt;
    if (dbias) *dbias = gbias;
    free(ia), free(ib), free(an), free(bn), free(ga), free(gb);
    return total;
}

double dc_err(const float *got, const double *want, int64_t n, double floor) {
    double num = 0.0, den = floor;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= num)) num = e;
        den = fmax(den, fabs(want[i]));
    }
    return num / den;
}

int dc_accumulated(const float *after, const float *pre, const float *g,
                   int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double want = (double)pre[i] + g[i];
        double tol = 1e-6 * (fabs(pre[i]) + fabs(g[i])) + 1e-30;
        if (!(fabs(after[i] - want) <= tol)) {
            fprintf(stderr, "  [%lld]: %.9g != %.9g + %.9g\n", (long long)i,
                    after[i], pre[i], g[i]);
            return 0;
        }
    }
    return 1;
}
