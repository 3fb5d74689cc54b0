/* `canary explain`: the story of one rollout in plain sentences, for an
 * incident review (explain.c writes it). Reads only. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/explain.h"
#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_explain_def = {
    "explain", cn_cmd_explain, "tell the story of one rollout in plain sentences",
    "usage: canary explain ID [--state DB] [-o text|json]\n"
    "\n"
    "  ID                 the rollout: why its stages, each decision and its evidence,\n"
    "                     who acted and when, the outcome\n"
    "  --state DB         the state database (default: .canary/state.db); never created\n"
    "  -o, --output FMT   text (default, wrapped at 78 columns) or json\n"
    "                     ({\"id\", \"paragraphs\": [...]}, unwrapped)\n"
    "\n"
    "Exit status: 0 explained; 1 no state database, no such rollout, or it cannot be\n"
    "read; 2 invalid usage.\n"};

static const struct option explain_options[] = {
    {"state", required_argument, NULL, 's'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The events copied out of the store: its strings live only during the
 * callback. */
typedef struct copied {
    cn_store_event *v;
    size_t n, cap;
    bool failed;
} copied;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void copied_free(copied *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free((char *)c->v[i].type);
        free((char *)c->v[i].actor);
        free((char *)c->v[i].detail);
        free((char *)c->v[i].data_json);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

static int collect(void *ctx, int64_t seq, const cn_store_event *ev)
{
    (void)seq;
    copied *c = ctx;
    if (c->n == c->cap) {
        size_t grown = c->cap ? 2 * c->cap : 64;
        cn_store_event *more = realloc(c->v, grown * sizeof *more);
        if (!more) {
            c->failed = true;
            return 1;
        }
        c->v = more;
        c->cap = grown;
    }
    cn_store_event *e = &c->v[c->n++];
    *e = (cn_store_event){.time_ms = ev->time_ms, .type = dup_or_null(ev->type),
                          .actor = dup_or_null(ev->actor), .detail = dup_or_null(ev->detail),
                          .data_json = dup_or_null(ev->data_json)};
    if (!e->type || !e->actor || !e->detail || (ev->data_json && !e->data_json)) {
        c->failed = true;
        return 1;
    }
    return 0;
}

static int print_json(const char *id, const cn_explanation *x)
{
    json_t *paras = json_array();
    for (size_t i = 0; paras && i < x->n; i++)
        if (json_array_append_new(paras, json_string(x->para[i]))) {
            json_decref(paras);
            paras = NULL;
        }
    json_t *o = paras ? json_pack("{s:s, s:o}", "id", id, "paragraphs", paras) : NULL;
    int rc = o ? json_dumpf(o, stdout, JSON_INDENT(2)) : -1;
    json_decref(o);
    if (rc) {
        fprintf(stderr, "canary explain: could not write the JSON view (out of memory?)\n");
        return CN_EXIT_INTERNAL;
    }
    fputc('\n', stdout);
    return CN_EXIT_OK;
}

static int explain(cn_store *s, const char *id, const char *path, bool json)
{
    cn_rollout_row r;
    char err[1024];
    int rc = cn_store_get(s, id, &r, err, sizeof err);
    if (rc == CN_ENOTFOUND) {
        fprintf(stderr, "canary explain: no rollout '%s' in %s\n", id, path);
        cn_suggest_ids(s, id);
        return CN_EXIT_INTERNAL;
    }
    if (rc) {
        fprintf(stderr, "canary explain: %s\n", err);
        return CN_EXIT_INTERNAL;
    }
    copied c = {0};
    cn_explanation x = {0};
    char *text = NULL;
    int exit_code = CN_EXIT_INTERNAL;
    rc = cn_store_events(s, id, collect, &c, err, sizeof err);
    if (!rc && c.failed)
        snprintf(err, sizeof err, "out of memory reading the events of '%s'", id);
    if (rc || c.failed) {
        fprintf(stderr, "canary explain: %s\n", err);
    } else if (cn_explain(&r, c.v, c.n, &x) ||
               (!json && cn_explanation_text(&x, 78, &text))) {
        fprintf(stderr, "canary explain: out of memory writing the story of '%s'\n", id);
    } else if (json) {
        exit_code = print_json(id, &x);
    } else {
        fputs(text, stdout);
        exit_code = CN_EXIT_OK;
    }
    free(text);
    cn_explanation_free(&x);
    copied_free(&c);
    cn_rollout_row_free(&r);
    return exit_code;
}

int cn_cmd_explain(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_explain_def;
    const char *path = CN_DEFAULT_STATE;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", explain_options, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'o':
            if (cn_output_flag(cmd, optarg, &json))
                return CN_EXIT_INVALID;
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind >= argc)
        return cn_usage_error(cmd, "give the ID of the rollout to explain");
    if (optind + 1 < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    cn_store *s = NULL;
    int exit_code = cn_state_open_readonly(cmd, path, &s);
    if (exit_code)
        return exit_code;
    exit_code = explain(s, argv[optind], path, json);
    cn_store_close(s);
    return exit_code;
}
