/* The scenario harness of tests/integration/test_run.c: see scenario.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scenario.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "background.h"
#include "proc.h"
#include "server.h"

/* ---- fixture ------------------------------------------------------------ */

int cn_sc_setup(void **state)
{
    cn_scenarios *x = calloc(1, sizeof *x);
    *state = x;
    return x ? 0 : -1;
}

/* Runs after a failed assertion too: no canary or fake outlives its test,
 * and a fake that did not exit cleanly on SIGTERM fails the test. */
int cn_sc_teardown(void **state)
{
    cn_scenarios *x = *state;
    int rc = 0;
    for (size_t i = 0; i < x->n; i++) {
        cn_scenario *s = &x->sc[i];
        if (s->run > 0)
            cn_test_kill(s->run);
        if (s->fake > 0 && cn_test_server_stop(s->fake) != 0) {
            fprintf(stderr, "%s: the fake metrics server did not exit 0 on SIGTERM\n",
                    s->name);
            rc = -1;
        }
        free(s->out);
        free(s->err);
        if (s->dir)
            cn_test_rmtree(s->dir);
        free(s->dir);
    }
    free(x);
    return rc;
}

char *cn_sc_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static const char *fake_bin(void)
{
    static char path[4096];
    const char *dir = getenv("CANARY_FAKE_DIR");
    if (dir)
        snprintf(path, sizeof path, "%s/fake_metrics", dir);
    else
        snprintf(path, sizeof path, "%s", cn_test_src("build/fake/fake_metrics"));
    return path;
}

/* A port nothing listens on: bound, read back and closed again. */

/* ---- failing with the scenario's name and what the run printed --------- */

void cn_sc_fail(const cn_scenario *s, const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* cmocka's print_error cuts long text; the run's output goes first,
     * whole, and the failure names the scenario. */
    fprintf(stderr, "--- stdout of '%s':\n%s\n--- stderr of '%s':\n%s\n", s->name,
            s->out ? s->out : "(none)", s->name, s->err ? s->err : "(none)");
    fail_msg("scenario '%s': %s", s->name, msg);
}

void cn_sc_expect_code(const cn_scenario *s, int want)
{
    if (s->code != want)
        cn_sc_fail(s, "exit code %d, expected %d", s->code, want);
}

void cn_sc_expect_out(const cn_scenario *s, const char *needle)
{
    if (!s->out || !strstr(s->out, needle))
        cn_sc_fail(s, "stdout lacks \"%s\"", needle);
}

void cn_sc_expect_err(const cn_scenario *s, const char *needle)
{
    if (!s->err || !strstr(s->err, needle))
        cn_sc_fail(s, "stderr lacks \"%s\"", needle);
}

void cn_sc_expect_text(const cn_scenario *s, const char *what, const char *got,
                       const char *want)
{
    if (strcmp(got, want) != 0)
        cn_sc_fail(s, "%s:\n%s\nexpected:\n%s", what, got, want);
}

/* ---- scenarios ---------------------------------------------------------- */

cn_scenario *cn_sc_new(cn_scenarios *x, const char *name, cn_sc_act act)
{
    assert_true(x->n < CN_SC_MAX);
    cn_scenario *s = &x->sc[x->n++];
    s->name = name;
    s->act = act;
    s->dir = cn_test_tmpdir();
    assert_non_null(s->dir);
#define PATH(field, file) snprintf(s->field, sizeof s->field, "%s/" file, s->dir)
    PATH(log, "fake.log");
    PATH(weights, "weights");
    PATH(ports, "port");
    PATH(calls, "calls");
    PATH(state, "state.db");
    PATH(policy, "policy.yaml");
    PATH(change, "change.yaml");
    PATH(out_path, "stdout");
    PATH(err_path, "stderr");
#undef PATH
    return s;
}

/* Starts the fake with script (rules, one a line). */
void cn_sc_fake(cn_scenario *s, const char *script)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/script", s->dir);
    assert_non_null(cn_test_write(s->dir, "script", script));
    const char *argv[] = {fake_bin(), "--script", path,     "--port-file", s->ports, "--log",
                          s->log,     "--weight-file", s->weights, NULL};
    s->fake = cn_test_server_start(argv, s->ports, &s->port);
    if (s->fake <= 0)
        cn_sc_fail(s, "the fake metrics server did not start");
    snprintf(s->addr, sizeof s->addr, "http://127.0.0.1:%d", s->port);
}

/* Copies text with @ADDR@ (the fake's base URL), @DIR@ (the scenario's
 * directory) and @CLOSED@ (a URL where nothing listens) filled in. */
static char *fill(const cn_scenario *s, const char *text)
{
    char closed[64];
    int port = strstr(text, "@CLOSED@") ? cn_test_closed_port() : 0;
    assert_true(port >= 0);
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", port);
    size_t cap = strlen(text) * 2 + 8192, n = 0;
    char *out = malloc(cap);
    for (const char *p = text; *p;) {
        const char *with = NULL;
        size_t skip = 0;
        if (!strncmp(p, "@ADDR@", 6))
            with = s->addr, skip = 6;
        else if (!strncmp(p, "@DIR@", 5))
            with = s->dir, skip = 5;
        else if (!strncmp(p, "@CLOSED@", 8))
            with = closed, skip = 8;
        if (with) {
            n += (size_t)snprintf(out + n, cap - n, "%s", with);
            p += skip;
        } else {
            out[n++] = *p++;
        }
        assert_true(n < cap - 1);
    }
    out[n] = '\0';
    return out;
}

/* The exec actuator: logs every call, fails when the shell condition
 * fail_if holds, and otherwise moves the fake's weight. */
void cn_sc_exec_actuator(cn_scenario *s, const char *fail_if)
{
    char script[3 * 4096];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "echo \"$CANARY_ACTION $CANARY_STAGE $CANARY_WEIGHT\" >> '%s'\n"
             "if %s; then echo \"refusing $CANARY_ACTION to $CANARY_WEIGHT%%\" >&2; exit 1; fi\n"
             "echo \"$CANARY_WEIGHT\" >> '%s'\n",
             s->calls, fail_if ? fail_if : "false", s->weights);
    const char *path = cn_test_write(s->dir, "act.sh", script);
    assert_non_null(path);
    assert_int_equal(chmod(path, 0755), 0);
}

void cn_sc_inputs(cn_scenario *s, const char *body, const char *change)
{
    char *text = malloc(strlen(body) + 1024);
    sprintf(text, "name: t\n%s", body);
    if (!strstr(body, "actuator:"))
        strcat(text, s->act == CN_SC_HTTP
                         ? "actuator:\n  http: {url: \"@ADDR@/actuate\"}\n"
                           "  retries: 1\n  backoff: 0s\n"
                         : "actuator:\n  exec: [\"@DIR@/act.sh\"]\n  retries: 1\n  backoff: 0s\n");
    char *filled = fill(s, text);
    assert_non_null(cn_test_write(s->dir, "policy.yaml", filled));
    free(filled);
    free(text);
    assert_non_null(cn_test_write(s->dir, "change.yaml", change));
    char script[4200];
    snprintf(script, sizeof script, "%s/act.sh", s->dir);
    if (s->act == CN_SC_EXEC && !exists(script))
        cn_sc_exec_actuator(s, NULL);
}

/* canary run in the background, in the scenario's directory. */
void cn_sc_start(cn_scenario *s, const char *extra1, const char *extra2)
{
    const char *args[] = {"run", "--change", s->change, "--policy", s->policy, "--state",
                          s->state, extra1, extra2, NULL};
    s->run = cn_test_spawn(s->dir, args, s->out_path, s->err_path);
    if (s->run <= 0)
        cn_sc_fail(s, "canary run did not start");
}

void cn_sc_finish(cn_scenario *s)
{
    int code = cn_test_wait(s->run, cn_test_patience_ms(CN_SC_RUN_LIMIT_MS));
    if (code == CN_TEST_STILL_RUNNING) {
        cn_test_kill(s->run);
        s->run = 0;
        free(s->out);
        free(s->err);
        s->out = cn_sc_slurp(s->out_path);
        s->err = cn_sc_slurp(s->err_path);
        cn_sc_fail(s, "canary run did not end in %d ms; killed",
                   cn_test_patience_ms(CN_SC_RUN_LIMIT_MS));
    }
    s->run = 0;
    s->code = code;
    free(s->out);
    free(s->err);
    s->out = cn_sc_slurp(s->out_path);
    s->err = cn_sc_slurp(s->err_path);
    if (!s->out)
        s->out = strdup("");
    if (!s->err)
        s->err = strdup("");
}

/* Side by side unless under a wrapper, where the binary is slow enough
 * that parallel runs could starve each other's timers. */
void cn_sc_run_all(cn_scenario *const *list, size_t n, const char *extra1,
                   const char *extra2)
{
    if (cn_test_wrapped()) {
        for (size_t i = 0; i < n; i++) {
            cn_sc_start(list[i], extra1, extra2);
            cn_sc_finish(list[i]);
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        cn_sc_start(list[i], extra1, extra2);
    for (size_t i = 0; i < n; i++)
        cn_sc_finish(list[i]);
}

void cn_sc_run(cn_scenario *s, const char *extra1, const char *extra2)
{
    cn_sc_run_all(&s, 1, extra1, extra2);
}

char *cn_sc_calls(const cn_scenario *s)
{
    if (s->act == CN_SC_EXEC) {
        char *c = cn_sc_slurp(s->calls);
        return c ? c : strdup("");
    }
    char *log = cn_sc_slurp(s->log);
    char *out = calloc(1, log ? strlen(log) + 1 : 1);
    for (char *line = log ? strtok(log, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char action[64], stage[32], weight[32], rest[64] = "";
        if (sscanf(line, "actuate weight=%31s action=%63s stage=%31s %63s", weight, action,
                   stage, rest) < 3)
            continue;
        sprintf(out + strlen(out), "%s %s %s%s\n", action, stage, weight,
                rest[0] ? " rejected" : "");
    }
    free(log);
    return out;
}

void cn_sc_expect_calls(const cn_scenario *s, const char *want)
{
    char *got = cn_sc_calls(s);
    if (strcmp(got, want) != 0) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", got);
        free(got);
        cn_sc_fail(s, "actuator calls:\n%s\nexpected:\n%s", copy, want);
    }
    free(got);
}

void cn_sc_expect_untouched(const cn_scenario *s)
{
    char dotdir[4200];
    snprintf(dotdir, sizeof dotdir, "%s/.canary", s->dir);
    if (exists(s->state) || exists(dotdir))
        cn_sc_fail(s, "a state database was created");
    if (exists(s->calls))
        cn_sc_fail(s, "the exec actuator was called");
    char *log = cn_sc_slurp(s->log);
    bool actuated = log && strstr(log, "actuate");
    free(log);
    if (actuated)
        cn_sc_fail(s, "the http actuator was called");
}

/* ---- the state database ------------------------------------------------- */

sqlite3 *cn_sc_db(const cn_scenario *s)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(s->state, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        cn_sc_fail(s, "cannot open the state database %s", s->state);
    }
    return db;
}

char *cn_sc_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *v = sqlite3_column_text(st, c);
            const char *text = v ? (const char *)v : "NULL";
            size_t need = strlen(text) + 3; /* '|', '\n', NUL */
            if (n + need > cap)
                out = realloc(out, cap = (cap + need) * 2);
            n += (size_t)sprintf(out + n, "%s%s", c ? "|" : "", text);
        }
        if (n + 2 > cap)
            out = realloc(out, cap = cap * 2 + 2);
        n += (size_t)sprintf(out + n, "\n");
    }
    sqlite3_finalize(st);
    return out;
}

void cn_sc_expect_row(const cn_scenario *s, const char *sql, const char *want)
{
    sqlite3 *db = cn_sc_db(s);
    char *got = cn_sc_rows(db, sql);
    sqlite3_close(db);
    char copy[8192];
    snprintf(copy, sizeof copy, "%s", got);
    free(got);
    cn_sc_expect_text(s, sql, copy, want);
}
