#include "canary/policy.h"

#include <fnmatch.h>
#include <string.h>

#include "canary/status.h"

const char *const cn_default_agents[] = {
    "Claude", "Copilot", "Cursor", "aider", "Codex", "Gemini", "Devin",
    "Windsurf", "Codeium", "Amazon Q", "CodeWhisperer", "Tabnine", "Cody",
    "Sourcegraph", "Jules", "OpenHands", "SWE-agent", "Junie", "Continue",
    "ChatGPT", "GPT", "Qwen", "DeepSeek", "Kiro", "Zed", "Cline", "Roo",
};
const size_t cn_default_agent_count =
    sizeof(cn_default_agents) / sizeof(cn_default_agents[0]);

void cn_policy_defaults(cn_policy *p)
{
    memset(p, 0, sizeof(*p));
    cn_arena_init(&p->arena, 0);
    p->name = "unnamed";
    p->match.ai_assisted = -1;
    p->plan.first_stage_impact = 0.001;
    p->plan.growth = 4;
    p->plan.max_stages = 10;
    p->plan.bake_ms = 2 * 60 * 1000;
    p->plan.min_samples = 3;
    static const double tiers[] = {4, 2, 1, 0.5};
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
        p->risk.tier[i] = tiers[i];
        p->risk.has_tier[i] = true;
    }
    static cn_kind_multiplier kinds[] = {
        {"config", 1.5}, {"schema", 3}, {"migration", 3}, {"dependency", 1.5}};
    p->risk.kinds = kinds;
    p->risk.kind_count = sizeof kinds / sizeof kinds[0];
    p->risk.per_1000_lines = 0.5;
    p->ai.risk = 2;
    p->ai.bake_factor = 2;
    p->ai.approval_above_weight = 0.25;
    p->ai.approval_role = "senior";
    p->analysis.interval_ms = 30000;
    p->analysis.consecutive_error_limit = 3;
    p->actuator.timeout_ms = 30000;
    p->actuator.retries = 3;
    p->actuator.backoff_ms = 1000;
    p->agents.items = (const char **)cn_default_agents;
    p->agents.count = cn_default_agent_count;
}

double cn_policy_kind_multiplier(const cn_policy *p, const char *kind)
{
    for (size_t i = 0; i < p->risk.kind_count; i++)
        if (!strcmp(p->risk.kinds[i].kind, kind))
            return p->risk.kinds[i].multiplier;
    return 1.0;
}

const char *cn_policy_kind_for_path(const cn_policy *p, const char *path)
{
    for (size_t i = 0; i < p->kind_rule_count; i++)
        if (fnmatch(p->kind_rules[i].pattern, path, 0) == 0)
            return p->kind_rules[i].kind;
    return "code";
}

void cn_policy_free(cn_policy *p)
{
    cn_arena_free(&p->arena);
}
