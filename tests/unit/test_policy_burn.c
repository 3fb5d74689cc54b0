/* Policy files: a metric's burn_rate (docs/policy.md#burn_rate): every key
 * loaded, its defaults, YAML and JSON, and each mistake reported once at
 * its FILE:LINE:COLUMN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/doc.h"
#include "canary/policy.h"
#include "canary/status.h"
#include "checks.h"
#include "policy_cases.h"

/* ---- helpers ------------------------------------------------------------ */

#define HEAD "name: t\nanalysis:\n  metrics:\n"
/* A burn-rate metric at line 4; its keys start at line 6. */
#define BURN(keys)                                                     \
    HEAD "    - name: avail\n"                                         \
         "      burn_rate:\n" keys
#define QUERIES                                                        \
    "        errors: 'sum(rate(e{v=\"{{version}}\"}[{{window}}]))'\n"  \
    "        total: 'sum(rate(t{v=\"{{version}}\"}[{{window}}]))'\n"
#define PROM "        prometheus: {address: \"http://prom:9090\"}\n"
#define SLO "        slo: 99.9%\n"

/* ---- loading ------------------------------------------------------------ */

static void test_load_burn_rate(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.yaml",
                        BURN(SLO QUERIES
                             "        prometheus:\n"
                             "          address: \"http://prom-{{service}}:9090\"\n"
                             "          bearer_token_env: PROM_TOKEN\n"
                             "          reduce: sum\n"
                             "        windows:\n"
                             "          - {long: 1h, short: 5m, factor: 14.4}\n"
                             "          - {long: 6h, short: 30m, factor: 6}\n"
                             "          - {long: 3d, short: 6h, factor: 1.5}\n")
                        "    - name: plain\n"
                        "      burn_rate:\n"
                        "        slo: 99.95%\n" QUERIES PROM
                        "        scale_to_bake: false\n"
                        "    - name: err\n"
                        "      prometheus: {address: \"http://p\", query: 'x'}\n"
                        "      threshold: {max: 1%}\n",
                        &p, &d);
    /* 3d is not a duration canary reads: the one problem */
    assert_int_equal(rc, CN_EINVAL);
    assert_int_equal(cn_diags_total(&d), 1);
    assert_true(cn_diags_find(&d, "'long' expects a duration such as") >= 0);
    cn_policy_free(&p);
    cn_diags_free(&d);

    rc = cn_test_load_policy("p.yaml",
                    BURN(SLO QUERIES
                         "        prometheus:\n"
                         "          address: \"http://prom-{{service}}:9090\"\n"
                         "          bearer_token_env: PROM_TOKEN\n"
                         "          reduce: sum\n"
                         "        windows:\n"
                         "          - {long: 1h, short: 5m, factor: 14.4}\n"
                         "          - {long: 6h, short: 30m, factor: 6}\n"
                         "          - {long: 72h, short: 6h, factor: 1.5}\n")
                    "    - name: plain\n"
                    "      burn_rate:\n"
                    "        slo: 99.95%\n" QUERIES PROM
                    "        scale_to_bake: false\n"
                    "    - name: err\n"
                    "      prometheus: {address: \"http://p\", query: 'x'}\n"
                    "      threshold: {max: 1%}\n",
                    &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(p.analysis.metric_count, 3);
    const cn_metric *m = &p.analysis.metrics[0];
    assert_true(m->burn.enabled);
    assert_true(fabs(m->burn.slo - 0.999) < 1e-12);
    assert_string_equal(m->burn.errors, "sum(rate(e{v=\"{{version}}\"}[{{window}}]))");
    assert_string_equal(m->burn.total, "sum(rate(t{v=\"{{version}}\"}[{{window}}]))");
    assert_int_equal(m->source.kind, CN_SOURCE_PROMETHEUS);
    assert_string_equal(m->source.address, "http://prom-{{service}}:9090");
    assert_null(m->source.query);
    assert_string_equal(m->source.bearer_token_env, "PROM_TOKEN");
    assert_int_equal(m->source.reduce, CN_REDUCE_SUM);
    assert_true(m->burn.scale_to_bake);
    assert_int_equal(m->burn.window_count, 3);
    assert_int_equal(m->burn.windows[0].long_ms, 3600000);
    assert_int_equal(m->burn.windows[0].short_ms, 300000);
    assert_true(m->burn.windows[0].factor == 14.4);
    assert_int_equal(m->burn.windows[2].long_ms, 72 * 3600000LL);
    assert_true(m->burn.windows[2].factor == 1.5);
    assert_false(m->threshold.has_max || m->baseline.enabled);

    m = &p.analysis.metrics[1];
    assert_true(m->burn.enabled);
    assert_true(fabs(m->burn.slo - 0.9995) < 1e-12);
    assert_int_equal(m->burn.window_count, 0); /* the workbook's pairs */
    assert_false(m->burn.scale_to_bake);
    assert_false(p.analysis.metrics[2].burn.enabled);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_load_burn_rate_json(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.json",
                        "{\"name\": \"t\", \"analysis\": {\"metrics\": [{\"name\": \"a\", "
                        "\"burn_rate\": {\"slo\": \"99%\", "
                        "\"errors\": \"sum(rate(e[{{window}}]))\", "
                        "\"total\": \"sum(rate(t[{{window}}]))\", "
                        "\"prometheus\": {\"address\": \"http://p\"}, "
                        "\"windows\": [{\"long\": \"10m\", \"short\": \"1m\", \"factor\": 3}]"
                        "}}]}}",
                        &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    const cn_metric *m = &p.analysis.metrics[0];
    assert_true(fabs(m->burn.slo - 0.99) < 1e-12);
    assert_int_equal(m->burn.window_count, 1);
    assert_int_equal(m->burn.windows[0].short_ms, 60000);
    assert_true(m->burn.windows[0].factor == 3);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* ---- mistakes ----------------------------------------------------------- */

static void test_errors_slo(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"a fraction", BURN("        slo: 0.999\n" QUERIES PROM), 6, 14,
         "'slo' expects a percentage such as 99.9%, got '0.999' (write '99.9%' for the "
         "fraction 0.999)"},
        {"100%", BURN("        slo: 100%\n" QUERIES PROM), 6, 14,
         "'slo' must be less than 100%, got '100%' (an SLO of 100% leaves no error budget "
         "to burn)"},
        {"0%", BURN("        slo: 0%\n" QUERIES PROM), 6, 14,
         "'slo' must be greater than 0%, got '0%'"},
        {"a number over 1", BURN("        slo: 99.9\n" QUERIES PROM), 6, 14,
         "'slo' expects a percentage with a % sign, got '99.9' (write '99.9%' for 99.9 "
         "percent)"},
        {"missing", BURN(QUERIES PROM), 6, 9, "burn_rate is missing the required key 'slo'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_queries(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"errors without {{window}}",
         BURN(SLO "        errors: 'sum(rate(e[5m]))'\n"
                  "        total: 'sum(rate(t[{{window}}]))'\n" PROM),
         7, 17,
         "'errors' does not use {{window}}: every window would measure the same span; write "
         "its range as [{{window}}], e.g. rate(http_requests_total[{{window}}])"},
        {"misspelt window in total",
         BURN(SLO "        errors: 'sum(rate(e[{{window}}]))'\n"
                  "        total: 'sum(rate(t[{{windw}}]))'\n" PROM),
         8, 16,
         "unknown template '{{windw}}' in 'total' (did you mean '{{window}}'?); known: "
         "service, version, previous_version, rollout, stage, window"},
        {"total missing", BURN(SLO "        errors: 'sum(rate(e[{{window}}]))'\n" PROM), 6, 9,
         "burn_rate is missing the required key 'total'"},
        {"empty errors",
         BURN(SLO "        errors: ''\n        total: 't[{{window}}]'\n" PROM), 7, 17,
         "'errors'"},
        {"a query of its own",
         BURN(SLO QUERIES "        prometheus: {address: \"http://p\", query: up}\n"), 9, 50,
         "'query' is not used by a burn-rate metric: give its queries as burn_rate 'errors' "
         "and 'total'"},
        {"no prometheus", BURN(SLO QUERIES), 6, 9,
         "burn_rate is missing the required key 'prometheus'"},
        {"prometheus without address", BURN(SLO QUERIES "        prometheus: {reduce: sum}\n"),
         9, 21, "burn_rate.prometheus is missing the required key 'address'"},
        {"a secret in the source",
         BURN(SLO QUERIES "        prometheus: {address: \"http://p\", token: x}\n"), 9, 50,
         "'token' is not accepted: secrets must not be written in policy files"},
        {"{{window}} in a plain query",
         HEAD "    - name: m\n"
              "      prometheus: {address: \"http://p\", query: 'rate(x[{{window}}])'}\n"
              "      threshold: {max: 1}\n",
         5, 48,
         "template '{{window}}' in 'query' is only filled in for a burn_rate's 'errors' and "
         "'total'; known here: service, version, previous_version, rollout, stage"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_windows(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"short not shorter",
         BURN(SLO QUERIES PROM "        windows: [{long: 5m, short: 5m, factor: 2}]\n"), 10, 37,
         "'short' (5m) must be shorter than 'long' (5m): the short window confirms the burn "
         "is still going on"},
        {"factor 1",
         BURN(SLO QUERIES PROM "        windows: [{long: 5m, short: 1m, factor: 1}]\n"), 10, 49,
         "'factor' must be greater than 1, got '1'"},
        {"factor missing", BURN(SLO QUERIES PROM "        windows: [{long: 5m, short: 1m}]\n"),
         10, 19, "window pair is missing the required key 'factor'"},
        {"a near miss",
         BURN(SLO QUERIES PROM
              "        windows: [{long: 5m, short: 1m, factor: 2, sort: 1m}]\n"),
         10, 52, "unknown key 'sort' in window pair (did you mean 'short'?)"},
        {"a duration without unit",
         BURN(SLO QUERIES PROM "        windows: [{long: 300, short: 1m, factor: 2}]\n"), 10,
         26, "'long' expects a duration with a unit (ms, s, m, h), got '300'"},
        {"empty list", BURN(SLO QUERIES PROM "        windows: []\n"), 10, 18,
         "'windows' expects a list of 1 to 6 window pairs {long, short, factor}, got an empty "
         "list"},
        {"a map, not a list",
         BURN(SLO QUERIES PROM "        windows: {long: 5m, short: 1m, factor: 2}\n"), 10, 18,
         "'windows' expects a list of 1 to 6 window pairs {long, short, factor}, got a map"},
        {"seven pairs",
         BURN(SLO QUERIES PROM "        windows: [{long: 2m, short: 1m, factor: 2}, "
                               "{long: 3m, short: 1m, factor: 2}, "
                               "{long: 4m, short: 1m, factor: 2}, "
                               "{long: 5m, short: 1m, factor: 2}, "
                               "{long: 6m, short: 1m, factor: 2}, "
                               "{long: 7m, short: 1m, factor: 2}, "
                               "{long: 8m, short: 1m, factor: 2}]\n"),
         10, 18, "'windows' expects a list of 1 to 6 window pairs {long, short, factor}, got 7"},
        {"an entry that is not a map", BURN(SLO QUERIES PROM "        windows: [5m]\n"), 10, 19,
         "each entry of 'windows' must be a map {long, short, factor}, got a scalar"},
        {"scale_to_bake not a boolean", BURN(SLO QUERIES PROM "        scale_to_bake: yes\n"),
         10, 24, "'scale_to_bake' expects true or false, got 'yes'"},
        {"a near miss in burn_rate", BURN(SLO QUERIES PROM "        scale_to_bak: true\n"), 10,
         9, "unknown key 'scale_to_bak' in burn_rate (did you mean 'scale_to_bake'?)"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* A burn-rate metric is judged by its factors and reads its own source:
 * anything beside burn_rate would be ignored, so it is refused. */
static void test_errors_beside(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"threshold", BURN(SLO QUERIES PROM) "      threshold: {max: 1%}\n", 10, 18,
         "metric 'avail' has 'burn_rate' and 'threshold': it is judged by its windows' "
         "factors; remove 'threshold'"},
        {"baseline", BURN(SLO QUERIES PROM) "      baseline: {max_increase: 10%}\n", 10, 17,
         "metric 'avail' has 'burn_rate' and 'baseline': it is judged by its windows' "
         "factors; remove 'baseline'"},
        {"prometheus", BURN(SLO QUERIES PROM) "      prometheus: {address: \"http://p\", "
                                              "query: up}\n",
         10, 19, "metric 'avail' has 'burn_rate' and 'prometheus': its Prometheus address "
                 "goes inside burn_rate; remove 'prometheus'"},
        {"json", BURN(SLO QUERIES PROM) "      json: {url: \"http://j\"}\n", 10, 13,
         "metric 'avail' has 'burn_rate' and 'json': burn_rate reads Prometheus only; remove "
         "'json'"},
        {"an AI-assisted threshold",
         BURN(SLO QUERIES PROM) "ai_assisted:\n  analysis:\n    thresholds:\n"
                                "      avail: {max: 1}\n",
         13, 7, "'thresholds' names metric 'avail', a burn-rate metric: it has no threshold "
                "to tighten (its windows' factors judge it)"},
        {"burn_rate null", HEAD "    - name: avail\n      burn_rate:\n", 5, 17,
         "'burn_rate' expects a map with 'slo', 'errors', 'total' and 'prometheus', got "
         "nothing (null)"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Every mistake of one file in one run. */
static void test_all_reported(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.yaml",
                        BURN("        slo: 0.99\n"
                             "        errors: 'e'\n"
                             "        total: 't[{{window}}]'\n"
                             "        prometheus: {address: \"ftp://p\"}\n"
                             "        windows: [{long: 1m, short: 2m, factor: 0.5}]\n")
                        "      threshold: {max: 1}\n",
                        &p, &d);
    assert_int_equal(rc, CN_EINVAL);
    if (cn_diags_total(&d) != 6) {
        cn_test_print_diags(&d);
        fail_msg("expected 6 problems, got %zu", cn_diags_total(&d));
    }
    cn_policy_free(&p);
    cn_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_burn_rate),
        cmocka_unit_test(test_load_burn_rate_json),
        cmocka_unit_test(test_errors_slo),
        cmocka_unit_test(test_errors_queries),
        cmocka_unit_test(test_errors_windows),
        cmocka_unit_test(test_errors_beside),
        cmocka_unit_test(test_all_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
