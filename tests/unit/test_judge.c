/* The statistical judge: the Mann-Whitney test, the Hodges-Lehmann shift
 * and its interval, the transforms and every classification rule.
 *
 * Kayenta's published vectors (spinnaker/kayenta: kayenta-mannwhitney
 * MannWhitneySuite, kayenta-judge ClassifierSuite, DetectorSuite,
 * TransformSuite, StatisticSuite) are ported with their inputs and
 * expected outputs; each test names its suite and case. Kayenta's
 * interval ends come from Brent's method stopped at R's tolerance 1e-4,
 * so they sit up to 1e-4 from the exact crossing; we assert the exact
 * values (checked with R 4.2.2, wilcox.test(x, y, exact = FALSE,
 * correct = TRUE, conf.int = TRUE, tol.root = 1e-13), which lands on the
 * same differences) and Kayenta's within that 1e-4. The other vectors are
 * R-checked the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/judge.h"
#include "canary/status.h"
#include "checks.h"
#include "proc.h"

#define E 1e-6     /* Kayenta's tolerance for exact quantities */
#define R_TOL 1e-4 /* R's uniroot tolerance behind Kayenta's interval ends */
#define EXACT 1e-12
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define assert_near(a, b, tol)                                                 \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (!(fabs(a_ - b_) <= (tol))) {                                       \
            print_error("%s = %.17g, expected %.17g (+-%g)\n", #a, a_, b_,     \
                        (double)(tol));                                        \
            fail();                                                            \
        }                                                                      \
    } while (0)

/* ---- data ----------------------------------------------------------------- */

typedef struct sample {
    double v[1024];
    size_t n;
} sample;

/* A file of tests/data/judge/kayenta, one number per line, '#' comments. */
static void load(sample *s, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/judge/kayenta/%s.txt", name);
    FILE *f = fopen(cn_test_src(rel), "r");
    if (!f) {
        print_error("cannot open %s\n", rel);
        fail();
    }
    char line[512];
    s->n = 0;
    while (fgets(line, sizeof line, f)) {
        char *end;
        double v = strtod(line, &end);
        if (line[0] != '#' && end != line && s->n < N_OF(s->v))
            s->v[s->n++] = v;
    }
    fclose(f);
}

static cn_mw_result mw(const double *x, size_t n, const double *y, size_t m, double conf)
{
    cn_mw_result r;
    char err[200];
    int rc = cn_mw_test(x, n, y, m, conf, &r, err, sizeof err);
    if (rc) {
        print_error("cn_mw_test: %s\n", err);
        fail();
    }
    return r;
}

/* Kayenta's classifier as its suites build it: tolerance and confidence
 * given, effect thresholds (decrease, increase), the rest default. */
static cn_judge_config kayenta(double tolerance, double confidence)
{
    cn_judge_config c = cn_judge_defaults();
    c.tolerance = tolerance;
    c.confidence = confidence;
    return c;
}

static cn_judge_result classify(const cn_judge_config *c, const double *x, size_t n,
                                const double *y, size_t m)
{
    cn_judge_result r;
    int rc = cn_judge_metric(c, x, n, y, m, &r);
    if (rc) {
        print_error("cn_judge_metric %d: %s\n", rc, r.reason);
        fail();
    }
    return r;
}

#define assert_class(r, cls)                                                   \
    do {                                                                       \
        if ((r).classification != (cls)) {                                     \
            print_error("classified %s, expected %s: %s\n",                    \
                        cn_judge_class_name((r).classification),               \
                        cn_judge_class_name(cls), (r).reason);                 \
            fail();                                                            \
        }                                                                      \
    } while (0)

/* ---- MannWhitneySuite ----------------------------------------------------- */

/* MannWhitneySuite "tie out with R version": conf 0.95. */
static void test_mws_tie_out_with_r(void **state)
{
    (void)state;
    sample x, y;
    load(&x, "r1_canary");
    load(&y, "r1_baseline");
    assert_int_equal(x.n, 90);
    assert_int_equal(y.n, 90);
    cn_mw_result r = mw(x.v, x.n, y.v, y.n, 0.95);
    assert_near(r.ci_low, -0.500002521696696, R_TOL); /* rCiLow */
    assert_near(r.ci_high, -3.486287505871302E-5, R_TOL); /* rCiHigh */
    assert_near(r.estimate, -0.4999393907180323, R_TOL); /* rEst (asserted only in R) */
    /* Exact, and R's W and p (R-checked). */
    assert_near(r.ci_low, -0.5, EXACT);
    assert_near(r.ci_high, 0.0, EXACT);
    assert_near(r.estimate, -0.5, EXACT);
    assert_near(r.u, 3344, 0);
    assert_near(r.p_value, 0.040972234992844123, 1e-15);
}

/* MannWhitneySuite "tie out with R version again": conf 0.98. */
static void test_mws_tie_out_again(void **state)
{
    (void)state;
    sample x, y;
    load(&x, "r2_canary");
    load(&y, "r2_baseline");
    assert_int_equal(x.n, 180);
    assert_int_equal(y.n, 180);
    cn_mw_result r = mw(x.v, x.n, y.v, y.n, 0.98);
    assert_near(r.ci_low, -0.4999173250549087, R_TOL);
    assert_near(r.ci_high, -6.912685789769486E-6, R_TOL);
    assert_near(r.estimate, -3.45044082729315E-5, R_TOL);
    assert_near(r.ci_low, -0.5, EXACT);
    assert_near(r.ci_high, 0.0, EXACT);
    assert_near(r.estimate, 0.0, EXACT);
    assert_near(r.u, 13337.5, 0);
    assert_near(r.p_value, 0.0026248528367564935, 1e-15);
}

/* MannWhitneySuite "tie out intermediate variables": R's mumin, mumax,
 * quantiles and the function at both ends for both quantiles, then the
 * interval. The function is z(mu) - zq with z from cn_mw_shift_z. */
static void test_mws_intermediate(void **state)
{
    (void)state;
    sample x, y;
    load(&x, "ties_canary");
    load(&y, "ties_baseline");
    assert_int_equal(x.n, 210);
    assert_int_equal(y.n, 210);
    double xmin = x.v[0], xmax = x.v[0], ymin = y.v[0], ymax = y.v[0];
    for (size_t i = 0; i < x.n; i++) {
        xmin = fmin(xmin, x.v[i]);
        xmax = fmax(xmax, x.v[i]);
    }
    for (size_t i = 0; i < y.n; i++) {
        ymin = fmin(ymin, y.v[i]);
        ymax = fmax(ymax, y.v[i]);
    }
    double mumin = xmin - ymax, mumax = xmax - ymin;
    assert_near(mumin, -3.124999999999986, E);
    assert_near(mumax, 5.555555555555557, E);
    double zq_lower = gsl_cdf_ugaussian_Qinv(0.025), zq_upper = gsl_cdf_ugaussian_Pinv(0.025);
    assert_near(zq_lower, 1.9599639845400536, E);
    assert_near(zq_upper, -1.9599639845400536, E);
    double zlo, zhi;
    assert_int_equal(cn_mw_shift_z(x.v, x.n, y.v, y.n, mumin, &zlo, NULL, 0), CN_OK);
    assert_int_equal(cn_mw_shift_z(x.v, x.n, y.v, y.n, mumax, &zhi, NULL, 0), CN_OK);
    assert_near(zlo - zq_lower, 17.090968923762254, E); /* rFlower1 */
    assert_near(zhi - zq_lower, -20.997687930433106, E); /* rFupper1 */
    assert_near(zlo - zq_upper, 21.01089689284236, E);   /* rFlower2 */
    assert_near(zhi - zq_upper, -17.077759961353, E);    /* rFupper2 */
    cn_mw_result r = mw(x.v, x.n, y.v, y.n, 0.95);
    assert_near(r.ci_low, 3.521755377702165E-5, R_TOL); /* rCil */
    assert_near(r.ci_high, 2.02456461662334E-5, R_TOL); /* rCiu */
    assert_near(r.estimate, 2.6279243045155653E-5, R_TOL); /* rEst */
    /* Exactly: every shift is rejected but 0, where the mass of 0 - 0
     * pairs flips the statistic; both ends are 0 (R with tol.root 1e-13:
     * 3.1e-14 and 8.9e-14). */
    assert_true(r.ci_low == 0 && r.ci_high == 0 && r.estimate == 0);
    assert_near(r.u, 27139, 0);
    assert_near(r.p_value, 2.833448233359801e-09, 1e-20);
}

/* MannWhitneySuite "wilcox function": the function at shifts 0 and 5 for
 * zq = 0, on 850 + 850 real values around 0.0333 (differences of 1e-6). */
static void test_mws_wilcox_function(void **state)
{
    (void)state;
    static sample x, y;
    load(&x, "wilcox_canary");
    load(&y, "wilcox_baseline");
    assert_int_equal(x.n, 850);
    assert_int_equal(y.n, 850);
    double z0, z5;
    assert_int_equal(cn_mw_shift_z(x.v, x.n, y.v, y.n, 0, &z0, NULL, 0), CN_OK);
    assert_int_equal(cn_mw_shift_z(x.v, x.n, y.v, y.n, 5, &z5, NULL, 0), CN_OK);
    assert_near(z0, -1.229416, E);
    assert_near(z5, -35.80606, E);
}

/* MannWhitneySuite "test problem case": the same samples (experiment = x,
 * control = y there), conf 0.98. Kayenta's interval [-1.48e-5, 1.81e-5]
 * and estimate 1.81e-5 are where R's root finder stops at 1e-4: on values
 * that differ by 1e-6 that is noise. The interval is really [-7.45e-8,
 * 1.74e-9] and the shift -1.74e-9 (R with tol.root = 1e-13 agrees to
 * 1e-13, the rounding of the data's last digits). */
static void test_mws_problem_case(void **state)
{
    (void)state;
    static sample x, y;
    load(&x, "wilcox_canary");
    load(&y, "wilcox_baseline");
    cn_mw_result r = mw(x.v, x.n, y.v, y.n, 0.98);
    assert_near(r.ci_low, -1.4808028936386108E-5, R_TOL);
    assert_near(r.ci_high, 1.808255910873413E-5, R_TOL);
    assert_near(r.estimate, 1.808255910873413E-5, R_TOL);
    assert_near(r.ci_low, -7.4505798528288468e-08, 1e-13);
    assert_near(r.ci_high, 1.73854617514225e-09, 1e-13);
    assert_near(r.estimate, -1.7384688064114862e-09, 1e-20); /* R: median(outer(x, y, "-")) */
    assert_near(r.u, 348869, 0);
    assert_near(r.p_value, 0.21891569688556359, 1e-15);
}

/* MannWhitneySuite "returns expected values" and "quant". */
static void test_mws_small_and_quantile(void **state)
{
    (void)state;
    const double control[] = {1.0, 2.0, 3.0, 4.0}, experiment[] = {10.0, 20.0, 30.0, 40.0};
    cn_mw_result r = mw(experiment, 4, control, 4, 0.95);
    assert_near(r.ci_low, 6.0, E);
    assert_near(r.ci_high, 39.0, E);
    assert_near(r.estimate, 22.5, E);
    assert_near(gsl_cdf_ugaussian_Pinv(0.02 / 2), -2.326348, E);
}

/* ---- the test against R --------------------------------------------------- */

/* R's ?wilcox.test depression data (Hollander & Wolfe), two-sample. */
static void test_mw_against_r(void **state)
{
    (void)state;
    const double x[] = {1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30};
    const double y[] = {0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29};
    cn_mw_result r = mw(x, 9, y, 9, 0.95);
    assert_near(r.u, 58, 0);
    assert_near(r.p_value, 0.13291945818531886, 1e-15);
    assert_near(r.estimate, 0.56, EXACT);
    assert_near(r.ci_low, -0.37, EXACT);
    assert_near(r.ci_high, 1.183, EXACT);
    r = mw(x, 9, y, 9, 0.98);
    assert_near(r.ci_low, -0.56, EXACT);
    assert_near(r.ci_high, 1.233, EXACT);

    /* Ties inside and across the samples, an even number of pairs. */
    const double a[] = {3, 4, 4, 5, 7, 7, 7, 9}, b[] = {1, 2, 4, 4, 5, 6};
    r = mw(a, 8, b, 6, 0.90);
    assert_near(r.u, 36.5, 0);
    assert_near(r.p_value, 0.1151690481592814, 1e-15);
    assert_near(r.estimate, 2, EXACT);
    assert_near(r.ci_low, 0, EXACT);
    assert_near(r.ci_high, 4, EXACT);

    /* Completely separated, x below: W = 0. */
    const double lo[] = {1, 2, 3, 4}, hi[] = {11, 12, 13, 14, 15};
    r = mw(lo, 4, hi, 5, 0.98);
    assert_near(r.u, 0, 0);
    assert_near(r.p_value, 0.019964453305216061, 1e-15);
    assert_near(r.estimate, -10.5, EXACT);
    assert_near(r.ci_low, -14, EXACT);
    assert_near(r.ci_high, -7, EXACT);

    /* Small, no ties: W, p and interval as R. */
    const double s1[] = {1, 2, 3}, s2[] = {4, 5};
    r = mw(s1, 3, s2, 2, 0.95);
    assert_near(r.u, 0, 0);
    assert_near(r.p_value, 0.14891467317876567, 1e-15);
    assert_near(r.estimate, -2.5, EXACT);
    assert_near(r.ci_low, -4, EXACT);
    assert_near(r.ci_high, -1, EXACT);
}

/* Degenerate samples get defined answers where R gives NA or stops. */
static void test_mw_degenerate(void **state)
{
    (void)state;
    const double one[] = {1, 1, 1}, other[] = {1, 1};
    cn_mw_result r = mw(one, 3, other, 2, 0.98);
    assert_near(r.p_value, 1, 0); /* every value ties: no evidence */
    assert_near(r.u, 3, 0);
    assert_true(r.estimate == 0 && r.ci_low == 0 && r.ci_high == 0);

    const double three[] = {3}, unit[] = {1};
    r = mw(three, 1, unit, 1, 0.98); /* R: "missing value" in its root finder */
    assert_near(r.u, 1, 0);
    assert_near(r.p_value, 1, 0);
    assert_true(r.estimate == 2 && r.ci_low == 2 && r.ci_high == 2);

    const double tens[] = {10, 10, 10, 10, 10}, ones[] = {1, 1, 1, 1, 1};
    r = mw(tens, 5, ones, 5, 0.95);
    assert_near(r.u, 25, 0);
    assert_true(r.p_value < 0.01);
    assert_true(r.estimate == 9 && r.ci_low == 9 && r.ci_high == 9);
}

static void test_mw_refuses(void **state)
{
    (void)state;
    const double ok[] = {1, 2, 3};
    const double with_nan[] = {1, NAN, 3}, with_inf[] = {1, 2, INFINITY};
    cn_mw_result r;
    char err[200];
    assert_int_equal(cn_mw_test(ok, 0, ok, 3, 0.98, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "canary sample is empty");
    assert_int_equal(cn_mw_test(ok, 3, NULL, 0, 0.98, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "baseline sample is empty");
    assert_int_equal(cn_mw_test(with_nan, 3, ok, 3, 0.98, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "canary sample holds NaN at index 1");
    assert_int_equal(cn_mw_test(ok, 3, with_inf, 3, 0.98, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "baseline sample holds an infinite value at index 2");
    assert_int_equal(cn_mw_test(ok, 3, ok, 3, 1.0, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "confidence must lie strictly between 0 and 1, got 1");
    assert_int_equal(cn_mw_test(ok, 3, ok, 3, NAN, &r, NULL, 0), CN_EINVAL);
    assert_int_equal(cn_mw_test(ok, CN_JUDGE_MAX_SAMPLES + 1, ok, 3, 0.98, &r, err, sizeof err),
                     CN_ELIMIT);
    assert_contains(err, "holds 100001 values, more than the 100000");
    double z;
    assert_int_equal(cn_mw_shift_z(ok, 3, ok, 3, NAN, &z, err, sizeof err), CN_EINVAL);
    /* Finite values whose differences are not. */
    const double huge[] = {1e308, 1}, tiny[] = {-1e308, 2};
    assert_int_equal(cn_mw_test(huge, 2, tiny, 2, 0.98, &r, err, sizeof err), CN_EINVAL);
    assert_contains(err, "the samples are too far apart: their differences overflow");
    cn_judge_result j;
    cn_judge_config c = cn_judge_defaults();
    assert_int_equal(cn_judge_metric(&c, huge, 2, tiny, 2, &j), CN_EINVAL);
    assert_int_equal(j.classification, CN_JUDGE_ERROR);
}

/* The largest samples the judge takes: 100k a side, a shift of 1% of the
 * spread found, and one value more refused. */
static void test_mw_largest(void **state)
{
    (void)state;
    size_t n = CN_JUDGE_MAX_SAMPLES;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    uint64_t seed = 42;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        double u1 = (double)(seed >> 11) / 9007199254740992.0;
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        double u2 = (double)(seed >> 11) / 9007199254740992.0;
        x[i] = 100 + u1 * 10 + 0.5; /* uniform on [100.5, 110.5) */
        y[i] = 100 + u2 * 10;       /* uniform on [100, 110) */
    }
    cn_mw_result r = mw(x, n, y, n, 0.98);
    assert_true(r.ci_low > 0.3 && r.ci_high < 0.7);
    assert_true(r.estimate > r.ci_low && r.estimate < r.ci_high);
    assert_true(r.p_value < 1e-100);
    cn_judge_config c = cn_judge_defaults();
    cn_judge_result j = classify(&c, x, n, y, n);
    assert_class(j, CN_JUDGE_HIGH);
    free(x);
    free(y);
}

/* ---- ClassifierSuite ------------------------------------------------------ */

typedef struct classifier_data {
    sample a, b, high, low_baseline, ties_canary, ties_baseline;
} classifier_data;

static int setup_classifier(void **state)
{
    classifier_data *d = malloc(sizeof *d);
    if (!d)
        return -1;
    load(&d->a, "classifier_a");
    load(&d->b, "classifier_b");
    load(&d->high, "classifier_high");
    load(&d->low_baseline, "classifier_low_baseline");
    load(&d->ties_canary, "ties_canary");
    load(&d->ties_baseline, "ties_baseline");
    *state = d;
    return 0;
}

static int teardown_classifier(void **state)
{
    free(*state);
    return 0;
}

/* ClassifierSuite "Mann-Whitney Classifier Test: Pass / High / Low
 * Metric" and the "Directional Test" cases: tolerance 0.10, conf 0.95. */
static void test_cs_pass_high_low(void **state)
{
    classifier_data *d = *state;
    cn_judge_config c = kayenta(0.10, 0.95);
    assert_int_equal(d->a.n, 30);
    cn_judge_result r = classify(&c, d->a.v, 30, d->b.v, 30);
    assert_class(r, CN_JUDGE_PASS); /* Pass Metric */
    r = classify(&c, d->high.v, 30, d->b.v, 30);
    assert_class(r, CN_JUDGE_HIGH); /* High Metric */
    assert_false(r.critical_failure);
    r = classify(&c, d->a.v, 30, d->low_baseline.v, 30);
    assert_class(r, CN_JUDGE_LOW); /* Low Metric */

    c.direction = CN_DIRECTION_INCREASE;
    r = classify(&c, d->a.v, 30, d->low_baseline.v, 30);
    assert_class(r, CN_JUDGE_PASS); /* Directional Test: Increase */
    assert_contains(r.reason, "direction increase lets the canary be lower");
    r = classify(&c, d->high.v, 30, d->b.v, 30);
    assert_class(r, CN_JUDGE_HIGH); /* Directional Test: High Metric */
    assert_false(r.critical_failure);

    c.direction = CN_DIRECTION_DECREASE;
    r = classify(&c, d->high.v, 30, d->b.v, 30);
    assert_class(r, CN_JUDGE_PASS); /* Directional Test: Decrease */
    r = classify(&c, d->a.v, 30, d->low_baseline.v, 30);
    assert_class(r, CN_JUDGE_LOW); /* Directional Test: Low Metric */
}

/* ClassifierSuite "High Metric (Large Input)" and "Mean Ratio Effect Size:
 * Pass (Large Input)": mostly zeros, the canary with more non-zero values.
 * The shift, its interval and the band are all 0; the test at the band
 * still rejects (Kayenta gets High from its root finder's 3.5e-5). */
static void test_cs_large_input(void **state)
{
    classifier_data *d = *state;
    cn_judge_config c = kayenta(0.10, 0.95);
    cn_judge_result r = classify(&c, d->ties_canary.v, d->ties_canary.n, d->ties_baseline.v,
                                 d->ties_baseline.n);
    assert_class(r, CN_JUDGE_HIGH);
    assert_false(r.critical_failure);
    assert_true(r.ci_low == 0 && r.ci_high == 0 && r.band == 0);
    assert_contains(r.reason, "at its edge the test still rejects");
    c.allowed_decrease = 1.0;
    c.allowed_increase = 5.0;
    r = classify(&c, d->ties_canary.v, d->ties_canary.n, d->ties_baseline.v,
                 d->ties_baseline.n);
    assert_class(r, CN_JUDGE_PASS);
    assert_near(r.effect_size, 4.4466252810958613, 1e-12);
    assert_contains(r.reason, "mean ratio 4.44663 does not reach the allowed increase 5");
}

/* ClassifierSuite "Mean Ratio Effect Size: High / Low / Pass". */
static void test_cs_mean_ratio(void **state)
{
    classifier_data *d = *state;
    const double hx[] = {20.0, 22.0, 21.0, 25.0, 30.0}, hy[] = {1.0, 2.2, 1.1, 2.5, 3.0};
    cn_judge_config c = kayenta(0.10, 0.95);
    c.allowed_decrease = 0.8;
    c.allowed_increase = 1.2;
    cn_judge_result r = classify(&c, hx, 5, hy, 5);
    assert_class(r, CN_JUDGE_HIGH);
    assert_near(r.effect_size, 118.0 / 9.8, 1e-12);

    c.direction = CN_DIRECTION_DECREASE;
    r = classify(&c, d->a.v, 30, d->low_baseline.v, 30);
    assert_class(r, CN_JUDGE_LOW);

    const double px[] = {10.0, 12.2, 10.1, 12.5, 23.0}, py[] = {20.0, 22.0, 21.0, 25.0, 30.0};
    c = kayenta(0.10, 0.95);
    c.allowed_decrease = 0.5;
    c.allowed_increase = 1.0;
    c.nan_strategy = CN_NAN_REMOVE;
    r = classify(&c, px, 5, py, 5);
    assert_class(r, CN_JUDGE_PASS);
}

/* ClassifierSuite "Critical Effect Size: Critical High / Critical Low /
 * High / Pass / Critical High (Default Thresholds)". */
static void test_cs_critical(void **state)
{
    (void)state;
    const double hx[] = {20.0, 22.0, 21.0, 25.0, 30.0}, hy[] = {1.0, 2.2, 1.1, 2.5, 3.0};
    cn_judge_config c = kayenta(0.10, 0.95);
    c.critical = true;
    c.critical_decrease = 1.0;
    c.critical_increase = 1.2;
    cn_judge_result r = classify(&c, hx, 5, hy, 5);
    assert_class(r, CN_JUDGE_HIGH);
    assert_true(r.critical_failure);
    assert_contains(r.reason, "beyond the critical increase 1.2, the judgement fails");

    const double lx[] = {2.0, 2.0, 2.0, 2.0, 3.0}, ly[] = {10.0, 20.2, 10.1, 20.5, 30.0};
    c.critical_decrease = 1.2;
    c.critical_increase = 1.0;
    r = classify(&c, lx, 5, ly, 5);
    assert_class(r, CN_JUDGE_LOW);
    assert_true(r.critical_failure);

    c = kayenta(0.10, 0.95);
    c.critical = true;
    c.allowed_decrease = 1.0;
    c.allowed_increase = 5.0;
    c.critical_decrease = 1.0;
    c.critical_increase = 13.0;
    r = classify(&c, hx, 5, hy, 5);
    assert_class(r, CN_JUDGE_HIGH);
    assert_false(r.critical_failure);

    c.allowed_increase = 13.0;
    c.critical_increase = 15.0;
    r = classify(&c, hx, 5, hy, 5);
    assert_class(r, CN_JUDGE_PASS);
    assert_false(r.critical_failure);

    c = kayenta(0.10, 0.95);
    c.critical = true;
    r = classify(&c, hx, 5, hy, 5);
    assert_class(r, CN_JUDGE_HIGH);
    assert_true(r.critical_failure);
}

/* ClassifierSuite "Tied Observations", "Identical Populations", "Leading
 * Zero Identical Population", "Majority Tied Observations", "Tied Ranks",
 * "Tied Ranks With Zeros". */
static void test_cs_ties(void **state)
{
    (void)state;
    cn_judge_config c = kayenta(0.10, 0.95);
    c.direction = CN_DIRECTION_DECREASE;
    const double ones3[] = {1.0, 1.0, 1.0}, ones2[] = {1.0, 1.0};
    cn_judge_result r = classify(&c, ones3, 3, ones2, 2);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "every value is 1");
    assert_near(r.p_value, 1, 0);

    const double up[] = {1.0, 2.0, 3.0, 4.0, 5.0}, down[] = {5.0, 4.0, 3.0, 2.0, 1.0};
    r = classify(&c, up, 5, down, 5);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "hold the same values (5 each)");

    const double lead[] = {0.0, 1.0, 1.0, 1.0, 1.0}, ones5[] = {1.0, 1.0, 1.0, 1.0, 1.0};
    r = classify(&c, lead, 5, ones5, 5);
    assert_class(r, CN_JUDGE_PASS);
    assert_true(r.ci_low == -1 && r.ci_high == 0 && r.estimate == 0);

    c.direction = CN_DIRECTION_EITHER;
    const double major[] = {1.0, 1.0, 1.0, 1.0, 10.0};
    r = classify(&c, major, 5, ones5, 5);
    assert_class(r, CN_JUDGE_PASS);

    const double tens[] = {10.0, 10.0, 10.0, 10.0, 10.0}, zeros[] = {0, 0, 0, 0, 0};
    r = classify(&c, tens, 5, ones5, 5);
    assert_class(r, CN_JUDGE_HIGH);
    r = classify(&c, tens, 5, zeros, 5);
    assert_class(r, CN_JUDGE_HIGH);
    assert_true(isinf(r.effect_size) && r.effect_size > 0);
}

/* ClassifierSuite "Missing Experiment Data", "... Critical Metric",
 * "... with NaN Replacement", "Missing Data: Reason String". */
static void test_cs_missing(void **state)
{
    (void)state;
    const double ctl[] = {1.0, 2.0, 3.0, 4.0, 5.0};
    cn_judge_config c = kayenta(0.10, 0.95);
    c.direction = CN_DIRECTION_DECREASE;
    cn_judge_result r = classify(&c, NULL, 0, ctl, 5);
    assert_class(r, CN_JUDGE_NODATA);
    assert_false(r.critical_failure);
    assert_false(r.tested);

    c.critical = true;
    r = classify(&c, NULL, 0, ctl, 5);
    assert_class(r, CN_JUDGE_NODATA);
    assert_true(r.critical_failure);

    c.critical = false;
    c.nan_strategy = CN_NAN_REPLACE;
    r = classify(&c, NULL, 0, ctl, 5);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "nan_strategy replace");

    c = kayenta(0.10, 0.95);
    c.critical = true;
    r = classify(&c, NULL, 0, NULL, 0);
    assert_true(strlen(r.reason) > 0);
    assert_contains(r.reason, "nodata: neither sample holds values to compare");
}

/* ---- DetectorSuite, TransformSuite, StatisticSuite ----------------------- */

#define assert_values(got, n, want)                                            \
    do {                                                                       \
        assert_int_equal((n), N_OF(want));                                     \
        for (size_t i_ = 0; i_ < N_OF(want); i_++)                             \
            assert_near((got)[i_], (want)[i_], 0);                             \
    } while (0)

/* DetectorSuite "IQR Detection", "IQR Detect Two Sided", "IQR Reduce
 * Sensitivity", "IQR Empty Data"; TransformSuite "IQR Outlier Removal"
 * (what the detector flags is what removal drops). */
static void test_iqr(void **state)
{
    (void)state;
    double d[] = {21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0};
    const double kept[] = {21.0, 23.0, 24.0, 25.0, 29.0, 23.0, 21.0};
    size_t n = cn_judge_remove_outliers(d, N_OF(d), 1.5, false);
    assert_values(d, n, kept);

    double two[] = {1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0};
    const double two_kept[] = {1.0, 1.0, 1.0, -1.0, -1.0, -1.0};
    n = cn_judge_remove_outliers(two, N_OF(two), 1.5, false);
    assert_values(two, n, two_kept);

    double spike[] = {1.0, 1.0, 1.0, 1.0, 1.0, 20.0, 1.0, 1.0, 1.0, 1.0, 1.0};
    const double all[] = {1.0, 1.0, 1.0, 1.0, 1.0, 20.0, 1.0, 1.0, 1.0, 1.0, 1.0};
    n = cn_judge_remove_outliers(spike, N_OF(spike), 3.0, true);
    assert_values(spike, n, all);
    /* Without reduced sensitivity the fences close to [1, 1]. */
    n = cn_judge_remove_outliers(spike, N_OF(spike), 3.0, false);
    assert_int_equal(n, 10);

    assert_int_equal(cn_judge_remove_outliers(NULL, 0, 1.5, false), 0);
}

/* TransformSuite "Remove Single NaN", "Remove Multiple NaN". */
static void test_nan_transforms(void **state)
{
    (void)state;
    double one[] = {0.0, 1.0, NAN, 1.0, 0.0};
    const double one_kept[] = {0.0, 1.0, 1.0, 0.0};
    size_t n = cn_judge_remove_nan(one, N_OF(one));
    assert_values(one, n, one_kept);
    double three[] = {NAN, NAN, NAN};
    assert_int_equal(cn_judge_remove_nan(three, 3), 0);
    double rep[] = {NAN, 2.0, NAN};
    const double replaced[] = {0.0, 2.0, 0.0};
    cn_judge_replace_nan(rep, 3, 0.0);
    assert_values(rep, (size_t)3, replaced);
}

/* StatisticSuite "Effect Size: Mean Ratio (No Effect) / (High) / (Low)";
 * the common-language effect size u / (n m). */
static void test_effect_sizes(void **state)
{
    (void)state;
    const double ones[] = {1, 1, 1, 1, 1}, tens[] = {10, 10, 10, 10, 10};
    const double hundreds[] = {100, 100, 100, 100, 100};
    assert_near(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, ones, 5, ones, 5), 1.0, 0);
    assert_near(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, tens, 5, ones, 5), 10.0, 0);
    assert_near(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, tens, 5, hundreds, 5), 0.1, 1e-15);
    const double zeros[] = {0, 0};
    assert_near(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, zeros, 2, zeros, 2), 1.0, 0);
    assert_true(isinf(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, ones, 5, zeros, 2)));
    assert_near(cn_judge_effect_size(CN_EFFECT_MEAN_RATIO, zeros, 2, ones, 5), 0.0, 0);

    assert_near(cn_judge_effect_size(CN_EFFECT_CLES, tens, 5, ones, 5), 1.0, 0);
    assert_near(cn_judge_effect_size(CN_EFFECT_CLES, ones, 5, tens, 5), 0.0, 0);
    assert_near(cn_judge_effect_size(CN_EFFECT_CLES, ones, 5, ones, 5), 0.5, 0);
    const double a[] = {3, 4, 4, 5, 7, 7, 7, 9}, b[] = {1, 2, 4, 4, 5, 6};
    assert_near(cn_judge_effect_size(CN_EFFECT_CLES, a, 8, b, 6), 36.5 / 48, 1e-15);
    assert_true(isnan(cn_judge_effect_size(CN_EFFECT_CLES, a, 0, b, 6)));
}

/* ---- every rule of cn_judge_metric --------------------------------------- */

static const double BASE[] = {10.1, 9.8, 10.3, 9.9, 10.0, 10.2, 9.7, 10.4, 10.0, 9.9};
static const double UP[] = {12.1, 11.8, 12.3, 11.9, 12.0, 12.2, 11.7, 12.4, 12.0, 11.9};
static const double DOWN[] = {8.1, 7.8, 8.3, 7.9, 8.0, 8.2, 7.7, 8.4, 8.0, 7.9};
static const double SAME[] = {10.0, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0, 10.1, 9.9};

static void test_defaults(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    assert_int_equal(c.direction, CN_DIRECTION_EITHER);
    assert_near(c.tolerance, 0.25, 0);
    assert_near(c.confidence, 0.98, 0);
    assert_int_equal(c.effect, CN_EFFECT_MEAN_RATIO);
    assert_true(isnan(c.allowed_increase) && isnan(c.allowed_decrease));
    assert_true(isnan(c.critical_increase) && isnan(c.critical_decrease));
    assert_int_equal(c.nan_strategy, CN_NAN_REMOVE);
    assert_false(c.remove_outliers || c.critical || c.must_have_data);
    assert_near(c.outlier_factor, 3.0, 0);
    assert_string_equal(cn_judge_class_name(CN_JUDGE_NODATA), "nodata");
    assert_string_equal(cn_direction_name(CN_DIRECTION_DECREASE), "decrease");
    assert_string_equal(cn_effect_measure_name(CN_EFFECT_CLES), "cles");
}

static void test_rules_high_low_pass(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    cn_judge_result r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH);
    assert_true(r.tested);
    assert_near(r.estimate, 2.0, 1e-9);
    assert_near(r.band, 0.5, 1e-9);
    assert_true(r.ci_low > r.band);
    assert_near(r.effect_size, 120.3 / 100.3, 1e-12);
    assert_near(r.u, 100, 0);
    assert_contains(r.reason, "high: the 98% interval of the shift [");
    assert_contains(r.reason, "lies above the band +-0.5 (tolerance 0.25 x |estimate 2|)");
    assert_contains(r.reason, "and the mean ratio 1.1994 reaches the allowed increase 1");

    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_LOW);
    assert_contains(r.reason, "low: ");
    assert_contains(r.reason, "lies below the band +-0.5");

    r = classify(&c, SAME, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "pass: the 98% interval of the shift [");
    assert_contains(r.reason, "reaches into the no-change band");

    /* A wide tolerance swallows the shift: 2.0 x |2| = 4 > the interval. */
    c.tolerance = 2.0;
    r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);

    /* Direction. */
    c = cn_judge_defaults();
    c.direction = CN_DIRECTION_DECREASE;
    r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "but direction decrease lets the canary be higher");
    c.direction = CN_DIRECTION_INCREASE;
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
    r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH);

    /* Effect sizes: 1.2 is not 1.25 more; 0.8 is 0.85 less. */
    c = cn_judge_defaults();
    c.allowed_increase = 1.25;
    c.allowed_decrease = 0.75;
    r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "does not reach the allowed increase 1.25");
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "does not reach the allowed decrease 0.75");
    c.allowed_decrease = 0.85;
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_LOW);
}

static void test_rules_cles(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    c.effect = CN_EFFECT_CLES;
    cn_judge_result r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH); /* the default threshold is 0.5 */
    assert_near(r.effect_size, 1.0, 0);
    assert_contains(r.reason, "common-language effect size 1 reaches the allowed increase 0.5");
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_LOW);
    assert_near(r.effect_size, 0.0, 0);
    c.allowed_decrease = -0.1; /* below any probability: never low */
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_PASS);
}

static void test_rules_critical(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    c.critical = true;
    c.critical_increase = 1.1;
    cn_judge_result r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH);
    assert_true(r.critical_failure);
    c.critical_increase = 1.5;
    r = classify(&c, UP, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH);
    assert_false(r.critical_failure);
    c.critical_decrease = 0.9;
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_true(r.critical_failure);
    c.critical_decrease = 0.5;
    r = classify(&c, DOWN, 10, BASE, 10);
    assert_class(r, CN_JUDGE_LOW);
    assert_false(r.critical_failure);
    r = classify(&c, SAME, 10, BASE, 10);
    assert_false(r.critical_failure); /* a pass never fails */

    /* Not critical: never a critical failure, whatever the size. */
    c = cn_judge_defaults();
    c.critical_increase = 1.0;
    r = classify(&c, UP, 10, BASE, 10);
    assert_false(r.critical_failure);
}

static void test_rules_nodata(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    const double nans[] = {NAN, NAN, NAN};
    cn_judge_result r = classify(&c, nans, 3, BASE, 10);
    assert_class(r, CN_JUDGE_NODATA);
    assert_int_equal(r.canary_count, 0);
    assert_int_equal(r.canary_dropped, 3);
    assert_contains(r.reason, "nodata: the canary sample holds no values to compare (3 NaN");
    assert_false(r.nodata_fails || r.critical_failure);
    assert_true(isnan(r.u) && isnan(r.effect_size));

    r = classify(&c, BASE, 10, NULL, 0);
    assert_contains(r.reason, "the baseline sample holds no values");

    c.must_have_data = true;
    r = classify(&c, nans, 3, BASE, 10);
    assert_class(r, CN_JUDGE_NODATA);
    assert_true(r.nodata_fails);
    assert_false(r.critical_failure);
    assert_contains(r.reason, "must_have_data counts it as a failed metric");

    c.critical = true; /* critical wins over must_have_data, as in Kayenta */
    r = classify(&c, nans, 3, BASE, 10);
    assert_true(r.critical_failure);
    assert_false(r.nodata_fails);

    /* Replace: NaN is 0, and a sample of zeros is judged. */
    c = cn_judge_defaults();
    c.nan_strategy = CN_NAN_REPLACE;
    r = classify(&c, nans, 3, BASE, 10);
    assert_class(r, CN_JUDGE_LOW);
    assert_int_equal(r.canary_count, 3);
    assert_near(r.effect_size, 0, 0);
    /* NaN removed from a sample that still holds values. */
    c = cn_judge_defaults();
    const double some[] = {12.1, NAN, 11.8, 12.3, 11.9, NAN, 12.0, 12.2, 11.7, 12.4};
    r = classify(&c, some, 10, BASE, 10);
    assert_class(r, CN_JUDGE_HIGH);
    assert_int_equal(r.canary_count, 8);
    assert_int_equal(r.canary_dropped, 2);
}

static void test_rules_outliers(void **state)
{
    (void)state;
    /* One wild value among 200: Kayenta's fences (factor 3, widened to the
     * 1st and 99th percentiles, which need 100 values to be inside the
     * sample) drop it; the mean ratio shows the difference. */
    double spiky[200], sum = 0, base = 0;
    for (int i = 0; i < 199; i++) {
        spiky[i] = 9.8 + 0.1 * (i % 5);
        sum += spiky[i];
    }
    spiky[199] = 1000;
    for (size_t i = 0; i < N_OF(BASE); i++)
        base += BASE[i] / N_OF(BASE);
    cn_judge_config c = cn_judge_defaults();
    cn_judge_result r = classify(&c, spiky, 200, BASE, 10);
    assert_int_equal(r.canary_count, 200);
    assert_near(r.effect_size, (sum + 1000) / 200 / base, 1e-12);
    c.remove_outliers = true;
    r = classify(&c, spiky, 200, BASE, 10);
    assert_int_equal(r.canary_count, 199);
    assert_int_equal(r.canary_dropped, 1);
    assert_near(r.effect_size, sum / 199 / base, 1e-12);
    assert_class(r, CN_JUDGE_PASS);
    /* Fewer than 100 values: the 99th percentile is the largest, kept. */
    r = classify(&c, spiky + 180, 20, BASE, 10);
    assert_int_equal(r.canary_dropped, 0);
}

static void test_rules_single_values(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    const double a[] = {5}, b[] = {3}, same[] = {5};
    cn_judge_result r = classify(&c, a, 1, b, 1);
    assert_class(r, CN_JUDGE_PASS); /* one value each: the test cannot reject */
    assert_near(r.p_value, 1, 0);
    assert_true(r.estimate == 2 && r.ci_low == 2 && r.ci_high == 2);
    r = classify(&c, a, 1, same, 1);
    assert_class(r, CN_JUDGE_PASS);
    assert_contains(r.reason, "hold the same values (1 each)");
}

static void test_rules_errors(void **state)
{
    (void)state;
    cn_judge_config c = cn_judge_defaults();
    cn_judge_result r;
    const double inf[] = {1, INFINITY};
    assert_int_equal(cn_judge_metric(&c, inf, 2, BASE, 10, &r), CN_EINVAL);
    assert_class(r, CN_JUDGE_ERROR);
    assert_contains(r.reason, "the canary sample holds an infinite value (value 2)");
    const double minf[] = {-INFINITY};
    assert_int_equal(cn_judge_metric(&c, BASE, 10, minf, 1, &r), CN_EINVAL);
    assert_contains(r.reason, "the baseline sample holds an infinite value (value 1)");

    c.confidence = 0;
    assert_int_equal(cn_judge_metric(&c, BASE, 10, BASE, 10, &r), CN_EINVAL);
    assert_contains(r.reason, "confidence must lie strictly between 0 and 1, got 0");
    c = cn_judge_defaults();
    c.tolerance = -0.1;
    assert_int_equal(cn_judge_metric(&c, BASE, 10, BASE, 10, &r), CN_EINVAL);
    assert_contains(r.reason, "tolerance must be 0 or more, got -0.1");
    c = cn_judge_defaults();
    c.allowed_increase = INFINITY;
    assert_int_equal(cn_judge_metric(&c, BASE, 10, BASE, 10, &r), CN_EINVAL);
    c = cn_judge_defaults();
    c.remove_outliers = true;
    c.outlier_factor = 0;
    assert_int_equal(cn_judge_metric(&c, BASE, 10, BASE, 10, &r), CN_EINVAL);
    assert_contains(r.reason, "outlier factor must be above 0");
    c = cn_judge_defaults();
    c.direction = (cn_direction)7;
    assert_int_equal(cn_judge_metric(&c, BASE, 10, BASE, 10, &r), CN_EINVAL);
    c = cn_judge_defaults();
    c.critical = true;
    assert_int_equal(cn_judge_metric(&c, BASE, CN_JUDGE_MAX_SAMPLES + 1, BASE, 10, &r),
                     CN_ELIMIT);
    assert_class(r, CN_JUDGE_ERROR);
    assert_true(r.critical_failure); /* a critical metric that errs fails */
    assert_contains(r.reason, "more than the 100000 the judge takes");
    assert_int_equal(cn_judge_metric(&c, NULL, 3, BASE, 10, &r), CN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mws_tie_out_with_r),
        cmocka_unit_test(test_mws_tie_out_again),
        cmocka_unit_test(test_mws_intermediate),
        cmocka_unit_test(test_mws_wilcox_function),
        cmocka_unit_test(test_mws_problem_case),
        cmocka_unit_test(test_mws_small_and_quantile),
        cmocka_unit_test(test_mw_against_r),
        cmocka_unit_test(test_mw_degenerate),
        cmocka_unit_test(test_mw_refuses),
        cmocka_unit_test(test_mw_largest),
        cmocka_unit_test_setup_teardown(test_cs_pass_high_low, setup_classifier,
                                        teardown_classifier),
        cmocka_unit_test_setup_teardown(test_cs_large_input, setup_classifier,
                                        teardown_classifier),
        cmocka_unit_test_setup_teardown(test_cs_mean_ratio, setup_classifier,
                                        teardown_classifier),
        cmocka_unit_test(test_cs_critical),
        cmocka_unit_test(test_cs_ties),
        cmocka_unit_test(test_cs_missing),
        cmocka_unit_test(test_iqr),
        cmocka_unit_test(test_nan_transforms),
        cmocka_unit_test(test_effect_sizes),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rules_high_low_pass),
        cmocka_unit_test(test_rules_cles),
        cmocka_unit_test(test_rules_critical),
        cmocka_unit_test(test_rules_nodata),
        cmocka_unit_test(test_rules_outliers),
        cmocka_unit_test(test_rules_single_values),
        cmocka_unit_test(test_rules_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
