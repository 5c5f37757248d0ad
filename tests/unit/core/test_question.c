/* test_question.c: the request validation table, the status machine and
 * the event codec (core/question.c, core/util.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/question.h"
#include "core/util.h"

typedef struct vcase {
    const char *name;
    const char *body; /* NULL: built by the test */
    int ok;
    const char *want_user;
    const char *want_question;
    const char *want_err; /* substring of the error message */
} vcase_t;

static const vcase_t cases[] = {
    {"valid", "{\"user_id\":\"u1\",\"question\":\"O que é CDB?\"}", 1, "u1", "O que é CDB?", NULL},
    {"trimmed", "{\"user_id\":\"  u1 \",\"question\":\"\\t  O que é CDB?  \\n\"}", 1, "u1", "O que é CDB?", NULL},
    {"nbsp trimmed", "{\"user_id\":\"u1\",\"question\":\"\xc2\xa0Selic\xc2\xa0\"}", 1, "u1", "Selic", NULL},
    {"empty question", "{\"user_id\":\"u1\",\"question\":\"\"}", 0, NULL, NULL, "question must not be empty"},
    {"spaces only", "{\"user_id\":\"u1\",\"question\":\"   \\t\\n \"}", 0, NULL, NULL, "question must not be empty"},
    {"empty user", "{\"user_id\":\"\",\"question\":\"oi\"}", 0, NULL, NULL, "user_id must not be empty"},
    {"spaces user", "{\"user_id\":\"   \",\"question\":\"oi\"}", 0, NULL, NULL, "user_id must not be empty"},
    {"missing user", "{\"question\":\"oi\"}", 0, NULL, NULL, "user_id is required"},
    {"missing question", "{\"user_id\":\"u1\"}", 0, NULL, NULL, "question is required"},
    {"number user", "{\"user_id\":42,\"question\":\"oi\"}", 0, NULL, NULL, "user_id must be a string"},
    {"null question", "{\"user_id\":\"u1\",\"question\":null}", 0, NULL, NULL, "question must be a string"},
    {"array question", "{\"user_id\":\"u1\",\"question\":[\"oi\"]}", 0, NULL, NULL, "question must be a string"},
    {"extra field", "{\"user_id\":\"u1\",\"question\":\"oi\",\"admin\":true}", 0, NULL, NULL, "unknown field"},
    {"array body", "[{\"user_id\":\"u1\",\"question\":\"oi\"}]", 0, NULL, NULL, "JSON object"},
    {"string body", "\"oi\"", 0, NULL, NULL, "JSON object"},
    {"not json", "user_id=u1&question=oi", 0, NULL, NULL, "not valid JSON"},
    {"truncated", "{\"user_id\":\"u1\",\"question\":\"oi\"", 0, NULL, NULL, "not valid JSON"},
    {"duplicate key", "{\"user_id\":\"u1\",\"user_id\":\"u2\",\"question\":\"oi\"}", 0, NULL, NULL, "not valid JSON"},
    {"bad utf8", "{\"user_id\":\"u1\",\"question\":\"\xc3\x28\"}", 0, NULL, NULL, "UTF-8"},
    {"overlong utf8", "{\"user_id\":\"u1\",\"question\":\"\xc0\xaf\"}", 0, NULL, NULL, "UTF-8"},
    {"surrogate utf8", "{\"user_id\":\"u1\",\"question\":\"\xed\xa0\x80\"}", 0, NULL, NULL, "UTF-8"},
    {"nul escape", "{\"user_id\":\"u1\",\"question\":\"a\\u0000b\"}", 0, NULL, NULL, "NUL"},
    {"bad user chars", "{\"user_id\":\"u 1\",\"question\":\"oi\"}", 0, NULL, NULL, "user_id must be at most"},
    {"user script", "{\"user_id\":\"<script>\",\"question\":\"oi\"}", 0, NULL, NULL, "user_id must be at most"},
};

static void test_validation_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const vcase_t *c = &cases[i];
        char *u = NULL, *q = NULL;
        const char *err = NULL;
        int rc = toro_question_validate(c->body, strlen(c->body), false, &u, &q, &err);
        if (c->ok) {
            if (rc != 0)
                fail_msg("case '%s' should pass, got error '%s'", c->name, err ? err : "?");
            assert_string_equal(u, c->want_user);
            assert_string_equal(q, c->want_question);
        } else {
            if (rc != TORO_EINVAL)
                fail_msg("case '%s' should fail", c->name);
            assert_null(u);
            assert_null(q);
            if (!err || !strstr(err, c->want_err))
                fail_msg("case '%s': error '%s' lacks '%s'", c->name, err ? err : "(null)", c->want_err);
        }
        free(u);
        free(q);
    }
}

/* Builds {"user_id":"u","question":"<n copies of unit>"} */
static char *body_with(const char *unit, int n)
{
    size_t ul = strlen(unit), cap = ul * (size_t)n + 64;
    char *b = malloc(cap);
    size_t o = (size_t)snprintf(b, cap, "{\"user_id\":\"u\",\"question\":\"");
    for (int i = 0; i < n; i++) {
        memcpy(b + o, unit, ul);
        o += ul;
    }
    snprintf(b + o, cap - o, "\"}");
    return b;
}

static void test_length_counts_characters(void **state)
{
    (void)state;
    /* 2000 two-byte characters (4000 bytes) pass; 2001 fail; same with 4-byte emoji */
    const char *units[] = {"a", "\xc3\xa7", "\xf0\x9f\x92\xb0"};
    for (int k = 0; k < 3; k++) {
        char *u = NULL, *q = NULL;
        const char *err = NULL;
        char *b = body_with(units[k], 2000);
        assert_int_equal(toro_question_validate(b, strlen(b), false, &u, &q, &err), 0);
        assert_int_equal(toro_utf8_count(q, strlen(q)), 2000);
        free(u);
        free(q);
        free(b);
        b = body_with(units[k], 2001);
        u = q = NULL;
        assert_int_equal(toro_question_validate(b, strlen(b), false, &u, &q, &err), TORO_EINVAL);
        assert_non_null(strstr(err, "2000"));
        free(b);
    }
    /* surrounding spaces do not count toward the limit */
    char *b = body_with("a", 2000);
    char *padded = malloc(strlen(b) + 8);
    /* insert 3 spaces after the opening quote of the question */
    char *qpos = strstr(b, "question\":\"") + strlen("question\":\"");
    size_t head = (size_t)(qpos - b);
    memcpy(padded, b, head);
    memcpy(padded + head, "   ", 3);
    memcpy(padded + head + 3, qpos, strlen(qpos) + 1);
    char *u = NULL, *q = NULL;
    const char *err = NULL;
    assert_int_equal(toro_question_validate(padded, strlen(padded), false, &u, &q, &err), 0);
    free(u);
    free(q);
    free(b);
    free(padded);
}

static void test_user_id_limit(void **state)
{
    (void)state;
    char uid[200];
    memset(uid, 'x', 128);
    uid[128] = '\0';
    assert_true(toro_user_id_is_valid(uid));
    uid[128] = 'x';
    uid[129] = '\0';
    assert_false(toro_user_id_is_valid(uid));
    assert_true(toro_user_id_is_valid("maria.silva@toro:01_a-b"));
    assert_false(toro_user_id_is_valid(""));
    assert_false(toro_user_id_is_valid("a/b"));
}

static void test_status_machine(void **state)
{
    (void)state;
    /* rows: from, cols: to (pending, processing, completed, error) */
    static const int allowed[4][4] = {
        {0, 1, 0, 1}, /* pending */
        {0, 1, 1, 1}, /* processing (processing->processing is a retry) */
        {0, 0, 0, 0}, /* completed is terminal */
        {0, 0, 0, 0}, /* error is terminal */
    };
    for (int f = 0; f < 4; f++)
        for (int t = 0; t < 4; t++)
            if (toro_status_can_move((toro_status_t)f, (toro_status_t)t) != allowed[f][t])
                fail_msg("%s -> %s should be %s", toro_status_name(f), toro_status_name(t),
                         allowed[f][t] ? "allowed" : "refused");
    assert_true(toro_status_is_terminal(TORO_STATUS_COMPLETED));
    assert_true(toro_status_is_terminal(TORO_STATUS_ERROR));
    assert_false(toro_status_is_terminal(TORO_STATUS_PROCESSING));
    toro_status_t s;
    assert_int_equal(toro_status_parse("completed", &s), 0);
    assert_int_equal(s, TORO_STATUS_COMPLETED);
    assert_int_equal(toro_status_parse("done", &s), TORO_EINVAL);
}

static void test_event_codec(void **state)
{
    (void)state;
    char *p = toro_event_encode("u1", "q-1", TORO_STATUS_PENDING);
    assert_string_equal(p, "{\"user_id\":\"u1\",\"question_id\":\"q-1\",\"status\":\"pending\"}");
    char *u, *q;
    toro_status_t s;
    assert_int_equal(toro_event_decode(p, &u, &q, &s), 0);
    assert_string_equal(u, "u1");
    assert_string_equal(q, "q-1");
    assert_int_equal(s, TORO_STATUS_PENDING);
    free(u);
    free(q);
    free(p);
    assert_int_equal(toro_event_decode("{\"user_id\":\"u\"}", &u, &q, &s), TORO_EFORMAT);
    assert_int_equal(toro_event_decode("not json", &u, &q, &s), TORO_EFORMAT);
    assert_int_equal(toro_event_decode("{\"user_id\":\"u\",\"question_id\":\"q\",\"status\":\"bogus\"}", &u, &q, &s),
                     TORO_EFORMAT);
}

static void test_util(void **state)
{
    (void)state;
    char id[37];
    toro_uuid4(id);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4');
    char ts[32];
    toro_iso8601(1700000000123LL, ts);
    assert_string_equal(ts, "2023-11-14T22:13:20.123Z");
    const char *raw = "1700000000123|abc";
    char *enc = toro_b64url_encode((const unsigned char *)raw, strlen(raw));
    size_t n;
    unsigned char *dec = toro_b64url_decode(enc, &n);
    assert_int_equal(n, strlen(raw));
    assert_memory_equal(dec, raw, n);
    free(enc);
    free(dec);
    assert_null(toro_b64url_decode("a$b", &n));
    long v;
    assert_int_equal(toro_parse_long("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(toro_parse_long("101", 1, 100, &v), TORO_EINVAL);
    assert_int_equal(toro_parse_long("4x", 1, 100, &v), TORO_EINVAL);
    assert_int_equal(toro_parse_long("", 1, 100, &v), TORO_EINVAL);
}

/* Sources: typed from the answer to the store column and the wire, the
 * same six fields always present as strings. */
static void test_sources_codec(void **state)
{
    (void)state;
    toro_source_t in[2] = {{.doc_id = "cdb", .title = "CDB", .section = "Tributação", .chunk_id = "cdb#3",
                            .snippet = "22,5% até 180 dias", .score = 6.5},
                           {.doc_id = "fgc", .score = 1.25}}; /* missing strings */
    char *text = toro_sources_dump(in, 2);
    assert_non_null(text);
    toro_source_t *out = NULL;
    size_t n = 0;
    assert_int_equal(toro_sources_load(text, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].section, "Tributação");
    assert_string_equal(out[0].snippet, "22,5% até 180 dias");
    assert_true(out[0].score == 6.5);
    assert_string_equal(out[1].doc_id, "fgc");
    assert_string_equal(out[1].title, ""); /* written as "" on the wire, read back as "" */
    json_t *j = toro_sources_to_json(out, n);
    assert_int_equal(json_array_size(j), 2);
    static const char *const keys[] = {"doc_id", "title", "section", "chunk_id", "snippet"};
    for (size_t i = 0; i < 5; i++)
        assert_true(json_is_string(json_object_get(json_array_get(j, 1), keys[i])));
    assert_true(json_is_number(json_object_get(json_array_get(j, 1), "score")));
    json_decref(j);
    toro_sources_free(out, n);
    free(text);
    /* old rows: fields missing stay NULL; not an array is refused; NULL is none */
    assert_int_equal(toro_sources_load("[{\"doc_id\":\"x\",\"score\":2}, 7]", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_null(out[0].title);
    toro_sources_free(out, n);
    assert_int_equal(toro_sources_load("{\"doc_id\":1}", &out, &n), TORO_EFORMAT);
    assert_int_equal(toro_sources_load(NULL, &out, &n), 0);
    assert_int_equal(n, 0);
    assert_null(out);
    toro_sources_free(NULL, 0);
}

static void test_conversation_field(void **state)
{
    (void)state;
    char *u = NULL, *q = NULL, *c = NULL;
    const char *err = NULL;
    const char *ok = "{\"question\":\"E a LCA?\",\"conversation_id\":\"0a1b2c3d-0000-4000-8000-00000000abcd\"}";
    assert_int_equal(toro_question_validate_conv(ok, strlen(ok), true, &u, &q, &c, &err), 0);
    assert_null(u);
    assert_string_equal(q, "E a LCA?");
    assert_string_equal(c, "0a1b2c3d-0000-4000-8000-00000000abcd");
    free(q);
    free(c);
    const char *none = "{\"question\":\"Oi?\"}";
    assert_int_equal(toro_question_validate_conv(none, strlen(none), true, &u, &q, &c, &err), 0);
    assert_null(c);
    free(q);
    /* the plain validator keeps refusing the field */
    assert_int_equal(toro_question_validate(ok, strlen(ok), true, &u, &q, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "unknown field"));
    const char *bad[] = {"{\"question\":\"x\",\"conversation_id\":null}",
                         "{\"question\":\"x\",\"conversation_id\":7}",
                         "{\"question\":\"x\",\"conversation_id\":\"\"}",
                         "{\"question\":\"x\",\"conversation_id\":\"0A1B2C3D-0000-4000-8000-00000000ABCD\"}",
                         "{\"question\":\"x\",\"conversation_id\":\"0a1b2c3d-0000-4000-8000-00000000abcd \"}",
                         "{\"question\":\"x\",\"conversation_id\":\"0a1b2c3d00000-4000-8000-00000000abcd\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = (char *)1;
        assert_int_equal(toro_question_validate_conv(bad[i], strlen(bad[i]), true, &u, &q, &c, &err), TORO_EINVAL);
        assert_null(c);
        assert_non_null(strstr(err, "conversation_id"));
    }
    /* the record's JSON carries both fields, null when absent */
    toro_question_t rec = {.user_id = "a", .question_id = "b", .question = "c", .conversation_id = "d",
                           .retrieval_query = "e"};
    json_t *o = toro_question_to_json(&rec);
    assert_string_equal(json_string_value(json_object_get(o, "conversation_id")), "d");
    assert_string_equal(json_string_value(json_object_get(o, "retrieval_query")), "e");
    json_decref(o);
    rec.conversation_id = rec.retrieval_query = NULL;
    o = toro_question_to_json(&rec);
    assert_true(json_is_null(json_object_get(o, "conversation_id")));
    assert_true(json_is_null(json_object_get(o, "retrieval_query")));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_table), cmocka_unit_test(test_length_counts_characters),
        cmocka_unit_test(test_user_id_limit),    cmocka_unit_test(test_status_machine),
        cmocka_unit_test(test_event_codec),      cmocka_unit_test(test_util),
        cmocka_unit_test(test_sources_codec),    cmocka_unit_test(test_conversation_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
