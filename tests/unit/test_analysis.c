/* Analysis: judging one measurement (every reading kind, thresholds,
 * baselines), the tally's reset rules, the limits a stage is judged by, the
 * stage verdict's precedence, and properties over random sequences:
 * missing evidence is never a pass, and with the default limits a failure
 * or an error run always ends the stage before it can be promoted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/analysis.h"

#define MIN_MS (60 * 1000)

/* Prints both strings when the evidence lacks the expected words. */
#define assert_why(why, sub)                                                  \
    do {                                                                      \
        if (!strstr((why), (sub))) {                                          \
            print_error("expected '%s' in why '%s'\n", (sub), (why));        \
            fail();                                                           \
        }                                                                     \
    } while (0)

static cn_reading value(double v)
{
    cn_reading r = {.kind = CN_READING_VALUE, .value = v};
    return r;
}

static cn_reading nodata(const char *detail)
{
    cn_reading r = {.kind = CN_READING_NODATA};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    return r;
}

static cn_reading error(const char *detail)
{
    cn_reading r = {.kind = CN_READING_ERROR};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    return r;
}

static const char *outcome_name(cn_outcome o)
{
    static const char *const names[] = {"pass", "fail", "nodata", "error"};
    return (unsigned)o < 4 ? names[o] : "?";
}

/* ---- judge -------------------------------------------------------------- */

static const cn_threshold NO_BOUNDS = {0};
static const cn_threshold MAX_1PCT = {.has_max = true, .max = 0.01};
static const cn_threshold MIN_99PCT = {.has_min = true, .min = 0.99};
static const cn_threshold FIVE_TO_TEN = {
    .has_min = true, .has_max = true, .min = 5, .max = 10};
static const cn_baseline NO_BASELINE = {0};
static const cn_baseline BASE_20PCT = {.enabled = true, .max_increase = 0.2, .slack = 0.001};
static const cn_baseline BASE_20PCT_NO_SLACK = {.enabled = true, .max_increase = 0.2};
/* exact in binary, so the boundary is exact: 1 x 1.5 + 0.25 = 1.75 */
static const cn_baseline BASE_EXACT = {.enabled = true, .max_increase = 0.5, .slack = 0.25};
static const cn_baseline BASE_DOUBLE = {.enabled = true, .max_increase = 1};

enum { NO_BASE_READING = 0, BASE_READING = 1 };

typedef struct judge_case {
    const char *name;
    const cn_threshold *t;
    const cn_baseline *b;
    cn_reading canary;
    int base_given; /* NO_BASE_READING passes NULL */
    cn_reading base;
    cn_outcome want;
    const char *why, *why2; /* substrings of the evidence; why2 may be NULL */
} judge_case;

static void run_judge_cases(const judge_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const judge_case *c = &cases[i];
        cn_metric m = {.name = "m", .threshold = *c->t, .baseline = *c->b};
        char why[256];
        cn_outcome got = cn_analysis_judge(&m, c->t, &c->canary,
                                           c->base_given ? &c->base : NULL, why, sizeof why);
        if (got != c->want) {
            print_error("case '%s': got %s, want %s (why '%s')\n", c->name,
                        outcome_name(got), outcome_name(c->want), why);
            fail();
        }
        assert_why(why, c->why);
        if (c->why2)
            assert_why(why, c->why2);
    }
}

static void test_judge_reading_kinds(void **state)
{
    (void)state;
    cn_reading odd = value(1);
    odd.kind = (cn_reading_kind)7;
    const judge_case cases[] = {
        {"value", &MAX_1PCT, &NO_BASELINE, value(0.004), 0, {0}, CN_OUTCOME_PASS,
         "0.004 within [-, 0.01]", NULL},
        {"error", &MAX_1PCT, &NO_BASELINE, error("HTTP 500"), 0, {0}, CN_OUTCOME_ERROR,
         "error: HTTP 500", NULL},
        {"error without detail", &MAX_1PCT, &NO_BASELINE, error(""), 0, {0},
         CN_OUTCOME_ERROR, "error: query failed", NULL},
        {"nodata", &MAX_1PCT, &NO_BASELINE, nodata("empty vector"), 0, {0},
         CN_OUTCOME_NODATA, "no data: empty vector", NULL},
        {"nodata without detail", &MAX_1PCT, &NO_BASELINE, nodata(""), 0, {0},
         CN_OUTCOME_NODATA, "no data: query returned no value", NULL},
        {"NaN is no data", &MAX_1PCT, &NO_BASELINE, value(NAN), 0, {0}, CN_OUTCOME_NODATA,
         "no data: value is NaN", NULL},
        {"-NaN is no data", &MAX_1PCT, &NO_BASELINE, value(-NAN), 0, {0},
         CN_OUTCOME_NODATA, "no data: value is NaN", NULL},
        {"+Inf is an error", &MAX_1PCT, &NO_BASELINE, value(INFINITY), 0, {0},
         CN_OUTCOME_ERROR, "error: value is +Inf", NULL},
        {"-Inf is an error", &MAX_1PCT, &NO_BASELINE, value(-INFINITY), 0, {0},
         CN_OUTCOME_ERROR, "error: value is -Inf", NULL},
        /* no bound makes infinity judgeable: min only would pass +Inf */
        {"+Inf with min only", &MIN_99PCT, &NO_BASELINE, value(INFINITY), 0, {0},
         CN_OUTCOME_ERROR, "+Inf", NULL},
        {"unknown kind", &MAX_1PCT, &NO_BASELINE, odd, 0, {0}, CN_OUTCOME_ERROR,
         "unknown kind 7", NULL},
    };
    run_judge_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_judge_thresholds(void **state)
{
    (void)state;
    const judge_case cases[] = {
        {"max: above", &MAX_1PCT, &NO_BASELINE, value(0.031), 0, {0}, CN_OUTCOME_FAIL,
         "0.031 > max 0.01", NULL},
        {"max: equal passes", &MAX_1PCT, &NO_BASELINE, value(0.01), 0, {0},
         CN_OUTCOME_PASS, "0.01 within [-, 0.01]", NULL},
        {"max: just above", &MAX_1PCT, &NO_BASELINE, value(nextafter(0.01, 1)), 0, {0},
         CN_OUTCOME_FAIL, "> max 0.01", NULL},
        {"max: negative passes", &MAX_1PCT, &NO_BASELINE, value(-5), 0, {0},
         CN_OUTCOME_PASS, "-5 within [-, 0.01]", NULL},
        {"min: below", &MIN_99PCT, &NO_BASELINE, value(0.98), 0, {0}, CN_OUTCOME_FAIL,
         "0.98 < min 0.99", NULL},
        {"min: equal passes", &MIN_99PCT, &NO_BASELINE, value(0.99), 0, {0},
         CN_OUTCOME_PASS, "0.99 within [0.99, -]", NULL},
        {"min: just below", &MIN_99PCT, &NO_BASELINE, value(nextafter(0.99, 0)), 0, {0},
         CN_OUTCOME_FAIL, "< min 0.99", NULL},
        {"min: huge passes", &MIN_99PCT, &NO_BASELINE, value(1e300), 0, {0},
         CN_OUTCOME_PASS, "1e+300 within [0.99, -]", NULL},
        {"both: below", &FIVE_TO_TEN, &NO_BASELINE, value(4.5), 0, {0}, CN_OUTCOME_FAIL,
         "4.5 < min 5", NULL},
        {"both: min passes", &FIVE_TO_TEN, &NO_BASELINE, value(5), 0, {0},
         CN_OUTCOME_PASS, "5 within [5, 10]", NULL},
        {"both: inside", &FIVE_TO_TEN, &NO_BASELINE, value(7.25), 0, {0},
         CN_OUTCOME_PASS, "7.25 within [5, 10]", NULL},
        {"both: max passes", &FIVE_TO_TEN, &NO_BASELINE, value(10), 0, {0},
         CN_OUTCOME_PASS, "10 within [5, 10]", NULL},
        {"both: above", &FIVE_TO_TEN, &NO_BASELINE, value(10.5), 0, {0}, CN_OUTCOME_FAIL,
         "10.5 > max 10", NULL},
        {"nothing to judge by", &NO_BOUNDS, &NO_BASELINE, value(3), 0, {0},
         CN_OUTCOME_PASS, "3 (no threshold or baseline", NULL},
    };
    run_judge_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_judge_baselines(void **state)
{
    (void)state;
    const judge_case cases[] = {
        {"above the allowance", &NO_BOUNDS, &BASE_20PCT, value(0.012), 1, value(0.008),
         CN_OUTCOME_FAIL, "0.012 > baseline 0.008 x 1.2 + 0.001 = 0.0106", NULL},
        {"within the allowance", &NO_BOUNDS, &BASE_20PCT, value(0.009), 1, value(0.008),
         CN_OUTCOME_PASS, "0.009 <= baseline 0.008 x 1.2 + 0.001 = 0.0106", NULL},
        {"equal to the bound passes", &NO_BOUNDS, &BASE_EXACT, value(1.75), 1, value(1),
         CN_OUTCOME_PASS, "1.75 <= baseline 1 x 1.5 + 0.25 = 1.75", NULL},
        {"just above the bound", &NO_BOUNDS, &BASE_EXACT, value(nextafter(1.75, 2)), 1,
         value(1), CN_OUTCOME_FAIL, "> baseline 1 x 1.5 + 0.25 = 1.75", NULL},
        {"lower than baseline passes", &NO_BOUNDS, &BASE_EXACT, value(0.1), 1, value(1),
         CN_OUTCOME_PASS, "0.1 <= baseline", NULL},
        {"slack: 0 errors vs a few", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, value(0),
         CN_OUTCOME_PASS, "0.001 <= baseline 0 x 1.2 + 0.001 = 0.001", NULL},
        {"no slack: any increase over 0", &NO_BOUNDS, &BASE_20PCT_NO_SLACK, value(0.001), 1,
         value(0), CN_OUTCOME_FAIL, "0.001 > baseline 0 x 1.2 + 0 = 0", NULL},
        {"baseline error", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, error("time-out"),
         CN_OUTCOME_ERROR, "error: baseline: time-out", NULL},
        {"baseline error without detail", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1,
         error(""), CN_OUTCOME_ERROR, "error: baseline query failed", NULL},
        {"baseline nodata", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, nodata("empty vector"),
         CN_OUTCOME_NODATA, "no data: baseline: empty vector", NULL},
        {"baseline NaN", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, value(NAN),
         CN_OUTCOME_NODATA, "no data: baseline value is NaN", NULL},
        {"baseline +Inf", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, value(INFINITY),
         CN_OUTCOME_ERROR, "error: baseline value is +Inf", NULL},
        {"baseline -Inf", &NO_BOUNDS, &BASE_20PCT, value(0.001), 1, value(-INFINITY),
         CN_OUTCOME_ERROR, "error: baseline value is -Inf", NULL},
        {"baseline not read", &NO_BOUNDS, &BASE_20PCT, value(0.001), 0, {0},
         CN_OUTCOME_NODATA, "no data: no baseline reading", NULL},
        {"bound overflows", &NO_BOUNDS, &BASE_DOUBLE, value(1), 1, value(1e308),
         CN_OUTCOME_ERROR, "not finite", NULL},
        {"canary error comes first", &NO_BOUNDS, &BASE_20PCT, error("HTTP 503"), 1,
         error("HTTP 500"), CN_OUTCOME_ERROR, "error: HTTP 503", NULL},
        {"canary NaN comes first", &NO_BOUNDS, &BASE_20PCT, value(NAN), 1, value(0.5),
         CN_OUTCOME_NODATA, "no data: value is NaN", NULL},
        {"disabled baseline is ignored", &MAX_1PCT, &NO_BASELINE, value(0.005), 1,
         value(0), CN_OUTCOME_PASS, "0.005 within [-, 0.01]", NULL},
        /* a metric with both must pass both */
        {"both: threshold fails", &MAX_1PCT, &BASE_20PCT, value(0.02), 1, value(0.1),
         CN_OUTCOME_FAIL, "0.02 > max 0.01", NULL},
        {"both: baseline fails", &MAX_1PCT, &BASE_20PCT, value(0.009), 1, value(0.001),
         CN_OUTCOME_FAIL, "0.009 > baseline 0.001 x 1.2 + 0.001 = 0.0022", NULL},
        {"both: both pass", &MAX_1PCT, &BASE_20PCT, value(0.005), 1, value(0.008),
         CN_OUTCOME_PASS, "0.005 within [-, 0.01]",
         "; 0.005 <= baseline 0.008 x 1.2 + 0.001 = 0.0106"},
        {"both: threshold failure beats baseline error", &MAX_1PCT, &BASE_20PCT,
         value(0.02), 1, error("HTTP 500"), CN_OUTCOME_FAIL, "0.02 > max 0.01", NULL},
        {"both: in threshold, baseline nodata", &MAX_1PCT, &BASE_20PCT, value(0.005), 1,
         nodata("empty vector"), CN_OUTCOME_NODATA, "no data: baseline: empty vector", NULL},
    };
    run_judge_cases(cases, sizeof cases / sizeof cases[0]);
}

/* The evidence buffer may be missing, empty or short; the outcome does not
 * depend on it, and nothing is written past len. */
static void test_judge_why_buffers(void **state)
{
    (void)state;
    cn_metric m = {.name = "m", .threshold = MAX_1PCT, .baseline = BASE_20PCT};
    cn_reading c = value(0.012), b = value(0.008);
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &c, &b, NULL, 0), CN_OUTCOME_FAIL);
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &c, &b, NULL, 100), CN_OUTCOME_FAIL);
    char buf[16];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &c, &b, buf, 0), CN_OUTCOME_FAIL);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &c, &b, buf, 1), CN_OUTCOME_FAIL);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'x');
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &c, &b, buf, 8), CN_OUTCOME_FAIL);
    assert_string_equal(buf, "0.012 >");
    assert_int_equal(buf[8], 'x');
    /* a passing value writes two clauses; the second is cut, not overrun */
    cn_reading ok = value(0.005);
    assert_int_equal(cn_analysis_judge(&m, &m.threshold, &ok, &b, buf, sizeof buf),
                     CN_OUTCOME_PASS);
    assert_int_equal(strlen(buf), sizeof buf - 1);
    /* a provider detail that fills its array without a terminator */
    cn_reading full = {.kind = CN_READING_ERROR};
    memset(full.detail, 'd', sizeof full.detail);
    char why[256];
    assert_int_equal(cn_analysis_judge(&m, NULL, &full, NULL, why, sizeof why),
                     CN_OUTCOME_ERROR);
    assert_int_equal(strlen(why), strlen("error: ") + sizeof full.detail);
    /* no canary reading at all, and t NULL meaning the metric's own */
    assert_int_equal(cn_analysis_judge(&m, NULL, NULL, NULL, why, sizeof why),
                     CN_OUTCOME_ERROR);
    assert_why(why, "error: no reading");
    assert_int_equal(cn_analysis_judge(&m, NULL, &c, &b, why, sizeof why), CN_OUTCOME_FAIL);
    assert_why(why, "0.012 > max 0.01");
}

/* ---- thresholds for AI-assisted changes --------------------------------- */

static void test_ai_threshold_override(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_metric metrics[] = {
        {.name = "error-rate", .threshold = {.has_max = true, .max = 0.01}},
        {.name = "latency",
         .threshold = {.has_min = true, .has_max = true, .min = 1, .max = 250}},
    };
    /* as loaded: the missing min was copied from the metric */
    cn_threshold_override overrides[] = {
        {.metric = "latency",
         .threshold = {.has_min = true, .has_max = true, .min = 1, .max = 200}},
        {.metric = "unrelated", .threshold = {.has_max = true, .max = 0}},
    };
    p.analysis.metrics = metrics;
    p.analysis.metric_count = 2;
    p.ai.analysis.thresholds = overrides;
    p.ai.analysis.threshold_count = 2;

    cn_threshold human = cn_analysis_threshold(&p, 1, false);
    cn_threshold ai = cn_analysis_threshold(&p, 1, true);
    assert_true(human.has_max && human.max == 250 && human.min == 1);
    assert_true(ai.has_min && ai.has_max && ai.max == 200 && ai.min == 1);
    /* a metric without an override keeps its own, AI-assisted or not */
    cn_threshold er = cn_analysis_threshold(&p, 0, true);
    assert_true(er.has_max && !er.has_min && er.max == 0.01);
    /* out of range: no bounds rather than a read past the array */
    cn_threshold none = cn_analysis_threshold(&p, 2, true);
    assert_false(none.has_min || none.has_max);

    char why[256];
    cn_reading r = value(220);
    assert_int_equal(cn_analysis_judge(&metrics[1], &human, &r, NULL, why, sizeof why),
                     CN_OUTCOME_PASS);
    assert_why(why, "220 within [1, 250]");
    assert_int_equal(cn_analysis_judge(&metrics[1], &ai, &r, NULL, why, sizeof why),
                     CN_OUTCOME_FAIL);
    assert_why(why, "220 > max 200");
    cn_policy_free(&p);
}

/* ---- tally -------------------------------------------------------------- */

static cn_outcome outcome_of(char c)
{
    switch (c) {
    case 'P': return CN_OUTCOME_PASS;
    case 'F': return CN_OUTCOME_FAIL;
    case 'N': return CN_OUTCOME_NODATA;
    default: return CN_OUTCOME_ERROR;
    }
}

static void test_tally_resets(void **state)
{
    (void)state;
    static const struct {
        const char *seq;
        cn_metric_tally want; /* passes, failures, nodata, errors, cons. fail, cons. err */
    } cases[] = {
        {"", {0, 0, 0, 0, 0, 0}},
        {"P", {1, 0, 0, 0, 0, 0}},
        {"FF", {0, 2, 0, 0, 2, 0}},
        {"FFP", {1, 2, 0, 0, 0, 0}},
        {"FFN", {0, 2, 1, 0, 0, 0}},  /* nodata ends a failure run */
        {"FFE", {0, 2, 0, 1, 2, 1}},  /* an error does not */
        {"FEF", {0, 2, 0, 1, 2, 0}},
        {"FNF", {0, 2, 1, 0, 1, 0}},
        {"FPF", {1, 2, 0, 0, 1, 0}},
        {"EEE", {0, 0, 0, 3, 0, 3}},
        {"EEP", {1, 0, 0, 2, 0, 0}},
        {"EEN", {0, 0, 1, 2, 0, 0}},  /* any non-error ends an error run */
        {"EEF", {0, 1, 0, 2, 1, 0}},
        {"EEFEE", {0, 1, 0, 4, 1, 2}},
        {"FFEEF", {0, 3, 0, 2, 3, 0}},
        {"NNNE", {0, 0, 3, 1, 0, 1}},
        {"PFPFP", {3, 2, 0, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_metric_tally t = {0};
        for (const char *s = cases[i].seq; *s; s++)
            cn_tally_add(&t, outcome_of(*s));
        const cn_metric_tally *w = &cases[i].want;
        if (memcmp(&t, w, sizeof t)) {
            print_error("'%s': got %u %u %u %u cf %u ce %u, want %u %u %u %u cf %u ce %u\n",
                        cases[i].seq, t.passes, t.failures, t.nodata, t.errors,
                        t.consecutive_failures, t.consecutive_errors, w->passes,
                        w->failures, w->nodata, w->errors, w->consecutive_failures,
                        w->consecutive_errors);
            fail();
        }
    }
}

/* A counter that wrapped to 0 would forget an error run. */
static void test_tally_saturates(void **state)
{
    (void)state;
    cn_metric_tally t = {
        .passes = UINT_MAX, .errors = UINT_MAX, .consecutive_errors = UINT_MAX};
    cn_tally_add(&t, CN_OUTCOME_ERROR);
    assert_int_equal(t.errors, UINT_MAX);
    assert_int_equal(t.consecutive_errors, UINT_MAX);
    cn_tally_add(&t, CN_OUTCOME_PASS);
    assert_int_equal(t.passes, UINT_MAX);
    assert_int_equal(t.consecutive_errors, 0);
    /* an outcome out of range is counted as an error, never a pass */
    cn_metric_tally u = {0};
    cn_tally_add(&u, (cn_outcome)42);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.consecutive_errors, 1);
    assert_int_equal(u.passes, 0);
}

/* ---- limits ------------------------------------------------------------- */

static void test_limits_defaults(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_stage_limits l = cn_analysis_limits(&p, 2 * MIN_MS, false);
    assert_int_equal(l.bake_ms, 2 * MIN_MS);
    assert_int_equal(l.max_bake_ms, 6 * MIN_MS);
    assert_int_equal(l.min_samples, 3);
    assert_int_equal(l.failure_limit, 0);
    assert_int_equal(l.consecutive_failure_limit, 0);
    assert_int_equal(l.consecutive_error_limit, 3);
    assert_int_equal(l.on_failure, CN_ON_ROLLBACK);
    assert_int_equal(l.on_inconclusive, CN_ON_ROLLBACK);
    assert_int_equal(l.min_requests, 0);
    /* the same for an AI-assisted change without ai_assisted.analysis */
    cn_stage_limits a = cn_analysis_limits(&p, 2 * MIN_MS, true);
    assert_int_equal(a.failure_limit, l.failure_limit);
    assert_int_equal(a.consecutive_failure_limit, l.consecutive_failure_limit);
    assert_int_equal(a.max_bake_ms, l.max_bake_ms);
    cn_policy_free(&p);
}

static void test_limits_from_policy(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    p.analysis.max_bake_ms = 10 * MIN_MS;
    p.plan.min_samples = 5;
    p.analysis.failure_limit = 2;
    p.analysis.consecutive_failure_limit = 2;
    p.analysis.consecutive_error_limit = 4;
    p.analysis.on_failure = CN_ON_PAUSE;
    p.analysis.on_inconclusive = CN_ON_PAUSE;
    p.analysis.min_requests.count = 500;
    cn_stage_limits l = cn_analysis_limits(&p, 4 * MIN_MS, false);
    assert_int_equal(l.bake_ms, 4 * MIN_MS);
    assert_int_equal(l.max_bake_ms, 10 * MIN_MS);
    assert_int_equal(l.min_samples, 5);
    assert_int_equal(l.failure_limit, 2);
    assert_int_equal(l.consecutive_failure_limit, 2);
    assert_int_equal(l.consecutive_error_limit, 4);
    assert_int_equal(l.on_failure, CN_ON_PAUSE);
    assert_int_equal(l.on_inconclusive, CN_ON_PAUSE);
    assert_true(l.min_requests > 0);
    /* max_bake never below the stage's own bake (an AI bake may exceed it) */
    l = cn_analysis_limits(&p, 12 * MIN_MS, false);
    assert_int_equal(l.max_bake_ms, 12 * MIN_MS);
    /* values the loader never lets through: 0 limits and unknown actions
     * take their safe meaning */
    p.plan.min_samples = 0;
    p.analysis.consecutive_error_limit = 0;
    p.analysis.on_failure = 7;
    p.analysis.max_bake_ms = 0;
    l = cn_analysis_limits(&p, -5, false);
    assert_int_equal(l.min_samples, 1);
    assert_int_equal(l.consecutive_error_limit, 1);
    assert_int_equal(l.on_failure, CN_ON_ROLLBACK);
    assert_int_equal(l.bake_ms, 0);
    assert_int_equal(l.max_bake_ms, 0);
    l = cn_analysis_limits(&p, INT64_MAX / 2, false);
    assert_int_equal(l.max_bake_ms, INT64_MAX);
    cn_policy_free(&p);
}

static void test_limits_ai_overrides(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    p.analysis.failure_limit = 2;
    p.analysis.consecutive_failure_limit = 3;
    p.ai.analysis.has_failure_limit = true;
    p.ai.analysis.failure_limit = 1;
    cn_stage_limits h = cn_analysis_limits(&p, 2 * MIN_MS, false);
    cn_stage_limits a = cn_analysis_limits(&p, 2 * MIN_MS, true);
    assert_int_equal(h.failure_limit, 2);
    assert_int_equal(h.consecutive_failure_limit, 3);
    assert_int_equal(a.failure_limit, 1);
    assert_int_equal(a.consecutive_failure_limit, 3); /* has_ not set: shared */
    p.ai.analysis.has_consecutive_failure_limit = true;
    p.ai.analysis.consecutive_failure_limit = 1;
    a = cn_analysis_limits(&p, 2 * MIN_MS, true);
    h = cn_analysis_limits(&p, 2 * MIN_MS, false);
    assert_int_equal(a.consecutive_failure_limit, 1);
    assert_int_equal(h.consecutive_failure_limit, 3);
    /* a value set but not marked present is not applied */
    p.ai.analysis.has_failure_limit = false;
    p.ai.analysis.failure_limit = 0;
    a = cn_analysis_limits(&p, 2 * MIN_MS, true);
    assert_int_equal(a.failure_limit, 2);
    cn_policy_free(&p);
}

/* ---- verdict ------------------------------------------------------------ */

#define N_METRICS 4 /* as many as the property tests use */
static const cn_metric METRICS[N_METRICS] = {
    {.name = "error-rate"}, {.name = "p99"}, {.name = "apdex"}, {.name = "saturation"}};

/* bake 2m, max_bake 6m, min_samples 3: the defaults for a 2m stage */
#define LIMITS(fl, cfl, cel, on_fail, on_inc, req)                                 \
    {.bake_ms = 2 * MIN_MS, .max_bake_ms = 6 * MIN_MS, .min_samples = 3,          \
     .failure_limit = (fl), .consecutive_failure_limit = (cfl),                   \
     .consecutive_error_limit = (cel), .on_failure = (on_fail),                   \
     .on_inconclusive = (on_inc), .min_requests = (req) ? 100u : 0u}
#define DEFAULTS LIMITS(0, 0, 3, CN_ON_ROLLBACK, CN_ON_ROLLBACK, false)
#define P(passes) {(passes), 0, 0, 0, 0, 0} /* a tally of passes only */
#define RB CN_ON_ROLLBACK
#define PAUSE CN_ON_PAUSE

typedef struct verdict_case {
    const char *name;
    cn_stage_limits l;
    size_t n;
    cn_metric_tally t[3]; /* passes, failures, nodata, errors, cons. fail, cons. err */
    int64_t baked_ms;
    bool requests;
    cn_verdict_kind kind;
    int action;
    long metric;
    const char *why, *why2;
} verdict_case;

static const char *verdict_name(cn_verdict_kind k)
{
    static const char *const names[] = {"baking", "promote", "failed", "errored",
                                        "inconclusive"};
    return (unsigned)k < 5 ? names[k] : "?";
}

static void check_verdict(const verdict_case *c, const cn_metric *metrics)
{
    cn_verdict v = cn_stage_verdict(&c->l, c->t, metrics, c->n, c->baked_ms,
                                    c->requests ? 100.0 : 99.0);
    if (v.kind != c->kind || v.metric != c->metric ||
        ((c->kind == CN_VERDICT_FAILED || c->kind == CN_VERDICT_ERRORED ||
          c->kind == CN_VERDICT_INCONCLUSIVE) && v.action != c->action)) {
        print_error("case '%s': got %s metric %ld action %d, want %s metric %ld action %d"
                    " (why '%s')\n", c->name, verdict_name(v.kind), v.metric, v.action,
                    verdict_name(c->kind), c->metric, c->action, v.why);
        fail();
    }
    assert_why(v.why, c->why);
    if (c->why2)
        assert_why(v.why, c->why2);
}

static void test_verdict_table(void **state)
{
    (void)state;
    const verdict_case cases[] = {
        /* 1. errors */
        {"error run", DEFAULTS, 1, {{0, 0, 0, 3, 0, 3}}, 30000, false,
         CN_VERDICT_ERRORED, RB, 0,
         "error-rate had 3 provider errors in a row (consecutive_error_limit 3)", NULL},
        {"error run rolls back even with on_failure pause",
         LIMITS(0, 0, 2, PAUSE, PAUSE, false), 2, {P(3), {0, 0, 0, 2, 0, 2}}, 30000, false,
         CN_VERDICT_ERRORED, RB, 1, "p99 had 2 provider errors in a row", NULL},
        {"errors beat failures", DEFAULTS, 2, {{0, 1, 0, 0, 1, 0}, {0, 0, 0, 3, 0, 3}},
         30000, false, CN_VERDICT_ERRORED, RB, 1, "p99 had 3 provider errors", NULL},
        {"errors beat promotion", DEFAULTS, 1, {{3, 0, 0, 3, 0, 3}}, 2 * MIN_MS, false,
         CN_VERDICT_ERRORED, RB, 0, "consecutive_error_limit 3", NULL},
        {"interrupted errors do not add up", DEFAULTS, 1, {{3, 0, 0, 4, 0, 2}}, 2 * MIN_MS,
         false, CN_VERDICT_PROMOTE, RB, -1, "baked 2m of 2m", NULL},
        {"error limit 0 acts as 1", LIMITS(0, 0, 0, RB, RB, false), 1, {{0, 0, 0, 1, 0, 1}},
         0, false, CN_VERDICT_ERRORED, RB, 0, "1 provider error in a row", NULL},
        /* 2. failures */
        {"first failure with failure_limit 0", DEFAULTS, 1, {{2, 1, 0, 0, 1, 0}}, 60000,
         false, CN_VERDICT_FAILED, RB, 0,
         "error-rate failed 1 time, more than failure_limit 0", NULL},
        {"failures within failure_limit", LIMITS(1, 0, 3, RB, RB, false), 1,
         {{2, 1, 0, 0, 0, 0}}, 60000, false, CN_VERDICT_BAKING, RB, 0,
         "error-rate has 2 of 3 passing samples (1 failed)", NULL},
        {"one failure past failure_limit", LIMITS(1, 0, 3, RB, RB, false), 1,
         {{2, 2, 0, 0, 0, 0}}, 60000, false, CN_VERDICT_FAILED, RB, 0,
         "error-rate failed 2 times, more than failure_limit 1", NULL},
        {"failure on the measurement that completes the bake", DEFAULTS, 1,
         {{3, 1, 0, 0, 1, 0}}, 2 * MIN_MS, false, CN_VERDICT_FAILED, RB, 0,
         "failed 1 time", NULL},
        {"on_failure pause", LIMITS(0, 0, 3, PAUSE, RB, false), 1, {{0, 1, 0, 0, 1, 0}},
         0, false, CN_VERDICT_FAILED, PAUSE, 0, "failure_limit 0", NULL},
        {"consecutive_failure_limit unset: a run within failure_limit bakes",
         LIMITS(5, 0, 3, RB, RB, false), 1, {{0, 4, 0, 0, 4, 0}}, 60000, false,
         CN_VERDICT_BAKING, RB, 0, "error-rate has 0 of 3 passing samples (4 failed)", NULL},
        {"consecutive_failure_limit set: the run acts", LIMITS(5, 3, 3, RB, RB, false), 1,
         {{0, 3, 0, 0, 3, 0}}, 60000, false, CN_VERDICT_FAILED, RB, 0,
         "error-rate failed 3 times in a row (consecutive_failure_limit 3)", NULL},
        {"consecutive_failure_limit set: a shorter run bakes",
         LIMITS(5, 3, 3, RB, RB, false), 1, {{1, 3, 0, 0, 2, 0}}, 60000, false,
         CN_VERDICT_BAKING, RB, 0, "baked 1m of 2m", NULL},
        {"consecutive_failure_limit 1", LIMITS(5, 1, 3, PAUSE, RB, false), 1,
         {{4, 1, 0, 0, 1, 0}}, 2 * MIN_MS, false, CN_VERDICT_FAILED, PAUSE, 0,
         "failed 1 time in a row (consecutive_failure_limit 1)", NULL},
        {"the lowest failing metric is named", DEFAULTS, 3,
         {P(3), {0, 1, 0, 0, 1, 0}, {0, 2, 0, 0, 2, 0}}, 60000, false, CN_VERDICT_FAILED, RB,
         1, "p99 failed 1 time", NULL},
        /* 3. promotion */
        {"promote", DEFAULTS, 2, {P(3), P(5)}, 2 * MIN_MS, false, CN_VERDICT_PROMOTE, RB, -1,
         "baked 2m of 2m", "every metric has 3 or more passing samples (3 needed)"},
        {"promote after failures within the limit", LIMITS(1, 0, 3, RB, RB, false), 1,
         {{3, 1, 2, 1, 0, 0}}, 3 * MIN_MS, false, CN_VERDICT_PROMOTE, RB, -1,
         "baked 3m of 2m", NULL},
        {"bake not over", DEFAULTS, 2, {P(3), P(3)}, 2 * MIN_MS - 1000, false,
         CN_VERDICT_BAKING, RB, -1, "baked 1m59s of 2m",
         "evidence complete, waiting for the bake"},
        {"baked, too few passes: extended", DEFAULTS, 2, {P(3), {2, 0, 1, 0, 0, 0}},
         2 * MIN_MS, false, CN_VERDICT_BAKING, RB, 1, "extended up to max_bake 6m",
         "p99 has 2 of 3 passing samples (1 without data)"},
        /* 4. inconclusive */
        {"only nodata", DEFAULTS, 1, {{0, 0, 12, 0, 0, 0}}, 6 * MIN_MS, false,
         CN_VERDICT_INCONCLUSIVE, RB, 0,
         "max_bake 6m reached; error-rate has 0 of 3 passing samples (12 without data)", NULL},
        {"nodata, failures and errors within limits", LIMITS(1, 0, 3, RB, RB, false), 1,
         {{1, 1, 4, 2, 0, 0}}, 6 * MIN_MS, false, CN_VERDICT_INCONCLUSIVE, RB, 0,
         "error-rate has 1 of 3 passing samples (4 without data, 1 failed, 2 errors)", NULL},
        {"on_inconclusive pause", LIMITS(0, 0, 3, RB, PAUSE, false), 1, {P(2)}, 7 * MIN_MS,
         false, CN_VERDICT_INCONCLUSIVE, PAUSE, 0, "error-rate has 2 of 3 passing samples",
         NULL},
        {"the first short metric is named", DEFAULTS, 3, {P(3), {1, 0, 2, 0, 0, 0}, P(0)},
         6 * MIN_MS, false, CN_VERDICT_INCONCLUSIVE, RB, 1,
         "p99 has 1 of 3 passing samples (2 without data)",
         "1 more metric short of min_samples"},
        /* min_requests */
        {"requests missing: extended", LIMITS(0, 0, 3, RB, RB, true), 1, {P(3)}, 2 * MIN_MS,
         false, CN_VERDICT_BAKING, RB, -1, "extended up to max_bake 6m",
         "the canary served 99 of min_requests 100"},
        {"requests missing at max_bake", LIMITS(0, 0, 3, RB, PAUSE, true), 1, {P(3)},
         6 * MIN_MS, false, CN_VERDICT_INCONCLUSIVE, PAUSE, -1,
         "max_bake 6m reached; the canary served 99 of min_requests 100", NULL},
        {"requests and samples missing", LIMITS(0, 0, 3, RB, RB, true), 1, {P(1)},
         6 * MIN_MS, false, CN_VERDICT_INCONCLUSIVE, RB, 0,
         "error-rate has 1 of 3 passing samples",
         "; the canary served 99 of min_requests 100"},
        {"requests served", LIMITS(0, 0, 3, RB, RB, true), 1, {P(3)}, 2 * MIN_MS, true,
         CN_VERDICT_PROMOTE, RB, -1, "the canary served 100 of min_requests 100", NULL},
        {"requests ignored without min_requests", DEFAULTS, 1, {P(3)}, 2 * MIN_MS, false,
         CN_VERDICT_PROMOTE, RB, -1, "baked 2m of 2m", NULL},
        /* no metrics */
        {"no metrics: promoted on bake time", DEFAULTS, 0, {P(0)}, 2 * MIN_MS, false,
         CN_VERDICT_PROMOTE, RB, -1, "baked 2m of 2m; no metrics to judge", NULL},
        {"no metrics: baking", DEFAULTS, 0, {P(0)}, MIN_MS, false, CN_VERDICT_BAKING, RB, -1,
         "baked 1m of 2m", NULL},
        {"no metrics, no requests", LIMITS(0, 0, 3, RB, RB, true), 0, {P(0)}, 6 * MIN_MS,
         false, CN_VERDICT_INCONCLUSIVE, RB, -1, "served 99 of min_requests 100", NULL},
        {"no metrics, requests served", LIMITS(0, 0, 3, RB, RB, true), 0, {P(0)}, 2 * MIN_MS,
         true, CN_VERDICT_PROMOTE, RB, -1, "served 100 of min_requests 100", NULL},
        /* limits built by hand */
        {"min_samples 0 acts as 1", {.bake_ms = MIN_MS, .max_bake_ms = 3 * MIN_MS,
                                     .consecutive_error_limit = 3},
         1, {{0, 0, 5, 0, 0, 0}}, MIN_MS, false, CN_VERDICT_BAKING, RB, 0,
         "error-rate has 0 of 1 passing samples (5 without data)", NULL},
        {"max_bake below bake", {.bake_ms = 2 * MIN_MS, .max_bake_ms = MIN_MS,
                                 .min_samples = 1, .consecutive_error_limit = 3},
         1, {P(1)}, MIN_MS, false, CN_VERDICT_INCONCLUSIVE, RB, -1,
         "max_bake 1m reached after 1m of a 2m bake", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_verdict(&cases[i], METRICS);
}

/* Without metric names the evidence still says which metric decided. */
/* A request count not read yet (NaN) never counts as enough. */
static void test_verdict_requests_unknown(void **state)
{
    (void)state;
    cn_stage_limits l = LIMITS(0, 0, 3, RB, RB, true);
    cn_metric_tally t[1] = {P(3)};
    cn_verdict v = cn_stage_verdict(&l, t, METRICS, 1, 2 * MIN_MS, NAN);
    assert_int_equal(v.kind, CN_VERDICT_BAKING);
    assert_non_null(strstr(v.why, "request count is not known yet (min_requests 100)"));
    v = cn_stage_verdict(&l, t, METRICS, 1, 6 * MIN_MS, NAN);
    assert_int_equal(v.kind, CN_VERDICT_INCONCLUSIVE);
}

static void test_verdict_without_names(void **state)
{
    (void)state;
    const verdict_case c = {"no names", DEFAULTS, 2, {P(3), {0, 1, 0, 0, 1, 0}}, 0, false,
                            CN_VERDICT_FAILED, RB, 1, "metric 2 failed 1 time", NULL};
    check_verdict(&c, NULL);
    const cn_metric unnamed[2] = {{.name = "a"}, {.name = NULL}};
    check_verdict(&c, unnamed);
}

/* A long metric name is cut so that the numbers still fit in why. */
static void test_verdict_long_name(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    const cn_metric m[1] = {{.name = name}};
    const cn_stage_limits l = DEFAULTS;
    const cn_metric_tally t[1] = {{1, 0, 4, 0, 0, 0}};
    cn_verdict v = cn_stage_verdict(&l, t, m, 1, 6 * MIN_MS, 0.0);
    assert_int_equal(v.kind, CN_VERDICT_INCONCLUSIVE);
    assert_why(v.why, "max_bake 6m reached; nnnn");
    assert_why(v.why, "n has 1 of 3 passing samples (4 without data)");
}

/* ai_assisted.analysis replaces the limits only for AI-assisted changes. */
static void test_verdict_ai_limits(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    p.analysis.failure_limit = 2;
    p.ai.analysis.has_failure_limit = true;
    p.ai.analysis.failure_limit = 0;
    p.ai.analysis.has_consecutive_failure_limit = true;
    p.ai.analysis.consecutive_failure_limit = 2;
    cn_stage_limits human = cn_analysis_limits(&p, 2 * MIN_MS, false);
    cn_stage_limits ai = cn_analysis_limits(&p, 2 * MIN_MS, true);
    cn_metric_tally one[1] = {{3, 1, 0, 0, 0, 0}};
    cn_verdict h = cn_stage_verdict(&human, one, METRICS, 1, 2 * MIN_MS, 0.0);
    cn_verdict a = cn_stage_verdict(&ai, one, METRICS, 1, 2 * MIN_MS, 0.0);
    assert_int_equal(h.kind, CN_VERDICT_PROMOTE);
    assert_int_equal(a.kind, CN_VERDICT_FAILED);
    assert_why(a.why, "error-rate failed 1 time, more than failure_limit 0");
    /* the consecutive limit: the human limits have none, and 2 failures are
     * within their failure_limit 2, so only the AI-assisted stage fails */
    ai.failure_limit = 5;
    cn_metric_tally run[1] = {{0, 2, 0, 0, 2, 0}};
    h = cn_stage_verdict(&human, run, METRICS, 1, MIN_MS, 0.0);
    a = cn_stage_verdict(&ai, run, METRICS, 1, MIN_MS, 0.0);
    assert_int_equal(h.kind, CN_VERDICT_BAKING);
    assert_int_equal(a.kind, CN_VERDICT_FAILED);
    assert_why(a.why, "failed 2 times in a row (consecutive_failure_limit 2)");
    cn_policy_free(&p);
}

/* ---- whole stages: judge, tally and verdict together -------------------- */

typedef struct stage_run {
    cn_verdict v;
    int64_t at_ms; /* when the first verdict other than BAKING came */
} stage_run;

/* Polls one metric every interval with the reading next() gives, the way
 * the controller will, until a verdict other than BAKING. */
static stage_run run_stage(const cn_policy *p, cn_reading (*next)(unsigned), int64_t bake_ms)
{
    cn_stage_limits l = cn_analysis_limits(p, bake_ms, false);
    cn_threshold t = cn_analysis_threshold(p, 0, false);
    cn_metric_tally tally = {0};
    stage_run r = {.at_ms = 0};
    for (unsigned k = 1; k < 1000; k++) {
        int64_t now = (int64_t)k * p->analysis.interval_ms;
        cn_reading reading = next(k);
        char why[256];
        cn_tally_add(&tally, cn_analysis_judge(&p->analysis.metrics[0], &t, &reading, NULL,
                                               why, sizeof why));
        r.v = cn_stage_verdict(&l, &tally, p->analysis.metrics, 1, now, 0.0);
        r.at_ms = now;
        if (r.v.kind != CN_VERDICT_BAKING)
            return r;
    }
    fail_msg("stage never ended");
    return r;
}

static cn_reading always_empty(unsigned k)
{
    (void)k;
    return nodata("empty vector");
}

static cn_reading always_good(unsigned k)
{
    (void)k;
    return value(0.001);
}

static cn_reading good_then_bad(unsigned k)
{
    return value(k < 4 ? 0.001 : 0.05); /* the 4th poll, at 2m, is bad */
}

static cn_reading mostly_nan(unsigned k)
{
    return k % 3 ? value(NAN) : value(0.001); /* one pass every 90s */
}

static cn_reading flaky_provider(unsigned k)
{
    return k % 2 ? error("connection refused") : value(0.001);
}

static cn_reading provider_down(unsigned k)
{
    return k < 3 ? value(0.001) : error("HTTP 502");
}

static void test_stages_end_to_end(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_metric m[] = {{.name = "error-rate", .threshold = {.has_max = true, .max = 0.01}}};
    p.analysis.metrics = m;
    p.analysis.metric_count = 1;

    /* silence is never a pass: 6m of empty results, then on_inconclusive */
    stage_run r = run_stage(&p, always_empty, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_INCONCLUSIVE);
    assert_int_equal(r.v.action, CN_ON_ROLLBACK);
    assert_int_equal(r.at_ms, 6 * MIN_MS);
    assert_why(r.v.why, "error-rate has 0 of 3 passing samples (12 without data)");
    p.analysis.on_inconclusive = CN_ON_PAUSE;
    r = run_stage(&p, always_empty, 2 * MIN_MS);
    assert_int_equal(r.v.action, CN_ON_PAUSE);

    r = run_stage(&p, always_good, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_PROMOTE);
    assert_int_equal(r.at_ms, 2 * MIN_MS);

    /* the poll that completes the bake fails it */
    r = run_stage(&p, good_then_bad, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_FAILED);
    assert_int_equal(r.at_ms, 2 * MIN_MS);
    assert_why(r.v.why, "error-rate failed 1 time, more than failure_limit 0");

    /* sparse passes between NaNs: the bake is extended until 3 passes */
    r = run_stage(&p, mostly_nan, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_PROMOTE);
    assert_int_equal(r.at_ms, 9 * 30000);

    /* errors that never reach the limit in a row only delay */
    r = run_stage(&p, flaky_provider, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_PROMOTE);
    assert_int_equal(r.at_ms, 3 * MIN_MS);

    r = run_stage(&p, provider_down, 2 * MIN_MS);
    assert_int_equal(r.v.kind, CN_VERDICT_ERRORED);
    assert_int_equal(r.v.action, CN_ON_ROLLBACK);
    assert_int_equal(r.at_ms, 5 * 30000);
    assert_why(r.v.why, "error-rate had 3 provider errors in a row");
    cn_policy_free(&p);
}

/* ---- properties --------------------------------------------------------- */

/* xorshift64*: deterministic across platforms, so a failing seed repeats. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

static bool all_have(const cn_metric_tally *t, size_t n, unsigned min_samples)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].passes < min_samples)
            return false;
    return true;
}

/* Any limits: PROMOTE needs the whole bake and min_samples passes for
 * every metric, whatever came before. */
static void property_promote_needs_evidence(uint64_t *seed)
{
    cn_stage_limits l = {
        .bake_ms = (int64_t)below(seed, 10) * 30000,
        .min_samples = 1 + below(seed, 4),
        .failure_limit = below(seed, 3),
        .consecutive_failure_limit = below(seed, 3),
        .consecutive_error_limit = 1 + below(seed, 4),
        .on_failure = (int)below(seed, 2),
        .on_inconclusive = (int)below(seed, 2),
    };
    l.max_bake_ms = l.bake_ms * (1 + below(seed, 3));
    size_t n = 1 + below(seed, N_METRICS);
    cn_metric_tally t[N_METRICS] = {{0}};
    int64_t baked = 0;
    unsigned steps = 1 + below(seed, 40);
    for (unsigned k = 0; k < steps; k++) {
        cn_tally_add(&t[below(seed, (unsigned)n)], (cn_outcome)below(seed, 4));
        baked += below(seed, 30001);
        cn_verdict v = cn_stage_verdict(&l, t, METRICS, n, baked, 100.0);
        assert_true(v.why[0] != '\0');
        assert_true(v.metric >= -1 && v.metric < (long)n);
        if (v.kind == CN_VERDICT_PROMOTE) {
            assert_true(baked >= l.bake_ms);
            assert_true(all_have(t, n, l.min_samples));
        }
        if (v.kind == CN_VERDICT_ERRORED)
            assert_int_equal(v.action, CN_ON_ROLLBACK);
    }
}

/* Default limits, polled as the controller will (stop at the first verdict
 * other than BAKING): once any metric fails, or errs consecutive_error_limit
 * times in a row, that very verdict is FAILED / ERRORED for that metric. */
static cn_verdict_kind property_defaults_end_in_rollback(uint64_t *seed)
{
    cn_policy p;
    cn_policy_defaults(&p);
    int64_t bake = 30000 * (int64_t)(1 + below(seed, 8));
    cn_stage_limits l = cn_analysis_limits(&p, bake, false);
    size_t n = 1 + below(seed, N_METRICS);
    cn_metric_tally t[N_METRICS] = {{0}};
    /* weights favour passes and errors so that error runs do happen */
    static const cn_outcome pick[] = {CN_OUTCOME_PASS, CN_OUTCOME_PASS, CN_OUTCOME_PASS,
                                      CN_OUTCOME_NODATA, CN_OUTCOME_ERROR,
                                      CN_OUTCOME_ERROR, CN_OUTCOME_ERROR, CN_OUTCOME_FAIL};
    int64_t baked = 0;
    cn_verdict_kind end = CN_VERDICT_BAKING;
    for (unsigned k = 0; k < 200; k++) {
        size_t i = below(seed, (unsigned)n);
        cn_outcome o = pick[below(seed, sizeof pick / sizeof pick[0])];
        cn_tally_add(&t[i], o);
        baked += below(seed, 30001);
        cn_verdict v = cn_stage_verdict(&l, t, METRICS, n, baked, 0.0);
        bool run = t[i].consecutive_errors >= l.consecutive_error_limit;
        if (run) {
            assert_int_equal(v.kind, CN_VERDICT_ERRORED);
            assert_int_equal(v.metric, (long)i);
            assert_int_equal(v.action, CN_ON_ROLLBACK);
        } else if (o == CN_OUTCOME_FAIL) {
            assert_int_equal(v.kind, CN_VERDICT_FAILED);
            assert_int_equal(v.metric, (long)i);
            assert_int_equal(v.action, CN_ON_ROLLBACK);
        }
        if (v.kind == CN_VERDICT_PROMOTE) {
            assert_true(baked >= bake);
            assert_true(all_have(t, n, 3));
        }
        end = v.kind;
        if (v.kind != CN_VERDICT_BAKING)
            break;
        /* still baking: nothing bad has happened yet */
        for (size_t j = 0; j < n; j++) {
            assert_int_equal(t[j].failures, 0);
            assert_true(t[j].consecutive_errors < l.consecutive_error_limit);
        }
    }
    cn_policy_free(&p);
    return end;
}

static void test_properties(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    unsigned ends[5] = {0};
    for (int i = 0; i < 20000; i++) {
        property_promote_needs_evidence(&seed);
        ends[property_defaults_end_in_rollback(&seed)]++;
    }
    /* the sequences reach every ending, so each assertion above was tried */
    for (int k = CN_VERDICT_PROMOTE; k <= CN_VERDICT_INCONCLUSIVE; k++)
        if (ends[k] < 100) {
            print_error("only %u sequences ended %s\n", ends[k],
                        verdict_name((cn_verdict_kind)k));
            fail();
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_reading_kinds),
        cmocka_unit_test(test_judge_thresholds),
        cmocka_unit_test(test_judge_baselines),
        cmocka_unit_test(test_judge_why_buffers),
        cmocka_unit_test(test_ai_threshold_override),
        cmocka_unit_test(test_tally_resets),
        cmocka_unit_test(test_tally_saturates),
        cmocka_unit_test(test_limits_defaults),
        cmocka_unit_test(test_limits_from_policy),
        cmocka_unit_test(test_limits_ai_overrides),
        cmocka_unit_test(test_verdict_table),
        cmocka_unit_test(test_verdict_requests_unknown),
        cmocka_unit_test(test_verdict_without_names),
        cmocka_unit_test(test_verdict_long_name),
        cmocka_unit_test(test_verdict_ai_limits),
        cmocka_unit_test(test_stages_end_to_end),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("analysis", tests, NULL, NULL);
}
