/*
 * analysis.h: judging measurements and deciding a stage (pure).
 *
 * Contract: no I/O, no clock, no allocation; the caller passes the values
 * read and how long the stage has baked. A measurement is one poll of one
 * metric, and has one of four outcomes (shared/design.md section 4):
 *   pass    the value is within the threshold (and the baseline allowance)
 *   fail    outside them; counts toward failure_limit and
 *           consecutive_failure_limit, then on_failure decides
 *   nodata  no value to judge (empty result, NaN such as 0/0 with no
 *           traffic): inconclusive, never a pass; the bake is extended up to
 *           max_bake, then on_inconclusive decides
 *   error   the provider failed (refused, time-out, non-2xx, not JSON, not a
 *           number, Inf, several series where one is expected); counts
 *           toward consecutive_error_limit, then the rollout rolls back
 * A stage is promoted only when it has baked its full time AND every metric
 * has min_samples passing measurements AND (with min_requests) the canary
 * served enough requests. Missing evidence is never a pass.
 */
#ifndef CANARY_ANALYSIS_H
#define CANARY_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/policy.h"

typedef enum {
    CN_OUTCOME_PASS = 0,
    CN_OUTCOME_FAIL,
    CN_OUTCOME_NODATA,
    CN_OUTCOME_ERROR
} cn_outcome;

/* What a provider returned for one query; the shell fills it. */
typedef enum { CN_READING_VALUE = 0, CN_READING_NODATA, CN_READING_ERROR } cn_reading_kind;

typedef struct cn_reading {
    cn_reading_kind kind;
    double value;      /* CN_READING_VALUE only; may be NaN or Inf as read */
    char detail[160];  /* why nodata/error, e.g. "HTTP 500", "empty vector" */
} cn_reading;

/* The threshold in force for metric index i: the metric's own, or for an
 * AI-assisted change the policy's ai_assisted.analysis override (which the
 * loader guarantees only tightens). An index out of range has no bounds. */
cn_threshold cn_analysis_threshold(const cn_policy *p, size_t i, bool ai_assisted);

/* Judges one measurement of m against t (NULL: m's own threshold). canary
 * is the canary's reading; baseline is the same query for
 * {{previous_version}}, used only when m->baseline is enabled (NULL
 * otherwise). NaN is nodata, +-Inf is an error. The canary reading is
 * judged first, then the threshold, then the baseline: a value outside the
 * threshold fails whatever the baseline query returned. A baseline reading
 * that is an error or +-Inf makes the measurement an error; one that is
 * nodata or NaN, or missing (NULL while the baseline is enabled), makes it
 * nodata. why (may be NULL or len 0; cut to len) receives the evidence in
 * words: "0.031 > max 0.01", "0.012 > baseline 0.008 x 1.2 + 0.001 =
 * 0.0106", "0.004 within [-, 0.01]", "no data: empty vector". */
cn_outcome cn_analysis_judge(const cn_metric *m, const cn_threshold *t,
                             const cn_reading *canary, const cn_reading *baseline,
                             char *why, size_t len);

/* Whether metric m is compared with its baseline while the canary serves
 * stage_weight (a fraction): only when m has a baseline and the previous
 * version still serves traffic. At 100% its series fade, so the last stage
 * is judged by the threshold alone. */
bool cn_analysis_compares(const cn_metric *m, double stage_weight);

/* One poll of metric i of p judged as `canary run` judges it while the
 * canary serves stage_weight: the threshold in force
 * (cn_analysis_threshold), the baseline reading only where
 * cn_analysis_compares (ignored, may be NULL, otherwise), and for a
 * baseline metric judged alone at 100% a note in why saying so. The one
 * place this rule lives, for the engine and the simulator alike. */
cn_outcome cn_analysis_judge_poll(const cn_policy *p, size_t i, bool ai_assisted,
                                  double stage_weight, const cn_reading *canary,
                                  const cn_reading *baseline, char *why, size_t len);

/* What a min_requests reading tells the state machine: its value when
 * finite and not negative, else NaN (the count is unknown). */
double cn_analysis_request_count(const cn_reading *r);

/* Counts for one metric within the current stage. */
typedef struct cn_metric_tally {
    unsigned passes, failures, nodata, errors;
    unsigned consecutive_failures; /* reset by a pass or nodata */
    unsigned consecutive_errors;   /* reset by any non-error outcome */
} cn_metric_tally;

void cn_tally_add(cn_metric_tally *t, cn_outcome o);

/* The limits a stage is judged by, resolved from the policy (and its
 * AI-assisted overrides) and the planned stage. max_bake_ms is never below
 * bake_ms. A min_samples or consecutive_error_limit of 0 (which the loader
 * rejects) is taken as 1, here and by cn_stage_verdict: 0 would promote
 * without a passing sample, or roll back without an error. An on_* value
 * other than CN_ON_PAUSE is a rollback. */
typedef struct cn_stage_limits {
    int64_t bake_ms;                   /* the planned stage's bake */
    int64_t max_bake_ms;               /* analysis.max_bake, default 3 x bake_ms */
    unsigned min_samples;
    unsigned failure_limit;            /* failures tolerated; one more fails */
    unsigned consecutive_failure_limit; /* 0 = not set; else this many in a row fail */
    unsigned consecutive_error_limit;  /* this many errors in a row roll back */
    int on_failure;                    /* cn_on_outcome */
    int on_inconclusive;               /* cn_on_outcome */
    unsigned min_requests;             /* analysis.min_requests.count; 0 = none */
} cn_stage_limits;

cn_stage_limits cn_analysis_limits(const cn_policy *p, int64_t stage_bake_ms,
                                   bool ai_assisted);

typedef enum {
    CN_VERDICT_BAKING = 0,    /* keep polling */
    CN_VERDICT_PROMOTE,       /* evidence complete: go to the next stage */
    CN_VERDICT_FAILED,        /* a metric failed past its limits: on_failure */
    CN_VERDICT_ERRORED,       /* provider errors past the limit: roll back */
    CN_VERDICT_INCONCLUSIVE   /* max_bake reached without the evidence: on_inconclusive */
} cn_verdict_kind;

typedef struct cn_verdict {
    cn_verdict_kind kind;
    int action;     /* FAILED / INCONCLUSIVE: the cn_on_outcome to take;
                       ERRORED: always CN_ON_ROLLBACK */
    long metric;    /* index of the metric that decided, -1 for none; for
                       BAKING / INCONCLUSIVE the first metric short of
                       min_samples (-1 when only time or requests are) */
    char why[256];  /* the evidence in words, for the event log */
} cn_verdict;

/* Decides the stage from the tallies of its n metrics (in policy order),
 * the time baked so far, and whether the canary has served min_requests
 * (requests_served: what the min_requests query last returned, NaN while
 * unknown; ignored when limits->min_requests is 0). Failures and errors are checked
 * before promotion, so the last measurement of a bake can still fail it.
 * With no metrics at all, a stage is promoted on bake time (and requests)
 * alone. */
cn_verdict cn_stage_verdict(const cn_stage_limits *limits, const cn_metric_tally *tallies,
                            const cn_metric *metrics, size_t n, int64_t baked_ms,
                            double requests_served);

#endif
