#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canary/actuator.h"
#include "canary/engine.h"
#include "canary/http_client.h"
#include "canary/notify.h"
#include "canary/plan_output.h"
#include "canary/planning.h"
#include "canary/run_view.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_run_def = {
    "run", cn_cmd_run, "roll a change out stage by stage, rolling back on bad metrics",
    "usage: canary run --change FILE [--topology FILE] [--policy FILE | --policies DIR]\n"
    "                  [--git-range A..B [--repo DIR]] [--state DB] [--access FILE]\n"
    "                  [--new-attempt] [--log-format text|json] [--detach-on-signal]\n"
    "\n"
    "  --change FILE        the change (YAML or JSON): service, version, author, ...\n"
    "  --topology FILE      the service graph; without it reach is 100% and the tier unknown\n"
    "  --policy FILE        use this policy, without matching\n"
    "  --policies DIR       match the change against every policy file in DIR (default: policies)\n"
    "  --git-range A..B     derive the diff and AI provenance from these commits\n"
    "  --repo DIR           the git repository for --git-range (default: .)\n"
    "  --state DB           the state database (default: .canary/state.db)\n"
    "  --access FILE        users and their roles, for approvals and operator commands\n"
    "  --new-attempt        start a finished rollout over, as a new recorded attempt\n"
    "  --log-format FMT     text (default: a live view on a terminal, else one line per\n"
    "                       event) or json (one object per event per line)\n"
    "  --detach-on-signal   on SIGINT/SIGTERM leave the rollout as it is for a later\n"
    "                       resume, instead of rolling it back\n"
    "\n"
    "Running it again for a rollout already stored resumes it where it stopped (a\n"
    "crash, SIGKILL, a detach): no earlier stage is applied again, the bake served is\n"
    "kept. One process drives a rollout at a time (a lease in the state database).\n"
    "\n"
    "Exit status: 0 promoted to 100%; 2 invalid input; 3 rolled back by analysis;\n"
    "4 aborted (operator or signal) and rolled back; 5 rollback failed, a human must act;\n"
    "1 any other failure (an actuator that could not advance, a detached run, ...).\n"};

static const struct option run_options[] = {
    CN_PLANNING_OPTIONS,
    {"state", required_argument, NULL, 's'},
    {"log-format", required_argument, NULL, 'l'},
    {"detach-on-signal", no_argument, NULL, 'd'},
    {"access", required_argument, NULL, 'a'},
    {"new-attempt", no_argument, NULL, 'n'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Everything one run owns on its loop. */
typedef struct run {
    uv_loop_t loop;
    cn_http *http;
    cn_notifier *notify;
    cn_engine *engine;
    cn_run_view *view;
    uv_signal_t sigint, sigterm;
    bool detach_on_signal;
    unsigned signals;
    int exit_code;
    char stop_reason[320];
} run;

static void close_http(void *ctx)
{
    run *r = ctx;
    cn_notify_free(r->notify);
    cn_http_close(r->http);
}

static void close_all(run *r)
{
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    cn_engine_close(r->engine);
    /* The last notification still goes out (bounded by its webhook's
     * timeout and one retry) before the client closes. */
    cn_notify_drain(r->notify, close_http, r);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run *r = h->data;
    if (++r->signals > 1)
        fprintf(stderr, "canary run: %s again: %s is in progress; it finishes on its own "
                "(SIGKILL leaves the canary where it is)\n", strsignal(signum),
                r->detach_on_signal ? "detaching" : "the rollback");
    cn_engine_shutdown(r->engine, r->detach_on_signal);
}

static void on_finish(void *ctx, const cn_engine *e, int exit_code)
{
    run *r = ctx;
    r->exit_code = exit_code;
    const char *why = cn_engine_stop_reason(e);
    if (why)
        snprintf(r->stop_reason, sizeof r->stop_reason, "%s", why);
    close_all(r);
}

/* The plan's stages as `canary plan -o json` gives them: what a resumed
 * rollout must still have, or its stage numbers would mean other weights. */
static char *stages_json(const char *plan_text)
{
    json_t *plan = plan_text ? json_loads(plan_text, 0, NULL) : NULL;
    json_t *stages = json_object_get(plan, "stages");
    char *text = stages ? json_dumps(stages, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(plan);
    return text;
}

static char *planned_json(const cn_planning *pl)
{
    json_t *plan = cn_plan_to_json(pl);
    char *text = plan ? json_dumps(plan, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(plan);
    return text;
}

/* A stored unfinished rollout may be resumed with this change only if it
 * is the same change with the same stages. */
static int check_resumable(const cn_rollout_row *row, const cn_planning *pl)
{
    const char *id = row->id;
    if (strcmp(row->service, pl->change.service) || strcmp(row->version, pl->change.version)) {
        fprintf(stderr, "canary run: rollout '%s' is stored for %s %s, but this change is %s "
                "%s: give the change its own id\n", id, row->service, row->version,
                pl->change.service, pl->change.version);
        return CN_EXIT_INVALID;
    }
    char *now = planned_json(pl);
    char *stored = stages_json(row->plan_json), *planned = stages_json(now);
    bool same = stored && planned && !strcmp(stored, planned);
    free(now);
    free(stored);
    free(planned);
    if (!same) {
        fprintf(stderr, "canary run: rollout '%s' cannot be resumed: its stages changed since it "
                "started (policy, topology or change edited; `canary status %s` shows the "
                "stored plan). Resume it with the files it started with, to finish it or, "
                "after `canary abort %s --as USER`, to roll it back; then --new-attempt runs "
                "the new plan\n", id, id, id);
        return CN_EXIT_INVALID;
    }
    return CN_EXIT_OK;
}

typedef enum { RUN_NEW, RUN_RESUME, RUN_DONE } run_kind;

/* What to do about the id: start it (new, or a new attempt of a finished
 * one), resume it, or report the stored result (*code, the same exit code
 * a re-run pipeline expects). */
static run_kind classify(cn_store *store, const cn_planning *pl, bool new_attempt, int *code)
{
    const char *id = pl->change.id;
    cn_rollout_row row = {0};
    char err[256] = "";
    int rc = cn_store_get(store, id, &row, err, sizeof err);
    if (rc == CN_ENOTFOUND) {
        *code = cn_run_store_rollout(store, pl, "run", 1) == CN_OK ? CN_EXIT_OK
                                                                   : CN_EXIT_INTERNAL;
        return *code == CN_EXIT_OK ? RUN_NEW : RUN_DONE;
    }
    run_kind kind = RUN_DONE;
    if (rc != CN_OK) {
        fprintf(stderr, "canary run: %s\n", err);
        *code = CN_EXIT_INTERNAL;
    } else if (row.exit_code >= 0 && !new_attempt) {
        printf("rollout '%s' already finished: %s, %s (exit %d); nothing to do (--new-attempt "
               "starts it over)\n", id, row.state, cn_exit_code_meaning(row.exit_code),
               row.exit_code);
        *code = row.exit_code;
    } else if (row.exit_code >= 0) {
        *code = cn_run_store_rollout(store, pl, "run", row.attempt + 1) == CN_OK
                    ? CN_EXIT_OK : CN_EXIT_INTERNAL;
        if (*code == CN_EXIT_OK) {
            printf("rollout '%s': attempt %d starts over (attempt %d ended %s)\n", id,
                   row.attempt + 1, row.attempt, row.state);
            kind = RUN_NEW;
        }
    } else if (new_attempt) {
        fprintf(stderr, "canary run: rollout '%s' is still %s at stage %u of %u: --new-attempt "
                "starts over only a finished rollout (starting over would move its weight "
                "backwards); resume it by running without --new-attempt, or abort it first "
                "(canary abort %s --as USER)\n", id, row.state, row.stage, row.stages, id);
        *code = CN_EXIT_INTERNAL;
    } else {
        *code = check_resumable(&row, pl);
        if (*code == CN_EXIT_OK) {
            printf("rollout '%s' (attempt %d) is stored as %s at stage %u of %u: resuming it\n",
                   id, row.attempt, row.state, row.stage, row.stages);
            kind = RUN_RESUME;
        }
    }
    cn_rollout_row_free(&row);
    return kind;
}

/* ---- the lease ---------------------------------------------------------- */

static int64_t wall_now_ms(void)
{
    uv_timeval64_t tv = {0};
    uv_gettimeofday(&tv);
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void lease_identity(cn_lease *me)
{
    memset(me, 0, sizeof *me);
    if (gethostname(me->host, sizeof me->host - 1) != 0)
        snprintf(me->host, sizeof me->host, "unknown-host");
    me->pid = (int64_t)getpid();
    snprintf(me->holder, sizeof me->holder, "%s:%lld:%lld", me->host, (long long)me->pid,
             (long long)wall_now_ms());
}

/* A holder on this host whose process is gone died without releasing its
 * lease (SIGKILL, a crash): no need to wait for its heartbeat to expire. */
static bool holder_died(const cn_lease *holder, const cn_lease *me)
{
    return !strcmp(holder->host, me->host) && holder->pid > 0 && holder->pid != me->pid &&
           kill((pid_t)holder->pid, 0) == -1 && errno == ESRCH;
}

/* *replaced: the lease taken over (its holder empty when there was none). */
static int take_lease(cn_store *store, const char *id, const cn_lease *me, cn_lease *replaced)
{
    cn_lease holder;
    char err[512] = "";
    int rc = cn_store_lease_acquire(store, id, me, wall_now_ms(), CN_LEASE_TTL_MS, NULL, &holder,
                                    err, sizeof err);
    if (rc == CN_EBUSY && holder_died(&holder, me)) {
        printf("rollout '%s': its last driver (pid %lld on %s) is gone; taking over\n", id,
               (long long)holder.pid, holder.host);
        cn_lease dead = holder;
        rc = cn_store_lease_acquire(store, id, me, wall_now_ms(), CN_LEASE_TTL_MS, dead.holder,
                                    &holder, err, sizeof err);
    }
    if (rc == CN_EBUSY)
        fprintf(stderr, "canary run: %s. Only one process drives a rollout; watch it with "
                "`canary watch %s`, or act on it with canary pause|abort\n", err, id);
    else if (rc != CN_OK)
        fprintf(stderr, "canary run: %s\n", err);
    *replaced = holder;
    return rc;
}

int cn_run_store_rollout(cn_store *store, const cn_planning *pl, const char *cmd, int attempt)
{
    char *plan_text = planned_json(pl);
    int64_t now = wall_now_ms();
    cn_rollout_row row = {
        .id = (char *)pl->change.id, .attempt = attempt, .service = (char *)pl->change.service,
        .version = (char *)pl->change.version,
        .previous_version = (char *)pl->change.previous_version,
        .author = (char *)pl->change.author, .ai_assisted = pl->ai_assisted,
        .policy = (char *)pl->policy->name, .plan_json = plan_text, .state = (char *)"pending",
        .stage = 0, .stages = (unsigned)pl->plan.stage_count, .weight = 0, .exit_code = -1,
        .created_ms = now, .updated_ms = now};
    char err[256] = "";
    int rc = !plan_text ? CN_ENOMEM
             : attempt == 1 ? cn_store_create(store, &row, err, sizeof err)
                            : cn_store_new_attempt(store, &row, err, sizeof err);
    free(plan_text);
    if (rc != CN_OK)
        fprintf(stderr, "canary %s: %s\n", cmd, rc == CN_ENOMEM ? "out of memory" : err);
    return rc;
}

cn_engine_config cn_run_engine_config(const cn_planning *pl, uv_loop_t *loop, cn_http *http,
                                      cn_store *store, cn_engine_observer observer)
{
    return (cn_engine_config){
        .loop = loop, .http = http, .store = store, .plan = &pl->plan, .policy = pl->policy,
        .ai_assisted = pl->ai_assisted, .rollout = pl->change.id, .service = pl->change.service,
        .version = pl->change.version, .previous_version = pl->change.previous_version,
        .author = pl->change.author, .observer = observer};
}

static void print_plan(const cn_planning *pl, cn_view_format format)
{
    if (format != CN_VIEW_JSON) {
        cn_plan_print_text(pl, stdout);
        fputc('\n', stdout);
        return;
    }
    json_t *o = json_pack("{s:s, s:o}", "type", "plan", "plan", cn_plan_to_json(pl));
    if (o) {
        json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
        json_decref(o);
    }
}

/* How one run drives its rollout. */
typedef struct drive_opts {
    cn_view_format format;
    bool detach;
    const cn_access *access;
    const char *lease_holder;
    const cn_rollout_snapshot *resume;
} drive_opts;

/* Drives the planned rollout to its end; returns the exit code. */
static int drive(const cn_planning *pl, cn_store *store, const drive_opts *o)
{
    cn_view_format format = o->format;
    run r = {.detach_on_signal = o->detach, .exit_code = CN_EXIT_INTERNAL};
    int code = CN_EXIT_INTERNAL;
    if (uv_loop_init(&r.loop) != 0) {
        fprintf(stderr, "canary run: could not create the event loop\n");
        return CN_EXIT_INTERNAL;
    }
    if (cn_http_new(&r.http, &r.loop) != CN_OK ||
        cn_run_view_new(&r.view, stdout, format, &r.loop) != CN_OK) {
        fprintf(stderr, "canary run: out of memory\n");
        cn_http_close(r.http);
        cn_run_view_close(r.view);
        uv_run(&r.loop, UV_RUN_DEFAULT);
        uv_loop_close(&r.loop);
        return CN_EXIT_INTERNAL;
    }
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);

    cn_engine_observer finish = {.on_finish = on_finish, .ctx = &r};
    char err[512] = "";
    cn_notify_config nc = {.loop = &r.loop, .http = r.http, .hooks = pl->policy->notify,
                           .hook_count = pl->policy->notify_count, .rollout = pl->change.id,
                           .service = pl->change.service, .version = pl->change.version,
                           .ai_assisted = pl->ai_assisted, .on_failure = cn_notify_log_failure};
    int rc = cn_notify_new(&r.notify, &nc, err, sizeof err);
    cn_engine_observer notified = cn_notify_observer(r.notify, &finish);
    cn_engine_config cfg = cn_run_engine_config(pl, &r.loop, r.http, store,
                                                cn_run_view_observer(r.view, &notified));
    cfg.access = o->access;
    cfg.lease_holder = o->lease_holder;
    cfg.resume = o->resume;
    if (rc == CN_OK)
        rc = cn_engine_start(&r.engine, &cfg, err, sizeof err);
    if (rc != CN_OK) {
        fprintf(stderr, "canary run: %s\n", rc == CN_ENOMEM ? "out of memory" : err);
        close_all(&r);
        code = rc == CN_EINVAL ? CN_EXIT_INVALID : CN_EXIT_INTERNAL;
    } else {
        cn_run_view_attach(r.view, r.engine);
    }
    /* The engine's finish callback closes every handle but the view's, which
     * ends the run; the engine is freed by then. */
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (r.engine) {
        code = r.exit_code;
        if (r.stop_reason[0])
            cn_run_view_cause(r.view, r.stop_reason);
        cn_run_view_finish(r.view, code);
        if (r.stop_reason[0])
            fprintf(stderr, "canary run: %s\n", r.stop_reason);
    }
    cn_run_view_close(r.view);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop) != 0)
        fprintf(stderr, "canary run: internal: handles left open at exit\n");
    return code;
}

/* Starts, resumes or reports the rollout of the change; returns the exit
 * code. The lease is held from before the first record to the end. */
static int start_or_resume(cn_store *store, const cn_planning *pl, bool new_attempt,
                           drive_opts *o)
{
    const char *id = pl->change.id;
    int code = CN_EXIT_OK;
    run_kind kind = classify(store, pl, new_attempt, &code);
    if (kind == RUN_DONE)
        return code;
    cn_lease me;
    lease_identity(&me);
    cn_lease last;
    if (take_lease(store, id, &me, &last) != CN_OK)
        return CN_EXIT_INTERNAL;
    cn_rollout_snapshot snap;
    if (kind == RUN_RESUME) {
        unsigned orphans = 0;
        long orphan = 0;
        /* A run that ended well released its lease and its calls; one that
         * died left the lease, and maybe a call still running. */
        if (cn_actuator_kill_orphans(last.holder, 2000, &orphans, &orphan) != CN_OK)
            fprintf(stderr, "canary run: an actuator call the last run of '%s' left (process "
                    "group %ld) would not die; resuming anyway\n", id, orphan);
        if (orphans)
            printf("rollout '%s': stopped %u actuator call%s the last run left running "
                   "(process group %ld), so it cannot land late\n", id, orphans,
                   orphans == 1 ? "" : "s", orphan);
        char err[512] = "";
        /* Read under the lease: nobody else moves the rollout now. */
        int rc = cn_engine_snapshot(store, id, pl->policy, &snap, err, sizeof err);
        if (rc != CN_OK) {
            fprintf(stderr, "canary run: %s\n", err);
            code = rc == CN_EINVAL ? CN_EXIT_INVALID : CN_EXIT_INTERNAL;
        }
        o->resume = &snap;
    }
    if (code == CN_EXIT_OK) {
        print_plan(pl, o->format);
        o->lease_holder = me.holder;
        code = drive(pl, store, o);
    }
    char err[256] = "";
    (void)cn_store_lease_release(store, id, me.holder, err, sizeof err);
    return code;
}

int cn_run_refuse_unmeasured(const cn_planning *pl)
{
    if (pl->policy->analysis.metric_count > 0)
        return CN_OK;
    fprintf(stderr, "%s: policy '%s' has no analysis.metrics: canary run needs at least one "
            "metric to judge the canary by (a rollout nobody measures cannot roll back on "
            "its own)\n", pl->policy->file, pl->policy->name);
    return CN_EINVAL;
}

int cn_cmd_run(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_run_def;
    cn_planning_options opt = {0};
    const char *state_path = ".canary/state.db", *access_path = NULL;
    bool json = false, detach = false, new_attempt = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", run_options, NULL)) != -1) {
        if (cn_planning_flag(c, optarg, &opt))
            continue;
        switch (c) {
        case 's': state_path = optarg; break;
        case 'd': detach = true; break;
        case 'a': access_path = optarg; break;
        case 'n': new_attempt = true; break;
        case 'l':
            if (!strcmp(optarg, "json"))
                json = true;
            else if (strcmp(optarg, "text"))
                return cn_usage_error(cmd, "--log-format takes 'text' or 'json', got '%s'",
                                      optarg);
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    int bad = cn_planning_flags_check(cmd, &opt);
    if (bad != CN_EXIT_OK)
        return bad;
    const char *term = getenv("TERM");
    cn_view_format format = json ? CN_VIEW_JSON
                            : isatty(STDOUT_FILENO) && term && strcmp(term, "dumb")
                                ? CN_VIEW_LIVE : CN_VIEW_LINES;

    cn_diags diags;
    cn_diags_init(&diags);
    cn_planning pl;
    int rc = cn_planning_run(&pl, &opt, &diags);
    cn_diags_print(&diags, stderr);
    cn_diags_free(&diags);
    int code = rc == CN_ENOMEM ? CN_EXIT_INTERNAL : rc ? CN_EXIT_INVALID : CN_EXIT_OK;
    cn_access access;
    memset(&access, 0, sizeof access);
    if (code == CN_EXIT_OK && access_path) {
        cn_diags_init(&diags);
        rc = cn_access_load(&access, access_path, &diags);
        cn_diags_print(&diags, stderr);
        cn_diags_free(&diags);
        if (rc != CN_OK)
            code = rc == CN_ENOMEM ? CN_EXIT_INTERNAL : CN_EXIT_INVALID;
    }
    if (code == CN_EXIT_OK && cn_run_refuse_unmeasured(&pl) != CN_OK)
        code = CN_EXIT_INVALID;
    if (code == CN_EXIT_OK) {
        /* Checked before anything is stored, so a bad setup leaves no trace. */
        cn_engine_config probe = {.plan = &pl.plan, .policy = pl.policy,
                                  .previous_version = pl.change.previous_version};
        char err[512] = "";
        if (cn_engine_check(&probe, err, sizeof err) != CN_OK ||
            cn_notify_check(pl.policy, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canary run: %s\n", err);
            code = CN_EXIT_INVALID;
        }
    }
    cn_store *store = NULL;
    if (code == CN_EXIT_OK) {
        char err[512] = "";
        /* Measurements share commits (store.h); decisions never wait. */
        if (cn_store_open(&store, state_path, err, sizeof err) != CN_OK ||
            cn_store_defer_evidence(store, true, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canary run: %s\n", err);
            code = CN_EXIT_INTERNAL;
        }
    }
    if (code == CN_EXIT_OK)
        code = start_or_resume(store, &pl, new_attempt,
                               &(drive_opts){.format = format, .detach = detach,
                                             .access = access_path ? &access : NULL});
    if (store)
        cn_store_close(store);
    cn_access_free(&access);
    cn_planning_free(&pl);
    return code;
}
