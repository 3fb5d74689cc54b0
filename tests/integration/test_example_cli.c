/* The nginx + Prometheus example's own programs, without nginx or
 * Prometheus (tests/e2e runs them with both): the service's replies, its
 * even error spread, its exposition and histogram, latency added without
 * blocking; the load generator's rate, counts by version and status, its
 * retry of failed connections and its JSON; both programs' argument errors.
 * The binaries come from $CANARY_EXAMPLES_DIR (make check sets it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "server.h"

#define WAIT_MS 5000

extern char **environ;

typedef struct fx {
    char *dir;
    pid_t pid;
    int port;
    char ports[4096];
} fx;

static const char *bin(const char *name)
{
    static char path[2][4096];
    static int k;
    char *p = path[k++ % 2];
    const char *dir = getenv("CANARY_EXAMPLES_DIR");
    if (dir)
        snprintf(p, sizeof path[0], "%s/%s", dir, name);
    else
        snprintf(p, sizeof path[0], "%s/%s", cn_test_src("build/examples"), name);
    return p;
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    x->dir = cn_test_tmpdir();
    *state = x;
    return x->dir ? 0 : -1;
}

/* Runs after a failed assertion too, so no service outlives its test. */
static int teardown(void **state)
{
    fx *x = *state;
    int rc = 0;
    if (x->pid > 0 && cn_test_server_stop(x->pid) != 0)
        rc = -1;
    if (x->dir)
        cn_test_rmtree(x->dir);
    free(x->dir);
    free(x);
    return rc;
}

/* The service with extra flags (NULL-terminated), on a free port. */
static void start_service(fx *x, const char *version, ...)
{
    snprintf(x->ports, sizeof x->ports, "%s/port", x->dir);
    const char *argv[16] = {bin("service"), "--port", "0", "--port-file", x->ports,
                            "--version", version};
    size_t n = 7;
    va_list ap;
    va_start(ap, version);
    for (const char *a; n < 15 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    x->pid = cn_test_server_start(argv, x->ports, &x->port);
    assert_true(x->pid > 0);
}

/* SIGTERM ends the service with status 0 (under ASan: without a leak). */
static void stop_service(fx *x)
{
    int code = cn_test_server_stop(x->pid);
    x->pid = 0;
    assert_int_equal(code, 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n = f ? fread(buf, 1, 65535, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs a program (argv[0] a path) with stdout and stderr to files in dir;
 * returns its exit code, 128 + signal, or -1. Killed after 20 s. */
static int run(const fx *x, const char *const *argv, char **out, char **err)
{
    char out_path[4200], err_path[4200];
    snprintf(out_path, sizeof out_path, "%s/stdout", x->dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", x->dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 2000 && (done = waitpid(pid, &status, WNOHANG)) == 0; i++) {
        struct timespec t = {0, 10 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    *out = slurp(out_path);
    *err = slurp(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The value of the sample line "name value" in an exposition; -1 when absent. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static void get(const fx *x, const char *target, cn_test_reply *r)
{
    assert_int_equal(cn_test_get(x->port, target, WAIT_MS, r), 0);
}

static char *metrics(const fx *x)
{
    cn_test_reply r;
    get(x, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4"));
    char *text = strdup(r.body);
    cn_test_reply_free(&r);
    return text;
}

/* ---- the service ----------------------------------------------------------- */

/* Before any request the 200 and 500 series exist at 0, as does the
 * histogram, so a version without traffic has a rate of 0, not no series. */
static void test_service_starts_with_zero_series(void **state)
{
    fx *x = *state;
    start_service(x, "v1", NULL);
    char *m = metrics(x);
    assert_true(sample(m, "http_requests_total{version=\"v1\",code=\"200\"}") == 0);
    assert_true(sample(m, "http_requests_total{version=\"v1\",code=\"500\"}") == 0);
    assert_true(sample(m, "http_requests_total{version=\"v1\",code=\"404\"}") == -1);
    assert_true(sample(m, "http_request_duration_seconds_bucket{version=\"v1\",le=\"+Inf\"}") == 0);
    assert_true(sample(m, "http_request_duration_seconds_count{version=\"v1\"}") == 0);
    assert_non_null(strstr(m, "# TYPE http_requests_total counter\n"));
    assert_non_null(strstr(m, "# TYPE http_request_duration_seconds histogram\n"));
    free(m);
    stop_service(x);
}

/* --error-ratio 0.25 fails exactly requests 4 and 8 of 8; each reply names
 * the version in its body and header; other paths and methods are counted
 * under their codes; scrapes are not counted. */
static void test_service_spreads_errors_evenly(void **state)
{
    fx *x = *state;
    start_service(x, "v3", "--error-ratio", "0.25", NULL);
    const int want[] = {200, 200, 200, 500, 200, 200, 200, 500};
    for (size_t i = 0; i < 8; i++) {
        cn_test_reply r;
        get(x, "/?user=7", &r);
        assert_int_equal(r.status, want[i]);
        assert_string_equal(r.body, want[i] == 200 ? "v3 200\n" : "v3 500\n");
        assert_non_null(strstr(r.head, "X-Version: v3\r\n"));
        assert_non_null(strstr(r.head, "Connection: close\r\n"));
        cn_test_reply_free(&r);
    }
    cn_test_reply r;
    get(x, "/nope", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "v3 404\n");
    cn_test_reply_free(&r);
    assert_int_equal(cn_test_http(x->port, "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", WAIT_MS, &r),
                     0);
    assert_int_equal(r.status, 405);
    cn_test_reply_free(&r);
    assert_int_equal(cn_test_http(x->port, "NOT HTTP\r\n\r\n", WAIT_MS, &r), 0);
    assert_int_equal(r.status, 400);
    cn_test_reply_free(&r);
    free(metrics(x));
    char *m = metrics(x);
    assert_true(sample(m, "http_requests_total{version=\"v3\",code=\"200\"}") == 6);
    assert_true(sample(m, "http_requests_total{version=\"v3\",code=\"500\"}") == 2);
    assert_true(sample(m, "http_requests_total{version=\"v3\",code=\"404\"}") == 1);
    assert_true(sample(m, "http_requests_total{version=\"v3\",code=\"405\"}") == 1);
    assert_true(sample(m, "http_request_duration_seconds_count{version=\"v3\"}") == 10);
    /* Buckets are cumulative and end at the count. */
    const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                         "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
    double last = 0;
    for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
        char name[128];
        snprintf(name, sizeof name,
                 "http_request_duration_seconds_bucket{version=\"v3\",le=\"%s\"}", les[i]);
        double v = sample(m, name);
        assert_true(v >= last);
        last = v;
    }
    assert_true(last == 10);
    free(m);
    stop_service(x);
}

/* --added-latency-ms holds each reply on a timer: one request takes at
 * least the latency and lands in the histogram's right bucket, and 40
 * requests in 0.8 s all finish in about a second, not 40 x 200 ms. */
static void test_service_adds_latency_without_blocking(void **state)
{
    fx *x = *state;
    start_service(x, "v3", "--added-latency-ms", "200", NULL);
    double t0 = now_s();
    cn_test_reply r;
    get(x, "/", &r);
    double took = now_s() - t0;
    assert_int_equal(r.status, 200);
    cn_test_reply_free(&r);
    assert_true(took >= 0.2);
    char *m = metrics(x);
    assert_true(sample(m, "http_request_duration_seconds_bucket{version=\"v3\",le=\"0.1\"}") == 0);
    assert_true(sample(m, "http_request_duration_seconds_bucket{version=\"v3\",le=\"0.25\"}") == 1);
    assert_true(sample(m, "http_request_duration_seconds_sum{version=\"v3\"}") >= 0.2);
    free(m);

    char url[128], out_path[4200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", x->port);
    snprintf(out_path, sizeof out_path, "%s/counts.json", x->dir);
    const char *argv[] = {bin("loadgen"), "--url", url, "--rate", "50", "--duration", "0.8",
                          "--out", out_path, NULL};
    char *out, *err;
    t0 = now_s();
    assert_int_equal(run(x, argv, &out, &err), 0);
    took = now_s() - t0;
    assert_true(took < 2.0);
    char *json = slurp(out_path);
    long n = 0;
    assert_int_equal(sscanf(strstr(json, "\"requests\":"), "\"requests\":%ld", &n), 1);
    assert_true(n >= 34 && n <= 40);
    char want[128];
    snprintf(want, sizeof want, "\"by_version\":{\"v3\":{\"requests\":%ld,\"failed\":0}}", n);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"unfinished\":0"));
    free(json);
    free(out);
    free(err);
    stop_service(x);
}

/* The service refuses what it cannot serve, with exit 2 and a message. */
static void test_service_arguments(void **state)
{
    fx *x = *state;
    const struct {
        const char *argv[8];
        const char *message;
    } cases[] = {
        {{"--port", "0", "--version", "v1", "--error-ratio", "1.5"},
         "--error-ratio expects a number from 0 to 1, got '1.5'"},
        {{"--port", "0", "--version", "v1", "--added-latency-ms", "2.5"},
         "--added-latency-ms expects whole milliseconds from 0 to 600000, got '2.5'"},
        {{"--port", "0", "--version", "v 1"}, "--version must be 1 to 64 letters"},
        {{"--version", "v1"}, "usage: service --port PORT"},
        {{"--port", "0", "--version", "v1", "--color", "red"}, "usage: service"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[10] = {bin("service")};
        for (size_t k = 0; cases[i].argv[k]; k++)
            argv[k + 1] = cases[i].argv[k];
        char *out, *err;
        assert_int_equal(run(x, argv, &out, &err), 2);
        if (!strstr(err, cases[i].message))
            fail_msg("case %zu: want '%s' in: %s", i, cases[i].message, err);
        free(out);
        free(err);
    }
}

/* ---- the load generator ------------------------------------------------------- */

/* At 100 requests a second for 1 s: about 100 requests, all answered by
 * the service's version, the failures exactly the ones the service counted,
 * by status too; the summary line says the same. */
static void test_loadgen_counts_by_version(void **state)
{
    fx *x = *state;
    start_service(x, "v2", "--error-ratio", "0.1", NULL);
    char url[128], out_path[4200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", x->port);
    snprintf(out_path, sizeof out_path, "%s/counts.json", x->dir);
    const char *argv[] = {bin("loadgen"), "--url", url, "--rate", "100", "--duration", "1",
                          "--out", out_path, NULL};
    char *out, *err;
    assert_int_equal(run(x, argv, &out, &err), 0);
    char *json = slurp(out_path);
    char *m = metrics(x);
    double ok = sample(m, "http_requests_total{version=\"v2\",code=\"200\"}");
    double bad = sample(m, "http_requests_total{version=\"v2\",code=\"500\"}");
    free(m);
    long n = (long)(ok + bad);
    assert_true(n >= 90 && n <= 100); /* a late last tick sends a few less */
    assert_int_equal((long)bad, n / 10);
    char want[512];
    snprintf(want, sizeof want,
             "\"requests\":%ld,\"ok\":%ld,\"failed\":%ld,\"http_5xx\":%ld,"
             "\"transport_errors\":0,\"retried\":0,\"unfinished\":0,\"skipped\":0,"
             "\"by_version\":{\"v2\":{\"requests\":%ld,\"failed\":%ld}},"
             "\"by_status\":{\"200\":%ld,\"500\":%ld}}\n",
             n, (long)ok, (long)bad, (long)bad, n, (long)bad, (long)ok, (long)bad);
    if (!strstr(json, want))
        fail_msg("want %s in %s", want, json);
    assert_non_null(strstr(json, "{\"url\":\""));
    /* The seconds depend on when the last tick came. */
    snprintf(want, sizeof want, "loadgen: %ld requests in ", n);
    assert_memory_equal(out, want, strlen(want));
    snprintf(want, sizeof want, " s: v2 %ld (%ld failed); %ld failed in all (%ld HTTP 5xx, 0 "
             "transport errors); 0 retried\n", n, (long)bad, (long)bad, (long)bad);
    assert_non_null(strstr(out, want));
    free(json);
    free(out);
    free(err);
    stop_service(x);
}

/* Nothing listening: every request is sent twice (retried) and then counts
 * as a transport error under version "none". */
static void test_loadgen_retries_then_counts_transport_errors(void **state)
{
    fx *x = *state;
    char url[128], out_path[4200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", cn_test_closed_port());
    snprintf(out_path, sizeof out_path, "%s/counts.json", x->dir);
    const char *argv[] = {bin("loadgen"), "--url", url, "--rate", "20", "--duration", "0.5",
                          "--out", out_path, NULL};
    char *out, *err;
    assert_int_equal(run(x, argv, &out, &err), 0);
    char *json = slurp(out_path);
    long n = 0, failed = -1, transport = -1, retried = -1;
    const char *p = strstr(json, "\"requests\":");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "\"requests\":%ld", &n), 1);
    assert_non_null(strstr(json, "\"http_5xx\":0"));
    sscanf(strstr(json, "\"failed\":"), "\"failed\":%ld", &failed);
    sscanf(strstr(json, "\"transport_errors\":"), "\"transport_errors\":%ld", &transport);
    sscanf(strstr(json, "\"retried\":"), "\"retried\":%ld", &retried);
    assert_true(n >= 7 && n <= 10);
    assert_int_equal(failed, n);
    assert_int_equal(transport, n);
    assert_int_equal(retried, n);
    char want[128];
    snprintf(want, sizeof want, "\"by_version\":{\"none\":{\"requests\":%ld,\"failed\":%ld}}", n,
             n);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(err, "loadgen: sending a request again: connection refused"));
    free(json);
    free(out);
    free(err);
}

/* SIGTERM ends an open-ended run: the counts are still written. */
static void test_loadgen_stops_on_sigterm(void **state)
{
    fx *x = *state;
    start_service(x, "v1", NULL);
    char url[128], out_path[4200], log_path[4200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", x->port);
    snprintf(out_path, sizeof out_path, "%s/counts.json", x->dir);
    snprintf(log_path, sizeof log_path, "%s/loadgen.log", x->dir);
    const char *argv[] = {bin("loadgen"), "--url", url, "--rate", "50", "--out", out_path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    struct timespec t = {0, 500 * 1000 * 1000};
    nanosleep(&t, NULL);
    kill(pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *json = slurp(out_path);
    long n = 0;
    assert_int_equal(sscanf(strstr(json, "\"requests\":"), "\"requests\":%ld", &n), 1);
    assert_true(n >= 5 && n <= 30);
    assert_non_null(strstr(json, "\"failed\":0"));
    free(json);
    stop_service(x);
}

static void test_loadgen_arguments(void **state)
{
    fx *x = *state;
    const struct {
        const char *argv[6];
        const char *message;
    } cases[] = {
        {{"--rate", "100"}, "usage: loadgen --url URL"},
        {{"--url", "http://127.0.0.1:1/", "--rate", "0"},
         "--rate expects a number from 1 to 5000, got '0'"},
        {{"--url", "http://127.0.0.1:1/", "--duration", "-1"},
         "--duration expects a number from 0.1 to 86400, got '-1'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[8] = {bin("loadgen")};
        for (size_t k = 0; cases[i].argv[k]; k++)
            argv[k + 1] = cases[i].argv[k];
        char *out, *err;
        assert_int_equal(run(x, argv, &out, &err), 2);
        if (!strstr(err, cases[i].message))
            fail_msg("case %zu: want '%s' in: %s", i, cases[i].message, err);
        free(out);
        free(err);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_starts_with_zero_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_spreads_errors_evenly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_adds_latency_without_blocking, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loadgen_counts_by_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loadgen_retries_then_counts_transport_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loadgen_stops_on_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loadgen_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
