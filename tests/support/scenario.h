/*
 * scenario.h: `canary run` scenarios for integration tests: each in its own
 * temporary directory, with its own fake metrics server (tests/fake), a
 * policy and change written by the test, and the real binary run in the
 * background.
 *
 * Contract: use cn_sc_setup/cn_sc_teardown as a cmocka test's setup and
 * teardown; the teardown kills every canary still running, stops every
 * fake (failing when one did not exit 0 on SIGTERM) and removes the
 * directories, also after a failed assertion. cn_sc_new() makes a
 * scenario (at most CN_SC_MAX per test); cn_sc_fake() starts its fake on
 * 127.0.0.1 with a script (tests/fake/README.md), a log and a weight file.
 *
 * cn_sc_inputs() writes policy.yaml ("name: t", then body, then, when the
 * body has no "actuator:" of its own, the scenario's actuator with
 * retries 1 and backoff 0s) and change.yaml. In the body, @ADDR@ is the
 * fake's base URL, @DIR@ the scenario's directory, @CLOSED@ a URL where
 * nothing listens. The http actuator POSTs to the fake's /actuate; the
 * exec actuator is @DIR@/act.sh, written by cn_sc_exec_actuator() (by
 * cn_sc_inputs() when not yet written): it appends "ACTION STAGE WEIGHT"
 * to the calls file, exits 1 when the shell condition fail_if holds, and
 * otherwise appends the weight to the fake's weight file.
 *
 * cn_sc_run_all() runs `canary run --change --policy --state` plus up to
 * two extra arguments for each scenario, side by side unless under
 * $CANARY_WRAPPER, and fills code, out and err; a run that does not end in
 * time fails the test. cn_sc_calls() gives the actuator calls made, one
 * "ACTION STAGE WEIGHT" line each, from the calls file or the fake's log
 * (" rejected" appended to one the fake refused).
 *
 * Every cn_sc_expect_* failure names the scenario and prints the run's
 * stdout and stderr whole.
 */
#ifndef CANARY_TEST_SCENARIO_H
#define CANARY_TEST_SCENARIO_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CN_SC_MAX 10
/* How long one run may take, before cn_test_patience_ms() stretches it. */
#define CN_SC_RUN_LIMIT_MS 60000

typedef enum { CN_SC_HTTP, CN_SC_EXEC } cn_sc_act;

typedef struct cn_scenario {
    const char *name; /* shown in every failure */
    cn_sc_act act;
    char *dir;
    pid_t fake, run;
    int port;
    char addr[64]; /* http://127.0.0.1:PORT */
    char log[4096], weights[4096], ports[4096], calls[4096], state[4096];
    char policy[4096], change[4096], out_path[4096], err_path[4096];
    int code;        /* of the last run */
    char *out, *err; /* of the last run, never NULL after one */
} cn_scenario;

typedef struct cn_scenarios {
    cn_scenario sc[CN_SC_MAX];
    size_t n;
} cn_scenarios;

int cn_sc_setup(void **state);
int cn_sc_teardown(void **state);

cn_scenario *cn_sc_new(cn_scenarios *x, const char *name, cn_sc_act act);
void cn_sc_fake(cn_scenario *s, const char *script);
void cn_sc_exec_actuator(cn_scenario *s, const char *fail_if);
void cn_sc_inputs(cn_scenario *s, const char *body, const char *change);

void cn_sc_start(cn_scenario *s, const char *extra1, const char *extra2);
void cn_sc_finish(cn_scenario *s);
void cn_sc_run_all(cn_scenario *const *list, size_t n, const char *extra1, const char *extra2);
void cn_sc_run(cn_scenario *s, const char *extra1, const char *extra2);

/* Caller frees. */
char *cn_sc_calls(const cn_scenario *s);
/* A whole file, or NULL when it cannot be read; caller frees. */
char *cn_sc_slurp(const char *path);

void cn_sc_fail(const cn_scenario *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cn_sc_expect_code(const cn_scenario *s, int want);
void cn_sc_expect_out(const cn_scenario *s, const char *needle);
void cn_sc_expect_err(const cn_scenario *s, const char *needle);
void cn_sc_expect_text(const cn_scenario *s, const char *what, const char *got, const char *want);
void cn_sc_expect_calls(const cn_scenario *s, const char *want);
/* No state database, no .canary directory, no actuator call. */
void cn_sc_expect_untouched(const cn_scenario *s);

/* The scenario's state database, read-only; close with sqlite3_close. */
sqlite3 *cn_sc_db(const cn_scenario *s);
/* The rows of sql, columns joined by '|', one row a line; caller frees. */
char *cn_sc_rows(sqlite3 *db, const char *sql);
void cn_sc_expect_row(const cn_scenario *s, const char *sql, const char *want);

#endif
