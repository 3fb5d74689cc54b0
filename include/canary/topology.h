/*
 * topology.h: the service graph, and the reach of a service through it.
 *
 * Contract: cn_topology_load() reads a topology file; every problem
 * (unknown service in depends_on, bad fraction, traffic over 100%, ...) is
 * reported at its FILE:LINE:COLUMN and the result is CN_EINVAL. Memory
 * lives in topo->arena; free with cn_topology_free() in every case.
 *
 * Reach (docs/blast-radius.md): the fraction of all user requests that
 * touch a service. Entry services carry `traffic`; edges carry the fraction
 * of a caller's requests that call the dependency (a plain list means 1).
 *   reach(S) = sum over entries E of traffic(E) * p_E(S)
 *   p_E(E) = 1,  p_E(S) = min(1, sum over callers C of p_E(C) * f(C->S))
 * Cycles are resolved by iterating to the fixed point from above: every p
 * starts at 1 and only falls, so stopping early overstates reach, never
 * understates it. Over the services an entry reaches the fixed point is
 * unique, so it is the least one defined here.
 * cn_topology_reach() is pure and allocates only scratch memory.
 */
#ifndef CANARY_TOPOLOGY_H
#define CANARY_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/doc.h"

typedef struct cn_edge {
    size_t to;       /* index into services */
    double fraction; /* 0 < f <= 1 */
} cn_edge;

typedef struct cn_service {
    const char *name;
    bool entry;
    double traffic;         /* share of all user requests; entries only */
    int tier;               /* -1 when not given */
    const char *fleet_unit; /* "host", "cell", ...; NULL when not given */
    uint64_t fleet_count;   /* 0 when not given */
    cn_edge *deps;
    size_t dep_count;
    unsigned line, col;
} cn_service;

typedef struct cn_topology {
    const char *file;
    cn_service *services;
    size_t count;
    size_t *by_name; /* indexes sorted by name, for cn_topology_find */
    cn_arena arena;
} cn_topology;

int cn_topology_load(cn_topology *t, const char *path, cn_diags *diags);
int cn_topology_load_doc(cn_topology *t, const cn_doc *doc, cn_diags *diags);
void cn_topology_free(cn_topology *t);

/* Index of the named service, or -1. O(log n). */
long cn_topology_find(const cn_topology *t, const char *name);

/* Computes reach of services[index] into *reach (0..1). Returns CN_OK,
 * CN_EINVAL when index >= t->count, or CN_ENOMEM. */
int cn_topology_reach(const cn_topology *t, size_t index, double *reach);

#endif
