/* test_answer_sample_kb.c: the extractive answerer on the sample knowledge
 * base (kb/docs): definitional questions open with the defining sentence,
 * English questions prefer English documents, the cross-language note is
 * followed by the answer without empty paragraphs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer/answer.h"
#include "answer_fixture.h"
#include "kb/index.h"
#include "kb/kb.h"

static int setup(void **state)
{
    (void)state;
    return answer_fixture_setup("kb/docs");
}

static int teardown(void **state)
{
    (void)state;
    return answer_fixture_teardown();
}

static void ask(const char *q, toro_answer_t *a)
{
    char *err = NULL;
    assert_int_equal(toro_answerer_answer(ans, q, a, &err), 0);
    assert_null(err);
    assert_true(a->found_relevant_docs);
    assert_null(strstr(a->text, "\n\n\n")); /* no empty paragraphs */
}

static void test_definitions_open_the_answer(void **state)
{
    (void)state;
    static const struct {
        const char *q, *opening;
    } cases[] = {
        {"o que é CDI?", "O CDI é"},
        {"O que é LCI?", "LCI (Letra de Crédito Imobiliário)"},
        {"o que é come-cotas", "O come-cotas é"},
        {"What is Tesouro Direto?", "Tesouro Direto is"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        toro_answer_t a = {0};
        ask(cases[i].q, &a);
        if (strncmp(a.text, cases[i].opening, strlen(cases[i].opening)) != 0)
            fail_msg("'%s' should open with '%s', got: %.120s", cases[i].q, cases[i].opening, a.text);
        toro_answer_clear(&a);
    }
}

static void test_english_question_prefers_english_documents(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    ask("What is the FGC limit?", &a);
    assert_true(a.n_sources >= 1);
    assert_int_equal(strncmp(a.sources[0].doc_id, "en-", 3), 0);
    assert_non_null(strstr(a.text, "250,000"));
    assert_null(strstr(a.text, "content in Portuguese"));
    toro_answer_clear(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions_open_the_answer),
        cmocka_unit_test(test_english_question_prefers_english_documents),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
