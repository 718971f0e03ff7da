/* dist_composite.c - ss_dist_composite_* against ss_composite_* on the
 * concatenated batch (total, per-term values, every gradient), with specs
 * that mix contrastive, reconstruction, statistics and distillation terms,
 * and error agreement (spec, weight, dloss, a missing input, the state).
 * Helpers and the registry: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tensor of the inputs: `views` blocks of rows of `per` values; the
 * rows are samples (local count n of the family: z / DINO samples, images,
 * elements or tokens). */
typedef struct {
    int64_t views, per, nt, n, off; /* global rows, local rows, offset */
    float *g, *l;                   /* global (views, nt, per), local */
    float *dg, *dl, *pre;           /* global gradient, local (+ pre-fill) */
} tensor;

static void tensor_init(tensor *t, int64_t views, int64_t per, int variant,
                        int64_t base, ss_rng *r) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    t->views = views, t->per = per;
    t->nt = ss_dt_sum_before(variant, W, W, base);
    t->n = ss_dt_local_n(variant, R, W, base);
    t->off = ss_dt_sum_before(variant, R, W, base);
    int64_t G = views * t->nt * per, nl = views * t->n * per;
    t->g = malloc(sizeof(float) * (size_t)G);
    t->dg = calloc((size_t)G, sizeof(float));
    t->l = malloc(sizeof(float) * (size_t)nl);
    t->dl = malloc(sizeof(float) * (size_t)nl);
    t->pre = malloc(sizeof(float) * (size_t)nl);
    ss_dt_fill(t->g, G, r, 1.0);
    ss_rng pr; /* the pre-fill is per rank: keep r equal on every rank */
    ss_rng_seed(&pr, (uint64_t)(ss_rng_uniform(r) * 1e9) + (uint64_t)R);
    ss_dt_fill(t->pre, nl, &pr, 0.01); /* accumulation, at the gradients' scale */
    memcpy(t->dl, t->pre, sizeof(float) * (size_t)nl);
    for (int64_t v = 0; v < views; v++)
        memcpy(t->l + v * t->n * per, t->g + (v * t->nt + t->off) * per,
               sizeof(float) * (size_t)(t->n * per));
}

static void tensor_free(tensor *t) {
    free(t->g), free(t->dg), free(t->l), free(t->dl), free(t->pre);
}

/* (local gradient - pre) / W against the global gradient's local rows. */
static void tensor_check(const char *what, const tensor *t) {
    int W = ss_dt_comm->size;
    int64_t nl = t->views * t->n * t->per, rows = t->n * t->per;
    float *d = malloc(sizeof(float) * (size_t)nl);
    double *ref = malloc(sizeof(double) * (size_t)nl);
    for (int64_t v = 0; v < t->views; v++)
        for (int64_t i = 0; i < rows; i++) {
            int64_t k = v * rows + i;
            d[k] = (t->dl[k] - t->pre[k]) / (float)W;
            ref[k] = t->dg[(v * t->nt + t->off) * t->per + i];
        }
    ss_dt_close(what, d, ref, nl);
    free(d), free(ref);
}

/* Every input family of the composite, global and local. */
enum { TZ, TP, TMAE, TIMG, TRP, TRT, TLOG, TDT, TDS, NT };
typedef struct {
    tensor t[NT];
    int64_t *labels_g, *targets_g;
    uint8_t *pmask_g, *rmask_g;
    ss_center *center;
    ss_composite_inputs in_g, in_l;
    ss_composite_grads g_g, g_l;
} batch;

enum { V = 2, D = 6, CH = 1, HW = 4, PS = 2, L = 4, VOCAB = 7, DG = 2, DV = 3,
       DK = 5 };

static void make_batch(batch *b, int variant, int64_t base, ss_rng *r) {
    memset(b, 0, sizeof *b);
    tensor *t = b->t;
    tensor_init(&t[TZ], V, D, variant, base, r);
    tensor_init(&t[TP], 2, D, variant, base, r);
    tensor_init(&t[TMAE], 1, L * PS * PS * CH, variant, base - 1, r);
    tensor_init(&t[TIMG], 1, CH * HW * HW, variant, base - 1, r);
    tensor_init(&t[TRP], 1, 1, variant, 3 * base, r);
    tensor_init(&t[TRT], 1, 1, variant, 3 * base, r);
    tensor_init(&t[TLOG], 1, VOCAB, variant, base + 2, r);
    tensor_init(&t[TDT], DG, DK, variant, base, r);
    tensor_init(&t[TDS], DV, DK, variant, base, r);
    int64_t Nt = t[TZ].nt, Bt = t[TMAE].nt, Rt = t[TRP].nt, Tt = t[TLOG].nt;
    b->labels_g = malloc(sizeof(int64_t) * (size_t)Nt);
    b->targets_g = malloc(sizeof(int64_t) * (size_t)Tt);
    b->pmask_g = malloc((size_t)(Bt * L));
    b->rmask_g = malloc((size_t)Rt);
    for (int64_t i = 0; i < Nt; i++) b->labels_g[i] = (int64_t)(ss_rng_uniform(r) * 4) - 1;
    for (int64_t i = 0; i < Tt; i++)
        b->targets_g[i] = ss_rng_uniform(r) < 0.25 ? SS_IGNORE_INDEX
                                                   : (int64_t)(ss_rng_uniform(r) * VOCAB) % VOCAB;
    for (int64_t i = 0; i < Bt * L; i++) b->pmask_g[i] = ss_rng_uniform(r) < 0.6;
    for (int64_t i = 0; i < Rt; i++) b->rmask_g[i] = ss_rng_uniform(r) < 0.7;
    float cv[DK];
    ss_dt_fill(cv, DK, r, 0.3);
    if (ss_center_create(&b->center, DK) || ss_center_set(b->center, cv))
        ss_dt_fail("composite centre", ss_last_error());
    /* global inputs, then the same fields on the local slices */
    ss_composite_inputs *gi = &b->in_g, *li = &b->in_l;
    gi->z = t[TZ].g, gi->V = V, gi->N = Nt, gi->D = D, gi->labels = b->labels_g;
    gi->p = t[TP].g;
    gi->mae_pred = t[TMAE].g, gi->imgs = t[TIMG].g, gi->patch_mask = b->pmask_g;
    gi->B = Bt, gi->C = CH, gi->H = HW, gi->W = HW, gi->patch = PS;
    gi->recon_pred = t[TRP].g, gi->recon_target = t[TRT].g;
    gi->recon_mask = b->rmask_g, gi->recon_n = Rt;
    gi->logits = t[TLOG].g, gi->targets = b->targets_g, gi->T = Tt, gi->vocab = VOCAB;
    gi->dino_teacher = t[TDT].g, gi->dino_student = t[TDS].g, gi->center = b->center;
    gi->dino_teacher_temp = 0.07f, gi->dino_G = DG, gi->dino_V = DV, gi->dino_K = DK;
    *li = *gi;
    li->z = t[TZ].l, li->N = t[TZ].n, li->labels = b->labels_g + t[TZ].off;
    li->p = t[TP].l;
    li->mae_pred = t[TMAE].l, li->imgs = t[TIMG].l;
    li->patch_mask = b->pmask_g + t[TMAE].off * L, li->B = t[TMAE].n;
    li->recon_pred = t[TRP].l, li->recon_target = t[TRT].l;
    li->recon_mask = b->rmask_g + t[TRP].off, li->recon_n = t[TRP].n;
    li->logits = t[TLOG].l, li->targets = b->targets_g + t[TLOG].off, li->T = t[TLOG].n;
    li->dino_teacher = t[TDT].l, li->dino_student = t[TDS].l;
    ss_composite_grads gg = {t[TZ].dg, t[TP].dg, t[TMAE].dg, t[TRP].dg,
                             t[TRT].dg, t[TLOG].dg, t[TDS].dg};
    ss_composite_grads gl = {t[TZ].dl, t[TP].dl, t[TMAE].dl, t[TRP].dl,
                             t[TRT].dl, t[TLOG].dl, t[TDS].dl};
    b->g_g = gg, b->g_l = gl;
}

static void free_batch(batch *b) {
    for (int k = 0; k < NT; k++) tensor_free(&b->t[k]);
    free(b->labels_g), free(b->targets_g), free(b->pmask_g), free(b->rmask_g);
    ss_center_free(b->center);
}

/* ---- equality with the single-process composite ------------------------- */

static void spec_case(const char *spec, int variant, int64_t base,
                      uint64_t seed) {
    static const char *const names[NT] = {"dz", "dp", "dmae_pred", "", "drecon_pred",
                                          "drecon_target", "dlogits", "", "ddino_student"};
    ss_rng r;
    ss_rng_seed(&r, seed);
    batch b;
    make_batch(&b, variant, base, &r);
    char what[256];
    snprintf(what, sizeof what, "composite '%s' variant %d N %lld", spec, variant,
             (long long)b.t[TZ].n);
    ss_composite *cg = NULL, *cl = NULL;
    float tg = 0, tl = 0, vg[8], vl[8], dl = 0.9f;
    if (b.t[TZ].nt < 2) goto done; /* one sample: no batch statistics */
    if (ss_composite_parse(&cg, spec) || ss_composite_parse(&cl, spec) ||
        ss_composite_forward(cg, &tg, vg, &b.in_g) ||
        ss_composite_backward(cg, &b.g_g, dl, &b.in_g) ||
        ss_dist_composite_forward(cl, &tl, vl, &b.in_l, ss_dt_comm) ||
        ss_dist_composite_backward(cl, &b.g_l, dl, &b.in_l, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    int64_t n = ss_composite_nterms(cg);
    double ref[8], tref = tg;
    float acc[8];
    for (int64_t i = 0; i < n; i++) {
        ref[i] = vg[i];
        acc[i] = ss_composite_term_value(cl, i);
        if (ss_composite_term_weight(cl, i) != ss_composite_term_weight(cg, i))
            ss_dt_fail(what, "term weights differ");
    }
    ss_dt_close(what, &tl, &tref, 1);
    ss_dt_close(what, vl, ref, n);
    ss_dt_close(what, acc, ref, n);
    for (int k = 0; k < NT; k++)
        if (names[k][0]) {
            char w2[300];
            snprintf(w2, sizeof w2, "%s %s", what, names[k]);
            tensor_check(w2, &b.t[k]);
        }
done:
    ss_composite_free(cg), ss_composite_free(cl);
    free_batch(&b);
}

/* ---- errors agree on every rank ----------------------------------------- */

static int untouched(const tensor *t) {
    int64_t nl = t->views * t->n * t->per;
    return !memcmp(t->dl, t->pre, sizeof(float) * (size_t)nl);
}

static void error_cases(void) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank, bad = W - 1;
    const ss_comm *m = ss_dt_comm;
    ss_rng r;
    ss_rng_seed(&r, 77);
    batch b;
    make_batch(&b, 0, 4, &r);
    const char *spec = "ntxent:1, mae(norm_pix=1):0.5, barlow:0.01";
    ss_composite *c = NULL, *odd = NULL, *ow = NULL, *fewer = NULL;
    float tot, dl = 1.0f;
    if (ss_composite_parse(&c, spec) ||
        ss_composite_parse(&odd, "ntxent(temperature=0.2):1, mae(norm_pix=1):0.5, barlow:0.01") ||
        ss_composite_parse(&ow, "ntxent:1, mae(norm_pix=1):0.25, barlow:0.01") ||
        ss_composite_parse(&fewer, "ntxent:1, mae(norm_pix=1):0.5")) {
        ss_dt_fail("composite parse", ss_last_error());
        goto done;
    }
    if (W > 1) {
        ss_dt_expect("composite spec differs on one rank",
               ss_dist_composite_forward(R == bad ? odd : c, &tot, NULL, &b.in_l, m),
               SS_ERR_PARAM);
        ss_dt_expect("composite weight differs on one rank",
               ss_dist_composite_forward(R == bad ? ow : c, &tot, NULL, &b.in_l, m),
               SS_ERR_PARAM);
        ss_dt_expect("composite term count differs on one rank",
               ss_dist_composite_forward(R == bad ? fewer : c, &tot, NULL, &b.in_l, m),
               SS_ERR_PARAM);
    }
    ss_composite_inputs in = b.in_l;
    if (R == bad) in.imgs = NULL;
    ss_dt_expect("composite missing input on one rank",
           ss_dist_composite_forward(c, &tot, NULL, &in, m), SS_ERR_PARAM);
    in = b.in_l;
    float keep = b.t[TZ].l[3];
    if (R == bad) b.t[TZ].l[3] = NAN;
    ss_dt_expect("composite NaN in z on one rank (a term's error)",
           ss_dist_composite_forward(c, &tot, NULL, &in, m), SS_ERR_NONFINITE);
    b.t[TZ].l[3] = keep;
    float vals[3] = {-1.0f, -1.0f, -1.0f}, keep2 = b.t[TIMG].l[1];
    tot = -1.0f;
    if (R == bad) b.t[TIMG].l[1] = INFINITY; /* term 1, after term 0 ran */
    ss_dt_expect("composite Inf in imgs on one rank (a later term's error)",
           ss_dist_composite_forward(c, &tot, vals, &in, m), SS_ERR_NONFINITE);
    b.t[TIMG].l[1] = keep2;
    if (tot != -1.0f || vals[0] != -1.0f)
        ss_dt_fail("composite failed forward", "wrote total or values");
    ss_dt_expect("composite backward after a failed forward",
           ss_dist_composite_backward(c, &b.g_l, dl, &in, m), SS_ERR_STATE);
    if (ss_composite_forward(c, &tot, NULL, &in) == SS_OK)
        ss_dt_expect("composite distributed backward after a "
                     "single-process forward",
               ss_dist_composite_backward(c, &b.g_l, dl, &in, m), SS_ERR_STATE);
    if (ss_dist_composite_forward(c, &tot, NULL, &in, m) != SS_OK) {
        ss_dt_fail("composite forward after errors", ss_last_error());
        goto done;
    }
    if (W > 1)
        ss_dt_expect("composite dloss differs on one rank",
               ss_dist_composite_backward(c, &b.g_l, R == bad ? 2.0f : 1.0f, &in, m),
               SS_ERR_PARAM);
    ss_composite_grads g = b.g_l;
    if (R == bad) g.dmae_pred = NULL;
    ss_dt_expect("composite NULL gradient buffer on one rank",
           ss_dist_composite_backward(c, &g, dl, &in, m), SS_ERR_NULL);
    ss_dt_expect("composite non-finite dloss",
           ss_dist_composite_backward(c, &b.g_l, NAN, &in, m), SS_ERR_NONFINITE);
    if (!untouched(&b.t[TZ]) || !untouched(&b.t[TMAE]))
        ss_dt_fail("composite failed backward", "wrote into a gradient");
    if (ss_dist_composite_backward(c, &b.g_l, dl, &in, m) != SS_OK)
        ss_dt_fail("composite backward after errors", ss_last_error());
    ss_comm nocomm = *m;
    nocomm.allreduce = NULL;
    ss_dt_expect("composite bad comm",
           ss_dist_composite_forward(c, &tot, NULL, &in, &nocomm), SS_ERR_NULL);
done:
    ss_composite_free(c), ss_composite_free(odd), ss_composite_free(ow);
    ss_composite_free(fewer);
    free_batch(&b);
}

SS_DIST_GROUP(composite) {
    static const char *const specs[] = {
        /* contrastive + reconstruction + statistics */
        "ntxent(temperature=0.5):1, mae(norm_pix=1):0.5, vicreg:0.04",
        "supcon(temperature=0.3):1, mse:2, barlow(lambda=0.01):0.005, koleo:0.1",
        "clip:1, siglip(bias=-2):0.5, hypersphere:0.3, negcos(stopgrad=0):1, "
        "mlm(label_smoothing=0.1):0.7",
        "dino:1, koleo:0.1, dclw:0.5, recon(kind=huber, reduction=sum):0.2, "
        "ntxent(cosine=0, temperature=2):0.3",
    };
    for (int variant = 0; variant < 3; variant++)
        for (int s = 0; s < 4; s++)
            spec_case(specs[s], variant, 4, 100 + 10 * (uint64_t)variant + (uint64_t)s);
    error_cases();
}
