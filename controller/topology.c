/* Loading takes two passes over `services`: the first collects every
 * service and its own keys, the second resolves depends_on, so a service
 * may depend on one defined further down the file. */
#include "canary/topology.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h"
#include "canary/status.h"

/* Shares written by people ("33.3%", "33.3%", "33.4%") do not add up to
 * exactly 1 in binary; this much over 100% still counts as 100%. */
#define TRAFFIC_SLACK 1e-9

typedef struct fleet_fields {
    const char *unit;
    unsigned count;
} fleet_fields;

typedef struct service_fields {
    double traffic; /* NAN unless parsed */
    unsigned tier;  /* UINT_MAX unless parsed and in range */
    fleet_fields fleet;
    const cn_node *depends_on;
} service_fields;

typedef struct top_fields {
    const cn_node *services;
} top_fields;

/* Keeps the node for checks that need every service loaded first. */
static int keep_node(cn_loader *ld, const cn_node *v, const cn_field *f,
                     void *dst)
{
    (void)ld;
    (void)f;
    *(const cn_node **)dst = v;
    return 0;
}

static const cn_field top_table[] = {
    {.key = "services", .parse = keep_node,
     .offset = offsetof(top_fields, services), .flags = CN_REQUIRED},
};
static const cn_schema top_schema = CN_SCHEMA("topology", top_table);

static const cn_field fleet_table[] = {
    {.key = "unit", .parse = cn_parse_string,
     .offset = offsetof(fleet_fields, unit), .flags = CN_REQUIRED},
    {.key = "count", .parse = cn_parse_uint,
     .offset = offsetof(fleet_fields, count), .flags = CN_REQUIRED | CN_MIN,
     .min = 1},
};
static const cn_schema fleet_schema = CN_SCHEMA("fleet", fleet_table);

enum { F_TRAFFIC, F_TIER, F_FLEET, F_DEPENDS_ON };
static const cn_field service_table[] = {
    /* The range is checked here, not by the schema, so that the message
     * speaks in percent like the file does. */
    [F_TRAFFIC] = {.key = "traffic", .parse = cn_parse_percent,
                   .offset = offsetof(service_fields, traffic)},
    [F_TIER] = {.key = "tier", .parse = cn_parse_uint,
                .offset = offsetof(service_fields, tier), .flags = CN_MAX,
                .max = 9},
    [F_FLEET] = {.key = "fleet", .parse = cn_parse_map,
                 .offset = offsetof(service_fields, fleet), .sub = &fleet_schema},
    [F_DEPENDS_ON] = {.key = "depends_on", .parse = keep_node,
                      .offset = offsetof(service_fields, depends_on)},
};
static const cn_schema service_schema = CN_SCHEMA("service", service_table);

/* What the second pass needs to know about each service. */
typedef struct pending {
    const cn_node *key;
    const cn_node *depends_on;
} pending;

typedef struct topo_load {
    cn_loader ld;
    cn_topology *t;
    pending *pending;     /* one per service */
    size_t *listed_by;    /* 1 + the service whose deps last named it */
    const char **names;   /* suggestion candidates, built on first need */
    bool has_traffic;
    double traffic_sum;
    const cn_node *last_traffic;
} topo_load;

static int add_service(topo_load *tl, const cn_node *key, const cn_node *body)
{
    cn_topology *t = tl->t;
    cn_loader *ld = &tl->ld;
    if (key->type != CN_NODE_SCALAR || cn_node_is_null(key)) {
        cn_loader_error(ld, key, "service names must be plain names, got %s",
                        cn_node_type_name(key));
        return CN_OK;
    }
    if (!key->len || strlen(key->text) != key->len) {
        cn_loader_error(ld, key, "%s",
                        key->len ? "service name contains a NUL character"
                                 : "service name is empty");
        return CN_OK;
    }
    cn_service *s = &t->services[t->count];
    if (!(s->name = cn_arena_strdup(&t->arena, key->text)))
        return CN_ENOMEM;
    s->line = key->line;
    s->col = key->col;
    s->tier = -1;

    char what[256];
    snprintf(what, sizeof what, "service '%.200s'", s->name);
    cn_schema schema = service_schema;
    schema.what = what;
    service_fields v = {.traffic = NAN, .tier = UINT_MAX};
    uint64_t present = cn_load_map(ld, body, &schema, &v);

    if (present & (1u << F_TRAFFIC)) {
        tl->has_traffic = true;
        const cn_node *at = cn_node_get(body, "traffic");
        /* NAN is no percentage at all, which cn_parse_percent reported */
        if (v.traffic > 0 && v.traffic <= 1) {
            s->entry = true;
            s->traffic = v.traffic;
            tl->traffic_sum += v.traffic;
            tl->last_traffic = at;
        } else if (!isnan(v.traffic)) {
            cn_loader_error(ld, at,
                            "%s: 'traffic' must be more than 0%% and at most "
                            "100%%, got '%s'",
                            what, at->text);
        }
    }
    if (v.tier != UINT_MAX)
        s->tier = (int)v.tier;
    s->fleet_unit = v.fleet.unit;
    s->fleet_count = v.fleet.count;
    tl->pending[t->count] = (pending){key, v.depends_on};
    t->count++;
    return CN_OK;
}

typedef struct named {
    const char *name;
    size_t index;
} named;

/* Equal names keep file order, so the first definition leads its run. */
static int named_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

static int index_names(topo_load *tl)
{
    cn_topology *t = tl->t;
    named *sorted = malloc(t->count * sizeof(*sorted));
    t->by_name = cn_arena_alloc(&t->arena, t->count * sizeof(*t->by_name));
    if (!sorted || !t->by_name) {
        free(sorted);
        t->by_name = NULL;
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < t->count; i++)
        sorted[i] = (named){t->services[i].name, i};
    qsort(sorted, t->count, sizeof(*sorted), named_cmp);
    size_t first = 0;
    for (size_t k = 0; k < t->count; k++) {
        t->by_name[k] = sorted[k].index;
        if (k && !strcmp(sorted[k].name, sorted[first].name))
            cn_loader_error(&tl->ld, tl->pending[sorted[k].index].key,
                            "service '%s' is already defined at line %u",
                            sorted[k].name,
                            t->services[sorted[first].index].line);
        else
            first = k;
    }
    free(sorted);
    return CN_OK;
}

static void unknown_dependency(topo_load *tl, const cn_service *s,
                               const cn_node *name)
{
    const cn_topology *t = tl->t;
    const char *hint = NULL;
    /* Each suggestion compares against every name. Past the cap the
     * message is dropped anyway, so a file full of typos stays cheap. */
    if (cn_diags_total(tl->ld.diags) < CN_DIAGS_MAX) {
        if (!tl->names && (tl->names = malloc(t->count * sizeof(*tl->names))))
            for (size_t i = 0; i < t->count; i++)
                tl->names[i] = t->services[i].name;
        if (tl->names)
            hint = cn_suggest(name->text, tl->names, t->count);
    }
    if (hint)
        cn_loader_error(&tl->ld, name,
                        "service '%s': unknown dependency '%s' (did you mean '%s'?)",
                        s->name, name->text, hint);
    else
        cn_loader_error(&tl->ld, name, "service '%s': unknown dependency '%s'",
                        s->name, name->text);
}

/* 0 < fraction <= 1, written as a plain number. */
static bool parse_fraction(topo_load *tl, const cn_service *s,
                           const cn_node *name, const cn_node *v, double *out)
{
    if (v->type != CN_NODE_SCALAR || cn_node_is_null(v)) {
        cn_loader_error(&tl->ld, v,
                        "service '%s': fraction for '%s' must be a number, got %s",
                        s->name, name->text, cn_node_type_name(v));
        return false;
    }
    if (v->quoted || cn_text_number(v->text, out)) {
        cn_loader_error(&tl->ld, v,
                        "service '%s': fraction for '%s' must be a number, got %s'%s'",
                        s->name, name->text, v->quoted ? "a quoted string " : "",
                        v->text);
        return false;
    }
    if (!(*out > 0) || *out > 1) {
        cn_loader_error(&tl->ld, v,
                        "service '%s': fraction for '%s' must be more than 0 and "
                        "at most 1, got '%s'",
                        s->name, name->text, v->text);
        return false;
    }
    return true;
}

static int resolve_deps(topo_load *tl, size_t i)
{
    cn_topology *t = tl->t;
    cn_service *s = &t->services[i];
    const cn_node *list = tl->pending[i].depends_on;
    if (!list || cn_node_is_null(list))
        return CN_OK;
    if (list->type == CN_NODE_SCALAR) {
        cn_loader_error(&tl->ld, list,
                        "service '%s': 'depends_on' expects a list of service "
                        "names or a map of names to fractions, got %s",
                        s->name, cn_node_type_name(list));
        return CN_OK;
    }
    if (!list->count)
        return CN_OK;
    bool is_map = list->type == CN_NODE_MAP;
    if (!(s->deps = cn_arena_alloc(&t->arena, list->count * sizeof(*s->deps))))
        return CN_ENOMEM;
    for (size_t k = 0; k < list->count; k++) {
        const cn_node *name = list->items[is_map ? 2 * k : k];
        if (name->type != CN_NODE_SCALAR || cn_node_is_null(name)) {
            cn_loader_error(&tl->ld, name,
                            "service '%s': dependencies must be service names, got %s",
                            s->name, cn_node_type_name(name));
            continue;
        }
        double fraction = 1;
        bool ok = !is_map || parse_fraction(tl, s, name, list->items[2 * k + 1],
                                            &fraction);
        long to = cn_topology_find(t, name->text);
        if (to < 0) {
            unknown_dependency(tl, s, name);
        } else if ((size_t)to == i) {
            cn_loader_error(&tl->ld, name, "service '%s' depends on itself",
                            s->name);
        } else if (tl->listed_by[to] == i + 1) {
            cn_loader_error(&tl->ld, name,
                            "service '%s': dependency '%s' is listed twice",
                            s->name, name->text);
        } else {
            tl->listed_by[to] = i + 1;
            if (ok)
                s->deps[s->dep_count++] = (cn_edge){(size_t)to, fraction};
        }
    }
    return CN_OK;
}

static int load_services(topo_load *tl, const cn_node *services)
{
    cn_topology *t = tl->t;
    cn_loader *ld = &tl->ld;
    if (services->type != CN_NODE_MAP && !cn_node_is_null(services)) {
        cn_loader_error(ld, services,
                        "'services' must be a map of service names to services, "
                        "got %s",
                        cn_node_type_name(services));
        return CN_OK;
    }
    if (cn_node_is_null(services) || !services->count) {
        cn_loader_error(ld, services, "'services' must list at least one service");
        return CN_OK;
    }
    size_t n = services->count;
    t->services = cn_arena_alloc(&t->arena, n * sizeof(*t->services));
    tl->pending = malloc(n * sizeof(*tl->pending));
    tl->listed_by = calloc(n, sizeof(*tl->listed_by));
    if (!t->services || !tl->pending || !tl->listed_by)
        return CN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = add_service(tl, services->items[2 * i], services->items[2 * i + 1]);
        if (rc)
            return rc;
    }
    if (!tl->has_traffic)
        cn_loader_error(ld, services, "no service has 'traffic'; at least one "
                                      "entry service is needed");
    else if (tl->traffic_sum > 1 + TRAFFIC_SLACK)
        cn_loader_error(ld, tl->last_traffic,
                        "'traffic' of the entry services adds up to %.10g%%, "
                        "more than 100%%",
                        tl->traffic_sum * 100);
    if (!t->count)
        return CN_OK;
    int rc = index_names(tl);
    for (size_t i = 0; !rc && i < t->count; i++)
        rc = resolve_deps(tl, i);
    return rc;
}

int cn_topology_load_doc(cn_topology *t, const cn_doc *doc, cn_diags *diags)
{
    memset(t, 0, sizeof(*t));
    cn_arena_init(&t->arena, 0);
    if (!doc->root)
        return CN_EINVAL; /* the document loader has said why */
    if (!(t->file = cn_arena_strdup(&t->arena, doc->file ? doc->file : "<input>")))
        return CN_ENOMEM;
    topo_load tl = {.t = t};
    cn_loader_init(&tl.ld, t->file, diags, &t->arena);
    top_fields top = {NULL};
    cn_load_map(&tl.ld, doc->root, &top_schema, &top);
    int rc = top.services ? load_services(&tl, top.services) : CN_OK;
    free(tl.pending);
    free(tl.listed_by);
    free(tl.names);
    if (rc == CN_ENOMEM)
        cn_loader_error(&tl.ld, NULL, "out of memory while loading the topology");
    return rc ? rc : tl.ld.errors ? CN_EINVAL : CN_OK;
}

int cn_topology_load(cn_topology *t, const char *path, cn_diags *diags)
{
    memset(t, 0, sizeof(*t));
    cn_arena_init(&t->arena, 0);
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (rc == CN_OK)
        rc = cn_topology_load_doc(t, &doc, diags);
    cn_doc_free(&doc);
    return rc;
}

void cn_topology_free(cn_topology *t)
{
    cn_arena_free(&t->arena);
    t->services = NULL;
    t->by_name = NULL;
    t->count = 0;
}

long cn_topology_find(const cn_topology *t, const char *name)
{
    size_t lo = 0, hi = t->by_name ? t->count : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t i = t->by_name[mid];
        int c = strcmp(name, t->services[i].name);
        if (!c)
            return (long)i;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* ---- reach ------------------------------------------------------------- */

/* The fixed point is approached from above. Every p starts at 1 (the
 * entry stays there) and each round recomputes p(S) from its callers, so
 * values only fall and every round is an upper bound on the answer:
 * stopping early overstates reach, the safe side for sizing stages. Over
 * the services an entry reaches through positive fractions the fixed
 * point is unique (values above the least one could only be held up by a
 * loop of gain 1 or more that no share flows into, and every reached loop
 * has inflow), so this is the least fixed point the header defines.
 * From below, a loop of plain lists (gain 1) fed a share f would climb by
 * f per round: a million rounds for f = 1e-6, and a false stop at once
 * for f below the epsilon.
 *
 * A DAG taken in topological order settles in two rounds (one to compute,
 * one to see nothing move), a loop of gain g < 1 in about
 * log(1e-12) / log(g): 20 rounds for g = 0.25, 2,700 for g = 0.99. The
 * cap bounds what a loop with gain a hair under 1 can cost, at the price
 * of a slight overstatement. */
#define REACH_EPSILON 1e-12
#define REACH_MAX_ROUNDS 10000

typedef struct reach_scratch {
    size_t *first;    /* callers of s: caller[first[s] .. first[s + 1]) */
    size_t *caller;
    double *fraction; /* beside caller: f(caller -> s) */
    unsigned char *wanted; /* the target and everything that can reach it */
    size_t *mark;     /* 1 + the entry whose search last reached s */
    size_t *order;    /* reached from the entry, in DFS postorder */
    size_t *stack, *next;
    double *p;        /* p_E; 0 for every service the entry does not reach */
} reach_scratch;

static void index_callers(const cn_topology *t, reach_scratch *sc)
{
    size_t m = 0;
    for (size_t s = 0; s < t->count; s++)
        for (size_t e = 0; e < t->services[s].dep_count; e++, m++)
            sc->first[t->services[s].deps[e].to]++;
    for (size_t s = 1; s < t->count; s++)
        sc->first[s] += sc->first[s - 1];
    sc->first[t->count] = m;
    /* first[s] holds the end of s's range; filling backwards leaves it at
     * the start. */
    for (size_t s = 0; s < t->count; s++)
        for (size_t e = 0; e < t->services[s].dep_count; e++) {
            size_t at = --sc->first[t->services[s].deps[e].to];
            sc->caller[at] = s;
            sc->fraction[at] = t->services[s].deps[e].fraction;
        }
}

/* Only ancestors of the target can change its p, so the searches and
 * sweeps below skip everything else. */
static void mark_ancestors(reach_scratch *sc, size_t target)
{
    size_t head = 0, tail = 0;
    sc->wanted[target] = 1;
    sc->order[tail++] = target;
    while (head < tail) {
        size_t s = sc->order[head++];
        for (size_t e = sc->first[s]; e < sc->first[s + 1]; e++)
            if (!sc->wanted[sc->caller[e]]) {
                sc->wanted[sc->caller[e]] = 1;
                sc->order[tail++] = sc->caller[e];
            }
    }
}

/* Iterative, so a chain of 10,000 services cannot overflow the C stack.
 * Returns how many nodes were reached; the entry is the last in order. */
static size_t search_from(const cn_topology *t, reach_scratch *sc, size_t entry)
{
    size_t depth = 0, k = 0;
    sc->mark[entry] = entry + 1;
    sc->stack[depth] = entry;
    sc->next[depth++] = 0;
    while (depth) {
        const cn_service *s = &t->services[sc->stack[depth - 1]];
        if (sc->next[depth - 1] == s->dep_count) {
            sc->order[k++] = sc->stack[--depth];
            continue;
        }
        const cn_edge *e = &s->deps[sc->next[depth - 1]++];
        /* A zero fraction carries no requests; following it would break
         * the uniqueness the iteration from above relies on. */
        if (e->fraction > 0 && sc->wanted[e->to] && sc->mark[e->to] != entry + 1) {
            sc->mark[e->to] = entry + 1;
            sc->stack[depth] = e->to;
            sc->next[depth++] = 0;
        }
    }
    return k;
}

/* One Gauss-Seidel round in reverse postorder, so that in a DAG every
 * caller is final before its callees read it. Returns the largest change. */
static double sweep(reach_scratch *sc, size_t k, size_t entry)
{
    double most = 0;
    for (size_t i = k; i-- > 0;) {
        size_t s = sc->order[i];
        if (s == entry)
            continue;
        double v = 0;
        for (size_t e = sc->first[s]; e < sc->first[s + 1]; e++)
            v += sc->p[sc->caller[e]] * sc->fraction[e];
        if (v > 1)
            v = 1;
        if (fabs(v - sc->p[s]) > most)
            most = fabs(v - sc->p[s]);
        sc->p[s] = v;
    }
    return most;
}

/* p_entry(target). */
static double entry_reach(const cn_topology *t, reach_scratch *sc,
                          size_t entry, size_t target)
{
    size_t k = search_from(t, sc, entry);
    for (size_t i = 0; i < k; i++)
        sc->p[sc->order[i]] = 1;
    for (int round = 0; round < REACH_MAX_ROUNDS; round++)
        if (sweep(sc, k, entry) < REACH_EPSILON)
            break;
    double r = sc->p[target];
    for (size_t i = 0; i < k; i++)
        sc->p[sc->order[i]] = 0;
    return r;
}

int cn_topology_reach(const cn_topology *t, size_t index, double *reach)
{
    if (index >= t->count)
        return CN_EINVAL;
    size_t n = t->count, m = 0;
    for (size_t s = 0; s < n; s++)
        m += t->services[s].dep_count;
    reach_scratch sc = {
        .first = calloc(n + 1, sizeof(size_t)),
        .caller = calloc(m + 1, sizeof(size_t)),
        .fraction = calloc(m + 1, sizeof(double)),
        .wanted = calloc(n, 1),
        .mark = calloc(n, sizeof(size_t)),
        .order = calloc(n, sizeof(size_t)),
        .stack = calloc(n, sizeof(size_t)),
        .next = calloc(n, sizeof(size_t)),
        .p = calloc(n, sizeof(double)),
    };
    int rc = CN_ENOMEM;
    if (!sc.first || !sc.caller || !sc.fraction || !sc.wanted || !sc.mark ||
        !sc.order || !sc.stack || !sc.next || !sc.p)
        goto out;
    index_callers(t, &sc);
    mark_ancestors(&sc, index);
    double total = 0;
    for (size_t e = 0; e < n; e++) {
        const cn_service *s = &t->services[e];
        if (s->entry && sc.wanted[e])
            total += s->traffic * (e == index ? 1 : entry_reach(t, &sc, e, index));
    }
    *reach = total > 1 ? 1 : total;
    rc = CN_OK;
out:
    free(sc.first);
    free(sc.caller);
    free(sc.fraction);
    free(sc.wanted);
    free(sc.mark);
    free(sc.order);
    free(sc.stack);
    free(sc.next);
    free(sc.p);
    return rc;
}
