/* The real binary, run as a pipeline or an operator would: exit codes,
 * messages at FILE:LINE:COLUMN, the plan table and its JSON, the demo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "proc.h"

extern char **environ;

#define RUN(o, ...) cn_test_run(o, NULL, (const char *const[]){__VA_ARGS__, NULL})

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected to find \"%s\" in:\n%s", needle, hay);
}

static void test_usage_and_dispatch(void **state)
{
    (void)state;
    cn_test_output o;
    assert_int_equal(cn_test_run(&o, NULL, (const char *const[]){NULL}), 2);
    assert_contains(o.err, "usage: canary COMMAND");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "help"), 0);
    assert_contains(o.out, "validate");
    assert_contains(o.out, "plan");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "version"), 0);
    assert_contains(o.out, "canary 0.");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "frobnicate"), 2);
    assert_contains(o.err, "unknown command 'frobnicate'");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "plan", "--frobnicate"), 2);
    assert_contains(o.err, "unknown flag '--frobnicate'");
    assert_contains(o.err, "usage: canary plan");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "plan", "--help"), 0);
    assert_contains(o.out, "usage: canary plan");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "help", "validate"), 0);
    assert_contains(o.out, "usage: canary validate");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "validate", "--kind", "nonsense", "x"), 2);
    assert_contains(o.err, "--kind takes policy, change, topology or access");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "plan", "--topology"), 2);
    assert_contains(o.err, "'--topology' needs a value");
    cn_test_output_free(&o);
}

static void test_validate_shipped_files(void **state)
{
    (void)state;
    cn_test_output o;
    assert_int_equal(RUN(&o, "validate", cn_test_src("policies"), cn_test_src("examples")), 0);
    assert_contains(o.out, "default.yaml (policy 'default')");
    assert_contains(o.out, "tier0-critical.yaml (policy");
    assert_contains(o.out, "ai-assisted.yaml (policy");
    assert_contains(o.out, "topology.yaml (topology of 5 services)");
    assert_contains(o.out, "checkout-change.yaml (change 'checkout-v2.14.0')");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);
}

static void test_validate_reports_every_problem(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    const char *bad = cn_test_write(dir, "bad.yaml",
                                    "name: broken\n"
                                    "plan:\n"
                                    "  growht: 4\n"
                                    "  bake: 5\n"
                                    "  first_stage_impact: 0.1\n"
                                    "analysis:\n"
                                    "  intervall: 30s\n");
    const char *change = cn_test_write(dir, "change.json",
                                       "{\n  \"service\": \"checkout\",\n"
                                       "  \"version\": \"v1\",\n"
                                       "  \"ai_assisted\": \"yes\"\n}\n");
    cn_test_output o;
    assert_int_equal(RUN(&o, "validate", bad, change), 2);
    char want[4096];
    snprintf(want, sizeof want,
             "%s:3:3: unknown key 'growht' in plan (did you mean 'growth'?)", bad);
    assert_contains(o.err, want);
    snprintf(want, sizeof want, "%s:4:9: 'bake' expects a duration with a unit", bad);
    assert_contains(o.err, want);
    snprintf(want, sizeof want, "%s:5:23: 'first_stage_impact' expects a percentage", bad);
    assert_contains(o.err, want);
    snprintf(want, sizeof want,
             "%s:7:3: unknown key 'intervall' in analysis (did you mean 'interval'?)", bad);
    assert_contains(o.err, want);
    snprintf(want, sizeof want, "%s:4:18: 'ai_assisted' expects true or false, got 'yes'",
             change);
    assert_contains(o.err, want);
    assert_contains(o.err, "canary validate: 5 problems in 2 of 2 files");
    assert_int_equal(cn_test_count(o.out, "ok "), 0);
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_validate_duplicate_policy_names(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    const char *a = cn_test_write(dir, "a.yaml", "name: same\n");
    const char *b = cn_test_write(dir, "b.yaml", "# another team's copy\nname: same\n");
    cn_test_output o;
    assert_int_equal(RUN(&o, "validate", a, b), 2);
    char want[4096];
    snprintf(want, sizeof want, "%s:2:7: policy name 'same' is also used by %s", b, a);
    assert_contains(o.err, want);
    assert_int_equal(cn_test_count(o.out, "ok "), 1);
    assert_contains(o.err, "1 problem in 1 of 2 files");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_validate_hostile_files(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    /* a billion-laughs alias bomb */
    char bomb[4096] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'j'; c++) {
        char line[128];
        snprintf(line, sizeof line, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
                 c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
        strcat(bomb, line);
    }
    const char *bomb_path = cn_test_write(dir, "bomb.yaml", bomb);
    const char *empty = cn_test_write(dir, "empty.yaml", "");
    const char *garbage = cn_test_write(dir, "garbage.yaml", "\x7f" "ELF\x01\x02\xff\xfe\n");
    /* 50 MB, written sparsely so the test stays fast */
    char big[4096];
    snprintf(big, sizeof big, "%s/big.yaml", dir);
    FILE *f = fopen(big, "w");
    assert_non_null(f);
    assert_int_equal(fseek(f, 50L << 20, SEEK_SET), 0);
    fputs("x: 1\n", f);
    fclose(f);
    cn_test_output o;
    assert_int_equal(RUN(&o, "validate", bomb_path, empty, garbage, big), 2);
    assert_contains(o.err, "nodes after alias expansion");
    assert_contains(o.err, "empty.yaml: file is empty");
    assert_contains(o.err, "garbage.yaml:1:1: invalid YAML");
    assert_contains(o.err, "big.yaml: file is larger than the 4194304 byte limit");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_plan_text(void **state)
{
    (void)state;
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", cn_test_src("examples/checkout-change.yaml"),
                         "--topology", cn_test_src("examples/topology.yaml"), "--policies",
                         cn_test_src("policies")),
                     0);
    assert_contains(o.out, "Plan for checkout v2.14.0 (rollout checkout-v2.14.0), "
                           "replacing v2.13.4");
    assert_contains(o.out, "44% of all user requests touch checkout");
    assert_contains(o.out, "tier 0 (x");
    assert_contains(o.out, "config (x1.5)");
    assert_contains(o.out, "420 lines changed (x1.21)");
    assert_contains(o.out, "AI-assisted   no (set in the change file)");
    assert_contains(o.out, "200 hosts");
    assert_contains(o.out, "/200");
    assert_contains(o.out, "200/200");
    cn_test_output_free(&o);
}

static void test_plan_json_contract(void **state)
{
    (void)state;
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", cn_test_src("examples/checkout-ai-change.yaml"),
                         "--topology", cn_test_src("examples/topology.yaml"), "--policies",
                         cn_test_src("policies"), "-o", "json"),
                     0);
    json_error_t err;
    json_t *j = json_loads(o.out, 0, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, o.out);
    assert_string_equal(json_string_value(json_object_get(j, "rollout")), "checkout-v2.14.0-ai");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "checkout");
    assert_true(json_is_true(json_object_get(j, "ai_assisted")));
    json_t *br = json_object_get(j, "blast_radius");
    assert_true(fabs(json_number_value(json_object_get(br, "reach")) - 0.44) < 1e-9);
    double risk = json_number_value(json_object_get(br, "risk"));
    double score = json_number_value(json_object_get(br, "score"));
    assert_true(fabs(score - 0.44 * risk) < 1e-6);
    json_t *stages = json_object_get(j, "stages");
    assert_true(json_array_size(stages) >= 3);
    double prev = 0;
    int approvals = 0;
    for (size_t i = 0; i < json_array_size(stages); i++) {
        json_t *s = json_array_get(stages, i);
        assert_int_equal(json_integer_value(json_object_get(s, "index")), i + 1);
        double w = json_number_value(json_object_get(s, "weight"));
        assert_true(w > prev);
        prev = w;
        json_int_t units = json_integer_value(json_object_get(s, "units"));
        assert_true(fabs(w - (double)units / 200 * 100) < 1e-9);
        assert_true(json_integer_value(json_object_get(s, "bake_seconds")) > 0);
        assert_true(json_is_boolean(json_object_get(s, "approval")));
        approvals += json_is_true(json_object_get(s, "approval"));
    }
    assert_true(fabs(prev - 100) < 1e-9);
    assert_int_equal(approvals, 1);
    json_decref(j);
    cn_test_output_free(&o);
}

static void test_plan_unknown_service(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    const char *change = cn_test_write(dir, "c.yaml",
                                       "# a typo in the service name\n"
                                       "service:  chekout\n"
                                       "version: v1\n");
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", change, "--topology",
                         cn_test_src("examples/topology.yaml"), "--policies",
                         cn_test_src("policies")),
                     2);
    char want[4096];
    snprintf(want, sizeof want, "%s:2:11: service 'chekout' is not in topology", change);
    assert_contains(o.err, want);
    assert_contains(o.err, "(did you mean 'checkout'?)");
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

/* Dropping a kind would drop its multiplier: refuse rather than plan bolder. */
static void test_plan_refuses_too_many_kinds(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    char text[4096] = "service: checkout\nversion: v1\ndiff: {kinds: [";
    for (int i = 0; i < 65; i++) {
        char k[16];
        snprintf(k, sizeof k, "%sk%d", i ? ", " : "", i);
        strcat(text, k);
    }
    strcat(text, "]}\n");
    const char *change = cn_test_write(dir, "c.yaml", text);
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", change, "--policies", cn_test_src("policies")), 2);
    assert_contains(o.err, "the change touches more than 64 kinds");
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_plan_reports_all_files(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    const char *change = cn_test_write(dir, "c.yaml", "service: checkout\nversoin: v1\n");
    const char *topo = cn_test_write(dir, "t.yaml",
                                     "services:\n  web: {traffic: 100%, depends_on: [nope]}\n");
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", change, "--topology", topo, "--policies",
                         cn_test_src("policies")),
                     2);
    assert_contains(o.err, "c.yaml:2:1: unknown key 'versoin' in change (did you mean 'version'?)");
    assert_contains(o.err, "t.yaml:2:");
    assert_contains(o.err, "'nope'");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static int git(const char *dir, const char *const *args)
{
    const char *argv[32] = {"git", "-C", dir, "-c", "commit.gpgsign=false"};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, "git", NULL, NULL, (char *const *)argv, environ))
        return -1;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
#define GIT(dir, ...) git(dir, (const char *const[]){__VA_ARGS__, NULL})

/* A pipeline plans from the commits it is about to ship: the diff and the
 * AI provenance come from git, and the plan names the trailer. */
static void test_plan_git_range(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    setenv("GIT_AUTHOR_NAME", "Alice", 1);
    setenv("GIT_AUTHOR_EMAIL", "alice@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "Alice", 1);
    setenv("GIT_COMMITTER_EMAIL", "alice@example.com", 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("HOME", dir, 1);
    if (GIT(dir, "init", "-q", "-b", "main") != 0)
        skip();
    cn_test_write(dir, "README", "hello\n");
    assert_int_equal(GIT(dir, "add", "."), 0);
    assert_int_equal(GIT(dir, "commit", "-q", "-m", "init"), 0);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/db", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    cn_test_write(dir, "db/001.sql", "create table t (id int);\n");
    cn_test_write(dir, "app.c", "int main(void) { return 0; }\n");
    assert_int_equal(GIT(dir, "add", "."), 0);
    assert_int_equal(GIT(dir, "commit", "-q", "-m", "add table", "-m",
                         "Co-authored-by: Claude <noreply@anthropic.com>"),
                     0);
    cn_test_write(dir, "app.c", "int main(void) { return 1; }\n");
    assert_int_equal(GIT(dir, "commit", "-q", "-a", "-m", "fix exit", "-m",
                         "Co-authored-by: Claudette Smith <cs@example.com>"),
                     0);
    const char *change = cn_test_write(dir, "change.yaml",
                                       "service: checkout\nversion: v2\nauthor: alice\n");
    cn_test_output o;
    assert_int_equal(RUN(&o, "plan", "--change", change, "--topology",
                         cn_test_src("examples/topology.yaml"), "--policies",
                         cn_test_src("policies"), "--git-range", "main~2..main", "--repo", dir),
                     0);
    assert_contains(o.out, "AI-assisted   yes (from commit trailers, 2 commits in main~2..main)");
    assert_contains(o.out, "add table\n");
    assert_contains(o.out, "Co-authored-by: Claude <noreply@anthropic.com>");
    assert_true(strstr(o.out, "Claudette") == NULL);
    assert_contains(o.out, "migration (x3)");
    assert_contains(o.out, "2 lines changed"); /* net over the range */
    assert_contains(o.out, "approval");
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "plan", "--change", change, "--policies", cn_test_src("policies"),
                         "--git-range", "main~2..main", "--repo", dir, "-o", "json"),
                     0);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    json_t *prov = json_object_get(j, "provenance");
    assert_string_equal(json_string_value(json_object_get(prov, "source")), "git");
    assert_int_equal(json_integer_value(json_object_get(prov, "commits")), 2);
    json_t *ev = json_object_get(prov, "evidence");
    assert_int_equal(json_array_size(ev), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "agent")),
                        "Claude");
    json_decref(j);
    cn_test_output_free(&o);

    assert_int_equal(RUN(&o, "plan", "--change", change, "--policies", cn_test_src("policies"),
                         "--git-range", "main..nope", "--repo", dir),
                     2);
    assert_contains(o.err, "bad revision");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return (size_t)-1;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* The whole demo, once (--fast: about 13 s, also under valgrind): both
 * outcomes, the AI change stopped at its first stage, and nothing left in
 * the TMPDIR it was given. */
static void test_demo_runs_both_rollouts(void **state)
{
    (void)state;
    cn_test_output o;
    assert_int_equal(RUN(&o, "demo", "--frobnicate"), 2);
    assert_contains(o.err, "usage: canary demo");
    cn_test_output_free(&o);

    char *tmp = cn_test_tmpdir();
    assert_non_null(tmp);
    const char *was = getenv("TMPDIR");
    char *saved = was ? strdup(was) : NULL;
    setenv("TMPDIR", tmp, 1);
    int code = RUN(&o, "demo", "--fast");
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
    if (code != 0)
        fail_msg("canary demo exited %d\nstdout:\n%s\nstderr:\n%s", code, o.out, o.err);
    assert_string_equal(o.err, "");
    /* The human-written change: five stages, then 100%. */
    assert_contains(o.out, "== 1/2  A change written by a person");
    assert_contains(o.out, "stage 5 of 5 serves 100%");
    assert_contains(o.out, "result: promoted to 100% (exit 0): the new version serves 100% "
                           "after stage 5");
    /* The AI-assisted one: its first sample fails and it never widens. */
    assert_contains(o.out, "== 2/2  A change written with an AI agent");
    assert_contains(o.out, "stage 1 of 6 serves 0.5%");
    assert_contains(o.out, "stage 1: error-rate: fail: 0.04");
    assert_null(strstr(o.out, "stage 2 of 6"));
    assert_contains(o.out, "result: rolled back by analysis (exit 3): rolling back for "
                           "analysis: error-rate failed 1 time, more than failure_limit 0");
    assert_contains(o.out, "rolled back by analysis at stage 1 (exit 3)");
    /* Narration, right where it belongs. */
    assert_contains(o.out, "is above the 1% threshold");
    assert_contains(o.out, "rolling back before more users are hurt");
    /* The state database was in TMPDIR, and is gone with the rest. */
    char want[4200];
    snprintf(want, sizeof want, "was stored in %s/canary-demo-", tmp);
    assert_contains(o.out, want);
    assert_int_equal(dir_entries(tmp), 0);
    cn_test_output_free(&o);
    cn_test_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_dispatch),
        cmocka_unit_test(test_validate_shipped_files),
        cmocka_unit_test(test_validate_reports_every_problem),
        cmocka_unit_test(test_validate_duplicate_policy_names),
        cmocka_unit_test(test_validate_hostile_files),
        cmocka_unit_test(test_plan_text),
        cmocka_unit_test(test_plan_json_contract),
        cmocka_unit_test(test_plan_unknown_service),
        cmocka_unit_test(test_plan_refuses_too_many_kinds),
        cmocka_unit_test(test_plan_reports_all_files),
        cmocka_unit_test(test_plan_git_range),
        cmocka_unit_test(test_demo_runs_both_rollouts),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
