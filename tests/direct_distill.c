/* direct_distill.c - double-precision direct references (direct_distill.h). */
#include "direct_distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double lse(const double *x, int64_t n, int64_t stride) {
    double m = -INFINITY, s = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, x[i * stride]);
    for (int64_t i = 0; i < n; i++) s += exp(x[i * stride] - m);
    return m + log(s);
}

/* p = softmax(scale * (x - c)) (c may be NULL). */
static void softmax(double *p, const double *x, const double *c, double scale,
                    int64_t K) {
    for (int64_t k = 0; k < K; k++) p[k] = scale * (x[k] - (c ? c[k] : 0.0));
    double l = lse(p, K, 1);
    for (int64_t k = 0; k < K; k++) p[k] = exp(p[k] - l);
}

/* -<P, log_softmax(z / t)>, gradient (sum P softmax - P) / t * g into dz. */
static double ce(const double *P, const double *z, double t, int64_t K,
                 double g, double *dz) {
    double *s = malloc(sizeof(double) * (size_t)K), mass = 0.0, l = 0.0;
    for (int64_t k = 0; k < K; k++) s[k] = z[k] / t;
    double ls = lse(s, K, 1);
    for (int64_t k = 0; k < K; k++) {
        l -= P[k] * (s[k] - ls); /* log-softmax: no log(0) */
        mass += P[k];
        s[k] = exp(s[k] - ls);
    }
    if (dz)
        for (int64_t k = 0; k < K; k++) dz[k] += g * (mass * s[k] - P[k]) / t;
    free(s);
    return l;
}

double ss_direct_dino(const double *teacher, const double *student,
                      const double *center, double tt, double ts, int64_t G,
                      int64_t V, int64_t N, int64_t K, double *dstudent) {
    int64_t n_terms = G * V - (G < V ? G : V);
    double *P = malloc(sizeof(double) * (size_t)K), loss = 0.0;
    double g = 1.0 / ((double)n_terms * (double)N);
    if (dstudent) memset(dstudent, 0, sizeof(double) * (size_t)(V * N * K));
    for (int64_t t = 0; t < G; t++)
        for (int64_t v = 0; v < V; v++) {
            if (t == v) continue;
            for (int64_t n = 0; n < N; n++) {
                softmax(P, teacher + (t * N + n) * K, center, 1.0 / tt, K);
                loss += g * ce(P, student + (v * N + n) * K, ts, K, g,
                               dstudent ? dstudent + (v * N + n) * K : NULL);
            }
        }
    free(P);
    return loss;
}

double ss_direct_ibot(const double *teacher, const double *student,
                      const uint8_t *mask, const double *center, double tt,
                      double ts, int64_t B, int64_t T, int64_t M, int64_t K,
                      double *dstudent) {
    double *P = malloc(sizeof(double) * (size_t)K), loss = 0.0;
    if (dstudent) memset(dstudent, 0, sizeof(double) * (size_t)(M * K));
    int64_t i = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t m = 0;
        for (int64_t t = 0; t < T; t++) m += mask[b * T + t];
        for (int64_t j = 0; j < m; j++, i++) {
            double w = 1.0 / ((double)m * (double)B);
            softmax(P, teacher + i * K, center, 1.0 / tt, K);
            loss += w * ce(P, student + i * K, ts, K, w,
                           dstudent ? dstudent + i * K : NULL);
        }
    }
    free(P);
    return loss;
}

void ss_direct_sinkhorn(const double *out, int64_t R, int64_t K,
                        int64_t iters, double eps, double *q) {
    for (int64_t i = 0; i < R * K; i++) q[i] = out[i] / eps;
    double g = lse(q, R * K, 1);
    for (int64_t i = 0; i < R * K; i++) q[i] -= g;
    for (int64_t it = 0; it < iters; it++) {
        for (int64_t k = 0; k < K; k++) {
            double l = lse(q + k, R, K) + log((double)K);
            for (int64_t r = 0; r < R; r++) q[r * K + k] -= l;
        }
        for (int64_t r = 0; r < R; r++) {
            double l = lse(q + r * K, K, 1) + log((double)R);
            for (int64_t k = 0; k < K; k++) q[r * K + k] -= l;
        }
    }
    for (int64_t i = 0; i < R * K; i++) q[i] = exp(q[i] + log((double)R));
}

double ss_direct_swav(const double *high, const double *low,
                      const double *queue, const double *codes_from,
                      int64_t H, int64_t L, int64_t N, int64_t Q, int64_t K,
                      double t, int64_t iters, double eps, double *dhigh,
                      double *dlow) {
    if (!codes_from) codes_from = high;
    int64_t R = N + Q;
    double *out = malloc(sizeof(double) * (size_t)(R * K));
    double *q = malloc(sizeof(double) * (size_t)(R * K)), loss = 0.0;
    double g = 1.0 / ((double)N * (double)H * (double)(H + L - 1));
    if (dhigh) memset(dhigh, 0, sizeof(double) * (size_t)(H * N * K));
    if (dlow && L) memset(dlow, 0, sizeof(double) * (size_t)(L * N * K));
    for (int64_t i = 0; i < H; i++) {
        memcpy(out, codes_from + i * N * K, sizeof(double) * (size_t)(N * K));
        if (Q) memcpy(out + N * K, queue + i * Q * K, sizeof(double) * (size_t)(Q * K));
        ss_direct_sinkhorn(out, R, K, iters, eps, q);
        for (int64_t w = 0; w < H + L; w++) {
            if (w == i) continue;
            const double *z = w < H ? high + w * N * K : low + (w - H) * N * K;
            double *dz = w < H ? (dhigh ? dhigh + w * N * K : NULL)
                               : (dlow ? dlow + (w - H) * N * K : NULL);
            for (int64_t n = 0; n < N; n++)
                loss += g * ce(q + n * K, z + n * K, t, K, g,
                               dz ? dz + n * K : NULL);
        }
    }
    free(out), free(q);
    return loss;
}

/* y = x / max(|x|, 1e-12) row-wise; keeps the norms. */
static void normalize(double *y, double *norm, const double *x, int64_t M,
                      int64_t D) {
    for (int64_t i = 0; i < M; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) s += x[i * D + d] * x[i * D + d];
        norm[i] = fmax(sqrt(s), 1e-12);
        for (int64_t d = 0; d < D; d++) y[i * D + d] = x[i * D + d] / norm[i];
    }
}

static void normalize_bwd(double *dx, const double *dy, const double *y,
                          const double *norm, int64_t M, int64_t D) {
    for (int64_t i = 0; i < M; i++) {
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++) dot += y[i * D + d] * dy[i * D + d];
        if (norm[i] <= 1e-12) dot = 0.0;
        for (int64_t d = 0; d < D; d++)
            dx[i * D + d] = (dy[i * D + d] - y[i * D + d] * dot) / norm[i];
    }
}

double ss_direct_msn(const double *anchors, const double *targets,
                     const double *protos, int64_t V, int64_t N, int64_t K,
                     int64_t D, const ss_direct_msn_opts *o, double *danchors,
                     double *dprotos) {
    int64_t M = V * N;
    double *a = calloc((size_t)(M * D), sizeof(double));
    double *an = calloc((size_t)M, sizeof(double));
    double *tg = calloc((size_t)(N * D), sizeof(double));
    double *tn = calloc((size_t)N, sizeof(double));
    double *p = calloc((size_t)(K * D), sizeof(double));
    double *pn = calloc((size_t)K, sizeof(double));
    double *S = calloc((size_t)(M * K), sizeof(double)); /* anchor probs */
    double *T = calloc((size_t)(N * K), sizeof(double)); /* target logits */
    double *q = calloc((size_t)(N * K), sizeof(double));
    double *pbar = calloc((size_t)K, sizeof(double));
    double *gk = calloc((size_t)K, sizeof(double));
    double *pi = calloc((size_t)K, sizeof(double));
    double *dS = calloc((size_t)(M * K), sizeof(double));
    double *da = calloc((size_t)(M * D), sizeof(double));
    double *dp = calloc((size_t)(K * D), sizeof(double));
    normalize(a, an, anchors, M, D);
    normalize(tg, tn, targets, N, D);
    normalize(p, pn, protos, K, D);
    double it = 1.0 / o->temperature;
    for (int64_t r = 0; r < M; r++) {
        for (int64_t k = 0; k < K; k++) {
            double s = 0.0;
            for (int64_t d = 0; d < D; d++) s += a[r * D + d] * p[k * D + d];
            S[r * K + k] = s;
        }
        softmax(S + r * K, S + r * K, NULL, it, K);
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0.0;
            for (int64_t d = 0; d < D; d++) s += tg[n * D + d] * p[k * D + d];
            T[n * K + k] = s;
        }
    /* sharpened softmax, then Sinkhorn on its log (epsilon 1) */
    for (int64_t n = 0; n < N; n++) {
        softmax(q + n * K, T + n * K, NULL, it / o->sharpen, K);
        for (int64_t k = 0; k < K; k++) T[n * K + k] = log(q[n * K + k]);
    }
    if (o->iters > 0) ss_direct_sinkhorn(T, N, K, o->iters, 1.0, q);
    double loss = 0.0, R = 0.0;
    for (int64_t r = 0; r < M; r++)
        for (int64_t k = 0; k < K; k++) {
            double qq = q[(r % N) * K + k];
            loss -= qq * log(S[r * K + k]) / (double)M;
            pbar[k] += S[r * K + k] / (double)M;
        }
    if (o->weight > 0) {
        double z = 0.0;
        for (int64_t k = 0; k < K; k++) z += (pi[k] = pow((double)(k + 1), -o->exponent));
        for (int64_t k = 0; k < K; k++) {
            pi[k] /= z;
            if (o->power_law) {
                R += pi[k] * (log(pi[k]) - log(pbar[k]));
                gk[k] = -pi[k] / pbar[k];
            } else {
                R += pbar[k] * log(pbar[k]);
                gk[k] = log(pbar[k]) + 1.0;
            }
        }
        if (!o->power_law) R += log((double)K);
        loss += o->weight * R;
    }
    if (danchors || dprotos) {
        for (int64_t r = 0; r < M; r++) {
            double mass = 0.0, pg = 0.0;
            for (int64_t k = 0; k < K; k++) {
                mass += q[(r % N) * K + k];
                pg += S[r * K + k] * gk[k];
            }
            for (int64_t k = 0; k < K; k++) {
                double pk = S[r * K + k];
                double d = mass * pk - q[(r % N) * K + k];
                if (o->weight > 0) d += o->weight * pk * (gk[k] - pg);
                dS[r * K + k] = d * it / (double)M;
            }
        }
        for (int64_t r = 0; r < M; r++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t d = 0; d < D; d++) {
                    da[r * D + d] += dS[r * K + k] * p[k * D + d];
                    dp[k * D + d] += dS[r * K + k] * a[r * D + d];
                }
        if (danchors) normalize_bwd(danchors, da, a, an, M, D);
        if (dprotos) normalize_bwd(dprotos, dp, p, pn, K, D);
    }
    free(a), free(an), free(tg), free(tn), free(p), free(pn), free(S);
    free(T), free(q), free(pbar), free(gk), free(pi), free(dS), free(da);
    free(dp);
    return loss;
}

/* ---- helpers ----------------------------------------------------------------- */
#include <stdio.h>

double *ss_dd_from_f(const float *x, int64_t n) {
    double *y = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

double ss_dd_err(const float *got, const double *want, int64_t n) {
    double den = 0.0, num = 0.0;
    for (int64_t i = 0; i < n; i++) den = fmax(den, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= num)) num = e;
    }
    return den > 1e-12 ? num / den : num;
}

void ss_dd_write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

void *ss_dd_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}
