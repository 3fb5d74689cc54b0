/* The audit chain over the event log: hashes written with each event (per
 * rollout, the first after 32 zero bytes), the canonical JSON exact and
 * its SHA-256 recomputed here with OpenSSL independently of the store,
 * tampering found by verify (a changed row, a deleted middle row, a
 * deleted last row, a changed rollouts row, a row added without a hash),
 * the schema 1 to 2 upgrade, and the read-only open. Tampering goes
 * through a raw SQLite connection that first drops the append-only
 * triggers, as someone with write access to the file could. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "canary/store.h"
#include "../../controller/store_internal.h" /* cn_store_schema_v1 */
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
    cn_test_rmtree(dir);
    free(dir);
    return 0;
}

static const char *db_path(void **state)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/state.db", (const char *)*state);
    return buf;
}

static cn_store *open_ok(const char *path)
{
    char err[512] = "";
    cn_store *s = NULL;
    int rc = cn_store_open(&s, path, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_store_open: %s\n", err);
    assert_int_equal(rc, CN_OK);
    return s;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    return db;
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

static long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A 32-byte blob column as lowercase hex ("(null)" for NULL). */
static void raw_hex(sqlite3 *db, const char *sql, char out[65])
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
        strcpy(out, "(null)");
    } else {
        assert_int_equal(sqlite3_column_bytes(st, 0), 32);
        const unsigned char *b = sqlite3_column_blob(st, 0);
        for (int i = 0; i < 32; i++)
            sprintf(out + 2 * i, "%02x", b[i]);
    }
    sqlite3_finalize(st);
}

static void to_hex(const unsigned char *b, char out[65])
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* SHA-256(prev || text) by OpenSSL's one-shot EVP_Digest, not the store's
 * code: the formula as docs/state.md states it. */
static void sha_after(const unsigned char prev[32], const char *text, char out[65])
{
    size_t n = strlen(text);
    unsigned char *buf = malloc(32 + n);
    assert_non_null(buf);
    memcpy(buf, prev, 32);
    memcpy(buf + 32, text, n);
    unsigned char md[32];
    unsigned len = 0;
    assert_int_equal(EVP_Digest(buf, 32 + n, md, &len, EVP_sha256(), NULL), 1);
    assert_int_equal(len, 32);
    free(buf);
    to_hex(md, out);
}

static void create(cn_store *s, const char *id)
{
    cn_rollout_row row = {.id = (char *)id, .attempt = 1, .service = (char *)"shop",
                          .version = (char *)"v2", .state = (char *)"pending", .stages = 3,
                          .exit_code = -1, .created_ms = 1000, .updated_ms = 1000};
    char err[512] = "";
    int rc = cn_store_create(s, &row, err, sizeof err);
    if (rc)
        print_error("cn_store_create: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

static int64_t record(cn_store *s, const char *id, const char *type, const char *detail,
                      const char *data, bool evidence, int64_t t)
{
    cn_store_event ev = {.time_ms = t, .type = type, .actor = "canary", .detail = detail,
                         .data_json = data, .evidence_only = evidence};
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.1, .exit_code = -1};
    char err[512] = "";
    int64_t seq = -1;
    int rc = cn_store_record(s, id, &ev, &st, &seq, err, sizeof err);
    if (rc)
        print_error("cn_store_record: %s\n", err);
    assert_int_equal(rc, CN_OK);
    return seq;
}

/* Rollout "r" with three events: seq 1, 2 (evidence), 3. */
static void three_events(const char *path)
{
    cn_store *s = open_ok(path);
    create(s, "r");
    assert_int_equal(record(s, "r", "stage_applied", "stage 1 at 10%", "{\"w\":0.1}", false, 10),
                     1);
    assert_int_equal(record(s, "r", "measurement", "err 0.1%", "{\"v\":0.001}", true, 20), 2);
    assert_int_equal(record(s, "r", "completed", "done", NULL, false, 30), 3);
    cn_store_close(s);
}

typedef struct results {
    int n;
    cn_audit_result r[8];
    char rollout[8][64], type[8][64], text[8][512];
} results;

static void keep(void *ctx, const cn_audit_result *r)
{
    results *x = ctx;
    assert_true(x->n < 8);
    int i = x->n++;
    x->r[i] = *r;
    snprintf(x->rollout[i], sizeof x->rollout[i], "%s", r->rollout);
    snprintf(x->type[i], sizeof x->type[i], "%s", r->type ? r->type : "");
    cn_audit_describe(r, x->text[i], sizeof x->text[i]);
}

/* Verifies through a read-only connection, as `canary audit verify` does. */
static void verify(const char *path, const char *id, results *x)
{
    memset(x, 0, sizeof *x);
    cn_store *s = NULL;
    char err[512] = "";
    int rc = cn_store_open_readonly(&s, path, err, sizeof err);
    if (rc)
        print_error("cn_store_open_readonly: %s\n", err);
    assert_int_equal(rc, CN_OK);
    rc = cn_store_audit_verify(s, id, keep, x, err, sizeof err);
    if (rc)
        print_error("cn_store_audit_verify: %s\n", err);
    assert_int_equal(rc, CN_OK);
    cn_store_close(s);
}

static sqlite3 *attacker(const char *path)
{
    sqlite3 *db = raw_open(path);
    raw_exec(db, "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete");
    return db;
}

/* ---- writing the chain -------------------------------------------------- */

static void test_chain_written(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = raw_open(path);
    char a[65], b[65];
    raw_hex(db, "SELECT prev_hash FROM events WHERE seq = 1", a);
    assert_string_equal(a, "0000000000000000000000000000000000000000000000000000000000000000");
    for (int seq = 2; seq <= 3; seq++) {
        char q1[128], q2[128];
        snprintf(q1, sizeof q1, "SELECT hash FROM events WHERE seq = %d", seq - 1);
        snprintf(q2, sizeof q2, "SELECT prev_hash FROM events WHERE seq = %d", seq);
        raw_hex(db, q1, a);
        raw_hex(db, q2, b);
        assert_string_equal(a, b);
    }
    /* The evidence-only event moved the chain head but not the state. */
    assert_int_equal(raw_int(db, "SELECT events FROM rollouts WHERE id = 'r'"), 3);
    raw_hex(db, "SELECT hash FROM events WHERE seq = 3", a);
    raw_hex(db, "SELECT last_hash FROM rollouts WHERE id = 'r'", b);
    assert_string_equal(a, b);
    sqlite3_close(db);

    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_INTACT);
    assert_int_equal(x.r[0].found, 3);
    assert_int_equal(x.r[0].recorded, 3);
    assert_int_equal(x.r[0].unchained, 0);
    assert_string_equal(x.text[0], "rollout r: 3 events intact");
}

/* The exact text hashed, and the hash, for a known event: keys sorted,
 * compact, ASCII only, reals with 17 digits. */
static void test_canonical_exact(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, "shop-v2");
    record(s, "shop-v2", "stage_applied", "caf\xc3\xa9 \"ok\" \xff", "{\"z\":0.1,\"a\":[1,true]}",
           false, 1700000000123);
    cn_store_close(s);

    const char want[] = "{\"actor\":\"canary\",\"attempt\":1,\"data\":{\"a\":[1,true],"
                        "\"z\":0.10000000000000001},\"detail\":\"caf\\u00E9 \\\"ok\\\" \\uFFFD\","
                        "\"index\":1,\"rollout\":\"shop-v2\",\"seq\":1,\"time_ms\":1700000000123,"
                        "\"type\":\"stage_applied\"}";
    cn_store_event ev = {.time_ms = 1700000000123, .type = "stage_applied", .actor = "canary",
                         .detail = "caf\xc3\xa9 \"ok\" \xff",
                         .data_json = "{\"z\":0.1,\"a\":[1,true]}"};
    char *got = NULL;
    assert_int_equal(cn_audit_canonical("shop-v2", 1, 1, 1, &ev, &got), CN_OK);
    assert_string_equal(got, want);
    free(got);

    unsigned char zeros[32] = {0};
    char expect[65], stored[65];
    sha_after(zeros, want, expect);
    sqlite3 *db = raw_open(path);
    raw_hex(db, "SELECT hash FROM events WHERE seq = 1", stored);
    /* The row keeps its bytes; only the hashed text has U+FFFD. */
    assert_int_equal(raw_int(db, "SELECT length(CAST(detail AS BLOB)) FROM events"), 12);
    sqlite3_close(db);
    assert_string_equal(stored, expect);

    unsigned char mine[32];
    char mine_hex[65];
    assert_int_equal(cn_audit_hash(zeros, want, mine), CN_OK);
    to_hex(mine, mine_hex);
    assert_string_equal(mine_hex, expect);

    /* No data is null, not a missing key. */
    ev.data_json = NULL;
    assert_int_equal(cn_audit_canonical("x", 2, 5, 9, &ev, &got), CN_OK);
    assert_non_null(strstr(got, "\"data\":null,"));
    assert_non_null(strstr(got, "\"attempt\":2,"));
    free(got);
}

static void test_data_not_json_refused(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, "r");
    cn_store_event ev = {.time_ms = 1, .type = "t", .actor = "a", .detail = "d",
                         .data_json = "{not json"};
    cn_store_state st = {.state = "progressing", .exit_code = -1};
    char err[512] = "";
    assert_int_equal(cn_store_record(s, "r", &ev, &st, NULL, err, sizeof err), CN_EINVAL);
    assert_string_equal(err, "event 't' for rollout 'r' has data that is not JSON");
    cn_store_close(s);
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 0);
    assert_int_equal(raw_int(db, "SELECT events FROM rollouts"), 0);
    sqlite3_close(db);
}

/* Interleaved rollouts: one chain each, indexes counted per rollout. */
static int entry_line(void *ctx, const cn_audit_entry *e)
{
    char *buf = ctx;
    sprintf(buf + strlen(buf), "%s#%lld@%lld ", e->rollout, (long long)e->index,
            (long long)e->seq);
    return 0;
}

static void test_chain_per_rollout(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, "a");
    create(s, "b");
    record(s, "a", "t", "1", NULL, false, 1);
    record(s, "b", "t", "2", NULL, false, 2);
    record(s, "a", "t", "3", NULL, true, 3);
    char lines[256] = "";
    char err[256] = "";
    assert_int_equal(cn_store_audit_events(s, NULL, entry_line, lines, err, sizeof err), CN_OK);
    assert_string_equal(lines, "a#1@1 a#2@3 b#1@2 ");
    lines[0] = '\0';
    assert_int_equal(cn_store_audit_events(s, "b", entry_line, lines, err, sizeof err), CN_OK);
    assert_string_equal(lines, "b#1@2 ");
    assert_int_equal(cn_store_audit_events(s, "zz", entry_line, lines, err, sizeof err),
                     CN_ENOTFOUND);
    cn_store_close(s);

    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.text[0], "rollout a: 2 events intact");
    assert_string_equal(x.text[1], "rollout b: 1 events intact");
    verify(path, "b", &x);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.rollout[0], "b");
}

/* ---- tampering ---------------------------------------------------------- */

static void test_changed_row(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = attacker(path);
    raw_exec(db, "UPDATE events SET detail = 'err 0.0%' WHERE seq = 2");
    sqlite3_close(db);
    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_CHANGED);
    assert_int_equal(x.r[0].index, 2);
    assert_int_equal(x.r[0].seq, 2);
    assert_string_equal(x.type[0], "measurement");
    assert_string_equal(x.text[0], "rollout r: event #2 (seq 2, type measurement) does not "
                                   "match its hash: the row was changed");
}

static void test_changed_data_not_json(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = attacker(path);
    raw_exec(db, "UPDATE events SET data = 'garbage' WHERE seq = 1");
    sqlite3_close(db);
    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_CHANGED);
    assert_int_equal(x.r[0].index, 1);
}

static void test_deleted_middle_row(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = attacker(path);
    raw_exec(db, "DELETE FROM events WHERE seq = 2");
    sqlite3_close(db);
    results x;
    verify(path, "r", &x);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_MISSING);
    assert_int_equal(x.r[0].index, 2);
    assert_int_equal(x.r[0].missing, 1);
    assert_int_equal(x.r[0].seq, 3);
    assert_string_equal(x.text[0], "rollout r: event #2 is missing (deleted before seq 3)");
}

static void test_deleted_first_rows(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = attacker(path);
    raw_exec(db, "DELETE FROM events WHERE seq < 3");
    sqlite3_close(db);
    results x;
    verify(path, "r", &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_MISSING);
    assert_string_equal(x.text[0], "rollout r: events #1 to #2 are missing (deleted before "
                                   "seq 3)");
}

static void test_deleted_last_row(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = attacker(path);
    raw_exec(db, "DELETE FROM events WHERE seq = 3");
    sqlite3_close(db);
    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_TRUNCATED);
    assert_int_equal(x.r[0].missing, 1);
    assert_string_equal(x.text[0], "rollout r: the last 1 event is missing (rollout records 3 "
                                   "events, 2 found)");

    /* Lowering the count as well leaves last_hash pointing at the deleted
     * event. */
    db = raw_open(path);
    raw_exec(db, "UPDATE rollouts SET events = 2");
    sqlite3_close(db);
    verify(path, NULL, &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_HEAD);
    assert_string_equal(x.text[0], "rollout r: its row records 2 events and a last hash that "
                                   "do not match the 2 events found: the rollouts row was "
                                   "changed");
}

static void test_row_added_without_hash(void **state)
{
    const char *path = db_path(state);
    three_events(path);
    sqlite3 *db = raw_open(path);
    raw_exec(db, "INSERT INTO events (rollout, attempt, time_ms, type, actor, detail)"
                 " VALUES ('r', 1, 40, 'approved', 'mallory', 'looks fine')");
    sqlite3_close(db);
    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_UNHASHED);
    assert_string_equal(x.text[0], "rollout r: event seq 4 (type approved) has no hash but "
                                   "follows chained events: it was added outside canary");
}

/* ---- schema 1 and the read-only open ------------------------------------ */

static void make_v1(const char *path)
{
    sqlite3 *db = raw_open(path);
    raw_exec(db, "PRAGMA journal_mode = WAL");
    raw_exec(db, cn_store_schema_v1);
    raw_exec(db, "INSERT INTO rollouts (id, attempt, service, version, ai_assisted, state, stage,"
                 " stages, weight, created_ms, updated_ms)"
                 " VALUES ('old', 1, 'shop', 'v1', 0, 'progressing', 1, 3, 0.1, 5, 6)");
    raw_exec(db, "INSERT INTO events (rollout, attempt, time_ms, type, actor, detail)"
                 " VALUES ('old', 1, 6, 'stage_applied', 'canary', 'stage 1')");
    sqlite3_close(db);
}

static void test_upgrade_from_schema_1(void **state)
{
    const char *path = db_path(state);
    make_v1(path);

    /* Read-only: read as it is, not upgraded. */
    results x;
    verify(path, NULL, &x);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_INTACT);
    assert_int_equal(x.r[0].unchained, 1);
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
    sqlite3_close(db);

    cn_store *s = open_ok(path);
    cn_rollout_row row;
    assert_int_equal(cn_store_get(s, "old", &row, NULL, 0), CN_OK);
    assert_string_equal(row.state, "progressing");
    assert_int_equal(row.stage, 1);
    cn_rollout_row_free(&row);
    record(s, "old", "stage_applied", "stage 2", NULL, false, 7);
    cn_store_close(s);

    db = raw_open(path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM events WHERE hash IS NULL"), 1);
    assert_int_equal(raw_int(db, "SELECT events FROM rollouts"), 1);
    sqlite3_close(db);

    verify(path, NULL, &x);
    assert_int_equal(x.r[0].verdict, CN_AUDIT_INTACT);
    assert_int_equal(x.r[0].unchained, 1);
    assert_int_equal(x.r[0].found, 1);
}

static void test_readonly_open(void **state)
{
    const char *path = db_path(state);
    char err[512] = "";
    cn_store *s = (cn_store *)&err;
    assert_int_equal(cn_store_open_readonly(&s, path, err, sizeof err), CN_ENOTFOUND);
    assert_null(s);
    assert_non_null(strstr(err, "no state database at '"));
    assert_non_null(strstr(err, "No such file or directory"));
    /* Nothing was created. */
    sqlite3 *probe = NULL;
    assert_int_not_equal(sqlite3_open_v2(path, &probe, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_close(probe);

    cn_test_write(*state, "state.db", "");
    assert_int_equal(cn_store_open_readonly(&s, path, err, sizeof err), CN_ESTORE);
    assert_non_null(strstr(err, "is empty"));

    three_events(path);
    assert_int_equal(cn_store_open_readonly(&s, path, err, sizeof err), CN_OK);
    cn_rollout_row row;
    assert_int_equal(cn_store_get(s, "r", &row, NULL, 0), CN_OK);
    cn_rollout_row_free(&row);
    cn_store_event ev = {.time_ms = 1, .type = "t", .actor = "a", .detail = "d"};
    cn_store_state st = {.state = "progressing", .exit_code = -1};
    assert_int_equal(cn_store_record(s, "r", &ev, &st, NULL, err, sizeof err), CN_EINVAL);
    assert_non_null(strstr(err, "opened read-only"));
    results x = {0};
    assert_int_equal(cn_store_audit_verify(s, "nope", keep, &x, err, sizeof err), CN_ENOTFOUND);
    assert_int_equal(x.n, 0);
    cn_store_close(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_chain_written),        T(test_canonical_exact),
        T(test_data_not_json_refused), T(test_chain_per_rollout),
        T(test_changed_row),          T(test_changed_data_not_json),
        T(test_deleted_middle_row),   T(test_deleted_first_rows),
        T(test_deleted_last_row),     T(test_row_added_without_hash),
        T(test_upgrade_from_schema_1), T(test_readonly_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
