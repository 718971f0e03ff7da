/*
 * dist_geometry.c - the helpers of dist_geometry.h, and the distributed
 * negative cosine (BYOL / SimSiam) and TiCo. Contract: selfsup_comm.h;
 * per-loss semantics: docs/DISTRIBUTED.md (dist-geometry section).
 *
 * negcos is per sample: each rank runs the single-process loss on its
 * rows; only the mean (one reduced double) and the gradient scale
 * (world_size N_local / Ntot) are distributed.
 * TiCo couples the batch only through P = a^T a / Ntot: the local (D, D)
 * products are all-reduced in double, every rank forms the same C and G
 * (tico.c's formulas) and updates its copy of the state identically;
 * backward is then local.
 */
#include "dist_geometry.h"
#include "kernels/gemm.h"

#include <string.h>

/* ---- shared helpers (dist_geometry.h) -------------------------------------- */

ss_status ss__dg_nomem(ss_status st, const char *fn, const void *p,
                       const char *what) {
    if (st != SS_OK || p) return st;
    return ss__fail(SS_ERR_NOMEM, fn, "no memory for %s", what);
}

ss_status ss__dg_agree(const ss_comm *c, const char *fn, ss_status st,
                       const double *vals, const char *const *names, int nv,
                       int64_t n, int64_t min_total, const char *min_what,
                       int64_t **counts, int64_t *off, int64_t *Ntot) {
    int64_t *cnt = ss__malloc((size_t)c->size * sizeof(int64_t)), one[1];
    st = ss__dg_nomem(st, fn, cnt, "the rank counts");
    *off = 0, *Ntot = 0;
    st = ss__dist_agree(c, fn, st, vals, names, nv, n, cnt ? cnt : one, off,
                        Ntot);
    st = ss__dist_min_total(fn, st, *Ntot, min_total,
                            min_what ? min_what : "rows");
    if (st == SS_OK && counts) *counts = cnt;
    else ss__free(cnt);
    return st;
}

void ss__dg_header_set(void *cache, uint64_t magic, int64_t V, int64_t N,
                       int64_t D, int64_t Ntot, const float *p) {
    dg_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.V = V, h.N = N, h.D = D, h.Ntot = Ntot;
    memcpy(h.p, p, sizeof h.p);
    memcpy(cache, &h, sizeof h);
}

ss_status ss__dg_header_check(const char *fn, const void *cache,
                              uint64_t magic, int64_t V, int64_t N, int64_t D,
                              const float *p) {
    dg_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || h.V != V || h.N != N || h.D != D ||
        memcmp(h.p, p, sizeof h.p) != 0)
        return ss__fail(SS_ERR_STATE, fn, "cache was not written by the "
                        "matching forward call (same sizes and options)");
    return SS_OK;
}

ss_status ss__dg_ntot_check(const char *fn, const void *cache, int64_t Ntot) {
    dg_header h;
    memcpy(&h, cache, sizeof h);
    return ss__dist_check_ntot(fn, h.Ntot, Ntot);
}

/* ---- negative cosine --------------------------------------------------------- */

#define DNC_MAGIC 0x3130434e47445353ull /* "SSDGNC01" */

static const char *const dnc_names[] = {"D", "eps", "dloss"};

size_t ss_dist_negcos_cache_size(int64_t N, int64_t D) {
    size_t s = ss_negcos_cache_size(N, D);
    return s ? DG_HEADER_BYTES + s : 0;
}

size_t ss_dist_negcos_sym_cache_size(int64_t N, int64_t D) {
    size_t s = ss_negcos_sym_cache_size(N, D);
    return s ? DG_HEADER_BYTES + s : 0;
}

/* x: p, z (nx = 2) or p1, p2, z1, z2 (nx = 4, the symmetric form). */
static ss_status dnc_forward(const char *fn, float *loss, float *losses,
                             void *cache, const float *const *x,
                             const char *const *names, int nx, int64_t N,
                             int64_t D, const ss_negcos_opts *opts,
                             const ss_comm *comm) {
    SS_TRY(ss_comm_check(comm));
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__negcos_check(fn, x, names, nx, N, D, &o);
    double vals[2] = {(double)D, o.eps};
    int64_t off, Ntot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dnc_names, 2, N, 1, NULL, NULL,
                        &off, &Ntot));
    float l = 0.0f;
    void *inner = ss__dg_payload(cache);
    st = nx == 2 ? ss_negcos_forward(&l, losses, inner, x[0], x[1], N, D, &o)
                 : ss_negcos_sym_forward(&l, losses, inner, x[0], x[1], x[2],
                                         x[3], N, D, &o);
    double sum = (double)l * (double)N; /* this rank's sum of loss terms */
    st = ss__dist_status(comm, fn, st); /* cannot fail: checked above */
    if (st == SS_OK) st = ss__dg_sum(comm, fn, &sum, 1);
    if (st != SS_OK) return st;
    float p[4] = {o.eps, 0.0f, 0.0f, 0.0f};
    ss__dg_header_set(cache, DNC_MAGIC, nx / 2, N, D, Ntot, p);
    *loss = (float)(sum / (double)Ntot);
    return SS_OK;
}

/* dp: the prediction gradients (1 or 2), dz: the targets' (may be NULL). */
static ss_status dnc_backward(const char *fn, float *const *dp,
                              float *const *dz, float dloss, const void *cache,
                              const float *const *x, const char *const *names,
                              int nx, int64_t N, int64_t D,
                              const ss_negcos_opts *opts,
                              const ss_comm *comm) {
    SS_TRY(ss_comm_check(comm));
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    ss_status st = ss__check_ptr(fn, nx == 2 ? "dp" : "dp1", dp[0]);
    if (st == SS_OK && nx == 4) st = ss__check_ptr(fn, "dp2", dp[1]);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = ss__negcos_check(fn, x, names, nx, N, D, &o);
    float p[4] = {o.eps, 0.0f, 0.0f, 0.0f};
    if (st == SS_OK)
        st = ss__dg_header_check(fn, cache, DNC_MAGIC, nx / 2, N, D, p);
    double vals[3] = {(double)D, o.eps, ss__dg_dloss_val(dloss)};
    int64_t off, Ntot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dnc_names, 3, N, 1, NULL, NULL,
                        &off, &Ntot));
    SS_TRY(ss__dist_status(comm, fn, ss__dg_ntot_check(fn, cache, Ntot)));
    /* the local loss is a mean over N: rescale to world_size / Ntot */
    float dl = (float)((double)dloss * comm->size * (double)N / (double)Ntot);
    const void *inner = ss__dg_payload(cache);
    return nx == 2 ? ss_negcos_backward(dp[0], dz[0], dl, inner, x[0], x[1],
                                        N, D, &o)
                   : ss_negcos_sym_backward(dp[0], dp[1], dz[0], dz[1], dl,
                                            inner, x[0], x[1], x[2], x[3], N,
                                            D, &o);
}

static const char *const dnc_pair[] = {"p", "z"};
static const char *const dnc_sym[] = {"p1", "p2", "z1", "z2"};

ss_status ss_dist_negcos_forward(float *loss, float *losses, void *cache,
                                 const float *p, const float *z, int64_t N,
                                 int64_t D, const ss_negcos_opts *opts,
                                 const ss_comm *comm) {
    const float *x[2] = {p, z};
    return dnc_forward("ss_dist_negcos_forward", loss, losses, cache, x,
                       dnc_pair, 2, N, D, opts, comm);
}

ss_status ss_dist_negcos_backward(float *dp, float *dz, float dloss,
                                  const void *cache, const float *p,
                                  const float *z, int64_t N, int64_t D,
                                  const ss_negcos_opts *opts,
                                  const ss_comm *comm) {
    const float *x[2] = {p, z};
    float *dps[1] = {dp}, *dzs[1] = {dz};
    return dnc_backward("ss_dist_negcos_backward", dps, dzs, dloss, cache, x,
                        dnc_pair, 2, N, D, opts, comm);
}

ss_status ss_dist_negcos_sym_forward(float *loss, float *losses, void *cache,
                                     const float *p1, const float *p2,
                                     const float *z1, const float *z2,
                                     int64_t N, int64_t D,
                                     const ss_negcos_opts *opts,
                                     const ss_comm *comm) {
    const float *x[4] = {p1, p2, z1, z2};
    return dnc_forward("ss_dist_negcos_sym_forward", loss, losses, cache, x,
                       dnc_sym, 4, N, D, opts, comm);
}

ss_status ss_dist_negcos_sym_backward(float *dp1, float *dp2, float *dz1,
                                      float *dz2, float dloss,
                                      const void *cache, const float *p1,
                                      const float *p2, const float *z1,
                                      const float *z2, int64_t N, int64_t D,
                                      const ss_negcos_opts *opts,
                                      const ss_comm *comm) {
    const float *x[4] = {p1, p2, z1, z2};
    float *dps[2] = {dp1, dp2}, *dzs[2] = {dz1, dz2};
    return dnc_backward("ss_dist_negcos_sym_backward", dps, dzs, dloss, cache,
                        x, dnc_sym, 4, N, D, opts, comm);
}

/* ---- TiCo ---------------------------------------------------------------------- */

#define DTC_MAGIC 0x3130434954445353ull /* "SSDTIC01" */
#define DTC_MAX_D ((int64_t)1 << 20)    /* tico.c's bound */

static const char *const dtc_names[] = {"D", "beta", "rho", "update",
                                        "state steps", "state checksum",
                                        "dloss"};

/* Cache after the header: G = beta sym(C_old) + 2 (1 - beta) P, (D, D). */
size_t ss_dist_tico_cache_size(int64_t D) {
    static const char fn[] = "ss_dist_tico_cache_size";
    if (ss__check_size(fn, "D", D, 1) != SS_OK) return 0;
    if (D > DTC_MAX_D) {
        ss__fail(SS_ERR_SIZE, fn, "D must be <= %lld, got %lld",
                 (long long)DTC_MAX_D, (long long)D);
        return 0;
    }
    return DG_HEADER_BYTES + sizeof(float) * (size_t)(D * D);
}

/* A position-weighted sum of C: equal states give equal sums (same
 * order), so ranks whose states drifted apart disagree. */
static double dtc_checksum(const float *C, int64_t n) {
    double s = 0.0;
    for (int64_t k = 0; k < n; k++) s += (double)C[k] * (double)(1 + k % 61);
    return s;
}

ss_status ss_dist_tico_forward(float *loss, float *losses, void *cache,
                               ss_tico_state *state, const float *za,
                               const float *zb, int64_t N, int64_t D,
                               const ss_tico_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_tico_forward";
    SS_TRY(ss_comm_check(comm));
    ss_tico_opts o = opts ? *opts : ss_tico_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = ss__check_ptr(fn, "state", state);
    if (st == SS_OK) st = ss__tico_check(fn, za, zb, N, 1, D, &o);
    if (st == SS_OK && ss_tico_state_dim(state) != D)
        st = ss__fail(SS_ERR_SIZE, fn, "state has dimension %lld, inputs "
                      "D=%lld", (long long)ss_tico_state_dim(state),
                      (long long)D);
    size_t dd = st == SS_OK ? (size_t)(D * D) : 0;
    float *C = st == SS_OK ? ss__malloc(sizeof(float) * 3 * dd) : NULL;
    st = ss__dg_nomem(st, fn, C, "three D x D matrices");
    if (st == SS_OK) st = ss_tico_state_read(state, C + dd); /* C_old */
    double vals[6] = {(double)D, o.beta, o.rho, o.update != 0,
                      st == SS_OK ? (double)ss_tico_state_steps(state) : 0.0,
                      st == SS_OK ? dtc_checksum(C + dd, D * D) : 0.0};
    int64_t off, Ntot;
    st = ss__dg_agree(comm, fn, st, vals, dtc_names, 6, N, 2, NULL, NULL,
                      &off, &Ntot);
    if (st != SS_OK) {
        ss__free(C);
        return st;
    }
    float *buf = NULL, *P = C + 2 * dd;
    float *aC = ss__malloc(sizeof(float) * (size_t)(N * D));
    double *red = ss__malloc(sizeof(double) * (dd + 1));
    st = ss__tico_normalize(fn, &buf, za, zb, N, D);
    if (st == SS_OK && (!aC || !red))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for N D floats and D^2 "
                      "doubles (N=%lld, D=%lld)", (long long)N, (long long)D);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) { /* P = sum_r a_r^T a_r / Ntot, reduced in double */
        ss__sgemm_threaded(1, 0, D, D, N, 1.0f, buf, D, buf, D, 0.0f, P, D);
        for (size_t k = 0; k < dd; k++) red[k] = P[k];
        st = ss__dg_sum(comm, fn, red, (int64_t)dd);
    }
    if (st == SS_OK) { /* tico.c's steps on the global P */
        for (size_t k = 0; k < dd; k++) P[k] = (float)(red[k] / (double)Ntot);
        ss__tico_combine(C, ss__dg_payload(cache), P, C + dd, D, o.beta);
        ss__sgemm_threaded(0, 0, N, D, D, 1.0f, buf, D, C, D, 0.0f, aC, D);
        red[0] = ss__tico_losses(losses, buf, buf + N * D, aC, N, D, o.rho);
        st = ss__dg_sum(comm, fn, red, 1);
    }
    if (st == SS_OK) {
        float p[4] = {o.beta, o.rho, 0.0f, 0.0f};
        ss__dg_header_set(cache, DTC_MAGIC, 1, N, D, Ntot, p);
        if (o.update) ss__tico_state_commit(state, C);
        *loss = (float)(red[0] / (double)Ntot);
    }
    ss__free(C), ss__free(buf), ss__free(aC), ss__free(red);
    return st;
}

ss_status ss_dist_tico_backward(float *dza, float *dzb, float dloss,
                                const void *cache, const float *za,
                                const float *zb, int64_t N, int64_t D,
                                const ss_tico_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_tico_backward";
    SS_TRY(ss_comm_check(comm));
    ss_tico_opts o = opts ? *opts : ss_tico_defaults();
    ss_status st = ss__check_ptr(fn, "dza", dza);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = ss__tico_check(fn, za, zb, N, 1, D, &o);
    float p[4] = {o.beta, o.rho, 0.0f, 0.0f};
    if (st == SS_OK) st = ss__dg_header_check(fn, cache, DTC_MAGIC, 1, N, D, p);
    /* the state is not read: agree on options and dloss only */
    double vals[7] = {(double)D, o.beta, o.rho, 0, 0, 0,
                      ss__dg_dloss_val(dloss)};
    int64_t off, Ntot;
    SS_TRY(ss__dg_agree(comm, fn, st, vals, dtc_names, 7, N, 2, NULL, NULL,
                        &off, &Ntot));
    st = ss__dg_ntot_check(fn, cache, Ntot);
    float *buf = NULL, *g = ss__malloc(sizeof(float) * 2 * (size_t)(N * D));
    if (st == SS_OK) st = ss__tico_normalize(fn, &buf, za, zb, N, D);
    st = ss__dist_status(comm, fn, ss__dg_nomem(st, fn, g, "2 N D floats"));
    if (st == SS_OK) /* tico.c's gradient with 1/N -> world_size / Ntot */
        ss__tico_grad(dza, dzb, buf, g, ss__dg_payload(cache), za, zb, N, D,
                      o.rho, (float)((double)dloss * comm->size / (double)Ntot));
    ss__free(buf), ss__free(g);
    return st;
}
