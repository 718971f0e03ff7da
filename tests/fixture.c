/* fixture.c - reader for PyTorch fixture files (format in fixture.h). */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    uint32_t dtype;
    int64_t n;
    void *data;
} fx_entry;

struct ss_fixture {
    uint32_t count;
    fx_entry *e;
};

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

void fx_free(ss_fixture *fx) {
    if (!fx) return;
    for (uint32_t i = 0; i < fx->count; i++) {
        free(fx->e[i].name);
        free(fx->e[i].data);
    }
    free(fx->e);
    free(fx);
}

static int read_entry(FILE *f, fx_entry *e) {
    uint32_t len, ndim;
    if (!rd(f, &len, 4) || len == 0 || len > 256) return 0;
    e->name = calloc(len + 1, 1);
    if (!e->name || !rd(f, e->name, len)) return 0;
    if (!rd(f, &e->dtype, 4) || e->dtype > 1) return 0;
    if (!rd(f, &ndim, 4) || ndim > 8) return 0;
    e->n = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        int64_t dim;
        if (!rd(f, &dim, 8) || dim < 0 || dim > (1 << 28)) return 0;
        e->n *= dim;
    }
    if (e->n > (1 << 28)) return 0;
    e->data = malloc((size_t)(e->n > 0 ? e->n : 1) * 8);
    return e->data && rd(f, e->data, (size_t)e->n * 8);
}

ss_fixture *fx_load(const char *file) {
    const char *dir = getenv("SS_FIXTURE_DIR");
    if (!dir || !*dir) dir = SS_FIXTURE_DIR_DEFAULT;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  cannot open fixture %s\n", path);
        return NULL;
    }
    char magic[8];
    uint32_t version;
    ss_fixture *fx = calloc(1, sizeof *fx);
    int ok = fx && rd(f, magic, 8) && memcmp(magic, "SSFIXT01", 8) == 0 &&
             rd(f, &version, 4) && version == 1 && rd(f, &fx->count, 4) &&
             fx->count < 100000;
    if (ok) {
        fx->e = calloc(fx->count ? fx->count : 1, sizeof *fx->e);
        ok = fx->e != NULL;
        for (uint32_t i = 0; ok && i < fx->count; i++) ok = read_entry(f, &fx->e[i]);
    }
    fclose(f);
    if (!ok) {
        fprintf(stderr, "  fixture %s is corrupt or truncated\n", path);
        if (fx && !fx->e) fx->count = 0;
        fx_free(fx);
        return NULL;
    }
    return fx;
}

static const fx_entry *find(const ss_fixture *fx, const char *name,
                            uint32_t dtype) {
    for (uint32_t i = 0; fx && i < fx->count; i++)
        if (fx->e[i].dtype == dtype && strcmp(fx->e[i].name, name) == 0)
            return &fx->e[i];
    return NULL;
}

const double *fx_f64(const ss_fixture *fx, const char *name, int64_t *n) {
    const fx_entry *e = find(fx, name, 0);
    if (n) *n = e ? e->n : 0;
    return e ? e->data : NULL;
}

const int64_t *fx_i64(const ss_fixture *fx, const char *name, int64_t *n) {
    const fx_entry *e = find(fx, name, 1);
    if (n) *n = e ? e->n : 0;
    return e ? e->data : NULL;
}

double fx_scalar(const ss_fixture *fx, const char *name) {
    int64_t n;
    const double *v = fx_f64(fx, name, &n);
    return v && n == 1 ? v[0] : NAN;
}

int64_t fx_int(const ss_fixture *fx, const char *name) {
    int64_t n;
    const int64_t *v = fx_i64(fx, name, &n);
    return v && n == 1 ? v[0] : -1;
}

float *fx_f32_copy(const ss_fixture *fx, const char *name, int64_t *n) {
    int64_t m;
    const double *v = fx_f64(fx, name, &m);
    if (n) *n = m;
    if (!v) return NULL;
    float *out = malloc((size_t)(m > 0 ? m : 1) * sizeof *out);
    for (int64_t i = 0; out && i < m; i++) out[i] = (float)v[i];
    return out;
}
