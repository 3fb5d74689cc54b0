/* HTTP server: a libuv client on the same loop sends raw bytes and the
 * tests compare the exact replies: routing of method, path, query and body
 * to the handler, keep-alive and pipelining, the 400 and 413 refusals (and
 * that refused requests never reach the handler), the reply modes, idle
 * and server-side closes; and the query-parameter decoder. Every exchange
 * ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../../controller/http_server_internal.h"
#include "canary/http_server.h"
#include "canary/status.h"

#define MIB (1024 * 1024)

typedef struct run {
    uv_loop_t loop;
    cn_http_server *srv; /* NULL once closed */
    int port;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t deadline, later;
    const char *const *chunks; /* chunk i is sent once i replies are complete */
    const size_t *chunk_lens;  /* NULL: strlen */
    size_t nchunks, sent;
    size_t want;               /* stop after this many replies; 0: wait for EOF */
    uint64_t close_server_ms;  /* > 0: close the server this long after connecting */
    uint64_t idle_ms;          /* > 0: the server's idle time-out */
    char *reply;
    size_t len, cap;
    bool eof, timed_out, finished;
    /* what the handler saw */
    int calls;
    char method[16], path[256], query[256], body[64];
    size_t body_len;
} run;

/* ---- handler ------------------------------------------------------------ */

static char *text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = malloc(512);
    vsnprintf(s, 512, fmt, ap);
    va_end(ap);
    return s;
}

static void handler(void *ctx, const cn_http_in *in, cn_http_out *out)
{
    run *r = ctx;
    r->calls++;
    snprintf(r->method, sizeof r->method, "%s", in->method);
    snprintf(r->path, sizeof r->path, "%s", in->path);
    snprintf(r->query, sizeof r->query, "%s", in->query);
    snprintf(r->body, sizeof r->body, "%s", in->body);
    r->body_len = in->body_len;
    if (strcmp(in->path, "/empty") == 0)
        return;
    if (strcmp(in->path, "/shutdown") == 0) {
        cn_http_server_close(r->srv);
        r->srv = NULL;
        out->body = text("never sent");
        out->len = strlen(out->body);
        return;
    }
    if (strcmp(in->path, "/none") == 0) {
        out->mode = CN_HTTP_REPLY_NONE;
        out->body = text("never sent");
        out->len = strlen(out->body);
        return;
    }
    if (strcmp(in->path, "/truncated") == 0)
        out->mode = CN_HTTP_REPLY_TRUNCATED;
    if (strcmp(in->path, "/unavailable") == 0)
        out->status = 503;
    if (strcmp(in->path, "/bad-status") == 0)
        out->status = 42;
    out->content_type = "text/plain";
    out->body = text("%s %s ?%s [%.20s] %zu", in->method, in->path, in->query, in->body,
                     in->body_len);
    out->len = strlen(out->body);
}

/* ---- client ------------------------------------------------------------- */

static size_t complete_replies(const char *buf)
{
    size_t n = 0;
    for (;;) {
        const char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            return n;
        const char *cl = strstr(buf, "Content-Length: ");
        size_t body = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
        if (strlen(end + 4) < body)
            return n;
        buf = end + 4 + body;
        n++;
    }
}

static void on_client_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish(run *r)
{
    if (r->finished)
        return;
    r->finished = true;
    uv_close((uv_handle_t *)&r->tcp, on_client_closed);
    uv_close((uv_handle_t *)&r->deadline, on_client_closed);
    uv_close((uv_handle_t *)&r->later, on_client_closed);
    cn_http_server_close(r->srv);
    r->srv = NULL;
}

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a refused request may find the connection closed */
    free(req);
}

static void send_next(run *r)
{
    size_t i = r->sent++;
    size_t len = r->chunk_lens ? r->chunk_lens[i] : strlen(r->chunks[i]);
    uv_write_t *req = malloc(sizeof *req);
    uv_buf_t buf = uv_buf_init((char *)r->chunks[i], (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&r->tcp, &buf, 1, on_written) != 0) {
        free(req);
        finish(r);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    run *r = h->data;
    (void)suggested;
    if (r->cap - r->len < 65536) {
        r->cap = r->cap * 2 + 65536;
        r->reply = realloc(r->reply, r->cap + 1);
    }
    buf->base = r->reply + r->len;
    buf->len = r->cap - r->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    run *r = s->data;
    (void)buf;
    if (n < 0) {
        r->eof = true;
        finish(r);
        return;
    }
    r->len += (size_t)n;
    r->reply[r->len] = '\0';
    size_t done = complete_replies(r->reply);
    while (r->sent < r->nchunks && done >= r->sent)
        send_next(r);
    if (r->want && done >= r->want)
        finish(r);
}

static void on_deadline(uv_timer_t *t)
{
    run *r = t->data;
    r->timed_out = true;
    finish(r);
}

static void on_later(uv_timer_t *t)
{
    run *r = t->data;
    cn_http_server_close(r->srv);
    r->srv = NULL;
}

static void on_connect(uv_connect_t *req, int status)
{
    run *r = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
    if (r->nchunks)
        send_next(r);
    if (r->close_server_ms)
        uv_timer_start(&r->later, on_later, r->close_server_ms, 0);
}

/* Starts a server, sends r's chunks, runs the loop until the reply is
 * complete, the server closes, or deadline_ms passes; then checks that
 * nothing is left open. */
static void exchange(run *r, uint64_t deadline_ms)
{
    assert_int_equal(uv_loop_init(&r->loop), 0);
    char err[256] = "";
    int rc = cn_http_server_start(&r->srv, &r->loop, "127.0.0.1", 0, handler, r, &r->port, err,
                                  sizeof err);
    assert_int_equal(rc, CN_OK);
    assert_true(r->port > 0);
    if (r->idle_ms)
        cn_http_server_set_idle_ms(r->srv, r->idle_ms);
    uv_tcp_init(&r->loop, &r->tcp);
    uv_timer_init(&r->loop, &r->deadline);
    uv_timer_init(&r->loop, &r->later);
    r->tcp.data = r->deadline.data = r->later.data = r->connect.data = r;
    r->reply = malloc(1);
    r->reply[0] = '\0';
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", r->port, &addr);
    assert_int_equal(
        uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&addr, on_connect), 0);
    uv_timer_start(&r->deadline, on_deadline, deadline_ms, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void run_free(run *r)
{
    free(r->reply);
}

/* One request, replies until the server closes (or 2 s). */
static void one(run *r, const char *request)
{
    static const char *chunk[1];
    chunk[0] = request;
    r->chunks = chunk;
    r->nchunks = 1;
    exchange(r, 2000);
}

/* ---- requests ----------------------------------------------------------- */

static void test_get_with_query(void **state)
{
    (void)state;
    run r = {.want = 1};
    one(&r, "GET /api/v1/query?query=up%7Bx%3D%221%22%7D&time=5 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/api/v1/query");
    assert_string_equal(r.query, "query=up%7Bx%3D%221%22%7D&time=5");
    assert_string_equal(r.body, "");
    assert_int_equal(r.body_len, 0);
    assert_false(r.timed_out);
    assert_string_equal(r.reply, "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 56\r\n"
                                 "Connection: keep-alive\r\n\r\n"
                                 "GET /api/v1/query ?query=up%7Bx%3D%221%22%7D&time=5 [] 0");
    run_free(&r);
}

static void test_post_with_body(void **state)
{
    (void)state;
    run r = {.want = 1};
    one(&r, "POST /actuate HTTP/1.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 26\r\n\r\n{\"weight\":5,\"stage\":1} xyz");
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/actuate");
    assert_string_equal(r.query, "");
    assert_string_equal(r.body, "{\"weight\":5,\"stage\":1} xyz");
    assert_int_equal(r.body_len, 26);
    assert_non_null(strstr(r.reply, "\r\n\r\nPOST /actuate ? [{\"weight\":5,\"stage\":] 26"));
    run_free(&r);
}

static void test_chunked_body(void **state)
{
    (void)state;
    run r = {.want = 1};
    one(&r, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.body, "abcdefg");
    assert_int_equal(r.body_len, 7);
    run_free(&r);
}

static void test_empty_body_and_status(void **state)
{
    (void)state;
    run r = {.want = 3};
    static const char *const chunks[] = {
        "GET /empty HTTP/1.1\r\n\r\nGET /unavailable HTTP/1.1\r\n\r\n"
        "GET /bad-status HTTP/1.1\r\n\r\n"};
    r.chunks = chunks;
    r.nchunks = 1;
    exchange(&r, 2000);
    assert_int_equal(r.calls, 3);
    const char *second = strstr(r.reply, "HTTP/1.1 503");
    const char *third = strstr(r.reply, "HTTP/1.1 500 Internal Server Error\r\n");
    assert_non_null(second);
    assert_non_null(third);
    assert_true(second < third);
    assert_true(strncmp(r.reply,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: 0\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 503 "
                        "Service Unavailable\r\n",
                        strlen("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 0\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 "
                               "503 Service Unavailable\r\n")) == 0);
    run_free(&r);
}

static void test_keep_alive_sequential(void **state)
{
    (void)state;
    /* The second request goes out only after the first reply arrived, on
     * the same connection; it asks to close, so the server ends with EOF. */
    static const char *const chunks[] = {
        "GET /one HTTP/1.1\r\n\r\n",
        "GET /two HTTP/1.1\r\nConnection: close\r\n\r\n",
    };
    run r = {.chunks = chunks, .nchunks = 2};
    exchange(&r, 2000);
    assert_int_equal(r.calls, 2);
    assert_true(r.eof);
    assert_false(r.timed_out);
    assert_int_equal(complete_replies(r.reply), 2);
    const char *one_reply = strstr(r.reply, "Connection: keep-alive\r\n\r\nGET /one ? [] 0");
    const char *two_reply = strstr(r.reply, "Connection: close\r\n\r\nGET /two ? [] 0");
    assert_non_null(one_reply);
    assert_non_null(two_reply);
    assert_true(one_reply < two_reply);
    run_free(&r);
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    run r = {0};
    one(&r, "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
            "GET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    assert_int_equal(r.calls, 3); /* nothing after the request that closes */
    assert_true(r.eof);
    const char *a = strstr(r.reply, "GET /a ?");
    const char *b = strstr(r.reply, "POST /b ? [hi] 2");
    const char *c = strstr(r.reply, "GET /c ?");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_null(strstr(r.reply, "never"));
    run_free(&r);
}

static void test_http10_closes(void **state)
{
    (void)state;
    run r = {0};
    one(&r, "HEAD /h HTTP/1.0\r\n\r\n");
    assert_int_equal(r.calls, 1);
    assert_true(r.eof);
    /* HEAD: the length of the body that GET would get, and no body */
    assert_string_equal(r.reply, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 14\r\nConnection: close\r\n\r\n");
    run_free(&r);
}

static void test_upgrade_is_last(void **state)
{
    (void)state;
    run r = {0};
    one(&r, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            "\x81\x85 not http at all");
    assert_int_equal(r.calls, 1);
    assert_true(r.eof);
    assert_string_equal(r.reply, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 14\r\nConnection: close\r\n\r\nGET /ws ? [] 0");
    run_free(&r);
}

/* ---- refusals ----------------------------------------------------------- */

static void assert_refused(run *r, const char *status_line)
{
    assert_int_equal(r->calls, 0);
    assert_true(r->eof);
    assert_false(r->timed_out);
    assert_true(strncmp(r->reply, status_line, strlen(status_line)) == 0);
    assert_non_null(strstr(r->reply, "Connection: close\r\n"));
    assert_int_equal(complete_replies(r->reply), 1);
}

static void test_garbage_is_400(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/9.9x\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "\r\n\r\n\x7f\x80\xff",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        run r = {0};
        one(&r, inputs[i]);
        assert_refused(&r, "HTTP/1.1 400 Bad Request\r\n");
        run_free(&r);
    }
}

static char *big_header(size_t value_len)
{
    char *req = malloc(value_len + 64);
    int n = snprintf(req, 64, "GET /big HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', value_len);
    strcpy(req + n + value_len, "\r\n\r\n");
    return req;
}

static void test_header_limit(void **state)
{
    (void)state;
    char *req = big_header(20 * 1024);
    run r = {0};
    one(&r, req);
    assert_refused(&r, "HTTP/1.1 413 Payload Too Large\r\n");
    run_free(&r);
    free(req);

    /* just under: "/big" + "X-Big" + the value = 16 KiB */
    req = big_header(16 * 1024 - 4 - 5);
    run ok = {.want = 1};
    one(&ok, req);
    assert_int_equal(ok.calls, 1);
    assert_true(strncmp(ok.reply, "HTTP/1.1 200 OK\r\n", 17) == 0);
    run_free(&ok);
    free(req);

    req = big_header(16 * 1024 - 4 - 5 + 1);
    run over = {0};
    one(&over, req);
    assert_refused(&over, "HTTP/1.1 413 ");
    run_free(&over);
    free(req);
}

static void test_declared_body_too_large(void **state)
{
    (void)state;
    /* Only 1000 of the declared 2 MiB are sent: the refusal must not wait
     * for the rest. */
    static char req[2048];
    int n = snprintf(req, sizeof req, "POST /up HTTP/1.1\r\nContent-Length: %d\r\n\r\n", 2 * MIB);
    memset(req + n, 'x', 1000);
    req[n + 1000] = '\0';
    run r = {0};
    one(&r, req);
    assert_refused(&r, "HTTP/1.1 413 Payload Too Large\r\n");
    run_free(&r);
}

static void test_body_limit_exact(void **state)
{
    (void)state;
    size_t head = 64;
    char *req = malloc(head + MIB + 1);
    int n = snprintf(req, head, "POST /one-mib HTTP/1.1\r\nContent-Length: %d\r\n\r\n", MIB);
    memset(req + n, 'y', MIB);
    req[n + MIB] = '\0';
    run r = {.want = 1};
    one(&r, req);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.body_len, MIB);
    assert_true(strncmp(r.reply, "HTTP/1.1 200 OK\r\n", 17) == 0);
    run_free(&r);
    free(req);
}

static void test_chunked_body_too_large(void **state)
{
    (void)state;
    /* No length declared: 1 MiB in one chunk, then one byte more. */
    char *req = malloc(MIB + 256);
    int n = snprintf(req, 128, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", MIB);
    memset(req + n, 'z', MIB);
    strcpy(req + n + MIB, "\r\n1\r\nz\r\n0\r\n\r\n");
    run r = {0};
    one(&r, req);
    assert_refused(&r, "HTTP/1.1 413 ");
    run_free(&r);
    free(req);
}

/* ---- reply modes and closing -------------------------------------------- */

static void test_truncated_reply(void **state)
{
    (void)state;
    run r = {0};
    one(&r, "GET /truncated HTTP/1.1\r\n\r\n");
    assert_true(r.eof);
    assert_string_equal(r.reply, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 1045\r\nConnection: close\r\n\r\n"
                                 "GET /truncated ? [] 0");
    run_free(&r);
}

static void test_no_reply(void **state)
{
    (void)state;
    static const char *const chunks[] = {"GET /none HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n"};
    run r = {.chunks = chunks, .nchunks = 1};
    exchange(&r, 300);
    assert_true(r.timed_out);
    assert_false(r.eof);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.reply, "");
    run_free(&r);
}

static void test_idle_client_dropped(void **state)
{
    (void)state;
    run r = {.idle_ms = 50};
    exchange(&r, 2000);
    assert_true(r.eof);
    assert_false(r.timed_out);
    assert_int_equal(r.calls, 0);
    run_free(&r);
}

static void test_close_with_open_connection(void **state)
{
    (void)state;
    run r = {.close_server_ms = 50};
    one(&r, "GET /half HTTP/1.1\r\nX-Partial: ");
    assert_true(r.eof);
    assert_false(r.timed_out);
    assert_int_equal(r.calls, 0);
    assert_string_equal(r.reply, "");
    run_free(&r);
}

static void test_close_from_handler(void **state)
{
    (void)state;
    run r = {0};
    one(&r, "GET /shutdown HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    assert_true(r.eof);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.reply, "");
    run_free(&r);
}

/* ---- start -------------------------------------------------------------- */

static void noop_handler(void *ctx, const cn_http_in *in, cn_http_out *out)
{
    (void)ctx;
    (void)in;
    (void)out;
}

static void test_start_rejects_names_and_ports(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    static const char *const hosts[] = {"localhost", "::1", "127.0.0.1.5", "", "1.2.3"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        cn_http_server *s = (cn_http_server *)&loop;
        int port = -1;
        char err[256] = "";
        assert_int_equal(cn_http_server_start(&s, &loop, hosts[i], 0, noop_handler, NULL, &port,
                                              err, sizeof err),
                         CN_EINVAL);
        assert_null(s);
        assert_int_equal(port, 0);
        assert_non_null(strstr(err, "is not a numeric IPv4 address"));
    }
    cn_http_server *s;
    char err[256] = "";
    assert_int_equal(cn_http_server_start(&s, &loop, "127.0.0.1", 65536, noop_handler, NULL, NULL,
                                          err, sizeof err),
                     CN_EINVAL);
    assert_string_equal(err, "listen port 65536 is outside 0..65535; use 0 for a free port");
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_port_taken(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cn_http_server *a, *b;
    int port = 0, port_b = -1;
    char err[256] = "";
    assert_int_equal(
        cn_http_server_start(&a, &loop, "127.0.0.1", 0, noop_handler, NULL, &port, err, sizeof err),
        CN_OK);
    assert_int_equal(cn_http_server_start(&b, &loop, "127.0.0.1", port, noop_handler, NULL,
                                          &port_b, err, sizeof err),
                     CN_EIO);
    assert_null(b);
    assert_int_equal(port_b, 0);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: address already in use", port);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    cn_http_server_close(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- query parameters --------------------------------------------------- */

static void assert_param(const char *query, const char *name, int want_rc, const char *want)
{
    char *v = (char *)query; /* must be reset to NULL on failure */
    int rc = cn_http_query_param(query, name, &v);
    if (rc != want_rc)
        print_error("query '%s' name '%s': rc %d\n", query, name, rc);
    assert_int_equal(rc, want_rc);
    if (want) {
        assert_non_null(v);
        assert_string_equal(v, want);
    } else {
        assert_null(v);
    }
    free(v);
}

static void test_query_param(void **state)
{
    (void)state;
    assert_param("query=up%7Bx%3D%221%22%7D", "query", CN_OK, "up{x=\"1\"}");
    assert_param("a&b=c", "b", CN_OK, "c");
    assert_param("a&b=c", "a", CN_OK, "");
    assert_param("a=1&a=2", "a", CN_OK, "1");
    assert_param("q=sum+by+(x)", "q", CN_OK, "sum by (x)");
    assert_param("q=a%2Bb%20c", "q", CN_OK, "a+b c");
    assert_param("q=%22%e2%82%ac%22", "q", CN_OK, "\"\xe2\x82\xac\"");
    assert_param("x=1&my+key=v", "my key", CN_OK, "v");
    assert_param("q=a=b", "q", CN_OK, "a=b");
    assert_param("q=", "q", CN_OK, "");
    assert_param("&&q=1&", "q", CN_OK, "1");
    assert_param("", "q", CN_ENOTFOUND, NULL);
    assert_param("query=1", "q", CN_ENOTFOUND, NULL);
    assert_param("qq=1&xq=2", "q", CN_ENOTFOUND, NULL);
    assert_param("q=%", "q", CN_EINVAL, NULL);
    assert_param("q=%4", "q", CN_EINVAL, NULL);
    assert_param("q=%zz", "q", CN_EINVAL, NULL);
    assert_param("q=%00", "q", CN_EINVAL, NULL);
    assert_param("q=1&other=%g1", "q", CN_EINVAL, NULL);
    assert_param("q%=1", "x", CN_EINVAL, NULL);
    assert_param(NULL, "q", CN_EINVAL, NULL);
}

int main(void)
{
    /* A client that leaves mid-reply must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_query),
        cmocka_unit_test(test_post_with_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_empty_body_and_status),
        cmocka_unit_test(test_keep_alive_sequential),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_http10_closes),
        cmocka_unit_test(test_upgrade_is_last),
        cmocka_unit_test(test_garbage_is_400),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_declared_body_too_large),
        cmocka_unit_test(test_body_limit_exact),
        cmocka_unit_test(test_chunked_body_too_large),
        cmocka_unit_test(test_truncated_reply),
        cmocka_unit_test(test_no_reply),
        cmocka_unit_test(test_idle_client_dropped),
        cmocka_unit_test(test_close_with_open_connection),
        cmocka_unit_test(test_close_from_handler),
        cmocka_unit_test(test_start_rejects_names_and_ports),
        cmocka_unit_test(test_port_taken),
        cmocka_unit_test(test_query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
