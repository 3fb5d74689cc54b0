/*
 * store_internal.h: what store.c (opening, schema), store_rows.c
 * (reading and writing rollouts and events) and store_ops.c (attempts,
 * notes, intents, leases) share.
 *
 * Contract: a cn_store owns one SQLite connection, a copy of its path for
 * messages, and the statements it runs often, prepared once at open and
 * finalized at close. The helpers put a message into the caller's err
 * buffer (which may be NULL) and return the CN_E* code to pass on.
 */
#ifndef CANARY_STORE_INTERNAL_H
#define CANARY_STORE_INTERNAL_H

#include <jansson.h>
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
    ST_FIND,           /* state, attempt, exit_code of a rollout */
    ST_INSERT_ROLLOUT,
    ST_INSERT_ATTEMPT,
    ST_GET,            /* every column of a rollout */
    ST_SET_STATE,
    ST_CHAIN_HEAD,     /* attempt, events, last_hash of a rollout, and the next seq */
    ST_SET_CHAIN,      /* events and last_hash, for evidence that changes no state */
    ST_APPEND,         /* an event with its seq and hashes */
    ST_END_ATTEMPT,
    ST_NEW_ATTEMPT,    /* the rollouts row reset for a new attempt */
    ST_INTENTS_EXPIRE, /* the intents a finished attempt never acted on */
    ST_INTENT_ADD,
    ST_INTENT_GET,
    ST_INTENTS_PENDING,
    ST_INTENT_DONE,
    ST_LEASE_GET,
    ST_LEASE_PUT,      /* insert, or replace the holder of, a rollout's lease */
    ST_LEASE_RENEW,
    ST_LEASE_RELEASE,
    ST_DATA_VERSION,   /* PRAGMA data_version: moves when another connection commits */
    ST_COUNT
};

/* An evidence event held back by a deferring store (store_pending.c): its
 * strings in one block, its data already parsed (checked when held). */
typedef struct cn_store_held {
    char *id;      /* the block: id, type, actor, detail, data_json */
    cn_store_event ev;
    json_t *data;  /* NULL when data_json is NULL */
} cn_store_held;

struct cn_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    bool relaxed; /* synchronous=NORMAL is in force */
    bool readonly; /* cn_store_open_readonly: only the statements that read are
                      prepared (ST_FIND, ST_GET, ST_INTENT_GET, ST_INTENTS_PENDING,
                      ST_LEASE_GET) */
    int schema;    /* the file's user_version: 1 only when read-only */
    int64_t version, version_ms; /* cn_store_data_version's last read, and when;
                                    version -1: none yet */
    bool defer;    /* cn_store_defer_evidence: evidence is held back */
    cn_store_held *held; /* in the order recorded */
    size_t held_count, held_cap;
    size_t held_written; /* written by the open transaction, dropped at its commit */
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

/* Binds v to parameter i, or NULL when v is NULL; v must outlive the step. */
int cn_store_bind_text(sqlite3_stmt *st, int i, const char *v);

/* A copy of text column i into *out (free() it); NULL stays NULL.
 * CN_ENOMEM when out of memory. */
int cn_store_dup_column(sqlite3_stmt *st, int i, char **out);

/* Looks rollout id up with ST_FIND: SQLITE_ROW (the statement then holds
 * its state, attempt and exit code until the caller resets it),
 * SQLITE_DONE when there is none, or an error. */
int cn_store_find(cn_store *s, const char *id);

/* Sets synchronous=NORMAL (relaxed: commits that announce nothing, such as
 * a measurement or a lease's heartbeat) or FULL for the next transaction;
 * SQLITE_OK or the error. */
int cn_store_sync(cn_store *s, bool relaxed);

/* BEGIN IMMEDIATE after choosing how the commit waits for the disk, then
 * the evidence held back, so that it precedes whatever the transaction
 * writes and its commit carries it. SQLITE_OK or the error; on an error
 * the caller rolls back (cn_store_rollback), and the evidence stays held. */
int cn_store_begin(cn_store *s, bool relaxed);
/* COMMIT; once it succeeded, the held evidence it wrote is let go. */
int cn_store_commit(cn_store *s);
/* Holds an evidence event back (a deferring store): copied, its data
 * parsed (CN_EINVAL when it is not JSON); written by the next transaction
 * or cn_store_flush. Past CN_STORE_MAX_HELD events it flushes at once. */
int cn_store_hold(cn_store *s, const char *id, const cn_store_event *ev, char *err,
                  size_t errlen);
/* Frees what is held without writing it (closing). */
void cn_store_held_free(cn_store *s);
/* Appends a held event to its rollout's log inside the open transaction,
 * chained: SQLITE_OK, SQLITE_NOTFOUND when the rollout is gone, or the
 * error. */
int cn_store_append_held(cn_store *s, const cn_store_held *h);
/* cn_audit_canonical over data already parsed (NULL: null). */
int cn_audit_canonical_parsed(const char *rollout, int attempt, int64_t index, int64_t seq,
                              const cn_store_event *ev, json_t *data, char **out);

/* Appends ev to rollout id's log, chained, in one transaction: with st,
 * the rollout's state moves too (unless ev is evidence_only), and an exit
 * code other than -1 closes the attempt; with st NULL only the chain head
 * moves. Durable unless ev is evidence_only. Checks ev's strings; the
 * caller checks st. Errors as cn_store_record. */
int cn_store_write_event(cn_store *s, const char *id, const cn_store_event *ev,
                         const cn_store_state *st, int64_t *seq, char *err, size_t errlen);

#endif
