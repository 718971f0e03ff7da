/*
 * trainer.h - the training loop and the evaluation of `selfsup train` /
 * `selfsup eval` (internal).
 *
 * One step: B images from the seeded loader -> two augmented views (seeded
 * from (seed, step, view), so a resumed run draws the same views) -> the
 * method's forward + backward (methods.h) -> optimiser step on a warm-up +
 * cosine learning rate -> EMA target update (byol, dino).
 * After every epoch: the collapse check on a fixed monitor batch (first 512
 * training images, un-augmented), a metrics CSV row, and an atomic
 * checkpoint (checkpoint.h). A non-finite or exploding loss stops the run
 * before anything is written, so the last good checkpoint is kept.
 *
 * Data-parallel (a comm of size W > 1, e.g. `mpirun -np W selfsup train`):
 * every rank runs the same loader (same seed, the GLOBAL batch B) and takes
 * its contiguous slice of each batch (sst_dist_slice; uneven when W does
 * not divide B); views are seeded per global sample slot, BatchNorm is
 * synchronised, the loss is the distributed one and parameter gradients
 * are averaged, so every rank takes the single-process step on the whole
 * batch (up to float summation order) and holds identical parameters.
 * Every method (dino's teacher centre is the global batch's too).
 */
#ifndef SST_TRAINER_H
#define SST_TRAINER_H

#include "augment.h"
#include "data.h"
#include "methods.h"
#include "model.h"
#include "report.h"

#include <stdio.h>

typedef enum { SST_OPT_ADAMW = 0, SST_OPT_SGD, SST_OPT_LARS } sst_opt_kind;

/* What is saved in a checkpoint (plain fixed-size values). */
typedef struct {
    char method[16];
    int32_t optimizer; /* sst_opt_kind */
    int32_t reserved;
    int64_t epochs, batch, seed, subset, warmup_epochs;
    int64_t proj_hidden, proj_out;
    double lr, wd, temperature, recon_weight;
} sst_train_cfg;

/* Defaults of method (sst_method_find index): the method's info plus
 * epochs, batch 256, seed 0, no subset. */
sst_train_cfg sst_train_defaults(sst_method_id id);

typedef struct {
    sst_train_cfg cfg;
    sst_method_id mid;
    const sst_method_info *info;
    const sst_images *data; /* training images (not owned) */
    int64_t n;              /* images used (subset) */
    sst_model m, t;         /* online, EMA target (when info->target) */
    sst_method_ctx mc;
    float *opt1, *opt2;     /* optimiser state (numel) */
    sst_loader ld;
    ss_rng mask_rng;
    sst_augment aug[2];
    int64_t step, epoch, steps_per_epoch, total_steps;
    float *x, *clean, *raw; /* (2B, 784), (B, 784), (B, 784) */
    int64_t *idx;           /* (B) the global batch's sample indices */
    float *hist;            /* per-step losses, (total_steps) */
    float last_loss;
    const ss_comm *comm;    /* data-parallel (size > 1), or NULL */
    int64_t first, nloc;    /* this rank's slots of the global batch */
} sst_trainer;

/* Sets up a run on the first cfg->subset images of data (0: all). Errors:
 * SS_ERR_PARAM (unknown method, bad values), SS_ERR_SIZE (batch > images),
 * SS_ERR_NOMEM. */
ss_status sst_trainer_init(sst_trainer *tr, const sst_train_cfg *cfg,
                           const sst_images *data);
/* The same, data-parallel over comm (NULL or size 1: one process, exactly
 * sst_trainer_init). Every rank passes the same cfg and data; comm must
 * outlive the trainer. Further errors: SS_ERR_SIZE (batch < ranks),
 * SS_ERR_PARAM / SS_ERR_NULL (bad comm). Local: no collective. */
ss_status sst_trainer_init_comm(sst_trainer *tr, const sst_train_cfg *cfg,
                                const sst_images *data, const ss_comm *comm);
void sst_trainer_free(sst_trainer *tr);
/* One optimisation step; *loss receives its loss (of the global batch).
 * A non-finite or exploding (> 1e6) loss is SS_ERR_NONFINITE with a
 * diagnostic (nothing is updated). Data-parallel: collective; an error on
 * any rank is an error on every rank. */
ss_status sst_trainer_step(sst_trainer *tr, float *loss);
double sst_trainer_lr(const sst_trainer *tr);

/* Options of the whole run. */
typedef struct {
    const char *data_dir; /* NULL: Fashion-MNIST */
    const char *out_dir;  /* checkpoint.bin, metrics.csv, report.png */
    int resume;           /* continue from out_dir/checkpoint.bin */
    int progress;         /* progress bar on stderr */
    int64_t eval_train, eval_test; /* images for the final evaluation, 0: all */
    int evaluate;         /* run the three-encoder evaluation at the end */
    const ss_comm *comm;  /* data-parallel ranks, or NULL: one process */
} sst_run_opts;

/* Trains (or resumes) and evaluates; prints the table to stdout.
 * Data-parallel: every rank calls it with the same arguments; only rank 0
 * prints, writes out_dir and evaluates; an error on any rank before the
 * evaluation stops every rank with an error. */
ss_status sst_train_run(const sst_train_cfg *cfg, const sst_run_opts *o);

/* Results of one encoder on the test set. */
typedef struct {
    const char *name;
    double probe, knn, std_ratio, eff_rank, mean_std;
} sst_eval_row;

/* The three-encoder table for model m (trained with cfg): pretrained, same
 * architecture at random init (BN statistics recalibrated on 20 training
 * batches), raw pixels. Prints it to f; writes report_png (may be NULL)
 * with loss history hist (n_hist, may be 0). rows: (3) or NULL. */
ss_status sst_evaluate(sst_model *m, const sst_train_cfg *cfg,
                       const char *data_dir, int64_t ntr, int64_t nte,
                       const float *hist, int64_t n_hist,
                       const char *report_png, FILE *f, sst_eval_row *rows);

#endif
