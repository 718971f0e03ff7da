/*
 * dist_predictive.c - the per-token / per-element losses whose mean runs
 * over a global count: masked cross-entropy (MLM), fused linear + CE,
 * reconstruction, MAE. Contract: selfsup_comm.h; semantics:
 * docs/DISTRIBUTED.md.
 *
 * Each loss is a local sum S_r over a local count W_r (scored targets or
 * their class weights, counted elements, masked patches), so the global
 * loss is sum_r S_r / sum_r W_r: one all-reduce of (S_r, W_r) in double.
 * The single-process function does the local work. Every backward is
 * linear in dloss, so it runs locally into a zeroed scratch with a unit
 * upstream gradient and is added, scaled, only once every rank agreed:
 * failed calls write nothing. Scale (mean convention):
 *     dloss * world_size * W_r / W_global  x  (local gradient of S_r / W_r).
 * MLM and fused CE keep W in their cache; the forward replaces it with
 * W_global / world_size, so that their backward already scales that way
 * (also when W_r = 0 but label smoothing still scores rows).
 */
#include "comm_internal.h"
#include "predictive.h"

#include <string.h>

#define DMLM_MAGIC 0x31304d4c4d534453ull /* "SDSMLM01" */
#define DFCE_MAGIC 0x3130454346534453ull /* "SDSFCE01" */
#define DP_HEADER_BYTES 128

typedef struct {
    uint64_t magic;
    int64_t a, b, c; /* the local sizes */
    double p[5];     /* the options */
} dp_header;

/* ---- shared pieces ------------------------------------------------------- */

static ss_status dp_sum(const ss_comm *c, const char *fn, double *buf,
                        int64_t n) {
    return ss__dist_allreduce(c, fn, buf, n, SS_COMM_DOUBLE, SS_COMM_SUM);
}

static double dp_fsum(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* y += a * x; y and x may be NULL (nothing requested). */
static void dp_axpy(float *y, const float *x, double a, int64_t n) {
    if (!y || !x) return;
    for (int64_t i = 0; i < n; i++) y[i] += (float)(a * x[i]);
}

static int64_t dp_count(const uint8_t *mask, int64_t n) {
    if (!mask) return n;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += mask[i] != 0;
    return k;
}

/* Zeroed scratch of n floats, or NULL (status NOMEM) when want. */
static float *dp_scratch(int want, int64_t n, const char *fn, ss_status *st) {
    if (!want || *st != SS_OK) return NULL;
    float *p = ss__calloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p)
        *st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld floats",
                       (long long)n);
    return p;
}

/* The start of a cached forward: checks loss, cache and the row count n,
 * invalidates the cache header and returns a scratch of n row losses
 * (NULL with *st set on failure). */
static float *dp_begin(const char *fn, float *loss, void *cache,
                       const char *nname, int64_t n, ss_status *st) {
    *st = ss__check_ptr(fn, "loss", loss);
    if (*st == SS_OK) *st = ss__check_ptr(fn, "cache", cache);
    if (*st == SS_OK) *st = ss__check_size(fn, nname, n, 1);
    float *rows = dp_scratch(1, n, fn, st);
    if (*st == SS_OK) memset(cache, 0, sizeof(dp_header)); /* until success */
    return rows;
}

static void dp_set_header(void *cache, uint64_t magic, int64_t a, int64_t b,
                          int64_t c, const double *p) {
    dp_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.a = a, h.b = b, h.c = c;
    memcpy(h.p, p, sizeof h.p);
    memcpy(cache, &h, sizeof h);
}

static ss_status dp_check_header(const char *fn, const void *cache,
                                 uint64_t magic, int64_t a, int64_t b,
                                 int64_t c, const double *p) {
    dp_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || h.a != a || h.b != b || h.c != c ||
        memcmp(h.p, p, sizeof h.p) != 0)
        return ss__fail(SS_ERR_PARAM, fn, "cache was not written by the "
                        "matching forward (sizes, options or magic differ)");
    return SS_OK;
}

static void *dp_inner(const void *cache) {
    return (char *)(uintptr_t)cache + DP_HEADER_BYTES;
}

/* The class-weight options agreed between ranks: sum w_c and sum c w_c. */
static void dp_weight_moments(double *m, const float *w, int64_t V) {
    m[0] = m[1] = 0.0;
    for (int64_t c = 0; w && c < V; c++) m[0] += w[c], m[1] += (double)c * w[c];
}

/* Cross-entropy options as agreed values: V or H, ignore, eps, weights. */
static void dp_ce_vals(double *v, int64_t V, int64_t ignore, float eps,
                       const float *w, ss_status st) {
    v[0] = (double)V, v[1] = (double)ignore, v[2] = eps;
    if (st == SS_OK) dp_weight_moments(v + 3, w, V);
    else v[3] = v[4] = 0.0;
}

/* After the local CE forward (row losses in rows, W_r in *norm): reduce
 * (S_r, W_r), store W_global / world_size, write the outputs. */
static ss_status dp_ce_finish(const ss_comm *c, const char *fn, float *loss,
                              float *losses, const float *rows, int64_t T,
                              double *norm) {
    double red[2] = {dp_fsum(rows, T), *norm};
    SS_TRY(dp_sum(c, fn, red, 2));
    *norm = red[1] / (double)c->size;
    *loss = red[1] > 0.0 ? (float)(red[0] / red[1]) : 0.0f;
    if (losses) memcpy(losses, rows, sizeof(float) * (size_t)T);
    return SS_OK;
}

static ss_status dp_check_tv(const char *fn, int64_t T, int64_t V) {
    SS_TRY(ss__check_size(fn, "T", T, 1));
    SS_TRY(ss__check_size(fn, "V", V, 1));
    return ss__check_product(fn, T, V, 1);
}

static ss_status dp_check_dloss(const char *fn, float dloss) {
    if (isfinite(dloss)) return SS_OK;
    return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                    (double)dloss);
}

/* ---- masked cross-entropy (MLM) ------------------------------------------ */

static const char *const dmlm_names[] = {"V", "ignore_index",
                                         "label_smoothing", "class_weights sum",
                                         "class_weights moment", "dloss"};

size_t ss_dist_mlm_cache_size(int64_t T, int64_t V) {
    size_t s = ss_mlm_cache_size(T, V);
    return s ? DP_HEADER_BYTES + s : 0;
}

ss_status ss_dist_mlm_forward(float *loss, float *losses, void *cache,
                              const float *logits, const int64_t *targets,
                              int64_t T, int64_t V, const ss_mlm_opts *opts,
                              const ss_comm *comm) {
    static const char fn[] = "ss_dist_mlm_forward";
    SS_TRY(ss_comm_check(comm));
    ss_mlm_opts o = opts ? *opts : ss_mlm_defaults();
    ss_status st;
    float *rows = dp_begin(fn, loss, cache, "T", T, &st), lr = 0.0f;
    if (st == SS_OK)
        st = ss_mlm_forward(&lr, rows, dp_inner(cache), logits, targets, T, V,
                            &o);
    double vals[5];
    dp_ce_vals(vals, V, o.ignore_index, o.label_smoothing, o.class_weights, st);
    int64_t Ttot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dmlm_names, 5, T, &Ttot);
    if (st == SS_OK)
        st = dp_ce_finish(comm, fn, loss, losses, rows, T,
                          ss__mlm_cache_norm(dp_inner(cache)));
    if (st == SS_OK) dp_set_header(cache, DMLM_MAGIC, T, V, 0, vals);
    ss__free(rows);
    return st;
}

ss_status ss_dist_mlm_backward(float *dlogits, float dloss, const void *cache,
                               const float *logits, const int64_t *targets,
                               int64_t T, int64_t V, const ss_mlm_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_mlm_backward";
    SS_TRY(ss_comm_check(comm));
    ss_mlm_opts o = opts ? *opts : ss_mlm_defaults();
    ss_status st = ss__check_ptr(fn, "dlogits", dlogits);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dp_check_dloss(fn, dloss);
    if (st == SS_OK) st = dp_check_tv(fn, T, V);
    double vals[6];
    if (st == SS_OK) st = ss__check_class_weights(fn, o.class_weights, V);
    dp_ce_vals(vals, V, o.ignore_index, o.label_smoothing, o.class_weights, st);
    vals[5] = dloss;
    if (st == SS_OK)
        st = dp_check_header(fn, cache, DMLM_MAGIC, T, V, 0, vals);
    float *g = dp_scratch(1, T * V, fn, &st);
    if (st == SS_OK)
        st = ss_mlm_backward(g, 1.0f, dp_inner(cache), logits, targets, T, V,
                             &o);
    int64_t Ttot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dmlm_names, 6, T, &Ttot);
    if (st == SS_OK) dp_axpy(dlogits, g, dloss, T * V);
    ss__free(g);
    return st;
}

/* ---- fused linear + cross-entropy ---------------------------------------- */

static const char *const dfce_names[] = {"V", "ignore_index",
                                         "label_smoothing", "class_weights sum",
                                         "class_weights moment", "H", "dloss"};

size_t ss_dist_fused_ce_cache_size(int64_t T, int64_t H, int64_t V) {
    size_t s = ss_fused_ce_cache_size(T, H, V);
    return s ? DP_HEADER_BYTES + s : 0;
}

ss_status ss_dist_fused_ce_forward(float *loss, float *losses, void *cache,
                                   const float *hidden, const float *weight,
                                   const float *bias, const int64_t *targets,
                                   int64_t T, int64_t H, int64_t V,
                                   const ss_fused_ce_opts *opts,
                                   const ss_comm *comm) {
    static const char fn[] = "ss_dist_fused_ce_forward";
    SS_TRY(ss_comm_check(comm));
    ss_fused_ce_opts o = opts ? *opts : ss_fused_ce_defaults();
    ss_status st;
    float *rows = dp_begin(fn, loss, cache, "T", T, &st), lr = 0.0f;
    if (st == SS_OK)
        st = ss_fused_ce_forward(&lr, rows, dp_inner(cache), hidden, weight,
                                 bias, targets, T, H, V, &o);
    double vals[6];
    dp_ce_vals(vals, V, o.ignore_index, o.label_smoothing, o.class_weights, st);
    vals[5] = (double)H;
    int64_t Ttot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dfce_names, 6, T, &Ttot);
    if (st == SS_OK)
        st = dp_ce_finish(comm, fn, loss, losses, rows, T,
                          ss__fused_ce_cache_norm(dp_inner(cache)));
    if (st == SS_OK) dp_set_header(cache, DFCE_MAGIC, T, H, V, vals);
    ss__free(rows);
    return st;
}

ss_status ss_dist_fused_ce_backward(float *dhidden, float *dweight,
                                    float *dbias, float dloss,
                                    const void *cache, const float *hidden,
                                    const float *weight, const float *bias,
                                    const int64_t *targets, int64_t T,
                                    int64_t H, int64_t V,
                                    const ss_fused_ce_opts *opts,
                                    const ss_comm *comm) {
    static const char fn[] = "ss_dist_fused_ce_backward";
    SS_TRY(ss_comm_check(comm));
    ss_fused_ce_opts o = opts ? *opts : ss_fused_ce_defaults();
    ss_status st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dp_check_dloss(fn, dloss);
    if (st == SS_OK && !ss_fused_ce_cache_size(T, H, V))
        st = ss__fail(SS_ERR_SIZE, fn, "bad sizes T = %lld, H = %lld, V = "
                      "%lld", (long long)T, (long long)H, (long long)V);
    if (st == SS_OK) st = ss__check_class_weights(fn, o.class_weights, V);
    double vals[7];
    dp_ce_vals(vals, V, o.ignore_index, o.label_smoothing, o.class_weights, st);
    vals[5] = (double)H, vals[6] = dloss;
    if (st == SS_OK)
        st = dp_check_header(fn, cache, DFCE_MAGIC, T, H, V, vals);
    float *gh = dp_scratch(dhidden != NULL, T * H, fn, &st);
    float *gw = dp_scratch(dweight != NULL, V * H, fn, &st);
    float *gb = dp_scratch(dbias != NULL, V, fn, &st);
    int64_t scored = 0; /* none here: validate only (no row workspace) */
    if (st == SS_OK && targets)
        (void)ss__check_targets(fn, targets, T, V, o.ignore_index, &scored);
    if (st == SS_OK)
        st = ss_fused_ce_backward(scored ? gh : NULL, scored ? gw : NULL,
                                  scored ? gb : NULL, 1.0f, dp_inner(cache),
                                  hidden, weight, bias, targets, T, H, V, &o);
    int64_t Ttot = 0;
    st = ss__dist_agree_total(comm, fn, st, vals, dfce_names, 7, T, &Ttot);
    if (st == SS_OK) {
        dp_axpy(dhidden, gh, dloss, T * H);
        dp_axpy(dweight, gw, dloss, V * H);
        dp_axpy(dbias, gb, dloss, V);
    }
    ss__free(gh), ss__free(gw), ss__free(gb);
    return st;
}

/* Forward then backward (the backward recomputes the logits: the one-pass
 * single-process path needs the global normaliser before the pass). */
ss_status ss_dist_fused_ce_forward_backward(
    float *loss, float *losses, float *dhidden, float *dweight, float *dbias,
    float dloss, const float *hidden, const float *weight, const float *bias,
    const int64_t *targets, int64_t T, int64_t H, int64_t V,
    const ss_fused_ce_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_fused_ce_forward_backward";
    SS_TRY(ss_comm_check(comm));
    size_t bytes = ss_dist_fused_ce_cache_size(T, H, V);
    void *cache = ss__malloc(bytes ? bytes : DP_HEADER_BYTES);
    ss_status st = cache ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for "
                                            "%zu bytes of cache", bytes);
    st = ss__dist_status(comm, fn, st);
    float l = 0.0f;
    if (st == SS_OK)
        st = ss_dist_fused_ce_forward(&l, losses, cache, hidden, weight, bias,
                                      targets, T, H, V, opts, comm);
    if (st == SS_OK)
        st = ss_dist_fused_ce_backward(dhidden, dweight, dbias, dloss, cache,
                                       hidden, weight, bias, targets, T, H, V,
                                       opts, comm);
    if (st == SS_OK) *loss = l;
    ss__free(cache);
    return st;
}

/* ---- reconstruction -------------------------------------------------------- */

static const char *const drec_names[] = {"kind", "reduction", "beta", "dloss"};

static void drec_vals(double *v, const ss_recon_opts *o, float dloss) {
    v[0] = (double)o->kind, v[1] = (double)o->reduction, v[2] = o->beta;
    v[3] = o->reduction == SS_REDUCE_NONE ? 0.0 : (double)dloss;
}

ss_status ss_dist_recon_forward(float *loss, float *losses, const float *pred,
                                const float *target, const uint8_t *mask,
                                int64_t n, const ss_recon_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_recon_forward";
    SS_TRY(ss_comm_check(comm));
    ss_recon_opts o = opts ? *opts : ss_recon_defaults(SS_RECON_MSE);
    ss_status st = ss__check_size(fn, "n", n, 1);
    float *rows = dp_scratch(losses != NULL, n, fn, &st), lr = 0.0f;
    if (st == SS_OK) /* NONE: losses required, checked there */
        st = ss_recon_forward(&lr, rows ? rows : losses, pred, target, mask, n,
                              &o);
    int64_t cnt = st == SS_OK ? dp_count(mask, n) : 0, ctot = 0;
    double vals[4];
    drec_vals(vals, &o, 0.0f);
    st = ss__dist_agree_total(comm, fn, st, vals, drec_names, 3, cnt, &ctot);
    double s = o.reduction == SS_REDUCE_MEAN ? (double)lr * (double)cnt : lr;
    if (st == SS_OK) st = dp_sum(comm, fn, &s, 1);
    if (st == SS_OK) {
        if (o.reduction == SS_REDUCE_MEAN) s = ctot > 0 ? s / (double)ctot : 0.0;
        if (loss) *loss = (float)s;
        if (losses) memcpy(losses, rows, sizeof(float) * (size_t)n);
    }
    ss__free(rows);
    return st;
}

ss_status ss_dist_recon_backward(float *dpred, float *dtarget, float dloss,
                                 const float *dlosses, const float *pred,
                                 const float *target, const uint8_t *mask,
                                 int64_t n, const ss_recon_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_recon_backward";
    SS_TRY(ss_comm_check(comm));
    ss_recon_opts o = opts ? *opts : ss_recon_defaults(SS_RECON_MSE);
    int none = o.reduction == SS_REDUCE_NONE;
    ss_status st = ss__check_ptr(fn, "dpred", dpred);
    if (st == SS_OK) st = ss__check_size(fn, "n", n, 1);
    if (st == SS_OK && !none) st = dp_check_dloss(fn, dloss);
    float *gp = dp_scratch(1, n, fn, &st);
    float *gt = dp_scratch(dtarget != NULL, n, fn, &st);
    if (st == SS_OK) /* unit upstream gradient (dlosses for NONE) */
        st = ss_recon_backward(gp, gt, 1.0f, dlosses, pred, target, mask, n,
                               &o);
    int64_t cnt = st == SS_OK ? dp_count(mask, n) : 0, ctot = 0;
    double vals[4];
    drec_vals(vals, &o, dloss);
    st = ss__dist_agree_total(comm, fn, st, vals, drec_names, 4, cnt, &ctot);
    if (st == SS_OK) {
        double a = (double)comm->size; /* NONE: world * dlosses */
        if (o.reduction == SS_REDUCE_SUM) a *= dloss;
        if (o.reduction == SS_REDUCE_MEAN)
            a = ctot > 0 ? a * dloss * (double)cnt / (double)ctot : 0.0;
        dp_axpy(dpred, gp, a, n);
        dp_axpy(dtarget, gt, a, n);
    }
    ss__free(gp), ss__free(gt);
    return st;
}

/* ---- MAE ------------------------------------------------------------------- */

static const char *const dmae_names[] = {"C", "Hi", "Wi", "p", "norm_pix",
                                         "dloss"};

/* Patches per image L (0 with the status set for bad sizes). */
static int64_t dmae_patches(const char *fn, int64_t B, int64_t C, int64_t Hi,
                            int64_t Wi, int64_t p, ss_status *st) {
    const char *names[5] = {"B", "C", "Hi", "Wi", "p"};
    int64_t v[5] = {B, C, Hi, Wi, p};
    for (int k = 0; k < 5 && *st == SS_OK; k++)
        *st = ss__check_size(fn, names[k], v[k], 1);
    if (*st == SS_OK && (Hi % p || Wi % p))
        *st = ss__fail(SS_ERR_SIZE, fn, "p = %lld must divide Hi = %lld and "
                       "Wi = %lld", (long long)p, (long long)Hi, (long long)Wi);
    return *st == SS_OK ? (Hi / p) * (Wi / p) : 0;
}

static void dmae_vals(double *v, int64_t C, int64_t Hi, int64_t Wi, int64_t p,
                      const ss_mae_opts *o, float dloss) {
    v[0] = (double)C, v[1] = (double)Hi, v[2] = (double)Wi, v[3] = (double)p;
    v[4] = o->norm_pix, v[5] = dloss;
}

ss_status ss_dist_mae_forward(float *loss, float *losses, const float *pred,
                              const float *imgs, const uint8_t *mask,
                              int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                              int64_t p, const ss_mae_opts *opts,
                              const ss_comm *comm) {
    static const char fn[] = "ss_dist_mae_forward";
    SS_TRY(ss_comm_check(comm));
    ss_mae_opts o = opts ? *opts : ss_mae_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    int64_t L = st == SS_OK ? dmae_patches(fn, B, C, Hi, Wi, p, &st) : 0;
    float *rows = dp_scratch(losses != NULL, B * L, fn, &st), lr = 0.0f;
    if (st == SS_OK)
        st = ss_mae_forward(&lr, rows, pred, imgs, mask, B, C, Hi, Wi, p, &o);
    int64_t m = st == SS_OK ? dp_count(mask, B * L) : 0, mtot = 0;
    double vals[6];
    dmae_vals(vals, C, Hi, Wi, p, &o, 0.0f);
    st = ss__dist_agree_total(comm, fn, st, vals, dmae_names, 5, m, &mtot);
    double s = (double)lr * (double)m;
    if (st == SS_OK) st = dp_sum(comm, fn, &s, 1);
    if (st == SS_OK) {
        *loss = mtot > 0 ? (float)(s / (double)mtot) : 0.0f;
        if (losses) memcpy(losses, rows, sizeof(float) * (size_t)(B * L));
    }
    ss__free(rows);
    return st;
}

ss_status ss_dist_mae_backward(float *dpred, float dloss, const float *pred,
                               const float *imgs, const uint8_t *mask,
                               int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                               int64_t p, const ss_mae_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_mae_backward";
    SS_TRY(ss_comm_check(comm));
    ss_mae_opts o = opts ? *opts : ss_mae_defaults();
    ss_status st = ss__check_ptr(fn, "dpred", dpred);
    if (st == SS_OK) st = dp_check_dloss(fn, dloss);
    int64_t L = st == SS_OK ? dmae_patches(fn, B, C, Hi, Wi, p, &st) : 0;
    float *g = dp_scratch(1, B * C * Hi * Wi, fn, &st);
    if (st == SS_OK)
        st = ss_mae_backward(g, 1.0f, pred, imgs, mask, B, C, Hi, Wi, p, &o);
    int64_t m = st == SS_OK ? dp_count(mask, B * L) : 0, mtot = 0;
    double vals[6];
    dmae_vals(vals, C, Hi, Wi, p, &o, dloss);
    st = ss__dist_agree_total(comm, fn, st, vals, dmae_names, 6, m, &mtot);
    if (st == SS_OK && mtot > 0)
        dp_axpy(dpred, g,
                (double)dloss * comm->size * (double)m / (double)mtot,
                B * C * Hi * Wi);
    ss__free(g);
    return st;
}
