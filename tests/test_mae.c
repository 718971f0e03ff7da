/* test_mae.c - MAE: patchify and loss against PyTorch (MAE's own code),
 * finite differences on the direct reference, no masked patch, accumulation,
 * threads, errors; the random (MAE) and block-wise (BEiT) mask generators. */
#include "direct_predictive.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("mae.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 4);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t B = fx_int(fx, KEY("B")), C = fx_int(fx, KEY("C"));
        int64_t H = fx_int(fx, KEY("H")), W = fx_int(fx, KEY("W"));
        int64_t p = fx_int(fx, KEY("p")), L = (H / p) * (W / p), P = p * p * C, n;
        ss_mae_opts o = {(int)fx_int(fx, KEY("norm_pix"))};
        float *imgs = fx_f32_copy(fx, KEY("imgs"), &n);
        float *pred = fx_f32_copy(fx, KEY("pred"), &n);
        const int64_t *mk = fx_i64(fx, KEY("mask"), &n);
        SS_CHECK(imgs && pred && mk && n == B * L);
        if (!imgs || !pred || !mk) continue;
        uint8_t *mask = malloc((size_t)(B * L));
        for (int64_t i = 0; i < B * L; i++) mask[i] = (uint8_t)mk[i];
        float *patches = ss_test_alloc(B * L * P), *dpred = ss_test_alloc(B * L * P);
        float *losses = ss_test_alloc(B * L), loss;
        SS_CHECK_OK(ss_mae_patchify(patches, imgs, B, C, H, W, p));
        SS_CHECK_CLOSE_FD(patches, fx_f64(fx, KEY("patches"), &n), B * L * P,
                          1e-7, "patchify");
        SS_CHECK_OK(ss_mae_forward(&loss, losses, pred, imgs, mask, B, C, H, W, p, &o));
        SS_CHECK_OK(ss_mae_backward(dpred, 1.0f, pred, imgs, mask, B, C, H, W, p, &o));
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK_CLOSE_FD(losses, fx_f64(fx, KEY("losses"), &n), B * L, 1e-4, "losses");
        SS_CHECK_CLOSE_FD(dpred, fx_f64(fx, KEY("dpred"), &n), B * L * P, 1e-4, "dpred");
        double *dd = ss_test_alloc_d(B * L * P);
        double l = ss_direct_mae(fx_f64(fx, KEY("pred"), &n),
                                 fx_f64(fx, KEY("imgs"), &n), mask, B, C, H, W,
                                 p, o.norm_pix, NULL, dd);
        SS_CHECK_NEAR(l, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dd, fx_f64(fx, KEY("dpred"), &n), B * L * P) <= 1e-10);
#undef KEY
        free(imgs), free(pred), free(mask), free(patches), free(dpred);
        free(losses), free(dd);
    }
    fx_free(fx);
}

typedef struct {
    const double *imgs;
    const uint8_t *mask;
    int norm;
} mae_ctx;

static double mae_f(const double *pred, void *p) {
    mae_ctx *c = p;
    return ss_direct_mae(pred, c->imgs, c->mask, 2, 3, 4, 6, 2, c->norm, NULL,
                         NULL);
}

SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    int64_t n = 2 * 3 * 4 * 6; /* B=2, C=3, 4x6, p=2: L=6, P=12 */
    double *imgs = ss_test_alloc_d(n), *pred = ss_test_alloc_d(n);
    double *g = ss_test_alloc_d(n);
    uint8_t mask[12] = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0};
    ss_test_fill_normal_d(imgs, n, &rng);
    ss_test_fill_normal_d(pred, n, &rng);
    for (int norm = 0; norm < 2; norm++) {
        mae_ctx c = {imgs, mask, norm};
        ss_direct_mae(pred, imgs, mask, 2, 3, 4, 6, 2, norm, NULL, g);
        SS_CHECK(ss_test_fd_max_err(mae_f, &c, pred, g, n, 1e-5, 9) < 1e-6);
    }
    free(imgs), free(pred), free(g);
}

SS_TEST(float_vs_direct_threads_accumulation) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t B = 3, C = 3, H = 32, W = 32, p = 8, L = 16, P = 192, n = B * C * H * W;
    float *imgs = ss_test_alloc(n), *pred = ss_test_alloc(n);
    float *d1 = ss_test_alloc(n), *d2 = ss_test_alloc(n), *pre = ss_test_alloc(n);
    double *id = ss_test_alloc_d(n), *pd = ss_test_alloc_d(n), *gd = ss_test_alloc_d(n);
    uint8_t *mask = malloc((size_t)(B * L));
    ss_test_fill_normal(imgs, n, &rng);
    ss_test_fill_normal(pred, n, &rng);
    ss_test_fill_normal(pre, n, &rng);
    memcpy(d2, pre, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) id[i] = imgs[i], pd[i] = pred[i];
    SS_CHECK_OK(ss_mae_random_mask(mask, NULL, B, L, 0.75, &rng));
    float l1, l2;
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(ss_mae_forward(&l1, NULL, pred, imgs, mask, B, C, H, W, p, NULL));
    SS_CHECK_OK(ss_mae_backward(d1, 1.0f, pred, imgs, mask, B, C, H, W, p, NULL));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(ss_mae_forward(&l2, NULL, pred, imgs, mask, B, C, H, W, p, NULL));
    SS_CHECK_OK(ss_mae_backward(d2, 0.5f, pred, imgs, mask, B, C, H, W, p, NULL));
    SS_CHECK_OK(ss_set_num_threads(0));
    double want = ss_direct_mae(pd, id, mask, B, C, H, W, p, 1, NULL, gd);
    SS_CHECK_NEAR(l1, want, 1e-5);
    SS_CHECK_NEAR(l2, want, 1e-5);
    SS_CHECK_CLOSE_FD(d1, gd, n, 1e-5, "dpred");
    for (int64_t i = 0; i < n; i++) SS_CHECK_NEAR(d2[i], pre[i] + 0.5f * d1[i], 1e-5);
    (void)P;
    free(imgs), free(pred), free(d1), free(d2), free(pre), free(id), free(pd);
    free(gd), free(mask);
}

SS_TEST(no_masked_patch_is_zero) {
    float imgs[16], pred[16], d[16] = {0}, loss = -1, losses[4];
    uint8_t mask[4] = {0, 0, 0, 0};
    for (int i = 0; i < 16; i++) imgs[i] = (float)i, pred[i] = 1.0f;
    SS_CHECK_OK(ss_mae_forward(&loss, losses, pred, imgs, mask, 1, 1, 4, 4, 2, NULL));
    SS_CHECK(loss == 0.0f && isfinite(losses[0]) && losses[0] > 0);
    SS_CHECK_OK(ss_mae_backward(d, 1.0f, pred, imgs, mask, 1, 1, 4, 4, 2, NULL));
    for (int i = 0; i < 16; i++) SS_CHECK(d[i] == 0.0f);
    /* constant patches with norm_pix: var = 0, no NaN */
    for (int i = 0; i < 16; i++) imgs[i] = 3.0f;
    mask[1] = 1;
    SS_CHECK_OK(ss_mae_forward(&loss, NULL, pred, imgs, mask, 1, 1, 4, 4, 2, NULL));
    SS_CHECK(isfinite(loss) && fabsf(loss - 1.0f) < 1e-6f);
}

SS_TEST(random_mask) {
    ss_rng a, b;
    ss_rng_seed(&a, 77), ss_rng_seed(&b, 77);
    int64_t B = 50, L = 196;
    uint8_t *m1 = malloc((size_t)(B * L)), *m2 = malloc((size_t)(B * L));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(B * L));
    SS_CHECK_OK(ss_mae_random_mask(m1, ids, B, L, 0.75, &a));
    SS_CHECK_OK(ss_mae_random_mask(m2, NULL, B, L, 0.75, &b));
    SS_CHECK(memcmp(m1, m2, (size_t)(B * L)) == 0); /* deterministic */
    int64_t per_pos[196] = {0};
    for (int64_t s = 0; s < B; s++) {
        int64_t kept = 0;
        uint8_t seen[196] = {0};
        for (int64_t l = 0; l < L; l++) {
            kept += !m1[s * L + l], per_pos[l] += m1[s * L + l];
            seen[ids[s * L + l]] = 1;
            SS_CHECK(m1[s * L + ids[s * L + l]] == (l >= 49));
        }
        SS_CHECK_INT(kept, 49); /* int(196 * 0.25) */
        for (int l = 0; l < 196; l++) SS_CHECK(seen[l]);
    }
    /* samples differ, positions are used evenly */
    SS_CHECK(memcmp(m1, m1 + L, (size_t)L) != 0);
    int64_t lo = B, hi = 0;
    for (int l = 0; l < 196; l++) {
        lo = per_pos[l] < lo ? per_pos[l] : lo;
        hi = per_pos[l] > hi ? per_pos[l] : hi;
    }
    SS_CHECK(lo >= 20 && hi <= 50);
    SS_CHECK_OK(ss_mae_random_mask(m1, NULL, 1, 10, 0.0, &a));
    for (int l = 0; l < 10; l++) SS_CHECK(m1[l] == 0);
    SS_CHECK_OK(ss_mae_random_mask(m1, NULL, 1, 10, 0.75, &a));
    int64_t k = 0;
    for (int l = 0; l < 10; l++) k += !m1[l];
    SS_CHECK_INT(k, 2); /* int(2.5), truncated as MAE */
    free(m1), free(m2), free(ids);
}

SS_TEST(block_mask) {
    ss_rng a, b;
    ss_rng_seed(&a, 5), ss_rng_seed(&b, 5);
    int64_t B = 40, gh = 14, gw = 14, L = 196;
    uint8_t *m1 = malloc((size_t)(B * L)), *m2 = malloc((size_t)(B * L));
    SS_CHECK_OK(ss_mae_block_mask(m1, B, gh, gw, 75, 16, &a));
    SS_CHECK_OK(ss_mae_block_mask(m2, B, gh, gw, 75, 16, &b));
    SS_CHECK(memcmp(m1, m2, (size_t)(B * L)) == 0);
    double mean = 0;
    for (int64_t s = 0; s < B; s++) {
        int64_t k = 0, rows = 0;
        for (int64_t l = 0; l < L; l++) k += m1[s * L + l];
        SS_CHECK(k <= 75 && k >= 16);
        mean += (double)k / B;
        /* blocks, not scattered patches: most masked patches have a masked
         * 4-neighbour */
        for (int64_t i = 0; i < gh; i++)
            for (int64_t j = 0; j < gw; j++) {
                if (!m1[s * L + i * gw + j]) continue;
                int nb = (i > 0 && m1[s * L + (i - 1) * gw + j]) ||
                         (i + 1 < gh && m1[s * L + (i + 1) * gw + j]) ||
                         (j > 0 && m1[s * L + i * gw + j - 1]) ||
                         (j + 1 < gw && m1[s * L + i * gw + j + 1]);
                rows += nb;
            }
        SS_CHECK(rows >= k * 9 / 10);
    }
    SS_CHECK(mean > 70.0); /* BEiT reaches the target almost always */
    SS_CHECK_OK(ss_mae_block_mask(m1, 1, gh, gw, 0, 16, &a));
    for (int l = 0; l < 196; l++) SS_CHECK(m1[l] == 0);
    free(m1), free(m2);
}

SS_TEST(errors) {
    float x[16] = {0}, d[16] = {0}, loss = 5;
    uint8_t m[4] = {1, 0, 0, 0};
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    SS_CHECK_STATUS(ss_mae_patchify(NULL, x, 1, 1, 4, 4, 2), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_patchify(d, x, 1, 1, 4, 4, 3), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("p = 3 must divide Hi = 4 and Wi = 4");
    SS_CHECK_STATUS(ss_mae_patchify(d, x, 1, 0, 4, 4, 2), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mae_forward(NULL, NULL, x, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, NULL, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, x, NULL, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, x, x, NULL, 1, 1, 4, 4, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, x, x, m, 0, 1, 4, 4, 2, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, x, x, m, 1, 1, 4, 5, 2, NULL), SS_ERR_SIZE);
    float bad[16] = {0};
    bad[9] = NAN;
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, bad, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("pred[9]");
    SS_CHECK_STATUS(ss_mae_forward(&loss, NULL, x, bad, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("imgs[9]");
    SS_CHECK(loss == 5.0f);
    SS_CHECK_STATUS(ss_mae_backward(NULL, 1.0f, x, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_backward(d, NAN, x, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NONFINITE);
    SS_CHECK_STATUS(ss_mae_backward(d, 1.0f, bad, x, m, 1, 1, 4, 4, 2, NULL), SS_ERR_NONFINITE);
    for (int i = 0; i < 16; i++) SS_CHECK(d[i] == 0.0f);
    uint8_t mk[8];
    SS_CHECK_STATUS(ss_mae_random_mask(NULL, NULL, 1, 8, 0.5, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_random_mask(mk, NULL, 1, 8, 0.5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_random_mask(mk, NULL, 1, 0, 0.5, &rng), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mae_random_mask(mk, NULL, 1, 8, 1.0, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("mask_ratio must be in [0, 1), got 1");
    SS_CHECK_STATUS(ss_mae_random_mask(mk, NULL, 1, 8, NAN, &rng), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_mae_block_mask(NULL, 1, 2, 4, 3, 1, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_block_mask(mk, 1, 2, 4, 3, 1, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mae_block_mask(mk, 1, 0, 4, 3, 1, &rng), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mae_block_mask(mk, 1, 2, 4, 9, 1, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("num_masked must be in [0, 8], got 9");
    SS_CHECK_STATUS(ss_mae_block_mask(mk, 1, 2, 4, 3, 0, &rng), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("min_patches must be >= 1, got 0");
}
