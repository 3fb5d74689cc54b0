/* Strict scalar parsing: the values users write in policies; and the schema
 * layer (cn_load_map) that turns positioned nodes into structs, reporting
 * every problem at its line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h"
#include "canary/status.h"
#include "checks.h"

/* cmocka 1.1.5 only compares floats. */
#define assert_near(actual, expected) \
    assert_near_at((actual), (expected), __FILE__, __LINE__)
static void assert_near_at(double actual, double expected, const char *file,
                           int line)
{
    if (fabs(actual - expected) <= 1e-12 * (1 + fabs(expected)))
        return;
    print_error("%.17g != %.17g\n", actual, expected);
    _fail(file, line);
}

/* Fails unless entry i of d is exactly this message at this position. */
#define assert_diag_n(d, i, line, col, msg) \
    assert_diag_n_at((d), (i), (line), (col), (msg), __FILE__, __LINE__)
static void assert_diag_n_at(const cn_diags *d, size_t i, unsigned line,
                             unsigned col, const char *msg, const char *file,
                             int at)
{
    if (i < d->count && d->items[i].line == line && d->items[i].col == col &&
        !strcmp(d->items[i].message, msg))
        return;
    print_error("expected entry %zu to be %u:%u: %s\ngot:\n", i, line, col, msg);
    cn_test_print_diags(d);
    _fail(file, at);
}

/* ---- scalar text ------------------------------------------------------- */

static void test_durations(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cn_text_duration("200ms", &ms), 0);
    assert_int_equal(ms, 200);
    assert_int_equal(cn_text_duration("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(cn_text_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(cn_text_duration("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(cn_text_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(cn_text_duration("5", &ms), -1);
    assert_int_equal(cn_text_duration("5 m", &ms), -1);
    assert_int_equal(cn_text_duration("", &ms), -1);
    assert_int_equal(cn_text_duration("5d", &ms), -1);
    assert_int_equal(cn_text_duration("-5s", &ms), -1);
    assert_int_equal(cn_text_duration("s", &ms), -1);
}

static void test_durations_more(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"0ms", 0},          {"0s", 0},         {"1ms", 1},
        {"2h", 7200000},     {"1h30m15s", 5415000},
        {"1m1ms", 60001},    /* "m" then "ms", not "m" twice */
        {"1m30s500ms", 90500}, {"0.25s", 250}, {"1.5h", 5400000},
        {"8760h", 8760LL * 3600000}, /* a year is the most */
        {"525600m", 525600LL * 60000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -42;
        if (cn_text_duration(good[i].text, &ms) != 0 || ms != good[i].ms) {
            print_error("'%s': got %lld, expected %lld\n", good[i].text,
                        (long long)ms, (long long)good[i].ms);
            fail();
        }
    }
    static const char *const bad[] = {
        "30s5m", "1m1m", "1s1ms1s", "1.s", ".5s", "1e3s", "1.5", "ms", "1x", "1s ", " 1s", "1m30", "1..5s",
        "1S", "1H", "1sec", "1 s", "+1s", "1,5s", "inf s", "nans", "0x10s",
        "99999999999999999999999999h", "1000000000000000000000000000000000s",
        "1h-5m", "h1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -42;
        if (cn_text_duration(bad[i], &ms) >= 0 || ms != -42) {
            print_error("'%s' accepted as %lld\n", bad[i], (long long)ms);
            fail();
        }
    }
}

static void test_durations_too_long(void **state)
{
    (void)state;
    int64_t ms = -42;
    assert_int_equal(cn_text_duration("8760h", &ms), 0);
    assert_int_equal(cn_text_duration("8761h", &ms), -2); /* over 365 days */
    assert_int_equal(cn_text_duration("1h30m15s500ms", &ms), 0);
    assert_int_equal(ms, 5415500);
    char buf[32];
    cn_format_duration(buf, sizeof buf, 5415000);
    assert_string_equal(buf, "1h30m15s");
    cn_format_duration(buf, sizeof buf, 1500);
    assert_string_equal(buf, "1500ms");
    cn_format_duration(buf, sizeof buf, 240000);
    assert_string_equal(buf, "4m");
    cn_format_duration(buf, sizeof buf, 0);
    assert_string_equal(buf, "0s");
}

static void test_text_number(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double value;
    } good[] = {
        {"1", 1},       {"-2.5", -2.5}, {"1e3", 1000}, {"0.25", 0.25},
        {"+7", 7},      {"0", 0},       {"-0", 0},     {"1E-2", 0.01},
        {"2.5e+2", 250}, {".5", 0.5},   {"5.", 5},     {"007", 7},
        {"1.7976931348623157e308", 1.7976931348623157e308},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = -42;
        if (cn_text_number(good[i].text, &v) != 0) {
            print_error("'%s' rejected\n", good[i].text);
            fail();
        }
        assert_near(v, good[i].value);
    }
    static const char *const bad[] = {
        "12abc", "inf", "nan", "0x10", " 1", "1 ", ".", "1e", "", "+",
        "1e999", "-1e999", "INF", "-inf", "Infinity", "NaN", "1,5", "1_000",
        "--1", "+-1", "1e+", "e5", "1.2.3", "0x1p3", "1e3.5", "\xd9\xa1", "1\n",
        "\t1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = -42;
        if (cn_text_number(bad[i], &v) != -1 || v != -42) {
            print_error("'%s' accepted as %g\n", bad[i], v);
            fail();
        }
    }
}

static void test_text_uint(void **state)
{
    (void)state;
    unsigned u = 7;
    assert_int_equal(cn_text_uint("0", &u), 0);
    assert_int_equal(u, 0);
    assert_int_equal(cn_text_uint("42", &u), 0);
    assert_int_equal(u, 42);
    assert_int_equal(cn_text_uint("4294967295", &u), 0);
    assert_int_equal(u, 4294967295u);
    assert_int_equal(cn_text_uint("0042", &u), 0);
    assert_int_equal(u, 42);
    static const char *const bad[] = {
        "-1", "1.0", "4294967296", "", "+1", " 1", "1 ", "1e3", "0x10",
        "99999999999999999999999", "18446744073709551616", "abc", "-0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u = 7;
        if (cn_text_uint(bad[i], &u) != -1 || u != 7) {
            print_error("'%s' accepted as %u\n", bad[i], u);
            fail();
        }
    }
}

static void test_text_percent(void **state)
{
    (void)state;
    double f = -42;
    assert_int_equal(cn_text_percent("0.1%", &f), 0);
    assert_near(f, 0.001);
    assert_int_equal(cn_text_percent("100%", &f), 0);
    assert_near(f, 1);
    assert_int_equal(cn_text_percent("0%", &f), 0);
    assert_near(f, 0);
    assert_int_equal(cn_text_percent("12.5%", &f), 0);
    assert_near(f, 0.125);
    static const char *const bad[] = {
        "5", "%", "5 %", "abc%", "", "5%%", "%5", "inf%", "nan%", " 5%",
        "5% ", "0x10%", "1e999%",
        /* longer than any percentage written by hand */
        "0.0000000000000000000000000000000000000000000000000000000000001%",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = -42;
        if (cn_text_percent(bad[i], &f) != -1 || f != -42) {
            print_error("'%s' accepted as %g\n", bad[i], f);
            fail();
        }
    }
}

static void test_suggest(void **state)
{
    (void)state;
    static const char *const keys[] = {"interval", "threshold", "name", "mode"};
    assert_string_equal(cn_suggest("intervall", keys, 4), "interval");
    assert_string_equal(cn_suggest("treshold", keys, 4), "threshold");
    assert_string_equal(cn_suggest("thresold", keys, 4), "threshold");
    assert_string_equal(cn_suggest("NAME", keys, 4), "name"); /* case */
    assert_string_equal(cn_suggest("nme", keys, 4), "name");
    assert_string_equal(cn_suggest("mdoe", keys, 4), "mode");
    assert_null(cn_suggest("zzzzzz", keys, 4));
    assert_null(cn_suggest("replicas", keys, 4));
    assert_null(cn_suggest("xy", keys, 4));
    assert_null(cn_suggest("interval", keys, 0));
    /* short words allow one edit, up to 8 letters two, longer three */
    static const char *const c[] = {"abcdefghijkl"};
    assert_string_equal(cn_suggest("abcdefghixxx", c, 1), "abcdefghijkl");
    assert_null(cn_suggest("abcdefgxxxxx", c, 1));
    static const char *const ab[] = {"ab"};
    assert_string_equal(cn_suggest("ax", ab, 1), "ab");
    assert_null(cn_suggest("xy", ab, 1));
    /* over 64 characters: no suggestion rather than a slow one */
    char longword[80];
    memset(longword, 'a', 79);
    longword[79] = '\0';
    const char *lc[] = {longword};
    assert_null(cn_suggest(longword, lc, 1));
}

/* ---- the schema layer ----------------------------------------------------- */

typedef struct sub_conf {
    double weight;
    bool on;
} sub_conf;

typedef struct conf {
    const char *name;
    double ratio;
    unsigned replicas;
    bool enabled;
    double error_rate;
    double quantity;
    int64_t interval;
    int mode;
    cn_strings tags;
    sub_conf nested;
    double score;
} conf;

static const char *const modes[] = {"canary", "bluegreen", "rolling", NULL};

static const cn_field sub_fields[] = {
    {.key = "weight", .parse = cn_parse_number,
     .offset = offsetof(sub_conf, weight), .flags = CN_REQUIRED},
    {.key = "on", .parse = cn_parse_bool, .offset = offsetof(sub_conf, on)},
};
static const cn_schema sub_schema = CN_SCHEMA("nested", sub_fields);

enum {
    B_NAME = 1 << 0, B_RATIO = 1 << 1, B_REPLICAS = 1 << 2, B_ENABLED = 1 << 3,
    B_ERROR_RATE = 1 << 4, B_QUANTITY = 1 << 5, B_INTERVAL = 1 << 6,
    B_MODE = 1 << 7, B_TAGS = 1 << 8, B_NESTED = 1 << 9, B_SCORE = 1 << 10
};
static const cn_field conf_fields[] = {
    {.key = "name", .parse = cn_parse_string, .offset = offsetof(conf, name),
     .flags = CN_REQUIRED},
    {.key = "ratio", .parse = cn_parse_number, .offset = offsetof(conf, ratio),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 0, .max = 1},
    {.key = "replicas", .parse = cn_parse_uint, .offset = offsetof(conf, replicas),
     .flags = CN_MIN | CN_MAX, .min = 1, .max = 100},
    {.key = "enabled", .parse = cn_parse_bool, .offset = offsetof(conf, enabled)},
    {.key = "error_rate", .parse = cn_parse_percent,
     .offset = offsetof(conf, error_rate), .flags = CN_MAX, .max = 0.5},
    {.key = "quantity", .parse = cn_parse_quantity,
     .offset = offsetof(conf, quantity)},
    {.key = "interval", .parse = cn_parse_duration,
     .offset = offsetof(conf, interval), .flags = CN_MIN | CN_MAX, .min = 1000,
     .max = 3600000},
    {.key = "mode", .parse = cn_parse_enum, .offset = offsetof(conf, mode),
     .choices = modes},
    {.key = "tags", .parse = cn_parse_strings, .offset = offsetof(conf, tags)},
    {.key = "nested", .parse = cn_parse_map, .offset = offsetof(conf, nested),
     .sub = &sub_schema},
    {.key = "score", .parse = cn_parse_number, .offset = offsetof(conf, score),
     .flags = CN_MIN, .min = 0},
};
static const cn_schema conf_schema = CN_SCHEMA("conf", conf_fields);

static const conf defaults = {
    .name = "default", .ratio = 0.5, .replicas = 2, .enabled = true,
    .error_rate = 0.01, .quantity = 9, .interval = 30000, .mode = 0,
    .nested = {.weight = 1, .on = false}, .score = 5,
};

typedef struct fixture {
    cn_doc doc;
    cn_diags d;
    cn_arena arena;
    cn_loader ld;
    conf c;
    uint64_t present;
} fixture;

/* Parses text as f.yaml (it must parse) and readies a loader. */
static void load_doc(fixture *fx, const char *text)
{
    cn_diags_init(&fx->d);
    cn_arena_init(&fx->arena, 0);
    if (cn_doc_load_buffer(&fx->doc, "f.yaml", text, strlen(text), &fx->d)) {
        cn_test_print_diags(&fx->d);
        fail_msg("document did not parse");
    }
    cn_loader_init(&fx->ld, "f.yaml", &fx->d, &fx->arena);
    fx->c = defaults;
    fx->present = 0;
}

/* Loads the root of text into fx->c, which starts as the defaults; schema
 * problems go to fx->d. */
static void load(fixture *fx, const char *text)
{
    load_doc(fx, text);
    fx->present = cn_load_map(&fx->ld, fx->doc.root, &conf_schema, &fx->c);
}

static void done(fixture *fx)
{
    cn_doc_free(&fx->doc);
    cn_arena_free(&fx->arena);
    cn_diags_free(&fx->d);
}

/* Loads text and fails unless it gives exactly one problem, this one. */
static void expect_one(const char *text, unsigned line, unsigned col,
                       const char *msg)
{
    fixture fx;
    load(&fx, text);
    if (fx.d.count != 1 || fx.ld.errors != 1) {
        print_error("for:\n%s", text);
        cn_test_print_diags(&fx.d);
        fail_msg("expected exactly one problem, got %zu (%u errors)",
                 fx.d.count, fx.ld.errors);
    }
    assert_diag_n(&fx.d, 0, line, col, msg);
    done(&fx);
}

static char *print_to_string(const cn_diags *d)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    assert_non_null(f);
    cn_diags_print(d, f);
    assert_int_equal(fclose(f), 0);
    return out;
}

static void test_load_map_valid(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\n"
              "ratio: 1\n"
              "replicas: 3\n"
              "enabled: false\n"
              "error_rate: 0.1%\n"
              "quantity: 25%\n"
              "interval: 1m30s\n"
              "mode: rolling\n"
              "tags: [a, \"b c\", 'd']\n"
              "nested: {weight: 2.5, on: true}\n"
              "score: 0\n");
    cn_test_print_diags(&fx.d);
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.ld.errors, 0);
    assert_int_equal(fx.present, 0x7ff);
    /* strings live in the loader's arena, not the document's */
    cn_doc_free(&fx.doc);
    assert_string_equal(fx.c.name, "web");
    assert_near(fx.c.ratio, 1); /* CN_MAX is inclusive */
    assert_int_equal(fx.c.replicas, 3);
    assert_false(fx.c.enabled);
    assert_near(fx.c.error_rate, 0.001);
    assert_near(fx.c.quantity, 0.25);
    assert_int_equal(fx.c.interval, 90000);
    assert_int_equal(fx.c.mode, 2);
    assert_int_equal(fx.c.tags.count, 3);
    assert_string_equal(fx.c.tags.items[0], "a");
    assert_string_equal(fx.c.tags.items[1], "b c");
    assert_string_equal(fx.c.tags.items[2], "d");
    assert_near(fx.c.nested.weight, 2.5);
    assert_true(fx.c.nested.on);
    assert_near(fx.c.score, 0); /* CN_MIN alone is inclusive */
    done(&fx);
}

/* Absent fields keep the caller's defaults; the bitmask tells which were
 * present. Block style, flow style and JSON load alike. */
static void test_load_map_defaults_and_presence(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\nquantity: 3\n");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.present, B_NAME | B_QUANTITY);
    assert_near(fx.c.quantity, 3); /* a plain number stays a number */
    done(&fx);
    /* JSON can only write a percentage quoted, and it is unambiguous */
    load(&fx, "{\"name\": \"web\", \"quantity\": \"1.5%\"}\n");
    assert_int_equal(fx.ld.errors, 0);
    assert_near(fx.c.quantity, 0.015);
    assert_near(fx.c.ratio, defaults.ratio);
    assert_int_equal(fx.c.replicas, defaults.replicas);
    assert_true(fx.c.enabled);
    assert_int_equal(fx.c.interval, defaults.interval);
    assert_null(fx.c.tags.items);
    assert_near(fx.c.nested.weight, 1);
    done(&fx);

    /* (a leading comment: a file starting with '{' is read as JSON) */
    load(&fx, "# flow\n{name: web, nested: {weight: 4}, mode: bluegreen}");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.present, B_NAME | B_NESTED | B_MODE);
    assert_int_equal(fx.c.mode, 1);
    assert_near(fx.c.nested.weight, 4);
    assert_false(fx.c.nested.on); /* the nested default */
    done(&fx);

    load(&fx, "{\"name\": \"api\", \"replicas\": 100, \"enabled\": true,"
              " \"tags\": []}");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.present, B_NAME | B_REPLICAS | B_ENABLED | B_TAGS);
    assert_string_equal(fx.c.name, "api");
    assert_int_equal(fx.c.replicas, 100);
    assert_int_equal(fx.c.tags.count, 0);
    assert_non_null(fx.c.tags.items);
    done(&fx);

    /* a quoted enum name or duration is still that name or duration */
    load(&fx, "name: '42'\nmode: \"canary\"\ninterval: '2s'\nerror_rate: \"5%\"\n");
    assert_int_equal(fx.d.count, 0);
    assert_string_equal(fx.c.name, "42");
    assert_int_equal(fx.c.mode, 0);
    assert_int_equal(fx.c.interval, 2000);
    assert_near(fx.c.error_rate, 0.05);
    done(&fx);
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_one("name: web\nintervall: 30s\n", 2, 1,
               "unknown key 'intervall' in conf (did you mean 'interval'?)");
    expect_one("name: web\nzzzzzz: 1\n", 2, 1, "unknown key 'zzzzzz' in conf");
    expect_one("name: web\nnested: {weight: 1, wieght: 2}\n", 2, 21,
               "unknown key 'wieght' in nested (did you mean 'weight'?)");
    /* keys are exact: no case folding, only the hint */
    expect_one("name: web\nNested: ~\n", 2, 1,
               "unknown key 'Nested' in conf (did you mean 'nested'?)");
    /* an unknown key is reported and the rest still loaded */
    fixture fx;
    load(&fx, "name: web\n"
              "nested:\n"
              "  weight: 1\n"
              "  colour: red\n"
              "replicas: 7\n");
    assert_int_equal(fx.d.count, 1);
    assert_diag_n(&fx.d, 0, 4, 3, "unknown key 'colour' in nested");
    assert_int_equal(fx.c.replicas, 7);
    assert_int_equal(fx.present, B_NAME | B_NESTED | B_REPLICAS);
    done(&fx);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\nreplicas: 2\nname: api\n");
    assert_int_equal(fx.d.count, 1);
    assert_diag_n(&fx.d, 0, 3, 1, "key 'name' appears twice in conf");
    assert_string_equal(fx.c.name, "web"); /* the first one counts */
    assert_int_equal(fx.present, B_NAME | B_REPLICAS);
    done(&fx);
    expect_one("name: web\nnested: {weight: 1, weight: 2}\n", 2, 21,
               "key 'weight' appears twice in nested");
}

static void test_required_key(void **state)
{
    (void)state;
    /* at the map, since the key is nowhere */
    expect_one("replicas: 2\n", 1, 1, "conf is missing the required key 'name'");
    expect_one("name: web\nnested:\n  on: true\n", 3, 3,
               "nested is missing the required key 'weight'");
    /* a null nested map is an empty one, reported at the null */
    expect_one("name: web\nnested: ~\n", 2, 9,
               "nested is missing the required key 'weight'");
    /* absent nested map: not required, nothing to say */
    fixture fx;
    load(&fx, "name: web\n");
    assert_int_equal(fx.d.count, 0);
    done(&fx);

    /* no node at all: about the whole file */
    cn_diags d;
    cn_arena arena;
    cn_loader ld;
    cn_diags_init(&d);
    cn_arena_init(&arena, 0);
    cn_loader_init(&ld, "f.yaml", &d, &arena);
    conf c = defaults;
    assert_int_equal(cn_load_map(&ld, NULL, &conf_schema, &c), 0);
    assert_int_equal(ld.errors, 1);
    assert_diag_n(&d, 0, 0, 0, "conf is missing the required key 'name'");
    char *out = print_to_string(&d);
    assert_string_equal(out, "f.yaml: conf is missing the required key 'name'\n");
    free(out);
    cn_arena_free(&arena);
    cn_diags_free(&d);
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned line, col;
        const char *message;
    } cases[] = {
        {"name: web\nratio: [1]\n", 2, 8, "'ratio' expects a number, got a list"},
        {"name: web\nratio: {a: 1}\n", 2, 8, "'ratio' expects a number, got a map"},
        {"name: web\nratio: ~\n", 2, 8, "'ratio' expects a number, got nothing (null)"},
        {"name: web\nratio: \"0.5\"\n", 2, 8,
         "'ratio' expects a number, got the quoted string '0.5' (remove the quotes)"},
        {"name: web\nratio: half\n", 2, 8, "'ratio' expects a number, got 'half'"},
        {"name: web\nratio: .inf\n", 2, 8, "'ratio' expects a number, got '.inf'"},
        {"name: web\nenabled: yes\n", 2, 10, "'enabled' expects true or false, got 'yes'"},
        {"name: web\nenabled: True\n", 2, 10, "'enabled' expects true or false, got 'True'"},
        {"name: web\nenabled: \"true\"\n", 2, 10,
         "'enabled' expects true or false, got 'true'"},
        {"name: web\nenabled: 1\n", 2, 10, "'enabled' expects true or false, got '1'"},
        {"name: web\nreplicas: \"12\"\n", 2, 11,
         "'replicas' expects a whole number, got the quoted string '12' (remove the quotes)"},
        {"name: web\nreplicas: 2.5\n", 2, 11,
         "'replicas' expects a whole number, got '2.5'"},
        {"name: web\nreplicas: -1\n", 2, 11,
         "'replicas' expects a whole number, got '-1'"},
        {"name: web\nreplicas: {a: 1}\n", 2, 11,
         "'replicas' expects a whole number, got a map"},
        {"name: web\nerror_rate: 5\n", 2, 13,
         "'error_rate' expects a percentage with a % sign, got '5' (write '5%' "
         "for 5 percent)"},
        {"name: web\nerror_rate: five%\n", 2, 13,
         "'error_rate' expects a percentage such as 5%, got 'five%'"},
        {"name: web\nerror_rate: [5%]\n", 2, 13,
         "'error_rate' expects a percentage such as 5%, got a list"},
        {"name: web\nquantity: \"5\"\n", 2, 11,
         "'quantity' expects a number or a percentage, got the quoted string '5' "
         "(remove the quotes)"},
        {"name: web\nquantity: 5 %\n", 2, 11,
         "'quantity' expects a number or a percentage, got '5 %'"},
        {"name: web\ninterval: 30\n", 2, 11,
         "'interval' expects a duration with a unit (ms, s, m, h), got '30' "
         "(write '30s' for seconds)"},
        {"name: web\ninterval: soon\n", 2, 11,
         "'interval' expects a duration such as 200ms, 30s, 5m, 1h or 1h30m (largest unit first), got 'soon'"},
        {"name: web\ninterval:\n", 2, 10,
         "'interval' expects a duration such as 30s, got nothing (null)"},
        {"name:\n", 1, 6, "'name' expects a string, got nothing (null)"},
        {"name: [web]\n", 1, 7, "'name' expects a string, got a list"},
        {"name: \"a\\0b\"\n", 1, 7, "'name' contains a NUL character"},
        {"name: web\nmode: [canary]\n", 2, 7,
         "'mode' expects one of the listed names, got a list"},
        {"name: web\ntags: a\n", 2, 7, "'tags' expects a list of strings, got a scalar"},
        {"name: web\ntags:\n", 2, 6,
         "'tags' expects a list of strings, got nothing (null)"},
        {"name: web\ntags: [a, \"x\\0y\"]\n", 2, 11, "'tags' contains a NUL character"},
        {"name: web\nnested: 5\n", 2, 9, "nested must be a map of keys, got a scalar"},
        {"name: web\nnested: [weight]\n", 2, 9, "nested must be a map of keys, got a list"},
        {"name: web\n[a]: 1\n", 2, 1, "keys in conf must be plain names, got a list"},
        {"name: web\n{a: 1}: 1\n", 2, 1, "keys in conf must be plain names, got a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture fx;
        load(&fx, cases[i].text);
        if (fx.d.count != 1 || fx.ld.errors != 1 ||
            fx.d.items[0].line != cases[i].line ||
            fx.d.items[0].col != cases[i].col ||
            strcmp(fx.d.items[0].message, cases[i].message)) {
            print_error("case %zu:\n%sexpected %u:%u: %s\ngot:\n", i,
                        cases[i].text, cases[i].line, cases[i].col,
                        cases[i].message);
            cn_test_print_diags(&fx.d);
            fail();
        }
        /* a rejected value leaves the default in place */
        assert_near(fx.c.ratio, defaults.ratio);
        assert_int_equal(fx.c.replicas, defaults.replicas);
        assert_true(fx.c.enabled);
        assert_int_equal(fx.c.interval, defaults.interval);
        assert_near(fx.c.error_rate, defaults.error_rate);
        done(&fx);
    }
}

static void test_ranges(void **state)
{
    (void)state;
    expect_one("name: web\nratio: 0\n", 2, 8, "'ratio' must be greater than 0, got '0'");
    expect_one("name: web\nratio: -0.5\n", 2, 8,
               "'ratio' must be greater than 0, got '-0.5'");
    expect_one("name: web\nratio: 1.5\n", 2, 8, "'ratio' must be at most 1, got '1.5'");
    expect_one("name: web\nreplicas: 0\n", 2, 11,
               "'replicas' must be at least 1, got '0'");
    expect_one("name: web\nreplicas: 101\n", 2, 11,
               "'replicas' must be at most 100, got '101'");
    expect_one("name: web\nscore: -0.1\n", 2, 8, "'score' must be at least 0, got '-0.1'");
    /* bounds in the units the file uses, not the stored fraction or ms */
    expect_one("name: web\nerror_rate: 60%\n", 2, 13,
               "'error_rate' must be at most 50%, got '60%'");
    expect_one("name: web\ninterval: 500ms\n", 2, 11,
               "'interval' must be at least 1s, got '500ms'");
    expect_one("name: web\ninterval: 1h1ms\n", 2, 11,
               "'interval' must be at most 1h, got '1h1ms'");

    /* the edges themselves are allowed, and stored */
    fixture fx;
    load(&fx, "name: web\nratio: 0.000001\nreplicas: 1\nerror_rate: 50%\n"
              "interval: 1s\nscore: 0\n");
    assert_int_equal(fx.d.count, 0);
    assert_near(fx.c.ratio, 0.000001);
    assert_int_equal(fx.c.replicas, 1);
    assert_near(fx.c.error_rate, 0.5);
    assert_int_equal(fx.c.interval, 1000);
    done(&fx);
    load(&fx, "name: web\ninterval: 60m\n");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.c.interval, 3600000);
    done(&fx);
}

/* One call reports every problem, in file order, and prints them as
 * FILE:LINE:COLUMN: message. */
static void test_many_errors_one_call(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\n"
              "ratio: [1]\n"
              "enabled: yes\n"
              "replicas: \"12\"\n"
              "error_rate: 5\n"
              "interval: 30\n"
              "intervall: 30s\n"
              "name: api\n"
              "mode: canery\n"
              "nested: {on: maybe}\n");
    assert_int_equal(cn_diags_total(&fx.d), 10);
    assert_int_equal(fx.ld.errors, 10);
    assert_int_equal(fx.present, B_NAME | B_RATIO | B_ENABLED | B_REPLICAS |
                                     B_ERROR_RATE | B_INTERVAL | B_MODE | B_NESTED);
    char *out = print_to_string(&fx.d);
    assert_string_equal(
        out,
        "f.yaml:2:8: 'ratio' expects a number, got a list\n"
        "f.yaml:3:10: 'enabled' expects true or false, got 'yes'\n"
        "f.yaml:4:11: 'replicas' expects a whole number, got the quoted string '12' "
        "(remove the quotes)\n"
        "f.yaml:5:13: 'error_rate' expects a percentage with a % sign, got '5' "
        "(write '5%' for 5 percent)\n"
        "f.yaml:6:11: 'interval' expects a duration with a unit (ms, s, m, h), "
        "got '30' (write '30s' for seconds)\n"
        "f.yaml:7:1: unknown key 'intervall' in conf (did you mean 'interval'?)\n"
        "f.yaml:8:1: key 'name' appears twice in conf\n"
        "f.yaml:9:7: 'mode' must be one of 'canary', 'bluegreen', 'rolling', got "
        "'canery' (did you mean 'canary'?)\n"
        "f.yaml:10:9: nested is missing the required key 'weight'\n"
        "f.yaml:10:14: 'on' expects true or false, got 'maybe'\n");
    free(out);
    done(&fx);
}

/* More problems than CN_DIAGS_MAX: the first are kept, the rest counted,
 * and the printout says how many were left out. */
static void test_diags_cap(void **state)
{
    (void)state;
    size_t cap = 300 * 16 + 32;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t at = (size_t)snprintf(text, cap, "name: web\n");
    for (int i = 0; i < 250; i++)
        at += (size_t)snprintf(text + at, cap - at, "unknown%d: 1\n", i);
    fixture fx;
    load(&fx, text);
    assert_int_equal(fx.ld.errors, 250);
    assert_int_equal(fx.d.count, CN_DIAGS_MAX);
    assert_int_equal(fx.d.dropped, 50);
    assert_int_equal(cn_diags_total(&fx.d), 250);
    char *out = print_to_string(&fx.d);
    const char *head = "f.yaml:2:1: unknown key 'unknown0' in conf\n";
    assert_int_equal(strncmp(out, head, strlen(head)), 0);
    const char *tail = "f.yaml:201:1: unknown key 'unknown199' in conf\n"
                       "canary: 50 more problems not shown\n";
    assert_string_equal(out + strlen(out) - strlen(tail), tail);
    free(out);
    done(&fx);
    free(text);
}

static void test_enum(void **state)
{
    (void)state;
    expect_one("name: web\nmode: canery\n", 2, 7,
               "'mode' must be one of 'canary', 'bluegreen', 'rolling', got "
               "'canery' (did you mean 'canary'?)");
    expect_one("name: web\nmode: blue-green\n", 2, 7,
               "'mode' must be one of 'canary', 'bluegreen', 'rolling', got "
               "'blue-green' (did you mean 'bluegreen'?)");
    expect_one("name: web\nmode: big-bang\n", 2, 7,
               "'mode' must be one of 'canary', 'bluegreen', 'rolling', got "
               "'big-bang'");
    expect_one("name: web\nmode: Canary\n", 2, 7,
               "'mode' must be one of 'canary', 'bluegreen', 'rolling', got "
               "'Canary' (did you mean 'canary'?)");
    expect_one("name: web\nmode: ~\n", 2, 7,
               "'mode' expects one of the listed names, got nothing (null)");
    fixture fx;
    load(&fx, "name: web\nmode: rolling\n");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.c.mode, 2);
    done(&fx);
}

static void test_strings(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\ntags:\n  - one\n  - \"two words\"\n  - 3\n  - ''\n");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.c.tags.count, 4);
    assert_string_equal(fx.c.tags.items[0], "one");
    assert_string_equal(fx.c.tags.items[1], "two words");
    assert_string_equal(fx.c.tags.items[2], "3");
    assert_string_equal(fx.c.tags.items[3], "");
    assert_null(fx.c.tags.items[4]); /* one spare slot, zeroed */
    done(&fx);

    /* every bad item is reported; the good ones are kept */
    load(&fx, "name: web\ntags: [a, [b], ~, c, {d: 1}]\n");
    assert_int_equal(fx.d.count, 3);
    assert_diag_n(&fx.d, 0, 2, 11, "'tags' expects a list of strings, got a list");
    assert_diag_n(&fx.d, 1, 2, 16,
                  "'tags' expects a list of strings, got nothing (null)");
    assert_diag_n(&fx.d, 2, 2, 22, "'tags' expects a list of strings, got a map");
    assert_int_equal(fx.c.tags.count, 2);
    assert_string_equal(fx.c.tags.items[0], "a");
    assert_string_equal(fx.c.tags.items[1], "c");
    done(&fx);
}

static void test_nested_map(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "name: web\n"
              "nested:\n"
              "  weight: 7.5\n"
              "  on: true\n");
    assert_int_equal(fx.d.count, 0);
    assert_int_equal(fx.present, B_NAME | B_NESTED);
    assert_near(fx.c.nested.weight, 7.5);
    assert_true(fx.c.nested.on);
    done(&fx);

    /* the nested loader's problems carry their own positions; the field
     * parser reports failure */
    load(&fx, "name: web\n"
              "nested:\n"
              "  weight: heavy\n"
              "  on: true\n");
    assert_int_equal(fx.d.count, 1);
    assert_diag_n(&fx.d, 0, 3, 11, "'weight' expects a number, got 'heavy'");
    assert_true(fx.c.nested.on); /* the rest of the nested map loaded */
    const cn_node *nested = cn_node_get(fx.doc.root, "nested");
    sub_conf s = {0};
    unsigned before = fx.ld.errors;
    assert_int_equal(cn_parse_map(&fx.ld, nested, &conf_fields[9], &s), -1);
    assert_int_equal(fx.ld.errors, before + 1);
    done(&fx);

    load(&fx, "name: web\nnested: {weight: 3}\n");
    sub_conf s2 = {0};
    assert_int_equal(cn_parse_map(&fx.ld, cn_node_get(fx.doc.root, "nested"),
                                  &conf_fields[9], &s2),
                     0);
    assert_near(s2.weight, 3);
    done(&fx);
}

/* The root itself must be a map. */
static void test_root_not_a_map(void **state)
{
    (void)state;
    fixture fx;
    load(&fx, "- name\n- web\n");
    assert_int_equal(fx.present, 0);
    assert_int_equal(fx.d.count, 1);
    assert_diag_n(&fx.d, 0, 1, 1, "conf must be a map of keys, got a list");
    done(&fx);
    load(&fx, "just words\n");
    assert_diag_n(&fx.d, 0, 1, 1, "conf must be a map of keys, got a scalar");
    done(&fx);
}

/* The field parsers return 0 or -1 and report through the loader. */
static void test_parser_returns(void **state)
{
    (void)state;
    fixture fx;
    load_doc(&fx, "name: web\nn: 12\nq: \"12\"\nd: 5m\np: 1%\nb: false\n");
    const cn_node *r = fx.doc.root;
    double x = 0;
    assert_int_equal(cn_parse_number(&fx.ld, cn_node_get(r, "n"), &conf_fields[1],
                                     &x),
                     -1); /* 12 > max 1 */
    assert_int_equal(cn_parse_number(&fx.ld, cn_node_get(r, "n"),
                                     &conf_fields[10], &x),
                     0);
    assert_near(x, 12);
    assert_int_equal(cn_parse_number(&fx.ld, cn_node_get(r, "q"),
                                     &conf_fields[10], &x),
                     -1);
    assert_near(x, 12); /* untouched on failure */
    unsigned u = 0;
    assert_int_equal(cn_parse_uint(&fx.ld, cn_node_get(r, "n"), &conf_fields[2], &u),
                     0);
    assert_int_equal(u, 12);
    int64_t ms = 0;
    assert_int_equal(cn_parse_duration(&fx.ld, cn_node_get(r, "d"), &conf_fields[6],
                                       &ms),
                     0);
    assert_int_equal(ms, 300000);
    double p = 0;
    assert_int_equal(cn_parse_percent(&fx.ld, cn_node_get(r, "p"), &conf_fields[4],
                                      &p),
                     0);
    assert_near(p, 0.01);
    assert_int_equal(cn_parse_quantity(&fx.ld, cn_node_get(r, "n"), &conf_fields[5],
                                       &p),
                     0);
    assert_near(p, 12);
    bool b = true;
    assert_int_equal(cn_parse_bool(&fx.ld, cn_node_get(r, "b"), &conf_fields[3], &b),
                     0);
    assert_false(b);
    const char *s = NULL;
    assert_int_equal(cn_parse_string(&fx.ld, cn_node_get(r, "q"), &conf_fields[0],
                                     &s),
                     0);
    assert_string_equal(s, "12");
    assert_int_equal(fx.ld.errors, 2);
    assert_int_equal(fx.d.count, 2);
    assert_diag_n(&fx.d, 0, 2, 4, "'ratio' must be at most 1, got '12'");
    assert_diag_n(&fx.d, 1, 3, 4, "'score' expects a number, got the quoted string '12' (remove the quotes)");

    /* the helpers on their own */
    cn_loader_error(&fx.ld, NULL, "about the file %d", 1);
    assert_diag_n(&fx.d, 2, 0, 0, "about the file 1");
    static const char *const cands[] = {"alpha", "beta"};
    cn_unknown_key(&fx.ld, cn_node_get(r, "n"), "thing", cands, 2);
    assert_diag_n(&fx.d, 3, 2, 4, "unknown key '12' in thing");
    assert_true(cn_expect_scalar(&fx.ld, r, "root", "a word"));
    assert_diag_n(&fx.d, 4, 1, 1, "'root' expects a word, got a map");
    assert_false(cn_expect_scalar(&fx.ld, cn_node_get(r, "n"), "n", "a word"));
    assert_int_equal(fx.ld.errors, 5);
    done(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_durations_more),
        cmocka_unit_test(test_durations_too_long),
        cmocka_unit_test(test_text_number),
        cmocka_unit_test(test_text_uint),
        cmocka_unit_test(test_text_percent),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_load_map_valid),
        cmocka_unit_test(test_load_map_defaults_and_presence),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_required_key),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_many_errors_one_call),
        cmocka_unit_test(test_diags_cap),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_nested_map),
        cmocka_unit_test(test_root_not_a_map),
        cmocka_unit_test(test_parser_returns),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
