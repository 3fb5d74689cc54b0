#include "canary/plan_output.h"

#include <math.h>
#include <string.h>

void cn_format_percent(char *buf, size_t len, double fraction)
{
    snprintf(buf, len, "%.4g%%", fraction * 100);
}

static const char *ai_source_text(const cn_planning *pl)
{
    switch (pl->ai_source) {
    case CN_AI_FROM_CHANGE: return "set in the change file";
    case CN_AI_FROM_GIT: return "from commit trailers";
    default: return "not known";
    }
}

static void print_provenance(const cn_planning *pl, FILE *out)
{
    fprintf(out, "  AI-assisted   %s (%s", pl->ai_assisted ? "yes" : "no",
            ai_source_text(pl));
    if (pl->have_prov)
        fprintf(out, ", %u commit%s in %s", pl->prov.commits,
                pl->prov.commits == 1 ? "" : "s", pl->prov.range);
    fprintf(out, ")\n");
    if (!pl->have_prov)
        return;
    const char *last = NULL;
    for (size_t i = 0; i < pl->prov.evidence_count; i++) {
        const cn_ai_evidence *e = &pl->prov.evidence[i];
        if (!last || strcmp(last, e->commit))
            fprintf(out, "                %s %s\n", e->commit, e->subject);
        fprintf(out, "                  %s\n", e->trailer);
        last = e->commit;
    }
}

static void print_header(const cn_planning *pl, FILE *out)
{
    const cn_change *c = &pl->change;
    const cn_plan *p = &pl->plan;
    char buf[64];
    fprintf(out, "Plan for %s %s (rollout %s)", c->service, c->version, c->id);
    if (c->previous_version)
        fprintf(out, ", replacing %s", c->previous_version);
    fprintf(out, "\n  policy        %s (%s)\n", pl->policy->name, pl->policy->file);
    cn_format_percent(buf, sizeof buf, p->reach);
    if (pl->have_topology)
        fprintf(out, "  reach         %s of all user requests touch %s (%s)\n", buf,
                c->service, pl->topology.file);
    else
        fprintf(out, "  reach         %s (no topology given)\n", buf);
    fprintf(out, "  risk          x%.4g =", p->risk);
    for (size_t i = 0; i < p->factor_count; i++)
        fprintf(out, "%s %s (x%.4g)", i ? " *" : "", p->factors[i].detail,
                p->factors[i].multiplier);
    fprintf(out, "\n  blast radius  %.4g = reach %.4g x risk %.4g\n", p->score,
            p->reach, p->risk);
    print_provenance(pl, out);
    if (p->fleet_unit)
        fprintf(out, "  fleet         %llu %s%s\n", (unsigned long long)p->fleet_count,
                p->fleet_unit, p->fleet_count == 1 ? "" : "s");
    else
        fprintf(out, "  fleet         not in the topology: traffic moves in steps of "
                     "1/%llu\n", (unsigned long long)p->fleet_count);
    cn_format_percent(buf, sizeof buf, pl->policy->plan.first_stage_impact);
    if (p->fixed_steps)
        fprintf(out, "  steps         fixed by plan.steps; budgets (%s x %g per stage) "
                     "shown for comparison\n", buf, pl->policy->plan.growth);
    else
        fprintf(out, "  budgets       stage i may put %s x %g^(i-1) of all user "
                     "traffic at risk%s\n", buf, pl->policy->plan.growth,
                p->max_stages_cut ? "; max_stages reached, last stage goes to 100%" : "");
    for (size_t i = 0; i < p->stage_count; i++)
        if (p->stages[i].approval) {
            cn_format_percent(buf, sizeof buf, pl->policy->ai.approval_above_weight);
            fprintf(out, "  approval      before stage %u (over %s): a user with role "
                         "'%s' who is not the author%s%s\n",
                    p->stages[i].index, buf, pl->policy->ai.approval_role,
                    c->author ? " " : "", c->author ? c->author : "");
        }
}

void cn_plan_print_text(const cn_planning *pl, FILE *out)
{
    const cn_plan *p = &pl->plan;
    print_header(pl, out);
    fprintf(out, "\n  %5s %9s %12s %9s %11s %8s  %s\n", "stage", "weight", "units",
            "at risk", "budget use", "bake", "gate");
    for (size_t i = 0; i < p->stage_count; i++) {
        const cn_stage *s = &p->stages[i];
        char w[32], units[48], risk[32], use[32], bake[32];
        cn_format_percent(w, sizeof w, s->weight);
        snprintf(units, sizeof units, "%llu/%llu", (unsigned long long)s->units,
                 (unsigned long long)p->fleet_count);
        cn_format_percent(risk, sizeof risk, s->exposed);
        double ratio = s->budget > 0 ? s->weighted / s->budget : 0;
        if (ratio < 10)
            snprintf(use, sizeof use, "%.0f%%", ratio * 100);
        else
            snprintf(use, sizeof use, "%.0fx", ratio);
        cn_format_duration(bake, sizeof bake, s->bake_ms);
        fprintf(out, "  %5u %9s %12s %9s %11s %8s  %s%s%s\n", s->index, w, units, risk,
                use, bake, s->approval ? "approval" : "",
                s->approval && s->over_budget ? ", " : "",
                s->over_budget ? "OVER BUDGET" : "");
    }
    fprintf(out, "\n  at risk: share of all user requests served by the new version "
                 "(weight x reach)\n"
                 "  budget use: at risk x risk / the stage's budget; above 100%% only by "
                 "rounding\n  up to whole units, unless marked OVER BUDGET\n");
    for (size_t i = 0; i < pl->note_count; i++)
        fprintf(out, "note: %s\n", pl->notes[i]);
}

/* Rounds away binary noise (1/12 = 8.333333333333332%) so that pipelines
 * compare what the table shows. */
static json_t *real(double x)
{
    return json_real(round(x * 1e9) / 1e9);
}

static json_t *stage_json(const cn_stage *s)
{
    return json_pack("{s:I, s:o, s:I, s:I, s:b, s:o, s:o, s:o, s:b}", "index",
                     (json_int_t)s->index, "weight", real(s->weight * 100), "units",
                     (json_int_t)s->units, "bake_seconds",
                     (json_int_t)((s->bake_ms + 999) / 1000), "approval", s->approval,
                     "at_risk_percent", real(s->exposed * 100), "budget_percent",
                     real(s->budget * 100), "budget_use",
                     real(s->budget > 0 ? s->weighted / s->budget : 0), "over_budget",
                     s->over_budget);
}

static json_t *provenance_json(const cn_planning *pl)
{
    static const char *const sources[] = {"change", "git", "unknown"};
    json_t *o = json_pack("{s:s}", "source", sources[pl->ai_source]);
    if (!o || !pl->have_prov)
        return o;
    json_t *ev = json_array();
    for (size_t i = 0; ev && i < pl->prov.evidence_count; i++) {
        const cn_ai_evidence *e = &pl->prov.evidence[i];
        json_array_append_new(ev, json_pack("{s:s, s:s, s:s, s:s?}", "commit", e->commit,
                                            "subject", e->subject, "trailer",
                                            e->trailer, "agent", e->agent));
    }
    json_object_set_new(o, "range", json_string(pl->prov.range));
    json_object_set_new(o, "commits", json_integer(pl->prov.commits));
    json_object_set_new(o, "evidence", ev ? ev : json_null());
    return o;
}

json_t *cn_plan_to_json(const cn_planning *pl)
{
    const cn_plan *p = &pl->plan;
    json_t *factors = json_array(), *stages = json_array();
    for (size_t i = 0; factors && i < p->factor_count; i++)
        json_array_append_new(factors, json_pack("{s:s, s:s, s:o}", "name",
                                                 p->factors[i].name, "detail",
                                                 p->factors[i].detail, "multiplier",
                                                 real(p->factors[i].multiplier)));
    for (size_t i = 0; stages && i < p->stage_count; i++)
        json_array_append_new(stages, stage_json(&p->stages[i]));
    json_t *notes = json_array();
    for (size_t i = 0; notes && i < pl->note_count; i++)
        json_array_append_new(notes, json_string(pl->notes[i]));
    return json_pack(
        "{s:s, s:s, s:s, s:s?, s:s?, s:b, s:{s:o, s:o, s:o, s:o}, s:o, s:o,"
        " s:{s:s, s:s}, s:{s:s?, s:I}, s:b, s:o}",
        "rollout", pl->change.id, "service", pl->change.service, "version",
        pl->change.version, "previous_version", pl->change.previous_version, "author",
        pl->change.author, "ai_assisted", pl->ai_assisted, "blast_radius", "reach",
        real(p->reach), "risk", real(p->risk), "score", real(p->score), "factors",
        factors, "stages", stages, "provenance", provenance_json(pl), "policy", "name",
        pl->policy->name, "file", pl->policy->file, "fleet", "unit", p->fleet_unit,
        "count", (json_int_t)p->fleet_count, "fixed_steps", p->fixed_steps, "notes",
        notes);
}
