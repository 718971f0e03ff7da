/*
 * composite.h - internal: the term table of ss_composite. Adding a loss to
 * composites is one entry in src/composite_terms.c.
 */
#ifndef SS_COMPOSITE_H
#define SS_COMPOSITE_H

#include "internal.h"

/* Options of every loss a term can hold; the term kind knows its member. */
typedef union {
    ss_ntxent_opts ntxent;
    ss_supcon_opts supcon;
    ss_dcl_opts dcl;
    struct { ss_clip_opts o; float log_scale; } clip;
    struct { ss_siglip_opts o; float log_t, bias; } siglip;
    struct { ss_negcos_opts o; int stopgrad; } negcos;
    ss_barlow_opts barlow;
    ss_vicreg_opts vicreg;
    ss_hypersphere_opts hs;
    ss_koleo_opts koleo;
    ss_mae_opts mae;
    ss_recon_opts recon;
    ss_mlm_opts mlm;
    ss_dino_opts dino;
} ss__term_opts;

typedef enum { SS__P_F32, SS__P_BOOL, SS__P_INT, SS__P_WORD } ss__ptype;

/* One parameter: value range [lo, hi] (open ends when lo_open/hi_open),
 * checked at parse time so that a bad value is reported with its position.
 * P_WORD: words[k] stores k (an enum value) as int. */
typedef struct {
    const char *key;
    ss__ptype type;
    size_t off; /* offset in ss__term_opts */
    double lo, hi;
    int lo_open, hi_open;
    const char *const *words;
    const char *range; /* human-readable range for messages */
} ss__param;

/* Inputs and gradients a term needs (bit masks). */
enum {
    SS__IN_Z = 1, SS__IN_LABELS = 2, SS__IN_P = 4, SS__IN_MAE = 8,
    SS__IN_RECON = 16, SS__IN_MLM = 32, SS__IN_DINO = 64
};
enum {
    SS__G_DZ = 1, SS__G_DP = 2, SS__G_DMAE = 4, SS__G_DRECON = 8,
    SS__G_DLOGITS = 16, SS__G_DDINO = 32
};

typedef struct {
    const char *name;
    void (*init)(ss__term_opts *o);
    const ss__param *params; /* terminated by key == NULL */
    unsigned inputs;
    unsigned (*grads)(const ss__term_opts *o);
    /* *bytes: cache for these inputs; SS_ERR_SIZE (message set) if invalid */
    ss_status (*cache)(size_t *bytes, const ss__term_opts *o,
                       const ss_composite_inputs *in);
    ss_status (*fwd)(float *loss, void *cache, const ss__term_opts *o,
                     const ss_composite_inputs *in);
    ss_status (*bwd)(const ss_composite_grads *g, float dloss,
                     const void *cache, const ss__term_opts *o,
                     const ss_composite_inputs *in);
} ss__term_kind;

extern const ss__term_kind ss__term_kinds[];
extern const int ss__n_term_kinds;

#endif /* SS_COMPOSITE_H */
