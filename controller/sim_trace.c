/*
 * sim_trace.c: traces for `canary simulate` (see include/canary/simulate.h):
 * CSV parsed into one block of rows, grouped by metric and sorted into
 * weight layers, then looked up by binary search.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "canary/schema.h"
#include "canary/simulate.h"
#include "canary/status.h"

/* A tolerance for weights computed by different divisions (7/100 and
 * 700/10000 are one double, but a plan's rounding need not be). */
#define WEIGHT_EPS 1e-9

enum { COL_SECONDS = 0, COL_METRIC, COL_VALUE, COL_BASELINE, COL_WEIGHT, COL_COUNT };
static const char *const COLUMNS[COL_COUNT] = {"seconds", "metric", "value", "baseline",
                                               "weight_at_least"};

/* A row while parsing: which series, and the row. */
typedef struct pending_row {
    size_t series;
    cn_trace_row row;
} pending_row;

typedef struct parser {
    cn_trace *t;
    cn_diags *diags;
    int col_of[COL_COUNT]; /* field index of each column, -1 absent */
    size_t fields;         /* in the header */
    pending_row *rows;
    size_t count, cap;
    size_t series_cap;
    size_t last_series;    /* most rows repeat the metric of the row before */
    int status;
} parser;

typedef struct field {
    const char *s; /* trimmed, NUL-terminated in the line copy */
    unsigned col;
} field;

static void problem(parser *p, unsigned line, unsigned col, const char *fmt, ...)
    CN_PRINTF(4, 5);

static void problem(parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cn_diags_add(p->diags, p->t->file, line, col, "%s", msg);
    if (p->status == CN_OK)
        p->status = CN_EINVAL;
}

/* Splits a line copy in place at commas; trims blanks. Returns the count
 * of fields; the first cap of them are in out. */
static size_t split(char *line, field *out, size_t cap)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        char *s = p;
        while (*s == ' ' || *s == '\t')
            s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (n < cap)
            out[n] = (field){s, (unsigned)(s - line) + 1};
        n++;
        if (!end)
            return n;
        p = end + 1;
    }
}

static void read_header(parser *p, char *line, unsigned lineno)
{
    field f[COL_COUNT];
    size_t n = split(line, f, COL_COUNT);
    for (int c = 0; c < COL_COUNT; c++)
        p->col_of[c] = -1;
    p->fields = n;
    if (n > COL_COUNT) {
        problem(p, lineno, 1, "the header has more than %d columns; the columns are seconds, "
                "metric, value, baseline, weight_at_least", COL_COUNT);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int c = 0;
        while (c < COL_COUNT && strcmp(f[i].s, COLUMNS[c]))
            c++;
        if (c == COL_COUNT) {
            const char *hint = cn_suggest(f[i].s, COLUMNS, COL_COUNT);
            problem(p, lineno, f[i].col, "unknown column '%s'%s%s%s; the columns are seconds, "
                    "metric, value (required), baseline, weight_at_least", f[i].s,
                    hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        } else if (p->col_of[c] >= 0) {
            problem(p, lineno, f[i].col, "column '%s' appears twice in the header", f[i].s);
        } else {
            p->col_of[c] = (int)i;
        }
    }
    for (int c = COL_SECONDS; c <= COL_VALUE; c++)
        if (p->col_of[c] < 0)
            problem(p, lineno, 1, "the header has no '%s' column; it must name at least "
                    "seconds,metric,value", COLUMNS[c]);
}

/* A number, nan, inf or error. */
static bool parse_value(const char *s, cn_reading_kind *kind, double *v)
{
    *kind = CN_READING_VALUE;
    if (!strcasecmp(s, "error")) {
        *kind = CN_READING_ERROR;
        *v = NAN;
        return true;
    }
    if (!strcasecmp(s, "nan")) {
        *v = NAN;
        return true;
    }
    if (!strcasecmp(s, "inf") || !strcasecmp(s, "+inf")) {
        *v = INFINITY;
        return true;
    }
    if (!strcasecmp(s, "-inf")) {
        *v = -INFINITY;
        return true;
    }
    return cn_text_number(s, v) == 0;
}

/* "50" or "50%" as the fraction 0.5; 0 to 100. */
static bool parse_weight(const char *s, double *fraction)
{
    char num[64];
    size_t len = strlen(s);
    if (len && s[len - 1] == '%')
        len--;
    if (!len || len >= sizeof num)
        return false;
    memcpy(num, s, len);
    num[len] = '\0';
    double pct;
    if (cn_text_number(num, &pct) != 0 || pct < 0 || pct > 100)
        return false;
    *fraction = pct / 100;
    return true;
}

static long find_series(parser *p, const char *name, unsigned line, unsigned col)
{
    cn_trace *t = p->t;
    if (p->last_series < t->count && !strcmp(t->series[p->last_series].name, name))
        return (long)p->last_series;
    for (size_t i = 0; i < t->count; i++)
        if (!strcmp(t->series[i].name, name))
            return (long)(p->last_series = i);
    if (t->count == CN_TRACE_MAX_SERIES) {
        problem(p, line, col, "more than %d metric names in one trace", CN_TRACE_MAX_SERIES);
        p->status = CN_ELIMIT;
        return -1;
    }
    if (t->count == p->series_cap) {
        size_t cap = p->series_cap ? 2 * p->series_cap : 8;
        cn_trace_series *s = realloc(t->series, cap * sizeof *s);
        if (!s) {
            p->status = CN_ENOMEM;
            return -1;
        }
        t->series = s;
        p->series_cap = cap;
    }
    const char *copy = cn_arena_strdup(&t->arena, name);
    if (!copy) {
        p->status = CN_ENOMEM;
        return -1;
    }
    t->series[t->count] = (cn_trace_series){.name = copy, .line = line, .col = col};
    return (long)(p->last_series = t->count++);
}

static void read_row(parser *p, char *line, unsigned lineno)
{
    field f[COL_COUNT];
    size_t n = split(line, f, COL_COUNT);
    if (n != p->fields) {
        problem(p, lineno, 1, "the row has %zu field%s, the header names %zu", n,
                n == 1 ? "" : "s", p->fields);
        return;
    }
    bool ok = true;
    cn_trace_row row = {.line = lineno, .baseline_kind = CN_READING_NODATA, .baseline = NAN};
    const field *sec = &f[p->col_of[COL_SECONDS]], *met = &f[p->col_of[COL_METRIC]],
                *val = &f[p->col_of[COL_VALUE]];
    double seconds;
    if (cn_text_number(sec->s, &seconds) != 0 || seconds < 0) {
        problem(p, lineno, sec->col, "'seconds' expects a number of seconds from the start, at "
                "least 0, got '%s'", sec->s);
        ok = false;
    } else if (seconds * 1000 > CN_MAX_DURATION_MS) {
        problem(p, lineno, sec->col, "'seconds' must be at most 31536000 (365 days), got '%s'",
                sec->s);
        ok = false;
    } else {
        row.at_ms = llround(seconds * 1000);
    }
    if (!*met->s) {
        problem(p, lineno, met->col, "'metric' is empty; name a metric of the policy");
        ok = false;
    }
    if (!*val->s) {
        problem(p, lineno, val->col, "'value' is empty; write nan for no data");
        ok = false;
    } else if (!parse_value(val->s, &row.kind, &row.value)) {
        problem(p, lineno, val->col, "'value' expects a number, nan, inf or error, got '%s'",
                val->s);
        ok = false;
    }
    if (p->col_of[COL_BASELINE] >= 0) {
        const field *b = &f[p->col_of[COL_BASELINE]];
        if (*b->s && !parse_value(b->s, &row.baseline_kind, &row.baseline)) {
            problem(p, lineno, b->col, "'baseline' expects a number, nan, inf or error (or "
                    "nothing), got '%s'", b->s);
            ok = false;
        }
    }
    if (p->col_of[COL_WEIGHT] >= 0) {
        const field *w = &f[p->col_of[COL_WEIGHT]];
        if (*w->s && !parse_weight(w->s, &row.min_weight)) {
            problem(p, lineno, w->col, "'weight_at_least' expects a percentage of traffic from "
                    "0 to 100 (or nothing), got '%s'", w->s);
            ok = false;
        }
    }
    if (!ok)
        return;
    long s = find_series(p, met->s, lineno, met->col);
    if (s < 0)
        return;
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        pending_row *r = realloc(p->rows, cap * sizeof *r);
        if (!r) {
            p->status = CN_ENOMEM;
            return;
        }
        p->rows = r;
        p->cap = cap;
    }
    p->rows[p->count++] = (pending_row){(size_t)s, row};
}

static int by_layer(const void *a, const void *b)
{
    const cn_trace_row *x = a, *y = b;
    if (x->min_weight != y->min_weight)
        return x->min_weight > y->min_weight ? -1 : 1;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Groups the pending rows by series into t->rows and sorts each group. */
static int group(parser *p)
{
    cn_trace *t = p->t;
    if (!p->count)
        return CN_OK;
    t->rows = malloc(p->count * sizeof *t->rows);
    size_t *next = calloc(t->count, sizeof *next);
    if (!t->rows || !next) {
        free(next);
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < p->count; i++)
        t->series[p->rows[i].series].count++;
    size_t at = 0;
    for (size_t s = 0; s < t->count; s++) {
        t->series[s].rows = t->rows + at;
        next[s] = at;
        at += t->series[s].count;
    }
    for (size_t i = 0; i < p->count; i++) {
        t->rows[next[p->rows[i].series]++] = p->rows[i].row;
        if (p->rows[i].row.at_ms > t->end_ms)
            t->end_ms = p->rows[i].row.at_ms;
    }
    free(next);
    for (size_t s = 0; s < t->count; s++)
        qsort(t->series[s].rows, t->series[s].count, sizeof *t->rows, by_layer);
    return CN_OK;
}

static void trace_init(cn_trace *t, const char *file)
{
    memset(t, 0, sizeof *t);
    cn_arena_init(&t->arena, 0);
    t->file = cn_arena_strdup(&t->arena, file ? file : "trace");
    for (size_t i = 0; i < CN_MAX_METRICS; i++)
        t->of_metric[i] = -1;
    t->of_requests = -1;
}

int cn_trace_parse(cn_trace *t, const char *file, const char *text, size_t len,
                   cn_diags *diags)
{
    trace_init(t, file);
    if (!t->file)
        return CN_ENOMEM;
    parser p = {.t = t, .diags = diags, .status = CN_OK};
    bool header = false;
    unsigned lineno = 0;
    char *buf = NULL;
    size_t buf_cap = 0;
    size_t start_at = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        start_at = 3; /* the byte order mark spreadsheets put first */
    for (size_t pos = start_at; pos < len && p.status != CN_ENOMEM && p.status != CN_ELIMIT;) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n && start[n - 1] == '\r')
            n--;
        if (memchr(start, '\0', n)) {
            problem(&p, lineno, 1, "the line holds a NUL byte; a trace is text");
            continue;
        }
        size_t lead = 0;
        while (lead < n && (start[lead] == ' ' || start[lead] == '\t'))
            lead++;
        if (lead == n || start[lead] == '#')
            continue;
        if (n + 1 > buf_cap) {
            char *b = realloc(buf, n + 1);
            if (!b) {
                p.status = CN_ENOMEM;
                break;
            }
            buf = b;
            buf_cap = n + 1;
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        if (!header) {
            header = true;
            read_header(&p, buf, lineno);
            if (p.status != CN_OK)
                break; /* rows cannot be read against a broken header */
        } else {
            read_row(&p, buf, lineno);
        }
    }
    free(buf);
    if (!header && p.status == CN_OK)
        problem(&p, 0, 0, "the trace is empty; its first line must be the header "
                "seconds,metric,value");
    int rc = p.status;
    if (rc == CN_OK)
        rc = group(&p);
    free(p.rows);
    return rc;
}

int cn_trace_load(cn_trace *t, const char *path, cn_diags *diags)
{
    trace_init(t, path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        cn_diags_add(diags, path, 0, 0, "cannot read the trace: %s", strerror(e));
        return e == ENOENT ? CN_ENOTFOUND : CN_EIO;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    int rc = text ? CN_OK : CN_ENOMEM;
    while (rc == CN_OK) {
        if (len == cap) {
            if (cap > CN_TRACE_MAX_BYTES) {
                cn_diags_add(diags, path, 0, 0, "the trace is larger than the %u byte limit",
                             CN_TRACE_MAX_BYTES);
                rc = CN_ELIMIT;
                break;
            }
            char *b = realloc(text, 2 * cap);
            if (!b) {
                rc = CN_ENOMEM;
                break;
            }
            text = b;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                cn_diags_add(diags, path, 0, 0, "cannot read the trace: read error");
                rc = CN_EIO;
            }
            break;
        }
    }
    fclose(f);
    if (rc == CN_OK && len > CN_TRACE_MAX_BYTES) {
        cn_diags_add(diags, path, 0, 0, "the trace is larger than the %u byte limit",
                     CN_TRACE_MAX_BYTES);
        rc = CN_ELIMIT;
    }
    if (rc == CN_OK) {
        cn_trace_free(t);
        rc = cn_trace_parse(t, path, text, len, diags);
    }
    free(text);
    return rc;
}

void cn_trace_free(cn_trace *t)
{
    free(t->series);
    free(t->rows);
    cn_arena_free(&t->arena);
    t->series = NULL;
    t->rows = NULL;
    t->count = 0;
}

int cn_trace_bind(cn_trace *t, const cn_policy *p, cn_diags *diags)
{
    size_t n = p->analysis.metric_count;
    bool requests = p->analysis.min_requests.count > 0;
    const char *names[CN_MAX_METRICS + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CN_MAX_METRICS; i++)
        names[k++] = p->analysis.metrics[i].name;
    if (requests)
        names[k++] = CN_TRACE_REQUESTS;
    for (size_t i = 0; i < CN_MAX_METRICS; i++)
        t->of_metric[i] = -1;
    t->of_requests = -1;
    int rc = CN_OK;
    for (size_t s = 0; s < t->count; s++) {
        const cn_trace_series *se = &t->series[s];
        bool found = false;
        for (size_t i = 0; i < n && i < CN_MAX_METRICS; i++)
            if (!strcmp(se->name, p->analysis.metrics[i].name)) {
                t->of_metric[i] = (long)s;
                found = true;
            }
        if (!found && requests && !strcmp(se->name, CN_TRACE_REQUESTS)) {
            t->of_requests = (long)s;
            found = true;
        }
        if (found || !diags)
            continue;
        rc = CN_EINVAL;
        const char *hint = cn_suggest(se->name, names, k);
        char known[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < k && used < sizeof known; i++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                                     names[i]);
        if (!requests && !strcmp(se->name, CN_TRACE_REQUESTS))
            cn_diags_add(diags, t->file, se->line, se->col, "'%s' stands for the min_requests "
                         "query, but policy '%s' has no analysis.min_requests; the policy's "
                         "metrics are: %s", se->name, p->name, k ? known : "none");
        else
            cn_diags_add(diags, t->file, se->line, se->col, "unknown metric '%s'%s%s%s; policy "
                         "'%s' has: %s", se->name, hint ? " (did you mean '" : "",
                         hint ? hint : "", hint ? "'?)" : "", p->name, k ? known : "no metrics");
    }
    return rc;
}

/* The end of the layer that starts at lo: the first row with a smaller
 * min_weight (rows are sorted by it, descending). */
static size_t layer_end(const cn_trace_series *s, size_t lo)
{
    double w = s->rows[lo].min_weight;
    size_t a = lo + 1, b = s->count;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (s->rows[mid].min_weight < w)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

const cn_trace_row *cn_trace_at(const cn_trace_series *s, int64_t t, double weight)
{
    for (size_t lo = 0; lo < s->count;) {
        size_t hi = layer_end(s, lo);
        if (s->rows[lo].min_weight <= weight + WEIGHT_EPS) {
            /* The last row at or before t within [lo, hi). */
            size_t a = lo, b = hi;
            while (a < b) {
                size_t mid = a + (b - a) / 2;
                if (s->rows[mid].at_ms <= t)
                    a = mid + 1;
                else
                    b = mid;
            }
            if (a > lo)
                return &s->rows[a - 1];
        }
        lo = hi;
    }
    return NULL;
}

int64_t cn_trace_next_row(const cn_trace_series *s, int64_t t)
{
    int64_t next = INT64_MAX;
    for (size_t lo = 0; lo < s->count;) {
        size_t hi = layer_end(s, lo);
        /* The first row after t within [lo, hi). */
        size_t a = lo, b = hi;
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            if (s->rows[mid].at_ms <= t)
                a = mid + 1;
            else
                b = mid;
        }
        if (a < hi && s->rows[a].at_ms < next)
            next = s->rows[a].at_ms;
        lo = hi;
    }
    return next;
}

/* Called twice per metric per poll: no printf. */
static void set_reading(cn_reading *r, cn_reading_kind kind, double value, const char *detail)
{
    r->kind = kind;
    r->value = value;
    size_t n = strlen(detail);
    if (n >= sizeof r->detail)
        n = sizeof r->detail - 1;
    memcpy(r->detail, detail, n);
    r->detail[n] = '\0';
}

void cn_trace_reading(const cn_trace *t, long i, int64_t at_ms, double weight,
                      cn_reading *canary, cn_reading *baseline)
{
    long s = i < 0 ? t->of_requests : i < CN_MAX_METRICS ? t->of_metric[i] : -1;
    const cn_trace_row *row = s >= 0 ? cn_trace_at(&t->series[s], at_ms, weight) : NULL;
    if (!row) {
        const char *why = s < 0 ? "the trace has no rows for it" : "no trace row yet";
        set_reading(canary, CN_READING_NODATA, NAN, why);
        set_reading(baseline, CN_READING_NODATA, NAN, why);
        return;
    }
    set_reading(canary, row->kind, row->value,
                row->kind == CN_READING_ERROR ? "the trace says error" : "");
    set_reading(baseline, row->baseline_kind, row->baseline,
                row->baseline_kind == CN_READING_ERROR ? "the trace says error"
                : row->baseline_kind == CN_READING_NODATA ? "the trace row gives no baseline"
                                                          : "");
}
