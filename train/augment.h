/*
 * augment.h - seeded, deterministic augmentations of small grayscale images
 * (internal to `selfsup train`).
 *
 * Images are float32 (1, H, W) planes with values in [0, 1]; a batch is
 * (N, H, W). Each op follows torchvision's semantics (named per op), drawing
 * its random numbers from an ss_rng. The batch pipeline gives image i its own
 * rng stream seeded from (seed, i), so the output depends on the seed only,
 * never on the thread count or on how the batch is split among threads.
 *
 * Pipeline order (SimCLR / BYOL): random resized crop -> horizontal flip ->
 * colour jitter (brightness, contrast; random order) -> Gaussian blur ->
 * solarize -> Gaussian noise -> random erasing. Each op fires with its
 * probability p (crop: p = 0 disables it, else it always fires as in
 * torchvision's RandomResizedCrop).
 */
#ifndef SST_AUGMENT_H
#define SST_AUGMENT_H

#include "selfsup.h"

#include <stdint.h>

typedef struct {
    /* RandomResizedCrop(size=(H, W), scale, ratio), bilinear. */
    float crop_p, crop_scale_min, crop_scale_max, crop_ratio_min,
        crop_ratio_max;
    /* RandomHorizontalFlip(flip_p). */
    float flip_p;
    /* RandomApply(ColorJitter(brightness, contrast), jitter_p): factors
     * uniform in [max(0, 1 - b), 1 + b]; results clamped to [0, 1]. */
    float jitter_p, brightness, contrast;
    /* RandomApply(GaussianBlur(blur_kernel, (sigma_min, sigma_max)), blur_p)
     * with reflect padding. blur_kernel odd >= 1. */
    float blur_p, blur_sigma_min, blur_sigma_max;
    int blur_kernel;
    /* RandomSolarize(threshold 0.5, solarize_p): x >= 0.5 -> 1 - x. */
    float solarize_p;
    /* Additive N(0, noise_std^2), clamped to [0, 1]. */
    float noise_p, noise_std;
    /* RandomErasing(erase_p, scale, ratio, value). */
    float erase_p, erase_scale_min, erase_scale_max, erase_ratio_min,
        erase_ratio_max, erase_value;
} sst_augment;

/* All ops off: the identity. */
sst_augment sst_augment_none(void);
/* Presets per method and view (view 0 or 1; BYOL's views differ):
 *   "simclr": crop scale (0.35, 1), flip 0.5, jitter 0.8 (0.4, 0.4);
 *             no blur, no erasing (small images: docs/RESULTS.md)
 *   "byol":   as simclr, blur 1.0 / 0.1 (k 3, sigma 0.1..2) and
 *             solarize 0 / 0.2 by view
 *   "mae":    crop scale (0.2, 1) and flip only           (minimal)
 * Other methods (barlow, vicreg, dino, combo) take the simclr preset.
 * Errors: SS_ERR_NULL, SS_ERR_PARAM for an unknown method name. */
ss_status sst_augment_preset(sst_augment *out, const char *method, int view);
/* Checks every field (probabilities in [0, 1], ordered ranges, positive
 * ratios and sigmas, odd kernel). Errors: SS_ERR_NULL, SS_ERR_PARAM naming
 * the field and value. */
ss_status sst_augment_check(const sst_augment *a);

/* out: (N, H, W) written; in: (N, H, W), values in [0, 1]; out may not alias
 * in. Image i uses rng stream sst_augment_stream(seed, i). OpenMP over
 * images. Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (as check),
 * SS_ERR_NOMEM. */
ss_status sst_augment_batch(float *out, const float *in, int64_t N, int64_t H,
                            int64_t W, const sst_augment *a, uint64_t seed);
/* The same for the images first .. first + N - 1 of a larger batch: image
 * i of in uses stream sst_augment_stream(seed, first + i), so that a rank
 * of data-parallel training that holds a slice of the global batch draws
 * exactly the views one process draws for those samples. first >= 0. */
ss_status sst_augment_batch_at(float *out, const float *in, int64_t N,
                               int64_t H, int64_t W, const sst_augment *a,
                               uint64_t seed, int64_t first);
/* One image (H, W) with an explicit rng; scratch: (H * W) floats. */
void sst_augment_image(float *out, const float *in, float *scratch, int64_t H,
                       int64_t W, const sst_augment *a, ss_rng *rng);
/* The rng of image i of a batch drawn with seed. */
void sst_augment_stream(ss_rng *rng, uint64_t seed, int64_t i);

/* ---- single ops (exposed for tests; no argument checks) ------------------
 * Crop window (top, left, height, width) as torchvision's
 * RandomResizedCrop.get_params: 10 tries, then the central-crop fallback. */
void sst_crop_params(int64_t *top, int64_t *left, int64_t *ch, int64_t *cw,
                     int64_t H, int64_t W, float scale_min, float scale_max,
                     float ratio_min, float ratio_max, ss_rng *rng);
/* out (H, W): bilinear resample of the window of in (H, W), as
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
 * antialias=False) of the cropped region (the window is never larger than
 * the output, so antialias would not change it). */
void sst_resized_crop(float *out, const float *in, int64_t H, int64_t W,
                      int64_t top, int64_t left, int64_t ch, int64_t cw);
void sst_hflip(float *x, int64_t H, int64_t W); /* in place */
/* torchvision adjust_brightness / adjust_contrast (grayscale mean), clamped
 * to [0, 1], in place on P pixels. */
void sst_adjust_brightness(float *x, int64_t P, float factor);
void sst_adjust_contrast(float *x, int64_t P, float factor);
/* Gaussian kernel of torchvision's _get_gaussian_kernel1d: k odd. */
void sst_gauss_kernel(float *k1d, int k, float sigma);
/* Separable blur with reflect padding (torch "reflect": edge not repeated);
 * tmp: (H, W). Needs k / 2 < min(H, W). */
void sst_gauss_blur(float *x, float *tmp, int64_t H, int64_t W, int k,
                    float sigma);
/* Erase window as torchvision's RandomErasing.get_params: 10 tries; returns
 * 0 (no erasing, window untouched) when none fits. */
int sst_erase_params(int64_t *top, int64_t *left, int64_t *eh, int64_t *ew,
                     int64_t H, int64_t W, float scale_min, float scale_max,
                     float ratio_min, float ratio_max, ss_rng *rng);

#endif
