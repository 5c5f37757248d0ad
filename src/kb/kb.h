/* kb.h: the knowledge base as the rest of toro sees it (the "Bedrock Knowledge
 * Base" box): open an immutable snapshot file, ask for the top-k chunks of a
 * query. Building snapshots, the analyzer, the chunker and evaluation live
 * behind this header in src/kb/ and are used by the `toro kb` commands.
 *
 * Thread-safety: one toro_kb_t may be searched from several threads at once
 * (process workers share it). It never writes to the snapshot. */
#ifndef TORO_KB_KB_H
#define TORO_KB_KB_H

#include <stddef.h>

#include "embed/embed.h"

typedef struct toro_kb toro_kb_t;

/* Retrieval modes: BM25 only, dense (cosine over the stored vectors) only,
 * or both fused. */
typedef enum toro_kb_mode {
    TORO_KB_MODE_DEFAULT = 0, /* hybrid when vectors and an embedder are there, else bm25 */
    TORO_KB_MODE_BM25,
    TORO_KB_MODE_DENSE,
    TORO_KB_MODE_HYBRID,
} toro_kb_mode_t;

/* How hybrid fuses the two rankings. */
typedef enum toro_kb_fusion {
    TORO_KB_FUSION_CONVEX = 0, /* w * normalized cosine + (1 - w) * BM25 / max BM25 */
    TORO_KB_FUSION_RRF,        /* 1/(60 + rank_bm25) + 1/(60 + rank_dense) */
} toro_kb_fusion_t;

/* The fusion used unless --fusion says otherwise (chosen on kb/eval and the
 * aia-bde-pt dev split, see README "Retrieval"). */
#define TORO_KB_FUSION_DEFAULT TORO_KB_FUSION_CONVEX
#define TORO_KB_FUSION_WEIGHT_DEFAULT 0.9

/* Default threshold on toro_kb_hit_t.relevance (calibrated on kb/eval). */
#define TORO_KB_MIN_RELEVANCE_DEFAULT 0.5

typedef struct toro_kb_hit {
    char *chunk_id; /* stable id of the chunk, "<doc_id>#<n>" */
    char *doc_id;   /* source document id (file name without extension) */
    char *title;    /* document title */
    char *section;  /* section path, "Heading > Subheading" ("" at top level) */
    char *lang;     /* "pt" or "en" */
    char *text;     /* chunk text as written in the source (markup stripped) */
    double score;   /* ranking score of the mode used (BM25; cosine; fused), higher is better */
    double coverage; /* share of the query's (idf-weighted) terms this chunk contains, 0..1;
                        added by the kb engine for the relevance threshold */
    double bm25;     /* BM25 score (0 when no query term occurs) */
    double cosine;   /* cosine similarity of query and chunk vectors, -1..1 (0 without vectors) */
    double relevance; /* calibrated 0..1, the same meaning on any corpus: relevant when
                         >= the kb's min relevance (toro_kb_hit_is_relevant) */
} toro_kb_hit_t;

/* Why: workers open the snapshot once at start. *err (caller frees) explains
 * a failure in words. Returns 0 or a negative toro error code. */
int toro_kb_open(const char *path, toro_kb_t **out, char **err);
void toro_kb_close(toro_kb_t *kb);

/* Why: every answer records which snapshot produced it. Borrowed string. */
const char *toro_kb_version(const toro_kb_t *kb);

/* Why: retrieval for every answerer and `toro kb search`. Top-k chunks in the
 * kb's mode (toro_kb_set_mode; by default hybrid when the snapshot has vectors
 * and an embedder is attached, else BM25), best first; *hits is caller-owned
 * (toro_kb_hits_free). *n may be 0. Fails (TORO_EUNAVAIL...) when the query
 * cannot be embedded. */
int toro_kb_search(toro_kb_t *kb, const char *query, size_t k, toro_kb_hit_t **hits, size_t *n);

/* Why: `toro kb eval` compares modes on one handle. mode DEFAULT = the kb's mode. */
int toro_kb_search_mode(toro_kb_t *kb, const char *query, toro_kb_mode_t mode, size_t k, toro_kb_hit_t **hits,
                        size_t *n);

/* Why: dense and hybrid need the query embedded by the same model as the
 * chunks. e is borrowed (must outlive kb); NULL or "none" detaches. Refused
 * with *err (caller frees) when the snapshot's vectors come from another
 * embedder or the snapshot has no vectors. Call before searching (not
 * concurrently with searches). */
int toro_kb_attach_embedder(toro_kb_t *kb, toro_embedder_t *e, char **err);

/* Why: which embedder built the vectors ("" when none); borrowed. */
const char *toro_kb_embedder_identity(const toro_kb_t *kb);
int toro_kb_has_vectors(const toro_kb_t *kb);
toro_kb_mode_t toro_kb_mode(const toro_kb_t *kb); /* the effective default mode */

/* Why: --mode, --fusion and --min-relevance. set_mode fails (TORO_EINVAL) for
 * dense/hybrid without vectors and an attached embedder. weight is the
 * cosine's share for CONVEX (0..1), ignored for RRF. */
int toro_kb_set_mode(toro_kb_t *kb, toro_kb_mode_t mode);
void toro_kb_set_fusion(toro_kb_t *kb, toro_kb_fusion_t fusion, double weight);
void toro_kb_set_min_relevance(toro_kb_t *kb, double min_relevance);
double toro_kb_min_relevance(const toro_kb_t *kb);

/* Why: the extractive answerer matches the question's words in sentences;
 * a typo ("horaro") matches none, while retrieval already read it as the
 * closest indexed term ("horari"). When stem is not an indexed term and an
 * indexed term lies within the typo distance retrieval uses, it is copied
 * into out (TORO_TOKEN_MAX + 1 bytes) and 1 is returned; -1 when stem is an
 * indexed term; otherwise 0 (a short stem, nothing close, no vocabulary).
 * out is unchanged unless 1 is returned. */
int toro_kb_typo_fix(toro_kb_t *kb, const char *stem, char *out);

/* Why: option parsing in one place: "bm25" "dense" "hybrid" -> mode, -1 if unknown. */
int toro_kb_mode_parse(const char *s);
const char *toro_kb_mode_name(toro_kb_mode_t mode);
void toro_kb_hits_free(toro_kb_hit_t *hits, size_t n);

/* Why: the relevance threshold that decides found_relevant_docs:
 * hit->relevance >= the kb's min relevance. */
int toro_kb_hit_is_relevant(const toro_kb_t *kb, const toro_kb_hit_t *hit);

/* Why: answers are written in the question's language. "pt" or "en". */
const char *toro_kb_detect_lang(const char *text);

#endif
