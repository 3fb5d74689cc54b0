/* The SLO burn-rate gate (burn_rate.h): the SRE workbook's numbers, the
 * scaling of its windows to canary bakes, which outcome each combination
 * of readings gives (fail before error before no data before pass), and
 * the exact words of each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/burn_rate.h"
#include "checks.h"

#define S 1000
#define MIN (60 * S)
#define HOUR (60 * MIN)
#define DAYS_30 (30 * 24 * (double)HOUR)

/* ---- helpers ------------------------------------------------------------ */

static cn_reading value(double v)
{
    cn_reading r = {.kind = CN_READING_VALUE, .value = v};
    return r;
}

static cn_reading nodata(const char *detail)
{
    cn_reading r = {.kind = CN_READING_NODATA, .value = NAN};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    return r;
}

static cn_reading failed(const char *detail)
{
    cn_reading r = {.kind = CN_READING_ERROR, .value = NAN};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    return r;
}

/* A burn rate with the given pairs used as written (no scaling). */
static cn_burn_rate unscaled(double slo, cn_burn_window *w, size_t n)
{
    cn_burn_rate b = {.enabled = true, .slo = slo, .errors = "e[{{window}}]",
                      .total = "t[{{window}}]", .windows = w, .window_count = n,
                      .scale_to_bake = false};
    return b;
}

static void expect_windows(const cn_burn_windows *w, const int64_t *want, size_t n)
{
    assert_int_equal(w->window_count, n);
    for (size_t i = 0; i < n; i++)
        if (w->window_ms[i] != want[i]) {
            print_error("window %zu: expected %lld ms, got %lld ms\n", i, (long long)want[i],
                        (long long)w->window_ms[i]);
            fail();
        }
}

static void expect_pair(const cn_burn_windows *w, size_t i, int64_t lo, int64_t sh,
                        double factor)
{
    const cn_burn_pair *p = &w->pairs[i];
    assert_int_equal(p->long_ms, lo);
    assert_int_equal(p->short_ms, sh);
    assert_true(p->factor == factor);
    assert_int_equal(w->window_ms[p->long_ix], lo);
    assert_int_equal(w->window_ms[p->short_ix], sh);
}

static void expect_why(const char *got, const char *want)
{
    if (strcmp(got, want)) {
        print_error("expected '%s'\n     got '%s'\n", want, got);
        fail();
    }
}

/* ---- the workbook ------------------------------------------------------- */

static void test_default_pairs(void **state)
{
    (void)state;
    size_t n = 0;
    const cn_burn_window *p = cn_burn_pairs(NULL, &n);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].long_ms, 1 * HOUR);
    assert_int_equal(p[0].short_ms, 5 * MIN);
    assert_true(p[0].factor == 14.4);
    assert_int_equal(p[1].long_ms, 6 * HOUR);
    assert_int_equal(p[1].short_ms, 30 * MIN);
    assert_true(p[1].factor == 6);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i].short_ms * 12, p[i].long_ms); /* 1/12 */
    cn_burn_rate none = {.enabled = true, .slo = 0.999};
    assert_ptr_equal(cn_burn_pairs(&none, &n), p);
    cn_burn_window own[] = {{.long_ms = MIN, .short_ms = 5 * S, .factor = 2}};
    none.windows = own;
    none.window_count = 1;
    assert_ptr_equal(cn_burn_pairs(&none, &n), own);
    assert_int_equal(n, 1);
}

/* A 99.9% SLO: 1.44% errors is a burn of 14.4, which over an hour spends
 * 14.4 x 1h / 30 days = 2% of the month's budget; 6x over 6h spends 5%.
 * The pair fires only above its factor. */
static void test_workbook_budget(void **state)
{
    (void)state;
    cn_burn_window pages[] = {{.long_ms = HOUR, .short_ms = 5 * MIN, .factor = 14.4},
                              {.long_ms = 6 * HOUR, .short_ms = 30 * MIN, .factor = 6}};
    cn_burn_rate b = unscaled(0.999, pages, 2);
    cn_burn_windows w;
    cn_burn_scale(&b, 10 * MIN, 30 * S, &w); /* no scaling: the bake is ignored */
    const int64_t want[] = {HOUR, 5 * MIN, 6 * HOUR, 30 * MIN};
    expect_windows(&w, want, 4);

    /* 1.44% over the hour pair, 0.6% over the six-hour pair */
    cn_reading errors[] = {value(1.44), value(1.44), value(0.6), value(0.6)};
    cn_reading total[] = {value(100), value(100), value(100), value(100)};
    cn_burn_result res;
    char why[256];
    cn_outcome o = cn_burn_judge(&b, &w, errors, total, &res, why, sizeof why);
    assert_true(fabs(res.windows[0].burn - 14.4) < 1e-9);
    assert_true(fabs(res.windows[2].burn - 6) < 1e-9);
    assert_true(fabs(res.windows[0].burn * HOUR / DAYS_30 - 0.02) < 1e-12);
    assert_true(fabs(res.windows[2].burn * 6 * HOUR / DAYS_30 - 0.05) < 1e-12);
    /* at the factor, not above it: no pair fires */
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 14.4x over 1h and 14.4x over 5m, not both > 14.4x; 6x over 6h and "
                    "6x over 30m, not both > 6x: 0.6% errors over 6h against a 0.1% budget");

    /* just above: the hour pair fires */
    errors[0] = errors[1] = value(1.45);
    o = cn_burn_judge(&b, &w, errors, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    assert_int_equal(res.pair, 0);
    assert_true(fabs(res.value - 14.5) < 1e-9);
    expect_why(why, "burn 14.5x over 1h and 14.5x over 5m > 14.4x: 1.45% errors against a "
                    "0.1% budget");

    /* the same ratio against a 99% SLO is a burn of 1.45: the budget is 10x larger */
    b.slo = 0.99;
    o = cn_burn_judge(&b, &w, errors, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    assert_true(fabs(res.windows[0].burn - 1.45) < 1e-9);
}

/* ---- scaling ------------------------------------------------------------ */

/* The workbook's pairs on a 10-minute bake: the 6h window becomes 10m,
 * everything shrinks 36-fold (1h -> 100s, 30m -> 50s, 5m -> 8.3s), and no
 * window is shorter than two intervals. */
static void test_scale_to_10m_bake(void **state)
{
    (void)state;
    cn_burn_rate b = {.enabled = true, .slo = 0.999, .scale_to_bake = true};
    cn_burn_windows w;

    cn_burn_scale(&b, 10 * MIN, 5 * S, &w);
    assert_int_equal(w.pair_count, 2);
    expect_pair(&w, 0, 100 * S, 10 * S, 14.4); /* 8s raised to 2 x 5s */
    expect_pair(&w, 1, 10 * MIN, 50 * S, 6);
    const int64_t want5[] = {100 * S, 10 * S, 10 * MIN, 50 * S};
    expect_windows(&w, want5, 4);

    cn_burn_scale(&b, 10 * MIN, 1 * S, &w);
    expect_pair(&w, 0, 100 * S, 8 * S, 14.4); /* 8.33s rounded to whole seconds */
    expect_pair(&w, 1, 10 * MIN, 50 * S, 6);

    /* interval 30s: both short windows rise to 1m and are queried once */
    cn_burn_scale(&b, 10 * MIN, 30 * S, &w);
    expect_pair(&w, 0, 100 * S, MIN, 14.4);
    expect_pair(&w, 1, 10 * MIN, MIN, 6);
    const int64_t want30[] = {100 * S, MIN, 10 * MIN};
    expect_windows(&w, want30, 3);

    /* a 1.5s interval: at least 3s */
    cn_burn_scale(&b, 10 * MIN, 1500, &w);
    expect_pair(&w, 0, 100 * S, 8 * S, 14.4);
    cn_burn_scale(&b, 30 * S, 1500, &w);
    expect_pair(&w, 0, 5 * S, 3 * S, 14.4);
    expect_pair(&w, 1, 30 * S, 3 * S, 6);
}

/* Without the floor in the way, each short window keeps 1/12 of its long. */
static void test_scale_keeps_ratio(void **state)
{
    (void)state;
    cn_burn_rate b = {.enabled = true, .slo = 0.999, .scale_to_bake = true};
    cn_burn_windows w;
    cn_burn_scale(&b, 12 * MIN, 1 * S, &w);
    expect_pair(&w, 0, 2 * MIN, 10 * S, 14.4);
    expect_pair(&w, 1, 12 * MIN, MIN, 6);
    for (size_t i = 0; i < w.pair_count; i++)
        assert_int_equal(w.pairs[i].short_ms * 12, w.pairs[i].long_ms);

    /* a bake longer than the longest window scales up */
    cn_burn_window own[] = {{.long_ms = MIN, .short_ms = 5 * S, .factor = 10}};
    b.windows = own;
    b.window_count = 1;
    cn_burn_scale(&b, 10 * MIN, 1 * S, &w);
    expect_pair(&w, 0, 10 * MIN, 50 * S, 10);
}

static void test_scale_off(void **state)
{
    (void)state;
    cn_burn_window own[] = {{.long_ms = 2 * MIN, .short_ms = 1500, .factor = 14.4}};
    cn_burn_rate b = unscaled(0.999, own, 1);
    cn_burn_windows w;
    /* as written: no floor, no rounding */
    cn_burn_scale(&b, 10 * MIN, 30 * S, &w);
    expect_pair(&w, 0, 2 * MIN, 1500, 14.4);
    /* scale_to_bake with no bake known: as written too */
    b.scale_to_bake = true;
    cn_burn_scale(&b, 0, 30 * S, &w);
    expect_pair(&w, 0, 2 * MIN, 1500, 14.4);
}

/* Pairs that share a window query it once. */
static void test_scale_dedup(void **state)
{
    (void)state;
    cn_burn_window own[] = {{.long_ms = 10 * MIN, .short_ms = MIN, .factor = 14.4},
                            {.long_ms = HOUR, .short_ms = 10 * MIN, .factor = 6},
                            {.long_ms = HOUR, .short_ms = MIN, .factor = 3}};
    cn_burn_rate b = unscaled(0.999, own, 3);
    cn_burn_windows w;
    cn_burn_scale(&b, 0, S, &w);
    const int64_t want[] = {10 * MIN, MIN, HOUR};
    expect_windows(&w, want, 3);
    assert_int_equal(w.pairs[1].long_ix, 2);
    assert_int_equal(w.pairs[1].short_ix, 0);
    assert_int_equal(w.pairs[2].long_ix, 2);
    assert_int_equal(w.pairs[2].short_ix, 1);

    /* more pairs than CN_BURN_MAX_PAIRS (only by hand): the rest ignored */
    cn_burn_window many[CN_BURN_MAX_PAIRS + 2];
    for (size_t i = 0; i < CN_BURN_MAX_PAIRS + 2; i++)
        many[i] = (cn_burn_window){.long_ms = (int64_t)(i + 2) * MIN,
                                   .short_ms = (int64_t)(i + 1) * S, .factor = 2};
    b = unscaled(0.999, many, CN_BURN_MAX_PAIRS + 2);
    cn_burn_scale(&b, 0, S, &w);
    assert_int_equal(w.pair_count, CN_BURN_MAX_PAIRS);
    assert_int_equal(w.window_count, 2 * CN_BURN_MAX_PAIRS);
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {1000, "1s"},       {90000, "90s"},  {100000, "100s"}, {300000, "5m"},
        {5400000, "90m"},   {3600000, "1h"}, {7200000, "2h"},  {1500, "1500ms"},
        {259200000, "72h"}, {61000, "61s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        cn_burn_duration(buf, sizeof buf, cases[i].ms);
        assert_string_equal(buf, cases[i].want);
    }
}

/* ---- verdicts ----------------------------------------------------------- */

/* One pair, 2m and 10s, 14.4x, 99.9%: the brief's example. */
static cn_burn_window FAST[] = {{.long_ms = 2 * MIN, .short_ms = 10 * S, .factor = 14.4}};

static cn_outcome judge1(cn_reading e_long, cn_reading t_long, cn_reading e_short,
                         cn_reading t_short, cn_burn_result *res, char *why, size_t len)
{
    cn_burn_rate b = unscaled(0.999, FAST, 1);
    cn_burn_windows w;
    cn_burn_scale(&b, 0, S, &w);
    cn_reading errors[] = {e_long, e_short}, total[] = {t_long, t_short};
    return cn_burn_judge(&b, &w, errors, total, res, why, len);
}

static void test_fail_words(void **state)
{
    (void)state;
    cn_burn_result res;
    char why[256];
    cn_outcome o = judge1(value(3.12), value(100), value(4.01), value(100), &res, why,
                          sizeof why);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    expect_why(why, "burn 31.2x over 2m and 40.1x over 10s > 14.4x: 3.12% errors against a "
                    "0.1% budget");
    assert_int_equal(res.pair, 0);
    assert_true(fabs(res.value - 31.2) < 1e-9); /* the lower of the two */
    assert_true(res.windows[0].have && res.windows[1].have);
    assert_true(res.windows[0].errors == 3.12 && res.windows[0].total == 100);
    assert_true(fabs(res.windows[1].ratio - 0.0401) < 1e-15);

    /* rates, not counts: any scale of total works */
    o = judge1(value(0.0312), value(1), value(40.1), value(1000), NULL, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    expect_why(why, "burn 31.2x over 2m and 40.1x over 10s > 14.4x: 3.12% errors against a "
                    "0.1% budget");

    /* large and tiny numbers: no exponent */
    o = judge1(value(123.456), value(100), value(100), value(100), NULL, why, sizeof why);
    expect_why(why, "burn 1234.6x over 2m and 1000x over 10s > 14.4x: 123.5% errors against "
                    "a 0.1% budget");
}

/* Either window alone is not enough: a burn that stopped (long high, short
 * low) or a blip (short high, long low) passes. */
static void test_both_windows_needed(void **state)
{
    (void)state;
    char why[256];
    cn_burn_result res;
    cn_outcome o = judge1(value(5), value(100), value(0.1), value(100), &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 50x over 2m and 1x over 10s, not both > 14.4x: 5% errors over 2m "
                    "against a 0.1% budget");
    assert_int_equal(res.pair, 0);
    assert_true(fabs(res.value - 1) < 1e-9);
    o = judge1(value(0.1), value(100), value(50), value(100), &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 1x over 2m and 500x over 10s, not both > 14.4x: 0.1% errors over 2m "
                    "against a 0.1% budget");
}

/* The workbook's pairs on a 10-minute bake polled every 5s: four windows. */
static void test_pass_words(void **state)
{
    (void)state;
    cn_burn_rate b = {.enabled = true, .slo = 0.999, .errors = "e[{{window}}]",
                      .total = "t[{{window}}]", .scale_to_bake = true};
    cn_burn_windows w;
    cn_burn_scale(&b, 10 * MIN, 5 * S, &w); /* 100s, 10s, 10m, 50s */
    cn_reading errors[] = {value(0.05), value(0.03), value(0.12), value(0.08)};
    cn_reading total[] = {value(100), value(100), value(100), value(100)};
    cn_burn_result res;
    char why[256];
    cn_outcome o = cn_burn_judge(&b, &w, errors, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 0.5x over 100s and 0.3x over 10s, not both > 14.4x; 1.2x over 10m "
                    "and 0.8x over 50s, not both > 6x: 0.12% errors over 10m against a 0.1% "
                    "budget");
    /* nearest to firing: 0.8 / 6 beats 0.3 / 14.4 */
    assert_int_equal(res.pair, 1);
    assert_true(fabs(res.value - 0.8) < 1e-9);

    /* a slow burn: only the six-hour pair (scaled) fires */
    cn_reading slow[] = {value(0.7), value(0.5), value(0.7), value(0.65)};
    o = cn_burn_judge(&b, &w, slow, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    assert_int_equal(res.pair, 1);
    expect_why(why, "burn 7x over 10m and 6.5x over 50s > 6x: 0.7% errors against a 0.1% "
                    "budget");

    /* both fire: the first is named, the other counted */
    cn_reading fast[] = {value(2), value(3), value(2), value(1)};
    o = cn_burn_judge(&b, &w, fast, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    assert_int_equal(res.pair, 0);
    expect_why(why, "burn 20x over 100s and 30x over 10s > 14.4x: 2% errors against a 0.1% "
                    "budget; 1 more pair fires");

    /* no errors at all, and an empty errors result is no errors */
    cn_reading none[] = {value(0), nodata("empty vector (no series matched)"), value(0),
                         nodata("empty vector (no series matched)")};
    o = cn_burn_judge(&b, &w, none, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 0x over 100s and 0x over 10s, not both > 14.4x; 0x over 10m and 0x "
                    "over 50s, not both > 6x: 0% errors over 10m against a 0.1% budget");
    assert_true(res.windows[1].have && res.windows[1].errors == 0);

    /* a budget of 0.01% and a small burn */
    b.slo = 0.9999;
    cn_reading small[] = {value(0.00043), value(0.00043), value(0.00043), value(0.00043)};
    o = cn_burn_judge(&b, &w, small, total, &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_PASS);
    expect_why(why, "burn 0.043x over 100s and 0.043x over 10s, not both > 14.4x; 0.043x over "
                    "10m and 0.043x over 50s, not both > 6x: 0.00043% errors over 10m "
                    "against a 0.01% budget");
}

static void test_nodata(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        cn_reading e_long, t_long, e_short, t_short;
        const char *why;
    } cases[] = {
        {"no requests in the short window", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 50}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 0}, "no data: no requests over 10s (total 0)"},
        {"total NaN", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = NAN}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, "no data: total over 2m is NaN"},
        {"total empty", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_NODATA, .detail = "empty vector (no series matched)"},
         {.kind = CN_READING_VALUE, .value = 0}, {.kind = CN_READING_VALUE, .value = 1},
         "no data: total over 2m: empty vector (no series matched)"},
        {"errors NaN", {.kind = CN_READING_VALUE, .value = 1},
         {.kind = CN_READING_VALUE, .value = 100}, {.kind = CN_READING_VALUE, .value = NAN},
         {.kind = CN_READING_VALUE, .value = 100}, "no data: errors over 10s is NaN"},
        {"errors NaN and total 0 in one window: the errors query is named",
         {.kind = CN_READING_VALUE, .value = NAN}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 0}, {.kind = CN_READING_VALUE, .value = 1},
         "no data: errors over 2m is NaN"},
        /* a long window that fires cannot fail without its short one */
        {"the short window of a firing long one", {.kind = CN_READING_VALUE, .value = 50},
         {.kind = CN_READING_VALUE, .value = 100}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 0}, "no data: no requests over 10s (total 0)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_burn_result res;
        char why[256];
        cn_outcome o = judge1(cases[i].e_long, cases[i].t_long, cases[i].e_short,
                              cases[i].t_short, &res, why, sizeof why);
        if (o != CN_OUTCOME_NODATA || strcmp(why, cases[i].why)) {
            print_error("%s: expected nodata '%s', got %d '%s'\n", cases[i].name, cases[i].why,
                        (int)o, why);
            fail();
        }
        assert_int_equal(res.pair, -1);
        assert_true(isnan(res.value));
    }
}

/* Missing evidence is never a pass: one pair passing on its data does not
 * make up for another pair's window without data. */
static void test_nodata_not_a_pass(void **state)
{
    (void)state;
    cn_burn_rate b = {.enabled = true, .slo = 0.999, .scale_to_bake = true};
    cn_burn_windows w;
    cn_burn_scale(&b, 10 * MIN, 5 * S, &w);
    cn_reading errors[] = {value(0), value(0), value(0), value(0)};
    cn_reading total[] = {value(100), value(100), value(100), value(0)};
    cn_burn_result res;
    char why[256];
    assert_int_equal(cn_burn_judge(&b, &w, errors, total, &res, why, sizeof why),
                     CN_OUTCOME_NODATA);
    expect_why(why, "no data: no requests over 50s (total 0)");
    /* the windows that had data are still reported */
    assert_true(res.windows[0].have && res.windows[2].have && !res.windows[3].have);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        cn_reading e_long, t_long, e_short, t_short;
        const char *why;
    } cases[] = {
        {"errors query failed", {.kind = CN_READING_ERROR, .detail = "HTTP 500"},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, "error: errors over 2m: HTTP 500"},
        {"total +Inf", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = INFINITY}, "error: total over 10s is +Inf"},
        {"errors -Inf", {.kind = CN_READING_VALUE, .value = -INFINITY},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, "error: errors over 2m is -Inf"},
        {"negative errors", {.kind = CN_READING_VALUE, .value = -1},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, "error: errors over 2m is negative (-1)"},
        {"negative total", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = -0.5}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, "error: total over 2m is negative (-0.5)"},
        {"an error with no detail", {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_ERROR}, "error: total over 10s: query failed"},
        {"unknown reading kind", {.kind = (cn_reading_kind)7},
         {.kind = CN_READING_VALUE, .value = 1}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 1},
         "error: errors over 2m: reading of unknown kind 7"},
        /* an error anywhere beats no data anywhere */
        {"no data in the long window, an error in the short",
         {.kind = CN_READING_VALUE, .value = 0}, {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_VALUE, .value = 0},
         {.kind = CN_READING_ERROR, .detail = "connection refused (127.0.0.1:9)"},
         "error: total over 10s: connection refused (127.0.0.1:9)"},
        {"errors NaN and total failed in one window", {.kind = CN_READING_VALUE, .value = NAN},
         {.kind = CN_READING_ERROR, .detail = "timed out after 500ms"},
         {.kind = CN_READING_VALUE, .value = 0}, {.kind = CN_READING_VALUE, .value = 1},
         "error: total over 2m: timed out after 500ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_burn_result res;
        char why[256];
        cn_outcome o = judge1(cases[i].e_long, cases[i].t_long, cases[i].e_short,
                              cases[i].t_short, &res, why, sizeof why);
        if (o != CN_OUTCOME_ERROR || strcmp(why, cases[i].why)) {
            print_error("%s: expected error '%s', got %d '%s'\n", cases[i].name, cases[i].why,
                        (int)o, why);
            fail();
        }
        assert_int_equal(res.pair, -1);
    }
}

/* A pair that fires on its own two windows fails the measurement whatever
 * the other queries returned, as a threshold fails before a baseline. */
static void test_fail_beats_error(void **state)
{
    (void)state;
    cn_burn_rate b = {.enabled = true, .slo = 0.999, .scale_to_bake = true};
    cn_burn_windows w;
    cn_burn_scale(&b, 10 * MIN, 5 * S, &w);
    cn_reading errors[] = {value(5), value(5), failed("HTTP 503"), value(0)};
    cn_reading total[] = {value(100), value(100), value(100), value(0)};
    char why[256];
    assert_int_equal(cn_burn_judge(&b, &w, errors, total, NULL, why, sizeof why),
                     CN_OUTCOME_FAIL);
    expect_why(why, "burn 50x over 100s and 50x over 10s > 14.4x: 5% errors against a 0.1% "
                    "budget");
}

/* why may be NULL, empty or short; a hand-built rate or windows that
 * cannot be judged is an error, never a pass. */
static void test_edges(void **state)
{
    (void)state;
    char small[24];
    cn_outcome o = judge1(value(3.12), value(100), value(4.01), value(100), NULL, small,
                          sizeof small);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    assert_string_equal(small, "burn 31.2x over 2m and ");
    o = judge1(value(3.12), value(100), value(4.01), value(100), NULL, NULL, 0);
    assert_int_equal(o, CN_OUTCOME_FAIL);
    char untouched[4] = "abc";
    o = judge1(value(0), value(100), value(0), value(100), NULL, untouched, 0);
    assert_int_equal(o, CN_OUTCOME_PASS);
    assert_string_equal(untouched, "abc");

    cn_burn_rate b = unscaled(1, FAST, 1);
    cn_burn_windows w;
    cn_burn_scale(&b, 0, S, &w);
    cn_reading e[] = {value(0), value(0)}, t[] = {value(1), value(1)};
    char why[128];
    assert_int_equal(cn_burn_judge(&b, &w, e, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
    assert_string_equal(why, "error: slo 100 is not between 0 and 100%");
    b.slo = 0;
    assert_int_equal(cn_burn_judge(&b, &w, e, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
    b.slo = NAN;
    assert_int_equal(cn_burn_judge(&b, &w, e, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
    b.slo = 0.999;
    cn_burn_windows empty = {0};
    assert_int_equal(cn_burn_judge(&b, &empty, e, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
    assert_string_equal(why, "error: no burn-rate windows to judge");
    assert_int_equal(cn_burn_judge(NULL, &w, e, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
    assert_int_equal(cn_burn_judge(&b, &w, NULL, t, NULL, why, sizeof why), CN_OUTCOME_ERROR);
}

/* ---- what the engine and the simulator share ---------------------------- */

static void test_stage_bake(void **state)
{
    (void)state;
    cn_plan plan = {.stage_count = 2, .bake_ms = 5 * MIN};
    plan.stages[0].bake_ms = 10 * MIN;
    plan.stages[1].bake_ms = 20 * MIN;
    assert_int_equal(cn_burn_stage_bake(&plan, 1), 10 * MIN);
    assert_int_equal(cn_burn_stage_bake(&plan, 2), 20 * MIN);
    assert_int_equal(cn_burn_stage_bake(&plan, 0), 5 * MIN);
    assert_int_equal(cn_burn_stage_bake(&plan, 3), 5 * MIN);
}

/* What observers see, and the evidence in the event log. */
static void test_shown_and_data(void **state)
{
    (void)state;
    cn_burn_result res;
    char why[256];
    cn_outcome o = judge1(value(3.12), value(100), value(4.01), value(100), &res, why,
                          sizeof why);
    cn_reading shown = cn_burn_shown(o, &res, why);
    assert_int_equal(shown.kind, CN_READING_VALUE);
    assert_true(fabs(shown.value - 31.2) < 1e-9);
    assert_string_equal(shown.detail, "");

    cn_burn_rate b = unscaled(0.999, FAST, 1);
    cn_burn_windows w;
    cn_burn_scale(&b, 0, S, &w);
    char *text = cn_burn_data("availability", &b, &w, o, &res);
    assert_non_null(text);
    assert_string_equal(text, "{\"metric\":\"availability\",\"outcome\":\"fail\","
                              "\"kind\":\"burn_rate\",\"slo\":0.999,\"budget\":0.001,"
                              "\"value\":31.2,\"max\":14.4,\"pair\":{\"long\":\"2m\","
                              "\"short\":\"10s\",\"factor\":14.4},\"windows\":[{\"window\":"
                              "\"2m\",\"errors\":3.12,\"total\":100.0,\"ratio\":0.0312,"
                              "\"burn\":31.2},{\"window\":\"10s\",\"errors\":4.01,\"total\":"
                              "100.0,\"ratio\":0.0401,\"burn\":40.1}]}");
    free(text);

    /* no data: no value, no pair, the words as the detail */
    o = judge1(value(0), value(0), value(0), value(10), &res, why, sizeof why);
    assert_int_equal(o, CN_OUTCOME_NODATA);
    shown = cn_burn_shown(o, &res, why);
    assert_int_equal(shown.kind, CN_READING_NODATA);
    assert_string_equal(shown.detail, why);
    text = cn_burn_data("availability", &b, &w, o, &res);
    assert_non_null(strstr(text, "\"outcome\":\"nodata\""));
    assert_non_null(strstr(text, "\"value\":null"));
    assert_null(strstr(text, "\"pair\""));
    assert_non_null(strstr(text, "{\"window\":\"2m\",\"errors\":null,\"total\":null,"
                                 "\"ratio\":null,\"burn\":null}"));
    free(text);
    o = judge1(failed("HTTP 503"), value(0), value(0), value(10), &res, why, sizeof why);
    shown = cn_burn_shown(o, &res, why);
    assert_int_equal(shown.kind, CN_READING_ERROR);
    assert_string_equal(shown.detail, "error: errors over 2m: HTTP 503");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_pairs),
        cmocka_unit_test(test_workbook_budget),
        cmocka_unit_test(test_scale_to_10m_bake),
        cmocka_unit_test(test_scale_keeps_ratio),
        cmocka_unit_test(test_scale_off),
        cmocka_unit_test(test_scale_dedup),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_fail_words),
        cmocka_unit_test(test_both_windows_needed),
        cmocka_unit_test(test_pass_words),
        cmocka_unit_test(test_nodata),
        cmocka_unit_test(test_nodata_not_a_pass),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fail_beats_error),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_stage_bake),
        cmocka_unit_test(test_shown_and_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
