/*
 * notify.c: the policy's webhooks told what happens to a rollout (shell).
 * The contract is in include/canary/notify.h; the payloads and delivery
 * rules are described for users in docs/policy.md#notify.
 */
#include "canary/notify.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary/actuator.h" /* cn_format_weight */
#include "canary/provider.h" /* cn_source_headers */
#include "canary/status.h"
#include "canary/text.h" /* cn_utc_stamp */

/* Notifications by their index in cn_notify_event_names (and bit in
 * cn_webhook.events). */
enum { EV_STARTED, EV_STAGE_ADVANCED, EV_AWAITING_APPROVAL, EV_ROLLED_BACK, EV_COMPLETED,
       EV_FAILED };

/* One notification for one webhook. */
typedef struct note {
    struct note *next;
    int event; /* index into cn_notify_event_names */
    char *body;
} note;

typedef struct hook {
    cn_notifier *n;
    const cn_webhook *cfg;
    char **headers;
    size_t header_count;
    note *head, *tail; /* waiting, oldest first */
    size_t waiting;
    note *current;     /* in flight, or waiting for its retry */
    unsigned tries;
    bool in_flight;
    uint64_t request_id;
    char start_error[256]; /* cn_http_start refused current: reported from the loop */
    unsigned dropped;  /* notifications dropped from a full queue, not yet reported */
    int last_dropped;
    uv_timer_t retry;
} hook;

struct cn_notifier {
    uv_loop_t *loop;
    cn_http *http;
    hook *hooks;
    size_t count;
    char *rollout, *service, *version;
    bool ai_assisted;
    cn_notify_failure on_failure;
    void *ctx;
    int64_t retry_ms;
    unsigned last_stage;      /* the last stage applied, 0 before the first */
    double last_stage_weight;
    cn_engine_observer next;
    bool draining;
    cn_notify_drained drained;
    void *drained_ctx;
    uv_timer_t deadline;      /* bounds a drain, and calls back an idle one from the loop */
    uv_timer_t report;        /* reports dropped notifications from the loop */
    unsigned open_handles;
    bool closing;
};

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- messages ------------------------------------------------------------ */

void cn_notify_url_shown(char *buf, size_t len, const char *url)
{
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep) {
        snprintf(buf, len, "%s", or_empty(url));
        return;
    }
    size_t host = (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
    bool more = url[host] && strcmp(url + host, "/") != 0;
    snprintf(buf, len, "%.*s%s", (int)host, url, more ? "/..." : "");
}

void cn_notify_log_failure(void *stream, const char *url, const char *why)
{
    char shown[256];
    cn_notify_url_shown(shown, sizeof shown, url);
    fprintf(stream ? (FILE *)stream : stderr,
            "canary run: notify %s failed: %s; the rollout goes on\n", shown, why);
}

static void report(cn_notifier *n, const hook *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(cn_notifier *n, const hook *h, const char *fmt, ...)
{
    if (!n->on_failure)
        return;
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    n->on_failure(n->ctx, h->cfg->url, why);
}

/* ---- payloads -------------------------------------------------------------- */

/* A growing string; oom is sticky and checked once at the end. */
typedef struct text {
    char *s;
    size_t len, cap;
    bool oom;
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *more = realloc(t->s, cap);
        if (!more) {
            t->oom = true;
            return;
        }
        t->s = more;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_addf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_addf(text *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (w > 0)
        text_add(t, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf - 1);
}

/* Slack reads <...> as a link or a mention and & as an entity: its three
 * control characters are escaped so that a detail shows as written. */
static void text_mrkdwn(text *t, const char *s)
{
    for (; *s; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (rep)
            text_add(t, rep, strlen(rep));
        else
            text_add(t, s, 1);
    }
}

static const char *const slack_icons[CN_NOTIFY_EVENT_COUNT] = {
    ":rocket:", ":arrow_up:", ":raised_hand:", ":rotating_light:", ":white_check_mark:", ":x:"};

/* "stage 2/5 (5%)". */
static void text_stage(text *t, unsigned stage, unsigned stages, double weight)
{
    char w[32];
    cn_format_weight(w, sizeof w, weight);
    text_addf(t, "stage %u/%u (%s%%)", stage, stages, w);
}

/* ":rotating_light: canary: rollout `ID` (svc 1.2.3, AI-assisted) rolled
 * back at stage 2/5 (5%): DETAIL" */
static char *slack_body(const cn_notifier *n, int event, const cn_store_event *ev,
                        const cn_notify_status *st)
{
    text t = {0};
    text_addf(&t, "%s canary: rollout `", slack_icons[event]);
    text_mrkdwn(&t, n->rollout);
    text_add(&t, "` (", 3);
    text_mrkdwn(&t, n->service);
    text_add(&t, " ", 1);
    text_mrkdwn(&t, n->version);
    if (n->ai_assisted)
        text_addf(&t, ", AI-assisted");
    text_add(&t, ") ", 2);
    unsigned stage = n->last_stage;
    double w = n->last_stage_weight;
    switch (event) {
    case EV_STARTED:
        text_addf(&t, "started");
        break;
    case EV_STAGE_ADVANCED:
        text_addf(&t, "advanced to ");
        text_stage(&t, stage, st->stages, w);
        break;
    case EV_COMPLETED:
        text_addf(&t, "completed at ");
        text_stage(&t, stage, st->stages, w);
        break;
    default: /* awaiting approval, rolled back, failed: where it stands */
        text_addf(&t, "%s ", event == EV_AWAITING_APPROVAL ? "awaits approval"
                             : event == EV_ROLLED_BACK    ? "rolled back"
                                                          : "FAILED");
        if (stage) {
            text_addf(&t, "at ");
            text_stage(&t, stage, st->stages, w);
        } else {
            text_addf(&t, "before stage 1");
        }
        break;
    }
    text_add(&t, ": ", 2);
    text_mrkdwn(&t, or_empty(ev->detail));
    json_t *o = t.oom ? NULL : json_pack("{s:s}", "text", t.s);
    free(t.s);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

/* Weights are percent numbers spelt as CANARY_WEIGHT spells them (5, not
 * 5.000000000000001). */
static double percent(double fraction)
{
    char w[32];
    cn_format_weight(w, sizeof w, fraction);
    return strtod(w, NULL);
}

static char *generic_body(const cn_notifier *n, int event, const cn_store_event *ev,
                          const cn_notify_status *st)
{
    char when[40];
    cn_utc_stamp(when, sizeof when, ev->time_ms);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:f, s:s, s:s, s:s}",
                          "event", cn_notify_event_names[event], "rollout", n->rollout,
                          "service", n->service, "version", n->version, "ai_assisted",
                          n->ai_assisted, "state", cn_rollout_state_name(st->state), "stage",
                          (json_int_t)n->last_stage, "stages", (json_int_t)st->stages,
                          "weight", percent(st->weight), "detail", or_empty(ev->detail),
                          "actor", or_empty(ev->actor), "time", when);
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    return body;
}

/* The notification a record makes, or -1 for none. */
static int event_of(const cn_store_event *ev, const cn_notify_status *st)
{
    const char *t = ev->type ? ev->type : "";
    if (!strcmp(t, "started"))
        return EV_STARTED;
    if (!strcmp(t, "stage_applied"))
        return EV_STAGE_ADVANCED;
    /* An overdue approval (approval.on_timeout: wait) reminds the same
     * people again; its detail says how long it has waited. */
    if (!strcmp(t, "awaiting_approval") || !strcmp(t, "approval_overdue"))
        return EV_AWAITING_APPROVAL;
    /* "aborted" is also recorded when an abort is decided, before its
     * rollback ran; only the end of an aborted rollout is a rollback. */
    if (!strcmp(t, "rolled_back") || (!strcmp(t, "aborted") && st->state == CN_STATE_ABORTED))
        return EV_ROLLED_BACK;
    if (!strcmp(t, "completed"))
        return EV_COMPLETED;
    if (!strcmp(t, "failed"))
        return EV_FAILED;
    return -1;
}

/* ---- sending ----------------------------------------------------------- */

static void check_drained(cn_notifier *n);
static void attempt(hook *h);

static bool hook_idle(const hook *h)
{
    return !h->current && !h->head;
}

static void note_free(note *x)
{
    if (x) {
        free(x->body);
        free(x);
    }
}

/* current is done with (sent, or given up): the next one goes. */
static void next_note(hook *h)
{
    note_free(h->current);
    h->current = NULL;
    h->tries = 0;
    if (!h->head)
        return;
    h->current = h->head;
    h->head = h->head->next;
    if (!h->head)
        h->tail = NULL;
    h->waiting--;
    h->current->next = NULL;
    attempt(h);
}

/* Reports current as not delivered and moves on; may end a drain (and
 * free the notifier), so nothing may touch h or its notifier after it. */
static void give_up(hook *h, const char *why)
{
    cn_notifier *n = h->n;
    char again[64] = "";
    if (h->tries > 1) {
        char d[24];
        cn_format_duration(d, sizeof d, n->retry_ms);
        snprintf(again, sizeof again, ", also on the retry after %s", d);
    }
    report(n, h, "%s%s; the '%s' notification was not sent", why, again,
           cn_notify_event_names[h->current->event]);
    next_note(h);
    check_drained(n);
}

static void on_retry(uv_timer_t *t)
{
    hook *h = t->data;
    if (!h->current)
        return;
    if (h->start_error[0]) {
        char why[sizeof h->start_error];
        memcpy(why, h->start_error, sizeof why);
        h->start_error[0] = '\0';
        give_up(h, why);
        return;
    }
    attempt(h);
}

static void on_reply(void *ctx, const cn_http_reply *r)
{
    hook *h = ctx;
    cn_notifier *n = h->n;
    h->in_flight = false;
    if (!r->error && r->status >= 200 && r->status <= 299) {
        next_note(h);
        check_drained(n);
        return;
    }
    char why[400];
    if (r->error) {
        snprintf(why, sizeof why, "%s", r->error);
    } else {
        /* A webhook's reason is usually a short text ("invalid_payload"). */
        char said[128];
        size_t k = 0;
        for (size_t i = 0; i < r->len && k < sizeof said - 4; i++)
            said[k++] = (unsigned char)r->body[i] < 0x20 ? ' ' : r->body[i];
        said[k] = '\0';
        if (k < r->len)
            memcpy(said + k, "...", 4);
        snprintf(why, sizeof why, "HTTP %ld%s%s", r->status, k ? ": " : "", said);
    }
    /* A request that took its whole timeout may have been taken, and a
     * second wait as long would double what a run waits for at exit. */
    bool again = r->error ? r->elapsed_ms < h->cfg->timeout_ms : r->status >= 500;
    if (again && h->tries < 2) {
        uv_timer_start(&h->retry, on_retry, (uint64_t)n->retry_ms, 0);
        return;
    }
    give_up(h, why);
}

static void attempt(hook *h)
{
    h->tries++;
    cn_http_request req = {.url = h->cfg->url,
                           .body = h->current->body,
                           .content_type = "application/json",
                           .headers = (const char *const *)h->headers,
                           .header_count = h->header_count,
                           .timeout_ms = h->cfg->timeout_ms};
    char err[200] = "";
    if (cn_http_start(h->n->http, &req, on_reply, h, &h->request_id, err, sizeof err) == CN_OK) {
        h->in_flight = true;
        return;
    }
    /* Not retried: the request itself was refused. Reported from the loop,
     * never from inside a feed. */
    snprintf(h->start_error, sizeof h->start_error, "could not send: %s",
             err[0] ? err : "out of memory");
    uv_timer_start(&h->retry, on_retry, 0, 0);
}

static void on_report(uv_timer_t *t)
{
    cn_notifier *n = t->data;
    for (size_t i = 0; i < n->count; i++) {
        hook *h = &n->hooks[i];
        if (!h->dropped)
            continue;
        report(n, h, "more than %d notifications were waiting for it: dropped the oldest "
               "%u (the last of them '%s')", CN_NOTIFY_QUEUE_MAX, h->dropped,
               cn_notify_event_names[h->last_dropped]);
        h->dropped = 0;
    }
}

static void enqueue(hook *h, int event, char *body)
{
    note *x = calloc(1, sizeof *x);
    if (!x) {
        free(body);
        h->dropped++;
        h->last_dropped = event;
        uv_timer_start(&h->n->report, on_report, 0, 0);
        return;
    }
    x->event = event;
    x->body = body;
    if (!h->current) {
        h->current = x;
        attempt(h);
        return;
    }
    if (h->waiting == CN_NOTIFY_QUEUE_MAX) {
        note *old = h->head;
        h->head = old->next;
        if (!h->head)
            h->tail = NULL;
        h->waiting--;
        h->dropped++;
        h->last_dropped = old->event;
        note_free(old);
        uv_timer_start(&h->n->report, on_report, 0, 0);
    }
    if (h->tail)
        h->tail->next = x;
    else
        h->head = x;
    h->tail = x;
    h->waiting++;
}

void cn_notify_feed(cn_notifier *n, const cn_store_event *ev, const cn_notify_status *st)
{
    if (!n || n->closing || !ev || !st)
        return;
    if (st->stage > 0) {
        n->last_stage = st->stage;
        n->last_stage_weight = st->stage_weight;
    }
    int event = event_of(ev, st);
    if (event < 0)
        return;
    for (size_t i = 0; i < n->count; i++) {
        hook *h = &n->hooks[i];
        if (!(h->cfg->events & (1u << event)))
            continue;
        char *body = h->cfg->format == CN_NOTIFY_SLACK ? slack_body(n, event, ev, st)
                                                       : generic_body(n, event, ev, st);
        if (!body) {
            h->dropped++;
            h->last_dropped = event;
            uv_timer_start(&n->report, on_report, 0, 0);
            continue;
        }
        enqueue(h, event, body);
    }
}

/* ---- the engine observer ---------------------------------------------------- */

static void observe_record(void *ctx, const cn_engine *e, const cn_store_event *ev,
                           bool stored)
{
    cn_notifier *n = ctx;
    const cn_rollout *r = cn_engine_rollout(e);
    const cn_plan *plan = cn_engine_config_of(e)->plan;
    cn_notify_status st = {.state = r->state, .stage = r->stage,
                           .stages = (unsigned)plan->stage_count,
                           .weight = cn_engine_weight(e)};
    if (r->stage >= 1 && r->stage <= plan->stage_count)
        st.stage_weight = plan->stages[r->stage - 1].weight;
    cn_notify_feed(n, ev, &st);
    if (n->next.on_record)
        n->next.on_record(n->next.ctx, e, ev, stored);
}

static void observe_reading(void *ctx, const cn_engine *e, size_t metric,
                            const cn_reading *canary, cn_outcome outcome, const char *why)
{
    cn_notifier *n = ctx;
    if (n->next.on_reading)
        n->next.on_reading(n->next.ctx, e, metric, canary, outcome, why);
}

static void observe_finish(void *ctx, const cn_engine *e, int exit_code)
{
    cn_notifier *n = ctx;
    if (n->next.on_finish)
        n->next.on_finish(n->next.ctx, e, exit_code);
}

cn_engine_observer cn_notify_observer(cn_notifier *n, const cn_engine_observer *next)
{
    cn_engine_observer none = {0};
    if (!n)
        return next ? *next : none;
    n->next = next ? *next : none;
    return (cn_engine_observer){.on_record = observe_record, .on_reading = observe_reading,
                                .on_finish = observe_finish, .ctx = n};
}

/* ---- draining ------------------------------------------------------------- */

static void finish_drain(cn_notifier *n)
{
    uv_timer_stop(&n->deadline);
    on_report(&n->report);
    uv_timer_stop(&n->report);
    n->draining = false;
    cn_notify_drained done = n->drained;
    n->drained = NULL;
    if (done)
        done(n->drained_ctx); /* may free n */
}

static void check_drained(cn_notifier *n)
{
    if (!n->draining)
        return;
    for (size_t i = 0; i < n->count; i++)
        if (!hook_idle(&n->hooks[i]))
            return;
    finish_drain(n);
}

/* Time is up: what is still out or waiting is given up, in one report per
 * webhook. */
static void on_deadline(uv_timer_t *t)
{
    cn_notifier *n = t->data;
    for (size_t i = 0; i < n->count; i++) {
        hook *h = &n->hooks[i];
        if (hook_idle(h))
            continue;
        if (h->in_flight)
            cn_http_cancel(n->http, h->request_id);
        h->in_flight = false;
        uv_timer_stop(&h->retry);
        char more[96] = "";
        if (h->waiting)
            snprintf(more, sizeof more, " (and %zu more waiting behind it)", h->waiting);
        report(n, h, "canary is exiting: the '%s' notification%s did not go out in time",
               cn_notify_event_names[h->current->event], more);
        while (h->head) {
            note *x = h->head;
            h->head = x->next;
            note_free(x);
        }
        h->tail = NULL;
        h->waiting = 0;
        note_free(h->current);
        h->current = NULL;
        h->start_error[0] = '\0';
    }
    finish_drain(n);
}

void cn_notify_drain(cn_notifier *n, cn_notify_drained done, void *ctx)
{
    if (!n) {
        if (done)
            done(ctx);
        return;
    }
    n->draining = true;
    n->drained = done;
    n->drained_ctx = ctx;
    int64_t bound = 0;
    for (size_t i = 0; i < n->count; i++) {
        int64_t b = 2 * n->hooks[i].cfg->timeout_ms + n->retry_ms;
        if (!hook_idle(&n->hooks[i]) && b > bound)
            bound = b;
    }
    /* Idle already: 0, so that done still comes from the loop. */
    uv_timer_start(&n->deadline, on_deadline, (uint64_t)bound, 0);
}

/* ---- set-up ------------------------------------------------------------------ */

static int webhook_headers(const cn_webhook *w, size_t i, char ***headers, size_t *count,
                           char *err, size_t errlen)
{
    char why[256] = "", shown[256];
    int rc = cn_source_headers(&w->auth, headers, count, why, sizeof why);
    if (rc == CN_OK)
        return CN_OK;
    cn_source_headers_free(*headers, *count);
    *headers = NULL;
    *count = 0;
    cn_notify_url_shown(shown, sizeof shown, w->url);
    snprintf(err, errlen, "notify webhook %zu (%s, line %u): %s", i + 1, shown, w->line,
             rc == CN_ENOMEM ? "out of memory" : why);
    return rc;
}

int cn_notify_check(const cn_policy *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->notify_count; i++) {
        char **headers = NULL;
        size_t count = 0;
        int rc = webhook_headers(&p->notify[i], i, &headers, &count, err, errlen);
        if (rc != CN_OK)
            return rc;
        cn_source_headers_free(headers, count);
    }
    return CN_OK;
}

static void release(cn_notifier *n)
{
    if (--n->open_handles)
        return;
    for (size_t i = 0; i < n->count; i++)
        cn_source_headers_free(n->hooks[i].headers, n->hooks[i].header_count);
    free(n->hooks);
    free(n->rollout);
    free(n->service);
    free(n->version);
    free(n);
}

static void on_hook_closed(uv_handle_t *t)
{
    release(((hook *)t->data)->n);
}

static void on_closed(uv_handle_t *t)
{
    release(t->data);
}

/* Frees what new allocated before any handle was opened. */
static void free_unopened(cn_notifier *n)
{
    n->open_handles = 1;
    release(n);
}

int cn_notify_new(cn_notifier **out, const cn_notify_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->loop || !cfg->http || (cfg->hook_count && !cfg->hooks)) {
        snprintf(err, errlen, "notify: incomplete configuration");
        return CN_EINVAL;
    }
    cn_notifier *n = calloc(1, sizeof *n);
    if (!n)
        goto nomem;
    n->loop = cfg->loop;
    n->http = cfg->http;
    n->ai_assisted = cfg->ai_assisted;
    n->on_failure = cfg->on_failure;
    n->ctx = cfg->ctx;
    n->retry_ms = cfg->retry_ms > 0 ? cfg->retry_ms : CN_NOTIFY_RETRY_MS;
    n->hooks = calloc(cfg->hook_count ? cfg->hook_count : 1, sizeof *n->hooks);
    n->rollout = strdup(or_empty(cfg->rollout));
    n->service = strdup(or_empty(cfg->service));
    n->version = strdup(or_empty(cfg->version));
    if (!n->hooks || !n->rollout || !n->service || !n->version) {
        free_unopened(n);
        goto nomem;
    }
    for (size_t i = 0; i < cfg->hook_count; i++) {
        hook *h = &n->hooks[i];
        h->n = n;
        h->cfg = &cfg->hooks[i];
        n->count = i + 1; /* so that its headers are freed on failure */
        int rc = webhook_headers(h->cfg, i, &h->headers, &h->header_count, err, errlen);
        if (rc != CN_OK) {
            free_unopened(n);
            return rc;
        }
    }
    for (size_t i = 0; i < n->count; i++) {
        uv_timer_init(n->loop, &n->hooks[i].retry);
        n->hooks[i].retry.data = &n->hooks[i];
    }
    uv_timer_init(n->loop, &n->deadline);
    uv_timer_init(n->loop, &n->report);
    n->deadline.data = n->report.data = n;
    n->open_handles = (unsigned)n->count + 2;
    *out = n;
    return CN_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    return CN_ENOMEM;
}

void cn_notify_free(cn_notifier *n)
{
    if (!n || n->closing)
        return;
    n->closing = true;
    n->draining = false;
    for (size_t i = 0; i < n->count; i++) {
        hook *h = &n->hooks[i];
        if (h->in_flight)
            cn_http_cancel(n->http, h->request_id);
        h->in_flight = false;
        while (h->head) {
            note *x = h->head;
            h->head = x->next;
            note_free(x);
        }
        note_free(h->current);
        h->current = NULL;
        uv_close((uv_handle_t *)&h->retry, on_hook_closed);
    }
    uv_close((uv_handle_t *)&n->deadline, on_closed);
    uv_close((uv_handle_t *)&n->report, on_closed);
}
