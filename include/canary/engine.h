/*
 * engine.h: drives one rollout on a libuv loop (shell).
 *
 * Contract: the engine turns the world into events for the pure state
 * machine (rollout.h) and carries out the actions it returns, in order:
 * every RECORD is written to the store (durably) before any later action
 * of the same step is taken; APPLY calls the actuator (one call at a time,
 * with its retries, each attempt also recorded); START/STOP_POLLING run the
 * analysis timer, which polls every metric of the policy concurrently
 * (canary, and {{previous_version}} for metrics with a baseline) and the
 * min_requests query, each request bounded by analysis.timeout; judged
 * metrics read both versions' samples by range queries over the stage's
 * bake so far (at 100% the previous version's from before the stage took
 * effect) and are judged as one round (judge_round.h) when the last reply
 * is in, one measurement each; ARM_TIMER
 * sets the single decision timer; FINISH stops everything and reports the
 * exit code. Several engines may share one loop, http client and store.
 * With a deferring store (store.h) measurements are held, and the engine
 * that held one flushes within CN_STORE_FLUSH_MS; a failed flush stops it
 * as a failed record does, and finishing flushes what is still held.
 *
 * Operators: every second the engine reads the rollout's intents not yet
 * acted on (canary approve|pause|resume|promote|abort), checks the user
 * against the access file (unknown users are refused; the approval role
 * is the policy's), feeds each to the state machine, records what came of
 * it with the user as actor, and marks the intent with that result. With a
 * lease holder set it renews the rollout's lease every
 * CN_LEASE_HEARTBEAT_MS; if the lease was taken over, it stops at once
 * without writing anything more (another process drives the rollout now)
 * and the run exits 1.
 *
 * If the store cannot record an event, nothing that event announced is
 * done: the engine stops as after SIGTERM (rolls the canary back, which it
 * still tries to record), and the run exits 1 (5 if the rollback fails):
 * traffic safety first, then tell a human the log is incomplete.
 * Everything the config points to must outlive the engine.
 */
#ifndef CANARY_ENGINE_H
#define CANARY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "canary/access.h"
#include "canary/analysis.h"
#include "canary/http_client.h"
#include "canary/plan.h"
#include "canary/policy.h"
#include "canary/rollout.h"
#include "canary/store.h"

typedef struct cn_engine cn_engine;

/* What the engine tells its caller (the terminal view, the demo, tests).
 * Any callback may be NULL. They run on the loop and must not block. */
typedef struct cn_engine_observer {
    /* After an event was stored (or failed to be: stored is false). */
    void (*on_record)(void *ctx, const cn_engine *e, const cn_store_event *ev, bool stored);
    /* A metric was read and judged (before the state machine sees it). */
    void (*on_reading)(void *ctx, const cn_engine *e, size_t metric, const cn_reading *canary,
                       cn_outcome outcome, const char *why);
    /* The rollout ended (or was detached) with this exit code. */
    void (*on_finish)(void *ctx, const cn_engine *e, int exit_code);
    void *ctx;
} cn_engine_observer;

typedef struct cn_engine_config {
    uv_loop_t *loop;
    cn_http *http;
    cn_store *store;          /* the rollout row must exist (cn_store_create) */
    const cn_plan *plan;
    const cn_policy *policy;
    bool ai_assisted;
    const char *rollout, *service, *version, *previous_version, *author;
    const cn_access *access;  /* --access: who may act, with which roles; NULL: nobody
                                 holds a role (approvals are refused), anyone may
                                 pause, resume, promote or abort */
    const char *lease_holder; /* the lease this process holds; NULL: no lease */
    const cn_rollout_snapshot *resume; /* drive on from this snapshot (cn_engine_snapshot)
                                          instead of starting; NULL: start */
    cn_engine_observer observer;
} cn_engine_config;

/* What can be checked before anything is stored or moved: there is an
 * actuator, a metric with a baseline or a judge has a previous_version to
 * query, and
 * every header a source takes from the environment is set. CN_OK or
 * CN_EINVAL with err naming the problem and what to do. */
int cn_engine_check(const cn_engine_config *cfg, char *err, size_t errlen);
/* The part of it about baselines (also for `canary simulate`): a metric
 * with a baseline needs a previous_version to query. */
int cn_engine_check_baseline(const cn_policy *p, const char *previous_version, char *err,
                             size_t errlen);

/* Checks the config (cn_engine_check), then starts the rollout: the first
 * event is recorded and stage 1 is applied from the loop. CN_EINVAL with
 * err naming the problem (nothing was recorded), CN_ENOMEM. */
int cn_engine_start(cn_engine **out, const cn_engine_config *cfg, char *err, size_t errlen);

/* The snapshot to resume rollout id from: the one stored with its last
 * decision, plus the evidence logged after it (cn_rollout_snapshot_replay).
 * A rollout stored but never started gives a pending snapshot. CN_EINVAL
 * with err saying why when the snapshot cannot be read or does not fit
 * policy; store errors as cn_store_get. */
int cn_engine_snapshot(cn_store *store, const char *id, const cn_policy *policy,
                       cn_rollout_snapshot *snap, char *err, size_t errlen);

/* SIGINT/SIGTERM: roll back (detach false) or leave the rollout as it is
 * for a later resume (detach true). Safe to call at any time, also twice. */
void cn_engine_shutdown(cn_engine *e, bool detach);

const cn_rollout *cn_engine_rollout(const cn_engine *e);
const cn_engine_config *cn_engine_config_of(const cn_engine *e);
/* The weight (fraction) the new version serves now, as far as the engine
 * knows: the last applied stage's, 0 after a rollback, 1 once completed. */
double cn_engine_weight(const cn_engine *e);
bool cn_engine_finished(const cn_engine *e);
int cn_engine_exit_code(const cn_engine *e);
/* Why the engine stopped without finishing the rollout (its lease was
 * taken over), or NULL. */
const char *cn_engine_stop_reason(const cn_engine *e);

/* Stops whatever is still running and frees e once its handles closed
 * (run the loop to let them close). */
void cn_engine_close(cn_engine *e);

#endif
