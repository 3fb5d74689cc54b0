/* The story of one rollout for people: see explain.h. Built from the
 * stored plan JSON and the event log only; sentences that would need
 * something not stored say it is not recorded. */
#include "canary/explain.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary/run_view.h"
#include "canary/status.h"
#include "explain_internal.h"

/* ---- a growing string --------------------------------------------------- */

void cn_xp_add(sb *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->failed = true;
        return;
    }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *more = realloc(b->s, cap);
        if (!more) {
            b->failed = true;
            return;
        }
        b->s = more;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Ends the current paragraph (when it has text). */
static void flush(story *st)
{
    if (st->cur.failed)
        st->failed = true;
    if (st->failed || !st->cur.n) {
        free(st->cur.s);
        memset(&st->cur, 0, sizeof st->cur);
        return;
    }
    char **more = realloc(st->x->para, (st->x->n + 1) * sizeof *more);
    if (!more) {
        st->failed = true;
        free(st->cur.s);
    } else {
        st->x->para = more;
        st->x->para[st->x->n++] = st->cur.s;
    }
    memset(&st->cur, 0, sizeof st->cur);
}

/* Adds a sentence to the current paragraph, a space before it. */
void cn_xp_say(story *st, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cn_xp_add(&st->cur, "%s%s", st->cur.n ? " " : "", buf);
}

/* "09:35:32", the first time in the story "2026-11-29 09:35:32 UTC". */
static void clock_text(story *st, char *buf, size_t len, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, len, "an unrecorded time");
        return;
    }
    strftime(buf, len, st->dated ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S UTC", &tm);
    st->dated = true;
}

static void span_text(char *buf, size_t len, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 60000)
        snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%lld min %lld s", (long long)(ms / 60000),
                 (long long)(ms % 60000 / 1000));
    else
        snprintf(buf, len, "%lld h %lld min", (long long)(ms / 3600000),
                 (long long)(ms % 3600000 / 60000));
}

double cn_xp_num(const json_t *o, const char *key, bool *have)
{
    json_t *v = json_object_get(o, key);
    *have = json_is_number(v);
    return *have ? json_number_value(v) : 0;
}

/* ---- the timeline ------------------------------------------------------- */

enum { MAX_METRICS = 16, OUTCOMES = 4 };
static const char *const outcome_names[OUTCOMES] = {"pass", "fail", "nodata", "error"};
static const char *const outcome_verbs[OUTCOMES] = {"passed", "failed", "had no data",
                                                    "errored"};

typedef struct metric_run {
    char name[64];
    unsigned count[OUTCOMES];
    bool have_last, have_max;
    double last, max; /* a judged metric's value is its round's score: max is the lowest */
    bool judged;
} metric_run;

typedef struct timeline {
    story *st;
    const cn_rollout_row *r;
    metric_run m[MAX_METRICS];
    size_t metrics, measured;
    int64_t first_ms, last_ms;
    const cn_store_event *requests; /* the last request count of the run */
    const cn_store_event *failing;  /* the last measurement that did not pass */
    double max_weight;              /* fraction, from stage_applied */
    bool any_stage;
} timeline;

static void count_measurement(timeline *t, const cn_store_event *e)
{
    json_t *d = e->data_json ? json_loads(e->data_json, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(d, "metric"));
    const char *outcome = json_string_value(json_object_get(d, "outcome"));
    if (!t->measured)
        t->first_ms = e->time_ms;
    t->last_ms = e->time_ms;
    t->measured++;
    size_t k = 0;
    while (k < t->metrics && strcmp(t->m[k].name, name ? name : "?"))
        k++;
    if (k == t->metrics && k < MAX_METRICS)
        snprintf(t->m[t->metrics++].name, sizeof t->m[k].name, "%s", name ? name : "?");
    if (k < MAX_METRICS) {
        metric_run *m = &t->m[k];
        for (size_t o = 0; o < OUTCOMES; o++)
            if (outcome && !strcmp(outcome, outcome_names[o]))
                m->count[o]++;
        bool have;
        double v = cn_xp_num(d, "value", &have);
        const char *kind = json_string_value(json_object_get(d, "kind"));
        m->judged = kind && !strcmp(kind, "judge");
        m->have_last = have;
        m->last = v;
        if (have && (!m->have_max || (m->judged ? v < m->max : v > m->max))) {
            m->max = v;
            m->have_max = true;
        }
    }
    if (outcome && strcmp(outcome, "pass"))
        t->failing = e;
    json_decref(d);
}

/* The measurements since the last decision, as one sentence. */
static void flush_measurements(timeline *t)
{
    story *st = t->st;
    if (t->measured) {
        char span[32];
        span_text(span, sizeof span, t->last_ms - t->first_ms);
        /* Metrics polled together arrive at one instant: no span to tell. */
        if (t->measured == 1 || t->last_ms == t->first_ms)
            cn_xp_add(&st->cur, "%s%zu measurement%s:", st->cur.n ? " " : "", t->measured,
                      t->measured == 1 ? "" : "s");
        else
            cn_xp_add(&st->cur, "%sOver %s, %zu measurements:", st->cur.n ? " " : "", span,
                t->measured);
        for (size_t k = 0; k < t->metrics; k++) {
            metric_run *m = &t->m[k];
            cn_xp_add(&st->cur, "%s %s", k ? ";" : "", m->name);
            bool first = true;
            for (size_t o = 0; o < OUTCOMES; o++) {
                if (!m->count[o])
                    continue;
                cn_xp_add(&st->cur, "%s %s ", first ? "" : " and", outcome_verbs[o]);
                if (m->count[o] == 1)
                    cn_xp_add(&st->cur, "once");
                else
                    cn_xp_add(&st->cur, "%u times", m->count[o]);
                first = false;
            }
            if (first)
                cn_xp_add(&st->cur, " has no recorded outcome");
            if (m->have_last && m->judged)
                cn_xp_add(&st->cur, " (last score %.4g, lowest %.4g)", m->last, m->max);
            else if (m->have_last)
                cn_xp_add(&st->cur, " (last %.4g, highest %.4g)", m->last, m->max);
        }
        cn_xp_add(&st->cur, ".");
    }
    if (t->requests) {
        const char *d = t->requests->detail;
        const char *colon = strstr(d, ": ");
        cn_xp_say(st, "Requests: %s.", colon ? colon + 2 : d);
    }
    t->measured = 0;
    t->metrics = 0;
    t->requests = NULL;
    memset(t->m, 0, sizeof t->m);
}

/* The failing measurement's data, in words. */
static void evidence(timeline *t)
{
    story *st = t->st;
    if (!t->failing) {
        cn_xp_say(st, "The failing measurement is not recorded.");
        return;
    }
    json_t *d = t->failing->data_json ? json_loads(t->failing->data_json, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(d, "metric"));
    const char *outcome = json_string_value(json_object_get(d, "outcome"));
    bool hv, hmin, hmax, hb;
    double v = cn_xp_num(d, "value", &hv), lo = cn_xp_num(d, "min", &hmin);
    double hi = cn_xp_num(d, "max", &hmax);
    double base = cn_xp_num(d, "baseline", &hb);
    if (!d || !name) {
        cn_xp_say(st, "The evidence: %s.", t->failing->detail);
        json_decref(d);
        return;
    }
    if (outcome && strcmp(outcome, "fail")) {
        cn_xp_say(st, "The evidence: %s %s (%s).", name,
            !strcmp(outcome, "nodata") ? "had no data" : "errored", t->failing->detail);
        json_decref(d);
        return;
    }
    const char *kind = json_string_value(json_object_get(d, "kind"));
    if (kind && !strcmp(kind, "judge") && hv && hmin) {
        cn_xp_say(st, "The evidence: compared with the baseline, the judged metrics scored "
            "%.4g, below marginal %.4g (%s).", v, lo, t->failing->detail);
        json_decref(d);
        return;
    }
    cn_xp_add(&st->cur, " The evidence: %s", name);
    if (hv)
        cn_xp_add(&st->cur, " read %.4g", v);
    else
        cn_xp_add(&st->cur, " gave no value (%s)", outcome ? outcome : "outcome not recorded");
    if (hmin && hmax)
        cn_xp_add(&st->cur, " against an allowed range of %.4g to %.4g", lo, hi);
    else if (hmax)
        cn_xp_add(&st->cur, " against a maximum of %.4g", hi);
    else if (hmin)
        cn_xp_add(&st->cur, " against a minimum of %.4g", lo);
    if (hb)
        cn_xp_add(&st->cur, ", the baseline reading %.4g", base);
    cn_xp_add(&st->cur, " (%s).", t->failing->detail);
    json_decref(d);
}

static bool is(const cn_store_event *e, const char *type)
{
    return !strcmp(e->type, type);
}

/* What an operator did, as a verb phrase. */
static const char *operator_verb(const char *type)
{
    static const char *const map[][2] = {
        {"approved", "approved"},          {"paused", "paused the rollout"},
        {"resumed", "resumed the rollout"}, {"aborted", "aborted the rollout"},
        {"promoted", "promoted"},          {"rolling_back", "rolled back"},
        {"intent_refused", "was refused"}, {"approval_refused", "was refused the approval"},
        {"started", "started the rollout"},
        {"operator_promote", "cut the bake short"},
        {"awaiting_approval", "brought the rollout to its approval gate"},
        {"operator_promote_full", "sent the change straight to its last stage"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(type, map[i][0]))
            return map[i][1];
    return type;
}

static void attempt_text(story *st, const cn_store_event *e, const char *when)
{
    json_t *d = e->data_json ? json_loads(e->data_json, 0, NULL) : NULL;
    const char *what = json_string_value(json_object_get(d, "what"));
    const char *output = json_string_value(json_object_get(d, "output"));
    json_t *n = json_object_get(d, "attempt");
    if (!d)
        cn_xp_say(st, "At %s the actuator failed: %s.", when, e->detail);
    else
        cn_xp_say(st, "At %s the actuator's attempt %lld failed: %s; its output: %s.", when,
            (long long)json_integer_value(n), what && *what ? what : "no reason recorded",
            output && *output ? output : "none");
    json_decref(d);
}

static void event_text(timeline *t, const cn_store_event *e)
{
    story *st = t->st;
    char when[40];
    if (is(e, "measurement")) {
        count_measurement(t, e);
        return;
    }
    if (is(e, "requests")) {
        t->requests = e;
        return;
    }
    /* Mechanics that the sentences around them already tell. */
    if (is(e, "actuator_call") || is(e, "actuator_ok"))
        return;
    flush_measurements(t);
    clock_text(st, when, sizeof when, e->time_ms);
    bool human = strcmp(e->actor, "canary") != 0;
    if (is(e, "stage_applied")) {
        unsigned k, of;
        double w;
        flush(st);
        if (sscanf(e->detail, "stage %u of %u serves %lf%%", &k, &of, &w) == 3) {
            cn_xp_say(st, "At %s stage %u began: %g%% of traffic.", when, k, w);
            t->any_stage = true;
            if (w / 100 > t->max_weight)
                t->max_weight = w / 100;
        } else {
            cn_xp_say(st, "At %s a stage was applied: %s.", when, e->detail);
        }
        return;
    }
    if (is(e, "actuator_failed_attempt")) {
        attempt_text(st, e, when);
        return;
    }
    if (human && is(e, "approved")) {
        cn_xp_say(st, "Approved by %s at %s: %s.", e->actor, when, e->detail);
        return;
    }
    if (human) {
        cn_xp_say(st, "%s %s at %s: %s.", e->actor, operator_verb(e->type), when, e->detail);
        if (is(e, "rolling_back") || is(e, "aborted"))
            t->failing = NULL;
        return;
    }
    if (is(e, "started")) {
        cn_xp_say(st, "At %s canary started the rollout: %s.", when, e->detail);
    } else if (is(e, "promoted")) {
        const char *p = strstr(e->detail, "passed its analysis: ");
        unsigned k;
        if (p && sscanf(e->detail, "stage %u", &k) == 1)
            cn_xp_say(st, "At %s stage %u passed: %s.", when, k,
                      p + strlen("passed its analysis: "));
        else
            cn_xp_say(st, "At %s canary promoted: %s.", when, e->detail);
    } else if (is(e, "rolling_back")) {
        cn_xp_say(st, "At %s canary began %s.", when, e->detail);
        if (strstr(e->detail, "for analysis"))
            evidence(t);
    } else if (is(e, "late_measurement")) {
        cn_xp_say(st, "At %s a late measurement was not counted: %s.", when, e->detail);
    } else {
        static const char *const lead[][2] = {
            {"rolled_back", "the rollback was done"}, {"completed", "the rollout completed"},
            {"failed", "the rollout failed"},         {"aborted", "the rollout was aborted"},
            {"awaiting_approval", "the rollout waited for approval"},
            {"paused", "the rollout paused"},         {"detached", "canary detached"},
            {"actuator_failed", "the actuator failed for good"},
            {"ignored", "canary ignored a result"},
            {"resumed", "a new canary run took the rollout over"},
            {"approval_overdue", "the approval was overdue"},
        };
        const char *what = NULL;
        for (size_t i = 0; i < sizeof lead / sizeof lead[0]; i++)
            if (is(e, lead[i][0]))
                what = lead[i][1];
        if (what)
            cn_xp_say(st, "At %s %s: %s.", when, what, e->detail);
        else
            cn_xp_say(st, "At %s (%s) %s.", when, e->type, e->detail);
    }
}

static void outcome(timeline *t, const cn_store_event *ev, size_t n, json_t *plan)
{
    story *st = t->st;
    const cn_rollout_row *r = t->r;
    flush(st);
    char span[32] = "an unrecorded time";
    if (n)
        span_text(span, sizeof span, ev[n - 1].time_ms - ev[0].time_ms);
    if (r->exit_code >= 0)
        cn_xp_say(st, "Outcome: %s (exit %d) after %s;", cn_exit_code_meaning(r->exit_code),
            r->exit_code, span);
    else
        cn_xp_say(st, "Outcome: not finished: %s at stage %u of %u after %s so far;", r->state,
            r->stage, r->stages, span);
    bool have;
    double reach = cn_xp_num(json_object_get(plan, "blast_radius"), "reach", &have);
    if (!t->any_stage) {
        cn_xp_add(&st->cur, " no stage was applied, so no traffic saw %s.", r->version);
        return;
    }
    cn_xp_add(&st->cur, " at most %.4g%% of %s's traffic", t->max_weight * 100, r->service);
    if (have)
        cn_xp_add(&st->cur, " (%.3g%% of all user requests)", t->max_weight * reach * 100);
    cn_xp_add(&st->cur, " saw %s.", r->version);
}

/* ---- the whole -------------------------------------------------------- */

void cn_explanation_free(cn_explanation *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++)
        free(x->para[i]);
    free(x->para);
    memset(x, 0, sizeof *x);
}

int cn_explain(const cn_rollout_row *row, const cn_store_event *ev, size_t n,
               cn_explanation *out)
{
    if (!row || !out || (n && !ev))
        return CN_EINVAL;
    memset(out, 0, sizeof *out);
    story st = {.x = out};
    json_t *plan = row->plan_json ? json_loads(row->plan_json, 0, NULL) : NULL;
    cn_xp_why(&st, row, plan);
    flush(&st);
    timeline t = {.st = &st, .r = row};
    if (n == 0)
        cn_xp_say(&st, "No event is recorded for this rollout.");
    for (size_t i = 0; i < n; i++)
        event_text(&t, &ev[i]);
    flush_measurements(&t);
    outcome(&t, ev, n, plan);
    flush(&st);
    json_decref(plan);
    if (st.failed) {
        cn_explanation_free(out);
        return CN_ENOMEM;
    }
    return CN_OK;
}

int cn_explanation_text(const cn_explanation *x, size_t width, char **text)
{
    if (!x || !text || width == 0)
        return CN_EINVAL;
    sb b = {0};
    for (size_t p = 0; p < x->n; p++) {
        if (p)
            cn_xp_add(&b, "\n");
        const char *s = x->para[p];
        size_t col = 0;
        while (*s) {
            while (*s == ' ')
                s++;
            size_t w = strcspn(s, " ");
            if (!w)
                break;
            if (col && col + 1 + w > width) {
                cn_xp_add(&b, "\n");
                col = 0;
            }
            cn_xp_add(&b, "%s%.*s", col ? " " : "", (int)w, s);
            col += (col ? 1 : 0) + w;
            s += w;
        }
        cn_xp_add(&b, "\n");
    }
    if (b.failed || !b.s) {
        free(b.s);
        *text = NULL;
        return b.failed ? CN_ENOMEM : (*text = strdup("")) ? CN_OK : CN_ENOMEM;
    }
    *text = b.s;
    return CN_OK;
}
