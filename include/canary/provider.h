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
 *               reduce: sum|max|min|avg) or a scalar; an empty vector is
 *               nodata; "NaN" is read as NaN, "+Inf" as Inf (analysis judges
 *               them: nodata and error)
 *   json        GET {url}; the number at an RFC 6901 pointer; null is nodata
 * Values are read as given; judging them is analysis.h's job.
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
} cn_template_vars;

/* Replaces every {{name}} (spaces inside the braces allowed) in tmpl.
 * *out is malloc'd. CN_EINVAL for an unknown name or an unclosed "{{" (err
 * names it; the policy loader rejects both, so only hand-made input gets
 * here), CN_ENOMEM. A NULL value expands to "". */
int cn_template_expand(const char *tmpl, const cn_template_vars *v, char **out,
                       char *err, size_t errlen);

/* The URL to GET for src (prometheus or json) with v; *out is malloc'd. */
int cn_source_url(const cn_source *src, const cn_template_vars *v, char **out,
                  char *err, size_t errlen);

/* The request headers of src, as "Name: value" strings: "Authorization:
 * Bearer <$bearer_token_env>" and each headers entry from its variable. A
 * variable unset or empty is CN_EINVAL naming it (a request without its
 * credentials would only fail later, less clearly). Free with
 * cn_source_headers_free() in every case. */
int cn_source_headers(const cn_source *src, char ***headers, size_t *count,
                      char *err, size_t errlen);
void cn_source_headers_free(char **headers, size_t count);

/* The reading of one reply. transport_error non-NULL (the request failed)
 * and a status outside 200..299 are errors; body need not be
 * NUL-terminated. */
cn_reading cn_prometheus_reading(int reduce, long status, const char *body, size_t len,
                                 const char *transport_error);
cn_reading cn_json_reading(const char *pointer, long status, const char *body, size_t len,
                           const char *transport_error);
/* Dispatches on src->kind. */
cn_reading cn_source_reading(const cn_source *src, long status, const char *body, size_t len,
                             const char *transport_error);

#endif
