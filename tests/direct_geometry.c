/* direct_geometry.c - naive double references (direct_geometry.h). */
#include "direct_geometry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double *dalloc(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) abort();
    return p;
}

/* ---- small dense helpers ----------------------------------------------------- */

/* C (m, n) = A (m, k) B (k, n) */
static void mm(double *C, const double *A, const double *B, int64_t m,
               int64_t k, int64_t n) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];
            C[i * n + j] = s;
        }
}

static void transpose(double *T, const double *A, int64_t m, int64_t n) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) T[j * m + i] = A[i * n + j];
}

/* Lower Cholesky of A (n, n) into L; 0 on success. */
static int chol(double *L, const double *A, int64_t n) {
    memset(L, 0, sizeof(double) * (size_t)(n * n));
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t p = 0; p < j; p++) d -= L[j * n + p] * L[j * n + p];
        if (!(d > 0)) return 1;
        L[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int64_t p = 0; p < j; p++) s -= L[i * n + p] * L[j * n + p];
            L[i * n + j] = s / L[j * n + j];
        }
    }
    return 0;
}

/* W = L^{-1} (lower) by forward substitution. */
static void tri_inv(double *W, const double *L, int64_t n) {
    memset(W, 0, sizeof(double) * (size_t)(n * n));
    for (int64_t c = 0; c < n; c++)
        for (int64_t i = c; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int64_t p = c; p < i; p++) s -= L[i * n + p] * W[p * n + c];
            W[i * n + c] = s / L[i * n + i];
        }
}

/* Row normalisation y = x / max(||x||, eps) and its backward. */
static void nrm(double *y, double *inv, const double *x, int64_t N, int64_t D,
                double eps) {
    for (int64_t i = 0; i < N; i++) {
        double q = 0;
        for (int64_t d = 0; d < D; d++) q += x[i * D + d] * x[i * D + d];
        double n = sqrt(q);
        inv[i] = 1.0 / (n > eps ? n : eps);
        for (int64_t d = 0; d < D; d++) y[i * D + d] = x[i * D + d] * inv[i];
    }
}

static void nrm_back(double *dx, const double *gy, const double *y,
                     const double *inv, const double *x, int64_t N, int64_t D,
                     double eps) {
    for (int64_t i = 0; i < N; i++) {
        double q = 0, dot = 0;
        for (int64_t d = 0; d < D; d++)
            q += x[i * D + d] * x[i * D + d], dot += gy[i * D + d] * y[i * D + d];
        int clamped = !(sqrt(q) > eps);
        for (int64_t d = 0; d < D; d++)
            dx[i * D + d] = inv[i] * (gy[i * D + d] - (clamped ? 0 : dot * y[i * D + d]));
    }
}

/* ---- TiCo ------------------------------------------------------------------------ */

double ss_direct_tico(const double *za, const double *zb, const double *C0,
                      int64_t N, int64_t D, double beta, double rho,
                      double *losses, double *dza, double *dzb, double *C_new) {
    double *a = dalloc(N * D), *b = dalloc(N * D), *ia = dalloc(N), *ib = dalloc(N);
    double *C = dalloc(D * D), *P = dalloc(D * D);
    nrm(a, ia, za, N, D, 1e-12);
    nrm(b, ib, zb, N, D, 1e-12);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += a[n * D + i] * a[n * D + j];
            P[i * D + j] = s / N;
            C[i * D + j] = beta * C0[i * D + j] + (1 - beta) * P[i * D + j];
        }
    double total = 0;
    for (int64_t n = 0; n < N; n++) {
        double ab = 0, q = 0;
        for (int64_t i = 0; i < D; i++) {
            ab += a[n * D + i] * b[n * D + i];
            for (int64_t j = 0; j < D; j++) q += a[n * D + i] * C[i * D + j] * a[n * D + j];
        }
        double l = 1 - ab + rho * q;
        if (losses) losses[n] = l;
        total += l;
    }
    if (C_new) memcpy(C_new, C, sizeof(double) * (size_t)(D * D));
    if (dza || dzb) {
        /* d/da of (rho/N) sum_n a_n C a_n^T with C = beta C0 + (1-beta) a^T a / N:
         * (rho/N) [a (C + C^T)] + (rho/N)(1-beta)/N * 4 a (a^T a)... written out */
        double *ga = dalloc(N * D), *gb = dalloc(N * D);
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < D; k++) {
                double s = 0;
                for (int64_t j = 0; j < D; j++)
                    s += a[n * D + j] * (C[k * D + j] + C[j * D + k]) +
                         a[n * D + j] * 2.0 * (1 - beta) * P[j * D + k];
                ga[n * D + k] = (rho * s - b[n * D + k]) / N;
                gb[n * D + k] = -a[n * D + k] / N;
            }
        if (dza) nrm_back(dza, ga, a, ia, za, N, D, 1e-12);
        if (dzb) nrm_back(dzb, gb, b, ib, zb, N, D, 1e-12);
        free(ga), free(gb);
    }
    free(a), free(b), free(ia), free(ib), free(C), free(P);
    return total / N;
}

/* ---- W-MSE --------------------------------------------------------------------------- */

double ss_direct_wmse(const double *z, const int64_t *perm, int64_t V,
                      int64_t N, int64_t D, int64_t w, int64_t iters,
                      double eps, double *dz) {
    double *Y = dalloc(V * N * D), *gY = dalloc(V * N * D);
    double *X = dalloc(w * D), *S = dalloc(D * D), *L = dalloc(D * D);
    double *Wi = dalloc(D * D), *Wt = dalloc(D * D), *T = dalloc(D * D);
    double *dW = dalloc(D * D), *dL = dalloc(D * D), *Yg = dalloc(w * D);
    double *gXc = dalloc(w * D), *Lt = dalloc(D * D);
    int64_t npairs = V * (V - 1) / 2, *rows = malloc(sizeof(int64_t) * (size_t)w);
    double total = 0, bad = 0;
    if (dz) memset(dz, 0, sizeof(double) * (size_t)(V * N * D));
    for (int64_t it = 0; it < iters; it++) {
        const int64_t *p = perm ? perm + it * N : NULL;
        for (int pass = 0; pass < (dz ? 2 : 1); pass++) {
            if (pass == 1) { /* gradient of the pair terms w.r.t. Y */
                memset(gY, 0, sizeof(double) * (size_t)(V * N * D));
                for (int64_t u = 0; u < V; u++)
                    for (int64_t v = u + 1; v < V; v++)
                        for (int64_t n = 0; n < N; n++) {
                            const double *ya = Y + (u * N + n) * D, *yb = Y + (v * N + n) * D;
                            double aa = 0, bb = 0, ab = 0;
                            for (int64_t d = 0; d < D; d++)
                                aa += ya[d] * ya[d], bb += yb[d] * yb[d], ab += ya[d] * yb[d];
                            double na = sqrt(aa), nb = sqrt(bb), c = ab / (na * nb);
                            double k = -2.0 / N / (double)(iters * npairs);
                            for (int64_t d = 0; d < D; d++) {
                                gY[(u * N + n) * D + d] += k * (yb[d] / nb - c * ya[d] / na) / na;
                                gY[(v * N + n) * D + d] += k * (ya[d] / na - c * yb[d] / nb) / nb;
                            }
                        }
            }
            for (int64_t s = 0; s < N / w; s++)
                for (int64_t v = 0; v < V; v++) {
                    for (int64_t r = 0; r < w; r++) rows[r] = p ? p[s * w + r] : s * w + r;
                    for (int64_t d = 0; d < D; d++) {
                        double m = 0;
                        for (int64_t r = 0; r < w; r++) m += z[(v * N + rows[r]) * D + d];
                        for (int64_t r = 0; r < w; r++)
                            X[r * D + d] = z[(v * N + rows[r]) * D + d] - m / w;
                    }
                    for (int64_t i = 0; i < D; i++)
                        for (int64_t j = 0; j < D; j++) {
                            double q = 0;
                            for (int64_t r = 0; r < w; r++) q += X[r * D + i] * X[r * D + j];
                            S[i * D + j] = (1 - eps) * q / (w - 1) + (i == j ? eps : 0);
                        }
                    if (chol(L, S, D)) bad = NAN;
                    tri_inv(Wi, L, D);
                    transpose(Wt, Wi, D, D);
                    mm(Yg, X, Wt, w, D, D); /* Y = Xc W^T */
                    if (pass == 0) {
                        for (int64_t r = 0; r < w; r++)
                            memcpy(Y + (v * N + rows[r]) * D, Yg + r * D, sizeof(double) * (size_t)D);
                        continue;
                    }
                    double *g = Yg; /* reuse: gather dY */
                    for (int64_t r = 0; r < w; r++)
                        memcpy(g + r * D, gY + (v * N + rows[r]) * D, sizeof(double) * (size_t)D);
                    /* dXc = dY W; dW = dY^T Xc; dL = -W^T dW W^T */
                    mm(gXc, g, Wi, w, D, D);
                    for (int64_t i = 0; i < D; i++)
                        for (int64_t j = 0; j < D; j++) {
                            double q = 0;
                            for (int64_t r = 0; r < w; r++) q += g[r * D + i] * X[r * D + j];
                            dW[i * D + j] = q;
                        }
                    mm(T, dW, Wt, D, D, D);
                    mm(dL, Wt, T, D, D, D);
                    for (int64_t i = 0; i < D * D; i++) dL[i] = -dL[i];
                    /* Cholesky backward: Sbar = sym(W^T Phi(L^T dL) W) */
                    transpose(Lt, L, D, D);
                    mm(T, Lt, dL, D, D, D);
                    for (int64_t i = 0; i < D; i++)
                        for (int64_t j = 0; j < D; j++)
                            T[i * D + j] = j > i ? 0 : (j == i ? 0.5 : 1.0) * T[i * D + j];
                    mm(dW, T, Wi, D, D, D);
                    mm(T, Wt, dW, D, D, D);
                    for (int64_t i = 0; i < D; i++)
                        for (int64_t j = 0; j < D; j++)
                            dW[i * D + j] = 0.5 * (T[i * D + j] + T[j * D + i]) * (1 - eps);
                    for (int64_t r = 0; r < w; r++)
                        for (int64_t d = 0; d < D; d++) {
                            double q = 0;
                            for (int64_t k = 0; k < D; k++) q += X[r * D + k] * dW[k * D + d];
                            gXc[r * D + d] += 2.0 * q / (w - 1);
                        }
                    for (int64_t d = 0; d < D; d++) {
                        double m = 0;
                        for (int64_t r = 0; r < w; r++) m += gXc[r * D + d];
                        for (int64_t r = 0; r < w; r++)
                            dz[(v * N + rows[r]) * D + d] += gXc[r * D + d] - m / w;
                    }
                }
            if (pass == 0)
                for (int64_t u = 0; u < V; u++)
                    for (int64_t v = u + 1; v < V; v++) {
                        double cs = 0;
                        for (int64_t n = 0; n < N; n++) {
                            const double *ya = Y + (u * N + n) * D, *yb = Y + (v * N + n) * D;
                            double aa = 0, bb = 0, ab = 0;
                            for (int64_t d = 0; d < D; d++)
                                aa += ya[d] * ya[d], bb += yb[d] * yb[d], ab += ya[d] * yb[d];
                            cs += ab / (sqrt(aa) * sqrt(bb));
                        }
                        total += 2 - 2 * cs / N;
                    }
        }
    }
    free(Y), free(gY), free(X), free(S), free(L), free(Wi), free(Wt), free(T);
    free(dW), free(dL), free(Yg), free(gXc), free(Lt), free(rows);
    return total / (double)(iters * npairs) + bad;
}

/* ---- alignment and uniformity --------------------------------------------------------- */

static double unif(const double *x, int64_t N, int64_t D, double t, double *g,
                   double coef) {
    double *s = dalloc(N * N), m = -INFINITY, sum = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
            double q = 0;
            for (int64_t d = 0; d < D; d++) {
                double e = x[i * D + d] - x[j * D + d];
                q += e * e;
            }
            s[i * N + j] = -t * q;
            if (i != j && s[i * N + j] > m) m = s[i * N + j];
        }
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            if (i != j) sum += exp(s[i * N + j] - m);
    double lse = m + log(sum);
    if (g) /* d/dx_i = -4t sum_j p_ij (x_i - x_j) */
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < N; j++) {
                if (i == j) continue;
                double p = exp(s[i * N + j] - lse);
                for (int64_t d = 0; d < D; d++)
                    g[i * D + d] += coef * -4.0 * t * p * (x[i * D + d] - x[j * D + d]);
            }
    free(s);
    return lse - log((double)N * (N - 1));
}

double ss_direct_hypersphere(const double *za, const double *zb, int64_t N,
                             int64_t D, double t, double lam, double alpha,
                             double *dza, double *dzb) {
    double *x = dalloc(N * D), *y = dalloc(N * D), *ix = dalloc(N), *iy = dalloc(N);
    double *gx = dalloc(N * D), *gy = dalloc(N * D), align = 0;
    nrm(x, ix, za, N, D, 1e-12);
    nrm(y, iy, zb, N, D, 1e-12);
    for (int64_t i = 0; i < N; i++) {
        double q = 0;
        for (int64_t d = 0; d < D; d++) q += (x[i * D + d] - y[i * D + d]) * (x[i * D + d] - y[i * D + d]);
        double r = sqrt(q);
        align += pow(r, alpha) / N;
        if (r == 0) continue;
        for (int64_t d = 0; d < D; d++) {
            double e = alpha * pow(r, alpha - 2) * (x[i * D + d] - y[i * D + d]) / N;
            gx[i * D + d] += e, gy[i * D + d] -= e;
        }
    }
    double u = unif(x, N, D, t, gx, lam / 2) + unif(y, N, D, t, gy, lam / 2);
    if (dza) nrm_back(dza, gx, x, ix, za, N, D, 1e-12);
    if (dzb) nrm_back(dzb, gy, y, iy, zb, N, D, 1e-12);
    free(x), free(y), free(ix), free(iy), free(gx), free(gy);
    return align + lam * u / 2;
}

/* ---- KoLeo --------------------------------------------------------------------------------- */

double ss_direct_koleo(const double *x, int64_t N, int64_t D, double eps,
                       double *losses, int64_t *nn, double *dx) {
    double *u = dalloc(N * D), *inv = dalloc(N), *g = dalloc(N * D), *e = dalloc(D);
    double total = 0;
    nrm(u, inv, x, N, D, eps);
    for (int64_t i = 0; i < N; i++) {
        int64_t best = -1;
        double bs = -INFINITY;
        for (int64_t j = 0; j < N; j++) {
            if (j == i) continue;
            double s = 0;
            for (int64_t d = 0; d < D; d++) s += u[i * D + d] * u[j * D + d];
            if (s > bs) bs = s, best = j;
        }
        double q = 0;
        for (int64_t d = 0; d < D; d++) {
            e[d] = u[i * D + d] - u[best * D + d] + eps;
            q += e[d] * e[d];
        }
        double di = sqrt(q), l = -log(di + eps);
        total += l;
        if (losses) losses[i] = l;
        if (nn) nn[i] = best;
        if (di > 0)
            for (int64_t d = 0; d < D; d++) {
                double w = -e[d] / (di * (di + eps) * N);
                g[i * D + d] += w, g[best * D + d] -= w;
            }
    }
    if (dx) nrm_back(dx, g, u, inv, x, N, D, eps);
    free(u), free(inv), free(g), free(e);
    return total / N;
}

/* ---- MMCR ------------------------------------------------------------------------------------- */

/* Jacobi eigen-decomposition of symmetric A (n, n): A = Q diag(lam) Q^T. */
static void sym_eig(double *A, int64_t n, double *Q, double *lam) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) Q[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int64_t p = 0; p < n; p++)
            for (int64_t q = p + 1; q < n; q++) off += A[p * n + q] * A[p * n + q];
        if (off < 1e-30) break;
        for (int64_t p = 0; p < n; p++)
            for (int64_t q = p + 1; q < n; q++) {
                if (fabs(A[p * n + q]) < 1e-300) continue;
                double th = (A[q * n + q] - A[p * n + p]) / (2 * A[p * n + q]);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int64_t k = 0; k < n; k++) { /* A <- J^T A J */
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq, A[k * n + q] = s * akp + c * akq;
                }
                for (int64_t k = 0; k < n; k++) {
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk, A[q * n + k] = s * apk + c * aqk;
                }
                for (int64_t k = 0; k < n; k++) {
                    double qkp = Q[k * n + p], qkq = Q[k * n + q];
                    Q[k * n + p] = c * qkp - s * qkq, Q[k * n + q] = s * qkp + c * qkq;
                }
            }
    }
    for (int64_t i = 0; i < n; i++) lam[i] = A[i * n + i];
}

/* ||A||_* of A (m, n) and G = U V^T = (A A^T)^{-1/2} A (m <= n) or
 * A (A^T A)^{-1/2} (m > n); full rank assumed. */
static double nuc(const double *A, int64_t m, int64_t n, double *G) {
    int wide = m <= n;
    int64_t p = wide ? m : n;
    double *M = dalloc(p * p), *Q = dalloc(p * p), *lam = dalloc(p), *R = dalloc(p * p);
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < p; j++) {
            double s = 0;
            for (int64_t k = 0; k < (wide ? n : m); k++)
                s += wide ? A[i * n + k] * A[j * n + k] : A[k * n + i] * A[k * n + j];
            M[i * p + j] = s;
        }
    sym_eig(M, p, Q, lam);
    double sum = 0;
    for (int64_t i = 0; i < p; i++) sum += sqrt(lam[i] > 0 ? lam[i] : 0);
    for (int64_t i = 0; i < p; i++) /* R = Q lam^{-1/2} Q^T */
        for (int64_t j = 0; j < p; j++) {
            double s = 0;
            for (int64_t k = 0; k < p; k++) s += Q[i * p + k] * Q[j * p + k] / sqrt(lam[k]);
            R[i * p + j] = s;
        }
    if (G) {
        if (wide) mm(G, R, A, m, m, n);
        else mm(G, A, R, m, n, n);
    }
    free(M), free(Q), free(lam), free(R);
    return sum;
}

double ss_direct_mmcr(const double *online, const double *momentum, int64_t B,
                      int64_t K, int64_t D, double lambda, double *donline,
                      double *dmomentum) {
    int64_t Kt = momentum ? 2 * K : K;
    double *c = dalloc(B * D), *Gc = dalloc(B * D), *Z = dalloc(Kt * D), *Gz = dalloc(Kt * D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t v = 0; v < Kt; v++)
            for (int64_t d = 0; d < D; d++)
                c[b * D + d] += (v < K ? online[(b * K + v) * D + d]
                                       : momentum[(b * K + v - K) * D + d]) / Kt;
    double loss = -nuc(c, B, D, Gc);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t v = 0; v < Kt; v++)
            for (int64_t d = 0; d < D; d++)
                Z[v * D + d] = v < K ? online[(b * K + v) * D + d]
                                     : momentum[(b * K + v - K) * D + d];
        loss += lambda / B * nuc(Z, Kt, D, Gz);
        for (int64_t v = 0; v < Kt; v++)
            for (int64_t d = 0; d < D; d++) {
                double g = -Gc[b * D + d] / Kt + lambda / B * Gz[v * D + d];
                if (v < K && donline) donline[(b * K + v) * D + d] = g;
                if (v >= K && dmomentum) dmomentum[(b * K + v - K) * D + d] = g;
            }
    }
    free(c), free(Gc), free(Z), free(Gz);
    return loss;
}

/* ---- EMP-SSL ------------------------------------------------------------------------------------- */

double ss_direct_empssl(const double *z, int64_t V, int64_t N, int64_t D,
                        double eps, double inv_coef, double *rates,
                        double *dz) {
    /* R = 1/2 logdet(I + a Z^T Z); when N < D the equal N x N form
     * I + a Z Z^T (Sylvester), gradient a Z M^{-1} or a M'^{-1} Z. */
    double a = (double)D / (N * eps), loss = 0;
    int gram = N < D;
    int64_t p = gram ? N : D;
    double *M = dalloc(p * p), *L = dalloc(p * p), *W = dalloc(p * p), *Mi = dalloc(p * p);
    if (dz) memset(dz, 0, sizeof(double) * (size_t)(V * N * D));
    for (int64_t v = 0; v < V; v++) {
        const double *Z = z + v * N * D;
        for (int64_t i = 0; i < p; i++)
            for (int64_t j = 0; j < p; j++) {
                double s = 0;
                if (gram)
                    for (int64_t d = 0; d < D; d++) s += Z[i * D + d] * Z[j * D + d];
                else
                    for (int64_t n = 0; n < N; n++) s += Z[n * D + i] * Z[n * D + j];
                M[i * p + j] = (i == j) + a * s;
            }
        chol(L, M, p);
        double R = 0;
        for (int64_t i = 0; i < p; i++) R += log(L[i * p + i]);
        if (rates) rates[v] = R;
        loss -= R / V;
        if (!dz) continue;
        tri_inv(W, L, p); /* M^{-1} = W^T W */
        for (int64_t i = 0; i < p; i++)
            for (int64_t j = 0; j < p; j++) {
                double s = 0;
                for (int64_t k = 0; k < p; k++) s += W[k * p + i] * W[k * p + j];
                Mi[i * p + j] = s;
            }
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < D; j++) {
                double s = 0;
                if (gram)
                    for (int64_t k = 0; k < N; k++) s += Mi[n * p + k] * Z[k * D + j];
                else
                    for (int64_t i = 0; i < D; i++) s += Z[n * D + i] * Mi[i * p + j];
                dz[(v * N + n) * D + j] -= a * s / V;
            }
    }
    /* invariance: -mean cos(z_vn, m_n), m_n = mean_v z_vn */
    double *m = dalloc(D), *gm = dalloc(D), inv = 0;
    for (int64_t n = 0; n < N; n++) {
        double mq = 0;
        for (int64_t d = 0; d < D; d++) {
            m[d] = 0, gm[d] = 0;
            for (int64_t v = 0; v < V; v++) m[d] += z[(v * N + n) * D + d] / V;
            mq += m[d] * m[d];
        }
        double mn = sqrt(mq);
        for (int64_t v = 0; v < V; v++) {
            const double *x = z + (v * N + n) * D;
            double xq = 0, dot = 0;
            for (int64_t d = 0; d < D; d++) xq += x[d] * x[d], dot += x[d] * m[d];
            double xn = sqrt(xq), c = dot / (xn * mn);
            inv -= c / (V * N);
            if (!dz) continue;
            double k = -inv_coef / (V * N);
            for (int64_t d = 0; d < D; d++) {
                dz[(v * N + n) * D + d] += k * (m[d] / mn - c * x[d] / xn) / xn;
                gm[d] += k * (x[d] / xn - c * m[d] / mn) / mn;
            }
        }
        if (dz)
            for (int64_t v = 0; v < V; v++)
                for (int64_t d = 0; d < D; d++) dz[(v * N + n) * D + d] += gm[d] / V;
    }
    free(M), free(L), free(W), free(Mi), free(m), free(gm);
    return loss + inv_coef * inv;
}
