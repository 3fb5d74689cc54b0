#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "canary/doc.h"
#include "canary/status.h"
#include "checks.h"
#include "policy_cases.h"

int cn_test_load_policy(const char *name, const char *text, cn_policy *p, cn_diags *d)
{
    cn_doc doc;
    cn_diags_init(d);
    int rc = cn_doc_load_buffer(&doc, name, text, strlen(text), d);
    if (rc) {
        cn_doc_free(&doc);
        cn_policy_defaults(p);
        return rc;
    }
    rc = cn_policy_load_doc(p, &doc, d);
    cn_doc_free(&doc);
    return rc;
}

void cn_test_error_cases(const error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cn_policy p;
        cn_diags d;
        int rc = cn_test_load_policy("p.yaml", cases[i].yaml, &p, &d);
        long at = cn_diags_find(&d, cases[i].message);
        if (rc != CN_EINVAL || cn_diags_total(&d) != 1 || at < 0 ||
            d.items[at].line != cases[i].line || d.items[at].col != cases[i].col) {
            cn_test_print_diags(&d);
            fail_msg("case '%s': expected only \"%s\" at %u:%u", cases[i].what,
                     cases[i].message, cases[i].line, cases[i].col);
        }
        cn_policy_free(&p);
        cn_diags_free(&d);
    }
}
