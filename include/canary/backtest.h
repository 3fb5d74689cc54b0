/*
 * backtest.h: how policies fare over a corpus of labelled traces (pure
 * core of `canary backtest`).
 *
 * Contract: cn_bt_classify() sorts one simulated rollout into what it did
 * to the change: promoted (completed), stopped (rolled back, aborted,
 * failed: the rollback was at least attempted), paused (held for a
 * person), or undecided (left at an approval gate, or still running at
 * the simulation's bound), with the moment the decision that stopped it
 * was made. cn_bt_summarize() adds up one policy's cases against their
 * labels (healthy or faulty): faults caught (stopped or paused), missed
 * (promoted), false alarms (healthy changes stopped or paused), mean and
 * p95 time to the stopping decision over the caught faults, mean duration
 * of the promoted healthy changes, total exposure and impact. No I/O, no
 * allocation.
 */
#ifndef CANARY_BACKTEST_H
#define CANARY_BACKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/simulate.h"

typedef enum { CN_BT_HEALTHY = 0, CN_BT_FAULTY } cn_bt_label;

typedef enum {
    CN_BT_PROMOTED = 0, /* completed: the new version serves 100% */
    CN_BT_STOPPED,      /* rolled back, aborted or failed */
    CN_BT_PAUSED,       /* paused: held at its weight for a person */
    CN_BT_UNDECIDED     /* awaiting approval, or running, at the bound */
} cn_bt_class;

/* "healthy" / "faulty"; "promoted", "stopped", "paused", "undecided". */
const char *cn_bt_label_name(cn_bt_label l);
const char *cn_bt_class_name(cn_bt_class c);

/* One case under one policy. */
typedef struct cn_bt_case {
    cn_bt_label label;
    cn_bt_class cls;
    char outcome[24];     /* cn_sim_outcome */
    int exit_code;        /* what `canary run` would exit with; -1 not finished */
    int64_t stopped_ms;   /* the stopping decision (rolling_back, paused, aborted); -1 none */
    int64_t duration_ms;
    double exposure, impact; /* %·s */
} cn_bt_case;

/* Fills everything in c but the label (the caller's) from res. */
void cn_bt_classify(const cn_sim_result *res, cn_bt_case *c);

typedef struct cn_bt_summary {
    size_t cases, healthy, faulty;
    size_t caught, missed, undecided_faults; /* of the faulty */
    size_t false_rollbacks, promoted_healthy, undecided_healthy; /* of the healthy */
    double mean_detect_s, p95_detect_s; /* over the caught faults; NaN with none */
    double mean_healthy_s;              /* over the promoted healthy; NaN with none */
    double total_exposure, total_impact;
} cn_bt_summary;

/* detect_ms: scratch for the n stop times (the caller's, at least n). */
void cn_bt_summarize(const cn_bt_case *cases, size_t n, int64_t *detect_ms,
                     cn_bt_summary *out);

#endif
