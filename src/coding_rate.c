/*
 * coding_rate.c - spectral objectives: MMCR (nuclear norms, through an SVD)
 * and EMP-SSL (total coding rate, through a Cholesky factor, plus the
 * invariance term). Formulas and signs: selfsup.h; derivations:
 * docs/derivations/mmcr_tcr.md.
 *
 * Both are done in double: the matrices are small (B x D, Kt x D, and
 * min(N, D)^2), and log-determinants and singular vectors lose digits in
 * float32. The forward pass caches the gradient factors (U V^T for MMCR,
 * d(-mean R)/dZ for the coding rate), so backward is a scaled add.
 */
#include "dist_geometry.h" /* ss__mmcr_*, ss__nuclear* */
#include "internal.h"
#include "kernels/lapack.h"

#include <float.h>
#include <string.h>

#define MMCR_MAGIC 0x31305243434d4d53ull  /* "SMMCCR01" */
#define TCR_MAGIC 0x3130525443504d45ull   /* "EMPTCR01" */
#define CR_HEADER_BYTES 64

/* ---- nuclear norm -------------------------------------------------------------- */

/* Doubles of workspace nuclear() needs for an (m, n) matrix: S, U, Vt. */
static size_t nuc_work(int64_t m, int64_t n) {
    int64_t k = m < n ? m : n;
    return (size_t)(k + k * (m + n));
}

/* *out = ||A||_* for A (m, n) (destroyed); when G, G (m, n) = U_r V_r^T.
 * work: nuc_work(m, n) doubles. Returns nonzero when the SVD failed. */
static int nuclear(double *out, double *G, double *A, int64_t m, int64_t n,
                   double *work) {
    int64_t k = m < n ? m : n;
    double *S = work, *U = S + k, *Vt = U + m * k;
    if (ss__dsvd(A, m, n, S, G ? U : NULL, G ? Vt : NULL) != 0) return 1;
    double tol = (double)(m > n ? m : n) * S[0] * DBL_EPSILON, sum = 0.0;
    int64_t rank = 0;
    for (int64_t r = 0; r < k; r++) {
        if (!isfinite(S[r])) return 1;
        sum += S[r];
        if (S[r] > tol) rank = r + 1;
    }
    *out = sum;
    if (G) {
        if (rank > 0)
            ss__dgemm(0, 0, m, n, rank, 1.0, U, k, Vt, n, 0.0, G, n);
        else
            memset(G, 0, sizeof(double) * (size_t)(m * n));
    }
    return 0;
}

/* ---- MMCR ---------------------------------------------------------------------------- */

typedef struct {
    uint64_t magic;
    int64_t B, K, D, Kt;
    float lambda;
} mmcr_header;

ss_mmcr_opts ss_mmcr_defaults(void) {
    ss_mmcr_opts o = {5e-3f};
    return o;
}

static ss_status mmcr_check_sizes(const char *fn, int64_t B, int64_t K,
                                  int64_t D) {
    SS_TRY(ss__check_size(fn, "B", B, 1));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, B, 2 * K, D);
}

size_t ss_mmcr_cache_size(int64_t B, int64_t K, int64_t D) {
    if (mmcr_check_sizes("ss_mmcr_cache_size", B, K, D) != SS_OK) return 0;
    return CR_HEADER_BYTES + sizeof(float) * (size_t)(B * D + B * 2 * K * D);
}

/* Declared in dist_geometry.h. */
ss_status ss__mmcr_check(const char *fn, const float *online,
                         const float *momentum, int64_t B, int64_t K,
                         int64_t D, const ss_mmcr_opts *o) {
    SS_TRY(ss__check_ptr(fn, "online", online));
    SS_TRY(mmcr_check_sizes(fn, B, K, D));
    if (!(o->lambda >= 0.0f && isfinite(o->lambda)))
        return ss__fail(SS_ERR_PARAM, fn, "lambda must be finite and >= 0, got %g",
                        (double)o->lambda);
    SS_TRY(ss__check_finite(fn, "online", online, B * K * D));
    if (momentum) SS_TRY(ss__check_finite(fn, "momentum", momentum, B * K * D));
    return SS_OK;
}

/* Row v of sample b in the concatenation [online_b; momentum_b]. */
static const float *mmcr_row(const float *on, const float *mo, int64_t b,
                             int64_t v, int64_t K, int64_t D) {
    return v < K ? on + (b * K + v) * D : mo + (b * K + v - K) * D;
}

/* Declared in dist_geometry.h: c (B, D) = the means of each sample's Kt
 * views, in double. */
void ss__mmcr_centroids(double *c, const float *online, const float *momentum,
                        int64_t B, int64_t K, int64_t Kt, int64_t D) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            double s = 0.0;
            for (int64_t v = 0; v < Kt; v++) s += mmcr_row(online, momentum, b, v, K, D)[d];
            c[b * D + d] = s / (double)Kt;
        }
}

/* Declared in dist_geometry.h: *nuc_z = sum_b ||z_b||_* and Gz (B, Kt, D)
 * = the U V^T factors of each sample's views. */
ss_status ss__mmcr_views(const char *fn, double *nuc_z, float *Gz,
                         const float *online, const float *momentum,
                         int64_t B, int64_t K, int64_t Kt, int64_t D) {
    int64_t bad_b = B; /* first sample whose SVD failed */
    int failed = 0;
    double sum = 0.0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(+ : sum) \
    reduction(min : bad_b) reduction(| : failed)
#endif
    {
        size_t nz = (size_t)(Kt * D);
        double *w = ss__malloc(sizeof(double) * (2 * nz + nuc_work(Kt, D)));
        if (!w) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t b = 0; b < B; b++) {
            if (!w) continue;
            double *A = w, *Gb = A + nz, s = 0.0;
            for (int64_t v = 0; v < Kt; v++) {
                const float *r = mmcr_row(online, momentum, b, v, K, D);
                for (int64_t d = 0; d < D; d++) A[v * D + d] = r[d];
            }
            if (nuclear(&s, Gb, A, Kt, D, Gb + nz) != 0) {
                bad_b = b < bad_b ? b : bad_b;
                continue;
            }
            sum += s;
            for (size_t i = 0; i < nz; i++) Gz[(size_t)b * nz + i] = (float)Gb[i];
        }
        ss__free(w);
    }
    if (failed) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    if (bad_b < B)
        return ss__fail(SS_ERR_PARAM, fn, "the SVD of sample %lld's views "
                        "(%lld x %lld) did not converge", (long long)bad_b,
                        (long long)Kt, (long long)D);
    *nuc_z = sum;
    return SS_OK;
}

/* Declared in dist_geometry.h: ||A||_* and its factor, see nuclear(). */
size_t ss__nuclear_work(int64_t m, int64_t n) { return nuc_work(m, n); }
int ss__nuclear(double *out, double *G, double *A, int64_t m, int64_t n,
                double *work) {
    return nuclear(out, G, A, m, n, work);
}

ss_status ss_mmcr_forward(float *loss, void *cache, const float *online,
                          const float *momentum, int64_t B, int64_t K,
                          int64_t D, const ss_mmcr_opts *opts) {
    static const char fn[] = "ss_mmcr_forward";
    ss_mmcr_opts o = opts ? *opts : ss_mmcr_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__mmcr_check(fn, online, momentum, B, K, D, &o));
    int64_t Kt = momentum ? 2 * K : K;
    float *Gc = (float *)((char *)cache + CR_HEADER_BYTES), *Gz = Gc + B * D;
    size_t nc = (size_t)(B * D);
    double *mem = ss__malloc(sizeof(double) * (2 * nc + nuc_work(B, D)));
    if (!mem) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    double *c = mem, *G = c + nc, *work = G + nc;
    ss__mmcr_centroids(c, online, momentum, B, K, Kt, D);
    double nuc_c = 0.0, nuc_z = 0.0;
    int bad = nuclear(&nuc_c, G, c, B, D, work);
    if (!bad)
        for (size_t i = 0; i < nc; i++) Gc[i] = (float)G[i];
    ss__free(mem);
    if (bad)
        return ss__fail(SS_ERR_PARAM, fn, "the SVD of the centroid matrix "
                        "(%lld x %lld) did not converge", (long long)B, (long long)D);
    SS_TRY(ss__mmcr_views(fn, &nuc_z, Gz, online, momentum, B, K, Kt, D));
    mmcr_header h = {MMCR_MAGIC, B, K, D, Kt, o.lambda};
    memcpy(cache, &h, sizeof h);
    *loss = (float)(-nuc_c + (double)o.lambda * nuc_z / (double)B);
    return SS_OK;
}

/* Declared in dist_geometry.h: donline / dmomentum (either may be NULL)
 * += wc Gc[b] + wz Gz[b, v] for every view v of every sample b. */
void ss__mmcr_apply(float *donline, float *dmomentum, const float *Gc,
                    const float *Gz, int64_t B, int64_t K, int64_t Kt,
                    int64_t D, double wc, double wz) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(ss__threads())
#endif
    for (int64_t b = 0; b < B; b++)
        for (int64_t v = 0; v < Kt; v++) {
            float *dst = v < K ? (donline ? donline + (b * K + v) * D : NULL)
                               : (dmomentum ? dmomentum + (b * K + v - K) * D : NULL);
            if (!dst) continue;
            const float *gc = Gc + b * D, *gz = Gz + (b * Kt + v) * D;
            for (int64_t d = 0; d < D; d++)
                dst[d] += (float)(wc * gc[d] + wz * gz[d]);
        }
}

ss_status ss_mmcr_backward(float *donline, float *dmomentum, float dloss,
                           const void *cache, const float *online,
                           const float *momentum, int64_t B, int64_t K,
                           int64_t D, const ss_mmcr_opts *opts) {
    static const char fn[] = "ss_mmcr_backward";
    ss_mmcr_opts o = opts ? *opts : ss_mmcr_defaults();
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__mmcr_check(fn, online, momentum, B, K, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    if (dmomentum && !momentum)
        return ss__fail(SS_ERR_NULL, fn, "dmomentum is given but momentum is NULL");
    int64_t Kt = momentum ? 2 * K : K;
    mmcr_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != MMCR_MAGIC || h.B != B || h.K != K || h.D != D ||
        h.Kt != Kt || h.lambda != o.lambda)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_mmcr_forward with these "
                        "sizes, options and momentum");
    const float *Gc = (const float *)((const char *)cache + CR_HEADER_BYTES);
    const float *Gz = Gc + B * D;
    double wc = -(double)dloss / (double)Kt, wz = (double)dloss * o.lambda / B;
    ss__mmcr_apply(donline, dmomentum, Gc, Gz, B, K, Kt, D, wc, wz);
    return SS_OK;
}

/* ---- EMP-SSL: total coding rate + invariance ------------------------------------- */

typedef struct {
    uint64_t magic;
    int64_t V, N, D;
    float tcr_eps, inv_coef;
} tcr_header;

ss_empssl_opts ss_empssl_defaults(void) {
    ss_empssl_opts o = {0.2f, 200.0f};
    return o;
}

static ss_status tcr_check_sizes(const char *fn, int64_t V, int64_t N,
                                 int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 1));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

size_t ss_empssl_cache_size(int64_t V, int64_t N, int64_t D) {
    if (tcr_check_sizes("ss_empssl_cache_size", V, N, D) != SS_OK) return 0;
    return CR_HEADER_BYTES + sizeof(float) * (size_t)(V * N * D);
}

/* Declared in dist_geometry.h. */
ss_status ss__empssl_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_empssl_opts *o) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(tcr_check_sizes(fn, V, N, D));
    SS_TRY(ss__check_positive(fn, "tcr_eps", o->tcr_eps));
    if (!isfinite(o->inv_coef))
        return ss__fail(SS_ERR_PARAM, fn, "inv_coef must be finite, got %g",
                        (double)o->inv_coef);
    return ss__check_finite(fn, "z", z, V * N * D);
}

/* Declared in dist_geometry.h: with M (p, p) = a Z^T Z (gram_n = 0,
 * p = D) or a Z Z^T (gram_n, p = N) and G (N, D) = a Z on entry:
 * R = 1/2 logdet(I + M) and G <- dR/dZ = (a Z) (I + M)^{-1} (or
 * (I + M)^{-1} (a Z)); M is destroyed (its Cholesky factor). Returns 0,
 * or the failing pivot. */
int64_t ss__tcr_solve(double *R, double *G, double *M, int64_t N, int64_t D,
                      int gram_n) {
    int64_t p = gram_n ? N : D;
    for (int64_t i = 0; i < p; i++) M[i * p + i] += 1.0;
    int64_t info = ss__dpotrf_lower(M, p);
    if (info) return info;
    double s = 0.0;
    for (int64_t i = 0; i < p; i++) s += log(M[i * p + i]);
    *R = s; /* 1/2 logdet = sum log L_ii */
    if (gram_n) { /* G = M'^{-1} (a Z) = L^{-T} L^{-1} (a Z) */
        ss__dtrsm_lower(1, 0, N, D, M, G);
        ss__dtrsm_lower(1, 1, N, D, M, G);
    } else {      /* G = (a Z) M^{-1} = (a Z) L^{-T} L^{-1} */
        ss__dtrsm_lower(0, 1, D, N, M, G);
        ss__dtrsm_lower(0, 0, D, N, M, G);
    }
    return 0;
}

/* R = 1/2 logdet(I + a Z^T Z) for Z (N, D) and G = dR/dZ = a Z M^{-1}
 * (or a M'^{-1} Z with M' = I + a Z Z^T when N < D). w: (N D + p^2)
 * doubles, p = min(N, D). Returns 0, or the failing pivot. */
static int64_t coding_rate(double *R, double *G, const float *Zf, int64_t N,
                           int64_t D, double a, double *w) {
    double *Z = w, *M = Z + N * D;
    for (int64_t i = 0; i < N * D; i++) Z[i] = Zf[i];
    if (N < D) /* M' = a Z Z^T */
        ss__dgemm(0, 1, N, N, D, a, Z, D, Z, D, 0.0, M, N);
    else       /* M = a Z^T Z */
        ss__dgemm(1, 0, D, D, N, a, Z, D, Z, D, 0.0, M, D);
    for (int64_t i = 0; i < N * D; i++) G[i] = a * Z[i];
    return ss__tcr_solve(R, G, M, N, D, N < D);
}

#define COS_EPS 1e-8 /* torch.nn.functional.cosine_similarity */

/* Invariance term -mean_{v,n} cos(z_vn, zbar_n); with dz: += coef * grad. */
static double invariance(const float *z, int64_t V, int64_t N, int64_t D,
                         float *dz, double coef, double *w) {
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        double *m = w, *gm = m + D, mq = 0.0;
        for (int64_t d = 0; d < D; d++) {
            double s = 0.0;
            for (int64_t v = 0; v < V; v++) s += z[(v * N + n) * D + d];
            m[d] = s / V, gm[d] = 0.0, mq += m[d] * m[d];
        }
        double mn = sqrt(mq), mi = 1.0 / (mn > COS_EPS ? mn : COS_EPS);
        for (int64_t v = 0; v < V; v++) {
            const float *x = z + (v * N + n) * D;
            double xq = 0.0, dot = 0.0;
            for (int64_t d = 0; d < D; d++) xq += (double)x[d] * x[d], dot += x[d] * m[d];
            double xn = sqrt(xq), xi = 1.0 / (xn > COS_EPS ? xn : COS_EPS);
            double c = dot * xi * mi;
            total -= c;
            if (!dz) continue;
            /* d cos / d x = (mhat - [x unclamped] c xhat) xi, and for m */
            double cx = xn > COS_EPS ? c : 0.0, cm = mn > COS_EPS ? c : 0.0;
            float *g = dz + (v * N + n) * D;
            for (int64_t d = 0; d < D; d++) {
                g[d] -= (float)(coef * (m[d] * mi - cx * x[d] * xi) * xi);
                gm[d] -= coef * (x[d] * xi - cm * m[d] * mi) * mi;
            }
        }
        if (!dz) continue;
        for (int64_t v = 0; v < V; v++)
            for (int64_t d = 0; d < D; d++) dz[(v * N + n) * D + d] += (float)(gm[d] / V);
    }
    return total / ((double)V * N);
}

/* Declared in dist_geometry.h. */
double ss__empssl_invariance(const float *z, int64_t V, int64_t N, int64_t D,
                             float *dz, double coef, double *w) {
    return invariance(z, V, N, D, dz, coef, w);
}

ss_status ss_empssl_forward(float *loss, float *rates, void *cache,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_empssl_opts *opts) {
    static const char fn[] = "ss_empssl_forward";
    ss_empssl_opts o = opts ? *opts : ss_empssl_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__empssl_check(fn, z, V, N, D, &o));
    int64_t p = N < D ? N : D;
    double a = (double)D / ((double)N * o.tcr_eps);
    float *Gout = (float *)((char *)cache + CR_HEADER_BYTES);
    double rsum = 0.0;
    int64_t bad_v = V, bad_info = 0;
    int failed = 0;
    size_t nd = (size_t)(N * D);
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(+ : rsum) \
    reduction(| : failed)
#endif
    {
        double *w = ss__malloc(sizeof(double) * (2 * nd + (size_t)(p * p) + 2 * (size_t)D));
        if (!w) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t v = 0; v < V; v++) {
            if (!w) continue;
            double R = 0.0, *G = w + nd + p * p;
            int64_t info = coding_rate(&R, G, z + v * N * D, N, D, a, w);
            if (info) {
#ifdef _OPENMP
#pragma omp critical(ss_tcr_bad)
#endif
                if (v < bad_v) bad_v = v, bad_info = info;
                continue;
            }
            rsum += R;
            if (rates) rates[v] = (float)R;
            for (size_t i = 0; i < nd; i++) Gout[v * nd + i] = (float)(-G[i] / V);
        }
        ss__free(w);
    }
    if (failed) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    if (bad_v < V) /* I + a Z^T Z >= I is SPD: only overflow gets here */
        return ss__fail(SS_ERR_PARAM, fn, "the coding-rate matrix of view %lld "
                        "is not positive definite at pivot %lld (overflow?)",
                        (long long)bad_v, (long long)bad_info);
    double inv = 0.0;
    if (o.inv_coef != 0.0f) {
        double *w = ss__malloc(sizeof(double) * 2 * (size_t)D);
        if (!w) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
        inv = invariance(z, V, N, D, NULL, 0.0, w);
        ss__free(w);
    }
    tcr_header h = {TCR_MAGIC, V, N, D, o.tcr_eps, o.inv_coef};
    memcpy(cache, &h, sizeof h);
    *loss = (float)(-rsum / V + (double)o.inv_coef * inv);
    return SS_OK;
}

ss_status ss_empssl_backward(float *dz, float dloss, const void *cache,
                             const float *z, int64_t V, int64_t N, int64_t D,
                             const ss_empssl_opts *opts) {
    static const char fn[] = "ss_empssl_backward";
    ss_empssl_opts o = opts ? *opts : ss_empssl_defaults();
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__empssl_check(fn, z, V, N, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    tcr_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != TCR_MAGIC || h.V != V || h.N != N || h.D != D ||
        h.tcr_eps != o.tcr_eps || h.inv_coef != o.inv_coef)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_empssl_forward with these "
                        "sizes and options");
    double *w = NULL;
    if (o.inv_coef != 0.0f) {
        w = ss__malloc(sizeof(double) * 2 * (size_t)D);
        if (!w) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    }
    const float *G = (const float *)((const char *)cache + CR_HEADER_BYTES);
    int64_t n = V * N * D;
#ifdef _OPENMP
#pragma omp parallel for num_threads(ss__threads()) if (n > 65536)
#endif
    for (int64_t i = 0; i < n; i++) dz[i] += dloss * G[i];
    if (w) {
        invariance(z, V, N, D, dz, (double)dloss * o.inv_coef / ((double)V * N), w);
        ss__free(w);
    }
    return SS_OK;
}
