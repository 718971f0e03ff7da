/* eval.c - linear probe (L-BFGS), tiled kNN, embedding health. */
#include "eval.h"

#include "internal.h"
#include "kernels/gemm.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PROBE_BLOCK 512   /* rows per block: fixed, so sums are too */
#define KNN_TILE 64       /* test rows per tile */
#define KNN_CHUNK 2048    /* train rows per similarity tile */
#define COV_BLOCK 4096    /* rows per covariance GEMM */
#define ARMIJO_C1 1e-4
#define MAX_BACKTRACK 30
#define EIG_REL_CUTOFF 1e-6 /* float32 covariance: relative round-off */

sst_probe_opts sst_probe_defaults(void) {
    sst_probe_opts o = {1e-4f, 200, 10, 1e-5};
    return o;
}

static ss_status check_labels(const char *fn, const char *name,
                              const uint8_t *y, int64_t n, int C) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= C)
            return ss__fail(SS_ERR_LABEL, fn, "%s[%lld] = %d, want < C = %d",
                            name, (long long)i, y[i], C);
    return SS_OK;
}

static ss_status check_split(const char *fn, const float *xtr,
                             const uint8_t *ytr, int64_t ntr, const float *xte,
                             const uint8_t *yte, int64_t nte, int64_t D,
                             int C) {
    SS_TRY(ss__check_ptr(fn, "xtr", xtr));
    SS_TRY(ss__check_ptr(fn, "ytr", ytr));
    SS_TRY(ss__check_ptr(fn, "xte", xte));
    SS_TRY(ss__check_ptr(fn, "yte", yte));
    SS_TRY(ss__check_size(fn, "ntr", ntr, 1));
    SS_TRY(ss__check_size(fn, "nte", nte, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    if (C < 2 || C > 256)
        return ss__fail(SS_ERR_SIZE, fn, "C must be in 2..256, got %d", C);
    SS_TRY(ss__check_product(fn, ntr, D, 1));
    SS_TRY(ss__check_product(fn, nte, D, 1));
    SS_TRY(check_labels(fn, "ytr", ytr, ntr, C));
    SS_TRY(check_labels(fn, "yte", yte, nte, C));
    SS_TRY(ss__check_finite(fn, "xtr", xtr, ntr * D));
    SS_TRY(ss__check_finite(fn, "xte", xte, nte * D));
    return SS_OK;
}

/* ---- linear probe ------------------------------------------------------- */

typedef struct {
    const float *x; /* (n, D) standardised */
    const uint8_t *y;
    int64_t n, D;
    int C;
    double l2;
    float *wf;      /* (C, D + 1) float copy of the parameters */
    float *blockg;  /* (nblocks, C * (D + 1)) per-block gradients */
    double *blockl; /* (nblocks) per-block losses */
    float *logits;  /* (threads, PROBE_BLOCK, C) */
} probe_ctx;

/* Parameters theta: W (C, D) row-major, then b (C). */
static int64_t probe_nparam(const probe_ctx *p) { return p->C * (p->D + 1); }

/* logits (m, C) of rows x (m, D) with W, b in wf. */
static void probe_logits(float *lg, const float *x, int64_t m,
                         const probe_ctx *p) {
    const int64_t D = p->D, C = p->C;
    ss__sgemm(0, 1, m, C, D, 1.0f, x, D, p->wf, D, 0.0f, lg, C);
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < C; c++) lg[i * C + c] += p->wf[C * D + c];
}

/* f(theta) = mean CE + l2/2 ||W||^2 and its gradient g (double). */
static double probe_eval(double *g, const double *theta, probe_ctx *p) {
    const int64_t D = p->D, C = p->C, np = probe_nparam(p);
    const int64_t nb = (p->n + PROBE_BLOCK - 1) / PROBE_BLOCK;
    for (int64_t i = 0; i < np; i++) p->wf[i] = (float)theta[i];
    const float inv_n = 1.0f / (float)p->n;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads())
#endif
    for (int64_t b = 0; b < nb; b++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *lg = p->logits + (int64_t)tid * PROBE_BLOCK * C;
        const int64_t r0 = b * PROBE_BLOCK;
        const int64_t m = p->n - r0 < PROBE_BLOCK ? p->n - r0 : PROBE_BLOCK;
        const float *xb = p->x + r0 * D;
        probe_logits(lg, xb, m, p);
        double loss = 0;
        for (int64_t i = 0; i < m; i++) { /* softmax - onehot, in place */
            float *l = lg + i * C, mx = -INFINITY;
            for (int64_t c = 0; c < C; c++) mx = l[c] > mx ? l[c] : mx;
            double s = 0;
            for (int64_t c = 0; c < C; c++) s += exp((double)(l[c] - mx));
            int yi = p->y[r0 + i];
            loss += log(s) - (double)(l[yi] - mx);
            for (int64_t c = 0; c < C; c++)
                l[c] = (float)(exp((double)(l[c] - mx)) / s) * inv_n;
            l[yi] -= inv_n;
        }
        float *gb = p->blockg + b * np;
        ss__sgemm(1, 0, C, D, m, 1.0f, lg, C, xb, D, 0.0f, gb, D);
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t i = 0; i < m; i++) s += lg[i * C + c];
            gb[C * D + c] = (float)s;
        }
        p->blockl[b] = loss;
    }
    double f = 0, reg = 0;
    for (int64_t i = 0; i < np; i++) g[i] = 0;
    for (int64_t b = 0; b < nb; b++) { /* fixed order */
        f += p->blockl[b];
        const float *gb = p->blockg + b * np;
        for (int64_t i = 0; i < np; i++) g[i] += gb[i];
    }
    f /= (double)p->n;
    for (int64_t i = 0; i < C * D; i++) {
        reg += theta[i] * theta[i];
        g[i] += p->l2 * theta[i];
    }
    return f + 0.5 * p->l2 * reg;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* L-BFGS (Nocedal & Wright alg. 7.4) with Armijo backtracking. ws holds
 * 2 * m + 4 vectors of n doubles and m + 1 scalars. Returns final f. */
static double lbfgs(double *x, probe_ctx *p, const sst_probe_opts *o,
                    double *ws) {
    const int64_t n = probe_nparam(p);
    const int m = o->history;
    double *S = ws, *Y = S + (int64_t)m * n, *g = Y + (int64_t)m * n;
    double *d = g + n, *xn = d + n, *gn = xn + n, *rho = gn + n;
    double alpha[64];
    double f = probe_eval(g, x, p);
    int k = 0; /* pairs stored */
    for (int it = 0; it < o->max_iter && max_abs(g, n) >= o->tol; it++) {
        for (int64_t i = 0; i < n; i++) d[i] = -g[i];
        for (int j = k - 1; j >= (k > m ? k - m : 0); j--) { /* two-loop */
            int s = j % m;
            alpha[j % m] = rho[s] * dot(S + s * n, d, n);
            for (int64_t i = 0; i < n; i++) d[i] -= alpha[j % m] * Y[s * n + i];
        }
        if (k > 0) {
            int s = (k - 1) % m;
            double gamma = dot(S + s * n, Y + s * n, n) /
                           dot(Y + s * n, Y + s * n, n);
            for (int64_t i = 0; i < n; i++) d[i] *= gamma;
        } else {
            double gn0 = sqrt(dot(g, g, n));
            for (int64_t i = 0; i < n; i++) d[i] /= gn0 > 1 ? gn0 : 1;
        }
        for (int j = (k > m ? k - m : 0); j < k; j++) {
            int s = j % m;
            double beta = rho[s] * dot(Y + s * n, d, n);
            for (int64_t i = 0; i < n; i++)
                d[i] += S[s * n + i] * (alpha[s] - beta);
        }
        double gd = dot(g, d, n);
        if (!(gd < 0)) { /* not a descent direction: restart */
            for (int64_t i = 0; i < n; i++) d[i] = -g[i];
            gd = dot(g, d, n);
            k = 0;
        }
        double step = 1.0, fn = f;
        int ok = 0;
        for (int bt = 0; bt < MAX_BACKTRACK; bt++, step *= 0.5) {
            for (int64_t i = 0; i < n; i++) xn[i] = x[i] + step * d[i];
            fn = probe_eval(gn, xn, p);
            if (fn <= f + ARMIJO_C1 * step * gd) {
                ok = 1;
                break;
            }
        }
        if (!ok) break;
        int s = k % m;
        for (int64_t i = 0; i < n; i++) {
            S[s * n + i] = xn[i] - x[i];
            Y[s * n + i] = gn[i] - g[i];
        }
        double sy = dot(S + s * n, Y + s * n, n);
        memcpy(x, xn, (size_t)n * sizeof *x);
        memcpy(g, gn, (size_t)n * sizeof *g);
        f = fn;
        if (sy > 1e-12) { /* keep the curvature pair only when positive */
            rho[s] = 1.0 / sy;
            k++;
        }
    }
    return f;
}

static double probe_accuracy(const float *x, const uint8_t *y, int64_t n,
                             probe_ctx *p) {
    const int64_t C = p->C;
    const int64_t nb = (n + PROBE_BLOCK - 1) / PROBE_BLOCK;
    int64_t correct = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : correct) \
    num_threads(ss__threads())
#endif
    for (int64_t b = 0; b < nb; b++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *lg = p->logits + (int64_t)tid * PROBE_BLOCK * C;
        const int64_t r0 = b * PROBE_BLOCK;
        const int64_t m = n - r0 < PROBE_BLOCK ? n - r0 : PROBE_BLOCK;
        probe_logits(lg, x + r0 * p->D, m, p);
        for (int64_t i = 0; i < m; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (lg[i * C + c] > lg[i * C + best]) best = c;
            correct += best == y[r0 + i];
        }
    }
    return (double)correct / (double)n;
}

/* Standardises xtr and xte with the training mean and std (constant
 * features get std 1) into str, ste. */
static void standardise(float *str, float *ste, const float *xtr, int64_t ntr,
                        const float *xte, int64_t nte, int64_t D,
                        double *mean, double *sd) {
    for (int64_t d = 0; d < D; d++) mean[d] = sd[d] = 0;
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t d = 0; d < D; d++) mean[d] += xtr[i * D + d];
    for (int64_t d = 0; d < D; d++) mean[d] /= (double)ntr;
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t d = 0; d < D; d++) {
            double v = xtr[i * D + d] - mean[d];
            sd[d] += v * v;
        }
    for (int64_t d = 0; d < D; d++) {
        sd[d] = sqrt(sd[d] / (double)ntr);
        sd[d] = sd[d] > 1e-8 ? 1.0 / sd[d] : 1.0;
    }
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t d = 0; d < D; d++)
            str[i * D + d] = (float)((xtr[i * D + d] - mean[d]) * sd[d]);
    for (int64_t i = 0; i < nte; i++)
        for (int64_t d = 0; d < D; d++)
            ste[i * D + d] = (float)((xte[i * D + d] - mean[d]) * sd[d]);
}

ss_status sst_linear_probe(double *test_acc, double *train_acc,
                           double *train_loss, const float *xtr,
                           const uint8_t *ytr, int64_t ntr, const float *xte,
                           const uint8_t *yte, int64_t nte, int64_t D, int C,
                           const sst_probe_opts *opts) {
    const char *fn = "sst_linear_probe";
    SS_TRY(ss__check_ptr(fn, "test_acc", test_acc));
    SS_TRY(check_split(fn, xtr, ytr, ntr, xte, yte, nte, D, C));
    sst_probe_opts o = opts ? *opts : sst_probe_defaults();
    if (!(o.l2 >= 0 && isfinite(o.l2)))
        return ss__fail(SS_ERR_PARAM, fn, "l2 must be finite and >= 0, got %g",
                        (double)o.l2);
    if (o.max_iter < 0)
        return ss__fail(SS_ERR_PARAM, fn, "max_iter must be >= 0, got %d",
                        o.max_iter);
    if (o.history < 1 || o.history > 64)
        return ss__fail(SS_ERR_PARAM, fn, "history must be in 1..64, got %d",
                        o.history);
    if (!(o.tol >= 0))
        return ss__fail(SS_ERR_PARAM, fn, "tol must be >= 0, got %g", o.tol);
    const int64_t np = (int64_t)C * (D + 1);
    const int64_t nb = (ntr + PROBE_BLOCK - 1) / PROBE_BLOCK;
    const int nt = ss__threads();
    float *str = ss__malloc((size_t)(ntr * D) * sizeof(float));
    float *ste = ss__malloc((size_t)(nte * D) * sizeof(float));
    double *stats = ss__malloc((size_t)(2 * D) * sizeof(double));
    double *theta = ss__calloc((size_t)np * sizeof(double));
    double *ws = ss__malloc((size_t)((2 * o.history + 4) * np + o.history + 1) *
                            sizeof(double));
    float *wf = ss__malloc((size_t)np * sizeof(float));
    float *blockg = ss__malloc((size_t)(nb * np) * sizeof(float));
    double *blockl = ss__malloc((size_t)nb * sizeof(double));
    float *logits = ss__malloc((size_t)nt * PROBE_BLOCK * (size_t)C *
                               sizeof(float));
    ss_status st = SS_OK;
    if (!str || !ste || !stats || !theta || !ws || !wf || !blockg || !blockl ||
        !logits) {
        st = ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace for "
                      "%lld x %lld features", (long long)ntr, (long long)D);
        goto done;
    }
    standardise(str, ste, xtr, ntr, xte, nte, D, stats, stats + D);
    probe_ctx p = {str, ytr, ntr, D, C, o.l2, wf, blockg, blockl, logits};
    double f = lbfgs(theta, &p, &o, ws);
    for (int64_t i = 0; i < np; i++) wf[i] = (float)theta[i];
    *test_acc = probe_accuracy(ste, yte, nte, &p);
    if (train_acc) *train_acc = probe_accuracy(str, ytr, ntr, &p);
    if (train_loss) *train_loss = f;
done:
    ss__free(str);
    ss__free(ste);
    ss__free(stats);
    ss__free(theta);
    ss__free(ws);
    ss__free(wf);
    ss__free(blockg);
    ss__free(blockl);
    ss__free(logits);
    return st;
}

/* ---- kNN ------------------------------------------------------------------ */

/* Unit rows (torch F.normalize, eps SS_NORM_EPS). */
static void normalise_rows(float *out, const float *x, int64_t n, int64_t D) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
        double nr = sqrt(s);
        float inv = (float)(1.0 / (nr > SS_NORM_EPS ? nr : SS_NORM_EPS));
        for (int64_t d = 0; d < D; d++) out[i * D + d] = x[i * D + d] * inv;
    }
}

/* Min-heap of (sim, idx) of size k: root is the weakest neighbour kept. */
static void heap_sift_down(float *hs, int64_t *hi, int64_t k, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && hs[l] < hs[m]) m = l;
        if (r < k && hs[r] < hs[m]) m = r;
        if (m == i) return;
        float ts = hs[i];
        hs[i] = hs[m];
        hs[m] = ts;
        int64_t ti = hi[i];
        hi[i] = hi[m];
        hi[m] = ti;
        i = m;
    }
}

ss_status sst_knn_accuracy(double *acc, const float *xtr, const uint8_t *ytr,
                           int64_t ntr, const float *xte, const uint8_t *yte,
                           int64_t nte, int64_t D, int C, int64_t k, float T) {
    const char *fn = "sst_knn_accuracy";
    SS_TRY(ss__check_ptr(fn, "acc", acc));
    SS_TRY(check_split(fn, xtr, ytr, ntr, xte, yte, nte, D, C));
    if (k < 1) return ss__fail(SS_ERR_PARAM, fn, "k must be >= 1, got %lld",
                               (long long)k);
    SS_TRY(ss__check_positive(fn, "T", T));
    if (k > ntr) k = ntr;
    const int nt = ss__threads();
    const int64_t per_thread = KNN_TILE * (KNN_CHUNK + k * 2) + KNN_TILE * D;
    float *ntrn = ss__malloc((size_t)(ntr * D) * sizeof(float));
    float *work = ss__malloc((size_t)(nt * per_thread) * sizeof(float) * 2);
    if (!ntrn || !work) {
        ss__free(ntrn);
        ss__free(work);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate %lld x %lld "
                        "normalised features", (long long)ntr, (long long)D);
    }
    normalise_rows(ntrn, xtr, ntr, D);
    const int64_t ntiles = (nte + KNN_TILE - 1) / KNN_TILE;
    int64_t correct = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : correct) \
    num_threads(nt)
#endif
    for (int64_t t = 0; t < ntiles; t++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *w = work + (size_t)tid * (size_t)per_thread * 2;
        float *q = w, *sim = q + KNN_TILE * D, *hs = sim + KNN_TILE * KNN_CHUNK;
        int64_t *hi = (int64_t *)(void *)(hs + KNN_TILE * k);
        const int64_t r0 = t * KNN_TILE;
        const int64_t m = nte - r0 < KNN_TILE ? nte - r0 : KNN_TILE;
        normalise_rows(q, xte + r0 * D, m, D);
        for (int64_t i = 0; i < m * k; i++) {
            hs[i] = -INFINITY;
            hi[i] = -1;
        }
        for (int64_t c0 = 0; c0 < ntr; c0 += KNN_CHUNK) {
            int64_t cn = ntr - c0 < KNN_CHUNK ? ntr - c0 : KNN_CHUNK;
            ss__sgemm(0, 1, m, cn, D, 1.0f, q, D, ntrn + c0 * D, D, 0.0f, sim,
                      cn);
            for (int64_t i = 0; i < m; i++) {
                float *h = hs + i * k;
                int64_t *hx = hi + i * k;
                const float *s = sim + i * cn;
                for (int64_t j = 0; j < cn; j++)
                    if (s[j] > h[0]) { /* strict: earlier index wins ties */
                        h[0] = s[j];
                        hx[0] = c0 + j;
                        heap_sift_down(h, hx, k, 0);
                    }
            }
        }
        for (int64_t i = 0; i < m; i++) {
            double votes[256] = {0};
            for (int64_t j = 0; j < k; j++)
                if (hi[i * k + j] >= 0) /* weights exp((s - 1) / T) <= 1 */
                    votes[ytr[hi[i * k + j]]] +=
                        exp(((double)hs[i * k + j] - 1.0) / T);
            int best = 0;
            for (int c = 1; c < C; c++)
                if (votes[c] > votes[best]) best = c;
            correct += best == yte[r0 + i];
        }
    }
    ss__free(ntrn);
    ss__free(work);
    *acc = (double)correct / (double)nte;
    return SS_OK;
}

/* ---- eigenvalues ----------------------------------------------------------- */

#ifdef SS_HAVE_CBLAS
/* LAPACK from OpenBLAS; trailing hidden Fortran string lengths. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a,
             const int *lda, double *w, double *work, const int *lwork,
             int *iwork, const int *liwork, int *info, size_t ljobz,
             size_t luplo);
#endif

/* Cyclic Jacobi on a symmetric (D, D) a; eigenvalues to vals (unsorted),
 * eigenvectors as rows of v when not NULL. */
static void jacobi_eig(double *vals, double *v, double *a, int64_t D) {
    if (v)
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j < D; j++) v[i * D + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int64_t i = 0; i < D; i++) {
            diag += a[i * D + i] * a[i * D + i];
            for (int64_t j = i + 1; j < D; j++) off += a[i * D + j] * a[i * D + j];
        }
        if (off <= 1e-30 * (diag > 0 ? diag : 1)) break;
        for (int64_t p = 0; p < D; p++)
            for (int64_t q = p + 1; q < D; q++) {
                double apq = a[p * D + q];
                if (fabs(apq) < 1e-300) continue;
                double th = (a[q * D + q] - a[p * D + p]) / (2 * apq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int64_t r = 0; r < D; r++) { /* columns p, q */
                    double arp = a[r * D + p], arq = a[r * D + q];
                    a[r * D + p] = c * arp - s * arq;
                    a[r * D + q] = s * arp + c * arq;
                }
                for (int64_t r = 0; r < D; r++) { /* rows p, q */
                    double apr = a[p * D + r], aqr = a[q * D + r];
                    a[p * D + r] = c * apr - s * aqr;
                    a[q * D + r] = s * apr + c * aqr;
                }
                if (v)
                    for (int64_t r = 0; r < D; r++) {
                        double vp = v[p * D + r], vq = v[q * D + r];
                        v[p * D + r] = c * vp - s * vq;
                        v[q * D + r] = s * vp + c * vq;
                    }
            }
    }
    for (int64_t i = 0; i < D; i++) vals[i] = a[i * D + i];
}

/* Sorts eigenpairs ascending (insertion sort; D is small). */
static void sort_eig(double *vals, double *v, int64_t D) {
    for (int64_t i = 1; i < D; i++)
        for (int64_t j = i; j > 0 && vals[j - 1] > vals[j]; j--) {
            double t = vals[j];
            vals[j] = vals[j - 1];
            vals[j - 1] = t;
            if (v)
                for (int64_t r = 0; r < D; r++) {
                    double u = v[j * D + r];
                    v[j * D + r] = v[(j - 1) * D + r];
                    v[(j - 1) * D + r] = u;
                }
        }
}

void sst_sym_eig_jacobi(double *vals, double *vecs, double *a, int64_t D) {
    jacobi_eig(vals, vecs, a, D);
    sort_eig(vals, vecs, D);
}

ss_status sst_sym_eig(double *vals, double *vecs, double *a, int64_t D) {
    const char *fn = "sst_sym_eig";
#ifdef SS_HAVE_CBLAS
    if (D <= 46340) { /* int LAPACK sizes */
        int n = (int)D, info = 0, lwork = -1, liwork = -1, iw;
        double wq;
        const char *jobz = vecs ? "V" : "N";
        dsyevd_(jobz, "U", &n, a, &n, vals, &wq, &lwork, &iw, &liwork, &info,
                1, 1);
        lwork = (int)wq;
        liwork = iw;
        double *work = ss__malloc((size_t)lwork * sizeof(double));
        int *iwork = ss__malloc((size_t)liwork * sizeof(int));
        if (!work || !iwork) {
            ss__free(work);
            ss__free(iwork);
            return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate LAPACK work");
        }
        dsyevd_(jobz, "U", &n, a, &n, vals, work, &lwork, iwork, &liwork, &info,
                1, 1);
        ss__free(work);
        ss__free(iwork);
        if (info != 0)
            return ss__fail(SS_ERR_PARAM, fn, "dsyevd failed, info = %d", info);
        /* Column-major eigenvectors = rows of a in row-major order. */
        if (vecs) memcpy(vecs, a, (size_t)(D * D) * sizeof(double));
        return SS_OK;
    }
#endif
    sst_sym_eig_jacobi(vals, vecs, a, D);
    (void)fn;
    return SS_OK;
}

/* ---- health ----------------------------------------------------------------- */

/* cov (D, D) = Zc^T Zc / (N - 1) of the centred rows of z; mean (D). */
static ss_status covariance(double *cov, double *mean, const float *z,
                            int64_t N, int64_t D, const char *fn) {
    for (int64_t d = 0; d < D; d++) mean[d] = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++) mean[d] += z[i * D + d];
    for (int64_t d = 0; d < D; d++) mean[d] /= (double)N;
    const int64_t B = N < COV_BLOCK ? N : COV_BLOCK;
    float *zc = ss__malloc((size_t)(B * D) * sizeof(float));
    float *part = ss__malloc((size_t)(D * D) * sizeof(float));
    if (!zc || !part) {
        ss__free(zc);
        ss__free(part);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a %lld x %lld "
                        "covariance", (long long)D, (long long)D);
    }
    for (int64_t i = 0; i < D * D; i++) cov[i] = 0;
    for (int64_t r0 = 0; r0 < N; r0 += B) {
        int64_t m = N - r0 < B ? N - r0 : B;
        for (int64_t i = 0; i < m; i++)
            for (int64_t d = 0; d < D; d++)
                zc[i * D + d] = (float)(z[(r0 + i) * D + d] - mean[d]);
        ss__sgemm_threaded(1, 0, D, D, m, 1.0f, zc, D, zc, D, 0.0f, part, D);
        for (int64_t i = 0; i < D * D; i++) cov[i] += part[i];
    }
    for (int64_t i = 0; i < D * D; i++) cov[i] /= (double)(N - 1);
    ss__free(zc);
    ss__free(part);
    return SS_OK;
}

static ss_status check_emb(const char *fn, const float *z, int64_t N,
                           int64_t D) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_size(fn, "N", N, 2));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    if (D > 8192)
        return ss__fail(SS_ERR_SIZE, fn, "D must be <= 8192, got %lld",
                        (long long)D);
    return ss__check_finite(fn, "z", z, N * D);
}

ss_status sst_embedding_health(sst_health *out, const float *z, int64_t N,
                               int64_t D) {
    const char *fn = "sst_embedding_health";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(check_emb(fn, z, N, D));
    double *cov = ss__malloc((size_t)(D * D) * sizeof(double));
    double *buf = ss__malloc((size_t)(3 * D) * sizeof(double));
    if (!cov || !buf) {
        ss__free(cov);
        ss__free(buf);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate %lld x %lld",
                        (long long)D, (long long)D);
    }
    double *s1 = buf, *s2 = buf + D, *vals = buf + 2 * D;
    for (int64_t d = 0; d < D; d++) s1[d] = s2[d] = 0;
    for (int64_t i = 0; i < N; i++) { /* std of normalised rows, unbiased */
        double nr = 0;
        for (int64_t d = 0; d < D; d++) nr += (double)z[i * D + d] * z[i * D + d];
        nr = sqrt(nr);
        double inv = 1.0 / (nr > SS_NORM_EPS ? nr : SS_NORM_EPS);
        for (int64_t d = 0; d < D; d++) {
            double v = z[i * D + d] * inv;
            s1[d] += v;
            s2[d] += v * v;
        }
    }
    double mstd = 0;
    for (int64_t d = 0; d < D; d++) {
        double var = (s2[d] - s1[d] * s1[d] / (double)N) / (double)(N - 1);
        mstd += sqrt(var > 0 ? var : 0);
    }
    mstd /= (double)D;
    ss_status st = covariance(cov, s1, z, N, D, fn);
    if (st == SS_OK) st = sst_sym_eig(vals, NULL, cov, D);
    if (st == SS_OK) {
        /* The covariance comes from float32 GEMMs: eigenvalues below
         * EIG_REL_CUTOFF * max are round-off and count as zero. */
        double cut = vals[D - 1] * EIG_REL_CUTOFF, tot = 0, h = 0;
        for (int64_t d = 0; d < D; d++) {
            vals[d] = vals[d] > cut ? vals[d] : 0;
            tot += sqrt(vals[d]);
        }
        for (int64_t d = 0; d < D && tot > 0; d++) {
            double p = sqrt(vals[d]) / tot;
            if (p > 0) h -= p * log(p);
        }
        out->mean_std = mstd;
        out->ref_std = 1.0 / sqrt((double)D);
        out->std_ratio = mstd * sqrt((double)D);
        out->eff_rank = tot > 0 ? exp(h) : 0.0;
    }
    ss__free(cov);
    ss__free(buf);
    return st;
}

ss_status sst_collapse_check(int *collapsed, sst_health *health,
                             const float *z, int64_t N, int64_t D) {
    SS_TRY(ss__check_ptr("sst_collapse_check", "collapsed", collapsed));
    sst_health h;
    SS_TRY(sst_embedding_health(&h, z, N, D));
    *collapsed = h.std_ratio < SST_COLLAPSE_STD_RATIO ||
                 (D >= 4 && h.eff_rank < SST_COLLAPSE_RANK);
    if (health) *health = h;
    return SS_OK;
}

ss_status sst_pca2(float *out, const float *z, int64_t N, int64_t D) {
    const char *fn = "sst_pca2";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(check_emb(fn, z, N, D));
    double *cov = ss__malloc((size_t)(2 * D * D + 2 * D) * sizeof(double));
    if (!cov) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate %lld x %lld",
                              (long long)D, (long long)D);
    double *vecs = cov + D * D, *vals = vecs + D * D, *mean = vals + D;
    ss_status st = covariance(cov, mean, z, N, D, fn);
    if (st == SS_OK) st = sst_sym_eig(vals, vecs, cov, D);
    if (st == SS_OK) {
        for (int c = 0; c < 2; c++) {
            int64_t e = D - 1 - c; /* largest eigenvalues last */
            double *v = vecs + (e >= 0 ? e : 0) * D;
            int64_t big = 0; /* sign: largest component positive */
            for (int64_t d = 1; d < D; d++)
                if (fabs(v[d]) > fabs(v[big])) big = d;
            double sg = v[big] < 0 ? -1.0 : 1.0;
            for (int64_t i = 0; i < N; i++) {
                double s = 0;
                if (e >= 0)
                    for (int64_t d = 0; d < D; d++)
                        s += (z[i * D + d] - mean[d]) * v[d];
                out[i * 2 + c] = (float)(sg * s);
            }
        }
    }
    ss__free(cov);
    return st;
}
