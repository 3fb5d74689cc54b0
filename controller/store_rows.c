/* Reading and writing rollouts and their events. Every write is one
 * transaction taken with BEGIN IMMEDIATE (the write lock up front, so two
 * writers queue on the busy timeout instead of one failing half-way), and
 * every value travels as a bound parameter. */
#include "canary/store.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "store_internal.h"

/* ---- rows --------------------------------------------------------------- */

void cn_rollout_row_free(cn_rollout_row *row)
{
    if (!row)
        return;
    char *strings[] = {row->id,     row->service, row->version, row->previous_version,
                       row->author, row->policy,  row->plan_json, row->state,
                       row->machine_json};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(strings[i]);
    memset(row, 0, sizeof *row);
}

static int check_row(const cn_rollout_row *row, char *err, size_t errlen)
{
    if (!row || !row->id || !*row->id)
        return cn_store_fail(err, errlen, CN_EINVAL, "a rollout to store needs an id");
    if (!row->service || !row->version || !row->state)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "rollout '%s' lacks its service, version or state", row->id);
    if (row->attempt < 1)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "rollout '%s' has attempt %d; attempts count from 1", row->id,
                             row->attempt);
    if (!isfinite(row->weight))
        return cn_store_fail(err, errlen, CN_EINVAL, "rollout '%s' has a weight that is not a number",
                             row->id);
    return CN_OK;
}

int cn_store_create(cn_store *s, const cn_rollout_row *row, char *err, size_t errlen)
{
    if (!s)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store");
    if (s->readonly)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "state database '%s' was opened read-only; cannot create", s->path);
    int code = check_row(row, err, errlen);
    if (code)
        return code;
    int rc = cn_store_begin(s, false);
    if (rc == SQLITE_OK) {
        rc = cn_store_find(s, row->id);
        if (rc == SQLITE_ROW) {
            /* The state is the first thing an operator wants to know here:
             * resume that rollout, or choose another id? */
            const unsigned char *state = sqlite3_column_text(s->st[ST_FIND], 0);
            code = cn_store_fail(err, errlen, CN_EEXIST,
                                 "rollout '%s' already exists (state %s, attempt %lld)", row->id,
                                 state ? (const char *)state : "unknown",
                                 (long long)sqlite3_column_int64(s->st[ST_FIND], 1));
            sqlite3_reset(s->st[ST_FIND]);
            cn_store_rollback(s);
            return code;
        }
        sqlite3_reset(s->st[ST_FIND]);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_stmt *st = s->st[ST_INSERT_ROLLOUT];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 1, row->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, row->attempt);
    const char *texts[] = {row->service, row->version, row->previous_version, row->author};
    for (int i = 0; i < 4 && rc == SQLITE_OK; i++)
        rc = cn_store_bind_text(st, 3 + i, texts[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 7, row->ai_assisted ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 8, row->policy);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 9, row->plan_json);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 10, row->state);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 11, row->stage);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 12, row->stages);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 13, row->weight);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 14, row->exit_code);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 15, row->machine_json);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 16, row->created_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 17, row->updated_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(st);
    st = s->st[ST_INSERT_ATTEMPT];
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 1, row->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, row->attempt);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, row->created_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_run(st);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    if (rc == SQLITE_OK)
        return CN_OK;
    code = cn_store_fail_db(s, err, errlen, rc, "could not create rollout '%s' in '%s'", row->id,
                            s->path);
    cn_store_rollback(s);
    return code;
}

/* ---- reading a rollout -------------------------------------------------- */

int cn_store_dup_column(sqlite3_stmt *st, int i, char **out)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) {
        *out = NULL;
        /* A NULL pointer for a non-NULL value means SQLite ran out of memory. */
        return sqlite3_column_type(st, i) == SQLITE_NULL ? CN_OK : CN_ENOMEM;
    }
    *out = strdup((const char *)t);
    return *out ? CN_OK : CN_ENOMEM;
}

/* An integer column in [lo, hi]; anything else means someone other than
 * canary wrote the file, and the row is not to be trusted. */
static bool int_column(sqlite3_stmt *st, int i, long long lo, long long hi, long long *out)
{
    if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
        return false;
    *out = sqlite3_column_int64(st, i);
    return *out >= lo && *out <= hi;
}

static int read_row(cn_store *s, sqlite3_stmt *st, cn_rollout_row *row, char *err, size_t errlen)
{
    char **texts[] = {&row->id,     &row->service, &row->version, &row->previous_version,
                      &row->author, &row->policy,  &row->plan_json, &row->state,
                      &row->machine_json};
    static const int text_cols[] = {0, 2, 3, 4, 5, 7, 8, 9, 14};
    for (size_t i = 0; i < sizeof text_cols / sizeof text_cols[0]; i++)
        if (cn_store_dup_column(st, text_cols[i], texts[i]))
            return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
    long long attempt, ai, stage, stages, exit_code, created, updated;
    bool ok = row->id && row->service && row->version && row->state &&
              int_column(st, 1, 1, INT_MAX, &attempt) && int_column(st, 6, 0, 1, &ai) &&
              int_column(st, 10, 0, UINT_MAX, &stage) && int_column(st, 11, 0, UINT_MAX, &stages) &&
              int_column(st, 13, INT_MIN, INT_MAX, &exit_code) &&
              int_column(st, 15, LLONG_MIN, LLONG_MAX, &created) &&
              int_column(st, 16, LLONG_MIN, LLONG_MAX, &updated) &&
              (sqlite3_column_type(st, 12) == SQLITE_FLOAT ||
               sqlite3_column_type(st, 12) == SQLITE_INTEGER) &&
              isfinite(sqlite3_column_double(st, 12));
    if (!ok)
        return cn_store_fail(err, errlen, CN_ESTORE,
                             "rollout '%s' in '%s' is damaged: a column is missing or out of range",
                             row->id ? row->id : "?", s->path);
    row->attempt = (int)attempt;
    row->ai_assisted = ai != 0;
    row->stage = (unsigned)stage;
    row->stages = (unsigned)stages;
    row->weight = sqlite3_column_double(st, 12);
    row->exit_code = (int)exit_code;
    row->created_ms = created;
    row->updated_ms = updated;
    return CN_OK;
}

int cn_store_get(cn_store *s, const char *id, cn_rollout_row *row, char *err, size_t errlen)
{
    if (!row)
        return cn_store_fail(err, errlen, CN_EINVAL, "no row to read into");
    memset(row, 0, sizeof *row);
    if (!s || !id)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store or no rollout id");
    sqlite3_stmt *st = s->st[ST_GET];
    int code = CN_OK;
    int rc = cn_store_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        code = read_row(s, st, row, err, errlen);
    else if (rc == SQLITE_DONE)
        code = cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", id, s->path);
    else
        code = cn_store_fail_db(s, err, errlen, rc, "could not read rollout '%s' from '%s'", id,
                                s->path);
    sqlite3_reset(st);
    if (code)
        cn_rollout_row_free(row);
    return code;
}

/* ---- the event log ------------------------------------------------------ */

/* The chain head of a rollout, read inside the write transaction. */
typedef struct chain_link {
    int attempt;
    int64_t index, seq; /* the new event's */
    unsigned char prev[CN_AUDIT_HASH_SIZE], hash[CN_AUDIT_HASH_SIZE];
} chain_link;

/* Reads the rollout's attempt and chain head, and the next seq: SQLITE_ROW
 * when found (link filled), SQLITE_DONE when there is no such rollout. A
 * last_hash that is not 32 bytes means the row was changed: the new event
 * is chained to zeros, and verify reports the rollout. */
static int chain_head(cn_store *s, const char *id, chain_link *link)
{
    sqlite3_stmt *h = s->st[ST_CHAIN_HEAD];
    int rc = cn_store_bind_text(h, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(h);
    if (rc == SQLITE_ROW) {
        link->attempt = sqlite3_column_int(h, 0);
        link->index = sqlite3_column_int64(h, 1) + 1;
        memset(link->prev, 0, sizeof link->prev);
        if (sqlite3_column_bytes(h, 2) == CN_AUDIT_HASH_SIZE)
            memcpy(link->prev, sqlite3_column_blob(h, 2), CN_AUDIT_HASH_SIZE);
        link->seq = sqlite3_column_int64(h, 3);
    }
    sqlite3_reset(h);
    return rc;
}

static int set_state(cn_store *s, const char *id, const cn_store_event *ev,
                     const cn_store_state *st, const chain_link *link)
{
    sqlite3_stmt *u = s->st[ST_SET_STATE];
    int rc = cn_store_bind_text(u, 1, id);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 2, st->state);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 3, st->stage);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(u, 4, st->weight);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(u, 5, st->exit_code);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(u, 6, st->machine_json);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 7, ev->time_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 8, link->index);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(u, 9, link->hash, CN_AUDIT_HASH_SIZE, SQLITE_STATIC);
    return rc == SQLITE_OK ? cn_store_run(u) : rc;
}

/* Evidence moves only the chain head: one statement, no state. */
static int set_chain(cn_store *s, const char *id, const chain_link *link)
{
    sqlite3_stmt *u = s->st[ST_SET_CHAIN];
    int rc = cn_store_bind_text(u, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(u, 2, link->index);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(u, 3, link->hash, CN_AUDIT_HASH_SIZE, SQLITE_STATIC);
    return rc == SQLITE_OK ? cn_store_run(u) : rc;
}

static int append(cn_store *s, const char *id, const cn_store_event *ev, const chain_link *link)
{
    sqlite3_stmt *a = s->st[ST_APPEND];
    int rc = sqlite3_bind_int64(a, 1, link->seq);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 2, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(a, 3, link->attempt);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(a, 4, ev->time_ms);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 5, ev->type);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 6, ev->actor);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 7, ev->detail);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(a, 8, ev->data_json);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(a, 9, link->prev, CN_AUDIT_HASH_SIZE, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(a, 10, link->hash, CN_AUDIT_HASH_SIZE, SQLITE_STATIC);
    return rc == SQLITE_OK ? cn_store_run(a) : rc;
}

static int end_attempt(cn_store *s, const char *id, const cn_store_event *ev,
                       const cn_store_state *st)
{
    sqlite3_stmt *e = s->st[ST_END_ATTEMPT];
    int rc = cn_store_bind_text(e, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(e, 2, ev->time_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(e, 3, st->exit_code);
    return rc == SQLITE_OK ? cn_store_run(e) : rc;
}

/* Hashes the event into link (index, seq and prev already read); data is
 * ev's parsed, or NULL to parse it here. */
static int chain(const char *id, const cn_store_event *ev, json_t *data, chain_link *link)
{
    char *canonical = NULL;
    int code = data ? cn_audit_canonical_parsed(id, link->attempt, link->index, link->seq, ev,
                                                data, &canonical)
                    : cn_audit_canonical(id, link->attempt, link->index, link->seq, ev,
                                         &canonical);
    if (!code)
        code = cn_audit_hash(link->prev, canonical, link->hash);
    free(canonical);
    return code;
}

/* The checks every event passes before anything is written. */
static int check_event(cn_store *s, const char *id, const cn_store_event *ev, char *err,
                       size_t errlen)
{
    if (s->readonly)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "state database '%s' was opened read-only; cannot record", s->path);
    if (!ev->type || !ev->actor || !ev->detail)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "an event for rollout '%s' lacks its type, actor, detail or state", id);
    return CN_OK;
}

int cn_store_record(cn_store *s, const char *id, const cn_store_event *ev,
                    const cn_store_state *st, int64_t *seq, char *err, size_t errlen)
{
    if (!s || !id || !ev || !st)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id, event or state");
    int code = check_event(s, id, ev, err, errlen);
    if (code)
        return code;
    if (!st->state)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "an event for rollout '%s' lacks its type, actor, detail or state", id);
    if (!isfinite(st->weight))
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "event '%s' for rollout '%s' sets a weight that is not a number",
                             ev->type, id);
    return cn_store_write_event(s, id, ev, st, seq, err, errlen);
}

int cn_store_write_event(cn_store *s, const char *id, const cn_store_event *ev,
                         const cn_store_state *st, int64_t *seq, char *err, size_t errlen)
{
    if (!s || !id || !ev)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or event");
    int code = check_event(s, id, ev, err, errlen);
    if (code)
        return code;
    if (s->defer && ev->evidence_only && st)
        return cn_store_hold(s, id, ev, err, errlen);
    int rc = cn_store_begin(s, ev->evidence_only);
    chain_link link;
    if (rc == SQLITE_OK) {
        rc = chain_head(s, id, &link);
        if (rc == SQLITE_DONE) {
            cn_store_rollback(s);
            return cn_store_fail(err, errlen, CN_ENOTFOUND,
                                 "could not record event '%s': no rollout '%s' in '%s'", ev->type,
                                 id, s->path);
        }
        if (rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK) {
        code = chain(id, ev, NULL, &link);
        if (code) {
            cn_store_rollback(s);
            return code == CN_EINVAL
                       ? cn_store_fail(err, errlen, code,
                                       "event '%s' for rollout '%s' has data that is not JSON",
                                       ev->type, id)
                       : cn_store_fail(err, errlen, code, "out of memory hashing event '%s'",
                                       ev->type);
        }
    }
    /* Evidence leaves the rollout's state alone: it changes none, and a
     * measurement each interval is the hot path; only the chain head moves.
     * So does a note (no st), which records what changed nothing. */
    if (rc == SQLITE_OK)
        rc = !st || ev->evidence_only ? set_chain(s, id, &link) : set_state(s, id, ev, st, &link);
    if (rc == SQLITE_OK)
        rc = append(s, id, ev, &link);
    if (rc == SQLITE_OK && st && st->exit_code != -1)
        rc = end_attempt(s, id, ev, st);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    if (rc == SQLITE_OK) {
        if (seq)
            *seq = link.seq;
        return CN_OK;
    }
    code = cn_store_fail_db(s, err, errlen, rc, "could not record event '%s' for rollout '%s' in '%s'",
                                ev->type, id, s->path);
    cn_store_rollback(s);
    return code;
}

int cn_store_append_held(cn_store *s, const cn_store_held *h)
{
    chain_link link;
    int rc = chain_head(s, h->id, &link);
    if (rc == SQLITE_DONE)
        return SQLITE_NOTFOUND;
    if (rc != SQLITE_ROW)
        return rc;
    /* The data parsed when it was held, so this cannot find it wrong. */
    int code = chain(h->id, &h->ev, h->data ? h->data : json_null(), &link);
    if (code)
        return code == CN_ENOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
    rc = set_chain(s, h->id, &link);
    return rc == SQLITE_OK ? append(s, h->id, &h->ev, &link) : rc;
}

int cn_store_events(cn_store *s, const char *id, cn_store_event_fn fn, void *ctx, char *err,
                    size_t errlen)
{
    if (!s || !id || !fn)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store, rollout id or callback");
    int rc = cn_store_find(s, id);
    sqlite3_reset(s->st[ST_FIND]);
    if (rc == SQLITE_DONE)
        return cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", id, s->path);
    if (rc != SQLITE_ROW)
        return cn_store_fail_db(s, err, errlen, rc,
                                "could not read the events of rollout '%s' from '%s'", id, s->path);
    /* Prepared per call, not cached: fn may read the store, even list
     * another rollout's events, while this statement is still stepping. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT seq, time_ms, type, actor, detail, data FROM events"
                            " WHERE rollout = ?1 ORDER BY seq",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 1, id);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *texts[4];
        for (int i = 0; i < 4; i++) {
            const unsigned char *t = sqlite3_column_text(st, 2 + i);
            texts[i] = t ? (const char *)t : i == 3 ? NULL : "";
        }
        cn_store_event ev = {.time_ms = sqlite3_column_int64(st, 1),
                             .type = texts[0],
                             .actor = texts[1],
                             .detail = texts[2],
                             .data_json = texts[3]};
        if (fn(ctx, sqlite3_column_int64(st, 0), &ev)) {
            rc = SQLITE_DONE;
            break;
        }
        rc = SQLITE_OK;
    }
    int code = rc == SQLITE_DONE ? CN_OK
                             : cn_store_fail_db(s, err, errlen, rc,
                                                "could not read the events of rollout '%s' from '%s'",
                                                id, s->path);
    sqlite3_finalize(st);
    return code;
}

/* ---- listing rollouts --------------------------------------------------- */

void cn_rollout_rows_free(cn_rollout_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        cn_rollout_row_free(&rows[i]);
    free(rows);
}

int cn_store_list(cn_store *s, const cn_store_filter *f, cn_rollout_row **rows, size_t *n,
                  char *err, size_t errlen)
{
    if (!rows || !n)
        return cn_store_fail(err, errlen, CN_EINVAL, "no place for the rollouts");
    *rows = NULL;
    *n = 0;
    if (!s)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store");
    /* Prepared per call: listing is for people, not the hot path, and the
     * same columns in the same order as ST_GET let read_row do the work. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT id, attempt, service, version, previous_version, author,"
                                " ai_assisted, policy, plan, state, stage, stages, weight,"
                                " exit_code, machine, created_ms, updated_ms FROM rollouts"
                                " WHERE (?1 IS NULL OR service = ?1) AND created_ms >= ?2"
                                " ORDER BY created_ms DESC, id DESC",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = cn_store_bind_text(st, 1, f ? f->service : NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, f && f->since_ms > 0 ? f->since_ms : INT64_MIN);
    cn_rollout_row *list = NULL;
    size_t count = 0, cap = 0;
    int code = CN_OK;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (count == cap) {
            size_t grown = cap ? 2 * cap : 8;
            cn_rollout_row *more = realloc(list, grown * sizeof *more);
            if (!more) {
                code = cn_store_fail(err, errlen, CN_ENOMEM, "out of memory");
                break;
            }
            list = more;
            cap = grown;
        }
        memset(&list[count], 0, sizeof list[count]);
        code = read_row(s, st, &list[count], err, errlen);
        count++; /* a half-read row is freed with the others */
        if (code)
            break;
    }
    if (!code && rc != SQLITE_DONE)
        code = cn_store_fail_db(s, err, errlen, rc, "could not list the rollouts in '%s'", s->path);
    sqlite3_finalize(st);
    if (code) {
        cn_rollout_rows_free(list, count);
        return code;
    }
    *rows = list;
    *n = count;
    return CN_OK;
}
