#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canary/access.h"
#include "canary/change.h"
#include "canary/doc.h"
#include "canary/policy.h"
#include "canary/status.h"
#include "canary/topology.h"
#include "commands.h"

const cn_command cn_cmd_validate_def = {
    "validate", cn_cmd_validate, "check policies, changes, topologies and access files",
    "usage: canary validate [--kind policy|change|topology|access] PATH...\n"
    "\n"
    "  PATH               a file, or a directory whose *.yaml, *.yml and *.json\n"
    "                     files are all checked\n"
    "  --kind KIND        treat every file as KIND instead of telling by its keys\n"
    "\n"
    "Every problem is printed as FILE:LINE:COLUMN: message, all of them, not\n"
    "only the first. Exit status: 0 all valid, 2 any problem.\n"};

typedef enum { KIND_UNKNOWN = -1, KIND_POLICY, KIND_CHANGE, KIND_TOPOLOGY, KIND_ACCESS } file_kind;
static const char *const kind_names[] = {"policy", "change", "topology", "access", NULL};

/* Policy names seen so far, to catch two files with one name. */
typedef struct seen_policy {
    char *name;
    char *file;
} seen_policy;

typedef struct validation {
    file_kind forced;
    cn_diags diags;
    size_t files, bad_files;
    seen_policy *policies;
    size_t policy_count;
    int internal;
} validation;

static bool has_key(const cn_node *root, const char *const *keys)
{
    for (; *keys; keys++)
        if (cn_node_get(root, *keys))
            return true;
    return false;
}

static file_kind sniff(const cn_node *root)
{
    static const char *const topo[] = {"services", NULL};
    static const char *const access[] = {"users", NULL};
    static const char *const change[] = {"service", "version", "previous_version", NULL};
    static const char *const policy[] = {"name", "match", "plan", "risk", "ai_assisted",
                                         "analysis", "actuator", "provenance", "diff", NULL};
    if (root->type != CN_NODE_MAP)
        return KIND_UNKNOWN;
    if (has_key(root, topo))
        return KIND_TOPOLOGY;
    if (has_key(root, access))
        return KIND_ACCESS;
    if (has_key(root, change))
        return KIND_CHANGE;
    if (has_key(root, policy))
        return KIND_POLICY;
    return KIND_UNKNOWN;
}

/* Policies checked together must have distinct names, as in a --policies
 * directory: the audit log and messages refer to policies by name. */
static int remember_policy(validation *v, const cn_policy *p, const cn_doc *doc)
{
    for (size_t i = 0; i < v->policy_count; i++)
        if (!strcmp(v->policies[i].name, p->name)) {
            const cn_node *name = cn_node_get(doc->root, "name");
            cn_diags_add(&v->diags, p->file, name ? name->line : 0, name ? name->col : 0,
                         "policy name '%s' is also used by %s; policy names must "
                         "be unique", p->name, v->policies[i].file);
            return CN_EINVAL;
        }
    seen_policy *grown = realloc(v->policies, (v->policy_count + 1) * sizeof(*grown));
    if (!grown)
        return CN_ENOMEM;
    v->policies = grown;
    grown[v->policy_count].name = strdup(p->name);
    grown[v->policy_count].file = strdup(p->file);
    if (!grown[v->policy_count].name || !grown[v->policy_count].file) {
        free(grown[v->policy_count].name);
        free(grown[v->policy_count].file);
        return CN_ENOMEM;
    }
    v->policy_count++;
    return CN_OK;
}

/* Loads doc as its kind; returns a short description for the "ok" line. */
static int load_as(validation *v, file_kind kind, const cn_doc *doc, char *what,
                   size_t len)
{
    int rc;
    switch (kind) {
    case KIND_POLICY: {
        cn_policy p;
        rc = cn_policy_load_doc(&p, doc, &v->diags);
        if (!rc && !(rc = remember_policy(v, &p, doc)))
            snprintf(what, len, "policy '%s'", p.name);
        cn_policy_free(&p);
        return rc;
    }
    case KIND_CHANGE: {
        cn_change c;
        rc = cn_change_load_doc(&c, doc, &v->diags);
        if (!rc)
            snprintf(what, len, "change '%s'", c.id);
        cn_change_free(&c);
        return rc;
    }
    case KIND_TOPOLOGY: {
        cn_topology t;
        rc = cn_topology_load_doc(&t, doc, &v->diags);
        if (!rc)
            snprintf(what, len, "topology of %zu service%s", t.count, t.count == 1 ? "" : "s");
        cn_topology_free(&t);
        return rc;
    }
    case KIND_ACCESS: {
        cn_access a;
        rc = cn_access_load_doc(&a, doc, &v->diags);
        if (!rc)
            snprintf(what, len, "access file of %zu user%s", a.count, a.count == 1 ? "" : "s");
        cn_access_free(&a);
        return rc;
    }
    default:
        return CN_EINVAL;
    }
}

static void validate_file(validation *v, const char *path)
{
    v->files++;
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, &v->diags);
    if (rc == CN_OK) {
        file_kind kind = v->forced != KIND_UNKNOWN ? v->forced : sniff(doc.root);
        char what[128] = "";
        if (kind == KIND_UNKNOWN) {
            cn_diags_add(&v->diags, path, doc.root->line, doc.root->col,
                         "cannot tell what kind of file this is: expected a policy "
                         "(name, plan, ...), a change (service, version), a topology "
                         "(services) or an access file (users); pass --kind");
            rc = CN_EINVAL;
        } else if ((rc = load_as(v, kind, &doc, what, sizeof what)) == CN_OK) {
            printf("ok  %s (%s)\n", path, what);
        }
    }
    if (rc == CN_ENOMEM)
        v->internal = 1;
    if (rc)
        v->bad_files++;
    cn_doc_free(&doc);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void validate_dir(validation *v, const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, NULL, by_name);
    if (n < 0) {
        cn_diags_add(&v->diags, dir, 0, 0, "cannot read directory");
        v->bad_files++;
        return;
    }
    size_t found = 0;
    for (int i = 0; i < n; i++) {
        if (cn_doc_is_config_name(list[i]->d_name)) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
            validate_file(v, path);
            found++;
        }
        free(list[i]);
    }
    free(list);
    if (!found) {
        cn_diags_add(&v->diags, dir, 0, 0, "no *.yaml, *.yml or *.json files here");
        v->bad_files++;
    }
}

int cn_cmd_validate(int argc, char **argv)
{
    static const struct option options[] = {
        {"kind", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const cn_command *cmd = &cn_cmd_validate_def;
    validation v = {.forced = KIND_UNKNOWN};
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'k':
            for (int i = 0; kind_names[i]; i++)
                if (!strcmp(optarg, kind_names[i]))
                    v.forced = (file_kind)i;
            if (v.forced == KIND_UNKNOWN)
                return cn_usage_error(cmd, "--kind takes policy, change, topology or "
                                           "access, got '%s'", optarg);
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        default: return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        }
    }
    if (optind == argc)
        return cn_usage_error(cmd, "give at least one file or directory");
    cn_diags_init(&v.diags);
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            validate_dir(&v, argv[i]);
        else
            validate_file(&v, argv[i]);
    }
    fflush(stdout);
    cn_diags_print(&v.diags, stderr);
    size_t problems = cn_diags_total(&v.diags);
    if (problems)
        fprintf(stderr, "canary validate: %zu problem%s in %zu of %zu file%s\n", problems,
                problems == 1 ? "" : "s", v.bad_files ? v.bad_files : 1, v.files,
                v.files == 1 ? "" : "s");
    for (size_t i = 0; i < v.policy_count; i++) {
        free(v.policies[i].name);
        free(v.policies[i].file);
    }
    free(v.policies);
    cn_diags_free(&v.diags);
    if (v.internal)
        return CN_EXIT_INTERNAL;
    return problems ? CN_EXIT_INVALID : CN_EXIT_OK;
}
