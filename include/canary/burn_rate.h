/*
 * burn_rate.h: the SLO burn-rate gate (pure): the SRE workbook's
 * multiwindow, multi-burn-rate rule (ch. 5, "Alerting on SLOs"), scaled
 * from days to a canary's bake.
 *
 * Contract: no I/O, no clock, no allocation but cn_burn_data()'s string.
 * `canary run`'s engine and `canary simulate` both scale the windows with
 * cn_burn_stage_bake() and cn_burn_scale(), judge with cn_burn_judge() and
 * show the result with cn_burn_shown(), so the two cannot drift apart.
 * For a burn_rate metric
 * (policy.h cn_burn_rate), over a window w:
 *   error ratio  r(w) = errors(w) / total(w)        of the canary version
 *   burn rate    b(w) = r(w) / (1 - slo)             1 spends the budget
 *                                                    exactly over the SLO period
 *   a pair (long, short, factor) fires when b(long) > factor AND b(short) > factor
 * A measurement fails when any pair fires (on the readings of both its
 * windows, whatever the other queries returned), is an error when a query
 * failed (or read +-Inf or a negative number), is nodata when a window has
 * no data (total 0, NaN or empty; errors NaN), and passes otherwise. An
 * errors query with an empty result counts as no errors: Prometheus's
 * sum() over no matching series is empty, which is what a version that
 * has served no error looks like.
 * Windows are scaled per stage by cn_burn_scale(); judging reads one
 * errors and one total reading per distinct window, in the order of
 * cn_burn_windows.window_ms.
 */
#ifndef CANARY_BURN_RATE_H
#define CANARY_BURN_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/analysis.h"
#include "canary/plan.h"
#include "canary/policy.h"

#define CN_BURN_MAX_WINDOWS (2 * CN_BURN_MAX_PAIRS)

/* The pairs in force: the metric's own, or (none given) the workbook's
 * two paging pairs, 1h/5m at 14.4x and 6h/30m at 6x. */
const cn_burn_window *cn_burn_pairs(const cn_burn_rate *b, size_t *count);

typedef struct cn_burn_pair {
    int64_t long_ms, short_ms; /* as scaled */
    double factor;
    size_t long_ix, short_ix;  /* into window_ms */
} cn_burn_pair;

/* The windows of one stage: each pair as scaled, and the distinct
 * windows they use (first use first), each queried once. */
typedef struct cn_burn_windows {
    cn_burn_pair pairs[CN_BURN_MAX_PAIRS];
    size_t pair_count;
    int64_t window_ms[CN_BURN_MAX_WINDOWS];
    size_t window_count;
} cn_burn_windows;

/* Scales b's pairs for a stage that bakes bake_ms, polled every
 * interval_ms. With scale_to_bake every window is multiplied by
 * bake / (the longest long window), so that one equals the bake and each
 * short window keeps its ratio to its long one, then rounded to whole
 * seconds and raised to at least 2 x interval (rounded up to a second):
 * a rate over less than two polls says little. Without it, the windows
 * are used as written. Pairs past CN_BURN_MAX_PAIRS are ignored (the
 * loader refuses them). */
void cn_burn_scale(const cn_burn_rate *b, int64_t bake_ms, int64_t interval_ms,
                   cn_burn_windows *out);

/* The bake a stage's windows are scaled to: stage's (1-based) own, or
 * before the first stage and past the last, the plan's. */
int64_t cn_burn_stage_bake(const cn_plan *plan, unsigned stage);

/* ms as a Prometheus duration, the largest unit that divides it exactly:
 * "1h", "5m", "90s", "1500ms". */
void cn_burn_duration(char *buf, size_t len, int64_t ms);

/* What one window read, for the words and the event log. */
typedef struct cn_burn_figures {
    bool have;   /* errors, total, ratio and burn hold numbers */
    double errors, total, ratio, burn;
} cn_burn_figures;

typedef struct cn_burn_result {
    cn_burn_figures windows[CN_BURN_MAX_WINDOWS];
    /* The pair that decided: for a fail the first that fires, for a pass
     * the nearest to firing (highest min(b(long), b(short)) / factor);
     * -1 for nodata and error. value is that pair's min(b(long),
     * b(short)), which fails exactly when it is above the pair's factor;
     * NaN when pair is -1. */
    long pair;
    double value;
} cn_burn_result;

/* Judges one measurement: errors[i] and total[i] are the readings for
 * w->window_ms[i]. res may be NULL; why (may be NULL or len 0; cut to
 * len) receives the evidence:
 *   fail    "burn 31.2x over 2m and 40.1x over 10s > 14.4x: 3.12% errors
 *            against a 0.1% budget" (the first pair that fires; the ratio
 *            of its long window), and "; 1 more pair fires" when so
 *   pass    "burn 0.5x over 100s and 0.3x over 8s, not both > 14.4x; ...:
 *            0.05% errors over 10m against a 0.1% budget" (the ratio over
 *            the longest window)
 *   nodata  "no data: no requests over 10s (total 0)", "no data: total
 *            over 10s: empty vector (no series matched)"
 *   error   "error: errors over 10s: HTTP 500"
 * Numbers: 10 and above with one decimal, below with two significant
 * digits (three for percentages), never an exponent. */
cn_outcome cn_burn_judge(const cn_burn_rate *b, const cn_burn_windows *w,
                         const cn_reading *errors, const cn_reading *total,
                         cn_burn_result *res, char *why, size_t len);

/* What observers (status, watch, the simulator's pictures) see as the
 * metric's value: the deciding pair's min(b(long), b(short)) as a value;
 * without a deciding pair, a nodata (outcome nodata) or error reading
 * whose detail is why, cut to 150 bytes. */
cn_reading cn_burn_shown(cn_outcome o, const cn_burn_result *res, const char *why);

/* The measurement's structured evidence for the event log, one line of
 * JSON (free() it; NULL when out of memory): metric, outcome, kind
 * "burn_rate", slo, budget; value and max, the deciding pair's burn and
 * factor (value null without one), so that readers of plain metrics show
 * a value against its maximum; pair {long, short, factor} (with a
 * deciding pair); windows [{window, errors, total, ratio, burn}], null
 * where a window has no figures. Windows are named as cn_burn_duration
 * names them. */
char *cn_burn_data(const char *metric, const cn_burn_rate *b, const cn_burn_windows *w,
                   cn_outcome o, const cn_burn_result *res);

#endif
