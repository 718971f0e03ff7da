/* train.c - `selfsup train`: pretrain the encoder without labels, then show
 * what it learned (trainer.h). `selfsup eval CHECKPOINT` is in eval.c.
 * Under `mpirun -np K` (K > 1) the run is data-parallel over MPI when the
 * command was built with MPI (SS_HAVE_MPI); a plain run never touches MPI. */
#include "cli.h"
#include "trainer.h"

#include <stdlib.h>
#include <string.h>
#ifdef SS_HAVE_MPI
#include "selfsup_mpi.h"
#endif

/* String-valued options are taken out of argv before ss_cli_parse (which
 * knows numbers and switches only). Returns 0, or 2 after a usage error. */
int ss_cli_take_strings(const char *cmd, int *argc, char **argv,
                        const char *const *names, const char **vals, int n) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        int hit = -1;
        size_t len = 0;
        for (int k = 0; k < n && hit < 0; k++) {
            len = strlen(names[k]);
            if (!strncmp(a, names[k], len) && (a[len] == 0 || a[len] == '='))
                hit = k;
        }
        if (hit < 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (a[len] == '=')
            vals[hit] = a + len + 1;
        else if (i + 1 < *argc)
            vals[hit] = argv[++i];
        else
            return ss_cli_usage_error("%s: %s needs a value", cmd, names[hit]);
    }
    *argc = out;
    return 0;
}

static void usage(FILE *f, const ss_cli_opt *o, int n, const char *method,
                  const char *opt, const char *out) {
    fprintf(f,
            "usage: selfsup train [options]\n"
            "\n"
            "Pretrains a small CNN encoder on unlabeled images (Fashion-MNIST by\n"
            "default), then compares it with the same encoder at random init and\n"
            "with raw pixels: linear probe, kNN (k=200), embedding health.\n"
            "Data-parallel: mpirun -np K selfsup train ... (--batch is the global\n"
            "batch, sliced over the ranks; rank 0 writes --out).\n"
            "\n"
            "  --method M       %s (default %s)\n"
            "  --optimizer O    adamw, sgd or lars (default %s)\n"
            "  --data DIR       IDX dataset folder (default %s)\n"
            "  --out DIR        checkpoint.bin, metrics.csv, report.png (default %s)\n",
            sst_method_names(), method, opt, SST_FMNIST_DIR, out);
    ss_cli_print_opts(f, o, n);
}

static const char *OPT_NAMES[3] = {"adamw", "sgd", "lars"};

/* A positive integer from the environment, or 0. */
static int env_count(const char *name) {
    const char *v = getenv(name);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n < (1L << 24) ? (int)n : 0;
}

/* Ranks of the mpirun that launched us (Open MPI, or MPICH / Intel MPI
 * through PMI), 1 when not launched by mpirun. */
static int launch_ranks(void) {
    int n = env_count("OMPI_COMM_WORLD_SIZE");
    if (!n) n = env_count("PMI_SIZE");
    return n > 1 ? n : 1;
}

/* Default threads: the online CPUs, shared by the ranks on this node. */
static int64_t default_threads(int ranks) {
    int local = env_count("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = env_count("MPI_LOCALNRANKS");
    if (!local) local = ranks;
    int64_t t = ss_cli_ncpu() / local;
    return t > 0 ? t : 1;
}

static int report(ss_status st, const ss_comm *comm) {
    if (!st) return 0;
    if (comm && comm->size > 1)
        fprintf(stderr, "selfsup train (rank %d): %s\n", comm->rank,
                ss_last_error());
    else
        fprintf(stderr, "selfsup train: %s\n", ss_last_error());
    return 1;
}

/* The run itself: one process, or data-parallel over MPI_COMM_WORLD. */
static int run(const sst_train_cfg *c, sst_run_opts *ro, int ranks) {
    if (ranks == 1) {
        int rc = report(sst_train_run(c, ro), NULL);
        sst_report_cleanup();
        return rc;
    }
#ifdef SS_HAVE_MPI
    MPI_Init(NULL, NULL);
    ss_mpi_comm *mc = NULL;
    ss_status st = ss_mpi_comm_create(&mc, MPI_COMM_WORLD);
    int rc = 1;
    if (st) {
        fprintf(stderr, "selfsup train: cannot set up the MPI communicator "
                "(%s)\n", ss_status_name(st));
    } else {
        ro->comm = ss_mpi_comm_get(mc);
        rc = report(sst_train_run(c, ro), ro->comm);
    }
    sst_report_cleanup();
    ss_mpi_comm_free(mc);
    MPI_Finalize();
    return rc;
#else
    (void)c, (void)ro;
    fprintf(stderr, "selfsup train: launched by mpirun with %d ranks, but "
            "this selfsup was built without MPI, so every rank would train "
            "alone; rebuild with MPI (apt-get install libopenmpi-dev, then "
            "cmake) or run it without mpirun\n", ranks);
    return 1;
#endif
}

int ss_cli_train(int argc, char **argv) {
    const char *cmd = "train";
    const char *names[4] = {"--method", "--optimizer", "--data", "--out"};
    const char *sv[4] = {NULL, NULL, NULL, NULL};
    char **av = malloc((size_t)(argc + 1) * sizeof *av);
    if (!av) return 1;
    memcpy(av, argv, (size_t)argc * sizeof *av);
    int ac = argc;
    if (ss_cli_take_strings(cmd, &ac, av, names, sv, 4)) {
        free(av);
        return 2;
    }
    const char *method = sv[0] ? sv[0] : "simclr";
    int mid = sst_method_find(method);
    if (mid < 0) {
        free(av);
        return ss_cli_usage_error("%s: unknown method '%s' (one of %s)", cmd,
                                  method, sst_method_names());
    }
    sst_train_cfg c = sst_train_defaults((sst_method_id)mid);
    char outdef[64];
    snprintf(outdef, sizeof outdef, "runs/%s", method);
    int ranks = launch_ranks();
    int64_t threads = default_threads(ranks), eval_tr = 0, eval_te = 0;
    int resume = 0, quiet = 0, no_eval = 0;
    const ss_cli_opt o[] = {
        {"--epochs", "E", SS_CLI_INT, &c.epochs, 1, 1e6, 0, "passes over the data"},
        {"--batch", "B", SS_CLI_INT, &c.batch, 2, 1 << 16, 0, "images per step"},
        {"--lr", "LR", SS_CLI_REAL, &c.lr, 1e-9, 1e3, 0,
         "peak learning rate at batch 256 (scaled by B / 256)"},
        {"--wd", "WD", SS_CLI_REAL, &c.wd, 0, 10, 0, "weight decay"},
        {"--warmup", "E", SS_CLI_INT, &c.warmup_epochs, 0, 1e6, 0,
         "warm-up epochs before the cosine decay"},
        {"--temperature", "T", SS_CLI_REAL, &c.temperature, 1e-4, 100, 0,
         "NT-Xent temperature (simclr, combo)"},
        {"--recon-weight", "W", SS_CLI_REAL, &c.recon_weight, 0, 1e6, 0,
         "weight of the reconstruction term (combo)"},
        {"--proj-hidden", "H", SS_CLI_INT, &c.proj_hidden, 1, 1 << 16, 0,
         "projector hidden width"},
        {"--proj-out", "Z", SS_CLI_INT, &c.proj_out, 1, 1 << 16, 0,
         "projector output width"},
        {"--threads", "T", SS_CLI_INT, &threads, 1, 1024, 0,
         "threads per process: online CPUs / ranks on the node"},
        {"--seed", "S", SS_CLI_INT, &c.seed, 0, 9.2e18, 0,
         "seed of init, shuffling, augmentations"},
        {"--subset", "N", SS_CLI_INT, &c.subset, 0, 1e9, 0,
         "pretrain on the first N images (0: all)"},
        {"--eval-train", "N", SS_CLI_INT, &eval_tr, 0, 1e9, 0,
         "training images for probe / kNN (0: all)"},
        {"--eval-test", "N", SS_CLI_INT, &eval_te, 0, 1e9, 0,
         "test images evaluated (0: all)"},
        {"--resume", NULL, SS_CLI_SWITCH, &resume, 0, 0, 1,
         "continue from OUT/checkpoint.bin (its settings win)"},
        {"--no-eval", NULL, SS_CLI_SWITCH, &no_eval, 0, 0, 1,
         "skip the evaluation at the end"},
        {"--quiet", NULL, SS_CLI_SWITCH, &quiet, 0, 0, 1, "no progress bar"},
    };
    int no = (int)(sizeof o / sizeof *o);
    int r = ss_cli_parse(cmd, ac, av, o, no, NULL, 0);
    free(av);
    if (r == -1) {
        usage(stdout, o, no, method, OPT_NAMES[c.optimizer], outdef);
        return 0;
    }
    if (r) return 2;
    if (sv[1]) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(sv[1], OPT_NAMES[i])) k = i;
        if (k < 0)
            return ss_cli_usage_error("%s: --optimizer: expected adamw, sgd or "
                                      "lars, got '%s'", cmd, sv[1]);
        c.optimizer = k;
    }
    if (ss_set_num_threads((int)threads)) {
        fprintf(stderr, "selfsup train: %s\n", ss_last_error());
        return 1;
    }
    sst_run_opts ro = {sv[2], sv[3] ? sv[3] : outdef, resume, !quiet, eval_tr,
                       eval_te, !no_eval, NULL};
    return run(&c, &ro, ranks);
}
