/*
 * methods.h - the self-supervised methods of `selfsup train` (internal).
 *
 * Every method turns one batch of B images into a loss with the library's
 * losses (include/selfsup.h) and back-propagates it into the online model's
 * gradients (accumulated; the trainer zeroes them and steps the optimiser):
 *   simclr  NT-Xent over the projections of two views (ss_ntxent_*)
 *   byol    predictor(online(v1)) vs EMA-target(v2), symmetric negative
 *           cosine (ss_negcos_sym_*); the target is an EMA copy
 *   barlow  Barlow Twins on the two projections (ss_barlow_*)
 *   vicreg  VICReg on the two projections (ss_vicreg_*)
 *   dino    student projections vs EMA-teacher projections, centred and
 *           sharpened (ss_dino_*, ss_center_*)
 *   mae     masked autoencoding for a CNN: 75% of the 16 7x7 patches of the
 *           image are zeroed, the encoder sees the rest, a linear decoder
 *           (128 -> 784, sigmoid) predicts every pixel, and the loss is the
 *           MAE per-patch MSE on the masked patches only (ss_mae_*,
 *           norm_pix off since the decoder ends in a sigmoid)
 *   combo   simclr + recon_weight * pixel MSE (ss_recon_*) of the decoder
 *           reconstructing the clean image from view 1's features. The
 *           composite-objective API is not on main yet, so the weighted sum
 *           is done here.
 * Data-parallel (a comm of size > 1, see sst_method_ctx_init): simclr and
 * combo take ss_dist_ntxent_*, barlow and vicreg ss_dist_barlow_* /
 * ss_dist_vicreg_*; byol's negative cosine and combo's pixel MSE have no
 * batch coupling: their local means become the global mean by one
 * all-reduce, and their backward runs in the mean convention (dloss scaled
 * by world_size B_local / B_global); mae too: every sample masks 12 of its
 * 16 patches, so its masked-patch mean is a per-sample mean; every rank
 * draws the masks of the whole global batch from the one mask rng and
 * keeps its rows; dino too (per-sample mean), its teacher centre updated
 * with the mean teacher output of the global batch (one all-reduce).
 */
#ifndef SST_METHODS_H
#define SST_METHODS_H

#include "model.h"

#include "selfsup_comm.h"

typedef enum {
    SST_SIMCLR = 0,
    SST_BYOL,
    SST_BARLOW,
    SST_VICREG,
    SST_DINO,
    SST_MAE,
    SST_COMBO,
    SST_NMETHODS
} sst_method_id;

/* Per-method defaults (what `selfsup train --method M` uses). */
typedef struct {
    const char *name;
    const char *augment;   /* sst_augment_preset name */
    int predictor, decoder; /* heads the model needs */
    int target;            /* EMA target / teacher */
    int views;             /* 2, or 1 (mae) */
    int64_t proj_hidden, proj_out;
    const char *optimizer; /* "adamw", "sgd", "lars" */
    double lr, wd;         /* at batch 256 */
    double temperature;    /* simclr, combo */
    double ema;            /* target momentum base (cosine to 1) */
} sst_method_info;

const sst_method_info *sst_method_info_of(sst_method_id id);
/* -1 when unknown. */
int sst_method_find(const char *name);
/* "simclr, byol, ..." */
const char *sst_method_names(void);

typedef struct {
    sst_method_id id;
    int64_t B, Z;      /* B: this rank's samples (all of them in one process) */
    int64_t Bglob, first; /* the global batch; this rank's first slot */
    float temperature, recon_weight;
    void *cache;
    size_t cache_bytes;
    float *dz, *dz2;   /* (2B, Z), (2B, max(Z, 128)) */
    float *dpix;       /* (B, 784) */
    float *xm;         /* (B, 784) masked images */
    uint8_t *mask;     /* (B, 16) */
    ss_center *center; /* dino */
    float terms[3];    /* last loss terms (combo: ntxent, recon) */
    const ss_comm *comm; /* data-parallel (size > 1), or NULL */
    double *red;       /* (Z + 2 + comm->size) data-parallel sums */
    float *cnew;       /* (Z) dino's next centre, data-parallel */
} sst_method_ctx;

/* B: the GLOBAL batch. comm: NULL or size 1 for one process; else this
 * rank works on its slice of each batch (sst_dist_slice: c->first, c->B
 * samples), the method's loss is the one of the global batch (the
 * concatenation of the ranks' slices), its gradients in the mean
 * convention, and the model must use the same comm (sst_model_set_comm).
 * Errors: SS_ERR_SIZE, SS_ERR_NOMEM. */
ss_status sst_method_ctx_init(sst_method_ctx *c, sst_method_id id, int64_t B,
                              int64_t Z, float temperature, float recon_weight,
                              const ss_comm *comm);
void sst_method_ctx_free(sst_method_ctx *c);

/* One forward + backward. x: (views B, 784) augmented views of this rank's
 * B samples (view 0 rows first); clean: (B, 784) un-augmented (mae, combo)
 * or NULL. target:
 * the EMA model (byol, dino) or NULL. rng: draws the mae mask. *loss
 * written. Online gradients accumulated. */
ss_status sst_method_step(sst_method_ctx *c, sst_model *m, sst_model *target,
                          const float *x, const float *clean, ss_rng *rng,
                          float *loss);

#endif
