/*
 * ibot.c - the iBOT masked-patch loss (lightly IBOTPatchLoss, DINOv2).
 *
 * Each masked token is a DINO term between its centred, sharpened teacher
 * softmax and its student log-softmax, weighted by 1 / (masked tokens of its
 * image) and summed over the batch divided by B.
 */
#include "distill.h"

ss_ibot_opts ss_ibot_defaults(void) {
    ss_ibot_opts o = {0.04f, 0.1f, 0.9f};
    return o;
}

/* Cache: double lse_t[M], lse_s[M], w[M] (1 / masked count of the image). */
size_t ss_ibot_cache_size(int64_t M, int64_t K) {
    static const char fn[] = "ss_ibot_cache_size";
    if (ss__check_size(fn, "M", M, 0) || ss__check_size(fn, "K", K, 1) ||
        (M > 0 && ss__check_product(fn, M, K, 1)))
        return 0;
    return sizeof(double) * (size_t)(3 * M + 1);
}

static ss_status ibot_check(const char *fn, const float *teacher,
                            const float *student, const uint8_t *mask,
                            const ss_center *c, int64_t B, int64_t T,
                            int64_t M, int64_t K, const ss_ibot_opts *o) {
    SS_TRY(ss__check_ptr(fn, "teacher", teacher));
    SS_TRY(ss__check_ptr(fn, "student", student));
    SS_TRY(ss__check_ptr(fn, "mask", mask));
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "T", T, 1));
    SS_TRY(ss__check_size(fn, "M", M, 0));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_product(fn, B, T, 1));
    if (M > 0) SS_TRY(ss__check_product(fn, M, K, 1));
    if (ss_center_dim(c) != K)
        return ss__fail(SS_ERR_SIZE, fn, "centre dimension %lld != K = %lld",
                        (long long)ss_center_dim(c), (long long)K);
    SS_TRY(ss__check_positive(fn, "teacher_temp", o->teacher_temp));
    SS_TRY(ss__check_positive(fn, "student_temp", o->student_temp));
    if (!(o->center_momentum >= 0.0f && o->center_momentum <= 1.0f))
        return ss__fail(SS_ERR_PARAM, fn,
                        "center_momentum must be in [0, 1], got %g",
                        (double)o->center_momentum);
    int64_t ones = 0;
    for (int64_t i = 0; i < B * T; i++) {
        if (mask[i] > 1)
            return ss__fail(SS_ERR_LABEL, fn, "mask[%lld] = %u is not 0 or 1",
                            (long long)i, (unsigned)mask[i]);
        ones += mask[i];
    }
    if (ones != M)
        return ss__fail(SS_ERR_SIZE, fn,
                        "M = %lld but the mask has %lld masked tokens",
                        (long long)M, (long long)ones);
    SS_TRY(ss__check_finite(fn, "teacher", teacher, M * K));
    SS_TRY(ss__check_finite(fn, "student", student, M * K));
    return SS_OK;
}

/* w[i] = 1 / max(1, masked tokens of the image of token i). */
static void token_weights(double *w, const uint8_t *mask, int64_t B,
                          int64_t T) {
    int64_t i = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t m = 0;
        for (int64_t t = 0; t < T; t++) m += mask[b * T + t];
        for (int64_t j = 0; j < m; j++) w[i++] = 1.0 / (double)m;
    }
}

ss_status ss_ibot_forward(float *loss, float *losses, void *cache,
                          const float *teacher, const float *student,
                          const uint8_t *mask, const ss_center *c, int64_t B,
                          int64_t T, int64_t M, int64_t K,
                          const ss_ibot_opts *opts) {
    static const char fn[] = "ss_ibot_forward";
    ss_ibot_opts o = opts ? *opts : ss_ibot_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ibot_check(fn, teacher, student, mask, c, B, T, M, K, &o));
    double *lse_t = cache, *lse_s = lse_t + M, *w = lse_s + M;
    double *ce = ss__malloc(sizeof(double) * (size_t)(M > 0 ? M : 1));
    if (!ce) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    token_weights(w, mask, B, T);
    const float *cen = ss_center_data(c);
    double it = 1.0 / o.teacher_temp, is = 1.0 / o.student_temp;
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (M * K >= SS__PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *t = teacher + i * K, *s = student + i * K;
        double lt = ss__lse_row(t, cen, it, K), ls = ss__lse_row(s, NULL, is, K);
        double l = 0.0;
        for (int64_t k = 0; k < K; k++)
            l -= exp(it * ((double)t[k] - cen[k]) - lt) * (is * s[k] - ls);
        lse_t[i] = lt, lse_s[i] = ls, ce[i] = l;
    }
    double total = 0.0;
    for (int64_t i = 0; i < M; i++) total += ce[i] * w[i];
    if (losses)
        for (int64_t i = 0; i < M; i++) losses[i] = (float)ce[i];
    *loss = (float)(total / (double)B);
    ss__free(ce);
    return SS_OK;
}

ss_status ss_ibot_backward(float *dstudent, float dloss, const void *cache,
                           const float *teacher, const float *student,
                           const uint8_t *mask, const ss_center *c, int64_t B,
                           int64_t T, int64_t M, int64_t K,
                           const ss_ibot_opts *opts) {
    static const char fn[] = "ss_ibot_backward";
    ss_ibot_opts o = opts ? *opts : ss_ibot_defaults();
    SS_TRY(ss__check_ptr(fn, "dstudent", dstudent));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ibot_check(fn, teacher, student, mask, c, B, T, M, K, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    const double *lse_t = cache, *lse_s = lse_t + M, *w = lse_s + M;
    const float *cen = ss_center_data(c);
    double it = 1.0 / o.teacher_temp, is = 1.0 / o.student_temp;
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (M * K >= SS__PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *t = teacher + i * K, *s = student + i * K;
        float *ds = dstudent + i * K;
        double g = (double)dloss * w[i] * is / (double)B;
        /* d ce / d s = (softmax(s / ts) - P) / ts, as sum_k P = 1 */
        for (int64_t k = 0; k < K; k++)
            ds[k] += (float)(g * (exp(is * s[k] - lse_s[i]) -
                                  exp(it * ((double)t[k] - cen[k]) - lse_t[i])));
    }
    return SS_OK;
}
