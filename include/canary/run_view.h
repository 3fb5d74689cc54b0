/*
 * run_view.h: what `canary run` (and `canary demo`) print while a rollout
 * runs (shell).
 *
 * Contract: three formats. live: for a terminal; decisions scroll above a
 * status block (stage n/N, a weight bar, bake time left, each metric's
 * latest value against its threshold) redrawn in place every half second.
 * lines: one timestamped line per stored event (UTC, RFC 3339), for logs
 * and pipelines. json: one JSON object per event per line: time, rollout,
 * type, actor, detail, data (the structured evidence or null), state,
 * stage, weight (percent), stored. Events that could not be stored are
 * printed all the same, marked. The view never changes the rollout.
 */
#ifndef CANARY_RUN_VIEW_H
#define CANARY_RUN_VIEW_H

#include <stdio.h>
#include <uv.h>

#include "canary/engine.h"

typedef enum { CN_VIEW_LIVE = 0, CN_VIEW_LINES, CN_VIEW_JSON } cn_view_format;

typedef struct cn_run_view cn_run_view;

/* A view writing to out. live needs the loop (for its redraw timer). */
int cn_run_view_new(cn_run_view **out, FILE *stream, cn_view_format format, uv_loop_t *loop);
/* The observer to put in cn_engine_config (chain next after the view's own
 * handling, so a caller can watch the same events; next may be NULL). */
cn_engine_observer cn_run_view_observer(cn_run_view *v, const cn_engine_observer *next);
/* Once the engine exists: the view reads its state for the status block. */
void cn_run_view_attach(cn_run_view *v, const cn_engine *e);
/* Prints the outcome line for exit_code and why: the first rollback or
 * abort, else the cause given with cn_run_view_cause, else the last
 * decision. */
void cn_run_view_finish(cn_run_view *v, int exit_code);
/* Why the run ends when no record says it (its lease was taken over). */
void cn_run_view_cause(cn_run_view *v, const char *why);
/* A line of commentary (the demo's narration; may hold several lines):
 * printed as given, above the live status block; in json, an object
 * {"type": "note", "text": ...}. */
void cn_run_view_note(cn_run_view *v, const char *text);
/* Stops the redraw timer; freed once the loop closed it. */
void cn_run_view_close(cn_run_view *v);

/* A weight bar of len - 1 characters ('#' filled, '-' not; any weight
 * above 0 shows at least one '#'), NUL-terminated. */
void cn_weight_bar(char *bar, size_t len, double fraction);

/* The outcome of a `canary run` exit code, in words ("promoted to 100%",
 * "rolled back by analysis", ...). */
const char *cn_exit_code_meaning(int exit_code);

#endif
