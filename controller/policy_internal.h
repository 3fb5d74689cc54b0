/*
 * policy_internal.h: what policy.c and policy_analysis.c share. Nothing
 * outside the policy loader includes this.
 *
 * policy.c owns the top-level table, match, plan, risk, ai_assisted (but
 * its analysis), provenance and diff, selection and directory loading;
 * policy_analysis.c owns analysis, metrics, their sources, the AI-assisted
 * analysis overrides and the actuator, and the checks that compare fields
 * across sections once everything is loaded.
 */
#ifndef CANARY_POLICY_INTERNAL_H
#define CANARY_POLICY_INTERNAL_H

#include "canary/doc.h"
#include "canary/policy.h"
#include "canary/schema.h"

/* Like cn_parse_percent / cn_parse_duration, but range problems are told in
 * the units the person wrote ("at most 100%", "at least 1s") rather than
 * in stored fractions and milliseconds. f->min / f->max are stored units. */
int cn__parse_percent_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                            void *dst); /* double */
int cn__parse_duration_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                             void *dst); /* int64_t */

/* cn_parse_number / cn_parse_uint with the range message quoting the value
 * found, as every other policy message does. */
int cn__parse_number_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                           void *dst); /* double */
int cn__parse_uint_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                         void *dst); /* unsigned */
/* cn_parse_quantity (a number or a percentage) with the range told in the
 * form the value was written in. */
int cn__parse_quantity_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                             void *dst); /* double */

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

/* The analysis section (dst: cn_analysis), the stricter analysis for
 * AI-assisted changes (dst: cn_ai_analysis) and the actuator section (dst:
 * cn_actuator; null means absent). */
int cn__parse_ai_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                          void *dst);
int cn__parse_analysis(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst);
int cn__parse_actuator(cn_loader *ld, const cn_node *v, const cn_field *f,
                       void *dst);

/* Checks across sections, after every section is loaded: analysis timeout
 * (and its default), max_bake against the longest bake a stage can get,
 * and the ai_assisted analysis overrides against the base analysis. root
 * is the policy map. */
void cn__policy_check_analysis(cn_loader *ld, const cn_node *root, cn_policy *p);

/* The plan and ai_assisted schemas (policy.c), for cross-field checks. */
extern const cn_schema cn__plan_schema;
extern const cn_schema cn__ai_schema;

/* Whether a cross-field check may use the loaded value of key (one of s's
 * fields parsed by a cn__parse_*_range parser): true when section leaves
 * it out (the default then holds) or gives a value that parsed and is in
 * range; false when that value was already reported, or when section is
 * present but not a map. Comparing a default in place of a rejected value
 * would only add a second, misleading message for the same mistake. */
bool cn__file_ok(const cn_node *section, const cn_schema *s, const char *key);

#define CN__BIT(i) (1ull << (i))

/* "2m", "1500ms": a duration in the shortest exact unit, for messages. */
void cn__format_ms(char *buf, size_t len, int64_t ms);

#endif
