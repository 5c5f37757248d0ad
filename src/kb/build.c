/* build.c: the snapshot writer (see index.h for the format). Postings are
 * accumulated in memory as varint byte strings (chunk ids only grow, so each
 * term's list is appended in order) while chunk rows stream into SQLite; the
 * terms table is written at the end, sorted. It does not read snapshots. */
#include "kb/index.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "kb/checksum.h"
#include "core/util.h"
#include "kb/analyzer.h"

size_t toro_varint_put(uint8_t *out, uint32_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t toro_varint_get(const uint8_t *in, size_t len, uint32_t *v)
{
    uint32_t r = 0;
    for (size_t i = 0; i < len && i < 5; i++) {
        r |= (uint32_t)(in[i] & 0x7F) << (7 * i);
        if (!(in[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0; /* truncated */
}

typedef struct term {
    char *s;        /* term bytes (arena) */
    uint32_t len;
    uint32_t df;
    uint32_t last;  /* last chunk id appended */
    uint8_t *post;  /* varint postings */
    uint32_t plen, pcap;
} term_t;

struct toro_kb_builder {
    sqlite3 *db;
    sqlite3_stmt *ins_chunk, *ins_doc;
    char *out_path, *tmp_path;
    toro_chunk_params_t params;
    EVP_MD_CTX *sha;
    toro_analyzer_t *an[2]; /* pt, en */
    int lang_used[2];
    term_t *terms;          /* hash table, open addressing */
    uint32_t tcap, tcount;
    uint32_t *lens;         /* analyzed length of each chunk */
    uint32_t nchunks, lcap;
    uint64_t total_len;
    size_t n_docs, bytes_in;
    /* per-chunk scratch: term ids of the current chunk */
    uint32_t *scratch;
    size_t nscratch, capscratch;
    int scratch_err;
    double t0;
    int finished;
    toro_embedder_t *embedder;          /* borrowed; NULL = no vectors */
    toro_kb_embed_progress_cb eprogress;
    void *eprogress_ud;
    double embed_seconds;
};

static double now_s(void)
{
    return (double)toro_mono_ms() / 1000.0;
}


static int exec(sqlite3 *db, const char *sql, char **err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        toro_set_err(err, "sqlite: %s (%s)", msg ? msg : "error", sql);
        sqlite3_free(msg);
        return TORO_EIO;
    }
    return 0;
}

int toro_kb_builder_new(const char *out_path, const toro_chunk_params_t *params, toro_kb_builder_t **out,
                        char **err)
{
    *out = NULL;
    toro_kb_builder_t *b = calloc(1, sizeof(*b));
    if (!b)
        return TORO_ENOMEM;
    int rc = TORO_ENOMEM;
    toro_chunk_params_t defp = TORO_CHUNK_PARAMS_DEFAULT;
    b->params = params ? *params : defp;
    b->t0 = now_s();
    b->out_path = strdup(out_path);
    size_t tl = strlen(out_path) + 5;
    b->tmp_path = malloc(tl);
    b->tcap = 1u << 16;
    b->terms = calloc(b->tcap, sizeof(term_t));
    b->sha = EVP_MD_CTX_new();
    if (!b->out_path || !b->tmp_path || !b->terms || !b->sha)
        goto out;
    snprintf(b->tmp_path, tl, "%s.tmp", out_path);
    if ((rc = toro_analyzer_new("pt", true, &b->an[0])) || (rc = toro_analyzer_new("en", true, &b->an[1])))
        goto out;
    if (EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1) {
        rc = TORO_EIO;
        goto out;
    }
    char pbuf[128];
    snprintf(pbuf, sizeof(pbuf), "%s|%s|max=%zu|overlap=%zu|", TORO_KB_FORMAT, TORO_ANALYZER_VERSION,
             b->params.max_chars, b->params.overlap_chars);
    toro_kb_builder_hash(b, pbuf, strlen(pbuf));
    unlink(b->tmp_path);
    if (sqlite3_open_v2(b->tmp_path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        toro_set_err(err, "cannot create %s: %s", b->tmp_path, b->db ? sqlite3_errmsg(b->db) : "out of memory");
        rc = TORO_EIO;
        goto out;
    }
    rc = exec(b->db,
              "PRAGMA page_size=8192; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
              "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
              "CREATE TABLE docs(doc_id TEXT PRIMARY KEY, title TEXT, lang TEXT, path TEXT, bytes INTEGER);"
              "CREATE TABLE chunks(id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,"
              " title TEXT, section TEXT, lang TEXT, text TEXT, start_off INTEGER, end_off INTEGER,"
              " n_terms INTEGER);"
              "CREATE TABLE terms(term TEXT PRIMARY KEY, df INTEGER NOT NULL, postings BLOB NOT NULL) WITHOUT ROWID;"
              "CREATE TABLE blobs(name TEXT PRIMARY KEY, data BLOB);"
              "BEGIN;",
              err);
    if (rc)
        goto out;
    if (sqlite3_prepare_v2(b->db,
                           "INSERT INTO chunks(id,chunk_id,doc_id,title,section,lang,text,start_off,end_off,n_terms)"
                           " VALUES(?,?,?,?,?,?,?,?,?,?)",
                           -1, &b->ins_chunk, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db, "INSERT OR REPLACE INTO docs(doc_id,title,lang,path,bytes) VALUES(?,?,?,?,?)", -1,
                           &b->ins_doc, NULL) != SQLITE_OK) {
        toro_set_err(err, "sqlite: %s", sqlite3_errmsg(b->db));
        rc = TORO_EIO;
        goto out;
    }
    rc = 0;
out:
    if (rc)
        toro_kb_builder_free(b);
    else
        *out = b;
    return rc;
}

void toro_kb_builder_hash(toro_kb_builder_t *b, const void *data, size_t len)
{
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)len >> (8 * i));
    EVP_DigestUpdate(b->sha, lenbuf, sizeof(lenbuf)); /* length-prefixed: no ambiguity */
    EVP_DigestUpdate(b->sha, data, len);
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int grow_terms(toro_kb_builder_t *b)
{
    uint32_t nc = b->tcap * 2;
    term_t *nt = calloc(nc, sizeof(term_t));
    if (!nt)
        return TORO_ENOMEM;
    for (uint32_t i = 0; i < b->tcap; i++) {
        if (!b->terms[i].s)
            continue;
        uint32_t h = hash_bytes(b->terms[i].s, b->terms[i].len) & (nc - 1);
        while (nt[h].s)
            h = (h + 1) & (nc - 1);
        nt[h] = b->terms[i];
    }
    free(b->terms);
    b->terms = nt;
    b->tcap = nc;
    return 0;
}

/* Returns the slot of term (inserting it), or -1 on ENOMEM. */
static int64_t term_slot(toro_kb_builder_t *b, const char *s, size_t n)
{
    if ((b->tcount + 1) * 2 > b->tcap && grow_terms(b))
        return -1;
    uint32_t h = hash_bytes(s, n) & (b->tcap - 1);
    while (b->terms[h].s) {
        if (b->terms[h].len == n && memcmp(b->terms[h].s, s, n) == 0)
            return h;
        h = (h + 1) & (b->tcap - 1);
    }
    char *c = malloc(n + 1);
    if (!c)
        return -1;
    memcpy(c, s, n);
    c[n] = 0;
    b->terms[h].s = c;
    b->terms[h].len = (uint32_t)n;
    b->terms[h].last = 0;
    b->tcount++;
    return h;
}

/* The scratch holds term strings of the current chunk (slots move when the
 * table grows), so terms are collected as strings first. */
typedef struct collect {
    char *buf;        /* concatenated NUL-terminated terms */
    size_t n, cap;
    size_t count;
    int err;
} collect_t;

static int collect_cb(void *ud, const char *tok, size_t len, int kind)
{
    collect_t *c = ud;
    if (c->n + len + 1 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4096;
        while (nc < c->n + len + 1)
            nc *= 2;
        char *nb = realloc(c->buf, nc);
        if (!nb) {
            c->err = TORO_ENOMEM;
            return 1;
        }
        c->buf = nb;
        c->cap = nc;
    }
    memcpy(c->buf + c->n, tok, len + 1);
    c->n += len + 1;
    c->count++;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int post_append(term_t *t, uint32_t delta, uint32_t tf)
{
    if (t->plen + 10 > t->pcap) {
        uint32_t nc = t->pcap ? t->pcap * 2 : 16;
        uint8_t *np = realloc(t->post, nc);
        if (!np)
            return TORO_ENOMEM;
        t->post = np;
        t->pcap = nc;
    }
    t->plen += (uint32_t)toro_varint_put(t->post + t->plen, delta);
    t->plen += (uint32_t)toro_varint_put(t->post + t->plen, tf);
    return 0;
}

static int index_chunk(toro_kb_builder_t *b, toro_analyzer_t *an, const toro_doc_t *doc, const toro_chunk_t *ch,
                       uint32_t id)
{
    collect_t c = {0};
    int rc = 0;
    /* Title and section are indexed with the text: a chunk is about them. */
    size_t tl = strlen(doc->title), sl = strlen(ch->section), xl = strlen(ch->text);
    char *all = malloc(tl + sl + xl + 3);
    if (!all)
        return TORO_ENOMEM;
    memcpy(all, doc->title, tl);
    all[tl] = '\n';
    memcpy(all + tl + 1, ch->section, sl);
    all[tl + 1 + sl] = '\n';
    memcpy(all + tl + sl + 2, ch->text, xl + 1);
    rc = toro_analyze(an, all, tl + sl + xl + 2, collect_cb, &c);
    free(all);
    if (rc == 0 && c.err)
        rc = c.err;
    uint32_t *slots = NULL;
    if (rc == 0 && c.count) {
        slots = malloc(c.count * sizeof(uint32_t));
        if (!slots)
            rc = TORO_ENOMEM;
    }
    /* Insert all terms first (the table may grow), then resolve slots. */
    for (size_t off = 0; rc == 0 && off < c.n;) {
        size_t l = strlen(c.buf + off);
        if (term_slot(b, c.buf + off, l) < 0)
            rc = TORO_ENOMEM;
        off += l + 1;
    }
    size_t k = 0;
    for (size_t off = 0; rc == 0 && off < c.n; k++) {
        size_t l = strlen(c.buf + off);
        slots[k] = (uint32_t)term_slot(b, c.buf + off, l);
        off += l + 1;
    }
    if (rc == 0 && c.count) {
        qsort(slots, c.count, sizeof(uint32_t), cmp_u32);
        for (size_t i = 0; i < c.count && rc == 0;) {
            size_t j = i;
            while (j < c.count && slots[j] == slots[i])
                j++;
            term_t *t = &b->terms[slots[i]];
            rc = post_append(t, t->df == 0 ? id : id - t->last, (uint32_t)(j - i));
            t->last = id;
            t->df++;
            i = j;
        }
    }
    if (rc == 0) {
        if (b->nchunks == b->lcap) {
            uint32_t nc = b->lcap ? b->lcap * 2 : 1024;
            uint32_t *nl = realloc(b->lens, nc * sizeof(uint32_t));
            if (!nl)
                rc = TORO_ENOMEM;
            else {
                b->lens = nl;
                b->lcap = nc;
            }
        }
    }
    if (rc == 0) {
        b->lens[b->nchunks] = (uint32_t)c.count;
        b->total_len += c.count;
    }
    free(slots);
    free(c.buf);
    return rc;
}

int toro_kb_builder_add_doc(toro_kb_builder_t *b, const toro_doc_t *doc, const char *path, size_t bytes)
{
    assert(b && !b->finished && b->db && doc && doc->doc_id && doc->title && doc->lang);
    int li = strcmp(doc->lang, "en") == 0 ? 1 : 0;
    b->lang_used[li] = 1;
    int rc = 0;
    sqlite3_bind_text(b->ins_doc, 1, doc->doc_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 2, doc->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 3, doc->lang, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 4, path ? path : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(b->ins_doc, 5, (sqlite3_int64)bytes);
    if (sqlite3_step(b->ins_doc) != SQLITE_DONE)
        rc = TORO_EIO;
    sqlite3_reset(b->ins_doc);
    for (size_t i = 0; i < doc->n_chunks && rc == 0; i++) {
        const toro_chunk_t *ch = &doc->chunks[i];
        uint32_t id = b->nchunks;
        if ((rc = index_chunk(b, b->an[li], doc, ch, id)) != 0)
            break;
        char cid[512];
        snprintf(cid, sizeof(cid), "%s#%zu", doc->doc_id, i);
        sqlite3_stmt *s = b->ins_chunk;
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_text(s, 2, cid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, doc->doc_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, doc->title, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, ch->section, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, doc->lang, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, ch->text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 8, (sqlite3_int64)ch->start);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)ch->end);
        sqlite3_bind_int64(s, 10, b->lens[id]);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = TORO_EIO;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        b->nchunks++;
    }
    sqlite3_clear_bindings(b->ins_doc);
    b->n_docs++;
    return rc;
}

int toro_kb_builder_add_file(toro_kb_builder_t *b, const char *relpath, const char *bytes, size_t len,
                             toro_doc_format_t fmt, char **err)
{
    assert(b && relpath && (bytes || !len));
    toro_kb_builder_hash(b, relpath, strlen(relpath));
    toro_kb_builder_hash(b, bytes, len);
    b->bytes_in += len;
    /* doc_id defaults to the file name without directory and extension. */
    const char *base = strrchr(relpath, '/');
    base = base ? base + 1 : relpath;
    char id[256];
    snprintf(id, sizeof(id), "%s", base);
    char *dot = strrchr(id, '.');
    if (dot && dot != id)
        *dot = 0;
    toro_doc_t doc;
    int rc = toro_chunk_document(id, bytes, len, fmt, &b->params, &doc);
    if (rc) {
        toro_set_err(err, "cannot chunk %s: %s", relpath, toro_strerror(rc));
        return rc;
    }
    rc = toro_kb_builder_add_doc(b, &doc, relpath, len);
    if (rc)
        toro_set_err(err, "cannot index %s: %s", relpath, sqlite3_errmsg(b->db));
    toro_doc_clear(&doc);
    return rc;
}

void toro_kb_builder_set_embedder(toro_kb_builder_t *b, toro_embedder_t *e, toro_kb_embed_progress_cb progress,
                                  void *ud)
{
    assert(b && !b->finished && b->nchunks == 0); /* the identity must enter the version before any chunk */
    b->embedder = toro_embedder_is_none(e) ? NULL : e;
    b->eprogress = progress;
    b->eprogress_ud = ud;
    if (b->embedder) {
        toro_kb_builder_hash(b, "|embedder=", 10);
        toro_kb_builder_hash(b, e->identity, strlen(e->identity));
    }
}

/* The text embedded for a chunk: what the chunk is about, then the chunk. */
static char *passage_text(sqlite3_stmt *s)
{
    const char *t = (const char *)sqlite3_column_text(s, 0), *sec = (const char *)sqlite3_column_text(s, 1),
               *x = (const char *)sqlite3_column_text(s, 2);
    t = t ? t : "";
    sec = sec ? sec : "";
    x = x ? x : "";
    size_t l = strlen(t) + strlen(sec) + strlen(x) + 4;
    char *p = malloc(l);
    if (p)
        snprintf(p, l, "%s%s%s\n%s", t, *sec ? "\n" : "", sec, x);
    return p;
}

/* Embeds every chunk (in id order, batch by batch) into one "vectors" blob. */
static int embed_chunks(toro_kb_builder_t *b, char **err)
{
    toro_embedder_t *e = b->embedder;
    size_t n = b->nchunks, dim = e->dim, batch = e->batch ? e->batch : 16;
    int rc = 0;
    double t0 = now_s();
    float *vec = malloc((n ? n : 1) * dim * sizeof(float));
    char **texts = calloc(batch, sizeof(char *));
    sqlite3_stmt *s = NULL;
    if (!vec || !texts) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if (sqlite3_prepare_v2(b->db, "SELECT title, section, text FROM chunks ORDER BY id", -1, &s, NULL) != SQLITE_OK) {
        rc = TORO_EIO;
        goto out;
    }
    for (size_t done = 0; done < n && rc == 0;) {
        size_t m = 0;
        while (m < batch && done + m < n && sqlite3_step(s) == SQLITE_ROW)
            if (!(texts[m++] = passage_text(s)))
                rc = TORO_ENOMEM;
        if (rc == 0 && m == 0)
            rc = TORO_EIO;
        if (rc == 0)
            rc = toro_embedder_passages(e, (const char *const *)texts, m, vec + done * dim, err);
        for (size_t i = 0; i < m; i++) {
            free(texts[i]);
            texts[i] = NULL;
        }
        done += m;
        if (rc == 0 && b->eprogress)
            b->eprogress(b->eprogress_ud, done, n, now_s() - t0);
    }
    sqlite3_finalize(s);
    s = NULL;
    if (rc)
        goto out;
    if (sqlite3_prepare_v2(b->db, "INSERT INTO blobs(name,data) VALUES('vectors',?)", -1, &s, NULL) != SQLITE_OK) {
        rc = TORO_EIO;
        goto out;
    }
    /* float32 little-endian (x86 and arm64 hosts are little-endian; asserted by kb.c at open). */
    sqlite3_bind_blob64(s, 1, vec, (sqlite3_uint64)(n * dim * sizeof(float)), SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = TORO_EIO;
    b->embed_seconds = now_s() - t0;
out:
    sqlite3_finalize(s);
    free(vec);
    free(texts);
    if (rc && err && !*err)
        toro_set_err(err, "cannot embed chunks: %s", toro_strerror(rc));
    return rc;
}

static int cmp_term_ptr(const void *a, const void *b)
{
    const term_t *x = *(term_t *const *)a, *y = *(term_t *const *)b;
    return strcmp(x->s, y->s);
}

static int put_meta(sqlite3 *db, const char *k, const char *v)
{
    sqlite3_stmt *s = NULL;
    int rc = TORO_EIO;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key,value) VALUES(?,?)", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

/* The term dictionary, sorted by term, one row per term with its postings. */
static int write_terms(toro_kb_builder_t *b)
{
    int rc = 0;
    term_t **sorted = malloc((b->tcount + 1) * sizeof(term_t *));
    if (!sorted)
        return TORO_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < b->tcap; i++)
        if (b->terms[i].s)
            sorted[n++] = &b->terms[i];
    assert(n == b->tcount);
    qsort(sorted, n, sizeof(term_t *), cmp_term_ptr);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(b->db, "INSERT INTO terms(term,df,postings) VALUES(?,?,?)", -1, &s, NULL) != SQLITE_OK) {
        rc = TORO_EIO;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_bind_text(s, 1, sorted[i]->s, (int)sorted[i]->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, sorted[i]->df);
        sqlite3_bind_blob(s, 3, sorted[i]->post, (int)sorted[i]->plen, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = TORO_EIO;
        sqlite3_reset(s);
    }
out:
    sqlite3_finalize(s);
    free(sorted);
    return rc;
}

/* Chunk lengths as one little-endian blob. */
static int write_lengths(toro_kb_builder_t *b)
{
    int rc = 0;
    sqlite3_stmt *s = NULL;
    uint8_t *lb = malloc((size_t)b->nchunks * 4 + 1);
    if (!lb)
        return TORO_ENOMEM;
    for (uint32_t i = 0; i < b->nchunks; i++)
        for (int k = 0; k < 4; k++)
            lb[4 * i + k] = (uint8_t)(b->lens[i] >> (8 * k));
    if (sqlite3_prepare_v2(b->db, "INSERT INTO blobs(name,data) VALUES('lengths',?)", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(s, 1, lb, (int)((size_t)b->nchunks * 4), SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = TORO_EIO;
    } else {
        rc = TORO_EIO;
    }
    sqlite3_finalize(s);
    free(lb);
    return rc;
}

/* The meta rows that describe the snapshot (format, version, languages, chunking, sizes, BM25). */
static int write_meta(toro_kb_builder_t *b, const char *version)
{
    int rc = 0;
    char buf[64], when[32];
    const char *langs = b->lang_used[0] && b->lang_used[1] ? "pt,en" : b->lang_used[1] ? "en" : "pt";
    toro_iso8601(toro_now_ms(), when);
    rc |= put_meta(b->db, "format", TORO_KB_FORMAT);
    rc |= put_meta(b->db, "version", version);
    rc |= put_meta(b->db, "built_at", when);
    rc |= put_meta(b->db, "analyzer", TORO_ANALYZER_VERSION);
    rc |= put_meta(b->db, "languages", langs);
    snprintf(buf, sizeof(buf), "%zu", b->params.max_chars);
    rc |= put_meta(b->db, "chunk_max_chars", buf);
    snprintf(buf, sizeof(buf), "%zu", b->params.overlap_chars);
    rc |= put_meta(b->db, "chunk_overlap_chars", buf);
    snprintf(buf, sizeof(buf), "%zu", b->n_docs);
    rc |= put_meta(b->db, "n_docs", buf);
    snprintf(buf, sizeof(buf), "%u", b->nchunks);
    rc |= put_meta(b->db, "n_chunks", buf);
    snprintf(buf, sizeof(buf), "%u", b->tcount);
    rc |= put_meta(b->db, "n_terms", buf);
    snprintf(buf, sizeof(buf), "%.6f", b->nchunks ? (double)b->total_len / b->nchunks : 0.0);
    rc |= put_meta(b->db, "avg_chunk_terms", buf);
    rc |= put_meta(b->db, "bm25", "k1=1.2,b=0.75");
    return rc ? TORO_EIO : 0;
}

/* The vectors and the embedder's identity, when the builder has an embedder. */
static int write_vectors(toro_kb_builder_t *b, char **err)
{
    char buf[32];
    int rc;
    if (!b->embedder)
        return 0;
    if ((rc = embed_chunks(b, err)) != 0)
        return rc;
    snprintf(buf, sizeof(buf), "%zu", b->embedder->dim);
    if (put_meta(b->db, "embedder", b->embedder->identity) || put_meta(b->db, "embed_dim", buf))
        return TORO_EIO;
    return 0;
}

/* Commits, closes the file and renames it into place. */
static int commit_and_rename(toro_kb_builder_t *b, char **err)
{
    int rc;
    if ((rc = exec(b->db, "COMMIT;", err)) != 0)
        return rc;
    sqlite3_finalize(b->ins_chunk);
    sqlite3_finalize(b->ins_doc);
    b->ins_chunk = b->ins_doc = NULL;
    if (sqlite3_close(b->db) != SQLITE_OK)
        return TORO_EIO;
    b->db = NULL;
    if (rename(b->tmp_path, b->out_path) != 0) {
        toro_set_err(err, "cannot rename to %s: %s", b->out_path, strerror(errno));
        return TORO_EIO;
    }
    return 0;
}

int toro_kb_builder_finish(toro_kb_builder_t *b, toro_kb_build_stats_t *stats, char **err)
{
    int rc = 0;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char version[33];
    assert(b && !b->finished && b->db);
    EVP_DigestFinal_ex(b->sha, digest, &dlen);
    for (int i = 0; i < 12; i++)
        snprintf(version + 2 * i, 3, "%02x", digest[i]);
    version[24] = 0;

    if ((rc = write_terms(b)) != 0 || (rc = write_lengths(b)) != 0 || (rc = write_meta(b, version)) != 0 ||
        (rc = write_vectors(b, err)) != 0)
        goto out;
    char sum[80]; /* last: over everything above, vectors included (kb/checksum.h) */
    if (toro_kb_checksum_compute(b->db, sum) != 0 || put_meta(b->db, TORO_KB_CHECKSUM_KEY, sum) != 0) {
        rc = TORO_EIO;
        goto out;
    }
    if ((rc = commit_and_rename(b, err)) != 0)
        goto out;
    b->finished = 1;
    if (stats) {
        stats->n_docs = b->n_docs;
        stats->n_chunks = b->nchunks;
        stats->n_terms = b->tcount;
        stats->bytes_in = b->bytes_in;
        stats->seconds = now_s() - b->t0;
        stats->embed_seconds = b->embed_seconds;
        stats->embed_dim = b->embedder ? b->embedder->dim : 0;
        memcpy(stats->version, version, sizeof(version));
    }
out:
    if (rc && err && !*err)
        toro_set_err(err, "cannot write snapshot: %s", b->db ? sqlite3_errmsg(b->db) : toro_strerror(rc));
    return rc;
}

void toro_kb_builder_free(toro_kb_builder_t *b)
{
    if (!b)
        return;
    sqlite3_finalize(b->ins_chunk);
    sqlite3_finalize(b->ins_doc);
    if (b->db)
        sqlite3_close(b->db);
    if (!b->finished && b->tmp_path)
        unlink(b->tmp_path);
    if (b->terms)
        for (uint32_t i = 0; i < b->tcap; i++) {
            free(b->terms[i].s);
            free(b->terms[i].post);
        }
    free(b->terms);
    free(b->lens);
    toro_analyzer_free(b->an[0]);
    toro_analyzer_free(b->an[1]);
    EVP_MD_CTX_free(b->sha);
    free(b->out_path);
    free(b->tmp_path);
    free(b->scratch);
    free(b);
}

/* ---- directory walk ---------------------------------------------------- */

typedef struct pathlist {
    char **v;
    size_t n, cap;
} pathlist_t;

static int walk(const char *root, const char *rel, pathlist_t *pl, int depth)
{
    if (depth > 16)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d)
        return TORO_EIO;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        if (e->d_name[0] == '.')
            continue;
        char r[4096], full[8192];
        snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", root, r);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(root, r, pl, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode) || toro_doc_format_from_path(e->d_name) < 0)
            continue;
        if (strncasecmp(e->d_name, "readme.", 7) == 0)
            continue;
        if (pl->n == pl->cap) {
            size_t nc = pl->cap ? pl->cap * 2 : 64;
            char **nv = realloc(pl->v, nc * sizeof(char *));
            if (!nv) {
                rc = TORO_ENOMEM;
                break;
            }
            pl->v = nv;
            pl->cap = nc;
        }
        if (!(pl->v[pl->n++] = strdup(r)))
            rc = TORO_ENOMEM;
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return TORO_EIO;
    int rc = 0;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(b, cap);
        if (!nb) {
            free(b);
            b = NULL;
        } else
            b = nb;
    }
    if (!b)
        rc = TORO_ENOMEM;
    else if (ferror(f)) {
        free(b);
        rc = TORO_EIO;
    } else {
        *buf = b;
        *len = n;
    }
    fclose(f);
    return rc;
}

int toro_kb_build_dir(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                      toro_kb_progress_cb progress, void *ud, toro_kb_build_stats_t *stats, char **err)
{
    return toro_kb_build_dir_embedded(src_dir, out_path, params, progress, ud, NULL, NULL, stats, err);
}

int toro_kb_build_dir_embedded(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                               toro_kb_progress_cb progress, void *ud, toro_embedder_t *e,
                               toro_kb_embed_progress_cb eprogress, toro_kb_build_stats_t *stats, char **err)
{
    pathlist_t pl = {0};
    toro_kb_builder_t *b = NULL;
    struct stat st;
    int rc;
    if (stat(src_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        toro_set_err(err, "%s is not a directory", src_dir);
        return TORO_EINVAL;
    }
    if ((rc = walk(src_dir, "", &pl, 0)) != 0) {
        toro_set_err(err, "cannot read %s: %s", src_dir, toro_strerror(rc));
        goto out;
    }
    if (pl.n == 0) {
        toro_set_err(err, "no documents (.md .txt .html) found in %s", src_dir);
        rc = TORO_EINVAL;
        goto out;
    }
    qsort(pl.v, pl.n, sizeof(char *), cmp_str);
    if ((rc = toro_kb_builder_new(out_path, params, &b, err)) != 0)
        goto out;
    toro_kb_builder_set_embedder(b, e, eprogress, ud);
    size_t bytes = 0;
    for (size_t i = 0; i < pl.n; i++) {
        char full[8192];
        snprintf(full, sizeof(full), "%s/%s", src_dir, pl.v[i]);
        char *buf = NULL;
        size_t len = 0;
        if ((rc = read_file(full, &buf, &len)) != 0) {
            toro_set_err(err, "cannot read %s: %s", full, toro_strerror(rc));
            goto out;
        }
        rc = toro_kb_builder_add_file(b, pl.v[i], buf, len, (toro_doc_format_t)toro_doc_format_from_path(pl.v[i]),
                                      err);
        free(buf);
        if (rc)
            goto out;
        bytes += len;
        if (progress)
            progress(ud, i + 1, pl.n, bytes);
    }
    rc = toro_kb_builder_finish(b, stats, err);
    if (stats)
        stats->n_files = pl.n;
out:
    toro_kb_builder_free(b);
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
    return rc;
}
