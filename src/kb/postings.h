/* postings.h: a snapshot's term dictionary and postings held in memory for
 * the life of an open snapshot (kb.c), so a query reads no SQLite row for
 * its terms. Loaded once at open from the terms table (format unchanged:
 * varint(delta chunk id), varint(tf) per posting, see index.h); at load
 * each term's list is cut into blocks of TORO_POST_BLOCK postings, each
 * bit-packed at its own widths (chunk-id gaps, tf - 1: a block's ids decode
 * with shifts and masks, no byte-by-byte varint loop, and a tf is read only
 * for a posting that is scored), with the block's last chunk id and the
 * largest BM25 term-frequency factor inside it (block-max), which the
 * reader's dynamic pruning uses to skip blocks and chunks that cannot
 * reach the top k. Each posting also gets a one-byte impact level at load: its
 * BM25 term-frequency factor quantized upwards (toro_impact_bound), so the
 * reader bounds a chunk's score from the postings alone, without its length,
 * and skips the postings that cannot lift a chunk into the top k. Read-only
 * after load: safe to share between threads. */
#ifndef TORO_KB_POSTINGS_H
#define TORO_KB_POSTINGS_H

#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TORO_POST_BLOCK 128
#define TORO_POST_END UINT32_MAX /* cursor past its last posting */

/* BM25 parameters shared by the block maxima and the scorer. */
#define TORO_BM25_K1 1.2
#define TORO_BM25_B 0.75

/* Impacts: level q bounds a factor f <= q * TORO_IMPACT_STEP. The factor is
 * below k1 + 1, which level 254 already reaches, so 255 never binds. */
#define TORO_IMPACT_STEP ((TORO_BM25_K1 + 1) / 254.0)

typedef struct toro_pblock {
    uint32_t last; /* chunk id of the block's last posting */
    uint32_t off;  /* byte offset of the block's packed postings in the term's (postings.c) */
    float maxf;    /* max over the block of tf*(k1+1) / (tf + k1*(1-b+b*dl/avgdl)), rounded up */
    uint8_t wid, wtf; /* bits per chunk-id gap, per tf - 1 */
} toro_pblock_t;

typedef struct toro_pterm {
    uint32_t off;    /* term text in toro_postings_t.text */
    uint32_t len;
    uint32_t df;
    uint32_t npost;  /* postings kept (the valid prefix of the stored list) */
    size_t post;     /* first byte of its packed blocks in toro_postings_t.bytes */
    size_t imp;      /* first impact in toro_postings_t.imp (block b's start at imp + b * TORO_POST_BLOCK) */
    uint32_t block;  /* first block in toro_postings_t.blocks */
    uint32_t nblocks;
    float maxf;      /* max of the blocks' maxf */
} toro_pterm_t;

typedef struct toro_postings {
    char *text;            /* NUL-separated term texts */
    toro_pterm_t *terms;
    size_t nterms;
    uint8_t *bytes;        /* every term's packed blocks, concatenated */
    size_t nbytes;
    toro_pblock_t *blocks;
    size_t nblocks;
    uint8_t *imp;          /* one impact level per posting, every term's in list order */
    size_t nimp;
    uint32_t *hash;        /* open addressing: term index + 1, 0 empty */
    size_t hmask;
    size_t mem;            /* bytes held (for reports) */
} toro_postings_t;

/* Why: kb.c loads every term once at open. lens are the chunk lengths
 * (n_chunks of them, borrowed during the call: half the size of a per-chunk
 * toro_bm25_len_norm array, so fewer cache misses over a large corpus),
 * avgdl their mean as stored.
 * A posting list that is cut short or names a chunk out of range or out of
 * order is kept up to the last good posting. Returns 0 or a negative toro
 * error (TORO_ENOMEM, TORO_EFORMAT) with *err (caller frees). */
int toro_postings_load(toro_postings_t *p, sqlite3 *db, const uint32_t *lens, uint32_t n_chunks, double avgdl,
                       char **err);
void toro_postings_free(toro_postings_t *p);

/* Why: the query's stems are looked up by text. The term or NULL. */
const toro_pterm_t *toro_postings_find(const toro_postings_t *p, const char *term, size_t len);

/* The length part of the BM25 denominator of a chunk of dl terms,
 * k1 * (1 - b + b * dl / avgdl): kb.c computes it once per chunk at open. */
static inline double toro_bm25_len_norm(uint32_t dl, double avgdl)
{
    return TORO_BM25_K1 * (1 - TORO_BM25_B + TORO_BM25_B * (double)dl / avgdl);
}

/* The BM25 term-frequency factor of the block maxima (the scorer in kb.c
 * multiplies the same expression by the term's weight and idf); norm is
 * the chunk's toro_bm25_len_norm. */
static inline double toro_bm25_tf_norm(uint32_t tf, double norm)
{
    return (tf * (TORO_BM25_K1 + 1)) / (tf + norm);
}

/* What impact level l guarantees: every posting at l has a factor <= this. */
static inline double toro_impact_bound(unsigned l)
{
    return (double)l * TORO_IMPACT_STEP;
}

/* The smallest impact level whose bound is >= f (f is a tf factor, below
 * k1 + 1): the load computes it from the same double the scorer uses. */
static inline uint8_t toro_impact_level(double f)
{
    double q = ceil(f * (254.0 / (TORO_BM25_K1 + 1))); /* a product, not a division: the load does this per posting */
    unsigned l = q < 1 ? 1 : q > 255 ? 255 : (unsigned)q;
    while (l < 255 && toro_impact_bound(l) < f) /* the product may have rounded either way */
        l++;
    while (l > 1 && toro_impact_bound(l - 1) >= f)
        l--;
    return (uint8_t)l;
}

/* A position in one term's postings, decoded a block at a time (its chunk
 * ids; tfs and impact levels are read in place). */
typedef struct toro_pcursor {
    const toro_postings_t *p;
    const toro_pterm_t *t;
    uint32_t b;      /* current (decoded) block */
    uint32_t wb;     /* block of the last block_max target (moves forward only) */
    uint32_t n, i;   /* postings in it, current one */
    uint32_t id;     /* current posting; TORO_POST_END past the end */
    unsigned wtf;    /* bits per tf - 1 in the decoded block */
    const uint8_t *tfin; /* its packed tfs (read one at a time: only scored postings need theirs) */
    const uint8_t *imps; /* its impact levels (imps[i] is the current posting's) */
    uint32_t ids[TORO_POST_BLOCK];
} toro_pcursor_t;

/* A little-endian 64-bit load from any address (the packed fields). */
static inline uint64_t toro_load64le(const uint8_t *in)
{
    uint64_t v;
    memcpy(&v, in, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* The term frequency of the current posting (the cursor is on one). */
static inline uint32_t toro_pcursor_tf(const toro_pcursor_t *c)
{
    size_t bit = (size_t)c->i * c->wtf;
    return (uint32_t)((toro_load64le(c->tfin + bit / 8) >> (bit % 8)) & ((1ull << c->wtf) - 1)) + 1;
}

/* Why: document-at-a-time scoring walks every query term's list in chunk
 * order. init puts the cursor on the first posting (t may be NULL: empty). */
void toro_pcursor_init(toro_pcursor_t *c, const toro_postings_t *p, const toro_pterm_t *t);
/* The rest of toro_pcursor_seek: target is past the current posting. */
void toro_pcursor_seek_far(toro_pcursor_t *c, uint32_t target);
/* Moves to the first posting with id >= target (no move when already there),
 * skipping whole blocks by their last id. Inline for the common cases (no
 * move, the next posting of the decoded block): scoring seeks every
 * essential cursor once per candidate chunk. */
static inline void toro_pcursor_seek(toro_pcursor_t *c, uint32_t target)
{
    if (c->id >= target)
        return;
    if (c->i + 1 < c->n && c->ids[c->i + 1] >= target) {
        c->i++;
        c->id = c->ids[c->i];
        return;
    }
    toro_pcursor_seek_far(c, target);
}
/* Why: with one essential term, MaxScore needs only its postings whose
 * impact level reaches lmin. Moves to the first posting at or after target,
 * then on to the first one in [target, limit] at level >= lmin, and returns
 * its id; when there is none, returns an id above limit (the cursor then
 * stays on a posting at or below limit or on the first one above it: it
 * never passes a posting above limit). limit must not be beyond the last id
 * of the block holding target's posting (a MaxScore window's end is not). */
uint32_t toro_pcursor_scan(toro_pcursor_t *c, uint32_t target, uint32_t limit, unsigned lmin);
/* The maxf of the block that would hold target (0 when past the end),
 * without decoding; *last is that block's last id (every posting of the
 * list in [target, *last] is in it), TORO_POST_END past the end. Targets
 * must not decrease from one call to the next (c->wb walks forward). */
float toro_pcursor_block_max(toro_pcursor_t *c, uint32_t target, uint32_t *last);

#endif
