/* test_contrast.c - the tiled group-contrastive engine (kernels/contrast.h)
 * against a direct double-precision evaluation, at awkward sizes, both
 * stabilisation modes, one and two scales, group masks, threads. */
#include "harness.h"
#include "internal.h"
#include "kernels/contrast.h"
#include "kernels/tgemm.h"

#include <stdlib.h>
#include <string.h>

/* Direct lse (nscales, M) and dx = d/dx sum_c sum_i w_ci lse_ci, double. */
static void direct_engine(double *lse, double *dx, const ss__gc *p,
                          const float *w) {
    int64_t M = p->M, D = p->D;
    double *S = ss_test_alloc_d(M * M), *P = ss_test_alloc_d(M * M);
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < M; k++) {
            double s = 0.0;
            for (int64_t d = 0; d < D; d++)
                s += (double)p->x[i * D + d] * p->x[k * D + d];
            S[i * M + k] = s;
        }
    if (dx) memset(dx, 0, sizeof(double) * (size_t)(M * D));
    for (int c = 0; c < p->nscales; c++) {
        double sc = p->scale[c];
        for (int64_t i = 0; i < M; i++) {
            double m = -INFINITY, sum = 0.0;
            for (int64_t k = 0; k < M; k++) {
                int in = k != i && !(p->exclude_group && p->group &&
                                     p->group[k] == p->group[i]);
                P[i * M + k] = in ? sc * S[i * M + k] : -INFINITY;
                if (P[i * M + k] > m) m = P[i * M + k];
            }
            for (int64_t k = 0; k < M; k++)
                if (P[i * M + k] > -INFINITY) sum += exp(P[i * M + k] - m);
            double l = sum > 0 ? m + log(sum) : -INFINITY;
            lse[c * M + i] = l;
            for (int64_t k = 0; k < M; k++)
                P[i * M + k] = P[i * M + k] > -INFINITY ? exp(P[i * M + k] - l) : 0;
        }
        if (!dx) continue;
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < M; k++) {
                double g = sc * (w[c * M + i] * P[i * M + k] +
                                 w[c * M + k] * P[k * M + i]);
                for (int64_t d = 0; d < D; d++) dx[i * D + d] += g * p->x[k * D + d];
            }
    }
    free(S), free(P);
}

typedef struct {
    int64_t M, D, tile;
    int nscales, exclude, online, cosine, ngroups;
    float scale0, scale1;
} eng_case;

/* Runs one case: forward lse and backward (accumulated onto random dx)
 * against direct_engine. */
static void run_case(const eng_case *ec, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t M = ec->M, D = ec->D;
    float *x = ss_test_alloc(M * D), *w = ss_test_alloc(2 * M);
    float *lse = ss_test_alloc(2 * M), *dx = ss_test_alloc(M * D);
    float *dx0 = ss_test_alloc(M * D);
    int64_t *g = calloc((size_t)M, sizeof(int64_t));
    double *lse_d = ss_test_alloc_d(2 * M), *dx_d = ss_test_alloc_d(M * D);
    ss_test_fill_normal(x, M * D, &rng);
    if (ec->cosine)
        for (int64_t i = 0; i < M; i++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
            for (int64_t d = 0; d < D; d++) x[i * D + d] /= (float)sqrt(s);
        }
    for (int64_t i = 0; i < M; i++) g[i] = i % (ec->ngroups > 0 ? ec->ngroups : M);
    ss__gc p = {x, M, D, ec->ngroups > 0 ? g : NULL, ec->exclude, ec->nscales,
                {ec->scale0, ec->scale1}, ec->tile, ec->online};
    direct_engine(lse_d, NULL, &p, NULL);
    for (int64_t j = 0; j < ec->nscales * M; j++) /* w = 0 on empty rows */
        w[j] = lse_d[j] > -INFINITY ? (float)ss_rng_normal(&rng) : 0.0f;
    direct_engine(lse_d, dx_d, &p, w);
    SS_CHECK_OK(ss__gc_forward(lse, &p));
    double worst = 0.0;
    for (int64_t j = 0; j < ec->nscales * M; j++) {
        if (lse_d[j] == -INFINITY) {
            SS_CHECK(lse[j] == -INFINITY);
            continue;
        }
        double e = fabs(lse[j] - lse_d[j]) / fmax(1.0, fabs(lse_d[j]));
        if (e > worst) worst = e;
    }
    if (!(worst <= 2e-5))
        fprintf(stderr, "case M=%lld D=%lld tile=%lld ns=%d excl=%d online=%d: "
                "lse err %.3g\n", (long long)M, (long long)D, (long long)ec->tile,
                ec->nscales, ec->exclude, ec->online, worst);
    SS_CHECK(worst <= 2e-5);
    ss_test_fill_normal(dx0, M * D, &rng);
    memcpy(dx, dx0, sizeof(float) * (size_t)(M * D));
    SS_CHECK_OK(ss__gc_backward(dx, w, lse, &p));
    for (int64_t j = 0; j < M * D; j++) dx_d[j] += dx0[j]; /* accumulated */
    double e = ss_test_rel_err_fd(dx, dx_d, M * D);
    if (!(e <= 1e-4))
        fprintf(stderr, "case M=%lld D=%lld tile=%lld: dx err %.3g\n",
                (long long)M, (long long)D, (long long)ec->tile, e);
    SS_CHECK(e <= 1e-4);
    free(x), free(w), free(lse), free(dx), free(dx0), free(g), free(lse_d),
        free(dx_d);
}

SS_TEST(awkward_sizes_fixed_shift) {
    int64_t T = 8;
    int64_t Ms[] = {1, 2, 3, T - 1, T, T + 1, 2 * T + 3, 5 * T};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (int64_t D = 1; D <= 3; D += 2) {
            eng_case ec = {Ms[a], D, T, 1, 0, 0, 1, 0, 2.0f, 0.0f};
            run_case(&ec, 100 + a);
        }
}

SS_TEST(awkward_sizes_online_max) {
    int64_t T = 8;
    int64_t Ms[] = {1, 2, 3, T - 1, T, T + 1, 2 * T + 3};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++) {
        eng_case ec = {Ms[a], 3, T, 1, 0, 1, 1, 0, 2.0f, 0.0f};
        run_case(&ec, 200 + a);
    }
}

SS_TEST(default_tile_boundaries) {
    int64_t T = SS__GC_TILE;
    int64_t Ms[] = {T - 1, T, T + 1};
    for (size_t a = 0; a < 3; a++) {
        eng_case ec = {Ms[a], 5, 0, 1, 0, 0, 1, 0, 2.0f, 0.0f};
        run_case(&ec, 300 + a);
    }
}

SS_TEST(wide_rows) {
    eng_case ec = {21, 1000, 8, 1, 0, 0, 1, 0, 2.0f, 0.0f};
    run_case(&ec, 400);
    ec.online = 1;
    run_case(&ec, 401);
}

SS_TEST(group_exclusion_two_scales) {
    int64_t T = 8;
    int64_t Ms[] = {2, 3, T + 1, 3 * T - 1};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (int online = 0; online < 2; online++) {
            /* groups i mod 3: some rows alone, some with an empty den */
            eng_case ec = {Ms[a], 4, T, 2, 1, online, 1, 3, 3.0f, 1.0f};
            run_case(&ec, 500 + a);
            ec.nscales = 1; /* exclusion with one scale */
            run_case(&ec, 510 + a);
        }
    /* every row one group: all denominators empty */
    eng_case all = {5, 3, 2, 1, 1, 0, 1, 1, 2.0f, 0.0f};
    run_case(&all, 520);
}

/* Large logits: scale 100 on unit rows (auto online max), and raw dot
 * products with big norms. */
SS_TEST(large_logits_finite) {
    eng_case ec = {37, 6, 8, 1, 0, 0, 1, 0, 100.0f, 0.0f};
    run_case(&ec, 600);
    eng_case raw = {37, 6, 8, 2, 1, 0, 0, 4, 20.0f, 3.0f};
    run_case(&raw, 601);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    int64_t M = 300, D = 17;
    float *x = ss_test_alloc(M * D), *w = ss_test_alloc(M);
    float *l1 = ss_test_alloc(M), *l2 = ss_test_alloc(M);
    float *d1 = ss_test_alloc(M * D), *d2 = ss_test_alloc(M * D);
    ss_test_fill_normal(x, M * D, &rng);
    ss_test_fill_normal(w, M, &rng);
    ss__gc p = {x, M, D, NULL, 0, 1, {0.05f, 0}, 16, 0};
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(ss__gc_forward(l1, &p));
    SS_CHECK_OK(ss__gc_backward(d1, w, l1, &p));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(ss__gc_forward(l2, &p));
    SS_CHECK_OK(ss__gc_backward(d2, w, l2, &p));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_CLOSE_FF(l2, l1, M, 1e-6, "lse 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(d2, d1, M * D, 1e-5, "dx 1 vs 2 threads");
    free(x), free(w), free(l1), free(l2), free(d1), free(d2);
}

/* The tile GEMM at edge shapes (rows not a multiple of 6, columns not of
 * the vector width), both A layouts, overwrite and accumulate. */
SS_TEST(tile_gemm_edges) {
    ss_rng rng;
    ss_rng_seed(&rng, 11);
    int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {6, 32, 9}, {13, 33, 17},
                           {37, 70, 128}, {64, 16, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *A = ss_test_alloc(m * k), *B = ss_test_alloc(k * (n + 3));
        float *C = ss_test_alloc(m * (n + 5));
        float *scr = ss_test_alloc(ss__tgemm_scratch(k));
        double *R = ss_test_alloc_d(m * (n + 5));
        float *Cg = ss_test_alloc(m * n);
        ss_test_fill_normal(A, m * k, &rng);
        ss_test_fill_normal(B, k * (n + 3), &rng);
        for (int ta = 0; ta < 2; ta++)
            for (int acc = 0; acc < 2; acc++) {
                ss_test_fill_normal(C, m * (n + 5), &rng);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double v = acc ? C[i * (n + 5) + j] : 0.0;
                        for (int64_t p = 0; p < k; p++)
                            v += (double)(ta ? A[p * m + i] : A[i * k + p]) *
                                 B[p * (n + 3) + j];
                        R[i * n + j] = v;
                    }
                ss__tgemm(m, n, k, A, ta ? 1 : k, ta ? m : 1, B, n + 3, acc,
                          C, n + 5, scr);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) Cg[i * n + j] = C[i * (n + 5) + j];
                SS_CHECK_CLOSE_FD(Cg, R, m * n, 1e-5, "tile gemm");
            }
        free(A), free(B), free(C), free(scr), free(R), free(Cg);
    }
}
