#include "checks.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

void cn_test_print_diags(const cn_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        print_error("  %s:%u:%u: %s\n", d->items[i].file, d->items[i].line,
                    d->items[i].col, d->items[i].message);
}
