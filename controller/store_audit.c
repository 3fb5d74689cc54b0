/* Reading the audit chain back: every event with its stored hashes and
 * its canonical JSON recomputed (for export), and the verdict on each
 * rollout's chain (for verify). Read-only: works on a connection from
 * cn_store_open_readonly, also on a schema 1 file (all unchained). */
#include "canary/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "store_internal.h"

/* What the walk knows of a rollout when its events end. */
typedef struct rollout_head {
    const char *id;
    int64_t recorded;
    bool has_last;
    unsigned char last_hash[CN_AUDIT_HASH_SIZE];
    bool last_ok; /* last_hash NULL or 32 bytes */
} rollout_head;

typedef struct walk {
    void (*start)(void *ctx, const rollout_head *h);
    cn_audit_entry_fn entry;
    void (*end)(void *ctx, const rollout_head *h);
    void *ctx;
} walk;

static void copy_hash(sqlite3_stmt *st, int col, unsigned char out[CN_AUDIT_HASH_SIZE], bool *ok)
{
    memset(out, 0, CN_AUDIT_HASH_SIZE);
    if (sqlite3_column_bytes(st, col) == CN_AUDIT_HASH_SIZE)
        memcpy(out, sqlite3_column_blob(st, col), CN_AUDIT_HASH_SIZE);
    else
        *ok = false;
}

/* Walks one rollout's events; *stop when the entry callback asked. */
static int walk_events(cn_store *s, sqlite3_stmt *ev, const rollout_head *h, const walk *w,
                       bool *stop, char *err, size_t errlen)
{
    int rc = sqlite3_bind_text(ev, 1, h->id, -1, SQLITE_TRANSIENT);
    int64_t index = 0;
    int code = CN_OK;
    while (rc == SQLITE_OK && (rc = sqlite3_step(ev)) == SQLITE_ROW) {
        const char *t[4];
        for (int i = 0; i < 4; i++) {
            const unsigned char *v = sqlite3_column_text(ev, 3 + i);
            t[i] = v ? (const char *)v : i == 3 ? NULL : "";
        }
        cn_audit_entry e = {.rollout = h->id,
                            .attempt = sqlite3_column_int(ev, 1),
                            .seq = sqlite3_column_int64(ev, 0),
                            .ev = {.time_ms = sqlite3_column_int64(ev, 2),
                                   .type = t[0], .actor = t[1], .detail = t[2],
                                   .data_json = t[3]},
                            .chained = sqlite3_column_type(ev, 8) != SQLITE_NULL};
        if (e.chained) {
            e.index = ++index;
            e.well_formed = true;
            copy_hash(ev, 7, e.prev_hash, &e.well_formed);
            copy_hash(ev, 8, e.hash, &e.well_formed);
        }
        char *canonical = NULL;
        code = cn_audit_canonical(h->id, e.attempt, e.index, e.seq, &e.ev, &canonical);
        if (code == CN_ENOMEM)
            break;
        code = CN_OK;
        e.canonical = canonical;
        int r = w->entry ? w->entry(w->ctx, &e) : 0;
        free(canonical);
        if (r) {
            *stop = true;
            break;
        }
        rc = SQLITE_OK;
    }
    sqlite3_reset(ev);
    sqlite3_clear_bindings(ev);
    if (code)
        return cn_store_fail(err, errlen, code, "out of memory reading the audit chain");
    if (!*stop && rc != SQLITE_DONE)
        return cn_store_fail_db(s, err, errlen, rc, "could not read the events of rollout '%s' "
                                "from '%s'", h->id, s->path);
    return CN_OK;
}

/* Walks the rollouts (one, or all in creation order) and their events, in
 * one read transaction so the picture is consistent. Statements are
 * prepared per call: callbacks may use the store. */
static int walk_all(cn_store *s, const char *id, const walk *w, char *err, size_t errlen)
{
    /* Schema 1 has no chain head: every rollout records 0 events. */
    const char *heads = s->schema >= 2 ? "SELECT id, events, last_hash FROM rollouts"
                                         " WHERE ?1 IS NULL OR id = ?1 ORDER BY rowid"
                                       : "SELECT id, 0, NULL FROM rollouts"
                                         " WHERE ?1 IS NULL OR id = ?1 ORDER BY rowid";
    sqlite3_stmt *ro = NULL, *ev = NULL;
    int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, heads, -1, &ro, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "SELECT seq, attempt, time_ms, type, actor, detail, data,"
                                " prev_hash, hash FROM events WHERE rollout = ?1 ORDER BY seq",
                                -1, &ev, NULL);
    if (rc == SQLITE_OK)
        rc = id ? sqlite3_bind_text(ro, 1, id, -1, SQLITE_STATIC) : sqlite3_bind_null(ro, 1);
    int code = CN_OK, rollouts = 0;
    bool stop = false;
    while (!code && !stop && rc == SQLITE_OK && (rc = sqlite3_step(ro)) == SQLITE_ROW) {
        rollouts++;
        const unsigned char *rid = sqlite3_column_text(ro, 0);
        rollout_head h = {.id = rid ? (const char *)rid : "",
                          .recorded = sqlite3_column_int64(ro, 1),
                          .has_last = sqlite3_column_type(ro, 2) != SQLITE_NULL,
                          .last_ok = true};
        if (h.has_last)
            copy_hash(ro, 2, h.last_hash, &h.last_ok);
        if (w->start)
            w->start(w->ctx, &h);
        code = walk_events(s, ev, &h, w, &stop, err, errlen);
        if (!code && !stop && w->end)
            w->end(w->ctx, &h);
        rc = SQLITE_OK;
    }
    if (!code && !stop && rc != SQLITE_DONE && rc != SQLITE_OK)
        code = cn_store_fail_db(s, err, errlen, rc, "could not read the audit chain of '%s'",
                                s->path);
    else if (!code && id && rollouts == 0)
        code = cn_store_fail(err, errlen, CN_ENOTFOUND, "no rollout '%s' in '%s'", id, s->path);
    sqlite3_finalize(ro);
    sqlite3_finalize(ev);
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return code;
}

int cn_store_audit_events(cn_store *s, const char *id, cn_audit_entry_fn fn, void *ctx,
                          char *err, size_t errlen)
{
    if (!s || !fn)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store or callback");
    walk w = {.entry = fn, .ctx = ctx};
    return walk_all(s, id, &w, err, errlen);
}

/* ---- verify ------------------------------------------------------------- */

typedef struct verifier {
    cn_audit_result_fn fn;
    void *ctx;
    cn_audit_result r; /* of the rollout being walked */
    bool decided;      /* r.verdict is final for this rollout */
    unsigned char expect_prev[CN_AUDIT_HASH_SIZE];
    char type[128];    /* r.type points here */
    int code;          /* CN_ENOMEM while hashing */
} verifier;

static void reset(verifier *v, const char *rollout)
{
    memset(&v->r, 0, sizeof v->r);
    v->r.rollout = rollout;
    v->decided = false;
    memset(v->expect_prev, 0, sizeof v->expect_prev);
}

static void decide(verifier *v, cn_audit_verdict verdict, const cn_audit_entry *e)
{
    v->r.verdict = verdict;
    v->decided = true;
    if (e) {
        v->r.seq = e->seq;
        snprintf(v->type, sizeof v->type, "%s", e->ev.type);
        v->r.type = v->type;
    }
}

/* Whether the event hashes to its stored hash when it is number index and
 * follows prev. */
static bool hashes_as(verifier *v, const cn_audit_entry *e, int64_t index,
                      const unsigned char prev[CN_AUDIT_HASH_SIZE])
{
    char *canonical = NULL;
    int code = cn_audit_canonical(e->rollout, e->attempt, index, e->seq, &e->ev, &canonical);
    unsigned char h[CN_AUDIT_HASH_SIZE];
    if (!code)
        code = cn_audit_hash(prev, canonical, h);
    free(canonical);
    if (code == CN_ENOMEM)
        v->code = code;
    return !code && !memcmp(h, e->hash, sizeof h);
}

static int verify_entry(void *ctx, const cn_audit_entry *e)
{
    verifier *v = ctx;
    if (v->decided || v->code)
        return 0;
    if (!e->chained) {
        if (v->r.found == 0)
            v->r.unchained++;
        else
            decide(v, CN_AUDIT_UNHASHED, e);
        return 0;
    }
    bool linked = e->well_formed && !memcmp(e->prev_hash, v->expect_prev, CN_AUDIT_HASH_SIZE);
    if (linked && e->canonical && hashes_as(v, e, e->index, v->expect_prev)) {
        v->r.found++;
        memcpy(v->expect_prev, e->hash, CN_AUDIT_HASH_SIZE);
        return 0;
    }
    v->r.index = e->index;
    if (!linked && e->well_formed && e->canonical) {
        /* The row is fine if it hashes as a later event after its own
         * prev_hash: then the events between are the ones gone. At most as
         * many as the rollout records, so a damaged count cannot make this
         * loop long. */
        int64_t limit = v->r.recorded - v->r.found;
        for (int64_t d = 1; d <= limit && d <= 1000000 && !v->code; d++) {
            if (hashes_as(v, e, e->index + d, e->prev_hash)) {
                v->r.missing = d;
                decide(v, CN_AUDIT_MISSING, e);
                return 0;
            }
        }
    }
    decide(v, CN_AUDIT_CHANGED, e);
    return 0;
}

static void verify_end(void *ctx, const rollout_head *h)
{
    verifier *v = ctx;
    if (v->code)
        return;
    if (!v->decided) {
        bool head_ok = v->r.found == 0 ? !h->has_last
                                       : h->has_last && h->last_ok &&
                                             !memcmp(h->last_hash, v->expect_prev,
                                                     CN_AUDIT_HASH_SIZE);
        if (v->r.found < v->r.recorded) {
            v->r.missing = v->r.recorded - v->r.found;
            decide(v, CN_AUDIT_TRUNCATED, NULL);
        } else if (v->r.found > v->r.recorded || !head_ok) {
            decide(v, CN_AUDIT_HEAD, NULL);
        }
    }
    v->fn(v->ctx, &v->r);
}

static void verify_start(void *ctx, const rollout_head *h)
{
    verifier *v = ctx;
    reset(v, h->id);
    v->r.recorded = h->recorded;
}

int cn_store_audit_verify(cn_store *s, const char *id, cn_audit_result_fn fn, void *ctx,
                          char *err, size_t errlen)
{
    if (!s || !fn)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store or callback");
    verifier v = {.fn = fn, .ctx = ctx};
    walk w = {.start = verify_start, .entry = verify_entry, .end = verify_end, .ctx = &v};
    int code = walk_all(s, id, &w, err, errlen);
    if (!code && v.code)
        code = cn_store_fail(err, errlen, v.code, "out of memory verifying the audit chain");
    return code;
}

/* ---- in words ----------------------------------------------------------- */

void cn_audit_describe(const cn_audit_result *r, char *buf, size_t len)
{
    switch (r->verdict) {
    case CN_AUDIT_INTACT:
        snprintf(buf, len, "rollout %s: %" PRId64 " events intact", r->rollout, r->found);
        break;
    case CN_AUDIT_CHANGED:
        snprintf(buf, len,
                 "rollout %s: event #%" PRId64 " (seq %" PRId64 ", type %s) does not match its "
                 "hash: the row was changed",
                 r->rollout, r->index, r->seq, r->type ? r->type : "?");
        break;
    case CN_AUDIT_MISSING:
        if (r->missing == 1)
            snprintf(buf, len,
                     "rollout %s: event #%" PRId64 " is missing (deleted before seq %" PRId64 ")",
                     r->rollout, r->index, r->seq);
        else
            snprintf(buf, len,
                     "rollout %s: events #%" PRId64 " to #%" PRId64 " are missing (deleted "
                     "before seq %" PRId64 ")",
                     r->rollout, r->index, r->index + r->missing - 1, r->seq);
        break;
    case CN_AUDIT_TRUNCATED:
        snprintf(buf, len,
                 "rollout %s: the last %" PRId64 " event%s missing (rollout records %" PRId64
                 " events, %" PRId64 " found)",
                 r->rollout, r->missing, r->missing == 1 ? " is" : "s are", r->recorded,
                 r->found);
        break;
    case CN_AUDIT_UNHASHED:
        snprintf(buf, len,
                 "rollout %s: event seq %" PRId64 " (type %s) has no hash but follows chained "
                 "events: it was added outside canary",
                 r->rollout, r->seq, r->type ? r->type : "?");
        break;
    case CN_AUDIT_HEAD:
        snprintf(buf, len,
                 "rollout %s: its row records %" PRId64 " events and a last hash that do not "
                 "match the %" PRId64 " events found: the rollouts row was changed",
                 r->rollout, r->recorded, r->found);
        break;
    }
}
