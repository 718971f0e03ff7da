/* demo.c - `selfsup demo`: every loss on random data, one table of selfsup
 * against its PyTorch reference (time, speedup, peak extra memory). */
#include "cli.h"

#include <string.h>

#define DEMO_NOPTS (SS_CLI_SHAPE_NOPTS + SS_CLI_RUN_NOPTS + 1)

static void usage(FILE *f, const ss_cli_opt *opts, int nopts) {
    fprintf(f,
            "usage: selfsup demo [options]\n"
            "\n"
            "Runs every loss forward + backward on random data at a per-loss size and\n"
            "prints one table: median time of selfsup and of the PyTorch formula of\n"
            "the reference library (bench/torch_ref.py) on the same inputs, the\n"
            "speedup, the peak memory beyond inputs and gradients of each, and the\n"
            "relative difference of the two loss values.\n"
            "\n"
            "losses: %s\n"
            "\n"
            "options:\n",
            ss_cli_loss_names());
    ss_cli_print_opts(f, opts, nopts);
}

typedef struct {
    const char *cells[8];
} row;

static const char *const header[8] = {"loss",   "shape",       "selfsup",   "torch",
                                      "speedup", "selfsup mem", "torch mem", "loss rel diff"};
static const int width[8] = {-11, -24, 9, 9, 8, 11, 11, 13}; /* < 0: left-aligned */

static void print_row(const char *const *cells, int markdown) {
    for (int i = 0; i < 8; i++) {
        if (markdown)
            printf("| %s ", cells[i]);
        else
            printf("%s%*s", i ? "  " : "", width[i], cells[i]);
    }
    printf(markdown ? "|\n" : "\n");
}

static void print_header(int markdown) {
    print_row(header, markdown);
    if (!markdown) return;
    for (int i = 0; i < 8; i++) printf("|%s", width[i] < 0 ? "---" : "---:");
    printf("|\n");
}

/* The table row of one comparison; buf holds the cell texts. */
static void fill_row(const char **cells, char (*buf)[32], const ss_cli_loss *loss,
                     const ss_cli_shape *s, const ss_cli_comparison *c) {
    int torch = c->torch_result == SS_CLI_TORCH_DONE;
    cells[0] = loss->name;
    cells[1] = ss_cli_fmt_shape(buf[1], 32, loss, s);
    cells[2] = ss_cli_fmt_time(buf[2], 32, c->ours.total_median);
    cells[5] = ss_cli_fmt_bytes(buf[5], 32, c->ours.extra_bytes);
    if (!torch) {
        cells[3] = cells[4] = cells[6] = cells[7] = "-";
        return;
    }
    cells[3] = ss_cli_fmt_time(buf[3], 32, c->torch.total_median);
    snprintf(buf[4], 32, "%.1fx", c->torch.total_median / c->ours.total_median);
    cells[4] = buf[4];
    cells[6] = ss_cli_fmt_bytes(buf[6], 32, c->torch.extra_bytes);
    double rd = ss_cli_loss_rel_diff(c);
    snprintf(buf[7], 32, "%.1e%s", rd, rd > SS_CLI_LOSS_RTOL ? " MISMATCH" : "");
    cells[7] = buf[7];
}

int ss_cli_demo(int argc, char **argv) {
    /* Per-loss moderate sizes (ss_cli_loss.demo_shape): the whole demo,
     * PyTorch included, takes one to two minutes on the 2-core reference
     * machine. --n/--d/--k override them for every loss. */
    ss_cli_shape given = {-1, -1, -1, -1}; /* < 0: each loss's demo size */
    ss_cli_run_cfg cfg = {ss_cli_ncpu(), 3, 1, 0, SS_CLI_TORCH_AUTO};
    int markdown = 0;
    ss_cli_opt opts[DEMO_NOPTS];
    int n = ss_cli_shape_opts(opts, &given, 0);
    n += ss_cli_run_opts(opts + n, &cfg);
    opts[n++] = (ss_cli_opt){"--markdown", NULL, SS_CLI_SWITCH, &markdown, 0, 0, 1,
                             "print the table as markdown (docs/BENCHMARKS.md)"};
    int rc = ss_cli_parse("demo", argc, argv, opts, n, NULL, 0);
    if (rc < 0) {
        usage(stdout, opts, n);
        return 0;
    }
    if (rc) return rc;

    printf("selfsup %s (%s%s), %lld threads, median of %lld reps after %lld warmup\n",
           ss_version(), ss_build_info(), ss_cli_coretype_note(), (long long)cfg.threads,
           (long long)cfg.reps,
           (long long)cfg.warmup);
    printf("time: forward + backward; mem: peak beyond inputs and gradients\n\n");
    print_header(markdown);
    int compared = 0, mismatched = 0;
    for (int i = 0; i < ss_cli_nlosses; i++) {
        const ss_cli_loss *loss = &ss_cli_losses[i];
        ss_cli_shape s = ss_cli_loss_shape(loss, &given, 1);
        ss_cli_comparison c;
        if ((rc = ss_cli_compare("demo", loss, &s, &cfg, &c))) return rc;
        const char *cells[8];
        char buf[8][32];
        fill_row(cells, buf, loss, &s, &c);
        if (c.torch_result == SS_CLI_TORCH_DONE) {
            compared++;
            mismatched += ss_cli_loss_rel_diff(&c) > SS_CLI_LOSS_RTOL;
        }
        print_row(cells, markdown);
        fflush(stdout);
        if (c.torch_result != SS_CLI_TORCH_DONE && c.note[0])
            fprintf(stderr, "selfsup: demo: %s: torch: %s\n", loss->name, c.note);
        /* no torch: don't pay python's start-up for each remaining loss */
        if (c.torch_result == SS_CLI_TORCH_UNAVAILABLE) cfg.torch = SS_CLI_TORCH_OFF;
    }
    if (compared)
        printf("\n%d of %d loss values agree with PyTorch within %.0e%s\n",
               compared - mismatched, compared, SS_CLI_LOSS_RTOL,
               mismatched ? " (MISMATCH: a formula differs)" : "");
    printf("\nreferences (bench/torch_ref.py):\n");
    for (int i = 0; i < ss_cli_nlosses; i++)
        printf("  %-11s %s\n", ss_cli_losses[i].name, ss_cli_losses[i].reference);
    return 0;
}
