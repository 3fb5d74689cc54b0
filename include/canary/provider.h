/*
 * provider.h: metric providers: the request for a source, and the reading
 * from its reply.
 *
 * Contract: building and parsing are pure functions of their arguments
 * (cn_source_headers() also reads the environment, where secrets live, so
 * that policies never hold them). Parsing never trusts the reply: anything
 * but a well-formed, numeric answer becomes a CN_READING_ERROR or
 * CN_READING_NODATA naming what was wrong (shared/design.md section 4):
 *   prometheus  GET {address}/api/v1/query?query={URL-encoded query}
 *               a vector with exactly one series (or several, combined by
 *               reduce: sum|max|min|avg; a NaN in any series makes the
 *               result NaN) or a scalar; an empty vector is nodata; "NaN"
 *               is read as NaN, "+Inf" as Inf (analysis judges them:
 *               nodata and error)
 *   range       GET {address}/api/v1/query_range?query=...&start=...&end=
 *               ...&step=...; a matrix with exactly one series, read as
 *               its samples (cn_prometheus_samples)
 *   json        GET {url}; the number at an RFC 6901 pointer (empty or
 *               NULL: the whole document); null is nodata; a missing value,
 *               a string or any other non-number is an error
 * Values are read as given; judging them is analysis.h's job. A reading's
 * detail is always terminated, valid UTF-8 without control characters, and
 * ends in "..." when it was cut to fit.
 */
#ifndef CANARY_PROVIDER_H
#define CANARY_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/analysis.h"
#include "canary/policy.h"

typedef struct cn_template_vars {
    const char *service, *version, *previous_version, *rollout;
    unsigned stage;
    const char *window; /* a burn rate's window ("90s"); NULL: {{window}} is unknown */
} cn_template_vars;

/* Replaces every {{name}} (spaces inside the braces allowed) in tmpl with
 * its value as is; text outside templates is copied unchanged. *out is
 * malloc'd (NULL on failure). CN_EINVAL for an unknown name or an unclosed
 * "{{" (err names it; the policy loader rejects both, so only hand-made
 * input gets here) or a NULL tmpl or v, CN_ENOMEM. A NULL value expands to
 * "", stage to its decimal number; {{window}} is a name only when
 * v->window is set. */
int cn_template_expand(const char *tmpl, const cn_template_vars *v, char **out,
                       char *err, size_t errlen);

/* The URL to GET for src (prometheus or json) with v; *out is malloc'd.
 * Values filled into the address or url are percent-encoded (RFC 3986:
 * all but ALPHA DIGIT - . _ ~), so a value can neither break the URL nor
 * add to it; the query is expanded first, then encoded whole. One trailing
 * '/' of the address is dropped. CN_EINVAL for any other kind, a missing
 * address, query or url, or a bad template; CN_ENOMEM. */
int cn_source_url(const cn_source *src, const cn_template_vars *v, char **out,
                  char *err, size_t errlen);

/* The most samples canary reads from one series of a range query: what
 * Prometheus itself answers at most (query_range refuses to resolve more
 * than 11,000 points per series). */
#define CN_PROM_MAX_SAMPLES 11000

/* The range query for src (prometheus only) with v: GET
 * {address}/api/v1/query_range?query={query}&start={start_s}&end={end_s}
 * &step={step_s}, the query expanded and encoded as by cn_source_url;
 * times are Unix seconds, written with at most millisecond precision.
 * CN_EINVAL (err says why) for another kind, a missing address or query,
 * a bad template, end before start, a time that is not finite, a step
 * under 1 ms, or a range of more than CN_PROM_MAX_SAMPLES points, which
 * Prometheus would refuse; CN_ENOMEM. */
int cn_source_range_url(const cn_source *src, const cn_template_vars *v, double start_s,
                        double end_s, double step_s, char **out, char *err, size_t errlen);

/* The request headers of src, as "Name: value" strings: "Authorization:
 * Bearer <$bearer_token_env>" and each headers entry from its variable. A
 * variable unset or empty is CN_EINVAL naming it (a request without its
 * credentials would only fail later, less clearly), and so is a value with
 * a line break or another control character but tab (it would end the
 * header and start another). Messages never show a value. Free with
 * cn_source_headers_free() in every case. */
int cn_source_headers(const cn_source *src, char ***headers, size_t *count,
                      char *err, size_t errlen);
void cn_source_headers_free(char **headers, size_t count);

/* The reading of one reply. transport_error non-NULL (the request failed)
 * and a status outside 200..299 are errors (with the text of a JSON
 * {"error": ...} body when there is one); body need not be NUL-terminated.
 * pointer must be expanded already. */
cn_reading cn_prometheus_reading(int reduce, long status, const char *body, size_t len,
                                 const char *transport_error);
cn_reading cn_json_reading(const char *pointer, long status, const char *body, size_t len,
                           const char *transport_error);
/* The samples of a range query's reply (a matrix), in time order. With
 * exactly one series: reading->kind is CN_READING_VALUE, *values (malloc'd,
 * the caller frees) holds its *count samples ("NaN" kept as NaN) and
 * reading->value the last one. Anything else leaves *values NULL and
 * *count 0, with the reading saying why: nodata for an empty matrix or a
 * series without samples; error for several series (naming how many),
 * a sample that is +-Inf or not a number, samples out of time order,
 * more than CN_PROM_MAX_SAMPLES samples, another resultType, and every
 * failure cn_prometheus_reading reports (transport, status, not JSON,
 * not a Prometheus reply). Returns CN_OK, CN_ENOMEM (reading an error
 * too), or CN_EINVAL when an out pointer is NULL. */
int cn_prometheus_samples(long status, const char *body, size_t len,
                          const char *transport_error, double **values, size_t *count,
                          cn_reading *reading);
/* Dispatches on src->kind; v fills the templates of a json pointer (each
 * value escaped as a pointer token: '~' as ~0, '/' as ~1). */
cn_reading cn_source_reading(const cn_source *src, const cn_template_vars *v, long status,
                             const char *body, size_t len, const char *transport_error);

#endif
