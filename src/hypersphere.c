/*
 * hypersphere.c - alignment and uniformity (Wang & Isola 2020) as lightly's
 * HypersphereLoss, with the uniformity term as a tiled log-sum-exp.
 *
 * s_ij = -t ||x_i - x_j||^2 = -t (n_i + n_j - 2 <x_i, x_j>), n_i = ||x_i||^2.
 * Pairs i < j are half of the ordered pairs i != j, so
 *     unif = LSE_{i != j} s_ij - log(N (N - 1)),
 * from per-row statistics r_i = LSE_{j != i} s_ij gathered over GEMM tiles
 * with an online maximum. With p_ij = exp(s_ij - LSE) (symmetric, summing to
 * 1 over ordered pairs):
 *     d unif / d x_i = -4 t sum_j p_ij (x_i - x_j),
 * recomputed tile by tile in backward. Rows are split between threads;
 * every row scans the column tiles in the same order, so results do not
 * depend on the thread count.
 */
#include "dist_geometry.h" /* ss__hs_rows_* */
#include "internal.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

#include <string.h>

#define HS_MAGIC 0x3130485048525353ull /* "SSRHPH01" */
#define HS_TILE 128
#define HS_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D;
    float t, lambda, alpha;
    double lse_x, lse_y; /* LSE of s_ij over the ordered pairs */
} hs_header;

ss_hypersphere_opts ss_hypersphere_defaults(void) {
    ss_hypersphere_opts o = {1.0f, 1.0f, 2.0f};
    return o;
}

static ss_status hs_check_sizes(const char *fn, int64_t N, int64_t D,
                                int64_t min_n) {
    SS_TRY(ss__check_size(fn, "N", N, min_n));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, N, D, 1);
}

size_t ss_hypersphere_cache_size(int64_t N, int64_t D) {
    if (hs_check_sizes("ss_hypersphere_cache_size", N, D, 2) != SS_OK)
        return 0;
    return HS_HEADER_BYTES;
}

/* Declared in dist_geometry.h: the arguments' checks with N >= min_n. */
ss_status ss__hs_check(const char *fn, const float *za, const float *zb,
                       int64_t N, int64_t min_n, int64_t D,
                       const ss_hypersphere_opts *o) {
    SS_TRY(ss__check_ptr(fn, "za", za));
    SS_TRY(ss__check_ptr(fn, "zb", zb));
    SS_TRY(hs_check_sizes(fn, N, D, min_n));
    SS_TRY(ss__check_positive(fn, "t", o->t));
    if (!isfinite(o->lambda))
        return ss__fail(SS_ERR_PARAM, fn, "lambda must be finite, got %g",
                        (double)o->lambda);
    SS_TRY(ss__check_positive(fn, "alpha", o->alpha));
    SS_TRY(ss__check_finite(fn, "za", za, N * D));
    return ss__check_finite(fn, "zb", zb, N * D);
}

typedef struct {
    float *x, *y, *sx, *sy; /* normalised rows (N, D), scales (N) */
    double *nx, *ny;        /* squared norms of the normalised rows (N) */
} hs_rows;

/* Declared in dist_geometry.h: n2 (N) = the squared norms of x (N, D). */
void ss__hs_sqnorms(double *n2, const float *x, int64_t N, int64_t D) {
    for (int64_t i = 0; i < N; i++) {
        double a = 0;
        for (int64_t d = 0; d < D; d++) a += (double)x[i * D + d] * x[i * D + d];
        n2[i] = a;
    }
}

static ss_status hs_rows_make(const char *fn, hs_rows *r, void **mem,
                              const float *za, const float *zb, int64_t N,
                              int64_t D) {
    size_t nd = (size_t)(N * D);
    *mem = ss__malloc(sizeof(float) * (2 * nd + 2 * (size_t)N) +
                      sizeof(double) * 2 * (size_t)N);
    if (!*mem) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    r->nx = *mem, r->ny = r->nx + N;
    r->x = (float *)(r->ny + N), r->y = r->x + nd;
    r->sx = r->y + nd, r->sy = r->sx + N;
    ss__normalize_rows(r->x, r->sx, za, N, D);
    ss__normalize_rows(r->y, r->sy, zb, N, D);
    ss__hs_sqnorms(r->nx, r->x, N, D);
    ss__hs_sqnorms(r->ny, r->y, N, D);
    return SS_OK;
}

/* Scores of one tile: V[i][j] = s_(r0+i)(c0+j), -inf on the diagonal. */
static void hs_tile(double *V, float *S, const float *x, const double *n2,
                    int64_t r0, int64_t nr, int64_t c0, int64_t nc, int64_t D,
                    double t) {
    ss__sgemm(0, 1, nr, nc, D, 1.0f, x + r0 * D, D, x + c0 * D, D, 0.0f, S,
              HS_TILE);
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < nc; j++)
            V[i * HS_TILE + j] =
                r0 + i == c0 + j
                    ? -INFINITY
                    : -t * (n2[r0 + i] + n2[c0 + j] - 2.0 * S[i * HS_TILE + j]);
}

/* Declared in dist_geometry.h (the distributed loss runs it on its own
 * rows [rbeg, rend) of the gathered x): per row i, the LSE over j != i of
 * s_ij as rowm[i - rbeg] + log(rows[i - rbeg]). Returns nonzero when a
 * tile could not be allocated. */
int ss__hs_rows_lse(double *rowm, double *rows, const float *x,
                    const double *n2, int64_t N, int64_t D, double t,
                    int64_t rbeg, int64_t rend) {
    int64_t ntile = (N + HS_TILE - 1) / HS_TILE;
    int64_t nrt = (rend - rbeg + HS_TILE - 1) / HS_TILE;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(| : failed)
#endif
    {
        float *S = ss__malloc(sizeof(float) * HS_TILE * HS_TILE);
        double *V = ss__malloc(sizeof(double) * HS_TILE * HS_TILE);
        if (!S || !V) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ti = 0; ti < nrt; ti++) {
            if (!S || !V) continue;
            int64_t r0 = rbeg + ti * HS_TILE;
            int64_t nr = rend - r0 < HS_TILE ? rend - r0 : HS_TILE;
            for (int64_t i = 0; i < nr; i++)
                rowm[r0 - rbeg + i] = -INFINITY, rows[r0 - rbeg + i] = 0;
            for (int64_t tj = 0; tj < ntile; tj++) {
                int64_t c0 = tj * HS_TILE, nc = N - c0 < HS_TILE ? N - c0 : HS_TILE;
                hs_tile(V, S, x, n2, r0, nr, c0, nc, D, t);
                for (int64_t i = 0; i < nr; i++) {
                    const double *v = V + i * HS_TILE;
                    double m = rowm[r0 - rbeg + i], tm = -INFINITY;
                    for (int64_t j = 0; j < nc; j++) tm = v[j] > tm ? v[j] : tm;
                    if (tm == -INFINITY) continue; /* only the diagonal */
                    double s = rows[r0 - rbeg + i];
                    if (tm > m) s *= exp(m - tm), m = tm; /* exp(-inf) = 0 */
                    /* expf: the argument is exact in double, and only terms
                     * near 0 matter, where float keeps 1e-7 relative */
                    for (int64_t j = 0; j < nc; j++) s += expf((float)(v[j] - m));
                    rowm[r0 - rbeg + i] = m, rows[r0 - rbeg + i] = s;
                }
            }
        }
        ss__free(S);
        ss__free(V);
    }
    return failed;
}

/* LSE over ordered pairs i != j of s_ij for rows x (N, D). */
static ss_status hs_lse(const char *fn, double *out, const float *x,
                        const double *n2, int64_t N, int64_t D, double t) {
    double *rowm = ss__malloc(sizeof(double) * 2 * (size_t)N);
    if (!rowm) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    double *rows = rowm + N;
    if (ss__hs_rows_lse(rowm, rows, x, n2, N, D, t, 0, N)) {
        ss__free(rowm);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a tile");
    }
    double m = -INFINITY, s = 0.0;
    for (int64_t i = 0; i < N; i++) m = rowm[i] > m ? rowm[i] : m;
    for (int64_t i = 0; i < N; i++) s += rows[i] * exp(rowm[i] - m);
    *out = m + log(s);
    ss__free(rowm);
    return SS_OK;
}

/* Declared in dist_geometry.h: rows [rbeg, rend) of hs_unif_grad, g
 * indexed from rbeg. Returns nonzero when a tile could not be allocated. */
int ss__hs_rows_grad(float *g, const float *x, const double *n2, int64_t N,
                     int64_t D, double t, double lse, double coef,
                     int64_t rbeg, int64_t rend) {
    int64_t ntile = (N + HS_TILE - 1) / HS_TILE;
    int64_t nrt = (rend - rbeg + HS_TILE - 1) / HS_TILE;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(| : failed)
#endif
    {
        float *S = ss__malloc(sizeof(float) * (HS_TILE * HS_TILE + HS_TILE * D));
        double *V = ss__malloc(sizeof(double) * (HS_TILE * HS_TILE + HS_TILE));
        if (!S || !V) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ti = 0; ti < nrt; ti++) {
            if (!S || !V) continue;
            int64_t r0 = rbeg + ti * HS_TILE;
            int64_t nr = rend - r0 < HS_TILE ? rend - r0 : HS_TILE;
            float *PX = S + HS_TILE * HS_TILE; /* (nr, D): sum_j p_ij x_j */
            double *rs = V + HS_TILE * HS_TILE;  /* (nr): sum_j p_ij */
            memset(PX, 0, sizeof(float) * (size_t)(nr * D));
            for (int64_t i = 0; i < nr; i++) rs[i] = 0.0;
            for (int64_t tj = 0; tj < ntile; tj++) {
                int64_t c0 = tj * HS_TILE, nc = N - c0 < HS_TILE ? N - c0 : HS_TILE;
                hs_tile(V, S, x, n2, r0, nr, c0, nc, D, t);
                for (int64_t i = 0; i < nr; i++)
                    for (int64_t j = 0; j < nc; j++) {
                        double p = expf((float)(V[i * HS_TILE + j] - lse));
                        rs[i] += p;
                        S[i * HS_TILE + j] = (float)p;
                    }
                ss__sgemm(0, 0, nr, D, nc, 1.0f, S, HS_TILE, x + c0 * D, D,
                          1.0f, PX, D);
            }
            for (int64_t i = 0; i < nr; i++) {
                const float *xi = x + (r0 + i) * D;
                float *gi = g + (r0 - rbeg + i) * D;
                for (int64_t d = 0; d < D; d++)
                    gi[d] += (float)(coef * (rs[i] * xi[d] - PX[i * D + d]));
            }
        }
        ss__free(S);
        ss__free(V);
    }
    return failed;
}

/* g (N, D) += coef * sum_j p_ij (x_i - x_j), p_ij = exp(s_ij - lse). */
static ss_status hs_unif_grad(const char *fn, float *g, const float *x,
                              const double *n2, int64_t N, int64_t D,
                              double t, double lse, double coef) {
    if (ss__hs_rows_grad(g, x, n2, N, D, t, lse, coef, 0, N))
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a tile");
    return SS_OK;
}

/* Alignment: sum_i ||x_i - y_i||^alpha; with gx, gy: += coef * gradient. */
static double hs_align(const float *x, const float *y, int64_t N, int64_t D,
                       double alpha, float *gx, float *gy, double coef) {
    double total = 0.0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : total) num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * D, *yi = y + i * D;
        double q = 0.0;
        for (int64_t d = 0; d < D; d++) {
            double e = (double)xi[d] - yi[d];
            q += e * e;
        }
        double r = sqrt(q);
        total += pow(r, alpha);
        if (!gx || r == 0.0) continue; /* torch: norm'(0) = 0 */
        double w = coef * alpha * pow(r, alpha - 2.0);
        for (int64_t d = 0; d < D; d++) {
            double e = w * ((double)xi[d] - yi[d]);
            gx[i * D + d] += (float)e;
            gy[i * D + d] -= (float)e;
        }
    }
    return total;
}

/* Declared in dist_geometry.h. */
double ss__hs_align(const float *x, const float *y, int64_t N, int64_t D,
                    double alpha, float *gx, float *gy, double coef) {
    return hs_align(x, y, N, D, alpha, gx, gy, coef);
}

ss_status ss_hypersphere_forward(float *loss, void *cache, const float *za,
                                 const float *zb, int64_t N, int64_t D,
                                 const ss_hypersphere_opts *opts) {
    static const char fn[] = "ss_hypersphere_forward";
    ss_hypersphere_opts o = opts ? *opts : ss_hypersphere_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__hs_check(fn, za, zb, N, 2, D, &o));
    hs_rows r;
    void *mem;
    SS_TRY(hs_rows_make(fn, &r, &mem, za, zb, N, D));
    hs_header h = {HS_MAGIC, N, D, o.t, o.lambda, o.alpha, 0, 0};
    ss_status st = hs_lse(fn, &h.lse_x, r.x, r.nx, N, D, o.t);
    if (st == SS_OK) st = hs_lse(fn, &h.lse_y, r.y, r.ny, N, D, o.t);
    if (st == SS_OK) {
        double align = hs_align(r.x, r.y, N, D, o.alpha, NULL, NULL, 0) / N;
        double lpairs = log((double)N * (double)(N - 1));
        double unif = (h.lse_x - lpairs + h.lse_y - lpairs) / 2.0;
        memcpy(cache, &h, sizeof h);
        *loss = (float)(align + o.lambda * unif);
    }
    ss__free(mem);
    return st;
}

ss_status ss_hypersphere_backward(float *dza, float *dzb, float dloss,
                                  const void *cache, const float *za,
                                  const float *zb, int64_t N, int64_t D,
                                  const ss_hypersphere_opts *opts) {
    static const char fn[] = "ss_hypersphere_backward";
    ss_hypersphere_opts o = opts ? *opts : ss_hypersphere_defaults();
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__hs_check(fn, za, zb, N, 2, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    hs_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != HS_MAGIC || h.N != N || h.D != D || h.t != o.t ||
        h.lambda != o.lambda || h.alpha != o.alpha)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_hypersphere_forward with "
                        "these sizes and options");
    if (!dza && !dzb) return SS_OK;
    hs_rows r;
    void *mem;
    SS_TRY(hs_rows_make(fn, &r, &mem, za, zb, N, D));
    size_t nd = (size_t)(N * D);
    float *g = ss__calloc(sizeof(float) * 2 * nd);
    if (!g) {
        ss__free(mem);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    }
    float *gx = g, *gy = g + nd;
    hs_align(r.x, r.y, N, D, o.alpha, gx, gy, (double)dloss / N);
    /* lambda/2 * unif: coefficient -4 t lambda / 2 */
    double coef = -2.0 * (double)o.t * o.lambda * dloss;
    ss_status st = SS_OK;
    if (dza) st = hs_unif_grad(fn, gx, r.x, r.nx, N, D, o.t, h.lse_x, coef);
    if (st == SS_OK && dzb)
        st = hs_unif_grad(fn, gy, r.y, r.ny, N, D, o.t, h.lse_y, coef);
    if (st == SS_OK && dza) ss__normalize_backward(dza, gx, r.x, r.sx, za, N, D);
    if (st == SS_OK && dzb) ss__normalize_backward(dzb, gy, r.y, r.sy, zb, N, D);
    ss__free(g);
    ss__free(mem);
    return st;
}
