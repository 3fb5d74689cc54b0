/*
 * policy_internal.h: what policy.c and policy_analysis.c share. Nothing
 * outside the policy loader includes this.
 *
 * policy.c owns the top-level table, match, plan, risk, ai_assisted (but
 * its analysis), provenance and diff, selection and directory loading;
 * policy_analysis.c owns analysis, metrics, their sources, the AI-assisted
 * analysis overrides and the actuator, and the checks that compare fields
 * across sections once everything is loaded; policy_burn.c a metric's
 * burn_rate; policy_judge.c a metric's judge and analysis.judge;
 * policy_notify.c owns notify.
 */
#ifndef CANARY_POLICY_INTERNAL_H
#define CANARY_POLICY_INTERNAL_H

#include "canary/doc.h"
#include "canary/policy.h"
#include "canary/schema.h"

/* A string that must not be empty. */
int cn__parse_name(cn_loader *ld, const cn_node *v, const cn_field *f,
                   void *dst); /* const char * */

/* Maps whose keys are free-form names (tiers, kinds, header names) rather
 * than a schema. cn__free_map reports and returns false when v is not a
 * map; cn__free_key_ok checks key i is a non-empty name not seen before in
 * the map, and reports otherwise. key names the map in messages. */
bool cn__free_map(cn_loader *ld, const cn_node *v, const char *key,
                  const char *expected);
bool cn__free_key_ok(cn_loader *ld, const cn_node *map, size_t i,
                     const char *key);

/* {min, max}: at least one, min <= max; has_min/has_max are set only for
 * bounds that parsed, so later comparisons never see a default as if the
 * file had given it. */
int cn__parse_threshold(cn_loader *ld, const cn_node *v, const cn_field *f,
                        void *dst); /* cn_threshold */

/* Checks every {{...}} in s (the value of key, at v) names a template:
 * those of docs/policy.md#templates, and with window also {{window}}.
 * Returns how many {{window}} templates s holds, or -1 after reporting
 * the first problem. */
int cn__check_templates(cn_loader *ld, const cn_node *v, const char *key,
                        const char *s, bool window);

/* A metric's burn_rate (policy_burn.c; dst: the cn_metric, whose source
 * and burn it fills) and the Prometheus source inside it (dst:
 * cn_source: an address and credentials, no query). */
int cn__parse_burn_rate(cn_loader *ld, const cn_node *v, const cn_field *f,
                        void *dst);
int cn__parse_burn_prometheus(cn_loader *ld, const cn_node *v, const cn_field *f,
                              void *dst);

/* A metric's judge (policy_judge.c; dst: cn_metric_judge): the scalar
 * 'mann_whitney' or a map {mann_whitney: {settings}, step}; analysis.judge
 * (dst: cn_judge_scoring); and the checks across the analysis section once
 * the metrics are loaded (weights for groups no judged metric is in,
 * weights that leave the score short of 100, analysis.judge with no judged
 * metric). an is the analysis map. */
int cn__parse_judge(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
int cn__parse_judge_scoring(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
void cn__policy_check_judge(cn_loader *ld, const cn_node *an, cn_policy *p);

/* The analysis section (dst: cn_analysis), the stricter analysis for
 * AI-assisted changes (dst: cn_ai_analysis) and the actuator section (dst:
 * cn_actuator; null means absent). */
int cn__parse_ai_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                          void *dst);
int cn__parse_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst);
int cn__parse_actuator(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst);

/* Credentials and webhooks, shared by sources, the actuator and notify
 * (policy_analysis.c). cn__parse_env_name: the name of an environment
 * variable (const char *). cn__parse_env_headers: headers_from_env into the
 * cn_source at dst. cn__parse_url: an http(s) URL with a host, no
 * credentials, no whitespace and no templates (const char *).
 * cn__reject_secret refuses a key that would put a secret in the file,
 * saying where it belongs; CN__SECRET_FIELDS lists those keys for a
 * schema table. */
int cn__parse_env_name(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
int cn__parse_env_headers(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
int cn__parse_url(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
int cn__reject_secret(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);
#define CN__SECRET_FIELDS                                  \
    {.key = "bearer_token", .parse = cn__reject_secret},   \
    {.key = "token", .parse = cn__reject_secret},          \
    {.key = "password", .parse = cn__reject_secret},       \
    {.key = "headers", .parse = cn__reject_secret}

/* The notify list (policy_notify.c); dst: cn_policy. */
int cn__parse_notify(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst);

/* Checks across sections, after every section is loaded: analysis timeout
 * (and its default), max_bake against the longest bake a stage can get,
 * and the ai_assisted analysis overrides against the base analysis. root
 * is the policy map. */
void cn__policy_check_analysis(cn_loader *ld, const cn_node *root, cn_policy *p);

/* The plan and ai_assisted schemas (policy.c), for cross-field checks. */
extern const cn_schema cn__plan_schema;
extern const cn_schema cn__ai_schema;

/* One entry of a map of free-form names: parses value into elem (zeroed)
 * and copies the name where it belongs. map_key names the map in
 * messages. 0, or -1 after reporting. */
typedef int (*cn__entry_parser)(cn_loader *ld, const char *map_key,
                                const cn_node *name, const cn_node *value,
                                void *elem);

/* Loads the map v of free-form names into a new arena array of elem_size
 * elements, one per entry that loaded (*items, *count; set also when some
 * entries failed). Checks the map (and, with nonempty, that it has
 * entries) and each name with cn__free_key_ok. 0, or -1 after reporting
 * every problem. */
int cn__load_entries(cn_loader *ld, const cn_node *v, const char *key,
                     const char *expected, bool nonempty, size_t elem_size,
                     cn__entry_parser one, void **items, size_t *count);

/* Copies name's text into the loader's arena. 0, or -1 after reporting. */
int cn__copy_name(cn_loader *ld, const cn_node *name, const char **dst);

#define CN__BIT(i) (1ull << (i))

#endif
