/*
 * text.h: a bounded string builder for the words that go with decisions
 * (pure).
 *
 * Contract: cn_text_add() appends formatted text to the caller's buffer
 * and never overflows it: what does not fit is cut, the buffer stays
 * NUL-terminated, and nothing fails, so no caller has to check. A NULL or
 * empty buffer takes nothing. Also the UTC stamps the log lines, the
 * webhooks and the views share.
 */
#ifndef CANARY_TEXT_H
#define CANARY_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "canary/status.h" /* CN_PRINTF */

typedef struct cn_text {
    char *s;
    size_t cap, n;
} cn_text;

/* A UTC time stamp, "2026-11-29T09:35:32.270Z", of ms since the epoch
 * (with a time that cannot be told: "?"). */
void cn_utc_stamp(char *buf, size_t len, int64_t ms);

/* Starts t on buf (emptied), of cap bytes. */
void cn_text_init(cn_text *t, char *buf, size_t cap);
void cn_text_add(cn_text *t, const char *fmt, ...) CN_PRINTF(2, 3);

#endif
