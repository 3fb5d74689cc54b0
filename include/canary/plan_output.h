/*
 * plan_output.h: a plan as people and pipelines read it.
 *
 * Contract: cn_plan_print_text() writes the header explaining reach, each
 * risk factor and the AI provenance, then one row per stage. cn_plan_to_json()
 * returns a new jansson object (caller owns the reference) with exactly the
 * keys of shared/design.md section 4 (rollout, service, ai_assisted,
 * blast_radius {reach, risk, score}, stages [{index, weight (percent 0-100),
 * units, bake_seconds, approval}]) plus explanatory extras; NULL when out of
 * memory. Both only read the planning result.
 */
#ifndef CANARY_PLAN_OUTPUT_H
#define CANARY_PLAN_OUTPUT_H

#include <stdio.h>

#include <jansson.h>

#include "canary/planning.h"
#include "canary/schema.h"

void cn_plan_print_text(const cn_planning *pl, FILE *out);
json_t *cn_plan_to_json(const cn_planning *pl);
/* A fraction as a percentage with four significant digits: "0.0022%". */
void cn_format_percent(char *buf, size_t len, double fraction);

#endif
