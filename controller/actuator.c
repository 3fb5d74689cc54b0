/*
 * actuator.c: one actuator call: starting it, its attempts, retries and
 * backoff, cancel, the output it captures, and the names and numbers
 * actuators are given. An attempt itself is actuator_exec.c's or
 * actuator_http.c's.
 */
#include "actuator_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"

#define BACKOFF_CAP_MS 60000

/* ---- names and numbers -------------------------------------------------- */

const char *cn_apply_kind_name(cn_apply_kind k)
{
    switch (k) {
    case CN_APPLY_ADVANCE: return "advance";
    case CN_APPLY_ROLLBACK: return "rollback";
    case CN_APPLY_COMPLETE: return "complete";
    }
    return "unknown";
}

/* Six significant digits are exact for every weight a plan produces (it
 * rounds stages far coarser) and never print binary noise like
 * 5.000000000000001. */
void cn_format_weight(char *buf, size_t len, double fraction)
{
    if (!buf || !len)
        return;
    double percent = fraction * 100;
    if (percent == 0) /* never "-0" */
        percent = 0;
    snprintf(buf, len, "%.6g", percent);
}

/* ---- captured output ---------------------------------------------------- */

void cn__capture_reset(cn__capture *cap)
{
    cap->total = 0;
}

void cn__capture_add(cn__capture *cap, const char *data, size_t len)
{
    if (len > CN__OUTPUT_KEEP) {
        cap->total += len - CN__OUTPUT_KEEP;
        data += len - CN__OUTPUT_KEEP;
        len = CN__OUTPUT_KEEP;
    }
    size_t pos = cap->total % CN__OUTPUT_KEEP;
    size_t first = len < CN__OUTPUT_KEEP - pos ? len : CN__OUTPUT_KEEP - pos;
    memcpy(cap->ring + pos, data, first);
    memcpy(cap->ring, data + first, len - first);
    cap->total += len;
}

void cn__capture_text(const cn__capture *cap, char *buf, size_t len)
{
    if (!len)
        return;
    size_t kept = cap->total < CN__OUTPUT_KEEP ? cap->total : CN__OUTPUT_KEEP;
    size_t oldest = cap->total < CN__OUTPUT_KEEP ? 0 : cap->total % CN__OUTPUT_KEEP;
    size_t skip = 0, n = 0;
    if (cap->total > kept) {
        /* Start on a whole UTF-8 character, not on the tail of one. */
        while (skip < kept && skip < 3 &&
               ((unsigned char)cap->ring[(oldest + skip) % CN__OUTPUT_KEEP] & 0xC0) == 0x80)
            skip++;
        int w = snprintf(buf, len, "[... %zu bytes cut]", cap->total - kept + skip);
        n = w < 0 ? 0 : (size_t)w < len ? (size_t)w : len - 1;
    }
    for (size_t i = skip; i < kept && n + 1 < len; i++) {
        char ch = cap->ring[(oldest + i) % CN__OUTPUT_KEEP];
        buf[n++] = ch ? ch : ' ';
    }
    /* A program's last line ends in a newline; the log line it goes into
     * (and explain's sentence) should not. */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
}

/* ---- the call ----------------------------------------------------------- */

static void call_free(cn_actuator_call *c)
{
    cn__exec_free(c);
    cn__http_free(c);
    free(c);
}

static void call_handle_closed(uv_handle_t *h)
{
    cn_actuator_call *c = h->data;
    if (--c->open == 0)
        call_free(c);
}

/* Attempt handles close between attempts; the last one to close reports
 * the attempt, so the next one can initialise them again. */
void cn__attempt_handle_closed(uv_handle_t *h)
{
    cn_actuator_call *c = h->data;
    c->open--;
    if (--c->attempt_open == 0 && !c->cancelled)
        cn__attempt_end(c, c->attempt_ok);
    if (c->open == 0)
        call_free(c);
}

void cn__close_handle(uv_handle_t *h, uv_close_cb cb)
{
    if (!uv_is_closing(h))
        uv_close(h, cb);
}

/* The call's own timers go last: until then c->open stays above zero. */
static void call_close(cn_actuator_call *c)
{
    cn__close_handle((uv_handle_t *)&c->timer, call_handle_closed);
    cn__close_handle((uv_handle_t *)&c->grace, call_handle_closed);
}

/* backoff, 2 x backoff, 4 x backoff... before retry n (1-based). */
static int64_t backoff_before(const cn_actuator_call *c, unsigned n)
{
    int64_t d = c->backoff_ms > 0 ? c->backoff_ms : 0;
    for (unsigned i = 1; i < n && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

static void begin_attempt(uv_timer_t *t)
{
    cn_actuator_call *c = t->data;
    c->attempts++;
    cn__capture_reset(&c->out);
    c->what[0] = '\0';
    c->started_ns = uv_hrtime();
    if (c->is_http)
        cn__http_attempt(c);
    else
        cn__exec_attempt(c);
}

void cn__attempt_end(cn_actuator_call *c, bool ok)
{
    if (c->cancelled || c->finished)
        return;
    bool retry = !ok && c->attempts <= c->retries;
    cn__capture_text(&c->out, c->output, sizeof c->output);
    cn_attempt at = {.number = c->attempts, .ok = ok, .last = !retry,
                     .retry_in_ms = retry ? backoff_before(c, c->attempts) : 0,
                     .what = c->what, .output = c->output};
    if (c->on_attempt)
        c->on_attempt(c->ctx, &at);
    if (c->cancelled) /* from inside on_attempt */
        return;
    if (retry) {
        uv_timer_start(&c->timer, begin_attempt, (uint64_t)at.retry_in_ms, 0);
        return;
    }
    c->finished = true;
    c->done(c->ctx, ok, c->attempts);
    call_close(c);
}

/* ---- public ------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return CN_EINVAL;
}

int cn_actuator_start(cn_actuator_call **out, uv_loop_t *loop, cn_http *http,
                      const cn_actuator *cfg, const cn_actuation *a, cn_attempt_cb on_attempt,
                      cn_actuation_done done, void *ctx, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return fail(err, errlen, "actuator call: no place for the call (out is NULL)");
    *out = NULL;
    if (!cfg || (!cfg->exec.count && !cfg->http_url))
        return fail(err, errlen, "no actuator configured: give the policy an 'actuator' "
                                 "with 'exec' (a command) or 'http' (a webhook URL)");
    if (cfg->exec.count && cfg->http_url)
        return fail(err, errlen, "actuator has both 'exec' and 'http'; give exactly one");
    if (cfg->exec.count && (!cfg->exec.items[0] || !*cfg->exec.items[0]))
        return fail(err, errlen, "actuator 'exec' must start with a command to run");
    if (cfg->timeout_ms <= 0)
        return fail(err, errlen, "actuator timeout must be greater than 0");
    if (cfg->http_url && !http)
        return fail(err, errlen, "an http actuator needs an http client (http is NULL)");
    if (!loop || !a || !done)
        return fail(err, errlen, "actuator call: loop, actuation and done are required");

    cn_actuator_call *c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    c->loop = loop;
    c->http = http;
    c->is_http = cfg->http_url != NULL;
    c->timeout_ms = cfg->timeout_ms;
    c->backoff_ms = cfg->backoff_ms;
    c->retries = cfg->retries;
    c->on_attempt = on_attempt;
    c->done = done;
    c->ctx = ctx;
    if (c->is_http) {
        int rc = cn__http_prepare(c, cfg, a, err, errlen);
        if (rc) {
            call_free(c);
            return rc;
        }
    } else if (cn__exec_prepare(c, cfg, a)) {
        call_free(c);
        goto nomem;
    }
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->grace);
    c->timer.data = c->grace.data = c;
    c->open = 2;
    /* Even a program that cannot start is reported from the loop, never
     * from inside this function. */
    uv_timer_start(&c->timer, begin_attempt, 0, 0);
    *out = c;
    return CN_OK;
nomem:
    if (err && errlen)
        snprintf(err, errlen, "out of memory starting the actuator");
    return CN_ENOMEM;
}

void cn_actuator_cancel(cn_actuator_call *c)
{
    if (!c || c->cancelled || c->finished)
        return;
    c->cancelled = true;
    if (c->is_http)
        cn__http_cancel(c);
    else
        cn__exec_cancel(c);
    call_close(c);
}
