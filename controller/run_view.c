#include "canary/run_view.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary/actuator.h"
#include "canary/schema.h"
#include "canary/status.h"

#define REDRAW_MS 500
#define BAR_WIDTH 24

typedef struct metric_line {
    bool seen;
    cn_outcome outcome;
    char text[96]; /* the judged evidence, e.g. "0.004 within [-, 0.01]" */
} metric_line;

struct cn_run_view {
    FILE *out;
    cn_view_format format;
    uv_timer_t redraw;
    bool has_timer;
    const cn_engine *engine;
    cn_engine_observer next;
    unsigned block_lines; /* lines of the status block now on screen */
    metric_line metrics[CN_MAX_METRICS];
    char last_decision[320];
    char cause[320]; /* why the rollout started to end: the first rollback or abort */
};

const char *cn_exit_code_meaning(int exit_code)
{
    switch (exit_code) {
    case 0: return "promoted to 100%";
    case 2: return "invalid input";
    case 3: return "rolled back by analysis";
    case 4: return "aborted and rolled back";
    case 5: return "ROLLBACK FAILED: a human must act";
    default: return "internal failure";
    }
}

static void utc_stamp(char *buf, size_t len, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

void cn_weight_bar(char *bar, size_t len, double fraction)
{
    if (!len)
        return;
    size_t width = len - 1;
    size_t filled = (size_t)lround(fraction * (double)width);
    if (fraction > 0 && filled == 0)
        filled = 1;
    for (size_t i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[width] = '\0';
}

/* ---- live status block ---------------------------------------------------- */

static void clear_block(cn_run_view *v)
{
    if (v->block_lines == 0)
        return;
    fprintf(v->out, "\033[%uA\r\033[J", v->block_lines);
    v->block_lines = 0;
}

static void bound_text(char *buf, size_t len, const cn_threshold *t)
{
    if (t->has_min && t->has_max)
        snprintf(buf, len, "[%g, %g]", t->min, t->max);
    else if (t->has_max)
        snprintf(buf, len, "<= %g", t->max);
    else if (t->has_min)
        snprintf(buf, len, ">= %g", t->min);
    else
        snprintf(buf, len, "any");
}

static const char *outcome_word(cn_outcome o)
{
    switch (o) {
    case CN_OUTCOME_PASS: return "pass";
    case CN_OUTCOME_FAIL: return "FAIL";
    case CN_OUTCOME_NODATA: return "no data";
    case CN_OUTCOME_ERROR: return "ERROR";
    }
    return "?";
}

static void draw_block(cn_run_view *v)
{
    if (!v->engine || v->format != CN_VIEW_LIVE)
        return;
    const cn_engine_config *cfg = cn_engine_config_of(v->engine);
    const cn_rollout *r = cn_engine_rollout(v->engine);
    double w = cn_engine_weight(v->engine);
    char bar[BAR_WIDTH + 1];
    cn_weight_bar(bar, sizeof bar, w);
    char wtext[32];
    cn_format_weight(wtext, sizeof wtext, w);
    char bake[48] = "";
    if (r->state == CN_STATE_PROGRESSING && !r->applying && r->stage >= 1) {
        int64_t baked = r->baked_before + ((int64_t)uv_now(cfg->loop) - r->stage_started);
        int64_t left = r->limits.bake_ms - baked;
        char d[24];
        cn_format_duration(d, sizeof d, left > 0 ? (left + 999) / 1000 * 1000 : 0);
        snprintf(bake, sizeof bake, left > 0 ? "  bake %s left" : "  baked, collecting evidence",
                 d);
    }
    unsigned lines = 0;
    fprintf(v->out, "  stage %u/%zu [%s] %6s%%  %s%s\n", r->stage, cfg->plan->stage_count, bar,
            wtext, cn_rollout_state_name(r->state), bake);
    lines++;
    const cn_analysis *an = &cfg->policy->analysis;
    for (size_t i = 0; i < an->metric_count && i < CN_MAX_METRICS; i++) {
        cn_threshold t = cn_analysis_threshold(cfg->policy, i, cfg->ai_assisted);
        char bound[64];
        if (an->metrics[i].judge.enabled)
            snprintf(bound, sizeof bound, "vs baseline"); /* its text holds the score */
        else
            bound_text(bound, sizeof bound, &t);
        const metric_line *m = &v->metrics[i];
        fprintf(v->out, "    %-20.20s %-8s %-12s %.40s\n", an->metrics[i].name,
                m->seen ? outcome_word(m->outcome) : "waiting", bound, m->seen ? m->text : "");
        lines++;
    }
    fflush(v->out);
    v->block_lines = lines;
}

static void on_redraw(uv_timer_t *t)
{
    cn_run_view *v = t->data;
    clear_block(v);
    draw_block(v);
}

/* ---- events ------------------------------------------------------------- */

static void print_json(cn_run_view *v, const cn_engine *e, const cn_store_event *ev, bool stored)
{
    const cn_engine_config *cfg = cn_engine_config_of(e);
    const cn_rollout *r = cn_engine_rollout(e);
    char stamp[40];
    utc_stamp(stamp, sizeof stamp, ev->time_ms);
    json_t *data = ev->data_json ? json_loads(ev->data_json, 0, NULL) : NULL;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:i, s:f, s:b}", "time", stamp,
                          "rollout", cfg->rollout, "type", ev->type, "actor", ev->actor,
                          "detail", ev->detail, "data", data ? data : json_null(), "state",
                          cn_rollout_state_name(r->state), "stage", (int)r->stage, "weight",
                          100 * cn_engine_weight(e), "stored", stored);
    if (o) {
        json_dumpf(o, v->out, JSON_COMPACT | JSON_REAL_PRECISION(10));
        fputc('\n', v->out);
        json_decref(o);
    }
}

static void on_record(void *ctx, const cn_engine *e, const cn_store_event *ev, bool stored)
{
    cn_run_view *v = ctx;
    bool measurement = !strcmp(ev->type, "measurement") || !strcmp(ev->type, "requests");
    if (!measurement)
        snprintf(v->last_decision, sizeof v->last_decision, "%s", ev->detail);
    if (!v->cause[0] && (!strcmp(ev->type, "rolling_back") || !strcmp(ev->type, "aborted") ||
                         !strcmp(ev->type, "actuator_failed")))
        snprintf(v->cause, sizeof v->cause, "%s", ev->detail);
    switch (v->format) {
    case CN_VIEW_JSON:
        print_json(v, e, ev, stored);
        break;
    case CN_VIEW_LINES: {
        char stamp[40];
        utc_stamp(stamp, sizeof stamp, ev->time_ms);
        fprintf(v->out, "%s %-24s %s%s\n", stamp, ev->type, ev->detail,
                stored ? "" : " (NOT STORED)");
        break;
    }
    case CN_VIEW_LIVE:
        /* Measurements show in the block; the log above keeps decisions. */
        clear_block(v);
        if (!measurement || !stored) {
            char stamp[40];
            utc_stamp(stamp, sizeof stamp, ev->time_ms);
            fprintf(v->out, "%.8s %-18s %s%s\n", stamp + 11, ev->type, ev->detail,
                    stored ? "" : " (NOT STORED)");
        }
        draw_block(v);
        break;
    }
    fflush(v->out);
    if (v->next.on_record)
        v->next.on_record(v->next.ctx, e, ev, stored);
}

static void on_reading(void *ctx, const cn_engine *e, size_t metric, const cn_reading *canary,
                       cn_outcome outcome, const char *why)
{
    cn_run_view *v = ctx;
    if (metric < CN_MAX_METRICS) {
        metric_line *m = &v->metrics[metric];
        m->seen = true;
        m->outcome = outcome;
        snprintf(m->text, sizeof m->text, "%s", why);
    }
    if (v->next.on_reading)
        v->next.on_reading(v->next.ctx, e, metric, canary, outcome, why);
}

static void on_finish(void *ctx, const cn_engine *e, int exit_code)
{
    cn_run_view *v = ctx;
    if (v->has_timer)
        uv_timer_stop(&v->redraw);
    clear_block(v);
    draw_block(v);
    v->block_lines = 0; /* the last picture stays on screen */
    v->engine = NULL;   /* the engine may be gone by cn_run_view_finish */
    if (v->next.on_finish)
        v->next.on_finish(v->next.ctx, e, exit_code);
}

cn_engine_observer cn_run_view_observer(cn_run_view *v, const cn_engine_observer *next)
{
    if (next)
        v->next = *next;
    return (cn_engine_observer){.on_record = on_record, .on_reading = on_reading,
                                .on_finish = on_finish, .ctx = v};
}

void cn_run_view_attach(cn_run_view *v, const cn_engine *e)
{
    v->engine = e;
    if (v->has_timer && !cn_engine_finished(e))
        uv_timer_start(&v->redraw, on_redraw, REDRAW_MS, REDRAW_MS);
}

void cn_run_view_finish(cn_run_view *v, int exit_code)
{
    const char *reason = v->cause[0] && exit_code != 0 ? v->cause : v->last_decision;
    if (v->format == CN_VIEW_JSON) {
        json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "type", "result", "exit_code", exit_code,
                              "outcome", cn_exit_code_meaning(exit_code), "reason",
                              reason);
        if (o) {
            json_dumpf(o, v->out, JSON_COMPACT);
            fputc('\n', v->out);
            json_decref(o);
        }
    } else {
        fprintf(v->out, "result: %s (exit %d)%s%s\n", cn_exit_code_meaning(exit_code), exit_code,
                reason[0] ? ": " : "", reason);
    }
    fflush(v->out);
}

void cn_run_view_cause(cn_run_view *v, const char *why)
{
    snprintf(v->cause, sizeof v->cause, "%s", why);
}

void cn_run_view_note(cn_run_view *v, const char *text)
{
    if (v->format == CN_VIEW_JSON) {
        json_t *o = json_pack("{s:s, s:s}", "type", "note", "text", text);
        if (o) {
            json_dumpf(o, v->out, JSON_COMPACT);
            fputc('\n', v->out);
            json_decref(o);
        }
    } else {
        clear_block(v);
        fprintf(v->out, "%s\n", text);
        draw_block(v);
    }
    fflush(v->out);
}

int cn_run_view_new(cn_run_view **out, FILE *stream, cn_view_format format, uv_loop_t *loop)
{
    cn_run_view *v = calloc(1, sizeof *v);
    if (!v)
        return CN_ENOMEM;
    v->out = stream;
    v->format = format;
    if (format == CN_VIEW_LIVE && loop) {
        uv_timer_init(loop, &v->redraw);
        v->redraw.data = v;
        v->has_timer = true;
    }
    *out = v;
    return CN_OK;
}

static void on_view_closed(uv_handle_t *h)
{
    free(h->data);
}

void cn_run_view_close(cn_run_view *v)
{
    if (!v)
        return;
    if (v->has_timer)
        uv_close((uv_handle_t *)&v->redraw, on_view_closed);
    else
        free(v);
}
