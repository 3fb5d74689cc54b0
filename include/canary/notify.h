/*
 * notify.h: tells the policy's webhooks (notify:) what happens to a rollout
 * (shell).
 *
 * Contract: one cn_notifier per rollout, on the loop's cn_http. It is fed
 * every record the engine makes (cn_notify_observer() chains it into an
 * engine observer; cn_notify_feed() takes one record) and turns six kinds
 * into notifications, nothing else:
 *   started -> started          stage_applied -> stage_advanced
 *   awaiting_approval -> awaiting_approval
 *   rolled_back -> rolled_back, and aborted once the rollout's state is
 *   aborted (the end of an aborted rollout; the "aborted ...: rolling back"
 *   record before the rollback is not one) -> rolled_back
 *   completed -> completed      failed -> failed
 * Each webhook whose events include it gets one POST of JSON: generic, an
 * object {"event", "rollout", "service", "version", "ai_assisted", "state",
 * "stage", "stages", "weight", "detail", "actor", "time"}; slack,
 * {"text": one line}. docs/policy.md#notify has both.
 *
 * Sending never holds up or fails the rollout. Feeding only queues and
 * returns; nothing is called back from inside a feed. Each webhook gets its
 * notifications one at a time, in order, each POST bounded by its timeout
 * (redirects are not followed: cn_http refuses them). A connection error
 * or a 5xx is tried once more after 1 s; a reply that took the whole
 * timeout is not (the webhook may have taken it, and a run would wait for
 * it twice at exit). What is not delivered then, and the oldest waiting
 * notification when a 65th would wait behind the one in flight (at most
 * 64 wait per webhook), is reported through on_failure with the reason;
 * the rollout never hears of it.
 */
#ifndef CANARY_NOTIFY_H
#define CANARY_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "canary/engine.h"
#include "canary/http_client.h"
#include "canary/policy.h"
#include "canary/rollout.h"
#include "canary/store.h"

#define CN_NOTIFY_QUEUE_MAX 64
#define CN_NOTIFY_RETRY_MS 1000

typedef struct cn_notifier cn_notifier;

/* A notification that was not delivered. url is the webhook's as written
 * (it may hold a secret in its path: show cn_notify_url_shown() instead);
 * why says what failed and what was lost: "connection refused
 * (127.0.0.1:9) twice; the 'completed' notification was not sent". */
typedef void (*cn_notify_failure)(void *ctx, const char *url, const char *why);

typedef struct cn_notify_config {
    uv_loop_t *loop;
    cn_http *http;              /* must outlive the notifier */
    const cn_webhook *hooks;    /* the policy's notify list; outlives the notifier */
    size_t hook_count;
    const char *rollout, *service, *version; /* copied */
    bool ai_assisted;
    cn_notify_failure on_failure; /* may be NULL */
    void *ctx;
    int64_t retry_ms;           /* 0: CN_NOTIFY_RETRY_MS; tests shorten it */
} cn_notify_config;

/* Checks what can be checked before a run stores anything: every header a
 * webhook takes from the environment is set (cn_source_headers). CN_OK, or
 * CN_EINVAL with err naming the webhook (its entry's line in the policy)
 * and the variable. */
int cn_notify_check(const cn_policy *p, char *err, size_t errlen);

/* A notifier for cfg, with every webhook's headers read now. CN_OK;
 * CN_EINVAL (err as cn_notify_check) or CN_ENOMEM, and *out is NULL. With
 * no webhooks it is valid and sends nothing. */
int cn_notify_new(cn_notifier **out, const cn_notify_config *cfg, char *err, size_t errlen);

/* Where the rollout is when a record is made. */
typedef struct cn_notify_status {
    cn_rollout_state state;
    unsigned stage;       /* the rollout's stage (0 before the first, and after a rollback) */
    unsigned stages;
    double stage_weight;  /* the planned weight (fraction) of stage; 0 for stage 0 */
    double weight;        /* what the new version serves now (fraction) */
} cn_notify_status;

/* One record: queues a notification for every webhook that wants it, when
 * the record is one of the six above. In a notification "stage" is the
 * last stage applied (so a rollback names the stage it left) and "weight"
 * what the new version serves now. NULL n does nothing. */
void cn_notify_feed(cn_notifier *n, const cn_store_event *ev, const cn_notify_status *st);

/* An engine observer that feeds n every record (state from the engine),
 * then calls next's callbacks (next may be NULL). n NULL: next itself. */
cn_engine_observer cn_notify_observer(cn_notifier *n, const cn_engine_observer *next);

/* At the end of a run: lets what is queued go out and calls done(ctx) once
 * nothing is in flight or waiting, from the loop (never from inside this
 * call). It waits at most twice the longest webhook timeout and one retry
 * delay: what has not gone out by then is cancelled and reported through
 * on_failure. done may free n. NULL n: done is called at once. */
typedef void (*cn_notify_drained)(void *ctx);
void cn_notify_drain(cn_notifier *n, cn_notify_drained done, void *ctx);

/* Cancels what is in flight or waiting (without reports) and frees n once
 * the loop has closed its timers. Call it before closing the cn_http.
 * NULL is fine. */
void cn_notify_free(cn_notifier *n);

/* url up to its host (and port): "https://hooks.slack.com/..." for a URL
 * with a path, the URL itself otherwise. Webhook URLs often carry their
 * secret in the path, and messages end up in CI logs. */
void cn_notify_url_shown(char *buf, size_t len, const char *url);

/* An on_failure for `canary run`: "canary run: notify URL failed: WHY;
 * the rollout goes on" on stream (a FILE *; NULL: stderr), URL as shown by
 * cn_notify_url_shown(). */
void cn_notify_log_failure(void *stream, const char *url, const char *why);

#endif
