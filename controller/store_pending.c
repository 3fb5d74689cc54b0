/* Evidence held back by a deferring store (store.h, "evidence held
 * back"): copies of measurements kept in memory and written, in order, by
 * the connection's next transaction, so that many measurements share one
 * commit. Every transaction of the store begins and commits here. */
#include "canary/store.h"

#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "store_internal.h"

static void held_release(cn_store_held *h)
{
    json_decref(h->data);
    free(h->id);
    memset(h, 0, sizeof *h);
}

/* Drops the first n held events (written and committed). */
static void drop_written(cn_store *s, size_t n)
{
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        held_release(&s->held[i]);
    memmove(s->held, s->held + n, (s->held_count - n) * sizeof *s->held);
    s->held_count -= n;
}

void cn_store_held_free(cn_store *s)
{
    drop_written(s, s->held_count);
    free(s->held);
    s->held = NULL;
    s->held_cap = 0;
    s->held_written = 0;
}

size_t cn_store_held_count(const cn_store *s)
{
    return s ? s->held_count : 0;
}

void cn_store_held_drop(cn_store *s, const char *id)
{
    if (!s || !id)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < s->held_count; i++) {
        if (strcmp(s->held[i].id, id))
            s->held[kept++] = s->held[i];
        else
            held_release(&s->held[i]);
    }
    s->held_count = kept;
}

int64_t cn_store_held_since(const cn_store *s)
{
    return s && s->held_count ? s->held[0].ev.time_ms : -1;
}

/* Writes every held event not yet written by this transaction. */
static int write_held(cn_store *s)
{
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && s->held_written < s->held_count) {
        rc = cn_store_append_held(s, &s->held[s->held_written]);
        if (rc == SQLITE_OK)
            s->held_written++;
    }
    return rc;
}

int cn_store_begin(cn_store *s, bool relaxed)
{
    s->held_written = 0;
    int rc = cn_store_sync(s, relaxed);
    if (rc == SQLITE_OK)
        rc = cn_store_run(s->st[ST_BEGIN]);
    if (rc == SQLITE_OK)
        rc = write_held(s);
    return rc;
}

int cn_store_commit(cn_store *s)
{
    int rc = cn_store_run(s->st[ST_COMMIT]);
    if (rc == SQLITE_OK)
        drop_written(s, s->held_written);
    s->held_written = 0;
    return rc;
}

/* The message for a failed write of held events. */
static int held_failed(cn_store *s, int rc, char *err, size_t errlen)
{
    const char *id = s->held_written < s->held_count ? s->held[s->held_written].id : "?";
    int code = rc == SQLITE_NOTFOUND
                   ? cn_store_fail(err, errlen, CN_ENOTFOUND,
                                   "could not write %zu held measurements to '%s': no rollout "
                                   "'%s' there any more",
                                   s->held_count, s->path, id)
                   : cn_store_fail_db(s, err, errlen, rc,
                                      "could not write %zu held measurements (rollout '%s') to "
                                      "'%s'",
                                      s->held_count, id, s->path);
    cn_store_rollback(s);
    return code;
}

int cn_store_flush(cn_store *s, char *err, size_t errlen)
{
    if (!s)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store");
    if (s->held_count == 0)
        return CN_OK;
    /* Evidence announces nothing: no need to wait for the disk. */
    int rc = cn_store_begin(s, true);
    if (rc == SQLITE_OK)
        rc = cn_store_commit(s);
    return rc == SQLITE_OK ? CN_OK : held_failed(s, rc, err, errlen);
}

int cn_store_defer_evidence(cn_store *s, bool on, char *err, size_t errlen)
{
    if (!s)
        return cn_store_fail(err, errlen, CN_EINVAL, "no store");
    if (on && s->readonly)
        return cn_store_fail(err, errlen, CN_EINVAL,
                             "state database '%s' was opened read-only; cannot record", s->path);
    int code = on ? CN_OK : cn_store_flush(s, err, errlen);
    if (!code)
        s->defer = on;
    return code;
}

/* Copies the event's strings into one block. */
static int copy_event(cn_store_held *h, const char *id, const cn_store_event *ev)
{
    const char *parts[] = {id, ev->type, ev->actor, ev->detail, ev->data_json};
    size_t len[5], total = 0;
    for (int i = 0; i < 5; i++) {
        len[i] = parts[i] ? strlen(parts[i]) + 1 : 0;
        total += len[i];
    }
    char *block = malloc(total), *at = block;
    if (!block)
        return CN_ENOMEM;
    char *copy[5];
    for (int i = 0; i < 5; i++) {
        copy[i] = parts[i] ? memcpy(at, parts[i], len[i]) : NULL;
        at += len[i];
    }
    h->id = copy[0];
    h->ev = (cn_store_event){.time_ms = ev->time_ms, .type = copy[1], .actor = copy[2],
                             .detail = copy[3], .data_json = copy[4], .evidence_only = true};
    return CN_OK;
}

int cn_store_hold(cn_store *s, const char *id, const cn_store_event *ev, char *err,
                  size_t errlen)
{
    cn_store_held h = {0};
    if (ev->data_json) {
        h.data = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
        if (!h.data)
            return cn_store_fail(err, errlen, CN_EINVAL,
                                 "event '%s' for rollout '%s' has data that is not JSON", ev->type,
                                 id);
    }
    if (s->held_count == s->held_cap) {
        size_t cap = s->held_cap ? 2 * s->held_cap : 64;
        cn_store_held *grown = realloc(s->held, cap * sizeof *grown);
        if (!grown) {
            json_decref(h.data);
            return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory holding event '%s'",
                                 ev->type);
        }
        s->held = grown;
        s->held_cap = cap;
    }
    if (copy_event(&h, id, ev) != CN_OK) {
        json_decref(h.data);
        return cn_store_fail(err, errlen, CN_ENOMEM, "out of memory holding event '%s'", ev->type);
    }
    s->held[s->held_count++] = h;
    return s->held_count > CN_STORE_MAX_HELD ? cn_store_flush(s, err, errlen) : CN_OK;
}
