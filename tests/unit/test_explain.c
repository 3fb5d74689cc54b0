/* explain: the story built from hand-made rows and events (no SQLite):
 * exact sentences for a completed human rollout, a rolled-back AI rollout
 * with the failing evidence, an actuator failure ending in `failed`, a row
 * without a plan, and the wrapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "canary/explain.h"
#include "canary/status.h"

#define T0 INT64_C(1795944932000) /* 2026-11-29 09:35:32 UTC */

#define PLAN_HUMAN                                                                        \
    "{\"rollout\":\"shop-v2\",\"service\":\"shop\",\"version\":\"v2\",\"ai_assisted\":false," \
    "\"blast_radius\":{\"reach\":0.5,\"risk\":1.5,\"score\":0.75,\"factors\":"             \
    "[{\"name\":\"tier\",\"detail\":\"tier 1\",\"multiplier\":1.5}]},"                     \
    "\"stages\":[{\"index\":1,\"weight\":50,\"units\":1,\"bake_seconds\":2,\"approval\":false},"  \
    "{\"index\":2,\"weight\":100,\"units\":2,\"bake_seconds\":2,\"approval\":false}],"      \
    "\"provenance\":{\"source\":\"unknown\"},\"policy\":{\"name\":\"t\",\"file\":\"p.yaml\"}}"

#define PLAN_AI                                                                           \
    "{\"blast_radius\":{\"reach\":0.44,\"risk\":7.26,\"score\":3.19,\"factors\":["        \
    "{\"name\":\"tier\",\"detail\":\"tier 1\",\"multiplier\":2},"                         \
    "{\"name\":\"kind\",\"detail\":\"config\",\"multiplier\":1.5},"                       \
    "{\"name\":\"size\",\"detail\":\"420 lines\",\"multiplier\":1.21},"                   \
    "{\"name\":\"ai\",\"detail\":\"AI-assisted\",\"multiplier\":2}]},"                    \
    "\"stages\":[{\"index\":1,\"weight\":0.5,\"bake_seconds\":300,\"approval\":false},"   \
    "{\"index\":2,\"weight\":13,\"bake_seconds\":300,\"approval\":true},"                 \
    "{\"index\":3,\"weight\":100,\"bake_seconds\":300,\"approval\":false}],"              \
    "\"provenance\":{\"source\":\"git\",\"evidence\":[{\"commit\":\"0123456789abcdef\","  \
    "\"subject\":\"s\",\"trailer\":\"Co-authored-by: Claude\"}]},"                        \
    "\"policy\":{\"name\":\"prod\",\"file\":\"prod.yaml\"}}"

static cn_rollout_row row(const char *service, const char *version, const char *prev,
                          const char *author, bool ai, const char *plan, const char *state,
                          int exit_code)
{
    return (cn_rollout_row){.id = (char *)"x", .attempt = 1, .service = (char *)service,
                            .version = (char *)version, .previous_version = (char *)prev,
                            .author = (char *)author, .ai_assisted = ai,
                            .plan_json = (char *)plan, .state = (char *)state,
                            .exit_code = exit_code, .created_ms = T0};
}

#define EV(ms, t, a, d, j) \
    {.time_ms = T0 + (ms), .type = t, .actor = a, .detail = d, .data_json = j}

static cn_explanation explain(const cn_rollout_row *r, const cn_store_event *ev, size_t n)
{
    cn_explanation x;
    assert_int_equal(cn_explain(r, ev, n, &x), CN_OK);
    return x;
}

static void completed_human_rollout(void **state)
{
    (void)state;
    cn_rollout_row r = row("shop", "v2", "v1", "alice", false, PLAN_HUMAN, "completed", 0);
    const cn_store_event ev[] = {
        EV(0, "started", "canary", "2 stages to 100%, first 50%; author 'alice'", NULL),
        EV(1, "actuator_call", "canary", "advance: stage 1, weight 50%", NULL),
        EV(2, "actuator_ok", "canary", "attempt 1: exit 0 in 1 ms", NULL),
        EV(3, "stage_applied", "canary", "stage 1 of 2 serves 50%; baking 2s", NULL),
        EV(1000, "measurement", "canary", "stage 1: err: pass",
           "{\"metric\":\"err\",\"outcome\":\"pass\",\"value\":0.004,\"max\":0.01}"),
        EV(2000, "measurement", "canary", "stage 1: err: pass",
           "{\"metric\":\"err\",\"outcome\":\"pass\",\"value\":0.003,\"max\":0.01}"),
        EV(2000, "requests", "canary", "stage 1: the canary served 120 requests", NULL),
        EV(2004, "promoted", "canary",
           "stage 1 passed its analysis: baked 2001ms of 2s; every metric has at least 1 of 1 "
           "passing samples", NULL),
        EV(2005, "stage_applied", "canary", "stage 2 of 2 serves 100%; baking 2s", NULL),
        EV(4005, "completed", "canary", "the new version serves 100% after stage 2", NULL),
    };
    cn_explanation x = explain(&r, ev, sizeof ev / sizeof ev[0]);
    assert_int_equal(x.n, 5);
    assert_string_equal(x.para[0],
                        "shop v2 (replacing v1), written by alice, without an AI agent. "
                        "Policy t (p.yaml) planned it. It touches 50% of user requests "
                        "(reach 0.5). Its risk is x1.5: tier 1 (x1.5). Blast radius 0.75. "
                        "So the first stage was 50% of shop's traffic, and 2 stages led to "
                        "100%, each baking 2s.");
    assert_string_equal(x.para[1], "At 2026-11-29 09:35:32 UTC canary started the rollout: "
                                   "2 stages to 100%, first 50%; author 'alice'.");
    assert_string_equal(x.para[2],
                        "At 09:35:32 stage 1 began: 50% of traffic. Over 1.0 s, 2 "
                        "measurements: err passed 2 times (last 0.003, highest 0.004). "
                        "Requests: the canary served 120 requests. At 09:35:34 stage 1 "
                        "passed: baked 2001ms of 2s; every metric has at least 1 of 1 "
                        "passing samples.");
    assert_string_equal(x.para[3], "At 09:35:34 stage 2 began: 100% of traffic. At 09:35:36 "
                                   "the rollout completed: the new version serves 100% after "
                                   "stage 2.");
    assert_string_equal(x.para[4], "Outcome: promoted to 100% (exit 0) after 4.0 s; at most "
                                   "100% of shop's traffic (50% of all user requests) saw v2.");
    cn_explanation_free(&x);
}

/* Two metrics read at one instant: no "Over 0.0 s". */
static void measurements_at_one_instant(void **state)
{
    (void)state;
    cn_rollout_row r = row("shop", "v2", "v1", "alice", false, PLAN_HUMAN, "rolled_back", 3);
    const cn_store_event ev[] = {
        EV(0, "stage_applied", "canary", "stage 1 of 2 serves 50%; baking 2s", NULL),
        EV(1000, "measurement", "canary", "stage 1: err: fail: 0.3 > max 0.01",
           "{\"metric\":\"err\",\"outcome\":\"fail\",\"value\":0.3,\"max\":0.01}"),
        EV(1000, "measurement", "canary", "stage 1: p99: pass: 80 within [-, 300]",
           "{\"metric\":\"p99\",\"outcome\":\"pass\",\"value\":80,\"max\":300}"),
        EV(1001, "rolling_back", "canary",
           "rolling back for analysis: err failed 1 time, more than failure_limit 0", NULL),
    };
    cn_explanation x = explain(&r, ev, sizeof ev / sizeof ev[0]);
    assert_true(x.n >= 2);
    assert_non_null(strstr(x.para[1], "stage 1 began: 50% of traffic. 2 measurements: err "
                                      "failed once"));
    assert_null(strstr(x.para[1], "Over"));
    cn_explanation_free(&x);
}

static void rolled_back_ai_rollout(void **state)
{
    (void)state;
    cn_rollout_row r = row("checkout", "v2.15.0", "v2.14.0", "alice", true, PLAN_AI,
                           "rolled_back", 3);
    const cn_store_event ev[] = {
        EV(0, "stage_applied", "canary", "stage 1 of 3 serves 0.5%; baking 5m", NULL),
        EV(1000, "measurement", "canary", "stage 1: error-rate: fail: 0.0419 > max 0.01",
           "{\"metric\":\"error-rate\",\"outcome\":\"fail\",\"value\":0.0419,\"max\":0.01}"),
        EV(1001, "rolling_back", "canary",
           "rolling back for analysis: error-rate failed 1 time, more than failure_limit 0",
           NULL),
        EV(1002, "actuator_call", "canary", "rollback: stage 0, weight 0%", NULL),
        EV(1003, "rolled_back", "canary",
           "rolled back after analysis; previous version serves 100%", NULL),
    };
    cn_explanation x = explain(&r, ev, sizeof ev / sizeof ev[0]);
    assert_int_equal(x.n, 3);
    assert_string_equal(
        x.para[0],
        "checkout v2.15.0 (replacing v2.14.0), written by alice with an AI agent (commit "
        "trailers: 0123456789ab \"Co-authored-by: Claude\"). Policy prod (prod.yaml) planned "
        "it. It touches 44% of user requests (reach 0.44). Its risk is x7.26: tier 1 (x2), "
        "config (x1.5), 420 lines (x1.21), AI-assisted (x2). Blast radius 3.19. So the first "
        "stage was 0.5% of checkout's traffic, and 3 stages led to 100%, each baking 5m (an "
        "approval before stage 2).");
    assert_string_equal(
        x.para[1],
        "At 2026-11-29 09:35:32 UTC stage 1 began: 0.5% of traffic. 1 measurement: error-rate "
        "failed once (last 0.0419, highest 0.0419). At 09:35:33 canary began rolling back for "
        "analysis: error-rate failed 1 time, more than failure_limit 0. The evidence: "
        "error-rate read 0.0419 against a maximum of 0.01 (stage 1: error-rate: fail: 0.0419 "
        "> max 0.01). At 09:35:33 the rollback was done: rolled back after analysis; previous "
        "version serves 100%.");
    assert_string_equal(x.para[2], "Outcome: rolled back by analysis (exit 3) after 1.0 s; at "
                                   "most 0.5% of checkout's traffic (0.22% of all user "
                                   "requests) saw v2.15.0.");
    cn_explanation_free(&x);
}

static void actuator_failure_then_failed(void **state)
{
    (void)state;
    cn_rollout_row r = row("shop", "v2", NULL, NULL, false, NULL, "failed", 5);
    const cn_store_event ev[] = {
        EV(0, "actuator_call", "canary", "advance: stage 1, weight 50%", NULL),
        EV(10, "actuator_failed_attempt", "canary", "attempt 1: exit 1 in 2 ms; output: nope",
           "{\"attempt\":1,\"ok\":false,\"what\":\"exit 1 in 2 ms\",\"output\":\"nope\"}"),
        EV(20, "actuator_failed", "canary",
           "advance of stage 1 could not be applied: not applied after 1 attempt", NULL),
        EV(30, "failed", "canary", "rollback could not be applied: a human must act (x)", NULL),
    };
    cn_explanation x = explain(&r, ev, sizeof ev / sizeof ev[0]);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.para[0], "shop v2, by an author who is not recorded, without an AI "
                                   "agent. The plan is not recorded, so neither are its "
                                   "reach, risk and stages.");
    assert_string_equal(
        x.para[1],
        "At 2026-11-29 09:35:32 UTC the actuator's attempt 1 failed: exit 1 in 2 ms; its "
        "output: nope. At 09:35:32 the actuator failed for good: advance of stage 1 could not "
        "be applied: not applied after 1 attempt. At 09:35:32 the rollout failed: rollback "
        "could not be applied: a human must act (x).");
    assert_string_equal(x.para[2], "Outcome: ROLLBACK FAILED: a human must act (exit 5) after "
                                   "0.0 s; no stage was applied, so no "
                                   "traffic saw v2.");
    cn_explanation_free(&x);
}

static void operator_approval(void **state)
{
    (void)state;
    cn_rollout_row r = row("shop", "v2", NULL, "alice", true, NULL, "progressing", -1);
    r.stage = 1;
    r.stages = 3;
    const cn_store_event ev[] = {
        EV(0, "approved", "bob", "stage 2 (13%) approved by 'bob' (role 'sre', not the author)",
           NULL),
    };
    cn_explanation x = explain(&r, ev, 1);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.para[1], "Approved by bob at 2026-11-29 09:35:32 UTC: stage 2 "
                                   "(13%) approved by 'bob' (role 'sre', not the author).");
    assert_string_equal(x.para[2], "Outcome: not finished: progressing at stage 1 of 3 after "
                                   "0.0 s so far; no stage was applied, so no traffic saw v2.");
    cn_explanation_free(&x);
}

static void wraps_at_width(void **state)
{
    (void)state;
    char a[] = "one two three four five", b[] = "six";
    char *paras[] = {a, b};
    cn_explanation x = {.para = paras, .n = 2};
    char *text;
    assert_int_equal(cn_explanation_text(&x, 9, &text), CN_OK);
    assert_string_equal(text, "one two\nthree\nfour five\n\nsix\n");
    free(text);
    assert_int_equal(cn_explain(NULL, NULL, 0, &x), CN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(completed_human_rollout),
        cmocka_unit_test(rolled_back_ai_rollout),
        cmocka_unit_test(measurements_at_one_instant),
        cmocka_unit_test(actuator_failure_then_failed),
        cmocka_unit_test(operator_approval),
        cmocka_unit_test(wraps_at_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
