/* test_composite.c - composite objectives: PyTorch fixtures of weighted
 * sums, exact agreement with the individual calls (values, total, shared
 * gradient accumulation), per-term report, spec grammar and every parse
 * error, missing inputs and gradient buffers, state errors, NULL/free. */
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* ---- a scene holding every input a term can read ------------------------ */

enum { SN = 6, SD = 5, SB = 2, SC = 3, SH = 4, SW = 6, SP = 2, SRN = 17,
       ST = 7, SVOC = 11, SG = 2, SVS = 3, SK = 8 };
#define SL ((SH / SP) * (SW / SP))
#define SPP (SP * SP * SC)

typedef struct {
    float z[2 * SN * SD], p[2 * SN * SD];
    int64_t labels[SN];
    float mae_pred[SB * SL * SPP], imgs[SB * SC * SH * SW];
    uint8_t patch_mask[SB * SL];
    float rp[SRN], rt[SRN];
    uint8_t rmask[SRN];
    float logits[ST * SVOC];
    int64_t targets[ST];
    float teacher[SG * SN * SK], student[SVS * SN * SK];
    ss_composite_inputs in;
} scene;

typedef struct {
    float dz[2 * SN * SD], dp[2 * SN * SD], dmae[SB * SL * SPP];
    float drp[SRN], drt[SRN], dlogits[ST * SVOC], dstudent[SVS * SN * SK];
} grads;

/* One DINO centre for every test (reachable, created once). */
static ss_center *the_center(void) {
    static ss_center *c;
    if (!c) {
        float v[SK];
        for (int k = 0; k < SK; k++) v[k] = 0.1f * (float)(k % 3) - 0.1f;
        SS_CHECK_OK(ss_center_create(&c, SK));
        SS_CHECK_OK(ss_center_set(c, v));
    }
    return c;
}

static void make_scene(scene *s, uint64_t seed) {
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_test_fill_normal(s->z, 2 * SN * SD, &r);
    ss_test_fill_normal(s->p, 2 * SN * SD, &r);
    for (int i = 0; i < SN; i++) s->labels[i] = i % 3;
    ss_test_fill_normal(s->mae_pred, SB * SL * SPP, &r);
    ss_test_fill_normal(s->imgs, SB * SC * SH * SW, &r);
    for (int i = 0; i < SB * SL; i++) s->patch_mask[i] = (i % 4) != 1;
    ss_test_fill_normal(s->rp, SRN, &r);
    for (int i = 0; i < SRN; i++) {
        s->rt[i] = (float)ss_rng_uniform(&r); /* valid BCE targets too */
        s->rmask[i] = (i % 5) != 2;
    }
    ss_test_fill_normal(s->logits, ST * SVOC, &r);
    for (int i = 0; i < ST; i++)
        s->targets[i] = (i == 3) ? SS_IGNORE_INDEX : (int64_t)(ss_rng_u64(&r) % SVOC);
    ss_test_fill_normal(s->teacher, SG * SN * SK, &r);
    ss_test_fill_normal(s->student, SVS * SN * SK, &r);
    ss_composite_inputs in = {0};
    in.dino_teacher = s->teacher; in.dino_student = s->student;
    in.center = the_center(); in.dino_G = SG; in.dino_V = SVS; in.dino_K = SK;
    in.dino_teacher_temp = 0.06f;
    in.z = s->z; in.V = 2; in.N = SN; in.D = SD;
    in.labels = s->labels; in.p = s->p;
    in.mae_pred = s->mae_pred; in.imgs = s->imgs; in.patch_mask = s->patch_mask;
    in.B = SB; in.C = SC; in.H = SH; in.W = SW; in.patch = SP;
    in.recon_pred = s->rp; in.recon_target = s->rt; in.recon_mask = s->rmask;
    in.recon_n = SRN;
    in.logits = s->logits; in.targets = s->targets; in.T = ST; in.vocab = SVOC;
    s->in = in;
}

static void fill_grads(grads *g, uint64_t seed) {
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_test_fill_normal((float *)g, (int64_t)(sizeof *g / sizeof(float)), &r);
}

static ss_composite_grads bind(grads *g) {
    ss_composite_grads cg = {g->dz, g->dp, g->dmae, g->drp, g->drt,
                             g->dlogits, g->dstudent};
    return cg;
}

/* ---- the individual calls, in the composite's order --------------------- */

static float koleo_mean(const scene *s, grads *g, float dl, int back) {
    ss_koleo_opts o = ss_koleo_defaults();
    double acc = 0;
    for (int v = 0; v < 2; v++) {
        void *c = malloc(ss_koleo_cache_size(SN, SD));
        float l;
        SS_CHECK_OK(ss_koleo_forward(&l, NULL, c, s->z + v * SN * SD, SN, SD, &o));
        if (back)
            SS_CHECK_OK(ss_koleo_backward(g->dz + v * SN * SD,
                                          (float)((double)dl / 2.0), c,
                                          s->z + v * SN * SD, SN, SD, &o));
        free(c);
        acc += l;
    }
    return (float)(acc / 2.0);
}

#define NALL 20
static const char *ALL_SPEC =
    "ntxent(temperature=0.3):1, supcon:0.5, dcl:0.25, dclw(sigma=0.7):0.3,"
    "clip(log_scale=1.5):0.2, siglip(log_t=1,bias=-2):0.1, negcos:0.7,"
    "barlow:0.01, vicreg(nu=2):0.02, hypersphere(t=2):0.3, koleo:0.1,"
    "mae(norm_pix=0):0.5, recon(kind=huber,beta=0.5):0.4, l1:0.2,"
    "bce(reduction=sum):0.3, smoothl1(beta=0.25):0.1, mse:0.2,"
    "mlm(label_smoothing=0.1):0.6, negcos(stopgrad=0):0.35,"
    "dino(student_temp=0.2):0.45";
static const float ALL_W[NALL] = {1, 0.5f, 0.25f, 0.3f, 0.2f, 0.1f, 0.7f,
                                  0.01f, 0.02f, 0.3f, 0.1f, 0.5f, 0.4f, 0.2f,
                                  0.3f, 0.1f, 0.2f, 0.6f, 0.35f, 0.45f};

/* Term t's value via its own API; with back, also its backward with dl. */
static float individual(int t, const scene *s, grads *g, float dl, int back) {
    const float *a = s->z, *b = s->z + SN * SD;
    float *da = g->dz, *db = g->dz + SN * SD;
    float l = NAN;
    void *c = NULL;
#define CACHE(sz) (c = malloc(sz))
    switch (t) {
    case 0: {
        ss_ntxent_opts o = ss_ntxent_defaults(); o.temperature = 0.3f;
        CACHE(ss_ntxent_cache_size(2, SN, SD));
        SS_CHECK_OK(ss_ntxent_forward(&l, NULL, c, s->z, 2, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_ntxent_backward(g->dz, dl, c, s->z, 2, SN, SD, &o));
        break; }
    case 1: {
        ss_supcon_opts o = ss_supcon_defaults();
        CACHE(ss_supcon_cache_size(2, SN, SD));
        SS_CHECK_OK(ss_supcon_forward(&l, NULL, c, s->z, s->labels, 2, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_supcon_backward(g->dz, dl, c, s->z, s->labels, 2, SN, SD, &o));
        break; }
    case 2: case 3: {
        ss_dcl_opts o = t == 2 ? ss_dcl_defaults() : ss_dclw_defaults();
        if (t == 3) o.sigma = 0.7f;
        CACHE(ss_dcl_cache_size(2, SN, SD));
        SS_CHECK_OK(ss_dcl_forward(&l, NULL, c, s->z, 2, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_dcl_backward(g->dz, dl, c, s->z, 2, SN, SD, &o));
        break; }
    case 4: {
        ss_clip_opts o = ss_clip_defaults();
        CACHE(ss_clip_cache_size(SN, SD));
        SS_CHECK_OK(ss_clip_forward(&l, NULL, c, a, b, 1.5f, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_clip_backward(da, db, NULL, dl, c, a, b, 1.5f, SN, SD, &o));
        break; }
    case 5: {
        ss_siglip_opts o = ss_siglip_defaults();
        CACHE(ss_siglip_cache_size(SN, SD));
        SS_CHECK_OK(ss_siglip_forward(&l, NULL, c, a, b, 1.0f, -2.0f, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_siglip_backward(da, db, NULL, NULL, dl, c, a, b, 1.0f, -2.0f, SN, SD, &o));
        break; }
    case 6: case 18: {
        ss_negcos_opts o = ss_negcos_defaults();
        CACHE(ss_negcos_sym_cache_size(SN, SD));
        const float *p1 = s->p, *p2 = s->p + SN * SD;
        SS_CHECK_OK(ss_negcos_sym_forward(&l, NULL, c, p1, p2, a, b, SN, SD, &o));
        if (back)
            SS_CHECK_OK(ss_negcos_sym_backward(g->dp, g->dp + SN * SD,
                                               t == 18 ? da : NULL,
                                               t == 18 ? db : NULL, dl, c, p1,
                                               p2, a, b, SN, SD, &o));
        break; }
    case 7: {
        ss_barlow_opts o = ss_barlow_defaults();
        CACHE(ss_barlow_cache_size(SN, SD, &o));
        SS_CHECK_OK(ss_barlow_forward(&l, NULL, c, a, b, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_barlow_backward(da, db, dl, c, a, b, SN, SD, &o));
        break; }
    case 8: {
        ss_vicreg_opts o = ss_vicreg_defaults(); o.nu = 2;
        CACHE(ss_vicreg_cache_size(SN, SD, &o));
        SS_CHECK_OK(ss_vicreg_forward(&l, NULL, c, a, b, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_vicreg_backward(da, db, dl, c, a, b, SN, SD, &o));
        break; }
    case 9: {
        ss_hypersphere_opts o = ss_hypersphere_defaults(); o.t = 2;
        CACHE(ss_hypersphere_cache_size(SN, SD));
        SS_CHECK_OK(ss_hypersphere_forward(&l, c, a, b, SN, SD, &o));
        if (back) SS_CHECK_OK(ss_hypersphere_backward(da, db, dl, c, a, b, SN, SD, &o));
        break; }
    case 10:
        l = koleo_mean(s, g, dl, back);
        break;
    case 11: {
        ss_mae_opts o = ss_mae_defaults(); o.norm_pix = 0;
        SS_CHECK_OK(ss_mae_forward(&l, NULL, s->mae_pred, s->imgs, s->patch_mask, SB, SC, SH, SW, SP, &o));
        if (back) SS_CHECK_OK(ss_mae_backward(g->dmae, dl, s->mae_pred, s->imgs, s->patch_mask, SB, SC, SH, SW, SP, &o));
        break; }
    case 12: case 13: case 14: case 15: case 16: {
        static const ss_recon_kind kinds[] = {SS_RECON_HUBER, SS_RECON_L1,
            SS_RECON_BCE_LOGITS, SS_RECON_SMOOTH_L1, SS_RECON_MSE};
        ss_recon_opts o = ss_recon_defaults(kinds[t - 12]);
        if (t == 12) o.beta = 0.5f;
        if (t == 14) o.reduction = SS_REDUCE_SUM;
        if (t == 15) o.beta = 0.25f;
        SS_CHECK_OK(ss_recon_forward(&l, NULL, s->rp, s->rt, s->rmask, SRN, &o));
        if (back) SS_CHECK_OK(ss_recon_backward(g->drp, g->drt, dl, NULL, s->rp, s->rt, s->rmask, SRN, &o));
        break; }
    case 17: {
        ss_mlm_opts o = ss_mlm_defaults(); o.label_smoothing = 0.1f;
        CACHE(ss_mlm_cache_size(ST, SVOC));
        SS_CHECK_OK(ss_mlm_forward(&l, NULL, c, s->logits, s->targets, ST, SVOC, &o));
        if (back) SS_CHECK_OK(ss_mlm_backward(g->dlogits, dl, c, s->logits, s->targets, ST, SVOC, &o));
        break; }
    case 19: {
        ss_dino_opts o = ss_dino_defaults(); o.student_temp = 0.2f;
        CACHE(ss_dino_cache_size(SG, SVS, SN, SK));
        SS_CHECK_OK(ss_dino_forward(&l, NULL, c, s->teacher, s->student, the_center(), 0.06f, SG, SVS, SN, SK, &o));
        if (back) SS_CHECK_OK(ss_dino_backward(g->dstudent, dl, c, s->teacher, s->student, the_center(), 0.06f, SG, SVS, SN, SK, &o));
        break; }
    }
#undef CACHE
    free(c);
    return l;
}

SS_TEST(equals_weighted_sum_of_individual_calls) {
    static scene s;
    static grads g1, g2;
    make_scene(&s, 11);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, ALL_SPEC));
    if (!c) return;
    SS_CHECK_INT(ss_composite_nterms(c), NALL);
    float total, values[NALL];
    SS_CHECK_OK(ss_composite_forward(c, &total, values, &s.in));
    /* pre-filled buffers: backward must add to them */
    fill_grads(&g1, 5);
    fill_grads(&g2, 5);
    ss_composite_grads cg = bind(&g1);
    const float dloss = 0.75f;
    SS_CHECK_OK(ss_composite_backward(c, &cg, dloss, &s.in));
    double acc = 0;
    for (int t = 0; t < NALL; t++) {
        float want = individual(t, &s, &g2, ALL_W[t] * dloss, 1);
        SS_CHECK(values[t] == want);
        SS_CHECK(ss_composite_term_value(c, t) == want);
        SS_CHECK(ss_composite_term_weight(c, t) == ALL_W[t]);
        acc += (double)ALL_W[t] * (double)want;
    }
    SS_CHECK(total == (float)acc);
    /* the shared buffers hold exactly the sum of the terms' gradients */
    SS_CHECK(memcmp(&g1, &g2, sizeof g1) == 0);
    SS_CHECK(strcmp(ss_composite_term_name(c, 0), "ntxent") == 0);
    SS_CHECK(strcmp(ss_composite_term_name(c, 14), "bce") == 0);
    /* a second forward/backward reuses the caches and agrees */
    float total2;
    SS_CHECK_OK(ss_composite_forward(c, &total2, NULL, &s.in));
    SS_CHECK(total2 == total);
    ss_composite_free(c);
}

SS_TEST(shared_z_gets_sum_of_terms) {
    /* barlow + vicreg on one z: dz = w1 dBarlow + w2 dVICReg (from zero) */
    static scene s;
    static grads ga, gb, gsum;
    make_scene(&s, 3);
    memset(&gsum, 0, sizeof gsum);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "barlow:0.01,vicreg(nu=2):0.02"));
    float total;
    SS_CHECK_OK(ss_composite_forward(c, &total, NULL, &s.in));
    ss_composite_grads cg = bind(&gsum);
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    memset(&ga, 0, sizeof ga);
    memset(&gb, 0, sizeof gb);
    individual(7, &s, &ga, 0.01f, 1);
    individual(8, &s, &gb, 0.02f, 1);
    float want[2 * SN * SD];
    double nz = 0;
    for (int i = 0; i < 2 * SN * SD; i++) {
        want[i] = ga.dz[i] + gb.dz[i];
        nz += fabs(ga.dz[i]) * fabs(gb.dz[i]);
    }
    SS_CHECK(nz > 0); /* both terms really contribute */
    SS_CHECK_CLOSE_FF(gsum.dz, want, 2 * SN * SD, 1e-6, "dz = sum of terms");
    ss_composite_free(c);
}

SS_TEST(programmatic_add_matches_parse) {
    static scene s;
    make_scene(&s, 4);
    ss_composite *a = NULL, *b = NULL;
    SS_CHECK_OK(ss_composite_parse(&a, "  ntxent ( temperature = 0.2 ) : 1 ,\tmae(norm_pix=1):0.5  "));
    SS_CHECK_OK(ss_composite_create(&b));
    SS_CHECK_OK(ss_composite_add(b, "ntxent(temperature=0.2)", 1.0f));
    SS_CHECK_OK(ss_composite_add(b, "mae", 0.5f));
    SS_CHECK_INT(ss_composite_nterms(b), 2);
    float ta, tb;
    SS_CHECK_OK(ss_composite_forward(a, &ta, NULL, &s.in));
    SS_CHECK_OK(ss_composite_forward(b, &tb, NULL, &s.in));
    SS_CHECK(ta == tb);
    SS_CHECK(ss_composite_term_weight(a, 1) == 0.5f);
    /* add errors leave the composite unchanged */
    SS_CHECK_STATUS(ss_composite_add(b, "mae", -1.0f), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("weight must be finite and >= 0, got -1");
    SS_CHECK_STATUS(ss_composite_add(b, "mae", NAN), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_composite_add(b, "mae:1", 1.0f), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("trailing garbage ':1' at position 4");
    SS_CHECK_STATUS(ss_composite_add(b, "maee", 1.0f), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("unknown loss 'maee'");
    SS_CHECK_INT(ss_composite_nterms(b), 2);
    ss_composite_free(a);
    ss_composite_free(b);
}

SS_TEST(per_term_report) {
    static scene s;
    make_scene(&s, 5);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "barlow:2,koleo:0,mlm:1e-1"));
    SS_CHECK_INT(ss_composite_nterms(c), 3);
    SS_CHECK(isnan(ss_composite_term_value(c, 0))); /* before forward */
    SS_CHECK(strcmp(ss_composite_term_name(c, 2), "mlm") == 0);
    SS_CHECK(ss_composite_term_weight(c, 1) == 0.0f);
    SS_CHECK(ss_composite_term_weight(c, 2) == 0.1f);
    SS_CHECK(ss_composite_term_name(c, 3) == NULL);
    SS_CHECK(ss_composite_term_name(c, -1) == NULL);
    SS_CHECK(isnan(ss_composite_term_weight(c, 3)));
    SS_CHECK(isnan(ss_composite_term_value(NULL, 0)));
    SS_CHECK_INT(ss_composite_nterms(NULL), 0);
    float total, v[3];
    SS_CHECK_OK(ss_composite_forward(c, &total, v, &s.in));
    for (int i = 0; i < 3; i++) {
        SS_CHECK(isfinite(v[i]));
        SS_CHECK(v[i] == ss_composite_term_value(c, i));
    }
    SS_CHECK(v[1] != 0.0f); /* a weight-0 term is still reported */
    SS_CHECK(total == (float)(2.0 * v[0] + (double)0.1f * v[2]));
    ss_composite_free(c);
}

/* spec must fail with SS_ERR_PARAM and a message containing want. */
static void parse_fails(const char *spec, const char *want) {
    ss_composite *c = (ss_composite *)&c; /* sentinel: must stay */
    ss_composite *keep = c;
    SS_CHECK_STATUS(ss_composite_parse(&c, spec), SS_ERR_PARAM);
    SS_CHECK(c == keep);
    if (!ss_test_msg_has(want))
        fprintf(stderr, "  spec \"%s\": got \"%s\", want \"%s\"\n", spec,
                ss_last_error(), want);
    SS_CHECK_MSG_HAS(want);
}

SS_TEST(parse_errors) {
    parse_fails("", "empty spec");
    parse_fails("   ", "empty spec");
    parse_fails("ntxnet:1", "unknown loss 'ntxnet' at position 1");
    parse_fails("ntxent:1,foo(x=1):2", "unknown loss 'foo' at position 10");
    parse_fails("ntxent:1,9abc:2", "unknown loss '9abc' at position 10");
    parse_fails("ntxent", "missing ':weight' after 'ntxent' at position 7, got '(end)'");
    parse_fails("ntxent 1", "missing ':weight' after 'ntxent' at position 8, got '1'");
    parse_fails("ntxent:", "bad weight 'missing' of 'ntxent' at position 8");
    parse_fails("ntxent:,mae:1", "bad weight ',' of 'ntxent' at position 8");
    parse_fails("ntxent:-1", "bad weight '-1' of 'ntxent' at position 8: must be a finite number >= 0");
    parse_fails("ntxent:nan", "bad weight 'nan' of 'ntxent' at position 8");
    parse_fails("ntxent:inf", "bad weight 'inf'");
    parse_fails("ntxent:1e999", "bad weight '1e999'");
    parse_fails("ntxent:0x10", "bad weight '0x10'");
    parse_fails("ntxent:1.5.2", "bad weight '1.5.2'");
    parse_fails("ntxent:1e", "bad weight '1e'");
    parse_fails("ntxent(temp=0.2):1", "unknown parameter 'temp' of 'ntxent' at position 8 (known: temperature, cosine, hard_beta, debias_tau_plus)");
    parse_fails("ntxent(temperature=0):1", "bad value '0' for parameter 'temperature' of 'ntxent' at position 20: must be finite and > 0");
    parse_fails("ntxent(temperature=-0.5):1", "bad value '-0.5' for parameter 'temperature'");
    parse_fails("ntxent(temperature=abc):1", "bad value 'abc' for parameter 'temperature'");
    parse_fails("ntxent(temperature=nan):1", "bad value 'nan'");
    parse_fails("ntxent(temperature=):1", "bad value ')' for parameter 'temperature'");
    parse_fails("ntxent(cosine=2):1", "bad value '2' for parameter 'cosine' of 'ntxent' at position 15: must be 0 or 1");
    parse_fails("ntxent(cosine=0.5):1", "bad value '0.5' for parameter 'cosine'");
    parse_fails("ntxent(debias_tau_plus=1):1", "must be in [0, 1)");
    parse_fails("recon(kind=foo):1", "bad value 'foo' for parameter 'kind' of 'recon' at position 12: must be mse, l1, smoothl1, huber or bce");
    parse_fails("recon(reduction=none):1", "must be mean or sum");
    parse_fails("mse(kind=l1):1", "unknown parameter 'kind' of 'mse'");
    parse_fails("mlm(ignore_index=1.5):1", "bad value '1.5' for parameter 'ignore_index'");
    parse_fails("clip(log_scale=100):1", "must be finite and <= 88.7");
    parse_fails("ntxent(temperature=0.2,temperature=0.3):1", "duplicate parameter 'temperature' of 'ntxent' at position 24");
    parse_fails("ntxent(temperature 0.2):1", "expected '=' after parameter 'temperature' at position 20, got '0.2'");
    parse_fails("ntxent(temperature=0.2:1", "expected ',' or ')' in the parameters of 'ntxent' at position 23, got ':'");
    parse_fails("ntxent(temperature=0.2", "got '(end)'");
    parse_fails("ntxent(,):1", "expected a parameter name of 'ntxent' at position 8, got ','");
    parse_fails("ntxent(temperature=0.2,):1", "expected a parameter name");
    parse_fails("ntxent:1 mae:1", "trailing garbage 'mae:1' at position 10");
    parse_fails("ntxent:1)", "trailing garbage ')' at position 9");
    parse_fails("ntxent:1,", "empty term at position 10");
    parse_fails("ntxent:1,,mae:1", "empty term at position 10");
    parse_fails(",ntxent:1", "empty term at position 1");
    /* a good spec with empty parens and an integer-valued exponent */
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "ntxent():1,mlm(ignore_index=-1):2.5e-1,negcos(eps=1e-6,stopgrad=0):.5"));
    SS_CHECK_INT(ss_composite_nterms(c), 3);
    SS_CHECK(ss_composite_term_weight(c, 1) == 0.25f);
    SS_CHECK(ss_composite_term_weight(c, 2) == 0.5f);
    ss_composite_free(c);
}

SS_TEST(missing_inputs_and_buffers) {
    static scene s;
    static grads g;
    make_scene(&s, 6);
    memset(&g, 0, sizeof g);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "ntxent:1,mae:0.5,supcon:1"));
    ss_composite_inputs in = s.in;
    float total = 123.0f;
    in.imgs = NULL;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &in), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("term 1 'mae' needs input 'imgs', which is NULL");
    SS_CHECK(total == 123.0f);
    in = s.in;
    in.labels = NULL;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &in), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("term 2 'supcon' needs input 'labels'");
    in = s.in;
    in.z = NULL;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &in), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("term 0 'ntxent' needs input 'z'");
    {
        ss_composite *d = NULL;
        SS_CHECK_OK(ss_composite_parse(&d, "koleo:1,dino:1"));
        in = s.in;
        in.center = NULL;
        SS_CHECK_STATUS(ss_composite_forward(d, &total, NULL, &in), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("term 1 'dino' needs input 'center'");
        SS_CHECK_OK(ss_composite_forward(d, &total, NULL, &s.in));
        ss_composite_grads dg = bind(&g);
        dg.ddino_student = NULL;
        SS_CHECK_STATUS(ss_composite_backward(d, &dg, 1.0f, &s.in), SS_ERR_NULL);
        SS_CHECK_MSG_HAS("'ddino_student'");
        ss_composite_free(d);
    }
    /* backward after a failed forward */
    ss_composite_grads cg = bind(&g);
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, 1.0f, &s.in), SS_ERR_STATE);
    SS_CHECK_MSG_HAS("no successful forward");
    SS_CHECK_OK(ss_composite_forward(c, &total, NULL, &s.in));
    cg.dmae_pred = NULL;
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, 1.0f, &s.in), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("term 1 'mae' needs gradient buffer 'dmae_pred'");
    for (size_t i = 0; i < sizeof g.dz / sizeof g.dz[0]; i++)
        SS_CHECK(g.dz[i] == 0.0f); /* nothing accumulated before the check */
    cg = bind(&g);
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, NAN, &s.in), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss is nan");
    in = s.in;
    in.N = SN - 1;
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, 1.0f, &in), SS_ERR_STATE);
    SS_CHECK_MSG_HAS("sizes");
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    ss_composite_free(c);

    /* negcos: dp always, dz only with stopgrad=0 */
    SS_CHECK_OK(ss_composite_parse(&c, "negcos:1"));
    SS_CHECK_OK(ss_composite_forward(c, &total, NULL, &s.in));
    memset(&g, 0, sizeof g);
    cg = bind(&g);
    cg.dz = NULL;
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    ss_composite_free(c);
    SS_CHECK_OK(ss_composite_parse(&c, "negcos(stopgrad=0):1"));
    SS_CHECK_OK(ss_composite_forward(c, &total, NULL, &s.in));
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, 1.0f, &s.in), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("'dz'");
    cg = bind(&g);
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    double nz = 0;
    for (int i = 0; i < 2 * SN * SD; i++) nz += fabs(g.dz[i]);
    SS_CHECK(nz > 0);
    ss_composite_free(c);
}

SS_TEST(term_errors_name_the_term) {
    static scene s;
    make_scene(&s, 7);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "ntxent:1,barlow:1"));
    ss_composite_inputs in = s.in;
    in.V = 1; /* ntxent needs V >= 2 */
    float total = 5.0f, v[2] = {7, 7};
    SS_CHECK_STATUS(ss_composite_forward(c, &total, v, &in), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("term 0 'ntxent': ss_ntxent");
    SS_CHECK(total == 5.0f && v[0] == 7.0f);
    ss_composite_free(c);
    static float z3[3 * SN * SD];
    memcpy(z3, s.z, sizeof s.z);
    memcpy(z3 + 2 * SN * SD, s.z, SN * SD * sizeof(float));
    SS_CHECK_OK(ss_composite_parse(&c, "ntxent:1,barlow:1"));
    in = s.in;
    in.z = z3;
    in.V = 3;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &in), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("term 1 'barlow'");
    SS_CHECK_MSG_HAS("V = 2 views");
    s.z[4] = NAN;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &s.in), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("term 0 'ntxent'");
    ss_composite_free(c);
}

SS_TEST(null_and_free) {
    ss_composite_free(NULL);
    ss_composite *c = NULL;
    SS_CHECK_STATUS(ss_composite_parse(NULL, "ntxent:1"), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_parse(&c, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("spec");
    SS_CHECK_STATUS(ss_composite_create(NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_add(NULL, "mae", 1), SS_ERR_NULL);
    SS_CHECK_OK(ss_composite_create(&c));
    SS_CHECK_STATUS(ss_composite_add(c, NULL, 1), SS_ERR_NULL);
    static scene s;
    make_scene(&s, 8);
    float total;
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, &s.in), SS_ERR_STATE);
    SS_CHECK_MSG_HAS("no term");
    SS_CHECK_OK(ss_composite_add(c, "koleo(eps=1e-6)", 1));
    SS_CHECK_STATUS(ss_composite_forward(NULL, &total, NULL, &s.in), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_forward(c, NULL, NULL, &s.in), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_forward(c, &total, NULL, NULL), SS_ERR_NULL);
    SS_CHECK_OK(ss_composite_forward(c, &total, NULL, &s.in));
    static grads g;
    ss_composite_grads cg = bind(&g);
    SS_CHECK_STATUS(ss_composite_backward(NULL, &cg, 1, &s.in), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_backward(c, NULL, 1, &s.in), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_composite_backward(c, &cg, 1, NULL), SS_ERR_NULL);
    ss_composite_free(c);
}

/* ---- PyTorch float64 fixtures (tests/ref/composite.py) ------------------ */

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("composite.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases"), n;
    SS_CHECK(ncases >= 3);
    for (int64_t k = 0; k < ncases; k++) {
        char key[64], spec[256];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)k), key)
        int64_t kind = fx_int(fx, KEY("kind"));
        const double *w = fx_f64(fx, KEY("w"), &n);
        double temp = fx_scalar(fx, KEY("temperature"));
        if (kind == 0)
            snprintf(spec, sizeof spec, "ntxent(temperature=%.9g):%.9g,"
                     "mae(norm_pix=1):%.9g", temp, w[0], w[1]);
        else if (kind == 1)
            snprintf(spec, sizeof spec, "barlow:%.9g,vicreg:%.9g", w[0], w[1]);
        else
            snprintf(spec, sizeof spec, "mlm:%.9g,ntxent(temperature=%.9g):"
                     "%.9g", w[0], temp, w[1]);
        ss_composite *c = NULL;
        SS_CHECK_OK(ss_composite_parse(&c, spec));
        if (!c) continue;
        ss_composite_inputs in = {0};
        float *z = fx_f32_copy(fx, KEY("z"), &n);
        int64_t nz = n;
        in.z = z; in.V = 2; in.N = fx_int(fx, KEY("N")); in.D = fx_int(fx, KEY("D"));
        float *pred = NULL, *imgs = NULL, *logits = NULL;
        uint8_t *mask = NULL;
        int64_t *targets = NULL, npred = 0, nlog = 0;
        if (kind == 0) {
            in.B = fx_int(fx, KEY("B")); in.C = fx_int(fx, KEY("C"));
            in.H = fx_int(fx, KEY("H")); in.W = fx_int(fx, KEY("W"));
            in.patch = fx_int(fx, KEY("p"));
            pred = fx_f32_copy(fx, KEY("pred"), &npred);
            imgs = fx_f32_copy(fx, KEY("imgs"), &n);
            const int64_t *m = fx_i64(fx, KEY("mask"), &n);
            mask = malloc((size_t)n);
            for (int64_t i = 0; i < n; i++) mask[i] = (uint8_t)m[i];
            in.mae_pred = pred; in.imgs = imgs; in.patch_mask = mask;
        } else if (kind == 2) {
            in.T = fx_int(fx, KEY("T")); in.vocab = fx_int(fx, KEY("Vv"));
            logits = fx_f32_copy(fx, KEY("logits"), &nlog);
            const int64_t *t = fx_i64(fx, KEY("targets"), &n);
            targets = malloc((size_t)n * sizeof *targets);
            memcpy(targets, t, (size_t)n * sizeof *targets);
            in.logits = logits; in.targets = targets;
        }
        float total, v[2];
        SS_CHECK_OK(ss_composite_forward(c, &total, v, &in));
        const double *wv = fx_f64(fx, KEY("values"), &n);
        SS_CHECK_NEAR(total, fx_scalar(fx, KEY("loss")), 1e-4);
        SS_CHECK_NEAR(v[0], wv[0], 1e-4);
        SS_CHECK_NEAR(v[1], wv[1], 1e-4);
        float *dz = ss_test_alloc(nz), *dpred = ss_test_alloc(npred + 1),
              *dlog = ss_test_alloc(nlog + 1);
        ss_composite_grads g = {dz, NULL, dpred, NULL, NULL, dlog, NULL};
        SS_CHECK_OK(ss_composite_backward(c, &g, 1.0f, &in));
        SS_CHECK_CLOSE_FD(dz, fx_f64(fx, KEY("dz"), &n), nz, 1e-4, "dz");
        if (kind == 0)
            SS_CHECK_CLOSE_FD(dpred, fx_f64(fx, KEY("dpred"), &n), npred, 1e-4, "dpred");
        if (kind == 2)
            SS_CHECK_CLOSE_FD(dlog, fx_f64(fx, KEY("dlogits"), &n), nlog, 1e-4, "dlogits");
#undef KEY
        free(z); free(pred); free(imgs); free(mask); free(logits); free(targets);
        free(dz); free(dpred); free(dlog);
        ss_composite_free(c);
    }
    fx_free(fx);
}

SS_TEST(thread_count_independent) {
    static scene s;
    static grads g1, g2;
    make_scene(&s, 9);
    ss_composite *c = NULL;
    SS_CHECK_OK(ss_composite_parse(&c, "ntxent:1,vicreg:0.1,koleo:0.2,mlm:1"));
    float t1, t2;
    ss_composite_grads cg;
    memset(&g1, 0, sizeof g1);
    memset(&g2, 0, sizeof g2);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(ss_composite_forward(c, &t1, NULL, &s.in));
    cg = bind(&g1);
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(ss_composite_forward(c, &t2, NULL, &s.in));
    cg = bind(&g2);
    SS_CHECK_OK(ss_composite_backward(c, &cg, 1.0f, &s.in));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(t1, t2, 1e-6);
    SS_CHECK_CLOSE_FF(g2.dz, g1.dz, 2 * SN * SD, 1e-5, "dz 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(g2.dlogits, g1.dlogits, ST * SVOC, 1e-5, "dlogits");
    ss_composite_free(c);
}

SS_TEST(dino_teacher_temp_from_inputs_or_parameter) {
    static scene s;
    make_scene(&s, 10);
    ss_composite *a = NULL, *b = NULL;
    SS_CHECK_OK(ss_composite_parse(&a, "dino:1"));
    SS_CHECK_OK(ss_composite_parse(&b, "dino(teacher_temp=0.06):1"));
    float ta, tb, tc;
    SS_CHECK_OK(ss_composite_forward(a, &ta, NULL, &s.in)); /* 0.06 from in */
    ss_composite_inputs in = s.in;
    in.dino_teacher_temp = 0.0f; /* the parameter */
    SS_CHECK_OK(ss_composite_forward(b, &tb, NULL, &in));
    SS_CHECK(ta == tb);
    SS_CHECK_OK(ss_composite_forward(a, &tc, NULL, &in)); /* default 0.04 */
    SS_CHECK(tc != ta);
    in.dino_teacher_temp = -1.0f;
    SS_CHECK_STATUS(ss_composite_forward(a, &tc, NULL, &in), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("term 0 'dino'");
    ss_composite_free(a);
    ss_composite_free(b);
}
