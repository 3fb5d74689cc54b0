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
#include "checks.h"
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
    cn_test_print_diags(d);
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
    cn_test_print_diags(d);
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
    assert_diag(&d, 5, 11, "'tier' must be at most 9, got '10'");
    assert_diag(&d, 6, 17,
                "service 'web': 'depends_on' expects a list of service names or a "
                "map of names to fractions, got a scalar");
    assert_diag(&d, 7, 8, "service 'api' must be a map of keys, got a scalar");
    assert_diag(&d, 9, 11, "'tier' expects a whole number, got 'x'");
    assert_diag(&d, 10, 12, "fleet is missing the required key 'count'");
    assert_diag(&d, 12, 32, "'count' must be at least 1, got '0'");
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

/* Loops one below the other, and two entries feeding them at different
 * points. For web (80%): a = 0.5 + 0.25 b with b = a, so a = b = 2/3;
 * c = 0.4 b + 0.5 d with d = 0.5 c, so c = 16/45, d = 8/45; f and g call
 * each other in full, fed by d: they saturate at 1, and h = 0.3;
 * k = 0.1 a + 0.5 c = 11/45. For api (20%), which comes in at d and m:
 * d = 0.5 + 0.5 c with c = 0.5 d, so c = 1/3, d = 2/3; f = g = 1,
 * h = 0.3; m and n call each other in full and saturate, so
 * k = 0.5 c + 0.5 m = 2/3; a and b are out of its reach. m and n are out
 * of web's reach, and x and y out of everyone's: loops of gain 1 that
 * nothing flows into, which must stay at 0 rather than hold themselves up
 * at 1. Listed downstream first, so file order is no help. */
static void test_reach_loops_in_series(void **state)
{
    (void)state;
    cn_diags d;
    cn_topology t;
    load_ok(&t, &d,
            "services:\n"
            "  h: {}\n"
            "  g: {depends_on: {f: 1, h: 0.3}}\n"
            "  f: {depends_on: [g]}\n"
            "  k: {}\n"
            "  d: {depends_on: {c: 0.5, f: 0.9}}\n"
            "  c: {depends_on: {d: 0.5, k: 0.5}}\n"
            "  b: {depends_on: {a: 0.25, c: 0.4}}\n"
            "  a: {depends_on: {b: 1, k: 0.1}}\n"
            "  n: {depends_on: [m]}\n"
            "  m: {depends_on: {n: 1, k: 0.5}}\n"
            "  x: {depends_on: [y]}\n"
            "  y: {depends_on: [x, h]}\n"
            "  api: {traffic: 20%, depends_on: {d: 0.5, m: 0.2}}\n"
            "  web: {traffic: 80%, depends_on: {a: 0.5}}\n");
    assert_near(reach_of(&t, "web"), 0.8);
    assert_near(reach_of(&t, "api"), 0.2);
    assert_near(reach_of(&t, "a"), 0.8 * 2 / 3);
    assert_near(reach_of(&t, "b"), 0.8 * 2 / 3);
    assert_near(reach_of(&t, "c"), 0.8 * 16 / 45 + 0.2 / 3);
    assert_near(reach_of(&t, "d"), 0.8 * 8 / 45 + 0.2 * 2 / 3);
    assert_near(reach_of(&t, "f"), 1.0);
    assert_near(reach_of(&t, "g"), 1.0);
    assert_near(reach_of(&t, "h"), 0.3);
    assert_near(reach_of(&t, "k"), 0.8 * 11 / 45 + 0.2 * 2 / 3);
    assert_near(reach_of(&t, "m"), 0.2);
    assert_near(reach_of(&t, "n"), 0.2);
    assert_near(reach_of(&t, "x"), 0);
    assert_near(reach_of(&t, "y"), 0);
    done(&t, &d);
}

/* ---- reach against a slow reference ------------------------------------ */

/* The definition taken literally: for each entry, every service it
 * reaches starts at 1 and all of them are recomputed together (Jacobi)
 * until nothing changes or 100,000 rounds have passed. No components, no
 * order, no shortcuts. */
static void reference_reach(const cn_topology *t, double *out)
{
    size_t n = t->count;
    double *p = calloc(n, sizeof(double)), *q = calloc(n, sizeof(double));
    size_t *queue = calloc(n, sizeof(size_t));
    assert_true(p && q && queue);
    for (size_t s = 0; s < n; s++)
        out[s] = 0;
    for (size_t entry = 0; entry < n; entry++) {
        if (!t->services[entry].entry)
            continue;
        for (size_t s = 0; s < n; s++)
            p[s] = 0;
        size_t head = 0, tail = 0;
        p[entry] = 1;
        queue[tail++] = entry;
        while (head < tail) {
            const cn_service *s = &t->services[queue[head++]];
            for (size_t e = 0; e < s->dep_count; e++)
                if (s->deps[e].fraction > 0 && !p[s->deps[e].to]) {
                    p[s->deps[e].to] = 1;
                    queue[tail++] = s->deps[e].to;
                }
        }
        for (int round = 0; round < 100000; round++) {
            for (size_t s = 0; s < n; s++)
                q[s] = 0;
            for (size_t c = 0; c < n; c++)
                for (size_t e = 0; e < t->services[c].dep_count; e++)
                    q[t->services[c].deps[e].to] += p[c] * t->services[c].deps[e].fraction;
            bool moved = false;
            for (size_t s = 0; s < n; s++) {
                double v = s == entry ? 1 : q[s] > 1 ? 1 : q[s];
                moved |= v != p[s];
                p[s] = v;
            }
            if (!moved)
                break;
        }
        for (size_t s = 0; s < n; s++)
            out[s] += t->services[entry].traffic * p[s];
    }
    for (size_t s = 0; s < n; s++)
        if (out[s] > 1)
            out[s] = 1;
    free(p);
    free(q);
    free(queue);
}

/* A fixed sequence on every platform (rand() is not). */
static uint32_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*state >> 33);
}

/* Fractions people write, and some that are not round at all. */
static double random_fraction(uint64_t *rng)
{
    static const double common[] = {0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 1};
    if (next_random(rng) % 2)
        return common[next_random(rng) % (sizeof common / sizeof common[0])];
    return (1 + next_random(rng) % 1000) / 1000.0;
}

/* n services, the given number of them entries sharing at most all the
 * traffic, each calling up to max_deps others anywhere in the list, so
 * loops form in every direction. */
static void random_topology(cn_topology *t, uint64_t *rng, size_t n,
                            size_t entries, size_t max_deps)
{
    cn_service *s = calloc(n, sizeof(cn_service));
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i].name = "s";
        s[i].tier = -1;
        s[i].deps = calloc(max_deps, sizeof(cn_edge));
        assert_non_null(s[i].deps);
        size_t want = next_random(rng) % (max_deps + 1);
        for (size_t k = 0; k < want; k++) {
            size_t to = next_random(rng) % n;
            bool taken = to == i; /* the loader rejects both */
            for (size_t j = 0; j < s[i].dep_count; j++)
                taken |= s[i].deps[j].to == to;
            if (!taken)
                s[i].deps[s[i].dep_count++] = (cn_edge){to, random_fraction(rng)};
        }
    }
    for (size_t k = 0; k < entries;) {
        size_t i = next_random(rng) % n;
        if (s[i].entry)
            continue;
        s[i].entry = true;
        s[i].traffic = (1 + next_random(rng) % 100) / 100.0 / (double)entries;
        k++;
    }
    *t = (cn_topology){.services = s, .count = n};
}

static void free_random_topology(cn_topology *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->services[i].deps);
    free(t->services);
}

/* Reach of every service against the reference, within 1e-9. */
static void check_against_reference(const cn_topology *t, int graph)
{
    double *want = calloc(t->count, sizeof(double));
    assert_non_null(want);
    reference_reach(t, want);
    for (size_t s = 0; s < t->count; s++) {
        double got = -1;
        assert_int_equal(cn_topology_reach(t, s, &got), CN_OK);
        if (fabs(got - want[s]) > 1e-9) {
            print_error("graph %d, service %zu: %.17g, reference %.17g\n", graph, s,
                        got, want[s]);
            fail();
        }
    }
    free(want);
}

static void test_reach_random_against_reference(void **state)
{
    (void)state;
    uint64_t rng = 20240611;
    for (int graph = 0; graph < 50; graph++) {
        size_t n = 5 + next_random(&rng) % 26;
        cn_topology t;
        random_topology(&t, &rng, n, 1 + next_random(&rng) % 3, 3);
        check_against_reference(&t, graph);
        free_random_topology(&t);
    }
}

/* More entries than go through the evaluation side by side (32), so they
 * are taken in more than one group; 40 entries, 70 services. */
static void test_reach_many_entries_against_reference(void **state)
{
    (void)state;
    uint64_t rng = 7;
    for (int graph = 0; graph < 3; graph++) {
        cn_topology t;
        random_topology(&t, &rng, 70, 40, 4);
        check_against_reference(&t, graph);
        free_random_topology(&t);
    }
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
        cmocka_unit_test(test_reach_loops_in_series),
        cmocka_unit_test(test_reach_random_against_reference),
        cmocka_unit_test(test_reach_many_entries_against_reference),
    };
    return cmocka_run_group_tests_name("topology", tests, NULL, NULL);
}
