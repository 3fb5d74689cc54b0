/*
 * actuator_http.c: the http actuator's attempt: one JSON POST through the
 * loop's http client. The call around it (retries, cancel) is actuator.c.
 */
#include "actuator_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/provider.h" /* cn_source_headers */
#include "canary/status.h"

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* {"rollout","service","version","previous_version","stage","weight",
 * "action"}: weight in percent, the same number CANARY_WEIGHT spells, so
 * both actuators see 5 and not 5.000000000000001. */
static char *build_body(const cn_actuation *a)
{
    char weight[32];
    cn_format_weight(weight, sizeof weight, a->weight);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:f, s:s}", "rollout", or_empty(a->rollout),
                          "service", or_empty(a->service), "version", or_empty(a->version),
                          "previous_version", a->previous_version, "stage",
                          (json_int_t)a->stage, "weight", strtod(weight, NULL), "action",
                          cn_apply_kind_name(a->kind));
    if (!o)
        return NULL;
    char *body = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    return body;
}

int cn__http_prepare(cn_actuator_call *c, const cn_actuator *cfg, const cn_actuation *a,
                     char *err, size_t errlen)
{
    if (!(c->url = strdup(cfg->http_url)) || !(c->body = build_body(a)))
        goto nomem;
    /* A credential missing from the environment fails every attempt, with
     * its name, rather than the start: the failure then lands in the
     * event log like any other actuator failure. */
    char why[256] = "";
    int rc = cn_source_headers(&cfg->http_auth, &c->headers, &c->header_count, why, sizeof why);
    if (rc) {
        cn_source_headers_free(c->headers, c->header_count);
        c->headers = NULL;
        c->header_count = 0;
    }
    if (rc == CN_ENOMEM)
        goto nomem;
    if (rc && !(c->header_err = strdup(why[0] ? why : "could not build the request headers")))
        goto nomem;
    return CN_OK;
nomem:
    if (err && errlen)
        snprintf(err, errlen, "out of memory starting the actuator");
    return CN_ENOMEM;
}

static void http_done(void *ctx, const cn_http_reply *r)
{
    cn_actuator_call *c = ctx;
    c->in_flight = false;
    if (r->body && r->len)
        cn__capture_add(&c->out, r->body, r->len);
    bool ok = false;
    if (r->error) {
        snprintf(c->what, sizeof c->what, "%s", r->error);
    } else {
        ok = r->status >= 200 && r->status <= 299;
        snprintf(c->what, sizeof c->what, "HTTP %ld in %lld ms", r->status,
                 (long long)r->elapsed_ms);
    }
    cn__attempt_end(c, ok);
}

void cn__http_attempt(cn_actuator_call *c)
{
    if (c->header_err) {
        snprintf(c->what, sizeof c->what, "%s", c->header_err);
        cn__attempt_end(c, false);
        return;
    }
    cn_http_request req = {.url = c->url,
                           .body = c->body,
                           .content_type = "application/json",
                           .headers = (const char *const *)c->headers,
                           .header_count = c->header_count,
                           .timeout_ms = c->timeout_ms};
    char why[200] = "";
    if (cn_http_start(c->http, &req, http_done, c, &c->request_id, why, sizeof why)) {
        snprintf(c->what, sizeof c->what, "could not send: %s", why[0] ? why : "request refused");
        cn__attempt_end(c, false);
        return;
    }
    c->in_flight = true;
}

void cn__http_cancel(cn_actuator_call *c)
{
    if (c->in_flight)
        cn_http_cancel(c->http, c->request_id);
    c->in_flight = false;
}

void cn__http_free(cn_actuator_call *c)
{
    free(c->url);
    free(c->body);
    free(c->header_err);
    if (c->headers)
        cn_source_headers_free(c->headers, c->header_count);
}
