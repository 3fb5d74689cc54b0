/* Notifications from the real `canary run` to the fake metrics server,
 * which logs every POST /notify... with its body (tests/fake/README.md):
 * a healthy rollout notifies started, each stage and completed, in order;
 * a failing one and an aborted one notify their rollback; a webhook that
 * refuses connections or answers 503 changes neither the exit code nor the
 * rollout, and its failures are logged; a credential missing from the
 * environment stops the run before anything is stored; and `canary
 * validate` reports notify mistakes at FILE:LINE:COLUMN. The harness is
 * tests/support/scenario.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
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
#define BASE PLAN_LADDER ANALYSIS_HEAD METRIC_ERR
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
/* Every event to /notify (generic); rollbacks and completions to
 * /notify/slack. */
#define NOTIFY_BOTH                                                                  \
    "notify:\n"                                                                      \
    "  - url: \"@ADDR@/notify\"\n"                                                   \
    "  - url: \"@ADDR@/notify/slack\"\n"                                             \
    "    format: slack\n"                                                            \
    "    events: [completed, rolled_back]\n"

/* The bodies the fake logged for path, in order, as a JSON array. */
static json_t *received(const cn_scenario *s, const char *path)
{
    json_t *all = json_array();
    char *log = cn_sc_slurp(s->log);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "notify %s ", path);
    for (char *line = log ? strtok(log, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        char *body = line + strlen(prefix);
        if (!strncmp(body, "rejected=", 9))
            body = strchr(body, ' ') + 1;
        json_error_t e;
        json_t *j = json_loads(body, 0, &e);
        if (!j)
            cn_sc_fail(s, "a notification is not JSON (%s): %s", e.text, body);
        json_array_append_new(all, j);
    }
    free(log);
    return all;
}

/* "event stage weight state" per generic notification, one a line; every
 * one must name this rollout and carry a UTC time. */
static void expect_generic(const cn_scenario *s, const char *want)
{
    json_t *all = received(s, "/notify");
    char got[2048] = "";
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        const char *when = json_string_value(json_object_get(j, "time"));
        if (strcmp(json_string_value(json_object_get(j, "rollout")), "shop-v2") != 0 ||
            strcmp(json_string_value(json_object_get(j, "service")), "shop") != 0 ||
            strcmp(json_string_value(json_object_get(j, "version")), "v2") != 0 ||
            !json_is_false(json_object_get(j, "ai_assisted")) ||
            json_integer_value(json_object_get(j, "stages")) != 3 || !when ||
            strlen(when) != 24 || when[23] != 'Z')
            cn_sc_fail(s, "notification %zu has the wrong identity or time: %s", i,
                       json_dumps(j, JSON_COMPACT));
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s %lld %g %s\n",
                 json_string_value(json_object_get(j, "event")),
                 (long long)json_integer_value(json_object_get(j, "stage")),
                 json_number_value(json_object_get(j, "weight")),
                 json_string_value(json_object_get(j, "state")));
    }
    json_decref(all);
    cn_sc_expect_text(s, "generic notifications", got, want);
}

/* The "text" of every slack notification, one a line. */
static void expect_slack(const cn_scenario *s, const char *want)
{
    json_t *all = received(s, "/notify/slack");
    char got[2048] = "";
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s\n",
                 json_string_value(json_object_get(j, "text")));
    }
    json_decref(all);
    cn_sc_expect_text(s, "slack notifications", got, want);
}

/* ---- 1. healthy and failing rollouts --------------------------------------- */

static void test_healthy_and_failing(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *ok = cn_sc_new(x, "healthy, notified", CN_SC_HTTP);
    cn_scenario *bad = cn_sc_new(x, "degrading at 50%, notified", CN_SC_EXEC);
    cn_sc_fake(ok, "errors 0 value 0.001\n");
    cn_sc_fake(bad, "errors 0 value 0.001\nerrors 50 value 0.5\n");
    cn_sc_inputs(ok, BASE NOTIFY_BOTH, CHANGE);
    cn_sc_inputs(bad, BASE NOTIFY_BOTH, CHANGE);
    cn_scenario *list[2] = {ok, bad};
    cn_sc_run_all(list, 2, NULL, NULL);

    cn_sc_expect_code(ok, 0);
    cn_sc_expect_calls(ok, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    expect_generic(ok, "started 0 0 progressing\n"
                       "stage_advanced 1 10 progressing\n"
                       "stage_advanced 2 50 progressing\n"
                       "stage_advanced 3 100 progressing\n"
                       "completed 3 100 completed\n");
    expect_slack(ok, ":white_check_mark: canary: rollout `shop-v2` (shop v2) completed at "
                     "stage 3/3 (100%): the new version serves 100% after stage 3\n");
    cn_sc_expect_text(ok, "stderr", ok->err, "");
    cn_sc_expect_out(ok, "\nresult: promoted to 100% (exit 0)");

    cn_sc_expect_code(bad, 3);
    cn_sc_expect_calls(bad, "advance 1 10\nadvance 2 50\nrollback 0 0\n");
    expect_generic(bad, "started 0 0 progressing\n"
                        "stage_advanced 1 10 progressing\n"
                        "stage_advanced 2 50 progressing\n"
                        "rolled_back 2 0 rolled_back\n");
    expect_slack(bad, ":rotating_light: canary: rollout `shop-v2` (shop v2) rolled back at "
                      "stage 2/3 (50%): rolled back after analysis; previous version serves "
                      "100%\n");
    cn_sc_expect_text(bad, "stderr", bad->err, "");
}

/* ---- 2. aborted by a signal ---------------------------------------------------- */

/* The abort is recorded twice ("aborted ...: rolling back", then "aborted"
 * once rolled back): only the end is a notification. */
static void test_aborted(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "SIGTERM during the bake, notified", CN_SC_EXEC);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s,
                 "plan: {steps: [10%, 50%, 100%], bake: 5m, min_samples: 1}\n" ANALYSIS_HEAD
                 METRIC_ERR NOTIFY_BOTH,
                 CHANGE);
    cn_sc_start(s, NULL, NULL);
    if (!cn_test_wait_text(s->out_path, "stage_applied", cn_test_patience_ms(CN_SC_RUN_LIMIT_MS)))
        cn_sc_fail(s, "stage 1 was not applied in time");
    assert_int_equal(kill(s->run, SIGTERM), 0);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 4);
    cn_sc_expect_out(s, "aborted                  stopped by a signal: rolling back");
    expect_generic(s, "started 0 0 progressing\n"
                      "stage_advanced 1 10 progressing\n"
                      "rolled_back 1 0 aborted\n");
    expect_slack(s, ":rotating_light: canary: rollout `shop-v2` (shop v2) rolled back at stage "
                    "1/3 (10%): rolled back after a signal; previous version serves 100%\n");
}

/* ---- 3. webhooks that fail ------------------------------------------------------- */

static void test_failing_webhooks(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *closed = cn_sc_new(x, "notify URL on a closed port", CN_SC_HTTP);
    cn_scenario *busy = cn_sc_new(x, "notify URL answering 503", CN_SC_EXEC);
    cn_sc_fake(closed, "errors 0 value 0.001\n");
    cn_sc_fake(busy, "errors 0 value 0.001\nnotify 0 status 503 busy\n");
    cn_sc_inputs(closed, BASE "notify:\n  - {url: \"@CLOSED@/hook\", events: [started, "
                              "completed]}\n", CHANGE);
    cn_sc_inputs(busy, BASE "notify:\n  - {url: \"@ADDR@/notify\", events: [completed]}\n",
                 CHANGE);
    cn_scenario *list[2] = {closed, busy};
    cn_sc_run_all(list, 2, NULL, NULL);

    /* the rollout is untouched: exit 0, every stage, the result line */
    for (size_t i = 0; i < 2; i++) {
        cn_sc_expect_code(list[i], 0);
        cn_sc_expect_out(list[i], "\nresult: promoted to 100% (exit 0)");
        cn_sc_expect_row(list[i], "SELECT state, exit_code FROM rollouts", "completed|0\n");
        cn_sc_expect_row(list[i], "SELECT count(*) FROM events WHERE detail LIKE '%notif%'",
                         "0\n");
    }
    cn_sc_expect_calls(closed, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_err(closed, "canary run: notify http://127.0.0.1:");
    cn_sc_expect_err(closed, "/... failed: connection refused (127.0.0.1:");
    cn_sc_expect_err(closed, "), also on the retry after 1s; the 'started' notification was "
                             "not sent; the rollout goes on\n");
    cn_sc_expect_err(closed, "), also on the retry after 1s; the 'completed' notification was "
                             "not sent; the rollout goes on\n");
    if (cn_test_count(closed->err, "\n") != 2)
        cn_sc_fail(closed, "expected exactly 2 lines on stderr");

    /* 503: sent twice, then given up */
    json_t *all = received(busy, "/notify");
    if (json_array_size(all) != 2)
        cn_sc_fail(busy, "%zu notifications received, expected 2 (one retry)",
                   json_array_size(all));
    json_decref(all);
    cn_sc_expect_err(busy, "failed: HTTP 503: busy, also on the retry after 1s; the "
                           "'completed' notification was not sent; the rollout goes on\n");
}

/* ---- 4. a credential missing from the environment ----------------------------- */

static void test_missing_credential(void **state)
{
    cn_scenarios *x = *state;
    unsetenv("CANARY_TEST_UNSET_HOOK_TOKEN");
    cn_scenario *s = cn_sc_new(x, "notify token variable not set", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, BASE "notify:\n  - url: \"@ADDR@/notify/secret-path\"\n"
                         "    bearer_token_env: CANARY_TEST_UNSET_HOOK_TOKEN\n", CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 2);
    cn_sc_expect_err(s, "canary run: notify webhook 1 (http://127.0.0.1:");
    cn_sc_expect_err(s, "/..., line 11): environment variable CANARY_TEST_UNSET_HOOK_TOKEN "
                        "(bearer_token_env) is not set; export it before starting canary\n");
    if (strstr(s->err, "secret-path"))
        cn_sc_fail(s, "the URL's path was shown");
    cn_sc_expect_untouched(s);
    cn_sc_expect_text(s, "stdout", s->out, "");
}

/* ---- 5. canary validate ----------------------------------------------------------- */

static void test_validate(void **state)
{
    (void)state;
    char good[4096], bad[4096];
    snprintf(good, sizeof good, "%s", cn_test_src("tests/data/notify/good.yaml"));
    snprintf(bad, sizeof bad, "%s", cn_test_src("tests/data/notify/bad.yaml"));
    cn_test_output o;
    int code = cn_test_run(&o, NULL, (const char *const[]){"validate", good, NULL});
    if (code != 0 || !strstr(o.out, "ok  ") || !strstr(o.out, "(policy 'notify-good')"))
        fail_msg("validate good.yaml: exit %d\n%s%s", code, o.out, o.err);
    cn_test_output_free(&o);

    code = cn_test_run(&o, NULL, (const char *const[]){"validate", bad, NULL});
    static const char *const want[] = {
        "bad.yaml:4:10: 'url' must be an http:// or https:// URL with a host, got "
        "'ftp://hooks.example.com/canary'\n",
        "bad.yaml:5:13: 'format' must be one of 'generic', 'slack', got 'teams'\n",
        "bad.yaml:6:23: unknown event 'complted' in 'events' (did you mean 'completed'?); "
        "known: started, stage_advanced, awaiting_approval, rolled_back, completed, failed\n",
        "bad.yaml:6:33: unknown event 'rollback' in 'events' (did you mean 'rolled_back'?)",
        "bad.yaml:7:14: 'timeout' must be at most 1m, got '2m'\n",
        "bad.yaml:8:14: 'headers' is not accepted: header values may be secrets; put each in "
        "an environment variable and name it in 'headers_from_env'\n",
        "bad.yaml:9:5: notify is missing the required key 'url'\n",
        "bad.yaml:10:5: unknown key 'evnts' in notify (did you mean 'events'?)\n",
        "canary validate: 8 problems in 1 of 1 file\n",
    };
    if (code != 2)
        fail_msg("validate bad.yaml: exit %d, expected 2\n%s", code, o.err);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(o.err, want[i]))
            fail_msg("expected \"%s\" in:\n%s", want[i], o.err);
    cn_test_output_free(&o);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_healthy_and_failing),
        TEST(test_aborted),
        TEST(test_failing_webhooks),
        TEST(test_missing_credential),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
