/* Actuators: the exec actuator against small shell scripts (the exact
 * environment for each kind of call, exit status, retries with doubling
 * backoff, captured and capped output, the time-out killing the whole
 * process group and escalating to SIGKILL, programs that cannot start,
 * cancel at every point), the start-time checks and the weight's text.
 * The http actuator has its own suite, test_actuator_http.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "canary/actuator.h"
#include "canary/status.h"

#include "checks.h"
#include "proc.h"

extern char **environ;

/* ---- recording the callbacks -------------------------------------------- */

#define MAX_SEEN 8

typedef struct seen_attempt {
    cn_attempt a;
    char what[256];
    char output[4096];
} seen_attempt;

typedef struct rec {
    seen_attempt seen[MAX_SEEN];
    unsigned attempt_calls;
    unsigned done_calls;
    bool ok;
    unsigned attempts;
    cn_actuator_call *call;
    bool cancel_in_attempt, cancel_in_done;
    uint64_t started_ns, done_ns;
} rec;

static void on_attempt(void *ctx, const cn_attempt *a)
{
    rec *r = ctx;
    if (r->attempt_calls < MAX_SEEN) {
        seen_attempt *s = &r->seen[r->attempt_calls];
        s->a = *a;
        snprintf(s->what, sizeof s->what, "%s", a->what ? a->what : "(null)");
        snprintf(s->output, sizeof s->output, "%s", a->output ? a->output : "(null)");
        s->a.what = s->what;
        s->a.output = s->output;
    }
    r->attempt_calls++;
    if (r->cancel_in_attempt)
        cn_actuator_cancel(r->call);
}

static void on_done(void *ctx, bool ok, unsigned attempts)
{
    rec *r = ctx;
    r->done_calls++;
    r->ok = ok;
    r->attempts = attempts;
    r->done_ns = uv_hrtime();
    if (r->cancel_in_done)
        cn_actuator_cancel(r->call); /* documented as a harmless no-op */
}

static int64_t elapsed_ms(const rec *r)
{
    return (int64_t)((r->done_ns - r->started_ns) / 1000000);
}

/* ---- fixture: a temporary directory of scripts -------------------------- */

static char *dir;

static int dir_setup(void **state)
{
    (void)state;
    dir = cn_test_tmpdir();
    return dir ? 0 : -1;
}

static int dir_teardown(void **state)
{
    (void)state;
    cn_test_rmtree(dir);
    free(dir);
    dir = NULL;
    return 0;
}

static const char *path_in_dir(const char *name)
{
    static char p[4][4096];
    static int next;
    char *b = p[next++ % 4];
    snprintf(b, sizeof p[0], "%s/%s", dir, name);
    return b;
}

/* An executable #!/bin/sh script; returns its path. */
static const char *script(const char *name, const char *body)
{
    char text[4096];
    snprintf(text, sizeof text, "#!/bin/sh\n%s\n", body);
    const char *p = cn_test_write(dir, name, text);
    assert_non_null(p);
    assert_int_equal(chmod(p, 0755), 0);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    if (buf)
        (void)!fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static pid_t read_pid(const char *path)
{
    char *s = slurp(path);
    assert_non_null(s);
    pid_t pid = (pid_t)atoi(s);
    free(s);
    assert_true(pid > 1);
    return pid;
}

/* Gone, or a zombie no one has reaped yet (an orphan's new parent may be
 * slow to reap, or never): either way it runs no more. Polls up to 3 s. */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 300; i++) {
        if (kill(pid, 0) == -1 && errno == ESRCH)
            return true;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        char *stat = slurp(path);
        const char *paren = stat ? strrchr(stat, ')') : NULL;
        bool zombie = paren && paren[1] == ' ' && paren[2] == 'Z';
        free(stat);
        if (zombie)
            return true;
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    return false;
}

static const cn_actuation ADVANCE = {.kind = CN_APPLY_ADVANCE, .stage = 2, .weight = 0.05,
                                     .rollout = "r-42", .service = "checkout",
                                     .version = "v2", .previous_version = "v1",
                                     .driver = "host:42:1700000000000"};

typedef struct exec_opts {
    int64_t timeout_ms; /* 0: 5 s */
    unsigned retries;
    int64_t backoff_ms;
} exec_opts;

/* Runs one exec call to the end on a fresh loop, which must close clean. */
static void run_exec(const char *const *argv, size_t argc, const cn_actuation *a,
                     const exec_opts *o, rec *r)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cn_actuator cfg = {.exec = {.items = (const char **)argv, .count = argc},
                       .timeout_ms = o->timeout_ms ? o->timeout_ms : 5000,
                       .retries = o->retries,
                       .backoff_ms = o->backoff_ms};
    char err[256] = "";
    r->started_ns = uv_hrtime();
    int rc = cn_actuator_start(&r->call, &loop, NULL, &cfg, a, on_attempt, on_done, r, err,
                               sizeof err);
    if (rc)
        print_error("start: %s\n", err);
    assert_int_equal(rc, CN_OK);
    assert_non_null(r->call);
    /* nothing is reported from inside start */
    assert_int_equal(r->attempt_calls, 0);
    assert_int_equal(r->done_calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- exec: the environment contract ------------------------------------ */

static const char ENV_SCRIPT[] =
    "env | grep -E '^CANARY_(ROLLOUT|SERVICE|VERSION|PREVIOUS_VERSION|STAGE|WEIGHT|ACTION"
    ")=' | sort > \"$1\"";

static char *env_of(const cn_actuation *a)
{
    const char *argv[] = {script("env.sh", ENV_SCRIPT), path_in_dir("env.out")};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 2, a, &o, &r);
    assert_int_equal(r.done_calls, 1);
    assert_true(r.ok);
    return slurp(argv[1]);
}

static void test_exec_env_advance(void **state)
{
    (void)state;
    char *env = env_of(&ADVANCE);
    assert_non_null(env);
    assert_string_equal(env, "CANARY_ACTION=advance\n"
                             "CANARY_PREVIOUS_VERSION=v1\n"
                             "CANARY_ROLLOUT=r-42\n"
                             "CANARY_SERVICE=checkout\n"
                             "CANARY_STAGE=2\n"
                             "CANARY_VERSION=v2\n"
                             "CANARY_WEIGHT=5\n");
    free(env);
}

/* The whole environment, raw (a shell would merge duplicates before we
 * could see them): the parent's, in order, without stale values of our
 * names, then ours. */
static void test_exec_env_replaces_stale(void **state)
{
    (void)state;
    static char path[] = "PATH=/usr/bin:/bin", stage[] = "CANARY_STAGE=99",
                keep[] = "CANARY_TEST_KEEP=kept", weight[] = "CANARY_WEIGHT=stale",
                stages[] = "CANARY_STAGES=other";
    char *fake[] = {path, stage, keep, weight, stages, NULL};
    char **saved = environ;
    environ = fake;
    const char *argv[] = {"env"};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    environ = saved;
    assert_true(r.ok);
    assert_string_equal(r.seen[0].output, "PATH=/usr/bin:/bin\n"
                                          "CANARY_TEST_KEEP=kept\n"
                                          "CANARY_STAGES=other\n"
                                          "CANARY_ROLLOUT=r-42\n"
                                          "CANARY_SERVICE=checkout\n"
                                          "CANARY_VERSION=v2\n"
                                          "CANARY_PREVIOUS_VERSION=v1\n"
                                          "CANARY_STAGE=2\n"
                                          "CANARY_WEIGHT=5\n"
                                          "CANARY_ACTION=advance\n"
                                          "CANARY_DRIVER=host:42:1700000000000");
}

static void test_exec_env_rollback(void **state)
{
    (void)state;
    cn_actuation a = {.kind = CN_APPLY_ROLLBACK, .stage = 0, .weight = 0,
                      .rollout = "r-42", .service = "checkout", .version = "v2",
                      .previous_version = NULL};
    char *env = env_of(&a);
    assert_non_null(env);
    assert_string_equal(env, "CANARY_ACTION=rollback\n"
                             "CANARY_PREVIOUS_VERSION=\n"
                             "CANARY_ROLLOUT=r-42\n"
                             "CANARY_SERVICE=checkout\n"
                             "CANARY_STAGE=0\n"
                             "CANARY_VERSION=v2\n"
                             "CANARY_WEIGHT=0\n");
    free(env);
}

static void test_exec_env_complete(void **state)
{
    (void)state;
    cn_actuation a = ADVANCE;
    a.kind = CN_APPLY_COMPLETE;
    a.stage = 6;
    a.weight = 1;
    char *env = env_of(&a);
    assert_non_null(env);
    assert_string_equal(env, "CANARY_ACTION=complete\n"
                             "CANARY_PREVIOUS_VERSION=v1\n"
                             "CANARY_ROLLOUT=r-42\n"
                             "CANARY_SERVICE=checkout\n"
                             "CANARY_STAGE=6\n"
                             "CANARY_VERSION=v2\n"
                             "CANARY_WEIGHT=100\n");
    free(env);
}

/* The shipped example follows the same contract: it runs, exits 0 and
 * says what it applied. */
static void test_exec_example_script(void **state)
{
    (void)state;
    const char *argv[] = {cn_test_src("examples/actuators/set-weight.sh")};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.done_calls, 1);
    if (!r.ok)
        print_error("%s: %s\n", r.seen[0].what, r.seen[0].output);
    assert_true(r.ok);
    assert_contains(r.seen[0].output, "r-42 checkout: advance stage 2 weight 5%");
}

/* ---- exec: exit status and retries -------------------------------------- */

static void test_exec_ok_first_time(void **state)
{
    (void)state;
    const char *argv[] = {script("ok.sh", "echo applied")};
    exec_opts o = {.retries = 3, .backoff_ms = 10};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.done_calls, 1);
    assert_true(r.ok);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.attempt_calls, 1);
    const cn_attempt *a = &r.seen[0].a;
    assert_int_equal(a->number, 1);
    assert_true(a->ok);
    assert_true(a->last);
    assert_int_equal(a->retry_in_ms, 0);
    assert_prefix(a->what, "exit 0 in ");
    assert_contains(a->what, " ms");
    assert_string_equal(a->output, "applied"); /* the last newline is trimmed */
}

/* argv[0] without a slash is looked up in PATH; the rest are arguments,
 * passed as they are (no shell in between). */
static void test_exec_path_lookup_and_args(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "printf '[%s]' \"$1\"; exit 0", "sh", "a b;$(x)"};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 5, &ADVANCE, &o, &r);
    assert_true(r.ok);
    assert_string_equal(r.seen[0].output, "[a b;$(x)]");
}

static void test_exec_fails_every_time(void **state)
{
    (void)state;
    const char *argv[] = {script("fail.sh", "echo 'no load balancer' >&2; exit 1")};
    exec_opts o = {.retries = 2, .backoff_ms = 10};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.done_calls, 1);
    assert_false(r.ok);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.attempt_calls, 3);
    static const int64_t retry_in[] = {10, 20, 0};
    for (unsigned i = 0; i < 3; i++) {
        const cn_attempt *a = &r.seen[i].a;
        assert_int_equal(a->number, i + 1);
        assert_false(a->ok);
        assert_int_equal(a->last, i == 2);
        assert_int_equal(a->retry_in_ms, retry_in[i]);
        assert_prefix(a->what, "exit 1 in ");
        assert_string_equal(a->output, "no load balancer");
    }
    assert_true(elapsed_ms(&r) >= 30); /* both backoffs were served */
}

static void test_exec_succeeds_on_third(void **state)
{
    (void)state;
    const char *argv[] = {script("flaky.sh", "n=$(cat \"$1\" 2>/dev/null || echo 0)\n"
                                             "n=$((n + 1)); echo $n > \"$1\"\n"
                                             "echo \"try $n\"; [ $n -ge 3 ]"),
                          path_in_dir("count")};
    exec_opts o = {.retries = 5, .backoff_ms = 1};
    rec r = {0};
    run_exec(argv, 2, &ADVANCE, &o, &r);
    assert_true(r.ok);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.attempt_calls, 3);
    assert_false(r.seen[0].a.ok);
    assert_false(r.seen[0].a.last);
    assert_int_equal(r.seen[0].a.retry_in_ms, 1);
    assert_int_equal(r.seen[1].a.retry_in_ms, 2);
    assert_true(r.seen[2].a.ok);
    assert_true(r.seen[2].a.last);
    /* each attempt has only its own output */
    assert_string_equal(r.seen[0].output, "try 1");
    assert_string_equal(r.seen[2].output, "try 3");
}

static void test_exec_backoff_doubles_to_a_minute(void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/canary-actuator"};
    /* backoff 0 retries at once; the cap is checked with a cancel from
     * the callback so the test does not wait a minute */
    exec_opts o = {.retries = 2, .backoff_ms = 0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.seen[0].a.retry_in_ms, 0);
    assert_int_equal(r.seen[1].a.retry_in_ms, 0);

    exec_opts big = {.retries = 20, .backoff_ms = 40000};
    rec r2 = {.cancel_in_attempt = true};
    run_exec(argv, 1, &ADVANCE, &big, &r2);
    assert_int_equal(r2.attempt_calls, 1);
    assert_int_equal(r2.seen[0].a.retry_in_ms, 40000);
    assert_int_equal(r2.done_calls, 0);
}

static void test_exec_killed_by_signal(void **state)
{
    (void)state;
    const char *argv[] = {script("suicide.sh", "kill -9 $$")};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_false(r.ok);
    assert_prefix(r.seen[0].what, "killed by signal 9 in ");
}

/* ---- exec: output ------------------------------------------------------- */

static void test_exec_output_both_streams(void **state)
{
    (void)state;
    const char *argv[] = {script("both.sh", "echo to-stdout; echo to-stderr >&2; exit 0")};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_true(r.ok);
    assert_contains(r.seen[0].output, "to-stdout\n");
    assert_contains(r.seen[0].output, "to-stderr");
    assert_int_equal(strlen(r.seen[0].output), strlen("to-stdout\nto-stderr"));
}

static void test_exec_output_capped(void **state)
{
    (void)state;
    /* 160 lines of 64 bytes: 10 KiB, of which the last 2 KiB (32 lines,
     * from line 128) are kept */
    const char *argv[] = {script("loud.sh", "i=0; while [ $i -lt 160 ]; do "
                                            "printf '%063d\\n' $i; i=$((i + 1)); done")};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_true(r.ok);
    char want[4096];
    size_t n = (size_t)snprintf(want, sizeof want, "[... 8192 bytes cut]");
    for (int i = 128; i < 160; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%063d\n", i);
    want[n - 1] = '\0'; /* the last newline is trimmed */
    assert_string_equal(r.seen[0].output, want);
}

/* ---- exec: time-outs ------------------------------------------------------ */

static void test_exec_timeout_kills_group(void **state)
{
    (void)state;
    /* a subshell that notes the SIGTERM it gets, and its own child */
    const char *pidfile = path_in_dir("grandchild.pid"), *marker = path_in_dir("term");
    const char *argv[] = {script("slow.sh", "(trap 'echo term > \"$2\"; exit 0' TERM\n"
                                            " sleep 30 & echo $! > \"$1\"; wait) &\nwait"),
                          pidfile, marker};
    exec_opts o = {.timeout_ms = 200};
    rec r = {0};
    run_exec(argv, 3, &ADVANCE, &o, &r);
    assert_int_equal(r.done_calls, 1);
    assert_false(r.ok);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.seen[0].what, "killed after timeout 200ms");
    assert_true(elapsed_ms(&r) >= 200);
    assert_true(elapsed_ms(&r) < 5000);
    assert_true(process_gone(read_pid(pidfile)));
    char *term = slurp(marker);
    assert_non_null(term); /* SIGTERM went to the whole group */
    assert_string_equal(term, "term\n");
    free(term);
}

static void test_exec_timeout_escalates_to_sigkill(void **state)
{
    (void)state;
    const char *pidfile = path_in_dir("stubborn.pid");
    /* the ignored TERM is inherited by sleep too */
    const char *argv[] = {script("stubborn.sh", "trap '' TERM\nsleep 30 & echo $! > \"$1\"; wait"),
                          pidfile};
    exec_opts o = {.timeout_ms = 100};
    rec r = {0};
    run_exec(argv, 2, &ADVANCE, &o, &r);
    assert_false(r.ok);
    assert_string_equal(r.seen[0].what, "killed after timeout 100ms");
    /* SIGTERM did nothing; SIGKILL came a second later */
    assert_true(elapsed_ms(&r) >= 1000);
    assert_true(elapsed_ms(&r) < 5000);
    assert_true(process_gone(read_pid(pidfile)));
}

/* A grandchild that keeps the pipes open cannot hold the attempt: after the
 * exit, the pipes get one second. The grandchild is left alone. */
static void test_exec_lingering_grandchild(void **state)
{
    (void)state;
    const char *pidfile = path_in_dir("linger.pid");
    const char *argv[] = {script("linger.sh", "sleep 30 & echo $! > \"$1\"; echo started"),
                          pidfile};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 2, &ADVANCE, &o, &r);
    pid_t pid = read_pid(pidfile);
    bool alive = kill(pid, 0) == 0;
    kill(pid, SIGKILL);
    assert_true(r.ok);
    assert_prefix(r.seen[0].what, "exit 0 in ");
    assert_string_equal(r.seen[0].output, "started");
    assert_true(elapsed_ms(&r) >= 1000);
    assert_true(elapsed_ms(&r) < 5000);
    assert_true(alive);
}

/* ---- exec: programs that cannot start ----------------------------------- */

static void test_exec_missing_program(void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/canary-actuator", "x"};
    exec_opts o = {.retries = 1, .backoff_ms = 1};
    rec r = {0};
    run_exec(argv, 2, &ADVANCE, &o, &r);
    assert_int_equal(r.done_calls, 1);
    assert_false(r.ok);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.attempt_calls, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_string_equal(r.seen[i].what, "could not start '/nonexistent/canary-actuator': "
                                            "no such file or directory");
        assert_string_equal(r.seen[i].output, "");
    }
}

static void test_exec_not_executable(void **state)
{
    (void)state;
    const char *p = cn_test_write(dir, "plain.sh", "#!/bin/sh\nexit 0\n");
    assert_int_equal(chmod(p, 0644), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s", p);
    const char *argv[] = {path};
    exec_opts o = {0};
    rec r = {0};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_false(r.ok);
    assert_int_equal(r.attempts, 1);
    char want[4200];
    snprintf(want, sizeof want, "could not start '%s': permission denied", path);
    assert_string_equal(r.seen[0].what, want);
}

/* ---- exec: cancel ------------------------------------------------------- */

static void cancel_timer_cb(uv_timer_t *t)
{
    rec *r = t->data;
    cn_actuator_cancel(r->call);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_exec_cancel_mid_run(void **state)
{
    (void)state;
    const char *pidfile = path_in_dir("cancel.pid");
    const char *argv[] = {script("cancel.sh", "sleep 30 & echo $! > \"$1\"; wait"), pidfile};
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cn_actuator cfg = {.exec = {.items = argv, .count = 2}, .timeout_ms = 10000,
                       .retries = 3, .backoff_ms = 10};
    rec r = {0};
    char err[256];
    r.started_ns = uv_hrtime();
    assert_int_equal(cn_actuator_start(&r.call, &loop, NULL, &cfg, &ADVANCE, on_attempt,
                                       on_done, &r, err, sizeof err),
                     CN_OK);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &r;
    uv_timer_start(&t, cancel_timer_cb, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.attempt_calls, 0);
    assert_int_equal(r.done_calls, 0);
    assert_true((uv_hrtime() - r.started_ns) / 1000000 < 5000);
    assert_true(process_gone(read_pid(pidfile)));
}

/* Cancelled before its first attempt began: nothing runs at all. */
static void test_exec_cancel_at_once(void **state)
{
    (void)state;
    const char *marker = path_in_dir("ran");
    const char *argv[] = {script("touch.sh", "echo > \"$1\""), marker};
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cn_actuator cfg = {.exec = {.items = argv, .count = 2}, .timeout_ms = 1000};
    rec r = {0};
    char err[256];
    assert_int_equal(cn_actuator_start(&r.call, &loop, NULL, &cfg, &ADVANCE, on_attempt,
                                       on_done, &r, err, sizeof err),
                     CN_OK);
    cn_actuator_cancel(r.call);
    cn_actuator_cancel(NULL); /* harmless */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.attempt_calls, 0);
    assert_int_equal(r.done_calls, 0);
    assert_int_equal(access(marker, F_OK), -1);
}

/* Cancel from inside on_attempt stops the retries: no second attempt,
 * no done; after the last attempt, no done either. */
static void test_exec_cancel_from_on_attempt(void **state)
{
    (void)state;
    const char *argv[] = {script("fail1.sh", "exit 1")};
    exec_opts o = {.retries = 3, .backoff_ms = 10};
    rec r = {.cancel_in_attempt = true};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.attempt_calls, 1);
    assert_false(r.seen[0].a.last);
    assert_int_equal(r.done_calls, 0);

    exec_opts once = {0};
    rec r2 = {.cancel_in_attempt = true};
    run_exec(argv, 1, &ADVANCE, &once, &r2);
    assert_int_equal(r2.attempt_calls, 1);
    assert_true(r2.seen[0].a.last);
    assert_int_equal(r2.done_calls, 0);
}

/* Cancel from inside done is a no-op: the call is finishing already. */
static void test_exec_cancel_from_done(void **state)
{
    (void)state;
    const char *argv[] = {script("ok1.sh", "exit 0")};
    exec_opts o = {0};
    rec r = {.cancel_in_done = true};
    run_exec(argv, 1, &ADVANCE, &o, &r);
    assert_int_equal(r.attempt_calls, 1);
    assert_int_equal(r.done_calls, 1);
    assert_true(r.ok);
}

/* ---- start-time checks -------------------------------------------------- */

static void expect_start_error(const cn_actuator *cfg, cn_http *http, const char *msg)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    rec r = {0};
    cn_actuator_call *c = (cn_actuator_call *)&r; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(cn_actuator_start(&c, &loop, http, cfg, &ADVANCE, on_attempt, on_done, &r,
                                       err, sizeof err),
                     CN_EINVAL);
    assert_null(c);
    assert_contains(err, msg);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.attempt_calls + r.done_calls, 0);
}

static void test_start_errors(void **state)
{
    (void)state;
    cn_actuator none = {.timeout_ms = 1000};
    expect_start_error(&none, NULL, "no actuator configured");
    expect_start_error(NULL, NULL, "no actuator configured");

    const char *argv[] = {"true"};
    cn_actuator both = {.exec = {.items = argv, .count = 1}, .http_url = "http://127.0.0.1:1/",
                        .timeout_ms = 1000};
    expect_start_error(&both, NULL, "both 'exec' and 'http'");

    const char *empty[] = {""};
    cn_actuator blank = {.exec = {.items = empty, .count = 1}, .timeout_ms = 1000};
    expect_start_error(&blank, NULL, "must start with a command");

    cn_actuator no_timeout = {.exec = {.items = argv, .count = 1}, .timeout_ms = 0};
    expect_start_error(&no_timeout, NULL, "timeout must be greater than 0");

    cn_actuator http = {.http_url = "http://127.0.0.1:1/", .timeout_ms = 1000};
    expect_start_error(&http, NULL, "needs an http client");
}

/* ---- names and numbers -------------------------------------------------- */

static void test_format_weight(void **state)
{
    (void)state;
    static const struct {
        double fraction;
        const char *text;
    } cases[] = {
        {0, "0"},         {-0.0, "0"},        {0.0001, "0.01"},   {0.001, "0.1"},
        {0.005, "0.5"},   {0.05, "5"},        {0.07, "7"},        {0.25, "25"},
        {0.5, "50"},      {1, "100"},         {1.0 / 3, "33.3333"}, {0.0064, "0.64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        cn_format_weight(buf, sizeof buf, cases[i].fraction);
        if (strcmp(buf, cases[i].text))
            print_error("weight %g: got '%s', want '%s'\n", cases[i].fraction, buf,
                        cases[i].text);
        assert_string_equal(buf, cases[i].text);
    }
    char small[3];
    cn_format_weight(small, sizeof small, 1.0 / 3); /* cut, still terminated */
    assert_string_equal(small, "33");
}

static void test_apply_kind_names(void **state)
{
    (void)state;
    assert_string_equal(cn_apply_kind_name(CN_APPLY_ADVANCE), "advance");
    assert_string_equal(cn_apply_kind_name(CN_APPLY_ROLLBACK), "rollback");
    assert_string_equal(cn_apply_kind_name(CN_APPLY_COMPLETE), "complete");
    assert_string_equal(cn_apply_kind_name((cn_apply_kind)7), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_env_advance, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_env_replaces_stale, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_env_rollback, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_env_complete, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_example_script, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_ok_first_time, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_path_lookup_and_args, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_fails_every_time, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_succeeds_on_third, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_backoff_doubles_to_a_minute, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_killed_by_signal, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_output_both_streams, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_output_capped, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_timeout_kills_group, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_timeout_escalates_to_sigkill, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_lingering_grandchild, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_missing_program, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_not_executable, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_cancel_mid_run, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_cancel_at_once, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_cancel_from_on_attempt, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_exec_cancel_from_done, dir_setup, dir_teardown),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_format_weight),
        cmocka_unit_test(test_apply_kind_names),
    };
    return cmocka_run_group_tests_name("actuator", tests, NULL, NULL);
}
