/*
 * service: the tiny HTTP service of examples/nginx-prometheus. Two copies
 * run side by side, the stable version and the canary, each on its own
 * 127.0.0.1 port, behind nginx:
 *
 *   service --port 18081 --version v1
 *   service --port 18082 --version v2 [--error-ratio 0.2] [--added-latency-ms 300]
 *
 * --port 0 takes a free port; --port-file FILE receives the port (decimal,
 * newline; written whole, then renamed into place) once it listens.
 *
 * GET /         "v2 200\n" with status 200, or "v2 500\n" with 500 for the
 *               --error-ratio share of requests, spread evenly: request n
 *               fails when floor(n * ratio) grows (0.2 fails every 5th). The
 *               version is also in the X-Version header. --added-latency-ms
 *               holds each reply back on a timer, never blocking the loop.
 * GET /metrics  Prometheus text format 0.0.4: http_requests_total{version,
 *               code} and the histogram http_request_duration_seconds
 *               {version} of the requests to every other path (the scrapes
 *               themselves are not counted).
 * other paths   404, counted; other methods 405, counted.
 *
 * Each connection carries one request and is closed after the reply
 * (Connection: close): nginx proxies to upstreams with HTTP/1.0, and a
 * scrape a second is cheap to reconnect. The counters for codes 200 and 500
 * exist from the start, at 0, so a version that has served nothing yet has
 * a rate of 0 rather than no series. Runs until SIGTERM or SIGINT (or its
 * parent dies), then exits 0; a bad argument exits 2.
 */
#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define URL_MAX 2048
#define PPM 1000000LL

/* Prometheus' default buckets, in seconds. */
static const double BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

/* The codes the service can answer with, each a counter. */
static const int CODES[] = {200, 404, 405, 500};
#define NCODES (sizeof CODES / sizeof CODES[0])

typedef struct conn conn;

typedef struct service {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    const char *version;
    int64_t error_ppm;      /* the error ratio in millionths: exact arithmetic */
    uint64_t latency_ms;
    uint64_t served;        /* requests to "/" so far: n of the error spread */
    uint64_t by_code[NCODES];
    uint64_t bucket[NBUCKETS]; /* observations <= BUCKETS[i], not cumulative */
    uint64_t count;
    double sum;
    conn *conns;            /* open connections, to close them on a signal */
    bool stopping;
} service;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t delay;
    uv_write_t write;
    http_parser parser;
    service *svc;
    conn *prev, *next;
    char url[URL_MAX];
    size_t url_len;
    bool url_too_long;
    bool replied;           /* a request was taken; later bytes are ignored */
    int open_handles;       /* tcp and delay; freed when both are closed */
    uint64_t start_ns;      /* when the request was complete */
    int status;
    char *reply;            /* the whole response; owned, freed with conn */
};

/* ---- metrics ------------------------------------------------------------ */

static void count_request(service *s, int status, uint64_t start_ns)
{
    for (size_t i = 0; i < NCODES; i++)
        if (CODES[i] == status)
            s->by_code[i]++;
    double seconds = (double)(uv_hrtime() - start_ns) / 1e9;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= BUCKETS[i]) {
            s->bucket[i]++;
            break;
        }
    s->count++;
    s->sum += seconds;
}

/* Appends to a growing buffer; returns -1 when out of memory. */
static int add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        size_t want = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *p = realloc(*buf, want);
        if (!p)
            return -1;
        *buf = p;
        *cap = want;
    }
}

/* The exposition, malloc'd; NULL when out of memory. Codes other than 200
 * and 500 appear once they have happened. */
static char *metrics_text(const service *s, size_t *len)
{
    char *b = NULL;
    size_t cap = 0;
    *len = 0;
    int rc = add(&b, len, &cap,
                 "# HELP http_requests_total Requests served, by version and status code.\n"
                 "# TYPE http_requests_total counter\n");
    for (size_t i = 0; i < NCODES && !rc; i++)
        if (CODES[i] == 200 || CODES[i] == 500 || s->by_code[i])
            rc = add(&b, len, &cap, "http_requests_total{version=\"%s\",code=\"%d\"} %" PRIu64
                     "\n", s->version, CODES[i], s->by_code[i]);
    rc = rc ? rc : add(&b, len, &cap,
                       "# HELP http_request_duration_seconds Time to answer a request, "
                       "added latency included.\n"
                       "# TYPE http_request_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < NBUCKETS && !rc; i++) {
        cumulative += s->bucket[i];
        rc = add(&b, len, &cap, "http_request_duration_seconds_bucket{version=\"%s\",le=\"%g\"} %"
                 PRIu64 "\n", s->version, BUCKETS[i], cumulative);
    }
    rc = rc ? rc : add(&b, len, &cap,
                       "http_request_duration_seconds_bucket{version=\"%s\",le=\"+Inf\"} %" PRIu64
                       "\nhttp_request_duration_seconds_sum{version=\"%s\"} %.9f\n"
                       "http_request_duration_seconds_count{version=\"%s\"} %" PRIu64 "\n",
                       s->version, s->count, s->version, s->sum, s->version, s->count);
    if (rc) {
        free(b);
        return NULL;
    }
    return b;
}

/* ---- connections -------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->open_handles)
        return;
    free(c->reply);
    free(c);
}

static void conn_close(conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->svc->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->delay, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* a client that left is closed either way */
    conn_close(w->data);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    default: return "Internal Server Error";
    }
}

/* Sends the whole response and closes the connection once it is written. */
static void send_reply(conn *c, int status, const char *type, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Version: %s\r\nConnection: close\r\n\r\n",
                     status, reason(status), type, len, c->svc->version);
    if (n < 0 || (size_t)n >= sizeof head || !(c->reply = malloc((size_t)n + len))) {
        conn_close(c);
        return;
    }
    memcpy(c->reply, head, (size_t)n);
    memcpy(c->reply + n, body, len);
    uv_buf_t buf = uv_buf_init(c->reply, (unsigned)((size_t)n + len));
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

/* A request the service counts: to the application, not to /metrics. */
static void answer_counted(conn *c)
{
    char body[96];
    int n = snprintf(body, sizeof body, "%s %d\n", c->svc->version, c->status);
    count_request(c->svc, c->status, c->start_ns);
    send_reply(c, c->status, "text/plain", body, (size_t)n);
}

static void on_delay(uv_timer_t *t)
{
    answer_counted(t->data);
}

/* Request n of "/" fails when floor(n * ratio) grows: an exact, even spread
 * (ratio 0.2 fails requests 5, 10, 15, ...), the same on every run. */
static int app_status(service *s)
{
    int64_t n = (int64_t)++s->served;
    return (n * s->error_ppm) / PPM > ((n - 1) * s->error_ppm) / PPM ? 500 : 200;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (len >= URL_MAX - c->url_len) {
        c->url_too_long = true;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    service *s = c->svc;
    c->replied = true;
    c->start_ns = uv_hrtime();
    uv_read_stop((uv_stream_t *)&c->tcp);
    http_parser_pause(p, 1); /* a pipelined request behind this one is ignored */
    size_t path_len = strcspn(c->url, "?#");
    bool get = p->method == HTTP_GET;
    if (c->url_too_long) {
        send_reply(c, 414, "text/plain", "URI too long\n", 13);
    } else if (get && path_len == 8 && !strncmp(c->url, "/metrics", 8)) {
        size_t len;
        char *text = metrics_text(s, &len);
        if (text)
            send_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        else
            send_reply(c, 500, "text/plain", "out of memory\n", 14);
        free(text);
    } else if (!get) {
        c->status = 405;
        answer_counted(c);
    } else if (path_len != 1 || c->url[0] != '/') {
        c->status = 404;
        answer_counted(c);
    } else {
        c->status = app_status(s);
        /* At least latency_ms after start_ns: the loop's clock is cached
         * and counts whole milliseconds, so a timer from it can fire up to
         * a millisecond early by uv_hrtime. */
        if (s->latency_ms) {
            uv_update_time(c->tcp.loop);
            uv_timer_start(&c->delay, on_delay, s->latency_ms + 1, 0);
        }
        else
            answer_counted(c);
    }
    return 0;
}

static const http_parser_settings PARSER = {.on_url = on_url,
                                            .on_message_complete = on_message_complete};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
    } else if (nread > 0 && !c->replied) {
        http_parser_execute(&c->parser, &PARSER, buf->base, (size_t)nread);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (!c->replied && e != HPE_OK) {
            c->replied = true;
            uv_read_stop(stream);
            send_reply(c, 400, "text/plain", "bad request\n", 12);
        }
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    service *s = server->data;
    conn *c = status == 0 ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return; /* the client's connect fails or times out: nothing to keep */
    c->svc = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->delay);
    c->tcp.data = c->delay.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    service *s = sig->data;
    if (s->stopping)
        return;
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    while (s->conns)
        conn_close(s->conns);
}

/* ---- arguments ---------------------------------------------------------- */

/* The port to path.PID.tmp, then renamed: a reader never sees half. */
static int write_port(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *o = fopen(tmp, "w");
    if (!o)
        return -1;
    int bad = fprintf(o, "%d\n", port) < 0;
    bad |= fclose(o) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: service --port PORT --version NAME [--error-ratio R] "
                    "[--added-latency-ms MS] [--port-file FILE]\n"
                    "  listens on 127.0.0.1:PORT (0: a free one, written to FILE); R from 0 "
                    "to 1 (0.2: every 5th request to / fails); MS from 0 to 600000\n");
    return 2;
}

/* A whole decimal number in [min, max]; -1 otherwise. */
static int64_t parse_int(const char *s, int64_t min, int64_t max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max || strspn(s, "0123456789") != strlen(s))
        return -1;
    return v;
}

static bool label_safe(const char *s)
{
    size_t n = strlen(s);
    return n && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int main(int argc, char **argv)
{
    service s = {.version = NULL};
    int64_t port = -1;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        if (!strcmp(flag, "--port")) {
            port = parse_int(v, 0, 65535);
        } else if (!strcmp(flag, "--port-file")) {
            port_file = v;
        } else if (!strcmp(flag, "--version")) {
            s.version = v;
        } else if (!strcmp(flag, "--error-ratio")) {
            char *end;
            errno = 0;
            double r = strtod(v, &end);
            if (!*v || *end || errno || !(r >= 0 && r <= 1) ||
                strspn(v, "0123456789.") != strlen(v)) {
                fprintf(stderr, "service: --error-ratio expects a number from 0 to 1, got '%s'\n",
                        v);
                return 2;
            }
            s.error_ppm = (int64_t)(r * (double)PPM + 0.5);
        } else if (!strcmp(flag, "--added-latency-ms")) {
            int64_t ms = parse_int(v, 0, 600000);
            if (ms < 0) {
                fprintf(stderr, "service: --added-latency-ms expects whole milliseconds from 0 "
                                "to 600000, got '%s'\n", v);
                return 2;
            }
            s.latency_ms = (uint64_t)ms;
        } else {
            return usage();
        }
    }
    if (port < 0 || !s.version)
        return usage();
    if (!label_safe(s.version)) {
        fprintf(stderr, "service: --version must be 1 to 64 letters, digits, '.', '_' or '-' "
                        "(it becomes a label value), got '%s'\n", s.version);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    s.loop = &loop;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", (int)port, &addr);
    uv_tcp_init(&loop, &s.listener);
    s.listener.data = &s;
    int rc = uv_tcp_bind(&s.listener, (const struct sockaddr *)&addr, 0);
    rc = rc ? rc : uv_listen((uv_stream_t *)&s.listener, 511, on_connection);
    int code = 0;
    if (rc) {
        fprintf(stderr, "service %s: cannot listen on 127.0.0.1:%" PRId64 ": %s; pick a free "
                "port\n", s.version, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s.listener, NULL);
        code = 1;
    } else {
        uv_signal_init(&loop, &s.sigterm);
        uv_signal_init(&loop, &s.sigint);
        s.sigterm.data = s.sigint.data = &s;
        uv_signal_start(&s.sigterm, on_signal, SIGTERM);
        uv_signal_start(&s.sigint, on_signal, SIGINT);
        struct sockaddr_in bound;
        int len = sizeof bound;
        uv_tcp_getsockname(&s.listener, (struct sockaddr *)&bound, &len);
        int actual = ntohs(bound.sin_port);
        fprintf(stderr, "service %s: listening on 127.0.0.1:%d (error ratio %g, added "
                "latency %" PRIu64 " ms)\n", s.version, actual, (double)s.error_ppm / PPM,
                s.latency_ms);
        if (port_file && write_port(port_file, actual) != 0) {
            fprintf(stderr, "service %s: cannot write the port to %s: %s\n", s.version,
                    port_file, strerror(errno));
            on_signal(&s.sigterm, SIGTERM);
            code = 1;
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        code = 1;
    return code;
}
