/*
 * actuator_internal.h: what actuator.c (the call and its retries) shares
 * with actuator_exec.c and actuator_http.c (their attempts).
 *
 * Contract: an attempt runs in one of two ways and reports its end through
 * cn__attempt_end() exactly once, from the loop, after every handle the
 * attempt opened is closed (so the next attempt may reuse them). A call
 * owns two timers for its whole life; it is freed by the close callback
 * that brings its count of open handles to zero once it is finished.
 */
#ifndef CANARY_ACTUATOR_INTERNAL_H
#define CANARY_ACTUATOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "canary/actuator.h"

#define CN__OUTPUT_KEEP 2048
#define CN__GRACE_MS 1000

/* The last CN__OUTPUT_KEEP bytes of an attempt's output, in a ring. */
typedef struct cn__capture {
    char ring[CN__OUTPUT_KEEP];
    size_t total; /* bytes offered this attempt */
} cn__capture;

void cn__capture_reset(cn__capture *cap);
void cn__capture_add(cn__capture *cap, const char *data, size_t len);
/* The kept text, prefixed "[... N bytes cut]\n" when some was dropped;
 * NUL bytes become spaces (the output travels as a C string). */
void cn__capture_text(const cn__capture *cap, char *buf, size_t len);

struct cn_actuator_call {
    uv_loop_t *loop;
    cn_http *http;
    bool is_http;

    /* copies of the configuration and the actuation */
    char **argv;         /* exec: NULL-terminated */
    char **env;          /* exec: NULL-terminated */
    char *url, *body;    /* http */
    char **headers;      /* http: "Name: value" */
    size_t header_count;
    char *header_err;    /* http: a credential is missing: every attempt fails */
    int64_t timeout_ms, backoff_ms;
    unsigned retries;
    cn_attempt_cb on_attempt;
    cn_actuation_done done;
    void *ctx;

    unsigned attempts;
    bool finished;       /* done was called, or is being called */
    bool cancelled;
    unsigned open;       /* handles initialised and not closed yet */
    uv_timer_t timer;    /* first attempt, backoff, exec time-out */
    uv_timer_t grace;    /* exec: SIGKILL after SIGTERM; pipes after exit */

    /* the attempt in flight */
    uint64_t started_ns;
    cn__capture out;
    char what[256];
    char output[CN__OUTPUT_KEEP + 64];

    /* exec attempt */
    uv_process_t proc;
    uv_pipe_t pipes[2];  /* stdout, stderr */
    char readbuf[2][4096];
    unsigned attempt_open; /* of proc and pipes */
    bool attempt_ok, attempt_closing;
    bool spawned, exited, timed_out, killed, deadline_passed;
    bool eof[2];
    int64_t exit_status;
    int term_signal;
    int spawn_error;
    uint64_t exited_ns;

    /* http attempt */
    bool in_flight;
    uint64_t request_id;
};

/* The attempt has ended: c->what says how, c->out holds its output.
 * Reports it, then arms the retry or finishes the call. */
void cn__attempt_end(cn_actuator_call *c, bool ok);

/* Close callback of an attempt's handles: the last one reports the attempt
 * (cn__attempt_end) unless the call was cancelled, and frees the call once
 * nothing of it is open. */
void cn__attempt_handle_closed(uv_handle_t *h);
/* uv_close unless already closing. */
void cn__close_handle(uv_handle_t *h, uv_close_cb cb);

/* exec attempts (actuator_exec.c). prepare copies argv and builds the
 * environment (CN_ENOMEM); cancel kills the group of a running attempt. */
int cn__exec_prepare(cn_actuator_call *c, const cn_actuator *cfg, const cn_actuation *a);
void cn__exec_attempt(cn_actuator_call *c);
void cn__exec_cancel(cn_actuator_call *c);
void cn__exec_free(cn_actuator_call *c);

/* http attempts (actuator_http.c). */
int cn__http_prepare(cn_actuator_call *c, const cn_actuator *cfg, const cn_actuation *a,
                     char *err, size_t errlen);
void cn__http_attempt(cn_actuator_call *c);
void cn__http_cancel(cn_actuator_call *c);
void cn__http_free(cn_actuator_call *c);

#endif
