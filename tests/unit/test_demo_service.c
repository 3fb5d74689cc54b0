/* The demo's simulated service, spoken to as canary speaks to it (the loop's
 * http client, replies read by the Prometheus provider): which versions have
 * series as the actuator moves traffic, the faulty version's error ratio,
 * the latency query, and the refusals. Every test ends with
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../../controller/demo_service.h"
#include "canary/http_client.h"
#include "canary/policy.h"
#include "canary/provider.h"
#include "canary/status.h"

typedef struct fixture {
    uv_loop_t loop;
    cn_http *http;
    cn_demo_service *svc;
    int port;
    /* the last reply */
    bool done;
    long status;
    char body[4096];
    size_t len;
} fixture;

static void on_done(void *ctx, const cn_http_reply *r)
{
    fixture *f = ctx;
    f->done = true;
    f->status = r->status;
    f->len = r->len < sizeof f->body - 1 ? r->len : sizeof f->body - 1;
    memcpy(f->body, r->body, f->len);
    f->body[f->len] = '\0';
}

/* One request, driven to its end on the loop; returns the status. */
static long fetch(fixture *f, const char *path, const char *post)
{
    char url[512], err[256] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    cn_http_request req = {.url = url, .body = post, .timeout_ms = 5000};
    f->done = false;
    assert_int_equal(cn_http_start(f->http, &req, on_done, f, NULL, err, sizeof err), CN_OK);
    while (!f->done)
        uv_run(&f->loop, UV_RUN_ONCE);
    return f->status;
}

/* The error ratio (or p99 latency) of version, as canary reads it. */
static cn_reading query(fixture *f, const char *version, bool latency)
{
    char path[512];
    /* error ratio: service="checkout",version="V"; latency: histogram_quantile(...) */
    snprintf(path, sizeof path, "/api/v1/query?query=%s%%7Bservice%%3D%%22checkout%%22%%2C"
             "version%%3D%%22%s%%22%%7D%s", latency ? "histogram_quantile(0.99%2C" : "rate",
             version, latency ? ")" : "");
    assert_int_equal(fetch(f, path, NULL), 200);
    return cn_prometheus_reading(CN_REDUCE_NONE, f->status, f->body, f->len, NULL);
}

static void actuate(fixture *f, const char *version, double weight, const char *action)
{
    char body[256];
    snprintf(body, sizeof body, "{\"version\":\"%s\",\"weight\":%g,\"action\":\"%s\"}", version,
             weight, action);
    assert_int_equal(fetch(f, "/actuate", body), 200);
    assert_string_equal(f->body, "{\"ok\":true}");
}

static void assert_between(cn_reading r, double lo, double hi)
{
    if (r.kind != CN_READING_VALUE || !(r.value >= lo && r.value <= hi))
        fail_msg("expected a value in [%g, %g], got kind %d value %g (%s)", lo, hi, r.kind,
                 r.value, r.detail);
}

static void assert_no_series(cn_reading r)
{
    assert_int_equal(r.kind, CN_READING_NODATA);
    assert_string_equal(r.detail, "empty vector (no series matched)");
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256] = "";
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(cn_http_new(&f->http, &f->loop), CN_OK);
    assert_int_equal(cn_demo_service_start(&f->svc, &f->loop, "v1", "v3", &f->port, err,
                                           sizeof err), CN_OK);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cn_demo_service_close(f->svc);
    cn_http_close(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void test_traffic_follows_the_actuator(void **state)
{
    fixture *f = *state;
    assert_between(query(f, "v1", false), 0.0028, 0.0034);
    assert_between(query(f, "v1", true), 170, 194);
    assert_no_series(query(f, "v2", false));

    actuate(f, "v2", 5, "advance");
    assert_between(query(f, "v2", false), 0.0022, 0.0034);
    assert_between(query(f, "v2", true), 162, 186);
    assert_between(query(f, "v1", false), 0.0028, 0.0034);

    /* At 100% the running version keeps its series, for baselines. */
    actuate(f, "v2", 100, "advance");
    assert_between(query(f, "v1", false), 0.0028, 0.0034);
    actuate(f, "v2", 100, "complete");
    assert_no_series(query(f, "v1", false));
    assert_between(query(f, "v2", false), 0.0025, 0.0031);
}

static void test_faulty_version_fails_while_it_serves(void **state)
{
    fixture *f = *state;
    assert_no_series(query(f, "v3", false));
    actuate(f, "v3", 0.5, "advance");
    for (int i = 0; i < 20; i++)
        assert_between(query(f, "v3", false), 0.0405, 0.0435);
    assert_between(query(f, "v3", true), 184, 208);
    actuate(f, "v3", 0, "rollback");
    assert_no_series(query(f, "v3", false));
    assert_between(query(f, "v1", false), 0.0028, 0.0034);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    assert_int_equal(fetch(f, "/api/v1/query?query=up", NULL), 400);
    cn_reading r = cn_prometheus_reading(CN_REDUCE_NONE, f->status, f->body, f->len, NULL);
    assert_int_equal(r.kind, CN_READING_ERROR);
    assert_non_null(strstr(f->body, "\"status\":\"error\""));
    assert_int_equal(fetch(f, "/api/v1/query", NULL), 400);
    assert_int_equal(fetch(f, "/actuate", "not json"), 400);
    assert_int_equal(fetch(f, "/actuate", "{\"version\":\"v2\",\"weight\":5,\"action\":\"jump\"}"),
                     400);
    assert_int_equal(fetch(f, "/actuate", NULL), 404); /* a GET */
    assert_int_equal(fetch(f, "/metrics", NULL), 404);
    /* Nothing moved. */
    assert_no_series(query(f, "v2", false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_traffic_follows_the_actuator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faulty_version_fails_while_it_serves, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests_name("demo_service", tests, NULL, NULL);
}
