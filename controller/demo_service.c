#include "demo_service.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/http_server.h"
#include "canary/status.h"

#define VERSION_MAX 64

struct cn_demo_service {
    cn_http_server *server;
    char stable[VERSION_MAX]; /* serves what the canary does not */
    char canary[VERSION_MAX]; /* "" when there is none */
    char first[VERSION_MAX];  /* the stable version at the start */
    char faulty[VERSION_MAX];
    double weight;            /* share of traffic on the canary, 0..1 */
    unsigned queries;         /* picks the next noise value */
};

/* Fixed, so every demo shows the same numbers; in [-1, 1]. */
static const double NOISE[] = {0.15, -0.4, 0.55, -0.1, 0.3, -0.65, 0.05, 0.45,
                               -0.25, 0.2, -0.5, 0.35, -0.05, 0.6, -0.3, 0.1};

/* Less traffic, noisier numbers: a version on a few hosts sees few
 * requests, so its ratios move more from one poll to the next. */
static double noise(cn_demo_service *s, double share)
{
    double n = NOISE[s->queries++ % (sizeof NOISE / sizeof NOISE[0])];
    double spread = sqrt(0.1 / fmax(share, 0.01));
    return n * fmin(spread, 3);
}

/* The share of traffic a version serves now; -1 when it has no series.
 * The stable version keeps its series while a canary serves 100%: a
 * rate over the last minute still sees its requests, and without it a
 * baseline comparison at the last stage would have nothing to compare. */
static double share_of(const cn_demo_service *s, const char *version)
{
    if (s->canary[0] && !strcmp(version, s->canary))
        return s->weight > 0 ? s->weight : -1;
    if (!strcmp(version, s->stable))
        return 1 - (s->canary[0] ? s->weight : 0);
    return -1;
}

/* The value of label name in a PromQL selector (name="value"), copied. */
static bool label(const char *query, const char *name, char *out, size_t len)
{
    char key[32];
    snprintf(key, sizeof key, "%s=\"", name);
    const char *p = strstr(query, key);
    if (!p)
        return false;
    p += strlen(key);
    size_t n = strcspn(p, "\"");
    if (p[n] != '"' || n == 0 || n >= len)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static char *prometheus_error(const char *type, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "status", "error", "errorType", type, "error", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void answer_query(cn_demo_service *s, const cn_http_in *in, cn_http_out *out)
{
    char *query = NULL, version[VERSION_MAX], service[VERSION_MAX];
    if (cn_http_query_param(in->query, "query", &query) != CN_OK ||
        !label(query, "version", version, sizeof version)) {
        out->status = 400;
        out->body = prometheus_error("bad_data", "the demo service answers queries that name "
                                                 "a version=\"...\"");
        out->len = out->body ? strlen(out->body) : 0;
        free(query);
        return;
    }
    if (!label(query, "service", service, sizeof service))
        snprintf(service, sizeof service, "checkout");
    bool latency = strstr(query, "histogram_quantile") != NULL;
    free(query);

    json_t *result = json_array();
    double share = share_of(s, version);
    if (result && share >= 0) {
        if (share == 0)
            share = 1; /* the last minute's rate: it served everything */
        /* A version keeps its character whatever share it serves. */
        bool faulty = !strcmp(version, s->faulty), first = !strcmp(version, s->first);
        double value = latency ? (faulty ? 196 : first ? 182 : 174) + 4 * noise(s, share)
                               : faulty ? 0.042 + 0.0005 * noise(s, share)
                                        : (first ? 0.0031 : 0.0028) + 0.0002 * noise(s, share);
        uv_timeval64_t tv = {0};
        uv_gettimeofday(&tv);
        char text[32];
        snprintf(text, sizeof text, "%.6g", value);
        json_array_append_new(result, json_pack("{s:{s:s, s:s}, s:[f, s]}", "metric", "service",
                                                service, "version", version, "value",
                                                (double)tv.tv_sec + tv.tv_usec / 1e6, text));
    }
    json_t *doc = result ? json_pack("{s:s, s:{s:s, s:o}}", "status", "success", "data",
                                     "resultType", "vector", "result", result) : NULL;
    out->body = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(13)) : NULL;
    json_decref(doc);
    if (!out->body) {
        out->status = 500;
        return;
    }
    out->len = strlen(out->body);
}

/* The http actuator's body: {"version", "weight" (percent), "action"}. */
static void actuate(cn_demo_service *s, const cn_http_in *in, cn_http_out *out)
{
    json_t *doc = json_loadb(in->body, in->body_len, 0, NULL);
    const char *version = json_string_value(json_object_get(doc, "version"));
    const char *action = json_string_value(json_object_get(doc, "action"));
    json_t *weight = json_object_get(doc, "weight");
    int status = 200;
    if (!version || !action || !json_is_number(weight) || strlen(version) >= VERSION_MAX)
        status = 400;
    else if (!strcmp(action, "advance")) {
        snprintf(s->canary, sizeof s->canary, "%s", version);
        s->weight = fmin(fmax(json_number_value(weight) / 100, 0), 1);
    } else if (!strcmp(action, "complete")) {
        snprintf(s->stable, sizeof s->stable, "%s", version);
        s->canary[0] = '\0';
        s->weight = 0;
    } else if (!strcmp(action, "rollback")) {
        s->canary[0] = '\0';
        s->weight = 0;
    } else
        status = 400;
    json_decref(doc);
    out->status = status;
    out->body = strdup(status == 200 ? "{\"ok\":true}" : "{\"ok\":false}");
    out->len = out->body ? strlen(out->body) : 0;
}

static void handle(void *ctx, const cn_http_in *in, cn_http_out *out)
{
    cn_demo_service *s = ctx;
    if (!strcmp(in->method, "GET") && !strcmp(in->path, "/api/v1/query"))
        answer_query(s, in, out);
    else if (!strcmp(in->method, "POST") && !strcmp(in->path, "/actuate"))
        actuate(s, in, out);
    else {
        out->status = 404;
        out->body = strdup("{\"error\":\"not found\"}");
        out->len = out->body ? strlen(out->body) : 0;
    }
}

int cn_demo_service_start(cn_demo_service **out, uv_loop_t *loop, const char *stable,
                          const char *faulty, int *port, char *err, size_t errlen)
{
    *out = NULL;
    if (strlen(stable) >= VERSION_MAX || strlen(faulty) >= VERSION_MAX) {
        snprintf(err, errlen, "demo service: version names are limited to %d bytes",
                 VERSION_MAX - 1);
        return CN_EINVAL;
    }
    cn_demo_service *s = calloc(1, sizeof *s);
    if (!s)
        return CN_ENOMEM;
    snprintf(s->stable, sizeof s->stable, "%s", stable);
    snprintf(s->first, sizeof s->first, "%s", stable);
    snprintf(s->faulty, sizeof s->faulty, "%s", faulty);
    int rc = cn_http_server_start(&s->server, loop, "127.0.0.1", 0, handle, s, port, err,
                                  errlen);
    if (rc != CN_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return CN_OK;
}

void cn_demo_service_close(cn_demo_service *s)
{
    if (!s)
        return;
    cn_http_server_close(s->server);
    free(s);
}
