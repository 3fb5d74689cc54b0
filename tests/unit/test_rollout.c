/* Rollout state machine: scripted scenarios (a script of timed events, the
 * trace of actions each step produced, the final state and exit code) for
 * every transition, including the awkward ones (failures and aborts while
 * an actuator call is in flight, a failing rollback, late measurements,
 * the two-person rule); the init and capacity guards; and properties over
 * random event scripts: weights never go backwards except by rollback,
 * never two actuator calls in flight, exactly one FINISH per terminal run,
 * every state change recorded first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/rollout.h"
#include "canary/status.h"

/* ---- fixture ------------------------------------------------------------ */

static cn_metric METRICS[CN_MAX_METRICS + 1] = {
    {.name = "error-rate", .threshold = {.has_max = true, .max = 0.01}},
    {.name = "p99-latency-ms", .threshold = {.has_max = true, .max = 250}},
};

typedef struct fixture {
    bool gate1, gate2;  /* stage 1 / stage 2 needs approval */
    bool ai;
    bool fail_pause;    /* on_failure: pause */
    bool inc_pause;     /* on_inconclusive: pause */
    unsigned min_requests;
    unsigned metrics;   /* 0 means 1 */
    unsigned approval_timeout_s;
    bool timeout_wait;  /* approval.on_timeout: wait */
} fixture;

typedef struct world {
    cn_policy policy;
    cn_plan plan;
    cn_rollout_config cfg;
    cn_rollout r;
    bool crashed;              /* the process died: snap is what the store kept */
    cn_rollout_snapshot snap;
} world;

#define BAKE_MS 60000

static void world_init(world *w, const fixture *f)
{
    memset(w, 0, sizeof *w);
    cn_policy_defaults(&w->policy);
    w->policy.analysis.metrics = METRICS;
    w->policy.analysis.metric_count = f->metrics ? f->metrics : 1;
    w->policy.analysis.on_failure = f->fail_pause ? CN_ON_PAUSE : CN_ON_ROLLBACK;
    w->policy.analysis.on_inconclusive = f->inc_pause ? CN_ON_PAUSE : CN_ON_ROLLBACK;
    w->policy.analysis.min_requests.count = f->min_requests;
    static const double weights[] = {0.01, 0.1, 1.0};
    w->plan.stage_count = 3;
    for (unsigned i = 0; i < 3; i++) {
        w->plan.stages[i].index = i + 1;
        w->plan.stages[i].weight = weights[i];
        w->plan.stages[i].bake_ms = BAKE_MS;
    }
    w->plan.stages[0].approval = f->gate1;
    w->plan.stages[1].approval = f->gate2;
    w->policy.ai.approval_timeout_ms = (int64_t)f->approval_timeout_s * 1000;
    w->policy.ai.approval_on_timeout = f->timeout_wait ? CN_APPROVAL_WAIT : CN_APPROVAL_ROLLBACK;
    w->cfg.plan = &w->plan;
    w->cfg.policy = &w->policy;
    w->cfg.ai_assisted = f->ai;
    w->cfg.author = "alice";
    assert_int_equal(cn_rollout_init(&w->r, &w->cfg), CN_OK);
}

/* ---- events ------------------------------------------------------------- */

typedef struct ev_at {
    int64_t t; /* seconds; -1 ends a script */
    cn_event ev;
} ev_at;

#define END {-1, {.kind = CN_EVENT_START}}
#define START(t) {t, {.kind = CN_EVENT_START}}
#define OK(t) {t, {.kind = CN_EVENT_APPLIED, .ok = true, .why = "exit 0"}}
#define NOK(t) {t, {.kind = CN_EVENT_APPLIED, .ok = false, .why = "exit 1 after 3 retries"}}
#define MEAS(t, m, o, w) \
    {t, {.kind = CN_EVENT_MEASUREMENT, .metric = m, .outcome = CN_OUTCOME_##o, .why = w}}
#define PASS(t) MEAS(t, 0, PASS, "0.004 within [-, 0.01]")
#define FAIL(t) MEAS(t, 0, FAIL, "0.031 > max 0.01")
#define NODATA(t) MEAS(t, 0, NODATA, "no data: empty vector")
#define ERROR(t) MEAS(t, 0, ERROR, "error: HTTP 500")
#define REQ(t, n) {t, {.kind = CN_EVENT_REQUESTS, .requests = n}}
#define TIMER(t) {t, {.kind = CN_EVENT_TIMER}}
#define INTENT(t, i, who, has_role) \
    {t, {.kind = CN_EVENT_INTENT, .intent = CN_INTENT_##i, .actor = who, \
         .actor_has_role = has_role, .reason = "on call"}}
#define SIGTERM(t) {t, {.kind = CN_EVENT_SHUTDOWN}}
#define DETACH(t) {t, {.kind = CN_EVENT_SHUTDOWN, .detach = true}}
#define STORE_LOST(t) {t, {.kind = CN_EVENT_SHUTDOWN, .store_failed = true}}
/* The process dies (SIGKILL) at t: what survives is the snapshot, stored
 * as JSON; RESUME is a new process restoring it and driving on. */
#define CRASH_KIND ((cn_event_kind)100)
#define CRASH(t) {t, {.kind = CRASH_KIND}}
#define RESUME(t) {t, {.kind = CN_EVENT_RESUME}}

/* ---- the driver --------------------------------------------------------- */

typedef struct trace {
    char text[4096];
    size_t len;
    cn_action all[512];
    size_t count;
} trace;

static void trace_add(trace *tr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tr->text + tr->len, sizeof tr->text - tr->len, fmt, ap);
    va_end(ap);
    assert_true(w >= 0 && (size_t)w < sizeof tr->text - tr->len);
    tr->len += (size_t)w;
}

static const char *apply_name(cn_apply_kind k)
{
    return k == CN_APPLY_ADVANCE ? "advance" : k == CN_APPLY_ROLLBACK ? "rollback" : "complete";
}

/* One token per action: the RECORD's type, apply:KIND:STAGE:WEIGHT, poll,
 * stop, timer@SECONDS, finish:CODE. */
static void trace_action(trace *tr, const cn_action *a, bool first)
{
    if (!first)
        trace_add(tr, " ");
    switch (a->kind) {
    case CN_ACTION_RECORD: trace_add(tr, "%s", a->type); break;
    case CN_ACTION_APPLY:
        trace_add(tr, "apply:%s:%u:%g", apply_name(a->apply), a->stage, a->weight);
        break;
    case CN_ACTION_START_POLLING: trace_add(tr, "poll"); break;
    case CN_ACTION_STOP_POLLING: trace_add(tr, "stop"); break;
    case CN_ACTION_ARM_TIMER: trace_add(tr, "timer@%lld", (long long)(a->at / 1000)); break;
    case CN_ACTION_FINISH: trace_add(tr, "finish:%d", a->exit_code); break;
    }
}

/* The snapshot goes through its JSON, as through the store. */
static void crash(world *w, int64_t now)
{
    cn_rollout_snapshot snap = cn_rollout_save(&w->r, now);
    char *json = cn_rollout_snapshot_json(&snap);
    assert_non_null(json);
    char err[160] = "";
    int rc = cn_rollout_snapshot_parse(json, &w->snap, err, sizeof err);
    if (rc != CN_OK)
        print_error("snapshot %s: %s\n", json, err);
    free(json);
    assert_int_equal(rc, CN_OK);
    w->crashed = true;
}

/* A new process: a fresh machine restored from the snapshot at now. */
static void restart(world *w, int64_t now)
{
    assert_int_equal(cn_rollout_init(&w->r, &w->cfg), CN_OK);
    assert_int_equal(cn_rollout_restore(&w->r, &w->cfg, &w->snap, now), CN_OK);
    w->crashed = false;
}

/* Feeds one event; appends the step's actions to the trace ("-" for none),
 * steps separated by " | ". */
static size_t feed(world *w, trace *tr, const ev_at *e)
{
    if (e->ev.kind == CRASH_KIND) {
        crash(w, e->t * 1000);
        trace_add(tr, "%scrash", tr->len ? " | " : "");
        return 0;
    }
    if (w->crashed) {
        assert_int_equal(e->ev.kind, CN_EVENT_RESUME);
        restart(w, e->t * 1000);
    }
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    size_t n = cn_rollout_step(&w->r, &w->cfg, &e->ev, e->t * 1000, out,
                               CN_ROLLOUT_MAX_ACTIONS);
    if (tr->len)
        trace_add(tr, " | ");
    if (!n)
        trace_add(tr, "-");
    for (size_t i = 0; i < n; i++) {
        trace_action(tr, &out[i], i == 0);
        assert_true(tr->count < sizeof tr->all / sizeof tr->all[0]);
        tr->all[tr->count++] = out[i];
    }
    return n;
}

static void run_script(world *w, trace *tr, const ev_at *script)
{
    for (const ev_at *e = script; e->t >= 0; e++)
        feed(w, tr, e);
}

/* Some RECORD of type must hold sub in its detail. */
static void expect_detail(const trace *tr, const char *type, const char *sub)
{
    if (!type)
        return;
    const cn_action *seen = NULL;
    for (size_t i = 0; i < tr->count; i++) {
        const cn_action *a = &tr->all[i];
        if (a->kind != CN_ACTION_RECORD || strcmp(a->type, type))
            continue;
        if (strstr(a->detail, sub))
            return;
        seen = a;
    }
    if (!seen)
        print_error("no record '%s' in trace\n  %s\n", type, tr->text);
    else
        print_error("no record '%s' holds '%s'; one is '%s'\n", type, sub, seen->detail);
    fail();
}

/* ---- scenarios ---------------------------------------------------------- */

typedef struct scenario {
    const char *name;
    fixture f;
    ev_at script[40];
    const char *want;      /* the whole trace */
    cn_rollout_state state;
    int exit_code;         /* checked when terminal or detached */
    const char *type1, *sub1, *type2, *sub2; /* records whose detail must hold sub */
} scenario;

/* The start shared by most scripts: stage 1 applied at t=0, bake ends at 60. */
#define STAGE1 START(0), OK(0)
#define STAGE1_TRACE "started apply:advance:1:0.01 | stage_applied poll timer@60"

static const scenario SCENARIOS[] = {
    {"happy path through every stage to completed", {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), OK(61), PASS(81), PASS(101), PASS(121), OK(122),
      PASS(142), PASS(162), PASS(182), OK(183), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop apply:advance:2:0.1"
     " | stage_applied poll timer@121 | measurement | measurement"
     " | measurement promoted stop apply:advance:3:1 | stage_applied poll timer@182"
     " | measurement | measurement | measurement promoted stop apply:complete:3:1"
     " | completed stop finish:0",
     CN_STATE_COMPLETED, 0, "promoted", "every metric has 3 or more passing samples (3 needed)",
     "stage_applied", "stage 1 of 3 serves 1%; baking 1m"},
    {"two metrics: each needs its own samples", {.metrics = 2},
     {STAGE1, PASS(20), PASS(40), PASS(60), TIMER(60), MEAS(70, 1, PASS, "120 within [-, 250]"),
      MEAS(80, 1, PASS, "130"), MEAS(90, 1, PASS, "140"), END},
     STAGE1_TRACE " | measurement | measurement | measurement | timer@180 | measurement"
     " | measurement | measurement promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "measurement", "p99-latency-ms: pass: 120", NULL, NULL},
    {"the timer promotes when the bake ends after the samples", {0},
     {STAGE1, PASS(10), PASS(20), PASS(30), TIMER(30), TIMER(60), END},
     STAGE1_TRACE " | measurement | measurement | measurement | timer@60"
     " | promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "promoted", "baked 1m of 1m", NULL, NULL},
    {"too few samples: the bake extends to max_bake, then rolls back", {0},
     {STAGE1, PASS(10), TIMER(60), TIMER(180), PASS(181), OK(182), END},
     STAGE1_TRACE " | measurement | timer@180 | rolling_back stop apply:rollback:0:0"
     " | late_measurement | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "rolling_back", "max_bake 3m reached", "late_measurement",
     "a rollback has started"},
    {"no data only never promotes: inconclusive at max_bake rolls back", {0},
     {STAGE1, NODATA(20), NODATA(40), NODATA(60), TIMER(60), NODATA(80), NODATA(100),
      NODATA(120), NODATA(140), NODATA(160), NODATA(180), TIMER(180), OK(181), END},
     STAGE1_TRACE " | measurement | measurement | measurement | timer@180 | measurement"
     " | measurement | measurement | measurement | measurement"
     " | measurement rolling_back stop apply:rollback:0:0 | - | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "rolling_back", "has 0 of 3 passing samples (9 without data)",
     NULL, NULL},
    {"inconclusive with on_inconclusive pause; resume starts the analysis over",
     {.inc_pause = true},
     {STAGE1, NODATA(20), TIMER(60), TIMER(180), TIMER(190), INTENT(200, RESUME, "bob", true),
      PASS(220), PASS(240), PASS(259), TIMER(260), END},
     STAGE1_TRACE " | measurement | timer@180 | paused stop | - | resumed poll timer@260"
     " | measurement | measurement | measurement | promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "paused", "max_bake 3m reached", "resumed", "starts over"},
    {"a failure rolls back; a later measurement is late and not counted", {0},
     {STAGE1, PASS(20), FAIL(40), PASS(50), OK(60), END},
     STAGE1_TRACE " | measurement | measurement rolling_back stop apply:rollback:0:0"
     " | late_measurement | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "rolling_back", "failed 1 time, more than failure_limit 0", "rolled_back",
     "after analysis"},
    {"a late provider error is worded once", {0},
     {STAGE1, PASS(20), FAIL(40), ERROR(50), OK(60), END},
     STAGE1_TRACE " | measurement | measurement rolling_back stop apply:rollback:0:0"
     " | late_measurement | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "late_measurement",
     "error-rate: error: HTTP 500 (not counted: a rollback has started)", NULL, NULL},
    {"provider errors past the limit roll back even with on_failure pause",
     {.fail_pause = true},
     {STAGE1, ERROR(20), ERROR(40), ERROR(60), OK(61), END},
     STAGE1_TRACE " | measurement | measurement | measurement rolling_back stop"
     " apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "measurement", "error-rate: error: HTTP 500", NULL, NULL},
    {"failure with on_failure pause pauses; resume starts over; abort rolls back",
     {.fail_pause = true},
     {STAGE1, FAIL(20), INTENT(30, RESUME, "bob", true), INTENT(40, ABORT, "carol", false),
      INTENT(41, RESUME, "bob", true), OK(42), END},
     STAGE1_TRACE " | measurement paused stop | resumed poll timer@90"
     " | aborted stop apply:rollback:0:0 | intent_refused | aborted finish:4",
     CN_STATE_ABORTED, 4, "aborted", "abort by 'carol': on call: rolling back", NULL, NULL},
    {"a failure during an advance rolls back when the advance returns", {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), FAIL(61), TIMER(62), PASS(62), OK(63), OK(64),
      END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop"
     " apply:advance:2:0.1 | measurement rolling_back | - | measurement"
     " | rolling_back stop apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "rolling_back", "rollback when the call in flight returns",
     "rolled_back", "after analysis"},
    {"a failed advance during which an analysis rollback was due keeps its reason", {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), FAIL(61), NOK(63), OK(64), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop"
     " apply:advance:2:0.1 | measurement rolling_back | actuator_failed stop"
     " apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "actuator_failed", "exit 1 after 3 retries", NULL, NULL},
    {"the rollback itself fails: failed, exit 5", {0},
     {STAGE1, FAIL(20), NOK(30), PASS(40), INTENT(50, ABORT, "bob", true), END},
     STAGE1_TRACE " | measurement rolling_back stop apply:rollback:0:0 | failed finish:5"
     " | late_measurement | intent_refused",
     CN_STATE_FAILED, 5, "failed", "a human must act", NULL, NULL},
    {"abort while rolling back is refused and keeps the reason", {0},
     {STAGE1, FAIL(20), INTENT(25, ABORT, "bob", false), SIGTERM(26), OK(30), END},
     STAGE1_TRACE " | measurement rolling_back stop apply:rollback:0:0 | intent_refused"
     " | intent_refused | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "intent_refused", "already rolling back", NULL, NULL},
    {"abort while pending ends at once: nothing was applied", {0},
     {INTENT(0, ABORT, "carol", false), START(1), PASS(2), TIMER(3), OK(4), SIGTERM(5), END},
     "aborted finish:4 | intent_refused | late_measurement | - | ignored"
     " | intent_refused",
     CN_STATE_ABORTED, 4, "aborted", "nothing was applied", NULL, NULL},
    {"abort during an advance rolls back when it returns, never advancing further", {0},
     {START(0), INTENT(0, ABORT, "carol", false), INTENT(0, ABORT, "bob", false), PASS(1),
      OK(1), OK(2), END},
     "started apply:advance:1:0.01 | aborted | intent_refused | late_measurement"
     " | rolling_back stop apply:rollback:0:0 | aborted finish:4",
     CN_STATE_ABORTED, 4, "aborted", "rollback when the call in flight returns", NULL, NULL},
    {"the first advance fails: rolled back, exit 1", {0},
     {START(0), NOK(1), OK(2), END},
     "started apply:advance:1:0.01 | actuator_failed apply:rollback:0:0"
     " | rolled_back finish:1",
     CN_STATE_ROLLED_BACK, 1, "actuator_failed", "advance of stage 1", "rolled_back",
     "an actuator failure"},
    {"promote --full (human change, no gate) then promote; the completion fails", {0},
     {STAGE1, INTENT(10, PROMOTE_FULL, "carol", false), OK(11), TIMER(12),
      INTENT(12, PROMOTE, "carol", false), NOK(13), OK(14), END},
     STAGE1_TRACE " | operator_promote_full stop apply:advance:3:1 | stage_applied poll timer@71"
     " | timer@71 | operator_promote stop apply:complete:3:1 | actuator_failed stop"
     " apply:rollback:0:0 | rolled_back finish:1",
     CN_STATE_ROLLED_BACK, 1, "operator_promote_full", "the remaining bake (50s)",
     "actuator_failed", "completion of stage 3"},
    {"approval gate: author and role checked, a second senior approves", {.gate2 = true},
     {STAGE1, PASS(20), PASS(40), PASS(60), INTENT(61, APPROVE, "alice", true),
      INTENT(62, APPROVE, "carol", false), INTENT(63, PAUSE, "bob", true),
      INTENT(64, PROMOTE, "bob", true), TIMER(65), PASS(70), INTENT(80, APPROVE, "bob", true),
      OK(81), INTENT(82, APPROVE, "bob", true), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " | approval_refused | approval_refused | intent_refused | intent_refused | -"
     " | measurement | approved stop apply:advance:2:0.1 | stage_applied poll timer@141"
     " | intent_refused",
     CN_STATE_PROGRESSING, -1, "approval_refused", "two-person rule", "awaiting_approval",
     "role 'senior'"},
    {"approval refused without the role", {.gate2 = true},
     {STAGE1, PASS(20), PASS(40), PASS(60), INTENT(62, APPROVE, "carol", false), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " | approval_refused",
     CN_STATE_AWAITING_APPROVAL, -1, "approval_refused", "needs role 'senior'", NULL, NULL},
    {"a failure while awaiting approval rolls back", {.gate2 = true},
     {STAGE1, PASS(20), PASS(40), PASS(60), FAIL(70), OK(71), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " | measurement rolling_back stop apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, NULL, NULL, NULL, NULL},
    {"a gate on stage 1: nothing applied until approved; abort there ends at once",
     {.gate1 = true},
     {START(0), PASS(1), TIMER(1), INTENT(2, APPROVE, "bob", true), OK(3),
      INTENT(4, ABORT, "bob", true), OK(5), END},
     "started awaiting_approval | late_measurement | - | approved apply:advance:1:0.01"
     " | stage_applied poll timer@63 | aborted stop apply:rollback:0:0 | aborted finish:4",
     CN_STATE_ABORTED, 4, "approved", "approved by 'bob'", NULL, NULL},
    {"abort while awaiting the stage 1 gate: nothing was applied", {.gate1 = true},
     {START(0), INTENT(1, ABORT, "alice", false), END},
     "started awaiting_approval | aborted finish:4", CN_STATE_ABORTED, 4, NULL, NULL, NULL,
     NULL},
    {"pause and resume keep the bake served: promotion after 60s in total", {0},
     {STAGE1, PASS(10), PASS(20), PASS(30), INTENT(40, PAUSE, "bob", false), PASS(50),
      TIMER(60), INTENT(70, PAUSE, "bob", false), INTENT(100, RESUME, "carol", false),
      TIMER(110), TIMER(120), END},
     STAGE1_TRACE " | measurement | measurement | measurement | paused | measurement"
     " | - | intent_refused | resumed poll timer@120 | timer@120"
     " | promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "resumed", "40s of the bake already served", NULL, NULL},
    {"operator promote skips the rest of the bake", {0},
     {STAGE1, PASS(10), INTENT(15, PROMOTE, "carol", false), INTENT(16, PROMOTE, "carol", false),
      END},
     STAGE1_TRACE " | measurement | operator_promote stop apply:advance:2:0.1"
     " | intent_refused",
     CN_STATE_PROGRESSING, -1, "operator_promote", "the remaining bake (45s)", NULL, NULL},
    {"operator promote from paused, onto a gate: polling goes on", {.gate2 = true},
     {STAGE1, INTENT(10, PAUSE, "bob", false), INTENT(20, PROMOTE, "bob", false), END},
     STAGE1_TRACE " | paused | operator_promote awaiting_approval",
     CN_STATE_AWAITING_APPROVAL, -1, NULL, NULL, NULL, NULL},
    {"promote --full of an AI change needs the role and a second person",
     {.ai = true, .gate2 = true},
     {STAGE1, INTENT(10, PROMOTE_FULL, "alice", true),
      INTENT(11, PROMOTE_FULL, "carol", false), INTENT(12, PROMOTE_FULL, "bob", true), OK(13),
      END},
     STAGE1_TRACE " | intent_refused | intent_refused"
     " | operator_promote_full approved stop apply:advance:3:1 | stage_applied poll timer@73",
     CN_STATE_PROGRESSING, -1, "intent_refused", "two-person rule", "approved",
     "through promote --full"},
    {"SIGTERM rolls back: aborted, exit 4", {0},
     {STAGE1, PASS(10), SIGTERM(20), OK(21), END},
     STAGE1_TRACE " | measurement | aborted stop apply:rollback:0:0 | aborted finish:4",
     CN_STATE_ABORTED, 4, "aborted", "stopped by a signal", NULL, NULL},
    {"SIGTERM while pending ends at once", {0},
     {SIGTERM(0), END}, "aborted finish:4", CN_STATE_ABORTED, 4, NULL, NULL, NULL, NULL},
    {"a lost state database rolls back: rolled_back, exit 1", {0},
     {STAGE1, PASS(10), STORE_LOST(20), OK(21), END},
     STAGE1_TRACE " | measurement | aborted stop apply:rollback:0:0 | rolled_back finish:1",
     CN_STATE_ROLLED_BACK, 1, "rolled_back", "after a state database failure", "aborted",
     "the state database could not record a decision"},
    {"a lost state database before anything applied ends at once, exit 1", {0},
     {STORE_LOST(0), END}, "aborted finish:1", CN_STATE_ABORTED, 1, NULL, NULL, NULL, NULL},
    {"detach leaves the rollout where it is and exits 1", {0},
     {STAGE1, DETACH(10), END},
     STAGE1_TRACE " | detached stop finish:1", CN_STATE_PROGRESSING, 1, "detached",
     "left progressing at stage 1", NULL, NULL},
    {"min_requests: promotion waits for the request count", {.min_requests = 100},
     {STAGE1, PASS(20), PASS(40), PASS(60), TIMER(60), REQ(61, 50), REQ(62, 150), END},
     STAGE1_TRACE " | measurement | measurement | measurement | timer@180 | requests"
     " | requests promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "requests", "served 50 requests", NULL, NULL},
    {"intents without an actor, unknown metrics, and misplaced intents are refused", {0},
     {{0, {.kind = CN_EVENT_INTENT, .intent = CN_INTENT_ABORT}}, START(0),
      INTENT(0, PAUSE, "bob", false), MEAS(1, 5, PASS, "?"), OK(1),
      INTENT(2, RESUME, "bob", false), INTENT(3, APPROVE, "bob", true), START(4), END},
     "intent_refused | started apply:advance:1:0.01 | intent_refused | late_measurement"
     " | stage_applied poll timer@61 | intent_refused | intent_refused | intent_refused",
     CN_STATE_PROGRESSING, -1, "intent_refused", "no actor given", "late_measurement",
     "no such metric"},
    {"after completion every event is refused or late, never applied",
     {0},
     {STAGE1, INTENT(1, PROMOTE_FULL, "bob", false), OK(2), INTENT(3, PROMOTE, "bob", false),
      OK(4), FAIL(5), REQ(5, 10), TIMER(6), OK(7), INTENT(8, ABORT, "bob", false), SIGTERM(9),
      DETACH(9), START(10), END},
     STAGE1_TRACE " | operator_promote_full stop apply:advance:3:1 | stage_applied poll timer@62"
     " | operator_promote stop apply:complete:3:1 | completed stop finish:0"
     " | late_measurement | late_measurement | - | ignored | intent_refused"
     " | intent_refused | intent_refused | intent_refused",
     CN_STATE_COMPLETED, 0, "late_measurement", "the rollout is over", NULL, NULL},

    /* ---- held by an operator: still judged ---- */
    {"a failure while an operator holds the stage rolls back", {0},
     {STAGE1, PASS(10), INTENT(20, PAUSE, "bob", false), PASS(30), FAIL(40), OK(41), END},
     STAGE1_TRACE " | measurement | paused | measurement | measurement rolling_back stop"
     " apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "paused", "still measured: a failure still rolls back",
     "rolling_back", "failed 1 time"},
    {"on_failure pause: a failure while held keeps it paused, for its evidence now",
     {.fail_pause = true},
     {STAGE1, INTENT(20, PAUSE, "bob", false), FAIL(40), PASS(50), TIMER(300),
      INTENT(400, RESUME, "bob", false), END},
     STAGE1_TRACE " | paused | measurement paused stop | late_measurement | - | resumed poll"
     " timer@460",
     CN_STATE_PROGRESSING, -1, "resumed", "starts over", NULL, NULL},
    {"killed while held by an operator: resumed, it is still measured",
     {0},
     {STAGE1, INTENT(20, PAUSE, "bob", false), CRASH(25), RESUME(30), FAIL(40), OK(41), END},
     STAGE1_TRACE " | paused | crash | resumed poll | measurement rolling_back stop"
     " apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "resumed", "still paused at stage 1 (`canary resume` goes on);"
     " still measured", NULL, NULL},

    /* ---- approval timeout ---- */
    {"nobody approves within approval.timeout: stopped and rolled back, exit 4",
     {.gate2 = true, .ai = true, .approval_timeout_s = 600},
     {STAGE1, PASS(20), PASS(40), PASS(60), TIMER(300), TIMER(660), PASS(661), OK(662), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " timer@660 | timer@660 | aborted stop apply:rollback:0:0 | late_measurement"
     " | aborted finish:4",
     CN_STATE_ABORTED, 4, "aborted", "approval timed out: nobody approved stage 2 within 10m",
     "awaiting_approval", "needs approval by a user with role 'senior'"},
    {"approval.timeout at a first-stage gate: nothing was applied, exit 4",
     {.gate1 = true, .ai = true, .approval_timeout_s = 600},
     {START(0), TIMER(600), INTENT(601, APPROVE, "bob", true), END},
     "started awaiting_approval timer@600 | aborted finish:4 | intent_refused",
     CN_STATE_ABORTED, 4, "aborted", "nothing was applied", NULL, NULL},
    {"on_timeout wait: overdue is said once, an approval still goes on",
     {.gate2 = true, .ai = true, .approval_timeout_s = 600, .timeout_wait = true},
     {STAGE1, PASS(20), PASS(40), PASS(60), TIMER(660), TIMER(700),
      INTENT(800, APPROVE, "bob", true), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " timer@660 | approval_overdue | - | approved stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "approval_overdue", "has waited 10m", NULL, NULL},

    /* ---- resume after the process died (SIGKILL) ---- */
    {"resume of a rollout stopped before it started: it starts", {0},
     {CRASH(0), RESUME(5), OK(6), END},
     "crash | started apply:advance:1:0.01 | stage_applied poll timer@66",
     CN_STATE_PROGRESSING, -1, NULL, NULL, NULL, NULL},
    {"killed while the advance is in flight: the same call is made again, never an earlier",
     {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), CRASH(61), RESUME(70), OK(71), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop apply:advance:2:0.1"
     " | crash | resumed apply:advance:2:0.1 | stage_applied poll timer@131",
     CN_STATE_PROGRESSING, -1, "resumed", "advance call in flight (stage 2, 10%) is made again",
     NULL, NULL},
    {"killed while baking: the bake served and the evidence are kept", {0},
     {STAGE1, PASS(20), PASS(40), CRASH(45), RESUME(100), PASS(110), TIMER(115), END},
     STAGE1_TRACE " | measurement | measurement | crash | resumed poll timer@115"
     " | measurement | promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "resumed", "45s of its bake served", "promoted",
     "3 or more passing samples (3 needed)"},
    {"killed after the bake and the evidence were complete: promotes at once", {0},
     {STAGE1, PASS(20), PASS(40), PASS(59), CRASH(60), RESUME(90), END},
     STAGE1_TRACE " | measurement | measurement | measurement | crash"
     " | resumed poll promoted stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, NULL, NULL, NULL, NULL},
    {"killed during the rollback: the rollback is made again", {0},
     {STAGE1, FAIL(20), CRASH(21), RESUME(30), OK(31), END},
     STAGE1_TRACE " | measurement rolling_back stop apply:rollback:0:0 | crash"
     " | resumed apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "resumed", "rollback call in flight", NULL, NULL},
    {"killed with a rollback due behind an advance: resume rolls back", {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), FAIL(61), CRASH(62), RESUME(70), OK(71), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop apply:advance:2:0.1"
     " | measurement rolling_back | crash | resumed apply:rollback:0:0 | rolled_back finish:3",
     CN_STATE_ROLLED_BACK, 3, "resumed", "rollback for analysis due", NULL, NULL},
    {"killed while awaiting approval: still judged and waiting; the approval goes on",
     {.gate2 = true, .ai = true, .approval_timeout_s = 600},
     {STAGE1, PASS(20), PASS(40), PASS(60), CRASH(100), RESUME(200),
      INTENT(210, APPROVE, "bob", true), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted awaiting_approval"
     " timer@660 | crash | resumed poll timer@760 | approved stop apply:advance:2:0.1",
     CN_STATE_PROGRESSING, -1, "resumed", "stage 2 awaits approval", NULL, NULL},
    {"killed while paused: stays paused until an operator resumes", {.fail_pause = true},
     {STAGE1, FAIL(20), CRASH(25), RESUME(30), TIMER(200), INTENT(300, RESUME, "bob", true),
      END},
     STAGE1_TRACE " | measurement paused stop | crash | resumed | - | resumed poll timer@360",
     CN_STATE_PROGRESSING, -1, "resumed", "still paused at stage 1", NULL, NULL},
    {"killed twice in a row: the second resume is like the first", {0},
     {STAGE1, PASS(20), PASS(40), PASS(60), CRASH(61), RESUME(70), CRASH(71), RESUME(80),
      OK(81), END},
     STAGE1_TRACE " | measurement | measurement | measurement promoted stop apply:advance:2:0.1"
     " | crash | resumed apply:advance:2:0.1 | crash | resumed apply:advance:2:0.1"
     " | stage_applied poll timer@141",
     CN_STATE_PROGRESSING, -1, NULL, NULL, NULL, NULL},
};

static void test_scenarios(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
        const scenario *sc = &SCENARIOS[i];
        world w;
        static trace tr;
        memset(&tr, 0, sizeof tr);
        world_init(&w, &sc->f);
        run_script(&w, &tr, sc->script);
        bool bad = strcmp(tr.text, sc->want) != 0 || w.r.state != sc->state;
        bool check_exit = cn_rollout_state_terminal(sc->state) || sc->exit_code >= 0;
        if (check_exit && w.r.exit_code != sc->exit_code)
            bad = true;
        if (bad) {
            print_error("scenario '%s'\n  got  %s\n  want %s\n  state %s (want %s), exit %d "
                        "(want %d)\n",
                        sc->name, tr.text, sc->want, cn_rollout_state_name(w.r.state),
                        cn_rollout_state_name(sc->state), w.r.exit_code, sc->exit_code);
            failures++;
            continue;
        }
        expect_detail(&tr, sc->type1, sc->sub1);
        expect_detail(&tr, sc->type2, sc->sub2);
    }
    assert_int_equal(failures, 0);
}

/* ---- focused checks ----------------------------------------------------- */

/* A measurement after the rollback started must not reach the tallies. */
static void test_late_measurement_not_counted(void **state)
{
    (void)state;
    world w;
    static trace tr;
    memset(&tr, 0, sizeof tr);
    fixture f = {0};
    world_init(&w, &f);
    static const ev_at script[] = {STAGE1, PASS(10), FAIL(20), PASS(30), FAIL(31), END};
    run_script(&w, &tr, script);
    assert_int_equal(w.r.tallies[0].passes, 1);
    assert_int_equal(w.r.tallies[0].failures, 1);
    assert_int_equal(w.r.state, CN_STATE_ROLLING_BACK);
    assert_int_equal(w.r.end, CN_END_ANALYSIS);
}

static void test_approver_recorded(void **state)
{
    (void)state;
    world w;
    static trace tr;
    memset(&tr, 0, sizeof tr);
    fixture f = {.gate2 = true, .ai = true};
    world_init(&w, &f);
    static const ev_at script[] = {STAGE1, PASS(20), PASS(40), PASS(60),
                                   INTENT(70, APPROVE, "bob", true), END};
    run_script(&w, &tr, script);
    assert_true(w.r.approved);
    assert_string_equal(w.r.approver, "bob");
    assert_int_equal(w.r.applying_stage, 2);
}

/* With no author known the two-person rule cannot be checked: refused. */
static void test_approval_without_author(void **state)
{
    (void)state;
    world w;
    static trace tr;
    memset(&tr, 0, sizeof tr);
    fixture f = {.gate1 = true};
    world_init(&w, &f);
    w.cfg.author = NULL;
    static const ev_at script[] = {START(0), INTENT(1, APPROVE, "bob", true), END};
    run_script(&w, &tr, script);
    assert_string_equal(tr.text, "started awaiting_approval | approval_refused");
    expect_detail(&tr, "approval_refused", "two-person rule cannot be checked");
}

static void test_init_guards(void **state)
{
    (void)state;
    world w;
    fixture f = {0};
    world_init(&w, &f);
    cn_rollout r;
    w.policy.analysis.metric_count = CN_MAX_METRICS + 1;
    assert_int_equal(cn_rollout_init(&r, &w.cfg), CN_EINVAL);
    assert_int_equal(r.error, CN_EINVAL);
    cn_event ev = {.kind = CN_EVENT_START};
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    assert_int_equal(cn_rollout_step(&r, &w.cfg, &ev, 0, out, CN_ROLLOUT_MAX_ACTIONS), 0);
    assert_int_equal(r.state, CN_STATE_PENDING);

    w.policy.analysis.metric_count = CN_MAX_METRICS;
    assert_int_equal(cn_rollout_init(&r, &w.cfg), CN_OK);
    assert_int_equal(r.metric_count, CN_MAX_METRICS);
    assert_true(isnan(r.requests));
    assert_int_equal(r.stage, 0);

    w.plan.stage_count = 0;
    assert_int_equal(cn_rollout_init(&r, &w.cfg), CN_EINVAL);
    w.plan.stage_count = 3;
    cn_rollout_config none = {0};
    assert_int_equal(cn_rollout_init(&r, &none), CN_EINVAL);
}

/* Too small an output array: nothing appended, nothing changed. */
static void test_capacity_is_atomic(void **state)
{
    (void)state;
    world w;
    fixture f = {0};
    world_init(&w, &f);
    cn_event ev = {.kind = CN_EVENT_START};
    cn_action out[CN_ROLLOUT_MAX_ACTIONS];
    assert_int_equal(cn_rollout_step(&w.r, &w.cfg, &ev, 0, out, 1), 0);
    assert_int_equal(w.r.state, CN_STATE_PENDING);
    assert_false(w.r.applying);
    assert_int_equal(cn_rollout_step(&w.r, &w.cfg, &ev, 0, out, 2), 2);
    assert_int_equal(w.r.state, CN_STATE_PROGRESSING);
    assert_true(w.r.applying);
}

static void test_state_names(void **state)
{
    (void)state;
    static const char *const names[] = {"pending",   "progressing", "awaiting_approval",
                                        "paused",    "rolling_back", "completed",
                                        "rolled_back", "aborted",   "failed"};
    for (int s = CN_STATE_PENDING; s <= CN_STATE_FAILED; s++) {
        assert_string_equal(cn_rollout_state_name((cn_rollout_state)s), names[s]);
        assert_int_equal(cn_rollout_state_terminal((cn_rollout_state)s),
                         s >= CN_STATE_COMPLETED);
    }
}

/* ---- snapshots ---------------------------------------------------------- */

/* The first canaries stored a smaller snapshot (numbers for reasons, the
 * bake served before a pause, a monotonic instant that means nothing to a
 * new process); resume reads it, but not one that hides a call in flight. */
static void test_snapshot_parse(void **state)
{
    (void)state;
    cn_rollout_snapshot snap;
    char err[200] = "";
    assert_int_equal(cn_rollout_snapshot_parse(
                         "{\"state\":\"paused\",\"stage\":2,\"applying\":false,"
                         "\"approved\":true,\"approver\":\"bob\",\"baked_before_ms\":30000,"
                         "\"stage_started_ms\":123456,\"end\":0}",
                         &snap, err, sizeof err),
                     CN_OK);
    assert_int_equal(snap.state, CN_STATE_PAUSED);
    assert_int_equal(snap.stage, 2);
    assert_int_equal(snap.baked_ms, 30000);
    assert_string_equal(snap.approver, "bob");
    assert_int_equal(snap.metric_count, 0);
    assert_true(isnan(snap.requests));

    assert_int_equal(cn_rollout_snapshot_parse("{\"state\":\"progressing\",\"stage\":1,"
                                               "\"applying\":true,\"end\":0}",
                                               &snap, err, sizeof err),
                     CN_EINVAL);
    assert_non_null(strstr(err, "cannot be resumed safely"));
    static const char *const bad[] = {
        NULL, "", "[]", "{\"stage\":1}", "{\"state\":\"flying\",\"stage\":1}",
        "{\"state\":\"paused\",\"stage\":-1}",
        "{\"state\":\"paused\",\"stage\":1,\"end\":\"boredom\"}",
        "{\"state\":\"paused\",\"stage\":1,\"tallies\":[[1,2,3]]}",
        "{\"state\":\"paused\",\"stage\":1,\"tallies\":[[1,2,3,4,5,-6]]}",
        "{\"state\":\"paused\",\"stage\":1,\"baked_ms\":-5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(cn_rollout_snapshot_parse(bad[i], &snap, err, sizeof err), CN_EINVAL);
        assert_non_null(strstr(err, "snapshot"));
    }
}

/* A snapshot that does not fit the plan or policy (they changed) is refused
 * and leaves the machine as it was. */
static void test_restore_refuses_what_does_not_fit(void **state)
{
    (void)state;
    world w;
    fixture f = {.metrics = 2};
    world_init(&w, &f);
    cn_rollout_snapshot snap = cn_rollout_save(&w.r, 0);
    snap.state = CN_STATE_PROGRESSING;
    snap.stage = 4; /* the plan has 3 */
    assert_int_equal(cn_rollout_restore(&w.r, &w.cfg, &snap, 0), CN_EINVAL);
    assert_int_equal(w.r.state, CN_STATE_PENDING);
    snap.stage = 2;
    snap.metric_count = 1; /* the policy has 2 */
    assert_int_equal(cn_rollout_restore(&w.r, &w.cfg, &snap, 0), CN_EINVAL);
    snap.metric_count = 2;
    snap.applying = true;
    snap.applying_kind = CN_APPLY_ADVANCE;
    snap.applying_stage = 0;
    assert_int_equal(cn_rollout_restore(&w.r, &w.cfg, &snap, 0), CN_EINVAL);
    snap.applying_stage = 3;
    assert_int_equal(cn_rollout_restore(&w.r, &w.cfg, &snap, 5000), CN_OK);
    assert_int_equal(w.r.stage, 2);
    assert_int_equal(w.r.stage_started, 5000);
}

/* Replay counts the bake up to the last measurement after the snapshot,
 * never the time nobody watched, and only while the bake clock ran. */
static void test_snapshot_replay(void **state)
{
    (void)state;
    cn_rollout_snapshot snap = {.baking = true, .baked_ms = 10000, .metric_count = 2,
                                .requests = NAN};
    cn_event pass = {.kind = CN_EVENT_MEASUREMENT, .metric = 1, .outcome = CN_OUTCOME_PASS};
    cn_event fail = {.kind = CN_EVENT_MEASUREMENT, .metric = 0, .outcome = CN_OUTCOME_FAIL};
    cn_event req = {.kind = CN_EVENT_REQUESTS, .requests = 420};
    cn_event other = {.kind = CN_EVENT_TIMER};
    cn_event unknown = {.kind = CN_EVENT_MEASUREMENT, .metric = 7, .outcome = CN_OUTCOME_FAIL};
    cn_rollout_snapshot_replay(&snap, &pass, 5000);
    cn_rollout_snapshot_replay(&snap, &fail, 8000);
    cn_rollout_snapshot_replay(&snap, &req, 9000);
    cn_rollout_snapshot_replay(&snap, &other, 60000);
    cn_rollout_snapshot_replay(&snap, &unknown, 70000);
    assert_int_equal(snap.baked_ms, 19000);
    assert_int_equal(snap.tallies[1].passes, 1);
    assert_int_equal(snap.tallies[0].failures, 1);
    assert_int_equal(snap.tallies[0].consecutive_failures, 1);
    assert_true(snap.requests == 420);
    cn_rollout_snapshot paused = {.baking = false, .baked_ms = 10000, .metric_count = 1};
    cn_rollout_snapshot_replay(&paused, &fail, 8000);
    assert_int_equal(paused.baked_ms, 10000);
}

/* ---- properties over random scripts ------------------------------------ */

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: deterministic and good enough to pick events */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(next_rand(s) % n);
}

static cn_event random_event(uint64_t *s, bool in_flight)
{
    static const char *const actors[] = {"alice", "bob", "carol", NULL};
    static const cn_outcome outcomes[] = {CN_OUTCOME_PASS, CN_OUTCOME_PASS, CN_OUTCOME_PASS,
                                          CN_OUTCOME_PASS, CN_OUTCOME_NODATA, CN_OUTCOME_FAIL,
                                          CN_OUTCOME_ERROR};
    cn_event ev = {.why = "random"};
    unsigned r = pick(s, 100);
    if (in_flight && r < 30) {
        ev.kind = CN_EVENT_APPLIED;
        ev.ok = pick(s, 10) != 0;
    } else if (r < 33) {
        ev.kind = CN_EVENT_APPLIED; /* with nothing in flight: must be ignored */
        ev.ok = pick(s, 2) != 0;
    } else if (r < 60) {
        ev.kind = CN_EVENT_MEASUREMENT;
        ev.metric = pick(s, 3); /* 2 metrics: index 2 is unknown */
        ev.outcome = outcomes[pick(s, sizeof outcomes / sizeof outcomes[0])];
    } else if (r < 66) {
        ev.kind = CN_EVENT_REQUESTS;
        ev.requests = pick(s, 4) ? (double)pick(s, 300) : NAN;
    } else if (r < 80) {
        ev.kind = CN_EVENT_TIMER;
    } else if (r < 83) {
        ev.kind = CN_EVENT_START;
    } else if (r < 98) {
        ev.kind = CN_EVENT_INTENT;
        ev.intent = (cn_intent)pick(s, 6);
        ev.actor = actors[pick(s, 4)];
        ev.actor_has_role = pick(s, 2) != 0;
    } else {
        ev.kind = CN_EVENT_SHUTDOWN;
        ev.detach = pick(s, 2) != 0;
    }
    return ev;
}

static int expected_exit(const cn_rollout *r)
{
    switch (r->state) {
    case CN_STATE_COMPLETED: return 0;
    case CN_STATE_ABORTED: return 4;
    case CN_STATE_FAILED: return 5;
    case CN_STATE_ROLLED_BACK: return r->end == CN_END_ANALYSIS ? 3 : 1;
    default: return -1;
    }
}

typedef struct prop_counts {
    unsigned terminal[CN_STATE_FAILED + 1];
    unsigned detached, approvals, completes, rollbacks_in_flight_due, resumes, reapplied;
} prop_counts;

/* What the shell keeps: the snapshot of the last decision and the evidence
 * logged after it (measurements and request counts the machine counted). */
typedef struct kept_state {
    cn_rollout_snapshot snap;
    int64_t at;
    struct {
        cn_event ev;
        int64_t at;
    } since[400];
    size_t count;
} kept_state;

static bool is_evidence(const char *type)
{
    return !strcmp(type, "measurement") || !strcmp(type, "requests") ||
           !strcmp(type, "late_measurement");
}

static void keep(kept_state *k, const cn_rollout *r, const cn_event *ev, const cn_action *out,
                 size_t n, int64_t now)
{
    bool decision = false, counted = false;
    for (size_t i = 0; i < n; i++)
        if (out[i].kind == CN_ACTION_RECORD) {
            decision = decision || !is_evidence(out[i].type);
            counted = counted || !strcmp(out[i].type, "measurement") ||
                      !strcmp(out[i].type, "requests");
        }
    if (decision) {
        k->snap = cn_rollout_save(r, now);
        k->at = now;
        k->count = 0;
    } else if (counted) {
        assert_true(k->count < sizeof k->since / sizeof k->since[0]);
        k->since[k->count].ev = *ev;
        k->since[k->count++].at = now;
    }
}

/* SIGKILL, then a new process resumes from what was kept: the machine it
 * rebuilds must hold what the dead one held (but the clocks). */
static void kill_and_restore(world *w, const kept_state *k, int64_t now)
{
    cn_rollout_snapshot snap = k->snap;
    for (size_t i = 0; i < k->count; i++)
        cn_rollout_snapshot_replay(&snap, &k->since[i].ev, k->since[i].at - k->at);
    char *json = cn_rollout_snapshot_json(&snap);
    assert_non_null(json);
    cn_rollout_snapshot back;
    assert_int_equal(cn_rollout_snapshot_parse(json, &back, NULL, 0), CN_OK);
    free(json);
    cn_rollout dead = w->r;
    assert_int_equal(cn_rollout_init(&w->r, &w->cfg), CN_OK);
    assert_int_equal(cn_rollout_restore(&w->r, &w->cfg, &back, now), CN_OK);
    assert_int_equal(w->r.state, dead.state);
    assert_int_equal(w->r.stage, dead.stage);
    assert_int_equal(w->r.applying, dead.applying);
    assert_int_equal(w->r.pending_rollback, dead.pending_rollback);
    assert_int_equal(w->r.approved, dead.approved);
    assert_memory_equal(w->r.tallies, dead.tallies, sizeof dead.tallies);
    assert_true(w->r.requests == dead.requests ||
                (isnan(w->r.requests) && isnan(dead.requests)));
}

static void property_run(uint64_t *seed, prop_counts *pc)
{
    world w;
    fixture f = {
        .gate1 = pick(seed, 8) == 0,
        .gate2 = pick(seed, 2) != 0,
        .ai = pick(seed, 2) != 0,
        .fail_pause = pick(seed, 2) != 0,
        .inc_pause = pick(seed, 2) != 0,
        .min_requests = pick(seed, 3) == 0 ? 100 : 0,
        .metrics = 1 + pick(seed, 2),
    };
    world_init(&w, &f);
    bool in_flight = false, rolled = false, rollback_due = false;
    double last_weight = 0;
    unsigned finishes = 0;
    int64_t now = 0;
    bool detached = false;
    static kept_state kept;
    memset(&kept, 0, sizeof kept);
    kept.snap = cn_rollout_save(&w.r, 0);
    for (int i = 0; i < 300; i++) {
        now += pick(seed, 25000);
        cn_event ev = i == 0 ? (cn_event){.kind = CN_EVENT_START} : random_event(seed, in_flight);
        /* A finished rollout is never resumed: run reports its result. */
        if (i > 0 && !cn_rollout_state_terminal(w.r.state) &&
            (detached || pick(seed, 100) < 3)) {
            /* The call in flight died with the process; a rollback may be
             * made again, nothing else may move backwards. */
            if (in_flight && w.r.applying_kind == CN_APPLY_ROLLBACK)
                rolled = false;
            bool was_applying = w.r.applying;
            kill_and_restore(&w, &kept, now);
            in_flight = false;
            detached = false;
            finishes = 0;
            pc->resumes++;
            pc->reapplied += was_applying;
            ev = (cn_event){.kind = CN_EVENT_RESUME};
        }
        cn_rollout before = w.r;
        cn_action out[CN_ROLLOUT_MAX_ACTIONS];
        size_t n = cn_rollout_step(&w.r, &w.cfg, &ev, now, out, CN_ROLLOUT_MAX_ACTIONS);
        keep(&kept, &w.r, &ev, out, n, now);
        if (ev.kind == CN_EVENT_APPLIED && in_flight)
            in_flight = false;
        bool changed = before.state != w.r.state || before.applying != w.r.applying;
        if (changed && (n == 0 || out[0].kind != CN_ACTION_RECORD)) {
            print_error("state %s -> %s without a RECORD first\n",
                        cn_rollout_state_name(before.state), cn_rollout_state_name(w.r.state));
            fail();
        }
        if (cn_rollout_state_terminal(before.state))
            assert_true(w.r.state == before.state);
        for (size_t k = 0; k < n; k++) {
            const cn_action *a = &out[k];
            if (a->kind == CN_ACTION_APPLY) {
                assert_false(cn_rollout_state_terminal(before.state));
                if (in_flight) {
                    print_error("two actuator calls in flight at step %d\n", i);
                    fail();
                }
                in_flight = true;
                if (a->apply == CN_APPLY_ROLLBACK) {
                    assert_false(rolled);
                    assert_int_equal(a->stage, 0);
                    assert_true(a->weight == 0);
                    rolled = true;
                } else {
                    /* nothing moves forward after a rollback, or once one is due */
                    assert_false(rolled);
                    assert_false(rollback_due);
                    if (a->weight < last_weight) {
                        print_error("weight went back from %g to %g\n", last_weight, a->weight);
                        fail();
                    }
                    last_weight = a->weight;
                    pc->completes += a->apply == CN_APPLY_COMPLETE;
                }
            }
            if (a->kind == CN_ACTION_RECORD && !strcmp(a->type, "approved")) {
                pc->approvals++;
                assert_true(strcmp(w.r.approver, "alice") != 0);
            }
            if (a->kind == CN_ACTION_RECORD && !strcmp(a->type, "measurement"))
                assert_true(before.state != CN_STATE_ROLLING_BACK &&
                            !cn_rollout_state_terminal(before.state));
            if (a->kind == CN_ACTION_FINISH) {
                finishes++;
                if (!cn_rollout_state_terminal(w.r.state)) {
                    assert_int_equal(a->exit_code, 1);
                    detached = true;
                    pc->detached++;
                } else {
                    assert_int_equal(a->exit_code, expected_exit(&w.r));
                }
            }
        }
        if (w.r.pending_rollback != CN_END_NONE && before.pending_rollback == CN_END_NONE) {
            pc->rollbacks_in_flight_due++;
            rollback_due = true;
        }
    }
    if (cn_rollout_state_terminal(w.r.state)) {
        assert_int_equal(finishes, 1);
        assert_int_equal(w.r.exit_code, expected_exit(&w.r));
        pc->terminal[w.r.state]++;
    } else {
        assert_int_equal(finishes, detached ? 1 : 0);
    }
}

static void test_properties(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    prop_counts pc = {0};
    for (int i = 0; i < 2000; i++)
        property_run(&seed, &pc);
    /* the scripts reach every ending, so each assertion above was tried */
    for (int s = CN_STATE_COMPLETED; s <= CN_STATE_FAILED; s++)
        if (pc.terminal[s] < 10) {
            print_error("only %u runs ended %s\n", pc.terminal[s],
                        cn_rollout_state_name((cn_rollout_state)s));
            fail();
        }
    assert_true(pc.detached >= 10);
    assert_true(pc.approvals >= 10);
    assert_true(pc.completes >= 10);
    assert_true(pc.rollbacks_in_flight_due >= 10);
    assert_true(pc.resumes >= 500);
    assert_true(pc.reapplied >= 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_late_measurement_not_counted),
        cmocka_unit_test(test_approver_recorded),
        cmocka_unit_test(test_approval_without_author),
        cmocka_unit_test(test_init_guards),
        cmocka_unit_test(test_capacity_is_atomic),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_snapshot_parse),
        cmocka_unit_test(test_restore_refuses_what_does_not_fit),
        cmocka_unit_test(test_snapshot_replay),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("rollout", tests, NULL, NULL);
}
