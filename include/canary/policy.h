/*
 * policy.h: rollout policies (the YAML files in policies/), loaded and matched.
 *
 * Contract: cn_policy_load() reads one policy file into a cn_policy whose
 * strings and arrays live in policy->arena; every key not given in the file
 * holds the default documented in docs/policy.md. All problems are reported
 * to diags as FILE:LINE:COLUMN and the function returns CN_EINVAL; the
 * policy must be freed with cn_policy_free() in every case.
 * Percentages are stored as fractions (1% = 0.01), durations in ms.
 * cn_policy_select() picks the most specific matching policy; it is pure.
 */
#ifndef CANARY_POLICY_H
#define CANARY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/judge.h"
#include "canary/schema.h"

#define CN_MAX_STAGES 100
#define CN_MAX_TIER 9

typedef enum { CN_ON_ROLLBACK = 0, CN_ON_PAUSE = 1 } cn_on_outcome;
/* ai_assisted.approval.on_timeout: what an unanswered approval gate does. */
typedef enum { CN_APPROVAL_ROLLBACK = 0, CN_APPROVAL_WAIT = 1 } cn_approval_on_timeout;
typedef enum {
    CN_REDUCE_NONE = 0, /* exactly one series is required */
    CN_REDUCE_SUM,
    CN_REDUCE_MAX,
    CN_REDUCE_MIN,
    CN_REDUCE_AVG
} cn_reduce;
typedef enum { CN_SOURCE_NONE = 0, CN_SOURCE_PROMETHEUS, CN_SOURCE_JSON } cn_source_kind;

/* A header whose value is read from an environment variable at run time, so
 * that secrets never appear in policy files. */
typedef struct cn_env_header {
    const char *name;
    const char *env;
} cn_env_header;

/* Where a number comes from: a Prometheus instant query or a JSON document.
 * address, query, url and pointer may use the templates {{service}},
 * {{version}}, {{previous_version}}, {{rollout}} and {{stage}}; the loader
 * rejects any other name ({{window}} is only for a burn rate's queries). */
typedef struct cn_source {
    cn_source_kind kind;
    const char *address;  /* prometheus: base URL */
    const char *query;    /* prometheus: PromQL */
    int reduce;           /* prometheus: cn_reduce */
    const char *url;      /* json */
    const char *pointer;  /* json: RFC 6901 pointer */
    const char *bearer_token_env;
    cn_env_header *headers;
    size_t header_count;
} cn_source;

typedef struct cn_threshold {
    bool has_min, has_max;
    double min, max; /* percentages stored as fractions */
} cn_threshold;

/* Comparison with the running baseline ({{previous_version}}): fails when
 * canary > baseline * (1 + max_increase) + slack. */
typedef struct cn_baseline {
    bool enabled;
    double max_increase; /* fraction, e.g. 20% = 0.2 */
    double slack;        /* absolute, in the metric's unit */
} cn_baseline;

/* One window pair of a burn-rate metric: it fires when the burn rate is
 * above factor over both windows (docs/policy.md#burn_rate). */
typedef struct cn_burn_window {
    int64_t long_ms, short_ms; /* short < long */
    double factor;             /* > 1 */
} cn_burn_window;

#define CN_BURN_MAX_PAIRS 6

/* A burn-rate metric: the canary's error ratio errors / total over each
 * window, against the error budget 1 - slo. errors and total are PromQL
 * that must use {{window}}; the metric's source holds the Prometheus
 * address (and credentials) with no query of its own. */
typedef struct cn_burn_rate {
    bool enabled;
    double slo;                /* fraction, 0 < slo < 1 */
    const char *errors, *total;
    cn_burn_window *windows;   /* count 0: the SRE workbook's two paging pairs */
    size_t window_count;
    bool scale_to_bake;        /* default true */
} cn_burn_rate;

/* A metric judged by the statistical judge (judge.h): each interval, the
 * canary's and the baseline's samples from Prometheus range queries over
 * the stage so far, one sample per step, compared by Mann-Whitney; all
 * judged metrics of a policy are scored together (cn_judge_scoring). The
 * metric's source holds the query: {{version}} is the new version for the
 * canary's samples and the previous version for the baseline's. */
typedef struct cn_metric_judge {
    bool enabled;
    cn_judge_config config; /* Kayenta's defaults (cn_judge_defaults) for keys not given */
    const char *group;      /* NULL: the group "default" */
    int64_t step_ms;        /* range query step; 0: analysis.interval */
} cn_metric_judge;

typedef struct cn_metric {
    const char *name;
    cn_source source;
    cn_threshold threshold;
    cn_baseline baseline;
    cn_burn_rate burn;  /* enabled: judged by burn rate, not threshold or baseline */
    cn_metric_judge judge; /* enabled: judged against the baseline's samples, not by
                              threshold, baseline or burn rate */
    unsigned line, col; /* of the metric's entry, for later messages */
} cn_metric;

/* analysis.judge: how the judged metrics' classifications become one
 * score (judge.h cn_judge_score). */
typedef struct cn_judge_scoring {
    double pass, marginal;   /* default 95, 75; marginal <= pass, both 0..100 */
    cn_group_weight *groups; /* weight (percent) per group; none: groups share equally */
    size_t group_count;
} cn_judge_scoring;

typedef struct cn_min_requests {
    unsigned count; /* 0 = no minimum */
    cn_source source;
} cn_min_requests;

typedef struct cn_analysis {
    int64_t interval_ms;              /* default 30s */
    int64_t timeout_ms;               /* default: interval / 2, capped at 10s */
    unsigned failure_limit;           /* default 0 */
    unsigned consecutive_failure_limit; /* 0 = not set */
    unsigned consecutive_error_limit; /* default 3 */
    int64_t max_bake_ms;              /* 0 = 3 x bake */
    int on_failure;                   /* cn_on_outcome, default rollback */
    int on_inconclusive;              /* cn_on_outcome, default rollback */
    cn_min_requests min_requests;
    cn_metric *metrics;
    size_t metric_count;
    cn_judge_scoring judge;           /* for metrics with a judge */
} cn_analysis;

/* Stricter analysis settings for AI-assisted changes. Thresholds are
 * overridden by metric name and may only tighten. After loading, each
 * override holds the whole threshold to apply: a bound the file leaves out
 * is copied from the metric's own threshold, so applying the override in
 * place of the metric's threshold never loosens it. */
typedef struct cn_threshold_override {
    const char *metric;
    cn_threshold threshold;
    unsigned line, col;
} cn_threshold_override;

typedef struct cn_ai_analysis {
    bool has_failure_limit;
    unsigned failure_limit;
    bool has_consecutive_failure_limit;
    unsigned consecutive_failure_limit;
    cn_threshold_override *thresholds;
    size_t threshold_count;
} cn_ai_analysis;

typedef struct cn_plan_policy {
    double first_stage_impact; /* fraction of all user traffic, default 0.1% */
    double growth;             /* default 4, > 1 */
    unsigned max_stages;       /* default 10, 2..CN_MAX_STAGES */
    int64_t bake_ms;           /* default 2m */
    unsigned min_samples;      /* default 3 */
    /* Fixed ladder instead of computed stages (fractions, increasing, the
     * last 100%); count 0 = compute from the blast radius. */
    double *steps;
    size_t step_count;
} cn_plan_policy;

typedef struct cn_kind_multiplier {
    const char *kind;
    double multiplier;
} cn_kind_multiplier;

typedef struct cn_risk_policy {
    double tier[CN_MAX_TIER + 1]; /* multiplier per tier */
    bool has_tier[CN_MAX_TIER + 1];
    cn_kind_multiplier *kinds;
    size_t kind_count;
    double per_1000_lines; /* size multiplier = 1 + per_1000_lines * lines/1000 */
} cn_risk_policy;

typedef struct cn_ai_policy {
    double risk;        /* default 2, >= 1 */
    double bake_factor; /* default 2, >= 1 */
    double approval_above_weight; /* fraction; default 25%; 1 = no gate */
    const char *approval_role;    /* default "senior" */
    int64_t approval_timeout_ms;  /* 0 (default): wait for an approval for ever */
    int approval_on_timeout;      /* CN_APPROVAL_ROLLBACK (default) or CN_APPROVAL_WAIT */
    cn_ai_analysis analysis;
} cn_ai_policy;

/* Path pattern (fnmatch, '*' also matches '/') to kind, first match wins;
 * paths matching none are "code". */
typedef struct cn_kind_rule {
    const char *pattern;
    const char *kind;
} cn_kind_rule;

typedef struct cn_actuator {
    cn_strings exec;       /* argv, no shell */
    const char *http_url;  /* POST JSON; exclusive with exec */
    cn_source http_auth;   /* only bearer_token_env / headers are used */
    int64_t timeout_ms;    /* default 30s */
    unsigned retries;      /* default 3 */
    int64_t backoff_ms;    /* first retry delay, doubled each time; default 1s */
} cn_actuator;

/* Notifications (notify: in the policy): what happened to a rollout, posted
 * to webhooks. The events, as bits of cn_webhook.events; their names are
 * cn_notify_event_names[bit]. */
enum {
    CN_NOTIFY_STARTED = 1u << 0,
    CN_NOTIFY_STAGE_ADVANCED = 1u << 1,
    CN_NOTIFY_AWAITING_APPROVAL = 1u << 2,
    CN_NOTIFY_ROLLED_BACK = 1u << 3,
    CN_NOTIFY_COMPLETED = 1u << 4,
    CN_NOTIFY_FAILED = 1u << 5,
    CN_NOTIFY_ALL = (1u << 6) - 1
};
#define CN_NOTIFY_EVENT_COUNT 6
/* "started", "stage_advanced", "awaiting_approval", "rolled_back",
 * "completed", "failed". */
extern const char *const cn_notify_event_names[CN_NOTIFY_EVENT_COUNT];

typedef enum { CN_NOTIFY_GENERIC = 0, CN_NOTIFY_SLACK = 1 } cn_notify_format;

typedef struct cn_webhook {
    const char *url;      /* http:// or https://, no templates */
    int format;           /* cn_notify_format, default generic */
    unsigned events;      /* CN_NOTIFY_* bits, default CN_NOTIFY_ALL */
    cn_source auth;       /* only bearer_token_env / headers are used */
    int64_t timeout_ms;   /* one POST, default 5s */
    unsigned line, col;   /* of the entry, for later messages */
} cn_webhook;

typedef struct cn_match {
    cn_strings services; /* globs; none = any */
    int tiers[CN_MAX_TIER + 1];
    size_t tier_count;   /* 0 = any */
    int ai_assisted;     /* -1 any, 0 human only, 1 AI-assisted only */
} cn_match;

typedef struct cn_policy {
    const char *file;
    const char *name;
    cn_match match;
    cn_plan_policy plan;
    cn_risk_policy risk;
    cn_ai_policy ai;
    cn_analysis analysis;
    cn_actuator actuator;
    cn_webhook *notify;     /* none by default */
    size_t notify_count;
    cn_strings agents;      /* provenance.agents: AI agent names */
    cn_kind_rule *kind_rules; /* diff.kinds */
    size_t kind_rule_count;
    unsigned match_line, match_col;
    cn_arena arena;
} cn_policy;

/* Fills p with every default (used before loading, and by tests). */
void cn_policy_defaults(cn_policy *p);
int cn_policy_load(cn_policy *p, const char *path, cn_diags *diags);
/* Loads from an already parsed document (used by validate by content). */
int cn_policy_load_doc(cn_policy *p, const cn_doc *doc, cn_diags *diags);
void cn_policy_free(cn_policy *p);

/* The multiplier for a kind, 1 when the policy names none. */
double cn_policy_kind_multiplier(const cn_policy *p, const char *kind);
/* The kind for a changed path per diff.kinds; "code" when none matches. */
const char *cn_policy_kind_for_path(const cn_policy *p, const char *path);

typedef struct cn_policy_set {
    cn_policy **items;
    size_t count;
} cn_policy_set;

/* Loads every *.yaml, *.yml and *.json in dir (the files `canary validate
 * DIR` checks; not recursive, dot files skipped), sorted by file name.
 * Reports every problem in every file, and two policies sharing a name;
 * set then holds only the files that loaded cleanly. CN_ENOTFOUND when
 * dir does not exist, CN_EINVAL when any file failed or there is none.
 * Free with cn_policy_set_free() in every case. */
int cn_policy_set_load_dir(cn_policy_set *set, const char *dir, cn_diags *diags);
void cn_policy_set_free(cn_policy_set *set);

/* What a policy is matched against. tier < 0: unknown (no topology). */
typedef struct cn_match_subject {
    const char *service;
    int tier;
    bool ai_assisted;
} cn_match_subject;

/* Picks the most specific matching policy (see docs/policy.md): by the
 * service criterion (exact name > glob, more literal characters first),
 * then a tier criterion, then an ai_assisted criterion. A glob with no
 * literal character ("*", "?*") ranks as no service criterion; a policy
 * with several globs is as specific as the best one that matches. A tiers
 * criterion never matches a subject whose tier is unknown. Returns 0 and
 * sets *chosen; CN_ENOTFOUND when none matches; CN_EINVAL on a tie (only a
 * tie for the most specific place counts). *chosen is NULL on failure and
 * err names the files involved. */
int cn_policy_select(const cn_policy_set *set, const cn_match_subject *s,
                     const cn_policy **chosen, char *err, size_t errlen);

/* The built-in list of AI agents recognised in commit trailers. */
extern const char *const cn_default_agents[];
extern const size_t cn_default_agent_count;

#endif
