/* Policy files: a metric's burn_rate, the SLO burn-rate gate
 * (docs/policy.md#burn_rate; the rule itself is burn_rate.c). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "canary/policy.h"
#include "policy_internal.h"

/* An SLO is a percentage strictly between 0% and 100%: 100% leaves no
 * budget to burn. A plain 0.999 is most likely the fraction meant as
 * 99.9%, so the hint says that rather than "0.999%". */
static int parse_slo(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    double plain;
    if (v->type == CN_NODE_SCALAR && !cn_text_number(v->text, &plain) && plain > 0 &&
        plain < 1) {
        cn_loader_error(ld, v, "'%s' expects a percentage such as 99.9%%, got '%s' (write "
                        "'%g%%' for the fraction %s)", f->key, v->text, plain * 100, v->text);
        return -1;
    }
    double x;
    if (cn_parse_percent(ld, v, f, &x))
        return -1;
    if (x >= 1) {
        cn_loader_error(ld, v, "'%s' must be less than 100%%, got '%s' (an SLO of 100%% "
                        "leaves no error budget to burn)", f->key, v->text);
        return -1;
    }
    *(double *)dst = x;
    return 0;
}

/* errors and total: PromQL over a window. One without {{window}} would
 * measure the same span for every window, and no pair could tell a fast
 * burn from a slow one. */
static int parse_window_query(cn_loader *ld, const cn_node *v, const cn_field *f,
                              void *dst)
{
    const char *s;
    if (cn__parse_name(ld, v, f, &s))
        return -1;
    int windows = cn__check_templates(ld, v, f->key, s, true);
    if (windows < 0)
        return -1;
    if (!windows) {
        cn_loader_error(ld, v, "'%s' does not use {{window}}: every window would measure "
                        "the same span; write its range as [{{window}}], e.g. "
                        "rate(http_requests_total[{{window}}])", f->key);
        return -1;
    }
    *(const char **)dst = s;
    return 0;
}

static const cn_field window_fields[] = {
    {.key = "long", .parse = cn_parse_duration, .offset = offsetof(cn_burn_window, long_ms),
     .flags = CN_REQUIRED | CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "short", .parse = cn_parse_duration, .offset = offsetof(cn_burn_window, short_ms),
     .flags = CN_REQUIRED | CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    /* 1 would fire on a burn the SLO allows for ever. */
    {.key = "factor", .parse = cn_parse_number, .offset = offsetof(cn_burn_window, factor),
     .flags = CN_REQUIRED | CN_MIN | CN_MIN_EXCLUSIVE, .min = 1},
};
static const cn_schema window_schema = CN_SCHEMA("window pair", window_fields);

static void load_window(cn_loader *ld, const cn_node *item, cn_burn_window *w)
{
    if (item->type != CN_NODE_MAP) {
        cn_loader_error(ld, item, "each entry of 'windows' must be a map {long, short, "
                        "factor}, got %s", cn_node_type_name(item));
        return;
    }
    cn_load_map(ld, item, &window_schema, w);
    const cn_node *lo = cn_node_get(item, "long"), *sh = cn_node_get(item, "short");
    if (lo && sh && cn_field_value_ok(item, &window_schema, "long") &&
        cn_field_value_ok(item, &window_schema, "short") && w->short_ms >= w->long_ms)
        cn_loader_error(ld, sh, "'short' (%s) must be shorter than 'long' (%s): the short "
                        "window confirms the burn is still going on", sh->text, lo->text);
}

static int parse_windows(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_burn_rate *b = dst;
    if (v->type != CN_NODE_SEQ || !v->count || v->count > CN_BURN_MAX_PAIRS) {
        char got[64];
        if (v->type != CN_NODE_SEQ)
            snprintf(got, sizeof got, "%s", cn_node_type_name(v));
        else if (!v->count)
            snprintf(got, sizeof got, "an empty list");
        else
            snprintf(got, sizeof got, "%zu", v->count);
        cn_loader_error(ld, v, "'%s' expects a list of 1 to %d window pairs {long, short, "
                        "factor}, got %s", f->key, CN_BURN_MAX_PAIRS, got);
        return -1;
    }
    cn_burn_window *w = cn_arena_alloc(ld->arena, v->count * sizeof *w);
    if (!w) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    unsigned before = ld->errors;
    for (size_t i = 0; i < v->count; i++)
        load_window(ld, v->items[i], &w[i]);
    b->windows = w;
    b->window_count = v->count;
    return ld->errors == before ? 0 : -1;
}

static const cn_field burn_fields[] = {
    {.key = "slo", .parse = parse_slo, .offset = offsetof(cn_metric, burn.slo),
     .flags = CN_REQUIRED | CN_MIN | CN_MIN_EXCLUSIVE, .min = 0},
    {.key = "errors", .parse = parse_window_query, .offset = offsetof(cn_metric, burn.errors),
     .flags = CN_REQUIRED},
    {.key = "total", .parse = parse_window_query, .offset = offsetof(cn_metric, burn.total),
     .flags = CN_REQUIRED},
    {.key = "prometheus", .parse = cn__parse_burn_prometheus,
     .offset = offsetof(cn_metric, source), .flags = CN_REQUIRED},
    {.key = "windows", .parse = parse_windows, .offset = offsetof(cn_metric, burn)},
    {.key = "scale_to_bake", .parse = cn_parse_bool,
     .offset = offsetof(cn_metric, burn.scale_to_bake)},
};
static const cn_schema burn_schema = CN_SCHEMA("burn_rate", burn_fields);

int cn__parse_burn_rate(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    (void)f;
    cn_metric *m = dst;
    unsigned before = ld->errors;
    m->burn.enabled = true;
    if (cn_node_is_null(v)) {
        /* one message, not one per required key */
        cn_loader_error(ld, v, "'burn_rate' expects a map with 'slo', 'errors', 'total' and "
                        "'prometheus', got nothing (null)");
        return -1;
    }
    m->burn.scale_to_bake = true;
    cn_load_map(ld, v, &burn_schema, m);
    return ld->errors == before ? 0 : -1;
}
