/*
 * model.h - the encoder of `selfsup train` and its heads (internal).
 *
 * Encoder (28x28 grayscale, as bench/engine_bench.c and bench/train_torch.py):
 *   conv3x3 1->32 pad 1 -> BN -> ReLU -> maxpool 2      28 -> 14
 *   conv3x3 32->64      -> BN -> ReLU -> maxpool 2      14 -> 7
 *   conv3x3 64->128     -> BN -> ReLU -> global avg     7  -> 128 features
 * Heads (each optional except the projector):
 *   projector  Linear(128, H) -> BN1d -> ReLU -> Linear(H, Z)
 *   predictor  Linear(Z, H)   -> BN1d -> ReLU -> Linear(H, Z)   (BYOL)
 *   decoder    Linear(128, 784) -> sigmoid                      (mae, combo)
 * All parameters and BN running statistics live in one sst_params arena, so
 * optimisers, EMA targets and checkpoints see one array. Convs have no bias
 * (BN follows). Activations are kept in buffers sized for cap images, so
 * the backward pass reuses what the last forward saved.
 *
 * Input height/width must be 28 (Fashion-MNIST, MNIST); sst_model_init
 * rejects others.
 */
#ifndef SST_MODEL_H
#define SST_MODEL_H

#include "engine.h"

#include <stdint.h>

#define SST_FEAT 128 /* encoder output dimension */
#define SST_IMG 28

typedef struct {
    int64_t cap;         /* largest batch forwarded at once */
    int64_t proj_hidden; /* H */
    int64_t proj_out;    /* Z */
    int predictor;       /* 1: BYOL predictor */
    int decoder;         /* 1: pixel decoder */
} sst_model_cfg;

typedef struct {
    int64_t Cin, H, Cout, OH, S, PS;
    int gap;
    int64_t w, g, b, rm, rv; /* offsets in the arena */
    float *saved, *c, *a, *p;
} sst_block;

typedef struct {
    int64_t din, dh, dout;
    int64_t w1, b1, g, be, rm, rv, w2, b2; /* offsets */
    float *h, *hn, *saved, *y, *gh; /* (cap, dh) / (cap, dout) */
} sst_mlp;

typedef struct {
    sst_model_cfg cfg;
    sst_params P;
    sst_block blk[3];
    sst_mlp proj, pred;
    int64_t dec_w, dec_b;
    float *dec_y;            /* (cap, 784) sigmoid outputs */
    const float *x;          /* input of the last encode (not owned) */
    int64_t n;               /* batch of the last encode */
    int train;
    float *dc, *dp1, *dp2, *dfeat; /* backward scratch */
    const ss_comm *comm;     /* synchronised BN in train mode, or NULL */
    double *bn_work;         /* (2 max C + 1 + comm->size) for sync BN */
} sst_model;

/* Registers and allocates every tensor, initialises weights as torch
 * (kaiming-uniform a = sqrt(5)), BN gamma 1, beta 0, running var 1, from
 * seed. Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NOMEM. */
ss_status sst_model_init(sst_model *m, const sst_model_cfg *cfg, uint64_t seed);
void sst_model_free(sst_model *m);
/* Data-parallel training: every train-mode BatchNorm of m (encoder and
 * heads) then uses the statistics of all ranks of comm together
 * (sst_batchnorm_forward_sync), so that a forward / backward of the local
 * rows equals one process's on the concatenated batch. comm NULL or of
 * size 1: local BN (the default). comm must outlive m's use of it. A
 * failing rank still joins the collectives of that pass (errors agree).
 * Errors: SS_ERR_NOMEM. */
ss_status sst_model_set_comm(sst_model *m, const ss_comm *comm);

/* Encoder forward of x: (N, 1, 28, 28), N <= cap; train: BN batch stats (and
 * running stats updated) or running stats. Features: m->blk[2].p (N, 128). */
ss_status sst_model_encode(sst_model *m, const float *x, int64_t N, int train);
static inline float *sst_model_feat(sst_model *m) { return m->blk[2].p; }
/* Encoder backward from dfeat: (N, 128) (the last encode's N); parameter
 * gradients accumulated. dfeat is used as scratch. */
ss_status sst_model_encode_backward(sst_model *m, float *dfeat);

/* MLP head forward: mlp->y (N, dout) from in (N, din). */
ss_status sst_mlp_forward(sst_model *m, sst_mlp *h, const float *in, int64_t N,
                          int train);
/* dx: (N, din) written (or NULL); dy: (N, dout) (clobbered). in: as
 * forward. Parameter gradients accumulated. */
ss_status sst_mlp_backward(sst_model *m, sst_mlp *h, float *dx, float *dy,
                           const float *in, int64_t N);

/* Decoder: m->dec_y (N, 784) = sigmoid(feat W^T + b). */
ss_status sst_decoder_forward(sst_model *m, const float *feat, int64_t N);
/* dfeat: (N, 128) accumulated (+=); dy: (N, 784) gradient of dec_y
 * (clobbered). */
ss_status sst_decoder_backward(sst_model *m, float *dfeat, float *dy,
                               const float *feat, int64_t N);

/* Frozen features (N, 128) of n images (pixels in [0, 1], (n, 784)), in eval
 * mode, cap at a time. */
ss_status sst_model_features(sst_model *m, float *out, const float *x,
                             int64_t n);

#endif
