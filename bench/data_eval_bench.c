/*
 * data_eval_bench.c - the evaluation on raw Fashion-MNIST pixels: load the
 * IDX files, fit the linear probe (60k train / 10k test), run the kNN
 * (k = 200, T = 0.07), and measure the embedding health; prints each
 * figure with its wall time.
 *
 *   cmake --build build --target data_eval_bench
 *   ./build/data_eval_bench [DATA_DIR] [--no-knn] [--iters N]
 */
#include "data.h"
#include "eval.h"

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
    int knn = 1, iters = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-knn") == 0) knn = 0;
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
    sst_probe_opts o = sst_probe_defaults();
    if (iters > 0) o.max_iter = iters;
    double acc, tracc, loss;
    t0 = now();
    if (sst_linear_probe(&acc, &tracc, &loss, xtr, ytr.labels, tr.n, xte,
                         yte.labels, te.n, D, C, &o))
        return fail();
    printf("linear probe (raw pixels): test %.2f%%  train %.2f%%  loss %.4f  "
           "(%d L-BFGS iterations max, l2 %g)  %.2f s\n", 100 * acc,
           100 * tracc, loss, o.max_iter, (double)o.l2, now() - t0);
    if (knn) {
        t0 = now();
        if (sst_knn_accuracy(&acc, xtr, ytr.labels, tr.n, xte, yte.labels,
                             te.n, D, C, SST_KNN_K, SST_KNN_T))
            return fail();
        printf("kNN k=%d T=%.2f (raw pixels): test %.2f%%  %.2f s\n",
               SST_KNN_K, (double)SST_KNN_T, 100 * acc, now() - t0);
    }
    sst_health h;
    t0 = now();
    if (sst_embedding_health(&h, xte, te.n, D)) return fail();
    printf("health (raw test pixels): mean std %.4f (1/sqrt(D) %.4f, ratio "
           "%.3f), effective rank %.1f of %lld  %.2f s\n", h.mean_std,
           h.ref_std, h.std_ratio, h.eff_rank, (long long)D, now() - t0);
    free(xtr);
    free(xte);
    sst_images_free(&tr);
    sst_images_free(&te);
    sst_labels_free(&ytr);
    sst_labels_free(&yte);
    return 0;
}
