/* test_limits.c: the gateway's token buckets and counters
 * (gateway/limits.c): burst then refusal with the Retry-After seconds,
 * refill over time, users and addresses never sharing a bucket, counters,
 * and the bound on tracked keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "gateway/limits.h"

static void test_burst_then_wait(void **state)
{
    (void)state;
    toro_limits_t *l = toro_limits_new(0.5, 3, 100); /* 30 per minute, burst 3 */
    assert_non_null(l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(toro_limits_take(l, "ana", 1000), 0);
    assert_int_equal(toro_limits_take(l, "ana", 1000), 2); /* one token every 2 s */
    assert_int_equal(toro_limits_take(l, "ana", 2000), 1); /* half refilled: 1 s to go */
    assert_int_equal(toro_limits_take(l, "ana", 3000), 0); /* refilled */
    assert_int_equal(toro_limits_take(l, "ana", 3000), 2);
    assert_int_equal(toro_limits_take(l, "bia", 3000), 0); /* another key, its own bucket */
    toro_limits_free(l);
}

static void test_disabled(void **state)
{
    (void)state;
    toro_limits_t *l = toro_limits_new(0, 1, 10);
    for (int i = 0; i < 100; i++)
        assert_int_equal(toro_limits_take(l, "ana", 0), 0);
    toro_limits_free(l);
    toro_limits_free(NULL);
}

static void test_kinds_never_share(void **state)
{
    (void)state;
    toro_limits_t *l = toro_limits_new(1.0, 1, 100);
    assert_int_equal(toro_limits_take_kind(l, "user", "127.0.0.1", 0), 0);
    assert_true(toro_limits_take_kind(l, "user", "127.0.0.1", 0) > 0);
    assert_int_equal(toro_limits_take_kind(l, "ip", "127.0.0.1", 0), 0); /* the address keeps its budget */
    char long_key[200];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(toro_limits_take_kind(l, "user", long_key, 0), 1); /* untrackable: refused */
    toro_limits_free(l);
}

static void test_counters(void **state)
{
    (void)state;
    toro_limits_t *l = toro_limits_new(0, 1, 100);
    assert_int_equal(toro_limits_count(l, "ana", 1), 1);
    assert_int_equal(toro_limits_count(l, "ana", 1), 2);
    assert_int_equal(toro_limits_count(l, "ana", -1), 1);
    assert_int_equal(toro_limits_count(l, "ana", -5), 0); /* never below zero */
    toro_limits_free(l);
}

static void test_bounded_keys(void **state)
{
    (void)state;
    toro_limits_t *l = toro_limits_new(1.0, 1, 4);
    char key[16];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "u%d", i);
        assert_int_equal(toro_limits_take(l, key, 0), 0); /* each bucket now empty: busy */
    }
    assert_int_equal(toro_limits_take(l, "u4", 0), 1); /* table full of busy keys: refused */
    /* 2 s later every bucket is full again: idle entries are dropped for the new key */
    assert_int_equal(toro_limits_take(l, "u4", 2000), 0);
    /* counters: a full table of live counts refuses to grow */
    toro_limits_t *c = toro_limits_new(0, 1, 2);
    assert_int_equal(toro_limits_count(c, "a", 1), 1);
    assert_int_equal(toro_limits_count(c, "b", 1), 1);
    assert_true(toro_limits_count(c, "c", 1) > 1000);
    assert_int_equal(toro_limits_count(c, "a", -1), 0);
    assert_int_equal(toro_limits_count(c, "c", 1), 1); /* "a" idle: purged, room for "c" */
    toro_limits_free(c);
    toro_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),   cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_kinds_never_share), cmocka_unit_test(test_counters),
        cmocka_unit_test(test_bounded_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
