/* model.c - the small CNN encoder and its heads over the training engine. */
#include "model.h"

#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *FN = "sst_model_init";

static ss_status add(sst_model *m, const char *name, int64_t n, unsigned fl,
                     int64_t *off) {
    return sst_params_add(&m->P, name, n, fl, off);
}

static ss_status block_reg(sst_model *m, sst_block *k, int i, int64_t Cin,
                           int64_t H, int64_t Cout, int gap) {
    char nm[32];
    k->Cin = Cin, k->H = H, k->Cout = Cout, k->gap = gap;
    k->OH = H, k->S = H * H, k->PS = gap ? 1 : H / 2;
    snprintf(nm, sizeof nm, "conv%d.w", i + 1);
    SS_TRY(add(m, nm, Cout * Cin * 9, 0, &k->w));
    snprintf(nm, sizeof nm, "bn%d.g", i + 1);
    SS_TRY(add(m, nm, Cout, SST_P_NO_DECAY, &k->g));
    snprintf(nm, sizeof nm, "bn%d.b", i + 1);
    SS_TRY(add(m, nm, Cout, SST_P_NO_DECAY, &k->b));
    snprintf(nm, sizeof nm, "bn%d.rm", i + 1);
    SS_TRY(add(m, nm, Cout, SST_P_FROZEN, &k->rm));
    snprintf(nm, sizeof nm, "bn%d.rv", i + 1);
    return add(m, nm, Cout, SST_P_FROZEN, &k->rv);
}

static ss_status mlp_reg(sst_model *m, sst_mlp *h, const char *pre,
                         int64_t din, int64_t dh, int64_t dout) {
    char nm[48];
    h->din = din, h->dh = dh, h->dout = dout;
#define REG(suf, n, fl, off)                                  \
    snprintf(nm, sizeof nm, "%s.%s", pre, suf);               \
    SS_TRY(add(m, nm, n, fl, off))
    REG("l1.w", dh * din, 0, &h->w1);
    REG("l1.b", dh, SST_P_NO_DECAY, &h->b1);
    REG("bn.g", dh, SST_P_NO_DECAY, &h->g);
    REG("bn.b", dh, SST_P_NO_DECAY, &h->be);
    REG("bn.rm", dh, SST_P_FROZEN, &h->rm);
    REG("bn.rv", dh, SST_P_FROZEN, &h->rv);
    REG("l2.w", dout * dh, 0, &h->w2);
    REG("l2.b", dout, SST_P_NO_DECAY, &h->b2);
#undef REG
    return SS_OK;
}

static float *fbuf(int64_t n) { return ss__calloc((size_t)n * sizeof(float)); }

static ss_status block_alloc(sst_block *k, int64_t cap) {
    k->saved = fbuf(2 * k->Cout);
    k->c = fbuf(cap * k->Cout * k->S);
    k->a = fbuf(cap * k->Cout * k->S);
    k->p = fbuf(cap * k->Cout * k->PS * k->PS);
    if (!k->saved || !k->c || !k->a || !k->p)
        return ss__fail(SS_ERR_NOMEM, FN, "out of memory (activations)");
    return SS_OK;
}

static ss_status mlp_alloc(sst_mlp *h, int64_t cap) {
    h->h = fbuf(cap * h->dh), h->hn = fbuf(cap * h->dh);
    h->saved = fbuf(2 * h->dh), h->y = fbuf(cap * h->dout);
    h->gh = fbuf(cap * h->dh);
    if (!h->h || !h->hn || !h->saved || !h->y || !h->gh)
        return ss__fail(SS_ERR_NOMEM, FN, "out of memory (head activations)");
    return SS_OK;
}

static void mlp_free(sst_mlp *h) {
    ss__free(h->h), ss__free(h->hn), ss__free(h->saved), ss__free(h->y);
    ss__free(h->gh);
}

static void block_free(sst_block *k) {
    ss__free(k->saved), ss__free(k->c), ss__free(k->a), ss__free(k->p);
}

static void init_bn(sst_model *m, int64_t g, int64_t rv, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        m->P.data[g + i] = 1.0f, m->P.data[rv + i] = 1.0f;
}

static void init_mlp(sst_model *m, sst_mlp *h, ss_rng *rng) {
    float *d = m->P.data;
    sst_init_torch_default(d + h->w1, h->dh * h->din, h->din, rng);
    sst_init_torch_default(d + h->b1, h->dh, h->din, rng);
    init_bn(m, h->g, h->rv, h->dh);
    sst_init_torch_default(d + h->w2, h->dout * h->dh, h->dh, rng);
    sst_init_torch_default(d + h->b2, h->dout, h->dh, rng);
}

ss_status sst_model_init(sst_model *m, const sst_model_cfg *cfg, uint64_t seed) {
    SS_TRY(ss__check_ptr(FN, "m", m));
    SS_TRY(ss__check_ptr(FN, "cfg", cfg));
    memset(m, 0, sizeof *m);
    if (cfg->cap < 2 || cfg->proj_hidden < 1 || cfg->proj_out < 1)
        return ss__fail(SS_ERR_SIZE, FN,
                        "cap must be >= 2 and head sizes >= 1, got cap %lld "
                        "hidden %lld out %lld", (long long)cfg->cap,
                        (long long)cfg->proj_hidden, (long long)cfg->proj_out);
    m->cfg = *cfg;
    sst_params_init(&m->P);
    ss_status st;
    if ((st = block_reg(m, &m->blk[0], 0, 1, 28, 32, 0)) ||
        (st = block_reg(m, &m->blk[1], 1, 32, 14, 64, 0)) ||
        (st = block_reg(m, &m->blk[2], 2, 64, 7, SST_FEAT, 1)) ||
        (st = mlp_reg(m, &m->proj, "proj", SST_FEAT, cfg->proj_hidden,
                      cfg->proj_out)))
        goto fail;
    if (cfg->predictor &&
        (st = mlp_reg(m, &m->pred, "pred", cfg->proj_out, cfg->proj_hidden,
                      cfg->proj_out)))
        goto fail;
    if (cfg->decoder &&
        ((st = add(m, "dec.w", 784 * SST_FEAT, 0, &m->dec_w)) ||
         (st = add(m, "dec.b", 784, SST_P_NO_DECAY, &m->dec_b))))
        goto fail;
    if ((st = sst_params_alloc(&m->P))) goto fail;
    int64_t cap = cfg->cap;
    for (int i = 0; i < 3; i++)
        if ((st = block_alloc(&m->blk[i], cap))) goto fail;
    if ((st = mlp_alloc(&m->proj, cap))) goto fail;
    if (cfg->predictor && (st = mlp_alloc(&m->pred, cap))) goto fail;
    m->dc = fbuf(cap * 32 * 784);
    m->dp1 = fbuf(cap * 32 * 196);
    m->dp2 = fbuf(cap * 64 * 49);
    m->dfeat = fbuf(cap * SST_FEAT);
    if (cfg->decoder) m->dec_y = fbuf(cap * 784);
    if (!m->dc || !m->dp1 || !m->dp2 || !m->dfeat ||
        (cfg->decoder && !m->dec_y)) {
        st = ss__fail(SS_ERR_NOMEM, FN, "out of memory (scratch)");
        goto fail;
    }
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    for (int i = 0; i < 3; i++) {
        sst_block *k = &m->blk[i];
        sst_init_torch_default(m->P.data + k->w, k->Cout * k->Cin * 9,
                               k->Cin * 9, &rng);
        init_bn(m, k->g, k->rv, k->Cout);
    }
    init_mlp(m, &m->proj, &rng);
    if (cfg->predictor) init_mlp(m, &m->pred, &rng);
    if (cfg->decoder) {
        sst_init_torch_default(m->P.data + m->dec_w, 784 * SST_FEAT, SST_FEAT,
                               &rng);
        sst_init_torch_default(m->P.data + m->dec_b, 784, SST_FEAT, &rng);
    }
    return SS_OK;
fail:
    sst_model_free(m);
    return st;
}

void sst_model_free(sst_model *m) {
    if (!m) return;
    for (int i = 0; i < 3; i++) block_free(&m->blk[i]);
    mlp_free(&m->proj), mlp_free(&m->pred);
    ss__free(m->dc), ss__free(m->dp1), ss__free(m->dp2), ss__free(m->dfeat);
    ss__free(m->dec_y), ss__free(m->bn_work);
    sst_params_free(&m->P);
    memset(m, 0, sizeof *m);
}

ss_status sst_model_set_comm(sst_model *m, const ss_comm *comm) {
    ss__free(m->bn_work);
    m->bn_work = NULL, m->comm = NULL;
    if (!comm || comm->size == 1) return SS_OK;
    int64_t C = m->cfg.proj_hidden > SST_FEAT ? m->cfg.proj_hidden : SST_FEAT;
    m->bn_work = ss__malloc((size_t)(2 * C + 1 + comm->size) * sizeof(double));
    if (!m->bn_work)
        return ss__fail(SS_ERR_NOMEM, "sst_model_set_comm", "out of memory");
    m->comm = comm;
    return SS_OK;
}

/* BatchNorm of (N, C, S): synchronised over m->comm in train mode, else
 * local. st: the status so far; a failed rank still joins the collective. */
static ss_status bn_forward(sst_model *m, ss_status st, float *y, float *saved,
                            const float *x, int64_t g, int64_t b, int64_t rm,
                            int64_t rv, int64_t N, int64_t C, int64_t S,
                            int train) {
    float *d = m->P.data;
    if (m->comm && train)
        return sst_batchnorm_forward_sync(y, saved, x, d + g, d + b, d + rm,
                                          d + rv, N, C, S, SST_BN_EPS,
                                          SST_BN_MOMENTUM, m->bn_work, m->comm,
                                          st);
    SS_TRY(st);
    return sst_batchnorm_forward(y, saved, x, d + g, d + b, d + rm, d + rv, N,
                                 C, S, SST_BN_EPS, SST_BN_MOMENTUM, train);
}

static ss_status bn_backward(sst_model *m, ss_status st, float *dx,
                             const float *dy, const float *saved,
                             const float *x, int64_t g, int64_t b, int64_t N,
                             int64_t C, int64_t S) {
    float *d = m->P.data, *dg = m->P.grad;
    if (m->comm && m->train)
        return sst_batchnorm_backward_sync(dx, dg + g, dg + b, dy, saved, x,
                                           d + g, N, C, S, m->bn_work, m->comm,
                                           st);
    SS_TRY(st);
    return sst_batchnorm_backward(dx, dg + g, dg + b, dy, saved, x, d + g, N,
                                  C, S, m->train);
}

static ss_status block_forward(sst_model *m, sst_block *k, const float *x,
                               int64_t N, int train) {
    float *d = m->P.data;
    sst_conv2d_dims cd = {N, k->Cin, k->H, k->H, k->Cout, 3, 3, 1, 1};
    int64_t P = N * k->Cout;
    ss_status st = sst_conv2d_forward(k->c, x, d + k->w, NULL, &cd);
    SS_TRY(bn_forward(m, st, k->a, k->saved, k->c, k->g, k->b, k->rm, k->rv,
                      N, k->Cout, k->S, train));
    SS_TRY(sst_relu_forward(k->a, k->a, P * k->S));
    if (k->gap) return sst_gap_forward(k->p, k->a, P, k->S);
    return sst_maxpool2d_forward(k->p, k->a, P, k->OH, k->OH, 2, 2);
}

/* dp: gradient of the block output (N, Cout, PS^2); dx or NULL. st: the
 * status of the block above (carried into the synchronised BN). */
static ss_status block_backward(sst_model *m, sst_block *k, ss_status st,
                                float *dx, const float *dp, const float *x,
                                int64_t N) {
    float *d = m->P.data, *g = m->P.grad, *dc = m->dc;
    sst_conv2d_dims cd = {N, k->Cin, k->H, k->H, k->Cout, 3, 3, 1, 1};
    int64_t P = N * k->Cout;
    if (!st && k->gap) st = sst_gap_backward(dc, dp, P, k->S);
    else if (!st)
        st = sst_maxpool2d_backward(dc, dp, k->a, P, k->OH, k->OH, 2, 2);
    if (!st) st = sst_relu_backward(dc, dc, k->a, P * k->S);
    SS_TRY(bn_backward(m, st, dc, dc, k->saved, k->c, k->g, k->b, N, k->Cout,
                       k->S));
    return sst_conv2d_backward(dx, g + k->w, NULL, dc, x, d + k->w, &cd);
}

ss_status sst_model_encode(sst_model *m, const float *x, int64_t N, int train) {
    /* synchronised BN needs 2 rows over all ranks, not on each */
    int lo = train && !m->comm ? 2 : 1;
    if (N < lo || N > m->cfg.cap)
        return ss__fail(SS_ERR_SIZE, "sst_model_encode",
                        "batch N must be in [%d, %lld], got %lld", lo,
                        (long long)m->cfg.cap, (long long)N);
    m->x = x, m->n = N, m->train = train;
    SS_TRY(block_forward(m, &m->blk[0], x, N, train));
    SS_TRY(block_forward(m, &m->blk[1], m->blk[0].p, N, train));
    return block_forward(m, &m->blk[2], m->blk[1].p, N, train);
}

ss_status sst_model_encode_backward(sst_model *m, float *dfeat) {
    int64_t N = m->n;
    ss_status st = block_backward(m, &m->blk[2], SS_OK, m->dp2, dfeat,
                                  m->blk[1].p, N);
    st = block_backward(m, &m->blk[1], st, m->dp1, m->dp2, m->blk[0].p, N);
    return block_backward(m, &m->blk[0], st, NULL, m->dp1, m->x, N);
}

ss_status sst_mlp_forward(sst_model *m, sst_mlp *h, const float *in, int64_t N,
                          int train) {
    float *d = m->P.data;
    ss_status st = sst_linear_forward(h->h, in, d + h->w1, d + h->b1, N, h->din,
                                      h->dh);
    SS_TRY(bn_forward(m, st, h->hn, h->saved, h->h, h->g, h->be, h->rm, h->rv,
                      N, h->dh, 1, train));
    SS_TRY(sst_relu_forward(h->hn, h->hn, N * h->dh));
    return sst_linear_forward(h->y, h->hn, d + h->w2, d + h->b2, N, h->dh,
                              h->dout);
}

ss_status sst_mlp_backward(sst_model *m, sst_mlp *h, float *dx, float *dy,
                           const float *in, int64_t N) {
    float *d = m->P.data, *g = m->P.grad;
    ss_status st = sst_linear_backward(h->gh, g + h->w2, g + h->b2, dy, h->hn,
                                       d + h->w2, N, h->dh, h->dout);
    if (!st) st = sst_relu_backward(h->gh, h->gh, h->hn, N * h->dh);
    SS_TRY(bn_backward(m, st, h->gh, h->gh, h->saved, h->h, h->g, h->be, N,
                       h->dh, 1));
    return sst_linear_backward(dx, g + h->w1, g + h->b1, h->gh, in, d + h->w1,
                               N, h->din, h->dh);
}

ss_status sst_decoder_forward(sst_model *m, const float *feat, int64_t N) {
    float *y = m->dec_y;
    SS_TRY(sst_linear_forward(y, feat, m->P.data + m->dec_w,
                              m->P.data + m->dec_b, N, SST_FEAT, 784));
    for (int64_t i = 0; i < N * 784; i++) y[i] = 1.0f / (1.0f + expf(-y[i]));
    return SS_OK;
}

ss_status sst_decoder_backward(sst_model *m, float *dfeat, float *dy,
                               const float *feat, int64_t N) {
    const float *y = m->dec_y;
    for (int64_t i = 0; i < N * 784; i++) dy[i] *= y[i] * (1.0f - y[i]);
    float *tmp = m->dp2; /* (cap, 64 * 49) >= (cap, 128) floats */
    SS_TRY(sst_linear_backward(tmp, m->P.grad + m->dec_w, m->P.grad + m->dec_b,
                               dy, feat, m->P.data + m->dec_w, N, SST_FEAT,
                               784));
    for (int64_t i = 0; i < N * SST_FEAT; i++) dfeat[i] += tmp[i];
    return SS_OK;
}

ss_status sst_model_features(sst_model *m, float *out, const float *x,
                             int64_t n) {
    for (int64_t i = 0; i < n; i += m->cfg.cap) {
        int64_t b = n - i < m->cfg.cap ? n - i : m->cfg.cap;
        SS_TRY(sst_model_encode(m, x + i * 784, b, 0));
        memcpy(out + i * SST_FEAT, sst_model_feat(m),
               (size_t)(b * SST_FEAT) * sizeof(float));
    }
    return SS_OK;
}
