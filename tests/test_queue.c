/* test_queue.c - the MoCo negative queue: creation, wrap-around, reading
 * oldest first, atomic save / load round trip, corrupt and truncated
 * files, statuses. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Row r of a test key: every entry r + d / 10. */
static void key_rows(float *k, int64_t first, int64_t n, int64_t D) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t d = 0; d < D; d++)
            k[r * D + d] = (float)(first + r) + (float)d / 10.0f;
}

SS_TEST(create_random_unit_rows) {
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    ss_queue *q = NULL;
    SS_CHECK_OK(ss_queue_create(&q, 7, 5, &rng));
    SS_CHECK_INT(ss_queue_len(q), 7);
    SS_CHECK_INT(ss_queue_dim(q), 5);
    SS_CHECK_INT(ss_queue_count(q), 0);
    const float *x = ss_queue_data(q);
    for (int64_t r = 0; r < 7; r++) {
        double n2 = 0;
        for (int d = 0; d < 5; d++)
            n2 += (double)x[r * 5 + d] * x[r * 5 + d];
        SS_CHECK_NEAR(n2, 1.0, 1e-6);
    }
    SS_CHECK(x[0] != x[5]); /* rows differ */
    ss_queue_free(q);
    SS_CHECK_OK(ss_queue_create(&q, 3, 2, NULL)); /* no rng: zeros */
    for (int i = 0; i < 6; i++)
        SS_CHECK(ss_queue_data(q)[i] == 0.0f);
    ss_queue_free(q);
    ss_queue_free(NULL);
}

SS_TEST(enqueue_wraps_and_reads_oldest_first) {
    int64_t K = 5, D = 3;
    ss_queue *q;
    SS_CHECK_OK(ss_queue_create(&q, K, D, NULL));
    float k[8 * 3], out[5 * 3];
    key_rows(k, 1, 8, D);
    SS_CHECK_OK(ss_queue_enqueue(q, k, 3));     /* rows 1..3 at slots 0..2 */
    SS_CHECK_OK(ss_queue_enqueue(q, k + 9, 4)); /* rows 4..7: wraps to slot 1 */
    SS_CHECK_INT(ss_queue_count(q), 7);
    const float *x = ss_queue_data(q);
    SS_CHECK(x[0] == 6.0f && x[3] == 7.0f && x[6] == 3.0f && x[12] == 5.0f);
    SS_CHECK_OK(ss_queue_read(q, out)); /* oldest first: 3, 4, 5, 6, 7 */
    for (int64_t r = 0; r < K; r++)
        for (int64_t d = 0; d < D; d++)
            SS_CHECK(out[r * D + d] == (float)(3 + r) + (float)d / 10.0f);
    ss_queue_free(q);
}

/* n > K keeps the last K keys, as K single enqueues would. */
SS_TEST(enqueue_more_than_K) {
    int64_t K = 4, D = 2, n = 11;
    ss_queue *a, *b;
    SS_CHECK_OK(ss_queue_create(&a, K, D, NULL));
    SS_CHECK_OK(ss_queue_create(&b, K, D, NULL));
    float k[11 * 2], x1[8], x2[8];
    key_rows(k, 0, n, D);
    SS_CHECK_OK(ss_queue_enqueue(a, k, 1));
    SS_CHECK_OK(ss_queue_enqueue(b, k, 1));
    SS_CHECK_OK(ss_queue_enqueue(a, k + D, n - 1));
    for (int64_t r = 1; r < n; r++)
        SS_CHECK_OK(ss_queue_enqueue(b, k + r * D, 1));
    SS_CHECK(memcmp(ss_queue_data(a), ss_queue_data(b), sizeof x1) == 0);
    SS_CHECK_OK(ss_queue_read(a, x1));
    SS_CHECK_OK(ss_queue_read(b, x2));
    SS_CHECK(memcmp(x1, x2, sizeof x1) == 0);
    for (int64_t r = 0; r < K; r++)
        SS_CHECK(x1[r * D] == (float)(n - K + r));
    SS_CHECK_INT(ss_queue_count(a), n);
    ss_queue_free(a), ss_queue_free(b);
}

static void tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/ss_test_queue_%ld_%s.bin", (long)getpid(), tag);
}

SS_TEST(save_load_round_trip) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    ss_queue *q, *r;
    SS_CHECK_OK(ss_queue_create(&q, 6, 4, &rng));
    float k[3 * 4];
    key_rows(k, 10, 3, 4);
    SS_CHECK_OK(ss_queue_enqueue(q, k, 3));
    char path[256];
    tmp_path(path, sizeof path, "rt");
    SS_CHECK_OK(ss_queue_save(q, path));
    SS_CHECK_OK(ss_queue_save(q, path)); /* overwrite: still atomic */
    SS_CHECK_OK(ss_queue_load(&r, path));
    SS_CHECK_INT(ss_queue_len(r), 6);
    SS_CHECK_INT(ss_queue_dim(r), 4);
    SS_CHECK_INT(ss_queue_count(r), 3);
    SS_CHECK(memcmp(ss_queue_data(q), ss_queue_data(r), 24 * sizeof(float)) ==
             0);
    /* the write pointer survives: the next keys land in the same slots */
    SS_CHECK_OK(ss_queue_enqueue(q, k, 2));
    SS_CHECK_OK(ss_queue_enqueue(r, k, 2));
    SS_CHECK(memcmp(ss_queue_data(q), ss_queue_data(r), 24 * sizeof(float)) ==
             0);
    ss_queue_free(q), ss_queue_free(r);
    remove(path);
}

/* Writes bytes to path. */
static void put_file(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(b, 1, n, f), fclose(f);
}

SS_TEST(corrupt_and_truncated_files) {
    ss_queue *q, *r = NULL;
    SS_CHECK_OK(ss_queue_create(&q, 2, 3, NULL));
    char path[256], bad[256];
    tmp_path(path, sizeof path, "ok");
    tmp_path(bad, sizeof bad, "bad");
    SS_CHECK_OK(ss_queue_save(q, path));
    unsigned char file[48 + 24], m[48 + 24];
    FILE *f = fopen(path, "rb");
    SS_CHECK(f && fread(file, 1, sizeof file, f) == sizeof file &&
             fgetc(f) == EOF);
    if (f) fclose(f);

    SS_CHECK_STATUS(ss_queue_load(&r, "/nonexistent/dir/q.bin"), SS_ERR_IO);
    SS_CHECK_MSG_HAS("/nonexistent/dir/q.bin");
    memcpy(m, file, sizeof m), m[3] ^= 1; /* magic */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("magic");
    SS_CHECK_MSG_HAS("offset 0");
    memcpy(m, file, sizeof m), m[8] = 2; /* version */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("version 2");
    SS_CHECK_MSG_HAS("offset 8");
    memcpy(m, file, sizeof m), m[16] = 0; /* K = 0 */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 16");
    memcpy(m, file, sizeof m), m[31] = 0x80; /* D < 0 */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 24");
    memcpy(m, file, sizeof m), m[32] = 2; /* ptr = K */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 32");
    memcpy(m, file, sizeof m), m[16] = 3; /* K = 3: rows truncated */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("truncated");
    SS_CHECK_MSG_HAS("offset 72");
    put_file(bad, file, 30); /* header truncated */
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 30");
    put_file(bad, file, 5);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    put_file(bad, file, 50); /* rows truncated */
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 48");
    memcpy(m, file, sizeof m), m[48 + 7] = 0x7f,
                                      m[48 + 6] = 0xc0; /* NaN row value */
    put_file(bad, m, sizeof m);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("offset 52");
    unsigned char longer[48 + 24 + 1];
    memcpy(longer, file, sizeof file), longer[sizeof file] = 0;
    put_file(bad, longer, sizeof longer);
    SS_CHECK_STATUS(ss_queue_load(&r, bad), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("trailing");
    SS_CHECK(r == NULL); /* nothing written on failure */
    SS_CHECK_STATUS(ss_queue_save(q, "/nonexistent/dir/q.bin"), SS_ERR_IO);
    ss_queue_free(q);
    remove(path), remove(bad);
}

SS_TEST(bad_arguments) {
    ss_queue *q = NULL;
    float k[4] = {1, 2, 3, 4}, out[4];
    SS_CHECK_STATUS(ss_queue_create(NULL, 2, 2, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_create(&q, 0, 2, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("K must be >= 1, got 0");
    SS_CHECK_STATUS(ss_queue_create(&q, 2, -1, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(
        ss_queue_create(&q, (int64_t)1 << 30, (int64_t)1 << 20, NULL),
        SS_ERR_SIZE);
    SS_CHECK(q == NULL);
    SS_CHECK_OK(ss_queue_create(&q, 2, 2, NULL));
    SS_CHECK_STATUS(ss_queue_enqueue(NULL, k, 1), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_enqueue(q, NULL, 1), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_enqueue(q, k, 0), SS_ERR_SIZE);
    k[3] = NAN;
    SS_CHECK_STATUS(ss_queue_enqueue(q, k, 2), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("keys[3]");
    SS_CHECK_INT(ss_queue_count(q), 0);
    SS_CHECK_STATUS(ss_queue_read(NULL, out), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_read(q, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_save(NULL, "x"), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_save(q, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_load(NULL, "x"), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_queue_load(&q, NULL), SS_ERR_NULL);
    SS_CHECK(ss_queue_data(NULL) == NULL && ss_queue_len(NULL) == 0);
    ss_queue_free(q);
}
