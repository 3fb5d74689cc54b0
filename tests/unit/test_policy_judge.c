/* Policy files: a metric's judge and analysis.judge (docs/policy.md#judge):
 * every key loaded, the defaults, the scalar shorthand, YAML and JSON,
 * and each mistake reported once at its FILE:LINE:COLUMN. */
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
#define PROM "      prometheus: {address: \"http://p\", query: 'q{v=\"{{version}}\"}'}\n"
/* A judged metric at line 4, its source at line 5, judge: at line 6. */
#define JUDGED(judge) HEAD "    - name: lat\n" PROM "      judge:\n" judge
/* mann_whitney: at line 7; each setting on a line of its own from line 8,
 * its key at column 11. */
#define MW(lines) JUDGED("        mann_whitney:\n" lines)
/* analysis.judge at line 3 (its value at column 10), then a judged
 * metric in group latency and one in the default group. */
#define SCORED(scoring)                                                   \
    "name: t\nanalysis:\n" scoring "  metrics:\n"                         \
    "    - name: lat\n" PROM                                              \
    "      judge: {mann_whitney: {group: latency}}\n"                     \
    "    - name: err\n" PROM "      judge: mann_whitney\n"

/* ---- loading ------------------------------------------------------------ */

static void test_load_every_key(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.yaml",
                        "name: t\n"
                        "analysis:\n"
                        "  interval: 15s\n"
                        "  judge: {pass: 90, marginal: 60, groups: {latency: 70, errors: 30}}\n"
                        "  metrics:\n"
                        "    - name: p99\n" PROM
                        "      judge:\n"
                        "        mann_whitney:\n"
                        "          direction: increase\n"
                        "          tolerance: 0.1\n"
                        "          confidence: 0.95\n"
                        "          effect_size: mean_ratio\n"
                        "          allowed_increase: 1.1\n"
                        "          critical: true\n"
                        "          critical_increase: 1.5\n"
                        "          must_have_data: true\n"
                        "          nan_strategy: replace\n"
                        "          remove_outliers: true\n"
                        "          group: latency\n"
                        "        step: 5s\n"
                        "    - name: success\n" PROM
                        "      judge:\n"
                        "        mann_whitney: {direction: decrease, effect_size: cles,\n"
                        "                       allowed_decrease: 0.3, critical: true,\n"
                        "                       critical_decrease: 0.2, group: errors}\n"
                        "    - name: plain\n" PROM
                        "      judge: mann_whitney\n"
                        "    - name: spelled-out\n" PROM
                        "      judge: {mann_whitney: }\n"
                        "    - name: threshold\n" PROM
                        "      threshold: {max: 1}\n",
                        &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(p.analysis.metric_count, 5);

    const cn_judge_scoring *s = &p.analysis.judge;
    assert_true(s->pass == 90 && s->marginal == 60);
    assert_int_equal(s->group_count, 2);
    assert_string_equal(s->groups[0].group, "latency");
    assert_true(s->groups[0].weight == 70);
    assert_string_equal(s->groups[1].group, "errors");
    assert_true(s->groups[1].weight == 30);

    const cn_metric_judge *j = &p.analysis.metrics[0].judge;
    assert_true(j->enabled);
    assert_int_equal(j->config.direction, CN_DIRECTION_INCREASE);
    assert_true(j->config.tolerance == 0.1);
    assert_true(j->config.confidence == 0.95);
    assert_int_equal(j->config.effect, CN_EFFECT_MEAN_RATIO);
    assert_true(j->config.allowed_increase == 1.1);
    assert_true(isnan(j->config.allowed_decrease));
    assert_true(j->config.critical);
    assert_true(j->config.critical_increase == 1.5);
    assert_true(isnan(j->config.critical_decrease));
    assert_true(j->config.must_have_data);
    assert_int_equal(j->config.nan_strategy, CN_NAN_REPLACE);
    assert_true(j->config.remove_outliers);
    assert_true(j->config.outlier_factor == 3); /* Kayenta's, not a key */
    assert_string_equal(j->group, "latency");
    assert_int_equal(j->step_ms, 5000);
    assert_false(p.analysis.metrics[0].threshold.has_max);

    j = &p.analysis.metrics[1].judge;
    assert_int_equal(j->config.direction, CN_DIRECTION_DECREASE);
    assert_int_equal(j->config.effect, CN_EFFECT_CLES);
    assert_true(j->config.allowed_decrease == 0.3);
    assert_true(j->config.critical_decrease == 0.2);
    assert_string_equal(j->group, "errors");
    assert_int_equal(j->step_ms, 0); /* analysis.interval */

    /* the shorthand and an empty mann_whitney: Kayenta's defaults */
    cn_judge_config def = cn_judge_defaults();
    for (size_t i = 2; i < 4; i++) {
        j = &p.analysis.metrics[i].judge;
        assert_true(j->enabled);
        assert_int_equal(j->config.direction, def.direction);
        assert_true(j->config.tolerance == 0.25 && j->config.confidence == 0.98);
        assert_int_equal(j->config.effect, CN_EFFECT_MEAN_RATIO);
        assert_true(isnan(j->config.allowed_increase) && isnan(j->config.critical_increase));
        assert_false(j->config.critical || j->config.must_have_data ||
                     j->config.remove_outliers);
        assert_int_equal(j->config.nan_strategy, CN_NAN_REMOVE);
        assert_null(j->group);
        assert_int_equal(j->step_ms, 0);
    }
    assert_false(p.analysis.metrics[4].judge.enabled);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_load_defaults_and_json(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.json",
                        "{\"name\": \"t\", \"analysis\": {\"metrics\": [{\"name\": \"a\", "
                        "\"prometheus\": {\"address\": \"http://p\", \"query\": \"q\"}, "
                        "\"judge\": {\"mann_whitney\": {\"confidence\": 0.9, "
                        "\"remove_outliers\": false}, \"step\": \"1m\"}}]}}",
                        &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    const cn_metric_judge *j = &p.analysis.metrics[0].judge;
    assert_true(j->enabled && j->config.confidence == 0.9);
    assert_int_equal(j->step_ms, 60000);
    /* analysis.judge left out: pass 95, marginal 75, groups share alike */
    assert_true(p.analysis.judge.pass == 95 && p.analysis.judge.marginal == 75);
    assert_int_equal(p.analysis.judge.group_count, 0);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* ---- mistakes ----------------------------------------------------------- */

static void test_errors_settings(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"a near miss", MW("          directon: increase\n"), 8, 11,
         "unknown key 'directon' in mann_whitney (did you mean 'direction'?)"},
        {"direction", MW("          direction: up\n"), 8, 22,
         "'direction' must be one of 'either', 'increase', 'decrease', got 'up'"},
        {"tolerance below 0", MW("          tolerance: -0.1\n"), 8, 22,
         "'tolerance' must be at least 0, got '-0.1'"},
        {"confidence 1", MW("          confidence: 1\n"), 8, 23,
         "'confidence' must be less than 1, got '1' (write 0.98 for 98%)"},
        {"confidence 0", MW("          confidence: 0\n"), 8, 23,
         "'confidence' must be greater than 0, got '0'"},
        {"confidence as a percentage", MW("          confidence: 98%\n"), 8, 23,
         "'confidence' expects a number, got '98%'"},
        {"effect_size", MW("          effect_size: mean-ratio\n"), 8, 24,
         "'effect_size' must be one of 'mean_ratio', 'cles', got 'mean-ratio' (did you mean "
         "'mean_ratio'?)"},
        {"critical not a boolean", MW("          critical: yes\n"), 8, 21,
         "'critical' expects true or false, got 'yes'"},
        {"nan_strategy", MW("          nan_strategy: drop\n"), 8, 25,
         "'nan_strategy' must be one of 'remove', 'replace', got 'drop'"},
        {"remove_outliers quoted", MW("          remove_outliers: \"true\"\n"), 8, 28,
         "'remove_outliers' expects true or false"},
        {"must_have_data null", MW("          must_have_data:\n"), 8, 26,
         "'must_have_data' expects true or false"},
        {"empty group", MW("          group: ''\n"), 8, 18, "'group' must not be empty"},
        {"a threshold that is not a number", MW("          allowed_increase: 10%\n"), 8, 29,
         "'allowed_increase' expects a number, got '10%'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Effect-size thresholds: on the side of "no change" that makes sense,
 * within what the measure can reach, and used by the settings given. */
static void test_errors_thresholds(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"allowed increase below no change", MW("          allowed_increase: 0.9\n"), 8, 29,
         "'allowed_increase' must be at least 1, the mean ratio of no change, got '0.9'"},
        {"allowed decrease above no change", MW("          allowed_decrease: 1.2\n"), 8, 29,
         "'allowed_decrease' must be at most 1, the mean ratio of no change, got '1.2'"},
        {"a negative ratio", MW("          allowed_decrease: -0.5\n"), 8, 29,
         "'allowed_decrease' must be 0 or more, got '-0.5' (the mean ratio is never "
         "negative)"},
        {"cles above 1, effect_size after it",
         MW("          allowed_increase: 1.5\n          effect_size: cles\n"), 8, 29,
         "'allowed_increase' must be at most 1, got '1.5' (cles is a probability)"},
        {"cles below no change",
         MW("          effect_size: cles\n          allowed_increase: 0.4\n"), 9, 29,
         "'allowed_increase' must be at least 0.5, the cles of no change, got '0.4'"},
        {"a decrease threshold when only increases fail",
         MW("          direction: increase\n          allowed_decrease: 0.9\n"), 9, 29,
         "'allowed_decrease' has no effect with direction 'increase' (only an increase "
         "fails); remove it"},
        {"an increase threshold when only decreases fail",
         MW("          direction: decrease\n          critical: true\n"
            "          critical_increase: 2\n"),
         10, 30,
         "'critical_increase' has no effect with direction 'decrease' (only a decrease "
         "fails); remove it"},
        {"a critical threshold without critical", MW("          critical_increase: 2\n"), 8,
         30, "'critical_increase' has no effect without 'critical: true'; add it or remove "
             "'critical_increase'"},
        {"critical: false said", MW("          critical: false\n          critical_decrease: 0.5\n"),
         9, 30, "'critical_decrease' has no effect without 'critical: true'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_judge(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"misspelt shorthand", HEAD "    - name: lat\n" PROM "      judge: mann_withney\n", 6,
         14, "'judge' must be one of 'mann_whitney', got 'mann_withney' (did you mean "
             "'mann_whitney'?)"},
        {"null", HEAD "    - name: lat\n" PROM "      judge:\n", 6, 13,
         "'judge' expects 'mann_whitney' or a map {mann_whitney: {...}, step: 10s}, got "
         "nothing (null)"},
        {"no test named", JUDGED("        step: 10s\n"), 7, 9,
         "judge is missing the required key 'mann_whitney'"},
        {"a near miss in judge", MW("          group: g\n        stpe: 10s\n"), 9, 9,
         "unknown key 'stpe' in judge (did you mean 'step'?)"},
        {"step under a second", JUDGED("        mann_whitney:\n        step: 500ms\n"), 8, 15,
         "'step' must be at least 1s, got '500ms'"},
        {"step without a unit", JUDGED("        mann_whitney:\n        step: 10\n"), 8, 15,
         "'step' expects a duration with a unit (ms, s, m, h), got '10'"},
        {"mann_whitney a list", JUDGED("        mann_whitney: [1]\n"), 7, 23,
         "mann_whitney must be a map of keys, got a list"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* A judged metric reads Prometheus range queries of one series and is
 * judged against the baseline: anything else beside judge is refused. */
static void test_errors_beside(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"threshold", MW("") "      threshold: {max: 1}\n", 8, 18,
         "metric 'lat' has 'judge' and 'threshold': it is judged against the baseline's "
         "samples, not a bound; remove 'threshold'"},
        {"baseline", MW("") "      baseline: {max_increase: 10%}\n", 8, 17,
         "metric 'lat' has 'judge' and 'baseline': it is judged against the baseline's "
         "samples already; remove 'baseline'"},
        {"json", HEAD "    - name: lat\n      json: {url: \"http://j\"}\n"
                      "      judge: mann_whitney\n",
         5, 13, "metric 'lat' has 'judge' and 'json': its samples come from Prometheus range "
                "queries, so its source is 'prometheus'; remove 'json'"},
        {"no source", HEAD "    - name: lat\n      judge: mann_whitney\n", 4, 7,
         "metric 'lat' has 'judge' but no source; give 'prometheus' with the query whose "
         "samples are compared"},
        {"reduce", HEAD "    - name: lat\n"
                        "      prometheus: {address: \"http://p\", query: q, reduce: max}\n"
                        "      judge: mann_whitney\n",
         5, 59, "'reduce' is not used by a judged metric: its range query must return one "
                "series; aggregate in the query, e.g. sum by (le) (...)"},
        {"burn_rate",
         HEAD "    - name: lat\n"
              "      burn_rate: {slo: 99%, errors: 'e[{{window}}]', total: 't[{{window}}]',\n"
              "                  prometheus: {address: \"http://p\"}}\n"
              "      judge: mann_whitney\n",
         7, 14, "metric 'lat' has 'burn_rate' and 'judge': a metric is judged one way; remove "
                "'judge'"},
        {"an AI-assisted threshold",
         MW("") "ai_assisted:\n  analysis:\n    thresholds:\n      lat: {max: 1}\n", 11, 7,
         "'thresholds' names metric 'lat', a judged metric: it has no threshold to tighten "
         "(it is compared with the baseline)"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_scoring(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"pass above 100", SCORED("  judge: {pass: 101}\n"), 3, 17,
         "'pass' must be at most 100, got '101'"},
        {"marginal below 0", SCORED("  judge: {marginal: -1}\n"), 3, 21,
         "'marginal' must be at least 0, got '-1'"},
        {"marginal above pass", SCORED("  judge: {pass: 70, marginal: 80}\n"), 3, 31,
         "'marginal' (80) must not be above 'pass' (70): a score between them would be both"},
        {"marginal above the default pass", SCORED("  judge: {marginal: 96}\n"), 3, 21,
         "'marginal' (96) must not be above 'pass' (95)"},
        {"a near miss", SCORED("  judge: {marginl: 50}\n"), 3, 11,
         "unknown key 'marginl' in analysis.judge (did you mean 'marginal'?)"},
        {"weights over 100", SCORED("  judge: {groups: {latency: 80, default: 40}}\n"), 3, 19,
         "the weights in 'groups' add up to 120, more than 100"},
        {"a negative weight", SCORED("  judge: {groups: {latency: -1}}\n"), 3, 29,
         "'latency' must be at least 0, got '-1'"},
        {"a weight as a percentage", SCORED("  judge: {groups: {latency: 60%}}\n"), 3, 29,
         "'latency' expects a number, got '60%'"},
        {"no groups", SCORED("  judge: {groups: {}}\n"), 3, 19, "'groups'"},
        {"a misspelt group", SCORED("  judge: {groups: {latncy: 60}}\n"), 3, 20,
         "group 'latncy' in analysis.judge 'groups' is not the group of any judged metric "
         "(did you mean 'latency'?)"},
        {"a group nobody is in", SCORED("  judge: {groups: {saturation: 60}}\n"), 3, 20,
         "group 'saturation' in analysis.judge 'groups' is not the group of any judged "
         "metric; their groups: latency, default"},
        {"every group weighed, short of 100",
         SCORED("  judge: {groups: {latency: 40, default: 20}}\n"), 3, 19,
         "the weights in 'groups' add up to 60 and every judged metric's group has one, so "
         "the score can never exceed 60; make them add up to 100"},
        {"no judged metric",
         "name: t\nanalysis:\n  judge: {pass: 90}\n  metrics:\n    - name: m\n" PROM
         "      threshold: {max: 1}\n",
         3, 10, "'judge' in analysis scores judged metrics, but no metric has 'judge'; remove "
                "it, or give a metric 'judge: mann_whitney'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* The groups that are weighed and those that share what is left. */
static void test_scoring_accepted(void **state)
{
    (void)state;
    static const char *const ok[] = {
        SCORED("  judge: {groups: {latency: 60}}\n"),           /* default shares 40 */
        SCORED("  judge: {groups: {latency: 60, default: 40}}\n"),
        SCORED("  judge: {pass: 80, marginal: 80}\n"),          /* no marginal band */
        SCORED("  judge:\n"),                                   /* all defaults */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cn_policy p;
        cn_diags d;
        int rc = cn_test_load_policy("p.yaml", ok[i], &p, &d);
        if (rc) {
            cn_test_print_diags(&d);
            fail_msg("policy %zu refused", i);
        }
        cn_policy_free(&p);
        cn_diags_free(&d);
    }
}

/* Every mistake of one file in one run. */
static void test_all_reported(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.yaml",
                        "name: t\nanalysis:\n  judge: {pass: 50, marginal: 60}\n"
                        "  metrics:\n    - name: lat\n"
                        "      json: {url: \"http://j\"}\n"
                        "      threshold: {max: 1}\n"
                        "      judge: {mann_whitney: {confidence: 2, directon: x}, step: 1}\n",
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
        cmocka_unit_test(test_load_every_key),
        cmocka_unit_test(test_load_defaults_and_json),
        cmocka_unit_test(test_errors_settings),
        cmocka_unit_test(test_errors_thresholds),
        cmocka_unit_test(test_errors_judge),
        cmocka_unit_test(test_errors_beside),
        cmocka_unit_test(test_errors_scoring),
        cmocka_unit_test(test_scoring_accepted),
        cmocka_unit_test(test_all_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
