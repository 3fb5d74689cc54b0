/* canary backtest's core: how a simulated rollout is classified (the
 * decision that stopped it, and when), and how one policy's cases add up
 * against their labels: faults caught and missed, false rollbacks,
 * undecided cases, mean and nearest-rank p95 time to rollback, mean
 * healthy duration, totals. The classification is checked on real
 * simulations, so it follows the state machine's event names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "canary/backtest.h"
#include "canary/status.h"

/* ---- classification, on real simulations ------------------------------ */

typedef struct world {
    cn_policy policy;
    cn_metric metric;
    cn_plan plan;
    cn_trace trace;
    cn_sim_result res;
} world;

/* One metric, max 1%, polled every second; stages of 2 s at 10% and
 * 100%, or one at 100% gated for approval. */
typedef struct setup_opts {
    bool pause; /* on_failure: pause */
    bool gate;  /* AI-assisted, stage 1 needs an approval */
} setup_opts;

static void simulate(world *w, const char *csv, setup_opts o)
{
    memset(w, 0, sizeof *w);
    cn_policy_defaults(&w->policy);
    w->policy.name = "t";
    w->metric = (cn_metric){.name = "err", .threshold = {.has_max = true, .max = 0.01}};
    w->policy.analysis.metrics = &w->metric;
    w->policy.analysis.metric_count = 1;
    w->policy.analysis.interval_ms = 1000;
    w->policy.analysis.on_failure = o.pause ? CN_ON_PAUSE : CN_ON_ROLLBACK;
    w->policy.plan.min_samples = 1;
    w->plan.stage_count = o.gate ? 1 : 2;
    w->plan.stages[0] = (cn_stage){.index = 1, .weight = o.gate ? 1 : 0.1, .bake_ms = 2000,
                                   .approval = o.gate};
    w->plan.stages[1] = (cn_stage){.index = 2, .weight = 1, .bake_ms = 2000};
    cn_diags d;
    cn_diags_init(&d);
    assert_int_equal(cn_trace_parse(&w->trace, "t.csv", csv, strlen(csv), &d), CN_OK);
    assert_int_equal(cn_trace_bind(&w->trace, &w->policy, &d), CN_OK);
    cn_diags_free(&d);
    cn_sim_config cfg = {.plan = &w->plan, .policy = &w->policy, .reach = 1,
                         .ai_assisted = o.gate, .trace = &w->trace, .hold_ms = 0};
    char err[128];
    assert_int_equal(cn_simulate(&cfg, &w->res, err, sizeof err), CN_OK);
}

static void done(world *w)
{
    cn_sim_result_free(&w->res);
    cn_trace_free(&w->trace);
    cn_arena_free(&w->policy.arena);
}

static void test_classify(void **state)
{
    (void)state;
    world w;
    cn_bt_case c;
    simulate(&w, "seconds,metric,value\n0,err,0.001\n", (setup_opts){0});
    cn_bt_classify(&w.res, &c);
    assert_int_equal(c.cls, CN_BT_PROMOTED);
    assert_string_equal(c.outcome, "completed");
    assert_int_equal(c.exit_code, 0);
    assert_int_equal(c.stopped_ms, -1);
    assert_int_equal(c.duration_ms, 4000);
    done(&w);

    /* Stopped by the failed measurement at 3 s (stage 2 began at 2 s). */
    simulate(&w, "seconds,metric,value\n0,err,0.001\n2.5,err,0.2\n", (setup_opts){0});
    cn_bt_classify(&w.res, &c);
    assert_int_equal(c.cls, CN_BT_STOPPED);
    assert_string_equal(c.outcome, "rolled_back");
    assert_int_equal(c.exit_code, 3);
    assert_int_equal(c.stopped_ms, 3000);
    assert_true(c.impact > 0);
    done(&w);

    /* Paused for a person: caught too, at the pause. */
    simulate(&w, "seconds,metric,value\n0,err,0.2\n", (setup_opts){.pause = true});
    cn_bt_classify(&w.res, &c);
    assert_int_equal(c.cls, CN_BT_PAUSED);
    assert_string_equal(c.outcome, "paused");
    assert_int_equal(c.exit_code, -1);
    assert_int_equal(c.stopped_ms, 1000);
    done(&w);

    /* An approval gate nobody answers: undecided. */
    simulate(&w, "seconds,metric,value\n0,err,0.001\n", (setup_opts){.gate = true});
    cn_bt_classify(&w.res, &c);
    assert_int_equal(c.cls, CN_BT_UNDECIDED);
    assert_string_equal(c.outcome, "awaiting_approval");
    assert_int_equal(c.stopped_ms, -1);
    done(&w);
}

/* ---- adding up ------------------------------------------------------------ */

/* stop_s -1: no stopping decision. */
#define CASE(lbl, cl, stop_s, dur_s, imp)                                                   \
    {.label = CN_BT_##lbl, .cls = CN_BT_##cl,                                             \
     .stopped_ms = (stop_s) < 0 ? -1 : (int64_t)(stop_s) * 1000,                          \
     .duration_ms = (int64_t)(dur_s) * 1000, .exposure = 10, .impact = (imp)}

static void test_summarize(void **state)
{
    (void)state;
    /* Faults stopped at 30 s, 60 s, 90 s and 600 s (one paused), one missed,
     * one undecided; healthy: two promoted (10 and 20 min), one false
     * rollback, one undecided. */
    const cn_bt_case cases[] = {
        CASE(FAULTY, STOPPED, 60, 60, 1.5),   CASE(FAULTY, STOPPED, 30, 30, 0.5),
        CASE(FAULTY, PAUSED, 600, 900, 4),    CASE(FAULTY, STOPPED, 90, 90, 1),
        CASE(FAULTY, PROMOTED, -1, 1200, 30), CASE(FAULTY, UNDECIDED, -1, 3600, 2),
        CASE(HEALTHY, PROMOTED, -1, 600, 0),  CASE(HEALTHY, PROMOTED, -1, 1200, 0),
        CASE(HEALTHY, STOPPED, 120, 120, 0),  CASE(HEALTHY, UNDECIDED, -1, 3600, 0),
    };
    enum { N = sizeof cases / sizeof cases[0] };
    int64_t scratch[N];
    cn_bt_summary s;
    cn_bt_summarize(cases, N, scratch, &s);
    assert_int_equal(s.cases, 10);
    assert_int_equal(s.faulty, 6);
    assert_int_equal(s.caught, 4);
    assert_int_equal(s.missed, 1);
    assert_int_equal(s.undecided_faults, 1);
    assert_int_equal(s.healthy, 4);
    assert_int_equal(s.false_rollbacks, 1);
    assert_int_equal(s.promoted_healthy, 2);
    assert_int_equal(s.undecided_healthy, 1);
    assert_true(fabs(s.mean_detect_s - (30 + 60 + 90 + 600) / 4.0) < 1e-9);
    /* Nearest rank: ceil(0.95 x 4) = 4th of 30, 60, 90, 600. */
    assert_true(s.p95_detect_s == 600);
    assert_true(fabs(s.mean_healthy_s - 900) < 1e-9);
    assert_true(fabs(s.total_impact - 39) < 1e-9);
    assert_true(fabs(s.total_exposure - 100) < 1e-9);

    /* p95 of 20 times 1..20 s is the 19th. */
    cn_bt_case many[20];
    for (int i = 0; i < 20; i++)
        many[i] = (cn_bt_case)CASE(FAULTY, STOPPED, 20 - i, 20 - i, 0);
    int64_t scratch20[20];
    cn_bt_summarize(many, 20, scratch20, &s);
    assert_true(s.p95_detect_s == 19);
    assert_true(fabs(s.mean_detect_s - 10.5) < 1e-9);

    /* Nothing caught, nothing promoted: no times at all. */
    const cn_bt_case none[] = {CASE(FAULTY, PROMOTED, -1, 60, 3),
                               CASE(HEALTHY, STOPPED, 10, 10, 0)};
    cn_bt_summarize(none, 2, scratch, &s);
    assert_int_equal(s.missed, 1);
    assert_int_equal(s.false_rollbacks, 1);
    assert_true(isnan(s.mean_detect_s) && isnan(s.p95_detect_s) && isnan(s.mean_healthy_s));
    cn_bt_summarize(NULL, 0, scratch, &s);
    assert_int_equal(s.cases, 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cn_bt_label_name(CN_BT_FAULTY), "faulty");
    assert_string_equal(cn_bt_label_name(CN_BT_HEALTHY), "healthy");
    assert_string_equal(cn_bt_class_name(CN_BT_PROMOTED), "promoted");
    assert_string_equal(cn_bt_class_name(CN_BT_STOPPED), "stopped");
    assert_string_equal(cn_bt_class_name(CN_BT_PAUSED), "paused");
    assert_string_equal(cn_bt_class_name(CN_BT_UNDECIDED), "undecided");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_summarize),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
