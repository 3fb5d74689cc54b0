/* Policy files: a metric's judge (the statistical judge's settings, read
 * from Kayenta's names) and analysis.judge, how the judged metrics are
 * scored together (docs/policy.md#judge; the judge itself is judge*.c). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "canary/policy.h"
#include "policy_internal.h"

/* ---- judge: mann_whitney ------------------------------------------------- */

/* The keys as the file gives them; converted to a cn_judge_config once
 * the whole map is read, since the meaning of a threshold depends on
 * effect_size and direction, which may come after it. */
typedef struct mw_keys {
    int direction, effect, nan_strategy; /* indices into the names below */
    double tolerance, confidence;
    double allowed_increase, allowed_decrease, critical_increase, critical_decrease;
    bool critical, must_have_data, remove_outliers;
    const char *group;
} mw_keys;

/* In the order of cn_direction, cn_effect_measure and cn_nan_strategy. */
static const char *const direction_names[] = {"either", "increase", "decrease", NULL};
static const char *const effect_names[] = {"mean_ratio", "cles", NULL};
static const char *const nan_names[] = {"remove", "replace", NULL};

/* A confidence of 1 would make the interval endless: nothing is ever high. */
static int parse_confidence(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    double x;
    if (cn_parse_number(ld, v, f, &x))
        return -1;
    if (x >= 1) {
        cn_loader_error(ld, v, "'%s' must be less than 1, got '%s' (write 0.98 for 98%%)",
                        f->key, v->text);
        return -1;
    }
    *(double *)dst = x;
    return 0;
}

enum {
    MW_DIRECTION, MW_TOLERANCE, MW_CONFIDENCE, MW_EFFECT, MW_ALLOWED_INC, MW_ALLOWED_DEC,
    MW_CRITICAL_INC, MW_CRITICAL_DEC, MW_CRITICAL, MW_MUST_HAVE_DATA, MW_NAN, MW_OUTLIERS,
    MW_GROUP
};
static const cn_field mw_fields[] = {
    [MW_DIRECTION] = {.key = "direction", .parse = cn_parse_enum,
                      .offset = offsetof(mw_keys, direction), .choices = direction_names},
    [MW_TOLERANCE] = {.key = "tolerance", .parse = cn_parse_number,
                      .offset = offsetof(mw_keys, tolerance), .flags = CN_MIN, .min = 0},
    [MW_CONFIDENCE] = {.key = "confidence", .parse = parse_confidence,
                       .offset = offsetof(mw_keys, confidence),
                       .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    [MW_EFFECT] = {.key = "effect_size", .parse = cn_parse_enum,
                   .offset = offsetof(mw_keys, effect), .choices = effect_names},
    [MW_ALLOWED_INC] = {.key = "allowed_increase", .parse = cn_parse_number,
                        .offset = offsetof(mw_keys, allowed_increase)},
    [MW_ALLOWED_DEC] = {.key = "allowed_decrease", .parse = cn_parse_number,
                        .offset = offsetof(mw_keys, allowed_decrease)},
    [MW_CRITICAL_INC] = {.key = "critical_increase", .parse = cn_parse_number,
                         .offset = offsetof(mw_keys, critical_increase)},
    [MW_CRITICAL_DEC] = {.key = "critical_decrease", .parse = cn_parse_number,
                         .offset = offsetof(mw_keys, critical_decrease)},
    [MW_CRITICAL] = {.key = "critical", .parse = cn_parse_bool,
                     .offset = offsetof(mw_keys, critical)},
    [MW_MUST_HAVE_DATA] = {.key = "must_have_data", .parse = cn_parse_bool,
                           .offset = offsetof(mw_keys, must_have_data)},
    [MW_NAN] = {.key = "nan_strategy", .parse = cn_parse_enum,
                .offset = offsetof(mw_keys, nan_strategy), .choices = nan_names},
    [MW_OUTLIERS] = {.key = "remove_outliers", .parse = cn_parse_bool,
                     .offset = offsetof(mw_keys, remove_outliers)},
    [MW_GROUP] = {.key = "group", .parse = cn__parse_name, .offset = offsetof(mw_keys, group)},
};
static const cn_schema mw_schema = CN_SCHEMA("mann_whitney", mw_fields);

/* The effect-size thresholds, each with the side of "no change" it must
 * stay on, the direction that makes it mean anything, and whether it
 * needs critical. */
static const struct {
    int field;
    bool increase;
    bool critical;
} thresholds[] = {
    {MW_ALLOWED_INC, true, false},
    {MW_ALLOWED_DEC, false, false},
    {MW_CRITICAL_INC, true, true},
    {MW_CRITICAL_DEC, false, true},
};

/* One threshold that loaded: on the right side of no change (an allowed
 * increase below it would call a lower canary high), within what the
 * measure can reach, and used by the direction and criticality given. */
static void check_threshold(cn_loader *ld, const cn_node *map, const mw_keys *k, size_t t,
                            double x)
{
    const char *key = mw_fields[thresholds[t].field].key;
    const cn_node *n = cn_node_get(map, key);
    bool cles = k->effect == CN_EFFECT_CLES;
    const char *measure = cles ? "cles" : "mean ratio";
    double none = cles ? 0.5 : 1;
    if (thresholds[t].increase ? x < none : x > none) {
        cn_loader_error(ld, n, "'%s' must be at %s %g, the %s of no change, got '%s'", key,
                        thresholds[t].increase ? "least" : "most", none, measure, n->text);
        return;
    }
    if (cles && x > 1) {
        cn_loader_error(ld, n, "'%s' must be at most 1, got '%s' (cles is a probability)",
                        key, n->text);
        return;
    }
    if (x < 0) {
        cn_loader_error(ld, n, "'%s' must be 0 or more, got '%s' (the %s is never negative)",
                        key, n->text, measure);
        return;
    }
    int dir = k->direction;
    if ((thresholds[t].increase && dir == CN_DIRECTION_DECREASE) ||
        (!thresholds[t].increase && dir == CN_DIRECTION_INCREASE)) {
        cn_loader_error(ld, n, "'%s' has no effect with direction '%s' (only %s fails); "
                        "remove it", key, direction_names[dir],
                        dir == CN_DIRECTION_INCREASE ? "an increase" : "a decrease");
        return;
    }
    if (thresholds[t].critical && !k->critical)
        cn_loader_error(ld, n, "'%s' has no effect without 'critical: true'; add it or "
                        "remove '%s'", key, key);
}

static void to_config(const mw_keys *k, cn_judge_config *c)
{
    c->direction = (cn_direction)k->direction;
    c->tolerance = k->tolerance;
    c->confidence = k->confidence;
    c->effect = (cn_effect_measure)k->effect;
    c->allowed_increase = k->allowed_increase;
    c->allowed_decrease = k->allowed_decrease;
    c->critical_increase = k->critical_increase;
    c->critical_decrease = k->critical_decrease;
    c->critical = k->critical;
    c->must_have_data = k->must_have_data;
    c->nan_strategy = (cn_nan_strategy)k->nan_strategy;
    c->remove_outliers = k->remove_outliers;
}

/* For the checks across keys: true when key is absent from map or its
 * value loaded, as one of choices or (choices NULL) as a boolean, so a
 * threshold is never judged against a default its file meant to change. */
static bool loaded(const cn_node *map, const char *key, const char *const *choices)
{
    const cn_node *n = cn_node_get(map, key);
    if (!n)
        return true;
    if (n->type != CN_NODE_SCALAR || cn_node_is_null(n))
        return false;
    if (!choices)
        return !n->quoted && (!strcmp(n->text, "true") || !strcmp(n->text, "false"));
    for (size_t i = 0; choices[i]; i++)
        if (!strcmp(n->text, choices[i]))
            return true;
    return false;
}

/* mann_whitney: a map of settings, or nothing for Kayenta's defaults. */
static int parse_mann_whitney(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)f;
    cn_metric_judge *j = dst;
    cn_judge_config d = cn_judge_defaults();
    mw_keys k = {.direction = (int)d.direction, .effect = (int)d.effect,
                 .nan_strategy = (int)d.nan_strategy, .tolerance = d.tolerance,
                 .confidence = d.confidence, .allowed_increase = NAN,
                 .allowed_decrease = NAN, .critical_increase = NAN, .critical_decrease = NAN,
                 .critical = d.critical, .must_have_data = d.must_have_data,
                 .remove_outliers = d.remove_outliers};
    unsigned before = ld->errors;
    uint64_t present = cn_load_map(ld, v, &mw_schema, &k);
    /* Thresholds are compared only when what they depend on loaded. */
    bool context = loaded(v, "effect_size", effect_names) &&
                   loaded(v, "direction", direction_names) && loaded(v, "critical", NULL);
    const double *values[] = {&k.allowed_increase, &k.allowed_decrease, &k.critical_increase,
                              &k.critical_decrease};
    for (size_t t = 0; context && t < sizeof thresholds / sizeof thresholds[0]; t++)
        if ((present & CN__BIT(thresholds[t].field)) && !isnan(*values[t]))
            check_threshold(ld, v, &k, t, *values[t]);
    j->config = d;
    to_config(&k, &j->config);
    j->group = k.group;
    return ld->errors == before ? 0 : -1;
}

/* enum order: the statistical tests canary knows. One today. */
static const char *const judge_kinds[] = {"mann_whitney", NULL};

enum { J_MANN_WHITNEY, J_STEP };
static const cn_field judge_fields[] = {
    [J_MANN_WHITNEY] = {.key = "mann_whitney", .parse = parse_mann_whitney, .offset = 0,
                        .flags = CN_REQUIRED},
    /* One sample per step: below a second, samples repeat Prometheus's own
     * scrapes rather than add evidence. */
    [J_STEP] = {.key = "step", .parse = cn_parse_duration,
                .offset = offsetof(cn_metric_judge, step_ms), .flags = CN_MIN, .min = 1000},
};
static const cn_schema judge_schema = CN_SCHEMA("judge", judge_fields);

int cn__parse_judge(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_metric_judge *j = dst;
    unsigned before = ld->errors;
    j->enabled = true;
    j->config = cn_judge_defaults();
    if (cn_node_is_null(v)) {
        cn_loader_error(ld, v, "'%s' expects 'mann_whitney' or a map {mann_whitney: {...}, "
                        "step: 10s}, got nothing (null)", f->key);
        return -1;
    }
    if (v->type == CN_NODE_SCALAR) {
        /* judge: mann_whitney, every setting Kayenta's default */
        int kind;
        cn_field kf = {.key = f->key, .choices = judge_kinds};
        return cn_parse_enum(ld, v, &kf, &kind);
    }
    cn_load_map(ld, v, &judge_schema, j);
    return ld->errors == before ? 0 : -1;
}

/* ---- analysis.judge ------------------------------------------------------ */

static int group_entry(cn_loader *ld, const char *map_key, const cn_node *name,
                       const cn_node *value, void *elem)
{
    (void)map_key;
    cn_group_weight *g = elem;
    cn_field wf = {.key = name->text, .flags = CN_MIN | CN_MAX, .min = 0, .max = 100};
    if (cn_parse_number(ld, value, &wf, &g->weight))
        return -1;
    return cn__copy_name(ld, name, &g->group);
}

static int parse_groups(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_judge_scoring *s = dst;
    void *items = NULL;
    size_t n = 0;
    int rc = cn__load_entries(ld, v, f->key, "a map of group name to weight (percent)", true,
                              sizeof(cn_group_weight), group_entry, &items, &n);
    if (items) {
        s->groups = items;
        s->group_count = n;
    }
    if (rc || v->count > CN_SCORE_MAX_GROUPS) {
        if (!rc)
            cn_loader_error(ld, v, "'%s' names %zu groups, more than the %u the score takes",
                            f->key, v->count, CN_SCORE_MAX_GROUPS);
        return -1;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += s->groups[i].weight;
    if (sum > 100 + 1e-9) {
        cn_loader_error(ld, v, "the weights in '%s' add up to %g, more than 100", f->key, sum);
        return -1;
    }
    return 0;
}

static const cn_field scoring_fields[] = {
    {.key = "pass", .parse = cn_parse_number, .offset = offsetof(cn_judge_scoring, pass),
     .flags = CN_MIN | CN_MAX, .min = 0, .max = 100},
    {.key = "marginal", .parse = cn_parse_number,
     .offset = offsetof(cn_judge_scoring, marginal), .flags = CN_MIN | CN_MAX, .min = 0,
     .max = 100},
    {.key = "groups", .parse = parse_groups, .offset = 0},
};
static const cn_schema scoring_schema = CN_SCHEMA("analysis.judge", scoring_fields);

int cn__parse_judge_scoring(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)f;
    cn_judge_scoring *s = dst;
    unsigned before = ld->errors;
    cn_load_map(ld, v, &scoring_schema, s);
    const cn_node *pass = cn_node_get(v, "pass"), *marginal = cn_node_get(v, "marginal");
    if (ld->errors == before && s->marginal > s->pass)
        cn_loader_error(ld, marginal ? marginal : pass,
                        "'marginal' (%g) must not be above 'pass' (%g): a score between "
                        "them would be both", s->marginal, s->pass);
    return ld->errors == before ? 0 : -1;
}

/* ---- across the analysis section ----------------------------------------- */

static const char *group_of(const cn_metric *m)
{
    return m->judge.group ? m->judge.group : "default";
}

/* The groups of the judged metrics, each once (into the arena). */
static size_t used_groups(cn_loader *ld, const cn_analysis *a, const char ***out)
{
    const char **names = cn_arena_alloc(ld->arena, (a->metric_count + 1) * sizeof *names);
    size_t n = 0;
    for (size_t i = 0; names && i < a->metric_count; i++) {
        if (!a->metrics[i].judge.enabled)
            continue;
        size_t k = 0;
        while (k < n && strcmp(names[k], group_of(&a->metrics[i])))
            k++;
        if (k == n)
            names[n++] = group_of(&a->metrics[i]);
    }
    *out = names;
    return n;
}

void cn__policy_check_judge(cn_loader *ld, const cn_node *an, cn_policy *p)
{
    const cn_analysis *a = &p->analysis;
    const cn_node *jn = cn_node_get(an, "judge");
    const char **used = NULL;
    size_t n = used_groups(ld, a, &used);
    if (!jn || !cn_node_get(jn, "groups") || !used)
        goto unused;
    /* A weight for a group no metric is in is most likely a misspelt one,
     * and the metrics of the misspelt group share what is left. */
    const cn_node *groups = cn_node_get(jn, "groups");
    for (size_t g = 0; g < a->judge.group_count; g++) {
        const char *name = a->judge.groups[g].group;
        size_t k = 0;
        while (k < n && strcmp(used[k], name))
            k++;
        if (k < n)
            continue;
        const cn_node *at = groups;
        for (size_t i = 0; groups->type == CN_NODE_MAP && i < groups->count; i++)
            if (!strcmp(groups->items[2 * i]->text, name))
                at = groups->items[2 * i];
        const char *hint = cn_suggest(name, used, n);
        char list[200] = "";
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", used[i]);
        }
        if (hint)
            cn_loader_error(ld, at, "group '%s' in analysis.judge 'groups' is not the group "
                            "of any judged metric (did you mean '%s'?)", name, hint);
        else
            cn_loader_error(ld, at, "group '%s' in analysis.judge 'groups' is not the group "
                            "of any judged metric; their groups: %s", name, list);
        return;
    }
    /* Every group weighed and the weights short of 100: the score could
     * never pass. */
    double sum = 0;
    for (size_t g = 0; g < a->judge.group_count; g++)
        sum += a->judge.groups[g].weight;
    if (n && a->judge.group_count == n && sum < 100 - 1e-9)
        cn_loader_error(ld, groups, "the weights in 'groups' add up to %g and every judged "
                        "metric's group has one, so the score can never exceed %g; make "
                        "them add up to 100", sum, sum);
unused:
    if (jn && !n)
        cn_loader_error(ld, jn, "'judge' in analysis scores judged metrics, but no metric "
                        "has 'judge'; remove it, or give a metric 'judge: mann_whitney'");
}
