/* losses.c - the benchmarked losses: one descriptor each (inputs, FLOP model,
 * forward/backward through the public API) and the problem they run on.
 *
 * FLOP models count the multiply-adds (MAC) of the GEMMs a flash-style
 * implementation needs, fwd + bwd; 1 MAC = 2 FLOP. Elementwise work (exp,
 * normalisation) is O(rows * cols) or O(rows * D) and left out.
 *   stacked z (M = V N rows, S = Z Z^T symmetric): forward forms the M^2/2
 *     unique entries (M^2 D / 2), backward recomputes them (M^2 D / 2) and
 *     forms dZ = G Z (M^2 D): 2 M^2 D MAC. V = 2: 8 N^2 D (perf_anchors.md,
 *     "flash-symmetric"); N = 4096, D = 128: 34.4 GFLOP, >= 0.17 s on the
 *     2 cores at their measured ~197 GFLOP/s.
 *   pair a, b (S = A B^T, N x N): forward N^2 D (one tile pass gives the
 *     row and the column statistics), backward recompute N^2 D, dA = G B and
 *     dB = G^T A: 2 N^2 D. Total 4 N^2 D MAC.
 *   queue (S = Q [k; queue]^T, N x K): forward N K D, recompute N K D,
 *     dQ = G queue N K D; the queue gets no gradient: 3 N K D MAC.
 * The other losses (SS_CLI_ARRAYS: negcos .. mae) describe their own arrays,
 * which the problem allocates, fills and saves generically; their FLOP
 * models sit beside their functions below (docs/BENCHMARKS.md has the table).
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Loss parameters the CLI uses: the library defaults, and torch_ref.py's. */
#define CLIP_LOG_SCALE 2.6592600f /* log(1 / 0.07), CLIP's initial value */
#define SIGLIP_LOG_T 2.3025851f   /* log(10), SigLIP's initial value */
#define SIGLIP_BIAS (-10.0f)
/* Positive views are base + VIEW_NOISE * noise, so the losses see data with
 * a signal rather than independent noise. */
#define VIEW_NOISE 0.5

struct ss_cli_problem {
    const ss_cli_loss *loss;
    ss_cli_shape s;
    float *x, *dx;  /* z (V,N,D) | a (N,D) | q (N,D) */
    float *y, *dy;  /* b (N,D) | k (N,D); NULL for stacked */
    float *queue;   /* (K,D), moco */
    int64_t *labels; /* (N), supcon */
    float scal[2], dscal[2]; /* clip: log_scale; siglip: log_t, bias */
    void *cache;
    size_t cache_bytes;
    float loss_value;
    /* SS_CLI_ARRAYS losses */
    int narr;
    ss_cli_array arr[SS_CLI_MAX_ARRAYS];
    void *in[SS_CLI_MAX_ARRAYS];
    float *grad[SS_CLI_MAX_ARRAYS];
    int64_t M;            /* ibot: masked tokens; mae: patch size */
    int64_t aux;          /* wmse: w_size */
    ss_tico_state *tico;  /* tico: zero state, not updated */
    ss_center *center;    /* dino, ibot */
    int init_failed;      /* init could not create the state (out of memory) */
};

/* ---- FLOP models ---------------------------------------------------------- */

static double macs_stacked(const ss_cli_shape *s) {
    double m = (double)s->V * (double)s->N;
    return 2.0 * m * m * (double)s->D;
}
static double macs_pair(const ss_cli_shape *s) {
    return 4.0 * (double)s->N * (double)s->N * (double)s->D;
}
static double macs_queue(const ss_cli_shape *s) {
    return 3.0 * (double)s->N * (double)s->K * (double)s->D;
}

/* ---- the losses through the public API ----------------------------------- */

#define P_ARGS_STACKED p->s.V, p->s.N, p->s.D

static size_t cache_ntxent(const ss_cli_problem *p) {
    return ss_ntxent_cache_size(P_ARGS_STACKED);
}
static ss_status fwd_ntxent(ss_cli_problem *p) {
    ss_ntxent_opts o = ss_ntxent_defaults();
    return ss_ntxent_forward(&p->loss_value, NULL, p->cache, p->x,
                             P_ARGS_STACKED, &o);
}
static ss_status bwd_ntxent(ss_cli_problem *p) {
    ss_ntxent_opts o = ss_ntxent_defaults();
    return ss_ntxent_backward(p->dx, 1.0f, p->cache, p->x, P_ARGS_STACKED, &o);
}

static size_t cache_supcon(const ss_cli_problem *p) {
    return ss_supcon_cache_size(P_ARGS_STACKED);
}
static ss_status fwd_supcon(ss_cli_problem *p) {
    ss_supcon_opts o = ss_supcon_defaults();
    return ss_supcon_forward(&p->loss_value, NULL, p->cache, p->x, p->labels,
                             P_ARGS_STACKED, &o);
}
static ss_status bwd_supcon(ss_cli_problem *p) {
    ss_supcon_opts o = ss_supcon_defaults();
    return ss_supcon_backward(p->dx, 1.0f, p->cache, p->x, p->labels,
                              P_ARGS_STACKED, &o);
}

static size_t cache_moco(const ss_cli_problem *p) {
    return ss_moco_cache_size(p->s.N, p->s.K, p->s.D);
}
static ss_status fwd_moco(ss_cli_problem *p) {
    ss_moco_opts o = ss_moco_defaults();
    return ss_moco_forward(&p->loss_value, NULL, p->cache, p->x, p->y, p->queue,
                           p->s.N, p->s.K, p->s.D, &o);
}
static ss_status bwd_moco(ss_cli_problem *p) {
    ss_moco_opts o = ss_moco_defaults();
    /* dk = NULL: MoCo's keys come from the momentum encoder (stop-gradient) */
    return ss_moco_backward(p->dx, NULL, 1.0f, p->cache, p->x, p->y, p->queue,
                            p->s.N, p->s.K, p->s.D, &o);
}

static size_t cache_clip(const ss_cli_problem *p) {
    return ss_clip_cache_size(p->s.N, p->s.D);
}
static ss_status fwd_clip(ss_cli_problem *p) {
    ss_clip_opts o = ss_clip_defaults();
    return ss_clip_forward(&p->loss_value, NULL, p->cache, p->x, p->y,
                           p->scal[0], p->s.N, p->s.D, &o);
}
static ss_status bwd_clip(ss_cli_problem *p) {
    ss_clip_opts o = ss_clip_defaults();
    return ss_clip_backward(p->dx, p->dy, &p->dscal[0], 1.0f, p->cache, p->x,
                            p->y, p->scal[0], p->s.N, p->s.D, &o);
}

static size_t cache_siglip(const ss_cli_problem *p) {
    return ss_siglip_cache_size(p->s.N, p->s.D);
}
static ss_status fwd_siglip(ss_cli_problem *p) {
    ss_siglip_opts o = ss_siglip_defaults();
    return ss_siglip_forward(&p->loss_value, NULL, p->cache, p->x, p->y,
                             p->scal[0], p->scal[1], p->s.N, p->s.D, &o);
}
static ss_status bwd_siglip(ss_cli_problem *p) {
    ss_siglip_opts o = ss_siglip_defaults();
    return ss_siglip_backward(p->dx, p->dy, &p->dscal[0], &p->dscal[1], 1.0f,
                              p->cache, p->x, p->y, p->scal[0], p->scal[1],
                              p->s.N, p->s.D, &o);
}

static size_t cache_dcl(const ss_cli_problem *p) {
    return ss_dcl_cache_size(P_ARGS_STACKED);
}
static ss_dcl_opts dcl_opts(const ss_cli_problem *p) {
    return strcmp(p->loss->name, "dclw") ? ss_dcl_defaults() : ss_dclw_defaults();
}
static ss_status fwd_dcl(ss_cli_problem *p) {
    ss_dcl_opts o = dcl_opts(p);
    return ss_dcl_forward(&p->loss_value, NULL, p->cache, p->x, P_ARGS_STACKED,
                          &o);
}
static ss_status bwd_dcl(ss_cli_problem *p) {
    ss_dcl_opts o = dcl_opts(p);
    return ss_dcl_backward(p->dx, 1.0f, p->cache, p->x, P_ARGS_STACKED, &o);
}

/* ---- the SS_CLI_ARRAYS losses ------------------------------------------------
 * Each names its arrays (in save order, which bench/torch_ref.py reads), fills
 * them, and calls the library. IN(i) / GR(i) are array i and its gradient. */

static void fill_normal(float *x, int64_t n, ss_rng *rng);
static void fill_view(float *dst, const float *src, int64_t n, ss_rng *rng);

#define IN(i) ((float *)p->in[i])
#define GR(i) (p->grad[i])
#define NN p->s.N
#define DD p->s.D
#define KK p->s.K
#define VV p->s.V

static ss_cli_array f32(int64_t count, int grad) {
    return (ss_cli_array){SS_CLI_F32, count, grad};
}

static void scale(float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++) x[i] *= c;
}

/* Array 0 random, the others (of the same size) its noisy views. */
static void init_views(ss_cli_problem *p, ss_rng *rng) {
    fill_normal(IN(0), p->arr[0].count, rng);
    for (int i = 1; i < p->narr; i++)
        if (p->arr[i].type == SS_CLI_F32 && p->arr[i].count == p->arr[0].count)
            fill_view(IN(i), IN(0), p->arr[0].count, rng);
}

/* Stacked (V, N, D): view 0 random, views 1.. its noisy copies. */
static void init_stacked(ss_cli_problem *p, ss_rng *rng) {
    int64_t nd = NN * DD;
    fill_normal(IN(0), nd, rng);
    for (int64_t v = 1; v < VV; v++) fill_view(IN(0) + v * nd, IN(0), nd, rng);
}

/* a, b: (N, D) with gradients */
static int arrays_pair2(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->D, 1);
    a[1] = f32(s->N * s->D, 1);
    return 2;
}
static int arrays_stacked1(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->V * s->N * s->D, 1);
    return 1;
}
static int arrays_single(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->D, 1);
    return 1;
}

/* negcos: SimSiam's symmetric form, p1, p2 (grad), z1, z2 (stop-gradient) */
static int arrays_negcos(const ss_cli_shape *s, ss_cli_array *a) {
    for (int i = 0; i < 4; i++) a[i] = f32(s->N * s->D, i < 2);
    return 4;
}
static size_t cache_negcos(const ss_cli_problem *p) {
    return ss_negcos_sym_cache_size(NN, DD);
}
static ss_status fwd_negcos(ss_cli_problem *p) {
    return ss_negcos_sym_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1),
                                 IN(2), IN(3), NN, DD, NULL);
}
static ss_status bwd_negcos(ss_cli_problem *p) {
    return ss_negcos_sym_backward(GR(0), GR(1), NULL, NULL, 1.0f, p->cache,
                                  IN(0), IN(1), IN(2), IN(3), NN, DD, NULL);
}

static size_t cache_barlow(const ss_cli_problem *p) {
    return ss_barlow_cache_size(NN, DD, NULL);
}
static ss_status fwd_barlow(ss_cli_problem *p) {
    return ss_barlow_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1), NN, DD,
                             NULL);
}
static ss_status bwd_barlow(ss_cli_problem *p) {
    return ss_barlow_backward(GR(0), GR(1), 1.0f, p->cache, IN(0), IN(1), NN, DD,
                              NULL);
}

static size_t cache_vicreg(const ss_cli_problem *p) {
    return ss_vicreg_cache_size(NN, DD, NULL);
}
static ss_status fwd_vicreg(ss_cli_problem *p) {
    return ss_vicreg_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1), NN, DD,
                             NULL);
}
static ss_status bwd_vicreg(ss_cli_problem *p) {
    return ss_vicreg_backward(GR(0), GR(1), 1.0f, p->cache, IN(0), IN(1), NN, DD,
                              NULL);
}

/* TiCo from a zero covariance state that is not updated, so that every rep
 * computes the same loss (torch_ref.py: C_old = 0 likewise). */
static ss_tico_opts tico_opts(void) {
    ss_tico_opts o = ss_tico_defaults();
    o.update = 0;
    return o;
}
static void init_tico(ss_cli_problem *p, ss_rng *rng) {
    init_views(p, rng);
    if (ss_tico_state_create(&p->tico, DD) != SS_OK) {
        p->tico = NULL;
        p->init_failed = 1;
    }
}
static size_t cache_tico(const ss_cli_problem *p) { return ss_tico_cache_size(NN, DD); }
static ss_status fwd_tico(ss_cli_problem *p) {
    ss_tico_opts o = tico_opts();
    return ss_tico_forward(&p->loss_value, NULL, p->cache, p->tico, IN(0), IN(1),
                           NN, DD, &o);
}
static ss_status bwd_tico(ss_cli_problem *p) {
    ss_tico_opts o = tico_opts();
    return ss_tico_backward(GR(0), GR(1), 1.0f, p->cache, IN(0), IN(1), NN, DD, &o);
}

/* W-MSE: sub-batches of 256 rows when that divides N and whitens D
 * dimensions (256 >= 2 D), else the whole batch; identity permutation.
 * torch_ref.py applies the same rule. */
static int64_t wmse_w_size(const ss_cli_shape *s) {
    return s->N % 256 == 0 && 256 >= 2 * s->D ? 256 : s->N;
}
static ss_wmse_opts wmse_opts(const ss_cli_problem *p) {
    ss_wmse_opts o = ss_wmse_defaults();
    o.w_size = wmse_w_size(&p->s);
    return o;
}
static size_t cache_wmse(const ss_cli_problem *p) { return ss_wmse_cache_size(VV, NN, DD); }
static ss_status fwd_wmse(ss_cli_problem *p) {
    ss_wmse_opts o = wmse_opts(p);
    return ss_wmse_forward(&p->loss_value, p->cache, IN(0), NULL, VV, NN, DD, &o);
}
static ss_status bwd_wmse(ss_cli_problem *p) {
    ss_wmse_opts o = wmse_opts(p);
    return ss_wmse_backward(GR(0), 1.0f, p->cache, IN(0), NULL, VV, NN, DD, &o);
}

static size_t cache_hyper(const ss_cli_problem *p) {
    return ss_hypersphere_cache_size(NN, DD);
}
static ss_status fwd_hyper(ss_cli_problem *p) {
    return ss_hypersphere_forward(&p->loss_value, p->cache, IN(0), IN(1), NN, DD, NULL);
}
static ss_status bwd_hyper(ss_cli_problem *p) {
    return ss_hypersphere_backward(GR(0), GR(1), 1.0f, p->cache, IN(0), IN(1), NN, DD,
                                   NULL);
}

static size_t cache_koleo(const ss_cli_problem *p) { return ss_koleo_cache_size(NN, DD); }
static ss_status fwd_koleo(ss_cli_problem *p) {
    return ss_koleo_forward(&p->loss_value, NULL, p->cache, IN(0), NN, DD, NULL);
}
static ss_status bwd_koleo(ss_cli_problem *p) {
    return ss_koleo_backward(GR(0), 1.0f, p->cache, IN(0), NN, DD, NULL);
}

/* MMCR: online (N, V, D) with gradient, momentum (N, V, D) stop-gradient */
static int arrays_mmcr(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->V * s->D, 1);
    a[1] = f32(s->N * s->V * s->D, 0);
    return 2;
}
static size_t cache_mmcr(const ss_cli_problem *p) { return ss_mmcr_cache_size(NN, VV, DD); }
static ss_status fwd_mmcr(ss_cli_problem *p) {
    return ss_mmcr_forward(&p->loss_value, p->cache, IN(0), IN(1), NN, VV, DD, NULL);
}
static ss_status bwd_mmcr(ss_cli_problem *p) {
    return ss_mmcr_backward(GR(0), NULL, 1.0f, p->cache, IN(0), IN(1), NN, VV, DD,
                            NULL);
}

static size_t cache_empssl(const ss_cli_problem *p) {
    return ss_empssl_cache_size(VV, NN, DD);
}
static ss_status fwd_empssl(ss_cli_problem *p) {
    return ss_empssl_forward(&p->loss_value, NULL, p->cache, IN(0), VV, NN, DD, NULL);
}
static ss_status bwd_empssl(ss_cli_problem *p) {
    return ss_empssl_backward(GR(0), 1.0f, p->cache, IN(0), VV, NN, DD, NULL);
}

/* DINO: teacher (2, N, K), student (V, N, K) with gradient, centre (K);
 * teacher temperature 0.04 (after warm-up), student 0.1. */
#define DINO_G 2
#define DINO_TEACHER_TEMP 0.04f
static int arrays_dino(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(DINO_G * s->N * s->K, 0);
    a[1] = f32(s->V * s->N * s->K, 1);
    a[2] = f32(s->K, 0);
    return 3;
}
static void init_center(ss_cli_problem *p, const float *values) {
    if (ss_center_create(&p->center, KK) != SS_OK || ss_center_set(p->center, values) != SS_OK) {
        ss_center_free(p->center);
        p->center = NULL;
        p->init_failed = 1;
    }
}
static void init_dino(ss_cli_problem *p, ss_rng *rng) {
    int64_t nk = NN * KK;
    fill_normal(IN(0), DINO_G * nk, rng);
    for (int64_t v = 0; v < VV; v++)
        fill_view(IN(1) + v * nk, IN(0) + (v % DINO_G) * nk, nk, rng);
    fill_normal(IN(2), KK, rng);
    scale(IN(2), KK, 0.1f);
    init_center(p, IN(2));
}
static size_t cache_dino(const ss_cli_problem *p) {
    return ss_dino_cache_size(DINO_G, VV, NN, KK);
}
static ss_status fwd_dino(ss_cli_problem *p) {
    return ss_dino_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1), p->center,
                           DINO_TEACHER_TEMP, DINO_G, VV, NN, KK, NULL);
}
static ss_status bwd_dino(ss_cli_problem *p) {
    return ss_dino_backward(GR(1), 1.0f, p->cache, IN(0), IN(1), p->center,
                            DINO_TEACHER_TEMP, DINO_G, VV, NN, KK, NULL);
}

/* iBOT: N images of D tokens, 40 % masked per image (MAE's random masking);
 * mask (N, D) u8, teacher (M, K), student (M, K) with gradient, centre (K). */
#define IBOT_MASK_RATIO 0.4
static int arrays_ibot(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = (ss_cli_array){SS_CLI_U8, s->N * s->D, 0};
    a[1] = f32(s->N * s->D * s->K, 0);
    a[2] = f32(s->N * s->D * s->K, 1);
    a[3] = f32(s->K, 0);
    return 4;
}
static void init_ibot(ss_cli_problem *p, ss_rng *rng) {
    uint8_t *mask = p->in[0];
    if (ss_mae_random_mask(mask, NULL, NN, DD, IBOT_MASK_RATIO, rng) != SS_OK)
        memset(mask, 1, (size_t)(NN * DD));
    p->M = 0;
    for (int64_t i = 0; i < NN * DD; i++) p->M += mask[i] != 0;
    p->arr[1].count = p->arr[2].count = p->M * KK;
    fill_normal(IN(1), p->M * KK, rng);
    fill_view(IN(2), IN(1), p->M * KK, rng);
    fill_normal(IN(3), KK, rng);
    scale(IN(3), KK, 0.1f);
    init_center(p, IN(3));
}
static size_t cache_ibot(const ss_cli_problem *p) { return ss_ibot_cache_size(p->M, KK); }
static ss_status fwd_ibot(ss_cli_problem *p) {
    return ss_ibot_forward(&p->loss_value, NULL, p->cache, IN(1), IN(2), p->in[0],
                           p->center, NN, DD, p->M, KK, NULL);
}
static ss_status bwd_ibot(ss_cli_problem *p) {
    return ss_ibot_backward(GR(2), 1.0f, p->cache, IN(1), IN(2), p->in[0], p->center,
                            NN, DD, p->M, KK, NULL);
}

/* SwAV: 2 high-resolution crops (2, N, K) and V - 2 low ones (V - 2, N, K),
 * scores like normalize(x) W^T (|z| < 1), no queue. */
#define SWAV_H 2
static int arrays_swav(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(SWAV_H * s->N * s->K, 1);
    a[1] = f32((s->V - SWAV_H) * s->N * s->K, 1);
    return 2;
}
static void init_swav(ss_cli_problem *p, ss_rng *rng) {
    int64_t nk = NN * KK;
    fill_normal(IN(0), nk, rng);
    fill_view(IN(0) + nk, IN(0), nk, rng);
    for (int64_t v = 0; v < VV - SWAV_H; v++) fill_view(IN(1) + v * nk, IN(0), nk, rng);
    scale(IN(0), SWAV_H * nk, 0.2f);
    scale(IN(1), (VV - SWAV_H) * nk, 0.2f);
}
static size_t cache_swav(const ss_cli_problem *p) {
    return ss_swav_cache_size(SWAV_H, VV - SWAV_H, NN, 0, KK);
}
static ss_status fwd_swav(ss_cli_problem *p) {
    return ss_swav_forward(&p->loss_value, NULL, p->cache, IN(0),
                           VV > SWAV_H ? IN(1) : NULL, NULL, SWAV_H, VV - SWAV_H, NN,
                           0, KK, NULL);
}
static ss_status bwd_swav(ss_cli_problem *p) {
    return ss_swav_backward(GR(0), VV > SWAV_H ? GR(1) : NULL, 1.0f, p->cache, IN(0),
                            VV > SWAV_H ? IN(1) : NULL, NULL, SWAV_H, VV - SWAV_H, NN,
                            0, KK, NULL);
}

/* MSN / PMSN: anchors (V, N, D) and prototypes (K, D) with gradients,
 * targets (N, D) stop-gradient. */
static int arrays_msn(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->V * s->N * s->D, 1);
    a[1] = f32(s->N * s->D, 0);
    a[2] = f32(s->K * s->D, 1);
    return 3;
}
static void init_msn(ss_cli_problem *p, ss_rng *rng) {
    int64_t nd = NN * DD;
    fill_normal(IN(1), nd, rng);
    for (int64_t v = 0; v < VV; v++) fill_view(IN(0) + v * nd, IN(1), nd, rng);
    fill_normal(IN(2), KK * DD, rng);
}
static ss_msn_opts msn_opts(const ss_cli_problem *p) {
    return strcmp(p->loss->name, "pmsn") ? ss_msn_defaults() : ss_pmsn_defaults();
}
static size_t cache_msn(const ss_cli_problem *p) { return ss_msn_cache_size(VV, NN, KK, DD); }
static ss_status fwd_msn(ss_cli_problem *p) {
    ss_msn_opts o = msn_opts(p);
    return ss_msn_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1), IN(2), VV, NN,
                          KK, DD, &o);
}
static ss_status bwd_msn(ss_cli_problem *p) {
    ss_msn_opts o = msn_opts(p);
    return ss_msn_backward(GR(0), GR(2), 1.0f, p->cache, IN(0), IN(1), IN(2), VV, NN,
                           KK, DD, &o);
}

/* MLM: logits (N tokens, K vocabulary) with gradient, targets (N) with 15 %
 * of the tokens scored (BERT's masking rate), the rest ignore_index. */
static int arrays_mlm(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->K, 1);
    a[1] = (ss_cli_array){SS_CLI_I64, s->N, 0};
    return 2;
}
static void fill_targets(int64_t *t, int64_t n, int64_t classes, double scored,
                         ss_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        int64_t y = (int64_t)(ss_rng_u64(rng) % (uint64_t)classes);
        t[i] = i == 0 || ss_rng_uniform(rng) < scored ? y : SS_IGNORE_INDEX;
    }
}
static void init_mlm(ss_cli_problem *p, ss_rng *rng) {
    fill_normal(IN(0), NN * KK, rng);
    scale(IN(0), NN * KK, 2.0f);
    fill_targets(p->in[1], NN, KK, 0.15, rng);
}
static size_t cache_mlm(const ss_cli_problem *p) { return ss_mlm_cache_size(NN, KK); }
static ss_status fwd_mlm(ss_cli_problem *p) {
    return ss_mlm_forward(&p->loss_value, NULL, p->cache, IN(0), p->in[1], NN, KK, NULL);
}
static ss_status bwd_mlm(ss_cli_problem *p) {
    return ss_mlm_backward(GR(0), 1.0f, p->cache, IN(0), p->in[1], NN, KK, NULL);
}

/* Fused linear + CE: hidden (N, D), weight (K, D), bias (K), all with
 * gradients; targets (N), every token scored (a causal-LM head). */
static int arrays_fused_ce(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->D, 1);
    a[1] = f32(s->K * s->D, 1);
    a[2] = f32(s->K, 1);
    a[3] = (ss_cli_array){SS_CLI_I64, s->N, 0};
    return 4;
}
static void init_fused_ce(ss_cli_problem *p, ss_rng *rng) {
    fill_normal(IN(0), NN * DD, rng);
    fill_normal(IN(1), KK * DD, rng);
    scale(IN(1), KK * DD, (float)(1.0 / sqrt((double)DD)));
    fill_normal(IN(2), KK, rng);
    scale(IN(2), KK, 0.1f);
    fill_targets(p->in[3], NN, KK, 1.0, rng);
}
static size_t cache_fused_ce(const ss_cli_problem *p) {
    return ss_fused_ce_cache_size(NN, DD, KK);
}
static ss_status fwd_fused_ce(ss_cli_problem *p) {
    return ss_fused_ce_forward(&p->loss_value, NULL, p->cache, IN(0), IN(1), IN(2),
                               p->in[3], NN, DD, KK, NULL);
}
static ss_status bwd_fused_ce(ss_cli_problem *p) {
    return ss_fused_ce_backward(GR(0), GR(1), GR(2), 1.0f, p->cache, IN(0), IN(1),
                                IN(2), p->in[3], NN, DD, KK, NULL);
}

/* Reconstruction: MSE, mean, over N x D values; pred has the gradient. */
static int arrays_recon(const ss_cli_shape *s, ss_cli_array *a) {
    a[0] = f32(s->N * s->D, 1);
    a[1] = f32(s->N * s->D, 0);
    return 2;
}
static size_t cache_none(const ss_cli_problem *p) {
    (void)p;
    return 1;
}
static ss_status fwd_recon(ss_cli_problem *p) {
    ss_recon_opts o = ss_recon_defaults(SS_RECON_MSE);
    return ss_recon_forward(&p->loss_value, NULL, IN(0), IN(1), NULL, NN * DD, &o);
}
static ss_status bwd_recon(ss_cli_problem *p) {
    ss_recon_opts o = ss_recon_defaults(SS_RECON_MSE);
    return ss_recon_backward(GR(0), NULL, 1.0f, NULL, IN(0), IN(1), NULL, NN * DD, &o);
}

/* MAE: N RGB images D x D, patches of gcd(D, 16) pixels a side (16 when D
 * is a multiple of 16), 75 % masked (MAE's random masking), norm_pix.
 * imgs (N, 3, D, D), pred (N, L, P) with gradient, mask (N, L) u8. */
#define MAE_C 3
static int64_t mae_patch(int64_t D) {
    int64_t a = D, b = 16;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}
static int arrays_mae(const ss_cli_shape *s, ss_cli_array *a) {
    int64_t pz = mae_patch(s->D), L = (s->D / pz) * (s->D / pz);
    a[0] = f32(s->N * MAE_C * s->D * s->D, 0);
    a[1] = f32(s->N * L * pz * pz * MAE_C, 1);
    a[2] = (ss_cli_array){SS_CLI_U8, s->N * L, 0};
    return 3;
}
static void init_mae(ss_cli_problem *p, ss_rng *rng) {
    p->M = mae_patch(DD);
    fill_normal(IN(0), p->arr[0].count, rng);
    fill_normal(IN(1), p->arr[1].count, rng);
    int64_t L = p->arr[2].count / NN;
    if (ss_mae_random_mask(p->in[2], NULL, NN, L, 0.75, rng) != SS_OK)
        memset(p->in[2], 1, (size_t)(NN * L));
}
static ss_status fwd_mae(ss_cli_problem *p) {
    return ss_mae_forward(&p->loss_value, NULL, IN(1), IN(0), p->in[2], NN, MAE_C, DD,
                          DD, p->M, NULL);
}
static ss_status bwd_mae(ss_cli_problem *p) {
    return ss_mae_backward(GR(1), 1.0f, IN(1), IN(0), p->in[2], NN, MAE_C, DD, DD,
                           p->M, NULL);
}

/* ---- FLOP models of the SS_CLI_ARRAYS losses ------------------------------ */

static double dmin(double a, double b) { return a < b ? a : b; }
/* Barlow / VICReg: 3 N D^2 MAC in the D x D form, 3 N^2 D in the Gram form;
 * the library picks the Gram form when N < D (SS_MOMENT_AUTO). */
static double macs_moment(const ss_cli_shape *s) {
    double n = (double)s->N, d = (double)s->D;
    return 3.0 * n * d * dmin(n, d);
}
/* two views, each a flash-symmetric pass: 2 N^2 D */
static double macs_hyper(const ss_cli_shape *s) {
    return 4.0 * (double)s->N * (double)s->N * (double)s->D;
}
/* nearest-neighbour search: the symmetric Gram matrix; backward is O(N D) */
static double macs_koleo(const ss_cli_shape *s) {
    return 0.5 * (double)s->N * (double)s->N * (double)s->D;
}
/* TiCo: a^T a (N D^2 / 2, symmetric), a C (N D^2), backward: 2 N D^2 */
static double macs_tico(const ss_cli_shape *s) {
    return 3.5 * (double)s->N * (double)s->D * (double)s->D;
}
/* EMP-SSL: per view the Gram form, min(N, D) wide: fwd N D m / 2, bwd 2 N D m */
static double macs_empssl(const ss_cli_shape *s) {
    double n = (double)s->N, d = (double)s->D;
    return 2.5 * (double)s->V * n * d * dmin(n, d);
}
/* MSN: scores of V N anchors and N targets against K prototypes; backward
 * dA and dW over the anchors */
static double macs_msn(const ss_cli_shape *s) {
    double vn = (double)s->V * (double)s->N;
    return (3.0 * vn + (double)s->N) * (double)s->K * (double)s->D;
}
/* fused CE: logits N K D fwd, recompute + dH + dW bwd */
static double macs_fused_ce(const ss_cli_shape *s) {
    return 4.0 * (double)s->N * (double)s->K * (double)s->D;
}

/* the contrastive losses: fixed layouts, the command's default sizes */
#define CONTRAST_TAIL NULL, NULL, NULL, {0, 0, 0, 0}, {0, 0, 0, 0}
#define STACKED_MODEL "2 M^2 D MAC, M = V N (flash-symmetric)"
#define MOMENT_MODEL "3 N D min(N, D) MAC: D x D form 3 N D^2 when N >= D, " \
    "Gram form 3 N^2 D when N < D (the library's choice)"
#define MSN_MODEL "(3 V N + N) K D MAC (scores fwd; dA, dW bwd)"
#define PAIR_MODEL "4 N^2 D MAC (one tile pass fwd, recompute + 2 GEMMs bwd)"

const ss_cli_loss ss_cli_losses[] = {
    {"ntxent", "lightly NTXentLoss (V = 2; SupCon form with sample ids for V > 2)",
     SS_CLI_STACKED, 0, 2, 64, STACKED_MODEL, macs_stacked, cache_ntxent,
     fwd_ntxent, bwd_ntxent,
     CONTRAST_TAIL},
    {"supcon", "pytorch-metric-learning SupConLoss, N/4 classes",
     SS_CLI_STACKED, 1, 1, 64, STACKED_MODEL, macs_stacked, cache_supcon,
     fwd_supcon, bwd_supcon,
     CONTRAST_TAIL},
    {"moco", "lightly NTXentLoss(memory_bank_size=K), keys stop-gradient",
     SS_CLI_QUEUE, 0, 2, 2, "3 N K D MAC (queue gets no gradient)", macs_queue,
     cache_moco, fwd_moco, bwd_moco,
     CONTRAST_TAIL},
    {"clip", "OpenCLIP ClipLoss, learnable logit scale", SS_CLI_PAIR, 0, 2, 2,
     PAIR_MODEL, macs_pair, cache_clip, fwd_clip, bwd_clip,
     CONTRAST_TAIL},
    {"siglip", "big_vision sigmoid loss, learnable t and bias", SS_CLI_PAIR, 0,
     2, 2, PAIR_MODEL, macs_pair, cache_siglip, fwd_siglip, bwd_siglip,
     CONTRAST_TAIL},
    {"dcl", "lightly DCLLoss (V > 2: mean over pairs of views)", SS_CLI_STACKED,
     0, 2, 64, STACKED_MODEL, macs_stacked, cache_dcl, fwd_dcl, bwd_dcl,
     CONTRAST_TAIL},
    {"dclw", "lightly DCLWLoss, sigma 0.5", SS_CLI_STACKED, 0, 2, 2, STACKED_MODEL,
     macs_stacked, cache_dcl, fwd_dcl, bwd_dcl,
     CONTRAST_TAIL},
    /* redundancy reduction */
    {"negcos", "lightly NegativeCosineSimilarity, SimSiam symmetric form, "
     "z stop-gradient", SS_CLI_ARRAYS, 0, 1, 64, NULL, NULL, cache_negcos, fwd_negcos,
     bwd_negcos, arrays_negcos, init_views, "ND", {2, 8192, 2048, 1},
     {2, 4096, 512, 1}},
    {"barlow", "lightly BarlowTwinsLoss, lambda 5e-3", SS_CLI_ARRAYS, 0, 1, 64,
     MOMENT_MODEL, macs_moment, cache_barlow, fwd_barlow, bwd_barlow, arrays_pair2,
     init_views, "ND", {2, 2048, 2048, 1}, {2, 1024, 1024, 1}},
    {"vicreg", "lightly VICRegLoss, 25/25/1", SS_CLI_ARRAYS, 0, 1, 64, MOMENT_MODEL,
     macs_moment, cache_vicreg, fwd_vicreg, bwd_vicreg, arrays_pair2, init_views, "ND",
     {2, 2048, 2048, 1}, {2, 1024, 1024, 1}},
    /* geometry */
    {"tico", "lightly TiCoLoss, beta 0.9 rho 8, from a zero covariance",
     SS_CLI_ARRAYS, 0, 1, 64, "3.5 N D^2 MAC (a^T a sym., a C, 2 bwd GEMMs)", macs_tico,
     cache_tico, fwd_tico, bwd_tico, arrays_pair2, init_tico, "ND", {2, 2048, 1024, 1},
     {2, 1024, 512, 1}},
    {"wmse", "lightly WMSELoss, w_size 256 (or N), w_iter 1, identity permutation",
     SS_CLI_ARRAYS, 0, 2, 64, NULL, NULL, cache_wmse, fwd_wmse, bwd_wmse,
     arrays_stacked1, init_stacked, "VND", {2, 1024, 64, 1}, {2, 512, 64, 1}},
    {"hypersphere", "Wang & Isola align + uniform (lightly-style, torch.pdist)",
     SS_CLI_ARRAYS, 0, 1, 64, "4 N^2 D MAC (two flash-symmetric passes)", macs_hyper,
     cache_hyper, fwd_hyper, bwd_hyper, arrays_pair2, init_views, "ND",
     {2, 4096, 128, 1}, {2, 2048, 128, 1}},
    {"koleo", "DINOv2 KoLeoLoss (mean)", SS_CLI_ARRAYS, 0, 1, 64,
     "N^2 D / 2 MAC (symmetric Gram for the neighbours; bwd O(N D))", macs_koleo,
     cache_koleo, fwd_koleo, bwd_koleo, arrays_single, init_views, "ND",
     {2, 4096, 128, 1}, {2, 2048, 128, 1}},
    {"mmcr", "lightly MMCRLoss, lambda 5e-3, online + momentum (stop-gradient)",
     SS_CLI_ARRAYS, 0, 1, 64, NULL, NULL, cache_mmcr, fwd_mmcr, bwd_mmcr, arrays_mmcr,
     init_views, "VND", {8, 512, 128, 1}, {4, 256, 128, 1}},
    {"empssl", "EMP-SSL official TotalCodingRate (-R) + 200 x invariance",
     SS_CLI_ARRAYS, 0, 1, 64, "2.5 V N D min(N, D) MAC (Gram form; Cholesky left out)",
     macs_empssl, cache_empssl, fwd_empssl, bwd_empssl, arrays_stacked1, init_stacked,
     "VND", {8, 1024, 256, 1}, {4, 512, 128, 1}},
    /* distillation */
    {"dino", "lightly DINOLoss, 2 global views of V, temps 0.04 / 0.1",
     SS_CLI_ARRAYS, 0, 2, 64, NULL, NULL, cache_dino, fwd_dino, bwd_dino, arrays_dino,
     init_dino, "VNK", {4, 256, 1, 16384}, {4, 128, 1, 4096}},
    {"ibot", "lightly IBOTPatchLoss, N images x D tokens, 40 % masked",
     SS_CLI_ARRAYS, 0, 1, 64, NULL, NULL, cache_ibot, fwd_ibot, bwd_ibot, arrays_ibot,
     init_ibot, "NDK", {2, 32, 196, 8192}, {2, 16, 196, 2048}},
    {"swav", "lightly SwaVLoss, 2 high + V - 2 low crops, 3 Sinkhorn rounds, no queue",
     SS_CLI_ARRAYS, 0, 2, 64, NULL, NULL, cache_swav, fwd_swav, bwd_swav, arrays_swav,
     init_swav, "VNK", {8, 256, 1, 3000}, {4, 256, 1, 1024}},
    {"msn", "lightly MSNLoss, V anchor views, K prototypes", SS_CLI_ARRAYS, 0, 1, 64,
     MSN_MODEL, macs_msn, cache_msn, fwd_msn, bwd_msn, arrays_msn, init_msn, "VNDK",
     {4, 512, 256, 1024}, {2, 256, 256, 1024}},
    {"pmsn", "lightly PMSNLoss (power-law prior 0.25, after lightly#1340)",
     SS_CLI_ARRAYS, 0, 1, 64, MSN_MODEL, macs_msn, cache_msn, fwd_msn, bwd_msn,
     arrays_msn, init_msn, "VNDK", {4, 512, 256, 1024}, {2, 256, 256, 1024}},
    /* predictive */
    {"mlm", "torch cross_entropy, N tokens x K vocabulary, 15 % scored",
     SS_CLI_ARRAYS, 0, 1, 64, NULL, NULL, cache_mlm, fwd_mlm, bwd_mlm, arrays_mlm,
     init_mlm, "NK", {2, 2048, 1, 30522}, {2, 512, 1, 8192}},
    {"fused_ce", "torch Linear + cross_entropy, N tokens, D hidden, K vocabulary",
     SS_CLI_ARRAYS, 0, 1, 64, "4 N K D MAC (logits; bwd recompute, dH, dW)",
     macs_fused_ce, cache_fused_ce, fwd_fused_ce, bwd_fused_ce, arrays_fused_ce,
     init_fused_ce, "NDK", {2, 1024, 768, 32768}, {2, 512, 256, 8192}},
    {"recon", "torch F.mse_loss, mean over N x D values", SS_CLI_ARRAYS, 0, 1, 64,
     NULL, NULL, cache_none, fwd_recon, bwd_recon, arrays_recon, init_views, "ND",
     {2, 4096, 4096, 1}, {2, 1024, 1024, 1}},
    {"mae", "MAE forward_loss, N images 3 x D x D, 16-pixel patches, 75 % masked",
     SS_CLI_ARRAYS, 0, 1, 64, NULL, NULL, cache_none, fwd_mae, bwd_mae, arrays_mae,
     init_mae, "ND", {2, 64, 224, 1}, {2, 16, 224, 1}},
};
const int ss_cli_nlosses = (int)(sizeof ss_cli_losses / sizeof ss_cli_losses[0]);

const ss_cli_loss *ss_cli_loss_find(const char *name) {
    for (int i = 0; i < ss_cli_nlosses; i++)
        if (!strcmp(ss_cli_losses[i].name, name)) return &ss_cli_losses[i];
    return NULL;
}

const char *ss_cli_loss_names(void) {
    static char buf[512];
    if (!buf[0])
        for (int i = 0; i < ss_cli_nlosses; i++) {
            if (i) strcat(buf, ", ");
            strcat(buf, ss_cli_losses[i].name);
        }
    return buf;
}

/* ---- the problem: inputs, gradients, cache -------------------------------- */

static float *alloc_floats(int64_t n) {
    float *p = malloc((size_t)n * sizeof *p);
    if (p) memset(p, 0, (size_t)n * sizeof *p); /* touch: resident from now */
    return p;
}

static void fill_normal(float *x, int64_t n, ss_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)ss_rng_normal(rng);
}

/* dst = src + VIEW_NOISE * noise: a correlated view. */
static void fill_view(float *dst, const float *src, int64_t n, ss_rng *rng) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = src[i] + (float)(VIEW_NOISE * ss_rng_normal(rng));
}

/* Random unit rows, like lightly's and MoCo's initial queue. */
static void fill_unit_rows(float *x, int64_t rows, int64_t D, ss_rng *rng) {
    fill_normal(x, rows * D, rng);
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)x[r * D + d] * x[r * D + d];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int64_t d = 0; d < D; d++) x[r * D + d] *= inv;
    }
}

static void fill_inputs(ss_cli_problem *p, ss_rng *rng) {
    const ss_cli_shape *s = &p->s;
    int64_t nd = s->N * s->D;
    if (p->loss->layout == SS_CLI_STACKED) {
        fill_normal(p->x, nd, rng);
        for (int64_t v = 1; v < s->V; v++) fill_view(p->x + v * nd, p->x, nd, rng);
        if (p->labels) {
            int64_t classes = s->N / 4 > 0 ? s->N / 4 : 1;
            for (int64_t n = 0; n < s->N; n++)
                p->labels[n] = (int64_t)(ss_rng_u64(rng) % (uint64_t)classes);
        }
        return;
    }
    fill_normal(p->x, nd, rng);
    fill_view(p->y, p->x, nd, rng);
    if (p->queue) fill_unit_rows(p->queue, s->K, s->D, rng);
    if (!strcmp(p->loss->name, "clip")) p->scal[0] = CLIP_LOG_SCALE;
    if (!strcmp(p->loss->name, "siglip")) {
        p->scal[0] = SIGLIP_LOG_T;
        p->scal[1] = SIGLIP_BIAS;
    }
}

static size_t dtype_size(ss_cli_dtype t) {
    return t == SS_CLI_F32 ? sizeof(float) : t == SS_CLI_I64 ? sizeof(int64_t) : 1;
}

/* SS_CLI_ARRAYS: the loss's arrays (zeroed, so resident), their gradients,
 * the random contents. 0, or -1 when out of memory. */
static int create_arrays(ss_cli_problem *p, ss_rng *rng) {
    p->narr = p->loss->arrays(&p->s, p->arr);
    for (int i = 0; i < p->narr; i++) {
        size_t bytes = (size_t)p->arr[i].count * dtype_size(p->arr[i].type);
        if (!(p->in[i] = calloc(bytes ? bytes : 1, 1))) return -1;
        memset(p->in[i], 0, bytes); /* calloc may map lazily: touch */
        if (p->arr[i].grad && !(p->grad[i] = alloc_floats(p->arr[i].count ? p->arr[i].count : 1)))
            return -1;
    }
    p->loss->init(p, rng);
    return p->init_failed ? -1 : 0;
}

ss_cli_problem *ss_cli_problem_create(const ss_cli_loss *loss,
                                      const ss_cli_shape *s, uint64_t seed) {
    ss_cli_problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->loss = loss;
    p->s = *s;
    if (loss->layout == SS_CLI_ARRAYS) {
        ss_rng rng;
        ss_rng_seed(&rng, seed);
        if (create_arrays(p, &rng) == 0) return p;
        ss_cli_problem_free(p);
        return NULL;
    }
    int stacked = loss->layout == SS_CLI_STACKED;
    int64_t nx = (stacked ? s->V : 1) * s->N * s->D;
    int ok = (p->x = alloc_floats(nx)) && (p->dx = alloc_floats(nx));
    if (ok && !stacked)
        ok = (p->y = alloc_floats(s->N * s->D)) && (p->dy = alloc_floats(s->N * s->D));
    if (ok && loss->layout == SS_CLI_QUEUE)
        ok = (p->queue = alloc_floats(s->K * s->D)) != NULL;
    if (ok && loss->labels)
        ok = (p->labels = calloc((size_t)s->N, sizeof *p->labels)) != NULL;
    if (!ok) {
        ss_cli_problem_free(p);
        return NULL;
    }
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    fill_inputs(p, &rng);
    return p;
}

double ss_cli_problem_bytes(const ss_cli_loss *loss, const ss_cli_shape *s) {
    if (loss->layout == SS_CLI_ARRAYS) {
        ss_cli_array a[SS_CLI_MAX_ARRAYS];
        int n = loss->arrays(s, a);
        double bytes = 0;
        for (int i = 0; i < n; i++)
            bytes += (double)a[i].count *
                     (double)(dtype_size(a[i].type) + (a[i].grad ? sizeof(float) : 0));
        return bytes;
    }
    double nd = (double)s->N * (double)s->D;
    double floats = loss->layout == SS_CLI_STACKED ? 2.0 * (double)s->V * nd : 4.0 * nd;
    if (loss->layout == SS_CLI_QUEUE) floats += (double)s->K * (double)s->D;
    return floats * sizeof(float) + (loss->labels ? (double)s->N * 8.0 : 0.0);
}

void ss_cli_problem_free(ss_cli_problem *p) {
    if (!p) return;
    free(p->x);
    free(p->dx);
    free(p->y);
    free(p->dy);
    free(p->queue);
    free(p->labels);
    for (int i = 0; i < p->narr; i++) {
        free(p->in[i]);
        free(p->grad[i]);
    }
    ss_tico_state_free(p->tico);
    ss_center_free(p->center);
    free(p->cache);
    free(p);
}

int ss_cli_problem_alloc_cache(ss_cli_problem *p) {
    /* 0 means invalid sizes: the forward call then reports them by name */
    size_t bytes = p->loss->cache_size(p);
    p->cache_bytes = bytes;
    p->cache = malloc(bytes ? bytes : 1);
    if (p->cache) memset(p->cache, 0, bytes ? bytes : 1); /* resident, counted once */
    return p->cache ? 0 : -1;
}

size_t ss_cli_problem_cache_bytes(const ss_cli_problem *p) { return p->cache_bytes; }

ss_status ss_cli_problem_forward(ss_cli_problem *p) { return p->loss->forward(p); }
ss_status ss_cli_problem_backward(ss_cli_problem *p) { return p->loss->backward(p); }
float ss_cli_problem_loss(const ss_cli_problem *p) { return p->loss_value; }

static int write_all(FILE *f, const void *x, size_t bytes) {
    return x && fwrite(x, 1, bytes, f) != bytes ? -1 : 0;
}

int ss_cli_problem_save(const ss_cli_problem *p, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const ss_cli_shape *s = &p->s;
    if (p->loss->layout == SS_CLI_ARRAYS) {
        int bad = 0;
        for (int i = 0; i < p->narr && !bad; i++)
            bad = write_all(f, p->in[i],
                            (size_t)p->arr[i].count * dtype_size(p->arr[i].type));
        if (fclose(f) != 0) bad = 1;
        return bad ? -1 : 0;
    }
    int stacked = p->loss->layout == SS_CLI_STACKED;
    size_t nd = (size_t)(s->N * s->D) * sizeof(float);
    int bad = write_all(f, p->x, stacked ? (size_t)s->V * nd : nd) ||
              write_all(f, p->y, nd) ||
              write_all(f, p->queue, (size_t)(s->K * s->D) * sizeof(float)) ||
              write_all(f, p->labels, (size_t)s->N * sizeof(int64_t));
    if (fclose(f) != 0) bad = 1;
    return bad ? -1 : 0;
}

/* ---- shapes ----------------------------------------------------------------- */

int ss_cli_check_shape(const char *cmd, const ss_cli_loss *loss,
                       const ss_cli_shape *s) {
    if (s->V >= loss->min_views && s->V <= loss->max_views) return 0;
    if (loss->min_views == loss->max_views)
        return ss_cli_usage_error("%s: --views: %s takes exactly %lld views, got %lld",
                                  cmd, loss->name, (long long)loss->min_views,
                                  (long long)s->V);
    return ss_cli_usage_error("%s: --views: %s takes %lld to %lld views, got %lld",
                              cmd, loss->name, (long long)loss->min_views,
                              (long long)loss->max_views, (long long)s->V);
}

ss_cli_shape ss_cli_loss_shape(const ss_cli_loss *loss, const ss_cli_shape *given,
                               int demo) {
    static const ss_cli_shape bench_default = {2, 4096, 128, 16384};
    static const ss_cli_shape demo_default = {2, 2048, 128, 16384};
    ss_cli_shape s = demo ? loss->demo_shape : loss->bench_shape;
    if (s.N < 1) s = demo ? demo_default : bench_default;
    if (given->V >= 1) s.V = given->V;
    if (given->N >= 1) s.N = given->N;
    if (given->D >= 1) s.D = given->D;
    if (given->K >= 1) s.K = given->K;
    return s;
}

const char *ss_cli_fmt_shape(char *buf, size_t n, const ss_cli_loss *loss,
                             const ss_cli_shape *s) {
    if (loss->dims) {
        size_t used = 0;
        buf[0] = '\0';
        for (const char *c = loss->dims; *c && used < n; c++) {
            int64_t v = *c == 'V' ? s->V : *c == 'N' ? s->N : *c == 'D' ? s->D : s->K;
            int w = snprintf(buf + used, n - used, "%s%c=%lld", used ? " " : "", *c,
                             (long long)v);
            used += w > 0 ? (size_t)w : 0;
        }
        return buf;
    }
    if (loss->layout == SS_CLI_STACKED)
        snprintf(buf, n, "V=%lld N=%lld D=%lld", (long long)s->V, (long long)s->N,
                 (long long)s->D);
    else if (loss->layout == SS_CLI_QUEUE)
        snprintf(buf, n, "N=%lld K=%lld D=%lld", (long long)s->N, (long long)s->K,
                 (long long)s->D);
    else
        snprintf(buf, n, "N=%lld D=%lld", (long long)s->N, (long long)s->D);
    return buf;
}
