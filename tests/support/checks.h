/*
 * checks.h: helpers shared by the unit suites.
 *
 * Contract: cn_test_print_diags() prints every diagnostic as
 * "  FILE:LINE:COLUMN: message" through cmocka's print_error, so a failing
 * assertion about messages shows what the loader actually said.
 */
#ifndef CANARY_TEST_CHECKS_H
#define CANARY_TEST_CHECKS_H

#include "canary/diag.h"

void cn_test_print_diags(const cn_diags *d);

#endif
