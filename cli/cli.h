/* cli.h - subcommands of the selfsup command and the helpers they share.
 * Each subcommand returns the process exit status: 0 success, 1 failure,
 * 2 usage error. */
#ifndef SS_CLI_H
#define SS_CLI_H

#include "selfsup.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int ss_cli_bench(int argc, char **argv); /* bench.c */
int ss_cli_demo(int argc, char **argv);  /* demo.c */
int ss_cli_train(int argc, char **argv); /* train.c */
int ss_cli_eval(int argc, char **argv);  /* eval.c */

/* Prints "selfsup: <msg>\n" to stderr and returns 2 (usage) */
int ss_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- options (args.c) ---------------------------------------------------- */

typedef enum {
    SS_CLI_INT,    /* value: int64_t *, checked against [lo, hi] */
    SS_CLI_REAL,   /* value: double *, finite, checked against [lo, hi] */
    SS_CLI_SWITCH, /* value: int *, set to switch_value; takes no argument */
} ss_cli_opt_kind;

typedef struct {
    const char *name;    /* "--n" */
    const char *metavar; /* "N"; NULL for a switch */
    ss_cli_opt_kind kind;
    void *value;      /* holds the default on entry, the parsed value after */
    double lo, hi;    /* accepted range of INT and REAL options */
    int switch_value; /* what a SWITCH stores */
    const char *help; /* one line; INT and REAL get "(default X)" appended */
} ss_cli_opt;

/* Parses argv[1..argc-1] ("--flag value" or "--flag=value") into opts, and up
 * to npos positional arguments into pos[] (unset ones stay NULL). Returns 0,
 * 2 after printing a usage error naming the flag and the value, or -1 when
 * --help/-h was given (nothing else is parsed then). */
int ss_cli_parse(const char *cmd, int argc, char **argv, const ss_cli_opt *opts,
                 int nopts, const char **pos, int npos);
/* One aligned line per option: flag, metavar, help and default. */
void ss_cli_print_opts(FILE *f, const ss_cli_opt *opts, int nopts);
/* Online CPUs (>= 1): the default thread count. */
int64_t ss_cli_ncpu(void);

/* ---- losses (losses.c): one descriptor per benchmarked loss --------------- */

typedef struct {
    int64_t V, N, D; /* views, batch, dimension */
    int64_t K;       /* queue length (moco only) */
} ss_cli_shape;

/* How a loss takes its inputs; also the order of the arrays that
 * ss_cli_problem_save writes for bench/torch_ref.py. */
typedef enum {
    SS_CLI_STACKED, /* z: (V, N, D) float32 [, labels: (N) int64] */
    SS_CLI_PAIR,    /* a: (N, D), b: (N, D) float32 */
    SS_CLI_QUEUE,   /* q: (N, D), k: (N, D), queue: (K, D) float32 */
    SS_CLI_ARRAYS,  /* the loss's own list of arrays (ss_cli_loss.arrays) */
} ss_cli_layout;

/* One input array of an SS_CLI_ARRAYS loss: element type, element count,
 * and whether backward accumulates a gradient into it. */
typedef enum { SS_CLI_F32, SS_CLI_I64, SS_CLI_U8 } ss_cli_dtype;
typedef struct {
    ss_cli_dtype type;
    int64_t count; /* an upper bound; init may lower it (ibot's M) */
    int grad;
} ss_cli_array;
#define SS_CLI_MAX_ARRAYS 6

typedef struct ss_cli_problem ss_cli_problem; /* inputs, gradients, cache */

typedef struct {
    const char *name;      /* CLI name, also torch_ref.py's */
    const char *reference; /* the PyTorch formula torch_ref.py times */
    ss_cli_layout layout;
    int labels;                   /* takes labels (N) */
    int64_t min_views, max_views; /* accepted V */
    const char *flop_model;       /* e.g. "2 M^2 D MAC, M = V N" */
    double (*macs)(const ss_cli_shape *s); /* MACs of fwd + bwd; NULL: none */
    size_t (*cache_size)(const ss_cli_problem *p);
    ss_status (*forward)(ss_cli_problem *p);
    ss_status (*backward)(ss_cli_problem *p);
    /* SS_CLI_ARRAYS only: the arrays at shape s (returns how many) and
     * their random contents. */
    int (*arrays)(const ss_cli_shape *s, ss_cli_array *a);
    void (*init)(ss_cli_problem *p, ss_rng *rng);
    const char *dims; /* shape letters printed, e.g. "VND"; NULL: by layout */
    /* default sizes of bench and demo (N = 0: the contrastive defaults) */
    ss_cli_shape bench_shape, demo_shape;
} ss_cli_loss;

extern const ss_cli_loss ss_cli_losses[];
extern const int ss_cli_nlosses;
/* The descriptor named name, or NULL. */
const ss_cli_loss *ss_cli_loss_find(const char *name);
/* "ntxent, supcon, ..." (static string). */
const char *ss_cli_loss_names(void);

/* Random inputs for loss at shape s drawn from seed, zeroed gradients, no
 * cache yet. Every byte is touched, so that it is resident before the memory
 * window opens. NULL when out of memory. */
ss_cli_problem *ss_cli_problem_create(const ss_cli_loss *loss,
                                      const ss_cli_shape *s, uint64_t seed);
void ss_cli_problem_free(ss_cli_problem *p);
/* Bytes of the inputs and gradients ss_cli_problem_create would allocate. */
double ss_cli_problem_bytes(const ss_cli_loss *loss, const ss_cli_shape *s);
/* Allocates the loss's cache. 0, or -1 when out of memory. */
int ss_cli_problem_alloc_cache(ss_cli_problem *p);
size_t ss_cli_problem_cache_bytes(const ss_cli_problem *p);
/* Runs forward / backward once. */
ss_status ss_cli_problem_forward(ss_cli_problem *p);
ss_status ss_cli_problem_backward(ss_cli_problem *p);
float ss_cli_problem_loss(const ss_cli_problem *p);
/* Writes the inputs, raw little-endian, in layout order. 0 or -1 (errno). */
int ss_cli_problem_save(const ss_cli_problem *p, const char *path);

/* ---- measurement (measure.c) -------------------------------------------- */

double ss_cli_now(void); /* monotonic seconds */

/* Peak extra memory: begin resets the kernel's VmHWM (write "5" to
 * /proc/self/clear_refs) and reads VmRSS; end reads VmHWM. */
typedef struct {
    int ok;           /* 0 when /proc is missing or the reset failed */
    int64_t base_kib; /* VmRSS at begin */
} ss_cli_mem;
void ss_cli_mem_begin(ss_cli_mem *m);
/* Fixes glibc's mmap threshold (see measure.c) and trims the heap; begin
 * calls it too. Call it before allocating what is to be measured. */
void ss_cli_mem_prepare(void);
/* Bytes above the begin RSS at the peak, or -1 when unknown. */
int64_t ss_cli_mem_end(const ss_cli_mem *m);

/* Figures of one implementation at one size. Times in seconds. */
typedef struct {
    double fwd_median, bwd_median, total_median, total_min;
    int64_t extra_bytes; /* peak memory beyond inputs and gradients; -1 unknown */
    double loss;         /* value of the last forward */
} ss_cli_figures;

typedef enum {
    SS_CLI_TORCH_OFF = 0,     /* not asked for */
    SS_CLI_TORCH_AUTO = -1,   /* run it when python3 can import torch */
    SS_CLI_TORCH_ON = 1,      /* required: failure is an error */
} ss_cli_torch_mode;

typedef struct {
    int64_t threads, reps, warmup;
    int64_t seed; /* >= 0 */
    int torch;    /* an ss_cli_torch_mode */
} ss_cli_run_cfg;

/* The options every timing command takes: --threads --reps --warmup --seed
 * --torch --no-torch, bound to cfg (which holds the defaults). Writes them
 * to opts (room for SS_CLI_RUN_NOPTS) and returns how many. */
#define SS_CLI_RUN_NOPTS 6
int ss_cli_run_opts(ss_cli_opt *opts, ss_cli_run_cfg *cfg);
/* --n --d --k (and --views when with_views), bound to s. */
#define SS_CLI_SHAPE_NOPTS 4
int ss_cli_shape_opts(ss_cli_opt *opts, ss_cli_shape *s, int with_views);
/* The shape a loss runs at: its bench (demo when demo) defaults, with the
 * fields of given that are >= 1 (flags the user passed) taking precedence. */
ss_cli_shape ss_cli_loss_shape(const ss_cli_loss *loss, const ss_cli_shape *given,
                               int demo);
/* Usage error (2) when s does not suit loss (views out of its range). */
int ss_cli_check_shape(const char *cmd, const ss_cli_loss *loss,
                       const ss_cli_shape *s);

typedef enum {
    SS_CLI_TORCH_SKIPPED,     /* off, or too large for the memory (note) */
    SS_CLI_TORCH_UNAVAILABLE, /* no python3, torch or torch_ref.py (note) */
    SS_CLI_TORCH_DONE,        /* figures filled */
    SS_CLI_TORCH_FAILED,      /* ran and failed (note) */
} ss_cli_torch_result;

typedef struct {
    ss_cli_figures ours, torch;
    ss_cli_torch_result torch_result;
    char torch_version[32];
    char note[256]; /* why torch was skipped or failed, else "" */
} ss_cli_comparison;

/* Loss values of selfsup and torch agree within SS_CLI_LOSS_RTOL. float32
 * against float32 with different summation orders: 1e-4 is typical. */
#define SS_CLI_LOSS_RTOL 1e-3
double ss_cli_loss_rel_diff(const ss_cli_comparison *c);
/* Shape as "V=2 N=4096 D=128" / "N=256 K=65536 D=128" into buf. */
const char *ss_cli_fmt_shape(char *buf, size_t n, const ss_cli_loss *loss,
                             const ss_cli_shape *s);

/* Times loss at shape s with selfsup and (per cfg.torch) with
 * bench/torch_ref.py on the same inputs. Returns 0, or 1 after printing the
 * library's message (ss_last_error) or a required torch run's failure. */
int ss_cli_compare(const char *cmd, const ss_cli_loss *loss,
                   const ss_cli_shape *s, const ss_cli_run_cfg *cfg,
                   ss_cli_comparison *out);

/* Measured FMA peak of one Zen 3 core of the reference machine, GFLOP/s
 * (perf_anchors.md section 4.2); bench --peak overrides it. */
#define SS_CLI_PEAK_GFLOPS_PER_CORE 100.0

/* " OPENBLAS_CORETYPE=SkylakeX" when that variable is set (cli/main.c sets
 * it and re-executes when OpenBLAS picked generic kernels; the PyTorch
 * subprocess inherits it), else "". */
const char *ss_cli_coretype_note(void);
/* "12.3 MiB", "1.06 GiB", "n/a" into buf. */
const char *ss_cli_fmt_bytes(char *buf, size_t n, int64_t bytes);
/* "812 ms", "2.71 s", "95.1 us" into buf. */
const char *ss_cli_fmt_time(char *buf, size_t n, double seconds);

#endif
