/* `canary status`: where the rollouts of a state database stand (a table),
 * or one rollout in detail: what it is, its plan, and the timeline of
 * events with their evidence. Reads only; the database is never created
 * or changed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/run_view.h"
#include "canary/schema.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_status_def = {
    "status", cn_cmd_status, "show where rollouts stand, or one rollout's timeline",
    "usage: canary status [ID] [--state DB] [-o text|json] [--all]\n"
    "\n"
    "  ID                 one rollout in detail: plan and timeline of events;\n"
    "                     without it, one line per rollout\n"
    "  --state DB         the state database (default: .canary/state.db); never created\n"
    "  --all              with ID, text: every measurement on its own line instead of\n"
    "                     one line per run of measurements of a stage\n"
    "  -o, --output FMT   text (default) or json (every event, never grouped)\n"
    "\n"
    "Exit status: 0 shown; 1 no state database, no such rollout, or it cannot be read;\n"
    "2 invalid usage.\n"};

static const struct option status_options[] = {
    {"state", required_argument, NULL, 's'},
    {"output", required_argument, NULL, 'o'},
    {"all", no_argument, NULL, 'a'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- events, copied out of the store ------------------------------------ */

/* The types are shared with `watch` (commands.h). */
typedef cn_status_event event;
typedef cn_status_events events;

static void event_free(event *e)
{
    free(e->type);
    free(e->actor);
    free(e->detail);
    free(e->data);
    memset(e, 0, sizeof *e);
}

void cn_status_events_free(cn_status_events *es)
{
    for (size_t i = 0; i < es->n; i++)
        event_free(&es->v[i]);
    free(es->v);
    memset(es, 0, sizeof *es);
}

/* Evidence and mechanics; everything else is a decision an operator
 * wants to see first (promoted, rolling_back, completed, ...). */
bool cn_status_is_decision(const char *type)
{
    static const char *const evidence[] = {"measurement",   "requests",
                                           "late_measurement", "actuator_ok",
                                           "actuator_failed_attempt", "actuator_call",
                                           "ignored"};
    for (size_t i = 0; i < sizeof evidence / sizeof evidence[0]; i++)
        if (!strcmp(type, evidence[i]))
            return false;
    return true;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int collect(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    events *es = ctx;
    if (es->last_only && !cn_status_is_decision(ev->type))
        return 0;
    event *e;
    if (es->last_only && es->n == 1) {
        e = &es->v[0];
        event_free(e);
    } else {
        if (es->n == es->cap) {
            size_t grown = es->cap ? 2 * es->cap : 64;
            event *more = realloc(es->v, grown * sizeof *more);
            if (!more) {
                es->failed = true;
                return 1;
            }
            es->v = more;
            es->cap = grown;
        }
        e = &es->v[es->n++];
    }
    e->time_ms = ev->time_ms;
    e->type = strdup(ev->type);
    e->actor = strdup(ev->actor);
    e->detail = strdup(ev->detail);
    e->data = dup_or_null(ev->data_json);
    if (!e->type || !e->actor || !e->detail || (ev->data_json && !e->data)) {
        es->failed = true;
        return 1;
    }
    return 0;
}

int cn_status_read_events(const cn_command *cmd, cn_store *s, const char *id,
                          cn_status_events *es)
{
    char err[1024];
    int rc = cn_store_events(s, id, collect, es, err, sizeof err);
    if (!rc && es->failed)
        snprintf(err, sizeof err, "out of memory reading the events of '%s'", id);
    if (rc || es->failed) {
        fprintf(stderr, "canary %s: %s\n", cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

static void percent(char *buf, size_t len, double fraction)
{
    snprintf(buf, len, "%g%%", fraction * 100.0);
}

/* ---- the list ----------------------------------------------------------- */

static json_t *row_json(const cn_rollout_row *r)
{
    char created[40], updated[40];
    cn_utc_stamp(created, sizeof created, r->created_ms);
    cn_utc_stamp(updated, sizeof updated, r->updated_ms);
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:b, s:s?, s:s, s:I, s:I, s:f, s:o, s:s, s:s}",
                     "id", r->id, "service", r->service, "version", r->version,
                     "previous_version", r->previous_version, "author", r->author, "ai_assisted",
                     r->ai_assisted, "policy", r->policy, "state", r->state, "stage",
                     (json_int_t)r->stage, "stages", (json_int_t)r->stages, "weight",
                     r->weight * 100.0, "exit_code",
                     r->exit_code >= 0 ? json_integer(r->exit_code) : json_null(), "created",
                     created, "updated", updated);
}

static json_t *event_json(const event *e, bool with_data)
{
    char stamp[40];
    cn_utc_stamp(stamp, sizeof stamp, e->time_ms);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", stamp, "type", e->type, "actor",
                          e->actor, "detail", e->detail);
    if (o && with_data) {
        /* Stored by canary as JSON; anything unreadable shows as null
         * rather than failing the whole view. */
        json_t *data = e->data ? json_loads(e->data, 0, NULL) : NULL;
        json_object_set_new(o, "data", data ? data : json_null());
    }
    return o;
}

int cn_status_list(const cn_command *cmd, cn_store *s, bool json)
{
    cn_rollout_row *rows = NULL;
    size_t n = 0;
    char err[1024];
    if (cn_store_list(s, NULL, &rows, &n, err, sizeof err)) {
        fprintf(stderr, "canary %s: %s\n", cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    enum { COLS = 9, CELL = 512 };
    json_t *arr = json ? json_array() : NULL;
    const char **cells = calloc((n + 1) * COLS, sizeof *cells);
    char *text = calloc(n + 1, (size_t)COLS * CELL);
    int exit_code = (json && !arr) || !cells || !text ? CN_EXIT_INTERNAL : CN_EXIT_OK;
    static const char *const head[COLS] = {"ID",     "SERVICE", "VERSION", "AI",
                                           "STATE",  "STAGE",   "WEIGHT",  "AGE",
                                           "LAST DECISION"};
    for (size_t c = 0; !exit_code && c < COLS; c++)
        cells[c] = head[c];
    int64_t now = cn_now_ms();
    for (size_t i = 0; !exit_code && i < n; i++) {
        const cn_rollout_row *r = &rows[i];
        events last = {.last_only = true};
        exit_code = cn_status_read_events(cmd, s, r->id, &last);
        if (exit_code) {
            cn_status_events_free(&last);
            cn_rollout_rows_free(rows, n); /* read_events said why */
            json_decref(arr);
            free(cells);
            free(text);
            return exit_code;
        }
        if (json) {
            json_t *o = row_json(r);
            if (o)
                json_object_set_new(o, "last_event",
                                    last.n ? event_json(&last.v[0], false) : json_null());
            if (!o || json_array_append_new(arr, o))
                exit_code = CN_EXIT_INTERNAL;
        } else {
            char *cell = text + (i + 1) * COLS * CELL;
            snprintf(cell, CELL, "%s", r->id);
            snprintf(cell + CELL, CELL, "%s", r->service);
            snprintf(cell + 2 * CELL, CELL, "%s", r->version);
            snprintf(cell + 3 * CELL, CELL, "%s", r->ai_assisted ? "yes" : "no");
            snprintf(cell + 4 * CELL, CELL, "%s", r->state);
            snprintf(cell + 5 * CELL, CELL, "%u/%u", r->stage, r->stages);
            percent(cell + 6 * CELL, CELL, r->weight);
            cn_format_age(cell + 7 * CELL, CELL, now - r->created_ms);
            snprintf(cell + 8 * CELL, CELL, "%s%s%s", last.n ? last.v[0].type : "-",
                     last.n ? ": " : "", last.n ? last.v[0].detail : "");
            for (size_t c = 0; c < COLS; c++)
                cells[(i + 1) * COLS + c] = cell + c * CELL;
        }
        cn_status_events_free(&last);
    }
    if (!exit_code && json) {
        if (json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12)))
            exit_code = CN_EXIT_INTERNAL;
        else
            fputc('\n', stdout);
    } else if (!exit_code && n == 0) {
        printf("no rollouts yet\n");
    } else if (!exit_code) {
        static const unsigned max[COLS] = {20, 12, 10, 0, 0, 0, 0, 0, 0};
        cn_print_table(stdout, cells, n + 1, COLS, max);
    }
    if (exit_code)
        fprintf(stderr, "canary %s: could not show the list (out of memory?)\n", cmd->name);
    json_decref(arr);
    free(cells);
    free(text);
    cn_rollout_rows_free(rows, n);
    return exit_code;
}

/* ---- an unknown id ------------------------------------------------------ */

/* "did you mean" with up to three ids: those that start with what was
 * typed, then the nearest by edit distance within a third of its length. */
void cn_suggest_ids(cn_store *s, const char *id)
{
    cn_rollout_row *rows = NULL;
    size_t n = 0;
    if (cn_store_list(s, NULL, &rows, &n, NULL, 0))
        return;
    size_t limit = strlen(id) / 3 > 2 ? strlen(id) / 3 : 2;
    const char *pick[3] = {NULL, NULL, NULL};
    size_t score[3] = {0, 0, 0}, picked = 0;
    for (size_t i = 0; i < n; i++) {
        const char *cand = rows[i].id;
        size_t d = strncmp(cand, id, strlen(id)) == 0 ? 0 : cn_edit_distance(id, cand);
        if (d > limit)
            continue;
        /* Insert into the three best, keeping them in order. */
        size_t at = picked;
        while (at > 0 && score[at - 1] > d)
            at--;
        if (at >= 3)
            continue;
        for (size_t k = (picked < 3 ? picked : 2); k > at; k--) {
            pick[k] = pick[k - 1];
            score[k] = score[k - 1];
        }
        pick[at] = cand;
        score[at] = d;
        if (picked < 3)
            picked++;
    }
    if (picked) {
        fprintf(stderr, "did you mean:");
        for (size_t k = 0; k < picked; k++)
            fprintf(stderr, "%s %s", k ? "," : "", pick[k]);
        fprintf(stderr, "?\n");
    }
    cn_rollout_rows_free(rows, n);
}

/* ---- one rollout -------------------------------------------------------- */

static void print_stages(const char *plan_json, unsigned current)
{
    json_t *plan = plan_json ? json_loads(plan_json, 0, NULL) : NULL;
    json_t *stages = json_object_get(plan, "stages");
    if (!json_is_array(stages) || json_array_size(stages) == 0) {
        printf("\nstages: no stored plan\n");
        json_decref(plan);
        return;
    }
    printf("\nstages (> the current one):\n");
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st)
    {
        json_int_t index = json_integer_value(json_object_get(st, "index"));
        double weight = json_number_value(json_object_get(st, "weight"));
        char bake[32];
        cn_format_duration(bake, sizeof bake,
                           (int64_t)(json_number_value(json_object_get(st, "bake_seconds")) *
                                     1000.0));
        bool gate = json_is_true(json_object_get(st, "approval"));
        printf("  %c %3lld  %8g%%  bake %-*s%s\n", (unsigned)index == current ? '>' : ' ',
               (long long)index, weight, gate ? 8 : 0, bake, gate ? "  approval" : "");
    }
    json_decref(plan);
}

static void print_event(const event *e)
{
    char stamp[40];
    cn_utc_stamp(stamp, sizeof stamp, e->time_ms);
    printf("  %s %-24s %-7s %s\n", stamp, e->type, e->actor, e->detail);
}

/* The stage a measurement's detail names ("stage 2: err: ..."), or 0. */
static unsigned measured_stage(const event *e, const char **rest)
{
    unsigned stage = 0;
    int used = 0;
    *rest = e->detail;
    if (sscanf(e->detail, "stage %u: %n", &stage, &used) == 1 && used > 0)
        *rest = e->detail + used;
    return stage;
}

/* Consecutive measurements of one stage in one line: how many, by outcome,
 * and the last one's evidence. */
static size_t print_measurements(const event *v, size_t n)
{
    const char *rest;
    unsigned stage = measured_stage(&v[0], &rest);
    size_t count = 0;
    static const char *const names[] = {"pass", "fail", "nodata", "error"};
    size_t by[4] = {0};
    while (count < n && !strcmp(v[count].type, "measurement")) {
        const char *r;
        if (measured_stage(&v[count], &r) != stage)
            break;
        json_t *d = v[count].data ? json_loads(v[count].data, 0, NULL) : NULL;
        const char *outcome = json_string_value(json_object_get(d, "outcome"));
        for (size_t k = 0; outcome && k < 4; k++)
            if (!strcmp(outcome, names[k]))
                by[k]++;
        json_decref(d);
        count++;
    }
    if (count == 1) {
        print_event(&v[0]);
        return 1;
    }
    char stamp[40], tally[128] = "";
    cn_utc_stamp(stamp, sizeof stamp, v[0].time_ms);
    for (size_t k = 0; k < 4; k++)
        if (by[k])
            snprintf(tally + strlen(tally), sizeof tally - strlen(tally), "%s%zu %s",
                     tally[0] ? ", " : "", by[k], names[k]);
    measured_stage(&v[count - 1], &rest);
    printf("  %s %-24s %-7s stage %u: %zu measurements (%s); last: %s\n", stamp, "measurements",
           v[0].actor, stage, count, tally, rest);
    return count;
}

/* ---- who drives it, what is asked of it ---------------------------------- */

/* A request not yet acted on, copied out of the store. */
typedef struct pending_intent {
    int64_t id, created_ms;
    char *intent, *actor, *reason; /* reason may be NULL */
} pending_intent;

typedef struct driving {
    bool held;          /* a lease row exists */
    bool alive;         /* and its heartbeat is within the ttl */
    cn_lease lease;
    pending_intent *v;  /* oldest first */
    size_t n, cap;
    bool failed;        /* out of memory */
} driving;

static void driving_free(driving *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].intent);
        free(d->v[i].actor);
        free(d->v[i].reason);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

static int collect_intent(void *ctx, const cn_intent_row *row)
{
    driving *d = ctx;
    if (d->n == d->cap) {
        size_t grown = d->cap ? 2 * d->cap : 8;
        pending_intent *more = realloc(d->v, grown * sizeof *more);
        if (!more) {
            d->failed = true;
            return 1;
        }
        d->v = more;
        d->cap = grown;
    }
    pending_intent *p = &d->v[d->n++];
    *p = (pending_intent){.id = row->id, .created_ms = row->created_ms,
                          .intent = strdup(row->intent), .actor = strdup(row->actor),
                          .reason = dup_or_null(row->reason)};
    if (!p->intent || !p->actor || (row->reason && !p->reason)) {
        d->failed = true;
        return 1;
    }
    return 0;
}

/* Reads rollout id's lease and its requests not yet acted on into *d
 * (zeroed by the caller). */
static int read_driving(cn_store *s, const char *id, driving *d)
{
    char err[1024];
    int rc = cn_store_lease_get(s, id, &d->lease, err, sizeof err);
    if (rc == CN_OK) {
        d->held = true;
        d->alive = cn_lease_alive(&d->lease, cn_now_ms());
    } else if (rc == CN_ENOTFOUND) {
        rc = CN_OK;
    }
    if (!rc)
        rc = cn_store_intents_pending(s, id, collect_intent, d, err, sizeof err);
    if (!rc && d->failed)
        snprintf(err, sizeof err, "out of memory reading the requests of '%s'", id);
    if (rc || d->failed) {
        fprintf(stderr, "canary status: %s\n", err);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

static void print_driving(const cn_rollout_row *r, const driving *d)
{
    char who[160], age[16];
    int64_t now = cn_now_ms();
    if (d->held) {
        cn_driver_describe(who, sizeof who, &d->lease);
        cn_format_age(age, sizeof age, now - d->lease.heartbeat_ms);
        if (d->alive)
            printf("driver    driven by %s, heartbeat %s ago\n", who, age);
        else
            printf("driver    not driven: %s stopped renewing its lease %s ago\n", who, age);
    } else if (r->exit_code < 0) {
        printf("driver    not driven: nothing holds its lease\n");
    }
    for (size_t i = 0; i < d->n; i++) {
        const pending_intent *p = &d->v[i];
        cn_format_age(age, sizeof age, now - p->created_ms);
        printf("%s #%lld %s by '%s', %s ago, not acted on yet%s%s\n",
               i == 0 ? "requests " : "         ", (long long)p->id, p->intent, p->actor, age,
               p->reason ? ": " : "", p->reason ? p->reason : "");
    }
}

static json_t *driving_json(const driving *d, json_t **pending)
{
    json_t *driver = d->held ? json_pack("{s:s, s:s, s:I, s:I, s:b}", "holder", d->lease.holder,
                                         "host", d->lease.host, "pid",
                                         (json_int_t)d->lease.pid, "heartbeat_ms",
                                         (json_int_t)d->lease.heartbeat_ms, "alive", d->alive)
                             : json_null();
    *pending = json_array();
    for (size_t i = 0; *pending && i < d->n; i++) {
        const pending_intent *p = &d->v[i];
        json_t *o = json_pack("{s:I, s:s, s:s, s:s?, s:I}", "id", (json_int_t)p->id, "intent",
                              p->intent, "actor", p->actor, "reason", p->reason, "created_ms",
                              (json_int_t)p->created_ms);
        if (!o || json_array_append_new(*pending, o)) {
            json_decref(*pending);
            *pending = NULL;
        }
    }
    return driver;
}

static int show_text(const cn_rollout_row *r, const events *es, const driving *d, bool all)
{
    char created[40], updated[40], age[16], weight[32];
    cn_utc_stamp(created, sizeof created, r->created_ms);
    cn_utc_stamp(updated, sizeof updated, r->updated_ms);
    cn_format_age(age, sizeof age, cn_now_ms() - r->created_ms);
    percent(weight, sizeof weight, r->weight);
    printf("rollout   %s\n", r->id);
    printf("service   %s\n", r->service);
    if (r->previous_version)
        printf("version   %s (from %s)\n", r->version, r->previous_version);
    else
        printf("version   %s\n", r->version);
    printf("author    %s\n", r->author ? r->author : "unknown");
    printf("AI        %s\n", r->ai_assisted ? "yes: AI-assisted" : "no");
    printf("policy    %s\n", r->policy ? r->policy : "unknown");
    printf("state     %s, stage %u/%u at %s\n", r->state, r->stage, r->stages, weight);
    if (r->exit_code >= 0)
        printf("exit      %d: %s\n", r->exit_code, cn_exit_code_meaning(r->exit_code));
    printf("created   %s (%s ago)\n", created, age);
    printf("updated   %s\n", updated);
    print_driving(r, d);
    print_stages(r->plan_json, r->stage);
    printf("\nevents (%zu):\n", es->n);
    for (size_t i = 0; i < es->n;) {
        if (!all && !strcmp(es->v[i].type, "measurement"))
            i += print_measurements(es->v + i, es->n - i);
        else
            print_event(&es->v[i++]);
    }
    return CN_EXIT_OK;
}

static int show_json(const cn_rollout_row *r, const events *es, const driving *d)
{
    json_t *o = row_json(r);
    json_t *list = json_array();
    int ok = o && list;
    if (ok) {
        json_t *plan = r->plan_json ? json_loads(r->plan_json, 0, NULL) : NULL;
        json_object_set_new(o, "outcome", r->exit_code >= 0
                                              ? json_string(cn_exit_code_meaning(r->exit_code))
                                              : json_null());
        json_object_set_new(o, "plan", plan ? plan : json_null());
        json_t *pending = NULL;
        json_t *driver = driving_json(d, &pending);
        if (driver && pending) {
            /* json_object_set_new takes the value even when it fails. */
            int bad = json_object_set_new(o, "driver", driver);
            bad |= json_object_set_new(o, "pending_intents", pending);
            ok = !bad;
        } else {
            json_decref(driver);
            json_decref(pending);
            ok = 0;
        }
    }
    for (size_t i = 0; ok && i < es->n; i++) {
        json_t *e = event_json(&es->v[i], true);
        ok = e && !json_array_append_new(list, e);
    }
    if (ok) {
        ok = !json_object_set(o, "events", list) &&
             !json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
    }
    json_decref(list);
    json_decref(o);
    if (!ok) {
        fprintf(stderr, "canary status: could not write the JSON view (out of memory?)\n");
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

int cn_status_get(const cn_command *cmd, cn_store *s, const char *id, const char *path,
                  cn_rollout_row *r)
{
    char err[1024];
    int rc = cn_store_get(s, id, r, err, sizeof err);
    if (rc == CN_ENOTFOUND) {
        fprintf(stderr, "canary %s: no rollout '%s' in %s\n", cmd->name, id, path);
        cn_suggest_ids(s, id);
        return CN_EXIT_INTERNAL;
    }
    if (rc) {
        fprintf(stderr, "canary %s: %s\n", cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

static int show_one(cn_store *s, const char *id, const char *path, bool json, bool all)
{
    cn_rollout_row r;
    if (cn_status_get(&cn_cmd_status_def, s, id, path, &r))
        return CN_EXIT_INTERNAL;
    events es = {0};
    driving d = {0};
    int exit_code = cn_status_read_events(&cn_cmd_status_def, s, id, &es);
    if (!exit_code)
        exit_code = read_driving(s, id, &d);
    if (!exit_code)
        exit_code = json ? show_json(&r, &es, &d) : show_text(&r, &es, &d, all);
    driving_free(&d);
    cn_status_events_free(&es);
    cn_rollout_row_free(&r);
    return exit_code;
}

int cn_cmd_status(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_status_def;
    const char *path = CN_DEFAULT_STATE;
    bool json = false, all = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", status_options, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'a': all = true; break;
        case 'o':
            if (cn_output_flag(cmd, optarg, &json))
                return CN_EXIT_INVALID;
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    const char *id = optind < argc ? argv[optind] : NULL;
    if (id && optind + 1 < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (all && !id)
        return cn_usage_error(cmd, "--all applies to one rollout: give its ID");
    cn_store *s = NULL;
    int exit_code = cn_state_open_readonly(cmd, path, &s);
    if (exit_code)
        return exit_code;
    exit_code = id ? show_one(s, id, path, json, all) : cn_status_list(cmd, s, json);
    cn_store_close(s);
    return exit_code;
}
