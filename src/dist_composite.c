/*
 * dist_composite.c - ss_dist_composite_*: the composite objective over
 * ranks. Same spec strings and term table as ss_composite (composite.c
 * parses and runs the pass); each term is dispatched to its ss_dist_*
 * function, so every term value is the global batch's and the gradients
 * follow the mean convention. The ranks agree once, before any term, on
 * the local checks, the spec (names, parameters) and the weights; each
 * term then agrees on its own sizes and options inside its ss_dist_* call.
 */
#include "comm_internal.h"
#include "composite.h"

#include <string.h>

#define COMM(p) ((const ss_comm *)(p)->ctx)
#define ZA(in) ((in)->z)
#define ZB(in) ((in)->z + (in)->N * (in)->D)

typedef ss_status (*cache_fn)(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in);
typedef ss_status (*fwd_fn)(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m);
typedef ss_status (*bwd_fn)(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m);

static ss_status sized(size_t *b, size_t bytes) {
    *b = bytes;
    return bytes ? SS_OK : SS_ERR_SIZE;
}
static ss_status no_cache(size_t *b, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    (void)o, (void)in;
    *b = 0;
    return SS_OK;
}

/* ---- z (V, N, D) terms -------------------------------------------------- */

static ss_status ntxent_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    return sized(b, ss_dist_ntxent_cache_size(in->V, in->N, in->D));
}
static ss_status ntxent_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_ntxent_forward(l, NULL, c, in->z, in->V, in->N, in->D,
                                  &o->ntxent, m);
}
static ss_status ntxent_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_ntxent_backward(g->dz, dl, c, in->z, in->V, in->N, in->D,
                                   &o->ntxent, m);
}

static ss_status supcon_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    return sized(b, ss_dist_supcon_cache_size(in->V, in->N, in->D));
}
static ss_status supcon_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_supcon_forward(l, NULL, c, in->z, in->labels, in->V, in->N,
                                  in->D, &o->supcon, m);
}
static ss_status supcon_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_supcon_backward(g->dz, dl, c, in->z, in->labels, in->V,
                                   in->N, in->D, &o->supcon, m);
}

static ss_status dcl_cache(size_t *b, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    (void)o;
    return sized(b, ss_dist_dcl_cache_size(in->V, in->N, in->D));
}
static ss_status dcl_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_dcl_forward(l, NULL, c, in->z, in->V, in->N, in->D, &o->dcl,
                               m);
}
static ss_status dcl_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in,
                         const ss_comm *m) {
    return ss_dist_dcl_backward(g->dz, dl, c, in->z, in->V, in->N, in->D,
                                &o->dcl, m);
}

/* KoLeo: the mean over the V views, one cache per view (as
 * composite_terms.c). */
static size_t koleo_stride(const ss_composite_inputs *in) {
    size_t one = ss_dist_koleo_cache_size(in->N, in->D);
    return (one + 63) / 64 * 64;
}
static ss_status koleo_cache(size_t *b, const ss__term_opts *o,
                             const ss_composite_inputs *in) {
    (void)o;
    size_t s = koleo_stride(in);
    return sized(b, s * (size_t)(in->V > 0 ? in->V : 0));
}
static ss_status koleo_fwd(float *l, void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in, const ss_comm *m) {
    size_t s = koleo_stride(in);
    double acc = 0.0;
    for (int64_t v = 0; v < in->V; v++) {
        float lv;
        SS_TRY(ss_dist_koleo_forward(&lv, NULL, (char *)c + (size_t)v * s,
                                     in->z + v * in->N * in->D, in->N, in->D,
                                     &o->koleo, m));
        acc += lv;
    }
    *l = (float)(acc / (double)in->V);
    return SS_OK;
}
static ss_status koleo_bwd(const ss_composite_grads *g, float dl,
                           const void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in, const ss_comm *m) {
    size_t s = koleo_stride(in);
    float dv = (float)((double)dl / (double)in->V);
    for (int64_t v = 0; v < in->V; v++) {
        int64_t off = v * in->N * in->D;
        SS_TRY(ss_dist_koleo_backward(g->dz + off, dv,
                                      (const char *)c + (size_t)v * s,
                                      in->z + off, in->N, in->D, &o->koleo, m));
    }
    return SS_OK;
}

/* ---- pairwise terms: a = z[0], b = z[1] --------------------------------- */

static ss_status clip_cache(size_t *b, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_clip_cache_size(in->N, in->D));
}
static ss_status clip_fwd(float *l, void *c, const ss__term_opts *o,
                          const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_clip_forward(l, NULL, c, ZA(in), ZB(in), o->clip.log_scale,
                                in->N, in->D, &o->clip.o, m);
}
static ss_status clip_bwd(const ss_composite_grads *g, float dl, const void *c,
                          const ss__term_opts *o, const ss_composite_inputs *in,
                          const ss_comm *m) {
    return ss_dist_clip_backward(g->dz, g->dz + in->N * in->D, NULL, dl, c,
                                 ZA(in), ZB(in), o->clip.log_scale, in->N,
                                 in->D, &o->clip.o, m);
}

static ss_status siglip_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_siglip_cache_size(in->N, in->D));
}
static ss_status siglip_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_siglip_forward(l, NULL, c, ZA(in), ZB(in), o->siglip.log_t,
                                  o->siglip.bias, in->N, in->D, &o->siglip.o,
                                  m);
}
static ss_status siglip_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_siglip_backward(g->dz, g->dz + in->N * in->D, NULL, NULL,
                                   dl, c, ZA(in), ZB(in), o->siglip.log_t,
                                   o->siglip.bias, in->N, in->D, &o->siglip.o,
                                   m);
}

static ss_status negcos_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_negcos_sym_cache_size(in->N, in->D));
}
static ss_status negcos_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    int64_t nd = in->N * in->D;
    return ss_dist_negcos_sym_forward(l, NULL, c, in->p, in->p + nd, ZA(in),
                                      ZB(in), in->N, in->D, &o->negcos.o, m);
}
static ss_status negcos_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    int64_t nd = in->N * in->D;
    float *dz1 = o->negcos.stopgrad ? NULL : g->dz;
    float *dz2 = o->negcos.stopgrad ? NULL : g->dz + nd;
    return ss_dist_negcos_sym_backward(g->dp, g->dp + nd, dz1, dz2, dl, c,
                                       in->p, in->p + nd, ZA(in), ZB(in),
                                       in->N, in->D, &o->negcos.o, m);
}

static ss_status barlow_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_barlow_cache_size(in->D));
}
static ss_status barlow_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_barlow_forward(l, NULL, c, ZA(in), ZB(in), in->N, in->D,
                                  &o->barlow, m);
}
static ss_status barlow_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_barlow_backward(g->dz, g->dz + in->N * in->D, dl, c, ZA(in),
                                   ZB(in), in->N, in->D, &o->barlow, m);
}

static ss_status vicreg_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_vicreg_cache_size(in->D));
}
static ss_status vicreg_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_vicreg_forward(l, NULL, c, ZA(in), ZB(in), in->N, in->D,
                                  &o->vicreg, m);
}
static ss_status vicreg_bwd(const ss_composite_grads *g, float dl,
                            const void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_vicreg_backward(g->dz, g->dz + in->N * in->D, dl, c, ZA(in),
                                   ZB(in), in->N, in->D, &o->vicreg, m);
}

static ss_status hs_cache(size_t *b, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    return sized(b, ss_dist_hypersphere_cache_size(in->N, in->D));
}
static ss_status hs_fwd(float *l, void *c, const ss__term_opts *o,
                        const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_hypersphere_forward(l, c, ZA(in), ZB(in), in->N, in->D,
                                       &o->hs, m);
}
static ss_status hs_bwd(const ss_composite_grads *g, float dl, const void *c,
                        const ss__term_opts *o, const ss_composite_inputs *in,
                        const ss_comm *m) {
    return ss_dist_hypersphere_backward(g->dz, g->dz + in->N * in->D, dl, c,
                                        ZA(in), ZB(in), in->N, in->D, &o->hs,
                                        m);
}

/* ---- patches, elements, tokens, DINO ------------------------------------ */

static ss_status mae_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in, const ss_comm *m) {
    (void)c;
    return ss_dist_mae_forward(l, NULL, in->mae_pred, in->imgs, in->patch_mask,
                               in->B, in->C, in->H, in->W, in->patch, &o->mae,
                               m);
}
static ss_status mae_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in,
                         const ss_comm *m) {
    (void)c;
    return ss_dist_mae_backward(g->dmae_pred, dl, in->mae_pred, in->imgs,
                                in->patch_mask, in->B, in->C, in->H, in->W,
                                in->patch, &o->mae, m);
}

static ss_status recon_fwd(float *l, void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in, const ss_comm *m) {
    (void)c;
    return ss_dist_recon_forward(l, NULL, in->recon_pred, in->recon_target,
                                 in->recon_mask, in->recon_n, &o->recon, m);
}
static ss_status recon_bwd(const ss_composite_grads *g, float dl,
                           const void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in, const ss_comm *m) {
    (void)c;
    return ss_dist_recon_backward(g->drecon_pred, g->drecon_target, dl, NULL,
                                  in->recon_pred, in->recon_target,
                                  in->recon_mask, in->recon_n, &o->recon, m);
}

static ss_status mlm_cache(size_t *b, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    (void)o;
    return sized(b, ss_dist_mlm_cache_size(in->T, in->vocab));
}
static ss_status mlm_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in, const ss_comm *m) {
    return ss_dist_mlm_forward(l, NULL, c, in->logits, in->targets, in->T,
                               in->vocab, &o->mlm, m);
}
static ss_status mlm_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in,
                         const ss_comm *m) {
    return ss_dist_mlm_backward(g->dlogits, dl, c, in->logits, in->targets,
                                in->T, in->vocab, &o->mlm, m);
}

static ss_status dino_cache(size_t *b, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    (void)o;
    return sized(b, ss_dist_dino_cache_size(in->dino_G, in->dino_V, in->N,
                                            in->dino_K));
}
static ss_status dino_fwd(float *l, void *c, const ss__term_opts *o,
                          const ss_composite_inputs *in, const ss_comm *m) {
    float tt = ss__composite_dino_ttemp(o, in);
    return ss_dist_dino_forward(l, NULL, c, in->dino_teacher, in->dino_student,
                                in->center, tt, in->dino_G, in->dino_V, in->N,
                                in->dino_K, &o->dino, m);
}
static ss_status dino_bwd(const ss_composite_grads *g, float dl, const void *c,
                          const ss__term_opts *o, const ss_composite_inputs *in,
                          const ss_comm *m) {
    float tt = ss__composite_dino_ttemp(o, in);
    return ss_dist_dino_backward(g->ddino_student, dl, c, in->dino_teacher,
                                 in->dino_student, in->center, tt, in->dino_G,
                                 in->dino_V, in->N, in->dino_K, &o->dino, m);
}

/* ---- the table: one entry per term name of composite_terms.c ------------ */

typedef struct {
    const char *name;
    cache_fn cache;
    fwd_fn fwd;
    bwd_fn bwd;
} dist_term;

#define RECON(n) {n, no_cache, recon_fwd, recon_bwd}
static const dist_term dist_terms[] = {
    {"ntxent", ntxent_cache, ntxent_fwd, ntxent_bwd},
    {"supcon", supcon_cache, supcon_fwd, supcon_bwd},
    {"dcl", dcl_cache, dcl_fwd, dcl_bwd},
    {"dclw", dcl_cache, dcl_fwd, dcl_bwd},
    {"clip", clip_cache, clip_fwd, clip_bwd},
    {"siglip", siglip_cache, siglip_fwd, siglip_bwd},
    {"negcos", negcos_cache, negcos_fwd, negcos_bwd},
    {"barlow", barlow_cache, barlow_fwd, barlow_bwd},
    {"vicreg", vicreg_cache, vicreg_fwd, vicreg_bwd},
    {"hypersphere", hs_cache, hs_fwd, hs_bwd},
    {"koleo", koleo_cache, koleo_fwd, koleo_bwd},
    {"mae", no_cache, mae_fwd, mae_bwd},
    RECON("recon"), RECON("mse"), RECON("l1"), RECON("smoothl1"),
    RECON("huber"), RECON("bce"),
    {"dino", dino_cache, dino_fwd, dino_bwd},
    {"mlm", mlm_cache, mlm_fwd, mlm_bwd},
};

static const dist_term *dist_of(const ss__term_kind *k) {
    for (size_t i = 0; i < sizeof dist_terms / sizeof dist_terms[0]; i++)
        if (!strcmp(dist_terms[i].name, k->name)) return &dist_terms[i];
    return NULL;
}

/* ---- the pass ----------------------------------------------------------- */

static ss_status pass_cache(const ss__composite_pass *p, const ss__term_kind *k,
                            size_t *bytes, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    const dist_term *d = dist_of(k);
    if (!d)
        return ss__fail(SS_ERR_UNSUPPORTED, p->fn, "no distributed version "
                        "of the term '%s'", k->name);
    return d->cache(bytes, o, in);
}
static ss_status pass_fwd(const ss__composite_pass *p, const ss__term_kind *k,
                          float *loss, void *cache, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    return dist_of(k)->fwd(loss, cache, o, in, COMM(p));
}
static ss_status pass_bwd(const ss__composite_pass *p, const ss__term_kind *k,
                          const ss_composite_grads *g, float dloss,
                          const void *cache, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    return dist_of(k)->bwd(g, dloss, cache, o, in, COMM(p));
}

/* One agreement: the local status, the spec and weights, and dloss. */
static ss_status pass_agree(const ss__composite_pass *p, ss_status st,
                            const ss_composite *c, const float *dloss) {
    static const char *const names[] = {
        "the number of terms", "the spec (term names and parameters, hashed)",
        "the term weights (hashed)", "dloss"};
    double vals[4] = {0, 0, 0, dloss ? (double)*dloss : 0.0};
    if (st == SS_OK) ss__composite_digest(c, vals);
    int64_t total;
    return ss__dist_agree_total(COMM(p), p->fn, st, vals, names,
                                dloss ? 4 : 3, 0, &total);
}

ss_status ss_dist_composite_forward(ss_composite *c, float *total,
                                    float *values,
                                    const ss_composite_inputs *in,
                                    const ss_comm *comm) {
    static const char fn[] = "ss_dist_composite_forward";
    SS_TRY(ss_comm_check(comm));
    ss__composite_pass p = {fn,       2,        comm,      pass_cache,
                            pass_fwd, pass_bwd, pass_agree};
    return ss__composite_forward(c, total, values, in, &p);
}

ss_status ss_dist_composite_backward(ss_composite *c,
                                     const ss_composite_grads *g, float dloss,
                                     const ss_composite_inputs *in,
                                     const ss_comm *comm) {
    static const char fn[] = "ss_dist_composite_backward";
    SS_TRY(ss_comm_check(comm));
    ss__composite_pass p = {fn,       2,        comm,      pass_cache,
                            pass_fwd, pass_bwd, pass_agree};
    return ss__composite_backward(c, g, dloss, in, &p);
}
