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

typedef struct toro_kb toro_kb_t;

typedef struct toro_kb_hit {
    char *chunk_id; /* stable id of the chunk, "<doc_id>#<n>" */
    char *doc_id;   /* source document id (file name without extension) */
    char *title;    /* document title */
    char *section;  /* section path, "Heading > Subheading" ("" at top level) */
    char *lang;     /* "pt" or "en" */
    char *text;     /* chunk text as written in the source (markup stripped) */
    double score;   /* BM25 score, higher is better */
    double coverage; /* share of the query's (idf-weighted) terms this chunk contains, 0..1;
                        added by the kb engine for the relevance threshold */
} toro_kb_hit_t;

/* Why: workers open the snapshot once at start. *err (caller frees) explains
 * a failure in words. Returns 0 or a negative toro error code. */
int toro_kb_open(const char *path, toro_kb_t **out, char **err);
void toro_kb_close(toro_kb_t *kb);

/* Why: every answer records which snapshot produced it. Borrowed string. */
const char *toro_kb_version(const toro_kb_t *kb);

/* Why: retrieval for the answerer and `toro kb search`. Top-k chunks by BM25,
 * best first; *hits is caller-owned (toro_kb_hits_free). *n may be 0. */
int toro_kb_search(toro_kb_t *kb, const char *query, size_t k, toro_kb_hit_t **hits, size_t *n);
void toro_kb_hits_free(toro_kb_hit_t *hits, size_t n);

/* Why: the relevance threshold that decides found_relevant_docs. */
int toro_kb_hit_is_relevant(const toro_kb_t *kb, const toro_kb_hit_t *hit);

/* Why: answers are written in the question's language. "pt" or "en". */
const char *toro_kb_detect_lang(const char *text);

#endif
