#include "canary/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK_SIZE 16384
#define ARENA_ALIGN 16

struct cn_arena_chunk {
    cn_arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void cn_arena_init(cn_arena *a, size_t limit)
{
    a->chunks = NULL;
    a->used = 0;
    a->limit = limit;
}

void *cn_arena_alloc(cn_arena *a, size_t size)
{
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size || (a->limit && need > a->limit - a->used))
        return NULL;
    cn_arena_chunk *c = a->chunks;
    if (!c || c->size - c->used < need) {
        size_t cap = need > ARENA_CHUNK_SIZE ? need : ARENA_CHUNK_SIZE;
        /* Without a limit, a size near SIZE_MAX would wrap the header
         * addition to a tiny block that memset then overruns. */
        if (cap > SIZE_MAX - sizeof(*c))
            return NULL;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->size = cap;
        c->used = 0;
        /* Big one-off blocks go behind the current chunk so its free tail
         * stays usable for the small allocations that follow. */
        if (a->chunks && need > ARENA_CHUNK_SIZE) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    memset(p, 0, size);
    return p;
}

char *cn_arena_strndup(cn_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = cn_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *cn_arena_strdup(cn_arena *a, const char *s)
{
    return cn_arena_strndup(a, s, strlen(s));
}

char *cn_arena_printf(cn_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = cn_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void cn_arena_free(cn_arena *a)
{
    cn_arena_chunk *c = a->chunks;
    while (c) {
        cn_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->used = 0;
}
