/*
 * optim.c - SGD, AdamW, LARS on the parameter arena; schedules; EMA.
 *
 * Each update follows the operation order of torch 1.13's single-tensor
 * implementations, with the scalar coefficients computed in double.
 */
#include "engine.h"

#include "internal.h"

#include <math.h>

#define SST_PI 3.14159265358979323846

static ss_status check_nonneg(const char *fn, const char *name, double v) {
    if (isfinite(v) && v >= 0.0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "%s must be finite and >= 0, got %g",
                    name, v);
}

static ss_status check_unit(const char *fn, const char *name, double v) {
    if (v >= 0.0 && v < 1.0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "%s must be in [0, 1), got %g", name, v);
}

static ss_status check_arena(const char *fn, const sst_params *P,
                             int64_t step) {
    SS_TRY(ss__check_ptr(fn, "P", P));
    if (!P->data || !P->grad)
        return ss__fail(SS_ERR_NULL, fn, "arena not allocated");
    if (step < 1)
        return ss__fail(SS_ERR_PARAM, fn, "step must be >= 1, got %lld",
                        (long long)step);
    return SS_OK;
}

/* The momentum part shared by SGD and LARS; g is the (decayed, scaled)
 * gradient of one element. */
static inline float momentum_dir(float g, float *buf, float mu, float damp,
                                 int nesterov, int first) {
    float b = first ? g : mu * *buf + (1.0f - damp) * g;
    *buf = b;
    return nesterov ? g + mu * b : b;
}

ss_status sst_sgd_step(sst_params *P, float *buf, const sst_sgd_cfg *c,
                       int64_t step) {
    static const char fn[] = "sst_sgd_step";
    SS_TRY(check_arena(fn, P, step));
    SS_TRY(ss__check_ptr(fn, "cfg", c));
    SS_TRY(check_nonneg(fn, "lr", c->lr));
    SS_TRY(check_nonneg(fn, "momentum", c->momentum));
    SS_TRY(check_nonneg(fn, "dampening", c->dampening));
    SS_TRY(check_nonneg(fn, "weight_decay", c->weight_decay));
    if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0))
        return ss__fail(SS_ERR_PARAM, fn,
                        "nesterov needs momentum > 0 and dampening 0, got "
                        "momentum %g, dampening %g",
                        c->momentum, c->dampening);
    const int use_mom = c->momentum != 0.0;
    if (use_mom) SS_TRY(ss__check_ptr(fn, "buf", buf));
    const float lr = (float)c->lr, mu = (float)c->momentum;
    const float damp = (float)c->dampening;
    for (int64_t k = 0; k < P->count; k++) {
        const sst_tensor *t = &P->t[k];
        if (t->flags & SST_P_FROZEN) continue;
        const float wd =
            (t->flags & SST_P_NO_DECAY) ? 0.0f : (float)c->weight_decay;
        float *p = P->data + t->offset;
        const float *g = P->grad + t->offset;
        float *b = use_mom ? buf + t->offset : NULL;
        for (int64_t i = 0; i < t->numel; i++) {
            float d = g[i] + wd * p[i];
            if (use_mom)
                d = momentum_dir(d, &b[i], mu, damp, c->nesterov, step == 1);
            p[i] -= lr * d;
        }
    }
    return SS_OK;
}

ss_status sst_adamw_step(sst_params *P, float *m, float *v,
                         const sst_adamw_cfg *c, int64_t step) {
    static const char fn[] = "sst_adamw_step";
    SS_TRY(check_arena(fn, P, step));
    SS_TRY(ss__check_ptr(fn, "m", m));
    SS_TRY(ss__check_ptr(fn, "v", v));
    SS_TRY(ss__check_ptr(fn, "cfg", c));
    SS_TRY(check_nonneg(fn, "lr", c->lr));
    SS_TRY(check_unit(fn, "beta1", c->beta1));
    SS_TRY(check_unit(fn, "beta2", c->beta2));
    SS_TRY(check_nonneg(fn, "eps", c->eps));
    SS_TRY(check_nonneg(fn, "weight_decay", c->weight_decay));
    const double bc1 = 1.0 - pow(c->beta1, (double)step);
    const double bc2 = 1.0 - pow(c->beta2, (double)step);
    const float step_size = (float)(c->lr / bc1);
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float eps = (float)c->eps;
    for (int64_t k = 0; k < P->count; k++) {
        const sst_tensor *t = &P->t[k];
        if (t->flags & SST_P_FROZEN) continue;
        const double wd = (t->flags & SST_P_NO_DECAY) ? 0.0 : c->weight_decay;
        const float decay = (float)(1.0 - c->lr * wd);
        float *p = P->data + t->offset, *mt = m + t->offset, *vt = v + t->offset;
        const float *g = P->grad + t->offset;
        for (int64_t i = 0; i < t->numel; i++) {
            p[i] *= decay;
            mt[i] = b1 * mt[i] + (1.0f - b1) * g[i];
            vt[i] = b2 * vt[i] + (1.0f - b2) * g[i] * g[i];
            float denom = sqrtf(vt[i]) * inv_bc2_sqrt + eps;
            p[i] -= step_size * mt[i] / denom;
        }
    }
    return SS_OK;
}

static double norm2(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

ss_status sst_lars_step(sst_params *P, float *buf, const sst_lars_cfg *c,
                        int64_t step) {
    static const char fn[] = "sst_lars_step";
    SS_TRY(check_arena(fn, P, step));
    SS_TRY(ss__check_ptr(fn, "cfg", c));
    SS_TRY(check_nonneg(fn, "lr", c->lr));
    SS_TRY(check_nonneg(fn, "momentum", c->momentum));
    SS_TRY(check_nonneg(fn, "weight_decay", c->weight_decay));
    SS_TRY(ss__check_positive(fn, "eta", c->eta));
    SS_TRY(check_nonneg(fn, "eps", c->eps));
    if (c->clip_lr && !(c->lr > 0.0))
        return ss__fail(SS_ERR_PARAM, fn, "clip_lr needs lr > 0, got %g",
                        c->lr);
    const int use_mom = c->momentum != 0.0;
    if (use_mom) SS_TRY(ss__check_ptr(fn, "buf", buf));
    const float lr = (float)c->lr, mu = (float)c->momentum;
    for (int64_t k = 0; k < P->count; k++) {
        const sst_tensor *t = &P->t[k];
        if (t->flags & SST_P_FROZEN) continue;
        float *p = P->data + t->offset;
        const float *g = P->grad + t->offset;
        float scale = 1.0f, wd = 0.0f;
        if (!(c->exclude_bias_n_norm && (t->flags & SST_P_NO_DECAY))) {
            double pn = norm2(p, t->numel), gn = norm2(g, t->numel);
            if (pn != 0.0 && gn != 0.0) {
                double l = c->eta * pn /
                           (gn + pn * c->weight_decay + c->eps);
                if (c->clip_lr) l = fmin(l / c->lr, 1.0);
                scale = (float)l;
                wd = (float)c->weight_decay;
            }
        }
        float *b = use_mom ? buf + t->offset : NULL;
        for (int64_t i = 0; i < t->numel; i++) {
            float d = (g[i] + wd * p[i]) * scale;
            if (use_mom) d = momentum_dir(d, &b[i], mu, 0.0f, 0, step == 1);
            p[i] -= lr * d;
        }
    }
    return SS_OK;
}

double sst_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total,
                            double start_lr, double base_lr, double final_lr) {
    if (step < 0) step = 0;
    if (warmup > 0 && step < warmup)
        return start_lr + (base_lr - start_lr) * (double)step / (double)warmup;
    if (step >= total || total <= warmup) return final_lr;
    double f = (double)(step - warmup) / (double)(total - warmup);
    return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + cos(SST_PI * f));
}

double sst_momentum_cosine(int64_t step, int64_t total, double base,
                           double final_tau) {
    if (total <= 0 || step >= total) return final_tau;
    if (step < 0) step = 0;
    double f = (double)step / (double)total;
    return final_tau - (final_tau - base) * (cos(SST_PI * f) + 1.0) * 0.5;
}

ss_status sst_ema_update(float *target, const float *online, int64_t n,
                         double m) {
    static const char fn[] = "sst_ema_update";
    SS_TRY(ss__check_ptr(fn, "target", target));
    SS_TRY(ss__check_ptr(fn, "online", online));
    SS_TRY(ss__check_size(fn, "n", n, 1));
    if (!(m >= 0.0 && m <= 1.0))
        return ss__fail(SS_ERR_PARAM, fn, "m must be in [0, 1], got %g", m);
    const float a = (float)m, b = (float)(1.0 - m);
#pragma omp parallel for simd schedule(static) num_threads(ss__threads())
    for (int64_t i = 0; i < n; i++) target[i] = a * target[i] + b * online[i];
    return SS_OK;
}
