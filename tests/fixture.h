/*
 * fixture.h - reader for PyTorch fixture files written by tests/ref/fixture.py.
 *
 * Format (little-endian): magic "SSFIXT01" (8 bytes), u32 version (= 1),
 * u32 count, then count entries of
 *   u32 name_len, name bytes, u32 dtype (0 float64, 1 int64), u32 ndim,
 *   i64 dims[ndim], 8-byte elements.
 * Fixtures live in $SS_FIXTURE_DIR, else the source tree's tests/fixtures.
 */
#ifndef SS_TEST_FIXTURE_H
#define SS_TEST_FIXTURE_H

#include <stdint.h>

typedef struct ss_fixture ss_fixture;

/* Loads <dir>/<file>; NULL (with a message on stderr) on any failure. */
ss_fixture *fx_load(const char *file);
void fx_free(ss_fixture *fx);
/* Entry by name; NULL when absent. n: element count. dims/ndim optional. */
const double *fx_f64(const ss_fixture *fx, const char *name, int64_t *n);
const int64_t *fx_i64(const ss_fixture *fx, const char *name, int64_t *n);
/* Scalar helpers: value of a 1-element entry (NaN / -1 when absent). */
double fx_scalar(const ss_fixture *fx, const char *name);
int64_t fx_int(const ss_fixture *fx, const char *name);
/* float32 copy of an f64 entry (caller frees); NULL when absent. */
float *fx_f32_copy(const ss_fixture *fx, const char *name, int64_t *n);

#endif
