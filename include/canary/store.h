/*
 * store.h: durable state: rollouts and their append-only event log, in
 * SQLite (shell).
 *
 * Contract: one database file (default .canary/state.db), WAL journal,
 * synchronous=FULL: when cn_store_record() returns CN_OK the event and the
 * rollout's new state are on disk, so the shell may then take the action
 * the event announces (state is written before the action it records).
 * Only events marked evidence_only (measurements, which announce nothing)
 * skip the wait; the next durable commit carries them to disk.
 * Events are never updated or deleted (triggers refuse it), and each is
 * chained to the one before it of the same rollout by a SHA-256 hash (the
 * audit chain, below), so a row changed or deleted by someone who could
 * write the file is found by cn_store_audit_verify(). Besides rollouts and
 * events it keeps attempts (--new-attempt), operators' requests (intents)
 * and a lease per rollout (one driver), below. PRAGMA user_version is the
 * schema version (2);
 * a schema 1 file is upgraded when opened for writing, and a database from
 * a newer canary, or a database that is not canary's, is refused rather
 * than misread or changed. docs/state.md describes the tables.
 *
 * Functions return CN_OK or a CN_E* code with the reason in err (which may
 * be NULL); nothing here exits or prints. A damaged file gives CN_ESTORE,
 * never a crash. A cn_store is one connection, for one thread; several
 * processes may open the same file (writers wait up to 5 s for each other).
 */
#ifndef CANARY_STORE_H
#define CANARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cn_store cn_store;

/* Opens the database at path, creating the file, and its directory (the
 * last component only, mode 0700) when that is missing, and the schema when
 * the file is empty; a schema 1 file is upgraded to 2 in one transaction. *out is NULL on failure. CN_ESTORE when it cannot be
 * opened or is not a canary database (err names the path); CN_EINVAL when
 * path is NULL or empty. */
int cn_store_open(cn_store **out, const char *path, char *err, size_t errlen);
/* Opens an existing canary database for reading only (`canary status`,
 * `history`, `audit`): nothing is created, not the file, its directory or
 * the schema, no setting is written and nothing is upgraded (a schema 1
 * file is read as it is: its events are all unchained). CN_ENOTFOUND when
 * path does not exist (err: "no state database at 'PATH': ..."); CN_ESTORE
 * as cn_store_open, and for an empty file. Every write on such a store
 * (cn_store_create, cn_store_record and those below) is refused with
 * CN_EINVAL; reads, also of intents and the lease, work. */
int cn_store_open_readonly(cn_store **out, const char *path, char *err, size_t errlen);
/* Closes s (NULL is fine), writing the evidence it holds first when it can;
 * flush before to know whether that worked. */
void cn_store_close(cn_store *s);

/* A rollout as stored. Strings are owned by the caller when writing, and by
 * the row (free with cn_rollout_row_free) when read. id, service, version
 * and state are required; the other strings may be NULL. */
typedef struct cn_rollout_row {
    char *id;
    int attempt;            /* 1 for the first */
    char *service, *version, *previous_version, *author;
    bool ai_assisted;
    char *policy;           /* the policy's name */
    char *plan_json;        /* the plan as `canary plan -o json` prints it */
    char *state;            /* "pending", "progressing", ... */
    unsigned stage, stages;
    double weight;          /* fraction on the new version */
    int exit_code;          /* -1 while not finished */
    char *machine_json;     /* the state machine's snapshot, for resume; may be NULL */
    int64_t created_ms, updated_ms; /* wall clock, ms since the epoch */
} cn_rollout_row;

/* Frees the strings of a row read by cn_store_get and zeroes it; safe on a
 * zeroed row and on NULL. */
void cn_rollout_row_free(cn_rollout_row *row);

/* Inserts row (state, stage, weight... as given) and the row of its attempt,
 * in one transaction. CN_EEXIST when the id is already stored (err says in
 * which state and attempt); CN_EINVAL when a required string is missing,
 * attempt is below 1 or weight is not finite. */
int cn_store_create(cn_store *s, const cn_rollout_row *row, char *err, size_t errlen);

/* Reads the rollout id into *row (zeroed first). CN_ENOTFOUND when there is
 * none. */
int cn_store_get(cn_store *s, const char *id, cn_rollout_row *row, char *err, size_t errlen);

/* Which rollouts cn_store_list returns. */
typedef struct cn_store_filter {
    const char *service;    /* only this service; NULL: every one */
    int64_t since_ms;       /* only those created at or after; 0: any time */
} cn_store_filter;

/* Reads the rollouts that pass f (NULL: all of them), newest first
 * (created_ms, then id, descending), into *rows, an array of *n rows that
 * the caller frees with cn_rollout_rows_free (NULL when *n is 0).
 * On failure *rows is NULL and *n is 0. */
int cn_store_list(cn_store *s, const cn_store_filter *f, cn_rollout_row **rows, size_t *n,
                  char *err, size_t errlen);
/* Frees what cn_store_list returned; NULL is fine. */
void cn_rollout_rows_free(cn_rollout_row *rows, size_t n);

/* One entry of the event log. */
typedef struct cn_store_event {
    int64_t time_ms;        /* wall clock */
    const char *type;       /* "stage_applied", "measurement", ... */
    const char *actor;      /* "canary" for automatic decisions, else the user */
    const char *detail;     /* the evidence in words */
    const char *data_json;  /* structured evidence (values, thresholds); may be NULL */
    bool evidence_only;     /* announces no action (a measurement): committed without
                               waiting for the disk, and the rollout's state and
                               updated_ms are left as they are (only its chain head,
                               events and last_hash, moves). The next durable commit makes
                               it durable too, because WAL frames reach the disk in order,
                               and every event that announces an action is durable. */
} cn_store_event;

/* The rollout's state after the event. */
typedef struct cn_store_state {
    const char *state;
    unsigned stage;
    double weight;
    int exit_code;          /* -1 while not finished */
    const char *machine_json; /* may be NULL: keep the stored one */
} cn_store_state;

/* Appends ev to rollout id's log (under its current attempt) and sets its
 * state and updated_ms (= ev->time_ms), in one transaction, durably. An
 * exit_code other than -1 also closes the attempt (ended_ms, exit_code).
 * seq (may be NULL) receives the event's sequence number, which increases
 * across the whole database. The event is chained (see the audit chain):
 * its hash is computed and the rollout's chain head moved in the same
 * transaction. CN_ENOTFOUND when the rollout does not exist, CN_EINVAL
 * when type, actor, detail or state is NULL, data_json is not JSON, or
 * weight is not finite. On any failure nothing is written. */
int cn_store_record(cn_store *s, const char *id, const cn_store_event *ev,
                    const cn_store_state *st, int64_t *seq, char *err, size_t errlen);

/* ---- evidence held back ----------------------------------------------------
 * A deferring store (cn_store_defer_evidence) holds evidence_only events in
 * memory instead of committing each one: cn_store_record checks the event
 * (its data must be JSON), holds a copy and returns CN_OK (seq, unknown
 * yet, is -1). The held events are written in the order recorded, in one
 * transaction, by the next write of this connection, before what it
 * writes (so a decision's durable commit carries the measurements before
 * it), or by cn_store_flush(). A driver flushes within CN_STORE_FLUSH_MS of
 * holding, so readers in other processes (status, watch) see a measurement
 * that late at most; more than CN_STORE_MAX_HELD held events are flushed
 * at once. What a crash loses is held evidence only, which announced
 * nothing: a resumed rollout bakes that stretch again. A failed write keeps
 * them held and is retried by the next; a rollout that no longer exists is
 * found only then. Reads on this connection see held events only after a
 * flush. Why: one transaction per measurement was a third of the CPU of a
 * poll (docs/benchmarks.md). */
#define CN_STORE_FLUSH_MS 50
#define CN_STORE_MAX_HELD 512

/* Turns holding on or off; turning it off flushes first (its result). */
int cn_store_defer_evidence(cn_store *s, bool on, char *err, size_t errlen);
/* Writes what is held, in one transaction without waiting for the disk.
 * CN_OK (also with nothing held); on failure the events stay held. */
int cn_store_flush(cn_store *s, char *err, size_t errlen);
/* How many events are held. */
size_t cn_store_held_count(const cn_store *s);
/* Lets go of the events held for rollout id without writing them: a
 * driver that lost the rollout's lease must not write for it any more. */
void cn_store_held_drop(cn_store *s, const char *id);
/* The time_ms of the oldest event held, or -1 when none is: the flush of
 * many rollouts sharing the store is due CN_STORE_FLUSH_MS after it. */
int64_t cn_store_held_since(const cn_store *s);

/* Calls fn for each event of rollout id (all attempts) in order; stops early,
 * returning CN_OK, when fn returns non-zero. The strings are valid during
 * the call only. fn may read the store but must not close it.
 * CN_ENOTFOUND when the rollout does not exist. */
typedef int (*cn_store_event_fn)(void *ctx, int64_t seq, const cn_store_event *ev);
int cn_store_events(cn_store *s, const char *id, cn_store_event_fn fn, void *ctx,
                    char *err, size_t errlen);

/* ---- attempts, notes ------------------------------------------------------ */

/* Starts attempt row->attempt (the stored one + 1, else CN_EINVAL) of the
 * finished rollout row->id (exit_code >= 0, else CN_EBUSY: an unfinished
 * rollout is resumed or aborted, never started over, because starting over
 * would move its weight backwards outside a rollback): in one transaction
 * inserts the attempt and resets the rollouts row to row's version,
 * previous_version, author, ai_assisted, policy, plan_json, stages, state
 * "pending", stage 0, weight 0, exit_code -1, machine_json NULL,
 * updated_ms. row->updated_ms is also the attempt's started_ms; row's
 * service, state, stage, weight, exit_code, machine_json and created_ms
 * are not used. The intents the ended attempt never acted on are closed in
 * the same transaction (acted_ms = row->updated_ms, result
 * "intent_expired: attempt N ended before it was acted on"), so an abort
 * meant for the old attempt cannot stop the new one. The event log and its
 * chain go on (events of the new attempt carry its number). CN_ENOTFOUND
 * when there is no such rollout; CN_EINVAL also without row->version. */
int cn_store_new_attempt(cn_store *s, const cn_rollout_row *row, char *err, size_t errlen);

/* Appends ev to rollout id's log, chained like any event, leaving its
 * state, stage, weight, exit code, snapshot and updated_ms as they are
 * (an operator's refused request, recorded by the command that refused
 * it). Durable when it returns, whatever ev->evidence_only says. Errors as
 * cn_store_record. */
int cn_store_note(cn_store *s, const char *id, const cn_store_event *ev, char *err,
                  size_t errlen);

/* ---- operator intents ----------------------------------------------------- *
 *
 * `canary approve|pause|resume|promote|abort` add a row; the process
 * driving the rollout reads the rows not yet acted on, in id order, acts
 * on each through its state machine and marks it with when and what came
 * of it. A row is acted on once: cn_store_intent_done only marks a row
 * whose acted_ms is still NULL. */

typedef struct cn_intent_row {
    int64_t id;
    char *rollout;
    char *intent;          /* "approve", "pause", "resume", "promote", "promote_full", "abort" */
    char *actor;
    char *reason;          /* may be NULL */
    int64_t created_ms;
    int64_t acted_ms;      /* 0 while not acted on */
    char *result;          /* NULL while not acted on: "<event type>: <detail>" */
} cn_intent_row;

void cn_intent_row_free(cn_intent_row *row);

/* Adds an intent (acted_ms NULL) and returns its id in *id. CN_ENOTFOUND
 * for an unknown rollout; CN_EINVAL when intent is not one of the names
 * above or actor is NULL or empty. Durable when it returns. */
int cn_store_intent_add(cn_store *s, const char *rollout, const char *intent,
                        const char *actor, const char *reason, int64_t now_ms, int64_t *id,
                        char *err, size_t errlen);

/* Calls fn for each intent of rollout not yet acted on, oldest first; the
 * row's strings are valid during the call only; fn returning non-zero
 * stops the walk (CN_OK). fn may write to the store (cn_store_record,
 * cn_store_intent_done). Works on a read-only store (`canary status`). */
typedef int (*cn_intent_fn)(void *ctx, const cn_intent_row *row);
int cn_store_intents_pending(cn_store *s, const char *rollout, cn_intent_fn fn, void *ctx,
                             char *err, size_t errlen);

/* Marks intent id acted on at now_ms with result (not NULL, else
 * CN_EINVAL). CN_ENOTFOUND when there is no such intent; CN_EEXIST when it
 * was already acted on (nothing changes; err gives the result it has).
 * Durable when it returns. */
int cn_store_intent_done(cn_store *s, int64_t id, int64_t now_ms, const char *result,
                         char *err, size_t errlen);

/* Reads intent id into *row (zeroed first; free with cn_intent_row_free).
 * CN_ENOTFOUND when there is none. Works on a read-only store. */
int cn_store_intent_get(cn_store *s, int64_t id, cn_intent_row *row, char *err, size_t errlen);

/* A number that changes whenever another connection (another process, an
 * operator's command) commits to the database, and only then: a cheap
 * "anything new?" before reading intents. -1 when it cannot be read
 * (then read anyway). Read at most once per CN_STORE_VERSION_MS of now_ms
 * (wall clock); in between, the last value read: rollouts sharing the
 * store ask every second each, and each read takes SQLite's locks. */
#define CN_STORE_VERSION_MS 100
int64_t cn_store_data_version(cn_store *s, int64_t now_ms);

/* ---- the lease: one driver per rollout -------------------------------------
 *
 * The process that drives a rollout holds its lease: a row with who holds
 * it and a heartbeat it renews (cn_store_lease_renew) well within ttl. A
 * lease whose heartbeat is older than ttl belongs to a holder that died
 * (or hangs) and may be taken over. Times are wall-clock ms passed in, so
 * every rule is tested without waiting. */

/* A driver renews every CN_LEASE_HEARTBEAT_MS; a lease is dead after
 * CN_LEASE_TTL_MS without a heartbeat. */
#define CN_LEASE_HEARTBEAT_MS 2000
#define CN_LEASE_TTL_MS 15000

typedef struct cn_lease {
    char holder[128];      /* unique per process: "HOST:PID:START_MS" */
    char host[64];
    int64_t pid;
    int64_t heartbeat_ms;
} cn_lease;

/* Takes rollout id's lease for me (holder, host, pid; heartbeat := now_ms)
 * in one transaction, when there is no lease, it is me's already, its
 * heartbeat is older than now_ms - ttl_ms, or its holder equals
 * dead_holder (non-NULL: a holder the caller knows has died, such as a
 * process of this host that no longer exists). Otherwise CN_EBUSY, with
 * the current lease in *current (may be NULL) and err naming its holder,
 * host, pid and heartbeat age. On CN_OK *current is the lease replaced
 * (own, stale or dead; zeroed when there was none), for the log of a
 * takeover. Durable when it returns. CN_ENOTFOUND for an unknown rollout;
 * CN_EINVAL for an empty holder, one that does not fit cn_lease.holder (or
 * a host cn_lease.host), or ttl_ms <= 0. */
int cn_store_lease_acquire(cn_store *s, const char *id, const cn_lease *me, int64_t now_ms,
                           int64_t ttl_ms, const char *dead_holder, cn_lease *current,
                           char *err, size_t errlen);

/* Moves the heartbeat of holder's lease on rollout id to now_ms. CN_EBUSY
 * when the lease is no longer holder's (taken over, or released): the
 * caller must stop driving the rollout. Not waited to disk (a lost
 * heartbeat only lets a takeover come sooner after a power loss). */
int cn_store_lease_renew(cn_store *s, const char *id, const char *holder, int64_t now_ms,
                         char *err, size_t errlen);

/* Removes holder's lease on rollout id; CN_OK also when holder has none
 * (someone else's lease is left alone). Durable when it returns. */
int cn_store_lease_release(cn_store *s, const char *id, const char *holder, char *err,
                           size_t errlen);

/* Reads rollout id's lease into *out. CN_ENOTFOUND when nobody holds one.
 * Works on a read-only store. */
int cn_store_lease_get(cn_store *s, const char *id, cn_lease *out, char *err, size_t errlen);

/* ---- the audit chain ------------------------------------------------------
 *
 * One chain per rollout, in seq order, over every attempt. Event number
 * index (1-based, counted per rollout) is hashed as
 *     hash = SHA-256(prev_hash || canonical JSON of the event)
 * with prev_hash the rollout's previous event's hash, or 32 zero bytes for
 * its first. The canonical JSON is one compact line, keys sorted, ASCII
 * only (\uXXXX escapes), reals with 17 significant digits, of exactly
 * these keys: actor, attempt, data (the data_json value parsed, or null),
 * detail, index, rollout, seq, time_ms, type. Text that is not valid UTF-8
 * has each bad byte replaced by U+FFFD there (the row keeps its bytes).
 * Because index and seq are hashed, a deleted event breaks the hash of the
 * next one; the rollouts row keeps the count (events) and the last hash
 * (last_hash), which finds a deleted last event. Events written before
 * schema 2 have no hash ("unchained") and come first in their rollout.
 * An attacker who rewrites the file can recompute every hash: keep the
 * last hash (canary audit export) somewhere else to detect that. */

#define CN_AUDIT_HASH_SIZE 32

/* The canonical JSON of an event into *out (free() it). CN_EINVAL when
 * data_json is not JSON, CN_ENOMEM. */
int cn_audit_canonical(const char *rollout, int attempt, int64_t index, int64_t seq,
                       const cn_store_event *ev, char **out);
/* out = SHA-256(prev || canonical). CN_ENOMEM when OpenSSL fails. */
int cn_audit_hash(const unsigned char prev[CN_AUDIT_HASH_SIZE], const char *canonical,
                  unsigned char out[CN_AUDIT_HASH_SIZE]);

/* One event as stored, for audit. */
typedef struct cn_audit_entry {
    const char *rollout;
    int attempt;
    int64_t index;          /* n-th chained event of the rollout; 0 when unchained */
    int64_t seq;
    cn_store_event ev;      /* evidence_only is false: the log does not keep it */
    const char *canonical;  /* as hashed, with index as above; NULL when the stored
                               data is not JSON (the row was changed) */
    bool chained;           /* it has a hash */
    bool well_formed;       /* chained, with prev_hash and hash of 32 bytes each */
    unsigned char prev_hash[CN_AUDIT_HASH_SIZE], hash[CN_AUDIT_HASH_SIZE]; /* as stored */
} cn_audit_entry;

/* Calls fn for each event of rollout id (NULL: every rollout, in the order
 * they were created) in seq order; strings are valid during the call only.
 * fn returning non-zero stops the walk (CN_OK). CN_ENOTFOUND for an
 * unknown id. */
typedef int (*cn_audit_entry_fn)(void *ctx, const cn_audit_entry *e);
int cn_store_audit_events(cn_store *s, const char *id, cn_audit_entry_fn fn, void *ctx,
                          char *err, size_t errlen);

typedef enum {
    CN_AUDIT_INTACT,     /* every chained event matches, the head too */
    CN_AUDIT_CHANGED,    /* event index (seq, type) does not match its hash */
    CN_AUDIT_MISSING,    /* events index .. index+missing-1 are gone, before seq */
    CN_AUDIT_TRUNCATED,  /* the last `missing` events are gone */
    CN_AUDIT_UNHASHED,   /* event seq has no hash but follows chained ones */
    CN_AUDIT_HEAD        /* events/last_hash of the rollouts row disagree with the log */
} cn_audit_verdict;

/* The verdict on one rollout: the first problem found, or none. */
typedef struct cn_audit_result {
    const char *rollout;
    cn_audit_verdict verdict;
    int64_t recorded;       /* the rollouts row's events count */
    int64_t found;          /* chained events read before the verdict (all when intact) */
    int64_t unchained;      /* events written before the audit chain */
    int64_t index, seq;     /* CHANGED: the event; MISSING: the first index gone and the
                               seq of the event after the gap; UNHASHED: seq */
    int64_t missing;        /* MISSING, TRUNCATED */
    const char *type;       /* CHANGED, UNHASHED: the event's type */
} cn_audit_result;

/* Recomputes the chain of rollout id (NULL: of each rollout) and calls fn
 * once per rollout with its verdict (fn's strings are valid during the
 * call). CN_OK also when a chain is broken: the verdicts say so. CN_ENOTFOUND
 * for an unknown id. */
typedef void (*cn_audit_result_fn)(void *ctx, const cn_audit_result *r);
int cn_store_audit_verify(cn_store *s, const char *id, cn_audit_result_fn fn, void *ctx,
                          char *err, size_t errlen);

/* The verdict in words, as `canary audit verify` prints it: "rollout X:
 * event #3 (seq 7, type stage_applied) does not match its hash: the row
 * was changed", ...; for an intact chain "rollout X: N events intact". */
void cn_audit_describe(const cn_audit_result *r, char *buf, size_t len);

#endif
