/*
 * mlm.c - masked cross-entropy over materialised logits (T, V), the MLM
 * head loss, with torch.nn.CrossEntropyLoss semantics: ignore_index, label
 * smoothing and class weights (weighted mean over the target weights).
 *
 * Cache: double W (the normaliser) then float lse[T].
 */
#include "predictive.h"

#include <string.h>

#define FN_F "ss_mlm_forward"
#define FN_B "ss_mlm_backward"

typedef struct {
    double W; /* sum of w[y_t] over scored rows; 0: loss 0, no gradient */
    double pad;
} mlm_head;

ss_status ss__check_targets(const char *fn, const int64_t *targets,
                            int64_t T, int64_t V, int64_t ignore,
                            int64_t *n_scored) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t y = targets[t];
        if (y == ignore) continue;
        if (y < 0 || y >= V)
            return ss__fail(SS_ERR_LABEL, fn,
                            "targets[%lld] = %lld is outside [0, %lld) and "
                            "not ignore_index (%lld)",
                            (long long)t, (long long)y, (long long)V,
                            (long long)ignore);
        n++;
    }
    if (n_scored) *n_scored = n;
    return SS_OK;
}

ss_status ss__check_smoothing(const char *fn, float eps) {
    if (eps >= 0.0f && eps <= 1.0f) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn,
                    "label_smoothing must be in [0, 1], got %g", (double)eps);
}

ss_status ss__check_class_weights(const char *fn, const float *w, int64_t V) {
    if (!w) return SS_OK;
    for (int64_t c = 0; c < V; c++)
        if (!(isfinite(w[c]) && w[c] >= 0.0f))
            return ss__fail(SS_ERR_PARAM, fn,
                            "class_weights[%lld] must be finite and >= 0, "
                            "got %g", (long long)c, (double)w[c]);
    return SS_OK;
}

double *ss__mlm_cache_norm(void *cache) { return &((mlm_head *)cache)->W; }

ss_mlm_opts ss_mlm_defaults(void) {
    ss_mlm_opts o = {SS_IGNORE_INDEX, 0.0f, NULL};
    return o;
}

static ss_status check_sizes(const char *fn, int64_t T, int64_t V) {
    SS_TRY(ss__check_size(fn, "T", T, 1));
    SS_TRY(ss__check_size(fn, "V", V, 1));
    return ss__check_product(fn, T, V, 1);
}

size_t ss_mlm_cache_size(int64_t T, int64_t V) {
    if (check_sizes("ss_mlm_cache_size", T, V) != SS_OK) return 0;
    return sizeof(mlm_head) + (size_t)T * sizeof(float);
}

static ss_status check_args(const char *fn, const float *logits,
                            const int64_t *targets, int64_t T, int64_t V,
                            const ss_mlm_opts *o) {
    SS_TRY(ss__check_ptr(fn, "logits", logits));
    SS_TRY(ss__check_ptr(fn, "targets", targets));
    SS_TRY(check_sizes(fn, T, V));
    SS_TRY(ss__check_smoothing(fn, o->label_smoothing));
    SS_TRY(ss__check_class_weights(fn, o->class_weights, V));
    SS_TRY(ss__check_targets(fn, targets, T, V, o->ignore_index, NULL));
    for (int64_t t = 0; t < T; t++) /* ignored rows are never read */
        if (targets[t] != o->ignore_index)
            for (int64_t c = 0; c < V; c++)
                if (!isfinite(logits[t * V + c]))
                    return ss__fail(SS_ERR_NONFINITE, fn,
                                    "logits[%lld] is %g (not finite)",
                                    (long long)(t * V + c),
                                    (double)logits[t * V + c]);
    return SS_OK;
}

static double weight_of(const ss_mlm_opts *o, int64_t c) {
    return o->class_weights ? (double)o->class_weights[c] : 1.0;
}

/* Row t: lse and the unnormalised loss_t (see selfsup.h). */
static double row_loss(const float *x, int64_t y, int64_t V, double sw,
                       const ss_mlm_opts *o, float *lse_out) {
    float m = -INFINITY;
    double s = 0.0, sx = 0.0;
    for (int64_t c = 0; c < V; c++) m = x[c] > m ? x[c] : m;
    SS__SIMD_SUM(s)
    for (int64_t c = 0; c < V; c++) s += ss__exp_le0(x[c] - m);
    if (o->class_weights) {
        SS__SIMD_SUM(sx)
        for (int64_t c = 0; c < V; c++) sx += (double)o->class_weights[c] * x[c];
    } else {
        SS__SIMD_SUM(sx)
        for (int64_t c = 0; c < V; c++) sx += x[c];
    }
    double lse = m + log(s), eps = o->label_smoothing;
    *lse_out = (float)lse;
    double nll = weight_of(o, y) * (lse - x[y]);
    double smooth = sw * lse - sx; /* sum_c w_c (lse - x_c) */
    return (1.0 - eps) * nll + eps / (double)V * smooth;
}

ss_status ss_mlm_forward(float *loss, float *losses, void *cache,
                         const float *logits, const int64_t *targets,
                         int64_t T, int64_t V, const ss_mlm_opts *opts) {
    ss_mlm_opts o = opts ? *opts : ss_mlm_defaults();
    SS_TRY(ss__check_ptr(FN_F, "loss", loss));
    SS_TRY(ss__check_ptr(FN_F, "cache", cache));
    SS_TRY(check_args(FN_F, logits, targets, T, V, &o));
    double *row = ss__malloc(sizeof(double) * (size_t)T);
    if (!row) return ss__fail(SS_ERR_NOMEM, FN_F, "row workspace (%lld)",
                              (long long)T);
    double sw = 0.0;
    for (int64_t c = 0; c < V; c++) sw += weight_of(&o, c);
    mlm_head *hd = cache;
    float *lse = (float *)(hd + 1);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads())
#endif
    for (int64_t t = 0; t < T; t++) {
        row[t] = 0.0, lse[t] = 0.0f;
        if (targets[t] != o.ignore_index)
            row[t] = row_loss(logits + t * V, targets[t], V, sw, &o, &lse[t]);
    }
    double total = 0.0, W = 0.0;
    for (int64_t t = 0; t < T; t++) {
        if (targets[t] == o.ignore_index) continue;
        total += row[t], W += weight_of(&o, targets[t]);
    }
    hd->W = W;
    *loss = W > 0.0 ? (float)(total / W) : 0.0f;
    if (losses)
        for (int64_t t = 0; t < T; t++) losses[t] = (float)row[t];
    ss__free(row);
    return SS_OK;
}

/* d loss_t / d x_c = (1-eps) w_y (p_c - [c == y]) + (eps/V) (S_w p_c - w_c) */
ss_status ss_mlm_backward(float *dlogits, float dloss, const void *cache,
                          const float *logits, const int64_t *targets,
                          int64_t T, int64_t V, const ss_mlm_opts *opts) {
    ss_mlm_opts o = opts ? *opts : ss_mlm_defaults();
    SS_TRY(ss__check_ptr(FN_B, "dlogits", dlogits));
    SS_TRY(ss__check_ptr(FN_B, "cache", cache));
    SS_TRY(check_args(FN_B, logits, targets, T, V, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, FN_B, "dloss is %g (not finite)",
                        (double)dloss);
    const mlm_head *hd = cache;
    const float *lse = (const float *)(hd + 1);
    if (!(hd->W > 0.0)) return SS_OK;
    double sw = 0.0;
    for (int64_t c = 0; c < V; c++) sw += weight_of(&o, c);
    double scale = dloss / hd->W, eps = o.label_smoothing;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads())
#endif
    for (int64_t t = 0; t < T; t++) {
        int64_t y = targets[t];
        if (y == o.ignore_index) continue;
        const float *x = logits + t * V;
        float *d = dlogits + t * V;
        double a = (1.0 - eps) * weight_of(&o, y), b = eps / (double)V;
        float fp = (float)(scale * (a + b * sw)), fb = (float)(scale * b);
        float l = lse[t];
        const float *w = o.class_weights;
        if (w)
            for (int64_t c = 0; c < V; c++)
                d[c] += fp * ss__exp_le0(x[c] - l) - fb * w[c];
        else
            for (int64_t c = 0; c < V; c++)
                d[c] += fp * ss__exp_le0(x[c] - l) - fb;
        d[y] -= (float)(scale * a);
    }
    return SS_OK;
}
