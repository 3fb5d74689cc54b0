#include "canary/http_server.h"

#include <http_parser.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "http_server_internal.h"

#define HEADER_LIMIT (16 * 1024)
#define BODY_LIMIT (1024 * 1024)
#define IDLE_MS 30000
#define READ_CHUNK (64 * 1024)
/* Replies the kernel has not taken yet, above which a connection stops
 * reading: a client that pipelines requests without reading the answers
 * cannot make the server buffer without bound. */
#define WRITE_BACKLOG (4 * 1024 * 1024)
/* Beyond this many open connections a new one is accepted and closed at
 * once (not accepting it would stall the listener). */
#define MAX_CONNS 1024
/* Request buffers larger than this are released between requests, so an
 * idle keep-alive connection does not sit on a megabyte. */
#define KEEP_BUFFER (64 * 1024)
/* What a truncated reply's Content-Length claims beyond its body. */
#define TRUNCATED_EXTRA 1024

typedef struct conn conn;

struct cn_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    cn_http_handler handler;
    void *ctx;
    conn *conns;   /* open connections (not yet closing) */
    size_t live;   /* connections not yet freed, closing ones included */
    uint64_t idle_ms;
    bool closing, listener_closed;
};

struct conn {
    cn_http_server *srv;
    conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_parser parser;
    char *url, *body; /* NUL-terminated; the body may also hold NULs */
    size_t url_len, url_cap, body_len, body_cap;
    size_t header_bytes; /* request line and header names and values so far */
    int reject;          /* status a parser callback decided on; 0: none */
    unsigned writes;     /* uv_write requests in flight */
    int handles;         /* handles not yet closed */
    bool closing;
    bool done;           /* parse nothing more: a last reply or no reply */
    bool close_after;    /* close once the writes in flight are done */
    bool shutting;
    bool read_paused;    /* stopped for back-pressure */
};

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char *body;
    char head[];
} wreq;

static void conn_close(conn *c);

/* ---- lifetime ----------------------------------------------------------- */

static void maybe_free_server(cn_http_server *s)
{
    if (s->closing && s->listener_closed && s->live == 0)
        free(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    cn_http_server *s = h->data;
    s->listener_closed = true;
    maybe_free_server(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles > 0)
        return;
    cn_http_server *s = c->srv;
    free(c->url);
    free(c->body);
    free(c);
    s->live--;
    maybe_free_server(s);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void touch(conn *c)
{
    uv_timer_start(&c->timer, on_idle, c->srv->idle_ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn *c = req->data;
    conn_close(c);
}

/* Closes after the replies in flight: shutdown flushes them, then sends FIN. */
static void finish(conn *c)
{
    c->done = true;
    c->close_after = true;
    if (c->closing || c->shutting || c->writes > 0)
        return;
    c->shutting = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* ---- replies ------------------------------------------------------------ */

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(READ_CHUNK);
    buf->len = buf->base ? READ_CHUNK : 0;
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = req->data;
    conn *c = w->c;
    free(w->body);
    free(w);
    c->writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    touch(c);
    if (c->close_after) {
        finish(c);
        return;
    }
    if (c->read_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_BACKLOG / 2) {
        c->read_paused = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            conn_close(c);
    }
}

static const char *reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return r && r[0] != '<' ? r : "Status";
}

/* Queues one reply; takes body. A failure closes the connection. */
static void send_reply(conn *c, int status, const char *ctype, char *body, size_t len,
                       bool keep, cn_http_reply_mode mode, bool head_only)
{
    if (status < 100 || status > 999)
        status = 500;
    if (!ctype || !*ctype || strpbrk(ctype, "\r\n") || strlen(ctype) > 200)
        ctype = "application/json";
    if (!body || len > UINT_MAX - TRUNCATED_EXTRA)
        len = 0;
    size_t claimed = mode == CN_HTTP_REPLY_TRUNCATED ? len + TRUNCATED_EXTRA : len;
    const char *why = reason(status);
    size_t cap = strlen(ctype) + strlen(why) + 128;
    wreq *w = malloc(sizeof *w + cap);
    if (!w) {
        free(body);
        conn_close(c);
        return;
    }
    int hn = snprintf(w->head, cap,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: %s\r\n\r\n",
                      status, why, ctype, claimed, keep ? "keep-alive" : "close");
    w->c = c;
    w->body = body;
    w->req.data = w;
    uv_buf_t bufs[2];
    unsigned nbufs = 1;
    bufs[0] = uv_buf_init(w->head, (unsigned)hn);
    if (len && !head_only)
        bufs[nbufs++] = uv_buf_init(body, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) != 0) {
        free(body);
        free(w);
        conn_close(c);
        return;
    }
    c->writes++;
}

/* A last reply for a request the server refuses, then close. */
static void reply_error(conn *c, int status)
{
    const char *text = status == 413   ? "request too large: the header section may hold "
                                         "16 KiB and the body 1 MiB\n"
                       : status == 400 ? "malformed HTTP request\n"
                                       : "the server could not handle the request\n";
    c->done = true;
    char *body = strdup(text);
    send_reply(c, status, "text/plain", body, body ? strlen(body) : 0, false,
               CN_HTTP_REPLY_NORMAL, false);
    finish(c);
}

/* ---- parsing ------------------------------------------------------------ */

/* Stops the parser with a status to answer; execute() returns at once. */
static int refuse(conn *c, int status)
{
    if (!c->reject)
        c->reject = status;
    http_parser_pause(&c->parser, 1);
    return 0;
}

static int append(char **buf, size_t *n, size_t *cap, const char *at, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *n + len + 1)
            nc *= 2;
        char *b = realloc(*buf, nc);
        if (!b)
            return -1;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *n, at, len);
    *n += len;
    (*buf)[*n] = '\0';
    return 0;
}

static int count_header(conn *c, size_t len)
{
    if (len > HEADER_LIMIT - c->header_bytes)
        return refuse(c, 413);
    c->header_bytes += len;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->url_len = c->body_len = c->header_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    count_header(c, len);
    if (c->reject)
        return 0;
    if (append(&c->url, &c->url_len, &c->url_cap, at, len) != 0)
        return refuse(c, 500);
    return 0;
}

static int on_header_part(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_header(p->data, len);
}

static int on_headers_complete(http_parser *p)
{
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > BODY_LIMIT)
        return refuse(p->data, 413);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (len > BODY_LIMIT - c->body_len)
        return refuse(c, 413);
    if (append(&c->body, &c->body_len, &c->body_cap, at, len) != 0)
        return refuse(c, 500);
    return 0;
}

/* Splits the request target into path and query in place. */
static void split_url(conn *c, bool is_connect, const char **path, const char **query)
{
    static char empty[1] = "";
    char *url = c->url ? c->url : empty;
    size_t n = c->url ? c->url_len : 0;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (n && http_parser_parse_url(url, n, is_connect, &u) == 0) {
        *path = "/";
        *query = "";
        if (u.field_set & (1 << UF_PATH)) {
            url[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0';
            *path = url + u.field_data[UF_PATH].off;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
            *query = url + u.field_data[UF_QUERY].off;
        }
        return;
    }
    /* Targets parse_url refuses ("*", a CONNECT authority) */
    char *q = strchr(url, '?');
    *path = url;
    *query = "";
    if (q) {
        *q = '\0';
        *query = q + 1;
    }
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    cn_http_server *s = c->srv;
    const char *path, *query;
    split_url(c, p->method == HTTP_CONNECT, &path, &query);
    cn_http_in in = {
        .method = http_method_str((enum http_method)p->method),
        .path = path,
        .query = query,
        .body = c->body ? c->body : "",
        .body_len = c->body_len,
    };
    cn_http_out out = {.status = 200};
    /* No protocol switches: what follows an upgrade request is not HTTP. */
    bool keep = http_should_keep_alive(p) != 0 && !p->upgrade;
    s->handler(s->ctx, &in, &out);

    if (c->body_cap > KEEP_BUFFER) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->body_len = c->url_len = 0;
    if (c->closing || out.mode == CN_HTTP_REPLY_NONE) {
        free(out.body);
        c->done = true;
        http_parser_pause(p, 1);
        return 0;
    }
    if (out.mode == CN_HTTP_REPLY_TRUNCATED)
        keep = false;
    send_reply(c, out.status, out.content_type, out.body, out.len, keep, out.mode,
               p->method == HTTP_HEAD);
    if (!keep || c->closing) {
        http_parser_pause(p, 1);
        finish(c);
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_part,
    .on_header_value = on_header_part,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void feed(conn *c, const char *data, size_t n)
{
    http_parser_execute(&c->parser, &settings, data, n);
    if (c->closing)
        return;
    if (c->reject) {
        reply_error(c, c->reject);
        return;
    }
    if (c->done)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_HEADER_OVERFLOW)
        reply_error(c, 413);
    else if (e != HPE_OK)
        reply_error(c, 400);
    else if (c->parser.upgrade)
        finish(c); /* no protocol switches: what follows is not HTTP */
    else if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_BACKLOG &&
             uv_read_stop((uv_stream_t *)&c->tcp) == 0)
        c->read_paused = true;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (n > 0 && !c->closing) {
        touch(c);
        if (!c->done)
            feed(c, buf->base, (size_t)n);
    } else if (n < 0 && !c->closing) {
        /* A client that half-closes after its request still gets the reply. */
        if (n == UV_EOF && c->writes > 0)
            finish(c);
        else
            conn_close(c);
    }
    free(buf->base);
}

/* ---- listening ---------------------------------------------------------- */

static void on_connection(uv_stream_t *l, int status)
{
    cn_http_server *s = l->data;
    if (status < 0 || s->closing)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    s->live++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || s->live > MAX_CONNS ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    touch(c);
}

int cn_http_server_start(cn_http_server **out, uv_loop_t *loop, const char *host, int port,
                         cn_http_handler handler, void *ctx, int *bound_port, char *err,
                         size_t errlen)
{
    if (out)
        *out = NULL;
    if (bound_port)
        *bound_port = 0;
    if (!out || !loop || !host || !handler) {
        (void)cn_set_err(err, errlen, 0, "http server: missing argument (out, loop, host or handler)");
        return CN_EINVAL;
    }
    if (port < 0 || port > 65535) {
        (void)cn_set_err(err, errlen, 0, "listen port %d is outside 0..65535; use 0 for a free port", port);
        return CN_EINVAL;
    }
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, port, &addr) != 0) {
        (void)cn_set_err(err, errlen, 0, "listen address '%s' is not a numeric IPv4 address; use one such "
                "as 127.0.0.1", host);
        return CN_EINVAL;
    }
    cn_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return CN_ENOMEM;
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    s->idle_ms = IDLE_MS;
    int rc = uv_tcp_init(loop, &s->listener);
    if (rc != 0) {
        free(s);
        (void)cn_set_err(err, errlen, 0, "cannot create a socket for %s:%d: %s", host, port, uv_strerror(rc));
        return CN_EIO;
    }
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    struct sockaddr_storage name;
    int namelen = sizeof name;
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &namelen);
    if (rc != 0) {
        (void)cn_set_err(err, errlen, 0, "cannot listen on %s:%d: %s; choose another port, or 0 for a free one",
                host, port, uv_strerror(rc));
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return CN_EIO;
    }
    if (bound_port)
        *bound_port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    *out = s;
    return CN_OK;
}

void cn_http_server_close(cn_http_server *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    while (s->conns)
        conn_close(s->conns);
}

void cn_http_server_set_idle_ms(cn_http_server *s, uint64_t ms)
{
    if (s)
        s->idle_ms = ms;
}
