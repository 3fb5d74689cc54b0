/*
 * simulate.h: a rollout on a virtual clock against a trace of metric
 * values (pure core of `canary simulate` and `canary backtest`).
 *
 * Contract: cn_simulate() drives the very state machine `canary run`
 * drives (cn_rollout_step), judging each poll with the very functions the
 * engine calls: a threshold (and baseline) metric by
 * cn_analysis_judge_poll; a burn-rate metric by cn_burn_scale (to the
 * stage's bake, cn_burn_stage_bake) and cn_burn_judge over readings of
 * each window (cn_trace_window); the judged metrics together by
 * cn_round_run over samples of the windows cn_round_windows_at gives
 * (cn_trace_range), fed in the round's report order. It schedules the
 * events as the engine does: t = 0 when stage 1 is applied (the actuator
 * is instant unless actuator_ms is set: its APPLIED comes that long after
 * each APPLY); polls every analysis.interval from when a stage starts
 * polling, the first one interval after it; the decision timer at the
 * `at` the machine asks for. At one instant, the decision timer fires
 * before a poll (a real poll's replies come after the timer that shares
 * its instant); a poll reads everything as of its instant (weight, stage,
 * windows), then feeds, in the order the engine sends the requests, every
 * metric that is not judged in policy order, min_requests, then the
 * judged round; an actuator call returns after them. No I/O, no clock;
 * deterministic: the same inputs give the same result.
 *
 * What a trace means for each kind of metric (docs/simulation.md has the
 * formulas): a threshold metric's value (and baseline) is what its query
 * returns at the poll; a burn-rate metric's value is the canary's error
 * ratio over time (its baseline column is not read), integrated over each
 * window (cn_trace_window); a judged metric's value and baseline are the
 * two versions' series, sampled every step over the windows
 * (cn_trace_range). Every span of time is read under the weight served at
 * each instant of it.
 *
 * A rollout left waiting (paused, or at an approval gate: nobody acts in
 * a simulation) is followed until max(when it began waiting, the trace's
 * last row) + hold, then the simulation stops and says so in note; every
 * simulation stops at until (virtual). Exposure is an integral over
 * [0, duration]; impact runs on to the trace's last row after a rollout
 * that ended, its last weight held (docs/simulation.md has the formulas).
 *
 * A trace is CSV: a header naming the columns seconds, metric, value
 * (required) and baseline, weight_at_least (optional), in any order, then
 * one row per line; blank lines and lines starting with '#' are skipped.
 * Rows of a metric with the same weight_at_least form a layer; at time t
 * with the canary serving weight w, the layer with the greatest
 * weight_at_least not above w that has a row at or before t gives the
 * reading: its last row at or before t (on equal times, the later line).
 * Before any row, no data. Values: a decimal number, nan (no data), inf,
 * -inf, or error (the provider failed). Every problem is reported as
 * FILE:LINE:COLUMN; loading never stops at the first.
 */
#ifndef CANARY_SIMULATE_H
#define CANARY_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/analysis.h"
#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/plan.h"
#include "canary/policy.h"
#include "canary/rollout.h"

/* ---- traces ------------------------------------------------------------- */

#define CN_TRACE_MAX_BYTES (64u << 20)
#define CN_TRACE_MAX_SERIES 256
/* The name that stands for the min_requests query in a trace. */
#define CN_TRACE_REQUESTS "requests"

typedef struct cn_trace_row {
    int64_t at_ms;
    double min_weight;              /* fraction; 0 when weight_at_least is empty */
    cn_reading_kind kind;           /* VALUE (NaN: nan) or ERROR ("error") */
    double value;
    cn_reading_kind baseline_kind;  /* NODATA when the row gives no baseline */
    double baseline;
    unsigned line;
} cn_trace_row;

typedef struct cn_trace_series {
    const char *name;
    cn_trace_row *rows;   /* min_weight descending, then time, then line */
    size_t count;
    unsigned line, col;   /* of the first row naming it */
} cn_trace_series;

typedef struct cn_trace {
    const char *file;
    cn_trace_series *series;
    size_t count;
    int64_t end_ms;       /* the last row's time (0 with no rows) */
    /* Set by cn_trace_bind: the series of each policy metric and of
     * min_requests, -1 for none (every reading is then no data). */
    long of_metric[CN_MAX_METRICS];
    long of_requests;
    cn_trace_row *rows;   /* every series' rows, one block */
    cn_arena arena;       /* names and the series */
} cn_trace;

/* Parses text (len bytes, need not be terminated) named file in
 * messages. CN_OK, CN_EINVAL with every problem in diags, CN_ENOMEM,
 * CN_ELIMIT (over CN_TRACE_MAX_SERIES names). cn_trace_free in any case. */
int cn_trace_parse(cn_trace *t, const char *file, const char *text, size_t len,
                   cn_diags *diags);
/* Reads and parses path (at most CN_TRACE_MAX_BYTES); a file that cannot
 * be read: CN_EIO or CN_ENOTFOUND with "PATH: why" in diags. */
int cn_trace_load(cn_trace *t, const char *path, cn_diags *diags);
void cn_trace_free(cn_trace *t);

/* Ties each series to a metric of p by name (CN_TRACE_REQUESTS to
 * min_requests). A name that is neither: CN_EINVAL, reported at its first
 * row with a "did you mean"; with diags NULL it is left unbound, its rows
 * unread, and CN_OK (backtest: one corpus, policies with other metrics). */
int cn_trace_bind(cn_trace *t, const cn_policy *p, cn_diags *diags);

/* The row s reads at t while the canary serves weight (fraction), or
 * NULL before any (see the layers above). */
const cn_trace_row *cn_trace_at(const cn_trace_series *s, int64_t t, double weight);

/* The time of s's first row after t, in any layer: until then the row
 * cn_trace_at reads under a fixed weight cannot change. INT64_MAX when
 * there is none. */
int64_t cn_trace_next_row(const cn_trace_series *s, int64_t t);

/* What the trace gives policy metric i (or min_requests, i = -1) at t
 * under weight, as a provider would: the canary's reading and the
 * previous version's. */
void cn_trace_reading(const cn_trace *t, long i, int64_t at_ms, double weight,
                      cn_reading *canary, cn_reading *baseline);

/* ---- simulation ----------------------------------------------------------- */

#define CN_SIM_UNTIL_MS (7LL * 24 * 3600 * 1000)

typedef struct cn_sim_config {
    const cn_plan *plan;
    const cn_policy *policy;
    bool ai_assisted;
    const char *author;
    double reach;           /* share of all user requests that reach the service */
    const cn_trace *trace;  /* bound to policy (cn_trace_bind) */
    int64_t until_ms;       /* the virtual clock stops here; 0: CN_SIM_UNTIL_MS */
    int64_t hold_ms;        /* how long a waiting rollout is followed; < 0: the
                               longest max_bake of the plan + the approval timeout */
    int64_t actuator_ms;    /* each actuator call takes this long; 0: instant */
} cn_sim_config;

typedef struct cn_sim_event {
    int64_t at_ms;
    char type[32];
    char *detail;
} cn_sim_event;

/* One metric read and judged (for pictures). NaN where there was no value.
 * value: a threshold metric's reading (baseline: the previous version's);
 * a burn rate's deciding pair's burn, min(b(long), b(short)), to compare
 * with its factor; a judged metric's round score, to compare with
 * analysis.judge's marginal and pass (baseline NaN for both). */
typedef struct cn_sim_sample {
    int64_t at_ms;
    unsigned metric;
    cn_outcome outcome;
    double value, baseline;
} cn_sim_sample;

/* The weight served from at_ms on. */
typedef struct cn_sim_step {
    int64_t at_ms;
    double weight;
} cn_sim_step;

/* ---- what the engine's queries over a span of time read from a trace ---- */

/* The weight steps (time order, as cn_sim_result's) serve at t: the last
 * at or before t; 0 before the first. */
double cn_sim_weight_at(const cn_sim_step *steps, size_t n, int64_t t);

/* A burn-rate metric's readings over the window [from_ms, to_ms], as its
 * errors and total instant queries would return them. Policy metric i's
 * series gives the canary's error ratio r(t) (errors / requests); each
 * instant is read as cn_trace_at reads it under the weight the steps
 * served then (so weight layers hold only while that weight was served);
 * the instants with a number are covered, those before any row or reading
 * nan are not. As if the canary served one request a second:
 *   total  = covered seconds
 *   errors = integral of r(t) dt over the covered part
 * so errors / total is the time-weighted mean of r over the covered part
 * of the window (the request rate cancels out of every burn rate). A row
 * reading error in force at any instant of the window: both readings are
 * errors ("the trace says error"). Nothing covered: both no data (the
 * burn rate is then no data). inf and negative ratios are carried into
 * errors, where cn_burn_judge calls them errors. */
void cn_trace_window(const cn_trace *t, long i, int64_t from_ms, int64_t to_ms,
                     const cn_sim_step *steps, size_t n, cn_reading *errors,
                     cn_reading *total);

/* One side's samples of a judged metric's range query. */
typedef struct cn_trace_samples {
    double *values; /* malloc'd, grown as needed; free() it */
    size_t count, cap;
} cn_trace_samples;

/* What a range query from start_ms to end_ms every step_ms (> 0) returns
 * for policy metric i: one sample at each start + k x step up to end, the
 * canary's (value column) or, with baseline, the previous version's
 * (baseline column), read as cn_trace_at reads them under the weight the
 * steps served at that instant. An instant before any row, reading nan
 * or with no baseline given has no sample (as a series absent there);
 * an instant reading error (or +-inf, which a reply's parser refuses)
 * makes the whole query an error. reading: VALUE (the last sample) with
 * out->count samples; NODATA with none; ERROR. CN_OK, CN_ENOMEM (the
 * reading an error too). */
int cn_trace_range(const cn_trace *t, long i, bool baseline, int64_t start_ms, int64_t end_ms,
                   int64_t step_ms, const cn_sim_step *steps, size_t n, cn_trace_samples *out,
                   cn_reading *reading);

typedef struct cn_sim_result {
    cn_rollout_state state;  /* at the end */
    bool finished;           /* terminal: exit_code is what `canary run` returns */
    int exit_code;           /* -1 when not finished */
    bool bounded;            /* stopped at the bound or at until, not finished */
    char note[256];          /* why it stopped there */
    int64_t duration_ms;
    double max_weight;       /* fraction */
    double exposure;         /* integral of weight over time, %·s */
    double impact;           /* integral of weight x reach x severity, %·s, to: */
    int64_t impact_until_ms; /* duration_ms, or for a rollout that ended, the
                                trace's last row when later (its last weight held) */
    cn_sim_event *events;
    size_t event_count, event_cap;
    cn_sim_sample *samples;
    size_t sample_count, sample_cap;
    cn_sim_step *steps;      /* the first at 0 */
    size_t step_count, step_cap;
} cn_sim_result;

/* Runs the rollout of cfg to its end or its bound into *res (zeroed
 * first; cn_sim_result_free in any case). CN_OK; CN_EINVAL with err when
 * cfg cannot be driven (no plan, policy or trace; a plan or policy
 * cn_rollout_init refuses); CN_ENOMEM. */
int cn_simulate(const cn_sim_config *cfg, cn_sim_result *res, char *err, size_t errlen);
void cn_sim_result_free(cn_sim_result *res);

/* The hold a waiting rollout gets when cfg->hold_ms < 0. */
int64_t cn_sim_default_hold(const cn_sim_config *cfg);

/* How far the trace is on the bad side at t under weight (fraction), in
 * 0..1: the largest over the metrics of
 *   threshold  0 while the reading passes (or has no data, or errs), else
 *              for a ratio metric (a threshold with a max of at most 1
 *              and no min) its value clamped to 0..1, else 1;
 *   burn rate  its value (the error ratio) clamped to 0..1 when above the
 *              error budget 1 - slo times the smallest factor of its pairs
 *              (the ratio that, held over both windows, fires a pair),
 *              else 0;
 *   judged     1 when the value is on a side the direction fails, by at
 *              least the allowed effect measured on this one pair (mean
 *              ratio value / baseline; cles 1, 1/2 or 0), else 0 (also
 *              without a baseline). */
double cn_sim_severity(const cn_sim_config *cfg, int64_t at_ms, double weight);

/* "completed", "rolled_back", ... or, not finished, "paused",
 * "awaiting_approval", "progressing". */
const char *cn_sim_outcome(const cn_sim_result *res);

#endif
