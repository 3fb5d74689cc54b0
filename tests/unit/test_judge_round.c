/* A round of the statistical judge inside a rollout (judge_round.h): how
 * many samples can show a difference, canary's departures from Kayenta
 * for missing and too few samples, the mapping from classifications and
 * score to the outcomes the state machine counts, the words and the
 * structured evidence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/judge_round.h"
#include "canary/status.h"
#include "checks.h"

/* ---- how many samples ---------------------------------------------------- */

static void test_can_reject(void **state)
{
    (void)state;
    /* the largest |z| of n against m, no ties: 5 a side at 98% (2.51 > 2.326),
     * 4 a side at 95% (2.17 > 1.96) */
    assert_true(cn_judge_can_reject(5, 5, 0.98));
    assert_false(cn_judge_can_reject(4, 4, 0.98));
    assert_true(cn_judge_can_reject(4, 4, 0.95));
    assert_false(cn_judge_can_reject(3, 3, 0.95));
    /* one value against many never shows anything; two against 100 can */
    assert_false(cn_judge_can_reject(1, 100, 0.98));
    assert_true(cn_judge_can_reject(2, 100, 0.98));
    assert_true(cn_judge_can_reject(100, 2, 0.98));
    assert_false(cn_judge_can_reject(0, 5, 0.98));
    assert_false(cn_judge_can_reject(5, 5, 1));
    assert_int_equal(cn_judge_min_per_side(0.98), 5);
    assert_int_equal(cn_judge_min_per_side(0.95), 4);
    assert_int_equal(cn_judge_min_per_side(0.99), 6);
}

/* ---- one metric ---------------------------------------------------------- */

static const double BASE[20] = {99.0,  102.0, 99.1,  98.7,  96.3,  99.1,  104.4,
                                101.7, 104.1, 101.0, 101.6, 100.7, 93.3,  103.4,
                                102.0, 102.0, 93.2,  93.0,  96.4,  98.1};
static const double SLOW[20] = {139.9, 141.9, 140.7, 136.8, 137.2, 140.3, 142.4,
                                146.9, 145.8, 144.6, 139.7, 138.5, 132.3, 143.1,
                                143.9, 142.7, 131.9, 130.1, 134.8, 141.8};

static cn_reading reading(cn_reading_kind kind, const char *detail)
{
    cn_reading r = {.kind = kind, .value = NAN};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    return r;
}

static cn_round_metric judged(const cn_judge_config *c, const cn_reading *cr,
                              const double *cv, size_t n, const cn_reading *br,
                              const double *bv, size_t m)
{
    cn_round_input in = {.name = "p99", .group = "latency", .config = c, .canary = cr,
                         .baseline = br, .canary_values = cv, .baseline_values = bv,
                         .canary_count = n, .baseline_count = m};
    cn_round_metric out;
    cn_round_judge(&in, &out);
    return out;
}

static void test_judge_one(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    c.direction = CN_DIRECTION_INCREASE;
    c.allowed_increase = 1.1;
    cn_reading ok = reading(CN_READING_VALUE, "");

    cn_round_metric m = judged(&c, &ok, SLOW, 20, &ok, BASE, 20);
    assert_false(m.error || m.too_few);
    assert_int_equal(m.result.classification, CN_JUDGE_HIGH);
    assert_true(m.result.tested);
    assert_string_equal(m.name, "p99");
    assert_string_equal(m.group, "latency");

    /* a side whose query failed is an error, never judged */
    cn_reading down = reading(CN_READING_ERROR, "HTTP 503: unavailable");
    m = judged(&c, &ok, SLOW, 20, &down, NULL, 0);
    assert_true(m.error);
    assert_int_equal(m.result.classification, CN_JUDGE_ERROR);
    assert_string_equal(m.result.reason, "baseline samples: HTTP 503: unavailable");
    m = judged(&c, &down, NULL, 0, &ok, BASE, 20);
    assert_string_equal(m.result.reason, "canary samples: HTTP 503: unavailable");
    m = judged(&c, NULL, NULL, 0, &ok, BASE, 20);
    assert_true(m.error);
    assert_string_equal(m.result.reason, "canary samples: not read");

    /* values the judge refuses (a reading would not carry them) */
    const double inf[3] = {1, INFINITY, 2};
    m = judged(&c, &ok, inf, 3, &ok, BASE, 20);
    assert_true(m.error);
    assert_contains(m.result.reason, "infinite value");
}

static void test_missing_samples_never_pass(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    cn_reading ok = reading(CN_READING_VALUE, "");
    cn_reading empty = reading(CN_READING_NODATA, "empty matrix (no series matched)");

    cn_round_metric m = judged(&c, &ok, SLOW, 20, &empty, NULL, 0);
    assert_false(m.error);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_false(m.result.nodata_fails || m.result.critical_failure);
    assert_string_equal(m.result.reason,
                        "no baseline samples (empty matrix (no series matched))");

    /* Kayenta: an empty side under replace "means nothing happened", a pass */
    c.nan_strategy = CN_NAN_REPLACE;
    m = judged(&c, &empty, NULL, 0, &ok, BASE, 20);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_string_equal(m.result.reason, "no canary samples (empty matrix (no series matched))");
    c.must_have_data = true;
    m = judged(&c, &ok, SLOW, 20, &ok, NULL, 0);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_true(m.result.nodata_fails);
    assert_string_equal(m.result.reason, "no baseline samples (no samples); must_have_data "
                                         "counts it as a failed metric");

    /* with remove, a critical metric without data fails critically (Kayenta) */
    c = cn_judge_defaults();
    c.critical = true;
    m = judged(&c, &empty, NULL, 0, &ok, BASE, 20);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_true(m.result.critical_failure);
    assert_string_equal(m.result.reason, "no canary samples (empty matrix (no series "
                                         "matched)); the metric is critical, so the "
                                         "judgement fails");

    /* samples that are all NaN: the judge's own nodata */
    c = cn_judge_defaults();
    const double nan2[2] = {NAN, NAN};
    m = judged(&c, &ok, nan2, 2, &ok, BASE, 20);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_false(m.too_few);
    assert_contains(m.result.reason, "the canary sample holds no values to compare");
}

static void test_too_few_samples(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    cn_reading ok = reading(CN_READING_VALUE, "");
    /* 4 against 4, entirely apart: no test at 98% can tell */
    cn_round_metric m = judged(&c, &ok, SLOW, 4, &ok, BASE, 4);
    assert_true(m.too_few);
    assert_int_equal(m.result.classification, CN_JUDGE_NODATA);
    assert_true(m.result.tested); /* the numbers are still there */
    assert_string_equal(m.result.reason, "too few samples (4 canary, 4 baseline; at 98% "
                                         "confidence the test needs 5 a side to show a "
                                         "difference)");
    /* 5 a side can: the same samples are high */
    m = judged(&c, &ok, SLOW, 5, &ok, BASE, 5);
    assert_false(m.too_few);
    assert_int_equal(m.result.classification, CN_JUDGE_HIGH);
    /* and at 95% 4 a side suffice */
    c.confidence = 0.95;
    m = judged(&c, &ok, SLOW, 4, &ok, BASE, 4);
    assert_false(m.too_few);
    assert_int_equal(m.result.classification, CN_JUDGE_HIGH);
    /* a pass from enough samples stays a pass */
    c = cn_judge_defaults();
    m = judged(&c, &ok, BASE, 20, &ok, BASE, 20);
    assert_false(m.too_few);
    assert_int_equal(m.result.classification, CN_JUDGE_PASS);
}

/* ---- the round: classifications and score to outcomes -------------------- */

static const cn_judge_config *defaults(void)
{
    static cn_judge_config c;
    c = cn_judge_defaults();
    return &c;
}

/* A metric as cn_round_judge leaves it, untested, with its class. */
static cn_round_metric as(const char *name, const char *group, cn_judge_class k)
{
    cn_round_metric m;
    memset(&m, 0, sizeof m);
    m.name = name;
    m.group = group;
    m.config = defaults();
    m.error = k == CN_JUDGE_ERROR;
    m.result.classification = k;
    m.result.u = m.result.estimate = m.result.ci_low = m.result.ci_high = NAN;
    m.result.p_value = m.result.band = m.result.effect_size = NAN;
    snprintf(m.result.reason, sizeof m.result.reason, "%s",
             k == CN_JUDGE_ERROR ? "baseline samples: HTTP 503" : cn_judge_class_name(k));
    return m;
}

static const cn_score_config SCORE = {.pass = 95, .marginal = 75};

static void test_round_pass(void **state)
{
    (void)state;
    cn_round_metric m[2] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_PASS)};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &SCORE, &sum), CN_OK);
    assert_true(sum.scored);
    assert_true(sum.score.score == 100);
    assert_int_equal(sum.outcome, CN_OUTCOME_PASS);
    assert_string_equal(sum.words, "score 100 >= pass 95");
    assert_int_equal(m[0].outcome, CN_OUTCOME_PASS);
    assert_int_equal(m[1].outcome, CN_OUTCOME_PASS);
    assert_string_equal(m[0].why, "pass; score 100 >= pass 95");
}

static void test_round_fail(void **state)
{
    (void)state;
    cn_round_metric m[2] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_HIGH)};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &SCORE, &sum), CN_OK);
    assert_true(sum.score.score == 50);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    /* every judged metric carries the round's outcome, so failure_limit
     * counts failed rounds */
    assert_int_equal(m[0].outcome, CN_OUTCOME_FAIL);
    assert_int_equal(m[1].outcome, CN_OUTCOME_FAIL);
    assert_string_equal(m[0].why, "pass; score 50 < marginal 75; not a pass: b high");
    assert_string_equal(m[1].why, "high; score 50 < marginal 75");
    size_t order[2];
    cn_round_order(m, 2, order);
    assert_int_equal(order[0], 1); /* the metric that failed the round first */
    assert_int_equal(order[1], 0);

    /* weights: latency 60 (high), errors 40 (pass): 40 */
    cn_group_weight w[2] = {{"latency", 60}, {"errors", 40}};
    cn_score_config sc = {.weights = w, .weight_count = 2, .pass = 95, .marginal = 75};
    cn_round_metric g[2] = {as("p99", "latency", CN_JUDGE_HIGH),
                            as("errors", "errors", CN_JUDGE_PASS)};
    assert_int_equal(cn_round_decide(g, 2, &sc, &sum), CN_OK);
    assert_true(sum.score.score == 40);
    assert_string_equal(g[0].why, "high; score 40 < marginal 75");
    assert_int_equal(g[1].outcome, CN_OUTCOME_FAIL);
}

static void test_round_marginal_is_inconclusive(void **state)
{
    (void)state;
    cn_round_metric m[4] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_PASS),
                            as("c", NULL, CN_JUDGE_PASS), as("d", NULL, CN_JUDGE_LOW)};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 4, &SCORE, &sum), CN_OK);
    assert_true(sum.score.score == 75);
    assert_int_equal(sum.score.verdict, CN_SCORE_MARGINAL);
    assert_int_equal(sum.outcome, CN_OUTCOME_NODATA);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(m[i].outcome, CN_OUTCOME_NODATA);
    assert_string_equal(m[3].why, "no data: low; score 75 between marginal 75 and pass 95, "
                                  "inconclusive");
    assert_string_equal(m[0].why, "no data: pass; score 75 between marginal 75 and pass 95, "
                                  "inconclusive; not a pass: d low");
}

static void test_round_nodata(void **state)
{
    (void)state;
    /* half the metrics without data: Kayenta forces 0, canary waits */
    cn_round_metric m[2] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_NODATA)};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &SCORE, &sum), CN_OK);
    assert_true(sum.score.forced && sum.score.score == 0);
    assert_true(sum.nodata_forced);
    assert_int_equal(sum.outcome, CN_OUTCOME_NODATA);
    assert_int_equal(m[0].outcome, CN_OUTCOME_NODATA);
    assert_int_equal(m[1].outcome, CN_OUTCOME_NODATA);
    assert_string_equal(sum.words, "score 0: 1 of 2 metrics without data, inconclusive (the rest scores 100)");
    assert_string_equal(m[1].why, "no data: nodata; score 0: 1 of 2 metrics without data, "
                                  "inconclusive (the rest scores 100)");
    assert_true(sum.data_score == 100);

    /* ...but when the metrics with data fail, the round fails */
    m[0] = as("a", NULL, CN_JUDGE_HIGH);
    assert_int_equal(cn_round_decide(m, 2, &SCORE, &sum), CN_OK);
    assert_true(sum.nodata_forced && sum.data_score == 0);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    assert_int_equal(m[1].outcome, CN_OUTCOME_FAIL);
    assert_string_equal(m[0].why, "high; score 0 < marginal 75: 1 of 2 metrics without data, "
                                  "and the rest scores 0; not a pass: b nodata");

    /* less than half: the others pass, but a metric without data never does */
    cn_round_metric k[3] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_NODATA),
                            as("c", NULL, CN_JUDGE_PASS)};
    assert_int_equal(cn_round_decide(k, 3, &SCORE, &sum), CN_OK);
    assert_int_equal(sum.outcome, CN_OUTCOME_PASS);
    assert_int_equal(k[0].outcome, CN_OUTCOME_PASS);
    assert_int_equal(k[1].outcome, CN_OUTCOME_NODATA);
    assert_int_equal(k[2].outcome, CN_OUTCOME_PASS);
    assert_string_equal(k[1].why, "no data: nodata; score 100 >= pass 95");

    /* too few samples reads as such among the others */
    k[1].too_few = true;
    assert_int_equal(cn_round_decide(k, 3, &SCORE, &sum), CN_OK);
    k[0].result.classification = CN_JUDGE_HIGH;
    assert_int_equal(cn_round_decide(k, 3, &SCORE, &sum), CN_OK);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    assert_string_equal(k[2].why, "pass; score 50 < marginal 75; not a pass: a high, b too "
                                  "few samples");

    /* must_have_data: the missing data counts as a failed metric */
    cn_round_metric r[2] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_NODATA)};
    r[1].result.nodata_fails = true;
    assert_int_equal(cn_round_decide(r, 2, &SCORE, &sum), CN_OK);
    assert_false(sum.score.forced);
    assert_true(sum.score.score == 50);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    assert_int_equal(r[1].outcome, CN_OUTCOME_FAIL);
}

static void test_round_critical(void **state)
{
    (void)state;
    cn_round_metric m[4] = {as("a", NULL, CN_JUDGE_PASS), as("b", NULL, CN_JUDGE_PASS),
                            as("c", NULL, CN_JUDGE_PASS), as("p99", NULL, CN_JUDGE_HIGH)};
    m[3].result.critical_failure = true;
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 4, &SCORE, &sum), CN_OK);
    assert_true(sum.score.score == 0);
    assert_false(sum.nodata_forced);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    assert_string_equal(sum.words, "score 0 < marginal 75 (critical metric 'p99' failed)");
    assert_int_equal(m[0].outcome, CN_OUTCOME_FAIL);

    /* a critical failure with half the metrics nodata is still a failure */
    cn_round_metric k[2] = {as("p99", NULL, CN_JUDGE_NODATA), as("b", NULL, CN_JUDGE_PASS)};
    k[0].result.critical_failure = true;
    assert_int_equal(cn_round_decide(k, 2, &SCORE, &sum), CN_OK);
    assert_false(sum.nodata_forced);
    assert_int_equal(sum.outcome, CN_OUTCOME_FAIL);
    assert_int_equal(k[0].outcome, CN_OUTCOME_FAIL);
}

static void test_round_errors(void **state)
{
    (void)state;
    /* an error is that metric's; scored as no data, it neither fails the
     * round nor, as a third of the evidence, holds it */
    cn_round_metric m[3] = {as("a", "x", CN_JUDGE_ERROR), as("b", "y", CN_JUDGE_PASS),
                            as("c", "y", CN_JUDGE_PASS)};
    cn_group_weight w[2] = {{"x", 60}, {"y", 40}};
    cn_score_config sc = {.weights = w, .weight_count = 2, .pass = 95, .marginal = 75};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 3, &sc, &sum), CN_OK);
    assert_true(sum.score.score == 100); /* group x keeps its weight, with no data */
    assert_int_equal(m[0].outcome, CN_OUTCOME_ERROR);
    assert_string_equal(m[0].why, "error: baseline samples: HTTP 503");
    assert_int_equal(m[1].outcome, CN_OUTCOME_PASS);
    assert_int_equal(m[2].outcome, CN_OUTCOME_PASS);

    /* half the evidence: inconclusive */
    cn_round_metric k[2] = {as("a", NULL, CN_JUDGE_ERROR), as("b", NULL, CN_JUDGE_PASS)};
    assert_int_equal(cn_round_decide(k, 2, &SCORE, &sum), CN_OK);
    assert_int_equal(k[0].outcome, CN_OUTCOME_ERROR);
    assert_int_equal(k[1].outcome, CN_OUTCOME_NODATA);
    assert_string_equal(k[1].why, "no data: pass; score 0: 1 of 2 metrics without data, "
                                  "inconclusive (the rest scores 100)");

    /* a critical metric's error is not a critical failure: the error limit acts */
    k[0].result.critical_failure = false;
    cn_judge_config crit = cn_judge_defaults();
    crit.critical = true;
    k[0].config = &crit;
    assert_int_equal(cn_round_decide(k, 2, &SCORE, &sum), CN_OK);
    assert_int_equal(k[1].outcome, CN_OUTCOME_NODATA);

    /* nothing judged: every metric an error, no score */
    cn_round_metric e[2] = {as("a", NULL, CN_JUDGE_ERROR), as("b", NULL, CN_JUDGE_ERROR)};
    assert_int_equal(cn_round_decide(e, 2, &SCORE, &sum), CN_OK);
    assert_false(sum.scored);
    assert_int_equal(sum.outcome, CN_OUTCOME_ERROR);
    assert_int_equal(e[1].outcome, CN_OUTCOME_ERROR);
    size_t order[2];
    cn_round_order(e, 2, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);

    /* thresholds the scorer refuses: every metric an error saying so */
    cn_score_config bad = {.pass = 50, .marginal = 60};
    cn_round_metric b[1] = {as("a", NULL, CN_JUDGE_PASS)};
    assert_int_equal(cn_round_decide(b, 1, &bad, &sum), CN_EINVAL);
    assert_int_equal(b[0].outcome, CN_OUTCOME_ERROR);
    assert_prefix(b[0].why, "error: the judged metrics cannot be scored: thresholds must be");
}

/* The words of tested metrics: what a person reads in the event log. */
static void test_round_words(void **state)
{
    (void)state;
    cn_judge_config lat = cn_judge_defaults();
    lat.direction = CN_DIRECTION_INCREASE;
    lat.allowed_increase = 1.1;
    cn_judge_config err = cn_judge_defaults();
    err.effect = CN_EFFECT_CLES;
    cn_reading ok = reading(CN_READING_VALUE, "");
    cn_round_input in[2] = {
        {.name = "p99-latency", .group = "latency", .config = &lat, .canary = &ok,
         .baseline = &ok, .canary_values = SLOW, .baseline_values = BASE, .canary_count = 20,
         .baseline_count = 20},
        {.name = "errors", .group = "errors", .config = &err, .canary = &ok, .baseline = &ok,
         .canary_values = BASE, .baseline_values = BASE, .canary_count = 20,
         .baseline_count = 20},
    };
    cn_round_metric m[2];
    cn_round_judge(&in[0], &m[0]);
    cn_round_judge(&in[1], &m[1]);
    cn_group_weight w[2] = {{"latency", 60}, {"errors", 40}};
    cn_score_config sc = {.weights = w, .weight_count = 2, .pass = 95, .marginal = 75};
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &sc, &sum), CN_OK);
    assert_string_equal(m[0].why, "high (estimate +40.7, ci [37.7, 43.7], mean ratio 1.41 >= "
                                  "1.1; 20 and 20 samples); score 40 < marginal 75");
    assert_string_equal(m[1].why, "like the baseline (estimate +0, ci [-2.7, 2.7], cles 0.5; "
                                  "20 and 20 samples); score 40 < marginal 75; not a pass: "
                                  "p99-latency high");

    /* critical, and low with its threshold */
    lat.critical = true;
    cn_round_judge(&in[0], &m[0]);
    assert_int_equal(cn_round_decide(m, 1, &sc, &sum), CN_OK);
    assert_string_equal(m[0].why, "high (estimate +40.7, ci [37.7, 43.7], mean ratio 1.41 >= "
                                  "1.1, critical; 20 and 20 samples); score 0 < marginal 75 "
                                  "(critical metric 'p99-latency' failed)");
    cn_judge_config dec = cn_judge_defaults();
    cn_round_input low = {.name = "rps", .config = &dec, .canary = &ok, .baseline = &ok,
                          .canary_values = BASE, .baseline_values = SLOW, .canary_count = 20,
                          .baseline_count = 20};
    cn_round_judge(&low, &m[0]);
    assert_int_equal(cn_round_decide(m, 1, &sc, &sum), CN_OK);
    assert_string_equal(m[0].why, "low (estimate -40.7, ci [-43.7, -37.7], mean ratio 0.712 "
                                  "<= 1; 20 and 20 samples); score 0 < marginal 75");
}

/* ---- the evidence as JSON ------------------------------------------------ */

static void test_round_data(void **state)
{
    (void)state;
    cn_judge_config lat = cn_judge_defaults();
    lat.allowed_increase = 1.1;
    cn_reading ok = reading(CN_READING_VALUE, "");
    cn_reading down = reading(CN_READING_ERROR, "HTTP 500");
    cn_round_input in[2] = {
        {.name = "p99", .group = "latency", .config = &lat, .canary = &ok, .baseline = &ok,
         .canary_values = SLOW, .baseline_values = BASE, .canary_count = 20,
         .baseline_count = 20},
        {.name = "errors", .config = &lat, .canary = &ok, .baseline = &down},
    };
    cn_round_metric m[2];
    cn_round_judge(&in[0], &m[0]);
    cn_round_judge(&in[1], &m[1]);
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &SCORE, &sum), CN_OK);
    cn_round_windows w = {.canary_start = 1000, .canary_end = 1010, .baseline_start = 990,
                          .baseline_end = 1000, .step = 1};

    char *text = cn_round_data(m, 2, 0, &sum, &SCORE, &w);
    assert_non_null(text);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    free(text);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "metric")), "p99");
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "judge");
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "fail");
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "high");
    assert_string_equal(json_string_value(json_object_get(j, "group")), "latency");
    assert_string_equal(json_string_value(json_object_get(j, "effect")), "mean_ratio");
    assert_true(json_real_value(json_object_get(j, "u")) == 400);
    assert_true(fabs(json_real_value(json_object_get(j, "estimate")) - 40.7) < 1e-9);
    assert_true(fabs(json_real_value(json_array_get(json_object_get(j, "ci"), 0)) - 37.7) <
                1e-9);
    assert_true(fabs(json_real_value(json_array_get(json_object_get(j, "ci"), 1)) - 43.7) <
                1e-9);
    assert_true(json_real_value(json_object_get(j, "p_value")) < 1e-6);
    assert_true(fabs(json_real_value(json_object_get(j, "effect_size")) - 1.40531) < 1e-5);
    assert_int_equal(json_integer_value(json_object_get(j, "canary_count")), 20);
    assert_false(json_is_true(json_object_get(j, "too_few")));
    /* the error scored as no data: 1 of 2, forced to 0; the rest (p99
     * high in latency, half the weight) scores 50 and fails the round */
    assert_true(json_real_value(json_object_get(j, "score")) == 0);
    assert_true(json_real_value(json_object_get(j, "value")) == 0);
    assert_true(json_real_value(json_object_get(j, "min")) == 75);
    assert_true(json_real_value(json_object_get(j, "pass")) == 95);
    assert_string_equal(json_string_value(json_object_get(j, "verdict")), "fail");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "round"), "errors")),
                        "error");
    assert_true(json_real_value(json_object_get(json_object_get(j, "canary_window"),
                                                "start")) == 1000);
    assert_true(json_real_value(json_object_get(json_object_get(j, "baseline_window"),
                                                "end")) == 1000);
    assert_true(json_real_value(json_object_get(j, "step")) == 1);
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 2);
    json_decref(j);

    /* the metric that was not tested: nulls, no windows when none given */
    text = cn_round_data(m, 2, 1, &sum, &SCORE, NULL);
    j = json_loads(text, 0, &e);
    free(text);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "error");
    assert_true(json_is_null(json_object_get(j, "u")));
    assert_true(json_is_null(json_array_get(json_object_get(j, "ci"), 0)));
    assert_string_equal(json_string_value(json_object_get(j, "group")), "default");
    assert_string_equal(json_string_value(json_object_get(j, "reason")),
                        "baseline samples: HTTP 500");
    assert_null(json_object_get(j, "canary_window"));
    json_decref(j);
}

/* ---- what the engine and the simulator share ---------------------------- */

static void test_windows_at(void **state)
{
    (void)state;
    cn_metric m = {.name = "p99"};
    assert_int_equal(cn_round_step_ms(&m, 30000), 30000);
    m.judge.step_ms = 15000;
    assert_int_equal(cn_round_step_ms(&m, 30000), 15000);
    /* 90 s into a stage at 10%, a sample every 15 s: both over the stage */
    cn_round_windows w = cn_round_windows_at(1000090, 90, 1000000, false, 15);
    assert_true(w.canary_start == 1000000 && w.canary_end == 1000090);
    assert_true(w.baseline_start == 1000000 && w.baseline_end == 1000090);
    assert_true(w.step == 15);
    /* at 100%: the baseline's as long, ending at the switch */
    w = cn_round_windows_at(1000090, 90, 1000000, true, 15);
    assert_true(w.canary_start == 1000000 && w.canary_end == 1000090);
    assert_true(w.baseline_start == 999910 && w.baseline_end == 1000000);
    /* a bake longer than one query resolves keeps its latest 10,998 steps */
    w = cn_round_windows_at(1e6, 20000, 9e5, true, 1);
    assert_true(w.canary_start == 1e6 - 10998 && w.canary_end == 1e6);
    assert_true(w.baseline_start == 9e5 - 10998 && w.baseline_end == 9e5);
    /* a paused stage's bake is what the machine counts, not the time since */
    w = cn_round_windows_at(500, 30, 100, false, 10);
    assert_true(w.canary_start == 470);
}

/* cn_round_run is cn_round_judge, cn_round_decide and cn_round_order in
 * one: the same outcomes, words and order as calling them. */
static void test_round_run(void **state)
{
    (void)state;
    cn_judge_config lat = cn_judge_defaults();
    lat.direction = CN_DIRECTION_INCREASE;
    lat.allowed_increase = 1.1;
    cn_reading ok = reading(CN_READING_VALUE, "");
    cn_round_input in[2] = {
        {.name = "errors", .group = "errors", .config = &lat, .canary = &ok, .baseline = &ok,
         .canary_values = BASE, .baseline_values = BASE, .canary_count = 20,
         .baseline_count = 20},
        {.name = "p99", .group = "latency", .config = &lat, .canary = &ok, .baseline = &ok,
         .canary_values = SLOW, .baseline_values = BASE, .canary_count = 20,
         .baseline_count = 20},
    };
    cn_group_weight g[2] = {{"latency", 60}, {"errors", 40}};
    cn_judge_scoring scoring = {.pass = 95, .marginal = 75, .groups = g, .group_count = 2};
    cn_round r;
    assert_int_equal(cn_round_run(&r, in, 2, &scoring), CN_OK);
    assert_int_equal(r.count, 2);
    assert_true(r.summary.scored && r.summary.score.score == 40);
    assert_int_equal(r.summary.outcome, CN_OUTCOME_FAIL);
    /* the metric that failed the round is reported first */
    assert_int_equal(r.order[0], 1);
    assert_int_equal(r.order[1], 0);
    assert_int_equal(r.metrics[1].outcome, CN_OUTCOME_FAIL);
    assert_string_equal(r.metrics[1].why, "high (estimate +40.7, ci [37.7, 43.7], mean ratio "
                                          "1.41 >= 1.1; 20 and 20 samples); score 40 < "
                                          "marginal 75");
    assert_true(r.score.pass == 95 && r.score.marginal == 75 && r.score.weight_count == 2);
    cn_reading shown = cn_round_shown(&r.summary);
    assert_int_equal(shown.kind, CN_READING_VALUE);
    assert_true(shown.value == 40);
    /* the same by hand */
    cn_round_metric m[2];
    cn_round_judge(&in[0], &m[0]);
    cn_round_judge(&in[1], &m[1]);
    cn_round_summary sum;
    assert_int_equal(cn_round_decide(m, 2, &r.score, &sum), CN_OK);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(m[i].outcome, r.metrics[i].outcome);
        assert_string_equal(m[i].why, r.metrics[i].why);
    }
    cn_round_free(&r);
    assert_null(r.metrics);
    assert_int_equal(r.count, 0);

    /* nothing judged: nothing to report; every query failed: an error,
     * and no score to show */
    assert_int_equal(cn_round_run(&r, in, 0, &scoring), CN_OK);
    assert_int_equal(r.count, 0);
    cn_round_free(&r);
    cn_reading down = reading(CN_READING_ERROR, "HTTP 503");
    in[0].baseline = &down;
    assert_int_equal(cn_round_run(&r, in, 1, &scoring), CN_OK);
    assert_int_equal(r.metrics[0].outcome, CN_OUTCOME_ERROR);
    assert_string_equal(r.metrics[0].why, "error: baseline samples: HTTP 503");
    shown = cn_round_shown(&r.summary);
    assert_int_equal(shown.kind, CN_READING_ERROR);
    assert_true(isnan(shown.value));
    cn_round_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_can_reject),
        cmocka_unit_test(test_judge_one),
        cmocka_unit_test(test_missing_samples_never_pass),
        cmocka_unit_test(test_too_few_samples),
        cmocka_unit_test(test_round_pass),
        cmocka_unit_test(test_round_fail),
        cmocka_unit_test(test_round_marginal_is_inconclusive),
        cmocka_unit_test(test_round_nodata),
        cmocka_unit_test(test_round_critical),
        cmocka_unit_test(test_round_errors),
        cmocka_unit_test(test_round_words),
        cmocka_unit_test(test_round_data),
        cmocka_unit_test(test_windows_at),
        cmocka_unit_test(test_round_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
