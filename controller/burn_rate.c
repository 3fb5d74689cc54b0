#include "canary/burn_rate.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/text.h"

/* The workbook's paging pairs (table 5-8): 2% of a 30-day budget spent in
 * an hour, 5% in six hours; each short window is 1/12 of its long one. */
static const cn_burn_window WORKBOOK[] = {
    {.long_ms = 3600000, .short_ms = 300000, .factor = 14.4},
    {.long_ms = 21600000, .short_ms = 1800000, .factor = 6},
};

const cn_burn_window *cn_burn_pairs(const cn_burn_rate *b, size_t *count)
{
    if (b && b->window_count) {
        *count = b->window_count;
        return b->windows;
    }
    *count = sizeof WORKBOOK / sizeof WORKBOOK[0];
    return WORKBOOK;
}

/* ---- windows ------------------------------------------------------------ */

static int64_t scaled(int64_t ms, double scale, int64_t floor_ms)
{
    int64_t s = (int64_t)llround((double)ms * scale / 1000.0) * 1000;
    return s < floor_ms ? floor_ms : s;
}

static size_t window_index(cn_burn_windows *out, int64_t ms)
{
    for (size_t i = 0; i < out->window_count; i++)
        if (out->window_ms[i] == ms)
            return i;
    out->window_ms[out->window_count] = ms;
    return out->window_count++;
}

void cn_burn_scale(const cn_burn_rate *b, int64_t bake_ms, int64_t interval_ms,
                   cn_burn_windows *out)
{
    memset(out, 0, sizeof *out);
    size_t n;
    const cn_burn_window *p = cn_burn_pairs(b, &n);
    if (n > CN_BURN_MAX_PAIRS)
        n = CN_BURN_MAX_PAIRS;
    int64_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i].long_ms > longest)
            longest = p[i].long_ms;
    bool scale = b && b->scale_to_bake && bake_ms > 0 && longest > 0;
    /* Two polls, in whole seconds, and never under one second. */
    int64_t floor_ms = interval_ms > 0 ? (2 * interval_ms + 999) / 1000 * 1000 : 1000;
    double factor = scale ? (double)bake_ms / (double)longest : 1;
    for (size_t i = 0; i < n; i++) {
        cn_burn_pair *q = &out->pairs[i];
        q->long_ms = scale ? scaled(p[i].long_ms, factor, floor_ms) : p[i].long_ms;
        q->short_ms = scale ? scaled(p[i].short_ms, factor, floor_ms) : p[i].short_ms;
        q->factor = p[i].factor;
        q->long_ix = window_index(out, q->long_ms);
        q->short_ix = window_index(out, q->short_ms);
    }
    out->pair_count = n;
}

int64_t cn_burn_stage_bake(const cn_plan *plan, unsigned stage)
{
    return stage >= 1 && stage <= plan->stage_count ? plan->stages[stage - 1].bake_ms
                                                    : plan->bake_ms;
}

void cn_burn_duration(char *buf, size_t len, int64_t ms)
{
    if (ms % 1000)
        snprintf(buf, len, "%lldms", (long long)ms);
    else if (ms % 60000)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else if (ms % 3600000)
        snprintf(buf, len, "%lldm", (long long)(ms / 60000));
    else
        snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
}

/* ---- words -------------------------------------------------------------- */

/* 10 and above with one decimal (31.2, 100), below with sig significant
 * digits (sig 2: 3.1, 0.5, 0.043); trailing zeros dropped, no exponent. */
typedef struct num {
    char s[40];
} num;

static num fmt_sig(double v, int sig)
{
    num n;
    double a = fabs(v);
    int decimals = 1;
    if (!isfinite(v) || a >= 1e15) {
        snprintf(n.s, sizeof n.s, "%g", v);
        return n;
    }
    if (a < 10)
        decimals = a > 0 ? sig - 1 - (int)floor(log10(a)) : 0;
    if (decimals > 10)
        decimals = 10;
    snprintf(n.s, sizeof n.s, "%.*f", decimals, v);
    if (strchr(n.s, '.')) {
        size_t len = strlen(n.s);
        while (n.s[len - 1] == '0')
            n.s[--len] = '\0';
        if (n.s[len - 1] == '.')
            n.s[--len] = '\0';
    }
    if (!strcmp(n.s, "-0"))
        strcpy(n.s, "0");
    return n;
}

/* Burn rates and factors. */
static num fmt(double v)
{
    return fmt_sig(v, 2);
}

/* Percentages, one digit more: the burn is the ratio over the budget, and
 * "14.5x: 1.45% errors" must not read as 1.4%. */
static num pct(double fraction)
{
    return fmt_sig(100 * fraction, 3);
}

typedef struct dur {
    char s[32];
} dur;

static dur window_name(int64_t ms)
{
    dur d;
    cn_burn_duration(d.s, sizeof d.s, ms);
    return d;
}

/* ---- judging ------------------------------------------------------------ */

typedef enum { W_OK, W_NODATA, W_ERROR } wstate;

static int detail_len(const cn_reading *r)
{
    const char *end = memchr(r->detail, '\0', sizeof r->detail);
    return end ? (int)(end - r->detail) : (int)sizeof r->detail;
}

/* One query's reading over window win. errors: the errors query, where
 * an empty result is zero. Words go to t (which may be NULL) only for the
 * state asked for in say, so that a window with both an error and no
 * data reports its error. */
static wstate query_state(const cn_reading *r, bool errors, const char *win, double *v,
                          wstate say, cn_text *t)
{
    const char *what = errors ? "errors" : "total";
    wstate s = W_OK;
    char why[240] = "";
    switch (r->kind) {
    case CN_READING_ERROR:
        s = W_ERROR;
        if (detail_len(r))
            snprintf(why, sizeof why, "%s over %s: %.*s", what, win, detail_len(r), r->detail);
        else
            snprintf(why, sizeof why, "%s over %s: query failed", what, win);
        break;
    case CN_READING_NODATA:
        if (errors) {
            *v = 0;
            return W_OK;
        }
        s = W_NODATA;
        snprintf(why, sizeof why, "total over %s: %.*s", win, detail_len(r), r->detail);
        break;
    case CN_READING_VALUE:
        *v = r->value;
        if (isnan(r->value)) {
            s = W_NODATA;
            snprintf(why, sizeof why, "%s over %s is NaN", what, win);
        } else if (isinf(r->value)) {
            s = W_ERROR;
            snprintf(why, sizeof why, "%s over %s is %cInf", what, win, r->value > 0 ? '+' : '-');
        } else if (r->value < 0) {
            /* rate() is never negative: the query is wrong */
            s = W_ERROR;
            snprintf(why, sizeof why, "%s over %s is negative (%g)", what, win, r->value);
        } else if (!errors && r->value == 0) {
            s = W_NODATA;
            snprintf(why, sizeof why, "no requests over %s (total 0)", win);
        }
        break;
    default:
        s = W_ERROR;
        snprintf(why, sizeof why, "%s over %s: reading of unknown kind %d", what, win,
                 (int)r->kind);
        break;
    }
    if (t && s == say)
        cn_text_add(t, "%s: %s", s == W_ERROR ? "error" : "no data", why);
    return s;
}

/* A window's state: an error in either query before no data in either;
 * with t, the words of the first query in that state. */
static wstate window_state(const cn_reading *errors, const cn_reading *total, int64_t ms,
                           double budget, cn_burn_figures *f, cn_text *t)
{
    dur win = window_name(ms);
    double e = NAN, n = NAN;
    wstate se = query_state(errors, true, win.s, &e, W_ERROR, NULL);
    wstate st = query_state(total, false, win.s, &n, W_ERROR, NULL);
    wstate s = se == W_ERROR || st == W_ERROR ? W_ERROR
               : se == W_NODATA || st == W_NODATA ? W_NODATA : W_OK;
    if (t && s != W_OK && se == s)
        (void)query_state(errors, true, win.s, &e, s, t);
    else if (t && s != W_OK)
        (void)query_state(total, false, win.s, &n, s, t);
    memset(f, 0, sizeof *f);
    if (s == W_OK) {
        f->have = true;
        f->errors = e;
        f->total = n;
        f->ratio = e / n;
        f->burn = f->ratio / budget;
    }
    return s;
}

static bool fires(const cn_burn_pair *p, const cn_burn_figures *f)
{
    const cn_burn_figures *l = &f[p->long_ix], *s = &f[p->short_ix];
    return l->have && s->have && l->burn > p->factor && s->burn > p->factor;
}

static void fail_words(const cn_burn_windows *w, const cn_burn_figures *f, size_t first,
                       double budget, cn_text *t)
{
    const cn_burn_pair *p = &w->pairs[first];
    const cn_burn_figures *l = &f[p->long_ix], *s = &f[p->short_ix];
    cn_text_add(t, "burn %sx over %s and %sx over %s > %sx: %s%% errors against a %s%% budget",
             fmt(l->burn).s, window_name(p->long_ms).s, fmt(s->burn).s,
             window_name(p->short_ms).s, fmt(p->factor).s, pct(l->ratio).s,
             pct(budget).s);
    size_t more = 0;
    for (size_t i = first + 1; i < w->pair_count; i++)
        more += fires(&w->pairs[i], f);
    if (more)
        cn_text_add(t, "; %zu more pair%s fire%s", more, more == 1 ? "" : "s",
                 more == 1 ? "s" : "");
}

static void pass_words(const cn_burn_windows *w, const cn_burn_figures *f, double budget,
                       cn_text *t)
{
    cn_text_add(t, "burn ");
    for (size_t i = 0; i < w->pair_count; i++) {
        const cn_burn_pair *p = &w->pairs[i];
        cn_text_add(t, "%s%sx over %s and %sx over %s, not both > %sx", i ? "; " : "",
                 fmt(f[p->long_ix].burn).s, window_name(p->long_ms).s,
                 fmt(f[p->short_ix].burn).s, window_name(p->short_ms).s, fmt(p->factor).s);
    }
    size_t longest = 0;
    for (size_t i = 1; i < w->window_count; i++)
        if (w->window_ms[i] > w->window_ms[longest])
            longest = i;
    cn_text_add(t, ": %s%% errors over %s against a %s%% budget", pct(f[longest].ratio).s,
             window_name(w->window_ms[longest]).s, pct(budget).s);
}

cn_outcome cn_burn_judge(const cn_burn_rate *b, const cn_burn_windows *w,
                         const cn_reading *errors, const cn_reading *total,
                         cn_burn_result *res, char *why, size_t len)
{
    cn_burn_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->pair = -1;
    res->value = NAN;
    cn_text t = {why, why ? len : 0, 0};
    if (t.cap)
        why[0] = '\0';
    if (!b || !w || !errors || !total || !w->pair_count || w->window_count > CN_BURN_MAX_WINDOWS) {
        cn_text_add(&t, "error: no burn-rate windows to judge");
        return CN_OUTCOME_ERROR;
    }
    /* Only a hand-built policy gets here: the loader wants 0 < slo < 1. */
    double budget = 1 - b->slo;
    if (!(b->slo > 0 && b->slo < 1)) {
        cn_text_add(&t, "error: slo %g is not between 0 and 100%%", 100 * b->slo);
        return CN_OUTCOME_ERROR;
    }
    wstate worst = W_OK;
    size_t report = 0;
    for (size_t i = 0; i < w->window_count; i++) {
        wstate s = window_state(&errors[i], &total[i], w->window_ms[i], budget,
                                &res->windows[i], NULL);
        if (s > worst) {
            worst = s;
            report = i;
        }
    }
    /* A pair that fires on its own two windows fails the measurement
     * whatever the other queries returned. */
    long first = -1;
    double best = -INFINITY;
    for (size_t i = 0; i < w->pair_count; i++) {
        const cn_burn_pair *p = &w->pairs[i];
        const cn_burn_figures *l = &res->windows[p->long_ix], *s = &res->windows[p->short_ix];
        if (!l->have || !s->have)
            continue;
        double v = fmin(l->burn, s->burn);
        bool fired = fires(p, res->windows);
        if (first < 0 && (fired || v / p->factor > best)) {
            res->pair = (long)i;
            res->value = v;
            best = v / p->factor;
        }
        if (fired && first < 0)
            first = (long)i;
    }
    if (first >= 0) {
        fail_words(w, res->windows, (size_t)first, budget, &t);
        return CN_OUTCOME_FAIL;
    }
    if (worst != W_OK) {
        cn_burn_figures scratch;
        window_state(&errors[report], &total[report], w->window_ms[report], budget, &scratch,
                     &t);
        res->pair = -1;
        res->value = NAN;
        return worst == W_ERROR ? CN_OUTCOME_ERROR : CN_OUTCOME_NODATA;
    }
    pass_words(w, res->windows, budget, &t);
    return CN_OUTCOME_PASS;
}

/* ---- what observers see ----------------------------------------------- */

cn_reading cn_burn_shown(cn_outcome o, const cn_burn_result *res, const char *why)
{
    cn_reading shown = {.kind = res->pair >= 0 ? CN_READING_VALUE
                                : o == CN_OUTCOME_NODATA ? CN_READING_NODATA
                                                         : CN_READING_ERROR,
                        .value = res->value};
    snprintf(shown.detail, sizeof shown.detail, "%.150s", res->pair >= 0 || !why ? "" : why);
    return shown;
}

static json_t *number_or_null(bool have, double v)
{
    return have && isfinite(v) ? json_real(v) : json_null();
}

char *cn_burn_data(const char *metric, const cn_burn_rate *b, const cn_burn_windows *w,
                   cn_outcome o, const cn_burn_result *res)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:f}", "metric", metric ? metric : "?",
                          "outcome", o == CN_OUTCOME_PASS ? "pass" : o == CN_OUTCOME_FAIL
                          ? "fail" : o == CN_OUTCOME_NODATA ? "nodata" : "error",
                          "kind", "burn_rate", "slo", b->slo, "budget", 1 - b->slo);
    json_t *windows = json_array();
    if (!j || !windows) {
        json_decref(j);
        json_decref(windows);
        return NULL;
    }
    json_object_set_new(j, "value", number_or_null(res->pair >= 0, res->value));
    if (res->pair >= 0 && (size_t)res->pair < w->pair_count) {
        const cn_burn_pair *p = &w->pairs[res->pair];
        json_object_set_new(j, "max", json_real(p->factor));
        json_object_set_new(j, "pair", json_pack("{s:s, s:s, s:f}", "long",
                                                 window_name(p->long_ms).s, "short",
                                                 window_name(p->short_ms).s, "factor",
                                                 p->factor));
    }
    for (size_t i = 0; i < w->window_count && i < CN_BURN_MAX_WINDOWS; i++) {
        const cn_burn_figures *f = &res->windows[i];
        json_array_append_new(windows, json_pack("{s:s, s:o, s:o, s:o, s:o}", "window",
                                                 window_name(w->window_ms[i]).s, "errors",
                                                 number_or_null(f->have, f->errors), "total",
                                                 number_or_null(f->have, f->total), "ratio",
                                                 number_or_null(f->have, f->ratio), "burn",
                                                 number_or_null(f->have, f->burn)));
    }
    json_object_set_new(j, "windows", windows);
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(j);
    return text;
}
