/* A webhook receiver on the test's loop; contract in hook_server.h. */
#include "hook_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQ_CAP (64 * 1024)
#define MAX_KEPT 256

typedef struct conn {
    uv_tcp_t tcp;
    cn_hook_server *s;
    struct conn *prev, *next;
    uv_write_t wr;
    char reply[256];
    bool closing;
    size_t len;
    char buf[REQ_CAP + 1];
} conn;

typedef struct kept {
    char *head, *body;
    uint64_t when;
} kept;

struct cn_hook_server {
    uv_tcp_t listener;
    int port;
    int statuses[8];
    size_t status_count;
    kept reqs[MAX_KEPT];
    size_t count;
    conn *conns;
    unsigned open; /* the listener and every connection */
};

static void release(cn_hook_server *s)
{
    if (--s->open)
        return;
    for (size_t i = 0; i < s->count; i++) {
        free(s->reqs[i].head);
        free(s->reqs[i].body);
    }
    free(s);
}

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    cn_hook_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    release(s);
}

static void conn_close(conn *c)
{
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn *c = h->data;
    buf->base = c->buf + c->len;
    buf->len = REQ_CAP - c->len;
}

static void conn_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

/* The length of the head (without its blank line) once the whole request
 * is in, else 0. */
static size_t complete(conn *c)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return 0;
    size_t body = 0;
    for (char *p = c->buf; p && p < end; p = strstr(p + 1, "\r\n"))
        if (!strncasecmp(p, "\r\nContent-Length:", 17))
            body = (size_t)strtoul(p + 17, NULL, 10);
    size_t head = (size_t)(end - c->buf);
    return c->len >= head + 4 + body ? head : 0;
}

static void conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    conn *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    assert_true(c->len < REQ_CAP);
    size_t head = complete(c);
    if (!head)
        return;
    uv_read_stop(st);
    cn_hook_server *s = c->s;
    assert_true(s->count < MAX_KEPT);
    kept *k = &s->reqs[s->count];
    k->head = strndup(c->buf, head);
    k->body = strdup(c->buf + head + 4);
    k->when = uv_now(st->loop);
    assert_non_null(k->head);
    assert_non_null(k->body);
    size_t i = s->count++;
    int status = s->statuses[i < s->status_count ? i : s->status_count - 1];
    if (status == 0)
        return; /* hang: the client's time-out ends it */
    int len = snprintf(c->reply, sizeof c->reply,
                       "HTTP/1.1 %d Scripted\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 2\r\nConnection: close\r\n\r\nok", status);
    uv_buf_t out = uv_buf_init(c->reply, (unsigned)len);
    c->wr.data = c;
    assert_int_equal(uv_write(&c->wr, st, &out, 1, conn_written), 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    cn_hook_server *s = l->data;
    conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->s = s;
    assert_int_equal(uv_tcp_init(l->loop, &c->tcp), 0);
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read), 0);
}

cn_hook_server *cn_hook_server_start(uv_loop_t *loop)
{
    cn_hook_server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->statuses[0] = 200;
    s->status_count = 1;
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    s->open = 1;
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 64, on_connection), 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len), 0);
    s->port = ntohs(bound.sin_port);
    return s;
}

int cn_hook_server_port(const cn_hook_server *s)
{
    return s->port;
}

void cn_hook_server_script(cn_hook_server *s, const int *statuses, size_t n)
{
    assert_true(n >= 1 && n <= 8);
    memcpy(s->statuses, statuses, n * sizeof *statuses);
    s->status_count = n;
}

size_t cn_hook_server_count(const cn_hook_server *s)
{
    return s->count;
}

const char *cn_hook_server_head(const cn_hook_server *s, size_t i)
{
    assert_true(i < s->count);
    return s->reqs[i].head;
}

const char *cn_hook_server_body(const cn_hook_server *s, size_t i)
{
    assert_true(i < s->count);
    return s->reqs[i].body;
}

uint64_t cn_hook_server_when(const cn_hook_server *s, size_t i)
{
    assert_true(i < s->count);
    return s->reqs[i].when;
}

static void listener_closed(uv_handle_t *h)
{
    release(h->data);
}

void cn_hook_server_close(cn_hook_server *s)
{
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, listener_closed);
}
