/* data.c - IDX files (plain or gzipped, via zlib) and the batch loader. */
#include "data.h"

#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

const char *const sst_fmnist_class_names[SST_FMNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_SIDE 65535
/* Buffers grow as data arrives, so a corrupt header claiming terabytes gives
 * a short-read SS_ERR_FORMAT, not a huge allocation. */
#define IDX_CHUNK ((int64_t)1 << 24)

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    gzFile gz;
    const char *path;
    int64_t off; /* bytes of the (decompressed) stream consumed */
} idx_reader;

static ss_status idx_open(idx_reader *r, const char *fn, const char *path) {
    r->path = path;
    r->off = 0;
    FILE *f = fopen(path, "rb"); /* for an errno-bearing message */
    if (!f)
        return ss__fail(SS_ERR_IO, fn, "cannot open '%s': %s", path,
                        strerror(errno));
    fclose(f);
    struct stat s;
    if (stat(path, &s) != 0 || !S_ISREG(s.st_mode))
        return ss__fail(SS_ERR_IO, fn, "cannot read '%s': not a regular file",
                        path);
    r->gz = gzopen(path, "rb");
    if (!r->gz)
        return ss__fail(SS_ERR_IO, fn, "cannot open '%s'", path);
    return SS_OK;
}

/* Reads up to n bytes; *got is how many arrived. A zlib error (corrupt
 * stream) is SS_ERR_FORMAT at the current offset. */
static ss_status idx_read_some(idx_reader *r, const char *fn, void *dst,
                               int64_t n, int64_t *got) {
    *got = 0;
    while (*got < n) {
        int64_t want = n - *got;
        unsigned ask = want > INT_MAX / 2 ? INT_MAX / 2 : (unsigned)want;
        int k = gzread(r->gz, (char *)dst + *got, ask);
        if (k < 0 || (k == 0 && !gzeof(r->gz))) {
            int zerr;
            const char *msg = gzerror(r->gz, &zerr);
            return ss__fail(SS_ERR_FORMAT, fn,
                            "'%s': corrupt compressed data near byte offset "
                            "%lld: %s", r->path,
                            (long long)(r->off + *got), msg);
        }
        if (k == 0) break;
        *got += k;
    }
    /* gzread reports a truncated gzip stream only through gzerror. */
    int zerr = Z_OK;
    gzerror(r->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        const char *msg = gzerror(r->gz, &zerr);
        return ss__fail(SS_ERR_FORMAT, fn,
                        "'%s': truncated or corrupt compressed data at byte "
                        "offset %lld: %s",
                        r->path, (long long)(r->off + *got), msg);
    }
    r->off += *got;
    return SS_OK;
}

static ss_status idx_read_exact(idx_reader *r, const char *fn, void *dst,
                                int64_t n, const char *what) {
    int64_t got;
    int64_t at = r->off;
    SS_TRY(idx_read_some(r, fn, dst, n, &got));
    if (got < n)
        return ss__fail(SS_ERR_FORMAT, fn,
                        "'%s': truncated %s at byte offset %lld (needed %lld "
                        "bytes, got %lld)",
                        r->path, what, (long long)(at + got), (long long)n,
                        (long long)got);
    return SS_OK;
}

static uint32_t be32(const unsigned char *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
           ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

/* Header: magic then ndim big-endian u32 dims, each in [1, max_dim[i]]. */
static ss_status idx_read_header(idx_reader *r, const char *fn, int ndim,
                                 int64_t *dims, const int64_t *max_dim) {
    unsigned char m[4];
    SS_TRY(idx_read_exact(r, fn, m, 4, "header (magic)"));
    if (m[0] != 0 || m[1] != 0 || m[2] != IDX_TYPE_UBYTE || m[3] != ndim)
        return ss__fail(SS_ERR_FORMAT, fn,
                        "'%s': bad magic 0x%02x%02x%02x%02x at byte offset 0, "
                        "want 0x000008%02x (idx%d unsigned byte)",
                        r->path, m[0], m[1], m[2], m[3], ndim, ndim);
    for (int i = 0; i < ndim; i++) {
        unsigned char b[4];
        int64_t at = r->off;
        SS_TRY(idx_read_exact(r, fn, b, 4, "header (dimensions)"));
        dims[i] = be32(b);
        if (dims[i] < 1 || dims[i] > max_dim[i])
            return ss__fail(SS_ERR_FORMAT, fn,
                            "'%s': dimension %d is %lld at byte offset %lld, "
                            "want 1..%lld",
                            r->path, i, (long long)dims[i], (long long)at,
                            (long long)max_dim[i]);
    }
    return SS_OK;
}

/* Reads exactly total payload bytes into a growing buffer, then checks that
 * the file ends there. */
static ss_status idx_read_payload(idx_reader *r, const char *fn,
                                  uint8_t **out, int64_t total) {
    int64_t have = 0, cap = 0;
    uint8_t *buf = NULL;
    ss_status st = SS_OK;
    while (have < total) {
        if (have == cap) {
            int64_t ncap = cap ? 2 * cap : IDX_CHUNK;
            if (ncap > total) ncap = total;
            uint8_t *nb = realloc(buf, (size_t)ncap);
            if (!nb) {
                st = ss__fail(SS_ERR_NOMEM, fn, "'%s': cannot allocate %lld "
                              "bytes", r->path, (long long)ncap);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        int64_t got, want = cap - have;
        st = idx_read_some(r, fn, buf + have, want, &got);
        if (st != SS_OK) goto fail;
        have += got;
        if (got < want) { /* end of file before the announced size */
            st = ss__fail(SS_ERR_FORMAT, fn,
                          "'%s': truncated data at byte offset %lld: the "
                          "header announces %lld data bytes, the file has "
                          "%lld",
                          r->path, (long long)r->off, (long long)total,
                          (long long)have);
            goto fail;
        }
    }
    unsigned char extra;
    int64_t got;
    st = idx_read_some(r, fn, &extra, 1, &got);
    if (st != SS_OK) goto fail;
    if (got != 0) {
        st = ss__fail(SS_ERR_FORMAT, fn,
                      "'%s': unexpected trailing bytes at byte offset %lld "
                      "(the header announces %lld data bytes)",
                      r->path, (long long)(r->off - 1), (long long)total);
        goto fail;
    }
    *out = buf;
    return SS_OK;
fail:
    free(buf);
    return st;
}

ss_status sst_idx_read_images(sst_images *out, const char *path) {
    const char *fn = "sst_idx_read_images";
    SS_TRY(ss__check_ptr(fn, "out", out));
    memset(out, 0, sizeof *out);
    SS_TRY(ss__check_ptr(fn, "path", path));
    idx_reader r;
    SS_TRY(idx_open(&r, fn, path));
    int64_t dims[3] = {0, 0, 0};
    const int64_t max_dim[3] = {INT32_MAX, IDX_MAX_SIDE, IDX_MAX_SIDE};
    uint8_t *px = NULL;
    ss_status st = idx_read_header(&r, fn, 3, dims, max_dim);
    if (st == SS_OK && ss__check_product(fn, dims[0], dims[1], dims[2]))
        st = ss__fail(SS_ERR_FORMAT, fn, "'%s': the header (byte offsets "
                      "4..15) announces %lld x %lld x %lld pixels, above 2^40",
                      path, (long long)dims[0], (long long)dims[1],
                      (long long)dims[2]);
    if (st == SS_OK)
        st = idx_read_payload(&r, fn, &px, dims[0] * dims[1] * dims[2]);
    gzclose(r.gz);
    if (st != SS_OK) return st;
    out->n = dims[0];
    out->h = dims[1];
    out->w = dims[2];
    out->pixels = px;
    return SS_OK;
}

ss_status sst_idx_read_labels(sst_labels *out, const char *path) {
    const char *fn = "sst_idx_read_labels";
    SS_TRY(ss__check_ptr(fn, "out", out));
    memset(out, 0, sizeof *out);
    SS_TRY(ss__check_ptr(fn, "path", path));
    idx_reader r;
    SS_TRY(idx_open(&r, fn, path));
    int64_t n = 0;
    const int64_t max_dim[1] = {INT32_MAX};
    uint8_t *lb = NULL;
    ss_status st = idx_read_header(&r, fn, 1, &n, max_dim);
    if (st == SS_OK) st = idx_read_payload(&r, fn, &lb, n);
    gzclose(r.gz);
    if (st != SS_OK) return st;
    int maxl = 0;
    for (int64_t i = 0; i < n; i++)
        if (lb[i] > maxl) maxl = lb[i];
    out->n = n;
    out->n_classes = maxl + 1;
    out->labels = lb;
    return SS_OK;
}

/* ---- writing ------------------------------------------------------------ */

static ss_status idx_write(const char *fn, const char *path, int ndim,
                           const int64_t *dims, const uint8_t *data, int gz) {
    unsigned char hdr[16] = {0, 0, IDX_TYPE_UBYTE, (unsigned char)ndim};
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        SS_TRY(ss__check_size(fn, i == 0 ? "n" : "h/w", dims[i], 1));
        if (dims[i] > UINT32_MAX)
            return ss__fail(SS_ERR_SIZE, fn, "dimension %d is %lld, above "
                            "2^32 - 1", i, (long long)dims[i]);
        uint32_t d = (uint32_t)dims[i];
        unsigned char *b = hdr + 4 + 4 * i;
        b[0] = (unsigned char)(d >> 24);
        b[1] = (unsigned char)(d >> 16);
        b[2] = (unsigned char)(d >> 8);
        b[3] = (unsigned char)d;
        total *= dims[i];
    }
    gzFile f = gzopen(path, gz ? "wb6" : "wbT");
    if (!f)
        return ss__fail(SS_ERR_IO, fn, "cannot create '%s': %s", path,
                        strerror(errno));
    int ok = gzwrite(f, hdr, (unsigned)(4 + 4 * ndim)) == 4 + 4 * ndim;
    for (int64_t off = 0; ok && off < total;) {
        int64_t k = total - off > (1 << 26) ? (1 << 26) : total - off;
        ok = gzwrite(f, data + off, (unsigned)k) == (int)k;
        off += k;
    }
    if (gzclose(f) != Z_OK) ok = 0;
    if (!ok)
        return ss__fail(SS_ERR_IO, fn, "cannot write '%s'", path);
    return SS_OK;
}

ss_status sst_idx_write_images(const char *path, const uint8_t *pixels,
                               int64_t n, int64_t h, int64_t w, int gz) {
    const char *fn = "sst_idx_write_images";
    SS_TRY(ss__check_ptr(fn, "path", path));
    SS_TRY(ss__check_ptr(fn, "pixels", pixels));
    const int64_t dims[3] = {n, h, w};
    return idx_write(fn, path, 3, dims, pixels, gz);
}

ss_status sst_idx_write_labels(const char *path, const uint8_t *labels,
                               int64_t n, int gz) {
    const char *fn = "sst_idx_write_labels";
    SS_TRY(ss__check_ptr(fn, "path", path));
    SS_TRY(ss__check_ptr(fn, "labels", labels));
    return idx_write(fn, path, 1, &n, labels, gz);
}

/* ---- datasets ----------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* Finds the file of split/kind ("images", 3 or "labels", 1) in dir. */
static ss_status dataset_find(char *path, size_t cap, const char *fn,
                              const char *dir, sst_split split,
                              const char *kind, int ndim) {
    const char *pre = split == SST_SPLIT_TRAIN ? "train" : "t10k";
    const char *fmts[] = {"%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s-idx%d-ubyte",
                          "%s/%s-%s.idx%d-ubyte.gz", "%s/%s-%s.idx%d-ubyte"};
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        snprintf(path, cap, fmts[i], dir, pre, kind, ndim);
        if (file_exists(path)) return SS_OK;
    }
    struct stat s;
    const char *why = stat(dir, &s) != 0 ? "the folder does not exist"
                                         : "no such IDX file there";
    return ss__fail(SS_ERR_IO, fn,
                    "dataset not found: '%s/%s-%s-idx%d-ubyte.gz' (%s). "
                    "Install Fashion-MNIST with `apt-get install "
                    "dataset-fashion-mnist` or pass --data DIR with IDX files",
                    dir, pre, kind, ndim, why);
}

ss_status sst_dataset_load_images(sst_images *out, const char *dir,
                                  sst_split split) {
    const char *fn = "sst_dataset_load_images";
    SS_TRY(ss__check_ptr(fn, "out", out));
    memset(out, 0, sizeof *out);
    char path[4096];
    SS_TRY(dataset_find(path, sizeof path, fn, dir ? dir : SST_FMNIST_DIR,
                        split, "images", 3));
    return sst_idx_read_images(out, path);
}

ss_status sst_dataset_load_labels(sst_labels *out, const char *dir,
                                  sst_split split, int64_t expect_n) {
    const char *fn = "sst_dataset_load_labels";
    SS_TRY(ss__check_ptr(fn, "out", out));
    memset(out, 0, sizeof *out);
    char path[4096];
    SS_TRY(dataset_find(path, sizeof path, fn, dir ? dir : SST_FMNIST_DIR,
                        split, "labels", 1));
    SS_TRY(sst_idx_read_labels(out, path));
    if (expect_n > 0 && out->n != expect_n) {
        long long got = (long long)out->n;
        sst_labels_free(out);
        return ss__fail(SS_ERR_FORMAT, fn,
                        "'%s': %lld labels (count at byte offset 4) but %lld "
                        "images",
                        path, got, (long long)expect_n);
    }
    return SS_OK;
}

void sst_images_free(sst_images *im) {
    if (!im) return;
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

void sst_labels_free(sst_labels *lb) {
    if (!lb) return;
    free(lb->labels);
    memset(lb, 0, sizeof *lb);
}

ss_status sst_images_to_float(float *out, const sst_images *im,
                              const int64_t *idx, int64_t first,
                              int64_t count) {
    const char *fn = "sst_images_to_float";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "im", im));
    SS_TRY(ss__check_ptr(fn, "im->pixels", im->pixels));
    SS_TRY(ss__check_size(fn, "count", count, 1));
    if (!idx && (first < 0 || first > im->n - count))
        return ss__fail(SS_ERR_SIZE, fn, "images %lld..%lld out of range "
                        "0..%lld", (long long)first,
                        (long long)(first + count - 1), (long long)(im->n - 1));
    for (int64_t i = 0; idx && i < count; i++)
        if (idx[i] < 0 || idx[i] >= im->n)
            return ss__fail(SS_ERR_SIZE, fn, "idx[%lld] = %lld out of range "
                            "0..%lld", (long long)i, (long long)idx[i],
                            (long long)(im->n - 1));
    const int64_t P = im->h * im->w;
    const float s = 1.0f / 255.0f;
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *src = im->pixels + (idx ? idx[i] : first + i) * P;
        float *dst = out + i * P;
        for (int64_t p = 0; p < P; p++) dst[p] = (float)src[p] * s;
    }
    return SS_OK;
}

/* ---- loader ------------------------------------------------------------- */

static void loader_shuffle(sst_loader *ld) {
    for (int64_t i = 0; i < ld->n; i++) ld->order[i] = i;
    for (int64_t i = ld->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(ss_rng_u64(&ld->rng) % (uint64_t)(i + 1));
        int64_t t = ld->order[i];
        ld->order[i] = ld->order[j];
        ld->order[j] = t;
    }
}

ss_status sst_loader_init(sst_loader *ld, int64_t n, int64_t batch,
                          uint64_t seed, int drop_last) {
    const char *fn = "sst_loader_init";
    SS_TRY(ss__check_ptr(fn, "ld", ld));
    memset(ld, 0, sizeof *ld);
    SS_TRY(ss__check_size(fn, "n", n, 1));
    SS_TRY(ss__check_size(fn, "batch", batch, 1));
    if (drop_last && batch > n)
        return ss__fail(SS_ERR_SIZE, fn, "batch %lld exceeds n %lld with "
                        "drop_last", (long long)batch, (long long)n);
    ld->order = malloc((size_t)n * sizeof *ld->order);
    if (!ld->order)
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate %lld indices",
                        (long long)n);
    ld->n = n;
    ld->batch = batch;
    ld->drop_last = drop_last;
    ss_rng_seed(&ld->rng, seed);
    loader_shuffle(ld);
    return SS_OK;
}

int64_t sst_loader_batches(const sst_loader *ld) {
    return ld->drop_last ? ld->n / ld->batch
                         : (ld->n + ld->batch - 1) / ld->batch;
}

ss_status sst_loader_next(sst_loader *ld, int64_t *idx, int64_t *count,
                          int *new_epoch) {
    const char *fn = "sst_loader_next";
    SS_TRY(ss__check_ptr(fn, "ld", ld));
    SS_TRY(ss__check_ptr(fn, "ld->order", ld->order));
    SS_TRY(ss__check_ptr(fn, "idx", idx));
    SS_TRY(ss__check_ptr(fn, "count", count));
    int64_t left = ld->n - ld->pos;
    int fresh = 0;
    if (left == 0 || (ld->drop_last && left < ld->batch)) {
        loader_shuffle(ld);
        ld->pos = 0;
        ld->epoch++;
        left = ld->n;
        fresh = 1;
    }
    int64_t k = left < ld->batch ? left : ld->batch;
    memcpy(idx, ld->order + ld->pos, (size_t)k * sizeof *idx);
    ld->pos += k;
    *count = k;
    if (new_epoch) *new_epoch = fresh;
    return SS_OK;
}

void sst_loader_free(sst_loader *ld) {
    if (!ld) return;
    free(ld->order);
    memset(ld, 0, sizeof *ld);
}
