/*
 * actuator.c: one actuator call: its attempts, retries and backoff, the
 * exec attempt (a process group with captured output and a time-out), and
 * the names and numbers actuators are given. The http attempt lives in
 * actuator_http.c.
 */
#include "actuator_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h" /* cn_format_duration */
#include "canary/status.h"

extern char **environ;

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
    buf[n] = '\0';
}

/* ---- the call ----------------------------------------------------------- */

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void call_free(cn_actuator_call *c)
{
    strv_free(c->argv);
    strv_free(c->env);
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
static void attempt_handle_closed(uv_handle_t *h)
{
    cn_actuator_call *c = h->data;
    c->open--;
    if (--c->attempt_open == 0 && !c->cancelled)
        cn__attempt_end(c, c->attempt_ok);
    if (c->open == 0)
        call_free(c);
}

static void close_handle(uv_handle_t *h, uv_close_cb cb)
{
    if (!uv_is_closing(h))
        uv_close(h, cb);
}

/* The call's own timers go last: until then c->open stays above zero. */
static void call_close(cn_actuator_call *c)
{
    close_handle((uv_handle_t *)&c->timer, call_handle_closed);
    close_handle((uv_handle_t *)&c->grace, call_handle_closed);
}

/* backoff, 2 x backoff, 4 x backoff... before retry n (1-based). */
static int64_t backoff_before(const cn_actuator_call *c, unsigned n)
{
    int64_t d = c->backoff_ms > 0 ? c->backoff_ms : 0;
    for (unsigned i = 1; i < n && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

static void exec_attempt(cn_actuator_call *c);

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
        exec_attempt(c);
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

/* ---- exec attempts ------------------------------------------------------ */

static const char *const env_names[] = {
    "CANARY_ROLLOUT", "CANARY_SERVICE", "CANARY_VERSION", "CANARY_PREVIOUS_VERSION",
    "CANARY_STAGE",   "CANARY_WEIGHT",  "CANARY_ACTION",
};
#define ENV_COUNT (sizeof env_names / sizeof env_names[0])

static bool env_is_ours(const char *entry)
{
    for (size_t i = 0; i < ENV_COUNT; i++) {
        size_t n = strlen(env_names[i]);
        if (!strncmp(entry, env_names[i], n) && entry[n] == '=')
            return true;
    }
    return false;
}

static char *env_entry(const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value ? value : "");
    char *e = malloc(n + v + 2);
    if (e) {
        memcpy(e, name, n);
        e[n] = '=';
        memcpy(e + n + 1, value ? value : "", v + 1);
    }
    return e;
}

/* The parent's environment without our names, then ours. */
static char **build_env(const cn_actuation *a)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **env = calloc(n + ENV_COUNT + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        if (env_is_ours(*e))
            continue;
        if (!(env[k++] = strdup(*e)))
            goto nomem;
    }
    char stage[16], weight[32];
    snprintf(stage, sizeof stage, "%u", a->stage);
    cn_format_weight(weight, sizeof weight, a->weight);
    const char *values[ENV_COUNT] = {a->rollout, a->service, a->version, a->previous_version,
                                     stage, weight, cn_apply_kind_name(a->kind)};
    for (size_t i = 0; i < ENV_COUNT; i++)
        if (!(env[k++] = env_entry(env_names[i], values[i])))
            goto nomem;
    return env;
nomem:
    strv_free(env);
    return NULL;
}

static char **copy_argv(const cn_strings *s)
{
    char **v = calloc(s->count + 1, sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < s->count; i++) {
        if (!(v[i] = strdup(s->items[i] ? s->items[i] : ""))) {
            strv_free(v);
            return NULL;
        }
    }
    return v;
}

static int64_t ms_between(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (int64_t)((to_ns - from_ns) / 1000000) : 0;
}

static void exec_describe(cn_actuator_call *c)
{
    long long ms = (long long)ms_between(c->started_ns, c->exited_ns);
    c->attempt_ok = false;
    if (c->timed_out) {
        char d[32];
        cn_format_duration(d, sizeof d, c->timeout_ms);
        snprintf(c->what, sizeof c->what, "killed after timeout %s", d);
    } else if (c->term_signal) {
        snprintf(c->what, sizeof c->what, "killed by signal %d in %lld ms", c->term_signal, ms);
    } else {
        c->attempt_ok = c->exit_status == 0;
        snprintf(c->what, sizeof c->what, "exit %lld in %lld ms", (long long)c->exit_status, ms);
    }
}

/* Closes what the attempt opened; the last close reports it. A process
 * still running (only on cancel) is closed by its exit callback instead,
 * so that libuv reaps it. */
static void exec_close_attempt(cn_actuator_call *c)
{
    c->attempt_closing = true;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->grace);
    for (int i = 0; i < 2; i++)
        close_handle((uv_handle_t *)&c->pipes[i], attempt_handle_closed);
    if (!c->spawned || c->exited)
        close_handle((uv_handle_t *)&c->proc, attempt_handle_closed);
}

/* Ends once the process has exited and both pipes are at EOF, or, since a
 * grandchild may hold them open, once the grace after the exit is over. */
static void exec_maybe_end(cn_actuator_call *c)
{
    if (c->attempt_closing || !c->exited)
        return;
    if (!(c->eof[0] && c->eof[1]) && !c->deadline_passed)
        return;
    exec_describe(c);
    exec_close_attempt(c);
}

static void exec_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    cn_actuator_call *c = h->data;
    int i = h == (uv_handle_t *)&c->pipes[1];
    buf->base = c->readbuf[i];
    buf->len = sizeof c->readbuf[i];
}

static void exec_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cn_actuator_call *c = s->data;
    int i = s == (uv_stream_t *)&c->pipes[1];
    if (n > 0) {
        cn__capture_add(&c->out, buf->base, (size_t)n);
    } else if (n < 0) { /* EOF, or an error: nothing more comes either way */
        uv_read_stop(s);
        c->eof[i] = true;
        exec_maybe_end(c);
    }
}

/* After a time-out: the group had SIGTERM a second ago, now SIGKILL.
 * After an exit: the pipes had their second. */
static void exec_grace(uv_timer_t *t)
{
    cn_actuator_call *c = t->data;
    if (c->timed_out && !c->killed) {
        c->killed = true;
        uv_kill(-c->proc.pid, SIGKILL);
    }
    c->deadline_passed = true;
    exec_maybe_end(c);
}

static void exec_timed_out(uv_timer_t *t)
{
    cn_actuator_call *c = t->data;
    c->timed_out = true;
    uv_kill(-c->proc.pid, SIGTERM);
    uv_timer_start(&c->grace, exec_grace, CN__GRACE_MS, 0);
}

static void exec_exited(uv_process_t *p, int64_t status, int sig)
{
    cn_actuator_call *c = p->data;
    c->exited = true;
    c->exit_status = status;
    c->term_signal = sig;
    c->exited_ns = uv_hrtime();
    if (c->cancelled) {
        close_handle((uv_handle_t *)&c->proc, attempt_handle_closed);
        return;
    }
    uv_timer_stop(&c->timer);
    /* After a time-out the grace timer is already counting to SIGKILL. */
    if (!c->timed_out)
        uv_timer_start(&c->grace, exec_grace, CN__GRACE_MS, 0);
    exec_maybe_end(c);
}

static void exec_attempt(cn_actuator_call *c)
{
    c->attempt_ok = c->attempt_closing = false;
    c->spawned = c->exited = c->timed_out = c->killed = c->deadline_passed = false;
    c->eof[0] = c->eof[1] = false;
    c->exit_status = 0;
    c->term_signal = 0;
    c->exited_ns = c->started_ns;
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(c->loop, &c->pipes[i], 0);
        c->pipes[i].data = c;
        c->attempt_open++;
        c->open++;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->pipes[0]},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->pipes[1]},
    };
    /* Detached: a session and process group of its own, so a time-out
     * reaches the grandchildren too, and a terminal's Ctrl-C reaches only
     * canary, which then decides what happens to the rollout. */
    uv_process_options_t o = {.exit_cb = exec_exited, .file = c->argv[0], .args = c->argv,
                              .env = c->env, .flags = UV_PROCESS_DETACHED,
                              .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(c->loop, &c->proc, &o);
    c->proc.data = c; /* the handle is initialised even when the spawn fails */
    c->attempt_open++;
    c->open++;
    if (rc) {
        snprintf(c->what, sizeof c->what, "could not start '%s': %s", c->argv[0],
                 uv_strerror(rc));
        exec_close_attempt(c);
        return;
    }
    c->spawned = true;
    for (int i = 0; i < 2; i++)
        if (uv_read_start((uv_stream_t *)&c->pipes[i], exec_alloc, exec_read))
            c->eof[i] = true;
    uv_timer_start(&c->timer, exec_timed_out, (uint64_t)c->timeout_ms, 0);
}

/* Kills the group (SIGKILL cannot be ignored); the exit callback then
 * closes the process handle, so the child is reaped, not left a zombie. */
static void exec_cancel(cn_actuator_call *c)
{
    if (!c->attempt_open)
        return; /* before the first attempt, or in a backoff */
    if (c->spawned && !c->attempt_closing)
        uv_kill(-c->proc.pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        close_handle((uv_handle_t *)&c->pipes[i], attempt_handle_closed);
    if (!c->spawned || c->exited)
        close_handle((uv_handle_t *)&c->proc, attempt_handle_closed);
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
    } else if (!(c->argv = copy_argv(&cfg->exec)) || !(c->env = build_env(a))) {
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
        exec_cancel(c);
    call_close(c);
}
