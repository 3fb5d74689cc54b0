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
 * entry stays there) and each step recomputes p(S) from its callers, so
 * values only fall and every step is an upper bound on the answer:
 * stopping early overstates reach, the safe side for sizing stages. Over
 * the services an entry reaches through positive fractions the fixed
 * point is unique (values above the least one could only be held up by a
 * loop of gain 1 or more that no share flows into, and every reached loop
 * has inflow), so this is the least fixed point the header defines.
 * From below, a loop of plain lists (gain 1) fed a share f would climb by
 * f per round: a million rounds for f = 1e-6, and a false stop at once
 * for f below the epsilon.
 *
 * Only loops need rounds. The ancestors of the target that some entry
 * reaches (nothing else can change its p) are split into strongly
 * connected components and taken upstream first: a service on no loop
 * reads callers that are already final, so it is computed once, exactly,
 * and only a component with a loop iterates, to its own fixed point, from
 * inputs that no longer move. That keeps the safety: p only grows with its
 * callers, so an upstream component stopped early (too high) leaves
 * everything downstream too high as well, never too low.
 *
 * Inside a component the sweep order decides the speed. A Gauss-Seidel
 * sweep is exact along every edge that points forward in the order; only
 * edges pointing back carry last round's (too high) values, and how fast
 * that excess dies depends on what those edges carry. A depth-first order
 * is poor: a light edge back into a part not yet searched sends the search
 * through it while the services it calls are still on the stack, so heavy
 * edges end up pointing back. On the benchmark topology (10,000 services,
 * nearly all one component, its loops closed by edges of 0.01) that took
 * 250 to 650 rounds per entry. Ordering the component so that the light
 * edges are the ones pointing back (order_component) brings it to about a
 * dozen. A loop of gain g < 1 that no order avoids still takes about
 * log(1e-12) / log(g) rounds: 20 for g = 0.25, 2,700 for g = 0.99.
 *
 * REACH_MAX_ROUNDS caps the sweeps of each component for each group of
 * entries, bounding what a loop with gain a hair under 1 can cost at the
 * price of a slight overstatement (it stops from above). It is never more
 * work than that many sweeps over every ancestor for every entry, the
 * bound before components were used.
 *
 * The components and their orders depend on the target alone, so they
 * are built once per call, and up to REACH_LANES entries go through them
 * side by side (p_E for each in its own lane): one pass over the edges
 * serves them all. */
#define REACH_EPSILON 1e-12
#define REACH_MAX_ROUNDS 10000
#define REACH_LANES 32 /* the bits of reached[] */
#define NONE SIZE_MAX
#define REACH_CLASSES 32 /* of fractions, by weight; see weight_class() */

typedef struct reach_scratch {
    /* Edges with a positive fraction, by callee: s's callers are
     * caller[first[s] .. first[s + 1]). */
    size_t *first, *caller;
    double *fraction;    /* f(caller -> s) */
    signed char *weight; /* weight_class(fraction) */

    /* The ancestors in evaluation order, component by component, upstream
     * first: component c is order[start[c] .. start[c + 1]). */
    size_t *order, *start, ncomp;

    /* The searches that find and order the components. A search enters
     * only services of one group; each component found becomes a group.
     * Services no entry reaches are in none (NONE) and never entered. */
    size_t *group, groups;
    size_t *num, *low, *stack, *path, *next, *roots, *ends;
    size_t *todo_lo, *todo_hi; /* stretches of order[] still to sort, */
    int *todo_drop;            /* along edges of a class above this */

    /* Evaluation, by position in order[] so that a sweep walks memory in
     * order: the callers of position i are at[] positions
     * from[first_at[i] .. first_at[i + 1]), those in its own component
     * before split_at[i]. */
    size_t *at, *first_at, *split_at, *from;
    double *share; /* beside from[]: the fraction */
    /* Entries in hand, one per lane: p[i * lanes + lane] is p_E. */
    size_t lanes;
    double *p;
    double *inflow;     /* beside p: the share from outside the component */
    uint32_t *reached;  /* lanes whose entry reaches position i */
    unsigned char *pin; /* 1 + the lane whose entry is at i, or 0 */
    double unit[2 * REACH_LANES]; /* 1 just before the middle, else 0 */
} reach_scratch;

/* Fractions within a factor of 4 or so share a class: 0.5 to 1 is the
 * heaviest, then 0.125 to 0.5, then 1/32 to 0.125, and so on, so that
 * 0.01 and 0.3 differ and 0.3 and 0.4 do not. Only the order of the
 * sweeps depends on them, never the result. */
static int weight_class(double f)
{
    int e = 0;
    frexp(f, &e); /* f = m * 2^e, 0.5 <= m < 1 */
    e = e > 1 ? 1 : e < 2 - 2 * REACH_CLASSES ? 2 - 2 * REACH_CLASSES : e;
    return REACH_CLASSES - 1 - (1 - e) / 2;
}

/* An edge with a zero fraction (the loader rejects them, a caller building
 * a topology by hand may not) carries nothing and is left out: followed,
 * it would let a loop that no share flows into hold itself up at 1. */
static void index_callers(const cn_topology *t, reach_scratch *sc)
{
    size_t m = 0;
    for (size_t s = 0; s < t->count; s++)
        for (size_t e = 0; e < t->services[s].dep_count; e++)
            if (t->services[s].deps[e].fraction > 0) {
                sc->first[t->services[s].deps[e].to]++;
                m++;
            }
    for (size_t s = 1; s < t->count; s++)
        sc->first[s] += sc->first[s - 1];
    sc->first[t->count] = m;
    /* first[s] holds the end of s's range; filling backwards leaves it at
     * the start. */
    for (size_t s = 0; s < t->count; s++)
        for (size_t e = 0; e < t->services[s].dep_count; e++)
            if (t->services[s].deps[e].fraction > 0) {
                size_t at = --sc->first[t->services[s].deps[e].to];
                sc->caller[at] = s;
                sc->fraction[at] = t->services[s].deps[e].fraction;
                sc->weight[at] = (signed char)weight_class(sc->fraction[at]);
            }
}

/* Tarjan's algorithm along caller edges from roots[0 .. nroots), through
 * services of group g and edges of a class above drop (lighter ones are
 * dropped). A component is finished only after every component it can
 * reach, and along caller edges that is everything upstream of it: the
 * components come out upstream first, into out[], each ending at the next
 * ends[], each a group of its own. Returns how many. num[] must be 0 for
 * the roots; it ends at NONE for all placed. Iterative, so a chain of
 * 10,000 services cannot overflow the C stack. */
static size_t tarjan(reach_scratch *sc, const size_t *roots, size_t nroots,
                     size_t g, int drop, size_t *out, size_t *ends)
{
    size_t count = 0, placed = 0, ncomp = 0, held = 0;
    for (size_t r = 0; r < nroots; r++) {
        if (sc->num[roots[r]])
            continue;
        size_t depth = 0;
        sc->num[roots[r]] = sc->low[roots[r]] = ++count;
        sc->stack[held++] = roots[r];
        sc->path[depth] = roots[r];
        sc->next[depth++] = sc->first[roots[r]];
        while (depth) {
            size_t s = sc->path[depth - 1];
            if (sc->next[depth - 1] < sc->first[s + 1]) {
                size_t e = sc->next[depth - 1]++, c = sc->caller[e];
                if (sc->group[c] != g || sc->weight[e] <= drop)
                    continue;
                if (!sc->num[c]) {
                    sc->num[c] = sc->low[c] = ++count;
                    sc->stack[held++] = c;
                    sc->path[depth] = c;
                    sc->next[depth++] = sc->first[c];
                } else if (sc->num[c] != NONE && sc->num[c] < sc->low[s]) {
                    sc->low[s] = sc->num[c]; /* c is still on the stack */
                }
                continue;
            }
            if (--depth && sc->low[s] < sc->low[sc->path[depth - 1]])
                sc->low[sc->path[depth - 1]] = sc->low[s];
            if (sc->low[s] != sc->num[s])
                continue;
            size_t c, id = ++sc->groups;
            do {
                c = sc->stack[--held];
                sc->group[c] = id;
                sc->num[c] = NONE;
                out[placed++] = c;
            } while (c != s);
            ends[ncomp++] = placed;
        }
    }
    return ncomp;
}

/* Reorders order[lo .. hi), one group held together by the edges of a
 * single class above drop, as a depth-first search along those caller edges
 * finishes them: each service after the callers it was reached through.
 * With nothing lighter left to point back, this is as good as any. */
static void search_order(reach_scratch *sc, size_t lo, size_t hi, int drop)
{
    size_t g = sc->group[sc->order[lo]], out = lo;
    for (size_t i = lo; i < hi; i++) {
        sc->roots[i - lo] = sc->order[i];
        sc->num[sc->order[i]] = 0;
    }
    for (size_t r = 0; r < hi - lo; r++) {
        size_t depth = 0, root = sc->roots[r];
        if (sc->num[root])
            continue;
        sc->num[root] = 1;
        sc->path[depth] = root;
        sc->next[depth++] = sc->first[root];
        while (depth) {
            size_t s = sc->path[depth - 1];
            if (sc->next[depth - 1] < sc->first[s + 1]) {
                size_t e = sc->next[depth - 1]++, c = sc->caller[e];
                if (sc->group[c] == g && sc->weight[e] > drop && !sc->num[c]) {
                    sc->num[c] = 1;
                    sc->path[depth] = c;
                    sc->next[depth++] = sc->first[c];
                }
                continue;
            }
            sc->order[out++] = s;
            depth--;
        }
    }
}

/* Orders component c so that the edges pointing back are light ones.
 * Without its lightest class of edges the component falls apart into
 * smaller components (or stays whole), and those can be put upstream
 * first, so only the dropped edges can point back. Each piece is ordered
 * the same way from the next class up; a piece that one class alone holds
 * together takes a depth-first order. Every level drops a class, so there
 * are at most REACH_CLASSES levels of O(n + m), and in practice a few:
 * where fractions of every size close loops alike there is no good order
 * to find and the levels are wasted (about a millisecond on 2,000
 * services), where light edges close the loops, as on the benchmark, one
 * level turns 650 rounds into a dozen. */
static void order_component(reach_scratch *sc, size_t c)
{
    size_t todo = 0;
    sc->todo_lo[todo] = sc->start[c];
    sc->todo_hi[todo] = sc->start[c + 1];
    sc->todo_drop[todo++] = -1;
    while (todo) {
        todo--;
        size_t lo = sc->todo_lo[todo], hi = sc->todo_hi[todo];
        int drop = sc->todo_drop[todo], light = INT_MAX, heavy = INT_MIN;
        size_t g = sc->group[sc->order[lo]];
        for (size_t i = lo; i < hi; i++) {
            size_t s = sc->order[i];
            for (size_t e = sc->first[s]; e < sc->first[s + 1]; e++)
                if (sc->group[sc->caller[e]] == g && sc->weight[e] > drop) {
                    if (sc->weight[e] < light)
                        light = sc->weight[e];
                    if (sc->weight[e] > heavy)
                        heavy = sc->weight[e];
                }
        }
        if (light == heavy) {
            search_order(sc, lo, hi, drop);
            continue;
        }
        for (size_t i = lo; i < hi; i++) {
            sc->roots[i - lo] = sc->order[i];
            sc->num[sc->order[i]] = 0;
        }
        size_t pieces = tarjan(sc, sc->roots, hi - lo, g, light, &sc->order[lo], sc->ends);
        for (size_t k = 0, from = lo; k < pieces; from = lo + sc->ends[k++])
            if (lo + sc->ends[k] - from > 1) {
                sc->todo_lo[todo] = from;
                sc->todo_hi[todo] = lo + sc->ends[k];
                sc->todo_drop[todo++] = light;
            }
    }
}

/* Puts the services some entry reaches in group 0, the rest in none: a
 * service no entry reaches is at 0 for every entry and sends nothing, so
 * the searches need not enter it. */
static void mark_reached(const cn_topology *t, reach_scratch *sc)
{
    size_t tail = 0;
    for (size_t s = 0; s < t->count; s++) {
        sc->group[s] = t->services[s].entry ? 0 : NONE;
        if (t->services[s].entry)
            sc->stack[tail++] = s;
    }
    while (tail) {
        const cn_service *svc = &t->services[sc->stack[--tail]];
        for (size_t e = 0; e < svc->dep_count; e++)
            if (svc->deps[e].fraction > 0 && sc->group[svc->deps[e].to]) {
                sc->group[svc->deps[e].to] = 0;
                sc->stack[tail++] = svc->deps[e].to;
            }
    }
}

/* Finds the ancestors of the target that some entry reaches, by
 * component, upstream first, orders every component with more than one
 * service, and indexes the callers by position. The target must be
 * reached. */
static void plan(reach_scratch *sc, size_t target)
{
    sc->ncomp = tarjan(sc, &target, 1, 0, -1, sc->order, sc->start + 1);
    for (size_t c = 0; c < sc->ncomp; c++)
        if (sc->start[c + 1] - sc->start[c] > 1)
            order_component(sc, c);
    size_t k = 0;
    for (size_t c = 0; c < sc->ncomp; c++) {
        size_t lo = sc->start[c], hi = sc->start[c + 1];
        for (size_t i = lo; i < hi; i++)
            sc->at[sc->order[i]] = i;
        for (size_t i = lo; i < hi; i++) {
            /* Callers from the same component first: a sweep reads only
             * those. A caller that no entry reaches sends nothing and is
             * left out; every other caller of an ancestor is an ancestor,
             * upstream or in the same component, so it has a position. */
            size_t s = sc->order[i], internal = k;
            sc->first_at[i] = k;
            for (size_t e = sc->first[s]; e < sc->first[s + 1]; e++)
                k += sc->group[sc->caller[e]] != NONE;
            size_t external = k;
            for (size_t e = sc->first[s]; e < sc->first[s + 1]; e++) {
                if (sc->group[sc->caller[e]] == NONE)
                    continue;
                size_t a = sc->at[sc->caller[e]];
                size_t to = a >= lo && a < hi ? internal++ : --external;
                sc->from[to] = a;
                sc->share[to] = sc->fraction[e];
            }
            sc->split_at[i] = internal;
        }
    }
    sc->first_at[sc->start[sc->ncomp]] = k;
}

/* ---- evaluation ---- */

/* p at position i in every lane: base[] plus what the callers in
 * [lo, hi) of from[] send, capped at 1. An entry's own lane has base 1,
 * which pins it at 1 since nothing sent is negative. Returns whether any
 * lane moved by REACH_EPSILON or more. Lanes go four at a time, each with
 * its own sum and its own largest change, so that they stay in registers
 * and no lane waits for another. */
static bool update(reach_scratch *sc, size_t i, size_t lo, size_t hi,
                   const double *base)
{
    size_t lanes = sc->lanes, l = 0;
    double *pi = &sc->p[i * lanes], most[4] = {0, 0, 0, 0};
    for (; l + 4 <= lanes; l += 4) {
        double v[4] = {base[l], base[l + 1], base[l + 2], base[l + 3]};
        for (size_t e = lo; e < hi; e++) {
            const double *pc = &sc->p[sc->from[e] * lanes + l];
            for (size_t k = 0; k < 4; k++)
                v[k] += pc[k] * sc->share[e];
        }
        for (size_t k = 0; k < 4; k++) {
            double x = v[k] > 1 ? 1 : v[k], d = fabs(x - pi[l + k]);
            most[k] = d > most[k] ? d : most[k];
            pi[l + k] = x;
        }
    }
    for (; l < lanes; l++) {
        double v = base[l];
        for (size_t e = lo; e < hi; e++)
            v += sc->p[sc->from[e] * lanes + l] * sc->share[e];
        v = v > 1 ? 1 : v;
        most[0] = fabs(v - pi[l]) > most[0] ? fabs(v - pi[l]) : most[0];
        pi[l] = v;
    }
    return most[0] >= REACH_EPSILON || most[1] >= REACH_EPSILON ||
           most[2] >= REACH_EPSILON || most[3] >= REACH_EPSILON;
}

/* 1 in the lane whose entry is at position i, 0 elsewhere. */
static const double *base_of(const reach_scratch *sc, size_t i)
{
    return &sc->unit[REACH_LANES - (sc->pin[i] ? sc->pin[i] : 0)];
}

static uint32_t lane_bit(const reach_scratch *sc, size_t i)
{
    return sc->pin[i] ? (uint32_t)1 << (sc->pin[i] - 1) : 0;
}

/* p_E for the entries in hand. Every ancestor is written in every pass,
 * upstream first, so nothing reads a value left from other entries. */
static void evaluate(reach_scratch *sc)
{
    size_t lanes = sc->lanes;
    for (size_t c = 0; c < sc->ncomp; c++) {
        size_t lo = sc->start[c], hi = sc->start[c + 1];
        if (hi - lo == 1 && sc->split_at[lo] == sc->first_at[lo]) {
            uint32_t in = lane_bit(sc, lo);
            for (size_t e = sc->first_at[lo]; e < sc->first_at[lo + 1]; e++)
                in |= sc->reached[sc->from[e]];
            sc->reached[lo] = in;
            update(sc, lo, sc->first_at[lo], sc->first_at[lo + 1], base_of(sc, lo));
            continue;
        }
        /* Upstream is final: take what flows in from outside once. An
         * entry that reaches one service here reaches them all. */
        uint32_t in = 0;
        for (size_t i = lo; i < hi; i++) {
            in |= lane_bit(sc, i);
            for (size_t e = sc->split_at[i]; e < sc->first_at[i + 1]; e++)
                in |= sc->reached[sc->from[e]];
            update(sc, i, sc->split_at[i], sc->first_at[i + 1], base_of(sc, i));
            memcpy(&sc->inflow[i * lanes], &sc->p[i * lanes], lanes * sizeof(double));
        }
        /* From above where the entry reaches; where it does not, 0 stays 0,
         * since every caller there is at 0 too. */
        for (size_t i = lo; i < hi; i++) {
            sc->reached[i] = in;
            for (size_t l = 0; l < lanes; l++)
                sc->p[i * lanes + l] = in >> l & 1 ? 1 : 0;
        }
        for (int round = 0; in && round < REACH_MAX_ROUNDS; round++) {
            bool moved = false;
            for (size_t i = lo; i < hi; i++)
                moved |= update(sc, i, sc->first_at[i], sc->split_at[i],
                                &sc->inflow[i * lanes]);
            if (!moved)
                break;
        }
    }
}

/* The sum over entries E of traffic(E) * p_E(target), planned and
 * evaluated. CN_OK or CN_ENOMEM. */
static int sum_over_entries(const cn_topology *t, reach_scratch *sc, size_t target,
                            double *total)
{
    index_callers(t, sc);
    mark_reached(t, sc);
    *total = 0;
    if (sc->group[target] == NONE)
        return CN_OK; /* no entry reaches it */
    plan(sc, target);
    /* Entries that are not ancestors of the target send it nothing; the
     * others (at least one, since one reaches it) go through in groups of
     * up to REACH_LANES. */
    size_t ancestors = sc->start[sc->ncomp], entries = 0;
    for (size_t i = 0; i < ancestors; i++)
        entries += t->services[sc->order[i]].entry;
    size_t most = entries < REACH_LANES ? entries : REACH_LANES;
    sc->p = calloc(ancestors, most * sizeof(double));
    sc->inflow = calloc(ancestors, most * sizeof(double));
    if (!sc->p || !sc->inflow)
        return CN_ENOMEM;
    sc->unit[REACH_LANES - 1] = 1;
    size_t held[REACH_LANES], count = 0, at = sc->at[target];
    for (size_t i = 0; i < ancestors; i++) {
        if (t->services[sc->order[i]].entry) {
            held[count] = i;
            sc->pin[i] = (unsigned char)++count;
        }
        if (count == REACH_LANES || (i == ancestors - 1 && count)) {
            sc->lanes = count;
            evaluate(sc);
            for (size_t l = 0; l < count; l++) {
                *total += t->services[sc->order[held[l]]].traffic * sc->p[at * count + l];
                sc->pin[held[l]] = 0;
            }
            count = 0;
        }
    }
    return CN_OK;
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
        .weight = calloc(m + 1, 1),
        .order = calloc(n, sizeof(size_t)),
        .start = calloc(n + 1, sizeof(size_t)),
        .group = calloc(n, sizeof(size_t)),
        .num = calloc(n, sizeof(size_t)),
        .low = calloc(n, sizeof(size_t)),
        .stack = calloc(n, sizeof(size_t)),
        .path = calloc(n, sizeof(size_t)),
        .next = calloc(n, sizeof(size_t)),
        .roots = calloc(n, sizeof(size_t)),
        .ends = calloc(n, sizeof(size_t)),
        .todo_lo = calloc(n, sizeof(size_t)),
        .todo_hi = calloc(n, sizeof(size_t)),
        .todo_drop = calloc(n, sizeof(int)),
        .at = calloc(n, sizeof(size_t)),
        .first_at = calloc(n + 1, sizeof(size_t)),
        .split_at = calloc(n, sizeof(size_t)),
        .from = calloc(m + 1, sizeof(size_t)),
        .share = calloc(m + 1, sizeof(double)),
        .reached = calloc(n, sizeof(uint32_t)),
        .pin = calloc(n, 1),
    };
    int rc = CN_ENOMEM;
    double total = 0;
    if (!sc.first || !sc.caller || !sc.fraction || !sc.weight || !sc.order ||
        !sc.start || !sc.group || !sc.num || !sc.low || !sc.stack || !sc.path ||
        !sc.next || !sc.roots || !sc.ends || !sc.todo_lo || !sc.todo_hi ||
        !sc.todo_drop || !sc.at || !sc.first_at || !sc.split_at || !sc.from ||
        !sc.share || !sc.reached || !sc.pin)
        goto out;
    rc = sum_over_entries(t, &sc, index, &total);
    if (rc == CN_OK)
        *reach = total > 1 ? 1 : total;
out:
    free(sc.first);
    free(sc.caller);
    free(sc.fraction);
    free(sc.weight);
    free(sc.order);
    free(sc.start);
    free(sc.group);
    free(sc.num);
    free(sc.low);
    free(sc.stack);
    free(sc.path);
    free(sc.next);
    free(sc.roots);
    free(sc.ends);
    free(sc.todo_lo);
    free(sc.todo_hi);
    free(sc.todo_drop);
    free(sc.at);
    free(sc.first_at);
    free(sc.split_at);
    free(sc.from);
    free(sc.share);
    free(sc.p);
    free(sc.inflow);
    free(sc.reached);
    free(sc.pin);
    return rc;
}
