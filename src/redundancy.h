/*
 * redundancy.h - argument checks and form choice shared by the two
 * moment-matrix losses, Barlow Twins (barlow.c) and VICReg (vicreg.c),
 * and their distributed forms (dist_stats.c).
 */
#ifndef SS_REDUNDANCY_H
#define SS_REDUNDANCY_H

#include "internal.h"

/* The form actually used: form itself, or for SS_MOMENT_AUTO the smaller
 * square matrix (Gram when N < D, else D x D). */
ss_moment_form ss__moment_pick(ss_moment_form form, int64_t N, int64_t D);

/* SS_ERR_PARAM unless form is SS_MOMENT_AUTO, _GRAM or _DXD. */
ss_status ss__check_moment_form(const char *fn, ss_moment_form form);

/* Backward's own arguments: da, db, cache non-NULL (SS_ERR_NULL) and dloss
 * finite (SS_ERR_NONFINITE). */
ss_status ss__check_view_backward(const char *fn, const float *da,
                                  const float *db, const void *cache,
                                  float dloss);

/* SS_ERR_STATE: the cache header does not match this call. */
ss_status ss__fail_cache_mismatch(const char *fn);

#endif
