/* args.c - option parsing shared by the subcommands: "--flag value" or
 * "--flag=value", ranges checked, usage errors name the flag and value. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const ss_cli_opt *find_opt(const ss_cli_opt *opts, int nopts,
                                  const char *name, size_t len) {
    for (int i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

/* Whole-string integer; rejects "", "12x", overflow. */
static int parse_int(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_real(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int set_value(const char *cmd, const ss_cli_opt *o, const char *arg) {
    if (o->kind == SS_CLI_INT) {
        int64_t v;
        if (parse_int(arg, &v))
            return ss_cli_usage_error("%s: %s: expected an integer, got '%s'",
                                      cmd, o->name, arg);
        if ((double)v < o->lo || (double)v > o->hi)
            return ss_cli_usage_error("%s: %s: must be in [%.0f, %.0f], got %s",
                                      cmd, o->name, o->lo, o->hi, arg);
        *(int64_t *)o->value = v;
    } else {
        double v;
        if (parse_real(arg, &v))
            return ss_cli_usage_error("%s: %s: expected a finite number, got '%s'",
                                      cmd, o->name, arg);
        if (v < o->lo || v > o->hi)
            return ss_cli_usage_error("%s: %s: must be in [%g, %g], got %s", cmd,
                                      o->name, o->lo, o->hi, arg);
        *(double *)o->value = v;
    }
    return 0;
}

static int wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int ss_cli_parse(const char *cmd, int argc, char **argv, const ss_cli_opt *opts,
                 int nopts, const char **pos, int npos) {
    if (wants_help(argc, argv)) return -1;
    int npos_seen = 0;
    for (int i = 0; i < npos; i++) pos[i] = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (npos_seen == npos)
                return ss_cli_usage_error("%s: unexpected argument '%s'", cmd, a);
            pos[npos_seen++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const ss_cli_opt *o = find_opt(opts, nopts, a, len);
        if (!o)
            return ss_cli_usage_error("%s: unknown option '%.*s' (see --help)",
                                      cmd, (int)len, a);
        if (o->kind == SS_CLI_SWITCH) {
            if (eq)
                return ss_cli_usage_error("%s: %s takes no value, got '%s'",
                                          cmd, o->name, eq + 1);
            *(int *)o->value = o->switch_value;
            continue;
        }
        const char *arg = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!arg)
            return ss_cli_usage_error("%s: %s needs a value %s", cmd, o->name,
                                      o->metavar);
        if (set_value(cmd, o, arg)) return 2;
    }
    return 0;
}

void ss_cli_print_opts(FILE *f, const ss_cli_opt *opts, int nopts) {
    for (int i = 0; i < nopts; i++) {
        const ss_cli_opt *o = &opts[i];
        char flag[64];
        snprintf(flag, sizeof flag, "%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-16s %s", flag, o->help);
        if (o->kind == SS_CLI_INT && *(int64_t *)o->value < 0)
            fprintf(f, " (default: per loss, see below)");
        else if (o->kind == SS_CLI_INT)
            fprintf(f, " (default %lld)", (long long)*(int64_t *)o->value);
        else if (o->kind == SS_CLI_REAL)
            fprintf(f, " (default %g)", *(double *)o->value);
        fputc('\n', f);
    }
}

int64_t ss_cli_ncpu(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int64_t)n : 1;
}

int ss_cli_run_opts(ss_cli_opt *o, ss_cli_run_cfg *cfg) {
    const ss_cli_opt opts[SS_CLI_RUN_NOPTS] = {
        {"--threads", "T", SS_CLI_INT, &cfg->threads, 1, 1024, 0,
         "threads of selfsup and torch: online CPUs"},
        {"--reps", "R", SS_CLI_INT, &cfg->reps, 1, 1e6, 0,
         "timed repetitions of forward + backward"},
        {"--warmup", "W", SS_CLI_INT, &cfg->warmup, 0, 1e6, 0,
         "untimed repetitions before them"},
        {"--seed", "S", SS_CLI_INT, &cfg->seed, 0, 9.2e18, 0,
         "seed of the random inputs"},
        {"--torch", NULL, SS_CLI_SWITCH, &cfg->torch, 0, 0, SS_CLI_TORCH_ON,
         "time torch too, or fail (default: when python3 imports torch)"},
        {"--no-torch", NULL, SS_CLI_SWITCH, &cfg->torch, 0, 0, SS_CLI_TORCH_OFF,
         "time selfsup only"},
    };
    memcpy(o, opts, sizeof opts);
    return SS_CLI_RUN_NOPTS;
}

int ss_cli_shape_opts(ss_cli_opt *o, ss_cli_shape *s, int with_views) {
    const ss_cli_opt opts[SS_CLI_SHAPE_NOPTS] = {
        {"--n", "N", SS_CLI_INT, &s->N, 1, 1 << 30, 0,
         "batch size (samples per view); mlm/fused_ce tokens; ibot/mae images"},
        {"--d", "D", SS_CLI_INT, &s->D, 1, 1 << 20, 0,
         "embedding dimension; fused_ce hidden; ibot tokens; mae image side"},
        {"--k", "K", SS_CLI_INT, &s->K, 1, 1 << 30, 0,
         "moco queue; dino/ibot/swav/msn prototypes; mlm/fused_ce vocabulary"},
        {"--views", "V", SS_CLI_INT, &s->V, 1, 64, 0,
         "views (see the list below for each loss's range)"},
    };
    int n = with_views ? SS_CLI_SHAPE_NOPTS : SS_CLI_SHAPE_NOPTS - 1;
    memcpy(o, opts, (size_t)n * sizeof *o);
    return n;
}
