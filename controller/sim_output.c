/* sim_output.c: a simulated rollout as text and JSON (see sim_output.h). */
#include "canary/sim_output.h"

#include <math.h>
#include <string.h>

#include "canary/run_view.h"
#include "canary/schema.h"
#include "canary/status.h"

bool cn_sim_is_decision(const char *type)
{
    return strcmp(type, "measurement") && strcmp(type, "requests") &&
           strcmp(type, "late_measurement");
}

/* Rounds away binary noise, as plan_output.c does, so pipelines compare
 * what the text shows. */
static json_t *real(double x)
{
    return json_real(round(x * 1e6) / 1e6);
}

static void format_weight(char *buf, size_t len, double fraction)
{
    snprintf(buf, len, "%g%%", round(fraction * 100 * 1e6) / 1e6);
}

int cn_sim_print_text(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res,
                      bool decisions_only)
{
    (void)cfg;
    for (size_t i = 0; i < res->event_count; i++) {
        const cn_sim_event *e = &res->events[i];
        if (decisions_only && !cn_sim_is_decision(e->type))
            continue;
        char at[32];
        cn_format_duration(at, sizeof at, e->at_ms);
        fprintf(out, "%10s  %-18s %s\n", at, e->type, e->detail);
    }
    char d[32], w[32];
    cn_format_duration(d, sizeof d, res->duration_ms);
    format_weight(w, sizeof w, res->max_weight);
    fputc('\n', out);
    if (res->finished)
        fprintf(out, "outcome:    %s: %s (canary run would exit %d)\n", cn_sim_outcome(res),
                cn_exit_code_meaning(res->exit_code), res->exit_code);
    else
        fprintf(out, "outcome:    %s, not finished: %s\n", cn_sim_outcome(res), res->note);
    fprintf(out, "duration:   %s\n", d);
    fprintf(out, "max weight: %s\n", w);
    fprintf(out, "exposure:   %.6g %%·s (weight x time)\n", res->exposure);
    fprintf(out, "impact:     %.6g %%·s (weight x reach %g%% x severity x time", res->impact,
            round(cfg->reach * 100 * 1e6) / 1e6);
    if (res->impact_until_ms > res->duration_ms) {
        cn_format_duration(d, sizeof d, res->impact_until_ms);
        fprintf(out, ", on to the trace's end at %s", d);
    }
    fputs(")\n", out);
    return ferror(out) ? CN_EIO : CN_OK;
}

json_t *cn_sim_summary_json(const cn_sim_config *cfg, const cn_sim_result *res)
{
    return json_pack("{s:s, s:o, s:b, s:b, s:s?, s:o, s:o, s:o, s:o, s:o, s:o}", "outcome",
                     cn_sim_outcome(res), "exit_code",
                     res->finished ? json_integer(res->exit_code) : json_null(), "finished",
                     res->finished, "bounded", res->bounded, "note",
                     res->note[0] ? res->note : NULL, "duration_seconds",
                     real((double)res->duration_ms / 1000), "max_weight",
                     real(res->max_weight * 100), "reach_percent", real(cfg->reach * 100),
                     "exposure_weight_seconds", real(res->exposure), "impact",
                     real(res->impact), "impact_until_seconds",
                     real((double)res->impact_until_ms / 1000));
}

/* A JSON string: the text is UTF-8 (details come from the state machine
 * and names from loaded files); quotes, backslashes and control
 * characters are escaped. */
static void json_text(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* The summary's keys indented, then the events one per line, written as
 * they go: a day-long rollout has tens of thousands, and building a tree
 * of them all would cost more than the simulation. */
int cn_sim_print_json(FILE *out, const cn_sim_config *cfg, const cn_sim_result *res)
{
    json_t *summary = cn_sim_summary_json(cfg, res);
    if (!summary)
        return CN_ENOMEM;
    const size_t flags = JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(12);
    fputs("{\n", out);
    const char *key;
    json_t *value;
    json_object_foreach(summary, key, value)
    {
        fprintf(out, "  \"%s\": ", key);
        json_dumpf(value, out, flags);
        fputs(",\n", out);
    }
    json_decref(summary);
    fputs("  \"events\": [", out);
    for (size_t i = 0; i < res->event_count; i++) {
        const cn_sim_event *e = &res->events[i];
        fputs(i ? ",\n    " : "\n    ", out);
        /* A real, as jansson writes the summary's: 2.0, 2.5. */
        if (e->at_ms % 1000 == 0)
            fprintf(out, "{\"seconds\": %lld.0, \"type\": ", (long long)(e->at_ms / 1000));
        else
            fprintf(out, "{\"seconds\": %.12g, \"type\": ", (double)e->at_ms / 1000);
        json_text(out, e->type);
        fputs(", \"detail\": ", out);
        json_text(out, e->detail);
        fputc('}', out);
    }
    fputs(res->event_count ? "\n  ]\n}\n" : "]\n}\n", out);
    return ferror(out) ? CN_EIO : CN_OK;
}
