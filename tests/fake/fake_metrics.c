/*
 * fake_metrics: a scripted metrics source (Prometheus query API and plain
 * JSON URLs) and http actuator for the integration tests and benchmarks.
 * What it answers depends on the current canary weight, which actuations
 * (POST /actuate) or a weight file move; it also takes notifications (POST
 * /notify...). Every request is logged, one line each, so a test can check
 * the order of events. Usage, script format and
 * an example: tests/fake/README.md.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "canary/http_server.h"
#include "canary/status.h"

#define OVERSIZED_BYTES (2 * 1024 * 1024 + 1024)
#define WEIGHT_TAIL 4096

typedef enum kind {
    K_VALUE, K_SCALAR, K_EMPTY, K_SERIES, K_STRING, K_JSON, K_STATUS,
    K_HTML, K_GARBAGE, K_TRUNCATED, K_OVERSIZED, K_HANG, K_OK, K_SAMPLES,
    K_TIMELINE, K_INTEGRAL, K_COVERED
} kind;

/* What follows a reply's name on its line. */
enum { NO_ARG, ONE_WORD, REST_OF_LINE, CODE_AND_TEXT };

static const struct {
    const char *name;
    kind k;
    int args;
} KINDS[] = {
    {"value", K_VALUE, ONE_WORD},       {"scalar", K_SCALAR, ONE_WORD},
    {"empty", K_EMPTY, NO_ARG},         {"series", K_SERIES, ONE_WORD},
    {"string", K_STRING, REST_OF_LINE}, {"json", K_JSON, REST_OF_LINE},
    {"status", K_STATUS, CODE_AND_TEXT}, {"html", K_HTML, NO_ARG},
    {"garbage", K_GARBAGE, NO_ARG},     {"truncated", K_TRUNCATED, NO_ARG},
    {"oversized", K_OVERSIZED, NO_ARG}, {"hang", K_HANG, NO_ARG},
    {"ok", K_OK, NO_ARG},               {"samples", K_SAMPLES, ONE_WORD},
    {"timeline", K_TIMELINE, ONE_WORD}, {"integral", K_INTEGRAL, ONE_WORD},
    {"covered", K_COVERED, ONE_WORD},
};

typedef struct rule {
    char *match;   /* "actuate", "*" or a substring */
    double min_weight;
    kind k;
    int status;    /* status rules */
    char *arg;     /* the rest of the line; NULL when none */
} rule;

typedef struct fake {
    rule *rules;
    size_t n;
    double weight; /* percent */
    double origin; /* Unix time the weight first rose above 0; NaN before */
    const char *weight_file;
    FILE *log;
    cn_http_server *srv;
    uv_signal_t sigterm, sigint;
} fake;

/* ---- script ------------------------------------------------------------- */

static char *next_field(char **p)
{
    char *s = *p + strspn(*p, " \t");
    if (!*s)
        return NULL;
    char *e = s + strcspn(s, " \t");
    *p = *e ? e + 1 : e;
    *e = '\0';
    return s;
}

static void rules_free(fake *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->rules[i].match);
        free(f->rules[i].arg);
    }
    free(f->rules);
}

/* Parses one non-comment line into r; a message on error. */
static const char *parse_rule(char *line, rule *r)
{
    char *p = line;
    char *match = next_field(&p), *weight = next_field(&p), *reply = next_field(&p);
    if (!match || !weight || !reply)
        return "expected '<match> <min_weight> <reply> [args...]'";
    char *end;
    errno = 0;
    r->min_weight = strtod(weight, &end);
    if (*end || errno || !isfinite(r->min_weight))
        return "min_weight is not a number";
    size_t i = 0;
    while (i < sizeof KINDS / sizeof KINDS[0] && strcmp(KINDS[i].name, reply) != 0)
        i++;
    if (i == sizeof KINDS / sizeof KINDS[0])
        return "unknown reply; expected value, scalar, empty, series, string, json, status, "
               "html, garbage, truncated, oversized, hang, ok, samples, timeline, integral or "
               "covered";
    r->k = KINDS[i].k;
    char *rest = p + strspn(p, " \t");
    size_t len = strlen(rest);
    while (len && (rest[len - 1] == ' ' || rest[len - 1] == '\t'))
        rest[--len] = '\0';
    int args = KINDS[i].args;
    if (args != NO_ARG && !len)
        return "this reply needs an argument";
    if (args == NO_ARG && len)
        return "this reply takes no argument";
    if (args == ONE_WORD && strpbrk(rest, " \t"))
        return "this reply takes one word (no blanks)";
    if (args == CODE_AND_TEXT) {
        char *code = next_field(&rest);
        long v = strtol(code, &end, 10);
        if (*end || v < 100 || v > 599)
            return "status needs a code between 100 and 599";
        r->status = (int)v;
        rest += strspn(rest, " \t");
        len = strlen(rest);
    }
    r->match = strdup(match);
    r->arg = len ? strdup(rest) : NULL;
    if (!r->match || (len && !r->arg))
        return "out of memory";
    return NULL;
}

static int load_script(fake *f, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        fprintf(stderr, "fake_metrics: cannot open script %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, cap_rules = 0;
    unsigned no = 0;
    int rc = 0;
    while (getline(&line, &cap, in) >= 0) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        char *s = line + strspn(line, " \t");
        if (!*s || *s == '#')
            continue;
        if (f->n == cap_rules) {
            cap_rules = cap_rules ? cap_rules * 2 : 16;
            rule *more = realloc(f->rules, cap_rules * sizeof *more);
            if (!more) {
                rc = -1;
                break;
            }
            f->rules = more;
        }
        rule *r = &f->rules[f->n];
        memset(r, 0, sizeof *r);
        const char *why = parse_rule(s, r);
        f->n++; /* freed with the rest even when half-filled */
        if (why) {
            fprintf(stderr, "fake_metrics: %s:%u: %s\n", path, no, why);
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(in);
    return rc;
}

/* The rule for subject, or (subject NULL) for a POST named by keyword
 * ("actuate", "notify"): the greatest min_weight not above the current
 * weight; the later line on a tie. */
static const rule *select_rule(const fake *f, const char *subject, const char *keyword)
{
    const rule *best = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const rule *r = &f->rules[i];
        bool post = strcmp(r->match, "actuate") == 0 || strcmp(r->match, "notify") == 0;
        bool hit = subject ? !post && (strcmp(r->match, "*") == 0 || strstr(subject, r->match))
                           : strcmp(r->match, keyword) == 0;
        if (hit && r->min_weight <= f->weight && (!best || r->min_weight >= best->min_weight))
            best = r;
    }
    return best;
}

/* ---- replies ------------------------------------------------------------ */

static void set_json(cn_http_out *out, int status, json_t *doc)
{
    out->status = status;
    out->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    out->len = out->body ? strlen(out->body) : 0;
    json_decref(doc);
}

static void set_text(cn_http_out *out, int status, const char *type, const char *text)
{
    out->status = status;
    out->content_type = type;
    out->body = strdup(text);
    out->len = out->body ? strlen(out->body) : 0;
}

static json_t *sample(const char *series, const char *v)
{
    json_t *metric = json_pack("{s:s}", "__name__", "fake");
    if (series)
        json_object_set_new(metric, "series", json_string(series));
    return json_pack("{s:o,s:[f,s]}", "metric", metric, "value", (double)time(NULL), v);
}

static json_t *success(const char *type, json_t *result)
{
    return json_pack("{s:s,s:{s:s,s:o}}", "status", "success", "data", "resultType", type,
                     "result", result);
}

/* Prometheus's error body, with the errorType it would give the status. */
static void prom_error(cn_http_out *out, int status, const char *msg)
{
    const char *type = status == 404   ? "not_found"
                       : status == 503 ? "unavailable"
                       : status >= 500 ? "internal"
                                       : "bad_data";
    set_json(out, status,
             json_pack("{s:s,s:s,s:s}", "status", "error", "errorType", type, "error", msg));
}

static void oversized(cn_http_out *out)
{
    static const char head[] = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
                               "\"result\":[{\"metric\":{\"pad\":\"";
    static const char tail[] = "\"},\"value\":[1700000000,\"1\"]}]}}";
    char *b = malloc(OVERSIZED_BYTES);
    if (!b)
        return;
    size_t h = strlen(head), t = strlen(tail);
    memcpy(b, head, h);
    memset(b + h, 'x', OVERSIZED_BYTES - h - t);
    memcpy(b + OVERSIZED_BYTES - t, tail, t);
    out->body = b;
    out->len = OVERSIZED_BYTES;
}

/* A range query's answer: one series whose samples are the rule's list,
 * one per step from start (the values as written, so "NaN" stays NaN). */
static json_t *matrix(const char *list, double start, double step)
{
    json_t *values = json_array();
    char *copy = strdup(list), *save = NULL;
    double t = start;
    for (char *v = copy ? strtok_r(copy, ",", &save) : NULL; v; v = strtok_r(NULL, ",", &save)) {
        json_array_append_new(values, json_pack("[f,s]", t, v));
        t += step;
    }
    free(copy);
    return json_pack("[{s:{s:s},s:o}]", "metric", "__name__", "fake", "values", values);
}

/* What a request asks: a range query's times (Unix seconds), the decoded
 * query, and the fake's origin (NaN before the weight first moved). */
typedef struct asked {
    bool range;
    double start, end, step;
    const char *query;
    double origin;
} asked;

/* ---- timelines: one value a second from the origin ------------------------ */

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The list's values (NaN for "NaN"/"nan"); count in *n; caller frees. */
static double *timeline_values(const char *list, size_t *n)
{
    size_t cap = 1;
    for (const char *c = list; *c; c++)
        cap += *c == ',';
    double *v = malloc(cap * sizeof *v);
    char *copy = strdup(list), *save = NULL;
    *n = 0;
    for (char *w = v && copy ? strtok_r(copy, ",", &save) : NULL; w; w = strtok_r(NULL, ",", &save))
        v[(*n)++] = strtod(w, NULL);
    free(copy);
    return v;
}

/* Value i holds over [origin + i, origin + i + 1), the last one for ever. */
static double timeline_at(const double *v, size_t n, double seconds)
{
    if (!n || seconds < 0)
        return NAN;
    double i = floor(seconds);
    return i >= (double)n ? v[n - 1] : v[(size_t)i];
}

/* A range query: a sample at each start + k step up to end, read at the
 * nearest whole second since the origin (a real run asks a few
 * milliseconds off), none when that second is before the origin or its
 * value is NaN. */
static json_t *timeline_matrix(const char *list, const asked *q)
{
    size_t n;
    double *v = timeline_values(list, &n);
    json_t *values = json_array();
    for (long k = 0; v && !isnan(q->origin) && q->start + (double)k * q->step <= q->end + 1e-9;
         k++) {
        double t = q->start + (double)k * q->step;
        double x = timeline_at(v, n, floor(t - q->origin + 0.5));
        char text[40];
        snprintf(text, sizeof text, "%.17g", x);
        if (!isnan(x))
            json_array_append_new(values, json_pack("[f,s]", t, text));
    }
    free(v);
    return json_pack("[{s:{s:s},s:o}]", "metric", "__name__", "fake", "values", values);
}

/* The window of an instant query: its first range selector, one number
 * and one unit ("[4s]", "[500ms]", "[5m]", "[1h]"). NaN when none. */
static double query_window(const char *query)
{
    const char *b = query ? strchr(query, '[') : NULL;
    char *end;
    double v = b ? strtod(b + 1, &end) : NAN;
    if (!b || end == b + 1)
        return NAN;
    double unit = !strncmp(end, "ms]", 3) ? 0.001 : !strncmp(end, "s]", 2) ? 1
                  : !strncmp(end, "m]", 2) ? 60 : !strncmp(end, "h]", 2) ? 3600 : NAN;
    return v * unit;
}

/* Over the window [now - w, now] from the origin on, the integral of the
 * timeline (integral) or the seconds where it is not NaN (covered). */
static double timeline_window(const char *list, double now, double w, double origin,
                              bool integral)
{
    size_t n;
    double *v = timeline_values(list, &n);
    double a = now - w - origin, b = now - origin, sum = 0;
    if (a < 0)
        a = 0;
    while (v && a < b) {
        double next = floor(a) + 1, piece = (next < b ? next : b) - a;
        double x = timeline_at(v, n, a);
        if (!isnan(x))
            sum += integral ? x * piece : piece;
        a = next;
    }
    free(v);
    return sum;
}

static void timeline_reply(const rule *r, cn_http_out *out, const asked *q)
{
    if (q->range && r->k == K_TIMELINE) {
        set_json(out, 200, success("matrix", timeline_matrix(r->arg, q)));
        return;
    }
    double now = wall_now(), x;
    if (r->k == K_TIMELINE) {
        size_t n;
        double *v = timeline_values(r->arg, &n);
        x = isnan(q->origin) || !v ? NAN : timeline_at(v, n, floor(now - q->origin));
        free(v);
    } else {
        double w = query_window(q->query);
        if (isnan(w)) {
            prom_error(out, 400, "fake_metrics: integral and covered need a range selector "
                                 "such as [4s] in the query");
            return;
        }
        x = isnan(q->origin) ? 0 : timeline_window(r->arg, now, w, q->origin,
                                                   r->k == K_INTEGRAL);
    }
    if (isnan(x)) {
        set_json(out, 200, success("vector", json_array()));
        return;
    }
    char text[40];
    snprintf(text, sizeof text, "%.17g", x);
    set_json(out, 200, success("vector", json_pack("[o]", sample(NULL, text))));
}

/* q: what was asked; a range query's empty answers an empty matrix. */
static void serve(const rule *r, cn_http_out *out, const asked *q)
{
    json_t *list;
    if (q->range && (r->k == K_SAMPLES || r->k == K_EMPTY)) {
        set_json(out, 200, success("matrix", r->k == K_SAMPLES ? matrix(r->arg, q->start, q->step)
                                                               : json_array()));
        return;
    }
    switch (r->k) {
    case K_SAMPLES: { /* an instant query gets the list's last sample */
        const char *last = strrchr(r->arg, ',');
        set_json(out, 200,
                 success("vector", json_pack("[o]", sample(NULL, last ? last + 1 : r->arg))));
        return;
    }
    case K_VALUE:
    case K_STRING:
        set_json(out, 200, success("vector", json_pack("[o]", sample(NULL, r->arg))));
        return;
    case K_SCALAR:
        set_json(out, 200, success("scalar", json_pack("[f,s]", (double)time(NULL), r->arg)));
        return;
    case K_EMPTY:
        set_json(out, 200, success("vector", json_array()));
        return;
    case K_SERIES: {
        list = json_array();
        char *copy = strdup(r->arg), *save = NULL, name[16];
        int i = 0;
        for (char *v = copy ? strtok_r(copy, ",", &save) : NULL; v; v = strtok_r(NULL, ",", &save)) {
            snprintf(name, sizeof name, "%d", ++i);
            json_array_append_new(list, sample(name, v));
        }
        free(copy);
        set_json(out, 200, success("vector", list));
        return;
    }
    case K_JSON:
        set_text(out, 200, "application/json", r->arg);
        return;
    case K_STATUS:
        if (!r->arg) {
            char msg[64];
            snprintf(msg, sizeof msg, "fake_metrics: scripted status %d", r->status);
            prom_error(out, r->status, msg);
        } else {
            set_text(out, r->status, r->arg[0] == '{' ? "application/json" : "text/plain", r->arg);
        }
        return;
    case K_HTML:
        set_text(out, 500, "text/html",
                 "<html><head><title>500 Internal Server Error</title></head>"
                 "<body><h1>Internal Server Error</h1></body></html>\n");
        return;
    case K_GARBAGE:
        set_text(out, 200, "application/json", "<<this is not json>> 42 %%% }{");
        return;
    case K_TRUNCATED:
        set_text(out, 200, "application/json", "{\"status\":\"success\",\"data\":{\"resultT");
        out->mode = CN_HTTP_REPLY_TRUNCATED;
        return;
    case K_OVERSIZED:
        oversized(out);
        return;
    case K_HANG:
        out->mode = CN_HTTP_REPLY_NONE;
        return;
    case K_OK:
        set_json(out, 200, json_pack("{s:b}", "ok", 1));
        return;
    case K_TIMELINE:
    case K_INTEGRAL:
    case K_COVERED:
        timeline_reply(r, out, q);
        return;
    }
}

/* ---- requests ----------------------------------------------------------- */

static void log_line(fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line per request, flushed at once: tests read the log while the
 * server runs. */
static void log_line(fake *f, const char *fmt, ...)
{
    if (!f->log)
        return;
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *c = line; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    fprintf(f->log, "%s\n", line);
    fflush(f->log);
}

/* The origin of the timelines is when the weight first rises above 0:
 * stage 1 applied, a simulation's t = 0. */
static void set_weight(fake *f, double w)
{
    if (w > 0 && f->weight <= 0 && isnan(f->origin))
        f->origin = wall_now();
    f->weight = w;
}

/* The weight file's last non-blank line, when it holds a number. Only the
 * tail is read: the file grows by a line per actuation. */
static void reread_weight(fake *f)
{
    if (!f->weight_file)
        return;
    FILE *in = fopen(f->weight_file, "r");
    if (!in)
        return;
    char buf[WEIGHT_TAIL + 1];
    long size = fseek(in, 0, SEEK_END) == 0 ? ftell(in) : -1;
    size_t n = 0;
    if (size >= 0 && fseek(in, size > WEIGHT_TAIL ? size - WEIGHT_TAIL : 0, SEEK_SET) == 0)
        n = fread(buf, 1, WEIGHT_TAIL, in);
    fclose(in);
    buf[n] = '\0';
    char *last = NULL, *save = NULL;
    for (char *l = strtok_r(buf, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save))
        if (l[strspn(l, " \t")])
            last = l;
    char *end;
    double w = last ? strtod(last, &end) : NAN;
    if (last && end != last && !end[strspn(end, " \t")] && isfinite(w))
        set_weight(f, w);
}

static void actuate(fake *f, const cn_http_in *in, cn_http_out *out)
{
    json_error_t e;
    json_t *doc = json_loadb(in->body, in->body_len, 0, &e);
    json_t *w = json_object_get(doc, "weight");
    if (!json_is_number(w)) {
        log_line(f, "actuate invalid %.1000s", in->body);
        set_json(out, 400, json_pack("{s:b,s:s}", "ok", 0, "error",
                                     "expected a JSON object with a number \"weight\""));
        json_decref(doc);
        return;
    }
    double weight = json_number_value(w);
    const char *action = json_string_value(json_object_get(doc, "action"));
    json_t *stage = json_object_get(doc, "stage");
    char num[32] = "?";
    if (json_is_integer(stage))
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(stage));
    const rule *r = select_rule(f, NULL, "actuate");
    asked q = {.origin = f->origin};
    if (r)
        serve(r, out, &q);
    else
        set_json(out, 200, json_pack("{s:b}", "ok", 1));
    bool applied = out->status >= 200 && out->status < 300 && out->mode == CN_HTTP_REPLY_NORMAL;
    char verdict[64] = "";
    if (!applied && out->mode == CN_HTTP_REPLY_NONE)
        snprintf(verdict, sizeof verdict, " rejected=hang");
    else if (!applied && out->mode == CN_HTTP_REPLY_TRUNCATED)
        snprintf(verdict, sizeof verdict, " rejected=truncated");
    else if (!applied)
        snprintf(verdict, sizeof verdict, " rejected=%d", out->status);
    log_line(f, "actuate weight=%g action=%.100s stage=%s%s", weight, action ? action : "?", num,
             verdict);
    if (applied)
        set_weight(f, weight);
    json_decref(doc);
}

/* A notification webhook: logged whole, so a test can read every payload
 * in order; answered by a "notify" rule, else 200. */
static void notify(fake *f, const cn_http_in *in, cn_http_out *out)
{
    const rule *r = select_rule(f, NULL, "notify");
    asked q = {.origin = f->origin};
    if (r)
        serve(r, out, &q);
    else
        set_json(out, 200, json_pack("{s:b}", "ok", 1));
    char verdict[64] = "";
    if (out->mode == CN_HTTP_REPLY_NONE)
        snprintf(verdict, sizeof verdict, "rejected=hang ");
    else if (out->mode == CN_HTTP_REPLY_TRUNCATED)
        snprintf(verdict, sizeof verdict, "rejected=truncated ");
    else if (out->status < 200 || out->status > 299)
        snprintf(verdict, sizeof verdict, "rejected=%d ", out->status);
    log_line(f, "notify %.200s %s%.6000s", in->path, verdict, in->body);
}

static void handle(void *ctx, const cn_http_in *in, cn_http_out *out)
{
    fake *f = ctx;
    reread_weight(f);
    bool get = strcmp(in->method, "GET") == 0, post = strcmp(in->method, "POST") == 0;
    if (post && strcmp(in->path, "/actuate") == 0) {
        actuate(f, in, out);
        return;
    }
    if (post && strncmp(in->path, "/notify", 7) == 0) {
        notify(f, in, out);
        return;
    }
    char *q = NULL;
    const char *subject = in->path;
    bool range = get && strcmp(in->path, "/api/v1/query_range") == 0;
    double start = 0, end = 0, step = 0;
    if (range) {
        char *p[3] = {NULL, NULL, NULL};
        static const char *const names[3] = {"start", "end", "step"};
        int rc = cn_http_query_param(in->query, "query", &q);
        for (int i = 0; i < 3 && rc == CN_OK; i++)
            rc = cn_http_query_param(in->query, names[i], &p[i]);
        char *e1 = NULL, *e2 = NULL, *e3 = NULL;
        if (rc == CN_OK) {
            start = strtod(p[0], &e1);
            end = strtod(p[1], &e3);
            step = strtod(p[2], &e2);
        }
        if (rc != CN_OK || *e1 || *e2 || *e3 || !(step > 0)) {
            log_line(f, "range invalid %.1000s", in->query);
            prom_error(out, 400, "missing or malformed query, start, end or step");
            free(q);
            for (int i = 0; i < 3; i++)
                free(p[i]);
            return;
        }
        log_line(f, "range %s start=%s end=%s step=%s", q, p[0], p[1], p[2]);
        for (int i = 0; i < 3; i++)
            free(p[i]);
        subject = q;
    } else if ((get || post) && strcmp(in->path, "/api/v1/query") == 0) {
        /* Prometheus also takes the parameters as a form body. */
        int rc = cn_http_query_param(get ? in->query : in->body, "query", &q);
        if (rc != CN_OK) {
            log_line(f, "query invalid %.1000s", get ? in->query : in->body);
            prom_error(out, 400, rc == CN_ENOTFOUND ? "missing parameter 'query'"
                                                    : "malformed query string");
            return;
        }
        log_line(f, "query %s", q);
        subject = q;
    } else if (get) {
        log_line(f, "get %s", in->path);
    } else {
        log_line(f, "other %s %.1000s", in->method, in->path);
        prom_error(out, 405, "fake_metrics: only GET, and POST to /actuate, /notify... or "
                             "/api/v1/query");
        return;
    }
    const rule *r = select_rule(f, subject, NULL);
    if (r) {
        asked a = {.range = range, .start = start, .end = end, .step = step, .query = q,
                   .origin = f->origin};
        serve(r, out, &a);
    } else {
        char msg[1024];
        snprintf(msg, sizeof msg, "fake_metrics: no rule matches '%.900s' at weight %g", subject,
                 f->weight);
        prom_error(out, 404, msg);
    }
    free(q);
}

/* ---- main --------------------------------------------------------------- */

static int write_port(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
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

static void on_signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    fake *f = s->data;
    cn_http_server_close(f->srv);
    f->srv = NULL;
    uv_close((uv_handle_t *)&f->sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&f->sigint, on_signal_closed);
}

static int usage(void)
{
    fprintf(stderr, "usage: fake_metrics --script FILE [--port-file FILE] [--weight-file FILE] "
                    "[--log FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *script = NULL, *port_file = NULL, *log_path = NULL;
    fake f = {.origin = NAN};
    /* A test that crashes cannot stop its servers: go when the parent goes. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (int i = 1; i < argc; i++) {
        const char **slot = strcmp(argv[i], "--script") == 0        ? &script
                            : strcmp(argv[i], "--port-file") == 0   ? &port_file
                            : strcmp(argv[i], "--weight-file") == 0 ? &f.weight_file
                            : strcmp(argv[i], "--log") == 0         ? &log_path
                                                                    : NULL;
        if (!slot || i + 1 == argc)
            return usage();
        *slot = argv[++i];
    }
    if (!script)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    int code = 2;
    uv_loop_t loop;
    if (load_script(&f, script) != 0)
        goto out_rules;
    if (log_path && !(f.log = fopen(log_path, "a"))) {
        fprintf(stderr, "fake_metrics: cannot open log %s: %s\n", log_path, strerror(errno));
        goto out_rules;
    }
    if (uv_loop_init(&loop) != 0)
        goto out_log;
    char err[256];
    int port;
    if (cn_http_server_start(&f.srv, &loop, "127.0.0.1", 0, handle, &f, &port, err,
                             sizeof err) != CN_OK) {
        fprintf(stderr, "fake_metrics: %s\n", err);
        goto out_loop;
    }
    uv_signal_init(&loop, &f.sigterm);
    uv_signal_init(&loop, &f.sigint);
    f.sigterm.data = f.sigint.data = &f;
    uv_signal_start(&f.sigterm, on_signal, SIGTERM);
    uv_signal_start(&f.sigint, on_signal, SIGINT);
    if (port_file ? write_port(port_file, port) != 0 : printf("%d\n", port) < 0 || fflush(stdout)) {
        fprintf(stderr, "fake_metrics: cannot write the port to %s\n",
                port_file ? port_file : "stdout");
        on_signal(&f.sigterm, SIGTERM);
    } else {
        code = 0;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
out_loop:
    uv_run(&loop, UV_RUN_DEFAULT); /* a failed start still has a socket to release */
    if (uv_loop_close(&loop) != 0)
        code = code ? code : 1;
out_log:
    if (f.log)
        fclose(f.log);
out_rules:
    rules_free(&f);
    return code;
}
