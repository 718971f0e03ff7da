/*
 * composite_terms.c - the losses a composite can hold: one table entry per
 * term name, with its parameters and thin wrappers that bind the shared
 * inputs (z, p, patches, ...) to the loss's own forward/backward.
 */
#include "composite.h"

#include <float.h>
#include <math.h>
#include <stddef.h>

#define OFF(m) offsetof(ss__term_opts, m)
#define F32(k, m, lo, hi, lo_open, hi_open, r) \
    {k, SS__P_F32, OFF(m), lo, hi, lo_open, hi_open, NULL, r}
#define BOOL(k, m) {k, SS__P_BOOL, OFF(m), 0, 1, 0, 0, NULL, "0 or 1"}
#define POS(k, m) F32(k, m, 0, INFINITY, 1, 1, "finite and > 0")
#define NONNEG(k, m) F32(k, m, 0, INFINITY, 0, 1, "finite and >= 0")
#define ANY(k, m) F32(k, m, -INFINITY, INFINITY, 1, 1, "finite")
#define END {NULL, SS__P_F32, 0, 0, 0, 0, 0, NULL, NULL}

/* z as two views a = z[0], b = z[1]: the pairwise losses need V = 2. */
ss_status ss__composite_two_views(const ss_composite_inputs *in) {
    if (in->V != 2)
        return ss__fail(SS_ERR_SIZE, "ss_composite", "this term needs V = 2 "
                        "views in z (a = z[0], b = z[1]), got V = %lld",
                        (long long)in->V);
    return SS_OK;
}
#define ZA(in) ((in)->z)
#define ZB(in) ((in)->z + (in)->N * (in)->D)

static unsigned g_dz(const ss__term_opts *o) { (void)o; return SS__G_DZ; }

/* ---- NT-Xent --------------------------------------------------------- */
static void ntxent_init(ss__term_opts *o) { o->ntxent = ss_ntxent_defaults(); }
static const ss__param ntxent_params[] = {
    POS("temperature", ntxent.temperature), BOOL("cosine", ntxent.cosine),
    NONNEG("hard_beta", ntxent.hard_beta),
    F32("debias_tau_plus", ntxent.debias_tau_plus, 0, 1, 0, 1, "in [0, 1)"),
    END};
static ss_status ntxent_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    *b = ss_ntxent_cache_size(in->V, in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status ntxent_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    return ss_ntxent_forward(l, NULL, c, in->z, in->V, in->N, in->D, &o->ntxent);
}
static ss_status ntxent_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_ntxent_backward(g->dz, dl, c, in->z, in->V, in->N, in->D,
                              &o->ntxent);
}

/* ---- SupCon ---------------------------------------------------------- */
static void supcon_init(ss__term_opts *o) { o->supcon = ss_supcon_defaults(); }
static const ss__param supcon_params[] = {
    POS("temperature", supcon.temperature), BOOL("cosine", supcon.cosine), END};
static ss_status supcon_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    *b = ss_supcon_cache_size(in->V, in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status supcon_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    return ss_supcon_forward(l, NULL, c, in->z, in->labels, in->V, in->N,
                             in->D, &o->supcon);
}
static ss_status supcon_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_supcon_backward(g->dz, dl, c, in->z, in->labels, in->V, in->N,
                              in->D, &o->supcon);
}

/* ---- DCL / DCLW ------------------------------------------------------ */
static void dcl_init(ss__term_opts *o) { o->dcl = ss_dcl_defaults(); }
static void dclw_init(ss__term_opts *o) { o->dcl = ss_dclw_defaults(); }
static const ss__param dcl_params[] = {
    POS("temperature", dcl.temperature), POS("sigma", dcl.sigma),
    BOOL("cosine", dcl.cosine), BOOL("joint_negatives", dcl.joint_negatives),
    END};
static ss_status dcl_cache(size_t *b, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    (void)o;
    *b = ss_dcl_cache_size(in->V, in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status dcl_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in) {
    return ss_dcl_forward(l, NULL, c, in->z, in->V, in->N, in->D, &o->dcl);
}
static ss_status dcl_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_dcl_backward(g->dz, dl, c, in->z, in->V, in->N, in->D, &o->dcl);
}

/* ---- CLIP (fixed log_scale) ------------------------------------------ */
static void clip_init(ss__term_opts *o) {
    o->clip.o = ss_clip_defaults();
    o->clip.log_scale = (float)log(1.0 / 0.07);
}
static const ss__param clip_params[] = {
    F32("log_scale", clip.log_scale, -INFINITY, 88.7, 1, 0, "finite and <= 88.7"),
    BOOL("cosine", clip.o.cosine), END};
static ss_status clip_cache(size_t *b, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    *b = ss_clip_cache_size(in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status clip_fwd(float *l, void *c, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    return ss_clip_forward(l, NULL, c, ZA(in), ZB(in), o->clip.log_scale,
                           in->N, in->D, &o->clip.o);
}
static ss_status clip_bwd(const ss_composite_grads *g, float dl, const void *c,
                          const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_clip_backward(g->dz, g->dz + in->N * in->D, NULL, dl, c, ZA(in),
                            ZB(in), o->clip.log_scale, in->N, in->D, &o->clip.o);
}

/* ---- SigLIP (fixed log_t, bias) -------------------------------------- */
static void siglip_init(ss__term_opts *o) {
    o->siglip.o = ss_siglip_defaults();
    o->siglip.log_t = (float)log(10.0);
    o->siglip.bias = -10.0f;
}
static const ss__param siglip_params[] = {
    F32("log_t", siglip.log_t, -INFINITY, 88.7, 1, 0, "finite and <= 88.7"),
    ANY("bias", siglip.bias), BOOL("cosine", siglip.o.cosine), END};
static ss_status siglip_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    *b = ss_siglip_cache_size(in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status siglip_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    return ss_siglip_forward(l, NULL, c, ZA(in), ZB(in), o->siglip.log_t,
                             o->siglip.bias, in->N, in->D, &o->siglip.o);
}
static ss_status siglip_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_siglip_backward(g->dz, g->dz + in->N * in->D, NULL, NULL, dl, c,
                              ZA(in), ZB(in), o->siglip.log_t, o->siglip.bias,
                              in->N, in->D, &o->siglip.o);
}

/* ---- negative cosine, symmetric (SimSiam) ---------------------------- */
static void negcos_init(ss__term_opts *o) {
    o->negcos.o = ss_negcos_defaults();
    o->negcos.stopgrad = 1;
}
static const ss__param negcos_params[] = {
    POS("eps", negcos.o.eps), BOOL("stopgrad", negcos.stopgrad), END};
static unsigned negcos_grads(const ss__term_opts *o) {
    return SS__G_DP | (o->negcos.stopgrad ? 0u : (unsigned)SS__G_DZ);
}
static ss_status negcos_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    *b = ss_negcos_sym_cache_size(in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status negcos_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    const float *p1 = in->p, *p2 = in->p + in->N * in->D;
    return ss_negcos_sym_forward(l, NULL, c, p1, p2, ZA(in), ZB(in), in->N,
                                 in->D, &o->negcos.o);
}
static ss_status negcos_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    int64_t nd = in->N * in->D;
    float *dz1 = o->negcos.stopgrad ? NULL : g->dz;
    float *dz2 = o->negcos.stopgrad ? NULL : g->dz + nd;
    return ss_negcos_sym_backward(g->dp, g->dp + nd, dz1, dz2, dl, c, in->p,
                                  in->p + nd, ZA(in), ZB(in), in->N, in->D,
                                  &o->negcos.o);
}

/* ---- Barlow Twins / VICReg ------------------------------------------- */
static void barlow_init(ss__term_opts *o) { o->barlow = ss_barlow_defaults(); }
static const ss__param barlow_params[] = {
    NONNEG("lambda", barlow.lambda), POS("bn_eps", barlow.bn_eps), END};
static ss_status barlow_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    SS_TRY(ss__composite_two_views(in));
    *b = ss_barlow_cache_size(in->N, in->D, &o->barlow);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status barlow_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    return ss_barlow_forward(l, NULL, c, ZA(in), ZB(in), in->N, in->D,
                             &o->barlow);
}
static ss_status barlow_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_barlow_backward(g->dz, g->dz + in->N * in->D, dl, c, ZA(in),
                              ZB(in), in->N, in->D, &o->barlow);
}

static void vicreg_init(ss__term_opts *o) { o->vicreg = ss_vicreg_defaults(); }
static const ss__param vicreg_params[] = {
    ANY("lambda", vicreg.lambda), ANY("mu", vicreg.mu), ANY("nu", vicreg.nu),
    NONNEG("eps", vicreg.eps), END};
static ss_status vicreg_cache(size_t *b, const ss__term_opts *o,
                              const ss_composite_inputs *in) {
    SS_TRY(ss__composite_two_views(in));
    *b = ss_vicreg_cache_size(in->N, in->D, &o->vicreg);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status vicreg_fwd(float *l, void *c, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    return ss_vicreg_forward(l, NULL, c, ZA(in), ZB(in), in->N, in->D,
                             &o->vicreg);
}
static ss_status vicreg_bwd(const ss_composite_grads *g, float dl, const void *c,
                            const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_vicreg_backward(g->dz, g->dz + in->N * in->D, dl, c, ZA(in),
                              ZB(in), in->N, in->D, &o->vicreg);
}

/* ---- alignment + uniformity ------------------------------------------ */
static void hs_init(ss__term_opts *o) { o->hs = ss_hypersphere_defaults(); }
static const ss__param hs_params[] = {
    POS("t", hs.t), ANY("lambda", hs.lambda), POS("alpha", hs.alpha), END};
static ss_status hs_cache(size_t *b, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    (void)o;
    SS_TRY(ss__composite_two_views(in));
    *b = ss_hypersphere_cache_size(in->N, in->D);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status hs_fwd(float *l, void *c, const ss__term_opts *o,
                        const ss_composite_inputs *in) {
    return ss_hypersphere_forward(l, c, ZA(in), ZB(in), in->N, in->D, &o->hs);
}
static ss_status hs_bwd(const ss_composite_grads *g, float dl, const void *c,
                        const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_hypersphere_backward(g->dz, g->dz + in->N * in->D, dl, c, ZA(in),
                                   ZB(in), in->N, in->D, &o->hs);
}

/* ---- KoLeo, mean over the V views (one cache per view) --------------- */
static void koleo_init(ss__term_opts *o) { o->koleo = ss_koleo_defaults(); }
static const ss__param koleo_params[] = {POS("eps", koleo.eps), END};
static size_t koleo_stride(const ss_composite_inputs *in) {
    size_t one = ss_koleo_cache_size(in->N, in->D);
    return (one + 63) / 64 * 64; /* keep every view's cache aligned */
}
static ss_status koleo_cache(size_t *b, const ss__term_opts *o,
                             const ss_composite_inputs *in) {
    (void)o;
    size_t s = koleo_stride(in);
    if (!s) return SS_ERR_SIZE;
    *b = s * (size_t)in->V;
    return SS_OK;
}
static ss_status koleo_fwd(float *l, void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    size_t s = koleo_stride(in);
    double acc = 0.0;
    for (int64_t v = 0; v < in->V; v++) {
        float lv;
        SS_TRY(ss_koleo_forward(&lv, NULL, (char *)c + (size_t)v * s,
                                in->z + v * in->N * in->D, in->N, in->D,
                                &o->koleo));
        acc += lv;
    }
    *l = (float)(acc / (double)in->V);
    return SS_OK;
}
static ss_status koleo_bwd(const ss_composite_grads *g, float dl, const void *c,
                           const ss__term_opts *o, const ss_composite_inputs *in) {
    size_t s = koleo_stride(in);
    float dv = (float)((double)dl / (double)in->V);
    for (int64_t v = 0; v < in->V; v++) {
        int64_t off = v * in->N * in->D;
        SS_TRY(ss_koleo_backward(g->dz + off, dv, (const char *)c + (size_t)v * s,
                                 in->z + off, in->N, in->D, &o->koleo));
    }
    return SS_OK;
}

/* ---- MAE masked-patch loss (no cache) -------------------------------- */
static void mae_init(ss__term_opts *o) { o->mae = ss_mae_defaults(); }
static const ss__param mae_params[] = {BOOL("norm_pix", mae.norm_pix), END};
static unsigned g_dmae(const ss__term_opts *o) { (void)o; return SS__G_DMAE; }
static ss_status no_cache(size_t *b, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    (void)o; (void)in;
    *b = 0;
    return SS_OK;
}
static ss_status mae_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in) {
    (void)c;
    return ss_mae_forward(l, NULL, in->mae_pred, in->imgs, in->patch_mask,
                          in->B, in->C, in->H, in->W, in->patch, &o->mae);
}
static ss_status mae_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in) {
    (void)c;
    return ss_mae_backward(g->dmae_pred, dl, in->mae_pred, in->imgs,
                           in->patch_mask, in->B, in->C, in->H, in->W,
                           in->patch, &o->mae);
}

/* ---- element-wise reconstruction (no cache) -------------------------- */
static const char *const recon_kinds[] = {"mse", "l1", "smoothl1", "huber",
                                          "bce", NULL};
static const char *const recon_reductions[] = {"mean", "sum", NULL};
static void recon_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_MSE); }
static void mse_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_MSE); }
static void l1_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_L1); }
static void sl1_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_SMOOTH_L1); }
static void huber_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_HUBER); }
static void bce_init(ss__term_opts *o) { o->recon = ss_recon_defaults(SS_RECON_BCE_LOGITS); }
#define RECON_COMMON                                                       \
    {"reduction", SS__P_WORD, OFF(recon.reduction), 0, 0, 0, 0,            \
     recon_reductions, "mean or sum"},                                     \
    NONNEG("beta", recon.beta)
static const ss__param recon_params[] = {
    {"kind", SS__P_WORD, OFF(recon.kind), 0, 0, 0, 0, recon_kinds,
     "mse, l1, smoothl1, huber or bce"},
    RECON_COMMON, END};
static const ss__param recon_fixed_params[] = {RECON_COMMON, END};
static unsigned g_drecon(const ss__term_opts *o) { (void)o; return SS__G_DRECON; }
static ss_status recon_fwd(float *l, void *c, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    (void)c;
    return ss_recon_forward(l, NULL, in->recon_pred, in->recon_target,
                            in->recon_mask, in->recon_n, &o->recon);
}
static ss_status recon_bwd(const ss_composite_grads *g, float dl, const void *c,
                           const ss__term_opts *o, const ss_composite_inputs *in) {
    (void)c;
    return ss_recon_backward(g->drecon_pred, g->drecon_target, dl, NULL,
                             in->recon_pred, in->recon_target, in->recon_mask,
                             in->recon_n, &o->recon);
}

/* ---- masked-token cross-entropy -------------------------------------- */
static void mlm_init(ss__term_opts *o) { o->mlm = ss_mlm_defaults(); }
static const ss__param mlm_params[] = {
    {"ignore_index", SS__P_INT, OFF(mlm.ignore_index), -9.2e18, 9.2e18, 0, 0,
     NULL, "an integer"},
    F32("label_smoothing", mlm.label_smoothing, 0, 1, 0, 0, "in [0, 1]"), END};
static unsigned g_dlogits(const ss__term_opts *o) { (void)o; return SS__G_DLOGITS; }
static ss_status mlm_cache(size_t *b, const ss__term_opts *o,
                           const ss_composite_inputs *in) {
    (void)o;
    *b = ss_mlm_cache_size(in->T, in->vocab);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status mlm_fwd(float *l, void *c, const ss__term_opts *o,
                         const ss_composite_inputs *in) {
    return ss_mlm_forward(l, NULL, c, in->logits, in->targets, in->T,
                          in->vocab, &o->mlm);
}
static ss_status mlm_bwd(const ss_composite_grads *g, float dl, const void *c,
                         const ss__term_opts *o, const ss_composite_inputs *in) {
    return ss_mlm_backward(g->dlogits, dl, c, in->logits, in->targets, in->T,
                           in->vocab, &o->mlm);
}

/* ---- DINO (teacher temperature from the inputs, else the parameter) -- */
static void dino_init(ss__term_opts *o) { o->dino = ss_dino_defaults(); }
static const ss__param dino_params[] = {
    POS("student_temp", dino.student_temp),
    POS("teacher_temp", dino.teacher_temp), END};
static unsigned g_ddino(const ss__term_opts *o) { (void)o; return SS__G_DDINO; }
float ss__composite_dino_ttemp(const ss__term_opts *o,
                               const ss_composite_inputs *in) {
    return in->dino_teacher_temp != 0.0f ? in->dino_teacher_temp
                                         : o->dino.teacher_temp;
}
static ss_status dino_cache(size_t *b, const ss__term_opts *o,
                            const ss_composite_inputs *in) {
    (void)o;
    *b = ss_dino_cache_size(in->dino_G, in->dino_V, in->N, in->dino_K);
    return *b ? SS_OK : SS_ERR_SIZE;
}
static ss_status dino_fwd(float *l, void *c, const ss__term_opts *o,
                          const ss_composite_inputs *in) {
    float tt = ss__composite_dino_ttemp(o, in);
    return ss_dino_forward(l, NULL, c, in->dino_teacher, in->dino_student,
                           in->center, tt, in->dino_G, in->dino_V, in->N,
                           in->dino_K, &o->dino);
}
static ss_status dino_bwd(const ss_composite_grads *g, float dl, const void *c,
                          const ss__term_opts *o, const ss_composite_inputs *in) {
    float tt = ss__composite_dino_ttemp(o, in);
    return ss_dino_backward(g->ddino_student, dl, c, in->dino_teacher,
                            in->dino_student, in->center, tt, in->dino_G,
                            in->dino_V, in->N, in->dino_K, &o->dino);
}

/* ---- the table ------------------------------------------------------- */
#define Z SS__IN_Z
#define RECON(n, init, params)                                             \
    {n, init, params, SS__IN_RECON, g_drecon, no_cache, recon_fwd, recon_bwd}
const ss__term_kind ss__term_kinds[] = {
    {"ntxent", ntxent_init, ntxent_params, Z, g_dz, ntxent_cache, ntxent_fwd, ntxent_bwd},
    {"supcon", supcon_init, supcon_params, Z | SS__IN_LABELS, g_dz, supcon_cache, supcon_fwd, supcon_bwd},
    {"dcl", dcl_init, dcl_params, Z, g_dz, dcl_cache, dcl_fwd, dcl_bwd},
    {"dclw", dclw_init, dcl_params, Z, g_dz, dcl_cache, dcl_fwd, dcl_bwd},
    {"clip", clip_init, clip_params, Z, g_dz, clip_cache, clip_fwd, clip_bwd},
    {"siglip", siglip_init, siglip_params, Z, g_dz, siglip_cache, siglip_fwd, siglip_bwd},
    {"negcos", negcos_init, negcos_params, Z | SS__IN_P, negcos_grads, negcos_cache, negcos_fwd, negcos_bwd},
    {"barlow", barlow_init, barlow_params, Z, g_dz, barlow_cache, barlow_fwd, barlow_bwd},
    {"vicreg", vicreg_init, vicreg_params, Z, g_dz, vicreg_cache, vicreg_fwd, vicreg_bwd},
    {"hypersphere", hs_init, hs_params, Z, g_dz, hs_cache, hs_fwd, hs_bwd},
    {"koleo", koleo_init, koleo_params, Z, g_dz, koleo_cache, koleo_fwd, koleo_bwd},
    {"mae", mae_init, mae_params, SS__IN_MAE, g_dmae, no_cache, mae_fwd, mae_bwd},
    RECON("recon", recon_init, recon_params),
    RECON("mse", mse_init, recon_fixed_params),
    RECON("l1", l1_init, recon_fixed_params),
    RECON("smoothl1", sl1_init, recon_fixed_params),
    RECON("huber", huber_init, recon_fixed_params),
    RECON("bce", bce_init, recon_fixed_params),
    {"dino", dino_init, dino_params, SS__IN_DINO, g_ddino, dino_cache, dino_fwd, dino_bwd},
    {"mlm", mlm_init, mlm_params, SS__IN_MLM, g_dlogits, mlm_cache, mlm_fwd, mlm_bwd},
};
const int ss__n_term_kinds = (int)(sizeof ss__term_kinds / sizeof ss__term_kinds[0]);
