/*
 * demo_service.h: the simulated checkout service of `canary demo`
 * (private to the shell).
 *
 * Contract: serves, on 127.0.0.1 and a free port, the two things canary
 * talks to, so the demo needs no outside service:
 *   GET /api/v1/query?query=Q  a Prometheus instant-query reply for the
 *       error-ratio query (the default) or a p99 latency query (Q holds
 *       "histogram_quantile"), of the version Q names (version="...");
 *   POST /actuate  canary's http actuator body; moves the traffic split.
 * A version that serves no traffic has no series (an empty vector), but
 * the stable one keeps its series while the canary serves 100%. Every
 * version has a fixed error ratio and latency plus a deterministic noise
 * sequence, so each demo tells the same story: the faulty version fails
 * 4.2% of its requests whenever it serves any. Anything else gets 404.
 * The service prints nothing; the engine records what it sees.
 */
#ifndef CANARY_DEMO_SERVICE_H
#define CANARY_DEMO_SERVICE_H

#include <stddef.h>
#include <uv.h>

typedef struct cn_demo_service cn_demo_service;

/* stable: the version serving 100% at first; faulty: the version with the
 * fault. Both are copied. CN_OK with *port set; CN_ENOMEM; CN_EIO (err
 * says why) after which the loop must run once more to release the
 * socket. *out is NULL on failure. */
int cn_demo_service_start(cn_demo_service **out, uv_loop_t *loop, const char *stable,
                          const char *faulty, int *port, char *err, size_t errlen);

/* Stops serving; s is freed at once (the server's own handles close on
 * the loop). NULL is fine. */
void cn_demo_service_close(cn_demo_service *s);

#endif
