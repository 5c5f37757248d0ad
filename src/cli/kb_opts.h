/* kb_opts.h: the retrieval options every command that opens a knowledge base
 * shares (--embedder, --min-relevance, --mode, --fusion): parsing, the default
 * embedder rule, and attaching it to the kb handle. It only wires; retrieval
 * lives in src/kb and src/embed. */
#ifndef TORO_CLI_KB_OPTS_H
#define TORO_CLI_KB_OPTS_H

#include "cli/cli.h"
#include "embed/embed.h"
#include "kb/kb.h"

typedef struct toro_kb_opts {
    const char *embedder;      /* --embedder SPEC, NULL = default rule */
    const char *min_relevance; /* --min-relevance X (0..1), NULL = default */
    const char *mode;          /* --mode bm25|dense|hybrid, NULL = default */
    const char *fusion;        /* --fusion rrf|convex[:W], NULL = default */
} toro_kb_opts_t;

/* Why: one set of option rows (cli.h) for every command that opens a
 * snapshot: --embedder SPEC, --min-relevance X, --mode bm25|dense|hybrid,
 * --fusion SPEC, stored in *o (borrowed argv strings). */
#define TORO_KB_OPTS_ROWS(o)                                                                                         \
    {"--embedder", NULL, TORO_OPT_STR, &(o)->embedder, "SPEC", 0, 0, NULL},                                          \
        {"--min-relevance", NULL, TORO_OPT_STR, &(o)->min_relevance, "X", 0, 0, NULL},                               \
        {"--mode", NULL, TORO_OPT_CHOICE, &(o)->mode, "MODE", 0, 0, "bm25|dense|hybrid"},                            \
        {"--fusion", NULL, TORO_OPT_STR, &(o)->fusion, "SPEC", 0, 0, NULL}

/* Why: the default rule, in one place: --embedder given -> that one; else e5
 * when it is built in and the snapshot's vectors were made by it; else none.
 * The choice is logged. Opens the embedder (*emb caller frees), attaches it
 * to kb and applies min relevance, mode and fusion. *err (caller frees)
 * explains a refusal (other embedder, bad value). */
int toro_kb_opts_apply(const toro_kb_opts_t *o, toro_kb_t *kb, toro_embedder_t **emb, char **err);

/* Why: every command that serves or searches a snapshot opens it and applies
 * the options the same way. On success *kb and *emb (may be NULL: no
 * embedder) are the caller's to close and free, emb after kb. On failure both
 * are NULL, nothing stays open, and *err (caller frees) says why. */
int toro_kb_opts_open(const char *path, const toro_kb_opts_t *o, toro_kb_t **kb, toro_embedder_t **emb, char **err);

/* Why: `toro kb eval --fusion a,b,c` compares fusions; one spec
 * ("rrf" or "convex[:W]") applied to kb. */
int toro_kb_opts_fusion(toro_kb_t *kb, const char *spec, char **err);

#define TORO_KB_OPTS_USAGE                                                                                           \
    "[--embedder e5|e5:FILE|openai+http://HOST:PORT/v1?model=NAME|none] [--min-relevance 0..1]"

#endif
