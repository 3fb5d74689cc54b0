#include "canary/engine.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/actuator.h"
#include "canary/burn_rate.h"
#include "canary/judge_round.h"
#include "canary/provider.h"
#include "canary/status.h"

typedef struct burn_poll burn_poll;

/* One source polled per tick: a metric (canary and maybe baseline, or a
 * burn rate's queries) or the min_requests count. A tick skips a slot
 * whose last poll is still out, so polls never pile up behind a slow
 * provider. */
typedef struct poll_slot {
    struct cn_engine *e;
    long metric;           /* index in the policy, -1 for min_requests */
    const cn_source *src;
    bool baseline;         /* the metric compares with {{previous_version}} */
    bool compared;         /* ...and this poll does (not at 100%) */
    double weight;         /* the stage's weight when this poll was made */
    char **headers;
    size_t header_count;
    unsigned outstanding;  /* replies still to come */
    uint64_t ids[2];
    cn_reading readings[2]; /* canary, baseline */
    burn_poll *burn;       /* a burn-rate metric's requests; NULL for others */
    bool judged;           /* a judged metric: range queries, judged in a round */
    cn_round_windows window; /* judged: the times its samples are asked for */
    double *values[2];     /* judged: each side's samples (malloc'd) */
    size_t counts[2];
} poll_slot;

/* A request's context: which slot and which side of it (for a burn rate,
 * which of its requests). */
typedef struct poll_request {
    poll_slot *slot;
    unsigned side;
} poll_request;

/* A burn-rate metric polls errors and total over each distinct window of
 * its stage (request 2i and 2i+1 for window i), all at once. */
struct burn_poll {
    cn_burn_windows windows; /* as scaled when the poll started */
    char names[CN_BURN_MAX_WINDOWS][24];
    uint64_t ids[2 * CN_BURN_MAX_WINDOWS];
    cn_reading errors[CN_BURN_MAX_WINDOWS], total[CN_BURN_MAX_WINDOWS];
    poll_request requests[2 * CN_BURN_MAX_WINDOWS];
};

struct cn_engine {
    cn_engine_config cfg;
    cn_rollout_config rc;
    cn_rollout r;
    uv_timer_t decide_timer;
    uv_timer_t poll_timer;
    uv_timer_t refused_timer; /* reports an actuator call that was not made */
    uv_timer_t operator_timer; /* operators' intents, and the lease's heartbeat */
    uv_timer_t flush_timer;    /* writes the evidence a deferring store holds */
    int64_t renewed_ms;       /* the lease's last heartbeat (wall clock) */
    int64_t data_version;     /* the store's, when intents were last read */
    const char *actor;        /* who the step under way acts for: NULL is "canary" */
    bool capture;             /* keep the first record (an intent's result) */
    char result[400];
    char stop_reason[320];
    char refused_why[256];
    unsigned open_handles;
    bool closing;
    cn_actuator_call *call;
    poll_slot *slots;
    size_t slot_count;
    poll_request *requests; /* 2 per slot */
    unsigned round_pending; /* judged metrics whose samples are still out */
    unsigned seen_stage;    /* the stage stage_wall_ms belongs to */
    int64_t stage_wall_ms;  /* when that stage's weight took effect (wall clock) */
    bool stepping;
    bool shutdown_due, shutdown_detach;
    bool store_failed;
    bool stopped_for_store; /* the stop after a failed record is asked once */
    bool finished;
    int exit_code;
    double weight;
    const char *record_data; /* structured evidence for the step's first record */
};

static int64_t wall_ms(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void step(cn_engine *e, const cn_event *ev);

/* ---- the store ------------------------------------------------------------ */

static double stage_weight(const cn_engine *e, unsigned stage)
{
    if (stage == 0 || stage > e->cfg.plan->stage_count)
        return 0;
    return e->cfg.plan->stages[stage - 1].weight;
}

/* The bake the machine counts for the stage so far (a pause's time
 * counts while it lasts; see rollout.c). */
static int64_t stage_baked_ms(const cn_engine *e)
{
    int64_t ms = e->r.baked_before + ((int64_t)uv_now(e->cfg.loop) - e->r.stage_started);
    return ms > 0 ? ms : 0;
}

static char *machine_json(const cn_engine *e)
{
    cn_rollout_snapshot snap = cn_rollout_save(&e->r, (int64_t)uv_now(e->cfg.loop));
    return cn_rollout_snapshot_json(&snap);
}

/* The store failed: e->store_failed is set for good, and the engine stops
 * as on a signal once the step under way is done (a failure outside a step
 * is acted on after the next one, when the call in flight has returned). */
static void store_failure(cn_engine *e)
{
    e->store_failed = true;
    if (!e->stopped_for_store) {
        e->stopped_for_store = true;
        e->shutdown_due = true;
        e->shutdown_detach = false;
    }
}

/* Writes the measurements the store holds (of every rollout sharing it).
 * A failure stops this rollout as a failed record would; the others find
 * it at their next record, which retries the write first. */
static void flush_held(cn_engine *e)
{
    char err[256] = "";
    if (cn_store_flush(e->cfg.store, err, sizeof err) == CN_OK)
        return;
    if (!e->stop_reason[0])
        snprintf(e->stop_reason, sizeof e->stop_reason, "%s", err);
    store_failure(e);
}

static void on_flush_timer(uv_timer_t *t);

/* The store's flush is due CN_STORE_FLUSH_MS after the oldest event it
 * holds, whichever engine holds it: each engine that held one keeps a
 * timer for that moment, and the first to reach it writes them all, so
 * that a thousand rollouts share one commit instead of each flushing its
 * own CN_STORE_FLUSH_MS later. */
static void arm_flush(cn_engine *e)
{
    int64_t since = cn_store_held_since(e->cfg.store);
    if (since < 0 || e->finished)
        return;
    int64_t wait = since + CN_STORE_FLUSH_MS - wall_ms();
    uv_timer_start(&e->flush_timer, on_flush_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* A failure here is acted on at the rollout's next step, as one of a
 * record made outside a step. */
static void on_flush_timer(uv_timer_t *t)
{
    cn_engine *e = t->data;
    int64_t since = cn_store_held_since(e->cfg.store);
    if (e->finished || since < 0)
        return;
    if (wall_ms() - since >= CN_STORE_FLUSH_MS)
        flush_held(e);
    else
        arm_flush(e); /* written meanwhile; what is held now is younger */
}

/* Writes one event with the rollout's state after it. When the store
 * fails, e->store_failed is set for good: from then on apply() moves the
 * canary only back, and the engine stops as on a signal. */
static void record(cn_engine *e, const char *type, const char *actor, const char *detail,
                   const char *data)
{
    /* A measurement announces no action; whatever decision follows from it is
     * a record of its own, durable, which carries this one to disk too. */
    bool evidence = !strcmp(type, "measurement") || !strcmp(type, "requests") ||
                    !strcmp(type, "late_measurement");
    cn_store_event ev = {.time_ms = wall_ms(), .type = type, .actor = actor,
                         .detail = detail, .data_json = data, .evidence_only = evidence};
    /* Evidence changes no state the snapshot holds: keep the stored one. */
    char *machine = evidence ? NULL : machine_json(e);
    /* The exit code stored is the one the run ends with (see finish()). */
    int code = e->store_failed && e->r.exit_code != 5 ? 1 : e->r.exit_code;
    cn_store_state st = {.state = cn_rollout_state_name(e->r.state), .stage = e->r.stage,
                         .weight = e->weight,
                         .exit_code = cn_rollout_state_terminal(e->r.state) ? code : -1,
                         .machine_json = machine};
    char err[256] = "";
    if (e->capture && !e->result[0])
        snprintf(e->result, sizeof e->result, "%s: %s", type, detail);
    bool ok = cn_store_record(e->cfg.store, e->cfg.rollout, &ev, &st, NULL, err,
                              sizeof err) == CN_OK;
    free(machine);
    /* A deferring store held it: written within CN_STORE_FLUSH_MS, by the
     * next record of any rollout or by this timer. */
    if (ok && evidence && !uv_is_active((uv_handle_t *)&e->flush_timer))
        arm_flush(e);
    if (!ok) {
        /* Keep the store's reason where a person will look for it. */
        char why[640];
        snprintf(why, sizeof why, "%s [NOT STORED: %s]", detail, err);
        ev.detail = why;
        /* Whichever record failed (the machine's, an actuator call's or an
         * attempt's). */
        store_failure(e);
        if (e->cfg.observer.on_record)
            e->cfg.observer.on_record(e->cfg.observer.ctx, e, &ev, false);
        return;
    }
    if (e->cfg.observer.on_record)
        e->cfg.observer.on_record(e->cfg.observer.ctx, e, &ev, true);
}

/* ---- actuator ----------------------------------------------------------- */

static void on_attempt(void *ctx, const cn_attempt *a)
{
    cn_engine *e = ctx;
    char detail[512];
    char retry[48] = "";
    if (!a->last) {
        char d[24];
        cn_format_duration(d, sizeof d, a->retry_in_ms);
        snprintf(retry, sizeof retry, "; retry in %s", d);
    }
    snprintf(detail, sizeof detail, "attempt %u: %s%s%s%s", a->number, a->what, retry,
             a->output && *a->output ? "; output: " : "", a->output ? a->output : "");
    json_t *j = json_pack("{s:i, s:b, s:s, s:s}", "attempt", (int)a->number, "ok", a->ok,
                          "what", a->what ? a->what : "", "output", a->output ? a->output : "");
    char *data = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    record(e, a->ok ? "actuator_ok" : "actuator_failed_attempt", "canary", detail, data);
    free(data);
}

static void on_actuated(void *ctx, bool ok, unsigned attempts)
{
    cn_engine *e = ctx;
    e->call = NULL;
    char why[64];
    snprintf(why, sizeof why, "%s after %u attempt%s", ok ? "applied" : "not applied",
             attempts, attempts == 1 ? "" : "s");
    cn_event ev = {.kind = CN_EVENT_APPLIED, .ok = ok, .why = why};
    step(e, &ev);
}

static void on_refused_timer(uv_timer_t *t)
{
    cn_engine *e = t->data;
    cn_event ev = {.kind = CN_EVENT_APPLIED, .ok = false, .why = e->refused_why};
    step(e, &ev);
}

/* Tells the state machine, from the loop and never from inside a step, that
 * the call it asked for was not made. */
static void refuse_call(cn_engine *e, const char *why)
{
    snprintf(e->refused_why, sizeof e->refused_why, "%s", why);
    uv_timer_start(&e->refused_timer, on_refused_timer, 0, 0);
}

static void apply(cn_engine *e, const cn_action *a)
{
    cn_actuation act = {.kind = a->apply, .stage = a->stage, .weight = a->weight,
                        .rollout = e->cfg.rollout, .service = e->cfg.service,
                        .version = e->cfg.version, .previous_version = e->cfg.previous_version,
                        .driver = e->cfg.lease_holder};
    char w[32], detail[256], err[256] = "";
    cn_format_weight(w, sizeof w, a->weight);
    snprintf(detail, sizeof detail, "%s: stage %u, weight %s%%", cn_apply_kind_name(a->apply),
             a->stage, w);
    /* Without a durable record nothing moves forward; a rollback still
     * runs, because traffic safety comes before a complete log. Not only
     * this record counts: the step's record of the decision (promoted,
     * ...) may be the one that was lost, and then no call is announced. */
    bool forward = a->apply != CN_APPLY_ROLLBACK;
    if (!(forward && e->store_failed))
        record(e, "actuator_call", "canary", detail, NULL);
    if (forward && e->store_failed) {
        refuse_call(e, "not applied: the state database could not record it");
        return;
    }
    if (cn_actuator_start(&e->call, e->cfg.loop, e->cfg.http, &e->cfg.policy->actuator, &act,
                          on_attempt, on_actuated, e, err, sizeof err) != CN_OK) {
        e->call = NULL;
        record(e, "actuator_failed_attempt", "canary", err, NULL);
        refuse_call(e, err);
    }
}

/* ---- polling ------------------------------------------------------------ */

static void reading_error(cn_reading *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reading_error(cn_reading *r, const char *fmt, ...)
{
    r->kind = CN_READING_ERROR;
    r->value = NAN;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* One metric judged: the observers see it, then the machine, its
 * structured evidence (data, freed here; may be NULL) going to the log
 * with the step's first record. */
static void feed_measurement(cn_engine *e, size_t metric, const cn_reading *shown, cn_outcome o,
                             const char *why, char *data)
{
    if (e->cfg.observer.on_reading)
        e->cfg.observer.on_reading(e->cfg.observer.ctx, e, metric, shown, o, why);
    e->record_data = data;
    cn_event ev = {.kind = CN_EVENT_MEASUREMENT, .metric = metric, .outcome = o, .why = why};
    step(e, &ev);
    e->record_data = NULL;
    free(data);
}

static const cn_metric *slot_metric(const poll_slot *s)
{
    return s->metric >= 0 ? &s->e->cfg.policy->analysis.metrics[s->metric] : NULL;
}

static char *data_for(const poll_slot *s, cn_outcome o, const cn_threshold *t)
{
    const cn_reading *c = &s->readings[0], *b = &s->readings[1];
    json_t *j = json_pack("{s:s, s:s}", "metric", slot_metric(s)->name, "outcome",
                          o == CN_OUTCOME_PASS ? "pass" : o == CN_OUTCOME_FAIL ? "fail"
                          : o == CN_OUTCOME_NODATA ? "nodata" : "error");
    if (!j)
        return NULL;
    json_object_set_new(j, "value", c->kind == CN_READING_VALUE && isfinite(c->value)
                                        ? json_real(c->value) : json_null());
    if (s->compared)
        json_object_set_new(j, "baseline", b->kind == CN_READING_VALUE && isfinite(b->value)
                                               ? json_real(b->value) : json_null());
    if (t->has_min)
        json_object_set_new(j, "min", json_real(t->min));
    if (t->has_max)
        json_object_set_new(j, "max", json_real(t->max));
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(j);
    return text;
}

static void burn_done(poll_slot *s)
{
    cn_engine *e = s->e;
    burn_poll *bp = s->burn;
    cn_burn_result res;
    char why[256];
    const cn_metric *m = slot_metric(s);
    cn_outcome o = cn_burn_judge(&m->burn, &bp->windows, bp->errors, bp->total, &res, why,
                                 sizeof why);
    /* The observers see the deciding pair's burn as the metric's value. */
    cn_reading shown = cn_burn_shown(o, &res, why);
    feed_measurement(e, (size_t)s->metric, &shown, o, why,
                     cn_burn_data(m->name, &m->burn, &bp->windows, o, &res));
}

static void free_samples(poll_slot *s)
{
    for (unsigned side = 0; side < 2; side++) {
        free(s->values[side]);
        s->values[side] = NULL;
        s->counts[side] = 0;
    }
}

static void judge_round(cn_engine *e);

static void slot_done(poll_slot *s)
{
    cn_engine *e = s->e;
    if (e->finished)
        return;
    if (s->metric < 0) {
        const cn_reading *c = &s->readings[0];
        cn_event ev = {.kind = CN_EVENT_REQUESTS, .requests = cn_analysis_request_count(c)};
        /* Kept in the log so a resumed run knows the count too. */
        char data[64];
        if (isnan(ev.requests))
            snprintf(data, sizeof data, "{\"requests\":null}");
        else
            snprintf(data, sizeof data, "{\"requests\":%.17g}", ev.requests);
        e->record_data = data;
        step(e, &ev);
        e->record_data = NULL;
        return;
    }
    if (s->burn) {
        burn_done(s);
        return;
    }
    if (s->judged) {
        /* judged together, once every judged metric's samples are in */
        if (e->round_pending > 0 && --e->round_pending == 0)
            judge_round(e);
        return;
    }
    cn_threshold t = cn_analysis_threshold(e->cfg.policy, (size_t)s->metric, e->cfg.ai_assisted);
    char why[256];
    cn_outcome o = cn_analysis_judge_poll(e->cfg.policy, (size_t)s->metric, e->cfg.ai_assisted,
                                          s->weight, &s->readings[0], &s->readings[1], why,
                                          sizeof why);
    feed_measurement(e, (size_t)s->metric, &s->readings[0], o, why, data_for(s, o, &t));
}

/* The round of the judged metrics (judge_round.h cn_round_run): each
 * judged, then scored together, then one measurement per metric fed to
 * the machine, those that were not a pass first, so that the one which
 * fails the stage names a metric that failed the round. */
static void judge_round(cn_engine *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->slot_count; i++)
        n += e->slots[i].judged;
    cn_round_input *in = calloc(n ? n : 1, sizeof *in);
    poll_slot **of = calloc(n ? n : 1, sizeof *of);
    cn_round round;
    memset(&round, 0, sizeof round);
    size_t k = 0;
    for (size_t i = 0; in && of && i < e->slot_count; i++) {
        poll_slot *s = &e->slots[i];
        if (!s->judged)
            continue;
        const cn_metric *metric = slot_metric(s);
        in[k] = (cn_round_input){.name = metric->name, .group = metric->judge.group,
                                 .config = &metric->judge.config, .canary = &s->readings[0],
                                 .baseline = &s->readings[1], .canary_values = s->values[0],
                                 .baseline_values = s->values[1], .canary_count = s->counts[0],
                                 .baseline_count = s->counts[1]};
        of[k++] = s;
    }
    if (in && of)
        (void)cn_round_run(&round, in, k, &e->cfg.policy->analysis.judge);
    /* The observers see the score as the metric's value. */
    cn_reading shown = cn_round_shown(&round.summary);
    for (size_t j = 0; j < round.count && !e->finished; j++) {
        size_t i = round.order[j];
        poll_slot *s = of[i];
        feed_measurement(e, (size_t)s->metric, &shown, round.metrics[i].outcome,
                         round.metrics[i].why,
                         cn_round_data(round.metrics, round.count, i, &round.summary,
                                       &round.score, &s->window));
    }
    cn_round_free(&round);
    for (size_t i = 0; i < e->slot_count; i++)
        free_samples(&e->slots[i]);
    free(in);
    free(of);
}

/* The baseline side asks the same question about the previous version. */
static cn_template_vars vars_for(const poll_slot *s, unsigned side)
{
    const cn_engine *e = s->e;
    return (cn_template_vars){.service = e->cfg.service,
                              .version = side == 0 ? e->cfg.version : e->cfg.previous_version,
                              .previous_version = e->cfg.previous_version,
                              .rollout = e->cfg.rollout, .stage = e->r.stage};
}

static void on_reply(void *ctx, const cn_http_reply *reply)
{
    poll_request *pr = ctx;
    poll_slot *s = pr->slot;
    if (s->burn) {
        burn_poll *bp = s->burn;
        cn_reading *r = pr->side % 2 ? &bp->total[pr->side / 2] : &bp->errors[pr->side / 2];
        *r = cn_source_reading(s->src, NULL, reply->status, reply->body, reply->len,
                               reply->error);
        bp->ids[pr->side] = 0;
        if (--s->outstanding == 0)
            slot_done(s);
        return;
    }
    if (s->judged) {
        /* CN_ENOMEM leaves the reading an error too */
        free(s->values[pr->side]);
        s->values[pr->side] = NULL;
        (void)cn_prometheus_samples(reply->status, reply->body, reply->len, reply->error,
                                    &s->values[pr->side], &s->counts[pr->side],
                                    &s->readings[pr->side]);
        s->ids[pr->side] = 0;
        if (--s->outstanding == 0)
            slot_done(s);
        return;
    }
    cn_template_vars vars = vars_for(s, pr->side);
    s->readings[pr->side] = cn_source_reading(s->src, &vars, reply->status, reply->body,
                                              reply->len, reply->error);
    s->ids[pr->side] = 0;
    if (--s->outstanding == 0)
        slot_done(s);
}

static void start_request(poll_slot *s, unsigned side)
{
    cn_engine *e = s->e;
    cn_template_vars vars = vars_for(s, side);
    char err[256] = "";
    char *url = NULL;
    const cn_round_windows *w = &s->window;
    int rc = s->judged ? cn_source_range_url(s->src, &vars, side ? w->baseline_start
                                                                 : w->canary_start,
                                             side ? w->baseline_end : w->canary_end, w->step,
                                             &url, err, sizeof err)
                       : cn_source_url(s->src, &vars, &url, err, sizeof err);
    if (rc != CN_OK) {
        reading_error(&s->readings[side], "%s", err);
        return;
    }
    cn_http_request req = {.url = url, .headers = (const char *const *)s->headers,
                           .header_count = s->header_count,
                           .timeout_ms = e->cfg.policy->analysis.timeout_ms};
    poll_request *pr = &e->requests[(size_t)(s - e->slots) * 2 + side];
    pr->slot = s;
    pr->side = side;
    if (cn_http_start(e->cfg.http, &req, on_reply, pr, &s->ids[side], err, sizeof err) != CN_OK)
        reading_error(&s->readings[side], "%s", err);
    else
        s->outstanding++;
    free(url);
}

/* Request k of a burn-rate poll: errors (k even) or total (k odd) over
 * window k / 2, for the canary version. */
static void start_burn_request(poll_slot *s, unsigned k)
{
    cn_engine *e = s->e;
    burn_poll *bp = s->burn;
    const cn_burn_rate *b = &slot_metric(s)->burn;
    cn_source q = *s->src;
    q.query = k % 2 ? b->total : b->errors;
    cn_template_vars vars = vars_for(s, 0);
    vars.window = bp->names[k / 2];
    cn_reading *r = k % 2 ? &bp->total[k / 2] : &bp->errors[k / 2];
    char err[256] = "";
    char *url = NULL;
    if (cn_source_url(&q, &vars, &url, err, sizeof err) != CN_OK) {
        reading_error(r, "%s", err);
        return;
    }
    cn_http_request req = {.url = url, .headers = (const char *const *)s->headers,
                           .header_count = s->header_count,
                           .timeout_ms = e->cfg.policy->analysis.timeout_ms};
    bp->requests[k] = (poll_request){.slot = s, .side = k};
    if (cn_http_start(e->cfg.http, &req, on_reply, &bp->requests[k], &bp->ids[k], err,
                      sizeof err) != CN_OK)
        reading_error(r, "%s", err);
    else
        s->outstanding++;
    free(url);
}

/* The windows are scaled to the bake of the stage being judged now. */
static void start_burn(poll_slot *s)
{
    cn_engine *e = s->e;
    burn_poll *bp = s->burn;
    cn_burn_scale(&slot_metric(s)->burn, cn_burn_stage_bake(e->cfg.plan, e->r.stage),
                  e->cfg.policy->analysis.interval_ms, &bp->windows);
    for (size_t i = 0; i < bp->windows.window_count; i++)
        cn_burn_duration(bp->names[i], sizeof bp->names[i], bp->windows.window_ms[i]);
    for (unsigned k = 0; k < 2 * bp->windows.window_count; k++)
        start_burn_request(s, k);
}

/* The times a judged metric's samples are read from (judge_round.h
 * cn_round_windows_at): the stage's bake so far, ending now; at 100% the
 * baseline's ends when this stage took effect, the last time the previous
 * version served. */
static void judge_windows(cn_engine *e, poll_slot *s, double now_s)
{
    int64_t step_ms = cn_round_step_ms(slot_metric(s), e->cfg.policy->analysis.interval_ms);
    s->window = cn_round_windows_at(now_s, (double)stage_baked_ms(e) / 1000,
                                    (double)e->stage_wall_ms / 1000,
                                    stage_weight(e, e->r.stage) >= 1.0, (double)step_ms / 1000);
}

/* Starts a round of the judged metrics, unless the last one is still out:
 * two range queries each (canary and baseline), all at once. */
static void start_round(cn_engine *e)
{
    if (e->round_pending > 0)
        return;
    double now_s = (double)wall_ms() / 1000;
    e->round_pending = 1; /* our own, so no reply ends the round before all started */
    for (size_t i = 0; i < e->slot_count && !e->finished; i++) {
        poll_slot *s = &e->slots[i];
        if (!s->judged)
            continue;
        e->round_pending++;
        free_samples(s);
        judge_windows(e, s, now_s);
        s->compared = true;
        s->outstanding = 1;
        start_request(s, 0);
        start_request(s, 1);
        if (--s->outstanding == 0)
            slot_done(s);
    }
    if (e->round_pending > 0 && --e->round_pending == 0 && !e->finished)
        judge_round(e);
}

static void on_poll_tick(uv_timer_t *t)
{
    cn_engine *e = t->data;
    for (size_t i = 0; i < e->slot_count && !e->finished; i++) {
        poll_slot *s = &e->slots[i];
        if (s->outstanding > 0 || s->judged)
            continue;
        /* Count our own starts, so a reply cannot finish the slot before
         * its other request has started. */
        s->outstanding = 1;
        if (s->burn) {
            start_burn(s);
            if (--s->outstanding == 0)
                slot_done(s);
            continue;
        }
        /* At 100% the previous version serves nothing and its series fade:
         * the last stage is judged by the thresholds alone. */
        s->weight = stage_weight(e, e->r.stage);
        s->compared = cn_analysis_compares(slot_metric(s), s->weight);
        start_request(s, 0);
        if (s->compared)
            start_request(s, 1);
        if (--s->outstanding == 0)
            slot_done(s); /* every request failed to start: judge the errors */
    }
    if (!e->finished)
        start_round(e);
}

static void cancel_polls(cn_engine *e)
{
    for (size_t i = 0; i < e->slot_count; i++) {
        poll_slot *s = &e->slots[i];
        for (unsigned side = 0; side < 2; side++)
            if (s->ids[side]) {
                cn_http_cancel(e->cfg.http, s->ids[side]);
                s->ids[side] = 0;
            }
        for (size_t k = 0; s->burn && k < 2 * CN_BURN_MAX_WINDOWS; k++)
            if (s->burn->ids[k]) {
                cn_http_cancel(e->cfg.http, s->burn->ids[k]);
                s->burn->ids[k] = 0;
            }
        s->outstanding = 0;
        free_samples(s);
    }
    e->round_pending = 0;
}

/* ---- the state machine ---------------------------------------------------- */

static void on_decide_timer(uv_timer_t *t)
{
    cn_engine *e = t->data;
    cn_event ev = {.kind = CN_EVENT_TIMER};
    step(e, &ev);
}

static void finish(cn_engine *e, int code)
{
    e->finished = true;
    /* What the store still holds is written before the run reports. */
    if (cn_store_held_count(e->cfg.store) > 0)
        flush_held(e);
    /* A store that failed leaves an incomplete log: that is never a clean
     * result, even when the rollback itself went well. */
    e->exit_code = e->store_failed && code != 5 ? 1 : code;
    uv_timer_stop(&e->poll_timer);
    uv_timer_stop(&e->decide_timer);
    uv_timer_stop(&e->refused_timer);
    uv_timer_stop(&e->operator_timer);
    uv_timer_stop(&e->flush_timer);
    cancel_polls(e);
    if (e->call) {
        cn_actuator_cancel(e->call);
        e->call = NULL;
    }
    if (e->cfg.observer.on_finish)
        e->cfg.observer.on_finish(e->cfg.observer.ctx, e, e->exit_code);
}

/* Remembers when the stage being judged took effect, by the wall clock,
 * which range queries speak: a judged metric's baseline at 100% is read
 * from before that moment. A resumed stage started its bake ago. */
static void track_stage(cn_engine *e)
{
    if (e->r.stage == e->seen_stage)
        return;
    e->seen_stage = e->r.stage;
    e->stage_wall_ms = wall_ms() - stage_baked_ms(e);
}

static void track_weight(cn_engine *e)
{
    e->weight = cn_rollout_weight(&e->r, e->cfg.plan);
}

/* Runs one event through the machine and carries out its actions. When a
 * record cannot be stored, the rollout is stopped as on a signal once this
 * step is done, and apply() refuses to move the canary forward. */
static void step(cn_engine *e, const cn_event *ev)
{
    if (e->finished)
        return;
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    e->stepping = true;
    size_t n = cn_rollout_step(&e->r, &e->rc, ev, (int64_t)uv_now(e->cfg.loop), out,
                               CN_ROLLOUT_MAX_ACTIONS);
    track_weight(e);
    track_stage(e);
    bool first_record = true;
    for (size_t i = 0; i < n && !e->finished; i++) {
        const cn_action *a = &out[i];
        switch (a->kind) {
        case CN_ACTION_RECORD: {
            const char *data = first_record ? e->record_data : NULL;
            first_record = false;
            record(e, a->type, e->actor ? e->actor : "canary", a->detail, data);
            break;
        }
        case CN_ACTION_APPLY:
            apply(e, a);
            break;
        case CN_ACTION_START_POLLING:
            uv_timer_start(&e->poll_timer, on_poll_tick,
                           (uint64_t)e->cfg.policy->analysis.interval_ms,
                           (uint64_t)e->cfg.policy->analysis.interval_ms);
            break;
        case CN_ACTION_STOP_POLLING:
            uv_timer_stop(&e->poll_timer);
            break;
        case CN_ACTION_ARM_TIMER: {
            int64_t delay = a->at - (int64_t)uv_now(e->cfg.loop);
            uv_timer_start(&e->decide_timer, on_decide_timer, delay > 0 ? (uint64_t)delay : 0, 0);
            break;
        }
        case CN_ACTION_FINISH:
            finish(e, a->exit_code);
            break;
        }
    }
    e->stepping = false;
    if (e->shutdown_due && !e->finished) {
        e->shutdown_due = false;
        cn_event sd = {.kind = CN_EVENT_SHUTDOWN, .detach = e->shutdown_detach,
                       .store_failed = e->stopped_for_store};
        step(e, &sd);
    }
}

/* ---- operators and the lease ----------------------------------------------- */

#define OPERATOR_TICK_MS 1000
#define INTENTS_PER_TICK 16

static const struct {
    const char *name;
    cn_intent intent;
} INTENT_NAMES[] = {
    {"approve", CN_INTENT_APPROVE}, {"pause", CN_INTENT_PAUSE},
    {"resume", CN_INTENT_RESUME},   {"promote", CN_INTENT_PROMOTE},
    {"promote_full", CN_INTENT_PROMOTE_FULL}, {"abort", CN_INTENT_ABORT},
};

/* Copies of the pending intents: they are acted on after the walk, so
 * the walk's statement is done before anything is written. */
typedef struct pending {
    cn_intent_row rows[INTENTS_PER_TICK];
    size_t count;
} pending;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int collect_intent(void *ctx, const cn_intent_row *row)
{
    pending *p = ctx;
    cn_intent_row *c = &p->rows[p->count++];
    *c = (cn_intent_row){.id = row->id, .intent = dup_or_null(row->intent),
                         .actor = dup_or_null(row->actor), .reason = dup_or_null(row->reason),
                         .created_ms = row->created_ms};
    return p->count == INTENTS_PER_TICK;
}

static void act_on_intent(cn_engine *e, const cn_intent_row *row)
{
    const char *actor = row->actor && *row->actor ? row->actor : "unknown";
    const char *role = e->cfg.policy->ai.approval_role ? e->cfg.policy->ai.approval_role
                                                       : "senior";
    const cn_intent *intent = NULL;
    for (size_t i = 0; row->intent && i < sizeof INTENT_NAMES / sizeof INTENT_NAMES[0]; i++)
        if (!strcmp(row->intent, INTENT_NAMES[i].name))
            intent = &INTENT_NAMES[i].intent;
    e->result[0] = '\0';
    e->capture = true;
    char detail[320];
    if (!intent || !row->actor) {
        snprintf(detail, sizeof detail, "request '%s' by '%s' is not understood",
                 row->intent ? row->intent : "?", actor);
        record(e, "intent_refused", actor, detail, NULL);
    } else if (e->cfg.access && !cn_access_find(e->cfg.access, row->actor)) {
        snprintf(detail, sizeof detail, "%s by '%s' refused: not a user in access file '%s'",
                 row->intent, actor, e->cfg.access->file ? e->cfg.access->file : "?");
        record(e, "intent_refused", actor, detail, NULL);
    } else {
        cn_event ev = {.kind = CN_EVENT_INTENT, .intent = *intent, .actor = row->actor,
                       .actor_has_role = e->cfg.access &&
                                         cn_access_has_role(e->cfg.access, row->actor, role),
                       .reason = row->reason};
        e->actor = row->actor;
        step(e, &ev);
        e->actor = NULL;
    }
    e->capture = false;
    if (!e->result[0])
        snprintf(e->result, sizeof e->result, "ignored: nothing came of it");
    char err[256] = "";
    /* Not done when this fails: the intent is read again next tick, and a
     * request acted on twice is refused the second time (nothing awaits
     * approval any more, a rollback is already due...). */
    (void)cn_store_intent_done(e->cfg.store, row->id, wall_ms(), e->result, err, sizeof err);
}

/* Stops at once, writing nothing: another process drives the rollout now
 * and every write of ours could undo its state. */
static void lose_lease(cn_engine *e, const char *why)
{
    /* Cut so the advice at the end always fits. */
    snprintf(e->stop_reason, sizeof e->stop_reason, "the lease on rollout '%.80s' is no longer "
             "ours (%.100s): another canary run drives it now; this one stops without acting",
             e->cfg.rollout, why);
    /* Its measurements too: the log is the new driver's now. */
    cn_store_held_drop(e->cfg.store, e->cfg.rollout);
    finish(e, 1);
}

static void on_operator_tick(uv_timer_t *t)
{
    cn_engine *e = t->data;
    if (e->finished || e->stepping)
        return;
    char err[256] = "";
    int64_t now = wall_ms();
    if (e->cfg.lease_holder && now - e->renewed_ms >= CN_LEASE_HEARTBEAT_MS) {
        int rc = cn_store_lease_renew(e->cfg.store, e->cfg.rollout, e->cfg.lease_holder, now,
                                      err, sizeof err);
        if (rc == CN_EBUSY) {
            lose_lease(e, err);
            return;
        }
        if (rc == CN_OK)
            e->renewed_ms = now; /* else try again next tick */
    }
    /* Intents come from other connections: nothing committed elsewhere
     * since the last look, nothing to read (a thousand rollouts would
     * otherwise query the table a thousand times a second). */
    int64_t version = cn_store_data_version(e->cfg.store, now);
    if (version >= 0 && version == e->data_version)
        return;
    e->data_version = version;
    pending p;
    p.count = 0;
    if (cn_store_intents_pending(e->cfg.store, e->cfg.rollout, collect_intent, &p, err,
                                 sizeof err) != CN_OK)
        p.count = 0;
    for (size_t i = 0; i < p.count; i++) {
        if (!e->finished)
            act_on_intent(e, &p.rows[i]);
        free(p.rows[i].intent);
        free(p.rows[i].actor);
        free(p.rows[i].reason);
    }
}

void cn_engine_shutdown(cn_engine *e, bool detach)
{
    if (e->finished)
        return;
    if (e->stepping) {
        e->shutdown_due = true;
        e->shutdown_detach = detach;
        return;
    }
    cn_event ev = {.kind = CN_EVENT_SHUTDOWN, .detach = detach};
    step(e, &ev);
}

/* ---- set-up ----------------------------------------------------------- */

static int add_slot(cn_engine *e, long metric, const cn_source *src, bool baseline, char *err,
                    size_t errlen)
{
    poll_slot *s = &e->slots[e->slot_count];
    memset(s, 0, sizeof *s);
    s->e = e;
    s->metric = metric;
    s->src = src;
    s->baseline = baseline;
    s->judged = metric >= 0 && e->cfg.policy->analysis.metrics[metric].judge.enabled;
    if (metric >= 0 && e->cfg.policy->analysis.metrics[metric].burn.enabled &&
        !(s->burn = calloc(1, sizeof *s->burn))) {
        snprintf(err, errlen, "out of memory");
        return CN_ENOMEM;
    }
    char why[256] = "";
    if (cn_source_headers(src, &s->headers, &s->header_count, why, sizeof why) != CN_OK) {
        cn_source_headers_free(s->headers, s->header_count);
        s->headers = NULL;
        s->header_count = 0;
        free(s->burn);
        s->burn = NULL;
        snprintf(err, errlen, "%s %s: %s",
                 metric >= 0 ? "metric" : "analysis.min_requests",
                 metric >= 0 ? e->cfg.policy->analysis.metrics[metric].name : "query", why);
        return CN_EINVAL;
    }
    e->slot_count++;
    return CN_OK;
}

static void free_slots(cn_engine *e)
{
    for (size_t i = 0; i < e->slot_count; i++) {
        cn_source_headers_free(e->slots[i].headers, e->slots[i].header_count);
        free(e->slots[i].burn);
        free_samples(&e->slots[i]);
    }
    free(e->slots);
    free(e->requests);
    e->slots = NULL;
    e->requests = NULL;
    e->slot_count = 0;
}

int cn_engine_check_baseline(const cn_policy *p, const char *previous_version, char *err,
                             size_t errlen)
{
    for (size_t i = 0; i < p->analysis.metric_count; i++)
        if ((p->analysis.metrics[i].baseline.enabled || p->analysis.metrics[i].judge.enabled) &&
            !(previous_version && *previous_version)) {
            snprintf(err, errlen, "metric '%s' %s, but the change has no previous_version to "
                     "query: add previous_version to the change", p->analysis.metrics[i].name,
                     p->analysis.metrics[i].judge.enabled
                         ? "is judged against the baseline's samples"
                         : "compares with the baseline");
            return CN_EINVAL;
        }
    return CN_OK;
}

int cn_engine_check(const cn_engine_config *cfg, char *err, size_t errlen)
{
    const cn_policy *p = cfg->policy;
    if (p->actuator.exec.count == 0 && !p->actuator.http_url) {
        snprintf(err, errlen, "policy '%s' has no actuator: canary cannot move traffic "
                 "(set actuator.exec or actuator.http)", p->name);
        return CN_EINVAL;
    }
    if (cn_engine_check_baseline(p, cfg->previous_version, err, errlen) != CN_OK)
        return CN_EINVAL;
    /* A secret missing from the environment is found now, not by a first
     * poll that errors after the canary already serves traffic. */
    for (size_t i = 0; i <= p->analysis.metric_count; i++) {
        bool requests = i == p->analysis.metric_count;
        if (requests && p->analysis.min_requests.count == 0)
            break;
        const cn_source *src = requests ? &p->analysis.min_requests.source
                                        : &p->analysis.metrics[i].source;
        char **headers = NULL, why[256] = "";
        size_t count = 0;
        int rc = cn_source_headers(src, &headers, &count, why, sizeof why);
        cn_source_headers_free(headers, count);
        if (rc != CN_OK) {
            snprintf(err, errlen, "%s '%s': %s", requests ? "analysis.min_requests of policy"
                                                          : "metric",
                     requests ? p->name : p->analysis.metrics[i].name, why);
            return CN_EINVAL;
        }
    }
    return CN_OK;
}

static void on_handle_closed(uv_handle_t *h)
{
    cn_engine *e = h->data;
    if (--e->open_handles == 0) {
        free_slots(e);
        free(e);
    }
}

int cn_engine_start(cn_engine **out, const cn_engine_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->loop || !cfg->http || !cfg->store || !cfg->plan || !cfg->policy || !cfg->rollout ||
        !cfg->service || !cfg->version) {
        snprintf(err, errlen, "engine: incomplete configuration");
        return CN_EINVAL;
    }
    int rc = cn_engine_check(cfg, err, errlen);
    if (rc != CN_OK)
        return rc;
    cn_engine *e = calloc(1, sizeof *e);
    if (!e)
        return CN_ENOMEM;
    e->cfg = *cfg;
    e->rc = (cn_rollout_config){.plan = cfg->plan, .policy = cfg->policy,
                                .ai_assisted = cfg->ai_assisted, .author = cfg->author};
    if (cn_rollout_init(&e->r, &e->rc) != CN_OK) {
        snprintf(err, errlen, "the plan cannot be driven: it needs 1 to %d stages and at most "
                 "%d metrics", CN_MAX_STAGES, CN_MAX_METRICS);
        free(e);
        return CN_EINVAL;
    }
    if (cfg->resume && cn_rollout_restore(&e->r, &e->rc, cfg->resume,
                                          (int64_t)uv_now(cfg->loop)) != CN_OK) {
        snprintf(err, errlen, "rollout '%s' cannot be resumed: its stored state does not fit "
                 "the plan and policy (%zu stages, %zu metrics); they changed since it started",
                 cfg->rollout, cfg->plan->stage_count, cfg->policy->analysis.metric_count);
        free(e);
        return CN_EINVAL;
    }
    const cn_analysis *an = &cfg->policy->analysis;
    size_t slots = an->metric_count + (an->min_requests.count > 0 ? 1 : 0);
    e->slots = calloc(slots ? slots : 1, sizeof *e->slots);
    e->requests = calloc(slots ? slots * 2 : 1, sizeof *e->requests);
    if (!e->slots || !e->requests) {
        free_slots(e);
        free(e);
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < an->metric_count && rc == CN_OK; i++)
        rc = add_slot(e, (long)i, &an->metrics[i].source, an->metrics[i].baseline.enabled, err,
                      errlen);
    if (rc == CN_OK && an->min_requests.count > 0)
        rc = add_slot(e, -1, &an->min_requests.source, false, err, errlen);
    if (rc != CN_OK) {
        free_slots(e);
        free(e);
        return rc;
    }
    uv_timer_init(cfg->loop, &e->decide_timer);
    uv_timer_init(cfg->loop, &e->poll_timer);
    uv_timer_init(cfg->loop, &e->refused_timer);
    uv_timer_init(cfg->loop, &e->operator_timer);
    uv_timer_init(cfg->loop, &e->flush_timer);
    e->decide_timer.data = e;
    e->poll_timer.data = e;
    e->refused_timer.data = e;
    e->operator_timer.data = e;
    e->flush_timer.data = e;
    e->open_handles = 5;
    e->renewed_ms = wall_ms();
    e->data_version = -1;
    *out = e;
    uv_timer_start(&e->operator_timer, on_operator_tick, OPERATOR_TICK_MS, OPERATOR_TICK_MS);
    cn_event ev = {.kind = cfg->resume ? CN_EVENT_RESUME : CN_EVENT_START};
    step(e, &ev);
    return CN_OK;
}

const cn_rollout *cn_engine_rollout(const cn_engine *e) { return &e->r; }
const cn_engine_config *cn_engine_config_of(const cn_engine *e) { return &e->cfg; }
double cn_engine_weight(const cn_engine *e) { return e->weight; }
bool cn_engine_finished(const cn_engine *e) { return e->finished; }
int cn_engine_exit_code(const cn_engine *e) { return e->exit_code; }
const char *cn_engine_stop_reason(const cn_engine *e)
{
    return e->stop_reason[0] ? e->stop_reason : NULL;
}

void cn_engine_close(cn_engine *e)
{
    if (!e || e->closing)
        return;
    e->closing = true;
    e->finished = true;
    cancel_polls(e);
    if (e->call) {
        cn_actuator_cancel(e->call);
        e->call = NULL;
    }
    uv_close((uv_handle_t *)&e->decide_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->poll_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->refused_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->operator_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->flush_timer, on_handle_closed);
}
