/*
 * rollout.c: the rollout state machine (pure; see include/canary/rollout.h).
 *
 * One event is applied to a copy of the rollout and its actions are built
 * in a local buffer; only when they fit the caller's array are both
 * committed, so a caller never sees half a decision.
 */
#include "canary/rollout.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/schema.h" /* cn_format_duration */
#include "canary/status.h"

/* ---- names -------------------------------------------------------------- */

const char *cn_rollout_state_name(cn_rollout_state s)
{
    switch (s) {
    case CN_STATE_PENDING: return "pending";
    case CN_STATE_PROGRESSING: return "progressing";
    case CN_STATE_AWAITING_APPROVAL: return "awaiting_approval";
    case CN_STATE_PAUSED: return "paused";
    case CN_STATE_ROLLING_BACK: return "rolling_back";
    case CN_STATE_COMPLETED: return "completed";
    case CN_STATE_ROLLED_BACK: return "rolled_back";
    case CN_STATE_ABORTED: return "aborted";
    case CN_STATE_FAILED: return "failed";
    }
    return "unknown";
}

bool cn_rollout_state_terminal(cn_rollout_state s)
{
    return s == CN_STATE_COMPLETED || s == CN_STATE_ROLLED_BACK ||
           s == CN_STATE_ABORTED || s == CN_STATE_FAILED;
}

static const char *outcome_name(cn_outcome o)
{
    switch (o) {
    case CN_OUTCOME_PASS: return "pass";
    case CN_OUTCOME_FAIL: return "fail";
    case CN_OUTCOME_NODATA: return "nodata";
    case CN_OUTCOME_ERROR: return "error";
    }
    return "error"; /* an unknown outcome is tallied as an error */
}

static const char *intent_name(cn_intent i)
{
    switch (i) {
    case CN_INTENT_APPROVE: return "approve";
    case CN_INTENT_PAUSE: return "pause";
    case CN_INTENT_RESUME: return "resume";
    case CN_INTENT_PROMOTE: return "promote";
    case CN_INTENT_PROMOTE_FULL: return "promote --full";
    case CN_INTENT_ABORT: return "abort";
    }
    return "unknown intent";
}

static const char *end_name(cn_end_reason e)
{
    switch (e) {
    case CN_END_ANALYSIS: return "analysis";
    case CN_END_ABORTED: return "an operator abort";
    case CN_END_SIGNAL: return "a signal";
    case CN_END_ACTUATOR: return "an actuator failure";
    case CN_END_STORE: return "a state database failure";
    case CN_END_APPROVAL_TIMEOUT: return "an approval timeout";
    case CN_END_PROMOTED: return "promotion";
    case CN_END_NONE: break;
    }
    return "no reason";
}

/* ---- one step's context ------------------------------------------------- */

typedef struct step {
    cn_rollout *r;
    const cn_rollout_config *cfg;
    const cn_event *ev;
    int64_t now;
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    size_t n;
    bool overflow; /* more actions than CN_ROLLOUT_MAX_ACTIONS: a bug */
} step;

static cn_action *push(step *s, cn_action_kind kind)
{
    if (s->n >= CN_ROLLOUT_MAX_ACTIONS) {
        s->overflow = true;
        return NULL;
    }
    cn_action *a = &s->out[s->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    return a;
}

static void record(step *s, const char *type, const char *fmt, ...) CN_PRINTF(3, 4);

static void record(step *s, const char *type, const char *fmt, ...)
{
    cn_action *a = push(s, CN_ACTION_RECORD);
    if (!a)
        return;
    snprintf(a->type, sizeof a->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(a->detail, sizeof a->detail, fmt, ap);
    va_end(ap);
    if (w < 0)
        a->detail[0] = '\0';
}

static void apply(step *s, cn_apply_kind kind, unsigned stage, double weight)
{
    cn_action *a = push(s, CN_ACTION_APPLY);
    if (a) {
        a->apply = kind;
        a->stage = stage;
        a->weight = weight;
    }
    s->r->applying = true;
    s->r->applying_kind = kind;
    s->r->applying_stage = stage;
}

static void simple(step *s, cn_action_kind kind)
{
    (void)push(s, kind);
}

static void arm(step *s, int64_t at)
{
    cn_action *a = push(s, CN_ACTION_ARM_TIMER);
    if (a)
        a->at = at;
}

static void finish(step *s, cn_rollout_state st, int code)
{
    s->r->state = st;
    s->r->exit_code = code;
    cn_action *a = push(s, CN_ACTION_FINISH);
    if (a)
        a->exit_code = code;
}

/* Saturating, so a huge bake cannot wrap a timer into the past. */
static int64_t add_ms(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static const char *text_or(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

/* ---- plan lookups ------------------------------------------------------- */

static unsigned last_stage(const step *s)
{
    return (unsigned)s->cfg->plan->stage_count;
}

static const cn_stage *stage_at(const step *s, unsigned k)
{
    return &s->cfg->plan->stages[k - 1];
}

static double weight_at(const step *s, unsigned k)
{
    return stage_at(s, k)->weight;
}

static bool gated(const step *s, unsigned k)
{
    return k >= 1 && k <= last_stage(s) && stage_at(s, k)->approval && !s->r->approved;
}

static const char *role(const step *s)
{
    return text_or(s->cfg->policy->ai.approval_role, "senior");
}

/* The stage's bake clock runs while its weight is served and judged,
 * not while it is paused. */
static bool bake_running(const cn_rollout *r)
{
    return r->stage >= 1 && !r->applying &&
           (r->state == CN_STATE_PROGRESSING || r->state == CN_STATE_AWAITING_APPROVAL);
}

/* Polling runs while the stage is judged: also while an operator holds it
 * (a held canary still serves traffic, and a failure still rolls back). */
static bool polling(const cn_rollout *r)
{
    return bake_running(r) ||
           (r->stage >= 1 && !r->applying && r->state == CN_STATE_PAUSED && r->operator_paused);
}

/* ---- analysis ----------------------------------------------------------- */

static int64_t baked(const step *s)
{
    return add_ms(s->r->baked_before, s->now - s->r->stage_started);
}

static cn_verdict verdict(const step *s)
{
    const cn_rollout *r = s->r;
    return cn_stage_verdict(&r->limits, r->tallies, s->cfg->policy->analysis.metrics,
                            r->metric_count, baked(s), r->requests);
}

/* The next moment a verdict can change without a measurement: the end of
 * the bake, else the end of max_bake, else one analysis interval on. */
static int64_t next_timer(const step *s)
{
    int64_t b = baked(s);
    const cn_stage_limits *l = &s->r->limits;
    if (b < l->bake_ms)
        return add_ms(s->now, l->bake_ms - b);
    if (b < l->max_bake_ms)
        return add_ms(s->now, l->max_bake_ms - b);
    int64_t iv = s->cfg->policy->analysis.interval_ms;
    return add_ms(s->now, iv > 0 ? iv : 1000);
}

static void reset_evidence(cn_rollout *r)
{
    memset(r->tallies, 0, sizeof r->tallies);
    r->requests = NAN;
}

/* ---- transitions -------------------------------------------------------- */

/* Starts the rollback for reason; the caller has recorded why, or passes
 * what to record as rolling_back (NULL: already recorded). */
static void roll_back(step *s, cn_end_reason reason, const char *why)
{
    cn_rollout *r = s->r;
    bool was_polling = polling(r);
    r->end = reason;
    r->state = CN_STATE_ROLLING_BACK;
    r->pending_rollback = CN_END_NONE;
    if (why)
        record(s, "rolling_back", "rolling back for %s: %s", end_name(reason), why);
    if (was_polling)
        simple(s, CN_ACTION_STOP_POLLING);
    apply(s, CN_APPLY_ROLLBACK, 0, 0);
}

/* by_operator: held by `canary pause`, and still judged; else paused by
 * the stage's own evidence (on_failure or on_inconclusive: pause), which
 * waits for an operator without measuring on. */
static void to_paused(step *s, const char *why, bool by_operator)
{
    cn_rollout *r = s->r;
    bool was_polling = polling(r);
    if (r->state != CN_STATE_PAUSED) {
        r->baked_before = baked(s);
        r->stage_started = s->now;
    }
    r->state = CN_STATE_PAUSED;
    r->operator_paused = by_operator;
    record(s, "paused", "paused at stage %u: %s%s", r->stage, why,
           by_operator ? "; still measured: a failure still rolls back" : "");
    if (was_polling && !by_operator)
        simple(s, CN_ACTION_STOP_POLLING);
}

/* The single timer, while awaiting approval, serves the approval timeout
 * (the bake is over by then, or no stage is served). */
static void arm_approval_deadline(step *s)
{
    int64_t timeout = s->cfg->policy->ai.approval_timeout_ms;
    if (timeout > 0 && !s->r->overdue)
        arm(s, add_ms(s->r->awaiting_since, timeout));
}

/* Applies the next stage (or the last one, or completes) after the current
 * stage was promoted; `promoted` has been recorded by the caller. */
static void advance_to(step *s, unsigned target, bool was_polling)
{
    cn_rollout *r = s->r;
    unsigned last = last_stage(s);
    if (r->stage >= last) {
        r->state = CN_STATE_PROGRESSING;
        if (was_polling)
            simple(s, CN_ACTION_STOP_POLLING);
        apply(s, CN_APPLY_COMPLETE, r->stage, 1.0);
        return;
    }
    if (target > last)
        target = last;
    if (gated(s, target)) {
        r->state = CN_STATE_AWAITING_APPROVAL;
        r->awaiting_since = s->now;
        r->overdue = false;
        char serving[64] = "nothing is applied until then";
        if (r->stage >= 1)
            snprintf(serving, sizeof serving, "stage %u keeps serving %g%% and is judged",
                     r->stage, 100 * weight_at(s, r->stage));
        record(s, "awaiting_approval",
               "stage %u (%g%%) needs approval by a user with role '%s' who is not "
               "the author '%s' (two-person rule); %s",
               target, 100 * weight_at(s, target), role(s),
               text_or(s->cfg->author, "unknown"), serving);
        if (!was_polling && r->stage >= 1)
            simple(s, CN_ACTION_START_POLLING);
        arm_approval_deadline(s);
        return;
    }
    r->state = CN_STATE_PROGRESSING;
    if (was_polling)
        simple(s, CN_ACTION_STOP_POLLING);
    apply(s, CN_APPLY_ADVANCE, target, weight_at(s, target));
}

/* Acts on a verdict of the current stage (progressing or, with only the
 * failure branches, awaiting_approval). from_timer re-arms while baking. */
static void act_on(step *s, const cn_verdict *v, bool from_timer)
{
    cn_rollout *r = s->r;
    bool waiting = r->state == CN_STATE_AWAITING_APPROVAL;
    switch (v->kind) {
    case CN_VERDICT_FAILED:
    case CN_VERDICT_ERRORED:
    case CN_VERDICT_INCONCLUSIVE:
        /* Once promoted, the evidence only grows: an inconclusive verdict
         * while awaiting approval cannot arise, and would change nothing. */
        if (waiting && v->kind == CN_VERDICT_INCONCLUSIVE)
            return;
        if (v->kind != CN_VERDICT_ERRORED && v->action == CN_ON_PAUSE)
            to_paused(s, v->why, false);
        else
            roll_back(s, CN_END_ANALYSIS, v->why);
        return;
    case CN_VERDICT_PROMOTE:
        if (waiting)
            return;
        record(s, "promoted", "stage %u passed its analysis: %s", r->stage, v->why);
        advance_to(s, r->stage + 1, polling(r));
        return;
    case CN_VERDICT_BAKING:
        if (from_timer)
            arm(s, next_timer(s));
        return;
    }
}

/* ---- events ------------------------------------------------------------- */

static void on_start(step *s)
{
    cn_rollout *r = s->r;
    if (r->state != CN_STATE_PENDING) {
        record(s, "intent_refused", "start: the rollout is already %s",
               cn_rollout_state_name(r->state));
        return;
    }
    record(s, "started", "%zu stage%s to 100%%, first %g%%; author '%s'%s",
           s->cfg->plan->stage_count, s->cfg->plan->stage_count == 1 ? "" : "s",
           100 * weight_at(s, 1), text_or(s->cfg->author, "unknown"),
           s->cfg->ai_assisted ? "; AI-assisted" : "");
    advance_to(s, 1, false);
}

static void on_applied(step *s)
{
    cn_rollout *r = s->r;
    const char *out = text_or(s->ev->why, "no output");
    if (!r->applying) {
        record(s, "ignored", "actuator result with no call in flight ignored (%s)",
               s->ev->ok ? "ok" : out);
        return;
    }
    r->applying = false;
    unsigned k = r->applying_stage;
    switch (r->applying_kind) {
    case CN_APPLY_ROLLBACK:
        if (!s->ev->ok) {
            r->state = CN_STATE_FAILED;
            record(s, "failed", "rollback could not be applied: a human must act (%s)", out);
            finish(s, CN_STATE_FAILED, 5);
            return;
        }
        if (r->end == CN_END_ABORTED || r->end == CN_END_SIGNAL ||
            r->end == CN_END_APPROVAL_TIMEOUT) {
            r->state = CN_STATE_ABORTED;
            record(s, "aborted", "rolled back after %s; previous version serves 100%%",
                   end_name(r->end));
            finish(s, CN_STATE_ABORTED, 4);
        } else {
            r->state = CN_STATE_ROLLED_BACK;
            record(s, "rolled_back", "rolled back after %s; previous version serves 100%%",
                   end_name(r->end));
            finish(s, CN_STATE_ROLLED_BACK, r->end == CN_END_ANALYSIS ? 3 : 1);
        }
        r->stage = 0;
        return;
    case CN_APPLY_ADVANCE:
    case CN_APPLY_COMPLETE:
        break;
    }
    bool complete = r->applying_kind == CN_APPLY_COMPLETE;
    if (!s->ev->ok) {
        /* A reason decided while the call was in flight came first. */
        cn_end_reason reason = r->pending_rollback != CN_END_NONE ? r->pending_rollback
                                                                  : CN_END_ACTUATOR;
        record(s, "actuator_failed", "%s of stage %u could not be applied: %s",
               complete ? "completion" : "advance", k, out);
        roll_back(s, reason, NULL);
        return;
    }
    if (r->pending_rollback != CN_END_NONE) {
        cn_end_reason reason = r->pending_rollback;
        r->stage = k;
        record(s, "rolling_back",
               "%s of stage %u returned; rolling back for %s decided while it was in flight",
               complete ? "completion" : "advance", k, end_name(reason));
        roll_back(s, reason, NULL);
        return;
    }
    if (complete) {
        r->end = CN_END_PROMOTED;
        r->state = CN_STATE_COMPLETED;
        record(s, "completed", "the new version serves 100%% after stage %u", k);
        simple(s, CN_ACTION_STOP_POLLING);
        finish(s, CN_STATE_COMPLETED, 0);
        return;
    }
    r->stage = k;
    r->state = CN_STATE_PROGRESSING;
    r->stage_started = s->now;
    r->baked_before = 0;
    reset_evidence(r);
    r->limits = cn_analysis_limits(s->cfg->policy, stage_at(s, k)->bake_ms, s->cfg->ai_assisted);
    char bake[32];
    cn_format_duration(bake, sizeof bake, r->limits.bake_ms);
    record(s, "stage_applied", "stage %u of %u serves %g%%; baking %s", k, last_stage(s),
           100 * weight_at(s, k), bake);
    simple(s, CN_ACTION_START_POLLING);
    arm(s, add_ms(s->now, r->limits.bake_ms));
}

/* Where a measurement or a request count is judged at all. */
static bool judging(const cn_rollout *r)
{
    return polling(r);
}

/* While an operator holds the stage only failure can follow: the bake
 * stands still, so nothing promotes or runs out of time. */
static void judge_held(step *s, const cn_verdict *v)
{
    if (v->kind != CN_VERDICT_FAILED && v->kind != CN_VERDICT_ERRORED)
        return;
    if (v->kind == CN_VERDICT_FAILED && v->action == CN_ON_PAUSE)
        to_paused(s, v->why, false); /* on_failure: pause: stays paused, now for its evidence */
    else
        roll_back(s, CN_END_ANALYSIS, v->why);
}

static void on_measurement(step *s)
{
    cn_rollout *r = s->r;
    const cn_event *ev = s->ev;
    const char *name = ev->metric < r->metric_count ? s->cfg->policy->analysis.metrics[ev->metric].name
                                                   : NULL;
    const char *why = text_or(ev->why, "no evidence given");
    /* During an advance the stage being left is still the one measured: a
     * measurement that fails it rolls back when the call returns. */
    bool leaving = r->applying && r->applying_kind != CN_APPLY_ROLLBACK && r->stage >= 1 &&
                   r->state == CN_STATE_PROGRESSING;
    /* The judge's words for no data and errors already say so ("no data:
     * empty vector", "error: HTTP 500"); pass and fail get the word here. */
    bool worded = ev->outcome == CN_OUTCOME_NODATA || ev->outcome == CN_OUTCOME_ERROR;
    if (ev->metric >= r->metric_count || (!judging(r) && !leaving)) {
        record(s, "late_measurement", "%s: %s%s%s (not counted: %s)",
               text_or(name, "unknown metric"), worded ? "" : outcome_name(ev->outcome),
               worded ? "" : ": ", why,
               ev->metric >= r->metric_count ? "no such metric"
               : cn_rollout_state_terminal(r->state) ? "the rollout is over"
               : r->state == CN_STATE_ROLLING_BACK ? "a rollback has started"
                                                    : "no stage is being judged");
        return;
    }
    record(s, "measurement", "stage %u: %s: %s%s%s", r->stage, text_or(name, "metric"),
           worded ? "" : outcome_name(ev->outcome), worded ? "" : ": ", why);
    cn_tally_add(&r->tallies[ev->metric], ev->outcome);
    cn_verdict v = verdict(s);
    if (r->state == CN_STATE_PAUSED) {
        judge_held(s, &v);
        return;
    }
    if (!leaving) {
        act_on(s, &v, false);
        return;
    }
    if ((v.kind == CN_VERDICT_FAILED || v.kind == CN_VERDICT_ERRORED) &&
        r->pending_rollback == CN_END_NONE) {
        /* The weight has already moved on, so there is no stage to pause
         * at: whatever on_failure says, this rolls back. */
        r->pending_rollback = CN_END_ANALYSIS;
        record(s, "rolling_back",
               "stage %u failed while the %s of stage %u is in flight: %s; rollback when "
               "the call in flight returns",
               r->stage, r->applying_kind == CN_APPLY_COMPLETE ? "completion" : "advance",
               r->applying_stage, v.why);
    }
}

static void on_requests(step *s)
{
    cn_rollout *r = s->r;
    double q = s->ev->requests;
    if (!judging(r)) {
        record(s, "late_measurement", "requests: %.0f (not counted: no stage is being judged)",
               q);
        return;
    }
    r->requests = q;
    if (isnan(q))
        record(s, "requests", "stage %u: the canary's request count is unknown", r->stage);
    else
        record(s, "requests", "stage %u: the canary served %.0f requests", r->stage, q);
    cn_verdict v = verdict(s);
    if (r->state == CN_STATE_PAUSED)
        judge_held(s, &v);
    else
        act_on(s, &v, false);
}

static void stop(step *s, cn_end_reason reason, const char *detail);

static void on_approval_timer(step *s)
{
    cn_rollout *r = s->r;
    const cn_ai_policy *ai = &s->cfg->policy->ai;
    if (ai->approval_timeout_ms <= 0 || r->overdue || r->applying)
        return;
    if (s->now < add_ms(r->awaiting_since, ai->approval_timeout_ms)) {
        arm_approval_deadline(s); /* a timer armed for something else fired */
        return;
    }
    char waited[32], detail[160];
    cn_format_duration(waited, sizeof waited, ai->approval_timeout_ms);
    unsigned target = r->stage + 1;
    if (ai->approval_on_timeout == CN_APPROVAL_WAIT) {
        r->overdue = true;
        record(s, "approval_overdue", "stage %u has waited %s for an approval by a user with "
               "role '%s'; still waiting (approval.on_timeout: wait)", target, waited, role(s));
        return;
    }
    snprintf(detail, sizeof detail, "approval timed out: nobody approved stage %u within %s "
             "(approval.on_timeout: rollback)", target, waited);
    stop(s, CN_END_APPROVAL_TIMEOUT, detail);
}

static void on_timer(step *s)
{
    cn_rollout *r = s->r;
    if (r->state == CN_STATE_AWAITING_APPROVAL) {
        on_approval_timer(s);
        return;
    }
    if (r->state != CN_STATE_PROGRESSING || r->applying || r->stage < 1)
        return;
    cn_verdict v = verdict(s);
    act_on(s, &v, true);
}

/* Rolls back now, or when the advance in flight returns, or ends a rollout
 * that never applied anything. */
static void stop(step *s, cn_end_reason reason, const char *detail)
{
    cn_rollout *r = s->r;
    if (r->state == CN_STATE_ROLLING_BACK) {
        record(s, "intent_refused", "%s: already rolling back", detail);
        return;
    }
    if (r->applying) {
        if (r->pending_rollback != CN_END_NONE) {
            record(s, "intent_refused", "%s: a rollback for %s is already due", detail,
                   end_name(r->pending_rollback));
            return;
        }
        r->pending_rollback = reason;
        record(s, "aborted", "%s: rollback when the call in flight returns", detail);
        return;
    }
    if (r->stage == 0) { /* pending, or waiting to approve stage 1 */
        r->end = reason;
        record(s, "aborted", "%s: nothing was applied", detail);
        finish(s, CN_STATE_ABORTED, reason == CN_END_STORE ? 1 : 4);
        return;
    }
    record(s, "aborted", "%s: rolling back", detail);
    roll_back(s, reason, NULL);
}

static void on_shutdown(step *s)
{
    cn_rollout *r = s->r;
    if (cn_rollout_state_terminal(r->state)) {
        record(s, "intent_refused", "shutdown: the rollout is already %s",
               cn_rollout_state_name(r->state));
        return;
    }
    if (s->ev->detach) {
        bool was_polling = polling(r);
        record(s, "detached",
               "left %s at stage %u%s for a later resume", cn_rollout_state_name(r->state),
               r->stage, r->applying ? " with an actuator call in flight" : "");
        if (was_polling)
            simple(s, CN_ACTION_STOP_POLLING);
        r->exit_code = 1;
        cn_action *a = push(s, CN_ACTION_FINISH);
        if (a)
            a->exit_code = 1;
        return;
    }
    if (s->ev->store_failed)
        stop(s, CN_END_STORE, "the state database could not record a decision");
    else
        stop(s, CN_END_SIGNAL, "stopped by a signal");
}

static void copy_actor(cn_rollout *r, const char *actor)
{
    size_t n = strlen(actor);
    if (n >= sizeof r->approver)
        n = sizeof r->approver - 1;
    memcpy(r->approver, actor, n);
    r->approver[n] = '\0';
}

static bool is_author(const step *s, const char *actor)
{
    return s->cfg->author && !strcmp(s->cfg->author, actor);
}

/* Why actor may not sign off a gate, or NULL when they may. */
static const char *approval_problem(const step *s, char *buf, size_t len)
{
    const cn_event *ev = s->ev;
    if (!s->cfg->author || !*s->cfg->author)
        return "the change names no author, so the two-person rule cannot be checked";
    if (is_author(s, ev->actor))
        return "the author cannot approve their own change: two-person rule";
    if (!ev->actor_has_role) {
        snprintf(buf, len, "needs role '%s'", role(s));
        return buf;
    }
    return NULL;
}

static void on_approve(step *s, const char *actor, const char *reason)
{
    cn_rollout *r = s->r;
    if (r->state != CN_STATE_AWAITING_APPROVAL) {
        record(s, "intent_refused", "approve by '%s': nothing awaits approval (state %s)",
               actor, cn_rollout_state_name(r->state));
        return;
    }
    char buf[96];
    const char *problem = approval_problem(s, buf, sizeof buf);
    if (problem) {
        record(s, "approval_refused", "approve by '%s' refused: %s", actor, problem);
        return;
    }
    unsigned target = r->stage + 1;
    r->approved = true;
    copy_actor(r, actor);
    record(s, "approved", "stage %u (%g%%) approved by '%s' (role '%s', not the author)%s%s",
           target, 100 * weight_at(s, target), actor, role(s), reason ? ": " : "",
           reason ? reason : "");
    bool was_polling = polling(r);
    r->state = CN_STATE_PROGRESSING;
    if (was_polling)
        simple(s, CN_ACTION_STOP_POLLING);
    apply(s, CN_APPLY_ADVANCE, target, weight_at(s, target));
}

static void on_promote(step *s, const char *actor, const char *reason, bool full)
{
    cn_rollout *r = s->r;
    const char *what = full ? "promote --full" : "promote";
    if ((r->state != CN_STATE_PROGRESSING && r->state != CN_STATE_PAUSED) || r->applying ||
        r->stage < 1) {
        record(s, "intent_refused", "%s by '%s': not possible while %s%s", what, actor,
               cn_rollout_state_name(r->state),
               r->applying ? " with an actuator call in flight"
               : r->state == CN_STATE_AWAITING_APPROVAL ? " (approve first)"
                                                         : "");
        return;
    }
    unsigned last = last_stage(s);
    unsigned target = full ? last : r->stage + 1;
    bool gate_ahead = false;
    for (unsigned k = r->stage + 1; full && k <= last; k++)
        gate_ahead = gate_ahead || gated(s, k);
    if (full && (s->cfg->ai_assisted || gate_ahead)) {
        char buf[96];
        const char *problem = approval_problem(s, buf, sizeof buf);
        if (problem) {
            record(s, "intent_refused", "promote --full by '%s' refused: %s", actor, problem);
            return;
        }
    }
    int64_t b = baked(s);
    int64_t left = r->limits.bake_ms > b ? r->limits.bake_ms - b : 0;
    char skipped[32];
    cn_format_duration(skipped, sizeof skipped, left);
    record(s, full ? "operator_promote_full" : "operator_promote",
           "%s by '%s' at stage %u: %s; the remaining bake (%s) and analysis were skipped%s",
           what, actor, r->stage, text_or(reason, "no reason given"), skipped,
           full && r->stage < last ? "; going straight to the last stage" : "");
    if (gate_ahead) {
        r->approved = true;
        copy_actor(r, actor);
        record(s, "approved", "the approval gate is approved by '%s' (role '%s', not the "
               "author) through promote --full", actor, role(s));
    }
    bool was_polling = polling(r);
    r->state = CN_STATE_PROGRESSING;
    advance_to(s, target, was_polling);
}

static void on_intent(step *s)
{
    cn_rollout *r = s->r;
    const cn_event *ev = s->ev;
    if (!ev->actor || !*ev->actor) {
        record(s, "intent_refused", "%s: no actor given", intent_name(ev->intent));
        return;
    }
    const char *actor = ev->actor;
    const char *reason = ev->reason && *ev->reason ? ev->reason : NULL;
    if (cn_rollout_state_terminal(r->state)) {
        record(s, "intent_refused", "%s by '%s': the rollout is already %s",
               intent_name(ev->intent), actor, cn_rollout_state_name(r->state));
        return;
    }
    char detail[160];
    switch (ev->intent) {
    case CN_INTENT_APPROVE:
        on_approve(s, actor, reason);
        return;
    case CN_INTENT_PAUSE:
        if (r->state != CN_STATE_PROGRESSING || r->applying || r->stage < 1) {
            record(s, "intent_refused", "pause by '%s': not possible while %s%s", actor,
                   cn_rollout_state_name(r->state),
                   r->applying ? " with an actuator call in flight" : "");
            return;
        }
        snprintf(detail, sizeof detail, "by '%s': %s", actor, text_or(reason, "no reason given"));
        to_paused(s, detail, true);
        return;
    case CN_INTENT_RESUME: {
        if (r->state != CN_STATE_PAUSED) {
            record(s, "intent_refused", "resume by '%s': not paused (state %s)", actor,
                   cn_rollout_state_name(r->state));
            return;
        }
        r->state = CN_STATE_PROGRESSING;
        r->stage_started = s->now;
        /* Evidence that would pause (or roll back) again at once is what the
         * operator chose to look past: the stage's analysis starts over. */
        cn_verdict v = verdict(s);
        bool restart = v.kind == CN_VERDICT_FAILED || v.kind == CN_VERDICT_ERRORED ||
                       v.kind == CN_VERDICT_INCONCLUSIVE;
        if (restart) {
            reset_evidence(r);
            r->baked_before = 0;
        }
        char served[32];
        cn_format_duration(served, sizeof served, r->baked_before);
        if (restart)
            record(s, "resumed", "by '%s' at stage %u: %s; the stage's analysis starts "
                   "over, as its evidence paused it", actor, r->stage,
                   text_or(reason, "no reason given"));
        else
            record(s, "resumed", "by '%s' at stage %u: %s; %s of the bake already served",
                   actor, r->stage, text_or(reason, "no reason given"), served);
        simple(s, CN_ACTION_START_POLLING);
        arm(s, v.kind == CN_VERDICT_PROMOTE ? s->now : next_timer(s));
        return;
    }
    case CN_INTENT_PROMOTE:
    case CN_INTENT_PROMOTE_FULL:
        on_promote(s, actor, reason, ev->intent == CN_INTENT_PROMOTE_FULL);
        return;
    case CN_INTENT_ABORT:
        snprintf(detail, sizeof detail, "abort by '%s': %s", actor,
                 text_or(reason, "no reason given"));
        stop(s, CN_END_ABORTED, detail);
        return;
    }
    record(s, "intent_refused", "unknown intent %d by '%s'", (int)ev->intent, actor);
}

/* Drives a restored rollout again from where its last driver left it. */
static void on_resume(step *s)
{
    cn_rollout *r = s->r;
    if (cn_rollout_state_terminal(r->state)) {
        record(s, "intent_refused", "resume: the rollout is already %s",
               cn_rollout_state_name(r->state));
        return;
    }
    if (r->state == CN_STATE_PENDING && !r->applying) {
        on_start(s); /* stopped before anything was started */
        return;
    }
    if (r->applying) {
        const char *what = r->applying_kind == CN_APPLY_ADVANCE ? "advance"
                           : r->applying_kind == CN_APPLY_COMPLETE ? "completion" : "rollback";
        if (r->pending_rollback != CN_END_NONE && r->applying_kind != CN_APPLY_ROLLBACK) {
            /* Whether or not that call landed, the rollback covers both. */
            record(s, "resumed", "driving again: the %s of stage %u was in flight with a "
                   "rollback for %s due; rolling back", what, r->applying_stage,
                   end_name(r->pending_rollback));
            roll_back(s, r->pending_rollback, NULL);
            return;
        }
        double w = r->applying_kind == CN_APPLY_ROLLBACK ? 0
                   : r->applying_kind == CN_APPLY_COMPLETE ? 1.0 : weight_at(s, r->applying_stage);
        record(s, "resumed", "driving again: the %s call in flight (stage %u, %g%%) is made "
               "again (actuator calls are idempotent)", what, r->applying_stage, 100 * w);
        apply(s, r->applying_kind, r->applying_stage, w);
        return;
    }
    char served[32];
    cn_format_duration(served, sizeof served, r->baked_before);
    cn_verdict v;
    switch (r->state) {
    case CN_STATE_PROGRESSING:
        if (r->stage < 1)
            break;
        record(s, "resumed", "driving again at stage %u (%g%%): %s of its bake served and its "
               "evidence kept", r->stage, 100 * weight_at(s, r->stage), served);
        simple(s, CN_ACTION_START_POLLING);
        v = verdict(s);
        act_on(s, &v, true);
        return;
    case CN_STATE_AWAITING_APPROVAL:
        record(s, "resumed", "driving again: stage %u awaits approval by a user with role '%s'",
               r->stage + 1, role(s));
        if (r->stage >= 1) {
            simple(s, CN_ACTION_START_POLLING);
            v = verdict(s);
            act_on(s, &v, false); /* a failure found meanwhile still rolls back */
        }
        if (r->state == CN_STATE_AWAITING_APPROVAL)
            arm_approval_deadline(s);
        return;
    case CN_STATE_PAUSED:
        record(s, "resumed", "driving again: still paused at stage %u (`canary resume` goes on)%s",
               r->stage, r->operator_paused ? "; still measured" : "");
        if (r->operator_paused)
            simple(s, CN_ACTION_START_POLLING);
        return;
    default:
        break;
    }
    /* Not reachable from any snapshot the machine writes; go on safely. */
    record(s, "resumed", "driving again from %s at stage %u", cn_rollout_state_name(r->state),
           r->stage);
    if (r->state == CN_STATE_ROLLING_BACK)
        apply(s, CN_APPLY_ROLLBACK, 0, 0);
    else
        advance_to(s, r->stage + 1, false);
}

/* ---- entry points ------------------------------------------------------- */

int cn_rollout_init(cn_rollout *r, const cn_rollout_config *cfg)
{
    memset(r, 0, sizeof *r);
    r->state = CN_STATE_PENDING;
    r->requests = NAN;
    r->error = CN_EINVAL;
    if (!cfg || !cfg->plan || !cfg->policy)
        return r->error;
    size_t n = cfg->policy->analysis.metric_count;
    if (n > CN_MAX_METRICS || (n && !cfg->policy->analysis.metrics))
        return r->error;
    if (cfg->plan->stage_count < 1 || cfg->plan->stage_count > CN_MAX_STAGES)
        return r->error;
    r->metric_count = (unsigned)n;
    r->error = CN_OK;
    return CN_OK;
}

size_t cn_rollout_step(cn_rollout *r, const cn_rollout_config *cfg, const cn_event *ev,
                       int64_t now, cn_action *out, size_t cap)
{
    if (!r || !cfg || !ev || !out || r->error != CN_OK || !cfg->plan || !cfg->policy)
        return 0;
    static const step zero;
    step s = zero;
    cn_rollout next = *r;
    s.r = &next;
    s.cfg = cfg;
    s.ev = ev;
    s.now = now;
    bool terminal = cn_rollout_state_terminal(next.state);
    switch (ev->kind) {
    case CN_EVENT_START:
        on_start(&s);
        break;
    case CN_EVENT_APPLIED:
        on_applied(&s);
        break;
    case CN_EVENT_MEASUREMENT:
        on_measurement(&s);
        break;
    case CN_EVENT_REQUESTS:
        on_requests(&s);
        break;
    case CN_EVENT_TIMER:
        if (!terminal)
            on_timer(&s);
        break;
    case CN_EVENT_INTENT:
        on_intent(&s);
        break;
    case CN_EVENT_SHUTDOWN:
        on_shutdown(&s);
        break;
    case CN_EVENT_RESUME:
        on_resume(&s);
        break;
    default:
        record(&s, "intent_refused", "unknown event %d ignored", (int)ev->kind);
        break;
    }
    if (s.overflow || s.n > cap)
        return 0; /* nothing committed: the caller's array is too small */
    *r = next;
    memcpy(out, s.out, s.n * sizeof *out);
    return s.n;
}

double cn_rollout_weight(const cn_rollout *r, const cn_plan *plan)
{
    if (r->state == CN_STATE_COMPLETED)
        return 1;
    if (r->state == CN_STATE_ROLLED_BACK || r->state == CN_STATE_ABORTED)
        return 0;
    if (!plan || r->stage == 0 || r->stage > plan->stage_count)
        return 0;
    return plan->stages[r->stage - 1].weight;
}

/* ---- resume ------------------------------------------------------------- */

cn_rollout_snapshot cn_rollout_save(const cn_rollout *r, int64_t now)
{
    cn_rollout_snapshot snap;
    memset(&snap, 0, sizeof snap);
    snap.state = r->state;
    snap.end = r->end;
    snap.stage = r->stage;
    snap.applying = r->applying;
    snap.applying_kind = r->applying_kind;
    snap.applying_stage = r->applying_stage;
    snap.pending_rollback = r->pending_rollback;
    snap.approved = r->approved;
    memcpy(snap.approver, r->approver, sizeof snap.approver);
    snap.baking = bake_running(r);
    snap.operator_paused = r->operator_paused;
    snap.baked_ms = snap.baking ? add_ms(r->baked_before, now - r->stage_started) : r->baked_before;
    snap.awaiting = r->state == CN_STATE_AWAITING_APPROVAL;
    snap.waited_ms = snap.awaiting ? now - r->awaiting_since : 0;
    snap.overdue = r->overdue;
    snap.metric_count = r->metric_count;
    memcpy(snap.tallies, r->tallies, sizeof snap.tallies);
    snap.requests = r->requests;
    return snap;
}

void cn_rollout_snapshot_replay(cn_rollout_snapshot *snap, const cn_event *ev, int64_t after_ms)
{
    if (ev->kind == CN_EVENT_MEASUREMENT) {
        if (ev->metric >= snap->metric_count)
            return; /* no evidence kept in this snapshot, or no such metric */
        cn_tally_add(&snap->tallies[ev->metric], ev->outcome);
    } else if (ev->kind == CN_EVENT_REQUESTS) {
        snap->requests = ev->requests;
    } else {
        return;
    }
    if (snap->baking && after_ms > snap->replayed_ms) {
        snap->baked_ms = add_ms(snap->baked_ms, after_ms - snap->replayed_ms);
        snap->replayed_ms = after_ms;
    }
}

static bool valid_end(cn_end_reason e)
{
    return e >= CN_END_NONE && e <= CN_END_APPROVAL_TIMEOUT;
}

int cn_rollout_restore(cn_rollout *r, const cn_rollout_config *cfg,
                       const cn_rollout_snapshot *snap, int64_t now)
{
    if (!r || !cfg || !snap || r->error != CN_OK || !cfg->plan || !cfg->policy)
        return CN_EINVAL;
    unsigned stages = (unsigned)cfg->plan->stage_count;
    if (snap->state > CN_STATE_FAILED || snap->stage > stages || snap->applying_stage > stages ||
        snap->applying_kind > CN_APPLY_COMPLETE || !valid_end(snap->end) ||
        !valid_end(snap->pending_rollback) ||
        (snap->metric_count != r->metric_count && snap->metric_count != 0) ||
        snap->baked_ms < 0 || snap->waited_ms < 0 ||
        (snap->applying && snap->applying_kind != CN_APPLY_ROLLBACK && snap->applying_stage < 1))
        return CN_EINVAL;
    r->state = snap->state;
    r->end = snap->end;
    r->stage = snap->stage;
    r->applying = snap->applying;
    r->applying_kind = snap->applying_kind;
    r->applying_stage = snap->applying_stage;
    r->pending_rollback = snap->pending_rollback;
    r->approved = snap->approved;
    memcpy(r->approver, snap->approver, sizeof r->approver);
    r->approver[sizeof r->approver - 1] = '\0';
    r->stage_started = now;
    r->baked_before = snap->baked_ms;
    r->awaiting_since = now - snap->waited_ms;
    r->overdue = snap->overdue;
    r->operator_paused = snap->operator_paused;
    memcpy(r->tallies, snap->tallies, sizeof r->tallies);
    r->requests = snap->requests;
    if (r->stage >= 1)
        r->limits = cn_analysis_limits(cfg->policy, cfg->plan->stages[r->stage - 1].bake_ms,
                                       cfg->ai_assisted);
    return CN_OK;
}
