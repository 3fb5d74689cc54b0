/* canary simulate's models of burn-rate and judged metrics: what a burn
 * rate's window queries and a judged metric's range queries read from a
 * trace under the weights the rollout served (values worked out by hand),
 * and whole rollouts: a healthy burn passes, 5% errors against a 99.9%
 * SLO roll back at the poll the scaled windows predict; a noisy healthy
 * latency is promoted, one 40% higher rolled back, a provider error is an
 * error, a trace of nan never promotes; impact and the pictures' samples
 * for both kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/simulate.h"
#include "canary/status.h"
#include "checks.h"
#include "proc.h"

#define assert_near(got, want, eps)                                                 \
    do {                                                                           \
        double got_ = (got), want_ = (want);                                       \
        if (!(fabs(got_ - want_) <= (eps))) {                                      \
            print_error("%s is %.17g, expected %.17g\n", #got, got_, want_);        \
            fail();                                                                \
        }                                                                          \
    } while (0)

/* ---- fixture ------------------------------------------------------------ */

typedef struct world {
    cn_policy policy;
    cn_metric metrics[2];
    cn_plan plan;
    cn_trace trace;
    bool have_trace;
    cn_diags diags;
    cn_sim_config cfg;
    cn_sim_result res;
    char events[65536]; /* "SECONDS TYPE: DETAIL" lines */
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    cn_policy_defaults(&w->policy);
    w->policy.name = "t";
    w->policy.analysis.metrics = w->metrics;
    w->policy.analysis.metric_count = 1;
    w->policy.plan.min_samples = 1;
    static const double weights[] = {0.1, 0.5, 1.0};
    w->plan.stage_count = 3;
    w->plan.reach = 1;
    for (unsigned i = 0; i < 3; i++)
        w->plan.stages[i] = (cn_stage){.index = i + 1, .weight = weights[i]};
    w->cfg = (cn_sim_config){.plan = &w->plan, .policy = &w->policy, .author = "alice",
                             .reach = 1, .trace = &w->trace, .hold_ms = -1};
    cn_diags_init(&w->diags);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    if (w->have_trace)
        cn_trace_free(&w->trace);
    cn_sim_result_free(&w->res);
    cn_diags_free(&w->diags);
    free(w);
    return 0;
}

static void bake(world *w, int64_t ms)
{
    w->plan.bake_ms = ms;
    for (unsigned i = 0; i < w->plan.stage_count; i++)
        w->plan.stages[i].bake_ms = ms;
}

/* A burn-rate metric: the workbook's pairs, or one pair. */
static void burn_metric(world *w, const cn_burn_window *pair)
{
    w->metrics[0] = (cn_metric){.name = "availability",
                                .burn = {.enabled = true, .slo = 0.999, .scale_to_bake = true,
                                         .errors = "e[{{window}}]", .total = "t[{{window}}]"}};
    if (pair) {
        static cn_burn_window one;
        one = *pair;
        w->metrics[0].burn.windows = &one;
        w->metrics[0].burn.window_count = 1;
    }
}

/* A judged latency: higher fails, by 10% or more; a sample a second. */
static void judged_metric(world *w)
{
    cn_judge_config c = cn_judge_defaults();
    c.direction = CN_DIRECTION_INCREASE;
    c.allowed_increase = 1.1;
    w->metrics[0] = (cn_metric){.name = "latency",
                                .judge = {.enabled = true, .config = c, .step_ms = 1000}};
}

static void load(world *w, const char *csv)
{
    if (w->have_trace)
        cn_trace_free(&w->trace);
    w->have_trace = true;
    int rc = cn_trace_parse(&w->trace, "trace.csv", csv, strlen(csv), &w->diags);
    if (rc == CN_OK)
        rc = cn_trace_bind(&w->trace, &w->policy, &w->diags);
    if (rc != CN_OK)
        cn_test_print_diags(&w->diags);
    assert_int_equal(rc, CN_OK);
}

static void simulate(world *w)
{
    cn_sim_result_free(&w->res);
    char err[256] = "";
    assert_int_equal(cn_simulate(&w->cfg, &w->res, err, sizeof err), CN_OK);
    size_t n = 0;
    w->events[0] = '\0';
    for (size_t i = 0; i < w->res.event_count && n < sizeof w->events; i++)
        n += (size_t)snprintf(w->events + n, sizeof w->events - n, "%g %s: %s\n",
                              (double)w->res.events[i].at_ms / 1000, w->res.events[i].type,
                              w->res.events[i].detail);
}

/* The decisions only, "SECONDS TYPE" a line. */
static const char *decisions(const world *w)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < w->res.event_count && n < sizeof buf; i++) {
        const char *t = w->res.events[i].type;
        if (strcmp(t, "measurement") && strcmp(t, "late_measurement"))
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%g %s\n",
                                  (double)w->res.events[i].at_ms / 1000, t);
    }
    return buf;
}

/* A latency trace, a row a second for n seconds: the canary around
 * canary_ms, the baseline around 100 until second moved and around
 * moved_ms after it, each with its own noise of up to +-3 ms (the same
 * every run). */
static char *moving_trace(size_t n, double canary_ms, size_t moved, double moved_ms)
{
    size_t cap = 64 + n * 64, used = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    used += (size_t)snprintf(csv, cap, "seconds,metric,value,baseline\n");
    unsigned x = 7;
    for (size_t i = 0; i < n; i++) {
        double v[2];
        for (int k = 0; k < 2; k++) {
            x = x * 1103515245u + 12345u;
            v[k] = (k ? i > moved ? moved_ms : 100 : canary_ms) +
                   (double)((x >> 16) % 61) / 10 - 3;
        }
        used += (size_t)snprintf(csv + used, cap - used, "%zu,latency,%.1f,%.1f\n", i, v[0],
                                 v[1]);
    }
    return csv;
}

static char *noisy_trace(size_t n, double canary_ms)
{
    return moving_trace(n, canary_ms, n, 100);
}

/* ---- reading windows ------------------------------------------------------ */

static void test_weight_at(void **state)
{
    (void)state;
    const cn_sim_step steps[] = {{0, 0}, {0, 0.1}, {4000, 0.5}, {9000, 0}};
    assert_near(cn_sim_weight_at(steps, 4, -1), 0, 0);
    assert_near(cn_sim_weight_at(steps, 4, 0), 0.1, 0); /* the later step at one instant */
    assert_near(cn_sim_weight_at(steps, 4, 3999), 0.1, 0);
    assert_near(cn_sim_weight_at(steps, 4, 4000), 0.5, 0);
    assert_near(cn_sim_weight_at(steps, 4, 100000), 0, 0);
    assert_near(cn_sim_weight_at(steps, 0, 5), 0, 0);
}

static void test_window(void **state)
{
    world *w = *state;
    burn_metric(w, NULL);
    /* 1% errors; 10% from 5 s on, but only at 50% of traffic or more */
    load(w, "seconds,metric,value,weight_at_least\n0,availability,0.01,\n"
            "5,availability,0.1,50\n");
    const cn_trace_series *s = &w->trace.series[0];
    assert_int_equal(cn_trace_next_row(s, 0), 5000);
    assert_int_equal(cn_trace_next_row(s, 4999), 5000);
    assert_int_equal(cn_trace_next_row(s, 5000), INT64_MAX);
    /* 10% until 4 s, 50% from then */
    const cn_sim_step steps[] = {{0, 0.1}, {4000, 0.5}};
    cn_reading e, t;
    /* [-2, 8]: 2 s before any row (not covered); 0..5 at 1%; 5..8 at 10% */
    cn_trace_window(&w->trace, 0, -2000, 8000, steps, 2, &e, &t);
    assert_int_equal(t.kind, CN_READING_VALUE);
    assert_near(t.value, 8, 1e-12);
    assert_near(e.value, 5 * 0.01 + 3 * 0.1, 1e-12);
    /* at 10% the whole time, the layer never holds */
    const cn_sim_step low[] = {{0, 0.1}};
    cn_trace_window(&w->trace, 0, 0, 8000, low, 1, &e, &t);
    assert_near(e.value / t.value, 0.01, 1e-12);
    /* the weight rose at 6 s: the layer holds from then, not from 5 s */
    const cn_sim_step late[] = {{0, 0.1}, {6000, 0.5}};
    cn_trace_window(&w->trace, 0, 4000, 8000, late, 2, &e, &t);
    assert_near(e.value, 2 * 0.01 + 2 * 0.1, 1e-12);
    assert_near(t.value, 4, 0);
    /* nothing covered: no data; before any row or reading nan */
    cn_trace_window(&w->trace, 0, -5000, -1000, steps, 2, &e, &t);
    assert_int_equal(t.kind, CN_READING_NODATA);
    assert_int_equal(e.kind, CN_READING_NODATA);
    load(w, "seconds,metric,value\n0,availability,nan\n3,availability,0.02\n"
            "6,availability,error\n");
    cn_trace_window(&w->trace, 0, 0, 3000, steps, 2, &e, &t);
    assert_int_equal(t.kind, CN_READING_NODATA);
    assert_string_equal(t.detail, "the trace has no value in the window");
    cn_trace_window(&w->trace, 0, 1000, 5000, steps, 2, &e, &t);
    assert_near(t.value, 2, 0); /* only 3..5 */
    assert_near(e.value, 0.04, 1e-12);
    /* an error in force at any instant: both errors */
    cn_trace_window(&w->trace, 0, 1000, 6001, steps, 2, &e, &t);
    assert_int_equal(e.kind, CN_READING_ERROR);
    assert_int_equal(t.kind, CN_READING_ERROR);
    assert_string_equal(t.detail, "the trace says error");
    cn_trace_window(&w->trace, 0, -5000, -1000, steps, 2, &e, &t);
    assert_int_equal(t.kind, CN_READING_NODATA);
    /* on equal times the later line; a window inside one row */
    load(w, "seconds,metric,value\n0,availability,0.01\n2,availability,0.02\n"
            "2,availability,0.04\n");
    cn_trace_window(&w->trace, 0, 1000, 3000, steps, 2, &e, &t);
    assert_near(e.value, 0.01 + 0.04, 1e-12);
    cn_trace_window(&w->trace, 0, 500, 1500, steps, 2, &e, &t);
    assert_near(e.value / t.value, 0.01, 1e-12);
    cn_trace_window(&w->trace, 0, 5000, 9000, steps, 2, &e, &t);
    assert_near(e.value / t.value, 0.04, 1e-12);
    /* a metric the trace does not name */
    w->policy.analysis.metric_count = 2;
    w->metrics[1] = (cn_metric){.name = "other"};
    cn_trace_window(&w->trace, 1, 0, 3000, steps, 2, &e, &t);
    assert_int_equal(t.kind, CN_READING_NODATA);
    assert_string_equal(t.detail, "the trace has no rows for it");
}

static void test_range(void **state)
{
    world *w = *state;
    judged_metric(w);
    load(w, "seconds,metric,value,baseline,weight_at_least\n0,latency,100,90,\n"
            "2,latency,nan,91,\n3,latency,103,,\n4,latency,104,94,\n5,latency,200,95,50\n");
    const cn_sim_step steps[] = {{0, 0.1}, {6000, 0.5}};
    cn_trace_samples out = {0};
    cn_reading r;
    /* start, start + step, ... up to end: 0 1 2 3 4 5 6 7 */
    assert_int_equal(cn_trace_range(&w->trace, 0, false, 0, 7500, 1000, steps, 2, &out, &r),
                     CN_OK);
    assert_int_equal(r.kind, CN_READING_VALUE);
    /* nan at 2 is no sample; the 50% layer only from 6 s, when 50% is served */
    static const double canary[] = {100, 100, 103, 104, 104, 200, 200};
    assert_int_equal(out.count, 7);
    for (size_t i = 0; i < 7; i++)
        assert_near(out.values[i], canary[i], 0);
    assert_near(r.value, 200, 0);
    /* the baseline column: 3 s gives none */
    assert_int_equal(cn_trace_range(&w->trace, 0, true, 1000, 5000, 2000, steps, 2, &out, &r),
                     CN_OK);
    assert_int_equal(out.count, 2);
    assert_near(out.values[0], 90, 0);
    assert_near(out.values[1], 94, 0); /* at 5 s 10% is served: not the 50% layer */
    /* before any row: nothing */
    assert_int_equal(cn_trace_range(&w->trace, 0, false, -3000, -1000, 1000, steps, 2, &out,
                                    &r), CN_OK);
    assert_int_equal(r.kind, CN_READING_NODATA);
    assert_int_equal(out.count, 0);
    assert_string_equal(r.detail, "the trace has no values in the window");
    assert_int_equal(cn_trace_range(&w->trace, 0, true, 3000, 3000, 1000, steps, 2, &out, &r),
                     CN_OK);
    assert_string_equal(r.detail, "the trace has no baseline values in the window");
    /* an error at one sample fails the query; +inf too */
    load(w, "seconds,metric,value,baseline\n0,latency,100,90\n2,latency,error,inf\n"
            "3,latency,100,90\n");
    assert_int_equal(cn_trace_range(&w->trace, 0, false, 0, 3000, 1000, steps, 2, &out, &r),
                     CN_OK);
    assert_int_equal(r.kind, CN_READING_ERROR);
    assert_int_equal(out.count, 0);
    assert_string_equal(r.detail, "the trace says error");
    assert_int_equal(cn_trace_range(&w->trace, 0, true, 0, 3000, 1000, steps, 2, &out, &r),
                     CN_OK);
    assert_int_equal(r.kind, CN_READING_ERROR);
    assert_string_equal(r.detail, "a sample is +Inf");
    /* ...but not when the step jumps over it */
    assert_int_equal(cn_trace_range(&w->trace, 0, false, 1000, 3000, 2000, steps, 2, &out, &r),
                     CN_OK);
    assert_int_equal(out.count, 2);
    free(out.values);
}

/* ---- burn rates --------------------------------------------------------- */

static void test_burn_healthy(void **state)
{
    world *w = *state;
    burn_metric(w, NULL);
    w->policy.analysis.interval_ms = 30000;
    bake(w, 600000);
    load(w, "seconds,metric,value\n0,availability,0.0002\n");
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n600 promoted\n"
                                      "600 stage_applied\n1200 promoted\n1200 stage_applied\n"
                                      "1800 promoted\n1800 completed\n");
    /* 10 m scaled from 6 h: 1h/5m -> 100s/60s (8 s raised to two polls),
     * 6h/30m -> 600s/60s; the ratio over the covered part of each */
    assert_contains(w->events, "30 measurement: stage 1: availability: pass: burn 0.2x over "
                               "100s and 0.2x over 1m, not both > 14.4x; 0.2x over 10m and "
                               "0.2x over 1m, not both > 6x: 0.02% errors over 10m against a "
                               "0.1% budget\n");
    assert_near(w->res.impact, 0, 0); /* 0.02% < the 0.1% budget */
}

static void test_burn_fault(void **state)
{
    world *w = *state;
    burn_metric(w, NULL);
    w->policy.analysis.interval_ms = 30000;
    bake(w, 600000);
    /* 5% errors from 200 s on, against a 99.9% SLO (budget 0.1%) */
    load(w, "seconds,metric,value\n0,availability,0\n200,availability,0.05\n");
    simulate(w);
    /* By hand, with the 100s/60s pair at 14.4x: at a poll at t the long
     * window holds t - 200 s of 5%, a burn of 50 (t - 200) / 100, the
     * short 50 (t - 200) / 60. At 210 s: 5x and 8.3x; at 240 s: 20x and
     * 33.3x, both over 14.4x: the first failure, stage 1, 240 s. */
    assert_contains(w->events, "210 measurement: stage 1: availability: pass: burn 5x over 100s "
                               "and 8.3x over 1m, not both > 14.4x;");
    assert_contains(w->events, "240 measurement: stage 1: availability: fail: burn 20x over 100s "
                               "and 33.3x over 1m > 14.4x: 2% errors against a 0.1% budget; 1 more "
                               "pair fires\n");
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n240 rolling_back\n"
                                      "240 rolled_back\n");
    assert_int_equal(w->res.exit_code, 3);
    /* the picture's sample: the deciding pair's min(b(long), b(short)) */
    const cn_sim_sample *last = &w->res.samples[w->res.sample_count - 1];
    assert_int_equal(last->at_ms, 240000);
    assert_int_equal(last->outcome, CN_OUTCOME_FAIL);
    assert_near(last->value, 20, 1e-9);
    assert_true(isnan(last->baseline));
    /* impact: 10% x 5% over 200..240 s */
    assert_near(w->res.impact, 100 * 0.1 * 0.05 * 40, 1e-9);
    assert_near(cn_sim_severity(&w->cfg, 100000, 0.1), 0, 0);
    assert_near(cn_sim_severity(&w->cfg, 200000, 0.1), 0.05, 0);
    /* above the 0.1% budget but under 6 x it (the smallest factor): no
     * pair could fire on it, nothing counted */
    load(w, "seconds,metric,value\n0,availability,0.0059\n10,availability,0.0061\n");
    assert_near(cn_sim_severity(&w->cfg, 0, 0.1), 0, 0);
    assert_near(cn_sim_severity(&w->cfg, 10000, 0.1), 0.0061, 0);

    /* a provider outage: errors, rolled back after three in a row */
    load(w, "seconds,metric,value\n0,availability,0\n45,availability,error\n");
    simulate(w);
    assert_contains(w->events, "60 measurement: stage 1: availability: error: errors over "
                               "100s: the trace says error\n");
    assert_contains(w->events, "120 rolling_back: rolling back for analysis: availability had "
                               "3 provider errors in a row");
    /* no traffic: no data, never promoted */
    load(w, "seconds,metric,value\n0,availability,nan\n");
    simulate(w);
    assert_contains(w->events, "30 measurement: stage 1: availability: no data: total over "
                               "100s: the trace has no value in the window\n");
    assert_int_equal(w->res.exit_code, 3);
    assert_null(strstr(w->events, "promoted"));
}

/* The windows are scaled to each stage's own bake, and read at the
 * weights served: a fault only under load counts from when the load
 * came. */
static void test_burn_under_load(void **state)
{
    world *w = *state;
    static const cn_burn_window pair = {.long_ms = 3600000, .short_ms = 300000, .factor = 14.4};
    burn_metric(w, &pair);
    w->policy.analysis.interval_ms = 1000;
    w->policy.plan.min_samples = 2;
    bake(w, 4000); /* 4s and 2s */
    load(w, "seconds,metric,value,weight_at_least\n0,availability,0.0002,\n"
            "0,availability,0.05,50\n");
    simulate(w);
    /* stage 2 from 4 s: at 5 s the 4 s window holds 3 s at 0.02% and 1 s
     * at 5%: 1.265%, 12.65x (shown as binary floating point holds them:
     * 12.6x, 1.26%); the 2 s window 2.51%, 25.1x: not both. At 6 s 2 s of
     * each: 2.51% and 5%: both. */
    assert_contains(w->events, "5 measurement: stage 2: availability: pass: burn 12.6x over 4s "
                               "and 25.1x over 2s, not both > 14.4x: 1.26% errors over 4s "
                               "against a 0.1% budget\n");
    assert_contains(w->events, "6 measurement: stage 2: availability: fail: burn 25.1x over 4s "
                               "and 50x over 2s > 14.4x: 2.51% errors against a 0.1% budget\n");
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n4 promoted\n"
                                      "4 stage_applied\n6 rolling_back\n6 rolled_back\n");
    /* a stage with its own bake: 8 s scales the pair to 8s and 2s */
    w->plan.stages[1].bake_ms = 8000;
    simulate(w);
    /* (the 8 s window is covered from 0 s: 4 s at 0.02%, 1 s at 5%) */
    assert_contains(w->events, "5 measurement: stage 2: availability: pass: burn 10.2x over 8s");
}

/* ---- judged metrics --------------------------------------------------- */

static void test_judged_healthy(void **state)
{
    world *w = *state;
    judged_metric(w);
    w->policy.analysis.interval_ms = 1000;
    bake(w, 5000);
    char *csv = noisy_trace(40, 100);
    load(w, csv);
    free(csv);
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n5 promoted\n"
                                      "5 stage_applied\n10 promoted\n10 stage_applied\n"
                                      "15 promoted\n15 completed\n");
    /* the stage so far, a sample a second: 2, 3, 4 a side are too few at
     * 98% confidence; 5 can show a difference */
    assert_contains(w->events, "1 measurement: stage 1: latency: no data: too few samples (2 "
                               "canary, 2 baseline; at 98% confidence the test needs 5 a side "
                               "to show a difference); score 0: 1 of 1 metrics without data, "
                               "inconclusive (the rest scores 100)\n");
    assert_contains(w->events, "4 measurement: stage 1: latency: pass: like the baseline");
    assert_contains(w->events, "5 and 5 samples); score 100 >= pass 95\n");
    /* the picture's sample is the score; nothing hurt */
    const cn_sim_sample *last = &w->res.samples[w->res.sample_count - 1];
    assert_near(last->value, 100, 0);
    assert_near(w->res.impact, 0, 0);
}

static void test_judged_regression(void **state)
{
    world *w = *state;
    judged_metric(w);
    w->policy.analysis.interval_ms = 1000;
    bake(w, 5000);
    char *csv = noisy_trace(40, 140);
    load(w, csv);
    free(csv);
    simulate(w);
    /* the first poll with 5 a side judges it high: rolled back at 4 s */
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n4 rolling_back\n"
                                      "4 rolled_back\n");
    assert_contains(w->events, "4 measurement: stage 1: latency: fail: high (estimate +");
    assert_contains(w->events, "5 and 5 samples); score 0 < marginal 75\n");
    assert_int_equal(w->res.exit_code, 3);
    const cn_sim_sample *last = &w->res.samples[w->res.sample_count - 1];
    assert_int_equal(last->outcome, CN_OUTCOME_FAIL);
    assert_near(last->value, 0, 0);
    /* every instant is 30% or more above the baseline: all of 10% x 4 s hurt */
    assert_near(w->res.impact, 100 * 0.1 * 4, 1e-9);
    assert_near(cn_sim_severity(&w->cfg, 2000, 0.1), 1, 0);
}

static void test_judged_error_and_nan(void **state)
{
    world *w = *state;
    judged_metric(w);
    w->policy.analysis.interval_ms = 1000;
    bake(w, 5000);
    /* the provider failed at 2 s: every window from then on holds it */
    load(w, "seconds,metric,value,baseline\n0,latency,100,100\n1,latency,101,99\n"
            "2,latency,error,100\n3,latency,100,101\n");
    simulate(w);
    assert_contains(w->events, "2 measurement: stage 1: latency: error: canary samples: the "
                               "trace says error\n");
    assert_contains(w->events, "4 rolling_back: rolling back for analysis: latency had 3 "
                               "provider errors in a row");
    /* nothing but nan: no samples, no data, never promoted */
    load(w, "seconds,metric,value,baseline\n0,latency,nan,nan\n");
    simulate(w);
    assert_contains(w->events, "1 measurement: stage 1: latency: no data: no canary samples "
                               "(the trace has no values in the window)");
    assert_null(strstr(w->events, "promoted"));
    assert_null(strstr(w->events, ": pass:"));
    assert_string_equal(decisions(w), "0 started\n0 stage_applied\n15 rolling_back\n"
                                      "15 rolled_back\n");
    assert_near(w->res.impact, 0, 0);
}

/* At 100% the baseline is read from before the switch, as long a window
 * as the canary's: a baseline that changes at the switch is not seen. */
static void test_judged_full_stage(void **state)
{
    world *w = *state;
    judged_metric(w);
    w->policy.analysis.interval_ms = 1000;
    bake(w, 5000);
    /* after 10 s (the switch to 100%) the previous version reads 50 ms:
     * judged side by side, the canary would be twice as slow */
    char *csv = moving_trace(40, 100, 10, 50);
    load(w, csv);
    free(csv);
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_contains(w->events, "14 measurement: stage 3: latency: pass: like the baseline");
    /* ...while a baseline at 50 ms from 5 s on, where stage 2 is judged
     * side by side, is seen */
    csv = moving_trace(40, 100, 4, 50);
    load(w, csv);
    free(csv);
    simulate(w);
    assert_contains(w->events, "9 measurement: stage 2: latency: fail: high");
}

static void test_judged_severity(void **state)
{
    world *w = *state;
    judged_metric(w);
    load(w, "seconds,metric,value,baseline\n0,latency,109,100\n1,latency,110,100\n"
            "2,latency,90,100\n3,latency,120,\n");
    /* higher by the allowed 10% or more hurts; less, or lower, does not */
    assert_near(cn_sim_severity(&w->cfg, 0, 0.1), 0, 0);
    assert_near(cn_sim_severity(&w->cfg, 1000, 0.1), 1, 0);
    assert_near(cn_sim_severity(&w->cfg, 2000, 0.1), 0, 0);
    assert_near(cn_sim_severity(&w->cfg, 3000, 0.1), 0, 0); /* no baseline to compare */
    w->metrics[0].judge.config.direction = CN_DIRECTION_EITHER;
    w->metrics[0].judge.config.allowed_decrease = 0.9;
    assert_near(cn_sim_severity(&w->cfg, 2000, 0.1), 1, 0);
    /* cles: one pair is 1, 1/2 or 0 */
    w->metrics[0].judge.config.effect = CN_EFFECT_CLES;
    w->metrics[0].judge.config.allowed_increase = 0.7;
    w->metrics[0].judge.config.allowed_decrease = NAN;
    assert_near(cn_sim_severity(&w->cfg, 0, 0.1), 1, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_weight_at),         T(test_window),           T(test_range),
        T(test_burn_healthy),      T(test_burn_fault),       T(test_burn_under_load),
        T(test_judged_healthy),    T(test_judged_regression), T(test_judged_error_and_nan),
        T(test_judged_full_stage), T(test_judged_severity),
    };
    return cmocka_run_group_tests_name("simulate models", tests, NULL, NULL);
}
