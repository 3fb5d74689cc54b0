/*
 * freeport: prints N distinct free TCP ports of 127.0.0.1, one line,
 * separated by spaces, for tests/e2e/run.sh to hand to nginx, Prometheus
 * and the services, which must be told their port.
 *
 *   freeport N        (1 <= N <= 16)
 *
 * All N sockets are bound at once (port 0: the kernel picks), so the ports
 * differ, then closed. Nothing connected to them, so they are free again at
 * once; another process could take one before the test does, which the
 * kernel's choice among ~28000 ephemeral ports makes unlikely, and which
 * the test then reports as a server that could not listen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char *end = NULL;
    long n = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end || n < 1 || n > 16) {
        fprintf(stderr, "usage: freeport N (1 to 16)\n");
        return 2;
    }
    int fds[16];
    unsigned ports[16];
    int code = 0;
    long opened = 0;
    for (; opened < n; opened++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        socklen_t len = sizeof a;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
            fprintf(stderr, "freeport: cannot bind a socket on 127.0.0.1: %s\n",
                    strerror(errno));
            if (fd >= 0)
                close(fd);
            code = 1;
            break;
        }
        fds[opened] = fd;
        ports[opened] = ntohs(a.sin_port);
    }
    for (long i = 0; i < opened; i++)
        close(fds[i]);
    if (code)
        return code;
    for (long i = 0; i < n; i++)
        printf("%u%s", ports[i], i + 1 < n ? " " : "\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
