#include "canary/plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/status.h"

/* Budgets grow geometrically, so even growth close to 1 reaches 100% long
 * before this; it only guards against a policy the loader let through. */
#define MAX_BUDGET_STEPS 100000

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void add_factor(cn_plan *out, const char *name, double multiplier,
                       const char *fmt, ...)
{
    if (out->factor_count == CN_MAX_FACTORS)
        return;
    cn_risk_factor *f = &out->factors[out->factor_count++];
    snprintf(f->name, sizeof f->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    f->multiplier = multiplier;
    out->risk *= multiplier;
}

/* An unknown tier (no topology, or a tier the policy has no multiplier for)
 * takes the riskiest multiplier: missing information never makes a plan
 * bolder. */
static void tier_factor(const cn_plan_input *in, cn_plan *out)
{
    const cn_risk_policy *r = &in->policy->risk;
    double highest = 1;
    bool any = false;
    for (int t = 0; t <= CN_MAX_TIER; t++)
        if (r->has_tier[t] && (!any || r->tier[t] > highest)) {
            highest = r->tier[t];
            any = true;
        }
    if (in->tier >= 0 && in->tier <= CN_MAX_TIER && r->has_tier[in->tier])
        add_factor(out, "tier", r->tier[in->tier], "tier %d", in->tier);
    else if (in->tier >= 0)
        add_factor(out, "tier", highest,
                   "tier %d has no multiplier in the policy; riskiest tier assumed",
                   in->tier);
    else
        add_factor(out, "tier", highest, "tier unknown; riskiest tier assumed");
}

static void kind_factors(const cn_plan_input *in, cn_plan *out)
{
    if (!in->kind_count) {
        add_factor(out, "kind", 1, "kinds not known (no diff); counted as code");
        return;
    }
    for (size_t i = 0; i < in->kind_count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(in->kinds[i], in->kinds[j]);
        if (!seen)
            add_factor(out, "kind", cn_policy_kind_multiplier(in->policy, in->kinds[i]),
                       "%s", in->kinds[i]);
    }
}

static uint64_t units_for(double weight, uint64_t count)
{
    /* The epsilon keeps 25% of 200 at 50 units despite rounding noise. */
    double u = ceil(weight * (double)count - 1e-9);
    if (u < 1)
        u = 1;
    if (u > (double)count)
        u = (double)count;
    return (uint64_t)u;
}

static void add_stage(cn_plan *out, uint64_t units, double budget)
{
    cn_stage *s = &out->stages[out->stage_count];
    s->index = (unsigned)++out->stage_count;
    s->units = units;
    s->weight = (double)units / (double)out->fleet_count;
    s->bake_ms = out->bake_ms;
    s->budget = budget;
    s->weighted = s->weight * out->score;
    s->exposed = s->weight * out->reach;
    /* Rounding up to whole units may add less than one unit; more than
     * that only happens on a fixed ladder, and the plan must say so. */
    double below = (double)(units - 1) / (double)out->fleet_count * out->score;
    s->over_budget = below > budget * (1 + 1e-9);
}

static int computed_stages(const cn_plan_input *in, cn_plan *out, char *err,
                           size_t errlen)
{
    const cn_plan_policy *pp = &in->policy->plan;
    uint64_t prev = 0;
    double budget = pp->first_stage_impact;
    for (int i = 0; i < MAX_BUDGET_STEPS; i++, budget *= pp->growth) {
        double weight = out->score > 0 ? fmin(1.0, budget / out->score) : 1.0;
        uint64_t units = units_for(weight, out->fleet_count);
        if (units <= prev)
            continue; /* rounding made no progress: the next budget applies */
        if (out->stage_count + 1 >= pp->max_stages && units < out->fleet_count) {
            units = out->fleet_count;
            out->max_stages_cut = true;
        }
        add_stage(out, units, budget);
        if (units == out->fleet_count)
            return CN_OK;
        prev = units;
    }
    fail(err, errlen, "plan did not reach 100%% within %d budgets (growth %g)",
         MAX_BUDGET_STEPS, pp->growth);
    return CN_EINVAL;
}

static int fixed_stages(const cn_plan_input *in, cn_plan *out, char *err,
                        size_t errlen)
{
    const cn_plan_policy *pp = &in->policy->plan;
    if (pp->step_count > CN_MAX_STAGES || pp->steps[pp->step_count - 1] != 1.0) {
        fail(err, errlen, "plan.steps must end at 100%% and have at most %d steps",
             CN_MAX_STAGES);
        return CN_EINVAL;
    }
    out->fixed_steps = true;
    uint64_t prev = 0;
    double budget = pp->first_stage_impact;
    for (size_t i = 0; i < pp->step_count; i++, budget *= pp->growth) {
        uint64_t units = units_for(pp->steps[i], out->fleet_count);
        /* Two steps that round to the same number of hosts are one stage. */
        if (units > prev)
            add_stage(out, units, budget);
        prev = units;
    }
    return CN_OK;
}

int cn_plan_compute(const cn_plan_input *in, cn_plan *out, char *err, size_t errlen)
{
    const cn_policy *p = in->policy;
    memset(out, 0, sizeof(*out));
    if (!(in->reach >= 0 && in->reach <= 1)) {
        fail(err, errlen, "reach must be between 0 and 1, got %g", in->reach);
        return CN_EINVAL;
    }
    if (!(p->plan.growth > 1) || !(p->plan.first_stage_impact > 0) ||
        p->plan.max_stages < 1 || p->plan.max_stages > CN_MAX_STAGES) {
        fail(err, errlen, "policy '%s' has an invalid plan section", p->name);
        return CN_EINVAL;
    }
    out->reach = in->reach;
    out->risk = 1;
    tier_factor(in, out);
    kind_factors(in, out);
    double size = 1 + p->risk.per_1000_lines * in->diff_lines / 1000.0;
    add_factor(out, "size", size, "%u lines changed", in->diff_lines);
    if (in->ai_assisted)
        add_factor(out, "ai_assisted", p->ai.risk, "AI-assisted change");
    out->score = out->reach * out->risk;

    out->fleet_unit = in->fleet_unit;
    out->fleet_count = in->fleet_count ? in->fleet_count : CN_DEFAULT_FLEET_UNITS;
    double bake = (double)p->plan.bake_ms * (in->ai_assisted ? p->ai.bake_factor : 1);
    double evidence = (double)p->plan.min_samples * (double)p->analysis.interval_ms;
    /* The loader bounds each factor; the cap keeps a policy built in code
     * from overflowing the conversion. */
    out->bake_ms = (int64_t)llround(fmin(fmax(bake, evidence), CN_MAX_DURATION_MS));

    int rc = p->plan.step_count ? fixed_stages(in, out, err, errlen)
                                : computed_stages(in, out, err, errlen);
    if (rc)
        return rc;
    if (in->ai_assisted && p->ai.approval_above_weight < 1) {
        for (size_t i = 0; i < out->stage_count; i++)
            if (out->stages[i].weight > p->ai.approval_above_weight + 1e-12) {
                out->stages[i].approval = true;
                break;
            }
    }
    return CN_OK;
}
