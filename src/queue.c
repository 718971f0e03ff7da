/* queue.c - the MoCo negative queue: a ring buffer of K keys (K, D) with
 * atomic, versioned save / load.
 *
 * File format (little-endian), version 1:
 *   offset  0  magic "SSQUEUE1"
 *   offset  8  u32 version (1), u32 reserved (0)
 *   offset 16  i64 K, i64 D, i64 write pointer (0 <= ptr < K), i64 count
 *   offset 48  K * D float32 rows in storage order
 */
#include "fileio.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define QUEUE_MAGIC "SSQUEUE1"
#define QUEUE_VERSION 1u

struct ss_queue {
    int64_t K, D;
    int64_t ptr;   /* next row to overwrite = the oldest row */
    int64_t count; /* keys enqueued since creation */
    float *rows;   /* (K, D) */
};

static ss_status queue_alloc(ss_queue **out, const char *fn, int64_t K,
                             int64_t D) {
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, K, D, 1));
    ss_queue *q = calloc(1, sizeof *q);
    float *rows = q ? ss__calloc((size_t)(K * D) * sizeof(float)) : NULL;
    if (!rows) {
        free(q);
        return ss__fail(SS_ERR_NOMEM, fn,
                        "cannot allocate a queue of K=%lld D=%lld",
                        (long long)K, (long long)D);
    }
    q->K = K, q->D = D, q->rows = rows;
    *out = q;
    return SS_OK;
}

ss_status ss_queue_create(ss_queue **out, int64_t K, int64_t D, ss_rng *rng) {
    static const char fn[] = "ss_queue_create";
    SS_TRY(ss__check_ptr(fn, "out", out));
    ss_queue *q;
    SS_TRY(queue_alloc(&q, fn, K, D));
    if (rng) /* random unit rows, like MoCo's normalize(randn(...)) */
        for (int64_t j = 0; j < K; j++) {
            float *r = q->rows + j * D;
            double ss = 0.0;
            for (int64_t d = 0; d < D; d++) {
                double v = ss_rng_normal(rng);
                r[d] = (float)v;
                ss += (double)r[d] * r[d];
            }
            double s = 1.0 / (sqrt(ss) > SS_NORM_EPS ? sqrt(ss) : SS_NORM_EPS);
            for (int64_t d = 0; d < D; d++)
                r[d] = (float)(r[d] * s);
        }
    *out = q;
    return SS_OK;
}

void ss_queue_free(ss_queue *q) {
    if (!q) return;
    ss__free(q->rows);
    free(q);
}

ss_status ss_queue_enqueue(ss_queue *q, const float *keys, int64_t n) {
    static const char fn[] = "ss_queue_enqueue";
    SS_TRY(ss__check_ptr(fn, "q", q));
    SS_TRY(ss__check_ptr(fn, "keys", keys));
    SS_TRY(ss__check_size(fn, "n", n, 1));
    SS_TRY(ss__check_product(fn, n, q->D, 1));
    SS_TRY(ss__check_finite(fn, "keys", keys, n * q->D));
    /* Only the last K keys survive; skipping the others lands on the same
     * state as enqueuing them one by one. */
    int64_t skip = n > q->K ? n - q->K : 0, D = q->D;
    int64_t ptr = (q->ptr + skip) % q->K;
    for (int64_t r = skip; r < n; r++) {
        memcpy(q->rows + ptr * D, keys + r * D, (size_t)D * sizeof(float));
        ptr = ptr + 1 == q->K ? 0 : ptr + 1;
    }
    q->ptr = ptr;
    q->count += n;
    return SS_OK;
}

const float *ss_queue_data(const ss_queue *q) { return q ? q->rows : NULL; }
int64_t ss_queue_len(const ss_queue *q) { return q ? q->K : 0; }
int64_t ss_queue_dim(const ss_queue *q) { return q ? q->D : 0; }
int64_t ss_queue_count(const ss_queue *q) { return q ? q->count : 0; }

ss_status ss_queue_read(const ss_queue *q, float *out) {
    static const char fn[] = "ss_queue_read";
    SS_TRY(ss__check_ptr(fn, "q", q));
    SS_TRY(ss__check_ptr(fn, "out", out));
    size_t row = (size_t)q->D * sizeof(float);
    size_t older = (size_t)(q->K - q->ptr); /* rows ptr .. K-1 are the oldest */
    memcpy(out, q->rows + q->ptr * q->D, older * row);
    memcpy(out + (int64_t)older * q->D, q->rows, (size_t)q->ptr * row);
    return SS_OK;
}

/* ---- save / load: the format above, through fileio.h --------------------- */

ss_status ss_queue_save(const ss_queue *q, const char *path) {
    static const char fn[] = "ss_queue_save";
    SS_TRY(ss__check_ptr(fn, "q", q));
    SS_TRY(ss__check_ptr(fn, "path", path));
    int64_t head[4] = {q->K, q->D, q->ptr, q->count};
    const void *bufs[2] = {head, q->rows};
    size_t lens[2] = {sizeof head, sizeof(float) * (size_t)(q->K * q->D)};
    return ss__write_atomic(fn, path, QUEUE_MAGIC, QUEUE_VERSION, bufs, lens,
                            2);
}

/* K, D, ptr, count, each range-checked at its byte offset (16 .. 40). */
static ss_status read_header(ss__reader *r, int64_t f[4]) {
    SS_TRY(ss__read_i64(r, &f[0], 1, SS_MAX_ELEMENTS, "K"));
    SS_TRY(ss__read_i64(r, &f[1], 1, SS_MAX_ELEMENTS / f[0], "D"));
    SS_TRY(ss__read_i64(r, &f[2], 0, f[0] - 1, "write pointer"));
    return ss__read_i64(r, &f[3], 0, INT64_MAX, "count");
}

ss_status ss_queue_load(ss_queue **out, const char *path) {
    static const char fn[] = "ss_queue_load";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "path", path));
    ss__reader r;
    SS_TRY(ss__reader_open(&r, fn, path, QUEUE_MAGIC, QUEUE_VERSION));
    int64_t f[4];
    ss_queue *q = NULL;
    ss_status st = read_header(&r, f);
    if (st == SS_OK) st = queue_alloc(&q, fn, f[0], f[1]);
    if (st == SS_OK) {
        q->ptr = f[2], q->count = f[3];
        st = ss__read_finite(&r, q->rows, q->K * q->D, sizeof(float), "rows");
    }
    if (st == SS_OK) st = ss__reader_expect_eof(&r);
    ss__reader_close(&r);
    if (st != SS_OK) {
        ss_queue_free(q);
        return st;
    }
    *out = q;
    return SS_OK;
}
