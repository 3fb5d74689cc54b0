/* canary simulate's core: traces (CSV parsing with FILE:LINE:COLUMN
 * errors, weight layers, lookups) and rollouts on the virtual clock, each
 * scenario checked event by event with its virtual time: healthy to
 * completion, a sudden fault, a fault only at 50%, a flaky metric under
 * two policies, no data until max_bake (rollback and pause), provider
 * errors, baselines (and the 100% stage judged alone), min_requests, an
 * AI change stopped at its approval gate (bound, timeout), actuator time,
 * and exposure and impact worked out by hand. */
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

/* ---- fixture ------------------------------------------------------------ */

#define assert_near(got, want, eps)                                                 \
    do {                                                                           \
        double got_ = (got), want_ = (want);                                       \
        if (!(fabs(got_ - want_) <= (eps))) {                                      \
            print_error("%s is %.17g, expected %.17g\n", #got, got_, want_);        \
            fail();                                                                \
        }                                                                          \
    } while (0)

typedef struct world {
    cn_policy policy;
    cn_metric metrics[3];
    cn_plan plan;
    cn_trace trace;
    bool have_trace;
    cn_diags diags;
    cn_sim_config cfg;
    cn_sim_result res;
    char events[16384]; /* "SECONDS TYPE: DETAIL" lines */
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    cn_policy_defaults(&w->policy);
    w->policy.name = "t";
    w->metrics[0] = (cn_metric){.name = "err", .threshold = {.has_max = true, .max = 0.01}};
    w->metrics[1] = (cn_metric){.name = "p99", .threshold = {.has_max = true, .max = 400}};
    w->policy.analysis.metrics = w->metrics;
    w->policy.analysis.metric_count = 1;
    w->policy.analysis.interval_ms = 1000;
    w->policy.plan.min_samples = 1;
    static const double weights[] = {0.1, 0.5, 1.0};
    w->plan.stage_count = 3;
    w->plan.reach = 1;
    for (unsigned i = 0; i < 3; i++)
        w->plan.stages[i] = (cn_stage){.index = i + 1, .weight = weights[i], .bake_ms = 2000};
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
    cn_arena_free(&w->policy.arena);
    free(w);
    return 0;
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

/* Only "SECONDS TYPE" of each event, one a line. */
static const char *kinds(const world *w)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < w->res.event_count && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%g %s\n",
                              (double)w->res.events[i].at_ms / 1000, w->res.events[i].type);
    return buf;
}

/* ---- traces ------------------------------------------------------------- */

static void test_trace_layers(void **state)
{
    world *w = *state;
    load(w, "# a fault that shows from 50% on, and only after 10 s\n"
            "seconds, metric, value, weight_at_least\n"
            "0,err,0.001,\n"
            "10,err,0.2,50%\n"
            "\n"
            "20,err,0.002,\n"
            "30,err,0.001,50\n"
            "20,err,0.003,\n");
    const cn_trace_series *s = &w->trace.series[0];
    assert_int_equal(w->trace.count, 1);
    assert_int_equal(w->trace.end_ms, 30000);
    assert_int_equal(w->trace.of_metric[0], 0);
    /* Before the first row: nothing. */
    load(w, "seconds,metric,value\n5,err,0.001\n");
    s = &w->trace.series[0];
    assert_null(cn_trace_at(s, 4999, 1));
    assert_non_null(cn_trace_at(s, 5000, 1));
    load(w, "seconds,metric,value,weight_at_least\n0,err,0.001,\n10,err,0.2,50%\n"
            "20,err,0.002,\n30,err,0.001,50\n20,err,0.003,\n");
    s = &w->trace.series[0];
    assert_near(cn_trace_at(s, 9000, 1)->value, 0.001, 0);
    /* The 50% layer from 10 s on, while the weight is at least 50%. */
    assert_near(cn_trace_at(s, 10000, 0.5)->value, 0.2, 0);
    assert_near(cn_trace_at(s, 10000, 0.1)->value, 0.001, 0);
    /* A later base row does not end the 50% layer: its own row does. */
    assert_near(cn_trace_at(s, 25000, 0.5)->value, 0.2, 0);
    assert_near(cn_trace_at(s, 25000, 0.49)->value, 0.003, 0); /* later line wins */
    assert_near(cn_trace_at(s, 30000, 1)->value, 0.001, 0);
    assert_int_equal(cn_trace_at(s, 30000, 1)->line, 5);

    /* A spreadsheet's byte order mark and line ends. */
    load(w, "\xEF\xBB\xBFseconds,metric,value\r\n0,err,0.25\r\n");
    assert_near(cn_trace_at(&w->trace.series[0], 0, 0)->value, 0.25, 0);

    cn_reading c, b;
    load(w, "value,baseline,metric,seconds\nnan,0.004,err,0\nerror,,err,5\ninf,error,err,6\n");
    cn_trace_reading(&w->trace, 0, 0, 0.1, &c, &b);
    assert_int_equal(c.kind, CN_READING_VALUE);
    assert_true(isnan(c.value));
    assert_int_equal(b.kind, CN_READING_VALUE);
    assert_near(b.value, 0.004, 0);
    cn_trace_reading(&w->trace, 0, 5000, 0.1, &c, &b);
    assert_int_equal(c.kind, CN_READING_ERROR);
    assert_int_equal(b.kind, CN_READING_NODATA);
    cn_trace_reading(&w->trace, 0, 6000, 0.1, &c, &b);
    assert_true(isinf(c.value) && c.value > 0);
    assert_int_equal(b.kind, CN_READING_ERROR);
    /* A metric the trace never names reads no data. */
    w->policy.analysis.metric_count = 2;
    cn_trace_reading(&w->trace, 1, 0, 0.1, &c, &b);
    assert_int_equal(c.kind, CN_READING_NODATA);
}

typedef struct bad_trace {
    const char *csv;
    const char *where; /* "trace.csv:LINE:COL" */
    const char *message;
} bad_trace;

static void test_trace_errors(void **state)
{
    world *w = *state;
    static const bad_trace cases[] = {
        {"seconds,metric,value\n0,err,abc\n", "trace.csv:2:7",
         "'value' expects a number, nan, inf or error, got 'abc'"},
        {"seconds,metric,value\n-1,err,0\n", "trace.csv:2:1",
         "'seconds' expects a number of seconds from the start, at least 0, got '-1'"},
        {"seconds,metric,value\n1s,err,0\n", "trace.csv:2:1", "got '1s'"},
        {"seconds,metric,vaule\n", "trace.csv:1:16",
         "unknown column 'vaule' (did you mean 'value'?)"},
        {"seconds,metric,value\n", NULL, NULL},
        {"seconds,metric\n0,err\n", "trace.csv:1:1", "the header has no 'value' column"},
        {"seconds,metric,value,metric\n", "trace.csv:1:22", "column 'metric' appears twice"},
        {"# nothing\n\n", "trace.csv", "the trace is empty"},
        {"seconds,metric,value\n0,err\n", "trace.csv:2:1", "the row has 2 fields, the header "
                                                            "names 3"},
        {"seconds,metric,value\n0,,1\n", "trace.csv:2:3", "'metric' is empty"},
        {"seconds,metric,value\n0,err,\n", "trace.csv:2:7", "'value' is empty; write nan"},
        {"seconds,metric,value,weight_at_least\n0,err,1,150%\n", "trace.csv:2:9",
         "'weight_at_least' expects a percentage of traffic from 0 to 100"},
        {"seconds,metric,value,baseline\n0,err,1,x\n", "trace.csv:2:9", "'baseline' expects"},
        {"seconds,metric,value\n99999999,err,1\n", "trace.csv:2:1", "at most 31536000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_diags d;
        cn_diags_init(&d);
        cn_trace t;
        int rc = cn_trace_parse(&t, "trace.csv", cases[i].csv, strlen(cases[i].csv), &d);
        if (!cases[i].where) {
            assert_int_equal(rc, CN_OK); /* a header and no rows is a trace */
        } else {
            assert_int_equal(rc, CN_EINVAL);
            char line[512];
            snprintf(line, sizeof line, "%s", d.items[0].file);
            if (d.items[0].line)
                snprintf(line + strlen(line), sizeof line - strlen(line), ":%u:%u",
                         d.items[0].line, d.items[0].col);
            assert_string_equal(line, cases[i].where);
            assert_contains(d.items[0].message, cases[i].message);
        }
        cn_trace_free(&t);
        cn_diags_free(&d);
    }
    /* Every problem, not only the first. */
    cn_diags d;
    cn_diags_init(&d);
    cn_trace t;
    const char *csv = "seconds,metric,value\nx,err,1\n1,err,y\n2,err,0.1\n";
    assert_int_equal(cn_trace_parse(&t, "trace.csv", csv, strlen(csv), &d), CN_EINVAL);
    assert_int_equal(d.count, 2);
    cn_trace_free(&t);
    cn_diags_free(&d);

    /* Names are checked against the policy. */
    csv = "seconds,metric,value\n0,err,0\n0,  eror,1\n0,requests,5\n";
    cn_diags_init(&d);
    assert_int_equal(cn_trace_parse(&t, "trace.csv", csv, strlen(csv), &d), CN_OK);
    assert_int_equal(cn_trace_bind(&t, &w->policy, &d), CN_EINVAL);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.items[0].line, 3);
    assert_int_equal(d.items[0].col, 5);
    assert_string_equal(d.items[0].message,
                        "unknown metric 'eror' (did you mean 'err'?); policy 't' has: err");
    assert_contains(d.items[1].message, "'requests' stands for the min_requests query, but "
                                        "policy 't' has no analysis.min_requests");
    cn_diags_free(&d);
    cn_diags_init(&d);
    w->policy.analysis.min_requests.count = 100;
    assert_int_equal(cn_trace_bind(&t, &w->policy, &d), CN_EINVAL);
    assert_int_equal(d.count, 1);
    assert_contains(d.items[0].message, "policy 't' has: err, requests");
    cn_trace_free(&t);
    cn_diags_free(&d);
}

/* ---- rollouts ----------------------------------------------------------- */

static void test_healthy(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,0.001\n");
    simulate(w);
    assert_string_equal(
        w->events,
        "0 started: 3 stages to 100%, first 10%; author 'alice'\n"
        "0 stage_applied: stage 1 of 3 serves 10%; baking 2s\n"
        "1 measurement: stage 1: err: pass: 0.001 within [-, 0.01]\n"
        "2 promoted: stage 1 passed its analysis: baked 2s of 2s; every metric has 1 or more "
        "passing samples (1 needed)\n"
        "2 stage_applied: stage 2 of 3 serves 50%; baking 2s\n"
        "3 measurement: stage 2: err: pass: 0.001 within [-, 0.01]\n"
        "4 promoted: stage 2 passed its analysis: baked 2s of 2s; every metric has 1 or more "
        "passing samples (1 needed)\n"
        "4 stage_applied: stage 3 of 3 serves 100%; baking 2s\n"
        "5 measurement: stage 3: err: pass: 0.001 within [-, 0.01]\n"
        "6 promoted: stage 3 passed its analysis: baked 2s of 2s; every metric has 1 or more "
        "passing samples (1 needed)\n"
        "6 completed: the new version serves 100% after stage 3\n");
    assert_string_equal(cn_sim_outcome(&w->res), "completed");
    assert_true(w->res.finished);
    assert_false(w->res.bounded);
    assert_int_equal(w->res.exit_code, 0);
    assert_int_equal(w->res.duration_ms, 6000);
    assert_near(w->res.max_weight, 1, 0);
    /* 10% x 2 s + 50% x 2 s + 100% x 2 s, and nothing hurt. */
    assert_near(w->res.exposure, 320, 1e-9);
    assert_near(w->res.impact, 0, 0);
    assert_int_equal(w->res.sample_count, 3);
    /* Stage 1 is applied at the instant the clock starts. */
    assert_int_equal(w->res.step_count, 3);
    assert_int_equal(w->res.steps[0].at_ms, 0);
    assert_near(w->res.steps[0].weight, 0.1, 0);
    assert_int_equal(w->res.steps[2].at_ms, 4000);

    /* Two samples per stage: the timer at the end of the bake finds one, and
     * extends; the poll at that same instant brings the second. */
    w->policy.plan.min_samples = 2;
    simulate(w);
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n2 measurement\n"
                                  "2 promoted\n2 stage_applied\n3 measurement\n4 measurement\n"
                                  "4 promoted\n4 stage_applied\n5 measurement\n6 measurement\n"
                                  "6 promoted\n6 completed\n");

    /* Deterministic. */
    char first[sizeof w->events];
    memcpy(first, w->events, sizeof first);
    simulate(w);
    assert_string_equal(w->events, first);
}

static void test_sudden_fault(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,0.001\n0.5,err,0.3\n");
    simulate(w);
    assert_string_equal(w->events,
                        "0 started: 3 stages to 100%, first 10%; author 'alice'\n"
                        "0 stage_applied: stage 1 of 3 serves 10%; baking 2s\n"
                        "1 measurement: stage 1: err: fail: 0.3 > max 0.01\n"
                        "1 rolling_back: rolling back for analysis: err failed 1 time, more "
                        "than failure_limit 0\n"
                        "1 rolled_back: rolled back after analysis; previous version serves "
                        "100%\n");
    assert_int_equal(w->res.exit_code, 3);
    assert_string_equal(cn_sim_outcome(&w->res), "rolled_back");
    assert_near(w->res.max_weight, 0.1, 0);
    /* 10% x 1 s; hurt from 0.5 s: 10% x 0.3 x 0.5 s. */
    assert_near(w->res.exposure, 10, 1e-9);
    assert_near(w->res.impact, 1.5, 1e-9);
}

static void test_fault_under_load(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value,weight_at_least\n0,err,0.001,\n0,err,0.5,50\n");
    simulate(w);
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n2 promoted\n"
                                  "2 stage_applied\n3 measurement\n3 rolling_back\n"
                                  "3 rolled_back\n");
    assert_contains(w->events, "3 measurement: stage 2: err: fail: 0.5 > max 0.01\n");
    assert_near(w->res.max_weight, 0.5, 0);
    /* 10% x 2 s + 50% x 1 s; hurt: 50% x 0.5 x 1 s. With reach 40%, 40% of that. */
    assert_near(w->res.exposure, 70, 1e-9);
    assert_near(w->res.impact, 25, 1e-9);
    w->cfg.reach = 0.4;
    simulate(w);
    assert_near(w->res.impact, 10, 1e-9);
}

static void test_flaky(void **state)
{
    world *w = *state;
    /* Fails every other second. */
    char csv[2048] = "seconds,metric,value\n";
    for (int t = 0; t < 40; t++)
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%d,err,%s\n", t,
                 t % 2 ? "0.001" : "0.05");
    load(w, csv);
    for (unsigned i = 0; i < 3; i++)
        w->plan.stages[i].bake_ms = 4000;
    simulate(w);
    /* failure_limit 0: the first failed sample (at 2 s) rolls back. */
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n2 measurement\n"
                                  "2 rolling_back\n2 rolled_back\n");
    /* Tolerating two isolated failures a stage, it completes; failures in a
     * row never come. */
    w->policy.analysis.failure_limit = 2;
    w->policy.analysis.consecutive_failure_limit = 2;
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_int_equal(w->res.duration_ms, 12000);
    assert_int_equal(cn_test_count(w->events, " measurement: "), 9);
    /* Two in a row: the flake turns into an outage at 5 s. */
    load(w, "seconds,metric,value\n0,err,0.001\n2,err,0.05\n3,err,0.001\n5,err,0.05\n");
    simulate(w);
    assert_contains(w->events, "6 rolling_back: rolling back for analysis: err failed 2 times in "
                               "a row (consecutive_failure_limit 2)\n");
}

static void test_no_data(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,nan\n");
    simulate(w);
    /* max_bake: 3 x 2 s; the timer at 6 s comes before that instant's poll. */
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n2 measurement\n"
                                  "3 measurement\n4 measurement\n5 measurement\n"
                                  "6 rolling_back\n6 rolled_back\n");
    assert_contains(w->events, "1 measurement: stage 1: err: no data: value is NaN\n");
    assert_contains(w->events, "6 rolling_back: rolling back for analysis: max_bake 6s reached; "
                               "err has 0 of 1 passing samples (5 without data)\n");
    assert_int_equal(w->res.exit_code, 3);

    /* on_inconclusive: pause. Nothing happens after: followed for the hold
     * (the longest max_bake, 6 s) past the pause, then left paused. */
    w->policy.analysis.on_inconclusive = CN_ON_PAUSE;
    simulate(w);
    assert_contains(w->events, "6 paused: paused at stage 1: max_bake 6s reached");
    assert_string_equal(cn_sim_outcome(&w->res), "paused");
    assert_false(w->res.finished);
    assert_true(w->res.bounded);
    assert_int_equal(w->res.exit_code, -1);
    assert_int_equal(w->res.duration_ms, 12000);
    assert_string_equal(w->res.note, "still paused at stage 1 after 6s: nobody resumes or "
                                     "aborts in a simulation; a person must act");
    /* The paused canary keeps serving: 10% x 12 s. */
    assert_near(w->res.exposure, 120, 1e-9);
    w->cfg.hold_ms = 60000;
    simulate(w);
    assert_int_equal(w->res.duration_ms, 66000);
    /* No trace row at all: the same, "the trace has no rows for it". */
    load(w, "seconds,metric,value\n");
    w->cfg.hold_ms = 0;
    simulate(w);
    assert_contains(w->events, "1 measurement: stage 1: err: no data: the trace has no rows "
                               "for it\n");
    assert_int_equal(w->res.duration_ms, 6000);
}

static void test_provider_errors(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,0.001\n2.5,err,error\n");
    simulate(w);
    /* consecutive_error_limit 3: errors at 3, 4, 5 s (stage 2 started at 2 s). */
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n2 promoted\n"
                                  "2 stage_applied\n3 measurement\n4 measurement\n"
                                  "5 measurement\n5 rolling_back\n5 rolled_back\n");
    assert_contains(w->events, "3 measurement: stage 2: err: error: the trace says error\n");
    assert_contains(w->events, "err had 3 provider errors in a row (consecutive_error_limit 3)");
    /* An error is not a fault of the canary: nothing is counted as hurt. */
    assert_near(w->res.impact, 0, 0);
}

static void test_baseline(void **state)
{
    world *w = *state;
    w->metrics[0].baseline = (cn_baseline){.enabled = true, .max_increase = 0.2};
    load(w, "seconds,metric,value,baseline\n0,err,0.004,0.004\n");
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_contains(w->events, "1 measurement: stage 1: err: pass: 0.004 within [-, 0.01]; "
                               "0.004 <= baseline 0.004 x 1.2 + 0 = 0.0048\n");
    /* At 100% the previous version serves nothing: the threshold alone. */
    assert_contains(w->events, "5 measurement: stage 3: err: pass: 0.004 within [-, 0.01] (no "
                               "baseline: the previous version serves no traffic at 100%)\n");

    /* Within the threshold, over the baseline: a failure, and harm. */
    load(w, "seconds,metric,value,baseline\n0,err,0.009,0.004\n");
    simulate(w);
    assert_contains(w->events, "1 measurement: stage 1: err: fail: 0.009 > baseline 0.004 x "
                               "1.2 + 0 = 0.0048\n");
    assert_int_equal(w->res.exit_code, 3);
    assert_near(w->res.impact, 10 * 0.009, 1e-9);

    /* A row without a baseline: no data for the previous version. */
    load(w, "seconds,metric,value,baseline\n0,err,0.004,\n");
    w->cfg.hold_ms = 0;
    simulate(w);
    assert_contains(w->events, "stage 1: err: no data: baseline: the trace row gives no "
                               "baseline\n");
}

static void test_min_requests(void **state)
{
    world *w = *state;
    w->policy.analysis.min_requests.count = 100;
    load(w, "seconds,metric,value\n0,err,0.001\n0,requests,40\n1.5,requests,150\n");
    simulate(w);
    /* Each poll: the metric, then the count. At 2 s the bake is over but
     * the timer finds 40 requests; the poll at 2 s brings 150. */
    assert_string_equal(kinds(w), "0 started\n0 stage_applied\n1 measurement\n1 requests\n"
                                  "2 measurement\n2 requests\n2 promoted\n2 stage_applied\n"
                                  "3 measurement\n3 requests\n4 promoted\n4 stage_applied\n"
                                  "5 measurement\n5 requests\n6 promoted\n6 completed\n");
    assert_contains(w->events, "1 requests: stage 1: the canary served 40 requests\n");
    assert_contains(w->events, "the canary served 150 of min_requests 100");
}

static void test_approval_gate(void **state)
{
    world *w = *state;
    w->plan.stages[1].approval = true;
    w->cfg.ai_assisted = true;
    load(w, "seconds,metric,value\n0,err,0.001\n");
    simulate(w);
    /* Waits at the gate, stage 1 still judged, until the hold (6 s) has
     * passed since the gate was reached (at 2 s, after the trace's end). */
    assert_string_equal(cn_sim_outcome(&w->res), "awaiting_approval");
    assert_int_equal(w->res.exit_code, -1);
    assert_true(w->res.bounded);
    assert_int_equal(w->res.duration_ms, 8000);
    assert_contains(w->events, "2 awaiting_approval: stage 2 (50%) needs approval by a user "
                               "with role 'senior' who is not the author 'alice' (two-person "
                               "rule); stage 1 keeps serving 10% and is judged\n");
    assert_contains(w->events, "8 measurement: stage 1: err: pass");
    assert_string_equal(w->res.note, "still awaiting approval of stage 2 after 6s: nobody "
                                     "approves in a simulation");
    assert_near(w->res.max_weight, 0.1, 0);

    /* A fault in the trace later on still rolls the waiting stage back. */
    load(w, "seconds,metric,value\n0,err,0.001\n30,err,0.2\n");
    simulate(w);
    assert_contains(w->events, "30 rolling_back: rolling back for analysis: err failed 1 time");
    assert_int_equal(w->res.exit_code, 3);

    /* approval.timeout with on_timeout: rollback ends it: aborted, exit 4. */
    load(w, "seconds,metric,value\n0,err,0.001\n");
    w->policy.ai.approval_timeout_ms = 30000;
    simulate(w);
    assert_contains(w->events, "32 aborted: approval timed out: nobody approved stage 2 within "
                               "30s (approval.on_timeout: rollback): rolling back\n");
    assert_int_equal(w->res.exit_code, 4);
    assert_string_equal(cn_sim_outcome(&w->res), "aborted");
    /* on_timeout: wait says so once and waits on, to the bound: 2 + 6 + 30. */
    w->policy.ai.approval_on_timeout = CN_APPROVAL_WAIT;
    simulate(w);
    assert_contains(w->events, "32 approval_overdue: stage 2 has waited 30s");
    assert_int_equal(w->res.duration_ms, 38000);
    /* --until cuts every simulation. */
    w->cfg.until_ms = 10000;
    simulate(w);
    assert_int_equal(w->res.duration_ms, 10000);
    assert_contains(w->res.note, "the virtual clock reached its limit (10s) with the rollout "
                                 "still awaiting_approval at stage 1");
}

/* A fault promoted to 100% goes on hurting after the rollout is over; a
 * rolled-back one does not. */
static void test_impact_after_the_end(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,0.001\n10,err,0.5\n20,err,0.5\n");
    simulate(w);
    assert_int_equal(w->res.exit_code, 0);
    assert_int_equal(w->res.duration_ms, 6000);
    assert_int_equal(w->res.impact_until_ms, 20000);
    /* 100% x 0.5 from 10 s to 20 s; exposure stops with the rollout. */
    assert_near(w->res.impact, 500, 1e-9);
    assert_near(w->res.exposure, 320, 1e-9);
    load(w, "seconds,metric,value\n0,err,0.001\n3.5,err,0.5\n20,err,0.5\n");
    simulate(w);
    assert_int_equal(w->res.exit_code, 3);
    assert_int_equal(w->res.impact_until_ms, 20000);
    /* The timer promotes at 4 s, before that instant's poll: 50% x 0.5 from
     * 3.5 s, 100% x 0.5 from 4 s to the rollback at 5 s, then nothing. */
    assert_near(w->res.impact, 12.5 + 50, 1e-9);
}

static void test_actuator_time(void **state)
{
    world *w = *state;
    w->cfg.actuator_ms = 500;
    load(w, "seconds,metric,value\n0,err,0.001\n3,err,0.5\n");
    simulate(w);
    /* Each call lands 0.5 s after it is made; polls start from there. The
     * failure at 3.5 s is measured, and the rollback lands at 4 s. */
    assert_string_equal(kinds(w), "0 started\n0.5 stage_applied\n1.5 measurement\n2.5 promoted\n"
                                  "3 stage_applied\n4 measurement\n4 rolling_back\n"
                                  "4.5 rolled_back\n");
    /* 10% from 0.5 s to 3 s, 50% from 3 s to 4.5 s; hurt at 50% from 3 s. */
    assert_near(w->res.exposure, 25 + 75, 1e-9);
    assert_near(w->res.impact, 0.5 * 0.5 * 1.5 * 100, 1e-9);
}

static void test_severity(void **state)
{
    world *w = *state;
    w->policy.analysis.metric_count = 2;
    load(w, "seconds,metric,value\n0,err,0.001\n0,p99,200\n10,err,0.3\n20,p99,900\n"
            "30,err,2\n");
    /* A ratio metric counts its value as the share hurt; another metric over
     * its threshold hurts every request; the worst one counts. */
    assert_near(cn_sim_severity(&w->cfg, 5000, 0.1), 0, 0);
    assert_near(cn_sim_severity(&w->cfg, 10000, 0.1), 0.3, 0);
    assert_near(cn_sim_severity(&w->cfg, 20000, 0.1), 1, 0);
    w->policy.analysis.metric_count = 1;
    assert_near(cn_sim_severity(&w->cfg, 30000, 0.1), 1, 0); /* clamped */
    /* An AI-assisted change is judged by the stricter threshold. */
    static cn_threshold_override strict[] = {{.metric = "err",
                                              .threshold = {.has_max = true, .max = 0.0005}}};
    w->policy.ai.analysis.thresholds = strict;
    w->policy.ai.analysis.threshold_count = 1;
    w->cfg.ai_assisted = true;
    assert_near(cn_sim_severity(&w->cfg, 5000, 0.1), 0.001, 0);
}

/* The rules the engine and the simulator share, on their own. */
static void test_shared_rules(void **state)
{
    world *w = *state;
    cn_metric m = {.name = "err", .baseline = {.enabled = true}};
    assert_true(cn_analysis_compares(&m, 0.5));
    assert_false(cn_analysis_compares(&m, 1.0));
    m.baseline.enabled = false;
    assert_false(cn_analysis_compares(&m, 0.5));
    assert_false(cn_analysis_compares(NULL, 0.5));

    cn_reading r = {.kind = CN_READING_VALUE, .value = 12};
    assert_near(cn_analysis_request_count(&r), 12, 0);
    r.value = -1;
    assert_true(isnan(cn_analysis_request_count(&r)));
    r.value = INFINITY;
    assert_true(isnan(cn_analysis_request_count(&r)));
    r = (cn_reading){.kind = CN_READING_ERROR, .value = 5};
    assert_true(isnan(cn_analysis_request_count(&r)));

    char why[256];
    r = (cn_reading){.kind = CN_READING_VALUE, .value = 0.5};
    assert_int_equal(cn_analysis_judge_poll(&w->policy, 7, false, 0.5, &r, NULL, why,
                                            sizeof why), CN_OUTCOME_ERROR);
    assert_string_equal(why, "error: no metric 8 in the policy");
    /* Without a baseline the note never appears, at 100% or not. */
    assert_int_equal(cn_analysis_judge_poll(&w->policy, 0, false, 1.0, &r, NULL, why,
                                            sizeof why), CN_OUTCOME_FAIL);
    assert_string_equal(why, "0.5 > max 0.01");

    cn_rollout_config rc = {.plan = &w->plan, .policy = &w->policy};
    cn_rollout ro;
    assert_int_equal(cn_rollout_init(&ro, &rc), CN_OK);
    assert_near(cn_rollout_weight(&ro, &w->plan), 0, 0);
    ro.state = CN_STATE_ROLLING_BACK; /* still served until the rollback lands */
    ro.stage = 2;
    assert_near(cn_rollout_weight(&ro, &w->plan), 0.5, 0);
    ro.state = CN_STATE_FAILED;
    assert_near(cn_rollout_weight(&ro, &w->plan), 0.5, 0);
    ro.state = CN_STATE_ROLLED_BACK;
    assert_near(cn_rollout_weight(&ro, &w->plan), 0, 0);
    ro.state = CN_STATE_COMPLETED;
    assert_near(cn_rollout_weight(&ro, &w->plan), 1, 0);
}

static void test_refused_config(void **state)
{
    world *w = *state;
    load(w, "seconds,metric,value\n0,err,0\n");
    w->plan.stage_count = 0;
    char err[256] = "";
    assert_int_equal(cn_simulate(&w->cfg, &w->res, err, sizeof err), CN_EINVAL);
    assert_contains(err, "the plan cannot be driven");
    w->cfg.trace = NULL;
    assert_int_equal(cn_simulate(&w->cfg, &w->res, err, sizeof err), CN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trace_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sudden_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flaky, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_impact_after_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_actuator_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_severity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
