/* main.c - the selfsup-test driver (see harness.h). */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SS_MAX_TESTS 1024

typedef struct {
    char group[64];
    const char *name;
    ss_test_fn fn;
} ss_test_entry;

static ss_test_entry tests[SS_MAX_TESTS];
static int ntests;
static int current_failures;
static const char *current_name;
int ss_test_checks;

void ss_test_register(const char *file, const char *name, ss_test_fn fn) {
    if (ntests == SS_MAX_TESTS) {
        fprintf(stderr, "too many tests (raise SS_MAX_TESTS)\n");
        exit(2);
    }
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (strncmp(base, "test_", 5) == 0) base += 5;
    ss_test_entry *e = &tests[ntests++];
    snprintf(e->group, sizeof e->group, "%s", base);
    char *dot = strrchr(e->group, '.');
    if (dot) *dot = 0;
    e->name = name;
    e->fn = fn;
}

void ss_test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  FAIL %s (%s:%d): ", current_name, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    current_failures++;
}

int ss_test_msg_has(const char *s) {
    if (strstr(ss_last_error(), s)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", ss_last_error(), s);
    return 0;
}

static int matches(const ss_test_entry *e, const char *filter) {
    if (!filter) return 1;
    const char *slash = strchr(filter, '/');
    if (!slash) return strcmp(e->group, filter) == 0;
    size_t gl = (size_t)(slash - filter);
    return strlen(e->group) == gl && strncmp(e->group, filter, gl) == 0 &&
           strcmp(e->name, slash + 1) == 0;
}

static int cmp_entry(const void *a, const void *b) {
    const ss_test_entry *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
    const char *filter = NULL;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) filter = argv[++i];
        else if (strcmp(argv[i], "-l") == 0) list = 1;
        else {
            fprintf(stderr, "usage: selfsup-test [-l] [-o group[/name]]\n");
            return 2;
        }
    }
    qsort(tests, (size_t)ntests, sizeof tests[0], cmp_entry);
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (!matches(&tests[i], filter)) continue;
        if (list) {
            printf("%s/%s\n", tests[i].group, tests[i].name);
            continue;
        }
        char full[160];
        snprintf(full, sizeof full, "%s/%s", tests[i].group, tests[i].name);
        current_name = full;
        current_failures = 0;
        int before = ss_test_checks;
        tests[i].fn();
        if (ss_test_checks == before) {
            fprintf(stderr, "  FAIL %s: asserted nothing\n", full);
            current_failures++;
        }
        printf("%s %s\n", current_failures ? "FAIL" : "ok  ", full);
        fflush(stdout);
        if (current_failures) failed++;
        else passed++;
    }
    if (list) return 0;
    if (passed + failed == 0) {
        fprintf(stderr, "no test matches filter '%s'\n", filter ? filter : "");
        return 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
