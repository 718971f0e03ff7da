/* bench.c - `selfsup bench <loss>`: time one loss, forward and backward, and
 * set it beside its PyTorch reference (bench/torch_ref.py). */
#include "cli.h"

#include <string.h>

#define BENCH_NOPTS (SS_CLI_SHAPE_NOPTS + SS_CLI_RUN_NOPTS + 1)

static void usage(FILE *f, const ss_cli_opt *opts, int nopts) {
    fprintf(f,
            "usage: selfsup bench <loss> [options]\n"
            "\n"
            "Times forward + backward of one loss on random inputs (median and min\n"
            "over the reps, after the warmup), its GFLOP/s under a FLOP model, the\n"
            "peak memory beyond inputs and gradients, and the same for the PyTorch\n"
            "formula of the reference library (bench/torch_ref.py) on the same inputs.\n"
            "\n"
            "losses: %s\n"
            "\n"
            "options:\n",
            ss_cli_loss_names());
    ss_cli_print_opts(f, opts, nopts);
    fprintf(f, "\nper-loss default sizes, accepted views, and the PyTorch reference:\n");
    for (int i = 0; i < ss_cli_nlosses; i++) {
        const ss_cli_loss *l = &ss_cli_losses[i];
        ss_cli_shape none = {0, 0, 0, 0}, s = ss_cli_loss_shape(l, &none, 0);
        char buf[64], views[32] = "views -";
        if (!l->dims || strchr(l->dims, 'V'))
            snprintf(views, sizeof views, "views %lld..%lld", (long long)l->min_views,
                     (long long)l->max_views);
        fprintf(f, "  %-11s %-24s %-12s %s\n", l->name,
                ss_cli_fmt_shape(buf, sizeof buf, l, &s), views, l->reference);
    }
    fprintf(f,
            "\n"
            "environment: SELFSUP_PYTHON (default /usr/bin/python3), SELFSUP_TORCH_REF\n"
            "(default <source>/bench/torch_ref.py).\n");
}

/* "12.3x" of a / b, or "" when either is unknown. */
static const char *ratio(char *buf, size_t n, double a, double b) {
    if (a > 0 && b > 0)
        snprintf(buf, n, "%.1fx", a / b);
    else
        buf[0] = '\0';
    return buf;
}

/* One line of the table: label, selfsup, and when torch ran, torch and
 * torch / selfsup. */
static void line(int torch, const char *label, const char *ours,
                 const char *theirs, const char *r) {
    if (torch && *r)
        printf("  %-20s %12s %12s %14s\n", label, ours, theirs, r);
    else if (torch)
        printf("  %-20s %12s %12s\n", label, ours, theirs);
    else
        printf("  %-20s %12s\n", label, ours);
}

static void line_time(int torch, const char *label, double ours, double theirs) {
    char a[32], b[32], r[32];
    line(torch, label, ss_cli_fmt_time(a, sizeof a, ours),
         ss_cli_fmt_time(b, sizeof b, theirs), ratio(r, sizeof r, theirs, ours));
}

static void report(const ss_cli_loss *loss, const ss_cli_shape *s,
                   const ss_cli_run_cfg *cfg, double peak_per_core,
                   const ss_cli_comparison *c) {
    int torch = c->torch_result == SS_CLI_TORCH_DONE;
    char buf[64], a[32], b[32], r[48];
    double gflop = loss->macs ? 2.0 * loss->macs(s) * 1e-9 : 0.0;
    int64_t cores = cfg->threads < ss_cli_ncpu() ? cfg->threads : ss_cli_ncpu();
    double peak = peak_per_core * (double)cores;

    printf("selfsup bench %s  %s  threads=%lld reps=%lld warmup=%lld seed=%lld\n",
           loss->name, ss_cli_fmt_shape(buf, sizeof buf, loss, s),
           (long long)cfg->threads, (long long)cfg->reps, (long long)cfg->warmup,
           (long long)cfg->seed);
    printf("selfsup %s (%s%s)\n", ss_version(), ss_build_info(), ss_cli_coretype_note());
    if (torch)
        printf("torch %s: %s\n", c->torch_version, loss->reference);
    else if (c->note[0])
        printf("torch: %s: %s\n",
               c->torch_result == SS_CLI_TORCH_FAILED ? "failed" : "not run", c->note);
    if (loss->macs)
        printf("FLOP model: %s = %.3g GFLOP\n", loss->flop_model, gflop);
    else
        printf("FLOP model: none (elementwise, Sinkhorn or SVD work: no GFLOP/s)\n");
    if (loss->macs)
        printf("peak: %.0f GFLOP/s per core x %lld cores (--peak)\n", peak_per_core,
               (long long)cores);
    printf("\n");

    line(torch, "", "selfsup", "torch", "torch/selfsup");
    line_time(torch, "forward (median)", c->ours.fwd_median, c->torch.fwd_median);
    line_time(torch, "backward (median)", c->ours.bwd_median, c->torch.bwd_median);
    line_time(torch, "fwd+bwd (median)", c->ours.total_median, c->torch.total_median);
    line_time(torch, "fwd+bwd (min)", c->ours.total_min, c->torch.total_min);

    if (loss->macs) {
        double ours_gfs = gflop / c->ours.total_median;
        double torch_gfs = torch ? gflop / c->torch.total_median : 0;
        snprintf(a, sizeof a, "%.1f", ours_gfs);
        snprintf(b, sizeof b, "%.1f", torch_gfs);
        line(torch, "GFLOP/s (median)", a, b, "");
        snprintf(a, sizeof a, "%.1f %%", 100.0 * ours_gfs / peak);
        snprintf(b, sizeof b, "%.1f %%", 100.0 * torch_gfs / peak);
        snprintf(buf, sizeof buf, "%% of peak (%.0f)", peak);
        line(torch, buf, a, b, "");
    }

    /* memory ratio with selfsup counted as at least one page */
    double mine = c->ours.extra_bytes > 4096 ? (double)c->ours.extra_bytes : 4096.0;
    line(torch, "peak extra memory", ss_cli_fmt_bytes(a, sizeof a, c->ours.extra_bytes),
         ss_cli_fmt_bytes(b, sizeof b, c->torch.extra_bytes),
         c->ours.extra_bytes >= 0 ? ratio(r, sizeof r, (double)c->torch.extra_bytes, mine)
                                  : "");

    snprintf(a, sizeof a, "%.7g", c->ours.loss);
    snprintf(b, sizeof b, "%.7g", c->torch.loss);
    double rd = torch ? ss_cli_loss_rel_diff(c) : 0;
    snprintf(r, sizeof r, "rel diff %.1e%s", rd,
             rd > SS_CLI_LOSS_RTOL ? " MISMATCH" : "");
    line(torch, "loss value", a, b, r);
}

int ss_cli_bench(int argc, char **argv) {
    ss_cli_shape given = {-1, -1, -1, -1}; /* < 0: the loss's default */
    ss_cli_run_cfg cfg = {ss_cli_ncpu(), 5, 1, 0, SS_CLI_TORCH_AUTO};
    double peak = SS_CLI_PEAK_GFLOPS_PER_CORE;
    ss_cli_opt opts[BENCH_NOPTS];
    int n = ss_cli_shape_opts(opts, &given, 1);
    n += ss_cli_run_opts(opts + n, &cfg);
    opts[n++] = (ss_cli_opt){"--peak", "GF", SS_CLI_REAL, &peak, 1e-3, 1e6, 0,
                             "peak GFLOP/s of one core, for the % of peak"};
    const char *name;
    int rc = ss_cli_parse("bench", argc, argv, opts, n, &name, 1);
    if (rc < 0) {
        usage(stdout, opts, n);
        return 0;
    }
    if (rc) return rc;
    if (!name)
        return ss_cli_usage_error("bench: which loss? one of: %s", ss_cli_loss_names());
    const ss_cli_loss *loss = ss_cli_loss_find(name);
    if (!loss)
        return ss_cli_usage_error("bench: unknown loss '%s'; one of: %s", name,
                                  ss_cli_loss_names());
    ss_cli_shape s = ss_cli_loss_shape(loss, &given, 0);
    if ((rc = ss_cli_check_shape("bench", loss, &s))) return rc;

    ss_cli_comparison c;
    if ((rc = ss_cli_compare("bench", loss, &s, &cfg, &c))) return rc;
    report(loss, &s, &cfg, peak, &c);
    return 0;
}
