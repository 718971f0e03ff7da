/*
 * tico.c - TiCo (Zhu et al. 2022) as lightly's TiCoLoss, with its running
 * covariance as an explicit, saveable state (selfsup.h).
 *
 * a = normalize(za), b = normalize(zb), P = a^T a / N,
 * C = beta C0 + (1 - beta) P,
 *     loss = 1 - (1/N) sum_i <a_i, b_i> + (rho/N) tr(a C a^T).
 * With C depending on a through P (C0 constant):
 *     dL/da = -b/N + (2 rho / N) a G,  G = beta sym(C0) + 2 (1 - beta) P
 *     dL/db = -a/N
 * (derivation: docs/derivations/tico.md). The cache holds G, so backward
 * is one GEMM plus the normalisation backward.
 */
#include "dist_geometry.h" /* ss__tico_state_commit */
#include "fileio.h"
#include "internal.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

#include <stdlib.h>
#include <string.h>

#define TICO_MAGIC 0x3130434f43495453ull /* "STICOC01" */
#define TICO_FILE_MAGIC "SSTICOC1"
#define TICO_FILE_VERSION 1u
#define TICO_HEADER_BYTES 64
#define TICO_MAX_D ((int64_t)1 << 20) /* D * D stays below SS_MAX_ELEMENTS */

struct ss_tico_state {
    int64_t D, steps;
    float *C; /* (D, D) */
};

typedef struct {
    uint64_t magic;
    int64_t N, D;
    float beta, rho;
} tico_header;

/* ---- state ------------------------------------------------------------------ */

static ss_status state_alloc(ss_tico_state **out, const char *fn, int64_t D) {
    SS_TRY(ss__check_size(fn, "D", D, 1));
    if (D > TICO_MAX_D)
        return ss__fail(SS_ERR_SIZE, fn, "D must be <= %lld, got %lld",
                        (long long)TICO_MAX_D, (long long)D);
    ss_tico_state *s = calloc(1, sizeof *s);
    float *C = s ? ss__calloc((size_t)(D * D) * sizeof(float)) : NULL;
    if (!C) {
        free(s);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a %lld x %lld "
                        "covariance", (long long)D, (long long)D);
    }
    s->D = D, s->C = C;
    *out = s;
    return SS_OK;
}

ss_status ss_tico_state_create(ss_tico_state **out, int64_t D) {
    static const char fn[] = "ss_tico_state_create";
    SS_TRY(ss__check_ptr(fn, "out", out));
    return state_alloc(out, fn, D);
}

void ss_tico_state_free(ss_tico_state *s) {
    if (!s) return;
    ss__free(s->C);
    free(s);
}

int64_t ss_tico_state_dim(const ss_tico_state *s) { return s ? s->D : 0; }
int64_t ss_tico_state_steps(const ss_tico_state *s) { return s ? s->steps : 0; }

ss_status ss_tico_state_read(const ss_tico_state *s, float *C) {
    static const char fn[] = "ss_tico_state_read";
    SS_TRY(ss__check_ptr(fn, "s", s));
    SS_TRY(ss__check_ptr(fn, "C", C));
    memcpy(C, s->C, sizeof(float) * (size_t)(s->D * s->D));
    return SS_OK;
}

ss_status ss_tico_state_write(ss_tico_state *s, const float *C) {
    static const char fn[] = "ss_tico_state_write";
    SS_TRY(ss__check_ptr(fn, "s", s));
    SS_TRY(ss__check_ptr(fn, "C", C));
    SS_TRY(ss__check_finite(fn, "C", C, s->D * s->D));
    memcpy(s->C, C, sizeof(float) * (size_t)(s->D * s->D));
    return SS_OK;
}

ss_status ss_tico_state_save(const ss_tico_state *s, const char *path) {
    static const char fn[] = "ss_tico_state_save";
    SS_TRY(ss__check_ptr(fn, "s", s));
    SS_TRY(ss__check_ptr(fn, "path", path));
    const void *bufs[3] = {&s->D, &s->steps, s->C};
    size_t lens[3] = {sizeof s->D, sizeof s->steps,
                      sizeof(float) * (size_t)(s->D * s->D)};
    return ss__write_atomic(fn, path, TICO_FILE_MAGIC, TICO_FILE_VERSION, bufs,
                            lens, 3);
}

ss_status ss_tico_state_load(ss_tico_state **out, const char *path) {
    static const char fn[] = "ss_tico_state_load";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "path", path));
    ss__reader r;
    SS_TRY(ss__reader_open(&r, fn, path, TICO_FILE_MAGIC, TICO_FILE_VERSION));
    int64_t D = 0, steps = 0;
    ss_tico_state *s = NULL;
    ss_status st = ss__read_i64(&r, &D, 1, TICO_MAX_D, "D");
    if (st == SS_OK) st = ss__read_i64(&r, &steps, 0, INT64_MAX, "steps");
    if (st == SS_OK) st = state_alloc(&s, fn, D);
    if (st == SS_OK) st = ss__read_finite(&r, s->C, D * D, sizeof(float), "C");
    if (st == SS_OK) st = ss__reader_expect_eof(&r);
    ss__reader_close(&r);
    if (st != SS_OK) {
        ss_tico_state_free(s);
        return st;
    }
    s->steps = steps;
    *out = s;
    return SS_OK;
}

/* Declared in dist_geometry.h (the distributed TiCo's state update). */
void ss__tico_state_commit(ss_tico_state *s, const float *C) {
    memcpy(s->C, C, sizeof(float) * (size_t)(s->D * s->D));
    s->steps++;
}

/* ---- loss -------------------------------------------------------------------- */

ss_tico_opts ss_tico_defaults(void) {
    ss_tico_opts o = {0.9f, 8.0f, 1};
    return o;
}

static ss_status tico_check_sizes(const char *fn, int64_t N, int64_t D,
                                  int64_t min_n) {
    SS_TRY(ss__check_size(fn, "N", N, min_n));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    if (D > TICO_MAX_D)
        return ss__fail(SS_ERR_SIZE, fn, "D must be <= %lld, got %lld",
                        (long long)TICO_MAX_D, (long long)D);
    return SS_OK;
}

size_t ss_tico_cache_size(int64_t N, int64_t D) {
    if (tico_check_sizes("ss_tico_cache_size", N, D, 2) != SS_OK) return 0;
    return TICO_HEADER_BYTES + sizeof(float) * (size_t)(D * D);
}

/* Declared in dist_geometry.h: the arguments' checks with N >= min_n. */
ss_status ss__tico_check(const char *fn, const float *za, const float *zb,
                         int64_t N, int64_t min_n, int64_t D,
                         const ss_tico_opts *o) {
    SS_TRY(ss__check_ptr(fn, "za", za));
    SS_TRY(ss__check_ptr(fn, "zb", zb));
    SS_TRY(tico_check_sizes(fn, N, D, min_n));
    if (!(o->beta >= 0.0f && o->beta <= 1.0f))
        return ss__fail(SS_ERR_PARAM, fn, "beta must be in [0, 1], got %g",
                        (double)o->beta);
    if (!isfinite(o->rho))
        return ss__fail(SS_ERR_PARAM, fn, "rho must be finite, got %g",
                        (double)o->rho);
    SS_TRY(ss__check_finite(fn, "za", za, N * D));
    return ss__check_finite(fn, "zb", zb, N * D);
}

/* Declared in dist_geometry.h: *buf = a, b: normalised rows (N, D); sa,
 * sb: their scales (N). */
ss_status ss__tico_normalize(const char *fn, float **buf, const float *za,
                             const float *zb, int64_t N, int64_t D) {
    size_t nd = (size_t)(N * D);
    *buf = ss__malloc(sizeof(float) * (2 * nd + 2 * (size_t)N));
    if (!*buf) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    float *a = *buf, *b = a + nd, *sa = b + nd, *sb = sa + N;
    ss__normalize_rows(a, sa, za, N, D);
    ss__normalize_rows(b, sb, zb, N, D);
    return SS_OK;
}

/* Declared in dist_geometry.h: C = beta C0 + (1 - beta) sym(P) and the
 * backward's G = beta sym(C0) + 2 (1 - beta) sym(P), P = a^T a / N. */
void ss__tico_combine(float *C, float *G, const float *P, const float *C0,
                      int64_t D, double beta) {
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) {
            /* symmetrised: GEMM rounding need not be, the state stays so */
            double p = 0.5 * ((double)P[i * D + j] + P[j * D + i]), c0 = C0[i * D + j];
            C[i * D + j] = (float)(beta * c0 + (1.0 - beta) * p);
            G[i * D + j] = (float)(beta * 0.5 * (c0 + C0[j * D + i]) +
                                   2.0 * (1.0 - beta) * p);
        }
}

/* Declared in dist_geometry.h: sum_i loss_i (losses: (N) or NULL),
 * loss_i = 1 - <a_i, b_i> + rho <(a C)_i, a_i>, aC = a C. */
double ss__tico_losses(float *losses, const float *a, const float *b,
                       const float *aC, int64_t N, int64_t D, double rho) {
    double total = 0.0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : total) num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < N; i++) {
        const float *ai = a + i * D, *bi = b + i * D, *ci = aC + i * D;
        double ab = 0.0, aca = 0.0;
        for (int64_t d = 0; d < D; d++)
            ab += (double)ai[d] * bi[d], aca += (double)ci[d] * ai[d];
        double li = 1.0 - ab + rho * aca;
        if (losses) losses[i] = (float)li;
        total += li;
    }
    return total;
}

/* Declared in dist_geometry.h: dza (and dzb unless NULL) += the gradient
 * for dL/da = 2 rho s a G - s b, dL/db = -s a (s = dloss / N), through the
 * normalisation. buf: ss__tico_normalize's; g: 2 N D floats scratch. */
void ss__tico_grad(float *dza, float *dzb, const float *buf, float *g,
                   const float *G, const float *za, const float *zb, int64_t N,
                   int64_t D, double rho, float s) {
    size_t nd = (size_t)(N * D);
    const float *a = buf, *b = a + nd, *sa = b + nd, *sb = sa + N;
    float *ga = g, *gb = g + nd;
    ss__sgemm_threaded(0, 0, N, D, D, 2.0f * (float)rho * s, a, D, G, D, 0.0f,
                       ga, D);
    for (size_t i = 0; i < nd; i++) ga[i] -= s * b[i], gb[i] = -s * a[i];
    ss__normalize_backward(dza, ga, a, sa, za, N, D);
    if (dzb) ss__normalize_backward(dzb, gb, b, sb, zb, N, D);
}

ss_status ss_tico_forward(float *loss, float *losses, void *cache,
                          ss_tico_state *state, const float *za,
                          const float *zb, int64_t N, int64_t D,
                          const ss_tico_opts *opts) {
    static const char fn[] = "ss_tico_forward";
    ss_tico_opts o = opts ? *opts : ss_tico_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__check_ptr(fn, "state", state));
    SS_TRY(ss__tico_check(fn, za, zb, N, 2, D, &o));
    if (state->D != D)
        return ss__fail(SS_ERR_SIZE, fn, "state has dimension %lld, inputs D=%lld",
                        (long long)state->D, (long long)D);
    size_t nd = (size_t)(N * D), dd = (size_t)(D * D);
    float *buf;
    SS_TRY(ss__tico_normalize(fn, &buf, za, zb, N, D));
    float *a = buf, *b = a + nd;
    float *work = ss__malloc(sizeof(float) * (2 * dd + nd));
    if (!work) {
        ss__free(buf);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    }
    float *P = work, *C = P + dd, *aC = C + dd;
    ss__sgemm_threaded(1, 0, D, D, N, 1.0f / (float)N, a, D, a, D, 0.0f, P, D);
    float *G = (float *)((char *)cache + TICO_HEADER_BYTES);
    ss__tico_combine(C, G, P, state->C, D, o.beta);
    ss__sgemm_threaded(0, 0, N, D, D, 1.0f, a, D, C, D, 0.0f, aC, D);
    double total = ss__tico_losses(losses, a, b, aC, N, D, o.rho);
    tico_header h = {TICO_MAGIC, N, D, o.beta, o.rho};
    memcpy(cache, &h, sizeof h);
    if (o.update) ss__tico_state_commit(state, C);
    *loss = (float)(total / (double)N);
    ss__free(work);
    ss__free(buf);
    return SS_OK;
}

ss_status ss_tico_backward(float *dza, float *dzb, float dloss,
                           const void *cache, const float *za,
                           const float *zb, int64_t N, int64_t D,
                           const ss_tico_opts *opts) {
    static const char fn[] = "ss_tico_backward";
    ss_tico_opts o = opts ? *opts : ss_tico_defaults();
    SS_TRY(ss__check_ptr(fn, "dza", dza));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__tico_check(fn, za, zb, N, 2, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    tico_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != TICO_MAGIC || h.N != N || h.D != D || h.beta != o.beta ||
        h.rho != o.rho)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_tico_forward with these "
                        "sizes and options");
    size_t nd = (size_t)(N * D);
    float *buf;
    SS_TRY(ss__tico_normalize(fn, &buf, za, zb, N, D));
    float *g = ss__malloc(sizeof(float) * 2 * nd);
    if (!g) {
        ss__free(buf);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    }
    const float *G = (const float *)((const char *)cache + TICO_HEADER_BYTES);
    ss__tico_grad(dza, dzb, buf, g, G, za, zb, N, D, o.rho, dloss / (float)N);
    ss__free(g);
    ss__free(buf);
    return SS_OK;
}
