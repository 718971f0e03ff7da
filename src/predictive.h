/*
 * predictive.h - helpers shared by the predictive family (mlm.c,
 * fused_ce.c). Not installed.
 */
#ifndef SS_PREDICTIVE_H
#define SS_PREDICTIVE_H

#include "internal.h"

/* Every targets[t] is in [0, V) or equals ignore; else SS_ERR_LABEL naming
 * the first bad index and its value. *n_scored: rows not ignored. */
ss_status ss__check_targets(const char *fn, const int64_t *targets,
                            int64_t T, int64_t V, int64_t ignore,
                            int64_t *n_scored);
/* w NULL, or every w[c] (V of them) finite and >= 0. */
ss_status ss__check_class_weights(const char *fn, const float *w, int64_t V);
/* label_smoothing in [0, 1]. */
ss_status ss__check_smoothing(const char *fn, float eps);

/* Bytes of logits per row block in fused_ce.c (default 32 MiB). Tests
 * lower it to exercise many row blocks on small inputs. */
extern size_t ss__fce_block_bytes;

#endif
