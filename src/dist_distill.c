/*
 * dist_distill.c - the distillation and clustering losses over ranks:
 * the teacher centre, DINO, iBOT, SwAV, MSN / PMSN. Contract:
 * selfsup_comm.h; semantics: docs/DISTRIBUTED.md.
 *
 * DINO and iBOT are sums of independent per-sample (per-image) terms over
 * a global count, given the centre: the single-process function runs on
 * the local rows and one all-reduce of a double completes the mean. The
 * centre itself becomes global in ss_dist_center_update (all-reduce of the
 * pending sums). SwAV and MSN couple the batch through Sinkhorn-Knopp: its
 * row reductions (the global LSE, the K column LSEs per iteration) are
 * completed across ranks (kernels/sinkhorn.h, ss__sk_reduce), as SwAV's
 * distributed_sinkhorn; MSN's mean prediction pbar is all-reduced too.
 * Every loss is a mean over N_tot samples of terms that are local given the
 * global codes / pbar, so the backward is the local backward scaled by
 *     world_size * N_r / N_tot
 * (computed into a scratch with unit dloss and added after the agreement,
 * so failed calls write nothing).
 */
#include "comm_internal.h"
#include "distill.h"

#include <string.h>

#define DDINO_MAGIC 0x31304f4e49445344ull /* "DSDINO01" */
#define DIBOT_MAGIC 0x3130544f42495344ull /* "DSIBOT01" */
#define DSWAV_MAGIC 0x3130564157535344ull /* "DSSWAV01" */
#define DMSN_MAGIC 0x31304e534d535344ull  /* "DSMSN001" */
#define DD_HEADER_BYTES 192
#define DD_NP 12

typedef struct {
    uint64_t magic;
    int64_t s[4];    /* the local sizes */
    double scale;    /* world_size * N_r / N_tot */
    double p[DD_NP]; /* the agreed options */
} dd_header;

/* ---- shared pieces ------------------------------------------------------- */

static void *dd_inner(const void *cache) {
    return (char *)(uintptr_t)cache + DD_HEADER_BYTES;
}

static size_t dd_cache_size(size_t inner) {
    return inner ? DD_HEADER_BYTES + inner : 0;
}

static void dd_set_header(void *cache, uint64_t magic, const int64_t *s,
                          double scale, const double *p, int np) {
    dd_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.scale = scale;
    memcpy(h.s, s, sizeof h.s);
    memcpy(h.p, p, sizeof(double) * (size_t)np);
    memcpy(cache, &h, sizeof h);
}

/* The header's scale, or SS_ERR_PARAM for a cache of other sizes/options. */
static ss_status dd_check_header(const char *fn, const void *cache,
                                 uint64_t magic, const int64_t *s,
                                 const double *p, int np, double *scale) {
    dd_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || memcmp(h.s, s, sizeof h.s) != 0 ||
        memcmp(h.p, p, sizeof(double) * (size_t)np) != 0)
        return ss__fail(SS_ERR_PARAM, fn, "cache was not written by the "
                        "matching forward (sizes, options or magic differ)");
    *scale = h.scale;
    return SS_OK;
}

/* Zeroed scratch of n floats (at least 1), or NULL with *st set. */
static float *dd_scratch(int64_t n, const char *fn, ss_status *st) {
    if (*st != SS_OK) return NULL;
    float *p = ss__calloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p)
        *st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld floats",
                       (long long)n);
    return p;
}

/* The start of a cached forward: checks loss, cache and the row count n
 * (>= lo), invalidates the cache header and returns a scratch of n row
 * losses (NULL with *st set on failure). */
static float *dd_begin(const char *fn, float *loss, void *cache,
                       const char *nname, int64_t n, int64_t lo,
                       ss_status *st) {
    *st = ss__check_ptr(fn, "loss", loss);
    if (*st == SS_OK) *st = ss__check_ptr(fn, "cache", cache);
    if (*st == SS_OK) *st = ss__check_size(fn, nname, n, lo);
    float *rows = dd_scratch(n, fn, st);
    if (*st == SS_OK) memset(cache, 0, sizeof(dd_header)); /* until success */
    return rows;
}

static void dd_axpy(float *y, const float *x, double a, int64_t n) {
    if (!y || !x) return;
    for (int64_t i = 0; i < n; i++) y[i] += (float)(a * x[i]);
}

static ss_status dd_check_dloss(const char *fn, float dloss) {
    if (isfinite(dloss)) return SS_OK;
    return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                    (double)dloss);
}

/* Sum and first moment of x (n): values that must agree between ranks. */
static void dd_moments(double *m, const float *x, int64_t n) {
    m[0] = m[1] = 0.0;
    for (int64_t i = 0; x && i < n; i++) m[0] += x[i], m[1] += (double)i * x[i];
}

/* After a local forward that wrote the local mean lr over n samples: agree
 * (n summed over ranks), reduce lr * n, write the global mean into *loss
 * and the backward scale world * n / N_tot into *scale. */
static ss_status dd_forward_mean(const ss_comm *c, const char *fn,
                                 ss_status st, const double *vals,
                                 const char *const *names, int nv, int64_t n,
                                 float lr, float *loss, double *scale) {
    int64_t tot = 0;
    SS_TRY(ss__dist_agree_total(c, fn, st, vals, names, nv, n, &tot));
    double s = (double)lr * (double)n;
    SS_TRY(ss__dist_allreduce(c, fn, &s, 1, SS_COMM_DOUBLE, SS_COMM_SUM));
    *loss = tot > 0 ? (float)(s / (double)tot) : 0.0f;
    *scale = tot > 0 ? (double)c->size * (double)n / (double)tot : 0.0;
    return SS_OK;
}

/* Sinkhorn reductions over the comm (ss__sk_reduce callbacks). */
typedef struct {
    const ss_comm *comm;
    const char *fn;
} dd_ctx;

static int dd_red_sum(void *ctx, double *buf, int64_t n) {
    const dd_ctx *x = ctx;
    return ss__dist_allreduce(x->comm, x->fn, buf, n, SS_COMM_DOUBLE,
                              SS_COMM_SUM) != SS_OK;
}

static int dd_red_max(void *ctx, double *buf, int64_t n) {
    const dd_ctx *x = ctx;
    return ss__dist_allreduce(x->comm, x->fn, buf, n, SS_COMM_DOUBLE,
                              SS_COMM_MAX) != SS_OK;
}

static int dd_red_agree(void *ctx, int st) {
    const dd_ctx *x = ctx;
    return (int)ss__dist_status(x->comm, x->fn, (ss_status)st);
}

static ss__sk_reduce dd_reduce(dd_ctx *x, int64_t rows_total) {
    ss__sk_reduce r = {x, dd_red_sum, dd_red_max, dd_red_agree, rows_total};
    return r;
}

/* ---- the teacher centre ---------------------------------------------------- */

static const char *const dcen_names[] = {"K", "momentum", "centre sum",
                                         "centre moment"};

ss_status ss_dist_center_update(ss_center *c, float momentum,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_center_update";
    SS_TRY(ss_comm_check(comm));
    ss_status st = ss__check_ptr(fn, "c", c);
    if (st == SS_OK && !(momentum >= 0.0f && momentum <= 1.0f))
        st = ss__fail(SS_ERR_PARAM, fn, "momentum must be in [0, 1], got %g",
                      (double)momentum);
    int64_t K = st == SS_OK ? ss_center_dim(c) : 0, tot = 0;
    double *buf = NULL, vals[4] = {(double)K, momentum, 0.0, 0.0};
    if (st == SS_OK) {
        dd_moments(vals + 2, ss_center_data(c), K);
        buf = ss__malloc(sizeof(double) * (size_t)K);
        if (!buf) st = ss__fail(SS_ERR_NOMEM, fn, "no memory for K = %lld "
                                "doubles", (long long)K);
    }
    int64_t pending = st == SS_OK ? ss_center_pending(c) : 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dcen_names, 4, pending, &tot);
    if (st == SS_OK) {
        memcpy(buf, ss__center_pending_sum(c), sizeof(double) * (size_t)K);
        st = ss__dist_allreduce(comm, fn, buf, K, SS_COMM_DOUBLE, SS_COMM_SUM);
    }
    if (st == SS_OK) {
        memcpy(ss__center_pending_sum(c), buf, sizeof(double) * (size_t)K);
        *ss__center_pending_rows(c) = tot;
        st = ss_center_update(c, momentum);
    }
    ss__free(buf);
    return st;
}

/* ---- DINO ---------------------------------------------------------------------- */

static const char *const ddino_names[] = {"G", "V", "K", "teacher_temp",
                                          "student_temp", "centre sum",
                                          "centre moment", "dloss"};

static void ddino_vals(double *v, const ss_center *c, float teacher_temp,
                       int64_t G, int64_t V, int64_t K,
                       const ss_dino_opts *o, ss_status st) {
    v[0] = (double)G, v[1] = (double)V, v[2] = (double)K;
    v[3] = teacher_temp, v[4] = o->student_temp, v[5] = v[6] = v[7] = 0.0;
    if (st == SS_OK) dd_moments(v + 5, ss_center_data(c), ss_center_dim(c));
}

size_t ss_dist_dino_cache_size(int64_t G, int64_t V, int64_t N, int64_t K) {
    return dd_cache_size(ss_dino_cache_size(G, V, N, K));
}

ss_status ss_dist_dino_forward(float *loss, float *losses, void *cache,
                               const float *teacher, const float *student,
                               const ss_center *c, float teacher_temp,
                               int64_t G, int64_t V, int64_t N, int64_t K,
                               const ss_dino_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_dino_forward";
    SS_TRY(ss_comm_check(comm));
    ss_dino_opts o = opts ? *opts : ss_dino_defaults();
    ss_status st;
    float *rows = dd_begin(fn, loss, cache, "N", N, 1, &st), lr = 0.0f;
    float lg = 0.0f;
    if (st == SS_OK)
        st = ss_dino_forward(&lr, rows, dd_inner(cache), teacher, student, c,
                             teacher_temp, G, V, N, K, &o);
    double vals[8], scale = 0.0;
    ddino_vals(vals, c, teacher_temp, G, V, K, &o, st);
    st = dd_forward_mean(comm, fn, st, vals, ddino_names, 7, N, lr, &lg, &scale);
    if (st == SS_OK) {
        int64_t s[4] = {G, V, N, K};
        dd_set_header(cache, DDINO_MAGIC, s, scale, vals, 7);
        *loss = lg;
        if (losses) memcpy(losses, rows, sizeof(float) * (size_t)N);
    }
    ss__free(rows);
    return st;
}

ss_status ss_dist_dino_backward(float *dstudent, float dloss,
                                const void *cache, const float *teacher,
                                const float *student, const ss_center *c,
                                float teacher_temp, int64_t G, int64_t V,
                                int64_t N, int64_t K, const ss_dino_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_dino_backward";
    SS_TRY(ss_comm_check(comm));
    ss_dino_opts o = opts ? *opts : ss_dino_defaults();
    ss_status st = ss__check_ptr(fn, "dstudent", dstudent);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__check_ptr(fn, "c", c);
    if (st == SS_OK) st = dd_check_dloss(fn, dloss);
    double vals[8], scale = 0.0;
    ddino_vals(vals, c, teacher_temp, G, V, K, &o, st);
    vals[7] = dloss;
    int64_t s[4] = {G, V, N, K}, tot = 0;
    if (st == SS_OK)
        st = dd_check_header(fn, cache, DDINO_MAGIC, s, vals, 7, &scale);
    float *g = dd_scratch(V * N * K, fn, &st);
    if (st == SS_OK)
        st = ss_dino_backward(g, 1.0f, dd_inner(cache), teacher, student, c,
                              teacher_temp, G, V, N, K, &o);
    st = ss__dist_agree_total(comm, fn, st, vals, ddino_names, 8, N, &tot);
    if (st == SS_OK) dd_axpy(dstudent, g, dloss * scale, V * N * K);
    ss__free(g);
    return st;
}

/* ---- iBOT ----------------------------------------------------------------------- */

static const char *const dibot_names[] = {"T", "K", "teacher_temp",
                                          "student_temp", "centre sum",
                                          "centre moment", "dloss"};

static void dibot_vals(double *v, const ss_center *c, int64_t T, int64_t K,
                       const ss_ibot_opts *o, ss_status st) {
    v[0] = (double)T, v[1] = (double)K, v[2] = o->teacher_temp;
    v[3] = o->student_temp, v[4] = v[5] = v[6] = 0.0;
    if (st == SS_OK) dd_moments(v + 4, ss_center_data(c), ss_center_dim(c));
}

size_t ss_dist_ibot_cache_size(int64_t M, int64_t K) {
    return dd_cache_size(ss_ibot_cache_size(M, K));
}

ss_status ss_dist_ibot_forward(float *loss, float *losses, void *cache,
                               const float *teacher, const float *student,
                               const uint8_t *mask, const ss_center *c,
                               int64_t B, int64_t T, int64_t M, int64_t K,
                               const ss_ibot_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_ibot_forward";
    SS_TRY(ss_comm_check(comm));
    ss_ibot_opts o = opts ? *opts : ss_ibot_defaults();
    ss_status st;
    float *rows = dd_begin(fn, loss, cache, "M", M, 0, &st), lr = 0.0f;
    float lg = 0.0f;
    if (st == SS_OK)
        st = ss_ibot_forward(&lr, rows, dd_inner(cache), teacher, student,
                             mask, c, B, T, M, K, &o);
    double vals[7], scale = 0.0;
    dibot_vals(vals, c, T, K, &o, st);
    st = dd_forward_mean(comm, fn, st, vals, dibot_names, 6, B, lr, &lg, &scale);
    if (st == SS_OK) {
        int64_t s[4] = {B, T, M, K};
        dd_set_header(cache, DIBOT_MAGIC, s, scale, vals, 6);
        *loss = lg;
        if (losses) memcpy(losses, rows, sizeof(float) * (size_t)M);
    }
    ss__free(rows);
    return st;
}

ss_status ss_dist_ibot_backward(float *dstudent, float dloss,
                                const void *cache, const float *teacher,
                                const float *student, const uint8_t *mask,
                                const ss_center *c, int64_t B, int64_t T,
                                int64_t M, int64_t K, const ss_ibot_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_ibot_backward";
    SS_TRY(ss_comm_check(comm));
    ss_ibot_opts o = opts ? *opts : ss_ibot_defaults();
    ss_status st = ss__check_ptr(fn, "dstudent", dstudent);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__check_ptr(fn, "c", c);
    if (st == SS_OK) st = dd_check_dloss(fn, dloss);
    double vals[7], scale = 0.0;
    dibot_vals(vals, c, T, K, &o, st);
    vals[6] = dloss;
    int64_t s[4] = {B, T, M, K}, tot = 0;
    if (st == SS_OK)
        st = dd_check_header(fn, cache, DIBOT_MAGIC, s, vals, 6, &scale);
    float *g = dd_scratch(M * K, fn, &st);
    if (st == SS_OK)
        st = ss_ibot_backward(g, 1.0f, dd_inner(cache), teacher, student, mask,
                              c, B, T, M, K, &o);
    st = ss__dist_agree_total(comm, fn, st, vals, dibot_names, 7, B, &tot);
    if (st == SS_OK) dd_axpy(dstudent, g, dloss * scale, M * K);
    ss__free(g);
    return st;
}

/* ---- SwAV ----------------------------------------------------------------------- */

static const char *const dswav_names[] = {"H", "L", "K", "temperature",
                                          "sinkhorn_iterations",
                                          "sinkhorn_epsilon", "dloss"};

static void dswav_vals(double *v, int64_t H, int64_t L, int64_t K,
                       const ss_swav_opts *o) {
    v[0] = (double)H, v[1] = (double)L, v[2] = (double)K;
    v[3] = o->temperature, v[4] = (double)o->sinkhorn_iterations;
    v[5] = o->sinkhorn_epsilon, v[6] = 0.0;
}

size_t ss_dist_swav_cache_size(int64_t H, int64_t L, int64_t N, int64_t Q,
                               int64_t K) {
    return dd_cache_size(ss_swav_cache_size(H, L, N, Q, K));
}

ss_status ss_dist_swav_forward(float *loss, float *losses, void *cache,
                               const float *high, const float *low,
                               const float *queue, int64_t H, int64_t L,
                               int64_t N, int64_t Q, int64_t K,
                               const ss_swav_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_swav_forward";
    SS_TRY(ss_comm_check(comm));
    ss_swav_opts o = opts ? *opts : ss_swav_defaults();
    ss_status st;
    float *rows = dd_begin(fn, loss, cache, "N", N, 1, &st), lr = 0.0f;
    if (st == SS_OK)
        st = ss__swav_check(fn, high, low, queue, H, L, N, Q, K, &o);
    double vals[7], qt = (double)Q;
    dswav_vals(vals, H, L, K, &o);
    int64_t Ntot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dswav_names, 6, N, &Ntot);
    if (st == SS_OK) /* the queue rows of every rank join the Sinkhorn */
        st = ss__dist_allreduce(comm, fn, &qt, 1, SS_COMM_DOUBLE, SS_COMM_SUM);
    if (st == SS_OK) {
        dd_ctx x = {comm, fn};
        ss__sk_reduce red = dd_reduce(&x, Ntot + (int64_t)qt);
        st = ss__swav_forward_red(fn, &lr, rows, dd_inner(cache), high, low,
                                  queue, H, L, N, Q, K, &o, &red);
    }
    double s = (double)lr * (double)N;
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &s, 1, SS_COMM_DOUBLE, SS_COMM_SUM);
    if (st == SS_OK) {
        int64_t sz[4] = {H, L, N, Q};
        dd_set_header(cache, DSWAV_MAGIC, sz,
                      (double)comm->size * (double)N / (double)Ntot, vals, 6);
        *loss = (float)(s / (double)Ntot);
        if (losses) memcpy(losses, rows, sizeof(float) * (size_t)N);
    }
    ss__free(rows);
    return st;
}

ss_status ss_dist_swav_backward(float *dhigh, float *dlow, float dloss,
                                const void *cache, const float *high,
                                const float *low, const float *queue,
                                int64_t H, int64_t L, int64_t N, int64_t Q,
                                int64_t K, const ss_swav_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_swav_backward";
    SS_TRY(ss_comm_check(comm));
    ss_swav_opts o = opts ? *opts : ss_swav_defaults();
    ss_status st = ss__check_ptr(fn, "dhigh", dhigh);
    if (st == SS_OK && L > 0) st = ss__check_ptr(fn, "dlow", dlow);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dd_check_dloss(fn, dloss);
    double vals[7], scale = 0.0;
    dswav_vals(vals, H, L, K, &o);
    vals[6] = dloss;
    int64_t sz[4] = {H, L, N, Q}, tot = 0;
    if (st == SS_OK)
        st = dd_check_header(fn, cache, DSWAV_MAGIC, sz, vals, 6, &scale);
    float *gh = dd_scratch(H * N * K, fn, &st);
    float *gl = dd_scratch(L * N * K, fn, &st);
    if (st == SS_OK)
        st = ss_swav_backward(gh, gl, 1.0f, dd_inner(cache), high, low, queue,
                              H, L, N, Q, K, &o);
    st = ss__dist_agree_total(comm, fn, st, vals, dswav_names, 7, N, &tot);
    if (st == SS_OK) {
        dd_axpy(dhigh, gh, dloss * scale, H * N * K);
        dd_axpy(dlow, gl, dloss * scale, L * N * K);
    }
    ss__free(gh), ss__free(gl);
    return st;
}

/* ---- MSN / PMSN ----------------------------------------------------------------- */

static const char *const dmsn_names[] = {
    "V", "K", "D", "temperature", "sharpen_temperature",
    "sinkhorn_iterations", "regularization_weight", "prior",
    "power_law_exponent", "prototypes sum", "prototypes moment", "dloss"};

static void dmsn_vals(double *v, const float *prototypes, int64_t V, int64_t K,
                      int64_t D, const ss_msn_opts *o, ss_status st) {
    v[0] = (double)V, v[1] = (double)K, v[2] = (double)D;
    v[3] = o->temperature, v[4] = o->sharpen_temperature;
    v[5] = (double)o->sinkhorn_iterations, v[6] = o->regularization_weight;
    v[7] = (double)o->prior, v[8] = o->power_law_exponent;
    v[9] = v[10] = v[11] = 0.0;
    if (st == SS_OK) dd_moments(v + 9, prototypes, K * D);
}

size_t ss_dist_msn_cache_size(int64_t V, int64_t N, int64_t K, int64_t D) {
    return dd_cache_size(ss_msn_cache_size(V, N, K, D));
}

ss_status ss_dist_msn_forward(float *loss, float *losses, void *cache,
                              const float *anchors, const float *targets,
                              const float *prototypes, int64_t V, int64_t N,
                              int64_t K, int64_t D, const ss_msn_opts *opts,
                              const ss_comm *comm) {
    static const char fn[] = "ss_dist_msn_forward";
    SS_TRY(ss_comm_check(comm));
    ss_msn_opts o = opts ? *opts : ss_msn_defaults();
    ss_status st;
    float *rows = dd_begin(fn, loss, cache, "N", N, 1, &st), lg = 0.0f;
    float *rv = NULL; /* V N row losses */
    if (st == SS_OK)
        st = ss__msn_check(fn, anchors, targets, prototypes, V, N, K, D, &o);
    rv = dd_scratch(V * N, fn, &st);
    double vals[12];
    dmsn_vals(vals, prototypes, V, K, D, &o, st);
    int64_t Ntot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dmsn_names, 11, N, &Ntot);
    if (st == SS_OK) {
        dd_ctx x = {comm, fn};
        ss__sk_reduce red = dd_reduce(&x, Ntot);
        st = ss__msn_forward_red(fn, &lg, rv, dd_inner(cache), anchors,
                                 targets, prototypes, V, N, K, D, &o, &red);
    }
    if (st == SS_OK) {
        int64_t sz[4] = {V, N, K, D};
        dd_set_header(cache, DMSN_MAGIC, sz,
                      (double)comm->size * (double)N / (double)Ntot, vals, 11);
        *loss = lg;
        if (losses) memcpy(losses, rv, sizeof(float) * (size_t)(V * N));
    }
    ss__free(rows), ss__free(rv);
    return st;
}

ss_status ss_dist_msn_backward(float *danchors, float *dprototypes,
                               float dloss, const void *cache,
                               const float *anchors, const float *targets,
                               const float *prototypes, int64_t V, int64_t N,
                               int64_t K, int64_t D, const ss_msn_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_msn_backward";
    SS_TRY(ss_comm_check(comm));
    ss_msn_opts o = opts ? *opts : ss_msn_defaults();
    ss_status st = ss__check_ptr(fn, "danchors", danchors);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__check_ptr(fn, "prototypes", prototypes);
    if (st == SS_OK) st = dd_check_dloss(fn, dloss);
    double vals[12], scale = 0.0;
    dmsn_vals(vals, prototypes, V, K, D, &o, st);
    vals[11] = dloss;
    int64_t sz[4] = {V, N, K, D}, tot = 0;
    if (st == SS_OK)
        st = dd_check_header(fn, cache, DMSN_MAGIC, sz, vals, 11, &scale);
    float *ga = dd_scratch(V * N * D, fn, &st);
    float *gp = dprototypes ? dd_scratch(K * D, fn, &st) : NULL;
    if (st == SS_OK)
        st = ss_msn_backward(ga, gp, 1.0f, dd_inner(cache), anchors, targets,
                             prototypes, V, N, K, D, &o);
    st = ss__dist_agree_total(comm, fn, st, vals, dmsn_names, 12, N, &tot);
    if (st == SS_OK) {
        dd_axpy(danchors, ga, dloss * scale, V * N * D);
        dd_axpy(dprototypes, gp, dloss * scale, K * D);
    }
    ss__free(ga), ss__free(gp);
    return st;
}
