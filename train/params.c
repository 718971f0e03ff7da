/*
 * params.c - the flat parameter / gradient arena (see engine.h).
 */
#include "engine.h"

#include "internal.h"

#include <math.h>
#include <string.h>

void sst_params_init(sst_params *P) { memset(P, 0, sizeof *P); }

ss_status sst_params_add(sst_params *P, const char *name, int64_t numel,
                         unsigned flags, int64_t *offset) {
    static const char fn[] = "sst_params_add";
    SS_TRY(ss__check_ptr(fn, "P", P));
    SS_TRY(ss__check_ptr(fn, "name", name));
    SS_TRY(ss__check_size(fn, "numel", numel, 1));
    if (P->data)
        return ss__fail(SS_ERR_PARAM, fn,
                        "tensor '%s' added after sst_params_alloc", name);
    if (P->count >= SST_MAX_TENSORS)
        return ss__fail(SS_ERR_SIZE, fn, "more than %d tensors (adding '%s')",
                        SST_MAX_TENSORS, name);
    if (strlen(name) >= sizeof P->t[0].name)
        return ss__fail(SS_ERR_PARAM, fn, "name '%s' longer than %d chars",
                        name, (int)sizeof P->t[0].name - 1);
    SS_TRY(ss__check_size(fn, "total numel", P->numel + numel, 1));
    sst_tensor *t = &P->t[P->count++];
    strcpy(t->name, name);
    /* 16-float alignment keeps every tensor 64-byte aligned for SIMD. */
    t->offset = (P->numel + 15) / 16 * 16;
    t->numel = numel;
    t->flags = flags;
    P->numel = t->offset + numel;
    if (offset) *offset = t->offset;
    return SS_OK;
}

ss_status sst_params_alloc(sst_params *P) {
    static const char fn[] = "sst_params_alloc";
    SS_TRY(ss__check_ptr(fn, "P", P));
    SS_TRY(ss__check_size(fn, "numel", P->numel, 1));
    P->data = ss__calloc((size_t)P->numel * sizeof(float));
    P->grad = ss__calloc((size_t)P->numel * sizeof(float));
    if (!P->data || !P->grad) {
        sst_params_free(P);
        return ss__fail(SS_ERR_NOMEM, fn, "2 x %lld floats",
                        (long long)P->numel);
    }
    return SS_OK;
}

float *sst_params_data(sst_params *P, int64_t offset) {
    return P->data + offset;
}
float *sst_params_grad(sst_params *P, int64_t offset) {
    return P->grad + offset;
}

void sst_params_zero_grad(sst_params *P) {
    if (P->grad) memset(P->grad, 0, (size_t)P->numel * sizeof(float));
}

int64_t sst_params_find(const sst_params *P, const char *name) {
    for (int64_t k = 0; P && name && k < P->count; k++)
        if (strcmp(P->t[k].name, name) == 0) return k;
    return -1;
}

void sst_init_torch_default(float *w, int64_t n, int64_t fan_in, ss_rng *rng) {
    const double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)((2.0 * ss_rng_uniform(rng) - 1.0) * bound);
}

void sst_params_free(sst_params *P) {
    if (!P) return;
    ss__free(P->data);
    ss__free(P->grad);
    P->data = P->grad = NULL;
}
