/* posix_openpt, grantpt, unlockpt, ptsname */
#define _XOPEN_SOURCE 700
#include "background.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

extern char **environ;

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool cn_test_wrapped(void)
{
    const char *w = getenv("CANARY_WRAPPER");
    return w && *w;
}

int cn_test_patience_ms(int ms)
{
    return cn_test_wrapped() ? ms * 20 : ms;
}

/* stdout to out_path, or to the terminal tty (a device path) when given. */
static pid_t spawn(const char *cwd, const char *const *args, const char *out_path,
                   const char *err_path, bool tty)
{
    const char *bin = getenv("CANARY_BIN");
    char default_bin[4096];
    if (!bin) {
        snprintf(default_bin, sizeof default_bin, "%s", cn_test_src("build/canary"));
        bin = default_bin;
    }
    const char *argv[64];
    size_t n = 0;
    char wrapper[1024] = "";
    if (cn_test_wrapped()) {
        snprintf(wrapper, sizeof wrapper, "%s", getenv("CANARY_WRAPPER"));
        for (char *tok = strtok(wrapper, " "); tok && n < 40; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     tty ? O_WRONLY | O_NOCTTY : O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    /* The child inherits the directory it is spawned from; the test's own
     * is restored at once. */
    char old[4096];
    if (cwd && (!getcwd(old, sizeof old) || chdir(cwd) != 0)) {
        fprintf(stderr, "cannot change to %s: %s\n", cwd, strerror(errno));
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    if (cwd && chdir(old) != 0)
        fprintf(stderr, "cannot change back to %s: %s\n", old, strerror(errno));
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    return pid;
}

pid_t cn_test_spawn(const char *cwd, const char *const *args, const char *out_path,
                    const char *err_path)
{
    return spawn(cwd, args, out_path, err_path, false);
}

pid_t cn_test_spawn_tty(const char *cwd, const char *const *args, const char *err_path,
                        int *master)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0 || grantpt(*master) != 0 || unlockpt(*master) != 0) {
        fprintf(stderr, "cannot open a pseudo-terminal: %s\n", strerror(errno));
        if (*master >= 0)
            close(*master);
        *master = -1;
        return -1;
    }
    fcntl(*master, F_SETFL, fcntl(*master, F_GETFL) | O_NONBLOCK);
    char slave[256];
    snprintf(slave, sizeof slave, "%s", ptsname(*master));
    /* A terminal the views recognise, whatever the test runs under. */
    setenv("TERM", "xterm", 1);
    pid_t pid = spawn(cwd, args, slave, err_path, true);
    if (pid < 0) {
        close(*master);
        *master = -1;
    }
    return pid;
}

bool cn_test_tty_wait(int master, char **buf, size_t *len, const char *needle, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        char chunk[4096];
        ssize_t got;
        /* Drain what is there, so the child never blocks on a full terminal. */
        while ((got = read(master, chunk, sizeof chunk)) > 0) {
            char *bigger = realloc(*buf, *len + (size_t)got + 1);
            if (!bigger)
                return false;
            *buf = bigger;
            memcpy(*buf + *len, chunk, (size_t)got);
            *len += (size_t)got;
            (*buf)[*len] = '\0';
        }
        if (needle && *buf && strstr(*buf, needle))
            return true;
        if (waited >= timeout_ms)
            return !needle;
        nap();
    }
}

int cn_test_wait(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    for (int waited = 0;; waited += 10) {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return exit_code(status);
        if (got < 0 && errno != EINTR)
            return -1;
        if (waited >= timeout_ms)
            return CN_TEST_STILL_RUNNING;
        nap();
    }
}

int cn_test_kill(pid_t pid)
{
    if (pid <= 0 || kill(pid, SIGKILL) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return exit_code(status);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    bool found = false;
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0 || len < cap)
            break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger)
            break;
        buf = bigger;
        cap *= 2;
    }
    if (buf) {
        buf[len] = '\0';
        found = strstr(buf, needle) != NULL;
    }
    free(buf);
    fclose(f);
    return found;
}

bool cn_test_wait_text(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (file_has(path, needle))
            return true;
        nap();
    }
    return false;
}
