/* The http actuator against a raw HTTP server on 127.0.0.1 in the same
 * loop (raw, so the request's headers can be checked byte for byte): the
 * exact JSON body for each kind of call, 2xx and non-2xx replies, retries,
 * captured reply bodies, credentials from the environment (sent, or a
 * failed attempt naming the missing variable), transport errors, a
 * time-out and cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "canary/actuator.h"
#include "canary/http_client.h"
#include "canary/status.h"

#include "checks.h"
#include "server.h"

/* ---- a raw server: one request per connection, replies as told ---------- */

#define MAX_CONNS 8
#define REQ_CAP 16384

typedef struct server server;

typedef struct conn {
    uv_tcp_t tcp;
    server *s;
    char buf[REQ_CAP];
    size_t len;
    uv_write_t wr;
    char *reply;
    bool used, closing;
} conn;

struct server {
    uv_tcp_t listener;
    int port;
    int statuses[4];     /* reply status per request, the last repeats */
    size_t status_count;
    const char *body;    /* reply body */
    bool silent;         /* never reply */
    unsigned requests;
    char last[REQ_CAP];  /* the last complete request, raw */
    conn conns[MAX_CONNS];
};

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    free(c->reply);
    c->reply = NULL;
    c->used = c->closing = false;
}

static void conn_close(conn *c)
{
    if (c->used && !c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn *c = h->data;
    buf->base = c->buf + c->len;
    buf->len = REQ_CAP - 1 - c->len;
}

static void conn_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

/* A request is complete when its headers and Content-Length bytes are in. */
static bool request_complete(conn *c)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return false;
    size_t body = 0;
    for (char *p = c->buf; p && p < end; p = strstr(p + 1, "\r\n"))
        if (!strncasecmp(p, "\r\nContent-Length:", 17))
            body = (size_t)strtoul(p + 17, NULL, 10);
    return c->len >= (size_t)(end + 4 - c->buf) + body;
}

static void conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    conn *c = st->data;
    if (n < 0 || (n == 0 && c->len >= REQ_CAP - 1)) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    if (!request_complete(c))
        return;
    server *s = c->s;
    memcpy(s->last, c->buf, c->len + 1);
    unsigned i = s->requests++;
    uv_read_stop(st);
    if (s->silent)
        return;
    int status = s->statuses[i < s->status_count ? i : s->status_count - 1];
    const char *body = s->body ? s->body : "";
    size_t blen = strlen(body);
    c->reply = malloc(blen + 256);
    assert_non_null(c->reply);
    int hl = snprintf(c->reply, 256,
                      "HTTP/1.1 %d Whatever\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, blen);
    memcpy(c->reply + hl, body, blen);
    uv_buf_t out = uv_buf_init(c->reply, (unsigned)((size_t)hl + blen));
    c->wr.data = c;
    assert_int_equal(uv_write(&c->wr, st, &out, 1, conn_written), 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    server *s = l->data;
    conn *c = NULL;
    for (int i = 0; i < MAX_CONNS && !c; i++)
        if (!s->conns[i].used)
            c = &s->conns[i];
    assert_non_null(c);
    memset(c, 0, sizeof *c);
    c->used = true;
    c->s = s;
    assert_int_equal(uv_tcp_init(l->loop, &c->tcp), 0);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read), 0);
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_in addr;
    int len = sizeof addr;
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&addr, &len), 0);
    return ntohs(addr.sin_port);
}

static void server_start(server *s, uv_loop_t *loop)
{
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 8, on_connection), 0);
    s->port = bound_port(&s->listener);
}

static void server_close(server *s)
{
    for (int i = 0; i < MAX_CONNS; i++)
        conn_close(&s->conns[i]);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* A port nothing listens on: bound, then closed. */

/* ---- recording the callbacks -------------------------------------------- */

#define MAX_SEEN 8

typedef struct seen_attempt {
    cn_attempt a;
    char what[256];
    char output[4096];
} seen_attempt;

typedef struct rec {
    seen_attempt seen[MAX_SEEN];
    unsigned attempt_calls, done_calls, attempts;
    bool ok;
    cn_actuator_call *call;
} rec;

static void on_attempt(void *ctx, const cn_attempt *a)
{
    rec *r = ctx;
    if (r->attempt_calls < MAX_SEEN) {
        seen_attempt *s = &r->seen[r->attempt_calls];
        s->a = *a;
        snprintf(s->what, sizeof s->what, "%s", a->what);
        snprintf(s->output, sizeof s->output, "%s", a->output);
        s->a.what = s->what;
        s->a.output = s->output;
    }
    r->attempt_calls++;
}

static void on_done(void *ctx, bool ok, unsigned attempts)
{
    rec *r = ctx;
    r->done_calls++;
    r->ok = ok;
    r->attempts = attempts;
}

static const cn_actuation ADVANCE = {.kind = CN_APPLY_ADVANCE, .stage = 2, .weight = 0.05,
                                     .rollout = "r-42", .service = "checkout",
                                     .version = "v2", .previous_version = "v1"};

/* ---- the fixture: loop, server, client ----------------------------------- */

typedef struct fx {
    uv_loop_t loop;
    server srv;
    cn_http *http;
    char url[128];
    rec r;
} fx;

static fx *fx_new(int status, const char *body)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv.statuses[0] = status;
    f->srv.status_count = 1;
    f->srv.body = body;
    server_start(&f->srv, &f->loop);
    assert_int_equal(cn_http_new(&f->http, &f->loop), CN_OK);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/hooks/weights", f->srv.port);
    return f;
}

static cn_actuator http_cfg(const fx *f, unsigned retries, int64_t backoff_ms)
{
    cn_actuator cfg = {.http_url = f->url, .timeout_ms = 3000, .retries = retries,
                       .backoff_ms = backoff_ms};
    return cfg;
}

/* Runs the call until done, then closes everything; the loop must close. */
static void fx_run(fx *f, const cn_actuator *cfg, const cn_actuation *a)
{
    char err[256] = "";
    int rc = cn_actuator_start(&f->r.call, &f->loop, f->http, cfg, a, on_attempt, on_done,
                               &f->r, err, sizeof err);
    if (rc)
        print_error("start: %s\n", err);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(f->r.attempt_calls + f->r.done_calls, 0);
    while (!f->r.done_calls)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void fx_free(fx *f)
{
    server_close(&f->srv);
    cn_http_close(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static const char *request_body(const server *s)
{
    const char *end = strstr(s->last, "\r\n\r\n");
    assert_non_null(end);
    return end + 4;
}

/* ---- the body ------------------------------------------------------------ */

static void test_http_body_advance(void **state)
{
    (void)state;
    fx *f = fx_new(200, "{\"applied\":true}");
    cn_actuator cfg = http_cfg(f, 3, 10);
    fx_run(f, &cfg, &ADVANCE);
    assert_true(f->r.ok);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(f->srv.requests, 1);
    assert_prefix(f->srv.last, "POST /hooks/weights HTTP/1.1\r\n");
    assert_contains(f->srv.last, "\r\nContent-Type: application/json\r\n");
    /* compact, in this order, weight in percent as CANARY_WEIGHT has it */
    assert_string_equal(request_body(&f->srv),
                        "{\"rollout\":\"r-42\",\"service\":\"checkout\",\"version\":\"v2\","
                        "\"previous_version\":\"v1\",\"stage\":2,\"weight\":5.0,"
                        "\"action\":\"advance\"}");
    /* and as a reader sees it */
    json_error_t jerr;
    json_t *o = json_loads(request_body(&f->srv), 0, &jerr);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 7);
    assert_string_equal(json_string_value(json_object_get(o, "rollout")), "r-42");
    assert_string_equal(json_string_value(json_object_get(o, "service")), "checkout");
    assert_string_equal(json_string_value(json_object_get(o, "version")), "v2");
    assert_string_equal(json_string_value(json_object_get(o, "previous_version")), "v1");
    assert_true(json_is_integer(json_object_get(o, "stage")));
    assert_int_equal(json_integer_value(json_object_get(o, "stage")), 2);
    assert_true(json_is_real(json_object_get(o, "weight")));
    assert_true(json_real_value(json_object_get(o, "weight")) == 5.0);
    assert_string_equal(json_string_value(json_object_get(o, "action")), "advance");
    json_decref(o);

    const cn_attempt *a = &f->r.seen[0].a;
    assert_int_equal(f->r.attempt_calls, 1);
    assert_true(a->ok);
    assert_true(a->last);
    assert_prefix(a->what, "HTTP 200 in ");
    assert_contains(a->what, " ms");
    assert_string_equal(a->output, "{\"applied\":true}");
    fx_free(f);
}

static void test_http_body_rollback_and_complete(void **state)
{
    (void)state;
    fx *f = fx_new(204, "");
    cn_actuator cfg = http_cfg(f, 0, 10);
    cn_actuation a = {.kind = CN_APPLY_ROLLBACK, .stage = 0, .weight = 0, .rollout = "r-42",
                      .service = "checkout", .version = "v2", .previous_version = NULL};
    fx_run(f, &cfg, &a);
    assert_true(f->r.ok);
    assert_string_equal(f->r.seen[0].output, "");
    assert_string_equal(request_body(&f->srv),
                        "{\"rollout\":\"r-42\",\"service\":\"checkout\",\"version\":\"v2\","
                        "\"previous_version\":null,\"stage\":0,\"weight\":0.0,"
                        "\"action\":\"rollback\"}");
    fx_free(f);

    f = fx_new(200, "ok");
    cfg = http_cfg(f, 0, 10);
    cn_actuation done = ADVANCE;
    done.kind = CN_APPLY_COMPLETE;
    done.stage = 6;
    done.weight = 1;
    fx_run(f, &cfg, &done);
    assert_true(f->r.ok);
    assert_contains(request_body(&f->srv), "\"stage\":6,\"weight\":100.0,\"action\":\"complete\"}");
    fx_free(f);

    f = fx_new(200, "ok");
    cfg = http_cfg(f, 0, 10);
    cn_actuation small = ADVANCE;
    small.weight = 0.005;
    fx_run(f, &cfg, &small);
    assert_contains(request_body(&f->srv), "\"weight\":0.5,");
    fx_free(f);

    /* the same six digits CANARY_WEIGHT gets, not 33.333333333333336 */
    f = fx_new(200, "ok");
    cfg = http_cfg(f, 0, 10);
    cn_actuation third = ADVANCE;
    third.weight = 1.0 / 3;
    fx_run(f, &cfg, &third);
    assert_contains(request_body(&f->srv), "\"weight\":33.3333,");
    fx_free(f);
}

/* ---- replies and retries ------------------------------------------------- */

static void test_http_503_then_200(void **state)
{
    (void)state;
    fx *f = fx_new(503, "unavailable");
    f->srv.statuses[1] = 200;
    f->srv.status_count = 2;
    cn_actuator cfg = http_cfg(f, 2, 10);
    fx_run(f, &cfg, &ADVANCE);
    assert_true(f->r.ok);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(f->r.attempt_calls, 2);
    assert_int_equal(f->srv.requests, 2);
    const cn_attempt *a = &f->r.seen[0].a;
    assert_false(a->ok);
    assert_false(a->last);
    assert_int_equal(a->retry_in_ms, 10);
    assert_prefix(a->what, "HTTP 503 in ");
    assert_string_equal(a->output, "unavailable");
    assert_true(f->r.seen[1].a.ok);
    assert_true(f->r.seen[1].a.last);
    assert_prefix(f->r.seen[1].a.what, "HTTP 200 in ");
    fx_free(f);
}

/* Any status outside 2xx fails, a redirect included; the long body is cut
 * to its last 2 KiB. */
static void test_http_failures_exhaust_retries(void **state)
{
    (void)state;
    static char big[10241];
    for (int i = 0; i < 10240; i++)
        big[i] = (char)('a' + i % 26);
    fx *f = fx_new(500, big);
    f->srv.statuses[1] = 302;
    f->srv.status_count = 2;
    cn_actuator cfg = http_cfg(f, 1, 5);
    fx_run(f, &cfg, &ADVANCE);
    assert_false(f->r.ok);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(f->srv.requests, 2);
    assert_prefix(f->r.seen[0].what, "HTTP 500 in ");
    assert_prefix(f->r.seen[1].what, "HTTP 302 in ");
    assert_true(f->r.seen[1].a.last);
    char want[2100];
    int n = snprintf(want, sizeof want, "[... 8192 bytes cut]");
    memcpy(want + n, big + 8192, 2048);
    want[n + 2048] = '\0';
    assert_string_equal(f->r.seen[0].output, want);
    fx_free(f);
}

static void test_http_connection_refused(void **state)
{
    (void)state;
    fx *f = fx_new(200, "");
    int port = cn_test_closed_port();
    assert_true(port > 0);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/hooks", port);
    cn_actuator cfg = http_cfg(f, 1, 1);
    fx_run(f, &cfg, &ADVANCE);
    assert_false(f->r.ok);
    assert_int_equal(f->r.attempts, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_contains(f->r.seen[i].what, "refused");
        assert_contains(f->r.seen[i].what, "127.0.0.1");
        assert_string_equal(f->r.seen[i].output, "");
    }
    fx_free(f);
}

static void test_http_timeout(void **state)
{
    (void)state;
    fx *f = fx_new(200, "");
    f->srv.silent = true;
    cn_actuator cfg = http_cfg(f, 0, 1);
    cfg.timeout_ms = 200;
    uint64_t t0 = uv_hrtime();
    fx_run(f, &cfg, &ADVANCE);
    assert_false(f->r.ok);
    assert_contains(f->r.seen[0].what, "timed out");
    assert_true((uv_hrtime() - t0) / 1000000 < 5000);
    fx_free(f);
}

/* A URL the client refuses to try fails the attempt with its reason. */
static void test_http_bad_url(void **state)
{
    (void)state;
    fx *f = fx_new(200, "");
    snprintf(f->url, sizeof f->url, "ftp://127.0.0.1:%d/hooks", f->srv.port);
    cn_actuator cfg = http_cfg(f, 0, 1);
    fx_run(f, &cfg, &ADVANCE);
    assert_false(f->r.ok);
    assert_prefix(f->r.seen[0].what, "could not send: ");
    assert_int_equal(f->srv.requests, 0);
    fx_free(f);
}

/* ---- credentials ----------------------------------------------------------- */

static void test_http_headers_from_env(void **state)
{
    (void)state;
    setenv("CANARY_TEST_TOKEN", "s3cret", 1);
    setenv("CANARY_TEST_KEY", "k-1", 1);
    fx *f = fx_new(200, "");
    cn_env_header hdrs[] = {{.name = "X-Deploy-Key", .env = "CANARY_TEST_KEY"}};
    cn_actuator cfg = http_cfg(f, 0, 1);
    cfg.http_auth.bearer_token_env = "CANARY_TEST_TOKEN";
    cfg.http_auth.headers = hdrs;
    cfg.http_auth.header_count = 1;
    fx_run(f, &cfg, &ADVANCE);
    unsetenv("CANARY_TEST_TOKEN");
    unsetenv("CANARY_TEST_KEY");
    assert_true(f->r.ok);
    assert_contains(f->srv.last, "\r\nAuthorization: Bearer s3cret\r\n");
    assert_contains(f->srv.last, "\r\nX-Deploy-Key: k-1\r\n");
    fx_free(f);
}

/* A missing credential fails each attempt (retried like any failure) and
 * sends nothing. */
static void test_http_missing_credential(void **state)
{
    (void)state;
    unsetenv("CANARY_TEST_UNSET_TOKEN");
    fx *f = fx_new(200, "");
    cn_actuator cfg = http_cfg(f, 1, 1);
    cfg.http_auth.bearer_token_env = "CANARY_TEST_UNSET_TOKEN";
    fx_run(f, &cfg, &ADVANCE);
    assert_false(f->r.ok);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(f->srv.requests, 0);
    for (unsigned i = 0; i < 2; i++) {
        assert_contains(f->r.seen[i].what, "CANARY_TEST_UNSET_TOKEN");
        assert_contains(f->r.seen[i].what, "not set");
    }
    fx_free(f);
}

/* ---- cancel ---------------------------------------------------------------- */

static void test_http_cancel_in_flight(void **state)
{
    (void)state;
    fx *f = fx_new(200, "");
    f->srv.silent = true;
    cn_actuator cfg = http_cfg(f, 3, 10);
    char err[256];
    assert_int_equal(cn_actuator_start(&f->r.call, &f->loop, f->http, &cfg, &ADVANCE,
                                       on_attempt, on_done, &f->r, err, sizeof err),
                     CN_OK);
    while (!f->srv.requests)
        uv_run(&f->loop, UV_RUN_ONCE);
    cn_actuator_cancel(f->r.call);
    assert_int_equal(cn_http_active(f->http), 0);
    rec *r = &f->r;
    server_close(&f->srv);
    cn_http_close(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->attempt_calls, 0);
    assert_int_equal(r->done_calls, 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_body_advance),
        cmocka_unit_test(test_http_body_rollback_and_complete),
        cmocka_unit_test(test_http_503_then_200),
        cmocka_unit_test(test_http_failures_exhaust_retries),
        cmocka_unit_test(test_http_connection_refused),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_bad_url),
        cmocka_unit_test(test_http_headers_from_env),
        cmocka_unit_test(test_http_missing_credential),
        cmocka_unit_test(test_http_cancel_in_flight),
    };
    return cmocka_run_group_tests_name("actuator_http", tests, NULL, NULL);
}
