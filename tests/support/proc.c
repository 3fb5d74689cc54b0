#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    char *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!buf)
        return NULL;
    rewind(f);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    buf[got] = '\0';
    return buf;
}

int cn_test_run(cn_test_output *o, const char *cwd, const char *const *args)
{
    memset(o, 0, sizeof(*o));
    const char *bin = getenv("CANARY_BIN");
    char default_bin[4096];
    if (!bin) {
        snprintf(default_bin, sizeof default_bin, "%s", cn_test_src("build/canary"));
        bin = default_bin;
    }
    const char *argv[64];
    size_t n = 0;
    /* The wrapper is split on spaces: "valgrind --quiet ..." */
    char wrapper[1024] = "";
    const char *w = getenv("CANARY_WRAPPER");
    if (w && *w) {
        snprintf(wrapper, sizeof wrapper, "%s", w);
        for (char *tok = strtok(wrapper, " "); tok && n < 40; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    FILE *out = tmpfile(), *err = tmpfile();
    if (!out || !err) {
        if (out)
            fclose(out);
        if (err)
            fclose(err);
        return o->code = -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fileno(out), 1);
    posix_spawn_file_actions_adddup2(&fa, fileno(err), 2);
    char old[4096];
    if (cwd && (!getcwd(old, sizeof old) || chdir(cwd) != 0))
        return o->code = -1;
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    if (cwd && chdir(old) != 0)
        rc = rc ? rc : errno;
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    o->out = slurp(out);
    o->err = slurp(err);
    fclose(out);
    fclose(err);
    if (rc != 0)
        return o->code = -1;
    o->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return o->code;
}

void cn_test_output_free(cn_test_output *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

const char *cn_test_src(const char *relative)
{
    static char buf[8][4096];
    static int next;
    const char *root = getenv("CANARY_SRC");
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", root ? root : ".", relative);
    return b;
}

const char *cn_test_write(const char *dir, const char *name, const char *text)
{
    static char path[8][4096];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return p;
}

char *cn_test_tmpdir(void)
{
    char *t = strdup("/tmp/canary-test-XXXXXX");
    if (t && !mkdtemp(t)) {
        free(t);
        return NULL;
    }
    return t;
}

void cn_test_rmtree(const char *dir)
{
    pid_t pid;
    const char *argv[] = {"rm", "-rf", "--", dir, NULL};
    if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)argv, environ) == 0)
        waitpid(pid, NULL, 0);
}

size_t cn_test_count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = hay; len && (p = strstr(p, needle)); p += len)
        n++;
    return n;
}
