/* test_answer_select.c: how the extractive answerer chooses what it says
 * (src/answer/ext_*.c): the retrieved chunk's own score against a title
 * that names nothing asked, a definition that names only part of the
 * question or defines another thing named with it, stems matched across
 * derivations and typing slips (and -m/-ns plurals, "20k" as "R$ 20
 * mil", -ção nouns and -to participles, "por dia" as "diária", a
 * question's holding period inside a stated range of days) but never on
 * short stems, and picked
 * neighbours of one paragraph joined into one passage, and each part of
 * a two-part question answered by its own words, a typo read as the
 * knowledge base's closest word, a list with the sentence that closes it,
 * a one-line definition with the sentence after it, a lead from a chunk
 * about the question over a close one from a chunk that is not, each
 * side's own section for a question on a difference, a formula set apart
 * after the sentence that introduces it.
 * Corpus:
 * tests/unit/answer/corpus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "answer/answer.h"
#include "answer/ext.h"
#include "answer_fixture.h"

static int setup(void **state)
{
    (void)state;
    return answer_fixture_setup("tests/unit/answer/corpus");
}

static int teardown(void **state)
{
    (void)state;
    return answer_fixture_teardown();
}

/* "Marcação a mercado é …" defines a word of the question ("mercado") but
 * not what is asked; the sentence that names the whole question, in a
 * document whose title ("Ações") names none of it, leads. */
static void test_partial_definition_does_not_lead(void **state)
{
    (void)state;
    double min_rel = toro_kb_min_relevance(kb);
    toro_kb_set_min_relevance(kb, 0.3); /* both documents read, as a dense retrieval would give them */
    toro_answer_t a = {0};
    answer_fixture_ask("o que é o mercado fracionário?", &a);
    if (strncmp(a.text, "As ações são negociadas", 23) != 0 || !strstr(a.text, "1 a 99"))
        fail_msg("the lead should be the sentence on the fractional market:\n%s", a.text);
    toro_answer_clear(&a);
    answer_fixture_ask("o que é marcação a mercado?", &a); /* the whole subject: the definition leads */
    if (strncmp(a.text, "Marcação a mercado é o processo", 31) != 0)
        fail_msg("the definition should lead:\n%s", a.text);
    toro_answer_clear(&a);
    toro_kb_set_min_relevance(kb, min_rel);
}

/* "O Tesouro Selic (…) é um título …" names "Selic" in its subject but
 * defines something else; "A Selic é a taxa …" defines what is asked. */
static void test_definition_of_the_word_itself(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("selic significa o que", &a);
    if (strncmp(a.text, "A Selic é a taxa básica", 23) != 0)
        fail_msg("the definition of the Selic itself should lead:\n%s", a.text);
    toro_answer_clear(&a);
}

/* A one-line definition reads on into the next sentence of its paragraph,
 * in the lead, though that sentence repeats no question word and other
 * sentences name the word more often. */
static void test_terse_definition_reads_on(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("o que é custódia?", &a);
    const char *end = strstr(a.text, "\n\n"), *next = strstr(a.text, "O registro fica na central depositária");
    if (strncmp(a.text, "A custódia é a guarda", 21) != 0 || !next || (end && next > end))
        fail_msg("the sentence after a terse definition should join the lead:\n%s", a.text);
    toro_answer_clear(&a);
}

/* A comparison: the table contrasts the sides, and each side still gets
 * the sentence that says what it is. */
static void test_comparison_names_each_side(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("qual a diferença entre prefixado e pós-fixado?", &a);
    if (!strstr(a.text, "definida no momento da compra") || !strstr(a.text, "acompanha um indicador"))
        fail_msg("each side should be said:\n%s", a.text);
    toro_answer_clear(&a);
}

static void test_derivations_and_slips(void **state)
{
    (void)state;
    static const char *const same[][2] = {
        {"quando liquidam as ações", "A liquidação das ações ocorre em dois dias."}, /* liquidam / liquidação */
        {"poupansa rende quanto", "A poupança rende pouco."},                         /* a typing slip */
        {"previdensia privada", "A previdência privada tem regras próprias."},
        {"debênture comum paga ir", "As debêntures comuns pagam IR."}, /* -m / -ns plural */
        {"isenção de 20k", "Há isenção até R$ 20 mil."},                 /* "20k" as the text writes it */
        {"tesouro ipca", "O Tesouro IPCA+ protege da inflação."},        /* a product name's glued '+' */
        {"isentos de ir", "As isenções de IR valem para a LCI."},       /* a -to participle and its -ção noun */
        {"quanto rende por dia", "A taxa diária rende pouco."},          /* "por dia" is "diário" */
        {"rende ao dia", "Rende diariamente."},
        {"cdb por 2 anos", "No CDB, 15% acima de 720 dias."},            /* a period inside the stated range */
        {"resgate em 200 dias", "Resgate: 20% de 181 a 360 dias."},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int m = 0, t = 0;
        assert_int_equal(toro_answer_sentence_match(same[i][0], same[i][1], "pt", &m, &t), 0);
        if (m != t || t == 0)
            fail_msg("'%s' vs '%s': %d of %d words", same[i][0], same[i][1], m, t);
    }
    int m = 0, t = 0; /* English ranges too */
    assert_int_equal(toro_answer_sentence_match("tax if held for 3 months", "Tax if held up to 180 days: 22.5%.", "en",
                                                &m, &t), 0);
    if (m != t || t == 0)
        fail_msg("3 months in 'up to 180 days': %d of %d words", m, t);
    static const char *const other[][2] = {
        {"custo alto", "A custódia é cobrada."},            /* short stems must be equal */
        {"20k", "Há isenção até R$ 20."},                   /* thousands, not the bare number */
        {"2 anos", "A alíquota é 22,5% até 180 dias."},     /* a period outside the stated range */
        {"hoje em dia", "A taxa diária muda."},             /* "dia" alone stays a stop word */
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        m = t = 0;
        assert_int_equal(toro_answer_sentence_match(other[i][0], other[i][1], "pt", &m, &t), 0);
        if (m != 0)
            fail_msg("'%s' vs '%s': %d words matched", other[i][0], other[i][1], m);
    }
}

/* Units of one chunk: para and picked per unit (kind: all sentences). */
static void units_of(sel_t *s, unit_t *u, const int *para, const int *picked, size_t n, int nblocks)
{
    memset(s, 0, sizeof *s);
    memset(u, 0, n * sizeof *u);
    for (size_t i = 0; i < n; i++)
        u[i].para = para[i], u[i].picked = picked[i], u[i].kind = U_SENTENCE;
    s->units = u;
    s->nu = n;
    s->nblocks = nblocks;
}

static void test_neighbours_join(void **state)
{
    (void)state;
    sel_t s;
    unit_t u[6];
    /* lead = unit 0; point 2 = unit 2 (one sentence between), point 3 = unit 5 */
    units_of(&s, u, (const int[]){0, 0, 0, 1, 1, 1}, (const int[]){1, 0, 2, 0, 0, 3}, 6, 3);
    assert_true(toro_ext_join_neighbors(&s));
    assert_int_equal(s.nblocks, 2);
    assert_int_equal(u[0].picked, 1);
    assert_int_equal(u[1].picked, 1); /* the sentence between joins the lead */
    assert_int_equal(u[2].picked, 1);
    assert_int_equal(u[5].picked, 2); /* the later block moved down */
    assert_false(toro_ext_join_neighbors(&s));
    /* two sentences between, or another paragraph: no join */
    units_of(&s, u, (const int[]){0, 0, 0, 0, 1, 1}, (const int[]){1, 0, 0, 2, 3, 0}, 6, 3);
    assert_false(toro_ext_join_neighbors(&s));
    assert_int_equal(s.nblocks, 3);
    /* a unit left out on purpose (-2: never) stops the join */
    units_of(&s, u, (const int[]){0, 0, 0, 0, 0, 0}, (const int[]){1, -2, 2, 0, 0, 0}, 6, 2);
    assert_false(toro_ext_join_neighbors(&s));
}

/* A lead from a chunk that is not about the question gives way to the best
 * unit of one that is, when it scores at least ON_TOPIC_LEAD of the lead;
 * a lead from an on-topic chunk, or without a close rival, stays. */
static void test_lead_prefers_on_topic_chunk(void **state)
{
    (void)state;
    sel_t s;
    unit_t u[5];
    units_of(&s, u, (const int[]){0, 0, 0, 0, 0}, (const int[]){0, 0, 0, 0, 0}, 5, 0);
    /* unit 0: chunk 0 (off topic), the best score; units 1..4: chunk 1 (on topic) */
    const double score[5] = {1.0, 0.7, 0.85, 0.9, 0.95};
    for (size_t i = 0; i < 5; i++)
        u[i].hit = i == 0 ? 0 : 1, u[i].score = score[i], u[i].gmask = 1;
    u[4].gmask = 0; /* matches no question word (nor does its heading): never a lead */
    s.on_topic[1] = true;
    assert_int_equal(toro_ext_prefer_on_topic(&s, 0), 3);
    u[3].picked = 1; /* already taken: the next best on-topic unit */
    assert_int_equal(toro_ext_prefer_on_topic(&s, 0), 2);
    u[2].score = 0.75; /* no on-topic unit close enough: the lead stays */
    assert_int_equal(toro_ext_prefer_on_topic(&s, 0), 0);
    s.head[1] = 1; /* its heading names the question: unit 4 may lead */
    assert_int_equal(toro_ext_prefer_on_topic(&s, 0), 4);
    s.on_topic[0] = true; /* the lead's own chunk is about the question: it stays */
    assert_int_equal(toro_ext_prefer_on_topic(&s, 0), 0);
}

/* "o que é X e como é tributado" asks two things: the lead answers the
 * first (the definition of X), not the item that names X and "tributação"
 * and so matches more of the whole question; the item still follows. */
static void test_first_part_answered_first(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("o que é bonificação e como é tributada?", &a);
    if (strncmp(a.text, "A bonificação é a distribuição", 31) != 0 || !strstr(a.text, "a tributação só vem na venda"))
        fail_msg("the definition should lead, the item on taxes follow:\n%s", a.text);
    toro_answer_clear(&a);
}

/* "horaro" is no word of the knowledge base and too short for the
 * answerer's own slip matching; read as retrieval reads it ("horário"),
 * the sentence that names it leads, not the one that names only
 * "bonificadas". */
static void test_typo_read_as_retrieval_reads(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("qual o horaro das bonificadas", &a);
    if (strncmp(a.text, "O crédito cai no horário noturno", 33) != 0)
        fail_msg("the sentence on the time should lead:\n%s", a.text);
    toro_answer_clear(&a);
}

/* "pgbl x vgbl" asks what sets the two apart: each plan's own section says
 * it, though its items never name the plan and a sentence naming both
 * exists; the formula a sentence introduces comes on its own line. */
static void test_difference_takes_each_sides_section(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("pgbl x vgbl qual a diferença", &a);
    if (!strstr(a.text, "incide sobre o valor total") || !strstr(a.text, "incide apenas sobre os rendimentos"))
        fail_msg("each plan's section should be said:\n%s", a.text);
    toro_answer_clear(&a);
    answer_fixture_ask("como é calculado o imposto do resgate da previdência?", &a);
    if (!strstr(a.text, "calculado assim:\nImposto = base do plano"))
        fail_msg("the formula should follow its sentence on its own line:\n%s", a.text);
    toro_answer_clear(&a);
}

/* The short sentence right after a list that names a question word closes
 * the list: it stays in the list's block, not a separate point. */
static void test_list_brings_its_closing(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    answer_fixture_ask("como fica a declaração da bonificação?", &a);
    if (strncmp(a.text, "Na declaração anual:", 20) != 0 ||
        !strstr(a.text, "no custo total.\nSem informe da empresa, o custo declarado é zero. [1]"))
        fail_msg("the list should lead with its closing sentence:\n%s", a.text);
    toro_answer_clear(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_definition_does_not_lead),
        cmocka_unit_test(test_definition_of_the_word_itself),
        cmocka_unit_test(test_comparison_names_each_side),
        cmocka_unit_test(test_difference_takes_each_sides_section),
        cmocka_unit_test(test_derivations_and_slips),
        cmocka_unit_test(test_neighbours_join),
        cmocka_unit_test(test_first_part_answered_first),
        cmocka_unit_test(test_typo_read_as_retrieval_reads),
        cmocka_unit_test(test_list_brings_its_closing),
        cmocka_unit_test(test_terse_definition_reads_on),
        cmocka_unit_test(test_lead_prefers_on_topic_chunk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
