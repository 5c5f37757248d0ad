/* kb.c: the snapshot reader: open, BM25 search, relevance threshold (see
 * kb.h, index.h). Chunk lengths live in memory; postings and chunk rows are
 * read from SQLite through one connection guarded by a mutex, held only for
 * the lookups, so scoring runs in parallel across threads. It never writes. */
#include "kb/kb.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kb/analyzer.h"
#include "kb/checksum.h"
#include "kb/index.h"

#define BM25_K1 1.2
#define BM25_B 0.75
#define MAX_GROUPS 32  /* query tokens considered (coverage mask bits) */
#define MAX_TERMS 96   /* distinct stems across languages */
#define MAX_K 10000

/* Relevance threshold: the best chunk must hold at least this share of the
 * query's idf weight and score at least this BM25. Tuned on kb/eval. */
#define REL_MIN_COVERAGE 0.45
#define REL_MIN_SCORE 1.5
#define REL_MIN_COVERAGE_STRONG 0.2
#define REL_STRONG_SCORE 6.5

struct toro_kb {
    sqlite3 *db;
    pthread_mutex_t mu;     /* guards db and the statements */
    sqlite3_stmt *q_term;   /* SELECT df, postings FROM terms WHERE term=? */
    sqlite3_stmt *q_chunk;  /* SELECT ... FROM chunks WHERE id=? */
    char *version;
    uint32_t n_chunks;
    uint32_t *lens;         /* analyzed length per chunk */
    double avgdl;
    char langs[2][3];       /* snapshot languages */
    int nlangs;
};

static char *meta(sqlite3 *db, const char *key)
{
    sqlite3_stmt *s = NULL;
    char *r = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
            r = strdup((const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return r;
}


int toro_kb_open(const char *path, toro_kb_t **out, char **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    toro_kb_t *kb = calloc(1, sizeof(*kb));
    if (!kb)
        return TORO_ENOMEM;
    pthread_mutex_init(&kb->mu, NULL);
    int rc = TORO_EFORMAT;
    char *fmt = NULL, *langs = NULL, *avg = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        toro_set_err(err, "cannot open knowledge base %s: no such file", path);
        rc = TORO_EIO;
        goto out;
    }
    fclose(probe);
    if (sqlite3_open_v2(path, &kb->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        toro_set_err(err, "cannot open knowledge base %s: %s", path, kb->db ? sqlite3_errmsg(kb->db) : "out of memory");
        rc = TORO_EIO;
        goto out;
    }
    fmt = meta(kb->db, "format");
    if (!fmt || strcmp(fmt, TORO_KB_FORMAT) != 0) {
        toro_set_err(err, "%s is not a toro knowledge base snapshot (expected format %s)", path, TORO_KB_FORMAT);
        goto out;
    }
    if (toro_kb_checksum_verify(kb->db, path, err) < 0) /* a damaged file is refused at start */
        goto out;
    kb->version = meta(kb->db, "version");
    langs = meta(kb->db, "languages");
    avg = meta(kb->db, "avg_chunk_terms");
    if (!kb->version || !langs || !avg) {
        toro_set_err(err, "%s: snapshot metadata incomplete", path);
        goto out;
    }
    kb->avgdl = strtod(avg, NULL);
    if (kb->avgdl <= 0)
        kb->avgdl = 1;
    if (strstr(langs, "pt"))
        memcpy(kb->langs[kb->nlangs++], "pt", 3);
    if (strstr(langs, "en"))
        memcpy(kb->langs[kb->nlangs++], "en", 3);
    if (!kb->nlangs)
        memcpy(kb->langs[kb->nlangs++], "pt", 3);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(kb->db, "SELECT data FROM blobs WHERE name='lengths'", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        toro_set_err(err, "%s: chunk lengths missing", path);
        goto out;
    }
    int bl = sqlite3_column_bytes(s, 0);
    const uint8_t *blob = sqlite3_column_blob(s, 0);
    kb->n_chunks = (uint32_t)(bl / 4);
    kb->lens = malloc((size_t)kb->n_chunks * 4 + 4);
    if (!kb->lens) {
        sqlite3_finalize(s);
        rc = TORO_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < kb->n_chunks; i++)
        kb->lens[i] = (uint32_t)blob[4 * i] | (uint32_t)blob[4 * i + 1] << 8 | (uint32_t)blob[4 * i + 2] << 16 |
                      (uint32_t)blob[4 * i + 3] << 24;
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(kb->db, "SELECT df, postings FROM terms WHERE term=?", -1, &kb->q_term, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(kb->db, "SELECT chunk_id, doc_id, title, section, lang, text FROM chunks WHERE id=?", -1,
                           &kb->q_chunk, NULL) != SQLITE_OK) {
        toro_set_err(err, "%s: %s", path, sqlite3_errmsg(kb->db));
        goto out;
    }
    rc = 0;
out:
    free(fmt);
    free(langs);
    free(avg);
    if (rc)
        toro_kb_close(kb);
    else
        *out = kb;
    return rc;
}

void toro_kb_close(toro_kb_t *kb)
{
    if (!kb)
        return;
    sqlite3_finalize(kb->q_term);
    sqlite3_finalize(kb->q_chunk);
    if (kb->db)
        sqlite3_close(kb->db);
    pthread_mutex_destroy(&kb->mu);
    free(kb->lens);
    free(kb->version);
    free(kb);
}

const char *toro_kb_version(const toro_kb_t *kb)
{
    return kb->version;
}

const char *toro_kb_detect_lang(const char *text)
{
    return toro_lang_detect(text, text ? strlen(text) : 0);
}

int toro_kb_hit_is_relevant(const toro_kb_t *kb, const toro_kb_hit_t *hit)
{
    (void)kb;
    if (!hit)
        return 0;
    /* Most of the question matched, or a strong match on a good part of it. */
    return (hit->coverage >= REL_MIN_COVERAGE && hit->score >= REL_MIN_SCORE) ||
           (hit->coverage >= REL_MIN_COVERAGE_STRONG && hit->score >= REL_STRONG_SCORE);
}

/* ---- query analysis ----------------------------------------------------- */

typedef struct qterm {
    char s[TORO_TOKEN_MAX + 1];
    uint32_t mask;     /* query groups (tokens) this stem stands for */
    double idf;
    uint32_t df;
    uint8_t *post;     /* copied postings */
    size_t plen;
} qterm_t;

typedef struct query {
    toro_kb_t *kb;
    toro_analyzer_t *an[2];
    qterm_t terms[MAX_TERMS];
    int nterms;
    int ngroups;
    char groups[MAX_GROUPS][TORO_TOKEN_MAX + 1]; /* folded token of each group (dedupe) */
} query_t;

static void add_term(query_t *q, const char *s, size_t n, int group)
{
    for (int i = 0; i < q->nterms; i++)
        if (strcmp(q->terms[i].s, s) == 0) {
            q->terms[i].mask |= 1u << group;
            return;
        }
    if (q->nterms == MAX_TERMS)
        return;
    qterm_t *t = &q->terms[q->nterms++];
    memcpy(t->s, s, n + 1);
    t->mask = 1u << group;
}

static int query_tok(void *ud, const char *tok, size_t len, int kind)
{
    query_t *q = ud;
    if (kind == TORO_TOK_WORD)
        for (int l = 0; l < q->kb->nlangs; l++)
            if (toro_is_stopword(q->kb->langs[l], tok, len))
                return 0;
    for (int g = 0; g < q->ngroups; g++) /* a repeated word is one group */
        if (strcmp(q->groups[g], tok) == 0)
            return 0;
    if (q->ngroups == MAX_GROUPS)
        return 1;
    int g = q->ngroups++;
    memcpy(q->groups[g], tok, len + 1);
    if (kind == TORO_TOK_SPECIAL) {
        add_term(q, tok, len, g);
        return 0;
    }
    for (int l = 0; l < q->kb->nlangs; l++) {
        char stem[TORO_TOKEN_MAX + 1];
        size_t n = toro_analyzer_stem(q->an[l], tok, len, stem);
        add_term(q, stem, n, g);
    }
    return 0;
}

/* ---- top-k ---------------------------------------------------------------- */

typedef struct cand {
    float score;
    uint32_t id;
} cand_t;

/* Worse first: lower score, then higher id (ties go to the earlier chunk). */
static int worse(const cand_t *a, const cand_t *b)
{
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void sift_down(cand_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        cand_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int cmp_best(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return strdup(t ? (const char *)t : "");
}

int toro_kb_search(toro_kb_t *kb, const char *query, size_t k, toro_kb_hit_t **hits, size_t *n)
{
    *hits = NULL;
    *n = 0;
    if (!kb || !query)
        return TORO_EINVAL;
    if (k == 0)
        return 0;
    if (k > MAX_K)
        k = MAX_K;
    int rc = 0;
    query_t *q = calloc(1, sizeof(*q));
    float *scores = NULL;
    uint32_t *masks = NULL;
    cand_t *heap = NULL;
    toro_kb_hit_t *out = NULL;
    if (!q)
        return TORO_ENOMEM;
    q->kb = kb;
    for (int l = 0; l < kb->nlangs; l++)
        if ((rc = toro_analyzer_new(kb->langs[l], false, &q->an[l])) != 0)
            goto out;
    size_t flen;
    char *folded = toro_fold(query, strlen(query), &flen);
    if (!folded) {
        rc = TORO_ENOMEM;
        goto out;
    }
    toro_tokenize(folded, flen, query_tok, q);
    free(folded);
    if (q->nterms == 0 || kb->n_chunks == 0)
        goto out;

    /* Look up postings (the only shared state touched). */
    pthread_mutex_lock(&kb->mu);
    for (int i = 0; i < q->nterms && rc == 0; i++) {
        qterm_t *t = &q->terms[i];
        sqlite3_bind_text(kb->q_term, 1, t->s, -1, SQLITE_STATIC);
        if (sqlite3_step(kb->q_term) == SQLITE_ROW) {
            t->df = (uint32_t)sqlite3_column_int64(kb->q_term, 0);
            int bl = sqlite3_column_bytes(kb->q_term, 1);
            const void *b = sqlite3_column_blob(kb->q_term, 1);
            t->post = malloc((size_t)bl + 1);
            if (!t->post)
                rc = TORO_ENOMEM;
            else if (bl)
                memcpy(t->post, b, (size_t)bl);
            t->plen = (size_t)bl;
        }
        sqlite3_reset(kb->q_term);
    }
    pthread_mutex_unlock(&kb->mu);
    if (rc)
        goto out;

    /* Group weights for coverage: the best idf among a group's known stems,
     * or the idf of an unseen term when none of them occurs. */
    double N = kb->n_chunks;
    double unseen = log(1.0 + (N + 0.5) / 0.5);
    double gw[MAX_GROUPS];
    int gseen[MAX_GROUPS] = {0};
    for (int g = 0; g < q->ngroups; g++)
        gw[g] = 0;
    for (int i = 0; i < q->nterms; i++) {
        qterm_t *t = &q->terms[i];
        t->idf = log(1.0 + (N - t->df + 0.5) / (t->df + 0.5));
        if (!t->df)
            continue;
        for (int g = 0; g < q->ngroups; g++)
            if (t->mask & (1u << g)) {
                gseen[g] = 1;
                if (t->idf > gw[g])
                    gw[g] = t->idf;
            }
    }
    double total_w = 0;
    for (int g = 0; g < q->ngroups; g++) {
        /* An unknown word says the question is about something else; an
         * unknown number ("400 mil", "7 reais") is only the asker's case. */
        if (!gseen[g])
            gw[g] = (q->groups[g][0] >= '0' && q->groups[g][0] <= '9') ? 0.0 : unseen;
        total_w += gw[g];
    }

    scores = calloc(kb->n_chunks, sizeof(float));
    masks = calloc(kb->n_chunks, sizeof(uint32_t));
    if (!scores || !masks) {
        rc = TORO_ENOMEM;
        goto out;
    }
    for (int i = 0; i < q->nterms; i++) {
        qterm_t *t = &q->terms[i];
        uint32_t id = 0;
        int first = 1;
        for (size_t p = 0; p < t->plen;) {
            uint32_t delta, tf;
            size_t a = toro_varint_get(t->post + p, t->plen - p, &delta);
            if (!a)
                break;
            p += a;
            size_t b2 = toro_varint_get(t->post + p, t->plen - p, &tf);
            if (!b2)
                break;
            p += b2;
            id = first ? delta : id + delta;
            first = 0;
            if (id >= kb->n_chunks)
                break;
            /* Stems of one token in two languages count once per chunk. */
            if ((masks[id] & t->mask) == t->mask)
                continue;
            double dl = kb->lens[id];
            double w = t->idf * (tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * dl / kb->avgdl));
            scores[id] += (float)w;
            masks[id] |= t->mask;
        }
    }
    heap = malloc(k * sizeof(cand_t));
    if (!heap) {
        rc = TORO_ENOMEM;
        goto out;
    }
    size_t hn = 0;
    for (uint32_t i = 0; i < kb->n_chunks; i++) {
        if (scores[i] <= 0)
            continue;
        cand_t c = {scores[i], i};
        if (hn < k) {
            heap[hn++] = c;
            if (hn == k)
                for (size_t j = k / 2 + 1; j-- > 0;)
                    sift_down(heap, hn, j);
        } else if (worse(&heap[0], &c)) {
            heap[0] = c;
            sift_down(heap, hn, 0);
        }
    }
    qsort(heap, hn, sizeof(cand_t), cmp_best);
    if (hn == 0)
        goto out;
    out = calloc(hn, sizeof(toro_kb_hit_t));
    if (!out) {
        rc = TORO_ENOMEM;
        goto out;
    }
    size_t got = 0;
    pthread_mutex_lock(&kb->mu);
    for (size_t i = 0; i < hn && rc == 0; i++) {
        sqlite3_bind_int64(kb->q_chunk, 1, heap[i].id);
        if (sqlite3_step(kb->q_chunk) == SQLITE_ROW) {
            toro_kb_hit_t *h = &out[got];
            h->chunk_id = col_dup(kb->q_chunk, 0);
            h->doc_id = col_dup(kb->q_chunk, 1);
            h->title = col_dup(kb->q_chunk, 2);
            h->section = col_dup(kb->q_chunk, 3);
            h->lang = col_dup(kb->q_chunk, 4);
            h->text = col_dup(kb->q_chunk, 5);
            h->score = heap[i].score;
            double cw = 0;
            for (int g = 0; g < q->ngroups; g++)
                if (masks[heap[i].id] & (1u << g))
                    cw += gw[g];
            h->coverage = total_w > 0 ? cw / total_w : 0;
            got++;
            if (!h->chunk_id || !h->doc_id || !h->title || !h->section || !h->lang || !h->text)
                rc = TORO_ENOMEM;
        } else {
            rc = TORO_EFORMAT;
        }
        sqlite3_reset(kb->q_chunk);
    }
    pthread_mutex_unlock(&kb->mu);
    if (rc) {
        toro_kb_hits_free(out, got);
        out = NULL;
        goto out;
    }
    *hits = out;
    *n = got;
out:
    for (int i = 0; i < q->nterms; i++)
        free(q->terms[i].post);
    for (int l = 0; l < 2; l++)
        toro_analyzer_free(q->an[l]);
    free(q);
    free(scores);
    free(masks);
    free(heap);
    return rc;
}

void toro_kb_hits_free(toro_kb_hit_t *hits, size_t n)
{
    if (!hits)
        return;
    for (size_t i = 0; i < n; i++) {
        free(hits[i].chunk_id);
        free(hits[i].doc_id);
        free(hits[i].title);
        free(hits[i].section);
        free(hits[i].lang);
        free(hits[i].text);
    }
    free(hits);
}
