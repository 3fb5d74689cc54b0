/* Attempts, notes, operator intents and the lease: what operators' commands
 * and the process driving a rollout write besides its events (store.h).
 * As in store_rows.c, every write is one transaction taken with BEGIN
 * IMMEDIATE and every value a bound parameter; only a lease's heartbeat is
 * committed without waiting for the disk. */
#include "canary/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "store_internal.h"

static int refuse_readonly(cn_store *s, const char *doing, char *err, size_t errlen)
{
    return cn_store_fail(err, errlen, CN_EINVAL,
                         "state database '%s' was opened read-only; cannot %s", s->path, doing);
}


/* The failure rc of a write, with SQLite's reason, after which nothing is
 * left half-written. */
static int write_failed(cn_store *s, int rc, char *err, size_t errlen, const char *doing,
                        const char *id)
{
    int code = cn_store_fail_db(s, err, errlen, rc, "could not %s of rollout '%s' in '%s'", doing,
                                id, s->path);
    cn_store_rollback(s);
    return code;
}

/* ---- attempts, notes ----------------------------------------------------- */

/* A rollout's attempt and exit code, read under the write lock. */
typedef struct rollout_end {
    char state[32];
    int attempt, exit_code;
} rollout_end;

/* SQLITE_ROW with *end filled, SQLITE_DONE when there is no such rollout,
 * or an error. */
static int read_end(cn_store *s, const char *id, rollout_end *end)
{
    sqlite3_stmt *f = s->st[ST_FIND];
    int rc = cn_store_find(s, id);
    if (rc == SQLITE_ROW) {
        const unsigned char *state = sqlite3_column_text(f, 0);
        snprintf(end->state, sizeof end->state, "%s", state ? (const char *)state : "unknown");
        end->attempt = sqlite3_column_int(f, 1);
        end->exit_code = sqlite3_column_int(f, 2);
    }
    sqlite3_reset(f);
    return rc;
}

static int bind_attempt(sqlite3_stmt *u, const cn_rollout_row *row)
{
    int rc = cn_store_bind_text(u, 1, row->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(u, 2, row->attempt);
    const char *texts[] = {row->version, row->previous_version, row->author};
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = cn_store_bind_text(u, 3 + i, texts[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(u, 6, row->ai_assisted ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 7, row->policy);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 8, row->plan_json);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 9, row->stages);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 10, row->updated_ms);
    return rc;
}

/* The intents the attempt that ended never acted on are closed with it: an
 * `abort` meant for the old attempt must not stop the new one. */
static int expire_intents(cn_store *s, const cn_rollout_row *row, int ended)
{
    char result[128];
    snprintf(result, sizeof result,
             "intent_expired: attempt %d ended before it was acted on", ended);
    sqlite3_stmt *x = s->st[ST_INTENTS_EXPIRE];
    int rc = cn_store_bind_text(x, 1, row->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(x, 2, row->updated_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(x, 3, result, -1, SQLITE_TRANSIENT);
    return rc == SQLITE_OK ? cn_store_run(x) : rc;
}

int cn_store_new_attempt(cn_store *s, const cn_rollout_row *row, char *err, size_t errlen)
{
    if (!s || !row || !row->id || !*row->id)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, or no rollout id for a new attempt");
    if (s->readonly)
        return refuse_readonly(s, "start a new attempt", err, errlen);
    if (!row->version)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "the new attempt of rollout '%s' lacks its version", row->id);
    rollout_end end = {.attempt = 0};
    int rc = cn_store_begin(s, false);
    if (rc == SQLITE_OK)
        rc = read_end(s, row->id, &end);
    if (rc == SQLITE_DONE) {
        cn_store_rollback(s);
        return cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", row->id,
                             s->path);
    }
    if (rc == SQLITE_ROW) {
        int code = CN_OK;
        if (end.exit_code < 0)
            code = cn_store_fail(err, errlen, CN_EBUSY,
                                 "rollout '%s' is %s (attempt %d) and has not finished: resume "
                                 "or abort it, a new attempt starts only after the last ended",
                                 row->id, end.state, end.attempt);
        else if (row->attempt != end.attempt + 1)
            code = cn_store_fail(err, errlen, CN_EINVAL,
                                 "rollout '%s' ended attempt %d: the next is %d, not %d", row->id,
                                 end.attempt, end.attempt + 1, row->attempt);
        if (code) {
            cn_store_rollback(s);
            return code;
        }
        rc = bind_attempt(s->st[ST_NEW_ATTEMPT], row);
    }
    if (rc == SQLITE_OK)
        rc = cn_store_run(s->st[ST_NEW_ATTEMPT]);
    sqlite3_stmt *a = s->st[ST_INSERT_ATTEMPT];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 1, row->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(a, 2, row->attempt);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(a, 3, row->updated_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(a);
    if (rc == SQLITE_OK)
        rc = expire_intents(s, row, end.attempt);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    return rc == SQLITE_OK ? CN_OK
                           : write_failed(s, rc, err, errlen, "start a new attempt", row->id);
}

int cn_store_note(cn_store *s, const char *id, const cn_store_event *ev, char *err,
                  size_t errlen)
{
    if (!ev)
        return cn_store_fail(err, errlen, CN_EINVAL, "no event to note");
    /* A note is what an operator was told (a refusal): never relaxed. */
    cn_store_event durable = *ev;
    durable.evidence_only = false;
    return cn_store_write_event(s, id, &durable, NULL, NULL, err, errlen);
}

/* ---- operator intents ---------------------------------------------------- */

static const char *const INTENTS[] = {"approve", "pause", "resume", "promote", "promote_full",
                                      "abort"};

static bool intent_known(const char *intent)
{
    for (size_t i = 0; intent && i < sizeof INTENTS / sizeof INTENTS[0]; i++)
        if (!strcmp(intent, INTENTS[i]))
            return true;
    return false;
}

void cn_intent_row_free(cn_intent_row *row)
{
    if (!row)
        return;
    free(row->rollout);
    free(row->intent);
    free(row->actor);
    free(row->reason);
    free(row->result);
    memset(row, 0, sizeof *row);
}

/* A row of ST_INTENT_GET or ST_INTENTS_PENDING (same columns) into *row,
 * zeroed by the caller; freed again on failure. */
static int read_intent(cn_store *s, sqlite3_stmt *st, cn_intent_row *row, char *err,
                       size_t errlen)
{
    char **texts[] = {&row->rollout, &row->intent, &row->actor, &row->reason, &row->result};
    static const int cols[] = {1, 2, 3, 4, 7};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        if (cn_store_dup_column(st, cols[i], texts[i])) {
            cn_intent_row_free(row);
            return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
        }
    row->id = sqlite3_column_int64(st, 0);
    row->created_ms = sqlite3_column_int64(st, 5);
    row->acted_ms = sqlite3_column_int64(st, 6); /* NULL reads as 0 */
    bool acted = sqlite3_column_type(st, 6) != SQLITE_NULL;
    if (!row->rollout || !row->intent || !row->actor ||
        sqlite3_column_type(st, 5) != SQLITE_INTEGER || acted != (row->result != NULL)) {
        int64_t id = row->id;
        cn_intent_row_free(row);
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "intent #%" PRId64 " in '%s' is damaged: a column is missing", id,
                             s->path);
    }
    return CN_OK;
}

int cn_store_intent_add(cn_store *s, const char *rollout, const char *intent,
                        const char *actor, const char *reason, int64_t now_ms, int64_t *id,
                        char *err, size_t errlen)
{
    if (!s || !rollout)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store or no rollout id");
    if (s->readonly)
        return refuse_readonly(s, "add an intent", err, errlen);
    if (!intent_known(intent))
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "unknown intent '%s': approve, pause, resume, promote, promote_full "
                             "or abort",
                             intent ? intent : "(none)");
    if (!actor || !*actor)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "intent '%s' on rollout '%s' names no user who asks for it", intent,
                             rollout);
    int rc = cn_store_begin(s, false);
    if (rc == SQLITE_OK) {
        rc = cn_store_find(s, rollout);
        sqlite3_reset(s->st[ST_FIND]);
        if (rc == SQLITE_DONE) {
            cn_store_rollback(s);
            return cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", rollout,
                                 s->path);
        }
        if (rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    sqlite3_stmt *a = s->st[ST_INTENT_ADD];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 1, rollout);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 2, intent);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 3, actor);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 4, reason);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(a, 5, now_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(a);
    int64_t added = sqlite3_last_insert_rowid(s->db);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    if (rc != SQLITE_OK)
        return write_failed(s, rc, err, errlen, "add an intent", rollout);
    if (id)
        *id = added;
    return CN_OK;
}

int cn_store_intents_pending(cn_store *s, const char *rollout, cn_intent_fn fn, void *ctx,
                             char *err, size_t errlen)
{
    if (!s || !rollout || !fn)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or callback");
    /* Read to the end before calling fn, which may write to the same
     * connection (intent_done): SQLite leaves a scan of a table changed
     * under it undefined. There are few, and those of one rollout. */
    sqlite3_stmt *st = s->st[ST_INTENTS_PENDING];
    cn_intent_row *rows = NULL;
    size_t n = 0, cap = 0;
    int code = CN_OK;
    int rc = cn_store_bind_text(st, 1, rollout);
    while (!code && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (n == cap) {
            size_t grown = cap ? 2 * cap : 8;
            cn_intent_row *more = realloc(rows, grown * sizeof *more);
            if (!more) {
                code = cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
                break;
            }
            rows = more;
            cap = grown;
        }
        memset(&rows[n], 0, sizeof rows[n]);
        code = read_intent(s, st, &rows[n], err, errlen);
        if (!code)
            n++;
    }
    if (!code && rc != SQLITE_DONE)
        code = cn_store_fail_db(s, err, errlen, rc,
                                "could not read the intents of rollout '%s' from '%s'", rollout,
                                s->path);
    sqlite3_reset(st);
    for (size_t i = 0; !code && i < n; i++)
        if (fn(ctx, &rows[i]))
            break;
    for (size_t i = 0; i < n; i++)
        cn_intent_row_free(&rows[i]);
    free(rows);
    return code;
}

/* Reads intent id with ST_INTENT_GET: CN_OK, CN_ENOTFOUND or a failure. */
static int get_intent(cn_store *s, int64_t id, cn_intent_row *row, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->st[ST_INTENT_GET];
    int code = CN_OK;
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        code = read_intent(s, st, row, err, errlen);
    else if (rc == SQLITE_DONE)
        code = cn_store_fail(err, errlen, CN_ENOTFOUND, "no intent #%" PRId64 " in '%s'", id,
                             s->path);
    else
        code = cn_store_fail_db(s, err, errlen, rc, "could not read intent #%" PRId64 " from '%s'",
                                id, s->path);
    sqlite3_reset(st);
    return code;
}

int cn_store_intent_get(cn_store *s, int64_t id, cn_intent_row *row, char *err, size_t errlen)
{
    if (!row)
        return cn_store_fail(err, errlen, CN_EINVAL, "no row to read into");
    memset(row, 0, sizeof *row);
    if (!s)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store");
    return get_intent(s, id, row, err, errlen);
}

int cn_store_intent_done(cn_store *s, int64_t id, int64_t now_ms, const char *result,
                         char *err, size_t errlen)
{
    if (!s || !result)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, or no result for intent #%" PRId64,
                             id);
    if (s->readonly)
        return refuse_readonly(s, "mark an intent acted on", err, errlen);
    int rc = cn_store_begin(s, false);
    if (rc != SQLITE_OK)
        return cn_store_fail_db(s, err, errlen, rc, "could not mark intent #%" PRId64 " in '%s'",
                                id, s->path);
    cn_intent_row row = {0};
    int code = get_intent(s, id, &row, err, errlen);
    if (!code && row.result)
        code = cn_store_fail(err, errlen, CN_EEXIST,
                             "intent #%" PRId64 " (%s by '%s') was already acted on: %s", id,
                             row.intent, row.actor, row.result);
    if (code) {
        cn_intent_row_free(&row);
        cn_store_rollback(s);
        return code;
    }
    sqlite3_stmt *u = s->st[ST_INTENT_DONE];
    rc = sqlite3_bind_int64(u, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 2, now_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 3, result);
    if (rc == SQLITE_OK)
        rc = cn_store_run(u);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    if (rc != SQLITE_OK)
        code = write_failed(s, rc, err, errlen, "mark an intent acted on", row.rollout);
    cn_intent_row_free(&row);
    return code;
}

/* ---- the lease ----------------------------------------------------------- */

/* Reads rollout id's lease: SQLITE_ROW with *out filled, SQLITE_DONE when
 * nobody holds it, or an error. */
static int read_lease(cn_store *s, const char *id, cn_lease *out)
{
    sqlite3_stmt *st = s->st[ST_LEASE_GET];
    int rc = cn_store_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        const unsigned char *holder = sqlite3_column_text(st, 0);
        const unsigned char *host = sqlite3_column_text(st, 1);
        snprintf(out->holder, sizeof out->holder, "%s", holder ? (const char *)holder : "");
        snprintf(out->host, sizeof out->host, "%s", host ? (const char *)host : "");
        out->pid = sqlite3_column_int64(st, 2);
        out->heartbeat_ms = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return rc;
}

/* "'HOLDER' (pid N on HOST), heartbeat 1.2 s ago", for messages. */
static void describe(const cn_lease *l, int64_t now_ms, char *buf, size_t len)
{
    snprintf(buf, len, "'%s' (pid %" PRId64 " on %s), heartbeat %.1f s ago", l->holder, l->pid,
             l->host[0] ? l->host : "an unknown host", (double)(now_ms - l->heartbeat_ms) / 1000.0);
}

/* A holder that fits cn_lease.holder, so what is stored compares equal to
 * what is read back. */
static bool fits(const char *text, size_t size)
{
    return text && strnlen(text, size) < size;
}

int cn_store_lease_acquire(cn_store *s, const char *id, const cn_lease *me, int64_t now_ms,
                           int64_t ttl_ms, const char *dead_holder, cn_lease *current,
                           char *err, size_t errlen)
{
    if (current)
        memset(current, 0, sizeof *current);
    if (!s || !id || !me)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or holder");
    if (s->readonly)
        return refuse_readonly(s, "take a lease", err, errlen);
    if (!fits(me->holder, sizeof me->holder) || !me->holder[0] || !fits(me->host, sizeof me->host))
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "the lease on rollout '%s' needs a holder of 1 to %zu characters "
                             "and a host of at most %zu",
                             id, sizeof me->holder - 1, sizeof me->host - 1);
    if (ttl_ms <= 0)
        return cn_store_fail(err, errlen, CN_EINVAL, "a lease's ttl must be positive, not %" PRId64,
                             ttl_ms);
    cn_lease held;
    bool found = false;
    int rc = cn_store_begin(s, false);
    if (rc == SQLITE_OK) {
        rc = cn_store_find(s, id);
        sqlite3_reset(s->st[ST_FIND]);
        if (rc == SQLITE_DONE) {
            cn_store_rollback(s);
            return cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", id, s->path);
        }
        if (rc == SQLITE_ROW)
            rc = read_lease(s, id, &held);
        found = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK && found && strcmp(held.holder, me->holder) != 0 &&
        held.heartbeat_ms >= now_ms - ttl_ms &&
        !(dead_holder && !strcmp(held.holder, dead_holder))) {
        cn_store_rollback(s);
        if (current)
            *current = held;
        char who[256];
        describe(&held, now_ms, who, sizeof who);
        return cn_store_fail(err, errlen, CN_EBUSY,
                             "rollout '%s' is driven by %s; it may be taken over after %.0f s "
                             "without a heartbeat",
                             id, who, (double)ttl_ms / 1000.0);
    }
    sqlite3_stmt *p = s->st[ST_LEASE_PUT];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(p, 1, id);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(p, 2, me->holder);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(p, 3, me->pid);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(p, 4, me->host[0] ? me->host : NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(p, 5, now_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(p);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    if (rc != SQLITE_OK)
        return write_failed(s, rc, err, errlen, "take the lease", id);
    if (current && found)
        *current = held;
    return CN_OK;
}

int cn_store_lease_renew(cn_store *s, const char *id, const char *holder, int64_t now_ms,
                         char *err, size_t errlen)
{
    if (!s || !id || !holder)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or holder");
    if (s->readonly)
        return refuse_readonly(s, "renew a lease", err, errlen);
    /* A heartbeat announces nothing: lost in a power cut, it only lets a
     * takeover come a little sooner. */
    int rc = cn_store_begin(s, true);
    sqlite3_stmt *u = s->st[ST_LEASE_RENEW];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 1, id);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 2, holder);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 3, now_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(u);
    if (rc == SQLITE_OK && sqlite3_changes(s->db) == 0) {
        cn_lease now_held;
        char who[256] = "nobody: it was released";
        rc = read_lease(s, id, &now_held);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return write_failed(s, rc, err, errlen, "renew the lease", id);
        if (rc == SQLITE_ROW)
            describe(&now_held, now_ms, who, sizeof who);
        cn_store_rollback(s);
        return cn_store_fail(err, errlen, CN_EBUSY,
                             "the lease on rollout '%s' is no longer held by '%s': held by %s; "
                             "stop driving it",
                             id, holder, who);
    }
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    return rc == SQLITE_OK ? CN_OK : write_failed(s, rc, err, errlen, "renew the lease", id);
}

int cn_store_lease_release(cn_store *s, const char *id, const char *holder, char *err,
                           size_t errlen)
{
    if (!s || !id || !holder)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or holder");
    if (s->readonly)
        return refuse_readonly(s, "release a lease", err, errlen);
    int rc = cn_store_begin(s, false);
    sqlite3_stmt *d = s->st[ST_LEASE_RELEASE];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(d, 1, id);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(d, 2, holder);
    if (rc == SQLITE_OK)
        rc = cn_store_run(d);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    return rc == SQLITE_OK ? CN_OK : write_failed(s, rc, err, errlen, "release the lease", id);
}

int cn_store_lease_get(cn_store *s, const char *id, cn_lease *out, char *err, size_t errlen)
{
    if (!s || !id || !out)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or lease to fill");
    memset(out, 0, sizeof *out);
    int rc = read_lease(s, id, out);
    if (rc == SQLITE_ROW)
        return CN_OK;
    if (rc == SQLITE_DONE)
        return cn_store_fail(err, errlen, CN_ENOTFOUND, "nobody holds the lease on rollout '%s'",
                             id);
    return cn_store_fail_db(s, err, errlen, rc, "could not read the lease on rollout '%s' from '%s'",
                            id, s->path);
}
