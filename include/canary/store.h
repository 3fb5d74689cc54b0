/*
 * store.h: durable state: rollouts and their append-only event log, in
 * SQLite (shell).
 *
 * Contract: one database file (default .canary/state.db), WAL journal,
 * synchronous=FULL: when cn_store_record() returns CN_OK the event and the
 * rollout's new state are on disk, so the shell may then take the action
 * the event announces (state is written before the action it records).
 * Events are never updated or deleted (triggers refuse it). The schema has
 * room for what comes next: attempts (--new-attempt), operator intents, a
 * lease per rollout (one driver), and a hash chain over events (audit);
 * PRAGMA user_version is the schema version, and a database from a newer
 * canary is refused rather than misread. Functions return CN_OK or a
 * CN_E* code with the reason in err; nothing here exits or prints.
 */
#ifndef CANARY_STORE_H
#define CANARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cn_store cn_store;

/* Opens (creating the file, and its directory if that is missing) the
 * database at path. CN_ESTORE when it cannot be opened or is not a canary
 * database. */
int cn_store_open(cn_store **out, const char *path, char *err, size_t errlen);
void cn_store_close(cn_store *s);

/* A rollout as stored. Strings are owned by the caller when writing, and by
 * the row (free with cn_rollout_row_free) when read. */
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

void cn_rollout_row_free(cn_rollout_row *row);

/* Inserts row (state, stage, weight... as given). CN_EEXIST when the id is
 * already stored (err says in which state). */
int cn_store_create(cn_store *s, const cn_rollout_row *row, char *err, size_t errlen);

/* Reads the rollout id into *row. CN_ENOTFOUND when there is none. */
int cn_store_get(cn_store *s, const char *id, cn_rollout_row *row, char *err, size_t errlen);

/* One entry of the event log. */
typedef struct cn_store_event {
    int64_t time_ms;        /* wall clock */
    const char *type;       /* "stage_applied", "measurement", ... */
    const char *actor;      /* "canary" for automatic decisions, else the user */
    const char *detail;     /* the evidence in words */
    const char *data_json;  /* structured evidence (values, thresholds); may be NULL */
} cn_store_event;

/* The rollout's state after the event. */
typedef struct cn_store_state {
    const char *state;
    unsigned stage;
    double weight;
    int exit_code;          /* -1 while not finished */
    const char *machine_json; /* may be NULL: keep the stored one */
} cn_store_state;

/* Appends ev to rollout id's log and sets its state, in one transaction,
 * durably. seq (may be NULL) receives the event's sequence number. */
int cn_store_record(cn_store *s, const char *id, const cn_store_event *ev,
                    const cn_store_state *st, int64_t *seq, char *err, size_t errlen);

/* Calls fn for each event of rollout id in order; stops early when fn
 * returns non-zero. The strings are valid during the call only. */
typedef int (*cn_store_event_fn)(void *ctx, int64_t seq, const cn_store_event *ev);
int cn_store_events(cn_store *s, const char *id, cn_store_event_fn fn, void *ctx,
                    char *err, size_t errlen);

#endif
