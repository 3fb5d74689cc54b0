/*
 * actuator.h: moving traffic: calling the policy's actuator (shell).
 *
 * Contract (shared/design.md section 4): an exec actuator is the policy's
 * argv run with uv_spawn (no shell; argv[0] without a slash is looked up
 * in PATH) in a session and process group of its own, with stdin from
 * /dev/null and the parent's environment plus CANARY_ROLLOUT,
 * CANARY_SERVICE, CANARY_VERSION, CANARY_PREVIOUS_VERSION ("" when there
 * is none), CANARY_STAGE (1-based; 0 on rollback), CANARY_WEIGHT (percent
 * of traffic on the new version: "0.5", "100", "0") and CANARY_ACTION
 * (advance, rollback, complete); values of these names already in the
 * parent's environment are replaced, not duplicated. Exit status 0 means
 * applied. An http actuator POSTs the same fields as a compact JSON object
 * {"rollout","service","version","previous_version" (null when none),
 * "stage","weight" (number, percent),"action"} to its URL, with the
 * policy's bearer_token_env / headers_from_env headers; any 2xx means
 * applied.
 * Each attempt is bounded by the policy's timeout (then SIGTERM to the
 * group, SIGKILL one second later; for http, the request's own time-out).
 * An exec attempt ends when the program has exited and its stdout and
 * stderr are closed, or one second after the exit: a grandchild that
 * keeps them open is left running, but no longer waited for. A failed
 * attempt is retried up to `retries` times, after backoff, 2 x backoff,
 * 4 x backoff... (capped at one minute). Output (stdout and stderr
 * interleaved, or the reply body) is captured, the last 2 KiB of each
 * attempt kept, after "[... N bytes cut]" when more came. Calls are
 * idempotent by contract, so a retry or a resume may apply the same stage
 * again.
 *
 * Choices the contract above leaves open:
 *  - A program that cannot start (missing, not executable) and an http
 *    actuator whose credential variable is unset or empty fail their
 *    attempt, with the reason in `what`, and are retried like any other
 *    failure: simpler to reason about, and the event log shows every try.
 *  - on_attempt and done are only ever called from the loop, never from
 *    inside cn_actuator_start() or cn_actuator_cancel().
 *  - cn_actuator_cancel() may be called from inside on_attempt (no retry,
 *    no done follows); from inside done it does nothing. Once done has
 *    returned, the call frees itself: do not use the pointer again.
 */
#ifndef CANARY_ACTUATOR_H
#define CANARY_ACTUATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "canary/http_client.h"
#include "canary/policy.h"
#include "canary/rollout.h"

typedef struct cn_actuation {
    cn_apply_kind kind;
    unsigned stage;   /* 0 for a rollback */
    double weight;    /* fraction 0..1 */
    const char *rollout, *service, *version, *previous_version;
    const char *driver; /* the lease holder of the run making the call, or NULL:
                           CANARY_DRIVER, by which a later run finds the calls
                           of a dead one (cn_actuator_kill_orphans) */
} cn_actuation;

/* One attempt, reported as it ends (for the event log). what: "exit 0 in
 * 12 ms", "exit 1 in 3 ms", "killed by signal 9 in 5 ms", "killed after
 * timeout 30s", "could not start 'set-weight': no such file or directory",
 * "HTTP 503 in 4 ms", "connection refused (127.0.0.1:9)", or the reason a
 * request was not sent. Both strings are valid during the callback only. */
typedef struct cn_attempt {
    unsigned number;    /* 1-based */
    bool ok;
    bool last;          /* no retry follows (ok, or retries exhausted) */
    int64_t retry_in_ms;/* when not last: the backoff before the next */
    const char *what;
    const char *output; /* captured output, last 2 KiB, "" when none */
} cn_attempt;

typedef void (*cn_attempt_cb)(void *ctx, const cn_attempt *a);
/* Called once, after the last attempt: ok, and how many attempts it took. */
typedef void (*cn_actuation_done)(void *ctx, bool ok, unsigned attempts);

typedef struct cn_actuator_call cn_actuator_call;

/* Starts a; everything is copied. http is used by http actuators (may be
 * NULL for exec ones). on_attempt may be NULL. CN_OK, CN_EINVAL (err says:
 * no actuator configured), CN_ENOMEM; on error no callback is called. A
 * program that cannot be started is a failed attempt, not an error here. */
int cn_actuator_start(cn_actuator_call **out, uv_loop_t *loop, cn_http *http,
                      const cn_actuator *cfg, const cn_actuation *a, cn_attempt_cb on_attempt,
                      cn_actuation_done done, void *ctx, char *err, size_t errlen);

/* Stops a call in flight: kills its process group (SIGKILL), cancels its
 * request or backoff; no callback follows. The call is freed once the loop
 * has closed its handles (a killed program's handle closes when it has
 * been reaped). NULL does nothing; after a cancel, c must not be used. */
void cn_actuator_cancel(cn_actuator_call *c);

/* Before a resumed run acts: stops the exec actuator calls a dead run
 * left running (its processes, found by the CANARY_DRIVER=driver of their
 * environment: the dead run's lease holder, and their process groups get
 * SIGKILL), so an old call cannot land after the new run's decisions.
 * Waits, bounded by wait_ms and before any loop runs, until they are
 * gone. *killed: how many calls (process groups); *first: the process
 * group of one, for the message.
 * CN_OK, or CN_EBUSY when one was still there after wait_ms. Linux
 * (/proc); elsewhere it finds nothing. */
int cn_actuator_kill_orphans(const char *driver, int wait_ms, unsigned *killed, long *first);

/* CANARY_WEIGHT's text for a fraction: the percentage to six significant
 * digits, so 0.005 -> "0.5", 1 -> "100", 0 -> "0", 1/3 -> "33.3333". */
void cn_format_weight(char *buf, size_t len, double fraction);
/* "advance", "rollback", "complete". */
const char *cn_apply_kind_name(cn_apply_kind k);

#endif
