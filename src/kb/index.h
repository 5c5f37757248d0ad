/* index.h: building snapshots and the snapshot format shared by the builder
 * (build.c) and the reader (kb.c).
 *
 * A snapshot is one SQLite file, written once and then only read:
 *   meta(key, value)          version, built_at, analyzer, params, counts, languages
 *   docs(doc_id, title, lang, path, bytes)
 *   chunks(id, chunk_id, doc_id, title, section, lang, text, start_off, end_off, n_terms)
 *   terms(term, df, postings) postings = varint(delta chunk id), varint(tf) ...
 *   blobs(name, data)         "lengths": uint32 LE analyzed length of each chunk
 *                             "vectors": float32 LE, n_chunks x embed_dim, unit rows
 *                             (only when built with an embedder)
 *   meta embedder, embed_dim  the embedder's identity and width (with "vectors")
 * Scoring is BM25 done in C over these postings, plus exact dot products over
 * the vectors (kb.c). */
#ifndef TORO_KB_INDEX_H
#define TORO_KB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "embed/embed.h"
#include "kb/chunker.h"

#define TORO_KB_FORMAT "toro-kb/1"

typedef struct toro_kb_builder toro_kb_builder_t;

typedef struct toro_kb_build_stats {
    size_t n_files;   /* source files indexed */
    size_t n_docs;
    size_t n_chunks;
    size_t n_terms;   /* distinct terms */
    size_t bytes_in;  /* source bytes read */
    double seconds;   /* wall time of the build */
    double embed_seconds; /* part of it spent embedding chunks (0 without an embedder) */
    size_t embed_dim; /* vector width stored (0 without an embedder) */
    size_t threads;   /* analysis threads used (1 = the calling thread alone) */
    char version[33]; /* version id (hex) */
} toro_kb_build_stats_t;

/* Called during toro_kb_build_dir after each file (done of total). */
typedef void (*toro_kb_progress_cb)(void *ud, size_t done, size_t total, size_t bytes);

/* Why: `toro kb build` and the BEIR evaluation both produce snapshots. The
 * snapshot is written to out_path + ".tmp" and renamed by finish, so a
 * reader never sees a half-written file. On failure *out is NULL, *err
 * (caller frees) explains what it can name (not TORO_ENOMEM). */
int toro_kb_builder_new(const char *out_path, const toro_chunk_params_t *params, toro_kb_builder_t **out,
                        char **err);

/* Why: feeds bytes that identify the input into the version id (in a
 * deterministic order chosen by the caller). */
void toro_kb_builder_hash(toro_kb_builder_t *b, const void *data, size_t len);

/* Called while chunks are embedded at finish (done of total, seconds so far). */
typedef void (*toro_kb_embed_progress_cb)(void *ud, size_t done, size_t total, double seconds);

/* Why: `toro kb build --embedder` stores a vector per chunk. e is borrowed
 * and must outlive finish; NULL or "none" builds a lexical-only snapshot.
 * The embedder's identity goes into the version id. */
void toro_kb_builder_set_embedder(toro_kb_builder_t *b, toro_embedder_t *e, toro_kb_embed_progress_cb progress,
                                  void *ud);

/* Why: one source file: hashed (path and bytes), chunked, indexed. */
int toro_kb_builder_add_file(toro_kb_builder_t *b, const char *relpath, const char *bytes, size_t len,
                             toro_doc_format_t fmt, char **err);

/* Why: an already chunked document (BEIR corpora); takes nothing, copies what it needs.
 * path may be NULL. */
int toro_kb_builder_add_doc(toro_kb_builder_t *b, const toro_doc_t *doc, const char *path, size_t bytes);

/* Why: writes postings and metadata (and vectors with an embedder), then the
 * checksum, and renames into place. stats may be NULL. Call once. On failure
 * *err says why, stats is untouched, nothing is at out_path that was not
 * there before, and the builder is only good for toro_kb_builder_free (which
 * removes the temporary file). */
int toro_kb_builder_finish(toro_kb_builder_t *b, toro_kb_build_stats_t *stats, char **err);

/* Frees a builder; an unfinished build's temporary file is removed. */
void toro_kb_builder_free(toro_kb_builder_t *b);

/* Why: the whole `toro kb build SRC_DIR -o FILE`: walks src_dir recursively
 * (.md .markdown .txt .html .htm, sorted by relative path, hidden entries and
 * README files skipped), builds, reports progress. */
int toro_kb_build_dir(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                      toro_kb_progress_cb progress, void *ud, toro_kb_build_stats_t *stats, char **err);

/* Why: the same with vectors: embedder e (borrowed, may be NULL) and its progress. */
int toro_kb_build_dir_embedded(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                               toro_kb_progress_cb progress, void *ud, toro_embedder_t *e,
                               toro_kb_embed_progress_cb eprogress, toro_kb_build_stats_t *stats, char **err);

#define TORO_KB_BUILD_MAX_THREADS 16

/* How toro_kb_build_dir_opts runs; zero fields are defaults. */
typedef struct toro_kb_build_opts {
    toro_kb_progress_cb progress;        /* after each file, may be NULL */
    void *ud;                            /* for both callbacks */
    toro_embedder_t *embedder;           /* borrowed, NULL = lexical only */
    toro_kb_embed_progress_cb eprogress; /* may be NULL */
    unsigned threads; /* analysis threads: 0 = one per online CPU, at most TORO_KB_BUILD_MAX_THREADS */
} toro_kb_build_opts_t;

/* Why: `toro kb build --threads N` and the test that a snapshot is the same
 * whatever the thread count. Worker threads read, chunk and analyze files;
 * the calling thread adds them in path order, so ids, postings and rows do
 * not depend on the thread count; the threads end before any embedding. */
int toro_kb_build_dir_opts(const char *src_dir, const char *out_path, const toro_chunk_params_t *params,
                           const toro_kb_build_opts_t *o, toro_kb_build_stats_t *stats, char **err);

/* Why: tests and benchmarks compare the pruned BM25 search (the default)
 * with scoring every posting; on != 0 makes kb score every posting. Both
 * give the same hits; set before searching. */
struct toro_kb;
void toro_kb_set_exhaustive(struct toro_kb *kb, int on);

/* Why: benchmarks report the memory the in-memory postings hold (bytes). */
size_t toro_kb_postings_bytes(const struct toro_kb *kb);

/* Varint helpers shared by writer and reader. */
size_t toro_varint_put(uint8_t *out, uint32_t v);
size_t toro_varint_get(const uint8_t *in, size_t len, uint32_t *v);

#endif
