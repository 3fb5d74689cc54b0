/*
 * rollout.h: the rollout state machine (pure).
 *
 * Contract: cn_rollout_step() applies one event, at time now (ms on any
 * monotonic clock), to a rollout, changes its state, and appends to out
 * the actions the shell must take, in order. No I/O, no clock, no
 * allocation. Every decision comes with a CN_ACTION_RECORD carrying its
 * evidence; the shell writes each record durably BEFORE it performs any
 * action after it, so the log always says what is about to happen.
 *
 * States (contract, shared/design.md section 4): pending, progressing,
 * awaiting_approval, paused, rolling_back, and the terminal completed,
 * rolled_back, aborted, failed. Only one actuator call is in flight at a
 * time; events that arrive meanwhile are remembered and acted on when it
 * returns (a failure during an advance rolls back as soon as the advance
 * call ends; an abort during a rollback is recorded and changes nothing).
 *
 * Exit codes of `canary run` follow from the terminal state and reason:
 * 0 completed; 3 rolled back by analysis; 4 aborted by an operator or
 * stopped by a signal, and rolled back; 5 the rollback itself failed
 * (state failed: a human must act); 1 any other failure (an advance the
 * actuator could not apply, or a state database that could not record a
 * decision, then rolled back). A run detached by
 * SIGINT/SIGTERM with detach set also exits 1: it has not finished (it
 * is no promotion, and design.md gives no other code), and the rollout
 * keeps its non-terminal state for a later resume.
 *
 * Choices the contract above leaves open:
 *  - During an advance (or completion) call, the stage being left is still
 *    the one measured: a measurement of it is recorded and tallied, and if
 *    it fails or errors the stage, a rollback for analysis is due when the
 *    call returns (whatever on_failure says: the weight has already moved,
 *    so there is no stage left to pause at). During a rollback, and in any
 *    state where no stage is judged, a measurement is recorded as
 *    late_measurement and never counted.
 *  - A reason to roll back decided while a call was in flight (abort,
 *    signal, analysis) stays the reason when that call then fails.
 *  - An operator's pause holds the stage (its bake stands still) but keeps
 *    measuring it: a held canary still serves traffic, so a failure still
 *    rolls back (under on_failure: pause it stays paused, now for its own
 *    evidence, and measuring stops). A pause for the stage's own evidence
 *    measures nothing until an operator resumes.
 *  - resume keeps the bake already served, unless the stage's own evidence
 *    paused it (failed, or inconclusive at max_bake): then its analysis
 *    starts over (fresh tallies and bake), or it would pause again at once.
 *  - ai_assisted.approval.timeout counts from the moment the gate is
 *    reached; then on_timeout rollback stops the rollout (aborted, exit 4,
 *    like an operator's abort: no metric failed), or wait records once that
 *    the approval is overdue and keeps waiting.
 *  - Resume (CN_EVENT_RESUME after cn_rollout_restore) never applies an
 *    earlier stage: a call that was in flight is made again (calls are
 *    idempotent), unless a rollback was already due, which then runs
 *    instead; a stage being baked is judged on with the bake and the
 *    evidence it had; paused and awaiting_approval stay so.
 *  - One approval opens the gate for the rest of the rollout (the planner
 *    gates one stage). An approver must hold the role and differ from the
 *    author; with no author known, approval is refused (the two-person rule
 *    cannot be checked). promote --full needs the same when the change is
 *    AI-assisted or an unapproved gate lies ahead, and then approves it.
 */
#ifndef CANARY_ROLLOUT_H
#define CANARY_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/analysis.h"
#include "canary/plan.h"
#include "canary/policy.h"

#define CN_MAX_METRICS 32

typedef enum {
    CN_STATE_PENDING = 0,
    CN_STATE_PROGRESSING,
    CN_STATE_AWAITING_APPROVAL,
    CN_STATE_PAUSED,
    CN_STATE_ROLLING_BACK,
    CN_STATE_COMPLETED,
    CN_STATE_ROLLED_BACK,
    CN_STATE_ABORTED,
    CN_STATE_FAILED
} cn_rollout_state;

/* "pending", "progressing", ... as in `canary status -o json`. */
const char *cn_rollout_state_name(cn_rollout_state s);
bool cn_rollout_state_terminal(cn_rollout_state s);

/* Why a rollout is ending; decides the terminal state and exit code. */
typedef enum {
    CN_END_NONE = 0,
    CN_END_PROMOTED,        /* completed, exit 0 */
    CN_END_ANALYSIS,        /* metrics failed, errored or stayed inconclusive: exit 3 */
    CN_END_ABORTED,         /* operator abort: exit 4 */
    CN_END_SIGNAL,          /* SIGINT/SIGTERM without --detach-on-signal: exit 4 */
    CN_END_ACTUATOR,        /* an advance or completion could not be applied: exit 1 */
    CN_END_STORE,           /* the state database could not record a decision: exit 1 */
    CN_END_APPROVAL_TIMEOUT /* nobody approved within ai_assisted.approval.timeout: aborted,
                               exit 4 (stopped by a rule, not by the metrics) */
} cn_end_reason;

typedef enum { CN_APPLY_ADVANCE = 0, CN_APPLY_ROLLBACK, CN_APPLY_COMPLETE } cn_apply_kind;

typedef enum {
    CN_INTENT_APPROVE = 0,
    CN_INTENT_PAUSE,
    CN_INTENT_RESUME,
    CN_INTENT_PROMOTE,      /* skip the rest of the current bake */
    CN_INTENT_PROMOTE_FULL, /* straight to 100% */
    CN_INTENT_ABORT
} cn_intent;

typedef enum {
    CN_EVENT_START = 0,  /* begin (or resume) driving the rollout */
    CN_EVENT_APPLIED,    /* the actuator call in flight ended: ok or not (after its retries) */
    CN_EVENT_MEASUREMENT,/* one metric judged: index, outcome, why */
    CN_EVENT_REQUESTS,   /* the min_requests query returned a count (NaN: unknown) */
    CN_EVENT_TIMER,      /* the timer armed by CN_ACTION_ARM_TIMER fired */
    CN_EVENT_INTENT,     /* an operator asked for something */
    CN_EVENT_SHUTDOWN,   /* SIGINT/SIGTERM */
    CN_EVENT_RESUME      /* drive again a rollout restored by cn_rollout_restore */
} cn_event_kind;

typedef struct cn_event {
    cn_event_kind kind;
    bool ok;               /* APPLIED */
    size_t metric;         /* MEASUREMENT: index into policy->analysis.metrics */
    cn_outcome outcome;    /* MEASUREMENT */
    const char *why;       /* MEASUREMENT: evidence (cn_analysis_judge); APPLIED: actuator output */
    double requests;       /* REQUESTS */
    cn_intent intent;      /* INTENT */
    const char *actor;     /* INTENT: who asked */
    bool actor_has_role;   /* INTENT: the actor holds ai_assisted.approval.role
                              (the shell checks the access file) */
    const char *reason;    /* INTENT: free text from --reason, may be NULL */
    bool detach;           /* SHUTDOWN: leave the rollout for a later resume */
    bool store_failed;     /* SHUTDOWN: the shell lost its state database; roll back */
} cn_event;

typedef enum {
    CN_ACTION_RECORD = 0,  /* append to the event log, durably, first */
    CN_ACTION_APPLY,       /* call the actuator: kind, stage, weight */
    CN_ACTION_START_POLLING,
    CN_ACTION_STOP_POLLING,
    CN_ACTION_ARM_TIMER,   /* (re)arm the single timer for time `at` */
    CN_ACTION_FINISH       /* the rollout is over (or detached): exit with exit_code */
} cn_action_kind;

typedef struct cn_action {
    cn_action_kind kind;
    cn_apply_kind apply;   /* APPLY */
    unsigned stage;        /* APPLY: 1-based; 0 for a rollback */
    double weight;         /* APPLY: fraction 0..1 of traffic on the new version */
    int64_t at;            /* ARM_TIMER */
    int exit_code;         /* FINISH */
    char type[32];         /* RECORD: "stage_applied", "measurement", "rolled_back", ... */
    char detail[320];      /* RECORD: the evidence in words */
} cn_action;

/* What does not change during a rollout. The pointers must outlive it. */
typedef struct cn_rollout_config {
    const cn_plan *plan;
    const cn_policy *policy;
    bool ai_assisted;
    const char *author;    /* the change's author, for the two-person rule */
} cn_rollout_config;

typedef struct cn_rollout {
    cn_rollout_state state;
    cn_end_reason end;
    unsigned stage;          /* current stage, 1-based; 0 before the first is applied */
    int64_t stage_started;   /* when the current stage's weight took effect */
    int64_t baked_before;    /* bake served before a pause, carried over */
    bool applying;           /* an actuator call is in flight */
    cn_apply_kind applying_kind;
    unsigned applying_stage;
    cn_end_reason pending_rollback; /* set while an advance is in flight:
                                       roll back for this reason when it ends */
    int64_t awaiting_since;  /* when the approval gate was reached (awaiting_approval) */
    bool overdue;            /* approval.timeout passed with on_timeout: wait (said once) */
    bool operator_paused;    /* paused by `canary pause`: still measured and judged */
    bool approved;           /* the gated stage has its second person's approval */
    char approver[64];       /* who approved (a copy; also in the log) */
    unsigned metric_count;
    cn_metric_tally tallies[CN_MAX_METRICS];
    double requests;         /* last min_requests count, NaN until read */
    cn_stage_limits limits;  /* of the current stage */
    int exit_code;           /* valid once terminal (or detached: 1) */
    int error;               /* CN_OK, or CN_EINVAL when init rejected cfg */
} cn_rollout;

/* A pending rollout for cfg. Returns CN_OK, or CN_EINVAL (also left in
 * r->error) when cfg cannot be driven: no plan or policy, no stages or
 * more than CN_MAX_STAGES, or more than CN_MAX_METRICS metrics (never
 * clamped: judging only some metrics would promote on partial evidence).
 * The caller must check; cn_rollout_step then returns 0 and does nothing. */
int cn_rollout_init(cn_rollout *r, const cn_rollout_config *cfg);

/* Applies ev at now; returns how many actions were appended to out (at
 * most cap; CN_ROLLOUT_MAX_ACTIONS is always enough for one event). When
 * the actions do not fit in cap, nothing is appended and r is unchanged:
 * a shell never receives half a decision. */
#define CN_ROLLOUT_MAX_ACTIONS 12
size_t cn_rollout_step(cn_rollout *r, const cn_rollout_config *cfg, const cn_event *ev,
                       int64_t now, cn_action *out, size_t cap);

/* The weight (fraction) the new version serves in r as far as its state
 * tells: the last applied stage's (also while a rollback is in flight, and
 * after one failed), 0 once rolled back or aborted, 1 once completed. */
double cn_rollout_weight(const cn_rollout *r, const cn_plan *plan);

/* ---- resume ---------------------------------------------------------------
 *
 * What of a rollout outlives its process, free of any clock: durations,
 * not instants. The shell stores it with every decision (the machine
 * column) and, to resume, adds what it finds after it in the log
 * (measurements tallied, the bake they covered), restores, and sends
 * CN_EVENT_RESUME. */
typedef struct cn_rollout_snapshot {
    cn_rollout_state state;
    cn_end_reason end;
    unsigned stage;
    bool applying;
    cn_apply_kind applying_kind;
    unsigned applying_stage;
    cn_end_reason pending_rollback;
    bool approved;
    char approver[64];
    bool baking;             /* the stage's bake clock was running */
    int64_t baked_ms;        /* bake of the current stage served */
    bool awaiting;           /* waiting at the approval gate */
    int64_t waited_ms;       /* time waited there */
    bool overdue;
    bool operator_paused;
    unsigned metric_count;   /* 0: no evidence kept (a snapshot of an older canary) */
    cn_metric_tally tallies[CN_MAX_METRICS];
    double requests;         /* NaN: unknown */
    int64_t replayed_ms;     /* not stored: how far cn_rollout_snapshot_replay got */
} cn_rollout_snapshot;

/* r as of now. */
cn_rollout_snapshot cn_rollout_save(const cn_rollout *r, int64_t now);

/* Sets r (initialised by cn_rollout_init for cfg) to snap as of now.
 * CN_EINVAL, r unchanged, when snap does not fit cfg (a stage or metric
 * count the plan or policy does not have, an unknown state): the plan or
 * policy changed since the snapshot was taken. */
int cn_rollout_restore(cn_rollout *r, const cn_rollout_config *cfg,
                       const cn_rollout_snapshot *snap, int64_t now);

/* Adds to snap one piece of evidence the log holds after it: ev, a
 * MEASUREMENT or REQUESTS the machine counted (logged as "measurement" or
 * "requests"), after_ms after the snapshot was taken. Call in log order.
 * The bake the measurements covered counts as served; the time after the
 * last one, when nobody was watching, does not. Other events are ignored. */
void cn_rollout_snapshot_replay(cn_rollout_snapshot *snap, const cn_event *ev, int64_t after_ms);

/* The snapshot as one line of JSON (free() it; NULL when out of memory),
 * and back. Parsing accepts the snapshots older canaries wrote (no bake
 * clock: the bake served before the last pause, no tallies) and refuses
 * anything else that is not a snapshot: CN_EINVAL with err saying what. */
char *cn_rollout_snapshot_json(const cn_rollout_snapshot *snap);
int cn_rollout_snapshot_parse(const char *json, cn_rollout_snapshot *snap, char *err,
                              size_t errlen);

#endif
