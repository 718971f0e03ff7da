/*
 * internal.h - shared helpers of libselfsup. Not installed.
 *
 * Naming: internal symbols shared between files take the prefix ss__;
 * everything else is static.
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include "selfsup.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SS__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SS__PRINTF(a, b)
#endif

/* ---- errors ------------------------------------------------------------- */

/* Records "fn: <formatted message>" as this thread's ss_last_error() and
 * returns st, so that callers can write `return ss__fail(...)`. */
ss_status ss__fail(ss_status st, const char *fn, const char *fmt, ...)
    SS__PRINTF(3, 4);

/* Argument checks. Each returns SS_OK or the failing status (message set). */
ss_status ss__check_ptr(const char *fn, const char *name, const void *p);
/* lo <= value, and value <= SS_MAX_ELEMENTS. */
ss_status ss__check_size(const char *fn, const char *name, int64_t value,
                         int64_t lo);
/* a * b * c <= SS_MAX_ELEMENTS without overflow (all already >= 1). */
ss_status ss__check_product(const char *fn, int64_t a, int64_t b, int64_t c);
/* Finite and > 0. */
ss_status ss__check_positive(const char *fn, const char *name, double v);
/* Every x[i] finite; else SS_ERR_NONFINITE naming name[i] and its value. */
ss_status ss__check_finite(const char *fn, const char *name, const float *x,
                           int64_t n);

/* Propagate a failing status. */
#define SS_TRY(expr)                      \
    do {                                  \
        ss_status ss__st = (expr);        \
        if (ss__st != SS_OK) return ss__st; \
    } while (0)

/* ---- memory ------------------------------------------------------------- */

/* 64-byte aligned allocation; NULL on failure or n == 0. ss__free(NULL) is a
 * no-op. */
void *ss__malloc(size_t bytes);
void *ss__calloc(size_t bytes);
void ss__free(void *p);

/* ---- threads ------------------------------------------------------------ */

/* Threads a parallel region should use now (>= 1). */
int ss__threads(void);

#endif /* SS_INTERNAL_H */
