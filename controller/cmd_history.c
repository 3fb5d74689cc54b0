/* `canary history`: the rollouts of a state database, newest first, one
 * line each; and the helpers it shares with `canary status` (opening the
 * database read-only, times for people, the table printer). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary/run_view.h"
#include "canary/schema.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_history_def = {
    "history", cn_cmd_history, "list past and running rollouts, newest first",
    "usage: canary history [--service S] [--since DURATION] [--state DB] [-o text|json]\n"
    "\n"
    "  --service S        only this service's rollouts\n"
    "  --since DURATION   only rollouts created in the last DURATION (30m, 12h, 7d)\n"
    "  --state DB         the state database (default: .canary/state.db); never created\n"
    "  -o, --output FMT   text (default) or json\n"
    "\n"
    "Exit status: 0 listed (even none); 1 no state database or it cannot be read;\n"
    "2 invalid usage.\n"};

static const struct option history_options[] = {
    {"service", required_argument, NULL, 'S'},
    {"since", required_argument, NULL, 'n'},
    {"state", required_argument, NULL, 's'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- shared with cmd_status.c ------------------------------------------- */

int cn_state_open_readonly(const cn_command *cmd, const char *path, cn_store **s)
{
    char err[1024];
    int rc = cn_store_open_readonly(s, path, err, sizeof err);
    if (rc == CN_ENOTFOUND) {
        fprintf(stderr, "canary %s: no state database at %s: nothing has run here (use --state)\n",
                cmd->name, path);
        return CN_EXIT_INTERNAL;
    }
    if (rc) {
        fprintf(stderr, "canary %s: %s\n", cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

int cn_output_flag(const cn_command *cmd, const char *arg, bool *json)
{
    if (!strcmp(arg, "json"))
        *json = true;
    else if (!strcmp(arg, "text"))
        *json = false;
    else
        return cn_usage_error(cmd, "-o takes 'text' or 'json', got '%s'", arg);
    return CN_EXIT_OK;
}

void cn_format_age(char *buf, size_t len, int64_t ms)
{
    /* A clock set back makes a negative span: say 0s rather than nonsense. */
    long long s = ms > 0 ? (long long)(ms / 1000) : 0;
    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm", s / 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh", s / 3600);
    else
        snprintf(buf, len, "%lldd", s / 86400);
}

int64_t cn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define TABLE_WIDTH 80
#define LAST_MIN 16
#define MAX_COLS 16

void cn_print_table(FILE *out, const char *const *cells, size_t rows, size_t cols,
                    const unsigned *max)
{
    if (cols == 0 || cols > MAX_COLS)
        return;
    size_t width[MAX_COLS] = {0};
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t n = strlen(cells[r * cols + c]);
            if (n > width[c])
                width[c] = n;
        }
    size_t used = 0;
    for (size_t c = 0; c + 1 < cols; c++) {
        if (max && max[c] && width[c] > max[c])
            width[c] = max[c];
        used += width[c] + 2;
    }
    size_t room = used + LAST_MIN < TABLE_WIDTH ? TABLE_WIDTH - used : LAST_MIN;
    if (width[cols - 1] > room)
        width[cols - 1] = room;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const char *t = cells[r * cols + c];
            size_t n = strlen(t), w = width[c];
            bool last = c + 1 == cols;
            if (n > w && w > 3)
                fprintf(out, "%.*s...", (int)(w - 3), t);
            else if (last)
                fprintf(out, "%.*s", (int)w, t);
            else
                fprintf(out, "%-*.*s", (int)w, (int)w, t);
            fputs(last ? "\n" : "  ", out);
        }
    }
}

/* ---- history ------------------------------------------------------------ */

/* DURATION as the policy files write it, plus whole days ("7d"), which a
 * look back at history needs and a bake never does. */
static int parse_since(const char *text, int64_t *ms)
{
    size_t n = strlen(text);
    if (n >= 2 && text[n - 1] == 'd') {
        char *end;
        errno = 0;
        unsigned long days = strtoul(text, &end, 10);
        if (errno || end != text + n - 1 || text[0] < '0' || text[0] > '9' || days > 36500)
            return -1;
        *ms = (int64_t)days * 86400000;
        return 0;
    }
    return cn_text_duration(text, ms) == 0 ? 0 : -1;
}

static void outcome_text(const cn_rollout_row *r, char *buf, size_t len)
{
    if (r->exit_code >= 0)
        snprintf(buf, len, "%s (exit %d)", r->state, r->exit_code);
    else
        snprintf(buf, len, "%s", r->state);
}

static void duration_text(const cn_rollout_row *r, char *buf, size_t len)
{
    int64_t ms = r->updated_ms - r->created_ms;
    cn_format_duration(buf, len, ms > 0 ? ms / 1000 * 1000 : 0);
}

static int print_text(const cn_rollout_row *rows, size_t n)
{
    enum { COLS = 8, CELL = 96 };
    size_t total = (n + 1) * COLS;
    const char **cells = calloc(total, sizeof *cells);
    char *text = calloc(n + 1, (size_t)COLS * CELL);
    if (!cells || !text) {
        free(cells);
        free(text);
        fprintf(stderr, "canary history: out of memory\n");
        return CN_EXIT_INTERNAL;
    }
    static const char *const head[COLS] = {"CREATED (UTC)", "ID",       "SERVICE", "VERSION",
                                           "AI",            "OUTCOME",  "DURATION", "STAGES"};
    for (size_t c = 0; c < COLS; c++)
        cells[c] = head[c];
    for (size_t i = 0; i < n; i++) {
        const cn_rollout_row *r = &rows[i];
        char *cell = text + (i + 1) * COLS * CELL;
        char stamp[40];
        cn_utc_stamp(stamp, sizeof stamp, r->created_ms);
        /* To the minute, as a person scans it: "2026-11-29 09:09". */
        snprintf(cell, CELL, "%.10s %.5s", stamp, stamp + 11);
        snprintf(cell + CELL, CELL, "%s", r->id);
        snprintf(cell + 2 * CELL, CELL, "%s", r->service);
        snprintf(cell + 3 * CELL, CELL, "%s", r->version);
        snprintf(cell + 4 * CELL, CELL, "%s", r->ai_assisted ? "yes" : "no");
        outcome_text(r, cell + 5 * CELL, CELL);
        duration_text(r, cell + 6 * CELL, CELL);
        snprintf(cell + 7 * CELL, CELL, "%u/%u", r->stage, r->stages);
        for (size_t c = 0; c < COLS; c++)
            cells[(i + 1) * COLS + c] = cell + c * CELL;
    }
    static const unsigned max[COLS] = {0, 20, 12, 10, 0, 0, 0, 0};
    cn_print_table(stdout, cells, n + 1, COLS, max);
    free(cells);
    free(text);
    return CN_EXIT_OK;
}

static int print_json(const cn_rollout_row *rows, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        const cn_rollout_row *r = &rows[i];
        char created[40], updated[40];
        cn_utc_stamp(created, sizeof created, r->created_ms);
        cn_utc_stamp(updated, sizeof updated, r->updated_ms);
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s?, s:s?, s:b, s:s, s:o, s:s?, s:I, s:I, s:f, s:s, s:s, s:f}", "id",
            r->id, "service", r->service, "version", r->version, "previous_version",
            r->previous_version, "author", r->author, "ai_assisted", r->ai_assisted, "state",
            r->state, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null(),
            "outcome", r->exit_code >= 0 ? cn_exit_code_meaning(r->exit_code) : NULL, "stage",
            (json_int_t)r->stage, "stages", (json_int_t)r->stages, "weight", r->weight * 100.0,
            "created", created, "updated", updated, "duration_seconds",
            (double)(r->updated_ms - r->created_ms) / 1000.0);
        if (!o || json_array_append_new(a, o)) {
            json_decref(a);
            a = NULL;
        }
    }
    int rc = a ? json_dumpf(a, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) : -1;
    json_decref(a);
    if (rc) {
        fprintf(stderr, "canary history: could not write the JSON list\n");
        return CN_EXIT_INTERNAL;
    }
    fputc('\n', stdout);
    return CN_EXIT_OK;
}

int cn_cmd_history(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_history_def;
    const char *path = CN_DEFAULT_STATE;
    cn_store_filter f = {0};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", history_options, NULL)) != -1) {
        switch (c) {
        case 'S': f.service = optarg; break;
        case 's': path = optarg; break;
        case 'n': {
            int64_t ms;
            if (parse_since(optarg, &ms) || ms <= 0)
                return cn_usage_error(cmd, "--since takes a duration such as 30m, 12h or 7d, "
                                           "got '%s'", optarg);
            f.since_ms = cn_now_ms() - ms;
            break;
        }
        case 'o':
            if (cn_output_flag(cmd, optarg, &json))
                return CN_EXIT_INVALID;
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    cn_store *s = NULL;
    int exit_code = cn_state_open_readonly(cmd, path, &s);
    if (exit_code)
        return exit_code;
    cn_rollout_row *rows = NULL;
    size_t n = 0;
    char err[1024];
    if (cn_store_list(s, &f, &rows, &n, err, sizeof err)) {
        fprintf(stderr, "canary history: %s\n", err);
        exit_code = CN_EXIT_INTERNAL;
    } else if (json) {
        exit_code = print_json(rows, n);
    } else if (n == 0) {
        printf("no rollouts%s%s%s\n", f.service ? " of " : "", f.service ? f.service : "",
               f.since_ms ? " in that time" : "");
    } else {
        exit_code = print_text(rows, n);
    }
    cn_rollout_rows_free(rows, n);
    cn_store_close(s);
    return exit_code;
}
