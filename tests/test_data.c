/* test_data.c - IDX files (plain and gzipped), corrupt-file errors, the
 * dataset lookup and the seeded batch loader. Files live in a temp dir. */
#include "data.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static const char *tmp_dir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/selfsup-test-data-XXXXXX");
        if (!mkdtemp(tmpdir)) tmpdir[0] = 0;
    }
    return tmpdir;
}

static void path_in(char *p, size_t cap, const char *sub, const char *name) {
    snprintf(p, cap, "%s/%s", tmp_dir(), sub);
    mkdir(p, 0700); /* may exist already */
    size_t n = strlen(p);
    snprintf(p + n, cap - n, "/%s", name);
}

static void write_bytes(const char *path, const void *b, size_t n, int gz) {
    gzFile f = gzopen(path, gz ? "wb" : "wbT");
    if (!f) return;
    if (n) gzwrite(f, b, (unsigned)n);
    gzclose(f);
}

/* A small idx3 header + pixels for n images of h x w. */
static size_t make_idx3(unsigned char *buf, int n, int h, int w) {
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n,
                             0, 0, 0, (unsigned char)h, 0, 0, 0,
                             (unsigned char)w};
    memcpy(buf, hdr, 16);
    for (int i = 0; i < n * h * w; i++) buf[16 + i] = (unsigned char)(i * 7);
    return 16 + (size_t)(n * h * w);
}

static void fill_images(uint8_t *px, int64_t n, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) px[i] = (uint8_t)ss_rng_u64(&rng);
}

SS_TEST(idx_round_trip_plain_and_gz) {
    const int64_t n = 7, h = 5, w = 3;
    uint8_t px[7 * 5 * 3], lb[7] = {0, 1, 2, 9, 4, 4, 3};
    fill_images(px, n * h * w, 1);
    for (int gz = 0; gz < 2; gz++) {
        char pi[512], pl[512];
        path_in(pi, sizeof pi, "rt", gz ? "im.gz" : "im");
        path_in(pl, sizeof pl, "rt", gz ? "lb.gz" : "lb");
        SS_CHECK_OK(sst_idx_write_images(pi, px, n, h, w, gz));
        SS_CHECK_OK(sst_idx_write_labels(pl, lb, n, gz));
        sst_images im;
        sst_labels y;
        SS_CHECK_OK(sst_idx_read_images(&im, pi));
        SS_CHECK_OK(sst_idx_read_labels(&y, pl));
        SS_CHECK_INT(im.n, n);
        SS_CHECK_INT(im.h, h);
        SS_CHECK_INT(im.w, w);
        SS_CHECK(im.pixels && memcmp(im.pixels, px, sizeof px) == 0);
        SS_CHECK_INT(y.n, n);
        SS_CHECK_INT(y.n_classes, 10);
        SS_CHECK(y.labels && memcmp(y.labels, lb, sizeof lb) == 0);
        /* gz really compresses: the file starts with the gzip magic. */
        FILE *f = fopen(pi, "rb");
        int c0 = f ? fgetc(f) : -1, c1 = f ? fgetc(f) : -1;
        if (f) fclose(f);
        SS_CHECK(gz ? (c0 == 0x1f && c1 == 0x8b) : (c0 == 0 && c1 == 0));
        float fl[2 * 5 * 3];
        int64_t idx[2] = {6, 0};
        SS_CHECK_OK(sst_images_to_float(fl, &im, idx, 0, 2));
        SS_CHECK_NEAR(fl[0], px[6 * 15] / 255.0, 1e-7);
        SS_CHECK_NEAR(fl[15 + 14], px[14] / 255.0, 1e-7);
        SS_CHECK_OK(sst_images_to_float(fl, &im, NULL, 5, 2));
        SS_CHECK_NEAR(fl[1], px[5 * 15 + 1] / 255.0, 1e-7);
        for (int i = 0; i < 30; i++) SS_CHECK(fl[i] >= 0 && fl[i] <= 1);
        SS_CHECK_STATUS(sst_images_to_float(fl, &im, NULL, 6, 2), SS_ERR_SIZE);
        idx[1] = 7;
        SS_CHECK_STATUS(sst_images_to_float(fl, &im, idx, 0, 2), SS_ERR_SIZE);
        SS_CHECK_MSG_HAS("idx[1] = 7");
        sst_images_free(&im);
        sst_labels_free(&y);
        SS_CHECK(im.pixels == NULL);
    }
    sst_images_free(NULL);
    sst_labels_free(NULL);
}

SS_TEST(dataset_dir_and_count_mismatch) {
    uint8_t px[6 * 4 * 4], lb[6] = {1, 0, 1, 0, 1, 2};
    fill_images(px, sizeof px, 2);
    char p[512], dir[512];
    path_in(p, sizeof p, "ds", "train-images-idx3-ubyte.gz");
    SS_CHECK_OK(sst_idx_write_images(p, px, 6, 4, 4, 1));
    path_in(p, sizeof p, "ds", "train-labels-idx1-ubyte.gz");
    SS_CHECK_OK(sst_idx_write_labels(p, lb, 6, 1));
    path_in(p, sizeof p, "ds", "t10k-images-idx3-ubyte"); /* plain */
    SS_CHECK_OK(sst_idx_write_images(p, px, 3, 4, 4, 0));
    path_in(p, sizeof p, "ds", "t10k-labels-idx1-ubyte");
    SS_CHECK_OK(sst_idx_write_labels(p, lb, 5, 0)); /* 5 labels, 3 images */
    snprintf(dir, sizeof dir, "%s/ds", tmp_dir());
    sst_images tr, te;
    sst_labels ytr, yte;
    SS_CHECK_OK(sst_dataset_load_images(&tr, dir, SST_SPLIT_TRAIN));
    SS_CHECK_OK(sst_dataset_load_labels(&ytr, dir, SST_SPLIT_TRAIN, tr.n));
    SS_CHECK_INT(ytr.n_classes, 3);
    SS_CHECK_OK(sst_dataset_load_images(&te, dir, SST_SPLIT_TEST));
    SS_CHECK_INT(te.n, 3);
    SS_CHECK_STATUS(sst_dataset_load_labels(&yte, dir, SST_SPLIT_TEST, te.n),
                    SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("t10k-labels-idx1-ubyte'");
    SS_CHECK_MSG_HAS("byte offset 4");
    SS_CHECK_MSG_HAS("5 labels");
    SS_CHECK(yte.labels == NULL);
    SS_CHECK_OK(sst_dataset_load_labels(&yte, dir, SST_SPLIT_TEST, 0));
    sst_images_free(&tr);
    sst_images_free(&te);
    sst_labels_free(&ytr);
    sst_labels_free(&yte);
}

SS_TEST(missing_dataset_says_how_to_install) {
    sst_images im;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/no-such-dir", tmp_dir());
    SS_CHECK_STATUS(sst_dataset_load_images(&im, dir, SST_SPLIT_TRAIN),
                    SS_ERR_IO);
    SS_CHECK_MSG_HAS("apt-get install dataset-fashion-mnist");
    SS_CHECK_MSG_HAS("--data DIR");
    SS_CHECK_MSG_HAS("no-such-dir");
    SS_CHECK_MSG_HAS("does not exist");
    char p[512];
    path_in(p, sizeof p, "empty", "README");
    write_bytes(p, "x", 1, 0);
    snprintf(dir, sizeof dir, "%s/empty", tmp_dir());
    sst_labels y;
    SS_CHECK_STATUS(sst_dataset_load_labels(&y, dir, SST_SPLIT_TEST, 0),
                    SS_ERR_IO);
    SS_CHECK_MSG_HAS("t10k-labels-idx1-ubyte");
    SS_CHECK_MSG_HAS("apt-get install dataset-fashion-mnist");
    SS_CHECK_STATUS(sst_idx_read_images(&im, dir), SS_ERR_IO);
    SS_CHECK_MSG_HAS("not a regular file");
    SS_CHECK_STATUS(sst_idx_read_images(&im, "/nonexistent/x.gz"), SS_ERR_IO);
    SS_CHECK_MSG_HAS("/nonexistent/x.gz");
    SS_CHECK_STATUS(sst_idx_read_images(NULL, p), SS_ERR_NULL);
    SS_CHECK_STATUS(sst_idx_read_images(&im, NULL), SS_ERR_NULL);
}

/* Each corrupt file, plain and gzipped: SS_ERR_FORMAT naming the file and
 * the byte offset where it went wrong. */
SS_TEST(corrupt_files_name_file_and_offset) {
    unsigned char good[16 + 2 * 3 * 3];
    size_t n = make_idx3(good, 2, 3, 3);
    unsigned char buf[64];
    for (int gz = 0; gz < 2; gz++) {
        char p[512];
        sst_images im;
        path_in(p, sizeof p, "bad", gz ? "f.gz" : "f");

        memcpy(buf, good, n); /* bad magic: idx1 where idx3 is wanted */
        buf[3] = 1;
        write_bytes(p, buf, n, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS(p);
        SS_CHECK_MSG_HAS("bad magic 0x00000801 at byte offset 0");
        SS_CHECK(im.pixels == NULL && im.n == 0);

        memcpy(buf, good, n); /* bad type byte */
        buf[2] = 0x0D;
        write_bytes(p, buf, n, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("byte offset 0");

        write_bytes(p, good, 10, gz); /* header cut inside dimension 1 */
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS(p);
        SS_CHECK_MSG_HAS("truncated header (dimensions) at byte offset 10");

        write_bytes(p, good, 2, gz); /* header cut inside the magic */
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("truncated header (magic) at byte offset 2");

        write_bytes(p, good, n - 5, gz); /* data short by 5 bytes */
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS(p);
        SS_CHECK_MSG_HAS("truncated data at byte offset 29");
        SS_CHECK_MSG_HAS("announces 18 data bytes, the file has 13");

        memcpy(buf, good, n); /* one byte too many */
        buf[n] = 1;
        write_bytes(p, buf, n + 1, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("trailing bytes at byte offset 34");

        memcpy(buf, good, n); /* zero dimension */
        buf[11] = 0;
        write_bytes(p, buf, n, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("dimension 1 is 0 at byte offset 8");

        /* A header announcing 2^24 - 1 images of 255 x 255: a short read
         * found incrementally, not a 1 TB allocation. */
        memcpy(buf, good, n);
        buf[5] = buf[6] = buf[7] = 0xff;
        buf[11] = buf[15] = 0xff;
        write_bytes(p, buf, n, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("truncated data at byte offset 34");
        buf[4] = 0x7f; /* 2^31 - 1 images: above 2^40 pixels */
        write_bytes(p, buf, n, gz);
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("byte offsets 4..15");

        write_bytes(p, good, 0, gz); /* empty file */
        SS_CHECK_STATUS(sst_idx_read_images(&im, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("byte offset 0");

        sst_labels y; /* an image file read as labels */
        write_bytes(p, good, n, gz);
        SS_CHECK_STATUS(sst_idx_read_labels(&y, p), SS_ERR_FORMAT);
        SS_CHECK_MSG_HAS("bad magic 0x00000803 at byte offset 0");
        SS_CHECK(y.labels == NULL);
    }
}

/* A gzip stream cut in the middle (as a partial download leaves it). */
SS_TEST(truncated_gzip_stream) {
    enum { N = 64, S = 28 };
    uint8_t *px = malloc(N * S * S);
    fill_images(px, N * S * S, 3);
    char p[512], q[512];
    path_in(p, sizeof p, "gz", "full.gz");
    path_in(q, sizeof q, "gz", "cut.gz");
    SS_CHECK_OK(sst_idx_write_images(p, px, N, S, S, 1));
    FILE *f = fopen(p, "rb");
    unsigned char *b = malloc(N * S * S * 2);
    size_t len = f ? fread(b, 1, N * S * S * 2, f) : 0;
    if (f) fclose(f);
    SS_CHECK(len > 1000);
    f = fopen(q, "wb");
    if (f) {
        fwrite(b, 1, len / 2, f);
        fclose(f);
    }
    sst_images im;
    SS_CHECK_STATUS(sst_idx_read_images(&im, q), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS(q);
    SS_CHECK_MSG_HAS("byte offset");
    b[len / 2] ^= 0xff; /* flip bits mid-stream */
    f = fopen(q, "wb");
    if (f) {
        fwrite(b, 1, len, f);
        fclose(f);
    }
    SS_CHECK_STATUS(sst_idx_read_images(&im, q), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset");
    free(b);
    free(px);
}

SS_TEST(loader_seeded_permutations) {
    sst_loader a, b;
    const int64_t n = 23, B = 5;
    SS_CHECK_OK(sst_loader_init(&a, n, B, 9, 0));
    SS_CHECK_OK(sst_loader_init(&b, n, B, 9, 0));
    SS_CHECK_INT(sst_loader_batches(&a), 5);
    int64_t ia[5], ib[5], cnt, cb;
    int fresh;
    for (int ep = 0; ep < 3; ep++) {
        int seen[23] = {0};
        for (int64_t k = 0; k < 5; k++) {
            SS_CHECK_OK(sst_loader_next(&a, ia, &cnt, &fresh));
            SS_CHECK_OK(sst_loader_next(&b, ib, &cb, NULL));
            SS_CHECK_INT(cnt, k < 4 ? 5 : 3);
            SS_CHECK_INT(fresh, ep > 0 && k == 0);
            SS_CHECK(cnt == cb && memcmp(ia, ib, (size_t)cnt * 8) == 0);
            for (int64_t i = 0; i < cnt; i++) seen[ia[i]]++;
        }
        for (int i = 0; i < 23; i++) SS_CHECK_INT(seen[i], 1);
        SS_CHECK_INT(a.epoch, ep);
    }
    sst_loader c; /* another seed, another order */
    SS_CHECK_OK(sst_loader_init(&c, n, B, 10, 1));
    SS_CHECK_INT(sst_loader_batches(&c), 4);
    int64_t ic[5];
    sst_loader_free(&a);
    sst_loader_free(&b);
    SS_CHECK_OK(sst_loader_init(&a, n, B, 9, 1));
    SS_CHECK_OK(sst_loader_next(&a, ia, &cnt, NULL));
    SS_CHECK_OK(sst_loader_next(&c, ic, &cb, NULL));
    SS_CHECK(memcmp(ia, ic, sizeof ia) != 0);
    for (int k = 1; k < 4; k++) SS_CHECK_OK(sst_loader_next(&c, ic, &cb, &fresh));
    SS_CHECK_OK(sst_loader_next(&c, ic, &cb, &fresh)); /* drop_last: 3 skipped */
    SS_CHECK_INT(cb, 5);
    SS_CHECK_INT(fresh, 1);
    SS_CHECK_STATUS(sst_loader_init(&b, 3, 5, 1, 1), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_loader_init(&b, 0, 5, 1, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_loader_next(&b, ia, &cnt, NULL), SS_ERR_NULL);
    sst_loader_free(&a);
    sst_loader_free(&c);
    sst_loader_free(NULL);
}

SS_TEST(fashion_mnist_if_installed) {
    /* The real test split, when installed: shapes, counts, class balance
     * (the train split is left to bench/data_eval_bench.c). */
    sst_labels y;
    sst_images im;
    if (sst_dataset_load_labels(&y, NULL, SST_SPLIT_TEST, 0) != SS_OK) return;
    SS_CHECK_INT(y.n, 10000);
    SS_CHECK_INT(y.n_classes, SST_FMNIST_CLASSES);
    int count[SST_FMNIST_CLASSES] = {0};
    for (int64_t i = 0; i < y.n; i++) count[y.labels[i]]++;
    for (int c = 0; c < SST_FMNIST_CLASSES; c++) SS_CHECK_INT(count[c], 1000);
    SS_CHECK_OK(sst_dataset_load_images(&im, NULL, SST_SPLIT_TEST));
    SS_CHECK(im.n == 10000 && im.h == 28 && im.w == 28);
    int64_t sum = 0;
    for (int64_t i = 0; i < im.n * im.h * im.w; i++) sum += im.pixels[i];
    SS_CHECK(sum > 0);
    sst_images_free(&im);
    sst_labels_free(&y);
}
