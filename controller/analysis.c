#include "canary/analysis.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/schema.h" /* cn_format_duration */
#include "canary/status.h"
#include "canary/text.h" /* every "why" goes through it: cut, never overflowing */

static const char *plural(unsigned long n)
{
    return n == 1 ? "" : "s";
}

/* The detail a provider left, which need not be terminated. */
static int detail_len(const cn_reading *r)
{
    const char *end = memchr(r->detail, '\0', sizeof r->detail);
    return end ? (int)(end - r->detail) : (int)sizeof r->detail;
}

/* ---- thresholds --------------------------------------------------------- */

cn_threshold cn_analysis_threshold(const cn_policy *p, size_t i, bool ai_assisted)
{
    cn_threshold none = {0};
    if (!p || i >= p->analysis.metric_count)
        return none;
    const cn_metric *m = &p->analysis.metrics[i];
    if (!ai_assisted || !m->name)
        return m->threshold;
    const cn_ai_analysis *ai = &p->ai.analysis;
    for (size_t k = 0; k < ai->threshold_count; k++)
        if (ai->thresholds[k].metric && !strcmp(ai->thresholds[k].metric, m->name))
            return ai->thresholds[k].threshold;
    return m->threshold;
}

/* ---- judging one measurement ------------------------------------------- */

/* Sorts a reading into nodata / error, or PASS when it holds a finite value
 * to compare. who is "" for the canary and "baseline " for the baseline, so
 * the evidence says which query was at fault. */
static cn_outcome reading_outcome(const cn_reading *r, const char *who, cn_text *w)
{
    const char *from = *who ? "baseline: " : ""; /* before a provider's detail */
    switch (r->kind) {
    case CN_READING_ERROR:
        if (detail_len(r))
            cn_text_add(w, "error: %s%.*s", from, detail_len(r), r->detail);
        else
            cn_text_add(w, "error: %squery failed", who);
        return CN_OUTCOME_ERROR;
    case CN_READING_NODATA:
        if (detail_len(r))
            cn_text_add(w, "no data: %s%.*s", from, detail_len(r), r->detail);
        else
            cn_text_add(w, "no data: %squery returned no value", who);
        return CN_OUTCOME_NODATA;
    case CN_READING_VALUE:
        break;
    default:
        cn_text_add(w, "error: %sreading of unknown kind %d", who, (int)r->kind);
        return CN_OUTCOME_ERROR;
    }
    /* NaN is what 0/0 gives with no traffic: silence, not a fault. An
     * infinity means the query divides by zero on real data, which no
     * threshold can judge. */
    if (isnan(r->value)) {
        cn_text_add(w, "no data: %svalue is NaN", who);
        return CN_OUTCOME_NODATA;
    }
    if (isinf(r->value)) {
        cn_text_add(w, "error: %svalue is %cInf", who, r->value > 0 ? '+' : '-');
        return CN_OUTCOME_ERROR;
    }
    return CN_OUTCOME_PASS;
}

static bool threshold_fails(const cn_threshold *t, double v, cn_text *w)
{
    if (t->has_min && v < t->min) {
        cn_text_add(w, "%g < min %g", v, t->min);
        return true;
    }
    if (t->has_max && v > t->max) {
        cn_text_add(w, "%g > max %g", v, t->max);
        return true;
    }
    return false;
}

static void threshold_pass(const cn_threshold *t, double v, cn_text *w)
{
    char lo[32] = "-", hi[32] = "-";
    if (!t->has_min && !t->has_max)
        return;
    if (t->has_min)
        snprintf(lo, sizeof lo, "%g", t->min);
    if (t->has_max)
        snprintf(hi, sizeof hi, "%g", t->max);
    cn_text_add(w, "%g within [%s, %s]", v, lo, hi);
}

/* Compares v with the baseline allowance. Returns PASS with *bound set, or
 * the outcome (with why written) when the comparison cannot be made or
 * fails. A baseline that was asked for but not read is no data: skipping
 * the comparison would pass a measurement on missing evidence. */
static cn_outcome baseline_outcome(const cn_baseline *b, const cn_reading *r, double v,
                                   double *bound, cn_text *w)
{
    if (!r) {
        cn_text_add(w, "no data: no baseline reading");
        return CN_OUTCOME_NODATA;
    }
    cn_outcome o = reading_outcome(r, "baseline ", w);
    if (o != CN_OUTCOME_PASS)
        return o;
    *bound = r->value * (1 + b->max_increase) + b->slack;
    /* Only overflow or a bad policy get here; a bound that compares false
     * with everything would pass every value. */
    if (!isfinite(*bound)) {
        cn_text_add(w, "error: baseline bound %g x %g + %g is not finite", r->value,
                 1 + b->max_increase, b->slack);
        return CN_OUTCOME_ERROR;
    }
    if (v > *bound) {
        cn_text_add(w, "%g > baseline %g x %g + %g = %g", v, r->value, 1 + b->max_increase,
                 b->slack, *bound);
        return CN_OUTCOME_FAIL;
    }
    return CN_OUTCOME_PASS;
}

/* The threshold is judged before the baseline: a value outside its
 * absolute bounds fails whatever the baseline query returned. */
cn_outcome cn_analysis_judge(const cn_metric *m, const cn_threshold *t,
                             const cn_reading *canary, const cn_reading *baseline,
                             char *why, size_t len)
{
    cn_text w;
    cn_text_init(&w, why, len);
    if (!canary) {
        cn_text_add(&w, "error: no reading");
        return CN_OUTCOME_ERROR;
    }
    cn_outcome o = reading_outcome(canary, "", &w);
    if (o != CN_OUTCOME_PASS)
        return o;
    double v = canary->value;
    if (!t && m)
        t = &m->threshold;
    if (t && threshold_fails(t, v, &w))
        return CN_OUTCOME_FAIL;
    bool compare = m && m->baseline.enabled;
    double bound = 0;
    if (compare) {
        o = baseline_outcome(&m->baseline, baseline, v, &bound, &w);
        if (o != CN_OUTCOME_PASS)
            return o;
    }
    if (t)
        threshold_pass(t, v, &w);
    if (compare)
        cn_text_add(&w, "%s%g <= baseline %g x %g + %g = %g", w.n ? "; " : "", v,
                 baseline->value, 1 + m->baseline.max_increase, m->baseline.slack, bound);
    if (!w.n)
        cn_text_add(&w, "%g (no threshold or baseline to judge by)", v);
    return CN_OUTCOME_PASS;
}

bool cn_analysis_compares(const cn_metric *m, double stage_weight)
{
    return m && m->baseline.enabled && stage_weight < 1.0;
}

cn_outcome cn_analysis_judge_poll(const cn_policy *p, size_t i, bool ai_assisted,
                                  double stage_weight, const cn_reading *canary,
                                  const cn_reading *baseline, char *why, size_t len)
{
    if (!p || i >= p->analysis.metric_count) {
        cn_text w;
        cn_text_init(&w, why, len);
        cn_text_add(&w, "error: no metric %zu in the policy", i + 1);
        return CN_OUTCOME_ERROR;
    }
    cn_metric m = p->analysis.metrics[i];
    bool had_baseline = m.baseline.enabled;
    m.baseline.enabled = cn_analysis_compares(&m, stage_weight);
    cn_threshold t = cn_analysis_threshold(p, i, ai_assisted);
    cn_outcome o = cn_analysis_judge(&m, &t, canary, m.baseline.enabled ? baseline : NULL,
                                     why, len);
    if (had_baseline && !m.baseline.enabled && why && len) {
        size_t n = strlen(why);
        snprintf(why + n, len - n, " (no baseline: the previous version serves no "
                 "traffic at 100%%)");
    }
    return o;
}

double cn_analysis_request_count(const cn_reading *r)
{
    return r && r->kind == CN_READING_VALUE && isfinite(r->value) && r->value >= 0 ? r->value
                                                                                 : NAN;
}

/* ---- tallies ------------------------------------------------------------ */

/* Saturates: a counter that wrapped to 0 would forget a run of errors. */
static void bump(unsigned *c)
{
    if (*c != (unsigned)-1)
        (*c)++;
}

void cn_tally_add(cn_metric_tally *t, cn_outcome o)
{
    switch (o) {
    case CN_OUTCOME_PASS:
        bump(&t->passes);
        t->consecutive_failures = 0;
        t->consecutive_errors = 0;
        break;
    case CN_OUTCOME_FAIL:
        bump(&t->failures);
        bump(&t->consecutive_failures);
        t->consecutive_errors = 0;
        break;
    case CN_OUTCOME_NODATA:
        bump(&t->nodata);
        t->consecutive_failures = 0;
        t->consecutive_errors = 0;
        break;
    default: /* an unknown outcome is a fault, never a pass */
        bump(&t->errors);
        bump(&t->consecutive_errors);
        break;
    }
}

/* ---- limits ------------------------------------------------------------- */

/* Anything but an explicit pause rolls back, the safe default. */
static int on_outcome(int v)
{
    return v == CN_ON_PAUSE ? CN_ON_PAUSE : CN_ON_ROLLBACK;
}

static int64_t default_max_bake(int64_t bake_ms)
{
    return bake_ms > INT64_MAX / 3 ? INT64_MAX : 3 * bake_ms;
}

cn_stage_limits cn_analysis_limits(const cn_policy *p, int64_t stage_bake_ms,
                                   bool ai_assisted)
{
    const cn_analysis *a = &p->analysis;
    const cn_ai_analysis *ai = &p->ai.analysis;
    cn_stage_limits l = {0};
    l.bake_ms = stage_bake_ms > 0 ? stage_bake_ms : 0;
    l.max_bake_ms = a->max_bake_ms > 0 ? a->max_bake_ms : default_max_bake(l.bake_ms);
    if (l.max_bake_ms < l.bake_ms)
        l.max_bake_ms = l.bake_ms;
    /* The loader enforces >= 1 for both; 0 from a hand-built policy would
     * mean promotion on silence, or a rollback on no error at all. */
    l.min_samples = p->plan.min_samples ? p->plan.min_samples : 1;
    l.consecutive_error_limit = a->consecutive_error_limit ? a->consecutive_error_limit : 1;
    l.failure_limit =
        ai_assisted && ai->has_failure_limit ? ai->failure_limit : a->failure_limit;
    l.consecutive_failure_limit = ai_assisted && ai->has_consecutive_failure_limit
                                      ? ai->consecutive_failure_limit
                                      : a->consecutive_failure_limit;
    l.on_failure = on_outcome(a->on_failure);
    l.on_inconclusive = on_outcome(a->on_inconclusive);
    l.min_requests = a->min_requests.count;
    return l;
}

/* ---- the stage verdict -------------------------------------------------- */

typedef struct stage {
    const cn_stage_limits *l;
    const cn_metric_tally *t;
    const cn_metric *metrics;
    size_t n;
    int64_t baked_ms;
    double requests_served; /* NaN while unknown */
    unsigned min_samples, error_limit; /* as applied: never 0 */
} stage;

/* Names are cut to 64 bytes so that a long one cannot crowd the numbers
 * out of a 256-byte why. */
#define NAME_BUF 68

static const char *metric_name(const stage *s, size_t i, char *buf, size_t len)
{
    if (s->metrics && s->metrics[i].name)
        snprintf(buf, len, "%.64s", s->metrics[i].name);
    else
        snprintf(buf, len, "metric %zu", i + 1);
    return buf;
}

static cn_verdict decide(cn_verdict_kind kind, int action, long metric)
{
    cn_verdict v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    v.action = action;
    v.metric = metric;
    return v;
}

static bool errored(const stage *s, cn_verdict *v)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->t[i].consecutive_errors < s->error_limit)
            continue;
        char buf[NAME_BUF];
        *v = decide(CN_VERDICT_ERRORED, CN_ON_ROLLBACK, (long)i);
        cn_text w;
        cn_text_init(&w, v->why, sizeof v->why);
        cn_text_add(&w, "%s had %u provider error%s in a row (consecutive_error_limit %u)",
                 metric_name(s, i, buf, sizeof buf), s->t[i].consecutive_errors,
                 plural(s->t[i].consecutive_errors), s->error_limit);
        return true;
    }
    return false;
}

static bool failed(const stage *s, cn_verdict *v)
{
    unsigned run_limit = s->l->consecutive_failure_limit;
    for (size_t i = 0; i < s->n; i++) {
        const cn_metric_tally *t = &s->t[i];
        bool total = t->failures > s->l->failure_limit;
        bool run = run_limit > 0 && t->consecutive_failures >= run_limit;
        if (!total && !run)
            continue;
        char buf[NAME_BUF];
        *v = decide(CN_VERDICT_FAILED, s->l->on_failure, (long)i);
        cn_text w;
        cn_text_init(&w, v->why, sizeof v->why);
        const char *name = metric_name(s, i, buf, sizeof buf);
        if (total)
            cn_text_add(&w, "%s failed %u time%s, more than failure_limit %u", name,
                     t->failures, plural(t->failures), s->l->failure_limit);
        else
            cn_text_add(&w, "%s failed %u time%s in a row (consecutive_failure_limit %u)",
                     name, t->consecutive_failures, plural(t->consecutive_failures),
                     run_limit);
        return true;
    }
    return false;
}

static bool requests_missing(const stage *s)
{
    /* NaN compares false: unknown is never enough */
    return s->l->min_requests && !(s->requests_served >= s->l->min_requests);
}

/* Index of the first metric short of min_samples, or n. */
static size_t first_short(const stage *s, size_t from)
{
    for (size_t i = from; i < s->n; i++)
        if (s->t[i].passes < s->min_samples)
            return i;
    return s->n;
}

/* Adds ", 3 failed" to a parenthesised list that sep opens or continues;
 * returns the separator for the next item. */
static const char *add_count(cn_text *w, const char *sep, unsigned n, const char *one,
                             const char *many)
{
    if (!n)
        return sep;
    cn_text_add(w, "%s%u %s", sep, n, n == 1 ? one : many);
    return ", ";
}

/* Names the evidence still missing, after lead: the first metric short of
 * passing samples with what it got instead, how many others are short, and
 * the requests. Writes nothing when nothing is missing. Returns the first
 * short metric's index, -1 when none is. */
static long describe_missing(const stage *s, const char *lead, cn_text *w)
{
    size_t first = first_short(s, 0);
    if (first < s->n) {
        const cn_metric_tally *t = &s->t[first];
        char buf[NAME_BUF];
        cn_text_add(w, "%s%s has %u of %u passing samples", lead,
                 metric_name(s, first, buf, sizeof buf), t->passes, s->min_samples);
        const char *sep = " (";
        sep = add_count(w, sep, t->nodata, "without data", "without data");
        sep = add_count(w, sep, t->failures, "failed", "failed");
        sep = add_count(w, sep, t->errors, "error", "errors");
        if (*sep == ',')
            cn_text_add(w, ")");
        size_t more = 0;
        for (size_t i = first_short(s, first + 1); i < s->n; i = first_short(s, i + 1))
            more++;
        if (more)
            cn_text_add(w, "; %zu more metric%s short of min_samples", more, plural(more));
        lead = "; ";
    }
    if (requests_missing(s) && isnan(s->requests_served))
        cn_text_add(w, "%sthe canary's request count is not known yet (min_requests %u)", lead,
                 s->l->min_requests);
    else if (requests_missing(s))
        cn_text_add(w, "%sthe canary served %.0f of min_requests %u", lead, s->requests_served,
                 s->l->min_requests);
    return first < s->n ? (long)first : -1;
}

static cn_verdict promote(const stage *s)
{
    cn_verdict v = decide(CN_VERDICT_PROMOTE, CN_ON_ROLLBACK, -1);
    char baked[32], bake[32];
    cn_format_duration(baked, sizeof baked, s->baked_ms);
    cn_format_duration(bake, sizeof bake, s->l->bake_ms);
    cn_text w;
    cn_text_init(&w, v.why, sizeof v.why);
    cn_text_add(&w, "baked %s of %s", baked, bake);
    if (s->n) {
        unsigned fewest = s->t[0].passes;
        for (size_t i = 1; i < s->n; i++)
            if (s->t[i].passes < fewest)
                fewest = s->t[i].passes;
        cn_text_add(&w, "; every metric has %u or more passing samples (%u needed)", fewest,
                 s->min_samples);
    } else {
        cn_text_add(&w, "; no metrics to judge");
    }
    if (s->l->min_requests)
        cn_text_add(&w, "; the canary served %.0f of min_requests %u", s->requests_served,
                 s->l->min_requests);
    return v;
}

static cn_verdict inconclusive(const stage *s)
{
    cn_verdict v = decide(CN_VERDICT_INCONCLUSIVE, s->l->on_inconclusive, -1);
    char max[32], baked[32], bake[32];
    cn_format_duration(max, sizeof max, s->l->max_bake_ms);
    cn_text w;
    cn_text_init(&w, v.why, sizeof v.why);
    cn_text_add(&w, "max_bake %s reached", max);
    /* Only limits built by hand (max_bake below the bake) get here. */
    if (s->baked_ms < s->l->bake_ms) {
        cn_format_duration(baked, sizeof baked, s->baked_ms);
        cn_format_duration(bake, sizeof bake, s->l->bake_ms);
        cn_text_add(&w, " after %s of a %s bake", baked, bake);
    }
    v.metric = describe_missing(s, "; ", &w);
    return v;
}

static cn_verdict baking(const stage *s)
{
    cn_verdict v = decide(CN_VERDICT_BAKING, CN_ON_ROLLBACK, -1);
    char baked[32], bake[32], max[32];
    cn_format_duration(baked, sizeof baked, s->baked_ms);
    cn_format_duration(bake, sizeof bake, s->l->bake_ms);
    cn_format_duration(max, sizeof max, s->l->max_bake_ms);
    cn_text w;
    cn_text_init(&w, v.why, sizeof v.why);
    cn_text_add(&w, "baked %s of %s", baked, bake);
    if (s->baked_ms >= s->l->bake_ms)
        cn_text_add(&w, ", extended up to max_bake %s", max);
    v.metric = describe_missing(s, "; ", &w);
    if (v.metric < 0 && !requests_missing(s))
        cn_text_add(&w, "; evidence complete, waiting for the bake");
    return v;
}

/* Precedence: errors, then failures, then promotion, then the end of the
 * extended bake. Errors come first because they roll back whatever
 * on_failure says; failures before promotion so the measurement that
 * completes a bake can still fail it. */
cn_verdict cn_stage_verdict(const cn_stage_limits *limits, const cn_metric_tally *tallies,
                            const cn_metric *metrics, size_t n, int64_t baked_ms,
                            double requests_served)
{
    stage s = {
        .l = limits,
        .t = tallies,
        .metrics = metrics,
        .n = n,
        .baked_ms = baked_ms,
        .requests_served = requests_served,
        .min_samples = limits->min_samples ? limits->min_samples : 1,
        .error_limit = limits->consecutive_error_limit ? limits->consecutive_error_limit : 1,
    };
    cn_verdict v;
    if (errored(&s, &v) || failed(&s, &v))
        return v;
    if (baked_ms >= limits->bake_ms && first_short(&s, 0) == s.n && !requests_missing(&s))
        return promote(&s);
    if (baked_ms >= limits->max_bake_ms)
        return inconclusive(&s);
    return baking(&s);
}
