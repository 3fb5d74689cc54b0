/* The rollout snapshot as JSON (see cn_rollout_snapshot in rollout.h): the
 * machine column of the store, read back to resume. Names, not numbers,
 * for states and reasons, so a snapshot stays readable in the database and
 * an enum reordered later cannot misread an old one. */
#include "canary/rollout.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/status.h"

static const char *const END_NAMES[] = {"none", "promoted", "analysis", "aborted", "signal",
                                        "actuator", "store", "approval_timeout"};
static const char *const APPLY_NAMES[] = {"advance", "rollback", "complete"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static json_t *tally_json(const cn_metric_tally *t)
{
    return json_pack("[i, i, i, i, i, i]", (int)t->passes, (int)t->failures, (int)t->nodata,
                     (int)t->errors, (int)t->consecutive_failures, (int)t->consecutive_errors);
}

char *cn_rollout_snapshot_json(const cn_rollout_snapshot *snap)
{
    json_t *tallies = json_array();
    for (unsigned i = 0; tallies && i < snap->metric_count && i < CN_MAX_METRICS; i++)
        json_array_append_new(tallies, tally_json(&snap->tallies[i]));
    json_t *j = json_pack(
        "{s:i, s:s, s:s, s:i, s:b, s:s, s:i, s:s, s:b, s:s, s:b, s:I, s:b, s:I, s:b, s:b, s:o, "
        "s:o}",
        "version", 2, "state", cn_rollout_state_name(snap->state), "end",
        END_NAMES[snap->end < COUNT(END_NAMES) ? snap->end : 0], "stage", (int)snap->stage,
        "applying", snap->applying, "applying_kind",
        APPLY_NAMES[snap->applying_kind < COUNT(APPLY_NAMES) ? snap->applying_kind : 0],
        "applying_stage", (int)snap->applying_stage, "pending_rollback",
        END_NAMES[snap->pending_rollback < COUNT(END_NAMES) ? snap->pending_rollback : 0],
        "approved", snap->approved, "approver", snap->approver, "baking", snap->baking,
        "baked_ms", (json_int_t)snap->baked_ms, "awaiting", snap->awaiting, "waited_ms",
        (json_int_t)snap->waited_ms, "overdue", snap->overdue, "operator_paused",
        snap->operator_paused, "tallies",
        tallies ? tallies : json_null(), "requests",
        isfinite(snap->requests) ? json_real(snap->requests) : json_null());
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static int name_index(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp(name, names[i]))
            return (int)i;
    return -1;
}

/* A reason by name, or by number as the first snapshots stored it. */
static int end_index(json_t *v)
{
    if (!v)
        return CN_END_NONE;
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 && json_integer_value(v) < (json_int_t)COUNT(END_NAMES)
                   ? (int)json_integer_value(v) : -1;
    return name_index(json_string_value(v), END_NAMES, COUNT(END_NAMES));
}

static int state_index(const char *name)
{
    for (int s = CN_STATE_PENDING; name && s <= CN_STATE_FAILED; s++)
        if (!strcmp(name, cn_rollout_state_name((cn_rollout_state)s)))
            return s;
    return -1;
}

static int bad(char *err, size_t errlen, const char *what)
{
    return cn_set_err(err, errlen, CN_EINVAL, "the stored rollout snapshot %s", what);
}

static int read_tallies(json_t *arr, cn_rollout_snapshot *snap, char *err, size_t errlen)
{
    if (!arr || json_is_null(arr))
        return CN_OK; /* an older snapshot: no evidence kept */
    if (!json_is_array(arr) || json_array_size(arr) > CN_MAX_METRICS)
        return bad(err, errlen, "has malformed tallies");
    snap->metric_count = (unsigned)json_array_size(arr);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_int_t v[6];
        if (json_unpack(json_array_get(arr, i), "[IIIIII]", &v[0], &v[1], &v[2], &v[3], &v[4],
                        &v[5]) != 0)
            return bad(err, errlen, "has a malformed tally");
        for (int k = 0; k < 6; k++)
            if (v[k] < 0 || v[k] > 0x7fffffff)
                return bad(err, errlen, "has a tally out of range");
        cn_metric_tally *t = &snap->tallies[i];
        *t = (cn_metric_tally){(unsigned)v[0], (unsigned)v[1], (unsigned)v[2], (unsigned)v[3],
                               (unsigned)v[4], (unsigned)v[5]};
    }
    return CN_OK;
}

int cn_rollout_snapshot_parse(const char *text, cn_rollout_snapshot *snap, char *err,
                              size_t errlen)
{
    memset(snap, 0, sizeof *snap);
    snap->requests = NAN;
    json_error_t je;
    json_t *j = text ? json_loads(text, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return bad(err, errlen, "is not a JSON object");
    }
    const char *state = NULL, *kind = NULL, *approver = "";
    json_t *end = NULL, *pending = NULL;
    int stage = 0, applying_stage = 0, applying = 0, approved = 0, baking = 0, awaiting = 0,
        overdue = 0, operator_paused = 0;
    json_int_t baked = 0, waited = 0, baked_before = 0;
    json_t *tallies = NULL, *requests = NULL;
    int rc = json_unpack_ex(j, &je, 0,
                            "{s:s, s:i, s?o, s?b, s?s, s?i, s?o, s?b, s?s, s?b, s?I, s?I, s?b, "
                            "s?I, s?b, s?b, s?o, s?o}",
                            "state", &state, "stage", &stage, "end", &end, "applying", &applying,
                            "applying_kind", &kind, "applying_stage", &applying_stage,
                            "pending_rollback", &pending, "approved", &approved, "approver",
                            &approver, "baking", &baking, "baked_ms", &baked, "baked_before_ms",
                            &baked_before, "awaiting", &awaiting, "waited_ms", &waited,
                            "overdue", &overdue, "operator_paused", &operator_paused, "tallies",
                            &tallies, "requests", &requests);
    int code = CN_OK;
    int st = state ? state_index(state) : -1;
    int e = end_index(end);
    int k = kind ? name_index(kind, APPLY_NAMES, COUNT(APPLY_NAMES)) : CN_APPLY_ADVANCE;
    int p = end_index(pending);
    if (rc != 0)
        code = bad(err, errlen, je.text[0] ? "lacks a field or has one of the wrong type"
                                           : "is malformed");
    else if (st < 0 || e < 0 || k < 0 || p < 0)
        code = bad(err, errlen, "names an unknown state, reason or call");
    else if (applying && !kind)
        code = bad(err, errlen, "(from an older canary) does not say which actuator call was "
                   "in flight; it cannot be resumed safely");
    else if (stage < 0 || applying_stage < 0 || baked < 0 || waited < 0 || baked_before < 0)
        code = bad(err, errlen, "has a negative stage or duration");
    else if (strlen(approver) >= sizeof snap->approver)
        code = bad(err, errlen, "has an approver name too long");
    else
        code = read_tallies(tallies, snap, err, errlen);
    if (code == CN_OK) {
        snap->state = (cn_rollout_state)st;
        snap->end = (cn_end_reason)e;
        snap->stage = (unsigned)stage;
        snap->applying = applying;
        snap->applying_kind = (cn_apply_kind)k;
        snap->applying_stage = (unsigned)applying_stage;
        snap->pending_rollback = (cn_end_reason)p;
        snap->approved = approved;
        snprintf(snap->approver, sizeof snap->approver, "%s", approver);
        snap->baking = baking;
        /* Older snapshots kept only the bake served before a pause. */
        snap->baked_ms = json_object_get(j, "baked_ms") ? baked : baked_before;
        snap->awaiting = awaiting;
        snap->waited_ms = waited;
        snap->overdue = overdue;
        snap->operator_paused = operator_paused;
        if (json_is_number(requests))
            snap->requests = json_number_value(requests);
    }
    json_decref(j);
    return code;
}
