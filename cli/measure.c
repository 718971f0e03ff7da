/* measure.c - wall time, peak extra memory, number formatting. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

double ss_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* glibc raises its mmap threshold after each free of a large block, after
 * which freed workspaces stay in the heap and a later run reuses them
 * without new page faults: its peak would hide under the previous run's.
 * A fixed threshold keeps large blocks mmapped and returned on free. */
void ss_cli_mem_prepare(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    malloc_trim(0);
#endif
}

/* The "<field>:  1234 kB" line of /proc/self/status, in KiB; -1 if absent. */
static int64_t status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int64_t kib = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && line[len] == ':') {
            kib = strtoll(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

void ss_cli_mem_begin(ss_cli_mem *m) {
    ss_cli_mem_prepare();
    m->ok = 0;
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    /* "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0) */
    int wrote = fputs("5", f) >= 0;
    if (fclose(f) != 0 || !wrote) return;
    m->base_kib = status_kib("VmRSS");
    m->ok = m->base_kib >= 0;
}

int64_t ss_cli_mem_end(const ss_cli_mem *m) {
    if (!m->ok) return -1;
    int64_t peak = status_kib("VmHWM");
    if (peak < 0) return -1;
    return peak > m->base_kib ? (peak - m->base_kib) * 1024 : 0;
}

const char *ss_cli_fmt_bytes(char *buf, size_t n, int64_t bytes) {
    double b = (double)bytes;
    if (bytes < 0)
        snprintf(buf, n, "n/a");
    else if (b < 1024.0 * 1024.0)
        snprintf(buf, n, "%.0f KiB", b / 1024.0);
    else if (b < 1024.0 * 1024.0 * 1024.0)
        snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024.0));
    else
        snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

const char *ss_cli_fmt_time(char *buf, size_t n, double s) {
    static const char *unit[] = {"s", "ms", "us"};
    int u = 0;
    while (u < 2 && s < 1.0) {
        s *= 1e3;
        u++;
    }
    /* three significant digits */
    snprintf(buf, n, s >= 100 ? "%.0f %s" : s >= 10 ? "%.1f %s" : "%.2f %s", s,
             unit[u]);
    return buf;
}

const char *ss_cli_coretype_note(void) {
    static char buf[96];
    const char *core = getenv("OPENBLAS_CORETYPE");
    if (!core || !*core) return "";
    snprintf(buf, sizeof buf, " OPENBLAS_CORETYPE=%.60s", core);
    return buf;
}
