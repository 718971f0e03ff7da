/*
 * composite.c - ss_composite: a weighted sum of the library's losses,
 * parsed from a spec string (grammar in include/selfsup.h and
 * docs/COMPOSITE.md). Terms are the table of composite_terms.c.
 */
#include "composite.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const ss__term_kind *kind;
    ss__term_opts opts;
    float weight;
    float value;
    void *cache;
    size_t cache_bytes;
} term;

struct ss_composite {
    term *t;
    int64_t n, cap;
    int forward_ok;
    ss_composite_inputs last; /* sizes of the last successful forward */
};

/* ---- lexer ------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t i;
    const char *fn;
} cursor;

static void skip_ws(cursor *c) {
    while (c->s[c->i] == ' ' || c->s[c->i] == '\t') c->i++;
}
static int is_delim(char ch) {
    return ch == '\0' || strchr(",():= \t", ch) != NULL;
}
/* Length of the token at i for messages: up to a delimiter, at least 1
 * character unless at the end; capped. */
static int tok_len(const char *s, size_t i) {
    size_t j = i;
    while (!is_delim(s[j]) && j - i < 40) j++;
    if (j == i && s[i] != '\0') j++;
    return (int)(j - i);
}
#define TOK(c, at) tok_len((c)->s, at), (c)->s + (at)
#define POS(at) ((long long)(at) + 1)

static int word_len(const char *s, size_t i) {
    size_t j = i;
    if (!isalpha((unsigned char)s[j])) return 0;
    while (isalnum((unsigned char)s[j]) || s[j] == '_') j++;
    return (int)(j - i);
}

/* Scans the number grammar at i; returns its length (0 if none). */
static size_t number_len(const char *s, size_t i) {
    size_t j = i, digits = 0;
    if (s[j] == '+' || s[j] == '-') j++;
    while (isdigit((unsigned char)s[j])) { j++; digits++; }
    if (s[j] == '.') {
        j++;
        while (isdigit((unsigned char)s[j])) { j++; digits++; }
    }
    if (!digits) return 0;
    if (s[j] == 'e' || s[j] == 'E') {
        size_t k = j + 1, ed = 0;
        if (s[k] == '+' || s[k] == '-') k++;
        while (isdigit((unsigned char)s[k])) { k++; ed++; }
        if (!ed) return 0;
        j = k;
    }
    return j - i;
}

/* A complete number token at c->i (followed by a delimiter), finite. */
static int read_number(cursor *c, double *out) {
    size_t n = number_len(c->s, c->i);
    if (!n || !is_delim(c->s[c->i + n])) return 0;
    char buf[64];
    if (n >= sizeof buf) return 0;
    memcpy(buf, c->s + c->i, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v)) return 0;
    *out = v;
    c->i += n;
    return 1;
}

/* ---- terms ------------------------------------------------------------- */

static const ss__term_kind *find_kind(const char *s, int len) {
    for (int k = 0; k < ss__n_term_kinds; k++)
        if ((int)strlen(ss__term_kinds[k].name) == len &&
            !strncmp(ss__term_kinds[k].name, s, (size_t)len))
            return &ss__term_kinds[k];
    return NULL;
}

static void list_names(char *buf, size_t cap, const ss__term_kind *only) {
    size_t used = 0;
    buf[0] = '\0';
    if (only) {
        for (const ss__param *p = only->params; p->key && used < cap; p++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                     used ? ", " : "", p->key);
        if (!only->params[0].key) snprintf(buf, cap, "none");
        return;
    }
    for (int k = 0; k < ss__n_term_kinds && used < cap; k++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                 used ? ", " : "", ss__term_kinds[k].name);
}

static int in_range(const ss__param *p, double v) {
    if (p->lo_open ? !(v > p->lo) : !(v >= p->lo)) return 0;
    if (p->hi_open ? !(v < p->hi) : !(v <= p->hi)) return 0;
    return 1;
}

/* Parses the value at c->i into the parameter p of o. */
static ss_status set_param(cursor *c, const ss__param *p, const char *tname,
                           ss__term_opts *o) {
    size_t at = c->i;
    char *dst = (char *)o + p->off;
    double v = 0.0;
    int ok = 0;
    if (p->type == SS__P_WORD) {
        int len = word_len(c->s, at);
        for (int k = 0; len && p->words[k]; k++)
            if ((int)strlen(p->words[k]) == len &&
                !strncmp(p->words[k], c->s + at, (size_t)len) &&
                is_delim(c->s[at + (size_t)len])) {
                memcpy(dst, &k, sizeof k);
                c->i += (size_t)len;
                return SS_OK;
            }
    } else if (read_number(c, &v)) {
        ok = in_range(p, v);
        if (ok && p->type != SS__P_F32) ok = (v == floor(v));
        if (ok && p->type == SS__P_F32) {
            float f = (float)v;
            ok = isfinite(f);
            if (ok) memcpy(dst, &f, sizeof f);
        } else if (ok && p->type == SS__P_BOOL) {
            int b = (int)v;
            memcpy(dst, &b, sizeof b);
        } else if (ok) {
            int64_t q = (int64_t)v;
            memcpy(dst, &q, sizeof q);
        }
        if (ok) return SS_OK;
    }
    c->i = at;
    return ss__fail(SS_ERR_PARAM, c->fn,
                    "bad value '%.*s' for parameter '%s' of '%s' at position "
                    "%lld: must be %s", TOK(c, at), p->key, tname, POS(at),
                    p->range);
}

/* "(" [ param { "," param } ] ")" after the name; c->i at "(". */
static ss_status parse_params(cursor *c, const ss__term_kind *k,
                              ss__term_opts *o) {
    unsigned seen = 0;
    c->i++; /* "(" */
    skip_ws(c);
    if (c->s[c->i] == ')') { c->i++; return SS_OK; }
    for (;;) {
        skip_ws(c);
        size_t at = c->i;
        int len = word_len(c->s, at);
        if (!len)
            return ss__fail(SS_ERR_PARAM, c->fn, "expected a parameter name "
                            "of '%s' at position %lld, got '%.*s'", k->name,
                            POS(at), TOK(c, at));
        int idx = -1;
        for (int j = 0; k->params[j].key; j++)
            if ((int)strlen(k->params[j].key) == len &&
                !strncmp(k->params[j].key, c->s + at, (size_t)len))
                idx = j;
        if (idx < 0) {
            char names[256];
            list_names(names, sizeof names, k);
            return ss__fail(SS_ERR_PARAM, c->fn, "unknown parameter '%.*s' "
                            "of '%s' at position %lld (known: %s)", len,
                            c->s + at, k->name, POS(at), names);
        }
        if (seen & (1u << idx))
            return ss__fail(SS_ERR_PARAM, c->fn, "duplicate parameter '%s' "
                            "of '%s' at position %lld", k->params[idx].key,
                            k->name, POS(at));
        seen |= 1u << idx;
        c->i += (size_t)len;
        skip_ws(c);
        if (c->s[c->i] != '=')
            return ss__fail(SS_ERR_PARAM, c->fn, "expected '=' after "
                            "parameter '%s' at position %lld, got '%.*s'",
                            k->params[idx].key, POS(c->i), TOK(c, c->i));
        c->i++;
        skip_ws(c);
        SS_TRY(set_param(c, &k->params[idx], k->name, o));
        skip_ws(c);
        if (c->s[c->i] == ')') { c->i++; return SS_OK; }
        if (c->s[c->i] != ',')
            return ss__fail(SS_ERR_PARAM, c->fn, "expected ',' or ')' in the "
                            "parameters of '%s' at position %lld, got '%.*s'",
                            k->name, POS(c->i),
                            c->s[c->i] ? tok_len(c->s, c->i) : 5,
                            c->s[c->i] ? c->s + c->i : "(end)");
        c->i++;
    }
}

/* name [ "(" params ")" ], then ":" weight when want_weight. */
static ss_status parse_term(cursor *c, term *t, int want_weight) {
    skip_ws(c);
    size_t at = c->i;
    if (c->s[at] == '\0' || c->s[at] == ',')
        return ss__fail(SS_ERR_PARAM, c->fn, "empty term at position %lld",
                        POS(at));
    int len = word_len(c->s, at);
    const ss__term_kind *k = len ? find_kind(c->s + at, len) : NULL;
    if (!k) {
        char names[512];
        list_names(names, sizeof names, NULL);
        return ss__fail(SS_ERR_PARAM, c->fn, "unknown loss '%.*s' at position "
                        "%lld (known: %s)", len ? len : tok_len(c->s, at),
                        c->s + at, POS(at), names);
    }
    memset(t, 0, sizeof *t);
    t->kind = k;
    t->value = NAN;
    k->init(&t->opts);
    c->i += (size_t)len;
    skip_ws(c);
    if (c->s[c->i] == '(') SS_TRY(parse_params(c, k, &t->opts));
    if (!want_weight) return SS_OK;
    skip_ws(c);
    if (c->s[c->i] != ':')
        return ss__fail(SS_ERR_PARAM, c->fn, "missing ':weight' after '%s' at "
                        "position %lld, got '%.*s'", k->name, POS(c->i),
                        c->s[c->i] ? tok_len(c->s, c->i) : 5,
                        c->s[c->i] ? c->s + c->i : "(end)");
    c->i++;
    skip_ws(c);
    size_t wat = c->i;
    double w;
    if (!read_number(c, &w) || !(w >= 0.0) || !isfinite((float)w))
        return ss__fail(SS_ERR_PARAM, c->fn, "bad weight '%.*s' of '%s' at "
                        "position %lld: must be a finite number >= 0",
                        c->s[wat] ? tok_len(c->s, wat) : 7,
                        c->s[wat] ? c->s + wat : "missing", k->name, POS(wat));
    t->weight = (float)w;
    return SS_OK;
}

static ss_status push(ss_composite *c, const term *t, const char *fn) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 4;
        term *nt = realloc(c->t, (size_t)cap * sizeof *nt);
        if (!nt) return ss__fail(SS_ERR_NOMEM, fn, "cannot grow the term list");
        c->t = nt;
        c->cap = cap;
    }
    c->t[c->n++] = *t;
    c->forward_ok = 0;
    return SS_OK;
}

/* ---- public: construction ---------------------------------------------- */

ss_status ss_composite_create(ss_composite **out) {
    SS_TRY(ss__check_ptr("ss_composite_create", "out", out));
    ss_composite *c = calloc(1, sizeof *c);
    if (!c) return ss__fail(SS_ERR_NOMEM, "ss_composite_create", "out of memory");
    *out = c;
    return SS_OK;
}

void ss_composite_free(ss_composite *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->n; i++) ss__free(c->t[i].cache);
    free(c->t);
    free(c);
}

ss_status ss_composite_parse(ss_composite **out, const char *spec) {
    const char *fn = "ss_composite_parse";
    SS_TRY(ss__check_ptr(fn, "out", out));
    SS_TRY(ss__check_ptr(fn, "spec", spec));
    cursor cur = {spec, 0, fn};
    skip_ws(&cur);
    if (spec[cur.i] == '\0')
        return ss__fail(SS_ERR_PARAM, fn, "empty spec: expected at least one "
                        "term name(params):weight");
    ss_composite *c;
    SS_TRY(ss_composite_create(&c));
    ss_status st;
    for (;;) {
        term t;
        st = parse_term(&cur, &t, 1);
        if (st == SS_OK) st = push(c, &t, fn);
        if (st != SS_OK) break;
        skip_ws(&cur);
        if (spec[cur.i] == '\0') { *out = c; return SS_OK; }
        if (spec[cur.i] != ',') {
            st = ss__fail(SS_ERR_PARAM, fn, "trailing garbage '%.40s' at "
                          "position %lld (expected ',' or the end)",
                          spec + cur.i, POS(cur.i));
            break;
        }
        cur.i++;
    }
    ss_composite_free(c);
    return st;
}

ss_status ss_composite_add(ss_composite *c, const char *spec, float weight) {
    const char *fn = "ss_composite_add";
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "term", spec));
    if (!(weight >= 0.0f) || !isfinite(weight))
        return ss__fail(SS_ERR_PARAM, fn, "weight must be finite and >= 0, "
                        "got %g", (double)weight);
    cursor cur = {spec, 0, fn};
    term t;
    SS_TRY(parse_term(&cur, &t, 0));
    skip_ws(&cur);
    if (spec[cur.i] != '\0')
        return ss__fail(SS_ERR_PARAM, fn, "trailing garbage '%.40s' at "
                        "position %lld (the weight is an argument here)",
                        spec + cur.i, POS(cur.i));
    t.weight = weight;
    return push(c, &t, fn);
}

/* ---- public: accessors ------------------------------------------------- */

int64_t ss_composite_nterms(const ss_composite *c) { return c ? c->n : 0; }

static const term *term_at(const ss_composite *c, int64_t i) {
    return (c && i >= 0 && i < c->n) ? &c->t[i] : NULL;
}
const char *ss_composite_term_name(const ss_composite *c, int64_t i) {
    const term *t = term_at(c, i);
    return t ? t->kind->name : NULL;
}
float ss_composite_term_weight(const ss_composite *c, int64_t i) {
    const term *t = term_at(c, i);
    return t ? t->weight : NAN;
}
float ss_composite_term_value(const ss_composite *c, int64_t i) {
    const term *t = term_at(c, i);
    return t ? t->value : NAN;
}

/* ---- public: forward / backward ---------------------------------------- */

/* Re-raises the callee's message prefixed with the term. */
static ss_status term_fail(ss_status st, const char *fn, int64_t i,
                           const term *t) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ss_last_error());
    return ss__fail(st, fn, "term %lld '%s': %s", (long long)i, t->kind->name,
                    msg);
}

static const char *missing_input(unsigned need, const ss_composite_inputs *in) {
    if ((need & SS__IN_Z) && !in->z) return "z";
    if ((need & SS__IN_LABELS) && !in->labels) return "labels";
    if ((need & SS__IN_P) && !in->p) return "p";
    if ((need & SS__IN_MAE) && !in->mae_pred) return "mae_pred";
    if ((need & SS__IN_MAE) && !in->imgs) return "imgs";
    if ((need & SS__IN_MAE) && !in->patch_mask) return "patch_mask";
    if ((need & SS__IN_RECON) && !in->recon_pred) return "recon_pred";
    if ((need & SS__IN_RECON) && !in->recon_target) return "recon_target";
    if ((need & SS__IN_MLM) && !in->logits) return "logits";
    if ((need & SS__IN_MLM) && !in->targets) return "targets";
    if ((need & SS__IN_DINO) && !in->dino_teacher) return "dino_teacher";
    if ((need & SS__IN_DINO) && !in->dino_student) return "dino_student";
    if ((need & SS__IN_DINO) && !in->center) return "center";
    return NULL;
}

static const char *missing_grad(unsigned need, const ss_composite_grads *g) {
    if ((need & SS__G_DZ) && !g->dz) return "dz";
    if ((need & SS__G_DP) && !g->dp) return "dp";
    if ((need & SS__G_DMAE) && !g->dmae_pred) return "dmae_pred";
    if ((need & SS__G_DRECON) && !g->drecon_pred) return "drecon_pred";
    if ((need & SS__G_DLOGITS) && !g->dlogits) return "dlogits";
    if ((need & SS__G_DDINO) && !g->ddino_student) return "ddino_student";
    return NULL;
}

static ss_status ensure_cache(term *t, size_t bytes, const char *fn) {
    if (bytes <= t->cache_bytes) return SS_OK;
    void *p = ss__malloc(bytes);
    if (!p) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate %zu bytes of "
                            "cache for '%s'", bytes, t->kind->name);
    ss__free(t->cache);
    t->cache = p;
    t->cache_bytes = bytes;
    return SS_OK;
}

/* Local checks of a forward, caches included (no term runs). */
static ss_status forward_checks(ss_composite *c, float *total,
                                const ss_composite_inputs *in,
                                const ss__composite_pass *p) {
    const char *fn = p->fn;
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "total", total));
    SS_TRY(ss__check_ptr(fn, "in", in));
    c->forward_ok = 0;
    if (c->n == 0)
        return ss__fail(SS_ERR_STATE, fn, "the composite has no term");
    for (int64_t i = 0; i < c->n; i++) {
        const char *miss = missing_input(c->t[i].kind->inputs, in);
        if (miss)
            return ss__fail(SS_ERR_PARAM, fn, "term %lld '%s' needs input "
                            "'%s', which is NULL", (long long)i,
                            c->t[i].kind->name, miss);
    }
    for (int64_t i = 0; i < c->n; i++) {
        term *t = &c->t[i];
        size_t bytes = 0;
        ss_status st = p->cache ? p->cache(p, t->kind, &bytes, &t->opts, in)
                                : t->kind->cache(&bytes, &t->opts, in);
        if (st == SS_OK) st = ensure_cache(t, bytes, fn);
        if (st != SS_OK) return term_fail(st, fn, i, t);
    }
    return SS_OK;
}

ss_status ss__composite_forward(ss_composite *c, float *total, float *values,
                                const ss_composite_inputs *in,
                                const ss__composite_pass *p) {
    const char *fn = p->fn;
    ss_status st = forward_checks(c, total, in, p);
    float *v = st == SS_OK ? malloc((size_t)c->n * sizeof *v) : NULL;
    if (st == SS_OK && !v) st = ss__fail(SS_ERR_NOMEM, fn, "out of memory");
    if (p->agree) st = p->agree(p, st, c, NULL);
    if (st != SS_OK) { free(v); return st; }
    double acc = 0.0;
    for (int64_t i = 0; i < c->n; i++) {
        term *t = &c->t[i];
        st = p->fwd ? p->fwd(p, t->kind, &v[i], t->cache, &t->opts, in)
                    : t->kind->fwd(&v[i], t->cache, &t->opts, in);
        if (st != SS_OK) {
            free(v);
            return term_fail(st, fn, i, t);
        }
        acc += (double)t->weight * (double)v[i];
    }
    for (int64_t i = 0; i < c->n; i++) {
        c->t[i].value = v[i];
        if (values) values[i] = v[i];
    }
    free(v);
    *total = (float)acc;
    c->last = *in;
    c->forward_ok = p->mode;
    return SS_OK;
}

static const ss__composite_pass single_forward = {"ss_composite_forward", 1,
                                                  NULL, NULL, NULL, NULL, NULL};
static const ss__composite_pass single_backward = {"ss_composite_backward", 1,
                                                   NULL, NULL, NULL, NULL, NULL};

ss_status ss_composite_forward(ss_composite *c, float *total, float *values,
                               const ss_composite_inputs *in) {
    return ss__composite_forward(c, total, values, in, &single_forward);
}

static int same_sizes(const ss_composite_inputs *a, const ss_composite_inputs *b) {
    return a->V == b->V && a->N == b->N && a->D == b->D && a->B == b->B &&
           a->C == b->C && a->H == b->H && a->W == b->W &&
           a->patch == b->patch && a->recon_n == b->recon_n && a->T == b->T &&
           a->vocab == b->vocab && a->dino_G == b->dino_G &&
           a->dino_V == b->dino_V && a->dino_K == b->dino_K;
}

/* Local checks of a backward: state, sizes, dloss, every buffer. */
static ss_status backward_checks(const ss_composite *c,
                                 const ss_composite_grads *g, float dloss,
                                 const ss_composite_inputs *in,
                                 const ss__composite_pass *p) {
    const char *fn = p->fn;
    SS_TRY(ss__check_ptr(fn, "c", c));
    SS_TRY(ss__check_ptr(fn, "g", g));
    SS_TRY(ss__check_ptr(fn, "in", in));
    if (!c->forward_ok)
        return ss__fail(SS_ERR_STATE, fn, "no successful forward to "
                        "differentiate");
    if (c->forward_ok != p->mode)
        return ss__fail(SS_ERR_STATE, fn, "the last forward was not of this "
                        "kind (ss_composite_* and ss_dist_composite_* keep "
                        "different caches)");
    if (!same_sizes(in, &c->last))
        return ss__fail(SS_ERR_STATE, fn, "the sizes in 'in' differ from "
                        "those of the forward call");
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                        (double)dloss);
    for (int64_t i = 0; i < c->n; i++) {
        const term *t = &c->t[i];
        const char *miss = missing_input(t->kind->inputs, in);
        if (miss)
            return ss__fail(SS_ERR_PARAM, fn, "term %lld '%s' needs input "
                            "'%s', which is NULL", (long long)i, t->kind->name,
                            miss);
        miss = missing_grad(t->kind->grads(&t->opts), g);
        if (miss)
            return ss__fail(SS_ERR_NULL, fn, "term %lld '%s' needs gradient "
                            "buffer '%s', which is NULL", (long long)i,
                            t->kind->name, miss);
    }
    return SS_OK;
}

ss_status ss__composite_backward(ss_composite *c, const ss_composite_grads *g,
                                 float dloss, const ss_composite_inputs *in,
                                 const ss__composite_pass *p) {
    ss_status st = backward_checks(c, g, dloss, in, p);
    if (p->agree) st = p->agree(p, st, c, &dloss);
    SS_TRY(st);
    for (int64_t i = 0; i < c->n; i++) {
        term *t = &c->t[i];
        float dl = (float)((double)dloss * (double)t->weight);
        st = p->bwd ? p->bwd(p, t->kind, g, dl, t->cache, &t->opts, in)
                    : t->kind->bwd(g, dl, t->cache, &t->opts, in);
        if (st != SS_OK) return term_fail(st, p->fn, i, t);
    }
    return SS_OK;
}

ss_status ss_composite_backward(ss_composite *c, const ss_composite_grads *g,
                                float dloss, const ss_composite_inputs *in) {
    return ss__composite_backward(c, g, dloss, in, &single_backward);
}

/* ---- internal: what must agree between ranks --------------------------- */

/* FNV-1a over n bytes, continuing from h. */
static uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The parameter values only (never padding bytes of the options). */
static uint64_t hash_params(uint64_t h, const term *t) {
    const char *o = (const char *)&t->opts;
    for (const ss__param *p = t->kind->params; p->key; p++) {
        size_t n = p->type == SS__P_F32 ? sizeof(float)
                 : p->type == SS__P_INT ? sizeof(int64_t) : sizeof(int);
        h = fnv(h, o + p->off, n);
    }
    return h;
}

void ss__composite_digest(const ss_composite *c, double out[3]) {
    uint64_t hs = 14695981039346656037ull, hw = hs;
    for (int64_t i = 0; i < c->n; i++) {
        const term *t = &c->t[i];
        hs = fnv(hs, t->kind->name, strlen(t->kind->name) + 1);
        hs = hash_params(hs, t);
        hw = fnv(hw, &t->weight, sizeof t->weight);
    }
    out[0] = (double)c->n;
    out[1] = (double)(hs >> 12); /* 52 bits: exact in double */
    out[2] = (double)(hw >> 12);
}
