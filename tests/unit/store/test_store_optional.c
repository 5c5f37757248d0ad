/* test_store_optional.c: a store written for an earlier ops version (or
 * without the conversation methods) keeps working: the wrappers answer
 * TORO_ENOTSUP for conversations, ingest gives new questions no
 * conversation there and refuses a conversation_id with TORO_ENOTSUP (the
 * routes' 501); without get_question_and_connections the wrapper reads
 * the question and then the connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "stages/stages.h"
#include "store/store.h"

static int never_called(void)
{
    fail_msg("a conversation method of an older store was called");
    return TORO_EIO;
}

static int list_turns_stub(toro_store_t *s, const char *u, const char *c, bool nf, int l, const char *cur,
                           toro_question_t **items, size_t *n, char **next)
{
    (void)s, (void)u, (void)c, (void)nf, (void)l, (void)cur, (void)items, (void)n, (void)next;
    return never_called();
}

static int list_conversations_stub(toro_store_t *s, const char *u, int l, const char *cur,
                                   toro_conversation_t **items, size_t *n, char **next)
{
    (void)s, (void)u, (void)l, (void)cur, (void)items, (void)n, (void)next;
    return never_called();
}

static void test_older_store(void **state)
{
    (void)state;
    /* version 3 (feedback, before conversations) with the slots filled: the
     * version says they are not there */
    toro_store_ops_t ops = {.name = "old", .version = 3, .list_turns = list_turns_stub,
                            .list_conversations = list_conversations_stub};
    toro_store_t store = {.ops = &ops};
    toro_question_t *items = (toro_question_t *)1;
    toro_conversation_t *convs = (toro_conversation_t *)1;
    size_t n = 7;
    char *next = (char *)1;
    assert_false(toro_store_has_conversations(&store));
    assert_int_equal(toro_store_list_turns(&store, "ana", "c", false, 5, NULL, &items, &n, &next), TORO_ENOTSUP);
    assert_null(items);
    assert_int_equal(n, 0);
    assert_null(next);
    assert_int_equal(toro_store_list_conversations(&store, "ana", 5, NULL, &convs, &n, &next), TORO_ENOTSUP);
    assert_null(convs);

    /* ingest on such a store: no conversation for a new question; a given one is ENOTSUP */
    toro_stage_ctx_t ctx;
    toro_stage_ctx_defaults(&ctx);
    ctx.store = &store;
    toro_ingest_item_t item;
    const char *err = NULL;
    const char *plain = "{\"question\":\"Quanto rende o CDB?\"}";
    assert_int_equal(toro_stage_ingest_prepare(&ctx, plain, strlen(plain), "ana", &item, &err), 0);
    assert_null(item.q.conversation_id);
    assert_non_null(item.q.question_id);
    toro_ingest_item_clear(&item);
    const char *cont = "{\"question\":\"E a LCA?\",\"conversation_id\":\"0a1b2c3d-0000-4000-8000-00000000abcd\"}";
    assert_int_equal(toro_stage_ingest_prepare(&ctx, cont, strlen(cont), "ana", &item, &err), TORO_ENOTSUP);
    assert_null(item.q.question_id);
    toro_ingest_item_clear(&item);

    /* the current version without the optional methods: the same defaults */
    toro_store_ops_t bare = {.name = "bare", .version = TORO_STORE_OPS_VERSION};
    store.ops = &bare;
    assert_false(toro_store_has_conversations(&store));
    assert_int_equal(toro_store_list_turns(&store, "ana", "c", true, 1, NULL, &items, &n, &next), TORO_ENOTSUP);
}

/* A version 4 store (no get_question_and_connections): the wrapper reads
 * the question, then the user's connections; a failed second read leaves q
 * clear. */
static int list_conns_rc;

static int get_q(toro_store_t *s, const char *qid, toro_question_t *out)
{
    (void)s;
    if (strcmp(qid, "q1") != 0)
        return TORO_ENOTFOUND;
    *out = (toro_question_t){.question_id = strdup(qid), .user_id = strdup("ana")};
    return 0;
}

static int list_conns(toro_store_t *s, const char *uid, toro_connection_t **out, size_t *n)
{
    (void)s;
    if (list_conns_rc)
        return list_conns_rc;
    *out = calloc(1, sizeof **out);
    (*out)[0] = (toro_connection_t){strdup("c1"), strdup(uid), strdup("node"), 1};
    *n = 1;
    return 0;
}

static int get_conns_stub(toro_store_t *s, const char *qid, const char *uid, toro_question_t *q,
                          toro_connection_t **conns, size_t *n)
{
    (void)s, (void)qid, (void)uid, (void)q, (void)conns, (void)n;
    fail_msg("get_question_and_connections of a version 4 store was called");
    return TORO_EIO;
}

static void test_question_and_connections_default(void **state)
{
    (void)state;
    toro_store_ops_t ops = {.name = "v4", .version = 4, .get_question = get_q, .list_connections = list_conns,
                            .get_question_and_connections = get_conns_stub};
    toro_store_t store = {.ops = &ops};
    toro_question_t q = {0};
    toro_connection_t *conns = NULL;
    size_t n = 0;
    assert_int_equal(toro_store_get_question_and_connections(&store, "q1", "ana", &q, &conns, &n), 0);
    assert_string_equal(q.question_id, "q1");
    assert_int_equal(n, 1);
    assert_string_equal(conns[0].user_id, "ana");
    toro_question_clear(&q);
    toro_connections_free(conns, n);
    assert_int_equal(toro_store_get_question_and_connections(&store, "q2", "ana", &q, &conns, &n), TORO_ENOTFOUND);
    assert_null(conns);
    list_conns_rc = TORO_EIO;
    assert_int_equal(toro_store_get_question_and_connections(&store, "q1", "ana", &q, &conns, &n), TORO_EIO);
    assert_null(q.question_id);
    assert_null(conns);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_older_store),
        cmocka_unit_test(test_question_and_connections_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
