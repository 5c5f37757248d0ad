/* test_util.c: core/util.c helpers that other tests do not reach through
 * their callers: toro_grow's capacity rule and its failure contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "core/util.h"

static void test_grow_doubles_from_first(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0, n, caps[8], seen = 0;
    for (n = 0; n < 20; n++) {
        int *g = toro_grow(a, &cap, n, sizeof *a, 4);
        assert_non_null(g);
        a = g;
        if (seen == 0 || caps[seen - 1] != cap)
            caps[seen++] = cap; /* each capacity the array had */
        assert_true(n < cap);
        a[n] = (int)n;
    }
    assert_int_equal(seen, 4); /* 4, 8, 16, 32 */
    assert_int_equal(caps[0], 4);
    assert_int_equal(caps[1], 8);
    assert_int_equal(caps[2], 16);
    assert_int_equal(caps[3], 32);
    for (n = 0; n < 20; n++)
        assert_int_equal(a[n], (int)n); /* contents kept across moves */
    free(a);
}

static void test_grow_with_room_returns_the_same_array(void **state)
{
    (void)state;
    size_t cap = 0;
    char *a = toro_grow(NULL, &cap, 0, 1, 8);
    assert_non_null(a);
    assert_int_equal(cap, 8);
    assert_ptr_equal(toro_grow(a, &cap, 7, 1, 8), a);
    assert_int_equal(cap, 8);
    free(a);
}

static void test_grow_failure_leaves_array_and_cap(void **state)
{
    (void)state;
    size_t cap = 0;
    char *a = toro_grow(NULL, &cap, 0, 1, 2);
    assert_non_null(a);
    a[0] = 'x';
    size_t huge = SIZE_MAX / 2 + 1; /* a full array whose doubled byte count would overflow */
    size_t before = huge;
    assert_null(toro_grow(a, &huge, huge, 1, 2));
    assert_int_equal(huge, before);
    assert_int_equal(a[0], 'x'); /* still ours, still valid */
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles_from_first),
        cmocka_unit_test(test_grow_with_room_returns_the_same_array),
        cmocka_unit_test(test_grow_failure_leaves_array_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
