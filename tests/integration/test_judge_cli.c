/* canary judge, end to end: the real binary on the sample files in
 * tests/data/judge (p99 latency of a baseline, a slow and a healthy
 * canary, with NaN, blank lines and comments), its JSON keys and values
 * (checked against R 4.2.2's wilcox.test(exact = FALSE, correct = TRUE,
 * conf.int = TRUE, conf.level = 0.98)), the text, each setting flag, the
 * degenerate files, and the errors: FILE:LINE:COLUMN for bad lines, exit 2
 * for bad files and usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "proc.h"

#define SLOW "latency_canary_slow.txt"
#define OK "latency_canary_ok.txt"
#define BASE "latency_baseline.txt"

static int judge(cn_test_output *o, const char *const *args)
{
    return cn_test_run(o, cn_test_src("tests/data/judge"), args);
}

static json_t *judge_json(const char *const *args)
{
    cn_test_output o;
    int code = judge(&o, args);
    if (code != 0) {
        print_error("exit %d: %s\n", code, o.err);
        fail();
    }
    json_error_t e;
    json_t *j = json_loads(o.out, 0, &e);
    if (!j) {
        print_error("not JSON (%s): %s\n", e.text, o.out);
        fail();
    }
    cn_test_output_free(&o);
    return j;
}

static double num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

#define assert_near(a, b, tol)                                                 \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (!(fabs(a_ - b_) <= (tol))) {                                       \
            print_error("%s = %.17g, expected %.17g\n", #a, a_, b_);           \
            fail();                                                            \
        }                                                                      \
    } while (0)

static void test_json_slow_canary(void **state)
{
    (void)state;
    const char *args[] = {"judge", "--canary", SLOW, "--baseline", BASE, "-o", "json", NULL};
    json_t *j = judge_json(args);
    /* Exactly these keys. */
    const char *keys[] = {"u", "p_value", "estimate", "ci", "effect_size", "classification",
                          "canary_count", "baseline_count"};
    assert_int_equal(json_object_size(j), 8);
    for (size_t i = 0; i < 8; i++)
        assert_non_null(json_object_get(j, keys[i]));
    /* R: W = 1386.5, p = 3.8887532138141948e-10, HL 12.7, [8.7, 16.3]. */
    assert_near(num(j, "u"), 1386.5, 0);
    assert_near(num(j, "p_value"), 3.8887532138141948e-10, 1e-18);
    assert_near(num(j, "estimate"), 12.7, 1e-9);
    json_t *ci = json_object_get(j, "ci");
    assert_int_equal(json_array_size(ci), 2);
    assert_near(json_number_value(json_array_get(ci, 0)), 8.7, 1e-9);
    assert_near(json_number_value(json_array_get(ci, 1)), 16.3, 1e-9);
    assert_near(num(j, "effect_size"), 1.1027359905716798, 1e-12);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "high");
    assert_int_equal(json_integer_value(json_object_get(j, "canary_count")), 38); /* 2 NaN */
    assert_int_equal(json_integer_value(json_object_get(j, "baseline_count")), 40);
    json_decref(j);
}

static void test_text_healthy_canary(void **state)
{
    (void)state;
    cn_test_output o;
    const char *args[] = {"judge", "--canary", OK, "--baseline", BASE, NULL};
    assert_int_equal(judge(&o, args), 0);
    /* R: W = 974, p = 0.094990310798483163, HL 2.1, [-1.1, 5.2]. */
    assert_contains(o.out, "values          canary 40, baseline 40\n");
    assert_contains(o.out, "u               974\n");
    assert_contains(o.out, "p_value         0.0949903\n");
    assert_contains(o.out, "estimate        2.1\n");
    assert_contains(o.out, "ci              -1.1 5.2 (98%)\n");
    assert_contains(o.out, "effect_size     1.01518 (mean_ratio)\n");
    assert_contains(o.out, "classification  pass\n");
    assert_contains(o.out, "why             pass: the 98% interval of the shift [-1.1, 5.2] "
                           "reaches into the no-change band +-0.525 (tolerance 0.25 x "
                           "|estimate 2.1|)\n");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);

    const char *slow[] = {"judge", "--canary", SLOW, "--baseline", BASE, NULL};
    assert_int_equal(judge(&o, slow), 0); /* high still exits 0: a tool, not a gate */
    assert_contains(o.out, "values          canary 38 (2 dropped), baseline 40\n");
    assert_contains(o.out, "classification  high\n");
    assert_contains(o.out, "why             high: the 98% interval of the shift [8.7, 16.3] "
                           "lies above the band +-3.175");
    cn_test_output_free(&o);
}

/* Each setting moves the answer the way docs/judge.md says. */
static void test_settings(void **state)
{
    (void)state;
    const char *dec[] = {"judge", "--canary", SLOW, "--baseline", BASE, "--direction",
                         "decrease", "-o", "json", NULL};
    json_t *j = judge_json(dec);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "pass");
    json_decref(j);

    cn_test_output o;
    const char *allowed[] = {"judge", "--canary", SLOW, "--baseline", BASE,
                             "--allowed-increase", "1.2", NULL};
    assert_int_equal(judge(&o, allowed), 0);
    assert_contains(o.out, "classification  pass\n");
    assert_contains(o.out, "but the mean ratio 1.10274 does not reach the allowed increase 1.2");
    cn_test_output_free(&o);

    const char *cles[] = {"judge", "--canary", SLOW, "--baseline", BASE, "--effect-size",
                          "cles", "-o", "json", NULL};
    j = judge_json(cles);
    assert_near(num(j, "effect_size"), 1386.5 / (38.0 * 40.0), 1e-12);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "high");
    json_decref(j);

    const char *crit[] = {"judge", "--canary", SLOW, "--baseline", BASE,
                          "--critical-increase", "1.05", NULL};
    assert_int_equal(judge(&o, crit), 0);
    assert_contains(o.out, "classification  high (critical failure)\n");
    assert_contains(o.out, "critical: beyond the critical increase 1.05, the judgement fails");
    cn_test_output_free(&o);

    /* A wider band: tolerance 1 x 12.7 reaches past the interval's low end. */
    const char *tol[] = {"judge", "--canary", SLOW, "--baseline", BASE, "--tolerance", "1",
                         "--confidence", "0.9", NULL};
    assert_int_equal(judge(&o, tol), 0);
    assert_contains(o.out, "classification  pass\n");
    assert_contains(o.out, "(90%)");
    cn_test_output_free(&o);

    const char *replace[] = {"judge", "--canary", SLOW, "--baseline", BASE, "--nan-strategy",
                             "replace", "--remove-outliers", "-o", "json", NULL};
    j = judge_json(replace);
    assert_int_equal(json_integer_value(json_object_get(j, "canary_count")), 40);
    json_decref(j);
}

static void test_degenerate_files(void **state)
{
    (void)state;
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    char empty[4096], nan[4096], base[4096];
    snprintf(empty, sizeof empty, "%s", cn_test_write(dir, "empty.txt", "# nothing yet\n\n"));
    snprintf(nan, sizeof nan, "%s", cn_test_write(dir, "nan.txt", "NaN\nnan\nNAN\n"));
    snprintf(base, sizeof base, "%s", cn_test_src("tests/data/judge/" BASE));

    const char *none[] = {"judge", "--canary", empty, "--baseline", base, "-o", "json", NULL};
    json_t *j = judge_json(none);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "nodata");
    assert_true(json_is_null(json_object_get(j, "u")));
    assert_true(json_is_null(json_object_get(j, "p_value")));
    assert_true(json_is_null(json_array_get(json_object_get(j, "ci"), 0)));
    assert_true(json_is_null(json_array_get(json_object_get(j, "ci"), 1)));
    assert_true(json_is_null(json_object_get(j, "effect_size")));
    assert_int_equal(json_integer_value(json_object_get(j, "canary_count")), 0);
    json_decref(j);

    cn_test_output o;
    const char *nans[] = {"judge", "--canary", nan, "--baseline", base, NULL};
    assert_int_equal(judge(&o, nans), 0);
    assert_contains(o.out, "classification  nodata\n");
    assert_contains(o.out, "why             nodata: the canary sample holds no values to "
                           "compare (3 NaN or outliers dropped)");
    assert_contains(o.out, "u               -\n");
    cn_test_output_free(&o);

    const char *same[] = {"judge", "--canary", base, "--baseline", base, "-o", "json", NULL};
    j = judge_json(same);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "pass");
    assert_near(num(j, "p_value"), 1, 0);
    assert_near(num(j, "estimate"), 0, 0);
    assert_near(num(j, "effect_size"), 1, 0);
    json_decref(j);

    /* One value each. */
    char one[4096], two[4096];
    snprintf(one, sizeof one, "%s", cn_test_write(dir, "one.txt", "5\n"));
    snprintf(two, sizeof two, "%s", cn_test_write(dir, "two.txt", "3\n"));
    const char *single[] = {"judge", "--canary", one, "--baseline", two, "-o", "json", NULL};
    j = judge_json(single);
    assert_string_equal(json_string_value(json_object_get(j, "classification")), "pass");
    assert_near(num(j, "estimate"), 2, 0);
    json_decref(j);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_bad_files(void **state)
{
    (void)state;
    cn_test_output o;
    const char *bad[] = {"judge", "--canary", "bad_samples.txt", "--baseline", "missing.txt",
                         NULL};
    assert_int_equal(judge(&o, bad), 2);
    assert_string_equal(o.out, "");
    assert_contains(o.err, "bad_samples.txt:3:3: 'abc' is not a finite number (write a "
                           "decimal such as 0.25 or 1e-3, or NaN for a missing value)\n");
    assert_contains(o.err, "bad_samples.txt:4:6: one number per line: unexpected '14.0' "
                           "after it\n");
    assert_contains(o.err, "bad_samples.txt:5:1: '0x10' is not a finite number");
    assert_contains(o.err, "bad_samples.txt:7:1: '1e400' is not a finite number");
    assert_contains(o.err, "bad_samples.txt:9:1: '-inf' is not a finite number");
    assert_contains(o.err, "missing.txt: cannot open: No such file or directory\n");
    assert_int_equal(cn_test_count(o.err, "\n"), 6);
    cn_test_output_free(&o);

    /* More values than the judge takes: refused at the line past the limit. */
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/many.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100001; i++)
        fprintf(f, "%d\n", i % 97);
    fclose(f);
    const char *many[] = {"judge", "--canary", path, "--baseline", BASE, NULL};
    assert_int_equal(judge(&o, many), 2);
    assert_contains(o.err, "many.txt:100001:1: more than 100000 values: the judge takes no more");
    cn_test_output_free(&o);
    cn_test_rmtree(dir);
    free(dir);
}

static void test_usage(void **state)
{
    (void)state;
    cn_test_output o;
    const char *help[] = {"judge", "--help", NULL};
    assert_int_equal(judge(&o, help), 0);
    assert_prefix(o.out, "usage: canary judge --canary FILE --baseline FILE");
    cn_test_output_free(&o);

    struct {
        const char *args[8];
        const char *message;
    } cases[] = {
        {{"judge", "--canary", SLOW, NULL}, "give both --canary FILE and --baseline FILE"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--confidence", "1.5", NULL},
         "--confidence must lie between 0 and 1, got '1.5'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--tolerance", "-1", NULL},
         "--tolerance must be 0 or more, got '-1'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--direction", "up", NULL},
         "--direction takes either, increase or decrease, got 'up'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--effect-size", "d", NULL},
         "--effect-size takes mean_ratio or cles, got 'd'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--allowed-increase", "x", NULL},
         "--allowed-increase takes a number, got 'x'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "--frobnicate", NULL},
         "unknown flag '--frobnicate'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "extra", NULL},
         "unexpected argument 'extra'"},
        {{"judge", "--canary", SLOW, "--baseline", BASE, "-o", "yaml", NULL},
         "-o takes 'text' or 'json', got 'yaml'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(judge(&o, cases[i].args), 2);
        assert_contains(o.err, cases[i].message);
        assert_contains(o.err, "usage: canary judge");
        assert_string_equal(o.out, "");
        cn_test_output_free(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_slow_canary), cmocka_unit_test(test_text_healthy_canary),
        cmocka_unit_test(test_settings),         cmocka_unit_test(test_degenerate_files),
        cmocka_unit_test(test_bad_files),        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
