/* test_rewrite.c: the rule-based follow-up rewrite (stages/rewrite.h):
 * which questions are follow-ups, a new subject replacing the previous one,
 * a new predicate carrying the previous subject, pronouns, the newest
 * earlier turn with a subject, and standalone questions left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "stages/rewrite.h"

/* The rewrite of q after the single earlier question prev (caller frees; NULL = none). */
static char *rw(const char *q, const char *prev)
{
    char *out = (char *)1;
    const char *p[] = {prev};
    assert_int_equal(toro_rewrite_followup(q, p, prev ? 1 : 0, &out), 0);
    return out;
}

static void expect(const char *q, const char *prev, const char *want)
{
    char *got = rw(q, prev);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_detection(void **state)
{
    (void)state;
    const char *follow[] = {"E a LCA?", "e quanto rende?", "and for FIIs?", "What about LCIs?", "LCA?",
                            "Qual o prazo dele?", "E quanto à poupança?", "E se eu resgatar antes?",
                            "Tesouro Direto?", "and its fees?"};
    const char *alone[] = {"Quanto rende o CDB?", "O que é a poupança?", "How are CDBs taxed?",
                           "É possível resgatar o CDB antes do vencimento?",
                           "Qual a diferença entre LCI e LCA para quem investe pouco?", "", "?"};
    for (size_t i = 0; i < sizeof follow / sizeof follow[0]; i++)
        assert_true(toro_rewrite_is_followup(follow[i]));
    for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++)
        assert_false(toro_rewrite_is_followup(alone[i]));
}

static void test_new_subject_replaces_the_previous_one(void **state)
{
    (void)state;
    expect("E a LCA?", "Quanto rende o CDB?", "Quanto rende o LCA?");
    expect("and for FIIs?", "How are CDBs taxed?", "How are FIIs taxed?");
    expect("What about LCIs?", "What is the minimum investment in a CDB?", "What is the minimum investment in a LCIs?");
    expect("and what about ETFs?", "How are FIIs taxed?", "How are ETFs taxed?");
    expect("E no caso de FIIs?", "Qual o imposto sobre ações?", "Qual o imposto sobre FIIs?");
    /* a repeated preposition says what is replaced, before any acronym */
    expect("E sobre FIIs?", "Qual o IR sobre ações?", "Qual o IR sobre FIIs?");
    expect("And for ETFs?", "What is the tax rate for stocks?", "What is the tax rate for ETFs?");
    expect("O FGC cobre isso?", "O que é LCA?", "O FGC cobre LCA?");
    /* no acronym before: the trailing noun phrase is the subject */
    expect("E o Tesouro Direto?", "Como funciona a poupança?", "Como funciona a Tesouro Direto?");
    expect("E quanto à LCI?", "Qual o imposto de renda sobre o CDB?", "Qual o imposto de renda sobre o LCI?");
}

static void test_new_predicate_keeps_the_previous_subject(void **state)
{
    (void)state;
    expect("e quanto rende?", "O que é LCA?", "e quanto rende LCA?");
    expect("Qual o prazo dele?", "O que é CDB?", "Qual o prazo CDB?");
    expect("and its fees?", "How do FIIs work?", "and FIIs fees?");
    expect("what about its fees?", "What is Tesouro Direto?", "what about Tesouro Direto fees?");
    expect("Quanto ele cobre?", "O que é o FGC?", "Quanto FGC cobre?");
    /* a lower-case noun after "e" is an attribute of the same subject */
    expect("E o prazo?", "Quanto rende o CDB?", "E o prazo CDB?");
    /* the subject already named is not repeated; nothing added: no rewrite */
    expect("E se eu resgatar antes?", "Quanto rende o CDB?", "E se eu resgatar antes CDB?");
    assert_null(rw("E se eu resgatar o CDB antes?", "Quanto rende o CDB?"));
}

static void test_uses_the_newest_turn_with_a_subject(void **state)
{
    (void)state;
    char *out = NULL;
    const char *prev[] = {"ok!!", "Quanto rende o CDB?"};
    assert_int_equal(toro_rewrite_followup("E a LCA?", prev, 2, &out), 0);
    assert_string_equal(out, "Quanto rende o LCA?");
    free(out);
    /* a chain: the previous turn's own standalone form is what it offers */
    const char *chain[] = {"Quanto rende o LCA?", "Quanto rende o CDB?"};
    assert_int_equal(toro_rewrite_followup("e a LCI?", chain, 2, &out), 0);
    assert_string_equal(out, "Quanto rende o LCI?");
    free(out);
}

static void test_standalone_and_no_context(void **state)
{
    (void)state;
    assert_null(rw("O que é a poupança?", "Quanto rende o CDB?"));
    assert_null(rw("How are CDBs taxed?", "What is an FII?"));
    assert_null(rw("E a LCA?", NULL));             /* first question of a conversation */
    assert_null(rw("E a LCA?", "??"));             /* nothing to lean on */
    char *out = (char *)1;
    assert_int_equal(toro_rewrite_followup("E a LCA?", NULL, 0, &out), 0);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detection),
        cmocka_unit_test(test_new_subject_replaces_the_previous_one),
        cmocka_unit_test(test_new_predicate_keeps_the_previous_subject),
        cmocka_unit_test(test_uses_the_newest_turn_with_a_subject),
        cmocka_unit_test(test_standalone_and_no_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
