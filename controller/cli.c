#include "canary/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "canary/version.h"
#include "commands.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const cn_command help_def = {
    "help", cmd_help, "show the commands, or one command's usage",
    "usage: canary help [COMMAND]\n"};
static const cn_command version_def = {"version", cmd_version,
                                       "print canary's version", "usage: canary version\n"};

static const cn_command *const commands[] = {
    &cn_cmd_validate_def, &cn_cmd_plan_def, &cn_cmd_run_def, &cn_cmd_simulate_def,
    &cn_cmd_backtest_def, &cn_cmd_status_def, &cn_cmd_history_def, &cn_cmd_watch_def,
    &cn_cmd_explain_def, &cn_cmd_approve_def, &cn_cmd_pause_def, &cn_cmd_resume_def,
    &cn_cmd_promote_def, &cn_cmd_abort_def, &cn_cmd_judge_def, &cn_cmd_demo_def,
    &cn_cmd_audit_def, &help_def,
    &version_def,
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const cn_command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (!strcmp(commands[i]->name, name))
            return commands[i];
    return NULL;
}

static void print_overview(FILE *out)
{
    fprintf(out, "usage: canary COMMAND [ARGS]\n\n"
                 "canary rolls a change out in stages sized by its blast radius.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\n'canary COMMAND --help' shows a command's options; docs/cli.md "
                 "has the reference.\n");
}

int cn_usage_error(const cn_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "canary %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", cmd->usage);
    return CN_EXIT_INVALID;
}

const char *cn_bad_option(char **argv)
{
    /* getopt_long leaves optind past the offending word. */
    return optind > 0 ? argv[optind - 1] : "?";
}

int cn_print_help(const cn_command *cmd)
{
    fputs(cmd->usage, stdout);
    return CN_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return cn_usage_error(&help_def, "too many arguments");
    if (argc == 2) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
            return cn_print_help(&help_def);
        const cn_command *c = find_command(argv[1]);
        if (!c)
            return cn_usage_error(&help_def, "unknown command '%s'", argv[1]);
        return cn_print_help(c);
    }
    print_overview(stdout);
    return CN_EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return cn_print_help(&version_def);
    if (argc > 1)
        return cn_usage_error(&version_def, "unexpected argument '%s'", argv[1]);
    printf("canary %s\n", CANARY_VERSION);
    return CN_EXIT_OK;
}

int cn_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stderr);
        return CN_EXIT_INVALID;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        name = "help";
    else if (!strcmp(name, "--version"))
        name = "version";
    const cn_command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "canary: unknown command '%s'\n\n", argv[1]);
        print_overview(stderr);
        return CN_EXIT_INVALID;
    }
    optind = 0; /* glibc: a full getopt reset for the command's own flags */
    opterr = 0; /* the command prints its own message and usage */
    return c->run(argc - 1, argv + 1);
}
