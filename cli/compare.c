/* compare.c - time one loss with selfsup, then with bench/torch_ref.py in a
 * subprocess on the same inputs, same sizes and thread count. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SS_SOURCE_DIR
#define SS_SOURCE_DIR "."
#endif
#define TORCH_REF_DEFAULT SS_SOURCE_DIR "/bench/torch_ref.py"
#define TORCH_EXIT_NO_TORCH 3 /* torch_ref.py: torch cannot be imported */
#define TORCH_OUT_MAX 65536

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int64_t n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static int lib_error(const char *cmd, const ss_cli_loss *loss) {
    fprintf(stderr, "selfsup: %s: %s: %s\n", cmd, loss->name, ss_last_error());
    return 1;
}

/* Warmup + reps of forward then backward. The memory window spans the timed
 * reps, after the warmup's one-time set-up (thread pools); the cache, made
 * before, is added to it. */
static int time_selfsup(const char *cmd, const ss_cli_loss *loss,
                        ss_cli_problem *p, const ss_cli_run_cfg *cfg,
                        ss_cli_figures *out) {
    int64_t reps = cfg->reps;
    double *t = malloc((size_t)reps * 3 * sizeof *t);
    if (!t || ss_cli_problem_alloc_cache(p)) {
        free(t);
        fprintf(stderr, "selfsup: %s: %s: out of memory\n", cmd, loss->name);
        return 1;
    }
    double *fwd = t, *bwd = t + reps, *tot = t + 2 * reps;
    ss_cli_mem mem = {0, 0};
    int rc = 0;
    for (int64_t r = -cfg->warmup; rc == 0 && r < reps; r++) {
        if (r == 0) ss_cli_mem_begin(&mem);
        double t0 = ss_cli_now();
        if (ss_cli_problem_forward(p) != SS_OK) rc = lib_error(cmd, loss);
        double t1 = ss_cli_now();
        if (!rc && ss_cli_problem_backward(p) != SS_OK) rc = lib_error(cmd, loss);
        double t2 = ss_cli_now();
        if (r >= 0) {
            fwd[r] = t1 - t0;
            bwd[r] = t2 - t1;
            tot[r] = t2 - t0;
        }
    }
    if (!rc) {
        int64_t extra = ss_cli_mem_end(&mem);
        out->extra_bytes = extra < 0 ? -1 : extra + (int64_t)ss_cli_problem_cache_bytes(p);
        out->fwd_median = median(fwd, reps);
        out->bwd_median = median(bwd, reps);
        out->total_median = median(tot, reps);
        out->total_min = tot[0]; /* sorted by median() */
        out->loss = ss_cli_problem_loss(p);
    }
    free(t);
    return rc;
}

/* ---- the PyTorch side ---------------------------------------------------- */

/* The number after "key": in a one-line JSON object: 0, or -1 if absent. */
static int json_number(const char *json, const char *key, double *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    if (!at) return -1;
    char *end;
    *out = strtod(at + strlen(pat), &end);
    return end == at + strlen(pat) ? -1 : 0;
}

/* The string after "key": (no escapes needed: torch_ref.py writes plain
 * ASCII messages), copied into buf. */
static void json_string(const char *json, const char *key, char *buf, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *at = strstr(json, pat);
    if (!at) return;
    at += strlen(pat);
    const char *end = strchr(at, '"');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    snprintf(buf, n, "%.*s", (int)len, at);
}

static const char *python_path(void) {
    const char *env = getenv("SELFSUP_PYTHON");
    if (env && *env) return env;
    /* Debian's python3 has python3-torch; a pyenv/venv python on PATH may not */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static const char *torch_ref_path(void) {
    const char *env = getenv("SELFSUP_TORCH_REF");
    return env && *env ? env : TORCH_REF_DEFAULT;
}

/* Runs argv with stdout captured into buf (NUL-terminated); returns the
 * wait status, or -1 if it could not start. */
static int run_capture(char *const argv[], char *buf, size_t n) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], buf + len, n - 1 - len)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        len += (size_t)got;
        if (len == n - 1) len = 0; /* keep the tail: the JSON line is last */
    }
    buf[len] = '\0';
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return status;
}

static ss_cli_torch_result torch_parse(int status, const char *json,
                                       ss_cli_figures *fig, char *version,
                                       size_t nversion, char *note,
                                       size_t nnote) {
    if (status < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 127)) {
        snprintf(note, nnote, "cannot run %s (set SELFSUP_PYTHON)", python_path());
        return SS_CLI_TORCH_UNAVAILABLE;
    }
    if (WIFSIGNALED(status)) {
        snprintf(note, nnote, "torch_ref.py killed by signal %d%s",
                 WTERMSIG(status), WTERMSIG(status) == 9 ? " (out of memory?)" : "");
        return SS_CLI_TORCH_FAILED;
    }
    if (WEXITSTATUS(status) == TORCH_EXIT_NO_TORCH) {
        snprintf(note, nnote, "%s cannot import torch", python_path());
        return SS_CLI_TORCH_UNAVAILABLE;
    }
    double v[6];
    static const char *keys[] = {"fwd_median_s", "bwd_median_s", "total_median_s",
                                 "total_min_s", "extra_bytes", "loss"};
    int bad = WEXITSTATUS(status) != 0;
    for (int i = 0; !bad && i < 6; i++) bad = json_number(json, keys[i], &v[i]);
    if (bad) {
        snprintf(note, nnote, "torch_ref.py failed (exit %d)", WEXITSTATUS(status));
        json_string(json, "error", note, nnote);
        return SS_CLI_TORCH_FAILED;
    }
    fig->fwd_median = v[0];
    fig->bwd_median = v[1];
    fig->total_median = v[2];
    fig->total_min = v[3];
    fig->extra_bytes = (int64_t)v[4];
    fig->loss = v[5];
    json_string(json, "torch", version, nversion);
    return SS_CLI_TORCH_DONE;
}

static ss_cli_torch_result run_torch(const ss_cli_loss *loss,
                                     const ss_cli_shape *s,
                                     const ss_cli_run_cfg *cfg,
                                     const char *inputs, ss_cli_comparison *out) {
    const char *script = torch_ref_path();
    if (access(script, R_OK)) {
        snprintf(out->note, sizeof out->note,
                 "%s not found (set SELFSUP_TORCH_REF)", script);
        return SS_CLI_TORCH_UNAVAILABLE;
    }
    char num[6][24];
    int64_t vals[6] = {s->V, s->N, s->D, s->K, cfg->threads, cfg->reps};
    for (int i = 0; i < 6; i++) snprintf(num[i], sizeof num[i], "%lld", (long long)vals[i]);
    char warm[24];
    snprintf(warm, sizeof warm, "%lld", (long long)cfg->warmup);
    char *argv[] = {(char *)python_path(), (char *)script, "--loss",
                    (char *)loss->name, "--views", num[0], "--n", num[1], "--d",
                    num[2], "--k", num[3], "--threads", num[4], "--reps", num[5],
                    "--warmup", warm, "--inputs", (char *)inputs, NULL};
    char *buf = malloc(TORCH_OUT_MAX);
    if (!buf) return SS_CLI_TORCH_FAILED;
    int status = run_capture(argv, buf, TORCH_OUT_MAX);
    const char *json = strrchr(buf, '{'); /* the last line, one flat object */
    ss_cli_torch_result r =
        torch_parse(status, json ? json : "", &out->torch, out->torch_version,
                    sizeof out->torch_version, out->note, sizeof out->note);
    free(buf);
    return r;
}

/* MemAvailable of /proc/meminfo in bytes, or -1. */
static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemAvailable:", 13)) kib = strtod(line + 13, NULL);
    fclose(f);
    return kib < 0 ? -1 : kib * 1024.0;
}

/* The PyTorch formulas materialise the similarity matrix several times
 * (measured: 3x for moco, 4x for ntxent and clip, 7x for supcon): refuse
 * to start one that would exhaust the machine's memory, and with it the
 * other processes'. */
static int torch_fits(const ss_cli_loss *loss, const ss_cli_shape *s, char *note,
                      size_t n) {
    double rows = loss->layout == SS_CLI_STACKED ? (double)s->V * (double)s->N
                                                 : (double)s->N;
    double cols = loss->layout == SS_CLI_QUEUE ? (double)s->K + 1 : rows;
    double need = 8.0 * rows * cols * sizeof(float);
    /* the other losses: a few copies of their arrays, and for the pairwise
     * ones (hypersphere's pdist, koleo) an N x N matrix or two */
    if (loss->layout == SS_CLI_ARRAYS)
        need = 4.0 * ss_cli_problem_bytes(loss, s) + 4.0 * (double)s->N * (double)s->N * sizeof(float);
    double avail = mem_available();
    if (avail < 0 || need <= avail) return 1;
    snprintf(note, n, "PyTorch would need about %.3g GiB, "
             "more than the %.3g GiB available", need / (1 << 30), avail / (1 << 30));
    return 0;
}

/* Writes p's inputs to a fresh temporary file; its path into path. */
static int save_inputs(const ss_cli_problem *p, char *path, size_t n) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, n, "%s/selfsup-inputs-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    if (ss_cli_problem_save(p, path) == 0) return 0;
    unlink(path);
    return -1;
}

int ss_cli_compare(const char *cmd, const ss_cli_loss *loss,
                   const ss_cli_shape *s, const ss_cli_run_cfg *cfg,
                   ss_cli_comparison *out) {
    memset(out, 0, sizeof *out);
    out->torch_result = SS_CLI_TORCH_SKIPPED;
    if (ss_set_num_threads((int)cfg->threads) != SS_OK) return lib_error(cmd, loss);
    /* Refuse up front what cannot fit: with overcommit, malloc would succeed
     * and the kernel kill us while touching the pages. */
    double need = ss_cli_problem_bytes(loss, s);
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (ram > 0 && need > ram) {
        fprintf(stderr, "selfsup: %s: %s: inputs and gradients need %.3g GiB, more "
                "than the %.3g GiB of memory\n", cmd, loss->name, need / (1 << 30),
                ram / (1 << 30));
        return 1;
    }
    ss_cli_mem_prepare();
    ss_cli_problem *p = ss_cli_problem_create(loss, s, (uint64_t)cfg->seed);
    if (!p) {
        fprintf(stderr, "selfsup: %s: %s: out of memory for the inputs\n", cmd,
                loss->name);
        return 1;
    }
    int rc = time_selfsup(cmd, loss, p, cfg, &out->ours);
    char path[4096] = "";
    int saved = 0;
    if (!rc && cfg->torch != SS_CLI_TORCH_OFF &&
        torch_fits(loss, s, out->note, sizeof out->note)) {
        saved = save_inputs(p, path, sizeof path) == 0;
        if (!saved)
            snprintf(out->note, sizeof out->note, "cannot write the inputs to %.128s: %s",
                     path, strerror(errno));
    }
    ss_cli_problem_free(p); /* before torch runs: no competition for memory */
    if (saved) {
        out->torch_result = run_torch(loss, s, cfg, path, out);
        unlink(path);
    }
    if (!rc && cfg->torch == SS_CLI_TORCH_ON &&
        out->torch_result != SS_CLI_TORCH_DONE) {
        fprintf(stderr, "selfsup: %s: %s: --torch: %s\n", cmd, loss->name, out->note);
        rc = 1;
    }
    return rc;
}

double ss_cli_loss_rel_diff(const ss_cli_comparison *c) {
    double a = c->ours.loss, b = c->torch.loss;
    double scale = fabs(b) > 1e-12 ? fabs(b) : 1e-12;
    return fabs(a - b) / scale;
}
