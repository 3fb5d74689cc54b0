/* The state database: opening it, deciding whether a file is ours, the
 * schema and its version, the connection's settings, and the statement
 * cache. Reading and writing rows is in store_rows.c, attempts, notes,
 * intents and leases in store_ops.c; docs/state.md describes the tables
 * for operators. */
#include "canary/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "canary/status.h"
#include "store_internal.h"

#define SCHEMA_VERSION 2
/* PRAGMA application_id marks the file as canary's ("CNRY"), so a database
 * of another program that happens to have user_version 1 is not misread. */
#define APPLICATION_ID 0x434E5259
/* Two canary processes on one file (a run and an operator's `canary abort`)
 * wait for each other's short transactions instead of failing at once. */
#define BUSY_TIMEOUT_MS 5000

/* Schema 1, created in one transaction on an empty file, and then
 * upgraded like any schema 1 file. Whole statements are constant text:
 * nothing from outside is ever spliced into SQL. */
const char cn_store_schema_v1[] =
    "CREATE TABLE rollouts ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " attempt INTEGER NOT NULL CHECK (attempt >= 1),"
    " service TEXT NOT NULL,"
    " version TEXT NOT NULL,"
    " previous_version TEXT,"
    " author TEXT,"
    " ai_assisted INTEGER NOT NULL CHECK (ai_assisted IN (0, 1)),"
    " policy TEXT,"
    " plan TEXT,"
    " state TEXT NOT NULL,"
    " stage INTEGER NOT NULL CHECK (stage >= 0),"
    " stages INTEGER NOT NULL CHECK (stages >= 0),"
    " weight REAL NOT NULL,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " machine TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE attempts ("
    " rollout TEXT NOT NULL REFERENCES rollouts(id),"
    " attempt INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " ended_ms INTEGER,"
    " exit_code INTEGER,"
    " PRIMARY KEY (rollout, attempt));"
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " rollout TEXT NOT NULL REFERENCES rollouts(id),"
    " attempt INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " data TEXT,"
    " prev_hash BLOB,"
    " hash BLOB);"
    "CREATE INDEX events_by_rollout ON events (rollout, seq);"
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    "CREATE TABLE intents ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " rollout TEXT NOT NULL REFERENCES rollouts(id),"
    " intent TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " reason TEXT,"
    " created_ms INTEGER NOT NULL,"
    " acted_ms INTEGER,"
    " result TEXT);"
    "CREATE INDEX intents_by_rollout ON intents (rollout, id);"
    "CREATE TABLE leases ("
    " rollout TEXT PRIMARY KEY NOT NULL REFERENCES rollouts(id),"
    " holder TEXT NOT NULL,"
    " pid INTEGER,"
    " host TEXT,"
    " heartbeat_ms INTEGER NOT NULL);"
    "PRAGMA application_id = 1129206361;" /* APPLICATION_ID */
    "PRAGMA user_version = 1;";

/* Schema 1 to 2: the audit chain's head per rollout (docs/state.md, "Audit
 * chain"). Nothing is recomputed: events written before have no hash and
 * are reported as unchained, and the chain starts at the next event. */
static const char SCHEMA_V2[] =
    "ALTER TABLE rollouts ADD COLUMN events INTEGER NOT NULL DEFAULT 0 CHECK (events >= 0);"
    "ALTER TABLE rollouts ADD COLUMN last_hash BLOB;"
    "PRAGMA user_version = 2;";

static const char *const SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",

    [ST_FIND] = "SELECT state, attempt, exit_code FROM rollouts WHERE id = ?1",
    [ST_INSERT_ROLLOUT] =
        "INSERT INTO rollouts (id, attempt, service, version, previous_version,"
        " author, ai_assisted, policy, plan, state, stage, stages, weight,"
        " exit_code, machine, created_ms, updated_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15, ?16, ?17)",
    [ST_INSERT_ATTEMPT] =
        "INSERT INTO attempts (rollout, attempt, started_ms) VALUES (?1, ?2, ?3)",
    [ST_GET] =
        "SELECT id, attempt, service, version, previous_version, author,"
        " ai_assisted, policy, plan, state, stage, stages, weight, exit_code,"
        " machine, created_ms, updated_ms FROM rollouts WHERE id = ?1",
    [ST_SET_STATE] =
        "UPDATE rollouts SET state = ?2, stage = ?3, weight = ?4, exit_code = ?5,"
        " machine = coalesce(?6, machine), updated_ms = ?7, events = ?8, last_hash = ?9"
        " WHERE id = ?1",
    /* The seq the next event gets, read before the insert because it is
     * hashed and events cannot be updated afterwards: AUTOINCREMENT's own
     * rule, the larger of the highest seq ever used and the highest
     * present, plus one. BEGIN IMMEDIATE keeps it ours until the insert. */
    [ST_CHAIN_HEAD] =
        "SELECT attempt, events, last_hash, max("
        "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(seq) FROM events), 0)) + 1 FROM rollouts WHERE id = ?1",
    [ST_SET_CHAIN] = "UPDATE rollouts SET events = ?2, last_hash = ?3 WHERE id = ?1",
    [ST_APPEND] =
        "INSERT INTO events (seq, rollout, attempt, time_ms, type, actor, detail, data,"
        " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_END_ATTEMPT] =
        "UPDATE attempts SET ended_ms = ?2, exit_code = ?3 WHERE rollout = ?1"
        " AND attempt = (SELECT attempt FROM rollouts WHERE id = ?1)"
        " AND ended_ms IS NULL",
    [ST_NEW_ATTEMPT] =
        "UPDATE rollouts SET attempt = ?2, version = ?3, previous_version = ?4, author = ?5,"
        " ai_assisted = ?6, policy = ?7, plan = ?8, stages = ?9, state = 'pending', stage = 0,"
        " weight = 0, exit_code = -1, machine = NULL, updated_ms = ?10 WHERE id = ?1",
    [ST_INTENTS_EXPIRE] =
        "UPDATE intents SET acted_ms = ?2, result = ?3 WHERE rollout = ?1 AND acted_ms IS NULL",
    [ST_INTENT_ADD] =
        "INSERT INTO intents (rollout, intent, actor, reason, created_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_INTENT_GET] =
        "SELECT id, rollout, intent, actor, reason, created_ms, acted_ms, result FROM intents"
        " WHERE id = ?1",
    [ST_INTENTS_PENDING] =
        "SELECT id, rollout, intent, actor, reason, created_ms, acted_ms, result FROM intents"
        " WHERE rollout = ?1 AND acted_ms IS NULL ORDER BY id",
    [ST_INTENT_DONE] =
        "UPDATE intents SET acted_ms = ?2, result = ?3 WHERE id = ?1 AND acted_ms IS NULL",
    [ST_LEASE_GET] = "SELECT holder, host, pid, heartbeat_ms FROM leases WHERE rollout = ?1",
    [ST_LEASE_PUT] =
        "INSERT INTO leases (rollout, holder, pid, host, heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (rollout) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,"
        " host = excluded.host, heartbeat_ms = excluded.heartbeat_ms",
    [ST_LEASE_RENEW] =
        "UPDATE leases SET heartbeat_ms = ?3 WHERE rollout = ?1 AND holder = ?2",
    [ST_LEASE_RELEASE] = "DELETE FROM leases WHERE rollout = ?1 AND holder = ?2",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

/* ---- messages and small helpers ----------------------------------------- */

int cn_store_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int cn_store_fail_db(cn_store *s, char *err, size_t errlen, int rc, const char *fmt, ...)
{
    /* The connection's message is the precise one ("UNIQUE constraint
     * failed: ...", a trigger's text); it belongs to rc only if the
     * connection's last error is rc. */
    const char *why = sqlite3_errstr(rc);
    if ((sqlite3_extended_errcode(s->db) & 0xff) == (rc & 0xff))
        why = sqlite3_errmsg(s->db);
    const char *hint = "";
    if ((rc & 0xff) == SQLITE_BUSY)
        hint = " (another process kept it locked for 5 s)";
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - (size_t)n, ": %s%s", why, hint);
    }
    return (rc & 0xff) == SQLITE_NOMEM ? CN_ENOMEM : CN_ESTORE;
}

int cn_store_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

void cn_store_rollback(cn_store *s)
{
    s->held_written = 0; /* rolled back with the rest: still held */
    if (!sqlite3_get_autocommit(s->db))
        cn_store_run(s->st[ST_ROLLBACK]);
}

int cn_store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    /* SQLITE_STATIC: the caller's strings outlive the step that uses them. */
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int cn_store_find(cn_store *s, const char *id)
{
    sqlite3_stmt *st = s->st[ST_FIND];
    int rc = cn_store_bind_text(st, 1, id);
    return rc == SQLITE_OK ? sqlite3_step(st) : rc;
}

int cn_store_sync(cn_store *s, bool relaxed)
{
    if (relaxed == s->relaxed)
        return SQLITE_OK;
    /* Not a cached statement: SQLite applies this pragma when it is
     * compiled, not when it is stepped. */
    int rc = sqlite3_exec(s->db, relaxed ? "PRAGMA synchronous = NORMAL"
                                         : "PRAGMA synchronous = FULL",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        s->relaxed = relaxed;
    return rc;
}

/* The failure of a statement run while opening: a file that is not SQLite
 * at all gets its own words, since that is the likely mistake (--state
 * pointing at some other file). */
static int open_fail(cn_store *s, char *err, size_t errlen, int rc, const char *doing)
{
    if ((rc & 0xff) == SQLITE_NOTADB)
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "'%s' is not a database; move it away or pass another --state path",
                             s->path);
    return cn_store_fail_db(s, err, errlen, rc, "state database '%s': could not %s", s->path,
                            doing);
}

/* Runs a constant one-row query and returns its first column as an
 * integer, or its text into buf when buf is not NULL. */
static int query(cn_store *s, const char *sql, long long *num, char *buf, size_t buflen,
                 char *err, size_t errlen, const char *doing)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (num)
                *num = sqlite3_column_int64(st, 0);
            if (buf) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                snprintf(buf, buflen, "%s", t ? (const char *)t : "");
            }
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR; /* the pragma is not supported: treat as a failure */
        }
    }
    int code = rc == SQLITE_OK ? CN_OK : open_fail(s, err, errlen, rc, doing);
    sqlite3_finalize(st);
    return code;
}

static int exec(cn_store *s, const char *sql, char *err, size_t errlen, const char *doing)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CN_OK : open_fail(s, err, errlen, rc, doing);
}

/* ---- opening ------------------------------------------------------------ */

/* Creates the directory the database goes in (the default .canary), but
 * only that one: a missing grandparent is more likely a typo in --state
 * than something to create. 0700 because the state names people and
 * versions that need not be world-readable. */
static int make_parent(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return CN_OK;
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir)
        return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
    memcpy(dir, path, n);
    dir[n] = '\0';
    int code = CN_OK;
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            code = cn_store_fail(err, errlen, CN_ESTORE,
                                 "cannot create state database '%s': '%s' is not a directory",
                                 path, dir);
    } else if (errno != ENOENT || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        code = cn_store_fail(err, errlen, CN_ESTORE,
                             "cannot create directory '%s' for state database '%s': %s", dir, path,
                             strerror(errno));
    }
    free(dir);
    return code;
}

enum { FILE_EMPTY, FILE_OLD, FILE_CURRENT };

/* Decides, without changing the file, whether it is empty (to be given
 * the schema), a canary database of an older schema (to be upgraded) or of
 * this one; refuses anything else. */
static int classify(cn_store *s, int *kind, char *err, size_t errlen)
{
    long long version = 0, app = 0, objects = 0;
    int code = query(s, "PRAGMA user_version", &version, NULL, 0, err, errlen,
                     "read its schema version");
    if (!code)
        code = query(s, "PRAGMA application_id", &app, NULL, 0, err, errlen,
                     "read its application id");
    if (!code)
        code = query(s, "SELECT count(*) FROM sqlite_master", &objects, NULL, 0, err, errlen,
                     "list its tables");
    if (code)
        return code;
    if (version == 0 && objects == 0 && (app == 0 || app == APPLICATION_ID)) {
        *kind = FILE_EMPTY;
        return CN_OK;
    }
    if (app != APPLICATION_ID || version <= 0)
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "'%s' is not a canary state database; move it away or pass "
                             "another --state path",
                             s->path);
    if (version > SCHEMA_VERSION)
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "state database '%s' was written by a newer canary (schema %lld, "
                             "this one knows %d); use that canary or another --state path",
                             s->path, version, SCHEMA_VERSION);
    s->schema = (int)version;
    *kind = version == SCHEMA_VERSION ? FILE_CURRENT : FILE_OLD;
    return CN_OK;
}

/* Creates or upgrades the schema under the write lock, after looking
 * again: another canary may have done it since classify() looked. A new
 * file gets schema 1 and then the same upgrade an old file gets, so the
 * upgrade is the path every database takes. */
static int upgrade_schema(cn_store *s, char *err, size_t errlen)
{
    int code = exec(s, "BEGIN IMMEDIATE", err, errlen, "start creating the schema");
    if (code)
        return code;
    int kind = FILE_CURRENT;
    code = classify(s, &kind, err, errlen);
    if (!code && kind == FILE_EMPTY)
        code = exec(s, cn_store_schema_v1, err, errlen, "create the schema");
    if (!code && kind != FILE_CURRENT)
        code = exec(s, SCHEMA_V2, err, errlen, "upgrade the schema from version 1 to 2");
    if (!code)
        code = exec(s, "COMMIT", err, errlen, "commit the schema");
    if (code && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (!code)
        s->schema = SCHEMA_VERSION;
    return code;
}

/* PRAGMA journal_mode = WAL, waiting like the busy timeout when another
 * process holds the lock it needs: SQLite does not call the busy handler
 * for this change (two first runs on a new file would collide). This
 * waits before any loop runs, as the busy timeout itself does. */
static int switch_to_wal(cn_store *s, char *mode, size_t len, char *err, size_t errlen)
{
    for (int waited = 0;; waited += 10) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(mode, len, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
        if (!busy || waited >= BUSY_TIMEOUT_MS)
            return rc == SQLITE_OK ? CN_OK
                                   : open_fail(s, err, errlen, rc, "switch to write-ahead logging");
        sqlite3_sleep(10);
    }
}

static int configure(cn_store *s, char *err, size_t errlen)
{
    int kind = FILE_CURRENT;
    /* Look before changing anything: a foreign or newer file is left as it
     * was, not even switched to WAL. One read transaction, so a schema
     * another process is creating right now is seen whole or not at all. */
    int code = exec(s, "BEGIN", err, errlen, "start reading its schema");
    if (!code)
        code = classify(s, &kind, err, errlen);
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, code ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    if (code)
        return code;
    char mode[32];
    code = switch_to_wal(s, mode, sizeof mode, err, errlen);
    if (code)
        return code;
    /* The reply is the mode now in force: SQLite keeps the old one when the
     * file system cannot give WAL its shared memory. */
    if (strcasecmp(mode, "wal") != 0)
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "state database '%s' cannot use write-ahead logging (journal mode "
                             "stays '%s'); put it on a local file system",
                             s->path, mode);
    /* FULL, not WAL's usual NORMAL: NORMAL syncs only at checkpoints, so a
     * power cut could lose a committed event after the shell has already
     * taken the action it announces (set a weight, rolled back). With FULL
     * every commit reaches the disk before cn_store_record() returns. */
    code = exec(s, "PRAGMA synchronous = FULL", err, errlen, "set synchronous=FULL");
    if (!code)
        code = exec(s, "PRAGMA foreign_keys = ON", err, errlen, "turn on foreign keys");
    if (!code && kind != FILE_CURRENT)
        code = upgrade_schema(s, err, errlen);
    return code;
}

static int prepare_all(cn_store *s, char *err, size_t errlen)
{
    for (int i = 0; i < ST_COUNT; i++) {
        /* A read-only connection may look at a schema 1 file, which it
         * cannot upgrade: only the statements that read are prepared. */
        if (s->readonly && i != ST_FIND && i != ST_GET && i != ST_INTENT_GET &&
            i != ST_INTENTS_PENDING && i != ST_LEASE_GET)
            continue;
        int rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK)
            return cn_store_fail_db(s, err, errlen, rc,
                                    "state database '%s' does not have canary's tables as "
                                    "expected (it may be damaged)",
                                    s->path);
    }
    return CN_OK;
}

/* Read-only: the file must exist and be a canary database already; no
 * pragma that writes (journal mode, schema) is run, so looking at a file
 * never changes it. */
static int configure_readonly(cn_store *s, char *err, size_t errlen)
{
    int kind = FILE_CURRENT;
    int code = classify(s, &kind, err, errlen);
    if (!code && kind == FILE_EMPTY)
        code = cn_store_fail(err, errlen, CN_ESTORE,
                             "state database '%s' is empty: no rollout was ever stored in it",
                             s->path);
    return code;
}

static int open_store(cn_store **out, const char *path, bool readonly, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return cn_store_fail(err, errlen, CN_EINVAL, "no place for the store given");
    *out = NULL;
    if (!path || !*path)
        return cn_store_fail(err, errlen, CN_EINVAL, "no state database path given");
    int code = CN_OK;
    if (readonly) {
        struct stat sb;
        if (stat(path, &sb) != 0)
            return cn_store_fail(err, errlen, errno == ENOENT ? CN_ENOTFOUND : CN_ESTORE,
                                 "no state database at '%s': %s", path, strerror(errno));
    } else {
        code = make_parent(path, err, errlen);
    }
    if (code)
        return code;
    cn_store *s = calloc(1, sizeof *s);
    if (!s)
        return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
    s->readonly = readonly;
    s->path = strdup(path);
    s->version = -1;
    if (!s->path) {
        code = cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
        goto fail;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!s->db)
            code = cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
        else
            code = cn_store_fail_db(s, err, errlen, rc, "cannot open state database '%s'", path);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    code = readonly ? configure_readonly(s, err, errlen) : configure(s, err, errlen);
    if (!code)
        code = prepare_all(s, err, errlen);
    if (code)
        goto fail;
    *out = s;
    return CN_OK;
fail:
    cn_store_close(s);
    return code;
}

int cn_store_open(cn_store **out, const char *path, char *err, size_t errlen)
{
    return open_store(out, path, false, err, errlen);
}

int cn_store_open_readonly(cn_store **out, const char *path, char *err, size_t errlen)
{
    return open_store(out, path, true, err, errlen);
}

void cn_store_close(cn_store *s)
{
    if (!s)
        return;
    (void)cn_store_flush(s, NULL, 0);
    cn_store_held_free(s);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    /* Every statement is finalized, so this closes (and, for the last
     * connection, checkpoints the WAL into the file). */
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

int64_t cn_store_data_version(cn_store *s, int64_t now_ms)
{
    sqlite3_stmt *st = s && s->st[ST_DATA_VERSION] ? s->st[ST_DATA_VERSION] : NULL;
    if (!st)
        return -1;
    if (s->version >= 0 && now_ms >= s->version_ms && now_ms - s->version_ms < CN_STORE_VERSION_MS)
        return s->version;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    s->version = v;
    s->version_ms = now_ms;
    return v;
}
