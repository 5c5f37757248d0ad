/* test_util.c: core/util.c helpers that other tests do not reach through
 * their callers: toro_grow's capacity rule and its failure contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

static bool is_uuid(const char *id, char version)
{
    if (strlen(id) != 36 || id[14] != version || !strchr("89ab", id[19]))
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id[i] != '-' : !strchr("0123456789abcdef", id[i]))
            return false;
    }
    return true;
}

static bool is_uuid4(const char *id) { return is_uuid(id, '4'); }

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* Ids come from a pool refilled by the CSPRNG: well formed (version 4,
 * RFC 4122 variant) and distinct across many refills. */
static void test_uuid4_format_and_distinct(void **state)
{
    (void)state;
    enum { N = 5000 };
    char(*ids)[37] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        toro_uuid4(ids[i]);
        assert_true(is_uuid4(ids[i]));
    }
    qsort(ids, N, sizeof *ids, cmp_id);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

/* UUIDv7: well formed, its first 48 bits the creation time, and an id
 * made in a later millisecond sorts after every earlier one. */
static void test_uuid7_time_ordered(void **state)
{
    (void)state;
    char a[37], b[37], c[37];
    int64_t t0 = toro_now_ms();
    toro_uuid7(a);
    toro_uuid7(b);
    assert_true(is_uuid(a, '7') && is_uuid(b, '7'));
    assert_string_not_equal(a, b);
    char hex[13];
    memcpy(hex, a, 8);
    memcpy(hex + 8, a + 9, 4);
    hex[12] = '\0';
    int64_t ms = (int64_t)strtoll(hex, NULL, 16);
    assert_true(ms >= t0 && ms <= toro_now_ms());
    toro_sleep_ms(2);
    toro_uuid7(c);
    assert_true(strcmp(a, c) < 0 && strcmp(b, c) < 0);
}

/* A forked child does not repeat the ids its parent hands out next (the
 * pool the child inherited is dropped). */
static void test_uuid4_fork_does_not_repeat(void **state)
{
    (void)state;
    char first[37], parent_next[37], child_next[37] = "";
    toro_uuid4(first); /* the pool is filled */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[37];
        toro_uuid4(id);
        ssize_t w = write(fds[1], id, sizeof id);
        _exit(w == (ssize_t)sizeof id ? 0 : 1);
    }
    toro_uuid4(parent_next);
    assert_int_equal(read(fds[0], child_next, sizeof child_next), (ssize_t)sizeof child_next);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]);
    close(fds[1]);
    assert_true(is_uuid4(child_next));
    assert_string_not_equal(parent_next, child_next);
}

/* The accept path's small JSON objects: compact, in order, NULL values left
 * out; anything that would need escaping is refused (callers use jansson). */
static void test_json_plain(void **state)
{
    (void)state;
    const char *kv[] = {"user_id", "ana", "question_id", "q-1", "conversation_id", NULL, "status", "pending"};
    char *s = toro_json_plain("", kv, 4, "");
    assert_string_equal(s, "{\"user_id\":\"ana\",\"question_id\":\"q-1\",\"status\":\"pending\"}");
    free(s);
    s = toro_json_plain("{\"success\":true,\"data\":", kv, 2, "}");
    assert_string_equal(s, "{\"success\":true,\"data\":{\"user_id\":\"ana\",\"question_id\":\"q-1\"}}");
    free(s);
    const char *none[] = {"a", NULL};
    s = toro_json_plain("", none, 1, "");
    assert_string_equal(s, "{}");
    free(s);
    const char *bad[][2] = {{"k", "say \"hi\""}, {"k", "back\\slash"}, {"k", "tab\there"}, {"k", "a\xc3\xa7"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(toro_json_plain("", bad[i], 1, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles_from_first),
        cmocka_unit_test(test_grow_with_room_returns_the_same_array),
        cmocka_unit_test(test_grow_failure_leaves_array_and_cap),
        cmocka_unit_test(test_uuid4_format_and_distinct),
        cmocka_unit_test(test_uuid4_fork_does_not_repeat),
        cmocka_unit_test(test_uuid7_time_ordered),
        cmocka_unit_test(test_json_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
