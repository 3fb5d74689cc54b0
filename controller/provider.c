#include "canary/provider.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "provider_internal.h"

/* ---- growing text --------------------------------------------------------- */

/* Appends that may fail: the first failure is remembered and checked once,
 * at the end, instead of after every append. */
typedef struct buf {
    char *s;
    size_t n, cap;
    bool oom;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n >= SIZE_MAX / 2 - b->n) {
        b->oom = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *s2 = realloc(b->s, cap);
        if (!s2) {
            b->oom = true;
            return;
        }
        b->s = s2;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Hands the text over (an empty string when nothing was added). */
static int buf_take(buf *b, char **out, char *err, size_t errlen)
{
    if (!b->oom && !b->s)
        buf_add(b, "", 0);
    if (b->oom) {
        free(b->s);
        snprintf(err, errlen, "out of memory");
        return CN_ENOMEM;
    }
    *out = b->s;
    return CN_OK;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 percent-encoding of everything but the unreserved characters:
 * safe in a path segment and in a query value alike. */
static void buf_url_encoded(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char pct[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (unreserved(c))
            buf_add(b, &s[i], 1);
        else
            buf_add(b, pct, 3);
    }
}

/* An RFC 6901 reference token: '~' as ~0, '/' as ~1. */
static void buf_pointer_escaped(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~')
            buf_add(b, "~0", 2);
        else if (s[i] == '/')
            buf_add(b, "~1", 2);
        else
            buf_add(b, &s[i], 1);
    }
}

/* ---- templates ------------------------------------------------------------ */

/* How a value is written where it lands. */
typedef enum { FILL_RAW, FILL_URL, FILL_POINTER } fill_mode;

#define TEMPLATE_LIST "service, version, previous_version, rollout, stage"

/* The value of the template named name[0..n), or NULL when unknown; stage
 * is printed into num. */
static const char *template_value(const char *name, size_t n, const cn_template_vars *v,
                                  char *num, size_t numlen)
{
    if (v->window && n == 6 && !memcmp(name, "window", 6))
        return v->window;
    static const char *const names[] = {"service", "version", "previous_version",
                                        "rollout", "stage"};
    const char *values[] = {v->service, v->version, v->previous_version, v->rollout, num};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], name, n)) {
            snprintf(num, numlen, "%u", v->stage);
            return values[i] ? values[i] : "";
        }
    return NULL;
}

/* Splits the same way as the policy loader does (the first "}}" closes,
 * spaces around the name are dropped), so what passed validation expands. */
static int expand(const char *tmpl, const cn_template_vars *v, fill_mode mode, char **out,
                  char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!tmpl || !v || !out) {
        snprintf(err, errlen, "no template or no values to expand it with");
        return CN_EINVAL;
    }
    buf b = {0};
    const char *p = tmpl;
    for (const char *open; (open = strstr(p, "{{")); ) {
        buf_add(&b, p, (size_t)(open - p));
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            snprintf(err, errlen, "'%.80s' has a '{{' with no closing '}}' at character %zu "
                     "(templates are written {{service}})", tmpl, (size_t)(open - tmpl) + 1);
            goto invalid;
        }
        const char *name = open + 2, *end = close;
        while (name < end && *name == ' ')
            name++;
        while (end > name && end[-1] == ' ')
            end--;
        char num[16];
        const char *val = template_value(name, (size_t)(end - name), v, num, sizeof num);
        if (!val) {
            int shown = close + 2 - open < 80 ? (int)(close + 2 - open) : 80;
            snprintf(err, errlen, "unknown template '%.*s' in '%.80s'; known: " TEMPLATE_LIST,
                     shown, open, tmpl);
            goto invalid;
        }
        size_t n = strlen(val);
        if (mode == FILL_URL)
            buf_url_encoded(&b, val, n);
        else if (mode == FILL_POINTER)
            buf_pointer_escaped(&b, val, n);
        else
            buf_add(&b, val, n);
        p = close + 2;
    }
    buf_str(&b, p);
    return buf_take(&b, out, err, errlen);

invalid:
    free(b.s);
    return CN_EINVAL;
}

int cn_template_expand(const char *tmpl, const cn_template_vars *v, char **out, char *err,
                       size_t errlen)
{
    return expand(tmpl, v, FILL_RAW, out, err, errlen);
}

/* ---- requests ------------------------------------------------------------- */

/* {address}{path}?query={query}, then params (already "&name=value"
 * pairs whose values need no encoding). */
static int prometheus_url(const cn_source *src, const cn_template_vars *v, const char *path,
                          const char *params, char **out, char *err, size_t errlen)
{
    if (!src->address || !src->query) {
        snprintf(err, errlen, "prometheus source has no %s",
                 !src->address ? "address" : "query");
        return CN_EINVAL;
    }
    char *address = NULL, *query = NULL;
    int rc = expand(src->address, v, FILL_URL, &address, err, errlen);
    if (rc)
        goto out;
    rc = expand(src->query, v, FILL_RAW, &query, err, errlen);
    if (rc)
        goto out;
    size_t n = strlen(address);
    if (n && address[n - 1] == '/')
        n--;
    buf b = {0};
    buf_add(&b, address, n);
    buf_str(&b, path);
    buf_str(&b, "?query=");
    buf_url_encoded(&b, query, strlen(query));
    buf_str(&b, params);
    rc = buf_take(&b, out, err, errlen);
out:
    free(query);
    free(address);
    return rc;
}

int cn_source_url(const cn_source *src, const cn_template_vars *v, char **out, char *err,
                  size_t errlen)
{
    if (out)
        *out = NULL;
    if (!src || !out) {
        snprintf(err, errlen, "no source");
        return CN_EINVAL;
    }
    switch (src->kind) {
    case CN_SOURCE_PROMETHEUS:
        return prometheus_url(src, v, "/api/v1/query", "", out, err, errlen);
    case CN_SOURCE_JSON:
        if (!src->url) {
            snprintf(err, errlen, "json source has no url");
            return CN_EINVAL;
        }
        return expand(src->url, v, FILL_URL, out, err, errlen);
    default:
        snprintf(err, errlen, "a source of kind %d has no URL (prometheus or json expected)",
                 (int)src->kind);
        return CN_EINVAL;
    }
}

/* Seconds as Prometheus reads them: at most millisecond precision, no
 * trailing zeros, no exponent ("1764403836", "0.5"). */
static void seconds_text(char *b, size_t len, double s)
{
    snprintf(b, len, "%.3f", s);
    char *dot = strchr(b, '.');
    if (!dot)
        return;
    size_t n = strlen(b);
    while (b[n - 1] == '0')
        b[--n] = '\0';
    if (b[n - 1] == '.')
        b[n - 1] = '\0';
}

int cn_source_range_url(const cn_source *src, const cn_template_vars *v, double start_s,
                        double end_s, double step_s, char **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!src || !out) {
        snprintf(err, errlen, "no source");
        return CN_EINVAL;
    }
    if (src->kind != CN_SOURCE_PROMETHEUS) {
        snprintf(err, errlen, "a range query needs a prometheus source");
        return CN_EINVAL;
    }
    /* 1e11 s is the year 5138: beyond it "%.3f" would not be exact. */
    if (!isfinite(start_s) || !isfinite(end_s) || fabs(start_s) > 1e11 || fabs(end_s) > 1e11 ||
        end_s < start_s) {
        snprintf(err, errlen, "range [%g, %g] is not a span of time (end before start, or "
                 "not a finite Unix time)", start_s, end_s);
        return CN_EINVAL;
    }
    if (!(step_s >= 0.001 && step_s <= 1e11)) {
        snprintf(err, errlen, "step %g s must be at least 1 ms", step_s);
        return CN_EINVAL;
    }
    /* Prometheus itself refuses more points per series than this. */
    double points = floor((end_s - start_s) / step_s) + 1;
    if (points > CN_PROM_MAX_SAMPLES) {
        snprintf(err, errlen, "range of %g s at step %g s is %.0f points per series, more "
                 "than the %d Prometheus answers; raise the step", end_s - start_s, step_s,
                 points, CN_PROM_MAX_SAMPLES);
        return CN_EINVAL;
    }
    char a[48], b[48], c[48], params[200];
    seconds_text(a, sizeof a, start_s);
    seconds_text(b, sizeof b, end_s);
    seconds_text(c, sizeof c, step_s);
    snprintf(params, sizeof params, "&start=%s&end=%s&step=%s", a, b, c);
    return prometheus_url(src, v, "/api/v1/query_range", params, out, err, errlen);
}

/* "Name: <value of $env>" into *out; what names the header in messages. */
static int env_header(const char *name, const char *prefix, const char *env,
                      const char *what, char **out, char *err, size_t errlen)
{
    const char *val = env ? getenv(env) : NULL;
    if (!val || !*val) {
        snprintf(err, errlen, "environment variable %s (%s) is %s; export it before "
                 "starting canary", env ? env : "(none)", what, val ? "empty" : "not set");
        return CN_EINVAL;
    }
    /* A line break would end this header and start one the policy never
     * named; other control characters are invalid in a field value. */
    for (const char *c = val; *c; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
            snprintf(err, errlen, "environment variable %s (%s) contains %s at character "
                     "%zu; a header value must be one line", env, what,
                     *c == '\r' || *c == '\n' ? "a line break" : "a control character",
                     (size_t)(c - val) + 1);
            return CN_EINVAL;
        }
    buf b = {0};
    buf_str(&b, name);
    buf_str(&b, ": ");
    buf_str(&b, prefix);
    buf_str(&b, val);
    return buf_take(&b, out, err, errlen);
}

int cn_source_headers(const cn_source *src, char ***headers, size_t *count, char *err,
                      size_t errlen)
{
    *headers = NULL;
    *count = 0;
    if (!src) {
        snprintf(err, errlen, "no source");
        return CN_EINVAL;
    }
    size_t n = (src->bearer_token_env ? 1 : 0) + src->header_count;
    if (!n)
        return CN_OK;
    char **h = calloc(n, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return CN_ENOMEM;
    }
    *headers = h;
    *count = n;
    size_t i = 0;
    if (src->bearer_token_env) {
        int rc = env_header("Authorization", "Bearer ", src->bearer_token_env,
                            "bearer_token_env", &h[i++], err, errlen);
        if (rc)
            return rc;
    }
    for (size_t j = 0; j < src->header_count; j++) {
        const cn_env_header *e = &src->headers[j];
        char what[160];
        snprintf(what, sizeof what, "header '%.100s' in headers_from_env",
                 e->name ? e->name : "");
        if (!e->name || !*e->name || strpbrk(e->name, ": \t\r\n")) {
            snprintf(err, errlen, "%s: not a valid header name", what);
            return CN_EINVAL;
        }
        int rc = env_header(e->name, "", e->env, what, &h[i++], err, errlen);
        if (rc)
            return rc;
    }
    return CN_OK;
}

void cn_source_headers_free(char **headers, size_t count)
{
    if (!headers)
        return;
    for (size_t i = 0; i < count; i++)
        free(headers[i]);
    free(headers);
}

/* ---- readings ------------------------------------------------------------ */

cn_reading cn_source_reading(const cn_source *src, const cn_template_vars *v, long status,
                             const char *body, size_t len, const char *transport_error)
{
    cn_reading r;
    memset(&r, 0, sizeof r);
    if (src && src->kind == CN_SOURCE_PROMETHEUS)
        return cn_prometheus_reading(src->reduce, status, body, len, transport_error);
    if (!src || src->kind != CN_SOURCE_JSON) {
        cn__reading_set(&r, CN_READING_ERROR, "the metric source has no kind "
                        "(prometheus or json expected)");
        return r;
    }
    if (!src->pointer || !strstr(src->pointer, "{{"))
        return cn_json_reading(src->pointer, status, body, len, transport_error);
    char *pointer, err[160];
    if (expand(src->pointer, v, FILL_POINTER, &pointer, err, sizeof err)) {
        cn__reading_set(&r, CN_READING_ERROR, "pointer: %s", err);
        return r;
    }
    r = cn_json_reading(pointer, status, body, len, transport_error);
    free(pointer);
    return r;
}
