/* Operators against a live rollout, end to end: the real `canary run`
 * drives a rollout against the fake metrics server while the real
 * `canary approve|pause|resume|promote|abort` act on it from other
 * processes. Asserts who may do what (two-person rule, the approval role
 * from --access, users not in the access file), that each command reports
 * what the driver did with its request, the actuator calls that follow,
 * the actor recorded for each decision, and what a request does when
 * nothing drives the rollout (it waits for the resume). Also the approval
 * timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "proc.h"
#include "scenario.h"

#define ANALYSIS_HEAD "analysis:\n  interval: 1s\n  timeout: 900ms\n"
#define METRIC_ERR                                                                   \
    "  metrics:\n"                                                                   \
    "    - name: err\n"                                                              \
    "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define LADDER(bake) "plan: {steps: [10%, 50%, 100%], bake: " bake ", min_samples: 1}\n"
#define GATE_AT_50 "ai_assisted: {approval: {above_weight: 20%, role: senior}}\n"
#define HUMAN "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
#define AI HUMAN "ai_assisted: true\n"
#define HEALTHY "errors 0 value 0.001\n"
#define ACCESS                                 \
    "users:\n"                                 \
    "  alice: {roles: [developer, senior]}\n" \
    "  bob: {roles: [senior]}\n"               \
    "  carol: {roles: [developer]}\n"

static const char *access_file(cn_scenario *s)
{
    const char *path = cn_test_write(s->dir, "access.yaml", ACCESS);
    assert_non_null(path);
    return path;
}

/* `canary VERB shop-v2 --as USER --state S [more...]`; asserts the exit
 * code and that out (or err) holds needle. */
static void operate(const cn_scenario *s, int want, const char *needle, const char *verb,
                    const char *user, const char *more1, const char *more2, const char *more3)
{
    cn_test_output o;
    const char *args[] = {verb, "shop-v2", "--as", user, "--state", s->state, "--wait", "30",
                          more1, more2, more3, NULL};
    int code = cn_test_run(&o, s->dir, args);
    bool ok = code == want && (strstr(o.out, needle) || strstr(o.err, needle));
    if (!ok)
        fprintf(stderr, "canary %s --as %s: exit %d (want %d), want '%s' in\n%s\n%s\n", verb,
                user, code, want, needle, o.out, o.err);
    cn_test_output_free(&o);
    if (!ok)
        cn_sc_fail(s, "canary %s --as %s did not answer as expected", verb, user);
}

static void wait_for(const cn_scenario *s, const char *text)
{
    if (!cn_test_wait_text(s->out_path, text, cn_test_patience_ms(CN_SC_RUN_LIMIT_MS)))
        cn_sc_fail(s, "'%s' did not appear in time", text);
}

/* The gate of an AI-assisted change: the author, a user without the role
 * and a stranger are refused (each recorded); a senior who is not the
 * author opens it. promote --full needs the same. */
static void test_approvals(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *gate = cn_sc_new(x, "approval gate", CN_SC_HTTP);
    cn_scenario *full = cn_sc_new(x, "promote --full of an AI-assisted change", CN_SC_HTTP);
    cn_scenario *list[2] = {gate, full};
    for (size_t i = 0; i < 2; i++) {
        cn_sc_fake(list[i], HEALTHY);
        cn_sc_inputs(list[i],
                     i == 0 ? LADDER("1s") ANALYSIS_HEAD METRIC_ERR GATE_AT_50
                            : LADDER("1m") ANALYSIS_HEAD METRIC_ERR GATE_AT_50,
                     AI);
        cn_sc_start(list[i], "--access", access_file(list[i]));
    }
    const char *access = access_file(gate);

    wait_for(gate, "awaiting_approval");
    operate(gate, 1, "two-person rule", "approve", "alice", NULL, NULL, NULL);
    operate(gate, 1, "needs role 'senior'", "approve", "carol", NULL, NULL, NULL);
    operate(gate, 1, "not a user in access file", "approve", "mallory", "--access", access,
            NULL);
    operate(gate, 0, "approved by 'bob' (role 'senior', not the author): read the diff",
            "approve", "bob", "--reason", "read the diff", NULL);
    cn_sc_finish(gate);
    cn_sc_expect_code(gate, 0);
    cn_sc_expect_calls(gate, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_row(gate, "SELECT type, actor FROM events WHERE actor != 'canary' ORDER BY seq",
                     "intent_refused|alice\napproval_refused|carol\nintent_refused|mallory\n"
                     "approved|bob\n");
    cn_sc_expect_row(gate, "SELECT intent, actor, result IS NOT NULL FROM intents ORDER BY id",
                     "approve|carol|1\napprove|bob|1\n");
    /* The incident review's story names the approver and the refusals. */
    cn_test_output o;
    const char *args[] = {"explain", "shop-v2", "--state", gate->state, NULL};
    int code = cn_test_run(&o, gate->dir, args);
    for (char *p = o.out; *p; p++) /* explain wraps its sentences at 80 columns */
        if (*p == '\n')
            *p = ' ';
    bool told = code == 0 && strstr(o.out, "Approved by bob at ") &&
                strstr(o.out, "carol was refused the approval") &&
                strstr(o.out, "mallory was refused");
    if (!told)
        fprintf(stderr, "canary explain: exit %d\n%s\n%s\n", code, o.out, o.err);
    cn_test_output_free(&o);
    if (!told)
        cn_sc_fail(gate, "explain does not tell who approved and who was refused");

    wait_for(full, "stage 1 of 3 serves 10%");
    operate(full, 1, "needs role 'senior'", "promote", "carol", "--full", NULL, NULL);
    operate(full, 0, "going straight to the last stage", "promote", "bob", "--full", "--reason",
            "hotfix");
    wait_for(full, "stage 3 of 3 serves 100%");
    kill(full->run, SIGTERM);
    cn_sc_finish(full);
    cn_sc_expect_code(full, 4);
    cn_sc_expect_calls(full, "advance 1 10\nadvance 3 100\nrollback 0 0\n");
    cn_sc_expect_row(full, "SELECT type, actor FROM events WHERE actor != 'canary' ORDER BY seq",
                     "intent_refused|carol\noperator_promote_full|bob\napproved|bob\n");
}

/* pause, resume, promote and abort a human change, each acted on by the
 * driver and recorded with who asked. */
static void test_operator_lifecycle(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "pause, resume, promote, abort", CN_SC_EXEC);
    cn_sc_fake(s, HEALTHY);
    cn_sc_inputs(s, LADDER("1m") ANALYSIS_HEAD METRIC_ERR, HUMAN);
    cn_sc_start(s, "--access", access_file(s));
    wait_for(s, "stage 1 of 3 serves 10%");
    operate(s, 0, "paused at stage 1: by 'carol': looking", "pause", "carol", "--reason",
            "looking", NULL);
    cn_sc_expect_row(s, "SELECT state, stage FROM rollouts", "paused|1\n");
    operate(s, 0, "resumed", "resume", "carol", NULL, NULL, NULL);
    operate(s, 1, "not paused", "resume", "bob", "--reason", "twice", NULL);
    operate(s, 0, "the remaining bake", "promote", "carol", NULL, NULL, NULL);
    wait_for(s, "stage 2 of 3 serves 50%");
    operate(s, 0, "abort by 'carol': enough", "abort", "carol", "--reason", "enough", NULL);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 4);
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nrollback 0 0\n");
    cn_sc_expect_row(s, "SELECT state, exit_code, weight FROM rollouts", "aborted|4|0.0\n");
    cn_sc_expect_row(s, "SELECT type, actor FROM events WHERE actor != 'canary' ORDER BY seq",
                     "paused|carol\nresumed|carol\nintent_refused|bob\noperator_promote|carol\n"
                     "aborted|carol\n");
}

/* A request made while nothing drives the rollout waits for the resume;
 * and nobody approving within approval.timeout stops the rollout. */
static void test_undriven_and_timeout(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *d = cn_sc_new(x, "abort while nothing drives", CN_SC_HTTP);
    cn_scenario *t = cn_sc_new(x, "approval timeout", CN_SC_HTTP);
    cn_sc_fake(d, HEALTHY);
    cn_sc_inputs(d, LADDER("1m") ANALYSIS_HEAD METRIC_ERR, HUMAN);
    cn_sc_fake(t, HEALTHY);
    cn_sc_inputs(t, LADDER("1s") ANALYSIS_HEAD METRIC_ERR
                 "ai_assisted: {approval: {above_weight: 20%, role: senior, timeout: 2s}}\n",
                 AI);
    cn_sc_start(d, "--detach-on-signal", NULL);
    cn_sc_start(t, NULL, NULL);

    wait_for(d, "stage 1 of 3 serves 10%");
    kill(d->run, SIGTERM);
    cn_sc_finish(d);
    cn_sc_expect_code(d, 1);
    operate(d, 3, "nothing is driving rollout shop-v2", "abort", "carol", "--reason", "bad",
            NULL);
    cn_sc_run(d, NULL, NULL);
    cn_sc_expect_code(d, 4);
    cn_sc_expect_out(d, "abort by 'carol': bad");
    cn_sc_expect_calls(d, "advance 1 10\nrollback 0 0\n");

    cn_sc_finish(t);
    cn_sc_expect_code(t, 4);
    cn_sc_expect_out(t, "approval timed out: nobody approved stage 2 within 2s");
    cn_sc_expect_calls(t, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_row(t, "SELECT state, exit_code FROM rollouts", "aborted|4\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_approvals, cn_sc_setup, cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_operator_lifecycle, cn_sc_setup, cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_undriven_and_timeout, cn_sc_setup,
                                        cn_sc_teardown),
    };
    return cmocka_run_group_tests_name("operators", tests, NULL, NULL);
}
