/* status.c - the status table, thread-local error detail, argument checks. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char ss__err_buf[512];

const char *ss_status_name(ss_status st) {
    switch (st) {
#define SS__NAME(name, code, text) \
    case SS_##name:                \
        return "SS_" #name;
        SS_STATUS_MAP(SS__NAME)
#undef SS__NAME
    }
    return "SS_UNKNOWN";
}

const char *ss_strerror(ss_status st) {
    switch (st) {
#define SS__TEXT(name, code, text) \
    case SS_##name:                \
        return text;
        SS_STATUS_MAP(SS__TEXT)
#undef SS__TEXT
    }
    return "unknown status code";
}

const char *ss_last_error(void) { return ss__err_buf; }

ss_status ss__fail(ss_status st, const char *fn, const char *fmt, ...) {
    int k = snprintf(ss__err_buf, sizeof ss__err_buf, "%s: ", fn);
    if (k < 0 || (size_t)k >= sizeof ss__err_buf) k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ss__err_buf + k, sizeof ss__err_buf - (size_t)k, fmt, ap);
    va_end(ap);
    return st;
}

ss_status ss__check_ptr(const char *fn, const char *name, const void *p) {
    if (p) return SS_OK;
    return ss__fail(SS_ERR_NULL, fn, "%s must not be NULL", name);
}

ss_status ss__check_size(const char *fn, const char *name, int64_t value,
                         int64_t lo) {
    if (value < lo)
        return ss__fail(SS_ERR_SIZE, fn, "%s must be >= %lld, got %lld", name,
                        (long long)lo, (long long)value);
    if (value > SS_MAX_ELEMENTS)
        return ss__fail(SS_ERR_SIZE, fn, "%s must be <= 2^40, got %lld", name,
                        (long long)value);
    return SS_OK;
}

ss_status ss__check_product(const char *fn, int64_t a, int64_t b, int64_t c) {
    if (a > SS_MAX_ELEMENTS / b || a * b > SS_MAX_ELEMENTS / c)
        return ss__fail(SS_ERR_SIZE, fn,
                        "%lld x %lld x %lld elements exceed 2^40",
                        (long long)a, (long long)b, (long long)c);
    return SS_OK;
}

ss_status ss__check_positive(const char *fn, const char *name, double v) {
    if (isfinite(v) && v > 0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "%s must be finite and > 0, got %g",
                    name, v);
}

ss_status ss__check_finite(const char *fn, const char *name, const float *x,
                           int64_t n) {
    int64_t bad = n; /* first non-finite index; n when none */
#ifdef _OPENMP
#pragma omp parallel for reduction(min : bad) if (n > (1 << 20)) \
    num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) && i < bad) bad = i;
    if (bad >= n) return SS_OK;
    return ss__fail(SS_ERR_NONFINITE, fn, "%s[%lld] is %g (not finite)", name,
                    (long long)bad, (double)x[bad]);
}
