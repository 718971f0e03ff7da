/*
 * dist_contrastive_internal.h - what the all-gather (dist_contrastive.c)
 * and ring (dist_ring_contrastive.c) forms of SupCon and DCL / DCLW share:
 * the cache header and its checks, the label hash, DCLW's global weights
 * and DCL's per-anchor loss and positive gradient. Defined in
 * dist_contrastive.c.
 *
 * x: (V N, D) local rows the loss sees, row v N + n is view v of sample n.
 */
#ifndef SS_DIST_CONTRASTIVE_INTERNAL_H
#define SS_DIST_CONTRASTIVE_INTERNAL_H

#include "selfsup.h"
#include "selfsup_comm.h"

#include <stdint.h>

#define SS__DCON_HDR_BYTES 64 /* the cache's header; payload follows */

/* One header for every cache: backward checks the call that wrote it. */
typedef struct {
    uint64_t magic, hash;
    int64_t V, N, D, Ntot;
    float temperature, sigma;
    int32_t cosine, flags;
} ss__dcon_header;

/* Output checks shared by the forwards (out = loss, cache) and the
 * backwards (out = dz, cache, dloss). */
ss_status ss__dcon_check_out(const char *fn, const void *out,
                             const char *name, const void *cache,
                             const float *dloss);

/* z (V >= vmin, N, D), temperature t and the logit bound. */
ss_status ss__dcon_check_z(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, int64_t vmin, float t,
                           int cosine);

/* The header matches want's call (all but Ntot): SS_ERR_PARAM otherwise;
 * what names the writer in the message ("forward", "ring forward"). */
ss_status ss__dcon_check_cache(const char *fn, const void *cache,
                               const ss__dcon_header *want, const char *what);

/* After the agreement: the cache's global batch is this call's. */
ss_status ss__dcon_check_ntot(const char *fn, const void *cache, int64_t Ntot);

/* SupCon's header under magic; hash: FNV-1a of the local labels (0 when
 * labels is NULL), so that backward checks forward's. */
ss__dcon_header ss__dcon_supcon_header(uint64_t magic, const int64_t *labels,
                                       int64_t V, int64_t N, int64_t D,
                                       const ss_supcon_opts *o);

/* DCL's header under magic (sigma only when weighted). */
ss__dcon_header ss__dcon_dcl_header(uint64_t magic, int64_t V, int64_t N,
                                    int64_t D, const ss_dcl_opts *o);

/* DCL's cache bytes (0 with a message under fn when out of range). */
size_t ss__dcon_dcl_cache_size(const char *fn, int64_t V, int64_t N,
                               int64_t D);

/* DCL's option checks after z's: V V N fits, sigma > 0 and V = 2 when
 * weighted. */
ss_status ss__dcon_dcl_check(const char *fn, int64_t V, int64_t N,
                             const ss_dcl_opts *o);

/* DCL's agreement: names and vals (SS__DCON_DCL_NAGREE each) of the
 * options that must be equal on every rank, with dloss. */
#define SS__DCON_DCL_NAGREE 8
extern const char *const ss__dcon_dcl_names[SS__DCON_DCL_NAGREE];
void ss__dcon_dcl_vals(double *vals, int64_t V, int64_t D,
                       const ss_dcl_opts *o, float dloss);

/* pw: (N) positive weights, 1 (DCL) or 2 - Ntot softmax_n(<x_0n, x_1n> /
 * sigma) over the GLOBAL samples (DCLW): all-reduced max and sum. */
ss_status ss__dcon_dcl_weights(double *pw, const char *fn, const float *x,
                               int64_t N, int64_t D, int64_t Ntot,
                               const ss_dcl_opts *o, const ss_comm *c);

/* loss of local anchor i from L (V N, S) lse and the positive weights. */
double ss__dcon_dcl_loss_i(const float *L, const double *pw, const float *x,
                           int64_t V, int64_t N, int64_t D, int64_t S,
                           double scale, int64_t i);

/* dx (V N, D) += f d/dx of -w_n s((v,n),(u,n)) / (V - 1) (each in two
 * anchors). */
void ss__dcon_dcl_pos_grad(float *dx, double f, const double *pw,
                           const float *x, int64_t V, int64_t N, int64_t D,
                           double scale);

#endif
