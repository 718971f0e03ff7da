/* queue.c - the MoCo negative queue: a ring buffer of K keys (K, D) with
 * atomic, versioned save / load.
 *
 * File format (little-endian), version 1:
 *   offset  0  magic "SSQUEUE1"
 *   offset  8  u32 version (1), u32 reserved (0)
 *   offset 16  i64 K, i64 D, i64 write pointer (0 <= ptr < K), i64 count
 *   offset 48  K * D float32 rows in storage order
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUEUE_MAGIC "SSQUEUE1"
#define QUEUE_VERSION 1u
#define QUEUE_HEADER 48

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

/* ---- little-endian encoding ---------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_i64(unsigned char *p, int64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static int64_t get_i64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

static int write_all(FILE *f, const ss_queue *q) {
    unsigned char h[QUEUE_HEADER] = {0};
    memcpy(h, QUEUE_MAGIC, 8);
    put_u32(h + 8, QUEUE_VERSION);
    put_i64(h + 16, q->K);
    put_i64(h + 24, q->D);
    put_i64(h + 32, q->ptr);
    put_i64(h + 40, q->count);
    if (fwrite(h, 1, sizeof h, f) != sizeof h) return 0;
    unsigned char buf[4096];
    int64_t n = q->K * q->D, i = 0;
    while (i < n) {
        size_t k = 0;
        for (; k + 4 <= sizeof buf && i < n; k += 4, i++) {
            uint32_t u;
            memcpy(&u, &q->rows[i], 4);
            put_u32(buf + k, u);
        }
        if (fwrite(buf, 1, k, f) != k) return 0;
    }
    return 1;
}

ss_status ss_queue_save(const ss_queue *q, const char *path) {
    static const char fn[] = "ss_queue_save";
    SS_TRY(ss__check_ptr(fn, "q", q));
    SS_TRY(ss__check_ptr(fn, "path", path));
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a path");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ss_status st = ss__fail(SS_ERR_IO, fn, "cannot create %s: %s", tmp,
                                strerror(errno));
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    int ok = f && write_all(f, q) && fflush(f) == 0 && fsync(fd) == 0;
    int err = errno;
    if (f)
        ok = (fclose(f) == 0) && ok;
    else
        close(fd);
    /* rename is atomic: readers see the old file or the new one, never half */
    if (ok && rename(tmp, path) != 0) ok = 0, err = errno;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return ss__fail(SS_ERR_IO, fn, "cannot write %s: %s", path,
                        strerror(err));
    }
    free(tmp);
    return SS_OK;
}

static ss_status bad(const char *path, long off, const char *what) {
    return ss__fail(SS_ERR_FORMAT, "ss_queue_load", "%s: %s at byte offset %ld",
                    path, what, off);
}

/* Checks the header; *K and *D are valid on success. */
static ss_status check_header(const unsigned char *h, size_t got,
                              const char *path, int64_t fields[4]) {
    if (got < 8 || memcmp(h, QUEUE_MAGIC, 8) != 0)
        return bad(path, 0, "bad magic (want \"SSQUEUE1\")");
    if (got < 16) return bad(path, (long)got, "file truncated in the header");
    if (get_u32(h + 8) != QUEUE_VERSION)
        return ss__fail(SS_ERR_FORMAT, "ss_queue_load",
                        "%s: unsupported version %u (want %u) at byte offset 8",
                        path, get_u32(h + 8), QUEUE_VERSION);
    if (got < QUEUE_HEADER)
        return bad(path, (long)got, "file truncated in the header");
    for (int i = 0; i < 4; i++)
        fields[i] = get_i64(h + 16 + 8 * i);
    int64_t K = fields[0], D = fields[1];
    if (K < 1 || K > SS_MAX_ELEMENTS) return bad(path, 16, "bad K");
    if (D < 1 || D > SS_MAX_ELEMENTS || K > SS_MAX_ELEMENTS / D)
        return bad(path, 24, "bad D");
    if (fields[2] < 0 || fields[2] >= K)
        return bad(path, 32, "write pointer out of range");
    if (fields[3] < 0) return bad(path, 40, "negative count");
    return SS_OK;
}

static ss_status read_rows(FILE *f, ss_queue *q, const char *path) {
    unsigned char buf[4096];
    int64_t n = q->K * q->D, i = 0;
    while (i < n) {
        size_t want =
            (size_t)(n - i) * 4 < sizeof buf ? (size_t)(n - i) * 4 : sizeof buf;
        size_t got = fread(buf, 1, want, f);
        for (size_t k = 0; k + 4 <= got; k += 4, i++) {
            uint32_t u = get_u32(buf + k);
            memcpy(&q->rows[i], &u, 4);
            if (!isfinite(q->rows[i]))
                return bad(path, QUEUE_HEADER + 4 * (long)i,
                           "non-finite value");
        }
        if (got < want)
            return bad(path, QUEUE_HEADER + 4 * (long)i,
                       "file truncated in the rows");
    }
    if (fgetc(f) != EOF)
        return bad(path, QUEUE_HEADER + 4 * (long)n,
                   "trailing bytes after the rows");
    return SS_OK;
}

ss_status ss_queue_load(ss_queue **out, const char *path) {
    static const char fn[] = "ss_queue_load";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "path", path));
    FILE *f = fopen(path, "rb");
    if (!f)
        return ss__fail(SS_ERR_IO, fn, "cannot open %s: %s", path,
                        strerror(errno));
    unsigned char h[QUEUE_HEADER];
    size_t got = fread(h, 1, sizeof h, f);
    int64_t fields[4];
    ss_status st = check_header(h, got, path, fields);
    ss_queue *q = NULL;
    if (st == SS_OK) st = queue_alloc(&q, fn, fields[0], fields[1]);
    if (st == SS_OK) {
        q->ptr = fields[2], q->count = fields[3];
        st = read_rows(f, q, path);
    }
    fclose(f);
    if (st != SS_OK) {
        ss_queue_free(q);
        return st;
    }
    *out = q;
    return SS_OK;
}
