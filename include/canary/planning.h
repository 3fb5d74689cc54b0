/*
 * planning.h: everything `canary plan` (and later `canary run`) needs to
 * turn file names into a plan, in one place.
 *
 * Contract: cn_planning_run() loads the change, topology and policies,
 * derives provenance from git when a range is given, selects the policy,
 * computes reach and the plan. It is the shell around the pure planner: it
 * reads files and runs git, nothing else. Every problem in every input file
 * is added to diags (FILE:LINE:COLUMN); problems that are not about one
 * file position (no matching policy, git failed) too, naming what failed.
 * Returns CN_OK or the first failure's code; cn_planning_free() must be
 * called in every case.
 */
#ifndef CANARY_PLANNING_H
#define CANARY_PLANNING_H

#include <stdbool.h>

#include "canary/change.h"
#include "canary/diag.h"
#include "canary/plan.h"
#include "canary/policy.h"
#include "canary/provenance.h"
#include "canary/topology.h"

typedef struct cn_planning_options {
    const char *change_path;   /* required */
    const char *topology_path; /* NULL: reach 1, tier unknown */
    const char *policy_path;   /* exclusive with policies_dir */
    const char *policies_dir;  /* NULL with policy_path NULL: "policies" */
    const char *git_range;     /* NULL: no provenance from git */
    const char *repo_dir;      /* for git; NULL means "." */
} cn_planning_options;

typedef enum {
    CN_AI_FROM_CHANGE,  /* the change file says ai_assisted: true/false */
    CN_AI_FROM_GIT,     /* derived from commit trailers */
    CN_AI_UNKNOWN       /* neither: treated as not AI-assisted */
} cn_ai_source;

typedef struct cn_planning {
    cn_change change;
    bool have_change;
    cn_topology topology;
    bool have_topology;
    cn_policy single;    /* --policy */
    bool have_single;
    cn_policy_set set;   /* --policies */
    const cn_policy *policy; /* the one chosen */
    cn_provenance prov;
    bool have_prov;
    bool ai_assisted;
    cn_ai_source ai_source;
    int tier;            /* -1 unknown */
    long service_index;  /* in the topology; -1 without one */
    cn_plan plan;
    /* A person should know these before trusting the plan. */
    char notes[8][256];
    size_t note_count;
} cn_planning;

int cn_planning_run(cn_planning *pl, const cn_planning_options *opt,
                    cn_diags *diags);
void cn_planning_free(cn_planning *pl);

#endif
