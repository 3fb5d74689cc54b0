/*
 * judge_classify.c: one metric's samples to pass / high / low / nodata /
 * error, Kayenta's MannWhitneyClassifier semantics (judge.h has the
 * contract, docs/judge.md the rules with examples).
 *
 * Order of the checks, as Kayenta's: settings and input, the transforms
 * (NaN, outliers), no data, identical samples, then the test. The test is
 * run whenever both sides hold values, also when an earlier rule decides,
 * so that `canary judge` always shows the numbers.
 */
#include "canary/judge.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"

cn_judge_config cn_judge_defaults(void)
{
    return (cn_judge_config){
        .direction = CN_DIRECTION_EITHER,
        .tolerance = 0.25,
        .confidence = 0.98,
        .effect = CN_EFFECT_MEAN_RATIO,
        .allowed_increase = NAN,
        .allowed_decrease = NAN,
        .critical_increase = NAN,
        .critical_decrease = NAN,
        .nan_strategy = CN_NAN_REMOVE,
        .remove_outliers = false,
        .outlier_factor = 3.0,
    };
}

const char *cn_judge_class_name(cn_judge_class c)
{
    static const char *const names[] = {"pass", "high", "low", "nodata", "error"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

const char *cn_direction_name(cn_direction d)
{
    static const char *const names[] = {"either", "increase", "decrease"};
    return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}

const char *cn_effect_measure_name(cn_effect_measure e)
{
    return e == CN_EFFECT_CLES ? "cles" : e == CN_EFFECT_MEAN_RATIO ? "mean_ratio" : "?";
}

/* ---- transforms ---------------------------------------------------------- */

size_t cn_judge_remove_nan(double *v, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            v[kept++] = v[i];
    return kept;
}

void cn_judge_replace_nan(double *v, size_t n, double with)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            v[i] = with;
}

static int cmp_double(const void *a, const void *b)
{
    double p = *(const double *)a, q = *(const double *)b;
    return (p > q) - (p < q);
}

/* Apache Commons Math's default percentile (its "legacy" estimator, p in
 * percent): position p (n + 1) / 100, interpolated, clamped to the ends. */
static double percentile(const double *sorted, size_t n, double p)
{
    double pos = p * (double)(n + 1) / 100;
    if (n == 1 || pos < 1)
        return sorted[0];
    if (pos >= (double)n)
        return sorted[n - 1];
    size_t at = (size_t)pos;
    double lower = sorted[at - 1], upper = sorted[at];
    return lower + (pos - (double)at) * (upper - lower);
}

size_t cn_judge_remove_outliers(double *v, size_t n, double factor, bool reduce_sensitivity)
{
    if (n == 0)
        return 0;
    double *s = malloc(n * sizeof *s);
    if (!s)
        return n; /* keeping every value is the safe side of failing */
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double q1 = percentile(s, n, 25), q3 = percentile(s, n, 75);
    double low = q1 - factor * (q3 - q1), high = q3 + factor * (q3 - q1);
    if (reduce_sensitivity) {
        low = fmin(low, percentile(s, n, 1));
        high = fmax(high, percentile(s, n, 99));
    }
    free(s);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] < low || v[i] > high))
            v[kept++] = v[i];
    return kept;
}

/* ---- effect size --------------------------------------------------------- */

static double mean(const double *v, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    return sum / (double)n;
}

/* Kayenta takes 1 when the baseline mean is 0, hiding any increase from a
 * baseline with no errors at all; an unbounded increase is +Inf here. */
static double mean_ratio(const double *x, size_t n, const double *y, size_t m)
{
    double mx = mean(x, n), my = mean(y, m);
    if (my == 0)
        return mx == 0 ? 1.0 : copysign(INFINITY, mx);
    return mx / my;
}

double cn_judge_effect_size(cn_effect_measure e, const double *canary, size_t n,
                            const double *baseline, size_t m)
{
    if (!n || !m || !canary || !baseline)
        return NAN;
    if (e == CN_EFFECT_MEAN_RATIO)
        return mean_ratio(canary, n, baseline, m);
    double u;
    if (cn_mw_u(canary, n, baseline, m, &u, NULL, 0))
        return NAN;
    return u / ((double)n * (double)m);
}

static double neutral(cn_effect_measure e)
{
    return e == CN_EFFECT_CLES ? 0.5 : 1.0;
}

static double threshold(const cn_judge_config *c, double t)
{
    return isnan(t) ? neutral(c->effect) : t;
}

static const char *effect_words(cn_effect_measure e)
{
    return e == CN_EFFECT_CLES ? "common-language effect size" : "mean ratio";
}

/* ---- the reason, bounded ------------------------------------------------- */

static void say(cn_judge_result *r, const char *fmt, ...) CN_PRINTF(2, 3);

static void say(cn_judge_result *r, const char *fmt, ...)
{
    size_t used = strlen(r->reason);
    if (used + 1 >= sizeof r->reason)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason + used, sizeof r->reason - used, fmt, ap);
    va_end(ap);
}

static int fail(cn_judge_result *r, const cn_judge_config *c, int code, const char *fmt, ...)
    CN_PRINTF(4, 5);

static int fail(cn_judge_result *r, const cn_judge_config *c, int code, const char *fmt, ...)
{
    r->classification = CN_JUDGE_ERROR;
    r->critical_failure = c->critical;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- settings and input ------------------------------------------------- */

static bool set_or_finite(double t)
{
    return isnan(t) || isfinite(t);
}

static int check_config(const cn_judge_config *c, cn_judge_result *r)
{
    if ((unsigned)c->direction > CN_DIRECTION_DECREASE ||
        (unsigned)c->effect > CN_EFFECT_CLES || (unsigned)c->nan_strategy > CN_NAN_REPLACE)
        return fail(r, c, CN_EINVAL, "unknown direction, effect size or nan_strategy");
    if (!(c->confidence > 0 && c->confidence < 1))
        return fail(r, c, CN_EINVAL,
                    "confidence must lie strictly between 0 and 1, got %g", c->confidence);
    if (!(c->tolerance >= 0) || !isfinite(c->tolerance))
        return fail(r, c, CN_EINVAL, "tolerance must be 0 or more, got %g", c->tolerance);
    if (!set_or_finite(c->allowed_increase) || !set_or_finite(c->allowed_decrease) ||
        !set_or_finite(c->critical_increase) || !set_or_finite(c->critical_decrease))
        return fail(r, c, CN_EINVAL, "effect size thresholds must be finite numbers");
    if (c->remove_outliers && !(c->outlier_factor > 0 && isfinite(c->outlier_factor)))
        return fail(r, c, CN_EINVAL, "the outlier factor must be above 0, got %g",
                    c->outlier_factor);
    return CN_OK;
}

static int check_input(const cn_judge_config *c, const double *v, size_t n, const char *who,
                       cn_judge_result *r)
{
    if (n > CN_JUDGE_MAX_SAMPLES)
        return fail(r, c, CN_ELIMIT,
                    "the %s sample holds %zu values, more than the %u the judge takes", who, n,
                    CN_JUDGE_MAX_SAMPLES);
    if (n && !v)
        return fail(r, c, CN_EINVAL, "the %s sample is missing", who);
    for (size_t i = 0; i < n; i++)
        if (isinf(v[i]))
            return fail(r, c, CN_EINVAL,
                        "the %s sample holds an infinite value (value %zu), which no "
                        "statistic can use",
                        who, i + 1);
    return CN_OK;
}

/* Copies v and applies the transforms; *kept is what is left. */
static double *transformed(const cn_judge_config *c, const double *v, size_t n, size_t *kept)
{
    double *t = malloc((n ? n : 1) * sizeof *t);
    if (!t)
        return NULL;
    if (n)
        memcpy(t, v, n * sizeof *t);
    if (c->nan_strategy == CN_NAN_REPLACE)
        cn_judge_replace_nan(t, n, 0.0);
    else
        n = cn_judge_remove_nan(t, n);
    if (c->remove_outliers)
        n = cn_judge_remove_outliers(t, n, c->outlier_factor, true);
    *kept = n;
    return t;
}

/* ---- the rules ----------------------------------------------------------- */

static void no_data(const cn_judge_config *c, cn_judge_result *r)
{
    bool neither = !r->canary_count && !r->baseline_count;
    const char *which = neither ? "neither sample" : !r->canary_count ? "the canary sample"
                                                                       : "the baseline sample";
    if (c->nan_strategy == CN_NAN_REPLACE) {
        r->classification = CN_JUDGE_PASS;
        say(r, "pass: %s empty, and with nan_strategy replace a missing value means "
               "nothing happened",
            neither ? "both samples are" : !r->canary_count ? "the canary sample is"
                                                            : "the baseline sample is");
        return;
    }
    r->classification = CN_JUDGE_NODATA;
    size_t dropped = r->canary_dropped + r->baseline_dropped;
    say(r, "nodata: %s %s values to compare", which, neither ? "holds" : "holds no");
    if (dropped)
        say(r, " (%zu NaN or outliers dropped)", dropped);
    if (c->critical) {
        r->critical_failure = true;
        say(r, "; the metric is critical, so the judgement fails");
    } else if (c->must_have_data) {
        r->nodata_fails = true;
        say(r, "; must_have_data counts it as a failed metric");
    }
}

static bool same_values(const double *x, size_t n, const double *y, size_t m)
{
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return false;
    return true;
}

/* Kayenta: high when the interval of the shift lies above +band, i.e. the
 * test of the shift +band rejects it toward a larger canary. Asking the
 * test at the band also decides the edge, where the interval ends exactly
 * on the band: with mostly-zero samples (error counts) the shift, its
 * interval and so the band all collapse to 0 though the test rejects. */
static void compare(const cn_judge_config *c, const double *x, size_t n, const double *y,
                    size_t m, cn_judge_result *r)
{
    double zq = gsl_cdf_ugaussian_Qinv((1 - c->confidence) / 2);
    double up = 0, down = 0;
    bool above = false, below = false;
    if (!cn_mw_shift_z(x, n, y, m, r->band, &up, NULL, 0))
        above = up > zq;
    if (!cn_mw_shift_z(x, n, y, m, -r->band, &down, NULL, 0))
        below = down < -zq;
    double inc = threshold(c, c->allowed_increase), dec = threshold(c, c->allowed_decrease);
    const char *words = effect_words(c->effect);
    int pct = (int)lround(c->confidence * 100);
    char interval[160];
    snprintf(interval, sizeof interval, "the %d%% interval of the shift [%.6g, %.6g]", pct,
             r->ci_low, r->ci_high);
    char band[96];
    snprintf(band, sizeof band, "+-%.6g (tolerance %.6g x |estimate %.6g|)", r->band,
             c->tolerance, r->estimate);
    if (!above && !below) {
        r->classification = CN_JUDGE_PASS;
        say(r, "pass: %s reaches into the no-change band %s", interval, band);
        return;
    }
    const char *way = above ? "higher" : "lower";
    bool allowed = above ? c->direction != CN_DIRECTION_DECREASE
                         : c->direction != CN_DIRECTION_INCREASE;
    bool large = above ? r->effect_size >= inc : r->effect_size <= dec;
    say(r, "%s: %s lies %s the band %s", allowed && large ? (above ? "high" : "low") : "pass",
        interval,
        above ? "above" : "below", band);
    if ((above && r->ci_low <= r->band) || (below && r->ci_high >= -r->band))
        say(r, " (at its edge the test still rejects: z %.3g %s %.3g)", above ? up : down,
            above ? ">" : "<", above ? zq : -zq);
    if (!allowed) {
        r->classification = CN_JUDGE_PASS;
        say(r, ", but direction %s lets the canary be %s", cn_direction_name(c->direction),
            way);
        return;
    }
    if (!large) {
        r->classification = CN_JUDGE_PASS;
        say(r, ", but the %s %.6g does not reach the allowed %s %.6g", words, r->effect_size,
            above ? "increase" : "decrease", above ? inc : dec);
        return;
    }
    r->classification = above ? CN_JUDGE_HIGH : CN_JUDGE_LOW;
    say(r, ", and the %s %.6g reaches the allowed %s %.6g", words, r->effect_size,
        above ? "increase" : "decrease", above ? inc : dec);
    if (!c->critical)
        return;
    double crit = above ? threshold(c, c->critical_increase) : threshold(c, c->critical_decrease);
    if (above ? r->effect_size >= crit : r->effect_size <= crit) {
        r->critical_failure = true;
        say(r, "; critical: beyond the critical %s %.6g, the judgement fails",
            above ? "increase" : "decrease", crit);
    }
}

int cn_judge_metric(const cn_judge_config *c, const double *canary, size_t n,
                    const double *baseline, size_t m, cn_judge_result *out)
{
    memset(out, 0, sizeof *out);
    out->u = out->p_value = out->estimate = out->ci_low = out->ci_high = NAN;
    out->band = out->effect_size = NAN;
    int rc = check_config(c, out);
    if (!rc)
        rc = check_input(c, canary, n, "canary", out);
    if (!rc)
        rc = check_input(c, baseline, m, "baseline", out);
    if (rc)
        return rc;

    size_t nx = 0, ny = 0;
    double *x = transformed(c, canary, n, &nx);
    double *y = transformed(c, baseline, m, &ny);
    if (!x || !y) {
        free(x);
        free(y);
        return fail(out, c, CN_ENOMEM, "out of memory copying %zu + %zu values", n, m);
    }
    out->canary_count = nx;
    out->baseline_count = ny;
    out->canary_dropped = n - nx;
    out->baseline_dropped = m - ny;
    if (!nx || !ny) {
        no_data(c, out);
        free(x);
        free(y);
        return CN_OK;
    }

    /* The mean is summed in the samples' order; then both are sorted once
     * here, so that the test and the shifts after it find them sorted. */
    double ratio = c->effect == CN_EFFECT_MEAN_RATIO ? mean_ratio(x, nx, y, ny) : NAN;
    qsort(x, nx, sizeof *x, cmp_double);
    qsort(y, ny, sizeof *y, cmp_double);
    cn_mw_result mw;
    char err[160];
    rc = cn_mw_test(x, nx, y, ny, c->confidence, &mw, err, sizeof err);
    if (rc) {
        free(x);
        free(y);
        return fail(out, c, rc, "%s", err);
    }
    out->tested = true;
    out->u = mw.u;
    out->p_value = mw.p_value;
    out->estimate = mw.estimate;
    out->ci_low = mw.ci_low;
    out->ci_high = mw.ci_high;
    out->band = c->tolerance * fabs(mw.estimate);
    out->effect_size = c->effect == CN_EFFECT_CLES ? mw.u / ((double)nx * (double)ny) : ratio;

    if (same_values(x, nx, y, ny)) {
        out->classification = CN_JUDGE_PASS;
        say(out, "pass: the canary and baseline samples hold the same values (%zu each)", nx);
    } else if (x[0] == x[nx - 1] && y[0] == y[ny - 1] && x[0] == y[0]) {
        out->classification = CN_JUDGE_PASS;
        say(out, "pass: every value is %.6g", x[0]);
    } else {
        compare(c, x, nx, y, ny, out);
    }
    free(x);
    free(y);
    return CN_OK;
}
