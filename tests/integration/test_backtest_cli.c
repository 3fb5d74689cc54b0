/* canary backtest, end to end: the shipped corpus (examples/traces) under
 * the shipped example policies, in text, JSON and CSV, with the figures
 * docs/simulation.md quotes (also for the policy with a burn rate and a
 * judged metric); a corpus written by the test whose mean and
 * p95 are worked out by hand; every input error with its exit code; a
 * metric only one policy knows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checks.h"
#include "proc.h"

typedef struct fixture {
    char *dir;
    char corpus[4096];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = cn_test_tmpdir()))
        return -1;
    snprintf(f->corpus, sizeof f->corpus, "%s/corpus", f->dir);
    mkdir(f->corpus, 0700);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* JSON reals are rounded to 1e-6. */
static bool near(json_t *v, double want)
{
    double got = json_number_value(v);
    if (got - want < 1e-5 && want - got < 1e-5)
        return true;
    print_error("got %.17g, expected %.17g\n", got, want);
    return false;
}

static char *src(const char *relative)
{
    return strdup(cn_test_src(relative));
}

static int backtest(cn_test_output *o, const char *cwd, const char *const *extra)
{
    const char *args[24] = {"backtest"};
    size_t n = 1;
    for (size_t i = 0; extra[i] && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return cn_test_run(o, cwd, args);
}

/* ---- the shipped corpus -------------------------------------------------- */

static void test_examples(void **state)
{
    fixture *f = *state;
    char *quick = src("examples/backtest-quick.yaml");
    char *careful = src("examples/backtest-careful.yaml");
    char *tuned = src("examples/backtest-tuned.yaml");
    char *corpus = src("examples/traces");
    cn_test_output o;
    const char *text[] = {"--policy", quick, "--policy", careful, "--policy", tuned,
                          "--corpus", corpus, NULL};
    assert_int_equal(backtest(&o, f->dir, text), 0);
    assert_contains(o.out, "9 cases in ");
    assert_contains(o.out, " (4 healthy, 5 faulty) under 3 policies\n\n");
    assert_contains(o.out, "                        quick   careful  tuned\n"
                           "faults caught           2 of 5  3 of 5   3 of 5\n"
                           "faults missed           3       2        2\n"
                           "false rollbacks         2 of 4  1 of 4   1 of 4\n"
                           "undecided               0       0        0\n"
                           "time to rollback, mean  3m45s   18m40s   17m20s\n"
                           "time to rollback, p95   4m30s   31m30s   31m30s\n"
                           "healthy rollout, mean   10m     50m      40m\n");
    assert_contains(o.out, "slow-leak           faulty   completed in 10m  MISSED        "
                           "rolled_back at 31m30s       rolled_back at 31m30s\n");
    assert_contains(o.out, "no-traffic          healthy  rolled_back at 6m  FALSE ALARM  "
                           "paused at 30m  FALSE ALARM  paused at 24m  FALSE ALARM\n");
    /* the series only the burn-rate and judged policy reads differently */
    assert_contains(o.out, "latency-regression  faulty   completed in 10m  MISSED        "
                           "completed in 50m  MISSED    completed in 40m  MISSED\n");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);

    const char *json[] = {"--policy", quick, "--policy", tuned, "--corpus", corpus, "-o", "json",
                          NULL};
    assert_int_equal(backtest(&o, f->dir, json), 0);
    json_error_t je;
    json_t *j = json_loads(o.out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, o.out);
    assert_int_equal(json_array_size(json_object_get(j, "cases")), 9);
    json_t *q = json_array_get(json_object_get(j, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(q, "policy")), "quick");
    assert_int_equal(json_integer_value(json_object_get(q, "cases")), 9);
    assert_int_equal(json_integer_value(json_object_get(q, "caught")), 2);
    assert_int_equal(json_integer_value(json_object_get(q, "missed")), 3);
    assert_int_equal(json_integer_value(json_object_get(q, "false_rollbacks")), 2);
    assert_true(json_number_value(json_object_get(q, "mean_time_to_rollback_seconds")) == 225);
    assert_true(json_number_value(json_object_get(q, "p95_time_to_rollback_seconds")) == 270);
    assert_true(json_number_value(json_object_get(q, "mean_healthy_duration_seconds")) == 600);
    /* The missed leak goes on hurting at 100% until the trace ends. */
    assert_true(json_number_value(json_object_get(q, "total_impact")) > 300000);
    json_t *leak = json_array_get(json_object_get(q, "results"), 7);
    assert_string_equal(json_string_value(json_object_get(leak, "case")), "slow-leak");
    assert_string_equal(json_string_value(json_object_get(leak, "result")), "promoted");
    assert_int_equal(json_integer_value(json_object_get(leak, "exit_code")), 0);
    assert_true(json_is_null(json_object_get(leak, "stopped_seconds")));
    json_t *t = json_array_get(json_object_get(j, "policies"), 1);
    json_t *quiet = json_array_get(json_object_get(t, "results"), 6);
    assert_string_equal(json_string_value(json_object_get(quiet, "outcome")), "paused");
    assert_true(json_is_null(json_object_get(quiet, "exit_code")));
    assert_true(json_number_value(json_object_get(quiet, "stopped_seconds")) == 1440);
    json_decref(j);
    cn_test_output_free(&o);

    const char *csv[] = {"--policy", quick, "--policy", tuned, "--corpus", corpus, "-o", "csv",
                         NULL};
    assert_int_equal(backtest(&o, f->dir, csv), 0);
    char line[4096];
    snprintf(line, sizeof line, "quick,%s,9,5,2,3,0,4,2,0,225,270,600,113070,", quick);
    assert_prefix(o.out, "policy,file,cases,faulty,caught,missed,undecided_faults,healthy,"
                         "false_rollbacks,undecided_healthy,mean_time_to_rollback_seconds,"
                         "p95_time_to_rollback_seconds,mean_healthy_duration_seconds,"
                         "total_exposure_weight_seconds,total_impact\n");
    assert_contains(o.out, line);
    assert_int_equal(cn_test_count(o.out, "\n"), 3);
    cn_test_output_free(&o);

    /* The same signals as a burn rate against a 99.95% SLO and a judged
     * latency: every fault caught, sooner; the flaky glitch spends the
     * budget fast enough to roll back. */
    char *slo = src("examples/backtest-slo.yaml");
    const char *judged[] = {"--policy", tuned, "--policy", slo, "--corpus", corpus, NULL};
    assert_int_equal(backtest(&o, f->dir, judged), 0);
    assert_contains(o.out, "                        tuned   slo\n"
                           "faults caught           3 of 5  5 of 5\n"
                           "faults missed           2       0\n"
                           "false rollbacks         1 of 4  2 of 4\n"
                           "undecided               0       0\n"
                           "time to rollback, mean  17m20s  7m42s\n"
                           "time to rollback, p95   31m30s  16m30s\n"
                           "healthy rollout, mean   40m     40m\n");
    assert_contains(o.out, "budget-burn         faulty   completed in 40m  MISSED    "
                           "rolled_back at 8m30s\n");
    assert_contains(o.out, "latency-regression  faulty   completed in 40m  MISSED    "
                           "rolled_back at 1m\n");
    assert_contains(o.out, "latency-noise       healthy  completed in 40m            "
                           "completed in 40m\n");
    assert_contains(o.out, "flaky-metric        healthy  completed in 40m            "
                           "rolled_back at 5m30s  FALSE ALARM\n");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);
    free(slo);
    free(quick);
    free(careful);
    free(tuned);
    free(corpus);
}

/* ---- a corpus by hand ------------------------------------------------------ */

#define POLICY                                                                      \
    "name: %s\n"                                                                    \
    "plan: {steps: [10%%, 100%%], bake: 1m, min_samples: 1}\n"                      \
    "analysis:\n  interval: 10s\n  failure_limit: %d\n"                             \
    "  metrics:\n"                                                                  \
    "    - name: err\n"                                                             \
    "      prometheus: {address: \"http://127.0.0.1:9\", query: err}\n"             \
    "      threshold: {max: 1%%}\n%s"
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\n"

static void add_case(fixture *f, const char *name, const char *expect, const char *trace)
{
    char dir[4200], yaml[64];
    snprintf(dir, sizeof dir, "%s/%s", f->corpus, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(yaml, sizeof yaml, "expect: %s\n", expect);
    assert_non_null(cn_test_write(dir, "case.yaml", yaml));
    assert_non_null(cn_test_write(dir, "change.yaml", CHANGE));
    assert_non_null(cn_test_write(dir, "trace.csv", trace));
}

static const char *policy(fixture *f, const char *name, int failure_limit, const char *more)
{
    char text[2048], file[64];
    snprintf(text, sizeof text, POLICY, name, failure_limit, more);
    snprintf(file, sizeof file, "%s.yaml", name);
    return cn_test_write(f->dir, file, text);
}

static void test_by_hand(void **state)
{
    fixture *f = *state;
    /* Faults that show at 15 s, 35 s and 75 s (the first poll after: 20 s,
     * 40 s, 80 s), one healthy change, one that flakes once at 30 s. */
    add_case(f, "a-fault-15s", "faulty", "seconds,metric,value\n0,err,0.001\n15,err,0.5\n");
    add_case(f, "b-fault-35s", "faulty", "seconds,metric,value\n0,err,0.001\n35,err,0.5\n");
    add_case(f, "c-fault-75s", "faulty", "seconds,metric,value\n0,err,0.001\n75,err,0.5\n");
    add_case(f, "d-healthy", "healthy", "seconds,metric,value\n0,err,0.001\n");
    add_case(f, "e-flake", "healthy",
             "seconds,metric,value\n0,err,0.001\n25,err,0.5\n35,err,0.001\n");
    char strict[4096], lenient[4096];
    snprintf(strict, sizeof strict, "%s", policy(f, "strict", 0, ""));
    snprintf(lenient, sizeof lenient, "%s", policy(f, "lenient", 1, ""));
    cn_test_output o;
    const char *args[] = {"--policy", strict, "--policy", lenient, "--corpus", f->corpus,
                          "-o", "json", NULL};
    assert_int_equal(backtest(&o, f->dir, args), 0);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    json_t *s = json_array_get(json_object_get(j, "policies"), 0);
    json_t *l = json_array_get(json_object_get(j, "policies"), 1);
    /* strict: caught at 20, 40 and 80 s; the flake is a false rollback. */
    assert_int_equal(json_integer_value(json_object_get(s, "caught")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "false_rollbacks")), 1);
    assert_true(near(json_object_get(s, "mean_time_to_rollback_seconds"), (20 + 40 + 80) / 3.0));
    assert_true(json_number_value(json_object_get(s, "p95_time_to_rollback_seconds")) == 80);
    assert_true(json_number_value(json_object_get(s, "mean_healthy_duration_seconds")) == 120);
    /* lenient (failure_limit 1): a second failed poll is needed, 10 s
     * later (the fault at 75 s fails in stage 2, at 80 and 90 s); the
     * flake passes. */
    assert_int_equal(json_integer_value(json_object_get(l, "caught")), 3);
    assert_int_equal(json_integer_value(json_object_get(l, "false_rollbacks")), 0);
    assert_true(json_number_value(json_object_get(l, "p95_time_to_rollback_seconds")) == 90);
    assert_true(near(json_object_get(l, "mean_time_to_rollback_seconds"), (30 + 50 + 90) / 3.0));
    assert_true(json_number_value(json_object_get(l, "mean_healthy_duration_seconds")) == 120);
    /* Exposure, by hand: a-fault under strict is 10% for 20 s. */
    json_t *a = json_array_get(json_object_get(s, "results"), 0);
    assert_true(json_number_value(json_object_get(a, "exposure_weight_seconds")) == 200);
    /* 10% x 0.5 x 5 s hurt, reach 100% (no topology). */
    assert_true(json_number_value(json_object_get(a, "impact")) == 25);
    json_decref(j);
    cn_test_output_free(&o);

    /* A metric only one policy has: read under it, a note for the other. */
    char both[4096];
    snprintf(both, sizeof both, "%s",
             policy(f, "both", 0,
                    "    - name: p99\n"
                    "      prometheus: {address: \"http://127.0.0.1:9\", query: p99}\n"
                    "      threshold: {max: 400}\n"));
    add_case(f, "f-slow", "faulty", "seconds,metric,value\n0,err,0.001\n0,p99,900\n");
    const char *mixed[] = {"--policy", strict, "--policy", both, "--corpus", f->corpus, NULL};
    assert_int_equal(backtest(&o, f->dir, mixed), 0);
    assert_contains(o.err, "note: policy 'strict' has no metric 'p99': its rows in the traces "
                           "are not read under it\n");
    assert_int_equal(cn_test_count(o.err, "note:"), 1);
    const char *row = strstr(o.out, "\nf-slow ");
    assert_non_null(row);
    char *end = strchr(row + 1, '\n');
    assert_non_null(end);
    *end = '\0';
    assert_contains(row, " faulty   completed in 2m  MISSED ");
    assert_contains(row, " rolled_back at 10s");
    cn_test_output_free(&o);
}

/* ---- errors ----------------------------------------------------------------- */

static void expect_invalid(fixture *f, const char *const *args, const char *needle)
{
    cn_test_output o;
    int code = backtest(&o, f->dir, args);
    if (code != 2 || !strstr(o.err, needle))
        fail_msg("exit %d, expected 2 with \"%s\" on stderr:\n%s", code, needle, o.err);
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
}

static void test_errors(void **state)
{
    fixture *f = *state;
    char strict[4096];
    snprintf(strict, sizeof strict, "%s", policy(f, "strict", 0, ""));
    const char *args[] = {"--policy", strict, "--corpus", f->corpus, NULL};
    expect_invalid(f, args, "corpus: no cases: each case is a subdirectory holding trace.csv");
    const char *none[] = {"--corpus", f->corpus, NULL};
    expect_invalid(f, none, "canary backtest: give at least one --policy\nusage: canary backtest");
    const char *no_corpus[] = {"--policy", strict, NULL};
    expect_invalid(f, no_corpus, "--corpus is required");
    const char *bad_o[] = {"--policy", strict, "--corpus", f->corpus, "-o", "xml", NULL};
    expect_invalid(f, bad_o, "-o takes 'text', 'json' or 'csv', got 'xml'");
    const char *missing[] = {"--policy", strict, "--corpus", "/nonexistent/corpus", NULL};
    expect_invalid(f, missing, "/nonexistent/corpus: cannot read the corpus directory: No such "
                               "file or directory");

    /* Every problem of every case, and of every policy, in one run. */
    add_case(f, "bad-label", "broken", "seconds,metric,value\n0,err,0.001\n");
    add_case(f, "bad-trace", "faulty", "seconds,metric,value\n0,eror,0.001\n5,err,x\n");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/empty", f->corpus);
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *bad_policy = cn_test_write(f->dir, "bad.yaml", "name: bad\nplan: {bake: 5}\n");
    char bad[4096];
    snprintf(bad, sizeof bad, "%s", bad_policy);
    const char *all[] = {"--policy", strict, "--policy", bad, "--corpus", f->corpus, NULL};
    cn_test_output o;
    assert_int_equal(backtest(&o, f->dir, all), 2);
    assert_contains(o.err, "bad.yaml:2:14: 'bake' expects a duration");
    assert_contains(o.err, "bad-label/case.yaml:1:9: 'expect' must be one of 'healthy', 'faulty', got 'broken'");
    assert_contains(o.err, "bad-trace/trace.csv:3:7: 'value' expects a number");
    assert_contains(o.err, "empty: the case has no trace.csv, change.yaml, case.yaml: a case "
                           "needs");
    cn_test_output_free(&o);
    /* Names no policy knows, once the files are sound. */
    cn_test_rmtree(f->corpus);
    mkdir(f->corpus, 0700);
    add_case(f, "typo", "faulty", "seconds,metric,value\n0,eror,0.001\n");
    expect_invalid(f, args, "typo/trace.csv:2:3: unknown metric 'eror' (did you mean 'err'?): "
                            "none of the policies has it");
    /* A change that cannot be planned is reported once, not per policy. */
    cn_test_rmtree(f->corpus);
    mkdir(f->corpus, 0700);
    add_case(f, "no-version", "faulty", "seconds,metric,value\n0,err,0.001\n");
    char change[4200];
    snprintf(change, sizeof change, "%s/no-version", f->corpus);
    assert_non_null(cn_test_write(change, "change.yaml", "service: shop\n"));
    char lenient[4096];
    snprintf(lenient, sizeof lenient, "%s", policy(f, "lenient", 1, ""));
    const char *two[] = {"--policy", strict, "--policy", lenient, "--corpus", f->corpus, NULL};
    assert_int_equal(backtest(&o, f->dir, two), 2);
    assert_contains(o.err, "no-version/change.yaml");
    assert_int_equal(cn_test_count(o.err, "no-version/change.yaml"), 1);
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
    /* A policy without metrics judges nothing. */
    const char *bare = cn_test_write(f->dir, "bare.yaml", "name: bare\n");
    char bare_path[4096];
    snprintf(bare_path, sizeof bare_path, "%s", bare);
    const char *unmeasured[] = {"--policy", bare_path, "--corpus", f->corpus, NULL};
    expect_invalid(f, unmeasured, "policy 'bare' has no analysis.metrics");
    const char *twice[] = {"--policy", strict, "--policy", strict, "--corpus", f->corpus, NULL};
    expect_invalid(f, twice, "policy name 'strict' is also used by");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_examples),
        TEST(test_by_hand),
        TEST(test_errors),
    };
    return cmocka_run_group_tests_name("backtest", tests, NULL, NULL);
}
