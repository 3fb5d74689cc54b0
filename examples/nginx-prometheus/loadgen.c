/*
 * loadgen: steady traffic for examples/nginx-prometheus, counted by the
 * version that answered, as users would have seen it.
 *
 *   loadgen --url http://127.0.0.1:18080/ [--rate 100] [--duration SECONDS]
 *           [--out FILE] [--timeout-ms 2000] [--progress SECONDS]
 *
 * Sends --rate GET requests a second, spread evenly (requests are started
 * to catch up with rate x elapsed time, so a slow moment does not lower the
 * rate), for --duration seconds or, without it, until SIGTERM or SIGINT.
 * Then it lets the requests in flight finish (up to --timeout-ms), prints a
 * one-line summary on stdout and writes the counts as one line of JSON to
 * --out (written whole, then renamed into place):
 *
 *   {"url": ..., "rate": 100, "seconds": 5.0, "requests": 500, "ok": 490,
 *    "failed": 10, "http_5xx": 10, "transport_errors": 0, "retried": 1,
 *    "unfinished": 0, "skipped": 0, "by_version": {"v1": {"requests": 450, "failed": 0},
 *    "v2": {"requests": 50, "failed": 10}}, "by_status": {"200": 490, "500": 10}}
 *
 * The version is read from the body the example's service sends ("v2 200");
 * a reply that is not one (nginx's own 502 page) counts under "none". A
 * request without a reply (refused, reset, timed out) is sent once more, as
 * a browser would ("retried"); when that fails too it counts under
 * "transport_errors" and version "none". "failed" is every request that
 * did not end with a 2xx.
 * "skipped" counts requests not sent because 512 were already in flight.
 * Requests go through the library's cn_http (libcurl multi on the loop),
 * which keeps connections alive as a browser would.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "canary/http_client.h"
#include "canary/status.h"

#define MAX_INFLIGHT 512
#define MAX_VERSIONS 16
#define VERSION_MAX 64
#define TICK_MS 5

typedef struct tally {
    char name[VERSION_MAX + 1];
    uint64_t requests, failed;
} tally;

typedef struct loadgen {
    uv_loop_t *loop;
    cn_http *http;
    uv_timer_t tick, stop_timer, progress;
    uv_signal_t sigterm, sigint;
    const char *url, *out;
    double rate, duration, progress_s;
    int64_t timeout_ms;
    uint64_t start_ms, stop_ms;
    uint64_t sent, ok, failed, http_5xx, transport, retried, skipped, unfinished;
    tally versions[MAX_VERSIONS + 1]; /* the last one collects "other" */
    size_t nversions;
    uint64_t by_status[600];
    bool stopping, finished;
} loadgen;

/* ---- counting ----------------------------------------------------------- */

static tally *version_tally(loadgen *g, const char *name)
{
    for (size_t i = 0; i < g->nversions; i++)
        if (!strcmp(g->versions[i].name, name))
            return &g->versions[i];
    if (g->nversions == MAX_VERSIONS) {
        snprintf(g->versions[MAX_VERSIONS].name, sizeof g->versions[0].name, "other");
        return &g->versions[MAX_VERSIONS];
    }
    tally *t = &g->versions[g->nversions++];
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* The version in a body "<version> <code>\n" whose code is the status;
 * "none" for anything else. */
static void body_version(const cn_http_reply *r, char *out, size_t len)
{
    size_t n = strspn(r->body, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789._-");
    char code[32];
    snprintf(code, sizeof code, " %ld\n", r->status);
    if (n && n <= VERSION_MAX && n < len && !strcmp(r->body + n, code))
        snprintf(out, len, "%.*s", (int)n, r->body);
    else
        snprintf(out, len, "none");
}

static void on_finish(uv_timer_t *t);

/* Counts a request's final reply. */
static void count_reply(loadgen *g, const cn_http_reply *r)
{
    char version[VERSION_MAX + 1];
    bool good = !r->error && r->status >= 200 && r->status < 300;
    if (r->error) {
        g->transport++;
        snprintf(version, sizeof version, "none");
        if (g->transport <= 10)
            fprintf(stderr, "loadgen: a request failed twice, the second time: %s\n", r->error);
    } else {
        body_version(r, version, sizeof version);
        if (r->status >= 0 && r->status < 600)
            g->by_status[r->status]++;
        if (r->status >= 500 && r->status < 600)
            g->http_5xx++;
    }
    tally *t = version_tally(g, version);
    t->requests++;
    if (good) {
        g->ok++;
    } else {
        g->failed++;
        t->failed++;
    }
    if (g->stopping && !cn_http_active(g->http))
        uv_timer_start(&g->stop_timer, on_finish, 0, 0); /* the last one: no need to wait */
}

static void on_retry_reply(void *ctx, const cn_http_reply *r)
{
    count_reply(ctx, r);
}

/* A GET that got no reply at all is sent once more, as browsers do for
 * idempotent requests (RFC 9110, 9.2.2): a keep-alive connection that nginx
 * closes as it reloads can take a request with it. Only a second failure
 * counts; the first ones are counted as "retried". */
static void on_reply(void *ctx, const cn_http_reply *r)
{
    loadgen *g = ctx;
    if (!r->error || g->stopping) {
        count_reply(g, r);
        return;
    }
    if (++g->retried <= 10)
        fprintf(stderr, "loadgen: sending a request again: %s\n", r->error);
    cn_http_request req = {.url = g->url, .timeout_ms = g->timeout_ms, .max_reply = 65536};
    char err[256];
    if (cn_http_start(g->http, &req, on_retry_reply, g, NULL, err, sizeof err) != CN_OK)
        count_reply(g, r);
}

static uint64_t completed(const loadgen *g)
{
    return g->ok + g->failed;
}

static void summary(const loadgen *g, FILE *f, const char *prefix)
{
    double seconds = (double)((g->stopping ? g->stop_ms : uv_now(g->loop)) - g->start_ms) / 1000;
    fprintf(f, "%s%" PRIu64 " requests in %.1f s:", prefix, completed(g), seconds);
    for (size_t i = 0; i <= MAX_VERSIONS; i++) {
        const tally *t = &g->versions[i];
        if (t->requests)
            fprintf(f, " %s %" PRIu64 " (%" PRIu64 " failed)", t->name, t->requests, t->failed);
    }
    fprintf(f, "; %" PRIu64 " failed in all (%" PRIu64 " HTTP 5xx, %" PRIu64
            " transport errors); %" PRIu64 " retried\n", g->failed, g->http_5xx, g->transport,
            g->retried);
    fflush(f);
}

/* One line of JSON to path.tmp, then renamed: a reader never sees half. */
static int write_counts(const loadgen *g, const char *path)
{
    json_t *versions = json_object(), *status = json_object();
    for (size_t i = 0; i <= MAX_VERSIONS; i++)
        if (g->versions[i].requests)
            json_object_set_new(versions, g->versions[i].name,
                                json_pack("{sIsI}", "requests", (json_int_t)g->versions[i].requests,
                                          "failed", (json_int_t)g->versions[i].failed));
    for (int s = 0; s < 600; s++)
        if (g->by_status[s]) {
            char key[16];
            snprintf(key, sizeof key, "%d", s);
            json_object_set_new(status, key, json_integer((json_int_t)g->by_status[s]));
        }
    json_t *doc = json_pack(
        "{sssfsfsIsIsIsIsIsIsIsIsoso}", "url", g->url, "rate", g->rate, "seconds",
        (double)(g->stop_ms - g->start_ms) / 1000, "requests", (json_int_t)completed(g), "ok",
        (json_int_t)g->ok, "failed", (json_int_t)g->failed, "http_5xx", (json_int_t)g->http_5xx,
        "transport_errors", (json_int_t)g->transport, "retried", (json_int_t)g->retried,
        "unfinished", (json_int_t)g->unfinished,
        "skipped", (json_int_t)g->skipped, "by_version", versions, "by_status", status);
    char tmp[4096];
    int rc = -1;
    size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10);
    if (doc && snprintf(tmp, sizeof tmp, "%s.tmp", path) < (int)sizeof tmp &&
        json_dump_file(doc, tmp, flags) == 0) {
        FILE *f = fopen(tmp, "a");
        rc = f && fputc('\n', f) != EOF ? 0 : -1;
        if (f && fclose(f) != 0)
            rc = -1;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -1;
    }
    if (rc)
        fprintf(stderr, "loadgen: cannot write the counts to %s: %s\n", path, strerror(errno));
    json_decref(doc);
    return rc;
}

/* ---- sending ------------------------------------------------------------ */

static void send_one(loadgen *g)
{
    g->sent++;
    if (cn_http_active(g->http) >= MAX_INFLIGHT) {
        g->skipped++;
        return;
    }
    cn_http_request req = {.url = g->url, .timeout_ms = g->timeout_ms, .max_reply = 65536};
    char err[256];
    if (cn_http_start(g->http, &req, on_reply, g, NULL, err, sizeof err) != CN_OK) {
        fprintf(stderr, "loadgen: cannot send to %s: %s\n", g->url, err);
        g->skipped++;
    }
}

static void stop(loadgen *g);

/* Catches up with rate x elapsed: a timer that fires late sends more. */
static void on_tick(uv_timer_t *t)
{
    loadgen *g = t->data;
    uint64_t elapsed = uv_now(g->loop) - g->start_ms;
    if (g->duration > 0 && (double)elapsed >= g->duration * 1000) {
        stop(g);
        return;
    }
    uint64_t due = (uint64_t)floor((double)elapsed / 1000 * g->rate);
    while (g->sent < due)
        send_one(g);
}

static void on_progress(uv_timer_t *t)
{
    summary(t->data, stderr, "loadgen: ");
}

static void on_finish(uv_timer_t *t)
{
    loadgen *g = t->data;
    if (g->finished)
        return;
    g->finished = true;
    g->unfinished = cn_http_active(g->http);
    cn_http_close(g->http);
    uv_close((uv_handle_t *)&g->tick, NULL);
    uv_close((uv_handle_t *)&g->stop_timer, NULL);
    uv_close((uv_handle_t *)&g->progress, NULL);
    uv_close((uv_handle_t *)&g->sigterm, NULL);
    uv_close((uv_handle_t *)&g->sigint, NULL);
}

/* Stops sending; the requests in flight get their time-out to finish. */
static void stop(loadgen *g)
{
    if (g->stopping)
        return;
    g->stopping = true;
    g->stop_ms = uv_now(g->loop);
    uv_timer_stop(&g->tick);
    uv_timer_stop(&g->progress);
    uv_timer_start(&g->stop_timer, on_finish,
                   cn_http_active(g->http) ? (uint64_t)g->timeout_ms + 100 : 0, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    stop(sig->data);
}

/* ---- arguments ---------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: loadgen --url URL [--rate PER_SECOND] [--duration SECONDS] "
                    "[--out FILE] [--timeout-ms MS] [--progress SECONDS]\n"
                    "  without --duration it runs until SIGTERM or SIGINT\n");
    return 2;
}

static bool number(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= min && v <= max) || strspn(s, "0123456789.") != strlen(s)) {
        fprintf(stderr, "loadgen: %s expects a number from %g to %g, got '%s'\n", flag, min, max,
                s);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    loadgen g = {.rate = 100, .timeout_ms = 2000};
    double timeout = 2000;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        bool ok = true;
        if (!strcmp(flag, "--url"))
            g.url = v;
        else if (!strcmp(flag, "--out"))
            g.out = v;
        else if (!strcmp(flag, "--rate"))
            ok = number(flag, v, 1, 5000, &g.rate);
        else if (!strcmp(flag, "--duration"))
            ok = number(flag, v, 0.1, 86400, &g.duration);
        else if (!strcmp(flag, "--timeout-ms"))
            ok = number(flag, v, 1, 60000, &timeout);
        else if (!strcmp(flag, "--progress"))
            ok = number(flag, v, 1, 3600, &g.progress_s);
        else
            return usage();
        if (!ok)
            return 2;
    }
    if (!g.url)
        return usage();
    g.timeout_ms = (int64_t)timeout;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    g.loop = &loop;
    if (cn_http_new(&g.http, &loop) != CN_OK) {
        fprintf(stderr, "loadgen: out of memory\n");
        uv_loop_close(&loop);
        return 1;
    }
    uv_timer_init(&loop, &g.tick);
    uv_timer_init(&loop, &g.stop_timer);
    uv_timer_init(&loop, &g.progress);
    uv_signal_init(&loop, &g.sigterm);
    uv_signal_init(&loop, &g.sigint);
    g.tick.data = g.stop_timer.data = g.progress.data = g.sigterm.data = g.sigint.data = &g;
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_update_time(&loop);
    g.start_ms = uv_now(&loop);
    uv_timer_start(&g.tick, on_tick, 0, TICK_MS);
    if (g.progress_s > 0) {
        uint64_t every = (uint64_t)(g.progress_s * 1000);
        uv_timer_start(&g.progress, on_progress, every, every);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int code = 0;
    summary(&g, stdout, "loadgen: ");
    if (g.out && write_counts(&g, g.out) != 0)
        code = 1;
    if (uv_loop_close(&loop) != 0)
        code = 1;
    return code;
}
