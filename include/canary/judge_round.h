/*
 * judge_round.h: one round of the statistical judge inside a rollout
 * (pure): what the range queries of a policy's judged metrics returned,
 * turned into one outcome per metric for the state machine (analysis.h),
 * with the evidence in words and as JSON (docs/judge.md#in-a-rollout).
 *
 * Contract: no I/O, no clock; cn_round_judge() allocates only inside
 * cn_judge_metric(), cn_round_run() its two arrays, and cn_round_data()
 * returns a malloc'd string. Samples are read, never kept. `canary run`'s
 * engine and `canary simulate` both call cn_round_windows_at() and
 * cn_round_run(), so what is asked for and how it is decided cannot drift
 * apart. A round is:
 *   1. cn_round_judge() per metric: the judge's classification, with
 *      canary's departures from Kayenta: a side whose query failed is an
 *      error (never judged); a side with no samples, or none left after
 *      the transforms, is nodata even under nan_strategy replace (Kayenta
 *      calls that a pass); a pass from samples too few for the test to
 *      reject anything at the metric's confidence is nodata ("too few").
 *   2. cn_round_decide() over all of them: the metrics are scored
 *      together (cn_judge_score), one that errored as one without data
 *      (its group keeps its weight; it can neither fail the round nor,
 *      as half the evidence or more, let it pass), and
 *        score >= pass            the round passes
 *        score < marginal         the round fails
 *        in between (marginal)    inconclusive: nodata
 *        forced to 0 by missing data (50% or more nodata), with no
 *        critical failure: what the metrics with data say decides, the
 *        score before it was forced (data_score): below marginal the round
 *        fails (the evidence there is fails); else it is inconclusive
 *      Each metric's outcome is the round's, except: a metric that errored
 *      is an error, and one that was itself nodata is never a pass (nodata
 *      when the round passes). With no metric judged, every metric is an
 *      error and there is no score.
 * Words (why) are what the rollout records after "<metric>: <outcome>: ",
 * so nodata and error words begin "no data: " and "error: " as
 * cn_analysis_judge's do, e.g.
 *   "high (estimate +42, ci [30, 55], mean ratio 1.31 >= 1.1; 20 and 20
 *    samples); score 40 < marginal 75"
 */
#ifndef CANARY_JUDGE_ROUND_H
#define CANARY_JUDGE_ROUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/analysis.h"
#include "canary/judge.h"

/* What one judged metric's two range queries returned. A reading of kind
 * CN_READING_VALUE has its samples in the values (count may be 0 only for
 * other kinds); NODATA means no series or no samples; ERROR a failed
 * query. */
typedef struct cn_round_input {
    const char *name;
    const char *group; /* NULL or "": the group "default" */
    const cn_judge_config *config;
    const cn_reading *canary, *baseline;
    const double *canary_values, *baseline_values;
    size_t canary_count, baseline_count;
} cn_round_input;

/* One metric of a round. cn_round_judge fills all but outcome and why,
 * which cn_round_decide fills. */
typedef struct cn_round_metric {
    const char *name, *group; /* as given (group NULL: "default") */
    const cn_judge_config *config;
    bool error;        /* not judged: a query failed or the judge refused the input */
    bool too_few;      /* the judge passed it on samples too few to show anything */
    cn_judge_result result; /* classification NODATA for too_few and empty sides; reason
                               says why in every case */
    cn_outcome outcome;
    char why[280];
} cn_round_metric;

void cn_round_judge(const cn_round_input *in, cn_round_metric *out);

typedef struct cn_round_summary {
    bool scored;          /* some metric was judged: score holds the round's score */
    cn_score_result score;
    bool nodata_forced;   /* the score is 0 because data was missing, not by a
                             critical failure */
    double data_score;    /* the score before the nodata rule forced it: what the
                             metrics with data say */
    cn_outcome outcome;   /* the round's: PASS, FAIL, NODATA; ERROR when nothing was scored */
    char words[200];      /* the round's part of each metric's why: "score 40 < marginal 75" */
} cn_round_summary;

/* Scores the n metrics judged by cn_round_judge and sets each one's
 * outcome and why (see the top of this file). CN_OK, or what
 * cn_judge_score returns for a config it refuses (the loader rejects
 * those), with every metric then an error saying so. */
int cn_round_decide(cn_round_metric *m, size_t n, const cn_score_config *sc,
                    cn_round_summary *sum);

/* The order to report the metrics of a decided round in, into order[n]:
 * those whose own classification was not a pass first (so that the
 * measurement that fails a stage names the metric that failed the round),
 * then the rest, each in policy order. */
void cn_round_order(const cn_round_metric *m, size_t n, size_t *order);

/* The times (seconds) each side's samples were taken from: Unix time in a
 * run, virtual time in a simulation. */
typedef struct cn_round_windows {
    double canary_start, canary_end;
    double baseline_start, baseline_end;
    double step;
} cn_round_windows;

/* ---- what the engine and the simulator compute alike --------------------- */

/* The step of a judged metric's range queries, in ms: its judge.step,
 * else the analysis interval. */
int64_t cn_round_step_ms(const cn_metric *m, int64_t interval_ms);

/* The windows a judged metric's samples are read from when a round starts
 * at now_s (seconds, on the clock switch_s is on; the engine's is Unix
 * time, the simulator's virtual), in the stage that took effect at
 * switch_s and has baked baked_s so far (as the state machine counts it),
 * whose weight is 100% when full; one sample every step_s:
 *   len       = min(baked_s, (CN_PROM_MAX_SAMPLES - 2) x step_s)
 *               (beyond what Prometheus resolves in one query, the
 *               earliest points are dropped)
 *   canary    [now - len, now]
 *   baseline  [now - len, now]                while the previous version
 *                                             serves traffic
 *             [switch - len, switch]          when full: it serves none
 *                                             now; switch is the last time
 *                                             it did
 * A range query with start, end and step returns the samples at start,
 * start + step, ... up to end. */
cn_round_windows cn_round_windows_at(double now_s, double baked_s, double switch_s, bool full,
                                     double step_s);

/* A whole round as the engine runs it between collecting the samples and
 * feeding the state machine: each input judged (cn_round_judge), all
 * decided together under the policy's analysis.judge (cn_round_decide),
 * and the order to report them in (cn_round_order). The machine is fed,
 * for j = 0 .. count - 1, metric order[j]: its outcome and why, the
 * reading cn_round_shown() and the evidence cn_round_data(). */
typedef struct cn_round {
    cn_score_config score;    /* from analysis.judge */
    cn_round_metric *metrics; /* count, in the inputs' order (malloc'd) */
    size_t *order;            /* count (malloc'd) */
    size_t count;
    cn_round_summary summary;
} cn_round;

/* Runs the round of the n inputs into *r (cn_round_free in any case).
 * CN_OK, also when the scores cannot be computed (every metric is then an
 * error saying so: cn_round_decide); CN_ENOMEM with r->count 0: nothing
 * to report. n 0: CN_OK, nothing to report. */
int cn_round_run(cn_round *r, const cn_round_input *in, size_t n,
                 const cn_judge_scoring *scoring);
void cn_round_free(cn_round *r);

/* What observers (and the simulator's pictures) see as a judged metric's
 * value: the round's score, or, when nothing was scored, an error
 * reading. */
cn_reading cn_round_shown(const cn_round_summary *sum);

/* The structured evidence of metric i for the event log, one line of JSON
 * (free() it; NULL when out of memory): metric, outcome, kind "judge",
 * classification, u, p_value, estimate, ci [low, high], effect_size,
 * effect, band, canary_count, baseline_count, canary_dropped,
 * baseline_dropped, too_few, reason; the round's score, verdict, pass,
 * marginal, groups and each metric's classification (round); the windows
 * (w may be NULL). value and min are the score and marginal, so that
 * readers of plain measurements (status, watch, explain) show the score
 * against the bound it fails below. Numbers the test did not produce are
 * null. */
char *cn_round_data(const cn_round_metric *m, size_t n, size_t i, const cn_round_summary *sum,
                    const cn_score_config *sc, const cn_round_windows *w);

/* True when n canary and m baseline values (both >= 1) could ever make the
 * two-sided test reject at this confidence: the largest |z| the
 * continuity-corrected normal approximation can reach without ties,
 * (n m / 2 - 1/2) / sqrt(n m (n + m + 1) / 12), exceeds the normal quantile
 * of (1 + confidence) / 2. Below that, a pass says nothing. */
bool cn_judge_can_reject(size_t n, size_t m, double confidence);

/* The fewest values a side (both sides alike) for which
 * cn_judge_can_reject holds: 5 at 0.98, 4 at 0.95. */
size_t cn_judge_min_per_side(double confidence);

#endif
