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

/* Helpers of the term wrappers (composite_terms.c), shared with
 * dist_composite.c: SS_ERR_SIZE unless z holds V = 2 views; DINO's teacher
 * temperature (the inputs', else the term's parameter). */
ss_status ss__composite_two_views(const ss_composite_inputs *in);
float ss__composite_dino_ttemp(const ss__term_opts *o,
                               const ss_composite_inputs *in);

/* ---- passes over the terms (the single-process and the distributed one) -- */

/* How a forward / backward pass runs its terms. NULL operations: the
 * kind's own (single-process). dist_composite.c passes the ss_dist_* ones,
 * the comm in ctx, and an agreement that runs once, after the local checks
 * and before any term, with their status (and dloss in backward, else
 * NULL); it returns the status every rank proceeds with. */
typedef struct ss__composite_pass ss__composite_pass;
struct ss__composite_pass {
    const char *fn; /* the public function, in messages */
    int mode;       /* >= 1; a backward needs a forward of the same mode */
    const void *ctx;
    ss_status (*cache)(const ss__composite_pass *p, const ss__term_kind *k,
                       size_t *bytes, const ss__term_opts *o,
                       const ss_composite_inputs *in);
    ss_status (*fwd)(const ss__composite_pass *p, const ss__term_kind *k,
                     float *loss, void *cache, const ss__term_opts *o,
                     const ss_composite_inputs *in);
    ss_status (*bwd)(const ss__composite_pass *p, const ss__term_kind *k,
                     const ss_composite_grads *g, float dloss,
                     const void *cache, const ss__term_opts *o,
                     const ss_composite_inputs *in);
    ss_status (*agree)(const ss__composite_pass *p, ss_status st,
                       const ss_composite *c, const float *dloss);
};

/* ss_composite_forward / _backward with the pass p. */
ss_status ss__composite_forward(ss_composite *c, float *total, float *values,
                                const ss_composite_inputs *in,
                                const ss__composite_pass *p);
ss_status ss__composite_backward(ss_composite *c, const ss_composite_grads *g,
                                 float dloss, const ss_composite_inputs *in,
                                 const ss__composite_pass *p);

/* What must be equal on every rank: out[0] the number of terms, out[1] a
 * hash of the term names and parameter values, out[2] a hash of the
 * weights (integers below 2^52, exact in double). */
void ss__composite_digest(const ss_composite *c, double out[3]);

#endif /* SS_COMPOSITE_H */
