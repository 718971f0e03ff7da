/* test_report.c - metrics CSV and PNG report: content, atomic replacement
 * (no temp files left behind), errors. */
#include "data.h"
#include "harness.h"
#include "report.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/selfsup-test-report-XXXXXX");
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc(1, (size_t)*len + 1);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) *len = -1;
    fclose(f);
    return b;
}

/* Files in the temp dir whose name contains ".tmp." (leftovers). */
static int leftovers(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

SS_TEST(csv_rows_and_atomic_rewrite) {
    const char *cols[] = {"epoch", "loss", "probe_acc"};
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("metrics.csv"));
    sst_csv *c = NULL;
    SS_CHECK_OK(sst_csv_create(&c, path, cols, 3));
    double r1[3] = {0, 2.5, NAN}, r2[3] = {1, 1.25, 0.8125};
    SS_CHECK_OK(sst_csv_row(c, r1));
    SS_CHECK_OK(sst_csv_flush(c));
    long len;
    char *s = slurp(path, &len);
    SS_CHECK(s && strcmp(s, "epoch,loss,probe_acc\n0,2.5,nan\n") == 0);
    free(s);
    struct stat st1, st2;
    SS_CHECK(stat(path, &st1) == 0);
    SS_CHECK_OK(sst_csv_row(c, r2));
    SS_CHECK_OK(sst_csv_flush(c));
    s = slurp(path, &len);
    SS_CHECK(s && strcmp(s, "epoch,loss,probe_acc\n0,2.5,nan\n1,1.25,0.8125\n") == 0);
    free(s);
    SS_CHECK(stat(path, &st2) == 0);
    SS_CHECK(st1.st_ino != st2.st_ino); /* replaced by rename, not rewritten */
    SS_CHECK_INT(sst_csv_rows(c), 2);
    SS_CHECK_INT(leftovers(), 0);
    for (int i = 0; i < 200; i++) SS_CHECK_OK(sst_csv_row(c, r2)); /* grows */
    SS_CHECK_INT(sst_csv_rows(c), 202);
    sst_csv_free(c);
    sst_csv_free(NULL);
    const char *bad[] = {"a", "b,c"};
    SS_CHECK_STATUS(sst_csv_create(&c, path, bad, 2), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("columns[1]");
    SS_CHECK_STATUS(sst_csv_create(&c, path, cols, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_csv_create(&c, "/nonexistent-dir/m.csv", cols, 3),
                    SS_OK); /* nothing is written before a flush */
    SS_CHECK_STATUS(sst_csv_flush(c), SS_ERR_IO);
    SS_CHECK_MSG_HAS("/nonexistent-dir/m.csv");
    sst_csv_free(c);
}

SS_TEST(png_report_written_atomically) {
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    const int64_t n = 600, D = 16, nl = 120;
    float *emb = ss_test_alloc(n * D), loss[120];
    uint8_t lab[600];
    for (int64_t i = 0; i < n; i++) { /* ten separated clusters */
        lab[i] = (uint8_t)(i % 10);
        for (int64_t d = 0; d < D; d++)
            emb[i * D + d] = (float)(ss_rng_normal(&rng) * 0.4 +
                                     (d == lab[i] ? 3.0 : 0.0));
    }
    for (int i = 0; i < nl; i++)
        loss[i] = (float)(5.5 * exp(-i / 30.0) + 0.1 * ss_rng_uniform(&rng) + 1);
    const char *names[] = {"pretrained", "random init", "raw pixels"};
    const double acc[] = {0.874, 0.823, 0.841}, knn[] = {0.85, 0.79, 0.80};
    sst_report r = {0};
    r.title = "selfsup train --method simclr (test report)";
    r.loss = loss;
    r.n_loss = nl;
    r.loss_xlabel = "step";
    r.n_bars = 3;
    r.bar_names = names;
    r.bar_acc = acc;
    r.bar_acc2 = knn;
    r.emb = emb;
    r.labels = lab;
    r.n_emb = n;
    r.D = D;
    r.n_classes = 10;
    r.class_names = sst_fmnist_class_names;
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("report.png"));
    ss_status st = sst_report_png(path, &r);
    if (!sst_report_available()) {
        SS_CHECK_INT(st, SS_ERR_UNSUPPORTED);
        SS_CHECK_MSG_HAS("cairo");
        free(emb);
        return;
    }
    SS_CHECK_OK(st);
    long len = 0;
    char *b = slurp(path, &len);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n',
                                         0x1a, '\n'};
    SS_CHECK(b && len > 1000 && memcmp(b, sig, 8) == 0);
    /* IHDR: width 1500, height 520 (big-endian at bytes 16 and 20). */
    if (b && len > 24) {
        const unsigned char *u = (const unsigned char *)b;
        SS_CHECK_INT((u[16] << 24) | (u[17] << 16) | (u[18] << 8) | u[19], 1500);
        SS_CHECK_INT((u[20] << 24) | (u[21] << 16) | (u[22] << 8) | u[23], 520);
    }
    free(b);
    SS_CHECK_INT(leftovers(), 0);
    if (getenv("SS_KEEP_REPORT")) /* to look at it: SS_KEEP_REPORT=path */
        SS_CHECK_OK(sst_report_png(getenv("SS_KEEP_REPORT"), &r));
    /* Optional parts absent: still a valid PNG. */
    sst_report bare = {0};
    SS_CHECK_OK(sst_report_png(path, &bare));
    bare.n_loss = 1;
    bare.loss = loss;
    SS_CHECK_OK(sst_report_png(path, &bare));
    /* Errors: nothing replaces the good file. */
    r.labels = lab;
    lab[7] = 10;
    SS_CHECK_STATUS(sst_report_png(path, &r), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("labels[7] = 10");
    lab[7] = 7;
    loss[3] = NAN;
    SS_CHECK_STATUS(sst_report_png(path, &r), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("loss[3]");
    loss[3] = 1;
    r.n_bars = 9;
    SS_CHECK_STATUS(sst_report_png(path, &r), SS_ERR_SIZE);
    r.n_bars = 3;
    SS_CHECK_STATUS(sst_report_png("/nonexistent-dir/r.png", &r), SS_ERR_IO);
    SS_CHECK_MSG_HAS("/nonexistent-dir/r.png");
    SS_CHECK_STATUS(sst_report_png(NULL, &r), SS_ERR_NULL);
    SS_CHECK_INT(leftovers(), 0);
    free(emb);
    sst_report_cleanup(); /* cairo's font caches: leak-free under ASan */
    SS_CHECK_OK(sst_report_png(path, &bare)); /* caches come back */
    sst_report_cleanup();
}

SS_TEST(write_file_atomic_replaces) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("blob"));
    SS_CHECK_OK(sst_write_file_atomic(path, "old contents", 12));
    SS_CHECK_OK(sst_write_file_atomic(path, "new", 3));
    long len;
    char *s = slurp(path, &len);
    SS_CHECK(s && len == 3 && strcmp(s, "new") == 0);
    free(s);
    SS_CHECK_OK(sst_write_file_atomic(path, NULL, 0)); /* empty file */
    SS_CHECK_STATUS(sst_write_file_atomic(NULL, "x", 1), SS_ERR_NULL);
    SS_CHECK_INT(leftovers(), 0);
}
