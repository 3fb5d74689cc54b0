#include "canary/provider.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "provider_internal.h"

/* A sample value as Prometheus writes it (Go's FormatFloat): "NaN",
 * "+Inf", "-Inf" or a decimal number. strtod alone would also take
 * " 1", "0x10", "inf" and "nan(1)", none of which Prometheus sends, so
 * anything else is refused rather than guessed at. Returns 0, or -1 with r
 * set. */
static int parse_value(const char *s, double *out, cn_reading *r)
{
    if (!strcmp(s, "NaN")) {
        *out = NAN;
        return 0;
    }
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    size_t n = strlen(s);
    char *end = NULL;
    errno = 0;
    double d = n && strspn(s, "0123456789+-.eE") == n ? strtod(s, &end) : 0;
    if (!end || end != s + n) {
        cn__reading_set(r, CN_READING_ERROR, "value \"%.40s\"%s is not a number", s,
                        n > 40 ? "..." : "");
        return -1;
    }
    if (errno == ERANGE && isinf(d)) {
        cn__reading_set(r, CN_READING_ERROR, "value \"%.40s\"%s is out of range", s,
                        n > 40 ? "..." : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* A sample: [<unix time>, "<value>"]; what names it in messages. */
static int read_sample(const json_t *pair, const char *what, double *out, cn_reading *r)
{
    const json_t *ts = json_array_get(pair, 0), *val = json_array_get(pair, 1);
    if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_number(ts)) {
        cn__reading_set(r, CN_READING_ERROR, "%s is not a [timestamp, \"value\"] pair", what);
        return -1;
    }
    if (!json_is_string(val)) {
        cn__reading_set(r, CN_READING_ERROR, "%s has a value that is not a string "
                        "(Prometheus writes values as strings)", what);
        return -1;
    }
    return parse_value(json_string_value(val), out, r);
}

/* Several series are one value only by a reduce, and a NaN in any of them
 * is kept: a series without data must not be hidden by the others. */
static void read_vector(const json_t *result, int reduce, cn_reading *r)
{
    size_t n = json_array_size(result);
    if (!json_is_array(result)) {
        cn__reading_set(r, CN_READING_ERROR, "data.result of a vector is not an array");
        return;
    }
    if (!n) {
        cn__reading_set(r, CN_READING_NODATA, "empty vector (no series matched)");
        return;
    }
    double sum = 0, max = -INFINITY, min = INFINITY;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *series = json_array_get(result, i);
        char what[64];
        snprintf(what, sizeof what, "series %zu of %zu", i + 1, n);
        double v;
        if (!json_is_object(series)) {
            cn__reading_set(r, CN_READING_ERROR, "%s is not an object", what);
            return;
        }
        if (!json_object_get(series, "value")) {
            cn__reading_set(r, CN_READING_ERROR, "%s has no \"value\"", what);
            return;
        }
        if (read_sample(json_object_get(series, "value"), what, &v, r))
            return;
        sum += v;
        nan |= isnan(v);
        max = fmax(max, v);
        min = fmin(min, v);
    }
    r->kind = CN_READING_VALUE;
    r->detail[0] = '\0';
    if (n == 1) {
        r->value = sum;
        return;
    }
    switch (reduce) {
    case CN_REDUCE_SUM:
        r->value = sum;
        break;
    case CN_REDUCE_MAX:
        r->value = nan ? NAN : max;
        break;
    case CN_REDUCE_MIN:
        r->value = nan ? NAN : min;
        break;
    case CN_REDUCE_AVG:
        r->value = sum / (double)n;
        break;
    case CN_REDUCE_NONE:
        cn__reading_set(r, CN_READING_ERROR, "%zu series where one is expected (set "
                        "reduce: sum, max, min or avg)", n);
        break;
    default:
        cn__reading_set(r, CN_READING_ERROR, "%zu series and an unknown reduce (%d)", n,
                        reduce);
        break;
    }
}

/* The envelope every query reply shares: {"status": "success", "data":
 * {"resultType": ..., "result": ...}}. Returns the result with *type set,
 * or NULL with r set to the error (the server's own for "status": "error"). */
static const json_t *reply_result(const json_t *doc, const char **type, cn_reading *r)
{
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (status && !strcmp(status, "error")) {
        const char *etype = json_string_value(json_object_get(doc, "errorType"));
        const char *msg = json_string_value(json_object_get(doc, "error"));
        cn__reading_set(r, CN_READING_ERROR, "query failed: %s: %s", etype ? etype : "error",
                        msg ? msg : "no message");
        return NULL;
    }
    const json_t *data = json_object_get(doc, "data");
    if (!status || strcmp(status, "success") || !json_is_object(data)) {
        cn__reading_set(r, CN_READING_ERROR, "not a Prometheus query reply (%s)",
                        !json_is_object(doc) ? "not a JSON object"
                        : !status ? "no \"status\""
                        : strcmp(status, "success") ? "\"status\" is neither success nor error"
                        : "no \"data\" object");
        return NULL;
    }
    *type = json_string_value(json_object_get(data, "resultType"));
    const json_t *result = json_object_get(data, "result");
    if (!*type || !result) {
        cn__reading_set(r, CN_READING_ERROR, "not a Prometheus query reply (no "
                        "\"data.%s\")", !*type ? "resultType" : "result");
        return NULL;
    }
    return result;
}

static void read_reply(const json_t *doc, int reduce, cn_reading *r)
{
    const char *type = NULL;
    const json_t *result = reply_result(doc, &type, r);
    if (!result)
        return;
    if (!strcmp(type, "vector")) {
        read_vector(result, reduce, r);
    } else if (!strcmp(type, "scalar")) {
        double v;
        if (read_sample(result, "the scalar", &v, r))
            return;
        r->kind = CN_READING_VALUE;
        r->value = v;
        r->detail[0] = '\0';
    } else {
        cn__reading_set(r, CN_READING_ERROR, "resultType %.40s is not supported (use an "
                        "instant query)", type);
    }
}

cn_reading cn_prometheus_reading(int reduce, long status, const char *body, size_t len,
                                 const char *transport_error)
{
    cn_reading r;
    memset(&r, 0, sizeof r);
    json_t *doc = cn__reply_json(status, body, len, transport_error, &r);
    if (!doc)
        return r;
    read_reply(doc, reduce, &r);
    json_decref(doc);
    return r;
}

/* ---- range queries ------------------------------------------------------ */

/* The one series of a matrix into a new array (*out, *n), checked sample
 * by sample; r set on every outcome. Returns CN_ENOMEM only. */
static int read_matrix(const json_t *result, double **out, size_t *n, cn_reading *r)
{
    size_t series = json_array_size(result);
    if (!json_is_array(result)) {
        cn__reading_set(r, CN_READING_ERROR, "data.result of a matrix is not an array");
        return CN_OK;
    }
    if (!series) {
        cn__reading_set(r, CN_READING_NODATA, "empty matrix (no series matched)");
        return CN_OK;
    }
    if (series > 1) {
        cn__reading_set(r, CN_READING_ERROR, "%zu series where one is expected (aggregate "
                        "the query, e.g. with sum)", series);
        return CN_OK;
    }
    const json_t *one = json_array_get(result, 0);
    const json_t *list = json_object_get(one, "values");
    if (!json_is_object(one) || !json_is_array(list)) {
        cn__reading_set(r, CN_READING_ERROR, "the series %s",
                        json_is_object(one) ? "has no \"values\" array" : "is not an object");
        return CN_OK;
    }
    size_t k = json_array_size(list);
    if (!k) {
        cn__reading_set(r, CN_READING_NODATA, "the series has no samples");
        return CN_OK;
    }
    /* Checked before allocating: the reply decides k. */
    if (k > CN_PROM_MAX_SAMPLES) {
        cn__reading_set(r, CN_READING_ERROR, "%zu samples, more than the %d canary reads "
                        "from one series (raise the step)", k, CN_PROM_MAX_SAMPLES);
        return CN_OK;
    }
    double *v = malloc(k * sizeof *v);
    if (!v) {
        cn__reading_set(r, CN_READING_ERROR, "out of memory");
        return CN_ENOMEM;
    }
    double last_ts = -INFINITY;
    for (size_t i = 0; i < k; i++) {
        const json_t *pair = json_array_get(list, i);
        char what[64];
        snprintf(what, sizeof what, "sample %zu of %zu", i + 1, k);
        if (read_sample(pair, what, &v[i], r))
            goto bad;
        if (isinf(v[i])) {
            cn__reading_set(r, CN_READING_ERROR, "%s is %cInf", what, v[i] > 0 ? '+' : '-');
            goto bad;
        }
        double ts = json_number_value(json_array_get(pair, 0));
        if (!(ts > last_ts)) {
            cn__reading_set(r, CN_READING_ERROR, "%s (at %.3f) is not later than the one "
                            "before it (at %.3f)", what, ts, last_ts);
            goto bad;
        }
        last_ts = ts;
    }
    r->kind = CN_READING_VALUE;
    r->value = v[k - 1];
    r->detail[0] = '\0';
    *out = v;
    *n = k;
    return CN_OK;
bad:
    free(v);
    return CN_OK;
}

int cn_prometheus_samples(long status, const char *body, size_t len,
                          const char *transport_error, double **values, size_t *count,
                          cn_reading *reading)
{
    if (!values || !count || !reading)
        return CN_EINVAL;
    *values = NULL;
    *count = 0;
    memset(reading, 0, sizeof *reading);
    json_t *doc = cn__reply_json(status, body, len, transport_error, reading);
    if (!doc)
        return CN_OK;
    int rc = CN_OK;
    const char *type = NULL;
    const json_t *result = reply_result(doc, &type, reading);
    if (result && strcmp(type, "matrix"))
        cn__reading_set(reading, CN_READING_ERROR, "resultType %.40s is not a range result "
                        "(a matrix from /api/v1/query_range expected)", type);
    else if (result)
        rc = read_matrix(result, values, count, reading);
    json_decref(doc);
    return rc;
}
