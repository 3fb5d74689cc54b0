#include "canary/schema.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cn_loader_init(cn_loader *ld, const char *file, cn_diags *diags,
                    cn_arena *arena)
{
    ld->file = file;
    ld->diags = diags;
    ld->arena = arena;
    ld->errors = 0;
}

void cn_loader_error(cn_loader *ld, const cn_node *at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cn_diags_add(ld->diags, ld->file, at ? at->line : 0, at ? at->col : 0, "%s",
                 msg);
    ld->errors++;
}

/* ---- scalar text ------------------------------------------------------- */

/* A decimal number: [+-]digits[.digits][e[+-]digits]. strtod alone would
 * take "inf", "nan", hex floats and leading spaces. */
static bool is_decimal(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0';
}

int cn_text_number(const char *s, double *out)
{
    if (!is_decimal(s))
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cn_text_uint(const char *s, unsigned *out)
{
    if (!isdigit((unsigned char)s[0]))
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    unsigned long v = strtoul(s, NULL, 10);
    if (errno == ERANGE || v > UINT_MAX)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int cn_text_percent(const char *s, double *fraction)
{
    size_t n = strlen(s);
    if (n < 2 || n > 63 || s[n - 1] != '%')
        return -1;
    char num[64];
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    double v;
    if (cn_text_number(num, &v))
        return -1;
    *fraction = v / 100.0;
    return 0;
}

int cn_text_duration(const char *s, int64_t *ms)
{
    /* Largest first: each part must use a smaller unit than the one before,
     * so "1h30m" is read one way only and "30s5m" or "1m1m" are mistakes. */
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000}};
    static const int rank[] = {3, 0, 2, 1}; /* h > m > s > ms */
    const char *p = s;
    double total = 0;
    int last_rank = 4;
    if (!*p)
        return -1;
    while (*p) {
        const char *start = p;
        while (isdigit((unsigned char)*p) || *p == '.')
            p++;
        if (p == start || p - start > 30 || *start == '.' || p[-1] == '.')
            return -1;
        char num[32];
        memcpy(num, start, (size_t)(p - start));
        num[p - start] = '\0';
        double v;
        if (cn_text_number(num, &v))
            return -1;
        size_t i, unit_len = 0;
        for (i = 0; i < sizeof units / sizeof units[0]; i++) {
            unit_len = strlen(units[i].unit);
            if (!strncmp(p, units[i].unit, unit_len))
                break; /* "ms" is tried before "m" */
        }
        if (i == sizeof units / sizeof units[0] || rank[i] >= last_rank)
            return -1;
        last_rank = rank[i];
        total += v * units[i].ms;
        p += unit_len;
    }
    if (total > CN_MAX_DURATION_MS)
        return -2;
    *ms = (int64_t)llround(total);
    return 0;
}

void cn_format_duration(char *buf, size_t len, int64_t ms)
{
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    if (ms < 0 || ms % 1000) {
        snprintf(buf, len, "%lldms", (long long)ms);
        return;
    }
    long long sec = ms / 1000, h = sec / 3600, m = sec / 60 % 60, rest = sec % 60;
    size_t n = 0;
    buf[0] = '\0';
    if (h)
        n += (size_t)snprintf(buf + n, len - n, "%lldh", h);
    if (m && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%lldm", m);
    if (rest && n < len)
        snprintf(buf + n, len - n, "%llds", rest);
}

/* ---- suggestions ------------------------------------------------------- */

size_t cn_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200 || lb > 200)
        return SIZE_MAX;
    size_t row[201];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) !=
                          tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cn_suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    /* Keys are short: past 64 characters nothing is a typo of a key. */
    if (strlen(word) > 64)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strlen(candidates[i]) > 64)
            continue;
        size_t d = cn_edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    size_t len = strlen(word);
    size_t allowed = len < 4 ? 1 : len < 9 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

void cn_unknown_key(cn_loader *ld, const cn_node *key, const char *what,
                    const char *const *candidates, size_t n)
{
    const char *hint = cn_suggest(key->text, candidates, n);
    if (hint)
        cn_loader_error(ld, key, "unknown key '%s' in %s (did you mean '%s'?)",
                        key->text, what, hint);
    else
        cn_loader_error(ld, key, "unknown key '%s' in %s", key->text, what);
}

bool cn_expect_scalar(cn_loader *ld, const cn_node *node, const char *key,
                      const char *expected)
{
    if (node->type == CN_NODE_SCALAR && !cn_node_is_null(node))
        return false;
    cn_loader_error(ld, node, "'%s' expects %s, got %s", key, expected,
                    cn_node_type_name(node));
    return true;
}

/* ---- maps -------------------------------------------------------------- */

uint64_t cn_load_map(cn_loader *ld, const cn_node *node, const cn_schema *s,
                     void *base)
{
    uint64_t present = 0;
    if (!node || cn_node_is_null(node))
        goto required;
    if (node->type != CN_NODE_MAP) {
        cn_loader_error(ld, node, "%s must be a map of keys, got %s", s->what,
                        cn_node_type_name(node));
        return 0;
    }
    const char *names[64];
    for (size_t i = 0; i < s->count && i < 64; i++)
        names[i] = s->fields[i].key;
    for (size_t p = 0; p < node->count; p++) {
        const cn_node *k = node->items[2 * p], *v = node->items[2 * p + 1];
        if (k->type != CN_NODE_SCALAR) {
            cn_loader_error(ld, k, "keys in %s must be plain names, got %s",
                            s->what, cn_node_type_name(k));
            continue;
        }
        size_t i;
        for (i = 0; i < s->count; i++)
            if (!strcmp(k->text, s->fields[i].key))
                break;
        if (i == s->count) {
            cn_unknown_key(ld, k, s->what, names, s->count < 64 ? s->count : 64);
            continue;
        }
        if (present & (1ull << i)) {
            cn_loader_error(ld, k, "key '%s' appears twice in %s", k->text,
                            s->what);
            continue;
        }
        present |= 1ull << i;
        const cn_field *f = &s->fields[i];
        f->parse(ld, v, f, (char *)base + f->offset);
    }
required:
    for (size_t i = 0; i < s->count; i++)
        if ((s->fields[i].flags & CN_REQUIRED) && !(present & (1ull << i)))
            cn_loader_error(ld, node, "%s is missing the required key '%s'",
                            s->what, s->fields[i].key);
    return present;
}

/* ---- field parsers ------------------------------------------------------ */

/* A bound in the units the file is written in: min and max are stored
 * units (fractions, milliseconds), and "must be at most 0.5, got 60%" would
 * read as half a percent. */
static const char *show_bound(const cn_field *f, double bound, bool percent,
                              char *buf, size_t size)
{
    if (percent) {
        snprintf(buf, size, "%g%%", bound * 100);
    } else if (f->parse == cn_parse_duration && bound >= 0 &&
               bound <= CN_MAX_DURATION_MS) {
        cn_format_duration(buf, size, (int64_t)bound);
    } else {
        snprintf(buf, size, "%g", bound);
    }
    return buf;
}

/* The rule of f's range that x breaks, with its bound; NULL when x is in
 * range. Shared by the message and by cn_field_value_ok, so the two never
 * disagree. */
static const char *range_rule(const cn_field *f, double x, double *bound)
{
    if ((f->flags & CN_MIN) && (f->flags & CN_MIN_EXCLUSIVE) && !(x > f->min)) {
        *bound = f->min;
        return "greater than";
    }
    if ((f->flags & CN_MIN) && !(f->flags & CN_MIN_EXCLUSIVE) && x < f->min) {
        *bound = f->min;
        return "at least";
    }
    if ((f->flags & CN_MAX) && x > f->max) {
        *bound = f->max;
        return "at most";
    }
    return NULL;
}

/* Told in the units written, quoting the value found: "'growth' must be
 * greater than 1, got '1'", "'steps' must be at most 100%, got '150%'". */
static int check_range(cn_loader *ld, const cn_node *v, const cn_field *f,
                       double x, const char *shown)
{
    double limit;
    const char *rule = range_rule(f, x, &limit);
    if (!rule)
        return 0;
    char b[64];
    bool percent = v->len && v->text[v->len - 1] == '%';
    cn_loader_error(ld, v, "'%s' must be %s %s, got '%s'", f->key, rule,
                    show_bound(f, limit, percent, b, sizeof b), shown);
    return -1;
}

int cn_parse_string(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    if (cn_expect_scalar(ld, v, f->key, "a string"))
        return -1;
    if (strlen(v->text) != v->len) {
        cn_loader_error(ld, v, "'%s' contains a NUL character", f->key);
        return -1;
    }
    const char *s = cn_arena_strdup(ld->arena, v->text);
    if (!s) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    *(const char **)dst = s;
    return 0;
}

/* "0.5" in quotes is a string in YAML; say so, or the message reads as if
 * 0.5 were not a number. */
static void quoted_number(cn_loader *ld, const cn_node *v, const cn_field *f,
                          const char *expected)
{
    cn_loader_error(ld, v, "'%s' expects %s, got the quoted string '%s' "
                           "(remove the quotes)", f->key, expected, v->text);
}

int cn_parse_number(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    double x;
    if (cn_expect_scalar(ld, v, f->key, "a number"))
        return -1;
    if (cn_text_number(v->text, &x)) {
        cn_loader_error(ld, v, "'%s' expects a number, got '%s'", f->key, v->text);
        return -1;
    }
    if (v->quoted) {
        quoted_number(ld, v, f, "a number");
        return -1;
    }
    if (check_range(ld, v, f, x, v->text))
        return -1;
    *(double *)dst = x;
    return 0;
}

int cn_parse_uint(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    unsigned x;
    if (cn_expect_scalar(ld, v, f->key, "a whole number"))
        return -1;
    if (cn_text_uint(v->text, &x)) {
        cn_loader_error(ld, v, "'%s' expects a whole number, got '%s'", f->key,
                        v->text);
        return -1;
    }
    if (v->quoted) {
        quoted_number(ld, v, f, "a whole number");
        return -1;
    }
    if (check_range(ld, v, f, x, v->text))
        return -1;
    *(unsigned *)dst = x;
    return 0;
}

int cn_parse_bool(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    if (cn_expect_scalar(ld, v, f->key, "true or false"))
        return -1;
    if (!v->quoted && !strcmp(v->text, "true"))
        *(bool *)dst = true;
    else if (!v->quoted && !strcmp(v->text, "false"))
        *(bool *)dst = false;
    else {
        cn_loader_error(ld, v, "'%s' expects true or false, got '%s'", f->key,
                        v->text);
        return -1;
    }
    return 0;
}

int cn_parse_percent(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    double x;
    if (cn_expect_scalar(ld, v, f->key, "a percentage such as 5%"))
        return -1;
    if (cn_text_percent(v->text, &x)) {
        double plain;
        if (!cn_text_number(v->text, &plain))
            cn_loader_error(ld, v,
                            "'%s' expects a percentage with a %% sign, got '%s' "
                            "(write '%s%%' for %s percent)",
                            f->key, v->text, v->text, v->text);
        else
            cn_loader_error(ld, v, "'%s' expects a percentage such as 5%%, got '%s'",
                            f->key, v->text);
        return -1;
    }
    if (check_range(ld, v, f, x, v->text))
        return -1;
    *(double *)dst = x;
    return 0;
}

int cn_parse_quantity(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    double x;
    if (cn_expect_scalar(ld, v, f->key, "a number or a percentage"))
        return -1;
    /* A percentage is unambiguous even quoted, and JSON can only quote it. */
    if (!cn_text_percent(v->text, &x)) {
    } else if (cn_text_number(v->text, &x)) {
        cn_loader_error(ld, v, "'%s' expects a number or a percentage, got '%s'",
                        f->key, v->text);
        return -1;
    } else if (v->quoted) {
        quoted_number(ld, v, f, "a number or a percentage");
        return -1;
    }
    if (check_range(ld, v, f, x, v->text))
        return -1;
    *(double *)dst = x;
    return 0;
}

int cn_parse_duration(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    int64_t ms;
    if (cn_expect_scalar(ld, v, f->key, "a duration such as 30s"))
        return -1;
    int bad = cn_text_duration(v->text, &ms);
    if (bad == -2) {
        cn_loader_error(ld, v, "'%s' must be at most 365 days, got '%s'", f->key,
                        v->text);
        return -1;
    }
    if (bad) {
        unsigned plain;
        if (!cn_text_uint(v->text, &plain))
            cn_loader_error(ld, v,
                            "'%s' expects a duration with a unit (ms, s, m, h), "
                            "got '%s' (write '%ss' for seconds)",
                            f->key, v->text, v->text);
        else
            cn_loader_error(ld, v,
                            "'%s' expects a duration such as 200ms, 30s, 5m, 1h or "
                            "1h30m (largest unit first), got '%s'",
                            f->key, v->text);
        return -1;
    }
    if (check_range(ld, v, f, (double)ms, v->text))
        return -1;
    *(int64_t *)dst = ms;
    return 0;
}

/* The numeric value a scalar parser would store, without reporting; false
 * when it would reject the text or the field has another parser. */
static bool quiet_value(const cn_node *n, const cn_field *f, double *x)
{
    if (n->type != CN_NODE_SCALAR || cn_node_is_null(n))
        return false;
    if (f->parse == cn_parse_duration) {
        int64_t ms;
        if (cn_text_duration(n->text, &ms))
            return false;
        *x = (double)ms;
        return true;
    }
    if (f->parse == cn_parse_uint) {
        unsigned u;
        if (n->quoted || cn_text_uint(n->text, &u))
            return false;
        *x = u;
        return true;
    }
    if (f->parse == cn_parse_percent)
        return !cn_text_percent(n->text, x);
    if (f->parse == cn_parse_number)
        return !n->quoted && !cn_text_number(n->text, x);
    if (f->parse == cn_parse_quantity)
        return !cn_text_percent(n->text, x) || (!n->quoted && !cn_text_number(n->text, x));
    return false;
}

bool cn_field_value_ok(const cn_node *map, const cn_schema *s, const char *key)
{
    if (!map || cn_node_is_null(map))
        return true;
    if (map->type != CN_NODE_MAP)
        return false;
    const cn_node *n = cn_node_get(map, key);
    if (!n)
        return true;
    for (size_t i = 0; i < s->count; i++)
        if (!strcmp(s->fields[i].key, key)) {
            double x, bound;
            return quiet_value(n, &s->fields[i], &x) &&
                   !range_rule(&s->fields[i], x, &bound);
        }
    return false;
}

int cn_parse_enum(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    if (cn_expect_scalar(ld, v, f->key, "one of the listed names"))
        return -1;
    size_t n = 0;
    for (int i = 0; f->choices[i]; i++, n++)
        if (!strcmp(v->text, f->choices[i])) {
            *(int *)dst = i;
            return 0;
        }
    char list[256] = "";
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s'%s'", i ? ", " : "",
                 f->choices[i]);
    }
    const char *hint = cn_suggest(v->text, f->choices, n);
    if (hint)
        cn_loader_error(ld, v, "'%s' must be one of %s, got '%s' (did you mean '%s'?)",
                        f->key, list, v->text, hint);
    else
        cn_loader_error(ld, v, "'%s' must be one of %s, got '%s'", f->key, list,
                        v->text);
    return -1;
}

int cn_parse_strings(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    cn_strings *out = dst;
    if (v->type != CN_NODE_SEQ) {
        cn_loader_error(ld, v, "'%s' expects a list of strings, got %s", f->key,
                        cn_node_type_name(v));
        return -1;
    }
    const char **items = cn_arena_alloc(ld->arena, (v->count + 1) * sizeof(*items));
    if (!items) {
        cn_loader_error(ld, v, "out of memory");
        return -1;
    }
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < v->count; i++) {
        const cn_node *it = v->items[i];
        if (cn_expect_scalar(ld, it, f->key, "a list of strings")) {
            rc = -1;
            continue;
        }
        /* as in cn_parse_string: copying would cut the text at the NUL */
        if (strlen(it->text) != it->len) {
            cn_loader_error(ld, it, "'%s' contains a NUL character", f->key);
            rc = -1;
            continue;
        }
        if (!(items[n++] = cn_arena_strdup(ld->arena, it->text))) {
            cn_loader_error(ld, it, "out of memory");
            return -1;
        }
    }
    out->items = items;
    out->count = n;
    return rc;
}

int cn_parse_map(cn_loader *ld, const cn_node *v, const cn_field *f, void *dst)
{
    unsigned before = ld->errors;
    cn_load_map(ld, v, f->sub, dst);
    return ld->errors == before ? 0 : -1;
}
