/* Policy files: defaults and the top-level sections except analysis and
 * actuator (policy_analysis.c) and notify (policy_notify.c). Choosing a policy and loading a directory
 * of them is in policy_select.c. */
#include "canary/policy.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/doc.h"
#include "canary/status.h"
#include "policy_internal.h"

/* Names matched as whole words in Co-authored-by trailers. Common first
 * names (Jules, Devin, Cody, ...) would flag human co-authors, so those
 * agents are listed by their bot identities instead. A false match only
 * makes a plan stricter; a missed agent would make it bolder. */
const char *const cn_default_agents[] = {
    "Claude", "Copilot", "Cursor", "aider", "Codex", "Gemini", "Windsurf",
    "Codeium", "Amazon Q", "CodeWhisperer", "Tabnine", "OpenHands", "SWE-agent",
    "ChatGPT", "GPT", "Qwen", "DeepSeek", "devin-ai-integration",
    "google-labs-jules",
};
const size_t cn_default_agent_count =
    sizeof(cn_default_agents) / sizeof(cn_default_agents[0]);

#define DEFAULT_TIMEOUT_CAP_MS 10000

/* Paths to kinds when a policy has no diff.kinds. Lock files first: they
 * are JSON/YAML too but mean a dependency change. '*' also matches '/', so
 * "*migrations/" followed by a star covers migrations at any depth. */
static cn_kind_rule default_kind_rules[] = {
    {"*package-lock.json", "dependency"}, {"*yarn.lock", "dependency"},
    {"*pnpm-lock.yaml", "dependency"},    {"*go.sum", "dependency"},
    {"*go.mod", "dependency"},            {"*Cargo.lock", "dependency"},
    {"*requirements*.txt", "dependency"}, {"*poetry.lock", "dependency"},
    {"*Gemfile.lock", "dependency"},      {"*.sql", "migration"},
    {"*migrations/*", "migration"},       {"*.proto", "schema"},
    {"*.graphql", "schema"},              {"*.avsc", "schema"},
    {"*schema/*", "schema"},              {"*config/*", "config"},
    {"*.yaml", "config"},                 {"*.yml", "config"},
    {"*.toml", "config"},                 {"*.ini", "config"},
    {"*.conf", "config"},
};

void cn_policy_defaults(cn_policy *p)
{
    memset(p, 0, sizeof(*p));
    cn_arena_init(&p->arena, 0);
    p->name = "unnamed";
    p->match.ai_assisted = -1;
    p->plan.first_stage_impact = 0.001;
    p->plan.growth = 4;
    p->plan.max_stages = 10;
    p->plan.bake_ms = 2 * 60 * 1000;
    p->plan.min_samples = 3;
    static const double tiers[] = {4, 2, 1, 0.5};
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
        p->risk.tier[i] = tiers[i];
        p->risk.has_tier[i] = true;
    }
    static cn_kind_multiplier kinds[] = {
        {"config", 1.5}, {"schema", 3}, {"migration", 3}, {"dependency", 1.5}};
    p->risk.kinds = kinds;
    p->risk.kind_count = sizeof kinds / sizeof kinds[0];
    p->risk.per_1000_lines = 0.5;
    p->ai.risk = 2;
    p->ai.bake_factor = 2;
    p->ai.approval_above_weight = 0.25;
    p->ai.approval_role = "senior";
    p->analysis.interval_ms = 30000;
    p->analysis.timeout_ms = DEFAULT_TIMEOUT_CAP_MS; /* 30s / 2, capped */
    p->analysis.consecutive_error_limit = 3;
    p->analysis.judge.pass = 95;
    p->analysis.judge.marginal = 75;
    p->actuator.timeout_ms = 30000;
    p->actuator.retries = 3;
    p->actuator.backoff_ms = 1000;
    p->agents.items = (const char **)cn_default_agents;
    p->agents.count = cn_default_agent_count;
    p->kind_rules = default_kind_rules;
    p->kind_rule_count = sizeof default_kind_rules / sizeof default_kind_rules[0];
}

double cn_policy_kind_multiplier(const cn_policy *p, const char *kind)
{
    for (size_t i = 0; i < p->risk.kind_count; i++)
        if (!strcmp(p->risk.kinds[i].kind, kind))
            return p->risk.kinds[i].multiplier;
    return 1.0;
}

const char *cn_policy_kind_for_path(const cn_policy *p, const char *path)
{
    for (size_t i = 0; i < p->kind_rule_count; i++)
        if (fnmatch(p->kind_rules[i].pattern, path, 0) == 0)
            return p->kind_rules[i].kind;
    return "code";
}

void cn_policy_free(cn_policy *p)
{
    cn_arena_free(&p->arena);
}

/* ---- shared field parsers ---------------------------------------------- */

int cn__parse_name(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    const char *s;
    if (cn_parse_string(ld, v, f, &s))
        return -1;
    if (!*s) {
        cn_loader_error(ld, v, "'%s' must not be empty", f->key);
        return -1;
    }
    *(const char **)dst = s;
    return 0;
}

/* A list of strings none of which is empty; an empty list is refused as
 * well, since "none" and "any" would be equally plausible readings. */
static int parse_nonempty_strings(cn_loader *ld, const cn_node *v,
                                  const cn_field *f, void *dst)
{
    cn_strings list;
    if (cn_parse_strings(ld, v, f, &list))
        return -1;
    if (!list.count) {
        cn_loader_error(ld, v, "'%s' is an empty list; leave '%s' out instead",
                        f->key, f->key);
        return -1;
    }
    for (size_t i = 0; i < list.count; i++)
        if (!*list.items[i]) {
            cn_loader_error(ld, v->items[i], "'%s' has an empty entry", f->key);
            return -1;
        }
    *(cn_strings *)dst = list;
    return 0;
}

bool cn__free_map(cn_loader *ld, const cn_node *v, const char *key,
                     const char *expected)
{
    if (v->type == CN_NODE_MAP)
        return true;
    cn_loader_error(ld, v, "'%s' expects %s, got %s", key, expected,
                    cn_node_type_name(v));
    return false;
}

int cn__copy_name(cn_loader *ld, const cn_node *name, const char **dst)
{
    if ((*dst = cn_arena_strdup(ld->arena, name->text)))
        return 0;
    cn_loader_error(ld, name, "out of memory");
    return -1;
}

bool cn__free_key_ok(cn_loader *ld, const cn_node *map, size_t i,
                        const char *key)
{
    const cn_node *k = map->items[2 * i];
    if (k->type != CN_NODE_SCALAR || cn_node_is_null(k) || !*k->text) {
        cn_loader_error(ld, k, "keys in '%s' must be non-empty names, got %s",
                        key, cn_node_type_name(k));
        return false;
    }
    for (size_t j = 0; j < i; j++) {
        const cn_node *o = map->items[2 * j];
        if (o->type == CN_NODE_SCALAR && !strcmp(o->text, k->text)) {
            cn_loader_error(ld, k, "'%s' appears twice in '%s' (first at line %u)",
                            k->text, key, o->line);
            return false;
        }
    }
    return true;
}

/* ---- match ------------------------------------------------------------- */

static int parse_match_tiers(cn_loader *ld, const cn_node *v, const cn_field *f,
                             void *dst)
{
    cn_match *m = dst;
    if (v->type != CN_NODE_SEQ || !v->count) {
        cn_loader_error(ld, v, "'%s' expects a non-empty list of tiers (0 to %d), "
                        "got %s", f->key, CN_MAX_TIER,
                        v->type == CN_NODE_SEQ ? "an empty list" : cn_node_type_name(v));
        return -1;
    }
    int rc = 0;
    m->tier_count = 0;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *it = v->items[i];
        unsigned t;
        if (cn_expect_scalar(ld, it, f->key, "a list of tiers")) {
            rc = -1;
        } else if (it->quoted || cn_text_uint(it->text, &t) || t > CN_MAX_TIER) {
            cn_loader_error(ld, it, "tiers in '%s' must be whole numbers 0 to %d, "
                            "got '%s'", f->key, CN_MAX_TIER, it->text);
            rc = -1;
        } else {
            bool dup = false;
            for (size_t j = 0; j < m->tier_count; j++)
                dup |= m->tiers[j] == (int)t;
            if (dup) {
                cn_loader_error(ld, it, "tier %u is listed twice in '%s'", t, f->key);
                rc = -1;
            } else {
                m->tiers[m->tier_count++] = (int)t;
            }
        }
    }
    return rc;
}

static int parse_match_ai(cn_loader *ld, const cn_node *v, const cn_field *f,
                          void *dst)
{
    bool b;
    if (cn_parse_bool(ld, v, f, &b))
        return -1;
    *(int *)dst = b;
    return 0;
}

static const cn_field match_fields[] = {
    {.key = "services", .parse = parse_nonempty_strings,
     .offset = offsetof(cn_match, services)},
    {.key = "tiers", .parse = parse_match_tiers, .offset = 0},
    {.key = "ai_assisted", .parse = parse_match_ai,
     .offset = offsetof(cn_match, ai_assisted)},
};
static const cn_schema match_schema = CN_SCHEMA("match", match_fields);

/* ---- plan -------------------------------------------------------------- */

static const cn_field step_field = {
    .key = "steps", .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 0, .max = 1};

/* Each step is checked on its own first, so that one bad entry does not
 * also make its neighbours look out of order. */
static int parse_steps(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst)
{
    cn_plan_policy *pp = dst;
    if (v->type != CN_NODE_SEQ || !v->count || v->count > CN_MAX_STAGES) {
        cn_loader_error(ld, v, "'%s' expects a list of 1 to %d percentages, got %s",
                        f->key, CN_MAX_STAGES,
                        v->type != CN_NODE_SEQ ? cn_node_type_name(v)
                        : v->count ? "too many" : "an empty list");
        return -1;
    }
    double *steps = cn_arena_alloc(ld->arena, v->count * sizeof(*steps));
    if (!steps) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    int rc = 0;
    const cn_node *prev = NULL;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *it = v->items[i];
        if (cn_parse_percent(ld, it, &step_field, &steps[i])) {
            rc = -1;
            prev = NULL;
            continue;
        }
        if (prev && !(steps[i] > steps[i - 1])) {
            cn_loader_error(ld, it, "'%s' must increase strictly, got '%s' after '%s'",
                            f->key, it->text, prev->text);
            rc = -1;
        }
        prev = it;
    }
    const cn_node *last = v->items[v->count - 1];
    if (prev == last && steps[v->count - 1] != 1.0) {
        cn_loader_error(ld, last, "the last of '%s' must be 100%%, got '%s'",
                        f->key, last->text);
        rc = -1;
    }
    /* Kept only when valid, so that a step count seen later (max_stages
     * check) is always that of a ladder that loaded. */
    if (!rc) {
        pp->steps = steps;
        pp->step_count = v->count;
    }
    return rc;
}

enum { P_FIRST_STAGE_IMPACT, P_GROWTH, P_MAX_STAGES, P_BAKE, P_MIN_SAMPLES, P_STEPS };
static const cn_field plan_fields[] = {
    [P_FIRST_STAGE_IMPACT] = {.key = "first_stage_impact", .parse = cn_parse_percent,
     .offset = offsetof(cn_plan_policy, first_stage_impact),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 0, .max = 1},
    [P_GROWTH] = {.key = "growth", .parse = cn_parse_number,
                  .offset = offsetof(cn_plan_policy, growth),
                  .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 1, .max = 1000},
    [P_MAX_STAGES] = {.key = "max_stages", .parse = cn_parse_uint,
                      .offset = offsetof(cn_plan_policy, max_stages),
                      .flags = CN_MIN | CN_MAX, .min = 2, .max = CN_MAX_STAGES},
    [P_BAKE] = {.key = "bake", .parse = cn_parse_duration,
                .offset = offsetof(cn_plan_policy, bake_ms),
                .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    [P_MIN_SAMPLES] = {.key = "min_samples", .parse = cn_parse_uint,
                       .offset = offsetof(cn_plan_policy, min_samples),
                       .flags = CN_MIN | CN_MAX, .min = 1, .max = 1000},
    [P_STEPS] = {.key = "steps", .parse = parse_steps, .offset = 0},
};
const cn_schema cn__plan_schema = CN_SCHEMA("plan", plan_fields);

/* The planner ignores max_stages when there is a ladder; a file that gives
 * both most likely expects a cut that will never happen. Only checked when
 * both values loaded, so a bad one is not reported twice. */
static int parse_plan(cn_loader *ld, const cn_node *v, const cn_field *f,
                      void *dst)
{
    (void)f;
    cn_plan_policy *pp = dst;
    unsigned before = ld->errors;
    uint64_t bits = cn_load_map(ld, v, &cn__plan_schema, pp);
    if ((bits & CN__BIT(P_MAX_STAGES)) && (bits & CN__BIT(P_STEPS)) &&
        pp->step_count && cn_field_value_ok(v, &cn__plan_schema, "max_stages"))
        cn_loader_error(ld, cn_node_get(v, "max_stages"),
                        "'max_stages' has no effect with 'steps' (the ladder has "
                        "%zu step%s); remove one of them", pp->step_count,
                        pp->step_count == 1 ? "" : "s");
    return ld->errors == before ? 0 : -1;
}

/* ---- risk -------------------------------------------------------------- */

/* A map that replaces a default one must not be empty: {} would silently
 * drop every default multiplier to x1 (tier 0 from x4), the opposite of
 * what writing the key suggests. As with empty lists, leaving the key out
 * is the way to keep the defaults. */
static bool nonempty_map(cn_loader *ld, const cn_node *v, const char *key,
                         const char *expected)
{
    if (!cn__free_map(ld, v, key, expected))
        return false;
    if (v->count)
        return true;
    cn_loader_error(ld, v, "'%s' is an empty map; leave '%s' out instead", key, key);
    return false;
}

int cn__load_entries(cn_loader *ld, const cn_node *v, const char *key,
                     const char *expected, bool nonempty, size_t elem_size,
                     cn__entry_parser one, void **items, size_t *count)
{
    if (nonempty ? !nonempty_map(ld, v, key, expected) : !cn__free_map(ld, v, key, expected))
        return -1;
    char *elems = cn_arena_alloc(ld->arena, (v->count + 1) * elem_size);
    if (!elems) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < v->count; i++) {
        if (!cn__free_key_ok(ld, v, i, key) ||
            one(ld, key, v->items[2 * i], v->items[2 * i + 1], elems + n * elem_size)) {
            rc = -1;
            continue;
        }
        n++;
    }
    *items = elems;
    *count = n;
    return rc;
}

/* Map keys are names, and JSON can only quote them, so a quoted "0" is tier
 * 0 too; the multipliers stay strict numbers. */
static bool tier_key(cn_loader *ld, const cn_node *k, const char *key, unsigned *t)
{
    if (!cn_text_uint(k->text, t) && *t <= CN_MAX_TIER)
        return true;
    cn_loader_error(ld, k, "keys in '%s' must be tiers 0 to %d, got '%s'", key,
                    CN_MAX_TIER, k->text);
    return false;
}

/* A given map replaces the defaults entirely: a tier the operator left out
 * then has no multiplier, and the planner assumes the riskiest. */
static int parse_risk_tiers(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst)
{
    cn_risk_policy *r = dst;
    if (!nonempty_map(ld, v, f->key, "a map of tier to multiplier"))
        return -1;
    memset(r->tier, 0, sizeof r->tier);
    memset(r->has_tier, 0, sizeof r->has_tier);
    int rc = 0;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *k = v->items[2 * i];
        unsigned t;
        if (!cn__free_key_ok(ld, v, i, f->key) || !tier_key(ld, k, f->key, &t)) {
            rc = -1;
            continue;
        }
        if (r->has_tier[t]) {
            cn_loader_error(ld, k, "tier %u is given twice in '%s'", t, f->key);
            rc = -1;
            continue;
        }
        char label[32];
        snprintf(label, sizeof label, "tier %u", t);
        cn_field mf = {.key = label, .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX, .min = 0,
                      .max = 1000};
        if (cn_parse_number(ld, v->items[2 * i + 1], &mf, &r->tier[t]))
            rc = -1;
        else
            r->has_tier[t] = true;
    }
    return rc;
}

static int risk_kind_entry(cn_loader *ld, const char *map_key, const cn_node *name,
                           const cn_node *value, void *elem)
{
    (void)map_key;
    cn_kind_multiplier *km = elem;
    cn_field mf = {.key = name->text, .flags = CN_MIN | CN_MIN_EXCLUSIVE | CN_MAX,
                   .min = 0, .max = 1000};
    if (cn_parse_number(ld, value, &mf, &km->multiplier))
        return -1;
    return cn__copy_name(ld, name, &km->kind);
}

static int parse_risk_kinds(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst)
{
    cn_risk_policy *r = dst;
    void *items = NULL;
    size_t n = 0;
    int rc = cn__load_entries(ld, v, f->key, "a map of kind to multiplier", true,
                              sizeof(cn_kind_multiplier), risk_kind_entry, &items, &n);
    if (items) {
        r->kinds = items;
        r->kind_count = n;
    }
    return rc;
}

static const cn_field risk_fields[] = {
    {.key = "tier", .parse = parse_risk_tiers, .offset = 0},
    {.key = "kinds", .parse = parse_risk_kinds, .offset = 0},
    {.key = "per_1000_lines", .parse = cn_parse_number,
     .offset = offsetof(cn_risk_policy, per_1000_lines), .flags = CN_MIN, .min = 0},
};
static const cn_schema risk_schema = CN_SCHEMA("risk", risk_fields);

/* ---- ai_assisted ------------------------------------------------------- */

static const char *const approval_timeout_names[] = {"rollback", "wait", NULL};

static const cn_field approval_fields[] = {
    {.key = "above_weight", .parse = cn_parse_percent,
     .offset = offsetof(cn_ai_policy, approval_above_weight),
     .flags = CN_MIN | CN_MAX, .min = 0, .max = 1},
    {.key = "role", .parse = cn__parse_name,
     .offset = offsetof(cn_ai_policy, approval_role)},
    {.key = "timeout", .parse = cn_parse_duration,
     .offset = offsetof(cn_ai_policy, approval_timeout_ms),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "on_timeout", .parse = cn_parse_enum,
     .offset = offsetof(cn_ai_policy, approval_on_timeout), .choices = approval_timeout_names},
};
static const cn_schema approval_schema = CN_SCHEMA("approval", approval_fields);

static const cn_field ai_fields[] = {
    {.key = "risk", .parse = cn_parse_number, .offset = offsetof(cn_ai_policy, risk),
     .flags = CN_MIN | CN_MAX, .min = 1, .max = 1000},
    {.key = "bake_factor", .parse = cn_parse_number,
     .offset = offsetof(cn_ai_policy, bake_factor), .flags = CN_MIN | CN_MAX, .min = 1,
     .max = 100},
    {.key = "approval", .parse = cn_parse_map, .offset = 0, .sub = &approval_schema},
    {.key = "analysis", .parse = cn__parse_ai_analysis,
     .offset = offsetof(cn_ai_policy, analysis)},
};
const cn_schema cn__ai_schema = CN_SCHEMA("ai_assisted", ai_fields);

/* ---- provenance, diff -------------------------------------------------- */

static const cn_field provenance_fields[] = {
    {.key = "agents", .parse = parse_nonempty_strings,
     .offset = offsetof(cn_policy, agents)},
};
static const cn_schema provenance_schema = CN_SCHEMA("provenance", provenance_fields);

/* Order matters (first match wins), so the map is kept as written. */
static int kind_rule_entry(cn_loader *ld, const char *map_key, const cn_node *pattern,
                           const cn_node *value, void *elem)
{
    (void)map_key;
    cn_kind_rule *rule = elem;
    cn_field kf = {.key = pattern->text};
    if (cn__parse_name(ld, value, &kf, &rule->kind))
        return -1;
    return cn__copy_name(ld, pattern, &rule->pattern);
}

static int parse_kind_rules(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst)
{
    cn_policy *p = dst;
    void *items = NULL;
    size_t n = 0;
    int rc = cn__load_entries(ld, v, f->key, "a map of path pattern to kind", true,
                              sizeof(cn_kind_rule), kind_rule_entry, &items, &n);
    if (items) {
        p->kind_rules = items;
        p->kind_rule_count = n;
    }
    return rc;
}

static const cn_field diff_fields[] = {
    {.key = "kinds", .parse = parse_kind_rules, .offset = 0},
};
static const cn_schema diff_schema = CN_SCHEMA("diff", diff_fields);

/* ---- the file ---------------------------------------------------------- */

static const cn_field policy_fields[] = {
    {.key = "name", .parse = cn__parse_name, .offset = offsetof(cn_policy, name),
     .flags = CN_REQUIRED},
    {.key = "match", .parse = cn_parse_map, .offset = offsetof(cn_policy, match),
     .sub = &match_schema},
    {.key = "plan", .parse = parse_plan, .offset = offsetof(cn_policy, plan)},
    {.key = "risk", .parse = cn_parse_map, .offset = offsetof(cn_policy, risk),
     .sub = &risk_schema},
    {.key = "ai_assisted", .parse = cn_parse_map, .offset = offsetof(cn_policy, ai),
     .sub = &cn__ai_schema},
    {.key = "analysis", .parse = cn__parse_analysis,
     .offset = offsetof(cn_policy, analysis)},
    {.key = "actuator", .parse = cn__parse_actuator,
     .offset = offsetof(cn_policy, actuator)},
    {.key = "notify", .parse = cn__parse_notify, .offset = 0},
    {.key = "provenance", .parse = cn_parse_map, .offset = 0,
     .sub = &provenance_schema},
    {.key = "diff", .parse = cn_parse_map, .offset = 0, .sub = &diff_schema},
};
static const cn_schema policy_schema = CN_SCHEMA("policy", policy_fields);

static void set_match_position(cn_policy *p, const cn_node *root)
{
    p->match_line = p->match_col = 1;
    if (root->type != CN_NODE_MAP)
        return;
    for (size_t i = 0; i < root->count; i++) {
        const cn_node *k = root->items[2 * i];
        if (k->type == CN_NODE_SCALAR && !strcmp(k->text, "match")) {
            p->match_line = k->line;
            p->match_col = k->col;
        }
    }
}

int cn_policy_load_doc(cn_policy *p, const cn_doc *doc, cn_diags *diags)
{
    cn_policy_defaults(p);
    p->file = cn_arena_strdup(&p->arena, doc->file ? doc->file : "<input>");
    if (!p->file)
        return CN_ENOMEM;
    p->match_line = p->match_col = 1;
    cn_loader ld;
    cn_loader_init(&ld, p->file, diags, &p->arena);
    if (!doc->root) {
        cn_loader_error(&ld, NULL, "no policy document was read");
        return CN_EINVAL;
    }
    cn_load_map(&ld, doc->root, &policy_schema, p);
    set_match_position(p, doc->root);
    cn__policy_check_analysis(&ld, doc->root, p);
    return ld.errors ? CN_EINVAL : CN_OK;
}

int cn_policy_load(cn_policy *p, const char *path, cn_diags *diags)
{
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (rc) {
        cn_doc_free(&doc);
        cn_policy_defaults(p);
        p->file = cn_arena_strdup(&p->arena, path);
        return rc;
    }
    rc = cn_policy_load_doc(p, &doc, diags);
    cn_doc_free(&doc);
    return rc;
}
