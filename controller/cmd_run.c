#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "                  [--git-range A..B [--repo DIR]] [--state DB]\n"
    "                  [--log-format text|json] [--detach-on-signal]\n"
    "\n"
    "  --change FILE        the change (YAML or JSON): service, version, author, ...\n"
    "  --topology FILE      the service graph; without it reach is 100% and the tier unknown\n"
    "  --policy FILE        use this policy, without matching\n"
    "  --policies DIR       match the change against every policy file in DIR (default: policies)\n"
    "  --git-range A..B     derive the diff and AI provenance from these commits\n"
    "  --repo DIR           the git repository for --git-range (default: .)\n"
    "  --state DB           the state database (default: .canary/state.db)\n"
    "  --log-format FMT     text (default: a live view on a terminal, else one line per\n"
    "                       event) or json (one object per event per line)\n"
    "  --detach-on-signal   on SIGINT/SIGTERM leave the rollout as it is for a later\n"
    "                       resume, instead of rolling it back\n"
    "\n"
    "Exit status: 0 promoted to 100%; 2 invalid input; 3 rolled back by analysis;\n"
    "4 aborted (operator or signal) and rolled back; 5 rollback failed, a human must act;\n"
    "1 any other failure (an actuator that could not advance, a detached run, ...).\n"};

static const struct option run_options[] = {
    CN_PLANNING_OPTIONS,
    {"state", required_argument, NULL, 's'},
    {"log-format", required_argument, NULL, 'l'},
    {"detach-on-signal", no_argument, NULL, 'd'},
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
    (void)e;
    run *r = ctx;
    r->exit_code = exit_code;
    close_all(r);
}

/* A stored rollout with this id: a finished one reports its result again
 * (the same exit code, so a re-run pipeline sees the same answer); one that
 * is still open is not driven twice. Returns -1 when there is none. */
static int existing_rollout(cn_store *store, const char *id)
{
    cn_rollout_row row = {0};
    char err[256] = "";
    int rc = cn_store_get(store, id, &row, err, sizeof err);
    if (rc == CN_ENOTFOUND)
        return -1;
    if (rc != CN_OK) {
        fprintf(stderr, "canary run: %s\n", err);
        return CN_EXIT_INTERNAL;
    }
    int code;
    if (row.exit_code >= 0) {
        printf("rollout '%s' already finished: %s, %s (exit %d); nothing to do\n", id, row.state,
               cn_exit_code_meaning(row.exit_code), row.exit_code);
        code = row.exit_code;
    } else {
        fprintf(stderr, "canary run: rollout '%s' is already stored as %s at stage %u of %u; "
                "resuming it is not supported yet: roll it back by hand or give the change "
                "a new id\n", id, row.state, row.stage, row.stages);
        code = CN_EXIT_INTERNAL;
    }
    cn_rollout_row_free(&row);
    return code;
}

int cn_run_store_rollout(cn_store *store, const cn_planning *pl, const char *cmd)
{
    json_t *plan = cn_plan_to_json(pl);
    char *plan_text = plan ? json_dumps(plan, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(plan);
    uv_timeval64_t tv = {0};
    uv_gettimeofday(&tv);
    int64_t now = tv.tv_sec * 1000 + tv.tv_usec / 1000;
    cn_rollout_row row = {
        .id = (char *)pl->change.id, .attempt = 1, .service = (char *)pl->change.service,
        .version = (char *)pl->change.version,
        .previous_version = (char *)pl->change.previous_version,
        .author = (char *)pl->change.author, .ai_assisted = pl->ai_assisted,
        .policy = (char *)pl->policy->name, .plan_json = plan_text, .state = (char *)"pending",
        .stage = 0, .stages = (unsigned)pl->plan.stage_count, .weight = 0, .exit_code = -1,
        .created_ms = now, .updated_ms = now};
    char err[256] = "";
    int rc = plan_text ? cn_store_create(store, &row, err, sizeof err) : CN_ENOMEM;
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

/* Drives the planned rollout to its end; returns the exit code. */
static int drive(const cn_planning *pl, cn_store *store, cn_view_format format, bool detach)
{
    run r = {.detach_on_signal = detach, .exit_code = CN_EXIT_INTERNAL};
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
        cn_run_view_finish(r.view, code);
    }
    cn_run_view_close(r.view);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop) != 0)
        fprintf(stderr, "canary run: internal: handles left open at exit\n");
    return code;
}

static int refuse_unmeasured(const cn_planning *pl)
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
    const char *state_path = ".canary/state.db";
    bool json = false, detach = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", run_options, NULL)) != -1) {
        if (cn_planning_flag(c, optarg, &opt))
            continue;
        switch (c) {
        case 's': state_path = optarg; break;
        case 'd': detach = true; break;
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
    if (code == CN_EXIT_OK && refuse_unmeasured(&pl) != CN_OK)
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
        if (cn_store_open(&store, state_path, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canary run: %s\n", err);
            code = CN_EXIT_INTERNAL;
        }
    }
    if (code == CN_EXIT_OK) {
        int existing = existing_rollout(store, pl.change.id);
        if (existing >= 0)
            code = existing;
        else if (cn_run_store_rollout(store, &pl, "run") != CN_OK)
            code = CN_EXIT_INTERNAL;
        else {
            print_plan(&pl, format);
            code = drive(&pl, store, format, detach);
        }
    }
    if (store)
        cn_store_close(store);
    cn_planning_free(&pl);
    return code;
}
