/*
 * dino.c - the teacher centre (state shared with iBOT) and the DINO loss.
 *
 * DINO's inputs are already logits (G, N, K) and (V, N, K); there is no
 * similarity matrix. Per sample n the teacher softmaxes P_gn are summed
 * once, so that every student view sees Pbar_vn = sum_{g != v} P_gn and the
 * G x V pair loop costs O((G + V) K) per sample instead of O(G V K).
 */
#include "distill.h"
#include "fileio.h"

#include <string.h>

/* ---- centre state ---------------------------------------------------------- */

struct ss_center {
    int64_t K;
    int64_t pending; /* rows accumulated since the last update */
    float *value;    /* (K) */
    double *sum;     /* (K) pending row sum */
};

static const char CENTER_MAGIC[8] = {'S', 'S', 'C', 'E', 'N', 'T', 'R', '1'};
#define CENTER_VERSION 1u

static ss_status center_alloc(ss_center **out, const char *fn, int64_t K) {
    ss_center *c = calloc(1, sizeof *c);
    if (c) {
        c->K = K;
        c->value = ss__calloc(sizeof(float) * (size_t)K);
        c->sum = ss__calloc(sizeof(double) * (size_t)K);
    }
    if (!c || !c->value || !c->sum) {
        ss_center_free(c);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a centre of K = %lld",
                        (long long)K);
    }
    *out = c;
    return SS_OK;
}

ss_status ss_center_create(ss_center **out, int64_t K) {
    static const char fn[] = "ss_center_create";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    return center_alloc(out, fn, K);
}

void ss_center_free(ss_center *c) {
    if (!c) return;
    ss__free(c->value);
    ss__free(c->sum);
    free(c);
}

double *ss__center_pending_sum(ss_center *c) { return c->sum; }
int64_t *ss__center_pending_rows(ss_center *c) { return &c->pending; }

int64_t ss_center_dim(const ss_center *c) { return c ? c->K : 0; }
const float *ss_center_data(const ss_center *c) { return c ? c->value : NULL; }
int64_t ss_center_pending(const ss_center *c) { return c ? c->pending : 0; }

ss_status ss_center_set(ss_center *c, const float *values) {
    static const char fn[] = "ss_center_set";
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "values", values));
    SS_TRY(ss__check_finite(fn, "values", values, c->K));
    memcpy(c->value, values, sizeof(float) * (size_t)c->K);
    return SS_OK;
}

ss_status ss_center_accumulate(ss_center *c, const float *x, int64_t rows) {
    static const char fn[] = "ss_center_accumulate";
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(ss__check_size(fn, "rows", rows, 1));
    SS_TRY(ss__check_product(fn, rows, c->K, 1));
    SS_TRY(ss__check_finite(fn, "x", x, rows * c->K));
    int64_t K = c->K;
    /* columns in parallel, rows in order: independent of the thread count */
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (rows * K >= SS__PAR_MIN)
    for (int64_t k = 0; k < K; k++) {
        double s = 0.0;
        for (int64_t r = 0; r < rows; r++) s += x[r * K + k];
        c->sum[k] += s;
    }
    c->pending += rows;
    return SS_OK;
}

ss_status ss_center_update(ss_center *c, float momentum) {
    static const char fn[] = "ss_center_update";
    SS_TRY(ss__check_ptr(fn, "c", c));
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return ss__fail(SS_ERR_PARAM, fn, "momentum must be in [0, 1], got %g",
                        (double)momentum);
    if (c->pending == 0) return SS_OK;
    double m = momentum, inv = 1.0 / (double)c->pending;
    for (int64_t k = 0; k < c->K; k++) {
        c->value[k] = (float)(m * c->value[k] + (1.0 - m) * (c->sum[k] * inv));
        c->sum[k] = 0.0;
    }
    c->pending = 0;
    return SS_OK;
}

ss_status ss_center_save(const ss_center *c, const char *path) {
    static const char fn[] = "ss_center_save";
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "path", path));
    int64_t head[2] = {c->K, c->pending};
    const void *bufs[3] = {head, c->value, c->sum};
    size_t lens[3] = {sizeof head, sizeof(float) * (size_t)c->K,
                      sizeof(double) * (size_t)c->K};
    return ss__write_atomic(fn, path, CENTER_MAGIC, CENTER_VERSION, bufs, lens,
                            3);
}

/* The payload left must be K floats and K doubles: checked before allocating
 * so that a corrupt K cannot ask for terabytes. */
static ss_status check_remaining(ss__reader *r, int64_t K) {
    long here = ftell(r->f);
    if (here < 0 || fseek(r->f, 0, SEEK_END) != 0)
        return ss__fail(SS_ERR_IO, r->fn, "%s: cannot seek", r->path);
    long end = ftell(r->f);
    if (fseek(r->f, here, SEEK_SET) != 0)
        return ss__fail(SS_ERR_IO, r->fn, "%s: cannot seek", r->path);
    if ((uint64_t)(end - here) < (uint64_t)K * 12u)
        return ss__fail(SS_ERR_FORMAT, r->fn,
                        "%s: K = %lld needs %lld payload bytes after byte "
                        "offset %ld, the file has %ld (truncated)",
                        r->path, (long long)K, (long long)K * 12, r->off,
                        end - here);
    return SS_OK;
}

ss_status ss_center_load(ss_center **out, const char *path) {
    static const char fn[] = "ss_center_load";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "path", path));
    ss__reader r;
    SS_TRY(ss__reader_open(&r, fn, path, CENTER_MAGIC, CENTER_VERSION));
    int64_t K = 0, pending = 0;
    ss_center *c = NULL;
    ss_status st = ss__read_i64(&r, &K, 1, SS_MAX_ELEMENTS / 16, "K");
    if (st == SS_OK) st = ss__read_i64(&r, &pending, 0, INT64_MAX, "pending rows");
    if (st == SS_OK) st = check_remaining(&r, K);
    if (st == SS_OK) st = center_alloc(&c, fn, K);
    if (st == SS_OK) st = ss__read_finite(&r, c->value, K, sizeof(float), "centre");
    if (st == SS_OK) st = ss__read_finite(&r, c->sum, K, sizeof(double), "pending sum");
    if (st == SS_OK) st = ss__reader_expect_eof(&r);
    ss__reader_close(&r);
    if (st != SS_OK) {
        ss_center_free(c);
        return st;
    }
    c->pending = pending;
    *out = c;
    return SS_OK;
}

/* ---- DINO --------------------------------------------------------------------- */

ss_dino_opts ss_dino_defaults(void) {
    ss_dino_opts o = {0.1f, 0.04f, 0.04f, 30, 0.9f};
    return o;
}

static ss_status check_dino_opts(const char *fn, const ss_dino_opts *o) {
    SS_TRY(ss__check_positive(fn, "student_temp", o->student_temp));
    SS_TRY(ss__check_positive(fn, "teacher_temp", o->teacher_temp));
    SS_TRY(ss__check_positive(fn, "warmup_teacher_temp", o->warmup_teacher_temp));
    if (o->warmup_teacher_temp_epochs < 0)
        return ss__fail(SS_ERR_PARAM, fn,
                        "warmup_teacher_temp_epochs must be >= 0, got %lld",
                        (long long)o->warmup_teacher_temp_epochs);
    if (!(o->center_momentum >= 0.0f && o->center_momentum <= 1.0f))
        return ss__fail(SS_ERR_PARAM, fn,
                        "center_momentum must be in [0, 1], got %g",
                        (double)o->center_momentum);
    return SS_OK;
}

ss_status ss_dino_teacher_temp(float *temp, int64_t epoch,
                               const ss_dino_opts *opts) {
    static const char fn[] = "ss_dino_teacher_temp";
    ss_dino_opts o = opts ? *opts : ss_dino_defaults();
    SS_TRY(ss__check_ptr(fn, "temp", temp));
    SS_TRY(check_dino_opts(fn, &o));
    if (epoch < 0)
        return ss__fail(SS_ERR_PARAM, fn, "epoch must be >= 0, got %lld",
                        (long long)epoch);
    int64_t W = o.warmup_teacher_temp_epochs;
    if (epoch >= W) {
        *temp = o.teacher_temp;
    } else if (W == 1) {
        *temp = o.warmup_teacher_temp;
    } else { /* torch.linspace(warmup, teacher, steps = W)[epoch] */
        double a = o.warmup_teacher_temp, b = o.teacher_temp;
        *temp = (float)(a + (b - a) * (double)epoch / (double)(W - 1));
    }
    return SS_OK;
}

/* Cache: double lse_t[G N] of (teacher - c) / teacher_temp, lse_s[V N]. */
size_t ss_dino_cache_size(int64_t G, int64_t V, int64_t N, int64_t K) {
    static const char fn[] = "ss_dino_cache_size";
    if (ss__check_size(fn, "G", G, 1) || ss__check_size(fn, "V", V, 1) ||
        ss__check_size(fn, "N", N, 1) || ss__check_size(fn, "K", K, 1) ||
        ss__check_product(fn, G + V, N, K))
        return 0;
    return sizeof(double) * (size_t)((G + V) * N);
}

typedef struct {
    const float *teacher, *student, *center;
    double tt, ts; /* temperatures */
    int64_t G, V, N, K, n_terms;
} dino_args;

static ss_status dino_check(const char *fn, const float *teacher,
                            const float *student, const ss_center *c,
                            float teacher_temp, int64_t G, int64_t V,
                            int64_t N, int64_t K, const ss_dino_opts *o,
                            dino_args *a) {
    SS_TRY(ss__check_ptr(fn, "teacher", teacher));
    SS_TRY(ss__check_ptr(fn, "student", student));
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_size(fn, "G", G, 1));
    SS_TRY(ss__check_size(fn, "V", V, 1));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_product(fn, G + V, N, K));
    int64_t n_terms = G * V - (G < V ? G : V);
    if (n_terms < 1)
        return ss__fail(SS_ERR_SIZE, fn,
                        "need two views in total (the same-view pair is "
                        "skipped), got G = %lld, V = %lld",
                        (long long)G, (long long)V);
    if (c->K != K)
        return ss__fail(SS_ERR_SIZE, fn, "centre dimension %lld != K = %lld",
                        (long long)c->K, (long long)K);
    SS_TRY(check_dino_opts(fn, o));
    SS_TRY(ss__check_positive(fn, "teacher_temp", teacher_temp));
    SS_TRY(ss__check_finite(fn, "teacher", teacher, G * N * K));
    SS_TRY(ss__check_finite(fn, "student", student, V * N * K));
    *a = (dino_args){teacher, student, c->value, teacher_temp, o->student_temp,
                     G, V, N, K, n_terms};
    return SS_OK;
}

/* Teacher probabilities of sample n into P: (G, K) and their sum into Pt. */
static void teacher_probs(const dino_args *a, int64_t n, const double *lse_t,
                          double *P, double *Pt) {
    int64_t K = a->K;
    for (int64_t k = 0; k < K; k++) Pt[k] = 0.0;
    for (int64_t g = 0; g < a->G; g++) {
        const float *t = a->teacher + (g * a->N + n) * K;
        double l = lse_t[g * a->N + n], *p = P + g * K;
        for (int64_t k = 0; k < K; k++) {
            p[k] = exp(((double)t[k] - a->center[k]) / a->tt - l);
            Pt[k] += p[k];
        }
    }
}

static void dino_lse(const dino_args *a, double *lse_t, double *lse_s) {
    int64_t N = a->N, K = a->K, R = (a->G + a->V) * N;
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (R * K >= SS__PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        int teach = r < a->G * N;
        const float *x = teach ? a->teacher + r * K : a->student + (r - a->G * N) * K;
        double m = -INFINITY, s = 0.0;
        for (int64_t k = 0; k < K; k++) {
            double z = teach ? ((double)x[k] - a->center[k]) / a->tt : x[k] / a->ts;
            m = fmax(m, z);
        }
        for (int64_t k = 0; k < K; k++) {
            double z = teach ? ((double)x[k] - a->center[k]) / a->tt : x[k] / a->ts;
            s += exp(z - m);
        }
        if (teach) lse_t[r] = m + log(s);
        else lse_s[r - a->G * N] = m + log(s);
    }
}

ss_status ss_dino_forward(float *loss, float *losses, void *cache,
                          const float *teacher, const float *student,
                          const ss_center *c, float teacher_temp, int64_t G,
                          int64_t V, int64_t N, int64_t K,
                          const ss_dino_opts *opts) {
    static const char fn[] = "ss_dino_forward";
    ss_dino_opts o = opts ? *opts : ss_dino_defaults();
    dino_args a;
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(dino_check(fn, teacher, student, c, teacher_temp, G, V, N, K, &o, &a));
    int nt = ss__threads();
    double *ws = ss__malloc(sizeof(double) * (size_t)(nt * (G + 1) * K));
    double *per = ss__malloc(sizeof(double) * (size_t)N);
    if (!ws || !per) {
        ss__free(ws), ss__free(per);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    }
    double *lse_t = cache, *lse_s = lse_t + G * N;
    dino_lse(&a, lse_t, lse_s);
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (N * (G + V) * K >= SS__PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        double *P = ws + (int64_t)ss__thread_id() * (G + 1) * K, *Pt = P + G * K;
        teacher_probs(&a, n, lse_t, P, Pt);
        double l = 0.0;
        for (int64_t v = 0; v < V; v++) {
            const float *s = student + (v * N + n) * K;
            const double *Pg = v < G ? P + v * K : NULL;
            double ls = lse_s[v * N + n];
            for (int64_t k = 0; k < K; k++) {
                double pbar = Pt[k] - (Pg ? Pg[k] : 0.0);
                l -= pbar * (s[k] / a.ts - ls);
            }
        }
        per[n] = l / (double)a.n_terms;
    }
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total += per[n];
    if (losses)
        for (int64_t n = 0; n < N; n++) losses[n] = (float)per[n];
    *loss = (float)(total / (double)N);
    ss__free(ws), ss__free(per);
    return SS_OK;
}

ss_status ss_dino_backward(float *dstudent, float dloss, const void *cache,
                           const float *teacher, const float *student,
                           const ss_center *c, float teacher_temp, int64_t G,
                           int64_t V, int64_t N, int64_t K,
                           const ss_dino_opts *opts) {
    static const char fn[] = "ss_dino_backward";
    ss_dino_opts o = opts ? *opts : ss_dino_defaults();
    dino_args a;
    SS_TRY(ss__check_ptr(fn, "dstudent", dstudent));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(dino_check(fn, teacher, student, c, teacher_temp, G, V, N, K, &o, &a));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    int nt = ss__threads();
    double *ws = ss__malloc(sizeof(double) * (size_t)(nt * (G + 1) * K));
    if (!ws) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    const double *lse_t = cache, *lse_s = lse_t + G * N;
    double scale = (double)dloss / ((double)a.n_terms * (double)N * a.ts);
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (N * (G + V) * K >= SS__PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        double *P = ws + (int64_t)ss__thread_id() * (G + 1) * K, *Pt = P + G * K;
        teacher_probs(&a, n, lse_t, P, Pt);
        for (int64_t v = 0; v < V; v++) {
            const float *s = student + (v * N + n) * K;
            float *ds = dstudent + (v * N + n) * K;
            const double *Pg = v < G ? P + v * K : NULL;
            double cnt = (double)(G - (v < G)), ls = lse_s[v * N + n];
            /* d/ds of -<Pbar, log_softmax(s / ts)> = (cnt softmax - Pbar) / ts */
            for (int64_t k = 0; k < K; k++) {
                double pbar = Pt[k] - (Pg ? Pg[k] : 0.0);
                ds[k] += (float)(scale * (cnt * exp(s[k] / a.ts - ls) - pbar));
            }
        }
    }
    ss__free(ws);
    return SS_OK;
}
