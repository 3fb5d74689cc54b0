/* Strict scalar parsing: the values users write in policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "canary/schema.h"

static void test_durations(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cn_text_duration("200ms", &ms), 0);
    assert_int_equal(ms, 200);
    assert_int_equal(cn_text_duration("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(cn_text_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(cn_text_duration("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(cn_text_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(cn_text_duration("5", &ms), -1);
    assert_int_equal(cn_text_duration("5 m", &ms), -1);
    assert_int_equal(cn_text_duration("", &ms), -1);
    assert_int_equal(cn_text_duration("5d", &ms), -1);
    assert_int_equal(cn_text_duration("-5s", &ms), -1);
    assert_int_equal(cn_text_duration("s", &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
