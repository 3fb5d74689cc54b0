/* backtest_internal.h: what cmd_backtest.c (the corpus, the runs) and
 * backtest_output.c (the reports) share (private). */
#ifndef CANARY_BACKTEST_INTERNAL_H
#define CANARY_BACKTEST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "canary/backtest.h"
#include "canary/diag.h"
#include "canary/policy.h"
#include "canary/simulate.h"

#define BT_MAX_POLICIES 16
#define BT_MAX_CASES 1000

typedef struct bt_case {
    char *name;
    char trace_path[4096], change_path[4096], topology_path[4096];
    bool has_topology;
    cn_bt_label label;
    char *description;
    cn_trace trace;
    bool have_trace;
    bool failed;          /* could not be planned: reported once, not run again */
} bt_case;

typedef struct bt_policy {
    const char *path;
    cn_policy policy;     /* loaded once, to check it and to name it */
    bool loaded;
    cn_bt_case *results;  /* one per case */
    cn_bt_summary summary;
} bt_policy;

typedef struct backtest {
    const char *corpus;
    bt_case *cases;
    size_t case_count;
    bt_policy policies[BT_MAX_POLICIES];
    size_t policy_count;
    int64_t until_ms, hold_ms;
    cn_diags diags;
} backtest;

/* The comparison (one row per policy), then each case under each policy. */
int cn_bt_print_text(FILE *out, const backtest *b);
/* Everything: the corpus's cases, and per policy its summary and its
 * results, case by case. */
int cn_bt_print_json(FILE *out, const backtest *b);
/* The comparison as CSV, a header and one row per policy. */
int cn_bt_print_csv(FILE *out, const backtest *b);

#endif
