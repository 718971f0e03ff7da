/* test_train.c - `selfsup train`: learning on a Fashion-MNIST subset,
 * checkpoint round-trip and exact resume for every method, corrupt
 * checkpoints, divergence diagnostics. */
#include "checkpoint.h"
#include "eval.h"
#include "harness.h"
#include "trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* n random 28x28 images: blobs at random places, so views differ. */
static sst_images synth(int64_t n, uint64_t seed) {
    sst_images im = {n, 28, 28, malloc((size_t)(n * 784))};
    ss_rng r;
    ss_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        int cy = 4 + (int)(ss_rng_uniform(&r) * 20), cx = 4 + (int)(ss_rng_uniform(&r) * 20);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                double d = (y - cy) * (y - cy) + (x - cx) * (x - cx);
                double v = 255 * exp(-d / 20) + 20 * ss_rng_uniform(&r);
                im.pixels[i * 784 + y * 28 + x] = (uint8_t)(v > 255 ? 255 : v);
            }
    }
    return im;
}

static sst_train_cfg tiny_cfg(sst_method_id id) {
    sst_train_cfg c = sst_train_defaults(id);
    c.batch = 16, c.epochs = 3, c.seed = 7;
    if (c.proj_out > 128) c.proj_hidden = 64, c.proj_out = 128;
    return c;
}

static void tmpname(char *b, size_t n, const char *tag) {
    snprintf(b, n, "%s/sst_train_%s_%d.bin", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             tag, (int)getpid());
}

SS_TEST(checkpoint_resume_every_method) {
    sst_images im = synth(48, 1);
    for (int id = 0; id < SST_NMETHODS; id++) {
        sst_train_cfg c = tiny_cfg((sst_method_id)id);
        sst_trainer a, b;
        char path[256];
        tmpname(path, sizeof path, c.method);
        SS_CHECK_OK(sst_trainer_init(&a, &c, &im));
        float la = 0, lb = 0, l;
        for (int64_t s = 0; s < a.steps_per_epoch; s++) SS_CHECK_OK(sst_trainer_step(&a, &l));
        SS_CHECK(isfinite(l));
        a.epoch = 1;
        SS_CHECK_OK(sst_checkpoint_save(&a, path));
        SS_CHECK_OK(sst_trainer_step(&a, &la));
        sst_train_cfg rc;
        SS_CHECK_OK(sst_checkpoint_read_cfg(&rc, path));
        SS_CHECK(!strcmp(rc.method, c.method));
        SS_CHECK_OK(sst_trainer_init(&b, &rc, &im));
        SS_CHECK_OK(sst_checkpoint_load(&b, path));
        SS_CHECK_INT(b.step, a.steps_per_epoch);
        SS_CHECK_INT(b.epoch, 1);
        SS_CHECK_OK(sst_trainer_step(&b, &lb));
        /* same data, views, masks, optimiser state: the same next step */
        if (la != lb) fprintf(stderr, "  %s: resumed loss %.9g vs %.9g\n", c.method, lb, la);
        SS_CHECK_NEAR(lb, la, 1e-6 * (1 + fabsf(la)));
        SS_CHECK(!memcmp(a.m.P.data, b.m.P.data, (size_t)a.m.P.numel * 4) ||
                 fabsf(la - lb) <= 1e-6f * (1 + fabsf(la)));
        sst_trainer_free(&a), sst_trainer_free(&b);
        remove(path);
    }
    free(im.pixels);
}

SS_TEST(corrupt_checkpoints) {
    sst_images im = synth(32, 2);
    sst_train_cfg c = tiny_cfg(SST_SIMCLR);
    sst_trainer a, b;
    char path[256], bad[256];
    tmpname(path, sizeof path, "ok"), tmpname(bad, sizeof bad, "bad");
    SS_CHECK_OK(sst_trainer_init(&a, &c, &im));
    SS_CHECK_OK(sst_checkpoint_save(&a, path));
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n);
    SS_CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    SS_CHECK_OK(sst_trainer_init(&b, &c, &im));
    /* truncated */
    f = fopen(bad, "wb"), fwrite(buf, 1, (size_t)n / 2, f), fclose(f);
    SS_CHECK_STATUS(sst_checkpoint_load(&b, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset");
    /* bad magic */
    buf[0] ^= 0x55;
    f = fopen(bad, "wb"), fwrite(buf, 1, (size_t)n, f), fclose(f);
    SS_CHECK_STATUS(sst_checkpoint_load(&b, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 0");
    buf[0] ^= 0x55;
    /* trailing bytes */
    f = fopen(bad, "wb"), fwrite(buf, 1, (size_t)n, f), fputc(0, f), fclose(f);
    SS_CHECK_STATUS(sst_checkpoint_load(&b, bad), SS_ERR_FORMAT);
    /* a model of another size */
    sst_trainer d;
    sst_train_cfg c2 = c;
    c2.proj_out = 64;
    SS_CHECK_OK(sst_trainer_init(&d, &c2, &im));
    SS_CHECK_STATUS(sst_checkpoint_load(&d, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("parameter count");
    sst_trainer_free(&d);
    /* missing */
    remove(bad);
    SS_CHECK_STATUS(sst_checkpoint_load(&b, bad), SS_ERR_IO);
    SS_CHECK_OK(sst_checkpoint_load(&b, path));
    free(buf);
    sst_trainer_free(&a), sst_trainer_free(&b);
    remove(path);
    free(im.pixels);
}

SS_TEST(divergence_is_reported) {
    sst_images im = synth(32, 3);
    sst_train_cfg c = tiny_cfg(SST_SIMCLR);
    sst_trainer a;
    SS_CHECK_OK(sst_trainer_init(&a, &c, &im));
    a.m.P.data[sst_params_find(&a.m.P, "proj.l2.w") >= 0
                   ? a.m.P.t[sst_params_find(&a.m.P, "proj.l2.w")].offset
                   : 0] = NAN;
    float l;
    SS_CHECK_STATUS(sst_trainer_step(&a, &l), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("diverged");
    SS_CHECK_INT(a.step, 0);
    sst_trainer_free(&a);
    free(im.pixels);
}

SS_TEST(bad_config) {
    sst_images im = synth(8, 4);
    sst_train_cfg c = tiny_cfg(SST_SIMCLR);
    sst_trainer a;
    c.batch = 64; /* more than the images */
    SS_CHECK_STATUS(sst_trainer_init(&a, &c, &im), SS_ERR_SIZE);
    c = tiny_cfg(SST_SIMCLR);
    snprintf(c.method, sizeof c.method, "nope");
    SS_CHECK_STATUS(sst_trainer_init(&a, &c, &im), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("nope");
    free(im.pixels);
}

/* Fashion-MNIST when installed: a seconds-long SimCLR run on 1024 images;
 * the loss falls and the linear probe beats the same encoder at init. */
SS_TEST(learns_on_fashion_mnist_subset) {
    sst_images im;
    sst_labels y;
#ifndef NDEBUG
    fprintf(stderr, "  (debug / sanitizer build: learning test skipped, too slow)\n");
    SS_CHECK(1);
    return;
#endif
    if (sst_dataset_load_images(&im, NULL, SST_SPLIT_TRAIN) != SS_OK) {
        fprintf(stderr, "  (Fashion-MNIST not installed: learning test skipped)\n");
        SS_CHECK(1);
        return;
    }
    SS_CHECK_OK(sst_dataset_load_labels(&y, NULL, SST_SPLIT_TRAIN, im.n));
    sst_train_cfg c = sst_train_defaults(SST_SIMCLR);
    c.subset = 1024, c.batch = 64, c.epochs = 2, c.warmup_epochs = 0, c.lr = 3e-3;
    sst_trainer t;
    SS_CHECK_OK(sst_trainer_init(&t, &c, &im));
    float l;
    for (int64_t s = 0; s < t.total_steps; s++) SS_CHECK_OK(sst_trainer_step(&t, &l));
    int64_t S = t.total_steps, k = 4;
    double first = 0, last = 0;
    for (int64_t i = 0; i < k; i++) first += t.hist[i], last += t.hist[S - 1 - i];
    SS_CHECK(last < first - 0.1 * k);
    /* probe on frozen features: train on images 0..1499, test 1500..2499 */
    int64_t ntr = 1500, nte = 1000;
    float *x = malloc((size_t)(ntr + nte) * 784 * 4);
    float *fa = malloc((size_t)(ntr + nte) * SST_FEAT * 4);
    SS_CHECK_OK(sst_images_to_float(x, &im, NULL, 0, ntr + nte));
    sst_probe_opts po = sst_probe_defaults();
    double acc[2];
    sst_model r;
    sst_model_cfg mc = t.m.cfg;
    SS_CHECK_OK(sst_model_init(&r, &mc, 12345));
    for (int i = 0; i < 8; i++) SS_CHECK_OK(sst_model_encode(&r, x + i * 128 * 784, 128, 1));
    sst_model *ms[2] = {&t.m, &r};
    for (int j = 0; j < 2; j++) {
        SS_CHECK_OK(sst_model_features(ms[j], fa, x, ntr + nte));
        SS_CHECK_OK(sst_linear_probe(&acc[j], NULL, NULL, fa, y.labels, ntr,
                                     fa + ntr * SST_FEAT, y.labels + ntr, nte,
                                     SST_FEAT, 10, &po));
    }
    fprintf(stderr, "  loss %.3f -> %.3f; probe pretrained %.1f%%, random init %.1f%%\n",
            first / k, last / k, 100 * acc[0], 100 * acc[1]);
    SS_CHECK(acc[0] > acc[1]);
    sst_model_free(&r);
    free(x), free(fa);
    sst_trainer_free(&t);
    sst_images_free(&im), sst_labels_free(&y);
}
