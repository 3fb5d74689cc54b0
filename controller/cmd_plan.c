#include <stdio.h>
#include <string.h>

#include "canary/plan_output.h"
#include "canary/planning.h"
#include "canary/status.h"
#include "commands.h"

const cn_command cn_cmd_plan_def = {
    "plan", cn_cmd_plan, "show the stages a change would get, and why",
    "usage: canary plan --change FILE [--topology FILE] [--policy FILE | --policies DIR]\n"
    "                   [--git-range A..B [--repo DIR]] [-o text|json]\n"
    "\n"
    "  --change FILE      the change (YAML or JSON): service, version, author, ...\n"
    "  --topology FILE    the service graph; without it reach is 100% and the tier unknown\n"
    "  --policy FILE      use this policy, without matching\n"
    "  --policies DIR     match the change against every policy file in DIR\n"
    "                     (*.yaml, *.yml, *.json; default: policies)\n"
    "  --git-range A..B   derive the diff and AI provenance from these commits\n"
    "  --repo DIR         the git repository for --git-range (default: .)\n"
    "  -o, --output FMT   text (default) or json\n"
    "\n"
    "Exit status: 0 planned, 2 invalid input, 1 internal failure.\n"};

static const struct option plan_options[] = {
    CN_PLANNING_OPTIONS,
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_plan(const cn_planning *pl, bool json)
{
    if (!json) {
        cn_plan_print_text(pl, stdout);
        return CN_EXIT_OK;
    }
    json_t *o = cn_plan_to_json(pl);
    if (!o) {
        fprintf(stderr, "canary plan: out of memory building the JSON plan\n");
        return CN_EXIT_INTERNAL;
    }
    int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    fputc('\n', stdout);
    json_decref(o);
    return rc ? CN_EXIT_INTERNAL : CN_EXIT_OK;
}

int cn_cmd_plan(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_plan_def;
    cn_planning_options opt = {0};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", plan_options, NULL)) != -1) {
        if (cn_planning_flag(c, optarg, &opt))
            continue;
        switch (c) {
        case 'o':
            if (!strcmp(optarg, "json"))
                json = true;
            else if (strcmp(optarg, "text"))
                return cn_usage_error(cmd, "-o takes 'text' or 'json', got '%s'", optarg);
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

    cn_diags diags;
    cn_diags_init(&diags);
    cn_planning pl;
    int rc = cn_planning_run(&pl, &opt, &diags);
    int exit_code = CN_EXIT_OK;
    cn_diags_print(&diags, stderr);
    if (rc == CN_ENOMEM)
        exit_code = CN_EXIT_INTERNAL;
    else if (rc)
        exit_code = CN_EXIT_INVALID;
    else
        exit_code = print_plan(&pl, json);
    cn_planning_free(&pl);
    cn_diags_free(&diags);
    return exit_code;
}

bool cn_planning_flag(int c, const char *arg, cn_planning_options *opt)
{
    switch (c) {
    case 'c': opt->change_path = arg; return true;
    case 't': opt->topology_path = arg; return true;
    case 'p': opt->policy_path = arg; return true;
    case 'P': opt->policies_dir = arg; return true;
    case 'g': opt->git_range = arg; return true;
    case 'r': opt->repo_dir = arg; return true;
    default: return false;
    }
}

int cn_planning_flags_check(const cn_command *cmd, const cn_planning_options *opt)
{
    if (!opt->change_path)
        return cn_usage_error(cmd, "--change is required");
    if (opt->policy_path && opt->policies_dir)
        return cn_usage_error(cmd, "give --policy or --policies, not both");
    if (opt->repo_dir && !opt->git_range)
        return cn_usage_error(cmd, "--repo only applies with --git-range");
    return CN_EXIT_OK;
}
