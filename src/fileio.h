/*
 * fileio.h - versioned state files: atomic writes and offset-aware reads.
 *
 * Every state file (queue, loss centres, running covariances, checkpoints)
 * starts with an 8-byte magic and a u32 version, u32 reserved (0), then a
 * payload in native little-endian order. Writes go to a temp file in the
 * same folder, then rename(2), so a crash leaves the old file or the new
 * one, never half of one. Reads report the byte offset of what was wrong.
 */
#ifndef SS_FILEIO_H
#define SS_FILEIO_H

#include "internal.h"

#include <stdio.h>

/* Writes magic, version, then the n buffers bufs[i] of lens[i] bytes to
 * path atomically. fn names the public caller in error messages.
 * Errors: SS_ERR_IO naming the path and the system error. */
ss_status ss__write_atomic(const char *fn, const char *path,
                           const char magic[8], uint32_t version,
                           const void *const *bufs, const size_t *lens, int n);

typedef struct {
    FILE *f;
    const char *fn, *path;
    long off; /* bytes consumed so far */
} ss__reader;

/* Opens path and checks magic and version.
 * Errors: SS_ERR_IO (missing / unreadable), SS_ERR_FORMAT (bad magic at
 * byte offset 0, unsupported version at byte offset 8, truncated header). */
ss_status ss__reader_open(ss__reader *r, const char *fn, const char *path,
                          const char magic[8], uint32_t version);
/* Reads n bytes; SS_ERR_FORMAT "truncated reading <what> at byte offset X". */
ss_status ss__read(ss__reader *r, void *dst, size_t n, const char *what);
/* A value that must lie in [lo, hi]; else SS_ERR_FORMAT naming it, its value
 * and its byte offset. */
ss_status ss__read_i64(ss__reader *r, int64_t *v, int64_t lo, int64_t hi,
                       const char *what);
/* Reads n values of elt bytes (4: float, 8: double) that must be finite.
 * SS_ERR_FORMAT "<what>[i] = v at byte offset X is not finite", or
 * "truncated reading <what>" at the offset of the first incomplete value. */
ss_status ss__read_finite(ss__reader *r, void *dst, int64_t n, size_t elt,
                          const char *what);
/* SS_ERR_FORMAT when bytes remain after the payload. */
ss_status ss__reader_expect_eof(ss__reader *r);
void ss__reader_close(ss__reader *r);

#endif
