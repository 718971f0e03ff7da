/* eval.c - `selfsup eval CHECKPOINT`: the three-encoder table on the test
 * set (pretrained, random init, raw pixels) and the PNG report. */
#include "checkpoint.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int ss_cli_take_strings(const char *cmd, int *argc, char **argv,
                        const char *const *names, const char **vals, int n);

int ss_cli_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *names[2] = {"--data", "--report"};
    const char *sv[2] = {NULL, NULL};
    char **av = malloc((size_t)(argc + 1) * sizeof *av);
    if (!av) return 1;
    memcpy(av, argv, (size_t)argc * sizeof *av);
    int ac = argc;
    if (ss_cli_take_strings(cmd, &ac, av, names, sv, 2)) {
        free(av);
        return 2;
    }
    int64_t threads = ss_cli_ncpu(), ntr = 0, nte = 0;
    const ss_cli_opt o[] = {
        {"--threads", "T", SS_CLI_INT, &threads, 1, 1024, 0, "threads: online CPUs"},
        {"--eval-train", "N", SS_CLI_INT, &ntr, 0, 1e9, 0,
         "training images for probe / kNN (0: all)"},
        {"--eval-test", "N", SS_CLI_INT, &nte, 0, 1e9, 0,
         "test images evaluated (0: all)"},
    };
    const char *pos[1];
    int r = ss_cli_parse(cmd, ac, av, o, 3, pos, 1);
    free(av);
    if (r == -1) {
        printf("usage: selfsup eval CHECKPOINT [options]\n\n"
               "Compares the checkpoint's encoder with the same encoder at random\n"
               "init and with raw pixels on the test set.\n\n"
               "  --data DIR       IDX dataset folder (default %s)\n"
               "  --report PATH    PNG report (default: next to the checkpoint)\n",
               SST_FMNIST_DIR);
        ss_cli_print_opts(stdout, o, 3);
        return 0;
    }
    if (r) return 2;
    if (!pos[0]) return ss_cli_usage_error("%s: missing CHECKPOINT (see --help)", cmd);
    ss_set_num_threads((int)threads);
    char png[1200];
    if (sv[1])
        snprintf(png, sizeof png, "%s", sv[1]);
    else {
        snprintf(png, sizeof png, "%s", pos[0]);
        char *s = strrchr(png, '/');
        snprintf(s ? s + 1 : png, sizeof png - (size_t)(s ? s + 1 - png : 0),
                 "eval_report.png");
    }
    sst_model m;
    sst_train_cfg cfg;
    ss_status st = sst_checkpoint_load_model(&m, &cfg, pos[0]);
    if (!st) {
        st = sst_evaluate(&m, &cfg, sv[0], ntr, nte, NULL, 0, png, stdout, NULL);
        sst_model_free(&m);
    }
    sst_report_cleanup();
    if (st) {
        fprintf(stderr, "selfsup eval: %s\n", ss_last_error());
        return 1;
    }
    return 0;
}
