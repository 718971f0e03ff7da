/* direct_predictive.c - see direct_predictive.h. */
#include "direct_predictive.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double wt(const double *w, int64_t c) { return w ? w[c] : 1.0; }

double ss_direct_ce(const double *x, const int64_t *y, int64_t T, int64_t V,
                    double eps, const double *w, int64_t ignore,
                    double *losses, double *dx) {
    double total = 0.0, W = 0.0, sw = 0.0;
    for (int64_t c = 0; c < V; c++) sw += wt(w, c);
    for (int64_t t = 0; t < T; t++) {
        if (losses) losses[t] = 0.0;
        if (y[t] == ignore) continue;
        W += wt(w, y[t]);
    }
    if (dx) memset(dx, 0, sizeof(double) * (size_t)(T * V));
    for (int64_t t = 0; t < T; t++) {
        if (y[t] == ignore) continue;
        const double *r = x + t * V;
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < V; c++) m = fmax(m, r[c]);
        for (int64_t c = 0; c < V; c++) s += exp(r[c] - m);
        double lse = m + log(s), l = (1 - eps) * wt(w, y[t]) * (lse - r[y[t]]);
        for (int64_t c = 0; c < V; c++) l += eps / V * wt(w, c) * (lse - r[c]);
        if (losses) losses[t] = l;
        total += l;
        if (!dx || W <= 0) continue;
        for (int64_t c = 0; c < V; c++) {
            double p = exp(r[c] - lse);
            double g = (1 - eps) * wt(w, y[t]) * (p - (c == y[t]))
                       + eps / V * (sw * p - wt(w, c));
            dx[t * V + c] = g / W;
        }
    }
    return W > 0 ? total / W : 0.0;
}

double ss_direct_linear_ce(const double *h, const double *w, const double *b,
                           const int64_t *y, int64_t T, int64_t H, int64_t V,
                           double eps, const double *cw, int64_t ignore,
                           double *losses, double *dh, double *dw,
                           double *db) {
    double *x = calloc((size_t)(T * V), sizeof(double));
    double *dx = calloc((size_t)(T * V), sizeof(double));
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < V; c++) {
            double s = b ? b[c] : 0.0;
            for (int64_t k = 0; k < H; k++) s += h[t * H + k] * w[c * H + k];
            x[t * V + c] = s;
        }
    double loss = ss_direct_ce(x, y, T, V, eps, cw, ignore, losses, dx);
    if (dh) memset(dh, 0, sizeof(double) * (size_t)(T * H));
    if (dw) memset(dw, 0, sizeof(double) * (size_t)(V * H));
    if (db) memset(db, 0, sizeof(double) * (size_t)V);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < V; c++) {
            double g = dx[t * V + c];
            if (db) db[c] += g;
            for (int64_t k = 0; k < H; k++) {
                if (dh) dh[t * H + k] += g * w[c * H + k];
                if (dw) dw[c * H + k] += g * h[t * H + k];
            }
        }
    free(x), free(dx);
    return loss;
}

static double recon_elem(int kind, double beta, double x, double y,
                         double *gx, double *gy) {
    double d = x - y, a = fabs(d), s = (d > 0) - (d < 0);
    switch (kind) {
    case 0: *gx = 2 * d, *gy = -2 * d; return d * d;
    case 1: *gx = s, *gy = -s; return a;
    case 2:
        if (a < beta) { *gx = d / beta, *gy = -d / beta; return 0.5 * d * d / beta; }
        *gx = s, *gy = -s; return a - 0.5 * beta;
    case 3:
        if (a < beta) { *gx = d, *gy = -d; return 0.5 * d * d; }
        *gx = beta * s, *gy = -beta * s; return beta * (a - 0.5 * beta);
    default:
        *gx = 1.0 / (1.0 + exp(-x)) - y, *gy = -x;
        return log(1.0 + exp(x)) - x * y;
    }
}

double ss_direct_recon(int kind, int reduction, double beta, const double *x,
                       const double *y, const uint8_t *mask, const double *up,
                       int64_t n, double *dx, double *dy) {
    double total = 0.0;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += !mask || mask[i];
    double scale = reduction == 0 ? (k > 0 ? 1.0 / k : 0.0) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        double gx, gy, l = recon_elem(kind, beta, x[i], y[i], &gx, &gy);
        double u = (mask && !mask[i]) ? 0.0 : reduction == 2 ? up[i] : scale;
        total += u * l;
        if (dx) dx[i] = u * gx;
        if (dy) dy[i] = u * gy;
    }
    return total;
}

double ss_direct_mae(const double *pred, const double *imgs,
                     const uint8_t *mask, int64_t B, int64_t C, int64_t Hi,
                     int64_t Wi, int64_t p, int norm_pix, double *losses,
                     double *dpred) {
    int64_t gw = Wi / p, L = (Hi / p) * gw, P = p * p * C, nm = 0;
    double *t = malloc(sizeof(double) * (size_t)P), total = 0.0;
    for (int64_t k = 0; k < B * L; k++) nm += mask[k] != 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < L; l++) {
            int64_t i = l / gw, j = l % gw, k = b * L + l;
            for (int64_t u = 0; u < p; u++)
                for (int64_t v = 0; v < p; v++)
                    for (int64_t c = 0; c < C; c++)
                        t[(u * p + v) * C + c] =
                            imgs[((b * C + c) * Hi + i * p + u) * Wi + j * p + v];
            if (norm_pix) {
                double m = 0, var = 0;
                for (int64_t e = 0; e < P; e++) m += t[e] / P;
                for (int64_t e = 0; e < P; e++) var += (t[e] - m) * (t[e] - m);
                var = P > 1 ? var / (P - 1) : 0.0;
                for (int64_t e = 0; e < P; e++) t[e] = (t[e] - m) / sqrt(var + 1e-6);
            }
            double s = 0.0;
            for (int64_t e = 0; e < P; e++)
                s += (pred[k * P + e] - t[e]) * (pred[k * P + e] - t[e]);
            if (losses) losses[k] = s / P;
            if (mask[k] && nm > 0) total += s / P / nm;
            if (dpred)
                for (int64_t e = 0; e < P; e++)
                    dpred[k * P + e] = mask[k] && nm > 0
                        ? 2.0 * (pred[k * P + e] - t[e]) / P / nm : 0.0;
        }
    free(t);
    return total;
}
