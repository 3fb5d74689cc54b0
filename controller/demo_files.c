#include "demo_files.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canary/status.h"

static const char *const FILES[] = {
    CN_DEMO_POLICY, CN_DEMO_TOPOLOGY, CN_DEMO_HUMAN_CHANGE, CN_DEMO_AI_CHANGE, CN_DEMO_STATE,
    CN_DEMO_STATE "-wal", CN_DEMO_STATE "-shm", CN_DEMO_STATE "-journal"};

static const char TOPOLOGY[] =
    "# The demo's service graph: 44% of all user requests touch checkout.\n"
    "services:\n"
    "  web:      {traffic: 70%, depends_on: {checkout: 0.2, search: 0.6}}\n"
    "  mobile:   {traffic: 30%, depends_on: [checkout]}\n"
    "  checkout: {tier: 1, fleet: {unit: host, count: 200}, depends_on: [payments]}\n"
    "  payments: {tier: 0, fleet: {unit: cell, count: 12}}\n"
    "  search:   {tier: 2, fleet: {unit: host, count: 40}}\n";

static const char HUMAN_CHANGE[] =
    "id: checkout-v2.14.0\nservice: " CN_DEMO_SERVICE "\nversion: v2.14.0\n"
    "previous_version: " CN_DEMO_STABLE "\nauthor: alice\nai_assisted: false\n"
    "diff: {files: 4, lines: 120, kinds: [code]}\n";

/* It ships after the human change, so v2.14.0 is what it replaces. */
static const char AI_CHANGE[] =
    "id: checkout-v2.15.0\nservice: " CN_DEMO_SERVICE "\nversion: " CN_DEMO_FAULTY "\n"
    "previous_version: v2.14.0\nauthor: alice\nai_assisted: true\n"
    "diff: {files: 4, lines: 120, kinds: [code]}\n";

/* One policy for both changes: the change file says which is AI-assisted.
 * The whole demo must stay near 30 s: 1s polls, 5s bakes, and the AI gate
 * lies beyond the stage where the fault is caught. Arguments: the bake,
 * then the port three times. */
static const char POLICY[] =
    "# Written by `canary demo` for its simulated service.\n"
    "name: demo\n"
    "match: {services: [\"*\"]}\n"
    "plan: {first_stage_impact: 1%%, growth: 3, max_stages: 8, bake: %s, min_samples: 2}\n"
    "risk: {tier: {0: 2, 1: 1.5, 2: 1}, per_1000_lines: 0.5}\n"
    "ai_assisted:\n"
    "  risk: 3\n"
    "  bake_factor: 2\n"
    "  approval: {above_weight: 5%%, role: senior}\n"
    "  analysis: {failure_limit: 0}\n"
    "analysis:\n"
    "  interval: 1s\n"
    "  timeout: 900ms\n"
    "  failure_limit: 1\n"
    "  consecutive_error_limit: 3\n"
    "  max_bake: 30s\n"
    "  metrics:\n"
    "    - name: error-rate\n"
    "      prometheus:\n"
    "        address: \"http://127.0.0.1:%d\"\n"
    "        query: >-\n"
    "          sum(rate(http_requests_total{service=\"{{service}}\",version=\"{{version}}\","
    "code=~\"5..\"}[1m]))\n"
    "          / sum(rate(http_requests_total{service=\"{{service}}\",version=\"{{version}}\"}"
    "[1m]))\n"
    "      threshold: {max: 1%%}\n"
    "      baseline: {max_increase: 20%%, slack: 0.001}\n"
    "    - name: p99-latency-ms\n"
    "      prometheus:\n"
    "        address: \"http://127.0.0.1:%d\"\n"
    "        query: >-\n"
    "          1000 * histogram_quantile(0.99, sum by (le)\n"
    "          (rate(http_request_duration_seconds_bucket{service=\"{{service}}\","
    "version=\"{{version}}\"}[1m])))\n"
    "      threshold: {max: 250}\n"
    "actuator:\n"
    "  http: {url: \"http://127.0.0.1:%d/actuate\"}\n"
    "  timeout: 2s\n"
    "  retries: 2\n"
    "  backoff: 200ms\n";

static int write_file(const char *dir, const char *name, char *err, size_t errlen,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int write_file(const char *dir, const char *name, char *err, size_t errlen,
                      const char *fmt, ...)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return CN_EIO;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    if (fclose(f) != 0 || n < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return CN_EIO;
    }
    return CN_OK;
}

int cn_demo_write_inputs(const char *dir, int port, bool fast, char *err, size_t errlen)
{
    if (write_file(dir, CN_DEMO_TOPOLOGY, err, errlen, "%s", TOPOLOGY) ||
        write_file(dir, CN_DEMO_HUMAN_CHANGE, err, errlen, "%s", HUMAN_CHANGE) ||
        write_file(dir, CN_DEMO_AI_CHANGE, err, errlen, "%s", AI_CHANGE) ||
        write_file(dir, CN_DEMO_POLICY, err, errlen, POLICY, fast ? "2500ms" : "5s", port,
                   port, port))
        return CN_EIO;
    return CN_OK;
}

int cn_demo_dir_make(char *dir, size_t len, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/canary-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot create a directory like %s: %s (set TMPDIR to a "
                 "writable directory)", dir, strerror(errno));
        return CN_EIO;
    }
    return CN_OK;
}

int cn_demo_dir_remove(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int rc = CN_OK;
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i]);
        if (unlink(path) != 0 && errno != ENOENT && rc == CN_OK) {
            snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
            rc = CN_EIO;
        }
    }
    if (rmdir(dir) != 0 && rc == CN_OK) {
        snprintf(err, errlen, "cannot remove %s: %s", dir, strerror(errno));
        rc = CN_EIO;
    }
    return rc;
}
