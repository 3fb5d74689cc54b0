#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "canary/schema.h"
#include "canary/sim_output.h"
#include "canary/simulate.h"
#include "canary/status.h"
#include "commands.h"

const cn_command cn_cmd_simulate_def = {
    "simulate", cn_cmd_simulate, "replay a trace of metric values through a rollout, virtually",
    "usage: canary simulate --change FILE [--topology FILE] [--policy FILE | --policies DIR]\n"
    "                       [--git-range A..B [--repo DIR]] --trace FILE [-o text|json]\n"
    "                       [--svg FILE] [--decisions] [--until DURATION] [--hold DURATION]\n"
    "                       [--actuator-time DURATION]\n"
    "\n"
    "  --change FILE ... --repo DIR   plan the change exactly as `canary plan` does\n"
    "  --trace FILE           CSV: seconds,metric,value[,baseline][,weight_at_least]\n"
    "                         (docs/simulation.md)\n"
    "  -o, --output FMT       text (default: the events, then a summary) or json\n"
    "  --svg FILE             also draw the rollout: weight, metrics, decisions\n"
    "  --decisions            text: leave out measurements, print decisions only\n"
    "  --until DURATION       stop the virtual clock here (default 7 days)\n"
    "  --hold DURATION        follow a paused or unapproved rollout this long past the\n"
    "                         trace's end (default: longest max_bake + approval timeout)\n"
    "  --actuator-time DUR    each actuator call takes this long (default: instant)\n"
    "\n"
    "The rollout runs on a virtual clock (t = 0 when stage 1 is applied) through the\n"
    "same state machine and analysis as `canary run`, polling the trace instead of\n"
    "the metrics sources. Nothing is stored, no actuator is called.\n"
    "\n"
    "Exit status: 0 simulated (whatever the outcome: see outcome and exit_code);\n"
    "2 invalid input; 1 internal failure (out of memory, the SVG could not be written).\n"};

static const struct option simulate_options[] = {
    CN_PLANNING_OPTIONS,
    {"trace", required_argument, NULL, 'T'},
    {"output", required_argument, NULL, 'o'},
    {"svg", required_argument, NULL, 's'},
    {"decisions", no_argument, NULL, 'd'},
    {"until", required_argument, NULL, 'u'},
    {"hold", required_argument, NULL, 'H'},
    {"actuator-time", required_argument, NULL, 'A'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct sim_opts {
    const char *trace, *svg;
    bool json, decisions;
    int64_t until_ms, hold_ms, actuator_ms;
} sim_opts;

static int duration_flag(const cn_command *cmd, const char *flag, const char *arg, int64_t *ms)
{
    if (cn_text_duration(arg, ms) != 0)
        return cn_usage_error(cmd, "--%s expects a duration such as 30s, 5m or 1h30m, got '%s'",
                              flag, arg);
    return CN_EXIT_OK;
}

/* Tells about metrics the trace says nothing of: they read no data. */
static void note_silent_metrics(const cn_trace *t, const cn_policy *p)
{
    for (size_t i = 0; i < p->analysis.metric_count && i < CN_MAX_METRICS; i++)
        if (t->of_metric[i] < 0)
            fprintf(stderr, "note: %s has no rows for metric '%s': it reads no data throughout\n",
                    t->file, p->analysis.metrics[i].name);
    if (p->analysis.min_requests.count > 0 && t->of_requests < 0)
        fprintf(stderr, "note: %s has no rows for '%s' (min_requests): the count stays unknown, "
                "so no stage can be promoted\n", t->file, CN_TRACE_REQUESTS);
}

static void print_header(const cn_planning *pl, const cn_trace *t)
{
    printf("simulating %s %s under policy '%s': %zu stage%s (", pl->change.service,
           pl->change.version, pl->policy->name, pl->plan.stage_count,
           pl->plan.stage_count == 1 ? "" : "s");
    for (size_t i = 0; i < pl->plan.stage_count; i++)
        printf("%s%g%%", i ? ", " : "", pl->plan.stages[i].weight * 100);
    char end[32];
    cn_format_duration(end, sizeof end, t->end_ms);
    printf("), reach %g%%%s\ntrace %s: last row at %s\n\n", pl->plan.reach * 100,
           pl->ai_assisted ? ", AI-assisted" : "", t->file, end);
}

static int write_svg(const char *path, const cn_sim_config *cfg, const cn_sim_result *res,
                     const cn_planning *pl)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", path, strerror(errno));
        return CN_EXIT_INTERNAL;
    }
    char title[256];
    snprintf(title, sizeof title, "%s %s under policy '%s'", pl->change.service,
             pl->change.version, pl->policy->name);
    int rc = cn_sim_svg(f, cfg, res, title);
    if (fclose(f) != 0 || rc != CN_OK) {
        fprintf(stderr, "canary simulate: cannot write %s: %s\n", path, strerror(errno));
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

/* Plans, loads the trace, simulates and reports; returns the exit status. */
static int simulate(const cn_planning_options *popt, const sim_opts *o)
{
    cn_diags diags;
    cn_diags_init(&diags);
    cn_planning pl;
    int rc = cn_planning_run(&pl, popt, &diags);
    cn_trace trace;
    int trc = cn_trace_load(&trace, o->trace, &diags);
    if (rc == CN_OK && trc == CN_OK)
        trc = cn_trace_bind(&trace, pl.policy, &diags);
    cn_diags_print(&diags, stderr);
    cn_diags_free(&diags);
    int code = rc == CN_ENOMEM || trc == CN_ENOMEM ? CN_EXIT_INTERNAL
               : rc || trc                        ? CN_EXIT_INVALID
                                                  : CN_EXIT_OK;
    char err[512] = "";
    if (code == CN_EXIT_OK && cn_run_refuse_unmeasured(&pl) != CN_OK)
        code = CN_EXIT_INVALID;
    if (code == CN_EXIT_OK &&
        cn_engine_check_baseline(pl.policy, pl.change.previous_version, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canary simulate: %s\n", err);
        code = CN_EXIT_INVALID;
    }
    cn_sim_result res;
    memset(&res, 0, sizeof res);
    cn_sim_config cfg = {.plan = &pl.plan, .policy = pl.policy, .ai_assisted = pl.ai_assisted,
                         .author = pl.change.author, .reach = pl.plan.reach, .trace = &trace,
                         .until_ms = o->until_ms, .hold_ms = o->hold_ms,
                         .actuator_ms = o->actuator_ms};
    if (code == CN_EXIT_OK) {
        note_silent_metrics(&trace, pl.policy);
        rc = cn_simulate(&cfg, &res, err, sizeof err);
        if (rc != CN_OK) {
            fprintf(stderr, "canary simulate: %s\n", err);
            code = rc == CN_EINVAL ? CN_EXIT_INVALID : CN_EXIT_INTERNAL;
        }
    }
    if (code == CN_EXIT_OK && o->json) {
        if (cn_sim_print_json(stdout, &cfg, &res) != CN_OK) {
            fprintf(stderr, "canary simulate: cannot write the JSON result\n");
            code = CN_EXIT_INTERNAL;
        }
    } else if (code == CN_EXIT_OK) {
        print_header(&pl, &trace);
        if (cn_sim_print_text(stdout, &cfg, &res, o->decisions) != CN_OK)
            code = CN_EXIT_INTERNAL;
    }
    if (code == CN_EXIT_OK && o->svg)
        code = write_svg(o->svg, &cfg, &res, &pl);
    cn_sim_result_free(&res);
    cn_trace_free(&trace);
    cn_planning_free(&pl);
    return code;
}

int cn_cmd_simulate(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_simulate_def;
    cn_planning_options popt = {0};
    sim_opts o = {.hold_ms = -1};
    int c, bad = CN_EXIT_OK;
    while (bad == CN_EXIT_OK &&
           (c = getopt_long(argc, argv, ":o:h", simulate_options, NULL)) != -1) {
        if (cn_planning_flag(c, optarg, &popt))
            continue;
        switch (c) {
        case 'T': o.trace = optarg; break;
        case 's': o.svg = optarg; break;
        case 'd': o.decisions = true; break;
        case 'o': bad = cn_output_flag(cmd, optarg, &o.json); break;
        case 'u':
            bad = duration_flag(cmd, "until", optarg, &o.until_ms);
            if (bad == CN_EXIT_OK && o.until_ms == 0)
                bad = cn_usage_error(cmd, "--until must be more than 0s");
            break;
        case 'H': bad = duration_flag(cmd, "hold", optarg, &o.hold_ms); break;
        case 'A': bad = duration_flag(cmd, "actuator-time", optarg, &o.actuator_ms); break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (bad != CN_EXIT_OK)
        return bad;
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if ((bad = cn_planning_flags_check(cmd, &popt)) != CN_EXIT_OK)
        return bad;
    if (!o.trace)
        return cn_usage_error(cmd, "--trace is required");
    return simulate(&popt, &o);
}
