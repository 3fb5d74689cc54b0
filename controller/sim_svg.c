/*
 * sim_svg.c: a simulated rollout as one self-contained SVG (see
 * sim_output.h): the weight panel on top, a panel per metric below, the
 * decisions as vertical lines through all of them, time along the bottom.
 */
#include <math.h>
#include <string.h>

#include "canary/burn_rate.h"
#include "canary/schema.h"
#include "canary/sim_output.h"
#include "canary/status.h"

#define WIDTH 960
#define LEFT 90
#define RIGHT 24
#define PLOT (WIDTH - LEFT - RIGHT)
#define TOP 74          /* title and legend above */
#define WEIGHT_H 110
#define PANEL_H 90
#define GAP 34          /* between panels: room for a panel's title */
#define BOTTOM 40       /* time labels */
/* Past this many samples a panel draws only those that did not pass. */
#define MAX_DOTS 600

typedef struct canvas {
    FILE *out;
    int64_t span;       /* ms across the plot, at least 1 */
} canvas;

static double x_at(const canvas *c, int64_t t)
{
    return LEFT + (double)PLOT * (double)t / (double)c->span;
}

static void text_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
    }
}

static const struct {
    const char *type, *color, *label;
} MARKS[] = {
    {"stage_applied", "#1565c0", "stage applied"},
    {"promoted", "#2e7d32", "promoted"},
    {"awaiting_approval", "#6a1b9a", "awaiting approval"},
    {"approval_overdue", "#6a1b9a", NULL},
    {"approved", "#6a1b9a", NULL},
    {"paused", "#ef6c00", "paused"},
    {"rolling_back", "#c62828", "rolling back"},
    {"rolled_back", "#c62828", NULL},
    {"aborted", "#c62828", "aborted"},
    {"failed", "#000000", "failed"},
    {"completed", "#2e7d32", "completed"},
};
#define MARK_COUNT (sizeof MARKS / sizeof MARKS[0])

static const char *mark_color(const char *type)
{
    for (size_t i = 0; i < MARK_COUNT; i++)
        if (!strcmp(MARKS[i].type, type))
            return MARKS[i].color;
    return NULL;
}

static const char *outcome_color(cn_outcome o)
{
    switch (o) {
    case CN_OUTCOME_PASS: return "#2e7d32";
    case CN_OUTCOME_FAIL: return "#c62828";
    case CN_OUTCOME_NODATA: return "#9e9e9e";
    case CN_OUTCOME_ERROR: return "#ef6c00";
    }
    return "#000000";
}

/* A step of 1-2-5 (in time units people use) giving at most 8 ticks. */
static int64_t tick_step(int64_t span)
{
    static const int64_t steps[] = {1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000,
                                    300000, 600000, 900000, 1800000, 3600000, 7200000,
                                    10800000, 21600000, 43200000, 86400000, 172800000,
                                    604800000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / steps[i] <= 8)
            return steps[i];
    return 604800000 * (span / 604800000 / 8 + 1);
}

static void time_axis(const canvas *c, int top, int bottom)
{
    int64_t step = tick_step(c->span);
    fprintf(c->out, "<g class=\"time-axis\" font-size=\"11\" text-anchor=\"middle\">\n");
    for (int64_t t = 0; t <= c->span; t += step) {
        char d[32];
        cn_format_duration(d, sizeof d, t);
        double x = x_at(c, t);
        fprintf(c->out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eeeeee\"/>"
                "<text x=\"%.1f\" y=\"%d\">%s</text>\n", x, top, x, bottom, x, bottom + 16, d);
    }
    fprintf(c->out, "</g>\n");
}

static void weight_panel(const canvas *c, const cn_sim_result *res, int top)
{
    FILE *out = c->out;
    int bottom = top + WEIGHT_H;
    fprintf(out, "<g class=\"weight\">\n<text x=\"%d\" y=\"%d\" font-size=\"12\" "
            "font-weight=\"bold\">weight (%% of traffic on the new version)</text>\n",
            LEFT, top - 8);
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#bdbdbd\"/>\n", LEFT, top, PLOT, WEIGHT_H);
    for (int pct = 0; pct <= 100; pct += 50)
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%d%%"
                "</text>\n", LEFT - 6, bottom - WEIGHT_H * pct / 100.0 + 4, pct);
    fprintf(out, "<polyline class=\"weight-steps\" fill=\"none\" stroke=\"#1565c0\" "
            "stroke-width=\"2\" points=\"");
    double y = bottom;
    for (size_t i = 0; i < res->step_count; i++) {
        double x = x_at(c, res->steps[i].at_ms);
        fprintf(out, "%.1f,%.1f %.1f,%.1f ", x, y, x, bottom - WEIGHT_H * res->steps[i].weight);
        y = bottom - WEIGHT_H * res->steps[i].weight;
    }
    fprintf(out, "%.1f,%.1f\"/>\n</g>\n", x_at(c, c->span), y);
}

#define MAX_BOUNDS (CN_BURN_MAX_PAIRS + 2)

/* The lines a metric's samples are judged against: a threshold's min and
 * max; a burn rate's factors (its samples are the deciding pair's burn);
 * a judged metric's marginal and pass (its samples are the round's
 * score). */
typedef struct bounds {
    size_t count;
    const char *name[MAX_BOUNDS];
    double at[MAX_BOUNDS];
    const char *unit; /* after the panel's title */
} bounds;

static void add_bound(bounds *b, const char *name, double at)
{
    for (size_t i = 0; i < b->count; i++)
        if (b->at[i] == at)
            return;
    if (b->count < MAX_BOUNDS) {
        b->name[b->count] = name;
        b->at[b->count++] = at;
    }
}

static bounds bounds_of(const cn_sim_config *cfg, unsigned m)
{
    const cn_metric *metric = &cfg->policy->analysis.metrics[m];
    bounds b = {.unit = ""};
    if (metric->burn.enabled) {
        size_t n;
        const cn_burn_window *pairs = cn_burn_pairs(&metric->burn, &n);
        for (size_t i = 0; i < n && i < CN_BURN_MAX_PAIRS; i++)
            add_bound(&b, "factor", pairs[i].factor);
        b.unit = " (burn rate: x the error budget)";
    } else if (metric->judge.enabled) {
        add_bound(&b, "marginal", cfg->policy->analysis.judge.marginal);
        add_bound(&b, "pass", cfg->policy->analysis.judge.pass);
        add_bound(&b, "", 0);
        add_bound(&b, "", 100); /* the scale of a score */
        b.unit = " (judge: the round's score)";
    } else {
        cn_threshold t = cn_analysis_threshold(cfg->policy, m, cfg->ai_assisted);
        if (t.has_min)
            add_bound(&b, "min", t.min);
        if (t.has_max)
            add_bound(&b, "max", t.max);
    }
    return b;
}

/* The range a metric's panel shows: its values and its bounds, padded. */
static void value_range(const cn_sim_result *res, unsigned m, const bounds *t, double *lo,
                        double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < res->sample_count; i++) {
        const cn_sim_sample *s = &res->samples[i];
        double v[2] = {s->value, s->baseline};
        for (int k = 0; k < 2 && s->metric == m; k++)
            if (isfinite(v[k])) {
                *lo = fmin(*lo, v[k]);
                *hi = fmax(*hi, v[k]);
            }
    }
    for (size_t i = 0; i < t->count; i++) {
        *lo = fmin(*lo, t->at[i]);
        *hi = fmax(*hi, t->at[i]);
    }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    double pad = (*hi - *lo) * 0.1;
    if (pad <= 0)
        pad = fabs(*hi) > 0 ? fabs(*hi) * 0.1 : 1;
    /* A metric that is never negative keeps 0 as its floor. */
    *lo = *lo >= 0 && *lo - pad < 0 ? 0 : *lo - pad;
    *hi += pad;
}

/* Each reading holds until the next one: steps, not slopes. */
static void series_line(const canvas *c, const cn_sim_result *res, unsigned m, bool baseline,
                        double lo, double hi, int bottom)
{
    fprintf(c->out, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" "
            "points=\"", baseline ? "baseline" : "values", baseline ? "#9e9e9e" : "#1565c0");
    bool started = false;
    double y = 0;
    for (size_t i = 0; i < res->sample_count; i++) {
        const cn_sim_sample *s = &res->samples[i];
        double v = baseline ? s->baseline : s->value;
        if (s->metric != m || !isfinite(v))
            continue;
        double x = x_at(c, s->at_ms);
        if (started)
            fprintf(c->out, "%.1f,%.1f ", x, y);
        y = bottom - PANEL_H * (v - lo) / (hi - lo);
        fprintf(c->out, "%.1f,%.1f ", x, y);
        started = true;
    }
    fprintf(c->out, "\"/>\n");
}

static void metric_panel(const canvas *c, const cn_sim_config *cfg, const cn_sim_result *res,
                         unsigned m, int top)
{
    FILE *out = c->out;
    const cn_metric *metric = &cfg->policy->analysis.metrics[m];
    bounds t = bounds_of(cfg, m);
    double lo, hi;
    value_range(res, m, &t, &lo, &hi);
    int bottom = top + PANEL_H;
    fprintf(out, "<g class=\"metric\">\n<text x=\"%d\" y=\"%d\" font-size=\"12\" "
            "font-weight=\"bold\">", LEFT, top - 8);
    text_escaped(out, metric->name);
    fputs(t.unit, out);
    fprintf(out, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#bdbdbd\"/>\n", LEFT, top, PLOT, PANEL_H);
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.4g</text>"
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n",
            LEFT - 6, top + 10, hi, LEFT - 6, bottom, lo);
    for (size_t k = 0; k < t.count; k++) {
        if (!*t.name[k])
            continue; /* only widens the scale */
        double y = bottom - PANEL_H * (t.at[k] - lo) / (hi - lo);
        fprintf(out, "<line class=\"threshold\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#c62828\" stroke-dasharray=\"6 4\"/><text x=\"%d\" y=\"%.1f\" "
                "font-size=\"10\" fill=\"#c62828\" text-anchor=\"end\">%s %.4g</text>\n",
                LEFT, y, LEFT + PLOT, y, LEFT + PLOT - 4, y - 3, t.name[k], t.at[k]);
    }
    if (metric->baseline.enabled)
        series_line(c, res, m, true, lo, hi, bottom);
    series_line(c, res, m, false, lo, hi, bottom);
    size_t count = 0;
    for (size_t i = 0; i < res->sample_count; i++)
        count += res->samples[i].metric == m;
    for (size_t i = 0; i < res->sample_count; i++) {
        const cn_sim_sample *s = &res->samples[i];
        if (s->metric != m || (count > MAX_DOTS && s->outcome == CN_OUTCOME_PASS))
            continue;
        double x = x_at(c, s->at_ms);
        /* No value to place: a mark on the panel's floor. */
        double y = isfinite(s->value) ? bottom - PANEL_H * (s->value - lo) / (hi - lo)
                                      : bottom - 3;
        fprintf(out, "<circle class=\"sample\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                x, y, outcome_color(s->outcome));
    }
    fprintf(out, "</g>\n");
}

static void markers(const canvas *c, const cn_sim_result *res, int top, int bottom)
{
    fprintf(c->out, "<g class=\"decisions\">\n");
    for (size_t i = 0; i < res->event_count; i++) {
        const cn_sim_event *e = &res->events[i];
        const char *color = mark_color(e->type);
        if (!color)
            continue;
        double x = x_at(c, e->at_ms);
        char d[32];
        cn_format_duration(d, sizeof d, e->at_ms);
        fprintf(c->out, "<line class=\"marker\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                "stroke=\"%s\" stroke-width=\"1.5\" opacity=\"0.7\"><title>%s %s: ", x, top, x,
                bottom, color, d, e->type);
        text_escaped(c->out, e->detail);
        fprintf(c->out, "</title></line>\n");
    }
    fprintf(c->out, "</g>\n");
}

static void legend(FILE *out, int y)
{
    int x = LEFT;
    fprintf(out, "<g class=\"legend\" font-size=\"11\">\n");
    for (size_t i = 0; i < MARK_COUNT; i++) {
        if (!MARKS[i].label)
            continue;
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x, y - 9, x, y + 2,
                MARKS[i].color, x + 4, y, MARKS[i].label);
        x += 12 + 7 * (int)strlen(MARKS[i].label);
    }
    fprintf(out, "</g>\n");
}

int cn_sim_svg(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res,
               const char *title)
{
    size_t metrics = cfg->policy->analysis.metric_count;
    /* A little room after the end, so the last decision is not on the frame. */
    int64_t span = res->duration_ms + res->duration_ms / 50;
    canvas c = {.out = out, .span = span > 0 ? span : 1};
    int weight_top = TOP;
    int panels_top = weight_top + WEIGHT_H + GAP;
    int bottom = panels_top + (int)metrics * (PANEL_H + GAP) - (metrics ? GAP : 0);
    if (!metrics)
        bottom = weight_top + WEIGHT_H;
    int height = bottom + BOTTOM;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n", WIDTH, height, WIDTH,
            height);
    fprintf(out, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">", LEFT);
    text_escaped(out, title ? title : "simulated rollout");
    char d[32];
    cn_format_duration(d, sizeof d, res->duration_ms);
    fprintf(out, " — %s after %s</text>\n", cn_sim_outcome(res), d);
    legend(out, 40);
    time_axis(&c, weight_top, bottom);
    weight_panel(&c, res, weight_top);
    for (size_t m = 0; m < metrics; m++)
        metric_panel(&c, cfg, res, (unsigned)m, panels_top + (int)m * (PANEL_H + GAP));
    markers(&c, res, weight_top, bottom);
    fprintf(out, "</svg>\n");
    return ferror(out) ? CN_EIO : CN_OK;
}
