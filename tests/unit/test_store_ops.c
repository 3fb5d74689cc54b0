/* The store's attempts, notes, operator intents and lease (store.h): each
 * function's success and every error code it documents. Notes leave the
 * rollout's state as it was; a new attempt only follows a finished one,
 * resets the row and goes on in the same audit chain; intents come back
 * in id order until acted on, and are acted on once; the lease is taken
 * when free, own, stale or held by a known-dead holder, and refused
 * otherwise. After notes and attempts cn_store_audit_verify still finds
 * every chain intact. Evidence a deferring store holds is seen by nobody
 * until flushed, then in order and chained; the next write of any kind
 * carries it, a failed one keeps it held. Each test gets a fresh
 * directory under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static cn_store *open_readonly_ok(const char *path)
{
    char err[512] = "";
    cn_store *s = NULL;
    int rc = cn_store_open_readonly(&s, path, err, sizeof err);
    if (rc != CN_OK)
        print_error("cn_store_open_readonly: %s\n", err);
    assert_int_equal(rc, CN_OK);
    return s;
}

static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
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

#define ID "shop-v2"

static void create(cn_store *s, const char *id)
{
    cn_rollout_row row = {.id = (char *)id, .attempt = 1, .service = (char *)"shop",
                          .version = (char *)"v2", .previous_version = (char *)"v1",
                          .author = (char *)"alice", .policy = (char *)"default",
                          .plan_json = (char *)"{\"stages\":[]}", .state = (char *)"pending",
                          .stages = 3, .exit_code = -1, .created_ms = 1000, .updated_ms = 1000};
    char err[512] = "";
    int rc = cn_store_create(s, &row, err, sizeof err);
    if (rc)
        print_error("cn_store_create: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

static void record(cn_store *s, const char *id, const char *type, const char *state,
                   unsigned stage, double weight, int exit_code, int64_t t)
{
    cn_store_event ev = {.time_ms = t, .type = type, .actor = "canary", .detail = type,
                         .data_json = "{\"n\":1}"};
    cn_store_state st = {.state = state, .stage = stage, .weight = weight,
                         .exit_code = exit_code, .machine_json = "{\"m\":1}"};
    char err[512] = "";
    int rc = cn_store_record(s, id, &ev, &st, NULL, err, sizeof err);
    if (rc)
        print_error("cn_store_record: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

typedef struct verdicts {
    int rollouts, broken;
    int64_t found;
    char last[512];
} verdicts;

static void on_verdict(void *ctx, const cn_audit_result *r)
{
    verdicts *v = ctx;
    v->rollouts++;
    v->found += r->found;
    if (r->verdict != CN_AUDIT_INTACT) {
        v->broken++;
        cn_audit_describe(r, v->last, sizeof v->last);
    }
}

/* Verifies every chain through a second, read-only connection and returns
 * the number of chained events found. */
static int64_t expect_intact(const char *path)
{
    cn_store *r = open_readonly_ok(path);
    verdicts v = {0};
    char err[512] = "";
    assert_int_equal(cn_store_audit_verify(r, NULL, on_verdict, &v, err, sizeof err), CN_OK);
    cn_store_close(r);
    if (v.broken)
        print_error("audit: %s\n", v.last);
    assert_int_equal(v.broken, 0);
    assert_true(v.rollouts > 0);
    return v.found;
}

/* ---- notes --------------------------------------------------------------- */

static void test_note_keeps_state(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    record(s, ID, "stage_applied", "progressing", 1, 0.05, -1, 2000);
    cn_rollout_row before;
    assert_int_equal(cn_store_get(s, ID, &before, NULL, 0), CN_OK);

    /* evidence_only is ignored: a note is always durable. */
    cn_store_event ev = {.time_ms = 5000, .type = "intent_refused", .actor = "mallory",
                         .detail = "approve by 'mallory' refused", .data_json = "{\"why\":1}",
                         .evidence_only = true};
    char err[512] = "";
    assert_int_equal(cn_store_note(s, ID, &ev, err, sizeof err), CN_OK);
    assert_int_equal(synchronous_of(s), 2); /* FULL */

    cn_rollout_row after;
    assert_int_equal(cn_store_get(s, ID, &after, NULL, 0), CN_OK);
    assert_string_equal(after.state, "progressing");
    assert_int_equal(after.stage, 1);
    assert_true(after.weight == 0.05);
    assert_int_equal(after.exit_code, -1);
    assert_int_equal(after.updated_ms, before.updated_ms);
    assert_string_equal(after.machine_json, before.machine_json);
    cn_rollout_row_free(&before);
    cn_rollout_row_free(&after);

    assert_int_equal(raw_int(path, "SELECT count(*) FROM events WHERE type = 'intent_refused'"
                                   " AND actor = 'mallory' AND attempt = 1"),
                     1);
    assert_int_equal(raw_int(path, "SELECT events FROM rollouts"), 2);
    /* The chain goes on after the note, too. */
    record(s, ID, "promoted", "progressing", 2, 0.25, -1, 6000);
    assert_int_equal(expect_intact(path), 3);
    cn_store_close(s);
}

static void test_note_errors(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    char err[512] = "";
    cn_store_event ev = {.time_ms = 1, .type = "intent_refused", .actor = "bob", .detail = "d"};
    assert_int_equal(cn_store_note(s, "nope", &ev, err, sizeof err), CN_ENOTFOUND);
    assert_contains(err, "no rollout 'nope'");
    cn_store_event no_type = ev;
    no_type.type = NULL;
    assert_int_equal(cn_store_note(s, ID, &no_type, err, sizeof err), CN_EINVAL);
    cn_store_event no_detail = ev;
    no_detail.detail = NULL;
    assert_int_equal(cn_store_note(s, ID, &no_detail, err, sizeof err), CN_EINVAL);
    cn_store_event bad_data = ev;
    bad_data.data_json = "{not json";
    assert_int_equal(cn_store_note(s, ID, &bad_data, err, sizeof err), CN_EINVAL);
    assert_contains(err, "not JSON");
    assert_int_equal(cn_store_note(s, ID, NULL, err, sizeof err), CN_EINVAL);

    cn_store *r = open_readonly_ok(path);
    assert_int_equal(cn_store_note(r, ID, &ev, err, sizeof err), CN_EINVAL);
    assert_contains(err, "read-only");
    cn_store_close(r);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM events"), 0);
    assert_int_equal(raw_int(path, "SELECT events FROM rollouts"), 0);
    cn_store_close(s);
}

/* ---- attempts ------------------------------------------------------------ */

static cn_rollout_row second_attempt(void)
{
    return (cn_rollout_row){.id = (char *)ID, .attempt = 2, .service = (char *)"shop",
                            .version = (char *)"v2.1", .previous_version = (char *)"v1.9",
                            .author = (char *)"carol", .ai_assisted = true,
                            .policy = (char *)"strict", .plan_json = (char *)"{\"stages\":[1]}",
                            .state = (char *)"ignored", .stages = 5, .weight = 0.5,
                            .exit_code = 7, .created_ms = 9, .updated_ms = 50000};
}

static void test_new_attempt_refused_while_unfinished(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    record(s, ID, "stage_applied", "progressing", 1, 0.05, -1, 2000);
    cn_rollout_row row = second_attempt();
    char err[512] = "";
    assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_EBUSY);
    assert_contains(err, "rollout 'shop-v2' is progressing (attempt 1)");
    row.id = (char *)"nope";
    assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_ENOTFOUND);
    assert_contains(err, "no rollout 'nope'");
    row = second_attempt();
    row.version = NULL;
    assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_EINVAL);
    assert_int_equal(cn_store_new_attempt(s, NULL, err, sizeof err), CN_EINVAL);
    assert_int_equal(raw_int(path, "SELECT attempt FROM rollouts"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM attempts"), 1);
    cn_store_close(s);
}

static void test_new_attempt_wrong_number(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    record(s, ID, "rolled_back", "rolled_back", 0, 0, 3, 2000);
    cn_rollout_row row = second_attempt();
    char err[512] = "";
    int wrong[] = {1, 3, 0, -1};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        row.attempt = wrong[i];
        assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_EINVAL);
    }
    assert_contains(err, "ended attempt 1: the next is 2");
    assert_int_equal(raw_int(path, "SELECT attempt FROM rollouts"), 1);
    assert_int_equal(raw_int(path, "SELECT exit_code FROM rollouts"), 3);

    cn_store *r = open_readonly_ok(path);
    row.attempt = 2;
    assert_int_equal(cn_store_new_attempt(r, &row, err, sizeof err), CN_EINVAL);
    assert_contains(err, "read-only");
    cn_store_close(r);
    cn_store_close(s);
}

typedef struct attempts_seen {
    int n;
    int attempt[8];
    int64_t index[8];
} attempts_seen;

static int see_attempt(void *ctx, const cn_audit_entry *e)
{
    attempts_seen *a = ctx;
    if (a->n < 8) {
        a->attempt[a->n] = e->attempt;
        a->index[a->n] = e->index;
    }
    a->n++;
    return 0;
}

static void test_new_attempt_resets_and_chains_on(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    record(s, ID, "stage_applied", "progressing", 1, 0.05, -1, 2000);
    int64_t stale = 0;
    char err[512] = "";
    assert_int_equal(cn_store_intent_add(s, ID, "pause", "bob", NULL, 2500, &stale, err,
                                         sizeof err),
                     CN_OK);
    record(s, ID, "rolled_back", "rolled_back", 0, 0, 3, 3000);

    cn_rollout_row row = second_attempt();
    assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_OK);
    cn_rollout_row got;
    assert_int_equal(cn_store_get(s, ID, &got, NULL, 0), CN_OK);
    assert_int_equal(got.attempt, 2);
    assert_string_equal(got.service, "shop"); /* not the row's to change */
    assert_string_equal(got.version, "v2.1");
    assert_string_equal(got.previous_version, "v1.9");
    assert_string_equal(got.author, "carol");
    assert_true(got.ai_assisted);
    assert_string_equal(got.policy, "strict");
    assert_string_equal(got.plan_json, "{\"stages\":[1]}");
    assert_string_equal(got.state, "pending");
    assert_int_equal(got.stage, 0);
    assert_int_equal(got.stages, 5);
    assert_true(got.weight == 0.0);
    assert_int_equal(got.exit_code, -1);
    assert_null(got.machine_json);
    assert_int_equal(got.created_ms, 1000);
    assert_int_equal(got.updated_ms, 50000);
    cn_rollout_row_free(&got);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM attempts"), 2);
    assert_int_equal(raw_int(path, "SELECT started_ms FROM attempts WHERE attempt = 2"), 50000);
    assert_int_equal(raw_int(path, "SELECT ended_ms IS NULL FROM attempts WHERE attempt = 2"), 1);
    assert_int_equal(raw_int(path, "SELECT exit_code FROM attempts WHERE attempt = 1"), 3);

    /* The old attempt's unacted intent is closed, not left for the new one. */
    cn_intent_row ir;
    assert_int_equal(cn_store_intent_get(s, stale, &ir, err, sizeof err), CN_OK);
    assert_int_equal(ir.acted_ms, 50000);
    assert_string_equal(ir.result, "intent_expired: attempt 1 ended before it was acted on");
    cn_intent_row_free(&ir);

    /* A finished attempt 2 allows attempt 3; events carry their attempt. */
    record(s, ID, "started", "progressing", 0, 0, -1, 51000);
    cn_store_event ev = {.time_ms = 51500, .type = "intent_refused", .actor = "bob",
                         .detail = "note"};
    assert_int_equal(cn_store_note(s, ID, &ev, err, sizeof err), CN_OK);
    record(s, ID, "completed", "completed", 5, 1.0, 0, 52000);
    row.attempt = 3;
    row.updated_ms = 60000;
    assert_int_equal(cn_store_new_attempt(s, &row, err, sizeof err), CN_OK);
    record(s, ID, "started", "progressing", 0, 0, -1, 61000);

    attempts_seen a = {0};
    assert_int_equal(cn_store_audit_events(s, ID, see_attempt, &a, err, sizeof err), CN_OK);
    assert_int_equal(a.n, 6);
    int want[] = {1, 1, 2, 2, 2, 3};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(a.attempt[i], want[i]);
        assert_int_equal(a.index[i], i + 1);
    }
    assert_int_equal(expect_intact(path), 6);
    cn_store_close(s);
}

/* ---- intents ------------------------------------------------------------- */

static int64_t add_ok(cn_store *s, const char *intent, const char *actor, const char *reason,
                      int64_t now)
{
    int64_t id = -1;
    char err[512] = "";
    int rc = cn_store_intent_add(s, ID, intent, actor, reason, now, &id, err, sizeof err);
    if (rc)
        print_error("cn_store_intent_add: %s\n", err);
    assert_int_equal(rc, CN_OK);
    assert_true(id > 0);
    return id;
}

static void test_intent_add_and_get(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    record(s, ID, "measurement_ish", "progressing", 1, 0.05, -1, 1500);
    /* A relaxed commit before must not make the intent relaxed. */
    cn_store_event m = {.time_ms = 1600, .type = "measurement", .actor = "canary",
                        .detail = "m", .evidence_only = true};
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.05, .exit_code = -1};
    assert_int_equal(cn_store_record(s, ID, &m, &st, NULL, NULL, 0), CN_OK);
    assert_int_equal(synchronous_of(s), 1);

    const char *names[] = {"approve", "pause", "resume", "promote", "promote_full", "abort"};
    int64_t ids[6];
    for (int i = 0; i < 6; i++) {
        ids[i] = add_ok(s, names[i], "bob", i == 0 ? "looks good" : NULL, 2000 + i);
        if (i)
            assert_true(ids[i] > ids[i - 1]);
    }
    assert_int_equal(synchronous_of(s), 2);

    cn_intent_row row;
    char err[512] = "";
    assert_int_equal(cn_store_intent_get(s, ids[0], &row, err, sizeof err), CN_OK);
    assert_int_equal(row.id, ids[0]);
    assert_string_equal(row.rollout, ID);
    assert_string_equal(row.intent, "approve");
    assert_string_equal(row.actor, "bob");
    assert_string_equal(row.reason, "looks good");
    assert_int_equal(row.created_ms, 2000);
    assert_int_equal(row.acted_ms, 0);
    assert_null(row.result);
    cn_intent_row_free(&row);
    assert_int_equal(cn_store_intent_get(s, ids[4], &row, err, sizeof err), CN_OK);
    assert_string_equal(row.intent, "promote_full");
    assert_null(row.reason);
    cn_intent_row_free(&row);
    cn_intent_row_free(&row); /* zeroed: safe twice */
    cn_intent_row_free(NULL);

    assert_int_equal(cn_store_intent_get(s, 9999, &row, err, sizeof err), CN_ENOTFOUND);
    assert_contains(err, "no intent #9999");
    assert_int_equal(raw_int(path, "SELECT count(*) FROM intents WHERE acted_ms IS NULL"), 6);
    cn_store_close(s);
}

static void test_intent_add_errors(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    int64_t id = 77;
    char err[512] = "";
    assert_int_equal(cn_store_intent_add(s, "nope", "approve", "bob", NULL, 1, &id, err,
                                         sizeof err),
                     CN_ENOTFOUND);
    assert_contains(err, "no rollout 'nope'");
    const char *bad[] = {"approved", "Abort", "", "promote-full"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cn_store_intent_add(s, ID, bad[i], "bob", NULL, 1, &id, err, sizeof err),
                         CN_EINVAL);
        assert_contains(err, "unknown intent");
    }
    assert_int_equal(cn_store_intent_add(s, ID, NULL, "bob", NULL, 1, &id, err, sizeof err),
                     CN_EINVAL);
    assert_int_equal(cn_store_intent_add(s, ID, "abort", "", NULL, 1, &id, err, sizeof err),
                     CN_EINVAL);
    assert_contains(err, "names no user");
    assert_int_equal(cn_store_intent_add(s, ID, "abort", NULL, NULL, 1, &id, err, sizeof err),
                     CN_EINVAL);
    assert_int_equal(id, 77);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM intents"), 0);
    cn_store_close(s);
}

typedef struct pending {
    int n;
    int64_t ids[8];
    char intents[8][16];
    cn_store *s;      /* to mark each done from inside the walk */
    int stop_after;   /* 0: never */
} pending;

static int collect(void *ctx, const cn_intent_row *row)
{
    pending *p = ctx;
    if (p->n < 8) {
        p->ids[p->n] = row->id;
        snprintf(p->intents[p->n], sizeof p->intents[0], "%s", row->intent);
    }
    p->n++;
    if (p->s) {
        char err[512] = "";
        int rc = cn_store_intent_done(p->s, row->id, 9000, "paused: by the walk", err, sizeof err);
        if (rc)
            print_error("cn_store_intent_done: %s\n", err);
        assert_int_equal(rc, CN_OK);
    }
    return p->stop_after && p->n >= p->stop_after;
}

static void test_intents_pending_order(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    create(s, "other");
    /* Created out of time order: id order is what counts. */
    int64_t a = add_ok(s, "pause", "bob", NULL, 3000);
    int64_t b = add_ok(s, "resume", "bob", NULL, 1000);
    int64_t c = add_ok(s, "abort", "carol", "bad", 2000);
    int64_t other = -1;
    assert_int_equal(cn_store_intent_add(s, "other", "abort", "bob", NULL, 1, &other, NULL, 0),
                     CN_OK);
    char err[512] = "";
    assert_int_equal(cn_store_intent_done(s, b, 4000, "resumed: stage 1", err, sizeof err), CN_OK);

    pending p = {0};
    assert_int_equal(cn_store_intents_pending(s, ID, collect, &p, err, sizeof err), CN_OK);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.ids[0], a);
    assert_int_equal(p.ids[1], c);
    assert_string_equal(p.intents[0], "pause");
    assert_string_equal(p.intents[1], "abort");

    /* Stops when fn says so. */
    pending first = {.stop_after = 1};
    assert_int_equal(cn_store_intents_pending(s, ID, collect, &first, err, sizeof err), CN_OK);
    assert_int_equal(first.n, 1);
    assert_int_equal(first.ids[0], a);

    /* fn may mark them acted on as it goes; then none is pending. */
    pending marking = {.s = s};
    assert_int_equal(cn_store_intents_pending(s, ID, collect, &marking, err, sizeof err), CN_OK);
    assert_int_equal(marking.n, 2);
    pending none = {0};
    assert_int_equal(cn_store_intents_pending(s, ID, collect, &none, err, sizeof err), CN_OK);
    assert_int_equal(none.n, 0);
    /* Another rollout's intent is its own. */
    pending theirs = {0};
    assert_int_equal(cn_store_intents_pending(s, "other", collect, &theirs, err, sizeof err), CN_OK);
    assert_int_equal(theirs.n, 1);
    assert_int_equal(theirs.ids[0], other);
    /* An unknown rollout has none. */
    pending unknown = {0};
    assert_int_equal(cn_store_intents_pending(s, "nope", collect, &unknown, err, sizeof err), CN_OK);
    assert_int_equal(unknown.n, 0);
    assert_int_equal(cn_store_intents_pending(s, ID, NULL, NULL, err, sizeof err), CN_EINVAL);
    cn_store_close(s);
}

static void test_intent_done_once(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    int64_t id = add_ok(s, "approve", "bob", NULL, 1000);
    char err[512] = "";
    assert_int_equal(cn_store_intent_done(s, id, 2000, "approved: stage 2 approved by 'bob'",
                                          err, sizeof err),
                     CN_OK);
    assert_int_equal(synchronous_of(s), 2);
    assert_int_equal(cn_store_intent_done(s, id, 3000, "approval_refused: late", err, sizeof err),
                     CN_EEXIST);
    assert_contains(err, "already acted on: approved: stage 2 approved by 'bob'");
    cn_intent_row row;
    assert_int_equal(cn_store_intent_get(s, id, &row, err, sizeof err), CN_OK);
    assert_int_equal(row.acted_ms, 2000);
    assert_string_equal(row.result, "approved: stage 2 approved by 'bob'");
    cn_intent_row_free(&row);
    assert_int_equal(cn_store_intent_done(s, id + 100, 3000, "x: y", err, sizeof err),
                     CN_ENOTFOUND);
    assert_int_equal(cn_store_intent_done(s, id, 3000, NULL, err, sizeof err), CN_EINVAL);
    cn_store_close(s);
}

static void test_intents_on_readonly(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    int64_t id = add_ok(s, "abort", "bob", "on fire", 1000);
    cn_store_close(s);

    cn_store *r = open_readonly_ok(path);
    char err[512] = "";
    cn_intent_row row;
    assert_int_equal(cn_store_intent_get(r, id, &row, err, sizeof err), CN_OK);
    assert_string_equal(row.intent, "abort");
    assert_string_equal(row.reason, "on fire");
    cn_intent_row_free(&row);
    pending p = {0};
    assert_int_equal(cn_store_intents_pending(r, ID, collect, &p, err, sizeof err), CN_OK);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.ids[0], id);
    assert_int_equal(cn_store_intent_add(r, ID, "abort", "bob", NULL, 1, NULL, err, sizeof err),
                     CN_EINVAL);
    assert_contains(err, "read-only");
    assert_int_equal(cn_store_intent_done(r, id, 2, "aborted: x", err, sizeof err), CN_EINVAL);
    assert_contains(err, "read-only");
    cn_store_close(r);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM intents WHERE acted_ms IS NULL"), 1);
}

/* ---- the lease ----------------------------------------------------------- */

static cn_lease lease(const char *holder, const char *host, int64_t pid)
{
    cn_lease l;
    memset(&l, 0, sizeof l);
    snprintf(l.holder, sizeof l.holder, "%s", holder);
    snprintf(l.host, sizeof l.host, "%s", host);
    l.pid = pid;
    return l;
}

static void acquire_ok(cn_store *s, const cn_lease *me, int64_t now, const char *dead,
                       cn_lease *previous)
{
    char err[512] = "";
    int rc = cn_store_lease_acquire(s, ID, me, now, CN_LEASE_TTL_MS, dead, previous, err,
                                    sizeof err);
    if (rc)
        print_error("cn_store_lease_acquire: %s\n", err);
    assert_int_equal(rc, CN_OK);
}

static void expect_holder(cn_store *s, const char *holder, int64_t heartbeat)
{
    cn_lease got;
    char err[512] = "";
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.holder, holder);
    assert_int_equal(got.heartbeat_ms, heartbeat);
}

static void test_lease_free_and_own(void **state)
{
    cn_store *s = open_ok(db_path(state));
    create(s, ID);
    char err[512] = "";
    cn_lease got;
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_ENOTFOUND);
    assert_contains(err, "nobody holds the lease on rollout 'shop-v2'");

    cn_lease a = lease("hostA:100:1", "hostA", 100), prev;
    memset(&prev, 0x55, sizeof prev);
    acquire_ok(s, &a, 10000, NULL, &prev);
    assert_string_equal(prev.holder, ""); /* there was none */
    assert_int_equal(prev.heartbeat_ms, 0);
    assert_int_equal(synchronous_of(s), 2);
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.holder, "hostA:100:1");
    assert_string_equal(got.host, "hostA");
    assert_int_equal(got.pid, 100);
    assert_int_equal(got.heartbeat_ms, 10000);

    /* Its own lease again, fresh or not: taken, heartbeat moved. */
    acquire_ok(s, &a, 11000, NULL, &prev);
    assert_string_equal(prev.holder, "hostA:100:1");
    assert_int_equal(prev.heartbeat_ms, 10000);
    expect_holder(s, "hostA:100:1", 11000);
    acquire_ok(s, &a, 11500, NULL, NULL);
    expect_holder(s, "hostA:100:1", 11500);

    assert_int_equal(cn_store_lease_acquire(s, "nope", &a, 1, CN_LEASE_TTL_MS, NULL, NULL, err,
                                            sizeof err),
                     CN_ENOTFOUND);
    cn_lease empty = lease("", "h", 1);
    assert_int_equal(cn_store_lease_acquire(s, ID, &empty, 1, CN_LEASE_TTL_MS, NULL, NULL, err,
                                            sizeof err),
                     CN_EINVAL);
    assert_int_equal(cn_store_lease_acquire(s, ID, &a, 1, 0, NULL, NULL, err, sizeof err),
                     CN_EINVAL);
    /* A holder that fills the field has no room for its end: refused, so
     * what is stored always compares equal to what is read back. */
    cn_lease full = a;
    memset(full.holder, 'x', sizeof full.holder);
    assert_int_equal(cn_store_lease_acquire(s, ID, &full, 1, CN_LEASE_TTL_MS, NULL, NULL, err,
                                            sizeof err),
                     CN_EINVAL);
    assert_contains(err, "needs a holder of 1 to 127 characters");
    expect_holder(s, "hostA:100:1", 11500);
    cn_store_close(s);
}

static void test_lease_busy_expired_dead(void **state)
{
    cn_store *s = open_ok(db_path(state));
    create(s, ID);
    cn_lease a = lease("hostA:100:1", "hostA", 100), b = lease("hostB:200:2", "hostB", 200);
    acquire_ok(s, &a, 10000, NULL, NULL);

    /* Fresh, and at exactly ttl old: refused, with who holds it. */
    int64_t tries[] = {10000, 12500, 10000 + CN_LEASE_TTL_MS};
    for (size_t i = 0; i < 3; i++) {
        char err[512] = "";
        cn_lease cur;
        memset(&cur, 0, sizeof cur);
        assert_int_equal(cn_store_lease_acquire(s, ID, &b, tries[i], CN_LEASE_TTL_MS, NULL, &cur,
                                                err, sizeof err),
                         CN_EBUSY);
        assert_contains(err, "rollout 'shop-v2' is driven by 'hostA:100:1' (pid 100 on hostA)");
        assert_string_equal(cur.holder, "hostA:100:1");
        assert_string_equal(cur.host, "hostA");
        assert_int_equal(cur.pid, 100);
        assert_int_equal(cur.heartbeat_ms, 10000);
    }
    char err[512] = "";
    assert_int_equal(cn_store_lease_acquire(s, ID, &b, 12500, CN_LEASE_TTL_MS, NULL, NULL, err,
                                            sizeof err),
                     CN_EBUSY);
    assert_contains(err, "heartbeat 2.5 s ago");
    /* A dead_holder that is someone else changes nothing. */
    assert_int_equal(cn_store_lease_acquire(s, ID, &b, 12500, CN_LEASE_TTL_MS, "hostC:1:1", NULL,
                                            err, sizeof err),
                     CN_EBUSY);
    expect_holder(s, "hostA:100:1", 10000);

    /* One ms past ttl: taken over, the old lease reported. */
    cn_lease prev;
    acquire_ok(s, &b, 10000 + CN_LEASE_TTL_MS + 1, NULL, &prev);
    assert_string_equal(prev.holder, "hostA:100:1");
    expect_holder(s, "hostB:200:2", 10000 + CN_LEASE_TTL_MS + 1);

    /* The holder known to be dead: taken over at once. */
    acquire_ok(s, &a, 10000 + CN_LEASE_TTL_MS + 2, "hostB:200:2", &prev);
    assert_string_equal(prev.holder, "hostB:200:2");
    cn_lease got;
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.holder, "hostA:100:1");
    assert_string_equal(got.host, "hostA");
    assert_int_equal(got.pid, 100);
    cn_store_close(s);
}

static void test_lease_renew_and_release(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    cn_lease a = lease("hostA:100:1", "hostA", 100), b = lease("hostB:200:2", "hostB", 200);
    acquire_ok(s, &a, 10000, NULL, NULL);
    char err[512] = "";
    assert_int_equal(cn_store_lease_renew(s, ID, a.holder, 12000, err, sizeof err), CN_OK);
    assert_int_equal(synchronous_of(s), 1); /* NORMAL: a heartbeat waits for no disk */
    expect_holder(s, "hostA:100:1", 12000);

    assert_int_equal(cn_store_lease_renew(s, ID, b.holder, 13000, err, sizeof err), CN_EBUSY);
    assert_contains(err, "no longer held by 'hostB:200:2': held by 'hostA:100:1'");
    expect_holder(s, "hostA:100:1", 12000);

    /* Taken over: the old holder's renewal fails and it must stop. */
    acquire_ok(s, &b, 12000 + CN_LEASE_TTL_MS + 1, NULL, NULL);
    assert_int_equal(synchronous_of(s), 2);
    assert_int_equal(cn_store_lease_renew(s, ID, a.holder, 40000, err, sizeof err), CN_EBUSY);
    assert_contains(err, "held by 'hostB:200:2'");

    /* Someone else's release leaves the lease alone. */
    assert_int_equal(cn_store_lease_release(s, ID, a.holder, err, sizeof err), CN_OK);
    expect_holder(s, "hostB:200:2", 12000 + CN_LEASE_TTL_MS + 1);
    assert_int_equal(cn_store_lease_release(s, ID, b.holder, err, sizeof err), CN_OK);
    cn_lease got;
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_ENOTFOUND);
    assert_int_equal(cn_store_lease_release(s, ID, b.holder, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_lease_renew(s, ID, b.holder, 50000, err, sizeof err), CN_EBUSY);
    assert_contains(err, "held by nobody: it was released");
    assert_int_equal(cn_store_lease_get(s, ID, &got, err, sizeof err), CN_ENOTFOUND);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM leases"), 0);
    cn_store_close(s);
}

static void test_lease_on_readonly(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    cn_lease a = lease("hostA:100:1", "hostA", 100);
    acquire_ok(s, &a, 10000, NULL, NULL);

    cn_store *r = open_readonly_ok(path);
    char err[512] = "";
    cn_lease got;
    assert_int_equal(cn_store_lease_get(r, ID, &got, err, sizeof err), CN_OK);
    assert_string_equal(got.holder, "hostA:100:1");
    assert_int_equal(got.heartbeat_ms, 10000);
    assert_int_equal(cn_store_lease_acquire(r, ID, &a, 1, CN_LEASE_TTL_MS, NULL, NULL, err,
                                            sizeof err),
                     CN_EINVAL);
    assert_int_equal(cn_store_lease_renew(r, ID, a.holder, 2, err, sizeof err), CN_EINVAL);
    assert_int_equal(cn_store_lease_release(r, ID, a.holder, err, sizeof err), CN_EINVAL);
    assert_contains(err, "read-only");
    cn_store_close(r);
    /* The writer renews while a reader has the file open. */
    assert_int_equal(cn_store_lease_renew(s, ID, a.holder, 11000, err, sizeof err), CN_OK);
    expect_holder(s, "hostA:100:1", 11000);
    cn_store_close(s);
}

/* The version moves only with another connection's commit, and is read
 * at most once per CN_STORE_VERSION_MS. */
static void test_data_version(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    cn_store *other = open_ok(path);
    int64_t v = cn_store_data_version(s, 1000);
    assert_true(v >= 0);
    record(s, ID, "stage_applied", "progressing", 1, 0.1, -1, 2000); /* our own commit */
    assert_int_equal(cn_store_data_version(s, 1000 + CN_STORE_VERSION_MS), v);
    char err[512] = "";
    assert_int_equal(cn_store_intent_add(other, ID, "pause", "bob", NULL, 3000, NULL, err,
                                         sizeof err),
                     CN_OK);
    /* Within the window: the last value read. */
    assert_int_equal(cn_store_data_version(s, 1000 + 2 * CN_STORE_VERSION_MS - 1), v);
    assert_true(cn_store_data_version(s, 1000 + 2 * CN_STORE_VERSION_MS) != v);
    cn_store_close(other);
    cn_store_close(s);
}

/* ---- evidence held back ---------------------------------------------------- */

static int measure(cn_store *s, const char *id, int64_t t, const char *data, char *err,
                   size_t errlen)
{
    cn_store_event ev = {.time_ms = t, .type = "measurement", .actor = "canary",
                         .detail = "error_rate: pass", .data_json = data,
                         .evidence_only = true};
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.05, .exit_code = -1};
    return cn_store_record(s, id, &ev, &st, NULL, err, errlen);
}

static long long events_of(const char *path, const char *id)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE rollout = '%s'", id);
    return raw_int(path, sql);
}

static void test_held_until_flushed(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    create(s, "cart-v3");
    char err[512] = "";
    assert_int_equal(cn_store_defer_evidence(s, true, err, sizeof err), CN_OK);
    assert_int_equal(measure(s, ID, 2000, "{\"value\":0.01}", err, sizeof err), CN_OK);
    assert_int_equal(measure(s, "cart-v3", 2001, NULL, err, sizeof err), CN_OK);
    assert_int_equal(measure(s, ID, 2002, "{\"value\":0.02}", err, sizeof err), CN_OK);
    /* Held: another connection sees none of them yet. */
    assert_int_equal(cn_store_held_count(s), 3);
    assert_int_equal(events_of(path, ID), 0);
    assert_int_equal(cn_store_flush(s, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_held_count(s), 0);
    assert_int_equal(events_of(path, ID), 2);
    assert_int_equal(events_of(path, "cart-v3"), 1);
    /* In the order recorded, across rollouts, and chained. */
    assert_int_equal(raw_int(path, "SELECT min(time_ms) FROM events WHERE seq = "
                                   "(SELECT max(seq) FROM events)"),
                     2002);
    assert_int_equal(expect_intact(path), 3);
    /* Evidence leaves the state alone, held or not. */
    assert_int_equal(raw_int(path, "SELECT updated_ms FROM rollouts WHERE id = '" ID "'"), 1000);
    assert_int_equal(cn_store_flush(s, err, sizeof err), CN_OK); /* nothing held: fine */
    cn_store_close(s);
}

/* A decision's durable commit carries the measurements held before it,
 * in one transaction, first. */
static void test_held_written_before_a_decision(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    char err[512] = "";
    assert_int_equal(cn_store_defer_evidence(s, true, err, sizeof err), CN_OK);
    assert_int_equal(measure(s, ID, 2000, "{\"value\":0.01}", err, sizeof err), CN_OK);
    assert_int_equal(measure(s, ID, 2001, "{\"value\":0.09}", err, sizeof err), CN_OK);
    record(s, ID, "rolling_back", "rolling_back", 1, 0.05, -1, 2002);
    assert_int_equal(cn_store_held_count(s), 0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM events WHERE type = 'measurement' AND "
                                   "seq < (SELECT seq FROM events WHERE type = 'rolling_back')"),
                     2);
    assert_int_equal(raw_int(path, "SELECT updated_ms FROM rollouts WHERE id = '" ID "'"), 2002);
    /* A durable record is never held. */
    assert_int_equal(synchronous_of(s), 2);
    assert_int_equal(expect_intact(path), 3);
    cn_store_close(s);
}

/* Whatever write comes next carries them, also a lease's heartbeat; a
 * write that fails keeps them held. */
static void test_held_survive_a_failed_write(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    char err[512] = "";
    assert_int_equal(cn_store_defer_evidence(s, true, err, sizeof err), CN_OK);
    assert_int_equal(measure(s, ID, 2000, NULL, err, sizeof err), CN_OK);
    /* Nobody holds the lease: the heartbeat is refused and rolled back. */
    assert_int_equal(cn_store_lease_renew(s, ID, "hostA:1:1", 3000, err, sizeof err), CN_EBUSY);
    assert_int_equal(cn_store_held_count(s), 1);
    assert_int_equal(events_of(path, ID), 0);
    assert_int_equal(cn_store_intent_add(s, ID, "pause", "bob", NULL, 3001, NULL, err,
                                         sizeof err),
                     CN_OK);
    assert_int_equal(cn_store_held_count(s), 0);
    assert_int_equal(events_of(path, ID), 1);
    cn_store_close(s);
}

static void test_held_refusals(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    char err[512] = "";
    assert_int_equal(cn_store_defer_evidence(s, true, err, sizeof err), CN_OK);
    /* Data that is not JSON is refused when held, as when written. */
    assert_int_equal(measure(s, ID, 2000, "{not json", err, sizeof err), CN_EINVAL);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(cn_store_held_count(s), 0);
    /* A rollout that is not there is found when written: the write fails,
     * names it, and keeps the events held. */
    assert_int_equal(measure(s, "ghost", 2001, NULL, err, sizeof err), CN_OK);
    err[0] = '\0';
    assert_int_equal(cn_store_flush(s, err, sizeof err), CN_ENOTFOUND);
    assert_non_null(strstr(err, "'ghost'"));
    assert_int_equal(cn_store_held_count(s), 1);
    /* A driver that lost the lease lets go of its rollout's, only. */
    assert_int_equal(measure(s, ID, 2002, NULL, err, sizeof err), CN_OK);
    assert_int_equal(measure(s, "ghost", 2003, NULL, err, sizeof err), CN_OK);
    cn_store_held_drop(s, "ghost");
    assert_int_equal(cn_store_held_count(s), 1);
    assert_int_equal(cn_store_flush(s, err, sizeof err), CN_OK);
    assert_int_equal(events_of(path, ID), 1);
    /* Turning holding off writes what is held. */
    assert_int_equal(measure(s, ID, 2004, NULL, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_defer_evidence(s, false, err, sizeof err), CN_OK);
    assert_int_equal(events_of(path, ID), 2);
    assert_int_equal(measure(s, ID, 2005, NULL, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_held_count(s), 0);
    assert_int_equal(events_of(path, ID), 3);
    cn_store_close(s);
    cn_store *r = open_readonly_ok(path);
    assert_int_equal(cn_store_defer_evidence(r, true, err, sizeof err), CN_EINVAL);
    cn_store_close(r);
}

/* Closing writes what is held; past CN_STORE_MAX_HELD they are written at
 * once. */
static void test_held_written_at_close_and_when_many(void **state)
{
    const char *path = db_path(state);
    cn_store *s = open_ok(path);
    create(s, ID);
    char err[512] = "";
    assert_int_equal(cn_store_defer_evidence(s, true, err, sizeof err), CN_OK);
    for (int i = 0; i < CN_STORE_MAX_HELD; i++)
        assert_int_equal(measure(s, ID, 2000 + i, NULL, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_held_count(s), CN_STORE_MAX_HELD);
    assert_int_equal(measure(s, ID, 9000, NULL, err, sizeof err), CN_OK);
    assert_int_equal(cn_store_held_count(s), 0);
    assert_int_equal(events_of(path, ID), CN_STORE_MAX_HELD + 1);
    assert_int_equal(measure(s, ID, 9001, NULL, err, sizeof err), CN_OK);
    cn_store_close(s);
    assert_int_equal(events_of(path, ID), CN_STORE_MAX_HELD + 2);
    assert_int_equal(expect_intact(path), CN_STORE_MAX_HELD + 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_note_keeps_state),
        T(test_note_errors),
        T(test_new_attempt_refused_while_unfinished),
        T(test_new_attempt_wrong_number),
        T(test_new_attempt_resets_and_chains_on),
        T(test_intent_add_and_get),
        T(test_intent_add_errors),
        T(test_intents_pending_order),
        T(test_intent_done_once),
        T(test_intents_on_readonly),
        T(test_lease_free_and_own),
        T(test_lease_busy_expired_dead),
        T(test_lease_renew_and_release),
        T(test_lease_on_readonly),
        T(test_data_version),
        T(test_held_until_flushed),
        T(test_held_written_before_a_decision),
        T(test_held_survive_a_failed_write),
        T(test_held_refusals),
        T(test_held_written_at_close_and_when_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
