/* test_prompt.c: what the model-backed answerers share (answer/prompt.c) and
 * the factory: citation renumbering and the sources they map to, the
 * no-information answer (from retrieval, with no provider call, and from the
 * model's own words), the grounded prompts, and provider selection with its
 * fallback to the extractive answerer. Knowledge base: tests/data/kb/corpus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer/factory.h"
#include "answer/prompt.h"
#include "core/error.h"
#include "kb/index.h"
#include "kb/kb.h"

static char tmpdir[256];
static toro_kb_t *kb;

static int setup(void **state)
{
    (void)state;
    char corpus[1024], snap[512];
    const char *src = getenv("TORO_SOURCE_DIR");
    snprintf(corpus, sizeof corpus, "%s/tests/data/kb/corpus", src ? src : ".");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/toro-prompt-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(snap, sizeof snap, "%s/a.kb", tmpdir);
    char *err = NULL;
    toro_kb_build_stats_t st;
    if (toro_kb_build_dir(corpus, snap, NULL, NULL, NULL, &st, &err) != 0) {
        fprintf(stderr, "build: %s\n", err ? err : "?");
        free(err);
        return -1;
    }
    return toro_kb_open(snap, &kb, &err);
}

static int teardown(void **state)
{
    (void)state;
    toro_kb_close(kb);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static toro_kb_hit_t P[3] = {
    {"cdb#0", "cdb", "CDB", "O que é", "pt", "O CDB é um título de renda fixa emitido por bancos.", 5.0, 1.0, 5.0, 0.0, 1.0},
    {"fgc#1", "fgc", "FGC", "Limites", "pt", "O FGC garante até R$ 250 mil por CPF e instituição.", 4.0, 1.0, 4.0, 0.0, 1.0},
    {"lci#0", "lci", "LCI e LCA", "", "pt", "LCI e LCA são isentas de IR para pessoa física.", 3.0, 1.0, 3.0, 0.0, 1.0},
};

static void test_renumber(void **state)
{
    (void)state;
    size_t order[3], m = 0;
    char *out = NULL;
    assert_int_equal(toro_prompt_renumber("A [2] B [1]. C [2, 3] D [9]. E [x] [2][2]", 3, &out, order, &m), 0);
    assert_string_equal(out, "A [1] B [2]. C [1][3] D. E [x] [1][1]");
    assert_int_equal(m, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 2);
    free(out);
    assert_int_equal(toro_prompt_renumber("sem citações", 3, &out, order, &m), 0);
    assert_string_equal(out, "sem citações");
    assert_int_equal(m, 0);
    free(out);
    assert_int_equal(toro_prompt_renumber("[1, 1] dup", 3, &out, order, &m), 0);
    assert_string_equal(out, "[1] dup");
    free(out);
}

static void test_finish_maps_citations(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    assert_int_equal(toro_prompt_finish("  **CDB**\n- isento? não [3]\n- garantido pelo FGC [2] [3]  ", "pt", P, 3,
                                        "openai:m", "v1", &a),
                     0);
    assert_string_equal(a.text, "**CDB**\n- isento? não [1]\n- garantido pelo FGC [2] [1]");
    assert_int_equal(a.n_sources, 2);
    assert_string_equal(a.sources[0].chunk_id, "lci#0");
    assert_string_equal(a.sources[1].chunk_id, "fgc#1");
    assert_string_equal(a.sources[1].title, "FGC");
    assert_string_equal(a.sources[1].section, "Limites");
    assert_string_equal(a.sources[1].snippet, P[1].text);
    assert_true(a.found_relevant_docs);
    assert_string_equal(a.model, "openai:m");
    assert_string_equal(a.kb_version, "v1");
    toro_answer_clear(&a);

    /* nothing cited: every passage given to the model is a source */
    assert_int_equal(toro_prompt_finish("O CDB é renda fixa.", "pt", P, 3, "m", "v", &a), 0);
    assert_int_equal(a.n_sources, 3);
    assert_string_equal(a.sources[2].doc_id, "lci");
    toro_answer_clear(&a);
}

static void test_finish_no_info(void **state)
{
    (void)state;
    toro_answer_t a = {0};
    assert_int_equal(toro_prompt_finish("Não tenho informações suficientes para responder a essa pergunta", "pt", P, 3,
                                        "m", "v", &a),
                     0);
    assert_string_equal(a.text, TORO_NO_INFO_PT);
    assert_false(a.found_relevant_docs);
    assert_int_equal(a.n_sources, 0);
    toro_answer_clear(&a);
    assert_int_equal(toro_prompt_finish("I don't have enough information to answer this question.", "en", P, 3, "m",
                                        "v", &a),
                     0);
    assert_string_equal(a.text, TORO_NO_INFO_EN);
    assert_false(a.found_relevant_docs);
    toro_answer_clear(&a);
    assert_int_equal(toro_prompt_finish("   ", "pt", P, 3, "m", "v", &a), 0);
    assert_string_equal(a.text, TORO_NO_INFO_PT);
    toro_answer_clear(&a);
}

static void test_prompts(void **state)
{
    (void)state;
    char *s = toro_prompt_system("pt");
    assert_non_null(strstr(s, "\"" TORO_NO_INFO_PT "\""));
    assert_non_null(strstr(s, "SOMENTE"));
    assert_non_null(strstr(s, "[1]"));
    assert_non_null(strstr(s, "**Título**"));
    assert_non_null(strstr(s, "português"));
    free(s);
    s = toro_prompt_system("en");
    assert_non_null(strstr(s, "\"" TORO_NO_INFO_EN "\""));
    assert_non_null(strstr(s, "English"));
    free(s);
    s = toro_prompt_user("O que é CDB?", P, 3);
    assert_non_null(strstr(s, "Contexto:\n\n[1] CDB — O que é\nO CDB é um título"));
    assert_non_null(strstr(s, "\n[3] LCI e LCA\nLCI e LCA"));
    assert_non_null(strstr(s, "\nPergunta: O que é CDB?\n"));
    assert_null(strstr(s, "Conversa anterior"));
    free(s);
    /* inside a conversation: the earlier turns and the question as asked, before the standalone query */
    toro_prompt_turn_t turns[] = {{"Quanto rende o CDB?", "O CDB rende um percentual do CDI [1]."},
                                  {"E o prazo?", NULL}};
    toro_prompt_set_turns(turns, 2, "E a LCA?");
    s = toro_prompt_user("Quanto rende o LCA?", P, 3);
    const char *t = strstr(s, "Conversa anterior");
    assert_non_null(t);
    assert_non_null(strstr(t, "Usuário: Quanto rende o CDB?\nAssistente: O CDB rende um percentual do CDI [1].\n"));
    assert_non_null(strstr(t, "Usuário: E o prazo?\nAssistente: (sem resposta)\n"));
    assert_non_null(strstr(t, "Pergunta como o usuário a escreveu: E a LCA?\n"));
    assert_non_null(strstr(t, "\nPergunta: Quanto rende o LCA?\n"));
    assert_true(strstr(s, "[3] LCI e LCA") < t); /* passages first */
    free(s);
    toro_prompt_set_turns(NULL, 0, NULL);
    s = toro_prompt_user("O que é CDB?", P, 3);
    assert_null(strstr(s, "Conversa anterior"));
    free(s);
    char *sn = toro_prompt_snippet("linha\num texto", 14);
    assert_string_equal(sn, "linha um texto");
    free(sn);
    char longt[600];
    memset(longt, 'a', sizeof longt);
    for (size_t i = 10; i < sizeof longt; i += 10)
        longt[i] = ' ';
    longt[sizeof longt - 1] = 0;
    sn = toro_prompt_snippet(longt, strlen(longt));
    assert_true(strlen(sn) <= 240 + 3);
    assert_non_null(strstr(sn, "…"));
    free(sn);
}

/* A provider endpoint nobody listens on: a call would fail with ERETRY. */
static void set_dead_openai(void)
{
    setenv("TORO_OPENAI_BASE_URL", "http://127.0.0.1:9/v1", 1);
    setenv("TORO_OPENAI_MODEL", "test-model", 1);
    setenv("TORO_PROVIDER_RETRIES", "0", 1);
    setenv("TORO_PROVIDER_TIMEOUT_MS", "2000", 1);
}

static void test_no_info_without_provider_call(void **state)
{
    (void)state;
    set_dead_openai();
    toro_answerer_t *a = NULL;
    char *err = NULL;
    assert_int_equal(toro_answerer_create("openai", kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "openai");
    toro_answer_t ans = {0};
    char *msg = NULL;
    assert_int_equal(toro_answerer_answer(a, "Qual é a receita de bolo de cenoura com chocolate?", &ans, &msg), 0);
    assert_string_equal(ans.text, TORO_NO_INFO_PT);
    assert_false(ans.found_relevant_docs);
    assert_int_equal(ans.n_sources, 0);
    assert_string_equal(ans.model, "openai:test-model");
    assert_string_equal(ans.kb_version, toro_kb_version(kb));
    toro_answer_clear(&ans);
    assert_int_equal(toro_answerer_answer(a, "How do I bake a chocolate carrot cake?", &ans, &msg), 0);
    assert_string_equal(ans.text, TORO_NO_INFO_EN);
    toro_answer_clear(&ans);
    /* a relevant question does call the provider: unreachable means retry later */
    assert_int_equal(toro_answerer_answer(a, "O que é CDB?", &ans, &msg), TORO_ERETRY);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "unreachable"));
    free(msg);
    toro_answerer_free(a);

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    setenv("TORO_BEDROCK_ENDPOINT", "http://127.0.0.1:9", 1);
    assert_int_equal(toro_answerer_create("bedrock", kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "bedrock");
    msg = NULL;
    assert_int_equal(toro_answerer_answer(a, "Qual é a receita de bolo de cenoura com chocolate?", &ans, &msg), 0);
    assert_string_equal(ans.text, TORO_NO_INFO_PT);
    assert_string_equal(ans.model, "bedrock:us.amazon.nova-pro-v1:0");
    toro_answer_clear(&ans);
    toro_answerer_free(a);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("TORO_BEDROCK_ENDPOINT");
}

static void test_factory(void **state)
{
    (void)state;
    toro_answerer_t *a = NULL;
    char *err = NULL;
    unsetenv("TORO_ANSWERER");
    assert_int_equal(toro_answerer_create(NULL, kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "extractive");
    toro_answerer_free(a);
    setenv("TORO_ANSWERER", "openai", 1);
    set_dead_openai();
    assert_int_equal(toro_answerer_create(NULL, kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "openai");
    toro_answerer_free(a);
    unsetenv("TORO_ANSWERER");
    /* selected but not configured: falls back to extractive */
    unsetenv("TORO_OPENAI_BASE_URL");
    unsetenv("TORO_OPENAI_API_KEY");
    unsetenv("OPENAI_API_KEY");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    const char *names[] = {"openai", "bedrock", "bedrock-kb"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(toro_answerer_create(names[i], kb, &a, &err), 0);
        assert_string_equal(a->ops->name, "extractive");
        toro_answerer_free(a);
        char *why = NULL;
        assert_int_equal(i == 0   ? toro_answerer_openai_new(kb, &a, &why)
                         : i == 1 ? toro_answerer_bedrock_new(kb, &a, &why)
                                  : toro_answerer_bedrock_kb_new(kb, &a, &why),
                         TORO_EUNAVAIL);
        assert_null(a);
        assert_non_null(why);
        free(why);
    }
    /* KB mode needs the knowledge-base id besides credentials */
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    assert_int_equal(toro_answerer_create("bedrock-kb", kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "extractive");
    toro_answerer_free(a);
    setenv("TORO_BEDROCK_KB_ID", "KB123", 1);
    assert_int_equal(toro_answerer_create("bedrock-kb", kb, &a, &err), 0);
    assert_string_equal(a->ops->name, "bedrock-kb");
    toro_answerer_free(a);
    setenv("TORO_BEDROCK_AGENT_ENDPOINT", "ftp://nope", 1);
    assert_int_not_equal(toro_answerer_create("bedrock-kb", kb, &a, &err), 0);
    assert_null(a);
    assert_non_null(err);
    free(err);
    err = NULL;
    unsetenv("TORO_BEDROCK_AGENT_ENDPOINT");
    unsetenv("TORO_BEDROCK_KB_ID");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    /* a typo is an error, not a silent fallback */
    assert_int_equal(toro_answerer_create("opnai", kb, &a, &err), TORO_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "opnai"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renumber),
        cmocka_unit_test(test_finish_maps_citations),
        cmocka_unit_test(test_finish_no_info),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_no_info_without_provider_call),
        cmocka_unit_test(test_factory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
