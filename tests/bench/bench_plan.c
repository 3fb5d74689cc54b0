/* make bench: how long planning and validation take at scale. Figures for
 * docs/benchmarks.md, never assertions: machines differ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "canary/diag.h"
#include "canary/plan.h"
#include "canary/policy.h"
#include "canary/topology.h"

#define SERVICES 10000
#define ENTRIES 20
#define POLICIES 1000
#define ROUNDS 5

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A layered graph: entries call the first layer, each service calls three
 * services of the next layer with fractions, and a few edges point back
 * up to make cycles. Deterministic (fixed seed). */
static int write_topology(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    srand(42);
    fprintf(f, "services:\n");
    for (int i = 0; i < SERVICES; i++) {
        fprintf(f, "  s%05d:\n", i);
        if (i < ENTRIES)
            fprintf(f, "    traffic: %g%%\n", 100.0 / ENTRIES);
        fprintf(f, "    tier: %d\n    fleet: {unit: host, count: %d}\n", i % 4, 10 + i % 500);
        int layer_start = i < ENTRIES ? ENTRIES : i + 1;
        if (layer_start >= SERVICES)
            continue;
        fprintf(f, "    depends_on: {");
        int chosen[3], n = 0;
        for (int k = 0; k < 3; k++) {
            int to = layer_start + rand() % 50;
            if (to >= SERVICES || to == i)
                to = (i + 1 + k) % SERVICES == i ? 0 : (i + 1 + k) % SERVICES;
            double fraction = 0.1 + (rand() % 90) / 100.0;
            int dup = 0;
            for (int j = 0; j < n; j++)
                dup |= chosen[j] == to; /* listing a dependency twice is an error */
            if (dup)
                continue;
            chosen[n++] = to;
            fprintf(f, "%ss%05d: %g", n > 1 ? ", " : "", to, fraction);
        }
        if (i % 97 == 0 && i > ENTRIES)
            fprintf(f, ", s%05d: 0.01", ENTRIES + rand() % (i - ENTRIES)); /* a cycle */
        fprintf(f, "}\n");
    }
    return fclose(f);
}

static int write_policies(const char *dir)
{
    for (int i = 0; i < POLICIES; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/p%04d.yaml", dir, i);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fprintf(f,
                "name: policy-%d\n"
                "match: {services: [\"svc-%d-*\"], tiers: [%d]}\n"
                "plan: {first_stage_impact: 0.1%%, growth: 4, max_stages: 10, bake: 2m, min_samples: 3}\n"
                "risk:\n  tier: {0: 4, 1: 2, 2: 1, 3: 0.5}\n  kinds: {config: 1.5, migration: 3}\n"
                "ai_assisted: {risk: 2, bake_factor: 2, approval: {above_weight: 25%%, role: senior}}\n"
                "analysis:\n  interval: 30s\n  metrics:\n"
                "    - name: error-rate\n"
                "      prometheus: {address: \"http://127.0.0.1:9090\", query: 'sum(rate(errors{version=\"{{version}}\"}[1m]))'}\n"
                "      threshold: {max: 1%%}\n"
                "actuator: {exec: [\"examples/actuators/set-weight.sh\"], timeout: 30s, retries: 3}\n",
                i, i, i % 4);
        fclose(f);
    }
    return 0;
}

static double best_of(double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return b;
}

int main(void)
{
    char dir[] = "/tmp/canary-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char topo[600];
    snprintf(topo, sizeof topo, "%s/topology.yaml", dir);
    if (write_topology(topo) || write_policies(dir))
        return 1;

    double load[ROUNDS], reach_ms[ROUNDS], plan_ms[ROUNDS], validate[ROUNDS];
    double reach = 0;
    size_t stages = 0;
    for (int r = 0; r < ROUNDS; r++) {
        cn_diags d;
        cn_diags_init(&d);
        cn_topology t;
        double t0 = now_ms();
        if (cn_topology_load(&t, topo, &d)) {
            cn_diags_print(&d, stderr);
            return 1;
        }
        double t1 = now_ms();
        long idx = cn_topology_find(&t, "s05000");
        if (idx < 0 || cn_topology_reach(&t, (size_t)idx, &reach))
            return 1;
        double t2 = now_ms();
        cn_policy p;
        cn_policy_defaults(&p);
        cn_plan plan;
        char err[256];
        cn_plan_input in = {.policy = &p, .reach = reach, .tier = t.services[idx].tier,
                            .fleet_count = t.services[idx].fleet_count, .diff_lines = 420};
        if (cn_plan_compute(&in, &plan, err, sizeof err))
            return 1;
        stages = plan.stage_count;
        double t3 = now_ms();
        load[r] = t1 - t0;
        reach_ms[r] = t2 - t1;
        plan_ms[r] = t3 - t2;
        cn_policy_free(&p);
        cn_topology_free(&t);

        double v0 = now_ms();
        for (int i = 0; i < POLICIES; i++) {
            char path[600];
            snprintf(path, sizeof path, "%s/p%04d.yaml", dir, i);
            cn_policy pol;
            if (cn_policy_load(&pol, path, &d)) {
                cn_diags_print(&d, stderr);
                return 1;
            }
            cn_policy_free(&pol);
        }
        validate[r] = now_ms() - v0;
        cn_diags_free(&d);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench plan: %d services: load %.2f ms, reach %.3f ms (reach %.4g), "
           "plan %.4f ms (%zu stages); best of %d\n",
           SERVICES, best_of(load, ROUNDS), best_of(reach_ms, ROUNDS), reach,
           best_of(plan_ms, ROUNDS), stages, ROUNDS);
    printf("bench plan: total load+reach+plan %.2f ms\n",
           best_of(load, ROUNDS) + best_of(reach_ms, ROUNDS) + best_of(plan_ms, ROUNDS));
    printf("bench validate: %d policies loaded and checked in %.2f ms (%.3f ms each); "
           "best of %d\n",
           POLICIES, best_of(validate, ROUNDS), best_of(validate, ROUNDS) / POLICIES, ROUNDS);
    printf("bench: peak resident memory %ld KiB\n", ru.ru_maxrss);
    for (int i = 0; i < POLICIES; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/p%04d.yaml", dir, i);
        unlink(path);
    }
    unlink(topo);
    rmdir(dir);
    return 0;
}
