/*
 * judge_mw.c: the Mann-Whitney (Wilcoxon rank-sum) test, the Hodges-Lehmann
 * shift and its confidence interval (judge.h has the contract).
 *
 * Everything works on sorted copies of the two samples. The rank statistic
 * at a shift mu is one merge of x - mu with y (x - mu stays sorted), so a
 * step of the root finder costs O(n + m), not a sort. The pairwise
 * differences x_i - y_j are never listed (100k x 100k would be 10^10):
 * counting those at most d, and finding the nearest one to a point, are
 * two-pointer walks over the sorted samples, because x_i - y_j grows with i
 * and falls with j (also in floating point, where subtraction is
 * monotonic).
 *
 * Speed without changing a bit (test_judge_mw_identity.c checks against
 * the original): the k-th difference is found by bisecting on values until
 * few candidates are left, which are then listed and selected among, not
 * by 64 bisections of the double's bits; and once Brent's bracket is
 * narrow, the rank statistic is kept as a sum over the canary values that
 * cannot change inside it plus the few that can (a window), so a step
 * costs what is left in the bracket, not n + m. Both give the very same
 * integers (W counted in halves, the tie term) as the merge, and so the
 * same doubles.
 */
#include "canary/judge.h"

#include <float.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"

/* Enough for the bracket to close to ~1e-13 of its width by bisection
 * alone; Brent's method needs no more than that on a step function. */
#define MAX_ROOT_ITERATIONS 200
/* Differences looked at around Brent's answer before settling for it. */
#define SNAP_STEPS 64

typedef struct sorted {
    double *x, *y;
    size_t n, m;
    /* With the extras (cn_mw_test): room for the candidate differences of
     * the k-th, the distinct canary values (xv, xc of each), the distinct
     * baseline values (yv, with ybelow[q] baseline values below the q-th
     * and ybelow[yruns] = m), the y part of the tie term, and the window's
     * arrays, one per distinct canary value. */
    double *cand, *xv, *yv;
    size_t limit, runs, yruns;
    size_t *xc, *ybelow, *active, *jlo, *jhi;
    uint64_t y_ties;
} sorted;

static int cmp_double(const void *a, const void *b)
{
    double p = *(const double *)a, q = *(const double *)b;
    return (p > q) - (p < q);
}

static int check_sample(const double *v, size_t n, const char *who, char *err, size_t errlen)
{
    if (n == 0 || !v)
        return cn_set_err(err, errlen, CN_EINVAL, "the %s sample is empty", who);
    if (n > CN_JUDGE_MAX_SAMPLES)
        return cn_set_err(err, errlen, CN_ELIMIT,
                          "the %s sample holds %zu values, more than the %u the judge takes",
                          who, n, CN_JUDGE_MAX_SAMPLES);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return cn_set_err(err, errlen, CN_EINVAL, "the %s sample holds %s at index %zu",
                              who, isnan(v[i]) ? "NaN" : "an infinite value", i);
    return CN_OK;
}

static void sorted_free(sorted *s)
{
    free(s->x);
    free(s->xc);
    memset(s, 0, sizeof *s);
}

static bool is_sorted(const double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i] < v[i - 1])
            return false;
    return true;
}

static uint64_t tie_term(uint64_t t)
{
    return t * t * t - t;
}

/* The distinct canary values and the ties of the baseline's. */
static void sorted_extras(sorted *s)
{
    size_t r = 0;
    for (size_t i = 0; i < s->n; r++) {
        size_t k = i;
        while (k < s->n && s->x[k] == s->x[i])
            k++;
        s->xv[r] = s->x[i];
        s->xc[r] = k - i;
        i = k;
    }
    s->runs = r;
    s->y_ties = 0;
    r = 0;
    for (size_t j = 0; j < s->m; r++) {
        size_t k = j;
        while (k < s->m && s->y[k] == s->y[j])
            k++;
        s->yv[r] = s->y[j];
        s->ybelow[r] = j;
        s->y_ties += tie_term(k - j);
        j = k;
    }
    s->yruns = r;
    s->ybelow[r] = s->m;
}

/* extras: also what cn_mw_test needs beyond the two sorted samples. One
 * allocation for the doubles, one for the counts. */
static int sorted_load(sorted *s, const double *x, size_t n, const double *y, size_t m,
                       bool extras, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    int rc = check_sample(x, n, "canary", err, errlen);
    if (!rc)
        rc = check_sample(y, m, "baseline", err, errlen);
    if (rc)
        return rc;
    size_t limit = extras ? n + m : 0;
    s->x = malloc((n + m + limit + (extras ? n + m : 0)) * sizeof *s->x);
    if (s->x && extras)
        s->xc = malloc((4 * n + m + 1) * sizeof *s->xc);
    if (!s->x || (extras && !s->xc)) {
        sorted_free(s);
        return cn_set_err(err, errlen, CN_ENOMEM, "out of memory sorting %zu + %zu values", n,
                          m);
    }
    s->y = s->x + n;
    memcpy(s->x, x, n * sizeof *x);
    memcpy(s->y, y, m * sizeof *y);
    /* Already sorted (as the classifier hands them over): a stable sort
     * would leave them as they are, so skip it. */
    if (!is_sorted(s->x, n))
        qsort(s->x, n, sizeof *s->x, cmp_double);
    if (!is_sorted(s->y, m))
        qsort(s->y, m, sizeof *s->y, cmp_double);
    s->n = n;
    s->m = m;
    if (extras) {
        s->cand = s->y + m;
        s->limit = limit;
        s->xv = s->cand + limit;
        s->yv = s->xv + n;
        s->ybelow = s->xc + n;
        s->active = s->ybelow + m + 1;
        s->jlo = s->active + n;
        s->jhi = s->jlo + n;
        sorted_extras(s);
    }
    /* Every difference x_i - y_j lies between these two; beyond the
     * largest double the shifts stop meaning anything. */
    if (!isfinite(s->x[n - 1] - s->y[0]) || !isfinite(s->x[0] - s->y[m - 1])) {
        sorted_free(s);
        return cn_set_err(err, errlen, CN_EINVAL,
                          "the samples are too far apart: their differences overflow");
    }
    return CN_OK;
}

/* ---- the rank statistic at a shift ------------------------------------- */

/* W of x - mu against y (pairs x_i - mu > y_j, ties counted 1/2) and the
 * tie term sum(t^3 - t) over the groups of equal values in both. */
typedef struct rank_stat {
    double w, ties;
} rank_stat;

static rank_stat rank_at(const sorted *s, double mu)
{
    rank_stat r = {0, 0};
    size_t i = 0, j = 0;
    while (i < s->n || j < s->m) {
        double v = i < s->n ? s->x[i] - mu : INFINITY;
        if (j < s->m && s->y[j] < v)
            v = s->y[j];
        size_t below = j; /* y values strictly less than v */
        double cx = 0, cy = 0;
        for (; i < s->n && s->x[i] - mu == v; i++)
            cx++;
        for (; j < s->m && s->y[j] == v; j++)
            cy++;
        r.w += cx * (double)below + 0.5 * cx * cy;
        double t = cx + cy;
        r.ties += t * t * t - t;
    }
    return r;
}

static double sign(double v)
{
    return (v > 0) - (v < 0);
}

/* The continuity-corrected z of the test of shift mu; 0 without variance. */
static double z_of(const sorted *s, rank_stat r)
{
    double n = (double)s->n, m = (double)s->m, total = n + m;
    double dz = r.w - n * m / 2;
    double var = n * m / 12 * ((total + 1) - r.ties / (total * (total - 1)));
    if (!(var > 0))
        return 0;
    return (dz - sign(dz) * 0.5) / sqrt(var);
}

static double z_at(const sorted *s, double mu)
{
    return z_of(s, rank_at(s, mu));
}

/* ---- pairwise differences without listing them ------------------------- */

/* The largest difference <= b, -Inf when none. */
static double largest_at_most(const sorted *s, double b)
{
    double best = -INFINITY;
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        while (j < s->m && s->x[i] - s->y[j] > b)
            j++;
        if (j < s->m && s->x[i] - s->y[j] > best)
            best = s->x[i] - s->y[j];
    }
    return best;
}

/* The smallest difference >= a, +Inf when none: for each i the last j
 * whose difference still reaches a. */
static double smallest_at_least(const sorted *s, double a)
{
    double best = INFINITY;
    size_t valid = 0; /* y[0 .. valid-1] give differences >= a for this i */
    for (size_t i = 0; i < s->n; i++) {
        while (valid < s->m && s->x[i] - s->y[valid] >= a)
            valid++;
        if (valid > 0 && s->x[i] - s->y[valid - 1] < best)
            best = s->x[i] - s->y[valid - 1];
    }
    return best;
}

/* Doubles as unsigned integers in the same order, so that bisection over
 * them ends on one exact double. */
static uint64_t order_key(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u >> 63) ? ~u : (u | (UINT64_C(1) << 63));
}

static double from_key(uint64_t k)
{
    uint64_t u = (k >> 63) ? (k & ~(UINT64_C(1) << 63)) : ~k;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* One walk at d: how many differences are at most d, the largest of those
 * and the smallest difference above d. In row i the first j whose
 * difference is <= d holds the row's largest such; the j before it, the
 * row's smallest above. */
typedef struct split {
    uint64_t count;
    double below, above;
} split;

static split split_at(const sorted *s, double d)
{
    split r = {0, -INFINITY, INFINITY};
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        while (j < s->m && s->x[i] - s->y[j] > d)
            j++;
        r.count += s->m - j;
        if (j < s->m && s->x[i] - s->y[j] > r.below)
            r.below = s->x[i] - s->y[j];
        if (j > 0 && s->x[i] - s->y[j - 1] < r.above)
            r.above = s->x[i] - s->y[j - 1];
    }
    return r;
}

/* Puts the nth smallest of v (0-based) at v[nth], none larger before it
 * and none smaller after (Hoare's FIND, pivot the median of three). */
static void select_nth(double *v, size_t n, size_t nth)
{
    ptrdiff_t l = 0, r = (ptrdiff_t)n - 1, k = (ptrdiff_t)nth;
    while (l < r) {
        double a = v[l], b = v[k], c = v[r];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        ptrdiff_t i = l, j = r;
        do {
            while (v[i] < pivot)
                i++;
            while (pivot < v[j])
                j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        } while (i <= j);
        if (j < k)
            l = i;
        if (k < i)
            r = j;
    }
}

/* The k-th smallest difference (1-based) and, with next, the (k+1)-th
 * (k < n m). The search keeps fewer than k differences at or below lo and
 * at least k (or k + 1) at or below hi, until few enough candidates are
 * left in (lo, hi] to list and select among. Each step guesses, by linear
 * interpolation of the counts, a point a quarter of that limit beyond k
 * on the side with more candidates, so that two or three steps usually
 * do; when a step fails to halve the candidates the next one halves the
 * values between lo and hi, and after that the doubles between them
 * (far-apart magnitudes), which always ends. Exact: the same difference
 * as any other way of counting, -0 printed as 0 as before. */
static void kth_differences(sorted *s, uint64_t k, bool next, double *kth, double *after)
{
    uint64_t need = next ? k + 1 : k;
    double lo = nextafter(s->x[0] - s->y[s->m - 1], -INFINITY);
    double hi = s->x[s->n - 1] - s->y[0];
    uint64_t clo = 0, chi = (uint64_t)s->n * s->m;
    int stalled = 0;
    while (chi - clo > s->limit) {
        uint64_t klo = order_key(lo), khi = order_key(hi);
        if (khi - klo < 2)
            break; /* (lo, hi] holds only hi */
        double mid = NAN;
        if (stalled == 0) {
            uint64_t quarter = s->limit / 4;
            uint64_t aim = chi - need > k - clo ? need + quarter : k - quarter;
            mid = lo + (hi - lo) * ((double)(aim - clo) / (double)(chi - clo));
        } else if (stalled == 1) {
            mid = lo + (hi - lo) / 2;
        }
        if (!(mid > lo && mid < hi))
            mid = from_key(klo + (khi - klo) / 2);
        uint64_t before = chi - clo;
        split sp = split_at(s, mid);
        if (sp.count >= need) {
            hi = sp.below < mid ? sp.below : mid; /* mid when both are zeros */
            chi = sp.count;
        } else if (sp.count < k) {
            lo = mid;
            clo = sp.count;
            if (sp.above >= hi)
                break; /* (lo, hi] holds only hi */
        } else { /* exactly k at or below mid: the k-th is there, k+1-th above */
            *kth = sp.below + 0.0;
            *after = sp.above + 0.0;
            return;
        }
        stalled = chi - clo > before / 2 ? stalled + 1 : 0;
    }
    if (chi - clo > s->limit) {
        *kth = *after = hi + 0.0;
        return;
    }
    /* List the differences in (lo, hi]: in row i those from the first j at
     * or below hi to the first at or below lo. */
    size_t count = 0, jh = 0, jl = 0;
    for (size_t i = 0; i < s->n; i++) {
        while (jh < s->m && s->x[i] - s->y[jh] > hi)
            jh++;
        while (jl < s->m && s->x[i] - s->y[jl] > lo)
            jl++;
        for (size_t j = jh; j < jl; j++)
            s->cand[count++] = s->x[i] - s->y[j];
    }
    size_t nth = (size_t)(k - clo - 1);
    select_nth(s->cand, count, nth);
    *kth = s->cand[nth] + 0.0;
    if (next) {
        double least = INFINITY;
        for (size_t i = nth + 1; i < count; i++)
            if (s->cand[i] < least)
                least = s->cand[i];
        *after = least + 0.0;
    }
}

static double hodges_lehmann(sorted *s)
{
    uint64_t pairs = (uint64_t)s->n * s->m;
    double a, b;
    if (pairs % 2) {
        kth_differences(s, pairs / 2 + 1, false, &a, &b);
        return a;
    }
    kth_differences(s, pairs / 2, true, &a, &b);
    return (a + b) / 2;
}

/* ---- the rank statistic inside a bracket ----------------------------- */

/* For mu in [a, b] each distinct canary value v = x - mu stays within
 * [x - b, x - a] (rounding is monotonic), so only the baseline values in
 * that range, y[jlo .. jhi), can tie with it or change sides. A value
 * with none there, which cannot meet its neighbouring canary values
 * either, adds the same to W and to the tie term all over the bracket:
 * those sums are kept (w2 counts W in halves), and only the others, the
 * active ones, are looked at for each mu. The integers are the merge's
 * (rank_at), so the doubles made of them are too. */
typedef struct window {
    bool valid;
    double a, b;
    uint64_t w2, ties;
    size_t count; /* active values, their indices in s->active */
} window;

/* Whether the r-th and (r+1)-th distinct canary values can round to the
 * same x - mu for some mu in [a, b]. */
static bool may_meet_next(const sorted *s, size_t r, double a, double b)
{
    return r + 1 < s->runs && s->xv[r] - a >= s->xv[r + 1] - b;
}

static void window_settle(const sorted *s, window *w, size_t r, double a, double b)
{
    if (s->jlo[r] == s->jhi[r] && !may_meet_next(s, r, a, b) &&
        !(r > 0 && may_meet_next(s, r - 1, a, b))) {
        w->w2 += 2 * (uint64_t)s->xc[r] * s->ybelow[s->jlo[r]];
        w->ties += tie_term(s->xc[r]);
    } else {
        s->active[w->count++] = r;
    }
}

/* Opens w over [a, b]: one walk, the ranges (of distinct baseline values,
 * jlo[r] .. jhi[r]) move up with the canary values. */
static void window_open(const sorted *s, window *w, double a, double b)
{
    w->w2 = 0;
    w->ties = s->y_ties;
    w->count = 0;
    size_t lo = 0, hi = 0;
    for (size_t r = 0; r < s->runs; r++) {
        while (lo < s->yruns && s->yv[lo] < s->xv[r] - b)
            lo++;
        if (hi < lo)
            hi = lo;
        while (hi < s->yruns && s->yv[hi] <= s->xv[r] - a)
            hi++;
        s->jlo[r] = lo;
        s->jhi[r] = hi;
        window_settle(s, w, r, a, b);
    }
    w->a = a;
    w->b = b;
    w->valid = true;
}

/* Narrows w to [a, b], inside the last one: only the active values move. */
static void window_narrow(const sorted *s, window *w, double a, double b)
{
    size_t count = w->count;
    w->count = 0;
    for (size_t k = 0; k < count; k++) {
        size_t r = s->active[k], lo = s->jlo[r], hi = s->jhi[r];
        while (lo < hi && s->yv[lo] < s->xv[r] - b)
            lo++;
        while (hi > lo && s->yv[hi - 1] > s->xv[r] - a)
            hi--;
        s->jlo[r] = lo;
        s->jhi[r] = hi;
        window_settle(s, w, r, a, b);
    }
    w->a = a;
    w->b = b;
}

/* rank_at(s, mu) for a mu inside the window: canary values that round to
 * the same x - mu form one group with the baseline values equal to it, as
 * in the merge. */
static rank_stat window_rank(const sorted *s, const window *w, double mu)
{
    uint64_t w2 = w->w2, ties = w->ties;
    for (size_t k = 0; k < w->count;) {
        size_t r = s->active[k];
        double v = s->xv[r] - mu;
        uint64_t cx = s->xc[r];
        for (k++; k < w->count && s->xv[s->active[k]] - mu == v; k++)
            cx += s->xc[s->active[k]];
        size_t q = s->jlo[r];
        while (q < s->jhi[r] && s->yv[q] < v)
            q++;
        uint64_t below = s->ybelow[q];
        uint64_t cy = q < s->jhi[r] && s->yv[q] == v ? s->ybelow[q + 1] - below : 0;
        w2 += 2 * cx * below + cx * cy;
        ties += tie_term(cx + cy) - tie_term(cy); /* cy's own term is in w->ties */
    }
    return (rank_stat){(double)w2 / 2, (double)ties};
}

/* ---- the confidence interval ------------------------------------------- */

typedef struct crossing {
    const sorted *s;
    double zq;
    window w;
    /* The last two shifts asked about, and the answers: GSL asks again
     * about the ends it was given. */
    double seen_mu[2], seen[2];
    int seen_count, seen_next;
} crossing;

static bool same_double(double a, double b)
{
    return !memcmp(&a, &b, sizeof a);
}

/* R's wdiff: positive while the shift mu is still too small for the test
 * of x - mu to stop rejecting at the critical value zq. */
static double wdiff(double mu, void *arg)
{
    crossing *c = arg;
    for (int k = 0; k < c->seen_count; k++)
        if (same_double(c->seen_mu[k], mu))
            return c->seen[k];
    const sorted *s = c->s;
    bool inside = c->w.valid && c->w.a <= mu && mu <= c->w.b &&
                  2 * c->w.count <= s->n + s->m;
    double d = z_of(s, inside ? window_rank(s, &c->w, mu) : rank_at(s, mu)) - c->zq;
    c->seen_mu[c->seen_next] = mu;
    c->seen[c->seen_next] = d;
    c->seen_next ^= 1;
    if (c->seen_count < 2)
        c->seen_count++;
    return d;
}

/* The sign of wdiff on the open stretch between two neighbouring
 * differences, seen from a point inside it. */
static double side(crossing *c, double from, double to, double outside)
{
    if (!isfinite(from) || !isfinite(to))
        return outside;
    return wdiff(from + (to - from) / 2, c);
}

/* The statistic only changes where x_i - mu meets some y_j, so it is a
 * step function of mu and it crosses zero at a pairwise difference: the
 * one with the function positive on the stretch before it and not on the
 * stretch after. Brent's method gets within a hair of it; this walks the
 * differences near its answer r (within tol) to land exactly on it. */
static double snap(crossing *c, double r, double tol)
{
    double below = largest_at_most(c->s, r), d = smallest_at_least(c->s, r);
    if (r - below < d - r)
        d = below;
    for (int step = 0; step < SNAP_STEPS && isfinite(d) && fabs(d - r) <= tol; step++) {
        double prev = largest_at_most(c->s, nextafter(d, -INFINITY));
        double next = smallest_at_least(c->s, nextafter(d, INFINITY));
        /* Brent only runs with wdiff > 0 at the low end, < 0 at the high end. */
        bool before = side(c, prev, d, 1) > 0, after = side(c, d, next, -1) > 0;
        if (before && !after)
            return d + 0.0;
        d = after ? next : prev;
    }
    return r;
}

/* R's root(): the ends of the search range when the crossing lies outside
 * it, else Brent's method from GSL over [mumin, mumax]. */
static int crossing_shift(const sorted *s, double zq, double *out, char *err, size_t errlen)
{
    double lo = s->x[0] - s->y[s->m - 1], hi = s->x[s->n - 1] - s->y[0];
    crossing c = {.s = s, .zq = zq};
    if (wdiff(lo, &c) <= 0) {
        *out = lo;
        return CN_OK;
    }
    if (wdiff(hi, &c) >= 0) {
        *out = hi;
        return CN_OK;
    }
    gsl_root_fsolver *solver = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (!solver)
        return cn_set_err(err, errlen, CN_ENOMEM, "out of memory for the root finder");
    gsl_function f = {wdiff, &c};
    double tol = (hi - lo) * 1e-13;
    if (gsl_root_fsolver_set(solver, &f, lo, hi) != GSL_SUCCESS) {
        gsl_root_fsolver_free(solver); /* cannot happen: the signs were checked */
        return cn_set_err(err, errlen, CN_EINVAL, "the root finder refused [%g, %g]", lo, hi);
    }
    for (int i = 0; i < MAX_ROOT_ITERATIONS; i++) {
        if (gsl_root_fsolver_iterate(solver) != GSL_SUCCESS)
            break;
        double a = gsl_root_fsolver_x_lower(solver), b = gsl_root_fsolver_x_upper(solver);
        if (gsl_root_test_interval(a, b, tol, 0) == GSL_SUCCESS)
            break;
        /* A window once the bracket holds about one baseline value per
         * canary value, narrowed each time it is an eighth as wide. */
        if (!c.w.valid && b - a <= (hi - lo) / (double)(s->n + s->m))
            window_open(s, &c.w, a, b);
        else if (c.w.valid && b - a <= (c.w.b - c.w.a) / 8)
            window_narrow(s, &c.w, a, b);
    }
    double root = gsl_root_fsolver_root(solver);
    gsl_root_fsolver_free(solver);
    *out = snap(&c, root, 4 * tol + 4 * DBL_EPSILON * fabs(root));
    return CN_OK;
}

/* ---- the API ------------------------------------------------------------ */

int cn_mw_test(const double *x, size_t n, const double *y, size_t m, double confidence,
               cn_mw_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!(confidence > 0 && confidence < 1))
        return cn_set_err(err, errlen, CN_EINVAL,
                          "confidence must lie strictly between 0 and 1, got %g", confidence);
    sorted s;
    int rc = sorted_load(&s, x, n, y, m, true, err, errlen);
    if (rc)
        return rc;

    rank_stat r = rank_at(&s, 0);
    out->u = r.w;
    /* R: 2 * min(pnorm(z), pnorm(z, lower.tail = FALSE)). */
    out->p_value = 2 * gsl_cdf_ugaussian_Q(fabs(z_at(&s, 0)));
    if (out->p_value > 1)
        out->p_value = 1;

    bool x_constant = s.x[0] == s.x[n - 1], y_constant = s.y[0] == s.y[m - 1];
    if (x_constant && y_constant) {
        /* Every shift but the difference separates the samples completely,
         * and at the difference every value ties: no interval to invert. */
        out->estimate = out->ci_low = out->ci_high = s.x[0] - s.y[0] + 0.0;
    } else {
        double alpha = 1 - confidence;
        out->estimate = hodges_lehmann(&s);
        rc = crossing_shift(&s, gsl_cdf_ugaussian_Qinv(alpha / 2), &out->ci_low, err, errlen);
        if (!rc)
            rc = crossing_shift(&s, gsl_cdf_ugaussian_Pinv(alpha / 2), &out->ci_high, err,
                                errlen);
    }
    sorted_free(&s);
    return rc;
}

int cn_mw_shift_z(const double *x, size_t n, const double *y, size_t m, double mu, double *z,
                  char *err, size_t errlen)
{
    *z = 0;
    if (!isfinite(mu))
        return cn_set_err(err, errlen, CN_EINVAL, "the shift must be finite");
    sorted s;
    int rc = sorted_load(&s, x, n, y, m, false, err, errlen);
    if (rc)
        return rc;
    *z = z_at(&s, mu);
    sorted_free(&s);
    return CN_OK;
}

int cn_mw_u(const double *x, size_t n, const double *y, size_t m, double *u, char *err,
            size_t errlen)
{
    *u = 0;
    sorted s;
    int rc = sorted_load(&s, x, n, y, m, false, err, errlen);
    if (rc)
        return rc;
    *u = rank_at(&s, 0).w;
    sorted_free(&s);
    return CN_OK;
}
