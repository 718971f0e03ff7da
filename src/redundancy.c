/*
 * redundancy.c - checks shared by Barlow Twins and VICReg, local and
 * distributed (redundancy.h).
 */
#include "redundancy.h"

ss_moment_form ss__moment_pick(ss_moment_form form, int64_t N, int64_t D) {
    if (form != SS_MOMENT_AUTO) return form;
    return N < D ? SS_MOMENT_GRAM : SS_MOMENT_DXD;
}

ss_status ss__check_moment_form(const char *fn, ss_moment_form form) {
    if (form != SS_MOMENT_AUTO && form != SS_MOMENT_GRAM &&
        form != SS_MOMENT_DXD)
        return ss__fail(SS_ERR_PARAM, fn, "form must be SS_MOMENT_AUTO, _GRAM or "
                        "_DXD, got %d", (int)form);
    return SS_OK;
}

ss_status ss__check_view_backward(const char *fn, const float *da,
                                  const float *db, const void *cache,
                                  float dloss) {
    SS_TRY(ss__check_ptr(fn, "da", da));
    SS_TRY(ss__check_ptr(fn, "db", db));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    return SS_OK;
}

ss_status ss__fail_cache_mismatch(const char *fn) {
    return ss__fail(SS_ERR_STATE, fn,
                    "cache was not written by the matching forward call "
                    "(same sizes and options)");
}
