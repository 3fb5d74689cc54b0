#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "canary/plan_output.h"
#include "canary/planning.h"
#include "canary/status.h"
#include "commands.h"

/* Until the rollout engine lands, the demo shows what canary decides before
 * anything ships: the plans of the same change written by a person and
 * with an AI agent. */
const cn_command cn_cmd_demo_def = {
    "demo", cn_cmd_demo, "plan the shipped example changes (no services needed)",
    "usage: canary demo [--examples DIR] [--policies DIR]\n"
    "\n"
    "  --examples DIR     where the example changes and topology are (default: examples)\n"
    "  --policies DIR     the policies to match (default: policies)\n"};

static int demo_one(const char *title, const char *examples, const char *change,
                    const char *policies)
{
    char change_path[4096], topo_path[4096];
    snprintf(change_path, sizeof change_path, "%s/%s", examples, change);
    snprintf(topo_path, sizeof topo_path, "%s/topology.yaml", examples);
    cn_planning_options opt = {.change_path = change_path,
                               .topology_path = topo_path,
                               .policies_dir = policies};
    cn_diags diags;
    cn_diags_init(&diags);
    cn_planning pl;
    int rc = cn_planning_run(&pl, &opt, &diags);
    cn_diags_print(&diags, stderr);
    if (rc == CN_OK) {
        printf("== %s\n\n", title);
        cn_plan_print_text(&pl, stdout);
        printf("\n");
    }
    cn_planning_free(&pl);
    cn_diags_free(&diags);
    return rc == CN_OK ? CN_EXIT_OK : rc == CN_ENOMEM ? CN_EXIT_INTERNAL : CN_EXIT_INVALID;
}

int cn_cmd_demo(int argc, char **argv)
{
    static const struct option options[] = {
        {"examples", required_argument, NULL, 'e'},
        {"policies", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const cn_command *cmd = &cn_cmd_demo_def;
    const char *examples = "examples", *policies = "policies";
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'e': examples = optarg; break;
        case 'P': policies = optarg; break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    struct stat st;
    if (stat(examples, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "canary demo: no '%s' directory here; run it from the canary "
                        "source tree or pass --examples DIR\n", examples);
        return CN_EXIT_INVALID;
    }
    int rc = demo_one("A human-written change to checkout", examples,
                      "checkout-change.yaml", policies);
    if (rc == CN_EXIT_OK)
        rc = demo_one("The same change, written with an AI agent", examples,
                      "checkout-ai-change.yaml", policies);
    return rc;
}
