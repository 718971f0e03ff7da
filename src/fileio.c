/* fileio.c - atomic versioned writes and offset-aware reads (fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ss_status write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return SS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return SS_OK;
}

ss_status ss__write_atomic(const char *fn, const char *path,
                           const char magic[8], uint32_t version,
                           const void *const *bufs, const size_t *lens,
                           int n) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a path");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ss_status st = ss__fail(SS_ERR_IO, fn, "cannot create %s: %s", tmp,
                                strerror(errno));
        free(tmp);
        return st;
    }
    uint32_t head[2] = {version, 0};
    ss_status st = write_all(fd, magic, 8);
    if (st == SS_OK) st = write_all(fd, head, sizeof head);
    for (int i = 0; st == SS_OK && i < n; i++) st = write_all(fd, bufs[i], lens[i]);
    int err = errno;
    if (st == SS_OK && fsync(fd) != 0) st = SS_ERR_IO, err = errno;
    if (close(fd) != 0 && st == SS_OK) st = SS_ERR_IO, err = errno;
    /* rename is atomic: readers see the old file or the new one */
    if (st == SS_OK && rename(tmp, path) != 0) st = SS_ERR_IO, err = errno;
    if (st != SS_OK) {
        unlink(tmp);
        st = ss__fail(SS_ERR_IO, fn, "cannot write %s: %s", path, strerror(err));
    }
    free(tmp);
    return st;
}

ss_status ss__reader_open(ss__reader *r, const char *fn, const char *path,
                          const char magic[8], uint32_t version) {
    r->fn = fn;
    r->path = path;
    r->off = 0;
    r->f = fopen(path, "rb");
    if (!r->f)
        return ss__fail(SS_ERR_IO, fn, "cannot open %s: %s", path,
                        strerror(errno));
    char got[8];
    uint32_t head[2];
    ss_status st = ss__read(r, got, 8, "magic");
    if (st == SS_OK && memcmp(got, magic, 8) != 0)
        st = ss__fail(SS_ERR_FORMAT, fn,
                      "%s: bad magic at byte offset 0 (want \"%.8s\")", path,
                      magic);
    if (st == SS_OK) st = ss__read(r, head, sizeof head, "version");
    if (st == SS_OK && head[0] != version)
        st = ss__fail(SS_ERR_FORMAT, fn,
                      "%s: unsupported version %u at byte offset 8 (want %u)",
                      path, head[0], version);
    if (st != SS_OK) ss__reader_close(r);
    return st;
}

ss_status ss__read(ss__reader *r, void *dst, size_t n, const char *what) {
    size_t got = fread(dst, 1, n, r->f);
    if (got != n)
        return ss__fail(SS_ERR_FORMAT, r->fn,
                        "%s: truncated reading %s at byte offset %ld", r->path,
                        what, r->off + (long)got);
    r->off += (long)n;
    return SS_OK;
}

ss_status ss__read_i64(ss__reader *r, int64_t *v, int64_t lo, int64_t hi,
                       const char *what) {
    long at = r->off;
    SS_TRY(ss__read(r, v, sizeof *v, what));
    if (*v < lo || *v > hi)
        return ss__fail(SS_ERR_FORMAT, r->fn,
                        "%s: %s = %lld at byte offset %ld is outside [%lld, %lld]",
                        r->path, what, (long long)*v, at, (long long)lo,
                        (long long)hi);
    return SS_OK;
}

ss_status ss__read_finite(ss__reader *r, void *dst, int64_t n, size_t elt,
                          const char *what) {
    long at = r->off;
    size_t want = elt * (size_t)n, got = fread(dst, 1, want, r->f);
    int64_t whole = (int64_t)(got / elt);
    for (int64_t i = 0; i < whole; i++) {
        double x = elt == 4 ? ((float *)dst)[i] : ((double *)dst)[i];
        if (!isfinite(x))
            return ss__fail(SS_ERR_FORMAT, r->fn,
                            "%s: %s[%lld] = %g at byte offset %ld is not finite",
                            r->path, what, (long long)i, x,
                            at + (long)elt * (long)i);
    }
    if (got != want)
        return ss__fail(SS_ERR_FORMAT, r->fn,
                        "%s: truncated reading %s at byte offset %ld", r->path,
                        what, at + (long)elt * (long)whole);
    r->off += (long)want;
    return SS_OK;
}

ss_status ss__reader_expect_eof(ss__reader *r) {
    if (fgetc(r->f) == EOF) return SS_OK;
    return ss__fail(SS_ERR_FORMAT, r->fn,
                    "%s: unexpected bytes after the payload at byte offset %ld "
                    "(trailing data or a wrong size field)",
                    r->path, r->off);
}

void ss__reader_close(ss__reader *r) {
    if (r->f) fclose(r->f);
    r->f = NULL;
}
