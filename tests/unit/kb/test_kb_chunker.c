/* test_kb_chunker.c: front matter, section paths, chunk size bounds,
 * overlap, source offsets, HTML and plain text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kb/chunker.h"

static const char MD[] = "---\n"
                         "doc_id: fgc\n"
                         "title: FGC — Fundo Garantidor\n"
                         "lang: pt\n"
                         "---\n"
                         "# FGC — Fundo Garantidor\n"
                         "> Conteúdo educacional.\n"
                         "\n"
                         "## Limites\n"
                         "O **FGC** garante até R$ 250 mil por CPF.\n"
                         "Vale por [instituição](https://x.y/z).\n"
                         "\n"
                         "### Teto global\n"
                         "- R$ 1 milhão a cada 4 anos.\n"
                         "- Inclui `juros`.\n"
                         "\n"
                         "## Prazo\n"
                         "O pagamento leva dias.\n";

static void test_markdown_sections_and_offsets(void **state)
{
    (void)state;
    toro_doc_t d;
    assert_int_equal(toro_chunk_document("x", MD, strlen(MD), TORO_FMT_MD, NULL, &d), 0);
    assert_string_equal(d.doc_id, "fgc");
    assert_string_equal(d.title, "FGC — Fundo Garantidor");
    assert_string_equal(d.lang, "pt");
    assert_int_equal(d.n_chunks, 3);
    assert_string_equal(d.chunks[0].section, "Limites");
    assert_string_equal(d.chunks[0].text, "O FGC garante até R$ 250 mil por CPF. Vale por instituição.");
    assert_string_equal(d.chunks[1].section, "Limites > Teto global");
    assert_string_equal(d.chunks[1].text, "- R$ 1 milhão a cada 4 anos.\n- Inclui juros.");
    assert_string_equal(d.chunks[2].section, "Prazo");
    /* Offsets point at the source bytes the chunk came from. */
    const char *p0 = strstr(MD, "O **FGC**");
    assert_int_equal(d.chunks[0].start, (size_t)(p0 - MD));
    const char *e0 = strstr(MD, "(https://x.y/z).") + strlen("(https://x.y/z).");
    assert_int_equal(d.chunks[0].end, (size_t)(e0 - MD));
    assert_memory_equal(MD + d.chunks[1].start, "- R$ 1 milhão", strlen("- R$ 1 milhão"));
    assert_memory_equal(MD + d.chunks[2].end - 5, "dias.", 5);
    /* The disclaimer under the title is not content. */
    for (size_t i = 0; i < d.n_chunks; i++)
        assert_null(strstr(d.chunks[i].text, "educacional"));
    toro_doc_clear(&d);
}

static void test_bounded_size_and_overlap(void **state)
{
    (void)state;
    /* 12 paragraphs of ~60 bytes under one heading. */
    char src[4096];
    size_t o = (size_t)snprintf(src, sizeof(src), "# T\n\n## S\n\n");
    for (int i = 0; i < 12; i++)
        o += (size_t)snprintf(src + o, sizeof(src) - o, "Paragrafo numero %02d com texto suficiente para medir.\n\n", i);
    toro_chunk_params_t p = {200, 60};
    toro_doc_t d;
    assert_int_equal(toro_chunk_document("t", src, o, TORO_FMT_MD, &p, &d), 0);
    assert_true(d.n_chunks >= 4);
    for (size_t i = 0; i < d.n_chunks; i++) {
        assert_true(strlen(d.chunks[i].text) <= 200);
        assert_string_equal(d.chunks[i].section, "S");
        assert_true(d.chunks[i].start < d.chunks[i].end);
        /* the source range begins with the chunk's first paragraph */
        assert_memory_equal(src + d.chunks[i].start, d.chunks[i].text, 20);
    }
    /* Overlap: each chunk starts with the last paragraph of the previous one. */
    for (size_t i = 1; i < d.n_chunks; i++) {
        const char *prev = d.chunks[i - 1].text;
        const char *last = strrchr(prev, '\n');
        last = last ? last + 1 : prev;
        assert_memory_equal(d.chunks[i].text, last, strlen(last));
        assert_true(d.chunks[i].start < d.chunks[i - 1].end);
    }
    /* Every paragraph appears in some chunk. */
    for (int i = 0; i < 12; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "numero %02d", i);
        int found = 0;
        for (size_t c = 0; c < d.n_chunks; c++)
            found |= strstr(d.chunks[c].text, needle) != NULL;
        assert_true(found);
    }
    toro_doc_clear(&d);
}

static void test_long_paragraph_split_at_sentences(void **state)
{
    (void)state;
    char src[4096];
    size_t o = 0;
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(src + o, sizeof(src) - o, "Frase %02d termina aqui. ", i);
    toro_chunk_params_t p = {120, 0};
    toro_doc_t d;
    assert_int_equal(toro_chunk_document("t", src, o, TORO_FMT_TXT, &p, &d), 0);
    assert_true(d.n_chunks >= 4);
    for (size_t i = 0; i < d.n_chunks; i++) {
        assert_true(strlen(d.chunks[i].text) <= 120);
        assert_memory_equal(d.chunks[i].text, "Frase", 5); /* cut at sentence starts */
        assert_memory_equal(src + d.chunks[i].start, "Frase", 5);
    }
    toro_doc_clear(&d);
}

static void test_html(void **state)
{
    (void)state;
    const char *h = "<html><head><title>Poupan&ccedil;a</title><style>p{}</style></head><body>"
                    "<h1>Poupança</h1><p>Rende 0,5% ao m&ecirc;s.</p><h2>Imposto</h2>"
                    "<ul><li>Isenta de IR.</li><li>Tem FGC.</li></ul><script>x()</script></body></html>";
    toro_doc_t d;
    assert_int_equal(toro_chunk_document("poupanca", h, strlen(h), TORO_FMT_HTML, NULL, &d), 0);
    assert_string_equal(d.doc_id, "poupanca");
    assert_string_equal(d.title, "Poupança");
    assert_int_equal(d.n_chunks, 2);
    assert_string_equal(d.chunks[0].text, "Rende 0,5% ao mês.");
    assert_string_equal(d.chunks[1].section, "Imposto");
    assert_string_equal(d.chunks[1].text, "- Isenta de IR.\n- Tem FGC.");
    assert_memory_equal(h + d.chunks[0].start, "Rende", 5);
    assert_memory_equal(h + d.chunks[1].end - 4, "FGC.", 4);
    toro_doc_clear(&d);
}

static void test_detected_language_and_formats(void **state)
{
    (void)state;
    const char *t = "Dividends are paid to shareholders and the tax is zero for individuals.";
    toro_doc_t d;
    assert_int_equal(toro_chunk_document("div", t, strlen(t), TORO_FMT_TXT, NULL, &d), 0);
    assert_string_equal(d.lang, "en");
    assert_string_equal(d.title, "div");
    assert_int_equal(d.chunks[0].start, 0);
    assert_int_equal(d.chunks[0].end, strlen(t));
    toro_doc_clear(&d);
    assert_int_equal(toro_doc_format_from_path("a/b.md"), TORO_FMT_MD);
    assert_int_equal(toro_doc_format_from_path("x.HTML"), TORO_FMT_HTML);
    assert_int_equal(toro_doc_format_from_path("x.txt"), TORO_FMT_TXT);
    assert_int_equal(toro_doc_format_from_path("x.pdf"), -1);
}

static void test_sentence_end(void **state)
{
    (void)state;
    const char *s = "Art. 5 diz isso. O valor é R$ 1.000. Fim";
    size_t e = toro_sentence_end(s, strlen(s), 0);
    assert_int_equal(e, strlen("Art. 5 diz isso. "));
    size_t e2 = toro_sentence_end(s, strlen(s), e);
    assert_int_equal(e2, strlen("Art. 5 diz isso. O valor é R$ 1.000. "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_markdown_sections_and_offsets),
        cmocka_unit_test(test_bounded_size_and_overlap),
        cmocka_unit_test(test_long_paragraph_split_at_sentences),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_detected_language_and_formats),
        cmocka_unit_test(test_sentence_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
