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

#define STACKED_MODEL "2 M^2 D MAC, M = V N (flash-symmetric)"
#define PAIR_MODEL "4 N^2 D MAC (one tile pass fwd, recompute + 2 GEMMs bwd)"

const ss_cli_loss ss_cli_losses[] = {
    {"ntxent", "lightly NTXentLoss (V = 2; SupCon form with sample ids for V > 2)",
     SS_CLI_STACKED, 0, 2, 64, STACKED_MODEL, macs_stacked, cache_ntxent,
     fwd_ntxent, bwd_ntxent},
    {"supcon", "pytorch-metric-learning SupConLoss, N/4 classes",
     SS_CLI_STACKED, 1, 1, 64, STACKED_MODEL, macs_stacked, cache_supcon,
     fwd_supcon, bwd_supcon},
    {"moco", "lightly NTXentLoss(memory_bank_size=K), keys stop-gradient",
     SS_CLI_QUEUE, 0, 2, 2, "3 N K D MAC (queue gets no gradient)", macs_queue,
     cache_moco, fwd_moco, bwd_moco},
    {"clip", "OpenCLIP ClipLoss, learnable logit scale", SS_CLI_PAIR, 0, 2, 2,
     PAIR_MODEL, macs_pair, cache_clip, fwd_clip, bwd_clip},
    {"siglip", "big_vision sigmoid loss, learnable t and bias", SS_CLI_PAIR, 0,
     2, 2, PAIR_MODEL, macs_pair, cache_siglip, fwd_siglip, bwd_siglip},
    {"dcl", "lightly DCLLoss (V > 2: mean over pairs of views)", SS_CLI_STACKED,
     0, 2, 64, STACKED_MODEL, macs_stacked, cache_dcl, fwd_dcl, bwd_dcl},
    {"dclw", "lightly DCLWLoss, sigma 0.5", SS_CLI_STACKED, 0, 2, 2, STACKED_MODEL, macs_stacked, cache_dcl, fwd_dcl,
     bwd_dcl},
};
const int ss_cli_nlosses = (int)(sizeof ss_cli_losses / sizeof ss_cli_losses[0]);

const ss_cli_loss *ss_cli_loss_find(const char *name) {
    for (int i = 0; i < ss_cli_nlosses; i++)
        if (!strcmp(ss_cli_losses[i].name, name)) return &ss_cli_losses[i];
    return NULL;
}

const char *ss_cli_loss_names(void) {
    static char buf[256];
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

ss_cli_problem *ss_cli_problem_create(const ss_cli_loss *loss,
                                      const ss_cli_shape *s, uint64_t seed) {
    ss_cli_problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->loss = loss;
    p->s = *s;
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

const char *ss_cli_fmt_shape(char *buf, size_t n, const ss_cli_loss *loss,
                             const ss_cli_shape *s) {
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
