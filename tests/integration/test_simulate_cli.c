/* canary simulate, end to end: the real binary on written inputs (text,
 * JSON, --decisions, an SVG checked for balanced tags and its elements, a
 * rollout left at its approval gate, every input error with its exit code
 * and FILE:LINE:COLUMN), and the consistency test: the same scenario run
 * by `canary run` against the fake metrics server (tests/fake) and by
 * `canary simulate` with the equivalent trace gives the same events, in
 * the same order (the run's read back from its state database). */
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
#include "scenario.h"

#define PLAN "plan: {steps: [10%, 50%, 100%], bake: 2s, min_samples: 1}\n"
#define ANALYSIS "analysis:\n  interval: 1s\n  timeout: 900ms\n"
#define METRIC_ERR(addr)                                                             \
    "  metrics:\n"                                                                   \
    "    - name: err\n"                                                              \
    "      prometheus: {address: \"" addr "\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define NOWHERE "http://127.0.0.1:9"
#define POLICY "name: t\n" PLAN ANALYSIS METRIC_ERR(NOWHERE)
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
#define UNDER_LOAD "seconds,metric,value,weight_at_least\n0,err,0.001,\n0,err,0.5,50\n"

typedef struct files {
    char *dir;
    char policy[4096], change[4096], trace[4096], svg[4096];
} files;

static int setup(void **state)
{
    files *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = cn_test_tmpdir()))
        return -1;
    snprintf(f->svg, sizeof f->svg, "%s/out.svg", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    files *f = *state;
    cn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void inputs(files *f, const char *policy, const char *change, const char *trace)
{
    snprintf(f->policy, sizeof f->policy, "%s", cn_test_write(f->dir, "policy.yaml", policy));
    snprintf(f->change, sizeof f->change, "%s", cn_test_write(f->dir, "change.yaml", change));
    snprintf(f->trace, sizeof f->trace, "%s", cn_test_write(f->dir, "trace.csv", trace));
}

/* canary simulate on f's inputs plus up to three more arguments. */
static int simulate(cn_test_output *o, const files *f, const char *a1, const char *a2,
                    const char *a3)
{
    const char *args[] = {"simulate", "--change", f->change, "--policy", f->policy, "--trace",
                          f->trace, a1, a2, a3, NULL};
    return cn_test_run(o, f->dir, args);
}

/* ---- outputs ------------------------------------------------------------ */

static void test_text(void **state)
{
    files *f = *state;
    inputs(f, POLICY "actuator: {exec: [\"true\"]}\n", CHANGE, UNDER_LOAD);
    cn_test_output o;
    assert_int_equal(simulate(&o, f, NULL, NULL, NULL), 0);
    assert_contains(o.out, "simulating shop v2 under policy 't': 3 stages (10%, 50%, 100%), "
                           "reach 100%\n");
    assert_contains(o.out, "        0s  stage_applied      stage 1 of 3 serves 10%; baking 2s\n");
    assert_contains(o.out, "        3s  measurement        stage 2: err: fail: 0.5 > max 0.01\n");
    assert_contains(o.out, "        3s  rolled_back        rolled back after analysis");
    assert_contains(o.out, "outcome:    rolled_back: rolled back by analysis (canary run would "
                           "exit 3)\n");
    assert_contains(o.out, "duration:   3s\nmax weight: 50%\nexposure:   70 %·s");
    assert_contains(o.out, "impact:     25 %·s");
    assert_string_equal(o.err, "");
    cn_test_output_free(&o);

    assert_int_equal(simulate(&o, f, "--decisions", NULL, NULL), 0);
    assert_int_equal(cn_test_count(o.out, "measurement"), 0);
    assert_contains(o.out, "3s  rolling_back");
    cn_test_output_free(&o);
}

static void test_json(void **state)
{
    files *f = *state;
    /* No actuator: a simulation moves nothing. */
    inputs(f, POLICY, CHANGE, UNDER_LOAD);
    cn_test_output o;
    assert_int_equal(simulate(&o, f, "-o", "json", NULL), 0);
    json_error_t je;
    json_t *j = json_loads(o.out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, o.out);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "rolled_back");
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 3);
    assert_true(json_is_true(json_object_get(j, "finished")));
    assert_true(json_is_null(json_object_get(j, "note")));
    assert_true(json_real_value(json_object_get(j, "duration_seconds")) == 3);
    assert_true(json_real_value(json_object_get(j, "max_weight")) == 50);
    assert_true(json_real_value(json_object_get(j, "exposure_weight_seconds")) == 70);
    assert_true(json_real_value(json_object_get(j, "impact")) == 25);
    assert_true(json_real_value(json_object_get(j, "impact_until_seconds")) == 3);
    json_t *events = json_object_get(j, "events");
    assert_int_equal(json_array_size(events), 8);
    json_t *last = json_array_get(events, 7);
    assert_true(json_number_value(json_object_get(last, "seconds")) == 3);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "rolled_back");
    assert_string_equal(json_string_value(json_object_get(last, "detail")),
                        "rolled back after analysis; previous version serves 100%");
    json_decref(j);
    cn_test_output_free(&o);

    /* Names with quotes and backslashes stay valid JSON. */
    inputs(f, "name: t\n" PLAN ANALYSIS "  metrics:\n    - name: 'e\"r\\r'\n"
              "      prometheus: {address: \"" NOWHERE "\", query: e}\n"
              "      threshold: {max: 1%}\n",
           CHANGE, "seconds,metric,value\n0,e\"r\\r,0.5\n");
    assert_int_equal(simulate(&o, f, "-o", "json", NULL), 0);
    j = json_loads(o.out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, o.out);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "events"), 2),
                                          "detail")),
        "stage 1: e\"r\\r: fail: 0.5 > max 0.01");
    json_decref(j);
    cn_test_output_free(&o);

    /* An AI-assisted change nobody approves: left waiting at the bound. */
    inputs(f, POLICY "ai_assisted: {bake_factor: 1, approval: {above_weight: 25%}}\n",
           CHANGE "ai_assisted: true\n", "seconds,metric,value\n0,err,0.001\n");
    assert_int_equal(simulate(&o, f, "-o", "json", NULL), 0);
    j = json_loads(o.out, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "awaiting_approval");
    assert_true(json_is_null(json_object_get(j, "exit_code")));
    assert_true(json_is_true(json_object_get(j, "bounded")));
    assert_contains(json_string_value(json_object_get(j, "note")),
                    "still awaiting approval of stage 2 after 6s: nobody approves");
    assert_true(json_real_value(json_object_get(j, "duration_seconds")) == 8);
    json_decref(j);
    cn_test_output_free(&o);
    /* ...and with --hold and --until. */
    assert_int_equal(simulate(&o, f, "--hold", "1m", "-ojson"), 0);
    j = json_loads(o.out, 0, &je);
    assert_true(json_real_value(json_object_get(j, "duration_seconds")) == 62);
    json_decref(j);
    cn_test_output_free(&o);
    assert_int_equal(simulate(&o, f, "--until", "5s", "-ojson"), 0);
    j = json_loads(o.out, 0, &je);
    assert_true(json_real_value(json_object_get(j, "duration_seconds")) == 5);
    assert_contains(json_string_value(json_object_get(j, "note")), "reached its limit (5s)");
    json_decref(j);
    cn_test_output_free(&o);
}

/* Every tag closed in order, the XML declaration aside; the count of
 * elements named name goes to *count. */
static bool balanced(const char *xml, const char *name, size_t *count)
{
    char stack[64][32];
    size_t depth = 0;
    *count = 0;
    for (const char *p = strchr(xml, '<'); p; p = strchr(p + 1, '<')) {
        if (p[1] == '?')
            continue;
        const char *end = strchr(p, '>');
        if (!end)
            return false;
        bool closing = p[1] == '/', empty = end[-1] == '/';
        const char *n = p + (closing ? 2 : 1);
        size_t len = strcspn(n, " />");
        if (len == 0 || len >= 32)
            return false;
        if (!closing && len == strlen(name) && !strncmp(n, name, len))
            (*count)++;
        if (closing) {
            if (!depth || strncmp(stack[depth - 1], n, len) || stack[depth - 1][len])
                return false;
            depth--;
        } else if (!empty) {
            if (depth == 64)
                return false;
            memcpy(stack[depth], n, len);
            stack[depth++][len] = '\0';
        }
    }
    return depth == 0;
}

static void test_svg(void **state)
{
    files *f = *state;
    inputs(f, "name: t\n" PLAN ANALYSIS METRIC_ERR(NOWHERE)
              "    - name: p99 <ms>\n"
              "      prometheus: {address: \"" NOWHERE "\", query: p99}\n"
              "      threshold: {min: 1, max: 400}\n",
           CHANGE, "seconds,metric,value,weight_at_least\n0,err,0.001,\n0,err,0.5,50\n"
                   "0,p99 <ms>,120,\n");
    cn_test_output o;
    assert_int_equal(simulate(&o, f, "--svg", f->svg, "--decisions"), 0);
    cn_test_output_free(&o);
    char *svg = cn_sc_slurp(f->svg);
    assert_non_null(svg);
    assert_prefix(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=");
    size_t n;
    assert_true(balanced(svg, "svg", &n));
    assert_int_equal(n, 1);
    /* No external assets. */
    assert_null(strstr(svg, "href"));
    assert_null(strstr(svg, "url("));
    assert_int_equal(cn_test_count(svg, "<g class=\"metric\">"), 2);
    assert_int_equal(cn_test_count(svg, "<polyline class=\"weight-steps\""), 1);
    /* A threshold line per bound: err max, p99 min and max. */
    assert_int_equal(cn_test_count(svg, "<line class=\"threshold\""), 3);
    /* The name is escaped. */
    assert_contains(svg, ">p99 &lt;ms&gt;</text>");
    /* Markers: stage 1 and 2 applied, promoted, rolling back, rolled back. */
    assert_true(balanced(svg, "line", &n));
    assert_int_equal(cn_test_count(svg, "<line class=\"marker\""), 5);
    assert_contains(svg, "<title>3s rolling_back: rolling back for analysis: err failed 1 time");
    /* Four samples (err and p99 at 1 s and 3 s), each a dot. */
    assert_int_equal(cn_test_count(svg, "<circle class=\"sample\""), 4);
    assert_contains(svg, "0s</text>");
    assert_contains(svg, "3s</text>");
    free(svg);

    /* A burn rate against its factors, a judged metric's score against
     * marginal and pass. */
    inputs(f, "name: t\n" PLAN ANALYSIS "  metrics:\n"
              "    - name: availability\n"
              "      burn_rate:\n"
              "        slo: 99.9%\n"
              "        errors: 'e[{{window}}]'\n"
              "        total: 't[{{window}}]'\n"
              "        prometheus: {address: \"" NOWHERE "\"}\n"
              "    - name: latency\n"
              "      prometheus: {address: \"" NOWHERE "\", query: 'lat{v=\"{{version}}\"}'}\n"
              "      judge: mann_whitney\n",
           CHANGE, "seconds,metric,value,baseline\n0,availability,0.0002,\n0,latency,100,101\n"
                   "1,latency,102,99\n2,latency,98,100\n");
    assert_int_equal(simulate(&o, f, "--svg", f->svg, NULL), 0);
    cn_test_output_free(&o);
    svg = cn_sc_slurp(f->svg);
    assert_non_null(svg);
    assert_true(balanced(svg, "svg", &n));
    assert_int_equal(cn_test_count(svg, "<g class=\"metric\">"), 2);
    assert_contains(svg, ">availability (burn rate: x the error budget)</text>");
    assert_contains(svg, ">latency (judge: the round's score)</text>");
    /* the workbook's two factors; marginal and pass */
    assert_int_equal(cn_test_count(svg, "<line class=\"threshold\""), 4);
    assert_contains(svg, ">factor 14.4</text>");
    assert_contains(svg, ">factor 6</text>");
    assert_contains(svg, ">marginal 75</text>");
    assert_contains(svg, ">pass 95</text>");
    free(svg);

    /* An SVG that cannot be written: exit 1, said so. */
    snprintf(f->svg, sizeof f->svg, "%s/no/such/dir/out.svg", f->dir);
    assert_int_equal(simulate(&o, f, "--svg", f->svg, NULL), 1);
    assert_contains(o.err, "canary simulate: cannot write ");
    cn_test_output_free(&o);
}

/* ---- input errors ------------------------------------------------------- */

static void expect_invalid(files *f, const char *a1, const char *a2, const char *needle)
{
    cn_test_output o;
    int code = simulate(&o, f, a1, a2, NULL);
    if (code != 2 || !strstr(o.err, needle))
        fail_msg("exit %d, expected 2 with \"%s\" on stderr:\n%s", code, needle, o.err);
    assert_string_equal(o.out, "");
    cn_test_output_free(&o);
}

static void test_errors(void **state)
{
    files *f = *state;
    inputs(f, POLICY, CHANGE, "seconds,metric,value\n0,err,0.001\n1,err,lots\n2,eror,1\n");
    /* Both problems, one a line, at their positions. */
    expect_invalid(f, NULL, NULL, "trace.csv:3:7: 'value' expects a number, nan, inf or error, "
                                  "got 'lots'\n");
    inputs(f, POLICY, CHANGE, "seconds,metric,value\n2,eror,1\n");
    expect_invalid(f, NULL, NULL, "trace.csv:2:3: unknown metric 'eror' (did you mean 'err'?); "
                                  "policy 't' has: err\n");
    inputs(f, POLICY, CHANGE, "seconds;metric;value\n");
    expect_invalid(f, NULL, NULL, "trace.csv:1:1: unknown column 'seconds;metric;value'");
    /* The trace and the policy are both reported in one run. */
    inputs(f, "name: t\nplan: {bake: 5}\n", CHANGE, "seconds,metric,value\n0,err,x\n");
    expect_invalid(f, NULL, NULL, "policy.yaml:2:14: 'bake' expects a duration");
    expect_invalid(f, NULL, NULL, "trace.csv:2:7:");
    /* What canary run would refuse. */
    inputs(f, "name: t\n" PLAN, CHANGE, "seconds,metric,value\n");
    expect_invalid(f, NULL, NULL, "has no analysis.metrics: canary run needs at least one");
    inputs(f, POLICY "      baseline: {max_increase: 10%}\n", "service: shop\nversion: v2\n",
           "seconds,metric,value\n");
    expect_invalid(f, NULL, NULL, "metric 'err' compares with the baseline, but the change has "
                                  "no previous_version");
    /* Flags. */
    inputs(f, POLICY, CHANGE, "seconds,metric,value\n");
    expect_invalid(f, "--until", "5", "--until expects a duration such as 30s");
    expect_invalid(f, "--until", "0s", "--until must be more than 0s");
    expect_invalid(f, "-o", "yaml", "-o takes 'text' or 'json', got 'yaml'");
    snprintf(f->trace, sizeof f->trace, "%s/missing.csv", f->dir);
    expect_invalid(f, NULL, NULL, "missing.csv: cannot read the trace: No such file or directory");
    cn_test_output o;
    const char *no_trace[] = {"simulate", "--change", f->change, "--policy", f->policy, NULL};
    assert_int_equal(cn_test_run(&o, f->dir, no_trace), 2);
    assert_contains(o.err, "canary simulate: --trace is required\nusage: canary simulate");
    cn_test_output_free(&o);
    const char *help[] = {"simulate", "--help", NULL};
    assert_int_equal(cn_test_run(&o, f->dir, help), 0);
    assert_contains(o.out, "--trace FILE");
    cn_test_output_free(&o);
}

/* ---- consistency with canary run ---------------------------------------- */

/* Blanks the bake served in "baked 2001ms of 2s": a real clock runs late
 * by a millisecond or two, the virtual one never does. */
static void normalize(char *text)
{
    for (char *p = strstr(text, "baked "); p; p = strstr(p + 1, "baked ")) {
        char *of = strstr(p, " of ");
        char *nl = strchr(p, '\n');
        if (!of || (nl && of > nl))
            continue;
        p[6] = '_';
        memmove(p + 7, of, strlen(of) + 1);
    }
}

/* The events the state machine emitted, "type|detail" a line: from the
 * run's database (the engine's own actuator records left out), and from
 * simulate -o json. */
static char *run_events(const cn_scenario *s)
{
    sqlite3 *db = cn_sc_db(s);
    char *rows = cn_sc_rows(db, "SELECT type, detail FROM events WHERE type NOT IN "
                                "('actuator_call', 'actuator_ok', 'actuator_failed_attempt') "
                                "ORDER BY seq");
    sqlite3_close(db);
    normalize(rows);
    return rows;
}

static char *simulated_events(const cn_scenario *s, const char *trace)
{
    const char *path = cn_test_write(s->dir, "trace.csv", trace);
    assert_non_null(path);
    char trace_path[4096];
    snprintf(trace_path, sizeof trace_path, "%s", path);
    cn_test_output o;
    const char *args[] = {"simulate", "--change", s->change, "--policy", s->policy, "--trace",
                          trace_path, "-o", "json", NULL};
    int code = cn_test_run(&o, s->dir, args);
    json_t *j = json_loads(o.out, 0, NULL);
    if (code != 0 || !j)
        cn_sc_fail(s, "canary simulate: exit %d\n%s\n%s", code, o.out, o.err);
    size_t cap = 65536, n = 0, i;
    char *out = calloc(1, cap);
    json_t *ev;
    json_array_foreach(json_object_get(j, "events"), i, ev)
    {
        n += (size_t)snprintf(out + n, cap - n, "%s|%s\n",
                              json_string_value(json_object_get(ev, "type")),
                              json_string_value(json_object_get(ev, "detail")));
        assert_true(n < cap);
    }
    json_decref(j);
    cn_test_output_free(&o);
    normalize(out);
    return out;
}

static bool evidence(const char *line)
{
    return !strncmp(line, "measurement|", 12) || !strncmp(line, "requests|", 9);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into its decisions (in order) and its evidence (sorted:
 * the replies of one poll may come in any order in a real run). */
static void split_events(const char *text, char *decisions, size_t cap, char *sorted)
{
    char *copy = strdup(text), *lines[512];
    size_t n = 0;
    decisions[0] = sorted[0] = '\0';
    for (char *line = strtok(copy, "\n"); line && n < 512; line = strtok(NULL, "\n")) {
        if (evidence(line))
            lines[n++] = line;
        else
            snprintf(decisions + strlen(decisions), cap - strlen(decisions), "%s\n", line);
    }
    qsort(lines, n, sizeof *lines, by_text);
    for (size_t i = 0; i < n; i++)
        snprintf(sorted + strlen(sorted), cap - strlen(sorted), "%s\n", lines[i]);
    free(copy);
}

static void test_consistency(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *load = cn_sc_new(x, "fault at 50%", CN_SC_HTTP);
    cn_scenario *base = cn_sc_new(x, "baseline and min_requests", CN_SC_EXEC);
    cn_scenario *gate = cn_sc_new(x, "approval timeout", CN_SC_HTTP);
    cn_sc_fake(load, "errors 0 value 0.001\nerrors 50 value 0.5\n");
    cn_sc_inputs(load, PLAN ANALYSIS METRIC_ERR("@ADDR@"), CHANGE);
    cn_sc_fake(base, "errors{version=\"v2\"} 0 value 0.004\n"
                     "errors{version=\"v1\"} 0 value 0.0038\n"
                     "reqs 0 value 150\nreqs 50 value 400\n");
    cn_sc_inputs(base, PLAN ANALYSIS
                 "  min_requests:\n    count: 100\n"
                 "    prometheus: {address: \"@ADDR@\", query: 'reqs{version=\"{{version}}\"}'}\n"
                 METRIC_ERR("@ADDR@") "      baseline: {max_increase: 10%}\n",
                 CHANGE);
    cn_sc_fake(gate, "errors 0 value 0.001\n");
    cn_sc_inputs(gate, PLAN "ai_assisted: {bake_factor: 1, approval: {above_weight: 25%, "
                            "timeout: 2s, on_timeout: rollback}}\n" ANALYSIS
                            METRIC_ERR("@ADDR@"),
                 CHANGE "ai_assisted: true\n");
    cn_scenario *list[] = {load, base, gate};
    cn_sc_run_all(list, 3, NULL, NULL);
    cn_sc_expect_code(load, 3);
    cn_sc_expect_code(base, 0);
    cn_sc_expect_code(gate, 4);

    /* One metric: every event, measurements included, in order. */
    char *ran = run_events(load);
    char *sim = simulated_events(load, UNDER_LOAD);
    cn_sc_expect_text(load, "simulated events (canary run's, from its database)", sim, ran);
    assert_string_equal(sim, "started|3 stages to 100%, first 10%; author 'alice'\n"
                             "stage_applied|stage 1 of 3 serves 10%; baking 2s\n"
                             "measurement|stage 1: err: pass: 0.001 within [-, 0.01]\n"
                             "promoted|stage 1 passed its analysis: baked _ of 2s; every metric "
                             "has 1 or more passing samples (1 needed)\n"
                             "stage_applied|stage 2 of 3 serves 50%; baking 2s\n"
                             "measurement|stage 2: err: fail: 0.5 > max 0.01\n"
                             "rolling_back|rolling back for analysis: err failed 1 time, more "
                             "than failure_limit 0\n"
                             "rolled_back|rolled back after analysis; previous version serves "
                             "100%\n");
    free(ran);
    free(sim);

    /* A metric and min_requests polled together: decisions in order, the
     * evidence as a set. At 50% the count passes 100; at 100% the metric is
     * judged without its baseline. */
    ran = run_events(base);
    sim = simulated_events(base, "seconds,metric,value,baseline,weight_at_least\n"
                                 "0,err,0.004,0.0038,\n0,requests,150,,\n0,requests,400,,50\n");
    static char d1[32768], e1[32768], d2[32768], e2[32768];
    split_events(ran, d1, sizeof d1, e1);
    split_events(sim, d2, sizeof d2, e2);
    cn_sc_expect_text(base, "simulated decisions", d2, d1);
    cn_sc_expect_text(base, "simulated evidence (sorted)", e2, e1);
    assert_contains(e2, "measurement|stage 3: err: pass: 0.004 within [-, 0.01] (no baseline: "
                        "the previous version serves no traffic at 100%)\n");
    assert_contains(d2, "completed|the new version serves 100% after stage 3\n");
    free(ran);
    free(sim);

    /* The approval gate nobody answers, timed out. */
    ran = run_events(gate);
    sim = simulated_events(gate, "seconds,metric,value\n0,err,0.001\n");
    cn_sc_expect_text(gate, "simulated events", sim, ran);
    assert_contains(sim, "awaiting_approval|stage 2 (50%) needs approval");
    assert_contains(sim, "aborted|approval timed out: nobody approved stage 2 within 2s");
    free(ran);
    free(sim);
}

/* ---- consistency: burn rates and judged metrics --------------------------- */

/* The fake serves each metric as a timeline (tests/fake/README.md): value
 * k holds over second k after the weight first rose above 0, as row k of a
 * trace holds from k seconds after stage 1 was applied. */
#define SECONDS 40

/* A burn-rate metric: errors / total over each scaled window; one pair,
 * 1h/5m at 14.4x, scaled to a 4s bake: 4s and 2s. */
#define BURN_POLICY                                                                     \
    "plan: {steps: [10%, 50%, 100%], bake: 4s, min_samples: 2}\n" ANALYSIS             \
    "  metrics:\n"                                                                      \
    "    - name: availability\n"                                                        \
    "      burn_rate:\n"                                                                \
    "        slo: 99.9%\n"                                                              \
    "        errors: 'sum(rate(req{version=\"{{version}}\",code=~\"5..\"}[{{window}}]))'\n" \
    "        total: 'sum(rate(req{version=\"{{version}}\"}[{{window}}]))'\n"              \
    "        prometheus: {address: \"@ADDR@\"}\n"                                       \
    "        windows: [{long: 1h, short: 5m, factor: 14.4}]\n"

/* A judged latency, a sample a second; 4 a side can show a difference at
 * 95% confidence, so a stage's third poll is its first real judgement. */
#define JUDGED_POLICY                                                                   \
    "plan: {steps: [10%, 50%, 100%], bake: 4s, min_samples: 1}\n" ANALYSIS             \
    "  judge: {pass: 95, marginal: 75}\n"                                               \
    "  metrics:\n"                                                                      \
    "    - name: latency\n"                                                             \
    "      prometheus: {address: \"@ADDR@\", query: 'lat{version=\"{{version}}\"}'}\n"  \
    "      judge:\n"                                                                    \
    "        mann_whitney: {direction: increase, allowed_increase: 1.1, confidence: 0.95}\n" \
    "        step: 1s\n"

/* Noise the same every run: centre +- up to 3, one decimal. */
static void noisy(double *v, size_t n, double centre, unsigned seed)
{
    unsigned x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        v[i] = round((centre + (double)((x >> 16) % 61) / 10 - 3) * 10) / 10;
    }
}

/* "v0,v1,..." as the fake's timeline takes it. */
static void timeline(char *buf, size_t cap, const double *v, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%.17g", i ? "," : "", v[i]);
}

/* The same as trace rows, value and (when b) baseline. */
static void trace_rows(char *buf, size_t cap, const char *metric, const double *v,
                       const double *b, size_t n)
{
    size_t used = (size_t)snprintf(buf, cap, "seconds,metric,value,baseline\n");
    for (size_t i = 0; i < n && used < cap; i++) {
        used += (size_t)snprintf(buf + used, cap - used, "%zu,%s,%.17g,", i, metric, v[i]);
        used += b ? (size_t)snprintf(buf + used, cap - used, "%.17g\n", b[i])
                  : (size_t)snprintf(buf + used, cap - used, "\n");
    }
}

/* The decisions of a run and of its simulation, in order, must be the
 * same, and with evidence, the measurements too (as a set); returns the
 * simulated decisions (free them). */
static char *same_decisions(const cn_scenario *s, const char *trace, bool evidence)
{
    char *ran = run_events(s), *sim = simulated_events(s, trace);
    static char d1[32768], e1[32768], d2[32768], e2[32768];
    split_events(ran, d1, sizeof d1, e1);
    split_events(sim, d2, sizeof d2, e2);
    cn_sc_expect_text(s, "simulated decisions (canary run's, from its database)", d2, d1);
    if (evidence)
        cn_sc_expect_text(s, "simulated evidence (sorted)", e2, e1);
    free(ran);
    free(sim);
    return strdup(d2);
}

static void test_consistency_burn_and_judge(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *burn = cn_sc_new(x, "burn rate: 50% errors from 6s, in stage 2", CN_SC_HTTP);
    cn_scenario *alike = cn_sc_new(x, "judged: latency like the baseline's", CN_SC_HTTP);
    cn_scenario *slow = cn_sc_new(x, "judged: latency 40% higher", CN_SC_HTTP);
    static char script[3][16384], trace[3][8192], line[4096], line2[4096];

    /* errors / requests per second: 0.02% for 6 s, then 50% */
    double ratio[SECONDS];
    for (size_t i = 0; i < SECONDS; i++)
        ratio[i] = i < 6 ? 0.0002 : 0.5;
    timeline(line, sizeof line, ratio, SECONDS);
    snprintf(script[0], sizeof script[0], "code=~\"5..\"}[ 0 integral %s\n"
             "req{version=\"v2\"}[ 0 covered %s\n", line, line);
    trace_rows(trace[0], sizeof trace[0], "availability", ratio, NULL, SECONDS);
    cn_sc_fake(burn, script[0]);
    cn_sc_inputs(burn, BURN_POLICY, CHANGE);

    double base[SECONDS], same[SECONDS], worse[SECONDS];
    noisy(base, SECONDS, 100, 1);
    noisy(same, SECONDS, 100, 2);
    noisy(worse, SECONDS, 140, 3);
    timeline(line, sizeof line, base, SECONDS);
    timeline(line2, sizeof line2, same, SECONDS);
    snprintf(script[1], sizeof script[1], "lat{version=\"v1\"} 0 timeline %s\n"
             "lat{version=\"v2\"} 0 timeline %s\n", line, line2);
    trace_rows(trace[1], sizeof trace[1], "latency", same, base, SECONDS);
    cn_sc_fake(alike, script[1]);
    cn_sc_inputs(alike, JUDGED_POLICY, CHANGE);
    timeline(line2, sizeof line2, worse, SECONDS);
    snprintf(script[2], sizeof script[2], "lat{version=\"v1\"} 0 timeline %s\n"
             "lat{version=\"v2\"} 0 timeline %s\n", line, line2);
    trace_rows(trace[2], sizeof trace[2], "latency", worse, base, SECONDS);
    cn_sc_fake(slow, script[2]);
    cn_sc_inputs(slow, JUDGED_POLICY, CHANGE);

    cn_scenario *list[] = {burn, alike, slow};
    cn_sc_run_all(list, 3, NULL, NULL);
    cn_sc_expect_code(burn, 3);
    cn_sc_expect_code(alike, 0);
    cn_sc_expect_code(slow, 3);

    char *d = same_decisions(burn, trace[0], false);
    assert_string_equal(d, "started|3 stages to 100%, first 10%; author 'alice'\n"
                           "stage_applied|stage 1 of 3 serves 10%; baking 4s\n"
                           "promoted|stage 1 passed its analysis: baked _ of 4s; every metric "
                           "has 3 or more passing samples (2 needed)\n"
                           "stage_applied|stage 2 of 3 serves 50%; baking 4s\n"
                           "rolling_back|rolling back for analysis: availability failed 1 time, "
                           "more than failure_limit 0\n"
                           "rolled_back|rolled back after analysis; previous version serves "
                           "100%\n");
    free(d);
    d = same_decisions(alike, trace[1], true);
    assert_contains(d, "promoted|stage 3 passed its analysis");
    assert_contains(d, "completed|the new version serves 100% after stage 3\n");
    free(d);
    d = same_decisions(slow, trace[2], true);
    assert_string_equal(d, "started|3 stages to 100%, first 10%; author 'alice'\n"
                           "stage_applied|stage 1 of 3 serves 10%; baking 4s\n"
                           "rolling_back|rolling back for analysis: latency failed 1 time, "
                           "more than failure_limit 0\n"
                           "rolled_back|rolled back after analysis; previous version serves "
                           "100%\n");
    free(d);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_text),
        TEST(test_json),
        TEST(test_svg),
        TEST(test_errors),
        cmocka_unit_test_setup_teardown(test_consistency, cn_sc_setup, cn_sc_teardown),
        cmocka_unit_test_setup_teardown(test_consistency_burn_and_judge, cn_sc_setup,
                                        cn_sc_teardown),
    };
    return cmocka_run_group_tests_name("simulate", tests, NULL, NULL);
}
