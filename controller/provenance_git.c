/*
 * provenance_git.c: runs git for a range and feeds provenance.c's parsers
 * (the shell). git runs through posix_spawnp with an argv, never a shell;
 * stdout and stderr are read together with poll() so neither can fill and
 * stall git.
 */
#include "canary/provenance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "canary/status.h"

/* unistd.h declares it only under _GNU_SOURCE. */
extern char **environ;

#define PROV_LOG_FORMAT "%h%x1f%s%x1f%(trailers:unfold)%x1e"
/* A diff or log bigger than this is not something to plan from; failing
 * beats holding an unbounded amount of git output in memory. */
#define PROV_OUTPUT_MAX ((size_t)64 << 20)
/* Only the first line of git's complaint is shown; keep a little more. */
#define PROV_STDERR_MAX 4096

typedef struct out_buf {
    char *data;
    size_t len, cap;
} out_buf;

static int buf_append(out_buf *b, const char *s, size_t n, size_t max)
{
    if (n > max - b->len)
        return CN_ELIMIT;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 65536;
        while (ncap < b->len + n)
            ncap *= 2;
        if (ncap > max)
            ncap = max;
        char *d = realloc(b->data, ncap);
        if (!d)
            return CN_ENOMEM;
        b->data = d;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return CN_OK;
}

/* Copies the first non-empty line of git's stderr, trimmed, into line. */
static void first_line(const char *s, size_t len, char *line, size_t cap)
{
    const char *end = s + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *l = s;
        while (l < le && (*l == ' ' || *l == '\t' || *l == '\r'))
            l++;
        size_t n = (size_t)(le - l);
        while (n && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
            n--;
        if (n) {
            snprintf(line, cap, "%.*s", (int)(n < INT_MAX ? n : INT_MAX), l);
            return;
        }
        s = le + 1;
    }
    line[0] = '\0';
}

static void set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* Runs git with argv (argv[0] is "git"), waits for it and returns its
 * stdout in *out (malloc'ed, the caller frees out->data, also on error).
 * stdin is /dev/null so git never waits on the terminal. Both pipes are
 * drained together with poll(), so a git that fills its stderr pipe
 * cannot deadlock against us reading stdout. what names the command in
 * messages ("git log 'A..B'"). Returns CN_ESPAWN if git cannot start or
 * fails, CN_ELIMIT past PROV_OUTPUT_MAX, CN_EIO, CN_ENOMEM. */
static int run_git(const char *const argv[], const char *what, out_buf *out,
                   char *err, size_t errlen)
{
    int rc = CN_OK;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    char errtext[PROV_STDERR_MAX];
    size_t errtext_len = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;

    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) {
        snprintf(err, errlen, "cannot run git: %s", strerror(errno));
        rc = CN_ESPAWN;
        goto close_pipes;
    }
    /* The child gets its ends through dup2 (which drops FD_CLOEXEC); the
     * originals must not leak into git or it would hold its own pipes. */
    for (int k = 0; k < 2; k++) {
        set_cloexec(out_pipe[k]);
        set_cloexec(err_pipe[k]);
    }
    int e = posix_spawn_file_actions_init(&fa);
    if (e) {
        snprintf(err, errlen, "cannot run git: %s", strerror(e));
        rc = CN_ESPAWN;
        goto close_pipes;
    }
    if ((e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                              0)) ||
        (e = posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1)) ||
        (e = posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2))) {
        snprintf(err, errlen, "cannot run git: %s", strerror(e));
        rc = CN_ESPAWN;
        goto destroy_fa;
    }
    /* posix_spawnp takes char *const[] for historical reasons only; it
     * does not modify the strings. */
    e = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    if (e) {
        if (e == ENOENT)
            snprintf(err, errlen,
                     "cannot run git: %s; install git or drop --git-range",
                     strerror(e));
        else
            snprintf(err, errlen, "cannot run git: %s", strerror(e));
        rc = CN_ESPAWN;
        goto destroy_fa;
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;

    struct pollfd fds[2] = {{.fd = out_pipe[0], .events = POLLIN},
                            {.fd = err_pipe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0 && rc == CN_OK) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: poll failed: %s", what, strerror(errno));
            rc = CN_EIO;
            break;
        }
        for (int k = 0; k < 2 && rc == CN_OK; k++) {
            if (fds[k].fd < 0 || !fds[k].revents)
                continue;
            char chunk[65536];
            ssize_t n = read(fds[k].fd, chunk, sizeof chunk);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                snprintf(err, errlen, "%s: reading its output failed: %s",
                         what, strerror(errno));
                rc = CN_EIO;
            } else if (n == 0) {
                fds[k].fd = -1; /* closed below with the pipe */
                open_fds--;
            } else if (k == 0) {
                rc = buf_append(out, chunk, (size_t)n, PROV_OUTPUT_MAX);
                if (rc == CN_ELIMIT)
                    snprintf(err, errlen,
                             "%s printed more than %zu MiB; use a smaller "
                             "range",
                             what, PROV_OUTPUT_MAX >> 20);
                else if (rc != CN_OK)
                    snprintf(err, errlen, "%s: out of memory", what);
            } else {
                /* Keep the start of stderr, drain the rest. */
                size_t keep = sizeof errtext - errtext_len;
                if (keep > (size_t)n)
                    keep = (size_t)n;
                memcpy(errtext + errtext_len, chunk, keep);
                errtext_len += keep;
            }
        }
    }
    /* On error git may still be writing: stop it rather than wait on a
     * pipe nobody reads. pid is our own child. */
    if (rc != CN_OK)
        kill(pid, SIGKILL);

    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            if (rc == CN_OK) {
                snprintf(err, errlen, "%s: waitpid failed: %s", what,
                         strerror(errno));
                rc = CN_ESPAWN;
            }
            goto destroy_fa;
        }
    }
    if (rc == CN_OK) {
        char line[512];
        first_line(errtext, errtext_len, line, sizeof line);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !line[0]) {
            /* POSIX lets posix_spawnp report a failed exec this way instead
             * of returning an error (valgrind does, some libcs do); git
             * itself never exits 127 and would say why on stderr. */
            snprintf(err, errlen,
                     "cannot run git: exit status 127 (not found?); install "
                     "git or drop --git-range");
            rc = CN_ESPAWN;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            if (line[0])
                snprintf(err, errlen, "%s failed: %s", what, line);
            else
                snprintf(err, errlen, "%s failed with exit status %d", what,
                         WEXITSTATUS(status));
            rc = CN_ESPAWN;
        } else if (WIFSIGNALED(status)) {
            snprintf(err, errlen, "%s was killed by signal %d", what,
                     WTERMSIG(status));
            rc = CN_ESPAWN;
        }
    }
destroy_fa:
    posix_spawn_file_actions_destroy(&fa);
close_pipes:
    for (int k = 0; k < 2; k++) {
        if (out_pipe[k] >= 0)
            close(out_pipe[k]);
        if (err_pipe[k] >= 0)
            close(err_pipe[k]);
    }
    return rc;
}

/* Splits range into its two revisions (copied into p->arena). Rejects
 * anything but "A..B" with both sides given, and a side starting with '-'
 * that git would take for an option. */
static int split_range(cn_provenance *p, const char *range, const char **a,
                       const char **b, char *err, size_t errlen)
{
    if (!range || !*range) {
        snprintf(err, errlen, "--git-range: empty range; expected A..B");
        return CN_EINVAL;
    }
    if (strstr(range, "...")) {
        snprintf(err, errlen,
                 "--git-range '%s': symmetric ranges (A...B) are not "
                 "supported; use A..B",
                 range);
        return CN_EINVAL;
    }
    const char *dots = strstr(range, "..");
    if (!dots || strstr(dots + 2, "..")) {
        snprintf(err, errlen, "--git-range '%s': expected A..B", range);
        return CN_EINVAL;
    }
    if (dots == range || !dots[2]) {
        snprintf(err, errlen,
                 "--git-range '%s': both sides of A..B must be given", range);
        return CN_EINVAL;
    }
    if (range[0] == '-' || dots[2] == '-') {
        snprintf(err, errlen,
                 "--git-range '%s': a revision may not start with '-'", range);
        return CN_EINVAL;
    }
    *a = cn_arena_strndup(&p->arena, range, (size_t)(dots - range));
    *b = cn_arena_strdup(&p->arena, dots + 2);
    if (!*a || !*b) {
        snprintf(err, errlen, "out of memory");
        return CN_ENOMEM;
    }
    return CN_OK;
}

/* Runs, in repo_dir (NULL: the current directory):
 *   git -C DIR log --no-color --no-show-signature
 *       --format=%h%x1f%s%x1f%(trailers:unfold)%x1e A..B --
 *   git -C DIR diff --no-color --no-ext-diff --no-textconv --find-renames
 *       --numstat -z A B --
 * The trailing "--" makes git read A and B as revisions only, never as
 * paths. The diff is A's tree against B's, which is what deploying B over
 * A changes (not A...B, which would leave out what B drops from A). Renames
 * are detected explicitly, whatever diff.renames says, so a moved file
 * counts once with the lines really changed rather than as a whole file
 * deleted and added. --no-show-signature keeps gpg output out of the log
 * when log.showSignature is set; --no-textconv and --no-ext-diff keep user
 * configuration from changing the counts or running other programs. */
int cn_provenance_from_git(cn_provenance *p, const char *repo_dir,
                           const char *range, const cn_strings *agents,
                           const cn_policy *policy, char *err, size_t errlen)
{
    const char *a, *b;
    int rc = split_range(p, range, &a, &b, err, errlen);
    if (rc != CN_OK)
        return rc;
    p->range = cn_arena_strdup(&p->arena, range);
    char *what = cn_arena_printf(&p->arena, "git log '%s'", range);
    char *what_diff = cn_arena_printf(&p->arena, "git diff '%s' '%s'", a, b);
    if (!p->range || !what || !what_diff) {
        snprintf(err, errlen, "out of memory");
        return CN_ENOMEM;
    }
    const char *dir = repo_dir && *repo_dir ? repo_dir : ".";

    const char *log_argv[] = {"git", "-C", dir, "log", "--no-color",
                              "--no-show-signature",
                              "--format=" PROV_LOG_FORMAT, range, "--", NULL};
    out_buf out = {0};
    rc = run_git(log_argv, what, &out, err, errlen);
    if (rc == CN_OK) {
        rc = cn_provenance_parse_log(p, out.data, out.len, agents);
        if (rc != CN_OK)
            snprintf(err, errlen, "%s: cannot parse its output: %s", what,
                     cn_strerror(rc));
    }
    free(out.data);
    if (rc != CN_OK)
        return rc;

    const char *diff_argv[] = {"git", "-C", dir, "diff", "--no-color",
                               "--no-ext-diff", "--no-textconv",
                               "--find-renames", "--numstat", "-z", a, b,
                               "--", NULL};
    out = (out_buf){0};
    rc = run_git(diff_argv, what_diff, &out, err, errlen);
    if (rc == CN_OK) {
        rc = cn_provenance_parse_numstat(p, out.data, out.len, policy);
        if (rc != CN_OK)
            snprintf(err, errlen, "%s: cannot parse its output: %s",
                     what_diff, cn_strerror(rc));
    }
    free(out.data);
    return rc;
}
