/*
 * mae.c - MAE: patchify, the masked-patch loss with the optional norm-pix
 * target, and the random (MAE) and block-wise (BEiT) patch-mask
 * generators.
 */
#include "internal.h"

#include <string.h>

#define MAE_NORM_EPS 1e-6 /* MAE: (var + 1e-6) ** .5 */

ss_mae_opts ss_mae_defaults(void) {
    ss_mae_opts o = {1};
    return o;
}

static ss_status check_image(const char *fn, int64_t B, int64_t C, int64_t Hi,
                             int64_t Wi, int64_t p) {
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "C", C, 1));
    SS_TRY(ss__check_size(fn, "Hi", Hi, 1));
    SS_TRY(ss__check_size(fn, "Wi", Wi, 1));
    SS_TRY(ss__check_size(fn, "p", p, 1));
    if (Hi % p || Wi % p)
        return ss__fail(SS_ERR_SIZE, fn,
                        "p = %lld must divide Hi = %lld and Wi = %lld",
                        (long long)p, (long long)Hi, (long long)Wi);
    SS_TRY(ss__check_product(fn, B, C, Hi));
    return ss__check_product(fn, B * C, Hi, Wi);
}

/* Patch (b, l) of imgs into out (P), MAE order (u, v, c). */
static void patch_of(float *out, const float *imgs, int64_t b, int64_t l,
                     int64_t C, int64_t Hi, int64_t Wi, int64_t p) {
    int64_t gw = Wi / p, i = l / gw, j = l % gw;
    for (int64_t u = 0; u < p; u++)
        for (int64_t v = 0; v < p; v++)
            for (int64_t c = 0; c < C; c++)
                out[(u * p + v) * C + c] =
                    imgs[((b * C + c) * Hi + i * p + u) * Wi + j * p + v];
}

ss_status ss_mae_patchify(float *patches, const float *imgs, int64_t B,
                          int64_t C, int64_t Hi, int64_t Wi, int64_t p) {
    const char *fn = "ss_mae_patchify";
    SS_TRY(ss__check_ptr(fn, "patches", patches));
    SS_TRY(ss__check_ptr(fn, "imgs", imgs));
    SS_TRY(check_image(fn, B, C, Hi, Wi, p));
    int64_t L = (Hi / p) * (Wi / p), P = p * p * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads())
#endif
    for (int64_t k = 0; k < B * L; k++)
        patch_of(patches + k * P, imgs, k / L, k % L, C, Hi, Wi, p);
    return SS_OK;
}

/* Target of one patch in place: norm-pix with the unbiased variance. */
static void norm_target(float *t, int64_t P) {
    double m = 0.0, v = 0.0;
    for (int64_t k = 0; k < P; k++) m += t[k];
    m /= (double)P;
    for (int64_t k = 0; k < P; k++) v += (t[k] - m) * (t[k] - m);
    v = P > 1 ? v / (double)(P - 1) : 0.0;
    double inv = 1.0 / sqrt(v + MAE_NORM_EPS);
    for (int64_t k = 0; k < P; k++) t[k] = (float)((t[k] - m) * inv);
}

static ss_status check_args(const char *fn, const float *pred,
                            const float *imgs, const uint8_t *mask, int64_t B,
                            int64_t C, int64_t Hi, int64_t Wi, int64_t p) {
    SS_TRY(ss__check_ptr(fn, "pred", pred));
    SS_TRY(ss__check_ptr(fn, "imgs", imgs));
    SS_TRY(ss__check_ptr(fn, "mask", mask));
    SS_TRY(check_image(fn, B, C, Hi, Wi, p));
    SS_TRY(ss__check_finite(fn, "imgs", imgs, B * C * Hi * Wi));
    return ss__check_finite(fn, "pred", pred, B * C * Hi * Wi);
}

/* Shared body: per-patch losses (NULL-able), loss, and (dpred != NULL) the
 * gradient scaled by dloss. Returns the masked count. */
static int64_t mae_run(float *loss, float *losses, float *dpred, float dloss,
                       const float *pred, const float *imgs,
                       const uint8_t *mask, int64_t B, int64_t C, int64_t Hi,
                       int64_t Wi, int64_t p, int norm_pix, float *tbuf) {
    int64_t L = (Hi / p) * (Wi / p), P = p * p * C, nm = 0;
    for (int64_t k = 0; k < B * L; k++) nm += mask[k] != 0;
    double total = 0.0, g = nm > 0 ? 2.0 * dloss / ((double)nm * (double)P) : 0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : total) schedule(static) \
    num_threads(ss__threads())
#endif
    for (int64_t k = 0; k < B * L; k++) {
        if (!losses && !mask[k]) continue;
        float *t = tbuf + (size_t)k * (size_t)P;
        patch_of(t, imgs, k / L, k % L, C, Hi, Wi, p);
        if (norm_pix) norm_target(t, P);
        const float *x = pred + k * P;
        double s = 0.0;
        for (int64_t e = 0; e < P; e++) s += ((double)x[e] - t[e]) * (x[e] - t[e]);
        if (losses) losses[k] = (float)(s / (double)P);
        if (!mask[k]) continue;
        total += s / (double)P;
        if (dpred)
            for (int64_t e = 0; e < P; e++)
                dpred[k * P + e] += (float)(g * ((double)x[e] - t[e]));
    }
    if (loss) *loss = nm > 0 ? (float)(total / (double)nm) : 0.0f;
    return nm;
}

static ss_status mae_call(const char *fn, float *loss, float *losses,
                          float *dpred, float dloss, const float *pred,
                          const float *imgs, const uint8_t *mask, int64_t B,
                          int64_t C, int64_t Hi, int64_t Wi, int64_t p,
                          const ss_mae_opts *opts) {
    ss_mae_opts o = opts ? *opts : ss_mae_defaults();
    SS_TRY(check_args(fn, pred, imgs, mask, B, C, Hi, Wi, p));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                        (double)dloss);
    float *tbuf = ss__malloc(sizeof(float) * (size_t)(B * C * Hi * Wi));
    if (!tbuf) return ss__fail(SS_ERR_NOMEM, fn, "target patches");
    mae_run(loss, losses, dpred, dloss, pred, imgs, mask, B, C, Hi, Wi, p,
            o.norm_pix, tbuf);
    ss__free(tbuf);
    return SS_OK;
}

ss_status ss_mae_forward(float *loss, float *losses, const float *pred,
                         const float *imgs, const uint8_t *mask, int64_t B,
                         int64_t C, int64_t Hi, int64_t Wi, int64_t p,
                         const ss_mae_opts *opts) {
    SS_TRY(ss__check_ptr("ss_mae_forward", "loss", loss));
    return mae_call("ss_mae_forward", loss, losses, NULL, 0.0f, pred, imgs,
                    mask, B, C, Hi, Wi, p, opts);
}

ss_status ss_mae_backward(float *dpred, float dloss, const float *pred,
                          const float *imgs, const uint8_t *mask, int64_t B,
                          int64_t C, int64_t Hi, int64_t Wi, int64_t p,
                          const ss_mae_opts *opts) {
    SS_TRY(ss__check_ptr("ss_mae_backward", "dpred", dpred));
    return mae_call("ss_mae_backward", NULL, NULL, dpred, dloss, pred, imgs,
                    mask, B, C, Hi, Wi, p, opts);
}

/* ---- mask generators ------------------------------------------------------ */

ss_status ss_mae_random_mask(uint8_t *mask, int64_t *ids_shuffle, int64_t B,
                             int64_t L, double mask_ratio, ss_rng *rng) {
    const char *fn = "ss_mae_random_mask";
    SS_TRY(ss__check_ptr(fn, "mask", mask));
    SS_TRY(ss__check_ptr(fn, "rng", rng));
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "L", L, 1));
    SS_TRY(ss__check_product(fn, B, L, 1));
    if (!(mask_ratio >= 0.0 && mask_ratio < 1.0))
        return ss__fail(SS_ERR_PARAM, fn, "mask_ratio must be in [0, 1), got %g",
                        mask_ratio);
    int64_t *perm = ss__malloc(sizeof(int64_t) * (size_t)L);
    if (!perm) return ss__fail(SS_ERR_NOMEM, fn, "permutation (L = %lld)",
                               (long long)L);
    int64_t keep = (int64_t)((double)L * (1.0 - mask_ratio));
    for (int64_t b = 0; b < B; b++) {
        /* A uniform permutation, as MAE's argsort of uniform noise. */
        for (int64_t l = 0; l < L; l++) perm[l] = l;
        for (int64_t i = L - 1; i > 0; i--) {
            int64_t k = (int64_t)(ss_rng_u64(rng) % (uint64_t)(i + 1));
            int64_t tmp = perm[i];
            perm[i] = perm[k], perm[k] = tmp;
        }
        for (int64_t i = 0; i < L; i++) mask[b * L + perm[i]] = i >= keep;
        if (ids_shuffle) memcpy(ids_shuffle + b * L, perm, sizeof(int64_t) * (size_t)L);
    }
    ss__free(perm);
    return SS_OK;
}

static double uniform_in(ss_rng *rng, double a, double b) {
    return a + (b - a) * ss_rng_uniform(rng);
}

/* BEiT's MaskingGenerator._mask: one block, returns patches added. */
static int64_t beit_block(uint8_t *m, int64_t gh, int64_t gw, int64_t minp,
                          int64_t maxp, ss_rng *rng) {
    const double la = log(0.3), lb = log(1.0 / 0.3);
    int64_t delta = 0;
    for (int attempt = 0; attempt < 10 && delta == 0; attempt++) {
        double area = uniform_in(rng, (double)minp, (double)maxp);
        double ar = exp(uniform_in(rng, la, lb));
        int64_t h = (int64_t)llround(sqrt(area * ar));
        int64_t w = (int64_t)llround(sqrt(area / ar));
        if (!(w < gw && h < gh)) continue;
        int64_t top = (int64_t)(ss_rng_u64(rng) % (uint64_t)(gh - h + 1));
        int64_t left = (int64_t)(ss_rng_u64(rng) % (uint64_t)(gw - w + 1));
        int64_t had = 0;
        for (int64_t i = top; i < top + h; i++)
            for (int64_t j = left; j < left + w; j++) had += m[i * gw + j];
        int64_t add = h * w - had;
        if (!(add > 0 && add <= maxp)) continue;
        for (int64_t i = top; i < top + h; i++)
            for (int64_t j = left; j < left + w; j++) m[i * gw + j] = 1;
        delta = add;
    }
    return delta;
}

ss_status ss_mae_block_mask(uint8_t *mask, int64_t B, int64_t gh, int64_t gw,
                            int64_t num_masked, int64_t min_patches,
                            ss_rng *rng) {
    const char *fn = "ss_mae_block_mask";
    SS_TRY(ss__check_ptr(fn, "mask", mask));
    SS_TRY(ss__check_ptr(fn, "rng", rng));
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "gh", gh, 1));
    SS_TRY(ss__check_size(fn, "gw", gw, 1));
    SS_TRY(ss__check_product(fn, B, gh, gw));
    if (num_masked < 0 || num_masked > gh * gw)
        return ss__fail(SS_ERR_PARAM, fn,
                        "num_masked must be in [0, %lld], got %lld",
                        (long long)(gh * gw), (long long)num_masked);
    if (min_patches < 1)
        return ss__fail(SS_ERR_PARAM, fn, "min_patches must be >= 1, got %lld",
                        (long long)min_patches);
    int64_t L = gh * gw;
    for (int64_t b = 0; b < B; b++) {
        uint8_t *m = mask + b * L;
        memset(m, 0, (size_t)L);
        for (int64_t count = 0; count < num_masked;) {
            int64_t d = beit_block(m, gh, gw, min_patches, num_masked - count, rng);
            if (d == 0) break;
            count += d;
        }
    }
    return SS_OK;
}
