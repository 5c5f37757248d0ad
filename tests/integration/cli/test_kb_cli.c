/* test_kb_cli.c: the `toro kb` and `toro ask` commands through the real
 * binary (TORO_BIN): exit codes, JSON shapes, same version on rebuild. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

static char bin[1024], corpus[2048], tmpdir[] = "/tmp/toro-cli-test-XXXXXX";

/* Runs cmd, captures stdout into out (cap bytes), returns the exit status. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("TORO_BIN"), *src = getenv("TORO_SOURCE_DIR");
    if (!b || !src)
        return -1;
    snprintf(bin, sizeof(bin), "%s", b);
    snprintf(corpus, sizeof(corpus), "%s/tests/data/kb/corpus", src);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_build_search_ask(void **state)
{
    (void)state;
    static char out[65536], cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' kb build '%s' -o '%s/a.kb' 2>/dev/null", bin, corpus, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    char *v = strstr(out, "version");
    assert_non_null(v);
    char v1[64];
    assert_int_equal(sscanf(v, "version %63s", v1), 1);
    snprintf(cmd, sizeof(cmd), "'%s' kb build '%s' -o '%s/b.kb' 2>/dev/null", bin, corpus, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, v1)); /* same input, same version */

    snprintf(cmd, sizeof(cmd), "'%s' kb search '%s/a.kb' 'garantia do FGC' -k 2 --json", bin, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_int_equal(json_array_size(json_object_get(o, "hits")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(o, "hits"), 0), "chunk_id")),
                        "cdb#1");
    assert_string_equal(json_string_value(json_object_get(o, "kb_version")), v1);
    json_decref(o);

    snprintf(cmd, sizeof(cmd), "'%s' ask --kb '%s/a.kb' 'Qual a garantia do FGC no CDB?' --json", bin, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_true(json_is_true(json_object_get(o, "found_relevant_docs")));
    assert_non_null(strstr(json_string_value(json_object_get(o, "answer")), "[1]"));
    assert_true(json_array_size(json_object_get(o, "sources")) >= 1);
    assert_string_equal(json_string_value(json_object_get(o, "kb_version")), v1);
    json_decref(o);

    snprintf(cmd, sizeof(cmd), "'%s' ask --kb '%s/a.kb' 'Who won the 1970 World Cup?' --json", bin, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_false(json_is_true(json_object_get(o, "found_relevant_docs")));
    assert_string_equal(json_string_value(json_object_get(o, "answer")),
                        "I don't have enough information to answer this question.");
    assert_int_equal(json_array_size(json_object_get(o, "sources")), 0);
    json_decref(o);
}

static void test_errors(void **state)
{
    (void)state;
    static char out[4096], cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' kb 2>/dev/null", bin);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    snprintf(cmd, sizeof(cmd), "'%s' kb search 2>/dev/null", bin);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    snprintf(cmd, sizeof(cmd), "'%s' ask --kb /nonexistent.kb 'oi?' 2>&1", bin);
    assert_int_equal(run(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "/nonexistent.kb"));
    snprintf(cmd, sizeof(cmd), "'%s' kb build /nonexistent -o '%s/x.kb' 2>/dev/null", bin, tmpdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_search_ask),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
