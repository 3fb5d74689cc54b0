/* The statistical judge inside a rollout, end to end: the real `canary
 * run` reads each judged metric's samples for the canary (v2) and the
 * baseline (v1) by Prometheus range queries from the fake metrics server
 * (tests/fake), which answers a query_range with the sample list its
 * script gives for the query's text. A canary whose latency samples are
 * clearly higher than the baseline's is rolled back at stage 1 with the
 * judge's words; one with the same distribution is promoted, its last
 * stage (100%) judged against the baseline's samples from before the
 * switch; no baseline samples is never a pass, also with nan_strategy
 * replace; a failing baseline query is an error. The harness is
 * tests/support/scenario.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "scenario.h"

/* Stages bake 2s, judged every second. */
#define PLAN "plan: {steps: [10%, 50%, 100%], bake: 2s, min_samples: 1}\n"
#define ANALYSIS_HEAD                                                                  \
    "analysis:\n  interval: 1s\n  timeout: 900ms\n"                                  \
    "  judge: {pass: 95, marginal: 75, groups: {latency: 60, errors: 40}}\n"
#define LATENCY_QUERY                                                                  \
    "'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket" \
    "{version=\"{{version}}\"}[30s])))'"
#define METRICS(latency_extra)                                                         \
    "  metrics:\n"                                                                     \
    "    - name: p99-latency\n"                                                        \
    "      prometheus: {address: \"@ADDR@\", query: " LATENCY_QUERY "}\n"              \
    "      judge:\n"                                                                   \
    "        mann_whitney: {direction: increase, allowed_increase: 1.1, group: latency" \
    latency_extra "}\n"                                                                \
    "        step: 1s\n"                                                               \
    "    - name: errors\n"                                                             \
    "      prometheus: {address: \"@ADDR@\", query: "                                  \
    "'sum(rate(http_errors_total{version=\"{{version}}\"}[30s]))'}\n"                  \
    "      judge: {mann_whitney: {direction: increase, group: errors}}\n"
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"

/* 20 samples a side: p99 latency (ms) of the baseline, of a canary 40 ms
 * slower, and of a healthy canary; errors per second, alike on both. */
#define BASE "99.0,102.0,99.1,98.7,96.3,99.1,104.4,101.7,104.1,101.0,101.6,100.7,93.3," \
             "103.4,102.0,102.0,93.2,93.0,96.4,98.1"
#define SLOW "139.9,141.9,140.7,136.8,137.2,140.3,142.4,146.9,145.8,144.6,139.7,138.5," \
             "132.3,143.1,143.9,142.7,131.9,130.1,134.8,141.8"
#define SAME "96.8,101.0,101.7,94.0,100.2,105.2,91.9,98.7,99.6,96.7,102.0,99.8,94.1," \
             "103.3,102.7,103.8,105.8,101.4,100.5,94.8"
#define ERRS "0.2,0.1,0,0.3,0.1,0,0,0.2,0.1,0.1,0,0.2,0.1,0,0.1,0.3,0,0.1,0.2,0.1"

#define LAT(v) "bucket{version=\"" v "\"}"
#define ERR(v) "http_errors_total{version=\"" v "\"}"

/* One range query of the fake's log. */
typedef struct range_line {
    char version[8];
    double start, end;
} range_line;

/* The range queries for the latency metric after the weight moved to
 * 100%, into out; how many. */
static size_t latency_ranges_at_full(const cn_scenario *s, range_line *out, size_t cap)
{
    char *log = cn_sc_slurp(s->log);
    if (!log)
        cn_sc_fail(s, "no fake log at %s", s->log);
    size_t n = 0;
    bool full = false;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "actuate weight=100 "))
            full = true;
        const char *v = strstr(line, "bucket{version=\"");
        const char *st = strstr(line, " start="), *en = strstr(line, " end=");
        if (!full || strncmp(line, "range ", 6) || !v || !st || !en || n == cap)
            continue;
        snprintf(out[n].version, sizeof out[n].version, "%.2s", v + 16);
        out[n].start = strtod(st + 7, NULL);
        out[n].end = strtod(en + 5, NULL);
        n++;
    }
    free(log);
    return n;
}

static void test_judged_rollouts(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *slow = cn_sc_new(x, "canary 40 ms slower", CN_SC_HTTP);
    cn_scenario *same = cn_sc_new(x, "canary alike", CN_SC_HTTP);
    cn_scenario *quiet = cn_sc_new(x, "no baseline samples, nan_strategy replace", CN_SC_HTTP);
    cn_scenario *broken = cn_sc_new(x, "baseline query fails", CN_SC_EXEC);

    cn_sc_fake(slow, LAT("v1") " 0 samples " BASE "\n" LAT("v2") " 0 samples " SLOW "\n"
                     ERR("v1") " 0 samples " ERRS "\n" ERR("v2") " 0 samples " ERRS "\n");
    cn_sc_inputs(slow, PLAN ANALYSIS_HEAD METRICS(""), CHANGE);

    cn_sc_fake(same, LAT("v1") " 0 samples " BASE "\n" LAT("v2") " 0 samples " SAME "\n"
                     ERR("v1") " 0 samples " ERRS "\n" ERR("v2") " 0 samples " ERRS "\n");
    cn_sc_inputs(same, PLAN ANALYSIS_HEAD METRICS(""), CHANGE);

    /* Kayenta passes an empty sample under replace ("nothing happened") */
    cn_sc_fake(quiet, LAT("v1") " 0 empty\n" LAT("v2") " 0 samples " SAME "\n"
                      ERR("v1") " 0 samples " ERRS "\n" ERR("v2") " 0 samples " ERRS "\n");
    cn_sc_inputs(quiet, PLAN ANALYSIS_HEAD "  max_bake: 4s\n"
                        METRICS(", nan_strategy: replace"), CHANGE);

    cn_sc_fake(broken, LAT("v1") " 0 status 503\n" LAT("v2") " 0 samples " SAME "\n"
                       ERR("v1") " 0 samples " ERRS "\n" ERR("v2") " 0 samples " ERRS "\n");
    cn_sc_inputs(broken, PLAN ANALYSIS_HEAD "  consecutive_error_limit: 2\n" METRICS(""),
                 CHANGE);

    cn_scenario *list[] = {slow, same, quiet, broken};
    cn_sc_run_all(list, 4, NULL, NULL);

    /* rolled back at stage 1, never wider, with the judgement in words */
    cn_sc_expect_code(slow, 3);
    cn_sc_expect_calls(slow, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(slow, "stage 1: p99-latency: fail: high (estimate +40.7, ci [37.7, 43.7], "
                           "mean ratio 1.41 >= 1.1; 20 and 20 samples); score 40 < marginal 75");
    cn_sc_expect_out(slow, "rolling back for analysis: p99-latency failed 1 time, more than "
                           "failure_limit 0");
    cn_sc_expect_out(slow, "\nresult: rolled back by analysis (exit 3)");
    /* the evidence, structured, for status, watch and explain */
    cn_sc_expect_row(slow,
                     "SELECT json_extract(data, '$.kind'), json_extract(data, '$.classification'), "
                     "json_extract(data, '$.u'), round(json_extract(data, '$.estimate'), 6), "
                     "round(json_extract(data, '$.ci[0]'), 6), "
                     "round(json_extract(data, '$.ci[1]'), 6), "
                     "round(json_extract(data, '$.effect_size'), 4), "
                     "json_extract(data, '$.p_value') < 1e-6, json_extract(data, '$.score'), "
                     "json_extract(data, '$.verdict'), json_extract(data, '$.value'), "
                     "json_extract(data, '$.min'), json_extract(data, '$.round.errors'), "
                     "json_extract(data, '$.canary_count'), json_extract(data, '$.step') "
                     "FROM events WHERE type = 'measurement' AND "
                     "json_extract(data, '$.outcome') = 'fail' ORDER BY seq LIMIT 1",
                     "judge|high|400.0|40.7|37.7|43.7|1.4053|1|40.0|fail|40.0|75.0|pass|20|1.0\n");

    /* explain tells the score, not a "reading" */
    cn_test_output o;
    const char *args[] = {"explain", "shop-v2", "--state", slow->state, NULL};
    int rc = cn_test_run(&o, slow->dir, args);
    for (char *c = o.out; c && *c; c++)
        if (*c == '\n')
            *c = ' '; /* sentences wrap at 80 columns */
    if (rc != 0 ||
        !strstr(o.out, "The evidence: compared with the baseline, the judged metrics scored "
                       "40, below marginal 75") ||
        !strstr(o.out, "p99-latency failed once (last score 40, lowest 40)")) {
        fprintf(stderr, "explain:\n%s\n%s\n", o.out, o.err);
        cn_test_output_free(&o);
        cn_sc_fail(slow, "canary explain does not tell the judged metrics' score");
    }
    cn_test_output_free(&o);

    /* promoted through 100%, where the baseline is read from before the
     * switch: its window ends where the canary's starts */
    cn_sc_expect_code(same, 0);
    cn_sc_expect_calls(same, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_out(same, "stage 1: p99-latency: pass: like the baseline (estimate +0.4, ci "
                           "[-2.4, 3.2], mean ratio 1; 20 and 20 samples); score 100 >= pass 95");
    cn_sc_expect_out(same, "stage 1: errors: pass: like the baseline");
    cn_sc_expect_out(same, "\nresult: promoted to 100% (exit 0)");
    range_line r[64];
    size_t n = latency_ranges_at_full(same, r, 64);
    if (n < 2)
        cn_sc_fail(same, "%zu latency range queries at 100%%, want 2 or more", n);
    for (size_t i = 0; i + 1 < n; i += 2) {
        const range_line *c = !strcmp(r[i].version, "v2") ? &r[i] : &r[i + 1];
        const range_line *b = c == &r[i] ? &r[i + 1] : &r[i];
        if (strcmp(c->version, "v2") || strcmp(b->version, "v1"))
            cn_sc_fail(same, "at 100%% each round asks v2 and v1, got %s and %s", r[i].version,
                       r[i + 1].version);
        if (b->end > c->start + 0.05 || b->end < c->start - 0.05 ||
            b->end - b->start < c->end - c->start - 0.05)
            cn_sc_fail(same, "at 100%% the baseline's window [%.3f, %.3f] must end where the "
                       "canary's [%.3f, %.3f] starts, and be as long",
                       b->start, b->end, c->start, c->end);
    }

    /* no baseline samples is no evidence: never promoted */
    cn_sc_expect_code(quiet, 3);
    cn_sc_expect_calls(quiet, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(quiet, "stage 1: p99-latency: no data: no baseline samples (empty matrix "
                            "(no series matched)); score 0: 1 of 2 metrics without data, "
                            "inconclusive");
    cn_sc_expect_out(quiet, "max_bake 4s reached; p99-latency has 0 of 1 passing samples");
    if (strstr(quiet->out, "promoted "))
        cn_sc_fail(quiet, "stage 1 was promoted without baseline samples");

    /* an error on one side is an error of that metric, not a judgement */
    cn_sc_expect_code(broken, 3);
    cn_sc_expect_calls(broken, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(broken, "stage 1: p99-latency: error: baseline samples: HTTP 503: "
                             "unavailable: fake_metrics: scripted status 503");
    cn_sc_expect_out(broken, "p99-latency had 2 provider errors in a row "
                             "(consecutive_error_limit 2)");
}

/* Checked before anything moves: a judged metric needs a previous_version
 * to read the baseline's samples (exit 2, nothing applied), and a judged
 * metric with a threshold is refused at its line. */
static void test_judge_refused(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *nobase = cn_sc_new(x, "no previous_version", CN_SC_HTTP);
    cn_sc_fake(nobase, "* 0 samples 1,2,3\n");
    cn_sc_inputs(nobase, PLAN ANALYSIS_HEAD METRICS(""),
                 "service: shop\nversion: v2\nauthor: alice\n");
    cn_scenario *mixed = cn_sc_new(x, "judge and threshold", CN_SC_HTTP);
    cn_sc_fake(mixed, "* 0 samples 1,2,3\n");
    cn_sc_inputs(mixed, PLAN ANALYSIS_HEAD METRICS("") "      threshold: {max: 1}\n", CHANGE);
    cn_scenario *list[] = {nobase, mixed};
    cn_sc_run_all(list, 2, NULL, NULL);

    cn_sc_expect_code(nobase, 2);
    cn_sc_expect_err(nobase, "metric 'p99-latency' is judged against the baseline's samples, "
                             "but the change has no previous_version to query: add "
                             "previous_version to the change");
    cn_sc_expect_untouched(nobase);

    cn_sc_expect_code(mixed, 2);
    cn_sc_expect_err(mixed, "policy.yaml:16:18: metric 'errors' has 'judge' and 'threshold': "
                            "it is judged against the baseline's samples, not a bound; remove "
                            "'threshold'");
    cn_sc_expect_untouched(mixed);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_judged_rollouts),
        TEST(test_judge_refused),
    };
    return cmocka_run_group_tests_name("judge_run", tests, NULL, NULL);
}
