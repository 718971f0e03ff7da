/*
 * engine.h - the training engine of `selfsup train` (internal, not installed).
 *
 * In the spirit of llm.c: every layer is a <op>_forward / <op>_backward pair
 * of plain functions on caller-owned float32 buffers. No graph, no autograd,
 * no tensor object. The training job strings the calls together.
 *
 * Naming: every engine symbol takes the prefix sst_ (selfsup train); static
 * helpers have none. Engine functions return ss_status and set
 * ss_last_error() through ss__fail, naming the argument and its value.
 *
 * Argument order (llm.c): outputs, saved values, inputs, parameters, sizes.
 * Layout: NCHW row-major contiguous, as torch. Letters: N batch, C / Cin
 * channels in, Cout channels out, H W input height / width, OH OW output
 * height / width, KH KW kernel, D features, O outputs.
 *
 * Gradient convention (every backward):
 *   - parameter gradients (dw, db, dgamma, dbeta) are ACCUMULATED (+=), so
 *     a caller zeroes them once per optimiser step (sst_params_zero_grad);
 *   - the input gradient dx is WRITTEN (=), so activation gradients need no
 *     zeroing; where a layer is elementwise, dx may alias dy (in place).
 *     A branch that feeds two consumers sums their dx itself.
 *   - where a contract says "dx ... or NULL", NULL skips the input gradient
 *     (the first layer needs none; for conv1 this saves the col2im).
 * Backward functions trust that forward was called with the same sizes;
 * they re-check pointers and sizes, not values.
 *
 * Threads: OpenMP over the batch (ss__threads()); results do not depend on
 * the thread count beyond float summation order.
 *
 * Example: one conv block and an SGD step (error checks left out).
 *
 *   sst_params P; int64_t ow, og, ob;
 *   sst_params_init(&P);
 *   sst_params_add(&P, "conv1.w", 32 * 1 * 9, 0, &ow);
 *   sst_params_add(&P, "bn1.g", 32, SST_P_NO_DECAY, &og);
 *   sst_params_add(&P, "bn1.b", 32, SST_P_NO_DECAY, &ob);
 *   sst_params_alloc(&P);                       // + init, running stats
 *   sst_conv2d_dims d = {256, 1, 28, 28, 32, 3, 3, 1, 1};
 *   sst_conv2d_forward(c, x, P.data + ow, NULL, &d);          // c (256,32,28,28)
 *   sst_batchnorm_forward(a, saved, c, P.data + og, P.data + ob, rm, rv,
 *                         256, 32, 784, SST_BN_EPS, SST_BN_MOMENTUM, 1);
 *   sst_relu_forward(a, a, 256 * 32 * 784);
 *   ... loss, da = dloss/da ...
 *   sst_params_zero_grad(&P);
 *   sst_relu_backward(da, da, a, 256 * 32 * 784);
 *   sst_batchnorm_backward(da, P.grad + og, P.grad + ob, da, saved, c,
 *                          P.data + og, 256, 32, 784, 1);
 *   sst_conv2d_backward(NULL, P.grad + ow, NULL, da, x, P.data + ow, &d);
 *   sst_sgd_step(&P, momentum_buf, &(sst_sgd_cfg){lr, 0.9, 0, 5e-4, 0}, t);
 *
 * Speed: call sst_blas_reexec(argv) first in main() (see the end of this
 * file): inside VMs Debian's OpenBLAS may pick SSE3 kernels otherwise.
 */
#ifndef SST_ENGINE_H
#define SST_ENGINE_H

#include "selfsup.h"
#include "selfsup_comm.h"

#include <stdint.h>

/* ---- Linear: y = x W^T + b  (torch.nn.Linear) ------------------------------
 * y: (N, O) written. x: (N, D). w: (O, D). b: (O) or NULL. */
ss_status sst_linear_forward(float *y, const float *x, const float *w,
                             const float *b, int64_t N, int64_t D, int64_t O);
/* dx: (N, D) written, or NULL. dw: (O, D) +=. db: (O) +=, or NULL.
 * dy: (N, O). x, w as in forward. */
ss_status sst_linear_backward(float *dx, float *dw, float *db, const float *dy,
                              const float *x, const float *w, int64_t N,
                              int64_t D, int64_t O);

/* ---- Conv2d via im2col + GEMM (torch.nn.Conv2d, groups=1, dilation=1) -----
 * Geometry of one convolution. OH = (H + 2 pad - KH) / stride + 1, same for W.
 */
typedef struct {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, pad;
} sst_conv2d_dims;

/* Validates d (all >= 1, pad >= 0, pad < kernel, output >= 1) and writes
 * *OH, *OW. Errors: SS_ERR_NULL, SS_ERR_SIZE naming the field and value. */
ss_status sst_conv2d_out_size(const sst_conv2d_dims *d, int64_t *OH,
                              int64_t *OW);
/* y: (N, Cout, OH, OW) written. x: (N, Cin, H, W). w: (Cout, Cin, KH, KW).
 * b: (Cout) or NULL. Allocates one im2col buffer per thread per call. */
ss_status sst_conv2d_forward(float *y, const float *x, const float *w,
                             const float *b, const sst_conv2d_dims *d);
/* dx: (N, Cin, H, W) written, or NULL. dw: (Cout, Cin, KH, KW) +=.
 * db: (Cout) +=, or NULL. dy: (N, Cout, OH, OW). x, w as in forward. */
ss_status sst_conv2d_backward(float *dx, float *dw, float *db, const float *dy,
                              const float *x, const float *w,
                              const sst_conv2d_dims *d);

/* ---- BatchNorm over (N, C, S): BatchNorm1d is S = 1 (input (N, C)),
 * BatchNorm2d is S = H * W. As torch: biased variance to normalise, the
 * unbiased one (N S / (N S - 1)) in the running variance, running =
 * (1 - momentum) running + momentum batch, momentum 0.1 (SST_BN_MOMENTUM).
 * Train mode needs N S >= 2 (torch errors for one value per channel).
 */
#define SST_BN_MOMENTUM 0.1f
#define SST_BN_EPS 1e-5f
/* y: (N, C, S) written. saved: (2 C) written: per-channel mean then
 * 1 / sqrt(var + eps) actually used (batch stats in train mode, running
 * stats in eval mode). x: (N, C, S). gamma, beta: (C) or both NULL (affine
 * off). running_mean, running_var: (C), updated in train mode (may be NULL
 * in train mode to skip tracking), read in eval mode. train: 1 or 0.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (eps, momentum). */
ss_status sst_batchnorm_forward(float *y, float *saved, const float *x,
                                const float *gamma, const float *beta,
                                float *running_mean, float *running_var,
                                int64_t N, int64_t C, int64_t S, float eps,
                                float momentum, int train);
/* dx: (N, C, S) written or NULL; may alias dy. dgamma, dbeta: (C) += (NULL
 * when affine off). dy: (N, C, S). saved, x, gamma, train as in forward
 * (train mode differentiates through the batch statistics). */
ss_status sst_batchnorm_backward(float *dx, float *dgamma, float *dbeta,
                                 const float *dy, const float *saved,
                                 const float *x, const float *gamma, int64_t N,
                                 int64_t C, int64_t S, int train);

/* Synchronised BatchNorm (torch.nn.SyncBatchNorm), train mode only, for
 * data-parallel training: the statistics are those of the rows of every
 * rank of comm together (local N >= 1 may differ; the global N S must be
 * >= 2), so that each rank's y, saved and running statistics equal what
 * one process computes on the concatenated batch. work: (2 C + 1 +
 * comm->size) doubles of scratch. st: the caller's status so far; a rank
 * that already failed passes its error and still joins the collective, so
 * that every rank returns an error instead of hanging (the failing rank
 * its own, the others "rank r failed with ..."). One all-reduce of
 * 2 C + 1 + size doubles. Errors as sst_batchnorm_forward, or SS_ERR_STATE
 * for a transport failure. */
ss_status sst_batchnorm_forward_sync(float *y, float *saved, const float *x,
                                     const float *gamma, const float *beta,
                                     float *running_mean, float *running_var,
                                     int64_t N, int64_t C, int64_t S,
                                     float eps, float momentum, double *work,
                                     const ss_comm *comm, ss_status st);
/* Backward of the synchronised forward: dx from the all-reduced sums of dy
 * and dy xhat (one all-reduce as forward); dgamma, dbeta += the LOCAL sums,
 * so that averaging parameter gradients over the ranks gives the global
 * ones. With upstream gradients in the mean convention of selfsup_comm.h
 * (world_size times the global gradient's local rows), dx is in the same
 * convention. work, comm, st as forward. */
ss_status sst_batchnorm_backward_sync(float *dx, float *dgamma, float *dbeta,
                                      const float *dy, const float *saved,
                                      const float *x, const float *gamma,
                                      int64_t N, int64_t C, int64_t S,
                                      double *work, const ss_comm *comm,
                                      ss_status st);

/* ---- LayerNorm over the last dim (torch.nn.LayerNorm(D), eps 1e-5) -------
 * y: (N, D) written. saved: (2 N): per-row mean then rstd. x: (N, D).
 * gamma, beta: (D) or both NULL. */
ss_status sst_layernorm_forward(float *y, float *saved, const float *x,
                                const float *gamma, const float *beta,
                                int64_t N, int64_t D, float eps);
/* dx: (N, D) written or NULL; may alias dy. dgamma, dbeta: (D) += or NULL. */
ss_status sst_layernorm_backward(float *dx, float *dgamma, float *dbeta,
                                 const float *dy, const float *saved,
                                 const float *x, const float *gamma, int64_t N,
                                 int64_t D);

/* ---- Elementwise activations on n values ---------------------------------
 * ReLU: y may alias x. Backward uses the forward output y (y > 0 <=> x > 0),
 * so an in-place ReLU can still be differentiated; dx may alias dy. */
ss_status sst_relu_forward(float *y, const float *x, int64_t n);
ss_status sst_relu_backward(float *dx, const float *dy, const float *y,
                            int64_t n);
/* GELU, exact erf form (torch default approximate='none'). y may alias x;
 * backward needs the input x, dx may alias dy. */
ss_status sst_gelu_forward(float *y, const float *x, int64_t n);
ss_status sst_gelu_backward(float *dx, const float *dy, const float *x,
                            int64_t n);

/* ---- Pooling (no padding, floor mode, as torch defaults with padding=0) ---
 * Planes: P = N * C independent (H, W) images. OH = (H - K) / stride + 1. */
/* y: (P, OH, OW) written. x: (P, H, W). Ties: the first maximum in
 * row-major window order wins (as torch on CPU). NaN: propagated as torch,
 * except on the branch-free K = 2, stride = 2 path, where a window holding
 * a NaN gives an unspecified value (of that window). */
ss_status sst_maxpool2d_forward(float *y, const float *x, int64_t P, int64_t H,
                                int64_t W, int64_t K, int64_t stride);
/* dx: (P, H, W) written (zero outside the argmax). Recomputes the argmax
 * from x, so nothing is saved. */
ss_status sst_maxpool2d_backward(float *dx, const float *dy, const float *x,
                                 int64_t P, int64_t H, int64_t W, int64_t K,
                                 int64_t stride);
/* AvgPool2d: y: (P, OH, OW) written. x: (P, H, W). */
ss_status sst_avgpool2d_forward(float *y, const float *x, int64_t P, int64_t H,
                                int64_t W, int64_t K, int64_t stride);
ss_status sst_avgpool2d_backward(float *dx, const float *dy, int64_t P,
                                 int64_t H, int64_t W, int64_t K,
                                 int64_t stride);
/* Global average pool (AdaptiveAvgPool2d(1) + Flatten): y: (P) written, the
 * mean of each (S) plane of x: (P, S). Flatten itself is a no-op on NCHW
 * contiguous buffers: (N, C, H, W) is already (N, C H W). */
ss_status sst_gap_forward(float *y, const float *x, int64_t P, int64_t S);
/* dx: (P, S) written = dy[p] / S. */
ss_status sst_gap_backward(float *dx, const float *dy, int64_t P, int64_t S);

/* ---- Parameter arena --------------------------------------------------------
 * All parameters of a model in one contiguous float buffer, gradients in a
 * second one of the same layout, so optimisers, EMA and checkpoints see a
 * single array. Tensors are registered first, then the arena is allocated.
 */
#define SST_P_NO_DECAY 1u /* bias / norm: no weight decay, no LARS scaling */
#define SST_P_FROZEN 2u   /* buffer (running stats): optimisers skip it */
#define SST_MAX_TENSORS 256

typedef struct {
    char name[48];
    int64_t offset, numel;
    unsigned flags;
} sst_tensor;

typedef struct {
    sst_tensor t[SST_MAX_TENSORS];
    int64_t count;
    int64_t numel;  /* total floats */
    float *data;    /* (numel), NULL until sst_params_alloc */
    float *grad;    /* (numel), zeroed by alloc */
} sst_params;

/* Empty arena. */
void sst_params_init(sst_params *P);
/* Registers a tensor of numel floats; *offset (may be NULL) receives its
 * position in data / grad. Errors: SS_ERR_NULL, SS_ERR_SIZE (numel < 1,
 * too many tensors), SS_ERR_PARAM (after alloc, name too long). */
ss_status sst_params_add(sst_params *P, const char *name, int64_t numel,
                         unsigned flags, int64_t *offset);
/* Allocates data (zeroed) and grad (zeroed). Errors: SS_ERR_NOMEM. */
ss_status sst_params_alloc(sst_params *P);
/* Pointers into the arena (valid after alloc). */
float *sst_params_data(sst_params *P, int64_t offset);
float *sst_params_grad(sst_params *P, int64_t offset);
void sst_params_zero_grad(sst_params *P);
/* Index of the tensor called name, or -1. */
int64_t sst_params_find(const sst_params *P, const char *name);
/* torch's default init of Conv2d / Linear weights and biases
 * (kaiming_uniform with a = sqrt(5)): w[i] ~ U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), fan_in = Cin KH KW (conv) or D (linear). n values. */
void sst_init_torch_default(float *w, int64_t n, int64_t fan_in, ss_rng *rng);
/* Frees the buffers (the struct can be reused after sst_params_init). */
void sst_params_free(sst_params *P);

/* ---- Optimisers on the arena (state buffers caller-owned, (numel) each,
 * zero-initialised) --------------------------------------------------------
 * step is 1-based: step 1 initialises the momentum buffer with the first
 * gradient exactly as torch does. Tensors flagged SST_P_FROZEN are skipped;
 * SST_P_NO_DECAY tensors get weight_decay 0 (torch: a second param group
 * with weight_decay=0). */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov;
} sst_sgd_cfg;
/* torch.optim.SGD: g = grad + wd p; buf = g at step 1, else
 * momentum buf + (1 - dampening) g; g = nesterov ? g + momentum buf : buf;
 * p -= lr g. buf: (numel), may be NULL when momentum == 0.
 * Errors: SS_ERR_NULL, SS_ERR_PARAM (negative / non-finite values, step < 1,
 * nesterov with momentum 0 or dampening != 0, as torch). */
ss_status sst_sgd_step(sst_params *P, float *buf, const sst_sgd_cfg *c,
                       int64_t step);

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} sst_adamw_cfg;
/* torch.optim.AdamW (amsgrad off): p *= 1 - lr wd; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m /
 * (sqrt(v) / sqrt(1 - b2^t) + eps). m, v: (numel). */
ss_status sst_adamw_step(sst_params *P, float *m, float *v,
                         const sst_adamw_cfg *c, int64_t step);

typedef struct {
    double lr, momentum, weight_decay, eta, eps;
    int clip_lr;             /* lars_lr = min(lars_lr / lr, 1) */
    int exclude_bias_n_norm; /* SST_P_NO_DECAY tensors: plain SGD, no wd */
} sst_lars_cfg;
/* LARS as solo-learn (solo/utils/lars.py) with dampening 0, nesterov off:
 * per tensor, unless excluded, when ||p|| > 0 and ||g|| > 0:
 * lars_lr = eta ||p|| / (||g|| + wd ||p|| + eps), g = (g + wd p) lars_lr;
 * then SGD momentum as above (buf = g at step 1) and p -= lr buf.
 * With exclude_bias_n_norm off, SST_P_NO_DECAY is ignored (all adapted). */
ss_status sst_lars_step(sst_params *P, float *buf, const sst_lars_cfg *c,
                        int64_t step);

/* ---- Schedules (pure functions of the 0-based step) -----------------------
 * Linear warm-up from start_lr to base_lr over warmup steps (step 0 gives
 * start_lr), then cosine from base_lr to final_lr reached at step total:
 * final + (base - final) (1 + cos(pi (step - warmup) / (total - warmup))) / 2.
 * Steps past total give final_lr. warmup may be 0; total > warmup. */
double sst_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total,
                            double start_lr, double base_lr, double final_lr);
/* BYOL / DINO target momentum (solo-learn MomentumUpdater):
 * tau = final - (final - base) (cos(pi step / total) + 1) / 2. */
double sst_momentum_cosine(int64_t step, int64_t total, double base,
                           double final_tau);

/* ---- EMA target network ------------------------------------------------------
 * target = m target + (1 - m) online over n floats (lightly update_momentum,
 * BYOL/DINO). Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (m not in
 * [0, 1]). */
ss_status sst_ema_update(float *target, const float *online, int64_t n,
                         double m);

/* ---- data-parallel helpers (train/dist.c) -----------------------------------
 * One all-reduce (sum, double) of buf[0 .. n) that also agrees on a status:
 * buf holds n + comm->size doubles; slot n + r carries rank r's status (a
 * failing rank's values are zeroed first). Returns SS_OK on every rank, or
 * an error on every rank: this rank's own when it failed, else the first
 * failing rank's status with "rank r failed with ...". SS_ERR_STATE for a
 * transport failure. */
ss_status sst_dist_sum_agree(const ss_comm *comm, const char *fn,
                             ss_status st, double *buf, int64_t n);
/* Rank's share of a global batch of B samples: samples [*first, *first +
 * *count) of the global order, contiguous, in rank order; the counts differ
 * by at most one (the last ranks take the extra samples). */
void sst_dist_slice(int64_t B, int rank, int size, int64_t *first,
                    int64_t *count);
/* Averages the parameter gradients of P over the ranks (all-reduce sum,
 * then / size): with the mean convention of the distributed losses, every
 * rank then holds the gradient of the global batch. */
ss_status sst_dist_average_grads(const ss_comm *comm, sst_params *P);

/* ---- BLAS kernels (train/blas.c) --------------------------------------------
 * ss_blas_coretype_hint() (selfsup.h) tells when Debian's DYNAMIC_ARCH
 * OpenBLAS fell back to generic SSE3 kernels on an AVX2 / AVX-512 CPU.
 * Call first thing in main(): when a hint exists and OPENBLAS_CORETYPE is
 * unset, sets it and re-executes /proc/self/exe with argv (does not return
 * on success). Returns 0 when nothing was needed, -1 when exec failed (the
 * program continues, slower). Linux only; elsewhere returns 0. */
int sst_blas_reexec(char **argv);

#endif /* SST_ENGINE_H */
