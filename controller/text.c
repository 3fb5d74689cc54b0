#include "canary/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void cn_utc_stamp(char *buf, size_t len, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, len, "?");
        return;
    }
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

void cn_text_init(cn_text *t, char *buf, size_t cap)
{
    t->s = buf;
    t->cap = buf ? cap : 0;
    t->n = 0;
    if (t->cap)
        buf[0] = '\0';
}

void cn_text_add(cn_text *t, const char *fmt, ...)
{
    if (!t->cap || t->n + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
    va_end(ap);
    if (w < 0) {
        t->s[t->n] = '\0';
        return;
    }
    size_t room = t->cap - t->n - 1;
    t->n += (size_t)w < room ? (size_t)w : room;
}
