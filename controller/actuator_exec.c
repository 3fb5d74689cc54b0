/*
 * actuator_exec.c: the exec actuator's attempt: the policy's argv in a
 * process group of its own, its stdout and stderr captured, its time-out
 * (SIGTERM to the group, SIGKILL a second later). The call around it
 * (retries, cancel) is actuator.c.
 */
#include "actuator_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h" /* cn_format_duration */
#include "canary/status.h"

extern char **environ;

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static const char *const env_names[] = {
    "CANARY_ROLLOUT", "CANARY_SERVICE", "CANARY_VERSION", "CANARY_PREVIOUS_VERSION",
    "CANARY_STAGE",   "CANARY_WEIGHT",  "CANARY_ACTION",  "CANARY_DRIVER",
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
                                     stage, weight, cn_apply_kind_name(a->kind), a->driver};
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
        cn__close_handle((uv_handle_t *)&c->pipes[i], cn__attempt_handle_closed);
    if (!c->spawned || c->exited)
        cn__close_handle((uv_handle_t *)&c->proc, cn__attempt_handle_closed);
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
        cn__close_handle((uv_handle_t *)&c->proc, cn__attempt_handle_closed);
        return;
    }
    uv_timer_stop(&c->timer);
    /* After a time-out the grace timer is already counting to SIGKILL. */
    if (!c->timed_out)
        uv_timer_start(&c->grace, exec_grace, CN__GRACE_MS, 0);
    exec_maybe_end(c);
}

void cn__exec_attempt(cn_actuator_call *c)
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
void cn__exec_cancel(cn_actuator_call *c)
{
    if (!c->attempt_open)
        return; /* before the first attempt, or in a backoff */
    if (c->spawned && !c->attempt_closing)
        uv_kill(-c->proc.pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        cn__close_handle((uv_handle_t *)&c->pipes[i], cn__attempt_handle_closed);
    if (!c->spawned || c->exited)
        cn__close_handle((uv_handle_t *)&c->proc, cn__attempt_handle_closed);
}

int cn__exec_prepare(cn_actuator_call *c, const cn_actuator *cfg, const cn_actuation *a)
{
    if (!(c->argv = copy_argv(&cfg->exec)) || !(c->env = build_env(a)))
        return CN_ENOMEM;
    return CN_OK;
}

void cn__exec_free(cn_actuator_call *c)
{
    strv_free(c->argv);
    strv_free(c->env);
}
