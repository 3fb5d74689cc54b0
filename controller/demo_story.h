/*
 * demo_story.h: the narration of `canary demo` (private to the shell).
 *
 * Contract: cn_demo_story_record() is given every event the engine stored
 * (the demo chains it after the run view) and, for the decisions a viewer
 * should understand (a stage applied, a promotion, a failed measurement and
 * the rollback it causes, the end), prints plain words through the run view
 * (cn_run_view_note), so they appear right under the event they explain.
 * It also notes what the summary needs: when the canary first served
 * traffic, the last stage applied, when the previous version was back.
 * It only reads the engine.
 */
#ifndef CANARY_DEMO_STORY_H
#define CANARY_DEMO_STORY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "canary/engine.h"
#include "canary/planning.h"
#include "canary/run_view.h"

typedef struct cn_demo_story {
    /* Set before the run. */
    const cn_planning *pl;
    cn_run_view *view;
    uv_loop_t *loop;          /* its clock times the run */
    const char *actuator_url; /* explained with the first actuation of the demo */
    bool *actuator_told;      /* shared by the runs of one demo */
    /* Filled during the run (loop ms). */
    uint64_t started_ms, exposed_ms, reverted_ms, ended_ms;
    unsigned last_stage;      /* the last stage applied, 0 before the first */
    bool measured;            /* the first measurement was explained */
    char failure[256];        /* the last failed measurement, in words */
} cn_demo_story;

void cn_demo_story_record(cn_demo_story *st, const cn_engine *e, const cn_store_event *ev);

/* Prints text through the view as narration: "  > " and wrapped. */
void cn_demo_say(cn_run_view *view, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
