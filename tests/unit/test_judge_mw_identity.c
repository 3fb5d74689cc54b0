/* The fast Mann-Whitney judge against the frozen original
 * (judge_mw_reference.c, test-only): thousands of seeded random sample
 * pairs, sizes 1..400, with many ties (integer-valued and rounded
 * samples, equal samples, a constant side), huge, tiny and mixed
 * magnitudes, negative values and signed zeros, at confidences 0.9, 0.95,
 * 0.98 and 0.99, unsorted and already sorted. u, p_value, estimate and the
 * interval must be the same bits, and so must the z of shifts, u alone,
 * the error codes and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/judge.h"
#include "canary/status.h"

#include "judge_mw_reference.c"

#define PAIRS 1500
#define MAX_N 400

static const double CONFIDENCES[] = {0.9, 0.95, 0.98, 0.99};

static uint64_t rng_state;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

static size_t below(size_t k)
{
    return (size_t)(next_u64() % k);
}

static double normal(void)
{
    double u = uniform(), v = uniform();
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

enum { CONTINUOUS, INTEGERS, ROUNDED, HUGE_VALUES, TINY, MIXED, ZEROS, KINDS };

static const char *const KIND_NAMES[] = {"continuous", "integers", "rounded", "huge",
                                         "tiny",       "mixed",    "zeros"};

/* One sample of a kind, around centre with spread. */
static void fill(double *v, size_t n, int kind, double centre, double spread)
{
    for (size_t i = 0; i < n; i++) {
        double g = centre + spread * normal();
        switch (kind) {
        case CONTINUOUS:
            v[i] = g;
            break;
        case INTEGERS:
            v[i] = round(g);
            break;
        case ROUNDED:
            v[i] = round(g * 10) / 10;
            break;
        case HUGE_VALUES:
            v[i] = g * 1e12 + (below(3) == 0 ? 1e280 * round(normal()) : 0);
            break;
        case TINY:
            v[i] = g * 1e-300;
            break;
        case MIXED:
            v[i] = below(4) == 0 ? g * 1e15 : round(g);
            break;
        default: /* ZEROS */
            v[i] = below(3) == 0 ? -0.0 : below(2) ? 0.0 : round(g);
            break;
        }
    }
}

static size_t random_size(void)
{
    switch (below(4)) {
    case 0:
        return 1 + below(8);
    case 1:
        return 1 + below(40);
    default:
        return 1 + below(MAX_N);
    }
}

static int same_bits(double a, double b)
{
    return !memcmp(&a, &b, sizeof a);
}

typedef struct pair_case {
    int index, kind;
    size_t n, m;
} pair_case;

static void expect_same(const pair_case *pc, const char *what, double confidence, double ref,
                        double got)
{
    if (same_bits(ref, got))
        return;
    print_error("case %d (%s, n %zu, m %zu, confidence %g): %s is %.17g, the original "
                "gives %.17g\n",
                pc->index, KIND_NAMES[pc->kind], pc->n, pc->m, confidence, what, got, ref);
    fail();
}

static void compare_all(const pair_case *pc, const double *x, size_t n, const double *y,
                        size_t m)
{
    for (size_t c = 0; c < sizeof CONFIDENCES / sizeof CONFIDENCES[0]; c++) {
        cn_mw_result ref, got;
        char ref_err[200] = "", got_err[200] = "";
        int ref_rc = ref_mw_test(x, n, y, m, CONFIDENCES[c], &ref, ref_err, sizeof ref_err);
        int got_rc = cn_mw_test(x, n, y, m, CONFIDENCES[c], &got, got_err, sizeof got_err);
        assert_int_equal(got_rc, ref_rc);
        assert_string_equal(got_err, ref_err);
        expect_same(pc, "u", CONFIDENCES[c], ref.u, got.u);
        expect_same(pc, "p_value", CONFIDENCES[c], ref.p_value, got.p_value);
        expect_same(pc, "estimate", CONFIDENCES[c], ref.estimate, got.estimate);
        expect_same(pc, "ci_low", CONFIDENCES[c], ref.ci_low, got.ci_low);
        expect_same(pc, "ci_high", CONFIDENCES[c], ref.ci_high, got.ci_high);
        if (c)
            continue;
        /* The shifts the classifier asks about: 0, the estimate and its band. */
        double shifts[] = {0, ref.estimate, 0.25 * fabs(ref.estimate),
                           -0.25 * fabs(ref.estimate), ref.ci_low, ref.ci_high};
        for (size_t k = 0; k < sizeof shifts / sizeof shifts[0]; k++) {
            double zr = 0, zg = 0;
            char er[200] = "", eg[200] = "";
            assert_int_equal(cn_mw_shift_z(x, n, y, m, shifts[k], &zg, eg, sizeof eg),
                             ref_mw_shift_z(x, n, y, m, shifts[k], &zr, er, sizeof er));
            assert_string_equal(eg, er);
            expect_same(pc, "z of a shift", CONFIDENCES[c], zr, zg);
        }
        double ur = 0, ug = 0;
        assert_int_equal(cn_mw_u(x, n, y, m, &ug, NULL, 0), ref_mw_u(x, n, y, m, &ur, NULL, 0));
        expect_same(pc, "u alone", CONFIDENCES[c], ur, ug);
    }
}

static void random_pairs(void **state)
{
    (void)state;
    rng_state = 20261202;
    static double x[MAX_N], y[MAX_N];
    for (int t = 0; t < PAIRS; t++) {
        pair_case pc = {t, (int)below(KINDS), random_size(), random_size()};
        double spread = pc.kind == INTEGERS ? 0.5 + 4 * uniform() : 0.1 + 10 * uniform();
        double centre = 100 * normal();
        fill(x, pc.n, pc.kind, centre + spread * normal(), spread);
        switch (below(6)) {
        case 0: /* the same values on both sides */
            pc.m = pc.n;
            memcpy(y, x, pc.n * sizeof *x);
            break;
        case 1: /* one side constant */
            for (size_t j = 0; j < pc.m; j++)
                y[j] = x[0];
            break;
        default:
            fill(y, pc.m, pc.kind, centre, spread * (0.5 + uniform()));
            break;
        }
        if (below(2)) { /* sometimes a constant canary instead */
            if (below(8) == 0)
                for (size_t i = 1; i < pc.n; i++)
                    x[i] = x[0];
        }
        compare_all(&pc, x, pc.n, y, pc.m);
        /* judge_classify hands the samples over sorted (cmp_double is the
         * reference's). */
        qsort(x, pc.n, sizeof *x, cmp_double);
        qsort(y, pc.m, sizeof *y, cmp_double);
        compare_all(&pc, x, pc.n, y, pc.m);
    }
}

/* Shapes the random draw rarely makes: tiny samples, all ties, far apart. */
static void fixed_shapes(void **state)
{
    (void)state;
    const double a[] = {1, 1, 1, 2, 2, 3}, b[] = {1, 2, 2, 2, 3, 3};
    const double one[] = {5}, other[] = {7};
    const double big[] = {1e308, -1e308}, small[] = {0, 1};
    const double far[] = {1e300, 2e300, 3e300}, near[] = {-1e300, 0, 1e300};
    pair_case pc = {-1, CONTINUOUS, 0, 0};
    struct {
        const double *x, *y;
        size_t n, m;
    } shapes[] = {{a, b, 6, 6},     {b, a, 6, 6},     {one, other, 1, 1}, {other, one, 1, 1},
                  {a, one, 6, 1},   {one, a, 1, 6},   {big, small, 2, 2}, {far, near, 3, 3},
                  {near, far, 3, 3}, {a, a, 6, 6},    {one, one, 1, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        pc.n = shapes[k].n;
        pc.m = shapes[k].m;
        pc.index = -(int)k - 1;
        compare_all(&pc, shapes[k].x, pc.n, shapes[k].y, pc.m);
    }
}

/* Bad input: the same code and the same message. */
static void errors(void **state)
{
    (void)state;
    const double ok[] = {1, 2, 3}, nan_v[] = {1, NAN}, inf_v[] = {INFINITY, 1};
    pair_case pc = {-100, CONTINUOUS, 3, 3};
    compare_all(&pc, ok, 3, nan_v, 2);
    compare_all(&pc, inf_v, 2, ok, 3);
    compare_all(&pc, ok, 0, ok, 3);
    compare_all(&pc, NULL, 0, ok, 3);
    compare_all(&pc, ok, 3, ok, 0);
    cn_mw_result r1, r2;
    char e1[200] = "", e2[200] = "";
    for (int k = 0; k < 4; k++) {
        double bad[] = {0, 1, -0.5, NAN};
        assert_int_equal(cn_mw_test(ok, 3, ok, 3, bad[k], &r1, e1, sizeof e1),
                         ref_mw_test(ok, 3, ok, 3, bad[k], &r2, e2, sizeof e2));
        assert_string_equal(e1, e2);
    }
    double z1 = 1, z2 = 2;
    assert_int_equal(cn_mw_shift_z(ok, 3, ok, 3, INFINITY, &z1, e1, sizeof e1),
                     ref_mw_shift_z(ok, 3, ok, 3, INFINITY, &z2, e2, sizeof e2));
    assert_string_equal(e1, e2);
    assert_true(same_bits(z1, z2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_pairs),
        cmocka_unit_test(fixed_shapes),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
