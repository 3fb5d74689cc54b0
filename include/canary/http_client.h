/*
 * http_client.h: HTTP requests on the libuv loop (shell).
 *
 * Contract: one cn_http per loop drives libcurl's multi interface from
 * uv_poll handles (CURLMOPT_SOCKETFUNCTION) and a single uv_timer
 * (CURLMOPT_TIMERFUNCTION); nothing blocks the loop. Requests run
 * concurrently and reuse connections. Every request has a time-out, follows
 * no redirect (a 3xx is simply the reply), speaks only http:// and
 * https://, and its body is capped at max_reply bytes: a larger reply ends
 * the request with an error and no body. done is called exactly once for
 * every request cn_http_start() accepted, always from the loop (never from
 * inside cn_http_start), unless the request was cancelled or the client
 * closed first. done may start, cancel or close freely: curl is never on
 * the stack when it runs.
 */
#ifndef CANARY_HTTP_CLIENT_H
#define CANARY_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CN_HTTP_DEFAULT_MAX_REPLY (1024 * 1024)

typedef struct cn_http cn_http;

typedef struct cn_http_request {
    const char *url;
    const char *body;          /* NULL: GET; else POST with this body */
    const char *content_type;  /* POST only; NULL: application/json */
    const char *const *headers; /* "Name: value", header_count of them */
    size_t header_count;
    int64_t timeout_ms;        /* the whole request, connect included; > 0 */
    size_t max_reply;          /* 0: CN_HTTP_DEFAULT_MAX_REPLY */
} cn_http_request;

typedef struct cn_http_reply {
    long status;        /* HTTP status; 0 when no complete reply arrived */
    const char *body;   /* NUL-terminated ("" when none); valid during the callback only */
    size_t len;
    const char *error;  /* NULL for a complete reply (whatever its status); else
                           what failed, in words, ending with where:
                           "connection refused (127.0.0.1:9)",
                           "timed out after 5s (prom:9090)", "reply larger than
                           1 MiB (prom:9090)"; status is then 0 and body "",
                           even when a partial reply arrived */
    int64_t elapsed_ms; /* from cn_http_start to completion, loop clock */
} cn_http_reply;

typedef void (*cn_http_done)(void *ctx, const cn_http_reply *reply);

/* A client on loop. CN_OK or CN_ENOMEM. */
int cn_http_new(cn_http **out, uv_loop_t *loop);

/* Starts req (everything is copied). id, if not NULL, receives a number
 * for cn_http_cancel(). Returns CN_OK; CN_EINVAL (err says why: bad URL
 * scheme, timeout <= 0) or CN_ENOMEM, and then done is never called. */
int cn_http_start(cn_http *h, const cn_http_request *req, cn_http_done done, void *ctx,
                  uint64_t *id, char *err, size_t errlen);

/* Drops a request in flight; its done is not called. Unknown ids are ignored. */
void cn_http_cancel(cn_http *h, uint64_t id);

/* Requests in flight. */
size_t cn_http_active(const cn_http *h);

/* Cancels every request (no done is called) and closes the handles; h is
 * freed once the loop has run the close callbacks (run it until it has no
 * more handles). Allowed inside a done; h must not be used afterwards. */
void cn_http_close(cn_http *h);

#endif
