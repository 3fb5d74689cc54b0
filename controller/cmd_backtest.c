#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canary/backtest.h"
#include "canary/doc.h"
#include "canary/schema.h"
#include "canary/simulate.h"
#include "canary/status.h"
#include "backtest_internal.h"
#include "commands.h"

const cn_command cn_cmd_backtest_def = {
    "backtest", cn_cmd_backtest, "compare policies over a corpus of labelled traces",
    "usage: canary backtest --policy FILE [--policy FILE ...] --corpus DIR\n"
    "                       [-o text|json|csv] [--until DURATION] [--hold DURATION]\n"
    "\n"
    "  --policy FILE      a policy to judge (its match is ignored); up to 16\n"
    "  --corpus DIR       one subdirectory per case: trace.csv, change.yaml,\n"
    "                     case.yaml (expect: healthy|faulty), topology.yaml (optional)\n"
    "  -o, --output FMT   text (default: the comparison, then each case),\n"
    "                     json (everything) or csv (the comparison)\n"
    "  --until, --hold    as for canary simulate\n"
    "\n"
    "Each case is simulated under each policy as `canary simulate` does. A fault\n"
    "is caught when its rollout is rolled back or paused; a healthy change rolled\n"
    "back or paused is a false rollback (docs/simulation.md).\n"
    "\n"
    "Exit status: 0 compared; 2 invalid input; 1 internal failure.\n"};

static const struct option backtest_options[] = {
    {"policy", required_argument, NULL, 'p'},
    {"corpus", required_argument, NULL, 'C'},
    {"output", required_argument, NULL, 'o'},
    {"until", required_argument, NULL, 'u'},
    {"hold", required_argument, NULL, 'H'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef enum { OUT_TEXT, OUT_JSON, OUT_CSV } out_format;

/* ---- the corpus ------------------------------------------------------------ */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

typedef struct case_fields {
    int expect;
    const char *description;
} case_fields;

static const char *const EXPECT_NAMES[] = {"healthy", "faulty", NULL};
static const cn_field case_table[] = {
    {.key = "expect", .parse = cn_parse_enum, .offset = offsetof(case_fields, expect),
     .flags = CN_REQUIRED, .choices = EXPECT_NAMES},
    {.key = "description", .parse = cn_parse_string,
     .offset = offsetof(case_fields, description)},
};
static const cn_schema case_schema = CN_SCHEMA("case", case_table);

/* case.yaml: the label, and what the case is. */
static int load_case_file(bt_case *c, const char *path, cn_diags *diags)
{
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (rc == CN_OK) {
        cn_arena arena;
        cn_arena_init(&arena, 0);
        cn_loader ld;
        cn_loader_init(&ld, doc.file, diags, &arena);
        case_fields f = {0};
        cn_load_map(&ld, doc.root, &case_schema, &f);
        rc = ld.errors ? CN_EINVAL : CN_OK;
        c->label = f.expect == 1 ? CN_BT_FAULTY : CN_BT_HEALTHY;
        if (rc == CN_OK && f.description && !(c->description = strdup(f.description)))
            rc = CN_ENOMEM;
        cn_arena_free(&arena);
    }
    cn_doc_free(&doc);
    return rc;
}

/* One case directory: its files, its label, its trace. */
static int load_case(backtest *b, bt_case *c, const char *name)
{
    char dir[3800], path[4200];
    if (snprintf(dir, sizeof dir, "%s/%s", b->corpus, name) >= (int)sizeof dir) {
        cn_diags_add(&b->diags, b->corpus, 0, 0, "the path of case '%.100s' is too long", name);
        return CN_EINVAL;
    }
    snprintf(c->trace_path, sizeof c->trace_path, "%s/trace.csv", dir);
    snprintf(c->change_path, sizeof c->change_path, "%s/change.yaml", dir);
    snprintf(c->topology_path, sizeof c->topology_path, "%s/topology.yaml", dir);
    snprintf(path, sizeof path, "%s/case.yaml", dir);
    c->has_topology = is_file(c->topology_path);
    const char *missing[3];
    size_t n = 0;
    if (!is_file(c->trace_path))
        missing[n++] = "trace.csv";
    if (!is_file(c->change_path))
        missing[n++] = "change.yaml";
    if (!is_file(path))
        missing[n++] = "case.yaml";
    if (n) {
        cn_diags_add(&b->diags, dir, 0, 0, "the case has no %s%s%s%s%s: a case needs "
                     "trace.csv, change.yaml and case.yaml (expect: healthy or faulty); "
                     "topology.yaml is optional", missing[0], n > 1 ? ", " : "",
                     n > 1 ? missing[1] : "", n > 2 ? ", " : "", n > 2 ? missing[2] : "");
        return CN_EINVAL;
    }
    int rc = load_case_file(c, path, &b->diags);
    c->have_trace = true;
    int trc = cn_trace_load(&c->trace, c->trace_path, &b->diags);
    return rc != CN_OK ? rc : trc;
}

/* Every subdirectory of the corpus, by name (dot directories skipped). */
static int load_corpus(backtest *b)
{
    DIR *d = opendir(b->corpus);
    if (!d) {
        cn_diags_add(&b->diags, b->corpus, 0, 0, "cannot read the corpus directory: %s",
                     strerror(errno));
        return CN_EINVAL;
    }
    char *names[BT_MAX_CASES];
    size_t n = 0;
    int rc = CN_OK;
    struct dirent *e;
    while ((e = readdir(d)) && rc == CN_OK) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", b->corpus, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == BT_MAX_CASES) {
            cn_diags_add(&b->diags, b->corpus, 0, 0, "more than %d cases", BT_MAX_CASES);
            rc = CN_ELIMIT;
        } else if (!(names[n++] = strdup(e->d_name))) {
            n--;
            rc = CN_ENOMEM;
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    if (rc == CN_OK && n == 0) {
        cn_diags_add(&b->diags, b->corpus, 0, 0, "no cases: each case is a subdirectory "
                     "holding trace.csv, change.yaml, case.yaml and optionally topology.yaml");
        rc = CN_EINVAL;
    }
    b->cases = calloc(n ? n : 1, sizeof *b->cases);
    if (!b->cases)
        rc = CN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (rc != CN_ENOMEM && b->cases) {
            bt_case *c = &b->cases[b->case_count++];
            c->name = names[i];
            int crc = load_case(b, c, names[i]);
            if (rc == CN_OK)
                rc = crc;
        } else {
            free(names[i]);
        }
    }
    return rc;
}

/* ---- running ---------------------------------------------------------------- */

static bool knows(const cn_policy *p, const char *name)
{
    for (size_t i = 0; i < p->analysis.metric_count; i++)
        if (!strcmp(p->analysis.metrics[i].name, name))
            return true;
    return p->analysis.min_requests.count > 0 && !strcmp(name, CN_TRACE_REQUESTS);
}

/* A name no policy knows is a mistake (with a suggestion from all their
 * metrics); one that only some know is read under those. */
static int check_names(backtest *b)
{
    const char *all[BT_MAX_POLICIES * (CN_MAX_METRICS + 1)];
    size_t k = 0;
    for (size_t p = 0; p < b->policy_count; p++) {
        const cn_policy *pol = &b->policies[p].policy;
        for (size_t i = 0; i < pol->analysis.metric_count && i < CN_MAX_METRICS; i++)
            all[k++] = pol->analysis.metrics[i].name;
        if (pol->analysis.min_requests.count > 0)
            all[k++] = CN_TRACE_REQUESTS;
    }
    int rc = CN_OK;
    for (size_t c = 0; c < b->case_count; c++) {
        const cn_trace *t = &b->cases[c].trace;
        for (size_t s = 0; s < t->count; s++) {
            const cn_trace_series *se = &t->series[s];
            size_t known = 0;
            for (size_t p = 0; p < b->policy_count; p++)
                known += knows(&b->policies[p].policy, se->name);
            if (known)
                continue;
            const char *hint = cn_suggest(se->name, all, k);
            cn_diags_add(&b->diags, t->file, se->line, se->col, "unknown metric '%s'%s%s%s: "
                         "none of the policies has it", se->name, hint ? " (did you mean '" : "",
                         hint ? hint : "", hint ? "'?)" : "");
            rc = CN_EINVAL;
        }
    }
    return rc;
}

/* Names only some policies know are read under those: says so once per
 * policy and name, on stderr. */
static void note_partial_names(const backtest *b)
{
    for (size_t p = 0; p < b->policy_count; p++) {
        const cn_policy *pol = &b->policies[p].policy;
        for (size_t c = 0; c < b->case_count; c++) {
            const cn_trace *t = &b->cases[c].trace;
            for (size_t s = 0; s < t->count; s++) {
                const char *name = t->series[s].name;
                bool seen = false; /* in an earlier case: said already */
                for (size_t e = 0; e < c && !seen; e++)
                    for (size_t k = 0; k < b->cases[e].trace.count && !seen; k++)
                        seen = !strcmp(b->cases[e].trace.series[k].name, name);
                if (seen || knows(pol, name))
                    continue;
                fprintf(stderr, "note: policy '%s' has no metric '%s': its rows in the traces "
                        "are not read under it\n", pol->name, name);
            }
        }
    }
}

static int load_policies(backtest *b)
{
    int rc = CN_OK;
    for (size_t p = 0; p < b->policy_count; p++) {
        bt_policy *bp = &b->policies[p];
        int prc = cn_policy_load(&bp->policy, bp->path, &b->diags);
        bp->loaded = true;
        if (prc == CN_OK && bp->policy.analysis.metric_count == 0) {
            cn_diags_add(&b->diags, bp->path, 0, 0, "policy '%s' has no analysis.metrics: "
                         "nothing would judge its rollouts", bp->policy.name);
            prc = CN_EINVAL;
        }
        for (size_t q = 0; prc == CN_OK && q < p; q++)
            if (!strcmp(b->policies[q].policy.name, bp->policy.name)) {
                cn_diags_add(&b->diags, bp->path, 0, 0, "policy name '%s' is also used by %s; "
                             "the comparison names policies by name", bp->policy.name,
                             b->policies[q].path);
                prc = CN_EINVAL;
            }
        if (rc == CN_OK)
            rc = prc;
    }
    return rc;
}

/* Case c under policy p: planned as `canary simulate` plans it, then
 * simulated and classified. */
static int run_one(backtest *b, bt_case *c, bt_policy *bp, cn_bt_case *out)
{
    cn_planning_options opt = {.change_path = c->change_path,
                               .topology_path = c->has_topology ? c->topology_path : NULL,
                               .policy_path = bp->path};
    cn_planning pl;
    int rc = cn_planning_run(&pl, &opt, &b->diags);
    char err[512] = "";
    if (rc == CN_OK &&
        cn_engine_check_baseline(pl.policy, pl.change.previous_version, err, sizeof err)) {
        cn_diags_add(&b->diags, c->change_path, 0, 0, "under policy '%s': %s", pl.policy->name,
                     err);
        rc = CN_EINVAL;
    }
    if (rc == CN_OK)
        rc = cn_trace_bind(&c->trace, pl.policy, NULL);
    cn_sim_result res;
    memset(&res, 0, sizeof res);
    if (rc == CN_OK) {
        cn_sim_config cfg = {.plan = &pl.plan, .policy = pl.policy,
                             .ai_assisted = pl.ai_assisted, .author = pl.change.author,
                             .reach = pl.plan.reach, .trace = &c->trace,
                             .until_ms = b->until_ms, .hold_ms = b->hold_ms};
        rc = cn_simulate(&cfg, &res, err, sizeof err);
        if (rc != CN_OK)
            cn_diags_add(&b->diags, c->change_path, 0, 0, "under policy '%s': %s",
                         pl.policy->name, err);
    }
    if (rc == CN_OK) {
        out->label = c->label;
        cn_bt_classify(&res, out);
    }
    cn_sim_result_free(&res);
    cn_planning_free(&pl);
    return rc;
}

static int run_all(backtest *b)
{
    int rc = CN_OK; /* the first failure; every case still runs, to report all */
    for (size_t p = 0; p < b->policy_count; p++) {
        bt_policy *bp = &b->policies[p];
        bp->results = calloc(b->case_count, sizeof *bp->results);
        int64_t *scratch = calloc(b->case_count, sizeof *scratch);
        if (!bp->results || !scratch) {
            free(scratch);
            return CN_ENOMEM;
        }
        for (size_t c = 0; c < b->case_count; c++) {
            /* A broken change or topology fails under every policy alike:
             * reported once. */
            if (b->cases[c].failed)
                continue;
            int crc = run_one(b, &b->cases[c], bp, &bp->results[c]);
            if (crc == CN_ENOMEM) {
                free(scratch);
                return crc;
            }
            if (crc != CN_OK) {
                b->cases[c].failed = true;
                if (rc == CN_OK)
                    rc = crc;
            }
        }
        cn_bt_summarize(bp->results, b->case_count, scratch, &bp->summary);
        free(scratch);
    }
    return rc;
}

/* ---- the command ------------------------------------------------------------ */

static void backtest_free(backtest *b)
{
    for (size_t c = 0; c < b->case_count; c++) {
        if (b->cases[c].have_trace)
            cn_trace_free(&b->cases[c].trace);
        free(b->cases[c].name);
        free(b->cases[c].description);
    }
    free(b->cases);
    for (size_t p = 0; p < b->policy_count; p++) {
        if (b->policies[p].loaded)
            cn_policy_free(&b->policies[p].policy);
        free(b->policies[p].results);
    }
    cn_diags_free(&b->diags);
}

/* Every input problem is found before anything runs, and all reported. */
static int backtest_run(backtest *b, out_format format)
{
    int rc = load_policies(b);
    int crc = load_corpus(b);
    if (rc == CN_OK)
        rc = crc;
    if (rc == CN_OK)
        rc = check_names(b);
    if (rc == CN_OK)
        note_partial_names(b);
    if (rc == CN_OK)
        rc = run_all(b);
    cn_diags_print(&b->diags, stderr);
    if (rc == CN_ENOMEM) {
        fprintf(stderr, "canary backtest: out of memory\n");
        return CN_EXIT_INTERNAL;
    }
    if (rc != CN_OK)
        return CN_EXIT_INVALID;
    rc = format == OUT_JSON ? cn_bt_print_json(stdout, b)
         : format == OUT_CSV ? cn_bt_print_csv(stdout, b)
                             : cn_bt_print_text(stdout, b);
    if (rc != CN_OK) {
        fprintf(stderr, "canary backtest: cannot write the report: %s\n", cn_strerror(rc));
        return CN_EXIT_INTERNAL;
    }
    return CN_EXIT_OK;
}

static int duration_flag(const cn_command *cmd, const char *flag, const char *arg, int64_t *ms)
{
    if (cn_text_duration(arg, ms) != 0)
        return cn_usage_error(cmd, "--%s expects a duration such as 30s, 5m or 1h30m, got '%s'",
                              flag, arg);
    return CN_EXIT_OK;
}

int cn_cmd_backtest(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_backtest_def;
    backtest b;
    memset(&b, 0, sizeof b);
    b.hold_ms = -1;
    out_format format = OUT_TEXT;
    int c, bad = CN_EXIT_OK;
    while (bad == CN_EXIT_OK &&
           (c = getopt_long(argc, argv, ":o:h", backtest_options, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (b.policy_count == BT_MAX_POLICIES)
                return cn_usage_error(cmd, "at most %d policies", BT_MAX_POLICIES);
            b.policies[b.policy_count++].path = optarg;
            break;
        case 'C': b.corpus = optarg; break;
        case 'o':
            if (!strcmp(optarg, "json"))
                format = OUT_JSON;
            else if (!strcmp(optarg, "csv"))
                format = OUT_CSV;
            else if (!strcmp(optarg, "text"))
                format = OUT_TEXT;
            else
                return cn_usage_error(cmd, "-o takes 'text', 'json' or 'csv', got '%s'", optarg);
            break;
        case 'u':
            bad = duration_flag(cmd, "until", optarg, &b.until_ms);
            if (bad == CN_EXIT_OK && b.until_ms == 0)
                bad = cn_usage_error(cmd, "--until must be more than 0s");
            break;
        case 'H': bad = duration_flag(cmd, "hold", optarg, &b.hold_ms); break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (bad != CN_EXIT_OK)
        return bad;
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!b.policy_count)
        return cn_usage_error(cmd, "give at least one --policy");
    if (!b.corpus)
        return cn_usage_error(cmd, "--corpus is required");
    cn_diags_init(&b.diags);
    int code = backtest_run(&b, format);
    backtest_free(&b);
    return code;
}
