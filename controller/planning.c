#include "canary/planning.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canary/schema.h"
#include "canary/status.h"

static void note(cn_planning *pl, const char *fmt, ...)
{
    if (pl->note_count == sizeof pl->notes / sizeof pl->notes[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pl->notes[pl->note_count++], sizeof pl->notes[0], fmt, ap);
    va_end(ap);
}

static int load_policies(cn_planning *pl, const cn_planning_options *opt,
                         cn_diags *diags)
{
    if (opt->policy_path) {
        pl->have_single = true;
        return cn_policy_load(&pl->single, opt->policy_path, diags);
    }
    const char *dir = opt->policies_dir ? opt->policies_dir : "policies";
    struct stat st;
    if (!opt->policies_dir && stat(dir, &st) != 0) {
        cn_diags_add(diags, "canary", 0, 0,
                     "no policy given and no 'policies' directory here; pass "
                     "--policy FILE or --policies DIR");
        return CN_EINVAL;
    }
    return cn_policy_set_load_dir(&pl->set, dir, diags);
}

/* Agents recognised in trailers: those of every loaded policy. The policy
 * cannot be chosen before provenance is known (ai_assisted is one of its
 * match criteria), and recognising more agents only makes plans stricter. */
static int collect_agents(cn_planning *pl, cn_strings *out, const char **buf,
                          size_t cap)
{
    size_t n = 0;
    const cn_policy *one[] = {&pl->single};
    const cn_policy *const *items = pl->have_single ? one
                                                    : (const cn_policy *const *)pl->set.items;
    size_t count = pl->have_single ? 1 : pl->set.count;
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < items[i]->agents.count; j++) {
            const char *a = items[i]->agents.items[j];
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = !strcmp(buf[k], a);
            if (!dup) {
                if (n == cap)
                    return CN_ELIMIT;
                buf[n++] = a;
            }
        }
    out->items = buf;
    out->count = n;
    return CN_OK;
}

static int derive_provenance(cn_planning *pl, const cn_planning_options *opt,
                             const cn_policy *kinds_policy, cn_diags *diags)
{
    const char *agent_buf[512];
    cn_strings agents;
    if (collect_agents(pl, &agents, agent_buf, 512)) {
        cn_diags_add(diags, "canary", 0, 0, "policies name more than 512 AI agents");
        return CN_ELIMIT;
    }
    char err[512] = "";
    cn_provenance_init(&pl->prov);
    pl->have_prov = true;
    int rc = cn_provenance_from_git(&pl->prov, opt->repo_dir ? opt->repo_dir : ".",
                                    opt->git_range, &agents, kinds_policy, err,
                                    sizeof err);
    if (rc)
        cn_diags_add(diags, "--git-range", 0, 0, "%s", err);
    return rc;
}

static int select_policy(cn_planning *pl, cn_diags *diags)
{
    if (pl->have_single) {
        pl->policy = &pl->single;
        return CN_OK;
    }
    cn_match_subject s = {pl->change.service, pl->tier, pl->ai_assisted};
    char err[512] = "";
    int rc = cn_policy_select(&pl->set, &s, &pl->policy, err, sizeof err);
    if (rc)
        cn_diags_add(diags, "canary", 0, 0, "%s", err);
    return rc;
}

static void decide_ai(cn_planning *pl)
{
    if (pl->change.ai_assisted >= 0) {
        pl->ai_assisted = pl->change.ai_assisted;
        pl->ai_source = CN_AI_FROM_CHANGE;
        if (!pl->ai_assisted && pl->have_prov && pl->prov.ai_assisted)
            note(pl, "the change says ai_assisted: false, but %zu commit trailer(s) "
                     "in %s name an AI agent; check the change file",
                 pl->prov.evidence_count, pl->prov.range);
    } else if (pl->have_prov) {
        pl->ai_assisted = pl->prov.ai_assisted;
        pl->ai_source = CN_AI_FROM_GIT;
    } else {
        pl->ai_assisted = false;
        pl->ai_source = CN_AI_UNKNOWN;
        note(pl, "AI provenance unknown: the change does not set ai_assisted and "
                 "no --git-range was given; planned as a human-written change");
    }
}

/* Finds the change's service in the topology: reach, tier and fleet. */
static int locate_service(cn_planning *pl, double *reach, cn_diags *diags)
{
    const cn_topology *t = &pl->topology;
    long idx = cn_topology_find(t, pl->change.service);
    if (idx < 0) {
        const char **names = malloc((t->count ? t->count : 1) * sizeof(*names));
        if (!names)
            return CN_ENOMEM;
        for (size_t i = 0; i < t->count; i++)
            names[i] = t->services[i].name;
        const char *hint = cn_suggest(pl->change.service, names, t->count);
        free(names);
        cn_diags_add(diags, pl->change.file, pl->change.service_line,
                     pl->change.service_col,
                     "service '%s' is not in topology '%s'%s%s%s",
                     pl->change.service, t->file, hint ? " (did you mean '" : "",
                     hint ? hint : "", hint ? "'?)" : "");
        return CN_EINVAL;
    }
    const cn_service *svc = &t->services[idx];
    pl->service_index = idx;
    pl->tier = svc->tier;
    if (cn_topology_reach(t, (size_t)idx, reach))
        return CN_ENOMEM;
    if (*reach == 0)
        note(pl, "no entry service reaches '%s' in the topology: it carries no "
                 "user traffic, so it gets a single stage",
             svc->name);
    return CN_OK;
}

/* Every kind counts: dropping one would drop its multiplier and make the
 * plan bolder, so too many distinct kinds is an error, not a cut. */
#define MAX_KINDS 64

static int add_kind(cn_plan_input *in, const char **kinds, const char *kind)
{
    for (size_t i = 0; i < in->kind_count; i++)
        if (!strcmp(kinds[i], kind))
            return CN_OK;
    if (in->kind_count == MAX_KINDS)
        return CN_ELIMIT;
    kinds[in->kind_count++] = kind;
    return CN_OK;
}

/* Diff size and kinds: from git when a range was given, else the change. */
static int collect_kinds(cn_planning *pl, cn_plan_input *in, const char **kinds,
                         cn_diags *diags)
{
    int rc = CN_OK;
    if (pl->have_prov) {
        if (pl->change.has_diff)
            note(pl, "the diff in the change file was replaced by what git reports "
                     "for %s", pl->prov.range);
        in->diff_lines = pl->prov.lines;
        for (size_t i = 0; !rc && i < pl->prov.kind_count; i++)
            rc = add_kind(in, kinds, pl->prov.kinds[i].kind);
    } else if (pl->change.has_diff) {
        in->diff_lines = pl->change.diff_lines;
        for (size_t i = 0; !rc && i < pl->change.diff_kinds.count; i++)
            rc = add_kind(in, kinds, pl->change.diff_kinds.items[i]);
    }
    if (rc)
        cn_diags_add(diags, pl->change.file, 0, 0,
                     "the change touches more than %d kinds; canary cannot weigh "
                     "them all, so it will not plan it", MAX_KINDS);
    return rc;
}

int cn_planning_run(cn_planning *pl, const cn_planning_options *opt,
                    cn_diags *diags)
{
    memset(pl, 0, sizeof(*pl));
    pl->tier = -1;
    pl->service_index = -1;
    /* Load every file before stopping, so one run reports all problems. */
    int rc = cn_change_load(&pl->change, opt->change_path, diags);
    pl->have_change = true;
    int trc = CN_OK;
    if (opt->topology_path) {
        trc = cn_topology_load(&pl->topology, opt->topology_path, diags);
        pl->have_topology = true;
    }
    int prc = load_policies(pl, opt, diags);
    if (rc || trc || prc)
        return rc ? rc : trc ? trc : prc;

    double reach = 1.0;
    if (pl->have_topology) {
        if ((rc = locate_service(pl, &reach, diags)))
            return rc;
    } else {
        note(pl, "no topology given: reach taken as 100%% of user traffic and the "
                 "tier as unknown (riskiest); pass --topology for a tighter plan");
    }
    if (pl->tier < 0 && !pl->have_single)
        note(pl, "the service's tier is unknown, so policies that match on tiers "
                 "were not considered; give the tier in the topology");

    /* Provenance first (it may decide ai_assisted, a match criterion); kinds
     * are then classified again under the policy actually chosen. */
    if (opt->git_range) {
        const cn_policy *any = pl->have_single ? &pl->single : pl->set.items[0];
        if ((rc = derive_provenance(pl, opt, any, diags)))
            return rc;
    }
    decide_ai(pl);
    if ((rc = select_policy(pl, diags)))
        return rc;
    if (pl->have_prov && (rc = cn_provenance_classify(&pl->prov, pl->policy))) {
        cn_diags_add(diags, "canary", 0, 0, "cannot classify changed files: %s",
                     cn_strerror(rc));
        return rc;
    }

    const char *kinds[MAX_KINDS];
    cn_plan_input in = {.policy = pl->policy, .ai_assisted = pl->ai_assisted,
                        .reach = reach, .tier = pl->tier, .kinds = kinds};
    if ((rc = collect_kinds(pl, &in, kinds, diags)))
        return rc;
    if (pl->service_index >= 0) {
        const cn_service *svc = &pl->topology.services[pl->service_index];
        in.fleet_unit = svc->fleet_unit;
        in.fleet_count = svc->fleet_count;
    }
    char err[256] = "";
    if ((rc = cn_plan_compute(&in, &pl->plan, err, sizeof err))) {
        cn_diags_add(diags, pl->policy->file, 0, 0, "%s", err);
        return rc;
    }
    const cn_stage *first = &pl->plan.stages[0];
    if (first->units == 1 && first->weight < 1 && first->weighted > 2 * first->budget)
        note(pl, "stage 1 puts %.0fx its budget at risk: one %s of %llu is the "
                 "smallest step this fleet can take; a finer split would start smaller",
             first->weighted / first->budget,
             pl->plan.fleet_unit ? pl->plan.fleet_unit : "unit",
             (unsigned long long)pl->plan.fleet_count);
    return CN_OK;
}

void cn_planning_free(cn_planning *pl)
{
    if (pl->have_change)
        cn_change_free(&pl->change);
    if (pl->have_topology)
        cn_topology_free(&pl->topology);
    if (pl->have_single)
        cn_policy_free(&pl->single);
    cn_policy_set_free(&pl->set);
    if (pl->have_prov)
        cn_provenance_free(&pl->prov);
}
