/* canary audit, end to end: a real `canary run` against the fake metrics
 * server writes a chained log; `audit verify` accepts it, `audit export`
 * prints lines whose hashes chain (recomputed here with OpenSSL from the
 * lines alone), and after a row is changed through the SQLite C API (its
 * trigger dropped first, as an attacker with the file could) verify exits
 * 1 naming that event. Usage errors and a missing database exit 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "scenario.h"

#define POLICY_BODY                                                                      \
    "plan: {steps: [50%, 100%], bake: 1s, min_samples: 1}\n"                             \
    "analysis:\n  interval: 1s\n  timeout: 900ms\n"                                      \
    "  metrics:\n"                                                                       \
    "    - name: err\n"                                                                  \
    "      prometheus: {address: \"@ADDR@\", query: 'errors{version=\"{{version}}\"}'}\n" \
    "      threshold: {max: 1%}\n"
#define CHANGE "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"

static int audit(cn_test_output *o, const cn_scenario *s, const char *a1, const char *a2)
{
    const char *args[] = {"audit", a1, "--state", s->state, a2, NULL};
    return cn_test_run(o, s->dir, args);
}

static void hex_of(const unsigned char *b, char out[65])
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* Checks the export line by line: the hashed text is the line without
 * prev_hash and hash, each prev_hash is the hash before (zeros first), each
 * hash is SHA-256(prev || text), and index counts from 1. Returns lines. */
static size_t check_export(const cn_scenario *s, const char *out)
{
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    size_t n = 0;
    const char *p = out;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            cn_sc_fail(s, "export does not end with a newline");
        json_error_t je;
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, &je);
        if (!o)
            cn_sc_fail(s, "export line %zu is not JSON: %s", n + 1, je.text);
        n++;
        const char *ph = json_string_value(json_object_get(o, "prev_hash"));
        char h[65];
        snprintf(h, sizeof h, "%s", json_string_value(json_object_get(o, "hash")));
        if (!ph || strcmp(ph, prev))
            cn_sc_fail(s, "line %zu: prev_hash %s, want %s", n, ph ? ph : "null", prev);
        if (json_integer_value(json_object_get(o, "index")) != (json_int_t)n)
            cn_sc_fail(s, "line %zu: index is not %zu", n, n);
        json_object_del(o, "prev_hash");
        json_object_del(o, "hash");
        char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII |
                                       JSON_REAL_PRECISION(17));
        json_decref(o);
        assert_non_null(text);
        size_t len = strlen(text);
        unsigned char *buf = malloc(32 + len), md[32];
        assert_non_null(buf);
        for (int i = 0; i < 32; i++) {
            unsigned v;
            sscanf(prev + 2 * i, "%2x", &v);
            buf[i] = (unsigned char)v;
        }
        memcpy(buf + 32, text, len);
        unsigned mdlen = 0;
        assert_int_equal(EVP_Digest(buf, 32 + len, md, &mdlen, EVP_sha256(), NULL), 1);
        free(buf);
        free(text);
        char want[65];
        hex_of(md, want);
        if (strcmp(h, want))
            cn_sc_fail(s, "line %zu: hash %s, recomputed %s", n, h, want);
        memcpy(prev, h, sizeof prev);
        p = nl + 1;
    }
    return n;
}

static void test_run_verify_tamper(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "audit after a healthy run", CN_SC_HTTP);
    cn_sc_fake(s, "errors 0 value 0.001\n");
    cn_sc_inputs(s, POLICY_BODY, CHANGE);
    cn_sc_run(s, NULL, NULL);
    cn_sc_expect_code(s, 0);

    sqlite3 *db = cn_sc_db(s);
    char *count = cn_sc_rows(db, "SELECT count(*) FROM events");
    sqlite3_close(db);
    long events = strtol(count, NULL, 10);
    free(count);
    if (events < 5)
        cn_sc_fail(s, "only %ld events stored", events);

    cn_test_output o;
    int code = audit(&o, s, "verify", NULL);
    char want[256];
    snprintf(want, sizeof want, "ok: %ld events in 1 rollout, chains intact\n", events);
    if (code != 0 || strcmp(o.out, want))
        cn_sc_fail(s, "audit verify: exit %d\n%s%s", code, o.out, o.err);
    cn_test_output_free(&o);

    code = audit(&o, s, "export", "shop-v2");
    if (code != 0 || o.err[0])
        cn_sc_fail(s, "audit export: exit %d\n%s", code, o.err);
    size_t lines = check_export(s, o.out);
    cn_test_output_free(&o);
    if ((long)lines != events)
        cn_sc_fail(s, "export has %zu lines for %ld events", lines, events);

    /* Change the first stage_applied event's detail. */
    sqlite3 *rw = NULL;
    assert_int_equal(sqlite3_open_v2(s->state, &rw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(rw,
                                  "DROP TRIGGER events_no_update;"
                                  "UPDATE events SET detail = 'nothing to see'"
                                  " WHERE seq = (SELECT min(seq) FROM events"
                                  " WHERE type = 'stage_applied')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(rw);
    db = cn_sc_db(s);
    char *seq = cn_sc_rows(db, "SELECT min(seq) FROM events WHERE type = 'stage_applied'");
    char *index = cn_sc_rows(db, "SELECT count(*) FROM events WHERE seq <= (SELECT min(seq) FROM"
                                 " events WHERE type = 'stage_applied')");
    sqlite3_close(db);
    seq[strcspn(seq, "\n")] = '\0';
    index[strcspn(index, "\n")] = '\0';
    snprintf(want, sizeof want,
             "rollout shop-v2: event #%s (seq %s, type stage_applied) does not match its hash: "
             "the row was changed\nFAILED: 1 of 1 rollout has a broken chain\n",
             index, seq);
    free(seq);
    free(index);
    code = audit(&o, s, "verify", NULL);
    if (code != 1 || strcmp(o.out, want))
        cn_sc_fail(s, "audit verify after tampering: exit %d\n%s%s\nwant:\n%s", code, o.out,
                   o.err, want);
    cn_test_output_free(&o);
}

static void test_usage(void **state)
{
    cn_scenarios *x = *state;
    cn_scenario *s = cn_sc_new(x, "audit usage", CN_SC_HTTP);
    cn_test_output o;
    /* No database: refused, and none is created. */
    int code = audit(&o, s, "verify", NULL);
    if (code != 2 || !strstr(o.err, "canary audit: no state database at '"))
        cn_sc_fail(s, "verify without a database: exit %d\n%s", code, o.err);
    cn_test_output_free(&o);
    cn_sc_expect_untouched(s);

    const char *cases[][3] = {
        {"audit", NULL, "verify or export?"},
        {"audit", "check", "unknown subcommand 'check' (verify or export)"},
        {"audit", "export", "export needs a rollout ID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {cases[i][0], cases[i][1], NULL};
        code = cn_test_run(&o, s->dir, args);
        if (code != 2 || !strstr(o.err, cases[i][2]) || !strstr(o.err, "usage: canary audit"))
            cn_sc_fail(s, "case %zu: exit %d\n%s", i, code, o.err);
        cn_test_output_free(&o);
    }
    const char *help[] = {"audit", "--help", NULL};
    code = cn_test_run(&o, s->dir, help);
    if (code != 0 || !strstr(o.out, "canary audit export ID [--state DB]"))
        cn_sc_fail(s, "--help: exit %d\n%s", code, o.out);
    cn_test_output_free(&o);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, cn_sc_setup, cn_sc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_run_verify_tamper),
        TEST(test_usage),
    };
    return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
