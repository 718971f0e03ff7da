/*
 * recon.c - elementwise reconstruction losses (MSE, L1, smooth-L1, Huber,
 * BCE with logits) with mean / sum / none reductions and an optional
 * element mask, as torch.nn.functional. Elementwise, so there is no cache.
 */
#include "internal.h"

ss_recon_opts ss_recon_defaults(ss_recon_kind kind) {
    ss_recon_opts o = {kind, SS_REDUCE_MEAN, 1.0f};
    return o;
}

static ss_status check_args(const char *fn, const float *pred,
                            const float *target, int64_t n,
                            const ss_recon_opts *o) {
    SS_TRY(ss__check_ptr(fn, "pred", pred));
    SS_TRY(ss__check_ptr(fn, "target", target));
    SS_TRY(ss__check_size(fn, "n", n, 1));
    if ((int)o->kind < SS_RECON_MSE || (int)o->kind > SS_RECON_BCE_LOGITS)
        return ss__fail(SS_ERR_PARAM, fn, "kind must be 0..4, got %d",
                        (int)o->kind);
    if ((int)o->reduction < SS_REDUCE_MEAN || (int)o->reduction > SS_REDUCE_NONE)
        return ss__fail(SS_ERR_PARAM, fn, "reduction must be 0..2, got %d",
                        (int)o->reduction);
    if (o->kind == SS_RECON_SMOOTH_L1 && !(o->beta >= 0.0f && isfinite(o->beta)))
        return ss__fail(SS_ERR_PARAM, fn,
                        "beta must be finite and >= 0 for smooth-L1, got %g",
                        (double)o->beta);
    if (o->kind == SS_RECON_HUBER)
        SS_TRY(ss__check_positive(fn, "beta (Huber delta)", o->beta));
    SS_TRY(ss__check_finite(fn, "pred", pred, n));
    return ss__check_finite(fn, "target", target, n);
}

/* Elementwise loss and its derivative with respect to x (pred); for BCE the
 * derivative with respect to y is -x, for the others it is -dx. */
static double elem(const ss_recon_opts *o, double x, double y, double *dx) {
    double d = x - y, a = fabs(d), s = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
    double beta = o->beta;
    switch (o->kind) {
    case SS_RECON_MSE: *dx = 2.0 * d; return d * d;
    case SS_RECON_L1: *dx = s; return a;
    case SS_RECON_SMOOTH_L1:
        if (a < beta) { *dx = d / beta; return 0.5 * d * d / beta; }
        *dx = s; return a - 0.5 * beta;
    case SS_RECON_HUBER:
        if (a < beta) { *dx = d; return 0.5 * d * d; }
        *dx = beta * s; return beta * (a - 0.5 * beta);
    default: { /* BCE with logits, stable form */
        double sig = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        *dx = sig - y;
        return fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
    }
    }
}

static int64_t count_mask(const uint8_t *mask, int64_t n) {
    if (!mask) return n;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += mask[i] != 0;
    return k;
}

ss_status ss_recon_forward(float *loss, float *losses, const float *pred,
                           const float *target, const uint8_t *mask, int64_t n,
                           const ss_recon_opts *opts) {
    const char *fn = "ss_recon_forward";
    ss_recon_opts o = opts ? *opts : ss_recon_defaults(SS_RECON_MSE);
    SS_TRY(check_args(fn, pred, target, n, &o));
    if (o.reduction == SS_REDUCE_NONE) SS_TRY(ss__check_ptr(fn, "losses", losses));
    else SS_TRY(ss__check_ptr(fn, "loss", loss));
    double total = 0.0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : total) schedule(static) \
    if (n > (1 << 16)) num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < n; i++) {
        double dx, l = (!mask || mask[i]) ? elem(&o, pred[i], target[i], &dx) : 0.0;
        if (losses) losses[i] = (float)l;
        total += l;
    }
    if (o.reduction == SS_REDUCE_MEAN) {
        int64_t k = count_mask(mask, n);
        total = k > 0 ? total / (double)k : 0.0;
    }
    if (loss) *loss = (float)total;
    return SS_OK;
}

ss_status ss_recon_backward(float *dpred, float *dtarget, float dloss,
                            const float *dlosses, const float *pred,
                            const float *target, const uint8_t *mask,
                            int64_t n, const ss_recon_opts *opts) {
    const char *fn = "ss_recon_backward";
    ss_recon_opts o = opts ? *opts : ss_recon_defaults(SS_RECON_MSE);
    SS_TRY(ss__check_ptr(fn, "dpred", dpred));
    SS_TRY(check_args(fn, pred, target, n, &o));
    int none = o.reduction == SS_REDUCE_NONE;
    if (none) {
        SS_TRY(ss__check_ptr(fn, "dlosses", dlosses));
        SS_TRY(ss__check_finite(fn, "dlosses", dlosses, n));
    } else if (!isfinite(dloss)) {
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                        (double)dloss);
    }
    double scale = dloss;
    if (o.reduction == SS_REDUCE_MEAN) {
        int64_t k = count_mask(mask, n);
        if (k == 0) return SS_OK;
        scale = dloss / (double)k;
    }
    int bce = o.kind == SS_RECON_BCE_LOGITS;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > (1 << 16)) \
    num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double dx, up = none ? (double)dlosses[i] : scale;
        elem(&o, pred[i], target[i], &dx);
        dpred[i] += (float)(up * dx);
        if (dtarget) dtarget[i] += (float)(up * (bce ? -(double)pred[i] : -dx));
    }
    return SS_OK;
}
