/* Policy files: loading every key, defaults, each class of mistake at its
 * exact position, choosing the most specific policy, and policy directories
 * including the shipped one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "canary/doc.h"
#include "canary/policy.h"
#include "canary/status.h"
#include "checks.h"
#include "policy_cases.h"

#define EPS 1e-12

/* ---- helpers ----------------------------------------------------------- */

/* Loads yaml as the file "p.yaml". */
static int load(const char *yaml, cn_policy *p, cn_diags *d)
{
    return cn_test_load_policy("p.yaml", yaml, p, d);
}

/* Asserts some diagnostic contains needle, at line:col; what names the
 * case in the failure message. */
static void expect_diag_in(const char *what, const cn_diags *d, unsigned line,
                           unsigned col, const char *needle)
{
    long i = cn_diags_find(d, needle);
    if (i < 0) {
        cn_test_print_diags(d);
        fail_msg("%s: no diagnostic contains \"%s\"", what, needle);
    }
    if (d->items[i].line != line || d->items[i].col != col) {
        cn_test_print_diags(d);
        fail_msg("%s: \"%s\" reported at %u:%u, expected %u:%u", what, needle,
                 d->items[i].line, d->items[i].col, line, col);
    }
}

static void expect_diag(const cn_diags *d, unsigned line, unsigned col,
                        const char *needle)
{
    expect_diag_in("diagnostics", d, line, col, needle);
}

/* ---- loading ----------------------------------------------------------- */

static const char full_yaml[] =
    "name: full\n"
    "match: {services: [\"checkout*\", pay], tiers: [0, 1], ai_assisted: true}\n"
    "plan:\n"
    "  first_stage_impact: 0.5%\n"
    "  growth: 3\n"
    "  # no max_stages: it has no effect with steps\n"
    "  bake: 90s\n"
    "  min_samples: 4\n"
    "  steps: [1%, 5%, 25%, 100%]\n"
    "risk:\n"
    "  tier: {0: 5, 2: 1.5}\n"
    "  kinds: {config: 2, migration: 6}\n"
    "  per_1000_lines: 0.25\n"
    "ai_assisted:\n"
    "  risk: 2.5\n"
    "  bake_factor: 1.5\n"
    "  approval: {above_weight: 10%, role: lead, timeout: 4h, on_timeout: wait}\n"
    "  analysis:\n"
    "    failure_limit: 1\n"
    "    consecutive_failure_limit: 1\n"
    "    thresholds: {error-rate: {max: 0.5%}, latency: {min: 2}}\n"
    "analysis:\n"
    "  interval: 20s\n"
    "  timeout: 5s\n"
    "  failure_limit: 2\n"
    "  consecutive_failure_limit: 2\n"
    "  consecutive_error_limit: 4\n"
    "  max_bake: 10m\n"
    "  on_failure: pause\n"
    "  on_inconclusive: pause\n"
    "  min_requests: {count: 100, prometheus: {address: \"http://127.0.0.1:9090\", "
    "query: 'sum(x{version=\"{{version}}\"})'}}\n"
    "  metrics:\n"
    "    - name: error-rate\n"
    "      prometheus: {address: \"https://prom:9090\", query: q1, reduce: sum, "
    "bearer_token_env: PROM_TOKEN, headers_from_env: {X-Scope-OrgID: TENANT}}\n"
    "      threshold: {max: 1%}\n"
    "      baseline: {max_increase: 20%, slack: 0.001}\n"
    "    - name: latency\n"
    "      json: {url: \"http://127.0.0.1:8080/stats\", pointer: /latency/p99, "
    "bearer_token_env: J_TOKEN}\n"
    "      threshold: {min: 1, max: 250}\n"
    "actuator:\n"
    "  http: {url: \"http://127.0.0.1:8081/weights\", bearer_token_env: ACT_TOKEN, "
    "headers_from_env: {X-Team: TEAM}}\n"
    "  timeout: 5s\n"
    "  retries: 0\n"
    "  backoff: 250ms\n"
    "provenance:\n"
    "  agents: [Claude, MyBot]\n"
    "diff:\n"
    "  kinds: {\"*.sql\": migration, \"config/*\": config, go.sum: dependency}\n";

static void check_full_top(const cn_policy *p)
{
    assert_string_equal(p->file, "p.yaml");
    assert_string_equal(p->name, "full");
    assert_int_equal(p->match.services.count, 2);
    assert_string_equal(p->match.services.items[0], "checkout*");
    assert_string_equal(p->match.services.items[1], "pay");
    assert_int_equal(p->match.tier_count, 2);
    assert_int_equal(p->match.tiers[0], 0);
    assert_int_equal(p->match.tiers[1], 1);
    assert_int_equal(p->match.ai_assisted, 1);
    assert_int_equal(p->match_line, 2);
    assert_int_equal(p->match_col, 1);

    assert_float_equal(p->plan.first_stage_impact, 0.005, EPS);
    assert_float_equal(p->plan.growth, 3, EPS);
    assert_int_equal(p->plan.max_stages, 10);
    assert_int_equal(p->plan.bake_ms, 90000);
    assert_int_equal(p->plan.min_samples, 4);
    assert_int_equal(p->plan.step_count, 4);
    assert_float_equal(p->plan.steps[0], 0.01, EPS);
    assert_float_equal(p->plan.steps[1], 0.05, EPS);
    assert_float_equal(p->plan.steps[2], 0.25, EPS);
    assert_float_equal(p->plan.steps[3], 1.0, 0);

    /* The tier map replaces the defaults: tiers 1 and 3 are gone. */
    assert_true(p->risk.has_tier[0] && p->risk.has_tier[2]);
    assert_false(p->risk.has_tier[1] || p->risk.has_tier[3]);
    assert_float_equal(p->risk.tier[0], 5, EPS);
    assert_float_equal(p->risk.tier[2], 1.5, EPS);
    assert_int_equal(p->risk.kind_count, 2);
    assert_float_equal(cn_policy_kind_multiplier(p, "config"), 2, EPS);
    assert_float_equal(cn_policy_kind_multiplier(p, "migration"), 6, EPS);
    assert_float_equal(cn_policy_kind_multiplier(p, "schema"), 1, EPS);
    assert_float_equal(p->risk.per_1000_lines, 0.25, EPS);

    assert_int_equal(p->agents.count, 2);
    assert_string_equal(p->agents.items[0], "Claude");
    assert_string_equal(p->agents.items[1], "MyBot");
    assert_int_equal(p->kind_rule_count, 3);
    assert_string_equal(p->kind_rules[0].pattern, "*.sql");
    assert_string_equal(p->kind_rules[2].kind, "dependency");
    assert_string_equal(cn_policy_kind_for_path(p, "db/001_init.sql"), "migration");
    assert_string_equal(cn_policy_kind_for_path(p, "config/prod/app.yaml"), "config");
    assert_string_equal(cn_policy_kind_for_path(p, "go.sum"), "dependency");
    assert_string_equal(cn_policy_kind_for_path(p, "src/main.c"), "code");
}

static void check_full_ai(const cn_policy *p)
{
    assert_float_equal(p->ai.risk, 2.5, EPS);
    assert_float_equal(p->ai.bake_factor, 1.5, EPS);
    assert_float_equal(p->ai.approval_above_weight, 0.1, EPS);
    assert_string_equal(p->ai.approval_role, "lead");
    assert_int_equal(p->ai.approval_timeout_ms, 4 * 3600 * 1000);
    assert_int_equal(p->ai.approval_on_timeout, CN_APPROVAL_WAIT);
    const cn_ai_analysis *a = &p->ai.analysis;
    assert_true(a->has_failure_limit);
    assert_int_equal(a->failure_limit, 1);
    assert_true(a->has_consecutive_failure_limit);
    assert_int_equal(a->consecutive_failure_limit, 1);
    assert_int_equal(a->threshold_count, 2);
    assert_string_equal(a->thresholds[0].metric, "error-rate");
    assert_int_equal(a->thresholds[0].line, 21);
    assert_int_equal(a->thresholds[0].col, 18);
    assert_true(a->thresholds[0].threshold.has_max);
    assert_false(a->thresholds[0].threshold.has_min);
    assert_float_equal(a->thresholds[0].threshold.max, 0.005, EPS);
    /* A bound the override leaves out is kept from the metric. */
    assert_string_equal(a->thresholds[1].metric, "latency");
    assert_true(a->thresholds[1].threshold.has_min && a->thresholds[1].threshold.has_max);
    assert_float_equal(a->thresholds[1].threshold.min, 2, EPS);
    assert_float_equal(a->thresholds[1].threshold.max, 250, EPS);
}

static void check_full_analysis(const cn_policy *p)
{
    const cn_analysis *a = &p->analysis;
    assert_int_equal(a->interval_ms, 20000);
    assert_int_equal(a->timeout_ms, 5000);
    assert_int_equal(a->failure_limit, 2);
    assert_int_equal(a->consecutive_failure_limit, 2);
    assert_int_equal(a->consecutive_error_limit, 4);
    assert_int_equal(a->max_bake_ms, 600000);
    assert_int_equal(a->on_failure, CN_ON_PAUSE);
    assert_int_equal(a->on_inconclusive, CN_ON_PAUSE);
    assert_int_equal(a->min_requests.count, 100);
    assert_int_equal(a->min_requests.source.kind, CN_SOURCE_PROMETHEUS);
    assert_string_equal(a->min_requests.source.address, "http://127.0.0.1:9090");
    assert_string_equal(a->min_requests.source.query, "sum(x{version=\"{{version}}\"})");
    assert_int_equal(a->metric_count, 2);

    const cn_metric *m = &a->metrics[0];
    assert_string_equal(m->name, "error-rate");
    assert_int_equal(m->line, 33);
    assert_int_equal(m->col, 7);
    assert_int_equal(m->source.kind, CN_SOURCE_PROMETHEUS);
    assert_string_equal(m->source.address, "https://prom:9090");
    assert_string_equal(m->source.query, "q1");
    assert_int_equal(m->source.reduce, CN_REDUCE_SUM);
    assert_string_equal(m->source.bearer_token_env, "PROM_TOKEN");
    assert_int_equal(m->source.header_count, 1);
    assert_string_equal(m->source.headers[0].name, "X-Scope-OrgID");
    assert_string_equal(m->source.headers[0].env, "TENANT");
    assert_true(m->threshold.has_max);
    assert_false(m->threshold.has_min);
    assert_float_equal(m->threshold.max, 0.01, EPS);
    assert_true(m->baseline.enabled);
    assert_float_equal(m->baseline.max_increase, 0.2, EPS);
    assert_float_equal(m->baseline.slack, 0.001, EPS);

    m = &a->metrics[1];
    assert_string_equal(m->name, "latency");
    assert_int_equal(m->source.kind, CN_SOURCE_JSON);
    assert_string_equal(m->source.url, "http://127.0.0.1:8080/stats");
    assert_string_equal(m->source.pointer, "/latency/p99");
    assert_string_equal(m->source.bearer_token_env, "J_TOKEN");
    assert_int_equal(m->source.reduce, CN_REDUCE_NONE);
    assert_true(m->threshold.has_min && m->threshold.has_max);
    assert_float_equal(m->threshold.min, 1, EPS);
    assert_float_equal(m->threshold.max, 250, EPS);
    assert_false(m->baseline.enabled);
}

static void check_full_actuator(const cn_policy *p)
{
    const cn_actuator *a = &p->actuator;
    assert_int_equal(a->exec.count, 0);
    assert_string_equal(a->http_url, "http://127.0.0.1:8081/weights");
    assert_string_equal(a->http_auth.bearer_token_env, "ACT_TOKEN");
    assert_int_equal(a->http_auth.header_count, 1);
    assert_string_equal(a->http_auth.headers[0].name, "X-Team");
    assert_string_equal(a->http_auth.headers[0].env, "TEAM");
    assert_int_equal(a->timeout_ms, 5000);
    assert_int_equal(a->retries, 0);
    assert_int_equal(a->backoff_ms, 250);
}

static void test_load_full(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load(full_yaml, &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(cn_diags_total(&d), 0);
    check_full_top(&p);
    check_full_ai(&p);
    check_full_analysis(&p);
    check_full_actuator(&p);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_load_exec_actuator(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load("name: e\n"
                  "actuator:\n"
                  "  exec: [\"examples/actuators/set-weight.sh\", --flag, \"two words\"]\n",
                  &p, &d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(p.actuator.exec.count, 3);
    assert_string_equal(p.actuator.exec.items[0], "examples/actuators/set-weight.sh");
    assert_string_equal(p.actuator.exec.items[1], "--flag");
    assert_string_equal(p.actuator.exec.items[2], "two words");
    assert_null(p.actuator.http_url);
    assert_int_equal(p.actuator.timeout_ms, 30000);
    assert_int_equal(p.actuator.retries, 3);
    assert_int_equal(p.actuator.backoff_ms, 1000);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_defaults_when_absent(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    assert_int_equal(load("name: minimal\n", &p, &d), CN_OK);
    assert_int_equal(cn_diags_total(&d), 0);
    assert_string_equal(p.name, "minimal");
    assert_string_equal(p.file, "p.yaml");
    assert_int_equal(p.match.services.count, 0);
    assert_int_equal(p.match.tier_count, 0);
    assert_int_equal(p.match.ai_assisted, -1);
    assert_int_equal(p.match_line, 1);
    assert_int_equal(p.match_col, 1);
    assert_float_equal(p.plan.first_stage_impact, 0.001, EPS);
    assert_float_equal(p.plan.growth, 4, EPS);
    assert_int_equal(p.plan.max_stages, 10);
    assert_int_equal(p.plan.bake_ms, 120000);
    assert_int_equal(p.plan.min_samples, 3);
    assert_int_equal(p.plan.step_count, 0);
    for (int t = 0; t <= CN_MAX_TIER; t++)
        assert_int_equal(p.risk.has_tier[t], t <= 3);
    assert_float_equal(p.risk.tier[0], 4, EPS);
    assert_float_equal(p.risk.tier[1], 2, EPS);
    assert_float_equal(p.risk.tier[2], 1, EPS);
    assert_float_equal(p.risk.tier[3], 0.5, EPS);
    assert_float_equal(cn_policy_kind_multiplier(&p, "config"), 1.5, EPS);
    assert_float_equal(cn_policy_kind_multiplier(&p, "schema"), 3, EPS);
    assert_float_equal(cn_policy_kind_multiplier(&p, "migration"), 3, EPS);
    assert_float_equal(cn_policy_kind_multiplier(&p, "dependency"), 1.5, EPS);
    assert_float_equal(cn_policy_kind_multiplier(&p, "code"), 1, EPS);
    assert_float_equal(p.risk.per_1000_lines, 0.5, EPS);
    assert_float_equal(p.ai.risk, 2, EPS);
    assert_float_equal(p.ai.bake_factor, 2, EPS);
    assert_float_equal(p.ai.approval_above_weight, 0.25, EPS);
    assert_string_equal(p.ai.approval_role, "senior");
    assert_int_equal(p.ai.approval_timeout_ms, 0);
    assert_int_equal(p.ai.approval_on_timeout, CN_APPROVAL_ROLLBACK);
    assert_false(p.ai.analysis.has_failure_limit);
    assert_false(p.ai.analysis.has_consecutive_failure_limit);
    assert_int_equal(p.ai.analysis.threshold_count, 0);
    assert_int_equal(p.analysis.interval_ms, 30000);
    assert_int_equal(p.analysis.timeout_ms, 10000);
    assert_int_equal(p.analysis.failure_limit, 0);
    assert_int_equal(p.analysis.consecutive_failure_limit, 0);
    assert_int_equal(p.analysis.consecutive_error_limit, 3);
    assert_int_equal(p.analysis.max_bake_ms, 0);
    assert_int_equal(p.analysis.on_failure, CN_ON_ROLLBACK);
    assert_int_equal(p.analysis.on_inconclusive, CN_ON_ROLLBACK);
    assert_int_equal(p.analysis.min_requests.count, 0);
    assert_int_equal(p.analysis.metric_count, 0);
    assert_int_equal(p.actuator.exec.count, 0);
    assert_null(p.actuator.http_url);
    assert_int_equal(p.actuator.timeout_ms, 30000);
    assert_int_equal(p.actuator.retries, 3);
    assert_int_equal(p.actuator.backoff_ms, 1000);
    assert_int_equal(p.agents.count, cn_default_agent_count);
    assert_string_equal(p.agents.items[0], "Claude");
    assert_true(p.kind_rule_count > 0); /* the built-in path rules */
    assert_string_equal(cn_policy_kind_for_path(&p, "a.sql"), "migration");
    assert_string_equal(cn_policy_kind_for_path(&p, "a.c"), "code");
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* The timeout defaults to half the interval, at most 10s. */
static void test_default_timeout_follows_interval(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        int64_t timeout;
    } cases[] = {
        {"name: t\nanalysis: {interval: 4s}\n", 2000},
        {"name: t\nanalysis: {interval: 1m}\n", 10000},
        {"name: t\nanalysis: {interval: 20s}\n", 10000},
        {"name: t\nanalysis: {interval: 1s, timeout: 900ms}\n", 900},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_policy p;
        cn_diags d;
        assert_int_equal(load(cases[i].yaml, &p, &d), CN_OK);
        assert_int_equal(p.analysis.timeout_ms, cases[i].timeout);
        cn_policy_free(&p);
        cn_diags_free(&d);
    }
}

static void test_match_position(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    assert_int_equal(load("# comment\nname: m\n\nmatch:\n  services: [web]\n", &p, &d),
                     CN_OK);
    assert_int_equal(p.match_line, 4);
    assert_int_equal(p.match_col, 1);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* ---- mistakes ---------------------------------------------------------- */

static void test_errors_scalars(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"unknown key with hint", "name: t\nanalysis:\n  intervall: 30s\n", 3, 3,
         "unknown key 'intervall' in analysis (did you mean 'interval'?)"},
        {"unknown top-level key", "name: t\nplna: {}\n", 2, 1,
         "unknown key 'plna' in policy (did you mean 'plan'?)"},
        {"duration without unit", "name: t\nplan:\n  bake: 5\n", 3, 9,
         "'bake' expects a duration with a unit (ms, s, m, h), got '5'"},
        {"percentage without %", "name: t\nplan:\n  first_stage_impact: 0.1\n", 3, 23,
         "'first_stage_impact' expects a percentage with a % sign, got '0.1'"},
        {"zero first stage", "name: t\nplan: {first_stage_impact: 0%}\n", 2, 28,
         "'first_stage_impact' must be greater than 0%, got '0%'"},
        {"first stage over 100%", "name: t\nplan: {first_stage_impact: 101%}\n", 2, 28,
         "'first_stage_impact' must be at most 100%, got '101%'"},
        {"growth 1", "name: t\nplan:\n  growth: 1\n", 3, 11,
         "'growth' must be greater than 1, got '1'"},
        {"growth 12abc", "name: t\nplan:\n  growth: 12abc\n", 3, 11,
         "'growth' expects a number, got '12abc'"},
        {"max_stages 1", "name: t\nplan: {max_stages: 1}\n", 2, 20,
         "'max_stages' must be at least 2, got '1'"},
        {"max_stages 101", "name: t\nplan: {max_stages: 101}\n", 2, 20,
         "'max_stages' must be at most 100, got '101'"},
        {"max_stages 2.5", "name: t\nplan: {max_stages: 2.5}\n", 2, 20,
         "'max_stages' expects a whole number, got '2.5'"},
        {"quoted number", "name: t\nplan: {min_samples: \"3\"}\n", 2, 21,
         "'min_samples' expects a whole number, got the quoted string '3'"},
        {"min_samples 0", "name: t\nplan: {min_samples: 0}\n", 2, 21,
         "'min_samples' must be at least 1, got '0'"},
        {"interval under 1s", "name: t\nanalysis: {interval: 500ms}\n", 2, 22,
         "'interval' must be at least 1s, got '500ms'"},
        {"enum typo", "name: t\nanalysis: {on_failure: pasue}\n", 2, 24,
         "'on_failure' must be one of 'rollback', 'pause', got 'pasue' (did you mean 'pause'?)"},
        {"ai risk under 1", "name: t\nai_assisted: {risk: 0.5}\n", 2, 21,
         "'risk' must be at least 1, got '0.5'"},
        {"approval over 100%", "name: t\nai_assisted: {approval: {above_weight: 150%}}\n",
         2, 40, "'above_weight' must be at most 100%, got '150%'"},
        {"approval on_timeout typo", "name: t\nai_assisted: {approval: {on_timeout: rolback}}\n",
         2, 38, "'on_timeout' must be one of 'rollback', 'wait', got 'rolback' (did you mean "
         "'rollback'?)"},
        {"approval timeout zero", "name: t\nai_assisted: {approval: {timeout: 0s}}\n", 2, 35,
         "'timeout' must be greater than 0s, got '0s'"},
        {"retries over 20", "name: t\nactuator: {exec: [x], retries: 21}\n", 2, 32,
         "'retries' must be at most 20, got '21'"},
        {"negative per_1000_lines", "name: t\nrisk: {per_1000_lines: -1}\n", 2, 24,
         "'per_1000_lines' must be at least 0, got '-1'"},
        {"bool typo", "name: t\nmatch: {ai_assisted: yes}\n", 2, 22,
         "'ai_assisted' expects true or false, got 'yes'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_types(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"not a map", "- name: t\n", 1, 1, "policy must be a map of keys, got a list"},
        {"missing name", "plan: {growth: 2}\n", 1, 1,
         "policy is missing the required key 'name'"},
        {"empty name", "name: ''\n", 1, 7, "'name' must not be empty"},
        {"name as list", "name: [a]\n", 1, 7, "'name' expects a string, got a list"},
        {"plan as list", "name: t\nplan: [1, 2]\n", 2, 7,
         "plan must be a map of keys, got a list"},
        {"metrics as map", "name: t\nanalysis:\n  metrics: {a: 1}\n", 3, 12,
         "'metrics' expects a non-empty list of metrics, got a map"},
        {"metric entry not a map", "name: t\nanalysis:\n  metrics: [error-rate]\n", 3, 13,
         "each entry of 'metrics' must be a map with a 'name' and a source, got a scalar"},
        {"services as scalar", "name: t\nmatch: {services: checkout}\n", 2, 19,
         "'services' expects a list of strings, got a scalar"},
        {"empty services", "name: t\nmatch: {services: []}\n", 2, 19,
         "'services' is an empty list; leave 'services' out instead"},
        {"tier out of range", "name: t\nmatch: {tiers: [0, 10]}\n", 2, 20,
         "tiers in 'tiers' must be whole numbers 0 to 9, got '10'"},
        {"tier twice", "name: t\nmatch: {tiers: [1, 1]}\n", 2, 20,
         "tier 1 is listed twice in 'tiers'"},
        {"risk tier key", "name: t\nrisk: {tier: {0: 4, ten: 1}}\n", 2, 21,
         "keys in 'tier' must be tiers 0 to 9, got 'ten'"},
        {"risk tier value", "name: t\nrisk: {tier: {0: 0}}\n", 2, 18,
         "'tier 0' must be greater than 0, got '0'"},
        {"quoted tier key out of range", "name: t\nrisk: {tier: {\"0\": 4, \"10\": 1}}\n",
         2, 23, "keys in 'tier' must be tiers 0 to 9, got '10'"},
        {"quoted tier value", "name: t\nrisk: {tier: {\"0\": \"4\"}}\n", 2, 20,
         "'tier 0' expects a number, got the quoted string '4' (remove the quotes)"},
        {"empty tier map", "name: t\nrisk: {tier: {}}\n", 2, 14,
         "'tier' is an empty map; leave 'tier' out instead"},
        {"empty kinds map", "name: t\nrisk: {kinds: {}}\n", 2, 15,
         "'kinds' is an empty map; leave 'kinds' out instead"},
        {"empty diff kinds", "name: t\ndiff: {kinds: {}}\n", 2, 15,
         "'kinds' is an empty map; leave 'kinds' out instead"},
        {"header case", "name: t\nanalysis:\n  metrics:\n    - name: m\n      json: {url: \"http://127.0.0.1:1/x\", headers_from_env: {X-Org: A, x-org: B}}\n      threshold: {max: 1}\n", 5, 72,
         "header 'x-org' repeats 'X-Org' (line 5): header names ignore case"},
        {"risk tier twice", "name: t\nrisk: {tier: {0: 4, 00: 1}}\n", 2, 21,
         "tier 0 is given twice in 'tier'"},
        {"bake_factor bound", "name: t\nai_assisted: {bake_factor: 500}\n", 2, 28,
         "'bake_factor' must be at most 100, got '500'"},
        {"min_samples bound", "name: t\nplan: {min_samples: 5000}\n", 2, 21,
         "'min_samples' must be at most 1000, got '5000'"},
        {"kind multiplier", "name: t\nrisk: {kinds: {config: -2}}\n", 2, 24,
         "'config' must be greater than 0, got '-2'"},
        {"kind twice", "name: t\nrisk: {kinds: {config: 2, config: 3}}\n", 2, 27,
         "'config' appears twice in 'kinds' (first at line 2)"},
        {"agents empty", "name: t\nprovenance: {agents: []}\n", 2, 22,
         "'agents' is an empty list; leave 'agents' out instead"},
        {"diff kind empty", "name: t\ndiff: {kinds: {\"*.sql\": ''}}\n", 2, 25,
         "'*.sql' must not be empty"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_steps(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"not increasing", "name: t\nplan:\n  steps: [1%, 5%, 5%, 100%]\n", 3, 19,
         "'steps' must increase strictly, got '5%' after '5%'"},
        {"decreasing", "name: t\nplan:\n  steps: [10%, 5%, 100%]\n", 3, 16,
         "'steps' must increase strictly, got '5%' after '10%'"},
        {"not ending at 100%", "name: t\nplan:\n  steps: [1%, 50%]\n", 3, 15,
         "the last of 'steps' must be 100%, got '50%'"},
        {"over 100%", "name: t\nplan:\n  steps: [1%, 150%]\n", 3, 15,
         "'steps' must be at most 100%, got '150%'"},
        {"no % sign", "name: t\nplan:\n  steps: [1, 100%]\n", 3, 11,
         "'steps' expects a percentage with a % sign, got '1'"},
        {"empty", "name: t\nplan:\n  steps: []\n", 3, 10,
         "'steps' expects a list of 1 to 100 percentages, got an empty list"},
        {"max_stages with steps", "name: t\nplan: {max_stages: 8, steps: [10%, 100%]}\n",
         2, 20, "'max_stages' has no effect with 'steps' (the ladder has 2 steps); "
         "remove one of them"},
        {"max_stages with one step", "name: t\nplan: {steps: [100%], max_stages: 2}\n",
         2, 35, "'max_stages' has no effect with 'steps' (the ladder has 1 step); "
         "remove one of them"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_metrics(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"both sources",
         "name: t\nanalysis:\n  metrics:\n"
         "    - name: m\n"
         "      prometheus: {address: \"http://p\", query: q}\n"
         "      json: {url: \"http://j\"}\n"
         "      threshold: {max: 1}\n",
         4, 7, "metric 'm' has both 'prometheus' and 'json'; give exactly one source"},
        {"no source",
         "name: t\nanalysis:\n  metrics:\n    - {name: m, threshold: {max: 1}}\n", 4, 7,
         "metric 'm' has no source; give 'prometheus' or 'json'"},
        {"no threshold",
         "name: t\nanalysis:\n  metrics:\n"
         "    - name: m\n      json: {url: \"http://j\"}\n",
         4, 7, "metric 'm' has neither 'threshold' nor 'baseline', so it could never fail"},
        {"duplicate names",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\"}, threshold: {max: 1}}\n"
         "    - {name: m, json: {url: \"http://k\"}, threshold: {max: 2}}\n",
         5, 14, "metric name 'm' is used twice (first at line 4)"},
        {"min above max",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\"}, threshold: {min: 5, max: 1}}\n",
         4, 53, "'threshold' has 'min' 5 above 'max' 1, so no value could pass"},
        {"empty threshold",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\"}, threshold: {}}\n",
         4, 53, "'threshold' needs 'min' or 'max' (or both)"},
        {"threshold not a quantity",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\"}, threshold: {max: 1ms}}\n",
         4, 59, "'max' expects a number or a percentage, got '1ms'"},
        {"baseline without max_increase",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\"}, baseline: {slack: 1}}\n",
         4, 52, "baseline is missing the required key 'max_increase'"},
        {"prometheus without query",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, prometheus: {address: \"http://p\"}, threshold: {max: 1}}\n",
         4, 29, "prometheus is missing the required key 'query'"},
        {"address not http",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, prometheus: {address: \"localhost:9090\", query: q}, "
         "threshold: {max: 1}}\n",
         4, 39, "'address' must be an http:// or https:// URL with a host, got 'localhost:9090'"},
        {"empty host before '?'",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://?x=1\"}, threshold: {max: 1}}\n",
         4, 29, "'url' must be an http:// or https:// URL with a host, got 'http://?x=1'"},
        {"empty host before '#'",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, prometheus: {address: \"https://#top\", query: q}, "
         "threshold: {max: 1}}\n",
         4, 39, "'address' must be an http:// or https:// URL with a host, got 'https://#top'"},
        {"port without host",
         "name: t\nactuator: {http: {url: \"http://:8080/hook\"}}\n", 2, 24,
         "'url' must be an http:// or https:// URL with a host, got 'http://:8080/hook'"},
        {"space in URL",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j/a b\"}, threshold: {max: 1}}\n",
         4, 29, "'url' must not contain whitespace, found a space at character 11 "
         "(write a space as %20)"},
        {"tab before the host",
         "name: t\nactuator: {http: {url: \"http://\\thook\"}}\n", 2, 24,
         "'url' must not contain whitespace, found a tab at character 8"},
        {"space in a webhook template",
         "name: t\nactuator: {http: {url: \"http://hook/{{ service }}\"}}\n", 2, 24,
         "'url' must not contain whitespace, found a space at character 15"},
        {"pointer without slash",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\", pointer: a/b}, threshold: {max: 1}}\n",
         4, 50, "'pointer' must be empty or start with '/' (a JSON pointer, RFC 6901), got 'a/b'"},
        {"bad reduce",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, prometheus: {address: \"http://p\", query: q, reduce: total}, "
         "threshold: {max: 1}}\n",
         4, 69, "'reduce' must be one of 'none', 'sum', 'max', 'min', 'avg', got 'total'"},
        {"min_requests without source", "name: t\nanalysis:\n  min_requests: {count: 10}\n",
         3, 17, "'min_requests' needs exactly one source, 'prometheus' or 'json', got neither"},
        {"min_requests count 0",
         "name: t\nanalysis:\n  min_requests: {count: 0, json: {url: \"http://j\"}}\n", 3, 25,
         "'count' must be at least 1, got '0'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_errors_cross_field(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"timeout not under interval", "name: t\nanalysis:\n  interval: 10s\n  timeout: 10s\n",
         4, 12, "'timeout' must be less than 'interval' (10s), got '10s'"},
        {"timeout over default interval", "name: t\nanalysis: {timeout: 45s}\n", 2, 21,
         "'timeout' must be less than 'interval' (30s), got '45s'"},
        {"max_bake under bake",
         "name: t\nplan: {bake: 5m}\nai_assisted: {bake_factor: 1}\nanalysis: {max_bake: 2m}\n",
         4, 22, "'max_bake' (2m) must be at least the bake, 5m (plan 'bake')"},
        {"max_bake under the default AI-assisted bake", "name: t\nanalysis: {max_bake: 90s}\n",
         2, 22, "'max_bake' (90s) must be at least the AI-assisted bake, 4m (bake 2m x "
         "bake_factor 2)"},
        {"max_bake under the AI-assisted bake",
         "name: t\nplan: {bake: 5m}\nai_assisted: {bake_factor: 3}\nanalysis: {max_bake: 6m}\n",
         4, 22, "'max_bake' (6m) must be at least the AI-assisted bake, 15m (bake 5m x "
         "bake_factor 3)"},
        {"max_bake under min_samples x interval",
         "name: t\nplan: {bake: 1m, min_samples: 5}\nai_assisted: {bake_factor: 1}\n"
         "analysis: {interval: 30s, max_bake: 2m}\n",
         4, 37, "'max_bake' (2m) must be at least the time to take min_samples "
         "measurements, 2m30s (min_samples 5 x interval 30s)"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

#define AI_BASE                                                                 \
    "name: t\n"                                                                 \
    "analysis:\n"                                                               \
    "  failure_limit: 1\n"                                                      \
    "  metrics:\n"                                                              \
    "    - {name: error-rate, json: {url: \"http://j\"}, threshold: {max: 1%}}\n" \
    "    - {name: latency, json: {url: \"http://j\"}, threshold: {min: 5, max: 10}}\n" \
    "ai_assisted:\n"                                                            \
    "  analysis:\n"

static void test_errors_ai_overrides(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"loosening max", AI_BASE "    thresholds:\n      error-rate: {max: 2%}\n", 10, 25,
         "AI-assisted 'max' for 'error-rate' may only tighten: at most '1%' (the "
         "metric's 'max'), got '2%'"},
        {"loosening min", AI_BASE "    thresholds:\n      latency: {min: 4}\n", 10, 22,
         "AI-assisted 'min' for 'latency' may only tighten: at least '5' (the "
         "metric's 'min'), got '4'"},
        {"unknown metric", AI_BASE "    thresholds:\n      error_rate: {max: 0.5%}\n", 10, 7,
         "'thresholds' names metric 'error_rate', which is not in analysis 'metrics' "
         "(did you mean 'error-rate'?)"},
        {"no passing value", AI_BASE "    thresholds:\n      latency: {max: 3}\n", 10, 16,
         "AI-assisted threshold for 'latency' leaves no passing value: with the "
         "metric's bounds, 'min' 5 is above 'max' 3"},
        {"no passing value, as written", AI_BASE "    thresholds:\n      error-rate: {min: 2%}\n",
         10, 19, "AI-assisted threshold for 'error-rate' leaves no passing value: with "
         "the metric's bounds, 'min' 2% is above 'max' 1%"},
        {"looser failure_limit", AI_BASE "    failure_limit: 2\n", 9, 20,
         "'failure_limit' for AI-assisted changes may only tighten: at most 1 "
         "(analysis 'failure_limit'), got '2'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_ai_override_tightens(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load(AI_BASE "    thresholds:\n      latency: {min: 6}\n"
                          "      error-rate: {max: 0.5%, min: 0}\n", &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    const cn_threshold_override *o = p.ai.analysis.thresholds;
    assert_int_equal(p.ai.analysis.threshold_count, 2);
    assert_string_equal(o[0].metric, "latency");
    assert_float_equal(o[0].threshold.min, 6, EPS);
    assert_float_equal(o[0].threshold.max, 10, EPS); /* kept from the metric */
    assert_string_equal(o[1].metric, "error-rate");
    assert_true(o[1].threshold.has_min); /* a bound the base lacks may be added */
    assert_float_equal(o[1].threshold.min, 0, EPS);
    assert_float_equal(o[1].threshold.max, 0.005, EPS);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_errors_secrets(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"literal bearer_token",
         "name: t\nanalysis:\n  metrics:\n"
         "    - name: m\n"
         "      prometheus: {address: \"http://p\", query: q, bearer_token: abc123}\n"
         "      threshold: {max: 1}\n",
         5, 65, "'bearer_token' is not accepted: secrets must not be written in policy "
         "files; put it in an environment variable and name that variable in "
         "'bearer_token_env'"},
        {"literal password",
         "name: t\nactuator: {http: {url: \"http://a\", password: hunter2}}\n", 2, 46,
         "'password' is not accepted"},
        {"literal headers",
         "name: t\nactuator: {http: {url: \"http://a\", headers: {Authorization: x}}}\n",
         2, 45, "'headers' is not accepted: header values may be secrets"},
        {"bad env name",
         "name: t\nactuator: {http: {url: \"http://a\", bearer_token_env: ACT-TOKEN}}\n",
         2, 54, "'bearer_token_env' must name an environment variable (letters, digits "
         "and '_', not starting with a digit), got 'ACT-TOKEN'"},
        {"header value is a secret",
         "name: t\nactuator: {http: {url: \"http://a\", headers_from_env: "
         "{Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc}}}\n",
         2, 70, "header 'Authorization' in 'headers_from_env' must name an environment "
         "variable (letters, digits and '_', not starting with a digit), got a "
         "value of 35 characters (not shown: it may be a secret)"},
        {"credentials in URL",
         "name: t\nactuator: {http: {url: \"https://user:pw@hook/x\"}}\n", 2, 24,
         "'url' must not carry credentials (user:password@)"},
        {"bad header name",
         "name: t\nactuator: {http: {url: \"http://a\", headers_from_env: {\"X Team\": T}}}\n",
         2, 55, "'X Team' is not a valid HTTP header name"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);

    /* The secret itself never reaches a diagnostic (and so never a CI log). */
    cn_policy p;
    cn_diags d;
    load(cases[4].yaml, &p, &d);
    assert_int_equal(cn_diags_find(&d, "eyJhbGci"), -1);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* ---- notify -------------------------------------------------------------- */

static void test_load_notify(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load("name: t\n"
                  "notify:\n"
                  "  - url: https://hooks.example.com/canary\n"
                  "  - url: \"https://hooks.slack.com/services/T0/B0/X\"\n"
                  "    format: slack\n"
                  "    events: [rolled_back, failed, started]\n"
                  "    timeout: 1500ms\n"
                  "    bearer_token_env: HOOK_TOKEN\n"
                  "    headers_from_env: {X-Team: TEAM_NAME}\n",
                  &p, &d);
    if (rc) {
        cn_test_print_diags(&d);
        fail();
    }
    assert_int_equal(p.notify_count, 2);
    const cn_webhook *a = &p.notify[0], *b = &p.notify[1];
    /* defaults: generic, every event, 5s, no credentials */
    assert_string_equal(a->url, "https://hooks.example.com/canary");
    assert_int_equal(a->format, CN_NOTIFY_GENERIC);
    assert_int_equal(a->events, CN_NOTIFY_ALL);
    assert_int_equal(a->timeout_ms, 5000);
    assert_null(a->auth.bearer_token_env);
    assert_int_equal(a->auth.header_count, 0);
    assert_int_equal(a->line, 3);
    assert_int_equal(a->col, 5);
    assert_string_equal(b->url, "https://hooks.slack.com/services/T0/B0/X");
    assert_int_equal(b->format, CN_NOTIFY_SLACK);
    assert_int_equal(b->events, CN_NOTIFY_ROLLED_BACK | CN_NOTIFY_FAILED | CN_NOTIFY_STARTED);
    assert_int_equal(b->timeout_ms, 1500);
    assert_string_equal(b->auth.bearer_token_env, "HOOK_TOKEN");
    assert_int_equal(b->auth.header_count, 1);
    assert_string_equal(b->auth.headers[0].name, "X-Team");
    assert_string_equal(b->auth.headers[0].env, "TEAM_NAME");
    assert_int_equal(b->line, 4);
    /* the names, in bit order */
    assert_string_equal(cn_notify_event_names[0], "started");
    assert_string_equal(cn_notify_event_names[1], "stage_advanced");
    assert_string_equal(cn_notify_event_names[2], "awaiting_approval");
    assert_string_equal(cn_notify_event_names[3], "rolled_back");
    assert_string_equal(cn_notify_event_names[4], "completed");
    assert_string_equal(cn_notify_event_names[5], "failed");
    cn_policy_free(&p);
    cn_diags_free(&d);

    /* none by default */
    assert_int_equal(load("name: t\n", &p, &d), CN_OK);
    assert_int_equal(p.notify_count, 0);
    assert_null(p.notify);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_errors_notify(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"unknown event with hint", "name: t\nnotify:\n  - {url: \"http://a\", events: "
         "[started, complted]}\n", 3, 41,
         "unknown event 'complted' in 'events' (did you mean 'completed'?); known: started, "
         "stage_advanced, awaiting_approval, rolled_back, completed, failed"},
        {"event log name", "name: t\nnotify:\n  - {url: \"http://a\", events: [stage_applied]}\n",
         3, 32, "unknown event 'stage_applied' in 'events' (did you mean 'stage_advanced'?)"},
        {"aborted is a rollback", "name: t\nnotify:\n  - {url: \"http://a\", events: [aborted]}\n",
         3, 32, "unknown event 'aborted' in 'events' (did you mean 'rolled_back'?)"},
        {"unknown event, no hint", "name: t\nnotify:\n  - {url: \"http://a\", events: [deploy]}\n",
         3, 32, "unknown event 'deploy' in 'events'; known: started,"},
        {"event twice", "name: t\nnotify:\n  - {url: \"http://a\", events: [failed, failed]}\n",
         3, 40, "event 'failed' is listed twice in 'events'"},
        {"no events", "name: t\nnotify:\n  - {url: \"http://a\", events: []}\n", 3, 31,
         "'events' expects a non-empty list of events (started, stage_advanced, "
         "awaiting_approval, rolled_back, completed, failed), got an empty list; leave "
         "'events' out for all of them"},
        {"events as scalar", "name: t\nnotify:\n  - {url: \"http://a\", events: started}\n", 3,
         31, "'events' expects a non-empty list of events"},
        {"ftp scheme", "name: t\nnotify:\n  - url: ftp://hooks.example.com/x\n", 3, 10,
         "'url' must be an http:// or https:// URL with a host, got "
         "'ftp://hooks.example.com/x'"},
        {"no scheme", "name: t\nnotify:\n  - url: hooks.example.com\n", 3, 10,
         "'url' must be an http:// or https:// URL with a host, got 'hooks.example.com'"},
        {"credentials in url", "name: t\nnotify:\n  - url: \"https://u:p@hooks.example.com\"\n",
         3, 10, "'url' must not carry credentials (user:password@)"},
        {"missing url", "name: t\nnotify:\n  - {format: slack}\n", 3, 5,
         "notify is missing the required key 'url'"},
        {"unknown format", "name: t\nnotify:\n  - {url: \"http://a\", format: slak}\n", 3, 31,
         "'format' must be one of 'generic', 'slack', got 'slak' (did you mean 'slack'?)"},
        {"unknown key", "name: t\nnotify:\n  - {url: \"http://a\", evnts: [failed]}\n", 3, 23,
         "unknown key 'evnts' in notify (did you mean 'events'?)"},
        {"literal headers", "name: t\nnotify:\n  - url: \"http://a\"\n"
         "    headers: {Authorization: \"Bearer ${HOOK_TOKEN}\"}\n", 4, 14,
         "'headers' is not accepted: header values may be secrets; put each in an "
         "environment variable and name it in 'headers_from_env'"},
        {"literal token", "name: t\nnotify:\n  - {url: \"http://a\", token: abc}\n", 3, 30,
         "'token' is not accepted: secrets must not be written in policy files"},
        {"bad env name", "name: t\nnotify:\n  - url: \"http://a\"\n"
         "    bearer_token_env: ${HOOK_TOKEN}\n", 4, 23,
         "'bearer_token_env' must name an environment variable"},
        {"zero timeout", "name: t\nnotify:\n  - {url: \"http://a\", timeout: 0s}\n", 3, 32,
         "'timeout' must be greater than 0s, got '0s'"},
        {"timeout over a minute", "name: t\nnotify:\n  - {url: \"http://a\", timeout: 2m}\n", 3,
         32, "'timeout' must be at most 1m, got '2m'"},
        {"timeout without unit", "name: t\nnotify:\n  - {url: \"http://a\", timeout: 5}\n", 3,
         32, "'timeout' expects a duration with a unit"},
        {"empty list", "name: t\nnotify: []\n", 2, 9,
         "'notify' expects a non-empty list of webhooks, each with a 'url', got an empty "
         "list"},
        {"a map", "name: t\nnotify: {url: \"http://a\"}\n", 2, 9,
         "'notify' expects a non-empty list of webhooks, each with a 'url', got a map"},
        {"null", "name: t\nnotify:\n", 2, 8,
         "'notify' expects a non-empty list of webhooks, each with a 'url', got nothing"},
        {"entry not a map", "name: t\nnotify: [\"http://a\"]\n", 2, 10,
         "each entry of 'notify' must be a map with a 'url', got a quoted string"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);

    /* every problem of every entry, each once */
    cn_policy p;
    cn_diags d;
    assert_int_equal(load("name: t\nnotify:\n"
                          "  - {url: \"ftp://a\", format: teams}\n"
                          "  - {url: \"http://b\", events: [rollback]}\n",
                          &p, &d),
                     CN_EINVAL);
    assert_int_equal(cn_diags_total(&d), 3);
    expect_diag(&d, 3, 11, "'url' must be an http:// or https:// URL");
    expect_diag(&d, 3, 30, "'format' must be one of 'generic', 'slack', got 'teams'");
    expect_diag(&d, 4, 32, "unknown event 'rollback' in 'events' (did you mean "
                           "'rolled_back'?)");
    assert_int_equal(p.notify_count, 0);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_errors_actuator(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"both", "name: t\nactuator: {exec: [x], http: {url: \"http://a\"}}\n", 2, 11,
         "actuator has both 'exec' and 'http'; give exactly one"},
        {"neither", "name: t\nactuator: {timeout: 5s}\n", 2, 11,
         "actuator needs 'exec' (a command) or 'http' (a webhook URL)"},
        {"empty argv", "name: t\nactuator: {exec: []}\n", 2, 18,
         "'exec' must start with a command to run, got an empty list"},
        {"http without url", "name: t\nactuator: {http: {bearer_token_env: T}}\n", 2, 18,
         "actuator.http is missing the required key 'url'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);

    cn_policy p;
    cn_diags d;
    assert_int_equal(load("name: t\nactuator:\n", &p, &d), CN_OK);
    assert_int_equal(p.actuator.exec.count, 0);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* One run reports every problem, not the first. */
static void test_many_errors_in_one_run(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load("name: many\n"
                  "plan:\n"
                  "  growth: 1\n"
                  "  bake: 5\n"
                  "  first_stage_impact: 0.1\n"
                  "analysis:\n"
                  "  intervall: 30s\n"
                  "  metrics:\n"
                  "    - {name: m, json: {url: \"http://j\"}}\n"
                  "actuator: {exec: [x], http: {url: \"http://a\"}}\n",
                  &p, &d);
    assert_int_equal(rc, CN_EINVAL);
    if (cn_diags_total(&d) != 6)
        cn_test_print_diags(&d);
    assert_int_equal(cn_diags_total(&d), 6);
    expect_diag(&d, 3, 11, "'growth' must be greater than 1");
    expect_diag(&d, 4, 9, "'bake' expects a duration with a unit");
    expect_diag(&d, 5, 23, "'first_stage_impact' expects a percentage with a % sign");
    expect_diag(&d, 7, 3, "did you mean 'interval'");
    expect_diag(&d, 9, 7, "neither 'threshold' nor 'baseline'");
    expect_diag(&d, 10, 11, "both 'exec' and 'http'");
    assert_string_equal(d.items[0].file, "p.yaml");
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* A value already reported, as malformed or out of range, is not compared
 * again: each case gets exactly its one message. */
static void test_no_cross_check_on_bad_values(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"malformed interval", "name: t\nanalysis: {interval: 5, timeout: 45s}\n", 2, 22,
         "'interval' expects a duration with a unit"},
        {"interval under its minimum", "name: t\nanalysis: {interval: 500ms, timeout: 1s}\n",
         2, 22, "'interval' must be at least 1s, got '500ms'"},
        {"timeout out of range", "name: t\nanalysis:\n  interval: 10s\n  timeout: 0s\n",
         4, 12, "'timeout' must be greater than 0s, got '0s'"},
        {"max_bake out of range", "name: t\nanalysis: {max_bake: 0s}\n", 2, 22,
         "'max_bake' must be greater than 0s, got '0s'"},
        {"bake out of range", "name: t\nplan: {bake: 0s}\nanalysis: {max_bake: 1m}\n", 2, 14,
         "'bake' must be greater than 0s, got '0s'"},
        {"bake_factor out of range",
         "name: t\nai_assisted: {bake_factor: 0.5}\nanalysis: {max_bake: 1m}\n", 2, 28,
         "'bake_factor' must be at least 1, got '0.5'"},
        {"min_samples out of range",
         "name: t\nplan: {min_samples: 0}\nai_assisted: {bake_factor: 1}\n"
         "analysis: {max_bake: 1m}\n",
         2, 21, "'min_samples' must be at least 1, got '0'"},
        {"plan not a map", "name: t\nplan: [1]\nanalysis: {max_bake: 1m}\n", 2, 7,
         "plan must be a map of keys, got a list"},
        {"max_stages out of range with steps",
         "name: t\nplan: {max_stages: 1, steps: [100%]}\n", 2, 20,
         "'max_stages' must be at least 2, got '1'"},
        {"bad steps with max_stages",
         "name: t\nplan: {max_stages: 8, steps: [10%, 5%, 100%]}\n", 2, 36,
         "'steps' must increase strictly, got '5%' after '10%'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* JSON can only quote map keys, so a quoted whole number is a tier; the
 * multipliers stay strict numbers (see test_errors_types). */
static void test_json_tier_keys(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = cn_test_load_policy("p.json", "{\"name\": \"x\", \"risk\": {\"tier\": {\"0\": 4, "
                        "\"3\": 0.5, \"9\": 0.1}}}", &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_true(p.risk.has_tier[0] && p.risk.has_tier[3] && p.risk.has_tier[9]);
    assert_false(p.risk.has_tier[1]);
    assert_float_equal(p.risk.tier[0], 4, EPS);
    assert_float_equal(p.risk.tier[3], 0.5, EPS);
    assert_float_equal(p.risk.tier[9], 0.1, EPS);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* max_stages alone still loads; only the pair with steps is refused. */
static void test_max_stages_without_steps(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    assert_int_equal(load("name: t\nplan: {max_stages: 8}\n", &p, &d), CN_OK);
    assert_int_equal(p.plan.max_stages, 8);
    assert_int_equal(p.plan.step_count, 0);
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* The longest bake the policy allows, met exactly, is accepted. */
static void test_max_bake_at_longest_bake(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "name: t\nplan: {bake: 5m}\nai_assisted: {bake_factor: 3}\nanalysis: {max_bake: 15m}\n",
        ("name: t\nplan: {bake: 1m, min_samples: 5}\nai_assisted: {bake_factor: 1}\n"
         "analysis: {interval: 30s, max_bake: 150s}\n"),
        "name: t\nplan: {bake: 5m}\nai_assisted: {bake_factor: 1}\nanalysis: {max_bake: 5m}\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cn_policy p;
        cn_diags d;
        int rc = load(ok[i], &p, &d);
        if (rc)
            cn_test_print_diags(&d);
        assert_int_equal(rc, CN_OK);
        cn_policy_free(&p);
        cn_diags_free(&d);
    }
}

#define SLACK_METRIC(slack)                                                     \
    "name: t\nanalysis:\n  metrics:\n"                                          \
    "    - {name: m, json: {url: \"http://j\"}, baseline: {max_increase: 20%, " \
    "slack: " slack "}}\n"

/* slack takes the same forms as a threshold on the same metric. */
static void test_baseline_slack_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        double slack;
    } ok[] = {{SLACK_METRIC("0.1%"), 0.001}, {SLACK_METRIC("0.001"), 0.001},
              {SLACK_METRIC("\"5%\""), 0.05}, {SLACK_METRIC("0"), 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cn_policy p;
        cn_diags d;
        int rc = load(ok[i].yaml, &p, &d);
        if (rc)
            cn_test_print_diags(&d);
        assert_int_equal(rc, CN_OK);
        assert_float_equal(p.analysis.metrics[0].baseline.slack, ok[i].slack, EPS);
        cn_policy_free(&p);
        cn_diags_free(&d);
    }
    static const error_case cases[] = {
        {"negative percentage", SLACK_METRIC("-1%"), 4, 79,
         "'slack' must be at least 0%, got '-1%'"},
        {"negative number", SLACK_METRIC("-1"), 4, 79, "'slack' must be at least 0, got '-1'"},
        {"a duration", SLACK_METRIC("1ms"), 4, 79,
         "'slack' expects a number or a percentage, got '1ms'"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

#define KNOWN_TEMPLATES "known: service, version, previous_version, rollout, stage"
#define PROM_QUERY(q)                                                           \
    "name: t\nanalysis:\n  metrics:\n"                                          \
    "    - name: m\n"                                                           \
    "      prometheus: {address: \"http://p\", query: '" q "'}\n"              \
    "      threshold: {max: 1}\n"

static void test_errors_templates(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"misspelt in query", PROM_QUERY("up{job=\"{{servcie}}\"}"), 5, 48,
         "unknown template '{{servcie}}' in 'query' (did you mean '{{service}}'?); "
         KNOWN_TEMPLATES},
        {"spaces kept as written", PROM_QUERY("up{v=\"{{ verison }}\"}"), 5, 48,
         "unknown template '{{ verison }}' in 'query' (did you mean '{{version}}'?); "
         KNOWN_TEMPLATES},
        {"nothing close", PROM_QUERY("up{zone=\"{{zone}}\"}"), 5, 48,
         "unknown template '{{zone}}' in 'query'; " KNOWN_TEMPLATES},
        {"unclosed", PROM_QUERY("up{job=\"{{service\"}"), 5, 48,
         "'query' has a '{{' with no closing '}}' (templates are written {{service}})"},
        {"misspelt in address",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, prometheus: {address: \"http://{{sevice}}:9090\", query: q}, "
         "threshold: {max: 1}}\n",
         4, 39, "unknown template '{{sevice}}' in 'address' (did you mean '{{service}}'?)"},
        {"misspelt in json url",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j/s?v={{verison}}\"}, threshold: {max: 1}}\n",
         4, 29, "unknown template '{{verison}}' in 'url' (did you mean '{{version}}'?)"},
        {"misspelt in pointer",
         "name: t\nanalysis:\n  metrics:\n"
         "    - {name: m, json: {url: \"http://j\", pointer: \"/{{stag}}/x\"}, "
         "threshold: {max: 1}}\n",
         4, 50, "unknown template '{{stag}}' in 'pointer' (did you mean '{{stage}}'?)"},
        {"misspelt in min_requests",
         "name: t\nanalysis:\n  min_requests:\n    count: 10\n"
         "    prometheus: {address: \"http://p\", query: 'sum(x{v=\"{{previous-version}}\"})'}\n",
         5, 46, "unknown template '{{previous-version}}' in 'query' (did you mean "
         "'{{previous_version}}'?)"},
    };
    cn_test_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Every known name, with or without spaces inside the braces. */
static void test_templates_accepted(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    int rc = load("name: t\nanalysis:\n  metrics:\n"
                  "    - name: m\n"
                  "      prometheus:\n"
                  "        address: \"http://{{service}}.prom:9090\"\n"
                  "        query: 'x{s=\"{{ service }}\",v=\"{{version}}\","
                  "p=\"{{previous_version}}\",r=\"{{rollout}}\",n=\"{{  stage }}\"}'\n"
                  "      threshold: {max: 1}\n"
                  "    - name: j\n"
                  "      json: {url: \"http://j/{{ service }}?v={{version}}\", "
                  "pointer: \"/stages/{{stage}}\"}\n"
                  "      threshold: {max: 1}\n",
                  &p, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_string_equal(p.analysis.metrics[1].source.url,
                        "http://j/{{ service }}?v={{version}}");
    cn_policy_free(&p);
    cn_diags_free(&d);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    cn_policy p;
    cn_diags d;
    cn_diags_init(&d);
    assert_int_equal(cn_policy_load(&p, "/nonexistent/policy.yaml", &d), CN_ENOTFOUND);
    assert_int_equal(cn_diags_total(&d), 1);
    assert_string_equal(p.file, "/nonexistent/policy.yaml");
    cn_policy_free(&p);
    cn_diags_free(&d);
}

/* ---- selection --------------------------------------------------------- */

typedef struct fixture {
    cn_policy pols[6];
    cn_policy *items[6];
    cn_policy_set set;
} fixture;

static cn_policy *add(fixture *f, const char *file, const char *const *globs,
                      size_t nglobs, int tier, int ai)
{
    cn_policy *p = &f->pols[f->set.count];
    cn_policy_defaults(p);
    p->file = file;
    p->name = file;
    p->match.services.items = (const char **)globs;
    p->match.services.count = nglobs;
    if (tier >= 0) {
        p->match.tiers[0] = tier;
        p->match.tier_count = 1;
    }
    p->match.ai_assisted = ai;
    f->items[f->set.count] = p;
    f->set.items = f->items;
    f->set.count++;
    return p;
}

static void fixture_free(fixture *f)
{
    for (size_t i = 0; i < f->set.count; i++)
        cn_policy_free(&f->pols[i]);
}

/* The file of the policy chosen for the subject; asserts success. */
static const char *pick(const fixture *f, const char *service, int tier, bool ai)
{
    cn_match_subject s = {service, tier, ai};
    const cn_policy *chosen = NULL;
    char err[512] = "";
    int rc = cn_policy_select(&f->set, &s, &chosen, err, sizeof err);
    if (rc)
        fail_msg("select %s/%d/%d: %d %s", service, tier, ai, rc, err);
    return chosen->file;
}

static const char *const STAR[] = {"*"};
static const char *const CHECK_GLOB[] = {"check*"};
static const char *const CHECKOUT[] = {"checkout"};
static const char *const C_GLOB[] = {"c*"};
static const char *const TWO_GLOBS[] = {"s*", "checkou?"};

static void test_select_exact_glob_star(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "star.yaml", STAR, 1, -1, -1);
    add(&f, "glob.yaml", CHECK_GLOB, 1, -1, -1);
    add(&f, "exact.yaml", CHECKOUT, 1, -1, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "exact.yaml");
    assert_string_equal(pick(&f, "checkin", 0, false), "glob.yaml");
    assert_string_equal(pick(&f, "search", 2, true), "star.yaml");
    fixture_free(&f);
}

static void test_select_more_literals_wins(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "c.yaml", C_GLOB, 1, -1, -1);
    add(&f, "check.yaml", CHECK_GLOB, 1, -1, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "check.yaml");
    assert_string_equal(pick(&f, "cart", 0, false), "c.yaml");
    /* A policy is as specific as its best matching glob: "checkou?" has 7
     * literal characters, "check*" 5. */
    add(&f, "two.yaml", TWO_GLOBS, 2, -1, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "two.yaml");
    assert_string_equal(pick(&f, "search", 0, false), "two.yaml");
    fixture_free(&f);

    /* Characters in a bracket expression are not literal: "[cb]heckout" has
     * 7 literal characters and is a glob, so it beats "check*" and loses to
     * the exact name. */
    fixture g = {0};
    add(&g, "bracket.yaml", (const char *const[]){"[cb]heckout"}, 1, -1, -1);
    add(&g, "check.yaml", CHECK_GLOB, 1, -1, -1);
    assert_string_equal(pick(&g, "checkout", 0, false), "bracket.yaml");
    add(&g, "exact.yaml", CHECKOUT, 1, -1, -1);
    assert_string_equal(pick(&g, "checkout", 0, false), "exact.yaml");
    fixture_free(&g);
}

static void test_select_tier_criterion(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "any.yaml", NULL, 0, -1, -1);
    add(&f, "tier0.yaml", STAR, 1, 0, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "tier0.yaml");
    assert_string_equal(pick(&f, "checkout", 1, false), "any.yaml");
    /* The service criterion ranks first: a glob beats a tier. */
    add(&f, "glob.yaml", CHECK_GLOB, 1, -1, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "glob.yaml");
    fixture_free(&f);
}

static void test_select_tier_unknown(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "tier0.yaml", NULL, 0, 0, -1);
    cn_match_subject s = {"checkout", -1, false};
    const cn_policy *chosen = (const cn_policy *)&f;
    char err[512] = "";
    assert_int_equal(cn_policy_select(&f.set, &s, &chosen, err, sizeof err),
                     CN_ENOTFOUND);
    assert_null(chosen);
    assert_non_null(strstr(err, "no policy matches service 'checkout' (tier unknown"));
    add(&f, "any.yaml", NULL, 0, -1, -1);
    assert_string_equal(pick(&f, "checkout", -1, false), "any.yaml");
    fixture_free(&f);
}

static void test_select_ai_criterion(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "any.yaml", STAR, 1, -1, -1);
    add(&f, "ai.yaml", NULL, 0, -1, 1);
    add(&f, "human.yaml", NULL, 0, -1, 0);
    assert_string_equal(pick(&f, "search", 2, true), "ai.yaml");
    assert_string_equal(pick(&f, "search", 2, false), "human.yaml");
    /* tier ranks above ai_assisted */
    add(&f, "tier2.yaml", NULL, 0, 2, -1);
    assert_string_equal(pick(&f, "search", 2, true), "tier2.yaml");
    assert_string_equal(pick(&f, "search", 3, true), "ai.yaml");
    fixture_free(&f);
}

static void test_select_tie_is_an_error(void **state)
{
    (void)state;
    fixture f = {0};
    add(&f, "policies/a.yaml", STAR, 1, -1, -1);
    add(&f, "policies/b.yaml", NULL, 0, -1, -1);
    cn_match_subject s = {"checkout", 0, false};
    const cn_policy *chosen = NULL;
    char err[512] = "";
    assert_int_equal(cn_policy_select(&f.set, &s, &chosen, err, sizeof err), CN_EINVAL);
    assert_null(chosen);
    assert_string_equal(err, "policies/a.yaml and policies/b.yaml both match service "
                             "'checkout' equally specifically; narrow one of their "
                             "match sections");
    /* A tie below the winner does not matter. */
    add(&f, "policies/c.yaml", CHECKOUT, 1, -1, -1);
    assert_string_equal(pick(&f, "checkout", 0, false), "policies/c.yaml");
    fixture_free(&f);
}

static void test_select_no_match(void **state)
{
    (void)state;
    fixture f = {0};
    cn_match_subject s = {"checkout", 2, true};
    const cn_policy *chosen = NULL;
    char err[512] = "";
    assert_int_equal(cn_policy_select(&f.set, &s, &chosen, err, sizeof err),
                     CN_ENOTFOUND);
    add(&f, "search.yaml", (const char *const[]){"search"}, 1, -1, -1);
    assert_int_equal(cn_policy_select(&f.set, &s, &chosen, err, sizeof err),
                     CN_ENOTFOUND);
    assert_null(chosen);
    assert_string_equal(err, "no policy matches service 'checkout' (tier 2, "
                             "AI-assisted); add a catch-all policy with match: "
                             "{services: [\"*\"]}");
    fixture_free(&f);
}

/* ---- directories ------------------------------------------------------- */

typedef struct tmpdir {
    char path[64];
    char files[8][128];
    size_t count;
} tmpdir;

static void tmp_make(tmpdir *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->path, sizeof t->path, "/tmp/canary-policy-XXXXXX");
    assert_non_null(mkdtemp(t->path));
}

static void tmp_write(tmpdir *t, const char *name, const char *text)
{
    assert_true(t->count < 8);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", t->path, name);
    memcpy(t->files[t->count], path, sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    t->count++;
}

static void tmp_remove(tmpdir *t)
{
    for (size_t i = 0; i < t->count; i++)
        unlink(t->files[i]);
    rmdir(t->path);
}

static void test_set_loads_sorted_policy_files(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "b.yml", "name: bee\nmatch: {services: [\"*\"]}\n");
    tmp_write(&t, "a.yaml", "name: ay\nmatch: {services: [search]}\n");
    tmp_write(&t, "notes.txt", "not a policy\n");
    tmp_write(&t, ".hidden.yaml", "not: a policy\n");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    int rc = cn_policy_set_load_dir(&set, t.path, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(set.count, 2);
    assert_string_equal(set.items[0]->name, "ay");
    assert_string_equal(set.items[1]->name, "bee");
    char want[160];
    snprintf(want, sizeof want, "%s/a.yaml", t.path);
    assert_string_equal(set.items[0]->file, want);
    cn_policy_set_free(&set);
    assert_int_equal(set.count, 0);
    cn_diags_free(&d);
    tmp_remove(&t);
}

/* The files `canary validate DIR` checks are the files that load. */
static void test_set_loads_json_policies(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "b.yaml", "name: bee\n");
    tmp_write(&t, "a.json", "{\"name\": \"jay\", \"match\": {\"tiers\": [0]},\n"
                            " \"risk\": {\"tier\": {\"0\": 5}}}\n");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    int rc = cn_policy_set_load_dir(&set, t.path, &d);
    if (rc)
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(set.count, 2);
    assert_string_equal(set.items[0]->name, "jay");
    assert_float_equal(set.items[0]->risk.tier[0], 5, EPS);
    assert_string_equal(set.items[1]->name, "bee");
    cn_policy_set_free(&set);
    cn_diags_free(&d);
    tmp_remove(&t);
}

static void test_set_duplicate_names(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "a.yaml", "name: same\n");
    tmp_write(&t, "b.yaml", "# the same name again\nname: same\n");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    assert_int_equal(cn_policy_set_load_dir(&set, t.path, &d), CN_EINVAL);
    assert_int_equal(cn_diags_total(&d), 1);
    char want[256];
    snprintf(want, sizeof want, "policy name 'same' is also used by %s/a.yaml; "
             "policy names must be unique", t.path);
    expect_diag(&d, 2, 7, want);
    snprintf(want, sizeof want, "%s/b.yaml", t.path);
    assert_string_equal(d.items[0].file, want);
    cn_policy_set_free(&set);
    cn_diags_free(&d);
    tmp_remove(&t);
}

/* A broken file does not hide the problems of the next one. */
static void test_set_reports_every_file(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "a.yaml", "name: a\nplan: {growth: 1}\n");
    tmp_write(&t, "b.yaml", "name: b\nplan: {bake: 5}\n");
    tmp_write(&t, "c.yaml", "name: c\n");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    assert_int_equal(cn_policy_set_load_dir(&set, t.path, &d), CN_EINVAL);
    assert_int_equal(cn_diags_total(&d), 2);
    expect_diag(&d, 2, 16, "'growth' must be greater than 1, got '1'");
    expect_diag(&d, 2, 14, "'bake' expects a duration with a unit");
    assert_non_null(strstr(d.items[0].file, "/a.yaml"));
    assert_non_null(strstr(d.items[1].file, "/b.yaml"));
    cn_policy_set_free(&set);
    cn_diags_free(&d);
    tmp_remove(&t);
}

static void test_set_empty_and_missing_dirs(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "README", "policies go here\n");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    assert_int_equal(cn_policy_set_load_dir(&set, t.path, &d), CN_EINVAL);
    assert_int_equal(set.count, 0);
    expect_diag(&d, 0, 0, "no policy files (*.yaml, *.yml or *.json) in this directory");
    cn_policy_set_free(&set);
    cn_diags_free(&d);

    cn_diags_init(&d);
    assert_int_equal(cn_policy_set_load_dir(&set, "/nonexistent/policies", &d),
                     CN_ENOTFOUND);
    expect_diag(&d, 0, 0, "cannot open the policy directory");
    assert_string_equal(d.items[0].file, "/nonexistent/policies");
    cn_policy_set_free(&set);
    cn_diags_free(&d);
    tmp_remove(&t);
}

/* ---- the shipped policies ---------------------------------------------- */

static void test_shipped_policies(void **state)
{
    (void)state;
    const char *src = getenv("CANARY_SRC");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/policies", src && *src ? src : ".");
    cn_policy_set set;
    cn_diags d;
    cn_diags_init(&d);
    int rc = cn_policy_set_load_dir(&set, dir, &d);
    if (rc || cn_diags_total(&d))
        cn_test_print_diags(&d);
    assert_int_equal(rc, CN_OK);
    assert_int_equal(cn_diags_total(&d), 0);
    assert_int_equal(set.count, 3);
    assert_string_equal(set.items[0]->name, "ai-assisted");
    assert_string_equal(set.items[1]->name, "default");
    assert_string_equal(set.items[2]->name, "tier0-critical");

    static const struct {
        const char *service;
        int tier;
        bool ai;
        const char *policy;
    } cases[] = {
        {"checkout", 0, true, "tier0-critical"},
        {"checkout", 0, false, "tier0-critical"},
        {"search", 2, true, "ai-assisted"},
        {"search", 2, false, "default"},
        {"checkout", -1, true, "ai-assisted"},
        {"checkout", -1, false, "default"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_match_subject s = {cases[i].service, cases[i].tier, cases[i].ai};
        const cn_policy *chosen = NULL;
        char err[512] = "";
        rc = cn_policy_select(&set, &s, &chosen, err, sizeof err);
        if (rc)
            fail_msg("%s: %s", cases[i].service, err);
        assert_string_equal(chosen->name, cases[i].policy);
    }
    /* Spot checks that the files say what their comments promise. */
    const cn_policy *ai = set.items[0], *t0 = set.items[2];
    assert_float_equal(ai->ai.risk, 3, EPS);
    assert_float_equal(ai->ai.bake_factor, 3, EPS);
    assert_float_equal(ai->ai.approval_above_weight, 0.05, EPS);
    assert_float_equal(t0->plan.first_stage_impact, 0.0001, EPS);
    assert_true(t0->analysis.metrics[0].baseline.enabled);
    assert_string_equal(set.items[1]->actuator.exec.items[0],
                        "examples/actuators/set-weight.sh");
    cn_policy_set_free(&set);
    cn_diags_free(&d);
}

/* Without diff.kinds a policy still tells a migration from a code edit. */
static void test_default_kind_rules(void **state)
{
    (void)state;
    cn_policy p;
    cn_policy_defaults(&p);
    static const char *const cases[][2] = {
        {"db/001_add_index.sql", "migration"}, {"app/migrations/0002.py", "migration"},
        {"web/package-lock.json", "dependency"}, {"go.sum", "dependency"},
        {"api/orders.proto", "schema"}, {"config/app.yaml", "config"},
        {"deploy/k8s.yml", "config"}, {"src/main.c", "code"}, {"README.md", "code"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(cn_policy_kind_for_path(&p, cases[i][0]), cases[i][1]);
    cn_policy_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_full),
        cmocka_unit_test(test_load_exec_actuator),
        cmocka_unit_test(test_load_notify),
        cmocka_unit_test(test_errors_notify),
        cmocka_unit_test(test_defaults_when_absent),
        cmocka_unit_test(test_default_timeout_follows_interval),
        cmocka_unit_test(test_match_position),
        cmocka_unit_test(test_errors_scalars),
        cmocka_unit_test(test_errors_types),
        cmocka_unit_test(test_errors_steps),
        cmocka_unit_test(test_errors_metrics),
        cmocka_unit_test(test_errors_cross_field),
        cmocka_unit_test(test_errors_ai_overrides),
        cmocka_unit_test(test_ai_override_tightens),
        cmocka_unit_test(test_errors_secrets),
        cmocka_unit_test(test_errors_actuator),
        cmocka_unit_test(test_many_errors_in_one_run),
        cmocka_unit_test(test_no_cross_check_on_bad_values),
        cmocka_unit_test(test_json_tier_keys),
        cmocka_unit_test(test_max_stages_without_steps),
        cmocka_unit_test(test_max_bake_at_longest_bake),
        cmocka_unit_test(test_baseline_slack_forms),
        cmocka_unit_test(test_errors_templates),
        cmocka_unit_test(test_templates_accepted),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_select_exact_glob_star),
        cmocka_unit_test(test_select_more_literals_wins),
        cmocka_unit_test(test_select_tier_criterion),
        cmocka_unit_test(test_select_tier_unknown),
        cmocka_unit_test(test_select_ai_criterion),
        cmocka_unit_test(test_select_tie_is_an_error),
        cmocka_unit_test(test_select_no_match),
        cmocka_unit_test(test_set_loads_sorted_policy_files),
        cmocka_unit_test(test_set_loads_json_policies),
        cmocka_unit_test(test_set_duplicate_names),
        cmocka_unit_test(test_set_reports_every_file),
        cmocka_unit_test(test_set_empty_and_missing_dirs),
        cmocka_unit_test(test_shipped_policies),
        cmocka_unit_test(test_default_kind_rules),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
