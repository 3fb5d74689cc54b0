/*
 * http_server.h: a small HTTP/1.1 server on the libuv loop (shell), built
 * on http_parser. It serves `canary demo`'s simulated metrics and the
 * tests' fake metric sources, and is what the later API server grows from.
 *
 * Contract: listens on a numeric IPv4 address (127.0.0.1 unless told
 * otherwise; a name such as "localhost" is CN_EINVAL); port 0 picks a free
 * one, reported in *bound_port. Each complete request calls the handler
 * synchronously, which fills the response; keep-alive is honoured and
 * pipelined requests are answered in order. Malformed requests get 400, a
 * header section (request line and headers) over 16 KiB or a body over
 * 1 MiB gets 413 (a declared Content-Length over 1 MiB is refused before
 * the body is read), and the connection is closed after the reply; a slow
 * or silent client is dropped after 30 s idle. The server never crashes on
 * what a client sends. The process should ignore SIGPIPE (a client that
 * leaves mid-reply must not kill it); the server does not change signal
 * dispositions itself.
 */
#ifndef CANARY_HTTP_SERVER_H
#define CANARY_HTTP_SERVER_H

#include <stddef.h>
#include <uv.h>

typedef struct cn_http_server cn_http_server;

/* Valid during the handler call only. */
typedef struct cn_http_in {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* "/api/v1/query", without the query string */
    const char *query;   /* raw query string without '?', "" when none */
    const char *body;    /* NUL-terminated, "" when none */
    size_t body_len;
} cn_http_in;

/* How a reply goes out. Real handlers leave the default; the others let a
 * test server imitate a broken metric source. */
typedef enum cn_http_reply_mode {
    CN_HTTP_REPLY_NORMAL = 0,
    /* Content-Length claims more bytes than body holds; the connection is
     * closed after body, so the client sees a truncated reply. */
    CN_HTTP_REPLY_TRUNCATED,
    /* Nothing is sent; the connection stays open (later requests on it are
     * ignored) until the client leaves or the idle time-out drops it. The
     * server frees body, if any. */
    CN_HTTP_REPLY_NONE
} cn_http_reply_mode;

typedef struct cn_http_out {
    int status;               /* default 200; outside 100..999 is sent as 500 */
    const char *content_type; /* default "application/json"; read after the
                                 handler returns: a literal, or longer-lived */
    char *body;               /* malloc'd by the handler; the server frees it;
                                 NULL: an empty body */
    size_t len;
    cn_http_reply_mode mode;  /* default CN_HTTP_REPLY_NORMAL */
} cn_http_out;

/* May call cn_http_server_close(); no reply is sent then. */
typedef void (*cn_http_handler)(void *ctx, const cn_http_in *in, cn_http_out *out);

/* CN_OK; CN_EINVAL for a host that is not a numeric IPv4 address or a port
 * outside 0..65535 (nothing to clean up); CN_ENOMEM; CN_EIO when the socket
 * cannot be bound or listened on (the port is taken): err says which. After
 * CN_EIO the loop must run once more to release what was allocated. */
int cn_http_server_start(cn_http_server **out, uv_loop_t *loop, const char *host, int port,
                         cn_http_handler handler, void *ctx, int *bound_port, char *err,
                         size_t errlen);

/* Decodes one application/x-www-form-urlencoded parameter of a query
 * string ("query=up%7Bx%3D%221%22%7D" -> "up{x=\"1\"}", '+' is a space);
 * *value is malloc'd. The first occurrence wins; "name" without '=' has the
 * value "". CN_ENOTFOUND when absent; CN_EINVAL when the query holds a
 * malformed %-escape anywhere, or %00 (a C string cannot carry it);
 * CN_ENOMEM. */
int cn_http_query_param(const char *query, const char *name, char **value);

/* Stops listening and closes every connection (replies still being written
 * are dropped); s is freed once the loop has run the close callbacks. Safe
 * from inside the handler. */
void cn_http_server_close(cn_http_server *s);

#endif
