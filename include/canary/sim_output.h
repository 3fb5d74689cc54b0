/*
 * sim_output.h: a simulated rollout for people and programs (shell).
 *
 * Contract: cn_sim_print_text() writes one line per event ("+TIME TYPE
 * DETAIL", every event, or only decisions) and a summary: outcome and the
 * exit code `canary run` would return, duration, max weight, exposure,
 * impact, and the note when the simulation stopped at its bound.
 * cn_sim_print_json() writes the `canary simulate -o json` object (docs/cli.md):
 * outcome, exit_code (null when the rollout had not finished), finished,
 * bounded, note, duration_seconds, max_weight and reach_percent (percent),
 * exposure_weight_seconds and impact (%·s), events [{seconds, type,
 * detail}]. cn_sim_svg() writes a self-contained SVG picture: the weight
 * over time as steps, one panel per metric with its samples against its
 * threshold, vertical markers at decisions, time on the x axis. Writers
 * return CN_OK, or CN_EIO when the stream failed.
 */
#ifndef CANARY_SIM_OUTPUT_H
#define CANARY_SIM_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "canary/simulate.h"

/* Decisions, as opposed to evidence (measurements, request counts, late
 * measurements): what --decisions keeps and what the SVG marks. */
bool cn_sim_is_decision(const char *type);

int cn_sim_print_text(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res,
                      bool decisions_only);
/* The JSON object without its events; NULL when out of memory. */
json_t *cn_sim_summary_json(const cn_sim_config *cfg, const cn_sim_result *res);
/* The whole object, events one per line; CN_ENOMEM, CN_EIO. */
int cn_sim_print_json(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res);
/* title: one line above the picture (may be NULL). */
int cn_sim_svg(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res,
               const char *title);

#endif
