/*
 * judge.h: the statistical canary judge (pure), Kayenta's NetflixACAJudge
 * semantics: a Mann-Whitney (Wilcoxon rank-sum) test of canary against
 * baseline samples per metric, a classification per metric, and a weighted
 * score over metric groups. docs/judge.md has the formulas and examples.
 *
 * Contract: no I/O, no clock, no globals; plain structs in, plain structs
 * out. Samples are read, never kept or changed; functions that need sorted
 * copies allocate them and free them before returning (CN_ENOMEM when
 * they cannot). A sample holds at most CN_JUDGE_MAX_SAMPLES values: more
 * is refused with CN_ELIMIT rather than sorted and ranked for seconds.
 * Bad input never crashes: empty, all-NaN, single or identical values get
 * a defined answer, +-Inf and out-of-range settings get an error.
 *
 * Who calls what: cn_judge_metric() takes one metric's raw samples (NaN
 * allowed) and a cn_judge_config, and returns everything a person or the
 * engine needs about it; cn_judge_score() turns the classifications of
 * several metrics into a 0-100 score and a verdict. The lower-level
 * functions are public for tests and tools (`canary judge`).
 */
#ifndef CANARY_JUDGE_H
#define CANARY_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

/* 100k values per side: a day of one sample per second, ranked in well
 * under a second. */
#define CN_JUDGE_MAX_SAMPLES 100000u

/* ---- the test (judge_mw.c) ---------------------------------------------- */

/* The two-sided Wilcoxon rank-sum test of x (the canary) against y (the
 * baseline), as R's wilcox.test(x, y, exact = FALSE, correct = TRUE,
 * conf.int = TRUE, conf.level = confidence):
 *   u         W = (sum of x's ranks in x and y together, ties averaged)
 *             - n(n+1)/2, i.e. the pairs with x_i > y_j, ties counted 1/2
 *   p_value   normal approximation with the tie correction of the variance
 *             and a 0.5 continuity correction toward the mean; 1 when every
 *             value ties (no variance: no evidence of a difference)
 *   estimate  the Hodges-Lehmann shift: the median of all n*m differences
 *             x_i - y_j
 *   ci_low, ci_high  the confidence interval of the shift, by inverting the
 *             test: the shifts mu at which the test of x - mu against y
 *             crosses its critical values (Brent's method over mu), each
 *             end then placed exactly on the pairwise difference where the
 *             crossing happens (R gets within its root tolerance, 1e-4)
 * When both samples are constant the interval and estimate are their
 * difference (every shift but that one separates them completely). */
typedef struct cn_mw_result {
    double u;
    double p_value;
    double estimate;
    double ci_low, ci_high;
} cn_mw_result;

/* x and y must hold finite values only (NaN or Inf: CN_EINVAL), at least one
 * and at most CN_JUDGE_MAX_SAMPLES each (CN_EINVAL / CN_ELIMIT); confidence
 * in (0, 1). err (may be NULL) says what was wrong. */
int cn_mw_test(const double *x, size_t n, const double *y, size_t m, double confidence,
               cn_mw_result *out, char *err, size_t errlen);

/* Only u (W above): for the common-language effect size u / (n m). */
int cn_mw_u(const double *x, size_t n, const double *y, size_t m, double *u, char *err,
            size_t errlen);

/* The continuity-corrected z of the same test for the shift mu, i.e. of
 * x - mu against y: (W(mu) - nm/2 - sign * 0.5) / sigma(mu), sigma with the
 * ties at that shift; 0 when every value ties there. Positive: the canary is
 * larger than baseline + mu. The test rejects that shift at confidence c
 * when |z| > the normal quantile of (1 + c) / 2. Same input rules. */
int cn_mw_shift_z(const double *x, size_t n, const double *y, size_t m, double mu,
                  double *z, char *err, size_t errlen);

/* ---- per-metric classification (judge_classify.c) ----------------------- */

typedef enum {
    CN_JUDGE_PASS = 0,
    CN_JUDGE_HIGH,   /* the canary is significantly (and enough) higher */
    CN_JUDGE_LOW,    /* ... lower */
    CN_JUDGE_NODATA, /* a side had no values left to compare */
    CN_JUDGE_ERROR   /* bad input or settings; reason says which */
} cn_judge_class;

typedef enum {
    CN_DIRECTION_EITHER = 0, /* high and low both fail */
    CN_DIRECTION_INCREASE,   /* only higher fails (errors, latency) */
    CN_DIRECTION_DECREASE    /* only lower fails (successes, throughput) */
} cn_direction;

typedef enum {
    CN_EFFECT_MEAN_RATIO = 0, /* mean(canary) / mean(baseline); 1 = no change */
    CN_EFFECT_CLES            /* u / (n m): P(canary > baseline); 0.5 = no change */
} cn_effect_measure;

typedef enum {
    CN_NAN_REMOVE = 0, /* NaN means "no value": dropped */
    CN_NAN_REPLACE     /* NaN means "nothing happened": taken as 0 */
} cn_nan_strategy;

typedef struct cn_judge_config {
    cn_direction direction;
    double tolerance;   /* widens the band of no change: +-tolerance x |estimate| */
    double confidence;  /* of the interval, in (0, 1) */
    cn_effect_measure effect;
    /* High needs effect >= allowed_increase, Low effect <= allowed_decrease;
     * a critical metric fails critically beyond critical_increase /
     * critical_decrease. NaN (the default) is the measure's "no change":
     * 1 for mean_ratio, 0.5 for cles. */
    double allowed_increase, allowed_decrease;
    double critical_increase, critical_decrease;
    cn_nan_strategy nan_strategy;
    bool remove_outliers; /* Tukey's fences (IQR), each side separately */
    double outlier_factor; /* > 0; Kayenta uses 3 with reduced sensitivity */
    bool critical;        /* a failure of this metric fails the whole judgement */
    bool must_have_data;  /* nodata counts as a failed metric in its group */
} cn_judge_config;

/* Kayenta's defaults: either, tolerance 0.25, confidence 0.98, mean_ratio,
 * thresholds "no change", remove NaN, outliers kept, factor 3, neither
 * critical nor required. */
cn_judge_config cn_judge_defaults(void);

typedef struct cn_judge_result {
    cn_judge_class classification;
    /* A critical metric that failed: high or low beyond its critical
     * threshold, nodata (with nan_strategy remove), or error. Forces the
     * score to 0. */
    bool critical_failure;
    /* must_have_data and nodata, not critical: scored as a failed metric,
     * not as missing data. */
    bool nodata_fails;
    bool tested;     /* the test ran: u .. ci_high hold its result */
    double u, p_value, estimate, ci_low, ci_high;
    double band;     /* tolerance x |estimate|: the no-change band is +-band */
    double effect_size; /* as configured; +Inf when the baseline mean is 0
                           and the canary's is not (mean_ratio) */
    size_t canary_count, baseline_count;     /* values judged, after transforms */
    size_t canary_dropped, baseline_dropped; /* NaN and outliers removed */
    char reason[320]; /* one sentence for people: why this classification */
} cn_judge_result;

/* Judges one metric: transforms each sample (NaN per nan_strategy, then
 * outliers), then classifies (docs/judge.md has each rule):
 *   nodata  a side is empty after the transforms (with nan_strategy
 *           replace: pass, since a missing value means nothing happened)
 *   pass    both sides hold the same values, or every value is the same
 *   high    direction allows an increase, the test of the shift +band
 *           rejects it in favour of a larger canary (the interval lies
 *           above the band), and effect >= allowed_increase
 *   low     the mirror image, below -band and effect <= allowed_decrease
 *   pass    otherwise
 * Returns CN_OK when the metric was judged (whatever the class),
 * CN_EINVAL (bad settings, +-Inf in a sample), CN_ELIMIT (too many values)
 * or CN_ENOMEM, each with classification CN_JUDGE_ERROR and the reason
 * filled. canary/baseline may be NULL when their count is 0. */
int cn_judge_metric(const cn_judge_config *c, const double *canary, size_t n,
                    const double *baseline, size_t m, cn_judge_result *out);

/* The building blocks, in place, keeping the order of what stays; each
 * returns the new count. */
size_t cn_judge_remove_nan(double *v, size_t n);
void cn_judge_replace_nan(double *v, size_t n, double with);
/* Drops values outside Tukey's fences [Q1 - f IQR, Q3 + f IQR] (percentiles
 * as Apache Commons Math's default estimator, which Kayenta uses); with
 * reduce_sensitivity the fences widen to at least the 1st and 99th
 * percentiles. NaN must be gone first. n = 0 returns 0. */
size_t cn_judge_remove_outliers(double *v, size_t n, double factor, bool reduce_sensitivity);
/* The effect size of finite samples (n, m >= 1). */
double cn_judge_effect_size(cn_effect_measure e, const double *canary, size_t n,
                            const double *baseline, size_t m);

const char *cn_judge_class_name(cn_judge_class c);       /* "pass", "high", ... */
const char *cn_direction_name(cn_direction d);           /* "either", ... */
const char *cn_effect_measure_name(cn_effect_measure e); /* "mean_ratio", "cles" */

/* ---- scoring (judge_score.c) -------------------------------------------- */

#define CN_SCORE_MAX_GROUPS 32u

/* One judged metric as the scorer sees it. */
typedef struct cn_score_metric {
    const char *name;   /* for the reason; may be NULL */
    const char *group;  /* NULL or "": the group "default" */
    const cn_judge_result *result;
} cn_score_metric;

typedef struct cn_group_weight {
    const char *group;
    double weight; /* percent; the groups without one share what is left of 100 */
} cn_group_weight;

typedef struct cn_score_config {
    const cn_group_weight *weights;
    size_t weight_count;
    double pass;     /* a score >= pass passes */
    double marginal; /* >= marginal is marginal; below fails */
} cn_score_config;

typedef enum { CN_SCORE_PASS = 0, CN_SCORE_MARGINAL, CN_SCORE_FAIL } cn_score_verdict;

typedef struct cn_group_score {
    const char *group; /* points into the metrics' or weights' strings */
    double weight;     /* percent, as applied */
    double score;      /* 100 x passed / counted; 100 when nothing was counted */
    unsigned pass, high, low, error;
    unsigned nodata;          /* left out of the score */
    unsigned required_nodata; /* must_have_data: counted as failed */
    bool no_data;      /* nothing counted in it: nodata only */
} cn_group_score;

typedef struct cn_score_result {
    double score;      /* 0..100, rounded to 2 decimals */
    cn_score_verdict verdict;
    bool forced;       /* set to 0 by a critical failure or too much nodata */
    cn_group_score groups[CN_SCORE_MAX_GROUPS];
    size_t group_count;
    char reason[320];
} cn_score_result;

/* Kayenta's WeightedSumScorer: each group scores 100 x pass / (pass + high +
 * low + required nodata + error); nodata is left out, and a group with
 * nothing else counts as 100. The score is the sum of group score x weight /
 * 100, rounded to 2 decimals. It is forced to 0 when a metric failed
 * critically, or when 50% or more of the metrics are nodata. Then the
 * verdict: pass, marginal or fail by the thresholds. Error metrics count as
 * failed (Kayenta leaves them out; missing evidence is never a pass).
 * CN_EINVAL (reason says why) for a negative or non-finite weight, weights
 * over 100 in all, marginal > pass, or no metrics; CN_ELIMIT for more than
 * CN_SCORE_MAX_GROUPS groups. */
int cn_judge_score(const cn_score_metric *metrics, size_t n, const cn_score_config *c,
                   cn_score_result *out);

const char *cn_score_verdict_name(cn_score_verdict v); /* "pass", "marginal", "fail" */

#endif
