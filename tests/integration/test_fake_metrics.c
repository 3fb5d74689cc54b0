/* The fake metrics server, run as the integration tests run it: the reply
 * a rule gives, rule selection by the current weight (moved by POST
 * /actuate or a weight file), every scripted failure mode, and the log's
 * lines and their order. Talks to it with a blocking client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proc.h"
#include "server.h"

#define WAIT_MS 5000
#define VECTOR_HEAD                                                                     \
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":" \
    "{\"__name__\":\"fake\"},\"value\":["

typedef struct fx {
    char *dir;
    pid_t pid;
    int port;
    char log[4096], weights[4096], ports[4096];
} fx;

static const char *fake_bin(void)
{
    static char path[4096];
    const char *dir = getenv("CANARY_FAKE_DIR");
    if (dir)
        snprintf(path, sizeof path, "%s/fake_metrics", dir);
    else
        snprintf(path, sizeof path, "%s", cn_test_src("build/fake/fake_metrics"));
    return path;
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    x->dir = cn_test_tmpdir();
    *state = x;
    return x->dir ? 0 : -1;
}

/* Runs after a failed assertion too, so no server outlives its test. */
static int teardown(void **state)
{
    fx *x = *state;
    int rc = 0;
    if (x->pid > 0 && cn_test_server_stop(x->pid) != 0)
        rc = -1;
    if (x->dir)
        cn_test_rmtree(x->dir);
    free(x->dir);
    free(x);
    return rc;
}

static void start(fx *x, const char *script)
{
    snprintf(x->log, sizeof x->log, "%s/log", x->dir);
    snprintf(x->weights, sizeof x->weights, "%s/weights", x->dir);
    snprintf(x->ports, sizeof x->ports, "%s/port", x->dir);
    const char *s = cn_test_write(x->dir, "script", script);
    const char *argv[] = {fake_bin(), "--script", s,          "--port-file", x->ports,
                          "--log",    x->log,     "--weight-file", x->weights, NULL};
    x->pid = cn_test_server_start(argv, x->ports, &x->port);
    assert_true(x->pid > 0);
    assert_true(x->port > 0);
}

/* SIGTERM ends the server with status 0. */
static void stop(fx *x)
{
    int code = cn_test_server_stop(x->pid);
    x->pid = 0;
    assert_int_equal(code, 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_log(const fx *x, const char *want)
{
    char *got = slurp(x->log);
    assert_string_equal(got, want);
    free(got);
}

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* GET /api/v1/query with q URL-encoded. */
static void query(const fx *x, const char *q, cn_test_reply *r, int timeout_ms)
{
    char target[4096] = "/api/v1/query?query=";
    size_t n = strlen(target);
    for (const unsigned char *c = (const unsigned char *)q; *c && n < sizeof target - 4; c++)
        n += (size_t)(isalnum(*c) ? snprintf(target + n, 4, "%c", *c)
                                  : snprintf(target + n, 4, "%%%02X", *c));
    assert_int_equal(cn_test_get(x->port, target, timeout_ms, r), 0);
}

static void post_actuate(const fx *x, double weight, const char *action, int stage,
                         cn_test_reply *r)
{
    char body[512], req[1024];
    int n = snprintf(body, sizeof body,
                     "{\"rollout\":\"r-1\",\"service\":\"api\",\"version\":\"2\","
                     "\"previous_version\":\"1\",\"stage\":%d,\"weight\":%g,\"action\":\"%s\"}",
                     stage, weight, action);
    snprintf(req, sizeof req,
             "POST /actuate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
             n, body);
    assert_int_equal(cn_test_http(x->port, req, WAIT_MS, r), 0);
}

static void assert_ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    if (a < b || strcmp(s + a - b, tail) != 0) {
        print_error("'%s' does not end with '%s'\n", s, tail);
        fail();
    }
}

/* A vector with one series whose value is v. */
static void assert_value(const cn_test_reply *r, const char *v)
{
    char tail[128];
    snprintf(tail, sizeof tail, ",\"%s\"]}]}}", v);
    assert_int_equal(r->status, 200);
    assert_true(strncmp(r->body, VECTOR_HEAD, strlen(VECTOR_HEAD)) == 0);
    assert_ends_with(r->body, tail);
    assert_int_equal(r->content_length, (long)r->len);
}

#define QUERY "sum(rate(http_errors{version=\"2\"}[1m]))"

static void test_weight_switch_and_log(void **state)
{
    fx *x = *state;
    start(x, "# errors rise once the canary takes 5 percent\n"
              "http_errors 0 value 0.5\n"
              "\n"
              "   http_errors 5 value 7\n"
              "http_errors 5 value 8\n" /* same weight: the later line wins */
              "actuate 0 ok\n"
              "actuate 50 status 503 not now\n");
    cn_test_reply r;
    query(x, QUERY, &r, WAIT_MS);
    assert_value(&r, "0.5");
    cn_test_reply_free(&r);

    post_actuate(x, 5, "advance", 1, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true}");
    cn_test_reply_free(&r);
    query(x, QUERY, &r, WAIT_MS);
    assert_value(&r, "8");
    cn_test_reply_free(&r);

    post_actuate(x, 50, "advance", 2, &r);
    assert_int_equal(r.status, 200);
    cn_test_reply_free(&r);
    /* at 50 the actuator refuses, and the weight stays */
    post_actuate(x, 100, "complete", 3, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not now");
    cn_test_reply_free(&r);
    post_actuate(x, 0.5, "rollback", 0, &r);
    assert_int_equal(r.status, 503);
    cn_test_reply_free(&r);
    query(x, QUERY, &r, WAIT_MS);
    assert_value(&r, "8");
    cn_test_reply_free(&r);

    assert_log(x, "query " QUERY "\n"
                   "actuate weight=5 action=advance stage=1\n"
                   "query " QUERY "\n"
                   "actuate weight=50 action=advance stage=2\n"
                   "actuate weight=100 action=complete stage=3 rejected=503\n"
                   "actuate weight=0.5 action=rollback stage=0 rejected=503\n"
                   "query " QUERY "\n");
    stop(x);
}

/* GET /api/v1/query_range with q URL-encoded and the rest as given. */
static void range(const fx *x, const char *q, const char *rest, cn_test_reply *r)
{
    char target[4096] = "/api/v1/query_range?query=";
    size_t n = strlen(target);
    for (const unsigned char *c = (const unsigned char *)q; *c && n < sizeof target - 4; c++)
        n += (size_t)(isalnum(*c) ? snprintf(target + n, 4, "%c", *c)
                                  : snprintf(target + n, 4, "%%%02X", *c));
    snprintf(target + n, sizeof target - n, "%s", rest);
    assert_int_equal(cn_test_get(x->port, target, WAIT_MS, r), 0);
}

/* A judged metric's samples: a matrix of the rule's list from start, one
 * per step; an instant query of the same rule gets the last sample. */
static void test_range_queries(void **state)
{
    fx *x = *state;
    start(x, "lat{v=\"1\"} 0 samples 10,NaN,12.5\n"
              "lat{v=\"2\"} 0 empty\n"
              "lat{v=\"3\"} 0 value 4\n");
    cn_test_reply r;
    range(x, "lat{v=\"1\"}", "&start=1000.5&end=1010&step=2", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
                                "\"result\":[{\"metric\":{\"__name__\":\"fake\"},\"values\":"
                                "[[1000.5,\"10\"],[1002.5,\"NaN\"],[1004.5,\"12.5\"]]}]}}");
    cn_test_reply_free(&r);
    range(x, "lat{v=\"2\"}", "&start=1&end=2&step=1", &r);
    assert_string_equal(r.body, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
                                "\"result\":[]}}");
    cn_test_reply_free(&r);
    range(x, "lat{v=\"3\"}", "&start=1&end=2&step=1", &r); /* a vector, as scripted */
    assert_true(strncmp(r.body, VECTOR_HEAD, strlen(VECTOR_HEAD)) == 0);
    cn_test_reply_free(&r);
    query(x, "lat{v=\"1\"}", &r, WAIT_MS);
    assert_value(&r, "12.5");
    cn_test_reply_free(&r);
    range(x, "lat{v=\"1\"}", "&start=1&end=2", &r); /* no step */
    assert_int_equal(r.status, 400);
    assert_true(strstr(r.body, "missing or malformed query, start, end or step") != NULL);
    cn_test_reply_free(&r);
    range(x, "lat{v=\"1\"}", "&start=x&end=2&step=1", &r);
    assert_int_equal(r.status, 400);
    cn_test_reply_free(&r);
    assert_log(x, "range lat{v=\"1\"} start=1000.5 end=1010 step=2\n"
                  "range lat{v=\"2\"} start=1 end=2 step=1\n"
                  "range lat{v=\"3\"} start=1 end=2 step=1\n"
                  "query lat{v=\"1\"}\n"
                  "range invalid query=lat%7Bv%3D%221%22%7D&start=1&end=2\n"
                  "range invalid query=lat%7Bv%3D%221%22%7D&start=x&end=2&step=1\n");
    stop(x);
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The number in a one-series vector, NaN for anything else. */
static double vector_value(const cn_test_reply *r)
{
    const char *v = strstr(r->body, "\"value\":[");
    v = v ? strstr(v, ",\"") : NULL;
    return v ? strtod(v + 2, NULL) : NAN;
}

/* Series over time from the origin, the moment the weight first rose
 * above 0: range samples at the nearest second, a window's integral and
 * the seconds it covers. */
static void test_timelines(void **state)
{
    fx *x = *state;
    start(x, "lat 0 timeline 10,20,NaN,40\n"
              "err 0 integral 0.5,1,NaN\n"
              "tot 0 covered 0.5,1,NaN\n"
              "actuate 0 ok\n");
    cn_test_reply r;
    /* no origin yet: nothing */
    range(x, "lat", "&start=1000&end=1010&step=1", &r);
    assert_true(strstr(r.body, "\"values\":[]") != NULL);
    cn_test_reply_free(&r);
    query(x, "lat", &r, WAIT_MS);
    assert_true(strstr(r.body, "\"result\":[]") != NULL);
    cn_test_reply_free(&r);
    query(x, "err[3s]", &r, WAIT_MS);
    assert_true(vector_value(&r) == 0);
    cn_test_reply_free(&r);

    double before = wall_s();
    post_actuate(x, 5, "advance", 1, &r);
    double after = wall_s();
    cn_test_reply_free(&r);
    /* the origin is between before and after, a few ms apart: samples a
     * quarter of a second off whole seconds */
    double o = (before + after) / 2;
    char rest[256];
    snprintf(rest, sizeof rest, "&start=%.3f&end=%.3f&step=1", o - 2.75, o + 5.25);
    range(x, "lat", rest, &r);
    assert_int_equal(r.status, 200);
    /* -3, -2 and -1 have no value, 2 is NaN, 4 and 5 hold the last */
    assert_int_equal(cn_test_count(r.body, ",\"10\"]"), 1);
    assert_int_equal(cn_test_count(r.body, ",\"20\"]"), 1);
    assert_int_equal(cn_test_count(r.body, ",\"40\"]"), 3);
    assert_null(strstr(r.body, "NaN"));
    cn_test_reply_free(&r);

    /* 1.1 s on: over [now - 3 s, now] only [origin, now] counts, and the
     * value 1 from the first second on */
    struct timespec nap = {1, 100000000};
    nanosleep(&nap, NULL);
    query(x, "sum(rate(tot[3s]))", &r, WAIT_MS);
    double covered = vector_value(&r);
    cn_test_reply_free(&r);
    query(x, "sum(rate(err[3s]))", &r, WAIT_MS);
    double integral = vector_value(&r);
    cn_test_reply_free(&r);
    assert_true(covered > 1.09 && covered < 1.6);
    assert_true(fabs(integral - (0.5 + (covered - 1))) < 0.05);
    query(x, "tot[500ms]", &r, WAIT_MS);
    assert_true(fabs(vector_value(&r) - 0.5) < 1e-9);
    cn_test_reply_free(&r);
    query(x, "lat", &r, WAIT_MS); /* second 1: 20 */
    assert_value(&r, "20");
    cn_test_reply_free(&r);
    /* without a window: refused */
    query(x, "tot", &r, WAIT_MS);
    assert_int_equal(r.status, 400);
    assert_true(strstr(r.body, "need a range selector") != NULL);
    cn_test_reply_free(&r);
    stop(x);
}

static void test_weight_file(void **state)
{
    fx *x = *state;
    start(x, "errors 0 value 1\nerrors 10 value 2\nerrors 50 value 3\n");
    static const struct {
        const char *append, *want;
    } steps[] = {
        {NULL, "1"},           /* no file yet: weight 0 */
        {"10\n", "2"},
        {"\n  \n", "2"},       /* blank lines do not count */
        {"50\n", "3"},
        {"0.5", "1"},          /* no final newline needed */
        {"\nnot a number\n", "1"}, /* ignored: the weight stays 0.5 */
        {"10.0\n", "2"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].append)
            append(x->weights, steps[i].append);
        cn_test_reply r;
        query(x, "errors", &r, WAIT_MS);
        assert_value(&r, steps[i].want);
        cn_test_reply_free(&r);
    }
    stop(x);
}

static void test_reply_kinds(void **state)
{
    fx *x = *state;
    start(x, "nodata 0 empty\n"
              "sc 0 scalar 3\n"
              "two 0 series 1,2\n"
              "nan 0 value NaN\n"
              "inf 0 value +Inf\n"
              "word 0 string not a \"number\"\n"
              "boom 0 status 500\n"
              "teapot 0 status 418 short and stout\n"
              "page 0 html\n"
              "junk 0 garbage\n"
              "cut 0 truncated\n"
              "huge 0 oversized\n"
              "/stats 0 json {\"latency\": {\"p99\": 0.25}}\n");
    cn_test_reply r;

    query(x, "nodata", &r, WAIT_MS);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}");
    cn_test_reply_free(&r);

    query(x, "sc", &r, WAIT_MS);
    assert_true(strncmp(r.body, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                                "\"result\":[", 60) == 0);
    assert_ends_with(r.body, ",\"3\"]}}");
    cn_test_reply_free(&r);

    query(x, "two", &r, WAIT_MS);
    assert_int_equal(cn_test_count(r.body, "\"series\":"), 2);
    assert_non_null(strstr(r.body, "\"series\":\"1\"},\"value\":["));
    assert_ends_with(r.body, ",\"2\"]}]}}");
    cn_test_reply_free(&r);

    query(x, "nan", &r, WAIT_MS);
    assert_value(&r, "NaN");
    cn_test_reply_free(&r);
    query(x, "inf", &r, WAIT_MS);
    assert_value(&r, "+Inf");
    cn_test_reply_free(&r);
    query(x, "word", &r, WAIT_MS);
    assert_value(&r, "not a \\\"number\\\"");
    cn_test_reply_free(&r);

    query(x, "boom", &r, WAIT_MS);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"internal\","
                                "\"error\":\"fake_metrics: scripted status 500\"}");
    cn_test_reply_free(&r);
    query(x, "teapot", &r, WAIT_MS);
    assert_int_equal(r.status, 418);
    assert_string_equal(r.body, "short and stout");
    cn_test_reply_free(&r);

    query(x, "page", &r, WAIT_MS);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.head, "\r\nContent-Type: text/html\r\n"));
    assert_true(strncmp(r.body, "<html>", 6) == 0);
    cn_test_reply_free(&r);

    query(x, "junk", &r, WAIT_MS);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<<this is not json>> 42 %%% }{");
    cn_test_reply_free(&r);

    query(x, "cut", &r, WAIT_MS);
    assert_int_equal(r.status, 200);
    assert_true(r.closed);
    assert_string_equal(r.body, "{\"status\":\"success\",\"data\":{\"resultT");
    assert_true(r.content_length > (long)r.len);
    cn_test_reply_free(&r);

    query(x, "huge", &r, WAIT_MS);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 2 * 1024 * 1024);
    assert_int_equal(r.content_length, (long)r.len);
    assert_ends_with(r.body, "\"},\"value\":[1700000000,\"1\"]}]}}");
    cn_test_reply_free(&r);

    assert_int_equal(cn_test_get(x->port, "/stats", WAIT_MS, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"latency\": {\"p99\": 0.25}}");
    cn_test_reply_free(&r);
    stop(x);
}

static void test_no_rule_and_bad_requests(void **state)
{
    fx *x = *state;
    start(x, "errors 0 value 1\nerrors 5 value 2\n");
    cn_test_reply r;
    /* a rule whose weight is not reached does not match either */
    post_actuate(x, 4.5, "advance", 1, &r);
    assert_int_equal(r.status, 200); /* no actuate rule: applied */
    cn_test_reply_free(&r);
    query(x, "latency", &r, WAIT_MS);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"status\":\"error\",\"errorType\":\"not_found\","
                                "\"error\":\"fake_metrics: no rule matches 'latency' at weight "
                                "4.5\"}");
    cn_test_reply_free(&r);
    assert_int_equal(cn_test_get(x->port, "/api/v1/query?q=errors", WAIT_MS, &r), 0);
    assert_int_equal(r.status, 400);
    cn_test_reply_free(&r);
    assert_int_equal(cn_test_http(x->port,
                                  "POST /actuate HTTP/1.1\r\nContent-Length: 9\r\n\r\nnot json!",
                                  WAIT_MS, &r),
                     0);
    assert_int_equal(r.status, 400);
    cn_test_reply_free(&r);
    assert_log(x, "actuate weight=4.5 action=advance stage=1\n"
                   "query latency\n"
                   "query invalid q=errors\n"
                   "actuate invalid not json!\n");
    stop(x);
}

static void test_hang(void **state)
{
    fx *x = *state;
    start(x, "slow 0 hang\nfast 0 value 1\n");
    cn_test_reply r;
    query(x, "slow", &r, 300);
    assert_true(r.timed_out);
    assert_false(r.closed);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 0);
    cn_test_reply_free(&r);
    /* the server itself is not stuck */
    query(x, "fast", &r, WAIT_MS);
    assert_value(&r, "1");
    cn_test_reply_free(&r);
    assert_log(x, "query slow\nquery fast\n");
    stop(x);
}

static void test_bad_script_refused(void **state)
{
    (void)state;
    static const struct {
        const char *script, *why;
    } cases[] = {
        {"x 0 frobnicate\n", "script:1: unknown reply; expected value, scalar,"},
        {"# fine\nx 0 value 1\nx 0 value\n", "script:3: this reply needs an argument"},
        {"x zero value 1\n", "script:1: min_weight is not a number"},
        {"x 0 value 1 2\n", "script:1: this reply takes one word (no blanks)"},
        {"x 0 empty now\n", "script:1: this reply takes no argument"},
        {"x 0 status 99\n", "script:1: status needs a code between 100 and 599"},
        {"x\n", "script:1: expected '<match> <min_weight> <reply> [args...]'"},
    };
    /* cn_test_run() runs $CANARY_BIN: point it at the fake for a moment, to
     * capture what the fake says. */
    char *saved = getenv("CANARY_BIN") ? strdup(getenv("CANARY_BIN")) : NULL;
    setenv("CANARY_BIN", fake_bin(), 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = cn_test_tmpdir();
        const char *s = cn_test_write(dir, "script", cases[i].script);
        const char *args[] = {"--script", s, NULL};
        cn_test_output o;
        assert_int_equal(cn_test_run(&o, NULL, args), 2);
        if (!strstr(o.err, cases[i].why))
            print_error("expected '%s' in '%s'\n", cases[i].why, o.err);
        assert_non_null(strstr(o.err, cases[i].why));
        assert_string_equal(o.out, "");
        cn_test_output_free(&o);
        cn_test_rmtree(dir);
        free(dir);
    }
    const char *usage[][3] = {{NULL}, {"--script", NULL}, {"--bogus", "x", NULL}};
    for (size_t i = 0; i < 3; i++) {
        cn_test_output o;
        assert_int_equal(cn_test_run(&o, NULL, usage[i]), 2);
        assert_non_null(strstr(o.err, "usage: fake_metrics --script FILE"));
        cn_test_output_free(&o);
    }
    if (saved)
        setenv("CANARY_BIN", saved, 1);
    else
        unsetenv("CANARY_BIN");
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_weight_switch_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timelines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rule_and_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang, setup, teardown),
        cmocka_unit_test(test_bad_script_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
