/* direct_contrast.c - materialised double-precision reference of the group
 * contrastive losses (see direct_contrast.h). Written for clarity. */
#include "direct_contrast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ss_direct_view_groups(int64_t *g, int64_t V, int64_t N) {
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++) g[v * N + n] = n;
}

static double softplus(double u) {
    return u > 0 ? u + log1p(exp(-u)) : log1p(exp(u));
}

/* LSE of scale * s over the row entries with mask set; softmax into p. */
static double masked_lse(const double *s, const char *mask, int64_t M,
                         double scale, double *p) {
    double m = -INFINITY, sum = 0.0;
    for (int64_t k = 0; k < M; k++)
        if (mask[k] && scale * s[k] > m) m = scale * s[k];
    if (m == -INFINITY) {
        for (int64_t k = 0; k < M; k++) p[k] = 0.0;
        return -INFINITY;
    }
    for (int64_t k = 0; k < M; k++) sum += mask[k] ? exp(scale * s[k] - m) : 0;
    double l = m + log(sum);
    for (int64_t k = 0; k < M; k++)
        p[k] = mask[k] ? exp(scale * s[k] - l) : 0.0;
    return l;
}

/* Anchor i, HCL form: loss_i, and G_i. += scale_g * d loss_i / d s_i. */
static double hcl_anchor(const double *s, const char *neg, const char *pos,
                         int64_t M, int64_t np, const ss_direct_gc *p,
                         double scale_g, double *g, double *pa, double *pb) {
    int64_t nq = 0;
    for (int64_t k = 0; k < M; k++) nq += neg[k];
    if (nq == 0) return 0.0;
    double b = p->beta, tp = p->tau_plus, lnq = log((double)nq);
    double A = masked_lse(s, neg, M, 1.0 + b, pa);
    double B = masked_lse(s, neg, M, b, pb);
    double lneg = lnq + A - B, lclamp = lnq - 1.0 / p->temperature;
    double loss = 0.0, wneg = 0.0;
    for (int64_t k = 0; k < M; k++) {
        if (!pos[k]) continue;
        double sp = s[k], lng, r;
        if (tp > 0) {
            double l2 = log(tp * nq) + sp;
            if (lneg > l2) {
                lng = lneg + log1p(-exp(l2 - lneg)) - log1p(-tp);
                r = -1.0 / expm1(l2 - lneg);
            } else {
                lng = -INFINITY, r = 0.0;
            }
        } else {
            lng = lneg, r = 1.0;
        }
        int active = lng >= lclamp;
        if (!active) lng = lclamp;
        double u = lng - sp, sig = 1.0 / (1.0 + exp(-u));
        loss += softplus(u);
        g[k] += scale_g * (active ? -sig * r : -sig) / np;
        if (active) wneg += sig * r / np;
    }
    for (int64_t k = 0; k < M; k++)
        g[k] += scale_g * wneg * ((1.0 + b) * pa[k] - b * pb[k]);
    return loss / np;
}

/* Normalises rows (as torch F.normalize); inv: 1 / max(||z||, eps). */
static void normalise(double *x, double *inv, const double *z, int64_t M,
                      int64_t D, int cosine) {
    for (int64_t i = 0; i < M; i++) {
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += z[i * D + d] * z[i * D + d];
        inv[i] = cosine ? 1.0 / fmax(sqrt(ss), 1e-12) : 1.0;
        for (int64_t d = 0; d < D; d++) x[i * D + d] = z[i * D + d] * inv[i];
    }
}

double ss_direct_gc_loss(const double *z, const ss_direct_gc *p,
                         double *losses, double *dz) {
    int64_t M = p->M, D = p->D;
    double *x = malloc(sizeof(double) * (size_t)(M * D));
    double *inv = malloc(sizeof(double) * (size_t)M);
    double *S = malloc(sizeof(double) * (size_t)(M * M));
    double *G = calloc((size_t)(M * M), sizeof(double));
    double *pa = malloc(sizeof(double) * (size_t)M);
    double *pb = malloc(sizeof(double) * (size_t)M);
    char *den = malloc((size_t)M), *pos = malloc((size_t)M);
    normalise(x, inv, z, M, D, p->cosine);
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < M; k++) {
            double s = 0.0;
            for (int64_t d = 0; d < D; d++) s += x[i * D + d] * x[k * D + d];
            S[i * M + k] = s / p->temperature;
        }
    int64_t anchors = 0;
    for (int64_t i = 0; i < M; i++) {
        int64_t np = 0;
        for (int64_t k = 0; k < M; k++) np += k != i && p->group[k] == p->group[i];
        anchors += np > 0;
    }
    double total = 0.0, scale_g = anchors > 0 ? 1.0 / anchors : 0.0;
    for (int64_t i = 0; i < M; i++) {
        const double *s = S + i * M;
        double *g = G + i * M, li = 0.0;
        int64_t np = 0;
        for (int64_t k = 0; k < M; k++) {
            pos[k] = k != i && p->group[k] == p->group[i];
            np += pos[k];
        }
        if (np > 0 && p->hcl) {
            for (int64_t k = 0; k < M; k++) den[k] = k != i && !pos[k];
            li = hcl_anchor(s, den, pos, M, np, p, scale_g, g, pa, pb);
        } else if (np > 0) {
            for (int64_t k = 0; k < M; k++)
                den[k] = k != i && !(p->exclude_pos && pos[k]);
            double l = masked_lse(s, den, M, 1.0, pa);
            double w = p->pos_weight ? p->pos_weight[i] : 1.0;
            if (l > -INFINITY) {
                li = l;
                for (int64_t k = 0; k < M; k++) g[k] += scale_g * pa[k];
            }
            for (int64_t k = 0; k < M; k++)
                if (pos[k]) {
                    li -= w * s[k] / np;
                    g[k] -= scale_g * w / np;
                }
        }
        if (losses) losses[i] = li;
        total += li;
    }
    if (dz) {
        for (int64_t i = 0; i < M; i++) {
            double *dzi = dz + i * D, dot = 0.0;
            for (int64_t d = 0; d < D; d++) dzi[d] = 0.0;
            for (int64_t k = 0; k < M; k++) {
                double c = (G[i * M + k] + G[k * M + i]) / p->temperature;
                for (int64_t d = 0; d < D; d++) dzi[d] += c * x[k * D + d];
            }
            if (!p->cosine) continue;
            for (int64_t d = 0; d < D; d++) dot += dzi[d] * x[i * D + d];
            double nrm2 = 0.0;
            for (int64_t d = 0; d < D; d++) nrm2 += z[i * D + d] * z[i * D + d];
            int clamped = sqrt(nrm2) <= 1e-12;
            for (int64_t d = 0; d < D; d++)
                dzi[d] = inv[i] * (dzi[d] - (clamped ? 0.0 : x[i * D + d] * dot));
        }
    }
    free(x), free(inv), free(S), free(G), free(pa), free(pb), free(den),
        free(pos);
    return total * scale_g;
}
