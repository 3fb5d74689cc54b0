/* canary explain, end to end: a state database written by the real
 * `canary run` against the fake metrics server (one completed and one
 * rolled-back rollout in the same file), then explained by the real
 * binary: the key sentences in text, the JSON paragraphs, an unknown id
 * and a missing database (as `canary status`: exit 1, nothing created). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define CART "service: cart\nversion: v7\nprevious_version: v6\nauthor: bob\nai_assisted: true\n"

static int canary(cn_test_output *o, const cn_scenario *s, const char *const *args)
{
    return cn_test_run(o, s->dir, args);
}

static void test_explain(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *shop = cn_sc_new(x, "shop, healthy", CN_SC_HTTP);
    cn_scenario *cart = cn_sc_new(x, "cart, degrading", CN_SC_HTTP);
    cn_sc_fake(shop, "errors 0 value 0.001\n");
    cn_sc_fake(cart, "errors 0 value 0.5\n");
    cn_sc_inputs(shop, PLAN_FAST ANALYSIS, SHOP);
    cn_sc_inputs(cart, PLAN_FAST "ai_assisted: {approval: {above_weight: 100%}}\n" ANALYSIS,
                 CART);
    snprintf(cart->state, sizeof cart->state, "%s", shop->state);
    cn_sc_run(shop, NULL, NULL);
    cn_sc_run(cart, NULL, NULL);
    cn_sc_expect_code(shop, 0);
    cn_sc_expect_code(cart, 3);

    cn_test_output o;
    const char *ok[] = {"explain", "shop-v2", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, ok), 0);
    for (char *line = o.out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t len = strchr(line, '\n') ? (size_t)(strchr(line, '\n') - line) : strlen(line);
        assert_true(len <= 78);
    }
    /* The sentences, whatever the wrapping. */
    for (char *nl = strchr(o.out, '\n'); nl; nl = strchr(nl, '\n'))
        *nl = ' ';
    assert_contains(o.out, "shop v2 (replacing v1), written by alice, without an AI agent.");
    assert_contains(o.out, "So the first stage was 50% of shop's traffic, and 2 stages led");
    assert_contains(o.out, "stage 1 began: 50% of traffic.");
    assert_contains(o.out, "err passed");
    assert_contains(o.out, "stage 1 passed: baked");
    assert_contains(o.out, "the rollout completed: the new version serves 100% after");
    assert_contains(o.out, "Outcome: promoted to 100% (exit 0) after");
    assert_contains(o.out, "at most 100% of shop's traffic (100% of all user requests)");
    cn_test_output_free(&o);

    const char *rb[] = {"explain", "cart-v7", "--state", shop->state, "-o", "json", NULL};
    assert_int_equal(canary(&o, shop, rb), 0);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "cart-v7");
    json_t *paras = json_object_get(j, "paragraphs");
    assert_true(json_array_size(paras) >= 3);
    char all[16384] = "";
    size_t i;
    json_t *p;
    json_array_foreach(paras, i, p)
    {
        strncat(all, json_string_value(p), sizeof all - strlen(all) - 2);
        strcat(all, "\n");
    }
    assert_contains(all, "cart v7 (replacing v6), written by bob with an AI agent (the change "
                         "file says so).");
    assert_contains(all, "canary began rolling back for analysis: err failed 1 time");
    assert_contains(all, "The evidence: err read 0.5 against a maximum of 0.01");
    assert_contains(all, "Outcome: rolled back by analysis (exit 3) after");
    assert_contains(all, "at most 50% of cart's traffic");
    assert_contains(all, "saw v7.\n");
    json_decref(j);
    cn_test_output_free(&o);

    const char *unknown[] = {"explain", "shop-v3", "--state", shop->state, NULL};
    assert_int_equal(canary(&o, shop, unknown), 1);
    char msg[4200];
    snprintf(msg, sizeof msg, "canary explain: no rollout 'shop-v3' in %s\n", shop->state);
    assert_contains(o.err, msg);
    assert_contains(o.err, "did you mean: shop-v2?\n");
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);

    const char *none[] = {"explain", NULL};
    assert_int_equal(canary(&o, shop, none), 2);
    cn_test_output_free(&o);
}

static void test_missing_database(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "no database", CN_SC_HTTP);
    const char *cmds[][6] = {{"explain", "a", NULL}, {"explain", "a", "--state", s->state, NULL}};
    for (size_t i = 0; i < 2; i++) {
        cn_test_output o;
        assert_int_equal(canary(&o, s, cmds[i]), 1);
        assert_contains(o.err, "canary explain: no state database at ");
        assert_contains(o.err, ": nothing has run here (use --state)\n");
        assert_string_equal(o.out, "");
        cn_test_output_free(&o);
    }
    cn_sc_expect_untouched(s);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_explain),
        TEST(test_missing_database),
    };
    return cmocka_run_group_tests_name("explain", tests, NULL, NULL);
}
