#include "demo_story.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/actuator.h"
#include "canary/analysis.h"
#include "canary/schema.h"

#define WRAP 74

void cn_demo_say(cn_run_view *view, const char *fmt, ...)
{
    char text[1024], out[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* Word-wrapped under a "  > " marker, so the words stand apart from
     * the event lines they explain. */
    size_t o = 0;
    const char *p = text;
    bool first = true;
    while (*p && o + 8 < sizeof out) {
        size_t n = strlen(p);
        if (n > WRAP) {
            n = WRAP;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = WRAP;
        }
        int w = snprintf(out + o, sizeof out - o, "%s%s%.*s", first ? "" : "\n",
                         first ? "  > " : "    ", (int)n, p);
        if (w < 0 || (size_t)w >= sizeof out - o)
            break;
        o += (size_t)w;
        p += n;
        while (*p == ' ')
            p++;
        first = false;
    }
    out[o] = '\0';
    if (view) {
        cn_run_view_note(view, out);
    } else {
        printf("%s\n", out);
        fflush(stdout);
    }
}

/* The demo's metrics: ratios shown as percentages, latencies in ms. */
static void metric_text(char *buf, size_t len, const char *metric, double v)
{
    if (strstr(metric, "latency"))
        snprintf(buf, len, "%.0f ms", v);
    else
        snprintf(buf, len, "%.2f%%", 100 * v);
}

static void limit_text(char *buf, size_t len, const char *metric, double v)
{
    if (strstr(metric, "latency"))
        snprintf(buf, len, "%g ms", v);
    else
        snprintf(buf, len, "%g%%", 100 * v);
}

static const char *words_for(const char *metric)
{
    return !strcmp(metric, "error-rate") ? "error rate"
           : !strcmp(metric, "p99-latency-ms") ? "p99 latency" : metric;
}

static double seconds(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1000 : 0;
}

static double stage_weight(const cn_plan *plan, unsigned k)
{
    return k >= 1 && k <= plan->stage_count ? plan->stages[k - 1].weight : 0;
}

/* "3 of 200 hosts" when the topology gives a fleet. */
static void units_text(char *buf, size_t len, const cn_plan *plan, unsigned k)
{
    buf[0] = '\0';
    if (plan->fleet_unit && k >= 1 && k <= plan->stage_count)
        snprintf(buf, len, ", %llu of %llu %s%s", (unsigned long long)plan->stages[k - 1].units,
                 (unsigned long long)plan->fleet_count, plan->fleet_unit,
                 plan->fleet_count == 1 ? "" : "s");
}

static unsigned gate_stage(const cn_plan *plan)
{
    for (size_t i = 0; i < plan->stage_count; i++)
        if (plan->stages[i].approval)
            return (unsigned)i + 1;
    return 0;
}

static void on_stage_applied(cn_demo_story *st, const cn_engine *e)
{
    const cn_planning *pl = st->pl;
    const cn_plan *plan = &pl->plan;
    unsigned k = cn_engine_rollout(e)->stage;
    if (k == 0 || k > plan->stage_count)
        return;
    if (st->last_stage == 0)
        st->exposed_ms = uv_now(st->loop);
    st->last_stage = k;
    char w[32], units[96], bake[24];
    cn_format_weight(w, sizeof w, stage_weight(plan, k));
    units_text(units, sizeof units, plan, k);
    cn_format_duration(bake, sizeof bake, cn_engine_rollout(e)->limits.bake_ms);
    const cn_policy *p = pl->policy;
    if (k == 1) {
        char interval[24];
        cn_format_duration(interval, sizeof interval, p->analysis.interval_ms);
        cn_demo_say(st->view, "%s now serves %s%% of %s's traffic (%.2g%% of all user "
                    "requests%s). canary reads its metrics every %s and widens only after "
                    "%s of bake with at least %u passing samples of each.", pl->change.version,
                    w, pl->change.service, 100 * plan->stages[0].exposed, units, interval, bake,
                    p->plan.min_samples);
    } else if (k == plan->stage_count) {
        cn_demo_say(st->view, "every request to %s now goes to %s: one last %s bake at full "
                    "load before canary calls it done.", pl->change.service, pl->change.version,
                    bake);
    } else {
        cn_demo_say(st->view, "%s%% now (%.2g%% of all user requests%s): a fresh %s bake with "
                    "fresh evidence.", w, 100 * plan->stages[k - 1].exposed, units, bake);
    }
}

/* Keeps a failure in words for the rollback; explains the first sample. */
static void on_measurement(cn_demo_story *st, const cn_store_event *ev)
{
    json_t *d = ev->data_json ? json_loads(ev->data_json, 0, NULL) : NULL;
    const char *metric = json_string_value(json_object_get(d, "metric"));
    const char *outcome = json_string_value(json_object_get(d, "outcome"));
    json_t *value = json_object_get(d, "value"), *base = json_object_get(d, "baseline");
    json_t *max = json_object_get(d, "max");
    if (!metric || !outcome || !json_is_number(value)) {
        json_decref(d);
        return;
    }
    char v[32], b[32] = "", m[32] = "";
    metric_text(v, sizeof v, metric, json_number_value(value));
    if (json_is_number(base))
        metric_text(b, sizeof b, metric, json_number_value(base));
    if (json_is_number(max))
        limit_text(m, sizeof m, metric, json_number_value(max));
    const char *version = st->pl->change.version, *previous = st->pl->change.previous_version;
    if (!strcmp(outcome, "fail")) {
        bool over = json_is_number(max) && json_number_value(value) > json_number_value(max);
        char beside[96] = "";
        if (b[0])
            snprintf(beside, sizeof beside, " (%s: %s)", previous, b);
        snprintf(st->failure, sizeof st->failure, "%s %s of %s is %s%s%s", words_for(metric),
                 v, version, over ? "above the " : "too far above the running version's",
                 over ? m : "", over ? " threshold" : "");
        size_t n = strlen(st->failure);
        snprintf(st->failure + n, sizeof st->failure - n, "%s", beside);
    } else if (!strcmp(outcome, "pass") && !st->measured && b[0] && m[0]) {
        st->measured = true;
        cn_demo_say(st->view, "first sample: %s %s on %s, %s on %s beside it. A pass: under "
                    "the %s limit, and close to what the running version shows.",
                    words_for(metric), v, version, b, previous, m);
    }
    json_decref(d);
}

static void on_promoted(cn_demo_story *st, const cn_engine *e)
{
    const cn_rollout *r = cn_engine_rollout(e);
    const cn_policy *p = st->pl->policy;
    char counts[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < p->analysis.metric_count && i < CN_MAX_METRICS && n < sizeof counts;
         i++) {
        int w = snprintf(counts + n, sizeof counts - n, "%s%u %s", i ? ", " : "",
                         r->tallies[i].passes, words_for(p->analysis.metrics[i].name));
        if (w > 0)
            n += (size_t)w;
    }
    if (r->stage >= st->pl->plan.stage_count) {
        cn_demo_say(st->view, "100%% held for the whole bake (%s samples, all within "
                    "threshold): completing.", counts);
        return;
    }
    char w[32];
    cn_format_weight(w, sizeof w, stage_weight(&st->pl->plan, r->stage + 1));
    cn_demo_say(st->view, "every sample was within threshold for the whole bake (%s passes): "
                "widening to %s%%.", counts, w);
}

static void on_rolled_back(cn_demo_story *st, bool analysis)
{
    const cn_planning *pl = st->pl;
    st->reverted_ms = uv_now(st->loop);
    char w[32], units[96] = "", gate[128] = "";
    cn_format_weight(w, sizeof w, stage_weight(&pl->plan, st->last_stage));
    units_text(units, sizeof units, &pl->plan, st->last_stage);
    unsigned g = gate_stage(&pl->plan);
    if (g > st->last_stage)
        snprintf(gate, sizeof gate, ", and never came near the approval gate at stage %u", g);
    if (st->last_stage == 0 || !analysis) {
        cn_demo_say(st->view, "%s serves 100%% of %s again.", pl->change.previous_version,
                    pl->change.service);
        return;
    }
    cn_demo_say(st->view, "%s serves 100%% of %s again. The fault reached %s%% of its traffic "
                "(stage %u%s) for %.1f s%s.", pl->change.previous_version, pl->change.service, w,
                st->last_stage, units, seconds(st->exposed_ms, st->reverted_ms), gate);
}

void cn_demo_story_record(cn_demo_story *st, const cn_engine *e, const cn_store_event *ev)
{
    const char *type = ev->type;
    const cn_planning *pl = st->pl;
    if (!strcmp(type, "actuator_ok") && st->actuator_told && !*st->actuator_told) {
        *st->actuator_told = true;
        cn_demo_say(st->view, "canary is its own actuator here: it POSTed the stage and weight "
                    "to %s, and the simulated service moved that share of traffic to %s.",
                    st->actuator_url, pl->change.version);
    } else if (!strcmp(type, "stage_applied")) {
        on_stage_applied(st, e);
    } else if (!strcmp(type, "measurement")) {
        on_measurement(st, ev);
    } else if (!strcmp(type, "promoted")) {
        on_promoted(st, e);
    } else if (!strcmp(type, "rolling_back")) {
        if (st->failure[0] && cn_engine_rollout(e)->end == CN_END_ANALYSIS)
            cn_demo_say(st->view, "%s: rolling back before more users are hurt.", st->failure);
        else
            cn_demo_say(st->view, "canary rolls back: the evidence is not good enough to go on.");
    } else if (!strcmp(type, "rolled_back") || !strcmp(type, "aborted")) {
        if (cn_rollout_state_terminal(cn_engine_rollout(e)->state))
            on_rolled_back(st, cn_engine_rollout(e)->end == CN_END_ANALYSIS);
        else if (cn_engine_rollout(e)->end == CN_END_SIGNAL)
            cn_demo_say(st->view, "interrupted: canary puts %s back before it exits, as "
                        "`canary run` does on SIGINT.", pl->change.previous_version);
    } else if (!strcmp(type, "completed")) {
        cn_demo_say(st->view, "%s serves all of %s's traffic: %zu stages in %.1f s, each "
                    "decision stored before it was carried out.", pl->change.version,
                    pl->change.service, pl->plan.stage_count,
                    seconds(st->started_ms, uv_now(st->loop)));
    } else if (!strcmp(type, "awaiting_approval")) {
        cn_demo_say(st->view, "a senior engineer would approve this stage now; the demo has "
                    "nobody to ask, so it stops the rollout here.");
    }
}
