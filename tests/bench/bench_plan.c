/* make bench: how long planning and validation take at scale, in the
 * library and as the commands a pipeline runs. Figures for
 * docs/benchmarks.md, never assertions: machines differ. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A layered graph: entries call the first layer, each service calls up to
 * three services of the next layers with fractions, and some edges point
 * back up to make cycles. Deterministic (fixed seed). */
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
            if (to >= SERVICES)
                to = SERVICES - 1;
            double fraction = 0.1 + (rand() % 50) / 100.0;
            int dup = to == i;
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

static int write_policy(const char *dir, int i)
{
    char path[800];
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
    return fclose(f);
}

/* Wall time of one run of the real binary, output discarded; -1 when it
 * fails. This is what a pipeline waits for. */
static double time_command(const char *const *argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    double t0 = now_ms();
    pid_t pid;
    int status = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0)
        waitpid(pid, &status, 0);
    double t = now_ms() - t0;
    posix_spawn_file_actions_destroy(&fa);
    return status == 0 ? t : -1;
}

static double best_of(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return b;
}

static void cleanup(const char *dir, const char *pdir)
{
    char path[800];
    for (int i = 0; i < POLICIES; i++) {
        snprintf(path, sizeof path, "%s/p%04d.yaml", pdir, i);
        unlink(path);
    }
    rmdir(pdir);
    snprintf(path, sizeof path, "%s/topology.yaml", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/change.yaml", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    char dir[] = "/tmp/canary-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char topo[600], pdir[600], change[600], policy[700];
    snprintf(topo, sizeof topo, "%s/topology.yaml", dir);
    snprintf(pdir, sizeof pdir, "%s/policies", dir);
    snprintf(change, sizeof change, "%s/change.yaml", dir);
    snprintf(policy, sizeof policy, "%s/p0000.yaml", pdir);
    int failed = mkdir(pdir, 0700) || write_topology(topo);
    for (int i = 0; !failed && i < POLICIES; i++)
        failed = write_policy(pdir, i);
    FILE *cf = failed ? NULL : fopen(change, "w");
    if (!cf) {
        cleanup(dir, pdir);
        return 1;
    }
    fprintf(cf, "service: s00100\nversion: v2\nprevious_version: v1\n"
                "diff: {files: 3, lines: 420, kinds: [code]}\n");
    fclose(cf);

    double load[ROUNDS], reach_ms[ROUNDS], plan_ms[ROUNDS], validate[ROUNDS];
    double cli_plan[ROUNDS], cli_validate[ROUNDS];
    double reach = 0;
    size_t stages = 0;
    const char *bin = getenv("CANARY_BIN");
    for (int r = 0; r < ROUNDS && !failed; r++) {
        cn_diags d;
        cn_diags_init(&d);
        cn_topology t;
        double t0 = now_ms();
        failed = cn_topology_load(&t, topo, &d) != 0;
        double t1 = now_ms();
        long idx = failed ? -1 : cn_topology_find(&t, "s00100");
        failed = idx < 0 || cn_topology_reach(&t, (size_t)idx, &reach);
        double t2 = now_ms();
        cn_policy p;
        cn_policy_defaults(&p);
        cn_plan plan;
        char err[256];
        if (!failed) {
            cn_plan_input in = {.policy = &p, .reach = reach, .tier = t.services[idx].tier,
                                .fleet_count = t.services[idx].fleet_count,
                                .diff_lines = 420};
            failed = cn_plan_compute(&in, &plan, err, sizeof err) != 0;
            stages = plan.stage_count;
        }
        double t3 = now_ms();
        load[r] = t1 - t0;
        reach_ms[r] = t2 - t1;
        plan_ms[r] = t3 - t2;
        cn_policy_free(&p);
        cn_topology_free(&t);

        double v0 = now_ms();
        cn_policy_set set;
        failed |= cn_policy_set_load_dir(&set, pdir, &d) != 0;
        validate[r] = now_ms() - v0;
        cn_policy_set_free(&set);
        if (failed)
            cn_diags_print(&d, stderr);
        cn_diags_free(&d);

        if (bin) {
            const char *plan_argv[] = {bin, "plan", "--change", change, "--topology", topo,
                                       "--policy", policy, "-o", "json", NULL};
            const char *validate_argv[] = {bin, "validate", pdir, NULL};
            cli_plan[r] = time_command(plan_argv);
            cli_validate[r] = time_command(validate_argv);
        }
    }
    if (failed) {
        cleanup(dir, pdir);
        fprintf(stderr, "bench: setup failed\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("library, best of %d:\n", ROUNDS);
    printf("  topology of %d services: load %.1f ms, reach %.2f ms (reach %.4g), "
           "plan %.3f ms (%zu stages)\n",
           SERVICES, best_of(load, ROUNDS), best_of(reach_ms, ROUNDS), reach,
           best_of(plan_ms, ROUNDS), stages);
    printf("  %d policies loaded and checked: %.1f ms (%.3f ms each)\n", POLICIES,
           best_of(validate, ROUNDS), best_of(validate, ROUNDS) / POLICIES);
    printf("  peak resident memory of the bench: %ld KiB\n", ru.ru_maxrss);
    if (bin) {
        printf("commands (%s), best of %d:\n", bin, ROUNDS);
        printf("  canary plan over %d services: %.1f ms\n", SERVICES, best_of(cli_plan, ROUNDS));
        printf("  canary validate of %d policies: %.1f ms\n", POLICIES,
               best_of(cli_validate, ROUNDS));
    }
    cleanup(dir, pdir);
    return 0;
}
