/* The first paragraph of `canary explain`: why these stages, from the
 * stored row and plan JSON (see explain.h). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "explain_internal.h"

static void bake_text(char *buf, size_t len, long long secs)
{
    if (secs % 3600 == 0 && secs >= 3600)
        snprintf(buf, len, "%lldh", secs / 3600);
    else if (secs % 60 == 0 && secs >= 60)
        snprintf(buf, len, "%lldm", secs / 60);
    else
        snprintf(buf, len, "%llds", secs);
}

static void why_author(story *st, const cn_rollout_row *r, json_t *plan)
{
    cn_xp_add(&st->cur, "%s %s", r->service, r->version);
    if (r->previous_version)
        cn_xp_add(&st->cur, " (replacing %s)", r->previous_version);
    if (r->author)
        cn_xp_add(&st->cur, ", written by %s", r->author);
    else
        cn_xp_add(&st->cur, ", by an author who is not recorded");
    if (!r->ai_assisted) {
        cn_xp_add(&st->cur, ", without an AI agent.");
        return;
    }
    cn_xp_add(&st->cur, " with an AI agent");
    json_t *prov = json_object_get(plan, "provenance");
    const char *source = json_string_value(json_object_get(prov, "source"));
    json_t *evidence = json_object_get(prov, "evidence");
    if (source && !strcmp(source, "change")) {
        cn_xp_add(&st->cur, " (the change file says so).");
    } else if (source && !strcmp(source, "git") && json_array_size(evidence)) {
        cn_xp_add(&st->cur, " (commit trailers:");
        size_t i;
        json_t *e;
        json_array_foreach(evidence, i, e) {
            const char *commit = json_string_value(json_object_get(e, "commit"));
            const char *trailer = json_string_value(json_object_get(e, "trailer"));
            cn_xp_add(&st->cur, "%s %.12s \"%s\"", i ? ";" : "", commit ? commit : "?",
                trailer ? trailer : "?");
        }
        cn_xp_add(&st->cur, ").");
    } else {
        cn_xp_add(&st->cur, " (where that was learnt is not recorded).");
    }
}

static void why_risk(story *st, json_t *plan)
{
    json_t *br = json_object_get(plan, "blast_radius");
    bool have;
    double reach = cn_xp_num(br, "reach", &have);
    if (have)
        cn_xp_say(st, "It touches %.4g%% of user requests (reach %.4g).", reach * 100, reach);
    else
        cn_xp_say(st, "Its reach is not recorded.");
    double risk = cn_xp_num(br, "risk", &have);
    json_t *factors = json_object_get(br, "factors");
    if (!have) {
        cn_xp_say(st, "Its risk is not recorded.");
    } else {
        cn_xp_add(&st->cur, " Its risk is x%.4g", risk);
        if (json_array_size(factors) == 0)
            cn_xp_add(&st->cur, ": no risk factor applied.");
        size_t i;
        json_t *f;
        json_array_foreach(factors, i, f) {
            const char *detail = json_string_value(json_object_get(f, "detail"));
            if (!detail)
                detail = json_string_value(json_object_get(f, "name"));
            bool hm;
            double m = cn_xp_num(f, "multiplier", &hm);
            cn_xp_add(&st->cur, "%s %s", i ? "," : ":", detail ? detail : "a factor not named");
            if (hm)
                cn_xp_add(&st->cur, " (x%.4g)", m);
            if (i + 1 == json_array_size(factors))
                cn_xp_add(&st->cur, ".");
        }
    }
    double score = cn_xp_num(br, "score", &have);
    if (have)
        cn_xp_say(st, "Blast radius %.4g.", score);
}

static void why_stages(story *st, const cn_rollout_row *r, json_t *plan)
{
    json_t *stages = json_object_get(plan, "stages");
    size_t n = json_array_size(stages);
    if (n == 0) {
        cn_xp_say(st, "Its stages are not recorded (%u stage%s in the row).", r->stages,
            r->stages == 1 ? "" : "s");
        return;
    }
    bool have;
    double first = cn_xp_num(json_array_get(stages, 0), "weight", &have);
    char w[32] = "an unrecorded share";
    if (have)
        snprintf(w, sizeof w, "%.4g%%", first);
    if (n == 1)
        cn_xp_add(&st->cur, " So the only stage was %s of %s's traffic", w, r->service);
    else
        cn_xp_add(&st->cur,
                  " So the first stage was %s of %s's traffic, and %zu stages led to 100%%",
            w, r->service, n);
    long long lo = -1, hi = -1;
    size_t i;
    json_t *s;
    json_array_foreach(stages, i, s) {
        json_t *b = json_object_get(s, "bake_seconds");
        if (!json_is_integer(b))
            continue;
        long long v = json_integer_value(b);
        lo = lo < 0 || v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    char a[24], z[24];
    if (lo < 0) {
        cn_xp_add(&st->cur, " (the bake is not recorded)");
    } else {
        bake_text(a, sizeof a, lo);
        bake_text(z, sizeof z, hi);
        if (lo == hi)
            cn_xp_add(&st->cur, ", %s %s", n == 1 ? "baking" : "each baking", a);
        else
            cn_xp_add(&st->cur, ", each baking %s to %s", a, z);
    }
    size_t gates = 0;
    json_array_foreach(stages, i, s)
        if (json_is_true(json_object_get(s, "approval"))) {
            cn_xp_add(&st->cur, "%s%lld", gates ? " and " : " (an approval before stage ",
                (long long)json_integer_value(json_object_get(s, "index")));
            gates++;
        }
    cn_xp_add(&st->cur, "%s.", gates ? ")" : "");
}

void cn_xp_why(story *st, const cn_rollout_row *r, json_t *plan)
{
    why_author(st, r, plan);
    json_t *policy = json_object_get(plan, "policy");
    const char *pname = json_string_value(json_object_get(policy, "name"));
    const char *pfile = json_string_value(json_object_get(policy, "file"));
    if (!pname)
        pname = r->policy;
    if (pname && pfile)
        cn_xp_say(st, "Policy %s (%s) planned it.", pname, pfile);
    else if (pname)
        cn_xp_say(st, "Policy %s planned it.", pname);
    if (!plan) {
        cn_xp_say(st, "The plan is not recorded, so neither are its reach, risk and stages.");
        return;
    }
    why_risk(st, plan);
    why_stages(st, r, plan);
}
