/*
 * explain.h: the story of one rollout in plain sentences, for an incident
 * review (`canary explain`): why these stages (reach, each risk factor, AI
 * provenance), then what happened stage by stage with the evidence behind
 * each decision, who acted and when, and the outcome.
 *
 * Contract: pure text building from the stored row and its events, given
 * as plain structs (no SQLite here, so tests build them by hand). Nothing
 * is invented: what the row, the plan JSON or the events do not hold is
 * said to be "not recorded". Times are UTC (HH:MM:SS; the first one with
 * its date). Functions return CN_OK, CN_EINVAL (NULL arguments) or
 * CN_ENOMEM; nothing prints.
 */
#ifndef CANARY_EXPLAIN_H
#define CANARY_EXPLAIN_H

#include <stddef.h>

#include "canary/store.h"

/* The story as paragraphs, each one line of unwrapped text. */
typedef struct cn_explanation {
    char **para;
    size_t n;
} cn_explanation;

/* Builds the paragraphs of row's story from its events ev[0..n) (in the
 * order stored) into *out (free with cn_explanation_free). */
int cn_explain(const cn_rollout_row *row, const cn_store_event *ev, size_t n,
               cn_explanation *out);
/* Frees what cn_explain built and zeroes it; safe on a zeroed one. */
void cn_explanation_free(cn_explanation *x);

/* The paragraphs wrapped at width columns (words longer than that keep
 * their own line), separated by blank lines, ending in a newline, into
 * *text (free() it). */
int cn_explanation_text(const cn_explanation *x, size_t width, char **text);

#endif
