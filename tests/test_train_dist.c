/* test_train_dist.c - data-parallel training (trainer.h) on thread ranks
 * (thread_comm.h): synchronised BatchNorm equals BatchNorm on the
 * concatenated batch, two training steps on 2 or 3 ranks equal the
 * single-process steps (every method; even and uneven
 * slices), every rank holds the same parameters, and a failing rank stops
 * every rank with an error instead of hanging. */
#include "comm_internal.h"
#include "harness.h"
#include "thread_comm.h"
#include "trainer.h"

#include <stdlib.h>
#include <string.h>

#define TOL 1e-5

/* ---- synchronised BatchNorm ------------------------------------------------ */

enum { BN_N = 5, BN_C = 3, BN_S = 4, BN_W = 2 };
static const int64_t BN_ROWS[BN_W] = {1, 4}; /* uneven: one row on rank 0 */

typedef struct {
    const float *x, *dy; /* global (BN_N, C, S) */
    float y[BN_N * BN_C * BN_S], dx[BN_N * BN_C * BN_S];
    float saved[2 * BN_C], rm[BN_C], rv[BN_C], dg[BN_C], db[BN_C];
} bn_run;

static int bn_body(const ss_comm *comm, void *arg) {
    bn_run *r = arg;
    const float gamma[BN_C] = {1.5f, -0.5f, 2.0f}, beta[BN_C] = {0.1f, 0.0f, -1.0f};
    int64_t first = comm->rank ? BN_ROWS[0] : 0, n = BN_ROWS[comm->rank];
    int64_t row = BN_C * BN_S, o = first * row;
    double work[2 * BN_C + 1 + BN_W];
    float dy[BN_N * BN_C * BN_S];
    for (int c = 0; c < BN_C; c++) r->rm[c] = 0.0f, r->rv[c] = 1.0f;
    /* mean convention: the upstream gradient is world_size x the global one */
    for (int64_t i = 0; i < n * row; i++) dy[i] = (float)comm->size * r->dy[o + i];
    ss_status st = sst_batchnorm_forward_sync(r->y + o, r->saved, r->x + o, gamma,
                                              beta, r->rm, r->rv, n, BN_C, BN_S,
                                              SST_BN_EPS, SST_BN_MOMENTUM, work,
                                              comm, SS_OK);
    if (!st)
        st = sst_batchnorm_backward_sync(r->dx + o, r->dg, r->db, dy, r->saved,
                                         r->x + o, gamma, n, BN_C, BN_S, work,
                                         comm, SS_OK);
    for (int64_t i = 0; !st && i < n * row; i++) r->dx[o + i] /= (float)comm->size;
    return st != SS_OK;
}

SS_TEST(sync_batchnorm_equals_concatenated_batch) {
    float x[BN_N * BN_C * BN_S], dy[BN_N * BN_C * BN_S];
    ss_rng rng;
    ss_rng_seed(&rng, 11);
    ss_test_fill_normal(x, BN_N * BN_C * BN_S, &rng);
    ss_test_fill_normal(dy, BN_N * BN_C * BN_S, &rng);
    bn_run one, ranks[BN_W];
    memset(&one, 0, sizeof one), memset(ranks, 0, sizeof ranks);
    const float gamma[BN_C] = {1.5f, -0.5f, 2.0f}, beta[BN_C] = {0.1f, 0.0f, -1.0f};
    for (int c = 0; c < BN_C; c++) one.rm[c] = 0.0f, one.rv[c] = 1.0f;
    SS_CHECK_OK(sst_batchnorm_forward(one.y, one.saved, x, gamma, beta, one.rm,
                                      one.rv, BN_N, BN_C, BN_S, SST_BN_EPS,
                                      SST_BN_MOMENTUM, 1));
    SS_CHECK_OK(sst_batchnorm_backward(one.dx, one.dg, one.db, dy, one.saved, x,
                                       gamma, BN_N, BN_C, BN_S, 1));
    float y[BN_N * BN_C * BN_S], dx[BN_N * BN_C * BN_S];
    void *args[BN_W];
    for (int q = 0; q < BN_W; q++) ranks[q].x = x, ranks[q].dy = dy, args[q] = &ranks[q];
    SS_CHECK_INT(ss_tc_run(BN_W, bn_body, args), 0);
    float dg[BN_C] = {0}, db[BN_C] = {0};
    for (int q = 0; q < BN_W; q++) {
        int64_t o = q ? BN_ROWS[0] * BN_C * BN_S : 0, m = BN_ROWS[q] * BN_C * BN_S;
        memcpy(y + o, ranks[q].y + o, (size_t)m * 4);
        memcpy(dx + o, ranks[q].dx + o, (size_t)m * 4);
        /* local sums of W x dy: their average over ranks is the global sum */
        for (int c = 0; c < BN_C; c++)
            dg[c] += ranks[q].dg[c] / BN_W, db[c] += ranks[q].db[c] / BN_W;
        SS_CHECK_CLOSE_FF(ranks[q].saved, one.saved, 2 * BN_C, TOL, "saved");
        SS_CHECK_CLOSE_FF(ranks[q].rv, one.rv, BN_C, TOL, "running var");
        SS_CHECK_CLOSE_FF(ranks[q].rm, one.rm, BN_C, TOL, "running mean");
    }
    SS_CHECK_CLOSE_FF(y, one.y, BN_N * BN_C * BN_S, TOL, "y");
    SS_CHECK_CLOSE_FF(dx, one.dx, BN_N * BN_C * BN_S, TOL, "dx");
    SS_CHECK_CLOSE_FF(dg, one.dg, BN_C, TOL, "dgamma");
    SS_CHECK_CLOSE_FF(db, one.db, BN_C, TOL, "dbeta");
}

/* ---- training steps ------------------------------------------------------------ */

/* n images of a bright disc at a random place on noise. */
static sst_images discs(int64_t n, uint64_t seed) {
    sst_images im = {n, 28, 28, malloc((size_t)(n * 784))};
    ss_rng r;
    ss_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        double cy = 6 + 16 * ss_rng_uniform(&r), cx = 6 + 16 * ss_rng_uniform(&r);
        for (int p = 0; p < 784; p++) {
            double d = (p / 28 - cy) * (p / 28 - cy) + (p % 28 - cx) * (p % 28 - cx);
            im.pixels[i * 784 + p] = (uint8_t)(d < 30 ? 220 : 40 * ss_rng_uniform(&r));
        }
    }
    return im;
}

/* One step from identical weights: a second step compares trajectories
 * whose float noise can flip max-pool ties on these flat images (seen as
 * 1e-3 gradient differences in the -O0 sanitizer build). */
enum { STEPS = 1 };

typedef struct {
    const sst_train_cfg *cfg;
    const sst_images *im;
    int poison;           /* 1: NaN in this rank's projector before step 1 */
    ss_status st;
    float loss[STEPS];
    int64_t numel, step;
    float *params, *grads; /* copies after the last step (malloc) */
} step_run;

static int step_body(const ss_comm *comm, void *arg) {
    step_run *r = arg;
    sst_trainer t;
    r->st = sst_trainer_init_comm(&t, r->cfg, r->im, comm);
    if (comm) r->st = ss__dist_status(comm, "step_body", r->st); /* init is local */
    if (r->st) {
        sst_trainer_free(&t);
        return 1;
    }
    if (r->poison) t.m.P.data[t.m.proj.w2] = NAN;
    for (int s = 0; s < STEPS && !r->st; s++)
        r->st = sst_trainer_step(&t, &r->loss[s]);
    r->numel = t.m.P.numel, r->step = t.step;
    r->params = malloc((size_t)r->numel * 4), r->grads = malloc((size_t)r->numel * 4);
    memcpy(r->params, t.m.P.data, (size_t)r->numel * 4);
    memcpy(r->grads, t.m.P.grad, (size_t)r->numel * 4);
    sst_trainer_free(&t);
    return r->st != SS_OK;
}

static void step_free(step_run *r) { free(r->params), free(r->grads); }

/* SGD with momentum: parameters after the steps follow the gradients. */
static sst_train_cfg small_cfg(sst_method_id id, int64_t batch) {
    sst_train_cfg c = sst_train_defaults(id);
    c.batch = batch, c.epochs = 2, c.seed = 5, c.warmup_epochs = 0;
    c.proj_hidden = 32, c.proj_out = 16, c.optimizer = SST_OPT_SGD;
    c.lr = 0.05;
    return c;
}

/* STEPS steps on W thread ranks against one process. */
static void check_steps(sst_train_cfg c, int W) {
    sst_images im = discs(24, 3);
    step_run one = {&c, &im, 0, SS_OK, {0}, 0, 0, NULL, NULL}, ranks[4];
    void *args[4];
    SS_CHECK_INT(step_body(NULL, &one), 0);
    for (int q = 0; q < W; q++) {
        ranks[q] = one;
        ranks[q].params = ranks[q].grads = NULL;
        args[q] = &ranks[q];
    }
    SS_CHECK_INT(ss_tc_run(W, step_body, args), 0);
    for (int q = 0; q < W; q++) {
        step_run *r = &ranks[q];
        SS_CHECK_INT(r->step, STEPS);
        for (int s = 0; s < STEPS; s++) SS_CHECK_NEAR(r->loss[s], one.loss[s], TOL);
        SS_CHECK_CLOSE_FF(r->grads, one.grads, one.numel, TOL, c.method);
        /* AdamW turns float noise in gradients that cancel to ~0 (the last
         * bias under a normalised loss) into lr-sized steps: parameters
         * are compared under SGD, where the step is the gradient */
        if (c.optimizer == SST_OPT_SGD)
            SS_CHECK_CLOSE_FF(r->params, one.params, one.numel, TOL, c.method);
        /* identical on every rank: the same averaged gradient everywhere */
        SS_CHECK(!memcmp(r->params, ranks[0].params, (size_t)one.numel * 4));
    }
    for (int q = 0; q < W; q++) step_free(&ranks[q]);
    step_free(&one);
    free(im.pixels);
}

SS_TEST(two_rank_steps_equal_single_process) {
    int keep = ss_get_num_threads();
    ss_set_num_threads(1);
    check_steps(small_cfg(SST_SIMCLR, 8), 2); /* 4 + 4 */
    check_steps(small_cfg(SST_BARLOW, 7), 2); /* 3 + 4 */
    check_steps(small_cfg(SST_VICREG, 8), 2);
    check_steps(small_cfg(SST_BYOL, 7), 2);
    check_steps(small_cfg(SST_COMBO, 8), 2);
    check_steps(small_cfg(SST_MAE, 3), 2); /* 1 + 2: one row on rank 0 */
    check_steps(small_cfg(SST_DINO, 7), 2);
    sst_train_cfg a = small_cfg(SST_SIMCLR, 7);
    a.optimizer = SST_OPT_ADAMW, a.lr = 2e-3; /* the default optimiser */
    check_steps(a, 2);
    ss_set_num_threads(keep);
}

SS_TEST(three_rank_uneven_steps_equal_single_process) {
    int keep = ss_get_num_threads();
    ss_set_num_threads(1);
    check_steps(small_cfg(SST_SIMCLR, 7), 3); /* 2 + 2 + 3 */
    ss_set_num_threads(keep);
}

SS_TEST(a_failing_rank_stops_every_rank) {
    int keep = ss_get_num_threads();
    ss_set_num_threads(1);
    sst_images im = discs(24, 4);
    sst_train_cfg c = small_cfg(SST_SIMCLR, 8);
    step_run r[2] = {{&c, &im, 0, SS_OK, {0}, 0, 0, NULL, NULL},
                     {&c, &im, 1, SS_OK, {0}, 0, 0, NULL, NULL}};
    void *args[2] = {&r[0], &r[1]};
    SS_CHECK_INT(ss_tc_run(2, step_body, args), 2);
    for (int q = 0; q < 2; q++) {
        SS_CHECK_STATUS(r[q].st, SS_ERR_NONFINITE);
        SS_CHECK_INT(r[q].step, 0); /* nothing was updated */
        step_free(&r[q]);
    }
    free(im.pixels);
    ss_set_num_threads(keep);
}

SS_TEST(data_parallel_config_errors) {
    sst_images im = discs(8, 5);
    sst_trainer t;
    ss_comm three = ss_comm_local(); /* init runs no collective */
    three.size = 3;
    sst_train_cfg c = small_cfg(SST_SIMCLR, 2);
    SS_CHECK_STATUS(sst_trainer_init_comm(&t, &c, &im, &three), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("smaller than the 3 ranks");
    three.rank = 3;
    SS_CHECK_STATUS(sst_trainer_init_comm(&t, &c, &im, &three), SS_ERR_PARAM);
    /* a comm of size 1 is one process */
    ss_comm one = ss_comm_local();
    SS_CHECK_OK(sst_trainer_init_comm(&t, &c, &im, &one));
    SS_CHECK(t.comm == NULL && t.nloc == 2);
    sst_trainer_free(&t);
    free(im.pixels);
}
