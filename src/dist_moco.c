/*
 * dist_moco.c - MoCo InfoNCE with a queue over ranks, and the distributed
 * enqueue. Contract: selfsup_comm.h; semantics: docs/DISTRIBUTED.md.
 *
 * A query's logits are its own key and the queue, which is identical on
 * every rank (ss_dist_queue_enqueue keeps it so): nothing is gathered. Each
 * rank runs the single-process loss on its batch (into scratch, so that a
 * failure on any rank writes nothing anywhere), the per-query losses are
 * summed over ranks (one double), and the gradient of the local mean is
 * rescaled to the global mean under the mean convention, world_size N_r /
 * Ntot. The agreement includes a checksum of the queue, so queues that have
 * drifted apart give SS_ERR_PARAM instead of a silently different loss.
 */
#include "comm_internal.h"

#include <string.h>

#define DMOCO_MAGIC 0x314f434f4d445353ull /* "SSDMOCO1" */
#define DMOCO_HDR 64

typedef struct {
    uint64_t magic;
    int64_t N, K, D, Ntot;
    float temperature;
    int32_t cosine;
} dmoco_header;

/* Sum of the queue entries in a fixed order: equal queues give equal sums
 * on every rank. 0 when the local checks failed (the value is not used). */
static double dmoco_queue_sum(const float *queue, int64_t n, ss_status st) {
    double s = 0.0;
    for (int64_t i = 0; st == SS_OK && i < n; i++) s += (double)queue[i];
    return s;
}

/* Re-labels a failure of the single-process call with fn. */
static ss_status dmoco_local(const char *fn, ss_status st) {
    return st == SS_OK ? st : ss__fail(st, fn, "%s", ss_last_error());
}

static ss_status dmoco_agree(const char *fn, ss_status st, int64_t N,
                             int64_t K, int64_t D, const ss_moco_opts *o,
                             double qsum, float dloss, int64_t *Ntot,
                             const ss_comm *c) {
    static const char *const names[] = {"K", "D", "temperature", "cosine",
                                        "queue checksum", "dloss"};
    double vals[6] = {(double)K, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, qsum, (double)dloss};
    int64_t *counts = ss__malloc((size_t)c->size * sizeof(int64_t)), off;
    int64_t dummy[1];
    if (st == SS_OK && !counts)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    st = ss__dist_agree(c, fn, st, vals, names, 6, N, counts ? counts : dummy,
                        &off, Ntot);
    ss__free(counts);
    return st;
}

size_t ss_dist_moco_cache_size(int64_t N, int64_t K, int64_t D) {
    size_t inner = ss_moco_cache_size(N, K, D);
    return inner ? DMOCO_HDR + inner : 0;
}

ss_status ss_dist_moco_forward(float *loss, float *losses, void *cache,
                               const float *q, const float *k,
                               const float *queue, int64_t N, int64_t K,
                               int64_t D, const ss_moco_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_moco_forward";
    SS_TRY(ss_comm_check(comm));
    ss_moco_opts o = opts ? *opts : ss_moco_defaults();
    size_t inner = ss_moco_cache_size(N, K, D);
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !inner) st = dmoco_local(fn, SS_ERR_SIZE);
    void *tmp = st == SS_OK ? ss__malloc(inner) : NULL;
    float *li = st == SS_OK ? ss__malloc((size_t)N * sizeof(float)) : NULL;
    float lloc = 0.0f;
    if (st == SS_OK && (!tmp || !li))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld queries",
                      (long long)N);
    if (st == SS_OK)
        st = dmoco_local(fn, ss_moco_forward(&lloc, li, tmp, q, k, queue, N,
                                             K, D, &o));
    int64_t Ntot = 0;
    st = dmoco_agree(fn, st, N, K, D, &o, dmoco_queue_sum(queue, K * D, st),
                     0.0f, &Ntot, comm);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++) total += (double)li[i];
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    if (st == SS_OK) {
        dmoco_header h;
        memset(&h, 0, sizeof h);
        h.magic = DMOCO_MAGIC, h.N = N, h.K = K, h.D = D, h.Ntot = Ntot;
        h.temperature = o.temperature, h.cosine = o.cosine != 0;
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + DMOCO_HDR, tmp, inner);
        if (losses) memcpy(losses, li, (size_t)N * sizeof(float));
        *loss = (float)(total / (double)Ntot);
    }
    ss__free(tmp), ss__free(li);
    return st;
}

static ss_status dmoco_check_cache(const char *fn, const void *cache,
                                   int64_t N, int64_t K, int64_t D,
                                   const ss_moco_opts *o) {
    dmoco_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic == DMOCO_MAGIC && h.N == N && h.K == K && h.D == D &&
        h.temperature == o->temperature && h.cosine == (o->cosine != 0))
        return SS_OK;
    return ss__fail(SS_ERR_STATE, fn, "cache was not written by "
                    "ss_dist_moco_forward with these sizes and options (N = "
                    "%lld, K = %lld, D = %lld)", (long long)N, (long long)K,
                    (long long)D);
}

ss_status ss_dist_moco_backward(float *dq, float *dk, float dloss,
                                const void *cache, const float *q,
                                const float *k, const float *queue, int64_t N,
                                int64_t K, int64_t D, const ss_moco_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_moco_backward";
    SS_TRY(ss_comm_check(comm));
    ss_moco_opts o = opts ? *opts : ss_moco_defaults();
    ss_status st = ss__check_ptr(fn, "dq", dq);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = dmoco_check_cache(fn, cache, N, K, D, &o);
    /* the gradient of the local mean (dloss 1), into scratch */
    float *g = st == SS_OK ? ss__calloc((size_t)(2 * N * D) * sizeof(float))
                           : NULL;
    if (st == SS_OK && !g)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld",
                      (long long)N, (long long)D);
    if (st == SS_OK)
        st = dmoco_local(fn, ss_moco_backward(g, dk ? g + N * D : NULL, 1.0f,
                                              (const char *)cache + DMOCO_HDR,
                                              q, k, queue, N, K, D, &o));
    int64_t Ntot = 0;
    st = dmoco_agree(fn, st, N, K, D, &o, dmoco_queue_sum(queue, K * D, st),
                     isfinite(dloss) ? dloss : 0.0f, &Ntot, comm);
    dmoco_header h;
    memcpy(&h, cache, sizeof h);
    if (st == SS_OK && h.Ntot != Ntot) /* the same on every rank */
        st = ss__fail(SS_ERR_STATE, fn, "cache was written for a global "
                      "batch of %lld queries, now %lld", (long long)h.Ntot,
                      (long long)Ntot);
    if (st == SS_OK) { /* mean convention: world_size d(sum / Ntot) */
        float s = (float)((double)dloss * comm->size * (double)N /
                          (double)Ntot);
        for (int64_t i = 0; i < N * D; i++) dq[i] += s * g[i];
        for (int64_t i = 0; dk && i < N * D; i++) dk[i] += s * g[N * D + i];
    }
    ss__free(g);
    return st;
}

/* ---- distributed enqueue ------------------------------------------------- */

ss_status ss_dist_queue_enqueue(ss_queue *q, const float *keys, int64_t n,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_queue_enqueue";
    SS_TRY(ss_comm_check(comm));
    ss_status st = ss__check_ptr(fn, "q", q);
    if (st == SS_OK) st = ss__check_ptr(fn, "keys", keys);
    if (st == SS_OK) st = ss__check_size(fn, "n", n, 1);
    int64_t K = ss_queue_len(q), D = ss_queue_dim(q);
    if (st == SS_OK) st = ss__check_product(fn, n, D, 1);
    if (st == SS_OK) st = ss__check_finite(fn, "keys", keys, n * D);
    static const char *const names[] = {"K", "D", "count", "queue checksum"};
    double vals[4] = {(double)K, (double)D, (double)ss_queue_count(q),
                      st == SS_OK ? dmoco_queue_sum(ss_queue_data(q), K * D,
                                                    st) : 0.0};
    int64_t *counts = ss__malloc((size_t)comm->size * sizeof(int64_t));
    int64_t *bytes = ss__malloc((size_t)comm->size * sizeof(int64_t));
    int64_t off = 0, Ntot = 0, dummy[1];
    if (st == SS_OK && (!counts || !bytes))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts",
                      comm->size);
    st = ss__dist_agree(comm, fn, st, vals, names, 4, n,
                        counts ? counts : dummy, &off, &Ntot);
    float *all = NULL;
    if (st == SS_OK) {
        all = ss__check_product(fn, Ntot, D, 1) == SS_OK
                  ? ss__malloc((size_t)(Ntot * D) * sizeof(float)) : NULL;
        st = ss__dist_status(comm, fn, all ? SS_OK : ss__fail(SS_ERR_NOMEM,
                             fn, "no memory for %lld keys", (long long)Ntot));
    }
    if (st == SS_OK) /* rank order: the global batch's key order */
        st = ss__dist_allgather_rows(comm, fn, keys, all, counts, D,
                                     sizeof(float), bytes);
    if (st == SS_OK) st = ss_queue_enqueue(q, all, Ntot);
    ss__free(all), ss__free(counts), ss__free(bytes);
    return st;
}
