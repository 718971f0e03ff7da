/* methods.c - one training step of each self-supervised method. */
#include "methods.h"

#include "internal.h"

#include <string.h>

static const sst_method_info INFO[SST_NMETHODS] = {
    /* name    aug     pred dec tgt views H    Z    opt     lr    wd   temp ema */
    {"simclr", "simclr", 0, 0, 0, 2, 256, 128, "adamw", 2e-3, 1e-4, 0.2, 0},
    {"byol", "byol", 1, 0, 1, 2, 256, 128, "adamw", 2e-3, 1e-4, 0, 0.99},
    {"barlow", "simclr", 0, 0, 0, 2, 512, 512, "adamw", 2e-3, 1e-4, 0, 0},
    {"vicreg", "simclr", 0, 0, 0, 2, 512, 512, "adamw", 2e-3, 1e-4, 0, 0},
    {"dino", "simclr", 0, 0, 1, 2, 256, 256, "adamw", 1e-3, 1e-4, 0, 0.996},
    {"mae", "mae", 0, 1, 0, 1, 256, 128, "adamw", 2e-3, 1e-4, 0, 0},
    {"combo", "simclr", 0, 1, 0, 2, 256, 128, "adamw", 2e-3, 1e-4, 0.2, 0},
};

const sst_method_info *sst_method_info_of(sst_method_id id) {
    return (id >= 0 && id < SST_NMETHODS) ? &INFO[id] : NULL;
}

int sst_method_find(const char *name) {
    for (int i = 0; i < SST_NMETHODS; i++)
        if (name && !strcmp(name, INFO[i].name)) return i;
    return -1;
}

const char *sst_method_names(void) {
    return "simclr, byol, barlow, vicreg, dino, mae, combo";
}

static const char *FN = "sst_method_ctx_init";

/* Cache bytes of the method's loss: one process, or distributed. */
static size_t cache_size(sst_method_id id, int64_t B, int64_t Z, int dist) {
    switch (id) {
    case SST_SIMCLR:
    case SST_COMBO:
        return dist ? ss_dist_ntxent_cache_size(2, B, Z)
                    : ss_ntxent_cache_size(2, B, Z);
    case SST_BYOL: return ss_negcos_sym_cache_size(B, Z);
    case SST_BARLOW:
        return dist ? ss_dist_barlow_cache_size(Z)
                    : ss_barlow_cache_size(B, Z, NULL);
    case SST_VICREG:
        return dist ? ss_dist_vicreg_cache_size(Z)
                    : ss_vicreg_cache_size(B, Z, NULL);
    case SST_DINO: return ss_dino_cache_size(2, 2, B, Z);
    default: return 1;
    }
}

ss_status sst_method_ctx_init(sst_method_ctx *c, sst_method_id id, int64_t B,
                              int64_t Z, float temperature, float recon_weight,
                              const ss_comm *comm) {
    memset(c, 0, sizeof *c);
    c->id = id, c->Z = Z;
    c->temperature = temperature, c->recon_weight = recon_weight;
    c->comm = comm && comm->size > 1 ? comm : NULL;
    c->Bglob = B, c->first = 0, c->B = B;
    if (c->comm) sst_dist_slice(B, comm->rank, comm->size, &c->first, &c->B);
    if (c->B < 1)
        return ss__fail(SS_ERR_SIZE, FN, "batch %lld leaves rank %d without "
                        "a sample", (long long)B, c->comm ? c->comm->rank : 0);
    const int64_t Bg = B; /* the masks are drawn for the global batch */
    B = c->B;
    size_t cb = cache_size(id, B, Z, c->comm != NULL);
    if (cb == 0) return SS_ERR_SIZE; /* message set by the size function */
    c->cache_bytes = cb;
    c->cache = ss__malloc(cb);
    c->dz = ss__calloc((size_t)(2 * B * Z) * sizeof(float));
    /* dz2: (2B, Z) for byol's predictor, (2B, 128) for combo's decoder */
    int64_t w2 = Z > SST_FEAT ? Z : SST_FEAT;
    c->dz2 = ss__calloc((size_t)(2 * B * w2) * sizeof(float));
    c->dpix = ss__calloc((size_t)(B * 784) * sizeof(float));
    c->xm = ss__calloc((size_t)(B * 784) * sizeof(float));
    c->mask = ss__calloc((size_t)(Bg * 16));
    if (c->comm) { /* global means (2) or dino's centre sums (Z + 1) */
        c->red = ss__calloc((size_t)(Z + 2 + comm->size) * sizeof(double));
        c->cnew = ss__calloc((size_t)Z * sizeof(float));
    }
    ss_status st = SS_OK;
    if (id == SST_DINO) st = ss_center_create(&c->center, Z);
    if (!c->cache || !c->dz || !c->dz2 || !c->dpix || !c->xm || !c->mask ||
        (c->comm && (!c->red || !c->cnew)) || st) {
        sst_method_ctx_free(c);
        return st ? st : ss__fail(SS_ERR_NOMEM, FN, "out of memory");
    }
    return SS_OK;
}

void sst_method_ctx_free(sst_method_ctx *c) {
    if (!c) return;
    ss__free(c->cache), ss__free(c->dz), ss__free(c->dz2), ss__free(c->dpix);
    ss__free(c->xm), ss__free(c->mask), ss__free(c->red), ss__free(c->cnew);
    ss_center_free(c->center);
    memset(c, 0, sizeof *c);
}

static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof *p); }

/* Encoder + projector on the 2B views; z in m->proj.y. */
static ss_status online_forward(sst_model *m, const float *x, int64_t n) {
    SS_TRY(sst_model_encode(m, x, n, 1));
    return sst_mlp_forward(m, &m->proj, sst_model_feat(m), n, 1);
}

/* dz (n, Z) -> encoder gradients. */
static ss_status online_backward(sst_model *m, float *dz, int64_t n,
                                 const float *dfeat_extra) {
    SS_TRY(sst_mlp_backward(m, &m->proj, m->dfeat, dz, sst_model_feat(m), n));
    if (dfeat_extra)
        for (int64_t i = 0; i < n * SST_FEAT; i++) m->dfeat[i] += dfeat_extra[i];
    return sst_model_encode_backward(m, m->dfeat);
}

/* A mean over the local B samples (or over a fixed number of values per
 * sample) -> the mean over the global batch (all-reduce of B loss and B),
 * and the dloss scale of the local backward in the mean convention:
 * world_size B / Btot. st: the local status (agreed here). */
static ss_status global_mean(sst_method_ctx *c, float *loss, float *dloss,
                             ss_status st) {
    c->red[0] = st ? 0.0 : (double)*loss * (double)c->B;
    c->red[1] = (double)c->B;
    SS_TRY(sst_dist_sum_agree(c->comm, "sst_method_step", st, c->red, 2));
    *loss = (float)(c->red[0] / c->red[1]);
    *dloss = (float)((double)c->comm->size * (double)c->B / c->red[1]);
    return SS_OK;
}

static ss_status step_simclr(sst_method_ctx *c, sst_model *m, const float *x,
                             const float *clean, float *loss) {
    int64_t B = c->B, Z = c->Z;
    ss_ntxent_opts o = ss_ntxent_defaults();
    o.temperature = c->temperature;
    SS_TRY(online_forward(m, x, 2 * B));
    const float *z = m->proj.y;
    zero(c->dz, 2 * B * Z);
    if (c->comm) {
        SS_TRY(ss_dist_ntxent_forward(loss, NULL, c->cache, z, 2, B, Z, &o,
                                      c->comm));
        SS_TRY(ss_dist_ntxent_backward(c->dz, 1.0f, c->cache, z, 2, B, Z, &o,
                                       c->comm));
    } else {
        SS_TRY(ss_ntxent_forward(loss, NULL, c->cache, z, 2, B, Z, &o));
        SS_TRY(ss_ntxent_backward(c->dz, 1.0f, c->cache, z, 2, B, Z, &o));
    }
    c->terms[0] = *loss;
    if (c->id != SST_COMBO) return online_backward(m, c->dz, 2 * B, NULL);
    /* combo: decoder reconstructs the clean image from view 1's features */
    float rl, rscale = 1.0f; /* data-parallel: the mean convention's scale */
    ss_recon_opts ro = ss_recon_defaults(SS_RECON_MSE);
    SS_TRY(sst_decoder_forward(m, sst_model_feat(m), B));
    ss_status st = ss_recon_forward(&rl, NULL, m->dec_y, clean, NULL, B * 784,
                                    &ro);
    SS_TRY(c->comm ? global_mean(c, &rl, &rscale, st) : st);
    zero(c->dpix, B * 784);
    SS_TRY(ss_recon_backward(c->dpix, NULL, c->recon_weight * rscale, NULL,
                             m->dec_y, clean, NULL, B * 784, &ro));
    float *dfe = c->dz2; /* (2B, 128) */
    zero(dfe, 2 * B * SST_FEAT);
    SS_TRY(sst_decoder_backward(m, dfe, c->dpix, sst_model_feat(m), B));
    c->terms[1] = rl;
    *loss += c->recon_weight * rl;
    return online_backward(m, c->dz, 2 * B, dfe);
}

static ss_status step_pair(sst_method_ctx *c, sst_model *m, const float *x,
                           float *loss) {
    int64_t B = c->B, Z = c->Z;
    SS_TRY(online_forward(m, x, 2 * B));
    const float *a = m->proj.y, *b = a + B * Z;
    zero(c->dz, 2 * B * Z);
    if (c->comm && c->id == SST_BARLOW) {
        SS_TRY(ss_dist_barlow_forward(loss, NULL, c->cache, a, b, B, Z, NULL,
                                      c->comm));
        SS_TRY(ss_dist_barlow_backward(c->dz, c->dz + B * Z, 1.0f, c->cache,
                                       a, b, B, Z, NULL, c->comm));
    } else if (c->comm) {
        SS_TRY(ss_dist_vicreg_forward(loss, NULL, c->cache, a, b, B, Z, NULL,
                                      c->comm));
        SS_TRY(ss_dist_vicreg_backward(c->dz, c->dz + B * Z, 1.0f, c->cache,
                                       a, b, B, Z, NULL, c->comm));
    } else if (c->id == SST_BARLOW) {
        SS_TRY(ss_barlow_forward(loss, NULL, c->cache, a, b, B, Z, NULL));
        SS_TRY(ss_barlow_backward(c->dz, c->dz + B * Z, 1.0f, c->cache, a, b,
                                  B, Z, NULL));
    } else {
        SS_TRY(ss_vicreg_forward(loss, NULL, c->cache, a, b, B, Z, NULL));
        SS_TRY(ss_vicreg_backward(c->dz, c->dz + B * Z, 1.0f, c->cache, a, b,
                                  B, Z, NULL));
    }
    return online_backward(m, c->dz, 2 * B, NULL);
}

static ss_status target_forward(sst_model *t, const float *x, int64_t n) {
    SS_TRY(sst_model_encode(t, x, n, 1));
    return sst_mlp_forward(t, &t->proj, sst_model_feat(t), n, 1);
}

static ss_status step_byol(sst_method_ctx *c, sst_model *m, sst_model *t,
                           const float *x, float *loss) {
    int64_t B = c->B, Z = c->Z;
    SS_TRY(target_forward(t, x, 2 * B));
    const float *zt = t->proj.y;
    SS_TRY(online_forward(m, x, 2 * B));
    SS_TRY(sst_mlp_forward(m, &m->pred, m->proj.y, 2 * B, 1));
    const float *p = m->pred.y;
    /* p(view 1) predicts target(view 2) and vice versa */
    ss_status st = ss_negcos_sym_forward(loss, NULL, c->cache, p, p + B * Z,
                                         zt + B * Z, zt, B, Z, NULL);
    float dloss = 1.0f;
    SS_TRY(c->comm ? global_mean(c, loss, &dloss, st) : st);
    zero(c->dz, 2 * B * Z);
    SS_TRY(ss_negcos_sym_backward(c->dz, c->dz + B * Z, NULL, NULL, dloss,
                                  c->cache, p, p + B * Z, zt + B * Z, zt, B, Z,
                                  NULL));
    SS_TRY(sst_mlp_backward(m, &m->pred, c->dz2, c->dz, m->proj.y, 2 * B));
    return online_backward(m, c->dz2, 2 * B, NULL);
}

/* ss_center_accumulate + ss_center_update over the teacher rows of every
 * rank: one all-reduce of the column sums and the row count. */
static ss_status global_center_update(sst_method_ctx *c, const float *te,
                                      int64_t rows, float momentum) {
    int64_t Z = c->Z;
    for (int64_t k = 0; k < Z; k++) {
        double s = 0.0;
        for (int64_t r = 0; r < rows; r++) s += te[r * Z + k];
        c->red[k] = s;
    }
    c->red[Z] = (double)rows;
    SS_TRY(sst_dist_sum_agree(c->comm, "sst_method_step", SS_OK, c->red,
                              Z + 1));
    const float *old = ss_center_data(c->center);
    double mo = momentum, inv = 1.0 / c->red[Z];
    for (int64_t k = 0; k < Z; k++)
        c->cnew[k] = (float)(mo * old[k] + (1.0 - mo) * (c->red[k] * inv));
    return ss_center_set(c->center, c->cnew);
}

static ss_status step_dino(sst_method_ctx *c, sst_model *m, sst_model *t,
                           const float *x, float *loss) {
    int64_t B = c->B, Z = c->Z;
    ss_dino_opts o = ss_dino_defaults();
    o.warmup_teacher_temp_epochs = 0;
    SS_TRY(target_forward(t, x, 2 * B));
    const float *te = t->proj.y;
    SS_TRY(online_forward(m, x, 2 * B));
    const float *s = m->proj.y;
    float tt = o.teacher_temp, dloss = 1.0f;
    /* the loss is a per-sample mean: data-parallel takes its global mean */
    ss_status st = ss_dino_forward(loss, NULL, c->cache, te, s, c->center, tt,
                                   2, 2, B, Z, &o);
    SS_TRY(c->comm ? global_mean(c, loss, &dloss, st) : st);
    zero(c->dz, 2 * B * Z);
    SS_TRY(ss_dino_backward(c->dz, dloss, c->cache, te, s, c->center, tt, 2, 2,
                            B, Z, &o));
    if (c->comm) {
        SS_TRY(global_center_update(c, te, 2 * B, o.center_momentum));
    } else {
        SS_TRY(ss_center_accumulate(c->center, te, 2 * B));
        SS_TRY(ss_center_update(c->center, o.center_momentum));
    }
    return online_backward(m, c->dz, 2 * B, NULL);
}

static ss_status step_mae(sst_method_ctx *c, sst_model *m, const float *x,
                          ss_rng *rng, float *loss) {
    int64_t B = c->B;
    /* every rank draws the masks of the whole global batch from the one
     * sequential rng (cheap) and keeps its rows: the masks of one process */
    SS_TRY(ss_mae_random_mask(c->mask, NULL, c->Bglob, 16, 0.75, rng));
    const uint8_t *mask = c->mask + c->first * 16;
    memcpy(c->xm, x, (size_t)(B * 784) * sizeof(float));
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < 16; l++) {
            if (!mask[b * 16 + l]) continue;
            int64_t i0 = (l / 4) * 7, j0 = (l % 4) * 7;
            for (int64_t u = 0; u < 7; u++)
                memset(c->xm + b * 784 + (i0 + u) * 28 + j0, 0,
                       7 * sizeof(float));
        }
    SS_TRY(sst_model_encode(m, c->xm, B, 1));
    SS_TRY(sst_decoder_forward(m, sst_model_feat(m), B));
    ss_mae_opts o = ss_mae_defaults();
    o.norm_pix = 0;
    /* the loss is a mean over the masked patches, 12 per sample: a
     * per-sample mean, so data-parallel takes its global mean */
    ss_status st = ss_mae_forward(loss, NULL, m->dec_y, x, mask, B, 1, 28, 28,
                                  7, &o);
    float dloss = 1.0f;
    SS_TRY(c->comm ? global_mean(c, loss, &dloss, st) : st);
    zero(c->dpix, B * 784);
    SS_TRY(ss_mae_backward(c->dpix, dloss, m->dec_y, x, mask, B, 1, 28, 28,
                           7, &o));
    /* the decoder's 784 outputs are read as (16 patches, 49) in MAE's
     * patchify order; the decoder learns that layout */
    zero(m->dfeat, B * SST_FEAT);
    SS_TRY(sst_decoder_backward(m, m->dfeat, c->dpix, sst_model_feat(m), B));
    return sst_model_encode_backward(m, m->dfeat);
}

ss_status sst_method_step(sst_method_ctx *c, sst_model *m, sst_model *target,
                          const float *x, const float *clean, ss_rng *rng,
                          float *loss) {
    switch (c->id) {
    case SST_SIMCLR:
    case SST_COMBO: return step_simclr(c, m, x, clean, loss);
    case SST_BARLOW:
    case SST_VICREG: return step_pair(c, m, x, loss);
    case SST_BYOL: return step_byol(c, m, target, x, loss);
    case SST_DINO: return step_dino(c, m, target, x, loss);
    case SST_MAE: return step_mae(c, m, x, rng, loss);
    default:
        return ss__fail(SS_ERR_PARAM, "sst_method_step", "unknown method %d",
                        (int)c->id);
    }
}
