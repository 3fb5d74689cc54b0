/*
 * judge_score.c: the classifications of several metrics to a 0-100 score
 * and a verdict, Kayenta's WeightedSumScorer and ThresholdScoreClassifier
 * (judge.h has the contract, docs/judge.md an example).
 */
#include "canary/judge.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/status.h"

const char *cn_score_verdict_name(cn_score_verdict v)
{
    static const char *const names[] = {"pass", "marginal", "fail"};
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "?";
}

static int refuse(cn_score_result *r, int code, const char *fmt, ...) CN_PRINTF(3, 4);

static int refuse(cn_score_result *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    return code;
}

static const char *group_of(const cn_score_metric *m)
{
    return m->group && *m->group ? m->group : "default";
}

static int check(const cn_score_metric *metrics, size_t n, const cn_score_config *c,
                 cn_score_result *r)
{
    if (!n)
        return refuse(r, CN_EINVAL, "no metrics to score");
    for (size_t i = 0; i < n; i++)
        if (!metrics[i].result)
            return refuse(r, CN_EINVAL, "metric %zu has no result", i + 1);
    if (!isfinite(c->pass) || !isfinite(c->marginal) || c->marginal > c->pass)
        return refuse(r, CN_EINVAL,
                      "thresholds must be numbers with marginal <= pass, got marginal %g "
                      "and pass %g",
                      c->marginal, c->pass);
    double sum = 0;
    for (size_t i = 0; i < c->weight_count; i++) {
        const cn_group_weight *w = &c->weights[i];
        if (!w->group || !(w->weight >= 0) || !isfinite(w->weight))
            return refuse(r, CN_EINVAL, "group weight %zu must name a group and be 0 or more",
                          i + 1);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(c->weights[k].group, w->group))
                return refuse(r, CN_EINVAL, "group '%s' has two weights", w->group);
        sum += w->weight;
    }
    if (sum > 100 + 1e-9)
        return refuse(r, CN_EINVAL, "group weights add up to %g, more than 100", sum);
    return CN_OK;
}

static cn_group_score *group_for(cn_score_result *r, const char *name)
{
    for (size_t g = 0; g < r->group_count; g++)
        if (!strcmp(r->groups[g].group, name))
            return &r->groups[g];
    if (r->group_count == CN_SCORE_MAX_GROUPS)
        return NULL;
    cn_group_score *g = &r->groups[r->group_count++];
    g->group = name;
    return g;
}

static void tally(cn_group_score *g, const cn_judge_result *res)
{
    switch (res->classification) {
    case CN_JUDGE_PASS: g->pass++; break;
    case CN_JUDGE_HIGH: g->high++; break;
    case CN_JUDGE_LOW: g->low++; break;
    case CN_JUDGE_NODATA:
        if (res->nodata_fails)
            g->required_nodata++;
        else
            g->nodata++;
        break;
    default: g->error++; break;
    }
}

/* Groups named in the config keep their weight; the others share what is
 * left of 100 equally. */
static void weigh(cn_score_result *r, const cn_score_config *c)
{
    double listed = 0;
    size_t unlisted = 0;
    for (size_t g = 0; g < r->group_count; g++) {
        r->groups[g].weight = NAN;
        for (size_t i = 0; i < c->weight_count; i++)
            if (!strcmp(c->weights[i].group, r->groups[g].group))
                r->groups[g].weight = c->weights[i].weight;
        if (isnan(r->groups[g].weight))
            unlisted++;
    }
    for (size_t i = 0; i < c->weight_count; i++)
        listed += c->weights[i].weight;
    for (size_t g = 0; g < r->group_count; g++)
        if (isnan(r->groups[g].weight))
            r->groups[g].weight = (100 - listed) / (double)unlisted;
}

int cn_judge_score(const cn_score_metric *metrics, size_t n, const cn_score_config *c,
                   cn_score_result *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = CN_SCORE_FAIL;
    int rc = check(metrics, n, c, out);
    if (rc)
        return rc;
    size_t nodata = 0;
    const cn_score_metric *critical = NULL;
    for (size_t i = 0; i < n; i++) {
        const cn_judge_result *res = metrics[i].result;
        cn_group_score *g = group_for(out, group_of(&metrics[i]));
        if (!g)
            return refuse(out, CN_ELIMIT, "more than %u metric groups", CN_SCORE_MAX_GROUPS);
        tally(g, res);
        if (res->classification == CN_JUDGE_NODATA && !res->nodata_fails)
            nodata++;
        if (res->critical_failure && !critical)
            critical = &metrics[i];
    }
    weigh(out, c);
    double sum = 0;
    for (size_t k = 0; k < out->group_count; k++) {
        cn_group_score *g = &out->groups[k];
        unsigned counted = g->pass + g->high + g->low + g->required_nodata + g->error;
        g->no_data = counted == 0;
        g->score = g->no_data ? 100 : 100.0 * g->pass / counted;
        sum += g->score * g->weight / 100;
    }
    out->score = round(sum * 100) / 100;

    if (critical) {
        out->forced = true;
        out->score = 0;
        refuse(out, CN_OK, "fail: critical metric '%s' failed: %s",
               critical->name ? critical->name : "?", critical->result->reason);
    } else if (2 * nodata >= n) {
        out->forced = true;
        out->score = 0;
        refuse(out, CN_OK, "fail: %zu of %zu metrics had no data (50%% or more fails)", nodata,
               n);
    } else if (out->score >= c->pass) {
        out->verdict = CN_SCORE_PASS;
        refuse(out, CN_OK, "pass: score %.2f reaches pass %g", out->score, c->pass);
    } else if (out->score >= c->marginal) {
        out->verdict = CN_SCORE_MARGINAL;
        refuse(out, CN_OK, "marginal: score %.2f is below pass %g but reaches marginal %g",
               out->score, c->pass, c->marginal);
    } else {
        refuse(out, CN_OK, "fail: score %.2f is below marginal %g", out->score, c->marginal);
    }
    return CN_OK;
}
