/* backtest_output.c: `canary backtest`'s reports (see backtest_internal.h). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backtest_internal.h"
#include "canary/schema.h"
#include "canary/status.h"

/* Whole seconds, as the bakes are written; "-" for none. */
static void seconds_text(char *buf, size_t len, double s)
{
    if (isnan(s))
        snprintf(buf, len, "-");
    else
        cn_format_duration(buf, len, (int64_t)llround(s) * 1000);
}

static void ms_text(char *buf, size_t len, int64_t ms)
{
    seconds_text(buf, len, (double)ms / 1000);
}

/* What one case did under one policy, flagged when it contradicts the label. */
static void case_text(char *buf, size_t len, const cn_bt_case *c)
{
    char d[24];
    const char *flag = "";
    if (c->label == CN_BT_FAULTY && c->cls == CN_BT_PROMOTED)
        flag = "  MISSED";
    else if (c->label == CN_BT_HEALTHY && (c->cls == CN_BT_STOPPED || c->cls == CN_BT_PAUSED))
        flag = "  FALSE ALARM";
    if (c->cls == CN_BT_PROMOTED) {
        ms_text(d, sizeof d, c->duration_ms);
        snprintf(buf, len, "%s in %s%s", c->outcome, d, flag);
    } else if (c->cls == CN_BT_UNDECIDED) {
        ms_text(d, sizeof d, c->duration_ms);
        snprintf(buf, len, "%s at the bound (%s)", c->outcome, d);
    } else {
        ms_text(d, sizeof d, c->stopped_ms >= 0 ? c->stopped_ms : c->duration_ms);
        snprintf(buf, len, "%s at %s%s", c->outcome, d, flag);
    }
}

#define ROWS 10
#define CELL 96

/* Columns as wide as their widest cell, never cut: a comparison is read
 * across, and each cell matters. */
static void print_columns(FILE *out, char (*cells)[CELL], size_t rows, size_t cols)
{
    size_t width[BT_MAX_POLICIES + 2] = {0};
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            if (strlen(cells[r * cols + c]) > width[c])
                width[c] = strlen(cells[r * cols + c]);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            if (c + 1 < cols)
                fprintf(out, "%-*s  ", (int)width[c], cells[r * cols + c]);
            else
                fprintf(out, "%s\n", cells[r * cols + c]);
        }
}

int cn_bt_print_text(FILE *out, const backtest *b)
{
    size_t healthy = b->policy_count ? b->policies[0].summary.healthy : 0;
    fprintf(out, "backtest: %zu case%s in %s (%zu healthy, %zu faulty) under %zu polic%s\n\n",
            b->case_count, b->case_count == 1 ? "" : "s", b->corpus, healthy,
            b->case_count - healthy, b->policy_count, b->policy_count == 1 ? "y" : "ies");
    /* The comparison: a row per figure, a column per policy. */
    size_t cols = b->policy_count + 1;
    char (*cells)[CELL] = calloc(ROWS * cols, CELL);
    if (!cells)
        return CN_ENOMEM;
    static const char *const labels[ROWS] = {
        "",      "faults caught", "faults missed", "false rollbacks", "undecided",
        "time to rollback, mean", "time to rollback, p95", "healthy rollout, mean",
        "exposure (% x s)", "impact (% x s)"};
    for (size_t r = 0; r < ROWS; r++)
        snprintf(cells[r * cols], CELL, "%s", labels[r]);
    for (size_t p = 0; p < b->policy_count; p++) {
        const cn_bt_summary *s = &b->policies[p].summary;
        char (*col)[CELL] = cells + p + 1;
#define CELLF(row, ...) snprintf(col[(row) * cols], CELL, __VA_ARGS__)
        CELLF(0, "%s", b->policies[p].policy.name);
        CELLF(1, "%zu of %zu", s->caught, s->faulty);
        CELLF(2, "%zu", s->missed);
        CELLF(3, "%zu of %zu", s->false_rollbacks, s->healthy);
        CELLF(4, "%zu", s->undecided_faults + s->undecided_healthy);
        seconds_text(col[5 * cols], CELL, s->mean_detect_s);
        seconds_text(col[6 * cols], CELL, s->p95_detect_s);
        seconds_text(col[7 * cols], CELL, s->mean_healthy_s);
        CELLF(8, "%.6g", s->total_exposure);
        CELLF(9, "%.6g", s->total_impact);
#undef CELLF
    }
    print_columns(out, cells, ROWS, cols);
    free(cells);

    /* Each case: a row, its label, then what each policy did with it. */
    size_t rows = b->case_count + 1;
    cols = b->policy_count + 2;
    cells = calloc(rows * cols, CELL);
    if (!cells)
        return CN_ENOMEM;
    snprintf(cells[0], CELL, "case");
    snprintf(cells[1], CELL, "expect");
    for (size_t p = 0; p < b->policy_count; p++)
        snprintf(cells[2 + p], CELL, "%s", b->policies[p].policy.name);
    for (size_t c = 0; c < b->case_count; c++) {
        char (*row)[CELL] = cells + (c + 1) * cols;
        snprintf(row[0], CELL, "%s", b->cases[c].name);
        snprintf(row[1], CELL, "%s", cn_bt_label_name(b->cases[c].label));
        for (size_t p = 0; p < b->policy_count; p++)
            case_text(row[2 + p], CELL, &b->policies[p].results[c]);
    }
    fputc('\n', out);
    print_columns(out, cells, rows, cols);
    free(cells);
    return ferror(out) ? CN_EIO : CN_OK;
}

/* ---- JSON and CSV -------------------------------------------------------- */

static json_t *real(double x)
{
    return isnan(x) ? json_null() : json_real(round(x * 1e6) / 1e6);
}

static json_t *summary_json(const bt_policy *bp)
{
    const cn_bt_summary *s = &bp->summary;
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o,"
                     " s:o, s:o}",
                     "policy", bp->policy.name, "file", bp->path, "cases", (json_int_t)s->cases,
                     "faulty", (json_int_t)s->faulty, "caught", (json_int_t)s->caught, "missed",
                     (json_int_t)s->missed, "undecided_faults", (json_int_t)s->undecided_faults,
                     "healthy", (json_int_t)s->healthy, "false_rollbacks",
                     (json_int_t)s->false_rollbacks, "promoted_healthy",
                     (json_int_t)s->promoted_healthy, "undecided_healthy",
                     (json_int_t)s->undecided_healthy, "mean_time_to_rollback_seconds",
                     real(s->mean_detect_s), "p95_time_to_rollback_seconds",
                     real(s->p95_detect_s), "mean_healthy_duration_seconds",
                     real(s->mean_healthy_s), "total_exposure_weight_seconds",
                     real(s->total_exposure), "total_impact", real(s->total_impact));
}

static json_t *case_json(const bt_case *bc, const cn_bt_case *c)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "case", bc->name,
                     "expect", cn_bt_label_name(c->label), "outcome", c->outcome, "result",
                     cn_bt_class_name(c->cls), "exit_code",
                     c->exit_code >= 0 ? json_integer(c->exit_code) : json_null(),
                     "stopped_seconds",
                     c->stopped_ms >= 0 ? real((double)c->stopped_ms / 1000) : json_null(),
                     "duration_seconds", real((double)c->duration_ms / 1000),
                     "exposure_weight_seconds", real(c->exposure), "impact", real(c->impact));
}

int cn_bt_print_json(FILE *out, const backtest *b)
{
    json_t *cases = json_array(), *policies = json_array();
    json_t *root = json_pack("{s:s, s:o, s:o}", "corpus", b->corpus, "cases", cases,
                             "policies", policies);
    if (!root)
        return CN_ENOMEM;
    bool ok = true;
    for (size_t c = 0; ok && c < b->case_count; c++)
        ok = json_array_append_new(cases, json_pack("{s:s, s:s, s:s?}", "case",
                                                    b->cases[c].name, "expect",
                                                    cn_bt_label_name(b->cases[c].label),
                                                    "description",
                                                    b->cases[c].description)) == 0;
    for (size_t p = 0; ok && p < b->policy_count; p++) {
        const bt_policy *bp = &b->policies[p];
        json_t *o = summary_json(bp), *list = json_array();
        ok = o && list && json_object_set_new(o, "results", list) == 0 &&
             json_array_append_new(policies, o) == 0;
        for (size_t c = 0; ok && c < b->case_count; c++)
            ok = json_array_append_new(list, case_json(&b->cases[c], &bp->results[c])) == 0;
    }
    if (ok)
        ok = json_dumpf(root, out, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) == 0;
    fputc('\n', out);
    json_decref(root);
    return !ok ? CN_ENOMEM : ferror(out) ? CN_EIO : CN_OK;
}

/* A CSV field: quoted when it holds a comma, a quote or a line end. */
static void csv_text(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_number(FILE *out, double x)
{
    if (!isnan(x))
        fprintf(out, "%.12g", round(x * 1e6) / 1e6);
}

int cn_bt_print_csv(FILE *out, const backtest *b)
{
    fputs("policy,file,cases,faulty,caught,missed,undecided_faults,healthy,false_rollbacks,"
          "undecided_healthy,mean_time_to_rollback_seconds,p95_time_to_rollback_seconds,"
          "mean_healthy_duration_seconds,total_exposure_weight_seconds,total_impact\n",
          out);
    for (size_t p = 0; p < b->policy_count; p++) {
        const bt_policy *bp = &b->policies[p];
        const cn_bt_summary *s = &bp->summary;
        csv_text(out, bp->policy.name);
        fputc(',', out);
        csv_text(out, bp->path);
        fprintf(out, ",%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,", s->cases, s->faulty, s->caught,
                s->missed, s->undecided_faults, s->healthy, s->false_rollbacks,
                s->undecided_healthy);
        csv_number(out, s->mean_detect_s);
        fputc(',', out);
        csv_number(out, s->p95_detect_s);
        fputc(',', out);
        csv_number(out, s->mean_healthy_s);
        fputc(',', out);
        csv_number(out, s->total_exposure);
        fputc(',', out);
        csv_number(out, s->total_impact);
        fputc('\n', out);
    }
    return ferror(out) ? CN_EIO : CN_OK;
}
