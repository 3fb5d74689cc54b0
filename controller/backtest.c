/* backtest.c: classifying simulated rollouts and adding them up (see
 * include/canary/backtest.h). */
#include "canary/backtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cn_bt_label_name(cn_bt_label l)
{
    return l == CN_BT_FAULTY ? "faulty" : "healthy";
}

const char *cn_bt_class_name(cn_bt_class c)
{
    switch (c) {
    case CN_BT_PROMOTED: return "promoted";
    case CN_BT_STOPPED: return "stopped";
    case CN_BT_PAUSED: return "paused";
    case CN_BT_UNDECIDED: return "undecided";
    }
    return "undecided";
}

/* The decisions that stop a rollout short of 100%. */
static bool stops(const char *type)
{
    return !strcmp(type, "rolling_back") || !strcmp(type, "paused") ||
           !strcmp(type, "aborted");
}

void cn_bt_classify(const cn_sim_result *res, cn_bt_case *c)
{
    switch (res->state) {
    case CN_STATE_COMPLETED: c->cls = CN_BT_PROMOTED; break;
    case CN_STATE_ROLLED_BACK:
    case CN_STATE_ABORTED:
    case CN_STATE_FAILED: c->cls = CN_BT_STOPPED; break;
    case CN_STATE_PAUSED: c->cls = CN_BT_PAUSED; break;
    default: c->cls = CN_BT_UNDECIDED; break;
    }
    c->stopped_ms = -1;
    if (c->cls == CN_BT_STOPPED || c->cls == CN_BT_PAUSED)
        for (size_t i = 0; i < res->event_count && c->stopped_ms < 0; i++)
            if (stops(res->events[i].type))
                c->stopped_ms = res->events[i].at_ms;
    snprintf(c->outcome, sizeof c->outcome, "%s", cn_sim_outcome(res));
    c->exit_code = res->finished ? res->exit_code : -1;
    c->duration_ms = res->duration_ms;
    c->exposure = res->exposure;
    c->impact = res->impact;
}

static int by_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void cn_bt_summarize(const cn_bt_case *cases, size_t n, int64_t *detect_ms,
                     cn_bt_summary *out)
{
    memset(out, 0, sizeof *out);
    size_t detected = 0;
    double detect_sum = 0, healthy_sum = 0;
    for (size_t i = 0; i < n; i++) {
        const cn_bt_case *c = &cases[i];
        bool caught = c->cls == CN_BT_STOPPED || c->cls == CN_BT_PAUSED;
        out->cases++;
        out->total_exposure += c->exposure;
        out->total_impact += c->impact;
        if (c->label == CN_BT_FAULTY) {
            out->faulty++;
            if (caught) {
                out->caught++;
                if (c->stopped_ms >= 0) {
                    detect_ms[detected++] = c->stopped_ms;
                    detect_sum += (double)c->stopped_ms / 1000;
                }
            } else if (c->cls == CN_BT_PROMOTED) {
                out->missed++;
            } else {
                out->undecided_faults++;
            }
        } else {
            out->healthy++;
            if (caught) {
                out->false_rollbacks++;
            } else if (c->cls == CN_BT_PROMOTED) {
                out->promoted_healthy++;
                healthy_sum += (double)c->duration_ms / 1000;
            } else {
                out->undecided_healthy++;
            }
        }
    }
    out->mean_detect_s = detected ? detect_sum / (double)detected : NAN;
    out->p95_detect_s = NAN;
    if (detected) {
        qsort(detect_ms, detected, sizeof *detect_ms, by_ms);
        /* Nearest rank: the smallest time at or above 95% of them. */
        size_t rank = (size_t)ceil(0.95 * (double)detected);
        out->p95_detect_s = (double)detect_ms[(rank ? rank : 1) - 1] / 1000;
    }
    out->mean_healthy_s =
        out->promoted_healthy ? healthy_sum / (double)out->promoted_healthy : NAN;
}
