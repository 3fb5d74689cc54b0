/*
 * sim_read.c: what a burn rate's window queries and a judged metric's
 * range queries read from a trace over a span of time, under the weights
 * a simulated rollout served (see include/canary/simulate.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/simulate.h"
#include "canary/status.h"

double cn_sim_weight_at(const cn_sim_step *steps, size_t n, int64_t t)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (steps[mid].at_ms <= t)
            a = mid + 1;
        else
            b = mid;
    }
    return a ? steps[a - 1].weight : 0;
}

/* The first weight step after t, INT64_MAX when none. */
static int64_t next_step(const cn_sim_step *steps, size_t n, int64_t t)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (steps[mid].at_ms <= t)
            a = mid + 1;
        else
            b = mid;
    }
    return a < n ? steps[a].at_ms : INT64_MAX;
}

/* No printf on this path: it runs for every window of every poll. */
static void set_reading(cn_reading *r, cn_reading_kind kind, double value, const char *detail)
{
    r->kind = kind;
    r->value = value;
    size_t len = strlen(detail);
    if (len >= sizeof r->detail)
        len = sizeof r->detail - 1;
    memcpy(r->detail, detail, len);
    r->detail[len] = '\0';
}

static const cn_trace_series *series_of(const cn_trace *t, long i)
{
    long s = i >= 0 && i < CN_MAX_METRICS ? t->of_metric[i] : -1;
    return s >= 0 && (size_t)s < t->count ? &t->series[s] : NULL;
}

/* What one piece of a window adds: false for a row reading error. */
static bool add_piece(const cn_trace_row *row, int64_t ms, double *sum, int64_t *covered)
{
    if (row && row->kind == CN_READING_ERROR)
        return false;
    if (row && !isnan(row->value)) {
        *sum += row->value * (double)ms;
        *covered += ms;
    }
    return true;
}

/* A series of one layer that always holds (no weight_at_least): the
 * weight does not matter, and its rows are in time order. */
static bool one_plain_layer(const cn_trace_series *s)
{
    return s->count && s->rows[0].min_weight <= 0 && s->rows[s->count - 1].min_weight <= 0;
}

void cn_trace_window(const cn_trace *t, long i, int64_t from_ms, int64_t to_ms,
                     const cn_sim_step *steps, size_t n, cn_reading *errors,
                     cn_reading *total)
{
    const cn_trace_series *s = series_of(t, i);
    if (!s) {
        set_reading(errors, CN_READING_NODATA, NAN, "the trace has no rows for it");
        set_reading(total, CN_READING_NODATA, NAN, "the trace has no rows for it");
        return;
    }
    /* Between a weight step and a row of any layer the reading holds, so
     * the integral is a sum over those pieces. */
    double sum = 0;
    int64_t covered = 0;
    bool ok = true;
    if (one_plain_layer(s)) {
        /* The common case, a walk along the rows: the row in force at the
         * window's start (on equal times the later line), then each row
         * after it, in turn. */
        const cn_trace_row *row = cn_trace_at(s, from_ms, 0);
        size_t k = row ? (size_t)(row - s->rows) + 1 : 0;
        int64_t a = from_ms;
        while (ok) {
            int64_t b = k < s->count && s->rows[k].at_ms < to_ms ? s->rows[k].at_ms : to_ms;
            if (b > a)
                ok = add_piece(row, b - a, &sum, &covered);
            if (b == to_ms)
                break;
            row = &s->rows[k++];
            a = b;
        }
    } else {
        for (int64_t a = from_ms; ok && a < to_ms;) {
            int64_t b = cn_trace_next_row(s, a), c = next_step(steps, n, a);
            if (c < b)
                b = c;
            if (b > to_ms)
                b = to_ms;
            ok = add_piece(cn_trace_at(s, a, cn_sim_weight_at(steps, n, a)), b - a, &sum,
                           &covered);
            a = b;
        }
    }
    if (!ok) {
        set_reading(errors, CN_READING_ERROR, NAN, "the trace says error");
        set_reading(total, CN_READING_ERROR, NAN, "the trace says error");
        return;
    }
    if (!covered) {
        set_reading(errors, CN_READING_NODATA, NAN, "the trace has no value in the window");
        set_reading(total, CN_READING_NODATA, NAN, "the trace has no value in the window");
        return;
    }
    set_reading(errors, CN_READING_VALUE, sum / 1000, "");
    set_reading(total, CN_READING_VALUE, (double)covered / 1000, "");
}

static bool push(cn_trace_samples *out, double v)
{
    if (out->count == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 64;
        double *p = realloc(out->values, cap * sizeof *p);
        if (!p)
            return false;
        out->values = p;
        out->cap = cap;
    }
    out->values[out->count++] = v;
    return true;
}

int cn_trace_range(const cn_trace *t, long i, bool baseline, int64_t start_ms, int64_t end_ms,
                   int64_t step_ms, const cn_sim_step *steps, size_t n, cn_trace_samples *out,
                   cn_reading *reading)
{
    out->count = 0;
    const cn_trace_series *s = series_of(t, i);
    if (!s) {
        set_reading(reading, CN_READING_NODATA, NAN, "the trace has no rows for it");
        return CN_OK;
    }
    if (step_ms <= 0) {
        set_reading(reading, CN_READING_ERROR, NAN, "a range query needs a step of 1ms or more");
        return CN_OK;
    }
    for (int64_t x = start_ms; x <= end_ms; x += step_ms) {
        const cn_trace_row *row = cn_trace_at(s, x, cn_sim_weight_at(steps, n, x));
        if (!row)
            continue;
        cn_reading_kind kind = baseline ? row->baseline_kind : row->kind;
        double v = baseline ? row->baseline : row->value;
        if (kind == CN_READING_ERROR) {
            out->count = 0;
            set_reading(reading, CN_READING_ERROR, NAN, "the trace says error");
            return CN_OK;
        }
        if (kind != CN_READING_VALUE || isnan(v))
            continue;
        if (isinf(v)) {
            out->count = 0;
            set_reading(reading, CN_READING_ERROR, NAN, v > 0 ? "a sample is +Inf"
                                                              : "a sample is -Inf");
            return CN_OK;
        }
        if (!push(out, v)) {
            out->count = 0;
            set_reading(reading, CN_READING_ERROR, NAN, "out of memory");
            return CN_ENOMEM;
        }
    }
    if (!out->count) {
        set_reading(reading, CN_READING_NODATA, NAN,
                    baseline ? "the trace has no baseline values in the window"
                             : "the trace has no values in the window");
        return CN_OK;
    }
    set_reading(reading, CN_READING_VALUE, out->values[out->count - 1], "");
    return CN_OK;
}
