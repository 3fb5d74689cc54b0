/* The SLO burn-rate gate, end to end: the real `canary run` polls a
 * burn_rate metric's errors and total queries over each scaled window
 * from the fake metrics server (tests/fake), which answers by query text
 * and by the canary's weight. A canary that burns its error budget fast
 * at one stage is rolled back there with the burn in words; a healthy one
 * is promoted; a canary with no traffic is never promoted; a failing
 * query rolls back as an error. The harness is tests/support/scenario.c. */
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

/* A stage bakes 4s and is measured every second: the workbook's windows
 * shrink to 4s (the longest) and never below 2s (two intervals). */
#define PLAN "plan: {steps: [10%, 50%, 100%], bake: 4s, min_samples: 2}\n"
#define ANALYSIS_HEAD "analysis:\n  interval: 1s\n  timeout: 900ms\n"
#define BURN_METRIC(windows)                                                              \
    "  metrics:\n"                                                                        \
    "    - name: availability\n"                                                          \
    "      burn_rate:\n"                                                                  \
    "        slo: 99.9%\n"                                                                \
    "        errors: 'sum(rate(http_requests_total{version=\"{{version}}\",code=~\"5..\"}"  \
    "[{{window}}]))'\n"                                                                   \
    "        total: 'sum(rate(http_requests_total{version=\"{{version}}\"}[{{window}}]))'\n" \
    "        prometheus: {address: \"@ADDR@\"}\n" windows
/* One pair, scaled from 1h/5m: long 4s, short 2s. */
#define ONE_PAIR "        windows: [{long: 1h, short: 5m, factor: 14.4}]\n"
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"

/* The total query of version v2 (the errors query has a code matcher
 * after the version, so this text is only in the total). */
#define TOTAL "{version=\"v2\"}["
#define ERRORS "code=~\"5..\"}["

/* Every query in the fake's log, with the window of each; fails when a
 * query is not for v2 over one of the windows in want ("[2s]" ...). */
static size_t expect_windows(const cn_scenario *s, const char *const *want, size_t n)
{
    char *log = cn_sc_slurp(s->log);
    if (!log)
        cn_sc_fail(s, "no fake log at %s", s->log);
    size_t queries = 0, seen[4] = {0};
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "query ", 6))
            continue;
        queries++;
        size_t k = 0;
        while (k < n && !strstr(line, want[k]))
            k++;
        if (k == n || !strstr(line, "version=\"v2\""))
            cn_sc_fail(s, "unexpected query '%s'", line);
        seen[k]++;
    }
    free(log);
    for (size_t k = 0; k < n; k++)
        if (!seen[k])
            cn_sc_fail(s, "no query over %s", want[k]);
    return queries;
}

static void test_burn_rate(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *fast = cn_sc_new(x, "burns fast at stage 2", CN_SC_HTTP);
    cn_scenario *healthy = cn_sc_new(x, "healthy, the workbook's windows", CN_SC_HTTP);
    cn_scenario *quiet = cn_sc_new(x, "no traffic", CN_SC_HTTP);
    cn_scenario *broken = cn_sc_new(x, "total query fails", CN_SC_EXEC);

    /* 0.02% errors (0.2x) until the canary has 50% of traffic; then 3.12%
     * over the long window and 4.01% over the short one */
    cn_sc_fake(fast, ERRORS " 0 value 0.0002\n" TOTAL " 0 value 1\n"
                     "5..\"}[4s] 50 value 0.0312\n"
                     "5..\"}[2s] 50 value 0.0401\n");
    cn_sc_inputs(fast, PLAN ANALYSIS_HEAD BURN_METRIC(ONE_PAIR), CHANGE);

    /* no 5xx series at all: Prometheus's sum() over nothing is empty */
    cn_sc_fake(healthy, ERRORS " 0 empty\n" TOTAL " 0 value 25\n");
    cn_sc_inputs(healthy, PLAN ANALYSIS_HEAD BURN_METRIC(""), CHANGE);

    cn_sc_fake(quiet, ERRORS " 0 value 0\n" TOTAL " 0 value 0\n");
    cn_sc_inputs(quiet, PLAN "analysis:\n  interval: 1s\n  timeout: 900ms\n  max_bake: 8s\n"
                             BURN_METRIC(ONE_PAIR), CHANGE);

    cn_sc_fake(broken, ERRORS " 0 value 0\n" TOTAL " 0 status 503\n");
    cn_sc_inputs(broken, PLAN ANALYSIS_HEAD "  consecutive_error_limit: 2\n"
                              BURN_METRIC(ONE_PAIR), CHANGE);

    cn_scenario *list[] = {fast, healthy, quiet, broken};
    cn_sc_run_all(list, 4, NULL, NULL);

    /* rolled back at 50%, never wider, with the burn in words */
    cn_sc_expect_code(fast, 3);
    cn_sc_expect_calls(fast, "advance 1 10\nadvance 2 50\nrollback 0 0\n");
    cn_sc_expect_out(fast, "stage 1: availability: pass: burn 0.2x over 4s and 0.2x over 2s, "
                           "not both > 14.4x: 0.02% errors over 4s against a 0.1% budget");
    cn_sc_expect_out(fast, "stage 2: availability: fail: burn 31.2x over 4s and 40.1x over 2s "
                           "> 14.4x: 3.12% errors against a 0.1% budget");
    cn_sc_expect_out(fast, "rolling back for analysis: availability failed 1 time, more than "
                           "failure_limit 0");
    cn_sc_expect_out(fast, "\nresult: rolled back by analysis (exit 3)");
    const char *one_pair[] = {"[4s]", "[2s]"};
    if (expect_windows(fast, one_pair, 2) % 4)
        cn_sc_fail(fast, "each poll makes 4 queries (errors and total over 2 windows)");
    /* the evidence, structured, for status, watch and explain */
    cn_sc_expect_row(fast,
                     "SELECT json_extract(data, '$.kind'), round(json_extract(data, '$.value'), "
                     "6), json_extract(data, '$.max'), json_extract(data, '$.pair.long'), "
                     "json_extract(data, '$.pair.short'), json_extract(data, '$.slo'), "
                     "json_array_length(data, '$.windows'), "
                     "round(json_extract(data, '$.windows[1].ratio'), 6) "
                     "FROM events WHERE type = 'measurement' AND "
                     "json_extract(data, '$.outcome') = 'fail'",
                     "burn_rate|31.2|14.4|4s|2s|0.999|2|0.0401\n");

    /* the workbook's two pairs on a 4s bake: 4s and 2s windows, each
     * queried once per poll although both pairs use both */
    cn_sc_expect_code(healthy, 0);
    cn_sc_expect_calls(healthy, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_out(healthy, "stage 1: availability: pass: burn 0x over 2s and 0x over 2s, "
                              "not both > 14.4x; 0x over 4s and 0x over 2s, not both > 6x: 0% "
                              "errors over 4s against a 0.1% budget");
    cn_sc_expect_out(healthy, "\nresult: promoted to 100% (exit 0)");
    if (expect_windows(healthy, one_pair, 2) % 4)
        cn_sc_fail(healthy, "each poll makes 4 queries (2 distinct windows)");

    /* no requests is no evidence: never promoted */
    cn_sc_expect_code(quiet, 3);
    cn_sc_expect_calls(quiet, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(quiet, "stage 1: availability: no data: no requests over 4s (total 0)");
    cn_sc_expect_out(quiet, "max_bake 8s reached; availability has 0 of 2 passing samples");
    if (strstr(quiet->out, "promoted "))
        cn_sc_fail(quiet, "stage 1 was promoted without traffic");

    cn_sc_expect_code(broken, 3);
    cn_sc_expect_calls(broken, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(broken, "stage 1: availability: error: total over 4s: HTTP 503: "
                             "unavailable: fake_metrics: scripted status 503");
    cn_sc_expect_out(broken, "availability had 2 provider errors in a row "
                             "(consecutive_error_limit 2)");
}

/* The policy is checked before anything moves: a burn rate without
 * {{window}} is refused at its line, exit 2, nothing applied. */
static void test_burn_rate_invalid(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "errors without {{window}}", CN_SC_HTTP);
    cn_sc_fake(s, "* 0 value 0\n");
    cn_sc_inputs(s, PLAN ANALYSIS_HEAD
                 "  metrics:\n"
                 "    - name: availability\n"
                 "      burn_rate:\n"
                 "        slo: 99.9%\n"
                 "        errors: 'sum(rate(e[5m]))'\n"
                 "        total: 'sum(rate(t[{{window}}]))'\n"
                 "        prometheus: {address: \"@ADDR@\"}\n",
                 CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 2);
    cn_sc_expect_err(s, "policy.yaml:10:17: 'errors' does not use {{window}}");
    cn_sc_expect_untouched(s);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_burn_rate),
        TEST(test_burn_rate_invalid),
    };
    return cmocka_run_group_tests_name("burn_rate", tests, NULL, NULL);
}
