/* State store: opening (directory and file created, WAL, schema version,
 * refusal of newer, foreign and non-SQLite files, unusable directories),
 * rollouts round-tripped field by field, events appended atomically with
 * the state they lead to (rollback on failure, unknown rollouts), the log
 * read in order and refused to UPDATE and DELETE, durability seen from a
 * second connection, and a damaged file giving errors rather than crashes.
 * Each test gets a fresh directory under /tmp; raw SQLite connections look
 * at the file from outside the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "canary/status.h"
#include "canary/store.h"
#include "../../controller/store_internal.h" /* the connection, to read its pragmas */
#include "checks.h"
#include "proc.h"

/* ---- helpers ------------------------------------------------------------ */

static int setup(void **state)
{
    char *dir = cn_test_tmpdir();
    assert_non_null(dir);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *dir = *state;
    chmod(dir, 0700);
    cn_test_rmtree(dir);
    free(dir);
    return 0;
}

/* dir/name in one of a few static buffers. */
static const char *in(const char *dir, const char *name)
{
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static cn_store *open_ok(const char *path)
{
    char err[512] = "";
    cn_store *s = NULL;
    int rc = cn_store_open(&s, path, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_store_open: %s\n", err);
    assert_int_equal(rc, CN_OK);
    assert_non_null(s);
    return s;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, len, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char ID[] = "checkout-v2.14.0", SERVICE[] = "checkout", VERSION[] = "v2.14.0",
            PREVIOUS[] = "v2.13.4", AUTHOR[] = "alice", POLICY[] = "default",
            PLAN[] = "{\"rollout\":\"checkout-v2.14.0\",\"stages\":[]}", PROGRESSING[] = "progressing",
            MACHINE[] = "{\"phase\":1}";

/* A rollout as the engine would create it: AI-assisted, no previous
 * version, no author. */
static cn_rollout_row sample_row(void)
{
    return (cn_rollout_row){.id = ID, .attempt = 1, .service = SERVICE, .version = VERSION,
                            .ai_assisted = true, .policy = POLICY, .plan_json = PLAN,
                            .state = PROGRESSING, .stage = 0, .stages = 4, .weight = 0.0,
                            .exit_code = -1, .machine_json = NULL,
                            .created_ms = 1700000000123, .updated_ms = 1700000000456};
}

static void create_ok(cn_store *s, const cn_rollout_row *row)
{
    char err[512] = "";
    int rc = cn_store_create(s, row, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_store_create: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

static int64_t record_ok(cn_store *s, const char *id, const char *type, const char *detail,
                         const char *state, unsigned stage, double weight, int exit_code,
                         const char *machine, int64_t t)
{
    cn_store_event ev = {.time_ms = t, .type = type, .actor = "canary", .detail = detail,
                         .data_json = "{\"v\":1}"};
    cn_store_state st = {.state = state, .stage = stage, .weight = weight,
                         .exit_code = exit_code, .machine_json = machine};
    char err[512] = "";
    int64_t seq = -1;
    int rc = cn_store_record(s, id, &ev, &st, &seq, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_store_record: %s\n", err);
    assert_int_equal(rc, CN_OK);
    return seq;
}

/* ---- opening ------------------------------------------------------------ */

static void test_open_creates_everything(void **state)
{
    const char *dir = *state;
    const char *path = in(dir, ".canary/state.db");
    cn_store *s = open_ok(path);

    struct stat sb;
    assert_int_equal(stat(in(dir, ".canary"), &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));

    sqlite3 *db = raw_open(path);
    char mode[32];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(raw_int(db, "PRAGMA application_id"), 0x434E5259);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name IN ('rollouts', 'attempts', 'events', 'intents', 'leases')"),
                     5);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                 " name = 'events_by_rollout'"),
                     1);
    sqlite3_close(db);
    cn_store_close(s);
}

static void test_reopen_keeps_data(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    record_ok(s, ID, "stage_applied", "stage 1 at 0.5%", "progressing", 1, 0.005, -1, NULL, 5);
    cn_store_close(s);

    s = open_ok(path);
    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_string_equal(got.id, ID);
    assert_int_equal(got.stage, 1);
    assert_true(got.weight == 0.005);
    cn_rollout_row_free(&got);
    cn_store_close(s);

    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store_close(open_ok(path));
    sqlite3 *db = raw_open(path);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);

    char err[512] = "";
    cn_store *s = (cn_store *)&err; /* must be reset to NULL */
    assert_int_equal(cn_store_open(&s, path, err, sizeof err), CN_ESTORE);
    assert_null(s);
    char want[600];
    snprintf(want, sizeof want,
             "state database '%s' was written by a newer canary (schema 99, this one knows 2)",
             path);
    assert_non_null(strstr(err, want));

    db = raw_open(path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 99);
    sqlite3_close(db);
}

static void test_text_file_refused(void **state)
{
    const char *path = in(*state, "notes.txt");
    const char *text = "these are notes, long enough to fill the first bytes of a header\n";
    write_file(path, text);

    char err[512] = "";
    cn_store *s = NULL;
    assert_int_equal(cn_store_open(&s, path, err, sizeof err), CN_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not a database"));

    char back[256] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(back, sizeof back, f));
    fclose(f);
    assert_string_equal(back, text); /* left as it was */
}

static void test_foreign_db_refused(void **state)
{
    const char *path = in(*state, "other.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    raw_exec(db, "CREATE TABLE rollouts (name TEXT, size INTEGER)");
    sqlite3_close(db);

    char err[512] = "";
    cn_store *s = NULL;
    assert_int_equal(cn_store_open(&s, path, err, sizeof err), CN_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not a canary state database"));

    /* Untouched: still in its own journal mode, and with user_version 1
     * but without canary's mark it is still not ours. */
    db = raw_open(path);
    char mode[32];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "delete");
    raw_exec(db, "PRAGMA user_version = 1");
    sqlite3_close(db);
    err[0] = '\0';
    assert_int_equal(cn_store_open(&s, path, err, sizeof err), CN_ESTORE);
    assert_non_null(strstr(err, "not a canary state database"));
}

static void test_unusable_directories(void **state)
{
    const char *dir = *state;
    char err[512] = "";
    cn_store *s = NULL;

    /* The parent is a file: refused even for root. */
    write_file(in(dir, "plain"), "x");
    assert_int_equal(cn_store_open(&s, in(dir, "plain/state.db"), err, sizeof err), CN_ESTORE);
    assert_null(s);
    char want[600];
    snprintf(want, sizeof want, "'%s' is not a directory", in(dir, "plain"));
    assert_non_null(strstr(err, want));

    /* Only the last directory is created. */
    assert_int_equal(cn_store_open(&s, in(dir, "a/b/state.db"), err, sizeof err), CN_ESTORE);
    snprintf(want, sizeof want, "cannot create directory '%s'", in(dir, "a/b"));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "No such file or directory"));

    assert_int_equal(cn_store_open(&s, "", err, sizeof err), CN_EINVAL);
    assert_int_equal(cn_store_open(&s, NULL, err, sizeof err), CN_EINVAL);
    assert_int_equal(cn_store_open(NULL, "x.db", err, sizeof err), CN_EINVAL);
}

static void test_read_only_directory(void **state)
{
    const char *dir = *state;
    if (geteuid() == 0) {
        print_message("running as root, which ignores directory permissions: skipped\n");
        return;
    }
    assert_int_equal(chmod(dir, 0500), 0);
    char err[512] = "";
    cn_store *s = NULL;
    const char *path = in(dir, "state.db");
    assert_int_equal(cn_store_open(&s, path, err, sizeof err), CN_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, path));

    const char *nested = in(dir, ".canary/state.db");
    assert_int_equal(cn_store_open(&s, nested, err, sizeof err), CN_ESTORE);
    assert_non_null(strstr(err, nested));
    assert_non_null(strstr(err, "Permission denied"));
}

/* ---- rollouts ----------------------------------------------------------- */

static void test_round_trip(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    create_ok(s, &row);

    cn_rollout_row got;
    char err[256] = "";
    assert_int_equal(cn_store_get(s, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.id, ID);
    assert_ptr_not_equal(got.id, ID);
    assert_int_equal(got.attempt, 1);
    assert_string_equal(got.service, SERVICE);
    assert_string_equal(got.version, VERSION);
    assert_null(got.previous_version);
    assert_null(got.author);
    assert_true(got.ai_assisted);
    assert_string_equal(got.policy, POLICY);
    assert_string_equal(got.plan_json, PLAN);
    assert_string_equal(got.state, PROGRESSING);
    assert_int_equal(got.stage, 0);
    assert_int_equal(got.stages, 4);
    assert_true(got.weight == 0.0);
    assert_int_equal(got.exit_code, -1);
    assert_null(got.machine_json);
    assert_int_equal(got.created_ms, 1700000000123);
    assert_int_equal(got.updated_ms, 1700000000456);
    cn_rollout_row_free(&got);
    assert_null(got.id);
    assert_int_equal(got.stages, 0);
    cn_rollout_row_free(&got); /* a zeroed row is fine */
    cn_rollout_row_free(NULL);

    /* The other way round: every optional string set, not AI-assisted. */
    static char id2[] = "search-v7", state2[] = "paused";
    cn_rollout_row other = {.id = id2, .attempt = 3, .service = SERVICE, .version = VERSION,
                            .previous_version = PREVIOUS, .author = AUTHOR,
                            .ai_assisted = false, .policy = NULL, .plan_json = NULL,
                            .state = state2, .stage = 2, .stages = 5, .weight = 0.25,
                            .exit_code = 4, .machine_json = MACHINE,
                            .created_ms = -1, .updated_ms = INT64_MAX};
    create_ok(s, &other);
    assert_int_equal(cn_store_get(s, id2, &got, err, sizeof err), CN_OK);
    assert_int_equal(got.attempt, 3);
    assert_string_equal(got.previous_version, PREVIOUS);
    assert_string_equal(got.author, AUTHOR);
    assert_false(got.ai_assisted);
    assert_null(got.policy);
    assert_null(got.plan_json);
    assert_string_equal(got.state, state2);
    assert_int_equal(got.stage, 2);
    assert_int_equal(got.stages, 5);
    assert_true(got.weight == 0.25);
    assert_int_equal(got.exit_code, 4);
    assert_string_equal(got.machine_json, MACHINE);
    assert_int_equal(got.created_ms, -1);
    assert_int_equal(got.updated_ms, INT64_MAX);
    cn_rollout_row_free(&got);

    assert_int_equal(cn_store_get(s, "nope", &got, err, sizeof err), CN_ENOTFOUND);
    assert_non_null(strstr(err, "no rollout 'nope'"));
    assert_null(got.id);
    cn_store_close(s);

    /* The attempt got its row. */
    sqlite3 *db = raw_open(in(*state, "state.db"));
    assert_int_equal(raw_int(db, "SELECT started_ms FROM attempts WHERE rollout = 'checkout-v2.14.0'"
                                 " AND attempt = 1"),
                     1700000000123);
    assert_int_equal(raw_int(db, "SELECT ended_ms IS NULL FROM attempts WHERE attempt = 1"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM attempts"), 2);
    sqlite3_close(db);
}

static void test_create_twice(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    static char other_version[] = "v9";
    row.version = other_version;
    char err[512] = "";
    assert_int_equal(cn_store_create(s, &row, err, sizeof err), CN_EEXIST);
    assert_string_equal(err, "rollout 'checkout-v2.14.0' already exists (state progressing, attempt 1)");

    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_string_equal(got.version, VERSION);
    cn_rollout_row_free(&got);

    /* Nothing left half-done: the next create works. */
    static char id2[] = "b";
    row.id = id2;
    create_ok(s, &row);
    cn_store_close(s);
}

static void test_create_invalid(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    char err[512] = "";
    row.attempt = 0;
    assert_int_equal(cn_store_create(s, &row, err, sizeof err), CN_EINVAL);
    assert_non_null(strstr(err, "attempt 0"));
    row = sample_row();
    row.state = NULL;
    assert_int_equal(cn_store_create(s, &row, err, sizeof err), CN_EINVAL);
    row = sample_row();
    row.weight = NAN;
    assert_int_equal(cn_store_create(s, &row, err, sizeof err), CN_EINVAL);
    assert_int_equal(cn_store_create(s, NULL, err, sizeof err), CN_EINVAL);
    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_ENOTFOUND);
    cn_store_close(s);
}

/* ---- events ------------------------------------------------------------- */

typedef struct seen {
    int count, stop_after;
    int64_t seqs[8];
    char types[8][32];
    char details[8][32];
    bool data_null[8];
    int64_t times[8];
} seen;

static int collect(void *ctx, int64_t seq, const cn_store_event *ev)
{
    seen *w = ctx;
    if (w->count < 8) {
        w->seqs[w->count] = seq;
        snprintf(w->types[w->count], sizeof w->types[0], "%s", ev->type);
        snprintf(w->details[w->count], sizeof w->details[0], "%s", ev->detail);
        w->data_null[w->count] = ev->data_json == NULL;
        w->times[w->count] = ev->time_ms;
        assert_string_equal(ev->actor, "canary");
    }
    w->count++;
    return w->stop_after && w->count >= w->stop_after;
}

static void test_record_updates_and_appends(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);

    int64_t a = record_ok(s, ID, "stage_applied", "stage 1", "progressing", 1, 0.01, -1, MACHINE, 100);
    int64_t b = record_ok(s, ID, "measurement", "error-rate 0.1%", "progressing", 1, 0.01, -1,
                          "{\"phase\":2}", 200);
    int64_t c = record_ok(s, ID, "completed", "100%", "completed", 4, 1.0, 0, NULL, 300);
    assert_int_equal(a, 1);
    assert_true(b > a);
    assert_true(c > b);

    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_string_equal(got.state, "completed");
    assert_int_equal(got.stage, 4);
    assert_true(got.weight == 1.0);
    assert_int_equal(got.exit_code, 0);
    assert_string_equal(got.machine_json, "{\"phase\":2}"); /* NULL kept the stored one */
    assert_int_equal(got.updated_ms, 300);
    assert_int_equal(got.created_ms, 1700000000123);
    cn_rollout_row_free(&got);

    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events WHERE attempt = 1"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events WHERE length(hash) = 32"), 3);
    /* A finished rollout closes its attempt. */
    assert_int_equal(raw_int(db, "SELECT ended_ms FROM attempts WHERE attempt = 1"), 300);
    assert_int_equal(raw_int(db, "SELECT exit_code FROM attempts WHERE attempt = 1"), 0);
    sqlite3_close(db);
    cn_store_close(s);
}

static void test_record_unknown_rollout(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    cn_store_event ev = {.time_ms = 1, .type = "stage_applied", .actor = "canary", .detail = "x"};
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.1, .exit_code = -1};
    char err[512] = "";
    int64_t seq = 77;
    assert_int_equal(cn_store_record(s, "ghost", &ev, &st, &seq, err, sizeof err), CN_ENOTFOUND);
    assert_non_null(strstr(err, "could not record event 'stage_applied': no rollout 'ghost'"));
    assert_int_equal(seq, 77);

    ev.type = NULL;
    assert_int_equal(cn_store_record(s, ID, &ev, &st, NULL, err, sizeof err), CN_EINVAL);
    ev.type = "stage_applied";
    st.weight = INFINITY;
    assert_int_equal(cn_store_record(s, ID, &ev, &st, NULL, err, sizeof err), CN_EINVAL);

    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 0);
    sqlite3_close(db);
    /* The store is still usable (no transaction left open). */
    assert_int_equal(record_ok(s, ID, "stage_applied", "x", "progressing", 1, 0.1, -1, NULL, 2), 1);
    cn_store_close(s);
}

static void test_failed_record_rolls_back(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    record_ok(s, ID, "stage_applied", "stage 1", "progressing", 1, 0.01, -1, MACHINE, 100);

    /* Make the INSERT fail after the UPDATE has run in the same transaction. */
    sqlite3 *db = raw_open(path);
    raw_exec(db, "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.type = 'boom'"
                 " BEGIN SELECT RAISE(ABORT, 'boom refused'); END");
    cn_store_event ev = {.time_ms = 999, .type = "boom", .actor = "canary", .detail = "x"};
    cn_store_state st = {.state = "rolling_back", .stage = 0, .weight = 0, .exit_code = 3,
                         .machine_json = "{}"};
    char err[512] = "";
    assert_int_equal(cn_store_record(s, ID, &ev, &st, NULL, err, sizeof err), CN_ESTORE);
    char want[600];
    snprintf(want, sizeof want,
             "could not record event 'boom' for rollout 'checkout-v2.14.0' in '%s': boom refused",
             path);
    assert_string_equal(err, want);

    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_string_equal(got.state, "progressing");
    assert_int_equal(got.stage, 1);
    assert_int_equal(got.exit_code, -1);
    assert_string_equal(got.machine_json, MACHINE);
    assert_int_equal(got.updated_ms, 100);
    cn_rollout_row_free(&got);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 1);
    assert_int_equal(raw_int(db, "SELECT ended_ms IS NULL FROM attempts"), 1);
    sqlite3_close(db);

    assert_true(record_ok(s, ID, "stage_applied", "stage 2", "progressing", 2, 0.1, -1, NULL, 200) > 1);
    cn_store_close(s);
}

/* Reads the store from inside the iteration: the rollout, and another
 * rollout's log. */
typedef struct nested {
    cn_store *s;
    int count, inner, gets;
} nested;

static int reenter(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    (void)ev;
    nested *n = ctx;
    cn_rollout_row row;
    if (cn_store_get(n->s, ID, &row, NULL, 0) == CN_OK && strcmp(row.id, ID) == 0)
        n->gets++;
    cn_rollout_row_free(&row);
    seen w = {0};
    if (cn_store_events(n->s, "other", collect, &w, NULL, 0) == CN_OK)
        n->inner += w.count;
    n->count++;
    return 0;
}

static void test_events_order_and_stop(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    static char id2[] = "other";
    row.id = id2;
    create_ok(s, &row);

    const char *types[] = {"started", "stage_applied", "measurement", "stage_applied", "completed"};
    for (int i = 0; i < 5; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "event %d", i);
        record_ok(s, ID, types[i], detail, "progressing", (unsigned)i, 0.1, -1, NULL, 1000 + i);
        record_ok(s, id2, "noise", "noise", "progressing", 0, 0, -1, NULL, 1);
    }
    cn_store_event ev = {.time_ms = 2000, .type = "note", .actor = "canary", .detail = "no data"};
    cn_store_state st = {.state = "progressing", .stage = 4, .weight = 0.1, .exit_code = -1};
    assert_int_equal(cn_store_record(s, ID, &ev, &st, NULL, NULL, 0), CN_OK);

    seen w = {0};
    char err[256] = "";
    assert_int_equal(cn_store_events(s, ID, collect, &w, err, sizeof err), CN_OK);
    assert_int_equal(w.count, 6);
    for (int i = 0; i < 5; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "event %d", i);
        assert_string_equal(w.types[i], types[i]);
        assert_string_equal(w.details[i], detail);
        assert_int_equal(w.times[i], 1000 + i);
        assert_false(w.data_null[i]);
        if (i)
            assert_true(w.seqs[i] > w.seqs[i - 1]);
    }
    assert_string_equal(w.types[5], "note");
    assert_true(w.data_null[5]);

    seen early = {.stop_after = 2};
    assert_int_equal(cn_store_events(s, ID, collect, &early, err, sizeof err), CN_OK);
    assert_int_equal(early.count, 2);
    assert_string_equal(early.types[1], "stage_applied");

    nested n = {.s = s};
    assert_int_equal(cn_store_events(s, ID, reenter, &n, err, sizeof err), CN_OK);
    assert_int_equal(n.count, 6);
    assert_int_equal(n.gets, 6);
    assert_int_equal(n.inner, 6 * 5);

    seen none = {0};
    assert_int_equal(cn_store_events(s, "ghost", collect, &none, err, sizeof err), CN_ENOTFOUND);
    assert_non_null(strstr(err, "no rollout 'ghost'"));
    assert_int_equal(none.count, 0);
    cn_store_close(s);
}

static void test_events_append_only(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    record_ok(s, ID, "stage_applied", "stage 1", "progressing", 1, 0.01, -1, NULL, 100);

    sqlite3 *db = raw_open(path);
    raw_exec(db, "PRAGMA foreign_keys = ON");
    assert_int_equal(sqlite3_exec(db, "UPDATE events SET detail = 'forged'", NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    assert_string_equal(sqlite3_errmsg(db), "events are append-only");
    assert_int_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_CONSTRAINT);
    assert_string_equal(sqlite3_errmsg(db), "events are append-only");
    /* Nor can the rollout vanish from under its log. */
    assert_int_equal(sqlite3_exec(db, "DELETE FROM rollouts", NULL, NULL, NULL), SQLITE_CONSTRAINT);
    char detail[32];
    raw_text(db, "SELECT detail FROM events", detail, sizeof detail);
    assert_string_equal(detail, "stage 1");
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 1);
    sqlite3_close(db);
    cn_store_close(s);
}

/* When record returns, another connection (another process, after a crash)
 * sees the event and the state. */
static void test_durable_for_others(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int64_t seq = record_ok(s, ID, "stage_applied", "weight 5%", "progressing", 2, 0.05, -1, NULL, 42);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT e.detail, r.stage FROM events e JOIN rollouts r"
                                        " ON r.id = e.rollout WHERE e.seq = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "weight 5%");
    assert_int_equal(sqlite3_column_int(st, 1), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* And a second store on the same file reads it too. */
    cn_store *t = open_ok(path);
    seen w = {0};
    assert_int_equal(cn_store_events(t, ID, collect, &w, NULL, 0), CN_OK);
    assert_int_equal(w.count, 1);
    assert_int_equal(w.seqs[0], seq);
    cn_store_close(t);
    cn_store_close(s);
}

static int synchronous_of(cn_store *s)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A measurement (evidence_only) is committed without waiting for the disk;
 * the next event that announces an action waits again (FULL), which in WAL
 * order carries the measurement to disk with it. */
static void test_evidence_only_commits(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    assert_int_equal(synchronous_of(s), 2); /* FULL */
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.01, .exit_code = -1};
    cn_store_event measured = {.time_ms = 1, .type = "measurement", .actor = "canary",
                               .detail = "stage 1: error-rate: pass", .evidence_only = true};
    char err[256] = "";
    assert_int_equal(cn_store_record(s, ID, &measured, &st, NULL, err, sizeof err), CN_OK);
    assert_int_equal(synchronous_of(s), 1); /* NORMAL */
    cn_store_event promoted = {.time_ms = 2, .type = "promoted", .actor = "canary",
                               .detail = "stage 1 passed"};
    assert_int_equal(cn_store_record(s, ID, &promoted, &st, NULL, err, sizeof err), CN_OK);
    assert_int_equal(synchronous_of(s), 2);
    cn_store *t = open_ok(path);
    seen w = {0};
    assert_int_equal(cn_store_events(t, ID, collect, &w, NULL, 0), CN_OK);
    assert_int_equal(w.count, 2);
    cn_store_close(t);
    cn_store_close(s);
}

typedef struct counter {
    int count;
    int64_t last_seq;
    bool in_order;
} counter;

static int count_events(void *ctx, int64_t seq, const cn_store_event *ev)
{
    counter *c = ctx;
    char want[32];
    snprintf(want, sizeof want, "event %d", c->count);
    if (seq <= c->last_seq || strcmp(ev->detail, want) != 0)
        c->in_order = false;
    c->last_seq = seq;
    c->count++;
    return 0;
}

static void test_thousand_records(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    int64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "event %d", i);
        int64_t seq = record_ok(s, ID, "measurement", detail, "progressing", (unsigned)(i % 7),
                                i / 1000.0, -1, NULL, i);
        assert_true(seq > last);
        last = seq;
    }
    counter c = {.in_order = true};
    assert_int_equal(cn_store_events(s, ID, count_events, &c, NULL, 0), CN_OK);
    assert_int_equal(c.count, 1000);
    assert_true(c.in_order);
    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_int_equal(got.stage, 999 % 7);
    assert_true(got.weight == 0.999);
    assert_int_equal(got.updated_ms, 999);
    cn_rollout_row_free(&got);
    cn_store_close(s);
}

static int check_big(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    *(size_t *)ctx = strlen(ev->detail);
    return 0;
}

static void test_large_detail(void **state)
{
    cn_store *s = open_ok(in(*state, "state.db"));
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    size_t n = 4u << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'e', n);
    big[n] = '\0';
    record_ok(s, ID, "measurement", big, "progressing", 1, 0.1, -1, NULL, 1);
    free(big);
    size_t len = 0;
    assert_int_equal(cn_store_events(s, ID, check_big, &len, NULL, 0), CN_OK);
    assert_int_equal(len, n);
    cn_store_close(s);
}

/* ---- a damaged file ----------------------------------------------------- */

static void test_damaged_file(void **state)
{
    const char *path = in(*state, "state.db");
    cn_store *s = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(s, &row);
    for (int i = 0; i < 50; i++)
        record_ok(s, ID, "measurement", "a detail long enough to fill some pages of the file",
                  "progressing", 1, 0.1, -1, NULL, i);
    cn_store_close(s); /* the last connection checkpoints: all in the main file */

    /* Every page but the first (the header and the schema) becomes noise. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_true(sb.st_size > 4096 * 4);
    unsigned char noise[4096];
    uint32_t x = 12345;
    for (off_t off = 4096; off < sb.st_size; off += (off_t)sizeof noise) {
        for (size_t i = 0; i < sizeof noise; i++) {
            x = x * 1103515245u + 12345u;
            noise[i] = (unsigned char)(x >> 16);
        }
        assert_int_equal(pwrite(fd, noise, sizeof noise, off), (ssize_t)sizeof noise);
    }
    close(fd);

    char err[512] = "";
    s = NULL;
    int rc = cn_store_open(&s, path, err, sizeof err);
    if (rc != CN_OK) {
        assert_int_equal(rc, CN_ESTORE);
        assert_non_null(strstr(err, path));
        return;
    }
    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, err, sizeof err), CN_ESTORE);
    assert_non_null(strstr(err, "malformed"));
    assert_null(got.id);
    seen w = {0};
    assert_int_equal(cn_store_events(s, ID, collect, &w, err, sizeof err), CN_ESTORE);
    cn_store_event ev = {.time_ms = 1, .type = "t", .actor = "canary", .detail = "d"};
    cn_store_state st = {.state = "progressing", .exit_code = -1};
    assert_int_equal(cn_store_record(s, ID, &ev, &st, NULL, err, sizeof err), CN_ESTORE);
    assert_non_null(strstr(err, "could not record event 't'"));
    cn_store_close(s);
}

/* ---- read-only opening and listing ---------------------------------------- */

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void test_readonly_missing_creates_nothing(void **state)
{
    const char *dir = *state;
    char err[512] = "";
    cn_store *s = (cn_store *)1;
    assert_int_equal(cn_store_open_readonly(&s, in(dir, "sub/state.db"), err, sizeof err),
                     CN_ENOTFOUND);
    assert_null(s);
    assert_prefix(err, "no state database at '");
    assert_false(exists(in(dir, "sub")));
    assert_int_equal(cn_store_open_readonly(&s, in(dir, "state.db"), err, sizeof err),
                     CN_ENOTFOUND);
    assert_false(exists(in(dir, "state.db")));
    assert_int_equal(cn_store_open_readonly(&s, "", err, sizeof err), CN_EINVAL);
}

static void test_readonly_refuses_empty_and_foreign(void **state)
{
    const char *dir = *state;
    char err[512] = "";
    cn_store *s = NULL;
    write_file(in(dir, "empty.db"), "");
    assert_int_equal(cn_store_open_readonly(&s, in(dir, "empty.db"), err, sizeof err), CN_ESTORE);
    assert_contains(err, "is empty");
    struct stat sb;
    assert_int_equal(stat(in(dir, "empty.db"), &sb), 0);
    assert_int_equal(sb.st_size, 0); /* no schema written */
    write_file(in(dir, "text.db"), "hello, this is not a database at all, not even close\n");
    assert_int_equal(cn_store_open_readonly(&s, in(dir, "text.db"), err, sizeof err), CN_ESTORE);
    assert_contains(err, "is not a database");
    assert_null(s);
}

static void test_readonly_reads_and_refuses_writes(void **state)
{
    const char *dir = *state;
    const char *path = in(dir, "state.db");
    cn_store *w = open_ok(path);
    cn_rollout_row row = sample_row();
    create_ok(w, &row);
    record_ok(w, ID, "started", "planned", "progressing", 0, 0, -1, NULL, 1700000000500);

    /* Side by side with the writer, which still holds the file open. */
    char err[512] = "";
    cn_store *r = NULL;
    assert_int_equal(cn_store_open_readonly(&r, path, err, sizeof err), CN_OK);
    cn_rollout_row got;
    assert_int_equal(cn_store_get(r, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.state, "progressing");
    assert_int_equal(got.stages, 4);
    cn_rollout_row_free(&got);
    counter c = {0, 0, true};
    assert_int_equal(cn_store_events(r, ID, count_events, &c, err, sizeof err), CN_OK);
    assert_int_equal(c.count, 1);

    cn_store_event ev = {.time_ms = 1, .type = "t", .actor = "canary", .detail = "d"};
    cn_store_state st = {.state = "progressing", .exit_code = -1};
    assert_int_equal(cn_store_record(r, ID, &ev, &st, NULL, err, sizeof err), CN_EINVAL); /* refused before SQLite is asked */
    cn_rollout_row other = sample_row();
    other.id = (char *)"other";
    assert_int_equal(cn_store_create(r, &other, err, sizeof err), CN_EINVAL);
    cn_store_close(r);

    /* The writer saw none of it. */
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM rollouts"), 1);
    sqlite3_close(db);
    cn_store_close(w);
}

static void create_at(cn_store *s, const char *id, const char *service, int64_t created)
{
    cn_rollout_row row = sample_row();
    row.id = (char *)id;
    row.service = (char *)service;
    row.created_ms = created;
    row.updated_ms = created + 1000;
    create_ok(s, &row);
}

static void expect_ids(const cn_rollout_row *rows, size_t n, const char *want)
{
    char got[512] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", rows[i].id);
    assert_string_equal(got, want);
}

static void test_list_order_and_filters(void **state)
{
    const char *dir = *state;
    cn_store *s = open_ok(in(dir, "state.db"));
    char err[512] = "";
    cn_rollout_row *rows = (cn_rollout_row *)1;
    size_t n = 99;
    assert_int_equal(cn_store_list(s, NULL, &rows, &n, err, sizeof err), CN_OK);
    assert_null(rows);
    assert_int_equal(n, 0);

    create_at(s, "shop-v1", "shop", 1000);
    create_at(s, "cart-v1", "cart", 2000);
    create_at(s, "shop-v2", "shop", 3000);
    create_at(s, "shop-v3", "shop", 3000); /* same time: id descending */

    assert_int_equal(cn_store_list(s, NULL, &rows, &n, err, sizeof err), CN_OK);
    assert_int_equal(n, 4);
    expect_ids(rows, n, "shop-v3 shop-v2 cart-v1 shop-v1 ");
    /* Whole rows, as cn_store_get reads them. */
    assert_string_equal(rows[3].service, "shop");
    assert_string_equal(rows[3].version, VERSION);
    assert_string_equal(rows[3].plan_json, PLAN);
    assert_null(rows[3].author);
    assert_true(rows[3].ai_assisted);
    assert_int_equal(rows[3].stages, 4);
    assert_int_equal(rows[3].created_ms, 1000);
    assert_int_equal(rows[3].updated_ms, 2000);
    cn_rollout_rows_free(rows, n);

    cn_store_filter f = {.service = "shop"};
    assert_int_equal(cn_store_list(s, &f, &rows, &n, err, sizeof err), CN_OK);
    expect_ids(rows, n, "shop-v3 shop-v2 shop-v1 ");
    cn_rollout_rows_free(rows, n);

    f.since_ms = 2000; /* at or after */
    assert_int_equal(cn_store_list(s, &f, &rows, &n, err, sizeof err), CN_OK);
    expect_ids(rows, n, "shop-v3 shop-v2 ");
    cn_rollout_rows_free(rows, n);

    f.service = NULL;
    assert_int_equal(cn_store_list(s, &f, &rows, &n, err, sizeof err), CN_OK);
    expect_ids(rows, n, "shop-v3 shop-v2 cart-v1 ");
    cn_rollout_rows_free(rows, n);

    f.service = "nothing";
    assert_int_equal(cn_store_list(s, &f, &rows, &n, err, sizeof err), CN_OK);
    assert_int_equal(n, 0);
    assert_null(rows);

    assert_int_equal(cn_store_list(s, NULL, NULL, &n, err, sizeof err), CN_EINVAL);
    cn_rollout_rows_free(NULL, 0);
    cn_store_close(s);
}

static void test_list_damaged_row(void **state)
{
    const char *dir = *state;
    const char *path = in(dir, "state.db");
    cn_store *s = open_ok(path);
    create_at(s, "a", "shop", 1000);
    create_at(s, "b", "shop", 2000);
    cn_store_close(s);
    sqlite3 *db = raw_open(path);
    raw_exec(db, "UPDATE rollouts SET created_ms = 'soon' WHERE id = 'a'");
    sqlite3_close(db);
    s = open_ok(path);
    char err[512] = "";
    cn_rollout_row *rows = (cn_rollout_row *)1;
    size_t n = 99;
    /* 'soon' sorts after every integer, so the damaged row comes first. */
    assert_int_equal(cn_store_list(s, NULL, &rows, &n, err, sizeof err), CN_ESTORE);
    assert_null(rows);
    assert_int_equal(n, 0);
    assert_contains(err, "rollout 'a'");
    assert_contains(err, "is damaged");
    cn_store_close(s);
}

/* Several processes opening the same new file at the same moment (two
 * pipelines' first `canary run` on a machine): each gets a working store;
 * none fails on the switch to WAL or the schema the other is creating. */
static void test_concurrent_first_open(void **state)
{
    const char *dir = *state;
    enum { ROUNDS = 15, PROCS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        char name[32];
        snprintf(name, sizeof name, "race%d.db", round);
        const char *path = in(dir, name);
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            kids[i] = fork();
            assert_true(kids[i] >= 0);
            if (kids[i] == 0) {
                close(go[1]);
                char c;
                if (read(go[0], &c, 1) != 0) /* EOF: all forked, go */
                    _exit(3);
                cn_store *s = NULL;
                char err[512] = "";
                int rc = cn_store_open(&s, path, err, sizeof err);
                if (rc != CN_OK)
                    fprintf(stderr, "open %d: %s\n", i, err);
                cn_store_close(s);
                _exit(rc == CN_OK ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int i = 0; i < PROCS; i++) {
            int status = 0;
            assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_everything),
        T(test_reopen_keeps_data),
        T(test_newer_schema_refused),
        T(test_text_file_refused),
        T(test_foreign_db_refused),
        T(test_unusable_directories),
        T(test_read_only_directory),
        T(test_round_trip),
        T(test_create_twice),
        T(test_create_invalid),
        T(test_record_updates_and_appends),
        T(test_record_unknown_rollout),
        T(test_failed_record_rolls_back),
        T(test_events_order_and_stop),
        T(test_events_append_only),
        T(test_durable_for_others),
        T(test_evidence_only_commits),
        T(test_thousand_records),
        T(test_large_detail),
        T(test_damaged_file),
        T(test_readonly_missing_creates_nothing),
        T(test_readonly_refuses_empty_and_foreign),
        T(test_readonly_reads_and_refuses_writes),
        T(test_list_order_and_filters),
        T(test_list_damaged_row),
        T(test_concurrent_first_open),
    };
#undef T
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
