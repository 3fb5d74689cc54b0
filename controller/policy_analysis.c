/* Policy files: the analysis section (metrics and where their numbers come
 * from), its stricter AI-assisted variant, the actuator, and the checks
 * that span sections. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "canary/policy.h"
#include "policy_internal.h"

/* ---- secrets and names ------------------------------------------------- */

static bool env_name_ok(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* A value that fails the variable-name rule may be the secret itself,
 * pasted where its variable's name belongs; long or spaced values are
 * therefore described, not echoed into CI logs. */
static void bad_env_name(cn_loader *ld, const cn_node *v, const char *what)
{
    bool echo = strlen(v->text) <= 40 && !strpbrk(v->text, " \t");
    if (echo)
        cn_loader_error(ld, v, "%s must name an environment variable (letters, "
                        "digits and '_', not starting with a digit), got '%s'",
                        what, v->text);
    else
        cn_loader_error(ld, v, "%s must name an environment variable (letters, "
                        "digits and '_', not starting with a digit), got a value "
                        "of %zu characters (not shown: it may be a secret)",
                        what, strlen(v->text));
}

int cn__parse_env_name(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    const char *s;
    if (cn_parse_string(ld, v, f, &s))
        return -1;
    if (!env_name_ok(s)) {
        char what[96];
        snprintf(what, sizeof what, "'%s'", f->key);
        bad_env_name(ld, v, what);
        return -1;
    }
    *(const char **)dst = s;
    return 0;
}

/* RFC 9110 token characters. */
static bool header_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static int env_header_entry(cn_loader *ld, const char *map_key, const cn_node *name,
                            const cn_node *value, void *elem)
{
    cn_env_header *h = elem;
    if (!header_name_ok(name->text)) {
        cn_loader_error(ld, name, "'%s' is not a valid HTTP header name", name->text);
        return -1;
    }
    if (cn_expect_scalar(ld, value, name->text, "an environment variable name"))
        return -1;
    if (!env_name_ok(value->text)) {
        char what[160];
        snprintf(what, sizeof what, "header '%.100s' in '%s'", name->text, map_key);
        bad_env_name(ld, value, what);
        return -1;
    }
    cn_field vf = {.key = name->text};
    if (cn__copy_name(ld, name, &h->name) || cn_parse_string(ld, value, &vf, &h->env))
        return -1;
    return 0;
}

int cn__parse_env_headers(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_source *src = dst;
    void *items = NULL;
    size_t n = 0;
    int rc = cn__load_entries(ld, v, f->key, "a map of header name to environment variable",
                              false, sizeof(cn_env_header), env_header_entry, &items, &n);
    /* HTTP header names ignore case: X-Org and x-org are the same header. */
    for (size_t j = 1; v->type == CN_NODE_MAP && j < v->count; j++)
        for (size_t i = 0; i < j; i++) {
            const cn_node *a = v->items[2 * i], *b = v->items[2 * j];
            if (a->type == CN_NODE_SCALAR && b->type == CN_NODE_SCALAR &&
                strcmp(a->text, b->text) && !strcasecmp(a->text, b->text)) {
                cn_loader_error(ld, b, "header '%s' repeats '%s' (line %u): header names "
                                       "ignore case", b->text, a->text, a->line);
                rc = -1;
                break;
            }
        }
    if (items) {
        src->headers = items;
        src->header_count = n;
    }
    return rc;
}

/* Keys that would put a secret in the file. Listing them in the schema
 * (rather than leaving them unknown) gives a message that says where the
 * secret belongs instead. */
int cn__reject_secret(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)dst;
    if (!strcmp(f->key, "headers"))
        cn_loader_error(ld, v, "'headers' is not accepted: header values may be "
                        "secrets; put each in an environment variable and name "
                        "it in 'headers_from_env'");
    else
        cn_loader_error(ld, v, "'%s' is not accepted: secrets must not be "
                        "written in policy files; put it in an environment "
                        "variable and name that variable in 'bearer_token_env'",
                        f->key);
    return -1;
}

/* ---- templates --------------------------------------------------------- */

/* What the rollout engine fills in; see docs/policy.md#templates.
 * TEMPLATE_LIST is the same names, for messages. */
static const char *const template_names[] = {
    "service", "version", "previous_version", "rollout", "stage"};
#define TEMPLATE_COUNT (sizeof template_names / sizeof template_names[0])
#define TEMPLATE_LIST "service, version, previous_version, rollout, stage"

/* The closing "}}" of the template opening at open ("{{"), or NULL. */
static const char *template_end(const char *open)
{
    return strstr(open + 2, "}}");
}

/* The name between open + 2 and close, spaces around it dropped, into buf
 * (cut to fit: a name that long is unknown anyway). */
static void template_name(const char *open, const char *close, char *buf,
                          size_t len)
{
    const char *b = open + 2, *e = close;
    while (b < e && *b == ' ')
        b++;
    while (e > b && e[-1] == ' ')
        e--;
    size_t n = (size_t)(e - b) < len - 1 ? (size_t)(e - b) : len - 1;
    memcpy(buf, b, n);
    buf[n] = '\0';
}

static bool template_known(const char *name)
{
    for (size_t i = 0; i < TEMPLATE_COUNT; i++)
        if (!strcmp(name, template_names[i]))
            return true;
    return false;
}

/* Quotes the template as written, so it can be found in the file. window:
 * {{window}} is known here (a burn rate's queries). */
static void unknown_template(cn_loader *ld, const cn_node *v, const char *key,
                             const char *open, const char *close, const char *name,
                             bool window)
{
    static const char *const with_window[] = {
        "service", "version", "previous_version", "rollout", "stage", "window"};
    int shown = close + 2 - open < 100 ? (int)(close + 2 - open) : 100;
    if (!window && !strcmp(name, "window")) {
        cn_loader_error(ld, v, "template '%.*s' in '%s' is only filled in for a "
                        "burn_rate's 'errors' and 'total'; known here: " TEMPLATE_LIST,
                        shown, open, key);
        return;
    }
    const char *hint = window ? cn_suggest(name, with_window, TEMPLATE_COUNT + 1)
                              : cn_suggest(name, template_names, TEMPLATE_COUNT);
    cn_loader_error(ld, v, "unknown template '%.*s' in '%s'%s%s%s; known: "
                    TEMPLATE_LIST "%s", shown, open, key,
                    hint ? " (did you mean '{{" : "", hint ? hint : "",
                    hint ? "}}'?)" : "", window ? ", window" : "");
}

/* A misspelt template would be sent as literal text at run time and
 * match nothing, which reads as "no data" rather than as a mistake; so
 * every {{...}} must name a known template. Reports the first problem. */
int cn__check_templates(cn_loader *ld, const cn_node *v, const char *key,
                        const char *s, bool window)
{
    int windows = 0;
    for (const char *open = strstr(s, "{{"); open; ) {
        const char *close = template_end(open);
        if (!close) {
            cn_loader_error(ld, v, "'%s' has a '{{' with no closing '}}' "
                            "(templates are written {{service}})", key);
            return -1;
        }
        char name[80];
        template_name(open, close, name, sizeof name);
        bool is_window = window && !strcmp(name, "window");
        if (!is_window && !template_known(name)) {
            unknown_template(ld, v, key, open, close, name, window);
            return -1;
        }
        windows += is_window;
        open = strstr(close + 2, "{{");
    }
    return windows;
}

static int check_templates(cn_loader *ld, const cn_node *v, const char *key,
                           const char *s)
{
    return cn__check_templates(ld, v, key, s, false) < 0 ? -1 : 0;
}

/* ---- URLs and pointers ------------------------------------------------- */

/* The first whitespace character in s, NULL when none. Inside a closed
 * template ("{{ version }}") spaces are allowed, since the template is
 * replaced before the URL is used; only source URLs have templates. */
static const char *url_space(const char *s, bool templates)
{
    for (const char *c = s; *c; c++) {
        const char *close = templates && c[0] == '{' && c[1] == '{'
                                ? template_end(c) : NULL;
        if (close)
            c = close + 1;
        else if (isspace((unsigned char)*c))
            return c;
    }
    return NULL;
}

/* A URL an HTTP client cannot misread: no whitespace (a client would cut
 * or reject it), an http(s) scheme and a non-empty host, which ends at the
 * first '/', '?' or '#' ("http://?x" has none; in "http://:9090" only a
 * port follows), and no credentials. */
static int check_url(cn_loader *ld, const cn_node *v, const char *key,
                     const char *s, bool templates)
{
    const char *sp = url_space(s, templates);
    if (sp) {
        cn_loader_error(ld, v, "'%s' must not contain whitespace, found %s at "
                        "character %zu (write a space as %%20)", key,
                        *sp == ' ' ? "a space" : *sp == '\t' ? "a tab"
                        : *sp == '\n' ? "a line break" : "whitespace",
                        (size_t)(sp - s) + 1);
        return -1;
    }
    const char *rest = !strncmp(s, "http://", 7)    ? s + 7
                       : !strncmp(s, "https://", 8) ? s + 8
                                                    : NULL;
    size_t authority = rest ? strcspn(rest, "/?#") : 0;
    if (!authority || *rest == ':') {
        cn_loader_error(ld, v, "'%s' must be an http:// or https:// URL with a "
                        "host, got '%s'", key, s);
        return -1;
    }
    if (memchr(rest, '@', authority)) {
        cn_loader_error(ld, v, "'%s' must not carry credentials (user:password@); "
                        "use 'bearer_token_env' or 'headers_from_env'", key);
        return -1;
    }
    return 0;
}

/* A webhook's URL (the actuator's, a notification's): no templates there. */
int cn__parse_url(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    const char *s;
    if (cn_parse_string(ld, v, f, &s) || check_url(ld, v, f->key, s, false))
        return -1;
    *(const char **)dst = s;
    return 0;
}

/* A source's address or url: templates allowed, and checked. */
static int parse_source_url(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst)
{
    const char *s;
    if (cn_parse_string(ld, v, f, &s) || check_url(ld, v, f->key, s, true) ||
        check_templates(ld, v, f->key, s))
        return -1;
    *(const char **)dst = s;
    return 0;
}

/* A PromQL query: not empty, templates checked. */
static int parse_query(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst)
{
    const char *s;
    if (cn__parse_name(ld, v, f, &s) || check_templates(ld, v, f->key, s))
        return -1;
    *(const char **)dst = s;
    return 0;
}

static int parse_pointer(cn_loader *ld, const cn_node *v, const cn_field *f,
                         void *dst)
{
    const char *s;
    if (cn_parse_string(ld, v, f, &s))
        return -1;
    if (*s && *s != '/') {
        cn_loader_error(ld, v, "'%s' must be empty or start with '/' (a JSON "
                        "pointer, RFC 6901), got '%s'", f->key, s);
        return -1;
    }
    for (const char *t = strchr(s, '~'); t; t = strchr(t + 1, '~'))
        if (t[1] != '0' && t[1] != '1') {
            cn_loader_error(ld, v, "'%s' has a '~' not followed by 0 or 1 (RFC "
                            "6901 escapes '~' as ~0 and '/' as ~1), got '%s'",
                            f->key, s);
            return -1;
        }
    if (check_templates(ld, v, f->key, s))
        return -1;
    *(const char **)dst = s;
    return 0;
}

/* ---- sources ----------------------------------------------------------- */

static const char *const reduce_names[] = {"none", "sum", "max", "min", "avg", NULL};

static const cn_field prometheus_fields[] = {
    {.key = "address", .parse = parse_source_url,
     .offset = offsetof(cn_source, address), .flags = CN_REQUIRED},
    {.key = "query", .parse = parse_query, .offset = offsetof(cn_source, query),
     .flags = CN_REQUIRED},
    {.key = "reduce", .parse = cn_parse_enum, .offset = offsetof(cn_source, reduce),
     .choices = reduce_names},
    {.key = "bearer_token_env", .parse = cn__parse_env_name,
     .offset = offsetof(cn_source, bearer_token_env)},
    {.key = "headers_from_env", .parse = cn__parse_env_headers, .offset = 0},
    CN__SECRET_FIELDS,
};
static const cn_schema prometheus_schema = CN_SCHEMA("prometheus", prometheus_fields);

static const cn_field json_fields[] = {
    {.key = "url", .parse = parse_source_url, .offset = offsetof(cn_source, url),
     .flags = CN_REQUIRED},
    {.key = "pointer", .parse = parse_pointer, .offset = offsetof(cn_source, pointer)},
    {.key = "bearer_token_env", .parse = cn__parse_env_name,
     .offset = offsetof(cn_source, bearer_token_env)},
    {.key = "headers_from_env", .parse = cn__parse_env_headers, .offset = 0},
    CN__SECRET_FIELDS,
};
static const cn_schema json_schema = CN_SCHEMA("json", json_fields);

static int load_source(cn_loader *ld, const cn_node *v, const cn_schema *s,
                       cn_source *src, cn_source_kind kind)
{
    unsigned before = ld->errors;
    cn_load_map(ld, v, s, src);
    src->kind = kind;
    return ld->errors == before ? 0 : -1;
}

static int parse_prometheus(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst)
{
    (void)f;
    return load_source(ld, v, &prometheus_schema, dst, CN_SOURCE_PROMETHEUS);
}

static int parse_json(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)f;
    return load_source(ld, v, &json_schema, dst, CN_SOURCE_JSON);
}

/* A burn rate's queries are its own 'errors' and 'total'; a query here
 * would be ignored, so it is refused. */
static int reject_query(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)f;
    (void)dst;
    cn_loader_error(ld, v, "'query' is not used by a burn-rate metric: give its "
                    "queries as burn_rate 'errors' and 'total'");
    return -1;
}

static const cn_field burn_prometheus_fields[] = {
    {.key = "address", .parse = parse_source_url,
     .offset = offsetof(cn_source, address), .flags = CN_REQUIRED},
    {.key = "query", .parse = reject_query, .offset = 0},
    {.key = "reduce", .parse = cn_parse_enum, .offset = offsetof(cn_source, reduce),
     .choices = reduce_names},
    {.key = "bearer_token_env", .parse = cn__parse_env_name,
     .offset = offsetof(cn_source, bearer_token_env)},
    {.key = "headers_from_env", .parse = cn__parse_env_headers, .offset = 0},
    CN__SECRET_FIELDS,
};
static const cn_schema burn_prometheus_schema =
    CN_SCHEMA("burn_rate.prometheus", burn_prometheus_fields);

int cn__parse_burn_prometheus(cn_loader *ld, const cn_node *v, const cn_field *f,
                              void *dst)
{
    (void)f;
    return load_source(ld, v, &burn_prometheus_schema, dst, CN_SOURCE_PROMETHEUS);
}

/* ---- thresholds and baselines ------------------------------------------ */

typedef struct bounds {
    double min, max;
} bounds;

static const cn_field threshold_fields[] = {
    {.key = "min", .parse = cn_parse_quantity, .offset = offsetof(bounds, min)},
    {.key = "max", .parse = cn_parse_quantity, .offset = offsetof(bounds, max)},
};
static const cn_schema threshold_schema = CN_SCHEMA("threshold", threshold_fields);

int cn__parse_threshold(cn_loader *ld, const cn_node *v, const cn_field *f,
                        void *dst)
{
    cn_threshold *t = dst;
    bounds b = {NAN, NAN};
    unsigned before = ld->errors;
    uint64_t present = cn_load_map(ld, v, &threshold_schema, &b);
    t->has_min = !isnan(b.min);
    t->has_max = !isnan(b.max);
    t->min = t->has_min ? b.min : 0;
    t->max = t->has_max ? b.max : 0;
    if (!present && ld->errors == before)
        cn_loader_error(ld, v, "'%s' needs 'min' or 'max' (or both)", f->key);
    if (t->has_min && t->has_max && t->min > t->max)
        cn_loader_error(ld, v, "'%s' has 'min' %s above 'max' %s, so no value "
                        "could pass", f->key, cn_node_get(v, "min")->text,
                        cn_node_get(v, "max")->text);
    return ld->errors == before ? 0 : -1;
}

static const cn_field baseline_fields[] = {
    {.key = "max_increase", .parse = cn_parse_percent,
     .offset = offsetof(cn_baseline, max_increase), .flags = CN_REQUIRED | CN_MIN,
     .min = 0},
    /* Same forms as a threshold on the same metric: 0.001 or 0.1%. */
    {.key = "slack", .parse = cn_parse_quantity,
     .offset = offsetof(cn_baseline, slack), .flags = CN_MIN, .min = 0},
};
static const cn_schema baseline_schema = CN_SCHEMA("baseline", baseline_fields);

static int parse_baseline(cn_loader *ld, const cn_node *v, const cn_field *f,
                          void *dst)
{
    (void)f;
    cn_baseline *b = dst;
    unsigned before = ld->errors;
    cn_load_map(ld, v, &baseline_schema, b);
    b->enabled = true;
    return ld->errors == before ? 0 : -1;
}

/* ---- metrics ----------------------------------------------------------- */

enum { M_NAME, M_PROMETHEUS, M_JSON, M_THRESHOLD, M_BASELINE, M_BURN, M_JUDGE };
static const cn_field metric_fields[] = {
    [M_NAME] = {.key = "name", .parse = cn__parse_name,
                .offset = offsetof(cn_metric, name), .flags = CN_REQUIRED},
    [M_PROMETHEUS] = {.key = "prometheus", .parse = parse_prometheus,
                      .offset = offsetof(cn_metric, source)},
    [M_JSON] = {.key = "json", .parse = parse_json,
                .offset = offsetof(cn_metric, source)},
    [M_THRESHOLD] = {.key = "threshold", .parse = cn__parse_threshold,
                     .offset = offsetof(cn_metric, threshold)},
    [M_BASELINE] = {.key = "baseline", .parse = parse_baseline,
                    .offset = offsetof(cn_metric, baseline)},
    [M_BURN] = {.key = "burn_rate", .parse = cn__parse_burn_rate, .offset = 0},
    [M_JUDGE] = {.key = "judge", .parse = cn__parse_judge,
                 .offset = offsetof(cn_metric, judge)},
};
static const cn_schema metric_schema = CN_SCHEMA("metric", metric_fields);

/* A burn-rate metric has its source inside burn_rate and is judged by its
 * windows' factors: a source, threshold or baseline beside it would be
 * ignored, so each is refused at its key. */
static void check_burn_metric(cn_loader *ld, const cn_node *item, uint64_t bits,
                              const char *label)
{
    static const struct {
        int field;
        const char *why;
    } beside[] = {
        {M_PROMETHEUS, "its Prometheus address goes inside burn_rate"},
        {M_JSON, "burn_rate reads Prometheus only"},
        {M_THRESHOLD, "it is judged by its windows' factors"},
        {M_BASELINE, "it is judged by its windows' factors"},
        {M_JUDGE, "a metric is judged one way"},
    };
    for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
        const char *key = metric_fields[beside[i].field].key;
        if (bits & CN__BIT(beside[i].field))
            cn_loader_error(ld, cn_node_get(item, key), "%s has 'burn_rate' and '%s': "
                            "%s; remove '%s'", label, key, beside[i].why, key);
    }
}

/* A judged metric compares the canary's samples with the baseline's,
 * read by Prometheus range queries: its source is Prometheus, returning
 * one series, and a threshold or baseline beside it would be ignored. */
static void check_judge_metric(cn_loader *ld, const cn_node *item, uint64_t bits,
                               const char *label)
{
    static const struct {
        int field;
        const char *why;
    } beside[] = {
        {M_JSON, "its samples come from Prometheus range queries, so its source is "
                 "'prometheus'"},
        {M_THRESHOLD, "it is judged against the baseline's samples, not a bound"},
        {M_BASELINE, "it is judged against the baseline's samples already"},
    };
    for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
        const char *key = metric_fields[beside[i].field].key;
        if (bits & CN__BIT(beside[i].field))
            cn_loader_error(ld, cn_node_get(item, key), "%s has 'judge' and '%s': %s; remove "
                            "'%s'", label, key, beside[i].why, key);
    }
    const cn_node *reduce = cn_node_get(cn_node_get(item, "prometheus"), "reduce");
    if (reduce)
        cn_loader_error(ld, reduce, "'reduce' is not used by a judged metric: its range query "
                        "must return one series; aggregate in the query, e.g. sum by (le) "
                        "(...)");
    if (!(bits & (CN__BIT(M_PROMETHEUS) | CN__BIT(M_JSON))))
        cn_loader_error(ld, item, "%s has 'judge' but no source; give 'prometheus' with the "
                        "query whose samples are compared", label);
}

static void load_metric(cn_loader *ld, const cn_node *item, cn_metric *m,
                        size_t index)
{
    m->line = item->line;
    m->col = item->col;
    if (item->type != CN_NODE_MAP) {
        cn_loader_error(ld, item, "each entry of 'metrics' must be a map with a "
                        "'name' and a source, got %s", cn_node_type_name(item));
        return;
    }
    uint64_t bits = cn_load_map(ld, item, &metric_schema, m);
    char label[160];
    if (m->name)
        snprintf(label, sizeof label, "metric '%.100s'", m->name);
    else
        snprintf(label, sizeof label, "metric %zu", index + 1);
    if (bits & CN__BIT(M_BURN)) {
        check_burn_metric(ld, item, bits, label);
        return;
    }
    if (bits & CN__BIT(M_JUDGE)) {
        check_judge_metric(ld, item, bits, label);
        return;
    }
    if ((bits & CN__BIT(M_PROMETHEUS)) && (bits & CN__BIT(M_JSON)))
        cn_loader_error(ld, item, "%s has both 'prometheus' and 'json'; give "
                        "exactly one source", label);
    else if (!(bits & (CN__BIT(M_PROMETHEUS) | CN__BIT(M_JSON))))
        cn_loader_error(ld, item, "%s has no source; give 'prometheus' or 'json'",
                        label);
    if (!(bits & (CN__BIT(M_THRESHOLD) | CN__BIT(M_BASELINE))))
        cn_loader_error(ld, item, "%s has neither 'threshold' nor 'baseline', so "
                        "it could never fail; give at least one", label);
}

/* The metrics array keeps one slot per list entry, even a broken one, so
 * that index i is entry i of the list for the cross-section checks. */
static int parse_metrics(cn_loader *ld, const cn_node *v, const cn_field *f,
                         void *dst)
{
    cn_analysis *a = dst;
    if (v->type != CN_NODE_SEQ || !v->count) {
        cn_loader_error(ld, v, "'%s' expects a non-empty list of metrics, got %s",
                        f->key, v->type == CN_NODE_SEQ ? "an empty list"
                                                       : cn_node_type_name(v));
        return -1;
    }
    cn_metric *m = cn_arena_alloc(ld->arena, v->count * sizeof(*m));
    if (!m) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    unsigned before = ld->errors;
    for (size_t i = 0; i < v->count; i++) {
        load_metric(ld, v->items[i], &m[i], i);
        for (size_t j = 0; j < i && m[i].name; j++)
            if (m[j].name && !strcmp(m[j].name, m[i].name)) {
                cn_loader_error(ld, cn_node_get(v->items[i], "name"),
                                "metric name '%s' is used twice (first at line %u)",
                                m[i].name, m[j].line);
                break;
            }
    }
    a->metrics = m;
    a->metric_count = v->count;
    return ld->errors == before ? 0 : -1;
}

/* ---- min_requests, analysis -------------------------------------------- */

enum { R_COUNT, R_PROMETHEUS, R_JSON };
static const cn_field min_requests_fields[] = {
    [R_COUNT] = {.key = "count", .parse = cn_parse_uint,
                 .offset = offsetof(cn_min_requests, count),
                 .flags = CN_REQUIRED | CN_MIN, .min = 1},
    [R_PROMETHEUS] = {.key = "prometheus", .parse = parse_prometheus,
                      .offset = offsetof(cn_min_requests, source)},
    [R_JSON] = {.key = "json", .parse = parse_json,
                .offset = offsetof(cn_min_requests, source)},
};
static const cn_schema min_requests_schema =
    CN_SCHEMA("min_requests", min_requests_fields);

static int parse_min_requests(cn_loader *ld, const cn_node *v, const cn_field *f,
                              void *dst)
{
    unsigned before = ld->errors;
    uint64_t bits = cn_load_map(ld, v, &min_requests_schema, dst);
    bool prom = bits & CN__BIT(R_PROMETHEUS), json = bits & CN__BIT(R_JSON);
    if ((v->type == CN_NODE_MAP || cn_node_is_null(v)) && prom == json)
        cn_loader_error(ld, v, "'%s' needs exactly one source, 'prometheus' or "
                        "'json', got %s", f->key, prom ? "both" : "neither");
    return ld->errors == before ? 0 : -1;
}

static const char *const outcome_names[] = {"rollback", "pause", NULL};

static const cn_field analysis_fields[] = {
    {.key = "interval", .parse = cn_parse_duration,
     .offset = offsetof(cn_analysis, interval_ms), .flags = CN_MIN, .min = 1000},
    {.key = "timeout", .parse = cn_parse_duration,
     .offset = offsetof(cn_analysis, timeout_ms),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "failure_limit", .parse = cn_parse_uint,
     .offset = offsetof(cn_analysis, failure_limit)},
    {.key = "consecutive_failure_limit", .parse = cn_parse_uint,
     .offset = offsetof(cn_analysis, consecutive_failure_limit),
     .flags = CN_MIN, .min = 1},
    {.key = "consecutive_error_limit", .parse = cn_parse_uint,
     .offset = offsetof(cn_analysis, consecutive_error_limit),
     .flags = CN_MIN, .min = 1},
    {.key = "max_bake", .parse = cn_parse_duration,
     .offset = offsetof(cn_analysis, max_bake_ms),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "on_failure", .parse = cn_parse_enum,
     .offset = offsetof(cn_analysis, on_failure), .choices = outcome_names},
    {.key = "on_inconclusive", .parse = cn_parse_enum,
     .offset = offsetof(cn_analysis, on_inconclusive), .choices = outcome_names},
    {.key = "min_requests", .parse = parse_min_requests,
     .offset = offsetof(cn_analysis, min_requests)},
    {.key = "metrics", .parse = parse_metrics, .offset = 0},
    {.key = "judge", .parse = cn__parse_judge_scoring, .offset = offsetof(cn_analysis, judge)},
};
static const cn_schema analysis_schema = CN_SCHEMA("analysis", analysis_fields);

int cn__parse_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst)
{
    (void)f;
    unsigned before = ld->errors;
    cn_load_map(ld, v, &analysis_schema, dst);
    return ld->errors == before ? 0 : -1;
}

/* ---- actuator ---------------------------------------------------------- */

static int parse_exec(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_strings argv;
    if (cn_parse_strings(ld, v, f, &argv))
        return -1;
    if (!argv.count || !*argv.items[0]) {
        cn_loader_error(ld, v, "'%s' must start with a command to run, got %s",
                        f->key, argv.count ? "an empty string" : "an empty list");
        return -1;
    }
    *(cn_strings *)dst = argv;
    return 0;
}

static const cn_field actuator_http_fields[] = {
    {.key = "url", .parse = cn__parse_url, .offset = offsetof(cn_actuator, http_url),
     .flags = CN_REQUIRED},
    {.key = "bearer_token_env", .parse = cn__parse_env_name,
     .offset = offsetof(cn_actuator, http_auth.bearer_token_env)},
    {.key = "headers_from_env", .parse = cn__parse_env_headers,
     .offset = offsetof(cn_actuator, http_auth)},
    CN__SECRET_FIELDS,
};
static const cn_schema actuator_http_schema =
    CN_SCHEMA("actuator.http", actuator_http_fields);

enum { A_EXEC, A_HTTP };
static const cn_field actuator_fields[] = {
    [A_EXEC] = {.key = "exec", .parse = parse_exec,
                .offset = offsetof(cn_actuator, exec)},
    [A_HTTP] = {.key = "http", .parse = cn_parse_map, .offset = 0,
                .sub = &actuator_http_schema},
    {.key = "timeout", .parse = cn_parse_duration,
     .offset = offsetof(cn_actuator, timeout_ms),
     .flags = CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "retries", .parse = cn_parse_uint, .offset = offsetof(cn_actuator, retries),
     .flags = CN_MAX, .max = 20},
    {.key = "backoff", .parse = cn_parse_duration,
     .offset = offsetof(cn_actuator, backoff_ms)},
};
static const cn_schema actuator_schema = CN_SCHEMA("actuator", actuator_fields);

/* An absent (or null) actuator is allowed: validate and plan need none. */
int cn__parse_actuator(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst)
{
    (void)f;
    if (cn_node_is_null(v))
        return 0;
    unsigned before = ld->errors;
    uint64_t bits = cn_load_map(ld, v, &actuator_schema, dst);
    bool exec = bits & CN__BIT(A_EXEC), http = bits & CN__BIT(A_HTTP);
    if (v->type == CN_NODE_MAP && exec && http)
        cn_loader_error(ld, v, "actuator has both 'exec' and 'http'; give exactly one");
    else if (v->type == CN_NODE_MAP && !exec && !http)
        cn_loader_error(ld, v, "actuator needs 'exec' (a command) or 'http' (a "
                        "webhook URL)");
    return ld->errors == before ? 0 : -1;
}

/* ---- ai_assisted.analysis --------------------------------------------- */

/* Overrides are checked against the metrics once both are loaded
 * (check_ai_thresholds below), since the file may give them in any order. */
static int threshold_entry(cn_loader *ld, const char *map_key, const cn_node *metric,
                           const cn_node *value, void *elem)
{
    (void)map_key;
    cn_threshold_override *o = elem;
    cn_field tf = {.key = metric->text};
    if (cn__parse_threshold(ld, value, &tf, &o->threshold) ||
        cn__copy_name(ld, metric, &o->metric))
        return -1;
    o->line = metric->line;
    o->col = metric->col;
    return 0;
}

static int parse_ai_thresholds(cn_loader *ld, const cn_node *v, const cn_field *f,
                               void *dst)
{
    cn_ai_analysis *a = dst;
    void *items = NULL;
    size_t n = 0;
    int rc = cn__load_entries(ld, v, f->key, "a map of metric name to threshold", false,
                              sizeof(cn_threshold_override), threshold_entry, &items, &n);
    if (items) {
        a->thresholds = items;
        a->threshold_count = n;
    }
    return rc;
}

enum { AI_FAILURE_LIMIT, AI_CONSECUTIVE_FAILURE_LIMIT, AI_THRESHOLDS };
static const cn_field ai_analysis_fields[] = {
    [AI_FAILURE_LIMIT] = {.key = "failure_limit", .parse = cn_parse_uint,
                          .offset = offsetof(cn_ai_analysis, failure_limit)},
    [AI_CONSECUTIVE_FAILURE_LIMIT] = {
        .key = "consecutive_failure_limit", .parse = cn_parse_uint,
        .offset = offsetof(cn_ai_analysis, consecutive_failure_limit),
        .flags = CN_MIN, .min = 1},
    [AI_THRESHOLDS] = {.key = "thresholds", .parse = parse_ai_thresholds, .offset = 0},
};
static const cn_schema ai_analysis_schema =
    CN_SCHEMA("ai_assisted.analysis", ai_analysis_fields);

int cn__parse_ai_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                          void *dst)
{
    (void)f;
    cn_ai_analysis *a = dst;
    unsigned before = ld->errors;
    uint64_t present = cn_load_map(ld, v, &ai_analysis_schema, a);
    a->has_failure_limit = present & CN__BIT(AI_FAILURE_LIMIT);
    a->has_consecutive_failure_limit = present & CN__BIT(AI_CONSECUTIVE_FAILURE_LIMIT);
    return ld->errors == before ? 0 : -1;
}

/* ---- checks across sections -------------------------------------------- */

#define DEFAULT_TIMEOUT_CAP_MS 10000

static void check_timeout(cn_loader *ld, const cn_node *an, cn_analysis *a)
{
    const cn_node *tn = cn_node_get(an, "timeout");
    if (!tn) {
        a->timeout_ms = a->interval_ms / 2 < DEFAULT_TIMEOUT_CAP_MS
                            ? a->interval_ms / 2 : DEFAULT_TIMEOUT_CAP_MS;
        return;
    }
    if (!cn_field_value_ok(an, &analysis_schema, "interval") ||
        !cn_field_value_ok(an, &analysis_schema, "timeout") ||
        a->timeout_ms < a->interval_ms)
        return;
    char shown[32];
    cn_format_duration(shown, sizeof shown, a->interval_ms);
    cn_loader_error(ld, tn, "'timeout' must be less than 'interval' (%s), got '%s'",
                    shown, tn->text);
}

/* The longest bake a stage can get, which max_bake must leave room for,
 * and what sets it: what (with its value) and why (how it is computed). */
typedef struct bake_need {
    double ms;
    const char *what;
    char why[96];
} bake_need;

/* Durations computed from file values may not fit an int64_t (a huge
 * min_samples); those are shown in hours rather than converted. */
static void format_long_ms(char *buf, size_t len, double ms)
{
    if (ms < 1e15)
        cn_format_duration(buf, len, (int64_t)llround(ms));
    else
        snprintf(buf, len, "%.3gh", ms / 3600000);
}

/* plan.c bakes a stage for max(bake x bake_factor when AI-assisted,
 * min_samples x interval). The AI term counts whatever the match says:
 * with --policy FILE a policy is used as it is, for any change. */
static void longest_bake(const cn_policy *p, bake_need *n)
{
    char bake[32], interval[32];
    cn_format_duration(bake, sizeof bake, p->plan.bake_ms);
    cn_format_duration(interval, sizeof interval, p->analysis.interval_ms);
    double ai = round((double)p->plan.bake_ms * p->ai.bake_factor); /* as plan.c */
    double evidence = (double)p->plan.min_samples * (double)p->analysis.interval_ms;
    n->ms = (double)p->plan.bake_ms;
    n->what = "the bake";
    snprintf(n->why, sizeof n->why, "plan 'bake'");
    if (ai > n->ms) {
        n->ms = ai;
        n->what = "the AI-assisted bake";
        snprintf(n->why, sizeof n->why, "bake %s x bake_factor %g", bake,
                 p->ai.bake_factor);
    }
    if (evidence > n->ms) {
        n->ms = evidence;
        n->what = "the time to take min_samples measurements";
        snprintf(n->why, sizeof n->why, "min_samples %u x interval %s",
                 p->plan.min_samples, interval);
    }
}

/* Every value the longest bake depends on must have loaded (see
 * cn_field_value_ok), or the comparison would be against a default. */
static bool bake_inputs_ok(const cn_node *root, const cn_node *an)
{
    const cn_node *plan = cn_node_get(root, "plan");
    return cn_field_value_ok(an, &analysis_schema, "max_bake") &&
           cn_field_value_ok(an, &analysis_schema, "interval") &&
           cn_field_value_ok(plan, &cn__plan_schema, "bake") &&
           cn_field_value_ok(plan, &cn__plan_schema, "min_samples") &&
           cn_field_value_ok(cn_node_get(root, "ai_assisted"), &cn__ai_schema,
                       "bake_factor");
}

static void check_max_bake(cn_loader *ld, const cn_node *root, const cn_node *an,
                           const cn_policy *p)
{
    const cn_node *mb = cn_node_get(an, "max_bake");
    if (!mb || !bake_inputs_ok(root, an))
        return;
    bake_need need;
    longest_bake(p, &need);
    if ((double)p->analysis.max_bake_ms >= need.ms)
        return;
    char shown[32];
    format_long_ms(shown, sizeof shown, need.ms);
    cn_loader_error(ld, mb, "'max_bake' (%s) must be at least %s, %s (%s)",
                    mb->text, need.what, shown, need.why);
}

/* AI-assisted changes get the same or stricter limits, never looser. base
 * is the analysis limit; zero_unset: 0 there means "not set", no limit. */
static void check_ai_limit(cn_loader *ld, const cn_node *an, const cn_node *ain,
                           const char *key, unsigned ai, unsigned base,
                           bool zero_unset)
{
    const cn_node *n = cn_node_get(ain, key);
    if (!n || !cn_field_value_ok(ain, &ai_analysis_schema, key) ||
        !cn_field_value_ok(an, &analysis_schema, key) || (zero_unset && !base) ||
        ai <= base)
        return;
    cn_loader_error(ld, n, "'%s' for AI-assisted changes may only tighten: at "
                    "most %u (analysis '%s'), got '%s'", key, base, key, n->text);
}

static void check_ai_limits(cn_loader *ld, const cn_node *an, const cn_node *ain,
                            const cn_policy *p)
{
    const cn_ai_analysis *ai = &p->ai.analysis;
    check_ai_limit(ld, an, ain, "failure_limit", ai->failure_limit,
                   p->analysis.failure_limit, false);
    check_ai_limit(ld, an, ain, "consecutive_failure_limit",
                   ai->consecutive_failure_limit,
                   p->analysis.consecutive_failure_limit, true);
}

static const char *bound_text(const cn_node *threshold, const char *key)
{
    const cn_node *n = cn_node_get(threshold, key);
    return n && n->type == CN_NODE_SCALAR ? n->text : "?";
}

/* The text of the bound in force for key: the override's when it gives
 * one, else the metric's, as the person wrote it ("2%", not 0.02). */
static const char *bound_in_force(const cn_node *onode, const cn_node *bnode,
                                  const char *key)
{
    return bound_text(cn_node_get(onode, key) ? onode : bnode, key);
}

/* Checks one override against its metric's threshold, then fills in the
 * bounds it leaves out from the metric, so that the stored override is the
 * whole threshold to apply (a missing bound never loosens). */
static void tighten(cn_loader *ld, cn_threshold_override *o, const cn_threshold *base,
                    const cn_node *onode, const cn_node *bnode)
{
    cn_threshold *t = &o->threshold;
    if (t->has_max && base->has_max && t->max > base->max)
        cn_loader_error(ld, cn_node_get(onode, "max"),
                        "AI-assisted 'max' for '%s' may only tighten: at most '%s' "
                        "(the metric's 'max'), got '%s'", o->metric,
                        bound_text(bnode, "max"), bound_text(onode, "max"));
    if (t->has_min && base->has_min && t->min < base->min)
        cn_loader_error(ld, cn_node_get(onode, "min"),
                        "AI-assisted 'min' for '%s' may only tighten: at least '%s' "
                        "(the metric's 'min'), got '%s'", o->metric,
                        bound_text(bnode, "min"), bound_text(onode, "min"));
    bool had_both = t->has_min && t->has_max;
    if (!t->has_max && base->has_max) {
        t->has_max = true;
        t->max = base->max;
    }
    if (!t->has_min && base->has_min) {
        t->has_min = true;
        t->min = base->min;
    }
    if (!had_both && t->has_min && t->has_max && t->min > t->max)
        cn_loader_error(ld, onode, "AI-assisted threshold for '%s' leaves no "
                        "passing value: with the metric's bounds, 'min' %s is "
                        "above 'max' %s", o->metric,
                        bound_in_force(onode, bnode, "min"),
                        bound_in_force(onode, bnode, "max"));
}

static void check_ai_thresholds(cn_loader *ld, const cn_node *an,
                                const cn_node *ain, cn_policy *p)
{
    const cn_analysis *a = &p->analysis;
    const cn_node *metrics = cn_node_get(an, "metrics");
    const cn_node *overrides = cn_node_get(ain, "thresholds");
    const char **names = cn_arena_alloc(ld->arena, (a->metric_count + 1) * sizeof(*names));
    size_t n = 0;
    for (size_t i = 0; names && i < a->metric_count; i++)
        if (a->metrics[i].name)
            names[n++] = a->metrics[i].name;
    for (size_t k = 0; k < p->ai.analysis.threshold_count; k++) {
        cn_threshold_override *o = &p->ai.analysis.thresholds[k];
        size_t i = 0;
        while (i < a->metric_count &&
               !(a->metrics[i].name && !strcmp(a->metrics[i].name, o->metric)))
            i++;
        if (i < a->metric_count && a->metrics[i].burn.enabled) {
            cn_node at = {.type = CN_NODE_SCALAR, .line = o->line, .col = o->col};
            cn_loader_error(ld, &at, "'thresholds' names metric '%s', a burn-rate metric: "
                            "it has no threshold to tighten (its windows' factors judge it)",
                            o->metric);
            continue;
        }
        if (i < a->metric_count && a->metrics[i].judge.enabled) {
            cn_node at = {.type = CN_NODE_SCALAR, .line = o->line, .col = o->col};
            cn_loader_error(ld, &at, "'thresholds' names metric '%s', a judged metric: it "
                            "has no threshold to tighten (it is compared with the baseline)",
                            o->metric);
            continue;
        }
        if (i < a->metric_count) {
            const cn_node *item = metrics && i < metrics->count ? metrics->items[i] : NULL;
            tighten(ld, o, &a->metrics[i].threshold, cn_node_get(overrides, o->metric),
                    cn_node_get(item, "threshold"));
            continue;
        }
        cn_node at = {.type = CN_NODE_SCALAR, .line = o->line, .col = o->col};
        const char *hint = names ? cn_suggest(o->metric, names, n) : NULL;
        cn_loader_error(ld, &at, "'thresholds' names metric '%s', which is not in "
                        "analysis 'metrics'%s%s%s", o->metric,
                        hint ? " (did you mean '" : "", hint ? hint : "",
                        hint ? "'?)" : "");
    }
}

void cn__policy_check_analysis(cn_loader *ld, const cn_node *root, cn_policy *p)
{
    const cn_node *an = cn_node_get(root, "analysis");
    const cn_node *ain = cn_node_get(cn_node_get(root, "ai_assisted"), "analysis");
    check_timeout(ld, an, &p->analysis);
    check_max_bake(ld, root, an, p);
    check_ai_limits(ld, an, ain, p);
    check_ai_thresholds(ld, an, ain, p);
    cn__policy_check_judge(ld, an, p);
}
