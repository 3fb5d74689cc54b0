/* make bench: 1,000 concurrent rollouts in one process (1,000 engines on
 * one loop, one http client, one store) against the fake metrics server
 * (another process), which also serves the http actuator. One metric
 * polled every second; every tenth rollout ("bad-N") reads a failing value
 * and rolls back. Starts are spread over one interval. Prints:
 *  (a) decision latency, from a failing reading to the start of the
 *      rollback call (its actuator_call record stored);
 *  (b) CPU per metric poll over a fixed window, and the same for a bare
 *      libcurl multi loop doing the same GETs on the same schedule; with
 *      the store on /dev/shm, then on /tmp (durable commits on a disk);
 *  (c) resident memory per rollout.
 * Figures for docs/benchmarks.md, never assertions: machines differ. */
#include <curl/curl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "canary/engine.h"
#include "canary/http_client.h"
#include "canary/status.h"
#include "canary/store.h"
#include "server.h"

#define ROLLOUTS 1000
#define BAD_EVERY 10         /* rollout i is bad when i % BAD_EVERY == 3 */
#define INTERVAL_MS 1000
#define SETTLE_MS 1500       /* after the last start: bad ones have rolled back */
#define DEFAULT_WINDOW_S 8

typedef struct bench bench;

typedef struct rollout {
    bench *b;
    char name[16];
    cn_engine *e;
    uint64_t t_fail, t_rollback; /* uv_hrtime, 0 until seen */
} rollout;

struct bench {
    uv_loop_t loop;
    cn_http *http;
    cn_store *store;
    cn_policy policy;
    cn_metric metric;
    cn_plan plan;
    char address[64], actuate[96];
    rollout r[ROLLOUTS];
    uv_timer_t ramp, phase;
    uint64_t t0;
    size_t started, finished;
    unsigned phase_no;
    uint64_t window_ms;
    uint64_t polls, fails;
    /* the measurement window */
    uint64_t w_polls, w_ns;
    double w_cpu;
    long rss_before, rss_started, rss_end; /* KiB */
    bool failed, closed;
};

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- observer ----------------------------------------------------------- */

static void on_reading(void *ctx, const cn_engine *e, size_t metric, const cn_reading *canary,
                       cn_outcome outcome, const char *why)
{
    (void)e, (void)metric, (void)canary, (void)why;
    rollout *r = ctx;
    r->b->polls++;
    if (outcome == CN_OUTCOME_FAIL && !r->t_fail) {
        r->t_fail = uv_hrtime();
        r->b->fails++;
    }
}

static void on_record(void *ctx, const cn_engine *e, const cn_store_event *ev, bool stored)
{
    (void)e;
    rollout *r = ctx;
    if (!stored) {
        fprintf(stderr, "bench_engine: %s: not stored: %s\n", r->name, ev->detail);
        r->b->failed = true;
    }
    else if (!r->t_rollback && !strcmp(ev->type, "actuator_call") &&
             !strncmp(ev->detail, "rollback", 8))
        r->t_rollback = uv_hrtime();
}

static void close_all(bench *b)
{
    if (b->closed)
        return;
    b->closed = true;
    for (size_t i = 0; i < b->started; i++)
        cn_engine_close(b->r[i].e);
    cn_http_close(b->http);
    uv_close((uv_handle_t *)&b->ramp, NULL);
    uv_close((uv_handle_t *)&b->phase, NULL);
}

static void on_finish(void *ctx, const cn_engine *e, int code)
{
    (void)e;
    rollout *r = ctx;
    bench *b = r->b;
    bool bad = !strncmp(r->name, "bad-", 4);
    /* healthy ones are detached at the end (1), bad ones roll back (3) */
    if (code != (bad ? 3 : 1)) {
        fprintf(stderr, "bench_engine: %s ended with exit code %d\n", r->name, code);
        b->failed = true;
    }
    if (++b->finished == ROLLOUTS && b->phase_no >= 3)
        close_all(b);
}

/* ---- phases ------------------------------------------------------------- */

static void start_one(bench *b, size_t i)
{
    rollout *r = &b->r[i];
    cn_engine_config cfg = {
        .loop = &b->loop, .http = b->http, .store = b->store, .plan = &b->plan,
        .policy = &b->policy, .rollout = r->name, .service = "checkout", .version = "v2",
        .previous_version = "v1", .author = "bench",
        .observer = {.on_reading = on_reading, .on_record = on_record, .on_finish = on_finish,
                     .ctx = r}};
    char err[256] = "";
    if (cn_engine_start(&r->e, &cfg, err, sizeof err) != CN_OK) {
        fprintf(stderr, "bench_engine: %s: %s\n", r->name, err);
        b->failed = true;
    }
}

static void on_phase(uv_timer_t *t);

/* Starts every rollout whose moment has come: rollout i at i/N of one
 * interval after the first. */
static void on_ramp(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = uv_hrtime();
    while (b->started < ROLLOUTS &&
           now >= b->t0 + (uint64_t)b->started * INTERVAL_MS * 1000000ull / ROLLOUTS)
        start_one(b, b->started++);
    if (b->started == ROLLOUTS) {
        uv_timer_stop(&b->ramp);
        b->rss_started = rss_kib();
        b->phase_no = 1;
        uv_timer_start(&b->phase, on_phase, SETTLE_MS, 0);
    }
}

static void on_phase(uv_timer_t *t)
{
    bench *b = t->data;
    if (b->phase_no == 1) { /* the window opens */
        b->phase_no = 2;
        b->w_polls = b->polls;
        b->w_cpu = cpu_seconds();
        b->w_ns = uv_hrtime();
        uv_timer_start(&b->phase, on_phase, b->window_ms, 0);
        return;
    }
    b->phase_no = 3; /* the window closes; detach everyone still running */
    b->w_polls = b->polls - b->w_polls;
    b->w_cpu = cpu_seconds() - b->w_cpu;
    b->w_ns = uv_hrtime() - b->w_ns;
    b->rss_end = rss_kib();
    for (size_t i = 0; i < ROLLOUTS; i++)
        cn_engine_shutdown(b->r[i].e, true);
    if (b->finished == ROLLOUTS)
        close_all(b);
}

/* ---- one run of 1,000 rollouts -------------------------------------------- */

static int create_rows(bench *b)
{
    char err[256] = "";
    for (size_t i = 0; i < ROLLOUTS; i++) {
        rollout *r = &b->r[i];
        r->b = b;
        snprintf(r->name, sizeof r->name, "%s-%04zu", i % BAD_EVERY == 3 ? "bad" : "ok", i);
        cn_rollout_row row = {.id = r->name, .attempt = 1, .service = (char *)"checkout",
                              .version = (char *)"v2", .previous_version = (char *)"v1",
                              .policy = (char *)"bench", .state = (char *)"pending",
                              .stages = (unsigned)b->plan.stage_count, .exit_code = -1,
                              .created_ms = 1, .updated_ms = 1};
        if (cn_store_create(b->store, &row, err, sizeof err) != CN_OK) {
            fprintf(stderr, "bench_engine: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static void setup_policy(bench *b, int port)
{
    snprintf(b->address, sizeof b->address, "http://127.0.0.1:%d", port);
    snprintf(b->actuate, sizeof b->actuate, "http://127.0.0.1:%d/actuate", port);
    cn_policy *p = &b->policy;
    cn_policy_defaults(p);
    p->name = "bench";
    p->analysis.interval_ms = INTERVAL_MS;
    p->analysis.timeout_ms = INTERVAL_MS / 2;
    b->metric = (cn_metric){
        .name = "error_rate",
        .source = {.kind = CN_SOURCE_PROMETHEUS, .address = b->address,
                   .query = "sum(rate(http_errors{rollout=\"{{rollout}}\"}[1m]))"},
        .threshold = {.has_max = true, .max = 0.05}};
    p->analysis.metrics = &b->metric;
    p->analysis.metric_count = 1;
    p->actuator.http_url = b->actuate;
    /* Stage 1 bakes for longer than the run: healthy rollouts keep polling. */
    b->plan.stage_count = 2;
    b->plan.stages[0] = (cn_stage){.index = 1, .weight = 0.05, .bake_ms = 3600 * 1000};
    b->plan.stages[1] = (cn_stage){.index = 2, .weight = 1.0, .bake_ms = 3600 * 1000};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile index in a sorted array of n > 0. */
static size_t rank(size_t n, unsigned pct)
{
    size_t r = (n * pct + 99) / 100;
    return r ? r - 1 : 0;
}

static void remove_store(const char *dir)
{
    char path[256];
    const char *files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

typedef struct result {
    double cpu_per_poll_us, polls_per_s, seconds;
    uint64_t polls;
    double p50_ms, p99_ms, max_ms;
    size_t decisions;
    double rss_start_per, rss_end_per; /* KiB per rollout */
    double store_cpu_us, store_wall_us;  /* one cn_store_record */
    double alone_cpu_us, held_cpu_us;    /* one measurement: its own commit, or held */
} result;

#define STORE_RECORDS 500

/* What one poll's durable commit costs alone: a measurement event as the
 * engine writes it, with a state snapshot of the same size. */
static void store_cost(cn_store *s, double *cpu_us, double *wall_us)
{
    cn_store_event ev = {
        .type = "measurement", .actor = "canary",
        .detail = "stage 1: error_rate: pass: 0.001 within [-, 0.05]",
        .data_json = "{\"metric\":\"error_rate\",\"outcome\":\"pass\",\"value\":0.001,"
                     "\"max\":0.050000000000000003}"};
    cn_store_state st = {
        .state = "progressing", .stage = 1, .weight = 0.05, .exit_code = -1,
        .machine_json = "{\"state\":\"progressing\",\"stage\":1,\"applying\":false,"
                        "\"approved\":false,\"approver\":\"\",\"baked_before_ms\":0,"
                        "\"stage_started_ms\":123456789,\"end\":0}"};
    double c0 = cpu_seconds();
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < STORE_RECORDS; i++) {
        ev.time_ms = 1700000000000 + i;
        if (cn_store_record(s, "ok-0000", &ev, &st, NULL, NULL, 0) != CN_OK) {
            *cpu_us = *wall_us = NAN;
            return;
        }
    }
    *wall_us = (double)(uv_hrtime() - t0) / 1e3 / STORE_RECORDS;
    *cpu_us = (cpu_seconds() - c0) * 1e6 / STORE_RECORDS;
}

/* What one measurement costs the store, each committed alone and held
 * (a flush every 45, as 900 polls a second give in CN_STORE_FLUSH_MS),
 * across the rollouts as the engine writes them. */
static void measurement_cost(cn_store *s, double *alone_us, double *held_us)
{
    cn_store_event ev = {
        .type = "measurement", .actor = "canary", .evidence_only = true,
        .detail = "stage 1: error_rate: pass: 0.001 within [-, 0.05]",
        .data_json = "{\"metric\":\"error_rate\",\"outcome\":\"pass\",\"value\":0.001,"
                     "\"max\":0.050000000000000003}"};
    cn_store_state st = {.state = "progressing", .stage = 1, .weight = 0.05, .exit_code = -1};
    for (int held = 0; held < 2; held++) {
        double *out = held ? held_us : alone_us;
        *out = NAN;
        if (cn_store_defer_evidence(s, held, NULL, 0) != CN_OK)
            return;
        double c0 = cpu_seconds();
        for (int i = 0; i < 9 * STORE_RECORDS; i++) {
            char id[16];
            snprintf(id, sizeof id, "ok-%04d", (i % 90) * 10);
            ev.time_ms = 1700000000000 + i;
            if (cn_store_record(s, id, &ev, &st, NULL, NULL, 0) != CN_OK ||
                (held && i % 45 == 44 && cn_store_flush(s, NULL, 0) != CN_OK))
                return;
        }
        *out = (cpu_seconds() - c0) * 1e6 / (9 * STORE_RECORDS);
    }
}

static int run_rollouts(int port, const char *base, uint64_t window_ms, result *res)
{
    static bench b; /* large: keep it off the stack */
    memset(&b, 0, sizeof b);
    b.window_ms = window_ms;
    char dir[128], db[160], err[256] = "";
    snprintf(dir, sizeof dir, "%s/canary-bench-XXXXXX", base);
    if (!mkdtemp(dir))
        return -1;
    snprintf(db, sizeof db, "%s/state.db", dir);
    setup_policy(&b, port);
    if (uv_loop_init(&b.loop) != 0 || cn_http_new(&b.http, &b.loop) != CN_OK ||
        cn_store_open(&b.store, db, err, sizeof err) != CN_OK || create_rows(&b) != 0 ||
        cn_store_defer_evidence(b.store, true, err, sizeof err) != CN_OK) {
        fprintf(stderr, "bench_engine: set-up failed %s\n", err);
        return -1;
    }
    uv_timer_init(&b.loop, &b.ramp);
    uv_timer_init(&b.loop, &b.phase);
    b.ramp.data = b.phase.data = &b;
    b.rss_before = rss_kib();
    b.t0 = uv_hrtime();
    uv_timer_start(&b.ramp, on_ramp, 0, 1);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    int loop_rc = uv_loop_close(&b.loop);
    double store_cpu = NAN, store_wall = NAN;
    store_cost(b.store, &store_cpu, &store_wall);
    double alone_cpu = NAN, held_cpu = NAN;
    measurement_cost(b.store, &alone_cpu, &held_cpu);
    cn_store_close(b.store);
    remove_store(dir);

    double lat[ROLLOUTS];
    size_t n = 0;
    for (size_t i = 0; i < ROLLOUTS; i++)
        if (b.r[i].t_fail && b.r[i].t_rollback)
            lat[n++] = (double)(b.r[i].t_rollback - b.r[i].t_fail) / 1e6;
    qsort(lat, n, sizeof *lat, cmp_double);
    *res = (result){.cpu_per_poll_us = b.w_polls ? b.w_cpu * 1e6 / (double)b.w_polls : NAN,
                    .polls = b.w_polls, .seconds = (double)b.w_ns / 1e9,
                    .polls_per_s = (double)b.w_polls / ((double)b.w_ns / 1e9),
                    .p50_ms = n ? lat[rank(n, 50)] : NAN, .p99_ms = n ? lat[rank(n, 99)] : NAN,
                    .max_ms = n ? lat[n - 1] : NAN, .decisions = n,
                    .rss_start_per = (double)(b.rss_started - b.rss_before) / ROLLOUTS,
                    .rss_end_per = (double)(b.rss_end - b.rss_before) / ROLLOUTS,
                    .store_cpu_us = store_cpu, .store_wall_us = store_wall,
                    .alone_cpu_us = alone_cpu, .held_cpu_us = held_cpu};
    if (b.failed || loop_rc != 0 || n != ROLLOUTS / BAD_EVERY) {
        fprintf(stderr, "bench_engine: the run went wrong (%zu decisions, loop %d)\n", n,
                loop_rc);
        return -1;
    }
    return 0;
}

/* ---- the bare libcurl loop ------------------------------------------------ */

typedef struct sink {
    size_t len;
    char buf[4096];
} sink;

static size_t sink_write(char *data, size_t size, size_t n, void *ctx)
{
    sink *s = ctx;
    size_t len = size * n;
    size_t room = sizeof s->buf - 1 - s->len;
    memcpy(s->buf + s->len, data, len < room ? len : room);
    s->len += len < room ? len : room;
    return len;
}

/* pollers GETs each every interval, spread over it, for window_ms: the
 * engines' schedule, without libuv or anything canary does with a reply. */
static int bare_curl(int port, size_t pollers, uint64_t window_ms, double *cpu_per_get_us,
                     uint64_t *gets)
{
    CURLM *m = curl_multi_init();
    if (!m)
        return -1;
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 32L);
    char (*urls)[160] = calloc(pollers, sizeof *urls);
    sink *sinks = calloc(pollers, sizeof *sinks);
    bool *busy = calloc(pollers, sizeof *busy);
    if (!urls || !sinks || !busy)
        return -1;
    for (size_t i = 0; i < pollers; i++)
        snprintf(urls[i], sizeof urls[i],
                 "http://127.0.0.1:%d/api/v1/query?query=sum%%28rate%%28http_errors%%7Brollout"
                 "%%3D%%22ok-%04zu%%22%%7D%%5B1m%%5D%%29%%29",
                 port, i);
    uint64_t t0 = uv_hrtime(), end = t0 + window_ms * 1000000ull;
    uint64_t step = INTERVAL_MS * 1000000ull / pollers, due = t0;
    size_t next = 0;
    uint64_t done = 0, bad = 0;
    double cpu0 = cpu_seconds();
    for (;;) {
        uint64_t now = uv_hrtime();
        while (due <= now && due < end) {
            if (!busy[next]) {
                CURL *e = curl_easy_init();
                sinks[next].len = 0;
                curl_easy_setopt(e, CURLOPT_URL, urls[next]);
                curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(INTERVAL_MS / 2));
                curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
                curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
                curl_easy_setopt(e, CURLOPT_WRITEDATA, &sinks[next]);
                curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&busy[next]);
                curl_easy_setopt(e, CURLOPT_USERAGENT, "bench");
                curl_multi_add_handle(m, e);
                busy[next] = true;
            }
            next = (next + 1) % pollers;
            due += step;
        }
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long status = 0;
            bool *flag = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&flag);
            bad += msg->data.result != CURLE_OK || status != 200;
            *flag = false;
            done++;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
        }
        if (now >= end && running == 0)
            break;
        /* rounded up: a shorter wait would spin */
        int wait_ms = due > now ? (int)((due - now + 999999ull) / 1000000ull) : 0;
        if (now >= end)
            wait_ms = 100;
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    *cpu_per_get_us = (cpu_seconds() - cpu0) * 1e6 / (double)done;
    *gets = done;
    curl_multi_cleanup(m);
    free(urls);
    free(sinks);
    free(busy);
    return bad ? -1 : 0;
}

/* ---- main ----------------------------------------------------------------- */

static void print_run(const char *where, const result *r)
{
    printf("  store on %s:\n", where);
    printf("    (a) decision latency, failing reading -> rollback call started, %zu rollouts: "
           "p50 %.3f ms, p99 %.3f ms, max %.3f ms (goal <= 5 ms)\n",
           r->decisions, r->p50_ms, r->p99_ms, r->max_ms);
    printf("    (b) %llu polls in %.1f s (%.0f/s): CPU %.1f us per poll; one durable "
           "store commit alone: CPU %.1f us, wall %.1f us\n",
           (unsigned long long)r->polls, r->seconds, r->polls_per_s, r->cpu_per_poll_us,
           r->store_cpu_us, r->store_wall_us);
    printf("    (b) one measurement's store CPU: %.1f us committed alone, %.1f us held "
           "(a flush every 45)\n",
           r->alone_cpu_us, r->held_cpu_us);
}

int main(void)
{
    const char *fake_dir = getenv("CANARY_FAKE_DIR");
    const char *seconds = getenv("CANARY_BENCH_SECONDS");
    uint64_t window_ms = (seconds && atoi(seconds) > 0 ? (uint64_t)atoi(seconds)
                                                        : DEFAULT_WINDOW_S) * 1000;
    if (!fake_dir) {
        fprintf(stderr, "bench_engine: set CANARY_FAKE_DIR (make bench does)\n");
        return 1;
    }
    char tmp[] = "/tmp/canary-bench-fake-XXXXXX";
    if (!mkdtemp(tmp))
        return 1;
    char script[96], port_file[96], bin[600];
    snprintf(script, sizeof script, "%s/script", tmp);
    snprintf(port_file, sizeof port_file, "%s/port", tmp);
    snprintf(bin, sizeof bin, "%s/fake_metrics", fake_dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return 1;
    fprintf(f, "* 0 value 0.001\nbad- 0 value 0.5\nactuate 0 ok\n");
    fclose(f);
    const char *argv[] = {bin, "--script", script, "--port-file", port_file, NULL};
    int port = 0;
    pid_t pid = cn_test_server_start(argv, port_file, &port);
    if (pid < 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct stat st;
    const char *fast = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    result shm = {0}, disk = {0};
    double bare_us = NAN;
    uint64_t bare_gets = 0;
    int rc = run_rollouts(port, fast, window_ms, &shm);
    if (rc == 0)
        rc = bare_curl(port, ROLLOUTS - ROLLOUTS / BAD_EVERY, window_ms, &bare_us, &bare_gets);
    if (rc == 0 && strcmp(fast, "/tmp"))
        rc = run_rollouts(port, "/tmp", window_ms, &disk);

    printf("rollout engine: %d rollouts (%d failing) on one loop, 1 metric every %d ms, "
           "http actuator; fake metrics server in another process; window %.0f s\n",
           ROLLOUTS, ROLLOUTS / BAD_EVERY, INTERVAL_MS, (double)window_ms / 1000);
    if (rc == 0) {
        print_run(fast, &shm);
        if (strcmp(fast, "/tmp"))
            print_run("/tmp", &disk);
        printf("  (b) bare libcurl multi loop, the same %zu GETs per second: %llu GETs, CPU "
               "%.1f us per GET; engine / bare: %.2fx (%s), %.2fx (/tmp) (goal <= 1.5x)\n",
               (size_t)(ROLLOUTS - ROLLOUTS / BAD_EVERY), (unsigned long long)bare_gets,
               bare_us, shm.cpu_per_poll_us / bare_us, fast,
               strcmp(fast, "/tmp") ? disk.cpu_per_poll_us / bare_us : shm.cpu_per_poll_us / bare_us);
        printf("  (c) resident memory per rollout (store on %s): %.1f KiB once all started, "
               "%.1f KiB after the window (goal <= 16 KiB)\n",
               fast, shm.rss_start_per, shm.rss_end_per);
    } else {
        printf("  FAILED: see stderr\n");
    }
    curl_global_cleanup();
    int stop = cn_test_server_stop(pid);
    unlink(script);
    unlink(port_file);
    rmdir(tmp);
    return rc == 0 && stop == 0 ? 0 : 1;
}
