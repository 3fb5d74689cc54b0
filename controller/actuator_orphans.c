/*
 * actuator_orphans.c: exec actuator calls a dead canary run left running.
 *
 * An exec actuator runs in a process group of its own (actuator_exec.c),
 * so when its canary run dies by SIGKILL it goes on, and may apply its
 * weight after the run that resumes the rollout has moved on (or rolled
 * back). Before it acts, the resuming run stops them: every process of
 * this user whose environment says it was started for the dead run
 * (CANARY_DRIVER=<its lease holder>, unique per run) is an old call; the
 * same rollout id driven from another state database is left alone.
 * Linux's /proc tells; elsewhere nothing is found.
 */
#include "canary/actuator.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "canary/status.h"

/* Whether /proc/<pid>/environ says it is a call of driver. */
static bool is_call_of(pid_t pid, const char *driver)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false; /* gone, or another user's */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t got;
    while (buf && len < cap && (got = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)got;
    close(fd);
    if (!buf)
        return false;
    buf[len] = '\0';
    bool ours = false;
    for (size_t i = 0; i < len && !ours; i += strlen(buf + i) + 1)
        ours = !strncmp(buf + i, "CANARY_DRIVER=", 14) && !strcmp(buf + i + 14, driver);
    free(buf);
    return ours;
}

/* Alive and not yet a zombie (a killed orphan is reaped by init). */
static bool running(pid_t pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' &&
           close_paren[2] != 'X';
}

int cn_actuator_kill_orphans(const char *driver, int wait_ms, unsigned *killed, long *first)
{
    *killed = 0;
    *first = 0;
    if (!driver || !*driver)
        return CN_OK;
    DIR *proc = opendir("/proc");
    if (!proc)
        return CN_OK; /* not Linux, or no /proc: nothing to find */
    pid_t self = getpid(), found[64];
    unsigned count = 0;
    struct dirent *d;
    while ((d = readdir(proc)) && count < 64) {
        if (!isdigit((unsigned char)d->d_name[0]))
            continue;
        pid_t pid = (pid_t)strtol(d->d_name, NULL, 10);
        if (pid <= 1 || pid == self || !is_call_of(pid, driver))
            continue;
        /* The whole group: what the call started dies with it. */
        pid_t group = getpgid(pid);
        bool own_group = group > 1 && group != getpgrp();
        bool seen = false;
        for (unsigned i = 0; i < count; i++)
            seen = seen || (own_group && getpgid(found[i]) == group);
        if (!seen && (kill(own_group ? -group : pid, SIGKILL) == 0 || errno == ESRCH))
            (*killed)++;
        found[count++] = pid;
        if (!*first)
            *first = own_group ? (long)group : (long)pid;
    }
    closedir(proc);
    /* SIGKILL is not caught; wait, bounded, until each is really gone. */
    for (int waited = 0; waited < wait_ms; waited += 10) {
        bool any = false;
        for (unsigned i = 0; i < count; i++)
            any = any || running(found[i]);
        if (!any)
            return CN_OK;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return CN_EBUSY;
}
