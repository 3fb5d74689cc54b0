/*
 * judge_round.c: a round of the statistical judge inside a rollout: the
 * judged metrics' samples to one outcome each, with words and JSON
 * (judge_round.h has the contract, docs/judge.md#in-a-rollout the rules).
 */
#include "canary/judge_round.h"

#include <gsl/gsl_cdf.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/provider.h"
#include "canary/status.h"

/* ---- how many samples can show anything ---------------------------------- */

bool cn_judge_can_reject(size_t n, size_t m, double confidence)
{
    if (!n || !m || !(confidence > 0 && confidence < 1))
        return false;
    double nm = (double)n * (double)m;
    double z = (nm / 2 - 0.5) / sqrt(nm * ((double)n + (double)m + 1) / 12);
    return z > gsl_cdf_ugaussian_Pinv((1 + confidence) / 2);
}

size_t cn_judge_min_per_side(double confidence)
{
    size_t k = 1;
    while (k < CN_JUDGE_MAX_SAMPLES && !cn_judge_can_reject(k, k, confidence))
        k++;
    return k;
}

/* ---- one metric -------------------------------------------------------- */

static void say(cn_judge_result *r, const char *fmt, ...) CN_PRINTF(2, 3);

static void say(cn_judge_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* A side without samples: what its reading said ("empty matrix"). */
static const char *side_detail(const cn_reading *r)
{
    return r && r->detail[0] ? r->detail : "no samples";
}

void cn_round_judge(const cn_round_input *in, cn_round_metric *out)
{
    memset(out, 0, sizeof *out);
    out->name = in->name;
    out->group = in->group && *in->group ? in->group : NULL;
    out->config = in->config;
    cn_judge_result *r = &out->result;
    r->u = r->p_value = r->estimate = r->ci_low = r->ci_high = r->band = r->effect_size = NAN;
    const cn_reading *sides[2] = {in->canary, in->baseline};
    static const char *const who[2] = {"canary", "baseline"};
    for (int s = 0; s < 2; s++)
        if (!sides[s] || sides[s]->kind == CN_READING_ERROR) {
            out->error = true;
            r->classification = CN_JUDGE_ERROR;
            say(r, "%s samples: %s", who[s], sides[s] ? side_detail(sides[s]) : "not read");
            return;
        }
    bool c_none = in->canary->kind != CN_READING_VALUE || !in->canary_count;
    bool b_none = in->baseline->kind != CN_READING_VALUE || !in->baseline_count;
    if (cn_judge_metric(in->config, c_none ? NULL : in->canary_values,
                        c_none ? 0 : in->canary_count, b_none ? NULL : in->baseline_values,
                        b_none ? 0 : in->baseline_count, r) != CN_OK) {
        out->error = true;
        return;
    }
    if (c_none || b_none) {
        /* The judge's nodata rules (critical, must_have_data) stand; its
         * pass under nan_strategy replace does not: no samples is no
         * evidence. The words name the side and what its query said. */
        bool critical = r->critical_failure;
        if (r->classification == CN_JUDGE_PASS) {
            r->classification = CN_JUDGE_NODATA;
            r->nodata_fails = in->config->must_have_data;
        }
        int s = c_none ? 0 : 1;
        say(r, "no %s samples (%s)%s", who[s], side_detail(sides[s]),
            critical ? "; the metric is critical, so the judgement fails"
            : r->nodata_fails ? "; must_have_data counts it as a failed metric" : "");
        return;
    }
    if (r->classification == CN_JUDGE_PASS && (!r->canary_count || !r->baseline_count)) {
        /* the same departure for a side left empty by the transforms */
        r->classification = CN_JUDGE_NODATA;
        r->nodata_fails = in->config->must_have_data;
        say(r, "the %s sample holds no values to compare",
            !r->canary_count ? "canary" : "baseline");
        return;
    }
    if (r->classification == CN_JUDGE_PASS &&
        !cn_judge_can_reject(r->canary_count, r->baseline_count, in->config->confidence)) {
        out->too_few = true;
        r->classification = CN_JUDGE_NODATA;
        say(r, "too few samples (%zu canary, %zu baseline; at %g%% confidence the test needs "
               "%zu a side to show a difference)", r->canary_count, r->baseline_count,
            in->config->confidence * 100, cn_judge_min_per_side(in->config->confidence));
    }
}

/* ---- the round ----------------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t len, used;
} text;

static void add(text *t, const char *fmt, ...) CN_PRINTF(2, 3);

static void add(text *t, const char *fmt, ...)
{
    if (t->used + 1 >= t->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->used = (size_t)n < t->len - t->used ? t->used + (size_t)n : t->len - 1;
}

/* Numbers for people: three significant digits, whole numbers from 100. */
static void num(char *buf, size_t len, double x, bool sign)
{
    if (isnan(x))
        snprintf(buf, len, "?");
    else if (isinf(x))
        snprintf(buf, len, "%sinf", x < 0 ? "-" : sign ? "+" : "");
    else if (fabs(x) >= 100)
        snprintf(buf, len, sign ? "%+.0f" : "%.0f", x);
    else
        snprintf(buf, len, sign ? "%+.3g" : "%.3g", x);
}

static double in_force(const cn_judge_config *c, double x)
{
    return isnan(x) ? (c->effect == CN_EFFECT_CLES ? 0.5 : 1) : x;
}

/* "high (estimate +42, ci [30, 55], mean ratio 1.31 >= 1.1; 20 and 20
 * samples)", or for a metric that was not tested what the judge said. */
static void metric_words(const cn_round_metric *m, text *t)
{
    const cn_judge_result *r = &m->result;
    if (m->too_few || !r->tested || r->classification == CN_JUDGE_NODATA) {
        /* the judge's own words begin with its class; ours do not */
        const char *reason = r->reason;
        if (!strncmp(reason, "nodata: ", 8))
            reason += 8;
        add(t, "%s", reason);
        return;
    }
    char est[32], lo[32], hi[32], eff[32], lim[32];
    num(est, sizeof est, r->estimate, true);
    num(lo, sizeof lo, r->ci_low, false);
    num(hi, sizeof hi, r->ci_high, false);
    num(eff, sizeof eff, r->effect_size, false);
    const cn_judge_config *c = m->config;
    const char *measure = c->effect == CN_EFFECT_CLES ? "cles" : "mean ratio";
    static const char *const words[] = {"like the baseline", "high", "low", "no data", "error"};
    add(t, "%s (estimate %s, ci [%s, %s], %s %s", words[r->classification], est, lo, hi,
        measure, eff);
    if (r->classification == CN_JUDGE_HIGH || r->classification == CN_JUDGE_LOW) {
        bool high = r->classification == CN_JUDGE_HIGH;
        num(lim, sizeof lim, in_force(c, high ? c->allowed_increase : c->allowed_decrease),
            false);
        add(t, " %s %s", high ? ">=" : "<=", lim);
        if (r->critical_failure)
            add(t, ", critical");
    }
    add(t, "; %zu and %zu samples)", r->canary_count, r->baseline_count);
}

static bool own_nodata(const cn_round_metric *m)
{
    return !m->error && m->result.classification == CN_JUDGE_NODATA;
}

/* The round's words: the score against the threshold it met or missed. */
static void round_words(cn_round_summary *sum, const cn_round_metric *m, size_t n,
                        const cn_score_config *sc)
{
    text t = {sum->words, sizeof sum->words, 0};
    sum->words[0] = '\0';
    if (!sum->scored)
        return;
    const cn_score_result *s = &sum->score;
    char score[32];
    snprintf(score, sizeof score, "%.4g", s->score);
    if (sum->nodata_forced) {
        size_t nodata = 0;
        for (size_t i = 0; i < n; i++)
            nodata += m[i].error || (own_nodata(&m[i]) && !m[i].result.nodata_fails);
        char data[32];
        snprintf(data, sizeof data, "%.4g", sum->data_score);
        if (sum->outcome == CN_OUTCOME_FAIL)
            add(&t, "score 0 < marginal %g: %zu of %zu metrics without data, and the rest "
                "scores %s", sc->marginal, nodata, n, data);
        else
            add(&t, "score 0: %zu of %zu metrics without data, inconclusive (the rest "
                "scores %s)", nodata, n, data);
        return;
    }
    if (s->verdict == CN_SCORE_PASS)
        add(&t, "score %s >= pass %g", score, sc->pass);
    else if (s->verdict == CN_SCORE_MARGINAL)
        add(&t, "score %s between marginal %g and pass %g, inconclusive", score, sc->marginal,
            sc->pass);
    else
        add(&t, "score %s < marginal %g", score, sc->marginal);
    if (s->forced) {
        for (size_t i = 0; i < n; i++)
            if (!m[i].error && m[i].result.critical_failure) {
                add(&t, " (critical metric '%s' failed)", m[i].name ? m[i].name : "?");
                break;
            }
    }
}

/* In a round that did not pass, the other metrics that were not a pass,
 * so each metric's words say what failed the round. */
static void others(const cn_round_metric *m, size_t n, size_t self, text *t)
{
    size_t shown = 0, more = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == self || m[i].error || m[i].result.classification == CN_JUDGE_PASS)
            continue;
        if (shown == 3) {
            more++;
            continue;
        }
        add(t, "%s%s %s", shown ? ", " : "; not a pass: ", m[i].name ? m[i].name : "?",
            m[i].too_few ? "too few samples" : cn_judge_class_name(m[i].result.classification));
        shown++;
    }
    if (more)
        add(t, " and %zu more", more);
}

static void metric_outcome(cn_round_metric *m, size_t n, size_t i,
                           const cn_round_summary *sum)
{
    cn_round_metric *x = &m[i];
    text t = {x->why, sizeof x->why, 0};
    x->why[0] = '\0';
    if (x->error) {
        x->outcome = CN_OUTCOME_ERROR;
        add(&t, "error: %s", x->result.reason);
        return;
    }
    x->outcome = sum->outcome;
    if (sum->outcome == CN_OUTCOME_PASS && own_nodata(x))
        x->outcome = CN_OUTCOME_NODATA; /* missing evidence is never a pass */
    if (x->outcome == CN_OUTCOME_NODATA)
        add(&t, "no data: ");
    metric_words(x, &t);
    add(&t, "; %s", sum->words);
    if (sum->outcome != CN_OUTCOME_PASS)
        others(m, n, i, &t);
}

int cn_round_decide(cn_round_metric *m, size_t n, const cn_score_config *sc,
                    cn_round_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    sum->outcome = CN_OUTCOME_ERROR;
    /* A metric whose query failed is scored as one without data: its
     * group keeps its weight, it cannot fail the round (its error counts
     * toward consecutive_error_limit instead) and, as half the evidence
     * or more, it leaves the round inconclusive. */
    static const cn_judge_result no_evidence = {.classification = CN_JUDGE_NODATA};
    cn_score_metric *scored = malloc((n ? n : 1) * sizeof *scored);
    size_t k = 0;
    for (size_t i = 0; scored && i < n; i++)
        k += !m[i].error;
    for (size_t i = 0; scored && k && i < n; i++)
        scored[i] = (cn_score_metric){.name = m[i].name, .group = m[i].group,
                                      .result = m[i].error ? &no_evidence : &m[i].result};
    int rc = scored ? CN_OK : CN_ENOMEM;
    if (!scored)
        snprintf(sum->score.reason, sizeof sum->score.reason, "out of memory");
    else if (k)
        rc = cn_judge_score(scored, n, sc, &sum->score);
    if (rc != CN_OK) {
        free(scored);
        for (size_t i = 0; i < n; i++) {
            m[i].outcome = CN_OUTCOME_ERROR;
            snprintf(m[i].why, sizeof m[i].why, "error: the judged metrics cannot be "
                     "scored: %.200s", sum->score.reason);
        }
        return rc;
    }
    if (k) {
        sum->scored = true;
        bool critical = false;
        for (size_t i = 0; i < n; i++)
            critical |= scored[i].result->critical_failure;
        sum->nodata_forced = sum->score.forced && !critical;
        /* The weighted sum before the nodata rule forced it to 0: what the
         * evidence there is says (a group with nothing but nodata counts
         * 100, as in the score). */
        double data = 0;
        for (size_t g = 0; g < sum->score.group_count; g++)
            data += sum->score.groups[g].score * sum->score.groups[g].weight / 100;
        sum->data_score = round(data * 100) / 100;
        sum->outcome = sum->score.verdict == CN_SCORE_PASS       ? CN_OUTCOME_PASS
                       : sum->score.verdict == CN_SCORE_MARGINAL ? CN_OUTCOME_NODATA
                       : !sum->nodata_forced                     ? CN_OUTCOME_FAIL
                       : sum->data_score < sc->marginal          ? CN_OUTCOME_FAIL
                                                                 : CN_OUTCOME_NODATA;
    }
    free(scored);
    round_words(sum, m, n, sc);
    for (size_t i = 0; i < n; i++)
        metric_outcome(m, n, i, sum);
    return rc;
}

void cn_round_order(const cn_round_metric *m, size_t n, size_t *order)
{
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            bool guilty = m[i].error || m[i].result.classification != CN_JUDGE_PASS;
            if (guilty == (pass == 0))
                order[k++] = i;
        }
}

/* ---- what the engine and the simulator compute alike --------------------- */

int64_t cn_round_step_ms(const cn_metric *m, int64_t interval_ms)
{
    return m && m->judge.step_ms ? m->judge.step_ms : interval_ms;
}

cn_round_windows cn_round_windows_at(double now_s, double baked_s, double switch_s, bool full,
                                     double step_s)
{
    double most = (CN_PROM_MAX_SAMPLES - 2) * step_s;
    double len = baked_s < most ? baked_s : most;
    cn_round_windows w = {.step = step_s, .canary_end = now_s, .canary_start = now_s - len};
    w.baseline_start = w.canary_start;
    w.baseline_end = w.canary_end;
    if (full) {
        w.baseline_end = switch_s;
        w.baseline_start = switch_s - len;
    }
    return w;
}

int cn_round_run(cn_round *r, const cn_round_input *in, size_t n,
                 const cn_judge_scoring *scoring)
{
    memset(r, 0, sizeof *r);
    r->score = (cn_score_config){.weights = scoring->groups,
                                 .weight_count = scoring->group_count,
                                 .pass = scoring->pass, .marginal = scoring->marginal};
    if (!n)
        return CN_OK;
    r->metrics = calloc(n, sizeof *r->metrics);
    r->order = calloc(n, sizeof *r->order);
    if (!r->metrics || !r->order) {
        cn_round_free(r);
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        cn_round_judge(&in[i], &r->metrics[i]);
    /* A config the scorer refuses leaves every metric an error saying so:
     * still reported. */
    (void)cn_round_decide(r->metrics, n, &r->score, &r->summary);
    cn_round_order(r->metrics, n, r->order);
    r->count = n;
    return CN_OK;
}

void cn_round_free(cn_round *r)
{
    free(r->metrics);
    free(r->order);
    r->metrics = NULL;
    r->order = NULL;
    r->count = 0;
}

cn_reading cn_round_shown(const cn_round_summary *sum)
{
    cn_reading shown = {.kind = sum->scored ? CN_READING_VALUE : CN_READING_ERROR,
                        .value = sum->scored ? sum->score.score : NAN};
    return shown;
}

/* ---- evidence as JSON ---------------------------------------------------- */

static json_t *real_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static const char *outcome_text(cn_outcome o)
{
    return o == CN_OUTCOME_PASS ? "pass" : o == CN_OUTCOME_FAIL ? "fail"
                                           : o == CN_OUTCOME_NODATA ? "nodata" : "error";
}

static json_t *window(double start, double end)
{
    return json_pack("{s:o, s:o}", "start", real_or_null(start), "end", real_or_null(end));
}

char *cn_round_data(const cn_round_metric *m, size_t n, size_t i, const cn_round_summary *sum,
                    const cn_score_config *sc, const cn_round_windows *w)
{
    const cn_round_metric *x = &m[i];
    const cn_judge_result *r = &x->result;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o}",
                          "metric", x->name ? x->name : "?", "outcome",
                          outcome_text(x->outcome), "kind", "judge", "classification",
                          cn_judge_class_name(r->classification), "u", real_or_null(r->u),
                          "p_value", real_or_null(r->p_value), "estimate",
                          real_or_null(r->estimate), "ci",
                          json_pack("[o, o]", real_or_null(r->ci_low),
                                    real_or_null(r->ci_high)),
                          "effect_size", real_or_null(r->effect_size), "band",
                          real_or_null(r->band), "effect",
                          cn_effect_measure_name(x->config ? x->config->effect
                                                           : CN_EFFECT_MEAN_RATIO),
                          "group", json_string(x->group ? x->group : "default"));
    json_t *round = json_object(), *groups = json_array();
    if (!j || !round || !groups) {
        json_decref(j);
        json_decref(round);
        json_decref(groups);
        return NULL;
    }
    json_object_set_new(j, "canary_count", json_integer((json_int_t)r->canary_count));
    json_object_set_new(j, "baseline_count", json_integer((json_int_t)r->baseline_count));
    json_object_set_new(j, "canary_dropped", json_integer((json_int_t)r->canary_dropped));
    json_object_set_new(j, "baseline_dropped", json_integer((json_int_t)r->baseline_dropped));
    json_object_set_new(j, "too_few", json_boolean(x->too_few));
    json_object_set_new(j, "critical_failure", json_boolean(r->critical_failure));
    json_object_set_new(j, "reason", json_string(r->reason));
    json_object_set_new(j, "value", sum->scored ? json_real(sum->score.score) : json_null());
    json_object_set_new(j, "min", json_real(sc->marginal));
    json_object_set_new(j, "score", sum->scored ? json_real(sum->score.score) : json_null());
    json_object_set_new(j, "verdict", sum->scored
                                          ? json_string(cn_score_verdict_name(sum->score.verdict))
                                          : json_null());
    json_object_set_new(j, "pass", json_real(sc->pass));
    json_object_set_new(j, "marginal", json_real(sc->marginal));
    for (size_t g = 0; sum->scored && g < sum->score.group_count; g++) {
        const cn_group_score *gs = &sum->score.groups[g];
        json_array_append_new(groups, json_pack("{s:s, s:f, s:f}", "group", gs->group,
                                                "weight", gs->weight, "score", gs->score));
    }
    json_object_set_new(j, "groups", groups);
    for (size_t k = 0; k < n; k++)
        json_object_set_new(round, m[k].name ? m[k].name : "?",
                            json_string(m[k].too_few ? "too_few"
                                        : cn_judge_class_name(m[k].result.classification)));
    json_object_set_new(j, "round", round);
    if (w) {
        json_object_set_new(j, "canary_window", window(w->canary_start, w->canary_end));
        json_object_set_new(j, "baseline_window", window(w->baseline_start, w->baseline_end));
        json_object_set_new(j, "step", real_or_null(w->step));
    }
    char *out = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(j);
    return out;
}
