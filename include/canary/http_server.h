/*
 * http_server.h: a small HTTP/1.1 server on the libuv loop (shell), built
 * on http_parser. It serves `canary demo`'s simulated metrics and is what
 * the later API server grows from.
 *
 * Contract: listens on a numeric IPv4 address (127.0.0.1 unless told
 * otherwise); port 0 picks a free one, reported in *bound_port. Each
 * complete request calls the handler synchronously, which fills the
 * response; keep-alive is honoured. Malformed requests get 400, a header
 * section over 16 KiB or a body over 1 MiB gets 413, and the connection is
 * closed; a slow or silent client is dropped after 30 s idle. The server
 * never crashes on what a client sends.
 */
#ifndef CANARY_HTTP_SERVER_H
#define CANARY_HTTP_SERVER_H

#include <stddef.h>
#include <uv.h>

typedef struct cn_http_server cn_http_server;

typedef struct cn_http_in {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* "/api/v1/query", without the query string */
    const char *query;   /* raw query string without '?', "" when none */
    const char *body;    /* NUL-terminated, "" when none */
    size_t body_len;
} cn_http_in;

typedef struct cn_http_out {
    int status;               /* default 200 */
    const char *content_type; /* default "application/json" */
    char *body;               /* malloc'd by the handler; the server frees it */
    size_t len;
} cn_http_out;

typedef void (*cn_http_handler)(void *ctx, const cn_http_in *in, cn_http_out *out);

int cn_http_server_start(cn_http_server **out, uv_loop_t *loop, const char *host, int port,
                         cn_http_handler handler, void *ctx, int *bound_port, char *err,
                         size_t errlen);

/* Decodes one application/x-www-form-urlencoded parameter of a query
 * string ("query=up%7Bx%3D%221%22%7D" -> "up{x=\"1\"}"); *value is
 * malloc'd. CN_ENOTFOUND when absent. */
int cn_http_query_param(const char *query, const char *name, char **value);

/* Stops listening and closes every connection; s is freed once the loop has
 * run the close callbacks. */
void cn_http_server_close(cn_http_server *s);

#endif
