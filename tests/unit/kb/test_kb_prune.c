/* test_kb_prune.c: BM25 with dynamic pruning (MaxScore over block maxima
 * and impact levels) returns exactly what scoring every posting returns. A corpus of a few
 * thousand chunks with a Zipf vocabulary (real Portuguese and English
 * finance words, so a token has two stems, plus synthetic words; some
 * chunks duplicated so scores tie) is built here, opened twice (pruned, and
 * exhaustive through toro_kb_set_exhaustive), and >= 200 queries are
 * compared hit by hit: chunk, score, BM25, coverage, relevance. Queries
 * cover repeated words, very frequent words, words absent from the corpus
 * (typo matching, numbers) and k larger than the number of matching chunks.
 * Both searches read the same in-memory postings (postings.c), so these are
 * checked on their own against the snapshot's terms table decoded here
 * independently (varints, index.h), posting by posting: ids, tfs, each
 * posting's impact level (the tightest that bounds its BM25 tf factor),
 * block maxima, seeks to the first posting >= a target, and
 * toro_pcursor_scan's first posting in [target, limit] at a level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "kb/index.h"
#include "kb/kb.h"
#include "kb/postings.h"

#define N_DOCS 300
#define CHUNKS_PER_DOC 10
#define N_SYN 3000
#define N_QUERIES 240
#define MAX_LIST (N_DOCS * CHUNKS_PER_DOC)

static const char *const real_words[] = {
    "taxa",     "taxas",       "juros",     "tesouro",  "selic",      "imposto",    "renda",   "liquidez",
    "prazo",    "dividendos",  "fundo",     "fundos",   "acoes",      "investment", "interest", "rates",
    "rate",     "treasury",    "bonds",     "bond",     "income",     "tax",        "taxes",   "savings",
    "poupanca", "rendimento",  "rendimentos", "garantia", "previdencia", "inflation", "inflacao", "credito",
};
#define N_REAL (sizeof(real_words) / sizeof(real_words[0]))

static char syn[N_SYN][12];
static uint64_t rng = 88172645463325252ull;
static char tmpdir[64], snap[128];
static toro_kb_t *pruned, *full;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Word w of the vocabulary: the real words are the most frequent ones. */
static const char *word(size_t w)
{
    return w < N_REAL ? real_words[w] : syn[(w - N_REAL) % N_SYN];
}

/* A Zipf(1.1)-like rank over N_REAL + N_SYN words by inverse transform of
 * a table built once. */
static double cdf[N_REAL + N_SYN];

static void build_cdf(void)
{
    double s = 0;
    for (size_t i = 0; i < N_REAL + N_SYN; i++)
        cdf[i] = (s += 1.0 / pow((double)(i + 1), 1.1));
    for (size_t i = 0; i < N_REAL + N_SYN; i++)
        cdf[i] /= s;
}

static size_t zipf(void)
{
    double u = (rnd() % 1000000) / 1e6;
    size_t lo = 0, hi = N_REAL + N_SYN - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void make_text(char *out, size_t cap)
{
    size_t n = 5 + rnd() % 110, len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int m = snprintf(out + len, cap - len, "%s%s", i ? " " : "", word(zipf()));
        if (m < 0 || (size_t)m >= cap - len)
            break;
        len += (size_t)m;
    }
}

static int setup(void **state)
{
    (void)state;
    build_cdf();
    for (size_t i = 0; i < N_SYN; i++) { /* letters only, 4-9 long */
        size_t n = 4 + rnd() % 6;
        for (size_t j = 0; j < n; j++)
            syn[i][j] = (char)('a' + rnd() % 26);
        syn[i][n] = 0;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/toro-kb-prune-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(snap, sizeof(snap), "%s/p.kb", tmpdir);
    toro_kb_builder_t *b = NULL;
    char *err = NULL;
    if (toro_kb_builder_new(snap, NULL, &b, &err) != 0)
        return -1;
    static char texts[CHUNKS_PER_DOC][2048];
    toro_chunk_t ch[CHUNKS_PER_DOC];
    int rc = 0;
    for (int d = 0; d < N_DOCS && rc == 0; d++) {
        char id[32], title[32];
        snprintf(id, sizeof(id), "doc%03d", d);
        snprintf(title, sizeof(title), "%.20s", word(N_REAL + (size_t)d));
        for (int c = 0; c < CHUNKS_PER_DOC; c++) {
            if (d % 10 == 9 && c < 5) /* copies of the previous document's chunks: tied scores */
                ;
            else
                make_text(texts[c], sizeof(texts[c]));
            ch[c] = (toro_chunk_t){"", texts[c], 0, strlen(texts[c])};
        }
        toro_doc_t doc = {id, title, d % 3 == 0 ? "en" : "pt", ch, CHUNKS_PER_DOC};
        rc = toro_kb_builder_add_doc(b, &doc, NULL, 1000);
    }
    if (rc == 0)
        rc = toro_kb_builder_finish(b, NULL, &err);
    toro_kb_builder_free(b);
    if (rc) {
        fprintf(stderr, "build: %s\n", err ? err : "?");
        free(err);
        return -1;
    }
    if (toro_kb_open(snap, &pruned, &err) != 0 || toro_kb_open(snap, &full, &err) != 0)
        return -1;
    toro_kb_set_exhaustive(full, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    toro_kb_close(pruned);
    toro_kb_close(full);
    unlink(snap);
    rmdir(tmpdir);
    return 0;
}

/* Searches q both ways with k and asserts the same hits; returns the count. */
static size_t same_hits(const char *q, size_t k)
{
    toro_kb_hit_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(toro_kb_search_mode(pruned, q, TORO_KB_MODE_BM25, k, &a, &na), 0);
    assert_int_equal(toro_kb_search_mode(full, q, TORO_KB_MODE_BM25, k, &b, &nb), 0);
    if (na != nb)
        fprintf(stderr, "query \"%s\" k=%zu: %zu hits pruned, %zu exhaustive\n", q, k, na, nb);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].chunk_id, b[i].chunk_id) != 0 || a[i].score != b[i].score)
            fprintf(stderr, "query \"%s\" k=%zu hit %zu: %s %.9g pruned, %s %.9g exhaustive\n", q, k, i,
                    a[i].chunk_id, a[i].score, b[i].chunk_id, b[i].score);
        assert_string_equal(a[i].chunk_id, b[i].chunk_id);
        assert_true(a[i].score == b[i].score);
        assert_true(a[i].bm25 == b[i].bm25);
        assert_true(a[i].coverage == b[i].coverage);
        assert_true(a[i].relevance == b[i].relevance);
        assert_true(i == 0 || a[i].score <= a[i - 1].score);
    }
    toro_kb_hits_free(a, na);
    toro_kb_hits_free(b, nb);
    return na;
}

static void random_query(char *q, size_t cap, int kind)
{
    size_t n = 1 + rnd() % 6, len = 0;
    q[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *w;
        char buf[24];
        if (kind == 1 && i > 0 && rnd() % 2) /* repeated words */
            w = word(rnd() % 8);
        else if (kind == 2) /* the most frequent words */
            w = word(rnd() % 6);
        else if (kind == 3 && i % 2 == 0) { /* absent: typos of known words, unknown words, numbers */
            int r = (int)(rnd() % 3);
            if (r == 0)
                snprintf(buf, sizeof(buf), "%sx", word(N_REAL + rnd() % 50));
            else if (r == 1)
                snprintf(buf, sizeof(buf), "qqzv%u", rnd() % 1000);
            else
                snprintf(buf, sizeof(buf), "%u", 100000 + rnd() % 900000);
            w = buf;
        } else
            w = word(rnd() % 2 ? zipf() : rnd() % (N_REAL + N_SYN));
        int m = snprintf(q + len, cap - len, "%s%s", i ? " " : "", w);
        if (m < 0 || (size_t)m >= cap - len)
            break;
        len += (size_t)m;
    }
}

static void test_pruned_equals_exhaustive(void **state)
{
    (void)state;
    char q[256];
    size_t full_k = 0, partial = 0;
    for (int i = 0; i < N_QUERIES; i++) {
        random_query(q, sizeof(q), i % 4);
        size_t k = i % 10 == 0 ? 1 + rnd() % 200 : 10;
        size_t n = same_hits(q, k);
        full_k += n == k;
        partial += n > 0 && n < k;
    }
    assert_true(full_k >= N_QUERIES / 2); /* most queries fill their k */
    /* Rare words: fewer matching chunks than k. */
    for (size_t w = N_REAL + N_SYN - 40; w < N_REAL + N_SYN; w++) {
        snprintf(q, sizeof(q), "%s %s", word(w), word(w));
        size_t n = same_hits(q, 1000);
        partial += n > 0 && n < 1000;
    }
    assert_true(partial >= 20);
    /* Repeated and very frequent words with a large k: ties and long lists. */
    assert_int_equal(same_hits("taxa taxa taxas juros", 10), 10);
    assert_true(same_hits("taxa juros tesouro selic imposto renda", 500) == 500);
    assert_int_equal(same_hits("qqqzzzvvv 98765432", 10), 0);
    same_hits("taxa", 10000);
}

/* The chunk lengths and average as kb.c reads them. */
static uint32_t *read_lengths(sqlite3 *db, uint32_t *n, double *avgdl)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT data FROM blobs WHERE name='lengths'", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const uint8_t *b = sqlite3_column_blob(s, 0);
    *n = (uint32_t)(sqlite3_column_bytes(s, 0) / 4);
    uint32_t *lens = malloc(((size_t)*n + 1) * sizeof(uint32_t));
    assert_non_null(lens);
    for (uint32_t i = 0; i < *n; i++)
        lens[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                  (uint32_t)b[4 * i + 3] << 24;
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='avg_chunk_terms'", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *avgdl = strtod((const char *)sqlite3_column_text(s, 0), NULL);
    sqlite3_finalize(s);
    return lens;
}

/* Decodes a stored list (varint gap, varint tf). Returns its length. */
static size_t decode_stored(const uint8_t *b, size_t bl, uint32_t *ids, uint32_t *tfs)
{
    size_t pos = 0, n = 0;
    uint32_t id = 0;
    while (pos < bl) {
        uint32_t gap, tf;
        size_t a = toro_varint_get(b + pos, bl - pos, &gap);
        assert_true(a > 0);
        size_t a2 = toro_varint_get(b + pos + a, bl - pos - a, &tf);
        assert_true(a2 > 0);
        pos += a + a2;
        id += gap;
        assert_true(n < MAX_LIST);
        ids[n] = id;
        tfs[n++] = tf;
    }
    return n;
}

/* One list: walk, impacts, block maxima, seeks and scans against ids/tfs. */
static void check_list(const toro_postings_t *p, const toro_pterm_t *t, const uint32_t *ids, const uint32_t *tfs,
                       size_t n, const uint32_t *lens, double avgdl, size_t *wide)
{
    toro_pcursor_t c;
    size_t i = 0;
    for (toro_pcursor_init(&c, p, t); c.id != TORO_POST_END; toro_pcursor_seek(&c, c.id + 1), i++) {
        assert_true(i < n);
        assert_int_equal(c.id, ids[i]);
        assert_int_equal(toro_pcursor_tf(&c), tfs[i]);
        double f = toro_bm25_tf_norm(tfs[i], toro_bm25_len_norm(lens[ids[i]], avgdl));
        unsigned l = c.imps[c.i];
        assert_true(toro_impact_bound(l) >= f);
        assert_true(l == 1 || toro_impact_bound(l - 1) < f); /* the tightest level */
        assert_true(p->blocks[t->block + c.b].maxf >= f);
        assert_true(t->maxf >= f);
        *wide += tfs[i] > 255 || (i && ids[i] - ids[i - 1] > 255);
    }
    assert_int_equal(i, n);
    for (int r = 0; r < 20; r++) { /* seeks forward to random targets */
        toro_pcursor_init(&c, p, t);
        for (uint32_t target = rnd() % 64; target < MAX_LIST; target += 1 + rnd() % 300) {
            toro_pcursor_seek(&c, target);
            size_t j = 0;
            while (j < n && ids[j] < target)
                j++;
            assert_int_equal(c.id, j < n ? ids[j] : TORO_POST_END);
        }
    }
    for (int r = 0; r < 40; r++) { /* scans inside a block, as MaxScore windows ask */
        toro_pcursor_init(&c, p, t);
        uint32_t target = rnd() % MAX_LIST, lmin = 1 + rnd() % 255, last;
        toro_pcursor_block_max(&c, target, &last);
        if (last == TORO_POST_END)
            continue;
        uint32_t limit = target + rnd() % (last - target + 1);
        uint32_t got = toro_pcursor_scan(&c, target, limit, lmin);
        size_t j = 0;
        while (j < n && ids[j] < target)
            j++;
        while (j < n && ids[j] <= limit && c.p->imp[t->imp + j] < lmin)
            j++;
        if (j < n && ids[j] <= limit)
            assert_int_equal(got, ids[j]);
        else
            assert_true(got > limit);
        j = 0;
        while (j < n && ids[j] <= limit)
            j++;
        uint32_t above = j < n ? ids[j] : TORO_POST_END;
        assert_true(c.id <= above); /* never past the first posting above limit */
        toro_pcursor_seek(&c, limit + 1);
        assert_int_equal(c.id, above);
    }
}

static void test_postings_match_stored_lists(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(snap, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    uint32_t nchunks;
    double avgdl;
    uint32_t *lens = read_lengths(db, &nchunks, &avgdl);
    assert_int_equal(nchunks, MAX_LIST);
    toro_postings_t p;
    char *err = NULL;
    assert_int_equal(toro_postings_load(&p, db, lens, nchunks, avgdl, &err), 0);
    static uint32_t ids[MAX_LIST], tfs[MAX_LIST];
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT term, postings FROM terms", -1, &s, NULL), SQLITE_OK);
    size_t terms = 0, long_lists = 0, wide = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *term = (const char *)sqlite3_column_text(s, 0);
        const toro_pterm_t *t = toro_postings_find(&p, term, strlen(term));
        assert_non_null(t);
        size_t n = decode_stored(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1), ids, tfs);
        assert_int_equal(t->npost, n);
        check_list(&p, t, ids, tfs, n, lens, avgdl, &wide);
        terms++;
        long_lists += n > 4 * TORO_POST_BLOCK;
    }
    sqlite3_finalize(s);
    assert_int_equal(terms, p.nterms);
    assert_true(long_lists >= 4); /* many blocks per list */
    assert_true(wide >= 20);      /* gaps wider than a byte */
    assert_null(toro_postings_find(&p, "nosuchterm", 10));
    toro_postings_free(&p);
    free(lens);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pruned_equals_exhaustive),
        cmocka_unit_test(test_postings_match_stored_lists),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
