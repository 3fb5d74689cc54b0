/* Choosing the policy for a change, and loading a directory of policies. */
#include "canary/policy.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"

/* ---- selection --------------------------------------------------------- */

/* How narrowly a policy's match fits a subject; larger is narrower, and
 * the fields compare in this order. */
typedef struct specificity {
    int service;     /* 0 any (no criterion, or a glob with no literal), 1 glob, 2 exact */
    size_t literals; /* literal characters of the glob that matched */
    int tier;        /* 1 when the policy names tiers */
    int ai;          /* 1 when the policy names ai_assisted */
} specificity;

/* Literal characters of a glob: those outside *, ?, [...] and escapes
 * count as literal; *glob is set when any metacharacter occurs. */
static size_t glob_literals(const char *g, bool *glob)
{
    size_t n = 0;
    *glob = false;
    for (const char *c = g; *c; c++) {
        if (*c == '*' || *c == '?') {
            *glob = true;
        } else if (*c == '\\' && c[1]) {
            *glob = true;
            n++;
            c++;
        } else if (*c == '[') {
            /* fnmatch: "[]...]" and "[!]...]" hold a literal ']' first. */
            const char *e = c + 1;
            if (*e == '!' || *e == '^')
                e++;
            if (*e == ']')
                e++;
            e = strchr(e, ']');
            if (!e) {
                n++;
                continue;
            }
            *glob = true;
            c = e;
        } else {
            n++;
        }
    }
    return n;
}

static int spec_cmp(const specificity *a, const specificity *b)
{
    if (a->service != b->service)
        return a->service < b->service ? -1 : 1;
    if (a->literals != b->literals)
        return a->literals < b->literals ? -1 : 1;
    if (a->tier != b->tier)
        return a->tier < b->tier ? -1 : 1;
    if (a->ai != b->ai)
        return a->ai < b->ai ? -1 : 1;
    return 0;
}

/* True when p's match accepts s; *sp is then its specificity, taken from
 * the most specific of its globs that match. */
static bool policy_matches(const cn_policy *p, const cn_match_subject *s,
                           specificity *sp)
{
    const cn_match *m = &p->match;
    memset(sp, 0, sizeof(*sp));
    if (m->services.count) {
        bool any = false;
        for (size_t i = 0; i < m->services.count; i++) {
            const char *g = m->services.items[i];
            if (fnmatch(g, s->service, 0) != 0)
                continue;
            bool glob;
            specificity c = {0, glob_literals(g, &glob), 0, 0};
            c.service = !glob ? 2 : c.literals ? 1 : 0;
            if (!c.service)
                c.literals = 0;
            if (!any || spec_cmp(&c, sp) > 0)
                *sp = c;
            any = true;
        }
        if (!any)
            return false;
    }
    if (m->tier_count) {
        bool found = false;
        for (size_t i = 0; i < m->tier_count; i++)
            found |= s->tier >= 0 && m->tiers[i] == s->tier;
        if (!found)
            return false;
        sp->tier = 1;
    }
    if (m->ai_assisted >= 0) {
        if (m->ai_assisted != (int)s->ai_assisted)
            return false;
        sp->ai = 1;
    }
    return true;
}

static void describe_subject(char *buf, size_t len, const cn_match_subject *s)
{
    char tier[32];
    if (s->tier >= 0)
        snprintf(tier, sizeof tier, "tier %d", s->tier);
    else
        snprintf(tier, sizeof tier, "tier unknown");
    snprintf(buf, len, "service '%s' (%s, %s)", s->service, tier,
             s->ai_assisted ? "AI-assisted" : "not AI-assisted");
}

int cn_policy_select(const cn_policy_set *set, const cn_match_subject *s,
                     const cn_policy **chosen, char *err, size_t errlen)
{
    const cn_policy *best = NULL, *tie = NULL;
    specificity best_sp = {0, 0, 0, 0};
    *chosen = NULL;
    for (size_t i = 0; i < set->count; i++) {
        specificity sp;
        if (!policy_matches(set->items[i], s, &sp))
            continue;
        int c = best ? spec_cmp(&sp, &best_sp) : 1;
        if (c > 0) {
            best = set->items[i];
            best_sp = sp;
            tie = NULL;
        } else if (c == 0 && !tie) {
            tie = set->items[i];
        }
    }
    char subject[256];
    describe_subject(subject, sizeof subject, s);
    if (!best) {
        if (errlen)
            snprintf(err, errlen,
                     "no policy matches %s; add a catch-all policy with "
                     "match: {services: [\"*\"]}", subject);
        return CN_ENOTFOUND;
    }
    if (tie) {
        if (errlen)
            snprintf(err, errlen,
                     "%s and %s both match service '%s' equally specifically; "
                     "narrow one of their match sections", best->file, tie->file,
                     s->service);
        return CN_EINVAL;
    }
    *chosen = best;
    return CN_OK;
}

/* ---- a directory of policies ------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The policy file names in dir, sorted; *out is NULL when there are none. */
static int list_policy_files(DIR *d, char ***out, size_t *count)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    *out = NULL;
    *count = 0;
    while ((e = readdir(d))) {
        if (!cn_doc_is_config_name(e->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **grown = realloc(names, ncap * sizeof(*grown));
            if (!grown)
                goto nomem;
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name)))
            goto nomem;
        n++;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *count = n;
    return CN_OK;
nomem:
    free_names(names, n);
    return CN_ENOMEM;
}

/* Two files with one name would make the audit log ambiguous. Reported at
 * the later file's name, since files load in sorted order. */
static bool unique_name(const cn_policy_set *set, const cn_policy *p,
                        const cn_doc *doc, cn_diags *diags)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i]->name, p->name))
            continue;
        cn_loader ld;
        cn_loader_init(&ld, p->file, diags, NULL);
        cn_loader_error(&ld, cn_node_get(doc->root, "name"),
                        "policy name '%s' is also used by %s; policy names must "
                        "be unique", p->name, set->items[i]->file);
        return false;
    }
    return true;
}

static int load_into_set(cn_policy_set *set, const char *path, cn_diags *diags)
{
    cn_policy *p = malloc(sizeof(*p));
    if (!p)
        return CN_ENOMEM;
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (!rc)
        rc = cn_policy_load_doc(p, &doc, diags);
    else
        cn_policy_defaults(p);
    if (!rc && !unique_name(set, p, &doc, diags))
        rc = CN_EINVAL;
    cn_doc_free(&doc);
    if (rc) {
        cn_policy_free(p);
        free(p);
        return rc;
    }
    set->items[set->count++] = p;
    return CN_OK;
}

static int load_files(cn_policy_set *set, const char *dir, char **names,
                      size_t n, cn_diags *diags)
{
    set->items = calloc(n, sizeof(*set->items));
    if (!set->items)
        return CN_ENOMEM;
    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    int rc = CN_OK;
    for (size_t i = 0; i < n; i++) {
        size_t len = dlen + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path)
            return CN_ENOMEM;
        snprintf(path, len, "%s%s%s", dir, sep, names[i]);
        int one = load_into_set(set, path, diags);
        free(path);
        if (one == CN_ENOMEM)
            return one;
        if (one && !rc)
            rc = CN_EINVAL;
    }
    return rc;
}

int cn_policy_set_load_dir(cn_policy_set *set, const char *dir, cn_diags *diags)
{
    memset(set, 0, sizeof(*set));
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        cn_diags_add(diags, dir, 0, 0, "cannot open the policy directory: %s",
                     strerror(e));
        return e == ENOENT ? CN_ENOTFOUND : e == ENOTDIR ? CN_EINVAL : CN_EIO;
    }
    char **names;
    size_t n;
    int rc = list_policy_files(d, &names, &n);
    closedir(d);
    if (rc)
        return rc;
    if (!n) {
        cn_diags_add(diags, dir, 0, 0,
                     "no policy files (*.yaml, *.yml or *.json) in this directory");
        return CN_EINVAL;
    }
    rc = load_files(set, dir, names, n, diags);
    free_names(names, n);
    return rc;
}

void cn_policy_set_free(cn_policy_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        cn_policy_free(set->items[i]);
        free(set->items[i]);
    }
    free(set->items);
    set->items = NULL;
    set->count = 0;
}
