/* Resume after a crash, end to end: the real `canary run` is killed with
 * SIGKILL at each point of the stage cycle (in the actuator call before
 * and after it applied, during a bake, during the rollback, during the
 * completion) and run again with the same command. Each case asserts the
 * final exit code, the exact actuator calls (the interrupted one made
 * again, never an earlier stage), that the weight the actuator set never
 * went backwards except by the rollback, that the event log says it
 * resumed and its audit chain is intact. Also: one driver at a time (a
 * second run is refused, naming the holder), --new-attempt, and a resume
 * refused when the stages changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
#define HEALTHY "errors 0 value 0.001\n"
/* Healthy until the canary serves 50%, then 50% errors. */
#define DEGRADES_AT_50 "errors 50 value 0.5\nerrors 0 value 0.001\n"

/* An exec actuator that logs each call and, once, kills canary (its
 * parent) with SIGKILL at the call "ACTION-STAGE" given: `before` it
 * applies (it then fails, as a call cut short would), or `after`. */
static void killing_actuator(cn_scenario *s, const char *call, const char *when)
{
    bool before = !strcmp(when, "before");
    char script[4 * 4096];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "echo \"$CANARY_ACTION $CANARY_STAGE $CANARY_WEIGHT\" >> '%s'\n"
             "kill_once() {\n"
             "  if [ \"$CANARY_ACTION-$CANARY_STAGE\" = '%s' ] && [ ! -e '%s/killed' ]; then\n"
             "    touch '%s/killed'; kill -9 $PPID; %s\n"
             "  fi\n"
             "}\n"
             "%s"
             "echo \"$CANARY_WEIGHT\" >> '%s'\n"
             "%s",
             s->calls, call, s->dir, s->dir, before ? "exit 1" : "", before ? "kill_once\n" : "",
             s->weights, before ? "" : "kill_once\n");
    const char *path = cn_test_write(s->dir, "act.sh", script);
    assert_non_null(path);
    assert_int_equal(chmod(path, 0755), 0);
}

/* The weights the actuator set, in order, never go down but to 0. */
static void expect_weights_forward(const cn_scenario *s)
{
    char *w = cn_sc_slurp(s->weights);
    double last = 0;
    bool rolled = false;
    for (char *line = strtok(w ? w : (char *)"", "\n"); line; line = strtok(NULL, "\n")) {
        double v = strtod(line, NULL);
        if (v == 0) {
            rolled = true;
        } else if (rolled || v < last) {
            free(w);
            cn_sc_fail(s, "the weight went backwards to %g (after %g%s)", v, last,
                       rolled ? " and a rollback" : "");
        }
        last = v;
    }
    free(w);
}

static void expect_audit_intact(const cn_scenario *s)
{
    cn_test_output o;
    const char *args[] = {"audit", "verify", "--state", s->state, NULL};
    int code = cn_test_run(&o, s->dir, args);
    bool ok = code == 0 && strstr(o.out, "intact");
    if (!ok)
        fprintf(stderr, "canary audit verify: exit %d\n%s\n%s\n", code, o.out, o.err);
    cn_test_output_free(&o);
    if (!ok)
        cn_sc_fail(s, "the audit chain is not intact");
}

typedef struct kill_case {
    const char *name, *call, *when, *metrics;
    int code;
    const char *calls, *state;
} kill_case;

static const kill_case KILLS[] = {
    {"killed in the advance to stage 2, before it applied", "advance-2", "before", HEALTHY, 0,
     "advance 1 10\nadvance 2 50\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n",
     "completed|0|1.0\n"},
    {"killed in the advance to stage 2, after it applied", "advance-2", "after", HEALTHY, 0,
     "advance 1 10\nadvance 2 50\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n",
     "completed|0|1.0\n"},
    {"killed in the completion", "complete-3", "after", HEALTHY, 0,
     "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\ncomplete 3 100\n",
     "completed|0|1.0\n"},
    {"killed in the rollback, before it applied", "rollback-0", "before", DEGRADES_AT_50, 3,
     "advance 1 10\nadvance 2 50\nrollback 0 0\nrollback 0 0\n", "rolled_back|3|0.0\n"},
    {"killed in the rollback, after it applied", "rollback-0", "after", DEGRADES_AT_50, 3,
     "advance 1 10\nadvance 2 50\nrollback 0 0\nrollback 0 0\n", "rolled_back|3|0.0\n"},
};

static void test_killed_in_actuator_calls(void **state)
{
    cn_scenarios *x = *state;
    size_t n = sizeof KILLS / sizeof KILLS[0];
    cn_scenario *list[sizeof KILLS / sizeof KILLS[0]];
    for (size_t i = 0; i < n; i++) {
        cn_scenario *s = list[i] = cn_sc_new(x, KILLS[i].name, CN_SC_EXEC);
        cn_sc_fake(s, KILLS[i].metrics);
        killing_actuator(s, KILLS[i].call, KILLS[i].when);
        cn_sc_inputs(s, LADDER("1s") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    }
    for (size_t i = 0; i < n; i++)
        cn_sc_start(list[i], NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        cn_sc_finish(list[i]);
        cn_sc_expect_code(list[i], 128 + SIGKILL);
    }
    for (size_t i = 0; i < n; i++)
        cn_sc_start(list[i], NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        cn_scenario *s = list[i];
        cn_sc_finish(s);
        cn_sc_expect_code(s, KILLS[i].code);
        cn_sc_expect_out(s, "resuming it");
        cn_sc_expect_out(s, "is made again (actuator calls are idempotent)");
        cn_sc_expect_calls(s, KILLS[i].calls);
        cn_sc_expect_row(s, "SELECT state, exit_code, weight FROM rollouts", KILLS[i].state);
        cn_sc_expect_row(s, "SELECT count(*) FROM events WHERE type = 'resumed'", "1\n");
        /* The log goes on under the same attempt, nothing lost. */
        cn_sc_expect_row(s, "SELECT count(DISTINCT attempt) FROM events", "1\n");
        expect_weights_forward(s);
        expect_audit_intact(s);
    }
}

/* Killed while stage 2 bakes: stage 2 is not applied again, and the bake
 * it served before the kill counts. */
static void test_killed_during_bake(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "killed during the bake of stage 2", CN_SC_EXEC);
    cn_sc_fake(s, HEALTHY);
    cn_sc_inputs(s, LADDER("4s") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    cn_sc_start(s, NULL, NULL);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    if (!cn_test_wait_text(s->out_path, "stage 2 of 3 serves 50%", limit))
        cn_sc_fail(s, "stage 2 was not applied in time");
    /* Let some bake and a measurement or two be served and logged. */
    if (!cn_test_wait_text(s->out_path, "stage 2: err: pass", limit))
        cn_sc_fail(s, "stage 2 was not measured in time");
    assert_int_equal(kill(s->run, SIGKILL), 0);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 128 + SIGKILL);
    cn_sc_expect_row(s, "SELECT state, stage FROM rollouts", "progressing|2\n");

    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    cn_sc_expect_out(s, "driving again at stage 2 (50%)");
    cn_sc_expect_out(s, "of its bake served and its evidence kept");
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    expect_weights_forward(s);
    expect_audit_intact(s);
}

/* Killed while a slow actuator call runs: the call's process outlives
 * canary (its own process group) and would apply its weight seconds
 * later, after the resumed run moved on; the resumed run stops it first. */
static void test_orphaned_call_stopped(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "orphaned actuator call", CN_SC_EXEC);
    cn_sc_fake(s, HEALTHY);
    char script[4 * 4096];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "echo \"$CANARY_ACTION $CANARY_STAGE $CANARY_WEIGHT\" >> '%s'\n"
             "if [ \"$CANARY_ACTION-$CANARY_STAGE\" = advance-2 ] && [ ! -e '%s/killed' ]; then\n"
             "  touch '%s/killed'; kill -9 $PPID; sleep 4\n"
             "fi\n"
             "echo \"$CANARY_WEIGHT\" >> '%s'\n",
             s->calls, s->dir, s->dir, s->weights);
    assert_non_null(cn_test_write(s->dir, "act.sh", script));
    char path[4200];
    snprintf(path, sizeof path, "%s/act.sh", s->dir);
    assert_int_equal(chmod(path, 0755), 0);
    cn_sc_inputs(s, LADDER("1s") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 128 + SIGKILL);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    cn_sc_expect_out(s, "stopped 1 actuator call the last run left running");
    /* Longer than the orphan's sleep: had it lived, its 50 would land now. */
    int limit = cn_test_patience_ms(5000);
    cn_test_wait_text(s->weights, "never written", limit);
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nadvance 2 50\nadvance 3 100\n"
                          "complete 3 100\n");
    char *w = cn_sc_slurp(s->weights);
    cn_sc_expect_text(s, "weights applied", w ? w : "", "10\n50\n100\n100\n");
    free(w);
}

/* A second run while the first drives: refused, naming the holder. */
static void test_one_driver(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "second canary run for a driven rollout", CN_SC_HTTP);
    cn_sc_fake(s, HEALTHY);
    cn_sc_inputs(s, LADDER("1m") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    cn_sc_start(s, NULL, NULL);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    if (!cn_test_wait_text(s->out_path, "stage_applied", limit))
        cn_sc_fail(s, "stage 1 was not applied in time");
    pid_t first = s->run;

    cn_test_output o;
    const char *args[] = {"run", "--change", s->change, "--policy", s->policy, "--state",
                          s->state, NULL};
    int code = cn_test_run(&o, s->dir, args);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d", (int)first);
    bool ok = code == 1 && strstr(o.err, "is driven by '") && strstr(o.err, pid);
    if (!ok)
        fprintf(stderr, "second run: exit %d\n%s\n%s\n", code, o.out, o.err);
    cn_test_output_free(&o);
    assert_true(ok);

    /* The first goes on undisturbed; stopped, it leaves the lease free. */
    assert_int_equal(kill(first, SIGTERM), 0);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 4);
    cn_sc_expect_calls(s, "advance 1 10\nrollback 0 0\n");
    cn_sc_expect_row(s, "SELECT count(*) FROM leases", "0\n");
}

/* --new-attempt starts a finished rollout over as attempt 2; it is
 * refused for an unfinished one; a resume whose stages changed is refused. */
static void test_attempts_and_changed_plan(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "--new-attempt", CN_SC_HTTP);
    cn_sc_fake(s, HEALTHY);
    cn_sc_inputs(s, LADDER("1s") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    cn_sc_run(s, "--new-attempt", NULL);
    cn_sc_expect_code(s, 0);
    cn_sc_expect_out(s, "attempt 2 starts over (attempt 1 ended completed)");
    cn_sc_expect_calls(s, "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n"
                          "advance 1 10\nadvance 2 50\nadvance 3 100\ncomplete 3 100\n");
    cn_sc_expect_row(s, "SELECT rollout, attempt, exit_code FROM attempts ORDER BY attempt",
                     "shop-v2|1|0\nshop-v2|2|0\n");
    cn_sc_expect_row(s, "SELECT attempt, count(*) FROM events WHERE type = 'started' "
                        "GROUP BY attempt", "1|1\n2|1\n");
    expect_audit_intact(s);

    cn_scenario *d = cn_sc_new(x, "resume with other stages", CN_SC_HTTP);
    cn_sc_fake(d, HEALTHY);
    cn_sc_inputs(d, LADDER("1m") ANALYSIS_HEAD METRIC_ERR, CHANGE);
    cn_sc_start(d, "--detach-on-signal", NULL);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    if (!cn_test_wait_text(d->out_path, "stage_applied", limit))
        cn_sc_fail(d, "stage 1 was not applied in time");
    assert_int_equal(kill(d->run, SIGTERM), 0);
    cn_sc_finish(d);
    cn_sc_expect_code(d, 1);
    cn_sc_run(d, "--new-attempt", NULL);
    cn_sc_expect_code(d, 1);
    cn_sc_expect_err(d, "--new-attempt starts over only a finished rollout");
    cn_sc_inputs(d, "plan: {steps: [5%, 100%], bake: 1m, min_samples: 1}\n" ANALYSIS_HEAD
                    METRIC_ERR, CHANGE);
    cn_sc_run(d, NULL, NULL);
    cn_sc_expect_code(d, 2);
    cn_sc_expect_err(d, "cannot be resumed: its stages changed since it started");
    cn_sc_expect_calls(d, "advance 1 10\n");
    cn_sc_expect_row(d, "SELECT state, stage FROM rollouts", "progressing|1\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_killed_in_actuator_calls, cn_sc_setup,
                                        cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_killed_during_bake, cn_sc_setup, cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_orphaned_call_stopped, cn_sc_setup,
                                        cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_one_driver, cn_sc_setup, cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_attempts_and_changed_plan, cn_sc_setup,
                                        cn_sc_teardown),
    };
    return cmocka_run_group_tests_name("resume", tests, NULL, NULL);
}
