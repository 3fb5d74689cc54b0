/* Policy files: notify, the webhooks told what happens to a rollout. Each
 * entry takes its credentials as sources do (bearer_token_env,
 * headers_from_env; never a secret in the file). Sending is notify.c's. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "canary/policy.h"
#include "policy_internal.h"

const char *const cn_notify_event_names[CN_NOTIFY_EVENT_COUNT] = {
    "started", "stage_advanced", "awaiting_approval", "rolled_back", "completed", "failed"};
#define EVENT_LIST "started, stage_advanced, awaiting_approval, rolled_back, completed, failed"

#define DEFAULT_TIMEOUT_MS 5000
/* A run waits for its last notifications before it exits (one try, a
 * second after 1 s): a longer limit would hold a pipeline for nothing. */
#define MAX_TIMEOUT_MS 60000

static const char *const format_names[] = {"generic", "slack", NULL};

/* Names from the event log (canary status, audit) that a person may take
 * for notification names, and the notification they mean. */
static const struct {
    const char *name, *means;
} log_names[] = {
    {"stage_applied", "stage_advanced"}, {"aborted", "rolled_back"},
    {"rollback", "rolled_back"},         {"rolling_back", "rolled_back"},
    {"promoted", "stage_advanced"},
};

static const char *event_hint(const char *name)
{
    for (size_t i = 0; i < sizeof log_names / sizeof log_names[0]; i++)
        if (!strcmp(name, log_names[i].name))
            return log_names[i].means;
    return cn_suggest(name, cn_notify_event_names, CN_NOTIFY_EVENT_COUNT);
}

static int event_bit(const char *name)
{
    for (int i = 0; i < CN_NOTIFY_EVENT_COUNT; i++)
        if (!strcmp(name, cn_notify_event_names[i]))
            return i;
    return -1;
}

/* A non-empty list of known event names, none twice. Reports every bad
 * entry; the bits of the good ones are kept only when all are good. */
static int parse_events(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    if (v->type != CN_NODE_SEQ || !v->count) {
        cn_loader_error(ld, v, "'%s' expects a non-empty list of events (%s), got %s; "
                        "leave '%s' out for all of them", f->key, EVENT_LIST,
                        v->type == CN_NODE_SEQ ? "an empty list" : cn_node_type_name(v),
                        f->key);
        return -1;
    }
    unsigned bits = 0;
    int rc = 0;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *it = v->items[i];
        if (cn_expect_scalar(ld, it, f->key, "a list of event names")) {
            rc = -1;
            continue;
        }
        int b = event_bit(it->text);
        if (b < 0) {
            const char *hint = event_hint(it->text);
            cn_loader_error(ld, it, "unknown event '%.100s' in '%s'%s%s%s; known: " EVENT_LIST,
                            it->text, f->key, hint ? " (did you mean '" : "",
                            hint ? hint : "", hint ? "'?)" : "");
            rc = -1;
        } else if (bits & (1u << b)) {
            cn_loader_error(ld, it, "event '%s' is listed twice in '%s'", it->text, f->key);
            rc = -1;
        } else {
            bits |= 1u << b;
        }
    }
    if (!rc)
        *(unsigned *)dst = bits;
    return rc;
}

static const cn_field webhook_fields[] = {
    {.key = "url", .parse = cn__parse_url, .offset = offsetof(cn_webhook, url),
     .flags = CN_REQUIRED},
    {.key = "format", .parse = cn_parse_enum, .offset = offsetof(cn_webhook, format),
     .choices = format_names},
    {.key = "events", .parse = parse_events, .offset = offsetof(cn_webhook, events)},
    {.key = "timeout", .parse = cn_parse_duration, .offset = offsetof(cn_webhook, timeout_ms),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 0, .max = MAX_TIMEOUT_MS},
    {.key = "bearer_token_env", .parse = cn__parse_env_name,
     .offset = offsetof(cn_webhook, auth.bearer_token_env)},
    {.key = "headers_from_env", .parse = cn__parse_env_headers,
     .offset = offsetof(cn_webhook, auth)},
    CN__SECRET_FIELDS,
};
static const cn_schema webhook_schema = CN_SCHEMA("notify", webhook_fields);

int cn__parse_notify(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_policy *p = dst;
    if (v->type != CN_NODE_SEQ || !v->count) {
        cn_loader_error(ld, v, "'%s' expects a non-empty list of webhooks, each with a "
                        "'url', got %s", f->key,
                        v->type == CN_NODE_SEQ ? "an empty list" : cn_node_type_name(v));
        return -1;
    }
    cn_webhook *hooks = cn_arena_alloc(ld->arena, v->count * sizeof(*hooks));
    if (!hooks) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    unsigned before = ld->errors;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *it = v->items[i];
        cn_webhook *w = &hooks[i];
        memset(w, 0, sizeof *w);
        w->format = CN_NOTIFY_GENERIC;
        w->events = CN_NOTIFY_ALL;
        w->timeout_ms = DEFAULT_TIMEOUT_MS;
        w->line = it->line;
        w->col = it->col;
        if (it->type != CN_NODE_MAP) {
            cn_loader_error(ld, it, "each entry of '%s' must be a map with a 'url', got %s",
                            f->key, cn_node_type_name(it));
            continue;
        }
        cn_load_map(ld, it, &webhook_schema, w);
    }
    if (ld->errors != before)
        return -1;
    p->notify = hooks;
    p->notify_count = v->count;
    return 0;
}
