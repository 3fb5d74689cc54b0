/*
 * store_internal.h: what store.c (opening, schema) and store_rows.c
 * (reading and writing rollouts and events) share.
 *
 * Contract: a cn_store owns one SQLite connection, a copy of its path for
 * messages, and the statements it runs often, prepared once at open and
 * finalized at close. The helpers put a message into the caller's err
 * buffer (which may be NULL) and return the CN_E* code to pass on.
 */
#ifndef CANARY_STORE_INTERNAL_H
#define CANARY_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/status.h"
#include "canary/store.h"

/* The cached statements; the SQL is in store.c. */
enum {
    ST_BEGIN,          /* BEGIN IMMEDIATE */
    ST_COMMIT,
    ST_ROLLBACK,
    ST_FIND,           /* state, attempt of a rollout */
    ST_INSERT_ROLLOUT,
    ST_INSERT_ATTEMPT,
    ST_GET,            /* every column of a rollout */
    ST_SET_STATE,
    ST_CHAIN_HEAD,     /* attempt, events, last_hash of a rollout, and the next seq */
    ST_SET_CHAIN,      /* events and last_hash, for evidence that changes no state */
    ST_APPEND,         /* an event with its seq and hashes */
    ST_END_ATTEMPT,
    ST_COUNT
};

struct cn_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    bool relaxed; /* synchronous=NORMAL is in force */
    bool readonly; /* cn_store_open_readonly: only ST_FIND and ST_GET are prepared */
    int schema;    /* the file's user_version: 1 only when read-only */
};

/* The schema 1 script, for the migration test (a schema 1 file as the
 * canary before the audit chain created it). */
extern const char cn_store_schema_v1[];


/* Formats a message into err and returns code. */
int cn_store_fail(char *err, size_t errlen, int code, const char *fmt, ...) CN_PRINTF(4, 5);

/* Formats "<what>: <sqlite's reason>" into err for the failure rc, and
 * returns CN_ESTORE (CN_ENOMEM when SQLite ran out of memory). Call it
 * before anything else runs on the connection, which would replace the
 * reason. */
int cn_store_fail_db(cn_store *s, char *err, size_t errlen, int rc, const char *fmt, ...)
    CN_PRINTF(5, 6);

/* Steps a statement that returns no rows and resets it: SQLITE_OK, or the
 * error code (the reason stays readable through sqlite3_errmsg). */
int cn_store_run(sqlite3_stmt *st);

/* Rolls back the open transaction, if any; errors are ignored, because a
 * failed rollback leaves nothing committed either. */
void cn_store_rollback(cn_store *s);

#endif
