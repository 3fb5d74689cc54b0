#include "canary/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cn_diags_init(cn_diags *d)
{
    memset(d, 0, sizeof(*d));
}

void cn_diags_free(cn_diags *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
    }
    free(d->items);
    memset(d, 0, sizeof(*d));
}

void cn_diags_add(cn_diags *d, const char *file, unsigned line, unsigned col,
                  const char *fmt, ...)
{
    if (d->count >= CN_DIAGS_MAX) {
        d->dropped++;
        return;
    }
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        cn_diag *items = realloc(d->items, cap * sizeof(*items));
        if (!items) {
            d->dropped++;
            return;
        }
        d->items = items;
        d->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    char *f = strdup(file ? file : "<input>");
    if (!msg || !f) {
        free(msg);
        free(f);
        d->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    d->items[d->count++] = (cn_diag){f, line, col, msg};
}

size_t cn_diags_total(const cn_diags *d)
{
    return d->count + d->dropped;
}

/* Print order: files in the order they were first reported (the order the
 * user named them), then by position; a loader's later passes (cross-field
 * checks) would otherwise print line 9 before line 4. */
typedef struct print_key {
    size_t file_rank, index;
    unsigned line, col;
} print_key;

static int by_position(const void *a, const void *b)
{
    const print_key *x = a, *y = b;
    if (x->file_rank != y->file_rank)
        return x->file_rank < y->file_rank ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* stable */
}

static void print_one(const cn_diag *e, FILE *out)
{
    if (e->line)
        fprintf(out, "%s:%u:%u: %s\n", e->file, e->line, e->col, e->message);
    else
        fprintf(out, "%s: %s\n", e->file, e->message);
}

void cn_diags_print(const cn_diags *d, FILE *out)
{
    print_key *keys = malloc(d->count * sizeof(*keys) + 1);
    for (size_t i = 0; keys && i < d->count; i++) {
        size_t rank = i;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->items[j].file, d->items[i].file)) {
                rank = keys[j].file_rank;
                break;
            }
        keys[i] = (print_key){rank, i, d->items[i].line, d->items[i].col};
    }
    if (keys)
        qsort(keys, d->count, sizeof(*keys), by_position);
    for (size_t i = 0; i < d->count; i++)
        print_one(&d->items[keys ? keys[i].index : i], out);
    free(keys);
    if (d->dropped)
        fprintf(out, "canary: %zu more problems not shown\n", d->dropped);
}

long cn_diags_find(const cn_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->items[i].message, needle))
            return (long)i;
    return -1;
}
