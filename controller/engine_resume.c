/* Rebuilding a rollout's snapshot from the store, to resume it: the
 * snapshot stored with its last decision, plus the measurements logged
 * after it (they are stored without one, see cn_store_event). */
#include "canary/engine.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/status.h"

typedef struct replay {
    const cn_policy *policy;
    cn_rollout_snapshot stored, snap;
    int64_t stored_ms;  /* when the snapshot was written (the row's updated_ms) */
    char why[200];
} replay;

static bool is_evidence(const char *type)
{
    return !strcmp(type, "measurement") || !strcmp(type, "requests") ||
           !strcmp(type, "late_measurement");
}

static int outcome_of(const char *name, cn_outcome *o)
{
    static const char *const names[] = {"pass", "fail", "nodata", "error"};
    static const cn_outcome outcomes[] = {CN_OUTCOME_PASS, CN_OUTCOME_FAIL, CN_OUTCOME_NODATA,
                                          CN_OUTCOME_ERROR};
    for (size_t i = 0; name && i < 4; i++)
        if (!strcmp(name, names[i])) {
            *o = outcomes[i];
            return CN_OK;
        }
    return CN_EINVAL;
}

static long metric_index(const cn_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->analysis.metric_count; i++)
        if (!strcmp(p->analysis.metrics[i].name, name))
            return (long)i;
    return -1;
}

/* The evidence an event carries, as the machine counted it. */
static int evidence_event(replay *rp, const cn_store_event *ev, cn_event *out)
{
    json_t *data = ev->data_json ? json_loads(ev->data_json, 0, NULL) : NULL;
    int rc = CN_OK;
    if (!strcmp(ev->type, "requests")) {
        json_t *n = json_object_get(data, "requests");
        *out = (cn_event){.kind = CN_EVENT_REQUESTS,
                          .requests = json_is_number(n) ? json_number_value(n) : NAN};
    } else {
        const char *name = json_string_value(json_object_get(data, "metric"));
        long m = metric_index(rp->policy, name);
        cn_outcome o;
        if (m < 0 || outcome_of(json_string_value(json_object_get(data, "outcome")), &o)) {
            snprintf(rp->why, sizeof rp->why, "a measurement of '%s' names no metric of "
                     "policy '%s': the policy's metrics changed since the rollout started",
                     name ? name : "?", rp->policy->name);
            rc = CN_EINVAL;
        } else {
            *out = (cn_event){.kind = CN_EVENT_MEASUREMENT, .metric = (size_t)m, .outcome = o};
        }
    }
    json_decref(data);
    return rc;
}

static int on_event(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    replay *rp = ctx;
    if (!is_evidence(ev->type)) {
        /* Decisions up to the snapshot's own carry it; a later one (an
         * operator's refused request, noted without a snapshot) does not. */
        if (ev->time_ms <= rp->stored_ms)
            rp->snap = rp->stored;
        return 0;
    }
    if (!strcmp(ev->type, "late_measurement"))
        return 0;
    cn_event e;
    if (evidence_event(rp, ev, &e) != CN_OK)
        return 1;
    cn_rollout_snapshot_replay(&rp->snap, &e, ev->time_ms - rp->stored_ms);
    return 0;
}

int cn_engine_snapshot(cn_store *store, const char *id, const cn_policy *policy,
                       cn_rollout_snapshot *snap, char *err, size_t errlen)
{
    cn_rollout_row row = {0};
    int rc = cn_store_get(store, id, &row, err, errlen);
    if (rc != CN_OK)
        return rc;
    static replay zero;
    replay rp = zero;
    rp.policy = policy;
    rp.stored_ms = row.updated_ms;
    if (row.machine_json) {
        char why[200] = "";
        rc = cn_rollout_snapshot_parse(row.machine_json, &rp.stored, why, sizeof why);
        if (rc != CN_OK)
            snprintf(rp.why, sizeof rp.why, "%s", why);
    } else {
        /* Stored, never started: the machine as cn_rollout_init leaves it. */
        cn_rollout fresh;
        memset(&fresh, 0, sizeof fresh);
        fresh.requests = NAN;
        fresh.metric_count = (unsigned)policy->analysis.metric_count;
        rp.stored = cn_rollout_save(&fresh, 0);
    }
    rp.snap = rp.stored;
    cn_rollout_row_free(&row);
    if (rc == CN_OK)
        rc = cn_store_events(store, id, on_event, &rp, err, errlen);
    if (rc == CN_OK && rp.why[0])
        rc = CN_EINVAL;
    if (rc == CN_EINVAL)
        return cn_set_err(err, errlen, CN_EINVAL, "rollout '%s' cannot be resumed: %s", id,
                          rp.why);
    if (rc == CN_OK)
        *snap = rp.snap;
    return rc;
}
