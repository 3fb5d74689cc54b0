/*
 * plan.h: the planner, blast radius to rollout stages (pure).
 *
 * Contract: cn_plan_compute() reads only its input and writes only *out; no
 * I/O, no clock, no allocation. The model is in docs/blast-radius.md:
 *   risk  = tier x product(kinds) x size x ai
 *   BR    = reach x risk
 *   B_i   = first_stage_impact x growth^(i-1)
 *   w_i   = min(100%, B_i / BR), rounded up to whole fleet units, >= 1 unit
 * A stage no larger than the one before is dropped (the next budget
 * applies); the last stage is 100%, also when max_stages cuts the ladder.
 * Fixed ladders (plan.steps) are used as given, with each step's budget use
 * reported. Returns CN_EINVAL with a message in err on inconsistent input.
 */
#ifndef CANARY_PLAN_H
#define CANARY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/policy.h"
#include "canary/schema.h"

#define CN_MAX_FACTORS 24
/* Without a fleet in the topology, weights move in steps of 0.01% of
 * traffic, the finest split common traffic routers take. */
#define CN_DEFAULT_FLEET_UNITS 10000u

typedef struct cn_stage {
    unsigned index;   /* 1-based */
    double weight;    /* fraction of the service's traffic on the new version */
    uint64_t units;   /* fleet units at this weight */
    int64_t bake_ms;
    bool approval;    /* a second person must sign off before it starts */
    double budget;    /* B_i: risk-weighted share of traffic it may put at risk */
    double weighted;  /* weight x BR, what is compared with the budget */
    double exposed;   /* weight x reach, share of all user requests exposed */
    bool over_budget; /* over B_i by more than rounding up to one unit */
} cn_stage;

typedef struct cn_risk_factor {
    char name[24];     /* "tier", "kind", "size", "ai_assisted" */
    char detail[112];  /* "tier 0", "migration", "420 lines", ... */
    double multiplier;
} cn_risk_factor;

typedef struct cn_plan_input {
    const cn_policy *policy;
    bool ai_assisted;
    double reach;            /* 0..1 */
    int tier;                /* -1 unknown */
    const char *fleet_unit;  /* NULL: traffic-split units */
    uint64_t fleet_count;    /* 0: CN_DEFAULT_FLEET_UNITS */
    unsigned diff_lines;
    const char *const *kinds; /* kinds touched, may repeat */
    size_t kind_count;
} cn_plan_input;

typedef struct cn_plan {
    double reach, risk, score;
    cn_risk_factor factors[CN_MAX_FACTORS];
    size_t factor_count;
    cn_stage stages[CN_MAX_STAGES];
    size_t stage_count;
    bool fixed_steps;
    bool max_stages_cut; /* the last stage jumped to 100% at max_stages */
    const char *fleet_unit;
    uint64_t fleet_count;
    int64_t bake_ms;     /* per-stage bake after AI factor and min_samples */
} cn_plan;

int cn_plan_compute(const cn_plan_input *in, cn_plan *out, char *err,
                    size_t errlen);

#endif
