/* The topology loader (every error at its line and column) and reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "canary/topology.h"
#include "proc.h"

/* cmocka 1.1.5 only compares floats; reach needs doubles. */
#define assert_near(actual, expected) \
    assert_near_at((actual), (expected), __FILE__, __LINE__)
static void assert_near_at(double actual, double expected, const char *file,
                           int line)
{
    if (fabs(actual - expected) <= 1e-9)
        return;
    print_error("%.17g != %.17g\n", actual, expected);
    _fail(file, line);
}

static void print_diags(const cn_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        print_error("  %u:%u: %s\n", d->items[i].line, d->items[i].col,
                    d->items[i].message);
}

/* Fails unless d holds exactly this message at exactly this position. */
#define assert_diag(d, line, col, msg) \
    assert_diag_at((d), (line), (col), (msg), __FILE__, __LINE__)
static void assert_diag_at(const cn_diags *d, unsigned line, unsigned col,
                           const char *msg, const char *file, int at)
{
    for (size_t i = 0; i < d->count; i++)
        if (d->items[i].line == line && d->items[i].col == col &&
            !strcmp(d->items[i].message, msg))
            return;
    print_error("expected %u:%u: %s\ngot:\n", line, col, msg);
    print_diags(d);
    _fail(file, at);
}

/* Loads YAML or JSON text the way cn_topology_load() loads a file. */
static int load_text(cn_topology *t, cn_diags *d, const char *text)
{
    cn_doc doc;
    int rc = cn_doc_load_buffer(&doc, "topo.yaml", text, strlen(text), d);
    int trc = cn_topology_load_doc(t, &doc, d);
    cn_doc_free(&doc);
    return rc ? rc : trc;
}

#define load_ok(t, d, text) load_ok_at((t), (d), (text), __FILE__, __LINE__)
static void load_ok_at(cn_topology *t, cn_diags *d, const char *text,
                       const char *file, int at)
{
    cn_diags_init(d);
    int rc = load_text(t, d, text);
    if (rc == CN_OK && d->count == 0)
        return;
    print_error("load returned %d with:\n", rc);
    print_diags(d);
    _fail(file, at);
}

static double reach_of(const cn_topology *t, const char *name)
{
    long i = cn_topology_find(t, name);
    if (i < 0)
        fail_msg("no service '%s'", name);
    double r = -1;
    assert_int_equal(cn_topology_reach(t, (size_t)i, &r), CN_OK);
    return r;
}

static const cn_service *service(const cn_topology *t, const char *name)
{
    long i = cn_topology_find(t, name);
    if (i < 0)
        fail_msg("no service '%s'", name);
    return &t->services[i];
}

static void done(cn_topology *t, cn_diags *d)
{
    cn_topology_free(t);
    cn_diags_free(d);
}

/* ---- loading ------------------------------------------------------------ */

static void test_design_example(void **state)
{
    (void)state;
    const char *path = cn_test_src("tests/data/topology/design.yaml");
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(cn_topology_load(&t, path, &d), CN_OK);
    assert_int_equal(d.count, 0);
    assert_string_equal(t.file, path);
    assert_int_equal(t.count, 5);

    const cn_service *web = service(&t, "web");
    assert_true(web->entry);
    assert_near(web->traffic, 0.7);
    assert_int_equal(web->tier, -1);
    assert_null(web->fleet_unit);
    assert_int_equal(web->fleet_count, 0);
    assert_int_equal(web->line, 4);
    assert_int_equal(web->col, 3);
    /* Both names are defined further down the file. */
    assert_int_equal(web->dep_count, 2);
    assert_string_equal(t.services[web->deps[0].to].name, "checkout");
    assert_near(web->deps[0].fraction, 0.2);
    assert_string_equal(t.services[web->deps[1].to].name, "search");
    assert_near(web->deps[1].fraction, 0.6);

    const cn_service *mobile = service(&t, "mobile");
    assert_true(mobile->entry);
    assert_near(mobile->traffic, 0.3);
    assert_int_equal(mobile->dep_count, 1);
    assert_near(mobile->deps[0].fraction, 1.0);

    const cn_service *checkout = service(&t, "checkout");
    assert_false(checkout->entry);
    assert_int_equal(checkout->tier, 0);
    assert_string_equal(checkout->fleet_unit, "host");
    assert_int_equal(checkout->fleet_count, 200);
    assert_int_equal(checkout->line, 6);

    const cn_service *payments = service(&t, "payments");
    assert_string_equal(payments->fleet_unit, "cell");
    assert_int_equal(payments->fleet_count, 12);
    assert_int_equal(payments->dep_count, 0);
    assert_int_equal(service(&t, "search")->tier, 2);

    assert_near(reach_of(&t, "web"), 0.7);
    assert_near(reach_of(&t, "mobile"), 0.3);
    assert_near(reach_of(&t, "checkout"), 0.7 * 0.2 + 0.3 * 1); /* 0.44 */
    assert_near(reach_of(&t, "payments"), 0.44);
    assert_near(reach_of(&t, "search"), 0.7 * 0.6); /* 0.42 */
    done(&t, &d);
}

static void test_find(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  zeta: {traffic: 100%}\n"
            "  alpha: {}\n"
            "  mid: {}\n"
            "  Mid: {}\n"
            "  beta: {}\n");
    const char *names[] = {"zeta", "alpha", "mid", "Mid", "beta"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(cn_topology_find(&t, names[i]), (long)i);
    assert_int_equal(cn_topology_find(&t, "alph"), -1);
    assert_int_equal(cn_topology_find(&t, "alphaa"), -1);
    assert_int_equal(cn_topology_find(&t, ""), -1);
    assert_int_equal(cn_topology_find(&t, "zz"), -1);
    assert_int_equal(cn_topology_find(&t, "MID"), -1);
    for (size_t k = 1; k < t.count; k++)
        assert_true(strcmp(t.services[t.by_name[k - 1]].name,
                           t.services[t.by_name[k]].name) < 0);
    done(&t, &d);
}

static void test_empty_bodies(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  web: {traffic: 100%, depends_on: [search, other, none, empty]}\n"
            "  search: {}\n"
            "  other:\n"
            "  none: {depends_on: []}\n"
            "  empty: {depends_on: }\n");
    for (size_t i = 1; i < t.count; i++) {
        assert_false(t.services[i].entry);
        assert_int_equal(t.services[i].tier, -1);
        assert_int_equal(t.services[i].dep_count, 0);
        assert_null(t.services[i].fleet_unit);
    }
    assert_near(reach_of(&t, "other"), 1.0);
    done(&t, &d);
}

static void test_json_topology(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "{\"services\": {\n"
            "  \"web\": {\"traffic\": \"70%\", \"depends_on\": {\"checkout\": 0.2, \"search\": 0.6}},\n"
            "  \"mobile\": {\"traffic\": \"30%\", \"depends_on\": [\"checkout\"]},\n"
            "  \"checkout\": {\"tier\": 0, \"fleet\": {\"unit\": \"host\", \"count\": 200},\n"
            "               \"depends_on\": [\"payments\"]},\n"
            "  \"payments\": {\"tier\": 0, \"fleet\": {\"unit\": \"cell\", \"count\": 12}},\n"
            "  \"search\": {\"tier\": 2}\n"
            "}}\n");
    assert_int_equal(t.count, 5);
    assert_int_equal(service(&t, "checkout")->fleet_count, 200);
    assert_near(reach_of(&t, "checkout"), 0.44);
    assert_near(reach_of(&t, "payments"), 0.44);
    assert_near(reach_of(&t, "search"), 0.42);
    done(&t, &d);

    cn_diags_init(&d);
    assert_int_equal(load_text(&t, &d,
                               "{\"services\": {\n"
                               "  \"web\": {\"traffic\": \"70%\", \"depends_on\": [\"chekout\"]},\n"
                               "  \"checkout\": {\"tier\": 0}\n"
                               "}}\n"),
                     CN_EINVAL);
    assert_diag(&d, 2, 44,
                "service 'web': unknown dependency 'chekout' (did you mean 'checkout'?)");
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].file, "topo.yaml");
    done(&t, &d);
}

static void test_traffic_adds_up_to_100(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    /* 0.333 + 0.333 + 0.334 is 1.0000000000000002 in binary */
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 33.3%}\n"
            "  b: {traffic: 33.3%}\n"
            "  c: {traffic: 33.4%}\n");
    assert_near(reach_of(&t, "c"), 0.334);
    done(&t, &d);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(cn_topology_load(&t, cn_test_src("tests/data/topology/none.yaml"), &d),
                     CN_ENOTFOUND);
    assert_int_equal(d.count, 1);
    assert_int_equal(t.count, 0);
    assert_int_equal(cn_topology_find(&t, "web"), -1);
    done(&t, &d);
}

/* ---- errors ------------------------------------------------------------- */

static void test_error_unknown_dependency(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web:\n"
                               "    traffic: 100%\n"
                               "    depends_on: [chekout, zzz]\n"
                               "  checkout: {}\n"
                               "  api:\n"
                               "    depends_on:\n"
                               "      chekout: 0.5\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 18,
                "service 'web': unknown dependency 'chekout' (did you mean 'checkout'?)");
    assert_diag(&d, 4, 27, "service 'web': unknown dependency 'zzz'");
    assert_diag(&d, 8, 7,
                "service 'api': unknown dependency 'chekout' (did you mean 'checkout'?)");
    assert_int_equal(d.count, 3);
    done(&t, &d);
}

static void test_error_duplicate_dependency(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web:\n"
                               "    traffic: 100%\n"
                               "    depends_on: [db, cache, db]\n"
                               "  api:\n"
                               "    depends_on:\n"
                               "      db: 0.5\n"
                               "      db: 0.25\n"
                               "  db:\n"
                               "  cache:\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 29, "service 'web': dependency 'db' is listed twice");
    assert_diag(&d, 8, 7, "service 'api': dependency 'db' is listed twice");
    assert_int_equal(d.count, 2);
    done(&t, &d);
}

static void test_error_self_dependency(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web:\n"
                               "    traffic: 100%\n"
                               "    depends_on: [web]\n"
                               "  api: {depends_on: {api: 0.5}}\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 18, "service 'web' depends on itself");
    assert_diag(&d, 5, 22, "service 'api' depends on itself");
    assert_int_equal(d.count, 2);
    done(&t, &d);
}

static void test_error_duplicate_service(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web: {traffic: 50%}\n"
                               "  db: {}\n"
                               "  web: {traffic: 10%}\n"
                               "  web: {}\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 3, "service 'web' is already defined at line 2");
    assert_diag(&d, 5, 3, "service 'web' is already defined at line 2");
    assert_int_equal(d.count, 2);
    done(&t, &d);
}

static void test_error_fractions(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web:\n"
                               "    traffic: 100%\n"
                               "    depends_on:\n"
                               "      a: 0\n"
                               "      b: 1.5\n"
                               "      c: -0.5\n"
                               "      d: abc\n"
                               "      e: \"0.5\"\n"
                               "      f: [1]\n"
                               "      g: 20%\n"
                               "      h: 1\n"
                               "      i: 0.001\n"
                               "  a: {}\n  b: {}\n  c: {}\n  d: {}\n  e: {}\n"
                               "  f: {}\n  g: {}\n  h: {}\n  i: {}\n"),
                     CN_EINVAL);
    const char *range = "service 'web': fraction for '%s' must be more than 0 and "
                        "at most 1, got '%s'";
    char msg[160];
    snprintf(msg, sizeof msg, range, "a", "0");
    assert_diag(&d, 5, 10, msg);
    snprintf(msg, sizeof msg, range, "b", "1.5");
    assert_diag(&d, 6, 10, msg);
    snprintf(msg, sizeof msg, range, "c", "-0.5");
    assert_diag(&d, 7, 10, msg);
    assert_diag(&d, 8, 10, "service 'web': fraction for 'd' must be a number, got 'abc'");
    assert_diag(&d, 9, 10,
                "service 'web': fraction for 'e' must be a number, got a quoted "
                "string '0.5'");
    assert_diag(&d, 10, 10, "service 'web': fraction for 'f' must be a number, got a list");
    assert_diag(&d, 11, 10, "service 'web': fraction for 'g' must be a number, got '20%'");
    assert_int_equal(d.count, 7);
    done(&t, &d);
}

static void test_error_null_fraction(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web: {traffic: 100%, depends_on: {a: , b: ~}}\n"
                               "  a: {}\n"
                               "  b: {}\n"),
                     CN_EINVAL);
    /* libyaml puts an empty value where the next token starts */
    assert_diag(&d, 2, 40,
                "service 'web': fraction for 'a' must be a number, got nothing (null)");
    assert_diag(&d, 2, 45,
                "service 'web': fraction for 'b' must be a number, got nothing (null)");
    assert_int_equal(d.count, 2);
    done(&t, &d);
}

static void test_error_traffic(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  a: {traffic: 0%}\n"
                               "  b: {traffic: 150%}\n"
                               "  c: {traffic: 70}\n"
                               "  d: {traffic: -5%}\n"
                               "  e: {traffic: 50%}\n"
                               "  f: {traffic: [50%]}\n"),
                     CN_EINVAL);
    assert_diag(&d, 2, 16,
                "service 'a': 'traffic' must be more than 0% and at most 100%, got '0%'");
    assert_diag(&d, 3, 16,
                "service 'b': 'traffic' must be more than 0% and at most 100%, got '150%'");
    assert_diag(&d, 4, 16,
                "'traffic' expects a percentage with a % sign, got '70' (write "
                "'70%' for 70 percent)");
    assert_diag(&d, 5, 16,
                "service 'd': 'traffic' must be more than 0% and at most 100%, got '-5%'");
    assert_diag(&d, 7, 16,
                "'traffic' expects a percentage such as 5%, got a list");
    assert_int_equal(d.count, 5);
    done(&t, &d);
}

static void test_error_traffic_sum(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web: {traffic: 70%}\n"
                               "  mobile: {traffic: 40%}\n"
                               "  api: {traffic: 20%}\n"
                               "  db: {}\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 18,
                "'traffic' of the entry services adds up to 130%, more than 100%");
    assert_int_equal(d.count, 1);
    done(&t, &d);
}

static void test_error_no_entry(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  a: {depends_on: [b]}\n"
                               "  b: {}\n"),
                     CN_EINVAL);
    assert_diag(&d, 2, 3,
                "no service has 'traffic'; at least one entry service is needed");
    assert_int_equal(d.count, 1);
    done(&t, &d);
}

static void test_error_top_level(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned line, col;
        const char *message;
        size_t count;
    } cases[] = {
        {"service:\n  web: {traffic: 100%}\n", 1, 1,
         "unknown key 'service' in topology (did you mean 'services'?)", 2},
        {"service:\n  web: {traffic: 100%}\n", 1, 1,
         "topology is missing the required key 'services'", 2},
        {"services:\n  web: {traffic: 100%}\nversion: 2\n", 3, 1,
         "unknown key 'version' in topology", 1},
        {"services: [web, db]\n", 1, 11,
         "'services' must be a map of service names to services, got a list", 1},
        {"services: {}\n", 1, 11, "'services' must list at least one service", 1},
        {"services: ~\n", 1, 11, "'services' must list at least one service", 1},
        {"- services\n", 1, 1, "topology must be a map of keys, got a list", 1},
        {"services:\n  web: {traffic: 100%}\n  [a, b]: {}\n", 3, 3,
         "service names must be plain names, got a list", 1},
        {"services:\n  web: {traffic: 100%}\n  '': {}\n", 3, 3,
         "service name is empty", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_diags d;
        cn_diags_init(&d);
        cn_topology t;
        assert_int_equal(load_text(&t, &d, cases[i].text), CN_EINVAL);
        assert_diag(&d, cases[i].line, cases[i].col, cases[i].message);
        assert_int_equal(d.count, cases[i].count);
        done(&t, &d);
    }
}

/* Every problem in one run, each at its own position. */
static void test_error_all_in_one_run(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_topology t;
    assert_int_equal(load_text(&t, &d,
                               "services:\n"
                               "  web:\n"
                               "    traffic: 100%\n"
                               "    trafic: 5%\n"
                               "    tier: 10\n"
                               "    depends_on: db\n"
                               "  api: 5\n"
                               "  db:\n"
                               "    tier: x\n"
                               "    fleet: {unit: host}\n"
                               "  cache:\n"
                               "    fleet: {unit: cell, count: 0, size: 3}\n"
                               "    depends_on: [{db: 1}, dbb]\n"),
                     CN_EINVAL);
    assert_diag(&d, 4, 5, "unknown key 'trafic' in service 'web' (did you mean 'traffic'?)");
    assert_diag(&d, 5, 11, "'tier' must be at most 9, got 10");
    assert_diag(&d, 6, 17,
                "service 'web': 'depends_on' expects a list of service names or a "
                "map of names to fractions, got a scalar");
    assert_diag(&d, 7, 8, "service 'api' must be a map of keys, got a scalar");
    assert_diag(&d, 9, 11, "'tier' expects a whole number, got 'x'");
    assert_diag(&d, 10, 12, "fleet is missing the required key 'count'");
    assert_diag(&d, 12, 32, "'count' must be at least 1, got 0");
    assert_diag(&d, 12, 35, "unknown key 'size' in fleet");
    assert_diag(&d, 13, 18,
                "service 'cache': dependencies must be service names, got a map");
    assert_diag(&d, 13, 27,
                "service 'cache': unknown dependency 'dbb' (did you mean 'db'?)");
    assert_int_equal(d.count, 10);
    done(&t, &d);
}

/* ---- reach -------------------------------------------------------------- */

static void test_reach_chain(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 40%, depends_on: {b: 0.5}}\n"
            "  b: {depends_on: {c: 0.5}}\n"
            "  c: {}\n");
    assert_near(reach_of(&t, "a"), 0.4);
    assert_near(reach_of(&t, "b"), 0.2);
    assert_near(reach_of(&t, "c"), 0.1); /* 0.25 x traffic */
    done(&t, &d);
}

static void test_reach_diamond(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 80%, depends_on: {b: 0.5, c: 0.5}}\n"
            "  b: {depends_on: [d]}\n"
            "  c: {depends_on: [d]}\n"
            "  d: {}\n");
    assert_near(reach_of(&t, "b"), 0.4);
    assert_near(reach_of(&t, "c"), 0.4);
    assert_near(reach_of(&t, "d"), 0.8); /* 1.0 x traffic */
    done(&t, &d);
}

/* 0.8 x 0.9 twice is 1.44 of a's requests: capped at 1, and the cap, not
 * 1.44, is what flows on to e. */
static void test_reach_diamond_capped(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 60%, depends_on: {b: 0.8, c: 0.8}}\n"
            "  b: {depends_on: {d: 0.9}}\n"
            "  c: {depends_on: {d: 0.9}}\n"
            "  d: {depends_on: {e: 0.5}}\n"
            "  e: {}\n");
    assert_near(reach_of(&t, "b"), 0.48);
    assert_near(reach_of(&t, "d"), 0.6);
    assert_near(reach_of(&t, "e"), 0.3);
    done(&t, &d);
}

static void test_reach_weighted_edges(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 100%, depends_on: {b: 0.3, c: 0.6}}\n"
            "  b: {depends_on: {d: 0.5}}\n"
            "  c: {depends_on: {d: 0.25}}\n"
            "  d: {depends_on: {e: 0.1}}\n"
            "  e: {}\n");
    assert_near(reach_of(&t, "d"), 0.3 * 0.5 + 0.6 * 0.25);
    assert_near(reach_of(&t, "e"), 0.03);
    done(&t, &d);
}

static void test_reach_cycle_through_entry(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  a: {traffic: 60%, depends_on: {b: 0.5}}\n"
            "  b: {depends_on: [a]}\n");
    assert_near(reach_of(&t, "a"), 0.6); /* p_a(a) stays 1 */
    assert_near(reach_of(&t, "b"), 0.3);
    done(&t, &d);
}

/* x = 0.5 + 0.5 y and y = 0.5 x: the fixed point is x = 2/3, y = 1/3. */
static void test_reach_cycle_below_entry(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  e: {traffic: 90%, depends_on: {x: 0.5}}\n"
            "  x: {depends_on: {y: 0.5}}\n"
            "  y: {depends_on: {x: 0.5}}\n");
    assert_near(reach_of(&t, "x"), 0.9 * 2 / 3);
    assert_near(reach_of(&t, "y"), 0.9 / 3);
    done(&t, &d);
}

/* A loop of gain 1 fed by any share saturates: x = min(1, 0.5 + y). */
static void test_reach_cycle_saturates(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  e: {traffic: 50%, depends_on: {x: 0.5}}\n"
            "  x: {depends_on: [y]}\n"
            "  y: {depends_on: {x: 1, z: 0.5}}\n"
            "  z: {}\n");
    assert_near(reach_of(&t, "x"), 0.5);
    assert_near(reach_of(&t, "y"), 0.5);
    assert_near(reach_of(&t, "z"), 0.25);
    done(&t, &d);
}

/* A loop of plain lists fed a tiny share still saturates. Climbing from 0
 * it would gain that share per round: a million rounds for 1e-6, and a
 * change below the epsilon at once for 1e-13. */
static void test_reach_cycle_tiny_inflow(void **state)
{
    (void)state;
    const char *shares[] = {"0.000001", "0.0000000000001"};
    for (size_t i = 0; i < 2; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "services:\n"
                 "  e: {traffic: 100%%, depends_on: {x: %s}}\n"
                 "  x: {depends_on: [y]}\n"
                 "  y: {depends_on: [x]}\n",
                 shares[i]);
        cn_diags d;
        cn_topology t;
        load_ok(&t, &d, text);
        assert_near(reach_of(&t, "x"), 1.0);
        assert_near(reach_of(&t, "y"), 1.0);
        done(&t, &d);
    }
}

/* The loader rejects a zero fraction, but a caller may build a topology by
 * hand: such an edge carries nothing, even into a loop that could hold
 * itself up. */
static void test_reach_zero_fraction_built_by_hand(void **state)
{
    (void)state;
    cn_edge e_deps[] = {{1, 0.0}, {3, 0.5}};
    cn_edge x_deps[] = {{2, 1.0}};
    cn_edge y_deps[] = {{1, 1.0}};
    cn_service s[] = {
        {.name = "e", .entry = true, .traffic = 1, .deps = e_deps, .dep_count = 2},
        {.name = "x", .deps = x_deps, .dep_count = 1},
        {.name = "y", .deps = y_deps, .dep_count = 1},
        {.name = "z"},
    };
    cn_topology t = {.services = s, .count = 4};
    double r = -1;
    assert_int_equal(cn_topology_reach(&t, 1, &r), CN_OK);
    assert_near(r, 0);
    assert_int_equal(cn_topology_reach(&t, 3, &r), CN_OK);
    assert_near(r, 0.5);
}

static void test_reach_two_entries(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  web: {traffic: 60%, depends_on: {api: 0.5, shared: 0.3}}\n"
            "  api: {traffic: 40%, depends_on: [db, shared]}\n"
            "  db: {}\n"
            "  shared: {}\n");
    assert_near(reach_of(&t, "web"), 0.6);
    /* An entry called by another entry: its own share plus what web sends. */
    assert_near(reach_of(&t, "api"), 0.4 + 0.6 * 0.5);
    assert_near(reach_of(&t, "db"), 0.6 * 0.5 + 0.4);
    assert_near(reach_of(&t, "shared"), 0.6 * (0.3 + 0.5) + 0.4);
    done(&t, &d);
}

static void test_reach_two_entries_capped(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  web: {traffic: 60%, depends_on: {api: 0.5, shared: 0.7}}\n"
            "  api: {traffic: 40%, depends_on: [shared]}\n"
            "  shared: {}\n");
    /* p_web(shared) = min(1, 0.7 + 0.5) */
    assert_near(reach_of(&t, "shared"), 1.0);
    done(&t, &d);
}

static void test_reach_unreachable(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  web: {traffic: 100%, depends_on: {a: 0.5}}\n"
            "  a: {}\n"
            "  orphan: {depends_on: [a]}\n"
            "  island: {}\n");
    assert_near(reach_of(&t, "a"), 0.5); /* the orphan adds nothing */
    assert_near(reach_of(&t, "orphan"), 0);
    assert_near(reach_of(&t, "island"), 0);
    done(&t, &d);
}

static void test_reach_bad_index(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d, "services:\n  web: {traffic: 100%}\n");
    double r = -1;
    assert_int_equal(cn_topology_reach(&t, t.count, &r), CN_EINVAL);
    assert_near(r, -1);
    done(&t, &d);
}

/* 10,000 services in a chain, each calling the next for 0.999 of its
 * requests, the last calling back into the entry: deep enough to overflow
 * a recursive search, and every name found by binary search. */
static void test_reach_long_chain(void **state)
{
    (void)state;
    enum { N = 10000 };
    size_t cap = (size_t)N * 48 + 64, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "services:\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  s%d: {%sdepends_on: {s%d: %s}}\n", i,
                                i ? "" : "traffic: 100%, ", (i + 1) % N,
                                i == N - 1 ? "0.5" : "0.999");
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d, text);
    free(text);
    assert_int_equal(t.count, N);
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(cn_topology_find(&t, name), i);
    }
    assert_near(reach_of(&t, "s0"), 1.0);
    assert_near(reach_of(&t, "s5000"), pow(0.999, 5000));
    assert_near(reach_of(&t, "s9999"), pow(0.999, 9999));
    done(&t, &d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_empty_bodies),
        cmocka_unit_test(test_json_topology),
        cmocka_unit_test(test_traffic_adds_up_to_100),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_error_unknown_dependency),
        cmocka_unit_test(test_error_duplicate_dependency),
        cmocka_unit_test(test_error_self_dependency),
        cmocka_unit_test(test_error_duplicate_service),
        cmocka_unit_test(test_error_fractions),
        cmocka_unit_test(test_error_null_fraction),
        cmocka_unit_test(test_error_traffic),
        cmocka_unit_test(test_error_traffic_sum),
        cmocka_unit_test(test_error_no_entry),
        cmocka_unit_test(test_error_top_level),
        cmocka_unit_test(test_error_all_in_one_run),
        cmocka_unit_test(test_reach_chain),
        cmocka_unit_test(test_reach_diamond),
        cmocka_unit_test(test_reach_diamond_capped),
        cmocka_unit_test(test_reach_weighted_edges),
        cmocka_unit_test(test_reach_cycle_through_entry),
        cmocka_unit_test(test_reach_cycle_below_entry),
        cmocka_unit_test(test_reach_cycle_saturates),
        cmocka_unit_test(test_reach_cycle_tiny_inflow),
        cmocka_unit_test(test_reach_zero_fraction_built_by_hand),
        cmocka_unit_test(test_reach_two_entries),
        cmocka_unit_test(test_reach_two_entries_capped),
        cmocka_unit_test(test_reach_unreachable),
        cmocka_unit_test(test_reach_bad_index),
        cmocka_unit_test(test_reach_long_chain),
    };
    return cmocka_run_group_tests_name("topology", tests, NULL, NULL);
}
