/* canary status and canary history, end to end: state databases written
 * by the real `canary run` against the fake metrics server (one completed
 * and one rolled-back rollout in the same file, and one still running),
 * then read by the real binary: the list, one rollout in text and JSON
 * (checked against the events table), history's filters, an unknown id
 * with suggestions, and a missing database that must not be created. */
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
#include <sys/stat.h>

#include "background.h"
#include "checks.h"
#include "proc.h"
#include "scenario.h"

#define PLAN_FAST "plan: {steps: [50%, 100%], bake: 2s, min_samples: 1}\n"
#define ANALYSIS                                                                     \
    "analysis:\n  interval: 1s\n  timeout: 900ms\n"                                  \
    "  metrics:\n"                                                                   \
    "    - name: err\n"                                                              \
    "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define SHOP "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
#define CART "service: cart\nversion: v7\nprevious_version: v6\nauthor: bob\n"

/* Runs canary with args in s's directory; the output stays in o. */
static int canary(cn_test_output *o, const cn_scenario *s, const char *const *args)
{
    return cn_test_run(o, s->dir, args);
}

static long long count_rows(const cn_scenario *s, const char *sql)
{
    sqlite3 *db = cn_sc_db(s);
    char *n = cn_sc_rows(db, sql);
    long long v = strtoll(n, NULL, 10);
    free(n);
    sqlite3_close(db);
    return v;
}

static json_t *parse(const cn_test_output *o)
{
    json_error_t je;
    json_t *j = json_loads(o->out, 0, &je);
    if (!j) {
        print_error("not JSON (%s):\n%s\nstderr:\n%s\n", je.text, o->out, o->err);
        fail();
    }
    return j;
}

static const char *str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "(missing)";
}

static json_int_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void test_finished(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *shop = cn_sc_new(x, "shop, healthy", CN_SC_HTTP);
    cn_scenario *cart = cn_sc_new(x, "cart, degrading", CN_SC_HTTP);
    cn_sc_fake(shop, "errors 0 value 0.001\n");
    cn_sc_fake(cart, "errors 0 value 0.5\n");
    cn_sc_inputs(shop, PLAN_FAST ANALYSIS, SHOP);
    cn_sc_inputs(cart, PLAN_FAST ANALYSIS, CART);
    snprintf(cart->state, sizeof cart->state, "%s", shop->state); /* one database */
    /* One after the other: two runs creating one new database at once
     * race to switch it to WAL. */
    cn_sc_run(shop, NULL, NULL);
    cn_sc_run(cart, NULL, NULL);
    cn_sc_expect_code(shop, 0);
    cn_sc_expect_code(cart, 3);

    cn_test_output o;
    /* The list. */
    const char *ls[] = {"status", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, ls), 0);
    assert_contains(o.out, "ID");
    assert_contains(o.out, "LAST DECISION");
    assert_contains(o.out, "shop-v2  shop");
    assert_contains(o.out, "completed    2/2    100%");
    assert_contains(o.out, "rolled_back  0/2    0%");
    /* 80 columns leave the decision its first words. */
    assert_contains(o.out, "  completed: th...\n");
    assert_contains(o.out, "  rolled_back: ...\n");
    for (char *line = o.out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t len = strchr(line, '\n') ? (size_t)(strchr(line, '\n') - line) : strlen(line);
        assert_true(len <= 80);
    }
    cn_test_output_free(&o);

    const char *lsj[] = {"status", "--state", shop->state, "-o", "json", NULL};
    assert_int_equal(canary(&o, shop, lsj), 0);
    json_t *arr = parse(&o);
    assert_int_equal(json_array_size(arr), 2);
    json_t *a = json_array_get(arr, 0), *b = json_array_get(arr, 1);
    json_t *c = !strcmp(str(a, "id"), "cart-v7") ? a : b, *h = c == a ? b : a;
    assert_string_equal(str(h, "id"), "shop-v2");
    assert_string_equal(str(h, "state"), "completed");
    assert_int_equal(num(h, "stage"), 2);
    assert_int_equal(num(h, "stages"), 2);
    assert_true(json_number_value(json_object_get(h, "weight")) == 100.0);
    assert_false(json_is_true(json_object_get(h, "ai_assisted")));
    assert_string_equal(str(json_object_get(h, "last_event"), "type"), "completed");
    assert_string_equal(str(json_object_get(h, "last_event"), "detail"),
                        "the new version serves 100% after stage 2");
    assert_string_equal(str(c, "state"), "rolled_back");
    assert_true(json_number_value(json_object_get(c, "weight")) == 0.0);
    assert_string_equal(str(json_object_get(c, "last_event"), "type"), "rolled_back");
    assert_int_equal(strlen(str(c, "created")), 24);
    json_decref(arr);
    cn_test_output_free(&o);

    /* One rollout, JSON: every event, in order, with its data. */
    const char *onej[] = {"status", "shop-v2", "--state", shop->state, "-o", "json", NULL};
    assert_int_equal(canary(&o, shop, onej), 0);
    json_t *one = parse(&o);
    assert_string_equal(str(one, "id"), "shop-v2");
    assert_string_equal(str(one, "service"), "shop");
    assert_string_equal(str(one, "version"), "v2");
    assert_string_equal(str(one, "state"), "completed");
    assert_int_equal(num(one, "stage"), 2);
    assert_int_equal(num(one, "stages"), 2);
    assert_int_equal(num(one, "exit_code"), 0);
    json_t *evs = json_object_get(one, "events");
    assert_int_equal((long long)json_array_size(evs),
                     count_rows(shop, "SELECT count(*) FROM events WHERE rollout = 'shop-v2'"));
    assert_string_equal(str(json_array_get(evs, 0), "type"), "started");
    size_t i;
    json_t *ev;
    long long with_data = 0;
    json_array_foreach(evs, i, ev)
    {
        assert_non_null(json_object_get(ev, "data"));
        if (!strcmp(str(ev, "type"), "measurement")) {
            assert_string_equal(str(json_object_get(ev, "data"), "metric"), "err");
            with_data++;
        }
    }
    assert_int_equal(with_data, count_rows(shop, "SELECT count(*) FROM events WHERE rollout = "
                                                 "'shop-v2' AND type = 'measurement'"));
    json_decref(one);
    cn_test_output_free(&o);

    /* One rollout, text: header, plan, grouped measurements. */
    const char *onet[] = {"status", "shop-v2", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, onet), 0);
    assert_contains(o.out, "version   v2 (from v1)\n");
    assert_contains(o.out, "author    alice\n");
    assert_contains(o.out, "state     completed, stage 2/2 at 100%\n");
    assert_contains(o.out, "exit      0: promoted to 100%\n");
    assert_contains(o.out, "      1        50%  bake 2s");
    assert_contains(o.out, "  >   2       100%  bake 2s");
    long long m1 = count_rows(shop, "SELECT count(*) FROM events WHERE rollout = 'shop-v2' AND "
                                    "type = 'measurement' AND detail LIKE 'stage 1:%'");
    char want[256];
    if (m1 > 1)
        snprintf(want, sizeof want,
                 "stage 1: %lld measurements (%lld pass); last: err: pass: 0.001 within [-, 0.01]",
                 m1, m1);
    else
        snprintf(want, sizeof want, "stage 1: err: pass: 0.001 within [-, 0.01]");
    assert_contains(o.out, want);
    cn_test_output_free(&o);
    const char *all[] = {"status", "shop-v2", "--all", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, all), 0);
    assert_int_equal((long long)cn_test_count(o.out, " measurement "),
                     count_rows(shop, "SELECT count(*) FROM events WHERE rollout = 'shop-v2' "
                                      "AND type = 'measurement'"));
    cn_test_output_free(&o);

    const char *rb[] = {"status", "cart-v7", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, rb), 0);
    assert_contains(o.out, "state     rolled_back, stage 0/2 at 0%\n");
    assert_contains(o.out, "exit      3: rolled back by analysis\n");
    assert_contains(o.out, "rolling back for analysis: err failed 1 time");
    cn_test_output_free(&o);

    /* Unknown id: the near ones suggested. */
    const char *unknown[] = {"status", "shop-v3", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, unknown), 1);
    char msg[4200];
    snprintf(msg, sizeof msg, "canary status: no rollout 'shop-v3' in %s\n", shop->state);
    assert_contains(o.err, msg);
    assert_contains(o.err, "did you mean: shop-v2?");
    cn_test_output_free(&o);

    /* History. */
    const char *hist[] = {"history", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, hist), 0);
    assert_contains(o.out, "CREATED (UTC)");
    assert_contains(o.out, "completed (exit 0)");
    assert_contains(o.out, "rolled_back (exit 3)");
    cn_test_output_free(&o);
    const char *hs[] = {"history", "--service", "cart", "--state", shop->state, "-o", "json",
                        NULL};
    assert_int_equal(canary(&o, shop, hs), 0);
    arr = parse(&o);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(str(json_array_get(arr, 0), "id"), "cart-v7");
    assert_int_equal(num(json_array_get(arr, 0), "exit_code"), 3);
    assert_string_equal(str(json_array_get(arr, 0), "outcome"), "rolled back by analysis");
    json_decref(arr);
    cn_test_output_free(&o);
    const char *week[] = {"history", "--since", "7d", "--state", shop->state, "-o", "json", NULL};
    assert_int_equal(canary(&o, shop, week), 0);
    arr = parse(&o);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    cn_test_output_free(&o);
    /* Created more than 1 ms ago: nothing that recent. */
    const char *recent[] = {"history", "--since", "1ms", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, recent), 0);
    assert_string_equal(o.out, "no rollouts in that time\n");
    cn_test_output_free(&o);
}

static void test_missing_database(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "no database", CN_SC_HTTP);
    const char *cmds[][6] = {{"status", NULL}, {"status", "--state", s->state, NULL},
                             {"history", "--state", s->state, NULL}};
    for (size_t i = 0; i < 3; i++) {
        cn_test_output o;
        assert_int_equal(canary(&o, s, cmds[i]), 1);
        assert_contains(o.err, "no state database at ");
        assert_contains(o.err, ": nothing has run here (use --state)\n");
        assert_string_equal(o.out, "");
        cn_test_output_free(&o);
    }
    cn_sc_expect_untouched(s);
}

static void test_running(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "status while running", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, "plan: {steps: [10%, 50%, 100%], bake: 5m, min_samples: 1}\n" ANALYSIS,
                 SHOP);
    cn_sc_start(s, NULL, NULL);
    if (!cn_test_wait_text(s->out_path, "stage_applied",
                           cn_test_patience_ms(CN_SC_RUN_LIMIT_MS)))
        cn_sc_fail(s, "stage 1 was not applied in time");
    cn_test_output o;
    const char *ls[] = {"status", "--state", s->state, NULL};
    assert_int_equal(canary(&o, s, ls), 0);
    assert_contains(o.out, "progressing  1/3    10%");
    assert_contains(o.out, "  stage_applied...\n");
    cn_test_output_free(&o);
    const char *one[] = {"status", "shop-v2", "--state", s->state, "-o", "json", NULL};
    assert_int_equal(canary(&o, s, one), 0);
    json_t *j = parse(&o);
    assert_string_equal(str(j, "state"), "progressing");
    assert_int_equal(num(j, "stage"), 1);
    assert_int_equal(num(j, "stages"), 3);
    assert_true(json_is_null(json_object_get(j, "exit_code")));
    json_decref(j);
    cn_test_output_free(&o);
    assert_int_equal(kill(s->run, SIGTERM), 0);
    cn_sc_finish(s);
    cn_sc_expect_code(s, 4);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_finished),
        TEST(test_missing_database),
        TEST(test_running),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
