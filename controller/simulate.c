/*
 * simulate.c: a rollout on a virtual clock (see include/canary/simulate.h).
 *
 * The loop stands where the engine's libuv loop stands: it owns the
 * decision timer, the poll timer and the actuator call in flight, picks
 * whichever is due first (the timer before a poll at the same instant, a
 * poll's readings before an actuator call returning then), feeds the event
 * to cn_rollout_step and carries out the actions. Readings come from the
 * trace at the weight the canary serves when the poll is made; a burn
 * rate's windows and a judged metric's samples, which span time, from the
 * weights served over that time (sim_read.c).
 */
#include "canary/simulate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/burn_rate.h"
#include "canary/judge_round.h"
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
    unsigned seen_stage;  /* the stage switch_ms belongs to */
    int64_t switch_ms;    /* when that stage took effect (the engine's stage_wall_ms) */
    cn_trace_samples samples[CN_MAX_METRICS][2]; /* a judged metric's, canary and baseline */
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

/* value and baseline: what the picture shows (NaN: nothing). */
static void add_sample(sim *s, size_t metric, cn_outcome o, double value, double baseline)
{
    cn_sim_result *res = s->res;
    if (!grow((void **)&res->samples, &res->sample_cap, res->sample_count,
              sizeof *res->samples)) {
        s->status = CN_ENOMEM;
        return;
    }
    res->samples[res->sample_count++] = (cn_sim_sample){
        .at_ms = s->now, .metric = (unsigned)metric, .outcome = o, .value = value,
        .baseline = baseline};
}

static double value_of(const cn_reading *r)
{
    return r->kind == CN_READING_VALUE ? r->value : NAN;
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

/* The bake the machine counts for the stage so far, as the engine's
 * stage_baked_ms(). */
static int64_t baked(const sim *s)
{
    int64_t ms = s->r.baked_before + (s->now - s->r.stage_started);
    return ms > 0 ? ms : 0;
}

/* Remembers when the stage being judged took effect, as the engine's
 * track_stage(): a judged metric's baseline at 100% is read from before. */
static void track_stage(sim *s)
{
    if (s->r.stage == s->seen_stage)
        return;
    s->seen_stage = s->r.stage;
    s->switch_ms = s->now - baked(s);
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
    track_stage(s);
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

static void measured(sim *s, size_t metric, cn_outcome o, const char *why)
{
    cn_event ev = {.kind = CN_EVENT_MEASUREMENT, .metric = metric, .outcome = o, .why = why};
    step(s, &ev);
}

/* A burn-rate metric: its windows scaled to the stage's bake, each read
 * over [now - window, now] (cn_trace_window), judged as the engine judges
 * them. stage: the stage when the poll was made. */
static void burn_poll(sim *s, size_t i, unsigned stage)
{
    const cn_sim_config *c = s->cfg;
    const cn_burn_rate *b = &c->policy->analysis.metrics[i].burn;
    cn_burn_windows w;
    cn_burn_scale(b, cn_burn_stage_bake(c->plan, stage), c->policy->analysis.interval_ms, &w);
    cn_reading errors[CN_BURN_MAX_WINDOWS], total[CN_BURN_MAX_WINDOWS];
    for (size_t k = 0; k < w.window_count; k++)
        cn_trace_window(c->trace, (long)i, s->now - w.window_ms[k], s->now,
                        s->res->steps, s->res->step_count, &errors[k], &total[k]);
    cn_burn_result res;
    char why[256];
    cn_outcome o = cn_burn_judge(b, &w, errors, total, &res, why, sizeof why);
    cn_reading shown = cn_burn_shown(o, &res, why);
    add_sample(s, i, o, value_of(&shown), NAN);
    measured(s, i, o, why);
}

/* What the judged metrics' range queries read at the poll's start. */
typedef struct round_reads {
    size_t count;
    size_t metric[CN_MAX_METRICS];
    cn_reading sides[CN_MAX_METRICS][2];
} round_reads;

static int64_t ms_of(double seconds)
{
    return (int64_t)llround(seconds * 1000);
}

/* Each judged metric's samples, over the windows the engine would ask
 * for now (cn_round_windows_at). CN_OK or CN_ENOMEM. */
static int read_round(sim *s, round_reads *rr)
{
    const cn_sim_config *c = s->cfg;
    const cn_policy *p = c->policy;
    const cn_rollout *r = &s->r;
    bool full = r->stage >= 1 && r->stage <= c->plan->stage_count &&
                c->plan->stages[r->stage - 1].weight >= 1.0;
    rr->count = 0;
    for (size_t i = 0; i < p->analysis.metric_count && i < CN_MAX_METRICS; i++) {
        const cn_metric *m = &p->analysis.metrics[i];
        if (!m->judge.enabled)
            continue;
        int64_t step_ms = cn_round_step_ms(m, p->analysis.interval_ms);
        cn_round_windows w = cn_round_windows_at((double)s->now / 1000, (double)baked(s) / 1000,
                                                 (double)s->switch_ms / 1000, full,
                                                 (double)step_ms / 1000);
        size_t k = rr->count++;
        rr->metric[k] = i;
        const double from[2] = {w.canary_start, w.baseline_start};
        const double to[2] = {w.canary_end, w.baseline_end};
        for (int side = 0; side < 2; side++)
            if (cn_trace_range(c->trace, (long)i, side == 1, ms_of(from[side]), ms_of(to[side]),
                               step_ms, s->res->steps, s->res->step_count, &s->samples[i][side],
                               &rr->sides[k][side]) != CN_OK)
                return CN_ENOMEM;
    }
    return CN_OK;
}

/* The round (cn_round_run), fed to the machine in its report order. */
static void judge_round(sim *s, const round_reads *rr)
{
    const cn_policy *p = s->cfg->policy;
    cn_round_input in[CN_MAX_METRICS];
    for (size_t k = 0; k < rr->count; k++) {
        size_t i = rr->metric[k];
        const cn_metric *m = &p->analysis.metrics[i];
        in[k] = (cn_round_input){.name = m->name, .group = m->judge.group,
                                 .config = &m->judge.config, .canary = &rr->sides[k][0],
                                 .baseline = &rr->sides[k][1],
                                 .canary_values = s->samples[i][0].values,
                                 .baseline_values = s->samples[i][1].values,
                                 .canary_count = s->samples[i][0].count,
                                 .baseline_count = s->samples[i][1].count};
    }
    cn_round round;
    if (cn_round_run(&round, in, rr->count, &p->analysis.judge) != CN_OK) {
        s->status = CN_ENOMEM;
        return;
    }
    cn_reading shown = cn_round_shown(&round.summary);
    for (size_t j = 0; j < round.count && !s->res->finished; j++) {
        const cn_round_metric *m = &round.metrics[round.order[j]];
        size_t i = rr->metric[round.order[j]];
        add_sample(s, i, m->outcome, value_of(&shown), NAN);
        measured(s, i, m->outcome, m->why);
    }
    cn_round_free(&round);
}

/* One poll, in the order the engine sends its requests at a tick: every
 * metric that is not judged, in policy order (a burn rate's windows
 * together), then min_requests, then the round of the judged metrics.
 * Everything is read as of the tick: the weight served then, the stage's
 * windows then; the replies still come (and are judged) after a decision
 * one of them causes. */
static void poll(sim *s)
{
    const cn_sim_config *c = s->cfg;
    const cn_policy *p = c->policy;
    s->next_poll = s->now + interval(s);
    double w = cn_rollout_weight(&s->r, c->plan);
    unsigned stage = s->r.stage;
    round_reads rr;
    if (read_round(s, &rr) != CN_OK) {
        s->status = CN_ENOMEM;
        return;
    }
    for (size_t i = 0; i < p->analysis.metric_count && !s->res->finished; i++) {
        const cn_metric *m = &p->analysis.metrics[i];
        if (m->judge.enabled)
            continue;
        if (m->burn.enabled) {
            burn_poll(s, i, stage);
            continue;
        }
        cn_reading canary, baseline;
        cn_trace_reading(c->trace, (long)i, s->now, w, &canary, &baseline);
        char why[256];
        cn_outcome o = cn_analysis_judge_poll(p, i, c->ai_assisted, w, &canary, &baseline, why,
                                              sizeof why);
        add_sample(s, i, o, value_of(&canary), value_of(&baseline));
        measured(s, i, o, why);
    }
    if (p->analysis.min_requests.count > 0 && !s->res->finished) {
        cn_reading canary, baseline;
        cn_trace_reading(c->trace, -1, s->now, w, &canary, &baseline);
        cn_event ev = {.kind = CN_EVENT_REQUESTS,
                       .requests = cn_analysis_request_count(&canary)};
        step(s, &ev);
    }
    if (rr.count && !s->res->finished)
        judge_round(s, &rr);
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

/* A burn-rate metric: the share of the canary's requests that fail, when
 * that ratio, held over both windows of a pair, would fire it: above the
 * budget times the smallest factor in force. (Above the budget alone
 * would count every healthy rollout of a service whose old version
 * already errs more than its SLO allows, where no poll could fail.) */
static double burn_severity(const cn_burn_rate *b, const cn_reading *canary)
{
    size_t n;
    const cn_burn_window *pairs = cn_burn_pairs(b, &n);
    double factor = INFINITY;
    for (size_t i = 0; i < n; i++)
        factor = fmin(factor, pairs[i].factor);
    double r = canary->value;
    if (canary->kind != CN_READING_VALUE || !isfinite(r) || !(r > factor * (1 - b->slo)))
        return 0;
    return r > 1 ? 1 : r;
}

/* A judged metric: 1 when the canary's value is on the side its direction
 * fails by at least the allowed effect, measured on this one pair of
 * values the way the judge measures a sample (mean ratio: value /
 * baseline; cles: 1, 1/2 or 0 as value is above, equal to or below). */
static double judged_severity(const cn_judge_config *c, const cn_reading *canary,
                              const cn_reading *baseline)
{
    if (canary->kind != CN_READING_VALUE || baseline->kind != CN_READING_VALUE ||
        !isfinite(canary->value) || !isfinite(baseline->value))
        return 0;
    double v = canary->value, b = baseline->value;
    bool cles = c->effect == CN_EFFECT_CLES;
    double none = cles ? 0.5 : 1;
    double effect = cles ? (v > b ? 1 : v < b ? 0 : 0.5)
                    : b != 0 ? v / b : v > 0 ? INFINITY : v < 0 ? -INFINITY : 1;
    double up = isnan(c->allowed_increase) ? none : c->allowed_increase;
    double down = isnan(c->allowed_decrease) ? none : c->allowed_decrease;
    bool high = c->direction != CN_DIRECTION_DECREASE && v > b && effect >= up;
    bool low = c->direction != CN_DIRECTION_INCREASE && v < b && effect <= down;
    return high || low ? 1 : 0;
}

double cn_sim_severity(const cn_sim_config *cfg, int64_t at_ms, double weight)
{
    const cn_policy *p = cfg->policy;
    double worst = 0;
    for (size_t i = 0; i < p->analysis.metric_count && worst < 1; i++) {
        const cn_metric *m = &p->analysis.metrics[i];
        cn_reading canary, baseline;
        cn_trace_reading(cfg->trace, (long)i, at_ms, weight, &canary, &baseline);
        double sev = 0;
        if (m->burn.enabled) {
            sev = burn_severity(&m->burn, &canary);
        } else if (m->judge.enabled) {
            sev = judged_severity(&m->judge.config, &canary, &baseline);
        } else if (cn_analysis_judge_poll(p, i, cfg->ai_assisted, weight, &canary, &baseline,
                                          NULL, 0) == CN_OUTCOME_FAIL) {
            cn_threshold t = cn_analysis_threshold(p, i, cfg->ai_assisted);
            sev = 1;
            if (t.has_max && !t.has_min && t.max <= 1)
                sev = canary.value < 0 ? 0 : canary.value > 1 ? 1 : canary.value;
        }
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
    sim s = {.cfg = cfg, .res = res, .status = CN_OK};
    s.rc = (cn_rollout_config){.plan = cfg->plan, .policy = cfg->policy,
                               .ai_assisted = cfg->ai_assisted, .author = cfg->author};
    if (cn_rollout_init(&s.r, &s.rc) != CN_OK)
        return cn_set_err(err, errlen, CN_EINVAL, "the plan cannot be driven: it needs 1 to %d "
                          "stages and at most %d metrics", CN_MAX_STAGES, CN_MAX_METRICS);
    track_weight(&s);
    run(&s);
    for (size_t i = 0; i < CN_MAX_METRICS; i++)
        for (int side = 0; side < 2; side++)
            free(s.samples[i][side].values);
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
