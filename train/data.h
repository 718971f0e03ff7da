/*
 * data.h - image datasets in IDX files (Fashion-MNIST, MNIST, ...) and a
 * seeded shuffling batch loader (internal to `selfsup train`).
 *
 * IDX (LeCun's MNIST format): big-endian. Bytes 0-1 are zero, byte 2 is the
 * element type (0x08 = unsigned byte, the only type accepted here), byte 3
 * the number of dimensions; then one u32 per dimension, then the data.
 * Images are idx3 (N, H, W), labels idx1 (N). Files may be plain or gzipped:
 * zlib's gzread reads both transparently.
 *
 * Labels are kept apart from images on purpose: pretraining loads images
 * only (sst_dataset_load_images); evaluation loads labels as well
 * (sst_dataset_load_labels), checking their count against the images.
 *
 * Errors: a missing dataset is SS_ERR_IO with a message saying how to get
 * it; a corrupt or truncated file is SS_ERR_FORMAT naming the file and the
 * byte offset (of the decompressed stream for .gz files).
 */
#ifndef SST_DATA_H
#define SST_DATA_H

#include "selfsup.h"

#include <stdint.h>

/* Debian's dataset-fashion-mnist installs the four .gz files here. */
#define SST_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SST_FMNIST_CLASSES 10
/* Class names of Fashion-MNIST, index = label. */
extern const char *const sst_fmnist_class_names[SST_FMNIST_CLASSES];

/* Images (N, H, W) of uint8 pixels, row-major. Owned by the struct. */
typedef struct {
    int64_t n, h, w;
    uint8_t *pixels;
} sst_images;

/* Labels (N) of uint8 class indices. n_classes = max label + 1. */
typedef struct {
    int64_t n;
    int n_classes;
    uint8_t *labels;
} sst_labels;

typedef enum { SST_SPLIT_TRAIN = 0, SST_SPLIT_TEST = 1 } sst_split;

/* Reads one idx3 ubyte file (plain or .gz) into *out (allocated; free with
 * sst_images_free). On failure *out is zeroed.
 * Errors: SS_ERR_NULL; SS_ERR_IO (cannot open: names the path and errno);
 * SS_ERR_FORMAT (bad magic, zero or oversized dims, short read, trailing
 * bytes, corrupt gzip stream: names the file and the byte offset);
 * SS_ERR_NOMEM. */
ss_status sst_idx_read_images(sst_images *out, const char *path);
/* Same for an idx1 ubyte label file. */
ss_status sst_idx_read_labels(sst_labels *out, const char *path);

/* Writes an IDX file (gzipped when gz != 0, else plain). For tests and
 * tooling. pixels: (n, h, w). Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_IO. */
ss_status sst_idx_write_images(const char *path, const uint8_t *pixels,
                               int64_t n, int64_t h, int64_t w, int gz);
ss_status sst_idx_write_labels(const char *path, const uint8_t *labels,
                               int64_t n, int gz);

/* Loads the images of a split from dir (NULL: SST_FMNIST_DIR). Looks for
 * "<train|t10k>-images-idx3-ubyte" with ".gz" first, then plain, then the
 * "<split>-images.idx3-ubyte" spelling.
 * Errors: SS_ERR_IO when no candidate exists, with a message naming dir and
 * saying `apt-get install dataset-fashion-mnist` or pass --data DIR; else
 * as sst_idx_read_images. */
ss_status sst_dataset_load_images(sst_images *out, const char *dir,
                                  sst_split split);
/* Labels of a split. expect_n > 0: the image count they must match
 * (SS_ERR_FORMAT naming the label file and byte offset 4 otherwise);
 * 0 skips the check. */
ss_status sst_dataset_load_labels(sst_labels *out, const char *dir,
                                  sst_split split, int64_t expect_n);

/* Frees what the struct owns and zeroes it. NULL is a no-op. */
void sst_images_free(sst_images *im);
void sst_labels_free(sst_labels *lb);

/* out: (count, H * W) floats in [0, 1] (pixel / 255) of images idx[0..count)
 * (idx NULL: images first .. first + count). first is ignored when idx is
 * given. Errors: SS_ERR_NULL, SS_ERR_SIZE (index out of range, naming it). */
ss_status sst_images_to_float(float *out, const sst_images *im,
                              const int64_t *idx, int64_t first,
                              int64_t count);

/* ---- seeded shuffling batch loader ----------------------------------------
 * Each epoch visits a fresh permutation of 0..n-1 drawn from rng (Fisher-
 * Yates); the stream is fully determined by the seed. drop_last skips the
 * final partial batch (useful for BatchNorm and contrastive batches).
 */
typedef struct {
    int64_t n, batch, pos, epoch;
    int drop_last;
    int64_t *order; /* (n) current permutation, owned */
    ss_rng rng;
} sst_loader;

/* Errors: SS_ERR_NULL, SS_ERR_SIZE (n, batch < 1, batch > n with drop_last),
 * SS_ERR_NOMEM. */
ss_status sst_loader_init(sst_loader *ld, int64_t n, int64_t batch,
                          uint64_t seed, int drop_last);
/* Batches per epoch. */
int64_t sst_loader_batches(const sst_loader *ld);
/* Next batch: writes up to ld->batch indices to idx and their count to
 * *count. At the end of an epoch it reshuffles, bumps ld->epoch and starts
 * the next one, so *count >= 1 always. *new_epoch (may be NULL) is set to 1
 * when this batch is the first of an epoch after the first. */
ss_status sst_loader_next(sst_loader *ld, int64_t *idx, int64_t *count,
                          int *new_epoch);
void sst_loader_free(sst_loader *ld);

#endif
