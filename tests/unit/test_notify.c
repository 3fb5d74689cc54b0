/* Notifications against a webhook receiver on 127.0.0.1 in the test's
 * loop (tests/support/hook_server.c, which keeps every request byte for
 * byte): the generic and slack payloads field by field, which records make
 * which notification and the per-webhook event filter, credentials from
 * the environment (sent; refused by name when unset), a hanging webhook
 * that neither delays a feed nor holds a drain past its timeout, retries
 * (connection refused and 5xx once, 4xx and time-outs never), the bound of
 * 64 waiting notifications, and draining. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "canary/http_client.h"
#include "canary/notify.h"
#include "canary/status.h"

#include "checks.h"
#include "hook_server.h"
#include "server.h"

/* 2026-11-29T09:35:32.270Z */
#define T0 1795944932270LL

/* ---- the fixture: loop, receiver, client, what the notifier reported ------ */

#define MAX_FAIL 16

typedef struct fx {
    uv_loop_t loop;
    cn_hook_server *srv;
    cn_http *http;
    cn_notifier *n;
    char url[128];
    char urls[MAX_FAIL][128];
    char fails[MAX_FAIL][800];
    uint64_t fail_at[MAX_FAIL];
    size_t fail_count;
    unsigned drained;
    uint64_t drained_at;
    size_t requests_at_drain;
} fx;

static void on_failure(void *ctx, const char *url, const char *why)
{
    fx *f = ctx;
    assert_true(f->fail_count < MAX_FAIL);
    snprintf(f->urls[f->fail_count], sizeof f->urls[0], "%s", url);
    snprintf(f->fails[f->fail_count], sizeof f->fails[0], "%s", why);
    f->fail_at[f->fail_count++] = uv_now(&f->loop);
}

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = cn_hook_server_start(&f->loop);
    assert_int_equal(cn_http_new(&f->http, &f->loop), CN_OK);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/hooks/canary",
             cn_hook_server_port(f->srv));
    return f;
}

/* A notifier for the rollout "checkout-v2.14.0" of checkout v2.14.0. */
static void fx_notifier(fx *f, const cn_webhook *hooks, size_t n, bool ai, int64_t retry_ms)
{
    cn_notify_config cfg = {.loop = &f->loop, .http = f->http, .hooks = hooks, .hook_count = n,
                            .rollout = "checkout-v2.14.0", .service = "checkout",
                            .version = "v2.14.0", .ai_assisted = ai, .on_failure = on_failure,
                            .ctx = f, .retry_ms = retry_ms};
    char err[256] = "";
    int rc = cn_notify_new(&f->n, &cfg, err, sizeof err);
    if (rc != CN_OK)
        fail_msg("cn_notify_new: %d: %s", rc, err);
}

typedef struct waiter {
    uv_timer_t check;
    fx *f;
    bool (*done)(const fx *);
    uint64_t end;
} waiter;

/* Checked from a timer: a loop run once may block in its poll right after
 * a timer fired, so the test never decides between two runs. */
static void on_check(uv_timer_t *t)
{
    waiter *w = t->data;
    if (w->done(w->f) || uv_now(t->loop) >= w->end)
        uv_stop(t->loop);
}

/* Runs the loop until done(f) or limit_ms passed (a failure). */
static void run_until(fx *f, bool (*done)(const fx *), uint64_t limit_ms, const char *what)
{
    uv_update_time(&f->loop);
    waiter w = {.f = f, .done = done, .end = uv_now(&f->loop) + limit_ms};
    uv_timer_init(&f->loop, &w.check);
    w.check.data = &w;
    uv_timer_start(&w.check, on_check, 0, 2);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w.check, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (!done(f))
        fail_msg("timed out after %llu ms waiting for %s", (unsigned long long)limit_ms, what);
}

static size_t want_requests;
static bool enough_requests(const fx *f)
{
    return cn_hook_server_count(f->srv) >= want_requests;
}

static size_t want_failures;
static bool enough_failures(const fx *f)
{
    return f->fail_count >= want_failures;
}

static bool is_drained(const fx *f)
{
    return f->drained > 0;
}

static void on_drained(void *ctx)
{
    fx *f = ctx;
    f->drained++;
    f->drained_at = uv_now(&f->loop);
    f->requests_at_drain = cn_hook_server_count(f->srv);
}

/* Frees everything; the loop must close with no handle left. */
static void fx_free(fx *f)
{
    cn_notify_free(f->n);
    cn_http_close(f->http);
    cn_hook_server_close(f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static cn_webhook hook(const char *url, int format, unsigned events)
{
    return (cn_webhook){.url = url, .format = format, .events = events, .timeout_ms = 3000};
}

/* A record and where the rollout was after it. */
static void feed(fx *f, const char *type, const char *detail, cn_rollout_state state,
                 unsigned stage, unsigned stages, double stage_weight, double weight)
{
    cn_store_event ev = {.time_ms = T0, .type = type, .actor = "canary", .detail = detail};
    cn_notify_status st = {.state = state, .stage = stage, .stages = stages,
                           .stage_weight = stage_weight, .weight = weight};
    cn_notify_feed(f->n, &ev, &st);
}

static json_t *body_json(const fx *f, size_t i)
{
    json_error_t e;
    json_t *j = json_loads(cn_hook_server_body(f->srv, i), 0, &e);
    if (!j)
        fail_msg("request %zu: not JSON (%s): %s", i, e.text, cn_hook_server_body(f->srv, i));
    return j;
}

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", key);
    return json_string_value(v);
}

static json_int_t int_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return json_integer_value(v);
}

static double num_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("'%s' is not a number", key);
    return json_number_value(v);
}

/* The "event" of every request, space-separated. */
static void events_sent(const fx *f, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < cn_hook_server_count(f->srv); i++) {
        json_t *j = body_json(f, i);
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? " " : "", str_of(j, "event"));
        json_decref(j);
    }
}

/* ---- payloads ------------------------------------------------------------ */

static void test_generic_payload(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    fx_notifier(f, &h, 1, false, 0);
    feed(f, "started", "5 stages to 100%, first 0.5%; author 'alice'", CN_STATE_PROGRESSING, 0,
         5, 0, 0);
    feed(f, "stage_applied", "stage 2 of 5 serves 5%; baking 10m", CN_STATE_PROGRESSING, 2, 5,
         0.05, 0.05);
    want_requests = 2;
    run_until(f, enough_requests, 5000, "2 requests");

    const char *head = cn_hook_server_head(f->srv, 0);
    assert_prefix(head, "POST /hooks/canary HTTP/1.1\r\n");
    assert_contains(head, "\r\nContent-Type: application/json");
    json_t *j = body_json(f, 0);
    assert_int_equal(json_object_size(j), 12);
    assert_string_equal(str_of(j, "event"), "started");
    assert_string_equal(str_of(j, "rollout"), "checkout-v2.14.0");
    assert_string_equal(str_of(j, "service"), "checkout");
    assert_string_equal(str_of(j, "version"), "v2.14.0");
    assert_true(json_is_false(json_object_get(j, "ai_assisted")));
    assert_string_equal(str_of(j, "state"), "progressing");
    assert_int_equal(int_of(j, "stage"), 0);
    assert_int_equal(int_of(j, "stages"), 5);
    assert_true(num_of(j, "weight") == 0);
    assert_string_equal(str_of(j, "detail"), "5 stages to 100%, first 0.5%; author 'alice'");
    assert_string_equal(str_of(j, "actor"), "canary");
    assert_string_equal(str_of(j, "time"), "2026-11-29T09:35:32.270Z");
    json_decref(j);

    j = body_json(f, 1);
    assert_string_equal(str_of(j, "event"), "stage_advanced");
    assert_int_equal(int_of(j, "stage"), 2);
    /* percent, spelt as CANARY_WEIGHT spells it */
    assert_true(num_of(j, "weight") == 5);
    assert_string_equal(str_of(j, "detail"), "stage 2 of 5 serves 5%; baking 10m");
    json_decref(j);
    assert_int_equal(f->fail_count, 0);
    fx_free(f);
}

/* A rollback names the stage it left, and says the new version serves 0. */
static void test_rollback_names_the_stage_left(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_webhook h[2] = {hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ROLLED_BACK),
                       hook(f->url, CN_NOTIFY_SLACK, CN_NOTIFY_ROLLED_BACK)};
    fx_notifier(f, h, 2, true, 0);
    feed(f, "stage_applied", "stage 2 of 5 serves 5%", CN_STATE_PROGRESSING, 2, 5, 0.05, 0.05);
    feed(f, "rolling_back", "error-rate failed", CN_STATE_ROLLING_BACK, 2, 5, 0.05, 0.05);
    feed(f, "rolled_back", "rolled back after analysis; previous version serves 100%",
         CN_STATE_ROLLED_BACK, 0, 5, 0, 0);
    want_requests = 2;
    run_until(f, enough_requests, 5000, "2 requests");
    json_t *generic = NULL, *slack = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_t *j = body_json(f, i);
        if (json_object_get(j, "text"))
            slack = j;
        else
            generic = j;
    }
    assert_non_null(generic);
    assert_non_null(slack);
    assert_string_equal(str_of(generic, "event"), "rolled_back");
    assert_string_equal(str_of(generic, "state"), "rolled_back");
    assert_int_equal(int_of(generic, "stage"), 2);
    assert_true(num_of(generic, "weight") == 0);
    assert_true(json_is_true(json_object_get(generic, "ai_assisted")));
    assert_int_equal(json_object_size(slack), 1);
    assert_string_equal(str_of(slack, "text"),
                        ":rotating_light: canary: rollout `checkout-v2.14.0` (checkout v2.14.0, "
                        "AI-assisted) rolled back at stage 2/5 (5%): rolled back after "
                        "analysis; previous version serves 100%");
    json_decref(generic);
    json_decref(slack);
    fx_free(f);
}

/* One line per event; Slack's control characters in a detail are escaped. */
static void test_slack_lines(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_webhook h = hook(f->url, CN_NOTIFY_SLACK, CN_NOTIFY_ALL);
    fx_notifier(f, &h, 1, false, 0);
    feed(f, "started", "3 stages", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "stage_applied", "stage 1 of 3 serves 0.5%", CN_STATE_PROGRESSING, 1, 3, 0.005,
         0.005);
    feed(f, "awaiting_approval", "needs <senior> & not the author", CN_STATE_AWAITING_APPROVAL,
         1, 3, 0.005, 0.005);
    feed(f, "stage_applied", "stage 3 of 3 serves 100%", CN_STATE_PROGRESSING, 3, 3, 1, 1);
    feed(f, "completed", "the new version serves 100% after stage 3", CN_STATE_COMPLETED, 3, 3,
         1, 1);
    feed(f, "failed", "rollback could not be applied", CN_STATE_FAILED, 3, 3, 1, 1);
    want_requests = 6;
    run_until(f, enough_requests, 5000, "6 requests");
    static const char *const want[] = {
        ":rocket: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) started: 3 stages",
        ":arrow_up: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) advanced to stage "
        "1/3 (0.5%): stage 1 of 3 serves 0.5%",
        ":raised_hand: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) awaits approval "
        "at stage 1/3 (0.5%): needs &lt;senior&gt; &amp; not the author",
        ":arrow_up: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) advanced to stage "
        "3/3 (100%): stage 3 of 3 serves 100%",
        ":white_check_mark: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) completed "
        "at stage 3/3 (100%): the new version serves 100% after stage 3",
        ":x: canary: rollout `checkout-v2.14.0` (checkout v2.14.0) FAILED at stage 3/3 "
        "(100%): rollback could not be applied",
    };
    for (size_t i = 0; i < 6; i++) {
        json_t *j = body_json(f, i);
        assert_string_equal(str_of(j, "text"), want[i]);
        json_decref(j);
    }
    fx_free(f);
}

/* ---- which records notify -------------------------------------------------- */

static void feed_everything(fx *f)
{
    feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "actuator_call", "advance", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "actuator_ok", "attempt 1", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "stage_applied", "stage 1", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
    feed(f, "measurement", "pass", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
    feed(f, "promoted", "passed", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
    feed(f, "awaiting_approval", "gate", CN_STATE_AWAITING_APPROVAL, 1, 3, 0.1, 0.1);
    feed(f, "approved", "by bob", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
    /* the abort as decided: not the end yet */
    feed(f, "aborted", "abort by bob: rolling back", CN_STATE_ROLLING_BACK, 1, 3, 0.1, 0.1);
    feed(f, "rolled_back", "rolled back after analysis", CN_STATE_ROLLED_BACK, 0, 3, 0, 0);
    /* the end of an aborted rollout */
    feed(f, "aborted", "rolled back after an operator abort", CN_STATE_ABORTED, 0, 3, 0, 0);
    feed(f, "completed", "100%", CN_STATE_COMPLETED, 3, 3, 1, 1);
    feed(f, "failed", "rollback failed", CN_STATE_FAILED, 1, 3, 0.1, 0.1);
    feed(f, "detached", "left", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
    feed(f, "intent_refused", "no", CN_STATE_PROGRESSING, 1, 3, 0.1, 0.1);
}

static void test_events_and_filters(void **state)
{
    (void)state;
    fx *all = fx_new(), *some = fx_new();
    cn_webhook ha = hook(all->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    cn_webhook hs = hook(some->url, CN_NOTIFY_GENERIC,
                         CN_NOTIFY_STAGE_ADVANCED | CN_NOTIFY_ROLLED_BACK);
    fx_notifier(all, &ha, 1, false, 0);
    fx_notifier(some, &hs, 1, false, 0);
    feed_everything(all);
    feed_everything(some);
    want_requests = 7;
    run_until(all, enough_requests, 5000, "7 requests");
    want_requests = 3;
    run_until(some, enough_requests, 5000, "3 requests");
    /* nothing more comes */
    cn_notify_drain(all->n, on_drained, all);
    run_until(all, is_drained, 5000, "the drain");
    cn_notify_drain(some->n, on_drained, some);
    run_until(some, is_drained, 5000, "the drain");
    char got[512];
    events_sent(all, got, sizeof got);
    assert_string_equal(got, "started stage_advanced awaiting_approval rolled_back "
                             "rolled_back completed failed");
    json_t *j = body_json(all, 4);
    assert_string_equal(str_of(j, "detail"), "rolled back after an operator abort");
    assert_string_equal(str_of(j, "state"), "aborted");
    json_decref(j);
    events_sent(some, got, sizeof got);
    assert_string_equal(got, "stage_advanced rolled_back rolled_back");
    fx_free(all);
    fx_free(some);
}

/* ---- credentials ------------------------------------------------------------ */

static void test_headers_from_env(void **state)
{
    (void)state;
    fx *f = fx_new();
    setenv("CANARY_TEST_HOOK_TOKEN", "s3cret", 1);
    setenv("CANARY_TEST_TEAM", "payments", 1);
    cn_env_header team = {.name = "X-Team", .env = "CANARY_TEST_TEAM"};
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    h.auth.bearer_token_env = "CANARY_TEST_HOOK_TOKEN";
    h.auth.headers = &team;
    h.auth.header_count = 1;
    cn_policy p;
    cn_policy_defaults(&p);
    p.notify = &h;
    p.notify_count = 1;
    char err[256] = "";
    assert_int_equal(cn_notify_check(&p, err, sizeof err), CN_OK);
    fx_notifier(f, &h, 1, false, 0);
    /* read when the notifier was made, as sources read theirs */
    unsetenv("CANARY_TEST_HOOK_TOKEN");
    feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    want_requests = 1;
    run_until(f, enough_requests, 5000, "1 request");
    const char *head = cn_hook_server_head(f->srv, 0);
    assert_contains(head, "\r\nAuthorization: Bearer s3cret");
    assert_contains(head, "\r\nX-Team: payments");

    /* unset: refused before anything is sent, naming the variable */
    h.line = 12;
    assert_int_equal(cn_notify_check(&p, err, sizeof err), CN_EINVAL);
    assert_contains(err, "notify webhook 1 (http://127.0.0.1:");
    assert_contains(err, "/..., line 12)");
    assert_contains(err, "environment variable CANARY_TEST_HOOK_TOKEN (bearer_token_env) is "
                         "not set; export it before starting canary");
    cn_notifier *n = NULL;
    cn_notify_config cfg = {.loop = &f->loop, .http = f->http, .hooks = &h, .hook_count = 1};
    assert_int_equal(cn_notify_new(&n, &cfg, err, sizeof err), CN_EINVAL);
    assert_null(n);
    assert_contains(err, "CANARY_TEST_HOOK_TOKEN");
    /* secrets never shown: neither the value nor the URL's path */
    assert_null(strstr(err, "hooks/canary"));
    unsetenv("CANARY_TEST_TEAM");
    cn_policy_free(&p);
    fx_free(f);
}

/* ---- never in the way ------------------------------------------------------- */

static void test_hanging_webhook(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_hook_server_script(f->srv, (int[]){0}, 1);
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    h.timeout_ms = 1000;
    fx_notifier(f, &h, 1, false, 0);
    uint64_t t0 = uv_hrtime();
    feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "completed", "c", CN_STATE_COMPLETED, 3, 3, 1, 1);
    uint64_t fed_ms = (uv_hrtime() - t0) / 1000000;
    /* far below the timeout, even under valgrind */
    if (fed_ms >= 250)
        fail_msg("feeding took %llu ms", (unsigned long long)fed_ms);
    assert_int_equal(f->fail_count, 0); /* nothing from inside a feed */
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    cn_notify_drain(f->n, on_drained, f);
    assert_int_equal(f->drained, 0);
    run_until(f, is_drained, 8000, "the drain");
    uint64_t took = f->drained_at - start;
    /* two timeouts of 1 s, one after the other, and no retry */
    if (took < 1900 || took > 3000)
        fail_msg("the drain took %llu ms, expected 2000 to 3000", (unsigned long long)took);
    assert_int_equal(cn_hook_server_count(f->srv), 2);
    assert_int_equal(f->fail_count, 2);
    assert_string_equal(f->urls[0], f->url);
    assert_contains(f->fails[0], "timed out after 1s (127.0.0.1:");
    assert_contains(f->fails[0], "; the 'started' notification was not sent");
    assert_null(strstr(f->fails[0], "retry"));
    assert_contains(f->fails[1], "the 'completed' notification was not sent");
    assert_int_equal(f->drained, 1);
    fx_free(f);
}

/* A drain that cannot finish in time gives up on what is left: it waits
 * at most twice the timeout and the retry delay. */
static void test_drain_is_bounded(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_hook_server_script(f->srv, (int[]){0}, 1);
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    h.timeout_ms = 400;
    fx_notifier(f, &h, 1, false, 300);
    for (unsigned i = 1; i <= 5; i++)
        feed(f, "stage_applied", "s", CN_STATE_PROGRESSING, i, 9, 0.1 * i, 0.1 * i);
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    cn_notify_drain(f->n, on_drained, f);
    run_until(f, is_drained, 5000, "the drain");
    uint64_t took = f->drained_at - start;
    if (took < 1100 || took > 1600)
        fail_msg("the drain took %llu ms, expected about 1100 (2 x 400 + 300)",
                 (unsigned long long)took);
    /* 2 timed out by 800 ms; the third was cut at 1100 ms, 2 more never went */
    assert_int_equal(cn_hook_server_count(f->srv), 3);
    assert_int_equal(f->fail_count, 3);
    assert_contains(f->fails[2], "canary is exiting: the 'stage_advanced' notification (and 2 "
                                 "more waiting behind it) did not go out in time");
    fx_free(f);
}

static void test_connection_refused_retried_once(void **state)
{
    (void)state;
    fx *f = fx_new();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", cn_test_closed_port());
    cn_webhook h = hook(url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    fx_notifier(f, &h, 1, false, 0); /* the real 1 s */
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    feed(f, "completed", "c", CN_STATE_COMPLETED, 3, 3, 1, 1);
    want_failures = 1;
    run_until(f, enough_failures, 5000, "the failure");
    uint64_t took = f->fail_at[0] - start;
    if (took < 1000 || took > 2500)
        fail_msg("failed after %llu ms, expected a retry after 1 s", (unsigned long long)took);
    assert_string_equal(f->urls[0], url);
    assert_contains(f->fails[0], "connection refused (127.0.0.1:");
    assert_contains(f->fails[0], ", also on the retry after 1s; the 'completed' notification "
                                 "was not sent");
    cn_notify_drain(f->n, on_drained, f);
    run_until(f, is_drained, 1000, "the drain");
    assert_int_equal(f->fail_count, 1);
    fx_free(f);
}

typedef struct status_case {
    int script[2];
    size_t requests;
    const char *failure; /* NULL: delivered */
} status_case;

static void test_status_retries(void **state)
{
    (void)state;
    static const status_case cases[] = {
        {{503, 503}, 2, "HTTP 503: ok, also on the retry after 50ms; the 'started' "
                        "notification was not sent"},
        {{500, 204}, 2, NULL},
        {{404, 200}, 1, "HTTP 404: ok; the 'started' notification was not sent"},
        {{302, 200}, 1, "HTTP 302: ok; the 'started' notification was not sent"},
        {{200, 200}, 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx *f = fx_new();
        cn_hook_server_script(f->srv, cases[i].script, 2);
        cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
        fx_notifier(f, &h, 1, false, 50);
        feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
        cn_notify_drain(f->n, on_drained, f);
        run_until(f, is_drained, 5000, "the drain");
        if (cn_hook_server_count(f->srv) != cases[i].requests)
            fail_msg("case %zu: %zu requests, expected %zu", i, cn_hook_server_count(f->srv),
                     cases[i].requests);
        if (cases[i].failure) {
            assert_int_equal(f->fail_count, 1);
            assert_string_equal(f->fails[0], cases[i].failure);
        } else {
            assert_int_equal(f->fail_count, 0);
        }
        /* the retry is the same request */
        if (cases[i].requests == 2)
            assert_string_equal(cn_hook_server_body(f->srv, 0), cn_hook_server_body(f->srv, 1));
        fx_free(f);
    }
}

/* One in flight, 64 waiting: a 65th waiting drops the oldest waiting one,
 * reported from the loop; order is kept for the rest. */
static void test_queue_bound(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_hook_server_script(f->srv, (int[]){0, 200}, 2);
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    h.timeout_ms = 300;
    fx_notifier(f, &h, 1, false, 5000); /* never used; it only widens the drain's bound */
    for (unsigned stage = 1; stage <= 68; stage++)
        feed(f, "stage_applied", "s", CN_STATE_PROGRESSING, stage, 100, 0.01 * stage,
             0.01 * stage);
    assert_int_equal(f->fail_count, 0);
    want_failures = 1;
    run_until(f, enough_failures, 250, "the report of the dropped ones");
    assert_string_equal(f->fails[0], "more than 64 notifications were waiting for it: dropped "
                                     "the oldest 3 (the last of them 'stage_advanced')");
    cn_notify_drain(f->n, on_drained, f);
    run_until(f, is_drained, 5000, "the drain");
    assert_int_equal(cn_hook_server_count(f->srv), 65);
    assert_int_equal(f->fail_count, 2);
    assert_contains(f->fails[1], "timed out after 300ms");
    for (size_t i = 0; i < 65; i++) {
        json_t *j = body_json(f, i);
        json_int_t want = i == 0 ? 1 : (json_int_t)i + 4; /* 2, 3 and 4 were dropped */
        if (int_of(j, "stage") != want)
            fail_msg("request %zu has stage %lld, expected %lld", i,
                     (long long)int_of(j, "stage"), (long long)want);
        json_decref(j);
    }
    fx_free(f);
}

/* ---- draining, freeing ------------------------------------------------------ */

static void free_in_drain(void *ctx)
{
    fx *f = ctx;
    on_drained(f);
    cn_notify_free(f->n);
    f->n = NULL;
}

static void test_drain(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_webhook h = hook(f->url, CN_NOTIFY_GENERIC, CN_NOTIFY_ALL);
    fx_notifier(f, &h, 1, false, 0);
    /* idle: still called back from the loop, not from inside the drain */
    cn_notify_drain(f->n, on_drained, f);
    assert_int_equal(f->drained, 0);
    run_until(f, is_drained, 1000, "the drain");
    /* the last notification goes out before the drain ends; done may free */
    f->drained = 0;
    feed(f, "completed", "c", CN_STATE_COMPLETED, 3, 3, 1, 1);
    cn_notify_drain(f->n, free_in_drain, f);
    run_until(f, is_drained, 5000, "the drain");
    assert_int_equal(f->requests_at_drain, 1);
    assert_null(f->n);
    /* NULL: at once */
    unsigned before = f->drained;
    cn_notify_drain(NULL, on_drained, f);
    assert_int_equal(f->drained, before + 1);
    fx_free(f);
}

/* Freed with a request in flight and more waiting: no report, no leak. */
static void test_free_while_busy(void **state)
{
    (void)state;
    fx *f = fx_new();
    cn_hook_server_script(f->srv, (int[]){0}, 1);
    cn_webhook h = hook(f->url, CN_NOTIFY_SLACK, CN_NOTIFY_ALL);
    fx_notifier(f, &h, 1, false, 0);
    feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    feed(f, "completed", "c", CN_STATE_COMPLETED, 3, 3, 1, 1);
    want_requests = 1;
    run_until(f, enough_requests, 5000, "1 request");
    fx_free(f);
}

static void test_no_webhooks(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_notifier(f, NULL, 0, false, 0);
    feed(f, "started", "s", CN_STATE_PROGRESSING, 0, 3, 0, 0);
    cn_notify_drain(f->n, on_drained, f);
    run_until(f, is_drained, 1000, "the drain");
    assert_int_equal(cn_hook_server_count(f->srv), 0);
    fx_free(f);
}

/* ---- the observer, messages -------------------------------------------------- */

static int finished_with;
static void next_finish(void *ctx, const cn_engine *e, int code)
{
    (void)ctx;
    (void)e;
    finished_with = code;
}

static void test_observer_chain(void **state)
{
    (void)state;
    cn_engine_observer next = {.on_finish = next_finish};
    cn_engine_observer o = cn_notify_observer(NULL, &next);
    assert_ptr_equal(o.on_finish, next_finish);
    fx *f = fx_new();
    fx_notifier(f, NULL, 0, false, 0);
    o = cn_notify_observer(f->n, &next);
    assert_non_null(o.on_record);
    assert_ptr_equal(o.ctx, f->n);
    o.on_finish(o.ctx, NULL, 3);
    assert_int_equal(finished_with, 3);
    fx_free(f);
}

static void test_url_shown_and_log_line(void **state)
{
    (void)state;
    char buf[128];
    cn_notify_url_shown(buf, sizeof buf, "https://hooks.slack.com/services/T0/B0/XXXX");
    assert_string_equal(buf, "https://hooks.slack.com/...");
    cn_notify_url_shown(buf, sizeof buf, "http://127.0.0.1:9");
    assert_string_equal(buf, "http://127.0.0.1:9");
    cn_notify_url_shown(buf, sizeof buf, "http://h:8080/");
    assert_string_equal(buf, "http://h:8080");
    cn_notify_url_shown(buf, sizeof buf, "http://h?token=x");
    assert_string_equal(buf, "http://h/...");

    FILE *out = tmpfile();
    assert_non_null(out);
    cn_notify_log_failure(out, "https://hooks.slack.com/services/T0/B0/XXXX", "HTTP 404: no");
    rewind(out);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof line, out));
    fclose(out);
    assert_string_equal(line, "canary run: notify https://hooks.slack.com/... failed: HTTP 404: "
                              "no; the rollout goes on\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generic_payload),
        cmocka_unit_test(test_rollback_names_the_stage_left),
        cmocka_unit_test(test_slack_lines),
        cmocka_unit_test(test_events_and_filters),
        cmocka_unit_test(test_headers_from_env),
        cmocka_unit_test(test_hanging_webhook),
        cmocka_unit_test(test_drain_is_bounded),
        cmocka_unit_test(test_connection_refused_retried_once),
        cmocka_unit_test(test_status_retries),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_free_while_busy),
        cmocka_unit_test(test_no_webhooks),
        cmocka_unit_test(test_observer_chain),
        cmocka_unit_test(test_url_shown_and_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
