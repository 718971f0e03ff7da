/* test_augment.c - augmentations: float64 torchvision-formula references
 * (tests/ref/augment.py), invariants and statistics of each op, and
 * determinism of the batch pipeline (seed, thread count, batch split). */
#include "augment.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

SS_TEST(ops_match_torch_reference) {
    ss_fixture *fx = fx_load("augment.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int ncrop = 0, nblur = 0, njit = 0;
    for (int i = 0;; i++, ncrop++) {
        char name[32];
        int64_t n, nb;
        snprintf(name, sizeof name, "crop%d_in", i);
        float *in = fx_f32_copy(fx, name, &n);
        if (!in) break;
        snprintf(name, sizeof name, "crop%d_box", i);
        const int64_t *box = fx_i64(fx, name, &nb);
        snprintf(name, sizeof name, "crop%d_out", i);
        const double *want = fx_f64(fx, name, NULL);
        snprintf(name, sizeof name, "crop%d_W", i);
        int64_t W = fx_int(fx, name), H = n / W;
        snprintf(name, sizeof name, "crop%d_out", i);
        float *out = ss_test_alloc(n);
        sst_resized_crop(out, in, H, W, box[0], box[1], box[2], box[3]);
        SS_CHECK_CLOSE_FD(out, want, n, 1e-5, name);
        free(in);
        free(out);
    }
    for (int i = 0;; i++, nblur++) {
        char name[32];
        int64_t n;
        snprintf(name, sizeof name, "blur%d_in", i);
        float *x = fx_f32_copy(fx, name, &n);
        if (!x) break;
        snprintf(name, sizeof name, "blur%d_k", i);
        int k = (int)fx_int(fx, name);
        snprintf(name, sizeof name, "blur%d_sigma", i);
        float sigma = (float)fx_scalar(fx, name);
        snprintf(name, sizeof name, "blur%d_W", i);
        int64_t W = fx_int(fx, name), H = n / W;
        snprintf(name, sizeof name, "blur%d_out", i);
        const double *want = fx_f64(fx, name, NULL);
        float *tmp = ss_test_alloc(n);
        sst_gauss_blur(x, tmp, H, W, k, sigma);
        SS_CHECK_CLOSE_FD(x, want, n, 1e-5, name);
        free(x);
        free(tmp);
    }
    for (int i = 0;; i++, njit++) {
        char name[32];
        int64_t n;
        snprintf(name, sizeof name, "jit%d_in", i);
        float *x = fx_f32_copy(fx, name, &n);
        if (!x) break;
        snprintf(name, sizeof name, "jit%d_b", i);
        float b = (float)fx_scalar(fx, name);
        snprintf(name, sizeof name, "jit%d_c", i);
        float c = (float)fx_scalar(fx, name);
        snprintf(name, sizeof name, "jit%d_out", i);
        sst_adjust_brightness(x, n, b);
        sst_adjust_contrast(x, n, c);
        SS_CHECK_CLOSE_FD(x, fx_f64(fx, name, NULL), n, 1e-5, name);
        free(x);
    }
    SS_CHECK(ncrop >= 3 && nblur >= 3 && njit >= 2);
    fx_free(fx);
}

/* torchvision RandomResizedCrop.get_params: window inside the image, area
 * and aspect within the ranges up to integer rounding. */
SS_TEST(crop_params_ranges) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    const int64_t H = 28, W = 28;
    double amin = 1e9, amax = 0;
    for (int t = 0; t < 4000; t++) {
        int64_t top, left, h, w;
        sst_crop_params(&top, &left, &h, &w, H, W, 0.2f, 1.0f, 0.75f,
                        4.0f / 3.0f, &rng);
        SS_CHECK(h >= 1 && w >= 1 && top >= 0 && left >= 0);
        SS_CHECK(top + h <= H && left + w <= W);
        double a = (double)(h * w) / (double)(H * W);
        amin = a < amin ? a : amin;
        amax = a > amax ? a : amax;
        SS_CHECK(a >= 0.2 * 0.85 && a <= 1.0);
        double r = (double)w / (double)h; /* rounding of sides <= 0.5 px */
        SS_CHECK(r >= 0.75 * (1 - 0.5 / 5) / (1 + 0.5 / 5) &&
                 r <= 4.0 / 3.0 * (1 + 0.5 / 5) / (1 - 0.5 / 5));
    }
    SS_CHECK(amin < 0.25 && amax > 0.95); /* the range is explored */
    /* No window fits ratio 10..20 at scale 0.9..1: central fallback with
     * w = W, h = round(W / 10). */
    int64_t top, left, h, w;
    sst_crop_params(&top, &left, &h, &w, H, W, 0.9f, 1.0f, 10.0f, 20.0f, &rng);
    SS_CHECK_INT(w, 28);
    SS_CHECK_INT(h, 3);
    SS_CHECK_INT(top, 12);
    SS_CHECK_INT(left, 0);
}

SS_TEST(crop_full_window_is_identity_and_size_kept) {
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    const int64_t H = 9, W = 13;
    float in[9 * 13], out[9 * 13];
    ss_test_fill_normal(in, H * W, &rng);
    sst_resized_crop(out, in, H, W, 0, 0, H, W);
    SS_CHECK(memcmp(in, out, sizeof in) == 0);
    /* A 1 x 1 window gives a constant image of that pixel. */
    sst_resized_crop(out, in, H, W, 4, 7, 1, 1);
    for (int i = 0; i < H * W; i++) SS_CHECK_NEAR(out[i], in[4 * W + 7], 1e-6);
}

SS_TEST(flip_twice_is_identity) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    float x[5 * 7], y[5 * 7];
    ss_test_fill_normal(x, 35, &rng);
    memcpy(y, x, sizeof x);
    sst_hflip(y, 5, 7);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 7; c++) SS_CHECK(y[r * 7 + c] == x[r * 7 + 6 - c]);
    sst_hflip(y, 5, 7);
    SS_CHECK(memcmp(x, y, sizeof x) == 0);
}

SS_TEST(blur_kernel_and_constant_image) {
    float k[5];
    sst_gauss_kernel(k, 5, 1.0f);
    double s = 0;
    for (int i = 0; i < 5; i++) s += k[i];
    SS_CHECK_NEAR(s, 1.0, 1e-6);
    SS_CHECK(k[0] == k[4] && k[1] == k[3] && k[2] > k[1] && k[1] > k[0]);
    SS_CHECK_NEAR(k[1] / k[2], exp(-0.5), 1e-6);
    float x[6 * 6], t[6 * 6];
    for (int i = 0; i < 36; i++) x[i] = 0.25f;
    sst_gauss_blur(x, t, 6, 6, 5, 1.7f);
    for (int i = 0; i < 36; i++) SS_CHECK_NEAR(x[i], 0.25, 1e-6);
}

SS_TEST(erase_area_within_range) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    sst_augment a = sst_augment_none();
    a.erase_p = 1.0f;
    a.erase_value = 0.0f;
    const int64_t H = 28, W = 28;
    float in[28 * 28], out[28 * 28], scratch[28 * 28];
    for (int i = 0; i < H * W; i++) in[i] = 1.0f;
    int erased = 0;
    for (int t = 0; t < 500; t++) {
        sst_augment_image(out, in, scratch, H, W, &a, &rng);
        int z = 0;
        for (int i = 0; i < H * W; i++) z += out[i] == 0.0f;
        if (z == 0) continue; /* 10 tries without a fitting window */
        erased++;
        double frac = (double)z / (double)(H * W);
        SS_CHECK(frac >= 0.02 * 0.6 && frac <= 0.33 * 1.45);
        /* the zeros form one rectangle: its bounding box is all zero */
        int r0 = 99, r1 = -1, c0 = 99, c1 = -1;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++)
                if (out[r * W + c] == 0.0f) {
                    r0 = r < r0 ? r : r0;
                    r1 = r > r1 ? r : r1;
                    c0 = c < c0 ? c : c0;
                    c1 = c > c1 ? c : c1;
                }
        SS_CHECK_INT((r1 - r0 + 1) * (c1 - c0 + 1), z);
        SS_CHECK(r1 - r0 + 1 < H && c1 - c0 + 1 < W);
    }
    SS_CHECK(erased > 450);
    int64_t top, left, eh, ew; /* impossible scale: no erasing */
    SS_CHECK_INT(sst_erase_params(&top, &left, &eh, &ew, 4, 4, 1.0f, 1.0f,
                                  1.0f, 1.0f, &rng), 0);
}

SS_TEST(jitter_and_noise_ranges) {
    ss_rng rng;
    ss_rng_seed(&rng, 7);
    sst_augment a = sst_augment_none();
    a.jitter_p = 1.0f;
    a.brightness = 0.4f;
    const int64_t P = 16;
    float in[16], out[16], s[16];
    for (int i = 0; i < P; i++) in[i] = 0.5f;
    double lo = 1, hi = 0;
    for (int t = 0; t < 2000; t++) { /* constant image: contrast is a no-op */
        sst_augment_image(out, in, s, 4, 4, &a, &rng);
        SS_CHECK(out[0] >= 0.5 * 0.6 - 1e-6 && out[0] <= 0.5 * 1.4 + 1e-6);
        for (int i = 1; i < P; i++) SS_CHECK(out[i] == out[0]);
        lo = out[0] < lo ? out[0] : lo;
        hi = out[0] > hi ? out[0] : hi;
    }
    SS_CHECK(lo < 0.31 && hi > 0.69);
    /* contrast 0.5 .. 1.5 on a two-level image keeps the mean and scales
     * the spread by the factor (no clamping at these levels). */
    a = sst_augment_none();
    a.jitter_p = 1.0f;
    a.contrast = 0.5f;
    for (int i = 0; i < P; i++) in[i] = i % 2 ? 0.6f : 0.4f;
    for (int t = 0; t < 200; t++) {
        sst_augment_image(out, in, s, 4, 4, &a, &rng);
        double f = (out[1] - out[0]) / 0.2;
        SS_CHECK(f >= 0.5 - 1e-5 && f <= 1.5 + 1e-5);
        SS_CHECK_NEAR(0.5 * (out[0] + out[1]), 0.5, 1e-6);
    }
    a = sst_augment_none();
    a.noise_p = 1.0f;
    a.noise_std = 0.1f;
    enum { B = 64 };
    float big_in[B * B], big_out[B * B], big_s[B * B];
    for (int i = 0; i < B * B; i++) big_in[i] = 0.5f;
    sst_augment_image(big_out, big_in, big_s, B, B, &a, &rng);
    double m = 0, v = 0;
    for (int i = 0; i < B * B; i++) m += big_out[i];
    m /= B * B;
    for (int i = 0; i < B * B; i++) v += (big_out[i] - m) * (big_out[i] - m);
    SS_CHECK_NEAR(m, 0.5, 0.01);
    SS_CHECK_NEAR(sqrt(v / (B * B)), 0.1, 0.01);
    /* solarize: x >= 0.5 -> 1 - x */
    a = sst_augment_none();
    a.solarize_p = 1.0f;
    float sx[4] = {0.1f, 0.5f, 0.7f, 0.49f}, so[4], ss[4];
    sst_augment_image(so, sx, ss, 2, 2, &a, &rng);
    SS_CHECK(so[0] == 0.1f && so[1] == 0.5f && fabsf(so[2] - 0.3f) < 1e-7 &&
             so[3] == 0.49f);
}

SS_TEST(pipeline_deterministic_thread_and_split_independent) {
    const int64_t N = 37, H = 28, W = 28, P = H * W;
    float *in = ss_test_alloc(N * P), *o1 = ss_test_alloc(N * P);
    float *o2 = ss_test_alloc(N * P), *o3 = ss_test_alloc(N * P);
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    for (int64_t i = 0; i < N * P; i++) in[i] = (float)ss_rng_uniform(&rng);
    const char *methods[] = {"simclr", "byol", "mae"};
    for (int m = 0; m < 3; m++) {
        sst_augment a;
        SS_CHECK_OK(sst_augment_preset(&a, methods[m], 1));
        a.noise_p = 0.5f; /* every op on */
        a.noise_std = 0.05f;
        a.blur_p = a.blur_p > 0 ? a.blur_p : 0.5f;
        a.erase_p = 0.25f;
        SS_CHECK_OK(ss_set_num_threads(1));
        SS_CHECK_OK(sst_augment_batch(o1, in, N, H, W, &a, 1234));
        SS_CHECK_OK(ss_set_num_threads(2));
        SS_CHECK_OK(sst_augment_batch(o2, in, N, H, W, &a, 1234));
        SS_CHECK(memcmp(o1, o2, (size_t)(N * P) * sizeof(float)) == 0);
        float scratch[28 * 28];
        ss_rng r;
        sst_augment_stream(&r, 1234, 20); /* image 20 alone: same result */
        sst_augment_image(o3, in + 20 * P, scratch, H, W, &a, &r);
        SS_CHECK(memcmp(o3, o1 + 20 * P, (size_t)P * sizeof(float)) == 0);
        SS_CHECK_OK(sst_augment_batch(o3, in, N, H, W, &a, 1235));
        SS_CHECK(memcmp(o1, o3, (size_t)(N * P) * sizeof(float)) != 0);
        int changed = 0;
        for (int64_t i = 0; i < N * P; i++) {
            SS_CHECK(o1[i] >= 0.0f && o1[i] <= 1.0f);
            changed += o1[i] != in[i];
        }
        SS_CHECK(changed > N * P / 4);
    }
    SS_CHECK_OK(ss_set_num_threads(0));
    sst_augment id = sst_augment_none(); /* all ops off: identity */
    SS_CHECK_OK(sst_augment_batch(o1, in, N, H, W, &id, 5));
    SS_CHECK(memcmp(o1, in, (size_t)(N * P) * sizeof(float)) == 0);
    free(in);
    free(o1);
    free(o2);
    free(o3);
}

SS_TEST(presets_and_bad_parameters) {
    sst_augment a, b;
    SS_CHECK_OK(sst_augment_preset(&a, "byol", 0));
    SS_CHECK_OK(sst_augment_preset(&b, "byol", 1));
    SS_CHECK(a.blur_p == 1.0f && b.blur_p < 0.5f && b.solarize_p > 0);
    SS_CHECK_OK(sst_augment_preset(&a, "mae", 0));
    SS_CHECK(a.jitter_p == 0 && a.blur_p == 0 && a.erase_p == 0 &&
             a.crop_p == 1.0f);
    SS_CHECK_STATUS(sst_augment_preset(&a, "simclrr", 0), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("simclrr");
    SS_CHECK_STATUS(sst_augment_preset(NULL, "simclr", 0), SS_ERR_NULL);
    SS_CHECK_OK(sst_augment_preset(&a, "simclr", 0));
    SS_CHECK_OK(sst_augment_check(&a));
    b = a;
    b.flip_p = 1.5f;
    SS_CHECK_STATUS(sst_augment_check(&b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("flip_p must be in [0, 1], got 1.5");
    b = a;
    b.blur_kernel = 4;
    SS_CHECK_STATUS(sst_augment_check(&b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("blur_kernel");
    b = a;
    b.crop_scale_min = 0.9f;
    b.crop_scale_max = 0.5f;
    SS_CHECK_STATUS(sst_augment_check(&b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("crop_scale");
    b = a;
    b.erase_ratio_min = NAN;
    SS_CHECK_STATUS(sst_augment_check(&b), SS_ERR_PARAM);
    float x[4] = {0}, y[4];
    SS_CHECK_STATUS(sst_augment_batch(y, x, 0, 2, 2, &a, 1), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_augment_batch(y, NULL, 1, 2, 2, &a, 1), SS_ERR_NULL);
    SS_CHECK_STATUS(sst_augment_batch(y, x, 1, 2, 2, NULL, 1), SS_ERR_NULL);
    /* a tiny image with a kernel wider than it: blur is skipped, no crash */
    a.blur_p = 1.0f;
    a.blur_kernel = 9;
    SS_CHECK_OK(sst_augment_batch(y, x, 1, 2, 2, &a, 1));
}
