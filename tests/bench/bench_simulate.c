/* make bench: how long `canary simulate` takes for a day-long rollout (24
 * stages of 1 h bakes, polled every 10 s, 8,640 polls) against a day of
 * trace, in the library and as the command: with two threshold metrics
 * and min_requests (a row a minute per series); with a burn-rate metric
 * (the workbook's pairs, a row a minute); with a judged metric (a sample
 * every 10 s over the stage so far, a noisy row every 10 s). Figures for
 * docs/benchmarks.md, never assertions: machines differ. */
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "canary/diag.h"
#include "canary/planning.h"
#include "canary/simulate.h"

#define STAGES 24
#define ROUNDS 5

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double best_of(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return b;
}

typedef enum { THRESHOLDS, BURN_RATE, JUDGED } kind;

static const char *const KIND_NAMES[] = {"2 threshold metrics + min_requests",
                                         "a burn-rate metric (the workbook's 2 pairs)",
                                         "a judged metric (a sample every 10 s)"};

static const char *metrics_of(kind k)
{
    switch (k) {
    case BURN_RATE:
        return "  metrics:\n"
               "    - name: error-rate\n"
               "      burn_rate:\n"
               "        slo: 99.5%\n"
               "        errors: 'e[{{window}}]'\n"
               "        total: 't[{{window}}]'\n"
               "        prometheus: {address: \"http://127.0.0.1:9\"}\n";
    case JUDGED:
        return "  metrics:\n"
               "    - name: p99-ms\n"
               "      prometheus: {address: \"http://127.0.0.1:9\", query: 'p99'}\n"
               "      judge:\n"
               "        mann_whitney: {direction: increase, allowed_increase: 1.1}\n";
    case THRESHOLDS:
        break;
    }
    return "  min_requests:\n    count: 100\n"
           "    prometheus: {address: \"http://127.0.0.1:9\", query: 'requests'}\n"
           "  metrics:\n"
           "    - name: error-rate\n"
           "      prometheus: {address: \"http://127.0.0.1:9\", query: 'errors'}\n"
           "      threshold: {max: 1%}\n"
           "      baseline: {max_increase: 50%, slack: 0.001}\n"
           "    - name: p99-ms\n"
           "      prometheus: {address: \"http://127.0.0.1:9\", query: 'p99'}\n"
           "      threshold: {max: 400}\n";
}

/* How many trace rows write_inputs writes. */
static int trace_rows(kind k)
{
    return k == THRESHOLDS ? 3 * (26 * 60 + 1) : k == BURN_RATE ? 26 * 60 + 1 : 26 * 360 + 1;
}

static int write_inputs(kind k, const char *policy, const char *change, const char *trace)
{
    FILE *f = fopen(policy, "w");
    if (!f)
        return -1;
    fprintf(f, "name: day\nplan:\n  bake: 1h\n  min_samples: 3\n  steps: [");
    for (int i = 1; i <= STAGES; i++)
        fprintf(f, "%s%.4g%%", i > 1 ? ", " : "", 100.0 * i * i / (STAGES * STAGES));
    fprintf(f, "]\nanalysis:\n  interval: 10s\n  timeout: 5s\n");
    fputs(metrics_of(k), f);
    fprintf(f, "actuator: {exec: [\"true\"]}\n");
    if (fclose(f))
        return -1;
    if (!(f = fopen(change, "w")))
        return -1;
    fprintf(f, "service: shop\nversion: v2\nprevious_version: v1\nauthor: alice\n"
               "ai_assisted: false\n");
    if (fclose(f))
        return -1;
    if (!(f = fopen(trace, "w")))
        return -1;
    fprintf(f, "seconds,metric,value,baseline\n");
    for (int m = 0; k != JUDGED && m <= 26 * 60; m++) {
        double wave = sin(m / 30.0);
        fprintf(f, "%d,error-rate,%.5f,%.5f\n", m * 60, 0.002 + 0.0005 * wave, 0.002);
        if (k == BURN_RATE)
            continue;
        fprintf(f, "%d,p99-ms,%.1f,\n", m * 60, 180 + 20 * wave);
        fprintf(f, "%d,requests,%d,\n", m * 60, 5000 + m);
    }
    /* noise of +-4% on both sides, the same every run */
    unsigned x = 1;
    for (int s = 0; k == JUDGED && s <= 26 * 360; s++) {
        double v[2];
        for (int i = 0; i < 2; i++) {
            x = x * 1103515245u + 12345u;
            v[i] = 180 * (0.96 + 0.08 * (double)((x >> 8) % 10000) / 10000);
        }
        fprintf(f, "%d,p99-ms,%.1f,%.1f\n", s * 10, v[0], v[1]);
    }
    return fclose(f);
}

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

static int bench(kind k)
{
    char dir[] = "/tmp/canary-bench-sim-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char policy[600], change[600], trace[600];
    snprintf(policy, sizeof policy, "%s/policy.yaml", dir);
    snprintf(change, sizeof change, "%s/change.yaml", dir);
    snprintf(trace, sizeof trace, "%s/trace.csv", dir);
    int failed = write_inputs(k, policy, change, trace);

    cn_diags d;
    cn_diags_init(&d);
    cn_planning pl;
    cn_planning_options opt = {.change_path = change, .policy_path = policy};
    failed |= cn_planning_run(&pl, &opt, &d) != 0;
    double parse[ROUNDS], run[ROUNDS], cli[ROUNDS], cli_text[ROUNDS];
    cn_sim_result res;
    memset(&res, 0, sizeof res);
    const char *bin = getenv("CANARY_BIN");
    for (int r = 0; r < ROUNDS && !failed; r++) {
        cn_trace t;
        double t0 = now_ms();
        failed = cn_trace_load(&t, trace, &d) != 0 || cn_trace_bind(&t, pl.policy, &d) != 0;
        double t1 = now_ms();
        cn_sim_config cfg = {.plan = &pl.plan, .policy = pl.policy, .author = "alice",
                             .reach = 1, .trace = &t, .hold_ms = -1};
        char err[256] = "";
        cn_sim_result_free(&res);
        failed = failed || cn_simulate(&cfg, &res, err, sizeof err) != 0;
        double t2 = now_ms();
        parse[r] = t1 - t0;
        run[r] = t2 - t1;
        cn_trace_free(&t);
        if (bin) {
            const char *argv[] = {bin, "simulate", "--change", change, "--policy", policy,
                                  "--trace", trace, "-o", "json", NULL};
            cli[r] = time_command(argv);
            const char *text_argv[] = {bin, "simulate", "--change", change, "--policy", policy,
                                       "--trace", trace, "--decisions", NULL};
            cli_text[r] = time_command(text_argv);
        }
    }
    if (failed)
        cn_diags_print(&d, stderr);
    else {
        printf("simulate: a day-long rollout (%zu stages x 1h bake, 10s interval, %s), "
               "best of %d:\n", pl.plan.stage_count, KIND_NAMES[k], ROUNDS);
        printf("  outcome %s after %.1f h, %zu events, %zu samples\n",
               cn_sim_outcome(&res), res.duration_ms / 3.6e6, res.event_count,
               res.sample_count);
        printf("  library: trace of %d rows parsed in %.2f ms; simulation %.2f ms\n",
               trace_rows(k), best_of(parse, ROUNDS), best_of(run, ROUNDS));
        if (bin)
            printf("  whole process: canary simulate -o json %.1f ms, --decisions (text) "
                   "%.1f ms\n", best_of(cli, ROUNDS), best_of(cli_text, ROUNDS));
    }
    cn_sim_result_free(&res);
    cn_planning_free(&pl);
    cn_diags_free(&d);
    unlink(policy);
    unlink(change);
    unlink(trace);
    rmdir(dir);
    return failed;
}

int main(void)
{
    int failed = 0;
    for (kind k = THRESHOLDS; k <= JUDGED; k++)
        failed |= bench(k);
    return failed;
}
