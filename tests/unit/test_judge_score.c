/* The judge's scorer: Kayenta's ScorerSuite (spinnaker/kayenta,
 * kayenta-judge WeightedSumScorer) ported case by case, then what it
 * leaves open: required nodata and errors counted as failures, a critical
 * failure and too much nodata forcing 0, shared weights, the verdict's
 * thresholds and the settings it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/judge.h"
#include "canary/status.h"
#include "checks.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const cn_judge_result PASS = {.classification = CN_JUDGE_PASS};
static const cn_judge_result HIGH = {.classification = CN_JUDGE_HIGH};
static const cn_judge_result LOW = {.classification = CN_JUDGE_LOW};
static const cn_judge_result NODATA = {.classification = CN_JUDGE_NODATA};
static const cn_judge_result REQUIRED = {.classification = CN_JUDGE_NODATA,
                                         .nodata_fails = true};
static const cn_judge_result ERROR = {.classification = CN_JUDGE_ERROR};
static const cn_judge_result CRITICAL = {.classification = CN_JUDGE_HIGH,
                                         .critical_failure = true,
                                         .reason = "high: latency doubled"};

static cn_score_result score(const cn_score_metric *m, size_t n, const cn_group_weight *w,
                             size_t nw)
{
    cn_score_config c = {.weights = w, .weight_count = nw, .pass = 95, .marginal = 75};
    cn_score_result r;
    int rc = cn_judge_score(m, n, &c, &r);
    if (rc) {
        print_error("cn_judge_score %d: %s\n", rc, r.reason);
        fail();
    }
    return r;
}

/* ScorerSuite "Weighted Sum Group Scorer: Single Metric Pass", "Single
 * Metric Fail", "One Group, Two Metrics", "One Group, Three Metrics". */
static void test_scorer_suite_one_group(void **state)
{
    (void)state;
    cn_score_metric pass[] = {{"test-metric-pass", "test-group", &PASS}};
    assert_true(score(pass, 1, NULL, 0).score == 100.0);
    cn_score_metric high[] = {{"test-metric-high", "test-group", &HIGH}};
    assert_true(score(high, 1, NULL, 0).score == 0.0);
    cn_score_metric two[] = {{"test-metric-pass", "test-group", &PASS},
                             {"test-metric-high", "test-group", &HIGH}};
    assert_true(score(two, 2, NULL, 0).score == 50.0);
    cn_score_metric three[] = {{"test-metric-pass", "test-group", &PASS},
                               {"test-metric-high", "test-group", &HIGH},
                               {"test-metric-low", "test-group", &LOW}};
    cn_score_result r = score(three, 3, NULL, 0);
    assert_true(fabs(r.score - 33.33) <= 1.0e-2);
    assert_int_equal(r.group_count, 1);
    assert_string_equal(r.groups[0].group, "test-group");
    assert_int_equal(r.groups[0].pass, 1);
    assert_int_equal(r.groups[0].high, 1);
    assert_int_equal(r.groups[0].low, 1);
    assert_int_equal(r.verdict, CN_SCORE_FAIL);
}

/* ScorerSuite "Two Groups, Three Metrics" and "... (Equal Weight)". */
static void test_scorer_suite_two_groups(void **state)
{
    (void)state;
    const cn_group_weight w[] = {{"group-1", 75.0}, {"group-2", 25.0}};
    cn_score_metric m[] = {{"test-metric-pass-1", "group-1", &PASS},
                           {"test-metric-pass-2", "group-1", &PASS},
                           {"test-metric-fail", "group-2", &HIGH}};
    assert_true(score(m, 3, w, 2).score == 75.0);

    const cn_group_weight eq[] = {{"group-1", 50.0}, {"group-2", 50.0}};
    cn_score_metric e[] = {{"test-metric-pass", "group-1", &PASS},
                           {"test-metric-fail-1", "group-1", &HIGH},
                           {"test-metric-fail-2", "group-2", &HIGH}};
    assert_true(score(e, 3, eq, 2).score == 25.0);
}

/* ScorerSuite "Weighted Sum Group Scorer: No Data". */
static void test_scorer_suite_no_data(void **state)
{
    (void)state;
    cn_score_metric m[] = {{"test-metric-nodata", "test-group", &NODATA}};
    cn_score_result r = score(m, 1, NULL, 0);
    assert_true(r.score == 0.0);
    assert_true(r.forced);
    assert_int_equal(r.verdict, CN_SCORE_FAIL);
    assert_contains(r.reason, "fail: 1 of 1 metrics had no data (50% or more fails)");
}

static void test_nodata_and_errors(void **state)
{
    (void)state;
    /* Below half nodata: left out of its group; a group with nothing else
     * counts as 100 (Kayenta). */
    cn_score_metric some[] = {{"a", "g1", &PASS}, {"b", "g1", &NODATA}, {"c", "g2", &NODATA},
                              {"d", "g1", &PASS}, {"e", "g1", &HIGH}};
    cn_score_result r = score(some, 5, NULL, 0);
    assert_false(r.forced);
    assert_int_equal(r.group_count, 2);
    assert_true(r.groups[1].no_data);
    assert_true(fabs(r.groups[0].score - 66.666666) < 1e-4);
    assert_true(fabs(r.score - 83.33) < 1e-9); /* 66.67 x 50% + 100 x 50% */
    assert_int_equal(r.verdict, CN_SCORE_MARGINAL);

    /* Exactly half: forced. */
    cn_score_metric half[] = {{"a", "g", &PASS}, {"b", "g", &NODATA}};
    r = score(half, 2, NULL, 0);
    assert_true(r.forced && r.score == 0);

    /* must_have_data: a failed metric, not missing data. */
    cn_score_metric req[] = {{"a", "g", &PASS}, {"b", "g", &REQUIRED}};
    r = score(req, 2, NULL, 0);
    assert_false(r.forced);
    assert_true(r.score == 50.0);
    assert_int_equal(r.groups[0].required_nodata, 1);

    /* An error is never a pass (Kayenta leaves it out). */
    cn_score_metric err[] = {{"a", "g", &PASS}, {"b", "g", &ERROR}};
    r = score(err, 2, NULL, 0);
    assert_true(r.score == 50.0);
    assert_int_equal(r.groups[0].error, 1);
}

static void test_critical_forces_zero(void **state)
{
    (void)state;
    cn_score_metric m[] = {{"a", "g", &PASS}, {"b", "g", &PASS}, {"latency", "h", &CRITICAL}};
    cn_score_result r = score(m, 3, NULL, 0);
    assert_true(r.forced);
    assert_true(r.score == 0);
    assert_int_equal(r.verdict, CN_SCORE_FAIL);
    assert_contains(r.reason, "fail: critical metric 'latency' failed: high: latency doubled");
}

static void test_weights_and_verdicts(void **state)
{
    (void)state;
    /* Unlisted groups share what is left: 60 named, 20 each for b and c. */
    const cn_group_weight w[] = {{"a", 60}};
    cn_score_metric m[] = {{"1", "a", &PASS}, {"2", "b", &HIGH}, {"3", "c", &PASS},
                           {"4", NULL, &PASS}};
    cn_score_result r = score(m, 4, w, 1);
    assert_int_equal(r.group_count, 4);
    assert_string_equal(r.groups[3].group, "default");
    assert_true(fabs(r.groups[1].weight - 40.0 / 3) < 1e-12);
    assert_true(fabs(r.score - (60 + 40.0 / 3 * 2)) < 0.005);
    assert_int_equal(r.verdict, CN_SCORE_MARGINAL); /* 86.67: below 95, not below 75 */

    cn_score_config c = {.pass = 80, .marginal = 50};
    cn_score_metric all[] = {{"1", "g", &PASS}, {"2", "g", &PASS}, {"3", "g", &PASS},
                             {"4", "g", &PASS}, {"5", "g", &HIGH}};
    assert_int_equal(cn_judge_score(all, 5, &c, &r), CN_OK);
    assert_true(r.score == 80);
    assert_int_equal(r.verdict, CN_SCORE_PASS);
    assert_contains(r.reason, "pass: score 80.00 reaches pass 80");
    c.pass = 90;
    assert_int_equal(cn_judge_score(all, 5, &c, &r), CN_OK);
    assert_int_equal(r.verdict, CN_SCORE_MARGINAL);
    assert_contains(r.reason, "marginal: score 80.00 is below pass 90 but reaches marginal 50");
    c.marginal = 85;
    assert_int_equal(cn_judge_score(all, 5, &c, &r), CN_OK);
    assert_int_equal(r.verdict, CN_SCORE_FAIL);
    assert_contains(r.reason, "fail: score 80.00 is below marginal 85");
    assert_string_equal(cn_score_verdict_name(CN_SCORE_MARGINAL), "marginal");
}

static void test_refused(void **state)
{
    (void)state;
    cn_score_metric m[] = {{"a", "g", &PASS}};
    cn_score_config c = {.pass = 95, .marginal = 75};
    cn_score_result r;
    assert_int_equal(cn_judge_score(m, 0, &c, &r), CN_EINVAL);
    assert_contains(r.reason, "no metrics to score");
    cn_score_metric none[] = {{"a", "g", NULL}};
    assert_int_equal(cn_judge_score(none, 1, &c, &r), CN_EINVAL);
    c.marginal = 96;
    assert_int_equal(cn_judge_score(m, 1, &c, &r), CN_EINVAL);
    assert_contains(r.reason, "marginal <= pass");
    c.marginal = 75;
    const cn_group_weight over[] = {{"a", 60}, {"b", 50}};
    c.weights = over;
    c.weight_count = 2;
    assert_int_equal(cn_judge_score(m, 1, &c, &r), CN_EINVAL);
    assert_contains(r.reason, "group weights add up to 110, more than 100");
    const cn_group_weight neg[] = {{"a", -1}};
    c.weights = neg;
    c.weight_count = 1;
    assert_int_equal(cn_judge_score(m, 1, &c, &r), CN_EINVAL);
    const cn_group_weight twice[] = {{"a", 10}, {"a", 20}};
    c.weights = twice;
    c.weight_count = 2;
    assert_int_equal(cn_judge_score(m, 1, &c, &r), CN_EINVAL);
    assert_contains(r.reason, "group 'a' has two weights");

    static char names[CN_SCORE_MAX_GROUPS + 1][8];
    cn_score_metric many[CN_SCORE_MAX_GROUPS + 1];
    for (size_t i = 0; i < N_OF(many); i++) {
        snprintf(names[i], sizeof names[i], "g%zu", i);
        many[i] = (cn_score_metric){"m", names[i], &PASS};
    }
    c.weights = NULL;
    c.weight_count = 0;
    assert_int_equal(cn_judge_score(many, N_OF(many), &c, &r), CN_ELIMIT);
    assert_int_equal(cn_judge_score(many, N_OF(many) - 1, &c, &r), CN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scorer_suite_one_group),
        cmocka_unit_test(test_scorer_suite_two_groups),
        cmocka_unit_test(test_scorer_suite_no_data),
        cmocka_unit_test(test_nodata_and_errors),
        cmocka_unit_test(test_critical_forces_zero),
        cmocka_unit_test(test_weights_and_verdicts),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
