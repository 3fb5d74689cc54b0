/*
 * canary demo: two real rollouts against a simulated service, in one
 * process and one loop, with no outside service: the service
 * (demo_service.c) answers canary's Prometheus queries and is its http
 * actuator; the engine drives each change as `canary run` would; the
 * story (demo_story.c) explains each decision as it is stored.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canary/actuator.h"
#include "canary/engine.h"
#include "canary/http_client.h"
#include "canary/plan_output.h"
#include "canary/planning.h"
#include "canary/run_view.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"
#include "demo_files.h"
#include "demo_service.h"
#include "demo_story.h"

const cn_command cn_cmd_demo_def = {
    "demo", cn_cmd_demo, "roll out two changes against a simulated service (about 30 s)",
    "usage: canary demo [--keep] [--fast]\n"
    "\n"
    "Serves a simulated checkout service on 127.0.0.1 (a Prometheus query API and an\n"
    "actuator hook) and rolls two changes out against it, explaining each decision:\n"
    "a human-written change that reaches 100%, then an AI-assisted change with a\n"
    "fault that canary rolls back at its first stage. Needs no outside service.\n"
    "\n"
    "  --keep    keep the demo's files (policy, topology, changes, state database)\n"
    "            and print where they are\n"
    "  --fast    halve the bakes (about 14 seconds instead of 27)\n"
    "\n"
    "Exit status: 0 both rollouts ended as expected (promoted; rolled back by\n"
    "analysis); 4 interrupted (the rollout in progress was rolled back); 1 otherwise.\n"};

#define PAUSE_MS 1000 /* between the two rollouts, to read the first one's end */

typedef struct demo demo;

typedef struct demo_run {
    demo *d;
    const char *title;
    const char *file;  /* the change, in the demo's directory */
    int expect;        /* the exit code the story needs */
    cn_planning pl;
    cn_engine *engine;
    cn_run_view *view;
    cn_demo_story story;
    int exit_code;     /* -1 until it ran */
} demo_run;

struct demo {
    uv_loop_t loop;
    cn_http *http;
    cn_demo_service *svc;
    cn_store *store;
    uv_signal_t sigint, sigterm;
    uv_timer_t next;   /* starts the next rollout, or winds the demo down */
    cn_view_format format;
    demo_run runs[2];
    size_t current;    /* the run in progress, or the next one */
    bool running, interrupted, failed, wound_down, actuator_told;
    bool stopped_run;  /* the interrupt stopped a rollout in progress */
    unsigned signals;
    char dir[PATH_MAX], url[96];
};

/* ---- set-up ------------------------------------------------------------- */

static int plan_run(demo *d, demo_run *r)
{
    char change[PATH_MAX + 64], topology[PATH_MAX + 64], policy[PATH_MAX + 64];
    snprintf(change, sizeof change, "%s/%s", d->dir, r->file);
    snprintf(topology, sizeof topology, "%s/" CN_DEMO_TOPOLOGY, d->dir);
    snprintf(policy, sizeof policy, "%s/" CN_DEMO_POLICY, d->dir);
    cn_planning_options opt = {.change_path = change, .topology_path = topology,
                               .policy_path = policy};
    cn_diags diags;
    cn_diags_init(&diags);
    int rc = cn_planning_run(&r->pl, &opt, &diags);
    cn_diags_print(&diags, stderr);
    cn_diags_free(&diags);
    if (rc != CN_OK)
        fprintf(stderr, "canary demo: internal: the demo's own %s does not plan\n", r->file);
    return rc;
}

/* ---- the loop ----------------------------------------------------------- */

static void on_next(uv_timer_t *t);

static void wind_down(demo *d)
{
    if (d->wound_down)
        return;
    d->wound_down = true;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->next, NULL);
    cn_http_close(d->http);
    cn_demo_service_close(d->svc);
    d->http = NULL;
    d->svc = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
    demo *d = h->data;
    d->interrupted = true;
    if (++d->signals > 1)
        fprintf(stderr, "canary demo: %s again: the rollback is in progress and finishes on "
                "its own\n", strsignal(signum));
    if (d->running) {
        d->stopped_run = true;
        cn_engine_shutdown(d->runs[d->current].engine, false);
    }
    else
        uv_timer_start(&d->next, on_next, 0, 0);
}

static void on_record(void *ctx, const cn_engine *e, const cn_store_event *ev, bool stored)
{
    (void)stored;
    demo_run *r = ctx;
    cn_demo_story_record(&r->story, e, ev);
    /* Unreachable by the demo's design (the fault is caught at stage 1),
     * but nobody could approve: never wait for ever. */
    if (!strcmp(ev->type, "awaiting_approval"))
        cn_engine_shutdown(r->engine, false);
}

static void on_finish(void *ctx, const cn_engine *e, int exit_code)
{
    (void)e;
    demo_run *r = ctx;
    demo *d = r->d;
    d->running = false;
    r->exit_code = exit_code;
    r->story.ended_ms = uv_now(&d->loop);
    cn_run_view_finish(r->view, exit_code);
    if (exit_code != r->expect)
        d->failed = true;
    bool last = d->current + 1 == sizeof d->runs / sizeof d->runs[0];
    uv_timer_start(&d->next, on_next, d->failed || d->interrupted || last ? 0 : PAUSE_MS, 0);
}

static void introduce(const demo_run *r)
{
    const cn_planning *pl = &r->pl;
    printf("\n== %s\n\n", r->title);
    if (!pl->ai_assisted) {
        cn_demo_say(NULL, "%s changed %s by hand (%s -> %s). canary sizes each stage so that "
                    "it puts at most a budget of all user traffic at risk, growing %gx per "
                    "stage, and watches error rate and p99 latency while each stage bakes.",
                    pl->change.author, pl->change.service, pl->change.previous_version,
                    pl->change.version, pl->policy->plan.growth);
    } else {
        const cn_policy *p = pl->policy;
        unsigned gate = 0;
        for (size_t i = 0; i < pl->plan.stage_count && !gate; i++)
            gate = pl->plan.stages[i].approval ? (unsigned)i + 1 : 0;
        unsigned limit = p->ai.analysis.has_failure_limit ? p->ai.analysis.failure_limit
                                                          : p->analysis.failure_limit;
        char tolerance[48] = "no failed sample";
        if (limit > 0)
            snprintf(tolerance, sizeof tolerance, "%u failed sample%s per stage", limit,
                     limit == 1 ? "" : "s");
        char approval[96] = "";
        if (gate)
            snprintf(approval, sizeof approval, ", and needs a %s's approval before stage %u",
                     p->ai.approval_role, gate);
        cn_demo_say(NULL, "The next change (%s -> %s) was written with an AI agent, and the "
                    "simulated %s has a fault: about 4.2%% of its requests fail. For an "
                    "AI-assisted change canary assumes %gx the risk (smaller steps), bakes %gx "
                    "longer, tolerates %s%s.", pl->change.previous_version, pl->change.version,
                    pl->change.version, p->ai.risk, p->ai.bake_factor, tolerance, approval);
    }
    printf("\n");
    cn_plan_print_text(pl, stdout);
    printf("\n");
    fflush(stdout);
}

static int start_run(demo *d, demo_run *r)
{
    introduce(r);
    if (cn_run_store_rollout(d->store, &r->pl, "demo", 1) != CN_OK)
        return CN_ESTORE;
    if (cn_run_view_new(&r->view, stdout, d->format, &d->loop) != CN_OK) {
        fprintf(stderr, "canary demo: out of memory\n");
        return CN_ENOMEM;
    }
    uv_update_time(&d->loop);
    r->story = (cn_demo_story){.pl = &r->pl, .view = r->view, .loop = &d->loop,
                               .actuator_url = d->url, .actuator_told = &d->actuator_told,
                               .started_ms = uv_now(&d->loop)};
    cn_engine_observer next = {.on_record = on_record, .on_finish = on_finish, .ctx = r};
    cn_engine_config cfg = cn_run_engine_config(&r->pl, &d->loop, d->http, d->store,
                                                cn_run_view_observer(r->view, &next));
    char err[512] = "";
    d->running = true;
    int rc = cn_engine_start(&r->engine, &cfg, err, sizeof err);
    if (rc != CN_OK) {
        d->running = false;
        fprintf(stderr, "canary demo: %s\n", rc == CN_ENOMEM ? "out of memory" : err);
        return rc;
    }
    cn_run_view_attach(r->view, r->engine);
    return CN_OK;
}

/* Between rollouts: the finished one is closed, then the next starts, or
 * the demo ends (after an interrupt or an unexpected outcome too). */
static void on_next(uv_timer_t *t)
{
    demo *d = t->data;
    demo_run *r = &d->runs[d->current];
    if (d->running)
        return; /* a signal while a rollout still winds down: its end comes here */
    if (r->engine) {
        cn_engine_close(r->engine);
        cn_run_view_close(r->view);
        r->engine = NULL;
        r->view = NULL;
        d->current++;
    }
    if (d->interrupted || d->failed || d->current == sizeof d->runs / sizeof d->runs[0]) {
        wind_down(d);
        return;
    }
    r = &d->runs[d->current];
    if (start_run(d, r) != CN_OK) {
        if (r->view)
            cn_run_view_close(r->view);
        r->view = NULL;
        cn_engine_close(r->engine);
        r->engine = NULL;
        d->failed = true;
        wind_down(d);
    }
}

/* ---- the command -------------------------------------------------------- */

static void summary_line(const demo_run *r)
{
    const cn_planning *pl = &r->pl;
    char who[64];
    snprintf(who, sizeof who, "%s, %s:", pl->change.version,
             pl->ai_assisted ? "written with an AI agent" : "written by a person");
    if (r->exit_code < 0) {
        printf("  %-35s not run\n", who);
        return;
    }
    const cn_demo_story *st = &r->story;
    double run_s = (double)(st->ended_ms - st->started_ms) / 1000;
    if (r->exit_code == 0) {
        printf("  %-35s promoted to 100%% in %zu stages, %.1f s (exit 0)\n", who,
               pl->plan.stage_count, run_s);
        return;
    }
    char w[32] = "0";
    if (st->last_stage >= 1 && st->last_stage <= pl->plan.stage_count)
        cn_format_weight(w, sizeof w, pl->plan.stages[st->last_stage - 1].weight);
    double exposed = st->last_stage && st->reverted_ms > st->exposed_ms
                         ? (double)(st->reverted_ms - st->exposed_ms) / 1000 : 0;
    printf("  %-35s %s at stage %u (exit %d):\n  %-35s %s%% of %s's traffic had %s for "
           "%.1f s; %.1f s in all\n", who, cn_exit_code_meaning(r->exit_code), st->last_stage,
           r->exit_code, "", w, pl->change.service, pl->change.version, exposed, run_s);
}

static int finish_demo(demo *d, bool keep, bool ran)
{
    if (ran) {
        printf("\n== Summary\n\n");
        for (size_t i = 0; i < sizeof d->runs / sizeof d->runs[0]; i++)
            summary_line(&d->runs[i]);
        printf("\n  every decision, with its evidence, was stored in %s/%s%s\n", d->dir,
               CN_DEMO_STATE, keep ? "" : "\n  (removed now; --keep keeps it)");
    }
    if (keep)
        printf("  the demo's files are kept in %s; for example:\n"
               "    canary plan --change %s/%s \\\n"
               "        --topology %s/" CN_DEMO_TOPOLOGY " --policy %s/" CN_DEMO_POLICY "\n",
               d->dir, d->dir, d->runs[1].file, d->dir, d->dir);
    fflush(stdout);
    char err[PATH_MAX + 128] = "";
    if (!keep && cn_demo_dir_remove(d->dir, err, sizeof err) != CN_OK)
        fprintf(stderr, "canary demo: %s\n", err);
    if (d->interrupted) {
        fprintf(stderr, "canary demo: interrupted%s\n",
                d->stopped_run ? "; the rollout in progress was rolled back" : "");
        return 4;
    }
    if (!ran)
        return CN_EXIT_INTERNAL;
    if (d->failed) {
        fprintf(stderr, "canary demo: expected the human-written change promoted (exit 0) and "
                "the AI-assisted one rolled back by analysis (exit 3), got exit %d and %d\n",
                d->runs[0].exit_code, d->runs[1].exit_code);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

/* Everything up to the first rollout; CN_OK or a code (reported). */
static int set_up(demo *d, bool fast)
{
    char err[PATH_MAX + 128] = "";
    int port = 0;
    if (cn_http_new(&d->http, &d->loop) != CN_OK) {
        fprintf(stderr, "canary demo: out of memory\n");
        return CN_ENOMEM;
    }
    int rc = cn_demo_service_start(&d->svc, &d->loop, CN_DEMO_STABLE, CN_DEMO_FAULTY, &port,
                                   err, sizeof err);
    if (rc != CN_OK) {
        fprintf(stderr, "canary demo: %s\n", rc == CN_ENOMEM ? "out of memory" : err);
        return rc;
    }
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d/actuate", port);
    if ((rc = cn_demo_write_inputs(d->dir, port, fast, err, sizeof err)) != CN_OK) {
        fprintf(stderr, "canary demo: %s\n", err);
        return rc;
    }
    for (size_t i = 0; i < sizeof d->runs / sizeof d->runs[0]; i++)
        if ((rc = plan_run(d, &d->runs[i])) != CN_OK)
            return rc;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", d->dir, CN_DEMO_STATE);
    if ((rc = cn_store_open(&d->store, path, err, sizeof err)) != CN_OK) {
        fprintf(stderr, "canary demo: %s\n", err);
        return rc;
    }
    printf("canary demo: a simulated checkout service listens on http://127.0.0.1:%d. It "
           "answers\nPrometheus queries (/api/v1/query) and obeys canary's http actuator "
           "(/actuate);\nnothing outside this process is involved. Two changes roll out "
           "against it.\n", port);
    fflush(stdout);
    return CN_OK;
}

int cn_cmd_demo(int argc, char **argv)
{
    static const struct option options[] = {
        {"keep", no_argument, NULL, 'k'},
        {"fast", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const cn_command *cmd = &cn_cmd_demo_def;
    bool keep = false, fast = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'k': keep = true; break;
        case 'f': fast = true; break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    demo *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "canary demo: out of memory\n");
        return CN_EXIT_INTERNAL;
    }
    d->runs[0] = (demo_run){.d = d, .title = "1/2  A change written by a person",
                            .file = CN_DEMO_HUMAN_CHANGE, .expect = 0, .exit_code = -1};
    d->runs[1] = (demo_run){.d = d, .title = "2/2  A change written with an AI agent",
                            .file = CN_DEMO_AI_CHANGE, .expect = 3, .exit_code = -1};
    const char *term = getenv("TERM");
    d->format = isatty(STDOUT_FILENO) && term && strcmp(term, "dumb") ? CN_VIEW_LIVE
                                                                      : CN_VIEW_LINES;
    char err[PATH_MAX + 128] = "";
    if (cn_demo_dir_make(d->dir, sizeof d->dir, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canary demo: %s\n", err);
        free(d);
        return CN_EXIT_INTERNAL;
    }
    int code = CN_EXIT_INTERNAL;
    bool ran = false;
    if (uv_loop_init(&d->loop) != 0) {
        fprintf(stderr, "canary demo: could not create the event loop\n");
        code = finish_demo(d, keep, false);
        free(d);
        return code;
    }
    /* Signals are caught from here on: one during set-up is handled once
     * the loop runs, before any rollout starts. */
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_timer_init(&d->loop, &d->next);
    d->sigint.data = d->sigterm.data = d->next.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    if (set_up(d, fast) == CN_OK) {
        ran = true;
        uv_timer_start(&d->next, on_next, 0, 0);
    } else {
        wind_down(d);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0)
        fprintf(stderr, "canary demo: internal: handles left open at exit\n");
    cn_store_close(d->store);
    code = finish_demo(d, keep, ran);
    for (size_t i = 0; i < sizeof d->runs / sizeof d->runs[0]; i++)
        cn_planning_free(&d->runs[i].pl);
    free(d);
    return code;
}
