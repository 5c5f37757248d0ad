/* test_kb_index.c: snapshot build and BM25 retrieval on the hand-made corpus
 * in tests/data/kb/corpus: known ranking order, financial tokens across
 * spellings, relevance threshold, version determinism, concurrent search. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "kb/analyzer.h"
#include "kb/checksum.h"
#include "kb/eval.h"
#include "kb/index.h"
#include "kb/kb.h"

static char corpus[2048];
static char tmpdir[256];
static char snap[512];
static toro_kb_t *kb;

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("TORO_SOURCE_DIR");
    snprintf(corpus, sizeof(corpus), "%s/tests/data/kb/corpus", src ? src : ".");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/toro-kb-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(snap, sizeof(snap), "%s/a.kb", tmpdir);
    char *err = NULL;
    toro_kb_build_stats_t st;
    int rc = toro_kb_build_dir(corpus, snap, NULL, NULL, NULL, &st, &err);
    if (rc) {
        fprintf(stderr, "build: %s\n", err ? err : "?");
        free(err);
        return -1;
    }
    if (st.n_docs != 6) /* README.md is skipped */
        return -1;
    return toro_kb_open(snap, &kb, &err);
}

static int teardown(void **state)
{
    (void)state;
    toro_kb_close(kb);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Asserts the chunk ids of the top hits, in order. */
static void expect_top(const char *q, const char *const *want, size_t nwant)
{
    toro_kb_hit_t *h = NULL;
    size_t n = 0;
    assert_int_equal(toro_kb_search(kb, q, 10, &h, &n), 0);
    assert_true(n >= nwant);
    for (size_t i = 0; i < nwant; i++) {
        if (strcmp(h[i].chunk_id, want[i]) != 0)
            print_error("query \"%s\": rank %zu is %s, want %s\n", q, i + 1, h[i].chunk_id, want[i]);
        assert_string_equal(h[i].chunk_id, want[i]);
        if (i > 0)
            assert_true(h[i - 1].score >= h[i].score);
    }
    toro_kb_hits_free(h, n);
}

static void test_ranking(void **state)
{
    (void)state;
    const char *a[] = {"cdb#1", "poupanca#1", "tesouro#0"};
    expect_top("garantia do FGC", a, 3);
    const char *b[] = {"poupanca#1", "previdencia#0"};
    expect_top("imposto de renda", b, 2);
    const char *c[] = {"stocks#0", "stocks#1"};
    expect_top("dividends tax", c, 2);
    const char *d[] = {"tesouro#0"};
    expect_top("resgate D+0", d, 1);
}

static void test_tokens_across_spellings(void **state)
{
    (void)state;
    const char *cdb1[] = {"cdb#1"};
    expect_top("R$ 250 mil", cdb1, 1);
    expect_top("250.000 reais", cdb1, 1);
    const char *cust[] = {"tesouro#1"};
    expect_top("0.20%", cust, 1);
    expect_top("0,2%", cust, 1);
    const char *pre[] = {"cdb#2"};
    expect_top("aplicacao PREFIXADA", pre, 1);
    expect_top("IPCA+", pre, 1);
    const char *html[] = {"poupanca#0"};
    expect_top("poupança rende 0,5% ao mês", html, 1);
}

static void test_hit_fields(void **state)
{
    (void)state;
    toro_kb_hit_t *h = NULL;
    size_t n = 0;
    assert_int_equal(toro_kb_search(kb, "PGBL declaração completa", 3, &h, &n), 0);
    assert_true(n >= 1);
    assert_string_equal(h[0].chunk_id, "previdencia#0");
    assert_string_equal(h[0].doc_id, "previdencia");
    assert_string_equal(h[0].title, "Previdência privada: PGBL e VGBL");
    assert_string_equal(h[0].section, "PGBL");
    assert_string_equal(h[0].lang, "pt");
    assert_non_null(strstr(h[0].text, "12% da renda bruta"));
    assert_true(h[0].score > 0);
    assert_true(h[0].coverage > 0.99);
    assert_true(toro_kb_hit_is_relevant(kb, &h[0]));
    toro_kb_hits_free(h, n);
}

static void test_not_relevant(void **state)
{
    (void)state;
    const char *qs[] = {"Qual a receita de bolo de cenoura?", "Who won the 1970 World Cup?", "o que é", ""};
    for (size_t i = 0; i < 4; i++) {
        toro_kb_hit_t *h = NULL;
        size_t n = 0;
        assert_int_equal(toro_kb_search(kb, qs[i], 5, &h, &n), 0);
        assert_true(n == 0 || !toro_kb_hit_is_relevant(kb, &h[0]));
        toro_kb_hits_free(h, n);
    }
}

/* Searches a and b (top 3 each); both must find something. */
static void search_pair(const char *a, const char *b, toro_kb_hit_t **h, size_t *n, toro_kb_hit_t **e, size_t *ne)
{
    assert_int_equal(toro_kb_search(kb, a, 3, h, n), 0);
    assert_int_equal(toro_kb_search(kb, b, 3, e, ne), 0);
    assert_true(*n >= 1 && *ne >= 1);
}

/* A misspelled word the index does not know is matched to the closest
 * indexed word ("custodya", "tezouro") and ranks that chunk first; a typo
 * match alone earns half of the word's coverage. */
static void test_typo_tolerant(void **state)
{
    (void)state;
    const char *cust[] = {"tesouro#1"};
    expect_top("taxa de custodya", cust, 1);
    const char *td[] = {"tesouro#0"};
    expect_top("resgate do tezouro selic", td, 1);
    toro_kb_hit_t *h = NULL, *e = NULL;
    size_t n = 0, ne = 0;
    search_pair("custodya", "custodia", &h, &n, &e, &ne);
    assert_string_equal(h[0].chunk_id, e[0].chunk_id);
    assert_true(e[0].coverage > 0.99);
    assert_true(h[0].coverage > 0.49 && h[0].coverage < 0.51);
    assert_true(h[0].score < e[0].score); /* a typo match weighs less */
    toro_kb_hits_free(h, n);
    toro_kb_hits_free(e, ne);
    /* Short words are not bent into other words. */
    assert_int_equal(toro_kb_search(kb, "xyzw qwerty", 3, &h, &n), 0);
    assert_int_equal(n, 0);
    toro_kb_hits_free(h, n);
}

/* The correction retrieval makes, offered to the answerer: an unknown stem
 * gets the closest indexed term, a known one is reported as known (-1), a
 * short or far one gets nothing and out stays as it was. */
static void test_typo_fix(void **state)
{
    (void)state;
    char out[TORO_TOKEN_MAX + 1] = "unchanged";
    assert_int_equal(toro_kb_typo_fix(kb, "custody", out), 1); /* one edit from the stem of "custódia" */
    assert_string_equal(out, "custod");
    assert_int_equal(toro_kb_typo_fix(kb, "custod", out), -1);
    snprintf(out, sizeof out, "unchanged");
    assert_int_equal(toro_kb_typo_fix(kb, "xyzwq", out), 0);
    assert_int_equal(toro_kb_typo_fix(kb, "cus", out), 0);
    assert_int_equal(toro_kb_typo_fix(NULL, "custody", out), 0);
    assert_string_equal(out, "unchanged");
}

/* Spellings that must search alike: chat fillers ("pq", "hj", "qnto") are
 * no unknown words, and an acronym's plural meets its singular ("CDBs").
 * Same chunks in the same order with the same coverage, the top relevant. */
static void test_same_search(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"qnto custa a custodia do tesouro hj pq", "custa a custodia do tesouro"}, {"CDBs", "CDB"}};
    for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
        toro_kb_hit_t *h = NULL, *e = NULL;
        size_t n = 0, ne = 0;
        search_pair(pairs[p][0], pairs[p][1], &h, &n, &e, &ne);
        assert_int_equal(n, ne);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(h[i].chunk_id, e[i].chunk_id);
            assert_true(h[i].coverage > e[i].coverage - 1e-9 && h[i].coverage < e[i].coverage + 1e-9);
        }
        assert_true(toro_kb_hit_is_relevant(kb, &h[0]));
        toro_kb_hits_free(h, n);
        toro_kb_hits_free(e, ne);
    }
}

/* A snapshot analyzed by another analyzer version (checksum intact) is
 * refused with a message that says to rebuild it. */
static void test_other_analyzer_refused(void **state)
{
    (void)state;
    char other[600], cmd[1400], sum[80];
    snprintf(other, sizeof(other), "%s/old.kb", tmpdir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", snap, other);
    assert_int_equal(system(cmd), 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value='toro-analyzer/0' WHERE key='analyzer'", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(toro_kb_checksum_compute(db, sum), 0);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE meta SET value=? WHERE key='" TORO_KB_CHECKSUM_KEY "'", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, sum, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    toro_kb_t *k = NULL;
    char *err = NULL;
    assert_true(toro_kb_open(other, &k, &err) < 0);
    assert_null(k);
    assert_non_null(err);
    assert_non_null(strstr(err, "toro-analyzer/0"));
    assert_non_null(strstr(err, "rebuild"));
    free(err);
}

static int copy_tree(const char *from, const char *to)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", from, to);
    return system(cmd);
}

static void test_version_determinism(void **state)
{
    (void)state;
    char b[600], c[600], dir[600], f[700];
    snprintf(b, sizeof(b), "%s/b.kb", tmpdir);
    toro_kb_build_stats_t s1, s2, s3;
    char *err = NULL;
    assert_int_equal(toro_kb_build_dir(corpus, b, NULL, NULL, NULL, &s1, &err), 0);
    assert_string_equal(s1.version, toro_kb_version(kb));
    assert_int_equal(strlen(s1.version), 24);
    /* Same content elsewhere on disk: same version. */
    snprintf(dir, sizeof(dir), "%s/copy", tmpdir);
    assert_int_equal(copy_tree(corpus, dir), 0);
    snprintf(c, sizeof(c), "%s/c.kb", tmpdir);
    assert_int_equal(toro_kb_build_dir(dir, c, NULL, NULL, NULL, &s2, &err), 0);
    assert_string_equal(s1.version, s2.version);
    /* One byte more in one file: another version. */
    snprintf(f, sizeof(f), "%s/tesouro.md", dir);
    FILE *fp = fopen(f, "a");
    assert_non_null(fp);
    fputs("\n", fp);
    fclose(fp);
    assert_int_equal(toro_kb_build_dir(dir, c, NULL, NULL, NULL, &s3, &err), 0);
    assert_string_not_equal(s1.version, s3.version);
    /* Other chunking parameters: another version. */
    toro_chunk_params_t p = {500, 50};
    assert_int_equal(toro_kb_build_dir(corpus, c, &p, NULL, NULL, &s3, &err), 0);
    assert_string_not_equal(s1.version, s3.version);
    /* Errors are explained. */
    assert_int_not_equal(toro_kb_build_dir("/nonexistent/dir", c, NULL, NULL, NULL, &s3, &err), 0);
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    free(err);
    err = NULL;
    toro_kb_t *bad = NULL;
    assert_int_not_equal(toro_kb_open(f, &bad, &err), 0); /* a Markdown file is not a snapshot */
    assert_null(bad);
    assert_non_null(err);
    free(err);
}

/* Every row of every table (meta without built_at and checksum) as bytes. */
static char *dump_snapshot(const char *path, size_t *n)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    static const char *const q[] = {
        "SELECT key, value FROM meta WHERE key NOT IN ('built_at', 'checksum') ORDER BY key",
        "SELECT * FROM docs ORDER BY rowid", "SELECT * FROM chunks ORDER BY id", "SELECT * FROM terms ORDER BY term",
        "SELECT * FROM blobs ORDER BY name", NULL};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (const char *const *sql = q; *sql; sql++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, *sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const void *v = sqlite3_column_blob(st, i);
                size_t vn = (size_t)sqlite3_column_bytes(st, i);
                if (len + vn + 16 > cap) {
                    cap = (len + vn + 16) * 2;
                    buf = realloc(buf, cap);
                    assert_non_null(buf);
                }
                len += (size_t)snprintf(buf + len, 16, "|%d:%zu:", sqlite3_column_type(st, i), vn);
                if (vn)
                    memcpy(buf + len, v, vn);
                len += vn;
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    *n = len;
    return buf;
}

/* Writes a mixed corpus: the test corpus plus Markdown (pt and en, with
 * accents), HTML and text files of very different sizes, so that worker
 * threads finish out of order. */
static void write_mixed_corpus(const char *dir)
{
    assert_int_equal(copy_tree(corpus, dir), 0);
    static const char *const words[] = {"aplicação", "Tesouro", "IPCA+", "R$ 1.250,50", "dividendos", "ações",
                                        "liquidez", "D+30", "22,5%", "yield", "bonds", "taxes", "FII", "Über"};
    unsigned seed = 7;
    for (int f = 0; f < 40; f++) {
        char path[900];
        const char *ext = f % 5 == 3 ? "html" : f % 5 == 4 ? "txt" : "md";
        snprintf(path, sizeof(path), "%s/gen/f%02d.%s", dir, f, ext);
        if (f == 0) {
            char d[700];
            snprintf(d, sizeof(d), "%s/gen", dir);
            assert_int_equal(mkdir(d, 0755), 0);
        }
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        if (ext[0] == 'h')
            fprintf(fp, "<html><head><title>Página %d</title></head><body><h1>Título %d</h1>", f, f);
        else if (ext[0] == 'm')
            fprintf(fp, "---\ntitle: Doc %d\nlang: %s\n---\n# Doc %d\n", f, f % 2 ? "en" : "pt", f);
        int paras = f % 7 == 0 ? 120 : 1 + f % 4;
        for (int p = 0; p < paras; p++) {
            fprintf(fp, ext[0] == 'h' ? "<h2>Seção %d</h2><p>" : ext[0] == 'm' ? "\n## Seção %d\n\n" : "\n%d\n", p);
            for (int w = 0; w < 60; w++) {
                seed = seed * 1103515245u + 12345u;
                fprintf(fp, "%s%d %s ", words[seed % 14], (int)(seed >> 20) % 50, words[(seed >> 8) % 14]);
            }
            fputs(ext[0] == 'h' ? "</p>" : "\n", fp);
        }
        fclose(fp);
    }
}

/* The snapshot's content does not depend on the number of analysis threads. */
static void test_threads_same_snapshot(void **state)
{
    (void)state;
    char dir[600], out[700];
    snprintf(dir, sizeof(dir), "%s/mixed", tmpdir);
    write_mixed_corpus(dir);
    char *first = NULL, *err = NULL;
    size_t first_n = 0;
    char version[33] = "";
    static const unsigned threads[] = {1, 2, 3, 8};
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        snprintf(out, sizeof(out), "%s/t%u.kb", tmpdir, threads[i]);
        toro_kb_build_opts_t o = {.threads = threads[i]};
        toro_kb_build_stats_t st;
        int rc = toro_kb_build_dir_opts(dir, out, NULL, &o, &st, &err);
        if (rc)
            print_error("build with %u threads: %s\n", threads[i], err ? err : "?");
        assert_int_equal(rc, 0);
        assert_int_equal(st.threads, threads[i]);
        assert_true(st.n_files > 40 && st.n_chunks > 200);
        toro_kb_t *k = NULL;
        assert_int_equal(toro_kb_open(out, &k, &err), 0); /* checksum verified */
        toro_kb_close(k);
        size_t n = 0;
        char *d = dump_snapshot(out, &n);
        if (!first) {
            first = d;
            first_n = n;
            memcpy(version, st.version, sizeof(version));
            continue;
        }
        assert_string_equal(version, st.version);
        assert_int_equal(n, first_n);
        assert_memory_equal(d, first, n);
        free(d);
    }
    free(first);
}

typedef struct worker {
    int ok;
} worker_t;

static const char *TQ[] = {"garantia do FGC", "imposto de renda", "dividends tax", "resgate D+0", "IPCA+"};
static char expected[5][64];

static void *search_loop(void *arg)
{
    worker_t *w = arg;
    w->ok = 1;
    for (int i = 0; i < 300; i++) {
        int qi = i % 5;
        toro_kb_hit_t *h = NULL;
        size_t n = 0;
        if (toro_kb_search(kb, TQ[qi], 5, &h, &n) != 0 || n == 0 || strcmp(h[0].chunk_id, expected[qi]) != 0)
            w->ok = 0;
        toro_kb_hits_free(h, n);
    }
    return NULL;
}

static void test_concurrent_search(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        toro_kb_hit_t *h = NULL;
        size_t n = 0;
        assert_int_equal(toro_kb_search(kb, TQ[i], 5, &h, &n), 0);
        assert_true(n > 0);
        snprintf(expected[i], sizeof(expected[i]), "%s", h[0].chunk_id);
        toro_kb_hits_free(h, n);
    }
    pthread_t t[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, search_loop, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(w[i].ok);
    }
}

static void test_beir_eval(void **state)
{
    (void)state;
    char dir[2100], out[600];
    const char *src = getenv("TORO_SOURCE_DIR");
    snprintf(dir, sizeof(dir), "%s/tests/data/kb/beir", src ? src : ".");
    snprintf(out, sizeof(out), "%s/beir.kb", tmpdir);
    toro_eval_metrics_t m;
    char *err = NULL;
    int rc = toro_kb_eval_beir(dir, out, &m, &err);
    if (rc)
        print_error("beir: %s\n", err ? err : "?");
    assert_int_equal(rc, 0);
    assert_int_equal(m.n_questions, 3);
    assert_true(m.ndcg10 > 0.999);
    assert_true(m.recall100 > 0.999);
    assert_true(m.mrr > 0.999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranking),          cmocka_unit_test(test_tokens_across_spellings),
        cmocka_unit_test(test_hit_fields),       cmocka_unit_test(test_not_relevant),
        cmocka_unit_test(test_version_determinism), cmocka_unit_test(test_concurrent_search),
        cmocka_unit_test(test_beir_eval),        cmocka_unit_test(test_typo_tolerant),
        cmocka_unit_test(test_same_search),      cmocka_unit_test(test_typo_fix),
        cmocka_unit_test(test_other_analyzer_refused), cmocka_unit_test(test_threads_same_snapshot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
