/*
 * hook_server.h: a webhook receiver for unit tests: a raw HTTP/1.1 server
 * on 127.0.0.1 in the test's own loop that keeps every request it gets
 * (head and body, byte for byte, and when it arrived) and answers each
 * with a scripted status.
 *
 * Contract: cn_hook_server_start() listens on a free port. Each complete
 * request (headers, then Content-Length bytes) is kept, in arrival order,
 * and answered with the next status of the script set by
 * cn_hook_server_script() (the last one repeats; default 200), with body
 * "ok" and Connection: close; status 0 means never answer: the connection
 * stays open until the client leaves or the server closes. A request
 * larger than 64 KiB is an assertion failure. cn_hook_server_close() drops
 * every connection and frees the server once the loop ran its close
 * callbacks. Failures assert (cmocka).
 */
#ifndef CANARY_TEST_HOOK_SERVER_H
#define CANARY_TEST_HOOK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cn_hook_server cn_hook_server;

cn_hook_server *cn_hook_server_start(uv_loop_t *loop);
int cn_hook_server_port(const cn_hook_server *s);
/* At most 8 statuses; copied. */
void cn_hook_server_script(cn_hook_server *s, const int *statuses, size_t n);
size_t cn_hook_server_count(const cn_hook_server *s);
/* Request i (0-based): its head (request line and headers), its body, and
 * uv_now() when it was complete. */
const char *cn_hook_server_head(const cn_hook_server *s, size_t i);
const char *cn_hook_server_body(const cn_hook_server *s, size_t i);
uint64_t cn_hook_server_when(const cn_hook_server *s, size_t i);
void cn_hook_server_close(cn_hook_server *s);

#endif
