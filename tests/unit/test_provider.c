/* Providers: template expansion, request URLs and headers, and the reading
 * of every canned reply in tests/data/provider/ (one test each), the
 * reduces, the HTTP and transport failures, JSON pointers, range queries
 * (URL and samples), and a robustness pass feeding every prefix and many
 * one-byte mutations of the canned replies to every parser. Bodies are copied into buffers of their
 * exact size with no terminator, so ASan catches any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/provider.h"
#include "canary/status.h"
#include "proc.h"

/* ---- helpers ---------------------------------------------------------------- */

typedef struct body {
    char *data;
    size_t len;
} body;

/* An exact-size copy of text (at least one byte allocated, none read). */
static body body_of(const char *text, size_t len)
{
    body b = {malloc(len ? len : 1), len};
    assert_non_null(b.data);
    memcpy(b.data, text, len);
    return b;
}

static body load(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/provider/%s", name);
    FILE *f = fopen(cn_test_src(rel), "rb");
    if (!f) {
        print_error("cannot open %s\n", cn_test_src(rel));
        fail();
    }
    char tmp[8192];
    size_t n = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    assert_true(n < sizeof tmp);
    return body_of(tmp, n);
}

/* The detail is terminated within the array, valid UTF-8 (jansson refuses
 * anything else) and holds no control character. */
static void assert_detail_safe(const cn_reading *r)
{
    const char *end = memchr(r->detail, '\0', sizeof r->detail);
    assert_non_null(end);
    for (const char *c = r->detail; c < end; c++)
        assert_false((unsigned char)*c < 0x20 || *c == 0x7f);
    json_t *s = json_string(r->detail);
    if (!s) {
        print_error("detail is not UTF-8: '%s'\n", r->detail);
        fail();
    }
    json_decref(s);
    if (r->kind == CN_READING_VALUE)
        assert_string_equal(r->detail, "");
}

/* Which table row is being checked, printed only when a check fails. */
static char current_case[512];

static void set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_case(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(current_case, sizeof current_case, fmt, ap);
    va_end(ap);
}

/* kind, and sub in the detail (exact: the whole detail) when not NULL. */
static void check_detail(const cn_reading *r, cn_reading_kind kind, const char *sub, bool exact)
{
    static const char *const kinds[] = {"value", "nodata", "error"};
    assert_detail_safe(r);
    if (r->kind != kind ||
        (sub && (exact ? strcmp(r->detail, sub) != 0 : !strstr(r->detail, sub)))) {
        print_error("%s%sexpected %s with %s'%s', got %s with '%s'\n", current_case,
                    *current_case ? ": " : "", kinds[kind], exact ? "" : "a detail containing ",
                    sub ? sub : "", (unsigned)r->kind < 3 ? kinds[r->kind] : "?", r->detail);
        fail();
    }
}

static void check(const cn_reading *r, cn_reading_kind kind, const char *sub)
{
    check_detail(r, kind, sub, false);
}

static void check_exact(const cn_reading *r, cn_reading_kind kind, const char *detail)
{
    check_detail(r, kind, detail, true);
}

static void check_value(const cn_reading *r, double want)
{
    check(r, CN_READING_VALUE, NULL);
    if (isnan(want))
        assert_true(isnan(r->value));
    else if (isinf(want))
        assert_true(r->value == want);
    else if (fabs(r->value - want) > 1e-12) {
        print_error("%s%sexpected %.17g, got %.17g\n", current_case, *current_case ? ": " : "",
                    want, r->value);
        fail();
    }
}

static cn_reading prom_file(const char *name, int reduce, long status)
{
    body b = load(name);
    cn_reading r = cn_prometheus_reading(reduce, status, b.data, b.len, NULL);
    free(b.data);
    return r;
}

static cn_reading json_file(const char *name, const char *pointer, long status)
{
    body b = load(name);
    cn_reading r = cn_json_reading(pointer, status, b.data, b.len, NULL);
    free(b.data);
    return r;
}

static cn_reading prom_text(int reduce, long status, const char *text)
{
    body b = body_of(text, strlen(text));
    cn_reading r = cn_prometheus_reading(reduce, status, b.data, b.len, NULL);
    free(b.data);
    return r;
}

static cn_reading json_text(const char *pointer, const char *text)
{
    body b = body_of(text, strlen(text));
    cn_reading r = cn_json_reading(pointer, 200, b.data, b.len, NULL);
    free(b.data);
    return r;
}

/* ---- one test per canned reply ------------------------------------------------ */

static void test_prom_good(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-good.json", CN_REDUCE_NONE, 200);
    check_value(&r, 0.004);
    assert_true(r.value == 0.004);
}

static void test_prom_scalar(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-scalar.json", CN_REDUCE_NONE, 200);
    check_value(&r, 0.25);
}

static void test_prom_empty(void **state)
{
    (void)state;
    for (int reduce = CN_REDUCE_NONE; reduce <= CN_REDUCE_AVG; reduce++) {
        cn_reading r = prom_file("prom-empty.json", reduce, 200);
        check(&r, CN_READING_NODATA, "empty vector (no series matched)");
    }
}

static void test_prom_nan(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-nan.json", CN_REDUCE_NONE, 200);
    check_value(&r, NAN);
}

static void test_prom_inf(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-inf.json", CN_REDUCE_NONE, 200);
    check_value(&r, INFINITY);
    assert_true(r.value > 0);
}

static void test_prom_string_value(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-string-value.json", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR, "value \"abc\" is not a number");
}

static void test_prom_several(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-several.json", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR,
          "3 series where one is expected (set reduce: sum, max, min or avg)");
    r = prom_file("prom-several.json", CN_REDUCE_SUM, 200);
    check_value(&r, 9);
    r = prom_file("prom-several.json", CN_REDUCE_MAX, 200);
    check_value(&r, 6);
    r = prom_file("prom-several.json", CN_REDUCE_MIN, 200);
    check_value(&r, 1);
    r = prom_file("prom-several.json", CN_REDUCE_AVG, 200);
    check_value(&r, 3);
    r = prom_file("prom-several.json", 99, 200);
    check(&r, CN_READING_ERROR, "3 series and an unknown reduce (99)");
}

/* A series without data must not be hidden by the others, by any reduce. */
static void test_prom_several_nan(void **state)
{
    (void)state;
    for (int reduce = CN_REDUCE_SUM; reduce <= CN_REDUCE_AVG; reduce++) {
        cn_reading r = prom_file("prom-several-nan.json", reduce, 200);
        check_value(&r, NAN);
    }
    cn_reading r = prom_file("prom-several-nan.json", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR, "3 series where one is expected");
}

static void test_prom_error(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-error.json", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR,
          "query failed: bad_data: invalid parameter \"query\": 1:8: parse error");
    /* Prometheus sends it with 400; the status leads, the reason follows. */
    r = prom_file("prom-error.json", CN_REDUCE_NONE, 400);
    check(&r, CN_READING_ERROR, "HTTP 400: bad_data: invalid parameter \"query\"");
    assert_memory_equal(r.detail, "HTTP 400: ", 10);
}

static void test_prom_matrix(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-matrix.json", CN_REDUCE_SUM, 200);
    check(&r, CN_READING_ERROR, "resultType matrix is not supported (use an instant query)");
}

static void test_html_500(void **state)
{
    (void)state;
    cn_reading r = prom_file("html-500.html", CN_REDUCE_NONE, 500);
    check_exact(&r, CN_READING_ERROR, "HTTP 500");
    r = json_file("html-500.html", "/latency/p99", 502);
    assert_string_equal(r.detail, "HTTP 502");
    /* the same page with a 200 is a reply that is not JSON */
    r = prom_file("html-500.html", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR, "reply is not JSON (line 1: ");
}

static void test_prom_truncated(void **state)
{
    (void)state;
    cn_reading r = prom_file("prom-truncated.json", CN_REDUCE_NONE, 200);
    check(&r, CN_READING_ERROR, "reply is not JSON (line 1: ");
    r = json_file("prom-truncated.json", "", 200);
    check(&r, CN_READING_ERROR, "reply is not JSON (line 1: ");
}

/* The HTTP client turns an oversized reply into a transport error; the
 * parsers report it as given, whatever status and body came with it. */
static void test_oversized_reply(void **state)
{
    (void)state;
    cn_reading r = cn_prometheus_reading(CN_REDUCE_NONE, 0, NULL, 0, "reply larger than 1 MiB");
    check_exact(&r, CN_READING_ERROR, "reply larger than 1 MiB");
    r = cn_json_reading("/x", 0, NULL, 0, "reply larger than 1 MiB");
    assert_int_equal(r.kind, CN_READING_ERROR);
    assert_string_equal(r.detail, "reply larger than 1 MiB");
    body b = load("prom-good.json");
    r = cn_prometheus_reading(CN_REDUCE_NONE, 200, b.data, b.len, "reply larger than 1 MiB");
    assert_int_equal(r.kind, CN_READING_ERROR);
    assert_string_equal(r.detail, "reply larger than 1 MiB");
    free(b.data);
}

static void test_json_good(void **state)
{
    (void)state;
    cn_reading r = json_file("json-good.json", "/latency/p99", 200);
    check_value(&r, 123.5);
    r = json_file("json-good.json", "/requests", 200);
    check_value(&r, 1042);
    r = json_file("json-good.json", "/latency", 200);
    check(&r, CN_READING_ERROR, "value at /latency is an object, not a number");
    r = json_file("json-good.json", "", 200);
    check(&r, CN_READING_ERROR, "value at the document root is an object, not a number");
    r = json_file("json-good.json", NULL, 200);
    check(&r, CN_READING_ERROR, "value at the document root is an object, not a number");
}

static void test_json_null(void **state)
{
    (void)state;
    cn_reading r = json_file("json-null.json", "/latency/p99", 200);
    check_exact(&r, CN_READING_NODATA, "null at /latency/p99");
}

static void test_json_string(void **state)
{
    (void)state;
    cn_reading r = json_file("json-string.json", "/latency/p99", 200);
    check_exact(&r, CN_READING_ERROR, "value at /latency/p99 is a string, not a number");
}

static void test_json_missing(void **state)
{
    (void)state;
    cn_reading r = json_file("json-missing.json", "/latency/p99", 200);
    check_exact(&r, CN_READING_ERROR, "no value at /latency/p99");
}

static void test_json_escaped(void **state)
{
    (void)state;
    static const struct {
        const char *pointer;
        double want;
    } cases[] = {
        {"/a~1b", 1}, {"/m~0n", 2}, {"/a/b", 3},
        {"/~01", 4}, /* ~0 first gives "~1" the key, not "/" */
        {"/", 5},    /* the empty key */
        {"/xs/0", 10}, {"/xs/2", 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_reading r = json_file("json-escaped.json", cases[i].pointer, 200);
        set_case("pointer %s", cases[i].pointer);
        check_value(&r, cases[i].want);
    }
    set_case("%s", "");
}

/* ---- pointers -------------------------------------------------------------------- */

static void test_json_pointer_edges(void **state)
{
    (void)state;
    static const struct {
        const char *pointer, *doc;
        cn_reading_kind kind;
        double value;
        const char *detail; /* exact */
    } cases[] = {
        {"", "42", CN_READING_VALUE, 42, ""},
        {NULL, "-0.5", CN_READING_VALUE, -0.5, ""},
        {"", "null", CN_READING_NODATA, 0, "null at the document root"},
        {"/x", "42", CN_READING_ERROR, 0, "no value at /x (the document root is a number)"},
        {"/a/b/c", "{\"a\":{\"b\":true}}", CN_READING_ERROR, 0,
         "no value at /a/b/c (/a/b is a boolean)"},
        {"/a/b", "{\"a\":{\"b\":true}}", CN_READING_ERROR, 0,
         "value at /a/b is a boolean, not a number"},
        {"/a", "{\"a\":[1]}", CN_READING_ERROR, 0, "value at /a is an array, not a number"},
        {"/xs/1", "{\"xs\":[1,2]}", CN_READING_VALUE, 2, ""},
        {"/xs/2", "{\"xs\":[1,2]}", CN_READING_ERROR, 0, "no value at /xs/2"},
        {"/xs/01", "{\"xs\":[1,2]}", CN_READING_ERROR, 0,
         "pointer \"/xs/01\": \"01\" is not an array index (decimal digits, no leading zero)"},
        {"/xs/-", "{\"xs\":[1,2]}", CN_READING_ERROR, 0,
         "pointer \"/xs/-\": \"-\" is not an array index ('-' means past the end, where "
         "nothing is to read)"},
        {"/xs/", "{\"xs\":[1,2]}", CN_READING_ERROR, 0,
         "pointer \"/xs/\": \"\" is not an array index (decimal digits, no leading zero)"},
        {"/xs/1x", "{\"xs\":[1,2]}", CN_READING_ERROR, 0,
         "pointer \"/xs/1x\": \"1x\" is not an array index (decimal digits, no leading zero)"},
        {"/xs/99999999999999999999999", "{\"xs\":[1]}", CN_READING_ERROR, 0,
         "no value at /xs/99999999999999999999999"},
        {"/0", "{\"0\":7}", CN_READING_VALUE, 7, ""}, /* digits are keys in objects */
        {"/a~2b", "{\"a~2b\":1}", CN_READING_ERROR, 0,
         "pointer \"/a~2b\" has a '~' not followed by 0 or 1 (RFC 6901 writes '~' as ~0 "
         "and '/' as ~1)"},
        {"/a~", "{}", CN_READING_ERROR, 0,
         "pointer \"/a~\" has a '~' not followed by 0 or 1 (RFC 6901 writes '~' as ~0 "
         "and '/' as ~1)"},
        {"a", "{\"a\":1}", CN_READING_ERROR, 0,
         "pointer \"a\" must be empty or start with '/'"},
        {"/big", "{\"big\":123456789012345678901234567890}", CN_READING_VALUE,
         123456789012345678901234567890.0, ""},
        {"/a", "{\"a\":1,\"a\":2}", CN_READING_ERROR, 0, NULL}, /* duplicate key */
        {"/a", "{\"a\":NaN}", CN_READING_ERROR, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_case("pointer %s in %s", cases[i].pointer ? cases[i].pointer : "(NULL)",
                 cases[i].doc);
        cn_reading r = json_text(cases[i].pointer, cases[i].doc);
        if (cases[i].detail)
            check_exact(&r, cases[i].kind, cases[i].detail);
        else
            check(&r, cases[i].kind, "reply is not JSON (line 1: ");
        if (cases[i].kind == CN_READING_VALUE)
            assert_true(r.value == cases[i].value);
    }
    set_case("%s", "");
}

/* ---- Prometheus reply structure and values ---------------------------------------- */

#define VEC(result) "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":" \
                    result "}}"
#define SAMPLE(v) VEC("[{\"metric\":{},\"value\":[1764403836.5,\"" v "\"]}]")

static void test_prom_structure(void **state)
{
    (void)state;
    static const struct {
        const char *body, *detail; /* exact */
    } cases[] = {
        {"[]", "not a Prometheus query reply (not a JSON object)"},
        {"42", "not a Prometheus query reply (not a JSON object)"},
        {"{\"data\":{}}", "not a Prometheus query reply (no \"status\")"},
        {"{\"status\":\"weird\",\"data\":{}}",
         "not a Prometheus query reply (\"status\" is neither success nor error)"},
        {"{\"status\":\"success\"}", "not a Prometheus query reply (no \"data\" object)"},
        {"{\"status\":\"success\",\"data\":[]}",
         "not a Prometheus query reply (no \"data\" object)"},
        {"{\"status\":\"success\",\"data\":{\"result\":[]}}",
         "not a Prometheus query reply (no \"data.resultType\")"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":42,\"result\":[]}}",
         "not a Prometheus query reply (no \"data.resultType\")"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"}}",
         "not a Prometheus query reply (no \"data.result\")"},
        {VEC("{}"), "data.result of a vector is not an array"},
        {VEC("[1]"), "series 1 of 1 is not an object"},
        {VEC("[{\"metric\":{}}]"), "series 1 of 1 has no \"value\""},
        {VEC("[{\"value\":\"0.1\"}]"), "series 1 of 1 is not a [timestamp, \"value\"] pair"},
        {VEC("[{\"value\":[1]}]"), "series 1 of 1 is not a [timestamp, \"value\"] pair"},
        {VEC("[{\"value\":[1,\"1\",2]}]"),
         "series 1 of 1 is not a [timestamp, \"value\"] pair"},
        {VEC("[{\"value\":[\"1\",\"1\"]}]"),
         "series 1 of 1 is not a [timestamp, \"value\"] pair"},
        {VEC("[{\"value\":[1,0.5]}]"),
         "series 1 of 1 has a value that is not a string (Prometheus writes values as "
         "strings)"},
        {VEC("[{\"value\":[1,null]}]"),
         "series 1 of 1 has a value that is not a string (Prometheus writes values as "
         "strings)"},
        {VEC("[{\"value\":[1,\"1\"]},{\"metric\":{}}]"), "series 2 of 2 has no \"value\""},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":\"1\"}}",
         "the scalar is not a [timestamp, \"value\"] pair"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,2]}}",
         "the scalar has a value that is not a string (Prometheus writes values as strings)"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"string\",\"result\":[1,\"a\"]}}",
         "resultType string is not supported (use an instant query)"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"foo\",\"result\":[]}}",
         "resultType foo is not supported (use an instant query)"},
        {"{\"status\":\"error\"}", "query failed: error: no message"},
        {"", "reply is empty (HTTP 200), not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_case("body %s", cases[i].body);
        cn_reading r = prom_text(CN_REDUCE_SUM, 200, cases[i].body);
        check_exact(&r, CN_READING_ERROR, cases[i].detail);
    }
    set_case("%s", "");
}

static void test_prom_values(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        double want;
    } good[] = {
        {SAMPLE("0.004"), 0.004}, {SAMPLE("-0"), 0},      {SAMPLE("+5"), 5},
        {SAMPLE("1e-3"), 0.001},  {SAMPLE("1E3"), 1000},  {SAMPLE("-1.5e+2"), -150},
        {SAMPLE("42"), 42},       {SAMPLE("-Inf"), -INFINITY},
        {SAMPLE("+Inf"), INFINITY}, {SAMPLE("NaN"), NAN}, {SAMPLE(".5"), 0.5},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        set_case("body %s", good[i].body);
        cn_reading r = prom_text(CN_REDUCE_NONE, 200, good[i].body);
        check_value(&r, good[i].want);
    }
    set_case("%s", "");
    static const char *const bad[] = {
        "",    " 1",       "1 ",  "0x10", "inf", "Inf", "nan",    "Infinity", "1e",
        "+-1", ".",        "1,5", "abc",  "1.0.0", "--1", "+NaN", "e5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256], want[64];
        snprintf(text, sizeof text, SAMPLE("%s"), bad[i]);
        snprintf(want, sizeof want, "value \"%s\" is not a number", bad[i]);
        set_case("value '%s'", bad[i]);
        cn_reading r = prom_text(CN_REDUCE_NONE, 200, text);
        check_exact(&r, CN_READING_ERROR, want);
    }
    set_case("%s", "");
    cn_reading r = prom_text(CN_REDUCE_NONE, 200, SAMPLE("1e999"));
    check_exact(&r, CN_READING_ERROR, "value \"1e999\" is out of range");
    /* a value too small for a double is as good as zero */
    r = prom_text(CN_REDUCE_NONE, 200, SAMPLE("1e-400"));
    check(&r, CN_READING_VALUE, NULL);
    assert_true(r.value >= 0 && r.value < 1e-300);
    /* a long non-number is quoted only in part */
    r = prom_text(CN_REDUCE_NONE, 200,
                  SAMPLE("12345678901234567890123456789012345678901234567890x"));
    check(&r, CN_READING_ERROR, NULL);
    assert_string_equal(r.detail,
                        "value \"1234567890123456789012345678901234567890\"... is not a number");
}

/* ---- HTTP and transport failures --------------------------------------------------- */

static void test_http_status(void **state)
{
    (void)state;
    static const struct {
        long status;
        const char *body, *detail; /* NULL detail: a value of 0.004 */
    } cases[] = {
        {200, SAMPLE("0.004"), NULL},
        {299, SAMPLE("0.004"), NULL},
        {199, SAMPLE("0.004"), "HTTP 199"},
        {300, SAMPLE("0.004"), "HTTP 300"},
        {302, "", "HTTP 302"},
        {0, "", "HTTP 0"},
        {204, "", "reply is empty (HTTP 204), not JSON"},
        {503, "{\"error\":\"too many queries\"}", "HTTP 503: too many queries"},
        {422, "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"x\"}",
         "HTTP 422: execution: x"},
        {500, "{\"error\":42}", "HTTP 500"},
        {500, "{\"error\":", "HTTP 500"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_case("status %ld body %s", cases[i].status, cases[i].body);
        cn_reading r = prom_text(CN_REDUCE_NONE, cases[i].status, cases[i].body);
        if (!cases[i].detail) {
            check_value(&r, 0.004);
            continue;
        }
        check_exact(&r, CN_READING_ERROR, cases[i].detail);
    }
    set_case("%s", "");
    /* no body at all */
    cn_reading r = cn_json_reading("", 200, NULL, 0, NULL);
    assert_string_equal(r.detail, "reply is empty (HTTP 200), not JSON");
}

static void test_transport_errors(void **state)
{
    (void)state;
    cn_reading r = cn_prometheus_reading(0, 0, NULL, 0, "connection refused (127.0.0.1:9)");
    check_exact(&r, CN_READING_ERROR, "connection refused (127.0.0.1:9)");
    r = cn_json_reading(NULL, 0, NULL, 0, "");
    assert_string_equal(r.detail, "request failed");

    /* cut to fit, marked as cut */
    char long_err[400];
    memset(long_err, 'e', sizeof long_err - 1);
    long_err[sizeof long_err - 1] = '\0';
    r = cn_prometheus_reading(0, 0, NULL, 0, long_err);
    check(&r, CN_READING_ERROR, NULL);
    assert_int_equal(strlen(r.detail), sizeof r.detail - 1);
    assert_string_equal(r.detail + sizeof r.detail - 4, "...");
    /* exactly full is not cut */
    long_err[sizeof r.detail - 1] = '\0';
    r = cn_prometheus_reading(0, 0, NULL, 0, long_err);
    assert_string_equal(r.detail, long_err);

    /* a byte that is not UTF-8, and a line break, made harmless */
    r = cn_json_reading(NULL, 0, NULL, 0, "bad \xff\xc3 byte\r\nnext");
    assert_string_equal(r.detail, "bad ?? byte  next");
}

/* The server's own text goes into the detail: line breaks become spaces,
 * and a cut never splits a character, whatever its offset. */
static void test_detail_from_server(void **state)
{
    (void)state;
    for (int pad = 0; pad < 4; pad++) {
        char text[1024];
        int n = snprintf(text, sizeof text,
                         "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"%.*s"
                         "line1\\nline2\\t",
                         pad, "xxxx");
        for (int i = 0; i < 100; i++)
            n += snprintf(text + n, sizeof text - (size_t)n, "\xc3\xa9");
        snprintf(text + n, sizeof text - (size_t)n, "\"}");
        cn_reading r = prom_text(CN_REDUCE_NONE, 200, text);
        check(&r, CN_READING_ERROR, "query failed: bad_data: ");
        assert_non_null(strstr(r.detail, "line1 line2 \xc3\xa9"));
        size_t len = strlen(r.detail);
        assert_true(len <= sizeof r.detail - 1 && len >= sizeof r.detail - 5);
        assert_string_equal(r.detail + len - 3, "...");
    }
}

/* ---- templates ---------------------------------------------------------------------- */

static const cn_template_vars VARS = {
    .service = "checkout", .version = "v2.1.0", .previous_version = "v2.0.9",
    .rollout = "checkout-v2.1.0", .stage = 3};

static void expect_expand(const char *tmpl, const cn_template_vars *v, const char *want)
{
    char *out = NULL, err[256] = "";
    int rc = cn_template_expand(tmpl, v, &out, err, sizeof err);
    if (rc) {
        print_error("expanding '%s': %s\n", tmpl, err);
        fail();
    }
    assert_string_equal(out, want);
    free(out);
}

static void expect_expand_error(const char *tmpl, const char *sub)
{
    char *out = (char *)"x", err[256] = "";
    assert_int_equal(cn_template_expand(tmpl, &VARS, &out, err, sizeof err), CN_EINVAL);
    assert_null(out);
    if (!strstr(err, sub)) {
        print_error("expected '%s' in '%s'\n", sub, err);
        fail();
    }
}

static void test_template_expand(void **state)
{
    (void)state;
    expect_expand("{{service}}/{{version}}/{{previous_version}}/{{rollout}}/{{stage}}", &VARS,
                  "checkout/v2.1.0/v2.0.9/checkout-v2.1.0/3");
    expect_expand("a{{ version }}b{{  stage}}c{{service  }}", &VARS, "av2.1.0b3ccheckout");
    expect_expand("{{version}}{{version}}", &VARS, "v2.1.0v2.1.0");
    expect_expand("", &VARS, "");
    expect_expand("rate(x{a=\"b\"}[5m])", &VARS, "rate(x{a=\"b\"}[5m])");
    expect_expand("{version} }} { {version}}", &VARS, "{version} }} { {version}}");

    cn_template_vars none = {0};
    expect_expand("[{{service}}|{{version}}|{{previous_version}}|{{rollout}}|{{stage}}]",
                  &none, "[||||0]");
    cn_template_vars big = VARS;
    big.stage = UINT_MAX;
    expect_expand("{{stage}}", &big, "4294967295");

    expect_expand_error("x {{servcie}} y", "unknown template '{{servcie}}' in 'x {{servcie}} y'; "
                        "known: service, version, previous_version, rollout, stage");
    expect_expand_error("{{}}", "unknown template '{{}}'");
    /* the first "}}" closes, as in the policy loader */
    expect_expand_error("{{{version}}}", "unknown template '{{{version}}'");
    expect_expand_error("{{ Version }}", "unknown template '{{ Version }}'");
    expect_expand_error("up{{version", "'up{{version' has a '{{' with no closing '}}' at "
                        "character 3");
    expect_expand_error("{{version}} {{", "with no closing '}}' at character 13");

    char *out = (char *)"x", err[128];
    assert_int_equal(cn_template_expand(NULL, &VARS, &out, err, sizeof err), CN_EINVAL);
    assert_null(out);
    assert_int_equal(cn_template_expand("{{stage}}", NULL, &out, err, sizeof err), CN_EINVAL);
    assert_null(out);
}

/* ---- URLs --------------------------------------------------------------------------- */

static void expect_url(const cn_source *src, const cn_template_vars *v, const char *want)
{
    char *out = NULL, err[256] = "";
    int rc = cn_source_url(src, v, &out, err, sizeof err);
    if (rc) {
        print_error("url: %s\n", err);
        fail();
    }
    assert_string_equal(out, want);
    free(out);
}

static void expect_url_error(const cn_source *src, const char *sub)
{
    char *out = (char *)"x", err[256] = "";
    assert_int_equal(cn_source_url(src, &VARS, &out, err, sizeof err), CN_EINVAL);
    assert_null(out);
    if (!strstr(err, sub)) {
        print_error("expected '%s' in '%s'\n", sub, err);
        fail();
    }
}

static void test_prometheus_url(void **state)
{
    (void)state;
    cn_source src = {.kind = CN_SOURCE_PROMETHEUS, .address = "http://prom:9090",
                     .query = "rate(x{service=\"{{service}}\", a=~\"b+c\"}[5m]) / 2"};
    expect_url(&src, &VARS,
               "http://prom:9090/api/v1/query?query=rate%28x%7Bservice%3D%22checkout%22%2C%20"
               "a%3D~%22b%2Bc%22%7D%5B5m%5D%29%20%2F%202");

    /* one trailing slash is dropped, not more */
    src.query = "up";
    src.address = "http://prom:9090/";
    expect_url(&src, &VARS, "http://prom:9090/api/v1/query?query=up");
    src.address = "https://prom.example/prometheus//";
    expect_url(&src, &VARS, "https://prom.example/prometheus//api/v1/query?query=up");

    /* the address may use templates too; the query is encoded as a whole */
    src.address = "http://prom-{{ service }}:9090";
    src.query = "a-z_A.Z~09&#%?";
    expect_url(&src, &VARS, "http://prom-checkout:9090/api/v1/query?query=a-z_A.Z~09%26%23%25%3F");

    /* non-ASCII bytes are encoded byte by byte */
    src.query = "\xc3\xa9";
    expect_url(&src, &VARS, "http://prom-checkout:9090/api/v1/query?query=%C3%A9");

    src.address = "http://prom:9090";
    src.query = NULL;
    expect_url_error(&src, "prometheus source has no query");
    src.query = "up{v=\"{{verison}}\"}";
    expect_url_error(&src, "unknown template '{{verison}}'");
    src.query = "up";
    src.address = NULL;
    expect_url_error(&src, "prometheus source has no address");
}

static void test_json_url(void **state)
{
    (void)state;
    cn_source src = {.kind = CN_SOURCE_JSON,
                     .url = "http://metrics:8080/{{service}}/latency?v={{version}}&s={{stage}}"};
    expect_url(&src, &VARS, "http://metrics:8080/checkout/latency?v=v2.1.0&s=3");
    /* a value cannot add to the URL: '&', '/', '+' and spaces are encoded */
    cn_template_vars odd = VARS;
    odd.service = "a/b";
    odd.version = "1.0 beta+1&admin=1";
    expect_url(&src, &odd,
               "http://metrics:8080/a%2Fb/latency?v=1.0%20beta%2B1%26admin%3D1&s=3");
    /* text of the url itself is left as written */
    src.url = "http://metrics:8080/q?a=%20b&c=d+e";
    expect_url(&src, &VARS, "http://metrics:8080/q?a=%20b&c=d+e");

    src.url = NULL;
    expect_url_error(&src, "json source has no url");
    cn_source none = {.kind = CN_SOURCE_NONE, .url = "http://x"};
    expect_url_error(&none, "has no URL (prometheus or json expected)");
}

/* ---- headers -------------------------------------------------------------------------- */

#define TOKEN_ENV "CANARY_TEST_PROVIDER_TOKEN"
#define ORG_ENV "CANARY_TEST_PROVIDER_ORG"

static int headers_rc(const cn_source *src, char *err, size_t errlen)
{
    char **h = NULL;
    size_t n = 0;
    int rc = cn_source_headers(src, &h, &n, err, errlen);
    cn_source_headers_free(h, n);
    return rc;
}

static void expect_header_error(const cn_source *src, const char *sub, const char *secret)
{
    char err[256] = "";
    assert_int_equal(headers_rc(src, err, sizeof err), CN_EINVAL);
    if (!strstr(err, sub)) {
        print_error("expected '%s' in '%s'\n", sub, err);
        fail();
    }
    if (secret)
        assert_null(strstr(err, secret));
}

static void test_headers(void **state)
{
    (void)state;
    cn_env_header hdrs[] = {{"X-Scope-OrgID", ORG_ENV}};
    cn_source src = {.kind = CN_SOURCE_PROMETHEUS, .bearer_token_env = TOKEN_ENV,
                     .headers = hdrs, .header_count = 1};
    setenv(TOKEN_ENV, "s3cr3t-t0ken", 1);
    setenv(ORG_ENV, "tenant\t1", 1); /* a tab is allowed in a field value */
    char **h = NULL, err[256] = "";
    size_t n = 0;
    assert_int_equal(cn_source_headers(&src, &h, &n, err, sizeof err), CN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(h[0], "Authorization: Bearer s3cr3t-t0ken");
    assert_string_equal(h[1], "X-Scope-OrgID: tenant\t1");
    cn_source_headers_free(h, n);

    /* none asked for: none made */
    cn_source bare = {.kind = CN_SOURCE_JSON, .url = "http://x"};
    h = (char **)err;
    n = 7;
    assert_int_equal(cn_source_headers(&bare, &h, &n, err, sizeof err), CN_OK);
    assert_null(h);
    assert_int_equal(n, 0);
    cn_source_headers_free(NULL, 0);

    unsetenv(TOKEN_ENV);
    expect_header_error(&src, "environment variable " TOKEN_ENV " (bearer_token_env) is not "
                        "set", NULL);
    setenv(TOKEN_ENV, "", 1);
    expect_header_error(&src, "environment variable " TOKEN_ENV " (bearer_token_env) is "
                        "empty", NULL);
    setenv(TOKEN_ENV, "s3cr3t\r\nX-Evil: 1", 1);
    expect_header_error(&src, TOKEN_ENV " (bearer_token_env) contains a line break at "
                        "character 7", "s3cr3t");
    setenv(TOKEN_ENV, "s3cr3t\n", 1);
    expect_header_error(&src, "contains a line break", "s3cr3t");
    setenv(TOKEN_ENV, "s3cr3t\x01", 1);
    expect_header_error(&src, "contains a control character", "s3cr3t");

    setenv(TOKEN_ENV, "s3cr3t", 1);
    unsetenv(ORG_ENV);
    expect_header_error(&src, "environment variable " ORG_ENV " (header 'X-Scope-OrgID' in "
                        "headers_from_env) is not set", NULL);
    setenv(ORG_ENV, "tenant\r1", 1);
    expect_header_error(&src, ORG_ENV " (header 'X-Scope-OrgID' in headers_from_env) "
                        "contains a line break", "tenant");
    setenv(ORG_ENV, "tenant", 1);
    hdrs[0].name = "X-Evil:\r\nHost";
    expect_header_error(&src, "not a valid header name", NULL);
    unsetenv(TOKEN_ENV);
    unsetenv(ORG_ENV);
}

/* ---- dispatch ------------------------------------------------------------------------- */

static void test_source_reading(void **state)
{
    (void)state;
    body b = load("prom-several.json");
    cn_source prom = {.kind = CN_SOURCE_PROMETHEUS, .reduce = CN_REDUCE_SUM};
    cn_reading r = cn_source_reading(&prom, &VARS, 200, b.data, b.len, NULL);
    check_value(&r, 9);
    free(b.data);

    /* pointer templates are escaped as pointer tokens */
    const char *doc = "{\"services\":{\"a/b~c\":{\"p99\":7}, \"checkout\":{\"p99\":8}}}";
    b = body_of(doc, strlen(doc));
    cn_source json = {.kind = CN_SOURCE_JSON, .pointer = "/services/{{ service }}/p99"};
    cn_template_vars odd = VARS;
    odd.service = "a/b~c";
    r = cn_source_reading(&json, &odd, 200, b.data, b.len, NULL);
    check_value(&r, 7);
    r = cn_source_reading(&json, &VARS, 200, b.data, b.len, NULL);
    check_value(&r, 8);
    json.pointer = "/services/{{servce}}/p99";
    r = cn_source_reading(&json, &VARS, 200, b.data, b.len, NULL);
    check(&r, CN_READING_ERROR, "pointer: unknown template '{{servce}}'");
    json.pointer = NULL;
    r = cn_source_reading(&json, NULL, 200, b.data, b.len, NULL);
    check(&r, CN_READING_ERROR, "value at the document root is an object, not a number");
    json.pointer = "/services/checkout/p99";
    r = cn_source_reading(&json, NULL, 503, b.data, b.len, NULL);
    assert_string_equal(r.detail, "HTTP 503");

    cn_source none = {.kind = CN_SOURCE_NONE};
    r = cn_source_reading(&none, &VARS, 200, b.data, b.len, NULL);
    check(&r, CN_READING_ERROR, "the metric source has no kind");
    r = cn_source_reading(NULL, &VARS, 200, b.data, b.len, NULL);
    check(&r, CN_READING_ERROR, "the metric source has no kind");
    free(b.data);
}

/* ---- range queries ---------------------------------------------------------------------- */

/* The samples of a canned or literal reply: values checked against the
 * reading, then freed; *n gets the count. */
static cn_reading samples_of(const char *data, size_t len, long status, double *first,
                             size_t *n)
{
    body b = body_of(data, len);
    double *v = (double *)&b; /* must be overwritten */
    size_t count = 99;
    cn_reading r;
    assert_int_equal(cn_prometheus_samples(status, b.data, b.len, NULL, &v, &count, &r), CN_OK);
    free(b.data);
    assert_detail_safe(&r);
    if (r.kind == CN_READING_VALUE) {
        assert_non_null(v);
        assert_true(count >= 1 && count <= CN_PROM_MAX_SAMPLES);
        assert_true(isnan(r.value) ? isnan(v[count - 1]) : r.value == v[count - 1]);
        if (first)
            *first = v[0];
    } else {
        assert_null(v);
        assert_int_equal(count, 0);
    }
    free(v);
    if (n)
        *n = count;
    return r;
}

static cn_reading samples_file(const char *name, size_t *n)
{
    body b = load(name);
    cn_reading r = samples_of(b.data, b.len, 200, NULL, n);
    free(b.data);
    return r;
}

static void test_range_good(void **state)
{
    (void)state;
    body b = load("prom-range-good.json");
    double *v = NULL;
    size_t n = 0;
    cn_reading r;
    assert_int_equal(cn_prometheus_samples(200, b.data, b.len, NULL, &v, &n, &r), CN_OK);
    free(b.data);
    check_value(&r, 0.001);
    assert_int_equal(n, 5);
    assert_true(v[0] == 0.004 && v[1] == 0.005 && isnan(v[2]) && v[3] == -0.25 && v[4] == 0.001);
    free(v);

    /* the range query canned for the instant parser's refusal */
    r = samples_file("prom-matrix.json", &n);
    check_value(&r, 0.003);
    assert_int_equal(n, 3);
}

static void test_range_canned_failures(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        cn_reading_kind kind;
        const char *detail; /* exact */
    } cases[] = {
        {"prom-range-empty.json", CN_READING_NODATA, "empty matrix (no series matched)"},
        {"prom-range-no-samples.json", CN_READING_NODATA, "the series has no samples"},
        {"prom-range-several.json", CN_READING_ERROR,
         "2 series where one is expected (aggregate the query, e.g. with sum)"},
        {"prom-range-inf.json", CN_READING_ERROR, "sample 3 of 4 is +Inf"},
        {"prom-range-unordered.json", CN_READING_ERROR,
         "sample 3 of 4 (at 1764403791.000) is not later than the one before it (at "
         "1764403806.000)"},
        {"prom-good.json", CN_READING_ERROR,
         "resultType vector is not a range result (a matrix from /api/v1/query_range "
         "expected)"},
        {"prom-scalar.json", CN_READING_ERROR,
         "resultType scalar is not a range result (a matrix from /api/v1/query_range "
         "expected)"},
        {"prom-error.json", CN_READING_ERROR,
         "query failed: bad_data: invalid parameter \"query\": 1:8: parse error: unexpected "
         "\"}\""},
        {"prom-truncated.json", CN_READING_ERROR, NULL},
        {"json-good.json", CN_READING_ERROR, "not a Prometheus query reply (no \"status\")"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_case("%s", cases[i].file);
        size_t n = 7;
        cn_reading r = samples_file(cases[i].file, &n);
        if (cases[i].detail)
            check_exact(&r, cases[i].kind, cases[i].detail);
        else
            check(&r, cases[i].kind, "reply is not JSON (line 1: ");
        assert_int_equal(n, 0);
    }
    set_case("%s", "");
}

#define MATRIX(result) "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\"," \
                       "\"result\":" result "}}"
#define SERIES(values) MATRIX("[{\"metric\":{},\"values\":" values "}]")

static void test_range_structure(void **state)
{
    (void)state;
    static const struct {
        long status;
        const char *body, *detail; /* exact */
    } cases[] = {
        {200, MATRIX("{}"), "data.result of a matrix is not an array"},
        {200, MATRIX("[1]"), "the series is not an object"},
        {200, MATRIX("[{\"metric\":{}}]"), "the series has no \"values\" array"},
        {200, MATRIX("[{\"value\":[1,\"1\"]}]"), "the series has no \"values\" array"},
        {200, SERIES("{}"), "the series has no \"values\" array"},
        {200, SERIES("[1]"), "sample 1 of 1 is not a [timestamp, \"value\"] pair"},
        {200, SERIES("[[1,\"1\"],[2]]"), "sample 2 of 2 is not a [timestamp, \"value\"] pair"},
        {200, SERIES("[[\"1\",\"1\"]]"), "sample 1 of 1 is not a [timestamp, \"value\"] pair"},
        {200, SERIES("[[1,0.5]]"),
         "sample 1 of 1 has a value that is not a string (Prometheus writes values as "
         "strings)"},
        {200, SERIES("[[1,\"abc\"]]"), "value \"abc\" is not a number"},
        {200, SERIES("[[1,\"1e999\"]]"), "value \"1e999\" is out of range"},
        {200, SERIES("[[1,\"1\"],[2,\"-Inf\"]]"), "sample 2 of 2 is -Inf"},
        {200, SERIES("[[1,\"1\"],[1,\"2\"]]"),
         "sample 2 of 2 (at 1.000) is not later than the one before it (at 1.000)"},
        {200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\"}}",
         "not a Prometheus query reply (no \"data.result\")"},
        {200, "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"too many samples\"}",
         "query failed: execution: too many samples"},
        {200, "[]", "not a Prometheus query reply (not a JSON object)"},
        {200, "", "reply is empty (HTTP 200), not JSON"},
        {503, "{\"status\":\"error\",\"errorType\":\"unavailable\",\"error\":\"busy\"}",
         "HTTP 503: unavailable: busy"},
        {302, SERIES("[[1,\"1\"]]"), "HTTP 302"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_case("HTTP %ld, body %s", cases[i].status, cases[i].body);
        cn_reading r = samples_of(cases[i].body, strlen(cases[i].body), cases[i].status, NULL,
                                  NULL);
        check_exact(&r, CN_READING_ERROR, cases[i].detail);
    }
    set_case("%s", "");

    /* the transport error wins over whatever came with it */
    body b = load("prom-range-good.json");
    double *v = NULL;
    size_t n = 3;
    cn_reading r;
    assert_int_equal(cn_prometheus_samples(200, b.data, b.len, "connection refused (127.0.0.1:9)",
                                           &v, &n, &r), CN_OK);
    check_exact(&r, CN_READING_ERROR, "connection refused (127.0.0.1:9)");
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(cn_prometheus_samples(200, b.data, b.len, NULL, NULL, &n, &r), CN_EINVAL);
    assert_int_equal(cn_prometheus_samples(200, b.data, b.len, NULL, &v, NULL, &r), CN_EINVAL);
    assert_int_equal(cn_prometheus_samples(200, b.data, b.len, NULL, &v, &n, NULL), CN_EINVAL);
    free(b.data);
}

/* A series of n samples 1, 2, ... at t = 1000, 1001, ... */
static char *long_series(size_t n)
{
    size_t cap = 200 + n * 24, len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    len += (size_t)snprintf(t, cap, "{\"status\":\"success\",\"data\":{\"resultType\":"
                            "\"matrix\",\"result\":[{\"metric\":{},\"values\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "%s[%zu,\"%zu\"]", i ? "," : "", 1000 + i,
                                i + 1);
    snprintf(t + len, cap - len, "]}]}}");
    return t;
}

/* As many samples as Prometheus answers, and not one more. */
static void test_range_limit(void **state)
{
    (void)state;
    char *text = long_series(CN_PROM_MAX_SAMPLES);
    double first = 0;
    size_t n = 0;
    cn_reading r = samples_of(text, strlen(text), 200, &first, &n);
    check_value(&r, CN_PROM_MAX_SAMPLES);
    assert_int_equal(n, CN_PROM_MAX_SAMPLES);
    assert_true(first == 1);
    free(text);
    text = long_series(CN_PROM_MAX_SAMPLES + 1);
    r = samples_of(text, strlen(text), 200, NULL, &n);
    check_exact(&r, CN_READING_ERROR,
                "11001 samples, more than the 11000 canary reads from one series (raise the "
                "step)");
    assert_int_equal(n, 0);
    free(text);
}

static void expect_range_url(const cn_source *src, double start, double end, double step,
                             const char *want)
{
    char *out = NULL, err[256] = "";
    int rc = cn_source_range_url(src, &VARS, start, end, step, &out, err, sizeof err);
    if (rc) {
        print_error("range url: %s\n", err);
        fail();
    }
    assert_string_equal(out, want);
    free(out);
}

static void expect_range_url_error(const cn_source *src, double start, double end, double step,
                                   const char *sub)
{
    char *out = (char *)"x", err[256] = "";
    assert_int_equal(cn_source_range_url(src, &VARS, start, end, step, &out, err, sizeof err),
                     CN_EINVAL);
    assert_null(out);
    if (!strstr(err, sub)) {
        print_error("expected '%s' in '%s'\n", sub, err);
        fail();
    }
}

static void test_range_url(void **state)
{
    (void)state;
    cn_source src = {.kind = CN_SOURCE_PROMETHEUS, .address = "http://prom:9090/",
                     .query = "rate(x{version=\"{{version}}\"}[1m])"};
    expect_range_url(&src, 1764403776, 1764404376, 15,
                     "http://prom:9090/api/v1/query_range?query=rate%28x%7Bversion%3D%22v2.1.0"
                     "%22%7D%5B1m%5D%29&start=1764403776&end=1764404376&step=15");
    /* fractions to the millisecond, no trailing zeros, no exponent */
    src.address = "http://prom-{{service}}:9090";
    src.query = "up";
    expect_range_url(&src, 1764403776.25, 1764403777.5, 0.5,
                     "http://prom-checkout:9090/api/v1/query_range?query=up"
                     "&start=1764403776.25&end=1764403777.5&step=0.5");
    expect_range_url(&src, 0, 0, 1e-3,
                     "http://prom-checkout:9090/api/v1/query_range?query=up&start=0&end=0"
                     "&step=0.001");
    /* 11,000 points: the most; 11,001 would be refused by Prometheus */
    expect_range_url(&src, 1000, 1000 + 10999, 1,
                     "http://prom-checkout:9090/api/v1/query_range?query=up&start=1000"
                     "&end=11999&step=1");
    expect_range_url_error(&src, 1000, 1000 + 11000, 1,
                           "range of 11000 s at step 1 s is 11001 points per series, more "
                           "than the 11000 Prometheus answers; raise the step");
    expect_range_url_error(&src, 2000, 1000, 1, "range [2000, 1000] is not a span of time");
    expect_range_url_error(&src, NAN, 1000, 1, "is not a span of time");
    expect_range_url_error(&src, 0, INFINITY, 1, "is not a span of time");
    expect_range_url_error(&src, 0, 60, 0, "step 0 s must be at least 1 ms");
    expect_range_url_error(&src, 0, 60, -5, "step -5 s must be at least 1 ms");
    expect_range_url_error(&src, 0, 60, NAN, "must be at least 1 ms");
    src.query = NULL;
    expect_range_url_error(&src, 0, 60, 1, "prometheus source has no query");
    src.query = "up{v=\"{{verison}}\"}";
    expect_range_url_error(&src, 0, 60, 1, "unknown template '{{verison}}'");
    cn_source json = {.kind = CN_SOURCE_JSON, .url = "http://j"};
    expect_range_url_error(&json, 0, 60, 1, "a range query needs a prometheus source");
    char *out = NULL, err[64];
    assert_int_equal(cn_source_range_url(NULL, &VARS, 0, 60, 1, &out, err, sizeof err),
                     CN_EINVAL);
}

/* ---- robustness ------------------------------------------------------------------------ */

static const char *const CANNED[] = {
    "prom-good.json",  "prom-scalar.json",      "prom-empty.json",        "prom-nan.json",
    "prom-inf.json",   "prom-string-value.json", "prom-several.json",     "prom-several-nan.json",
    "prom-error.json", "prom-matrix.json",      "prom-truncated.json",    "html-500.html",
    "json-good.json",  "json-null.json",        "json-string.json",       "json-missing.json",
    "json-escaped.json", "prom-range-good.json", "prom-range-empty.json",
    "prom-range-several.json", "prom-range-inf.json", "prom-range-unordered.json",
    "prom-range-no-samples.json",
};
#define CANNED_COUNT (sizeof CANNED / sizeof CANNED[0])

#define WAYS 5

static void parse_all_ways(const char *data, size_t len, cn_reading out[WAYS])
{
    body b = body_of(data, len);
    out[0] = cn_prometheus_reading(CN_REDUCE_NONE, 200, b.data, b.len, NULL);
    out[1] = cn_prometheus_reading(CN_REDUCE_AVG, 200, b.data, b.len, NULL);
    out[2] = cn_json_reading("", 200, b.data, b.len, NULL);
    out[3] = cn_json_reading("/latency/p99", 200, b.data, b.len, NULL);
    free(b.data);
    out[4] = samples_of(data, len, 200, NULL, NULL); /* checks values against the reading */
    for (int i = 0; i < WAYS; i++)
        assert_detail_safe(&out[i]);
}

/* Every prefix of every canned reply: a proper prefix of a JSON object is
 * never JSON, so each must be an error saying so, never a value. */
static void test_every_prefix(void **state)
{
    (void)state;
    for (size_t f = 0; f < CANNED_COUNT; f++) {
        body b = load(CANNED[f]);
        size_t whole = b.len;
        while (whole && (b.data[whole - 1] == '\n' || b.data[whole - 1] == ' '))
            whole--;
        for (size_t len = 0; len <= b.len; len++) {
            cn_reading r[WAYS];
            parse_all_ways(b.data, len, r);
            if (len >= whole && b.data[0] == '{' && strcmp(CANNED[f], "prom-truncated.json"))
                continue;
            for (int i = 0; i < WAYS; i++) {
                if (r[i].kind != CN_READING_ERROR || strncmp(r[i].detail, "reply is ", 9)) {
                    print_error("%s cut at %zu of %zu, parse %d: %s\n", CANNED[f], len, b.len,
                                i, r[i].detail);
                    fail();
                }
            }
        }
        /* behind a failing status, any prefix is the status alone */
        for (size_t len = 0; len <= b.len; len += 7) {
            body p = body_of(b.data, len);
            cn_reading r = cn_prometheus_reading(CN_REDUCE_NONE, 500, p.data, p.len, NULL);
            free(p.data);
            assert_detail_safe(&r);
            assert_int_equal(r.kind, CN_READING_ERROR);
            assert_memory_equal(r.detail, "HTTP 500", 8);
        }
        free(b.data);
    }
}

/* Each byte of each canned reply replaced in turn by bytes that matter to
 * a JSON parser or to UTF-8: nothing may crash, leak or overread (ASan,
 * valgrind), and every detail stays safe to log. */
static void test_mutations(void **state)
{
    (void)state;
    static const char subst[] = {'"', '}', '0', '\\', '\0', (char)0xc3};
    size_t values = 0, total = 0;
    for (size_t f = 0; f < CANNED_COUNT; f++) {
        body b = load(CANNED[f]);
        for (size_t pos = 0; pos < b.len; pos++) {
            char keep = b.data[pos];
            for (size_t s = 0; s < sizeof subst; s++) {
                if (subst[s] == keep)
                    continue;
                b.data[pos] = subst[s];
                cn_reading r[WAYS];
                parse_all_ways(b.data, b.len, r);
                for (int i = 0; i < WAYS; i++)
                    values += r[i].kind == CN_READING_VALUE;
                total += WAYS;
            }
            b.data[pos] = keep;
        }
        free(b.data);
    }
    /* some mutations leave a number readable (a digit changed), most do not */
    assert_true(values > 0 && values < total / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_good),
        cmocka_unit_test(test_prom_scalar),
        cmocka_unit_test(test_prom_empty),
        cmocka_unit_test(test_prom_nan),
        cmocka_unit_test(test_prom_inf),
        cmocka_unit_test(test_prom_string_value),
        cmocka_unit_test(test_prom_several),
        cmocka_unit_test(test_prom_several_nan),
        cmocka_unit_test(test_prom_error),
        cmocka_unit_test(test_prom_matrix),
        cmocka_unit_test(test_html_500),
        cmocka_unit_test(test_prom_truncated),
        cmocka_unit_test(test_oversized_reply),
        cmocka_unit_test(test_json_good),
        cmocka_unit_test(test_json_null),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_json_missing),
        cmocka_unit_test(test_json_escaped),
        cmocka_unit_test(test_json_pointer_edges),
        cmocka_unit_test(test_prom_structure),
        cmocka_unit_test(test_prom_values),
        cmocka_unit_test(test_http_status),
        cmocka_unit_test(test_transport_errors),
        cmocka_unit_test(test_detail_from_server),
        cmocka_unit_test(test_template_expand),
        cmocka_unit_test(test_prometheus_url),
        cmocka_unit_test(test_json_url),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_source_reading),
        cmocka_unit_test(test_range_good),
        cmocka_unit_test(test_range_canned_failures),
        cmocka_unit_test(test_range_structure),
        cmocka_unit_test(test_range_limit),
        cmocka_unit_test(test_range_url),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
