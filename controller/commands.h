/* commands.h: the subcommands of cli.c, one file each (private). */
#ifndef CANARY_COMMANDS_H
#define CANARY_COMMANDS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "canary/text.h" /* cn_utc_stamp */
#include "canary/engine.h"
#include "canary/planning.h"
#include "canary/store.h"

enum { CN_EXIT_OK = 0, CN_EXIT_INTERNAL = 1, CN_EXIT_INVALID = 2 };

typedef struct cn_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage; /* synopsis and options, printed by --help */
} cn_command;

int cn_cmd_validate(int argc, char **argv);
int cn_cmd_plan(int argc, char **argv);
int cn_cmd_demo(int argc, char **argv);
int cn_cmd_run(int argc, char **argv);
int cn_cmd_status(int argc, char **argv);
int cn_cmd_history(int argc, char **argv);
int cn_cmd_audit(int argc, char **argv);
int cn_cmd_watch(int argc, char **argv);
int cn_cmd_explain(int argc, char **argv);
int cn_cmd_approve(int argc, char **argv);
int cn_cmd_pause(int argc, char **argv);
int cn_cmd_resume(int argc, char **argv);
int cn_cmd_promote(int argc, char **argv);
int cn_cmd_abort(int argc, char **argv);
int cn_cmd_judge(int argc, char **argv);
int cn_cmd_simulate(int argc, char **argv);
int cn_cmd_backtest(int argc, char **argv);

extern const cn_command cn_cmd_validate_def, cn_cmd_plan_def, cn_cmd_run_def, cn_cmd_demo_def,
    cn_cmd_status_def, cn_cmd_history_def, cn_cmd_audit_def, cn_cmd_watch_def,
    cn_cmd_explain_def, cn_cmd_approve_def, cn_cmd_pause_def, cn_cmd_resume_def,
    cn_cmd_promote_def, cn_cmd_abort_def, cn_cmd_judge_def, cn_cmd_simulate_def,
    cn_cmd_backtest_def;

/* Shared by `status` and `history`, which only read (cmd_history.c). */
#define CN_DEFAULT_STATE ".canary/state.db"
/* Opens path read-only into *s; on failure prints "canary CMD: ..." (a
 * missing file: "no state database at PATH: nothing has run here") and
 * returns the exit status, else CN_EXIT_OK. */
int cn_state_open_readonly(const cn_command *cmd, const char *path, cn_store **s);
/* For an unknown id (cmd_status.c): prints "did you mean: A, B?" on stderr
 * with up to three stored ids that start with it or are a few edits away;
 * nothing when none is near. */
void cn_suggest_ids(cn_store *s, const char *id);
/* -o text|json for cmd: CN_EXIT_OK and *json, or the usage error. */
int cn_output_flag(const cn_command *cmd, const char *arg, bool *json);
/* A span for people, in its largest whole unit: "45s", "3m", "2h", "5d". */
void cn_format_age(char *buf, size_t len, int64_t ms);
/* Wall-clock now, ms since the epoch. */
int64_t cn_now_ms(void);
/* Prints rows x cols cells (row 0 the header) as a table aligned in
 * columns, each at most max[c] wide (0: as wide as its cells), the last
 * column taking what is left of 80 (at least 16); longer cells end in
 * "...". */
void cn_print_table(FILE *out, const char *const *cells, size_t rows, size_t cols,
                    const unsigned *max);

/* Shared by `status` and `watch` (cmd_status.c); errors are printed as
 * "canary CMD: ..." and the exit status returned. */
typedef struct cn_status_event {
    int64_t time_ms;
    char *type, *actor, *detail, *data; /* data may be NULL */
} cn_status_event;
typedef struct cn_status_events {
    cn_status_event *v;
    size_t n, cap;
    bool failed;    /* out of memory */
    bool last_only; /* keep only the last decision (the list) */
} cn_status_events;
/* Copies the events of rollout id into *es (zeroed by the caller). */
int cn_status_read_events(const cn_command *cmd, cn_store *s, const char *id,
                          cn_status_events *es);
void cn_status_events_free(cn_status_events *es);
/* False for evidence and mechanics (measurements, actuator calls...). */
bool cn_status_is_decision(const char *type);
/* Reads rollout id into *r; an unknown id: "no rollout 'ID' in PATH" and
 * the near ids suggested. */
int cn_status_get(const cn_command *cmd, cn_store *s, const char *id, const char *path,
                  cn_rollout_row *r);
/* The list of rollouts, as `canary status` prints it, to stdout. */
int cn_status_list(const cn_command *cmd, cn_store *s, bool json);

/* Shared by the operator commands and `status` (cmd_operate.c). Whether
 * the lease's holder is alive at now_ms: its heartbeat is at most
 * CN_LEASE_TTL_MS old (older, the store lets another run take it over). */
bool cn_lease_alive(const cn_lease *l, int64_t now_ms);
/* The lease's holder for people: "canary run pid N on HOST". */
void cn_driver_describe(char *buf, size_t len, const cn_lease *l);

/* Shared by `run` and `demo` (cmd_run.c). Stores the planned rollout as
 * pending, the row the engine then records into (attempt 1 creates it, a
 * later one starts a finished rollout over); prints what failed as
 * "canary CMD: ..." and returns the status. */
int cn_run_store_rollout(cn_store *store, const cn_planning *pl, const char *cmd, int attempt);
/* A policy without metrics cannot roll back on its own: prints why (on
 * stderr) and returns CN_EINVAL; CN_OK when it has metrics. */
int cn_run_refuse_unmeasured(const cn_planning *pl);
/* The engine's configuration for a planned rollout. */
cn_engine_config cn_run_engine_config(const cn_planning *pl, uv_loop_t *loop, cn_http *http,
                                      cn_store *store, cn_engine_observer observer);

/* The flags `plan` and `run` share, for their getopt_long tables. */
#define CN_PLANNING_OPTIONS                                 \
    {"change", required_argument, NULL, 'c'},               \
    {"topology", required_argument, NULL, 't'},             \
    {"policy", required_argument, NULL, 'p'},               \
    {"policies", required_argument, NULL, 'P'},             \
    {"git-range", required_argument, NULL, 'g'},            \
    {"repo", required_argument, NULL, 'r'}
/* Takes getopt_long's answer c if it is one of CN_PLANNING_OPTIONS. */
bool cn_planning_flag(int c, const char *arg, cn_planning_options *opt);
/* The checks on those flags once all are read: CN_EXIT_OK, or the usage
 * error (printed) to return. */
int cn_planning_flags_check(const cn_command *cmd, const cn_planning_options *opt);

/* Shared getopt_long loop behaviour: prints "canary CMD: unknown flag ..."
 * and the usage to stderr; returns CN_EXIT_INVALID for the caller to return. */
int cn_usage_error(const cn_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The option that getopt_long rejected, for the message. */
const char *cn_bad_option(char **argv);
/* Prints the usage to stdout (for --help); returns CN_EXIT_OK. */
int cn_print_help(const cn_command *cmd);

#endif
