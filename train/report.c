/* report.c - metrics CSV and the cairo-drawn PNG report, written atomically. */
#include "report.h"

#include "eval.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef SST_HAVE_CAIRO
#include <cairo.h>
#endif
#ifdef SST_HAVE_FONTCONFIG
#include <fontconfig/fontconfig.h>
#endif

/* ---- atomic files ----------------------------------------------------------- */

ss_status sst_write_file_atomic(const char *path, const void *data, size_t n) {
    const char *fn = "sst_write_file_atomic";
    SS_TRY(ss__check_ptr(fn, "path", path));
    if (n) SS_TRY(ss__check_ptr(fn, "data", data));
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* same folder: rename stays atomic */
    if (fd < 0) {
        ss_status st = ss__fail(SS_ERR_IO, fn, "cannot create a temp file for "
                                "'%s': %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = n;
    int err = 0;
    while (left > 0) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            err = errno ? errno : EIO;
            break;
        }
        p += k;
        left -= (size_t)k;
    }
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return ss__fail(SS_ERR_IO, fn, "cannot write '%s': %s", path,
                        strerror(err));
    }
    free(tmp);
    return SS_OK;
}

/* ---- CSV ----------------------------------------------------------------------- */

struct sst_csv {
    char *path;
    char **cols;
    int ncol;
    double *vals; /* (rows, ncol) */
    int64_t rows, cap;
};

void sst_csv_free(sst_csv *c) {
    if (!c) return;
    for (int i = 0; c->cols && i < c->ncol; i++) free(c->cols[i]);
    free(c->cols);
    free(c->path);
    free(c->vals);
    free(c);
}

ss_status sst_csv_create(sst_csv **out, const char *path,
                         const char *const *columns, int ncol) {
    const char *fn = "sst_csv_create";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "path", path));
    SS_TRY(ss__check_ptr(fn, "columns", columns));
    if (ncol < 1)
        return ss__fail(SS_ERR_SIZE, fn, "ncol must be >= 1, got %d", ncol);
    for (int i = 0; i < ncol; i++) {
        if (!columns[i])
            return ss__fail(SS_ERR_NULL, fn, "columns[%d] must not be NULL", i);
        if (strpbrk(columns[i], ",\"\n\r"))
            return ss__fail(SS_ERR_PARAM, fn, "columns[%d] = '%s' has a comma, "
                            "quote or newline", i, columns[i]);
    }
    sst_csv *c = calloc(1, sizeof *c);
    if (!c) return ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    c->ncol = ncol;
    c->path = strdup(path);
    c->cols = calloc((size_t)ncol, sizeof *c->cols);
    int ok = c->path && c->cols;
    for (int i = 0; ok && i < ncol; i++) ok = (c->cols[i] = strdup(columns[i])) != NULL;
    if (!ok) {
        sst_csv_free(c);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    }
    *out = c;
    return SS_OK;
}

ss_status sst_csv_row(sst_csv *c, const double *values) {
    const char *fn = "sst_csv_row";
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "values", values));
    if (c->rows == c->cap) {
        int64_t ncap = c->cap ? 2 * c->cap : 64;
        double *nv = realloc(c->vals, (size_t)(ncap * c->ncol) * sizeof *nv);
        if (!nv) return ss__fail(SS_ERR_NOMEM, fn, "cannot grow to %lld rows",
                                 (long long)ncap);
        c->vals = nv;
        c->cap = ncap;
    }
    memcpy(c->vals + c->rows * c->ncol, values, (size_t)c->ncol * sizeof *values);
    c->rows++;
    return SS_OK;
}

int64_t sst_csv_rows(const sst_csv *c) { return c ? c->rows : 0; }

ss_status sst_csv_flush(sst_csv *c) {
    const char *fn = "sst_csv_flush";
    SS_TRY(ss__check_ptr(fn, "c", c));
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    for (int j = 0; j < c->ncol; j++)
        fprintf(m, "%s%c", c->cols[j], j + 1 < c->ncol ? ',' : '\n');
    for (int64_t i = 0; i < c->rows; i++)
        for (int j = 0; j < c->ncol; j++) {
            double v = c->vals[i * c->ncol + j];
            if (isnan(v)) fputs("nan", m);
            else fprintf(m, "%.9g", v);
            fputc(j + 1 < c->ncol ? ',' : '\n', m);
        }
    if (fclose(m) != 0 || !buf) {
        free(buf);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    }
    ss_status st = sst_write_file_atomic(c->path, buf, len);
    free(buf);
    return st;
}

/* ---- PNG ----------------------------------------------------------------------- */

static ss_status report_check(const char *fn, const char *path,
                              const sst_report *r) {
    SS_TRY(ss__check_ptr(fn, "path", path));
    SS_TRY(ss__check_ptr(fn, "r", r));
    if (r->n_loss < 0)
        return ss__fail(SS_ERR_SIZE, fn, "n_loss must be >= 0, got %lld",
                        (long long)r->n_loss);
    if (r->n_loss > 0) {
        SS_TRY(ss__check_ptr(fn, "r->loss", r->loss));
        SS_TRY(ss__check_finite(fn, "loss", r->loss, r->n_loss));
    }
    if (r->n_bars < 0 || r->n_bars > SST_REPORT_MAX_BARS)
        return ss__fail(SS_ERR_SIZE, fn, "n_bars must be in 0..%d, got %d",
                        SST_REPORT_MAX_BARS, r->n_bars);
    if (r->n_bars > 0) {
        SS_TRY(ss__check_ptr(fn, "r->bar_names", r->bar_names));
        SS_TRY(ss__check_ptr(fn, "r->bar_acc", r->bar_acc));
    }
    if (r->emb) {
        SS_TRY(ss__check_ptr(fn, "r->labels", r->labels));
        SS_TRY(ss__check_size(fn, "n_emb", r->n_emb, 2));
        SS_TRY(ss__check_size(fn, "D", r->D, 1));
        if (r->n_classes < 1 || r->n_classes > 20)
            return ss__fail(SS_ERR_SIZE, fn, "n_classes must be in 1..20, got "
                            "%d", r->n_classes);
        for (int64_t i = 0; i < r->n_emb; i++)
            if (r->labels[i] >= r->n_classes)
                return ss__fail(SS_ERR_LABEL, fn, "labels[%lld] = %d, want < "
                                "%d", (long long)i, r->labels[i], r->n_classes);
    }
    return SS_OK;
}

void sst_report_cleanup(void) {
#ifdef SST_HAVE_CAIRO
    cairo_debug_reset_static_data();
#endif
#ifdef SST_HAVE_FONTCONFIG
    FcFini(); /* the cache cairo's toy font API loaded through fontconfig */
#endif
}

int sst_report_available(void) {
#ifdef SST_HAVE_CAIRO
    return 1;
#else
    return 0;
#endif
}

#ifdef SST_HAVE_CAIRO

#define PNG_W 1500
#define PNG_H 520
#define PANEL_W 500
#define SCATTER_MAX 5000
#define PAD_L 62.0
#define PAD_R 18.0
#define PAD_T 70.0
#define PAD_B 58.0

/* matplotlib's tab20 first half order, then the rest: distinct classes. */
static const double palette[20][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17},
    {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
    {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}, {0.74, 0.74, 0.13},
    {0.09, 0.75, 0.81}, {0.68, 0.78, 0.91}, {1.00, 0.73, 0.47},
    {0.60, 0.87, 0.54}, {1.00, 0.60, 0.59}, {0.77, 0.69, 0.84},
    {0.77, 0.61, 0.58}, {0.97, 0.71, 0.82}, {0.78, 0.78, 0.78},
    {0.86, 0.86, 0.55}, {0.62, 0.85, 0.90}};

typedef struct {
    double x0, y0, x1, y1; /* plot area in pixels */
    double lo, hi;         /* y data range */
    double xlo, xhi;       /* x data range */
} frame;

static double fx(const frame *f, double v) {
    return f->x0 + (v - f->xlo) / (f->xhi - f->xlo) * (f->x1 - f->x0);
}
static double fy(const frame *f, double v) {
    return f->y1 - (v - f->lo) / (f->hi - f->lo) * (f->y1 - f->y0);
}

static void text_at(cairo_t *cr, double x, double y, const char *s,
                    double align, double size) {
    cairo_text_extents_t e;
    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.width - e.x_bearing, y);
    cairo_show_text(cr, s);
}

static void panel_title(cairo_t *cr, int panel, const char *s) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, panel * PANEL_W + PANEL_W / 2.0, 50, s, 0.5, 15);
}

static frame panel_frame(int panel) {
    frame f = {panel * PANEL_W + PAD_L, PAD_T, (panel + 1) * PANEL_W - PAD_R,
               PNG_H - PAD_B, 0, 1, 0, 1};
    return f;
}

static void axes(cairo_t *cr, const frame *f, int yticks, const char *yfmt,
                 double yscale) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    cairo_stroke(cr);
    for (int t = 0; t <= yticks; t++) {
        double v = f->lo + (f->hi - f->lo) * t / yticks;
        double y = fy(f, v);
        char b[32];
        snprintf(b, sizeof b, yfmt, v * yscale);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, f->x0, y);
        cairo_line_to(cr, f->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, f->x0 - 6, y + 4, b, 1.0, 11);
    }
}

static void draw_loss(cairo_t *cr, const sst_report *r) {
    panel_title(cr, 0, "training loss");
    frame f = panel_frame(0);
    if (r->n_loss == 0) {
        axes(cr, &f, 1, "%.0f", 1);
        text_at(cr, (f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no loss recorded",
                0.5, 13);
        return;
    }
    double lo = r->loss[0], hi = r->loss[0];
    for (int64_t i = 1; i < r->n_loss; i++) {
        lo = r->loss[i] < lo ? r->loss[i] : lo;
        hi = r->loss[i] > hi ? r->loss[i] : hi;
    }
    double pad = hi > lo ? 0.05 * (hi - lo) : 0.5;
    f.lo = lo - pad;
    f.hi = hi + pad;
    f.xlo = 0;
    f.xhi = r->n_loss > 1 ? (double)(r->n_loss - 1) : 1;
    axes(cr, &f, 5, "%.3g", 1);
    for (int t = 0; t <= 4; t++) { /* x ticks */
        double v = floor(f.xhi * t / 4 + 0.5);
        char b[32];
        snprintf(b, sizeof b, "%.0f", v);
        text_at(cr, fx(&f, v), f.y1 + 16, b, 0.5, 11);
    }
    text_at(cr, (f.x0 + f.x1) / 2, f.y1 + 38,
            r->loss_xlabel ? r->loss_xlabel : "step", 0.5, 12);
    cairo_set_source_rgb(cr, palette[0][0], palette[0][1], palette[0][2]);
    cairo_set_line_width(cr, 1.6);
    for (int64_t i = 0; i < r->n_loss; i++) {
        double x = fx(&f, (double)i), y = fy(&f, r->loss[i]);
        if (i == 0) cairo_move_to(cr, x, y);
        else cairo_line_to(cr, x, y);
    }
    if (r->n_loss == 1) cairo_arc(cr, fx(&f, 0), fy(&f, r->loss[0]), 3, 0, 7);
    cairo_stroke(cr);
}

static void draw_bars(cairo_t *cr, const sst_report *r) {
    panel_title(cr, 1, r->bar_acc2 ? "test accuracy: linear probe and kNN"
                                   : "linear-probe test accuracy");
    frame f = panel_frame(1);
    axes(cr, &f, 5, "%.0f%%", 100);
    int nser = r->bar_acc2 ? 2 : 1;
    double slot = (f.x1 - f.x0) / (r->n_bars > 0 ? r->n_bars : 1);
    double bw = slot * 0.7 / nser;
    bw = bw < 90 ? bw : 90; /* a lone bar stays a bar */
    for (int b = 0; b < r->n_bars; b++) {
        double cx = f.x0 + slot * (b + 0.5);
        for (int s = 0; s < nser; s++) {
            double v = s == 0 ? r->bar_acc[b] : r->bar_acc2[b];
            v = v < 0 ? 0 : (v > 1 ? 1 : v);
            double x = cx - nser * bw / 2 + s * bw;
            cairo_set_source_rgb(cr, palette[s][0], palette[s][1],
                                 palette[s][2]);
            cairo_rectangle(cr, x, fy(&f, v), bw - 2, f.y1 - fy(&f, v));
            cairo_fill(cr);
            char t[32];
            snprintf(t, sizeof t, "%.1f%%", 100 * v);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, x + bw / 2 - 1, fy(&f, v) - 4, t, 0.5, 10);
        }
        text_at(cr, cx, f.y1 + 16, r->bar_names[b] ? r->bar_names[b] : "?",
                0.5, 12);
    }
    if (nser == 2) {
        const char *names[2] = {"linear probe", "kNN"};
        for (int s = 0; s < 2; s++) {
            double x = f.x0 + 10 + 110 * s, y = f.y0 - 6;
            cairo_set_source_rgb(cr, palette[s][0], palette[s][1],
                                 palette[s][2]);
            cairo_rectangle(cr, x, y - 9, 10, 10);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, x + 14, y, names[s], 0, 11);
        }
    }
}

static ss_status draw_scatter(cairo_t *cr, const sst_report *r) {
    const char *fn = "sst_report_png";
    panel_title(cr, 2, "PCA of test embeddings");
    frame f = panel_frame(2);
    f.x1 -= 110; /* room for the legend */
    if (!r->emb) {
        axes(cr, &f, 1, "%.0f", 1);
        text_at(cr, (f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no embeddings",
                0.5, 13);
        return SS_OK;
    }
    int64_t stride = (r->n_emb + SCATTER_MAX - 1) / SCATTER_MAX;
    int64_t m = (r->n_emb + stride - 1) / stride;
    float *sub = ss__malloc((size_t)(m * r->D) * sizeof(float));
    float *pc = ss__malloc((size_t)(m * 2) * sizeof(float));
    if (!sub || !pc) {
        ss__free(sub);
        ss__free(pc);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the scatter");
    }
    for (int64_t i = 0; i < m; i++)
        memcpy(sub + i * r->D, r->emb + i * stride * r->D,
               (size_t)r->D * sizeof(float));
    ss_status st = m >= 2 ? sst_pca2(pc, sub, m, r->D) : SS_OK;
    if (st == SS_OK) {
        double xlo = pc[0], xhi = pc[0], ylo = pc[1], yhi = pc[1];
        for (int64_t i = 1; i < m; i++) {
            xlo = pc[2 * i] < xlo ? pc[2 * i] : xlo;
            xhi = pc[2 * i] > xhi ? pc[2 * i] : xhi;
            ylo = pc[2 * i + 1] < ylo ? pc[2 * i + 1] : ylo;
            yhi = pc[2 * i + 1] > yhi ? pc[2 * i + 1] : yhi;
        }
        double px = xhi > xlo ? 0.04 * (xhi - xlo) : 1;
        double py = yhi > ylo ? 0.04 * (yhi - ylo) : 1;
        f.xlo = xlo - px;
        f.xhi = xhi + px;
        f.lo = ylo - py;
        f.hi = yhi + py;
        axes(cr, &f, 4, "%.2g", 1);
        text_at(cr, (f.x0 + f.x1) / 2, f.y1 + 20, "PC 1", 0.5, 12);
        text_at(cr, f.x0 + 4, f.y0 + 14, "PC 2", 0, 12);
        for (int64_t i = 0; i < m; i++) {
            const double *c = palette[r->labels[i * stride]];
            cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.7);
            cairo_arc(cr, fx(&f, pc[2 * i]), fy(&f, pc[2 * i + 1]), 1.8, 0,
                      6.2832);
            cairo_fill(cr);
        }
        for (int k = 0; k < r->n_classes; k++) { /* legend */
            double x = f.x1 + 10, y = f.y0 + 8 + 18 * k;
            char b[16];
            const char *name = r->class_names ? r->class_names[k] : NULL;
            if (!name) {
                snprintf(b, sizeof b, "%d", k);
                name = b;
            }
            cairo_set_source_rgb(cr, palette[k][0], palette[k][1],
                                 palette[k][2]);
            cairo_arc(cr, x + 4, y - 4, 4, 0, 6.2832);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, x + 12, y, name, 0, 11);
        }
    }
    ss__free(sub);
    ss__free(pc);
    return st;
}

typedef struct {
    unsigned char *buf;
    size_t len, cap;
} membuf;

static cairo_status_t png_write(void *closure, const unsigned char *data,
                                unsigned int n) {
    membuf *m = closure;
    if (m->len + n > m->cap) {
        size_t ncap = m->cap ? 2 * m->cap : 65536;
        while (ncap < m->len + n) ncap *= 2;
        unsigned char *nb = realloc(m->buf, ncap);
        if (!nb) return CAIRO_STATUS_NO_MEMORY;
        m->buf = nb;
        m->cap = ncap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
    return CAIRO_STATUS_SUCCESS;
}

ss_status sst_report_png(const char *path, const sst_report *r) {
    const char *fn = "sst_report_png";
    SS_TRY(report_check(fn, path, r));
    if (r->emb) SS_TRY(ss__check_finite(fn, "emb", r->emb, r->n_emb * r->D));
    cairo_surface_t *s =
        cairo_image_surface_create(CAIRO_FORMAT_ARGB32, PNG_W, PNG_H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, PNG_W / 2.0, 28, r->title ? r->title : "selfsup report", 0.5,
            18);
    draw_loss(cr, r);
    draw_bars(cr, r);
    ss_status st = draw_scatter(cr, r);
    membuf m = {NULL, 0, 0};
    if (st == SS_OK) {
        cairo_surface_flush(s);
        cairo_status_t cs = cairo_status(cr);
        if (cs == CAIRO_STATUS_SUCCESS)
            cs = cairo_surface_write_to_png_stream(s, png_write, &m);
        if (cs != CAIRO_STATUS_SUCCESS)
            st = ss__fail(SS_ERR_IO, fn, "cairo failed drawing '%s': %s", path,
                          cairo_status_to_string(cs));
    }
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    if (st == SS_OK) st = sst_write_file_atomic(path, m.buf, m.len);
    free(m.buf);
    return st;
}

#else /* no cairo */

ss_status sst_report_png(const char *path, const sst_report *r) {
    const char *fn = "sst_report_png";
    SS_TRY(report_check(fn, path, r));
    return ss__fail(SS_ERR_UNSUPPORTED, fn, "this build has no cairo, so no "
                    "PNG report for '%s' (install libcairo2-dev and rebuild)",
                    path);
}

#endif
