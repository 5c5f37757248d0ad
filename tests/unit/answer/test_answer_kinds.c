/* test_answer_kinds.c: question kinds and sentence features (qkind.h), and
 * the shape of extractive answers on the sample knowledge base (kb/docs):
 * tables stay Markdown tables, an example comes with its lines, at most a
 * lead and three points, no sentence twice, singular/plural and accents do
 * not change the opening, advice and live-data questions open with the
 * fixed no-recommendation note. */
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
#include "answer/qkind.h"
#include "kb/analyzer.h"
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

static void test_question_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        unsigned want, not;
    } cases[] = {
        {"O que é CDI?", TORO_Q_DEFINITION, TORO_Q_YESNO | TORO_Q_ADVICE},
        {"o que e cdi", TORO_Q_DEFINITION, TORO_Q_YESNO},
        {"What is Tesouro Direto?", TORO_Q_DEFINITION, TORO_Q_YESNO},
        {"Como funciona o Tesouro Selic e quando devo usá-lo?", TORO_Q_DEFINITION | TORO_Q_TIME,
         TORO_Q_HOWTO | TORO_Q_ADVICE},
        {"Qual a alíquota de IR no CDB?", TORO_Q_AMOUNT, TORO_Q_YESNO},
        {"quanto de imposto pago?", TORO_Q_AMOUNT, 0},
        {"How much tax do I pay?", TORO_Q_AMOUNT, 0},
        {"Em quais meses acontece o come-cotas?", TORO_Q_TIME, 0},
        {"quando cai o dinheiro da venda?", TORO_Q_TIME, 0},
        {"When is the DARF due?", TORO_Q_TIME, 0},
        {"Como abro conta na corretora?", TORO_Q_HOWTO, TORO_Q_DEFINITION},
        {"How do I open an account?", TORO_Q_HOWTO, 0},
        {"CDB paga imposto de renda? Qual a alíquota?", TORO_Q_YESNO | TORO_Q_AMOUNT, 0},
        {"LCI tem FGC?", TORO_Q_YESNO, TORO_Q_DEFINITION},
        {"Qual a diferença entre LCI e CDB?", TORO_Q_COMPARISON, TORO_Q_YESNO},
        {"difference between PGBL and VGBL", TORO_Q_COMPARISON | TORO_Q_DIFFERENCE, 0},
        {"pgbl x vgbl", TORO_Q_COMPARISON | TORO_Q_DIFFERENCE, 0},
        {"onde deixar a reserva de emergência", TORO_Q_PLACE, TORO_Q_DIFFERENCE},
        {"difrença entre lci e cdb", TORO_Q_COMPARISON | TORO_Q_DIFFERENCE, 0}, /* one slip in a long word */
        {"aliqota do ir no cdb", TORO_Q_AMOUNT, 0},
        {"quanto rende o cdb", TORO_Q_AMOUNT, TORO_Q_TIME}, /* short words never slip into each other */
        {"Where do I declare my stocks?", TORO_Q_PLACE, 0},
        {"renda fixa ou renda variável, qual é melhor?", TORO_Q_COMPARISON, TORO_Q_DIFFERENCE}, /* a choice */
        {"Devo comprar ações da Petrobras?", TORO_Q_ADVICE, 0},
        {"Should I buy Vale shares now?", TORO_Q_ADVICE, 0},
        {"Qual o preço da ação da Petrobras hoje?", TORO_Q_LIVE, 0},
        {"A bolsa vai subir amanhã?", TORO_Q_ADVICE, 0},
        {"O que é FII?", TORO_Q_DEFINITION, TORO_Q_ADVICE | TORO_Q_LIVE},
        {"oq é bdr", TORO_Q_DEFINITION, TORO_Q_YESNO}, /* colloquial spellings */
        {"selic significa o que", TORO_Q_DEFINITION, 0},
        {"pq meu tesouro ipca ta negativo?", TORO_Q_REASON, 0},
        {"Why did my bond lose value?", TORO_Q_REASON, 0},
        {"qdo vale a pena comprar um prefixado?", TORO_Q_REASON, TORO_Q_TIME}, /* a condition, not a date */
        {"quando cai o dividendo?", TORO_Q_TIME, TORO_Q_REASON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned k = toro_qkind_of(cases[i].q);
        if ((k & cases[i].want) != cases[i].want || (k & cases[i].not))
            fail_msg("'%s': kinds 0x%x, want 0x%x and none of 0x%x", cases[i].q, k, cases[i].want, cases[i].not);
    }
}

static unsigned features(const char *s)
{
    size_t fl;
    char *f = toro_fold(s, strlen(s), &fl);
    assert_non_null(f);
    unsigned r = toro_qkind_features(f, fl);
    free(f);
    return r;
}

static void test_sentence_features(void **state)
{
    (void)state;
    assert_true(features("Ele ocorre no último dia útil de maio e de novembro.") & TORO_F_TIME);
    assert_true(features("A liquidação é em D+2.") & TORO_F_TIME);
    assert_true(features("O pregão abre às 10h.") & TORO_F_TIME);
    assert_false(features("O CDI é o principal referencial da renda fixa.") & (TORO_F_TIME | TORO_F_NUMBER));
    assert_true(features("A alíquota é de 22,5%.") & TORO_F_NUMBER);
    assert_true(features("Se as taxas sobem, o preço cai.") & TORO_F_CAUSE);
    assert_true(features("It fell because rates rose.") & TORO_F_CAUSE);
    assert_false(features("O CDI é o principal referencial da renda fixa.") & TORO_F_CAUSE);
    assert_true(features("Os rendimentos são ISENTOS de IR.") & TORO_F_POLAR);
    assert_true(features("Distributions are exempt from income tax.") & TORO_F_POLAR);
    assert_true(features("Enquanto o PGBL deduz, o VGBL não.") & TORO_F_CONTRAST);
    assert_true(features("Abra conta em uma corretora.") & TORO_F_STEP);
    assert_true(features("O pagamento pode levar algumas semanas.") & (TORO_F_TIME | TORO_F_PERIOD));
    assert_true(features("Payment may take a few weeks.") & (TORO_F_TIME | TORO_F_PERIOD));
}

static void ask(const char *q, toro_answer_t *a)
{
    char *err = NULL;
    assert_int_equal(toro_answerer_answer(ans, q, a, &err), 0);
    assert_null(err);
    assert_non_null(a->text);
}

/* Lead + at most three points: at most four distinct markers, every source cited. */
static void check_shape(const char *q, const toro_answer_t *a)
{
    if (a->n_sources > 4)
        fail_msg("'%s': %zu sources", q, a->n_sources);
    int blocks = 0;
    for (const char *p = strchr(a->text, '['); p; p = strchr(p + 1, '['))
        if (p[1] >= '1' && p[1] <= '9' && p[2] == ']')
            blocks++;
    if (blocks > 4)
        fail_msg("'%s': %d citations, more than a lead and three points:\n%s", q, blocks, a->text);
    for (size_t i = 0; i < a->n_sources; i++) {
        char m[32];
        snprintf(m, sizeof m, "[%zu]", i + 1);
        assert_non_null(strstr(a->text, m));
    }
}

/* Words of a folded line, split at anything but letters and digits. */
static int line_words(const char *l, char w[][32], int cap)
{
    int n = 0;
    while (*l && n < cap) {
        while (*l && !((*l >= 'a' && *l <= 'z') || (*l >= '0' && *l <= '9')))
            l++;
        int k = 0;
        while ((*l >= 'a' && *l <= 'z') || (*l >= '0' && *l <= '9')) {
            if (k < 31)
                w[n][k++] = *l;
            l++;
        }
        if (k) {
            w[n][k] = 0;
            if (k > 3 && w[n][k - 1] == 's') /* plural aside */
                w[n][k - 1] = 0;
            n++;
        }
    }
    return n;
}

/* A later line restating an earlier one: a run of 4+ shared words making
 * 40% or more of the later line. */
static int restated(const char *earlier, const char *later)
{
    static char a[160][32], b[160][32];
    int na = line_words(earlier, a, 160), nb = line_words(later, b, 160), best = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            int k = 0;
            while (i + k < na && j + k < nb && strcmp(a[i + k], b[j + k]) == 0)
                k++;
            if (k > best)
                best = k;
        }
    return best >= 4 && 10 * best >= 4 * nb;
}

/* No line (sentence, item or row) appears twice or is restated, accents
 * and case aside. */
static void check_no_repeats(const char *q, const char *text)
{
    size_t fl;
    char *f = toro_fold(text, strlen(text), &fl);
    assert_non_null(f);
    char *lines[128];
    int n = 0;
    for (char *l = f, *nl; l && *l && n < 128; l = nl ? nl + 1 : NULL) {
        nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        char *mk = strstr(l, " [");
        if (mk)
            *mk = 0; /* the marker differs between copies */
        size_t ll = strlen(l);
        if (ll < 12 || l[0] == '|' || (l[0] == '*' && l[ll - 1] == '*')) /* rows and label lines are not claims */
            continue;
        for (int i = 0; i < n; i++)
            if (strcmp(lines[i], l) == 0 || restated(lines[i], l))
                fail_msg("'%s' repeats '%s' in '%s'", q, lines[i], l);
        lines[n++] = l;
    }
    free(f);
}

static void test_shape_and_no_repeats(void **state)
{
    (void)state;
    static const char *const qs[] = {
        "Como funciona o Tesouro Selic e quando devo usá-lo?", "CDB paga imposto de renda? Qual a alíquota?",
        "quando acontece o come-cotas", "How are dividends from Brazilian REITs (FIIs) taxed?",
        "previdência tem come-cotas?", "Qual a diferença entre LCI e CDB?", "O FGC cobre quais investimentos?",
        "como declarar ações no imposto de renda", "What is the FGC limit?", "o que é marcação a mercado",
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        toro_answer_t a = {0};
        ask(qs[i], &a);
        assert_true(a.found_relevant_docs);
        assert_null(strstr(a.text, "\n\n\n"));
        check_shape(qs[i], &a);
        check_no_repeats(qs[i], a.text);
        toro_answer_clear(&a);
    }
}

static void test_tables_keep_their_shape(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    ask("Qual a alíquota de IR na renda fixa por prazo da aplicação?", &a);
    const char *t = strstr(a.text, "| Prazo da aplicação | Alíquota de IR |\n|---|---|\n");
    if (!t)
        fail_msg("no Markdown table in:\n%s", a.text);
    assert_non_null(strstr(t, "\n| Até 180 dias | 22,5% |\n"));
    assert_non_null(strstr(t, "\n| Acima de 720 dias | 15% |"));
    assert_null(strstr(a.text, " ; ")); /* not flattened */
    toro_answer_clear(&a);
}

static void test_example_comes_with_its_lines(void **state)
{
    (void)state;
    static const char *const qs[] = {"CDB paga imposto de renda? Qual a alíquota?", "quando acontece o come-cotas",
                                     "exemplo de cálculo do IR no CDB"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        toro_answer_t a = {0};
        ask(qs[i], &a);
        /* an example that opens a list ends with its list: no line ends on ':' or
         * on an example's first sentence followed by nothing */
        for (const char *p = strstr(a.text, "Você aplicou"); p; p = NULL)
            assert_non_null(strstr(p, "\n- "));
        for (const char *p = strstr(a.text, "Você tem R$"); p; p = NULL)
            assert_non_null(strstr(p, "\n- "));
        toro_answer_clear(&a);
    }
}

static void test_time_question_gets_the_dates(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    ask("quando acontece o come-cotas", &a);
    assert_non_null(strstr(a.text, "maio e de novembro"));
    toro_answer_clear(&a);
}

/* Whether the kb returns the same top chunks for both questions. */
static int same_retrieval(const char *q1, const char *q2)
{
    toro_kb_hit_t *h1 = NULL, *h2 = NULL;
    size_t n1 = 0, n2 = 0;
    assert_int_equal(toro_kb_search(kb, q1, 16, &h1, &n1), 0); /* the answerer reads 16 */
    assert_int_equal(toro_kb_search(kb, q2, 16, &h2, &n2), 0);
    int same = n1 == n2;
    for (size_t i = 0; same && i < n1; i++) {
        int found = 0;
        for (size_t j = 0; j < n2; j++)
            found |= strcmp(h1[i].chunk_id, h2[j].chunk_id) == 0;
        same = found;
    }
    toro_kb_hits_free(h1, n1);
    toro_kb_hits_free(h2, n2);
    return same;
}

static void test_plural_and_accents_do_not_decide(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"o que é FII?", "o que são FIIs?"},
        {"o que é uma ação?", "o que sao acoes?"},
        {"o que é um título público?", "o que sao titulos publicos?"},
        {"como funciona a tributação das ações?", "como funciona a tributacao da acao?"},
    };
    int compared = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (!same_retrieval(pairs[i][0], pairs[i][1]))
            continue; /* the kb found other chunks: the opening is then not the answerer's choice */
        compared++;
        toro_answer_t a = {0}, b = {0};
        ask(pairs[i][0], &a);
        ask(pairs[i][1], &b);
        const char *ea = strchr(a.text, '['), *eb = strchr(b.text, '[');
        assert_non_null(ea);
        assert_non_null(eb);
        if (ea - a.text != eb - b.text || strncmp(a.text, b.text, (size_t)(ea - a.text)) != 0)
            fail_msg("'%s' and '%s' open differently:\n%.160s\n---\n%.160s", pairs[i][0], pairs[i][1], a.text,
                     b.text);
        toro_answer_clear(&a);
        toro_answer_clear(&b);
    }
    assert_true(compared >= 1);
    /* at sentence level, whatever the kb retrieved: every question word found */
    static const char *const same[][3] = {
        {"o que é FII?", "FIIs são fundos que investem em imóveis.", "pt"},
        {"o que são FIIs?", "O FII é um fundo que investe em imóveis.", "pt"},
        {"como funciona a tributação das ações?", "A tributacao da acao segue a regra geral.", "pt"},
        {"tributacao acoes", "Tributação das ações negociadas em bolsa.", "pt"},
        {"titulos publicos", "O título público é emitido pelo governo.", "pt"},
        {"LCI paga IR?", "A LCI não paga Imposto de Renda.", "pt"},
        {"REITs taxes", "A REIT is taxed differently.", "en"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int m = 0, t = 0;
        assert_int_equal(toro_answer_sentence_match(same[i][0], same[i][1], same[i][2], &m, &t), 0);
        if (m != t || t == 0)
            fail_msg("'%s' vs '%s': %d of %d words", same[i][0], same[i][1], m, t);
    }
    int m = 0, t = 0; /* and a sentence about something else matches nothing */
    assert_int_equal(toro_answer_sentence_match("o que é FII?", "O CDB é um título bancário.", "pt", &m, &t), 0);
    assert_int_equal(m, 0);
}

static void test_advice_note(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    ask("Qual o preço da ação da Petrobras hoje e devo comprar?", &a);
    assert_int_equal(strncmp(a.text, "> " TORO_ADVICE_NOTE_PT "\n\n", strlen(TORO_ADVICE_NOTE_PT) + 4), 0);
    toro_answer_clear(&a);
    ask("Should I buy Brazilian stocks now? What is the price today?", &a);
    assert_int_equal(strncmp(a.text, "> " TORO_ADVICE_NOTE_EN, strlen(TORO_ADVICE_NOTE_EN) + 2), 0);
    toro_answer_clear(&a);
    ask("o que é CDI?", &a); /* not advice: no note */
    assert_null(strstr(a.text, TORO_ADVICE_NOTE_PT));
    toro_answer_clear(&a);
    ask("devo comprar ingressos para o show de rock amanhã?", &a); /* advice, nothing in the KB */
    assert_false(a.found_relevant_docs);
    assert_non_null(strstr(a.text, TORO_ADVICE_NOTE_PT));
    assert_non_null(strstr(a.text, TORO_NO_INFO_PT));
    assert_int_equal(a.n_sources, 0);
    toro_answer_clear(&a);
}

/* Two questions in one: the lead answers the first, a later block the second. */
static void test_each_part_answered(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    ask("o CDB tem garantia do FGC? e qual a alíquota de IR?", &a);
    const char *end = strstr(a.text, "\n\n");
    assert_non_null(end);
    char *lead = strndup(a.text, (size_t)(end - a.text));
    assert_non_null(lead);
    if (!strstr(lead, "FGC"))
        fail_msg("lead does not answer the first part:\n%s", a.text);
    if (!strstr(end, "%"))
        fail_msg("no rate after the lead:\n%s", a.text);
    free(lead);
    toro_answer_clear(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_question_kinds),
        cmocka_unit_test(test_sentence_features),
        cmocka_unit_test(test_shape_and_no_repeats),
        cmocka_unit_test(test_tables_keep_their_shape),
        cmocka_unit_test(test_example_comes_with_its_lines),
        cmocka_unit_test(test_time_question_gets_the_dates),
        cmocka_unit_test(test_plural_and_accents_do_not_decide),
        cmocka_unit_test(test_advice_note),
        cmocka_unit_test(test_each_part_answered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
