/*
 * provider_internal.h: what the provider files share. provider.c builds
 * requests (templates, URLs, headers) and dispatches readings;
 * provider_reply.c owns a reading's detail text and the checks every reply
 * goes through; provider_prometheus.c and provider_json.c read the two
 * kinds of reply. Nothing outside the providers includes this.
 */
#ifndef CANARY_PROVIDER_INTERNAL_H
#define CANARY_PROVIDER_INTERNAL_H

#include <jansson.h>

#include "canary/provider.h"

#if defined(__GNUC__)
#define CN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CN_PRINTF(f, a)
#endif

/* Sets r to kind (value NaN) with the formatted detail, made safe to log
 * and to put in JSON: control characters become spaces, bytes that are not
 * UTF-8 become '?', and text that does not fit is cut at a character
 * boundary and ends in "...". */
void cn__reading_set(cn_reading *r, cn_reading_kind kind, const char *fmt, ...)
    CN_PRINTF(3, 4);

/* The checks every reply goes through: a transport error, a status outside
 * 200..299, an empty body, a body that is not JSON. Returns the parsed
 * document (the caller's reference) or NULL with r set to the error. */
json_t *cn__reply_json(long status, const char *body, size_t len,
                       const char *transport_error, cn_reading *r);

#endif
