/*
 * policy_cases.h: loading a policy from text, and tables of mistakes, for
 * the policy suites (test_policy, test_policy_burn, test_policy_judge).
 *
 * Contract: cn_test_load_policy() loads text as the file name (YAML or
 * JSON by its suffix) into *p, which must be freed whatever the result,
 * with every diagnostic in *d (freed by the caller). cn_test_error_cases()
 * fails the running cmocka test unless each case, loaded as "p.yaml",
 * fails with exactly one diagnostic: the expected message at the expected
 * line and column (the diagnostics are printed when it does not).
 */
#ifndef CANARY_TEST_POLICY_CASES_H
#define CANARY_TEST_POLICY_CASES_H

#include <stddef.h>

#include "canary/diag.h"
#include "canary/policy.h"

int cn_test_load_policy(const char *name, const char *text, cn_policy *p, cn_diags *d);

typedef struct error_case {
    const char *what;
    const char *yaml;
    unsigned line, col;
    const char *message;
} error_case;

void cn_test_error_cases(const error_case *cases, size_t n);

#endif
