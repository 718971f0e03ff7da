/*
 * layers.c - forward/backward pairs of the training engine (see engine.h).
 *
 * Conv2d is im2col + GEMM per image with OpenMP over the batch: every thread
 * owns one column buffer and private dw/db partials (summed in thread order
 * afterwards), so there are no atomics and no allocation inside the loops.
 * Reductions (norm statistics, bias gradients) accumulate in double.
 */
#include "engine.h"

#include "internal.h"
#include "kernels/gemm.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* ---- Linear --------------------------------------------------------------- */

static ss_status linear_check(const char *fn, int64_t N, int64_t D,
                              int64_t O) {
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_size(fn, "O", O, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    SS_TRY(ss__check_product(fn, N, O, 1));
    return ss__check_product(fn, O, D, 1);
}

ss_status sst_linear_forward(float *y, const float *x, const float *w,
                             const float *b, int64_t N, int64_t D, int64_t O) {
    static const char fn[] = "sst_linear_forward";
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(ss__check_ptr(fn, "w", w));
    SS_TRY(linear_check(fn, N, D, O));
    ss__sgemm_threaded(0, 1, N, O, D, 1.0f, x, D, w, D, 0.0f, y, O);
    if (b) {
        for (int64_t i = 0; i < N; i++)
            for (int64_t o = 0; o < O; o++) y[i * O + o] += b[o];
    }
    return SS_OK;
}

ss_status sst_linear_backward(float *dx, float *dw, float *db, const float *dy,
                              const float *x, const float *w, int64_t N,
                              int64_t D, int64_t O) {
    static const char fn[] = "sst_linear_backward";
    SS_TRY(ss__check_ptr(fn, "dw", dw));
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(ss__check_ptr(fn, "w", w));
    SS_TRY(linear_check(fn, N, D, O));
    if (dx) ss__sgemm_threaded(0, 0, N, D, O, 1.0f, dy, O, w, D, 0.0f, dx, D);
    ss__sgemm_threaded(1, 0, O, D, N, 1.0f, dy, O, x, D, 1.0f, dw, D);
    if (db) {
        for (int64_t o = 0; o < O; o++) {
            double s = 0.0;
            for (int64_t i = 0; i < N; i++) s += dy[i * O + o];
            db[o] += (float)s;
        }
    }
    return SS_OK;
}

/* ---- Conv2d ---------------------------------------------------------------- */

ss_status sst_conv2d_out_size(const sst_conv2d_dims *d, int64_t *OH,
                              int64_t *OW) {
    static const char fn[] = "sst_conv2d";
    SS_TRY(ss__check_ptr(fn, "dims", d));
    SS_TRY(ss__check_size(fn, "N", d->N, 1));
    SS_TRY(ss__check_size(fn, "Cin", d->Cin, 1));
    SS_TRY(ss__check_size(fn, "H", d->H, 1));
    SS_TRY(ss__check_size(fn, "W", d->W, 1));
    SS_TRY(ss__check_size(fn, "Cout", d->Cout, 1));
    SS_TRY(ss__check_size(fn, "KH", d->KH, 1));
    SS_TRY(ss__check_size(fn, "KW", d->KW, 1));
    SS_TRY(ss__check_size(fn, "stride", d->stride, 1));
    SS_TRY(ss__check_size(fn, "pad", d->pad, 0));
    if (d->pad >= d->KH || d->pad >= d->KW)
        return ss__fail(SS_ERR_SIZE, fn,
                        "pad must be < the kernel size %lld x %lld, got %lld",
                        (long long)d->KH, (long long)d->KW, (long long)d->pad);
    int64_t oh = (d->H + 2 * d->pad - d->KH), ow = (d->W + 2 * d->pad - d->KW);
    if (oh < 0 || ow < 0)
        return ss__fail(SS_ERR_SIZE, fn,
                        "kernel %lld x %lld larger than the padded input "
                        "%lld x %lld",
                        (long long)d->KH, (long long)d->KW,
                        (long long)(d->H + 2 * d->pad),
                        (long long)(d->W + 2 * d->pad));
    oh = oh / d->stride + 1;
    ow = ow / d->stride + 1;
    SS_TRY(ss__check_product(fn, d->N, d->Cin, d->H * d->W));
    SS_TRY(ss__check_product(fn, d->N, d->Cout, oh * ow));
    SS_TRY(ss__check_product(fn, d->Cin * d->KH * d->KW, oh * ow, 1));
    SS_TRY(ss__check_product(fn, d->Cout, d->Cin, d->KH * d->KW));
    if (OH) *OH = oh;
    if (OW) *OW = ow;
    return SS_OK;
}

/* Images per GEMM: small feature maps (L = OH OW of 49 or 196) make thin
 * GEMMs, so a chunk of images shares one column buffer of >= SST_CONV_COLS
 * columns; large maps go one image at a time. */
#define SST_CONV_COLS 512

/* The sizes forward and backward share: output map, GEMM inner size K,
 * columns per image L, images per chunk B and the chunk count. */
typedef struct {
    int64_t OH, OW, K, L, Co, B, BL, chunks;
} conv_plan;

static ss_status conv_plan_init(conv_plan *c, const sst_conv2d_dims *d) {
    SS_TRY(sst_conv2d_out_size(d, &c->OH, &c->OW));
    c->K = d->Cin * d->KH * d->KW, c->L = c->OH * c->OW, c->Co = d->Cout;
    int64_t B = (SST_CONV_COLS + c->L - 1) / c->L;
    c->B = B < d->N ? B : d->N, c->BL = c->B * c->L;
    c->chunks = (d->N + c->B - 1) / c->B;
    return SS_OK;
}

/* Rows of col (Cin KH KW, ldc) from one image x (Cin, H, W): this image's
 * OH OW columns start at col; zero in the padding. */
static void im2col(float *col, int64_t ldc, const float *x,
                   const sst_conv2d_dims *d, int64_t OH, int64_t OW) {
    const int64_t s = d->stride, p = d->pad;
    for (int64_t c = 0; c < d->Cin; c++)
        for (int64_t kh = 0; kh < d->KH; kh++)
            for (int64_t kw = 0; kw < d->KW; kw++) {
                float *row = col + ((c * d->KH + kh) * d->KW + kw) * ldc;
                const float *xc = x + c * d->H * d->W;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * s - p + kh;
                    float *r = row + oh * OW;
                    if (ih < 0 || ih >= d->H) {
                        memset(r, 0, (size_t)OW * sizeof *r);
                        continue;
                    }
                    const float *xr = xc + ih * d->W;
                    if (s == 1) { /* contiguous middle, zero edges */
                        int64_t lo = p - kw > 0 ? p - kw : 0;
                        int64_t hi = d->W + p - kw < OW ? d->W + p - kw : OW;
                        for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                        if (hi > lo)
                            memcpy(r + lo, xr + lo - p + kw,
                                   (size_t)(hi - lo) * sizeof *r);
                        for (int64_t ow = hi > lo ? hi : lo; ow < OW; ow++)
                            r[ow] = 0.0f;
                        continue;
                    }
                    for (int64_t ow = 0; ow < OW; ow++) {
                        int64_t iw = ow * s - p + kw;
                        r[ow] = (iw >= 0 && iw < d->W) ? xr[iw] : 0.0f;
                    }
                }
            }
}

/* dx (Cin, H, W) = scatter-add of this image's columns of dcol
 * (Cin KH KW, ldc); dx zeroed here. */
static void col2im(float *dx, const float *dcol, int64_t ldc,
                   const sst_conv2d_dims *d, int64_t OH, int64_t OW) {
    const int64_t s = d->stride, p = d->pad;
    memset(dx, 0, (size_t)(d->Cin * d->H * d->W) * sizeof *dx);
    for (int64_t c = 0; c < d->Cin; c++)
        for (int64_t kh = 0; kh < d->KH; kh++)
            for (int64_t kw = 0; kw < d->KW; kw++) {
                const float *row = dcol + ((c * d->KH + kh) * d->KW + kw) * ldc;
                float *xc = dx + c * d->H * d->W;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * s - p + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    const float *r = row + oh * OW;
                    float *xr = xc + ih * d->W;
                    if (s == 1) { /* contiguous range, as in im2col */
                        int64_t lo = p - kw > 0 ? p - kw : 0;
                        int64_t hi = d->W + p - kw < OW ? d->W + p - kw : OW;
                        float *xo = xr - p + kw;
                        for (int64_t ow = lo; ow < hi; ow++) xo[ow] += r[ow];
                        continue;
                    }
                    for (int64_t ow = 0; ow < OW; ow++) {
                        int64_t iw = ow * s - p + kw;
                        if (iw >= 0 && iw < d->W) xr[iw] += r[ow];
                    }
                }
            }
}

ss_status sst_conv2d_forward(float *y, const float *x, const float *w,
                             const float *b, const sst_conv2d_dims *d) {
    static const char fn[] = "sst_conv2d_forward";
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(ss__check_ptr(fn, "w", w));
    conv_plan c;
    SS_TRY(conv_plan_init(&c, d));
    const int64_t OH = c.OH, OW = c.OW, K = c.K, L = c.L, Co = c.Co;
    const int64_t B = c.B, BL = c.BL, chunks = c.chunks;
    const int nt = ss__threads();
    /* per thread: col (K, B L), GEMM output (Cout, B L) */
    const int64_t per = K * BL + Co * BL;
    float *ws = ss__malloc((size_t)(nt * per) * sizeof(float));
    if (!ws) return ss__fail(SS_ERR_NOMEM, fn, "im2col buffer of %lld floats",
                             (long long)(nt * per));
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t ch = 0; ch < chunks; ch++) {
        float *col = ws + (int64_t)THREAD_ID() * per, *out = col + K * BL;
        const int64_t n0 = ch * B, nb = d->N - n0 < B ? d->N - n0 : B;
        for (int64_t j = 0; j < nb; j++)
            im2col(col + j * L, BL, x + (n0 + j) * d->Cin * d->H * d->W, d,
                   OH, OW);
        if (B == 1) { /* large maps: the GEMM writes y directly */
            float *yn = y + n0 * Co * L;
            ss__sgemm(0, 0, Co, L, K, 1.0f, w, K, col, L, 0.0f, yn, L);
            if (b)
                for (int64_t o = 0; o < Co; o++)
                    for (int64_t l = 0; l < L; l++) yn[o * L + l] += b[o];
            continue;
        }
        ss__sgemm(0, 0, Co, nb * L, K, 1.0f, w, K, col, BL, 0.0f, out, BL);
        for (int64_t j = 0; j < nb; j++)
            for (int64_t o = 0; o < Co; o++) {
                float *yo = y + ((n0 + j) * Co + o) * L;
                const float *src = out + o * BL + j * L;
                const float bo = b ? b[o] : 0.0f;
                for (int64_t l = 0; l < L; l++) yo[l] = src[l] + bo;
            }
    }
    ss__free(ws);
    return SS_OK;
}

ss_status sst_conv2d_backward(float *dx, float *dw, float *db, const float *dy,
                              const float *x, const float *w,
                              const sst_conv2d_dims *d) {
    static const char fn[] = "sst_conv2d_backward";
    SS_TRY(ss__check_ptr(fn, "dw", dw));
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(ss__check_ptr(fn, "w", w));
    conv_plan c;
    SS_TRY(conv_plan_init(&c, d));
    const int64_t OH = c.OH, OW = c.OW, K = c.K, L = c.L, Co = c.Co;
    const int64_t B = c.B, BL = c.BL, chunks = c.chunks;
    const int nt = ss__threads();
    /* per thread: col (K, B L), dcol (K, B L), dy chunk (Co, B L),
     * dw partial (Co K), db partial (Co) */
    const int64_t per = 2 * K * BL + Co * BL + Co * K + Co;
    float *ws = ss__malloc((size_t)(nt * per) * sizeof(float));
    if (!ws) return ss__fail(SS_ERR_NOMEM, fn, "workspace of %lld floats",
                             (long long)(nt * per));
#pragma omp parallel num_threads(nt)
    {
        float *col = ws + (int64_t)THREAD_ID() * per, *dcol = col + K * BL;
        float *dyc = dcol + K * BL, *dwt = dyc + Co * BL, *dbt = dwt + Co * K;
        memset(dwt, 0, (size_t)(Co * K + Co) * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < chunks; ch++) {
            const int64_t n0 = ch * B, nb = d->N - n0 < B ? d->N - n0 : B;
            /* dy of the chunk as (Co, nb L): gathered, or in place when
             * the chunk is one image */
            const float *dyp = B == 1 ? dy + n0 * Co * L : dyc;
            for (int64_t j = 0; j < nb; j++) {
                im2col(col + j * L, BL, x + (n0 + j) * d->Cin * d->H * d->W,
                       d, OH, OW);
                for (int64_t o = 0; o < Co; o++) {
                    const float *src = dy + ((n0 + j) * Co + o) * L;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int64_t l = 0; l < L; l++) s += src[l];
                    dbt[o] += s;
                    if (B > 1)
                        memcpy(dyc + o * BL + j * L, src,
                               (size_t)L * sizeof *src);
                }
            }
            const int64_t cols = nb * L;
            ss__sgemm(0, 1, Co, K, cols, 1.0f, dyp, BL, col, BL, 1.0f, dwt, K);
            if (dx) {
                ss__sgemm(1, 0, K, cols, Co, 1.0f, w, K, dyp, BL, 0.0f, dcol,
                          BL);
                for (int64_t j = 0; j < nb; j++)
                    col2im(dx + (n0 + j) * d->Cin * d->H * d->W, dcol + j * L,
                           BL, d, OH, OW);
            }
        }
    }
    /* Sum the partials in thread order (thread t's block is fixed). */
    for (int t = 0; t < nt; t++) {
        const float *dwt = ws + (int64_t)t * per + 2 * K * BL + Co * BL;
        for (int64_t i = 0; i < Co * K; i++) dw[i] += dwt[i];
        if (db)
            for (int64_t o = 0; o < Co; o++) db[o] += dwt[Co * K + o];
    }
    ss__free(ws);
    return SS_OK;
}

/* ---- BatchNorm --------------------------------------------------------------- */
/* Both passes are split at their per-channel sums, so that the synchronised
 * variants can all-reduce the sums between the halves: the local and the
 * synchronised paths share every line of arithmetic. */

/* min_values: values per channel the pass needs locally (2 in local train
 * mode; the synchronised passes check the global count instead). */
static ss_status bn_check(const char *fn, int64_t N, int64_t C, int64_t S,
                          int64_t min_values) {
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "C", C, 1));
    SS_TRY(ss__check_size(fn, "S", S, 1));
    SS_TRY(ss__check_product(fn, N, C, S));
    if (N * S < min_values)
        return ss__fail(SS_ERR_SIZE, fn,
                        "train mode needs more than 1 value per channel, got "
                        "N x S = %lld",
                        (long long)(N * S));
    return SS_OK;
}

static ss_status bn_forward_check(const char *fn, const float *y,
                                  const float *saved, const float *x,
                                  const float *gamma, const float *beta,
                                  const float *running_mean,
                                  const float *running_var, int64_t N,
                                  int64_t C, int64_t S, float eps,
                                  float momentum, int train,
                                  int64_t min_values) {
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "saved", saved));
    SS_TRY(ss__check_ptr(fn, "x", x));
    if ((gamma == NULL) != (beta == NULL))
        return ss__fail(SS_ERR_NULL, fn,
                        "gamma and beta must both be set or both be NULL");
    if ((running_mean == NULL) != (running_var == NULL))
        return ss__fail(SS_ERR_NULL, fn, "running_mean and running_var must "
                                         "both be set or both be NULL");
    if (!train && !running_mean)
        return ss__fail(SS_ERR_NULL, fn,
                        "eval mode needs running_mean and running_var");
    SS_TRY(bn_check(fn, N, C, S, min_values));
    SS_TRY(ss__check_positive(fn, "eps", eps));
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return ss__fail(SS_ERR_PARAM, fn, "momentum must be in [0, 1], got %g",
                        (double)momentum);
    return SS_OK;
}

static ss_status bn_backward_check(const char *fn, const float *dy,
                                   const float *saved, const float *x,
                                   const float *gamma, const float *dgamma,
                                   const float *dbeta, int64_t N, int64_t C,
                                   int64_t S, int64_t min_values) {
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(ss__check_ptr(fn, "saved", saved));
    SS_TRY(ss__check_ptr(fn, "x", x));
    if (gamma && (!dgamma || !dbeta))
        return ss__fail(SS_ERR_NULL, fn,
                        "dgamma and dbeta must be set when gamma is");
    return bn_check(fn, N, C, S, min_values);
}

/* sums: (2 C) written: per-channel sum of x, then of x^2 (in double:
 * cancellation in E[x^2] - mean^2 stays far below float resolution). */
static void bn_sums(double *sums, const float *x, int64_t N, int64_t C,
                    int64_t S) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0, q = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * S;
#pragma omp simd reduction(+ : s, q)
            for (int64_t i = 0; i < S; i++) {
                s += xc[i];
                q += (double)xc[i] * xc[i];
            }
        }
        sums[c] = s, sums[C + c] = q;
    }
}

/* y, saved, running stats from the batch sums over M values per channel
 * (sums != NULL, train mode) or from the running stats (sums NULL). */
static void bn_normalise(float *y, float *saved, const float *x,
                         const float *gamma, const float *beta,
                         float *running_mean, float *running_var, int64_t N,
                         int64_t C, int64_t S, float eps, float momentum,
                         const double *sums, int64_t M) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (sums) {
            double s = sums[c], q = sums[C + c];
            mean = s / (double)M;
            q = q - s * mean; /* sum of squared deviations */
            if (q < 0.0) q = 0.0;
            var = q / (double)M;
            if (running_mean) {
                double unb = q / (double)(M - 1);
                running_mean[c] = (float)((1.0 - momentum) * running_mean[c] +
                                          momentum * mean);
                running_var[c] =
                    (float)((1.0 - momentum) * running_var[c] + momentum * unb);
            }
        } else {
            mean = running_mean[c];
            var = running_var[c];
        }
        double istd = 1.0 / sqrt(var + eps);
        saved[c] = (float)mean;
        saved[C + c] = (float)istd;
        float a = (float)(istd * (gamma ? gamma[c] : 1.0f));
        float bb = (float)((beta ? beta[c] : 0.0f) - mean * a);
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * S;
            float *yc = y + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) yc[i] = xc[i] * a + bb;
        }
    }
}

ss_status sst_batchnorm_forward(float *y, float *saved, const float *x,
                                const float *gamma, const float *beta,
                                float *running_mean, float *running_var,
                                int64_t N, int64_t C, int64_t S, float eps,
                                float momentum, int train) {
    SS_TRY(bn_forward_check("sst_batchnorm_forward", y, saved, x, gamma, beta,
                            running_mean, running_var, N, C, S, eps, momentum,
                            train, train ? 2 : 1));
    double *sums = NULL;
    if (train && !(sums = ss__malloc((size_t)(2 * C) * sizeof(double))))
        return ss__fail(SS_ERR_NOMEM, "sst_batchnorm_forward",
                        "%lld channel sums", (long long)(2 * C));
    if (sums) bn_sums(sums, x, N, C, S);
    bn_normalise(y, saved, x, gamma, beta, running_mean, running_var, N, C, S,
                 eps, momentum, sums, N * S);
    ss__free(sums);
    return SS_OK;
}

/* g: (2 C) written: per-channel sums of dy and of dy * xhat; the local
 * parameter gradients dgamma += sum dy xhat, dbeta += sum dy. */
static void bn_grad_sums(double *g, float *dgamma, float *dbeta,
                         const float *dy, const float *saved, const float *x,
                         int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t c = 0; c < C; c++) {
        const double mean = saved[c], istd = saved[C + c];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * S, *dc = dy + (n * C + c) * S;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int64_t i = 0; i < S; i++) {
                sdy += dc[i];
                sdyx += dc[i] * ((xc[i] - mean) * istd);
            }
        }
        if (dgamma) {
            dgamma[c] += (float)sdyx;
            dbeta[c] += (float)sdy;
        }
        g[c] = sdy, g[C + c] = sdyx;
    }
}

/* dx from the sums g over M values per channel (train mode differentiates
 * through the batch statistics). dx may alias dy. */
static void bn_grad_input(float *dx, const float *dy, const float *saved,
                          const float *x, const float *gamma, int64_t N,
                          int64_t C, int64_t S, int train, const double *g,
                          int64_t M) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t c = 0; c < C; c++) {
        const double istd = saved[C + c];
        const double gm = gamma ? gamma[c] : 1.0;
        const float a = (float)(gm * istd);
        /* train: dx = g istd (dy - mean(dy) - xhat mean(dy xhat)) */
        const float m1 = train ? (float)(g[c] / (double)M) : 0.0f;
        const float m2 = train ? (float)(g[C + c] / (double)M) : 0.0f;
        const float fm = saved[c], fi = saved[C + c];
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * S, *dc = dy + (n * C + c) * S;
            float *o = dx + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) {
                float xh = (xc[i] - fm) * fi;
                o[i] = a * (dc[i] - m1 - xh * m2);
            }
        }
    }
}

ss_status sst_batchnorm_backward(float *dx, float *dgamma, float *dbeta,
                                 const float *dy, const float *saved,
                                 const float *x, const float *gamma, int64_t N,
                                 int64_t C, int64_t S, int train) {
    static const char fn[] = "sst_batchnorm_backward";
    SS_TRY(bn_backward_check(fn, dy, saved, x, gamma, dgamma, dbeta, N, C, S,
                             train ? 2 : 1));
    double *g = ss__malloc((size_t)(2 * C) * sizeof(double));
    if (!g) return ss__fail(SS_ERR_NOMEM, fn, "%lld channel sums",
                            (long long)(2 * C));
    bn_grad_sums(g, gamma ? dgamma : NULL, dbeta, dy, saved, x, N, C, S);
    if (dx) bn_grad_input(dx, dy, saved, x, gamma, N, C, S, train, g, N * S);
    ss__free(g);
    return SS_OK;
}

/* ---- synchronised BatchNorm (data-parallel training) ------------------------
 * The sums of both passes, plus the value count, go through one all-reduce
 * (sst_dist_sum_agree) that also carries each rank's status so far. */

ss_status sst_batchnorm_forward_sync(float *y, float *saved, const float *x,
                                     const float *gamma, const float *beta,
                                     float *running_mean, float *running_var,
                                     int64_t N, int64_t C, int64_t S,
                                     float eps, float momentum, double *work,
                                     const ss_comm *comm, ss_status st) {
    static const char fn[] = "sst_batchnorm_forward_sync";
    if (st == SS_OK)
        st = bn_forward_check(fn, y, saved, x, gamma, beta, running_mean,
                              running_var, N, C, S, eps, momentum, 1, 1);
    if (st == SS_OK) bn_sums(work, x, N, C, S);
    work[2 * C] = st == SS_OK ? (double)(N * S) : 0.0;
    SS_TRY(sst_dist_sum_agree(comm, fn, st, work, 2 * C + 1));
    int64_t M = (int64_t)work[2 * C];
    if (M < 2)
        return ss__fail(SS_ERR_SIZE, fn, "train mode needs more than 1 value "
                        "per channel over all ranks, got %lld", (long long)M);
    bn_normalise(y, saved, x, gamma, beta, running_mean, running_var, N, C, S,
                 eps, momentum, work, M);
    return SS_OK;
}

ss_status sst_batchnorm_backward_sync(float *dx, float *dgamma, float *dbeta,
                                      const float *dy, const float *saved,
                                      const float *x, const float *gamma,
                                      int64_t N, int64_t C, int64_t S,
                                      double *work, const ss_comm *comm,
                                      ss_status st) {
    static const char fn[] = "sst_batchnorm_backward_sync";
    if (st == SS_OK)
        st = bn_backward_check(fn, dy, saved, x, gamma, dgamma, dbeta, N, C,
                               S, 1);
    /* dgamma, dbeta take the LOCAL sums: the caller's gradient average over
     * ranks then gives the global ones; dx takes the global sums */
    if (st == SS_OK)
        bn_grad_sums(work, gamma ? dgamma : NULL, dbeta, dy, saved, x, N, C, S);
    work[2 * C] = st == SS_OK ? (double)(N * S) : 0.0;
    SS_TRY(sst_dist_sum_agree(comm, fn, st, work, 2 * C + 1));
    if (dx)
        bn_grad_input(dx, dy, saved, x, gamma, N, C, S, 1, work,
                      (int64_t)work[2 * C]);
    return SS_OK;
}

/* ---- LayerNorm --------------------------------------------------------------- */

ss_status sst_layernorm_forward(float *y, float *saved, const float *x,
                                const float *gamma, const float *beta,
                                int64_t N, int64_t D, float eps) {
    static const char fn[] = "sst_layernorm_forward";
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "saved", saved));
    SS_TRY(ss__check_ptr(fn, "x", x));
    if ((gamma == NULL) != (beta == NULL))
        return ss__fail(SS_ERR_NULL, fn,
                        "gamma and beta must both be set or both be NULL");
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    SS_TRY(ss__check_positive(fn, "eps", eps));
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * D;
        double s = 0.0, q = 0.0;
        for (int64_t i = 0; i < D; i++) s += xr[i];
        double mean = s / (double)D;
        for (int64_t i = 0; i < D; i++) q += (xr[i] - mean) * (xr[i] - mean);
        double rstd = 1.0 / sqrt(q / (double)D + eps);
        saved[r] = (float)mean;
        saved[N + r] = (float)rstd;
        float *yr = y + r * D;
        for (int64_t i = 0; i < D; i++) {
            float xh = (float)((xr[i] - mean) * rstd);
            yr[i] = gamma ? xh * gamma[i] + beta[i] : xh;
        }
    }
    return SS_OK;
}

ss_status sst_layernorm_backward(float *dx, float *dgamma, float *dbeta,
                                 const float *dy, const float *saved,
                                 const float *x, const float *gamma, int64_t N,
                                 int64_t D) {
    static const char fn[] = "sst_layernorm_backward";
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(ss__check_ptr(fn, "saved", saved));
    SS_TRY(ss__check_ptr(fn, "x", x));
    if (gamma && (!dgamma || !dbeta))
        return ss__fail(SS_ERR_NULL, fn,
                        "dgamma and dbeta must be set when gamma is");
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    /* Parameter gradients first (column sums), since dx may alias dy. */
    if (gamma) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
        for (int64_t i = 0; i < D; i++) {
            double sg = 0.0, sb = 0.0;
            for (int64_t r = 0; r < N; r++) {
                double xh = (x[r * D + i] - saved[r]) * (double)saved[N + r];
                sg += dy[r * D + i] * xh;
                sb += dy[r * D + i];
            }
            dgamma[i] += (float)sg;
            dbeta[i] += (float)sb;
        }
    }
    if (!dx) return SS_OK;
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * D, *dr = dy + r * D;
        const double mean = saved[r], rstd = saved[N + r];
        double s1 = 0.0, s2 = 0.0; /* sums of g and g * xhat, g = dy gamma */
        for (int64_t i = 0; i < D; i++) {
            double g = dr[i] * (gamma ? gamma[i] : 1.0f);
            s1 += g;
            s2 += g * (xr[i] - mean) * rstd;
        }
        const float m1 = (float)(s1 / (double)D), m2 = (float)(s2 / (double)D);
        const float fm = (float)mean, fr = (float)rstd;
        float *o = dx + r * D;
        for (int64_t i = 0; i < D; i++) {
            float g = dr[i] * (gamma ? gamma[i] : 1.0f);
            o[i] = fr * (g - m1 - (xr[i] - fm) * fr * m2);
        }
    }
    return SS_OK;
}

/* ---- activations ------------------------------------------------------------ */

static ss_status elt_check(const char *fn, const void *a, const char *an,
                           const void *b, const char *bn, const void *c,
                           const char *cn, int64_t n) {
    SS_TRY(ss__check_ptr(fn, an, a));
    SS_TRY(ss__check_ptr(fn, bn, b));
    if (cn) SS_TRY(ss__check_ptr(fn, cn, c));
    return ss__check_size(fn, "n", n, 1);
}

ss_status sst_relu_forward(float *y, const float *x, int64_t n) {
    SS_TRY(elt_check("sst_relu_forward", y, "y", x, "x", NULL, NULL, n));
#pragma omp parallel for simd schedule(static) num_threads(ss__threads())
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return SS_OK;
}

ss_status sst_relu_backward(float *dx, const float *dy, const float *y,
                            int64_t n) {
    SS_TRY(elt_check("sst_relu_backward", dx, "dx", dy, "dy", y, "y", n));
#pragma omp parallel for simd schedule(static) num_threads(ss__threads())
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    return SS_OK;
}

#define SST_INV_SQRT2 0.70710678118654752440
#define SST_INV_SQRT_2PI 0.39894228040143267794

ss_status sst_gelu_forward(float *y, const float *x, int64_t n) {
    SS_TRY(elt_check("sst_gelu_forward", y, "y", x, "x", NULL, NULL, n));
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + erf(v * SST_INV_SQRT2)));
    }
    return SS_OK;
}

ss_status sst_gelu_backward(float *dx, const float *dy, const float *x,
                            int64_t n) {
    SS_TRY(elt_check("sst_gelu_backward", dx, "dx", dy, "dy", x, "x", n));
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        double cdf = 0.5 * (1.0 + erf(v * SST_INV_SQRT2));
        double pdf = SST_INV_SQRT_2PI * exp(-0.5 * v * v);
        dx[i] = (float)(dy[i] * (cdf + v * pdf));
    }
    return SS_OK;
}

/* ---- pooling ----------------------------------------------------------------- */

static ss_status pool_check(const char *fn, int64_t P, int64_t H, int64_t W,
                            int64_t K, int64_t stride, int64_t *OH,
                            int64_t *OW) {
    SS_TRY(ss__check_size(fn, "P", P, 1));
    SS_TRY(ss__check_size(fn, "H", H, 1));
    SS_TRY(ss__check_size(fn, "W", W, 1));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_size(fn, "stride", stride, 1));
    if (K > H || K > W)
        return ss__fail(SS_ERR_SIZE, fn,
                        "kernel K = %lld larger than the input %lld x %lld",
                        (long long)K, (long long)H, (long long)W);
    SS_TRY(ss__check_product(fn, P, H, W));
    *OH = (H - K) / stride + 1;
    *OW = (W - K) / stride + 1;
    return SS_OK;
}

/* The encoder's pool: 2x2, stride 2, one (H, W) plane. Branch-free
 * selects so that the compiler vectorises the rows; random-looking data
 * made the branchy version mispredict on every window. Unlike the generic
 * path, a NaN in a window is not propagated (training stops on a NaN loss
 * before pooling would matter). */
static void maxpool2_plane(float *restrict y, const float *restrict x,
                           int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        float *yr = y + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1];
            float c = r1[2 * ow], e = r1[2 * ow + 1];
            float m1 = b > a ? b : a, m2 = e > c ? e : c;
            yr[ow] = m2 > m1 ? m2 : m1;
        }
    }
}

/* Backward of maxpool2_plane; writes all of dx (H, W), zero off the argmax
 * (the first maximum in window order, as torch). */
static void maxpool2_plane_bwd(float *restrict dx, const float *restrict dy,
                               const float *restrict x, int64_t H, int64_t W,
                               int64_t OH, int64_t OW) {
    if (2 * OH != H || 2 * OW != W) memset(dx, 0, (size_t)(H * W) * sizeof *dx);
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        float *d0 = dx + 2 * oh * W, *d1 = d0 + W;
        const float *g = dy + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1];
            float c = r1[2 * ow], e = r1[2 * ow + 1];
            float m1 = b > a ? b : a, m2 = e > c ? e : c;
            float m = m2 > m1 ? m2 : m1;
            /* pass the gradient along until the first element equal to m
             * takes it (float selects only, so the loop vectorises) */
            float rest = g[ow];
            d0[2 * ow] = a == m ? rest : 0.0f;
            rest = a == m ? 0.0f : rest;
            d0[2 * ow + 1] = b == m ? rest : 0.0f;
            rest = b == m ? 0.0f : rest;
            d1[2 * ow] = c == m ? rest : 0.0f;
            rest = c == m ? 0.0f : rest;
            d1[2 * ow + 1] = rest;
        }
    }
}

ss_status sst_maxpool2d_forward(float *y, const float *x, int64_t P, int64_t H,
                                int64_t W, int64_t K, int64_t stride) {
    static const char fn[] = "sst_maxpool2d_forward";
    int64_t OH, OW;
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(pool_check(fn, P, H, W, K, stride, &OH, &OW));
    if (K == 2 && stride == 2) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
        for (int64_t p = 0; p < P; p++)
            maxpool2_plane(y + p * OH * OW, x + p * H * W, W, OH, OW);
        return SS_OK;
    }
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        const float *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *w0 = xp + oh * stride * W + ow * stride;
                float m = w0[0];
                for (int64_t i = 0; i < K; i++)
                    for (int64_t j = 0; j < K; j++)
                        if (w0[i * W + j] > m || isnan(w0[i * W + j]))
                            m = w0[i * W + j];
                y[(p * OH + oh) * OW + ow] = m;
            }
    }
    return SS_OK;
}

ss_status sst_maxpool2d_backward(float *dx, const float *dy, const float *x,
                                 int64_t P, int64_t H, int64_t W, int64_t K,
                                 int64_t stride) {
    static const char fn[] = "sst_maxpool2d_backward";
    int64_t OH, OW;
    SS_TRY(ss__check_ptr(fn, "dx", dx));
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(pool_check(fn, P, H, W, K, stride, &OH, &OW));
    if (K == 2 && stride == 2) {
#pragma omp parallel for schedule(static) num_threads(ss__threads())
        for (int64_t p = 0; p < P; p++)
            maxpool2_plane_bwd(dx + p * H * W, dy + p * OH * OW, x + p * H * W,
                               H, W, OH, OW);
        return SS_OK;
    }
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        const float *xp = x + p * H * W;
        float *dp = dx + p * H * W;
        memset(dp, 0, (size_t)(H * W) * sizeof *dp);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t at = oh * stride * W + ow * stride, best = at;
                for (int64_t i = 0; i < K; i++)
                    for (int64_t j = 0; j < K; j++) {
                        int64_t q = at + i * W + j;
                        if (xp[q] > xp[best] || isnan(xp[q])) best = q;
                    }
                dp[best] += dy[(p * OH + oh) * OW + ow];
            }
    }
    return SS_OK;
}

ss_status sst_avgpool2d_forward(float *y, const float *x, int64_t P, int64_t H,
                                int64_t W, int64_t K, int64_t stride) {
    static const char fn[] = "sst_avgpool2d_forward";
    int64_t OH, OW;
    SS_TRY(ss__check_ptr(fn, "y", y));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(pool_check(fn, P, H, W, K, stride, &OH, &OW));
    const float inv = 1.0f / (float)(K * K);
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        const float *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *w0 = xp + oh * stride * W + ow * stride;
                float s = 0.0f;
                for (int64_t i = 0; i < K; i++)
                    for (int64_t j = 0; j < K; j++) s += w0[i * W + j];
                y[(p * OH + oh) * OW + ow] = s * inv;
            }
    }
    return SS_OK;
}

ss_status sst_avgpool2d_backward(float *dx, const float *dy, int64_t P,
                                 int64_t H, int64_t W, int64_t K,
                                 int64_t stride) {
    static const char fn[] = "sst_avgpool2d_backward";
    int64_t OH, OW;
    SS_TRY(ss__check_ptr(fn, "dx", dx));
    SS_TRY(ss__check_ptr(fn, "dy", dy));
    SS_TRY(pool_check(fn, P, H, W, K, stride, &OH, &OW));
    const float inv = 1.0f / (float)(K * K);
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        float *dp = dx + p * H * W;
        memset(dp, 0, (size_t)(H * W) * sizeof *dp);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float g = dy[(p * OH + oh) * OW + ow] * inv;
                float *w0 = dp + oh * stride * W + ow * stride;
                for (int64_t i = 0; i < K; i++)
                    for (int64_t j = 0; j < K; j++) w0[i * W + j] += g;
            }
    }
    return SS_OK;
}

static ss_status gap_check(const char *fn, const float *out, const char *on,
                           const float *in, const char *inn, int64_t P,
                           int64_t S) {
    SS_TRY(ss__check_ptr(fn, on, out));
    SS_TRY(ss__check_ptr(fn, inn, in));
    SS_TRY(ss__check_size(fn, "P", P, 1));
    SS_TRY(ss__check_size(fn, "S", S, 1));
    return ss__check_product(fn, P, S, 1);
}

ss_status sst_gap_forward(float *y, const float *x, int64_t P, int64_t S) {
    static const char fn[] = "sst_gap_forward";
    SS_TRY(gap_check(fn, y, "y", x, "x", P, S));
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        double s = 0.0;
        for (int64_t i = 0; i < S; i++) s += x[p * S + i];
        y[p] = (float)(s / (double)S);
    }
    return SS_OK;
}

ss_status sst_gap_backward(float *dx, const float *dy, int64_t P, int64_t S) {
    static const char fn[] = "sst_gap_backward";
    SS_TRY(gap_check(fn, dx, "dx", dy, "dy", P, S));
#pragma omp parallel for schedule(static) num_threads(ss__threads())
    for (int64_t p = 0; p < P; p++) {
        float g = dy[p] / (float)S;
        for (int64_t i = 0; i < S; i++) dx[p * S + i] = g;
    }
    return SS_OK;
}
