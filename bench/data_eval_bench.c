/*
 * data_eval_bench.c - the evaluation on raw Fashion-MNIST pixels: load the
 * IDX files, fit the linear probe (60k train / 10k test), run the kNN
 * (k = 200, T = 0.07), and measure the embedding health; prints each
 * figure with its wall time.
 *
 *   cmake --build build --target data_eval_bench
 * Inside VMs Debian's OpenBLAS may pick its SSE3 "Prescott" kernels; run
 * with OPENBLAS_CORETYPE=Haswell (or SkylakeX) as `selfsup train` does
 * through sst_blas_reexec.
 *
 *   ./build/data_eval_bench [DATA_DIR] [--no-knn] [--no-probe] [--iters N]
 *                         [--report PNG] [--augment]
 */
#include "augment.h"
#include "data.h"
#include "eval.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(void) {
    fprintf(stderr, "error: %s\n", ss_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int knn = 1, probe = 1, iters = 0;
    const char *report = NULL;
    int augment = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-knn") == 0) knn = 0;
        else if (strcmp(argv[i], "--no-probe") == 0) probe = 0;
        else if (strcmp(argv[i], "--augment") == 0) augment = 1;
        else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc)
            report = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else dir = argv[i];
    }
    sst_images tr, te;
    sst_labels ytr, yte;
    double t0 = now();
    if (sst_dataset_load_images(&tr, dir, SST_SPLIT_TRAIN) ||
        sst_dataset_load_images(&te, dir, SST_SPLIT_TEST) ||
        sst_dataset_load_labels(&ytr, dir, SST_SPLIT_TRAIN, tr.n) ||
        sst_dataset_load_labels(&yte, dir, SST_SPLIT_TEST, te.n))
        return fail();
    const int64_t D = tr.h * tr.w;
    float *xtr = malloc((size_t)(tr.n * D) * sizeof(float));
    float *xte = malloc((size_t)(te.n * D) * sizeof(float));
    if (!xtr || !xte) return 1;
    if (sst_images_to_float(xtr, &tr, NULL, 0, tr.n) ||
        sst_images_to_float(xte, &te, NULL, 0, te.n))
        return fail();
    int C = ytr.n_classes > yte.n_classes ? ytr.n_classes : yte.n_classes;
    printf("loaded %lld train + %lld test images of %lldx%lld, %d classes in "
           "%.2f s (threads %d)\n", (long long)tr.n, (long long)te.n,
           (long long)tr.h, (long long)tr.w, C, now() - t0,
           ss_get_num_threads());
    if (augment) { /* one simclr view of every training image */
        float *aug = malloc((size_t)(tr.n * D) * sizeof(float));
        sst_augment a;
        if (!aug || sst_augment_preset(&a, "simclr", 0)) return fail();
        t0 = now();
        for (int64_t b = 0; b < tr.n; b += 256) {
            int64_t m = tr.n - b < 256 ? tr.n - b : 256;
            if (sst_augment_batch(aug + b * D, xtr + b * D, m, tr.h, tr.w, &a,
                                  (uint64_t)b))
                return fail();
        }
        double dt = now() - t0;
        printf("augment simclr view: %lld images in %.2f s = %.0f images/s\n",
               (long long)tr.n, dt, (double)tr.n / dt);
        free(aug);
    }
    sst_probe_opts o = sst_probe_defaults();
    if (iters > 0) o.max_iter = iters;
    double acc = 0, tracc = 0, loss = 0, knn_acc = 0;
    t0 = now();
    if (probe && sst_linear_probe(&acc, &tracc, &loss, xtr, ytr.labels, tr.n, xte,
                         yte.labels, te.n, D, C, &o))
        return fail();
    if (probe)
        printf("linear probe (raw pixels): test %.2f%%  train %.2f%%  loss %.4f  "
           "(%d L-BFGS iterations max, l2 %g)  %.2f s\n", 100 * acc,
           100 * tracc, loss, o.max_iter, (double)o.l2, now() - t0);
    if (knn) {
        t0 = now();
        if (sst_knn_accuracy(&knn_acc, xtr, ytr.labels, tr.n, xte, yte.labels,
                             te.n, D, C, SST_KNN_K, SST_KNN_T))
            return fail();
        printf("kNN k=%d T=%.2f (raw pixels): test %.2f%%  %.2f s\n",
               SST_KNN_K, (double)SST_KNN_T, 100 * knn_acc, now() - t0);
    }
    sst_health h;
    t0 = now();
    if (sst_embedding_health(&h, xte, te.n, D)) return fail();
    printf("health (raw test pixels): mean std %.4f (1/sqrt(D) %.4f, ratio "
           "%.3f), effective rank %.1f of %lld  %.2f s\n", h.mean_std,
           h.ref_std, h.std_ratio, h.eff_rank, (long long)D, now() - t0);
    if (report) { /* raw pixels only: no loss curve, one bar */
        const char *names[1] = {"raw pixels"};
        sst_report r = {0};
        r.title = "raw Fashion-MNIST pixels (data_eval_bench)";
        r.n_bars = 1;
        r.bar_names = names;
        r.bar_acc = &acc;
        r.bar_acc2 = knn ? &knn_acc : NULL;
        r.emb = xte;
        r.labels = yte.labels;
        r.n_emb = te.n;
        r.D = D;
        r.n_classes = C;
        r.class_names = C == SST_FMNIST_CLASSES ? sst_fmnist_class_names : NULL;
        if (sst_report_png(report, &r)) return fail();
        printf("report: %s\n", report);
    }
    free(xtr);
    free(xte);
    sst_images_free(&tr);
    sst_images_free(&te);
    sst_labels_free(&ytr);
    sst_labels_free(&yte);
    return 0;
}
