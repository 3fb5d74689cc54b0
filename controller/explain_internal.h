/* explain_internal.h: what explain.c and explain_why.c share (private):
 * a growing string, the story being written, and JSON number reading. */
#ifndef CANARY_EXPLAIN_INTERNAL_H
#define CANARY_EXPLAIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "canary/explain.h"

typedef struct sb {
    char *s;
    size_t n, cap;
    bool failed;
} sb;

/* Appends printf-style text; on failure b->failed stays set. */
void cn_xp_add(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct story {
    cn_explanation *x;
    sb cur;          /* the paragraph being written */
    bool failed;
    bool dated;      /* the first time printed carried its date */
} story;

/* Adds a sentence to the current paragraph, a space before it. */
void cn_xp_say(story *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* o[key] as a number; *have says whether it is one. */
double cn_xp_num(const json_t *o, const char *key, bool *have);
/* The first paragraph: why these stages (explain_why.c). plan may be NULL. */
void cn_xp_why(story *st, const cn_rollout_row *r, json_t *plan);

#endif
