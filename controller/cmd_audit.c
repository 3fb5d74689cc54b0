/* canary audit verify|export: the event log's hash chain checked, or
 * written out as JSON lines for keeping elsewhere (docs/state.md, "Audit
 * chain"). Both only read the database. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "canary/status.h"
#include "canary/store.h"
#include "commands.h"

const cn_command cn_cmd_audit_def = {
    "audit", cn_cmd_audit, "verify the event log's hash chain, or export it",
    "usage: canary audit verify [--state DB] [--strict] [ID]\n"
    "       canary audit export ID [--state DB]\n"
    "\n"
    "  verify           recompute the hash chain of every rollout (or of ID) and name\n"
    "                   the first changed or missing event of each broken one\n"
    "  export           print rollout ID's events as JSON lines, with their hashes\n"
    "  --state DB       the state database (default: .canary/state.db)\n"
    "  --strict         verify: events written before the audit chain fail too\n"
    "\n"
    "Exit status: 0 chains intact (verify) or exported, 1 a chain is broken or\n"
    "reading failed, 2 invalid input (usage, no such database or rollout).\n"};

static const struct option audit_options[] = {
    {"state", required_argument, NULL, 's'},
    {"strict", no_argument, NULL, 'S'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int open_failed(const char *err, int rc)
{
    fprintf(stderr, "canary audit: %s\n", err);
    return rc == CN_ENOMEM ? CN_EXIT_INTERNAL : CN_EXIT_INVALID;
}

/* ---- verify ------------------------------------------------------------- */

typedef struct tally {
    bool strict;
    int64_t events, unchained, rollouts, broken;
} tally;

static void report(void *ctx, const cn_audit_result *r)
{
    tally *t = ctx;
    t->rollouts++;
    t->events += r->found;
    t->unchained += r->unchained;
    char line[1024];
    if (r->verdict != CN_AUDIT_INTACT) {
        t->broken++;
        cn_audit_describe(r, line, sizeof line);
        printf("%s\n", line);
    }
    if (r->unchained) {
        if (t->strict && r->verdict == CN_AUDIT_INTACT)
            t->broken++;
        printf("rollout %s: %" PRId64 " event%s unchained (written before the audit chain)%s\n",
               r->rollout, r->unchained, r->unchained == 1 ? "" : "s",
               t->strict ? "" : "; not a failure without --strict");
    }
}

static int verify(cn_store *store, const char *id, bool strict)
{
    tally t = {.strict = strict};
    char err[1024] = "";
    int rc = cn_store_audit_verify(store, id, report, &t, err, sizeof err);
    if (rc) {
        fprintf(stderr, "canary audit: %s\n", err);
        return rc == CN_ENOTFOUND ? CN_EXIT_INVALID : CN_EXIT_INTERNAL;
    }
    if (t.broken) {
        printf("FAILED: %" PRId64 " of %" PRId64 " rollout%s %s a broken chain\n", t.broken,
               t.rollouts, t.rollouts == 1 ? "" : "s", t.broken == 1 ? "has" : "have");
        return CN_EXIT_INTERNAL;
    }
    printf("ok: %" PRId64 " events in %" PRId64 " rollout%s, chains intact\n", t.events,
           t.rollouts, t.rollouts == 1 ? "" : "s");
    return CN_EXIT_OK;
}

/* ---- export ------------------------------------------------------------- */

static json_t *hex(const unsigned char *h, bool present)
{
    if (!present)
        return json_null();
    char buf[2 * CN_AUDIT_HASH_SIZE + 1];
    for (size_t i = 0; i < CN_AUDIT_HASH_SIZE; i++)
        snprintf(buf + 2 * i, 3, "%02x", h[i]);
    return json_string(buf);
}

typedef struct exporter {
    int failed; /* CN_EXIT_* */
} exporter;

static int export_one(void *ctx, const cn_audit_entry *e)
{
    exporter *x = ctx;
    if (!e->canonical) {
        fprintf(stderr, "canary audit: event seq %" PRId64 " of rollout '%s' has data that is "
                "not JSON: the row was changed (see canary audit verify)\n", e->seq, e->rollout);
        x->failed = CN_EXIT_INTERNAL;
        return 1;
    }
    /* The canonical object plus the hashes, dumped the same way: removing
     * prev_hash and hash from a line gives back the text that was hashed. */
    json_t *o = json_loads(e->canonical, 0, NULL);
    char *line = NULL;
    if (o && !json_object_set_new(o, "prev_hash", hex(e->prev_hash, e->well_formed)) &&
        !json_object_set_new(o, "hash", hex(e->hash, e->well_formed)))
        line = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII |
                                 JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!line) {
        fprintf(stderr, "canary audit: out of memory exporting event seq %" PRId64 "\n", e->seq);
        x->failed = CN_EXIT_INTERNAL;
        return 1;
    }
    int bad = printf("%s\n", line) < 0;
    free(line);
    if (bad) {
        fprintf(stderr, "canary audit: cannot write the export\n");
        x->failed = CN_EXIT_INTERNAL;
        return 1;
    }
    return 0;
}

static int export_events(cn_store *store, const char *id)
{
    exporter x = {CN_EXIT_OK};
    char err[1024] = "";
    int rc = cn_store_audit_events(store, id, export_one, &x, err, sizeof err);
    if (rc) {
        fprintf(stderr, "canary audit: %s\n", err);
        return rc == CN_ENOTFOUND ? CN_EXIT_INVALID : CN_EXIT_INTERNAL;
    }
    if (!x.failed && fflush(stdout) != 0) {
        fprintf(stderr, "canary audit: cannot write the export\n");
        return CN_EXIT_INTERNAL;
    }
    return x.failed;
}

int cn_cmd_audit(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_audit_def;
    const char *state_path = ".canary/state.db";
    bool strict = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", audit_options, NULL)) != -1) {
        switch (c) {
        case 's': state_path = optarg; break;
        case 'S': strict = true; break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind >= argc)
        return cn_usage_error(cmd, "verify or export?");
    const char *sub = argv[optind++];
    bool is_verify = !strcmp(sub, "verify");
    if (!is_verify && strcmp(sub, "export"))
        return cn_usage_error(cmd, "unknown subcommand '%s' (verify or export)", sub);
    const char *id = optind < argc ? argv[optind++] : NULL;
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!is_verify && !id)
        return cn_usage_error(cmd, "export needs a rollout ID");
    if (!is_verify && strict)
        return cn_usage_error(cmd, "--strict only applies to verify");

    cn_store *store = NULL;
    char err[1024] = "";
    int rc = cn_store_open_readonly(&store, state_path, err, sizeof err);
    if (rc)
        return open_failed(err, rc);
    int code = is_verify ? verify(store, id, strict) : export_events(store, id);
    cn_store_close(store);
    return code;
}
