/*
 * dist_clip_internal.h - the cache checks that the all-gather
 * (dist_clip.c) and ring (dist_ring_cross.c) forms of CLIP and SigLIP
 * share. Defined in dist_clip.c.
 */
#ifndef SS_DIST_CLIP_INTERNAL_H
#define SS_DIST_CLIP_INTERNAL_H

#include "selfsup.h"

#include <stdint.h>

/* The cross cache header (kernels/cross.h) matches the call (all but K,
 * the forward's global batch, returned in *K): SS_ERR_STATE otherwise. */
ss_status ss__dclip_check_cache(const char *fn, const void *cache,
                                uint64_t magic, int64_t N, int64_t D,
                                float p0, float p1, int cosine, int64_t *K);

/* After the agreement: the cache's global batch K is this call's Ntot. */
ss_status ss__dclip_check_ntot(const char *fn, int64_t K, int64_t Ntot);

#endif
