/*
 * checks.h: helpers shared by the unit suites.
 *
 * Contract: cn_test_print_diags() prints every diagnostic as
 * "  FILE:LINE:COLUMN: message" through cmocka's print_error, so a failing
 * assertion about messages shows what the loader actually said.
 * assert_contains() and assert_prefix() fail with both strings printed;
 * include them after <cmocka.h>.
 */
#ifndef CANARY_TEST_CHECKS_H
#define CANARY_TEST_CHECKS_H

#include "canary/diag.h"

void cn_test_print_diags(const cn_diags *d);

#include <string.h>

#define assert_contains(hay, needle)                                          \
    do {                                                                      \
        if (!strstr((hay), (needle))) {                                       \
            print_error("expected '%s' in '%s'\n", (needle), (hay));         \
            fail();                                                           \
        }                                                                     \
    } while (0)

#define assert_prefix(s, prefix)                                              \
    do {                                                                      \
        if (strncmp((s), (prefix), strlen(prefix)) != 0) {                    \
            print_error("expected '%s' to start with '%s'\n", (s), (prefix)); \
            fail();                                                           \
        }                                                                     \
    } while (0)

#endif
