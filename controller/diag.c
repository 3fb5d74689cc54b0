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

void cn_diags_print(const cn_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->count; i++) {
        const cn_diag *e = &d->items[i];
        if (e->line)
            fprintf(out, "%s:%u:%u: %s\n", e->file, e->line, e->col, e->message);
        else
            fprintf(out, "%s: %s\n", e->file, e->message);
    }
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
