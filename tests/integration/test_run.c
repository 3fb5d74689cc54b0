/* canary run, end to end: the real binary drives rollouts against the fake
 * metrics server (tests/fake), through an http actuator (the fake's POST
 * /actuate) or an exec actuator (a shell script that logs its calls). Each
 * scenario asserts the exit code, the exact sequence of actuator calls and
 * the lines a pipeline or an operator reads. Scenarios that do not depend
 * on each other run side by side, except under a wrapper (valgrind). The
 * harness is tests/support/scenario.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "proc.h"
#include "scenario.h"

/* Short timings: a stage bakes 1 s and needs one passing measurement. */
#define PLAN_LADDER "plan: {steps: [10%, 50%, 100%], bake: 1s, min_samples: 1}\n"
#define ANALYSIS_HEAD "analysis:\n  interval: 1s\n  timeout: 900ms\n"
#define METRIC_ERR                                                                   \
    "  metrics:\n"                                                                   \
    "    - name: err\n"                                                              \
    "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define HUMAN_CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
#define AI_CHANGE HUMAN_CHANGE "ai_assisted: true\n"

/* ---- 1. healthy ----------------------------------------------------------- */

/* "advance 1 10" ... "complete N 100" from `canary plan -o json` for the
 * same inputs: what run must apply. */
static char *calls_from_plan(const cn_scenario *s)
{
    cn_test_output o;
    const char *args[] = {"plan", "--change", s->change, "--policy", s->policy, "-o", "json",
                          NULL};
    int code = cn_test_run(&o, s->dir, args);
    json_error_t je;
    json_t *plan = json_loads(o.out, 0, &je);
    if (code != 0 || !plan) {
        fprintf(stderr, "canary plan: exit %d\n%s\n%s\n", code, o.out, o.err);
        fail();
    }
    cn_test_output_free(&o);
    json_t *stages = json_object_get(plan, "stages");
    char *out = calloc(1, 4096);
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st)
    {
        sprintf(out + strlen(out), "advance %zu %g\n", i + 1,
                json_number_value(json_object_get(st, "weight")));
    }
    sprintf(out + strlen(out), "complete %zu 100\n", json_array_size(stages));
    json_decref(plan);
    return out;
}

static void test_healthy(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *list[2] = {cn_sc_new(x, "healthy, http actuator", CN_SC_HTTP),
                            cn_sc_new(x, "healthy, exec actuator", CN_SC_EXEC)};
    for (size_t i = 0; i < 2; i++) {
        cn_sc_fake(list[i], "errors 0 value 0.001\n");
        cn_sc_inputs(list[i], PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    }
    cn_sc_run_all(list, 2, NULL, NULL);
    const char *want = "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n";
    for (size_t i = 0; i < 2; i++) {
        cn_scenario *s = list[i];
        cn_sc_expect_code(s, 0);
        cn_sc_expect_calls(s, want);
        char *planned = calls_from_plan(s);
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", planned);
        free(planned);
        cn_sc_expect_text(s, "calls planned by canary plan -o json", copy, want);
        cn_sc_expect_out(s, "stage 1 of 3 serves 10%; baking 1s");
        cn_sc_expect_out(s, "stage 3 passed its analysis");
        cn_sc_expect_out(s, "completed                the new version serves 100% after "
                            "stage 3");
        cn_sc_expect_out(s, "\nresult: promoted to 100% (exit 0)");
        cn_sc_expect_text(s, "stderr", s->err, "");
    }
}

/* ---- 2. degrading at 50% ---------------------------------------------------- */

static void test_degrading(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *list[2] = {cn_sc_new(x, "degrading, http actuator", CN_SC_HTTP),
                            cn_sc_new(x, "degrading, exec actuator", CN_SC_EXEC)};
    for (size_t i = 0; i < 2; i++) {
        cn_sc_fake(list[i], "errors 0 value 0.001\nerrors 50 value 0.5\n");
        cn_sc_inputs(list[i], PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    }
    cn_sc_run_all(list, 2, NULL, NULL);
    for (size_t i = 0; i < 2; i++) {
        cn_scenario *s = list[i];
        cn_sc_expect_code(s, 3);
        /* Never above 50%: the failure at 50% stops the ladder. */
        cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nrollback 0 0\n");
        cn_sc_expect_out(s, "stage 1: err: pass: 0.001 within [-, 0.01]");
        cn_sc_expect_out(s, "stage 2: err: fail: 0.5 > max 0.01");
        cn_sc_expect_out(s, "rolling back for analysis: err failed 1 time, more than "
                            "failure_limit 0");
        cn_sc_expect_out(s, "\nresult: rolled back by analysis (exit 3)");
    }
}

/* ---- 3. bad data ------------------------------------------------------------ */

typedef struct bad_case {
    const char *name;
    const char *rule;     /* the fake's answer to the metric's query */
    const char *address;  /* the metric's address */
    const char *outcome;  /* in the measurement line */
    const char *evidence; /* in the measurement line, after the outcome */
    const char *reason;   /* in the rolling_back line */
} bad_case;

static void test_bad_data(void **state)
{
    static const char errored[] = "err had 1 provider error in a row";
    static const char no_data[] = "max_bake 2s reached; err has 0 of 1 passing samples";
    static const bad_case cases[] = {
        {"connection refused", "errors 0 value 0.001", "@CLOSED@", "err: error: ",
         "connection refused (127.0.0.1:", errored},
        {"HTTP 500", "errors 0 status 500", "@ADDR@", "err: error: ", "HTTP 500", errored},
        {"garbage", "errors 0 garbage", "@ADDR@", "err: error: ", "reply is not JSON", errored},
        {"NaN", "errors 0 value NaN", "@ADDR@", "err: no data: ", "value is NaN", no_data},
        {"empty vector", "errors 0 empty", "@ADDR@", "err: no data: ", "empty vector", no_data},
        {"+Inf", "errors 0 value +Inf", "@ADDR@", "err: error: ", "value is +Inf", errored},
        {"several series, reduce none", "errors 0 series 0.001,0.002", "@ADDR@", "err: error: ",
         "2 series where one is expected", errored},
        {"hang", "errors 0 hang", "@ADDR@", "err: error: ", "timed out after 500ms", errored},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    cn_scenarios *x = *state;
    cn_scenario *list[N];
    for (size_t i = 0; i < N; i++) {
        cn_scenario *s = list[i] = cn_sc_new(x, cases[i].name, CN_SC_HTTP);
        char script[256], body[2048];
        snprintf(script, sizeof script, "%s\n", cases[i].rule);
        cn_sc_fake(s, script);
        snprintf(body, sizeof body,
                 "%s"
                 "analysis:\n  interval: 1s\n  timeout: 500ms\n  max_bake: 2s\n"
                 "  consecutive_error_limit: 1\n"
                 "  metrics:\n"
                 "    - name: err\n"
                 "      prometheus: {address: \"%s\", query: 'errors{version=\"{{version}}\"}'}\n"
                 "      threshold: {max: 1%%}\n",
                 PLAN_LADDER, cases[i].address);
        cn_sc_inputs(s, body, HUMAN_CHANGE);
    }
    cn_sc_run_all(list, N, NULL, NULL);
    for (size_t i = 0; i < N; i++) {
        cn_scenario *s = list[i];
        cn_sc_expect_code(s, 3);
        cn_sc_expect_calls(s, "advance 1 10\nrollback 0 0\n");
        cn_sc_expect_out(s, cases[i].outcome);
        cn_sc_expect_out(s, cases[i].evidence);
        cn_sc_expect_out(s, cases[i].reason);
        if (strstr(s->out, "promoted "))
            cn_sc_fail(s, "stage 1 was promoted");
        cn_sc_expect_out(s, "\nresult: rolled back by analysis (exit 3)");
    }
}

/* ---- 4, 5. actuator failures ---------------------------------------------- */

static void test_actuator_always_fails(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "actuator always fails", CN_SC_EXEC);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_exec_actuator(s, "true");
    cn_sc_inputs(s, PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 5);
    /* retries 1: two attempts for the advance, two for the rollback */
    cn_sc_expect_calls(s, "advance 1 10\nadvance 1 10\nrollback 0 0\nrollback 0 0\n");
    cn_sc_expect_out(s, "actuator_failed_attempt  attempt 1: exit 1");
    cn_sc_expect_out(s, "refusing advance to 10%");
    cn_sc_expect_out(s, "advance of stage 1 could not be applied");
    cn_sc_expect_out(s, "failed                   rollback could not be applied: a human must "
                        "act");
    cn_sc_expect_out(s, "\nresult: ROLLBACK FAILED: a human must act (exit 5)");
    cn_sc_expect_row(s, "SELECT state, exit_code FROM rollouts", "failed|5\n");
}

static void test_advance_fails_at_stage_2(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "advance to stage 2 fails", CN_SC_EXEC);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_exec_actuator(s, "[ \"$CANARY_STAGE\" = 2 ]");
    cn_sc_inputs(s, PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 1);
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nadvance 2 50\nrollback 0 0\n");
    cn_sc_expect_out(s, "advance of stage 2 could not be applied");
    cn_sc_expect_out(s, "rolled_back");
    cn_sc_expect_out(s, "\nresult: internal failure (exit 1)");
    cn_sc_expect_row(s, "SELECT state, exit_code, weight FROM rollouts", "rolled_back|1|0.0\n");
}

/* ---- 6, 7. refused before anything moves -------------------------------- */

typedef struct refusal {
    const char *name;
    cn_sc_act act;
    const char *body;   /* the policy after its name */
    const char *change;
    const char *err[2]; /* on stderr */
} refusal;

static void test_refused_inputs(void **state)
{
    static const refusal cases[] = {
        {"typo key, http actuator", CN_SC_HTTP,
         PLAN_LADDER "analysis:\n  intervall: 1s\n" METRIC_ERR, HUMAN_CHANGE,
         {"/policy.yaml:4:3: unknown key 'intervall' in analysis (did you mean 'interval'?)",
          NULL}},
        {"typo key, exec actuator", CN_SC_EXEC,
         PLAN_LADDER ANALYSIS_HEAD METRIC_ERR "    - name: lat\n      jsn: {url: \"@ADDR@\"}\n",
         HUMAN_CHANGE, {"/policy.yaml:11:7: unknown key 'jsn' in metric", NULL}},
        {"no metrics", CN_SC_EXEC, PLAN_LADDER ANALYSIS_HEAD, HUMAN_CHANGE,
         {"policy 't' has no analysis.metrics: canary run needs at least one metric", NULL}},
        {"no actuator", CN_SC_HTTP, PLAN_LADDER ANALYSIS_HEAD METRIC_ERR "actuator:\n",
         HUMAN_CHANGE, {"policy 't' has no actuator", NULL}},
        {"bearer token variable not set", CN_SC_HTTP,
         PLAN_LADDER ANALYSIS_HEAD
         "  metrics:\n"
         "    - name: err\n"
         "      prometheus: {address: \"@ADDR@\", query: errors,\n"
         "                   bearer_token_env: CANARY_TEST_UNSET_TOKEN}\n"
         "      threshold: {max: 1%}\n",
         HUMAN_CHANGE, {"metric 'err'", "CANARY_TEST_UNSET_TOKEN"}},
        {"baseline without previous_version", CN_SC_EXEC,
         PLAN_LADDER ANALYSIS_HEAD
         "  metrics:\n"
         "    - name: err\n"
         "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n"
         "      baseline: {max_increase: 20%, slack: 0}\n",
         "service: shop\nversion: v2\nauthor: alice\n",
         {"metric 'err' compares with the baseline, but the change has no previous_version",
          NULL}},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    unsetenv("CANARY_TEST_UNSET_TOKEN");
    cn_scenarios *x = *state;
    for (size_t i = 0; i < N; i++) {
        cn_scenario *s = cn_sc_new(x, cases[i].name, cases[i].act);
        cn_sc_fake(s, "errors 0 value 0.001\n");
        cn_sc_inputs(s, cases[i].body, cases[i].change);
        /* The actuator script exists but must not run: its log stays absent. */
        cn_sc_run(s, NULL, NULL);
        cn_sc_expect_code(s, 2);
        for (size_t k = 0; k < 2 && cases[i].err[k]; k++)
            cn_sc_expect_err(s, cases[i].err[k]);
        cn_sc_expect_untouched(s);
        cn_sc_expect_text(s, "stdout", s->out, "");
    }
}

/* ---- 8. signals ------------------------------------------------------------ */

static void test_sigterm(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *roll = cn_sc_new(x, "SIGTERM during the bake", CN_SC_EXEC);
    cn_scenario *detach = cn_sc_new(x, "SIGTERM with --detach-on-signal", CN_SC_HTTP);
    cn_scenario *list[2] = {roll, detach};
    for (size_t i = 0; i < 2; i++) {
        cn_sc_fake(list[i], "errors 0 value 0.001\n");
        /* A bake long enough that the signal surely lands inside it. */
        cn_sc_inputs(list[i],
                     "plan: {steps: [10%, 50%, 100%], bake: 5m, min_samples: 1}\n"
                     ANALYSIS_HEAD METRIC_ERR,
                     HUMAN_CHANGE);
    }
    cn_sc_start(roll, NULL, NULL);
    cn_sc_start(detach, "--detach-on-signal", NULL);
    for (size_t i = 0; i < 2; i++) {
        cn_scenario *s = list[i];
        int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
        if (!cn_test_wait_text(s->out_path, "stage_applied", limit))
            cn_sc_fail(s, "stage 1 was not applied in time");
        assert_int_equal(kill(s->run, SIGTERM), 0);
    }
    for (size_t i = 0; i < 2; i++)
        cn_sc_finish(list[i]);

    cn_sc_expect_code(roll, 4);
    cn_sc_expect_calls(roll, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(roll, "aborted                  stopped by a signal: rolling back");
    cn_sc_expect_out(roll, "rolled back after a signal; previous version serves 100%");
    cn_sc_expect_out(roll, "\nresult: aborted and rolled back (exit 4)");
    cn_sc_expect_row(roll, "SELECT state, exit_code, weight FROM rollouts", "aborted|4|0.0\n");

    cn_sc_expect_code(detach, 1);
    cn_sc_expect_calls(detach, "advance 1 10\n");
    cn_sc_expect_out(detach, "detached                 left progressing at stage 1 for a "
                             "later resume");
    cn_sc_expect_row(detach, "SELECT state, stage, exit_code FROM rollouts",
                     "progressing|1|-1\n");
    cn_sc_expect_row(detach, "SELECT type FROM events ORDER BY seq DESC LIMIT 1", "detached\n");
}

/* ---- 9. the state database ------------------------------------------------ */

/* Event types in order, a run of measurements written once as "measurement+"
 * (how many land in a 1 s bake depends on timer order). */
static char *event_types(sqlite3 *db)
{
    char *all = cn_sc_rows(db, "SELECT type FROM events ORDER BY seq");
    char *out = calloc(1, 2 * strlen(all) + 1); /* "+" per type at most */
    const char *prev = "";
    for (char *t = strtok(all, "\n"); t; t = strtok(NULL, "\n")) {
        bool m = !strcmp(t, "measurement");
        if (m && !strcmp(prev, "measurement"))
            continue;
        sprintf(out + strlen(out), "%s%s ", t, m ? "+" : "");
        prev = t;
    }
    free(all);
    return out;
}

/* "advance: stage 1, weight 10%" becomes "advance 1 10". */
static char *stored_calls(sqlite3 *db)
{
    char *details =
        cn_sc_rows(db, "SELECT detail FROM events WHERE type = 'actuator_call' ORDER BY seq");
    char *out = calloc(1, strlen(details) + 1);
    for (char *d = strtok(details, "\n"); d; d = strtok(NULL, "\n")) {
        char action[32], weight[32];
        unsigned stage;
        if (sscanf(d, "%31[a-z]: stage %u, weight %31[0-9.]%%", action, &stage, weight) == 3)
            sprintf(out + strlen(out), "%s %u %s\n", action, stage, weight);
    }
    free(details);
    return out;
}

static void test_state_and_rerun(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "state database of a healthy run", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    const char *want = "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n";
    cn_sc_expect_calls(s, want);

    sqlite3 *db = cn_sc_db(s);
    char *types = event_types(db);
    char *stored = stored_calls(db);
    sqlite3_close(db);
    char t[4096], c[4096];
    snprintf(t, sizeof t, "%s", types);
    snprintf(c, sizeof c, "%s", stored);
    free(types);
    free(stored);
    cn_sc_expect_text(s, "event types", t,
                      "started actuator_call actuator_ok stage_applied measurement+ promoted "
                      "actuator_call actuator_ok stage_applied measurement+ promoted "
                      "actuator_call actuator_ok stage_applied measurement+ promoted "
                      "actuator_call actuator_ok completed ");
    /* Every call the fake saw has its actuator_call event, in the same
     * order; the event precedes its actuator_ok in the log. */
    cn_sc_expect_text(s, "actuator_call events", c, want);
    cn_sc_expect_row(s,
                     "SELECT id, state, stage, stages, weight, exit_code, previous_version, "
                     "policy FROM rollouts",
                     "shop-v2|completed|3|3|1.0|0|v1|t\n");
    cn_sc_expect_row(s, "SELECT DISTINCT actor FROM events", "canary\n");

    /* Again: the stored result, and nothing moves. */
    char *log_before = cn_sc_slurp(s->log);
    size_t events_before;
    {
        sqlite3 *d = cn_sc_db(s);
        char *n = cn_sc_rows(d, "SELECT count(*) FROM events");
        events_before = strtoul(n, NULL, 10);
        free(n);
        sqlite3_close(d);
    }
    s->name = "the same change again";
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    cn_sc_expect_out(s, "rollout 'shop-v2' already finished: completed, promoted to 100% "
                        "(exit 0); nothing to do");
    char *log_after = cn_sc_slurp(s->log);
    bool same = !strcmp(log_before, log_after);
    free(log_before);
    free(log_after);
    if (!same)
        cn_sc_fail(s, "the fake saw requests on the second run");
    char count[32];
    snprintf(count, sizeof count, "%zu\n", events_before);
    cn_sc_expect_row(s, "SELECT count(*) FROM events", count);
}

/* ---- 10. --log-format json ------------------------------------------------ */

static bool str_is(const json_t *j, const char *want)
{
    const char *v = json_string_value(j);
    return v && !strcmp(v, want);
}

static void test_json_log(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "--log-format json", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, PLAN_LADDER ANALYSIS_HEAD METRIC_ERR, HUMAN_CHANGE);
    cn_sc_run(s, "--log-format", "json");
    cn_sc_expect_code(s, 0);
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");

    char *copy = strdup(s->out);
    size_t lines = 0, measurements = 0;
    json_t *last = NULL;
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o)
            cn_sc_fail(s, "line %zu is not JSON (%s): %s", lines + 1, je.text, line);
        const char *type = json_string_value(json_object_get(o, "type"));
        if (!type)
            cn_sc_fail(s, "line %zu has no type: %s", lines + 1, line);
        if (lines == 0) {
            if (strcmp(type, "plan") != 0)
                cn_sc_fail(s, "the first line is not the plan: %s", line);
            json_t *stages = json_object_get(json_object_get(o, "plan"), "stages");
            assert_int_equal(json_array_size(stages), 3);
            assert_true(json_number_value(json_object_get(json_array_get(stages, 1), "weight")) ==
                        50);
        } else if (!strcmp(type, "measurement")) {
            json_t *data = json_object_get(o, "data");
            const char *metric = json_string_value(json_object_get(data, "metric"));
            json_t *value = json_object_get(data, "value");
            if (!metric || strcmp(metric, "err") || !json_is_number(value) ||
                json_number_value(value) != 0.001 ||
                !str_is(json_object_get(data, "outcome"), "pass"))
                cn_sc_fail(s, "measurement without data.metric/value/outcome: %s", line);
            measurements++;
        } else if (strcmp(type, "result") != 0) {
            if (!json_is_true(json_object_get(o, "stored")) ||
                !str_is(json_object_get(o, "rollout"), "shop-v2"))
                cn_sc_fail(s, "event not stored or of another rollout: %s", line);
        }
        json_decref(last);
        last = o;
    }
    free(copy);
    if (measurements < 3)
        cn_sc_fail(s, "%zu measurements, expected at least one per stage", measurements);
    if (!last || !str_is(json_object_get(last, "type"), "result") ||
        json_integer_value(json_object_get(last, "exit_code")) != 0 ||
        !json_is_integer(json_object_get(last, "exit_code")) ||
        !str_is(json_object_get(last, "outcome"), "promoted to 100%"))
        cn_sc_fail(s, "the last line is not a result with exit_code 0");
    json_decref(last);
}

/* ---- 11. baseline ------------------------------------------------------------ */

static void test_baseline(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *worse = cn_sc_new(x, "baseline: 0.02 against 0.01", CN_SC_EXEC);
    cn_scenario *same = cn_sc_new(x, "baseline: 0.011 against 0.01", CN_SC_HTTP);
    cn_sc_fake(worse, "version=\"v2\" 0 value 0.02\nversion=\"v1\" 0 value 0.01\n");
    cn_sc_fake(same, "version=\"v2\" 0 value 0.011\nversion=\"v1\" 0 value 0.01\n");
    cn_scenario *list[2] = {worse, same};
    for (size_t i = 0; i < 2; i++)
        cn_sc_inputs(list[i],
                     PLAN_LADDER ANALYSIS_HEAD
                     "  metrics:\n"
                     "    - name: err\n"
                     "      prometheus: {address: \"@ADDR@\", "
                     "query: 'errors{version=\"{{version}}\"}'}\n"
                     "      baseline: {max_increase: 20%, slack: 0}\n",
                     HUMAN_CHANGE);
    cn_sc_run_all(list, 2, NULL, NULL);

    cn_sc_expect_code(worse, 3);
    cn_sc_expect_calls(worse, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(worse, "stage 1: err: fail: 0.02");
    cn_sc_expect_out(worse, "\nresult: rolled back by analysis (exit 3)");
    char *log = cn_sc_slurp(worse->log);
    bool both = log && strstr(log, "query errors{version=\"v2\"}") &&
                strstr(log, "query errors{version=\"v1\"}");
    free(log);
    if (!both)
        cn_sc_fail(worse, "the fake did not see both the canary and the baseline query");

    cn_sc_expect_code(same, 0);
    cn_sc_expect_calls(same, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_out(same, "stage 1: err: pass: 0.011");
    cn_sc_expect_out(same, "\nresult: promoted to 100% (exit 0)");
}

/* ---- 12. AI-assisted threshold override ----------------------------------- */

static void test_ai_assisted_override(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *human = cn_sc_new(x, "0.02 for a human change (max 5%)", CN_SC_HTTP);
    cn_scenario *ai = cn_sc_new(x, "0.02 for an AI-assisted change (max 1%)", CN_SC_EXEC);
    cn_scenario *list[2] = {human, ai};
    for (size_t i = 0; i < 2; i++) {
        cn_sc_fake(list[i], "errors 0 value 0.02\n");
        /* above_weight 100%: no approval gate (approvals come later);
         * bake_factor 1 keeps the AI bake at 1s. */
        cn_sc_inputs(list[i],
                     PLAN_LADDER
                     "ai_assisted:\n"
                     "  bake_factor: 1\n"
                     "  approval: {above_weight: 100%}\n"
                     "  analysis:\n"
                     "    thresholds: {err: {max: 1%}}\n" ANALYSIS_HEAD
                     "  metrics:\n"
                     "    - name: err\n"
                     "      prometheus: {address: \"@ADDR@\", "
                     "query: 'errors{version=\"{{version}}\"}'}\n"
                     "      threshold: {max: 5%}\n",
                     i == 0 ? HUMAN_CHANGE : AI_CHANGE);
    }
    cn_sc_run_all(list, 2, NULL, NULL);

    cn_sc_expect_code(human, 0);
    cn_sc_expect_calls(human, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_out(human, "stage 1: err: pass: 0.02 within [-, 0.05]");
    cn_sc_expect_out(human, "\nresult: promoted to 100% (exit 0)");

    cn_sc_expect_code(ai, 3);
    cn_sc_expect_calls(ai, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_out(ai, "stage 1: err: fail: 0.02 > max 0.01");
    cn_sc_expect_out(ai, "\nresult: rolled back by analysis (exit 3)");
    if (strstr(ai->out, "approval"))
        cn_sc_fail(ai, "the plan has an approval gate");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_healthy),
        TEST(test_degrading),
        TEST(test_bad_data),
        TEST(test_actuator_always_fails),
        TEST(test_advance_fails_at_stage_2),
        TEST(test_refused_inputs),
        TEST(test_sigterm),
        TEST(test_state_and_rerun),
        TEST(test_json_log),
        TEST(test_baseline),
        TEST(test_ai_assisted_override),
    };
    return cmocka_run_group_tests_name("run", tests, NULL, NULL);
}
