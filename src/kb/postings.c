/* postings.c: the in-memory term dictionary and block-max postings of an
 * open snapshot (see postings.h). It reads the terms table once and never
 * writes; it does not score (kb.c does). */
#include "kb/postings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kb/index.h"

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static float round_up(double x)
{
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

typedef struct loader {
    toro_postings_t *p;
    const uint32_t *lens;
    uint32_t n_chunks;
    double avgdl;
    size_t cap_text, len_text, cap_blocks, cap_imp, cap_bytes;
    uint32_t ids[TORO_POST_BLOCK], tfs[TORO_POST_BLOCK]; /* the block being cut */
    uint32_t cnt;
} loader_t;

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : need > 1024 ? need : 1024; /* a first large request is taken exactly */
    while (c < need)
        c *= 2;
    void *n = realloc(*buf, c * elem);
    if (!n)
        return TORO_ENOMEM;
    *buf = n;
    *cap = c;
    return 0;
}

/* Packed blocks: a block's n chunk-id gaps (from the previous block's last
 * id, or from 0) at wid bits each, then its n tf - 1 at wtf bits each, each
 * run padded to a byte. A field is read with one unaligned 64-bit
 * little-endian load (widths <= 32 and a shift < 8 fit in it): the arena
 * keeps PACK_SLACK zero bytes after its last block for that. */
#define PACK_SLACK 8

static inline void store64le(uint8_t *out, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(out, &v, sizeof v);
}

static unsigned bits_for(uint32_t v)
{
    unsigned w = 0;
    for (; v; v >>= 1)
        w++;
    return w;
}

/* Appends v[0..n) at w bits each to the zeroed arena at *bytes. */
static void pack_run(uint8_t *out, const uint32_t *v, uint32_t n, unsigned w, size_t *bytes)
{
    for (uint32_t i = 0; i < n && w; i++) {
        size_t bit = (size_t)i * w;
        uint8_t *at = out + *bytes + bit / 8;
        store64le(at, toro_load64le(at) | (uint64_t)v[i] << (bit % 8));
    }
    *bytes += ((size_t)n * w + 7) / 8;
}

/* Grows the packed arena to hold need bytes and the slack, zeroed. */
static int grow_arena(loader_t *L, size_t need)
{
    size_t old = L->cap_bytes;
    if (!old) { /* the first: zero pages from calloc, touched only where blocks are packed */
        L->p->bytes = calloc(need + PACK_SLACK, 1);
        L->cap_bytes = L->p->bytes ? need + PACK_SLACK : 0;
        return L->p->bytes ? 0 : TORO_ENOMEM;
    }
    if (grow((void **)&L->p->bytes, &L->cap_bytes, need + PACK_SLACK, 1))
        return TORO_ENOMEM;
    memset(L->p->bytes + old, 0, L->cap_bytes - old);
    return 0;
}

/* Packs the pending block (L->ids/L->tfs, L->cnt postings) of term t, with
 * its postings' impact levels and its maximum. The chunk lengths are read in
 * a loop of their own: independent loads, so their cache misses overlap. */
static int close_block(loader_t *L, toro_pterm_t *t, uint32_t base)
{
    toro_postings_t *p = L->p;
    uint32_t n = L->cnt, maxgap = 0, maxtf = 0, last = n ? L->ids[n - 1] : base;
    double bmax = 0;
    if (grow((void **)&p->imp, &L->cap_imp, p->nimp + n, 1)) /* sized from the dfs: grows only past them */
        return TORO_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        double f = toro_bm25_tf_norm(L->tfs[i], toro_bm25_len_norm(L->lens[L->ids[i]], L->avgdl));
        bmax = f > bmax ? f : bmax;
        p->imp[p->nimp++] = toro_impact_level(f);
    }
    for (uint32_t i = 0, prev = base; i < n; i++) {
        uint32_t gap = L->ids[i] - prev;
        prev = L->ids[i];
        maxgap = gap > maxgap ? gap : maxgap;
        maxtf = L->tfs[i] - 1 > maxtf ? L->tfs[i] - 1 : maxtf;
        L->ids[i] = gap; /* packed as gaps from here on */
        L->tfs[i]--;
    }
    unsigned wid = bits_for(maxgap), wtf = bits_for(maxtf);
    if (grow((void **)&p->blocks, &L->cap_blocks, p->nblocks + 1, sizeof(toro_pblock_t)) ||
        grow_arena(L, p->nbytes + ((size_t)n * (wid + wtf) + 15) / 8))
        return TORO_ENOMEM;
    p->blocks[p->nblocks++] = (toro_pblock_t){last, p->nbytes - t->post, round_up(bmax), (uint8_t)wid, (uint8_t)wtf};
    pack_run(p->bytes, L->ids, n, wid, &p->nbytes);
    pack_run(p->bytes, L->tfs, n, wtf, &p->nbytes);
    t->maxf = round_up(bmax) > t->maxf ? round_up(bmax) : t->maxf;
    t->npost += n;
    L->cnt = 0;
    return 0;
}

/* Cuts one term's stored list (varint pairs, index.h) into packed blocks,
 * keeping its valid prefix (ids increasing and below n_chunks, whole
 * varints): t->npost becomes the number of postings kept. */
static int add_blocks(loader_t *L, toro_pterm_t *t, const uint8_t *b, size_t bl)
{
    toro_postings_t *p = L->p;
    t->block = (uint32_t)p->nblocks;
    t->imp = p->nimp;
    t->post = p->nbytes;
    t->maxf = 0;
    t->npost = 0;
    uint32_t id = 0, base = 0;
    size_t pos = 0;
    for (int first = 1; pos < bl; first = 0) {
        uint32_t delta, tf;
        size_t a = toro_varint_get(b + pos, bl - pos, &delta), a2 = a ? toro_varint_get(b + pos + a, bl - pos - a, &tf) : 0;
        if (!a2 || (!first && delta == 0) || (uint64_t)id + delta >= L->n_chunks || tf == 0)
            break;
        id += delta;
        pos += a + a2;
        L->ids[L->cnt] = id;
        L->tfs[L->cnt++] = tf;
        if (L->cnt == TORO_POST_BLOCK) {
            if (close_block(L, t, base))
                return TORO_ENOMEM;
            base = id;
        }
    }
    if (L->cnt && close_block(L, t, base)) /* the last block, short or cut at a damaged posting */
        return TORO_ENOMEM;
    t->nblocks = (uint32_t)(p->nblocks - t->block);
    return 0;
}

static int add_row(loader_t *L, sqlite3_stmt *s)
{
    toro_postings_t *p = L->p;
    const char *term = (const char *)sqlite3_column_text(s, 0);
    size_t n = term ? strlen(term) : 0;
    const uint8_t *b = sqlite3_column_blob(s, 2);
    size_t bl = (size_t)sqlite3_column_bytes(s, 2);
    if (!n || bl > UINT32_MAX)
        return 0;
    if (grow((void **)&p->text, &L->cap_text, L->len_text + n + 1, 1))
        return TORO_ENOMEM;
    toro_pterm_t *t = &p->terms[p->nterms];
    memcpy(p->text + L->len_text, term, n + 1);
    t->off = (uint32_t)L->len_text;
    t->len = (uint32_t)n;
    t->df = (uint32_t)sqlite3_column_int64(s, 1);
    int rc = add_blocks(L, t, b, bl);
    if (rc)
        return rc;
    L->len_text += n + 1;
    p->nterms++;
    return 0;
}

static int build_hash(toro_postings_t *p)
{
    size_t cap = 16;
    while (cap < 2 * p->nterms)
        cap *= 2;
    p->hash = calloc(cap, sizeof(uint32_t));
    if (!p->hash)
        return TORO_ENOMEM;
    p->hmask = cap - 1;
    for (size_t i = 0; i < p->nterms; i++) {
        size_t h = (size_t)hash_str(p->text + p->terms[i].off, p->terms[i].len) & p->hmask;
        while (p->hash[h])
            h = (h + 1) & p->hmask;
        p->hash[h] = (uint32_t)i + 1;
    }
    return 0;
}

/* Sizes the term array, the impact levels from the dfs (one a posting), and
 * a first packed arena from the stored lists' total length (SQLite answers
 * length() of a blob without reading it; the packed lists usually take
 * less), so the load rarely grows an array (a doubling would raise the peak
 * memory of a large snapshot's open). */
static int size_terms(loader_t *L, sqlite3 *db, size_t *nterms)
{
    sqlite3_stmt *s = NULL;
    int rc = TORO_EFORMAT;
    size_t nbytes = 0, nposts = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*), total(length(postings)), total(df) FROM terms", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        *nterms = (size_t)sqlite3_column_int64(s, 0);
        nbytes = (size_t)sqlite3_column_double(s, 1);
        nposts = (size_t)sqlite3_column_double(s, 2);
        rc = *nterms < UINT32_MAX ? 0 : TORO_EFORMAT;
    }
    sqlite3_finalize(s);
    if (rc == 0) {
        L->p->terms = calloc(*nterms + 1, sizeof(toro_pterm_t));
        rc = L->p->terms && grow_arena(L, nbytes) == 0 && grow((void **)&L->p->imp, &L->cap_imp, nposts + 1, 1) == 0
                 ? 0
                 : TORO_ENOMEM;
    }
    return rc;
}

/* Gives back the growth slack of an array of *cap bytes holding used. */
static void shrink(void **buf, size_t *cap, size_t used)
{
    void *fit = realloc(*buf, used);
    if (fit) {
        *buf = fit;
        *cap = used;
    }
}

int toro_postings_load(toro_postings_t *p, sqlite3 *db, const uint32_t *lens, uint32_t n_chunks, double avgdl,
                       char **err)
{
    memset(p, 0, sizeof(*p));
    loader_t L = {.p = p, .lens = lens, .n_chunks = n_chunks, .avgdl = avgdl};
    size_t nterms = 0;
    sqlite3_stmt *s = NULL;
    int rc = size_terms(&L, db, &nterms);
    if (rc == 0 && sqlite3_prepare_v2(db, "SELECT term, df, postings FROM terms", -1, &s, NULL) != SQLITE_OK)
        rc = TORO_EFORMAT;
    int st = SQLITE_DONE;
    while (rc == 0 && (st = sqlite3_step(s)) == SQLITE_ROW)
        rc = p->nterms < nterms ? add_row(&L, s) : TORO_EFORMAT;
    if (rc == 0 && st != SQLITE_DONE)
        rc = TORO_EFORMAT;
    if (rc == TORO_EFORMAT)
        toro_set_err(err, "postings unreadable: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    if (rc == 0)
        rc = build_hash(p);
    if (rc == 0) {
        shrink((void **)&p->imp, &L.cap_imp, p->nimp + 1);
        shrink((void **)&p->bytes, &L.cap_bytes, p->nbytes + PACK_SLACK);
    }
    if (rc) {
        toro_postings_free(p);
        return rc;
    }
    p->mem = L.cap_text + (nterms + 1) * sizeof(toro_pterm_t) + L.cap_bytes + L.cap_blocks * sizeof(toro_pblock_t) +
             (p->hmask + 1) * sizeof(uint32_t) + L.cap_imp;
    return 0;
}

void toro_postings_free(toro_postings_t *p)
{
    if (!p)
        return;
    free(p->text);
    free(p->terms);
    free(p->bytes);
    free(p->blocks);
    free(p->imp);
    free(p->hash);
    memset(p, 0, sizeof(*p));
}

const toro_pterm_t *toro_postings_find(const toro_postings_t *p, const char *term, size_t len)
{
    if (!p->hash)
        return NULL;
    for (size_t h = (size_t)hash_str(term, len) & p->hmask; p->hash[h]; h = (h + 1) & p->hmask) {
        const toro_pterm_t *t = &p->terms[p->hash[h] - 1];
        if (t->len == len && memcmp(p->text + t->off, term, len) == 0)
            return t;
    }
    return NULL;
}

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Field k of a group of eight w-bit fields starting at byte in. */
#define FIELD(in, k, w, mask) ((uint32_t)((toro_load64le((in) + (k) * (w) / 8) >> ((k) * (w) % 8)) & (mask)))

/* Unpacks n gaps of w bits (w <= 32) from in into chunk ids after id: eight
 * fields take w whole bytes, so with w a constant (unpack_ids' cases) every
 * offset and shift in a group of eight is one too (written out: the
 * compiler need not unroll anything). */
static ALWAYS_INLINE void unpack_w(const uint8_t *in, uint32_t n, unsigned w, uint32_t id, uint32_t *out)
{
    uint64_t mask = (1ull << w) - 1;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8, in += w) {
        out[i] = id += FIELD(in, 0, w, mask);
        out[i + 1] = id += FIELD(in, 1, w, mask);
        out[i + 2] = id += FIELD(in, 2, w, mask);
        out[i + 3] = id += FIELD(in, 3, w, mask);
        out[i + 4] = id += FIELD(in, 4, w, mask);
        out[i + 5] = id += FIELD(in, 5, w, mask);
        out[i + 6] = id += FIELD(in, 6, w, mask);
        out[i + 7] = id += FIELD(in, 7, w, mask);
    }
    for (unsigned k = 0; i < n; i++, k++)
        out[i] = id += FIELD(in, k, w, mask);
}

#define UNPACK_CASE(W) \
    case W:            \
        unpack_w(in, n, W, id, out); \
        break;

static void unpack_ids(const uint8_t *in, uint32_t n, unsigned w, uint32_t id, uint32_t *out)
{
    switch (w) {
        UNPACK_CASE(0) UNPACK_CASE(1) UNPACK_CASE(2) UNPACK_CASE(3) UNPACK_CASE(4) UNPACK_CASE(5) UNPACK_CASE(6)
        UNPACK_CASE(7) UNPACK_CASE(8) UNPACK_CASE(9) UNPACK_CASE(10) UNPACK_CASE(11) UNPACK_CASE(12)
        UNPACK_CASE(13) UNPACK_CASE(14) UNPACK_CASE(15) UNPACK_CASE(16)
    default:
        unpack_w(in, n, w, id, out);
    }
}

/* Decodes block b's chunk ids (the load packed and checked every posting in
 * it); its tfs stay packed (toro_pcursor_tf). */
static void decode_block(toro_pcursor_t *c, uint32_t b)
{
    const toro_pblock_t *bl = c->p->blocks + c->t->block + b;
    const uint8_t *in = c->p->bytes + c->t->post + bl->off;
    uint32_t n = b + 1 < c->t->nblocks ? TORO_POST_BLOCK : c->t->npost - b * TORO_POST_BLOCK;
    uint32_t id = b ? bl[-1].last : 0;
    unpack_ids(in, n, bl->wid, id, c->ids);
    c->tfin = in + ((size_t)n * bl->wid + 7) / 8;
    c->wtf = bl->wtf;
    c->imps = c->p->imp + c->t->imp + (size_t)b * TORO_POST_BLOCK;
    c->b = b;
    c->n = n;
    c->i = 0;
    c->id = n ? c->ids[0] : TORO_POST_END;
}

void toro_pcursor_init(toro_pcursor_t *c, const toro_postings_t *p, const toro_pterm_t *t)
{
    c->p = p;
    c->t = t;
    c->b = c->wb = c->n = c->i = 0;
    c->id = TORO_POST_END;
    if (t && t->nblocks)
        decode_block(c, 0);
}

/* The first block at or after from whose last id >= target, or nblocks. */
static uint32_t find_block(const toro_pcursor_t *c, uint32_t from, uint32_t target)
{
    const toro_pblock_t *bl = c->p->blocks + c->t->block;
    uint32_t lo = from, hi = c->t->nblocks;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (bl[mid].last < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void toro_pcursor_seek_far(toro_pcursor_t *c, uint32_t target)
{
    if (c->id >= target)
        return;
    const toro_pblock_t *bl = c->p->blocks + c->t->block;
    if (bl[c->b].last < target) {
        uint32_t b = c->b + 1 < c->t->nblocks && bl[c->b + 1].last >= target ? c->b + 1 : find_block(c, c->b + 1, target);
        if (b >= c->t->nblocks) {
            c->id = TORO_POST_END;
            return;
        }
        decode_block(c, b);
    }
    while (c->ids[c->i] < target) /* the block's last id is >= target */
        c->i++;
    c->id = c->ids[c->i];
}

float toro_pcursor_block_max(toro_pcursor_t *c, uint32_t target, uint32_t *last)
{
    *last = TORO_POST_END;
    if (c->id == TORO_POST_END)
        return 0;
    const toro_pblock_t *bl = c->p->blocks + c->t->block;
    uint32_t b = c->wb > c->b ? c->wb : c->b, nb = c->t->nblocks;
    for (int steps = 0; b < nb && bl[b].last < target; b++) /* usually the next block or two */
        if (++steps == 8) {
            b = find_block(c, b, target);
            break;
        }
    c->wb = b;
    if (b >= nb)
        return 0;
    *last = bl[b].last;
    return bl[b].maxf;
}

uint32_t toro_pcursor_scan(toro_pcursor_t *c, uint32_t target, uint32_t limit, unsigned lmin)
{
    toro_pcursor_seek(c, target);
    if (c->id == TORO_POST_END || c->id > limit || c->imps[c->i] >= lmin)
        return c->id;
    uint32_t i = c->i + 1;
    while (i < c->n && c->ids[i] <= limit && c->imps[i] < lmin)
        i++;
    if (i == c->n) { /* the block ends at limit: stay on its last posting */
        c->i = c->n - 1;
        c->id = c->ids[c->i];
        return limit == TORO_POST_END ? TORO_POST_END : limit + 1;
    }
    c->i = i;
    c->id = c->ids[i];
    return c->id; /* at or below limit only when its level reaches lmin */
}
