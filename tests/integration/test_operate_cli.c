/* canary approve|pause|resume|promote|abort, end to end: the real binary
 * against a state database this test prepares through the library (two
 * open rollouts and a finished one). Usage errors exit 2 and touch nothing;
 * a missing database exits 1 and is not created; an unknown id exits 1
 * with suggestions; a finished rollout, the author approving, and a user
 * missing from --access exit 1 and leave an intent_refused event in the
 * log; with nothing driving the rollout the request is stored (exit 3).
 * Then the test plays the driver: it holds the rollout's lease and, while
 * the command waits in the background, marks the request done (exit 0 with
 * the result printed; exit 1 for a refusal), lets its lease go stale or
 * releases it (exit 3), or says nothing (exit 3 after --wait). canary
 * status shows the driver and the pending requests, and `canary audit
 * verify` finds the log intact afterwards. */
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
#include <time.h>
#include <unistd.h>

#include "background.h"
#include "canary/status.h"
#include "canary/store.h"
#include "checks.h"
#include "proc.h"

#define GATED "shop-v2" /* AI-assisted, author alice, stage 1 of 3, stage 2 gated */
#define PLAIN "cart-v7" /* not AI-assisted, no gate, author alice, stage 1 of 3 */
#define DONE "shop-v1"  /* completed */
#define ANON "anon-v1"  /* as GATED, awaiting approval, but the change names no author */
#define HOLDER "testhost:4242:1"

typedef struct fixture {
    char *dir;
    char db[4096], access[4096], out[4096], err[4096];
    cn_store *s; /* the test's own connection: the "driver" */
} fixture;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void create(cn_store *s, const char *id, const char *author, bool ai, const char *plan,
                   const char *state, unsigned stage, double weight, int exit_code)
{
    cn_rollout_row row = {.id = (char *)id, .attempt = 1, .service = (char *)"shop",
                          .version = (char *)"v2", .previous_version = (char *)"v0",
                          .author = (char *)author, .ai_assisted = ai,
                          .policy = (char *)"default", .plan_json = (char *)plan,
                          .state = (char *)"pending", .stages = 3, .exit_code = -1,
                          .created_ms = now_ms() - 60000, .updated_ms = now_ms() - 60000};
    char err[512] = "";
    int rc = cn_store_create(s, &row, err, sizeof err);
    if (rc)
        print_error("cn_store_create: %s\n", err);
    assert_int_equal(rc, CN_OK);
    cn_store_event ev = {.time_ms = now_ms() - 50000, .type = "started", .actor = "canary",
                         .detail = "3 stages"};
    cn_store_state st = {.state = state, .stage = stage, .weight = weight,
                         .exit_code = exit_code};
    rc = cn_store_record(s, id, &ev, &st, NULL, err, sizeof err);
    if (rc)
        print_error("cn_store_record: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

#define PLAN_GATED                                                                   \
    "{\"stages\":[{\"index\":1,\"weight\":10,\"approval\":false},"                   \
    "{\"index\":2,\"weight\":50,\"approval\":true},{\"index\":3,\"weight\":100,\"approval\":false}]}"
#define PLAN_PLAIN                                                                   \
    "{\"stages\":[{\"index\":1,\"weight\":10,\"approval\":false},"                   \
    "{\"index\":2,\"weight\":50,\"approval\":false},{\"index\":3,\"weight\":100,\"approval\":false}]}"

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = cn_test_tmpdir();
    assert_non_null(f->dir);
    snprintf(f->db, sizeof f->db, "%s/state.db", f->dir);
    snprintf(f->access, sizeof f->access, "%s/access.yaml", f->dir);
    snprintf(f->out, sizeof f->out, "%s/cmd.out", f->dir);
    snprintf(f->err, sizeof f->err, "%s/cmd.err", f->dir);
    char err[512] = "";
    assert_int_equal(cn_store_open(&f->s, f->db, err, sizeof err), CN_OK);
    create(f->s, GATED, "alice", true, PLAN_GATED, "progressing", 1, 0.1, -1);
    create(f->s, PLAIN, "alice", false, PLAN_PLAIN, "progressing", 1, 0.1, -1);
    create(f->s, DONE, "alice", false, PLAN_PLAIN, "completed", 3, 1.0, 0);
    create(f->s, ANON, NULL, true, PLAN_GATED, "awaiting_approval", 1, 0.1, -1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cn_store_close(f->s);
    cn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int canary(cn_test_output *o, const fixture *f, const char *const *args)
{
    return cn_test_run(o, f->dir, args);
}

static long long count(const fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void hold_lease(fixture *f, const char *id, int64_t heartbeat)
{
    cn_lease me;
    memset(&me, 0, sizeof me);
    snprintf(me.holder, sizeof me.holder, "%s", HOLDER);
    snprintf(me.host, sizeof me.host, "testhost");
    me.pid = 4242;
    char err[512] = "";
    int rc = cn_store_lease_acquire(f->s, id, &me, heartbeat, CN_LEASE_TTL_MS, NULL, NULL, err,
                                    sizeof err);
    if (rc)
        print_error("cn_store_lease_acquire: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

static int first_pending(void *ctx, const cn_intent_row *row)
{
    *(int64_t *)ctx = row->id;
    return 1;
}

/* The oldest request on id not yet acted on, or 0. */
static int64_t pending_id(fixture *f, const char *id)
{
    int64_t got = 0;
    assert_int_equal(cn_store_intents_pending(f->s, id, first_pending, &got, NULL, 0), CN_OK);
    return got;
}

/* Starts the command in the background and returns once it waits for the
 * driver, renewing the test's lease meanwhile as a driver would. */
static pid_t start_waiting(fixture *f, const char *const *args)
{
    pid_t pid = cn_test_spawn(f->dir, args, f->out, f->err);
    assert_true(pid > 0);
    int limit = cn_test_patience_ms(10000);
    for (int waited = 0; waited <= limit; waited += 50) {
        if (cn_test_wait_text(f->out, "stored; waiting", 50))
            return pid;
        assert_int_equal(cn_store_lease_renew(f->s, GATED, HOLDER, now_ms(), NULL, 0), CN_OK);
    }
    char *out = slurp(f->out), *err = slurp(f->err);
    print_error("the command did not start waiting:\nstdout:\n%s\nstderr:\n%s\n", out, err);
    free(out);
    free(err);
    cn_test_kill(pid);
    fail();
    return -1;
}

static int finish(pid_t pid)
{
    int code = cn_test_wait(pid, cn_test_patience_ms(20000));
    if (code == CN_TEST_STILL_RUNNING) {
        cn_test_kill(pid);
        fail_msg("the command did not end in time");
    }
    return code;
}

static void expect_intact(const fixture *f)
{
    cn_test_output o;
    const char *args[] = {"audit", "verify", "--state", f->db, NULL};
    int code = canary(&o, f, args);
    if (code != 0)
        print_error("audit verify:\n%s\n%s\n", o.out, o.err);
    assert_int_equal(code, 0);
    char want[128];
    snprintf(want, sizeof want, "ok: %lld events in 4 rollouts, chains intact\n",
             count(f, "SELECT count(*) FROM events"));
    assert_contains(o.out, want);
    cn_test_output_free(&o);
}

/* ---- usage, database, id ------------------------------------------------ */

static void test_usage_errors(void **state)
{
    fixture *f = *state;
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none.db", f->dir);
    const char *cases[][10] = {
        {"approve", "--state", missing, NULL},
        {"approve", GATED, "--state", missing, NULL},
        {"pause", GATED, "--as", "", "--state", missing, NULL},
        {"pause", GATED, "--as", "bob", "--bogus", "--state", missing, NULL},
        {"pause", GATED, "--as", "bob", "--full", "--state", missing, NULL},
        {"abort", GATED, "extra", "--as", "bob", "--state", missing, NULL},
        {"resume", GATED, "--as", "bob", "--wait", "0", "--state", missing, NULL},
        {"resume", GATED, "--as", "bob", "--wait", "-1", "--state", missing, NULL},
        {"resume", GATED, "--as", "bob", "--wait", "soon", "--state", missing, NULL},
        {"resume", GATED, "--as", "bob", "--wait", "2x", "--state", missing, NULL},
        {"promote", GATED, "--as", NULL},
    };
    const char *says[] = {"which rollout? give its ID", "--as USER is required",
                          "--as USER is required", "unknown flag '--bogus'",
                          "--full applies to promote only", "unexpected argument 'extra'",
                          "--wait takes a positive number", "--wait takes a positive number",
                          "--wait takes a positive number", "--wait takes a positive number",
                          "'--as' needs a value"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_test_output o;
        assert_int_equal(canary(&o, f, cases[i]), 2);
        assert_contains(o.err, says[i]);
        assert_contains(o.err, "usage: canary ");
        cn_test_output_free(&o);
    }
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0);

    cn_test_output o;
    const char *help[] = {"promote", "--help", NULL};
    assert_int_equal(canary(&o, f, help), 0);
    assert_contains(o.out, "usage: canary promote ID --as USER [--full]");
    assert_contains(o.out, "3 stored but not acted on");
    cn_test_output_free(&o);
}

static void test_missing_database(void **state)
{
    fixture *f = *state;
    char missing[4200], nested[4300], sub[4200];
    snprintf(missing, sizeof missing, "%s/none.db", f->dir);
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    snprintf(nested, sizeof nested, "%s/none.db", sub);
    const char *paths[] = {missing, nested};
    for (size_t i = 0; i < 2; i++) {
        cn_test_output o;
        const char *args[] = {"abort", GATED, "--as", "bob", "--state", paths[i], NULL};
        assert_int_equal(canary(&o, f, args), 1);
        char want[4400];
        snprintf(want, sizeof want, "canary abort: no state database at '%s'", paths[i]);
        assert_contains(o.err, want);
        cn_test_output_free(&o);
    }
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0);
    assert_int_not_equal(stat(sub, &sb), 0);
    /* The default path too, from a directory without .canary. */
    cn_test_output o;
    const char *dflt[] = {"pause", GATED, "--as", "bob", NULL};
    assert_int_equal(canary(&o, f, dflt), 1);
    assert_contains(o.err, "no state database at '.canary/state.db'");
    cn_test_output_free(&o);
    char dot[4200];
    snprintf(dot, sizeof dot, "%s/.canary", f->dir);
    assert_int_not_equal(stat(dot, &sb), 0);
}

static void test_unknown_id(void **state)
{
    fixture *f = *state;
    cn_test_output o;
    const char *args[] = {"pause", "shop-v3", "--as", "bob", "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, args), 1);
    char want[4400];
    snprintf(want, sizeof want, "canary pause: no rollout 'shop-v3' in %s", f->db);
    assert_contains(o.err, want);
    /* Both one edit away; their order is the list's (newest first). */
    assert_contains(o.err, "did you mean: shop-v");
    assert_contains(o.err, "shop-v1");
    assert_contains(o.err, "shop-v2");
    assert_null(strstr(o.err, "cart-v7"));
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM intents"), 0);
}

/* ---- refused here, and recorded ----------------------------------------- */

static void test_finished_rollout(void **state)
{
    fixture *f = *state;
    cn_test_output o;
    const char *args[] = {"abort", DONE, "--as", "bob", "--reason", "oops", "--state", f->db,
                          NULL};
    assert_int_equal(canary(&o, f, args), 1);
    assert_contains(o.err, "canary abort: abort by 'bob' refused: rollout shop-v1 is already "
                           "completed: nothing to abort\n");
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE rollout = 'shop-v1' AND type = "
                              "'intent_refused' AND actor = 'bob' AND detail LIKE '%already "
                              "completed%' AND data = '{\"intent\":\"abort\",\"reason\":\"oops\"}'"),
                     1);
    assert_int_equal(count(f, "SELECT count(*) FROM intents"), 0);
    /* The state is as it was. */
    assert_int_equal(count(f, "SELECT exit_code FROM rollouts WHERE id = 'shop-v1'"), 0);
    assert_int_equal(count(f, "SELECT events FROM rollouts WHERE id = 'shop-v1'"), 2);
    expect_intact(f);
}

static void test_author_signing_off(void **state)
{
    fixture *f = *state;
    cn_test_output o;
    const char *approve[] = {"approve", GATED, "--as", "alice", "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, approve), 1);
    assert_contains(o.err, "approve by 'alice' refused: 'alice' is the change's author; a "
                           "second person must sign off (two-person rule)");
    cn_test_output_free(&o);
    /* --full past the gate of an AI-assisted change: the same rule. */
    const char *full[] = {"promote", GATED, "--full", "--as", "alice", "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, full), 1);
    assert_contains(o.err, "promote --full by 'alice' refused: 'alice' is the change's author");
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE rollout = 'shop-v2' AND type = "
                              "'intent_refused' AND actor = 'alice'"),
                     2);
    /* Without an author nobody can be shown to be a second person. */
    const char *anon[] = {"approve", ANON, "--as", "bob", "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, anon), 1);
    assert_contains(o.err, "approve by 'bob' refused: the change names no author, so the "
                           "two-person rule cannot be checked\n");
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE rollout = 'anon-v1' AND type = "
                              "'intent_refused' AND actor = 'bob'"),
                     1);
    assert_int_equal(count(f, "SELECT count(*) FROM intents"), 0);

    /* The state machine lets the author promote a change with no gate and
     * no AI: so does the command (stored; nothing drives it). */
    const char *plain[] = {"promote", PLAIN, "--full", "--as", "alice", "--state", f->db,
                           "--wait", "1", NULL};
    assert_int_equal(canary(&o, f, plain), 3);
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM intents WHERE rollout = 'cart-v7' AND "
                              "intent = 'promote_full' AND actor = 'alice'"),
                     1);
    expect_intact(f);
}

static void test_access_file(void **state)
{
    fixture *f = *state;
    cn_test_write(f->dir, "access.yaml",
                  "users:\n  bob: {roles: [developer, senior]}\n  carol: {roles: [developer]}\n");
    cn_test_output o;
    const char *mallory[] = {"pause", GATED, "--as", "mallory", "--access", f->access,
                             "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, mallory), 1);
    char want[4400];
    snprintf(want, sizeof want,
             "pause by 'mallory' refused: not a user in access file '%s'", f->access);
    assert_contains(o.err, want);
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE type = 'intent_refused' AND "
                              "actor = 'mallory' AND rollout = 'shop-v2'"),
                     1);
    assert_int_equal(count(f, "SELECT count(*) FROM intents"), 0);

    /* A listed user is stored. */
    const char *carol[] = {"pause", GATED, "--as", "carol", "--access", f->access, "--state",
                           f->db, NULL};
    assert_int_equal(canary(&o, f, carol), 3);
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM intents WHERE actor = 'carol'"), 1);

    /* A broken access file is invalid input: FILE:LINE:COLUMN, exit 2. */
    cn_test_write(f->dir, "access.yaml", "users:\n  bob: {roles: [senior]}\n  colour: blue\n");
    assert_int_equal(canary(&o, f, carol), 2);
    snprintf(want, sizeof want, "%s:3:", f->access);
    assert_contains(o.err, want);
    cn_test_output_free(&o);
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nope.yaml", f->dir);
    const char *gone[] = {"pause", GATED, "--as", "bob", "--access", missing, "--state", f->db,
                          NULL};
    assert_int_equal(canary(&o, f, gone), 2);
    assert_contains(o.err, "nope.yaml");
    cn_test_output_free(&o);
    assert_int_equal(count(f, "SELECT count(*) FROM intents"), 1);
    expect_intact(f);
}

/* ---- stored, nothing driving -------------------------------------------- */

static void test_nothing_driving(void **state)
{
    fixture *f = *state;
    cn_test_output o;
    const char *pause[] = {"pause", GATED, "--as", "bob", "--reason", "too fast", "--state",
                           f->db, NULL};
    assert_int_equal(canary(&o, f, pause), 3);
    assert_contains(o.out, "request #1 (pause by 'bob') is stored, but nothing is driving "
                           "rollout shop-v2.\n");
    assert_contains(o.out, "It is acted on when canary run resumes the rollout");
    cn_test_output_free(&o);
    cn_intent_row row;
    assert_int_equal(cn_store_intent_get(f->s, 1, &row, NULL, 0), CN_OK);
    assert_string_equal(row.rollout, GATED);
    assert_string_equal(row.intent, "pause");
    assert_string_equal(row.actor, "bob");
    assert_string_equal(row.reason, "too fast");
    assert_int_equal(row.acted_ms, 0);
    assert_null(row.result);
    assert_true(row.created_ms > now_ms() - 60000);
    cn_intent_row_free(&row);
    assert_int_equal(count(f, "SELECT count(*) FROM intents WHERE acted_ms IS NULL"), 1);

    /* status: not driven, one request pending. */
    const char *status[] = {"status", GATED, "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, status), 0);
    assert_contains(o.out, "driver    not driven: nothing holds its lease\n");
    assert_contains(o.out, "requests  #1 pause by 'bob', ");
    assert_contains(o.out, " ago, not acted on yet: too fast\n");
    cn_test_output_free(&o);

    /* A lease gone stale: its holder is named, as dead. */
    hold_lease(f, GATED, now_ms() - 2 * CN_LEASE_TTL_MS);
    const char *resume[] = {"resume", GATED, "--as", "bob", "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, resume), 3);
    assert_contains(o.out, "request #2 (resume by 'bob') is stored, but nothing is driving "
                           "rollout shop-v2 (its last driver, canary run pid 4242 on testhost, "
                           "stopped renewing its lease ");
    assert_contains(o.out, "s ago).\n");
    cn_test_output_free(&o);
    assert_int_equal(canary(&o, f, status), 0);
    assert_contains(o.out, "driver    not driven: canary run pid 4242 on testhost stopped "
                           "renewing its lease ");
    assert_contains(o.out, "requests  #1 pause by 'bob', ");
    assert_contains(o.out, "          #2 resume by 'bob', ");
    cn_test_output_free(&o);

    const char *json[] = {"status", GATED, "--state", f->db, "-o", "json", NULL};
    assert_int_equal(canary(&o, f, json), 0);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    json_t *driver = json_object_get(j, "driver");
    assert_string_equal(json_string_value(json_object_get(driver, "holder")), HOLDER);
    assert_string_equal(json_string_value(json_object_get(driver, "host")), "testhost");
    assert_int_equal(json_integer_value(json_object_get(driver, "pid")), 4242);
    assert_true(json_is_false(json_object_get(driver, "alive")));
    json_t *pending = json_object_get(j, "pending_intents");
    assert_int_equal(json_array_size(pending), 2);
    json_t *p0 = json_array_get(pending, 0), *p1 = json_array_get(pending, 1);
    assert_int_equal(json_integer_value(json_object_get(p0, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(p0, "intent")), "pause");
    assert_string_equal(json_string_value(json_object_get(p0, "actor")), "bob");
    assert_string_equal(json_string_value(json_object_get(p0, "reason")), "too fast");
    assert_true(json_is_integer(json_object_get(p0, "created_ms")));
    assert_string_equal(json_string_value(json_object_get(p1, "intent")), "resume");
    assert_true(json_is_null(json_object_get(p1, "reason")));
    json_decref(j);
    cn_test_output_free(&o);

    /* A finished rollout shows no driver; its JSON says null. */
    const char *done[] = {"status", DONE, "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, done), 0);
    assert_null(strstr(o.out, "driver "));
    cn_test_output_free(&o);
    const char *donej[] = {"status", DONE, "--state", f->db, "-o", "json", NULL};
    assert_int_equal(canary(&o, f, donej), 0);
    j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "driver")));
    assert_int_equal(json_array_size(json_object_get(j, "pending_intents")), 0);
    json_decref(j);
    cn_test_output_free(&o);
}

/* ---- a live driver ------------------------------------------------------- */

static void test_driver_acts(void **state)
{
    fixture *f = *state;
    hold_lease(f, GATED, now_ms());
    cn_test_output o;
    const char *status[] = {"status", GATED, "--state", f->db, NULL};
    assert_int_equal(canary(&o, f, status), 0);
    assert_contains(o.out, "driver    driven by canary run pid 4242 on testhost, heartbeat ");
    cn_test_output_free(&o);

    const char *args[] = {"approve", GATED, "--as", "bob", "--reason", "reviewed", "--wait",
                          "60", "--state", f->db, NULL};
    pid_t pid = start_waiting(f, args);
    int64_t id = pending_id(f, GATED);
    assert_true(id > 0);
    const char *result = "approved: stage 2 (50%) approved by 'bob' (role 'senior', not the "
                         "author): reviewed";
    assert_int_equal(cn_store_intent_done(f->s, id, now_ms(), result, NULL, 0), CN_OK);
    assert_int_equal(finish(pid), 0);
    char *out = slurp(f->out);
    assert_contains(out, "request #1 (approve by 'bob') stored; waiting up to 60 s for canary "
                         "run pid 4242 on testhost\n");
    assert_contains(out, "approve acted on by canary run pid 4242 on testhost after ");
    assert_contains(out, " s: approved: stage 2 (50%) approved by 'bob' (role 'senior', not the "
                         "author): reviewed\n");
    free(out);

    /* The driver refuses: exit 1, its reason printed. */
    const char *again[] = {"approve", GATED, "--as", "carol", "--wait", "60", "--state", f->db,
                           NULL};
    pid = start_waiting(f, again);
    id = pending_id(f, GATED);
    assert_int_equal(cn_store_intent_done(f->s, id, now_ms(),
                                          "approval_refused: approve by 'carol' refused: needs "
                                          "role 'senior'",
                                          NULL, 0),
                     CN_OK);
    assert_int_equal(finish(pid), 1);
    char *err = slurp(f->err);
    assert_contains(err, "canary approve: approve refused by canary run pid 4242 on testhost "
                         "after ");
    assert_contains(err, " s: approval_refused: approve by 'carol' refused: needs role "
                         "'senior'\n");
    free(err);
    /* intent_refused is a refusal too. */
    const char *resume[] = {"resume", GATED, "--as", "bob", "--wait", "60", "--state", f->db,
                            NULL};
    pid = start_waiting(f, resume);
    id = pending_id(f, GATED);
    assert_int_equal(cn_store_intent_done(f->s, id, now_ms(),
                                          "intent_refused: resume by 'bob': not paused (state "
                                          "progressing)",
                                          NULL, 0),
                     CN_OK);
    assert_int_equal(finish(pid), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM intents WHERE acted_ms IS NULL"), 0);
    expect_intact(f);
}

static void test_driver_goes_away(void **state)
{
    fixture *f = *state;
    hold_lease(f, GATED, now_ms());
    /* Its heartbeat stops: the lease goes stale during the wait. */
    const char *pause[] = {"pause", GATED, "--as", "bob", "--wait", "60", "--state", f->db, NULL};
    pid_t pid = start_waiting(f, pause);
    assert_int_equal(cn_store_lease_renew(f->s, GATED, HOLDER, now_ms() - CN_LEASE_TTL_MS - 1000,
                                          NULL, 0),
                     CN_OK);
    assert_int_equal(finish(pid), 3);
    char *out = slurp(f->out);
    assert_contains(out, "canary run pid 4242 on testhost stopped renewing its lease on rollout "
                         "shop-v2 (heartbeat ");
    assert_contains(out, "s ago) without acting on it; request #1 (pause by 'bob') stays "
                         "stored");
    free(out);

    /* It releases the lease without acting on the request. */
    hold_lease(f, GATED, now_ms());
    const char *abort_[] = {"abort", GATED, "--as", "bob", "--wait", "60", "--state", f->db,
                            NULL};
    pid = start_waiting(f, abort_);
    assert_int_equal(cn_store_lease_release(f->s, GATED, HOLDER, NULL, 0), CN_OK);
    assert_int_equal(finish(pid), 3);
    out = slurp(f->out);
    assert_contains(out, "canary run pid 4242 on testhost released rollout shop-v2 without "
                         "acting on it; request #2 (abort by 'bob') stays stored and is acted "
                         "on when canary run resumes the rollout");
    free(out);

    /* It holds on but says nothing: --wait ends it. */
    hold_lease(f, GATED, now_ms());
    cn_test_output o;
    const char *quiet[] = {"promote", GATED, "--as", "bob", "--wait", "0.3", "--state", f->db,
                           NULL};
    assert_int_equal(canary(&o, f, quiet), 3);
    assert_contains(o.out, "canary run pid 4242 on testhost did not act on it within 0.3 s; "
                           "request #3 (promote by 'bob') stays stored and may still be acted "
                           "on (see canary status shop-v2)\n");
    cn_test_output_free(&o);

    /* ^C while waiting: the request stays too. */
    const char *resume[] = {"resume", GATED, "--as", "bob", "--wait", "60", "--state", f->db,
                            NULL};
    pid = start_waiting(f, resume);
    assert_int_equal(kill(pid, SIGINT), 0);
    assert_int_equal(finish(pid), 3);
    out = slurp(f->out);
    assert_contains(out, "stopped waiting; request #4 (resume by 'bob') stays stored");
    free(out);
    assert_int_equal(count(f, "SELECT count(*) FROM intents WHERE acted_ms IS NULL"), 4);
    expect_intact(f);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_usage_errors),      T(test_missing_database), T(test_unknown_id),
        T(test_finished_rollout),  T(test_author_signing_off), T(test_access_file),
        T(test_nothing_driving),   T(test_driver_acts),      T(test_driver_goes_away),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
