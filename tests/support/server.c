#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Large enough for the fake server's oversized reply. */
#define REPLY_MAX (16 * 1024 * 1024)

static const char *wrapper(void)
{
    const char *w = getenv("CANARY_FAKE_WRAPPER");
    return w && *w ? w : NULL;
}

/* A valgrind'ed server starts and stops far more slowly. */
static int patience_ms(void)
{
    return wrapper() ? 60000 : 5000;
}

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int port = -1;
    char nl = 0;
    if (fscanf(f, "%d%c", &port, &nl) != 2 || nl != '\n' || port <= 0 || port > 65535)
        port = -1;
    fclose(f);
    return port;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t cn_test_server_start(const char *const *argv, const char *port_file, int *port)
{
    *port = 0;
    const char *args[64];
    size_t n = 0;
    char split[1024] = "";
    if (wrapper()) {
        snprintf(split, sizeof split, "%s", wrapper());
        for (char *tok = strtok(split, " "); tok && n < 40; tok = strtok(NULL, " "))
            args[n++] = tok;
    }
    for (size_t i = 0; argv[i] && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    unlink(port_file);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, args[0], &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot start %s: %s\n", args[0], strerror(rc));
        return -1;
    }
    for (int waited = 0; waited < patience_ms(); waited += 10) {
        int p = read_port(port_file);
        if (p > 0) {
            *port = p;
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "%s exited with %d before writing %s\n", argv[0], exit_code(status),
                    port_file);
            return -1;
        }
        nap();
    }
    fprintf(stderr, "%s wrote no port to %s in %d ms; killed\n", argv[0], port_file,
            patience_ms());
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int cn_test_server_stop(pid_t pid)
{
    if (pid <= 0 || kill(pid, SIGTERM) != 0)
        return -1;
    int status;
    for (int waited = 0; waited < patience_ms(); waited += 10) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return exit_code(status);
        if (got < 0 && errno != EINTR)
            return -1;
        nap();
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return exit_code(status);
}

/* ---- client ------------------------------------------------------------- */

static long header_number(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':')
            return strtol(line + 3 + n, NULL, 10);
    }
    return -1;
}

/* Fills r's head and body from buf once the header section is complete;
 * true when the whole reply is there. */
static bool take(cn_test_reply *r, const char *buf, size_t len)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return false;
    size_t head_len = (size_t)(end - buf) + 2;
    free(r->head);
    r->head = strndup(buf, head_len);
    if (sscanf(buf, "HTTP/%*d.%*d %d", &r->status) != 1)
        r->status = 0;
    r->content_length = header_number(r->head, "Content-Length");
    r->len = len - head_len - 2;
    free(r->body);
    r->body = malloc(r->len + 1);
    memcpy(r->body, end + 4, r->len);
    r->body[r->len] = '\0';
    return r->content_length >= 0 && r->len >= (size_t)r->content_length;
}

int cn_test_http(int port, const char *request, int timeout_ms, cn_test_reply *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    r->body = calloc(1, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t len = strlen(request), off = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    while (off < len) {
        ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    char *buf = malloc(REPLY_MAX + 1);
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, timeout_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            r->timed_out = true;
            break;
        }
        ssize_t n = ready < 0 ? -1 : recv(fd, buf + got, REPLY_MAX - got, 0);
        if (n <= 0) {
            r->closed = true;
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (take(r, buf, got) || got == REPLY_MAX)
            break;
    }
    buf[got] = '\0';
    take(r, buf, got);
    free(buf);
    close(fd);
    return 0;
}

int cn_test_get(int port, const char *target, int timeout_ms, cn_test_reply *r)
{
    size_t n = strlen(target) + 128;
    char *req = malloc(n);
    snprintf(req, n, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", target);
    int rc = cn_test_http(port, req, timeout_ms, r);
    free(req);
    return rc;
}

void cn_test_reply_free(cn_test_reply *r)
{
    free(r->head);
    free(r->body);
    r->head = r->body = NULL;
}

int cn_test_closed_port(void)
{
    static int held = -1;
    static int port = -1;
    if (held >= 0)
        return port;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    held = fd;
    port = ntohs(a.sin_port);
    return port;
}
