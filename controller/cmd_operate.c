/* `canary approve|pause|resume|promote|abort ID --as USER`: an operator's
 * request to the `canary run` driving a rollout, in another process. The
 * request is stored as an intent in the state database; the driver (the
 * holder of the rollout's lease) acts on it through its state machine and
 * marks it with what came of it, which this command waits for. What can be
 * refused here, without the driver, is refused here and recorded in the
 * rollout's log: a user missing from --access, a finished rollout, the
 * author approving their own change. Roles need the policy, which only the
 * driver has. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "canary/access.h"
#include "canary/diag.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

/* Besides CN_EXIT_OK (acted on), CN_EXIT_INTERNAL (refused or failed) and
 * CN_EXIT_INVALID (usage, access file). */
enum { EXIT_REFUSED = CN_EXIT_INTERNAL, EXIT_STORED = 3 };

#define DEFAULT_WAIT_S 30.0
#define MAX_WAIT_S 86400.0
/* How often the request and the lease are looked at while waiting. */
#define POLL_MS 100

#define OPERATE_OPTIONS                                                                      \
    "  ID                 the rollout\n"                                                     \
    "  --as USER          who asks (required); recorded with the request\n"                 \
    "  --reason TEXT      why, recorded with it\n"                                           \
    "  --state DB         the state database (default: .canary/state.db); never created\n"   \
    "  --access FILE      refuse USER unless the access file lists them\n"                   \
    "  --wait SECONDS     how long to wait for the driving canary run to act\n"              \
    "                     (default 30)\n"

#define OPERATE_TAIL                                                                         \
    "\n"                                                                                     \
    "The request is stored in the state database; the canary run driving the rollout\n"     \
    "acts on it and records the outcome, which is printed. With nothing driving it, the\n"  \
    "request waits for the run to be resumed (the same canary run command again).\n"        \
    "\n"                                                                                     \
    "Exit status: 0 acted on; 1 refused (here or by the driver) or failed; 2 invalid\n"     \
    "usage or access file; 3 stored but not acted on (nothing drives the rollout, or\n"     \
    "no answer within --wait).\n"

#define SYNOPSIS(verb, extra)                                                                \
    "usage: canary " verb " ID --as USER " extra "[--reason TEXT] [--state DB]\n"             \
    "       " "[--access FILE] [--wait SECONDS]\n"                                            \
    "\n"

const cn_command cn_cmd_approve_def = {
    "approve", cn_cmd_approve, "approve the gated stage of a rollout (a second person)",
    SYNOPSIS("approve", "")
    "Lets a rollout that awaits approval (an AI-assisted change's gated stage) go on.\n"
    "USER must not be the change's author (two-person rule) and must hold the\n"
    "policy's approval role, which the driving canary run checks.\n"
    "\n" OPERATE_OPTIONS OPERATE_TAIL};

const cn_command cn_cmd_pause_def = {
    "pause", cn_cmd_pause, "hold a rollout at its current stage",
    SYNOPSIS("pause", "")
    "Holds the rollout at its current stage and weight: its bake stands still, but its\n"
    "metrics are still measured and a failure still rolls back. `canary resume` lets\n"
    "it go on.\n"
    "\n" OPERATE_OPTIONS OPERATE_TAIL};

const cn_command cn_cmd_resume_def = {
    "resume", cn_cmd_resume, "let a paused rollout go on",
    SYNOPSIS("resume", "")
    "Lets a paused rollout go on baking its current stage.\n"
    "\n" OPERATE_OPTIONS OPERATE_TAIL};

const cn_command cn_cmd_promote_def = {
    "promote", cn_cmd_promote, "move a rollout to its next stage now (--full: to 100%)",
    SYNOPSIS("promote", "[--full] ")
    "Skips the rest of the current stage's bake and analysis and applies the next\n"
    "stage; with --full, the last stage (100%). --full past an approval gate, or on an\n"
    "AI-assisted change, needs what approve needs (not the author; the role).\n"
    "\n" OPERATE_OPTIONS
    "  --full             go straight to the last stage\n" OPERATE_TAIL};

const cn_command cn_cmd_abort_def = {
    "abort", cn_cmd_abort, "stop a rollout and roll it back",
    SYNOPSIS("abort", "")
    "Rolls the rollout back to the previous version; its canary run exits 4.\n"
    "\n" OPERATE_OPTIONS OPERATE_TAIL};

static const struct option operate_options[] = {
    {"as", required_argument, NULL, 'u'},
    {"reason", required_argument, NULL, 'r'},
    {"state", required_argument, NULL, 's'},
    {"access", required_argument, NULL, 'a'},
    {"wait", required_argument, NULL, 'w'},
    {"full", no_argument, NULL, 'f'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One request, as the flags gave it. */
typedef struct request {
    const cn_command *cmd;
    const char *what;   /* "approve", ..., "promote --full": for people */
    const char *intent; /* as stored: "approve", ..., "promote_full" */
    const char *id, *user, *reason, *path, *access;
    double wait_s;
    bool full;
} request;

/* ---- the driver, shared with `canary status` ------------------------------ */

bool cn_lease_alive(const cn_lease *l, int64_t now_ms)
{
    /* The store's own rule: taken over once older than the ttl. */
    return now_ms - l->heartbeat_ms <= CN_LEASE_TTL_MS;
}

void cn_driver_describe(char *buf, size_t len, const cn_lease *l)
{
    snprintf(buf, len, "canary run pid %lld on %s", (long long)l->pid,
             l->host[0] ? l->host : "an unknown host");
}

/* ---- flags ----------------------------------------------------------------- */

static int parse_wait(const request *rq, const char *arg, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || !isfinite(v) || v <= 0 || v > MAX_WAIT_S)
        return cn_usage_error(rq->cmd, "--wait takes a positive number of seconds (at most %g), "
                              "got '%s'", MAX_WAIT_S, arg);
    *out = v;
    return CN_EXIT_OK;
}

static int parse(request *rq, int argc, char **argv)
{
    const cn_command *cmd = rq->cmd;
    int c;
    while ((c = getopt_long(argc, argv, ":h", operate_options, NULL)) != -1) {
        switch (c) {
        case 'u': rq->user = optarg; break;
        case 'r': rq->reason = optarg; break;
        case 's': rq->path = optarg; break;
        case 'a': rq->access = optarg; break;
        case 'w':
            if (parse_wait(rq, optarg, &rq->wait_s))
                return CN_EXIT_INVALID;
            break;
        case 'f':
            if (strcmp(cmd->name, "promote") != 0)
                return cn_usage_error(cmd, "--full applies to promote only");
            rq->full = true;
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind >= argc)
        return cn_usage_error(cmd, "which rollout? give its ID");
    if (optind + 1 < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    rq->id = argv[optind];
    if (!*rq->id)
        return cn_usage_error(cmd, "the rollout ID is empty");
    if (!rq->user || !*rq->user)
        return cn_usage_error(cmd, "--as USER is required: say who asks");
    if (rq->reason && !*rq->reason)
        rq->reason = NULL;
    rq->what = rq->full ? "promote --full" : cmd->name;
    rq->intent = rq->full ? "promote_full" : cmd->name;
    return CN_EXIT_OK;
}

/* ---- refusals made here ---------------------------------------------------- */

/* Prints "WHAT by 'USER' refused: WHY", records it in the rollout's log
 * as intent_refused by USER, and returns EXIT_REFUSED. */
static int refuse(const request *rq, cn_store *s, const char *fmt, ...) CN_PRINTF(3, 4);
static int refuse(const request *rq, cn_store *s, const char *fmt, ...)
{
    char why[512], detail[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(detail, sizeof detail, "%s by '%s' refused: %s", rq->what, rq->user, why);
    fprintf(stderr, "canary %s: %s\n", rq->cmd->name, detail);
    json_t *data = json_pack("{s:s, s:s?}", "intent", rq->intent, "reason", rq->reason);
    char *data_json = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    cn_store_event ev = {.time_ms = cn_now_ms(), .type = "intent_refused", .actor = rq->user,
                         .detail = detail, .data_json = data_json};
    char err[1024];
    if (cn_store_note(s, rq->id, &ev, err, sizeof err))
        fprintf(stderr, "canary %s: could not record the refusal: %s\n", rq->cmd->name, err);
    free(data_json);
    return EXIT_REFUSED;
}

/* Whether the stored plan gates a stage after the current one. */
static bool gate_ahead(const cn_rollout_row *r)
{
    json_t *plan = r->plan_json ? json_loads(r->plan_json, 0, NULL) : NULL;
    json_t *stages = json_object_get(plan, "stages");
    bool gated = false;
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st)
    {
        json_int_t index = json_integer_value(json_object_get(st, "index"));
        if (index > (json_int_t)r->stage && json_is_true(json_object_get(st, "approval")))
            gated = true;
    }
    json_decref(plan);
    return gated;
}

/* The early answers: CN_EXIT_OK when the request may be stored. */
static int check(const request *rq, cn_store *s, const cn_rollout_row *r, const cn_access *acc)
{
    if (acc && !cn_access_find(acc, rq->user))
        return refuse(rq, s, "not a user in access file '%s'", rq->access);
    if (r->exit_code >= 0)
        return refuse(rq, s, "rollout %s is already %s: nothing to %s", r->id, r->state,
                      rq->cmd->name);
    /* The two-person rule, as the driver's state machine applies it: an
     * approval, and a promote --full that passes a gate or carries an
     * AI-assisted change to 100%, need someone other than the author. */
    bool signs_off = !strcmp(rq->intent, "approve") ||
                     (rq->full && (r->ai_assisted || gate_ahead(r)));
    if (signs_off && (!r->author || !*r->author))
        return refuse(rq, s, "the change names no author, so the two-person rule cannot be "
                      "checked");
    if (signs_off && !strcmp(r->author, rq->user))
        return refuse(rq, s, "'%s' is the change's author; a second person must sign off "
                      "(two-person rule)", rq->user);
    return CN_EXIT_OK;
}

/* ---- waiting for the driver ------------------------------------------------ */

typedef struct waiter {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    const request *rq;
    cn_store *store;
    int64_t intent;
    cn_lease driver;    /* the live lease last seen */
    uint64_t start_ms;  /* uv_now at the start */
    uint64_t limit_ms;
    int exit_code;
} waiter;

static void stop(waiter *w, int exit_code)
{
    w->exit_code = exit_code;
    uv_timer_stop(&w->timer);
    if (!uv_is_closing((uv_handle_t *)&w->timer)) {
        uv_close((uv_handle_t *)&w->timer, NULL);
        uv_close((uv_handle_t *)&w->sigint, NULL);
        uv_close((uv_handle_t *)&w->sigterm, NULL);
    }
}

/* The intent's result is "<event type>: <detail>"; these types mean the
 * driver did not do what was asked. */
static bool refused_result(const char *result)
{
    static const char *const types[] = {"intent_refused", "approval_refused",
                                        "intent_expired"};
    size_t n = strcspn(result, ":");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (n == strlen(types[i]) && !strncmp(result, types[i], n))
            return true;
    return false;
}

/* Ends the wait with the request still stored. driver_lost: nothing
 * drives the rollout any more, so only a new run acts on it. */
static void not_acted(waiter *w, const char *why, bool driver_lost)
{
    const request *rq = w->rq;
    if (uv_is_closing((uv_handle_t *)&w->timer))
        return; /* a second signal: already said */
    if (driver_lost)
        printf("%s; request #%lld (%s by '%s') stays stored and is acted on when canary run "
               "resumes the rollout (run the same canary run command again)\n",
               why, (long long)w->intent, rq->what, rq->user);
    else
        printf("%s; request #%lld (%s by '%s') stays stored and may still be acted on (see "
               "canary status %s)\n",
               why, (long long)w->intent, rq->what, rq->user, rq->id);
    stop(w, EXIT_STORED);
}

/* One look. The lease is read before the request: a driver marks the
 * request and only then releases the lease, so a lease seen gone here
 * means a request still unmarked below was never acted on. */
static void on_tick(uv_timer_t *t)
{
    waiter *w = t->data;
    const request *rq = w->rq;
    char err[1024], who[160], why[512];
    cn_lease l;
    int lease_rc = cn_store_lease_get(w->store, rq->id, &l, err, sizeof err);
    if (lease_rc && lease_rc != CN_ENOTFOUND) {
        fprintf(stderr, "canary %s: %s\n", rq->cmd->name, err);
        stop(w, CN_EXIT_INTERNAL);
        return;
    }
    if (!lease_rc && cn_lease_alive(&l, cn_now_ms()))
        w->driver = l; /* after a takeover, the new driver acts */
    cn_intent_row row;
    if (cn_store_intent_get(w->store, w->intent, &row, err, sizeof err)) {
        fprintf(stderr, "canary %s: %s\n", rq->cmd->name, err);
        stop(w, CN_EXIT_INTERNAL);
        return;
    }
    double waited = (double)(uv_now(&w->loop) - w->start_ms) / 1000.0;
    cn_driver_describe(who, sizeof who, &w->driver);
    if (row.result) {
        if (refused_result(row.result)) {
            fprintf(stderr, "canary %s: %s refused by %s after %.1f s: %s\n", rq->cmd->name,
                    rq->what, who, waited, row.result);
            stop(w, EXIT_REFUSED);
        } else {
            printf("%s acted on by %s after %.1f s: %s\n", rq->what, who, waited, row.result);
            stop(w, CN_EXIT_OK);
        }
    } else if (lease_rc == CN_ENOTFOUND) {
        snprintf(why, sizeof why, "%s released rollout %s without acting on it", who, rq->id);
        not_acted(w, why, true);
    } else if (!cn_lease_alive(&l, cn_now_ms())) {
        char age[16];
        cn_format_age(age, sizeof age, cn_now_ms() - l.heartbeat_ms);
        cn_driver_describe(who, sizeof who, &l);
        snprintf(why, sizeof why,
                 "%s stopped renewing its lease on rollout %s (heartbeat %s ago) without acting "
                 "on it", who, rq->id, age);
        not_acted(w, why, true);
    } else if (uv_now(&w->loop) - w->start_ms >= w->limit_ms) {
        snprintf(why, sizeof why, "%s did not act on it within %g s", who, rq->wait_s);
        not_acted(w, why, false);
    }
    cn_intent_row_free(&row);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    not_acted(h->data, "stopped waiting", false);
}

static int wait_for_driver(const request *rq, cn_store *s, int64_t intent, const cn_lease *l)
{
    waiter w = {.rq = rq, .store = s, .intent = intent, .driver = *l,
                .limit_ms = (uint64_t)llround(rq->wait_s * 1000.0), .exit_code = EXIT_STORED};
    if (uv_loop_init(&w.loop) != 0) {
        fprintf(stderr, "canary %s: cannot start the event loop\n", rq->cmd->name);
        return CN_EXIT_INTERNAL;
    }
    uv_timer_init(&w.loop, &w.timer);
    uv_signal_init(&w.loop, &w.sigint);
    uv_signal_init(&w.loop, &w.sigterm);
    w.timer.data = w.sigint.data = w.sigterm.data = &w;
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    /* Said only now that a Ctrl-C is handled: whoever reads this line may
     * press it at once. */
    char who[160];
    cn_driver_describe(who, sizeof who, l);
    printf("request #%lld (%s by '%s') stored; waiting up to %g s for %s\n", (long long)intent,
           rq->what, rq->user, rq->wait_s, who);
    fflush(stdout);
    w.start_ms = uv_now(&w.loop);
    uv_timer_start(&w.timer, on_tick, POLL_MS, POLL_MS);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w.loop) != 0)
        fprintf(stderr, "canary %s: the event loop did not close cleanly\n", rq->cmd->name);
    return w.exit_code;
}

/* ---- the command ------------------------------------------------------------ */

/* Stores the request, then waits for the driver if there is one alive. */
static int submit(const request *rq, cn_store *s)
{
    char err[1024];
    int64_t intent = 0;
    if (cn_store_intent_add(s, rq->id, rq->intent, rq->user, rq->reason, cn_now_ms(), &intent,
                            err, sizeof err)) {
        fprintf(stderr, "canary %s: %s\n", rq->cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    cn_lease l;
    int rc = cn_store_lease_get(s, rq->id, &l, err, sizeof err);
    if (rc && rc != CN_ENOTFOUND) {
        fprintf(stderr, "canary %s: %s\n", rq->cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    int64_t now = cn_now_ms();
    if (rc == CN_ENOTFOUND || !cn_lease_alive(&l, now)) {
        char last[256] = "";
        if (!rc) {
            char who[160], age[16];
            cn_driver_describe(who, sizeof who, &l);
            cn_format_age(age, sizeof age, now - l.heartbeat_ms);
            snprintf(last, sizeof last, " (its last driver, %s, stopped renewing its lease %s "
                     "ago)", who, age);
        }
        printf("request #%lld (%s by '%s') is stored, but nothing is driving rollout %s%s.\n"
               "It is acted on when canary run resumes the rollout: run the same canary run "
               "command again.\n",
               (long long)intent, rq->what, rq->user, rq->id, last);
        return EXIT_STORED;
    }
    return wait_for_driver(rq, s, intent, &l);
}

static int open_state(const request *rq, cn_store **s)
{
    /* An operator's command never creates a database: a typo in --state
     * would otherwise store a request nobody will ever read. */
    struct stat sb;
    if (stat(rq->path, &sb) != 0) {
        if (errno == ENOENT)
            fprintf(stderr, "canary %s: no state database at '%s': nothing has run here (use "
                    "--state)\n", rq->cmd->name, rq->path);
        else
            fprintf(stderr, "canary %s: no state database at '%s': %s\n", rq->cmd->name,
                    rq->path, strerror(errno));
        return CN_EXIT_INTERNAL;
    }
    char err[1024];
    if (cn_store_open(s, rq->path, err, sizeof err)) {
        fprintf(stderr, "canary %s: %s\n", rq->cmd->name, err);
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

static int operate(const cn_command *cmd, int argc, char **argv)
{
    request rq = {.cmd = cmd, .path = CN_DEFAULT_STATE, .wait_s = DEFAULT_WAIT_S};
    int exit_code = parse(&rq, argc, argv);
    if (exit_code || !rq.id)
        return exit_code; /* a usage error, or --help */
    cn_access acc;
    bool have_access = rq.access != NULL;
    if (have_access) {
        cn_diags d;
        cn_diags_init(&d);
        int rc = cn_access_load(&acc, rq.access, &d);
        cn_diags_print(&d, stderr);
        cn_diags_free(&d);
        if (rc) {
            cn_access_free(&acc);
            return CN_EXIT_INVALID;
        }
    }
    cn_store *s = NULL;
    cn_rollout_row r = {0};
    exit_code = open_state(&rq, &s);
    if (!exit_code)
        exit_code = cn_status_get(cmd, s, rq.id, rq.path, &r);
    if (!exit_code)
        exit_code = check(&rq, s, &r, have_access ? &acc : NULL);
    if (!exit_code)
        exit_code = submit(&rq, s);
    cn_rollout_row_free(&r);
    cn_store_close(s);
    if (have_access)
        cn_access_free(&acc);
    return exit_code;
}

int cn_cmd_approve(int argc, char **argv)
{
    return operate(&cn_cmd_approve_def, argc, argv);
}

int cn_cmd_pause(int argc, char **argv)
{
    return operate(&cn_cmd_pause_def, argc, argv);
}

int cn_cmd_resume(int argc, char **argv)
{
    return operate(&cn_cmd_resume_def, argc, argv);
}

int cn_cmd_promote(int argc, char **argv)
{
    return operate(&cn_cmd_promote_def, argc, argv);
}

int cn_cmd_abort(int argc, char **argv)
{
    return operate(&cn_cmd_abort_def, argc, argv);
}
