/*
 * report.h - metrics CSV and the PNG report of a training run (internal to
 * `selfsup train`). Both files are written atomically: a temp file in the
 * same folder, then rename(2), so a reader sees the old file or the new one.
 */
#ifndef SST_REPORT_H
#define SST_REPORT_H

#include "selfsup.h"

#include <stdint.h>

/* ---- CSV metrics ------------------------------------------------------------
 * Rows of numbers under a fixed header, kept in memory; every flush rewrites
 * the whole file atomically (runs have at most thousands of rows). Values
 * print with %.9g; NaN prints as "nan".
 */
typedef struct sst_csv sst_csv;

/* *out: a writer for path with ncol column names (copied).
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (ncol < 1), SS_ERR_PARAM (a name with a
 * comma, quote or newline), SS_ERR_NOMEM. Nothing is written yet. */
ss_status sst_csv_create(sst_csv **out, const char *path,
                         const char *const *columns, int ncol);
/* Appends one row of ncol values (copied). Errors: SS_ERR_NULL, SS_ERR_NOMEM. */
ss_status sst_csv_row(sst_csv *c, const double *values);
/* Writes header and all rows to the path atomically. Errors: SS_ERR_NULL,
 * SS_ERR_IO naming the path and the system error. */
ss_status sst_csv_flush(sst_csv *c);
/* Rows appended so far. */
int64_t sst_csv_rows(const sst_csv *c);
void sst_csv_free(sst_csv *c); /* NULL is a no-op; does not flush */

/* Writes n bytes to path atomically (temp + fsync + rename).
 * Errors: SS_ERR_NULL, SS_ERR_IO naming the path and the system error. */
ss_status sst_write_file_atomic(const char *path, const void *data, size_t n);

/* ---- PNG report -------------------------------------------------------------
 * Three panels drawn with cairo: the loss curve, probe-accuracy bars of the
 * encoders compared (pretrained / random init / raw pixels), and a 2-D PCA
 * scatter of test embeddings coloured by class with a legend.
 */
#define SST_REPORT_MAX_BARS 8
typedef struct {
    const char *title;     /* top line, e.g. "selfsup train: simclr" */
    const float *loss;     /* (n_loss) training loss per step or epoch */
    int64_t n_loss;
    const char *loss_xlabel; /* e.g. "step" (NULL: "step") */
    int n_bars;            /* 0..SST_REPORT_MAX_BARS */
    const char *const *bar_names; /* (n_bars) */
    const double *bar_acc; /* (n_bars) probe accuracy in [0, 1] */
    const double *bar_acc2; /* (n_bars) second series (kNN) or NULL */
    const float *emb;      /* (n_emb, D) test embeddings, or NULL: no scatter */
    const uint8_t *labels; /* (n_emb) classes < n_classes */
    int64_t n_emb, D;
    int n_classes;         /* 1..20 */
    const char *const *class_names; /* (n_classes) or NULL: "0", "1", ... */
} sst_report;

/* Draws r to a 1500 x 520 PNG at path, atomically. The scatter shows at
 * most 5000 points (a fixed stride over the rows).
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_LABEL, SS_ERR_NONFINITE (loss or
 * embeddings), SS_ERR_IO, SS_ERR_NOMEM, and SS_ERR_UNSUPPORTED when the
 * build lacks cairo (the message says so; nothing is written). */
ss_status sst_report_png(const char *path, const sst_report *r);

/* Frees the global caches of cairo and fontconfig
 * (cairo_debug_reset_static_data, FcFini) for a leak-free exit under
 * LeakSanitizer. Call only when no report is being drawn on any thread,
 * e.g. at the end of the program; a later report reloads them. */
void sst_report_cleanup(void);

/* 1 when this build can draw PNG reports (cairo found). */
int sst_report_available(void);

#endif
