/*
 * simulate.c: a rollout on a virtual clock (see include/canary/simulate.h).
 *
 * The loop stands where the engine's libuv loop stands: it owns the
 * decision timer, the poll timer and the actuator call in flight, picks
 * whichever is due first (the timer before a poll at the same instant, a
 * poll's readings before an actuator call returning then), feeds the event
 * to cn_rollout_step and carries out the actions. Readings come from the
 * trace at the weight the canary serves when the poll is made.
 */
#include "canary/simulate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h"
#include "canary/status.h"

typedef struct sim {
    const cn_sim_config *cfg;
    cn_rollout_config rc;
    cn_rollout r;
    cn_sim_result *res;
    int64_t now;
    bool polling, timing, applying;
    int64_t next_poll, timer_at, applied_at;
    bool waiting;
    int64_t wait_since;
    int status; /* CN_ENOMEM once an array could not grow */
} sim;

/* Grows *v (of *cap elements of size) to hold n + 1. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(*v, c * size);
    if (!p)
        return false;
    *v = p;
    *cap = c;
    return true;
}

static void add_event(sim *s, const char *type, const char *detail)
{
    cn_sim_result *res = s->res;
    char *copy = strdup(detail);
    if (!copy || !grow((void **)&res->events, &res->event_cap, res->event_count,
                       sizeof *res->events)) {
        free(copy);
        s->status = CN_ENOMEM;
        return;
    }
    cn_sim_event *e = &res->events[res->event_count++];
    e->at_ms = s->now;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->detail = copy;
}

static void add_sample(sim *s, size_t metric, cn_outcome o, const cn_reading *c,
                       const cn_reading *b)
{
    cn_sim_result *res = s->res;
    if (!grow((void **)&res->samples, &res->sample_cap, res->sample_count,
              sizeof *res->samples)) {
        s->status = CN_ENOMEM;
        return;
    }
    res->samples[res->sample_count++] = (cn_sim_sample){
        .at_ms = s->now, .metric = (unsigned)metric, .outcome = o,
        .value = c->kind == CN_READING_VALUE ? c->value : NAN,
        .baseline = b->kind == CN_READING_VALUE ? b->value : NAN};
}

static void track_weight(sim *s)
{
    cn_sim_result *res = s->res;
    double w = cn_rollout_weight(&s->r, s->cfg->plan);
    if (w > res->max_weight)
        res->max_weight = w;
    if (res->step_count && res->steps[res->step_count - 1].weight == w)
        return;
    if (res->step_count && res->steps[res->step_count - 1].at_ms == s->now) {
        res->steps[res->step_count - 1].weight = w; /* moved twice at one instant */
        return;
    }
    if (!grow((void **)&res->steps, &res->step_cap, res->step_count, sizeof *res->steps)) {
        s->status = CN_ENOMEM;
        return;
    }
    res->steps[res->step_count++] = (cn_sim_step){s->now, w};
}

static bool is_waiting(const cn_rollout *r)
{
    return !r->applying &&
           (r->state == CN_STATE_PAUSED || r->state == CN_STATE_AWAITING_APPROVAL);
}

static int64_t interval(const sim *s)
{
    int64_t iv = s->cfg->policy->analysis.interval_ms;
    return iv > 0 ? iv : 1000;
}

/* One event through the machine, and its actions carried out in order, as
 * the engine's step() does. */
static void step(sim *s, const cn_event *ev)
{
    if (s->res->finished)
        return;
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    size_t n = cn_rollout_step(&s->r, &s->rc, ev, s->now, out, CN_ROLLOUT_MAX_ACTIONS);
    for (size_t i = 0; i < n && !s->res->finished; i++) {
        const cn_action *a = &out[i];
        switch (a->kind) {
        case CN_ACTION_RECORD:
            add_event(s, a->type, a->detail);
            break;
        case CN_ACTION_APPLY:
            s->applying = true;
            s->applied_at = s->now + s->cfg->actuator_ms;
            break;
        case CN_ACTION_START_POLLING:
            s->polling = true;
            s->next_poll = s->now + interval(s);
            break;
        case CN_ACTION_STOP_POLLING:
            s->polling = false;
            break;
        case CN_ACTION_ARM_TIMER:
            s->timing = true;
            s->timer_at = a->at > s->now ? a->at : s->now;
            break;
        case CN_ACTION_FINISH:
            s->res->finished = true;
            s->res->exit_code = a->exit_code;
            s->polling = s->timing = s->applying = false;
            break;
        }
    }
    track_weight(s);
    bool waiting = is_waiting(&s->r);
    if (waiting && !s->waiting)
        s->wait_since = s->now;
    s->waiting = waiting;
}

/* Every metric of the policy, then min_requests, read at the weight served
 * when the poll is made: the engine sends all requests at the tick, and
 * the replies still come (and are judged) after a decision they cause. */
static void poll(sim *s)
{
    const cn_sim_config *c = s->cfg;
    const cn_policy *p = c->policy;
    s->next_poll = s->now + interval(s);
    double w = cn_rollout_weight(&s->r, c->plan);
    for (size_t i = 0; i < p->analysis.metric_count && !s->res->finished; i++) {
        cn_reading canary, baseline;
        cn_trace_reading(c->trace, (long)i, s->now, w, &canary, &baseline);
        char why[256];
        cn_outcome o = cn_analysis_judge_poll(p, i, c->ai_assisted, w, &canary, &baseline, why,
                                              sizeof why);
        add_sample(s, i, o, &canary, &baseline);
        cn_event ev = {.kind = CN_EVENT_MEASUREMENT, .metric = i, .outcome = o, .why = why};
        step(s, &ev);
    }
    if (p->analysis.min_requests.count > 0 && !s->res->finished) {
        cn_reading canary, baseline;
        cn_trace_reading(c->trace, -1, s->now, w, &canary, &baseline);
        cn_event ev = {.kind = CN_EVENT_REQUESTS,
                       .requests = cn_analysis_request_count(&canary)};
        step(s, &ev);
    }
}

int64_t cn_sim_default_hold(const cn_sim_config *cfg)
{
    int64_t longest = 0;
    for (size_t k = 0; k < cfg->plan->stage_count; k++) {
        cn_stage_limits l = cn_analysis_limits(cfg->policy, cfg->plan->stages[k].bake_ms,
                                               cfg->ai_assisted);
        if (l.max_bake_ms > longest)
            longest = l.max_bake_ms;
    }
    int64_t timeout = cfg->policy->ai.approval_timeout_ms;
    return longest + (timeout > 0 ? timeout : 0);
}

typedef enum { STOP_WAITING, STOP_UNTIL, STOP_STUCK } stop_kind;

/* Ends the simulation at `at` with the rollout left as it is, and says why. */
static void stop_at(sim *s, int64_t at, stop_kind kind)
{
    if (at > s->now)
        s->now = at;
    s->res->bounded = true;
    char d[32];
    const cn_rollout *r = &s->r;
    char *note = s->res->note;
    size_t len = sizeof s->res->note;
    if (kind == STOP_STUCK) {
        snprintf(note, len, "nothing more can happen: %s at stage %u with no timer, poll or "
                 "actuator call due", cn_rollout_state_name(r->state), r->stage);
    } else if (kind == STOP_UNTIL) {
        cn_format_duration(d, sizeof d, s->now);
        snprintf(note, len, "the virtual clock reached its limit (%s) with the rollout still %s "
                 "at stage %u", d, cn_rollout_state_name(r->state), r->stage);
    } else if (r->state == CN_STATE_PAUSED) {
        cn_format_duration(d, sizeof d, s->now - s->wait_since);
        snprintf(note, len, "still paused at stage %u after %s: nobody resumes or aborts in a "
                 "simulation; a person must act", r->stage, d);
    } else {
        cn_format_duration(d, sizeof d, s->now - s->wait_since);
        snprintf(note, len, "still awaiting approval of stage %u after %s: nobody approves in "
                 "a simulation", r->stage + 1, d);
    }
}

enum { DUE_NONE, DUE_TIMER, DUE_POLL, DUE_APPLIED };

static void run(sim *s)
{
    const cn_sim_config *c = s->cfg;
    int64_t until = c->until_ms > 0 ? c->until_ms : CN_SIM_UNTIL_MS;
    int64_t hold = c->hold_ms >= 0 ? c->hold_ms : cn_sim_default_hold(c);
    cn_event start = {.kind = CN_EVENT_START};
    step(s, &start);
    while (!s->res->finished && s->status == CN_OK) {
        int due = DUE_NONE;
        int64_t t = INT64_MAX;
        /* Strict comparisons: at one instant the timer comes first, then a
         * poll, then an actuator call returning. */
        if (s->timing && s->timer_at < t) {
            t = s->timer_at;
            due = DUE_TIMER;
        }
        if (s->polling && s->next_poll < t) {
            t = s->next_poll;
            due = DUE_POLL;
        }
        if (s->applying && s->applied_at < t) {
            t = s->applied_at;
            due = DUE_APPLIED;
        }
        if (s->waiting) {
            int64_t from = s->wait_since > c->trace->end_ms ? s->wait_since : c->trace->end_ms;
            int64_t bound = from + hold;
            if (bound < until && (due == DUE_NONE || t > bound)) {
                stop_at(s, bound, STOP_WAITING);
                return;
            }
        }
        if (due == DUE_NONE && !s->waiting) {
            stop_at(s, s->now, STOP_STUCK); /* not reachable from the machine's states */
            return;
        }
        if (due == DUE_NONE || t > until) {
            stop_at(s, until, STOP_UNTIL);
            return;
        }
        s->now = t;
        if (due == DUE_TIMER) {
            s->timing = false;
            cn_event ev = {.kind = CN_EVENT_TIMER};
            step(s, &ev);
        } else if (due == DUE_POLL) {
            poll(s);
        } else {
            s->applying = false;
            cn_event ev = {.kind = CN_EVENT_APPLIED, .ok = true, .why = "applied after 1 attempt"};
            step(s, &ev);
        }
    }
}

/* ---- exposure and impact ------------------------------------------------- */

double cn_sim_severity(const cn_sim_config *cfg, int64_t at_ms, double weight)
{
    const cn_policy *p = cfg->policy;
    double worst = 0;
    for (size_t i = 0; i < p->analysis.metric_count && worst < 1; i++) {
        cn_reading canary, baseline;
        cn_trace_reading(cfg->trace, (long)i, at_ms, weight, &canary, &baseline);
        if (cn_analysis_judge_poll(p, i, cfg->ai_assisted, weight, &canary, &baseline, NULL,
                                   0) != CN_OUTCOME_FAIL)
            continue;
        cn_threshold t = cn_analysis_threshold(p, i, cfg->ai_assisted);
        double sev = 1;
        if (t.has_max && !t.has_min && t.max <= 1)
            sev = canary.value < 0 ? 0 : canary.value > 1 ? 1 : canary.value;
        if (sev > worst)
            worst = sev;
    }
    return worst;
}

static int cmp_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Integrates weight over [0, duration], and weight x reach x severity over
 * [0, impact_until]: both are constant between a weight step and a trace
 * row, so the sum over those pieces is exact. A rollout that ended keeps
 * its last weight (0 rolled back, 100% completed) to the trace's end: a
 * fault promoted to 100% goes on hurting after the rollout is over. */
static int integrate(const cn_sim_config *cfg, cn_sim_result *res)
{
    int64_t end = res->duration_ms;
    res->impact_until_ms = res->finished && cfg->trace->end_ms > end ? cfg->trace->end_ms : end;
    int64_t until = res->impact_until_ms;
    size_t rows = 0;
    for (size_t i = 0; i < cfg->trace->count; i++)
        rows += cfg->trace->series[i].count;
    size_t n = 0;
    int64_t *cuts = malloc((rows + res->step_count + 3) * sizeof *cuts);
    if (!cuts)
        return CN_ENOMEM;
    cuts[n++] = 0;
    cuts[n++] = end;
    cuts[n++] = until;
    for (size_t i = 0; i < res->step_count; i++)
        cuts[n++] = res->steps[i].at_ms;
    for (size_t i = 0; i < cfg->trace->count; i++)
        for (size_t k = 0; k < cfg->trace->series[i].count; k++)
            cuts[n++] = cfg->trace->series[i].rows[k].at_ms;
    qsort(cuts, n, sizeof *cuts, cmp_ms);
    double exposure = 0, impact = 0;
    size_t step = 0;
    for (size_t i = 0; i + 1 < n && cuts[i] < until; i++) {
        int64_t a = cuts[i], b = cuts[i + 1] < until ? cuts[i + 1] : until;
        if (b <= a)
            continue;
        while (step + 1 < res->step_count && res->steps[step + 1].at_ms <= a)
            step++;
        double w = res->step_count ? res->steps[step].weight : 0;
        if (w <= 0)
            continue;
        double seconds = (double)(b - a) / 1000;
        if (a < end)
            exposure += 100 * w * seconds;
        impact += 100 * w * cfg->reach * cn_sim_severity(cfg, a, w) * seconds;
    }
    free(cuts);
    res->exposure = exposure;
    res->impact = impact;
    return CN_OK;
}

/* ---- entry points --------------------------------------------------------- */

int cn_simulate(const cn_sim_config *cfg, cn_sim_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    if (!cfg || !cfg->plan || !cfg->policy || !cfg->trace)
        return cn_set_err(err, errlen, CN_EINVAL, "simulate: incomplete configuration");
    /* Burn-rate windows and judged samples are not in a trace, which holds
     * one value per metric: say so rather than judge them wrongly. */
    for (size_t i = 0; i < cfg->policy->analysis.metric_count; i++)
        if (cfg->policy->analysis.metrics[i].burn.enabled ||
            cfg->policy->analysis.metrics[i].judge.enabled)
            return cn_set_err(err, errlen, CN_EINVAL, "metric '%s' is a %s metric: canary "
                              "simulate does not model it yet; simulate with a policy whose "
                              "metrics are thresholds", cfg->policy->analysis.metrics[i].name,
                              cfg->policy->analysis.metrics[i].burn.enabled ? "burn_rate"
                                                                             : "judged");
    sim s = {.cfg = cfg, .res = res, .status = CN_OK};
    s.rc = (cn_rollout_config){.plan = cfg->plan, .policy = cfg->policy,
                               .ai_assisted = cfg->ai_assisted, .author = cfg->author};
    if (cn_rollout_init(&s.r, &s.rc) != CN_OK)
        return cn_set_err(err, errlen, CN_EINVAL, "the plan cannot be driven: it needs 1 to %d "
                          "stages and at most %d metrics", CN_MAX_STAGES, CN_MAX_METRICS);
    track_weight(&s);
    run(&s);
    res->state = s.r.state;
    if (!res->finished)
        res->exit_code = -1;
    res->duration_ms = s.now;
    if (s.status != CN_OK)
        return cn_set_err(err, errlen, s.status, "simulate: out of memory");
    if (integrate(cfg, res) != CN_OK)
        return cn_set_err(err, errlen, CN_ENOMEM, "simulate: out of memory");
    return CN_OK;
}

void cn_sim_result_free(cn_sim_result *res)
{
    for (size_t i = 0; i < res->event_count; i++)
        free(res->events[i].detail);
    free(res->events);
    free(res->samples);
    free(res->steps);
    memset(res, 0, sizeof *res);
}

const char *cn_sim_outcome(const cn_sim_result *res)
{
    return cn_rollout_state_name(res->state);
}
