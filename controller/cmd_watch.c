/* `canary watch`: a live view of one rollout, or of the list, read from
 * the state database while another process (`canary run`) writes it.
 * Reads only, through one read-only connection kept open: in WAL a reader
 * sees each commit of the writer as soon as it is made. A timer re-reads
 * the store and draws again only when something it shows has changed. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "canary/actuator.h"
#include "canary/run_view.h"
#include "canary/schema.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_watch_def = {
    "watch", cn_cmd_watch, "follow one rollout, or the list, live as it changes",
    "usage: canary watch [ID] [--state DB]\n"
    "\n"
    "  ID                 one rollout: stage, weight, bake, latest measurement per\n"
    "                     metric and the last decisions; ends when the rollout ends;\n"
    "                     without it, the list as `canary status` prints it, until ^C\n"
    "  --state DB         the state database (default: .canary/state.db); never created\n"
    "\n"
    "On a terminal the view is redrawn in place; otherwise a new block is printed,\n"
    "after a blank line, each time something changed. watch never changes a rollout.\n"
    "\n"
    "Exit status: 0 watched (also when interrupted, and whatever the rollout's outcome);\n"
    "1 no state database, no such rollout, or it cannot be read; 2 invalid usage.\n"};

static const struct option watch_options[] = {
    {"state", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Often enough to show a change within a second, rarely enough to cost
 * nothing next to the writer. */
#define POLL_MS 300
#define BAR_WIDTH 24
#define DECISIONS 10
#define METRICS 16

/* What the view shows depends on, cheaply read: when any of it moves, the
 * view is read in full and drawn. */
typedef struct signature {
    int64_t updated_ms, events, last_seq; /* one rollout */
    uint64_t rows;                        /* the list: a hash of id, state, updated_ms */
    int64_t bake_s;                       /* a terminal only: the bake clock ticks */
} signature;

typedef struct watch {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    cn_store *store;
    const char *id;
    bool tty, drawn;
    signature last;
    int exit_code;
} watch;

static const cn_command *const cmd = &cn_cmd_watch_def;

/* ---- reading ------------------------------------------------------------ */

static int count_event(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)ev;
    signature *sig = ctx;
    sig->events++;
    sig->last_seq = seq;
    return 0;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211u; /* FNV-1a */
    return h;
}

static int list_signature(watch *w, signature *sig)
{
    cn_rollout_row *rows = NULL;
    size_t n = 0;
    char err[1024];
    if (cn_store_list(w->store, NULL, &rows, &n, err, sizeof err)) {
        fprintf(stderr, "canary watch: %s\n", err);
        return CN_EXIT_INTERNAL;
    }
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++) {
        h = mix(h, rows[i].id, strlen(rows[i].id) + 1);
        h = mix(h, rows[i].state, strlen(rows[i].state) + 1);
        h = mix(h, &rows[i].updated_ms, sizeof rows[i].updated_ms);
    }
    sig->rows = h ^ n;
    cn_rollout_rows_free(rows, n);
    return CN_EXIT_OK;
}

/* ---- one rollout, drawn -------------------------------------------------- */

/* The plan's bake for stage (1-based) in ms, or -1 when the plan says not. */
static int64_t planned_bake_ms(const char *plan_json, unsigned stage)
{
    json_t *plan = plan_json ? json_loads(plan_json, 0, NULL) : NULL;
    json_t *st = json_array_get(json_object_get(plan, "stages"), stage - 1);
    json_t *bake = json_object_get(st, "bake_seconds");
    int64_t ms = json_is_number(bake) ? (int64_t)(json_number_value(bake) * 1000.0) : -1;
    json_decref(plan);
    return ms;
}

/* How long the current stage has baked, from its stage_applied event (a
 * run that was resumed baked some before: not counted); -1 when not
 * baking or not known. */
static int64_t baked_ms(const cn_rollout_row *r, const cn_status_events *es, int64_t now)
{
    if (strcmp(r->state, "progressing") || r->stage == 0)
        return -1;
    for (size_t i = es->n; i-- > 0;) {
        const cn_status_event *e = &es->v[i];
        if (strcmp(e->type, "stage_applied"))
            continue;
        unsigned k = 0;
        if (sscanf(e->detail, "stage %u of", &k) != 1 || k != r->stage)
            return -1;
        return now > e->time_ms ? now - e->time_ms : 0;
    }
    return -1;
}

static void print_bar(FILE *out, double w)
{
    char bar[BAR_WIDTH + 1];
    cn_weight_bar(bar, sizeof bar, w);
    char text[32];
    cn_format_weight(text, sizeof text, w);
    fprintf(out, "[%s] %s%%", bar, text);
}

static void print_bake(FILE *out, const cn_rollout_row *r, const cn_status_events *es,
                       int64_t now)
{
    int64_t baked = baked_ms(r, es, now), total = planned_bake_ms(r->plan_json, r->stage);
    if (baked < 0 || total < 0)
        return;
    char done[24], of[24];
    cn_format_duration(done, sizeof done, baked / 1000 * 1000);
    cn_format_duration(of, sizeof of, total);
    if (baked < total)
        fprintf(out, "bake      %s of %s\n", done, of);
    else
        fprintf(out, "bake      %s done, waiting for enough passing measurements\n", of);
}

static void number(char *buf, size_t len, const json_t *v)
{
    if (json_is_number(v))
        snprintf(buf, len, "%g", json_number_value(v));
    else
        snprintf(buf, len, "-");
}

/* The last measurement of each metric, in the order metrics first showed. */
static void print_metrics(FILE *out, const cn_status_events *es)
{
    const cn_status_event *last[METRICS];
    char names[METRICS][64];
    size_t n = 0;
    for (size_t i = 0; i < es->n; i++) {
        const cn_status_event *e = &es->v[i];
        if (strcmp(e->type, "measurement") || !e->data)
            continue;
        json_t *d = json_loads(e->data, 0, NULL);
        const char *metric = json_string_value(json_object_get(d, "metric"));
        size_t k = 0;
        while (metric && k < n && strcmp(names[k], metric))
            k++;
        if (metric && k == n && n < METRICS)
            snprintf(names[n++], sizeof names[0], "%s", metric);
        if (metric && k < n)
            last[k] = e;
        json_decref(d);
    }
    if (!n)
        return;
    fprintf(out, "\n%-20s %-8s %-12s %s\n", "METRIC", "OUTCOME", "VALUE", "BOUNDS");
    for (size_t k = 0; k < n; k++) {
        json_t *d = json_loads(last[k]->data, 0, NULL);
        char value[32], lo[32], hi[32];
        number(value, sizeof value, json_object_get(d, "value"));
        number(lo, sizeof lo, json_object_get(d, "min"));
        number(hi, sizeof hi, json_object_get(d, "max"));
        const char *outcome = json_string_value(json_object_get(d, "outcome"));
        fprintf(out, "%-20.20s %-8.8s %-12.12s [%s, %s]\n", names[k], outcome ? outcome : "?",
                value, lo, hi);
        json_decref(d);
    }
}

static void print_decisions(FILE *out, const cn_status_events *es)
{
    size_t idx[DECISIONS], n = 0;
    for (size_t i = es->n; i-- > 0 && n < DECISIONS;)
        if (cn_status_is_decision(es->v[i].type))
            idx[n++] = i;
    if (!n)
        return;
    fprintf(out, "\nlast decisions (UTC):\n");
    while (n-- > 0) {
        const cn_status_event *e = &es->v[idx[n]];
        char stamp[40];
        cn_utc_stamp(stamp, sizeof stamp, e->time_ms);
        /* 80 columns: time 8, type 18 (a longer type, whole, takes room
         * from the detail), then the detail's first characters. */
        int type_w = (int)strlen(e->type) > 18 ? (int)strlen(e->type) : 18;
        if (type_w > 30)
            type_w = 30;
        int room = 68 - type_w;
        bool cut = (int)strlen(e->detail) > room;
        fprintf(out, "  %.8s %-*.*s %.*s%s\n", stamp + 11, type_w, type_w, e->type,
                cut ? room - 3 : room, e->detail, cut ? "..." : "");
    }
}

static void draw_one(FILE *out, const cn_rollout_row *r, const cn_status_events *es)
{
    int64_t now = cn_now_ms();
    fprintf(out, "rollout   %s  (%s %s)\n", r->id, r->service, r->version);
    fprintf(out, "state     %s, stage %u/%u ", r->state, r->stage, r->stages);
    print_bar(out, r->weight);
    fputc('\n', out);
    print_bake(out, r, es, now);
    if (r->exit_code >= 0)
        fprintf(out, "result    %s (exit %d)\n", cn_exit_code_meaning(r->exit_code),
                r->exit_code);
    print_metrics(out, es);
    print_decisions(out, es);
}

/* ---- the loop ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void stop(watch *w, int exit_code)
{
    w->exit_code = exit_code;
    uv_timer_stop(&w->timer);
    if (!uv_is_closing((uv_handle_t *)&w->timer)) {
        uv_close((uv_handle_t *)&w->timer, on_closed);
        uv_close((uv_handle_t *)&w->sigint, on_closed);
        uv_close((uv_handle_t *)&w->sigterm, on_closed);
    }
}

static void begin_block(watch *w)
{
    if (w->tty)
        fputs("\033[H\033[2J", stdout); /* cursor home, clear the screen */
    else if (w->drawn)
        fputc('\n', stdout);
    w->drawn = true;
}

/* One look at the store: CN_EXIT_OK and *done when the rollout ended. */
static int look(watch *w, bool *done)
{
    *done = false;
    signature sig = {0};
    if (!w->id) {
        int rc = list_signature(w, &sig);
        if (rc || (w->drawn && !memcmp(&sig, &w->last, sizeof sig)))
            return rc;
        begin_block(w);
        rc = cn_status_list(cmd, w->store, false);
        fflush(stdout);
        w->last = sig;
        return rc;
    }
    cn_rollout_row r;
    char err[1024];
    if (cn_store_get(w->store, w->id, &r, err, sizeof err) ||
        cn_store_events(w->store, w->id, count_event, &sig, err, sizeof err)) {
        cn_rollout_row_free(&r);
        fprintf(stderr, "canary watch: %s\n", err);
        return CN_EXIT_INTERNAL;
    }
    sig.updated_ms = r.updated_ms;
    cn_status_events es = {0};
    int rc = CN_EXIT_OK;
    bool changed = !w->drawn || memcmp(&sig, &w->last, sizeof sig) != 0;
    if (w->tty && !changed) {
        /* Only the bake clock may have moved: it needs the events. */
        rc = cn_status_read_events(cmd, w->store, w->id, &es);
        int64_t baked = rc ? -1 : baked_ms(&r, &es, cn_now_ms());
        sig.bake_s = baked < 0 ? -1 : baked / 1000;
        changed = sig.bake_s != w->last.bake_s;
    } else if (changed) {
        rc = cn_status_read_events(cmd, w->store, w->id, &es);
        if (w->tty && !rc) {
            int64_t baked = baked_ms(&r, &es, cn_now_ms());
            sig.bake_s = baked < 0 ? -1 : baked / 1000;
        }
    }
    if (!rc && changed) {
        begin_block(w);
        draw_one(stdout, &r, &es);
        fflush(stdout);
        w->last = sig;
    }
    *done = !rc && r.exit_code >= 0;
    cn_status_events_free(&es);
    cn_rollout_row_free(&r);
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    watch *w = t->data;
    bool done;
    int rc = look(w, &done);
    if (rc || done)
        stop(w, rc);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    stop(h->data, CN_EXIT_OK); /* the rollout is not ours: leave it as it is */
}

int cn_cmd_watch(int argc, char **argv)
{
    const char *path = CN_DEFAULT_STATE;
    int c;
    while ((c = getopt_long(argc, argv, ":h", watch_options, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    watch w = {.id = optind < argc ? argv[optind] : NULL, .tty = isatty(STDOUT_FILENO) == 1};
    if (w.id && optind + 1 < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    int exit_code = cn_state_open_readonly(cmd, path, &w.store);
    if (exit_code)
        return exit_code;
    if (w.id) {
        /* An unknown id is said as `status` says it, before any drawing. */
        cn_rollout_row r;
        exit_code = cn_status_get(cmd, w.store, w.id, path, &r);
        cn_rollout_row_free(&r);
        if (exit_code) {
            cn_store_close(w.store);
            return exit_code;
        }
    }
    if (uv_loop_init(&w.loop) != 0) {
        fprintf(stderr, "canary watch: cannot start the event loop\n");
        cn_store_close(w.store);
        return CN_EXIT_INTERNAL;
    }
    uv_timer_init(&w.loop, &w.timer);
    uv_signal_init(&w.loop, &w.sigint);
    uv_signal_init(&w.loop, &w.sigterm);
    w.timer.data = w.sigint.data = w.sigterm.data = &w;
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    /* The first look at once, then every POLL_MS. */
    uv_timer_start(&w.timer, on_tick, 0, POLL_MS);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w.loop) != 0)
        fprintf(stderr, "canary watch: the event loop did not close cleanly\n");
    cn_store_close(w.store);
    return w.exit_code;
}
