/* Planner: the worked examples of docs/blast-radius.md, and the properties
 * every plan must have, checked over a grid of inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "canary/plan.h"
#include "canary/status.h"

static cn_plan_input input(const cn_policy *p, double reach, int tier)
{
    cn_plan_input in = {.policy = p, .reach = reach, .tier = tier};
    return in;
}

static void test_worked_example(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    /* checkout: reach 0.44, tier 0 (x4), 200 hosts, code only, 420 lines
     * (x1.21): risk 4.84, BR 2.1296. B_1 = 0.1% -> w 0.047% -> 1 host. */
    const char *kinds[] = {"code"};
    cn_plan_input in = input(&p, 0.44, 0);
    in.fleet_unit = "host";
    in.fleet_count = 200;
    in.diff_lines = 420;
    in.kinds = kinds;
    in.kind_count = 1;
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(fabs(plan.risk - 4.84) < 1e-9);
    assert_true(fabs(plan.score - 0.44 * 4.84) < 1e-9);
    /* budgets 0.1%, 0.4%, 1.6%, 6.4%, 25.6%, 102.4%, 409.6% at risk:
     * weights 0.047%, 0.19%, 0.75%, 3.0%, 12.0%, 48.1%, 100% of 200 hosts:
     * 1 host (B1), 1 (B2, dropped), 2 (B3), 7 (B4), 25 (B5), 97 (B6),
     * 200 (B7). */
    uint64_t want[] = {1, 2, 7, 25, 97, 200};
    assert_int_equal(plan.stage_count, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(plan.stages[i].units, want[i]);
        assert_int_equal(plan.stages[i].index, i + 1);
        assert_int_equal(plan.stages[i].bake_ms, 120000);
        assert_false(plan.stages[i].approval);
    }
    assert_true(fabs(plan.stages[1].budget - 0.016) < 1e-12);
    assert_true(fabs(plan.stages[5].weight - 1.0) < 1e-12);
    cn_policy_free(&p);
}

static void test_ai_gate_and_bake(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_plan_input in = input(&p, 0.44, 0);
    in.fleet_count = 200;
    in.ai_assisted = true;
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(fabs(plan.risk - 8.0) < 1e-9); /* tier 4 x ai 2 */
    size_t gates = 0, gate_at = 0;
    for (size_t i = 0; i < plan.stage_count; i++) {
        assert_int_equal(plan.stages[i].bake_ms, 240000); /* 2m x 2 */
        if (plan.stages[i].approval) {
            gates++;
            gate_at = i;
        }
    }
    assert_int_equal(gates, 1);
    assert_true(plan.stages[gate_at].weight > 0.25);
    assert_true(gate_at > 0 && plan.stages[gate_at - 1].weight <= 0.25);
    cn_policy_free(&p);
}

static void test_min_samples_lengthen_bake(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    p.plan.bake_ms = 10000;
    p.analysis.interval_ms = 30000;
    p.plan.min_samples = 5;
    cn_plan_input in = input(&p, 0.5, 2);
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_int_equal(plan.stages[0].bake_ms, 150000);
    cn_policy_free(&p);
}

static void test_zero_reach_is_one_stage(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_plan_input in = input(&p, 0, 2);
    in.fleet_count = 10;
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_int_equal(plan.stage_count, 1);
    assert_int_equal(plan.stages[0].units, 10);
    cn_policy_free(&p);
}

static void test_max_stages_cut(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    p.plan.max_stages = 3;
    p.plan.first_stage_impact = 0.00001;
    cn_plan_input in = input(&p, 1.0, 0);
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_int_equal(plan.stage_count, 3);
    assert_true(plan.max_stages_cut);
    assert_true(plan.stages[2].weight == 1.0);
    assert_true(plan.stages[1].weight < 0.01);
    cn_policy_free(&p);
}

static void test_fixed_steps_report_budget(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    double steps[] = {0.01, 0.05, 0.25, 1.0};
    p.plan.steps = steps;
    p.plan.step_count = 4;
    cn_plan_input in = input(&p, 0.44, 0);
    in.fleet_count = 200;
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(plan.fixed_steps);
    assert_int_equal(plan.stage_count, 4);
    uint64_t want[] = {2, 10, 50, 200};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(plan.stages[i].units, want[i]);
    /* 1% of a service with BR 1.76 puts 1.76% at risk: 17.6x its 0.1% */
    assert_true(fabs(plan.stages[0].weighted / plan.stages[0].budget - 17.6) < 1e-9);
    assert_true(plan.stages[0].over_budget);
    /* 100% of BR 1.76 against the fourth budget, 6.4% */
    assert_true(plan.stages[3].over_budget);
    cn_policy_free(&p);
}

static void test_fixed_steps_merge_equal_units(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    double steps[] = {0.01, 0.02, 0.5, 1.0};
    p.plan.steps = steps;
    p.plan.step_count = 4;
    cn_plan_input in = input(&p, 0.1, 2);
    in.fleet_count = 12; /* 1% and 2% of 12 cells are both one cell */
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_int_equal(plan.stage_count, 3);
    assert_int_equal(plan.stages[0].units, 1);
    assert_int_equal(plan.stages[1].units, 6);
    assert_int_equal(plan.stages[2].units, 12);
    cn_policy_free(&p);
}

static void test_unknown_tier_is_riskiest(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_plan_input in = input(&p, 0.5, -1);
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(fabs(plan.risk - 4.0) < 1e-12);
    assert_string_equal(plan.factors[0].name, "tier");
    assert_non_null(strstr(plan.factors[0].detail, "unknown"));
    in.tier = 7; /* no multiplier for tier 7 in the defaults */
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(fabs(plan.risk - 4.0) < 1e-12);
    cn_policy_free(&p);
}

static void test_kinds_multiply_once_each(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    const char *kinds[] = {"config", "migration", "config", "docs"};
    cn_plan_input in = input(&p, 0.5, 2);
    in.kinds = kinds;
    in.kind_count = 4;
    cn_plan plan;
    char err[256];
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_OK);
    assert_true(fabs(plan.risk - 1 * 1.5 * 3 * 1) < 1e-12);
    cn_policy_free(&p);
}

static void test_rejects_bad_input(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    cn_plan plan;
    char err[256];
    cn_plan_input in = input(&p, 1.5, 0);
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_EINVAL);
    in.reach = NAN;
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_EINVAL);
    in.reach = 0.5;
    p.plan.growth = 1;
    assert_int_equal(cn_plan_compute(&in, &plan, err, sizeof err), CN_EINVAL);
    cn_policy_free(&p);
}

/* Weight a plan has reached t ms after its first stage starts. */
static double weight_at(const cn_plan *pl, int64_t t)
{
    int64_t start = 0;
    for (size_t i = 0; i < pl->stage_count; i++) {
        if (t < start + pl->stages[i].bake_ms || i + 1 == pl->stage_count)
            return pl->stages[i].weight;
        start += pl->stages[i].bake_ms;
    }
    return 1.0;
}

/* Properties over a grid: strictly increasing, last 100%, each budget kept
 * or the stage is a single unit, and an AI-assisted change never gets a
 * bolder plan than the same change written by a person. */
static void test_properties(void **state)
{
    (void)state;
    static const double reaches[] = {0, 1e-6, 0.001, 0.05, 0.3, 0.44, 0.9, 1};
    static const int tiers[] = {-1, 0, 1, 2, 3};
    static const uint64_t fleets[] = {0, 1, 3, 12, 200, 5000};
    static const unsigned lines[] = {0, 10, 420, 20000};
    static const double growths[] = {1.5, 2, 4, 10};
    char err[256];
    size_t checked = 0;
    for (size_t g = 0; g < 4; g++)
        for (size_t r = 0; r < 8; r++)
            for (size_t t = 0; t < 5; t++)
                for (size_t f = 0; f < 6; f++)
                    for (size_t l = 0; l < 4; l++) {
                        cn_policy p;
                        cn_policy_defaults(&p);
                        p.plan.growth = growths[g];
                        cn_plan_input in = input(&p, reaches[r], tiers[t]);
                        in.fleet_count = fleets[f];
                        in.diff_lines = lines[l];
                        cn_plan human, ai;
                        assert_int_equal(cn_plan_compute(&in, &human, err, sizeof err), 0);
                        in.ai_assisted = true;
                        assert_int_equal(cn_plan_compute(&in, &ai, err, sizeof err), 0);
                        const cn_plan *plans[] = {&human, &ai};
                        for (int k = 0; k < 2; k++) {
                            const cn_plan *pl = plans[k];
                            assert_true(pl->stage_count >= 1);
                            assert_true(pl->stage_count <= p.plan.max_stages);
                            assert_true(pl->stages[pl->stage_count - 1].weight == 1.0);
                            for (size_t i = 0; i < pl->stage_count; i++) {
                                const cn_stage *s = &pl->stages[i];
                                if (i)
                                    assert_true(s->units > pl->stages[i - 1].units);
                                /* rounding up may add less than one unit */
                                bool cut = i + 1 == pl->stage_count && pl->max_stages_cut;
                                double below = (double)(s->units - 1) /
                                               (double)pl->fleet_count * pl->score;
                                if (!cut)
                                    assert_true(below <= s->budget * (1 + 1e-9));
                                assert_true(!s->over_budget || cut);
                            }
                        }
                        /* stricter: first step no larger, bakes longer, and
                         * at every moment no more traffic on the new version */
                        assert_true(ai.stages[0].units <= human.stages[0].units);
                        assert_true(ai.bake_ms > human.bake_ms);
                        assert_true(ai.risk > human.risk);
                        for (int64_t ts = 0; ts < 40 * ai.bake_ms; ts += human.bake_ms / 2)
                            assert_true(weight_at(&ai, ts) <= weight_at(&human, ts));
                        cn_policy_free(&p);
                        checked++;
                    }
    assert_int_equal(checked, 4 * 8 * 5 * 6 * 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_ai_gate_and_bake),
        cmocka_unit_test(test_min_samples_lengthen_bake),
        cmocka_unit_test(test_zero_reach_is_one_stage),
        cmocka_unit_test(test_max_stages_cut),
        cmocka_unit_test(test_fixed_steps_report_budget),
        cmocka_unit_test(test_fixed_steps_merge_equal_units),
        cmocka_unit_test(test_unknown_tier_is_riskiest),
        cmocka_unit_test(test_kinds_multiply_once_each),
        cmocka_unit_test(test_rejects_bad_input),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
