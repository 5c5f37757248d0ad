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
#include <pthread.h>
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

typedef struct prepper prepper_t;

#define TERM_INLINE 16 /* terms shorter than this live in the slot (one cache line with it) */

typedef struct term {
    union {
        char in[TERM_INLINE]; /* len < TERM_INLINE: the bytes, NUL-terminated */
        char *out;            /* else: the bytes, NUL-terminated, owned */
    } u;
    uint32_t hash;  /* hash_bytes of the term: probes compare it before the bytes */
    uint32_t len;   /* 0 = empty slot */
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
    prepper_t *w;           /* analysis of documents added by this thread */
    int lang_used[2];
    term_t *terms;          /* hash table, open addressing */
    uint32_t tcap, tcount;
    uint32_t *lens;         /* analyzed length of each chunk */
    uint32_t nchunks, lcap;
    uint64_t total_len;
    size_t n_docs, bytes_in;
    double t0;
    int finished;
    uint32_t *slot_buf;     /* post_chunk's slots of one chunk's terms */
    uint32_t slot_cap;
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

static int prepper_new(prepper_t **out);
static void prepper_clear(prepper_t *w);

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
    if ((rc = prepper_new(&b->w)) != 0)
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
    h ^= h >> 16; /* FNV-1a's low bits are weak on "term123"-like keys: mix before masking */
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

static const char *term_str(const term_t *t)
{
    return t->len < TERM_INLINE ? t->u.in : t->u.out;
}

static int grow_terms(toro_kb_builder_t *b)
{
    uint32_t nc = b->tcap * 2;
    term_t *nt = calloc(nc, sizeof(term_t));
    if (!nt)
        return TORO_ENOMEM;
    for (uint32_t i = 0; i < b->tcap; i++) {
        if (!b->terms[i].len)
            continue;
        uint32_t h = b->terms[i].hash & (nc - 1);
        while (nt[h].len)
            h = (h + 1) & (nc - 1);
        nt[h] = b->terms[i];
    }
    free(b->terms);
    b->terms = nt;
    b->tcap = nc;
    return 0;
}

/* Returns the slot of term s[0..n) whose hash_bytes is h (inserting it), or
 * -1 on ENOMEM. */
static int64_t term_slot(toro_kb_builder_t *b, const char *s, size_t n, uint32_t h)
{
    if ((b->tcount + 1) * 2 > b->tcap && grow_terms(b))
        return -1;
    uint32_t i = h & (b->tcap - 1);
    while (b->terms[i].len) {
        if (b->terms[i].hash == h && b->terms[i].len == n && memcmp(term_str(&b->terms[i]), s, n) == 0)
            return i;
        i = (i + 1) & (b->tcap - 1);
    }
    char *c = b->terms[i].u.in;
    if (n >= TERM_INLINE && !(c = b->terms[i].u.out = malloc(n + 1)))
        return -1;
    memcpy(c, s, n);
    c[n] = 0;
    b->terms[i].hash = h;
    b->terms[i].len = (uint32_t)n;
    b->terms[i].last = 0;
    b->tcount++;
    return i;
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

/* ---- preparing a document (any thread) --------------------------------- */

/* One distinct term of a chunk and how often it occurs there. */
typedef struct cterm {
    uint32_t hash; /* hash_bytes of the term */
    uint32_t off;  /* offset of its bytes in prep.strs */
    uint32_t len;
    uint32_t tf;
} cterm_t;

/* A document chunked and analyzed, not yet in the snapshot: the part of the
 * work that needs no shared state, so worker threads do it for many files at
 * once while one thread adds the results in file order (ids, postings and
 * rows then come out the same whatever the thread count). */
typedef struct prep {
    char *bytes;       /* the source (read by the worker; hashed at commit) */
    size_t len;
    toro_doc_t doc;    /* chunks (owned) */
    int have_doc;
    uint32_t *first;   /* chunk i's terms are terms[first[i] .. first[i+1]) */
    uint32_t *nterms;  /* analyzed length of chunk i (tokens, repeats included) */
    cterm_t *terms;
    size_t nt, capt;
    char *strs;        /* term bytes */
    size_t ns, caps;
    uint32_t first_id; /* id of its first chunk (set when its postings are added) */
    int rc;            /* 0, or why the document failed */
    char *err;         /* its message (owned) */
} prep_t;

/* The per-thread state of analysis: analyzers (Snowball is not thread-safe)
 * and the open-addressing set that merges a chunk's repeated terms. */
typedef struct prepper {
    toro_analyzer_t *an[2]; /* pt, en */
    uint32_t *slot;         /* index into prep.terms, valid when gen matches */
    uint32_t *gen;
    uint32_t cap, cur;      /* cap: power of two; cur: generation of this chunk */
    prep_t *p;              /* the document being analyzed */
    uint32_t chunk_first;   /* its current chunk's first term */
    uint32_t count;         /* tokens of the current chunk */
    int err;
} prepper_t;

static int prepper_init(prepper_t *w)
{
    memset(w, 0, sizeof(*w));
    w->cap = 1024;
    w->slot = malloc(w->cap * sizeof(uint32_t));
    w->gen = calloc(w->cap, sizeof(uint32_t));
    if (!w->slot || !w->gen)
        return TORO_ENOMEM;
    int rc = toro_analyzer_new("pt", true, &w->an[0]);
    if (rc == 0)
        rc = toro_analyzer_new("en", true, &w->an[1]);
    return rc;
}

/* A heap prepper for the builder's own thread; *out is freed by prepper_clear + free. */
static int prepper_new(prepper_t **out)
{
    if (!(*out = malloc(sizeof(prepper_t))))
        return TORO_ENOMEM;
    return prepper_init(*out);
}

static void prepper_clear(prepper_t *w)
{
    toro_analyzer_free(w->an[0]);
    toro_analyzer_free(w->an[1]);
    free(w->slot);
    free(w->gen);
    memset(w, 0, sizeof(*w));
}

static void prep_clear(prep_t *p)
{
    free(p->bytes);
    if (p->have_doc)
        toro_doc_clear(&p->doc);
    free(p->first);
    free(p->nterms);
    free(p->terms);
    free(p->strs);
    free(p->err);
    memset(p, 0, sizeof(*p));
}

/* Doubles the merge set and re-enters the current chunk's terms. */
static int prepper_grow(prepper_t *w)
{
    uint32_t nc = w->cap * 2;
    uint32_t *ns = malloc(nc * sizeof(uint32_t)), *ng = calloc(nc, sizeof(uint32_t));
    if (!ns || !ng) {
        free(ns);
        free(ng);
        return TORO_ENOMEM;
    }
    free(w->slot);
    free(w->gen);
    w->slot = ns;
    w->gen = ng;
    w->cap = nc;
    w->cur = 1;
    for (uint32_t k = w->chunk_first; k < w->p->nt; k++) {
        uint32_t h = w->p->terms[k].hash & (nc - 1);
        while (ng[h] == w->cur)
            h = (h + 1) & (nc - 1);
        ng[h] = w->cur;
        ns[h] = k;
    }
    return 0;
}

/* Appends term tok to the current chunk's terms (or counts a repeat). */
static int add_term(prepper_t *w, const char *tok, size_t len)
{
    prep_t *p = w->p;
    uint32_t h = hash_bytes(tok, len), i = h & (w->cap - 1);
    for (; w->gen[i] == w->cur; i = (i + 1) & (w->cap - 1)) {
        cterm_t *t = &p->terms[w->slot[i]];
        if (t->hash == h && t->len == len && memcmp(p->strs + t->off, tok, len) == 0) {
            t->tf++;
            return 0;
        }
    }
    cterm_t *nt = toro_grow(p->terms, &p->capt, p->nt, sizeof *p->terms, 256);
    if (!nt)
        return TORO_ENOMEM;
    p->terms = nt;
    if (p->ns + len > p->caps) {
        size_t nc = p->caps ? p->caps * 2 : 4096;
        while (nc < p->ns + len)
            nc *= 2;
        char *nb = realloc(p->strs, nc);
        if (!nb)
            return TORO_ENOMEM;
        p->strs = nb;
        p->caps = nc;
    }
    memcpy(p->strs + p->ns, tok, len);
    p->terms[p->nt] = (cterm_t){h, (uint32_t)p->ns, (uint32_t)len, 1};
    p->ns += len;
    w->gen[i] = w->cur;
    w->slot[i] = (uint32_t)p->nt++;
    if ((p->nt - w->chunk_first) * 2 > w->cap)
        return prepper_grow(w);
    return 0;
}

static int term_cb(void *ud, const char *tok, size_t len, int kind)
{
    prepper_t *w = ud;
    (void)kind;
    w->count++;
    if ((w->err = add_term(w, tok, len)) != 0)
        return 1;
    return 0;
}

/* Starts a new chunk generation in the merge set. */
static void prepper_next_chunk(prepper_t *w)
{
    if (++w->cur == 0) { /* wrapped: forget every old generation */
        memset(w->gen, 0, w->cap * sizeof(uint32_t));
        w->cur = 1;
    }
    w->chunk_first = (uint32_t)w->p->nt;
    w->count = 0;
}

/* Analyzes every chunk of p->doc (title and section with the text: a chunk
 * is about them) into p's term lists. */
static int prep_analyze(prepper_t *w, prep_t *p)
{
    const toro_doc_t *doc = &p->doc;
    toro_analyzer_t *an = w->an[strcmp(doc->lang, "en") == 0 ? 1 : 0];
    size_t n = doc->n_chunks, tl = strlen(doc->title), cap = 0;
    char *all = NULL;
    int rc = 0;
    p->first = malloc((n + 1) * sizeof(uint32_t));
    p->nterms = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!p->first || !p->nterms)
        return TORO_ENOMEM;
    w->p = p;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const toro_chunk_t *ch = &doc->chunks[i];
        size_t sl = strlen(ch->section), xl = strlen(ch->text), need = tl + sl + xl + 3;
        if (need > cap) {
            char *na = realloc(all, need);
            if (!na) {
                rc = TORO_ENOMEM;
                break;
            }
            all = na;
            cap = need;
        }
        memcpy(all, doc->title, tl);
        all[tl] = '\n';
        memcpy(all + tl + 1, ch->section, sl);
        all[tl + 1 + sl] = '\n';
        memcpy(all + tl + sl + 2, ch->text, xl + 1);
        prepper_next_chunk(w);
        p->first[i] = (uint32_t)p->nt;
        w->err = 0;
        rc = toro_analyze(an, all, tl + sl + xl + 2, term_cb, w);
        if (rc == 0 && w->err)
            rc = w->err;
        p->nterms[i] = w->count;
    }
    p->first[n] = (uint32_t)p->nt;
    w->p = NULL;
    free(all);
    return rc;
}

/* Chunks and analyzes one source file (relpath names it; the default doc_id
 * is the file name without directory and extension). Takes ownership of
 * bytes. On failure p->rc and p->err say why. */
static void prep_file(prepper_t *w, prep_t *p, const char *relpath, char *bytes, size_t len, toro_doc_format_t fmt,
                      const toro_chunk_params_t *params)
{
    p->bytes = bytes;
    p->len = len;
    const char *base = strrchr(relpath, '/');
    base = base ? base + 1 : relpath;
    char id[256];
    snprintf(id, sizeof(id), "%s", base);
    char *dot = strrchr(id, '.');
    if (dot && dot != id)
        *dot = 0;
    if ((p->rc = toro_chunk_document(id, bytes, len, fmt, params, &p->doc)) != 0) {
        toro_set_err(&p->err, "cannot chunk %s: %s", relpath, toro_strerror(p->rc));
        return;
    }
    p->have_doc = 1;
    if ((p->rc = prep_analyze(w, p)) != 0)
        toro_set_err(&p->err, "cannot index %s: %s", relpath, toro_strerror(p->rc));
}

/* ---- adding a prepared document (one thread, in order) ----------------- */

static int lens_push(toro_kb_builder_t *b, uint32_t n)
{
    if (b->nchunks == b->lcap) {
        uint32_t nc = b->lcap ? b->lcap * 2 : 1024;
        uint32_t *nl = realloc(b->lens, nc * sizeof(uint32_t));
        if (!nl)
            return TORO_ENOMEM;
        b->lens = nl;
        b->lcap = nc;
    }
    b->lens[b->nchunks] = n;
    b->total_len += n;
    return 0;
}

/* Postings of chunk id from its distinct terms. The dictionary and the
 * postings are far bigger than the caches and each term lands somewhere
 * else: the slots, then the postings' tails, are prefetched for the whole
 * chunk before they are used (one miss at a time was most of this thread's
 * time). The table is grown first so no slot moves in between. */
static int post_chunk(toro_kb_builder_t *b, const prep_t *p, size_t ci, uint32_t id)
{
    uint32_t k0 = p->first[ci], n = p->first[ci + 1] - k0;
    while ((b->tcount + n + 1) * 2 > b->tcap)
        if (grow_terms(b))
            return TORO_ENOMEM;
    if (n > b->slot_cap) {
        uint32_t *ns = realloc(b->slot_buf, n * sizeof(uint32_t));
        if (!ns)
            return TORO_ENOMEM;
        b->slot_buf = ns;
        b->slot_cap = n;
    }
    for (uint32_t k = 0; k < n; k++)
        __builtin_prefetch(&b->terms[p->terms[k0 + k].hash & (b->tcap - 1)]);
    for (uint32_t k = 0; k < n; k++) {
        const cterm_t *ct = &p->terms[k0 + k];
        int64_t slot = term_slot(b, p->strs + ct->off, ct->len, ct->hash);
        if (slot < 0)
            return TORO_ENOMEM;
        b->slot_buf[k] = (uint32_t)slot;
        if (b->terms[slot].post)
            __builtin_prefetch(b->terms[slot].post + b->terms[slot].plen, 1);
    }
    for (uint32_t k = 0; k < n; k++) {
        term_t *t = &b->terms[b->slot_buf[k]];
        if (post_append(t, t->df == 0 ? id : id - t->last, p->terms[k0 + k].tf))
            return TORO_ENOMEM;
        t->last = id;
        t->df++;
    }
    return lens_push(b, p->nterms[ci]);
}

static int insert_chunk(toro_kb_builder_t *b, const toro_doc_t *doc, size_t i, uint32_t id, uint32_t n_terms)
{
    const toro_chunk_t *ch = &doc->chunks[i];
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
    sqlite3_bind_int64(s, 10, n_terms);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : TORO_EIO;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

/* The postings half of adding an analyzed document (ids from b->nchunks,
 * recorded in p->first_id); it touches no SQLite state. */
static int post_doc(toro_kb_builder_t *b, prep_t *p)
{
    const toro_doc_t *doc = &p->doc;
    assert(b && !b->finished && doc->doc_id && doc->title && doc->lang);
    b->lang_used[strcmp(doc->lang, "en") == 0 ? 1 : 0] = 1;
    p->first_id = b->nchunks;
    int rc = 0;
    for (size_t i = 0; i < doc->n_chunks && rc == 0; i++, b->nchunks++)
        rc = post_chunk(b, p, i, b->nchunks);
    b->n_docs++;
    return rc;
}

/* The rows half: the document's row, then its chunks' rows. Uses only the
 * connection and its statements, so it may run on another thread than
 * post_doc (one at a time, in document order). */
static int rows_doc(toro_kb_builder_t *b, const prep_t *p, const char *path, size_t bytes)
{
    const toro_doc_t *doc = &p->doc;
    int rc = 0;
    sqlite3_bind_text(b->ins_doc, 1, doc->doc_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 2, doc->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 3, doc->lang, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins_doc, 4, path ? path : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(b->ins_doc, 5, (sqlite3_int64)bytes);
    if (sqlite3_step(b->ins_doc) != SQLITE_DONE)
        rc = TORO_EIO;
    sqlite3_reset(b->ins_doc);
    sqlite3_clear_bindings(b->ins_doc);
    for (size_t i = 0; i < doc->n_chunks && rc == 0; i++)
        rc = insert_chunk(b, doc, i, p->first_id + (uint32_t)i, p->nterms[i]);
    return rc;
}

/* The version hash (path and bytes) and postings of a prepared source file. */
static int post_file(toro_kb_builder_t *b, prep_t *p, const char *relpath, char **err)
{
    if (p->rc) {
        toro_set_err(err, "%s", p->err ? p->err : toro_strerror(p->rc));
        return p->rc;
    }
    toro_kb_builder_hash(b, relpath, strlen(relpath));
    toro_kb_builder_hash(b, p->bytes, p->len);
    b->bytes_in += p->len;
    int rc = post_doc(b, p);
    if (rc)
        toro_set_err(err, "cannot index %s: %s", relpath, toro_strerror(rc));
    return rc;
}

static int rows_file(toro_kb_builder_t *b, const prep_t *p, const char *relpath, char **err)
{
    int rc = rows_doc(b, p, relpath, p->len);
    if (rc)
        toro_set_err(err, "cannot write %s: %s", relpath, sqlite3_errmsg(b->db));
    return rc;
}

/* Adds a prepared source file on the calling thread. */
static int commit_file(toro_kb_builder_t *b, prep_t *p, const char *relpath, char **err)
{
    int rc = post_file(b, p, relpath, err);
    return rc ? rc : rows_file(b, p, relpath, err);
}

int toro_kb_builder_add_doc(toro_kb_builder_t *b, const toro_doc_t *doc, const char *path, size_t bytes)
{
    assert(b && !b->finished && b->db && doc && doc->doc_id && doc->title && doc->lang);
    prep_t p;
    memset(&p, 0, sizeof(p));
    p.doc = *doc; /* borrowed: have_doc stays 0 so prep_clear does not free it */
    int rc = prep_analyze(b->w, &p);
    if (rc == 0)
        rc = post_doc(b, &p);
    if (rc == 0)
        rc = rows_doc(b, &p, path, bytes);
    memset(&p.doc, 0, sizeof(p.doc));
    prep_clear(&p);
    return rc;
}

int toro_kb_builder_add_file(toro_kb_builder_t *b, const char *relpath, const char *bytes, size_t len,
                             toro_doc_format_t fmt, char **err)
{
    assert(b && relpath && (bytes || !len));
    char *copy = malloc(len + 1);
    if (!copy)
        return TORO_ENOMEM;
    if (len)
        memcpy(copy, bytes, len);
    copy[len] = 0;
    prep_t p;
    memset(&p, 0, sizeof(p));
    prep_file(b->w, &p, relpath, copy, len, fmt, &b->params);
    int rc = commit_file(b, &p, relpath, err);
    prep_clear(&p);
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

/* A term to sort: its first 8 bytes as a big-endian number (zero padded,
 * which orders like strcmp since terms hold no NUL) decide most comparisons
 * without touching the term's slot. */
typedef struct sort_term {
    uint64_t key;
    const term_t *t;
} sort_term_t;

static int cmp_sort_term(const void *a, const void *b)
{
    const sort_term_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return strcmp(term_str(x->t), term_str(y->t));
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
    sort_term_t *sorted = malloc((b->tcount + 1) * sizeof(sort_term_t));
    if (!sorted)
        return TORO_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < b->tcap; i++) {
        const term_t *t = &b->terms[i];
        if (!t->len)
            continue;
        const char *ts = term_str(t);
        uint64_t key = 0;
        for (uint32_t k = 0; k < 8; k++)
            key = (key << 8) | (k < t->len ? (unsigned char)ts[k] : 0u);
        sorted[n++] = (sort_term_t){key, t};
    }
    assert(n == b->tcount);
    qsort(sorted, n, sizeof(sort_term_t), cmp_sort_term);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(b->db, "INSERT INTO terms(term,df,postings) VALUES(?,?,?)", -1, &s, NULL) != SQLITE_OK) {
        rc = TORO_EIO;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const term_t *t = sorted[i].t;
        sqlite3_bind_text(s, 1, term_str(t), (int)t->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, t->df);
        sqlite3_bind_blob(s, 3, t->post, (int)t->plen, SQLITE_STATIC);
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
            if (b->terms[i].len >= TERM_INLINE)
                free(b->terms[i].u.out);
            free(b->terms[i].post);
        }
    free(b->terms);
    free(b->lens);
    free(b->slot_buf);
    if (b->w)
        prepper_clear(b->w);
    free(b->w);
    EVP_MD_CTX_free(b->sha);
    free(b->out_path);
    free(b->tmp_path);
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

/* ---- parallel preparation --------------------------------------------- */

/* Worker threads read, chunk and analyze files ahead of the committing
 * threads, at most `window` files ahead (bounded memory); file i goes to slot
 * i % window. The calling thread adds postings and the version hash, a rows
 * thread then writes the file's SQLite rows, both strictly in path order;
 * the slot is free again after its rows. */
typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* a slot was freed, or stop */
    pthread_cond_t cv_ready; /* a file was prepared, or the rows thread failed */
    pthread_cond_t cv_posted; /* a file's postings were added, or stop */
    toro_kb_builder_t *b;
    const char *src_dir;
    const pathlist_t *pl;
    const toro_chunk_params_t *params;
    prep_t *slots;
    size_t *ready;           /* ready[k] = i + 1: slots[k] holds file i, prepared; 0: free or being filled */
    size_t window;
    size_t next;             /* next file to claim */
    size_t posted;           /* files whose postings were added */
    size_t committed;        /* files whose rows were written (their slots are free) */
    int stop;
    int rows_rc;             /* the rows thread's failure */
    char *rows_err;          /* and its message (owned) */
} pool_t;

/* Reads and prepares file i into p (any thread). */
static void prep_path(prepper_t *w, prep_t *p, const char *src_dir, const char *rel,
                      const toro_chunk_params_t *params)
{
    char full[8192];
    snprintf(full, sizeof(full), "%s/%s", src_dir, rel);
    char *buf = NULL;
    size_t len = 0;
    if ((p->rc = read_file(full, &buf, &len)) != 0) {
        toro_set_err(&p->err, "cannot read %s: %s", full, toro_strerror(p->rc));
        return;
    }
    prep_file(w, p, rel, buf, len, (toro_doc_format_t)toro_doc_format_from_path(rel), params);
}

static void *pool_worker(void *arg)
{
    pool_t *pool = arg;
    prepper_t w;
    int init_rc = prepper_init(&w);
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stop && pool->next < pool->pl->n && pool->next >= pool->committed + pool->window)
            pthread_cond_wait(&pool->cv_work, &pool->mu);
        if (pool->stop || pool->next >= pool->pl->n)
            break;
        size_t i = pool->next++;
        pthread_mutex_unlock(&pool->mu);
        prep_t *p = &pool->slots[i % pool->window];
        if (init_rc)
            p->rc = init_rc;
        else
            prep_path(&w, p, pool->src_dir, pool->pl->v[i], pool->params);
        pthread_mutex_lock(&pool->mu);
        pool->ready[i % pool->window] = i + 1;
        pthread_cond_broadcast(&pool->cv_ready);
    }
    pthread_mutex_unlock(&pool->mu);
    prepper_clear(&w);
    return NULL;
}

/* The rows thread: writes each file's rows once its postings are in. */
static void *pool_rows(void *arg)
{
    pool_t *pool = arg;
    for (size_t i = 0; i < pool->pl->n; i++) {
        size_t k = i % pool->window;
        pthread_mutex_lock(&pool->mu);
        while (pool->posted <= i && !pool->stop)
            pthread_cond_wait(&pool->cv_posted, &pool->mu);
        int go = pool->posted > i;
        pthread_mutex_unlock(&pool->mu);
        if (!go)
            break;
        int rc = rows_file(pool->b, &pool->slots[k], pool->pl->v[i], &pool->rows_err);
        prep_clear(&pool->slots[k]);
        pthread_mutex_lock(&pool->mu);
        pool->ready[k] = 0;
        pool->committed = i + 1;
        pool->rows_rc = rc;
        pthread_cond_broadcast(&pool->cv_work);
        if (rc)
            pthread_cond_broadcast(&pool->cv_ready);
        pthread_mutex_unlock(&pool->mu);
        if (rc)
            break;
    }
    return NULL;
}

/* Adds postings of files 0..n-1 in order as the workers prepare them. */
static int pool_commit_all(pool_t *pool, toro_kb_builder_t *b, const toro_kb_build_opts_t *o, char **err)
{
    size_t bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < pool->pl->n && rc == 0; i++) {
        size_t k = i % pool->window;
        pthread_mutex_lock(&pool->mu);
        while (pool->ready[k] != i + 1 && !pool->rows_rc)
            pthread_cond_wait(&pool->cv_ready, &pool->mu);
        rc = pool->rows_rc;
        pthread_mutex_unlock(&pool->mu);
        if (rc)
            break;
        rc = post_file(b, &pool->slots[k], pool->pl->v[i], err);
        bytes += pool->slots[k].len;
        pthread_mutex_lock(&pool->mu);
        if (rc == 0)
            pool->posted = i + 1;
        pthread_cond_broadcast(&pool->cv_posted);
        pthread_mutex_unlock(&pool->mu);
        if (rc == 0 && o->progress)
            o->progress(o->ud, i + 1, pool->pl->n, bytes);
    }
    return rc;
}

/* Stops the workers and the rows thread (after the rows of every posted
 * file) and returns the rows thread's failure, if any, into *err. */
static int pool_stop(pool_t *pool, pthread_t *tid, unsigned started, int have_rows, pthread_t rows, char **err)
{
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->cv_work);
    pthread_cond_broadcast(&pool->cv_posted);
    pthread_mutex_unlock(&pool->mu);
    if (have_rows)
        pthread_join(rows, NULL);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    int rc = pool->rows_rc;
    if (rc && err && !*err) {
        *err = pool->rows_err;
        pool->rows_err = NULL;
    }
    free(pool->rows_err);
    return rc;
}

/* Runs `threads` workers over the sorted paths and commits their output. */
static int pool_run(const char *src_dir, const pathlist_t *pl, const toro_chunk_params_t *params, unsigned threads,
                    toro_kb_builder_t *b, const toro_kb_build_opts_t *o, char **err)
{
    pool_t pool = {.src_dir = src_dir, .pl = pl, .params = params, .window = 4 * (size_t)threads, .b = b};
    pthread_t tid[TORO_KB_BUILD_MAX_THREADS];
    unsigned started = 0;
    int rc = 0;
    pool.slots = calloc(pool.window, sizeof(prep_t));
    pool.ready = calloc(pool.window, sizeof(size_t));
    if (!pool.slots || !pool.ready) {
        free(pool.slots);
        free(pool.ready);
        return TORO_ENOMEM;
    }
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv_work, NULL);
    pthread_cond_init(&pool.cv_ready, NULL);
    pthread_cond_init(&pool.cv_posted, NULL);
    pthread_t rows;
    int have_rows = pthread_create(&rows, NULL, pool_rows, &pool) == 0;
    for (; have_rows && started < threads; started++)
        if (pthread_create(&tid[started], NULL, pool_worker, &pool) != 0)
            break;
    if (started == 0) {
        toro_set_err(err, "cannot start analysis threads");
        rc = TORO_EIO;
    } else {
        rc = pool_commit_all(&pool, b, o, err);
    }
    /* The rows thread writes what was posted, then ends (stop) */
    int rrc = pool_stop(&pool, tid, started, have_rows, rows, err);
    if (rc == 0)
        rc = rrc;
    for (size_t k = 0; k < pool.window; k++)
        prep_clear(&pool.slots[k]);
    pthread_cond_destroy(&pool.cv_posted);
    pthread_cond_destroy(&pool.cv_ready);
    pthread_cond_destroy(&pool.cv_work);
    pthread_mutex_destroy(&pool.mu);
    free(pool.slots);
    free(pool.ready);
    return rc;
}

/* The same work on the calling thread alone (threads = 1). */
static int serial_run(const char *src_dir, const pathlist_t *pl, toro_kb_builder_t *b, const toro_kb_build_opts_t *o,
                      char **err)
{
    size_t bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < pl->n && rc == 0; i++) {
        prep_t p;
        memset(&p, 0, sizeof(p));
        prep_path(b->w, &p, src_dir, pl->v[i], &b->params);
        rc = commit_file(b, &p, pl->v[i], err);
        bytes += p.len;
        prep_clear(&p);
        if (rc == 0 && o->progress)
            o->progress(o->ud, i + 1, pl->n, bytes);
    }
    return rc;
}

static unsigned build_threads(unsigned asked)
{
    long n = asked ? (long)asked : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > TORO_KB_BUILD_MAX_THREADS ? TORO_KB_BUILD_MAX_THREADS : (unsigned)n;
}

int toro_kb_build_dir(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                      toro_kb_progress_cb progress, void *ud, toro_kb_build_stats_t *stats, char **err)
{
    toro_kb_build_opts_t o = {.progress = progress, .ud = ud};
    return toro_kb_build_dir_opts(src_dir, out_path, params, &o, stats, err);
}

int toro_kb_build_dir_embedded(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                               toro_kb_progress_cb progress, void *ud, toro_embedder_t *e,
                               toro_kb_embed_progress_cb eprogress, toro_kb_build_stats_t *stats, char **err)
{
    toro_kb_build_opts_t o = {.progress = progress, .ud = ud, .embedder = e, .eprogress = eprogress};
    return toro_kb_build_dir_opts(src_dir, out_path, params, &o, stats, err);
}

int toro_kb_build_dir_opts(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                           const toro_kb_build_opts_t *o, toro_kb_build_stats_t *stats, char **err)
{
    pathlist_t pl = {0};
    toro_kb_builder_t *b = NULL;
    struct stat st;
    int rc;
    unsigned threads = build_threads(o->threads);
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
    toro_kb_builder_set_embedder(b, o->embedder, o->eprogress, o->ud);
    /* Analysis threads are joined before finish: the embedder's own threads
     * run alone. */
    rc = threads > 1 && pl.n > 1 ? pool_run(src_dir, &pl, &b->params, threads, b, o, err)
                                 : serial_run(src_dir, &pl, b, o, err);
    if (rc == 0)
        rc = toro_kb_builder_finish(b, stats, err);
    if (rc == 0 && stats) {
        stats->n_files = pl.n;
        stats->threads = threads > 1 && pl.n > 1 ? threads : 1;
    }
out:
    toro_kb_builder_free(b);
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
    return rc;
}
