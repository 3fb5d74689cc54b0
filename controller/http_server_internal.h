/*
 * http_server_internal.h: knobs of the HTTP server that only tests turn.
 *
 * Contract: cn_http_server_set_idle_ms() replaces the 30 s idle time-out
 * for connections accepted afterwards and for every later timer restart,
 * so a test can watch an idle client being dropped in milliseconds.
 */
#ifndef CANARY_HTTP_SERVER_INTERNAL_H
#define CANARY_HTTP_SERVER_INTERNAL_H

#include <stdint.h>

#include "canary/http_server.h"

void cn_http_server_set_idle_ms(cn_http_server *s, uint64_t ms);

#endif
