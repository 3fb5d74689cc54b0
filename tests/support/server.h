/*
 * server.h: background servers for integration tests (the fake metrics
 * server in tests/fake), and a blocking HTTP client to talk to them from a
 * test process that runs no loop.
 *
 * Contract: cn_test_server_start() spawns argv (argv[0] is a path, e.g.
 * "$CANARY_FAKE_DIR/fake_metrics"), optionally under $CANARY_FAKE_WRAPPER
 * (split on spaces, e.g. "valgrind --error-exitcode=99"), with stdin from
 * /dev/null and the test's stdout and stderr. It removes port_file first,
 * then waits up to 5 s (60 s under a wrapper) for the server to write its
 * port there (decimal and a newline, written atomically: temp file and
 * rename). It returns the pid and fills *port; or -1, having said why on
 * stderr and reaped the child if it was started. cn_test_server_stop()
 * sends SIGTERM, waits as long, then SIGKILLs; it returns the exit code,
 * 128 + signal when killed, -1 when pid is not a child of ours.
 *
 * cn_test_http() sends request as it is to 127.0.0.1:port on a new
 * connection and reads the reply until its Content-Length is complete, the
 * server closes, or nothing arrives for timeout_ms. It returns 0, or -1
 * when connecting or sending failed; free the reply with
 * cn_test_reply_free() in every case.
 */
#ifndef CANARY_TEST_SERVER_H
#define CANARY_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

pid_t cn_test_server_start(const char *const *argv, const char *port_file, int *port);

/* A 127.0.0.1 port where nothing listens, or -1. Its socket stays bound
 * (never listening, close-on-exec) until the process ends: a port that
 * was let go could come back as a client's own source port, and a
 * connection to itself is not refused. Every call returns the same port. */
int cn_test_closed_port(void);
int cn_test_server_stop(pid_t pid);

typedef struct cn_test_reply {
    int status;          /* 0: no complete header section arrived */
    long content_length; /* -1: no Content-Length header */
    char *head;          /* status line and headers, NUL-terminated; NULL with status 0 */
    char *body;          /* what followed the headers, NUL-terminated, never NULL */
    size_t len;          /* bytes in body */
    bool closed;         /* the server closed the connection */
    bool timed_out;      /* nothing arrived for timeout_ms */
} cn_test_reply;

int cn_test_http(int port, const char *request, int timeout_ms, cn_test_reply *r);
/* GET target ("/api/v1/query?query=up") with Connection: close. */
int cn_test_get(int port, const char *target, int timeout_ms, cn_test_reply *r);
void cn_test_reply_free(cn_test_reply *r);

#endif
