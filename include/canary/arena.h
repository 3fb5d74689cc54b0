/*
 * arena.h: a bump allocator that owns everything loaded from one file.
 *
 * Contract: memory from cn_arena_alloc() lives until cn_arena_free(); there
 * is no per-object free. Every allocation is zeroed and aligned for any
 * type. Allocation fails (NULL) once the arena would exceed its byte limit,
 * which is how loaders bound the memory a hostile file can make them use.
 */
#ifndef CANARY_ARENA_H
#define CANARY_ARENA_H

#include <stddef.h>

typedef struct cn_arena_chunk cn_arena_chunk;

typedef struct cn_arena {
    cn_arena_chunk *chunks; /* newest first */
    size_t used;            /* bytes handed out, for the limit */
    size_t limit;           /* 0 means no limit */
} cn_arena;

void cn_arena_init(cn_arena *a, size_t limit);
void *cn_arena_alloc(cn_arena *a, size_t size);
/* Copies len bytes and adds a NUL. */
char *cn_arena_strndup(cn_arena *a, const char *s, size_t len);
char *cn_arena_strdup(cn_arena *a, const char *s);
char *cn_arena_printf(cn_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cn_arena_free(cn_arena *a);

#endif
