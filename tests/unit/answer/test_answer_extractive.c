/* test_answer_extractive.c: the extractive answerer on the hand-made corpus:
 * grounded answers that cite only retrieved chunks, the exact "no
 * information" answers, language of the answer, concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "answer/answer.h"
#include "answer_fixture.h"
#include "kb/index.h"
#include "kb/kb.h"

static int setup(void **state)
{
    (void)state;
    return answer_fixture_setup("tests/data/kb/corpus");
}

static int teardown(void **state)
{
    (void)state;
    return answer_fixture_teardown();
}

/* Every [n] in the text refers to a source; every source is cited; every
 * source is a chunk the retriever returned for the question. */
static void check_citations(const char *question, const toro_answer_t *a)
{
    toro_kb_hit_t *h = NULL;
    size_t nh = 0;
    assert_int_equal(toro_kb_search(kb, question, 20, &h, &nh), 0);
    assert_true(a->n_sources >= 1);
    for (size_t i = 0; i < a->n_sources; i++) {
        char m[32];
        snprintf(m, sizeof(m), "[%zu]", i + 1);
        assert_non_null(strstr(a->text, m));
        int retrieved = 0;
        for (size_t j = 0; j < nh; j++)
            if (strcmp(h[j].chunk_id, a->sources[i].chunk_id) == 0) {
                retrieved = 1;
                assert_string_equal(h[j].doc_id, a->sources[i].doc_id);
                assert_true(a->sources[i].score == h[j].score);
                char pre[16];
                snprintf(pre, sizeof(pre), "%.15s", a->sources[i].snippet); /* the snippet quotes the chunk */
                assert_non_null(strstr(h[j].text, pre));
            }
        assert_true(retrieved);
        assert_true(strlen(a->sources[i].snippet) > 0);
    }
    char m[32];
    snprintf(m, sizeof(m), "[%zu]", a->n_sources + 1);
    assert_null(strstr(a->text, m));
    toro_kb_hits_free(h, nh);
}

static void test_grounded_answer(void **state)
{
    (void)state;
    const char *q = "Qual o limite de garantia do FGC no CDB?";
    toro_answer_t a;
    char *err = NULL;
    assert_int_equal(toro_answerer_answer(ans, q, &a, &err), 0);
    assert_null(err);
    assert_true(a.found_relevant_docs);
    assert_non_null(strstr(a.text, "R$ 250.000"));
    assert_string_equal(a.sources[0].doc_id, "cdb");
    assert_string_equal(a.sources[0].chunk_id, "cdb#1");
    assert_string_equal(a.sources[0].section, "Garantia");
    assert_string_equal(a.model, "extractive");
    assert_string_equal(a.kb_version, toro_kb_version(kb));
    assert_true(strlen(a.text) < 1200);
    check_citations(q, &a);
    toro_answer_clear(&a);
    assert_null(a.text);
    toro_answer_clear(&a); /* twice is fine */
}

static void test_list_items_and_english(void **state)
{
    (void)state;
    toro_answer_t a;
    char *err = NULL;
    const char *q = "Como rende o CDB prefixado?";
    assert_int_equal(toro_answerer_answer(ans, q, &a, &err), 0);
    assert_true(a.found_relevant_docs);
    assert_non_null(strstr(a.text, "- Prefixado: taxa definida na aplicação"));
    check_citations(q, &a);
    toro_answer_clear(&a);
    q = "Are dividends taxed in Brazil?";
    assert_int_equal(toro_answerer_answer(ans, q, &a, &err), 0);
    assert_true(a.found_relevant_docs);
    assert_non_null(strstr(a.text, "exempt from income tax"));
    assert_string_equal(a.sources[0].doc_id, "stocks");
    check_citations(q, &a);
    toro_answer_clear(&a);
}

static void test_no_information(void **state)
{
    (void)state;
    const char *pt[] = {"Qual a receita de bolo de cenoura?", "Quem descobriu o Brasil?", "?"};
    const char *en[] = {"Who won the 1970 World Cup?", "How do I bake sourdough bread?"};
    for (size_t i = 0; i < 3; i++) {
        toro_answer_t a;
        char *err = NULL;
        assert_int_equal(toro_answerer_answer(ans, pt[i], &a, &err), 0);
        assert_false(a.found_relevant_docs);
        assert_string_equal(a.text, TORO_NO_INFO_PT);
        assert_string_equal(a.text, "Não tenho informações suficientes para responder a essa pergunta.");
        assert_int_equal(a.n_sources, 0);
        assert_null(a.sources);
        assert_string_equal(a.model, "extractive");
        assert_non_null(a.kb_version);
        toro_answer_clear(&a);
    }
    for (size_t i = 0; i < 2; i++) {
        toro_answer_t a;
        char *err = NULL;
        assert_int_equal(toro_answerer_answer(ans, en[i], &a, &err), 0);
        assert_false(a.found_relevant_docs);
        assert_string_equal(a.text, TORO_NO_INFO_EN);
        assert_int_equal(a.n_sources, 0);
        toro_answer_clear(&a);
    }
}

static void *answer_loop(void *arg)
{
    int *ok = arg;
    *ok = 1;
    for (int i = 0; i < 100; i++) {
        toro_answer_t a;
        char *err = NULL;
        const char *q = i % 2 ? "Qual o limite de garantia do FGC no CDB?" : "Qual a receita de bolo de cenoura?";
        if (toro_answerer_answer(ans, q, &a, &err) != 0 || a.found_relevant_docs != (i % 2 == 1))
            *ok = 0;
        free(err);
        toro_answer_clear(&a);
    }
    return NULL;
}

static void test_concurrent_answers(void **state)
{
    (void)state;
    pthread_t t[4];
    int ok[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, answer_loop, &ok[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(ok[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grounded_answer),
        cmocka_unit_test(test_list_items_and_english),
        cmocka_unit_test(test_no_information),
        cmocka_unit_test(test_concurrent_answers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
