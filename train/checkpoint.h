/*
 * checkpoint.h - versioned training checkpoints (internal).
 *
 * Format (src/fileio.h: magic "SSTCKPT1", u32 version 1, u32 0), then
 * little-endian native values:
 *   sst_train_cfg (fixed size)            run configuration
 *   i64 numel, f32 params[numel]          online arena (incl. BN stats)
 *   f32 opt1[numel], f32 opt2[numel]      optimiser state
 *   i64 tnumel, f32 target[tnumel]        EMA target (0 when none)
 *   i64 K, f32 centre[K]                  DINO centre (0 when none)
 *   i64 epoch, i64 step
 *   i64 n, i64 pos, i64 loader_epoch, i64 order[n], u64 rng[4]  loader
 *   u64 mask_rng[4]
 *   i64 nhist, f32 hist[nhist]            per-step losses so far
 * Written atomically (temp + rename) after every epoch.
 */
#ifndef SST_CHECKPOINT_H
#define SST_CHECKPOINT_H

#include "trainer.h"

#define SST_CKPT_VERSION 1u

/* Errors: SS_ERR_NULL, SS_ERR_IO naming the path. */
ss_status sst_checkpoint_save(const sst_trainer *tr, const char *path);
/* Reads only the configuration of a checkpoint (to set up the trainer). */
ss_status sst_checkpoint_read_cfg(sst_train_cfg *cfg, const char *path);
/* Restores a trainer set up with the checkpoint's configuration and data.
 * Errors: SS_ERR_IO, SS_ERR_FORMAT naming the byte offset (bad magic,
 * version, sizes that do not match this trainer, truncation, trailing
 * bytes). On failure the trainer may be partly overwritten. */
ss_status sst_checkpoint_load(sst_trainer *tr, const char *path);
/* Loads just the online model of a checkpoint into m (initialised from the
 * checkpoint's cfg by this call). Errors: as load. */
ss_status sst_checkpoint_load_model(sst_model *m, sst_train_cfg *cfg,
                                    const char *path);

#endif
