/* test_kb_postings.c: the in-memory postings (postings.c) hold exactly the
 * snapshot's stored lists. A snapshot with long lists, rare words (wide
 * chunk-id gaps), high term frequencies (wide tf fields) and chunks of very
 * different lengths is built, its terms table is decoded here independently
 * (varints, index.h), and every list is compared posting by posting with a
 * cursor walk over the packed blocks. Also checked: each posting's impact
 * level is the tightest that bounds its BM25 tf factor, block maxima bound
 * their postings, seeks land on the first posting >= the target, and
 * toro_pcursor_scan finds the first posting in [target, limit] at a level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "kb/index.h"
#include "kb/postings.h"

#define N_DOCS 60
#define CHUNKS_PER_DOC 50
#define MAX_LIST (N_DOCS * CHUNKS_PER_DOC)

static uint64_t rng = 0x243F6A8885A308D3ull;
static char tmpdir[64], snap[128];

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* A chunk: a few common words, some repeated many times (tf up to ~300),
 * rare words ("rare" + number: lists with wide gaps), 1..600 words. */
static void make_text(char *out, size_t cap)
{
    static const char *common[] = {"juros", "taxa", "tesouro", "renda", "fundo", "prazo"};
    size_t n = 1 + rnd() % (rnd() % 8 == 0 ? 600 : 60), len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        char w[32];
        uint32_t r = rnd() % 100;
        if (r < 60)
            snprintf(w, sizeof(w), "%s", common[rnd() % (r < 30 ? 2 : 6)]);
        else if (r < 70)
            snprintf(w, sizeof(w), "rare%u", rnd() % 40);
        else
            snprintf(w, sizeof(w), "palavra%u", rnd() % 3000);
        int m = snprintf(out + len, cap - len, "%s%s", i ? " " : "", w);
        if (m < 0 || (size_t)m >= cap - len)
            break;
        len += (size_t)m;
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/toro-kb-postings-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(snap, sizeof(snap), "%s/p.kb", tmpdir);
    toro_kb_builder_t *b = NULL;
    char *err = NULL;
    if (toro_kb_builder_new(snap, NULL, &b, &err) != 0)
        return -1;
    static char texts[CHUNKS_PER_DOC][8192];
    toro_chunk_t ch[CHUNKS_PER_DOC];
    int rc = 0;
    for (int d = 0; d < N_DOCS && rc == 0; d++) {
        char id[32];
        snprintf(id, sizeof(id), "doc%03d", d);
        for (int c = 0; c < CHUNKS_PER_DOC; c++) {
            make_text(texts[c], sizeof(texts[c]));
            ch[c] = (toro_chunk_t){"", texts[c], 0, strlen(texts[c])};
        }
        toro_doc_t doc = {id, "T", "pt", ch, CHUNKS_PER_DOC};
        rc = toro_kb_builder_add_doc(b, &doc, NULL, 1000);
    }
    if (rc == 0)
        rc = toro_kb_builder_finish(b, NULL, &err);
    toro_kb_builder_free(b);
    if (rc)
        fprintf(stderr, "build: %s\n", err ? err : "?");
    free(err);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(snap);
    rmdir(tmpdir);
    return 0;
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
    assert_int_equal(nchunks, N_DOCS * CHUNKS_PER_DOC);
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
    assert_true(wide >= 20);      /* gaps and tfs wider than a byte */
    assert_null(toro_postings_find(&p, "nosuchterm", 10));
    toro_postings_free(&p);
    free(lens);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postings_match_stored_lists),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
