/* canary watch, end to end: the real `canary run` drives a rollout against
 * the fake metrics server while the real `canary watch` follows it from
 * the same state database, not on a terminal: a block per change, ending
 * with the final one. Also: a finished rollout (one block, at once), an
 * unknown id and a missing database (as `canary status` says them), and
 * SIGTERM, which ends watch and leaves the rollout running. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "background.h"
#include "checks.h"
#include "proc.h"
#include "scenario.h"

#define ANALYSIS                                                                     \
    "analysis:\n  interval: 1s\n  timeout: 900ms\n"                                  \
    "  metrics:\n"                                                                   \
    "    - name: err\n"                                                              \
    "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define PLAN_SHORT "plan: {steps: [10%, 100%], bake: 1s, min_samples: 1}\n"
#define PLAN_WRAPPED "plan: {steps: [10%, 100%], bake: 5s, min_samples: 1}\n"
#define PLAN_LONG "plan: {steps: [10%, 50%, 100%], bake: 5m, min_samples: 1}\n"
#define SHOP "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"

static long long count_rows(const cn_scenario *s, const char *sql)
{
    sqlite3 *db = cn_sc_db(s);
    char *n = cn_sc_rows(db, sql);
    long long v = strtoll(n, NULL, 10);
    free(n);
    sqlite3_close(db);
    return v;
}

/* `canary watch ID --state` in the background, its output in s's dir. */
static pid_t start_watch(const cn_scenario *s, const char *id, char *out, char *err, size_t len)
{
    snprintf(out, len, "%s/watch.out", s->dir);
    snprintf(err, len, "%s/watch.err", s->dir);
    const char *args[] = {"watch", id, "--state", s->state, NULL};
    pid_t pid = cn_test_spawn(s->dir, args, out, err);
    assert_true(pid > 0);
    return pid;
}

static void assert_lines_fit(const char *text)
{
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 80) {
            print_error("line over 80 columns: %.*s\n", (int)len, line);
            fail();
        }
        line += len + (nl ? 1 : 0);
    }
}

static void test_follows_a_run(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "watch a healthy run", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    /* Under valgrind watch itself takes a second or more to start: a
     * longer bake keeps stage 1 on screen until it looks. */
    cn_sc_inputs(s, cn_test_wrapped() ? PLAN_WRAPPED ANALYSIS : PLAN_SHORT ANALYSIS, SHOP);
    cn_sc_start(s, NULL, NULL);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    if (!cn_test_wait_text(s->out_path, "stage_applied", limit))
        cn_sc_fail(s, "stage 1 was not applied in time");
    char out[4200], err[4200];
    pid_t w = start_watch(s, "shop-v2", out, err, sizeof out);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 0);
    assert_int_equal(cn_test_wait(w, limit), 0);
    char *text = cn_sc_slurp(out), *errs = cn_sc_slurp(err);
    assert_non_null(text);
    assert_non_null(errs);
    assert_string_equal(errs, "");
    /* Stage 1 seen while it baked, then the end. */
    const char *first = strstr(text, "stage 1/2 [##-");
    const char *last = strstr(text, "state     completed, stage 2/2 [########################] 100%\n");
    if (!first || !last || last < first) {
        print_error("watch printed:\n%s\n", text);
        fail();
    }
    assert_contains(last, "result    promoted to 100% (exit 0)\n");
    assert_contains(last, "err                  pass     0.001        [-, 0.01]\n");
    assert_contains(last, "last decisions (UTC):\n");
    assert_contains(last, " completed          the new version serves 100% after stage 2\n");
    /* The final block is the last thing printed. */
    assert_null(strstr(last + 1, "rollout   "));
    /* A block per change, never more. */
    size_t blocks = cn_test_count(text, "rollout   shop-v2  (shop v2)\n");
    long long events = count_rows(s, "SELECT count(*) FROM events WHERE rollout = 'shop-v2'");
    assert_true(blocks >= 2);
    assert_true((long long)blocks <= events + 1);
    assert_int_equal(cn_test_count(text, "\n\nrollout   "), blocks - 1);
    assert_lines_fit(text);
    free(text);
    free(errs);

    /* Finished: one block at once, the same final picture. */
    pid_t again = start_watch(s, "shop-v2", out, err, sizeof out);
    assert_int_equal(cn_test_wait(again, cn_test_patience_ms(5000)), 0);
    text = cn_sc_slurp(out);
    assert_non_null(text);
    assert_int_equal(cn_test_count(text, "rollout   shop-v2"), 1);
    assert_contains(text, "state     completed, stage 2/2 [");
    assert_contains(text, "result    promoted to 100% (exit 0)\n");
    free(text);
}

static void test_unknown_and_missing(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "unknown id", CN_SC_HTTP);
    cn_test_output o;
    /* No database yet: as status says it, and nothing is created. */
    const char *none[] = {"watch", "shop-v2", "--state", s->state, NULL};
    assert_int_equal(cn_test_run(&o, s->dir, none), 1);
    char msg[4300];
    snprintf(msg, sizeof msg,
             "canary watch: no state database at %s: nothing has run here (use --state)\n",
             s->state);
    assert_string_equal(o.err, msg);
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
    cn_sc_expect_untouched(s);

    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, PLAN_SHORT ANALYSIS, SHOP);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);
    const char *unknown[] = {"watch", "shop-v3", "--state", s->state, NULL};
    assert_int_equal(cn_test_run(&o, s->dir, unknown), 1);
    snprintf(msg, sizeof msg, "canary watch: no rollout 'shop-v3' in %s\ndid you mean: shop-v2?\n",
             s->state);
    assert_string_equal(o.err, msg);
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
    const char *status[] = {"status", "shop-v3", "--state", s->state, NULL};
    assert_int_equal(cn_test_run(&o, s->dir, status), 1);
    cn_test_output_free(&o);
    /* Without an id: the list, as status prints it, until a signal. */
    char out[4200], err[4200];
    snprintf(out, sizeof out, "%s/list.out", s->dir);
    snprintf(err, sizeof err, "%s/list.err", s->dir);
    const char *list[] = {"watch", "--state", s->state, NULL};
    pid_t w = cn_test_spawn(s->dir, list, out, err);
    assert_true(w > 0);
    assert_true(cn_test_wait_text(out, "LAST DECISION", cn_test_patience_ms(5000)));
    assert_int_equal(kill(w, SIGINT), 0);
    assert_int_equal(cn_test_wait(w, cn_test_patience_ms(5000)), 0);
    char *text = cn_sc_slurp(out);
    assert_non_null(text);
    assert_int_equal(cn_test_count(text, "LAST DECISION"), 1);
    assert_contains(text, "shop-v2  shop     v2       no  completed  2/2    100%");
    free(text);
    const char *extra[] = {"watch", "a", "b", NULL};
    assert_int_equal(cn_test_run(&o, s->dir, extra), 2);
    assert_contains(o.err, "canary watch: unexpected argument 'b'\nusage: canary watch");
    cn_test_output_free(&o);
}

static void test_sigterm_leaves_the_rollout(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "SIGTERM to watch", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, PLAN_LONG ANALYSIS, SHOP);
    cn_sc_start(s, NULL, NULL);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    if (!cn_test_wait_text(s->out_path, "stage_applied", limit))
        cn_sc_fail(s, "stage 1 was not applied in time");
    char out[4200], err[4200];
    pid_t w = start_watch(s, "shop-v2", out, err, sizeof out);
    assert_true(cn_test_wait_text(out, "bake      ", limit));
    assert_int_equal(kill(w, SIGTERM), 0);
    assert_int_equal(cn_test_wait(w, cn_test_patience_ms(5000)), 0);
    char *text = cn_sc_slurp(out);
    assert_non_null(text);
    assert_contains(text, "state     progressing, stage 1/3 [##-");
    assert_contains(text, "bake      ");
    assert_contains(text, " of 5m\n");
    assert_null(strstr(text, "result "));
    free(text);
    /* The run goes on, untouched. */
    assert_int_equal(cn_test_wait(s->run, 300), CN_TEST_STILL_RUNNING);
    cn_sc_expect_row(s, "SELECT state, stage FROM rollouts WHERE id = 'shop-v2'",
                     "progressing|1\n");
    assert_int_equal(kill(s->run, SIGTERM), 0);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 4);
}

/* Drains both terminals until pid ends; returns its exit code. */
static int drain_until_exit(pid_t pid, int *masters, char **bufs, size_t *lens, int limit_ms)
{
    for (int waited = 0; waited < limit_ms; waited += 50) {
        for (int i = 0; i < 2; i++)
            cn_test_tty_wait(masters[i], &bufs[i], &lens[i], NULL, 25);
        int code = cn_test_wait(pid, 0);
        if (code != CN_TEST_STILL_RUNNING)
            return code;
    }
    return CN_TEST_STILL_RUNNING;
}

/* On a terminal: run redraws its status block in place (cursor up, clear
 * to the end) under the scrolling decisions, and watch redraws the whole
 * screen on each change, ending on the final picture. */
static void test_on_a_terminal(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "run and watch on terminals", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, cn_test_wrapped() ? PLAN_WRAPPED ANALYSIS : PLAN_SHORT ANALYSIS, SHOP);
    int limit = cn_test_patience_ms(CN_SC_RUN_LIMIT_MS);
    int masters[2] = {-1, -1};
    char *bufs[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    char run_err[4200], watch_err[4200];
    snprintf(run_err, sizeof run_err, "%s/run.err", s->dir);
    snprintf(watch_err, sizeof watch_err, "%s/watch.err", s->dir);
    const char *run_args[] = {"run", "--change", s->change, "--policy", s->policy, "--state",
                              s->state, NULL};
    pid_t run = cn_test_spawn_tty(s->dir, run_args, run_err, &masters[0]);
    assert_true(run > 0);
    s->run = run; /* killed by the teardown if the test fails */
    if (!cn_test_tty_wait(masters[0], &bufs[0], &lens[0], "stage_applied", limit))
        cn_sc_fail(s, "stage 1 was not applied in time");
    const char *watch_args[] = {"watch", "shop-v2", "--state", s->state, NULL};
    pid_t watch = cn_test_spawn_tty(s->dir, watch_args, watch_err, &masters[1]);
    assert_true(watch > 0);
    assert_int_equal(drain_until_exit(run, masters, bufs, lens, limit), 0);
    s->run = 0;
    assert_int_equal(drain_until_exit(watch, masters, bufs, lens, limit), 0);
    cn_test_tty_wait(masters[1], &bufs[1], &lens[1], NULL, 50);
    close(masters[0]);
    close(masters[1]);

    const char *run_tty = bufs[0] ? bufs[0] : "", *watch_tty = bufs[1] ? bufs[1] : "";
    bool ok = strstr(run_tty, "stage 1/2 [") && strstr(run_tty, "A\r\033[J") &&
              strstr(run_tty, "result: promoted to 100% (exit 0)") &&
              cn_test_count(watch_tty, "\033[H\033[2J") >= 2 &&
              strstr(watch_tty, "state     completed, stage 2/2 [") &&
              strstr(watch_tty, "result    promoted to 100% (exit 0)");
    /* The last picture is the final one: nothing redrawn after it. */
    const char *last_clear = watch_tty;
    for (const char *p = watch_tty; (p = strstr(p, "\033[H\033[2J")); p++)
        last_clear = p;
    ok = ok && strstr(last_clear, "completed");
    if (!ok)
        print_error("run's terminal:\n%s\n--- watch's terminal:\n%s\n", run_tty, watch_tty);
    free(bufs[0]);
    free(bufs[1]);
    assert_true(ok);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_follows_a_run),
        TEST(test_unknown_and_missing),
        TEST(test_sigterm_leaves_the_rollout),
        TEST(test_on_a_terminal),
    };
    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
