/* test_eval.c - linear probe, tiled kNN against a direct reference,
 * effective rank of known spectra, collapse detector, PCA, bad inputs. */
#include "eval.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* C Gaussian clusters in D dims, centres sep apart, n points. */
static void clusters(float *x, uint8_t *y, int64_t n, int64_t D, int C,
                     double sep, ss_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(ss_rng_u64(rng) % (uint64_t)C);
        for (int64_t d = 0; d < D; d++)
            x[i * D + d] = (float)(ss_rng_normal(rng) +
                                   (d == y[i] % D ? sep : 0.0) +
                                   (d == (y[i] + 1) % D ? 0.5 * sep : 0.0));
    }
}

SS_TEST(probe_separable_reaches_100) {
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    const int64_t ntr = 600, nte = 300, D = 6;
    const int C = 4;
    float *xtr = ss_test_alloc(ntr * D), *xte = ss_test_alloc(nte * D);
    uint8_t ytr[600], yte[300];
    clusters(xtr, ytr, ntr, D, C, 12.0, &rng);
    clusters(xte, yte, nte, D, C, 12.0, &rng);
    double acc = 0, tracc = 0, loss1 = 0, loss2 = 0, acc2 = 0;
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(sst_linear_probe(&acc, &tracc, &loss1, xtr, ytr, ntr, xte, yte,
                                 nte, D, C, NULL));
    SS_CHECK(acc >= 0.999);
    SS_CHECK(tracc >= 0.999);
    SS_CHECK(loss1 < 0.1);
    SS_CHECK_OK(ss_set_num_threads(2)); /* fixed blocks: same bits */
    SS_CHECK_OK(sst_linear_probe(&acc2, NULL, &loss2, xtr, ytr, ntr, xte, yte,
                                 nte, D, C, NULL));
    SS_CHECK(acc2 == acc && loss2 == loss1);
    SS_CHECK_OK(ss_set_num_threads(0));
    /* No iterations: W = 0, loss log(C), every prediction class 0. */
    sst_probe_opts o = sst_probe_defaults();
    o.max_iter = 0;
    SS_CHECK_OK(sst_linear_probe(&acc, NULL, &loss1, xtr, ytr, ntr, xte, yte,
                                 nte, D, C, &o));
    SS_CHECK_NEAR(loss1, log(4.0), 1e-12);
    int zeros = 0;
    for (int i = 0; i < nte; i++) zeros += yte[i] == 0;
    SS_CHECK_NEAR(acc, zeros / (double)nte, 1e-12);
    free(xtr);
    free(xte);
}

/* More rows than one probe block (512), classes that overlap: the probe
 * beats chance clearly and does not overfit noise features. */
SS_TEST(probe_noisy_multiblock) {
    ss_rng rng;
    ss_rng_seed(&rng, 2);
    const int64_t ntr = 1500, nte = 700, D = 20;
    const int C = 5;
    float *xtr = ss_test_alloc(ntr * D), *xte = ss_test_alloc(nte * D);
    uint8_t *ytr = malloc(ntr), *yte = malloc(nte);
    clusters(xtr, ytr, ntr, D, C, 2.0, &rng);
    clusters(xte, yte, nte, D, C, 2.0, &rng);
    double acc, tracc;
    SS_CHECK_OK(sst_linear_probe(&acc, &tracc, NULL, xtr, ytr, ntr, xte, yte,
                                 nte, D, C, NULL));
    SS_CHECK(acc > 0.6 && acc < 1.0);
    SS_CHECK(tracc > 0.6);
    free(xtr);
    free(xte);
    free(ytr);
    free(yte);
}

/* Direct kNN in double over the full similarity matrix: ok[q] = 1 when
 * query q is classified correctly. Neighbours sorted by similarity, the
 * earlier index first on ties. */
static const double *sort_sim;
static int by_sim(const void *pa, const void *pb) {
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    if (sort_sim[a] != sort_sim[b]) return sort_sim[a] > sort_sim[b] ? -1 : 1;
    return a < b ? -1 : (a > b);
}

static void knn_direct(int *ok, const float *xtr, const uint8_t *ytr,
                       int64_t ntr, const float *xte, const uint8_t *yte,
                       int64_t nte, int64_t D, int C, int64_t k, double T) {
    if (k > ntr) k = ntr;
    double *sim = malloc((size_t)ntr * sizeof *sim);
    int64_t *ord = malloc((size_t)ntr * sizeof *ord);
    for (int64_t q = 0; q < nte; q++) {
        double nq = 0;
        for (int64_t d = 0; d < D; d++) nq += (double)xte[q * D + d] * xte[q * D + d];
        for (int64_t j = 0; j < ntr; j++) {
            double s = 0, nj = 0;
            for (int64_t d = 0; d < D; d++) {
                s += (double)xte[q * D + d] * xtr[j * D + d];
                nj += (double)xtr[j * D + d] * xtr[j * D + d];
            }
            sim[j] = s / (sqrt(nq) * sqrt(nj));
            ord[j] = j;
        }
        sort_sim = sim;
        qsort(ord, (size_t)ntr, sizeof *ord, by_sim);
        double votes[16] = {0};
        for (int64_t t = 0; t < k; t++) votes[ytr[ord[t]]] += exp(sim[ord[t]] / T);
        int best = 0;
        for (int c = 1; c < C; c++)
            if (votes[c] > votes[best]) best = c;
        ok[q] = best == yte[q];
    }
    free(sim);
    free(ord);
}

SS_TEST(knn_matches_direct_and_clusters) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    const int64_t ntr = 2049 + 5, D = 7; /* one more than a train chunk */
    const int C = 3;
    float *xtr = ss_test_alloc(ntr * D), *xte = ss_test_alloc(130 * D);
    uint8_t *ytr = malloc(ntr), yte[130];
    clusters(xtr, ytr, ntr, D, C, 1.0, &rng); /* overlapping: votes matter */
    clusters(xte, yte, 130, D, C, 1.0, &rng);
    const int64_t ntes[] = {1, 63, 64, 65, 130};
    const int64_t ks[] = {1, 5, 200, 5000};
    int ok[130];
    for (int b = 0; b < 4; b++) {
        knn_direct(ok, xtr, ytr, ntr, xte, yte, 130, D, C, ks[b], 0.07);
        for (int a = 0; a < 5; a++) { /* the first ntes[a] queries */
            double acc, want = 0;
            for (int64_t q = 0; q < ntes[a]; q++) want += ok[q];
            SS_CHECK_OK(sst_knn_accuracy(&acc, xtr, ytr, ntr, xte, yte,
                                         ntes[a], D, C, ks[b], 0.07f));
            SS_CHECK_NEAR(acc, want / (double)ntes[a], 1e-12);
        }
    }
    clusters(xtr, ytr, ntr, D, C, 20.0, &rng); /* separated clusters */
    clusters(xte, yte, 130, D, C, 20.0, &rng);
    double acc1, acc2;
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(sst_knn_accuracy(&acc1, xtr, ytr, ntr, xte, yte, 130, D, C,
                                 SST_KNN_K, SST_KNN_T));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(sst_knn_accuracy(&acc2, xtr, ytr, ntr, xte, yte, 130, D, C,
                                 SST_KNN_K, SST_KNN_T));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(acc1 == 1.0 && acc2 == 1.0);
    free(xtr);
    free(xte);
    free(ytr);
}

/* Random orthogonal Q (D, D) by Gram-Schmidt on normal vectors. */
static void orthogonal(double *Q, int64_t D, ss_rng *rng) {
    for (int64_t i = 0; i < D; i++) {
        for (;;) {
            for (int64_t d = 0; d < D; d++) Q[i * D + d] = ss_rng_normal(rng);
            for (int64_t j = 0; j < i; j++) {
                double p = 0;
                for (int64_t d = 0; d < D; d++) p += Q[i * D + d] * Q[j * D + d];
                for (int64_t d = 0; d < D; d++) Q[i * D + d] -= p * Q[j * D + d];
            }
            double nr = 0;
            for (int64_t d = 0; d < D; d++) nr += Q[i * D + d] * Q[i * D + d];
            if (nr < 1e-6) continue;
            for (int64_t d = 0; d < D; d++) Q[i * D + d] /= sqrt(nr);
            break;
        }
    }
}

/* Rows +-s_j q_j (q_j rows of a random orthogonal Q): centred, singular
 * values sqrt(2) s_j, so erank = exp(H(s / sum s)). */
SS_TEST(effective_rank_known_spectrum) {
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    const int64_t D = 12;
    double Q[12 * 12], s[12] = {5, 4, 3, 3, 2, 1, 1, 0.5, 0.25, 0, 0, 0};
    orthogonal(Q, D, &rng);
    float z[2 * 12 * 12];
    for (int64_t j = 0; j < D; j++)
        for (int64_t d = 0; d < D; d++) {
            z[(2 * j) * D + d] = (float)(s[j] * Q[j * D + d]);
            z[(2 * j + 1) * D + d] = (float)(-s[j] * Q[j * D + d]);
        }
    double tot = 0, h = 0;
    for (int j = 0; j < D; j++) tot += s[j];
    for (int j = 0; j < D; j++)
        if (s[j] > 0) h -= s[j] / tot * log(s[j] / tot);
    sst_health hl;
    SS_CHECK_OK(sst_embedding_health(&hl, z, 2 * D, D));
    SS_CHECK_NEAR(hl.eff_rank, exp(h), 1e-3);
    SS_CHECK_NEAR(hl.ref_std, 1 / sqrt(12.0), 1e-12);
    /* equal spectrum: erank D */
    for (int j = 0; j < D; j++) s[j] = 2;
    for (int64_t j = 0; j < D; j++)
        for (int64_t d = 0; d < D; d++) {
            z[(2 * j) * D + d] = (float)(s[j] * Q[j * D + d]);
            z[(2 * j + 1) * D + d] = (float)(-s[j] * Q[j * D + d]);
        }
    SS_CHECK_OK(sst_embedding_health(&hl, z, 2 * D, D));
    SS_CHECK_NEAR(hl.eff_rank, 12.0, 1e-3);
}

SS_TEST(health_std_and_collapse_detector) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    const int64_t N = 3000, D = 32;
    float *z = ss_test_alloc(N * D);
    ss_test_fill_normal(z, N * D, &rng); /* isotropic: healthy */
    sst_health h;
    int col = -1;
    SS_CHECK_OK(sst_collapse_check(&col, &h, z, N, D));
    SS_CHECK_INT(col, 0);
    SS_CHECK_NEAR(h.std_ratio, 1.0, 0.03);
    SS_CHECK_NEAR(h.mean_std, 1 / sqrt(32.0), 0.01);
    SS_CHECK(h.eff_rank > 30 && h.eff_rank <= 32);
    /* complete collapse: one vector plus 1e-4 noise */
    float v[32];
    ss_test_fill_normal(v, D, &rng);
    for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++)
            z[i * D + d] = v[d] + 1e-4f * (float)ss_rng_normal(&rng);
    SS_CHECK_OK(sst_collapse_check(&col, &h, z, N, D));
    SS_CHECK_INT(col, 1);
    SS_CHECK(h.std_ratio < 0.01);
    /* dimensional collapse: rank 1 (a_i v), std still sizeable */
    for (int64_t i = 0; i < N; i++) {
        double a = ss_rng_normal(&rng);
        for (int64_t d = 0; d < D; d++) z[i * D + d] = (float)(a * v[d]);
    }
    SS_CHECK_OK(sst_collapse_check(&col, &h, z, N, D));
    SS_CHECK_INT(col, 1);
    SS_CHECK(h.eff_rank < 1.01);
    SS_CHECK(h.std_ratio > SST_COLLAPSE_STD_RATIO);
    SS_CHECK_OK(sst_collapse_check(&col, NULL, z, N, D)); /* health optional */
    for (int64_t i = 0; i < N * D; i++) z[i] = 0; /* all zero */
    SS_CHECK_OK(sst_collapse_check(&col, &h, z, N, D));
    SS_CHECK_INT(col, 1);
    SS_CHECK(h.eff_rank == 0 && h.mean_std == 0);
    free(z);
}

SS_TEST(sym_eig_and_pca) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    const int64_t D = 9;
    double Q[81], a[81], vals[9], vecs[81];
    const double lam[9] = {-1, 0, 0.5, 1, 2, 3, 5, 8, 13};
    orthogonal(Q, D, &rng);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t k = 0; k < D; k++) s += Q[k * D + i] * lam[k] * Q[k * D + j];
            a[i * D + j] = s;
        }
    double a0[81];
    memcpy(a0, a, sizeof a);
    for (int path = 0; path < 2; path++) { /* LAPACK (when built), Jacobi */
        memcpy(a, a0, sizeof a);
        if (path == 0) SS_CHECK_OK(sst_sym_eig(vals, vecs, a, D));
        else sst_sym_eig_jacobi(vals, vecs, a, D);
        for (int i = 0; i < D; i++) SS_CHECK_NEAR(vals[i], lam[i], 1e-10);
        for (int i = 0; i < D; i++) { /* vecs row i = +-Q row i */
            double p = 0;
            for (int d = 0; d < D; d++) p += vecs[i * D + d] * Q[i * D + d];
            SS_CHECK_NEAR(fabs(p), 1.0, 1e-8);
        }
    }
    /* PCA: variance 9 along u, 1 along w, 0.01 elsewhere. */
    const int64_t N = 2000, E = 6;
    float *z = ss_test_alloc(N * E), *pc = ss_test_alloc(N * 2);
    double U[36];
    orthogonal(U, E, &rng);
    double *g = ss_test_alloc_d(N * 2);
    for (int64_t i = 0; i < N; i++) {
        g[2 * i] = 3 * ss_rng_normal(&rng);
        g[2 * i + 1] = ss_rng_normal(&rng);
        for (int64_t d = 0; d < E; d++)
            z[i * E + d] = (float)(7 + g[2 * i] * U[d] + g[2 * i + 1] * U[E + d] +
                                   0.1 * ss_rng_normal(&rng));
    }
    SS_CHECK_OK(sst_pca2(pc, z, N, E));
    for (int c = 0; c < 2; c++) { /* |corr(pc_c, g_c)| ~ 1 */
        double sab = 0, saa = 0, sbb = 0;
        for (int64_t i = 0; i < N; i++) {
            sab += pc[2 * i + c] * g[2 * i + c];
            saa += pc[2 * i + c] * pc[2 * i + c];
            sbb += g[2 * i + c] * g[2 * i + c];
        }
        SS_CHECK(fabs(sab) / sqrt(saa * sbb) > 0.99);
    }
    free(z);
    free(pc);
    free(g);
}

SS_TEST(eval_bad_inputs) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t y[4] = {0, 1, 0, 1}, bad[4] = {0, 1, 3, 1};
    double acc;
    SS_CHECK_STATUS(sst_linear_probe(&acc, NULL, NULL, x, bad, 4, x, y, 4, 2, 2,
                                     NULL), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("ytr[2] = 3");
    SS_CHECK_STATUS(sst_knn_accuracy(&acc, x, y, 4, x, bad, 4, 2, 2, 3, 0.1f),
                    SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("yte[2] = 3");
    SS_CHECK_STATUS(sst_knn_accuracy(&acc, x, y, 4, x, y, 4, 2, 2, 0, 0.1f),
                    SS_ERR_PARAM);
    SS_CHECK_STATUS(sst_knn_accuracy(&acc, x, y, 4, x, y, 4, 2, 2, 3, -1.0f),
                    SS_ERR_PARAM);
    SS_CHECK_STATUS(sst_linear_probe(NULL, NULL, NULL, x, y, 4, x, y, 4, 2, 2,
                                     NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(sst_linear_probe(&acc, NULL, NULL, x, y, 0, x, y, 4, 2, 2,
                                     NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_linear_probe(&acc, NULL, NULL, x, y, 4, x, y, 4, 2, 1,
                                     NULL), SS_ERR_SIZE);
    sst_probe_opts o = sst_probe_defaults();
    o.l2 = -1;
    SS_CHECK_STATUS(sst_linear_probe(&acc, NULL, NULL, x, y, 4, x, y, 4, 2, 2,
                                     &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("l2");
    x[5] = NAN;
    SS_CHECK_STATUS(sst_linear_probe(&acc, NULL, NULL, x, y, 4, x, y, 4, 2, 2,
                                     NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("xtr[5]");
    sst_health h;
    SS_CHECK_STATUS(sst_embedding_health(&h, x, 4, 2), SS_ERR_NONFINITE);
    x[5] = 6;
    SS_CHECK_STATUS(sst_embedding_health(&h, x, 1, 2), SS_ERR_SIZE);
    int col;
    SS_CHECK_STATUS(sst_collapse_check(NULL, &h, x, 4, 2), SS_ERR_NULL);
    SS_CHECK_OK(sst_collapse_check(&col, &h, x, 4, 2));
}
