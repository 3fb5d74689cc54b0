/* The engine on one loop, with everything it talks to in the same process:
 * the metrics and the http actuator are served by cn_http_server on
 * 127.0.0.1 (a handler scripted per test), the store lives in a temp dir.
 * Each test asserts the exact actuator calls (action, stage, weight), the
 * exit code from on_finish and the events stored, in order: a healthy
 * rollout, a failing metric, a baseline comparison, min_requests holding a
 * stage back, a store that fails (no rollout row; a trigger refusing one
 * kind of event mid-run), shutdown with and without detach, a slow
 * provider never polled twice at once, and the observer's callbacks.
 * Timings are short (20 ms polls, 100 ms bakes); the only timing assertions
 * are lower bounds the engine guarantees. Every test ends with all handles
 * closed and uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "canary/engine.h"
#include "canary/http_client.h"
#include "canary/http_server.h"
#include "canary/status.h"
#include "canary/store.h"

#define MAX_CALLS 16
#define MAX_EVENTS 128
#define MAX_READINGS 128
#define MAX_QUERIES 256
#define WATCHDOG_MS 15000 /* only a hung test waits for it */

static const char ROLLOUT[] = "checkout-v2";

typedef struct call {
    char action[16];
    unsigned stage;
    double weight;
    unsigned at; /* order among everything the harness saw */
} call;

typedef struct seen_event {
    char type[32];
    char *detail;
    char *data;
    bool stored;
} seen_event;

typedef struct seen_reading {
    size_t metric;
    cn_outcome outcome;
    double value;
    unsigned at;
} seen_reading;

typedef struct seen_query {
    char *text;
    unsigned at;
    uint64_t ns;
} seen_query;

typedef struct harness harness;
/* Fills the reply to one metric query (decoded PromQL). */
typedef void (*metric_fn)(harness *h, const char *query, cn_http_out *out);

struct harness {
    uv_loop_t loop;
    cn_http *http;
    cn_http_server *srv;
    int port;
    cn_store *store;
    char dir[64], db[128];
    char address[64], actuate_url[96];
    cn_policy policy;
    cn_metric metrics[2];
    cn_plan plan;
    cn_engine *engine;
    uv_timer_t watchdog, later;
    bool later_used;
    uint64_t shutdown_after_ms; /* > 0: shutdown this long after stage 1 is applied */
    bool shutdown_detach;
    bool create_row;            /* false: the store has no row for the rollout */
    bool defer;                 /* the store holds measurements (store.h) */
    uv_timer_t sampler;         /* defer: watches how long measurements stay held */
    uint64_t held_since, held_longest; /* uv_now when something was first held; ms */
    size_t held_last;
    bool seen_held;
    const char *lease_holder;   /* the engine holds this lease (taken before it starts) */
    bool stolen;                /* another driver took the lease over */
    char stop_reason[400];      /* cn_engine_stop_reason at the finish */
    const char *fail_trigger;   /* SQL condition on NEW for a trigger refusing events */
    metric_fn metric;
    /* NULL: on_reading; a test may wrap it */
    void (*reading_hook)(harness *h, const cn_reading *canary);
    void *ctx;                  /* per test */
    unsigned clock;             /* orders server and observer events */
    call calls[MAX_CALLS];
    size_t ncalls;
    seen_event events[MAX_EVENTS];
    size_t nevents;
    seen_reading readings[MAX_READINGS];
    size_t nreadings;
    seen_query queries[MAX_QUERIES];
    size_t nqueries;
    unsigned finish_calls;
    int exit_code;
    bool timed_out, closed;
};

/* ---- replies ------------------------------------------------------------ */

static void reply_value(cn_http_out *out, const char *value)
{
    char *b = malloc(256);
    assert_non_null(b);
    int n = snprintf(b, 256,
                     "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
                     "[{\"metric\":{},\"value\":[1700000000,\"%s\"]}]}}",
                     value);
    out->body = b;
    out->len = (size_t)n;
}

static void record_call(harness *h, const cn_http_in *in, cn_http_out *out)
{
    json_error_t jerr;
    json_t *j = json_loads(in->body, 0, &jerr);
    assert_non_null(j);
    assert_true(h->ncalls < MAX_CALLS);
    call *c = &h->calls[h->ncalls++];
    snprintf(c->action, sizeof c->action, "%s", json_string_value(json_object_get(j, "action")));
    c->stage = (unsigned)json_integer_value(json_object_get(j, "stage"));
    c->weight = json_number_value(json_object_get(j, "weight"));
    c->at = ++h->clock;
    /* The rest of the body is the actuator's contract, checked once here. */
    assert_string_equal(json_string_value(json_object_get(j, "rollout")), ROLLOUT);
    assert_string_equal(json_string_value(json_object_get(j, "service")), "checkout");
    assert_string_equal(json_string_value(json_object_get(j, "version")), "v2");
    json_decref(j);
    out->body = strdup("{\"ok\":true}");
    out->len = strlen(out->body);
}

static void handler(void *ctx, const cn_http_in *in, cn_http_out *out)
{
    harness *h = ctx;
    if (!strcmp(in->method, "POST") && !strcmp(in->path, "/actuate")) {
        record_call(h, in, out);
        return;
    }
    char *q = NULL;
    if (strcmp(in->path, "/api/v1/query") || cn_http_query_param(in->query, "query", &q)) {
        out->status = 404;
        return;
    }
    assert_true(h->nqueries < MAX_QUERIES);
    h->queries[h->nqueries++] = (seen_query){.text = q, .at = ++h->clock, .ns = uv_hrtime()};
    h->metric(h, q, out);
}

/* ---- observer ----------------------------------------------------------- */

static void close_all(harness *h)
{
    if (h->closed)
        return;
    h->closed = true;
    uv_close((uv_handle_t *)&h->watchdog, NULL);
    if (h->defer)
        uv_close((uv_handle_t *)&h->sampler, NULL);
    if (h->later_used)
        uv_close((uv_handle_t *)&h->later, NULL);
    cn_engine_close(h->engine);
    cn_http_close(h->http);
    cn_http_server_close(h->srv);
}

static void on_later(uv_timer_t *t)
{
    harness *h = t->data;
    cn_engine_shutdown(h->engine, h->shutdown_detach);
}

static void on_record(void *ctx, const cn_engine *e, const cn_store_event *ev, bool stored)
{
    harness *h = ctx;
    assert_ptr_equal(e, h->engine);
    assert_true(h->nevents < MAX_EVENTS);
    seen_event *s = &h->events[h->nevents++];
    snprintf(s->type, sizeof s->type, "%s", ev->type);
    s->detail = strdup(ev->detail);
    s->data = ev->data_json ? strdup(ev->data_json) : NULL;
    s->stored = stored;
    ++h->clock;
    if (h->shutdown_after_ms && !h->later_used && !strcmp(ev->type, "stage_applied")) {
        h->later_used = true;
        uv_timer_init(&h->loop, &h->later);
        h->later.data = h;
        uv_timer_start(&h->later, on_later, h->shutdown_after_ms, 0);
    }
}

static void on_reading(void *ctx, const cn_engine *e, size_t metric, const cn_reading *canary,
                       cn_outcome outcome, const char *why)
{
    harness *h = ctx;
    assert_ptr_equal(e, h->engine);
    assert_non_null(why);
    if (h->reading_hook)
        h->reading_hook(h, canary);
    assert_true(h->nreadings < MAX_READINGS);
    h->readings[h->nreadings++] = (seen_reading){
        .metric = metric, .outcome = outcome,
        .value = canary->kind == CN_READING_VALUE ? canary->value : NAN, .at = ++h->clock};
}

static void on_finish(void *ctx, const cn_engine *e, int exit_code)
{
    harness *h = ctx;
    assert_ptr_equal(e, h->engine);
    h->finish_calls++;
    h->exit_code = exit_code;
    snprintf(h->stop_reason, sizeof h->stop_reason, "%s",
             cn_engine_stop_reason(e) ? cn_engine_stop_reason(e) : "");
    assert_true(cn_engine_finished(e));
    assert_int_equal(cn_engine_exit_code(e), exit_code);
    close_all(h);
}

static void on_watchdog(uv_timer_t *t)
{
    harness *h = t->data;
    h->timed_out = true;
    close_all(h);
}

/* ---- set-up ------------------------------------------------------------- */

/* The policy every test starts from: one Prometheus metric on the
 * in-process server, max 0.5, polled every 20 ms; the http actuator on the
 * same server, no retries. Two stages: 10% then 100%, 100 ms bakes. */
static void harness_init(harness *h, metric_fn metric)
{
    memset(h, 0, sizeof *h);
    h->metric = metric;
    h->create_row = true;
    assert_int_equal(uv_loop_init(&h->loop), 0);
    char err[256] = "";
    assert_int_equal(cn_http_server_start(&h->srv, &h->loop, "127.0.0.1", 0, handler, h,
                                          &h->port, err, sizeof err),
                     CN_OK);
    assert_int_equal(cn_http_new(&h->http, &h->loop), CN_OK);
    snprintf(h->address, sizeof h->address, "http://127.0.0.1:%d", h->port);
    snprintf(h->actuate_url, sizeof h->actuate_url, "http://127.0.0.1:%d/actuate", h->port);

    snprintf(h->dir, sizeof h->dir, "/tmp/canary-engine-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->db, sizeof h->db, "%s/state.db", h->dir);

    cn_policy *p = &h->policy;
    cn_policy_defaults(p);
    p->name = "engine-test";
    p->analysis.interval_ms = 20;
    p->analysis.timeout_ms = 500;
    p->analysis.max_bake_ms = 5000; /* never inconclusive because a slow machine lagged */
    cn_metric *m = &h->metrics[0];
    m->name = "error_rate";
    m->source = (cn_source){.kind = CN_SOURCE_PROMETHEUS, .address = h->address,
                            .query = "errors{version=\"{{version}}\"}"};
    m->threshold = (cn_threshold){.has_max = true, .max = 0.5};
    p->analysis.metrics = h->metrics;
    p->analysis.metric_count = 1;
    p->actuator.http_url = h->actuate_url;
    p->actuator.retries = 0;
    p->actuator.timeout_ms = 2000;

    h->plan.stage_count = 2;
    h->plan.stages[0] = (cn_stage){.index = 1, .weight = 0.1, .bake_ms = 100};
    h->plan.stages[1] = (cn_stage){.index = 2, .weight = 1.0, .bake_ms = 100};
}

static void install_trigger(harness *h)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(h->db, &db), SQLITE_OK);
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER test_refuse BEFORE INSERT ON events WHEN %s"
             " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
             h->fail_trigger);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

/* Every 5 ms: how long the store has held measurements without writing. */
static void on_sampler(uv_timer_t *t)
{
    harness *h = t->data;
    uint64_t now = uv_now(&h->loop);
    size_t held = cn_store_held_count(h->store);
    /* Fewer than at the last look: a flush came in between, and what is
     * held now came after it. */
    if (held < h->held_last)
        h->held_since = 0;
    h->held_last = held;
    if (held == 0)
        return;
    h->seen_held = true;
    if (!h->held_since)
        h->held_since = now;
    if (now - h->held_since > h->held_longest)
        h->held_longest = now - h->held_since;
}

/* Opens the store (with the rollout row unless told not to), starts the
 * engine and runs the loop until everything is closed. */
static void harness_run(harness *h)
{
    char err[512] = "";
    assert_int_equal(cn_store_open(&h->store, h->db, err, sizeof err), CN_OK);
    if (h->create_row) {
        cn_rollout_row row = {.id = (char *)ROLLOUT, .attempt = 1, .service = (char *)"checkout",
                              .version = (char *)"v2", .previous_version = (char *)"v1",
                              .author = (char *)"alice", .policy = (char *)"engine-test",
                              .state = (char *)"pending", .stages = (unsigned)h->plan.stage_count,
                              .exit_code = -1, .created_ms = 1, .updated_ms = 1};
        assert_int_equal(cn_store_create(h->store, &row, err, sizeof err), CN_OK);
    }
    if (h->fail_trigger)
        install_trigger(h);
    if (h->lease_holder) {
        cn_lease me = {.pid = 1, .heartbeat_ms = 0};
        snprintf(me.holder, sizeof me.holder, "%s", h->lease_holder);
        snprintf(me.host, sizeof me.host, "test");
        cn_lease current;
        assert_int_equal(cn_store_lease_acquire(h->store, ROLLOUT, &me, time(NULL) * 1000LL,
                                                CN_LEASE_TTL_MS, NULL, &current, err,
                                                sizeof err),
                         CN_OK);
    }
    if (h->defer) {
        assert_int_equal(cn_store_defer_evidence(h->store, true, err, sizeof err), CN_OK);
        uv_timer_init(&h->loop, &h->sampler);
        h->sampler.data = h;
        uv_timer_start(&h->sampler, on_sampler, 5, 5);
    }
    uv_timer_init(&h->loop, &h->watchdog);
    h->watchdog.data = h;
    uv_timer_start(&h->watchdog, on_watchdog, WATCHDOG_MS, 0);
    cn_engine_config cfg = {
        .loop = &h->loop, .http = h->http, .store = h->store, .plan = &h->plan,
        .policy = &h->policy, .rollout = ROLLOUT, .service = "checkout", .version = "v2",
        .previous_version = "v1", .author = "alice", .lease_holder = h->lease_holder,
        .observer = {.on_record = on_record, .on_reading = on_reading, .on_finish = on_finish,
                     .ctx = h}};
    int rc = cn_engine_start(&h->engine, &cfg, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_engine_start: %s\n", err);
    assert_int_equal(rc, CN_OK);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_false(h->timed_out);
    assert_int_equal(h->finish_calls, 1);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static void harness_free(harness *h)
{
    for (size_t i = 0; i < h->nevents; i++) {
        free(h->events[i].detail);
        free(h->events[i].data);
    }
    for (size_t i = 0; i < h->nqueries; i++)
        free(h->queries[i].text);
    cn_store_close(h->store);
    char path[160];
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", h->db, suffix[i]);
        unlink(path);
    }
    rmdir(h->dir);
}

/* ---- assertions --------------------------------------------------------- */

static void assert_calls(const harness *h, const char *const *actions, const unsigned *stages,
                         const double *weights, size_t n)
{
    if (h->ncalls != n) {
        for (size_t i = 0; i < h->ncalls; i++)
            print_error("call %zu: %s stage %u weight %g\n", i, h->calls[i].action,
                        h->calls[i].stage, h->calls[i].weight);
    }
    assert_int_equal(h->ncalls, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(h->calls[i].action, actions[i]);
        assert_int_equal(h->calls[i].stage, stages[i]);
        assert_true(fabs(h->calls[i].weight - weights[i]) < 1e-9);
    }
}

/* The types of the events seen by on_record, with runs of measurement
 * (and requests) events folded into one entry: how many polls a bake takes
 * depends on the machine, the order of decisions does not. */
static void assert_event_types(const harness *h, const char *const *types, size_t n)
{
    const char *folded[MAX_EVENTS];
    size_t m = 0;
    for (size_t i = 0; i < h->nevents; i++) {
        const char *t = h->events[i].type;
        bool poll = !strcmp(t, "measurement") || !strcmp(t, "requests");
        if (poll && m > 0 && !strcmp(folded[m - 1], "polls"))
            continue;
        folded[m++] = poll ? "polls" : t;
    }
    bool same = m == n;
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(folded[i], types[i]);
    if (!same)
        for (size_t i = 0; i < h->nevents; i++)
            print_error("event %zu: %s %s: %s\n", i, h->events[i].stored ? "stored" : "LOST",
                        h->events[i].type, h->events[i].detail);
    assert_true(same);
}

typedef struct stored_list {
    const harness *h;
    size_t n;
    bool mismatch;
} stored_list;

static int compare_stored(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    stored_list *l = ctx;
    const seen_event *s = NULL;
    /* The n-th stored event is the n-th one on_record reported as stored. */
    size_t k = 0;
    for (size_t i = 0; i < l->h->nevents && !s; i++)
        if (l->h->events[i].stored && k++ == l->n)
            s = &l->h->events[i];
    l->n++;
    if (!s || strcmp(s->type, ev->type) || strcmp(s->detail, ev->detail) ||
        strcmp(ev->actor, "canary") || (s->data == NULL) != (ev->data_json == NULL) ||
        (s->data && strcmp(s->data, ev->data_json))) {
        print_error("stored event %zu (%s: %s) differs from what on_record saw\n", l->n - 1,
                    ev->type, ev->detail);
        l->mismatch = true;
    }
    return 0;
}

/* What the store holds is exactly what on_record reported stored, in order. */
static void assert_store_matches(const harness *h)
{
    stored_list l = {.h = h};
    char err[256] = "";
    assert_int_equal(cn_store_events(h->store, ROLLOUT, compare_stored, &l, err, sizeof err),
                     CN_OK);
    assert_false(l.mismatch);
    size_t stored = 0;
    for (size_t i = 0; i < h->nevents; i++)
        stored += h->events[i].stored;
    assert_int_equal(l.n, stored);
}

static void assert_row(const harness *h, const char *state, int exit_code, double weight)
{
    cn_rollout_row row = {0};
    assert_int_equal(cn_store_get(h->store, ROLLOUT, &row, NULL, 0), CN_OK);
    assert_string_equal(row.state, state);
    assert_int_equal(row.exit_code, exit_code);
    assert_true(fabs(row.weight - weight) < 1e-9);
    cn_rollout_row_free(&row);
}

static size_t count_events(const harness *h, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nevents; i++)
        n += !strcmp(h->events[i].type, type);
    return n;
}

/* A measurement's data: {"metric", "outcome", "value", ["baseline",] "max"}
 * (baseline NaN: no baseline key). */
static void assert_data(const char *data, const char *outcome, double value, double baseline)
{
    assert_non_null(data);
    json_error_t jerr;
    json_t *j = json_loads(data, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), isnan(baseline) ? 4 : 5);
    assert_string_equal(json_string_value(json_object_get(j, "metric")), "error_rate");
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), outcome);
    assert_true(json_real_value(json_object_get(j, "value")) == value);
    assert_true(json_real_value(json_object_get(j, "max")) == 0.5);
    if (!isnan(baseline))
        assert_true(json_real_value(json_object_get(j, "baseline")) == baseline);
    json_decref(j);
}

/* ---- metric scripts ----------------------------------------------------- */

static void metric_healthy(harness *h, const char *query, cn_http_out *out)
{
    (void)h;
    assert_string_equal(query, "errors{version=\"v2\"}");
    reply_value(out, "0.01");
}

static void metric_failing(harness *h, const char *query, cn_http_out *out)
{
    (void)h;
    assert_string_equal(query, "errors{version=\"v2\"}");
    reply_value(out, "0.9");
}

/* ---- tests -------------------------------------------------------------- */

static void test_healthy_rollout_completes(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    static const char *const actions[] = {"advance", "advance", "complete"};
    static const unsigned stages[] = {1, 2, 2};
    static const double weights[] = {10, 100, 100};
    assert_calls(&h, actions, stages, weights, 3);
    static const char *const types[] = {
        "started", "actuator_call", "actuator_ok", "stage_applied", "polls", "promoted",
        "actuator_call", "actuator_ok", "stage_applied", "polls", "promoted", "actuator_call",
        "actuator_ok", "completed"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    /* min_samples (3) passing measurements per stage, at least */
    assert_true(count_events(&h, "measurement") >= 6);
    for (size_t i = 0; i < h.nreadings; i++)
        assert_int_equal(h.readings[i].outcome, CN_OUTCOME_PASS);
    assert_store_matches(&h);
    assert_row(&h, "completed", 0, 1.0);
    harness_free(&h);
}

static void test_failing_metric_rolls_back(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_failing);
    harness_run(&h);

    assert_int_equal(h.exit_code, 3);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    /* failure_limit 0: the first failing measurement decides */
    static const char *const types[] = {"started", "actuator_call", "actuator_ok",
                                        "stage_applied", "polls", "rolling_back",
                                        "actuator_call", "actuator_ok", "rolled_back"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    assert_int_equal(count_events(&h, "measurement"), 1);
    assert_int_equal(h.nreadings, 1);
    assert_int_equal(h.readings[0].outcome, CN_OUTCOME_FAIL);
    assert_true(h.readings[0].value == 0.9);
    /* The measurement carries its evidence as data. */
    for (size_t i = 0; i < h.nevents; i++)
        if (!strcmp(h.events[i].type, "measurement"))
            assert_data(h.events[i].data, "fail", 0.9, NAN);
    /* The rollback call was announced before it was made. */
    assert_string_equal(h.events[6].type, "actuator_call");
    assert_string_equal(h.events[6].detail, "rollback: stage 0, weight 0%");
    assert_store_matches(&h);
    assert_row(&h, "rolled_back", 3, 0.0);
    harness_free(&h);
}

/* Canary v2 and baseline v1, the same rate: each poll asks both. */
static void metric_baseline(harness *h, const char *query, cn_http_out *out)
{
    const char *fail = h->ctx;
    if (!strcmp(query, "errors{version=\"v2\"}"))
        reply_value(out, fail ? fail : "0.010");
    else if (!strcmp(query, "errors{version=\"v1\"}"))
        reply_value(out, "0.010");
    else
        fail_msg("unexpected query %s", query);
}

/* While the canary serves part of the traffic, a slot never polls again
 * before both replies are in, so the queries come in pairs holding both
 * versions; at 100% the previous version serves nothing, so only the
 * canary is asked. Returns how many pairs came first. */
static size_t check_pairs_then_canary(const harness *h)
{
    size_t i = 0, pairs = 0;
    while (i + 1 < h->nqueries && strcmp(h->queries[i].text, h->queries[i + 1].text) != 0) {
        bool v2first = !strcmp(h->queries[i].text, "errors{version=\"v2\"}");
        assert_string_equal(h->queries[i + 1].text, v2first ? "errors{version=\"v1\"}"
                                                            : "errors{version=\"v2\"}");
        i += 2;
        pairs++;
    }
    assert_true(pairs >= 1);
    for (; i < h->nqueries; i++)
        assert_string_equal(h->queries[i].text, "errors{version=\"v2\"}");
    return pairs;
}

static void test_baseline_queries_both_versions(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_baseline);
    h.metrics[0].baseline = (cn_baseline){.enabled = true, .max_increase = 0.2, .slack = 0};
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    static const char *const actions[] = {"advance", "advance", "complete"};
    static const unsigned stages[] = {1, 2, 2};
    static const double weights[] = {10, 100, 100};
    assert_calls(&h, actions, stages, weights, 3);
    size_t pairs = check_pairs_then_canary(&h);
    size_t singles = h.nqueries - 2 * pairs;
    assert_true(singles >= 1);
    /* one judged measurement per poll */
    assert_int_equal(h.nreadings, pairs + singles);
    assert_int_equal(count_events(&h, "measurement"), h.nreadings);
    for (size_t i = 0; i < h.nevents; i++) {
        if (strcmp(h.events[i].type, "measurement"))
            continue;
        bool last_stage = !strncmp(h.events[i].detail, "stage 2:", 8);
        assert_data(h.events[i].data, "pass", 0.01, last_stage ? NAN : 0.01);
        assert_true(!!strstr(h.events[i].detail, "no baseline") == last_stage);
    }
    assert_store_matches(&h);
    harness_free(&h);
}

static void test_baseline_worse_canary_rolls_back(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_baseline);
    h.ctx = (void *)"0.013"; /* > 0.010 x 1.2, but within max 0.5 */
    h.metrics[0].baseline = (cn_baseline){.enabled = true, .max_increase = 0.2, .slack = 0};
    harness_run(&h);

    assert_int_equal(h.exit_code, 3);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    assert_int_equal(h.nqueries, 2);
    assert_int_equal(check_pairs_then_canary(&h), 1);
    assert_int_equal(h.nreadings, 1);
    assert_int_equal(h.readings[0].outcome, CN_OUTCOME_FAIL);
    assert_store_matches(&h);
    harness_free(&h);
}

/* ---- min_requests ------------------------------------------------------- */

typedef struct requests_script {
    unsigned asked;       /* requests queries answered */
    unsigned enough_at;   /* the count reaches 100 from this query on (1-based) */
    unsigned enough_clock;/* h->clock when it first did */
} requests_script;

static void metric_with_requests(harness *h, const char *query, cn_http_out *out)
{
    requests_script *rs = h->ctx;
    if (!strcmp(query, "requests{version=\"v2\"}")) {
        rs->asked++;
        bool enough = rs->asked >= rs->enough_at;
        if (enough && !rs->enough_clock)
            rs->enough_clock = h->clock;
        reply_value(out, enough ? "100" : "10");
        return;
    }
    metric_healthy(h, query, out);
}

static void test_min_requests_holds_the_stage(void **state)
{
    (void)state;
    harness h;
    requests_script rs = {.enough_at = 12};
    harness_init(&h, metric_with_requests);
    h.ctx = &rs;
    h.policy.analysis.min_requests = (cn_min_requests){
        .count = 100, .source = {.kind = CN_SOURCE_PROMETHEUS, .address = h.address,
                                 .query = "requests{version=\"{{version}}\"}"}};
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    static const char *const actions[] = {"advance", "advance", "complete"};
    static const unsigned stages[] = {1, 2, 2};
    static const double weights[] = {10, 100, 100};
    assert_calls(&h, actions, stages, weights, 3);
    /* Stage 1 was only left after the count was answered: eleven polls of
     * 20 ms (over twice the 100 ms bake) said 10. */
    assert_true(rs.enough_clock > 0);
    assert_true(h.calls[1].at > rs.enough_clock);
    /* Every requests event of stage 1 before the promotion says 10 but the
     * last, which says 100. */
    size_t promoted = 0;
    while (promoted < h.nevents && strcmp(h.events[promoted].type, "promoted"))
        promoted++;
    assert_true(promoted < h.nevents);
    size_t tens = 0, hundreds = 0;
    for (size_t i = 0; i < promoted; i++)
        if (!strcmp(h.events[i].type, "requests")) {
            if (!strcmp(h.events[i].detail, "stage 1: the canary served 10 requests"))
                tens++;
            else if (!strcmp(h.events[i].detail, "stage 1: the canary served 100 requests"))
                hundreds++;
            else
                fail_msg("unexpected requests event: %s", h.events[i].detail);
        }
    assert_int_equal(tens, 11);
    assert_int_equal(hundreds, 1);
    assert_store_matches(&h);
    harness_free(&h);
}

/* ---- the store failing -------------------------------------------------- */

static void test_store_without_row_only_rolls_back(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.create_row = false;
    harness_run(&h);

    /* engine.h: nothing the unrecorded event announced is done; the engine
     * stops as after SIGTERM, rolling back (nothing was applied, and the
     * rollback is idempotent), and exits 1. */
    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"rollback"};
    static const unsigned stages[] = {0};
    static const double weights[] = {0};
    assert_calls(&h, actions, stages, weights, 1);
    assert_int_equal(h.nqueries, 0);
    assert_true(h.nevents > 0);
    for (size_t i = 0; i < h.nevents; i++) {
        assert_false(h.events[i].stored);
        assert_non_null(strstr(h.events[i].detail, "[NOT STORED: "));
    }
    char err[256] = "";
    assert_int_equal(cn_store_events(h.store, ROLLOUT, compare_stored, &(stored_list){.h = &h},
                                     err, sizeof err),
                     CN_ENOTFOUND);
    harness_free(&h);
}

/* The machine's own record of the promotion is refused; the actuator_call
 * record that follows it in the same step would be stored. */
static void test_store_failing_promotion_does_not_advance(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.fail_trigger = "NEW.type = 'promoted'";
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    /* No call to stage 2 is announced: the log shows the advance refused. */
    static const char *const types[] = {
        "started", "actuator_call", "actuator_ok", "stage_applied", "polls", "promoted",
        "aborted", "actuator_failed", "actuator_call", "actuator_ok", "rolled_back"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    for (size_t i = 0; i < h.nevents; i++)
        assert_true(h.events[i].stored == !!strcmp(h.events[i].type, "promoted"));
    for (size_t i = 0; i < h.nevents; i++)
        if (!strcmp(h.events[i].type, "actuator_failed"))
            assert_string_equal(h.events[i].detail,
                                "advance of stage 2 could not be applied: not applied: the "
                                "state database could not record it");
    assert_store_matches(&h);
    assert_row(&h, "rolled_back", 1, 0.0); /* the exit code the run ends with */
    harness_free(&h);
}

/* The engine's record of the advance call itself is refused. */
static void test_store_failing_actuator_call_does_not_advance(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.fail_trigger = "NEW.type = 'actuator_call' AND NEW.detail LIKE 'advance: stage 2,%'";
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    size_t lost = 0;
    for (size_t i = 0; i < h.nevents; i++)
        if (!h.events[i].stored) {
            lost++;
            assert_string_equal(h.events[i].type, "actuator_call");
            assert_non_null(strstr(h.events[i].detail, "advance: stage 2, weight 100%"));
        }
    assert_int_equal(lost, 1);
    static const char *const types[] = {
        "started", "actuator_call", "actuator_ok", "stage_applied", "polls", "promoted",
        "actuator_call", "aborted", "actuator_failed", "actuator_call", "actuator_ok",
        "rolled_back"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    assert_store_matches(&h);
    assert_row(&h, "rolled_back", 1, 0.0);
    harness_free(&h);
}

/* The record of the actuator's successful attempt for stage 1 is refused:
 * the engine stops at once instead of baking the stage it cannot log. */
static void test_store_failing_attempt_stops(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.plan.stages[0].bake_ms = 60000;
    h.fail_trigger = "NEW.type = 'actuator_ok' AND NEW.detail LIKE 'attempt 1: HTTP 200%'"
                     " AND (SELECT count(*) FROM events WHERE type = 'aborted') = 0";
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    static const char *const types[] = {"started", "actuator_call", "actuator_ok",
                                        "stage_applied", "aborted", "actuator_call",
                                        "actuator_ok", "rolled_back"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    assert_false(h.events[2].stored);
    for (size_t i = 0; i < h.nevents; i++)
        assert_true(h.events[i].stored == (i != 2));
    assert_int_equal(h.nqueries, 0); /* stopped before the first poll */
    assert_store_matches(&h);
    assert_row(&h, "rolled_back", 1, 0.0);
    harness_free(&h);
}

/* ---- shutdown ----------------------------------------------------------- */

/* A store that holds measurements: the same log as one that writes each,
 * none held longer than about CN_STORE_FLUSH_MS, nothing held at the end. */
static void test_held_measurements_are_written(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.defer = true;
    h.plan.stages[0].bake_ms = 600; /* several flushes while it bakes */
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    assert_true(h.seen_held);
    if (h.held_longest > CN_STORE_FLUSH_MS + 60)
        print_error("measurements held for %llu ms\n", (unsigned long long)h.held_longest);
    assert_true(h.held_longest <= CN_STORE_FLUSH_MS + 60);
    assert_int_equal(cn_store_held_count(h.store), 0);
    assert_true(count_events(&h, "measurement") >= 30);
    assert_store_matches(&h);
    assert_row(&h, "completed", 0, 1.0);
    harness_free(&h);
}

/* Another driver takes the lease over while the stage bakes (as a second
 * `canary run` does when this one looks dead). */
static void steal_lease(harness *h, const cn_reading *canary)
{
    (void)canary;
    if (h->stolen || h->nreadings < 3)
        return;
    h->stolen = true;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(h->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "UPDATE leases SET holder = 'thief:2:2'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

/* A driver that finds its lease taken stops at its next heartbeat without
 * acting or writing: no rollback call, the measurements it still held let
 * go, exit 1. */
static void test_lost_lease_stops_without_writing(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.defer = true;
    h.lease_holder = "me:1:1";
    h.plan.stages[0].bake_ms = 30000;
    h.policy.analysis.interval_ms = 100;
    h.reading_hook = steal_lease;
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    assert_non_null(strstr(h.stop_reason, "is no longer ours"));
    assert_non_null(strstr(h.stop_reason, "thief:2:2"));
    static const char *const actions[] = {"advance"};
    static const unsigned stages[] = {1};
    static const double weights[] = {10};
    assert_calls(&h, actions, stages, weights, 1); /* no rollback: not ours to move */
    assert_int_equal(cn_store_held_count(h.store), 0);
    /* Polled every 100 ms for 2 s before the heartbeat found out: what was
     * flushed before then is stored, in order; nothing is written after. */
    stored_list l = {.h = &h};
    char err[256] = "";
    assert_int_equal(cn_store_events(h.store, ROLLOUT, compare_stored, &l, err, sizeof err),
                     CN_OK);
    assert_false(l.mismatch);
    assert_true(l.n > 10);
    assert_true(l.n <= h.nevents);
    assert_int_equal(count_events(&h, "rolling_back"), 0);
    harness_free(&h);
}

/* Held measurements that cannot be written stop the rollout as a failed
 * record does: it rolls back and exits 1. */
static void test_held_measurements_failing_stops(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.defer = true;
    h.plan.stages[0].bake_ms = 2000;
    h.fail_trigger = "NEW.type = 'measurement'";
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    assert_int_equal(count_events(&h, "promoted"), 0);
    assert_string_equal(h.events[h.nevents - 1].type, "rolled_back");
    harness_free(&h);
}

static void test_shutdown_during_bake_rolls_back(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.plan.stages[0].bake_ms = 60000;
    h.shutdown_after_ms = 60;
    harness_run(&h);

    assert_int_equal(h.exit_code, 4);
    static const char *const actions[] = {"advance", "rollback"};
    static const unsigned stages[] = {1, 0};
    static const double weights[] = {10, 0};
    assert_calls(&h, actions, stages, weights, 2);
    static const char *const types[] = {"started", "actuator_call", "actuator_ok",
                                        "stage_applied", "polls", "aborted", "actuator_call",
                                        "actuator_ok", "aborted"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    assert_store_matches(&h);
    assert_row(&h, "aborted", 4, 0.0);
    harness_free(&h);
}

static void test_shutdown_detach_leaves_the_canary(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_healthy);
    h.plan.stages[0].bake_ms = 60000;
    h.shutdown_after_ms = 60;
    h.shutdown_detach = true;
    harness_run(&h);

    assert_int_equal(h.exit_code, 1);
    static const char *const actions[] = {"advance"};
    static const unsigned stages[] = {1};
    static const double weights[] = {10};
    assert_calls(&h, actions, stages, weights, 1);
    static const char *const types[] = {"started", "actuator_call", "actuator_ok",
                                        "stage_applied", "polls", "detached"};
    assert_event_types(&h, types, sizeof types / sizeof *types);
    assert_store_matches(&h);
    /* left as it is for a later resume: not terminal, still at 10% */
    assert_row(&h, "progressing", -1, 0.1);
    harness_free(&h);
}

/* ---- a slow provider ---------------------------------------------------- */

typedef struct slow_script {
    unsigned in_flight, max_in_flight;
} slow_script;

/* The first query gets no reply (the 150 ms time-out ends it, 7 intervals
 * later); the others are answered at once. */
static void metric_slow(harness *h, const char *query, cn_http_out *out)
{
    slow_script *ss = h->ctx;
    if (++ss->in_flight > ss->max_in_flight)
        ss->max_in_flight = ss->in_flight;
    if (h->nqueries == 1) {
        out->mode = CN_HTTP_REPLY_NONE;
        return;
    }
    metric_healthy(h, query, out);
}

/* One query per measurement: when it is read, that query is over. */
static void slow_reading(harness *h, const cn_reading *canary)
{
    (void)canary;
    slow_script *ss = h->ctx;
    ss->in_flight--;
}

static void test_slow_provider_is_not_polled_twice(void **state)
{
    (void)state;
    harness h;
    slow_script ss = {0};
    harness_init(&h, metric_slow);
    h.ctx = &ss;
    h.policy.analysis.timeout_ms = 150;
    h.reading_hook = slow_reading;
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    assert_int_equal(ss.max_in_flight, 1);
    assert_true(h.nqueries >= 7);
    /* The first measurement is the time-out, judged an error; the next
     * query was only sent after it, at least the time-out later. */
    assert_int_equal(h.readings[0].outcome, CN_OUTCOME_ERROR);
    assert_true(h.queries[1].at > h.readings[0].at);
    assert_true(h.queries[1].ns - h.queries[0].ns >= 100 * 1000000ull); /* 150, less slack */
    for (size_t i = 1; i < h.nreadings; i++)
        assert_int_equal(h.readings[i].outcome, CN_OUTCOME_PASS);
    assert_int_equal(h.nreadings, h.nqueries);
    assert_store_matches(&h);
    harness_free(&h);
}

/* ---- the observer ------------------------------------------------------- */

/* Outcomes in turn: pass, nodata, pass, error (HTTP 500), then passes. */
static void metric_mixed(harness *h, const char *query, cn_http_out *out)
{
    (void)query;
    switch (h->nqueries) {
    case 2:
        reply_value(out, "NaN");
        break;
    case 4:
        out->status = 500;
        out->body = strdup("{\"status\":\"error\",\"error\":\"down\"}");
        out->len = strlen(out->body);
        break;
    default:
        reply_value(out, "0.01");
    }
}

static void test_observer_sees_every_reading_and_record(void **state)
{
    (void)state;
    harness h;
    harness_init(&h, metric_mixed);
    harness_run(&h);

    assert_int_equal(h.exit_code, 0);
    /* one reading per query, judged, in order; each right before its
     * measurement event */
    assert_int_equal(h.nreadings, h.nqueries);
    assert_true(h.nreadings >= 6);
    static const cn_outcome first[] = {CN_OUTCOME_PASS, CN_OUTCOME_NODATA, CN_OUTCOME_PASS,
                                       CN_OUTCOME_ERROR};
    for (size_t i = 0; i < h.nreadings; i++) {
        assert_int_equal(h.readings[i].metric, 0);
        assert_int_equal(h.readings[i].outcome, i < 4 ? first[i] : CN_OUTCOME_PASS);
        assert_true(h.readings[i].at > h.queries[i].at);
    }
    assert_true(isnan(h.readings[1].value));
    assert_true(isnan(h.readings[3].value));
    assert_true(h.readings[0].value == 0.01);
    /* every event the store holds was reported, in order, and nothing else */
    for (size_t i = 0; i < h.nevents; i++)
        assert_true(h.events[i].stored);
    assert_int_equal(count_events(&h, "measurement"), h.nreadings);
    assert_store_matches(&h);
    static const char *const outcome_words[] = {"pass", "no data", "pass", "error"};
    size_t k = 0;
    for (size_t i = 0; i < h.nevents && k < 4; i++)
        if (!strcmp(h.events[i].type, "measurement")) {
            char want[64];
            snprintf(want, sizeof want, "stage 1: error_rate: %s: ", outcome_words[k++]);
            assert_memory_equal(h.events[i].detail, want, strlen(want));
        }
    assert_int_equal(k, 4);
    harness_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_rollout_completes),
        cmocka_unit_test(test_failing_metric_rolls_back),
        cmocka_unit_test(test_baseline_queries_both_versions),
        cmocka_unit_test(test_baseline_worse_canary_rolls_back),
        cmocka_unit_test(test_min_requests_holds_the_stage),
        cmocka_unit_test(test_store_without_row_only_rolls_back),
        cmocka_unit_test(test_store_failing_promotion_does_not_advance),
        cmocka_unit_test(test_store_failing_actuator_call_does_not_advance),
        cmocka_unit_test(test_store_failing_attempt_stops),
        cmocka_unit_test(test_held_measurements_are_written),
        cmocka_unit_test(test_held_measurements_failing_stops),
        cmocka_unit_test(test_lost_lease_stops_without_writing),
        cmocka_unit_test(test_shutdown_during_bake_rolls_back),
        cmocka_unit_test(test_shutdown_detach_leaves_the_canary),
        cmocka_unit_test(test_slow_provider_is_not_polled_twice),
        cmocka_unit_test(test_observer_sees_every_reading_and_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
