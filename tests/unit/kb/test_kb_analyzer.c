/* test_kb_analyzer.c: analyzer tables: folding, stems in both languages,
 * stop words, financial tokens, language detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "kb/analyzer.h"
#include "kb/kb.h"

typedef struct acc {
    char buf[1024];
} acc_t;

static int acc_cb(void *ud, const char *tok, size_t len, int kind)
{
    acc_t *a = ud;
    size_t n = strlen(a->buf);
    if (n)
        a->buf[n++] = ' ';
    memcpy(a->buf + n, tok, len);
    a->buf[n + len] = 0;
    return 0;
}

static void expect_terms(const char *lang, const char *text, const char *want)
{
    toro_analyzer_t *an = NULL;
    assert_int_equal(toro_analyzer_new(lang, false, &an), 0);
    acc_t a = {{0}};
    assert_int_equal(toro_analyze(an, text, strlen(text), acc_cb, &a), 0);
    if (strcmp(a.buf, want) != 0)
        print_error("analyze(%s, \"%s\") = \"%s\", want \"%s\"\n", lang, text, a.buf, want);
    assert_string_equal(a.buf, want);
    toro_analyzer_free(an);
}

static void test_fold(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"Aplicação", "aplicacao"}, {"ÇÃO ÉÊ", "cao ee"}, {"RENDA Fixa", "renda fixa"}, {"ﬁnanças", "financas"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *f = toro_fold(cases[i][0], strlen(cases[i][0]), NULL);
        assert_non_null(f);
        assert_string_equal(f, cases[i][1]);
        free(f);
    }
    /* invalid UTF-8 does not fail */
    char *f = toro_fold("a\xff" "b", 3, NULL);
    assert_string_equal(f, "a b");
    free(f);
}

/* The reference fold: the whole text through utf8proc at once, after
 * invalid UTF-8 and NULs become spaces (the fold before the per-code-point
 * fast path). */
static char *fold_reference(const char *s, size_t len, size_t *outlen)
{
    char *clean = malloc(len + 1);
    size_t ci = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp == 0) {
            clean[ci++] = ' ';
            i++;
            continue;
        }
        memcpy(clean + ci, s + i, (size_t)n);
        ci += (size_t)n;
        i += (size_t)n;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)clean, (utf8proc_ssize_t)ci, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                          UTF8PROC_STRIPMARK);
    free(clean);
    *outlen = n < 0 ? 0 : (size_t)n;
    return (char *)dst;
}

static size_t put_cp(char *out, unsigned cp)
{
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
    return n > 0 ? (size_t)n : 0;
}

/* toro_fold folds ASCII and two-byte code points one by one: it must give
 * the reference's bytes on every two-byte code point, every pair of them,
 * and random texts mixing ASCII, two-byte letters and marks, three-byte
 * code points (marks, Hangul jamo, ligatures), four-byte ones, NULs and
 * invalid bytes. */
static void test_fold_matches_reference(void **state)
{
    (void)state;
    char buf[4096];
    for (unsigned a = 0x80; a < 0x800; a++)
        for (unsigned b = 0x40; b < 0x800; b += (a % 7) + 1) { /* every a, a spread of b (ASCII included) */
            size_t n = put_cp(buf, a);
            n += put_cp(buf + n, b);
            n += put_cp(buf + n, a);
            size_t rn = 0, fn = 0;
            char *r = fold_reference(buf, n, &rn), *f = toro_fold(buf, n, &fn);
            assert_non_null(r);
            assert_non_null(f);
            if (rn != fn || memcmp(r, f, rn) != 0)
                print_error("fold differs on U+%04X U+%04X U+%04X\n", a, b, a);
            assert_int_equal(rn, fn);
            assert_memory_equal(r, f, rn);
            free(r);
            free(f);
        }
    static const unsigned pool[] = {'a', 'E', 'Z', ' ', '.', '0', 0xE7, 0xC3, 0xE9, 0x301, 0x303, 0x327, 0x345,
                                    0x3A3, 0x3C2, 0x130, 0x149, 0x1C4, 0x587, 0x627, 0x653, 0x1100, 0x1161, 0x11A8,
                                    0xAC00, 0x1E9E, 0xFB01, 0xFF21, 0x2126, 0x212B, 0x1D400, 0x1F600, 0x0B47, 0x0B3E};
    unsigned seed = 12345;
    for (int t = 0; t < 20000; t++) {
        size_t n = 0;
        int k = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 24;
        for (int i = 0; i < k; i++) {
            unsigned r = (seed = seed * 1103515245u + 12345u) >> 16;
            if (r % 23 == 0)
                buf[n++] = (char)(0x80 | (r >> 5)); /* a stray continuation or lead byte */
            else if (r % 29 == 0)
                buf[n++] = 0;
            else if (r % 3 == 0)
                n += put_cp(buf + n, 0x80 + (r >> 3) % 0x780);
            else
                n += put_cp(buf + n, pool[(r >> 4) % (sizeof(pool) / sizeof(pool[0]))]);
        }
        size_t rn = 0, fn = 0;
        char *r = fold_reference(buf, n, &rn), *f = toro_fold(buf, n, &fn);
        assert_non_null(r);
        assert_non_null(f);
        assert_int_equal(rn, fn);
        assert_memory_equal(r, f, rn);
        free(r);
        free(f);
    }
}

static void test_accents_and_case_meet(void **state)
{
    (void)state;
    expect_terms("pt", "Aplicação APLICACAO aplicacao", "aplicaca aplicaca aplicaca");
    expect_terms("pt", "Tributação tributacao", "tributaca tributaca");
}

static void test_stems_pt(void **state)
{
    (void)state;
    expect_terms("pt", "investimentos investimento", "invest invest");
    expect_terms("pt", "rendimentos rentabilidade", "rendiment rentabil");
    expect_terms("pt", "garantia garantidos", "garant garant");
}

/* Plurals Snowball misses once accents are folded: "ações"/"ação" and
 * acronyms ("FIIs", "CDBs", "ETFs", "LCIs"); ordinary words keep their
 * stems ("mais", "meses"). */
static void test_plural_folding(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"pt", "ações ação acoes", "aca aca aca"},
        {"pt", "opções opção", "opca opca"},
        {"pt", "FIIs FII CDBs CDB ETFs LCIs", "fii fii cdb cdb etf lci"},
        {"en", "FIIs CDBs BDRs", "fii cdb bdr"},
        {"pt", "meses mes", "mes mes"},
        {"pt", "bonus tenis", "bonus ten"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_terms(cases[i][0], cases[i][1], cases[i][2]);
}

/* Typo distance: sound-alike letters (s/c/z, i/e, o/u) and doubled letters
 * cost half an edit, other edits one; early exit past max. */
static void test_typo_distance(void **state)
{
    (void)state;
    assert_true(toro_typo_distance("poupansa", 8, "poupanca", 8, 2) == 0.5);
    assert_true(toro_typo_distance("tesoro", 6, "tesouro", 7, 2) == 1.0);
    assert_true(toro_typo_distance("acontesse", 9, "acontece", 8, 2) == 1.0); /* ss -> c */
    assert_true(toro_typo_distance("custodai", 8, "custodia", 8, 2) == 1.0);  /* transposition */
    assert_true(toro_typo_distance("abc", 3, "abc", 3, 1) == 0.0);
    assert_true(toro_typo_distance("garantia", 8, "dividendo", 9, 1) > 1.0);
    assert_true(toro_typo_distance("tesoro", 6, "tesouro", 7, 0.5) > 0.5);
}

static void test_query_fillers(void **state)
{
    (void)state;
    const char *yes[] = {"pq", "hj", "qnto", "vc", "oq", "tbm", "wat"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(toro_is_query_filler(yes[i], strlen(yes[i])));
    const char *no[] = {"fgc", "tesouro", "cdb", "taxa", "p"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(toro_is_query_filler(no[i], strlen(no[i])));
}

static void test_stems_en(void **state)
{
    (void)state;
    expect_terms("en", "investments investing invested", "invest invest invest");
    expect_terms("en", "Running dividends", "run dividend");
}

static void test_stop_words(void **state)
{
    (void)state;
    expect_terms("pt", "O que é o CDB?", "cdb");
    expect_terms("en", "What is the CDB?", "cdb");
    assert_true(toro_is_stopword("pt", "que", 3));
    assert_false(toro_is_stopword("pt", "cdb", 3));
    assert_true(toro_is_stopword("en", "the", 3));
}

static void test_financial_tokens(void **state)
{
    (void)state;
    expect_terms("pt", "R$ 250.000", "250000");
    expect_terms("pt", "R$ 250 mil", "250000");
    expect_terms("pt", "R$ 1 milhão", "1000000");
    expect_terms("pt", "R$ 1,5 milhão", "1500000");
    expect_terms("pt", "R$ 1.000.000,00", "1000000");
    expect_terms("pt", "22,5% 22.5% 22,50 %", "22,5% 22,5% 22,5%");
    expect_terms("pt", "IPCA+ 6%", "ipca+ 6%");
    expect_terms("pt", "resgate em D+0 ou D+30", "resgat d+0 d+30");
    expect_terms("pt", "PGBL, CDI e B3", "pgbl cdi b3");
    expect_terms("en", "1,000 dollars", "1000 dollar");
}

static void test_detect_lang(void **state)
{
    (void)state;
    assert_string_equal(toro_kb_detect_lang("Qual o limite do FGC?"), "pt");
    assert_string_equal(toro_kb_detect_lang("O que é CDB?"), "pt");
    assert_string_equal(toro_kb_detect_lang("What is a CDB?"), "en");
    assert_string_equal(toro_kb_detect_lang("How much tax do I pay on dividends?"), "en");
    assert_string_equal(toro_kb_detect_lang("Como funciona a tributação de ações?"), "pt");
    assert_string_equal(toro_kb_detect_lang(""), "pt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),           cmocka_unit_test(test_fold_matches_reference),           cmocka_unit_test(test_accents_and_case_meet),
        cmocka_unit_test(test_stems_pt),       cmocka_unit_test(test_stems_en),
        cmocka_unit_test(test_stop_words),     cmocka_unit_test(test_financial_tokens),
        cmocka_unit_test(test_detect_lang),    cmocka_unit_test(test_plural_folding),
        cmocka_unit_test(test_typo_distance),  cmocka_unit_test(test_query_fillers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
