/* HTTP client: real transfers against a raw HTTP server that runs on the
 * same loop and answers with canned bytes (good, error, redirect, silent,
 * oversized, truncated, empty, garbage), so every failure path is hit for
 * real; plus concurrency, connection reuse, cancel, close, and callbacks
 * that start, cancel or close from inside done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "canary/http_client.h"
#include "canary/status.h"
#include "canary/version.h"

#include "checks.h"

/* ---- a raw HTTP server on the test's loop -------------------------------- */

typedef struct server server;

typedef struct conn {
    uv_tcp_t tcp;
    server *s;
    struct conn *prev, *next;
    bool closing;
    size_t len;
    char buf[16384];
} conn;

struct server {
    uv_tcp_t listener;
    int port;
    /* What to answer each complete request with: */
    const char *reply;  /* raw bytes; NULL: never answer */
    size_t reply_len;   /* 0: strlen(reply) */
    bool echo;          /* instead: 200 with the request path as body, except
                           paths starting "/hang", which get no answer */
    bool close_after;   /* close the connection once the reply is written */
    int accepts, requests;
    char last[8192];    /* the last request, NUL-terminated */
    size_t last_len;
    conn *conns;
};

typedef struct write_req {
    uv_write_t w;
    conn *c;
    bool close_after;
    char data[];
} write_req;

static void conn_closed(uv_handle_t *handle)
{
    conn *c = handle->data;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void written(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    if ((wr->close_after || status < 0) && !wr->c->closing)
        conn_close(wr->c);
    free(wr);
}

static void send_bytes(conn *c, const char *data, size_t n, bool close_after)
{
    write_req *wr = malloc(sizeof *wr + n + 1);
    assert_non_null(wr);
    wr->c = c;
    wr->close_after = close_after;
    memcpy(wr->data, data, n);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
    assert_int_equal(uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, written), 0);
}

static void answer(conn *c, const char *request)
{
    server *s = c->s;
    if (s->echo) {
        char path[256] = "";
        sscanf(request, "%*s %255s", path);
        if (strncmp(path, "/hang", 5) == 0)
            return;
        char out[512];
        int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(path), path);
        send_bytes(c, out, (size_t)n, s->close_after);
        return;
    }
    if (s->reply)
        send_bytes(c, s->reply, s->reply_len ? s->reply_len : strlen(s->reply), s->close_after);
}

/* The length of the first complete request in buf, or 0. */
static size_t request_size(const char *buf, size_t len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    }
    if (!end)
        return 0;
    size_t body = 0;
    for (const char *p = buf; p < end; p++) {
        if (p + 17 <= end && strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
            body = (size_t)strtoul(p + 17, NULL, 10);
            break;
        }
    }
    size_t head = (size_t)(end - buf);
    return head + body <= len ? head + body : 0;
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn *c = handle->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    conn *c = stream->data;
    if (nread < 0 || (nread == 0 && c->len == sizeof c->buf - 1)) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    size_t n;
    while ((n = request_size(c->buf, c->len)) != 0) {
        server *s = c->s;
        size_t keep = n < sizeof s->last - 1 ? n : sizeof s->last - 1;
        memcpy(s->last, c->buf, keep);
        s->last[keep] = '\0';
        s->last_len = n;
        s->requests++;
        c->buf[c->len] = '\0';
        answer(c, c->buf);
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    server *s = listener->data;
    assert_int_equal(status, 0);
    conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->s = s;
    assert_int_equal(uv_tcp_init(listener->loop, &c->tcp), 0);
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    s->accepts++;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read), 0);
}

/* Binds 127.0.0.1 on a free port; returns the port. */
static int bind_free(uv_tcp_t *t)
{
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof got;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_bind(t, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&got, &len), 0);
    return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void server_start(server *s, uv_loop_t *loop)
{
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    s->port = bind_free(&s->listener);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, on_connection), 0);
}

static void server_stop(server *s)
{
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* ---- fixture --------------------------------------------------------------- */

typedef struct fx {
    uv_loop_t loop;
    server srv;
    cn_http *h;
    uv_timer_t dog;
    bool dog_fired;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    server_start(&f->srv, &f->loop);
    assert_int_equal(cn_http_new(&f->h, &f->loop), CN_OK);
    assert_int_equal(uv_timer_init(&f->loop, &f->dog), 0);
    f->dog.data = f;
    *state = f;
    return 0;
}

/* Closes everything the test opened; a leaked handle fails the test. */
static int teardown(void **state)
{
    fx *f = *state;
    if (f->h)
        cn_http_close(f->h);
    server_stop(&f->srv);
    uv_close((uv_handle_t *)&f->dog, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void dog_fired(uv_timer_t *t)
{
    fx *f = t->data;
    f->dog_fired = true;
}

/* Runs the loop until *counter reaches want; fails after limit_ms. */
static void run_until(fx *f, const int *counter, int want, uint64_t limit_ms)
{
    f->dog_fired = false;
    uv_timer_start(&f->dog, dog_fired, limit_ms, 0);
    while (*counter < want && !f->dog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->dog);
    if (*counter < want) {
        print_error("waited %llu ms for %d events, saw %d\n", (unsigned long long)limit_ms,
                    want, *counter);
        fail();
    }
}

/* Runs the loop for about ms. */
static void run_for(fx *f, uint64_t ms)
{
    f->dog_fired = false;
    uv_timer_start(&f->dog, dog_fired, ms, 0);
    while (!f->dog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
}

typedef struct result result;
struct result {
    fx *f;
    int calls;
    long status;
    char body[8192];
    size_t len;
    bool has_error;
    char error[512];
    int64_t elapsed;
    void (*then)(result *); /* runs inside done */
    uint64_t other;         /* an id for then */
    int *total;             /* counts every done, if set */
};

static void done(void *ctx, const cn_http_reply *reply)
{
    result *r = ctx;
    r->calls++;
    if (r->total)
        ++*r->total;
    r->status = reply->status;
    assert_non_null(reply->body);
    assert_true(reply->len < sizeof r->body);
    assert_int_equal(strlen(reply->body), reply->len); /* NUL-terminated */
    memcpy(r->body, reply->body, reply->len + 1);
    r->len = reply->len;
    r->has_error = reply->error != NULL;
    snprintf(r->error, sizeof r->error, "%s", reply->error ? reply->error : "");
    r->elapsed = reply->elapsed_ms;
    if (r->then)
        r->then(r);
}

static void url_for(char *buf, size_t len, int port, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", port, path);
}

/* A GET of path on the test server; asserts it was accepted. */
static uint64_t get(fx *f, const char *path, int64_t timeout_ms, size_t max, result *res)
{
    char url[128];
    url_for(url, sizeof url, f->srv.port, path);
    cn_http_request req = {.url = url, .timeout_ms = timeout_ms, .max_reply = max};
    uint64_t id = 0;
    char err[256];
    res->f = f;
    assert_int_equal(cn_http_start(f->h, &req, done, res, &id, err, sizeof err), CN_OK);
    assert_true(id != 0);
    return id;
}

static void where(char *buf, size_t len, const char *what, int port)
{
    snprintf(buf, len, "%s (127.0.0.1:%d)", what, port);
}

/* ---- replies ---------------------------------------------------------------- */

static void test_get_200(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
    char url[128];
    url_for(url, sizeof url, f->srv.port, "/api/v1/query?query=up");
    const char *headers[] = {"X-Canary-Test: one", "Authorization: Bearer t0ken"};
    cn_http_request req = {.url = url, .headers = headers, .header_count = 2, .timeout_ms = 5000};
    result res = {.f = f};
    char err[256] = "untouched";
    assert_int_equal(cn_http_start(f->h, &req, done, &res, NULL, err, sizeof err), CN_OK);
    /* never from inside start */
    assert_int_equal(res.calls, 0);
    assert_int_equal(cn_http_active(f->h), 1);
    run_until(f, &res.calls, 1, 3000);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "hello");
    assert_int_equal(res.len, 5);
    assert_false(res.has_error);
    assert_true(res.elapsed >= 0 && res.elapsed < 3000);
    assert_int_equal(cn_http_active(f->h), 0);
    assert_int_equal(f->srv.requests, 1);
    assert_prefix(f->srv.last, "GET /api/v1/query?query=up HTTP/1.1\r\n");
    assert_contains(f->srv.last, "\r\nX-Canary-Test: one\r\n");
    assert_contains(f->srv.last, "\r\nAuthorization: Bearer t0ken\r\n");
    assert_contains(f->srv.last, "\r\nUser-Agent: canary/" CANARY_VERSION "\r\n");
    assert_contains(f->srv.last, "\r\nHost: 127.0.0.1:");
}

static void test_post_body(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    char url[128];
    url_for(url, sizeof url, f->srv.port, "/hook");
    const char *json = "{\"rollout\":\"r-1\",\"stage\":[1,2]}";
    cn_http_request req = {.url = url, .body = json, .timeout_ms = 5000};
    result res = {.f = f};
    char err[256];
    assert_int_equal(cn_http_start(f->h, &req, done, &res, NULL, err, sizeof err), CN_OK);
    run_until(f, &res.calls, 1, 3000);
    assert_int_equal(res.status, 202);
    assert_false(res.has_error);
    assert_int_equal(res.len, 0);
    assert_string_equal(res.body, "");
    assert_prefix(f->srv.last, "POST /hook HTTP/1.1\r\n");
    assert_contains(f->srv.last, "\r\nContent-Type: application/json\r\n");
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", strlen(json));
    assert_contains(f->srv.last, cl);
    size_t n = strlen(f->srv.last);
    assert_true(n > strlen(json) + 4);
    assert_string_equal(f->srv.last + n - strlen(json) - 4,
                        "\r\n\r\n{\"rollout\":\"r-1\",\"stage\":[1,2]}");

    /* A larger body arrives whole, with the caller's content type and no
     * "Expect: 100-continue" (which curl before 8 sends over 1 KiB). */
    static char big[3001];
    for (size_t i = 0; i < 3000; i++)
        big[i] = (char)('a' + i % 26);
    req.body = big;
    req.content_type = "text/plain; charset=utf-8";
    result res2 = {.f = f};
    assert_int_equal(cn_http_start(f->h, &req, done, &res2, NULL, err, sizeof err), CN_OK);
    run_until(f, &res2.calls, 1, 3000);
    assert_int_equal(res2.status, 202);
    assert_contains(f->srv.last, "\r\nContent-Type: text/plain; charset=utf-8\r\n");
    assert_null(strstr(f->srv.last, "Expect:"));
    assert_contains(f->srv.last, "\r\nContent-Length: 3000\r\n");
    n = strlen(f->srv.last);
    assert_true(n > 3000);
    assert_memory_equal(f->srv.last + n - 3000, big, 3000);
}

static void test_500_is_a_reply(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops";
    result res = {0};
    get(f, "/", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    assert_int_equal(res.status, 500);
    assert_false(res.has_error);
    assert_string_equal(res.body, "oops");
    assert_int_equal(res.len, 4);
}

static void test_redirect_not_followed(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 5\r\n\r\nmoved";
    result res = {0};
    get(f, "/start", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    run_for(f, 50);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, 302);
    assert_false(res.has_error);
    assert_string_equal(res.body, "moved");
    assert_int_equal(f->srv.requests, 1);
    assert_prefix(f->srv.last, "GET /start ");
}

/* ---- failures ---------------------------------------------------------------- */

static void test_connection_refused(void **state)
{
    fx *f = *state;
    uv_tcp_t t;
    assert_int_equal(uv_tcp_init(&f->loop, &t), 0);
    /* Bound but never listening, and kept bound while the request runs: a
     * closed port could come back as the client's own source port, and a
     * connection to itself is not refused. */
    int port = bind_free(&t);

    char url[128];
    url_for(url, sizeof url, port, "/");
    cn_http_request req = {.url = url, .timeout_ms = 5000};
    result res = {.f = f};
    char err[256];
    assert_int_equal(cn_http_start(f->h, &req, done, &res, NULL, err, sizeof err), CN_OK);
    run_until(f, &res.calls, 1, 3000);
    uv_close((uv_handle_t *)&t, NULL);
    run_for(f, 1);
    char want[128];
    where(want, sizeof want, "connection refused", port);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);
    assert_int_equal(res.len, 0);
    assert_string_equal(res.body, "");
}

static void test_timeout(void **state)
{
    fx *f = *state;
    f->srv.reply = NULL; /* reads the request, never answers */
    result res = {0};
    get(f, "/slow", 200, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    char want[128];
    where(want, sizeof want, "timed out after 200ms", f->srv.port);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);
    assert_int_equal(res.len, 0);
    assert_int_equal(f->srv.requests, 1);
    assert_true(res.elapsed >= 150 && res.elapsed < 2000);
}

static char *big_reply(size_t body, bool with_length, size_t *len)
{
    char *buf = malloc(body + 128);
    assert_non_null(buf);
    int n = with_length
                ? snprintf(buf, 128, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body)
                : snprintf(buf, 128, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    memset(buf + n, 'x', body);
    *len = (size_t)n + body;
    return buf;
}

/* One GET with max_reply against a reply of body bytes. */
static void fetch_sized(fx *f, size_t body, bool with_length, size_t max, result *res)
{
    size_t len;
    char *reply = big_reply(body, with_length, &len);
    f->srv.reply = reply;
    f->srv.reply_len = len;
    f->srv.close_after = !with_length;
    memset(res, 0, sizeof *res);
    get(f, "/big", 5000, max, res);
    run_until(f, &res->calls, 1, 3000);
    free(reply);
    f->srv.reply = NULL;
    f->srv.reply_len = 0;
    f->srv.close_after = false;
}

static void test_reply_too_large(void **state)
{
    fx *f = *state;
    char want[128];
    where(want, sizeof want, "reply larger than 1000 bytes", f->srv.port);
    result res;

    /* declared too large */
    fetch_sized(f, 5000, true, 1000, &res);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);
    assert_int_equal(res.len, 0);
    assert_string_equal(res.body, "");

    /* no length given: the cap stops the stream */
    fetch_sized(f, 5000, false, 1000, &res);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);
    assert_int_equal(res.len, 0);

    /* exactly the cap is fine, either way */
    fetch_sized(f, 1000, true, 1000, &res);
    assert_false(res.has_error);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.len, 1000);
    fetch_sized(f, 1000, false, 1000, &res);
    assert_false(res.has_error);
    assert_int_equal(res.len, 1000);
    fetch_sized(f, 1001, false, 1000, &res);
    assert_string_equal(res.error, want);

    /* the cap in words: the default, and KiB */
    f->srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\nxxxx";
    memset(&res, 0, sizeof res);
    get(f, "/huge", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    where(want, sizeof want, "reply larger than 1 MiB", f->srv.port);
    assert_string_equal(res.error, want);
    fetch_sized(f, 3000, true, 2048, &res);
    where(want, sizeof want, "reply larger than 2 KiB", f->srv.port);
    assert_string_equal(res.error, want);
}

/* A reply cut short is an error with status 0 and no body: a partial body
 * must never be mistaken for a whole one. */
static void test_truncated(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
    f->srv.close_after = true;
    result res = {0};
    get(f, "/", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    char want[160];
    where(want, sizeof want, "reply truncated: the server closed the connection mid-body",
          f->srv.port);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);
    assert_int_equal(res.len, 0);
    assert_string_equal(res.body, "");
}

static void test_empty_and_garbage(void **state)
{
    fx *f = *state;
    f->srv.reply = "";
    f->srv.close_after = true;
    result res = {0};
    get(f, "/", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    char want[160];
    where(want, sizeof want, "empty reply: the server closed the connection without answering",
          f->srv.port);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.error, want);

    f->srv.reply = "SMTP ready, not HTTP\r\n\r\n";
    memset(&res, 0, sizeof res);
    get(f, "/", 5000, 0, &res);
    run_until(f, &res.calls, 1, 3000);
    assert_int_equal(res.status, 0);
    assert_prefix(res.error, "malformed reply: ");
    snprintf(want, sizeof want, "(127.0.0.1:%d)", f->srv.port);
    assert_contains(res.error, want);
    assert_int_equal(res.len, 0);
}

static void test_rejected_requests(void **state)
{
    fx *f = *state;
    result res = {.f = f};
    char err[256];
    uint64_t id = 77;
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"ftp://127.0.0.1/file", "scheme 'ftp' is not supported"},
        {"file:///etc/passwd", "scheme 'file' is not supported"},
        {"gopher://127.0.0.1/", "scheme 'gopher' is not supported"},
        {"http://", "bad URL 'http://'"},
        {"", "bad URL ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_http_request req = {.url = bad[i].url, .timeout_ms = 1000};
        err[0] = '\0';
        assert_int_equal(cn_http_start(f->h, &req, done, &res, &id, err, sizeof err), CN_EINVAL);
        assert_contains(err, bad[i].why);
    }
    char url[128];
    url_for(url, sizeof url, f->srv.port, "/");
    cn_http_request req = {.url = url, .timeout_ms = 0};
    assert_int_equal(cn_http_start(f->h, &req, done, &res, &id, err, sizeof err), CN_EINVAL);
    assert_contains(err, "time-out must be more than 0 ms");
    req.timeout_ms = -5;
    assert_int_equal(cn_http_start(f->h, &req, done, &res, &id, err, sizeof err), CN_EINVAL);
    const char *inject[] = {"X-A: 1\r\nX-Evil: 2"};
    req.timeout_ms = 1000;
    req.headers = inject;
    req.header_count = 1;
    assert_int_equal(cn_http_start(f->h, &req, done, &res, &id, err, sizeof err), CN_EINVAL);
    assert_contains(err, "line break");
    assert_int_equal(id, 77); /* untouched on failure */
    assert_int_equal(cn_http_active(f->h), 0);
    run_for(f, 20);
    assert_int_equal(res.calls, 0);
    assert_int_equal(f->srv.accepts, 0);
}

/* ---- many, reuse, cancel, close, re-entrancy ------------------------------- */

static void test_fifty_concurrent(void **state)
{
    fx *f = *state;
    f->srv.echo = true;
    enum { N = 50 };
    static result res[N];
    int total = 0;
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/r/%d", i);
        memset(&res[i], 0, sizeof res[i]);
        res[i].total = &total;
        get(f, path, 5000, 0, &res[i]);
    }
    assert_int_equal(cn_http_active(f->h), N);
    run_until(f, &total, N, 4000);
    run_for(f, 20);
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/r/%d", i);
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].status, 200);
        assert_false(res[i].has_error);
        assert_string_equal(res[i].body, path);
    }
    assert_int_equal(f->srv.requests, N);
    assert_int_equal(cn_http_active(f->h), 0);
}

/* Starts the next of an array of results while r->other say more follow. */
static void chain_next(result *r)
{
    if (r->other == 0)
        return;
    result *next = r + 1;
    next->then = chain_next;
    next->other = r->other - 1;
    get(r->f, "/again", 5000, 0, next);
}

/* Each done starts the next request; on keep-alive they share one
 * connection. */
static void test_done_starts_next_on_same_connection(void **state)
{
    fx *f = *state;
    f->srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    result res[3];
    memset(res, 0, sizeof res);
    res[0].then = chain_next;
    res[0].other = 2;
    get(f, "/first", 5000, 0, &res[0]);
    run_until(f, &res[2].calls, 1, 3000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].status, 200);
        assert_string_equal(res[i].body, "ok");
    }
    assert_int_equal(f->srv.requests, 3);
    assert_int_equal(f->srv.accepts, 1);
    assert_int_equal(cn_http_active(f->h), 0);
}

static void test_cancel(void **state)
{
    fx *f = *state;
    f->srv.reply = NULL;
    result res = {0};
    uint64_t id = get(f, "/slow", 200, 0, &res);
    run_until(f, &f->srv.requests, 1, 3000);
    assert_int_equal(cn_http_active(f->h), 1);
    cn_http_cancel(f->h, id);
    cn_http_cancel(f->h, id);      /* twice: now unknown, ignored */
    cn_http_cancel(f->h, id + 99); /* never existed */
    assert_int_equal(cn_http_active(f->h), 0);
    run_for(f, 400); /* past its time-out */
    assert_int_equal(res.calls, 0);

    /* cancelled before the loop ever ran it */
    result res2 = {0};
    id = get(f, "/slow", 200, 0, &res2);
    cn_http_cancel(f->h, id);
    assert_int_equal(cn_http_active(f->h), 0);
    run_for(f, 20);
    assert_int_equal(res2.calls, 0);
}

static void test_close_in_flight(void **state)
{
    fx *f = *state;
    f->srv.reply = NULL;
    result res[5];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 5; i++)
        get(f, "/slow", 200, 0, &res[i]);
    run_until(f, &f->srv.requests, 5, 3000);
    cn_http_close(f->h);
    f->h = NULL;
    run_for(f, 300); /* past their time-outs */
    for (int i = 0; i < 5; i++)
        assert_int_equal(res[i].calls, 0);
    /* teardown checks that the loop closes with no handle left */
}

static void test_close_before_loop_runs(void **state)
{
    fx *f = *state;
    result res = {0};
    get(f, "/", 1000, 0, &res);
    cn_http_close(f->h);
    f->h = NULL;
    run_for(f, 20);
    assert_int_equal(res.calls, 0);
}

static void cancel_other(result *r)
{
    cn_http_cancel(r->f->h, r->other);
}

static void close_client(result *r)
{
    cn_http_close(r->f->h);
    r->f->h = NULL;
}

static void test_done_cancels_or_closes(void **state)
{
    fx *f = *state;
    f->srv.echo = true;
    result hang = {0}, quick = {0};
    quick.then = cancel_other;
    quick.other = get(f, "/hang/1", 300, 0, &hang);
    get(f, "/quick", 5000, 0, &quick);
    run_until(f, &quick.calls, 1, 3000);
    assert_int_equal(quick.status, 200);
    assert_int_equal(cn_http_active(f->h), 0);
    run_for(f, 400);
    assert_int_equal(hang.calls, 0);

    result hang2 = {0}, closer = {0};
    closer.then = close_client;
    get(f, "/hang/2", 300, 0, &hang2);
    get(f, "/closer", 5000, 0, &closer);
    run_until(f, &closer.calls, 1, 3000);
    assert_null(f->h);
    run_for(f, 400);
    assert_int_equal(closer.calls, 1);
    assert_int_equal(hang2.calls, 0);
}

int main(void)
{
    /* Tests talk to 127.0.0.1 directly, whatever proxy the shell sets. */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_is_a_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifty_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_starts_next_on_same_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_before_loop_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_cancels_or_closes, setup, teardown),
    };
    return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
