/*
 * http_client.c: libcurl's multi interface driven by the libuv loop.
 *
 * curl tells us which sockets to watch (socket_cb) and when to wake it
 * (timer_cb); we translate both into uv_poll handles and one uv_timer, and
 * hand readiness back with curl_multi_socket_action. Finished transfers are
 * first collected (easy handle removed and freed), then their callbacks
 * run, so a callback may start, cancel or close anything without curl being
 * on the stack.
 */
#include "canary/http_client.h"
#include "http_internal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "canary/status.h"

/* Idle connections curl keeps for reuse, over all hosts. */
#define IDLE_CONNECTIONS 32L
/* Easy handles kept for the next requests: a poll every interval per
 * metric would otherwise allocate and free one each time. */
#define IDLE_EASY 64

/* One watched socket; freed in its close callback. */
typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    cn_http *h;
    struct sock *prev, *next;
    bool closing;
} sock;

struct cn_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    req_list running;  /* added to the multi */
    req_list finished; /* out of the multi, done not yet called */
    sock *socks;       /* open or closing polls */
    CURL *idle[IDLE_EASY]; /* finished easy handles, to reuse */
    size_t idle_count;
    uint64_t next_id;
    bool closing, timer_closed;
};

/* ---- small helpers ------------------------------------------------------ */

static void list_push(req_list *l, cn_http_req *r)
{
    r->on = l;
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->count++;
}

static void list_unlink(cn_http_req *r)
{
    req_list *l = r->on;
    if (!l)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    l->count--;
    r->on = NULL;
    r->prev = r->next = NULL;
}

/* An easy handle for a new request: a used one, reset to curl's
 * defaults (its options, not the multi's connections), or a new one. */
static CURL *easy_take(cn_http *h)
{
    if (h->idle_count == 0)
        return curl_easy_init();
    CURL *e = h->idle[--h->idle_count];
    curl_easy_reset(e);
    return e;
}

/* Keeps a finished easy handle (out of the multi) for reuse, or frees it. */
static void easy_give(cn_http *h, CURL *e)
{
    if (h->idle_count < IDLE_EASY && !h->closing)
        h->idle[h->idle_count++] = e;
    else
        curl_easy_cleanup(e);
}

static void req_free(cn_http_req *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->h->multi, r->easy);
        easy_give(r->h, r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->buf);
    free(r);
}

static void maybe_free_client(cn_http *h)
{
    if (h->closing && h->timer_closed && !h->socks)
        free(h);
}

/* ---- sockets and the timer ---------------------------------------------- */

static void sock_closed(uv_handle_t *handle)
{
    sock *s = handle->data;
    cn_http *h = s->h;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    maybe_free_client(h);
}

static void sock_close(sock *s)
{
    if (s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void drive(cn_http *h, curl_socket_t fd, int flags);

static void on_poll(uv_poll_t *poll, int status, int events)
{
    sock *s = poll->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    drive(s->h, s->fd, flags);
}

static void on_timer(uv_timer_t *timer)
{
    drive(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* curl's CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks, or stop.
 * curl reports CURL_POLL_REMOVE before it closes a socket, so the poll is
 * gone before the descriptor number can be reused. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    cn_http *h = userp;
    sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (!h->closing)
                curl_multi_assign(h->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (h->closing)
        return 0;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = s;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* curl's CURLMOPT_TIMERFUNCTION. A 0 time-out means "as soon as you can":
 * the timer fires on the next loop iteration, which keeps curl off its own
 * stack (curl forbids socket_action from inside this callback). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    cn_http *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        return uv_timer_stop(&h->timer) == 0 ? 0 : -1;
    return uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* ---- finished transfers ------------------------------------------------- */

/* Takes a finished transfer out of curl and queues its callback. */
static void finish(cn_http *h, CURL *easy, CURLcode rc)
{
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    cn_http_req *r = (cn_http_req *)priv;
    if (!r)
        return;
    long os_errno = 0;
    curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
        r->failure = NULL;
    } else {
        cn_http_req_describe(r, rc, os_errno);
        r->status = 0;
    }
    curl_multi_remove_handle(h->multi, easy);
    easy_give(h, easy);
    r->easy = NULL;
    list_unlink(r);
    list_push(&h->finished, r);
}

/* One step of curl, then the callbacks of whatever finished. The callbacks
 * run only after curl's queue is drained: a callback that starts, cancels
 * or closes then changes lists we no longer walk. */
static void drive(cn_http *h, curl_socket_t fd, int flags)
{
    int running = 0;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE)
            finish(h, m->easy_handle, m->data.result);
    }
    cn_http_req *r;
    while (!h->closing && (r = h->finished.head) != NULL) {
        list_unlink(r);
        cn_http_reply reply = {
            .status = r->status,
            .body = r->buf && !r->failure ? r->buf : "",
            .len = r->failure ? 0 : r->len,
            .error = r->failure,
            .elapsed_ms = (int64_t)(uv_now(h->loop) - r->started),
        };
        r->done(r->ctx, &reply);
        req_free(r);
    }
}

/* ---- the public functions ----------------------------------------------- */

int cn_http_new(cn_http **out, uv_loop_t *loop)
{
    static bool curl_ready;
    *out = NULL;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return CN_ENOMEM;
        curl_ready = true;
    }
    cn_http *h = calloc(1, sizeof *h);
    if (!h)
        return CN_ENOMEM;
    h->loop = loop;
    h->next_id = 1;
    h->multi = curl_multi_init();
    if (!h->multi)
        goto fail_free;
    if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
        goto fail_multi;
    /* No per-host limit: a queued transfer would wait outside its own
     * time-out, and the engine's few requests need no throttle. Only the
     * idle cache is bounded. */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, IDLE_CONNECTIONS);
    if (uv_timer_init(loop, &h->timer) != 0)
        goto fail_multi;
    h->timer.data = h;
    *out = h;
    return CN_OK;

fail_multi:
    curl_multi_cleanup(h->multi);
fail_free:
    free(h);
    return CN_ENOMEM;
}

int cn_http_start(cn_http *h, const cn_http_request *req, cn_http_done done, void *ctx,
                  uint64_t *id, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!req || !req->url || !done) {
        (void)cn_set_err(err, errlen, 0, "no URL or no callback given");
        return CN_EINVAL;
    }
    if (h->closing) {
        (void)cn_set_err(err, errlen, 0, "request to '%s': the HTTP client is closing", req->url);
        return CN_EINVAL;
    }
    char where[CN_HTTP_WHERE];
    int rc = cn_http_req_check(req, where, sizeof where, err, errlen);
    if (rc != CN_OK)
        return rc;
    cn_http_req *r = calloc(1, sizeof *r);
    if (!r) {
        (void)cn_set_err(err, errlen, 0, "out of memory starting a request to '%s'", req->url);
        return CN_ENOMEM;
    }
    r->h = h;
    r->done = done;
    r->ctx = ctx;
    r->timeout_ms = req->timeout_ms;
    r->max = req->max_reply ? req->max_reply : CN_HTTP_DEFAULT_MAX_REPLY;
    memcpy(r->where, where, sizeof where);
    rc = CN_ENOMEM;
    r->easy = easy_take(h);
    if (!r->easy || !cn_http_req_configure(r, req)) {
        (void)cn_set_err(err, errlen, 0, "could not set up a request to '%s' (out of memory?)", req->url);
        goto fail;
    }
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        (void)cn_set_err(err, errlen, 0, "could not start a request to '%s'", req->url);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        goto fail;
    }
    r->id = h->next_id++;
    r->started = uv_now(h->loop);
    list_push(&h->running, r);
    if (id)
        *id = r->id;
    return CN_OK;

fail:
    if (r->easy) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    req_free(r);
    return rc;
}

static cn_http_req *find(req_list *l, uint64_t id)
{
    for (cn_http_req *r = l->head; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

void cn_http_cancel(cn_http *h, uint64_t id)
{
    if (!h || h->closing)
        return;
    cn_http_req *r = find(&h->running, id);
    if (!r)
        r = find(&h->finished, id);
    if (!r)
        return;
    list_unlink(r);
    req_free(r);
}

size_t cn_http_active(const cn_http *h)
{
    return h ? h->running.count + h->finished.count : 0;
}

static void timer_closed(uv_handle_t *handle)
{
    cn_http *h = handle->data;
    h->timer_closed = true;
    maybe_free_client(h);
}

void cn_http_close(cn_http *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    cn_http_req *r;
    while ((r = h->running.head) != NULL) {
        list_unlink(r);
        req_free(r);
    }
    while ((r = h->finished.head) != NULL) {
        list_unlink(r);
        req_free(r);
    }
    while (h->idle_count > 0)
        curl_easy_cleanup(h->idle[--h->idle_count]);
    /* Closes the cached connections; socket_cb may still be told to
     * remove some, and whatever it is not told about is closed below. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    for (sock *s = h->socks; s; s = s->next)
        sock_close(s);
    uv_close((uv_handle_t *)&h->timer, timer_closed);
}
