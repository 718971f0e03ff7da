/* main.c - the selfsup command: dispatch to subcommands. */
#include "cli.h"
#include "engine.h"
#include "selfsup.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: selfsup <command> [options]\n"
            "\n"
            "commands:\n"
            "  demo      run every loss on random data and print the benchmark table\n"
            "  bench     time one loss: selfsup bench <loss> --n N --d D [...]\n"
            "  train     pretrain an encoder without labels, show what it learned\n"
            "  eval      evaluate a training checkpoint: selfsup eval CHECKPOINT\n"
            "  version   print the library version and build features\n"
            "\n"
            "`selfsup <command> --help` describes a command's options.\n");
}

int ss_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    fputs("selfsup: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int main(int argc, char **argv) {
    sst_blas_reexec(argv); /* fast OpenBLAS kernels in VMs that mask the CPU */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        const char *core = getenv("OPENBLAS_CORETYPE");
        printf("selfsup %s (%s%s%s)\n", ss_version(), ss_build_info(),
               core ? " OPENBLAS_CORETYPE=" : "", core ? core : "");
        return 0;
    }
    if (!strcmp(cmd, "bench")) return ss_cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return ss_cli_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return ss_cli_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return ss_cli_eval(argc - 1, argv + 1);
    ss_cli_usage_error("unknown command '%s'", cmd);
    usage(stderr);
    return 2;
}
